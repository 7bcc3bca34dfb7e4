//! The metrics a comparison can judge: one value per run, taken from its `summary.json`.
//! Lower is better for every one of them (latencies, memory, allocations, the cold
//! threads' CPU), so a ratio below 1 is an improvement.
//!
//! Pure data and lookups; the names are the ones a matrix's `metrics` list uses.
//!
//! # One process
//!
//! In a one-process run (a pipeline variant) the feed's and the engine's summaries
//! describe the same process: both report its RSS and its allocator's counters. A
//! metric says what it is there ([`OneProcess`], read through [`Metric::value`]): the
//! per-process figures (`engine RSS`, `feed RSS`, `engine returned`, `feed returned`) are
//! left out (n/a) rather than shown as if each side had its own, and `RSS total` (both
//! processes' peaks added up for two processes) counts the one process once. Everything
//! else (latencies, per-thread figures, allocations of the hot thread) reads the same in
//! both shapes.

use crate::variant::Process;
use common::alloc::CallTimes;
use common::mechanisms::ThreadStats;
use common::summary::Summary;

/// How a metric's values read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Nanoseconds.
    Ns,
    /// Bytes.
    Bytes,
    /// A plain number.
    Count,
    /// Milliseconds per second.
    MsPerS,
    /// Microseconds.
    Us,
    /// Events per second.
    PerS,
    /// Bytes per second.
    BytesPerS,
}

/// One metric.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// Its name in matrices and reports (`e2e p99`).
    pub name: &'static str,
    /// What it is, for the report.
    pub what: &'static str,
    /// How its values read.
    pub unit: Unit,
    /// Its value in one run of two processes, if the run reported it.
    pub of: fn(&Summary) -> Option<f64>,
    /// What it is in a one-process run.
    pub one_process: OneProcess,
}

/// What a metric is in a one-process run.
#[derive(Clone, Copy, Debug)]
pub enum OneProcess {
    /// The same as for two processes.
    Same,
    /// Not a figure of one process: one side's share of a process both sides are (n/a).
    Omitted,
    /// This instead.
    Instead(fn(&Summary) -> Option<f64>),
}

impl Metric {
    /// Its value in one run of a variant run as `process`, if the run reported it.
    pub fn value(&self, s: &Summary, process: Process) -> Option<f64> {
        match (process, self.one_process) {
            (Process::Two, _) | (Process::Single(_), OneProcess::Same) => (self.of)(s),
            (Process::Single(_), OneProcess::Omitted) => None,
            (Process::Single(_), OneProcess::Instead(f)) => f(s),
        }
    }
}

/// A stage's percentile in one run.
fn pct(s: &Summary, stage: &str, p: fn(&common::latency::Percentiles) -> u64) -> Option<f64> {
    s.latency_ns
        .get(stage)
        .filter(|x| x.count > 0)
        .map(|x| p(x) as f64)
}

/// A figure of the feed's history service, microseconds, as nanoseconds; where it
/// answered something.
fn service(s: &Summary, f: fn(&common::summary::ServiceReport) -> f64) -> Option<f64> {
    let r = s.feed.detail.service.as_ref()?;
    (r.answered > 0).then(|| f(r) * 1e3)
}

/// A peak RSS, where the process reported one.
fn rss(bytes: u64) -> Option<f64> {
    (bytes > 0).then_some(bytes as f64)
}

/// Both processes' peak RSS added up, where both reported one (the sum of peaks, which
/// may come at different moments: at least the peak of the sum).
fn rss_total_two(s: &Summary) -> Option<f64> {
    Some(rss(s.feed.detail.memory.peak_rss_bytes)? + rss(s.engine.detail.memory.peak_rss_bytes)?)
}

/// The one process's peak RSS: the larger of its two sides' peaks (each side samples the
/// same process at its own moments).
fn rss_total_one(s: &Summary) -> Option<f64> {
    rss(s
        .feed
        .detail
        .memory
        .peak_rss_bytes
        .max(s.engine.detail.memory.peak_rss_bytes))
}

macro_rules! stage_metrics {
    ($($stage:literal),*) => {
        [$([
            Metric { name: concat!($stage, " p50"), what: concat!("median of `", $stage, "`"), unit: Unit::Ns, of: |s| pct(s, $stage, |p| p.p50), one_process: OneProcess::Same },
            Metric { name: concat!($stage, " p90"), what: concat!("90th percentile of `", $stage, "`"), unit: Unit::Ns, of: |s| pct(s, $stage, |p| p.p90), one_process: OneProcess::Same },
            Metric { name: concat!($stage, " p99"), what: concat!("99th percentile of `", $stage, "`"), unit: Unit::Ns, of: |s| pct(s, $stage, |p| p.p99), one_process: OneProcess::Same },
            Metric { name: concat!($stage, " p99.9"), what: concat!("99.9th percentile of `", $stage, "`"), unit: Unit::Ns, of: |s| pct(s, $stage, |p| p.p99_9), one_process: OneProcess::Same },
            Metric { name: concat!($stage, " max"), what: concat!("the largest `", $stage, "` of the run"), unit: Unit::Ns, of: |s| pct(s, $stage, |p| p.max), one_process: OneProcess::Same },
        ]),*]
    };
}

/// The stages' percentiles: `feed_lag`, `hop`, `engine`, `e2e` × p50, p90, p99, p99.9,
/// max.
static STAGE_METRICS: [[Metric; 5]; 4] = stage_metrics!("feed_lag", "hop", "engine", "e2e");

/// A thread's figure per second of its measured window, from either process.
fn thread_per_s(s: &Summary, thread: &str, f: fn(&ThreadStats) -> f64) -> Option<f64> {
    s.mechanisms.values().find_map(|m| m.per_s(thread, f))
}

/// The sum of a figure per second over `threads` (all of them must be there).
fn threads_per_s(s: &Summary, threads: &[&str], f: fn(&ThreadStats) -> f64) -> Option<f64> {
    threads.iter().map(|t| thread_per_s(s, t, f)).sum()
}

/// Bytes one process's allocator gave back to the kernel per second of its window, from
/// its own counters (jemalloc: purged pages of 4 KiB; mimalloc: purged and reset bytes;
/// tcmalloc: released bytes); `None` for glibc, which counts none.
fn returned_per_s(s: &Summary, process: &str) -> Option<f64> {
    let m = s.mechanisms.get(process)?;
    let a = &m.allocator;
    let get = |k: &str| a.get(k).copied();
    let bytes = if let Some(d) = get("dirty_purged") {
        (d + get("muzzy_purged").unwrap_or(0)) * 4096
    } else if let Some(p) = get("purged") {
        p + get("reset").unwrap_or(0)
    } else {
        get("tcmalloc.num_released_total_bytes")?
    };
    (m.seconds > 0.0).then(|| bytes as f64 / m.seconds)
}

/// A timed allocator call's percentile (the timed-allocator mode).
fn call(s: &Summary, role: &str, op: &str, p: fn(&CallTimes) -> f64) -> Option<f64> {
    s.alloc_call_ns
        .get(role)?
        .get(op)
        .filter(|t| t.count > 0)
        .map(p)
}

/// The mechanisms: what the kernel and the allocators did in the measured window.
static MECHANISM_METRICS: [Metric; 10] = [
    Metric {
        name: "hot preemptions",
        what: "involuntary context switches per second of the two hot threads (engine-hot + feed-md)",
        unit: Unit::PerS,
        of: |s| threads_per_s(s, &["engine-hot", "feed-md"], |t| t.involuntary_switches as f64),
        one_process: OneProcess::Same,
    },
    Metric {
        name: "history faults",
        what: "minor page faults per second of the feed's history thread",
        unit: Unit::PerS,
        of: |s| thread_per_s(s, "feed-history", |t| t.minor_faults as f64),
        one_process: OneProcess::Same,
    },
    Metric {
        name: "engine cold faults",
        what: "minor page faults per second of the engine's report and order threads",
        unit: Unit::PerS,
        of: |s| threads_per_s(s, &["engine-report", "engine-orders"], |t| t.minor_faults as f64),
        one_process: OneProcess::Same,
    },
    Metric {
        name: "TLB shootdowns",
        what: "TLB-shootdown interrupts per second on the two hot cores",
        unit: Unit::PerS,
        of: |s| s.mechanisms.get("engine")?.interrupts_per_s("TLB"),
        one_process: OneProcess::Same,
    },
    Metric {
        name: "call IPIs",
        what: "function-call interrupts per second on the two hot cores",
        unit: Unit::PerS,
        of: |s| s.mechanisms.get("engine")?.interrupts_per_s("CAL"),
        one_process: OneProcess::Same,
    },
    Metric {
        name: "feed returned",
        what: "bytes per second the feed's allocator gave back to the kernel (its own counters; glibc counts none; n/a for one process, whose allocator both sides share)",
        unit: Unit::BytesPerS,
        of: |s| returned_per_s(s, "feed"),
        one_process: OneProcess::Omitted,
    },
    Metric {
        name: "engine returned",
        what: "bytes per second the engine's allocator gave back to the kernel (its own counters; glibc counts none; n/a for one process, whose allocator both sides share)",
        unit: Unit::BytesPerS,
        of: |s| returned_per_s(s, "engine"),
        one_process: OneProcess::Omitted,
    },
    Metric {
        name: "history alloc p99.9",
        what: "99.9th percentile of the history thread's allocation calls (timed-allocator mode)",
        unit: Unit::Ns,
        of: |s| call(s, "feed_history", "alloc", |t| t.p99_9_ns),
        one_process: OneProcess::Same,
    },
    Metric {
        name: "history free p99.9",
        what: "99.9th percentile of the history thread's free calls (timed-allocator mode)",
        unit: Unit::Ns,
        of: |s| call(s, "feed_history", "free", |t| t.p99_9_ns),
        one_process: OneProcess::Same,
    },
    Metric {
        name: "history free max",
        what: "the longest free call of the history thread (timed-allocator mode)",
        unit: Unit::Ns,
        of: |s| call(s, "feed_history", "free", |t| t.max_ns),
        one_process: OneProcess::Same,
    },
];

/// Memory, allocations and the cold threads.
static OTHER_METRICS: [Metric; 13] = [
    Metric {
        name: "service p50",
        what: "median time of the feed's history service from a request received to its answer's last byte written",
        unit: Unit::Ns,
        of: |s| service(s, |r| r.latency_p50_us),
        one_process: OneProcess::Same,
    },
    Metric {
        name: "service p99",
        what: "99th percentile of the feed's history service from a request received to its answer's last byte written",
        unit: Unit::Ns,
        of: |s| service(s, |r| r.latency_p99_us),
        one_process: OneProcess::Same,
    },
    Metric {
        name: "service ns/tick",
        what: "the service load's time per tick served (engine.service_load: seconds over ticks received; the inverse of its throughput)",
        unit: Unit::Ns,
        of: |s| {
            let l = s.engine.detail.service_load.as_ref()?;
            (l.ticks > 0).then(|| l.seconds * 1e9 / l.ticks as f64)
        },
        one_process: OneProcess::Same,
    },
    Metric {
        name: "history allocs",
        what: "allocator calls per second of the feed's history thread (allocations, frees, reallocations)",
        unit: Unit::PerS,
        of: |s| {
            let f = &s.feed.detail;
            let c = f.alloc_profile.get("feed_history")?;
            (f.elapsed_s > 0.0).then(|| c.calls() as f64 / f.elapsed_s)
        },
        one_process: OneProcess::Same,
    },
    Metric {
        name: "report allocs",
        what: "allocator calls per second of the engine's report thread (allocations, frees, reallocations), over the seconds the thread was measured",
        unit: Unit::PerS,
        of: |s| {
            let e = &s.engine.detail;
            let c = e.alloc_profile.get("engine_report")?;
            let seconds = e.cold_threads.get("engine_report")?.seconds;
            (seconds > 0.0).then(|| c.calls() as f64 / seconds)
        },
        one_process: OneProcess::Same,
    },
    Metric {
        name: "history dropped",
        what: "tick copies the feed's history thread lost to a full md → history channel (it fell behind)",
        unit: Unit::Count,
        of: |s| Some(s.feed.detail.history_dropped as f64),
        one_process: OneProcess::Same,
    },
    Metric {
        name: "orders dropped",
        what: "orders the engine's order thread lost to a full hot → orders channel (it fell behind)",
        unit: Unit::Count,
        of: |s| Some(s.engine.detail.orders_dropped as f64),
        one_process: OneProcess::Same,
    },
    Metric {
        name: "engine RSS",
        what: "the engine's peak resident set (n/a for one process: see RSS total)",
        unit: Unit::Bytes,
        of: |s| rss(s.engine.detail.memory.peak_rss_bytes),
        one_process: OneProcess::Omitted,
    },
    Metric {
        name: "feed RSS",
        what: "the feed's peak resident set (n/a for one process: see RSS total)",
        unit: Unit::Bytes,
        of: |s| rss(s.feed.detail.memory.peak_rss_bytes),
        one_process: OneProcess::Omitted,
    },
    Metric {
        name: "RSS total",
        what: "peak resident set of the run's processes: the feed's and the engine's peaks added up for two processes, the one process's peak (counted once) for one",
        unit: Unit::Bytes,
        of: rss_total_two,
        one_process: OneProcess::Instead(rss_total_one),
    },
    Metric {
        name: "allocs/tick",
        what: "global allocations per tick on the engine's hot thread after warm-up",
        unit: Unit::Count,
        of: |s| Some(s.engine.global_allocs_per_tick),
        one_process: OneProcess::Same,
    },
    Metric {
        name: "cold CPU",
        what: "CPU time of all cold threads per second of the run",
        unit: Unit::MsPerS,
        of: |s| {
            (!s.cold_threads.is_empty())
                .then(|| s.cold_threads.values().map(|b| b.cpu_ms_per_s).sum())
        },
        one_process: OneProcess::Same,
    },
    Metric {
        name: "longest cold stretch",
        what: "the longest CPU time any cold thread ran between two sleeps",
        unit: Unit::Us,
        of: |s| {
            s.cold_threads
                .values()
                .map(|b| b.longest_stretch_us)
                .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))))
        },
        one_process: OneProcess::Same,
    },
];

/// Every metric: stages, then memory and the cold threads, then the mechanisms.
pub fn all() -> impl Iterator<Item = &'static Metric> {
    STAGE_METRICS
        .iter()
        .flatten()
        .chain(OTHER_METRICS.iter())
        .chain(MECHANISM_METRICS.iter())
}

/// The mechanism metrics, in order (the report's mechanism table).
pub fn mechanism_metrics() -> &'static [Metric] {
    &MECHANISM_METRICS
}

/// The metric named `name`.
pub fn metric(name: &str) -> Option<&'static Metric> {
    all().find(|m| m.name == name)
}

/// Every metric's name, in order.
pub fn metric_names() -> Vec<&'static str> {
    all().map(|m| m.name).collect()
}

/// The metrics judged when a matrix does not list its own.
pub const DEFAULT_METRICS: [&str; 11] = [
    "e2e p50",
    "e2e p99",
    "e2e p99.9",
    "engine p50",
    "engine p99",
    "feed_lag p99",
    "hop p99",
    "engine RSS",
    "feed RSS",
    "allocs/tick",
    "cold CPU",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_metric_exists_and_names_are_unique() {
        for m in DEFAULT_METRICS {
            assert!(metric(m).is_some(), "{m}");
        }
        let names = metric_names();
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        assert_eq!(metric("e2e p99.9").unwrap().unit, Unit::Ns);
        assert!(metric("e2e p99.99").is_none());
    }

    #[test]
    fn values_come_from_the_summary() {
        let mut s = Summary::default();
        s.latency_ns.insert(
            "e2e".into(),
            common::latency::Percentiles {
                count: 10,
                p99: 700,
                ..Default::default()
            },
        );
        assert_eq!((metric("e2e p99").unwrap().of)(&s), Some(700.0));
        assert_eq!((metric("hop p99").unwrap().of)(&s), None);
        assert_eq!((metric("cold CPU").unwrap().of)(&s), None);
    }

    #[test]
    fn one_process_counts_its_rss_once() {
        let mut s = Summary::default();
        s.feed.detail.memory.peak_rss_bytes = 100;
        s.engine.detail.memory.peak_rss_bytes = 120;
        let one = Process::Single(crate::variant::PipelineAlloc::Hybrid);
        let value = |s: &Summary, name: &str, p: Process| metric(name).unwrap().value(s, p);
        assert_eq!(value(&s, "RSS total", Process::Two), Some(220.0));
        assert_eq!(value(&s, "RSS total", one), Some(120.0));
        assert_eq!(value(&s, "engine RSS", Process::Two), Some(120.0));
        for per_process in ["engine RSS", "feed RSS", "engine returned", "feed returned"] {
            assert_eq!(value(&s, per_process, one), None, "{per_process}");
        }
        // A process that reported no RSS: no total.
        s.feed.detail.memory.peak_rss_bytes = 0;
        assert_eq!(value(&s, "RSS total", Process::Two), None);
        assert_eq!(value(&s, "RSS total", one), Some(120.0));
        // Everything else reads the same in both shapes.
        s.engine.global_allocs_per_tick = 0.5;
        assert_eq!(
            value(&s, "allocs/tick", one),
            value(&s, "allocs/tick", Process::Two)
        );
    }
}
