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
//!   the tick into the ring with the feed's stamps, and while nothing arrives sends the
//!   ring's heartbeat about once a millisecond and watches for the feed's silence. Per
//!   tick no allocation (the counting allocator counts the loop: `allocs` in the
//!   summary), lock, system call or formatting.
//! - The media driver's threads (embedded, `net.driver`), on the cores it names.
//!
//! # Ends
//!
//! The feed's end message (after every tick it sent is accounted for), SIGINT or
//! SIGTERM, or the feed's silence for `engine.producer_timeout_ms` (before its first
//! message: for `duration_s`): the relay ends its ring's stream, so the engines end too, and writes
//! `relay_summary.json`: `published` (the newest sequence number the feed named) =
//! `relayed` + `missing`, per feed run heard.

use crate::aeron::{Driver, Received};
use crate::seq::{SeqTracker, Step};
use crate::wire::{ControlKind, Message};
use common::alloc::{thread_counts, AllocCounts};
use common::allocators::AllocatorHooks;
use common::clock::Clock;
use common::config::KeyPath;
use common::cores::{pin_or_warn, Waiter};
use common::failure::Failure;
use common::files::Kind;
use common::latency::{fixed_histogram, to_ns, Percentiles, HIGHEST_NS};
use common::manifest::Manifest;
use common::ring::shm::{self, CreateError, ProducerId};
use common::runargs::{RunArgs, Started};
use common::summary::EndReason;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

/// The summary the relay writes into its `--out` folder.
pub const RELAY_SUMMARY: &str = "relay_summary.json";

/// One feed run the relay heard, and what became of its sequence numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelaySession {
    /// The feed run's identity (its ring's producer start, ns since the Unix epoch).
    pub producer: u64,
    /// The newest sequence number the feed named (in a tick, a heartbeat or its end).
    pub published: u64,
    /// Ticks republished into the local ring.
    pub relayed: u64,
    /// Sequence numbers that never arrived (Aeron could not recover them, or the feed's
    /// offer was refused).
    pub missing: u64,
    /// Runs of missing sequence numbers.
    pub gaps: u64,
    /// Duplicates and late ticks, not relayed.
    pub old: u64,
    /// `published − relayed − missing`: 0 when every sequence number is accounted for.
    pub unaccounted: i64,
    /// Whether the feed's end message arrived.
    pub ended: bool,
}

impl RelaySession {
    fn of(t: &SeqTracker, ended: bool) -> RelaySession {
        RelaySession {
            producer: t.producer,
            published: t.newest,
            relayed: t.relayed,
            missing: t.missing,
            gaps: t.gaps,
            old: t.old,
            unaccounted: t.newest as i64 - t.relayed as i64 - t.missing as i64,
            ended,
        }
    }
}

/// `relay_summary.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RelaySummary {
    /// The channel it subscribed to.
    pub channel: String,
    /// Its Aeron stream id.
    pub stream_id: i32,
    /// The feed runs heard, in order.
    pub sessions: Vec<RelaySession>,
    /// Messages that were not the feed's (wrong length, magic or kind).
    pub foreign: u64,
    /// The network hop, feed publish → relay receive, nanoseconds (every tick relayed).
    pub net_ns: Percentiles,
    /// The relay's media driver's system counters at the end (`NAKs sent`: the gaps it
    /// asked the feed's driver to retransmit, which Aeron recovered; `Loss gap fills`:
    /// what it gave up on), by label.
    pub driver_counters: BTreeMap<String, i64>,
    /// Global allocator calls of the receive loop (0: nothing allocated).
    pub loop_allocs: AllocCounts,
    /// Whether the receive loop ran on `cores.feed_md`.
    pub pinned: bool,
    /// Why it ended.
    pub end_reason: EndReason,
    /// Build and machine.
    pub manifest: Manifest,
}

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
    let mut publisher =
        shm::create(&config.ring.path, config.ring.capacity, producer).map_err(|e| match e {
            CreateError::Foreign { .. } => Failure::bad_input(
                config.error_at(&KeyPath::key("ring").then("path"), e.to_string()),
            ),
            other => Failure::runtime(other),
        })?;
    eprintln!(
        "relay: {} stream {} → {} ({} slots), driver {} ({})",
        net.channel(),
        net.stream_id,
        config.ring.path.display(),
        config.ring.capacity,
        driver.dir().display(),
        if driver.is_embedded() {
            "embedded"
        } else {
            "external"
        }
    );

    let pinned = pin_or_warn("relay", "receive", config.cores.feed_md);
    let mut waiter = Waiter::new(config.feed.wait);
    let mut hist = fixed_histogram(HIGHEST_NS);
    let heartbeat_every = clock.raw_from_ns(1_000_000).max(1);
    let silence = clock.raw_from_ns(config.engine.producer_timeout_ms * 1_000_000);
    let first_wait = clock
        .raw_from_ns((config.duration_s * 1e9) as u64)
        .max(silence);
    let mut sessions = Vec::new();
    let mut tracker = SeqTracker::default();
    let mut foreign = 0u64;
    let mut ended = false;
    let end_reason;
    let start = clock.raw();
    let mut last_heard = start;
    let mut last_heartbeat = start;
    publisher.heartbeat(start);
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
                if tracker.on_tick(tick.seq) == Step::Old {
                    continue;
                }
                hist.saturating_record(now.saturating_sub(tick.published_raw));
                publisher.publish(&tick);
            }
            Received::Message(Message::Control(c)) => {
                last_heard = clock.raw();
                if tracker.on_control(c.last_seq, c.producer) == Step::NewProducer {
                    sessions.push(RelaySession::of(&tracker, false));
                    tracker = SeqTracker::default();
                    tracker.on_control(c.last_seq, c.producer);
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
                if now - last_heartbeat >= heartbeat_every {
                    publisher.heartbeat(now);
                    last_heartbeat = now;
                    if stop.load(Ordering::Relaxed) {
                        end_reason = EndReason::Signal;
                        break;
                    }
                    // Silence: the feed's producer timeout once it has spoken; before
                    // its first message the run's duration (a feed that has not started
                    // by then will not).
                    let limit = if tracker.producer == 0 {
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
    publisher.end_and_unlink();
    sessions.push(RelaySession::of(&tracker, ended));
    let mut ns = fixed_histogram(HIGHEST_NS);
    to_ns(&hist, clock.ns_per_raw(), &mut ns);
    let summary = RelaySummary {
        channel: net.channel(),
        stream_id: net.stream_id,
        sessions,
        foreign,
        net_ns: Percentiles::of(&ns),
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
            "relay: feed {}: published {} = relayed {} + missing {} (gaps {}, duplicates {}), unaccounted {}{}",
            s.producer,
            s.published,
            s.relayed,
            s.missing,
            s.gaps,
            s.old,
            s.unaccounted,
            if s.ended { "" } else { ", no end message" }
        );
    }
    let counter = |k: &str| summary.driver_counters.get(k).copied().unwrap_or(0);
    eprintln!(
        "relay: net hop p50 {} ns, p99 {} ns; driver: NAKs sent {}, loss gap fills {}; {:?}",
        summary.net_ns.p50,
        summary.net_ns.p99,
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
