//! The cold tick history: per-symbol ticks and 1-second OHLCV bars, bounded by a
//! retention limit that evicts the oldest ticks first.
//!
//! This is the feed's long-lived, churning memory (the reason the feed runs on
//! jemalloc): each symbol's ticks are stored in chunks of [`CHUNK_TICKS`] ticks (16 KiB),
//! a new chunk is allocated when the newest is full and the oldest is freed when
//! eviction empties it, so a steady stream of ticks is a steady stream of allocations
//! and frees of one size, interleaved across symbols that tick at different rates. It
//! runs on the history thread only, never on the md thread, and allocates freely.
//! The chunks are [`ColdVec`]s: in the single-process pipeline they come from the cold
//! allocator (jemalloc) whatever route the history thread's role has (per-type
//! routing, [`common::routed::Cold`]); in the feed process, from its global allocator.

use common::routed::{Cold, ColdVec};
use common::tick::{ContentDigest, Tick, TickKind};
use std::collections::VecDeque;

/// Completed bars kept per symbol.
pub const MAX_BARS_PER_SYMBOL: usize = 3600;

/// One OHLCV bar (prices × 10⁸; trade prices, or mids when a second had no trade).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bar {
    /// Second of the run this bar covers.
    pub second: u64,
    /// First price.
    pub open: i64,
    /// Highest price.
    pub high: i64,
    /// Lowest price.
    pub low: i64,
    /// Last price.
    pub close: i64,
    /// Traded lots.
    pub volume: u64,
    /// Ticks in the bar.
    pub ticks: u64,
}

/// Ticks per storage chunk.
pub const CHUNK_TICKS: usize = 256;

/// A symbol's ticks: a queue of chunks, oldest first; the front chunk may have been
/// partly evicted (`front_evicted`).
#[derive(Default)]
struct SymbolHistory {
    /// Per-type routing: the chunks are the cold allocator's (jemalloc under the
    /// routing allocator) whichever thread grows them.
    chunks: VecDeque<ColdVec<Tick>>,
    front_evicted: usize,
    len: usize,
    /// Held ticks at the front that earlier feed runs published (restored from the
    /// journal): their sequence numbers are another run's, so lookups by sequence
    /// number pass over them.
    earlier: usize,
    bars: VecDeque<Bar>,
    current: Option<Bar>,
    /// The newest quote and trade pushed (kept after eviction: a snapshot's book state).
    latest: [Option<Tick>; 2],
}

impl SymbolHistory {
    fn push_tick(&mut self, tick: Tick) {
        match self.chunks.back_mut() {
            Some(chunk) if chunk.len() < CHUNK_TICKS => chunk.push(tick),
            _ => {
                let mut chunk = ColdVec::with_capacity_in(CHUNK_TICKS, Cold);
                chunk.push(tick);
                self.chunks.push_back(chunk);
            }
        }
        self.len += 1;
    }

    fn evict_oldest(&mut self) {
        if self.len == 0 {
            return;
        }
        self.len -= 1;
        self.earlier = self.earlier.saturating_sub(1);
        self.front_evicted += 1;
        if self
            .chunks
            .front()
            .is_some_and(|c| self.front_evicted == c.len())
        {
            self.chunks.pop_front();
            self.front_evicted = 0;
        }
    }

    /// Held ticks of this run with a sequence number of at least `seq`, oldest first
    /// (a run's ticks of one symbol are held in sequence order, after the earlier
    /// runs' ones).
    fn since_seq(&self, seq: u64) -> impl Iterator<Item = &Tick> {
        let (c0, p0) = self.run_start();
        let (mut lo, mut hi) = (c0, self.chunks.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.chunks[mid].last().is_some_and(|t| t.seq < seq) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        self.chunks
            .iter()
            .enumerate()
            .skip(lo)
            .flat_map(move |(i, c)| {
                let c = &c[if i == c0 { p0.min(c.len()) } else { 0 }..];
                c[c.partition_point(|t| t.seq < seq)..].iter()
            })
    }

    /// (chunk, index in it) of this run's first held tick: every chunk but the newest
    /// is full, so it is tick `front_evicted + earlier` counted from the front chunk's
    /// start.
    fn run_start(&self) -> (usize, usize) {
        let start = self.front_evicted + self.earlier;
        (start / CHUNK_TICKS, start % CHUNK_TICKS)
    }

    /// The oldest held tick of this run (found by index, not by walking the earlier
    /// runs' ticks).
    fn first_of_run(&self) -> Option<&Tick> {
        let (c, p) = self.run_start();
        self.chunks.get(c).and_then(|chunk| chunk.get(p))
    }

    fn iter(&self) -> impl Iterator<Item = &Tick> {
        self.chunks
            .iter()
            .enumerate()
            .flat_map(move |(i, c)| c[if i == 0 { self.front_evicted } else { 0 }..].iter())
    }
}

/// Figures of the history at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryStats {
    /// Ticks held.
    pub ticks: u64,
    /// Ticks evicted so far.
    pub evicted: u64,
    /// Completed bars held.
    pub bars: u64,
}

/// Tick history of all symbols under one retention limit.
pub struct History {
    symbols: Vec<SymbolHistory>,
    /// Symbol of every held tick, oldest first: tells which deque to evict from.
    order: VecDeque<u16>,
    max_ticks: u64,
    evicted: u64,
    bars: u64,
}

impl History {
    /// An empty history of `symbols` symbols keeping at most `max_ticks` ticks.
    pub fn new(symbols: usize, max_ticks: u64) -> History {
        History {
            symbols: (0..symbols).map(|_| SymbolHistory::default()).collect(),
            order: VecDeque::new(),
            max_ticks: max_ticks.max(1),
            evicted: 0,
            bars: 0,
        }
    }

    /// Adds `tick`, which happened `second` seconds into the run, evicting the oldest
    /// tick if the limit is reached. Ticks of unknown symbols are ignored.
    pub fn push(&mut self, tick: Tick, second: u64) {
        self.push_tick(tick, second, false);
    }

    /// Adds `tick` of an earlier feed run (restored from the journal) as [`History::push`]
    /// does, before any tick of this run: snapshots and bars include it, lookups by
    /// sequence number ([`History::ticks_from`], [`History::first_held`]) do not, since
    /// its sequence number is another run's.
    pub fn push_earlier(&mut self, tick: Tick, second: u64) {
        self.push_tick(tick, second, true);
    }

    fn push_tick(&mut self, tick: Tick, second: u64, earlier: bool) {
        let Some(h) = self.symbols.get_mut(tick.symbol as usize) else {
            return;
        };
        debug_assert!(!earlier || h.earlier == h.len, "earlier ticks come first");
        let px = match tick.kind {
            TickKind::Trade => tick.last_px_e8,
            TickKind::Quote => tick.mid_px_e8(),
        };
        let volume = if tick.kind == TickKind::Trade {
            tick.last_qty_lots as u64
        } else {
            0
        };
        match &mut h.current {
            Some(bar) if bar.second == second => {
                bar.high = bar.high.max(px);
                bar.low = bar.low.min(px);
                bar.close = px;
                bar.volume += volume;
                bar.ticks += 1;
            }
            current => {
                if let Some(done) = current.take() {
                    h.bars.push_back(done);
                    self.bars += 1;
                    if h.bars.len() > MAX_BARS_PER_SYMBOL {
                        h.bars.pop_front();
                        self.bars -= 1;
                    }
                }
                *current = Some(Bar {
                    second,
                    open: px,
                    high: px,
                    low: px,
                    close: px,
                    volume,
                    ticks: 1,
                });
            }
        }
        h.push_tick(tick);
        h.latest[(tick.kind == TickKind::Trade) as usize] = Some(tick);
        if earlier {
            h.earlier += 1;
        }
        self.order.push_back(tick.symbol);
        if self.order.len() as u64 > self.max_ticks {
            if let Some(oldest) = self.order.pop_front() {
                self.symbols[oldest as usize].evict_oldest();
                self.evicted += 1;
            }
        }
    }

    /// Current figures.
    pub fn stats(&self) -> HistoryStats {
        HistoryStats {
            ticks: self.order.len() as u64,
            evicted: self.evicted,
            bars: self.bars,
        }
    }

    /// A digest of what the history holds ([`ContentDigest`]): every held tick's
    /// sequence number and market data (not its time stamps), symbol by symbol, oldest
    /// first. Two runs of one seeded
    /// configuration that drop nothing hold the same ticks exactly when their digests
    /// agree (bars are left out: which second a tick falls in depends on the clock's
    /// calibration). Walks the whole history: for the end of a run.
    pub fn digest(&self) -> u64 {
        let mut d = ContentDigest::default();
        for sym in &self.symbols {
            for tick in sym.iter() {
                d.add(tick);
            }
        }
        d.value()
    }

    /// Held ticks of `symbol`, oldest first.
    pub fn ticks(&self, symbol: u16) -> impl Iterator<Item = &Tick> {
        self.symbols
            .get(symbol as usize)
            .into_iter()
            .flat_map(|h| h.iter())
    }

    /// Held ticks of `symbol` of this run with sequence numbers from `seq` on, oldest
    /// first.
    pub fn ticks_from(&self, symbol: u16, seq: u64) -> impl Iterator<Item = &Tick> {
        self.symbols
            .get(symbol as usize)
            .into_iter()
            .flat_map(move |h| h.since_seq(seq))
    }

    /// The newest quote and the newest trade of `symbol` ever pushed (either `None` if
    /// none came), even when eviction has taken them from the held ticks.
    pub fn latest(&self, symbol: u16) -> [Option<&Tick>; 2] {
        self.symbols.get(symbol as usize).map_or([None, None], |h| {
            [h.latest[0].as_ref(), h.latest[1].as_ref()]
        })
    }

    /// The last `n` held ticks of `symbol`, oldest first.
    pub fn last_ticks(&self, symbol: u16, n: usize) -> impl Iterator<Item = &Tick> {
        let h = self.symbols.get(symbol as usize);
        let skip = h.map_or(0, |h| h.len.saturating_sub(n));
        h.into_iter().flat_map(|h| h.iter()).skip(skip)
    }

    /// The lowest sequence number of this run held (0: nothing held).
    pub fn first_held(&self) -> u64 {
        self.symbols
            .iter()
            .filter_map(|h| h.first_of_run().map(|t| t.seq))
            .min()
            .unwrap_or(0)
    }

    /// The highest sequence number of this run held (0: nothing held).
    pub fn newest_held(&self) -> u64 {
        self.symbols
            .iter()
            .filter(|h| h.len > h.earlier)
            .filter_map(|h| h.chunks.back().and_then(|c| c.last()).map(|t| t.seq))
            .max()
            .unwrap_or(0)
    }

    /// Symbols in the history.
    pub fn symbol_count(&self) -> usize {
        self.symbols.len()
    }

    /// The bars of `symbol` (completed, then the one being built) whose second is in
    /// `from..to`.
    pub fn bars_between(&self, symbol: u16, from: u64, to: u64) -> impl Iterator<Item = &Bar> {
        self.symbols
            .get(symbol as usize)
            .into_iter()
            .flat_map(|h| h.bars.iter().chain(h.current.iter()))
            .filter(move |b| (from..to).contains(&b.second))
    }

    /// Completed bars of `symbol`, oldest first.
    pub fn bars(&self, symbol: u16) -> impl Iterator<Item = &Bar> {
        self.symbols
            .get(symbol as usize)
            .into_iter()
            .flat_map(|h| h.bars.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::tick::Side;

    #[test]
    fn digest_covers_content_not_stamps() {
        let tick = |seq, symbol, px, stamp| Tick {
            seq,
            symbol,
            bid_px_e8: px,
            ask_px_e8: px + 2,
            scheduled_raw: stamp,
            published_raw: stamp + 1,
            ..Tick::default()
        };
        let fill = |stamp: u64, px_of_3: i64| {
            let mut h = History::new(2, 10);
            for (seq, symbol) in [(1, 0), (2, 1), (3, 0)] {
                let px = if seq == 3 { px_of_3 } else { 100 };
                h.push(tick(seq, symbol, px, stamp + seq), 0);
            }
            h.digest()
        };
        assert_eq!(fill(1_000, 100), fill(999_999, 100), "stamps do not count");
        assert_ne!(fill(1_000, 100), fill(1_000, 101), "prices do");
        assert_ne!(History::new(2, 10).digest(), fill(1_000, 100));
    }

    fn quote(symbol: u16, seq: u64, mid: i64) -> Tick {
        Tick {
            seq,
            symbol,
            bid_px_e8: mid - 1,
            ask_px_e8: mid + 1,
            ..Tick::default()
        }
    }

    #[test]
    fn evicts_oldest_across_symbols() {
        let mut h = History::new(2, 3);
        h.push(quote(0, 1, 100), 0);
        h.push(quote(1, 2, 100), 0);
        h.push(quote(0, 3, 100), 0);
        h.push(quote(1, 4, 100), 0);
        assert_eq!(h.stats().ticks, 3);
        assert_eq!(h.stats().evicted, 1);
        let seqs0: Vec<u64> = h.ticks(0).map(|t| t.seq).collect();
        let seqs1: Vec<u64> = h.ticks(1).map(|t| t.seq).collect();
        assert_eq!(seqs0, [3], "seq 1 was the oldest");
        assert_eq!(seqs1, [2, 4]);
    }

    #[test]
    fn chunks_are_allocated_and_freed_as_ticks_come_and_go() {
        let n = CHUNK_TICKS as u64;
        let mut h = History::new(1, 2 * n);
        for seq in 1..=5 * n {
            h.push(quote(0, seq, 100), 0);
        }
        // The newest 2 chunks' worth is kept, in order, and nothing else.
        let seqs: Vec<u64> = h.ticks(0).map(|t| t.seq).collect();
        assert_eq!(seqs, (3 * n + 1..=5 * n).collect::<Vec<_>>());
        assert_eq!(h.symbols[0].chunks.len(), 2, "evicted chunks are freed");
        h.push(quote(0, 5 * n + 1, 100), 0);
        assert_eq!(
            h.symbols[0].chunks.len(),
            3,
            "a full chunk starts a new one"
        );
        assert_eq!(h.ticks(0).count() as u64, 2 * n);
        assert_eq!(h.ticks(0).next().unwrap().seq, 3 * n + 2);
    }

    #[test]
    fn builds_ohlcv_bars() {
        let mut h = History::new(1, 100);
        h.push(quote(0, 1, 100), 0);
        h.push(quote(0, 2, 120), 0);
        let trade = Tick {
            kind: TickKind::Trade,
            side: Side::Buy,
            last_px_e8: 90,
            last_qty_lots: 7,
            ..quote(0, 3, 95)
        };
        h.push(trade, 0);
        h.push(quote(0, 4, 110), 1); // opens the next second, completes the first
        let bars: Vec<Bar> = h.bars(0).copied().collect();
        assert_eq!(
            bars,
            [Bar {
                second: 0,
                open: 100,
                high: 120,
                low: 90,
                close: 90,
                volume: 7,
                ticks: 3
            }]
        );
        assert_eq!(h.stats().bars, 1);
    }

    #[test]
    fn ticks_are_found_by_sequence_number_across_chunks_and_evictions() {
        let n = CHUNK_TICKS as u64;
        let mut h = History::new(2, 3 * n);
        for seq in 1..=10 * n {
            h.push(quote((seq % 2) as u16, seq, 100), 0);
        }
        let first = h.first_held();
        assert_eq!(first, 7 * n + 1, "3 chunks' worth kept");
        for from in [1, first, first + 1, 8 * n + 17, 10 * n, 10 * n + 1] {
            let got: Vec<u64> = h.ticks_from(0, from).map(|t| t.seq).collect();
            let want: Vec<u64> = h.ticks(0).map(|t| t.seq).filter(|&s| s >= from).collect();
            assert_eq!(got, want, "from {from}");
        }
        let last: Vec<u64> = h.last_ticks(1, 3).map(|t| t.seq).collect();
        assert_eq!(last, [10 * n - 5, 10 * n - 3, 10 * n - 1]);
        assert_eq!(h.last_ticks(1, 1_000_000).count() as u64, 3 * n / 2);
    }

    /// A restarted feed's history holds the earlier run's ticks (sequence numbers
    /// 1..) before this run's (1.. again): lookups by sequence number see only this
    /// run's, also once eviction has taken part of the earlier ones.
    #[test]
    fn earlier_runs_ticks_are_passed_over_by_sequence_number() {
        let n = CHUNK_TICKS as u64;
        let mut h = History::new(1, 4 * n);
        for seq in 1..=n + 10 {
            h.push_earlier(quote(0, seq, 50), 0);
        }
        assert_eq!(
            (h.first_held(), h.newest_held()),
            (0, 0),
            "no tick of this run yet"
        );
        assert_eq!(h.ticks_from(0, 1).count(), 0);
        for seq in 1..=2 * n {
            h.push(quote(0, seq, 100), 0);
        }
        assert_eq!((h.first_held(), h.newest_held()), (1, 2 * n));
        for from in [1, 7, n, n + 11, 2 * n, 2 * n + 1] {
            let got: Vec<u64> = h.ticks_from(0, from).map(|t| t.seq).collect();
            assert_eq!(got, (from..=2 * n).collect::<Vec<_>>(), "from {from}");
            assert!(h
                .ticks_from(0, from)
                .all(|t| t.mid_px_e8() == quote(0, 1, 100).mid_px_e8()));
        }
        // Evict 15 of the earlier run's ticks, then all of them and 20 of this run's.
        for seq in 2 * n + 1..=3 * n + 5 {
            h.push(quote(0, seq, 100), 0);
        }
        assert_eq!(h.ticks(0).count() as u64, 4 * n);
        assert_eq!(h.ticks_from(0, 1).count() as u64, 3 * n + 5);
        for seq in 3 * n + 6..=4 * n + 20 {
            h.push(quote(0, seq, 100), 0);
        }
        assert_eq!(h.first_held(), 21);
        let got: Vec<u64> = h.ticks_from(0, 1).map(|t| t.seq).collect();
        assert_eq!(got, (21..=4 * n + 20).collect::<Vec<_>>());
        assert_eq!(h.last_ticks(0, 2).count(), 2);
    }

    /// The latest quote and trade outlive eviction: a snapshot's book state.
    #[test]
    fn the_latest_quote_and_trade_are_kept_past_eviction() {
        let mut h = History::new(2, 10);
        assert_eq!(h.latest(0), [None, None]);
        let trade = Tick {
            kind: TickKind::Trade,
            last_px_e8: 123,
            ..quote(0, 1, 100)
        };
        h.push(trade, 0);
        for seq in 2..=30 {
            h.push(quote(0, seq, 100 + seq as i64), 0);
        }
        assert!(
            h.ticks(0).all(|t| t.kind == TickKind::Quote),
            "the trade was evicted"
        );
        assert_eq!(h.latest(0), [Some(&quote(0, 30, 130)), Some(&trade)]);
        assert_eq!(h.latest(1), [None, None]);
        assert_eq!(h.latest(9), [None, None]);
    }

    #[test]
    fn unknown_symbol_is_ignored() {
        let mut h = History::new(1, 10);
        h.push(quote(5, 1, 100), 0);
        assert_eq!(h.stats(), HistoryStats::default());
    }
}
