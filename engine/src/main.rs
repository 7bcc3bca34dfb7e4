//! The `engine` binary: mimalloc as the global allocator, through the counting wrapper.
//!
//! mimalloc suits the engine: what little the hot path allocates at start-up and on the
//! cold threads is small and short-lived, where mimalloc's free-list sharding is fast;
//! per-tick scratch memory comes from a bumpalo arena, so after warm-up the hot thread
//! makes no global allocation at all (reported as `global_allocs_per_tick`). Other
//! allocators for the same role are compared by the `lab` reports.
#![deny(unsafe_code)]

use common::alloc::CountingAlloc;
use mimalloc::MiMalloc;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: CountingAlloc<MiMalloc> = CountingAlloc::new(MiMalloc, "mimalloc");

fn main() -> ExitCode {
    engine::main_with(engine::AllocatorHooks {
        name: GLOBAL.name(),
        version: common::mimalloc_stats::version,
        stats: common::mimalloc_stats::process_info,
    })
}
