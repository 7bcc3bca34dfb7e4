//! `lab bench transport`: one-way latency and throughput of every transport we might put
//! between the feed and the engine, next to the physical floor (a cache-line hand-off
//! between the same two cores), in one run, so that the results are ratios that survive
//! a noisy, shared machine. `lab bench jitter` measures the machine's own noise floor.
//!
//! # Latency rows
//!
//! All on the same pair of cores (`--tx-core` sends, `--rx-core` receives; by default the
//! config's `cores.feed_md` and `cores.engine_hot`):
//!
//! | row | what | method |
//! |---|---|---|
//! | `cacheline` | two threads bounce a counter through two `CachePadded<AtomicU64>` | RTT/2 of the ping-pong, timed by the initiator |
//! | `ring_threads` | our ring on a [`common::ring::HeapRegion`] between two threads | one-way TSC: `received_raw - published_raw` |
//! | `ring_processes` | our ring in `/dev/shm` between this process and a `bench-producer` child | one-way TSC |
//! | `crossbeam_threads` | `crossbeam_channel::bounded` between two threads, receiver spinning on `try_recv` | one-way TSC |
//! | `iceoryx2_processes` | iceoryx2 publish–subscribe between a `bench-producer` child and this process (feature `peers`) | one-way TSC |
//!
//! Ticks are published at least `--spacing-ns` apart (a busy-wait), so that every hop is
//! measured on an idle transport. Each row takes `--samples` measurements after a
//! discarded warm-up of 10% more. Values are recorded in raw clock units into
//! fixed-bound histograms (recording never allocates) and converted to nanoseconds
//! afterwards. One-way figures rely on the TSC being synchronised across cores (the
//! clock source printed says `tsc` only where it is invariant).
//!
//! # Throughput rows
//!
//! The producer publishes `--messages` 64-byte ticks flat out (no clock read, no
//! spacing); each consumer counts what it receives and what it lost (sequence numbers
//! that never arrived, and for our lossy ring the gaps when it was lapped) and times its
//! first to its last message. `msgs_per_s` is the slowest consumer's received messages
//! per second. crossbeam and iceoryx2 apply back-pressure (a full channel makes the
//! sender retry), our ring in its default lossy mode never waits: a consumer that falls
//! a whole ring behind is lapped, and the loss is reported, never hidden.
//!
//! A benchmark reports; it checks nothing. Producer processes are supervised: they are
//! terminated and reaped on every path, and their shared-memory files removed.

mod channel;
#[cfg(feature = "peers")]
mod iceoryx;
mod jitter;
mod process;
mod ring;

pub use jitter::jitter;
pub use process::producer;

use crate::cli::TransportArgs;
use anyhow::{anyhow, Result};
use common::clock::Clock;
use common::config::Config;
use common::failure::Failure;
use common::latency::{fixed_histogram, to_ns, Percentiles, HIGHEST_NS, HIGHEST_RAW};
use common::tick::Tick;
use common::transport::{Poll, Sink, Source};
use common::units::fmt_ns;
use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Latency rows, in table and JSON order; the first is the floor.
pub const LATENCY_ROWS: [&str; 5] = [
    "cacheline",
    "ring_threads",
    "ring_processes",
    "crossbeam_threads",
    "iceoryx2_processes",
];

/// Throughput rows, in table and JSON order, with the latency row whose `msgs_per_s`
/// each one gives.
pub const THROUGHPUT_ROWS: [(&str, Option<&str>); 8] = [
    ("ring_threads_1p1c", Some("ring_threads")),
    ("ring_threads_1p2c", None),
    ("ring_threads_lossless_1p1c", None),
    ("ring_threads_lossless_1p2c", None),
    ("ring_processes_1p1c", Some("ring_processes")),
    ("crossbeam_threads_1p1c", Some("crossbeam_threads")),
    ("iceoryx2_processes_1p1c", Some("iceoryx2_processes")),
    ("iceoryx2_processes_1p2c", None),
];

/// What a row shows when the `peers` feature was not built.
#[cfg_attr(feature = "peers", allow(dead_code))]
pub const NOT_BUILT: &str = "not built (enable --features peers)";

/// Whether this build has the iceoryx2 rows.
pub const PEERS_BUILT: bool = cfg!(feature = "peers");

/// The settings every row of one run shares.
pub struct Setup {
    clock: Clock,
    tx_core: usize,
    rx_core: usize,
    /// Core of the second consumer of the 1p2c rows; `None` skips those rows.
    rx2_core: Option<usize>,
    /// Measured latency samples per row.
    samples: u64,
    /// Discarded leading samples.
    warmup: u64,
    spacing_ns: u64,
    /// Ticks each throughput row publishes (0: no throughput rows).
    messages: u64,
    /// Ring capacity, crossbeam channel bound and iceoryx2 subscriber buffer.
    capacity: u64,
    pins: PinReport,
}

impl Setup {
    /// Latency samples including the warm-up.
    fn total(&self) -> u64 {
        self.samples + self.warmup
    }

    fn spacing_raw(&self) -> u64 {
        self.clock.raw_from_ns(self.spacing_ns)
    }

    /// A raw-clock deadline generous enough for `count` ticks spaced by `spacing_ns`.
    fn deadline(&self, count: u64, spacing_ns: u64) -> u64 {
        let ns = count
            .saturating_mul(spacing_ns.max(1_000))
            .saturating_mul(4)
            .saturating_add(30_000_000_000);
        self.clock.raw().saturating_add(self.clock.raw_from_ns(ns))
    }
}

/// A latency row's measurement.
#[derive(Clone, Copy, Debug, Default)]
pub struct Latency {
    /// Percentiles in nanoseconds.
    pub ns: Percentiles,
    /// Lapped reads (our ring only); must be 0 on an idle ring.
    pub gaps: u64,
    /// Sequence numbers that never arrived (counted in gaps or by sequence checks).
    pub lost: u64,
    /// Samples whose receive stamp was before the publish stamp (TSC skew between
    /// cores), recorded as 0.
    pub negative: u64,
    /// Samples published before the consumer had finished the previous one, so that
    /// their hop includes waiting in the transport (the consumer was descheduled or
    /// slow); on an idle machine there are none.
    pub queued: u64,
    /// Messages per second of the row's throughput run (for `cacheline`: one-way
    /// hand-offs per second of the ping-pong itself).
    pub msgs_per_s: Option<f64>,
}

/// What one consumer of a throughput run saw.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Flow {
    /// Messages received.
    pub received: u64,
    /// Messages that never arrived.
    pub lost: u64,
    /// Times the consumer was lapped (our ring only).
    pub gaps: u64,
    /// Seconds from its first to its last message.
    pub seconds: f64,
}

impl Flow {
    /// Messages per second: the intervals between the first and the last message.
    fn msgs_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.received.saturating_sub(1) as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// A throughput row's measurement.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Throughput {
    /// Messages the producer published.
    pub published: u64,
    /// Sends the transport refused or delivered to nobody (iceoryx2 only).
    pub undelivered: u64,
    /// The producer's pace: `None` flat out, else ticks per second offered.
    pub offered_per_s: Option<f64>,
    /// One entry per consumer.
    pub consumers: Vec<Flow>,
}

impl Throughput {
    /// The slowest consumer's messages per second.
    pub fn msgs_per_s(&self) -> f64 {
        self.consumers
            .iter()
            .map(Flow::msgs_per_s)
            .reduce(f64::min)
            .unwrap_or(0.0)
    }

    /// Messages lost over all consumers.
    pub fn lost(&self) -> u64 {
        self.consumers.iter().map(|c| c.lost).sum()
    }

    /// Lapped reads over all consumers.
    pub fn gaps(&self) -> u64 {
        self.consumers.iter().map(|c| c.gaps).sum()
    }

    /// Whether every consumer got every message.
    pub fn zero_loss(&self) -> bool {
        self.lost() == 0 && self.undelivered == 0
    }
}

/// A throughput row: the flat-out run and, if that lost messages, runs at lower offered
/// rates until one loses nothing (at most [`SEARCH_FRACTIONS`]`.len()` of them).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ThroughputRow {
    /// Flat out.
    pub flat: Throughput,
    /// Paced runs, in the order tried (empty if the flat-out run lost nothing).
    pub paced: Vec<Throughput>,
}

/// Offered rates of the zero-loss search, as fractions of the slowest consumer's rate in
/// the flat-out run.
pub const SEARCH_FRACTIONS: [f64; 5] = [0.9, 0.75, 0.6, 0.45, 0.3];

impl ThroughputRow {
    /// The fastest run that lost nothing.
    pub fn zero_loss(&self) -> Option<&Throughput> {
        std::iter::once(&self.flat)
            .chain(&self.paced)
            .find(|t| t.zero_loss())
    }

    /// Messages per second with zero loss, if any run had it.
    pub fn msgs_per_s(&self) -> Option<f64> {
        self.zero_loss().map(Throughput::msgs_per_s)
    }
}

/// Runs `run` flat out, then (if that lost messages) at [`SEARCH_FRACTIONS`] of the
/// consumer's flat-out rate until a run loses nothing.
fn search<F: FnMut(Pace) -> Result<Throughput>>(mut run: F) -> Result<ThroughputRow> {
    let flat = run(Pace::Flat)?;
    let mut row = ThroughputRow {
        paced: Vec::new(),
        flat,
    };
    if row.flat.zero_loss() {
        return Ok(row);
    }
    let ceiling = row.flat.msgs_per_s();
    for f in SEARCH_FRACTIONS {
        let rate = (ceiling * f).max(1.0);
        eprintln!(
            "lab bench transport:   {} lost {}; trying {} offered",
            row.paced.last().map_or("flat out".to_string(), |t| {
                format!("at {}", fmt_rate(t.offered_per_s.unwrap_or(0.0)))
            }),
            row.paced.last().unwrap_or(&row.flat).lost(),
            fmt_rate(rate)
        );
        let t = run(Pace::Rate(rate))?;
        let done = t.zero_loss();
        row.paced.push(t);
        if done {
            break;
        }
    }
    Ok(row)
}

/// A row that was measured, or why not.
#[derive(Clone, Debug)]
pub enum Outcome<T> {
    /// Measured.
    Done(T),
    /// Not in this build, or not possible with these cores: the reason.
    Skipped(String),
    /// The measurement failed: the error.
    Failed(String),
}

/// A measured row, or its error.
fn measured<T>(r: Result<T>) -> Outcome<T> {
    Outcome::from_result(r)
}

impl<T> Outcome<T> {
    fn from_result(r: Result<T>) -> Outcome<T> {
        match r {
            Ok(v) => Outcome::Done(v),
            Err(e) => Outcome::Failed(format!("{e:#}")),
        }
    }

    fn done(&self) -> Option<&T> {
        match self {
            Outcome::Done(v) => Some(v),
            _ => None,
        }
    }
}

/// Where and how the benchmark ran.
pub struct Machine {
    pub cpu_model: String,
    pub kernel: String,
    pub clock_source: String,
    pub ns_per_raw: f64,
    pub tx_core: usize,
    pub rx_core: usize,
    pub rx2_core: Option<usize>,
    pub pinned: bool,
    pub samples: u64,
    pub warmup: u64,
    pub spacing_ns: u64,
    pub messages: u64,
    pub capacity: u64,
}

/// Everything one run measured.
pub struct Report {
    pub machine: Machine,
    pub latency: Vec<(&'static str, Outcome<Latency>)>,
    pub throughput: Vec<(&'static str, Outcome<ThroughputRow>)>,
}

/// Runs `lab bench transport`.
pub fn transport(args: &TransportArgs) -> Result<()> {
    // Read before anything is pinned: a pinned thread's children inherit its mask.
    let allowed = common::cores::allowed_cores();
    if let Some(path) = &args.json {
        // Refuse someone else's file before the benchmark, not after it.
        common::files::examine(path, common::files::Kind::Json)?;
    }
    let config = Config::load(&args.config, &allowed).map_err(Failure::bad_input)?;
    let tx_core = args.tx_core.unwrap_or(config.cores.feed_md);
    let rx_core = args.rx_core.unwrap_or(config.cores.engine_hot);
    if tx_core == rx_core || !allowed.contains(&tx_core) || !allowed.contains(&rx_core) {
        return Err(Failure::bad_input(anyhow!(
            "bench transport needs two distinct allowed cores, got sending core {tx_core} \
             (--tx-core or cores.feed_md) and receiving core {rx_core} (--rx-core or \
             cores.engine_hot); allowed: {allowed:?}"
        ))
        .into());
    }
    let rx2_core = match args.rx2_core {
        Some(c) if !allowed.contains(&c) => {
            return Err(Failure::bad_input(anyhow!(
                "--rx2-core {c} is not an allowed core (allowed: {allowed:?})"
            ))
            .into())
        }
        Some(c) => Some(c),
        None => allowed
            .iter()
            .copied()
            .find(|&c| c != tx_core && c != rx_core),
    };
    let capacity = args.capacity.unwrap_or(config.ring.capacity);
    if !capacity.is_power_of_two() || !(1024..=1 << 26).contains(&capacity) {
        return Err(Failure::bad_input(anyhow!(
            "--capacity must be a power of two from 1024 to 2^26, got {capacity}"
        ))
        .into());
    }
    let clock = Clock::new();
    let setup = Setup {
        clock,
        tx_core,
        rx_core,
        rx2_core,
        samples: args.samples,
        warmup: args.samples / 10,
        spacing_ns: args.spacing_ns,
        messages: args.messages,
        capacity,
        pins: PinReport::default(),
    };
    eprintln!(
        "lab bench transport: {} latency samples per row after {} warm-up, spacing {} ns; \
         {} messages per throughput row; cores {tx_core} -> {rx_core}{}; capacity {capacity}",
        setup.samples,
        setup.warmup,
        setup.spacing_ns,
        setup.messages,
        rx2_core.map_or(String::new(), |c| format!(" (second consumer {c})")),
    );

    let report = measure(&setup);
    print!("{}", format_table(&report));
    let _ = std::io::stdout().flush();
    if let Some(path) = &args.json {
        common::files::write_json(path, &to_json(&report))?;
        eprintln!("lab bench transport: wrote {}", path.display());
    }
    let failed: Vec<&str> = report
        .latency
        .iter()
        .map(|(n, o)| (*n, matches!(o, Outcome::Failed(_))))
        .chain(
            report
                .throughput
                .iter()
                .map(|(n, o)| (*n, matches!(o, Outcome::Failed(_)))),
        )
        .filter_map(|(n, f)| f.then_some(n))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{} row(s) failed: {}", failed.len(), failed.join(", "))
    }
}

/// Measures every row, in order: latency first, then throughput.
fn measure(s: &Setup) -> Report {
    let note = |row: &str| eprintln!("lab bench transport: measuring {row}");
    let no_rx2 =
        || Outcome::Skipped("needs a third core for the second consumer (--rx2-core)".to_string());
    let mut latency = Vec::new();
    for name in LATENCY_ROWS {
        note(name);
        let row = match name {
            "cacheline" => Outcome::Done(cacheline(s)),
            "ring_threads" => Outcome::from_result(ring::latency_threads(s)),
            "ring_processes" => Outcome::from_result(ring::latency_processes(s)),
            "crossbeam_threads" => Outcome::from_result(channel::latency(s)),
            _ => iceoryx2_latency(s),
        };
        latency.push((name, row));
    }
    let mut throughput = Vec::new();
    for (name, _) in THROUGHPUT_ROWS.iter().filter(|_| s.messages > 0) {
        note(name);
        let row = match (*name, s.rx2_core) {
            ("ring_threads_1p1c", _) => {
                measured(search(|p| ring::throughput_threads(s, None, p, false)))
            }
            ("ring_threads_1p2c", Some(c)) => {
                measured(search(|p| ring::throughput_threads(s, Some(c), p, false)))
            }
            ("ring_threads_lossless_1p1c", _) => {
                measured(search(|p| ring::throughput_threads(s, None, p, true)))
            }
            ("ring_threads_lossless_1p2c", Some(c)) => {
                measured(search(|p| ring::throughput_threads(s, Some(c), p, true)))
            }
            ("ring_processes_1p1c", _) => measured(search(|p| ring::throughput_processes(s, p))),
            ("crossbeam_threads_1p1c", _) => measured(search(|p| channel::throughput(s, p))),
            ("iceoryx2_processes_1p1c", _) => iceoryx2_throughput(s, None),
            ("iceoryx2_processes_1p2c", Some(c)) => iceoryx2_throughput(s, Some(c)),
            _ => no_rx2(),
        };
        throughput.push((*name, row));
    }
    // Each latency row shows its transport's one-consumer throughput.
    for (name, row) in &mut latency {
        if let Outcome::Done(l) = row {
            let tp = THROUGHPUT_ROWS
                .iter()
                .find(|(_, lat)| *lat == Some(*name))
                .and_then(|(tp, _)| throughput.iter().find(|(n, _)| n == tp))
                .and_then(|(_, o)| o.done());
            if let Some(tp) = tp {
                l.msgs_per_s = tp.msgs_per_s();
            }
        }
    }

    let machine = Machine {
        cpu_model: common::os::cpu_model(),
        kernel: common::os::kernel_release(),
        clock_source: s.clock.source().name().to_string(),
        ns_per_raw: s.clock.ns_per_raw(),
        tx_core: s.tx_core,
        rx_core: s.rx_core,
        rx2_core: s.rx2_core,
        pinned: !s.pins.failed.load(Ordering::Relaxed),
        samples: s.samples,
        warmup: s.warmup,
        spacing_ns: s.spacing_ns,
        messages: s.messages,
        capacity: s.capacity,
    };
    Report {
        machine,
        latency,
        throughput,
    }
}

#[cfg(feature = "peers")]
fn iceoryx2_latency(s: &Setup) -> Outcome<Latency> {
    Outcome::from_result(iceoryx::latency(s))
}

#[cfg(not(feature = "peers"))]
fn iceoryx2_latency(_: &Setup) -> Outcome<Latency> {
    Outcome::Skipped(NOT_BUILT.to_string())
}

#[cfg(feature = "peers")]
fn iceoryx2_throughput(s: &Setup, rx2: Option<usize>) -> Outcome<ThroughputRow> {
    measured(search(|p| iceoryx::throughput(s, rx2, p)))
}

#[cfg(not(feature = "peers"))]
fn iceoryx2_throughput(_: &Setup, _: Option<usize>) -> Outcome<ThroughputRow> {
    Outcome::Skipped(NOT_BUILT.to_string())
}

/// Whether any pin failed (each failure is also reported on stderr when it happens).
#[derive(Default)]
pub struct PinReport {
    failed: AtomicBool,
}

impl PinReport {
    /// Pins the calling thread to `core`; on failure warns and goes on unpinned.
    pub fn pin(&self, role: &str, core: usize) {
        if !common::cores::pin_current(core) {
            self.failed.store(true, Ordering::Relaxed);
            eprintln!("warning: cannot pin the {role} thread to core {core}; it runs unpinned");
        }
    }
}

/// A raw histogram's percentiles in nanoseconds.
fn percentiles_ns(raw: &Histogram<u64>, ns_per_raw: f64) -> Percentiles {
    let mut ns = fixed_histogram(HIGHEST_NS);
    to_ns(raw, ns_per_raw, &mut ns);
    Percentiles::of(&ns)
}

/// Cache-line ping-pong: the round trips in raw units, halved in the conversion.
fn cacheline(s: &Setup) -> Latency {
    let ping = CachePadded::new(AtomicU64::new(0));
    let pong = CachePadded::new(AtomicU64::new(0));
    let ready = CachePadded::new(AtomicBool::new(false));
    let total = s.total();
    let warmup = s.warmup;
    let clock = &s.clock;
    let mut hist = fixed_histogram(HIGHEST_RAW);
    let mut measured_raw = 0;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            s.pins.pin("cache-line responder", s.rx_core);
            ready.store(true, Ordering::Release);
            for i in 1..=total {
                // SYNC POINT: pairs with the initiator's release store of `ping`.
                while ping.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                // SYNC POINT: pairs with the initiator's acquire load of `pong`.
                pong.store(i, Ordering::Release);
            }
        });
        scope.spawn(|| {
            s.pins.pin("cache-line initiator", s.tx_core);
            while !ready.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            let mut started = 0;
            let mut t1 = 0;
            for i in 1..=total {
                let t0 = clock.raw();
                if i == warmup + 1 {
                    started = t0;
                }
                ping.store(i, Ordering::Release);
                while pong.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                t1 = clock.raw();
                if i > warmup {
                    hist.saturating_record(t1.saturating_sub(t0).min(HIGHEST_RAW));
                }
            }
            measured_raw = t1.saturating_sub(started);
        });
    });
    let ns_per_raw = clock.ns_per_raw();
    let seconds = measured_raw as f64 * ns_per_raw / 1e9;
    Latency {
        // The histogram holds round trips; halving in the conversion keeps the sub-unit part.
        ns: percentiles_ns(&hist, ns_per_raw / 2.0),
        msgs_per_s: (seconds > 0.0).then(|| 2.0 * s.samples as f64 / seconds),
        ..Latency::default()
    }
}

/// Sends `count` ticks numbered from 1, each stamped just before it is sent and at
/// least `spacing_raw` after the previous one; returns the undelivered count.
pub fn produce_spaced<S: Sink>(sink: &mut S, clock: &Clock, count: u64, spacing_raw: u64) -> u64 {
    let mut undelivered = 0;
    let mut due = clock.raw();
    for seq in 1..=count {
        let mut now = clock.raw();
        while now < due {
            std::hint::spin_loop();
            now = clock.raw();
        }
        let tick = Tick {
            seq,
            scheduled_raw: now,
            published_raw: now,
            ..Tick::default()
        };
        undelivered += u64::from(sink.send(&tick).is_none());
        due = now + spacing_raw;
    }
    undelivered
}

/// How a producer paces its ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Latency: each tick stamped, at least `spacing_raw` after the previous one.
    Spaced,
    /// Throughput: flat out, without reading the clock.
    Flat,
    /// Throughput: this many ticks per second on average, in bursts of [`PACE_BURST`]
    /// (one clock read per burst), unstamped.
    Rate(f64),
}

/// Ticks sent between two clock reads of a [`Pace::Rate`] producer.
pub const PACE_BURST: u64 = 64;

/// Sends `count` ticks numbered from 1 as `pace` says; returns the undelivered count.
pub fn produce<S: Sink>(
    sink: &mut S,
    clock: &Clock,
    count: u64,
    pace: Pace,
    spacing_raw: u64,
) -> u64 {
    match pace {
        Pace::Spaced => produce_spaced(sink, clock, count, spacing_raw),
        Pace::Flat => {
            let mut undelivered = 0;
            let mut tick = Tick::default();
            for seq in 1..=count {
                tick.seq = seq;
                undelivered += u64::from(sink.send(&tick).is_none());
            }
            undelivered
        }
        Pace::Rate(per_s) => {
            let raw_per_tick = clock.raw_from_ns(1_000_000_000) as f64 / per_s.max(1.0);
            let mut undelivered = 0;
            let mut tick = Tick::default();
            let start = clock.raw();
            for seq in 1..=count {
                if seq % PACE_BURST == 0 {
                    let due = start + (seq as f64 * raw_per_tick) as u64;
                    while clock.raw() < due {
                        std::hint::spin_loop();
                    }
                }
                tick.seq = seq;
                undelivered += u64::from(sink.send(&tick).is_none());
            }
            undelivered
        }
    }
}

/// A latency row between two threads of this process: `produce` runs on the sending
/// core, [`consume_latency`] on `src` on the receiving core, both pinned and started
/// together. `roles` name the two threads in messages.
pub fn latency_pair<S: Source + Send>(
    s: &Setup,
    roles: (&str, &str),
    produce: impl FnOnce() + Send,
    src: &mut S,
) -> Result<Latency> {
    let both_ready = std::sync::Barrier::new(2);
    let total = s.total();
    let (hist, l) = std::thread::scope(|scope| {
        scope.spawn(|| {
            s.pins.pin(roles.0, s.tx_core);
            both_ready.wait();
            produce();
        });
        scope
            .spawn(|| {
                s.pins.pin(roles.1, s.rx_core);
                both_ready.wait();
                let deadline = s.deadline(total, s.spacing_ns);
                consume_latency(src, &s.clock, total, s.warmup, deadline)
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the {} thread panicked", roles.1)))
    })?;
    Ok(latency_row(&hist, l, &s.clock))
}

/// The sequence accounting of a consumer loop: what arrived in order, what was lost in
/// gaps or skipped, the end of the stream, and a producer that stopped sending.
struct Tally {
    expected: u64,
    gaps: u64,
    lost: u64,
    idle: u32,
    total: u64,
    deadline_raw: u64,
}

impl Tally {
    fn new(total: u64, deadline_raw: u64) -> Tally {
        Tally {
            expected: 1,
            gaps: 0,
            lost: 0,
            idle: 0,
            total,
            deadline_raw,
        }
    }

    /// Message `seq` arrived: counts the sequence numbers skipped before it. Whether it
    /// was the last one.
    #[inline]
    fn msg(&mut self, seq: u64) -> bool {
        self.lost += seq.saturating_sub(self.expected);
        self.expected = seq + 1;
        seq >= self.total
    }

    /// Anything but a message: whether the loop is over, or why it failed.
    #[inline]
    fn other(&mut self, recv: Poll, clock: &Clock) -> Result<bool> {
        match recv {
            Poll::Tick(t) => Ok(self.msg(t.seq)),
            Poll::Gap { missed: n, .. } => {
                self.gaps += 1;
                self.lost += n;
                self.expected += n;
                Ok(self.expected > self.total)
            }
            Poll::Ended => {
                self.lost += (self.total + 1).saturating_sub(self.expected);
                Ok(true)
            }
            Poll::Empty => {
                self.idle = self.idle.wrapping_add(1);
                if self.idle.is_multiple_of(4096) && clock.raw() > self.deadline_raw {
                    anyhow::bail!(
                        "the producer stopped sending (next expected {} of {})",
                        self.expected,
                        self.total
                    );
                }
                std::hint::spin_loop();
                Ok(false)
            }
            Poll::Corrupt { seq } => anyhow::bail!("received a corrupt tick (seq {seq})"),
            Poll::Failed(what) => anyhow::bail!("{what}"),
        }
    }
}

/// Receives until message `total` (or the end of the stream, or `deadline_raw`),
/// recording the one-way hop of every message after the first `warmup`.
pub fn consume_latency<S: Source>(
    src: &mut S,
    clock: &Clock,
    total: u64,
    warmup: u64,
    deadline_raw: u64,
) -> Result<(Histogram<u64>, Latency)> {
    let mut hist = fixed_histogram(HIGHEST_RAW);
    let mut l = Latency::default();
    let mut t = Tally::new(total, deadline_raw);
    let mut last_recv_raw = 0;
    loop {
        match src.poll() {
            Poll::Tick(tick) => {
                let (seq, stamp) = (tick.seq, tick.published_raw);
                let now = clock.raw();
                let last = t.msg(seq);
                if seq > warmup {
                    if now < stamp {
                        l.negative += 1;
                    }
                    if stamp < last_recv_raw {
                        l.queued += 1;
                    }
                    hist.saturating_record(now.saturating_sub(stamp).min(HIGHEST_RAW));
                }
                last_recv_raw = now;
                if last {
                    break;
                }
            }
            other => {
                if t.other(other, clock)? {
                    break;
                }
            }
        }
    }
    (l.gaps, l.lost) = (t.gaps, t.lost);
    Ok((hist, l))
}

/// Receives until message `total` (or the end of the stream, or `deadline_raw`),
/// counting what arrives and what is lost, timed from the first to the last message.
pub fn consume_flow<S: Source>(
    src: &mut S,
    clock: &Clock,
    total: u64,
    deadline_raw: u64,
) -> Result<Flow> {
    let mut f = Flow::default();
    let mut t = Tally::new(total, deadline_raw);
    let mut first_raw = 0;
    loop {
        match src.poll() {
            Poll::Tick(Tick { seq, .. }) => {
                if f.received == 0 {
                    first_raw = clock.raw();
                }
                f.received += 1;
                if t.msg(seq) {
                    break;
                }
            }
            other => {
                if t.other(other, clock)? {
                    break;
                }
            }
        }
    }
    (f.gaps, f.lost) = (t.gaps, t.lost);
    f.seconds = clock.delta_ns(first_raw, clock.raw()) as f64 / 1e9;
    Ok(f)
}

/// A latency row from a consumer's raw histogram.
fn latency_row(hist: &Histogram<u64>, mut l: Latency, clock: &Clock) -> Latency {
    l.ns = percentiles_ns(hist, clock.ns_per_raw());
    l
}

/// Where shared-memory files go: `/dev/shm` if it exists, else the temp folder.
pub fn shm_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// `a / b`, or `None` when `b` is 0.
fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.2}x"))
}

/// Messages per second, readable: `52.3M/s`, `812k/s`.
fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.1}M/s", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.0}k/s", r / 1e3)
    } else {
        format!("{r:.0}/s")
    }
}

/// How a latency row is measured.
fn method(name: &str) -> &'static str {
    if name == "cacheline" {
        "rtt/2"
    } else {
        "one-way tsc"
    }
}

/// The result tables.
pub fn format_table(r: &Report) -> String {
    let m = &r.machine;
    let mut t = String::new();
    let w = &mut t;
    let _ = writeln!(w, "\n== lab bench transport ==");
    let _ = writeln!(
        w,
        "machine  {}, kernel {}, clock {} ({:.4} ns per raw unit)",
        m.cpu_model, m.kernel, m.clock_source, m.ns_per_raw
    );
    let _ = writeln!(
        w,
        "cores    send {} -> receive {}{}{}; {} samples per row after {} warm-up, spacing {} ns; \
         capacity {}",
        m.tx_core,
        m.rx_core,
        m.rx2_core
            .map_or(String::new(), |c| format!(", second consumer {c}")),
        if m.pinned { "" } else { " (NOT all pinned)" },
        m.samples,
        m.warmup,
        m.spacing_ns,
        m.capacity
    );
    let _ = writeln!(
        w,
        "\nlatency (one hop, ns; ratios to the cacheline floor of this run)"
    );
    let _ = writeln!(
        w,
        "{:<19} {:<11} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}",
        "transport",
        "method",
        "count",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "p99.99",
        "max",
        "p50/floor",
        "p99/floor",
        "msgs/s"
    );
    let floor = r.latency.first().and_then(|(_, o)| o.done()).map(|l| l.ns);
    for (name, row) in &r.latency {
        match row {
            Outcome::Done(l) => {
                let p = &l.ns;
                let _ = writeln!(
                    w,
                    "{name:<19} {:<11} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}",
                    method(name),
                    p.count,
                    fmt_ns(p.p50),
                    fmt_ns(p.p90),
                    fmt_ns(p.p99),
                    fmt_ns(p.p99_9),
                    fmt_ns(p.p99_99),
                    fmt_ns(p.max),
                    fmt_ratio(floor.and_then(|f| ratio(p.p50, f.p50))),
                    fmt_ratio(floor.and_then(|f| ratio(p.p99, f.p99))),
                    l.msgs_per_s.map_or_else(|| "-".into(), fmt_rate),
                );
            }
            Outcome::Skipped(why) => {
                let _ = writeln!(w, "{name:<19} {why}");
            }
            Outcome::Failed(e) => {
                let _ = writeln!(w, "{name:<19} FAILED: {e}");
            }
        }
    }
    let _ = writeln!(
        w,
        "rtt/2: half a spin ping-pong's round trip; one-way tsc: receive stamp minus publish \
         stamp, both raw TSC reads on the two cores. msgs/s: the transport's 1-consumer \
         throughput below (cacheline: hand-offs per second of the ping-pong)"
    );
    for (name, row) in &r.latency {
        let Outcome::Done(l) = row else { continue };
        if l.queued > 0 {
            let _ = writeln!(
                w,
                "note: {name}: {} samples waited behind an earlier one (the consumer was \
                 descheduled or slow); they make the tail",
                l.queued
            );
        }
        if l.gaps > 0 || l.lost > 0 {
            let _ = writeln!(
                w,
                "warning: {name}: {} messages lost ({} gaps: the consumer was lapped)",
                l.lost, l.gaps
            );
        }
        if l.negative > 0 {
            let _ = writeln!(
                w,
                "warning: {name}: {} samples received before they were published (TSC skew), \
                 counted as 0",
                l.negative
            );
        }
    }
    if m.samples < 1_000_000 {
        let _ = writeln!(
            w,
            "note: fewer than 1,000,000 samples per row: p99.99 is not meaningful"
        );
    }
    if !r.throughput.is_empty() {
        let _ = writeln!(
            w,
            "\nthroughput ({} 64-byte ticks per run; msgs/s of the slowest consumer, first to \
             last message)",
            m.messages
        );
        let _ = writeln!(
            w,
            "{:<26} {:>9} {:>11} {:>11} {:>10} {:>7} {:>10} {:>10}",
            "transport",
            "consumers",
            "published",
            "received",
            "lost",
            "lapped",
            "flat out",
            "zero loss"
        );
        for (name, row) in &r.throughput {
            match row {
                Outcome::Done(tp) => {
                    let f = &tp.flat;
                    let received = f.consumers.iter().map(|c| c.received).min().unwrap_or(0);
                    let _ = writeln!(
                        w,
                        "{name:<26} {:>9} {:>11} {:>11} {:>10} {:>7} {:>10} {:>10}",
                        f.consumers.len(),
                        f.published,
                        received,
                        f.lost() + f.undelivered,
                        f.gaps(),
                        fmt_rate(f.msgs_per_s()),
                        tp.msgs_per_s().map_or_else(|| "none".into(), fmt_rate),
                    );
                    if !tp.paced.is_empty() {
                        let trials: Vec<String> = tp
                            .paced
                            .iter()
                            .map(|t| {
                                format!(
                                    "{} offered: {} lost",
                                    fmt_rate(t.offered_per_s.unwrap_or(0.0)),
                                    t.lost() + t.undelivered
                                )
                            })
                            .collect();
                        let _ = writeln!(w, "  {name}: lossy flat out; {}", trials.join(", "));
                    }
                }
                Outcome::Skipped(why) => {
                    let _ = writeln!(w, "{name:<26} {why}");
                }
                Outcome::Failed(e) => {
                    let _ = writeln!(w, "{name:<26} FAILED: {e}");
                }
            }
        }
        let _ = writeln!(
            w,
            "received, lost, lapped: the flat-out run (received: slowest consumer; lost and \
             lapped summed). zero loss: msgs/s of the fastest run that lost nothing (flat out, \
             else paced at {:?} of the flat-out rate; \"none\" if every run lost). Our ring never \
             waits for a consumer in its default lossy mode; in lossless mode (ring_*_lossless) \
             the producer waits for the slowest registered consumer; crossbeam and iceoryx2 \
             make the sender retry while full",
            SEARCH_FRACTIONS
        );
    }
    t
}

/// The JSON report of `--json`: one object per row (nanoseconds), `throughput`, `machine`.
pub fn to_json(r: &Report) -> serde_json::Value {
    let m = &r.machine;
    let mut v = serde_json::json!({
        "machine": {
            "cpu_model": m.cpu_model,
            "kernel": m.kernel,
            "clock_source": m.clock_source,
            "ns_per_raw": m.ns_per_raw,
            "cores": { "send": m.tx_core, "receive": m.rx_core, "second_receive": m.rx2_core },
            "pinned": m.pinned,
            "git_rev": common::manifest::GIT_REV,
            "samples": m.samples,
            "warmup": m.warmup,
            "spacing_ns": m.spacing_ns,
            "messages": m.messages,
            "capacity": m.capacity,
            "peers_built": PEERS_BUILT,
        },
    });
    let floor = r.latency.first().and_then(|(_, o)| o.done()).map(|l| l.ns);
    for (name, row) in &r.latency {
        v[*name] = match row {
            Outcome::Done(l) => {
                let p = &l.ns;
                let mut o = serde_json::json!({
                    "method": method(name),
                    "count": p.count,
                    "min": p.min,
                    "p50": p.p50,
                    "p90": p.p90,
                    "p99": p.p99,
                    "p99_9": p.p99_9,
                    "p99_99": p.p99_99,
                    "max": p.max,
                    "msgs_per_s": l.msgs_per_s,
                    "ratio_p50_to_cacheline": floor.and_then(|f| ratio(p.p50, f.p50)),
                    "ratio_p99_to_cacheline": floor.and_then(|f| ratio(p.p99, f.p99)),
                });
                if *name != "cacheline" {
                    o["gaps"] = l.gaps.into();
                    o["lost"] = l.lost.into();
                    o["negative"] = l.negative.into();
                    o["queued"] = l.queued.into();
                }
                o
            }
            Outcome::Skipped(why) => serde_json::json!({ "skipped": why }),
            Outcome::Failed(e) => serde_json::json!({ "failed": e }),
        };
    }
    let mut tp = serde_json::Map::new();
    for (name, row) in &r.throughput {
        let o = match row {
            Outcome::Done(t) => {
                let mut o = flow_json(&t.flat);
                o["msgs_per_s"] = t.msgs_per_s().into();
                o["flat_out_msgs_per_s"] = t.flat.msgs_per_s().into();
                o["zero_loss_offered_per_s"] = t.zero_loss().map(|z| z.offered_per_s).into();
                o["search"] = t.paced.iter().map(flow_json).collect::<Vec<_>>().into();
                o
            }
            Outcome::Skipped(why) => serde_json::json!({ "skipped": why }),
            Outcome::Failed(e) => serde_json::json!({ "failed": e }),
        };
        tp.insert((*name).to_string(), o);
    }
    v["throughput"] = tp.into();
    v
}

/// One throughput run as JSON.
fn flow_json(t: &Throughput) -> serde_json::Value {
    serde_json::json!({
        "consumers": t.consumers.len(),
        "offered_per_s": t.offered_per_s,
        "published": t.published,
        "undelivered": t.undelivered,
        "received": t.consumers.iter().map(|c| c.received).collect::<Vec<_>>(),
        "lost": t.lost(),
        "gaps": t.gaps(),
        "seconds": t.consumers.iter().map(|c| c.seconds).collect::<Vec<_>>(),
        "msgs_per_s": t.msgs_per_s(),
        "zero_loss": t.zero_loss(),
    })
}

/// A run's offered rate: `None` flat out (and for spaced latency runs).
fn offered(pace: Pace) -> Option<f64> {
    match pace {
        Pace::Rate(r) => Some(r),
        Pace::Spaced | Pace::Flat => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(base: u64) -> Latency {
        Latency {
            ns: Percentiles {
                count: 1000,
                min: base / 2,
                p50: base,
                p90: base * 2,
                p99: base * 3,
                p99_9: base * 4,
                p99_99: base * 5,
                max: base * 10,
            },
            msgs_per_s: Some(1e6),
            ..Latency::default()
        }
    }

    fn flow(received: u64, lost: u64, seconds: f64) -> Flow {
        Flow {
            received,
            lost,
            gaps: u64::from(lost > 0),
            seconds,
        }
    }

    fn run(offered: Option<f64>, consumers: Vec<Flow>) -> Throughput {
        Throughput {
            published: 1001,
            undelivered: 0,
            offered_per_s: offered,
            consumers,
        }
    }

    fn report() -> Report {
        let mut queued = latency(60);
        queued.queued = 5;
        queued.lost = 2;
        queued.gaps = 1;
        Report {
            machine: Machine {
                cpu_model: "Test CPU".into(),
                kernel: "6.1".into(),
                clock_source: "tsc".into(),
                ns_per_raw: 0.5,
                tx_core: 0,
                rx_core: 1,
                rx2_core: None,
                pinned: true,
                samples: 1000,
                warmup: 100,
                spacing_ns: 2000,
                messages: 1001,
                capacity: 4096,
            },
            latency: vec![
                ("cacheline", Outcome::Done(latency(40))),
                ("ring_threads", Outcome::Done(queued)),
                ("ring_processes", Outcome::Failed("it broke".into())),
                ("crossbeam_threads", Outcome::Done(latency(0))),
                ("iceoryx2_processes", Outcome::Skipped(NOT_BUILT.into())),
            ],
            throughput: vec![
                (
                    "ring_threads_1p1c",
                    Outcome::Done(ThroughputRow {
                        flat: run(None, vec![flow(601, 400, 1e-5)]),
                        paced: vec![
                            run(Some(5e7), vec![flow(901, 100, 2e-5)]),
                            run(Some(4e7), vec![flow(1001, 0, 2.5e-5)]),
                        ],
                    }),
                ),
                (
                    "ring_threads_1p2c",
                    Outcome::Skipped("needs a third core".into()),
                ),
            ],
        }
    }

    fn cells<'a>(t: &'a str, name: &str) -> Vec<&'a str> {
        t.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} line in\n{t}"))
            .split_whitespace()
            .collect()
    }

    #[test]
    fn table_has_rows_ratios_and_reasons() {
        let t = format_table(&report());
        assert!(t.contains("Test CPU, kernel 6.1, clock tsc"), "{t}");
        assert_eq!(
            cells(&t, "ring_threads"),
            [
                "ring_threads",
                "one-way",
                "tsc",
                "1000",
                "60ns",
                "120ns",
                "180ns",
                "240ns",
                "300ns",
                "600ns",
                "1.50x",
                "1.50x",
                "1.0M/s"
            ]
        );
        assert_eq!(cells(&t, "cacheline")[1], "rtt/2");
        assert!(t.contains("ring_processes      FAILED: it broke"), "{t}");
        assert!(
            t.contains("iceoryx2_processes  not built (enable --features peers)"),
            "{t}"
        );
        assert!(t.contains("note: ring_threads: 5 samples waited"), "{t}");
        assert!(
            t.contains("warning: ring_threads: 2 messages lost (1 gaps"),
            "{t}"
        );
        assert!(t.contains("p99.99 is not meaningful"), "{t}");
        // Flat out lost 400 at 60M/s; the 40M/s paced run lost nothing at 40M/s.
        assert_eq!(
            cells(&t, "ring_threads_1p1c")[1..],
            ["1", "1001", "601", "400", "1", "60.0M/s", "40.0M/s"]
        );
        assert!(
            t.contains("50.0M/s offered: 100 lost, 40.0M/s offered: 0 lost"),
            "{t}"
        );
        assert!(
            t.contains("ring_threads_1p2c          needs a third core"),
            "{t}"
        );
    }

    #[test]
    fn json_has_the_documented_keys() {
        let v = to_json(&report());
        for name in ["cacheline", "ring_threads", "crossbeam_threads"] {
            for key in ["count", "p50", "p90", "p99", "p99_9", "p99_99", "max"] {
                assert!(v[name][key].is_u64(), "{name}.{key}: {v}");
            }
            assert!(v[name]["msgs_per_s"].is_number(), "{name}: {v}");
        }
        assert_eq!(v["cacheline"]["method"], "rtt/2");
        assert_eq!(v["ring_threads"]["method"], "one-way tsc");
        assert_eq!(v["ring_threads"]["ratio_p50_to_cacheline"], 1.5);
        assert!(v["crossbeam_threads"]["ratio_p50_to_cacheline"].is_number());
        assert_eq!(v["ring_processes"]["failed"], "it broke");
        assert_eq!(v["iceoryx2_processes"]["skipped"], NOT_BUILT);
        let tp = &v["throughput"]["ring_threads_1p1c"];
        let close =
            |x: &serde_json::Value, want: f64| (x.as_f64().unwrap() / want - 1.0).abs() < 1e-9;
        assert!(close(&tp["msgs_per_s"], 4e7), "{tp}");
        assert!(close(&tp["flat_out_msgs_per_s"], 6e7), "{tp}");
        assert_eq!(tp["zero_loss_offered_per_s"], 4e7);
        assert_eq!(tp["lost"], 400);
        assert_eq!(tp["search"].as_array().unwrap().len(), 2);
        assert!(v["throughput"]["ring_threads_1p2c"]["skipped"].is_string());
        assert_eq!(v["machine"]["cpu_model"], "Test CPU");
        assert_eq!(v["machine"]["peers_built"], PEERS_BUILT);
    }

    #[test]
    fn zero_loss_search_stops_at_the_first_clean_run() {
        let mut tried = Vec::new();
        let row = search(|pace| {
            tried.push(pace);
            let lost = match pace {
                Pace::Flat => 10,
                Pace::Rate(r) if r > 70.0 => 5,
                _ => 0,
            };
            Ok(run(offered(pace), vec![flow(101, lost, 1.0)]))
        })
        .unwrap();
        // Flat out 100 msgs/s lost; 90 and 75 lose; 60 is clean.
        assert_eq!(
            tried,
            [
                Pace::Flat,
                Pace::Rate(90.0),
                Pace::Rate(75.0),
                Pace::Rate(60.0)
            ]
        );
        assert_eq!(row.zero_loss().unwrap().offered_per_s, Some(60.0));
        assert_eq!(row.msgs_per_s(), Some(100.0));

        let clean = search(|pace| Ok(run(offered(pace), vec![flow(11, 0, 1.0)]))).unwrap();
        assert!(clean.paced.is_empty());
        assert_eq!(clean.msgs_per_s(), Some(10.0));

        let never = search(|pace| Ok(run(offered(pace), vec![flow(10, 1, 1.0)]))).unwrap();
        assert_eq!(never.paced.len(), SEARCH_FRACTIONS.len());
        assert_eq!(never.msgs_per_s(), None);
    }

    #[test]
    fn slowest_consumer_sets_the_rate() {
        let t = run(None, vec![flow(101, 0, 1.0), flow(101, 0, 2.0)]);
        assert_eq!(t.msgs_per_s(), 50.0);
        assert!(run(None, vec![]).msgs_per_s() == 0.0);
    }

    /// A sink and source over a plain vector: every sent tick arrives, except the
    /// sequence numbers in `drop`.
    struct Fake {
        sent: std::collections::VecDeque<Tick>,
        drop: Vec<u64>,
        ended: bool,
    }

    impl Sink for Fake {
        fn send(&mut self, tick: &Tick) -> Option<u64> {
            if !self.drop.contains(&tick.seq) {
                self.sent.push_back(*tick);
            }
            Some(tick.seq)
        }
    }

    impl Source for Fake {
        fn poll(&mut self) -> Poll {
            match self.sent.pop_front() {
                Some(t) => Poll::Tick(t),
                None if self.ended => Poll::Ended,
                None => Poll::Empty,
            }
        }
    }

    #[test]
    fn consumers_count_what_never_arrived() {
        let clock = Clock::new();
        for pace in [Pace::Spaced, Pace::Flat, Pace::Rate(1e9)] {
            let mut f = Fake {
                sent: Default::default(),
                drop: vec![3, 4, 50],
                ended: true,
            };
            assert_eq!(produce(&mut f, &clock, 50, pace, 0), 0);
            let flow = consume_flow(&mut f, &clock, 50, u64::MAX).unwrap();
            // 3 and 4 are missing in the middle; 50, the last, is found missing at the end.
            assert_eq!((flow.received, flow.lost), (47, 3), "{pace:?}");
        }
        let mut f = Fake {
            sent: Default::default(),
            drop: vec![7],
            ended: true,
        };
        produce(&mut f, &clock, 20, Pace::Spaced, 0);
        let (hist, l) = consume_latency(&mut f, &clock, 20, 5, u64::MAX).unwrap();
        assert_eq!((hist.len(), l.lost), (14, 1));
    }

    #[test]
    fn ring_and_channel_rows_measure_every_sample() {
        let cores = common::cores::allowed_cores();
        let s = Setup {
            clock: Clock::new(),
            tx_core: cores[0],
            rx_core: *cores.last().unwrap(),
            rx2_core: None,
            samples: 150,
            warmup: 50,
            spacing_ns: 1_000,
            messages: 1_000,
            capacity: 1024,
            pins: PinReport::default(),
        };
        let l = ring::latency_threads(&s).unwrap();
        assert_eq!(l.ns.count, 150);
        let l = channel::latency(&s).unwrap();
        assert_eq!((l.ns.count, l.lost), (150, 0));
        let t = channel::throughput(&s, Pace::Flat).unwrap();
        assert_eq!((t.consumers[0].received, t.lost()), (1_000, 0));
        let t = ring::throughput_threads(&s, None, Pace::Rate(1e6), false).unwrap();
        assert_eq!(t.consumers[0].received + t.lost(), 1_000);
        let t = ring::throughput_threads(&s, None, Pace::Flat, true).unwrap();
        assert_eq!((t.consumers[0].received, t.lost()), (1_000, 0));
    }
}
