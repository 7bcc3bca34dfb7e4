//! Byte counts, durations and times written for people: every readable unit the
//! project prints (interval lines, warnings, tables, folder names) comes from here, so
//! that one quantity reads the same everywhere.
//!
//! Each function is pure: it reads nothing but its argument and returns a new
//! `String` (it allocates). Cold code only; nothing on a hot path formats.
//!
//! # Examples
//!
//! ```
//! use common::units::{fmt_bytes, fmt_duration, fmt_ns, utc_stamp};
//! use std::time::{Duration, SystemTime};
//!
//! assert_eq!(fmt_bytes(4 << 20), "4.0MiB");
//! assert_eq!(fmt_ns(1_234), "1.23µs");
//! assert_eq!(fmt_duration(Duration::from_secs(425)), "7m05s");
//! assert_eq!(utc_stamp(SystemTime::UNIX_EPOCH), "19700101-000000");
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A byte count in readable binary units: `512B`, `12.3KiB`, `4.0MiB`, `1.50GiB`.
pub fn fmt_bytes(bytes: u64) -> String {
    const K: f64 = 1024.0;
    let b = bytes as f64;
    if b < K {
        format!("{bytes}B")
    } else if b < K * K {
        format!("{:.1}KiB", b / K)
    } else if b < K * K * K {
        format!("{:.1}MiB", b / (K * K))
    } else {
        format!("{:.2}GiB", b / (K * K * K))
    }
}

/// A duration in nanoseconds in readable units: `850ns`, `1.23µs`, `12.4µs`, `3.1ms`, `2.0s`.
pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=9_999 => format!("{:.2}µs", ns as f64 / 1e3),
        10_000..=999_999 => format!("{:.1}µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.1}s", ns as f64 / 1e9),
    }
}

/// A wall-clock span to the second, for progress and estimates: `7m05s`, or `42s`.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// `YYYYmmdd-HHMMSS` of `t` in UTC (times before 1970 read as 1970): the stamp that
/// names result folders, so that they sort by time.
pub fn utc_stamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Proleptic Gregorian (year, month, day) of `days` since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_bytes() {
        assert_eq!(fmt_bytes(512), "512B");
        assert_eq!(fmt_bytes(12_595), "12.3KiB");
        assert_eq!(fmt_bytes(4 << 20), "4.0MiB");
        assert_eq!(fmt_bytes(3 << 29), "1.50GiB");
    }

    #[test]
    fn readable_nanoseconds() {
        assert_eq!(fmt_ns(850), "850ns");
        assert_eq!(fmt_ns(1_234), "1.23µs");
        assert_eq!(fmt_ns(12_400), "12.4µs");
        assert_eq!(fmt_ns(3_100_000), "3.1ms");
        assert_eq!(fmt_ns(12_000_000_000), "12.0s");
    }

    #[test]
    fn readable_durations() {
        assert_eq!(fmt_duration(Duration::from_secs(42)), "42s");
        assert_eq!(fmt_duration(Duration::from_secs(425)), "7m05s");
    }

    #[test]
    fn utc_stamps() {
        let at = |s: u64| utc_stamp(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "19700101-000000");
        assert_eq!(at(951_782_400), "20000229-000000");
        assert_eq!(at(1_700_000_000), "20231114-221320");
        assert_eq!(at(4_102_444_799), "20991231-235959");
        assert_eq!(at(4_107_542_399), "21000228-235959");
    }
}
