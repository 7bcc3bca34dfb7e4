//! `lab bench jitter`: the machine's noise floor on one core. A thread pinned to the
//! core reads the clock in a tight loop and records the gap between consecutive reads
//! into a fixed-bound histogram. The median is the cost of a clock read (and the TSC's
//! step); everything above it is the core being taken away: interrupts, the
//! hypervisor, other threads, SMIs. No end-to-end latency on that core can have a
//! better tail than this.

use super::harness::PinReport;
use super::output::fmt_rate;
use crate::cli::JitterArgs;
use crate::host::Host;
use crate::table::{percentile_cells, Table, PERCENTILE_COLUMNS};
use anyhow::anyhow;
use anyhow::{Context, Result};
use common::clock::Clock;
use common::failure::Failure;
use common::latency::{fixed_histogram, to_ns, Percentiles, HIGHEST_NS, HIGHEST_RAW};
use common::units::fmt_ns;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write as _;

/// Gaps above these (ns) are counted separately.
const STALL_NS: [u64; 3] = [1_000, 10_000, 100_000];

/// What the probe measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Jitter {
    pub core: usize,
    pub seconds: f64,
    /// Gaps in nanoseconds.
    pub ns: Percentiles,
    /// Gaps longer than each of [`STALL_NS`].
    pub stalls: [u64; 3],
    /// Total time in gaps longer than 1 µs, in nanoseconds.
    pub stolen_ns: u64,
}

/// Runs `lab bench jitter`.
pub fn jitter(args: &JitterArgs) -> Result<()> {
    if let Some(path) = &args.json {
        // Refuse someone else's file before the probe, not after it.
        common::files::examine(path, common::files::Kind::Json)?;
    }
    let allowed = common::cores::allowed_cores();
    let core = match args.core {
        Some(c) if allowed.contains(&c) => c,
        Some(c) => {
            return Err(Failure::bad_input(anyhow!(
                "--core {c} is not an allowed core (allowed: {allowed:?})"
            ))
            .into())
        }
        None => *allowed.last().context("no allowed core")?,
    };
    let clock = Clock::new();
    eprintln!(
        "lab bench jitter: {} s on core {core}, clock {}",
        args.seconds,
        clock.source().name()
    );
    let pins = PinReport::default();
    let j = probe(&clock, core, args.seconds, &pins);
    let pinned = pins.all_pinned();
    let host = Host::probe(&clock);
    print!("{}", format_jitter(&j, &host, pinned));
    let _ = std::io::stdout().flush();
    if let Some(path) = &args.json {
        let machine = JitterMachine {
            host: &host,
            ns_per_raw: clock.ns_per_raw(),
            pinned,
        };
        common::files::write_json(path, &JitterJson::of(&j, machine))?;
        eprintln!("lab bench jitter: wrote {}", path.display());
    }
    Ok(())
}

/// The `--json` report: the core and the probe's length, the gaps' percentiles
/// (`count`, `min`, `p50` … `max`, nanoseconds), the long-gap counts, the time lost in
/// them, and the machine.
#[derive(Serialize)]
struct JitterJson<'a> {
    core: usize,
    seconds: f64,
    #[serde(flatten)]
    ns: &'a Percentiles,
    gaps_over_1us: u64,
    gaps_over_10us: u64,
    gaps_over_100us: u64,
    stolen_ns: u64,
    stolen_fraction: f64,
    machine: JitterMachine<'a>,
}

/// Where the probe ran.
#[derive(Serialize)]
struct JitterMachine<'a> {
    #[serde(flatten)]
    host: &'a Host,
    ns_per_raw: f64,
    pinned: bool,
}

impl<'a> JitterJson<'a> {
    fn of(j: &'a Jitter, machine: JitterMachine<'a>) -> JitterJson<'a> {
        let [gaps_over_1us, gaps_over_10us, gaps_over_100us] = j.stalls;
        JitterJson {
            core: j.core,
            seconds: j.seconds,
            ns: &j.ns,
            gaps_over_1us,
            gaps_over_10us,
            gaps_over_100us,
            stolen_ns: j.stolen_ns,
            stolen_fraction: stolen_fraction(j),
            machine,
        }
    }
}

fn stolen_fraction(j: &Jitter) -> f64 {
    if j.seconds > 0.0 {
        j.stolen_ns as f64 / (j.seconds * 1e9)
    } else {
        0.0
    }
}

/// The busy loop, on a thread pinned to `core`, for `seconds`.
pub fn probe(clock: &Clock, core: usize, seconds: f64, pins: &PinReport) -> Jitter {
    probe_many(clock, &[core], seconds, pins)
        .pop()
        .map(|(j, _)| j)
        .unwrap_or_default()
}

/// The busy loop on every core of `cores` at once (one pinned thread each, started
/// together), for `seconds`: each core's figures and its gaps as a histogram in
/// nanoseconds (for [`stream_floor`]).
pub fn probe_many(
    clock: &Clock,
    cores: &[usize],
    seconds: f64,
    pins: &PinReport,
) -> Vec<(Jitter, Histogram<u64>)> {
    let stall_raw = STALL_NS.map(|ns| clock.raw_from_ns(ns));
    let length_raw = clock.raw_from_ns((seconds * 1e9) as u64);
    let ready = std::sync::Barrier::new(cores.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = cores
            .iter()
            .map(|&core| {
                let ready = &ready;
                s.spawn(move || {
                    let mut hist = fixed_histogram(HIGHEST_RAW);
                    pins.pin("jitter probe", core);
                    ready.wait();
                    let mut stalls = [0u64; 3];
                    let mut stolen_raw = 0u64;
                    let start = clock.raw();
                    let deadline = start.saturating_add(length_raw);
                    let mut prev = start;
                    loop {
                        let now = clock.raw();
                        let gap = now.saturating_sub(prev);
                        prev = now;
                        hist.saturating_record(gap.min(HIGHEST_RAW));
                        if gap > stall_raw[0] {
                            stolen_raw += gap;
                            for (n, &limit) in stalls.iter_mut().zip(&stall_raw) {
                                *n += u64::from(gap > limit);
                            }
                        }
                        if now >= deadline {
                            break;
                        }
                    }
                    let mut ns = fixed_histogram(HIGHEST_NS);
                    to_ns(&hist, clock.ns_per_raw(), &mut ns);
                    let j = Jitter {
                        core,
                        seconds: clock.delta_ns(0, prev - start) as f64 / 1e9,
                        ns: Percentiles::of(&ns),
                        stalls,
                        stolen_ns: clock.delta_ns(0, stolen_raw),
                    };
                    (j, ns)
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(cores)
            .map(|(h, &core)| {
                h.join().unwrap_or_else(|_| {
                    (
                        Jitter {
                            core,
                            ..Jitter::default()
                        },
                        fixed_histogram(HIGHEST_NS),
                    )
                })
            })
            .collect()
    })
}

/// The best `q` quantile (0.99, 0.999) a steady stream of ticks through the probed
/// cores could have, given only their gaps (nanoseconds, over `seconds`): a tick that
/// arrives, at a uniformly random time, inside a gap of length `g` waits for the rest
/// of it, so the fraction of ticks delayed by more than `x` is the sum over all gaps of
/// `max(g - x, 0)` divided by the time probed (the cores' shares add up: a tick passes
/// through each). Returns the smallest `x` whose fraction is at most `1 - q`.
pub fn stream_floor(gaps: &[&Histogram<u64>], seconds: f64, q: f64) -> u64 {
    let total_ns = seconds * 1e9;
    if total_ns <= 0.0 {
        return 0;
    }
    let late = |x: u64| -> f64 {
        gaps.iter()
            .flat_map(|h| h.iter_recorded())
            .filter(|v| v.value_iterated_to() > x)
            .map(|v| (v.value_iterated_to() - x) as f64 * v.count_at_value() as f64)
            .sum::<f64>()
            / total_ns
    };
    let allowed = 1.0 - q;
    let (mut lo, mut hi) = (0u64, gaps.iter().map(|h| h.max()).max().unwrap_or(0));
    if late(lo) <= allowed {
        return 0;
    }
    // late() falls as x grows; find its first x at or below `allowed`.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if late(mid) <= allowed {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// The probe's report.
pub fn format_jitter(j: &Jitter, host: &Host, pinned: bool) -> String {
    let mut t = String::new();
    let w = &mut t;
    let p = &j.ns;
    let _ = writeln!(w, "\n== lab bench jitter ==");
    let _ = writeln!(w, "machine  {host}");
    let _ = writeln!(
        w,
        "core {}{}, {:.2} s, {} clock reads ({} per second)",
        j.core,
        if pinned { "" } else { " (NOT pinned)" },
        j.seconds,
        p.count,
        fmt_rate(p.count as f64 / j.seconds.max(1e-9)).trim_end_matches("/s"),
    );
    let _ = writeln!(w, "gap between consecutive clock reads:");
    let mut gaps = Table::new(PERCENTILE_COLUMNS).right_from(0);
    gaps.row(percentile_cells(p));
    w.push_str(&gaps.terminal());
    let _ = writeln!(
        w,
        "gaps over 1 µs: {}, over 10 µs: {}, over 100 µs: {}; time lost in gaps over 1 µs: {} \
         ({:.4}% of the run)",
        j.stalls[0],
        j.stalls[1],
        j.stalls[2],
        fmt_ns(j.stolen_ns),
        stolen_fraction(j) * 100.0
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_floor_follows_the_gaps() {
        // One second with one gap of 10 ms: 1% of ticks arrive in it, and a tick that
        // arrives x before its end waits x. So 0.1% wait more than 9 ms, 1% more than 0.
        let mut h = fixed_histogram(HIGHEST_NS);
        h.record(10_000_000).unwrap();
        h.record_n(20, 1_000_000).unwrap(); // the rest: reads 20 ns apart
        let p999 = stream_floor(&[&h], 1.0, 0.999);
        assert!(p999.abs_diff(9_000_000) <= 9_000_000 / 500, "{p999}");
        // (The histogram holds the gap to 3 significant digits, about 8 µs at 10 ms.)
        let p99 = stream_floor(&[&h], 1.0, 0.99);
        assert!(p99 <= 10_000, "within the resolution of the gap: {p99}");
        // Two cores with that gap each: twice the late ticks.
        let p999_2 = stream_floor(&[&h, &h], 1.0, 0.999);
        assert!(p999_2.abs_diff(9_500_000) <= 9_500_000 / 500, "{p999_2}");
        // No long gap: no floor above the reads themselves.
        let mut quiet = fixed_histogram(HIGHEST_NS);
        quiet.record_n(20, 1_000_000).unwrap();
        assert!(stream_floor(&[&quiet], 1.0, 0.999) <= 20);
    }

    #[test]
    fn probe_records_gaps_for_the_asked_time() {
        let clock = Clock::new();
        let core = *common::cores::allowed_cores().last().unwrap();
        let j = probe(&clock, core, 0.02, &PinReport::default());
        assert!(j.ns.count > 0);
        assert!(j.seconds >= 0.02);
        assert!(j.stalls[0] >= j.stalls[1] && j.stalls[1] >= j.stalls[2]);
        let text = format_jitter(&j, &Host::probe(&clock), true);
        assert!(text.contains(&format!("core {core}, ")), "{text}");
        assert!(
            text.contains("gap between consecutive clock reads:\n"),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().eq(PERCENTILE_COLUMNS)),
            "{text}"
        );
    }

    #[test]
    fn json_has_the_documented_keys() {
        let j = Jitter {
            core: 3,
            seconds: 2.0,
            ns: Percentiles {
                count: 10,
                p50: 20,
                max: 5_000,
                ..Percentiles::default()
            },
            stalls: [4, 2, 1],
            stolen_ns: 20_000_000,
        };
        let host = Host {
            cpu_model: "Test CPU".into(),
            ..Host::default()
        };
        let machine = JitterMachine {
            host: &host,
            ns_per_raw: 0.5,
            pinned: true,
        };
        let v = serde_json::to_value(JitterJson::of(&j, machine)).unwrap();
        let want: serde_json::Value = serde_json::from_str(
            r#"{
                "core": 3, "seconds": 2.0, "count": 10, "min": 0, "p50": 20, "p90": 0,
                "p99": 0, "p99_9": 0, "p99_99": 0, "max": 5000, "gaps_over_1us": 4,
                "gaps_over_10us": 2, "gaps_over_100us": 1, "stolen_ns": 20000000,
                "stolen_fraction": 0.01,
                "machine": {
                    "cpu_model": "Test CPU", "kernel": "", "clock_source": "", "git_rev": "",
                    "ns_per_raw": 0.5, "pinned": true
                }
            }"#,
        )
        .unwrap();
        assert_eq!(v, want);
    }
}
