//! The open-loop schedule: when each symbol's next tick is due.
//!
//! A symbol without a rate profile ticks at its configured rate with a fixed period and
//! a seeded random phase. A symbol with one (`arrivals = "poisson"`, a `ramp`,
//! `bursts`) ticks where the integral of its rate, Λ(t), reaches the next mark: marks
//! one apart (from a seeded phase) for even arrivals, exponential gaps (seeded) for a
//! Poisson process; the rate is linear within each segment of the profile, so Λ is
//! quadratic there and its inverse a closed form. The schedule merges all symbols in
//! time order through a binary heap sized at start. Times are picoseconds from the
//! start of the run, so even 10⁸ ticks/s keep their rate exactly over hours. `next_due`
//! never allocates.

use common::config::{Arrivals, Config, RateSegment};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Merged per-symbol schedules.
pub struct Schedule {
    heap: BinaryHeap<Reverse<(u64, u16)>>,
    /// The fixed period of each symbol without a profile (0 for one with a profile).
    period_ps: Vec<u64>,
    /// The profile of each symbol that has one.
    profiles: Vec<Option<Profile>>,
    end_ps: u64,
}

/// Where a profiled symbol is on its profile.
struct Profile {
    segments: Vec<RateSegment>,
    /// The current segment, and Λ at its start.
    seg: usize,
    seg_lambda: f64,
    /// Λ of the symbol's last tick.
    lambda: f64,
    /// Poisson arrivals draw their gaps from here; even ones step by 1.
    poisson: Option<SmallRng>,
}

impl Profile {
    /// The time (seconds) of the next tick, or `None` past the profile's end.
    #[inline]
    fn next(&mut self) -> Option<f64> {
        self.lambda += match &mut self.poisson {
            // Exponential with mean 1; 1 - u is in (0, 1], so the log is finite.
            Some(rng) => -(1.0 - rng.random::<f64>()).ln(),
            None => 1.0,
        };
        loop {
            let s = self.segments.get(self.seg)?;
            let len = s.t1 - s.t0;
            let area = (s.r0 + s.r1) / 2.0 * len;
            let d = self.lambda - self.seg_lambda;
            if d <= area && len > 0.0 {
                // r0·x + (r1 − r0)·x²/(2·len) = d, solved in the form that stays exact
                // for a flat rate and for falling ones (the root is at least r1² ≥ 0).
                let root = (s.r0 * s.r0 + 2.0 * (s.r1 - s.r0) * d / len)
                    .max(0.0)
                    .sqrt();
                let x = 2.0 * d / (s.r0 + root);
                return Some(s.t0 + x.min(len));
            }
            self.seg_lambda += area;
            self.seg += 1;
        }
    }
}

impl Schedule {
    /// The schedule of `config`'s symbols over `duration_s` seconds.
    pub fn new(config: &Config, duration_s: f64) -> Schedule {
        let mut rng = SmallRng::seed_from_u64(config.seed ^ 0x5eed_5c4e_d01e);
        let mut heap = BinaryHeap::with_capacity(config.symbols.len());
        let mut period_ps = Vec::with_capacity(config.symbols.len());
        let mut profiles = Vec::with_capacity(config.symbols.len());
        for (i, s) in config.symbols.iter().enumerate() {
            if !s.has_profile() {
                let p = ((1e12 / s.rate_per_s).round() as u64).max(1);
                heap.push(Reverse((rng.random_range(0..p), i as u16)));
                period_ps.push(p);
                profiles.push(None);
                continue;
            }
            let phase: f64 = rng.random();
            let mut profile = Profile {
                segments: s.segments(duration_s),
                seg: 0,
                seg_lambda: 0.0,
                lambda: 0.0,
                poisson: (s.arrivals == Arrivals::Poisson)
                    .then(|| SmallRng::seed_from_u64(config.seed ^ 0x9015_5011 ^ (i as u64) << 20)),
            };
            if profile.poisson.is_none() {
                // The first mark at the phase: next() adds 1.
                profile.lambda = phase - 1.0;
            }
            if let Some(t) = profile.next() {
                heap.push(Reverse(((t * 1e12) as u64, i as u16)));
            }
            period_ps.push(0);
            profiles.push(Some(profile));
        }
        Schedule {
            heap,
            period_ps,
            profiles,
            end_ps: (duration_s * 1e12) as u64,
        }
    }

    /// The next (due time in picoseconds, symbol), or `None` once past the end.
    #[inline]
    pub fn next_due(&mut self) -> Option<(u64, u16)> {
        let mut top = self.heap.peek_mut()?;
        let Reverse((due_ps, symbol)) = *top;
        if due_ps >= self.end_ps {
            return None;
        }
        let i = symbol as usize;
        match self.period_ps[i] {
            0 => match self.profiles[i].as_mut().and_then(Profile::next) {
                Some(t) => top.0 .0 = ((t * 1e12) as u64).max(due_ps),
                None => {
                    std::collections::binary_heap::PeekMut::pop(top);
                }
            },
            p => top.0 .0 = due_ps + p,
        }
        Some((due_ps, symbol))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_kept_and_times_ascend() {
        let c = crate::gen::tests::config(0.1);
        let mut s = Schedule::new(&c, 2.0);
        let mut counts = [0u64; 2];
        let mut last = 0;
        while let Some((t, sym)) = s.next_due() {
            assert!(t >= last);
            assert!(t < 2_000_000_000_000);
            last = t;
            counts[sym as usize] += 1;
        }
        // 1000/s and 10/s over 2 s; the phase can cost at most one tick.
        assert!((1999..=2000).contains(&counts[0]), "{counts:?}");
        assert!((19..=20).contains(&counts[1]), "{counts:?}");
    }

    /// Due times of symbol 0 of `c` over `secs`.
    fn times(c: &Config, secs: f64) -> Vec<f64> {
        let mut s = Schedule::new(c, secs);
        let mut out = Vec::new();
        let mut last = 0;
        while let Some((t, sym)) = s.next_due() {
            assert!(t >= last, "times ascend");
            last = t;
            if sym == 0 {
                out.push(t as f64 / 1e12);
            }
        }
        out
    }

    fn count(ts: &[f64], from: f64, to: f64) -> usize {
        ts.iter().filter(|&&t| t >= from && t < to).count()
    }

    #[test]
    fn a_burst_multiplies_the_rate_for_its_length_exactly() {
        let mut c = crate::gen::tests::config(0.1);
        c.symbols[0].bursts = vec![common::config::Burst {
            start_s: 1.0,
            length_s: 0.5,
            multiplier: 10.0,
        }];
        let ts = times(&c, 3.0);
        // 1000/s outside, 10,000/s inside: the phase can move one tick across an edge.
        assert!(
            (999..=1001).contains(&count(&ts, 0.0, 1.0)),
            "{}",
            count(&ts, 0.0, 1.0)
        );
        assert!(
            (4999..=5001).contains(&count(&ts, 1.0, 1.5)),
            "{}",
            count(&ts, 1.0, 1.5)
        );
        assert!(
            (1499..=1501).contains(&count(&ts, 1.5, 3.0)),
            "{}",
            count(&ts, 1.5, 3.0)
        );
        assert!((ts.len() as f64 - c.symbols[0].expected_ticks(3.0)).abs() <= 1.0);
        // Even spacing inside the burst: 100 µs apart.
        let inside: Vec<f64> = ts
            .iter()
            .copied()
            .filter(|&t| t > 1.01 && t < 1.49)
            .collect();
        for w in inside.windows(2) {
            assert!((w[1] - w[0] - 1e-4).abs() < 1e-9, "{w:?}");
        }
    }

    #[test]
    fn a_ramp_rises_linearly_to_the_rate() {
        let mut c = crate::gen::tests::config(0.1);
        c.symbols[0].ramp = Some(common::config::Ramp {
            from: 0.2,
            length_s: 2.0,
        });
        let ts = times(&c, 3.0);
        // ∫ over [0, 1) of 1000 · (0.2 + 0.4 t) = 400; over [1, 2) 800; then 1000/s.
        assert!(
            (399..=401).contains(&count(&ts, 0.0, 1.0)),
            "{}",
            count(&ts, 0.0, 1.0)
        );
        assert!(
            (799..=801).contains(&count(&ts, 1.0, 2.0)),
            "{}",
            count(&ts, 1.0, 2.0)
        );
        assert!(
            (999..=1001).contains(&count(&ts, 2.0, 3.0)),
            "{}",
            count(&ts, 2.0, 3.0)
        );
    }

    #[test]
    fn poisson_arrivals_keep_the_mean_rate_with_exponential_gaps() {
        let mut c = crate::gen::tests::config(0.1);
        c.symbols[0].arrivals = Arrivals::Poisson;
        c.symbols[0].rate_per_s = 10_000.0;
        let ts = times(&c, 10.0);
        // Mean 100,000, standard deviation 316: within 5 of them.
        let n = ts.len() as f64;
        assert!((n - 100_000.0).abs() < 5.0 * 316.3, "{n}");
        // Exponential gaps: the coefficient of variation is 1 (even spacing: 0).
        let gaps: Vec<f64> = ts.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        let cv = var.sqrt() / mean;
        assert!((cv - 1.0).abs() < 0.02, "{cv}");
        // Seeded: the same schedule twice.
        assert_eq!(ts, times(&c, 10.0));
    }

    #[test]
    fn a_profile_with_a_burst_of_poisson_arrivals_counts_what_it_offers() {
        let mut c = crate::gen::tests::config(0.1);
        c.symbols[0].arrivals = Arrivals::Poisson;
        c.symbols[0].rate_per_s = 5_000.0;
        c.symbols[0].bursts = vec![common::config::Burst {
            start_s: 2.0,
            length_s: 1.0,
            multiplier: 8.0,
        }];
        let ts = times(&c, 5.0);
        let inside = count(&ts, 2.0, 3.0) as f64;
        // 40,000 expected, standard deviation 200.
        assert!((inside - 40_000.0).abs() < 1000.0, "{inside}");
        let expected = c.symbols[0].expected_ticks(5.0);
        assert_eq!(expected, 60_000.0);
        assert!(
            (ts.len() as f64 - expected).abs() < 5.0 * expected.sqrt(),
            "{}",
            ts.len()
        );
    }
}
