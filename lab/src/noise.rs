//! The machine's noise floor on the hot cores, probed beside a run: a busy loop reading
//! the clock on the feed's and the engine's hot cores at once (both busy, as in the
//! run), the time each core loses in gaps, and what those gaps alone would do to a
//! steady stream of ticks ([`crate::bench::jitter::stream_floor`]). A tail of the
//! pipeline at or below that floor is the machine's, not the pipeline's.
//!
//! Start-up work of `lab`: it spins both cores for the probe's length, so it runs
//! before the feed and the engine start, never beside them.

use crate::bench::harness::PinReport;
use crate::bench::jitter::{probe_many, stream_floor};
use common::clock::Clock;
use common::summary::{CoreNoise, NoiseFloor};

/// Probes `cores` at once for `seconds` (`when` says when, for the report).
pub fn probe(cores: &[usize], seconds: f64, when: &str) -> NoiseFloor {
    let clock = Clock::new();
    let pins = PinReport::default();
    let probed = probe_many(&clock, cores, seconds, &pins);
    let gaps: Vec<_> = probed.iter().map(|(_, h)| h).collect();
    let measured = probed
        .iter()
        .map(|(j, _)| j.seconds)
        .fold(f64::INFINITY, f64::min)
        .min(seconds.max(1e-9));
    NoiseFloor {
        seconds: measured,
        when: when.to_string(),
        cores: probed
            .iter()
            .map(|(j, _)| {
                let per_s = |n: u64| {
                    if j.seconds > 0.0 {
                        n as f64 / j.seconds
                    } else {
                        0.0
                    }
                };
                CoreNoise {
                    core: j.core,
                    lost_fraction: if j.seconds > 0.0 {
                        j.stolen_ns as f64 / (j.seconds * 1e9)
                    } else {
                        0.0
                    },
                    gaps_over_100us_per_s: per_s(j.stalls[2]),
                    gap_p99_9_ns: j.ns.p99_9,
                    max_gap_ns: j.ns.max,
                }
            })
            .collect(),
        stream_p99_ns: stream_floor(&gaps, measured, 0.99),
        stream_p99_9_ns: stream_floor(&gaps, measured, 0.999),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_every_core_at_once() {
        let cores = common::cores::allowed_cores();
        let cores = &cores[..cores.len().min(2)];
        let n = probe(cores, 0.05, "before");
        assert_eq!(n.cores.len(), cores.len());
        assert!(n.seconds >= 0.05, "{n:?}");
        assert!(n.stream_p99_ns <= n.stream_p99_9_ns, "{n:?}");
        for (c, &core) in n.cores.iter().zip(cores) {
            assert_eq!(c.core, core);
            assert!(c.max_gap_ns >= c.gap_p99_9_ns, "{c:?}");
            assert!((0.0..=1.0).contains(&c.lost_fraction), "{c:?}");
        }
    }
}
