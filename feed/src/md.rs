//! The feed's hot path: the md thread, which follows the open-loop schedule, generates
//! and stamps each tick, sends it through a [`Sink`] (the ring, and whatever stands
//! beside it) and hands a copy to the history thread.
//!
//! # Guarantees
//!
//! Per tick ([`run`]): one clock read to wait for the tick's due time (more while it
//! waits), the generator, one clock read for the publish stamp, the send, a `try_send`
//! of the copy to the history thread (a full channel drops and counts the copy: the md
//! thread never waits for the history) and two relaxed counter stores. No allocation,
//! lock, system call or logging: the counting allocator proves the first
//! (`feed_summary.json`, `md_allocs`). About once a millisecond while it waits it sends a
//! heartbeat, publishes its allocation counts and looks at the stop flag (and every
//! 4,096 ticks when it never waits). The loop is generic over the [`Sink`]:
//! monomorphised, so the transport interface adds nothing per tick.
//!
//! [`thread`] is the md thread around the loop: it pins itself, waits (lossless mode)
//! for the configured number of engines to register, runs the loop on the ring (and on
//! the network publication beside it, `[net]`: see [`crate::net`]), and ends the
//! stream and removes the ring file.

use crate::{gen, schedule};
use common::alloc::{thread_counts, AllocCounts, AllocProfile};
use common::clock::Clock;
use common::config::Config;
use common::cores::{pin_or_warn, Waiter};
use common::hop::HopTx;
use common::ring::shm::OwnedRegion;
use common::ring::{LosslessStats, Publisher};
use common::summary::EndReason;
use common::tick::Tick;
use common::transport::{Sink, Tee};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Slot of the md thread in the feed's allocation profile.
pub const ROLE: usize = 1;

/// Counters the md thread publishes for the reporter (relaxed stores, read once per
/// interval).
#[derive(Default)]
pub struct Counters {
    /// Ticks sent so far.
    pub published: AtomicU64,
    /// History copies dropped so far (full channel).
    pub dropped: AtomicU64,
}

/// What the md thread shares with the others.
#[derive(Clone, Copy)]
pub struct Shared<'a> {
    /// Its counters.
    pub counters: &'a Counters,
    /// Set by a signal: stop in order.
    pub stop: &'a AtomicBool,
    /// The raw clock at the schedule's start (0 until then), for the history thread.
    pub start_raw: &'a AtomicU64,
    /// The allocation profile (the md thread's slot is [`ROLE`]).
    pub profile: &'a AllocProfile,
    /// Recorded ticks to publish instead of generated ones (`feed --replay`).
    pub replay: Option<&'a Replay>,
}

/// Recorded ticks to publish with their recorded spacing (`feed --replay`).
pub struct Replay {
    /// The ticks, in their recorded order.
    pub ticks: Vec<Tick>,
    /// Nanoseconds per raw unit of the recording clock.
    pub ns_per_raw: f64,
    /// Replay speed: 2 publishes twice as fast as recorded.
    pub speed: f64,
}

/// Where the md loop's ticks come from: the generator on the open-loop schedule, or a
/// recording. Neither allocates per tick.
enum Source<'a> {
    Generated(gen::Generator, schedule::Schedule),
    Replay {
        ticks: &'a [Tick],
        next: usize,
        first_raw: u64,
        ps_per_raw: f64,
        end_ps: u64,
    },
}

impl Source<'_> {
    /// The next tick's due time (picoseconds from the start) and symbol.
    #[inline]
    fn next_due(&mut self) -> Option<(u64, u16)> {
        match self {
            Source::Generated(_, schedule) => schedule.next_due(),
            Source::Replay {
                ticks,
                next,
                first_raw,
                ps_per_raw,
                end_ps,
            } => {
                let t = ticks.get(*next)?;
                let due = (t.scheduled_raw.saturating_sub(*first_raw) as f64 * *ps_per_raw) as u64;
                (due < *end_ps).then_some((due, t.symbol))
            }
        }
    }

    /// The tick due (after [`Source::next_due`]): generated now, or the recorded one
    /// (its sequence number and time stamps are the publisher's to set).
    #[inline]
    fn make(&mut self, symbol: u16) -> Tick {
        match self {
            Source::Generated(gen, _) => gen.next_tick(symbol),
            Source::Replay { ticks, next, .. } => {
                let t = ticks[*next];
                *next += 1;
                t
            }
        }
    }
}

/// What the loop counted.
#[derive(Clone, Copy, Debug)]
pub struct Loop {
    /// Raw clock when the schedule started and when the loop ended.
    pub start_raw: u64,
    /// See `start_raw`.
    pub end_raw: u64,
    /// Global allocator calls of the md thread during the loop (0: nothing allocated).
    pub allocs: AllocCounts,
    /// History copies dropped (full channel).
    pub dropped: u64,
    /// Ticks the sink refused (never for the ring).
    pub undelivered: u64,
    /// Why the loop ended.
    pub end_reason: EndReason,
}

/// What the md thread reports when it stops.
pub struct Report {
    /// Ticks published into the ring.
    pub published: u64,
    /// Nanoseconds from the schedule's start to the loop's end.
    pub elapsed_ns: u64,
    /// The loop's counts.
    pub counts: Loop,
    /// Whether the thread was pinned to `cores.feed_md`.
    pub pinned: bool,
    /// Lossless mode: what the feed waited for and whom it evicted.
    pub lossless: Option<LosslessStats>,
}

/// The md thread: pins itself to `cores.feed_md`, waits (lossless mode) for
/// `ring.wait_for_consumers` engines, runs [`run`] on the ring, then ends the stream and
/// removes the ring file.
pub fn thread<N: Sink>(
    config: &Config,
    clock: &Clock,
    mut publisher: Publisher<OwnedRegion>,
    net: Option<&mut N>,
    mut history: HopTx<Tick>,
    shared: &Shared,
) -> Report {
    let pinned = pin_or_warn("feed", "md", config.cores.feed_md);
    // Under the routing allocator (the single-process pipeline) the md thread's
    // allocations take the route of its role (by default the hot arena); elsewhere
    // this changes nothing.
    common::routed::enter_role("feed_md");
    let waited = if config.ring.lossless && config.ring.wait_for_consumers > 0 {
        wait_for_consumers(config, clock, &publisher, shared.stop)
    } else {
        true
    };
    // A network publication with `net.connect_timeout_ms`: wait (heartbeats going out)
    // for a subscriber, so that the first ticks reach one.
    let waited = waited
        && match (&net, &config.net) {
            (Some(n), Some(c)) if c.connect_timeout_ms > 0 => {
                wait_for_subscriber(&**n, c.connect_timeout_ms, shared.stop, || {
                    publisher.heartbeat(clock.raw())
                });
                !shared.stop.load(Ordering::Relaxed)
            }
            _ => true,
        };
    let counts = if waited {
        match net {
            // The network publication beside the ring: the ring numbers each tick.
            Some(n) => {
                let counts = run(
                    config,
                    clock,
                    &mut Tee {
                        first: &mut publisher,
                        second: &mut *n,
                    },
                    &mut history,
                    shared,
                );
                n.end();
                counts
            }
            None => run(config, clock, &mut publisher, &mut history, shared),
        }
    } else {
        let now = clock.raw();
        Loop {
            start_raw: now,
            end_raw: now,
            allocs: AllocCounts::default(),
            dropped: 0,
            undelivered: 0,
            end_reason: EndReason::Signal,
        }
    };
    shared.profile.publish(ROLE);
    publisher.end_and_unlink();
    Report {
        published: publisher.published(),
        elapsed_ns: clock.delta_ns(counts.start_raw, counts.end_raw),
        counts,
        pinned,
        lossless: publisher.lossless_stats().copied(),
    }
}

/// Waits up to `timeout_ms` (sleeping 1 ms, calling `alive` each time: the ring's
/// heartbeat, so that its readers see a live feed) until `sink` has a subscriber, or a
/// signal; a feed that gets none starts anyway and its unsent ticks are counted.
fn wait_for_subscriber<N: Sink>(
    sink: &N,
    timeout_ms: u64,
    stop: &AtomicBool,
    mut alive: impl FnMut(),
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
    while !sink.connected() && !stop.load(Ordering::Relaxed) {
        alive();
        if std::time::Instant::now() >= deadline {
            eprintln!("feed: net: no subscriber after {timeout_ms} ms, publishing anyway");
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Lossless mode: waits (with heartbeats, sleeping 1 ms) until enough engines have
/// registered; false if stopped by a signal first.
fn wait_for_consumers(
    config: &Config,
    clock: &Clock,
    publisher: &Publisher<OwnedRegion>,
    stop: &AtomicBool,
) -> bool {
    let want = config.ring.wait_for_consumers as usize;
    eprintln!("feed: lossless: waiting for {want} engine(s) to register");
    loop {
        publisher.heartbeat(clock.raw());
        if publisher.active_consumers() >= want {
            return true;
        }
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// The md loop: the schedule of `config` from now, each tick generated, stamped and sent
/// into `sink`, a copy offered to `history`; until the schedule ends or `shared.stop`.
pub fn run<S: Sink>(
    config: &Config,
    clock: &Clock,
    sink: &mut S,
    history: &mut HopTx<Tick>,
    shared: &Shared,
) -> Loop {
    let Shared {
        counters,
        stop,
        start_raw: start_raw_out,
        profile,
        replay,
    } = *shared;
    let mut source = match replay {
        None => Source::Generated(
            gen::Generator::new(config),
            schedule::Schedule::new(config, config.duration_s),
        ),
        Some(r) => Source::Replay {
            ticks: &r.ticks,
            next: 0,
            first_raw: r.ticks.first().map_or(0, |t| t.scheduled_raw),
            ps_per_raw: r.ns_per_raw * 1000.0 / r.speed,
            end_ps: (config.duration_s * 1e12) as u64,
        },
    };
    let mut waiter = Waiter::new(config.feed.wait);
    let raw_per_ps = 1.0 / (clock.ns_per_raw() * 1000.0);
    let heartbeat_every = clock.raw_from_ns(1_000_000).max(1);
    let mut dropped = 0u64;
    let mut undelivered = 0u64;
    let mut sent = 0u64;
    let mut end_reason = EndReason::EndOfStream;

    let allocs_before = thread_counts();
    let start_raw = clock.raw();
    start_raw_out.store(start_raw, Ordering::Release);
    let mut last_heartbeat = start_raw;
    sink.heartbeat(start_raw);
    'ticks: while let Some((due_ps, symbol)) = source.next_due() {
        let due_raw = start_raw + (due_ps as f64 * raw_per_ps) as u64;
        let mut now = clock.raw();
        while now < due_raw {
            if now - last_heartbeat >= heartbeat_every {
                sink.heartbeat(now);
                profile.publish(ROLE);
                last_heartbeat = now;
                if stop.load(Ordering::Relaxed) {
                    end_reason = EndReason::Signal;
                    break 'ticks;
                }
            }
            waiter.wait();
            now = clock.raw();
        }
        waiter.reset();
        let mut tick = source.make(symbol);
        tick.scheduled_raw = due_raw;
        tick.published_raw = clock.raw();
        let Some(seq) = sink.send(&tick) else {
            undelivered += 1;
            continue;
        };
        tick.seq = seq;
        sent += 1;
        if history.try_send(tick).is_err() {
            dropped += 1;
            counters.dropped.store(dropped, Ordering::Relaxed);
        }
        counters.published.store(sent, Ordering::Relaxed);
        // An overloaded feed never waits: look at the stop flag every 4096 ticks too.
        if sent.is_multiple_of(4096) && stop.load(Ordering::Relaxed) {
            end_reason = EndReason::Signal;
            break;
        }
    }
    let end_raw = clock.raw();
    Loop {
        start_raw,
        end_raw,
        allocs: thread_counts().since(&allocs_before),
        dropped,
        undelivered,
        end_reason,
    }
}
