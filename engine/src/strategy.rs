//! The market maker: quotes `levels` orders on each side around a fair price, widened by
//! the windowed volatility and skewed against the inventory. It owns its part of each
//! symbol's state, [`Position`]: its first-level quotes, the simulated fills against
//! them, the position and the cash; the market itself is the [`Book`].
//!
//! [`decide`] is written once, generic over an allocator: the order intents go into a
//! `Vec` in whatever allocator the scratch strategy supplies (the per-tick arena, or the
//! global heap), so every scratch mode runs the same logic. Hot thread only; it
//! allocates only through the allocator it is given.

use crate::book::Book;
use allocator_api2::alloc::Allocator;
use allocator_api2::vec::Vec;
use common::config::EngineConfig;
use common::tick::{Side, Tick};

/// The strategy's own state for one symbol: its quotes and what they earned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Position in lots (positive long).
    pub position_lots: i64,
    /// Cash from fills, price × 10⁸ × lots (negative after buying).
    pub cash_e8: i128,
    /// Our working bid and ask at the first level (0 = none), for fill simulation.
    pub our_bid_px_e8: i64,
    /// See `our_bid_px_e8`.
    pub our_ask_px_e8: i64,
    /// Size of our first-level quotes.
    pub our_qty_lots: u32,
    /// Lots filled against our quotes.
    pub filled_lots: u64,
}

impl Position {
    /// A trade that reaches our price fills our first-level quote.
    #[inline]
    pub fn fill(&mut self, tick: &Tick) {
        let qty = tick.last_qty_lots.min(self.our_qty_lots) as i64;
        if qty == 0 {
            return;
        }
        match tick.side {
            // An aggressive seller hits bids at or above its price: ours if we bid there.
            Side::Sell if self.our_bid_px_e8 > 0 && tick.last_px_e8 <= self.our_bid_px_e8 => {
                self.position_lots += qty;
                self.cash_e8 -= self.our_bid_px_e8 as i128 * qty as i128;
                self.filled_lots += qty as u64;
            }
            Side::Buy if self.our_ask_px_e8 > 0 && tick.last_px_e8 >= self.our_ask_px_e8 => {
                self.position_lots -= qty;
                self.cash_e8 += self.our_ask_px_e8 as i128 * qty as i128;
                self.filled_lots += qty as u64;
            }
            _ => {}
        }
    }
}

/// Buy or sell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderSide {
    /// Bid.
    Buy,
    /// Offer.
    Sell,
}

/// One order the strategy wants working.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderIntent {
    /// Symbol index.
    pub symbol: u16,
    /// Side.
    pub side: OrderSide,
    /// Level, 0 = closest to the fair price.
    pub level: u8,
    /// Limit price × 10⁸, on the symbol's tick grid.
    pub px_e8: i64,
    /// Size in lots.
    pub qty_lots: u32,
}

impl OrderIntent {
    /// Index of this order's working slot: bids first, then asks.
    pub fn slot(&self, levels: u32) -> usize {
        match self.side {
            OrderSide::Buy => self.level as usize,
            OrderSide::Sell => levels as usize + self.level as usize,
        }
    }
}

/// Strategy parameters, copied out of the configuration once.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    levels: u32,
    quote_lots: u32,
    half_spread_ticks: f64,
    level_step_ticks: f64,
    skew_ticks_per_lot: f64,
    vol_widen: f64,
    max_position_lots: i64,
}

impl Params {
    /// The parameters of `[engine]`.
    pub fn new(c: &EngineConfig) -> Params {
        Params {
            levels: c.levels,
            quote_lots: c.quote_lots,
            half_spread_ticks: c.half_spread_ticks as f64,
            level_step_ticks: c.level_step_ticks as f64,
            skew_ticks_per_lot: c.skew_ticks_per_lot,
            vol_widen: c.vol_widen,
            max_position_lots: c.max_position_lots,
        }
    }

    /// Levels per side.
    pub fn levels(&self) -> u32 {
        self.levels
    }
}

/// The orders to keep working for `symbol` after its latest tick (`book`), bids then
/// asks. A side whose position limit is reached is not quoted. Records the first-level
/// quotes in `s` for fill simulation.
#[inline]
pub fn decide<A: Allocator>(
    symbol: u16,
    book: &Book,
    s: &mut Position,
    p: &Params,
    alloc: A,
) -> Vec<OrderIntent, A> {
    let mut out = Vec::with_capacity_in(2 * p.levels as usize, alloc);
    let tick = book.tick_e8 as f64;
    // Fair price: the microprice pulled a little towards the window mean.
    let fair = 0.8 * book.microprice_e8() + 0.2 * book.mean_mid_e8();
    let half = (p.half_spread_ticks + p.vol_widen * book.volatility_ticks()) * tick;
    let skew = -p.skew_ticks_per_lot * s.position_lots as f64 * tick;
    let center = fair + skew;
    let can_buy = s.position_lots < p.max_position_lots;
    let can_sell = s.position_lots > -p.max_position_lots;
    s.our_bid_px_e8 = 0;
    s.our_ask_px_e8 = 0;
    s.our_qty_lots = p.quote_lots;
    for level in 0..p.levels {
        let offset = half + level as f64 * p.level_step_ticks * tick;
        let qty_lots = p.quote_lots * (level + 1);
        if can_buy {
            // Round bids down and asks up onto the tick grid: never tighter than intended.
            let px = floor_i64((center - offset) / tick) * book.tick_e8;
            if px > 0 {
                out.push(OrderIntent {
                    symbol,
                    side: OrderSide::Buy,
                    level: level as u8,
                    px_e8: px,
                    qty_lots,
                });
                if level == 0 {
                    s.our_bid_px_e8 = px;
                }
            }
        }
        if can_sell {
            let px = ceil_i64((center + offset) / tick) * book.tick_e8;
            out.push(OrderIntent {
                symbol,
                side: OrderSide::Sell,
                level: level as u8,
                px_e8: px,
                qty_lots,
            });
            if level == 0 {
                s.our_ask_px_e8 = px;
            }
        }
    }
    out
}

/// `x.floor() as i64` without the library call that `floor` is on a target without
/// SSE4.1 (`roundsd`): the saturating conversion truncates towards zero, so a value
/// below its truncation steps one down (saturating, like the cast). NaN gives 0 both ways.
#[inline(always)]
fn floor_i64(x: f64) -> i64 {
    let t = x as i64;
    if (t as f64) > x {
        t.saturating_sub(1)
    } else {
        t
    }
}

/// `x.ceil() as i64`; see [`floor_i64`].
#[inline(always)]
fn ceil_i64(x: f64) -> i64 {
    let t = x as i64;
    if (t as f64) < x {
        t.saturating_add(1)
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use allocator_api2::alloc::Global;
    use common::tick::Tick;

    fn book() -> Book {
        let mut b = Book::new(100, 8);
        b.on_tick(&Tick {
            bid_px_e8: 10_000,
            ask_px_e8: 10_200,
            bid_qty_lots: 5,
            ask_qty_lots: 5,
            ..Tick::default()
        });
        b
    }

    fn params() -> Params {
        Params::new(&EngineConfig {
            levels: 3,
            quote_lots: 10,
            half_spread_ticks: 1,
            level_step_ticks: 2,
            skew_ticks_per_lot: 0.5,
            vol_widen: 0.0,
            max_position_lots: 100,
            ..EngineConfig::default()
        })
    }

    #[test]
    fn quotes_levels_around_fair_on_the_grid() {
        let (b, mut s) = (book(), Position::default());
        let o = decide(0, &b, &mut s, &params(), Global);
        assert_eq!(o.len(), 6);
        let bids: std::vec::Vec<i64> = o
            .iter()
            .filter(|i| i.side == OrderSide::Buy)
            .map(|i| i.px_e8)
            .collect();
        let asks: std::vec::Vec<i64> = o
            .iter()
            .filter(|i| i.side == OrderSide::Sell)
            .map(|i| i.px_e8)
            .collect();
        // fair = 10_100, half = 100, step = 200.
        assert_eq!(bids, [10_000, 9_800, 9_600]);
        assert_eq!(asks, [10_200, 10_400, 10_600]);
        assert!(o.iter().all(|i| i.px_e8 % 100 == 0));
        assert_eq!(o.iter().map(|i| i.qty_lots).max(), Some(30));
        assert_eq!((s.our_bid_px_e8, s.our_ask_px_e8), (10_000, 10_200));
    }

    #[test]
    fn inventory_skews_and_limits() {
        let (b, mut s) = (book(), Position::default());
        s.position_lots = 4; // long: lean down by 2 ticks
        let o = decide(0, &b, &mut s, &params(), Global);
        assert_eq!(o[0].px_e8, 9_800);
        assert_eq!(o[1].px_e8, 10_000);
        s.position_lots = 100; // at the limit: no more bids
        let o = decide(0, &b, &mut s, &params(), Global);
        assert!(o.iter().all(|i| i.side == OrderSide::Sell));
        assert_eq!(s.our_bid_px_e8, 0);
    }

    #[test]
    fn trades_fill_our_quotes_and_move_the_position() {
        let mut s = Position {
            our_bid_px_e8: 99,
            our_ask_px_e8: 101,
            our_qty_lots: 5,
            ..Position::default()
        };
        let trade = |side, px, qty| Tick {
            kind: common::tick::TickKind::Trade,
            side,
            last_px_e8: px,
            last_qty_lots: qty,
            ..Tick::default()
        };
        s.fill(&trade(Side::Sell, 99, 3)); // hits our bid
        assert_eq!(s.position_lots, 3);
        assert_eq!(s.cash_e8, -297);
        s.fill(&trade(Side::Sell, 100, 3)); // above our bid: not ours
        assert_eq!(s.position_lots, 3);
        s.fill(&trade(Side::Buy, 102, 9)); // lifts our ask, capped at our size
        assert_eq!(s.position_lots, -2);
        assert_eq!(s.cash_e8, -297 + 505);
        assert_eq!(s.filled_lots, 8);
    }

    #[test]
    fn floor_and_ceil_match_the_library() {
        let mut xs = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            i64::MAX as f64,
            i64::MIN as f64,
            -9.223_372_036_854_777e18,
            4_503_599_627_370_495.5,
            -4_503_599_627_370_495.5,
        ];
        let mut bits = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..100_000 {
            bits = bits.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            xs.push(f64::from_bits(bits));
            xs.push((bits >> 11) as f64 / 1024.0 - 4e12); // prices in ticks, with fractions
        }
        for x in xs {
            assert_eq!(floor_i64(x), x.floor() as i64, "floor {x:e}");
            assert_eq!(ceil_i64(x), x.ceil() as i64, "ceil {x:e}");
        }
    }

    #[test]
    fn slots_are_distinct() {
        let (b, mut s) = (book(), Position::default());
        let o = decide(0, &b, &mut s, &params(), Global);
        let mut slots: std::vec::Vec<usize> = o.iter().map(|i| i.slot(3)).collect();
        slots.sort_unstable();
        assert_eq!(slots, [0, 1, 2, 3, 4, 5]);
    }
}
