//! The noise-free costs (see `body`) with jemalloc (tikv-jemallocator), as the `feed` binary has as the global allocator,
//! through the counting wrapper as in the `feed` and `engine` binaries. Nothing to
//! prepare: its counts repeat without it.

use common::allocators::{jemalloc::Jemalloc, Introspect};

#[macro_use]
mod body;

costs_main!(Jemalloc, {});
