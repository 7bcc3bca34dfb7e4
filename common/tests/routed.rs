//! The routing allocator as this test binary's global allocator: hot threads on a
//! mimalloc arena, everything else on jemalloc, checked through the allocators' own
//! statistics (jemalloc's `stats.allocated`, the arena's capacity) and `Routed`'s counts.
//!
//! One test function: the counts are process-wide, and the arena is reserved once.

use common::routed::{
    enter_role, role_index, set_role_route, set_thread_route, ColdVec, HotVec, Hybrid, MiArena,
    Route, HOT_MAX_ALIGN,
};
use std::alloc::{GlobalAlloc, Layout};
use tikv_jemallocator::Jemalloc;

#[global_allocator]
static GLOBAL: Hybrid = Hybrid::new(MiArena::new(), Jemalloc);

/// The arena: 64 MiB.
const ARENA: usize = 64 << 20;
/// Bytes per block.
const BLOCK: usize = 1 << 10;
/// Blocks per round: 1 MiB.
const BLOCKS: usize = 1024;

fn jemalloc_allocated() -> u64 {
    tikv_jemalloc_ctl::epoch::advance().unwrap();
    tikv_jemalloc_ctl::stats::allocated::read().unwrap() as u64
}

fn layout() -> Layout {
    Layout::from_size_align(BLOCK, 8).unwrap()
}

/// Allocates `BLOCKS` blocks on a new thread of route `route` (into `ptrs`, allocated by
/// the caller), each filled with its index.
fn alloc_on(route: Route, mut ptrs: Vec<usize>) -> Vec<usize> {
    std::thread::spawn(move || {
        set_thread_route(route);
        for (i, p) in ptrs.iter_mut().enumerate() {
            // SAFETY: a non-zero layout; the block is written within it.
            unsafe {
                let b = GLOBAL.alloc(layout());
                assert!(!b.is_null());
                b.write_bytes(i as u8, BLOCK);
                *p = b as usize;
            }
        }
        set_thread_route(Route::Cold);
        ptrs
    })
    .join()
    .unwrap()
}

/// Frees every block of `ptrs` on a new thread of route `route`, checking its contents.
fn free_on(route: Route, ptrs: Vec<usize>) -> Vec<usize> {
    std::thread::spawn(move || {
        set_thread_route(route);
        for (i, &p) in ptrs.iter().enumerate() {
            // SAFETY: each block was allocated with `layout()` and is freed once.
            unsafe {
                assert_eq!(*(p as *const u8).add(BLOCK - 1), i as u8);
                GLOBAL.dealloc(p as *mut u8, layout());
            }
        }
        set_thread_route(Route::Cold);
        ptrs
    })
    .join()
    .unwrap()
}

#[test]
fn blocks_go_home_across_threads_and_the_arena_falls_back_when_full() {
    let range = GLOBAL.hot().reserve(ARENA).expect("reserve the hot arena");
    assert!(range.len() >= ARENA, "{range:?}");
    assert!(GLOBAL.hot().reserve(ARENA).is_err(), "reserved once only");
    let in_arena = move |p: usize| (range.start..range.end).contains(&p);
    let ptrs = vec![0usize; BLOCKS];

    // Hot-allocated, cold-freed, 200 rounds of 1 MiB through a 64 MiB arena: the arena
    // never fills (every block went home) and jemalloc never holds them.
    let before = GLOBAL.stats();
    let je0 = jemalloc_allocated();
    let mut ptrs = ptrs;
    for _ in 0..200 {
        ptrs = alloc_on(Route::Hot, ptrs);
        assert!(ptrs.iter().all(|&p| in_arena(p)));
        ptrs = free_on(Route::Cold, ptrs);
    }
    let je1 = jemalloc_allocated();
    let s = GLOBAL.stats();
    assert_eq!(
        s.cold.fallbacks, before.cold.fallbacks,
        "no fallback: blocks went home"
    );
    assert!(s.hot.allocs - before.hot.allocs >= 200 * BLOCKS as u64);
    assert!(s.hot.foreign_frees - before.hot.foreign_frees >= 200 * BLOCKS as u64);
    assert!(
        je1.abs_diff(je0) < (BLOCKS * BLOCK) as u64 / 4,
        "jemalloc held {je0} then {je1} bytes"
    );

    // Cold-allocated, hot-freed: jemalloc's own count goes up by the blocks and back.
    let je0 = jemalloc_allocated();
    ptrs = alloc_on(Route::Cold, ptrs);
    assert!(ptrs.iter().all(|&p| !in_arena(p)));
    let je1 = jemalloc_allocated();
    free_on(Route::Hot, ptrs);
    let je2 = jemalloc_allocated();
    let held = (BLOCKS * BLOCK) as u64;
    assert!(je1 >= je0 + held, "jemalloc held {je0}, then {je1}");
    assert!(
        je2 + held <= je1 + held / 4,
        "jemalloc held {je1}, then {je2}"
    );

    // Realloc across routes keeps the contents, both ways.
    // SAFETY: every block is used within its layout and freed once with it.
    unsafe {
        let l = Layout::from_size_align(100, 16).unwrap();
        let p = GLOBAL.alloc(l);
        for i in 0..100 {
            *p.add(i) = i as u8;
        }
        let p = p as usize;
        let q = std::thread::spawn(move || {
            set_thread_route(Route::Hot);
            let q = GLOBAL.realloc(p as *mut u8, l, 5000) as usize;
            set_thread_route(Route::Cold);
            q
        })
        .join()
        .unwrap();
        assert!(in_arena(q));
        let q = q as *mut u8;
        assert!((0..100).all(|i| *q.add(i) == i as u8));
        let l5000 = Layout::from_size_align(5000, 16).unwrap();
        let r = GLOBAL.realloc(q, l5000, 70_000);
        assert!(!in_arena(r as usize));
        assert!((0..100).all(|i| *r.add(i) == i as u8));
        GLOBAL.dealloc(r, Layout::from_size_align(70_000, 16).unwrap());
    }

    // Over-aligned: falls back, counted, aligned as asked.
    let f0 = GLOBAL.stats().cold.fallbacks;
    let aligned = std::thread::spawn(|| {
        set_thread_route(Route::Hot);
        let l = Layout::from_size_align(64, 4 * HOT_MAX_ALIGN).unwrap();
        // SAFETY: a non-zero layout, freed with it.
        let p = unsafe { GLOBAL.alloc(l) } as usize;
        // SAFETY: as above.
        unsafe { GLOBAL.dealloc(p as *mut u8, l) };
        set_thread_route(Route::Cold);
        p
    })
    .join()
    .unwrap();
    assert!(!in_arena(aligned) && aligned % (4 * HOT_MAX_ALIGN) == 0);
    assert_eq!(GLOBAL.stats().cold.fallbacks, f0 + 1);

    // A full arena: 1 MiB blocks until the arena refuses; the rest fall back, counted.
    let (hot, fell) = std::thread::spawn(move || {
        set_thread_route(Route::Hot);
        let l = Layout::from_size_align(1 << 20, 8).unwrap();
        let f0 = GLOBAL.stats().cold.fallbacks;
        let mut blocks = [0usize; 256];
        for b in blocks.iter_mut() {
            // SAFETY: a non-zero layout.
            *b = unsafe { GLOBAL.alloc(l) } as usize;
            assert!(*b != 0);
        }
        let fell = GLOBAL.stats().cold.fallbacks - f0;
        let hot = blocks.iter().filter(|&&p| in_arena(p)).count();
        for &b in &blocks {
            // SAFETY: allocated above with `l`, freed once.
            unsafe { GLOBAL.dealloc(b as *mut u8, l) };
        }
        set_thread_route(Route::Cold);
        (hot, fell)
    })
    .join()
    .unwrap();
    assert!(
        hot > 0 && hot < 256,
        "{hot} of 256 MiB-blocks in a 64 MiB arena"
    );
    assert_eq!(
        fell as usize,
        256 - hot,
        "every block past the arena fell back"
    );

    // Roles: a thread takes its role's route, and a route change applies to the
    // role's next allocations (the block allocated before stays where it is).
    let (before, after) = std::thread::spawn(|| {
        assert!(enter_role("engine_report"));
        let l = Layout::from_size_align(256, 8).unwrap();
        // SAFETY: non-zero layouts, each freed once with it.
        unsafe {
            let a = GLOBAL.alloc(l);
            set_role_route(role_index("engine_report").unwrap(), Route::Hot);
            let b = GLOBAL.alloc(l);
            set_role_route(role_index("engine_report").unwrap(), Route::Cold);
            GLOBAL.dealloc(a, l);
            GLOBAL.dealloc(b, l);
            (a as usize, b as usize)
        }
    })
    .join()
    .unwrap();
    assert!(
        !in_arena(before) && in_arena(after),
        "{before:#x} {after:#x}"
    );
    let md = std::thread::spawn(|| {
        assert!(enter_role("feed_md"));
        Box::new(7u64).as_ref() as *const u64 as usize
    })
    .join()
    .unwrap();
    assert!(in_arena(md), "feed_md is routed to the arena by default");

    // Per-type routing: a `ColdVec` grown on a hot thread stays in jemalloc, a `HotVec`
    // grown on a cold thread lives in the arena; both keep their contents and are
    // freed home from the other kind of thread.
    let (cold, hot) = std::thread::spawn(move || {
        set_thread_route(Route::Hot);
        let mut cold: ColdVec<u64> = ColdVec::new_in(common::routed::Cold);
        cold.extend(0..10_000u64);
        let plain = Box::new([1u8; 64]);
        assert!(
            in_arena(plain.as_ptr() as usize),
            "the thread itself is hot"
        );
        set_thread_route(Route::Cold);
        let mut hot: HotVec<u64> = HotVec::new_in(common::routed::Hot);
        hot.extend(0..10_000u64);
        (cold, hot)
    })
    .join()
    .unwrap();
    assert!(!in_arena(cold.as_ptr() as usize));
    assert!(in_arena(hot.as_ptr() as usize));
    assert!(cold.iter().copied().eq(0..10_000) && hot.iter().copied().eq(0..10_000));
    let hot_frees = GLOBAL.stats().hot.frees;
    std::thread::spawn(move || {
        set_thread_route(Route::Hot);
        drop(cold);
        set_thread_route(Route::Cold);
    })
    .join()
    .unwrap();
    drop(hot);
    assert_eq!(
        GLOBAL.stats().hot.frees,
        hot_frees + 1,
        "the HotVec went home"
    );
}
