//! `pipeline`: the feed and the engine in one process on the routing allocator, the
//! hybrid in one process: each thread role takes the route `[routing.roles]` gives it
//! (by default the feed's md thread and the engine's hot thread on a mimalloc arena
//! reserved at start, `routing.arena_mib`, every other thread on jemalloc), every free
//! goes back to the allocator it came from ([`common::routed`]), and with
//! `routing.adaptive = true` the cold roles keep the allocator that served them faster
//! during the warm-up. Writes `routing.json` beside the summaries.
#![deny(unsafe_code)]

use common::alloc::CountingAlloc;
use common::allocators::{hooks, hybrid::Hybrid, Introspect};
use common::routed::{MiArena, RouteStats};
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: CountingAlloc<Hybrid> = CountingAlloc::new(
    Hybrid::new(MiArena::new(), common::allocators::jemalloc::Jemalloc),
    Hybrid::NAME,
);

/// The global allocator, as the pipeline drives it.
struct Global;

impl pipeline::Router for Global {
    fn reserve(&self, bytes: usize) -> Result<std::ops::Range<usize>, String> {
        GLOBAL.inner().hot().reserve(bytes)
    }
    fn set_hot_max_bytes(&self, bytes: usize) {
        GLOBAL.inner().set_hot_max_bytes(bytes);
    }
    fn stats(&self) -> RouteStats {
        GLOBAL.inner().stats()
    }
}

fn main() -> ExitCode {
    pipeline::main_with(hooks(&GLOBAL), Some(&Global))
}
