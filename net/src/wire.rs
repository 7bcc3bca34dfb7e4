//! What travels on the feed's Aeron stream: one message per Aeron message, told apart
//! by length.
//!
//! - **A tick**: 64 bytes, its eight words little-endian ([`Tick::to_words`]), the
//!   feed's ring sequence number in `seq`, its `published_raw` the feed's stamp.
//! - **A control message**: 32 bytes, `magic: u32` ([`MAGIC`]), `kind: u32`
//!   ([`ControlKind`]), `last_seq: u64` (the newest sequence number the feed has sent),
//!   `producer: u64` (the feed run's identity: its ring's producer start time, ns since
//!   the Unix epoch), `sent_raw: u64` (the feed's raw clock when it sent it). A
//!   heartbeat goes out about once a millisecond while the feed has nothing to send (so
//!   a receiver sees a gap at the tail and a dead feed), the end once, when the feed ends
//!   its stream.
//!
//! Encoding writes into a caller's array and decoding reads a borrowed slice: nothing
//! allocates, blocks or needs a particular thread (the feed's md thread encodes, the
//! relay's receive thread decodes).

use common::tick::Tick;

/// Length of a tick message.
pub const TICK_LEN: usize = 64;
/// Length of a control message.
pub const CONTROL_LEN: usize = 32;
/// First word of every control message: `HFTC`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"HFTC");

/// What a control message says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ControlKind {
    /// The feed is alive and has sent up to `last_seq`.
    Heartbeat = 1,
    /// The feed ended its stream after `last_seq`.
    End = 2,
}

/// A control message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Control {
    /// Heartbeat or end.
    pub kind: ControlKind,
    /// The newest sequence number the feed has sent (0: none yet).
    pub last_seq: u64,
    /// The feed run's identity.
    pub producer: u64,
    /// The feed's raw clock when it sent the message.
    pub sent_raw: u64,
}

/// One decoded message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    /// A tick.
    Tick(Tick),
    /// A heartbeat or the end.
    Control(Control),
}

/// Why a message could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Neither 64 nor 32 bytes long.
    Length(usize),
    /// 64 bytes that are not a valid tick (see [`Tick::from_words`]).
    BadTick,
    /// 32 bytes without the magic word.
    BadMagic,
    /// A control message of an unknown kind.
    BadKind(u32),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Length(n) => write!(
                f,
                "a message of {n} bytes (a tick is {TICK_LEN}, a control message {CONTROL_LEN})"
            ),
            WireError::BadTick => f.write_str("64 bytes that are not a valid tick"),
            WireError::BadMagic => f.write_str("a control message without the magic word"),
            WireError::BadKind(k) => write!(f, "a control message of unknown kind {k}"),
        }
    }
}

/// `tick` as a tick message.
#[inline]
pub fn encode_tick(tick: &Tick) -> [u8; TICK_LEN] {
    let mut out = [0u8; TICK_LEN];
    for (chunk, w) in out.chunks_exact_mut(8).zip(tick.to_words()) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// `c` as a control message.
#[inline]
pub fn encode_control(c: &Control) -> [u8; CONTROL_LEN] {
    let mut out = [0u8; CONTROL_LEN];
    out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    out[4..8].copy_from_slice(&(c.kind as u32).to_le_bytes());
    out[8..16].copy_from_slice(&c.last_seq.to_le_bytes());
    out[16..24].copy_from_slice(&c.producer.to_le_bytes());
    out[24..32].copy_from_slice(&c.sent_raw.to_le_bytes());
    out
}

/// The message in `buf`.
#[inline]
pub fn decode(buf: &[u8]) -> Result<Message, WireError> {
    match buf.len() {
        TICK_LEN => Tick::read_le(buf)
            .map(Message::Tick)
            .ok_or(WireError::BadTick),
        CONTROL_LEN => {
            let word = |i: usize| u64::from_le_bytes(buf[i..i + 8].try_into().unwrap_or([0; 8]));
            let magic = u32::from_le_bytes(buf[0..4].try_into().unwrap_or([0; 4]));
            if magic != MAGIC {
                return Err(WireError::BadMagic);
            }
            let kind = match u32::from_le_bytes(buf[4..8].try_into().unwrap_or([0; 4])) {
                1 => ControlKind::Heartbeat,
                2 => ControlKind::End,
                k => return Err(WireError::BadKind(k)),
            };
            Ok(Message::Control(Control {
                kind,
                last_seq: word(8),
                producer: word(16),
                sent_raw: word(24),
            }))
        }
        n => Err(WireError::Length(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::tick::{Side, TickKind};

    #[test]
    fn ticks_and_control_messages_round_trip() {
        let t = Tick {
            seq: 42,
            scheduled_raw: 7,
            published_raw: 9,
            symbol: 3,
            kind: TickKind::Trade,
            side: Side::Sell,
            last_qty_lots: 5,
            bid_px_e8: -1,
            ask_px_e8: i64::MAX,
            bid_qty_lots: 1,
            ask_qty_lots: 2,
            last_px_e8: 100,
        };
        assert_eq!(decode(&encode_tick(&t)), Ok(Message::Tick(t)));
        for kind in [ControlKind::Heartbeat, ControlKind::End] {
            let c = Control {
                kind,
                last_seq: u64::MAX,
                producer: 1_700_000_000_000_000_000,
                sent_raw: 12,
            };
            assert_eq!(decode(&encode_control(&c)), Ok(Message::Control(c)));
        }
    }

    #[test]
    fn foreign_bytes_are_errors() {
        assert_eq!(decode(&[0u8; 10]), Err(WireError::Length(10)));
        assert_eq!(decode(&[]), Err(WireError::Length(0)));
        let mut t = encode_tick(&Tick::default());
        t[26] = 9; // the kind byte of word 3
        assert_eq!(decode(&t), Err(WireError::BadTick));
        assert_eq!(decode(&[0u8; CONTROL_LEN]), Err(WireError::BadMagic));
        let mut c = encode_control(&Control {
            kind: ControlKind::End,
            last_seq: 1,
            producer: 1,
            sent_raw: 1,
        });
        c[4] = 7;
        assert_eq!(decode(&c), Err(WireError::BadKind(7)));
        assert!(WireError::Length(3).to_string().contains("3 bytes"));
    }
}
