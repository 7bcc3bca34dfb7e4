//! The market as the engine sees it, per symbol: top of book, microprice, and a moving
//! window of mids (mean and volatility). The strategy's own part (its quotes and
//! position) is [`crate::strategy::Position`]; the orders working at the venue are the
//! decider's ([`crate::decider`]).
//!
//! All memory is allocated when the book is created (the window is a fixed ring);
//! updating it per tick never allocates. Hot thread only.

use common::tick::Tick;

/// One symbol's book.
pub struct Book {
    /// Price increment × 10⁸.
    pub tick_e8: i64,
    /// Best bid × 10⁸.
    pub bid_px_e8: i64,
    /// Best ask × 10⁸.
    pub ask_px_e8: i64,
    /// Size at the best bid, lots.
    pub bid_qty_lots: u32,
    /// Size at the best ask, lots.
    pub ask_qty_lots: u32,
    window: Box<[i64]>,
    head: usize,
    len: usize,
    sum: i128,
    /// Sum of squared mid changes (in ticks²) over the window.
    sq_diff_sum: f64,
}

impl Book {
    /// An empty book of a symbol with price increment `tick_e8` and a window of `window`
    /// mids.
    pub fn new(tick_e8: i64, window: usize) -> Book {
        Book {
            tick_e8: tick_e8.max(1),
            bid_px_e8: 0,
            ask_px_e8: 0,
            bid_qty_lots: 0,
            ask_qty_lots: 0,
            window: vec![0; window.max(2)].into_boxed_slice(),
            head: 0,
            len: 0,
            sum: 0,
            sq_diff_sum: 0.0,
        }
    }

    /// Applies a tick: top of book, and its mid into the window.
    #[inline]
    pub fn on_tick(&mut self, tick: &Tick) {
        self.bid_px_e8 = tick.bid_px_e8;
        self.ask_px_e8 = tick.ask_px_e8;
        self.bid_qty_lots = tick.bid_qty_lots;
        self.ask_qty_lots = tick.ask_qty_lots;
        self.push_mid(tick.mid_px_e8());
    }

    fn push_mid(&mut self, mid: i64) {
        let n = self.window.len();
        let tick = self.tick_e8 as f64;
        // Ring indices wrap with a compare, not `% n`: the window length is only known
        // at run time, so `%` is a 64-bit division (tens of cycles) three times a tick.
        let next = if self.head + 1 == n { 0 } else { self.head + 1 };
        if self.len > 0 {
            let last = if self.head == 0 { n - 1 } else { self.head - 1 };
            let prev = self.window[last];
            let d = (mid - prev) as f64 / tick;
            self.sq_diff_sum += d * d;
        }
        if self.len == n {
            // Drop the oldest mid and the change that followed it.
            let oldest = self.window[self.head];
            let d = (self.window[next] - oldest) as f64 / tick;
            self.sq_diff_sum = (self.sq_diff_sum - d * d).max(0.0);
            self.sum -= oldest as i128;
        } else {
            self.len += 1;
        }
        self.window[self.head] = mid;
        self.sum += mid as i128;
        self.head = next;
    }

    /// Mean mid over the window × 10⁸ (0 before the first tick).
    pub fn mean_mid_e8(&self) -> f64 {
        if self.len == 0 {
            0.0
        } else {
            // `i128 as f64` is a library call (`__floattidf`); a sum that fits an `i64`
            // (any realistic one) converts in one instruction to the same value: both
            // round the exact integer to the nearest `f64`.
            let sum = match i64::try_from(self.sum) {
                Ok(sum) => sum as f64,
                Err(_) => self.sum as f64,
            };
            sum / self.len as f64
        }
    }

    /// Root mean square of the mid's moves over the window, in ticks.
    pub fn volatility_ticks(&self) -> f64 {
        if self.len < 2 {
            0.0
        } else {
            (self.sq_diff_sum / (self.len - 1) as f64).sqrt()
        }
    }

    /// Size-weighted mid (microprice) × 10⁸.
    pub fn microprice_e8(&self) -> f64 {
        let (bq, aq) = (self.bid_qty_lots as f64, self.ask_qty_lots as f64);
        if bq + aq == 0.0 {
            return (self.bid_px_e8 + self.ask_px_e8) as f64 / 2.0;
        }
        (self.bid_px_e8 as f64 * aq + self.ask_px_e8 as f64 * bq) / (bq + aq)
    }

    /// Forgets the market (a new feed's is not the old one's): top of book and window
    /// empty, nothing allocated or freed.
    pub fn clear(&mut self) {
        self.bid_px_e8 = 0;
        self.ask_px_e8 = 0;
        self.bid_qty_lots = 0;
        self.ask_qty_lots = 0;
        self.head = 0;
        self.len = 0;
        self.sum = 0;
        self.sq_diff_sum = 0.0;
    }

    /// Mids the window holds when full.
    pub fn window_capacity(&self) -> usize {
        self.window.len()
    }

    /// Number of mids in the window.
    pub fn window_len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(bid: i64, ask: i64) -> Tick {
        Tick {
            bid_px_e8: bid,
            ask_px_e8: ask,
            bid_qty_lots: 1,
            ask_qty_lots: 1,
            ..Tick::default()
        }
    }

    #[test]
    fn window_mean_and_volatility_match_a_direct_computation() {
        let mut s = Book::new(10, 4);
        let mids = [100, 120, 110, 150, 130, 130, 90];
        for &m in &mids {
            s.on_tick(&quote(m - 10, m + 10));
        }
        let last4 = &mids[3..];
        let mean = last4.iter().sum::<i64>() as f64 / 4.0;
        assert_eq!(s.mean_mid_e8(), mean);
        let diffs: Vec<f64> = last4
            .windows(2)
            .map(|w| (w[1] - w[0]) as f64 / 10.0)
            .collect();
        let rms = (diffs.iter().map(|d| d * d).sum::<f64>() / 3.0).sqrt();
        assert!(
            (s.volatility_ticks() - rms).abs() < 1e-9,
            "{} vs {rms}",
            s.volatility_ticks()
        );
        assert_eq!(s.window_len(), 4);
    }

    #[test]
    fn mean_of_a_sum_beyond_i64_is_exact() {
        let mut s = Book::new(1, 4);
        let mid = 4_000_000_000_000_000_000i64; // four of them overflow an i64
        for _ in 0..4 {
            s.on_tick(&quote(mid - 1, mid + 1));
        }
        assert_eq!(s.mean_mid_e8(), (4 * mid as i128) as f64 / 4.0);
        assert_eq!(s.window_len(), 4);
    }

    #[test]
    fn microprice_leans_to_the_thin_side() {
        let mut s = Book::new(1, 4);
        let mut t = quote(100, 110);
        t.bid_qty_lots = 9;
        t.ask_qty_lots = 1;
        s.on_tick(&t);
        assert!(s.microprice_e8() > 105.0);
    }
}
