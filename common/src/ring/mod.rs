//! The broadcast ring: one producer, any number of consumers, 64-byte ticks.
//!
//! The protocol is written once, over any [`Region`] (a [`Header`] and a slice of
//! [`Slot`]s). [`HeapRegion`] puts the ring in ordinary memory, for threads in one
//! process and for the loom and Miri checks; [`shm`] maps it from a file under
//! `/dev/shm` so that two processes share it.
//!
//! # Guarantees
//!
//! - [`Publisher::publish`] and [`Subscriber::poll`] never allocate, lock or make a
//!   system call. In the default *lossy* mode publishing never waits for consumers: a
//!   consumer that falls more than the capacity behind is *lapped*.
//! - In *lossless* mode ([`HeapRegion::lossless`], `ring.lossless` in the config) each
//!   consumer registers in the header's consumer table and publishes its cursor; the
//!   producer never overwrites a tick a registered, live consumer has not yet passed. It
//!   spins (blocks) while the slowest one is a whole ring behind, and *evicts* a
//!   consumer whose heartbeat has not moved for the liveness timeout, so that a dead
//!   consumer cannot stop the stream for ever. An evicted consumer goes on reading in
//!   lossy fashion and reports what it missed as gaps.
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
use crate::transport::{FeedSource, Sink, Source};
use std::sync::Arc;

/// What [`Subscriber::poll`] returns: the transport interface's [`crate::transport::Poll`]
/// (a ring never returns `Failed`).
pub use crate::transport::{Poll, ProducerIdentity, Progress};

/// First word of every ring header.
pub const MAGIC: u64 = u64::from_le_bytes(*b"HFTRING\0");
/// Version of the header and slot layout; bumped on any incompatible change.
pub const LAYOUT_VERSION: u32 = 3;
/// Bytes reserved for the header at the start of a ring file; slots follow.
pub const HEADER_BYTES: usize = 4096;
/// Smallest capacity a ring may have.
pub const MIN_CAPACITY: u64 = 2;
/// Largest capacity a ring may have (2³⁰ slots, 64 GiB).
pub const MAX_CAPACITY: u64 = 1 << 30;

/// Set in a slot's word 0 while the producer writes that slot.
const WRITING: u64 = 1 << 63;

/// A sequence number read from the header, where a corrupt or hostile file may put any
/// value: real ones stay below [`WRITING`], so larger ones are clamped there, which
/// keeps a consumer's `+ 1` on sequence numbers from overflowing (found by
/// `tests/fuzz.rs`).
fn header_seq(v: u64) -> u64 {
    v.min(WRITING - 1)
}

/// Entries in the header's consumer table: how many consumers a lossless ring can
/// register at once.
pub const MAX_CONSUMERS: usize = 16;

/// [`ConsumerSlot::state`]: free for the taking.
const CONSUMER_FREE: u32 = 0;
/// Being filled in by a registering consumer; the producer ignores it.
const CONSUMER_CLAIMING: u32 = 1;
/// Registered: the producer waits for this consumer's cursor.
const CONSUMER_ACTIVE: u32 = 2;
/// Evicted by the producer after its liveness timeout; the producer ignores it.
const CONSUMER_EVICTED: u32 = 3;

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
/// the ring is visible to any consumer. The fields are private to this module: the
/// feed and the engine go through [`Publisher`] and [`Subscriber`], and tools that
/// build or damage ring files use [`offsets`].
#[repr(C, align(128))]
pub struct Header {
    /// [`MAGIC`]. Written last at creation.
    magic: AtomicU64,
    /// [`LAYOUT_VERSION`].
    layout_version: AtomicU32,
    /// Size of one slot in bytes (64).
    slot_bytes: AtomicU32,
    /// [`TICK_LAYOUT_FINGERPRINT`] of the producer's build.
    tick_fingerprint: AtomicU64,
    /// Number of slots, a power of two.
    capacity: AtomicU64,
    /// Process id of the producer.
    producer_pid: AtomicU32,
    /// Clock source of the producer's stamps ([`crate::clock::ClockSource`] as u32).
    clock_source: AtomicU32,
    /// Producer start time, nanoseconds since the Unix epoch; unique per producer start.
    epoch_ns: AtomicU64,
    /// 1 in lossless mode (the producer waits for registered consumers), 0 otherwise.
    lossless: AtomicU32,
    _identity_pad32: u32,
    /// Sequence number of the ring's first tick: 1, or where a feed restarted on its
    /// journal continues the sequence of its earlier run.
    first_seq: AtomicU64,
    _identity_pad: [u64; 7],
    /// Highest published sequence number (0: none yet). Producer-written.
    published: AtomicU64,
    /// Raw clock reading of the producer's last sign of life. Producer-written.
    heartbeat_raw: AtomicU64,
    /// [`ProducerState`] as u32. Producer-written.
    state: AtomicU32,
    /// The consumer table of lossless mode, one cache-line pair per consumer.
    consumers: [ConsumerSlot; MAX_CONSUMERS],
}

/// One registered consumer of a lossless ring. Written by that consumer (cursor,
/// heartbeat) and read by the producer; the producer writes only `state`, to evict.
#[repr(C, align(128))]
struct ConsumerSlot {
    /// Free, claiming, active or evicted (private constants).
    state: AtomicU32,
    /// Process id of the consumer.
    pid: AtomicU32,
    /// Highest sequence number the consumer has passed (read, or skipped in a gap).
    cursor: AtomicU64,
    /// Any value that changes while the consumer is alive (its raw clock).
    heartbeat: AtomicU64,
}

impl ConsumerSlot {
    fn empty() -> ConsumerSlot {
        ConsumerSlot {
            state: AtomicU32::new(CONSUMER_FREE),
            pid: AtomicU32::new(0),
            cursor: AtomicU64::new(0),
            heartbeat: AtomicU64::new(0),
        }
    }
}

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER_BYTES);

/// Byte offsets of the header's fields in a ring file of this [`LAYOUT_VERSION`], for
/// tools and tests that build or damage ring files. Readers never use them: they go
/// through [`shm::open`], which validates every field.
pub mod offsets {
    use super::Header;
    use std::mem::offset_of;

    /// `magic` (8 bytes).
    pub const MAGIC: usize = offset_of!(Header, magic);
    /// `layout_version` (4 bytes).
    pub const LAYOUT_VERSION: usize = offset_of!(Header, layout_version);
    /// `slot_bytes` (4 bytes).
    pub const SLOT_BYTES: usize = offset_of!(Header, slot_bytes);
    /// `tick_fingerprint` (8 bytes).
    pub const TICK_FINGERPRINT: usize = offset_of!(Header, tick_fingerprint);
    /// `capacity` (8 bytes).
    pub const CAPACITY: usize = offset_of!(Header, capacity);
    /// `producer_pid` (4 bytes).
    pub const PRODUCER_PID: usize = offset_of!(Header, producer_pid);
    /// `clock_source` (4 bytes).
    pub const CLOCK_SOURCE: usize = offset_of!(Header, clock_source);
    /// `epoch_ns` (8 bytes).
    pub const EPOCH_NS: usize = offset_of!(Header, epoch_ns);
    /// `lossless` (4 bytes).
    pub const LOSSLESS: usize = offset_of!(Header, lossless);
    /// `published` (8 bytes).
    pub const PUBLISHED: usize = offset_of!(Header, published);
    /// `heartbeat_raw` (8 bytes).
    pub const HEARTBEAT_RAW: usize = offset_of!(Header, heartbeat_raw);
    /// `state` (4 bytes).
    pub const STATE: usize = offset_of!(Header, state);
    /// Every field above as (offset, width in bytes).
    pub const ALL: [(usize, usize); 12] = [
        (MAGIC, 8),
        (LAYOUT_VERSION, 4),
        (SLOT_BYTES, 4),
        (TICK_FINGERPRINT, 8),
        (CAPACITY, 8),
        (PRODUCER_PID, 4),
        (CLOCK_SOURCE, 4),
        (EPOCH_NS, 8),
        (LOSSLESS, 4),
        (PUBLISHED, 8),
        (HEARTBEAT_RAW, 8),
        (STATE, 4),
    ];
}

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
    fn new(capacity: u64, lossless: bool, first_seq: u64) -> Header {
        let h = Header {
            magic: AtomicU64::new(0),
            layout_version: AtomicU32::new(0),
            slot_bytes: AtomicU32::new(0),
            tick_fingerprint: AtomicU64::new(0),
            capacity: AtomicU64::new(0),
            producer_pid: AtomicU32::new(0),
            clock_source: AtomicU32::new(0),
            epoch_ns: AtomicU64::new(0),
            lossless: AtomicU32::new(0),
            _identity_pad32: 0,
            first_seq: AtomicU64::new(0),
            _identity_pad: [0; 7],
            published: AtomicU64::new(0),
            heartbeat_raw: AtomicU64::new(0),
            state: AtomicU32::new(0),
            consumers: std::array::from_fn(|_| ConsumerSlot::empty()),
        };
        h.init(capacity, lossless, 0, std::process::id(), 0, first_seq);
        h
    }

    /// Writes the identity fields and marks the ring running; magic goes last.
    ///
    /// SYNC POINT for every relaxed store below: they happen before the release store of
    /// `magic` at the end, which a consumer's acquire load of `magic` (in
    /// `shm::validate`) pairs with; a consumer therefore reads none of these fields
    /// before it has seen the magic. (A [`HeapRegion`] is initialised before it is
    /// shared at all.)
    pub(crate) fn init(
        &self,
        capacity: u64,
        lossless: bool,
        clock_source: u32,
        pid: u32,
        epoch_ns: u64,
        first_seq: u64,
    ) {
        assert!(
            (1..WRITING).contains(&first_seq),
            "a ring's first sequence number is in 1..2^63, got {first_seq}"
        );
        self.layout_version.store(LAYOUT_VERSION, Ordering::Relaxed);
        self.slot_bytes
            .store(std::mem::size_of::<Slot>() as u32, Ordering::Relaxed);
        self.tick_fingerprint
            .store(TICK_LAYOUT_FINGERPRINT, Ordering::Relaxed);
        self.capacity.store(capacity, Ordering::Relaxed);
        self.producer_pid.store(pid, Ordering::Relaxed);
        self.clock_source.store(clock_source, Ordering::Relaxed);
        self.epoch_ns.store(epoch_ns, Ordering::Relaxed);
        self.lossless.store(lossless as u32, Ordering::Relaxed);
        for c in &self.consumers {
            c.state.store(CONSUMER_FREE, Ordering::Relaxed);
        }
        self.first_seq.store(first_seq, Ordering::Relaxed);
        self.published.store(first_seq - 1, Ordering::Relaxed);
        self.heartbeat_raw.store(0, Ordering::Relaxed);
        self.state
            .store(ProducerState::Running as u32, Ordering::Relaxed);
        // SYNC POINT: pairs with the acquire load of `magic` in `shm::validate_header`.
        self.magic.store(MAGIC, Ordering::Release);
    }

    /// The producer's lifecycle state, if the stored value is a known one.
    pub fn producer_state(&self) -> Option<ProducerState> {
        // SYNC POINT: pairs with the release store of `Ended` in `Publisher::end`: a
        // consumer that sees the end also sees every `published` store before it.
        match self.state.load(Ordering::Acquire) {
            1 => Some(ProducerState::Running),
            2 => Some(ProducerState::Ended),
            _ => None,
        }
    }

    /// Sequence number of the ring's first tick (at least 1; a hostile file's value is
    /// clamped so that it cannot overflow a consumer's arithmetic).
    pub fn first_seq(&self) -> u64 {
        // SYNC POINT: an identity field, ordered by the `magic` pair (see `init`).
        header_seq(self.first_seq.load(Ordering::Relaxed)).max(1)
    }

    /// Whether the producer of this ring waits for registered consumers.
    pub fn is_lossless(&self) -> bool {
        // SYNC POINT: an identity field, ordered by the `magic` pair (see `init`).
        self.lossless.load(Ordering::Relaxed) == 1
    }

    /// Number of consumers registered and not evicted.
    pub fn active_consumers(&self) -> usize {
        self.consumers
            .iter()
            // SYNC POINT: pairs with the release store of ACTIVE in
            // `Subscriber::register` (a count only: nothing else is read through it).
            .filter(|c| c.state.load(Ordering::Acquire) == CONSUMER_ACTIVE)
            .count()
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
    /// A new, empty, lossy ring of `capacity` slots, ready for one [`Publisher`].
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
        HeapRegion::with_mode(capacity, false, 1)
    }

    /// A new, empty, lossless ring: its publisher waits for registered consumers
    /// (see [`Subscriber::register`]).
    ///
    /// # Panics
    ///
    /// As [`HeapRegion::new`].
    pub fn lossless(capacity: u64) -> HeapRegion {
        HeapRegion::with_mode(capacity, true, 1)
    }

    /// A new, empty, lossy ring whose first tick gets sequence number `first_seq`
    /// (as when a feed continues the sequence of its earlier run).
    ///
    /// # Panics
    ///
    /// As [`HeapRegion::new`], and if `first_seq` is 0 or not below 2⁶³.
    pub fn starting_at(capacity: u64, first_seq: u64) -> HeapRegion {
        HeapRegion::with_mode(capacity, false, first_seq)
    }

    fn with_mode(capacity: u64, lossless: bool, first_seq: u64) -> HeapRegion {
        assert!(
            capacity.is_power_of_two() && (MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity),
            "ring capacity must be a power of two in {MIN_CAPACITY}..={MAX_CAPACITY}, got {capacity}"
        );
        HeapRegion {
            header: Header::new(capacity, lossless, first_seq),
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

/// A consumer the producer of a lossless ring gave up waiting for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Eviction {
    /// The consumer's process id.
    pub pid: u32,
    /// The highest sequence number it had passed when evicted.
    pub cursor: u64,
    /// The sequence number the producer was waiting to publish.
    pub blocked_seq: u64,
}

/// What a lossless producer waited for, and whom it evicted.
#[derive(Clone, Copy, Debug, Default)]
pub struct LosslessStats {
    /// Times the producer found the slowest consumer a whole ring behind and waited.
    pub waits: u64,
    /// Raw clock units spent waiting (units of the `now` function given to
    /// [`Publisher::set_liveness`]; 0 without one).
    pub wait_raw: u64,
    /// Consumers evicted for a heartbeat that stood still for the liveness timeout.
    pub evictions: u64,
    /// The first [`MAX_CONSUMERS`] evictions.
    pub evicted: [Eviction; MAX_CONSUMERS],
}

/// The producer's side of lossless mode: liveness settings and what it saw last of
/// each consumer's heartbeat.
struct Lossless {
    /// Evict a consumer whose heartbeat stands still this long (raw units).
    timeout_raw: u64,
    /// The producer's clock; `None`: wait for ever, never evict.
    now: Option<Box<dyn FnMut() -> u64 + Send>>,
    /// Per consumer slot: (heartbeat last seen, when it was seen to change).
    seen: [(u64, u64); MAX_CONSUMERS],
    stats: LosslessStats,
}

/// The single writer of a ring. Not `Clone`: one producer per ring.
pub struct Publisher<R: Region> {
    region: R,
    next: u64,
    first_seq: u64,
    mask: u64,
    /// Highest sequence number that can be published without looking at the consumer
    /// table again; `u64::MAX` for a lossy ring.
    limit: u64,
    lossless: Option<Box<Lossless>>,
}

impl<R: Region> Publisher<R> {
    /// Takes the producer side of a freshly initialised region. A lossless region's
    /// publisher waits for ever for its consumers until [`Publisher::set_liveness`]
    /// gives it a clock and a timeout.
    pub fn new(region: R) -> Publisher<R> {
        let mask = region.slots().len() as u64 - 1;
        // SYNC POINT: none needed: the producer is the only writer of `published`, and
        // a fresh region holds 0 (written by `init` before the ring is shared).
        let next = region.header().published.load(Ordering::Relaxed) + 1;
        let lossless = region.header().is_lossless().then(|| {
            Box::new(Lossless {
                timeout_raw: u64::MAX,
                now: None,
                seen: [(0, 0); MAX_CONSUMERS],
                stats: LosslessStats::default(),
            })
        });
        let first_seq = region.header().first_seq();
        Publisher {
            region,
            next,
            first_seq,
            mask,
            limit: if lossless.is_some() { 0 } else { u64::MAX },
            lossless,
        }
    }

    /// Lossless mode: evict a consumer whose heartbeat has not changed for `timeout_raw`
    /// units of `now` while the producer waits for it; while waiting, the producer also
    /// stores `now` as its own heartbeat. No effect on a lossy ring.
    pub fn set_liveness(&mut self, timeout_raw: u64, now: impl FnMut() -> u64 + Send + 'static) {
        if let Some(l) = &mut self.lossless {
            l.timeout_raw = timeout_raw;
            l.now = Some(Box::new(now));
        }
    }

    /// Publishes `tick`, overwriting its `seq` with the next sequence number, which is
    /// returned. Never allocates or fails. On a lossy ring it never waits; on a lossless
    /// ring it waits while a registered, live consumer is a whole ring behind.
    #[inline]
    pub fn publish(&mut self, tick: &Tick) -> u64 {
        let seq = self.next;
        if seq > self.limit {
            self.make_room(seq);
        }
        let mut words = tick.to_words();
        words[0] = seq;
        let slot = &self.region.slots()[(seq & self.mask) as usize];
        // SYNC POINT: ordered before the payload by the release fence below.
        slot.words[0].store(seq | WRITING, Ordering::Relaxed);
        // SYNC POINT: pairs with the acquire fence in `Subscriber::poll`: a reader that
        // sees any payload word stored below also sees the WRITING mark (or later).
        fence(Ordering::Release);
        // SYNC POINT: the payload is published by the release store of word 0 below
        // (and fenced off from the WRITING mark above).
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

    /// Lossless mode: returns once `seq` can be written without overwriting a tick that
    /// an active consumer has not passed, evicting consumers that stopped living, and
    /// sets the new limit. Looks at the consumer table at least once per ring turn, so
    /// that a consumer registering late is waited for from then on.
    #[cold]
    #[inline(never)]
    fn make_room(&mut self, seq: u64) {
        let capacity = self.mask + 1;
        let header = self.region.header();
        let Some(l) = self.lossless.as_deref_mut() else {
            return;
        };
        let mut wait_start = None;
        loop {
            let mut limit = seq - 1 + capacity;
            for c in &header.consumers {
                // SYNC POINT: pairs with the release store of ACTIVE in `Subscriber::register`.
                if c.state.load(Ordering::Acquire) == CONSUMER_ACTIVE {
                    // SYNC POINT: pairs with the release store of the cursor in
                    // `Subscriber::poll`: the consumer's reads of every slot up to its
                    // cursor happen before this producer overwrites them.
                    let cursor = c.cursor.load(Ordering::Acquire);
                    limit = limit.min(cursor.saturating_add(capacity));
                }
            }
            if seq <= limit {
                self.limit = limit;
                if let (Some(start), Some(now)) = (wait_start, l.now.as_mut()) {
                    l.stats.wait_raw += now().saturating_sub(start);
                }
                return;
            }
            let now = l.now.as_mut().map_or(0, |now| now());
            if l.now.is_some() {
                // Waiting is not dying: other consumers watch this heartbeat.
                // SYNC POINT: none needed: consumers only compare it with its last value
                // (`Subscriber::producer_progress`); no data is published through it.
                header.heartbeat_raw.store(now, Ordering::Relaxed);
            }
            if wait_start.is_none() {
                wait_start = Some(now);
                l.stats.waits += 1;
                for (seen, c) in l.seen.iter_mut().zip(&header.consumers) {
                    // SYNC POINT: none needed: a heartbeat is only compared with its
                    // last value (stored relaxed in `Subscriber::heartbeat`).
                    *seen = (c.heartbeat.load(Ordering::Relaxed), now);
                }
            } else if l.now.is_some() {
                for (seen, c) in l.seen.iter_mut().zip(&header.consumers) {
                    // SYNC POINT: as above, compared only.
                    let beat = c.heartbeat.load(Ordering::Relaxed);
                    if beat != seen.0 {
                        *seen = (beat, now);
                        continue;
                    }
                    // SYNC POINT: pairs with the release store of the cursor in
                    // `Subscriber::passed`, as in the loop above.
                    let cursor = c.cursor.load(Ordering::Acquire);
                    if now.saturating_sub(seen.1) >= l.timeout_raw
                        && cursor.saturating_add(capacity) < seq
                        // SYNC POINT: the exchange pairs with the consumer's release
                        // stores of its state (`register`, `Drop`): only an entry still
                        // ACTIVE is evicted; the consumer sees EVICTED in `registration`.
                        && c.state
                            .compare_exchange(
                                CONSUMER_ACTIVE,
                                CONSUMER_EVICTED,
                                Ordering::AcqRel,
                                Ordering::Relaxed,
                            )
                            .is_ok()
                    {
                        let n = l.stats.evictions as usize;
                        if n < MAX_CONSUMERS {
                            l.stats.evicted[n] = Eviction {
                                // SYNC POINT: written before ACTIVE was released in
                                // `register`, which the acquire above saw.
                                pid: c.pid.load(Ordering::Relaxed),
                                cursor,
                                blocked_seq: seq,
                            };
                        }
                        l.stats.evictions += 1;
                    }
                }
            }
            crate::sync::spin_loop();
        }
    }

    /// Consumers registered with this (lossless) ring and not evicted.
    pub fn active_consumers(&self) -> usize {
        self.region.header().active_consumers()
    }

    /// Lossless mode: what the producer waited for and whom it evicted (`None` for a
    /// lossy ring).
    pub fn lossless_stats(&self) -> Option<&LosslessStats> {
        self.lossless.as_deref().map(|l| &l.stats)
    }

    /// Sequence number the next published tick will get.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Number of ticks published so far.
    pub fn published(&self) -> u64 {
        self.next - self.first_seq
    }

    /// Sequence number of the ring's first tick.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// Records a sign of life (a raw clock reading) for consumers watching for a dead producer.
    #[inline]
    pub fn heartbeat(&self, now_raw: u64) {
        // SYNC POINT: none needed: consumers only compare it with the last value they
        // saw (`Subscriber::producer_progress`); no data is published through it.
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

/// Where a new subscriber starts reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest tick still safely in the ring (the first if nothing was overwritten yet);
    /// ticks already gone are reported as a gap by the first poll.
    Oldest,
    /// The next tick to be published; earlier ticks are not counted at all.
    Latest,
}

/// Why [`Subscriber::register`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The ring is lossy: there is nothing to register for.
    #[error("the ring is not lossless")]
    Lossy,
    /// Every entry of the consumer table is held by a live consumer.
    #[error("all {MAX_CONSUMERS} consumer entries of the ring are in use")]
    Full,
}

/// Where this subscriber stands with a lossless producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registration {
    /// Not registered (lossy ring, or not asked to).
    None,
    /// Registered: the producer waits for this subscriber.
    Active,
    /// The producer stopped waiting for this subscriber after its liveness timeout.
    Evicted,
}

/// No consumer-table entry.
const NO_SLOT: usize = usize::MAX;

/// One reader of a ring. Each subscriber keeps its own position; any number may read.
pub struct Subscriber<R: Region> {
    region: R,
    next: u64,
    mask: u64,
    capacity: u64,
    empty_polls: u32,
    /// Index of this subscriber's consumer-table entry, or [`NO_SLOT`].
    slot: usize,
    /// The pid it registered under.
    pid: u32,
}

impl<R: Region> Subscriber<R> {
    /// A reader of `region`, starting as `start` says.
    pub fn new(region: R, start: StartAt) -> Subscriber<R> {
        let capacity = region.slots().len() as u64;
        // SYNC POINT: pairs with the release store of `published` in `Publisher::publish`.
        let published = header_seq(region.header().published.load(Ordering::Acquire));
        let next = match start {
            StartAt::Latest => published + 1,
            StartAt::Oldest => region.header().first_seq(),
        };
        Subscriber {
            region,
            next,
            mask: capacity - 1,
            capacity,
            empty_polls: 0,
            slot: NO_SLOT,
            pid: 0,
        }
    }

    /// Lossless ring: enters this subscriber in the consumer table under `pid`, so that
    /// the producer waits for it from now on. Takes a free entry, or one whose process
    /// `is_dead` says is gone. The subscriber leaves the table when dropped.
    ///
    /// Allocates nothing; start-up work, not for the hot loop.
    pub fn register(
        &mut self,
        pid: u32,
        is_dead: impl Fn(u32) -> bool,
    ) -> Result<(), RegisterError> {
        let header = self.region.header();
        if !header.is_lossless() {
            return Err(RegisterError::Lossy);
        }
        for (i, c) in header.consumers.iter().enumerate() {
            // SYNC POINT: pairs with the release stores of the state by other consumers
            // (`register`, `Drop`) and the producer's eviction exchange, so that the pid
            // read next is the one written with it.
            let state = c.state.load(Ordering::Acquire);
            let takeable = match state {
                CONSUMER_FREE => true,
                // SYNC POINT: ordered by the acquire load of the state above.
                CONSUMER_ACTIVE | CONSUMER_EVICTED => is_dead(c.pid.load(Ordering::Relaxed)),
                _ => false,
            };
            // SYNC POINT: the exchange (acquire) claims the entry against other
            // registering consumers; the fields below are published by the release
            // store of ACTIVE.
            if takeable
                && c.state
                    .compare_exchange(
                        state,
                        CONSUMER_CLAIMING,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                // SYNC POINT: these three are published by the release store of ACTIVE
                // just below.
                c.pid.store(pid, Ordering::Relaxed);
                c.cursor.store(self.next - 1, Ordering::Relaxed);
                c.heartbeat.store(0, Ordering::Relaxed);
                // SYNC POINT: pairs with the acquire load of the state in
                // `Publisher::make_room`: the producer sees this cursor with ACTIVE.
                c.state.store(CONSUMER_ACTIVE, Ordering::Release);
                self.slot = i;
                self.pid = pid;
                return Ok(());
            }
        }
        Err(RegisterError::Full)
    }

    /// Where this subscriber stands with a lossless producer.
    pub fn registration(&self) -> Registration {
        match self.region.header().consumers.get(self.slot) {
            None => Registration::None,
            // SYNC POINT: none needed: a status report; the state is this consumer's own
            // (or the producer's eviction), and no data is read through it.
            Some(c) if c.state.load(Ordering::Relaxed) == CONSUMER_ACTIVE => Registration::Active,
            Some(_) => Registration::Evicted,
        }
    }

    /// Lossless ring: a sign of life for the producer (any value that changes, such as
    /// a raw clock reading). No effect when not registered. Call it about once a
    /// millisecond, not per tick.
    #[inline]
    pub fn heartbeat(&self, value: u64) {
        if let Some(c) = self.region.header().consumers.get(self.slot) {
            // SYNC POINT: none needed: the producer only compares it with its last value
            // (`Publisher::make_room`).
            c.heartbeat.store(value, Ordering::Relaxed);
        }
    }

    /// Records that every sequence number below `self.next` has been passed.
    #[inline]
    fn passed(&self) {
        if self.slot != NO_SLOT {
            // SYNC POINT: pairs with the acquire load of the cursor in
            // `Publisher::make_room`.
            self.region.header().consumers[self.slot]
                .cursor
                .store(self.next - 1, Ordering::Release);
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
            // SYNC POINT: the payload loads are ordered by the acquire load of word 0
            // above and checked by the acquire fence and reload of word 0 below.
            for (dst, src) in words[1..].iter_mut().zip(&slot.words[1..]) {
                *dst = src.load(Ordering::Relaxed);
            }
            // SYNC POINT: pairs with the release fence in `Publisher::publish`.
            fence(Ordering::Acquire);
            // SYNC POINT: after the acquire fence: a producer that overwrote any word
            // copied above has stored its WRITING mark (or a later seq) here first.
            let after = slot.words[0].load(Ordering::Relaxed);
            if after != n {
                // Overwritten while we copied: the copy may be torn; discard it.
                return self.resync(after & !WRITING);
            }
            self.next = n + 1;
            self.empty_polls = 0;
            self.passed();
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
            // SYNC POINT: `producer_state` pairs with `Publisher::end`; this load of
            // `published` with its release store in `Publisher::publish`.
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
        let head = header_seq(self.region.header().published.load(Ordering::Acquire)).max(seen);
        // Jump to half a ring behind the head: far enough back to keep what can still be
        // read, far enough forward not to be lapped again at once.
        let target = (head + 1)
            .saturating_sub(self.capacity / 2)
            .max(self.next + 1);
        let first_seq = self.next;
        self.next = target;
        self.empty_polls = 0;
        self.passed();
        Poll::Gap {
            first_seq,
            missed: target - first_seq,
        }
    }

    /// Sequence number this subscriber reads next.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Sequence number of the ring's first tick: the producer has published
    /// `producer_progress().published - (first_seq() - 1)` ticks.
    pub fn first_seq(&self) -> u64 {
        self.region.header().first_seq()
    }

    /// How far the producer has got: its published count and its last heartbeat, for
    /// noticing a producer that stopped (neither changes). Two loads, no system call;
    /// for housekeeping about once a millisecond, not per tick.
    #[inline]
    pub fn producer_progress(&self) -> Progress {
        let h = self.region.header();
        Progress {
            // SYNC POINT: pairs with the release store of `published` in
            // `Publisher::publish`.
            published: header_seq(h.published.load(Ordering::Acquire)),
            // SYNC POINT: none needed: only compared with the last value seen; stored
            // relaxed by `Publisher::heartbeat`.
            heartbeat_raw: h.heartbeat_raw.load(Ordering::Relaxed),
        }
    }

    /// Who produces this ring: its process id and start epoch (written once, before
    /// the ring was shared).
    pub fn producer(&self) -> ProducerIdentity {
        let h = self.region.header();
        ProducerIdentity {
            // SYNC POINT: identity fields, ordered by the `magic` pair (see
            // `Header::init`).
            pid: h.producer_pid.load(Ordering::Relaxed),
            epoch_ns: h.epoch_ns.load(Ordering::Relaxed),
        }
    }

    /// Whether the producer has ended its stream (the ring may still hold ticks).
    pub fn producer_ended(&self) -> bool {
        self.region.header().producer_state() == Some(ProducerState::Ended)
    }

    /// Consumers registered with this (lossless) ring and not evicted, this one too.
    pub fn active_consumers(&self) -> usize {
        self.region.header().active_consumers()
    }

    /// The region this subscriber reads.
    pub fn region(&self) -> &R {
        &self.region
    }
}

/// The ring as the transport interface's sending end: [`Publisher::publish`] (never
/// refuses, so always `Some(seq)`), [`Publisher::heartbeat`], [`Publisher::end`].
impl<R: Region> Sink for Publisher<R> {
    #[inline]
    fn send(&mut self, tick: &Tick) -> Option<u64> {
        Some(self.publish(tick))
    }
    #[inline]
    fn heartbeat(&mut self, now_raw: u64) {
        Publisher::heartbeat(self, now_raw)
    }
    fn end(&mut self) {
        Publisher::end(self)
    }
}

/// The ring as the transport interface's receiving end: [`Subscriber::poll`].
impl<R: Region> Source for Subscriber<R> {
    #[inline]
    fn poll(&mut self) -> Poll {
        Subscriber::poll(self)
    }
}

/// What the engine's hot loop reads of a ring besides its ticks: the inherent methods.
impl<R: Region> FeedSource for Subscriber<R> {
    #[inline]
    fn heartbeat(&self, now_raw: u64) {
        Subscriber::heartbeat(self, now_raw)
    }
    #[inline]
    fn producer_progress(&self) -> Progress {
        Subscriber::producer_progress(self)
    }
    fn next_seq(&self) -> u64 {
        Subscriber::next_seq(self)
    }
    fn first_seq(&self) -> u64 {
        Subscriber::first_seq(self)
    }
    fn producer(&self) -> ProducerIdentity {
        Subscriber::producer(self)
    }
    fn evicted(&self) -> bool {
        self.registration() == Registration::Evicted
    }
}

impl<R: Region> Drop for Subscriber<R> {
    /// Leaves the consumer table, so that the producer stops waiting for this reader
    /// (unless another consumer has taken the entry over meanwhile).
    fn drop(&mut self) {
        let entry = self.region.header().consumers.get(self.slot);
        // SYNC POINT: none needed for the pid: a consumer that took the entry over wrote
        // its own pid before releasing ACTIVE; either way the exchanges below decide.
        if let Some(c) = entry.filter(|c| c.pid.load(Ordering::Relaxed) == self.pid) {
            // SYNC POINT: the release pairs with the acquire loads of the state in
            // `Publisher::make_room` and `register`: everything this consumer did with
            // the entry happens before another takes it.
            let _ = c.state.compare_exchange(
                CONSUMER_ACTIVE,
                CONSUMER_FREE,
                Ordering::Release,
                Ordering::Relaxed,
            );
            let _ = c.state.compare_exchange(
                CONSUMER_EVICTED,
                CONSUMER_FREE,
                Ordering::Release,
                Ordering::Relaxed,
            );
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::tick::{Side, TickKind};

    /// Found by `tests/fuzz.rs` (`corrupt_rings_never_panic_or_hang`): a header whose
    /// `published` is near `u64::MAX` made `Subscriber::new` (start at the latest tick)
    /// and the lapped reader's resync overflow.
    #[test]
    fn absurd_published_count_does_not_overflow() {
        const CAPACITY: u64 = 8;
        let region = Arc::new(HeapRegion::new(CAPACITY));
        let mut producer = Publisher::new(region.clone());
        for _ in 0..=CAPACITY {
            producer.publish(&Tick::default());
        }
        for published in [u64::MAX, u64::MAX - 1, 1 << 63] {
            region
                .header()
                .published
                .store(published, Ordering::Release);
            for start in [StartAt::Latest, StartAt::Oldest] {
                let mut sub = Subscriber::new(region.clone(), start);
                assert!(sub.producer_progress().published < WRITING);
                for _ in 0..4 {
                    let _ = sub.poll();
                }
            }
        }
    }

    #[test]
    fn subscriber_reports_the_producer() {
        let region = Arc::new(HeapRegion::new(8));
        let mut producer = Publisher::new(region.clone());
        let sub = Subscriber::new(region.clone(), StartAt::Oldest);
        assert_eq!(sub.producer_progress(), Progress::default());
        assert_eq!(sub.producer().pid, std::process::id());
        producer.publish(&Tick::default());
        producer.heartbeat(77);
        assert_eq!(
            sub.producer_progress(),
            Progress {
                published: 1,
                heartbeat_raw: 77
            }
        );
        assert!(!sub.producer_ended());
        producer.end();
        assert!(sub.producer_ended());
    }

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

    /// A lossless ring with one registered consumer: every tick arrives, in order,
    /// with no gap, however far the producer runs ahead.
    #[test]
    fn lossless_consumer_misses_nothing() {
        let total: u64 = if cfg!(miri) { 500 } else { 200_000 };
        let region = Arc::new(HeapRegion::lossless(8));
        let mut p = Publisher::new(region.clone());
        let mut s = Subscriber::new(region, StartAt::Oldest);
        s.register(1, |_| false).unwrap();
        let producer = std::thread::spawn(move || {
            for i in 1..=total {
                p.publish(&tick(0, i as i64));
            }
            p.end();
            p.lossless_stats().unwrap().evictions
        });
        let mut expect = 1u64;
        loop {
            match s.poll() {
                Poll::Tick(t) => {
                    assert_eq!(t.seq, expect);
                    assert_eq!(t.bid_px_e8, expect as i64);
                    expect += 1;
                }
                Poll::Empty => std::hint::spin_loop(),
                Poll::Ended => break,
                other => panic!("lossless ring gave {other:?}"),
            }
        }
        assert_eq!(producer.join().unwrap(), 0);
        assert_eq!(expect - 1, total);
    }

    /// A registered consumer that stops polling and stops its heartbeat is evicted
    /// after the timeout; it then reads on and counts what it missed as a gap.
    #[test]
    fn silent_consumer_is_evicted_and_counts_its_gap() {
        let region = Arc::new(HeapRegion::lossless(4));
        let mut p = Publisher::new(region.clone());
        let clock = Arc::new(AtomicU64::new(0));
        let c = clock.clone();
        // Each reading of the producer's clock advances it by one unit.
        p.set_liveness(100, move || c.fetch_add(1, Ordering::Relaxed));
        let mut s = Subscriber::new(region, StartAt::Oldest);
        s.register(77, |_| false).unwrap();
        for i in 0..10 {
            p.publish(&tick(0, i)); // waits at the fifth, evicts, goes on
        }
        let stats = *p.lossless_stats().unwrap();
        assert_eq!(stats.evictions, 1);
        assert_eq!(stats.waits, 1);
        assert_eq!(
            stats.evicted[0],
            Eviction {
                pid: 77,
                cursor: 0,
                blocked_seq: 5
            }
        );
        assert_eq!(s.registration(), Registration::Evicted);
        let (mut received, mut missed) = (0, 0);
        loop {
            match s.poll() {
                Poll::Tick(_) => received += 1,
                Poll::Gap { missed: m, .. } => missed += m,
                Poll::Empty => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(received + missed, 10);
        assert!(missed > 0);
    }

    /// A consumer that heartbeats is never evicted, however long the producer waits.
    #[test]
    fn live_consumer_is_waited_for() {
        let region = Arc::new(HeapRegion::lossless(4));
        let mut p = Publisher::new(region.clone());
        p.set_liveness(20_000, move || {
            std::thread::sleep(std::time::Duration::from_micros(10));
            crate::clock::monotonic_ns() / 1_000 // microseconds
        });
        let mut s = Subscriber::new(region, StartAt::Oldest);
        s.register(5, |_| false).unwrap();
        let consumer = std::thread::spawn(move || {
            let mut got = 0u64;
            let mut beat = 0;
            while got < 20 {
                beat += 1;
                s.heartbeat(beat);
                // A slow consumer: 20 ticks take three times the 20 ms timeout, but its
                // heartbeat moves every 3 ms.
                std::thread::sleep(std::time::Duration::from_millis(3));
                match s.poll() {
                    Poll::Tick(t) => {
                        got += 1;
                        assert_eq!(t.seq, got);
                    }
                    Poll::Empty => {}
                    other => panic!("{other:?}"),
                }
            }
            s.registration()
        });
        for i in 0..20 {
            p.publish(&tick(0, i));
        }
        assert_eq!(consumer.join().unwrap(), Registration::Active);
        assert_eq!(p.lossless_stats().unwrap().evictions, 0);
    }

    /// The consumer table: full, reuse of a dead consumer's entry, leaving on drop;
    /// registering on a lossy ring is refused.
    #[test]
    fn consumer_table_claims_and_frees_entries() {
        let region = Arc::new(HeapRegion::lossless(4));
        let subs: Vec<_> = (0..MAX_CONSUMERS as u32)
            .map(|pid| {
                let mut s = Subscriber::new(region.clone(), StartAt::Oldest);
                s.register(pid + 1, |_| false).unwrap();
                s
            })
            .collect();
        assert_eq!(region.header().active_consumers(), MAX_CONSUMERS);
        let mut extra = Subscriber::new(region.clone(), StartAt::Oldest);
        assert_eq!(extra.register(99, |_| false), Err(RegisterError::Full));
        // pid 3 is dead: its entry can be taken over.
        extra.register(99, |pid| pid == 3).unwrap();
        assert_eq!(region.header().consumers[2].pid.load(Ordering::Relaxed), 99);
        drop(subs);
        assert_eq!(region.header().active_consumers(), 1);
        let mut lossy = Subscriber::new(Arc::new(HeapRegion::new(4)), StartAt::Oldest);
        assert_eq!(lossy.register(1, |_| false), Err(RegisterError::Lossy));
        assert_eq!(lossy.registration(), Registration::None);
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
                Poll::Failed(why) => panic!("a ring never fails: {why}"),
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

    /// Lossless: three ticks through two slots with a registered consumer: never a
    /// gap, never a torn tick, all three in order.
    #[test]
    fn lossless_publish_poll() {
        loom::model(|| {
            let region = Arc::new(HeapRegion::lossless(2));
            let mut p = Publisher::new(region.clone());
            let mut s = Subscriber::new(region, StartAt::Oldest);
            s.register(1, |_| false).unwrap();
            let h = thread::spawn(move || {
                for seq in 1..=3u64 {
                    p.publish(&t(seq * 10));
                }
            });
            let mut expect = 1;
            while expect <= 3 {
                match s.poll() {
                    Poll::Tick(tick) => {
                        assert_eq!(tick.seq, expect);
                        check(&tick);
                        expect += 1;
                    }
                    Poll::Empty => thread::yield_now(),
                    other => panic!("{other:?}"),
                }
            }
            h.join().unwrap();
        });
    }

    /// Producer restart: a producer publishes and dies without ending its stream; the
    /// consumer, told the producer is gone, drains what was published (ticks or gaps,
    /// every seq accounted for against the header's count), then reads a new producer's
    /// fresh ring from its start.
    #[test]
    fn producer_restart() {
        loom::model(|| {
            let old = Arc::new(HeapRegion::new(2));
            let mut p = Publisher::new(old.clone());
            let mut s = Subscriber::new(old, StartAt::Oldest);
            let h = thread::spawn(move || {
                for seq in 1..=3u64 {
                    p.publish(&t(seq * 10));
                }
                // Killed here: no `end()`.
            });
            // Ticks received plus ticks counted missed; false on Empty.
            let mut accounted = 0;
            let mut account = |poll: Poll| match poll {
                Poll::Tick(tick) => {
                    check(&tick);
                    accounted += 1;
                    true
                }
                Poll::Gap { missed, .. } => {
                    accounted += missed;
                    true
                }
                Poll::Empty => false,
                other => panic!("{other:?}"),
            };
            account(s.poll());
            h.join().unwrap();
            // Gone: drain to Empty.
            while account(s.poll()) {}
            let published = s.producer_progress().published;
            assert_eq!(published, 3);
            assert_eq!(accounted, published);
            // The new producer's ring: sequence numbers start again at 1.
            let new = Arc::new(HeapRegion::new(2));
            let mut p2 = Publisher::new(new.clone());
            let mut s2 = Subscriber::new(new, StartAt::Oldest);
            let h2 = thread::spawn(move || {
                p2.publish(&t(10));
            });
            h2.join().unwrap();
            assert!(matches!(s2.poll(), Poll::Tick(tick) if tick.seq == 1));
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
