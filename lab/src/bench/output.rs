//! The output of `lab bench transport`: the terminal tables and the `--json` report.
//!
//! Pure: both are made from a finished [`Report`] and touch nothing. The JSON keys are
//! those the README documents for `lab bench transport --json`; a row that was skipped
//! or failed keeps its place in both, with the reason.

use super::harness::{Latency, Throughput};
use super::rows::{Machine, Outcome, Report, ThroughputRow, LATENCY_ROWS, SEARCH_FRACTIONS};
use crate::table::{group, percentile_cells, Table, P9999_MIN_SAMPLES, PERCENTILE_COLUMNS};
use common::latency::Percentiles;
use serde::Serialize;
use std::fmt::Write as _;

/// `a / b`, or `None` when `b` is 0.
fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.2}x"))
}

/// Messages per second, readable: `52.3M/s`, `812k/s`.
pub fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.1}M/s", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.0}k/s", r / 1e3)
    } else {
        format!("{r:.0}/s")
    }
}

/// How a latency row is measured.
pub fn method(name: &str) -> &'static str {
    if name == LATENCY_ROWS[0] {
        "rtt/2"
    } else {
        "one-way tsc"
    }
}

/// The result tables.
pub fn format_table(r: &Report) -> String {
    let m = &r.machine;
    let mut t = String::new();
    let w = &mut t;
    let _ = writeln!(w, "\n== lab bench transport ==");
    let _ = writeln!(
        w,
        "machine  {} ({:.4} ns per raw unit)",
        m.host, m.ns_per_raw
    );
    let _ = writeln!(
        w,
        "cores    send {} -> receive {}{}{}; {} samples per row after {} warm-up, spacing {} ns; \
         capacity {}",
        m.cores.send,
        m.cores.receive,
        m.cores
            .second_receive
            .map_or(String::new(), |c| format!(", second consumer {c}")),
        if m.pinned { "" } else { " (NOT all pinned)" },
        m.samples,
        m.warmup,
        m.spacing_ns,
        m.capacity
    );
    let _ = writeln!(
        w,
        "\nlatency (one hop, ns; ratios to the cacheline floor of this run)"
    );
    let floor = r.latency.first().and_then(|(_, o)| o.done()).map(|l| l.ns);
    let header = ["transport", "method"]
        .into_iter()
        .chain(PERCENTILE_COLUMNS)
        .chain(["p50/floor", "p99/floor", "msgs/s"]);
    let mut latency = Table::new(header).right_from(2);
    for (name, row) in &r.latency {
        match row {
            Outcome::Done(l) => {
                let p = &l.ns;
                latency.row(
                    [name.to_string(), method(name).to_string()]
                        .into_iter()
                        .chain(percentile_cells(p))
                        .chain([
                            fmt_ratio(floor.and_then(|f| ratio(p.p50, f.p50))),
                            fmt_ratio(floor.and_then(|f| ratio(p.p99, f.p99))),
                            l.msgs_per_s.map_or_else(|| "-".into(), fmt_rate),
                        ]),
                );
            }
            Outcome::Skipped(why) => latency.row_spanning([*name], why.as_str()),
            Outcome::Failed(e) => latency.row_spanning([*name], format!("FAILED: {e}")),
        }
    }
    w.push_str(&latency.terminal());
    let _ = writeln!(
        w,
        "rtt/2: half a spin ping-pong's round trip; one-way tsc: receive stamp minus publish \
         stamp, both raw TSC reads on the two cores. msgs/s: the transport's 1-consumer \
         throughput below (cacheline: hand-offs per second of the ping-pong)"
    );
    for (name, row) in &r.latency {
        let Outcome::Done(l) = row else { continue };
        if l.queued > 0 {
            let _ = writeln!(
                w,
                "note: {name}: {} samples waited behind an earlier one (the consumer was \
                 descheduled or slow); they make the tail",
                l.queued
            );
        }
        if l.gaps > 0 || l.lost > 0 {
            let _ = writeln!(
                w,
                "warning: {name}: {} messages lost ({} gaps: the consumer was lapped)",
                l.lost, l.gaps
            );
        }
        if l.negative > 0 {
            let _ = writeln!(
                w,
                "warning: {name}: {} samples received before they were published (TSC skew), \
                 counted as 0",
                l.negative
            );
        }
    }
    if m.samples < P9999_MIN_SAMPLES {
        let _ = writeln!(
            w,
            "note: fewer than {} samples per row: p99.99 is not meaningful",
            group(P9999_MIN_SAMPLES)
        );
    }
    if !r.throughput.is_empty() {
        let _ = writeln!(
            w,
            "\nthroughput ({} 64-byte ticks per run; msgs/s of the slowest consumer, first to \
             last message)",
            m.messages
        );
        let mut table = Table::new([
            "transport",
            "consumers",
            "published",
            "received",
            "lost",
            "lapped",
            "flat out",
            "zero loss",
        ])
        .right_from(1);
        let mut trials = Vec::new();
        for (name, row) in &r.throughput {
            match row {
                Outcome::Done(tp) => {
                    let f = &tp.flat;
                    let received = f.consumers.iter().map(|c| c.received).min().unwrap_or(0);
                    table.row([
                        name.to_string(),
                        f.consumers.len().to_string(),
                        f.published.to_string(),
                        received.to_string(),
                        (f.lost() + f.undelivered).to_string(),
                        f.gaps().to_string(),
                        fmt_rate(f.msgs_per_s()),
                        tp.msgs_per_s().map_or_else(|| "none".into(), fmt_rate),
                    ]);
                    if !tp.paced.is_empty() {
                        let paced: Vec<String> = tp
                            .paced
                            .iter()
                            .map(|t| {
                                format!(
                                    "{} offered: {} lost",
                                    fmt_rate(t.offered_per_s.unwrap_or(0.0)),
                                    t.lost() + t.undelivered
                                )
                            })
                            .collect();
                        trials.push(format!("  {name}: lossy flat out; {}", paced.join(", ")));
                    }
                }
                Outcome::Skipped(why) => table.row_spanning([*name], why.as_str()),
                Outcome::Failed(e) => table.row_spanning([*name], format!("FAILED: {e}")),
            }
        }
        w.push_str(&table.terminal());
        for line in trials {
            let _ = writeln!(w, "{line}");
        }
        let _ = writeln!(
            w,
            "received, lost, lapped: the flat-out run (received: slowest consumer; lost and \
             lapped summed). zero loss: msgs/s of the fastest run that lost nothing (flat out, \
             else paced at {:?} of the flat-out rate; \"none\" if every run lost). Our ring never \
             waits for a consumer in its default lossy mode; in lossless mode (ring_*_lossless) \
             the producer waits for the slowest registered consumer; crossbeam and iceoryx2 \
             make the sender retry while full",
            SEARCH_FRACTIONS
        );
    }
    t
}

/// The `--json` report: `machine`, then one object per latency row (nanoseconds), in
/// table order, then `throughput` with one object per throughput row. A row that was
/// not measured is `{"skipped": why}` or `{"failed": error}`.
#[derive(Serialize)]
pub struct JsonReport<'a> {
    machine: &'a Machine,
    #[serde(flatten)]
    latency: Named<RowJson<'a, LatencyJson<'a>>>,
    throughput: Named<RowJson<'a, ThroughputJson>>,
}

impl<'a> JsonReport<'a> {
    /// The report of `r`.
    pub fn of(r: &'a Report) -> JsonReport<'a> {
        let floor = r.latency.first().and_then(|(_, o)| o.done()).map(|l| l.ns);
        JsonReport {
            machine: &r.machine,
            latency: Named(
                r.latency
                    .iter()
                    .map(|(name, o)| (*name, RowJson::of(o, |l| LatencyJson::of(name, l, floor))))
                    .collect(),
            ),
            throughput: Named(
                r.throughput
                    .iter()
                    .map(|(name, o)| (*name, RowJson::of(o, ThroughputJson::of)))
                    .collect(),
            ),
        }
    }
}

/// Rows serialised as one object keyed by row name, in their order.
struct Named<T>(Vec<(&'static str, T)>);

impl<T: Serialize> Serialize for Named<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// A row's object: its fields when measured, else why not.
#[derive(Serialize)]
#[serde(untagged)]
enum RowJson<'a, T> {
    Done(T),
    Skipped { skipped: &'a str },
    Failed { failed: &'a str },
}

impl<'a, T> RowJson<'a, T> {
    fn of<U>(o: &'a Outcome<U>, done: impl FnOnce(&'a U) -> T) -> RowJson<'a, T> {
        match o {
            Outcome::Done(v) => RowJson::Done(done(v)),
            Outcome::Skipped(why) => RowJson::Skipped { skipped: why },
            Outcome::Failed(e) => RowJson::Failed { failed: e },
        }
    }
}

/// A latency row: how it was measured, its percentiles (`count`, `min`, `p50` … `max`),
/// its transport's throughput, its ratios to the floor and, except for the floor, what
/// went missing or waited.
#[derive(Serialize)]
struct LatencyJson<'a> {
    method: &'static str,
    #[serde(flatten)]
    ns: &'a Percentiles,
    msgs_per_s: Option<f64>,
    ratio_p50_to_cacheline: Option<f64>,
    ratio_p99_to_cacheline: Option<f64>,
    #[serde(flatten)]
    loss: Option<LossJson>,
}

impl<'a> LatencyJson<'a> {
    fn of(name: &str, l: &'a Latency, floor: Option<Percentiles>) -> LatencyJson<'a> {
        LatencyJson {
            method: method(name),
            ns: &l.ns,
            msgs_per_s: l.msgs_per_s,
            ratio_p50_to_cacheline: floor.and_then(|f| ratio(l.ns.p50, f.p50)),
            ratio_p99_to_cacheline: floor.and_then(|f| ratio(l.ns.p99, f.p99)),
            loss: (name != LATENCY_ROWS[0]).then_some(LossJson {
                gaps: l.gaps,
                lost: l.lost,
                negative: l.negative,
                queued: l.queued,
            }),
        }
    }
}

/// What a transport's latency row lost or queued (see [`Latency`]).
#[derive(Serialize)]
struct LossJson {
    gaps: u64,
    lost: u64,
    negative: u64,
    queued: u64,
}

/// A throughput row: the flat-out run's counts, `msgs_per_s` with zero loss (`null` if
/// no run had it), the flat-out rate, the offered rate of the zero-loss run, and every
/// paced trial under `search`.
#[derive(Serialize)]
struct ThroughputJson {
    #[serde(flatten)]
    flat: FlowJson,
    msgs_per_s: Option<f64>,
    flat_out_msgs_per_s: f64,
    zero_loss_offered_per_s: Option<f64>,
    search: Vec<RunJson>,
}

impl ThroughputJson {
    fn of(t: &ThroughputRow) -> ThroughputJson {
        ThroughputJson {
            flat: FlowJson::of(&t.flat),
            msgs_per_s: t.msgs_per_s(),
            flat_out_msgs_per_s: t.flat.msgs_per_s(),
            zero_loss_offered_per_s: t.zero_loss().and_then(|z| z.offered_per_s),
            search: t.paced.iter().map(RunJson::of).collect(),
        }
    }
}

/// One paced trial of the zero-loss search.
#[derive(Serialize)]
struct RunJson {
    #[serde(flatten)]
    flow: FlowJson,
    msgs_per_s: f64,
}

impl RunJson {
    fn of(t: &Throughput) -> RunJson {
        RunJson {
            flow: FlowJson::of(t),
            msgs_per_s: t.msgs_per_s(),
        }
    }
}

/// One throughput run's counts: per consumer `received` and `seconds`, summed `lost`
/// and `gaps`.
#[derive(Serialize)]
struct FlowJson {
    consumers: usize,
    offered_per_s: Option<f64>,
    published: u64,
    undelivered: u64,
    received: Vec<u64>,
    lost: u64,
    gaps: u64,
    seconds: Vec<f64>,
    zero_loss: bool,
}

impl FlowJson {
    fn of(t: &Throughput) -> FlowJson {
        FlowJson {
            consumers: t.consumers.len(),
            offered_per_s: t.offered_per_s,
            published: t.published,
            undelivered: t.undelivered,
            received: t.consumers.iter().map(|c| c.received).collect(),
            lost: t.lost(),
            gaps: t.gaps(),
            seconds: t.consumers.iter().map(|c| c.seconds).collect(),
            zero_loss: t.zero_loss(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::rows::{NOT_BUILT, PEERS_BUILT};
    use super::*;

    fn cells<'a>(t: &'a str, name: &str) -> Vec<&'a str> {
        t.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} line in\n{t}"))
            .split_whitespace()
            .collect()
    }

    #[test]
    fn table_has_rows_ratios_and_reasons() {
        let t = format_table(&report());
        assert!(t.contains("Test CPU, kernel 6.1, clock tsc"), "{t}");
        assert_eq!(
            cells(&t, "ring_threads"),
            [
                "ring_threads",
                "one-way",
                "tsc",
                "1,000",
                "60ns",
                "120ns",
                "180ns",
                "240ns",
                "300ns",
                "600ns",
                "1.50x",
                "1.50x",
                "1.0M/s"
            ]
        );
        assert_eq!(cells(&t, "cacheline")[1], "rtt/2");
        assert!(t.contains("ring_processes      FAILED: it broke"), "{t}");
        assert!(
            t.contains("iceoryx2_processes  not built (enable --features peers)"),
            "{t}"
        );
        assert!(t.contains("note: ring_threads: 5 samples waited"), "{t}");
        assert!(
            t.contains("warning: ring_threads: 2 messages lost (1 gaps"),
            "{t}"
        );
        assert!(t.contains("p99.99 is not meaningful"), "{t}");
        // Flat out lost 400 at 60M/s; the 40M/s paced run lost nothing at 40M/s.
        assert_eq!(
            cells(&t, "ring_threads_1p1c")[1..],
            ["1", "1001", "601", "400", "1", "60.0M/s", "40.0M/s"]
        );
        assert!(
            t.contains("50.0M/s offered: 100 lost, 40.0M/s offered: 0 lost"),
            "{t}"
        );
        assert!(t.contains("ring_threads_1p2c  needs a third core"), "{t}");
    }

    #[test]
    fn json_has_the_documented_keys() {
        let v = serde_json::to_value(JsonReport::of(&report())).unwrap();
        for name in ["cacheline", "ring_threads", "crossbeam_threads"] {
            for key in ["count", "p50", "p90", "p99", "p99_9", "p99_99", "max"] {
                assert!(v[name][key].is_u64(), "{name}.{key}: {v}");
            }
            assert!(v[name]["msgs_per_s"].is_number(), "{name}: {v}");
        }
        assert_eq!(v["cacheline"]["method"], "rtt/2");
        assert_eq!(v["ring_threads"]["method"], "one-way tsc");
        assert_eq!(v["ring_threads"]["ratio_p50_to_cacheline"], 1.5);
        assert!(v["crossbeam_threads"]["ratio_p50_to_cacheline"].is_number());
        assert!(
            v["cacheline"].get("gaps").is_none(),
            "the floor loses nothing: {v}"
        );
        assert_eq!(v["ring_threads"]["queued"], 5);
        assert_eq!(v["ring_threads"]["lost"], 2);
        assert_eq!(v["ring_processes"]["failed"], "it broke");
        assert_eq!(v["iceoryx2_processes"]["skipped"], NOT_BUILT);
        let tp = &v["throughput"]["ring_threads_1p1c"];
        let close =
            |x: &serde_json::Value, want: f64| (x.as_f64().unwrap() / want - 1.0).abs() < 1e-9;
        assert!(close(&tp["msgs_per_s"], 4e7), "{tp}");
        assert!(close(&tp["flat_out_msgs_per_s"], 6e7), "{tp}");
        assert_eq!(tp["zero_loss_offered_per_s"], 4e7);
        assert_eq!(tp["lost"], 400);
        assert_eq!(tp["search"].as_array().unwrap().len(), 2);
        assert!(v["throughput"]["ring_threads_1p2c"]["skipped"].is_string());
        assert_eq!(v["machine"]["cpu_model"], "Test CPU");
        assert_eq!(v["machine"]["peers_built"], PEERS_BUILT);
        assert_eq!(v["machine"]["git_rev"], "abc1234");
        assert_eq!(v["machine"]["cores"]["receive"], 1);
        assert!(v["machine"]["cores"]["second_receive"].is_null());
    }
}
