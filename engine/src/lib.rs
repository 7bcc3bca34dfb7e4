//! The trading engine: subscribes to the feed's ring, runs a market-making strategy on
//! every tick on a pinned hot thread with a per-tick bumpalo arena, and logs stage
//! latency percentiles.
//!
//! # Threads
//!
//! - **hot** (pinned to `cores.engine_hot`, busy-polling; the hot path, in
//!   `engine/src/hot.rs`): see [`hot`]. No allocation
//!   per tick after warm-up in arena mode (counted and reported as
//!   `global_allocs_per_tick`), no lock, no system call, no logging.
//! - **report** (cold): every interval receives the hot thread's histograms over a
//!   hop (`common::hop`, `cold.channel`), prints one line per stage, appends `engine.hlog`, keeps the run
//!   totals, and returns the histograms for reuse.
//! - **orders** (cold): receives finished order messages (fixed-size values over a
//!   hop), checks their framing and checksum, and counts them, standing in
//!   for an order gateway.
//! - **recovery** (cold, with `engine.recover`): fetches the ranges the hot thread
//!   missed from the feed's history service and hands the ticks back in order (see
//!   [`recovery`]).
//! - **load** (cold, with `engine.service_load`): loads the feed's history service with
//!   snapshot and range requests at a fixed rate and measures them (see [`load`]).
//!
//! Cold threads poll their channels with short sleeps instead of blocking, so that a
//! send from the hot thread never has to wake a sleeping receiver (a system call).
//!
//! The engine waits for the feed if started first, adopts the feed's clock source, and
//! stops at the end of the feed's stream, after `duration_s + grace_s` from its first
//! tick, when the feed stops showing signs of life, or on SIGINT/SIGTERM. It then writes
//! `engine_summary.json` next to `engine.hlog`.
#![deny(unsafe_code)]

pub mod book;
pub mod cli;
pub mod decider;
pub mod hot;
mod input;
pub mod load;
pub mod order;
pub mod recovery;
pub mod strategy;

use anyhow::{anyhow, Context};
use clap::Parser;
use common::alloc::AllocProfile;
use common::budget::{ColdBudget, ColdThread};
use common::clock::{Clock, ClockSource};
use common::config::{Config, KeyPath};
use common::failure::Failure;
use common::files::{self, Kind};
use common::latency::{
    fixed_histogram, format_line, interval_channel, to_ns, Hlog, IntervalSink, Percentiles,
    HIGHEST_NS, STAGES,
};
use common::manifest::Manifest;
use common::mechanisms::{Mechanisms, Snapshot, Window};
use common::memory::{MemoryReport, MemorySample, Monitor};
use common::ring::shm::{self, MappedRegion, OpenError, RingInfo};
use common::ring::{StartAt, Subscriber};

use common::hop::{self, HopRx, TryRecvError};
use common::summary::{EndReason, EngineSummary, WarmReport};
use hdrhistogram::Histogram;
use order::OrderMsg;
use std::collections::BTreeMap;
use std::io;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

// The unit tests count the global allocator's calls (see `decider`'s tests).
#[cfg(test)]
#[global_allocator]
static TEST_ALLOC: common::alloc::CountingAlloc<std::alloc::System> =
    common::alloc::CountingAlloc::new(std::alloc::System, "system");

/// How the binary's global allocator is named and inspected (see [`common::allocators`]).
pub use common::allocators::AllocatorHooks;

use common::runargs::{Started, ENGINE_HLOG, ENGINE_SUMMARY};

/// Entry point of every engine binary: parses the command line, runs, reports.
pub fn main_with(hooks: AllocatorHooks) -> ExitCode {
    let args = cli::Args::parse();
    match run(&args, &hooks) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report("engine"),
    }
}

/// Runs the engine with the command line `argv` (its first item the program name), for
/// a process that runs the engine beside other work (the single-process pipeline): bad
/// arguments are bad input, nothing is reported.
pub fn run_from<I, T>(argv: I, hooks: AllocatorHooks) -> Result<(), Failure>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = cli::Args::try_parse_from(argv).map_err(|e| Failure::bad_input(anyhow!("{e}")))?;
    run(&args, &hooks)
}

/// Waits until a live feed's ring can be opened (not the one of `skip_epoch`, a feed
/// already read). `None` if stopped while waiting.
pub(crate) fn wait_for_ring(
    config: &Config,
    stop: &AtomicBool,
    skip_epoch: Option<u64>,
) -> Result<Option<(Subscriber<MappedRegion>, RingInfo)>, Failure> {
    let path = &config.ring.path;
    let mut said = false;
    let mut say = |what: String| {
        if !said {
            eprintln!("engine: {what}");
            said = true;
        }
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match shm::open(path, StartAt::Oldest) {
            Ok((sub, info)) if sub.producer_ended() => {
                drop(sub);
                say(format!(
                    "ring {} is from a feed (pid {}) that has ended; waiting for a new feed",
                    path.display(),
                    info.producer_pid
                ));
            }
            Ok((sub, info)) if Some(info.epoch_ns) == skip_epoch => {
                drop(sub);
                say(format!(
                    "ring {} is still the old feed's (pid {}); waiting for a new feed",
                    path.display(),
                    info.producer_pid
                ));
            }
            Ok((sub, info)) if !common::os::process_alive(info.producer_pid) => {
                drop(sub);
                say(format!(
                    "ring {} was left by pid {}, which is not running; waiting for a new feed",
                    path.display(),
                    info.producer_pid
                ));
            }
            Ok(found) => return Ok(Some(found)),
            Err(OpenError::Missing(_)) => {
                say(format!("waiting for feed on {}", path.display()));
            }
            Err(e @ OpenError::Invalid { .. }) => return Err(Failure::bad_input(e)),
            Err(OpenError::Io { path, error }) if error.kind() == io::ErrorKind::PermissionDenied => {
                return Err(Failure::bad_input(config.error_at(
                    &KeyPath::key("ring").then("path"),
                    format!(
                        "ring file {} exists but this user may not read it ({error}); run the engine as the feed's user",
                        path.display()
                    ),
                )))
            }
            Err(e) => return Err(Failure::runtime(e)),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(args: &cli::Args, hooks: &AllocatorHooks) -> Result<(), Failure> {
    common::routed::enter_role("engine_main");
    let Started {
        allowed,
        config,
        out,
        stop,
    } = args.run.start(
        "engine",
        &[(ENGINE_SUMMARY, Kind::Json), (ENGINE_HLOG, Kind::Hlog)],
        |c| c.engine.wait,
    )?;
    common::allocators::note_unrouted("engine", hooks, config.routing.is_set());
    let hlog_path = out.join(ENGINE_HLOG);
    let start_time = SystemTime::now();
    let hlog = Hlog::create(
        &hlog_path,
        start_time,
        &format!(
            "engine {} config {}",
            common::manifest::GIT_REV,
            args.run.config.display()
        ),
    )
    .map_err(Failure::classify)?;

    let Some(input::Opened {
        input,
        held: _driver_until_the_end,
        clock,
        reading,
    }) = input::open(&config, &stop)?
    else {
        eprintln!("engine: stopped while waiting for the feed");
        return Ok(());
    };
    let source = clock.source();
    let (snapshot, warm_error) = match &config.engine.history_service {
        Some(socket) => match fetch_snapshot(socket, config.engine.window) {
            Ok(s) => {
                eprintln!(
                    "engine: warmed from {}: {} ticks, covering the ring through seq {}",
                    socket,
                    s.ticks.len(),
                    s.covered_through
                );
                (Some(s), None)
            }
            Err(e) => {
                eprintln!(
                    "engine: warning: no snapshot from {}: {e}; warming from the ring",
                    socket
                );
                (None, Some(e))
            }
        },
        None => (None, None),
    };
    let snapshot_stats = snapshot
        .as_ref()
        .map_or((0, 0), |s| (s.ticks.len() as u64, s.covered_through));
    eprintln!(
        "engine: reading {reading}, scratch {}, {} levels",
        config.engine.scratch.name(),
        config.engine.levels
    );

    let profile = Arc::new(AllocProfile::new(&ROLES));
    let (recorder, sink) = interval_channel(config.cold.channel, 2);
    let (orders_tx, orders_rx) =
        hop::bounded::<OrderMsg>(config.cold.channel, config.engine.order_channel);
    let report = {
        let clock = clock.clone();
        let config = config.clone();
        let monitor = Monitor::new(config.monitor, MemorySample::take((hooks.stats)()));
        let stats = hooks.stats;
        let profile = Arc::clone(&profile);
        std::thread::Builder::new()
            .name("engine-report".into())
            .spawn(move || {
                // Work comes once per interval: a tenth of it is soon enough to look,
                // at most 100 ms, never more often than the cold poll.
                let poll_ms = (config.log.interval_ms / 10)
                    .min(100)
                    .max(config.cold.poll_ms);
                let cold =
                    ColdThread::enter("engine_report", &config, config.cores.engine_cold(), &clock)
                        .with_poll(Duration::from_millis(poll_ms));
                let hot_cores = [config.cores.feed_md, config.cores.engine_hot];
                let ctx = ReportContext {
                    clock: &clock,
                    stats,
                    profile: &profile,
                    hot_cores: &hot_cores,
                };
                report_thread(sink, hlog, &ctx, cold, monitor)
            })
            .context("cannot start the report thread")
            .map_err(Failure::runtime)?
    };
    let orders_thread = {
        let clock = clock.clone();
        let config = config.clone();
        let profile = Arc::clone(&profile);
        std::thread::Builder::new()
            .name("engine-orders".into())
            .spawn(move || {
                let cold =
                    ColdThread::enter("engine_orders", &config, config.cores.engine_cold(), &clock);
                order_thread(orders_rx, cold, &profile)
            })
            .context("cannot start the order thread")
            .map_err(Failure::runtime)?
    };
    let (recovery_hops, recovery_thread) = if config.engine.recover {
        let socket = config
            .engine
            .history_service
            .clone()
            .expect("validated: engine.recover needs engine.history_service");
        let (req_tx, req_rx) = hop::bounded(config.cold.channel, recovery::REQUEST_HOP);
        let (tick_tx, tick_rx) = hop::bounded(config.cold.channel, recovery::TICK_HOP);
        let clock = clock.clone();
        let config = config.clone();
        let profile = Arc::clone(&profile);
        let handle = std::thread::Builder::new()
            .name("engine-recovery".into())
            .spawn(move || {
                let cold = ColdThread::enter(
                    "engine_recovery",
                    &config,
                    config.cores.engine_cold(),
                    &clock,
                );
                let patience = Duration::from_millis(config.engine.producer_timeout_ms);
                let name = socket.to_string();
                let fetch = |r: &common::service::Request| {
                    common::service::request_at(&socket, r, Duration::from_secs(2))
                };
                let r = recovery::thread(&name, fetch, patience, req_rx, tick_tx, cold);
                profile.publish(ROLE_RECOVERY);
                r
            })
            .context("cannot start the recovery thread")
            .map_err(Failure::runtime)?;
        (Some((req_tx, tick_rx)), Some(handle))
    } else {
        (None, None)
    };
    let load_done = Arc::new(AtomicBool::new(false));
    let load_thread = match (&config.engine.service_load, &config.engine.history_service) {
        (Some(load), Some(socket)) => {
            let target = load::Target {
                socket: socket.clone(),
                ring: config.ring.path.clone(),
                load: load.clone(),
                depth: config.engine.window,
            };
            let clock = clock.clone();
            let config = config.clone();
            let profile = Arc::clone(&profile);
            let done = Arc::clone(&load_done);
            Some(
                std::thread::Builder::new()
                    .name("engine-load".into())
                    .spawn(move || {
                        let cold = ColdThread::enter(
                            "engine_load",
                            &config,
                            config.cores.engine_cold(),
                            &clock,
                        );
                        let r = load::thread(target, &done, cold);
                        profile.publish(ROLE_LOAD);
                        r
                    })
                    .context("cannot start the service-load thread")
                    .map_err(Failure::runtime)?,
            )
        }
        _ => None,
    };
    let hot = {
        let config = config.clone();
        let clock = clock.clone();
        let stop = Arc::clone(&stop);
        let profile = Arc::clone(&profile);
        std::thread::Builder::new()
            .name("engine-hot".into())
            .spawn(move || {
                let out = input.run_hot(
                    &config,
                    &clock,
                    &stop,
                    recorder,
                    orders_tx,
                    hot::FromService {
                        snapshot: snapshot.as_ref(),
                        recovery: recovery_hops,
                    },
                );
                profile.publish(ROLE_HOT);
                out
            })
            .context("cannot start the hot thread")
            .map_err(Failure::runtime)?
    };
    let (
        hot::Finished {
            result,
            symbols_full,
            pinned,
            arena_bytes,
            pool,
            decider,
            recovery: recovery_report,
        },
        aeron,
    ) = match hot
        .join()
        .map_err(|_| Failure::runtime(anyhow!("hot thread panicked")))?
        .map_err(|e| Failure::runtime(anyhow!(e)))?
    {
        Some(out) => out,
        None => {
            eprintln!("engine: stopped while waiting for the feed");
            return Ok(());
        }
    };
    load_done.store(true, Ordering::Relaxed);
    let load = match load_thread {
        Some(h) => Some(
            h.join()
                .map_err(|_| Failure::runtime(anyhow!("service-load thread panicked")))?,
        ),
        None => None,
    };
    // The hot thread's ends are dropped: the recovery thread ends.
    let recovery_thread = match recovery_thread {
        Some(h) => Some(
            h.join()
                .map_err(|_| Failure::runtime(anyhow!("recovery thread panicked")))?,
        ),
        None => None,
    };
    let recovery = recovery_report.map(|mut r| {
        if let Some(t) = &recovery_thread {
            r.requests = t.requests;
            r.request_errors = t.errors;
            r.foreign_answers = t.foreign;
            r.last_error = t.last_error.clone();
        }
        r
    });
    let (orders, orders_dropped) = (decider.orders, decider.orders_dropped);
    let warm = config.engine.history_service.as_ref().map(|_| WarmReport {
        snapshot_ticks: snapshot_stats.0,
        covered_through: snapshot_stats.1,
        skipped: decider.skipped,
        symbols_full: symbols_full.unwrap_or(0),
        first_quote_window_min: decider.first_quote_window_min(),
        warmups: decider.warmups,
        error: warm_error.clone(),
    });
    let (filled_lots, net_position_lots) = (decider.filled_lots(), decider.net_position_lots());
    drop(decider); // closes the order channel
    let (orders_verified, orders_invalid, orders_digest, orders_budget) = orders_thread
        .join()
        .map_err(|_| Failure::runtime(anyhow!("order thread panicked")))?;
    let (latency_ns, memory, report_budget, mechanisms) = report
        .join()
        .map_err(|_| Failure::runtime(anyhow!("report thread panicked")))?
        .with_context(|| format!("cannot write {}", hlog_path.display()))
        .map_err(Failure::runtime)?;
    profile.publish(ROLE_MAIN);

    let mut cores_used = BTreeMap::new();
    if pinned {
        cores_used.insert("engine_hot".to_string(), config.cores.engine_hot);
    }
    let summary = EngineSummary {
        published_seen: result.published_seen,
        sessions: result.sessions.clone(),
        unread: result.unread,
        received: result.received,
        gaps: result.gaps,
        missed: result.missed,
        recovered: result.recovered,
        unrecovered: result.unrecovered,
        recovery,
        service_load: load.as_ref().map(|(r, _)| r.clone()),
        aeron,
        measured_ticks: result.measured,
        scratch: config.engine.scratch.name().into(),
        global_allocs_per_tick: if result.measured > 0 {
            result.allocs_after_warmup.calls() as f64 / result.measured as f64
        } else {
            0.0
        },
        hot_allocs: result.allocs_after_warmup,
        orders,
        orders_dropped,
        orders_verified,
        orders_invalid,
        orders_digest: format!("{orders_digest:08x}"),
        warm,
        filled_lots,
        net_position_lots,
        corrupt: result.corrupt,
        arena_bytes,
        pool,
        alloc_profile: profile.snapshot(),
        memory,
        latency_ns,
        cold_threads: [
            ("engine_report".to_string(), report_budget),
            ("engine_orders".to_string(), orders_budget),
        ]
        .into_iter()
        .chain(
            recovery_thread
                .as_ref()
                .map(|t| ("engine_recovery".to_string(), t.budget)),
        )
        .chain(load.as_ref().map(|(_, b)| ("engine_load".to_string(), *b)))
        .collect(),
        mechanisms,
        alloc_call_ns: if config.cold.time_allocator {
            common::alloc::call_times(Clock::with_source(ClockSource::Tsc).ns_per_raw())
        } else {
            BTreeMap::new()
        },
        end_reason: result.end_reason,
        manifest: Manifest::collect(
            &config,
            &args.run.config,
            &allowed,
            cores_used,
            source.name(),
            hooks,
        ),
    };
    let path = out.join(ENGINE_SUMMARY);
    files::write_json(&path, &summary).map_err(Failure::classify)?;
    println!(
        "engine done ({:?}): received={} gaps={} missed={} recovered={} unrecovered={} published={} unread={} feeds={} hot_allocs/tick={:.3} orders={} dropped={} invalid={} -> {}",
        summary.end_reason,
        summary.received,
        summary.gaps,
        summary.missed,
        summary.recovered,
        summary.unrecovered,
        summary.published_seen,
        summary.unread,
        summary.sessions.len(),
        summary.global_allocs_per_tick,
        summary.orders,
        summary.orders_dropped,
        summary.orders_invalid,
        path.display()
    );
    eprintln!("engine: cold thread engine-report: {report_budget}");
    eprintln!("engine: cold thread engine-orders: {orders_budget}");
    if let Some(t) = &recovery_thread {
        eprintln!("engine: cold thread engine-recovery: {}", t.budget);
    }
    if let Some(l) = &summary.service_load {
        eprintln!(
            "engine: service load: {} requests ({} snapshots), {} errors, {} ticks in {:.1} s = {:.0} ticks/s; request to last byte p50 {:.0} us, p99 {:.0} us, max {:.0} us{}",
            l.requests,
            l.snapshots,
            l.errors,
            l.ticks,
            l.seconds,
            l.ticks_per_s,
            l.latency_p50_us,
            l.latency_p99_us,
            l.latency_max_us,
            l.last_error
                .as_ref()
                .map_or(String::new(), |e| format!("; last error: {e}"))
        );
    }
    if let Some(r) = &summary.recovery {
        eprintln!(
            "engine: recovery: {} stale stretches (longest {:.1} ms), {} ranges, recovered {} of {} missed, {} unrecovered, {} live ticks past a full buffer, {} orders while stale{}",
            r.recoveries,
            r.stale_ms_max,
            r.ranges,
            r.recovered,
            summary.missed,
            r.unrecovered,
            r.overflowed,
            r.orders_while_stale,
            r.last_error
                .as_ref()
                .map_or(String::new(), |e| format!("; last service error: {e}"))
        );
    }
    if summary.end_reason == EndReason::ProducerGone {
        return Err(Failure::runtime(anyhow!(
            "the feed stopped showing signs of life for {} ms; summary written",
            config.engine.producer_timeout_ms
        )));
    }
    Ok(())
}

/// Thread roles of the allocation profile, in slot order.
const ROLES: [&str; 6] = [
    "engine_main",
    "engine_hot",
    "engine_report",
    "engine_orders",
    "engine_recovery",
    "engine_load",
];
const ROLE_MAIN: usize = 0;
const ROLE_HOT: usize = 1;
const ROLE_REPORT: usize = 2;
const ROLE_ORDERS: usize = 3;
const ROLE_RECOVERY: usize = 4;
const ROLE_LOAD: usize = 5;

/// What the report thread reads besides its intervals.
struct ReportContext<'a> {
    clock: &'a Clock,
    stats: fn() -> BTreeMap<String, u64>,
    profile: &'a AllocProfile,
    /// The cores whose interrupts are counted: both hot threads'.
    hot_cores: &'a [usize],
}

/// What the report thread hands back: the measured latencies, the memory report, its
/// own budget and the mechanisms of the measured window.
type Reported = (
    BTreeMap<String, Percentiles>,
    MemoryReport,
    ColdBudget,
    Option<Mechanisms>,
);

/// Receives intervals, prints and logs them, keeps totals of the measured ones, and
/// samples memory and the mechanisms once per interval (the window of the mechanisms
/// starts at the end of the last warm-up interval).
fn report_thread(
    mut sink: IntervalSink,
    mut hlog: Hlog,
    ctx: &ReportContext,
    mut cold: ColdThread,
    mut monitor: Monitor,
) -> std::io::Result<Reported> {
    let ReportContext {
        clock,
        stats,
        profile,
        hot_cores,
    } = *ctx;
    let mut window = Window::new();
    let ns_per_raw = clock.ns_per_raw();
    let mut ns = fixed_histogram(HIGHEST_NS);
    let mut totals: Vec<Histogram<u64>> =
        STAGES.iter().map(|_| fixed_histogram(HIGHEST_NS)).collect();
    let mut first_raw = None;
    let mut result = Ok(());
    let warmup_tags: Vec<String> = STAGES
        .iter()
        .map(|s| format!("warmup_{}", s.name()))
        .collect();
    loop {
        let mut interval = match sink.full.try_recv() {
            Ok(i) => i,
            Err(TryRecvError::Empty) => {
                cold.idle();
                continue;
            }
            Err(TryRecvError::Disconnected) => break,
        };
        let first = *first_raw.get_or_insert(interval.start_raw);
        let offset = Duration::from_nanos(clock.delta_ns(first, interval.start_raw));
        let length = Duration::from_nanos(clock.delta_ns(interval.start_raw, interval.end_raw));
        let t = (offset + length).as_secs_f64();
        let per_tick = if interval.ticks > 0 {
            interval.allocs.calls() as f64 / interval.ticks as f64
        } else {
            0.0
        };
        println!(
            "engine t={t:.1}s ticks={} gaps={} missed={} hot_allocs/tick={per_tick:.3} (allocs={} frees={} bytes={}){}",
            interval.ticks,
            interval.gaps,
            interval.missed,
            interval.allocs.allocs,
            interval.allocs.frees,
            interval.allocs.bytes,
            if interval.warmup { " [warm-up]" } else { "" }
        );
        // Each step below (a histogram's conversion, its `.hlog` encoding, the totals,
        // the memory and mechanism samples) is followed by a yield check, so that the
        // thread hands its core back within about a slice plus one step (profiled: the
        // conversion and the encoding are most of this thread's CPU).
        for (i, stage) in STAGES.iter().enumerate() {
            to_ns(interval.stages.get(*stage), ns_per_raw, &mut ns);
            cold.yield_if_due();
            println!(
                "engine   {}",
                format_line(stage.name(), &Percentiles::of(&ns))
            );
            if result.is_ok() {
                // Warm-up intervals get their own tags, so that a reader filtering on a
                // stage name sees only measured intervals.
                let tag = if interval.warmup {
                    warmup_tags[i].as_str()
                } else {
                    stage.name()
                };
                result = hlog.append(tag, &ns, offset, length);
                cold.yield_if_due();
            }
            if !interval.warmup {
                totals[i]
                    .add(&ns)
                    .expect("histograms with equal bounds add");
            }
            cold.yield_if_due();
        }
        interval.stages.reset();
        // The hot thread gone (after its last interval) takes no spares back; the
        // interval is still sampled below, and the next receive ends the loop.
        let _ = sink.spares.try_send(interval.stages);
        cold.yield_if_due();
        profile.publish(ROLE_REPORT);
        let allocator = stats();
        cold.yield_if_due();
        let snapshot = Snapshot::take("engine", hot_cores, &allocator);
        if interval.warmup {
            // Until the last warm-up interval, each one restarts the window.
            window = Window::new();
        }
        if let Some(step) = window.observe(snapshot) {
            println!(
                "engine   mechanisms {}",
                common::mechanisms::format_line(&step)
            );
        }
        cold.yield_if_due();
        print_memory(&mut monitor, allocator, profile);
        cold.yield_if_due();
    }
    // The budget covers the run, not the totals and the flush that follow it.
    let budget = cold.finish();
    result?;
    hlog.flush()?;
    profile.publish(ROLE_REPORT);
    let totals = STAGES
        .iter()
        .zip(&totals)
        .map(|(s, h)| (s.name().to_string(), Percentiles::of(h)))
        .collect();
    Ok((
        totals,
        monitor.report().clone(),
        budget,
        window.mechanisms(),
    ))
}

/// Samples memory, prints the memory and allocation-profile lines and any warning.
fn print_memory(monitor: &mut Monitor, stats: BTreeMap<String, u64>, profile: &AllocProfile) {
    let sample = MemorySample::take(stats);
    let line = common::memory::format_line(&sample);
    let warning = monitor.observe(sample);
    println!("engine   memory   {line}");
    println!(
        "engine   allocs   {} (calls/frees per thread role)",
        profile.format_line()
    );
    if let Some(w) = warning {
        eprintln!("engine: warning: {w}");
    }
}

/// Asks the feed's history service at `socket` for the last `depth` ticks of every
/// symbol, retrying for a second (the feed makes its socket just after its ring).
pub(crate) fn fetch_snapshot(
    service: &common::service::Endpoint,
    depth: usize,
) -> Result<hot::Snapshot, String> {
    let req = common::service::Request::Snapshot {
        depth: (depth as u32).clamp(1, common::service::MAX_DEPTH),
    };
    let until = std::time::Instant::now() + Duration::from_secs(1);
    let answer = loop {
        match common::service::request_at(service, &req, Duration::from_secs(2)) {
            Ok(a) => break a,
            Err(e) if std::time::Instant::now() >= until => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    // The newest tick of this feed run the history holds: the ring's ticks up to it are
    // in the snapshot's state (a restarted feed's snapshot may also hold its earlier
    // runs' ticks, whose sequence numbers say nothing about this ring).
    Ok(hot::Snapshot {
        ticks: answer.ticks,
        covered_through: answer.newest,
    })
}

/// Receives order messages, checks and counts them and folds their bytes into a CRC-32,
/// in slices (see [`ColdThread`]); returns (valid, invalid, the digest, its budget).
fn order_thread(
    mut rx: HopRx<OrderMsg>,
    mut cold: ColdThread,
    profile: &AllocProfile,
) -> (u64, u64, u32, ColdBudget) {
    let (mut ok, mut bad) = (0u64, 0u64);
    let mut digest = crc32fast::Hasher::new();
    loop {
        match rx.try_recv() {
            Ok(m) => {
                digest.update(m.as_bytes());
                match order::verify(m.as_bytes()) {
                    Ok(()) => ok += 1,
                    Err(_) => bad += 1,
                }
                if (ok + bad) % 16 == 0 {
                    cold.yield_if_due();
                }
            }
            Err(TryRecvError::Empty) => {
                profile.publish(ROLE_ORDERS);
                cold.idle();
            }
            Err(TryRecvError::Disconnected) => {
                profile.publish(ROLE_ORDERS);
                return (ok, bad, digest.finalize(), cold.finish());
            }
        }
    }
}
