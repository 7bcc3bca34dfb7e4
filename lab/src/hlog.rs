//! Reading the engine's HdrHistogram interval log (`engine.hlog`) back: the measured
//! histograms for the plots of `lab compare`, the interval count for `lab chaos`.
//!
//! The engine logs every interval of a run, warm-up included, one histogram per stage
//! (values in nanoseconds). Warm-up intervals are tagged `warmup_<stage>` and measured
//! ones `<stage>`; [`measured`] adds up each stage's measured intervals, so their counts
//! add up to the stage's count in the run's `summary.json` (the caller checks this and
//! reports where they do not). A log without warm-up tags has all its stage-tagged
//! intervals counted.
//!
//! Decoding is pure (bytes in, histograms out); reading the file is the caller's.

use anyhow::{anyhow, Context, Result};
use base64::Engine as _;
use common::latency::{fixed_histogram, HIGHEST_NS};
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;

/// Prefix of the tags of warm-up intervals.
pub const WARMUP_PREFIX: &str = "warmup_";

/// Decodes every interval of an interval log, in order, handing each one's tag (if it
/// has one) and histogram to `each`. Fails on anything that is not a well-formed log of
/// decodable histograms.
fn for_each_interval(
    bytes: &[u8],
    mut each: impl FnMut(Option<&str>, Histogram<u64>) -> Result<()>,
) -> Result<()> {
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(bytes) {
        let entry = entry.map_err(|e| anyhow!("not an HdrHistogram interval log: {e:?}"))?;
        let LogEntry::Interval(i) = entry else {
            continue;
        };
        let tag = i.tag().map(|t| t.as_str());
        let what = tag.map_or_else(
            || "an interval".to_string(),
            |t| format!("a `{t}` interval"),
        );
        let raw = base64::engine::general_purpose::STANDARD
            .decode(i.encoded_histogram())
            .with_context(|| format!("bad base64 in {what}"))?;
        let h: Histogram<u64> = deserializer
            .deserialize(&mut &raw[..])
            .map_err(|e| anyhow!("cannot decode the histogram of {what}: {e:?}"))?;
        each(tag, h)?;
    }
    Ok(())
}

/// Decodes every interval of an interval log; returns how many there are.
pub fn count_intervals(bytes: &[u8]) -> Result<usize> {
    let mut n = 0;
    for_each_interval(bytes, |_, _| {
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

/// Decodes an interval log and adds up each stage's measured intervals (those not tagged
/// `warmup_<stage>`), nanoseconds, by stage name. Untagged intervals are left out.
pub fn measured(bytes: &[u8]) -> Result<BTreeMap<String, Histogram<u64>>> {
    let mut out: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    for_each_interval(bytes, |tag, h| {
        let Some(stage) = tag.filter(|t| !t.starts_with(WARMUP_PREFIX)) else {
            return Ok(());
        };
        out.entry(stage.to_string())
            .or_insert_with(|| fixed_histogram(HIGHEST_NS))
            .add(&h)
            .context("an interval histogram out of range")
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::latency::Hlog;
    use std::time::{Duration, SystemTime};

    /// A log of `e2e` intervals: (tag, value, count) each, 600 ms apart.
    fn log(intervals: &[(&str, u64, u64)]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.hlog");
        let mut log = Hlog::create(&path, SystemTime::UNIX_EPOCH, "test").unwrap();
        for (i, (tag, value, n)) in intervals.iter().enumerate() {
            let mut h = fixed_histogram(HIGHEST_NS);
            h.record_n(*value, *n).unwrap();
            let at = Duration::from_millis(600 * i as u64);
            log.append(tag, &h, at, Duration::from_millis(600)).unwrap();
        }
        log.flush().unwrap();
        std::fs::read(&path).unwrap()
    }

    #[test]
    fn warmup_tags_mark_the_warmup() {
        let bytes = log(&[("warmup_e2e", 1000, 2), ("e2e", 100, 2), ("e2e", 200, 2)]);
        let m = measured(&bytes).unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["e2e"]);
        assert_eq!(m["e2e"].len(), 4);
        assert!(m["e2e"].max() < 300, "no warm-up value: {}", m["e2e"].max());
        assert_eq!(count_intervals(&bytes).unwrap(), 3);
    }

    #[test]
    fn without_warmup_tags_every_interval_counts() {
        let m = measured(&log(&[("e2e", 1000, 5), ("e2e", 100, 3), ("e2e", 200, 2)])).unwrap();
        assert_eq!(m["e2e"].len(), 10);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(measured(b"Tag=e2e,1.0,1.0,5.0,!!notbase64\n").is_err());
        assert!(count_intervals(b"Tag=e2e,1.0,1.0,5.0,!!notbase64\n").is_err());
        assert!(measured(b"").unwrap().is_empty());
    }
}
