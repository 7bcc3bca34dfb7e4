//! The noise-free costs (see `body`) with the C library's malloc (glibc) as the global allocator,
//! through the counting wrapper as in the `feed` and `engine` binaries. Nothing to
//! prepare: its counts repeat without it.

use common::allocators::{system::System, Introspect};

#[macro_use]
mod body;

costs_main!(System, {});
