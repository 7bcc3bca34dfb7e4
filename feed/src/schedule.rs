//! The open-loop schedule: when each symbol's next tick is due.
//!
//! Each symbol ticks at its configured rate with a fixed period and a seeded random
//! phase; the schedule merges them in time order through a binary heap sized at start.
//! Times are picoseconds from the start of the run, so even 10⁸ ticks/s keep their
//! rate exactly over hours. `next` never allocates.

use common::config::Config;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Merged per-symbol schedules.
pub struct Schedule {
    heap: BinaryHeap<Reverse<(u64, u16)>>,
    period_ps: Vec<u64>,
    end_ps: u64,
}

impl Schedule {
    /// The schedule of `config`'s symbols over `duration_s` seconds.
    pub fn new(config: &Config, duration_s: f64) -> Schedule {
        let mut rng = SmallRng::seed_from_u64(config.seed ^ 0x5eed_5c4e_d01e);
        let period_ps: Vec<u64> = config
            .symbols
            .iter()
            .map(|s| ((1e12 / s.rate_per_s).round() as u64).max(1))
            .collect();
        let mut heap = BinaryHeap::with_capacity(period_ps.len());
        for (i, &p) in period_ps.iter().enumerate() {
            heap.push(Reverse((rng.random_range(0..p), i as u16)));
        }
        Schedule {
            heap,
            period_ps,
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
        top.0 .0 = due_ps + self.period_ps[symbol as usize];
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
}
