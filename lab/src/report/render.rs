//! The Markdown of `lab compare`'s report (`report.md`): the figures of [`super::stats`]
//! as tables, recommendations and verdict sentences. Every figure shown comes from
//! there; this module only formats and arranges them.
//!
//! One-process variants: the key numbers and the appendix show their RSS once, as `RSS
//! total`, and mark the per-process RSS cells `in total` (both sides are the one
//! process); their fragmentation, the one allocator's, reads `(1 proc.)`. Their
//! allocator is in the engine column, the feed column reads `same process`.

use super::stats::*;
use super::verdict::{Comparison, Verdict};
use super::{BlockInfo, Meta, RunRecord};
use crate::host::Host;
use crate::table::{
    group, percentile_cells, percentile_cells_missing, Table, P9999_MIN_SAMPLES, PERCENTILE_COLUMNS,
};
use crate::variant::{Alloc, Process, Variant};
use common::latency::{Percentiles, Stage, STAGES};
use common::summary::Summary;
use common::units::fmt_bytes;
use common::units::fmt_ns;
use std::fmt::Write as _;
use std::time::Duration;

fn ns(x: f64) -> String {
    fmt_ns(x.round() as u64)
}

fn spread_text(s: &Spread) -> String {
    format!("{}–{}", fmt_ns(s.min), fmt_ns(s.max))
}

fn opt_bytes(b: Option<u64>) -> String {
    b.map_or_else(|| "n/a".into(), fmt_bytes)
}

fn opt_pct(f: Option<f64>) -> String {
    f.map_or_else(|| "n/a".into(), |f| format!("{:.1}%", f * 100.0))
}

fn per_tick(x: Option<f64>) -> String {
    match x {
        None => "n/a".into(),
        Some(0.0) => "0".into(),
        Some(x) => format!("{x:.3}"),
    }
}

/// A "×base" cell: [`median_ratio`] of `a` to `b`.
fn ratio(a: Option<Spread>, b: Option<Spread>) -> String {
    match median_ratio(a, b) {
        Some(r) if r >= 0.1 => format!("{r:.2}×"),
        Some(0.0) => "0×".into(),
        Some(r) => format!("{r:.1e}×"),
        None => "n/a".into(),
    }
}

/// `1 level`, `3 levels`.
fn levels_text(n: u32) -> String {
    format!("{n} level{}", if n == 1 { "" } else { "s" })
}

/// `V3`: a variant's number in its block's tables.
fn vid(i: usize) -> String {
    format!("V{}", i + 1)
}

/// A variant's name with its role in the block: `engine … (baseline)`.
fn vname(stats: &[VariantStats], i: usize) -> String {
    let v = &stats[i].variant;
    let role = if v.is_baseline() {
        " (baseline)"
    } else if v.is_hybrid() {
        " (hybrid)"
    } else {
        ""
    };
    format!("{}{role}", v.label())
}

/// What the rule says of variant `b` against variant `a` on `metric`, in words:
/// `ratio 0.87×, 95% interval 0.80–0.93: lower, in both halves` and the like.
fn judged(stats: &[VariantStats], a: usize, b: usize, metric: &str) -> String {
    comparison_text(&compare(stats, a, b, metric))
}

/// [`judged`] of a comparison already made.
fn comparison_text(c: &Comparison) -> String {
    let interval = if c.lo.is_nan() {
        String::new()
    } else {
        format!(", 95% interval {}–{}", times(c.lo), times(c.hi))
    };
    let what = match c.verdict {
        Verdict::Better => "detectably lower, in both halves of the rounds".to_string(),
        Verdict::Worse => "detectably higher, in both halves of the rounds".to_string(),
        Verdict::Unstable => format!(
            "{} over all rounds but not in both halves ({} and {}), so unstable: no conclusion",
            if c.full == Verdict::Better {
                "lower"
            } else {
                "higher"
            },
            times(c.halves.0),
            times(c.halves.1)
        ),
        Verdict::NoDifference => "no detectable difference".to_string(),
        Verdict::TooFew => "too few runs to tell".to_string(),
    };
    format!("ratio {}{interval}: {what}", times(c.ratio))
}

/// `0.87×`.
fn times(r: f64) -> String {
    if r == 0.0 {
        "0×".into()
    } else if r.is_finite() && r >= 0.1 {
        format!("{r:.2}×")
    } else if r.is_finite() && r >= 0.001 {
        format!("{r:.3}×")
    } else if r.is_finite() {
        format!("{r:.1e}×")
    } else {
        "n/a".into()
    }
}

fn dur(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// `12.5% below` or `3.0% above`: `a` against `b`.
fn below_above(a: f64, b: f64) -> String {
    let pct = lower_pct(a, b);
    if pct >= 0.0 {
        format!("{pct:.1}% below")
    } else {
        format!("{:.1}% above", -pct)
    }
}

/// "**side** (V3): 1.2µs (runs …); x% below the next best …; y% below the baseline …"
/// for the stage `stage` of a ranking, each variant called by `name`.
fn ranked_text(
    stats: &[VariantStats],
    ranking: &Ranking,
    baseline: Option<usize>,
    stage: &str,
    name: fn(&Variant) -> String,
) -> String {
    let mut t = String::new();
    let (best, b) = ranking[0];
    let _ = write!(
        t,
        "**{}** ({}): {} (runs {})",
        name(&stats[best].variant),
        vid(best),
        ns(b.median),
        spread_text(&b)
    );
    if let Some(&(next, n)) = ranking.get(1) {
        let _ = write!(
            t,
            "; {} the next best, {} ({}): {} (runs {}), {}",
            below_above(b.median, n.median),
            name(&stats[next].variant),
            vid(next),
            ns(n.median),
            spread_text(&n),
            judged(stats, next, best, &format!("{stage} p99"))
        );
    }
    match baseline {
        Some(base) if base != best => {
            if let Some(bs) = stats[base].p99(stage) {
                let _ = write!(
                    t,
                    "; {} the baseline ({}): {} (runs {}), {}",
                    below_above(b.median, bs.median),
                    vid(base),
                    ns(bs.median),
                    spread_text(&bs),
                    judged(stats, base, best, &format!("{stage} p99"))
                );
            }
        }
        Some(_) => {
            let _ = write!(t, "; that is the baseline itself");
        }
        None => {
            let _ = write!(t, "; this block has no baseline at these levels");
        }
    }
    t
}

/// The engine recommendation as one markdown list item: by e2e p99 (what the brief
/// asks), then by the engine stage alone (received → decision: what the engine's
/// allocator and scratch strategy touch, free of the feed's and the ring's stalls).
pub fn engine_text(stats: &[VariantStats], rec: &EngineRec) -> String {
    let mut t = String::new();
    let _ = write!(
        t,
        "- **Engine** (feed {}, {}): the lowest median e2e p99 is {}.",
        rec.feed_alloc,
        levels_text(rec.levels),
        ranked_text(
            stats,
            &rec.by_e2e_p99,
            rec.baseline,
            "e2e",
            Variant::engine_side
        )
    );
    if rec.by_engine_p99.len() >= 2 {
        let _ = write!(
            t,
            " By the engine stage alone (received → decision), the lowest median p99 is {}.",
            ranked_text(
                stats,
                &rec.by_engine_p99,
                rec.baseline,
                "engine",
                Variant::engine_side
            )
        );
    }
    let (best, _) = rec.by_e2e_p99[0];
    let s = &stats[best];
    let _ = write!(
        t,
        " The lowest median's hot thread makes {} global allocations per tick; engine RSS {}.",
        per_tick(s.allocs_per_tick),
        opt_bytes(s.engine_rss)
    );
    match rec.pick(stats, "e2e") {
        Some(w) => {
            let _ = write!(
                t,
                " Recommendation: **{}**, detectably lower e2e p99 than the next best (a stable verdict).",
                stats[w].variant.engine_side()
            );
        }
        None => {
            let _ = write!(
                t,
                " No recommendation on e2e p99: the lowest median is not detectably lower than the next best with a stable verdict."
            );
        }
    }
    t
}

/// The process-shape recommendation as one markdown list item: by e2e p99, then by the
/// hop alone (published → received: the ring between the md and the hot thread, which
/// one process maps once instead of twice), then the lowest median's memory.
pub fn shape_text(stats: &[VariantStats], rec: &ShapeRec) -> String {
    let mut t = String::new();
    let _ = write!(
        t,
        "- **One process or two** ({}): the lowest median e2e p99 is {}.",
        levels_text(rec.levels),
        ranked_text(stats, &rec.by_e2e_p99, rec.baseline, "e2e", Variant::label)
    );
    if rec.by_hop_p99.len() >= 2 {
        let _ = write!(
            t,
            " By the hop alone (published → received), the lowest median p99 is {}.",
            ranked_text(stats, &rec.by_hop_p99, rec.baseline, "hop", Variant::label)
        );
    }
    let (best, _) = rec.by_e2e_p99[0];
    let s = &stats[best];
    let _ = write!(
        t,
        " The lowest median's hot thread makes {} global allocations per tick; RSS total {}.",
        per_tick(s.allocs_per_tick),
        opt_bytes(s.rss_total)
    );
    match rec.pick(stats) {
        Some(w) => {
            let _ = write!(
                t,
                " Recommendation: **{}**, detectably lower e2e p99 than the next best (a stable verdict).",
                stats[w].variant.label()
            );
        }
        None => {
            let _ = write!(
                t,
                " No recommendation on e2e p99: the lowest median is not detectably lower than the next best with a stable verdict."
            );
        }
    }
    t
}

/// The feed recommendation as one markdown list item.
pub fn feed_text(stats: &[VariantStats], rec: &FeedRec) -> String {
    let mut t = String::new();
    let (ea, sc, lv) = rec.engine;
    let _ = write!(t, "- **Feed** (engine {ea} + {sc}, {}): ", levels_text(lv));
    let name = |i: usize| format!("{} ({})", stats[i].variant.feed_alloc, vid(i));
    match (rec.by_lag_p99.first(), rec.by_lag_p99.get(1)) {
        (Some(&(best, b)), Some(&(next, n))) => {
            let _ = write!(
                t,
                "lowest median feed_lag p99: **{}** {} (runs {}), {:.1}% below {} {} (runs {}), {}. ",
                name(best),
                ns(b.median),
                spread_text(&b),
                lower_pct(b.median, n.median),
                name(next),
                ns(n.median),
                spread_text(&n),
                judged(stats, next, best, "feed_lag p99")
            );
        }
        (Some(&(best, b)), None) => {
            let _ = write!(
                t,
                "feed_lag p99: only {} reported it ({}). ",
                name(best),
                ns(b.median)
            );
        }
        _ => {
            let _ = write!(t, "feed_lag p99: n/a. ");
        }
    }
    match rec.by_rss.as_slice() {
        [(best, r), (next, n), ..] => {
            let _ = write!(
                t,
                "Lowest peak feed RSS: **{}** {} against {} for {}. ",
                name(*best),
                fmt_bytes(*r),
                fmt_bytes(*n),
                name(*next)
            );
        }
        _ => {
            let _ = write!(t, "Peak feed RSS: n/a for at least one of them. ");
        }
    }
    match rec.by_frag.as_slice() {
        [(best, f), rest @ ..] if !rest.is_empty() => {
            let others: Vec<String> = rest
                .iter()
                .map(|(i, f)| format!("{} {:.1}%", name(*i), f * 100.0))
                .collect();
            let _ = write!(
                t,
                "Lowest peak fragmentation: **{}** {:.1}% (then {}). ",
                name(*best),
                f * 100.0,
                others.join(", ")
            );
        }
        _ => {
            let _ = write!(
                t,
                "Fragmentation: reported by fewer than two of them (n/a where the allocator does not say how much is allocated). "
            );
        }
    }
    let winners = rec.winners();
    if winners.is_empty() {
        let _ = write!(t, "No recommendation: nothing measured.");
    } else if let Some(w) = rec.pick(stats) {
        let _ = write!(
            t,
            "Recommendation: **{}**, best on every measured count, its feed_lag p99 detectably lower than the next best's (a stable verdict).",
            stats[w].variant.feed_alloc
        );
    } else if winners.iter().all(|x| x.1 == winners[0].1) {
        let _ = write!(
            t,
            "No recommendation: {} has the lowest figures, but its feed_lag p99 is not detectably lower than the next best's with a stable verdict.",
            stats[winners[0].1].variant.feed_alloc
        );
    } else {
        let parts: Vec<String> = winners
            .iter()
            .map(|&(figure, i)| {
                let what = match figure {
                    FeedFigure::LagP99 => "the lowest feed_lag p99",
                    FeedFigure::PeakRss => "the lowest peak RSS",
                    FeedFigure::Fragmentation => "the lowest fragmentation",
                };
                format!("{} has {what}", stats[i].variant.feed_alloc)
            })
            .collect();
        let _ = write!(
            t,
            "Trade-off: {}; choose by what the feed must protect, publishing jitter or memory.",
            parts.join(", ")
        );
    }
    t
}

/// The verdict as one markdown list item.
pub fn verdict_text(block: &str, stats: &[VariantStats], v: &HybridVerdict) -> String {
    let h = stats[v.hybrid].p99("e2e").expect("verdicts have e2e p99");
    let b = stats[v.baseline].p99("e2e").expect("verdicts have e2e p99");
    let change = if v.improvement_pct >= 0.0 {
        format!("{:.1}% lower", v.improvement_pct)
    } else {
        format!("{:.1}% higher", -v.improvement_pct)
    };
    let engine = match (stats[v.hybrid].p99("engine"), stats[v.baseline].p99("engine")) {
        (Some(h), Some(b)) => format!(
            " On the engine stage alone (received → decision) the hybrid's median p99 is {} against {}: {}, {}.",
            ns(h.median),
            ns(b.median),
            below_above(h.median, b.median),
            judged(stats, v.baseline, v.hybrid, "engine p99")
        ),
        _ => String::new(),
    };
    format!(
        "- {block}, {}: the hybrid ({}) has a median e2e p99 of {} (runs {}) against the baseline's ({}) {} (runs {}): **{change}**, {}. The brief's target of {TARGET_PCT:.0}% lower is **{}**.{engine}",
        levels_text(stats[v.hybrid].variant.levels),
        vid(v.hybrid),
        ns(h.median),
        spread_text(&h),
        vid(v.baseline),
        ns(b.median),
        spread_text(&b),
        comparison_text(&v.comparison),
        if v.reached {
            "reached (a stable verdict)".to_string()
        } else if v.improvement_pct >= TARGET_PCT {
            format!(
                "not established: the medians are at least {TARGET_PCT:.0}% apart, but the verdict is {}",
                v.comparison.verdict.word()
            )
        } else {
            "not reached".to_string()
        }
    )
}

/// The whole `report.md`.
pub fn render(meta: &Meta, blocks: &[BlockInfo], runs: &[RunRecord]) -> String {
    let mut t = String::new();
    let w = &mut t;
    let failed = runs.iter().filter(|r| r.result.is_err()).count();
    // The machine line's commit is the current build's where a run of it finished
    // (variants with binaries of their own come from other commits, named below).
    let first = runs
        .iter()
        .filter(|r| {
            blocks
                .get(r.block)
                .and_then(|b| b.variants.get(r.variant))
                .is_none_or(|v| v.bin_dir.is_none())
        })
        .chain(runs)
        .find_map(|r| r.result.as_ref().ok());
    let _ = writeln!(w, "# Allocation trade-offs: `lab compare` report\n");
    let _ = writeln!(
        w,
        "- Matrix: `{}` (a copy is in `matrix.toml`).",
        meta.matrix
    );
    let _ = writeln!(
        w,
        "- Started {} UTC; wall time {}; {} runs, {} failed; {} repetition{} of every variant, interleaved (each round runs every variant of every block once, in order).",
        meta.started_utc,
        dur(meta.wall),
        runs.len(),
        failed,
        meta.repetitions,
        if meta.repetitions == 1 { "" } else { "s" }
    );
    if let Some(why) = &meta.interrupted {
        let _ = writeln!(w, "- **Incomplete**: {why}.");
    }
    // Variants the matrix gives binaries of their own (`bin_dir`) are builds of other
    // code on purpose: each is named with its commit, and only the others are held to
    // lab's.
    let own_build = |r: &RunRecord| {
        blocks
            .get(r.block)
            .and_then(|b| b.variants.get(r.variant))
            .and_then(|v| v.bin_dir.as_ref())
    };
    for (bi, b) in blocks.iter().enumerate() {
        for (vi, v) in b.variants.iter().enumerate() {
            let Some(dir) = &v.bin_dir else { continue };
            let built = revs_of(runs.iter().filter(|r| r.block == bi && r.variant == vi));
            let _ = writeln!(
                w,
                "- Block {}, V{}: binaries from `{}`, built from {}.",
                bi + 1,
                vi + 1,
                dir.display(),
                if built.is_empty() {
                    "a commit no run reported".to_string()
                } else {
                    built
                        .iter()
                        .map(|r| format!("`{r}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
        }
    }
    let revs = revs_of(runs.iter().filter(|r| own_build(r).is_none()));
    if revs.len() > 1
        || revs
            .first()
            .is_some_and(|r| *r != common::manifest::GIT_REV)
    {
        let _ = writeln!(
            w,
            "- **Warning**: the runs' binaries come from {} (`lab` from `{}`): build every `feed*`, `engine*` and `pipeline*` binary from the current code (`cargo build --release -p feed -p engine -p pipeline --bins`) before comparing.",
            revs.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", "),
            common::manifest::GIT_REV
        );
    }
    if let Some(s) = first {
        let m = &s.manifest;
        let _ = writeln!(
            w,
            "- Machine: {}; cores allowed {:?}.",
            Host::of(m),
            m.cores_allowed
        );
        let env: Vec<String> = m
            .allocator_env
            .iter()
            .map(|(k, v)| format!("`{k}={v}`"))
            .collect();
        let _ = writeln!(
            w,
            "- Allocator environment: {}.",
            if env.is_empty() {
                "none set".to_string()
            } else {
                env.join(", ")
            }
        );
        let tcmalloc = blocks
            .iter()
            .flat_map(|b| &b.variants)
            .filter(|v| !v.is_single())
            .any(|v| v.engine_alloc == Alloc::Tcmalloc || v.feed_alloc == Alloc::Tcmalloc);
        let rseq_off = m
            .allocator_env
            .get("GLIBC_TUNABLES")
            .is_some_and(|v| v.contains("glibc.pthread.rseq=0"));
        if tcmalloc {
            let _ = writeln!(
                w,
                "- tcmalloc ran {}.",
                if rseq_off {
                    "with its per-CPU caches (`GLIBC_TUNABLES=glibc.pthread.rseq=0` was set)"
                } else {
                    "without `GLIBC_TUNABLES=glibc.pthread.rseq=0`: with glibc ≥ 2.35 the C library takes rseq first and tcmalloc falls back from its per-CPU caches (see the README, allocator microbenchmarks)"
                }
            );
        }
    }
    let _ = writeln!(w, "\n## How to read this\n");
    let _ = writeln!(
        w,
        "- Stages: `feed_lag` scheduled → published, `hop` published → received, `engine` received → decision, `e2e` scheduled → decision; each run's latencies after its warm-up."
    );
    let _ = writeln!(
        w,
        "- p50, p90, p99, p99.9: the **median over the repetitions**; p99.99 and max: the **worst repetition**. \"runs a–b\" is the min–max over the repetitions. In the per-stage tables, `count` is the fewest samples of one repetition."
    );
    let rule = rule();
    let n = meta.repetitions as usize;
    let _ = writeln!(
        w,
        "- **When a difference is a result.** Each repetition gives one value per metric, and a variant is compared with its block's baseline by those values over the interleaved rounds (never by pooling samples across runs). The effect is the ratio of medians; its 95% interval comes from a seeded bootstrap over repetitions ({} resamples; the same raw files give the same interval). A difference is **better** or **worse** only when the interval excludes 1, a two-sided rank test (Mann–Whitney U, exact) gives p < {:.2}, **and** the medians differ by at least {:.0}%; anything else is *no detectable difference*. Split halves: the verdict must also hold on the odd and on the even rounds alone (each half's median ratio at least {:.0}% on the same side), else it is *unstable*. Recommendations and the target verdict use stable verdicts only.",
        rule.resamples,
        1.0 - rule.confidence,
        rule.min_effect * 100.0,
        rule.min_effect * 100.0,
    );
    let false_rate = super::verdict::false_verdict_rate(n.max(2), 0.3, &rule, 400, 11);
    let cvs: Vec<f64> = blocks
        .iter()
        .enumerate()
        .flat_map(|(i, b)| {
            block_stats(i, b, runs)
                .into_iter()
                .map(|s| super::verdict::cv(s.values("e2e p99")))
                .filter(|c| *c > 0.0)
                .collect::<Vec<_>>()
        })
        .collect();
    let typical_cv = super::verdict::median(&cvs);
    let detectable = |cv: f64| match super::verdict::detectable_effect(n.max(2), cv, &rule, 200, 5)
    {
        Some(e) => format!("a shift of {:.0}% or more", e * 100.0),
        None => "no shift of 50% or less".to_string(),
    };
    let _ = writeln!(
        w,
        "- **What this matrix can tell.** With {n} repetitions, the rule called a difference between two identically distributed variants in {:.1}% of 400 simulated trials (log-normal, 30% run-to-run variation). {}",
        false_rate * 100.0,
        if typical_cv.is_nan() {
            "No e2e p99 spread was measured.".to_string()
        } else {
            format!(
                "The e2e p99 of a variant varied by {:.0}% from run to run here (median coefficient of variation): at that spread it detects, four times in five, {}; at 10% variation (the engine stage's medians, typically), {}.",
                typical_cv * 100.0,
                detectable(typical_cv),
                detectable(0.1)
            )
        }
    );
    let judged_list: Vec<String> = meta
        .metrics
        .iter()
        .map(|m| match super::metrics::metric(m) {
            Some(x) => format!("`{}` ({})", x.name, x.what),
            None => format!("`{m}`"),
        })
        .collect();
    let _ = writeln!(
        w,
        "- Metrics judged (lower is better for each): {}.",
        judged_list.join("; ")
    );
    let _ = writeln!(
        w,
        "- \"×base\": the variant's median ÷ the median of the block's baseline (the variant the matrix names with `baseline`, else the all-system heap variant, engine system + heap and feed system, at the same levels); below 1.00× is faster."
    );
    let _ = writeln!(
        w,
        "- allocs/tick: global allocations per tick on the engine's hot thread after warm-up. RSS: peak resident set of each process; RSS total: both processes' peaks added up, or the one process's peak for a one-process variant (`p-…`), whose engine and feed RSS cells read *in total* (both sides are that process) and whose per-process metrics (engine/feed RSS, engine/feed returned) are n/a. Fragmentation: peak `1 − allocated/resident` from the allocator's own statistics (n/a where the allocator does not report both; for one process, the one allocator's, marked `(1 proc.)`). These are the worst repetition."
    );
    let _ = writeln!(
        w,
        "- Every number comes from the `summary.json` of the runs listed per block (\"Runs\") and in the appendix; `V1`, `V2`, … number the variants within a block."
    );

    if !meta.noise.is_empty() {
        let _ = writeln!(
            w,
            "\n## The machine's noise, per round\n\nAt the start of every round a busy loop reads the clock on both hot cores at once for the time shown. \"lost\" is the share of that time in gaps over 1 µs; the stream floor is the best p99 / p99.9 a steady stream through those cores could have from the gaps alone. A round is flagged **noisy** when a core lost more than twice the median round's share; its runs stay in the report.\n"
        );
        w.push_str(&noise_table(&meta.noise).markdown());
    }

    let all_stats: Vec<Vec<VariantStats>> = blocks
        .iter()
        .enumerate()
        .map(|(i, b)| block_stats(i, b, runs))
        .collect();

    let _ = writeln!(
        w,
        "\n## Verdict: the hybrid against the {TARGET_PCT:.0}% target\n"
    );
    let mut any = false;
    for (bi, b) in blocks.iter().enumerate() {
        for v in hybrid_verdicts(&all_stats[bi], b.baseline) {
            any = true;
            let _ = writeln!(
                w,
                "{}",
                verdict_text(
                    &format!("Block {} ({})", bi + 1, b.name),
                    &all_stats[bi],
                    &v
                )
            );
        }
    }
    if !any {
        let _ = writeln!(
            w,
            "- n/a: no block has both the hybrid (feed jemalloc, engine mimalloc + arena) and the all-system heap baseline at the same levels with finished runs."
        );
    }

    for (bi, b) in blocks.iter().enumerate() {
        let stats = &all_stats[bi];
        let _ = writeln!(w, "\n## Block {}: {}\n", bi + 1, b.name);
        let _ = writeln!(
            w,
            "Config `{}`, {} s per run (the first {} s are warm-up), seed {}, {} variants.\n",
            b.config,
            b.duration_s,
            b.warmup_s,
            b.seed,
            b.variants.len()
        );
        let _ = writeln!(w, "### Key numbers\n");
        w.push_str(&key_numbers(stats, b.baseline).markdown());
        let base = baseline_for(stats, b.baseline, &b.variants[0]);
        if base.is_none() {
            let _ = writeln!(
                w,
                "\n×base: n/a, this block has no baseline with finished runs."
            );
        }
        if let Some(base) = base {
            let _ = writeln!(
                w,
                "\n### Verdicts against {} ({})\n\nEach cell: the variant's median ÷ the baseline's, then **better** / **worse** (a stable verdict), *unstable* (better or worse over all rounds, not in both halves), or nothing (no detectable difference). Intervals and halves for every comparison: \"Comparisons\" below.\n",
                vid(base),
                stats[base].variant.label()
            );
            w.push_str(&verdict_table(stats, base, &meta.metrics).markdown());
        }
        let slow: Vec<String> = stats
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.min_rate_pct
                    .filter(|p| *p < RATE_KEPT_PCT)
                    .map(|p| format!("{} ({p:.1}%)", vid(i)))
            })
            .collect();
        if !slow.is_empty() {
            let _ = writeln!(
                w,
                "\n**Warning**: the feed did not keep the offered rate in a run of {}.",
                slow.join(", ")
            );
        }

        let _ = writeln!(w, "\n### Recommendations\n");
        let engine = engine_recs(stats, b.baseline);
        let feed = feed_recs(stats);
        let shape = shape_recs(stats, b.baseline);
        for r in &engine {
            let _ = writeln!(w, "{}", engine_text(stats, r));
        }
        for r in &feed {
            let _ = writeln!(w, "{}", feed_text(stats, r));
        }
        for r in &shape {
            let _ = writeln!(w, "{}", shape_text(stats, r));
        }
        for v in hybrid_verdicts(stats, b.baseline) {
            let _ = writeln!(w, "{}", verdict_text("Hybrid", stats, &v));
        }
        if engine.is_empty() && feed.is_empty() && shape.is_empty() {
            let _ = writeln!(
                w,
                "- n/a: no two variants of this block differ in one role only, or in the process shape, with finished runs."
            );
        }

        let breakeven = pool_breakeven(stats);
        for ((ea, fa), rows) in &breakeven {
            let _ = writeln!(
                w,
                "\n### Pool break-even (engine {ea}, feed {fa})\n\nEngine-stage latency (received → decision) per orders per side; \"pool vs\" is how much lower pool's median p99 is (negative: higher), marked * with a stable verdict (see \"When a difference is a result\"); pool fallbacks are the requests the pool passed to the global allocator (worst run).\n"
            );
            w.push_str(&breakeven_table(stats, rows).markdown());
            for other in [
                crate::variant::ScratchMode::Heap,
                crate::variant::ScratchMode::Arena,
            ] {
                let wins = pool_wins(stats, rows, other);
                let _ = writeln!(w, "\n{}", breakeven_text(other.name(), &wins));
            }
        }

        let _ = writeln!(w, "\n### Latency per stage\n");
        for stage in STAGES.map(Stage::name) {
            let _ = writeln!(w, "#### {stage}\n");
            w.push_str(&stage_table(stats, stage).markdown());
            let few = stats
                .iter()
                .filter_map(|s| s.stages.get(stage))
                .any(|x| x.min_count < P9999_MIN_SAMPLES);
            if few {
                let _ = writeln!(
                    w,
                    "\nSome runs have fewer than {P9999_MIN_SAMPLES} samples of `{stage}`: their p99.99 is indicative only."
                );
            }
            for p in meta
                .plots
                .iter()
                .filter(|p| p.block == bi && p.stage == stage)
            {
                let _ = writeln!(
                    w,
                    "\n![{stage}: latency by percentile, block {}]({})",
                    bi + 1,
                    p.file
                );
            }
            let _ = writeln!(w);
        }

        if let Some(table) = mechanisms_table(stats) {
            let _ = writeln!(
                w,
                "### Mechanisms\n\nWhat the kernel and the allocators did in each run's measured window (medians over the repetitions): involuntary context switches of the hot threads, minor page faults of the cold threads, TLB shootdowns and function-call IPIs on the hot cores (`/proc/interrupts`), bytes each allocator gave back to the kernel by its own counters, and, in the timed-allocator mode, the history thread's allocator call times. Per-thread figures: every run's `summary.json`, `mechanisms`.\n"
            );
            w.push_str(&table.markdown());
            let _ = writeln!(w);
        }
        if let Some(table) = call_times_table(stats, bi, runs) {
            let _ = writeln!(
                w,
                "### Allocator call times (timed-allocator mode)\n\nEvery allocator call of the cold threads, timed with the time stamp counter around the call (the timer's own cost, some tens of nanoseconds, included; percentiles within 6.25%); medians over the repetitions of each run's figures. Hot threads are never timed.\n"
            );
            w.push_str(&table.markdown());
            let _ = writeln!(w);
        }
        if let Some(base) = base {
            let _ = writeln!(
                w,
                "### Comparisons with {}\n\nEvery variant against the baseline on every judged metric: the ratio of medians, its 95% bootstrap interval, the verdict over all rounds, and the ratios of the odd and the even rounds (a better or worse verdict must hold in both).\n",
                vid(base)
            );
            w.push_str(&comparisons_table(stats, base, &meta.metrics).markdown());
            let _ = writeln!(w);
        }
        let _ = writeln!(w, "### Runs\n");
        w.push_str(&runs_table(stats, bi, runs).markdown());
    }

    if !meta.plot_notes.is_empty() {
        let _ = writeln!(w, "\n## Plots\n");
        for n in &meta.plot_notes {
            let _ = writeln!(w, "- {n}");
        }
    }

    let _ = writeln!(w, "\n## Appendix: every run\n");
    w.push_str(&appendix(blocks, runs).markdown());
    t
}

/// The noise floor of every round, noisy rounds flagged.
fn noise_table(noise: &[(u32, common::summary::NoiseFloor)]) -> Table {
    let lost: Vec<f64> = noise
        .iter()
        .flat_map(|(_, n)| n.cores.iter().map(|c| c.lost_fraction))
        .collect();
    let typical = super::verdict::median(&lost);
    let cores: Vec<usize> = noise
        .first()
        .map(|(_, n)| n.cores.iter().map(|c| c.core).collect())
        .unwrap_or_default();
    let mut head = vec!["round".to_string(), "probed".to_string()];
    for c in &cores {
        head.push(format!("core {c} lost"));
        head.push(format!("core {c} gaps > 100 µs/s"));
        head.push(format!("core {c} longest gap"));
    }
    head.extend([
        "stream floor p99".into(),
        "stream floor p99.9".into(),
        "".into(),
    ]);
    let mut t = Table::new(head).right_from(1);
    for (round, n) in noise {
        let mut row = vec![round.to_string(), format!("{:.1} s", n.seconds)];
        let mut noisy = false;
        for c in &n.cores {
            noisy |= typical > 0.0 && c.lost_fraction > 2.0 * typical;
            row.push(format!("{:.2}%", c.lost_fraction * 100.0));
            row.push(format!("{:.1}", c.gaps_over_100us_per_s));
            row.push(fmt_ns(c.max_gap_ns));
        }
        row.push(fmt_ns(n.stream_p99_ns));
        row.push(fmt_ns(n.stream_p99_9_ns));
        row.push(if noisy {
            "**noisy**".into()
        } else {
            String::new()
        });
        t.row(row);
    }
    t
}

/// Rows: variants; columns: the judged metrics; cells: ratio to the baseline and the
/// verdict.
fn verdict_table(stats: &[VariantStats], base: usize, metrics: &[String]) -> Table {
    let mut table =
        Table::new(["#".to_string()].into_iter().chain(metrics.iter().cloned())).right_from(1);
    for (i, _) in stats.iter().enumerate() {
        let mut row = vec![vid(i)];
        for m in metrics {
            row.push(if i == base {
                "baseline".to_string()
            } else {
                let c = compare(stats, base, i, m);
                match c.verdict {
                    Verdict::Better => format!("{} **better**", times(c.ratio)),
                    Verdict::Worse => format!("{} **worse**", times(c.ratio)),
                    Verdict::Unstable => format!("{} *unstable*", times(c.ratio)),
                    // A metric the baseline's (or the variant's) allocator does not
                    // report, such as glibc's returned bytes.
                    Verdict::TooFew if !c.ratio.is_finite() => "n/a".to_string(),
                    Verdict::TooFew => "too few runs".to_string(),
                    Verdict::NoDifference => times(c.ratio),
                }
            });
        }
        table.row(row);
    }
    table
}

/// The median of `values` in `unit`, or `n/a`.
fn median_text(unit: Option<super::metrics::Unit>, values: &[f64]) -> String {
    use super::metrics::Unit;
    let med = super::verdict::median(values);
    if med.is_nan() {
        return "n/a".to_string();
    }
    match unit {
        Some(Unit::Ns) => ns(med),
        Some(Unit::Bytes) => fmt_bytes(med.round() as u64),
        Some(Unit::BytesPerS) => format!("{}/s", fmt_bytes(med.round() as u64)),
        Some(Unit::MsPerS) => format!("{med:.1} ms/s"),
        Some(Unit::Us) => format!("{med:.1} µs"),
        Some(Unit::PerS) => format!("{med:.1}/s"),
        _ => format!("{med:.3}"),
    }
}

/// The mechanism metrics of a block's variants (medians over the repetitions); `None`
/// when no run reported any.
fn mechanisms_table(stats: &[VariantStats]) -> Option<Table> {
    let metrics = super::metrics::mechanism_metrics();
    let shown: Vec<_> = metrics
        .iter()
        .filter(|m| stats.iter().any(|s| !s.values(m.name).is_empty()))
        .collect();
    if shown.is_empty() {
        return None;
    }
    let mut table = Table::new(
        ["#".to_string(), "variant".to_string()]
            .into_iter()
            .chain(shown.iter().map(|m| m.name.to_string())),
    )
    .right_from(2);
    for (i, s) in stats.iter().enumerate() {
        table.row(
            [vid(i), s.variant.label()].into_iter().chain(
                shown
                    .iter()
                    .map(|m| median_text(Some(m.unit), s.values(m.name))),
            ),
        );
    }
    Some(table)
}

/// Allocator call times per variant, cold thread role and operation (the medians over
/// the repetitions of each run's percentiles); `None` when no run was timed.
fn call_times_table(stats: &[VariantStats], block: usize, runs: &[RunRecord]) -> Option<Table> {
    let mut table = Table::new([
        "#",
        "variant",
        "role",
        "call",
        "calls/run",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
    ])
    .right_from(4);
    let mut any = false;
    for (i, s) in stats.iter().enumerate() {
        let summaries: Vec<&Summary> = runs
            .iter()
            .filter(|r| r.block == block && r.variant == i)
            .filter_map(|r| r.result.as_ref().ok())
            .collect();
        let mut keys: Vec<(String, String)> = summaries
            .iter()
            .flat_map(|x| {
                x.alloc_call_ns
                    .iter()
                    .flat_map(|(role, ops)| ops.keys().map(move |op| (role.clone(), op.clone())))
            })
            .collect();
        keys.sort();
        keys.dedup();
        for (role, op) in keys {
            any = true;
            let times: Vec<&common::alloc::CallTimes> = summaries
                .iter()
                .filter_map(|x| x.alloc_call_ns.get(&role)?.get(&op))
                .collect();
            let med = |f: fn(&common::alloc::CallTimes) -> f64| {
                super::verdict::median(&times.iter().map(|t| f(t)).collect::<Vec<_>>())
            };
            table.row([
                vid(i),
                s.variant.label(),
                role,
                op,
                group(med(|t| t.count as f64).round() as u64),
                ns(med(|t| t.p50_ns)),
                ns(med(|t| t.p90_ns)),
                ns(med(|t| t.p99_ns)),
                ns(med(|t| t.p99_9_ns)),
                ns(med(|t| t.max_ns)),
            ]);
        }
    }
    any.then_some(table)
}

/// One row per (variant, metric): ratio, interval, verdicts, halves.
fn comparisons_table(stats: &[VariantStats], base: usize, metrics: &[String]) -> Table {
    let mut table = Table::new([
        "#",
        "metric",
        "baseline",
        "variant",
        "ratio",
        "95% interval",
        "all rounds",
        "odd rounds",
        "even rounds",
        "verdict",
    ])
    .right_from(2);
    for i in (0..stats.len()).filter(|&i| i != base) {
        for m in metrics {
            let c = compare(stats, base, i, m);
            let unit = super::metric(m).map(|x| x.unit);
            let value = |v: &[f64]| median_text(unit, v);
            table.row([
                vid(i),
                m.clone(),
                value(stats[base].values(m)),
                value(stats[i].values(m)),
                times(c.ratio),
                if c.lo.is_nan() {
                    "n/a".to_string()
                } else {
                    format!("{}–{}", times(c.lo), times(c.hi))
                },
                c.full.word().to_string(),
                times(c.halves.0),
                times(c.halves.1),
                c.verdict.word().to_string(),
            ]);
        }
    }
    table
}

/// The key numbers of a block's variants: e2e and engine-stage p50 and p99 with their
/// ratios to the baseline, allocations, memory and loss.
fn key_numbers(stats: &[VariantStats], named: Option<usize>) -> Table {
    let mut table = Table::new([
        "#",
        "engine",
        "scratch",
        "feed",
        "levels",
        "runs ok",
        "e2e p50",
        "×base",
        "e2e p99 (runs)",
        "×base",
        "engine p50",
        "×base",
        "engine p99 (runs)",
        "×base",
        "allocs/tick",
        "engine RSS",
        "feed RSS",
        "RSS total",
        "engine frag.",
        "feed frag.",
        "gaps / missed",
    ])
    .right_from(4);
    for (i, s) in stats.iter().enumerate() {
        let v = &s.variant;
        let base = baseline_for(stats, named, v).map(|b| &stats[b]);
        let cell = |x: Option<Spread>| x.map_or_else(|| "n/a".into(), |x| ns(x.median));
        let cell_r = |x: Option<Spread>| {
            x.map_or_else(
                || "n/a".into(),
                |x| format!("{} ({})", ns(x.median), spread_text(&x)),
            )
        };
        let role = if v.is_baseline() {
            " baseline"
        } else if v.is_hybrid() {
            " hybrid"
        } else {
            ""
        };
        let (engine, feed) = match v.process {
            Process::Two => (v.engine_alloc.to_string(), v.feed_alloc.to_string()),
            Process::Single(a) => (format!("1 process: {}", a.bin()), "same process".into()),
        };
        let memory = memory_cells(
            v.process,
            [s.engine_rss, s.feed_rss],
            [s.engine_frag, s.feed_frag],
        );
        table.row([
            format!("{}{role}", vid(i)),
            engine,
            v.scratch.to_string(),
            feed,
            v.levels.to_string(),
            format!("{}/{}", s.ok, s.ok + s.failed),
            cell(s.p50("e2e")),
            ratio(s.p50("e2e"), base.and_then(|b| b.p50("e2e"))),
            cell_r(s.p99("e2e")),
            ratio(s.p99("e2e"), base.and_then(|b| b.p99("e2e"))),
            cell(s.p50("engine")),
            ratio(s.p50("engine"), base.and_then(|b| b.p50("engine"))),
            cell_r(s.p99("engine")),
            ratio(s.p99("engine"), base.and_then(|b| b.p99("engine"))),
            per_tick(s.allocs_per_tick),
            memory[0].clone(),
            memory[1].clone(),
            opt_bytes(s.rss_total),
            memory[2].clone(),
            memory[3].clone(),
            format!("{} / {}", s.gaps, s.missed),
        ]);
    }
    table
}

/// The engine RSS, feed RSS, engine frag. and feed frag. cells of a variant run as
/// `process`: as they are for two processes; for one, the RSS cells point at the total
/// (both sides are the one process) and the fragmentation is the one allocator's (the
/// worse of the two sides' peaks), marked.
fn memory_cells(process: Process, rss: [Option<u64>; 2], frag: [Option<f64>; 2]) -> [String; 4] {
    match process {
        Process::Two => [
            opt_bytes(rss[0]),
            opt_bytes(rss[1]),
            opt_pct(frag[0]),
            opt_pct(frag[1]),
        ],
        Process::Single(_) => {
            let worst = match frag {
                [Some(a), Some(b)] => Some(a.max(b)),
                [a, b] => a.or(b),
            };
            let f = worst.map_or_else(
                || "n/a".into(),
                |f| format!("{} (1 proc.)", opt_pct(Some(f))),
            );
            ["in total".into(), "in total".into(), f.clone(), f]
        }
    }
}

/// A pool break-even table: per levels value, each scratch mode's engine-stage p50 and
/// p99, pool against heap and arena, the fastest, and pool's fallbacks.
fn breakeven_table(stats: &[VariantStats], rows: &[BreakEvenRow]) -> Table {
    use crate::variant::ScratchMode::{Arena, Heap, Pool};
    let mut table = Table::new([
        "levels",
        "heap p50",
        "heap p99",
        "arena p50",
        "arena p99",
        "pool p50",
        "pool p99",
        "pool vs heap (p99)",
        "pool vs arena (p99)",
        "fastest p99",
        "pool fallbacks",
    ])
    .right(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 10]);
    for r in rows {
        let c50 = |m| {
            r.engine(stats, m)
                .map_or_else(|| "n/a".into(), |s| ns(s.p50.median))
        };
        let c99 = |m| {
            r.engine(stats, m)
                .map_or_else(|| "n/a".into(), |s| ns(s.p99.median))
        };
        let vs = |m| {
            r.pool_vs(stats, m).map_or_else(
                || "n/a".into(),
                |v| {
                    format!(
                        "{:+.1}%{}",
                        v.lower_pct,
                        if v.significant { "*" } else { "" }
                    )
                },
            )
        };
        table.row([
            r.levels.to_string(),
            c50(Heap),
            c99(Heap),
            c50(Arena),
            c99(Arena),
            c50(Pool),
            c99(Pool),
            vs(Heap),
            vs(Arena),
            r.fastest(stats).map_or("n/a", |m| m.name()).to_string(),
            r.pool
                .and_then(|i| stats[i].pool_fallbacks)
                .map_or_else(|| "n/a".into(), |n| n.to_string()),
        ]);
    }
    table
}

/// One stage's percentile rows, a variant a row (see [`StageStats::as_percentiles`]),
/// with the p99's run-to-run spread.
fn stage_table(stats: &[VariantStats], stage: &str) -> Table {
    let header = ["#", "variant"]
        .into_iter()
        .chain(PERCENTILE_COLUMNS)
        .chain(["p99 runs"]);
    let mut table = Table::new(header).right_from(2);
    for (i, s) in stats.iter().enumerate() {
        let (cells, runs) = match s.stages.get(stage) {
            Some(x) => (percentile_cells(&x.as_percentiles()), spread_text(&x.p99)),
            None => (percentile_cells_missing(), "n/a".into()),
        };
        table.row(
            [vid(i), s.variant.label()]
                .into_iter()
                .chain(cells)
                .chain([runs]),
        );
    }
    table
}

/// Block `block`'s variants with the folders of their finished and failed runs.
fn runs_table(stats: &[VariantStats], block: usize, runs: &[RunRecord]) -> Table {
    let mut table = Table::new(["#", "variant", "run folders", "failed runs"]);
    for i in 0..stats.len() {
        let mine: Vec<&RunRecord> = runs
            .iter()
            .filter(|r| r.block == block && r.variant == i)
            .collect();
        let ok: Vec<String> = mine
            .iter()
            .filter(|r| r.result.is_ok())
            .map(|r| format!("`{}`", r.dir))
            .collect();
        let bad: Vec<String> = mine
            .iter()
            .filter_map(|r| {
                r.result
                    .as_ref()
                    .err()
                    .map(|e| format!("`{}`: {}", r.dir, one_line(e)))
            })
            .collect();
        let list = |l: Vec<String>, sep: &str| {
            if l.is_empty() {
                "none".into()
            } else {
                l.join(sep)
            }
        };
        table.row([vid(i), vname(stats, i), list(ok, ", "), list(bad, "; ")]);
    }
    table
}

/// Every run, one row each, in run order: its e2e percentiles, the other stages' p50
/// or p99, allocations, memory (one-process runs as in the key numbers), tick counts and
/// rate.
fn appendix(blocks: &[BlockInfo], runs: &[RunRecord]) -> Table {
    let e2e = PERCENTILE_COLUMNS[1..].iter().map(|c| format!("e2e {c}"));
    let header = ["run folder", "block", "#", "rep", "status"]
        .map(String::from)
        .into_iter()
        .chain(e2e)
        .chain(
            [
                "engine p50",
                "engine p99",
                "feed_lag p99",
                "hop p99",
                "allocs/tick",
                "engine RSS",
                "feed RSS",
                "RSS total",
                "engine frag.",
                "feed frag.",
                "published",
                "received",
                "gaps",
                "missed",
                "rate",
            ]
            .map(String::from),
        );
    let mut table = Table::new(header).right(&[1, 3]).right_from(5);
    for r in runs {
        let head = [
            format!("`{}`", r.dir),
            (r.block + 1).to_string(),
            vid(r.variant),
            r.rep.to_string(),
        ];
        let s = match &r.result {
            Err(e) => {
                table.row(head.into_iter().chain([format!("failed: {}", one_line(e))]));
                continue;
            }
            Ok(s) => s,
        };
        let e2e = s
            .latency_ns
            .get("e2e")
            .map_or_else(percentile_cells_missing, percentile_cells);
        let p = |stage: &str, f: fn(&Percentiles) -> u64| {
            s.latency_ns
                .get(stage)
                .map_or_else(|| "n/a".into(), |p| fmt_ns(f(p)))
        };
        let process = blocks
            .get(r.block)
            .and_then(|b| b.variants.get(r.variant))
            .map_or(Process::Two, |v| v.process);
        let (e, f) = (&s.engine.detail.memory, &s.feed.detail.memory);
        let rss = |m: &common::memory::MemoryReport| Some(m.peak_rss_bytes).filter(|b| *b > 0);
        let [er, fr, ef, ff] = memory_cells(
            process,
            [rss(e), rss(f)],
            [e.peak_fragmentation, f.peak_fragmentation],
        );
        let total = super::metrics::metric("RSS total")
            .and_then(|m| m.value(s, process))
            .map(|b| b as u64);
        table.row(
            head.into_iter()
                .chain(["ok".to_string()])
                .chain(e2e.into_iter().skip(1))
                .chain([
                    p("engine", |p| p.p50),
                    p("engine", |p| p.p99),
                    p("feed_lag", |p| p.p99),
                    p("hop", |p| p.p99),
                    per_tick(Some(s.engine.global_allocs_per_tick)),
                    er,
                    fr,
                    opt_bytes(total),
                    ef,
                    ff,
                    s.ticks.published.to_string(),
                    s.ticks.received.to_string(),
                    s.ticks.gaps.to_string(),
                    s.ticks.missed.to_string(),
                    rate_pct(s).map_or_else(|| "n/a".into(), |p| format!("{p:.1}%")),
                ]),
        );
    }
    table
}

/// Where pool beats `other` over a levels sweep, in one sentence.
pub fn breakeven_text(other: &str, w: &PoolWins) -> String {
    if w.wins.is_empty() {
        return format!(
            "Pool's median engine p99 is below {other}'s at no levels value of this sweep."
        );
    }
    let list: Vec<String> = w
        .wins
        .iter()
        .map(|v| {
            format!(
                "{} ({:.1}% lower{})",
                v.levels,
                v.lower_pct,
                if v.significant {
                    ""
                } else {
                    ", no stable verdict"
                }
            )
        })
        .collect();
    // A break-even is a verdict only where every levels value from there on has one.
    let by_medians = |from: u32| {
        if w.wins
            .iter()
            .filter(|v| v.levels >= from)
            .all(|v| v.significant)
        {
            ""
        } else {
            " (by the medians only: not every levels value from there has a stable verdict, so this is no verdict)"
        }
    };
    let tail = match w.ahead {
        Ahead::WholeSweep => format!(
            " Pool is ahead of {other} over the whole sweep{}.",
            by_medians(0)
        ),
        Ahead::From(l) => {
            format!(
                " Break-even against {other}: from {l} levels on, pool stays ahead{}.",
                by_medians(l)
            )
        }
        Ahead::Not => {
            format!(" Pool does not stay ahead of {other} up to the largest levels value.")
        }
    };
    format!(
        "Pool's median engine p99 is below {other}'s at levels {}.{tail}",
        list.join(", ")
    )
}

/// `s` on one line, for a table cell.
fn one_line(s: &str) -> String {
    s.replace(['\n', '|'], " ")
}

/// The commits the finished runs' binaries (engine or pipeline, and feed) were built
/// from, sorted, each once.
fn revs_of<'a>(runs: impl Iterator<Item = &'a RunRecord>) -> Vec<&'a str> {
    let mut revs: Vec<&str> = runs
        .filter_map(|r| r.result.as_ref().ok())
        .flat_map(|s| {
            [
                s.manifest.git_rev.as_str(),
                s.feed.detail.manifest.git_rev.as_str(),
            ]
        })
        .filter(|r| !r.is_empty())
        .collect();
    revs.sort_unstable();
    revs.dedup();
    revs
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{BlockInfo, Meta, PlotRef, RunRecord};
    use super::*;
    use crate::table::md_row;
    use crate::variant::{ScratchMode, Variant};
    use common::summary::Summary;
    use Alloc::*;
    use ScratchMode::*;

    /// Six rounds of a variant whose p99 goes round `center` by ±`spread` ns.
    fn six(center: u64, spread: u64) -> Vec<u64> {
        let s = spread as i64;
        [-s, 3 * s / 5, -s / 5, s, -3 * s / 5, s / 5]
            .iter()
            .map(|d| (center as i64 + d) as u64)
            .collect()
    }

    #[test]
    fn ratios_against_the_baseline() {
        let b = block(&six(750, 50));
        assert_eq!(baseline_for(&b, None, &b[2].variant), Some(0));
        assert_eq!(baseline_for(&b, Some(3), &b[2].variant), Some(3), "named");
        assert_eq!(ratio(b[0].p99("e2e"), b[0].p99("e2e")), "1.00×");
        assert_eq!(ratio(b[2].p99("e2e"), None), "n/a");
        let tiny = Some(Spread::of(&[3]));
        assert_eq!(ratio(tiny, Some(Spread::of(&[1000]))), "3.0e-3×");
    }

    #[test]
    fn engine_recommendation_needs_a_stable_verdict() {
        // V5 (around 650) against the hybrid V3 (around 750): apart in every round.
        let b = block(&six(750, 50));
        let recs = engine_recs(&b, None);
        // The baseline (feed system) stands alone in its group: one recommendation.
        assert_eq!(recs.len(), 1);
        let r = &recs[0];
        assert_eq!((r.feed_alloc, r.levels, r.baseline), (Jemalloc, 3, Some(0)));
        let order: Vec<usize> = r.by_e2e_p99.iter().map(|x| x.0).collect();
        assert_eq!(order, [4, 2, 3, 1]);
        let t = engine_text(&b, r);
        assert!(t.contains("**tcmalloc + pool** (V5): 650ns"), "{t}");
        assert!(
            t.contains("below the next best, mimalloc + arena (V3): 750ns"),
            "{t}"
        );
        assert!(
            t.contains("detectably lower, in both halves of the rounds"),
            "{t}"
        );
        assert!(t.contains("Recommendation: **tcmalloc + pool**"), "{t}");
        assert_eq!(r.pick(&b, "e2e"), Some(4));
        assert_eq!(below_above(90.0, 100.0), "10.0% below");
        assert_eq!(below_above(120.0, 100.0), "20.0% above");
        // A hybrid as fast as V5: no single variant stands out, no recommendation.
        let b = block(&six(655, 50));
        let r = &engine_recs(&b, None)[0];
        assert_eq!(r.pick(&b, "e2e"), None);
        let t = engine_text(&b, r);
        assert!(t.contains("no detectable difference"), "{t}");
        assert!(t.contains("No recommendation on e2e p99"), "{t}");
    }

    #[test]
    fn hybrid_verdict_needs_a_stable_verdict_and_the_target() {
        // Around 750 against around 1050: 28.6% lower in every round: reached.
        let b = block(&six(750, 50));
        let v = hybrid_verdicts(&b, None);
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].hybrid, v[0].baseline), (2, 0));
        assert!((v[0].improvement_pct - 28.571).abs() < 0.01, "{v:?}");
        assert_eq!(v[0].comparison.verdict, Verdict::Better);
        assert!(v[0].reached);
        let t = verdict_text("Block 1", &b, &v[0]);
        assert!(t.contains("**28.6% lower**"), "{t}");
        assert!(t.contains("is **reached (a stable verdict)**"), "{t}");
        assert!(t.contains("On the engine stage alone"), "{t}");
        // Half the rounds far lower, half above the baseline: the medians are 20% apart,
        // the runs do not establish it.
        let b = block(&[300, 1200, 350, 1150, 400, 1250]);
        let v = hybrid_verdicts(&b, None);
        assert!(v[0].improvement_pct >= 20.0, "{v:?}");
        assert!(!v[0].reached, "{v:?}");
        let t = verdict_text("Block 1", &b, &v[0]);
        assert!(t.contains("**not established"), "{t}");
        // Around 950: 9.5% lower, not reached.
        let b = block(&six(950, 30));
        let v = hybrid_verdicts(&b, None);
        assert!(!v[0].reached);
        let t = verdict_text("Block 1", &b, &v[0]);
        assert!(t.contains("**not reached**"), "{t}");
        // Slower than the baseline: said as such.
        let b = block(&six(1260, 40));
        let t = verdict_text("B", &b, &hybrid_verdicts(&b, None)[0]);
        assert!(
            t.contains("**20.0% higher**") && t.contains("**not reached**"),
            "{t}"
        );
        assert!(t.contains("detectably higher"), "{t}");
        // No baseline: no verdict.
        assert!(hybrid_verdicts(&b[1..], None).is_empty());
        // A block of hybrids that differ in settings only, the first its baseline: a
        // comparison of settings, not of the hybrid against the brief's baseline.
        let settings = vec![b[2].clone(), b[2].clone()];
        assert!(hybrid_verdicts(&settings, Some(0)).is_empty());
    }

    #[test]
    fn feed_recommendation_names_the_trade_off() {
        let mk = |f: Alloc, lag: &[u64], rss: u64, frag: Option<f64>| {
            let s: Vec<Summary> = lag.iter().map(|l| summary(1000, *l, rss, frag)).collect();
            VariantStats::of(
                variant(Mimalloc, Arena, f, 3),
                &s.iter().collect::<Vec<_>>(),
                0,
            )
        };
        let b = vec![
            mk(System, &six(520, 20), 300 << 20, None),
            mk(Jemalloc, &six(310, 10), 250 << 20, Some(0.05)),
            mk(Mimalloc, &six(410, 10), 200 << 20, Some(0.20)),
        ];
        let recs = feed_recs(&b);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].by_lag_p99[0].0, 1);
        assert_eq!(recs[0].by_rss[0].0, 2);
        assert_eq!(recs[0].by_frag[0].0, 1);
        let t = feed_text(&b, &recs[0]);
        assert!(
            t.contains("lowest median feed_lag p99: **jemalloc (V2)** 310ns"),
            "{t}"
        );
        assert!(t.contains("detectably lower"), "{t}");
        assert!(
            t.contains("Lowest peak feed RSS: **mimalloc (V3)** 200.0MiB"),
            "{t}"
        );
        assert!(
            t.contains("Lowest peak fragmentation: **jemalloc (V2)** 5.0%"),
            "{t}"
        );
        assert!(
            t.contains("Trade-off: jemalloc has the lowest feed_lag p99, mimalloc has the lowest peak RSS, jemalloc has the lowest fragmentation"),
            "{t}"
        );
        // One allocator best everywhere, detectably: a plain recommendation.
        let b = vec![
            mk(System, &six(520, 20), 300 << 20, None),
            mk(Jemalloc, &six(310, 10), 150 << 20, Some(0.05)),
        ];
        let t = feed_text(&b, &feed_recs(&b)[0]);
        assert!(
            t.contains("Recommendation: **jemalloc**, best on every measured count"),
            "{t}"
        );
        // Best everywhere on the medians, but not detectably: no recommendation.
        let b = vec![
            mk(System, &[320, 300, 330, 310, 300, 340], 300 << 20, None),
            mk(
                Jemalloc,
                &[310, 320, 300, 330, 290, 315],
                150 << 20,
                Some(0.05),
            ),
        ];
        let t = feed_text(&b, &feed_recs(&b)[0]);
        assert!(
            t.contains("No recommendation: jemalloc has the lowest figures"),
            "{t}"
        );
    }

    #[test]
    fn breakeven_text_names_the_levels() {
        let wins = |w: &[(u32, f64, bool)], ahead| PoolWins {
            wins: w
                .iter()
                .map(|&(levels, lower_pct, significant)| PoolVs {
                    levels,
                    lower_pct,
                    significant,
                })
                .collect(),
            ahead,
        };
        let t = breakeven_text(
            "arena",
            &wins(&[(2, 5.0, true), (4, 16.7, true)], Ahead::From(2)),
        );
        assert!(
            t.contains("at levels 2 (5.0% lower), 4 (16.7% lower)"),
            "{t}"
        );
        assert!(t.contains("from 2 levels on"), "{t}");
        assert!(!t.contains("by the medians only"), "{t}");
        // A break-even whose levels lack a stable verdict is said to be none.
        let t = breakeven_text(
            "arena",
            &wins(&[(8, 6.8, false), (16, 4.8, false)], Ahead::From(8)),
        );
        assert!(t.contains("from 8 levels on"), "{t}");
        assert!(t.contains("by the medians only"), "{t}");
        let t = breakeven_text(
            "heap",
            &wins(
                &[(1, 12.5, false), (2, 24.0, true), (4, 37.5, true)],
                Ahead::WholeSweep,
            ),
        );
        assert!(t.contains("over the whole sweep"), "{t}");
        assert!(t.contains("by the medians only"), "{t}");
        assert!(t.contains("1 (12.5% lower, no stable verdict)"), "{t}");
        let t = breakeven_text("heap", &wins(&[(2, 1.0, false)], Ahead::Not));
        assert!(t.contains("does not stay ahead"), "{t}");
        assert!(breakeven_text("heap", &wins(&[], Ahead::Not)).contains("at no levels value"));
    }

    #[test]
    fn one_process_variants_count_their_memory_once() {
        use crate::variant::PipelineAlloc;
        let variants = vec![
            variant(Mimalloc, Arena, Jemalloc, 3),
            Variant::single(PipelineAlloc::Hybrid, Arena, 3),
            Variant::single(PipelineAlloc::Jemalloc, Arena, 3),
        ];
        let p99s = [six(1050, 50), six(750, 50), six(900, 30)];
        let mut runs = Vec::new();
        for rep in 0..6u32 {
            for (vi, p) in p99s.iter().enumerate() {
                let mut s = summary(p[rep as usize], 100, 1 << 20, Some(0.1));
                s.engine.detail.memory.peak_rss_bytes = 2 << 20;
                s.engine.detail.memory.peak_fragmentation = Some(0.2);
                runs.push(RunRecord {
                    block: 0,
                    variant: vi,
                    rep: rep + 1,
                    dir: format!("runs/r{}/b1-v{}", rep + 1, vi + 1),
                    result: Ok(s),
                });
            }
        }
        let blocks = [BlockInfo {
            name: "one process or two".into(),
            config: "configs/default.toml".into(),
            duration_s: 5.0,
            warmup_s: 1.0,
            seed: 42,
            variants,
            baseline: Some(0),
        }];
        let meta = Meta {
            repetitions: 6,
            metrics: ["e2e p99", "RSS total", "feed RSS"]
                .map(String::from)
                .to_vec(),
            ..Meta::default()
        };
        let md = render(&meta, &blocks, &runs);
        // Key numbers: two processes add their peaks up; one process counts its own
        // once, and its per-process cells point at the total.
        let v1 = md_row(&md, "V1 hybrid");
        assert_eq!(v1[1..4], ["mimalloc", "arena", "jemalloc"]);
        assert_eq!(v1[15..20], ["2.0MiB", "1.0MiB", "3.0MiB", "20.0%", "10.0%"]);
        let v2 = md_row(&md, "V2");
        assert_eq!(v2[1..4], ["1 process: pipeline", "arena", "same process"]);
        assert_eq!(
            v2[15..20],
            [
                "in total",
                "in total",
                "2.0MiB",
                "20.0% (1 proc.)",
                "20.0% (1 proc.)"
            ]
        );
        // Verdicts: RSS total judged in both shapes, feed RSS n/a for one process.
        let verdicts = &md[md.find("### Verdicts against V1").unwrap()..];
        let row = md_row(verdicts, "V2");
        assert_eq!(row[0], "V2");
        assert!(row[1].contains("**better**"), "{row:?}");
        assert_eq!(row[2], "0.67× **better**", "2 MiB against 3 MiB");
        assert_eq!(row[3], "n/a");
        // The roles need two processes each; the shapes are compared instead.
        assert!(!md.contains("- **Engine**"), "{md}");
        assert!(!md.contains("- **Feed**"), "{md}");
        assert!(
            md.contains("- **One process or two** (3 levels): the lowest median e2e p99 is **one process, hybrid routing + arena, 3 levels** (V2)"),
            "{md}"
        );
        assert!(
            md.contains("Recommendation: **one process, hybrid routing + arena, 3 levels**"),
            "{md}"
        );
        assert!(md.contains("RSS total 2.0MiB"), "{md}");
        // The appendix marks them as the key numbers do.
        let run = md_row(&md, "`runs/r1/b1-v2`");
        assert!(
            run.contains(&"in total") && run.contains(&"2.0MiB"),
            "{run:?}"
        );
        assert_eq!(
            md_row(&md, "`runs/r1/b1-v1`")
                .iter()
                .filter(|c| **c == "3.0MiB")
                .count(),
            1
        );
        // The block's baseline is the two-process hybrid itself: no target verdict.
        assert!(!md.contains("The brief's target"), "{md}");
        for table in md.split("\n\n").filter(|b| b.starts_with('|')) {
            let cells: Vec<usize> = table.lines().map(|l| l.matches('|').count()).collect();
            assert!(cells.iter().all(|c| *c == cells[0]), "{table}");
        }
    }

    #[test]
    fn report_is_complete_and_traceable() {
        let hybrid = six(750, 50);
        let fixture = block(&hybrid);
        let variants: Vec<Variant> = fixture.iter().map(|s| s.variant.clone()).collect();
        let p99s: Vec<Vec<u64>> = vec![
            vec![1000, 1050, 1100, 1020, 1080, 1050],
            vec![990, 1000, 1010, 995, 1005, 1000],
            hybrid.clone(),
            vec![760, 800, 840, 780, 820, 800],
            vec![600, 650, 700, 620, 680, 650],
        ];
        let mut runs = Vec::new();
        for rep in 0..6u32 {
            for (vi, p) in p99s.iter().enumerate() {
                let dir = format!("runs/r{}/b1-v{}", rep + 1, vi + 1);
                let result = if vi == 3 && rep == 1 {
                    Err("engine exited with status 3\nmore".to_string())
                } else {
                    Ok(summary(p[rep as usize], 100, 1 << 20, None))
                };
                runs.push(RunRecord {
                    block: 0,
                    variant: vi,
                    rep: rep + 1,
                    dir,
                    result,
                });
            }
        }
        let mut blocks = [BlockInfo {
            name: "engine allocator × scratch".into(),
            config: "configs/default.toml".into(),
            duration_s: 5.0,
            warmup_s: 1.0,
            seed: 42,
            variants,
            baseline: None,
        }];
        let meta = Meta {
            matrix: "configs/compare.toml".into(),
            started_utc: "20250101-000000".into(),
            wall: Duration::from_secs(400),
            repetitions: 6,
            plots: vec![PlotRef {
                block: 0,
                stage: "e2e".into(),
                file: "plots/b1-e2e.svg".into(),
            }],
            metrics: ["e2e p99", "engine p99"].map(String::from).to_vec(),
            ..Meta::default()
        };
        let md = render(&meta, &blocks, &runs);
        assert!(md.contains("wall time 6m40s; 30 runs, 1 failed"), "{md}");
        assert!(md.contains("**28.6% lower**"), "{md}");
        // The key numbers table comes first: its rows are the first with these names.
        assert_eq!(
            md_row(&md, "V1 baseline")[..6],
            ["V1 baseline", "system", "heap", "system", "3", "6/6"]
        );
        assert_eq!(
            md_row(&md, "V4")[..6],
            ["V4", "jemalloc", "arena", "jemalloc", "3", "5/6"]
        );
        assert_eq!(
            md_row(&md, "V3 hybrid")[..15],
            [
                "V3 hybrid",
                "mimalloc",
                "arena",
                "jemalloc",
                "3",
                "6/6",
                "188ns",
                "0.72×",
                "750ns (700ns–800ns)",
                "0.71×",
                "94ns",
                "0.71×",
                "375ns (350ns–400ns)",
                "0.71×",
                "0"
            ]
        );
        // Stage tables: the percentile row of the hybrid's e2e (count: fewest samples).
        let e2e = &md[md.find("#### e2e").unwrap()..];
        assert_eq!(
            md_row(e2e, "V3"),
            [
                "V3",
                "engine mimalloc + arena, feed jemalloc, 3 levels",
                "400,000",
                "188ns",
                "375ns",
                "750ns",
                "1.50µs",
                "2.40µs",
                "8.00µs",
                "700ns–800ns"
            ]
        );
        // The verdicts: every variant against the baseline V1 on the judged metrics.
        let verdicts = &md[md.find("### Verdicts against V1").unwrap()..];
        assert_eq!(md_row(verdicts, "V1"), ["V1", "baseline", "baseline"]);
        assert_eq!(
            md_row(verdicts, "V3"),
            ["V3", "0.71× **better**", "0.71× **better**"]
        );
        assert_eq!(
            md_row(verdicts, "V2"),
            ["V2", "0.95×", "0.95×"],
            "5% lower, no more: no difference"
        );
        let comparisons = &md[md.find("### Comparisons with V1").unwrap()..];
        let row = md_row(comparisons, "V3");
        assert_eq!(row[..5], ["V3", "e2e p99", "1.05µs", "750ns", "0.71×"]);
        assert_eq!((row[6], row[9]), ("better", "better"));
        assert!(md.contains("**reached (a stable verdict)**"), "{md}");
        assert!(
            md.contains("![e2e: latency by percentile, block 1](plots/b1-e2e.svg)"),
            "{md}"
        );
        assert!(
            md.contains("`runs/r2/b1-v4`: engine exited with status 3 more"),
            "{md}"
        );
        let failed = md_row(&md, "`runs/r2/b1-v4`");
        assert_eq!(
            failed[..5],
            [
                "`runs/r2/b1-v4`",
                "1",
                "V4",
                "2",
                "failed: engine exited with status 3 more"
            ]
        );
        assert!(failed[5..].iter().all(|c| c.is_empty()), "{failed:?}");
        assert_eq!(
            md_row(&md, "`runs/r1/b1-v1`")[..6],
            ["`runs/r1/b1-v1`", "1", "V1", "1", "ok", "250ns"]
        );
        assert!(md.contains("n/a"), "fragmentation not reported: {md}");
        // Every table row has as many cells as its header.
        for table in md.split("\n\n").filter(|b| b.starts_with('|')) {
            let cells: Vec<usize> = table.lines().map(|l| l.matches('|').count()).collect();
            assert!(cells.iter().all(|c| *c == cells[0]), "{table}");
        }
        assert!(!md.contains("binaries come from"), "{md}");
        // A run whose binary was built from another commit is called out.
        if let Ok(s) = &mut runs[0].result {
            s.manifest.git_rev = "0123456789ab".into();
        }
        let md = render(&meta, &blocks, &runs);
        assert!(
            md.contains("**Warning**: the runs' binaries come from `0123456789ab`"),
            "{md}"
        );
        // Unless the matrix gave that variant binaries of its own: then it is named
        // with its commit, and the warning is about the others only.
        let (b, v) = (runs[0].block, runs[0].variant);
        blocks[b].variants[v].bin_dir = Some("/tmp/before/release".into());
        let md = render(&meta, &blocks, &runs);
        assert!(!md.contains("binaries come from"), "{md}");
        assert!(
            md.contains(&format!(
                "- Block {}, V{}: binaries from `/tmp/before/release`, built from `0123456789ab`",
                b + 1,
                v + 1
            )),
            "{md}"
        );
    }
}
