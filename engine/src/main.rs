//! The `engine` binary: mimalloc as the global allocator, through the counting wrapper.
//!
//! mimalloc suits the engine: what little the hot path allocates at start-up and on the
//! cold threads is small and short-lived, where mimalloc's free-list sharding is fast;
//! per-tick scratch memory comes from a bumpalo arena, so after warm-up the hot thread
//! makes no global allocation at all (reported as `global_allocs_per_tick`). The
//! variants `engine-system`, `engine-jemalloc` and `engine-tcmalloc` (`src/bin/`) run
//! the same library with another allocator, for the `lab` comparisons.
#![deny(unsafe_code)]

use common::alloc::CountingAlloc;
use common::allocators::{hooks, mimalloc::MiMalloc, Introspect};
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: CountingAlloc<MiMalloc> = CountingAlloc::new(MiMalloc, MiMalloc::NAME);

fn main() -> ExitCode {
    engine::main_with(hooks(&GLOBAL))
}
