//! The tick wire type: one market-data event, exactly one 64-byte cache line.
//!
//! A [`Tick`] is `#[repr(C)]`, holds no pointers and is `Copy`, so it can live in
//! shared memory and be read by another process. Its layout is pinned by
//! compile-time asserts and summarised by [`TICK_LAYOUT_FINGERPRINT`], which the
//! ring header carries so that a consumer built with another layout refuses the
//! ring instead of misreading it.
//!
//! Prices are fixed-point integers: `px_e8` fields hold the price × 10⁸
//! ([`PX_SCALE`]); quantities are whole lots. Time stamps are raw clock readings
//! (see [`crate::clock`]), converted to nanoseconds off the hot path.
//!
//! Nothing here allocates, blocks or needs a particular thread.

use std::mem::{align_of, offset_of, size_of};

/// Fixed-point scale of every `*_px_e8` field: the price times 10⁸.
pub const PX_SCALE: i64 = 100_000_000;

/// What a tick reports.
#[repr(u8)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TickKind {
    /// A new top of book: bid and ask price and size.
    #[default]
    Quote = 0,
    /// A trade at `last_px_e8` for `last_qty_lots`, with the book after it.
    Trade = 1,
}

/// Aggressor side of a trade.
#[repr(u8)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Side {
    /// Not a trade, or the side is unknown.
    #[default]
    None = 0,
    /// The buyer crossed the spread.
    Buy = 1,
    /// The seller crossed the spread.
    Sell = 2,
}

/// One market-data event, exactly one cache line.
///
/// `seq` is the ring sequence number, starting at 1 and increasing by one per
/// published tick; `0` never names a tick.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tick {
    /// Ring sequence number (1, 2, 3, …), assigned by the publisher.
    pub seq: u64,
    /// Raw clock reading of the moment the open-loop schedule said this tick was due.
    pub scheduled_raw: u64,
    /// Raw clock reading taken by the publisher just before the tick entered the ring.
    pub published_raw: u64,
    /// Index of the symbol in the configuration's `symbols` list.
    pub symbol: u16,
    /// Quote or trade.
    pub kind: TickKind,
    /// Aggressor side for trades.
    pub side: Side,
    /// Trade size in lots (0 for quotes).
    pub last_qty_lots: u32,
    /// Best bid price × 10⁸.
    pub bid_px_e8: i64,
    /// Best ask price × 10⁸.
    pub ask_px_e8: i64,
    /// Size at the best bid, in lots.
    pub bid_qty_lots: u32,
    /// Size at the best ask, in lots.
    pub ask_qty_lots: u32,
    /// Trade price × 10⁸ (0 for quotes).
    pub last_px_e8: i64,
}

const _: () = assert!(size_of::<Tick>() == 64);
const _: () = assert!(align_of::<Tick>() == 64);
const _: () = assert!(offset_of!(Tick, seq) == 0);
const _: () = assert!(offset_of!(Tick, last_px_e8) == 56);

/// A digest of ticks' content: each tick's sequence number and market data, not its
/// time stamps (which differ from run to run), as FNV-1a (64 bits) of the words, in the
/// order added. The feed's history digest (`feed_summary.json`) adds its ticks symbol
/// by symbol, oldest first; `lab chaos` computes the same from a journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentDigest(u64);

impl Default for ContentDigest {
    fn default() -> ContentDigest {
        ContentDigest(0xcbf2_9ce4_8422_2325)
    }
}

impl ContentDigest {
    /// Folds `tick` in.
    pub fn add(&mut self, tick: &Tick) {
        for (i, w) in tick.to_words().iter().enumerate() {
            if i == 1 || i == 2 {
                continue; // scheduled_raw, published_raw
            }
            for b in w.to_le_bytes() {
                self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    }

    /// The digest so far.
    pub fn value(&self) -> u64 {
        self.0
    }
}

/// Number of 8-byte words in a tick.
pub const TICK_WORDS: usize = size_of::<Tick>() / 8;

/// A fingerprint of the tick layout: size, alignment and every field offset.
///
/// The ring header stores it; a reader built with a different `Tick` refuses
/// the ring.
pub const TICK_LAYOUT_FINGERPRINT: u64 = {
    let parts: [u64; 14] = [
        size_of::<Tick>() as u64,
        align_of::<Tick>() as u64,
        offset_of!(Tick, seq) as u64,
        offset_of!(Tick, scheduled_raw) as u64,
        offset_of!(Tick, published_raw) as u64,
        offset_of!(Tick, symbol) as u64,
        offset_of!(Tick, kind) as u64,
        offset_of!(Tick, side) as u64,
        offset_of!(Tick, last_qty_lots) as u64,
        offset_of!(Tick, bid_px_e8) as u64,
        offset_of!(Tick, ask_px_e8) as u64,
        offset_of!(Tick, bid_qty_lots) as u64,
        offset_of!(Tick, ask_qty_lots) as u64,
        offset_of!(Tick, last_px_e8) as u64,
    ];
    // FNV-1a over the parts, byte by byte.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < parts.len() {
        let mut b = 0;
        while b < 8 {
            hash ^= (parts[i] >> (b * 8)) & 0xff;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
            b += 1;
        }
        i += 1;
    }
    hash
};

impl Tick {
    /// The tick as eight little-endian-agnostic machine words, as the ring stores it.
    #[inline(always)]
    pub fn to_words(&self) -> [u64; TICK_WORDS] {
        // SAFETY: `Tick` is `repr(C)`, 64 bytes, 64-aligned (asserted above) and has no
        // padding bytes: its fields cover offsets 0..64 exactly (8+8+8+2+1+1+4+8+8+4+4+8),
        // so every byte is initialised and it may be read as `[u64; 8]`.
        unsafe { std::mem::transmute::<Tick, [u64; TICK_WORDS]>(*self) }
    }

    /// Rebuilds a tick from words produced by [`Tick::to_words`].
    ///
    /// Returns `None` if a byte pattern is not a valid tick (an unknown `kind` or
    /// `side`), so a corrupt slot can never produce an invalid enum value.
    #[inline(always)]
    pub fn from_words(words: [u64; TICK_WORDS]) -> Option<Tick> {
        // Word 3 holds symbol (bytes 0..2), kind (byte 2), side (byte 3) on a
        // little-endian machine; check the enum bytes before transmuting.
        let w3 = words[3].to_ne_bytes();
        let (kind, side) = if cfg!(target_endian = "little") {
            (w3[2], w3[3])
        } else {
            (w3[5], w3[4])
        };
        if kind > TickKind::Trade as u8 || side > Side::Sell as u8 {
            return None;
        }
        // SAFETY: `[u64; 8]` and `Tick` have the same size; every bit pattern is valid for
        // the integer fields, and the only fields with invalid patterns (`kind`, `side`)
        // were checked just above to hold a declared discriminant.
        Some(unsafe { std::mem::transmute::<[u64; TICK_WORDS], Tick>(words) })
    }

    /// Appends the tick as 64 bytes, its words little-endian (the journal's and the
    /// history service's record).
    pub fn write_le(&self, out: &mut Vec<u8>) {
        for w in self.to_words() {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }

    /// Reads a record written by [`Tick::write_le`] (`None` if `raw` is not 64 bytes
    /// or not a valid tick, see [`Tick::from_words`]).
    pub fn read_le(raw: &[u8]) -> Option<Tick> {
        if raw.len() != TICK_WORDS * 8 {
            return None;
        }
        let mut words = [0u64; TICK_WORDS];
        for (w, b) in words.iter_mut().zip(raw.chunks_exact(8)) {
            *w = u64::from_le_bytes(b.try_into().ok()?);
        }
        Tick::from_words(words)
    }

    /// Mid price × 10⁸ (the mean of bid and ask, rounded towards minus infinity).
    #[inline]
    pub fn mid_px_e8(&self) -> i64 {
        // In i128: a tick from a corrupt or hostile ring may hold any prices, and their
        // sum must not overflow; the mean of two i64 always fits in one.
        (i128::from(self.bid_px_e8) + i128::from(self.ask_px_e8)).div_euclid(2) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `tests/fuzz.rs` (`tick`): the mid of extreme prices overflowed.
    #[test]
    fn mid_of_extreme_prices_does_not_overflow() {
        let t = |bid_px_e8, ask_px_e8| Tick {
            bid_px_e8,
            ask_px_e8,
            ..Tick::default()
        };
        assert_eq!(t(i64::MAX, i64::MAX).mid_px_e8(), i64::MAX);
        assert_eq!(t(i64::MIN, i64::MIN).mid_px_e8(), i64::MIN);
        assert_eq!(t(i64::MIN, i64::MAX).mid_px_e8(), -1);
        assert_eq!(t(101, 104).mid_px_e8(), 102);
        assert_eq!(t(-3, 0).mid_px_e8(), -2);
    }

    fn sample() -> Tick {
        Tick {
            seq: 7,
            scheduled_raw: 1_000,
            published_raw: 1_050,
            symbol: 3,
            kind: TickKind::Trade,
            side: Side::Sell,
            last_qty_lots: 12,
            bid_px_e8: 99 * PX_SCALE,
            ask_px_e8: 101 * PX_SCALE,
            bid_qty_lots: 5,
            ask_qty_lots: 6,
            last_px_e8: 100 * PX_SCALE,
        }
    }

    #[test]
    fn words_round_trip() {
        let t = sample();
        assert_eq!(Tick::from_words(t.to_words()), Some(t));
        assert_eq!(t.to_words()[0], 7, "seq is word 0");
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn golden_bytes() {
        // The wire layout is a contract between processes built at different times.
        let t = sample();
        let w = t.to_words();
        assert_eq!(w[1], 1_000);
        assert_eq!(w[2], 1_050);
        assert_eq!(w[3], 3 | (1 << 16) | (2 << 24) | (12 << 32));
        assert_eq!(w[4] as i64, 99 * PX_SCALE);
        assert_eq!(w[5] as i64, 101 * PX_SCALE);
        assert_eq!(w[6], 5 | (6 << 32));
        assert_eq!(w[7] as i64, 100 * PX_SCALE);
    }

    #[test]
    fn invalid_enum_bytes_are_rejected() {
        let mut w = sample().to_words();
        w[3] |= 7 << 16; // kind = 7
        assert_eq!(Tick::from_words(w), None);
        let mut w = sample().to_words();
        w[3] = (w[3] & !(0xff << 24)) | (9 << 24); // side = 9
        assert_eq!(Tick::from_words(w), None);
    }

    #[test]
    fn fingerprint_is_stable() {
        // Golden value of the current layout. A layout change changes it: update it
        // deliberately, together with `ring::LAYOUT_VERSION`.
        assert_eq!(TICK_LAYOUT_FINGERPRINT, 0x0ea0_4fc3_4fcc_e1ec);
    }

    #[test]
    fn mid_rounds_down() {
        let mut t = sample();
        t.bid_px_e8 = 1;
        t.ask_px_e8 = 2;
        assert_eq!(t.mid_px_e8(), 1);
        t.bid_px_e8 = -3;
        t.ask_px_e8 = -2;
        assert_eq!(t.mid_px_e8(), -3);
    }
}
