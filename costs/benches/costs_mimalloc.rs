//! The noise-free costs (see `body`) with mimalloc, as the `engine` binary has as the
//! global allocator, through the counting wrapper as in the `feed` and `engine`
//! binaries.

use common::alloc::CountingAlloc;
use common::allocators::{hooks, mimalloc::MiMalloc, AllocatorHooks, Introspect};

mod body;

#[global_allocator]
static GLOBAL: CountingAlloc<MiMalloc> = CountingAlloc::new(MiMalloc, MiMalloc::NAME);

/// The global allocator's name and version, for the reports.
fn allocator() -> AllocatorHooks {
    hooks(&GLOBAL)
}

/// Nothing to prepare: this allocator's counts repeat without it.
fn prepare() {}

use body::costs;
gungraun::main!(library_benchmark_groups = costs);
