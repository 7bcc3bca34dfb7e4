//! Instruction counts of the hot functions, under valgrind's Callgrind (gungraun).
//!
//! Each benchmark runs one hot function over a fixed, deterministic input of [`N`] ticks:
//! the ticks the feed would generate from `configs/default.toml` (its seed, symbols and
//! schedule). Building the input happens in a `setup` function, which gungraun leaves out
//! of the measured region; each benchmark returns what it consumed, so that dropping it
//! is not measured either. Instructions per tick = the total / [`N`].
//!
//! Run through `scripts/icount-gate`, which compares the counts with
//! `icount/baseline.json`; `cargo bench -p icount` runs them alone (it needs valgrind and
//! `gungraun-runner` of the same version as the `gungraun` library).

use common::config::{Config, Scratch as ScratchMode};
use common::hop::HopRx;
use common::ring::{HeapRegion, Poll, Publisher, StartAt, Subscriber};
use common::tick::Tick;
use common::transport::{Sink, Source};
use engine::decider::Decider;
use engine::hot::Scratch;
use engine::order::OrderMsg;
use feed::gen::Generator;
use feed::schedule::Schedule;
use gungraun::{library_benchmark, library_benchmark_group, main};
use std::hint::black_box;
use std::sync::Arc;

/// Ticks per measured run.
const N: usize = 10_000;
/// Ticks the engine handles in setup before the measured ones: every symbol's window of
/// mids is full and its quotes are working, as in a running engine after warm-up.
const ENGINE_WARMUP: usize = 1_000;
/// Ring slots: more than [`N`], so that polling drains the ring without a gap.
const RING_CAPACITY: u64 = 16_384;

/// The default scenario: its seed, symbols, schedule and engine parameters.
fn config() -> Config {
    Config::shipped_default()
}

/// The first `n` ticks the feed generates for `config` (stamps and `seq` left at 0).
fn feed_ticks(config: &Config, n: usize) -> Vec<Tick> {
    feed::gen::scheduled(config, n)
        .into_iter()
        .map(|(_, tick)| tick)
        .collect()
}

/// A fresh publisher and the ticks to publish.
struct PublishInput {
    publisher: Publisher<HeapRegion>,
    ticks: Vec<Tick>,
}

fn setup_publish(n: usize) -> PublishInput {
    PublishInput {
        publisher: Publisher::new(HeapRegion::new(RING_CAPACITY)),
        ticks: feed_ticks(&config(), n),
    }
}

/// Sends every tick through the transport interface ([`Sink::send`]), generic as the
/// feed's md loop is: the same body as a direct `Publisher::publish` loop, so that the
/// count shows what the interface costs (nothing: it is monomorphised away). The ring
/// never refuses a tick, so the `Option` is always `Some`.
#[inline]
fn send_all<S: Sink>(sink: &mut S, ticks: &[Tick]) {
    for tick in ticks {
        black_box(sink.send(black_box(tick)).unwrap_or(0));
    }
}

/// Receives through the transport interface ([`Source::poll`]) until the source is
/// empty, as the benchmarks' consumers do; returns the ticks received.
#[inline]
fn drain<S: Source>(source: &mut S) -> u64 {
    let mut ticks = 0u64;
    loop {
        match source.poll() {
            Poll::Tick(tick) => {
                black_box(&tick);
                ticks += 1;
            }
            Poll::Empty => return ticks,
            other => panic!("a filled ring polled {other:?}"),
        }
    }
}

// `Publisher::publish` through `Sink::send`, once per tick.
#[library_benchmark]
#[bench::ticks_10000(args = (N), setup = setup_publish)]
fn ring_publish(mut input: PublishInput) -> PublishInput {
    send_all(&mut input.publisher, &input.ticks);
    input
}

fn setup_poll(n: usize) -> Subscriber<Arc<HeapRegion>> {
    let region = Arc::new(HeapRegion::new(RING_CAPACITY));
    let mut publisher = Publisher::new(region.clone());
    for tick in feed_ticks(&config(), n) {
        publisher.publish(&tick);
    }
    Subscriber::new(region, StartAt::Oldest)
}

// `Subscriber::poll` through `Source::poll`, draining a ring that holds `N` ticks (`N`
// ticks and one `Empty`).
#[library_benchmark]
#[bench::ticks_10000(args = (N), setup = setup_poll)]
fn ring_poll(mut subscriber: Subscriber<Arc<HeapRegion>>) -> (Subscriber<Arc<HeapRegion>>, u64) {
    let ticks = drain(&mut subscriber);
    (subscriber, ticks)
}

/// The engine's hot-thread state in arena mode, warmed up, and the ticks to handle.
struct EngineInput {
    decider: Decider,
    scratch: Scratch,
    ticks: Vec<Tick>,
    /// Kept open (and empty) so that every order is handed off, as in the engine.
    orders_rx: HopRx<OrderMsg>,
    /// Orders handed off during the warm-up.
    warmup_orders: u64,
}

fn setup_engine(n: usize) -> EngineInput {
    let config = config();
    assert_eq!(
        config.engine.scratch,
        ScratchMode::Arena,
        "default is arena"
    );
    let (orders_tx, mut orders_rx) =
        common::hop::bounded(config.cold.channel, config.engine.order_channel);
    let mut decider = Decider::new(&config, orders_tx);
    let mut scratch = Scratch::arena(config.engine.arena_bytes);
    let mut ticks = feed_ticks(&config, ENGINE_WARMUP + n);
    for tick in ticks.drain(..ENGINE_WARMUP) {
        scratch.handle(&mut decider, &tick);
    }
    orders_rx.drain();
    EngineInput {
        warmup_orders: decider.orders,
        decider,
        scratch,
        ticks,
        orders_rx,
    }
}

/// Every order of the measured ticks was encoded and handed off: none was dropped.
fn check_engine(input: EngineInput) {
    let orders = input.decider.orders - input.warmup_orders;
    assert_eq!(input.decider.orders_dropped, 0, "orders dropped");
    assert_eq!(input.decider.unknown_symbols, 0, "unknown symbols");
    assert_eq!(orders, input.orders_rx.len() as u64, "orders handed off");
    assert!(orders > 0, "no orders");
}

// `Scratch::handle` in arena mode, the hot thread's per-tick work: arena reset, symbol
// state, strategy, order encoding and hand-off.
#[library_benchmark]
#[bench::arena_ticks_10000(args = (N), setup = setup_engine, teardown = check_engine)]
fn engine_tick(mut input: EngineInput) -> EngineInput {
    for tick in &input.ticks {
        input.scratch.handle(&mut input.decider, black_box(tick));
    }
    input
}

/// A seeded generator and the schedule's symbol for each tick.
struct GenInput {
    generator: Generator,
    symbols: Vec<u16>,
}

fn setup_gen(n: usize) -> GenInput {
    let config = config();
    let mut schedule = Schedule::new(&config, config.duration_s);
    GenInput {
        generator: Generator::new(&config),
        symbols: (0..n)
            .map(|_| schedule.next_due().expect("enough ticks").1)
            .collect(),
    }
}

// `Generator::next_tick`, once per tick.
#[library_benchmark]
#[bench::ticks_10000(args = (N), setup = setup_gen)]
fn feed_gen(mut input: GenInput) -> GenInput {
    for &symbol in &input.symbols {
        black_box(input.generator.next_tick(black_box(symbol)));
    }
    input
}

library_benchmark_group!(
    name = hot;
    benchmarks = ring_publish, ring_poll, engine_tick, feed_gen
);

main!(library_benchmark_groups = hot);
