//! The hot loop: busy-polls the ring, handles each tick with fresh scratch memory,
//! stamps the decision time and records the four stage latencies.
//!
//! Per tick: one ring poll, two clock reads (received, decided), an arena reset (arena
//! mode), the decision, four histogram records. No lock, no system call, no logging;
//! no global allocation in arena and pool modes after warm-up (a pool too small for the
//! configuration falls back to the global allocator and counts it). About once a millisecond it does
//! housekeeping: the stop flag (on a signal the loop drains until the feed ends its
//! stream, for at most the producer timeout), the deadline, the producer's liveness, the warm-up end
//! and the interval hand-off to the cold thread (which never blocks: see
//! [`common::latency::IntervalRecorder::rotate`]), and on a lossless ring the
//! consumer heartbeat the feed watches.
//!
//! When the feed is gone or has ended and the engine is configured to wait for a new
//! one, the loop closes the feed's [`FeedSession`] and calls the `reopen` function it
//! was given, which waits (sleeping, off the per-tick path: there are no ticks) for the
//! next feed's ring; sequence numbers then start again from that ring's oldest tick.
//!
//! With gap recovery on (`engine.recover`) a gap makes the loop stale: it buffers live
//! ticks instead of deciding and applies what the recovery thread sends, both through
//! [`crate::recovery::Recovery`] (no allocation, no system call); one predictable
//! branch per tick otherwise. At the end of the stream it waits for the recovery in
//! progress (sleeping: no ticks are coming).
//!
//! [`thread`] is the hot thread around the loop: it pins itself, allocates and touches
//! its scratch memory and state after pinning, and runs [`run`] with the settings of the
//! configuration.

use crate::decider::Decider;
use crate::order::OrderMsg;
use crate::recovery::Recovery;
use allocator_api2::alloc::Global;
use bumpalo::Bump;
use common::alloc::{thread_counts, AllocCounts};
use common::clock::Clock;
use common::clock::ClockSource;
use common::config::{Config, EngineConfig, OnProducerGone, Scratch as ScratchMode};
use common::cores::{pin_or_warn, Waiter};
use common::latency::{Interval, IntervalRecorder, Rotate, Stage};
use common::pool::{Pool, PoolStats};
use common::ring::shm::MappedRegion;
use common::ring::Subscriber;
use common::summary::{EndReason, FeedSession};
use common::tick::Tick;
use common::transport::{FeedSource, Poll, Progress};
use std::sync::atomic::{AtomicBool, Ordering};

/// Scratch memory of one tick.
pub enum Scratch {
    /// A bumpalo arena, reset before every tick.
    Arena(Bump),
    /// The global allocator.
    Heap,
    /// Pre-allocated fixed-size blocks, recycled: each block goes back to its free list
    /// when the tick's intents and messages are dropped.
    Pool(Pool),
}

impl Scratch {
    /// An arena of `bytes` capacity, touched once so that its pages are resident.
    pub fn arena(bytes: usize) -> Scratch {
        let mut bump = Bump::with_capacity(bytes);
        bump.alloc_slice_fill_copy(bytes.saturating_sub(1024).max(1), 0u8);
        bump.reset();
        Scratch::Arena(bump)
    }

    /// A pool with `engine.pool_blocks` blocks in each of
    /// [`common::pool::ENGINE_CLASSES`], allocated and touched now.
    pub fn pool(engine: &EngineConfig) -> Scratch {
        Scratch::Pool(Pool::engine(engine.pool_blocks))
    }

    /// Bytes reserved for scratch: the arena's capacity, or the pool's blocks (0 for the
    /// heap).
    pub fn arena_bytes(&self) -> u64 {
        match self {
            Scratch::Arena(b) => b.allocated_bytes() as u64,
            Scratch::Heap => 0,
            Scratch::Pool(p) => p.region_bytes() as u64,
        }
    }

    /// The per-tick work of the hot thread between its two clock reads: resets the arena
    /// (arena mode), then lets `decider` handle `tick` with this scratch memory. Public so
    /// that the instruction-count benchmarks (`icount`) measure exactly this.
    #[inline]
    pub fn handle(&mut self, decider: &mut Decider, tick: &Tick) {
        match self {
            Scratch::Arena(bump) => {
                bump.reset();
                decider.handle(tick, &*bump);
            }
            Scratch::Heap => decider.handle(tick, Global),
            Scratch::Pool(pool) => decider.handle(tick, &*pool),
        }
    }

    /// The pool's counters (fallbacks, high-water marks), in pool mode. Allocates: call
    /// it after the loop.
    pub fn pool_stats(&self) -> Option<PoolStats> {
        match self {
            Scratch::Pool(p) => Some(p.stats()),
            _ => None,
        }
    }
}

/// The feed's history at the engine's start (`engine.history_service`): each symbol's
/// latest ticks, and the highest sequence number the feed had published then.
pub struct Snapshot {
    /// The ticks, symbol by symbol, oldest first.
    pub ticks: Vec<Tick>,
    /// Ring ticks up to this sequence number are covered by the snapshot.
    pub covered_through: u64,
}

/// What the hot thread hands back when it ends.
pub struct Finished {
    /// What the loop counted.
    pub result: HotResult,
    /// Symbols whose window the start-up snapshot filled (`None`: no snapshot).
    pub symbols_full: Option<u64>,
    /// Whether the thread was pinned to `cores.engine_hot`.
    pub pinned: bool,
    /// Bytes reserved for scratch (see [`Scratch::arena_bytes`]).
    pub arena_bytes: u64,
    /// The pool's counters, in pool mode.
    pub pool: Option<PoolStats>,
    /// The decider, with its order counts and positions (dropping it closes the order
    /// channel).
    pub decider: Decider,
    /// Gap recovery's report (`engine.recover`).
    pub recovery: Option<common::summary::RecoveryReport>,
}

/// What the hot thread takes from the feed's history service.
pub struct FromService<'a> {
    /// The start-up snapshot (`engine.history_service`).
    pub snapshot: Option<&'a Snapshot>,
    /// Gap recovery's hops (`engine.recover`).
    pub recovery: Option<RecoveryHops>,
}

/// The hot thread's ends of the two hops to the recovery thread (`engine.recover`).
pub type RecoveryHops = (
    common::hop::HopTx<crate::recovery::RangeRequest>,
    common::hop::HopRx<crate::recovery::Recovered>,
);

/// The hot thread: pins itself to `cores.engine_hot`, then allocates and touches its
/// scratch memory (per `engine.scratch`) and the decider's state, and runs [`run`] on
/// `sub` (the feed's ring, or an Aeron subscription) with the configuration's settings.
/// With `engine.on_producer_gone = "wait"` it calls `reopen` when the feed is gone or
/// has ended (see [`OnGone::Reopen`]; for the ring, [`reopen_ring`]). Hands back what
/// it counted and the source.
#[allow(clippy::too_many_arguments)] // each is a distinct piece of hot-thread state
pub fn thread<S: FeedSource>(
    config: &Config,
    clock: &Clock,
    mut sub: S,
    reopen: &mut dyn FnMut(&FeedSession, &mut S) -> Reopened,
    mut recorder: IntervalRecorder,
    orders_tx: common::hop::HopTx<OrderMsg>,
    stop: &AtomicBool,
    service: FromService,
) -> (Finished, S) {
    let FromService { snapshot, recovery } = service;
    let pinned = pin_or_warn("engine", "hot", config.cores.engine_hot);
    // Under the routing allocator (the single-process pipeline) the hot thread's
    // allocations take the route of its role (by default the hot arena); elsewhere
    // this changes nothing.
    common::routed::enter_role("engine_hot");
    // Allocate and touch the hot thread's memory after pinning.
    let mut scratch = match config.engine.scratch {
        ScratchMode::Arena => Scratch::arena(config.engine.arena_bytes),
        ScratchMode::Heap => Scratch::Heap,
        ScratchMode::Pool => Scratch::pool(&config.engine),
    };
    let mut decider = Decider::new(config, orders_tx);
    let mut recovery =
        recovery.map(|(tx, rx)| Recovery::new(config.engine.recovery_buffer, tx, rx));
    let symbols_full = snapshot.map(|s| decider.warm(&s.ticks, s.covered_through));
    let mut waiter = Waiter::new(config.engine.wait);
    let ms = |v: f64| clock.raw_from_ns((v * 1e6) as u64);
    let settings = HotSettings {
        warmup_raw: ms(config.warmup_s * 1e3),
        interval_raw: ms(config.log.interval_ms as f64),
        limit_raw: ms((config.duration_s + config.engine.grace_s) * 1e3),
        producer_timeout_raw: ms(config.engine.producer_timeout_ms as f64),
        housekeeping_raw: ms(1.0),
    };
    let on_gone = match config.engine.on_producer_gone {
        OnProducerGone::Exit => OnGone::Stop,
        OnProducerGone::Wait => OnGone::Reopen(reopen),
    };
    let result = run(
        &mut sub,
        clock,
        settings,
        &mut waiter,
        &mut decider,
        &mut scratch,
        &mut recorder,
        stop,
        on_gone,
        recovery.as_mut(),
    );
    let finished = Finished {
        recovery: recovery.map(|r| r.report(clock.ns_per_raw())),
        result,
        symbols_full,
        pinned,
        arena_bytes: scratch.arena_bytes(),
        pool: scratch.pool_stats(),
        decider,
    };
    (finished, sub)
}

/// [`OnGone::Reopen`] for the ring: says the feed is gone, waits for a new feed's ring (stamped
/// with the same clock `source`) and reads it, warming from a snapshot of the new feed where
/// `engine.history_service` is set.
pub fn reopen_ring<'a>(
    config: &'a Config,
    stop: &'a AtomicBool,
    source: ClockSource,
) -> impl FnMut(&FeedSession, &mut Subscriber<MappedRegion>) -> Reopened + 'a {
    move |closed, sub| {
        let (next, snapshot) = reopen(config, stop, source, closed)?;
        *sub = next;
        Ok(snapshot)
    }
}

/// The feed of `closed` is gone or has ended: says so, waits for a new feed's ring
/// (stamped with the same clock `source`) and returns it, with a snapshot of the new
/// feed's history where `engine.history_service` is set; or why the engine stops.
/// Blocks (sleeping, connecting): it runs while there are no ticks to handle, and the
/// new ring holds the feed's first ticks meanwhile.
fn reopen(
    config: &Config,
    stop: &AtomicBool,
    source: ClockSource,
    closed: &FeedSession,
) -> Result<(Subscriber<MappedRegion>, Option<Snapshot>), EndReason> {
    eprintln!(
        "engine: feed pid {} {} after publishing {} ticks (received {}, missed {}); waiting for a new feed",
        closed.producer_pid,
        match closed.end {
            EndReason::EndOfStream => "ended its stream".to_string(),
            _ => format!(
                "showed no sign of life for {} ms",
                config.engine.producer_timeout_ms
            ),
        },
        closed.published,
        closed.received,
        closed.missed,
    );
    match crate::wait_for_ring(config, stop, Some(closed.epoch_ns)) {
        Ok(Some((sub, info))) if info.clock_source == source as u32 => {
            eprintln!(
                "engine: resynchronised on a new feed (pid {}): its sequence starts again at 1; the discontinuity is a new session in the summary",
                info.producer_pid
            );
            Ok((sub, new_feed_snapshot(config)))
        }
        Ok(Some((_, info))) => {
            eprintln!(
                "engine: error: the new feed (pid {}) stamps ticks with another clock source; stopping",
                info.producer_pid
            );
            Err(EndReason::ProducerGone)
        }
        Ok(None) => Err(EndReason::Signal),
        Err(f) => {
            eprintln!("engine: error: {:#}", f.error());
            Err(EndReason::ProducerGone)
        }
    }
}

/// A snapshot of a new feed's history, where `engine.history_service` is set (blocking:
/// called while there are no ticks to handle).
pub fn new_feed_snapshot(config: &Config) -> Option<Snapshot> {
    let socket = config.engine.history_service.as_ref()?;
    match crate::fetch_snapshot(socket, config.engine.window) {
        Ok(s) => {
            eprintln!(
                "engine: warmed from {}: {} ticks of the new feed, covering it through seq {}",
                socket,
                s.ticks.len(),
                s.covered_through
            );
            Some(s)
        }
        Err(e) => {
            eprintln!(
                "engine: warning: no snapshot of the new feed from {}: {e}; warming from its ticks",
                socket
            );
            None
        }
    }
}

/// Raw-clock settings of the loop.
#[derive(Clone, Copy, Debug)]
pub struct HotSettings {
    /// Warm-up after the first tick.
    pub warmup_raw: u64,
    /// Logging interval.
    pub interval_raw: u64,
    /// Run length after the first tick (duration plus grace).
    pub limit_raw: u64,
    /// No sign of life for this long: the producer is gone.
    pub producer_timeout_raw: u64,
    /// Housekeeping period.
    pub housekeeping_raw: u64,
}

/// What the loop counted.
#[derive(Clone, Debug, Default)]
pub struct HotResult {
    /// Ticks received.
    pub received: u64,
    /// Gaps reported.
    pub gaps: u64,
    /// Ticks missed in gaps or corrupt.
    pub missed: u64,
    /// Corrupt ticks.
    pub corrupt: u64,
    /// Ticks received after the warm-up.
    pub measured: u64,
    /// Global allocator calls after the warm-up.
    pub allocs_after_warmup: AllocCounts,
    /// Why the loop ended.
    pub end_reason: EndReason,
    /// Ticks the feeds published, summed over the sessions.
    pub published_seen: u64,
    /// Ticks published that the engine never polled because it stopped first.
    pub unread: u64,
    /// One per feed read from.
    pub sessions: Vec<FeedSession>,
    /// Missed ticks recovered (`engine.recover`).
    pub recovered: u64,
    /// Missed ticks not recovered (`engine.recover`).
    pub unrecovered: u64,
}

/// A new feed's snapshot (if there is one) once the source reads the new feed, or why
/// the engine stops.
pub type Reopened = Result<Option<Snapshot>, EndReason>;

/// What the loop does when the feed is gone or has ended.
pub enum OnGone<'a, S> {
    /// Stop with that reason.
    Stop,
    /// Close the session and let `reopen` wait for a new feed and point the source at
    /// it (a new ring; the same subscription, counting from the new run), warming the
    /// books from the snapshot it returns if there is one; an `Err` stops the loop with
    /// that reason.
    Reopen(&'a mut dyn FnMut(&FeedSession, &mut S) -> Reopened),
}

/// Per-interval counters.
#[derive(Clone, Copy)]
struct IntervalCounts {
    start_raw: u64,
    ticks: u64,
    gaps: u64,
    missed: u64,
    allocs: AllocCounts,
}

struct Loop<'a> {
    clock: &'a Clock,
    s: HotSettings,
    stop: &'a AtomicBool,
    recorder: &'a mut IntervalRecorder,
    r: HotResult,
    iv: IntervalCounts,
    first_raw: u64,
    warm_end_raw: u64,
    in_warmup: bool,
    received_at_warm_end: u64,
    allocs_at_warm_end: AllocCounts,
    next_rotate_raw: u64,
    last_published: u64,
    last_heartbeat: u64,
    last_progress_raw: u64,
    /// Received, missed and gap counts (run totals) when the current session started.
    session_base: (u64, u64, u64),
    /// Recovered and unrecovered counts (run totals) when the current session started.
    recovery_base: (u64, u64),
    /// Gap recovery, if on.
    rec: Option<&'a mut Recovery>,
    /// Stale: recovering a gap, not deciding (always false without recovery).
    stale: bool,
    /// The current session is closed (its feed is gone; no new one yet).
    session_closed: bool,
    /// When the stop flag was first seen (0: not yet).
    stop_seen_raw: u64,
}

/// Runs until the stream ends, the stop flag is set, the run's time is up or the
/// producer is gone. Sends every interval (the last one too) to the cold thread.
#[allow(clippy::too_many_arguments)] // each is a distinct piece of hot-thread state
pub fn run<S: FeedSource>(
    sub: &mut S,
    clock: &Clock,
    settings: HotSettings,
    waiter: &mut Waiter,
    decider: &mut Decider,
    scratch: &mut Scratch,
    recorder: &mut IntervalRecorder,
    stop: &AtomicBool,
    mut on_gone: OnGone<'_, S>,
    recovery: Option<&mut Recovery>,
) -> HotResult {
    let now = clock.raw();
    let mut l = Loop {
        clock,
        s: settings,
        stop,
        recorder,
        r: HotResult::default(),
        iv: IntervalCounts {
            start_raw: now,
            ticks: 0,
            gaps: 0,
            missed: 0,
            allocs: thread_counts(),
        },
        first_raw: 0,
        warm_end_raw: u64::MAX,
        in_warmup: true,
        received_at_warm_end: 0,
        allocs_at_warm_end: thread_counts(),
        next_rotate_raw: now + settings.interval_raw,
        last_published: 0,
        last_heartbeat: 0,
        last_progress_raw: now,
        session_base: (0, 0, 0),
        recovery_base: (0, 0),
        rec: recovery,
        stale: false,
        session_closed: false,
        stop_seen_raw: 0,
    };
    // Room for many feed restarts before a session record allocates.
    l.r.sessions.reserve(64);
    let mut next_housekeeping = 0u64;
    let mut empties = 0u32;
    let reason = 'run: loop {
        let gone = loop {
            match sub.poll() {
                Poll::Tick(tick) => {
                    let received = clock.raw();
                    let done = if l.stale {
                        l.stale_tick(&tick, received, decider)
                    } else {
                        scratch.handle(decider, &tick);
                        let done = clock.raw();
                        let st = l.recorder.stages();
                        st.record(
                            Stage::FeedLag,
                            tick.published_raw.saturating_sub(tick.scheduled_raw),
                        );
                        st.record(Stage::Hop, received.saturating_sub(tick.published_raw));
                        st.record(Stage::Engine, done - received);
                        st.record(Stage::E2e, done.saturating_sub(tick.scheduled_raw));
                        l.iv.ticks += 1;
                        done
                    };
                    waiter.reset();
                    if done >= next_housekeeping {
                        if let Some(reason) = l.housekeeping(done, sub) {
                            break reason;
                        }
                        next_housekeeping = done + l.s.housekeeping_raw;
                    }
                }
                Poll::Empty => {
                    if l.stale {
                        l.pump(decider);
                    }
                    waiter.wait();
                    empties += 1;
                    if empties >= 128 {
                        empties = 0;
                        let now = clock.raw();
                        if now >= next_housekeeping {
                            if let Some(reason) = l.housekeeping(now, sub) {
                                break reason;
                            }
                            next_housekeeping = now + l.s.housekeeping_raw;
                        }
                    }
                }
                Poll::Gap { first_seq, missed } => {
                    l.iv.gaps += 1;
                    l.iv.missed += missed;
                    l.recover(decider, first_seq, first_seq + missed, sub);
                }
                Poll::Corrupt { seq } => {
                    l.iv.missed += 1;
                    l.r.corrupt += 1;
                    l.recover(decider, seq, seq + 1, sub);
                }
                Poll::Ended => break EndReason::EndOfStream,
                // A ring never fails; a transport that does has no producer left.
                Poll::Failed(_) => break EndReason::ProducerGone,
            }
        };
        if l.stop_seen_raw != 0 {
            break 'run EndReason::Signal;
        }
        let reopen = match (&mut on_gone, gone) {
            (OnGone::Reopen(reopen), EndReason::ProducerGone | EndReason::EndOfStream) => reopen,
            _ => break 'run gone,
        };
        l.close_session(gone, sub, decider);
        let closed = l.r.sessions.last().cloned().unwrap_or_default();
        match reopen(&closed, sub) {
            Ok(snapshot) => {
                decider.new_session();
                if let Some(s) = snapshot {
                    decider.warm(&s.ticks, s.covered_through);
                }
                l.session_closed = false;
                let now = clock.raw();
                l.last_published = 0;
                l.last_heartbeat = 0;
                l.last_progress_raw = now;
                next_housekeeping = 0;
            }
            Err(reason) => break 'run reason,
        }
    };
    l.finish(reason, sub, decider)
}

impl Loop<'_> {
    /// A gap `from..to` (or a corrupt tick): with recovery on, asks for it and goes
    /// stale.
    #[inline]
    fn recover<S: FeedSource>(&mut self, decider: &Decider, from: u64, to: u64, sub: &S) {
        if let Some(rec) = self.rec.as_deref_mut() {
            let producer = sub.producer().epoch_ns;
            rec.on_gap(decider, (from, to), producer, self.clock.raw());
            self.stale = rec.stale();
        }
    }

    /// A live tick while stale: its arrival stages are recorded (no decision is made,
    /// so no engine or end-to-end stage) and it is buffered, or joins the overflow
    /// range (missed); then whatever was recovered is applied. Returns the time.
    #[cold]
    #[inline(never)]
    fn stale_tick(&mut self, tick: &Tick, received: u64, decider: &mut Decider) -> u64 {
        let Some(rec) = self.rec.as_deref_mut() else {
            return received;
        };
        if rec.on_live(tick) {
            let st = self.recorder.stages();
            st.record(
                Stage::FeedLag,
                tick.published_raw.saturating_sub(tick.scheduled_raw),
            );
            st.record(Stage::Hop, received.saturating_sub(tick.published_raw));
            self.iv.ticks += 1;
        } else {
            self.iv.missed += 1;
        }
        self.pump(decider);
        received
    }

    /// Applies what the recovery thread sent; ends the stale stretch when it is done.
    #[cold]
    #[inline(never)]
    fn pump(&mut self, decider: &mut Decider) {
        if let Some(rec) = self.rec.as_deref_mut() {
            self.stale = rec.pump(decider, self.clock.raw());
        }
    }

    /// The stream is over (or the engine stops): waits for the recovery in progress,
    /// for as long as it makes progress within twice the producer timeout (off the
    /// per-tick path: no ticks are coming).
    fn settle_recovery(&mut self, decider: &mut Decider) {
        let mut last = (u64::MAX, u64::MAX);
        let mut since = self.clock.raw();
        while self.stale {
            self.pump(decider);
            let now = self.clock.raw();
            let totals = self.rec.as_deref().map_or((0, 0), Recovery::totals);
            if totals != last {
                last = totals;
                since = now;
            } else if now - since >= 2 * self.s.producer_timeout_raw {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }

    /// Once a millisecond or so; returns why to stop, if it is time.
    #[cold]
    fn housekeeping<S: FeedSource>(&mut self, now: u64, sub: &S) -> Option<EndReason> {
        let received = self.r.received + self.iv.ticks;
        if self.first_raw == 0 && received > 0 {
            self.first_raw = now;
            self.warm_end_raw = now.saturating_add(self.s.warmup_raw);
        }
        if self.stop.load(Ordering::Relaxed) {
            // Stop in order: keep draining until the feed ends its stream (a signal to
            // the whole process group reaches the feed too), for at most the producer
            // timeout if the feed goes on.
            if self.stop_seen_raw == 0 {
                self.stop_seen_raw = now;
            }
            if now - self.stop_seen_raw >= self.s.producer_timeout_raw {
                return Some(EndReason::Signal);
            }
        }
        if self.first_raw != 0 && now - self.first_raw >= self.s.limit_raw {
            return Some(EndReason::Duration);
        }
        sub.heartbeat(now);
        let Progress {
            published,
            heartbeat_raw: heartbeat,
        } = sub.producer_progress();
        if published != self.last_published || heartbeat != self.last_heartbeat {
            self.last_published = published;
            self.last_heartbeat = heartbeat;
            self.last_progress_raw = now;
        } else if now - self.last_progress_raw >= self.s.producer_timeout_raw
            && sub.next_seq() > published
        {
            return Some(EndReason::ProducerGone);
        }
        if self.in_warmup && now >= self.warm_end_raw {
            // Close the warm-up interval so that measured intervals start clean.
            self.rotate(now, true);
            self.in_warmup = false;
            self.received_at_warm_end = self.r.received + self.iv.ticks;
            self.allocs_at_warm_end = thread_counts();
            self.next_rotate_raw = now + self.s.interval_raw;
        } else if now >= self.next_rotate_raw {
            let warm = self.in_warmup;
            self.rotate(now, warm);
            self.next_rotate_raw = now + self.s.interval_raw;
        }
        None
    }

    /// Hands the interval to the cold thread if a spare set is back; else the interval
    /// goes on. Returns whether it was handed over.
    fn rotate(&mut self, now: u64, warmup: bool) -> bool {
        let allocs = thread_counts();
        let iv = self.iv;
        let sent = self.recorder.rotate(|stages| Interval {
            stages,
            start_raw: iv.start_raw,
            end_raw: now,
            ticks: iv.ticks,
            gaps: iv.gaps,
            missed: iv.missed,
            allocs: allocs.since(&iv.allocs),
            warmup,
        });
        if sent == Rotate::NoSpare {
            return false;
        }
        self.r.received += iv.ticks;
        self.r.gaps += iv.gaps;
        self.r.missed += iv.missed;
        self.iv = IntervalCounts {
            start_raw: now,
            ticks: 0,
            gaps: 0,
            missed: 0,
            allocs,
        };
        true
    }

    /// Records the session with the feed of `sub`, which the loop is leaving.
    fn close_session<S: FeedSource>(&mut self, end: EndReason, sub: &S, decider: &mut Decider) {
        if self.session_closed {
            return;
        }
        self.session_closed = true;
        self.settle_recovery(decider);
        let (recovered, unrecovered) = match self.rec.as_deref_mut() {
            Some(rec) => {
                rec.close_session(decider, self.clock.raw());
                rec.totals()
            }
            None => (0, 0),
        };
        self.stale = false;
        let (rec0, unrec0) = self.recovery_base;
        self.recovery_base = (recovered, unrecovered);
        self.r.recovered = recovered;
        self.r.unrecovered = unrecovered;
        let received = self.r.received + self.iv.ticks;
        let missed = self.r.missed + self.iv.missed;
        let gaps = self.r.gaps + self.iv.gaps;
        let (r0, m0, g0) = self.session_base;
        // Sequence numbers start at the ring's first (above 1 where the feed continues
        // its earlier run's sequence); counts are this session's.
        let newest = sub.producer_progress().published;
        let published = newest.saturating_sub(sub.first_seq() - 1);
        let unread = newest.saturating_sub(sub.next_seq() - 1);
        self.r.unread += unread;
        self.r.published_seen += published;
        let producer = sub.producer();
        self.r.sessions.push(FeedSession {
            producer_pid: producer.pid,
            epoch_ns: producer.epoch_ns,
            published,
            received: received - r0,
            missed: missed - m0,
            gaps: gaps - g0,
            recovered: recovered - rec0,
            unrecovered: unrecovered - unrec0,
            unread,
            end,
            evicted: sub.evicted(),
        });
        self.session_base = (received, missed, gaps);
    }

    /// Sends the last interval (waiting for a spare set: the loop is over) and totals up.
    fn finish<S: FeedSource>(
        mut self,
        reason: EndReason,
        sub: &S,
        decider: &mut Decider,
    ) -> HotResult {
        // Recovery first, so that its ticks are in the last interval's counts.
        self.settle_recovery(decider);
        let now = self.clock.raw();
        let warm = self.in_warmup;
        let end_allocs = thread_counts();
        let measured = (self.r.received + self.iv.ticks).saturating_sub(self.received_at_warm_end);
        let mut tries = 0;
        while !self.rotate(now, warm) && tries < 5_000 {
            std::thread::sleep(std::time::Duration::from_millis(1));
            tries += 1;
        }
        if tries == 5_000 {
            // The cold thread is gone or stuck; keep the counts right regardless.
            self.r.received += self.iv.ticks;
            self.r.gaps += self.iv.gaps;
            self.r.missed += self.iv.missed;
            (self.iv.ticks, self.iv.gaps, self.iv.missed) = (0, 0, 0);
        }
        self.r.measured = if warm { 0 } else { measured };
        self.r.allocs_after_warmup = if warm {
            AllocCounts::default()
        } else {
            end_allocs.since(&self.allocs_at_warm_end)
        };
        self.r.end_reason = reason;
        self.close_session(reason, sub, decider);
        self.r
    }
}
