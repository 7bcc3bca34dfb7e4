//! Atomics used by the ring, switched to loom's model-checked versions under `cfg(loom)`.
//!
//! Every atomic the ring protocol touches comes through here, so `RUSTFLAGS="--cfg loom"`
//! turns the protocol into a loom model without changing its code.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// A spin-wait hint, yielding to loom's scheduler under `cfg(loom)`.
#[cfg(loom)]
pub(crate) fn spin_loop() {
    loom::thread::yield_now();
}

/// A spin-wait hint, yielding to loom's scheduler under `cfg(loom)`.
#[cfg(not(loom))]
pub(crate) fn spin_loop() {
    std::hint::spin_loop();
}
