//! The relay (binary `relay`, feature `aeron`): one per engine host. It subscribes to
//! the feed's Aeron stream and republishes every tick into the host's local ring, so
//! the engines on that host run unchanged and share one network subscription.
//!
//! # Threads
//!
//! - **main**, the receive loop (hot, pinned to `cores.feed_md`: on an engine host the
//!   relay stands where the feed stands on the feed's host): polls the subscription,
//!   accounts for every sequence number ([`crate::seq`]), records the network hop (the
//!   feed's publish stamp → the relay's receive, one clock on one machine), publishes
//!   the tick into the ring (its `published_raw` restamped: the ring's publish, so an
//!   engine's `hop` is this host's ring), and while nothing arrives sends the ring's
//!   heartbeat about once a millisecond and watches for the feed's silence. Per tick no
//!   allocation (the counting allocator counts the loop: `loop_allocs` in the summary),
//!   lock, system call or formatting.
//! - **relay-recovery** (cold, with `net.history`, on `cores.cold`): fills the gaps in
//!   the stream from the feed's history service over TCP ([`common::recovery`]). While
//!   a gap is filled the receive loop holds the live ticks after it, in order, in a
//!   buffer allocated at start (`net.recovery_buffer`), and puts the recovered ticks
//!   into the ring before them: the engines see the feed's sequence, late but whole.
//!   Ticks that arrive before the relay has heard which feed run sent them (a relay
//!   started or restarted mid-stream) are filled the same way: a restarted relay
//!   catches up from the service.
//! - The media driver's threads (embedded, `net.driver`), on the cores it names.
//!
//! # Ends
//!
//! The feed's end message (after every tick it sent is accounted for), SIGINT or
//! SIGTERM, or the feed's silence for `engine.producer_timeout_ms` (before its first
//! message: for `duration_s`): the relay ends its ring's stream, so the engines end too, and writes
//! `relay_summary.json`: `published` (the newest sequence number the feed named) =
//! `relayed` + `recovered` + `unrecovered`, per feed run heard. Outstanding gaps are
//! waited for, at most `engine.producer_timeout_ms`, before the ring's stream ends.

use crate::aeron::{Driver, Received};
use crate::seq::{SeqTracker, Step};
use crate::wire::{ControlKind, Message};
use common::alloc::thread_counts;
use common::allocators::AllocatorHooks;
use common::budget::ColdThread;
use common::clock::Clock;
use common::config::{Config, KeyPath};
use common::cores::{pin_or_warn, Waiter};
use common::failure::Failure;
use common::files::Kind;
use common::hop;
use common::latency::{fixed_histogram, to_ns, Percentiles, HIGHEST_NS};
use common::manifest::Manifest;
use common::recovery::{self, Apply, Recovery};
use common::ring::shm::{OwnedRegion, ProducerId};
use common::ring::Publisher;
use common::runargs::{RunArgs, Started};
use common::service::{request_at, Endpoint, Request};
use common::summary::EndReason;
use common::tick::Tick;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub use crate::summary::{RelaySession, RelaySummary, RELAY_SUMMARY};

/// Command line of the `relay` binary.
#[derive(Debug, clap::Parser)]
#[command(version)]
pub struct Args {
    #[command(flatten)]
    /// Configuration (its `[net]` and `[ring]`: the feed's stream and this host's ring),
    /// duration (unused: the relay runs as long as the feed) and output folder.
    pub run: RunArgs,
}

/// Entry point of the `relay` binary: parses the command line, runs, reports.
pub fn main_with(hooks: AllocatorHooks) -> ExitCode {
    use clap::Parser;
    let args = Args::parse();
    match run(&args.run, &hooks) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report("relay"),
    }
}

/// The local ring as what recovered and held ticks are applied to: each goes in with
/// `published_raw` restamped (this ring's publish time).
struct RingOut<'c> {
    publisher: Publisher<OwnedRegion>,
    clock: &'c Clock,
}

impl RingOut<'_> {
    /// Publishes `tick` restamped; the stamp.
    #[inline]
    fn put(&mut self, tick: &Tick) -> u64 {
        let mut t = *tick;
        t.published_raw = self.clock.raw();
        self.publisher.publish(&t);
        t.published_raw
    }
}

impl Apply for RingOut<'_> {
    #[inline]
    fn apply(&mut self, tick: &Tick) {
        let _ = self.put(tick);
    }
}

/// The feed run being heard: its sequence numbers, and the recovery totals when it
/// began (its own are the difference at its end).
struct Heard {
    tracker: SeqTracker,
    relayed: u64,
    totals_at_start: (u64, u64),
}

impl Heard {
    fn new(rec: Option<&Recovery>) -> Heard {
        Heard {
            tracker: SeqTracker::default(),
            relayed: 0,
            totals_at_start: rec.map_or((0, 0), Recovery::totals),
        }
    }

    /// The run's record; without recovery every missing tick is unrecovered.
    fn record(&self, rec: Option<&Recovery>, ended: bool) -> RelaySession {
        let t = &self.tracker;
        let (recovered, unrecovered) = match rec {
            Some(r) => {
                let (a, b) = r.totals();
                (a - self.totals_at_start.0, b - self.totals_at_start.1)
            }
            None => (0, t.missing),
        };
        RelaySession {
            producer: t.producer,
            published: t.newest,
            relayed: self.relayed,
            missing: t.missing,
            gaps: t.gaps,
            recovered,
            unrecovered,
            old: t.old,
            unaccounted: 0,
            ended,
        }
        .closed()
    }
}

/// The recovery thread's side: its hops' other ends and its handle.
type RecoveryThread = std::thread::JoinHandle<recovery::ThreadReport>;

/// Starts the recovery thread on the history service at `addr`; the hot side's state.
fn start_recovery(
    config: &Config,
    addr: SocketAddr,
    clock: &Clock,
) -> Result<(Recovery, RecoveryThread), Failure> {
    let (req_tx, req_rx) = hop::bounded(config.cold.channel, recovery::REQUEST_HOP);
    let (tick_tx, tick_rx) = hop::bounded(config.cold.channel, recovery::TICK_HOP);
    let rec = Recovery::new(
        config.net.as_ref().map_or(0, |n| n.recovery_buffer),
        req_tx,
        tick_rx,
    );
    let config = config.clone();
    let clock = clock.clone();
    let handle = std::thread::Builder::new()
        .name("relay-recovery".into())
        .spawn(move || {
            let cold = ColdThread::enter("relay_recovery", &config, &config.cores.cold, &clock);
            let endpoint = Endpoint::Tcp(addr);
            let name = endpoint.to_string();
            let fetch = |r: &Request| request_at(&endpoint, r, Duration::from_secs(2));
            let patience = Duration::from_millis(config.engine.producer_timeout_ms);
            recovery::thread(&name, fetch, patience, req_rx, tick_tx, cold)
        })
        .map_err(|e| Failure::runtime(anyhow::anyhow!("cannot start the recovery thread: {e}")))?;
    Ok((rec, handle))
}

/// Runs the relay with `args`.
pub fn run(args: &RunArgs, hooks: &AllocatorHooks) -> Result<(), Failure> {
    let Started {
        allowed,
        config,
        out,
        stop,
    } = args.start("relay", &[(RELAY_SUMMARY, Kind::Json)], |c| c.feed.wait)?;
    let Some(net) = config.net.clone() else {
        return Err(Failure::bad_input(config.error_at(
            &KeyPath::key("net"),
            "the relay needs a [net] section: the feed's channel to subscribe to",
        )));
    };
    let clock = Clock::new();
    let driver = Driver::start(&net)
        .map_err(|m| Failure::bad_input(config.error_at(&KeyPath::key("net").then("driver"), m)))?;
    let client = driver
        .client()
        .map_err(|m| Failure::runtime(anyhow::anyhow!(m)))?;
    let mut source = client
        .subscribe(&net)
        .map_err(|m| Failure::runtime(anyhow::anyhow!(m)))?;
    let producer = ProducerId::now(clock.source(), config.ring.lossless);
    let publisher = common::runargs::create_ring(&config, producer)?;
    if let Some(pid) = publisher.region().reclaimed() {
        eprintln!("relay: reclaimed the ring left by pid {pid}, which no longer holds it");
    }
    let (mut rec, recovery_thread) = match net.history {
        Some(addr) => {
            let (r, h) = start_recovery(&config, addr, &clock)?;
            (Some(r), Some(h))
        }
        None => (None, None),
    };
    eprintln!(
        "relay: {} stream {} → {} ({} slots), driver {} ({}), gaps filled from {}",
        net.channel(),
        net.stream_id,
        config.ring.path.display(),
        config.ring.capacity,
        driver.dir().display(),
        if driver.is_embedded() {
            "embedded"
        } else {
            "external"
        },
        net.history
            .map_or_else(|| "nowhere (no net.history)".to_string(), |a| a.to_string())
    );
    let mut ring = RingOut {
        publisher,
        clock: &clock,
    };

    let pinned = pin_or_warn("relay", "receive", config.cores.feed_md);
    let mut waiter = Waiter::new(config.feed.wait);
    let mut hist = fixed_histogram(HIGHEST_NS);
    let mut own = fixed_histogram(HIGHEST_NS);
    let heartbeat_every = clock.raw_from_ns(1_000_000).max(1);
    let silence = clock.raw_from_ns(config.engine.producer_timeout_ms * 1_000_000);
    let first_wait = clock
        .raw_from_ns((config.duration_s * 1e9) as u64)
        .max(silence);
    let mut sessions = Vec::new();
    let mut heard = Heard::new(rec.as_ref());
    let mut foreign = 0u64;
    let mut before_first_control = 0u64;
    let mut ended = false;
    let end_reason;
    let start = clock.raw();
    let mut last_heard = start;
    let mut last_heartbeat = start;
    ring.publisher.heartbeat(start);
    let allocs_before = thread_counts();
    loop {
        let got = match source.poll() {
            Ok(g) => g,
            Err(m) => {
                eprintln!("relay: {m}");
                end_reason = EndReason::ProducerGone;
                break;
            }
        };
        match got {
            Received::Message(Message::Tick(tick)) => {
                let now = clock.raw();
                last_heard = now;
                if heard.tracker.producer == 0 {
                    // Which feed run sent it is not known yet: its first control
                    // message names it, and the gap up to there is filled then.
                    before_first_control += 1;
                    continue;
                }
                match heard.tracker.on_tick(tick.seq) {
                    Step::Old => continue,
                    Step::Gap { first, missed } => {
                        if let Some(r) = rec.as_mut() {
                            r.on_gap(&ring, (first, first + missed), heard.tracker.producer, now);
                        }
                    }
                    _ => {}
                }
                hist.saturating_record(now.saturating_sub(tick.published_raw));
                match rec.as_mut() {
                    Some(r) if r.stale() => {
                        heard.relayed += r.on_live(&tick) as u64;
                        r.pump(&mut ring, now);
                    }
                    _ => {
                        // The ring's stamp ends the relay's own part: no further
                        // clock read.
                        let stamped = ring.put(&tick);
                        heard.relayed += 1;
                        own.saturating_record(stamped.saturating_sub(now));
                    }
                }
            }
            Received::Message(Message::Control(c)) => {
                let now = clock.raw();
                last_heard = now;
                let mut step = heard.tracker.on_control(c.last_seq, c.producer);
                if step == Step::NewProducer {
                    if let Some(r) = rec.as_mut() {
                        r.close_session(&mut ring, now);
                    }
                    sessions.push(heard.record(rec.as_ref(), false));
                    heard = Heard::new(rec.as_ref());
                    step = heard.tracker.on_control(c.last_seq, c.producer);
                }
                if let (Step::Gap { first, missed }, Some(r)) = (step, rec.as_mut()) {
                    r.on_gap(&ring, (first, first + missed), c.producer, now);
                }
                if c.kind == ControlKind::End {
                    ended = true;
                    end_reason = EndReason::EndOfStream;
                    break;
                }
            }
            Received::Foreign(_) => foreign += 1,
            Received::Empty => {
                let now = clock.raw();
                if let Some(r) = rec.as_mut().filter(|r| r.stale()) {
                    r.pump(&mut ring, now);
                }
                if now - last_heartbeat >= heartbeat_every {
                    ring.publisher.heartbeat(now);
                    last_heartbeat = now;
                    if stop.load(Ordering::Relaxed) {
                        end_reason = EndReason::Signal;
                        break;
                    }
                    // Silence: the feed's producer timeout once it has spoken; before
                    // its first message the run's duration (a feed that has not started
                    // by then will not).
                    let limit = if heard.tracker.producer == 0 {
                        first_wait
                    } else {
                        silence
                    };
                    if now - last_heard >= limit {
                        end_reason = EndReason::ProducerGone;
                        break;
                    }
                }
                waiter.wait();
                continue;
            }
        }
        waiter.reset();
    }
    let loop_allocs = thread_counts().since(&allocs_before);
    // Gaps still being filled: waited for (the ring's heartbeat going on) at most the
    // producer timeout; what is outstanding then is unrecovered.
    if let Some(r) = rec.as_mut() {
        let deadline =
            std::time::Instant::now() + Duration::from_millis(config.engine.producer_timeout_ms);
        while r.pump(&mut ring, clock.raw()) && std::time::Instant::now() < deadline {
            ring.publisher.heartbeat(clock.raw());
            std::thread::sleep(Duration::from_millis(1));
        }
        r.close_session(&mut ring, clock.raw());
    }
    ring.publisher.end_and_unlink();
    sessions.push(heard.record(rec.as_ref(), ended));
    let recovery = match (rec, recovery_thread) {
        (Some(r), Some(h)) => {
            let mut report = r.report(clock.ns_per_raw());
            // The hot side's hops close with it: the thread ends.
            drop(r);
            if let Ok(t) = h.join() {
                report.requests = t.requests;
                report.request_errors = t.errors;
                report.foreign_answers = t.foreign;
                report.last_error = t.last_error;
            }
            Some(report)
        }
        _ => None,
    };
    let to_percentiles = |h: &hdrhistogram::Histogram<u64>| {
        let mut ns = fixed_histogram(HIGHEST_NS);
        to_ns(h, clock.ns_per_raw(), &mut ns);
        Percentiles::of(&ns)
    };
    let summary = RelaySummary {
        channel: net.channel(),
        stream_id: net.stream_id,
        history: net.history.map(|a| a.to_string()),
        sessions,
        foreign,
        before_first_control,
        net_ns: to_percentiles(&hist),
        relay_ns: to_percentiles(&own),
        recovery,
        driver_counters: client.driver_counters(),
        loop_allocs,
        pinned,
        end_reason,
        manifest: Manifest::collect(
            &config,
            &args.config,
            &allowed,
            BTreeMap::from([("relay-receive".to_string(), config.cores.feed_md)]),
            clock.source().name(),
            hooks,
        ),
    };
    for s in &summary.sessions {
        eprintln!(
            "relay: feed {}: published {} = relayed {} + recovered {} + unrecovered {} (missing {} in {} gaps, duplicates {}), unaccounted {}{}",
            s.producer,
            s.published,
            s.relayed,
            s.recovered,
            s.unrecovered,
            s.missing,
            s.gaps,
            s.old,
            s.unaccounted,
            if s.ended { "" } else { ", no end message" }
        );
    }
    if let Some(r) = &summary.recovery {
        eprintln!(
            "relay: gap filling: {} ranges, {} requests ({} failed), held at most {} of {} live ticks, {} past the buffer, held {:.1} ms in all{}",
            r.ranges,
            r.requests,
            r.request_errors,
            r.buffered_max,
            r.buffer_capacity,
            r.overflowed,
            r.stale_ms_total,
            r.last_error
                .as_ref()
                .map_or(String::new(), |e| format!("; last error: {e}"))
        );
    }
    let counter = |k: &str| summary.driver_counters.get(k).copied().unwrap_or(0);
    eprintln!(
        "relay: net hop p50 {} ns, p99 {} ns; relay p50 {} ns, p99 {} ns; driver: NAKs sent {}, loss gap fills {}; {:?}",
        summary.net_ns.p50,
        summary.net_ns.p99,
        summary.relay_ns.p50,
        summary.relay_ns.p99,
        counter("NAKs sent"),
        counter("Loss gap fills"),
        summary.end_reason
    );
    common::files::write_json(&out.join(RELAY_SUMMARY), &summary).map_err(Failure::runtime)?;
    drop(source);
    drop(client);
    drop(driver);
    Ok(())
}
