//! The metrics a comparison can judge: one value per run, taken from its `summary.json`.
//! Lower is better for every one of them (latencies, memory, allocations, the cold
//! threads' CPU), so a ratio below 1 is an improvement.
//!
//! Pure data and lookups; the names are the ones a matrix's `metrics` list uses.

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
    /// Its value in one run, if the run reported it.
    pub of: fn(&Summary) -> Option<f64>,
}

/// A stage's percentile in one run.
fn pct(s: &Summary, stage: &str, p: fn(&common::latency::Percentiles) -> u64) -> Option<f64> {
    s.latency_ns
        .get(stage)
        .filter(|x| x.count > 0)
        .map(|x| p(x) as f64)
}

/// A peak RSS, where the process reported one.
fn rss(bytes: u64) -> Option<f64> {
    (bytes > 0).then_some(bytes as f64)
}

macro_rules! stage_metrics {
    ($($stage:literal),*) => {
        [$([
            Metric { name: concat!($stage, " p50"), what: concat!("median of `", $stage, "`"), unit: Unit::Ns, of: |s| pct(s, $stage, |p| p.p50) },
            Metric { name: concat!($stage, " p90"), what: concat!("90th percentile of `", $stage, "`"), unit: Unit::Ns, of: |s| pct(s, $stage, |p| p.p90) },
            Metric { name: concat!($stage, " p99"), what: concat!("99th percentile of `", $stage, "`"), unit: Unit::Ns, of: |s| pct(s, $stage, |p| p.p99) },
            Metric { name: concat!($stage, " p99.9"), what: concat!("99.9th percentile of `", $stage, "`"), unit: Unit::Ns, of: |s| pct(s, $stage, |p| p.p99_9) },
            Metric { name: concat!($stage, " max"), what: concat!("the largest `", $stage, "` of the run"), unit: Unit::Ns, of: |s| pct(s, $stage, |p| p.max) },
        ]),*]
    };
}

/// The stages' percentiles: `feed_lag`, `hop`, `engine`, `e2e` × p50, p90, p99, p99.9,
/// max.
static STAGE_METRICS: [[Metric; 5]; 4] = stage_metrics!("feed_lag", "hop", "engine", "e2e");

/// Memory, allocations and the cold threads.
static OTHER_METRICS: [Metric; 5] = [
    Metric {
        name: "engine RSS",
        what: "the engine's peak resident set",
        unit: Unit::Bytes,
        of: |s| rss(s.engine.detail.memory.peak_rss_bytes),
    },
    Metric {
        name: "feed RSS",
        what: "the feed's peak resident set",
        unit: Unit::Bytes,
        of: |s| rss(s.feed.detail.memory.peak_rss_bytes),
    },
    Metric {
        name: "allocs/tick",
        what: "global allocations per tick on the engine's hot thread after warm-up",
        unit: Unit::Count,
        of: |s| Some(s.engine.global_allocs_per_tick),
    },
    Metric {
        name: "cold CPU",
        what: "CPU time of all cold threads per second of the run",
        unit: Unit::MsPerS,
        of: |s| {
            (!s.cold_threads.is_empty())
                .then(|| s.cold_threads.values().map(|b| b.cpu_ms_per_s).sum())
        },
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
    },
];

/// Every metric, stages first.
pub fn all() -> impl Iterator<Item = &'static Metric> {
    STAGE_METRICS.iter().flatten().chain(OTHER_METRICS.iter())
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
}
