//! The `feed` binary: jemalloc as the global allocator, through the counting wrapper.
//!
//! jemalloc suits the feed: a long-lived process whose cold tick history grows and
//! churns, where low fragmentation and introspection (tikv-jemalloc-ctl statistics in
//! every interval line) matter more than the last nanosecond of a single allocation.
//! The md thread does not allocate per tick at all. Other allocators for the same role
//! are compared by the `lab` reports.
#![deny(unsafe_code)]

use common::alloc::CountingAlloc;
use std::process::ExitCode;
use tikv_jemallocator::Jemalloc;

#[global_allocator]
static GLOBAL: CountingAlloc<Jemalloc> = CountingAlloc::new(Jemalloc, "jemalloc");

fn main() -> ExitCode {
    feed::main_with(feed::AllocatorHooks {
        name: GLOBAL.name(),
        version: feed::jemalloc::version,
        stats: feed::jemalloc::stats,
    })
}
