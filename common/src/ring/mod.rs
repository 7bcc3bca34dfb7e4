//! The broadcast ring: one producer, any number of consumers, 64-byte ticks.
//!
//! The protocol is written once, over any [`Region`] (a [`Header`] and a slice of
//! [`Slot`]s). [`HeapRegion`] puts the ring in ordinary memory, for threads in one
//! process and for the loom and Miri checks; [`shm`] maps it from a file under
//! `/dev/shm` so that two processes share it.
//!
//! # Guarantees
//!
//! - [`Publisher::publish`] and [`Subscriber::poll`] never allocate, lock, block or
//!   make a system call. Publishing never waits for consumers: a consumer that falls
//!   more than the capacity behind is *lapped*.
//! - A consumer never returns a torn or stale tick. Each slot carries the sequence
//!   number of the tick in it (word 0 of the slot is the tick's `seq`); the consumer
//!   checks it before and after copying the payload, seqlock style, and reports a
//!   lapped read as [`Poll::Gap`] with the exact number of ticks skipped.
//! - For every consumer, `published == received + missed` once it has drained the
//!   ring: each sequence number is either returned as a tick or counted in a gap.
//!
//! # Protocol
//!
//! Publishing tick `s` into slot `s & mask`:
//! 1. store `s | WRITING` in word 0 (relaxed), then a release fence;
//! 2. store the payload words 1..8 (relaxed);
//! 3. store `s` in word 0 (release), then `s` in the header's `published` (release).
//!
//! Polling for tick `n`: load word 0 (acquire). If it is `n`, copy words 1..8
//! (relaxed), acquire fence, load word 0 again: still `n` means the copy is whole.
//! A value below `n`, or `n | WRITING`, means not yet published. Anything above `n`
//! means the producer has wrapped past `n`: the consumer is lapped.

#[cfg(not(loom))]
pub mod shm;

use crate::sync::{fence, AtomicU32, AtomicU64, Ordering};
use crate::tick::{Tick, TICK_LAYOUT_FINGERPRINT, TICK_WORDS};
use std::sync::Arc;

/// First word of every ring header.
pub const MAGIC: u64 = u64::from_le_bytes(*b"HFTRING\0");
/// Version of the header and slot layout; bumped on any incompatible change.
pub const LAYOUT_VERSION: u32 = 1;
/// Bytes reserved for the header at the start of a ring file; slots follow.
pub const HEADER_BYTES: usize = 4096;
/// Smallest capacity a ring may have.
pub const MIN_CAPACITY: u64 = 2;
/// Largest capacity a ring may have (2³⁰ slots, 64 GiB).
pub const MAX_CAPACITY: u64 = 1 << 30;

/// Set in a slot's word 0 while the producer writes that slot.
const WRITING: u64 = 1 << 63;

/// How often (in consecutive empty polls) [`Subscriber::poll`] looks at the header
/// to notice the end of the stream.
const END_CHECK_EVERY: u32 = 1024;

/// Lifecycle of the producer, as stored in the header.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProducerState {
    /// Header written, nothing published yet or publishing.
    Running = 1,
    /// The producer finished its stream; nothing more will be published.
    Ended = 2,
}

/// The ring header. All fields are atomics so that the same type works in shared
/// memory, under loom and under Miri; the identity fields are written once, before
/// the ring is visible to any consumer.
#[repr(C, align(128))]
pub struct Header {
    /// [`MAGIC`]. Written last at creation.
    pub magic: AtomicU64,
    /// [`LAYOUT_VERSION`].
    pub layout_version: AtomicU32,
    /// Size of one slot in bytes (64).
    pub slot_bytes: AtomicU32,
    /// [`TICK_LAYOUT_FINGERPRINT`] of the producer's build.
    pub tick_fingerprint: AtomicU64,
    /// Number of slots, a power of two.
    pub capacity: AtomicU64,
    /// Process id of the producer.
    pub producer_pid: AtomicU32,
    /// Clock source of the producer's stamps ([`crate::clock::ClockSource`] as u32).
    pub clock_source: AtomicU32,
    /// Producer start time, nanoseconds since the Unix epoch; unique per producer start.
    pub epoch_ns: AtomicU64,
    _identity_pad: [u64; 9],
    /// Highest published sequence number (0: none yet). Producer-written.
    pub published: AtomicU64,
    /// Raw clock reading of the producer's last sign of life. Producer-written.
    pub heartbeat_raw: AtomicU64,
    /// [`ProducerState`] as u32. Producer-written.
    pub state: AtomicU32,
}

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER_BYTES);

/// One ring slot: a tick stored as eight atomic words, one cache line.
#[repr(C, align(64))]
pub struct Slot {
    words: [AtomicU64; TICK_WORDS],
}

const _: () = assert!(std::mem::size_of::<Slot>() == 64);

impl Slot {
    fn empty() -> Slot {
        Slot {
            words: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Header {
    fn new(capacity: u64, clock_source: u32, pid: u32, epoch_ns: u64) -> Header {
        let h = Header {
            magic: AtomicU64::new(0),
            layout_version: AtomicU32::new(0),
            slot_bytes: AtomicU32::new(0),
            tick_fingerprint: AtomicU64::new(0),
            capacity: AtomicU64::new(0),
            producer_pid: AtomicU32::new(0),
            clock_source: AtomicU32::new(0),
            epoch_ns: AtomicU64::new(0),
            _identity_pad: [0; 9],
            published: AtomicU64::new(0),
            heartbeat_raw: AtomicU64::new(0),
            state: AtomicU32::new(0),
        };
        h.init(capacity, clock_source, pid, epoch_ns);
        h
    }

    /// Writes the identity fields and marks the ring running; magic goes last.
    pub(crate) fn init(&self, capacity: u64, clock_source: u32, pid: u32, epoch_ns: u64) {
        self.layout_version.store(LAYOUT_VERSION, Ordering::Relaxed);
        self.slot_bytes
            .store(std::mem::size_of::<Slot>() as u32, Ordering::Relaxed);
        self.tick_fingerprint
            .store(TICK_LAYOUT_FINGERPRINT, Ordering::Relaxed);
        self.capacity.store(capacity, Ordering::Relaxed);
        self.producer_pid.store(pid, Ordering::Relaxed);
        self.clock_source.store(clock_source, Ordering::Relaxed);
        self.epoch_ns.store(epoch_ns, Ordering::Relaxed);
        self.published.store(0, Ordering::Relaxed);
        self.heartbeat_raw.store(0, Ordering::Relaxed);
        self.state
            .store(ProducerState::Running as u32, Ordering::Relaxed);
        // SYNC POINT: pairs with the acquire load of `magic` in `shm::validate_header`.
        self.magic.store(MAGIC, Ordering::Release);
    }

    /// The producer's lifecycle state, if the stored value is a known one.
    pub fn producer_state(&self) -> Option<ProducerState> {
        match self.state.load(Ordering::Acquire) {
            1 => Some(ProducerState::Running),
            2 => Some(ProducerState::Ended),
            _ => None,
        }
    }
}

/// Memory holding a ring: a header and `capacity` slots.
///
/// Implementations must return the same header and slots on every call, with
/// `slots().len()` a power of two equal to the header's capacity.
pub trait Region {
    /// The ring header.
    fn header(&self) -> &Header;
    /// The slots; the length is a power of two.
    fn slots(&self) -> &[Slot];
}

impl<R: Region + ?Sized> Region for Arc<R> {
    fn header(&self) -> &Header {
        (**self).header()
    }
    fn slots(&self) -> &[Slot] {
        (**self).slots()
    }
}

/// A ring in ordinary heap memory, shared between threads through `Arc`.
pub struct HeapRegion {
    header: Header,
    slots: Box<[Slot]>,
}

impl HeapRegion {
    /// A new, empty ring of `capacity` slots, ready for one [`Publisher`].
    ///
    /// # Panics
    ///
    /// If `capacity` is not a power of two between [`MIN_CAPACITY`] and [`MAX_CAPACITY`].
    ///
    /// # Examples
    ///
    /// ```
    /// use common::ring::{HeapRegion, Poll, Publisher, Subscriber, StartAt};
    /// use common::tick::Tick;
    /// use std::sync::Arc;
    ///
    /// let region = Arc::new(HeapRegion::new(8));
    /// let mut publisher = Publisher::new(region.clone());
    /// let mut subscriber = Subscriber::new(region, StartAt::Oldest);
    /// publisher.publish(&Tick { symbol: 2, ..Tick::default() });
    /// match subscriber.poll() {
    ///     Poll::Tick(t) => assert_eq!((t.seq, t.symbol), (1, 2)),
    ///     other => panic!("expected a tick, got {other:?}"),
    /// }
    /// assert_eq!(subscriber.poll(), Poll::Empty);
    /// ```
    pub fn new(capacity: u64) -> HeapRegion {
        assert!(
            capacity.is_power_of_two() && (MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity),
            "ring capacity must be a power of two in {MIN_CAPACITY}..={MAX_CAPACITY}, got {capacity}"
        );
        HeapRegion {
            header: Header::new(capacity, 0, std::process::id(), 0),
            slots: (0..capacity).map(|_| Slot::empty()).collect(),
        }
    }
}

impl Region for HeapRegion {
    fn header(&self) -> &Header {
        &self.header
    }
    fn slots(&self) -> &[Slot] {
        &self.slots
    }
}

/// The single writer of a ring. Not `Clone`: one producer per ring.
pub struct Publisher<R: Region> {
    region: R,
    next: u64,
    mask: u64,
}

impl<R: Region> Publisher<R> {
    /// Takes the producer side of a freshly initialised region.
    pub fn new(region: R) -> Publisher<R> {
        let mask = region.slots().len() as u64 - 1;
        let next = region.header().published.load(Ordering::Relaxed) + 1;
        Publisher { region, next, mask }
    }

    /// Publishes `tick`, overwriting its `seq` with the next sequence number, which is
    /// returned. Never blocks, allocates or fails.
    #[inline]
    pub fn publish(&mut self, tick: &Tick) -> u64 {
        let seq = self.next;
        let mut words = tick.to_words();
        words[0] = seq;
        let slot = &self.region.slots()[(seq & self.mask) as usize];
        slot.words[0].store(seq | WRITING, Ordering::Relaxed);
        // SYNC POINT: pairs with the acquire fence in `Subscriber::poll`: a reader that
        // sees any payload word stored below also sees the WRITING mark (or later).
        fence(Ordering::Release);
        for (dst, &w) in slot.words[1..].iter().zip(&words[1..]) {
            dst.store(w, Ordering::Relaxed);
        }
        // SYNC POINT: pairs with the acquire load of word 0 in `Subscriber::poll`.
        slot.words[0].store(seq, Ordering::Release);
        // SYNC POINT: pairs with the acquire load of `published` in `Subscriber::resync`
        // and `Subscriber::poll`'s end-of-stream check.
        self.region.header().published.store(seq, Ordering::Release);
        self.next = seq + 1;
        seq
    }

    /// Sequence number the next published tick will get.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Number of ticks published so far.
    pub fn published(&self) -> u64 {
        self.next - 1
    }

    /// Records a sign of life (a raw clock reading) for consumers watching for a dead producer.
    #[inline]
    pub fn heartbeat(&self, now_raw: u64) {
        self.region
            .header()
            .heartbeat_raw
            .store(now_raw, Ordering::Relaxed);
    }

    /// Marks the stream as finished: consumers that drain the ring then see [`Poll::Ended`].
    pub fn end(&self) {
        // SYNC POINT: pairs with the acquire load in `Header::producer_state`.
        self.region
            .header()
            .state
            .store(ProducerState::Ended as u32, Ordering::Release);
    }

    /// The region this publisher writes.
    pub fn region(&self) -> &R {
        &self.region
    }
}

/// Result of one [`Subscriber::poll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// The next tick, whole and in order.
    Tick(Tick),
    /// Nothing new yet.
    Empty,
    /// The consumer was lapped: `missed` ticks starting at `first_seq` were overwritten
    /// before they could be read and are skipped. Polling goes on after them.
    Gap {
        /// First skipped sequence number.
        first_seq: u64,
        /// Number of skipped ticks.
        missed: u64,
    },
    /// A slot held a complete write whose bytes are not a valid tick (a corrupt or
    /// foreign ring). The tick `seq` is skipped and counted as missed.
    Corrupt {
        /// Sequence number of the invalid tick.
        seq: u64,
    },
    /// The producer ended its stream and every published tick has been consumed.
    Ended,
}

/// Where a new subscriber starts reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest tick still safely in the ring (seq 1 if nothing was overwritten yet);
    /// ticks already gone are reported as a gap by the first poll.
    Oldest,
    /// The next tick to be published; earlier ticks are not counted at all.
    Latest,
}

/// One reader of a ring. Each subscriber keeps its own position; any number may read.
pub struct Subscriber<R: Region> {
    region: R,
    next: u64,
    mask: u64,
    capacity: u64,
    empty_polls: u32,
}

impl<R: Region> Subscriber<R> {
    /// A reader of `region`, starting as `start` says.
    pub fn new(region: R, start: StartAt) -> Subscriber<R> {
        let capacity = region.slots().len() as u64;
        let published = region.header().published.load(Ordering::Acquire);
        let next = match start {
            StartAt::Latest => published + 1,
            StartAt::Oldest => 1,
        };
        Subscriber {
            region,
            next,
            mask: capacity - 1,
            capacity,
            empty_polls: 0,
        }
    }

    /// Returns the next tick, or says why there is none. Never blocks, allocates or
    /// makes a system call.
    #[inline]
    pub fn poll(&mut self) -> Poll {
        let n = self.next;
        let slot = &self.region.slots()[(n & self.mask) as usize];
        // SYNC POINT: pairs with the release store of word 0 in `Publisher::publish`.
        let before = slot.words[0].load(Ordering::Acquire);
        if before == n {
            let mut words = [0u64; TICK_WORDS];
            words[0] = n;
            for (dst, src) in words[1..].iter_mut().zip(&slot.words[1..]) {
                *dst = src.load(Ordering::Relaxed);
            }
            // SYNC POINT: pairs with the release fence in `Publisher::publish`.
            fence(Ordering::Acquire);
            let after = slot.words[0].load(Ordering::Relaxed);
            if after != n {
                // Overwritten while we copied: the copy may be torn; discard it.
                return self.resync(after & !WRITING);
            }
            self.next = n + 1;
            self.empty_polls = 0;
            return match Tick::from_words(words) {
                Some(tick) => Poll::Tick(tick),
                None => Poll::Corrupt { seq: n },
            };
        }
        let slot_seq = before & !WRITING;
        if slot_seq > n {
            return self.resync(slot_seq);
        }
        // Not published yet. Now and then, look whether the stream has ended.
        self.empty_polls += 1;
        if self.empty_polls >= END_CHECK_EVERY {
            self.empty_polls = 0;
            let header = self.region.header();
            if header.producer_state() == Some(ProducerState::Ended)
                && header.published.load(Ordering::Acquire) < n
            {
                return Poll::Ended;
            }
        }
        Poll::Empty
    }

    /// Skips past ticks that were overwritten; `seen` is a sequence number found in the
    /// slot of `self.next`, proof that the producer got at least that far.
    #[cold]
    fn resync(&mut self, seen: u64) -> Poll {
        // SYNC POINT: pairs with the release store of `published` in `Publisher::publish`.
        let head = self
            .region
            .header()
            .published
            .load(Ordering::Acquire)
            .max(seen);
        // Jump to half a ring behind the head: far enough back to keep what can still be
        // read, far enough forward not to be lapped again at once.
        let target = (head + 1)
            .saturating_sub(self.capacity / 2)
            .max(self.next + 1);
        let first_seq = self.next;
        self.next = target;
        self.empty_polls = 0;
        Poll::Gap {
            first_seq,
            missed: target - first_seq,
        }
    }

    /// Sequence number this subscriber reads next.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// The ring header, for liveness checks (published count, heartbeat, state, epoch).
    pub fn header(&self) -> &Header {
        self.region.header()
    }

    /// The region this subscriber reads.
    pub fn region(&self) -> &R {
        &self.region
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::tick::{Side, TickKind};

    fn tick(symbol: u16, px: i64) -> Tick {
        Tick {
            symbol,
            kind: TickKind::Quote,
            side: Side::None,
            bid_px_e8: px,
            ask_px_e8: px + 1,
            scheduled_raw: px as u64,
            published_raw: px as u64 + 1,
            ..Tick::default()
        }
    }

    fn ring(cap: u64) -> (Publisher<Arc<HeapRegion>>, Arc<HeapRegion>) {
        let region = Arc::new(HeapRegion::new(cap));
        (Publisher::new(region.clone()), region)
    }

    #[test]
    fn empty_ring_polls_empty() {
        let (_p, r) = ring(4);
        let mut s = Subscriber::new(r, StartAt::Oldest);
        for _ in 0..10 {
            assert_eq!(s.poll(), Poll::Empty);
        }
    }

    #[test]
    fn wraps_around_in_order() {
        let (mut p, r) = ring(4);
        let mut s = Subscriber::new(r, StartAt::Oldest);
        for i in 0..100i64 {
            assert_eq!(p.publish(&tick(i as u16, i)), i as u64 + 1);
            match s.poll() {
                Poll::Tick(t) => {
                    assert_eq!(t.seq, i as u64 + 1);
                    assert_eq!(t.symbol, i as u16);
                    assert_eq!(t.bid_px_e8, i);
                    assert_eq!(t.ask_px_e8, i + 1);
                }
                other => panic!("tick {i}: {other:?}"),
            }
        }
        assert_eq!(s.poll(), Poll::Empty);
    }

    #[test]
    fn lapped_consumer_reports_exact_gap() {
        let (mut p, r) = ring(8);
        let mut s = Subscriber::new(r, StartAt::Oldest);
        for i in 0..20 {
            p.publish(&tick(0, i));
        }
        // Seqs 1..=20 published into 8 slots: 1..=12 are gone.
        let mut received = Vec::new();
        let mut missed = 0;
        loop {
            match s.poll() {
                Poll::Tick(t) => received.push(t.seq),
                Poll::Gap {
                    first_seq,
                    missed: m,
                } => {
                    assert_eq!(first_seq, 1);
                    missed += m;
                }
                Poll::Empty => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(missed, 16, "jumps to half a ring behind the head");
        assert_eq!(received, (17..=20).collect::<Vec<_>>());
        assert_eq!(received.len() as u64 + missed, p.published());
    }

    #[test]
    fn late_latest_subscriber_sees_only_new_ticks() {
        let (mut p, r) = ring(8);
        p.publish(&tick(0, 1));
        let mut s = Subscriber::new(r, StartAt::Latest);
        assert_eq!(s.poll(), Poll::Empty);
        p.publish(&tick(0, 2));
        assert!(matches!(s.poll(), Poll::Tick(t) if t.seq == 2));
    }

    #[test]
    fn many_subscribers_each_see_everything() {
        let (mut p, r) = ring(16);
        let mut subs: Vec<_> = (0..3)
            .map(|_| Subscriber::new(r.clone(), StartAt::Oldest))
            .collect();
        for i in 0..10 {
            p.publish(&tick(1, i));
        }
        for s in &mut subs {
            for i in 0..10 {
                assert!(matches!(s.poll(), Poll::Tick(t) if t.bid_px_e8 == i));
            }
            assert_eq!(s.poll(), Poll::Empty);
        }
    }

    #[test]
    fn end_of_stream_after_drain() {
        let (mut p, r) = ring(8);
        let mut s = Subscriber::new(r, StartAt::Oldest);
        p.publish(&tick(0, 1));
        p.end();
        assert!(matches!(s.poll(), Poll::Tick(_)));
        let mut polls = 0;
        while s.poll() != Poll::Ended {
            polls += 1;
            assert!(polls <= END_CHECK_EVERY, "end not noticed");
        }
    }

    #[test]
    fn corrupt_slot_is_skipped_and_counted() {
        let (mut p, r) = ring(8);
        let mut s = Subscriber::new(r.clone(), StartAt::Oldest);
        p.publish(&tick(0, 1));
        // A foreign writer puts an invalid kind byte into the slot.
        r.slots()[1].words[3].store(0xff << 16, Ordering::Relaxed);
        assert_eq!(s.poll(), Poll::Corrupt { seq: 1 });
        p.publish(&tick(0, 2));
        assert!(matches!(s.poll(), Poll::Tick(t) if t.seq == 2));
    }

    /// A producer thread races a consumer thread on a small ring. Every tick's payload
    /// is derived from its seq, so a torn read (words from two different ticks) would
    /// show as a mismatch; every seq must be received or counted missed exactly once.
    #[test]
    fn concurrent_stress_never_returns_torn_ticks() {
        let total: u64 = if cfg!(miri) { 2_000 } else { 2_000_000 };
        let (mut p, r) = ring(if cfg!(miri) { 4 } else { 64 });
        let mut s = Subscriber::new(r, StartAt::Oldest);
        let producer = std::thread::spawn(move || {
            for seq in 1..=total {
                let v = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let t = Tick {
                    scheduled_raw: v,
                    published_raw: !v,
                    symbol: (seq % 65_000) as u16,
                    kind: if seq % 3 == 0 {
                        TickKind::Trade
                    } else {
                        TickKind::Quote
                    },
                    side: Side::Buy,
                    last_qty_lots: seq as u32,
                    bid_px_e8: v as i64,
                    ask_px_e8: v.rotate_left(13) as i64,
                    bid_qty_lots: (v >> 32) as u32,
                    ask_qty_lots: v as u32,
                    last_px_e8: v.rotate_right(7) as i64,
                    seq: 0,
                };
                assert_eq!(p.publish(&t), seq);
            }
            p.end();
        });
        let (mut received, mut missed, mut expect) = (0u64, 0u64, 1u64);
        loop {
            match s.poll() {
                Poll::Tick(t) => {
                    assert_eq!(t.seq, expect, "out of order");
                    let v = t.seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    assert_eq!(t.scheduled_raw, v, "torn tick {}", t.seq);
                    assert_eq!(t.published_raw, !v, "torn tick {}", t.seq);
                    assert_eq!(t.symbol, (t.seq % 65_000) as u16);
                    assert_eq!(t.last_qty_lots, t.seq as u32);
                    assert_eq!(t.bid_px_e8, v as i64);
                    assert_eq!(t.ask_px_e8, v.rotate_left(13) as i64);
                    assert_eq!(t.bid_qty_lots, (v >> 32) as u32);
                    assert_eq!(t.ask_qty_lots, v as u32);
                    assert_eq!(t.last_px_e8, v.rotate_right(7) as i64);
                    received += 1;
                    expect += 1;
                }
                Poll::Gap {
                    first_seq,
                    missed: m,
                } => {
                    assert_eq!(first_seq, expect);
                    assert!(m > 0);
                    missed += m;
                    expect += m;
                }
                Poll::Empty => std::hint::spin_loop(),
                Poll::Ended => break,
                Poll::Corrupt { seq } => panic!("corrupt tick {seq}"),
            }
        }
        producer.join().unwrap();
        assert_eq!(received + missed, total);
        assert!(received > 0);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Loom models of the ring protocol: `RUSTFLAGS="--cfg loom" cargo test -p common --release ring::loom_tests`.
    use super::*;
    use loom::thread;

    fn t(v: u64) -> Tick {
        Tick {
            scheduled_raw: v,
            published_raw: v,
            bid_px_e8: v as i64,
            last_px_e8: v as i64,
            ..Tick::default()
        }
    }

    fn check(tick: &Tick) {
        // Payload derived from seq: any mix of two writes is detected.
        assert_eq!(tick.scheduled_raw, tick.seq * 10);
        assert_eq!(tick.published_raw, tick.seq * 10);
        assert_eq!(tick.bid_px_e8, (tick.seq * 10) as i64);
        assert_eq!(tick.last_px_e8, (tick.seq * 10) as i64);
    }

    /// Publish three ticks into two slots while a consumer polls: the consumer sees
    /// whole ticks in order, or gaps, and accounts for every seq it passes.
    #[test]
    fn publish_poll_lap() {
        loom::model(|| {
            let region = Arc::new(HeapRegion::new(2));
            let mut p = Publisher::new(region.clone());
            let mut s = Subscriber::new(region, StartAt::Oldest);
            let h = thread::spawn(move || {
                for seq in 1..=3u64 {
                    p.publish(&t(seq * 10));
                }
            });
            let mut expect = 1;
            for _ in 0..3 {
                match s.poll() {
                    Poll::Tick(tick) => {
                        assert_eq!(tick.seq, expect);
                        check(&tick);
                        expect += 1;
                    }
                    Poll::Gap { first_seq, missed } => {
                        assert_eq!(first_seq, expect);
                        expect += missed;
                    }
                    Poll::Empty => {}
                    other => panic!("{other:?}"),
                }
            }
            h.join().unwrap();
            assert!(expect <= 4);
        });
    }

    /// Two consumers on one ring each see an unbroken, untorn prefix.
    #[test]
    fn two_consumers() {
        loom::model(|| {
            let region = Arc::new(HeapRegion::new(4));
            let mut p = Publisher::new(region.clone());
            let mut s1 = Subscriber::new(region.clone(), StartAt::Oldest);
            let mut s2 = Subscriber::new(region, StartAt::Oldest);
            let h = thread::spawn(move || {
                for seq in 1..=2u64 {
                    p.publish(&t(seq * 10));
                }
            });
            let h2 = thread::spawn(move || {
                for _ in 0..2 {
                    if let Poll::Tick(tick) = s2.poll() {
                        check(&tick);
                    }
                }
            });
            for _ in 0..2 {
                if let Poll::Tick(tick) = s1.poll() {
                    check(&tick);
                }
            }
            h.join().unwrap();
            h2.join().unwrap();
        });
    }
}
