//! `pipeline`: the feed and the engine in one process on the routing allocator, the
//! hybrid in one process: the feed's md thread and the engine's hot thread allocate from
//! a mimalloc arena reserved at start (`--hot-arena-mib`), every other thread from
//! jemalloc, and every free goes back to the allocator it came from
//! ([`common::routed`]).
#![deny(unsafe_code)]

use common::alloc::CountingAlloc;
use common::allocators::{hooks, hybrid::Hybrid, Introspect};
use common::routed::MiArena;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: CountingAlloc<Hybrid> = CountingAlloc::new(
    Hybrid::new(MiArena::new(), common::allocators::jemalloc::Jemalloc),
    Hybrid::NAME,
);

fn main() -> ExitCode {
    let code = pipeline::main_with(
        hooks(&GLOBAL),
        Some(&|bytes| GLOBAL.inner().hot().reserve(bytes)),
    );
    let s = GLOBAL.inner().stats();
    eprintln!(
        "pipeline: routes: hot arena {} allocations ({} bytes), {} frees ({} by cold threads), {} moved in; jemalloc {} allocations, {} frees ({} by hot threads), {} fallbacks from hot threads, {} moved in",
        s.hot.allocs,
        s.hot.bytes,
        s.hot.frees,
        s.hot.foreign_frees,
        s.hot.moved,
        s.cold.allocs,
        s.cold.frees,
        s.cold.foreign_frees,
        s.cold.fallbacks,
        s.cold.moved
    );
    code
}
