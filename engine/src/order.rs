//! Order messages: FIX 4.4-style `NewOrderSingle` text, encoded with scratch memory from
//! any allocator, and handed to the cold thread as a fixed-size [`OrderMsg`].
//!
//! [`encode`] builds the body and then the whole message in two fixed-size buffers from
//! the caller's allocator (the per-tick arena in arena mode) and formats numbers with
//! `itoa` on the stack: no other allocation, no `format!`. [`verify`] checks a message's
//! body length and checksum on the cold side.

use crate::strategy::{OrderIntent, OrderSide};
use allocator_api2::alloc::Allocator;
use allocator_api2::boxed::Box;
use common::tick::PX_SCALE;

/// FIX field separator.
pub const SOH: u8 = 0x01;
/// Largest encoded message.
pub const MAX_MSG: usize = 240;

/// A finished order message, fixed size so that the channel never allocates.
#[derive(Clone, Copy)]
pub struct OrderMsg {
    len: u8,
    bytes: [u8; MAX_MSG],
}

impl OrderMsg {
    /// Copies `msg` into a fixed-size value, if it fits.
    #[inline]
    pub fn new(msg: &[u8]) -> Option<OrderMsg> {
        if msg.len() > MAX_MSG {
            return None;
        }
        let mut out = OrderMsg {
            len: msg.len() as u8,
            bytes: [0; MAX_MSG],
        };
        out.bytes[..msg.len()].copy_from_slice(msg);
        Some(out)
    }

    /// The message bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// Appends to a fixed buffer; remembers an overflow instead of panicking.
struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflow: bool,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a mut [u8]) -> Cursor<'a> {
        Cursor {
            buf,
            len: 0,
            overflow: false,
        }
    }

    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            None => self.overflow = true,
        }
    }

    #[inline(always)]
    fn field(&mut self, tag: &[u8], value: &[u8]) {
        self.put(tag);
        self.put(b"=");
        self.put(value);
        self.put(&[SOH]);
    }

    #[inline(always)]
    fn int_field(&mut self, tag: &[u8], value: impl itoa::Integer) {
        let mut b = itoa::Buffer::new();
        self.field(tag, b.format(value).as_bytes());
    }

    /// Writes `px_e8` as a decimal price with trailing zeros trimmed (`65000.5`).
    fn px_field(&mut self, tag: &[u8], px_e8: i64) {
        self.put(tag);
        self.put(b"=");
        if px_e8 < 0 {
            self.put(b"-");
        }
        let abs = px_e8.unsigned_abs();
        let scale = PX_SCALE as u64;
        let mut b = itoa::Buffer::new();
        self.put(b.format(abs / scale).as_bytes());
        let mut frac = abs % scale;
        if frac != 0 {
            let mut digits = 8;
            while frac.is_multiple_of(10) {
                frac /= 10;
                digits -= 1;
            }
            let s = b.format(frac).as_bytes();
            self.put(b".");
            self.put(&b"00000000"[..digits - s.len()]);
            self.put(s);
        }
        self.put(&[SOH]);
    }
}

/// Largest encoded body (the message without its `8=`, `9=` and `10=` fields).
const MAX_BODY: usize = MAX_MSG - 32;

/// An encoded message in scratch memory of allocator `A`.
pub struct Encoded<A: Allocator> {
    buf: Box<[u8; MAX_MSG], A>,
    len: usize,
}

impl<A: Allocator> Encoded<A> {
    /// The message bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Encodes `intent` as a FIX `NewOrderSingle` (35=D) with message sequence number
/// `msg_seq` and client order id `cl_ord_id`, in two scratch buffers from `alloc` (the
/// body, then the framed message). `None` if it would exceed [`MAX_MSG`] bytes, which a
/// validated configuration (symbol names of at most 32 bytes) cannot produce.
#[inline]
pub fn encode<A: Allocator + Copy>(
    intent: &OrderIntent,
    symbol_name: &[u8],
    msg_seq: u64,
    cl_ord_id: u64,
    alloc: A,
) -> Option<Encoded<A>> {
    let mut body_buf = Box::new_in([0u8; MAX_BODY], alloc);
    let mut body = Cursor::new(&mut body_buf[..]);
    body.field(b"35", b"D");
    body.field(b"49", b"ENGINE");
    body.field(b"56", b"VENUE");
    body.int_field(b"34", msg_seq);
    body.int_field(b"11", cl_ord_id);
    body.field(b"55", symbol_name);
    body.field(
        b"54",
        match intent.side {
            OrderSide::Buy => b"1",
            OrderSide::Sell => b"2",
        },
    );
    body.int_field(b"38", intent.qty_lots);
    body.field(b"40", b"2");
    body.px_field(b"44", intent.px_e8);
    body.field(b"59", b"0");
    if body.overflow {
        return None;
    }
    let body_len = body.len;

    let mut buf = Box::new_in([0u8; MAX_MSG], alloc);
    let mut msg = Cursor::new(&mut buf[..]);
    msg.field(b"8", b"FIX.4.4");
    msg.int_field(b"9", body_len);
    msg.put(&body_buf[..body_len]);
    let sum = msg.buf[..msg.len]
        .iter()
        .fold(0u8, |a, &b| a.wrapping_add(b));
    let digits = [b'0' + sum / 100, b'0' + (sum / 10) % 10, b'0' + sum % 10];
    msg.field(b"10", &digits);
    if msg.overflow {
        return None;
    }
    let len = msg.len;
    Some(Encoded { buf, len })
}

/// Why a message failed [`verify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Not `8=…|9=…|…|10=NNN|`.
    Framing,
    /// Tag 9 does not match the body.
    BodyLength,
    /// Tag 10 does not match the bytes.
    Checksum,
}

/// Checks framing, body length and checksum of an encoded message. Does not allocate.
pub fn verify(msg: &[u8]) -> Result<(), Invalid> {
    let field_end = |from: usize| {
        msg[from..]
            .iter()
            .position(|&b| b == SOH)
            .map(|i| from + i)
            .ok_or(Invalid::Framing)
    };
    if !msg.starts_with(b"8=") || msg.last() != Some(&SOH) {
        return Err(Invalid::Framing);
    }
    let begin_end = field_end(0)?;
    if !msg[begin_end + 1..].starts_with(b"9=") {
        return Err(Invalid::Framing);
    }
    let len_end = field_end(begin_end + 1)?;
    let declared = parse_digits(&msg[begin_end + 3..len_end]).ok_or(Invalid::Framing)?;
    let body_start = len_end + 1;
    // The trailer is exactly `10=NNN` and a separator.
    let trailer_start = msg.len().checked_sub(7).ok_or(Invalid::Framing)?;
    if trailer_start < body_start
        || !msg[trailer_start..].starts_with(b"10=")
        || (trailer_start > body_start && msg[trailer_start - 1] != SOH)
    {
        return Err(Invalid::Framing);
    }
    if declared != (trailer_start - body_start) as u64 {
        return Err(Invalid::BodyLength);
    }
    let want = parse_digits(&msg[trailer_start + 3..msg.len() - 1]).ok_or(Invalid::Framing)?;
    let sum = msg[..trailer_start]
        .iter()
        .fold(0u8, |a, &b| a.wrapping_add(b));
    if want != sum as u64 {
        return Err(Invalid::Checksum);
    }
    Ok(())
}

/// A non-empty run of ASCII digits as a number (at most 19 digits).
fn parse_digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &d| n * 10 + (d - b'0') as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use allocator_api2::alloc::Global;

    fn intent(px_e8: i64) -> OrderIntent {
        OrderIntent {
            symbol: 0,
            side: OrderSide::Sell,
            level: 1,
            px_e8,
            qty_lots: 20,
        }
    }

    fn text(m: &[u8]) -> String {
        String::from_utf8(m.iter().map(|&b| if b == SOH { b'|' } else { b }).collect()).unwrap()
    }

    #[test]
    fn golden_message() {
        let m = encode(&intent(6_500_050_000_000), b"BTC-USD", 7, 42, Global).unwrap();
        let m = m.as_bytes();
        assert_eq!(
            text(m),
            "8=FIX.4.4|9=78|35=D|49=ENGINE|56=VENUE|34=7|11=42|55=BTC-USD|54=2|38=20|40=2|44=65000.5|59=0|10=146|"
        );
        assert_eq!(verify(m), Ok(()));
    }

    #[test]
    fn prices_keep_every_digit() {
        for (px, s) in [
            (108_123_000, "44=1.08123|"),
            (5, "44=0.00000005|"),
            (100 * PX_SCALE, "44=100|"),
            (-150_000_000, "44=-1.5|"),
        ] {
            let m = encode(&intent(px), b"X", 1, 1, Global).unwrap();
            let m = m.as_bytes();
            assert!(text(m).contains(s), "{} lacks {s}", text(m));
            assert_eq!(verify(m), Ok(()));
        }
    }

    #[test]
    fn arena_and_heap_encode_the_same_bytes() {
        let bump = bumpalo::Bump::new();
        let a = encode(&intent(123_456_789), b"ETH-USD", 3, 9, &bump).unwrap();
        let h = encode(&intent(123_456_789), b"ETH-USD", 3, 9, Global).unwrap();
        assert_eq!(a.as_bytes(), h.as_bytes());
    }

    #[test]
    fn verify_catches_damage() {
        let m = encode(&intent(100), b"X", 1, 1, Global).unwrap();
        let m = m.as_bytes();
        let mut bad = m.to_vec();
        bad[25] ^= 1;
        assert_eq!(verify(&bad), Err(Invalid::Checksum));
        let cut = &m[..m.len() - 8];
        assert_eq!(verify(cut), Err(Invalid::Framing));
        let mut longer = m.to_vec();
        longer.insert(20, b'X'); // inside the body: the declared length no longer holds
        assert_eq!(verify(&longer), Err(Invalid::BodyLength));
        assert_eq!(verify(b""), Err(Invalid::Framing));
        assert_eq!(verify(b"8=FIX\x01"), Err(Invalid::Framing));
        assert_eq!(verify(b"8=FIX\x019=x\x0110=000\x01"), Err(Invalid::Framing));
        let longest = encode(
            &OrderIntent {
                px_e8: i64::MAX,
                qty_lots: u32::MAX,
                ..intent(0)
            },
            &[b'Z'; common::config::MAX_SYMBOL_NAME],
            u64::MAX,
            u64::MAX,
            Global,
        )
        .expect("the longest message fits");
        let msg = OrderMsg::new(longest.as_bytes()).expect("and fits an OrderMsg");
        assert_eq!(verify(msg.as_bytes()), Ok(()));
        let too_long = encode(&intent(1), &[b'Z'; 200], 1, 1, Global);
        assert!(too_long.is_none());
    }
}
