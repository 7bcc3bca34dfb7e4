//! The `feed` binary: jemalloc as the global allocator, through the counting wrapper.
//!
//! jemalloc suits the feed: a long-lived process whose cold tick history grows and
//! churns, where low fragmentation and introspection (tikv-jemalloc-ctl statistics in
//! every interval line) matter more than the last nanosecond of a single allocation.
//! The md thread does not allocate per tick at all. The variants `feed-system`,
//! `feed-mimalloc` and `feed-tcmalloc` (`src/bin/`) run the same library with another
//! allocator, for the `lab` comparisons.
#![deny(unsafe_code)]

use common::alloc::CountingAlloc;
use common::allocators::{hooks, jemalloc::Jemalloc, Introspect};
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: CountingAlloc<Jemalloc> = CountingAlloc::new(Jemalloc, Jemalloc::NAME);

fn main() -> ExitCode {
    feed::main_with(hooks(&GLOBAL))
}
