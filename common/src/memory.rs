//! Process memory figures: resident set, page faults, and the allocator's own
//! statistics, with fragmentation and warnings against configured thresholds.
//!
//! Sampling reads `/proc/self/stat` and `/proc/self/statm` (through [`crate::os`]) and calls the allocator's
//! statistics function: system calls and allocation. Cold threads only.

use crate::config::MonitorConfig;
use crate::os::{page_faults, rss_bytes};
use crate::units::fmt_bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One sample of the process's memory.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemorySample {
    /// Resident set size, bytes.
    pub rss_bytes: u64,
    /// Minor page faults since the process started.
    pub minor_faults: u64,
    /// Major page faults since the process started.
    pub major_faults: u64,
    /// The allocator's own statistics (allocator-specific keys, bytes unless named
    /// otherwise), as returned by its hooks.
    pub allocator: BTreeMap<String, u64>,
    /// Fragmentation as a fraction, where the allocator reports enough to compute it:
    /// `1 - allocated / resident` (memory the process holds that the program is not
    /// using). `None` where the allocator does not say how much is allocated.
    pub fragmentation: Option<f64>,
}

/// Fragmentation from allocator statistics holding `allocated` and `resident` bytes.
pub fn fragmentation(stats: &BTreeMap<String, u64>) -> Option<f64> {
    let allocated = *stats.get("allocated")? as f64;
    let resident = *stats.get("resident")? as f64;
    (resident > 0.0).then(|| (1.0 - allocated / resident).max(0.0))
}

impl MemorySample {
    /// Samples this process, with `allocator_stats` from the allocator's hooks.
    pub fn take(allocator_stats: BTreeMap<String, u64>) -> MemorySample {
        let (minor_faults, major_faults) = page_faults();
        MemorySample {
            rss_bytes: rss_bytes(),
            minor_faults,
            major_faults,
            fragmentation: fragmentation(&allocator_stats),
            allocator: allocator_stats,
        }
    }
}

/// One readable line: RSS, page faults, the allocator's main figures, fragmentation.
pub fn format_line(s: &MemorySample) -> String {
    let mut line = format!(
        "rss={} faults={}/{}",
        fmt_bytes(s.rss_bytes),
        s.minor_faults,
        s.major_faults
    );
    for key in ["allocated", "active", "resident", "retained"] {
        if let Some(&v) = s.allocator.get(key) {
            line.push_str(&format!(" {key}={}", fmt_bytes(v)));
        }
    }
    if let Some(f) = s.fragmentation {
        line.push_str(&format!(" fragmentation={:.1}%", f * 100.0));
    }
    line
}

/// Memory over a run: the first and last samples and the peaks, with the warnings given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryReport {
    /// Sample at the start of the run.
    pub start: MemorySample,
    /// Sample at the end of the run.
    pub end: MemorySample,
    /// Largest RSS seen, bytes.
    pub peak_rss_bytes: u64,
    /// Largest fragmentation seen.
    pub peak_fragmentation: Option<f64>,
    /// Warnings printed during the run.
    pub warnings: Vec<String>,
}

/// Tracks samples over a run and decides when to warn (once per kind and level).
pub struct Monitor {
    config: MonitorConfig,
    report: MemoryReport,
    warned_fragmentation: bool,
    warned_rss_steps: u64,
}

impl Monitor {
    /// Starts tracking from `start`.
    pub fn new(config: MonitorConfig, start: MemorySample) -> Monitor {
        Monitor {
            config,
            report: MemoryReport {
                peak_rss_bytes: start.rss_bytes,
                peak_fragmentation: start.fragmentation,
                end: start.clone(),
                start,
                warnings: Vec::new(),
            },
            warned_fragmentation: false,
            warned_rss_steps: 0,
        }
    }

    /// Records `s`; returns a new warning, if this sample crossed a threshold.
    pub fn observe(&mut self, s: MemorySample) -> Option<String> {
        let r = &mut self.report;
        r.peak_rss_bytes = r.peak_rss_bytes.max(s.rss_bytes);
        if let Some(f) = s.fragmentation {
            r.peak_fragmentation = Some(r.peak_fragmentation.map_or(f, |p| p.max(f)));
        }
        let mut warning = None;
        if let Some(f) = s.fragmentation {
            if f > self.config.fragmentation_warn && !self.warned_fragmentation {
                self.warned_fragmentation = true;
                warning = Some(format!(
                    "fragmentation {:.0}% is above the {:.0}% threshold (resident {} for {} allocated)",
                    f * 100.0,
                    self.config.fragmentation_warn * 100.0,
                    fmt_bytes(s.allocator.get("resident").copied().unwrap_or(0)),
                    fmt_bytes(s.allocator.get("allocated").copied().unwrap_or(0)),
                ));
            }
        }
        let step = self.config.rss_growth_warn_mib.max(1) << 20;
        let growth = s.rss_bytes.saturating_sub(r.start.rss_bytes);
        let steps = growth / step;
        if steps > self.warned_rss_steps {
            self.warned_rss_steps = steps;
            warning = Some(format!(
                "RSS grew by {} since the start (to {}), past {} × {} MiB",
                fmt_bytes(growth),
                fmt_bytes(s.rss_bytes),
                steps,
                self.config.rss_growth_warn_mib
            ));
        }
        if let Some(w) = &warning {
            r.warnings.push(w.clone());
        }
        r.end = s;
        warning
    }

    /// The report so far.
    pub fn report(&self) -> &MemoryReport {
        &self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rss_mib: u64, allocated: u64, resident: u64) -> MemorySample {
        let stats: BTreeMap<String, u64> = [
            ("allocated".into(), allocated),
            ("resident".into(), resident),
        ]
        .into();
        MemorySample {
            rss_bytes: rss_mib << 20,
            fragmentation: fragmentation(&stats),
            allocator: stats,
            ..MemorySample::default()
        }
    }

    #[test]
    fn faults_and_rss_are_read() {
        let s = MemorySample::take(BTreeMap::new());
        assert!(s.rss_bytes > 0);
        assert!(s.minor_faults > 0, "a running process has faulted pages in");
        assert_eq!(s.fragmentation, None);
    }

    #[test]
    fn line_shows_what_is_known() {
        let s = sample(3, 75, 100);
        assert_eq!(
            format_line(&s),
            "rss=3.0MiB faults=0/0 allocated=75B resident=100B fragmentation=25.0%"
        );
    }

    #[test]
    fn fragmentation_is_unused_share_of_resident() {
        assert_eq!(sample(1, 75, 100).fragmentation, Some(0.25));
        assert_eq!(sample(1, 100, 0).fragmentation, None);
        assert_eq!(sample(1, 120, 100).fragmentation, Some(0.0));
    }

    #[test]
    fn warns_once_per_threshold_crossing() {
        let cfg = MonitorConfig {
            fragmentation_warn: 0.5,
            rss_growth_warn_mib: 100,
        };
        let mut m = Monitor::new(cfg, sample(10, 90, 100));
        assert_eq!(m.observe(sample(50, 90, 100)), None);
        let w = m.observe(sample(60, 40, 100)).unwrap();
        assert!(w.starts_with("fragmentation 60%"), "{w}");
        assert_eq!(m.observe(sample(60, 10, 100)), None, "already warned");
        let w = m.observe(sample(120, 90, 100)).unwrap();
        assert!(w.starts_with("RSS grew by 110.0MiB"), "{w}");
        assert_eq!(m.observe(sample(150, 90, 100)), None);
        assert!(m.observe(sample(215, 90, 100)).is_some(), "a second step");
        let r = m.report();
        assert_eq!(r.peak_rss_bytes, 215 << 20);
        assert_eq!(r.peak_fragmentation, Some(0.9));
        assert_eq!(r.warnings.len(), 3);
    }
}
