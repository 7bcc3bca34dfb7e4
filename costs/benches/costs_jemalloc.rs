//! The noise-free costs (see `body`) with jemalloc (tikv-jemallocator), as the `feed` binary has as the
//! global allocator, through the counting wrapper as in the `feed` and `engine`
//! binaries.

use common::alloc::CountingAlloc;
use common::allocators::{hooks, jemalloc::Jemalloc, AllocatorHooks, Introspect};

mod body;

#[global_allocator]
static GLOBAL: CountingAlloc<Jemalloc> = CountingAlloc::new(Jemalloc, Jemalloc::NAME);

/// The global allocator's name and version, for the reports.
fn allocator() -> AllocatorHooks {
    hooks(&GLOBAL)
}

/// Nothing to prepare: this allocator's counts repeat without it.
fn prepare() {}

use body::costs;
gungraun::main!(library_benchmark_groups = costs);
