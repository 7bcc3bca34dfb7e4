//! The feed's history service protocol: length-prefixed, versioned frames over a Unix
//! domain socket (`feed.service.socket`) and, where `feed.service.listen` is set, over
//! TCP as well (the same frames, the same answers), requests from a client, responses
//! from the feed's history thread. An [`Endpoint`] names either; [`request_at`] asks one.
//!
//! The Unix socket is owner-only (mode 0600); TCP has no such protection: anyone who
//! can reach the address can ask for the history, so the feed should listen on a
//! private interface only (a host-internal bridge, a private network).
//!
//! # Frames
//!
//! Every frame is `len: u32` (little-endian, the bytes after it), `version: u8`
//! ([`VERSION`]), `kind: u8`, then the kind's payload, all integers little-endian:
//!
//! | kind | direction | payload |
//! |---|---|---|
//! | `0x01` snapshot | request | `depth: u32`: the last `depth` ticks of every symbol (1 to [`MAX_DEPTH`]), after the symbol's latest quote and latest trade where those are older |
//! | `0x02` range | request | `from: u64`, `to: u64`: the ticks with sequence numbers `from..to` of the current epoch (at most [`MAX_RANGE`]) |
//! | `0x03` bars | request | `symbol: u16`, `from_second: u64`, `to_second: u64` |
//! | `0x81` ticks | response | `count: u32`, then `count` ticks of 64 bytes ([`Tick::to_words`]) |
//! | `0x82` bars | response | `symbol: u16`, `count: u32`, then `count` bars of 7 × 8 bytes |
//! | `0x83` done | response | `request: u8`, `items: u64`, `first_held: u64` (the oldest sequence number of this feed run the history holds), `newest: u64` (the newest one), `epoch: u64` (the journal's), `producer: u64` (the ring's producer start time, ns since the Unix epoch: which feed answered) |
//! | `0x80` error | response | `code: u16`, then a UTF-8 message; the feed closes the connection after it |
//!
//! A response to a request is any number of ticks or bars frames and one done frame.
//! [`decode_request`] sorts every malformed frame into one [`FrameError`] class; the
//! feed answers it with an error frame and closes the connection.
//!
//! Everything here allocates: for cold threads and tools, never a hot thread.

use crate::tick::{Tick, TICK_WORDS};
use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The protocol version this build speaks.
pub const VERSION: u8 = 2;
/// Longest request frame (after the length field).
pub const MAX_REQUEST: usize = 64;
/// Longest response frame (after the length field).
pub const MAX_RESPONSE: usize = 1 << 20;
/// Most ticks per symbol in a snapshot.
pub const MAX_DEPTH: u32 = 4096;
/// Most sequence numbers in one range request.
pub const MAX_RANGE: u64 = 1_000_000;
/// Most ticks in one ticks frame.
pub const TICKS_PER_FRAME: usize = 1024;
const TICK_BYTES: usize = TICK_WORDS * 8;
const BAR_BYTES: usize = 56;

/// A request from a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// The last `depth` ticks of every symbol.
    Snapshot {
        /// Ticks per symbol.
        depth: u32,
    },
    /// Ticks with sequence numbers `from..to`.
    Range {
        /// First sequence number.
        from: u64,
        /// One past the last.
        to: u64,
    },
    /// A symbol's bars for seconds `from_second..to_second`.
    Bars {
        /// Symbol index.
        symbol: u16,
        /// First second.
        from_second: u64,
        /// One past the last second.
        to_second: u64,
    },
}

impl Request {
    /// The request's kind byte.
    pub fn kind(&self) -> u8 {
        match self {
            Request::Snapshot { .. } => 0x01,
            Request::Range { .. } => 0x02,
            Request::Bars { .. } => 0x03,
        }
    }
}

/// One OHLCV bar on the wire (prices × 10⁸).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireBar {
    /// Second of the epoch.
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

/// A response frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    /// Some of the ticks asked for.
    Ticks(Vec<Tick>),
    /// Some of a symbol's bars.
    Bars {
        /// Symbol index.
        symbol: u16,
        /// The bars.
        bars: Vec<WireBar>,
    },
    /// The end of the response to one request.
    Done {
        /// The request's kind byte.
        request: u8,
        /// Ticks or bars sent for it.
        items: u64,
        /// The oldest sequence number of this feed run the history holds (a range
        /// below it is served from the journal, or not at all); 0: none.
        first_held: u64,
        /// The newest sequence number of this feed run the history holds (a snapshot
        /// covers the ring's ticks up to it); 0: none.
        newest: u64,
        /// The feed's journal epoch (0: no journal).
        epoch: u64,
        /// The start time of the feed's ring producer, nanoseconds since the Unix epoch
        /// (the ring header's `epoch_ns`): which feed run answered, so that a client can
        /// tell an answer of another feed on the same socket.
        producer: u64,
    },
    /// The request was refused; the connection closes.
    Error {
        /// [`FrameError::code`] or a service code.
        code: u16,
        /// What was wrong.
        message: String,
    },
}

/// Why a frame is not a valid request: each malformed-frame class.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length field says fewer than the two header bytes.
    #[error("frame length {0} is shorter than its header")]
    TooShort(u32),
    /// The length field says more than a request may hold.
    #[error("frame length {0} is above the {MAX_REQUEST}-byte limit of a request")]
    TooLong(u32),
    /// Another protocol version.
    #[error("protocol version {0}, this feed speaks {VERSION}")]
    Version(u8),
    /// A kind byte no request has.
    #[error("unknown request kind 0x{0:02x}")]
    UnknownKind(u8),
    /// The payload's length does not match its kind.
    #[error("request kind 0x{kind:02x} needs {want} payload bytes, got {got}")]
    PayloadLength {
        /// The kind.
        kind: u8,
        /// Bytes it needs.
        want: usize,
        /// Bytes it had.
        got: usize,
    },
    /// A field out of its range.
    #[error("{0}")]
    BadField(String),
}

impl FrameError {
    /// The code sent in the error frame.
    pub fn code(&self) -> u16 {
        match self {
            FrameError::TooShort(_) => 1,
            FrameError::TooLong(_) => 2,
            FrameError::Version(_) => 3,
            FrameError::UnknownKind(_) => 4,
            FrameError::PayloadLength { .. } => 5,
            FrameError::BadField(_) => 6,
        }
    }
}

/// Error code: the feed serves its limit of clients already.
pub const ERR_BUSY: u16 = 100;
/// Error code: the client sent requests faster than the feed serves them.
pub const ERR_RATE: u16 = 101;
/// Error code: the client stalled (a partial frame, or no reading) past the timeout.
pub const ERR_STALLED: u16 = 102;

fn frame(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&((payload.len() + 2) as u32).to_le_bytes());
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(payload);
}

/// Appends the frame of `r` to `out`.
pub fn encode_request(r: &Request, out: &mut Vec<u8>) {
    let mut p = Vec::with_capacity(24);
    match *r {
        Request::Snapshot { depth } => p.extend_from_slice(&depth.to_le_bytes()),
        Request::Range { from, to } => {
            p.extend_from_slice(&from.to_le_bytes());
            p.extend_from_slice(&to.to_le_bytes());
        }
        Request::Bars {
            symbol,
            from_second,
            to_second,
        } => {
            p.extend_from_slice(&symbol.to_le_bytes());
            p.extend_from_slice(&from_second.to_le_bytes());
            p.extend_from_slice(&to_second.to_le_bytes());
        }
    }
    frame(r.kind(), &p, out);
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The outcome of looking at the front of a client's buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Not a whole frame yet.
    Incomplete,
    /// A request, and the bytes it took.
    Request(Request, usize),
}

/// Decodes the request at the front of `buf`, checking the length field as soon as it
/// is there (a frame announced too long is refused before its bytes arrive).
pub fn decode_request(buf: &[u8], symbols: usize) -> Result<Decoded, FrameError> {
    if buf.len() < 4 {
        return Ok(Decoded::Incomplete);
    }
    let len = u32_at(buf, 0);
    if len < 2 {
        return Err(FrameError::TooShort(len));
    }
    if len as usize > MAX_REQUEST {
        return Err(FrameError::TooLong(len));
    }
    let total = 4 + len as usize;
    if buf.len() < total {
        return Ok(Decoded::Incomplete);
    }
    let (version, kind, p) = (buf[4], buf[5], &buf[6..total]);
    if version != VERSION {
        return Err(FrameError::Version(version));
    }
    let want = match kind {
        0x01 => 4,
        0x02 => 16,
        0x03 => 18,
        k => return Err(FrameError::UnknownKind(k)),
    };
    if p.len() != want {
        return Err(FrameError::PayloadLength {
            kind,
            want,
            got: p.len(),
        });
    }
    let bad = |m: String| Err(FrameError::BadField(m));
    let r = match kind {
        0x01 => {
            let depth = u32_at(p, 0);
            if depth == 0 || depth > MAX_DEPTH {
                return bad(format!(
                    "snapshot depth must be 1 to {MAX_DEPTH}, got {depth}"
                ));
            }
            Request::Snapshot { depth }
        }
        0x02 => {
            let (from, to) = (u64_at(p, 0), u64_at(p, 8));
            if from == 0 || from >= to || to - from > MAX_RANGE {
                return bad(format!(
                    "range {from}..{to}: sequence numbers start at 1, from < to, at most {MAX_RANGE} of them"
                ));
            }
            Request::Range { from, to }
        }
        _ => {
            let (symbol, from_second, to_second) = (u16_at(p, 0), u64_at(p, 2), u64_at(p, 10));
            if symbol as usize >= symbols {
                return bad(format!("symbol {symbol}: the feed has {symbols} symbols"));
            }
            if from_second >= to_second {
                return bad(format!(
                    "bars {from_second}..{to_second}: from must be below to"
                ));
            }
            Request::Bars {
                symbol,
                from_second,
                to_second,
            }
        }
    };
    Ok(Decoded::Request(r, total))
}

/// Appends the frame of `r` to `out`.
pub fn encode_response(r: &Response, out: &mut Vec<u8>) {
    let mut p = Vec::new();
    let kind = match r {
        Response::Ticks(ticks) => {
            p.extend_from_slice(&(ticks.len() as u32).to_le_bytes());
            for t in ticks {
                t.write_le(&mut p);
            }
            0x81
        }
        Response::Bars { symbol, bars } => {
            p.extend_from_slice(&symbol.to_le_bytes());
            p.extend_from_slice(&(bars.len() as u32).to_le_bytes());
            for b in bars {
                for v in [
                    b.second,
                    b.open as u64,
                    b.high as u64,
                    b.low as u64,
                    b.close as u64,
                    b.volume,
                    b.ticks,
                ] {
                    p.extend_from_slice(&v.to_le_bytes());
                }
            }
            0x82
        }
        Response::Done {
            request,
            items,
            first_held,
            newest,
            epoch,
            producer,
        } => {
            p.push(*request);
            p.extend_from_slice(&items.to_le_bytes());
            p.extend_from_slice(&first_held.to_le_bytes());
            p.extend_from_slice(&newest.to_le_bytes());
            p.extend_from_slice(&epoch.to_le_bytes());
            p.extend_from_slice(&producer.to_le_bytes());
            0x83
        }
        Response::Error { code, message } => {
            p.extend_from_slice(&code.to_le_bytes());
            p.extend_from_slice(message.as_bytes());
            0x80
        }
    };
    frame(kind, &p, out);
}

/// Decodes the response at the front of `buf` (for clients): `None` until a whole
/// frame is there; an error for a frame this build cannot read.
pub fn decode_response(buf: &[u8]) -> Result<Option<(Response, usize)>, String> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32_at(buf, 0) as usize;
    if !(2..=MAX_RESPONSE).contains(&len) {
        return Err(format!("response frame length {len} out of range"));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let (version, kind, p) = (buf[4], buf[5], &buf[6..4 + len]);
    if version != VERSION {
        return Err(format!(
            "response version {version}, this build speaks {VERSION}"
        ));
    }
    let short = || format!("response kind 0x{kind:02x} cut short ({} bytes)", p.len());
    let r = match kind {
        0x81 => {
            let n = *p
                .get(..4)
                .map(|b| u32_at(b, 0))
                .as_ref()
                .ok_or_else(short)? as usize;
            if p.len() != 4 + n * TICK_BYTES {
                return Err(short());
            }
            let mut ticks = Vec::with_capacity(n);
            for raw in p[4..].chunks_exact(TICK_BYTES) {
                ticks.push(Tick::read_le(raw).ok_or("a tick that does not decode")?);
            }
            Response::Ticks(ticks)
        }
        0x82 => {
            if p.len() < 6 {
                return Err(short());
            }
            let (symbol, n) = (u16_at(p, 0), u32_at(p, 2) as usize);
            if p.len() != 6 + n * BAR_BYTES {
                return Err(short());
            }
            let bars = p[6..]
                .chunks_exact(BAR_BYTES)
                .map(|b| WireBar {
                    second: u64_at(b, 0),
                    open: u64_at(b, 8) as i64,
                    high: u64_at(b, 16) as i64,
                    low: u64_at(b, 24) as i64,
                    close: u64_at(b, 32) as i64,
                    volume: u64_at(b, 40),
                    ticks: u64_at(b, 48),
                })
                .collect();
            Response::Bars { symbol, bars }
        }
        0x83 => {
            if p.len() != 41 {
                return Err(short());
            }
            Response::Done {
                request: p[0],
                items: u64_at(p, 1),
                first_held: u64_at(p, 9),
                newest: u64_at(p, 17),
                epoch: u64_at(p, 25),
                producer: u64_at(p, 33),
            }
        }
        0x80 => {
            if p.len() < 2 {
                return Err(short());
            }
            Response::Error {
                code: u16_at(p, 0),
                message: String::from_utf8_lossy(&p[2..]).into_owned(),
            }
        }
        k => return Err(format!("unknown response kind 0x{k:02x}")),
    };
    Ok(Some((r, 4 + len)))
}

/// What one request brought back ([`request_at`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answer {
    /// Every tick, in the order sent.
    pub ticks: Vec<Tick>,
    /// Every bar, with its symbol.
    pub bars: Vec<(u16, WireBar)>,
    /// The done frame's items, oldest and newest held sequence numbers and epoch.
    pub items: u64,
    /// See [`Answer::items`].
    pub first_held: u64,
    /// See [`Answer::items`].
    pub newest: u64,
    /// See [`Answer::items`].
    pub epoch: u64,
    /// The answering feed's ring producer start time ([`Response::Done`]).
    pub producer: u64,
}

/// Where a history service listens: the feed's Unix socket (`feed.service.socket`) or
/// its TCP address (`feed.service.listen`).
///
/// Written (and parsed, [`FromStr`]) as `tcp://IP:PORT` (or plain `IP:PORT`:
/// `10.0.0.1:7070`, `[::1]:7070`; an IP address, never a host name) or as a socket
/// path with a `/` in it (`/tmp/feed.sock`, `./feed.sock`; `unix://` before it is
/// allowed). [`Display`](fmt::Display) writes `tcp://IP:PORT` or the path (with `./`
/// before a relative path without a `/`), which parses back to the same socket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A Unix domain socket's path.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
            Endpoint::Unix(p) => {
                let shown = p.display().to_string();
                if shown.contains('/') {
                    f.write_str(&shown)
                } else {
                    write!(f, "./{shown}")
                }
            }
        }
    }
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Endpoint, String> {
        let text = s.trim();
        if let Some(addr) = text.strip_prefix("tcp://") {
            return addr.parse().map(Endpoint::Tcp).map_err(|_| {
                format!(
                    "{s:?} is not tcp://IP:PORT: an IP address and a port (tcp://10.0.0.1:7070, tcp://[::1]:7070); host names are not resolved"
                )
            });
        }
        if let Some(path) = text.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(format!("{s:?} names no socket path after unix://"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Endpoint::Tcp(addr));
        }
        if text.contains('/') && !text.contains("://") {
            return Ok(Endpoint::Unix(PathBuf::from(text)));
        }
        Err(format!(
            "{s:?} is neither a TCP address (IP:PORT or tcp://IP:PORT: 10.0.0.1:7070; host names are not resolved) nor a Unix socket path (one with a '/' in it: /tmp/feed.sock, ./feed.sock)"
        ))
    }
}

/// Written as its [`Display`](fmt::Display) form, read as [`FromStr`] reads it (a
/// configuration's `engine.history_service`).
impl serde::Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Endpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Endpoint, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl From<&Path> for Endpoint {
    fn from(p: &Path) -> Endpoint {
        Endpoint::Unix(p.to_path_buf())
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(a: SocketAddr) -> Endpoint {
        Endpoint::Tcp(a)
    }
}

/// Sends `r` to the service at `socket` and reads its whole answer: [`request_at`] of
/// [`Endpoint::Unix`].
pub fn request(socket: &Path, r: &Request, timeout: Duration) -> Result<Answer, String> {
    request_at(&Endpoint::Unix(socket.to_path_buf()), r, timeout)
}

/// Sends `r` to the service at `endpoint` and reads its whole answer (blocking: the TCP
/// connection is given at most `timeout` to open, and each read and write waits at
/// most `timeout`; TCP with `TCP_NODELAY`). An error frame, a frame this build cannot
/// read or a closed connection is an error naming it. For tools and cold threads.
pub fn request_at(endpoint: &Endpoint, r: &Request, timeout: Duration) -> Result<Answer, String> {
    let cannot = |e: std::io::Error| format!("cannot connect to {endpoint}: {e}");
    let setup = |e: std::io::Error| format!("cannot set up the connection to {endpoint}: {e}");
    match endpoint {
        Endpoint::Unix(path) => {
            let s = UnixStream::connect(path).map_err(cannot)?;
            s.set_read_timeout(Some(timeout)).map_err(setup)?;
            s.set_write_timeout(Some(timeout)).map_err(setup)?;
            exchange(s, r)
        }
        Endpoint::Tcp(addr) => {
            let s = TcpStream::connect_timeout(addr, timeout).map_err(cannot)?;
            s.set_nodelay(true).map_err(setup)?;
            s.set_read_timeout(Some(timeout)).map_err(setup)?;
            s.set_write_timeout(Some(timeout)).map_err(setup)?;
            exchange(s, r)
        }
    }
}

/// Sends `r` on `s` and reads frames until its done frame (or an error frame).
fn exchange<S: Read + Write>(mut s: S, r: &Request) -> Result<Answer, String> {
    let mut out = Vec::new();
    encode_request(r, &mut out);
    s.write_all(&out)
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let mut answer = Answer::default();
    loop {
        while let Some((frame, used)) = decode_response(&buf)? {
            buf.drain(..used);
            match frame {
                Response::Ticks(t) => answer.ticks.extend(t),
                Response::Bars { symbol, bars } => {
                    answer.bars.extend(bars.into_iter().map(|b| (symbol, b)))
                }
                Response::Done {
                    items,
                    first_held,
                    newest,
                    epoch,
                    producer,
                    ..
                } => {
                    answer.items = items;
                    answer.first_held = first_held;
                    answer.newest = newest;
                    answer.epoch = epoch;
                    answer.producer = producer;
                    return Ok(answer);
                }
                Response::Error { code, message } => {
                    return Err(format!(
                        "the feed refused the request (code {code}): {message}"
                    ))
                }
            }
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err("the feed closed the connection before its answer ended".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot read the answer: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Request) -> Vec<u8> {
        let mut b = Vec::new();
        encode_request(r, &mut b);
        b
    }

    #[test]
    fn requests_round_trip_and_report_their_length() {
        for r in [
            Request::Snapshot { depth: 64 },
            Request::Range { from: 1, to: 1000 },
            Request::Bars {
                symbol: 1,
                from_second: 0,
                to_second: 10,
            },
        ] {
            let mut b = enc(&r);
            let n = b.len();
            b.extend_from_slice(&[9, 9, 9]); // the next frame's first bytes
            assert_eq!(decode_request(&b, 2), Ok(Decoded::Request(r, n)));
            for cut in 0..n {
                assert_eq!(
                    decode_request(&b[..cut], 2),
                    Ok(Decoded::Incomplete),
                    "{r:?} cut at {cut}"
                );
            }
        }
    }

    /// Every malformed-frame class, each with its code.
    #[test]
    fn every_malformed_class_is_named() {
        let with = |len: u32, rest: &[u8]| [&len.to_le_bytes()[..], rest].concat();
        let good = enc(&Request::Range { from: 1, to: 5 });
        let mut version = good.clone();
        version[4] = VERSION + 1;
        let mut kind = good.clone();
        kind[5] = 0x7f;
        let cases: Vec<(&str, Vec<u8>, u16)> = vec![
            ("length 0", with(0, &[]), 1),
            ("length 1", with(1, &[1]), 1),
            ("announced too long", with(65, &[]), 2),
            ("huge length", with(u32::MAX, &[]), 2),
            ("another version", version, 3),
            ("unknown kind", kind, 4),
            (
                "a response kind sent as a request",
                with(2, &[VERSION, 0x81]),
                4,
            ),
            ("payload too short", with(5, &[VERSION, 0x01, 1, 0, 0]), 5),
            (
                "payload too long",
                with(7, &[VERSION, 0x01, 1, 0, 0, 0, 0]),
                5,
            ),
            ("depth 0", enc(&Request::Snapshot { depth: 0 }), 6),
            (
                "depth too deep",
                enc(&Request::Snapshot {
                    depth: MAX_DEPTH + 1,
                }),
                6,
            ),
            (
                "range backwards",
                enc(&Request::Range { from: 9, to: 3 }),
                6,
            ),
            (
                "range from seq 0",
                enc(&Request::Range { from: 0, to: 3 }),
                6,
            ),
            (
                "range too long",
                enc(&Request::Range {
                    from: 1,
                    to: 2 + MAX_RANGE,
                }),
                6,
            ),
            (
                "unknown symbol",
                enc(&Request::Bars {
                    symbol: 2,
                    from_second: 0,
                    to_second: 1,
                }),
                6,
            ),
            (
                "empty bar range",
                enc(&Request::Bars {
                    symbol: 0,
                    from_second: 4,
                    to_second: 4,
                }),
                6,
            ),
        ];
        for (what, bytes, code) in cases {
            let e = decode_request(&bytes, 2).expect_err(what);
            assert_eq!(e.code(), code, "{what}: {e}");
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn responses_round_trip() {
        let tick = Tick {
            seq: 7,
            symbol: 1,
            bid_px_e8: 100,
            ask_px_e8: 102,
            ..Tick::default()
        };
        for r in [
            Response::Ticks(vec![tick, Tick { seq: 8, ..tick }]),
            Response::Ticks(vec![]),
            Response::Bars {
                symbol: 1,
                bars: vec![WireBar {
                    second: 3,
                    open: -5,
                    high: 9,
                    low: -7,
                    close: 1,
                    volume: 12,
                    ticks: 4,
                }],
            },
            Response::Done {
                request: 0x02,
                items: 2,
                first_held: 1,
                newest: 9,
                epoch: 3,
                producer: 1_700_000_000_000_000_000,
            },
            Response::Error {
                code: ERR_BUSY,
                message: "too many clients".into(),
            },
        ] {
            let mut b = Vec::new();
            encode_response(&r, &mut b);
            let n = b.len();
            assert_eq!(decode_response(&b), Ok(Some((r.clone(), n))));
            assert_eq!(decode_response(&b[..n - 1]), Ok(None));
        }
        let mut bad = Vec::new();
        encode_response(&Response::Ticks(vec![tick]), &mut bad);
        bad[4 + 2 + 4 + 26] = 9; // the tick's kind byte
        assert!(decode_response(&bad).is_err());
    }

    #[test]
    fn endpoints_parse_and_display() {
        let tcp = |a: &str| Endpoint::Tcp(a.parse().unwrap());
        let unix = |p: &str| Endpoint::Unix(PathBuf::from(p));
        for (text, want, shown) in [
            (
                "tcp://10.0.0.1:7070",
                tcp("10.0.0.1:7070"),
                "tcp://10.0.0.1:7070",
            ),
            ("10.0.0.1:7070", tcp("10.0.0.1:7070"), "tcp://10.0.0.1:7070"),
            (" 127.0.0.1:0 ", tcp("127.0.0.1:0"), "tcp://127.0.0.1:0"),
            ("[::1]:7070", tcp("[::1]:7070"), "tcp://[::1]:7070"),
            ("tcp://[fe80::1]:1", tcp("[fe80::1]:1"), "tcp://[fe80::1]:1"),
            ("/tmp/feed.sock", unix("/tmp/feed.sock"), "/tmp/feed.sock"),
            ("./feed.sock", unix("./feed.sock"), "./feed.sock"),
            ("run/feed.sock", unix("run/feed.sock"), "run/feed.sock"),
            ("unix:///tmp/f.sock", unix("/tmp/f.sock"), "/tmp/f.sock"),
            ("unix://f.sock", unix("f.sock"), "./f.sock"),
        ] {
            let e: Endpoint = text.parse().unwrap_or_else(|m| panic!("{text}: {m}"));
            assert_eq!(e, want, "{text}");
            assert_eq!(e.to_string(), shown, "{text}");
            // Written and read again: the same socket, written the same way.
            let again: Endpoint = shown.parse().unwrap();
            assert_eq!(again.to_string(), shown, "{shown} parses back");
            if !text.starts_with("unix://f") {
                assert_eq!(again, want, "{shown} parses back");
            }
        }
        assert_eq!(
            Endpoint::from(Path::new("f.sock")).to_string().parse(),
            Ok(unix("./f.sock"))
        );
    }

    #[test]
    fn malformed_endpoints_are_refused_with_what_is_wanted() {
        for (text, says) in [
            ("", "neither a TCP address"),
            ("feed.sock", "neither a TCP address"),
            ("localhost:7070", "neither a TCP address"),
            ("10.0.0.1", "neither a TCP address"),
            ("10.0.0.1:70000", "neither a TCP address"),
            ("udp://10.0.0.1:7070", "neither a TCP address"),
            ("tcp://", "is not tcp://IP:PORT"),
            ("tcp://localhost:7070", "host names are not resolved"),
            ("tcp://10.0.0.1", "is not tcp://IP:PORT"),
            ("tcp:///tmp/feed.sock", "is not tcp://IP:PORT"),
            ("unix://", "names no socket path"),
        ] {
            let e = text.parse::<Endpoint>().expect_err(text);
            assert!(e.contains(says), "{text:?}: {e}");
            assert!(e.contains(&format!("{text:?}")), "{text:?}: names it: {e}");
        }
    }

    /// `request_at` over TCP: the request as sent, the answer read whole across
    /// several writes; a refused connection is an error naming the endpoint.
    #[test]
    fn request_at_speaks_the_frames_over_tcp() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let at = Endpoint::Tcp(listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 64];
            let r = loop {
                if let Ok(Decoded::Request(r, _)) = decode_request(&buf, 2) {
                    break r;
                }
                let n = s.read(&mut chunk).unwrap();
                assert!(n > 0, "the client closed before its request");
                buf.extend_from_slice(&chunk[..n]);
            };
            let mut out = Vec::new();
            let ticks: Vec<Tick> = (1..=3)
                .map(|seq| Tick {
                    seq,
                    ..Tick::default()
                })
                .collect();
            encode_response(&Response::Ticks(ticks), &mut out);
            encode_response(
                &Response::Done {
                    request: r.kind(),
                    items: 3,
                    first_held: 1,
                    newest: 3,
                    epoch: 0,
                    producer: 42,
                },
                &mut out,
            );
            for piece in out.chunks(50) {
                s.write_all(piece).unwrap();
                s.flush().unwrap();
            }
            r
        });
        let t = Duration::from_secs(5);
        let a = request_at(&at, &Request::Range { from: 1, to: 4 }, t).unwrap();
        assert_eq!(server.join().unwrap(), Request::Range { from: 1, to: 4 });
        assert_eq!(
            a.ticks.iter().map(|t| t.seq).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!((a.items, a.first_held, a.newest, a.producer), (3, 1, 3, 42));
        // Nobody listens there any more.
        let e = request_at(&at, &Request::Snapshot { depth: 1 }, t).unwrap_err();
        assert!(e.starts_with(&format!("cannot connect to {at}")), "{e}");
        let gone = Endpoint::Unix(PathBuf::from("/nonexistent/feed.sock"));
        let e = request_at(&gone, &Request::Snapshot { depth: 1 }, t).unwrap_err();
        assert!(e.contains("/nonexistent/feed.sock"), "{e}");
    }
}
