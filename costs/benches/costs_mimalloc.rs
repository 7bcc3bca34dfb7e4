//! The noise-free costs (see `body`) with mimalloc, as the `engine` binary has as the global allocator,
//! through the counting wrapper as in the `feed` and `engine` binaries. Nothing to
//! prepare: its counts repeat without it.

use common::allocators::{mimalloc::MiMalloc, Introspect};

#[macro_use]
mod body;

costs_main!(MiMalloc, {});
