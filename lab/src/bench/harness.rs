//! What every row of `lab bench transport` shares: the run's settings ([`Setup`]), thread
//! pinning, the producers and their pacing ([`Pace`]), the consumers with their
//! sequence tally, and what a latency or throughput run measured.
//!
//! Nothing here allocates per message: producers and consumers loop over a [`Sink`] or
//! [`Source`], consumers record into fixed-bound histograms, and the tally is a handful
//! of counters.

use anyhow::Result;
use common::clock::Clock;
use common::latency::{fixed_histogram, to_ns, Percentiles, HIGHEST_NS, HIGHEST_RAW};
use common::tick::Tick;
use common::transport::{Poll, Sink, Source};
use hdrhistogram::Histogram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The settings every row of one run shares.
pub struct Setup {
    pub clock: Clock,
    pub tx_core: usize,
    pub rx_core: usize,
    /// Core of the second consumer of the 1p2c rows; `None` skips those rows.
    pub rx2_core: Option<usize>,
    /// Measured latency samples per row.
    pub samples: u64,
    /// Discarded leading samples.
    pub warmup: u64,
    pub spacing_ns: u64,
    /// Ticks each throughput row publishes (0: no throughput rows).
    pub messages: u64,
    /// Ring capacity, crossbeam channel bound and iceoryx2 subscriber buffer.
    pub capacity: u64,
    pub pins: PinReport,
}

impl Setup {
    /// Latency samples including the warm-up.
    pub fn total(&self) -> u64 {
        self.samples + self.warmup
    }

    pub fn spacing_raw(&self) -> u64 {
        self.clock.raw_from_ns(self.spacing_ns)
    }

    /// A raw-clock deadline generous enough for `count` ticks spaced by `spacing_ns`.
    pub fn deadline(&self, count: u64, spacing_ns: u64) -> u64 {
        let ns = count
            .saturating_mul(spacing_ns.max(1_000))
            .saturating_mul(4)
            .saturating_add(30_000_000_000);
        self.clock.raw().saturating_add(self.clock.raw_from_ns(ns))
    }
}

/// A latency row's measurement.
#[derive(Clone, Copy, Debug, Default)]
pub struct Latency {
    /// Percentiles in nanoseconds.
    pub ns: Percentiles,
    /// Lapped reads (our ring only); must be 0 on an idle ring.
    pub gaps: u64,
    /// Sequence numbers that never arrived (counted in gaps or by sequence checks).
    pub lost: u64,
    /// Samples whose receive stamp was before the publish stamp (TSC skew between
    /// cores), recorded as 0.
    pub negative: u64,
    /// Samples published before the consumer had finished the previous one, so that
    /// their hop includes waiting in the transport (the consumer was descheduled or
    /// slow); on an idle machine there are none.
    pub queued: u64,
    /// Messages per second of the row's throughput run (for `cacheline`: one-way
    /// hand-offs per second of the ping-pong itself).
    pub msgs_per_s: Option<f64>,
}

/// What one consumer of a throughput run saw.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Flow {
    /// Messages received.
    pub received: u64,
    /// Messages that never arrived.
    pub lost: u64,
    /// Times the consumer was lapped (our ring only).
    pub gaps: u64,
    /// Seconds from its first to its last message.
    pub seconds: f64,
}

impl Flow {
    /// Messages per second: the intervals between the first and the last message.
    pub fn msgs_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.received.saturating_sub(1) as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// A throughput row's measurement.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Throughput {
    /// Messages the producer published.
    pub published: u64,
    /// Sends the transport refused or delivered to nobody (iceoryx2 only).
    pub undelivered: u64,
    /// The producer's pace: `None` flat out, else ticks per second offered.
    pub offered_per_s: Option<f64>,
    /// One entry per consumer.
    pub consumers: Vec<Flow>,
}

impl Throughput {
    /// `count` ticks published at `pace` to `consumers`, every send delivered.
    pub fn of(count: u64, pace: Pace, consumers: Vec<Flow>) -> Throughput {
        Throughput {
            published: count,
            undelivered: 0,
            offered_per_s: offered(pace),
            consumers,
        }
    }

    /// The slowest consumer's messages per second.
    pub fn msgs_per_s(&self) -> f64 {
        self.consumers
            .iter()
            .map(Flow::msgs_per_s)
            .reduce(f64::min)
            .unwrap_or(0.0)
    }

    /// Messages lost over all consumers.
    pub fn lost(&self) -> u64 {
        self.consumers.iter().map(|c| c.lost).sum()
    }

    /// Lapped reads over all consumers.
    pub fn gaps(&self) -> u64 {
        self.consumers.iter().map(|c| c.gaps).sum()
    }

    /// Whether every consumer got every message.
    pub fn zero_loss(&self) -> bool {
        self.lost() == 0 && self.undelivered == 0
    }
}

/// Whether any pin failed (each failure is also reported on stderr when it happens).
#[derive(Default)]
pub struct PinReport {
    failed: AtomicBool,
}

impl PinReport {
    /// Whether every pin so far succeeded.
    pub fn all_pinned(&self) -> bool {
        !self.failed.load(Ordering::Relaxed)
    }

    /// Pins the calling thread to `core`; on failure warns and goes on unpinned.
    pub fn pin(&self, role: &str, core: usize) {
        if !common::cores::pin_current(core) {
            self.failed.store(true, Ordering::Relaxed);
            eprintln!("warning: cannot pin the {role} thread to core {core}; it runs unpinned");
        }
    }
}

/// A raw histogram's percentiles in nanoseconds.
pub fn percentiles_ns(raw: &Histogram<u64>, ns_per_raw: f64) -> Percentiles {
    let mut ns = fixed_histogram(HIGHEST_NS);
    to_ns(raw, ns_per_raw, &mut ns);
    Percentiles::of(&ns)
}

/// Sends `count` ticks numbered from 1, each stamped just before it is sent and at
/// least `spacing_raw` after the previous one; returns the undelivered count.
pub fn produce_spaced<S: Sink>(sink: &mut S, clock: &Clock, count: u64, spacing_raw: u64) -> u64 {
    let mut undelivered = 0;
    let mut due = clock.raw();
    for seq in 1..=count {
        let mut now = clock.raw();
        while now < due {
            std::hint::spin_loop();
            now = clock.raw();
        }
        let tick = Tick {
            seq,
            scheduled_raw: now,
            published_raw: now,
            ..Tick::default()
        };
        undelivered += u64::from(sink.send(&tick).is_none());
        due = now + spacing_raw;
    }
    undelivered
}

/// How a producer paces its ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Latency: each tick stamped, at least `spacing_raw` after the previous one.
    Spaced,
    /// Throughput: flat out, without reading the clock.
    Flat,
    /// Throughput: this many ticks per second on average, in bursts of [`PACE_BURST`]
    /// (one clock read per burst), unstamped.
    Rate(f64),
}

/// Ticks sent between two clock reads of a [`Pace::Rate`] producer.
pub const PACE_BURST: u64 = 64;

/// Sends `count` ticks numbered from 1 as `pace` says; returns the undelivered count.
pub fn produce<S: Sink>(
    sink: &mut S,
    clock: &Clock,
    count: u64,
    pace: Pace,
    spacing_raw: u64,
) -> u64 {
    match pace {
        Pace::Spaced => produce_spaced(sink, clock, count, spacing_raw),
        Pace::Flat => {
            let mut undelivered = 0;
            let mut tick = Tick::default();
            for seq in 1..=count {
                tick.seq = seq;
                undelivered += u64::from(sink.send(&tick).is_none());
            }
            undelivered
        }
        Pace::Rate(per_s) => {
            let raw_per_tick = clock.raw_from_ns(1_000_000_000) as f64 / per_s.max(1.0);
            let mut undelivered = 0;
            let mut tick = Tick::default();
            let start = clock.raw();
            for seq in 1..=count {
                if seq % PACE_BURST == 0 {
                    let due = start + (seq as f64 * raw_per_tick) as u64;
                    while clock.raw() < due {
                        std::hint::spin_loop();
                    }
                }
                tick.seq = seq;
                undelivered += u64::from(sink.send(&tick).is_none());
            }
            undelivered
        }
    }
}

/// A latency row between two threads of this process: `produce` runs on the sending
/// core, [`consume_latency`] on `src` on the receiving core, both pinned and started
/// together. `roles` name the two threads in messages.
pub fn latency_pair<S: Source + Send>(
    s: &Setup,
    roles: (&str, &str),
    produce: impl FnOnce() + Send,
    src: &mut S,
) -> Result<Latency> {
    let both_ready = std::sync::Barrier::new(2);
    let total = s.total();
    let (hist, l) = std::thread::scope(|scope| {
        scope.spawn(|| {
            s.pins.pin(roles.0, s.tx_core);
            both_ready.wait();
            produce();
        });
        scope
            .spawn(|| {
                s.pins.pin(roles.1, s.rx_core);
                both_ready.wait();
                let deadline = s.deadline(total, s.spacing_ns);
                consume_latency(src, &s.clock, total, s.warmup, deadline)
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the {} thread panicked", roles.1)))
    })?;
    Ok(latency_row(&hist, l, &s.clock))
}

/// The sequence accounting of a consumer loop: what arrived in order, what was lost in
/// gaps or skipped, the end of the stream, and a producer that stopped sending.
struct Tally {
    expected: u64,
    gaps: u64,
    lost: u64,
    idle: u32,
    total: u64,
    deadline_raw: u64,
}

impl Tally {
    fn new(total: u64, deadline_raw: u64) -> Tally {
        Tally {
            expected: 1,
            gaps: 0,
            lost: 0,
            idle: 0,
            total,
            deadline_raw,
        }
    }

    /// Message `seq` arrived: counts the sequence numbers skipped before it. Whether it
    /// was the last one.
    #[inline]
    fn msg(&mut self, seq: u64) -> bool {
        self.lost += seq.saturating_sub(self.expected);
        self.expected = seq + 1;
        seq >= self.total
    }

    /// Anything but a message: whether the loop is over, or why it failed.
    #[inline]
    fn other(&mut self, recv: Poll, clock: &Clock) -> Result<bool> {
        match recv {
            Poll::Tick(t) => Ok(self.msg(t.seq)),
            Poll::Gap { missed: n, .. } => {
                self.gaps += 1;
                self.lost += n;
                self.expected += n;
                Ok(self.expected > self.total)
            }
            Poll::Ended => {
                self.lost += (self.total + 1).saturating_sub(self.expected);
                Ok(true)
            }
            Poll::Empty => {
                self.idle = self.idle.wrapping_add(1);
                if self.idle.is_multiple_of(4096) && clock.raw() > self.deadline_raw {
                    anyhow::bail!(
                        "the producer stopped sending (next expected {} of {})",
                        self.expected,
                        self.total
                    );
                }
                std::hint::spin_loop();
                Ok(false)
            }
            Poll::Corrupt { seq } => anyhow::bail!("received a corrupt tick (seq {seq})"),
            Poll::Failed(what) => anyhow::bail!("{what}"),
        }
    }
}

/// Receives until message `total` (or the end of the stream, or `deadline_raw`),
/// recording the one-way hop of every message after the first `warmup`.
pub fn consume_latency<S: Source>(
    src: &mut S,
    clock: &Clock,
    total: u64,
    warmup: u64,
    deadline_raw: u64,
) -> Result<(Histogram<u64>, Latency)> {
    let mut hist = fixed_histogram(HIGHEST_RAW);
    let mut l = Latency::default();
    let mut t = Tally::new(total, deadline_raw);
    let mut last_recv_raw = 0;
    loop {
        match src.poll() {
            Poll::Tick(tick) => {
                let (seq, stamp) = (tick.seq, tick.published_raw);
                let now = clock.raw();
                let last = t.msg(seq);
                if seq > warmup {
                    if now < stamp {
                        l.negative += 1;
                    }
                    if stamp < last_recv_raw {
                        l.queued += 1;
                    }
                    hist.saturating_record(now.saturating_sub(stamp).min(HIGHEST_RAW));
                }
                last_recv_raw = now;
                if last {
                    break;
                }
            }
            other => {
                if t.other(other, clock)? {
                    break;
                }
            }
        }
    }
    (l.gaps, l.lost) = (t.gaps, t.lost);
    Ok((hist, l))
}

/// Receives until message `total` (or the end of the stream, or `deadline_raw`),
/// counting what arrives and what is lost, timed from the first to the last message.
pub fn consume_flow<S: Source>(
    src: &mut S,
    clock: &Clock,
    total: u64,
    deadline_raw: u64,
) -> Result<Flow> {
    let mut f = Flow::default();
    let mut t = Tally::new(total, deadline_raw);
    let mut first_raw = 0;
    loop {
        match src.poll() {
            Poll::Tick(Tick { seq, .. }) => {
                if f.received == 0 {
                    first_raw = clock.raw();
                }
                f.received += 1;
                if t.msg(seq) {
                    break;
                }
            }
            other => {
                if t.other(other, clock)? {
                    break;
                }
            }
        }
    }
    (f.gaps, f.lost) = (t.gaps, t.lost);
    f.seconds = clock.delta_ns(first_raw, clock.raw()) as f64 / 1e9;
    Ok(f)
}

/// A latency row from a consumer's raw histogram.
pub fn latency_row(hist: &Histogram<u64>, mut l: Latency, clock: &Clock) -> Latency {
    l.ns = percentiles_ns(hist, clock.ns_per_raw());
    l
}

/// Where shared-memory files go: `/dev/shm` if it exists, else the temp folder.
pub fn shm_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// A run's offered rate: `None` flat out (and for spaced latency runs).
pub fn offered(pace: Pace) -> Option<f64> {
    match pace {
        Pace::Rate(r) => Some(r),
        Pace::Spaced | Pace::Flat => None,
    }
}
#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn slowest_consumer_sets_the_rate() {
        let t = run(None, vec![flow(101, 0, 1.0), flow(101, 0, 2.0)]);
        assert_eq!(t.msgs_per_s(), 50.0);
        assert!(run(None, vec![]).msgs_per_s() == 0.0);
    }

    /// A sink and source over a plain vector: every sent tick arrives, except the
    /// sequence numbers in `drop`.
    struct Fake {
        sent: std::collections::VecDeque<Tick>,
        drop: Vec<u64>,
        ended: bool,
    }

    impl Sink for Fake {
        fn send(&mut self, tick: &Tick) -> Option<u64> {
            if !self.drop.contains(&tick.seq) {
                self.sent.push_back(*tick);
            }
            Some(tick.seq)
        }
    }

    impl Source for Fake {
        fn poll(&mut self) -> Poll {
            match self.sent.pop_front() {
                Some(t) => Poll::Tick(t),
                None if self.ended => Poll::Ended,
                None => Poll::Empty,
            }
        }
    }

    #[test]
    fn consumers_count_what_never_arrived() {
        let clock = Clock::new();
        for pace in [Pace::Spaced, Pace::Flat, Pace::Rate(1e9)] {
            let mut f = Fake {
                sent: Default::default(),
                drop: vec![3, 4, 50],
                ended: true,
            };
            assert_eq!(produce(&mut f, &clock, 50, pace, 0), 0);
            let flow = consume_flow(&mut f, &clock, 50, u64::MAX).unwrap();
            // 3 and 4 are missing in the middle; 50, the last, is found missing at the end.
            assert_eq!((flow.received, flow.lost), (47, 3), "{pace:?}");
        }
        let mut f = Fake {
            sent: Default::default(),
            drop: vec![7],
            ended: true,
        };
        produce(&mut f, &clock, 20, Pace::Spaced, 0);
        let (hist, l) = consume_latency(&mut f, &clock, 20, 5, u64::MAX).unwrap();
        assert_eq!((hist.len(), l.lost), (14, 1));
    }
}
