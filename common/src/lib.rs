//! Shared building blocks of the feed, the engine and the lab.
//!
//! - [`tick`]: the 64-byte wire type.
//! - [`transport`]: the trait pair every tick transport implements ([`transport::Sink`],
//!   [`transport::Source`]); the ring is one.
//! - [`ring`]: the single-producer, many-consumer broadcast ring, on heap memory or in a
//!   shared-memory file ([`ring::shm`]).
//! - [`config`]: the TOML run configuration, validated, with errors naming file, line,
//!   column and key.
//! - [`clock`]: raw TSC time stamps (or `CLOCK_MONOTONIC` where the TSC is not invariant).
//! - [`cores`]: the core plan, pinning and wait strategies.
//! - [`latency`]: per-stage fixed-bound histograms, interval hand-off, `.hlog` writer.
//! - [`alloc`]: a counting wrapper for any global allocator.
//! - [`pool`]: a fixed-size-block pool, the engine's `pool` scratch allocator.
//! - [`allocators`]: the global allocators (system; jemalloc, mimalloc, tcmalloc behind
//!   features of those names) with their versions and statistics, and the hooks that
//!   hand them to feed and engine.
//! - [`manifest`]: run manifests and summaries.
//! - [`memory`]: RSS, page faults, allocator statistics, fragmentation and warnings.
//! - [`os`]: what the project asks of the host: RSS, page faults, CPU model, kernel,
//!   process liveness, signals.
//! - [`runargs`]: the `--config`/`--duration`/`--out` arguments of feed and engine.
//! - [`units`]: byte counts, durations and times written for people.
//! - [`files`]: the files and folders the project writes: owner-only, atomic, marked,
//!   and never over a file of someone else's.
//!
//! This is the only crate of the workspace with `unsafe` code; each block carries a
//! `// SAFETY:` comment and sits behind a safe API. What allocates, blocks or must run
//! on a particular thread is stated in each module's documentation.
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod alloc;
pub mod allocators;
pub mod clock;
pub mod config;
pub mod cores;
pub mod files;
pub mod latency;
pub mod manifest;
pub mod memory;
pub mod os;
pub mod pool;
pub mod ring;
pub mod runargs;
mod sync;
pub mod tick;
pub mod transport;
pub mod units;
