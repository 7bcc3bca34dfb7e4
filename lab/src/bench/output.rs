//! The output of `lab bench transport`: the terminal tables and the `--json` report.

use super::harness::Throughput;
use super::rows::{Outcome, Report, PEERS_BUILT, SEARCH_FRACTIONS};
use common::latency::fmt_ns;
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
    if name == "cacheline" {
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
        m.tx_core,
        m.rx_core,
        m.rx2_core
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
    let _ = writeln!(
        w,
        "{:<19} {:<11} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}",
        "transport",
        "method",
        "count",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "p99.99",
        "max",
        "p50/floor",
        "p99/floor",
        "msgs/s"
    );
    let floor = r.latency.first().and_then(|(_, o)| o.done()).map(|l| l.ns);
    for (name, row) in &r.latency {
        match row {
            Outcome::Done(l) => {
                let p = &l.ns;
                let _ = writeln!(
                    w,
                    "{name:<19} {:<11} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}",
                    method(name),
                    p.count,
                    fmt_ns(p.p50),
                    fmt_ns(p.p90),
                    fmt_ns(p.p99),
                    fmt_ns(p.p99_9),
                    fmt_ns(p.p99_99),
                    fmt_ns(p.max),
                    fmt_ratio(floor.and_then(|f| ratio(p.p50, f.p50))),
                    fmt_ratio(floor.and_then(|f| ratio(p.p99, f.p99))),
                    l.msgs_per_s.map_or_else(|| "-".into(), fmt_rate),
                );
            }
            Outcome::Skipped(why) => {
                let _ = writeln!(w, "{name:<19} {why}");
            }
            Outcome::Failed(e) => {
                let _ = writeln!(w, "{name:<19} FAILED: {e}");
            }
        }
    }
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
    if m.samples < 1_000_000 {
        let _ = writeln!(
            w,
            "note: fewer than 1,000,000 samples per row: p99.99 is not meaningful"
        );
    }
    if !r.throughput.is_empty() {
        let _ = writeln!(
            w,
            "\nthroughput ({} 64-byte ticks per run; msgs/s of the slowest consumer, first to \
             last message)",
            m.messages
        );
        let _ = writeln!(
            w,
            "{:<26} {:>9} {:>11} {:>11} {:>10} {:>7} {:>10} {:>10}",
            "transport",
            "consumers",
            "published",
            "received",
            "lost",
            "lapped",
            "flat out",
            "zero loss"
        );
        for (name, row) in &r.throughput {
            match row {
                Outcome::Done(tp) => {
                    let f = &tp.flat;
                    let received = f.consumers.iter().map(|c| c.received).min().unwrap_or(0);
                    let _ = writeln!(
                        w,
                        "{name:<26} {:>9} {:>11} {:>11} {:>10} {:>7} {:>10} {:>10}",
                        f.consumers.len(),
                        f.published,
                        received,
                        f.lost() + f.undelivered,
                        f.gaps(),
                        fmt_rate(f.msgs_per_s()),
                        tp.msgs_per_s().map_or_else(|| "none".into(), fmt_rate),
                    );
                    if !tp.paced.is_empty() {
                        let trials: Vec<String> = tp
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
                        let _ = writeln!(w, "  {name}: lossy flat out; {}", trials.join(", "));
                    }
                }
                Outcome::Skipped(why) => {
                    let _ = writeln!(w, "{name:<26} {why}");
                }
                Outcome::Failed(e) => {
                    let _ = writeln!(w, "{name:<26} FAILED: {e}");
                }
            }
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

/// The JSON report of `--json`: one object per row (nanoseconds), `throughput`, `machine`.
pub fn to_json(r: &Report) -> serde_json::Value {
    let m = &r.machine;
    let mut v = serde_json::json!({
        "machine": {
            "cpu_model": m.host.cpu_model,
            "kernel": m.host.kernel,
            "clock_source": m.host.clock_source,
            "ns_per_raw": m.ns_per_raw,
            "cores": { "send": m.tx_core, "receive": m.rx_core, "second_receive": m.rx2_core },
            "pinned": m.pinned,
            "git_rev": m.host.git_rev,
            "samples": m.samples,
            "warmup": m.warmup,
            "spacing_ns": m.spacing_ns,
            "messages": m.messages,
            "capacity": m.capacity,
            "peers_built": PEERS_BUILT,
        },
    });
    let floor = r.latency.first().and_then(|(_, o)| o.done()).map(|l| l.ns);
    for (name, row) in &r.latency {
        v[*name] = match row {
            Outcome::Done(l) => {
                let p = &l.ns;
                let mut o = serde_json::json!({
                    "method": method(name),
                    "count": p.count,
                    "min": p.min,
                    "p50": p.p50,
                    "p90": p.p90,
                    "p99": p.p99,
                    "p99_9": p.p99_9,
                    "p99_99": p.p99_99,
                    "max": p.max,
                    "msgs_per_s": l.msgs_per_s,
                    "ratio_p50_to_cacheline": floor.and_then(|f| ratio(p.p50, f.p50)),
                    "ratio_p99_to_cacheline": floor.and_then(|f| ratio(p.p99, f.p99)),
                });
                if *name != "cacheline" {
                    o["gaps"] = l.gaps.into();
                    o["lost"] = l.lost.into();
                    o["negative"] = l.negative.into();
                    o["queued"] = l.queued.into();
                }
                o
            }
            Outcome::Skipped(why) => serde_json::json!({ "skipped": why }),
            Outcome::Failed(e) => serde_json::json!({ "failed": e }),
        };
    }
    let mut tp = serde_json::Map::new();
    for (name, row) in &r.throughput {
        let o = match row {
            Outcome::Done(t) => {
                let mut o = flow_json(&t.flat);
                o["msgs_per_s"] = t.msgs_per_s().into();
                o["flat_out_msgs_per_s"] = t.flat.msgs_per_s().into();
                o["zero_loss_offered_per_s"] = t.zero_loss().map(|z| z.offered_per_s).into();
                o["search"] = t.paced.iter().map(flow_json).collect::<Vec<_>>().into();
                o
            }
            Outcome::Skipped(why) => serde_json::json!({ "skipped": why }),
            Outcome::Failed(e) => serde_json::json!({ "failed": e }),
        };
        tp.insert((*name).to_string(), o);
    }
    v["throughput"] = tp.into();
    v
}

/// One throughput run as JSON.
fn flow_json(t: &Throughput) -> serde_json::Value {
    serde_json::json!({
        "consumers": t.consumers.len(),
        "offered_per_s": t.offered_per_s,
        "published": t.published,
        "undelivered": t.undelivered,
        "received": t.consumers.iter().map(|c| c.received).collect::<Vec<_>>(),
        "lost": t.lost(),
        "gaps": t.gaps(),
        "seconds": t.consumers.iter().map(|c| c.seconds).collect::<Vec<_>>(),
        "msgs_per_s": t.msgs_per_s(),
        "zero_loss": t.zero_loss(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::rows::NOT_BUILT;
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
                "1000",
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
        assert!(
            t.contains("ring_threads_1p2c          needs a third core"),
            "{t}"
        );
    }

    #[test]
    fn json_has_the_documented_keys() {
        let v = to_json(&report());
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
    }
}
