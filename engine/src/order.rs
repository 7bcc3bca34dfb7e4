//! Order messages: FIX 4.4-style `NewOrderSingle` text, encoded with scratch memory from
//! any allocator, and handed to the cold thread as a fixed-size [`OrderMsg`].
//!
//! [`encode`] builds the body and then the whole message in two fixed-size buffers from
//! the caller's allocator (the per-tick arena in arena mode) and writes numbers' digits
//! straight into them: no other allocation, no `format!`. [`verify`] checks a message's
//! body length and checksum on the cold side.

use crate::strategy::{OrderIntent, OrderSide};
use allocator_api2::alloc::Allocator;
use allocator_api2::boxed::Box;
use common::tick::PX_SCALE;

/// FIX field separator.
pub const SOH: u8 = 0x01;
/// Largest encoded message.
pub const MAX_MSG: usize = 240;

// `OrderMsg::len` is a `u8`.
const _: () = assert!(MAX_MSG <= u8::MAX as usize);

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

    /// The next `n` bytes of the buffer, if they are there (two plain comparisons,
    /// instead of the overflow-checked range of `get_mut(len..len + n)`).
    #[inline(always)]
    fn room(&mut self, n: usize) -> Option<&mut [u8]> {
        self.buf
            .get_mut(self.len..)
            .and_then(|rest| rest.get_mut(..n))
    }

    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        match self.room(bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            None => self.overflow = true,
        }
    }

    /// Appends `bytes` like [`Cursor::put`], but a length of at most 32 (a symbol name)
    /// without a `memcpy` call: two fixed-size copies that overlap in the middle.
    #[inline(always)]
    fn put_short(&mut self, bytes: &[u8]) {
        let n = bytes.len();
        if n > 32 {
            return self.put(bytes);
        }
        let Some(dst) = self.room(n) else {
            self.overflow = true;
            return;
        };
        match n {
            16.. => overlapping::<16>(dst, bytes),
            8.. => overlapping::<8>(dst, bytes),
            4.. => overlapping::<4>(dst, bytes),
            2.. => overlapping::<2>(dst, bytes),
            1 => dst[0] = bytes[0],
            0 => {}
        }
        self.len += n;
    }

    /// Appends `value` in decimal, written in place: no intermediate buffer, no copy.
    #[inline(always)]
    fn put_uint(&mut self, value: u64) {
        let n = decimal_len(value);
        match self.room(n) {
            Some(dst) => {
                write_digits(dst, value);
                self.len += n;
            }
            None => self.overflow = true,
        }
    }

    /// Appends `px_e8` as a decimal price with trailing zeros trimmed (`65000.5`).
    ///
    /// May leave scratch bytes past the new length (the untrimmed fraction digits); the
    /// next `put` overwrites them and nothing reads past `len`. Used for the body only,
    /// which is read as `body[..len]`.
    #[inline(always)]
    fn put_px(&mut self, px_e8: i64) {
        if px_e8 < 0 {
            self.put(b"-");
        }
        let abs = px_e8.unsigned_abs();
        let scale = PX_SCALE as u64;
        self.put_uint(abs / scale);
        let frac = abs % scale;
        if frac != 0 {
            // `.` and all eight fraction digits, then the trailing `0`s dropped: they are
            // the trailing zero bytes of the digits XOR "00000000" (big-endian).
            let mut d = [b'.'; 9];
            write_digits(&mut d[1..], frac);
            let [_, d8 @ ..] = d;
            let zeros = (u64::from_be_bytes(d8) ^ u64::from_be_bytes(*b"00000000")).trailing_zeros()
                as usize
                / 8;
            let keep = d.len() - zeros;
            match self.room(d.len()) {
                // A fixed-size copy of all nine bytes, keeping `keep` of them.
                Some(dst) => {
                    dst.copy_from_slice(&d);
                    self.len += keep;
                }
                None => self.put(&d[..keep]),
            }
        }
    }
}

/// The two ASCII digits of every number below 100: `00`, `01`, … `99`.
static DIGIT_PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// Copies `src` (`K ≤ len ≤ 2K` bytes) into `dst` of the same length as its first `K`
/// and its last `K` bytes.
#[inline(always)]
fn overlapping<const K: usize>(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    dst[..K].copy_from_slice(&src[..K]);
    dst[n - K..n].copy_from_slice(&src[n - K..]);
}

/// `10^k` for every `k` whose power fits a `u64`.
static POW10: [u64; 20] = {
    let mut t = [1u64; 20];
    let mut k = 1;
    while k < 20 {
        t[k] = t[k - 1] * 10;
        k += 1;
    }
    t
};

/// Decimal digits of `value` (1 for 0): the bit length × log10(2) (`× 1233 >> 12`) is
/// the digit count or one less, and one table compare tells which. `value | 1` has the
/// same digit count and is never 0.
#[inline(always)]
fn decimal_len(value: u64) -> usize {
    let v = value | 1;
    let bits = 64 - v.leading_zeros() as usize;
    let low = (bits * 1233) >> 12;
    low + usize::from(v >= POW10[low])
}

/// Writes the last `dst.len()` decimal digits of `value` into `dst`, two at a time from
/// the right (leading zeros if `value` has fewer digits).
#[inline(always)]
fn write_digits(dst: &mut [u8], mut value: u64) {
    let mut i = dst.len();
    while i >= 2 {
        let pair = (value % 100) as usize * 2;
        value /= 100;
        dst[i - 2..i].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        i -= 2;
    }
    if i == 1 {
        dst[0] = b'0' + (value % 10) as u8;
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

    /// The message as a fixed-size [`OrderMsg`], equal to `OrderMsg::new(self.as_bytes())`:
    /// one fixed-size copy of the whole buffer, whose bytes past the message are zero
    /// (the buffer starts zeroed and [`encode`] writes nothing past the message), instead
    /// of zeroing an `OrderMsg` and copying a variable length into it.
    #[inline]
    pub fn to_msg(&self) -> OrderMsg {
        debug_assert!(self.buf[self.len..].iter().all(|&b| b == 0));
        OrderMsg {
            len: self.len as u8,
            bytes: *self.buf,
        }
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
    // The fixed text between two values is written as one run (`\x01` is SOH):
    // 35=D|49=ENGINE|56=VENUE|34=<seq>|11=<id>|55=<symbol>|54=<side>|38=<qty>|40=2|44=<px>|59=0|
    body.put(b"35=D\x0149=ENGINE\x0156=VENUE\x0134=");
    body.put_uint(msg_seq);
    body.put(b"\x0111=");
    body.put_uint(cl_ord_id);
    body.put(b"\x0155=");
    body.put_short(symbol_name);
    body.put(match intent.side {
        OrderSide::Buy => b"\x0154=1\x0138=",
        OrderSide::Sell => b"\x0154=2\x0138=",
    });
    body.put_uint(intent.qty_lots.into());
    body.put(b"\x0140=2\x0144=");
    body.put_px(intent.px_e8);
    body.put(b"\x0159=0\x01");
    if body.overflow {
        return None;
    }
    let body_len = body.len;

    let mut buf = Box::new_in([0u8; MAX_MSG], alloc);
    let mut msg = Cursor::new(&mut buf[..]);
    msg.put(b"8=FIX.4.4\x019=");
    msg.put_uint(body_len as u64);
    msg.put(&[SOH]);
    msg.put(&body_buf[..body_len]);
    let (head_len, head_overflow) = (msg.len, msg.overflow);
    // The checksum of the bytes written so far: the buffer was zeroed and nothing is
    // written past `head_len` yet, so summing all of it (a fixed length, which the
    // compiler vectorises) gives the same sum as summing `buf[..head_len]` byte by byte.
    let sum = checksum(&buf);
    let mut msg = Cursor {
        buf: &mut buf[..],
        len: head_len,
        overflow: head_overflow,
    };
    msg.put(&[
        b'1',
        b'0',
        b'=',
        b'0' + sum / 100,
        b'0' + (sum / 10) % 10,
        b'0' + sum % 10,
        SOH,
    ]);
    if msg.overflow {
        return None;
    }
    let len = msg.len;
    Some(Encoded { buf, len })
}

/// FIX checksum (tag 10): the byte sum modulo 256 of a whole, fixed-size buffer.
#[inline(always)]
fn checksum(buf: &[u8; MAX_MSG]) -> u8 {
    buf.iter().fold(0u8, |a, &b| a.wrapping_add(b))
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
    fn to_msg_is_the_same_value_as_new() {
        for px in [6_500_050_000_000, 5, -150_000_000] {
            let e = encode(&intent(px), b"BTC-USD", 7, 42, Global).unwrap();
            let (a, b) = (e.to_msg(), OrderMsg::new(e.as_bytes()).unwrap());
            assert_eq!((a.len, a.bytes), (b.len, b.bytes));
        }
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

    /// The in-place digit writer against `format!`, for prices (every fraction length,
    /// signs, extremes) and for the integer fields (every digit count).
    #[test]
    fn digits_match_a_reference_formatting() {
        let reference_px = |px: i64| {
            let (abs, scale) = (px.unsigned_abs(), PX_SCALE as u64);
            let sign = if px < 0 { "-" } else { "" };
            match abs % scale {
                0 => format!("{sign}{}", abs / scale),
                frac => format!("{sign}{}.{frac:08}", abs / scale)
                    .trim_end_matches('0')
                    .to_string(),
            }
        };
        let mut prices = vec![0, 1, -1, 10, 99_999_999, 100_000_001, i64::MAX, i64::MIN];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..10_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let px = (x >> (x % 40)) as i64;
            prices.push(px);
            prices.push(-px);
            prices.push(px / 1000 * 1000);
        }
        for px in prices {
            let m = encode(&intent(px), b"X", 1, 1, Global).unwrap();
            let want = format!("|44={}|", reference_px(px));
            assert!(
                text(m.as_bytes()).contains(&want),
                "{px}: {}",
                text(m.as_bytes())
            );
            assert_eq!(verify(m.as_bytes()), Ok(()));
        }
        let mut seqs = vec![0, u64::MAX];
        for k in 1..20 {
            seqs.extend([10u64.pow(k) - 1, 10u64.pow(k), 10u64.pow(k) + 1]);
        }
        for seq in seqs {
            let m = encode(&intent(1), b"X", seq, seq, Global).unwrap();
            let want = format!("|34={seq}|11={seq}|");
            assert!(text(m.as_bytes()).contains(&want), "{}", text(m.as_bytes()));
        }
    }

    #[test]
    fn symbol_names_of_every_length() {
        let name: std::vec::Vec<u8> = (0..40u8).map(|i| b'A' + i % 26).collect();
        for n in 0..=name.len() {
            let m = encode(&intent(1), &name[..n], 1, 1, Global).unwrap();
            let want = format!("|55={}|54=", std::str::from_utf8(&name[..n]).unwrap());
            assert!(text(m.as_bytes()).contains(&want), "{}", text(m.as_bytes()));
            assert_eq!(verify(m.as_bytes()), Ok(()));
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
