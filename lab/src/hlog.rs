//! Reading the engine's HdrHistogram interval log (`engine.hlog`) back, for the plots of
//! `lab compare`.
//!
//! The engine logs every interval of a run, warm-up included, one histogram per stage
//! (values in nanoseconds, start times relative to the first interval). The measured
//! intervals are chosen like this, per stage:
//!
//! 1. **By tag** (the engine's current logs): warm-up intervals are tagged
//!    `warmup_<stage>`, measured ones `<stage>`; the measured ones are taken. Their
//!    counts add up to the stage's count in the run's `summary.json` (which the caller
//!    checks and reports when they do not).
//! 2. **By count** (logs without `warmup_` tags): the trailing intervals whose sample
//!    counts add up exactly to the summary's count, which counts only post-warm-up
//!    ticks; the warm-up intervals come first in the log.
//! 3. **By start time** (fallback, when no suffix adds up, e.g. a log cut short): the
//!    intervals whose start is at or after the configuration's `warmup_s`. The engine's
//!    warm-up starts at its first tick, at or after the first interval's start, so this
//!    takes no more warm-up than rule 2 would, but it can drop the first measured
//!    interval.
//!
//! Decoding is pure (bytes in, histograms out); reading the file is the caller's.

use anyhow::{anyhow, Context, Result};
use base64::Engine as _;
use common::latency::{fixed_histogram, HIGHEST_NS};
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;

/// How a stage's measured intervals were chosen (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// The intervals not tagged `warmup_<stage>`.
    Tag,
    /// The trailing intervals whose counts add up to the summary's count.
    Count,
    /// The intervals starting at or after the warm-up.
    StartTime,
}

/// Prefix of the tags of warm-up intervals.
pub const WARMUP_PREFIX: &str = "warmup_";

/// One stage's measured histogram.
#[derive(Clone, Debug)]
pub struct Measured {
    /// The post-warm-up intervals added up, nanoseconds.
    pub hist: Histogram<u64>,
    /// How the intervals were chosen.
    pub selection: Selection,
}

/// Decodes every interval of an interval log; returns how many there are. Fails on
/// anything that is not a well-formed log of decodable histograms.
pub fn count_intervals(bytes: &[u8]) -> Result<usize> {
    let mut deserializer = Deserializer::new();
    let mut n = 0;
    for entry in IntervalLogIterator::new(bytes) {
        let entry = entry.map_err(|e| anyhow!("not an HdrHistogram interval log: {e:?}"))?;
        let LogEntry::Interval(i) = entry else {
            continue;
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(i.encoded_histogram())
            .context("bad base64 in an interval")?;
        let _: Histogram<u64> = deserializer
            .deserialize(&mut &raw[..])
            .map_err(|e| anyhow!("cannot decode a histogram: {e:?}"))?;
        n += 1;
    }
    Ok(n)
}

/// Decodes an interval log and adds up each stage's measured intervals. `expected` is
/// each stage's post-warm-up count from the run's summary; `warmup_s` the
/// configuration's warm-up.
pub fn measured(
    bytes: &[u8],
    expected: &BTreeMap<String, u64>,
    warmup_s: f64,
) -> Result<BTreeMap<String, Measured>> {
    let mut intervals: BTreeMap<String, Vec<(f64, Histogram<u64>)>> = BTreeMap::new();
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(bytes) {
        let entry = entry.map_err(|e| anyhow!("not an HdrHistogram interval log: {e:?}"))?;
        let LogEntry::Interval(i) = entry else {
            continue;
        };
        let Some(tag) = i.tag() else { continue };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(i.encoded_histogram())
            .with_context(|| format!("bad base64 in a `{}` interval", tag.as_str()))?;
        let h: Histogram<u64> = deserializer
            .deserialize(&mut &raw[..])
            .map_err(|e| anyhow!("cannot decode a `{}` histogram: {e:?}", tag.as_str()))?;
        intervals
            .entry(tag.as_str().to_string())
            .or_default()
            .push((i.start_timestamp().as_secs_f64(), h));
    }
    let tagged = intervals.keys().any(|k| k.starts_with(WARMUP_PREFIX));
    intervals.retain(|k, _| !k.starts_with(WARMUP_PREFIX));
    let mut out = BTreeMap::new();
    for (stage, list) in intervals {
        let (from, selection) = match expected.get(&stage) {
            _ if tagged => (0, Selection::Tag),
            Some(&want) => match suffix_with_count(&list, want) {
                Some(from) => (from, Selection::Count),
                None => (usize::MAX, Selection::StartTime),
            },
            None => (usize::MAX, Selection::StartTime),
        };
        let mut hist = fixed_histogram(HIGHEST_NS);
        for (i, (start_s, h)) in list.iter().enumerate() {
            let take = match selection {
                Selection::Tag | Selection::Count => i >= from,
                Selection::StartTime => *start_s >= warmup_s,
            };
            if take {
                hist.add(h).context("an interval histogram out of range")?;
            }
        }
        out.insert(stage, Measured { hist, selection });
    }
    Ok(out)
}

/// The index from which the intervals' counts add up to exactly `want`, if one does.
fn suffix_with_count(list: &[(f64, Histogram<u64>)], want: u64) -> Option<usize> {
    let mut sum = 0u64;
    let mut from = list.len();
    while from > 0 && sum < want {
        from -= 1;
        sum += list[from].1.len();
    }
    (sum == want).then_some(from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::latency::Hlog;
    use std::time::{Duration, SystemTime};

    /// A log with a warm-up interval (values 1000) and two measured ones (values 100
    /// and 200), for `e2e`.
    fn log() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.hlog");
        let mut log = Hlog::create(&path, SystemTime::UNIX_EPOCH, "test").unwrap();
        for (i, (value, n)) in [(1000u64, 5u64), (100, 3), (200, 2)].iter().enumerate() {
            let mut h = fixed_histogram(HIGHEST_NS);
            h.record_n(*value, *n).unwrap();
            let at = Duration::from_millis(600 * i as u64);
            log.append("e2e", &h, at, Duration::from_millis(600))
                .unwrap();
        }
        log.flush().unwrap();
        std::fs::read(&path).unwrap()
    }

    #[test]
    fn selects_the_intervals_the_summary_counted() {
        let expected = [("e2e".to_string(), 5)].into();
        let m = measured(&log(), &expected, 1.0).unwrap();
        let e2e = &m["e2e"];
        assert_eq!(e2e.selection, Selection::Count);
        assert_eq!(e2e.hist.len(), 5);
        assert!(e2e.hist.max() < 300, "no warm-up value: {}", e2e.hist.max());
    }

    #[test]
    fn falls_back_to_the_warmup_time() {
        // No suffix adds up to 4: intervals starting at or after 1.0 s (the last one).
        let expected = [("e2e".to_string(), 4)].into();
        let m = measured(&log(), &expected, 1.0).unwrap();
        assert_eq!(m["e2e"].selection, Selection::StartTime);
        assert_eq!(m["e2e"].hist.len(), 2);
        let m = measured(&log(), &BTreeMap::new(), 0.5).unwrap();
        assert_eq!(m["e2e"].hist.len(), 5);
    }

    #[test]
    fn warmup_tags_mark_the_warmup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.hlog");
        let mut log = Hlog::create(&path, SystemTime::UNIX_EPOCH, "test").unwrap();
        for (i, (tag, value)) in [("warmup_e2e", 1000u64), ("e2e", 100), ("e2e", 200)]
            .iter()
            .enumerate()
        {
            let mut h = fixed_histogram(HIGHEST_NS);
            h.record_n(*value, 2).unwrap();
            let at = Duration::from_millis(600 * i as u64);
            log.append(tag, &h, at, Duration::from_millis(600)).unwrap();
        }
        log.flush().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        // Whatever the summary says, the tags decide.
        let m = measured(&bytes, &[("e2e".to_string(), 6)].into(), 5.0).unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["e2e"]);
        assert_eq!(m["e2e"].selection, Selection::Tag);
        assert_eq!(m["e2e"].hist.len(), 4);
        assert!(m["e2e"].hist.max() < 300);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(measured(b"Tag=e2e,1.0,1.0,5.0,!!notbase64\n", &BTreeMap::new(), 0.0).is_err());
        assert!(measured(b"", &BTreeMap::new(), 0.0).unwrap().is_empty());
    }
}
