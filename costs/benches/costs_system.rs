//! The noise-free costs (see `body`) with the C library's malloc (glibc) as the
//! global allocator, through the counting wrapper as in the `feed` and `engine`
//! binaries.

use common::alloc::CountingAlloc;
use common::allocators::{hooks, system::System, AllocatorHooks, Introspect};

mod body;

#[global_allocator]
static GLOBAL: CountingAlloc<System> = CountingAlloc::new(System, System::NAME);

/// The global allocator's name and version, for the reports.
fn allocator() -> AllocatorHooks {
    hooks(&GLOBAL)
}

/// Nothing to prepare: this allocator's counts repeat without it.
fn prepare() {}

use body::costs;
gungraun::main!(library_benchmark_groups = costs);
