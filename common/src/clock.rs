//! Time stamps for the hot path: raw TSC reads through quanta, or `CLOCK_MONOTONIC`
//! where the TSC cannot be trusted.
//!
//! [`Clock::raw`] is the only call the hot path makes: one `rdtsc` (about 10 ns here),
//! no system call, no allocation. Raw readings are compared and turned into
//! nanoseconds off the hot path with [`Clock::delta_ns`] or [`Clock::ns_per_raw`].
//!
//! Raw readings from two processes on one machine are comparable when both use the
//! same source: an invariant TSC is shared by all cores, and `CLOCK_MONOTONIC` is
//! system-wide. The ring header records the producer's source so that a consumer with
//! another source refuses to mix them.
//!
//! The source is the TSC when the CPU reports an invariant TSC (`constant_tsc` and
//! `nonstop_tsc` in `/proc/cpuinfo`, [`crate::os::tsc_is_invariant`]), else `CLOCK_MONOTONIC`. Setting
//! `HFT_CLOCK=monotonic` forces the fallback.

use serde::Serialize;

/// Where raw clock readings come from.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockSource {
    /// The invariant time-stamp counter, read through quanta; units are TSC cycles.
    Tsc = 1,
    /// `clock_gettime(CLOCK_MONOTONIC)`; units are nanoseconds.
    Monotonic = 2,
}

impl ClockSource {
    /// The source stored as `value` in a ring header, if known.
    pub fn from_u32(value: u32) -> Option<ClockSource> {
        match value {
            1 => Some(ClockSource::Tsc),
            2 => Some(ClockSource::Monotonic),
            _ => None,
        }
    }

    /// A short lowercase name: `tsc` or `monotonic`.
    pub fn name(self) -> &'static str {
        match self {
            ClockSource::Tsc => "tsc",
            ClockSource::Monotonic => "monotonic",
        }
    }
}

/// A clock with a fixed source. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Clock {
    source: ClockSource,
    quanta: quanta::Clock,
}

impl Clock {
    /// The best trustworthy source on this machine (see the module docs).
    pub fn new() -> Clock {
        let forced = std::env::var("HFT_CLOCK").is_ok_and(|v| v == "monotonic");
        let source = if !forced && cfg!(target_arch = "x86_64") && crate::os::tsc_is_invariant() {
            ClockSource::Tsc
        } else {
            ClockSource::Monotonic
        };
        Clock::with_source(source)
    }

    /// A clock reading `source`.
    pub fn with_source(source: ClockSource) -> Clock {
        Clock {
            source,
            quanta: quanta::Clock::new(),
        }
    }

    /// Where readings come from.
    pub fn source(&self) -> ClockSource {
        self.source
    }

    /// A raw reading: TSC cycles or monotonic nanoseconds. No allocation, no system
    /// call on the TSC path (the monotonic path goes through the vDSO).
    #[inline(always)]
    pub fn raw(&self) -> u64 {
        match self.source {
            ClockSource::Tsc => self.quanta.raw(),
            ClockSource::Monotonic => monotonic_ns(),
        }
    }

    /// Nanoseconds from `start` to `end` (0 if `end` is before `start`).
    pub fn delta_ns(&self, start: u64, end: u64) -> u64 {
        if end <= start {
            return 0;
        }
        match self.source {
            ClockSource::Tsc => self.quanta.delta_as_nanos(start, end),
            ClockSource::Monotonic => end - start,
        }
    }

    /// Nanoseconds per raw unit, for converting whole histograms at once.
    pub fn ns_per_raw(&self) -> f64 {
        match self.source {
            ClockSource::Tsc => {
                const SPAN: u64 = 1 << 40;
                self.quanta.delta_as_nanos(0, SPAN) as f64 / SPAN as f64
            }
            ClockSource::Monotonic => 1.0,
        }
    }

    /// The fewest raw units that span at least `ns` nanoseconds by [`Clock::delta_ns`],
    /// so that a deadline or a timeout built from it is never short of what was asked
    /// (a plain rounding can fall a fraction of a nanosecond short, and `delta_ns`
    /// truncates). Exact for spans up to days; beyond, within the calibration's error.
    pub fn raw_from_ns(&self, ns: u64) -> u64 {
        let mut raw = (ns as f64 / self.ns_per_raw()).round() as u64;
        // The estimate is off by a few units at most for the spans used here.
        for _ in 0..1024 {
            if raw > 0 && self.delta_ns(0, raw - 1) >= ns {
                raw -= 1;
            } else if raw < u64::MAX && self.delta_ns(0, raw) < ns {
                raw += 1;
            } else {
                break;
            }
        }
        raw
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds.
#[inline]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC is always supported on
    // Linux, so the call cannot fail and only writes `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time the calling thread has used, in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`).
/// A system call on most kernels (the vDSO does not serve it): for cold threads only.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is supported on
    // Linux for the calling thread, so the call only writes `ts` (it is left at 0 should
    // it fail).
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Wall-clock nanoseconds since the Unix epoch (for run identities, not latency).
pub fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sources_advance_and_convert() {
        for source in [ClockSource::Tsc, ClockSource::Monotonic] {
            if source == ClockSource::Tsc && !cfg!(target_arch = "x86_64") {
                continue;
            }
            let c = Clock::with_source(source);
            let a = c.raw();
            std::thread::sleep(std::time::Duration::from_millis(20));
            let b = c.raw();
            assert!(b > a);
            let ns = c.delta_ns(a, b);
            // Slept at least 20 ms; a sleep can overrun, so only the lower bound holds.
            assert!(ns >= 19_000_000, "{source:?}: {ns} ns");
            assert_eq!(c.delta_ns(b, a), 0);
            let scaled = ((b - a) as f64 * c.ns_per_raw()) as u64;
            assert!(scaled.abs_diff(ns) <= ns / 1000 + 1, "{scaled} vs {ns}");
        }
    }

    #[test]
    fn a_span_in_raw_units_is_the_fewest_that_reach_the_nanoseconds() {
        for source in [ClockSource::Tsc, ClockSource::Monotonic] {
            if source == ClockSource::Tsc && !cfg!(target_arch = "x86_64") {
                continue;
            }
            let c = Clock::with_source(source);
            for ns in (0..2_000u64).chain([20_000_000, 1_000_000_000, 3_600_000_000_000]) {
                let raw = c.raw_from_ns(ns);
                assert!(c.delta_ns(0, raw) >= ns, "{source:?}: {ns} ns -> {raw}");
                if raw > 0 {
                    assert!(c.delta_ns(0, raw - 1) < ns, "{source:?}: {ns} ns -> {raw}");
                }
            }
        }
    }

    #[test]
    fn source_round_trips_through_u32() {
        for s in [ClockSource::Tsc, ClockSource::Monotonic] {
            assert_eq!(ClockSource::from_u32(s as u32), Some(s));
        }
        assert_eq!(ClockSource::from_u32(0), None);
    }
}
