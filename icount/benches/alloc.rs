//! Instruction counts of one allocation and free through the routing allocator
//! (`common::routed::Hybrid`, the `pipeline` binary's global allocator, without the
//! counting wrapper) beside the same call on jemalloc and mimalloc directly: what
//! routing adds per call, free of the machine's noise. Under valgrind's Callgrind
//! (gungraun), like the `hot` benchmarks, and gated by `scripts/icount-gate`.
//!
//! Each benchmark allocates [`N`] blocks of 64 bytes one after another, writes a byte
//! into each and frees it (`common::alloc::RawBlock`; the allocator's fast path, a block reused every time), after
//! a warm-up of the same calls in `setup`: instructions per pair = the total / [`N`].
//! The routed rows run on a cold-routed thread (to jemalloc) and a hot-routed one (to a
//! heap in the mimalloc arena, reserved in `setup`).

use common::alloc::RawBlock;
use common::allocators::jemalloc::Jemalloc;
use common::allocators::mimalloc::MiMalloc;
use common::routed::{set_thread_route, Hybrid, MiArena, Route};
use gungraun::{library_benchmark, library_benchmark_group, main};
use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;

#[global_allocator]
static GLOBAL: Hybrid = Hybrid::new(MiArena::new(), Jemalloc);
static JEMALLOC: Jemalloc = Jemalloc;
static MIMALLOC: MiMalloc = MiMalloc;

/// Pairs per measured run.
const N: usize = 10_000;

fn layout() -> Layout {
    Layout::from_size_align(64, 8).expect("a valid layout")
}

/// `n` allocations and frees of 64 bytes on `a`, each block written once (through
/// `common::alloc::RawBlock`: the unsafe calls stay in `common`).
fn pairs<A: GlobalAlloc>(a: &'static A, n: usize) -> usize {
    let l = layout();
    let mut seen = 0usize;
    for _ in 0..n {
        let b = RawBlock::new(a, black_box(l));
        seen = seen.wrapping_add(black_box(b.as_ptr()) as usize & 1);
        drop(b);
    }
    seen
}

/// Which allocator a benchmark calls, warmed up.
#[derive(Clone, Copy)]
enum Target {
    Jemalloc,
    Mimalloc,
    RoutedCold,
    RoutedHot,
}

fn setup(target: Target) -> Target {
    match target {
        Target::RoutedHot => {
            GLOBAL
                .hot()
                .reserve(64 << 20)
                .expect("reserve a 64 MiB hot arena");
            set_thread_route(Route::Hot);
        }
        Target::RoutedCold => {
            set_thread_route(Route::Cold);
        }
        Target::Jemalloc | Target::Mimalloc => {}
    }
    run(target, 1000);
    target
}

fn run(target: Target, n: usize) -> usize {
    match target {
        Target::Jemalloc => pairs(&JEMALLOC, n),
        Target::Mimalloc => pairs(&MIMALLOC, n),
        Target::RoutedCold | Target::RoutedHot => pairs(&GLOBAL, n),
    }
}

/// The arena served the hot-routed calls, nothing fell back.
fn check(target: Target) {
    if let Target::RoutedHot = target {
        let s = GLOBAL.stats();
        assert!(s.hot.allocs >= N as u64, "{s:?}");
        assert_eq!(s.cold.fallbacks, 0, "{s:?}");
    }
}

// 64-byte allocation + free pairs, the routing allocator against direct calls.
#[library_benchmark]
#[bench::jemalloc_pairs_10000(args = (Target::Jemalloc), setup = setup, teardown = check)]
#[bench::mimalloc_pairs_10000(args = (Target::Mimalloc), setup = setup, teardown = check)]
#[bench::routed_cold_pairs_10000(args = (Target::RoutedCold), setup = setup, teardown = check)]
#[bench::routed_hot_pairs_10000(args = (Target::RoutedHot), setup = setup, teardown = check)]
fn alloc_free(target: Target) -> Target {
    black_box(run(target, N));
    target
}

library_benchmark_group!(
    name = routing;
    benchmarks = alloc_free
);

main!(library_benchmark_groups = routing);
