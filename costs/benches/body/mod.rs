//! The benchmark bodies every `costs_<allocator>` binary runs with its own global
//! allocator: what is measured, on which input, and what is left out.
//!
//! # What each benchmark measures
//!
//! - `engine_tick` (ids `heap_ticks_*`, `arena_ticks_*`, `pool_ticks_*`): the engine hot
//!   thread's per-tick work, [`Scratch::handle`] through [`Decider`] (arena reset, book
//!   and strategy, order encoding and hand-off to the order channel), once per tick over
//!   [`TICKS`] ticks, in each scratch mode of [`ScratchMode`]. The engine is warmed up
//!   first with [`ENGINE_WARMUP`] ticks (every symbol's window full, quotes working), as
//!   `icount`'s `engine_tick` is; the heap mode allocates and frees its scratch memory
//!   through the global allocator every tick, the arena and pool modes do not.
//! - `history_push` (ids `pushes_*`): the feed history thread's [`History::push`], once
//!   per tick over [`PUSHES`] ticks, with the history already full at its retention
//!   ([`RETENTION`] ticks, `configs/default.toml`) and evicting for
//!   [`HISTORY_WARMUP`] pushes, so that every measured push evicts the oldest tick and
//!   the measured pushes allocate and free 16 KiB chunks at their steady rate.
//!
//! The input is the ticks the feed would generate from `configs/default.toml` (its seed,
//! symbols and schedule), the same on every run and with every allocator.
//!
//! # The measured region
//!
//! Each workload has two ids: the one ending in `_10000` handles the ticks, the one
//! ending in `_0` none, after the same setup (the `0` run builds the same input and
//! truncates it). A cost per tick
//! is the difference of the two runs divided by the ticks, so whatever is outside the
//! loop cancels:
//!
//! - under Callgrind gungraun counts only the benchmark function (setup and teardown are
//!   outside it), and the difference removes the few instructions of the call itself;
//! - under Cachegrind (valgrind 3.19 has no client requests to start and stop it) the
//!   whole process is counted, and the difference removes the start-up, the setup and
//!   the teardown, which are the same in both runs. The teardown checks the result and
//!   then forgets the input instead of dropping it, so that freeing what the loop left
//!   behind is not counted either.
//!
//! The teardown also prints, on stderr, one `costs-report` line with the allocator (its
//! version, and for tcmalloc whether its per-CPU caches were on) and the global
//! allocations and frees of the loop, which `scripts/costs` reads.

use common::alloc::{thread_counts, AllocCounts};
use common::config::{Config, Scratch as ScratchMode};
use common::hop::HopRx;
use common::tick::Tick;
use engine::decider::Decider;
use engine::hot::Scratch;
use engine::order::OrderMsg;
use feed::history::History;
use gungraun::{library_benchmark, library_benchmark_group};
use std::hint::black_box;

/// Ticks the engine handles per measured run.
pub const TICKS: usize = 10_000;
/// Ticks the engine handles in setup before the measured ones (as in `icount`).
pub const ENGINE_WARMUP: usize = 1_000;
/// Pushes into the history per measured run.
pub const PUSHES: usize = 10_000;
/// Ticks the history keeps: `configs/default.toml`'s `retention_ticks`, so that the
/// history is as large as the feed's (32 MiB of ticks, four times the simulated last
/// level cache).
pub const RETENTION: u64 = 500_000;
/// Pushes after the history first reaches [`RETENTION`] and before the measured ones:
/// enough for every symbol's oldest chunk to have been evicted and freed (the slowest
/// symbol, 15% of the ticks, empties a 256-tick chunk in about 1,700 pushes).
pub const HISTORY_WARMUP: usize = 10_000;

/// The first `n` ticks the feed generates for the default scenario, with the second of
/// the run each is due in and `seq` numbered from 1 as the publisher numbers it (time
/// stamps left 0).
fn feed_ticks(config: &Config, n: usize) -> Vec<(Tick, u64)> {
    feed::gen::scheduled(config, n)
        .into_iter()
        .zip(1..)
        .map(|((due_ps, mut tick), seq)| {
            tick.seq = seq;
            (tick, due_ps / 1_000_000_000_000)
        })
        .collect()
}

/// Prints the `costs-report` line of one run (see the module documentation).
fn report(workload: &str, variant: &str, handled: usize, loop_counts: AllocCounts) {
    let allocator = crate::allocator();
    eprintln!(
        "costs-report\t{workload}\t{variant}\t{handled}\t{}\t{}\t{}\t{}\t{}",
        loop_counts.allocs,
        loop_counts.frees,
        loop_counts.reallocs,
        allocator.name,
        (allocator.version)(),
    );
}

/// The engine's hot-thread state in one scratch mode, warmed up, and the ticks to handle.
pub struct EngineInput {
    mode: ScratchMode,
    decider: Decider,
    scratch: Scratch,
    ticks: Vec<Tick>,
    /// Kept open (and empty) so that every order is handed off, as in the engine.
    orders_rx: HopRx<OrderMsg>,
    /// Orders handed off during the warm-up.
    warmup_orders: u64,
    /// The thread's allocation counts when setup ended.
    counts: AllocCounts,
}

fn setup_engine(mode: ScratchMode, ticks: usize) -> EngineInput {
    crate::prepare();
    let config = Config::shipped_default();
    let (orders_tx, mut orders_rx) =
        common::hop::bounded(config.cold.channel, config.engine.order_channel);
    let mut decider = Decider::new(&config, orders_tx);
    // As the hot thread creates it (`engine::hot::thread`).
    let mut scratch = match mode {
        ScratchMode::Arena => Scratch::arena(config.engine.arena_bytes),
        ScratchMode::Heap => Scratch::Heap,
        ScratchMode::Pool => Scratch::pool(&config.engine),
    };
    let mut all: Vec<Tick> = feed_ticks(&config, ENGINE_WARMUP + TICKS)
        .into_iter()
        .map(|(tick, _)| tick)
        .collect();
    for tick in &all[..ENGINE_WARMUP] {
        scratch.handle(&mut decider, tick);
    }
    orders_rx.drain();
    // The same vector in every run: the measured ticks, or none of them.
    all.copy_within(ENGINE_WARMUP.., 0);
    all.truncate(ticks);
    drop(config);
    EngineInput {
        mode,
        warmup_orders: decider.orders,
        decider,
        scratch,
        ticks: all,
        orders_rx,
        counts: thread_counts(),
    }
}

/// Every order of the measured ticks was encoded and handed off, the pool never fell
/// back to the global allocator; then the report, and the input is forgotten (see the
/// module documentation).
fn check_engine(input: EngineInput) {
    let counts = thread_counts().since(&input.counts);
    let orders = input.decider.orders - input.warmup_orders;
    assert_eq!(input.decider.orders_dropped, 0, "orders dropped");
    assert_eq!(input.decider.unknown_symbols, 0, "unknown symbols");
    assert_eq!(orders, input.orders_rx.len() as u64, "orders handed off");
    assert!(orders > 0 || input.ticks.is_empty(), "no orders");
    if let Some(pool) = input.scratch.pool_stats() {
        assert_eq!(
            pool.fallbacks, 0,
            "the pool fell back to the global allocator"
        );
    }
    report("engine_tick", input.mode.name(), input.ticks.len(), counts);
    std::mem::forget(input);
}

// `Scratch::handle` in one scratch mode, the hot thread's per-tick work: arena reset
// (arena mode), symbol state, strategy, order encoding and hand-off.
#[library_benchmark]
#[bench::heap_ticks_10000(args = (ScratchMode::Heap, TICKS), setup = setup_engine, teardown = check_engine)]
#[bench::heap_ticks_0(args = (ScratchMode::Heap, 0), setup = setup_engine, teardown = check_engine)]
#[bench::arena_ticks_10000(args = (ScratchMode::Arena, TICKS), setup = setup_engine, teardown = check_engine)]
#[bench::arena_ticks_0(args = (ScratchMode::Arena, 0), setup = setup_engine, teardown = check_engine)]
#[bench::pool_ticks_10000(args = (ScratchMode::Pool, TICKS), setup = setup_engine, teardown = check_engine)]
#[bench::pool_ticks_0(args = (ScratchMode::Pool, 0), setup = setup_engine, teardown = check_engine)]
fn engine_tick(mut input: EngineInput) -> EngineInput {
    for tick in &input.ticks {
        input.scratch.handle(&mut input.decider, black_box(tick));
    }
    input
}

/// A full, evicting history and the ticks to push into it.
pub struct HistoryInput {
    history: History,
    ticks: Vec<(Tick, u64)>,
    /// The thread's allocation counts when setup ended.
    counts: AllocCounts,
}

fn setup_history(pushes: usize) -> HistoryInput {
    crate::prepare();
    let config = Config::shipped_default();
    assert_eq!(
        config.feed.history.max_ticks(),
        RETENTION,
        "RETENTION is the default configuration's"
    );
    let fill = RETENTION as usize + HISTORY_WARMUP;
    let mut all = feed_ticks(&config, fill + PUSHES);
    let mut history = History::new(config.symbols.len(), RETENTION);
    for &(tick, second) in &all[..fill] {
        history.push(tick, second);
    }
    all.copy_within(fill.., 0);
    all.truncate(pushes);
    drop(config);
    HistoryInput {
        history,
        ticks: all,
        counts: thread_counts(),
    }
}

/// Every measured push evicted one tick; then the report, and the input is forgotten.
fn check_history(input: HistoryInput) {
    let counts = thread_counts().since(&input.counts);
    let stats = input.history.stats();
    assert_eq!(stats.ticks, RETENTION, "the history is full");
    assert_eq!(
        stats.evicted,
        (HISTORY_WARMUP + input.ticks.len()) as u64,
        "every push after the fill evicts"
    );
    report("history_push", "-", input.ticks.len(), counts);
    std::mem::forget(input);
}

// `History::push` into a full history: bar update, tick append (a new 16 KiB chunk every
// 256 ticks of a symbol) and eviction of the oldest tick (its chunk freed when emptied).
#[library_benchmark]
#[bench::pushes_10000(args = (PUSHES), setup = setup_history, teardown = check_history)]
#[bench::pushes_0(args = (0), setup = setup_history, teardown = check_history)]
fn history_push(mut input: HistoryInput) -> HistoryInput {
    for &(tick, second) in &input.ticks {
        input.history.push(black_box(tick), second);
    }
    input
}

library_benchmark_group!(
    name = costs;
    benchmarks = engine_tick, history_push
);

/// The `main` of one `costs_<allocator>` binary: `$alloc` (a
/// [`common::allocators::Introspect`] allocator) as the global allocator through the
/// counting wrapper, as in the `feed` and `engine` binaries, with `$prepare` run at the
/// start of every setup, and gungraun's `main` over [`costs`].
#[macro_export]
macro_rules! costs_main {
    ($alloc:ident, $prepare:expr) => {
        #[global_allocator]
        static GLOBAL: common::alloc::CountingAlloc<$alloc> =
            common::alloc::CountingAlloc::new($alloc, <$alloc as Introspect>::NAME);

        /// The global allocator's name and version, for the reports.
        fn allocator() -> common::allocators::AllocatorHooks {
            common::allocators::hooks(&GLOBAL)
        }

        /// Run at the start of every setup.
        fn prepare() {
            $prepare
        }

        use body::costs;
        gungraun::main!(library_benchmark_groups = costs);
    };
}
