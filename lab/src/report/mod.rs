//! The report of `lab compare` (`report.md`), computed from the list of runs: (block,
//! variant, repetition, run folder, summary or error).
//!
//! Pure: no file, clock or process is touched here; [`crate::compare`] gathers the inputs
//! and writes the text. Every number in the report is computed from the summaries given,
//! and every run is listed with its folder, so each number can be traced to a
//! `summary.json`.
//!
//! # Rules
//!
//! - p50, p90, p99 and p99.9 of a variant are the **median over its repetitions**;
//!   p99.99 and max are the **worst repetition**. The run-to-run **spread** of a figure is
//!   its min–max over the repetitions.
//! - A variant differs from the baseline on a metric only by the rule of [`verdict`]:
//!   bootstrap interval of the ratio of medians, rank test, minimum effect, split halves
//!   (*better*, *worse*, *unstable*, *no detectable difference*).
//! - Ratios divide a variant's median by the median of the block's baseline: the variant
//!   the matrix names (`baseline = N`), else the **all-system heap variant** (engine
//!   system + heap, feed system) at the same levels.
//! - allocs/tick (engine hot thread), RSS and fragmentation (peaks) are the worst
//!   repetition: the figure to plan capacity with.
//! - Recommendations pick the lowest median, and only on a stable verdict against the
//!   next best, never a fixed answer: for the engine role
//!   (variants with the same feed allocator and levels) the lowest e2e p99; for the feed
//!   role (variants with the same engine allocator, scratch and levels) the lowest
//!   feed_lag p99, peak RSS and peak fragmentation, naming the trade-off when they
//!   disagree.
//! - One-process variants (a pipeline binary) have no allocator per role: the engine and
//!   feed recommendations and the pool break-even take two-process variants only, and a
//!   block with one-process variants gets a process-shape recommendation instead (every
//!   variant at a levels value, by the lowest e2e p99, on a stable verdict). Their
//!   memory is counted once: `RSS total` ([`metrics`]), with the per-process RSS and
//!   returned-bytes metrics n/a for them.
//! - The hybrid (feed jemalloc, engine mimalloc + arena) reaches the brief's target when
//!   its median e2e p99 is at least [`stats::TARGET_PCT`]% below the baseline's with a
//!   stable *better* verdict.
//! - [`verdicts`] gives every verdict as data (`verdicts.json` beside the report), so
//!   that two reports can be compared by a program.
//!
//! # Layout
//!
//! [`stats`] computes every figure from the run records (medians, spreads, rankings,
//! verdicts); [`mod@render`] turns them into Markdown, calling on [`stats`] for every
//! figure it shows.

pub mod metrics;
mod render;
mod stats;
pub mod verdict;

pub use metrics::{metric, metric_names, DEFAULT_METRICS};
pub use render::render;

use serde::Serialize;
pub use stats::RATE_KEPT_PCT;

use crate::variant::Variant;
use common::summary::{NoiseFloor, Summary};
use std::time::Duration;

/// One block as planned.
#[derive(Clone, Debug)]
pub struct BlockInfo {
    /// Its name.
    pub name: String,
    /// Its base configuration file, as given.
    pub config: String,
    /// Seconds each run publishes.
    pub duration_s: f64,
    /// Warm-up, seconds.
    pub warmup_s: f64,
    /// The seed of every run.
    pub seed: u64,
    /// Its variants, in run order.
    pub variants: Vec<Variant>,
    /// The variant the matrix names as the baseline, if any.
    pub baseline: Option<usize>,
}

/// One run.
#[derive(Clone, Debug)]
pub struct RunRecord {
    /// Index of its block.
    pub block: usize,
    /// Index of its variant in the block.
    pub variant: usize,
    /// Repetition, from 1.
    pub rep: u32,
    /// Its folder, relative to the report.
    pub dir: String,
    /// Its merged summary, or why it failed.
    pub result: Result<Summary, String>,
}

/// One plot file.
#[derive(Clone, Debug)]
pub struct PlotRef {
    /// Index of its block.
    pub block: usize,
    /// Its stage.
    pub stage: String,
    /// Its path, relative to the report.
    pub file: String,
}

/// What the report says about the comparison as a whole.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    /// The matrix file, as given.
    pub matrix: String,
    /// UTC start, `YYYYmmdd-HHMMSS`.
    pub started_utc: String,
    /// Wall time of the whole comparison.
    pub wall: Duration,
    /// Repetitions planned.
    pub repetitions: u32,
    /// Set when the comparison was stopped before every run was done.
    pub interrupted: Option<String>,
    /// The plots.
    pub plots: Vec<PlotRef>,
    /// Notes on how the plots were made (runs left out, counts that differ).
    pub plot_notes: Vec<String>,
    /// The metrics judged.
    pub metrics: Vec<String>,
    /// The machine's noise floor probed at the start of each round: (round, floor).
    pub noise: Vec<(u32, NoiseFloor)>,
}

#[cfg(test)]
mod fixtures {
    //! Summaries and variant statistics the tests of [`super::stats`] and
    //! [`super::render`] share.

    use super::stats::VariantStats;
    use crate::variant::{Alloc, ScratchMode, Variant};
    use common::latency::Percentiles;
    use common::memory::MemoryReport;
    use common::summary::{EngineSummary, FeedSummary, Summary};
    use Alloc::*;
    use ScratchMode::*;

    pub fn variant(e: Alloc, s: ScratchMode, f: Alloc, levels: u32) -> Variant {
        Variant {
            engine_alloc: e,
            feed_alloc: f,
            scratch: s,
            levels,
            ..Variant::default()
        }
    }

    /// A summary whose e2e and engine p99 are `p99`, p50 `p99/4`, feed_lag p99 `lag`,
    /// with the given feed memory.
    pub fn summary(p99: u64, lag: u64, feed_rss: u64, feed_frag: Option<f64>) -> Summary {
        let pct = |p99: u64| Percentiles {
            count: 400_000,
            min: 1,
            p50: p99 / 4,
            p90: p99 / 2,
            p99,
            p99_9: p99 * 2,
            p99_99: p99 * 3,
            max: p99 * 10,
        };
        let feed = FeedSummary {
            published: 1000,
            offered_per_s: 100.0,
            achieved_per_s: 100.0,
            memory: MemoryReport {
                peak_rss_bytes: feed_rss,
                peak_fragmentation: feed_frag,
                ..MemoryReport::default()
            },
            ..FeedSummary::default()
        };
        let engine = EngineSummary {
            received: 1000,
            global_allocs_per_tick: 0.0,
            latency_ns: [
                ("e2e".to_string(), pct(p99)),
                ("engine".to_string(), pct(p99 / 2)),
                ("feed_lag".to_string(), pct(lag)),
                ("hop".to_string(), pct(100)),
            ]
            .into(),
            ..EngineSummary::default()
        };
        Summary::merge(feed, engine)
    }

    pub fn stats_of(v: Variant, p99s: &[u64]) -> VariantStats {
        let s: Vec<Summary> = p99s
            .iter()
            .map(|p| summary(*p, 100, 1 << 20, None))
            .collect();
        VariantStats::of(v, &s.iter().collect::<Vec<_>>(), 0)
    }

    /// A block of six rounds: the all-system baseline (around 1050), the hybrid (its
    /// e2e p99 per round given), and three other engine settings (around 1000, 800 and
    /// 650).
    pub fn block(hybrid_p99: &[u64]) -> Vec<VariantStats> {
        vec![
            stats_of(
                variant(System, Heap, System, 3),
                &[1000, 1050, 1100, 1020, 1080, 1050],
            ),
            stats_of(
                variant(System, Heap, Jemalloc, 3),
                &[990, 1000, 1010, 995, 1005, 1000],
            ),
            stats_of(variant(Mimalloc, Arena, Jemalloc, 3), hybrid_p99),
            stats_of(
                variant(Jemalloc, Arena, Jemalloc, 3),
                &[760, 800, 840, 780, 820, 800],
            ),
            stats_of(
                variant(Tcmalloc, Pool, Jemalloc, 3),
                &[600, 650, 700, 620, 680, 650],
            ),
        ]
    }
}

/// `verdicts.json`: the matrix, the lab build, and every verdict of the report.
#[derive(Debug, Serialize)]
pub struct VerdictsFile {
    /// The matrix file.
    pub matrix: String,
    /// The git revision `lab` was built from.
    pub git_rev: &'static str,
    /// Every comparison ([`verdicts`]).
    pub verdicts: Vec<VerdictRecord>,
}

/// One comparison of `verdicts.json`.
#[derive(Clone, Debug, Serialize)]
pub struct VerdictRecord {
    /// The block's name.
    pub block: String,
    /// The variant (`V3`) and its label.
    pub variant: String,
    /// The variant's label.
    pub label: String,
    /// The baseline (`V1`).
    pub baseline: String,
    /// The metric's name.
    pub metric: String,
    /// Median ratio, variant over baseline.
    pub ratio: f64,
    /// The 95% interval of the ratio (`null` with too few runs).
    pub interval: Option<(f64, f64)>,
    /// The odd and the even rounds' ratios.
    pub halves: (f64, f64),
    /// `better`, `worse`, `unstable`, `no detectable difference`, `too few runs`, or
    /// `n/a` where the baseline or the variant has no value (a metric its allocator
    /// does not report).
    pub verdict: String,
}

/// Every verdict of the report: each variant of each block against its baseline on each
/// judged metric.
pub fn verdicts(meta: &Meta, blocks: &[BlockInfo], runs: &[RunRecord]) -> Vec<VerdictRecord> {
    let mut out = Vec::new();
    for (bi, b) in blocks.iter().enumerate() {
        let stats = stats::block_stats(bi, b, runs);
        let Some(base) = stats::baseline_for(&stats, b.baseline, &b.variants[0]) else {
            continue;
        };
        for (i, s) in stats.iter().enumerate().filter(|(i, _)| *i != base) {
            for m in &meta.metrics {
                let c = stats::compare(&stats, base, i, m);
                out.push(VerdictRecord {
                    block: b.name.clone(),
                    variant: format!("V{}", i + 1),
                    label: s.variant.label(),
                    baseline: format!("V{}", base + 1),
                    metric: m.clone(),
                    ratio: c.ratio,
                    interval: (!c.lo.is_nan()).then_some((c.lo, c.hi)),
                    halves: c.halves,
                    verdict: if c.ratio.is_finite() {
                        c.verdict.word().to_string()
                    } else {
                        "n/a".to_string()
                    },
                });
            }
        }
    }
    out
}
