//! The rows of `lab bench transport`: which there are, in which order they are measured,
//! which transport measures each, the cache-line floor, and the zero-loss search of the
//! throughput rows.
//!
//! Every row is measured in its turn whatever happened to the ones before: a row that
//! fails is recorded as failed, with its error, and one this build or these cores
//! cannot measure as skipped, with the reason.

use super::harness::{percentiles_ns, Latency, Pace, Setup, Throughput};
#[cfg(feature = "peers")]
use super::iceoryx;
use super::output::fmt_rate;
use super::{channel, ring};
use crate::host::Host;
use anyhow::Result;
use common::latency::{fixed_histogram, HIGHEST_RAW};
use crossbeam_utils::CachePadded;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Latency rows, in table and JSON order; the first is the floor.
pub const LATENCY_ROWS: [&str; 7] = [
    "cacheline",
    "ring_threads",
    "ring_processes",
    "crossbeam_threads",
    "iceoryx2_processes",
    "aeron_ipc_threads",
    "aeron_udp_threads",
];

/// Throughput rows, in table and JSON order, with the latency row whose `msgs_per_s`
/// each one gives.
pub const THROUGHPUT_ROWS: [(&str, Option<&str>); 10] = [
    ("ring_threads_1p1c", Some("ring_threads")),
    ("ring_threads_1p2c", None),
    ("ring_threads_lossless_1p1c", None),
    ("ring_threads_lossless_1p2c", None),
    ("ring_processes_1p1c", Some("ring_processes")),
    ("crossbeam_threads_1p1c", Some("crossbeam_threads")),
    ("iceoryx2_processes_1p1c", Some("iceoryx2_processes")),
    ("iceoryx2_processes_1p2c", None),
    ("aeron_ipc_threads_1p1c", Some("aeron_ipc_threads")),
    ("aeron_udp_threads_1p1c", Some("aeron_udp_threads")),
];

/// What a row shows when the `peers` feature was not built.
#[cfg_attr(feature = "peers", allow(dead_code))]
pub const NOT_BUILT: &str = "not built (enable --features peers)";

/// Whether this build has the iceoryx2 rows.
pub const PEERS_BUILT: bool = cfg!(feature = "peers");

/// Whether this build has the Aeron rows.
pub const AERON_BUILT: bool = cfg!(feature = "aeron");

/// What an Aeron row shows when the `aeron` feature was not built.
#[cfg_attr(feature = "aeron", allow(dead_code))]
pub const AERON_NOT_BUILT: &str = "not built (enable --features aeron)";

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
pub fn search<F: FnMut(Pace) -> Result<Throughput>>(mut run: F) -> Result<ThroughputRow> {
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
    pub fn from_result(r: Result<T>) -> Outcome<T> {
        match r {
            Ok(v) => Outcome::Done(v),
            Err(e) => Outcome::Failed(format!("{e:#}")),
        }
    }

    pub fn done(&self) -> Option<&T> {
        match self {
            Outcome::Done(v) => Some(v),
            _ => None,
        }
    }
}

/// Where and how the benchmark ran: the `machine` object of `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// CPU, kernel, clock source and git revision.
    #[serde(flatten)]
    pub host: Host,
    /// Nanoseconds per raw clock unit.
    pub ns_per_raw: f64,
    /// The sending and receiving cores.
    pub cores: Cores,
    /// Whether every thread was pinned to its core.
    pub pinned: bool,
    /// Measured latency samples per row.
    pub samples: u64,
    /// Discarded leading samples per row.
    pub warmup: u64,
    /// Busy-wait between two latency samples.
    pub spacing_ns: u64,
    /// Ticks each throughput run publishes.
    pub messages: u64,
    /// Ring capacity, channel bound and subscriber buffer.
    pub capacity: u64,
    /// Whether this build has the iceoryx2 rows ([`PEERS_BUILT`]).
    pub peers_built: bool,
    /// Whether this build has the Aeron rows ([`AERON_BUILT`]).
    pub aeron_built: bool,
}

/// The cores of a run.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Cores {
    /// The producer's.
    pub send: usize,
    /// The (first) consumer's.
    pub receive: usize,
    /// The second consumer's, for the 1p2c rows.
    pub second_receive: Option<usize>,
}

/// Everything one run measured.
pub struct Report {
    pub machine: Machine,
    pub latency: Vec<(&'static str, Outcome<Latency>)>,
    pub throughput: Vec<(&'static str, Outcome<ThroughputRow>)>,
}

/// Measures every row, in order: latency first, then throughput.
pub fn measure(s: &Setup) -> Report {
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
            "aeron_ipc_threads" => aeron_latency(s, true),
            "aeron_udp_threads" => aeron_latency(s, false),
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
            ("aeron_ipc_threads_1p1c", _) => aeron_throughput(s, true),
            ("aeron_udp_threads_1p1c", _) => aeron_throughput(s, false),
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
        host: Host::probe(&s.clock),
        ns_per_raw: s.clock.ns_per_raw(),
        cores: Cores {
            send: s.tx_core,
            receive: s.rx_core,
            second_receive: s.rx2_core,
        },
        pinned: s.pins.all_pinned(),
        samples: s.samples,
        warmup: s.warmup,
        spacing_ns: s.spacing_ns,
        messages: s.messages,
        capacity: s.capacity,
        peers_built: PEERS_BUILT,
        aeron_built: AERON_BUILT,
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

#[cfg(feature = "aeron")]
fn aeron_channel(ipc: bool) -> super::aeron::Channel {
    if ipc {
        super::aeron::Channel::Ipc
    } else {
        super::aeron::Channel::Udp
    }
}

#[cfg(feature = "aeron")]
fn aeron_latency(s: &Setup, ipc: bool) -> Outcome<Latency> {
    Outcome::from_result(super::aeron::latency(s, aeron_channel(ipc)))
}

#[cfg(not(feature = "aeron"))]
fn aeron_latency(_: &Setup, _ipc: bool) -> Outcome<Latency> {
    Outcome::Skipped(AERON_NOT_BUILT.to_string())
}

#[cfg(feature = "aeron")]
fn aeron_throughput(s: &Setup, ipc: bool) -> Outcome<ThroughputRow> {
    measured(search(|p| {
        super::aeron::throughput(s, aeron_channel(ipc), p)
    }))
}

#[cfg(not(feature = "aeron"))]
fn aeron_throughput(_: &Setup, _ipc: bool) -> Outcome<ThroughputRow> {
    Outcome::Skipped(AERON_NOT_BUILT.to_string())
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::harness::{offered, PinReport};
    use super::*;
    use common::clock::Clock;

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
            capacity: common::config::MIN_RING_CAPACITY,
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
