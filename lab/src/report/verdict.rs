//! When a difference between two variants is a result: the statistics behind every
//! verdict of the report.
//!
//! The unit of evidence is a repetition: each run gives one value per metric (its p99,
//! say), and a variant is compared with the baseline by the distribution of those values
//! over interleaved repetitions, never by pooling samples across runs (samples within a
//! run are autocorrelated: one stall delays hundreds of ticks).
//!
//! # The rule
//!
//! - The effect is the ratio of the variant's median to the baseline's median.
//! - Its 95% confidence interval comes from a seeded bootstrap over repetitions: both
//!   groups are resampled with replacement [`Rule::resamples`] times and the ratio of the
//!   resampled medians taken each time; the interval is the 2.5th to 97.5th percentile of
//!   those ratios. The seed is derived from the metric's name and the values, so a report
//!   is reproducible from its raw files.
//! - The verdict is *better* or *worse* (for a metric where lower is better) only when
//!   the interval excludes 1, a two-sided rank test (Mann–Whitney U, by exact
//!   enumeration of the assignments of the repetitions to the two groups, or 5,000
//!   seeded random ones for large groups) gives p below 1 − confidence, **and** the
//!   median ratio is beyond the minimum effect ([`Rule::min_effect`], 5% by default) on
//!   the same side; anything else is *no detectable difference*. (A bootstrap interval
//!   alone is too narrow with five repetitions: it would call about 6% of identical
//!   pairs different; the rank test keeps that under 5%.)
//! - Split halves: the same rule is applied to the odd and to the even repetitions alone.
//!   A *better* or *worse* that does not hold in both halves (each half's median ratio
//!   beyond the minimum effect on the same side) is *unstable* and supports no
//!   recommendation.
//!
//! [`false_verdict_rate`] measures how often the rule calls a difference between two
//! identically distributed variants, by simulation; [`detectable_effect`] how large a
//! shift the rule detects four times in five at a given spread.
//!
//! Pure and deterministic: the same values give the same verdict.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};

/// The parameters of the rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rule {
    /// Smallest relative effect that counts (0.05: 5%).
    pub min_effect: f64,
    /// Two-sided confidence of the interval (0.95).
    pub confidence: f64,
    /// Bootstrap resamples per interval.
    pub resamples: usize,
}

impl Default for Rule {
    fn default() -> Rule {
        Rule {
            min_effect: 0.05,
            confidence: 0.95,
            resamples: 2_000,
        }
    }
}

/// What the rule concludes about one variant against the baseline, on one metric where
/// lower is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// Lower than the baseline beyond the minimum effect, interval excluding 1, in both
    /// halves.
    Better,
    /// Higher than the baseline, likewise.
    Worse,
    /// Better or worse on all repetitions, but not in both halves.
    Unstable,
    /// The interval includes 1, or the effect is below the minimum.
    NoDifference,
    /// Too few repetitions on one side (fewer than 2).
    TooFew,
}

impl Verdict {
    /// The word the report uses.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::Unstable => "unstable",
            Verdict::NoDifference => "no detectable difference",
            Verdict::TooFew => "too few runs",
        }
    }

    /// Whether this verdict may support a recommendation.
    pub fn is_result(self) -> bool {
        matches!(self, Verdict::Better | Verdict::Worse)
    }
}

/// One comparison: a variant's values against the baseline's, on one metric.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    /// Median of the variant over median of the baseline.
    pub ratio: f64,
    /// Lower end of the interval of the ratio.
    pub lo: f64,
    /// Upper end of the interval.
    pub hi: f64,
    /// The verdict on all repetitions, before the split-half check.
    pub full: Verdict,
    /// The median ratios of the odd and the even repetitions.
    pub halves: (f64, f64),
    /// The verdict after the split-half check.
    pub verdict: Verdict,
}

/// The median of `v` (NaN if empty).
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// `a / b`, with 0 / 0 = 1 (two variants that both measured nothing agree).
fn ratio(a: f64, b: f64) -> f64 {
    if a == b {
        1.0
    } else if b == 0.0 {
        f64::INFINITY
    } else {
        a / b
    }
}

/// A seed from the values compared (and the metric's name), so that the same raw
/// files give the same intervals.
fn seed_of(name: &str, base: &[f64], variant: &[f64]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |b: u8| h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    name.bytes().for_each(&mut eat);
    for x in base.iter().chain([f64::NAN].iter()).chain(variant) {
        x.to_bits().to_le_bytes().into_iter().for_each(&mut eat);
    }
    h
}

/// The bootstrap interval of the ratio of medians.
fn interval(base: &[f64], variant: &[f64], rule: &Rule, seed: u64) -> (f64, f64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut ratios = Vec::with_capacity(rule.resamples);
    let (mut b, mut v) = (vec![0.0; base.len()], vec![0.0; variant.len()]);
    for _ in 0..rule.resamples {
        for x in b.iter_mut() {
            *x = base[rng.random_range(0..base.len())];
        }
        for x in v.iter_mut() {
            *x = variant[rng.random_range(0..variant.len())];
        }
        ratios.push(ratio(median(&v), median(&b)));
    }
    ratios.sort_by(f64::total_cmp);
    let tail = (1.0 - rule.confidence) / 2.0;
    let at = |q: f64| {
        let i = ((ratios.len() as f64 - 1.0) * q).round() as usize;
        ratios[i.min(ratios.len() - 1)]
    };
    (at(tail), at(1.0 - tail))
}

/// Mann–Whitney U of `a` against `b`: pairs where the `a` value is below the `b`
/// value, ties counting one half.
fn u_statistic(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .map(|x| {
            b.iter()
                .map(|y| {
                    if x < y {
                        1.0
                    } else if x == y {
                        0.5
                    } else {
                        0.0
                    }
                })
                .sum::<f64>()
        })
        .sum()
}

/// The two-sided p-value of the rank test: the share of assignments of the pooled values
/// to groups of the two sizes whose U is at least as far from its mean as the observed
/// one. Every assignment when there are at most 184,756 (ten and ten), else 5,000
/// seeded random ones.
fn rank_test_p(base: &[f64], variant: &[f64], seed: u64) -> f64 {
    let (n1, n2) = (base.len(), variant.len());
    let pooled: Vec<f64> = base.iter().chain(variant).copied().collect();
    let mean = n1 as f64 * n2 as f64 / 2.0;
    let observed = (u_statistic(base, variant) - mean).abs() - 1e-9;
    let extreme = |pick: &[usize]| {
        let mut a = Vec::with_capacity(n1);
        let mut b = Vec::with_capacity(n2);
        let mut k = 0;
        for (i, &x) in pooled.iter().enumerate() {
            if k < pick.len() && pick[k] == i {
                a.push(x);
                k += 1;
            } else {
                b.push(x);
            }
        }
        (u_statistic(&a, &b) - mean).abs() >= observed
    };
    let total = binomial(n1 + n2, n1);
    if total <= 184_756 {
        let mut pick: Vec<usize> = (0..n1).collect();
        let (mut hits, mut seen) = (0u64, 0u64);
        loop {
            seen += 1;
            hits += u64::from(extreme(&pick));
            // Next combination in lexicographic order.
            let Some(i) = (0..n1).rev().find(|&i| pick[i] < i + n1 + n2 - n1) else {
                break;
            };
            pick[i] += 1;
            for j in i + 1..n1 {
                pick[j] = pick[j - 1] + 1;
            }
        }
        hits as f64 / seen as f64
    } else {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
        let mut order: Vec<usize> = (0..n1 + n2).collect();
        let trials = 5_000;
        let hits = (0..trials)
            .filter(|_| {
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.random_range(0..=i));
                }
                let mut pick = order[..n1].to_vec();
                pick.sort_unstable();
                extreme(&pick)
            })
            .count();
        // The observed assignment counts as one of them (a p-value is never 0).
        (hits + 1) as f64 / (trials + 1) as f64
    }
}

/// `n` choose `k`, saturating.
fn binomial(n: usize, k: usize) -> u64 {
    let k = k.min(n - k);
    let mut c = 1u64;
    for i in 0..k {
        c = c.saturating_mul((n - i) as u64) / (i as u64 + 1);
    }
    c
}

/// The verdict on one set of values, without the split-half check.
fn judge(base: &[f64], variant: &[f64], rule: &Rule, seed: u64) -> (f64, f64, f64, Verdict) {
    if base.len() < 2 || variant.len() < 2 {
        let r = ratio(median(variant), median(base));
        return (r, f64::NAN, f64::NAN, Verdict::TooFew);
    }
    let r = ratio(median(variant), median(base));
    let (lo, hi) = interval(base, variant, rule, seed);
    let beyond =
        (hi < 1.0 && r <= 1.0 - rule.min_effect) || (lo > 1.0 && r >= 1.0 + rule.min_effect);
    let v = if !beyond || rank_test_p(base, variant, seed) >= 1.0 - rule.confidence {
        Verdict::NoDifference
    } else if r < 1.0 {
        Verdict::Better
    } else {
        Verdict::Worse
    };
    (r, lo, hi, v)
}

/// Compares `variant` with `base` (one value per repetition, in round order; lower is
/// better) on the metric `name`.
pub fn compare(name: &str, base: &[f64], variant: &[f64], rule: &Rule) -> Comparison {
    let seed = seed_of(name, base, variant);
    let (r, lo, hi, full) = judge(base, variant, rule, seed);
    let half = |parity: usize| {
        let pick = |v: &[f64]| -> Vec<f64> {
            v.iter()
                .enumerate()
                .filter(|(i, _)| i % 2 == parity)
                .map(|(_, x)| *x)
                .collect()
        };
        ratio(median(&pick(variant)), median(&pick(base)))
    };
    let halves = (half(0), half(1));
    let holds = |h: f64| match full {
        Verdict::Better => h <= 1.0 - rule.min_effect,
        Verdict::Worse => h >= 1.0 + rule.min_effect,
        _ => true,
    };
    let verdict = if full.is_result() && !(holds(halves.0) && holds(halves.1)) {
        Verdict::Unstable
    } else {
        full
    };
    Comparison {
        ratio: r,
        lo,
        hi,
        full,
        halves,
        verdict,
    }
}

/// How often the rule finds a difference (better, worse or unstable) between two
/// variants whose `n` repetitions each come from the same distribution, here a
/// log-normal with coefficient of variation `cv` (run-to-run spreads of latency
/// percentiles are skewed like that), over `trials` seeded trials.
pub fn false_verdict_rate(n: usize, cv: f64, rule: &Rule, trials: usize, seed: u64) -> f64 {
    let mut rng = SmallRng::seed_from_u64(seed);
    let dist = log_normal(cv);
    let mut draw = |k: usize| -> Vec<f64> { (0..k).map(|_| dist.sample(&mut rng)).collect() };
    let called = (0..trials)
        .filter(|t| {
            let (a, b) = (draw(n), draw(n));
            compare(&format!("trial {t}"), &a, &b, rule).full != Verdict::NoDifference
        })
        .count();
    called as f64 / trials as f64
}

/// The smallest relative shift (0.05 = 5% lower) that the rule calls *better* in at least
/// 80% of `trials` seeded trials with `n` repetitions each and coefficient of variation
/// `cv`; `None` if even a halving is not detected that often.
pub fn detectable_effect(n: usize, cv: f64, rule: &Rule, trials: usize, seed: u64) -> Option<f64> {
    let dist = log_normal(cv);
    let power = |shift: f64| {
        let mut rng = SmallRng::seed_from_u64(seed);
        let hits = (0..trials)
            .filter(|t| {
                let a: Vec<f64> = (0..n).map(|_| dist.sample(&mut rng)).collect();
                let b: Vec<f64> = (0..n)
                    .map(|_| (1.0 - shift) * dist.sample(&mut rng))
                    .collect();
                compare(&format!("power {t}"), &a, &b, rule).full == Verdict::Better
            })
            .count();
        hits as f64 / trials as f64
    };
    [0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5]
        .into_iter()
        .find(|&s| power(s) >= 0.8)
}

/// Run-to-run values with mean 1 and coefficient of variation `cv` (rand_distr).
fn log_normal(cv: f64) -> LogNormal<f64> {
    LogNormal::from_mean_cv(1.0, cv).expect("a coefficient of variation is finite and positive")
}

/// The coefficient of variation of `v` (standard deviation over mean; 0 for fewer than
/// two values or a zero mean).
pub fn cv(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    if v.len() < 2 {
        return 0.0;
    }
    let mean = v.iter().sum::<f64>() / n;
    if mean == 0.0 {
        return 0.0;
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    var.sqrt() / mean.abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` log-normal values around `center` with coefficient of variation `cv`.
    fn sample(rng: &mut SmallRng, n: usize, center: f64, cv: f64) -> Vec<f64> {
        let dist = log_normal(cv);
        (0..n).map(|_| center * dist.sample(rng)).collect()
    }

    /// The property the report relies on: identically distributed variants get "no
    /// detectable difference" in at least 95% of seeded trials, at the repetitions and
    /// run-to-run spreads lab compare sees.
    #[test]
    fn identical_variants_are_rarely_called_different() {
        let rule = Rule::default();
        for (n, cv) in [(5, 0.1), (5, 0.5), (6, 0.3), (10, 0.3), (5, 1.0)] {
            let rate = false_verdict_rate(n, cv, &rule, 400, 7 + n as u64);
            assert!(rate <= 0.05, "n {n}, cv {cv}: {rate}");
        }
    }

    #[test]
    fn the_rank_test_is_exact_for_small_groups() {
        // Completely separated groups of 5: 2 of the 252 assignments are as extreme.
        let p = rank_test_p(&[1.0, 2.0, 3.0, 4.0, 5.0], &[6.0, 7.0, 8.0, 9.0, 10.0], 1);
        assert!((p - 2.0 / 252.0).abs() < 1e-12, "{p}");
        // Interleaved groups: nothing to see.
        let p = rank_test_p(&[1.0, 3.0, 5.0, 7.0, 9.0], &[2.0, 4.0, 6.0, 8.0, 10.0], 1);
        assert!(p > 0.5, "{p}");
        assert_eq!(binomial(10, 5), 252);
        assert_eq!(binomial(20, 10), 184_756);
    }

    #[test]
    fn a_twofold_shift_is_found_both_ways() {
        let rule = Rule::default();
        let mut rng = SmallRng::seed_from_u64(3);
        let mut found = (0, 0);
        for _ in 0..50 {
            let base = sample(&mut rng, 6, 1000.0, 0.2);
            let half = sample(&mut rng, 6, 500.0, 0.2);
            let double = sample(&mut rng, 6, 2000.0, 0.2);
            found.0 += usize::from(compare("p99", &base, &half, &rule).verdict == Verdict::Better);
            found.1 += usize::from(compare("p99", &base, &double, &rule).verdict == Verdict::Worse);
        }
        assert!(found.0 >= 45 && found.1 >= 45, "{found:?}");
    }

    #[test]
    fn a_verdict_the_halves_do_not_share_is_unstable() {
        let rule = Rule::default();
        // Rounds 1, 3, 5 (odd, index 0, 2, 4) much lower; rounds 2, 4, 6 the same.
        let base = [100.0, 100.0, 101.0, 99.0, 100.0, 100.0];
        let variant = [50.0, 100.0, 50.0, 99.5, 50.0, 100.5];
        let c = compare("p99", &base, &variant, &rule);
        assert_eq!(c.halves.1, 1.0, "{c:?}");
        assert_ne!(c.verdict, Verdict::Better, "{c:?}");
        // The same effect in every round is stable.
        let steady = [50.0, 51.0, 50.5, 49.5, 50.0, 50.2];
        let c = compare("p99", &base, &steady, &rule);
        assert_eq!(c.verdict, Verdict::Better, "{c:?}");
        assert!(c.hi < 1.0 && c.ratio < 0.6, "{c:?}");
    }

    #[test]
    fn an_effect_below_the_minimum_is_no_difference() {
        let rule = Rule::default();
        let base = [100.0, 100.1, 99.9, 100.0, 100.05];
        let variant = [98.0, 98.1, 97.9, 98.0, 98.05]; // 2% lower, very tight
        let c = compare("p99", &base, &variant, &rule);
        assert!(c.hi < 1.0, "the interval excludes 1: {c:?}");
        assert_eq!(c.verdict, Verdict::NoDifference);
    }

    #[test]
    fn the_same_values_give_the_same_interval() {
        let rule = Rule::default();
        let base = [10.0, 12.0, 9.0, 14.0, 11.0];
        let variant = [8.0, 9.5, 7.0, 12.0, 8.5];
        assert_eq!(
            compare("e2e p99", &base, &variant, &rule),
            compare("e2e p99", &base, &variant, &rule)
        );
        assert_eq!(
            compare("x", &[1.0], &variant, &rule).verdict,
            Verdict::TooFew
        );
    }

    #[test]
    fn the_detectable_effect_shrinks_with_the_spread() {
        let rule = Rule::default();
        let tight = detectable_effect(5, 0.05, &rule, 100, 1);
        let loose = detectable_effect(5, 0.5, &rule, 100, 1);
        assert!(tight.is_some(), "{tight:?}");
        assert!(loose.is_none() || loose > tight, "{tight:?} {loose:?}");
        assert!(cv(&[1.0, 1.0, 1.0]) == 0.0 && cv(&[1.0, 3.0]) > 0.5);
    }
}
