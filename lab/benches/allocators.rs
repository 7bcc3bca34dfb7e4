//! Allocator microbenchmarks: the system allocator (glibc), jemalloc, mimalloc, tcmalloc
//! and a bumpalo arena, called *directly* and side by side in one process, for the
//! allocation patterns of the brief (`../shared/seed/`, "Бенчмарк для выбора оптимального
//! аллокатора").
//!
//! ```text
//! cargo bench -p lab --bench allocators                      # all rows, about 3 minutes
//! cargo bench -p lab --bench allocators -- small_64B         # a filter (criterion regex)
//! GLIBC_TUNABLES=glibc.pthread.rseq=0 cargo bench -p lab --bench allocators
//!                                                            # tcmalloc with per-CPU caches
//! cargo test -p lab --benches                                # each row once, as a test
//! ```
//!
//! # Rows
//!
//! Every malloc-style row allocates with `GlobalAlloc::alloc`, writes one byte (so the
//! memory is really there: a page fault is part of the cost when an allocator hands out
//! fresh pages), and frees with `GlobalAlloc::dealloc`. Alignment is 8 bytes, as for an
//! order struct. Criterion's throughput is one element per allocation (an alloc + free
//! pair), so `thrpt` reads as allocations per second and `time / elements` as the time
//! per allocation.
//!
//! - `{small,medium,large}_{size}B_{fifo,random}`: a batch of [`BATCH`] allocations of one
//!   size, then all of them freed, in allocation order (`fifo`) or in a shuffled order
//!   fixed by [`SEED`] (`random`). Small: 16, 64, 200 B (orders, ticks); medium: 512,
//!   2048 B (message buffers); large: 16, 64 KiB (history). `bumpalo` appears in the `fifo`
//!   rows only: an arena frees nothing one by one, the whole batch goes with one `reset()`;
//!   its `random` row would run the same code.
//! - `tick_6x64B_6x240B`: one trading tick: six order-sized (64 B) and six message-sized
//!   (240 B) objects, interleaved, touched, then all freed; `bumpalo` resets its arena per
//!   tick. Twelve elements per iteration.
//! - `threads2_small_64B`: two threads at once, each running the `small_64B_fifo` batch with
//!   its own allocations (`bumpalo`: one arena per thread). Time is the slower thread's,
//!   elements are per thread, so the row compares with `small_64B_fifo` directly: the
//!   difference is what the other thread's activity costs.
//! - `timed_overhead_64B`: the `small_64B_fifo` batch through `common::alloc::CountingAlloc`
//!   over glibc and over jemalloc, as the binaries' global allocators wrap them: untimed
//!   (`_counted`, what every thread pays) and timed (`_counted_timed`, a cold thread in the
//!   timed-allocator mode); the difference is the timer's cost per alloc + free pair.
//! - `routing_overhead_64B`: the `small_64B_fifo` batch on jemalloc and on mimalloc
//!   directly, and through `common::routed::Hybrid` (the single-process pipeline's global
//!   allocator) from a cold thread (`routed_cold`, to jemalloc) and a hot one
//!   (`routed_hot`, to a mimalloc heap in its exclusive 64 MiB arena): what routing adds
//!   per alloc + free pair.
//! - `cross_thread_64B`: producer/consumer: one thread allocates batches of 64 B blocks and
//!   hands each batch over (spinning on a channel, a few hand-offs per thousand
//!   allocations), the other frees them. Every free is a remote free. Pipelined: the time
//!   per element is the slower side's. No `bumpalo` row: an arena is single-threaded
//!   (`Bump` is not `Sync`) and cannot take frees from another thread.
//!
//! The worker threads of the two-thread rows are pinned one per core (the first two of
//! the cores this process may use, read once at start-up) when there are at least two;
//! the criterion thread that starts them only waits. Unpinned, both workers could share a
//! core for a whole scheduler slice, and a spinning hand-off would then cost milliseconds.
//! Criterion runs rows one after the other, not interleaved: compare rows of one run only,
//! and repeat the run. On the 2-core development machine one cell moved by up to 1.5×
//! between runs, and the two-thread rows of a whole run by 2–7× (the host's placement of
//! the two vCPUs); the order of the allocators within a run was much steadier.
//!
//! # tcmalloc and rseq
//!
//! With glibc 2.35+ the C library registers rseq for every thread, and tcmalloc then runs
//! without its per-CPU caches unless the process starts with
//! `GLIBC_TUNABLES=glibc.pthread.rseq=0`. The bench asks tcmalloc which state applies
//! (`common::allocators::tcmalloc::per_cpu_caches_active`) and prints it first. That call
//! matters twice: tcmalloc switches its per-CPU caches on from a static initialiser in
//! `cpu_cache.o`, which the linker only keeps when something refers to that object;
//! without the call this binary measured tcmalloc without per-CPU caches in both states.
//!
//! # No `unsafe` here
//!
//! `GlobalAlloc::alloc`/`dealloc` must be called in `unsafe` blocks and the project keeps those in
//! `common`: every allocation goes through `common::alloc::RawBlock`, which allocates
//! from a given allocator, writes one byte and frees on drop.

#![deny(unsafe_code)]

use bumpalo::Bump;
use common::alloc::{CountingAlloc, RawBlock};
use common::allocators;
use common::cores::{allowed_cores, pin_current};
use common::routed::{set_thread_route, Hybrid, MiArena, Route};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use mimalloc::MiMalloc;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::mem::MaybeUninit;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::{Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};
use tcmalloc_better::TCMalloc;
use tikv_jemallocator::Jemalloc;

/// Allocations per batch in the size-class and thread rows.
const BATCH: usize = 1000;
/// Seed of the shuffled free order of the `random` rows.
const SEED: u64 = 0x5EED_A110C;
/// Alignment of every allocation (an order struct's).
const ALIGN: usize = 8;
/// Threads of the `threads2` row (the development machine has two cores).
const THREADS: usize = 2;
/// Batches in flight between producer and consumer in the `cross_thread` row.
const IN_FLIGHT: usize = 4;
/// One tick of the trading-shaped row: (order object, outgoing message) sizes, six pairs.
const TICK_PAIRS: usize = 6;
const TICK_SIZES: (usize, usize) = (64, 240);

const SMALL: [usize; 3] = [16, 64, 200];
const MEDIUM: [usize; 2] = [512, 2048];
const LARGE: [usize; 2] = [16 << 10, 64 << 10];

/// The cores this process may run on, read once at start-up before anything is pinned.
static CORES: OnceLock<Vec<usize>> = OnceLock::new();

/// Pins the calling worker thread to the `index`-th allowed core, if there are enough
/// cores for one worker per core; otherwise leaves it to the scheduler.
fn pin_worker(index: usize) {
    let cores = CORES.get_or_init(allowed_cores);
    if cores.len() >= THREADS {
        pin_current(cores[index % cores.len()]);
    }
}

/// Runs `$body` once per malloc-style allocator, with `$name` (the row name) and `$a`
/// (a `&'static` allocator of the concrete type, so calls are static, as they are for a
/// `#[global_allocator]`).
macro_rules! for_each_malloc {
    (|$name:ident, $a:ident| $body:expr) => {{
        {
            let ($name, $a): (&str, &'static System) = ("system", &System);
            $body;
        }
        {
            let ($name, $a): (&str, &'static Jemalloc) = ("jemalloc", &Jemalloc);
            $body;
        }
        {
            let ($name, $a): (&str, &'static MiMalloc) = ("mimalloc", &MiMalloc);
            $body;
        }
        {
            let ($name, $a): (&str, &'static TCMalloc) = ("tcmalloc", &TCMalloc);
            $body;
        }
    }};
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, ALIGN).expect("benchmark sizes are valid layouts")
}

/// Allocates `free_order.len()` blocks of `layout` into `slots`, then frees them in
/// `free_order` (a permutation of the slot indices).
#[inline(always)]
fn batch<A: GlobalAlloc + ?Sized + 'static>(
    alloc: &'static A,
    layout: Layout,
    free_order: &[usize],
    slots: &mut Vec<Option<RawBlock<A>>>,
) {
    slots.clear();
    for _ in 0..free_order.len() {
        let block = RawBlock::new(alloc, layout);
        black_box(block.as_ptr());
        slots.push(Some(block));
    }
    for &i in free_order {
        drop(black_box(slots[i].take()));
    }
}

/// Allocates `words` u64 words from the arena and writes the first one (safe code: the
/// uninitialised fill compiles to nothing).
#[inline(always)]
fn bump_alloc(bump: &Bump, words: usize) -> &mut [MaybeUninit<u64>] {
    let slice = bump.alloc_slice_fill_with(words, |_| MaybeUninit::uninit());
    slice[0] = MaybeUninit::new(1);
    slice
}

/// The arena's version of [`batch`]: `n` allocations, then one `reset()`.
#[inline(always)]
fn bump_batch(bump: &mut Bump, words: usize, n: usize) {
    for _ in 0..n {
        black_box(bump_alloc(bump, words).as_ptr());
    }
    bump.reset();
}

/// Runs `work` `iters` times on each of [`THREADS`] threads at once, each with its own
/// `setup()` state, after one untimed warm-up call per thread; returns the slower
/// thread's time.
fn on_threads<S>(
    iters: u64,
    setup: impl Fn() -> S + Sync,
    work: impl Fn(&mut S) + Sync,
) -> Duration {
    let barrier = Barrier::new(THREADS);
    thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|index| {
                let (setup, work, barrier) = (&setup, &work, &barrier);
                scope.spawn(move || {
                    pin_worker(index);
                    let mut state = setup();
                    work(&mut state);
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        work(&mut state);
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("benchmark thread panicked"))
            .max()
            .unwrap_or_default()
    })
}

/// Receives by spinning (no sleep, no futex wake-up on the measured path); yields the core
/// now and then in case the other side shares it.
fn spin_recv<T>(rx: &Receiver<T>) -> T {
    let mut spins = 0u32;
    loop {
        match rx.try_recv() {
            Ok(value) => return value,
            Err(TryRecvError::Empty) => {
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(1024) {
                    thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
            Err(TryRecvError::Disconnected) => panic!("the other benchmark thread ended early"),
        }
    }
}

/// `iters` batches of [`BATCH`] blocks allocated on one thread and freed on another;
/// returns the slower side's time.
fn producer_consumer<A: GlobalAlloc + Sync + ?Sized + 'static>(
    alloc: &'static A,
    layout: Layout,
    iters: u64,
) -> Duration {
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<RawBlock<A>>>(IN_FLIGHT);
    let (empty_tx, empty_rx) = mpsc::sync_channel::<Vec<RawBlock<A>>>(IN_FLIGHT);
    for _ in 0..IN_FLIGHT {
        empty_tx
            .send(Vec::with_capacity(BATCH))
            .expect("the channel has room for every batch");
    }
    let barrier = &Barrier::new(2);
    thread::scope(|scope| {
        let producer = scope.spawn(move || {
            pin_worker(0);
            let warm: Vec<_> = (0..BATCH).map(|_| RawBlock::new(alloc, layout)).collect();
            drop(warm);
            barrier.wait();
            let start = Instant::now();
            for _ in 0..iters {
                let mut blocks = spin_recv(&empty_rx);
                for _ in 0..BATCH {
                    let block = RawBlock::new(alloc, black_box(layout));
                    black_box(block.as_ptr());
                    blocks.push(block);
                }
                full_tx
                    .send(blocks)
                    .expect("the consumer outlives the producer");
            }
            start.elapsed()
        });
        let consumer = scope.spawn(move || {
            pin_worker(1);
            barrier.wait();
            let start = Instant::now();
            for _ in 0..iters {
                let mut blocks = spin_recv(&full_rx);
                blocks.clear(); // every free is a remote free
                                // Only IN_FLIGHT vectors exist, so this never blocks; once the producer
                                // is done the send may fail, which is fine.
                let _ = empty_tx.send(blocks);
            }
            start.elapsed()
        });
        let producer = producer.join().expect("producer panicked");
        let consumer = consumer.join().expect("consumer panicked");
        producer.max(consumer)
    })
}

fn size_class(c: &mut Criterion, class: &str, sizes: &[usize]) {
    let fifo: Vec<usize> = (0..BATCH).collect();
    let mut random = fifo.clone();
    random.shuffle(&mut SmallRng::seed_from_u64(SEED));
    for &size in sizes {
        for (order_name, order) in [("fifo", &fifo), ("random", &random)] {
            let mut g = c.benchmark_group(format!("{class}_{size}B_{order_name}"));
            g.throughput(Throughput::Elements(BATCH as u64));
            let layout = layout(size);
            for_each_malloc!(|name, a| {
                let mut slots = Vec::with_capacity(BATCH);
                g.bench_function(name, |b| {
                    b.iter(|| batch(a, black_box(layout), black_box(order), &mut slots));
                });
            });
            if order_name == "fifo" {
                bench_bump_batch(&mut g, size);
            }
            g.finish();
        }
    }
}

fn bench_bump_batch(g: &mut BenchmarkGroup<'_, WallTime>, size: usize) {
    let words = size / 8;
    let mut bump = Bump::with_capacity(BATCH * size + 4096);
    g.bench_function("bumpalo", |b| {
        b.iter(|| bump_batch(&mut bump, black_box(words), BATCH));
    });
}

/// The counting wrapper over glibc and over jemalloc, as the binaries declare their
/// global allocators.
static COUNTED_SYSTEM: CountingAlloc<System> = CountingAlloc::new(System, "system");
static COUNTED_JEMALLOC: CountingAlloc<Jemalloc> = CountingAlloc::new(Jemalloc, "jemalloc");

/// What the timed-allocator mode costs per call: the `small_64B_fifo` batch through the
/// counting wrapper, untimed (what every thread pays) and timed (a cold thread with
/// `cold.time_allocator`), each allocator's two rows side by side.
fn timed_overhead(c: &mut Criterion) {
    let fifo: Vec<usize> = (0..BATCH).collect();
    let layout = layout(64);
    let mut g = c.benchmark_group("timed_overhead_64B");
    g.throughput(Throughput::Elements(BATCH as u64));
    fn rows<A: GlobalAlloc + Sync + 'static>(
        g: &mut BenchmarkGroup<'_, WallTime>,
        name: &str,
        a: &'static A,
        layout: Layout,
        order: &[usize],
    ) {
        let mut slots = Vec::with_capacity(BATCH);
        g.bench_function(format!("{name}_counted"), |b| {
            b.iter(|| batch(a, black_box(layout), black_box(order), &mut slots));
        });
        g.bench_function(format!("{name}_counted_timed"), |b| {
            common::alloc::time_this_thread("bench_timed_overhead");
            b.iter(|| batch(a, black_box(layout), black_box(order), &mut slots));
            common::alloc::untime_this_thread();
        });
    }
    rows(&mut g, "system", &COUNTED_SYSTEM, layout, &fifo);
    rows(&mut g, "jemalloc", &COUNTED_JEMALLOC, layout, &fifo);
    g.finish();
}

/// The routing allocator of the single-process pipeline, as its global allocator is.
static HYBRID: Hybrid = Hybrid::new(MiArena::new(), Jemalloc);

/// What routing costs per call: the `small_64B_fifo` batch directly on jemalloc and on
/// mimalloc, then through `common::routed::Hybrid` from a cold thread (to jemalloc) and
/// from a hot one (to its mimalloc heap in the 64 MiB arena): the difference between
/// `routed_cold` and `jemalloc`, and between `routed_hot` and `mimalloc`, is the
/// routing (a thread-local read, the address check on free, two counter adds per call).
fn routing_overhead(c: &mut Criterion) {
    static RESERVED: OnceLock<()> = OnceLock::new();
    RESERVED.get_or_init(|| {
        HYBRID
            .hot()
            .reserve(64 << 20)
            .expect("reserve the hot arena");
    });
    let fifo: Vec<usize> = (0..BATCH).collect();
    let layout = layout(64);
    let mut g = c.benchmark_group("routing_overhead_64B");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut slots = Vec::with_capacity(BATCH);
    g.bench_function("jemalloc", |b| {
        b.iter(|| batch(&Jemalloc, black_box(layout), black_box(&fifo), &mut slots));
    });
    let mut slots = Vec::with_capacity(BATCH);
    g.bench_function("mimalloc", |b| {
        b.iter(|| batch(&MiMalloc, black_box(layout), black_box(&fifo), &mut slots));
    });
    let mut slots = Vec::with_capacity(BATCH);
    g.bench_function("routed_cold", |b| {
        b.iter(|| batch(&HYBRID, black_box(layout), black_box(&fifo), &mut slots));
    });
    let mut slots = Vec::with_capacity(BATCH);
    g.bench_function("routed_hot", |b| {
        let before = set_thread_route(Route::Hot);
        b.iter(|| batch(&HYBRID, black_box(layout), black_box(&fifo), &mut slots));
        set_thread_route(before);
    });
    g.finish();
    let s = HYBRID.stats();
    assert_eq!(
        s.cold.fallbacks, 0,
        "every hot allocation came from the arena"
    );
}

fn small(c: &mut Criterion) {
    size_class(c, "small", &SMALL);
}

fn medium(c: &mut Criterion) {
    size_class(c, "medium", &MEDIUM);
}

fn large(c: &mut Criterion) {
    size_class(c, "large", &LARGE);
}

fn tick(c: &mut Criterion) {
    let (order, message) = (layout(TICK_SIZES.0), layout(TICK_SIZES.1));
    let mut g = c.benchmark_group(format!(
        "tick_{TICK_PAIRS}x{}B_{TICK_PAIRS}x{}B",
        TICK_SIZES.0, TICK_SIZES.1
    ));
    g.throughput(Throughput::Elements(2 * TICK_PAIRS as u64));
    for_each_malloc!(|name, a| {
        let mut live = Vec::with_capacity(2 * TICK_PAIRS);
        g.bench_function(name, |b| {
            b.iter(|| {
                for _ in 0..TICK_PAIRS {
                    let o = RawBlock::new(a, black_box(order));
                    let m = RawBlock::new(a, black_box(message));
                    black_box((o.as_ptr(), m.as_ptr()));
                    live.push(o);
                    live.push(m);
                }
                live.clear();
            });
        });
    });
    let mut bump = Bump::with_capacity(4096);
    let (order_words, message_words) = (TICK_SIZES.0 / 8, TICK_SIZES.1 / 8);
    g.bench_function("bumpalo", |b| {
        b.iter(|| {
            for _ in 0..TICK_PAIRS {
                black_box(bump_alloc(&bump, black_box(order_words)).as_ptr());
                black_box(bump_alloc(&bump, black_box(message_words)).as_ptr());
            }
            bump.reset();
        });
    });
    g.finish();
}

fn threads(c: &mut Criterion) {
    let size = 64;
    let mut g = c.benchmark_group(format!("threads{THREADS}_small_{size}B"));
    g.throughput(Throughput::Elements(BATCH as u64));
    let layout = layout(size);
    let fifo: Vec<usize> = (0..BATCH).collect();
    for_each_malloc!(|name, a| {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                on_threads(
                    iters,
                    || Vec::with_capacity(BATCH),
                    |slots| batch(a, black_box(layout), black_box(&fifo), slots),
                )
            });
        });
    });
    g.bench_function("bumpalo", |b| {
        b.iter_custom(|iters| {
            on_threads(
                iters,
                || Bump::with_capacity(BATCH * size + 4096),
                |bump| bump_batch(bump, black_box(size / 8), BATCH),
            )
        });
    });
    g.finish();
}

fn cross_thread(c: &mut Criterion) {
    let size = 64;
    let mut g = c.benchmark_group(format!("cross_thread_{size}B"));
    g.throughput(Throughput::Elements(BATCH as u64));
    let layout = layout(size);
    for_each_malloc!(|name, a| {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| producer_consumer(a, layout, iters));
        });
    });
    // No bumpalo row: an arena cannot take frees from another thread.
    g.finish();
}

/// Prints the allocator versions, the core plan and the state that changes tcmalloc's
/// numbers, before any row runs.
fn print_environment() {
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    let rseq_off = tunables
        .split(':')
        .any(|t| t.trim() == "glibc.pthread.rseq=0");
    println!(
        "allocators bench: {} CPUs; GLIBC_TUNABLES={tunables:?}",
        thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!(
        "versions: system = glibc {}, jemalloc {}, mimalloc {}, tcmalloc {}",
        allocators::system::version(),
        allocators::jemalloc::version(),
        allocators::mimalloc::version(),
        allocators::tcmalloc::version(),
    );
    // Asking tcmalloc (not just reading the variable) also links the code that
    // activates its per-CPU caches; see `common::allocators::tcmalloc`.
    let per_cpu = allocators::tcmalloc::per_cpu_caches_active();
    let expected = if rseq_off {
        "glibc.pthread.rseq=0: glibc leaves rseq to tcmalloc"
    } else {
        "glibc (>= 2.35) registers rseq first; GLIBC_TUNABLES=glibc.pthread.rseq=0 frees it"
    };
    println!(
        "tcmalloc: per-CPU caches {} ({expected})",
        if per_cpu { "ON" } else { "OFF" }
    );
    if per_cpu != rseq_off {
        println!("tcmalloc: WARNING: the per-CPU state is not what GLIBC_TUNABLES predicts");
    }
    let background = TCMalloc::process_background_actions_thread().is_some();
    println!("tcmalloc: background actions thread started: {background}");
    let cores = CORES.get_or_init(allowed_cores);
    if cores.len() >= THREADS {
        println!(
            "two-thread rows: workers pinned to cores {:?}",
            &cores[..THREADS]
        );
    } else {
        println!(
            "two-thread rows: only {} allowed core(s), workers not pinned",
            cores.len()
        );
    }
}

/// Short by default (about 3 minutes for every row on two cores); criterion's command-line
/// options (`--measurement-time`, `--sample-size`, ...) override it.
fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(400))
        .measurement_time(Duration::from_millis(1000))
        .nresamples(20_000)
}

criterion::criterion_group! {
    name = benches;
    config = config();
    targets = small, medium, large, tick, threads, cross_thread, timed_overhead, routing_overhead
}

fn main() {
    print_environment();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
