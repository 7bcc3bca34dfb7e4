//! Latency recording: one fixed-bound HdrHistogram per stage, swapped each interval
//! with a pre-allocated spare set, converted to nanoseconds and logged off the hot path.
//!
//! # Stages
//!
//! | stage | from | to |
//! |---|---|---|
//! | `feed_lag` | scheduled | published (the feed keeping its schedule) |
//! | `hop` | published | received by the engine (the ring) |
//! | `engine` | received | decision done (orders built and handed off) |
//! | `e2e` | scheduled | decision done (what a trader feels) |
//!
//! # Guarantees
//!
//! - The hot thread records raw clock deltas into a [`StageSet`] whose histograms have
//!   fixed bounds ([`HIGHEST_RAW`]): recording never allocates; values above the bound
//!   are clamped to it. [`IntervalRecorder::rotate`] swaps sets without allocating,
//!   locking or blocking: if no spare set has come back yet, the current one keeps
//!   recording and the interval is simply longer.
//! - The cold thread converts raw units to nanoseconds ([`to_ns`]), prints one line per
//!   stage ([`format_line`]), appends the HdrHistogram interval log ([`Hlog`]) and
//!   returns the set for reuse. Those steps allocate and write files; they never run
//!   on the hot thread.

use crate::alloc::AllocCounts;
use crate::files::{Draft, FileError, Kind};
use crate::hop::{self, ChannelKind, HopRx, HopTx, TryRecvError};
use crate::units::fmt_ns;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// A latency stage (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Scheduled → published.
    FeedLag = 0,
    /// Published → received.
    Hop = 1,
    /// Received → decision done.
    Engine = 2,
    /// Scheduled → decision done.
    E2e = 3,
}

/// Every stage, in report order.
pub const STAGES: [Stage; 4] = [Stage::FeedLag, Stage::Hop, Stage::Engine, Stage::E2e];

impl Stage {
    /// The stage's name in logs, `.hlog` tags and `summary.json`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::FeedLag => "feed_lag",
            Stage::Hop => "hop",
            Stage::Engine => "engine",
            Stage::E2e => "e2e",
        }
    }
}

/// Highest recordable value, in raw clock units (2⁴² ≈ 25 min of TSC cycles at 3 GHz).
pub const HIGHEST_RAW: u64 = 1 << 42;
/// Highest value of the nanosecond histograms the cold side keeps.
pub const HIGHEST_NS: u64 = 1 << 42;
/// Significant digits of every histogram.
pub const SIGFIG: u8 = 3;

/// A histogram with fixed bounds: recording into it never allocates, and its counts are
/// written once here so that their pages are resident (the first record into a bucket
/// never page-faults).
pub fn fixed_histogram(highest: u64) -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, highest, SIGFIG)
        .expect("constant histogram bounds are valid");
    h.auto(false);
    // The counts come zeroed from the allocator, possibly as pages the kernel maps
    // only when first written: write them now.
    h.reset();
    h
}

/// The `.hlog` histogram encoding: HdrHistogram's V2 format, deflate-compressed (the
/// compressed cookie, the compressed length, a zlib stream of the V2 encoding), as
/// hdrhistogram's `V2DeflateSerializer` writes it and every HdrHistogram reader reads
/// it. Unlike that serializer, it keeps one compressor for the whole log (reset between
/// histograms, instead of a fresh one whose state is allocated and zeroed each time) and
/// uses the fast compression level: the report thread's work per interval shrinks from
/// milliseconds to tens of microseconds, for a log a little larger.
pub struct HlogSerializer {
    v2: hdrhistogram::serialization::V2Serializer,
    encoded: Vec<u8>,
    out: Vec<u8>,
    compress: flate2::Compress,
}

/// The cookie of a deflate-compressed V2 histogram (the base `0x1c849304` with the
/// word-size bits `0x10`, as hdrhistogram's serialization module defines it).
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9304 | 0x10;

impl HlogSerializer {
    /// A serializer with its buffers empty (they grow to a histogram's size once).
    pub fn new() -> HlogSerializer {
        HlogSerializer {
            v2: hdrhistogram::serialization::V2Serializer::new(),
            encoded: Vec::new(),
            out: Vec::new(),
            compress: flate2::Compress::new(flate2::Compression::fast(), true),
        }
    }
}

impl Default for HlogSerializer {
    fn default() -> HlogSerializer {
        HlogSerializer::new()
    }
}

impl hdrhistogram::serialization::Serializer for HlogSerializer {
    type SerializeError = io::Error;

    fn serialize<T: hdrhistogram::Counter, W: Write>(
        &mut self,
        h: &Histogram<T>,
        writer: &mut W,
    ) -> io::Result<usize> {
        self.encoded.clear();
        self.v2
            .serialize(h, &mut self.encoded)
            .map_err(|e| io::Error::other(format!("{e:?}")))?;
        self.out.clear();
        self.out
            .extend_from_slice(&V2_COMPRESSED_COOKIE.to_be_bytes());
        self.out.extend_from_slice(&[0; 4]); // the length, below
        self.compress.reset();
        let mut input = &self.encoded[..];
        loop {
            // Room for the rest: deflate's worst case is the input plus a few bytes per
            // 16 KiB block.
            self.out.reserve(input.len() + input.len() / 1000 + 64);
            let before = self.compress.total_in();
            let status = self
                .compress
                .compress_vec(input, &mut self.out, flate2::FlushCompress::Finish)
                .map_err(io::Error::other)?;
            input = &input[(self.compress.total_in() - before) as usize..];
            if status == flate2::Status::StreamEnd {
                break;
            }
        }
        let len = u32::try_from(self.out.len() - 8)
            .map_err(|_| io::Error::other("compressed histogram above 4 GiB"))?;
        self.out[4..8].copy_from_slice(&len.to_be_bytes());
        writer.write_all(&self.out)?;
        Ok(self.out.len())
    }
}

/// One histogram per stage, in raw clock units.
pub struct StageSet {
    hist: [Histogram<u64>; 4],
}

impl StageSet {
    /// A set with fixed bounds, allocated now so that recording never allocates.
    pub fn new() -> StageSet {
        StageSet {
            hist: std::array::from_fn(|_| fixed_histogram(HIGHEST_RAW)),
        }
    }

    /// Records `raw` (a clock delta) for `stage`. Never allocates.
    #[inline(always)]
    pub fn record(&mut self, stage: Stage, raw: u64) {
        self.hist[stage as usize].saturating_record(raw.min(HIGHEST_RAW));
    }

    /// The histogram of `stage`.
    pub fn get(&self, stage: Stage) -> &Histogram<u64> {
        &self.hist[stage as usize]
    }

    /// Clears every histogram, keeping its memory.
    pub fn reset(&mut self) {
        self.hist.iter_mut().for_each(Histogram::reset);
    }
}

impl Default for StageSet {
    fn default() -> StageSet {
        StageSet::new()
    }
}

/// What the hot thread hands to the cold thread at the end of an interval.
pub struct Interval {
    /// Latencies recorded during the interval, raw units.
    pub stages: Box<StageSet>,
    /// Raw clock at the start of the interval.
    pub start_raw: u64,
    /// Raw clock at the end of the interval.
    pub end_raw: u64,
    /// Ticks received.
    pub ticks: u64,
    /// Gaps reported by the ring.
    pub gaps: u64,
    /// Ticks missed in those gaps.
    pub missed: u64,
    /// Hot-thread calls into the global allocator during the interval.
    pub allocs: AllocCounts,
    /// Whether the interval falls (partly) in the warm-up.
    pub warmup: bool,
}

/// Hot-side end of the interval hand-off: owns the set being recorded, swaps it for a
/// spare at each interval boundary.
pub struct IntervalRecorder {
    current: Box<StageSet>,
    spares: HopRx<Box<StageSet>>,
    full: HopTx<Interval>,
}

/// Cold-side end: receives full intervals, returns emptied sets.
pub struct IntervalSink {
    /// Full intervals from the hot thread.
    pub full: HopRx<Interval>,
    /// Where emptied sets go back.
    pub spares: HopTx<Box<StageSet>>,
}

/// Creates the hand-off with `spare_sets` pre-allocated spare sets (at least 1), over
/// two hops of `kind` ([`crate::hop`]), each with room for every set there is.
pub fn interval_channel(kind: ChannelKind, spare_sets: usize) -> (IntervalRecorder, IntervalSink) {
    let n = spare_sets.max(1);
    let (mut spare_tx, spare_rx) = hop::bounded(kind, n + 1);
    let (full_tx, full_rx) = hop::bounded(kind, n + 1);
    for _ in 0..n {
        if spare_tx.try_send(Box::new(StageSet::new())).is_err() {
            unreachable!("a new hop has room for every spare set");
        }
    }
    (
        IntervalRecorder {
            current: Box::new(StageSet::new()),
            spares: spare_rx,
            full: full_tx,
        },
        IntervalSink {
            full: full_rx,
            spares: spare_tx,
        },
    )
}

/// Result of [`IntervalRecorder::rotate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotate {
    /// The full set went to the cold side; a fresh one records now.
    Sent,
    /// No spare set was back yet; the current set keeps recording.
    NoSpare,
    /// The cold side is gone.
    Disconnected,
}

impl IntervalRecorder {
    /// The set being recorded into.
    #[inline(always)]
    pub fn stages(&mut self) -> &mut StageSet {
        &mut self.current
    }

    /// Hands the current set to the cold side with `meta` (whose `stages` field is
    /// replaced), if a spare set is available. No allocation, lock or syscall: both
    /// channels are bounded and the cold side polls rather than sleeping on them.
    pub fn rotate(&mut self, meta: impl FnOnce(Box<StageSet>) -> Interval) -> Rotate {
        match self.spares.try_recv() {
            Ok(spare) => {
                let full = std::mem::replace(&mut self.current, spare);
                match self.full.try_send(meta(full)) {
                    Ok(()) => Rotate::Sent,
                    Err(e) => {
                        // Cannot happen while the cold side returns what it gets (the
                        // channel holds every set there is); keep the data regardless.
                        let back = e.into_inner().stages;
                        let spare = std::mem::replace(&mut self.current, back);
                        drop(spare);
                        Rotate::Disconnected
                    }
                }
            }
            Err(TryRecvError::Empty) => Rotate::NoSpare,
            Err(TryRecvError::Disconnected) => Rotate::Disconnected,
        }
    }
}

/// Converts a raw-unit histogram into nanoseconds, into `out` (cleared first).
pub fn to_ns(raw: &Histogram<u64>, ns_per_raw: f64, out: &mut Histogram<u64>) {
    out.reset();
    for v in raw.iter_recorded() {
        let ns = (raw.median_equivalent(v.value_iterated_to()) as f64 * ns_per_raw).round() as u64;
        out.saturating_record_n(ns.min(HIGHEST_NS), v.count_at_value());
    }
}

/// Percentiles of one stage, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Number of samples.
    pub count: u64,
    /// Smallest sample.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p99_9: u64,
    /// 99.99th percentile.
    pub p99_99: u64,
    /// Largest sample.
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of `h` (all zero if it is empty).
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            min: h.min(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            p99_99: h.value_at_quantile(0.9999),
            max: h.max(),
        }
    }
}

/// One interval line for a stage: count, p50, p90, p99, p99.9, p99.99 and max.
pub fn format_line(stage: &str, p: &Percentiles) -> String {
    format!(
        "{stage:<8} n={:<8} p50={:<8} p90={:<8} p99={:<8} p99.9={:<8} p99.99={:<8} max={}",
        p.count,
        fmt_ns(p.p50),
        fmt_ns(p.p90),
        fmt_ns(p.p99),
        fmt_ns(p.p99_9),
        fmt_ns(p.p99_99),
        fmt_ns(p.max)
    )
}

/// An HdrHistogram interval log file (`.hlog`, V2 deflate-compressed histograms), readable by
/// the standard HdrHistogram tools. Values are nanoseconds; each histogram is tagged
/// with its stage name. Each interval is written straight to the file.
pub struct Hlog {
    file: File,
    serializer: HlogSerializer,
    start: SystemTime,
}

impl Hlog {
    /// Creates the log at `path` (owner-only; it may replace only an earlier `.hlog` of
    /// the project's own, see [`crate::files`]): the header goes into a temporary file,
    /// which then takes the path; intervals are appended to it. `start` is the run's
    /// start time, `comment` what the log is.
    pub fn create(path: &Path, start: SystemTime, comment: &str) -> Result<Hlog, FileError> {
        let mut draft = Draft::create(path, Kind::Hlog)?;
        let mut serializer = HlogSerializer::new();
        let mut builder = IntervalLogWriterBuilder::new();
        builder
            .add_comment(&Kind::hlog_comment(comment))
            .add_comment(
                "values in nanoseconds; tags are stage names, warmup_<stage> during the warm-up",
            )
            .with_start_time(start)
            .with_base_time(start);
        builder
            .begin_log_with(draft.file(), &mut serializer)
            .map_err(|e| FileError::Io {
                action: "write",
                path: path.to_path_buf(),
                error: io::Error::other(e),
            })?;
        Ok(Hlog {
            file: draft.publish()?,
            serializer,
            start,
        })
    }

    /// Appends one interval histogram (nanoseconds) tagged `stage`, covering
    /// `offset..offset + length` from the log's start.
    pub fn append(
        &mut self,
        stage: &str,
        h: &Histogram<u64>,
        offset: Duration,
        length: Duration,
    ) -> io::Result<()> {
        // hdrhistogram's writer borrows its output for its whole life, which does not fit
        // a long-lived struct; so each interval is formatted by a fresh writer into a
        // buffer, and only its histogram line (not the header it starts with) is kept.
        let mut builder = IntervalLogWriterBuilder::new();
        builder.with_base_time(self.start);
        let mut buf = Vec::new();
        {
            let mut w = builder
                .begin_log_with(&mut buf, &mut self.serializer)
                .map_err(io::Error::other)?;
            w.write_histogram(h, offset, length, Tag::new(stage))
                .map_err(io::Error::other)?;
        }
        // Keep only the histogram line (the builder also wrote its header lines).
        let text = String::from_utf8_lossy(&buf);
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with('"'))
        {
            self.file.write_all(line.as_bytes())?;
            self.file.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Flushes the file to the OS.
    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    #[test]
    fn record_clamps_and_never_grows() {
        let mut s = StageSet::new();
        let before = s.get(Stage::Hop).distinct_values();
        s.record(Stage::Hop, 5);
        s.record(Stage::Hop, u64::MAX);
        assert_eq!(s.get(Stage::Hop).len(), 2);
        assert_eq!(s.get(Stage::Hop).distinct_values(), before);
        assert!(s.get(Stage::Hop).max() >= HIGHEST_RAW * 999 / 1000);
        s.reset();
        assert!(s.get(Stage::Hop).is_empty());
    }

    #[test]
    fn rotate_swaps_and_returns() {
        for kind in [ChannelKind::Rtrb, ChannelKind::Crossbeam] {
            let (mut rec, mut sink) = interval_channel(kind, 1);
            rec.stages().record(Stage::E2e, 100);
            let meta = |stages| Interval {
                stages,
                start_raw: 0,
                end_raw: 1,
                ticks: 1,
                gaps: 0,
                missed: 0,
                allocs: AllocCounts::default(),
                warmup: false,
            };
            assert_eq!(rec.rotate(meta), Rotate::Sent);
            assert!(rec.stages().get(Stage::E2e).is_empty());
            // The only spare is in use: the next rotation keeps recording.
            rec.stages().record(Stage::E2e, 7);
            assert_eq!(rec.rotate(meta), Rotate::NoSpare);
            assert_eq!(rec.stages().get(Stage::E2e).len(), 1);
            let mut got = sink.full.try_recv().unwrap();
            assert_eq!(got.stages.get(Stage::E2e).len(), 1);
            got.stages.reset();
            assert!(sink.spares.try_send(got.stages).is_ok());
            assert_eq!(rec.rotate(meta), Rotate::Sent);
            drop(sink);
            assert_eq!(rec.rotate(meta), Rotate::Disconnected);
        }
    }

    #[test]
    fn conversion_and_percentiles() {
        let mut raw = fixed_histogram(HIGHEST_RAW);
        for v in 1..=1000u64 {
            raw.record(v * 3).unwrap();
        }
        let mut ns = fixed_histogram(HIGHEST_NS);
        to_ns(&raw, 1.0 / 3.0, &mut ns);
        let p = Percentiles::of(&ns);
        assert_eq!(p.count, 1000);
        assert_eq!(p.min, 1);
        assert!(p.p50.abs_diff(500) <= 1, "{p:?}");
        assert!(p.p99.abs_diff(990) <= 1, "{p:?}");
        assert!(p.max.abs_diff(1000) <= 1, "{p:?}");
        assert_eq!(
            Percentiles::of(&fixed_histogram(100)),
            Percentiles::default()
        );
    }

    #[test]
    fn the_fast_serializer_writes_what_the_standard_deserializer_reads() {
        use hdrhistogram::serialization::{Deserializer, Serializer};
        let mut ser = HlogSerializer::new();
        for seed in 1..4u64 {
            let mut h = fixed_histogram(HIGHEST_NS);
            let mut x = seed;
            for _ in 0..50_000 {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                h.record((x >> 40).max(1)).unwrap();
            }
            let mut bytes = Vec::new();
            ser.serialize(&h, &mut bytes).unwrap();
            let back: Histogram<u64> = Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
            assert_eq!(back, h, "seed {seed}");
        }
    }

    #[test]
    fn hlog_round_trips_through_the_standard_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.hlog");
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut log = Hlog::create(&path, start, "test").unwrap();
        let mut h = fixed_histogram(HIGHEST_NS);
        h.record(1234).unwrap();
        log.append("hop", &h, Duration::from_secs(1), Duration::from_secs(1))
            .unwrap();
        log.append("e2e", &h, Duration::from_secs(2), Duration::from_secs(1))
            .unwrap();
        log.flush().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let mut tags = Vec::new();
        for entry in IntervalLogIterator::new(&bytes) {
            if let LogEntry::Interval(i) = entry.unwrap() {
                tags.push(i.tag().unwrap().as_str().to_string());
                let mut d = hdrhistogram::serialization::Deserializer::new();
                let b64 = i.encoded_histogram();
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap();
                let back: Histogram<u64> = d.deserialize(&mut &raw[..]).unwrap();
                assert_eq!(back.len(), 1);
                assert!(back.max().abs_diff(1234) <= 1);
            }
        }
        assert_eq!(tags, ["hop", "e2e"]);
    }
}
