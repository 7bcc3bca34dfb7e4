//! The per-tick decision: symbol state update, strategy, order encoding and hand-off.
//!
//! [`Decider::handle`] is generic over the scratch allocator, so the arena and heap
//! modes run the same code. Apart from what it asks of that allocator it does not
//! allocate; it never blocks (a full order channel drops and counts the order). Hot
//! thread only.

use crate::book::SymbolState;
use crate::order::{self, OrderMsg};
use crate::strategy::{self, Params};
use allocator_api2::alloc::Allocator;
use common::config::Config;
use common::tick::{Tick, PX_SCALE};
use crossbeam_channel::Sender;

/// Everything the hot thread knows between ticks.
pub struct Decider {
    states: Vec<SymbolState>,
    names: Vec<Box<[u8]>>,
    params: Params,
    orders_tx: Sender<OrderMsg>,
    msg_seq: u64,
    /// Orders handed to the cold thread.
    pub orders: u64,
    /// Orders dropped because the channel was full (or a message did not fit).
    pub orders_dropped: u64,
    /// Ticks naming a symbol the configuration does not have.
    pub unknown_symbols: u64,
}

impl Decider {
    /// State for every configured symbol; orders go to `orders_tx`.
    pub fn new(config: &Config, orders_tx: Sender<OrderMsg>) -> Decider {
        let levels = config.engine.levels as usize;
        Decider {
            states: config
                .symbols
                .iter()
                .map(|s| {
                    let tick_e8 = (s.tick_size * PX_SCALE as f64).round() as i64;
                    SymbolState::new(tick_e8, config.engine.window, 2 * levels)
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
        }
    }

    /// Handles one tick with scratch memory from `alloc`: updates the symbol's state,
    /// decides the quotes, and encodes and hands off an order for each quote that changed.
    #[inline]
    pub fn handle<A: Allocator + Copy>(&mut self, tick: &Tick, alloc: A) {
        let symbol = tick.symbol;
        let Some(state) = self.states.get_mut(symbol as usize) else {
            self.unknown_symbols += 1;
            return;
        };
        state.on_tick(tick);
        let intents = strategy::decide(symbol, state, &self.params, alloc);
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
            let sent = match msg.and_then(|m| OrderMsg::new(m.as_bytes())) {
                Some(m) => self.orders_tx.try_send(m).is_ok(),
                None => false,
            };
            if sent {
                self.orders += 1;
            } else {
                self.orders_dropped += 1;
            }
        }
    }

    /// Total position over all symbols, lots (long minus short).
    pub fn net_position_lots(&self) -> i64 {
        self.states.iter().map(|s| s.position_lots).sum()
    }

    /// Lots filled against our quotes over all symbols.
    pub fn filled_lots(&self) -> u64 {
        self.states.iter().map(|s| s.filled_lots).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use allocator_api2::alloc::Global;
    use common::alloc::thread_counts;

    fn config() -> Config {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/default.toml"),
        )
        .unwrap();
        let mut c: Config = toml::from_str(&text).unwrap();
        c.ring.path = std::env::temp_dir().join("unused.ring");
        c
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

    #[test]
    fn sends_only_changed_quotes_and_same_bytes_in_every_mode() {
        let c = config();
        let (tx, rx) = crossbeam_channel::bounded(1024);
        let mut heap = Decider::new(&c, tx);
        let (tx2, rx2) = crossbeam_channel::bounded(1024);
        let mut arena = Decider::new(&c, tx2);
        let bump = bumpalo::Bump::with_capacity(1 << 16);
        for t in [
            quote(0, 65_000 * PX_SCALE),
            quote(0, 65_000 * PX_SCALE),
            quote(0, 65_010 * PX_SCALE),
        ] {
            heap.handle(&t, Global);
            arena.handle(&t, &bump);
        }
        // First tick: 6 new orders; the repeat changes nothing; the move re-prices all 6.
        assert_eq!(heap.orders, 12);
        assert_eq!(arena.orders, 12);
        let a: Vec<_> = rx.try_iter().map(|m| m.as_bytes().to_vec()).collect();
        let b: Vec<_> = rx2.try_iter().map(|m| m.as_bytes().to_vec()).collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|m| order::verify(m).is_ok()));
    }

    #[test]
    fn arena_mode_does_not_touch_the_global_allocator() {
        let c = config();
        let (tx, _rx) = crossbeam_channel::bounded(1 << 16);
        let mut d = Decider::new(&c, tx);
        let mut bump = bumpalo::Bump::with_capacity(1 << 16);
        d.handle(&quote(1, 3_400 * PX_SCALE), &bump);
        // The test build's global allocator is the counting wrapper (see lib.rs).
        let before = thread_counts();
        for i in 0..1000 {
            bump.reset();
            d.handle(&quote((i % 5) as u16, (3_400 + i) * PX_SCALE), &bump);
        }
        assert_eq!(thread_counts().since(&before).calls(), 0);
        assert!(d.orders > 1000);
        // The same work on the heap calls the global allocator every tick.
        let before = thread_counts();
        for i in 0..1000 {
            d.handle(&quote((i % 5) as u16, (5_000 + i) * PX_SCALE), Global);
        }
        assert!(thread_counts().since(&before).allocs >= 1000);
    }

    #[test]
    fn unknown_symbol_is_counted_not_fatal() {
        let (tx, _rx) = crossbeam_channel::bounded(16);
        let mut d = Decider::new(&config(), tx);
        d.handle(&quote(999, 1), Global);
        assert_eq!(d.unknown_symbols, 1);
    }
}
