//! The statistics of `lab compare`'s report: every figure computed from the run
//! records, by the rules in [the module docs](super). Pure and deterministic: the same
//! records give the same figures, in the same order.
//!
//! The role comparisons (engine, feed, pool break-even) take two-process variants only:
//! a one-process variant has no allocator per role. Where a block has one-process
//! variants, [`shape_recs`] ranks every variant of a levels value instead.

use super::metrics;
use super::verdict::{self, Comparison, Rule};
use super::{BlockInfo, RunRecord};
use crate::variant::{Alloc, ScratchMode, Variant};
use common::latency::{Percentiles, Stage, STAGES};
use common::summary::Summary;
use std::collections::{BTreeMap, BTreeSet};

/// The brief's target: the hybrid's e2e p99 this many percent below the baseline's.
pub const TARGET_PCT: f64 = 20.0;

/// A figure's median over the repetitions and its spread (min–max).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// Median over the repetitions.
    pub median: f64,
    /// Smallest value of a repetition.
    pub min: u64,
    /// Largest value of a repetition.
    pub max: u64,
}

impl Spread {
    /// The median and spread of `values` (at least one).
    pub fn of(values: &[u64]) -> Spread {
        let mut v = values.to_vec();
        v.sort_unstable();
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2] as f64
        } else {
            (v[n / 2 - 1] as f64 + v[n / 2] as f64) / 2.0
        };
        Spread {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }
}

/// One stage of one variant over its repetitions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StageStats {
    /// Median p50, with spread.
    pub p50: Spread,
    /// Median p90, with spread.
    pub p90: Spread,
    /// Median p99, with spread.
    pub p99: Spread,
    /// Median p99.9, with spread.
    pub p99_9: Spread,
    /// Worst p99.99.
    pub p99_99: u64,
    /// Worst max.
    pub max: u64,
    /// Fewest samples in one repetition.
    pub min_count: u64,
}

impl StageStats {
    /// The figures as one percentile row: the medians rounded to the nanosecond, the
    /// worst p99.99 and max, and as the count the fewest samples of a repetition (`min`
    /// is not kept: 0).
    pub fn as_percentiles(&self) -> Percentiles {
        let round = |s: Spread| s.median.round() as u64;
        Percentiles {
            count: self.min_count,
            min: 0,
            p50: round(self.p50),
            p90: round(self.p90),
            p99: round(self.p99),
            p99_9: round(self.p99_9),
            p99_99: self.p99_99,
            max: self.max,
        }
    }
}

/// One variant over its repetitions.
#[derive(Clone, Debug, PartialEq)]
pub struct VariantStats {
    /// The variant.
    pub variant: Variant,
    /// Runs that finished.
    pub ok: usize,
    /// Runs that failed.
    pub failed: usize,
    /// Per stage (stages no run reported are missing).
    pub stages: BTreeMap<String, StageStats>,
    /// Engine hot-thread global allocations per tick after warm-up (worst run).
    pub allocs_per_tick: Option<f64>,
    /// Engine peak RSS, bytes (worst run; `None` where not reported).
    pub engine_rss: Option<u64>,
    /// Feed peak RSS, bytes.
    pub feed_rss: Option<u64>,
    /// Peak RSS of the run's processes (the `RSS total` metric: both peaks added up for
    /// two processes, the one process's once), bytes, worst run.
    pub rss_total: Option<u64>,
    /// Engine peak fragmentation (worst run; `None` where the allocator does not say).
    pub engine_frag: Option<f64>,
    /// Feed peak fragmentation.
    pub feed_frag: Option<f64>,
    /// Gaps over all runs.
    pub gaps: u64,
    /// Ticks missed over all runs.
    pub missed: u64,
    /// Lowest achieved/offered rate of a run, percent.
    pub min_rate_pct: Option<f64>,
    /// Pool requests the global allocator served (pool exhausted or too small), worst
    /// run; `None` without a pool.
    pub pool_fallbacks: Option<u64>,
    /// Every metric's value in each finished run, in round order (the metric's name as
    /// [`metrics::metric`] knows it).
    pub values: BTreeMap<&'static str, Vec<f64>>,
}

impl VariantStats {
    /// The statistics of `variant` from its finished runs' summaries, in round order.
    pub fn of(variant: Variant, summaries: &[&Summary], failed: usize) -> VariantStats {
        let mut stages = BTreeMap::new();
        for stage in STAGES.map(Stage::name) {
            let p: Vec<_> = summaries
                .iter()
                .filter_map(|s| s.latency_ns.get(stage))
                .filter(|p| p.count > 0)
                .collect();
            if p.is_empty() {
                continue;
            }
            let spread = |f: fn(&common::latency::Percentiles) -> u64| {
                Spread::of(&p.iter().map(|x| f(x)).collect::<Vec<_>>())
            };
            stages.insert(
                stage.to_string(),
                StageStats {
                    p50: spread(|x| x.p50),
                    p90: spread(|x| x.p90),
                    p99: spread(|x| x.p99),
                    p99_9: spread(|x| x.p99_9),
                    p99_99: p.iter().map(|x| x.p99_99).max().unwrap_or(0),
                    max: p.iter().map(|x| x.max).max().unwrap_or(0),
                    min_count: p.iter().map(|x| x.count).min().unwrap_or(0),
                },
            );
        }
        let worst_u64 =
            |f: fn(&Summary) -> u64| summaries.iter().map(|s| f(s)).filter(|v| *v > 0).max();
        let worst_f64 = |f: fn(&Summary) -> Option<f64>| {
            summaries
                .iter()
                .filter_map(|s| f(s))
                .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))))
        };
        VariantStats {
            ok: summaries.len(),
            failed,
            stages,
            allocs_per_tick: worst_f64(|s| Some(s.engine.global_allocs_per_tick)),
            engine_rss: worst_u64(|s| s.engine.detail.memory.peak_rss_bytes),
            feed_rss: worst_u64(|s| s.feed.detail.memory.peak_rss_bytes),
            rss_total: metrics::metric("RSS total").and_then(|m| {
                summaries
                    .iter()
                    .filter_map(|s| m.value(s, variant.process))
                    .map(|b| b as u64)
                    .max()
            }),
            engine_frag: worst_f64(|s| s.engine.detail.memory.peak_fragmentation),
            feed_frag: worst_f64(|s| s.feed.detail.memory.peak_fragmentation),
            gaps: summaries.iter().map(|s| s.ticks.gaps).sum(),
            missed: summaries.iter().map(|s| s.ticks.missed).sum(),
            min_rate_pct: summaries
                .iter()
                .filter_map(|s| rate_pct(s))
                .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.min(b)))),
            pool_fallbacks: summaries
                .iter()
                .filter_map(|s| s.engine.detail.pool.as_ref().map(|p| p.fallbacks))
                .max(),
            values: metrics::all()
                .map(|m| {
                    let values = summaries
                        .iter()
                        .filter_map(|s| m.value(s, variant.process))
                        .collect();
                    (m.name, values)
                })
                .collect(),
            variant,
        }
    }

    /// The values of `metric` (one per finished run that reported it, in round order).
    pub fn values(&self, metric: &str) -> &[f64] {
        self.values.get(metric).map_or(&[], Vec::as_slice)
    }

    /// A stage's p99 spread, if reported.
    pub fn p99(&self, stage: &str) -> Option<Spread> {
        self.stages.get(stage).map(|s| s.p99)
    }

    /// A stage's p50 spread, if reported.
    pub fn p50(&self, stage: &str) -> Option<Spread> {
        self.stages.get(stage).map(|s| s.p50)
    }
}

/// A run's achieved rate, percent of the offered one (`None` when nothing was offered).
pub fn rate_pct(s: &Summary) -> Option<f64> {
    (s.rate.offered_per_s > 0.0).then(|| s.rate.achieved_per_s / s.rate.offered_per_s * 100.0)
}

/// The lowest achieved rate a run may have, percent of the offered one, without a
/// warning that the feed did not keep the offered rate (`lab run`'s table and the report).
pub const RATE_KEPT_PCT: f64 = 99.0;

/// `a`'s median divided by `b`'s (the "×base" ratios), if both exist and `b`'s is
/// positive.
pub fn median_ratio(a: Option<Spread>, b: Option<Spread>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b.median > 0.0 => Some(a.median / b.median),
        _ => None,
    }
}

/// The statistics of every variant of block `block`, in variant order.
pub fn block_stats(block: usize, info: &BlockInfo, runs: &[RunRecord]) -> Vec<VariantStats> {
    info.variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut mine: Vec<&RunRecord> = runs
                .iter()
                .filter(|r| r.block == block && r.variant == i)
                .collect();
            mine.sort_by_key(|r| r.rep);
            let mine = mine.into_iter();
            let ok: Vec<&Summary> = mine
                .clone()
                .filter_map(|r| r.result.as_ref().ok())
                .collect();
            let failed = mine.filter(|r| r.result.is_err()).count();
            VariantStats::of(v.clone(), &ok, failed)
        })
        .collect()
}

/// The baseline for `v` among `stats`: the variant the matrix names (`named`), else the
/// all-system heap variant at the same levels; one with finished runs.
pub fn baseline_for(stats: &[VariantStats], named: Option<usize>, v: &Variant) -> Option<usize> {
    match named {
        Some(b) => (stats.get(b).is_some_and(|s| s.ok > 0)).then_some(b),
        None => stats
            .iter()
            .position(|s| s.variant.is_baseline() && s.variant.levels == v.levels && s.ok > 0),
    }
}

/// The rule every verdict of the report follows.
pub fn rule() -> Rule {
    Rule::default()
}

/// Variant `b` against variant `a` on `metric` (the ratio is `b / a`).
pub fn compare(stats: &[VariantStats], a: usize, b: usize, metric: &str) -> Comparison {
    verdict::compare(
        metric,
        stats[a].values(metric),
        stats[b].values(metric),
        &rule(),
    )
}

/// Variants ranked by a figure, lowest median first.
pub type Ranking = Vec<(usize, Spread)>;

/// The variants `idx` ranked by `figure` (those without it left out).
pub fn rank(
    stats: &[VariantStats],
    idx: &[usize],
    figure: impl Fn(&VariantStats) -> Option<Spread>,
) -> Ranking {
    let mut r: Ranking = idx
        .iter()
        .filter_map(|&i| figure(&stats[i]).map(|s| (i, s)))
        .collect();
    r.sort_by(|a, b| a.1.median.total_cmp(&b.1.median).then(a.0.cmp(&b.0)));
    r
}

/// The engine-role comparison among variants sharing a feed allocator and levels.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineRec {
    /// The shared feed allocator.
    pub feed_alloc: Alloc,
    /// The shared levels.
    pub levels: u32,
    /// The variants by median e2e p99, lowest first.
    pub by_e2e_p99: Ranking,
    /// The same variants by median engine-stage p99, lowest first.
    pub by_engine_p99: Ranking,
    /// The block's baseline at these levels, if it has one.
    pub baseline: Option<usize>,
}

impl EngineRec {
    /// The recommendation on `stage`'s p99 (`e2e` or `engine`): the variant with the
    /// lowest median, if it is detectably lower than the next best with a stable verdict
    /// (the next best is *worse* than it); `None` when no single variant stands out.
    pub fn pick(&self, stats: &[VariantStats], stage: &str) -> Option<usize> {
        let ranking = match stage {
            "engine" => &self.by_engine_p99,
            _ => &self.by_e2e_p99,
        };
        stands_out(stats, ranking, &format!("{stage} p99"))
    }
}

/// The first of `ranking` if the second is stably *worse* than it on `metric` (or there
/// is no second).
pub fn stands_out(stats: &[VariantStats], ranking: &Ranking, metric: &str) -> Option<usize> {
    let &(best, _) = ranking.first()?;
    match ranking.get(1) {
        None => Some(best),
        Some(&(next, _)) => {
            (compare(stats, best, next, metric).verdict == verdict::Verdict::Worse).then_some(best)
        }
    }
}

/// One [`EngineRec`] per (feed allocator, levels) group in which at least two engine
/// settings (allocator × scratch) of two-process variants finished runs.
pub fn engine_recs(stats: &[VariantStats], named: Option<usize>) -> Vec<EngineRec> {
    let groups: BTreeSet<(Alloc, u32)> = stats
        .iter()
        .filter(|s| !s.variant.is_single())
        .map(|s| (s.variant.feed_alloc, s.variant.levels))
        .collect();
    let mut out = Vec::new();
    for (feed_alloc, levels) in groups {
        let idx: Vec<usize> = (0..stats.len())
            .filter(|&i| {
                let v = &stats[i].variant;
                !v.is_single()
                    && v.feed_alloc == feed_alloc
                    && v.levels == levels
                    && stats[i].ok > 0
            })
            .collect();
        let ranked = rank(stats, &idx, |s| s.p99("e2e"));
        if ranked.len() < 2 {
            continue;
        }
        let baseline = baseline_for(stats, named, &stats[idx[0]].variant);
        out.push(EngineRec {
            feed_alloc,
            levels,
            by_e2e_p99: ranked,
            by_engine_p99: rank(stats, &idx, |s| s.p99("engine")),
            baseline,
        });
    }
    out
}

/// The feed-role comparison among variants sharing the engine's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedRec {
    /// The shared engine allocator, scratch and levels.
    pub engine: (Alloc, ScratchMode, u32),
    /// The variants by median feed_lag p99, lowest first.
    pub by_lag_p99: Ranking,
    /// The variants by peak feed RSS, lowest first (where reported).
    pub by_rss: Vec<(usize, u64)>,
    /// The variants by peak feed fragmentation, lowest first (where reported).
    pub by_frag: Vec<(usize, f64)>,
}

/// A figure a feed allocator can be the best at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedFigure {
    /// The lowest median feed_lag p99 (reported by at least one variant).
    LagP99,
    /// The lowest peak feed RSS (reported by at least two).
    PeakRss,
    /// The lowest peak fragmentation (reported by at least two).
    Fragmentation,
}

impl FeedRec {
    /// The best variant on each figure enough variants reported, in [`FeedFigure`]
    /// order.
    pub fn winners(&self) -> Vec<(FeedFigure, usize)> {
        let mut w = Vec::new();
        if let Some(&(best, _)) = self.by_lag_p99.first() {
            w.push((FeedFigure::LagP99, best));
        }
        if let [(best, _), _, ..] = self.by_rss.as_slice() {
            w.push((FeedFigure::PeakRss, *best));
        }
        if let [(best, _), _, ..] = self.by_frag.as_slice() {
            w.push((FeedFigure::Fragmentation, *best));
        }
        w
    }

    /// The recommendation: the variant that is best on every figure of
    /// [`FeedRec::winners`], if one is, and whose feed_lag p99 stands out with a stable
    /// verdict against the next best (`None` also when nothing was measured).
    pub fn pick(&self, stats: &[VariantStats]) -> Option<usize> {
        let w = self.winners();
        let first = w.first()?.1;
        (w.iter().all(|x| x.1 == first)
            && stands_out(stats, &self.by_lag_p99, "feed_lag p99") == Some(first))
        .then_some(first)
    }
}

/// One [`FeedRec`] per (engine allocator, scratch, levels) group in which at least two
/// feed allocators of two-process variants finished runs.
pub fn feed_recs(stats: &[VariantStats]) -> Vec<FeedRec> {
    let groups: BTreeSet<(Alloc, ScratchMode, u32)> = stats
        .iter()
        .filter(|s| !s.variant.is_single())
        .map(|s| (s.variant.engine_alloc, s.variant.scratch, s.variant.levels))
        .collect();
    let mut out = Vec::new();
    for engine in groups {
        let idx: Vec<usize> = (0..stats.len())
            .filter(|&i| {
                let v = &stats[i].variant;
                !v.is_single() && (v.engine_alloc, v.scratch, v.levels) == engine && stats[i].ok > 0
            })
            .collect();
        if idx.len() < 2 {
            continue;
        }
        let by_lag_p99 = rank(stats, &idx, |s| s.p99("feed_lag"));
        let mut by_rss: Vec<(usize, u64)> = idx
            .iter()
            .filter_map(|&i| stats[i].feed_rss.map(|r| (i, r)))
            .collect();
        by_rss.sort_by_key(|&(i, r)| (r, i));
        let mut by_frag: Vec<(usize, f64)> = idx
            .iter()
            .filter_map(|&i| stats[i].feed_frag.map(|f| (i, f)))
            .collect();
        by_frag.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        out.push(FeedRec {
            engine,
            by_lag_p99,
            by_rss,
            by_frag,
        });
    }
    out
}

/// The process-shape comparison: every variant at one levels value, in a block where
/// at least one of them is one process.
#[derive(Clone, Debug, PartialEq)]
pub struct ShapeRec {
    /// The shared levels.
    pub levels: u32,
    /// The variants by median e2e p99, lowest first.
    pub by_e2e_p99: Ranking,
    /// The same variants by median hop p99 (published → received), lowest first.
    pub by_hop_p99: Ranking,
    /// The block's baseline at these levels, if it has one.
    pub baseline: Option<usize>,
}

impl ShapeRec {
    /// The recommendation on e2e p99: the lowest median if it stands out from the next
    /// best with a stable verdict ([`stands_out`]).
    pub fn pick(&self, stats: &[VariantStats]) -> Option<usize> {
        stands_out(stats, &self.by_e2e_p99, "e2e p99")
    }
}

/// One [`ShapeRec`] per levels value at which at least two variants, one of them one
/// process, finished runs.
pub fn shape_recs(stats: &[VariantStats], named: Option<usize>) -> Vec<ShapeRec> {
    let levels: BTreeSet<u32> = stats
        .iter()
        .filter(|s| s.variant.is_single())
        .map(|s| s.variant.levels)
        .collect();
    let mut out = Vec::new();
    for l in levels {
        let idx: Vec<usize> = (0..stats.len())
            .filter(|&i| stats[i].variant.levels == l && stats[i].ok > 0)
            .collect();
        let ranked = rank(stats, &idx, |s| s.p99("e2e"));
        if ranked.len() < 2 || !ranked.iter().any(|&(i, _)| stats[i].variant.is_single()) {
            continue;
        }
        out.push(ShapeRec {
            levels: l,
            baseline: baseline_for(stats, named, &stats[idx[0]].variant),
            by_e2e_p99: ranked,
            by_hop_p99: rank(stats, &idx, |s| s.p99("hop")),
        });
    }
    out
}

/// The hybrid against the baseline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HybridVerdict {
    /// The hybrid variant.
    pub hybrid: usize,
    /// The baseline variant (same levels).
    pub baseline: usize,
    /// How much lower the hybrid's median e2e p99 is, percent of the baseline's
    /// (negative: higher).
    pub improvement_pct: f64,
    /// The comparison of the hybrid's e2e p99 with the baseline's.
    pub comparison: Comparison,
    /// Whether the target is reached: a stable *better* verdict whose median is at least
    /// [`TARGET_PCT`]% lower.
    pub reached: bool,
}

/// The verdict for every hybrid variant of a block that has a baseline at its levels.
pub fn hybrid_verdicts(stats: &[VariantStats], named: Option<usize>) -> Vec<HybridVerdict> {
    let mut out = Vec::new();
    for (i, s) in stats.iter().enumerate() {
        if !s.variant.is_hybrid() {
            continue;
        }
        let Some(b) = baseline_for(stats, named, &s.variant) else {
            continue;
        };
        // A baseline that is the hybrid too (a block comparing settings, not
        // allocators) says nothing about the hybrid against the brief's baseline.
        if b == i || stats[b].variant.is_hybrid() {
            continue;
        }
        let (Some(h), Some(base)) = (s.p99("e2e"), stats[b].p99("e2e")) else {
            continue;
        };
        if base.median <= 0.0 {
            continue;
        }
        let improvement_pct = lower_pct(h.median, base.median);
        let comparison = compare(stats, b, i, "e2e p99");
        out.push(HybridVerdict {
            hybrid: i,
            baseline: b,
            improvement_pct,
            reached: comparison.verdict == verdict::Verdict::Better
                && improvement_pct >= TARGET_PCT,
            comparison,
        });
    }
    out
}

/// One levels value of a pool break-even table: the variant index of each scratch mode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakEvenRow {
    /// Orders per side per decision.
    pub levels: u32,
    /// The heap variant.
    pub heap: Option<usize>,
    /// The arena variant.
    pub arena: Option<usize>,
    /// The pool variant.
    pub pool: Option<usize>,
}

/// Pool break-even tables, one per (engine, feed) allocator pair of two-process
/// variants, when the block sweeps at least two levels values with pool and another
/// scratch mode.
pub fn pool_breakeven(stats: &[VariantStats]) -> Vec<((Alloc, Alloc), Vec<BreakEvenRow>)> {
    let two = |s: &&VariantStats| !s.variant.is_single();
    let pairs: BTreeSet<(Alloc, Alloc)> = stats
        .iter()
        .filter(two)
        .map(|s| (s.variant.engine_alloc, s.variant.feed_alloc))
        .collect();
    let mut out = Vec::new();
    for pair in pairs {
        let find = |levels: u32, scratch: ScratchMode| {
            stats.iter().position(|s| {
                let v = &s.variant;
                !v.is_single()
                    && (v.engine_alloc, v.feed_alloc) == pair
                    && v.levels == levels
                    && v.scratch == scratch
            })
        };
        let levels: BTreeSet<u32> = stats
            .iter()
            .filter(two)
            .filter(|s| (s.variant.engine_alloc, s.variant.feed_alloc) == pair)
            .map(|s| s.variant.levels)
            .collect();
        let rows: Vec<BreakEvenRow> = levels
            .iter()
            .map(|&l| BreakEvenRow {
                levels: l,
                heap: find(l, ScratchMode::Heap),
                arena: find(l, ScratchMode::Arena),
                pool: find(l, ScratchMode::Pool),
            })
            .collect();
        let with_pool = rows
            .iter()
            .filter(|r| r.pool.is_some() && (r.heap.is_some() || r.arena.is_some()))
            .count();
        if with_pool >= 2 {
            out.push((pair, rows));
        }
    }
    out
}

/// Pool against another scratch mode at one levels value, on the engine stage's
/// median p99.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoolVs {
    /// The levels value.
    pub levels: u32,
    /// How much lower pool's median p99 is, percent of the other's (negative: higher).
    pub lower_pct: f64,
    /// Whether pool is better or worse with a stable verdict.
    pub significant: bool,
}

impl BreakEvenRow {
    /// The engine-stage statistics of this levels value's `scratch` variant.
    pub fn engine(&self, stats: &[VariantStats], scratch: ScratchMode) -> Option<StageStats> {
        self.index(scratch)
            .and_then(|i| stats[i].stages.get("engine").copied())
    }

    /// The variant of this levels value's `scratch` mode.
    fn index(&self, scratch: ScratchMode) -> Option<usize> {
        match scratch {
            ScratchMode::Heap => self.heap,
            ScratchMode::Arena => self.arena,
            ScratchMode::Pool => self.pool,
        }
    }

    /// Pool against `other`, if both reported the engine stage.
    pub fn pool_vs(&self, stats: &[VariantStats], other: ScratchMode) -> Option<PoolVs> {
        let p = self.engine(stats, ScratchMode::Pool)?;
        let o = self.engine(stats, other)?;
        let c = compare(
            stats,
            self.index(other)?,
            self.index(ScratchMode::Pool)?,
            "engine p99",
        );
        Some(PoolVs {
            levels: self.levels,
            lower_pct: lower_pct(p.p99.median, o.p99.median),
            significant: c.verdict.is_result(),
        })
    }

    /// The scratch mode with the lowest median engine p99 (heap first on a tie, then
    /// arena).
    pub fn fastest(&self, stats: &[VariantStats]) -> Option<ScratchMode> {
        [ScratchMode::Heap, ScratchMode::Arena, ScratchMode::Pool]
            .into_iter()
            .filter_map(|m| self.engine(stats, m).map(|s| (m, s.p99.median)))
            .min_by(|x, y| x.1.total_cmp(&y.1))
            .map(|x| x.0)
    }
}

/// Where pool's median engine p99 stays below another scratch mode's over a levels
/// sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolWins {
    /// The levels values at which pool is lower, in sweep order.
    pub wins: Vec<PoolVs>,
    /// The break-even.
    pub ahead: Ahead,
}

/// From which levels value pool stays ahead to the end of the sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ahead {
    /// At every levels value.
    WholeSweep,
    /// From this levels value (not the first) on.
    From(u32),
    /// Not at the largest levels value.
    Not,
}

/// Pool against `other` over the sweep of `rows`.
pub fn pool_wins(stats: &[VariantStats], rows: &[BreakEvenRow], other: ScratchMode) -> PoolWins {
    let wins: Vec<PoolVs> = rows
        .iter()
        .filter_map(|r| r.pool_vs(stats, other))
        .filter(|v| v.lower_pct > 0.0)
        .collect();
    let sweep: Vec<u32> = rows.iter().map(|r| r.levels).collect();
    let won: BTreeSet<u32> = wins.iter().map(|w| w.levels).collect();
    PoolWins {
        ahead: ahead(&sweep, &won),
        wins,
    }
}

/// The smallest levels value of `sweep` from which every value is in `won`.
fn ahead(sweep: &[u32], won: &BTreeSet<u32>) -> Ahead {
    match sweep.iter().rposition(|l| !won.contains(l)) {
        None => Ahead::WholeSweep,
        Some(i) => sweep.get(i + 1).map_or(Ahead::Not, |&l| Ahead::From(l)),
    }
}

/// `(1 - a/b) × 100`: how much lower `a` is than `b`, percent (negative: higher).
pub fn lower_pct(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        (1.0 - a / b) * 100.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use Alloc::*;
    use ScratchMode::*;

    #[test]
    fn medians_spreads_and_worst_of() {
        let s = Spread::of(&[300, 100, 200]);
        assert_eq!((s.median, s.min, s.max), (200.0, 100, 300));
        assert_eq!(Spread::of(&[100, 400]).median, 250.0);

        let mut runs: Vec<Summary> = [1000, 3000, 2000]
            .iter()
            .map(|p| summary(*p, 100, 1 << 20, Some(0.1)))
            .collect();
        runs[1].engine.global_allocs_per_tick = 2.5;
        runs[2].engine.detail.memory.peak_rss_bytes = 5 << 20;
        runs[2].feed.detail.memory.peak_fragmentation = Some(0.3);
        runs[0].latency_ns.get_mut("e2e").unwrap().max = 1_000_000;
        let st = VariantStats::of(
            variant(Mimalloc, Arena, Jemalloc, 3),
            &runs.iter().collect::<Vec<_>>(),
            1,
        );
        let e2e = st.stages["e2e"];
        assert_eq!(e2e.p99.median, 2000.0, "median of p99");
        assert_eq!(e2e.p50.median, 500.0, "median of p50");
        assert_eq!(e2e.p99_9.median, 4000.0);
        assert_eq!(e2e.p99_99, 9000, "worst p99.99");
        assert_eq!(e2e.max, 1_000_000, "worst max");
        assert_eq!((e2e.p99.min, e2e.p99.max), (1000, 3000));
        assert_eq!(st.allocs_per_tick, Some(2.5), "worst allocs/tick");
        assert_eq!(st.engine_rss, Some(5 << 20));
        assert_eq!(st.feed_rss, Some(1 << 20));
        assert_eq!(st.feed_frag, Some(0.3));
        assert_eq!(st.engine_frag, None, "not reported: n/a");
        assert_eq!((st.ok, st.failed), (3, 1));
    }

    #[test]
    fn pool_breakeven_rows() {
        let mut b = Vec::new();
        // Six rounds each, a few ns around each median.
        let around = |c: u64| [c - 4, c + 2, c, c + 4, c - 2, c];
        for (l, heap, arena, pool) in [(1, 400, 300, 350), (2, 500, 400, 380), (4, 800, 600, 500)] {
            b.push(stats_of(
                variant(Mimalloc, Heap, Jemalloc, l),
                &around(heap * 2),
            ));
            b.push(stats_of(
                variant(Mimalloc, Arena, Jemalloc, l),
                &around(arena * 2),
            ));
            b.push(stats_of(
                variant(Mimalloc, Pool, Jemalloc, l),
                &around(pool * 2),
            ));
        }
        let be = pool_breakeven(&b);
        assert_eq!(be.len(), 1);
        let rows = &be[0].1;
        assert_eq!(rows.len(), 3);
        assert_eq!(
            (rows[1].levels, rows[1].heap, rows[1].arena, rows[1].pool),
            (2, Some(3), Some(4), Some(5))
        );
        let heap = pool_wins(&b, rows, Heap);
        // Pool (350, 380, 500) against heap (400, 500, 800): lower everywhere, apart in
        // every round: a stable verdict.
        assert_eq!(heap.ahead, Ahead::WholeSweep);
        assert_eq!(heap.wins.len(), 3);
        assert!((heap.wins[0].lower_pct - 12.5).abs() < 1e-9 && heap.wins[0].significant);
        // Against arena (300, 400, 600): higher at 1 level, lower from 2 on.
        let arena = pool_wins(&b, rows, Arena);
        assert_eq!(arena.ahead, Ahead::From(2));
        assert_eq!(rows[0].fastest(&b), Some(Arena));
        assert_eq!(rows[2].fastest(&b), Some(Pool));
        let won = |l: &[u32]| l.iter().copied().collect::<BTreeSet<u32>>();
        assert_eq!(ahead(&[1, 2, 4], &won(&[1, 4])), Ahead::From(4));
        assert_eq!(ahead(&[1, 2, 4], &won(&[2])), Ahead::Not);
        assert_eq!(ahead(&[1, 2, 4], &won(&[])), Ahead::Not);
        // A single levels value is no sweep.
        assert!(pool_breakeven(&b[..3]).is_empty());
    }
}
