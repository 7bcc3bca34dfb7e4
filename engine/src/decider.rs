//! The per-tick decision: book update, strategy, order encoding and hand-off.
//!
//! Per symbol the decider holds the [`Book`] (the market), the strategy's [`Position`]
//! (its quotes and fills) and its own part: the orders working at the venue, one slot
//! per level and side, so that only a changed quote becomes an order message.
//!
//! [`Decider::handle`] is generic over the scratch allocator, so the heap, arena and
//! pool modes run the same code. Apart from what it asks of that allocator it does not
//! allocate; it never blocks (a full order channel drops and counts the order). Hot
//! thread only.

use crate::book::Book;
use crate::order::{self, OrderMsg};
use crate::strategy::{self, Params, Position};
use allocator_api2::alloc::Allocator;
use common::config::Config;
use common::hop::HopTx;
use common::tick::{Tick, TickKind, PX_SCALE};

/// What the engine holds for one symbol.
struct Symbol {
    book: Book,
    position: Position,
    /// Working (price, lots) per order slot (`2 × levels`), to send only changes.
    working: Box<[(i64, u32)]>,
}

/// Warming: whether the symbol of `book` must not quote yet (its window is not full);
/// records the window at its first quote in `first_quote`, and ends the warming once
/// every symbol has quoted.
#[cold]
#[inline(never)]
fn warm_holds(warming: &mut bool, first_quote: &mut [u32], book: &Book, symbol: u16) -> bool {
    if book.window_len() < book.window_capacity() {
        return true;
    }
    let i = symbol as usize;
    if first_quote[i] == 0 {
        first_quote[i] = book.window_len() as u32;
        if first_quote.iter().all(|&w| w > 0) {
            *warming = false;
        }
    }
    false
}

/// Everything the hot thread knows between ticks.
pub struct Decider {
    symbols: Vec<Symbol>,
    names: Vec<Box<[u8]>>,
    params: Params,
    orders_tx: HopTx<OrderMsg>,
    msg_seq: u64,
    /// Orders handed to the cold thread.
    pub orders: u64,
    /// Orders dropped because the channel was full (or a message did not fit).
    pub orders_dropped: u64,
    /// Ticks naming a symbol the configuration does not have.
    pub unknown_symbols: u64,
    /// Ticks below this sequence number are skipped: a snapshot had them (0: none).
    skip_below: u64,
    /// Ticks skipped for it.
    pub skipped: u64,
    /// Warming after a snapshot: skip what it covered, quote a symbol only once its
    /// window is full. Off once every symbol has quoted past the snapshot.
    warming: bool,
    /// The window's length at each symbol's first quote (0: not quoted yet).
    first_quote_window: Box<[u32]>,
    /// Snapshots warmed from: at start and after each new feed session.
    pub warmups: u64,
}

impl Decider {
    /// State for every configured symbol; orders go to `orders_tx`.
    pub fn new(config: &Config, orders_tx: HopTx<OrderMsg>) -> Decider {
        let levels = config.engine.levels as usize;
        Decider {
            symbols: config
                .symbols
                .iter()
                .map(|s| {
                    let tick_e8 = (s.tick_size * PX_SCALE as f64).round() as i64;
                    Symbol {
                        book: Book::new(tick_e8, config.engine.window),
                        position: Position::default(),
                        working: vec![(0, 0); 2 * levels].into_boxed_slice(),
                    }
                })
                .collect(),
            names: config
                .symbols
                .iter()
                .map(|s| s.name.trim().as_bytes().into())
                .collect(),
            params: Params::new(&config.engine),
            orders_tx,
            msg_seq: 0,
            orders: 0,
            orders_dropped: 0,
            unknown_symbols: 0,
            skip_below: 0,
            skipped: 0,
            warming: false,
            first_quote_window: vec![0; config.symbols.len()].into_boxed_slice(),
            warmups: 0,
        }
    }

    /// Handles one tick with scratch memory from `alloc`: updates the symbol's state,
    /// decides the quotes, and encodes and hands off an order for each quote that changed.
    #[inline]
    pub fn handle<A: Allocator + Copy>(&mut self, tick: &Tick, alloc: A) {
        let symbol = tick.symbol;
        // After a snapshot only (one load and branch per tick otherwise).
        if self.warming && self.warm_skips(tick) {
            return;
        }
        let Some(state) = self.symbols.get_mut(symbol as usize) else {
            self.unknown_symbols += 1;
            return;
        };
        if tick.kind == TickKind::Trade {
            state.position.fill(tick);
        }
        state.book.on_tick(tick);
        if self.warming
            && warm_holds(
                &mut self.warming,
                &mut self.first_quote_window,
                &state.book,
                symbol,
            )
        {
            return;
        }
        let intents = strategy::decide(
            symbol,
            &state.book,
            &mut state.position,
            &self.params,
            alloc,
        );
        let levels = self.params.levels();
        for intent in intents.iter() {
            let slot = intent.slot(levels);
            let want = (intent.px_e8, intent.qty_lots);
            if state.working[slot] == want {
                continue;
            }
            state.working[slot] = want;
            self.msg_seq += 1;
            let msg = order::encode(
                intent,
                &self.names[symbol as usize],
                self.msg_seq,
                self.msg_seq,
                alloc,
            );
            let sent = match msg {
                Some(m) => self.orders_tx.try_send(m.to_msg()).is_ok(),
                None => false,
            };
            if sent {
                self.orders += 1;
            } else {
                self.orders_dropped += 1;
            }
        }
    }

    /// Warms the books from `ticks` (a snapshot of the feed's history: each symbol's
    /// latest ticks, oldest first), without quoting or filling; the ring's ticks up to
    /// `covered_through` are skipped from now on, and a symbol quotes only once its
    /// window is full. Returns how many symbols' windows the snapshot filled.
    pub fn warm(&mut self, ticks: &[Tick], covered_through: u64) -> u64 {
        self.warmups += 1;
        self.first_quote_window.fill(0);
        for t in ticks {
            if let Some(state) = self.symbols.get_mut(t.symbol as usize) {
                state.book.on_tick(t);
            }
        }
        self.skip_below = covered_through.saturating_add(1);
        self.warming = true;
        self.symbols
            .iter()
            .filter(|s| s.book.window_len() == s.book.window_capacity())
            .count() as u64
    }

    /// Applies `tick` to its symbol's book and position without deciding: a recovered
    /// tick, or a live one buffered while recovering (see [`crate::recovery`]). A tick
    /// the start-up snapshot covered is skipped.
    #[cold]
    pub fn apply(&mut self, tick: &Tick) {
        if self.warming && tick.seq < self.skip_below {
            return;
        }
        let Some(state) = self.symbols.get_mut(tick.symbol as usize) else {
            self.unknown_symbols += 1;
            return;
        };
        if tick.kind == TickKind::Trade {
            state.position.fill(tick);
        }
        state.book.on_tick(tick);
    }

    /// Warming: whether `tick` is one the snapshot covered (counted, then skipped).
    #[cold]
    #[inline(never)]
    fn warm_skips(&mut self, tick: &Tick) -> bool {
        if tick.seq < self.skip_below {
            self.skipped += 1;
            return true;
        }
        false
    }

    /// The fewest mids in any quoted symbol's window at its first quote after the last
    /// warm-up (0: none quoted).
    pub fn first_quote_window_min(&self) -> u64 {
        self.first_quote_window
            .iter()
            .filter(|&&w| w > 0)
            .min()
            .copied()
            .unwrap_or(0) as u64
    }

    /// A new feed session: its sequence numbers start again at 1, so nothing is skipped,
    /// and its market is not the old feed's, so every book starts empty (positions and
    /// working orders stay: they are the engine's own). Allocates nothing.
    pub fn new_session(&mut self) {
        self.skip_below = 0;
        self.warming = false;
        for s in self.symbols.iter_mut() {
            s.book.clear();
        }
    }

    /// The book of `symbol`, if configured.
    pub fn book(&self, symbol: u16) -> Option<&Book> {
        self.symbols.get(symbol as usize).map(|s| &s.book)
    }

    /// Total position over all symbols, lots (long minus short).
    pub fn net_position_lots(&self) -> i64 {
        self.symbols.iter().map(|s| s.position.position_lots).sum()
    }

    /// Lots filled against our quotes over all symbols.
    pub fn filled_lots(&self) -> u64 {
        self.symbols.iter().map(|s| s.position.filled_lots).sum()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::hot::Scratch;
    use allocator_api2::alloc::Global;
    use common::alloc::thread_counts;
    use common::hop::{self, ChannelKind, HopRx};
    use common::pool::Pool;

    /// The shipped default (its ring path unused here).
    pub(crate) fn config() -> Config {
        let text = common::config::edit::Edit::new(common::config::DEFAULT_TOML)
            .set("ring.path", std::env::temp_dir().join("unused.ring"))
            .finish()
            .unwrap();
        Config::parse(&text, std::path::Path::new("default.toml"), &[0, 1]).unwrap()
    }

    fn quote(symbol: u16, mid: i64) -> Tick {
        Tick {
            symbol,
            bid_px_e8: mid - 50_000_000,
            ask_px_e8: mid + 50_000_000,
            bid_qty_lots: 3,
            ask_qty_lots: 4,
            ..Tick::default()
        }
    }

    /// The tick stream of the allocation tests: five symbols, a new price every tick.
    fn stream(n: i64, from: i64) -> impl Iterator<Item = Tick> {
        (0..n).map(move |i| quote((i % 5) as u16, (from + i) * PX_SCALE))
    }

    fn messages(rx: &mut HopRx<OrderMsg>) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|m| m.as_bytes().to_vec())
            .collect()
    }

    /// Global allocator calls per tick over `n` ticks after one warm-up tick. The test
    /// build's global allocator is the counting wrapper (see lib.rs); its counts are per
    /// thread, so tests running beside this one do not disturb them.
    fn calls_per_tick(n: i64, mut handle: impl FnMut(&Tick)) -> f64 {
        handle(&quote(1, 3_300 * PX_SCALE));
        let before = thread_counts();
        for t in stream(n, 3_400) {
            handle(&t);
        }
        thread_counts().since(&before).calls() as f64 / n as f64
    }

    fn pool_of(scratch: &Scratch) -> &Pool {
        match scratch {
            Scratch::Pool(p) => p,
            _ => unreachable!("a pool scratch"),
        }
    }

    #[test]
    fn a_new_feed_session_empties_the_books_without_allocating_and_a_new_snapshot_warms_them() {
        let c = config();
        let window = c.engine.window as u64;
        let (tx, _rx) = hop::bounded(ChannelKind::Rtrb, 1 << 14);
        let mut d = Decider::new(&c, tx);
        for t in stream(5 * window as i64, 3_000) {
            d.handle(&t, Global);
        }
        assert_eq!(d.book(0).unwrap().window_len() as u64, window);
        let position = d.net_position_lots();
        let before = thread_counts();
        d.new_session();
        assert_eq!(thread_counts().since(&before).calls(), 0);
        assert!((0..5).all(|s| d.book(s).unwrap().window_len() == 0));
        assert_eq!(d.book(0).unwrap().mean_mid_e8(), 0.0);
        assert_eq!(
            d.net_position_lots(),
            position,
            "the position is the engine's own"
        );
        // The new feed's snapshot: symbol 0's window full again.
        let snap: Vec<Tick> = (1..=window)
            .map(|seq| Tick {
                seq,
                ..quote(0, (5_000 + seq as i64) * PX_SCALE)
            })
            .collect();
        assert_eq!(d.warm(&snap, window), 1);
        assert_eq!(d.warmups, 1);
        assert_eq!(d.book(0).unwrap().window_len() as u64, window);
    }

    #[test]
    fn a_warmed_decider_skips_what_the_snapshot_covered_and_quotes_with_a_full_window() {
        let c = config();
        let window = c.engine.window as u64;
        let (tx, mut rx) = hop::bounded(ChannelKind::Rtrb, 1 << 14);
        let mut d = Decider::new(&c, tx);
        // A snapshot of symbol 0's last `window` ticks (seq 1..=window) and none of 1's.
        let snap: Vec<Tick> = (1..=window)
            .map(|seq| Tick {
                seq,
                ..quote(0, (3_000 + seq as i64) * PX_SCALE)
            })
            .collect();
        assert_eq!(d.warm(&snap, window), 1, "symbol 0's window is full");
        assert!(messages(&mut rx).is_empty(), "warming sends nothing");
        // The ring replays the covered ticks: skipped.
        for t in &snap {
            d.handle(t, Global);
        }
        assert_eq!(d.skipped, window);
        assert!(messages(&mut rx).is_empty());
        // Symbol 0 quotes on its first new tick; symbol 1 only once its window is full.
        let mut seq = window;
        let mut next = |symbol: u16, px: i64| {
            seq += 1;
            Tick {
                seq,
                ..quote(symbol, px * PX_SCALE)
            }
        };
        d.handle(&next(0, 3_100), Global);
        assert!(!messages(&mut rx).is_empty(), "symbol 0 quotes at once");
        for i in 0..window - 1 {
            d.handle(&next(1, 200 + i as i64), Global);
        }
        assert!(
            messages(&mut rx).is_empty(),
            "symbol 1 waits for a full window"
        );
        d.handle(&next(1, 300), Global);
        assert!(
            !messages(&mut rx).is_empty(),
            "symbol 1 quotes with a full window"
        );
        assert_eq!(d.first_quote_window_min(), window);
        // A new session: nothing is skipped any more.
        d.new_session();
        d.handle(
            &Tick {
                seq: 1,
                ..quote(0, 3_200 * PX_SCALE)
            },
            Global,
        );
        assert_eq!(d.skipped, window);
    }

    #[test]
    fn sends_only_changed_quotes_and_same_bytes_in_every_mode() {
        let c = config();
        let (tx, mut rx) = hop::bounded(ChannelKind::Rtrb, 1024);
        let mut heap = Decider::new(&c, tx);
        let (tx2, mut rx2) = hop::bounded(ChannelKind::Rtrb, 1024);
        let mut arena = Decider::new(&c, tx2);
        let bump = bumpalo::Bump::with_capacity(1 << 16);
        let (tx3, mut rx3) = hop::bounded(ChannelKind::Rtrb, 1024);
        let mut pooled = Decider::new(&c, tx3);
        let scratch = Scratch::pool(&c.engine);
        let pool = pool_of(&scratch);
        for t in [
            quote(0, 65_000 * PX_SCALE),
            quote(0, 65_000 * PX_SCALE),
            quote(0, 65_010 * PX_SCALE),
        ] {
            heap.handle(&t, Global);
            arena.handle(&t, &bump);
            pooled.handle(&t, pool);
        }
        // First tick: 6 new orders; the repeat changes nothing; the move re-prices all 6.
        assert_eq!(heap.orders, 12);
        assert_eq!(arena.orders, 12);
        assert_eq!(pooled.orders, 12);
        let a = messages(&mut rx);
        assert_eq!(a, messages(&mut rx2));
        assert_eq!(a, messages(&mut rx3));
        assert!(a.iter().all(|m| order::verify(m).is_ok()));
        assert_eq!((pool.in_use(), pool.fallbacks()), (0, 0));
    }

    /// The acceptance test: after one warm-up tick, heap mode calls the global allocator
    /// every tick and arena and pool modes never do, with byte-identical orders.
    #[test]
    fn global_allocations_per_tick_by_mode() {
        const TICKS: i64 = 1000;
        let c = config();
        let (tx, mut heap_rx) = hop::bounded(ChannelKind::Rtrb, 1 << 14);
        let mut d = Decider::new(&c, tx);
        let heap = calls_per_tick(TICKS, |t| d.handle(t, Global));

        let (tx, mut arena_rx) = hop::bounded(ChannelKind::Rtrb, 1 << 14);
        let mut d = Decider::new(&c, tx);
        let mut bump = bumpalo::Bump::with_capacity(1 << 16);
        let arena = calls_per_tick(TICKS, |t| {
            bump.reset();
            d.handle(t, &bump);
        });

        let (tx, mut pool_rx) = hop::bounded(ChannelKind::Rtrb, 1 << 14);
        let mut d = Decider::new(&c, tx);
        let scratch = Scratch::pool(&c.engine);
        let pool = pool_of(&scratch);
        let pooled = calls_per_tick(TICKS, |t| d.handle(t, pool));

        assert!(heap >= 1.0, "heap: {heap} global allocations per tick");
        assert_eq!(arena, 0.0, "arena");
        assert_eq!(pooled, 0.0, "pool");

        let h = messages(&mut heap_rx);
        assert!(h.len() as i64 > TICKS, "{} orders", h.len());
        assert!(
            h == messages(&mut arena_rx),
            "arena orders differ from heap orders"
        );
        assert!(
            h == messages(&mut pool_rx),
            "pool orders differ from heap orders"
        );
        let stats = pool.stats();
        assert_eq!((stats.fallbacks, stats.fallbacks_in_use), (0, 0));
        // At most the intents, a body and a message at once.
        assert!(stats
            .classes
            .iter()
            .all(|c| c.in_use == 0 && c.high_water <= 3));
        assert_eq!(stats.classes.iter().map(|c| c.high_water).sum::<u64>(), 3);
    }

    #[test]
    fn a_pool_too_small_falls_back_and_counts_it() {
        let mut c = config();
        c.engine.levels = 16;
        c.engine.pool_blocks = 1;
        let (tx, mut rx) = hop::bounded(ChannelKind::Rtrb, 1 << 14);
        let mut d = Decider::new(&c, tx);
        let scratch = Scratch::pool(&c.engine);
        let pool = pool_of(&scratch);
        let before = thread_counts();
        for t in stream(100, 3_400) {
            d.handle(&t, pool);
        }
        let calls = thread_counts().since(&before).calls();
        // 32 intents (768 bytes) take the one 1024-byte block and each order's body the
        // one 256-byte block; its framed message finds the class empty.
        assert!(d.orders > 1000, "{} orders", d.orders);
        assert_eq!(pool.fallbacks(), d.orders + d.orders_dropped);
        assert_eq!(
            calls,
            pool.fallbacks(),
            "every fallback is a global allocation"
        );
        let stats = pool.stats();
        assert_eq!(stats.fallbacks_in_use, 0);
        assert_eq!(stats.classes[1].high_water, 1);
        assert!(messages(&mut rx).iter().all(|m| order::verify(m).is_ok()));
    }

    #[test]
    fn unknown_symbol_is_counted_not_fatal() {
        let (tx, _rx) = hop::bounded(ChannelKind::Rtrb, 16);
        let mut d = Decider::new(&config(), tx);
        d.handle(&quote(999, 1), Global);
        assert_eq!(d.unknown_symbols, 1);
    }
}
