//! The market-data feed: seeded synthetic ticks on an open-loop schedule, published
//! into the shared-memory ring by a pinned md thread, and kept in a cold history.
//!
//! # Threads
//!
//! - **md** (hot, pinned to `cores.feed_md`; the hot path, in [`md`]): waits for each
//!   tick's scheduled time, generates it, stamps it, publishes it to the ring and passes
//!   a copy to the history thread over a bounded hop (`common::hop`, `cold.channel`;
//!   `try_send`: a full hop drops and counts the copy, it never stalls publishing). Per tick it does
//!   not allocate, lock, log or make a system call; the counting allocator proves the
//!   first in `feed_summary.json` (`md_allocs`).
//! - **history** (cold, on `cores.feed_cold`, else `cores.cold`): drains the channel into the per-symbol
//!   history and OHLCV bars, and prints one interval line per `log.interval_ms` with the
//!   published count, achieved rate, history size, allocator statistics and RSS.
//!
//! The binary (`main.rs`) only chooses the global allocator and calls [`main_with`].
#![deny(unsafe_code)]

pub mod cli;
pub mod gen;
pub mod history;
pub mod journal;
pub mod md;
pub mod net;
pub mod schedule;
pub mod service;

use anyhow::{anyhow, Context};
use clap::Parser;
use common::alloc::AllocProfile;
use common::budget::{ColdBudget, ColdThread};
use common::clock::{Clock, ClockSource};
use common::config::Config;
use common::failure::Failure;
use common::files::{self, Kind};
use common::hop::{self, HopRx, TryRecvError};
use common::manifest::Manifest;
use common::mechanisms::{Mechanisms, Snapshot, Window};
use common::memory::{MemoryReport, MemorySample, Monitor};
use common::ring::shm::{self, ProducerId};
use common::summary::{EvictionReport, FeedSummary, JournalReport, LosslessReport, ServiceReport};
use common::tick::Tick;
use common::units::fmt_bytes;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How the binary's global allocator is named and inspected (see [`common::allocators`]).
pub use common::allocators::AllocatorHooks;

use common::runargs::{Started, FEED_SUMMARY};

/// The md thread ([`md::thread`]) with the network publication beside the ring when
/// the feed has one: its client and publication are added here, on the md thread (Aeron's
/// handles stay on the thread that made them). Returns what the publication counted.
#[cfg(feature = "aeron")]
fn md_thread(
    config: &Config,
    clock: &Clock,
    publisher: common::ring::Publisher<shm::OwnedRegion>,
    net: Option<&net::Net>,
    tx: hop::HopTx<Tick>,
    shared: &md::Shared,
) -> Result<(md::Report, Option<common::summary::NetSendStats>), Failure> {
    let Some(n) = net else {
        return Ok((
            md::thread::<net::Sink>(config, clock, publisher, None, tx, shared),
            None,
        ));
    };
    let mut connected = match n.connect() {
        Ok(c) => c,
        Err(e) => {
            publisher.end_and_unlink();
            return Err(e);
        }
    };
    let report = md::thread(
        config,
        clock,
        publisher,
        Some(&mut connected.sink),
        tx,
        shared,
    );
    Ok((report, Some(connected.sink.stats())))
}

/// Without the `aeron` feature: the ring only.
#[cfg(not(feature = "aeron"))]
fn md_thread(
    config: &Config,
    clock: &Clock,
    publisher: common::ring::Publisher<shm::OwnedRegion>,
    _net: Option<&net::Net>,
    tx: hop::HopTx<Tick>,
    shared: &md::Shared,
) -> Result<(md::Report, Option<common::summary::NetSendStats>), Failure> {
    Ok((
        md::thread::<net::Sink>(config, clock, publisher, None, tx, shared),
        None,
    ))
}

/// What the network publication sent and refused (`[net]`), for the summary.
#[cfg(feature = "aeron")]
fn net_report(
    net: Option<&net::Net>,
    stats: Option<common::summary::NetSendStats>,
) -> Option<common::summary::NetSendReport> {
    Some(net?.report(stats?))
}

/// Without the `aeron` feature there is never a network publication.
#[cfg(not(feature = "aeron"))]
fn net_report(
    _net: Option<&net::Net>,
    _stats: Option<common::summary::NetSendStats>,
) -> Option<common::summary::NetSendReport> {
    None
}

/// Entry point of every feed binary: parses the command line, runs, reports.
pub fn main_with(hooks: AllocatorHooks) -> ExitCode {
    let args = cli::Args::parse();
    match run(&args, &hooks) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report("feed"),
    }
}

/// Runs the feed with the command line `argv` (its first item the program name), for
/// a process that runs the feed beside other work (the single-process pipeline): bad
/// arguments are bad input, nothing is reported.
pub fn run_from<I, T>(argv: I, hooks: AllocatorHooks) -> Result<(), Failure>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = cli::Args::try_parse_from(argv).map_err(|e| Failure::bad_input(anyhow!("{e}")))?;
    run(&args, &hooks)
}

fn run(args: &cli::Args, hooks: &AllocatorHooks) -> Result<(), Failure> {
    common::routed::enter_role("feed_main");
    let Started {
        allowed,
        config,
        out,
        stop,
    } = args
        .run
        .start("feed", &[(FEED_SUMMARY, Kind::Json)], |c| c.feed.wait)?;
    common::allocators::note_unrouted("feed", hooks, config.routing.is_set());
    let clock = Clock::new();
    let replay = match &args.replay {
        Some(dir) => Some(journal::load_replay(&config, dir, args.epoch, args.speed)?),
        None => None,
    };
    let journal = match &config.feed.journal {
        Some(j) => Some(journal::open(&config, j, &clock)?),
        None => None,
    };
    // A feed that continues its journal's newest epoch numbers its first tick one past
    // the last one recorded there.
    let first_seq = journal
        .as_ref()
        .map_or(1, |(_, restored)| restored.next_seq);
    let producer = ProducerId::now(clock.source(), config.ring.lossless).starting_at(first_seq);
    // The network side and the history service first: what they refuse leaves no ring
    // behind (nor disturbs engines waiting on a ring at that path).
    let net = net::open(&config, producer.epoch_ns)?;
    let service = match &config.feed.service {
        Some(s) => Some(service::open(&config, s, producer.epoch_ns)?),
        None => None,
    };
    let mut publisher = common::runargs::create_ring(&config, producer)?;
    let reclaimed = publisher.region().reclaimed();
    if let Some(pid) = reclaimed {
        eprintln!("feed: reclaimed the ring left by pid {pid}, which no longer holds it");
    }
    if config.ring.lossless {
        let c = clock.clone();
        publisher.set_liveness(
            clock.raw_from_ns(config.ring.consumer_timeout_ms * 1_000_000),
            move || c.raw(),
        );
    }
    eprintln!(
        "feed: publishing {} symbols at {:.0} ticks/s for {} s into {} ({} slots{}, {}, clock {})",
        config.symbols.len(),
        config.offered_per_s(),
        config.duration_s,
        config.ring.path.display(),
        config.ring.capacity,
        if first_seq > 1 {
            format!(", from sequence number {first_seq}")
        } else {
            String::new()
        },
        if config.ring.lossless {
            "lossless"
        } else {
            "lossy"
        },
        clock.source().name()
    );

    let mut hist = history::History::new(config.symbols.len(), config.feed.history.max_ticks());
    let journaling = journal.map(|(writer, restored)| {
        let report = journal::restore(&config, &restored, &mut hist);
        journal::Journaling::new(writer, report)
    });
    let (tx, rx) = hop::bounded::<Tick>(config.cold.channel, config.feed.history_channel);
    let profile = Arc::new(AllocProfile::new(&ROLES));
    let counters = Arc::new(md::Counters::default());
    let start_raw = Arc::new(AtomicU64::new(0));
    let history = {
        let config = config.clone();
        let clock = clock.clone();
        let counters = Arc::clone(&counters);
        let start_raw = Arc::clone(&start_raw);
        let stats = hooks.stats;
        let monitor = Monitor::new(config.monitor, MemorySample::take(stats()));
        let profile = Arc::clone(&profile);
        std::thread::Builder::new()
            .name("feed-history".into())
            .spawn(move || {
                let cold = ColdContext {
                    counters: &counters,
                    start_raw: &start_raw,
                    stats,
                    profile: &profile,
                };
                history_thread(
                    &config,
                    &clock,
                    rx,
                    &cold,
                    monitor,
                    (hist, journaling, service),
                )
            })
            .context("cannot start the history thread")
            .map_err(Failure::runtime)?
    };
    // Shared with the md thread, which adds its publication; kept here until the end,
    // so that the media driver outlives the feed's last messages.
    let net = net.map(Arc::new);
    let md = {
        let net = net.clone();
        let config = config.clone();
        let clock = clock.clone();
        let counters = Arc::clone(&counters);
        let stop = Arc::clone(&stop);
        let start_raw = Arc::clone(&start_raw);
        let profile = Arc::clone(&profile);
        std::thread::Builder::new()
            .name("feed-md".into())
            .spawn(move || {
                let shared = md::Shared {
                    counters: &counters,
                    stop: &stop,
                    start_raw: &start_raw,
                    profile: &profile,
                    replay: replay.as_ref(),
                };
                md_thread(&config, &clock, publisher, net.as_deref(), tx, &shared)
            })
            .context("cannot start the md thread")
            .map_err(Failure::runtime)?
    };
    let (md, net_stats) = md
        .join()
        .map_err(|_| Failure::runtime(anyhow!("md thread panicked")))??;
    let net_report = net_report(net.as_deref(), net_stats);
    let HistoryEnd {
        stats: hist,
        digest: hist_digest,
        memory,
        budget: history_budget,
        mechanisms,
        journal: journal_report,
        service: service_report,
    } = history
        .join()
        .map_err(|_| Failure::runtime(anyhow!("history thread panicked")))?;

    let elapsed_s = md.elapsed_ns as f64 / 1e9;
    let mut cores_used = BTreeMap::new();
    if md.pinned {
        cores_used.insert("feed_md".to_string(), config.cores.feed_md);
    }
    let summary = FeedSummary {
        published: md.published,
        offered_per_s: config.offered_per_s(),
        achieved_per_s: if elapsed_s > 0.0 {
            md.published as f64 / elapsed_s
        } else {
            0.0
        },
        elapsed_s,
        history_ticks: hist.ticks,
        history_bytes: hist.ticks * 64,
        history_evicted: hist.evicted,
        history_bars: hist.bars,
        history_dropped: md.counts.dropped,
        history_digest: format!("{:016x}", hist_digest),
        md_allocs: md.counts.allocs,
        alloc_profile: {
            profile.publish(ROLE_MAIN);
            profile.snapshot()
        },
        memory,
        lossless: md.lossless.map(|l| LosslessReport {
            waits: l.waits,
            wait_ms: l.wait_raw as f64 * clock.ns_per_raw() / 1e6,
            evictions: l.evictions,
            evicted: l.evicted[..(l.evictions as usize).min(l.evicted.len())]
                .iter()
                .map(|e| EvictionReport {
                    pid: e.pid,
                    cursor: e.cursor,
                    blocked_seq: e.blocked_seq,
                })
                .collect(),
        }),
        reclaimed_ring_of_pid: reclaimed,
        journal: journal_report,
        service: service_report,
        net: net_report,
        cold_threads: [("feed_history".to_string(), history_budget)].into(),
        mechanisms,
        alloc_call_ns: if config.cold.time_allocator {
            common::alloc::call_times(Clock::with_source(ClockSource::Tsc).ns_per_raw())
        } else {
            BTreeMap::new()
        },
        end_reason: md.counts.end_reason,
        manifest: Manifest::collect(
            &config,
            &args.run.config,
            &allowed,
            cores_used,
            clock.source().name(),
            hooks,
        ),
    };
    let path = out.join(FEED_SUMMARY);
    files::write_json(&path, &summary).map_err(Failure::classify)?;
    println!(
        "feed done: published={} offered={:.0}/s achieved={:.0}/s history={} dropped={} md_allocs={} ({:?}) -> {}",
        summary.published,
        summary.offered_per_s,
        summary.achieved_per_s,
        summary.history_ticks,
        summary.history_dropped,
        summary.md_allocs.calls(),
        summary.end_reason,
        path.display()
    );
    eprintln!("feed: cold thread feed-history: {history_budget}");
    if let Some(j) = &summary.journal {
        println!(
            "feed journal: {} epoch {}: journaled {} ticks in {} blocks, {} not journaled; restored {} from earlier epochs; {} segments removed by retention{}",
            j.dir,
            j.epoch,
            j.journaled,
            j.blocks,
            j.unjournaled,
            j.restored,
            j.removed_segments,
            j.error.as_deref().map(|e| format!("; stopped: {e}")).unwrap_or_default()
        );
    }
    if let Some(l) = &summary.lossless {
        println!(
            "feed lossless: waited {} times, {:.1} ms in all; evicted {} engine(s)",
            l.waits, l.wait_ms, l.evictions
        );
        for e in &l.evicted {
            eprintln!(
                "feed: lossless: evicted engine pid {} (silent for {} ms): it had passed seq {}, the feed was waiting to publish seq {}",
                e.pid, config.ring.consumer_timeout_ms, e.cursor, e.blocked_seq
            );
        }
    }
    Ok(())
}

/// Thread roles of the allocation profile, in slot order.
const ROLES: [&str; 3] = ["feed_main", "feed_md", "feed_history"];
const ROLE_MAIN: usize = 0;
const _: () = assert!(md::ROLE == 1, "ROLES[1] is the md thread's");
const ROLE_HISTORY: usize = 2;

/// What the history thread reads from the others.
struct ColdContext<'a> {
    counters: &'a md::Counters,
    start_raw: &'a AtomicU64,
    stats: fn() -> BTreeMap<String, u64>,
    profile: &'a AllocProfile,
}

/// Drains ticks into the history and prints interval lines (with a memory sample);
/// returns the final history figures and the memory report.
fn history_thread(
    config: &Config,
    clock: &Clock,
    mut rx: HopRx<Tick>,
    cold: &ColdContext,
    mut monitor: Monitor,
    (mut hist, mut journal, mut service): (
        history::History,
        Option<journal::Journaling>,
        Option<service::Service>,
    ),
) -> HistoryEnd {
    let ColdContext {
        counters,
        start_raw,
        stats,
        profile,
    } = *cold;
    let mut cold = ColdThread::enter("feed_history", config, config.cores.feed_cold(), clock);
    let ns_per_raw = clock.ns_per_raw();
    let interval_raw = clock.raw_from_ns(config.log.interval_ms * 1_000_000);
    let mut next_report = 0u64;
    let mut last_published = 0u64;
    let mut last_report_raw = 0u64;
    let mut window = Window::new();
    loop {
        let mut drained = 0;
        let disconnected = loop {
            match rx.try_recv() {
                Ok(tick) => {
                    let start = start_raw.load(Ordering::Acquire);
                    let second =
                        (tick.scheduled_raw.saturating_sub(start) as f64 * ns_per_raw / 1e9) as u64;
                    hist.push(tick, second);
                    if let Some(j) = journal.as_mut() {
                        j.append(tick);
                    }
                    drained += 1;
                    if drained >= 65_536 {
                        break false;
                    }
                    if drained % 64 == 0 {
                        cold.yield_if_due();
                    }
                }
                Err(TryRecvError::Empty) => break false,
                Err(TryRecvError::Disconnected) => break true,
            }
        };
        if let Some(j) = journal.as_mut() {
            j.flush();
        }
        if let Some(s) = service.as_mut() {
            s.poll(&hist, journal.as_ref(), &mut cold);
        }
        let now = clock.raw();
        let start = start_raw.load(Ordering::Acquire);
        if start != 0 && next_report == 0 {
            next_report = start + interval_raw;
            last_report_raw = start;
        }
        if disconnected || (next_report != 0 && now >= next_report) {
            let published = counters.published.load(Ordering::Relaxed);
            let secs = clock.delta_ns(last_report_raw, now) as f64 / 1e9;
            let rate = if secs > 0.0 {
                (published - last_published) as f64 / secs
            } else {
                0.0
            };
            profile.publish(ROLE_HISTORY);
            let allocator = stats();
            cold.yield_if_due();
            let snapshot = Snapshot::take("feed", &[], &allocator);
            let elapsed_s = clock.delta_ns(start, now) as f64 / 1e9;
            if elapsed_s <= config.warmup_s {
                // Until the warm-up has passed, each report restarts the window.
                window = Window::new();
            }
            let step = window.observe(snapshot);
            cold.yield_if_due();
            let sample = MemorySample::take(allocator);
            let figures = history_figures(&hist.stats());
            cold.yield_if_due();
            println!(
                "feed t={elapsed_s:.1}s published={published} rate={rate:.0}/s {} dropped={} | {} | allocs {}",
                figures,
                counters.dropped.load(Ordering::Relaxed),
                common::memory::format_line(&sample),
                profile.format_line(),
            );
            if let Some(step) = step {
                println!(
                    "feed   mechanisms {}",
                    common::mechanisms::format_line(&step)
                );
            }
            if let Some(w) = monitor.observe(sample) {
                eprintln!("feed: warning: {w}");
            }
            if let Some(j) = journal.as_mut() {
                j.sync();
                cold.yield_if_due();
            }
            last_published = published;
            last_report_raw = now;
            next_report = now + interval_raw;
            cold.yield_if_due();
        }
        if disconnected {
            break;
        }
        if drained == 0 {
            // Poll rather than block: a blocked receiver would make the md thread's
            // send a futex wake-up (a system call on the hot path).
            cold.idle();
        }
    }
    if let Some(j) = journal.as_mut() {
        j.sync();
    }
    profile.publish(ROLE_HISTORY);
    // The budget covers the run, not the digest of the whole history that follows it.
    let budget = cold.finish();
    HistoryEnd {
        stats: hist.stats(),
        digest: hist.digest(),
        memory: monitor.report().clone(),
        budget,
        mechanisms: window.mechanisms(),
        journal: journal.map(journal::Journaling::report),
        service: service.map(|s| s.report()),
    }
}

/// What the history thread hands back at the end of a run.
struct HistoryEnd {
    stats: history::HistoryStats,
    digest: u64,
    memory: MemoryReport,
    budget: ColdBudget,
    mechanisms: Option<Mechanisms>,
    journal: Option<JournalReport>,
    service: Option<ServiceReport>,
}

/// `history=N (bytes) evicted=N bars=N`.
fn history_figures(h: &history::HistoryStats) -> String {
    format!(
        "history={} ({}) evicted={} bars={}",
        h.ticks,
        fmt_bytes(h.ticks * 64),
        h.evicted,
        h.bars
    )
}
