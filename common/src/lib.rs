//! Shared building blocks of the feed, the engine and the lab.
//!
//! - [`tick`]: the 64-byte wire type.
//! - [`ring`]: the single-producer, many-consumer broadcast ring, on heap memory or in a
//!   shared-memory file ([`ring::shm`]).
//! - [`config`]: the TOML run configuration, validated, with errors naming file, line,
//!   column and key.
//! - [`clock`]: raw TSC time stamps (or `CLOCK_MONOTONIC` where the TSC is not invariant).
//! - [`cores`]: the core plan, pinning and wait strategies.
//! - [`latency`]: per-stage fixed-bound histograms, interval hand-off, `.hlog` writer.
//! - [`alloc`]: a counting wrapper for any global allocator.
//! - `mimalloc_stats` (feature `mimalloc`): mimalloc's version and process statistics.
//! - [`manifest`]: run manifests and summaries.
//! - [`runargs`]: the `--config`/`--duration`/`--out` arguments of feed and engine.
//!
//! This is the only crate of the workspace with `unsafe` code; each block carries a
//! `// SAFETY:` comment and sits behind a safe API. What allocates, blocks or must run
//! on a particular thread is stated in each module's documentation.
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod alloc;
pub mod clock;
pub mod config;
pub mod cores;
pub mod latency;
pub mod manifest;
#[cfg(feature = "mimalloc")]
pub mod mimalloc_stats;
pub mod ring;
pub mod runargs;
mod sync;
pub mod tick;
