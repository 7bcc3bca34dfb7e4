//! Seeded synthetic market data: per-symbol random-walk mid prices, quotes and trades.
//!
//! The same seed and configuration give the same sequence of ticks. Generating a tick
//! draws a few random numbers and does integer arithmetic: no allocation, no system
//! call; it runs on the feed's md thread.

use common::config::{Config, SymbolConfig};
use common::tick::{Side, Tick, TickKind, PX_SCALE};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// Book state of one synthetic symbol, in integer ticks of its tick size.
#[derive(Clone, Debug)]
struct SymbolBook {
    mid_ticks: i64,
    spread_ticks: i64,
    tick_e8: i64,
    /// Standard deviation of the mid's move per tick, in ticks.
    sigma_ticks: f64,
}

impl SymbolBook {
    fn new(s: &SymbolConfig) -> SymbolBook {
        let tick_e8 = ((s.tick_size * PX_SCALE as f64).round() as i64).max(1);
        let mid_ticks = ((s.start_px / s.tick_size).round() as i64).max(2);
        let sigma_ticks = s.volatility_bps * 1e-4 * s.start_px / s.tick_size;
        SymbolBook {
            mid_ticks,
            spread_ticks: 1,
            tick_e8,
            sigma_ticks,
        }
    }
}

/// Generates ticks for the configured symbols.
pub struct Generator {
    books: Vec<SymbolBook>,
    rng: SmallRng,
    trade_ratio: f64,
}

impl Generator {
    /// A generator seeded with `config.seed`.
    pub fn new(config: &Config) -> Generator {
        Generator {
            books: config.symbols.iter().map(SymbolBook::new).collect(),
            rng: SmallRng::seed_from_u64(config.seed),
            trade_ratio: config.feed.trade_ratio,
        }
    }

    /// The next tick of symbol `symbol`; stamps and `seq` are left for the publisher.
    #[inline]
    pub fn next_tick(&mut self, symbol: u16) -> Tick {
        let book = &mut self.books[symbol as usize];
        let rng = &mut self.rng;
        let z: f64 = StandardNormal.sample(rng);
        let step = (z * book.sigma_ticks).round() as i64;
        // Keep the book positive: a walk that would cross zero reflects.
        book.mid_ticks = (book.mid_ticks + step).max(book.spread_ticks + 1);
        if rng.random_bool(0.05) {
            book.spread_ticks = rng.random_range(1..=3);
        }
        let bid_ticks = book.mid_ticks - book.spread_ticks / 2;
        let ask_ticks = bid_ticks + book.spread_ticks;
        let mut tick = Tick {
            symbol,
            bid_px_e8: bid_ticks * book.tick_e8,
            ask_px_e8: ask_ticks * book.tick_e8,
            bid_qty_lots: rng.random_range(1..=100),
            ask_qty_lots: rng.random_range(1..=100),
            ..Tick::default()
        };
        if rng.random_bool(self.trade_ratio) {
            tick.kind = TickKind::Trade;
            tick.last_qty_lots = rng.random_range(1..=50);
            if rng.random_bool(0.5) {
                tick.side = Side::Buy;
                tick.last_px_e8 = tick.ask_px_e8;
            } else {
                tick.side = Side::Sell;
                tick.last_px_e8 = tick.bid_px_e8;
            }
        }
        tick
    }

    /// Number of symbols.
    pub fn symbols(&self) -> usize {
        self.books.len()
    }
}

/// The first `n` ticks the feed generates for `config`, each with the time it is due
/// (picoseconds from the start of the run): symbols in the order of the open-loop
/// [`Schedule`](crate::schedule::Schedule), prices from the seeded [`Generator`], stamps
/// and `seq` left at 0 as the generator leaves them for the publisher. For benchmarks
/// and tests; it allocates the vector. Panics if the schedule ends before `n` ticks.
pub fn scheduled(config: &Config, n: usize) -> Vec<(u64, Tick)> {
    let mut generator = Generator::new(config);
    let mut schedule = crate::schedule::Schedule::new(config, config.duration_s);
    (0..n)
        .map(|_| {
            let (due_ps, symbol) = schedule.next_due().expect("the schedule has enough ticks");
            (due_ps, generator.next_tick(symbol))
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn scheduled_is_the_schedule_and_the_generator_in_step() {
        let config = Config::shipped_default();
        let got = scheduled(&config, 2_000);
        let mut generator = Generator::new(&config);
        let mut schedule = crate::schedule::Schedule::new(&config, config.duration_s);
        for (due_ps, tick) in &got {
            let (want_due, symbol) = schedule.next_due().unwrap();
            assert_eq!(*due_ps, want_due);
            assert_eq!(*tick, generator.next_tick(symbol));
        }
        assert!(
            got.windows(2).all(|w| w[0].0 <= w[1].0),
            "due times in order"
        );
        let symbols: std::collections::BTreeSet<u16> = got.iter().map(|(_, t)| t.symbol).collect();
        assert_eq!(
            symbols.len(),
            config.symbols.len(),
            "every symbol has ticks"
        );
    }
    use common::config::edit::Edit;
    use common::config::DEFAULT_TOML;
    use std::path::Path;

    /// The shipped default with two symbols: one fast, one slow with a price near the
    /// tick size (a hard case for the price walk), and `trade_ratio`.
    pub(crate) fn config(trade_ratio: f64) -> Config {
        let text = Edit::new(DEFAULT_TOML)
            .set("seed", 3)
            .set("warmup_s", 0.0)
            .set("duration_s", 1.0)
            .set("feed.trade_ratio", trade_ratio)
            .truncate("symbols", 2)
            .set("symbols[0].name", "A")
            .set("symbols[0].rate_per_s", 1000)
            .set("symbols[0].start_px", 100.0)
            .set("symbols[0].tick_size", 0.01)
            .set("symbols[0].volatility_bps", 5.0)
            .set("symbols[1].name", "B")
            .set("symbols[1].rate_per_s", 10)
            .set("symbols[1].start_px", 0.05)
            .set("symbols[1].tick_size", 0.01)
            .set("symbols[1].volatility_bps", 500.0)
            .finish()
            .unwrap();
        Config::parse(&text, Path::new("t.toml"), &[0, 1]).unwrap()
    }

    #[test]
    fn same_seed_same_ticks() {
        let c = config(0.3);
        let mut a = Generator::new(&c);
        let mut b = Generator::new(&c);
        for i in 0..1000 {
            assert_eq!(a.next_tick(i % 2), b.next_tick(i % 2));
        }
    }

    #[test]
    fn books_are_sane() {
        let c = config(0.3);
        let mut g = Generator::new(&c);
        let mut trades = 0;
        for i in 0..20_000u32 {
            let t = g.next_tick((i % 2) as u16);
            assert!(t.bid_px_e8 > 0, "{t:?}");
            assert!(t.ask_px_e8 > t.bid_px_e8, "{t:?}");
            assert_eq!(t.bid_px_e8 % 1_000_000, 0, "on the 0.01 grid");
            assert!((1..=100).contains(&t.bid_qty_lots));
            match t.kind {
                TickKind::Trade => {
                    trades += 1;
                    assert!(t.last_px_e8 == t.bid_px_e8 || t.last_px_e8 == t.ask_px_e8);
                    assert_ne!(t.side, Side::None);
                    assert!(t.last_qty_lots > 0);
                }
                TickKind::Quote => assert_eq!((t.last_px_e8, t.side), (0, Side::None)),
            }
        }
        // 30% trades: allow a wide statistical margin.
        assert!((5_000..7_000).contains(&trades), "{trades}");
        let mut g = Generator::new(&config(0.0));
        assert!((0..1000).all(|_| g.next_tick(0).kind == TickKind::Quote));
    }
}
