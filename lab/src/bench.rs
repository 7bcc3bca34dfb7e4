//! `lab bench hop`: the one-way latency of a ring hop, measured next to its physical
//! floor (a cache-line hand-off between the same two cores) in one run, so that the
//! result is a ratio that survives a noisy, shared machine.
//!
//! Rows, all on the config's `cores.feed_md` (sending side) and `cores.engine_hot`
//! (receiving side):
//!
//! 1. `cacheline`: two threads bounce a counter through two `CachePadded<AtomicU64>`
//!    flags, spin-waiting; the initiator times each round trip with
//!    [`Clock::raw`]; the row is RTT/2 (it includes half of one clock read).
//! 2. `ring_processes`: `lab` re-executes itself as a hidden `bench-producer` process
//!    that creates a ring file with [`shm::create`] under `/dev/shm` (the name holds our
//!    pid), waits until we have opened it, then publishes ticks stamped
//!    `published_raw = clock.raw()`, spaced by a busy-wait so that every hop finds an
//!    idle ring; we record `received_raw - published_raw`. The producer ends with
//!    `end_and_unlink`.
//! 3. `ring_threads`: the same, between two threads of this process on a [`HeapRegion`].
//!
//! Each row takes `samples` measurements after a discarded warm-up of 10% more. Values
//! are recorded in raw clock units into fixed-bound histograms (recording never
//! allocates) and converted to nanoseconds afterwards. One-way ring figures rely on the
//! TSC being synchronised across cores (the manifest's clock source says `tsc` only
//! where it is invariant).
//!
//! A benchmark reports; it checks nothing. The producer process is supervised: it is
//! terminated and reaped on every path, and the ring file removed.

use crate::child::Supervised;
use crate::cli::{BadInput, HopArgs, ProducerArgs};
use anyhow::{bail, Context, Result};
use common::clock::Clock;
use common::config::Config;
use common::latency::{fixed_histogram, fmt_ns, to_ns, Percentiles, HIGHEST_NS, HIGHEST_RAW};
use common::ring::shm::{self, OpenError, ProducerId};
use common::ring::{HeapRegion, Poll, Publisher, Region, StartAt, Subscriber};
use common::tick::Tick;
use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// How long the consumer waits for the producer process to create its ring.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Line the consumer sends the producer process once it polls the ring.
const START_LINE: &str = "start\n";

/// Names of the rows, in table and JSON order.
const ROWS: [&str; 3] = ["cacheline", "ring_processes", "ring_threads"];

/// One measured row.
struct Row {
    /// Percentiles in nanoseconds.
    ns: Percentiles,
    /// Ring rows: gaps (lapped reads) seen; must be 0 on an idle ring.
    gaps: u64,
    /// Ring rows: samples whose receive stamp was before the publish stamp (TSC skew
    /// between cores), recorded as 0.
    negative: u64,
    /// Ring rows: samples published before the consumer had finished the previous
    /// tick, so that their hop includes waiting in the ring (the consumer was
    /// descheduled or slow); on an idle machine there are none.
    queued: u64,
}

/// Runs `lab bench hop`.
pub fn hop(args: &HopArgs) -> Result<()> {
    // Read before anything is pinned: a pinned thread's children inherit its mask.
    let allowed = common::cores::allowed_cores();
    let config = Config::load(&args.config, &allowed).map_err(BadInput::from_display)?;
    let (tx_core, rx_core) = (config.cores.feed_md, config.cores.engine_hot);
    // `Config::load` refuses these already; the check stays to make the rule visible.
    if tx_core == rx_core || !allowed.contains(&tx_core) || !allowed.contains(&rx_core) {
        return Err(BadInput::from_display(format!(
            "bench hop needs two distinct allowed cores, got cores.feed_md = {tx_core} and \
             cores.engine_hot = {rx_core} (allowed: {allowed:?})"
        )));
    }
    let clock = Clock::new();
    let samples = args.samples;
    let warmup = samples / 10;
    let total = samples + warmup;
    let capacity = config.ring.capacity;
    let spacing_raw = clock.raw_from_ns(args.spacing_ns);
    let pins = PinReport::default();
    eprintln!(
        "lab bench hop: {} samples per row after {} warm-up, cores {tx_core} -> {rx_core}, \
         spacing {} ns, ring capacity {capacity}",
        samples, warmup, args.spacing_ns
    );

    let ns_per_raw = clock.ns_per_raw();
    let raw = cacheline(&clock, tx_core, rx_core, total, warmup, &pins);
    // The histogram holds round trips; halving in the conversion keeps the sub-unit part.
    let cacheline = Row {
        ns: percentiles_ns(&raw, ns_per_raw / 2.0),
        gaps: 0,
        negative: 0,
        queued: 0,
    };
    let processes = ring_processes(
        &clock,
        tx_core,
        rx_core,
        total,
        warmup,
        args.spacing_ns,
        capacity,
        &pins,
    )?;
    let processes = to_row(processes, ns_per_raw);
    let threads = ring_threads(
        &clock,
        tx_core,
        rx_core,
        total,
        warmup,
        spacing_raw,
        capacity,
        &pins,
    )?;
    let threads = to_row(threads, ns_per_raw);

    let machine = Machine {
        cpu_model: common::manifest::cpu_model(),
        kernel: common::manifest::kernel(),
        clock_source: clock.source().name().to_string(),
        ns_per_raw,
        tx_core,
        rx_core,
        pinned: !pins.failed.load(Ordering::Relaxed),
    };
    let rows = [&cacheline, &processes, &threads];
    print!(
        "{}",
        format_table(&machine, &rows, samples, warmup, args.spacing_ns, capacity)
    );
    let _ = std::io::stdout().flush();
    if let Some(path) = &args.json {
        let json = to_json(&machine, &rows, samples, warmup, args.spacing_ns, capacity);
        common::manifest::write_json(path, &json)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("lab bench hop: wrote {}", path.display());
    }
    Ok(())
}

/// Whether any pin failed (each failure is also reported on stderr when it happens).
#[derive(Default)]
struct PinReport {
    failed: AtomicBool,
}

impl PinReport {
    /// Pins the calling thread to `core`; on failure warns and goes on unpinned.
    fn pin(&self, role: &str, core: usize) {
        if !common::cores::pin_current(core) {
            self.failed.store(true, Ordering::Relaxed);
            eprintln!("warning: cannot pin the {role} thread to core {core}; it runs unpinned");
        }
    }
}

/// A raw histogram's percentiles in nanoseconds.
fn percentiles_ns(raw: &Histogram<u64>, ns_per_raw: f64) -> Percentiles {
    let mut ns = fixed_histogram(HIGHEST_NS);
    to_ns(raw, ns_per_raw, &mut ns);
    Percentiles::of(&ns)
}

fn to_row(c: Consumed, ns_per_raw: f64) -> Row {
    Row {
        ns: percentiles_ns(&c.hist, ns_per_raw),
        gaps: c.gaps,
        negative: c.negative,
        queued: c.queued,
    }
}

/// Cache-line ping-pong; returns the round trips in raw units.
fn cacheline(
    clock: &Clock,
    tx_core: usize,
    rx_core: usize,
    total: u64,
    warmup: u64,
    pins: &PinReport,
) -> Histogram<u64> {
    let ping = CachePadded::new(AtomicU64::new(0));
    let pong = CachePadded::new(AtomicU64::new(0));
    let ready = CachePadded::new(AtomicBool::new(false));
    let mut hist = fixed_histogram(HIGHEST_RAW);
    std::thread::scope(|s| {
        s.spawn(|| {
            pins.pin("cache-line responder", rx_core);
            ready.store(true, Ordering::Release);
            for i in 1..=total {
                // SYNC POINT: pairs with the initiator's release store of `ping`.
                while ping.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                // SYNC POINT: pairs with the initiator's acquire load of `pong`.
                pong.store(i, Ordering::Release);
            }
        });
        s.spawn(|| {
            pins.pin("cache-line initiator", tx_core);
            while !ready.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            for i in 1..=total {
                let t0 = clock.raw();
                ping.store(i, Ordering::Release);
                while pong.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                let t1 = clock.raw();
                if i > warmup {
                    hist.saturating_record(t1.saturating_sub(t0).min(HIGHEST_RAW));
                }
            }
        });
    });
    hist
}

/// What a consumer measured.
struct Consumed {
    /// One-way hops in raw units.
    hist: Histogram<u64>,
    gaps: u64,
    negative: u64,
    queued: u64,
}

/// Publishes `count` ticks, each stamped just before it enters the ring and at least
/// `spacing_raw` after the previous one, then ends the stream.
fn produce<R: Region>(publisher: &mut Publisher<R>, clock: &Clock, count: u64, spacing_raw: u64) {
    let mut due = clock.raw();
    for _ in 0..count {
        let mut now = clock.raw();
        while now < due {
            std::hint::spin_loop();
            now = clock.raw();
        }
        publisher.publish(&Tick {
            scheduled_raw: now,
            published_raw: now,
            ..Tick::default()
        });
        due = now + spacing_raw;
    }
}

/// Polls until tick `total` (or the end of the stream, or `deadline_raw`), recording the
/// hop of every tick after the first `warmup`.
fn consume<R: Region>(
    sub: &mut Subscriber<R>,
    clock: &Clock,
    total: u64,
    warmup: u64,
    deadline_raw: u64,
) -> Result<Consumed> {
    let mut c = Consumed {
        hist: fixed_histogram(HIGHEST_RAW),
        gaps: 0,
        negative: 0,
        queued: 0,
    };
    let mut idle: u32 = 0;
    let mut last_recv_raw = 0;
    loop {
        match sub.poll() {
            Poll::Tick(t) => {
                let now = clock.raw();
                if t.seq > warmup {
                    if now < t.published_raw {
                        c.negative += 1;
                    }
                    if t.published_raw < last_recv_raw {
                        c.queued += 1;
                    }
                    c.hist
                        .saturating_record(now.saturating_sub(t.published_raw).min(HIGHEST_RAW));
                }
                last_recv_raw = now;
                if t.seq >= total {
                    return Ok(c);
                }
            }
            Poll::Gap { .. } => {
                c.gaps += 1;
                if sub.next_seq() > total {
                    return Ok(c);
                }
            }
            Poll::Corrupt { seq } => bail!("the ring returned a corrupt tick (seq {seq})"),
            Poll::Ended => return Ok(c),
            Poll::Empty => {
                idle = idle.wrapping_add(1);
                if idle % 4096 == 0 && clock.raw() > deadline_raw {
                    bail!(
                        "the producer stopped publishing (at seq {} of {total})",
                        sub.next_seq() - 1
                    );
                }
                std::hint::spin_loop();
            }
        }
    }
}

/// A raw-clock deadline generous enough for `count` ticks spaced by `spacing_ns`.
fn deadline(clock: &Clock, count: u64, spacing_ns: u64) -> u64 {
    let ns = count
        .saturating_mul(spacing_ns.max(1_000))
        .saturating_mul(4)
        + 30_000_000_000;
    clock.raw().saturating_add(clock.raw_from_ns(ns))
}

/// Where the benchmark's ring file goes: `/dev/shm` if it exists, else the temp folder.
fn shm_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// The ring hop between this process and a `bench-producer` child process.
#[allow(clippy::too_many_arguments)]
fn ring_processes(
    clock: &Clock,
    tx_core: usize,
    rx_core: usize,
    total: u64,
    warmup: u64,
    spacing_ns: u64,
    capacity: u64,
    pins: &PinReport,
) -> Result<Consumed> {
    let path = shm_dir().join(format!("lab-bench-hop-{}.ring", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let exe = std::env::current_exe().context("cannot find the lab binary's own path")?;
    let child = Command::new(&exe)
        .arg("bench-producer")
        .arg("--ring")
        .arg(&path)
        .args(["--core", &tx_core.to_string()])
        .args(["--count", &total.to_string()])
        .args(["--spacing-ns", &spacing_ns.to_string()])
        .args(["--capacity", &capacity.to_string()])
        .stdin(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {} bench-producer", exe.display()))?;
    let mut producer = Supervised::new("bench-producer", child);
    let mut start = producer
        .child_mut()
        .stdin
        .take()
        .context("the producer's stdin is not a pipe")?;
    let measured = std::thread::scope(|s| {
        s.spawn(|| -> Result<Consumed> {
            pins.pin("ring consumer", rx_core);
            let opened_by = Instant::now() + OPEN_TIMEOUT;
            let (mut sub, info) = loop {
                match shm::open(&path, StartAt::Oldest) {
                    Ok(v) => break v,
                    Err(OpenError::Missing(_)) if Instant::now() < opened_by => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => return Err(e).context("cannot open the producer's ring"),
                }
            };
            if info.clock_source != clock.source() as u32 {
                bail!(
                    "the producer process uses another clock source; its stamps cannot be compared"
                );
            }
            start
                .write_all(START_LINE.as_bytes())
                .and_then(|()| start.flush())
                .context("cannot tell the producer to start")?;
            drop(start);
            let deadline_raw = deadline(clock, total, spacing_ns);
            consume(&mut sub, clock, total, warmup, deadline_raw)
        })
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the ring consumer thread panicked")))
    });
    let status = match &measured {
        Ok(_) => producer.wait_timeout(OPEN_TIMEOUT),
        Err(_) => producer.terminate(),
    };
    let _ = std::fs::remove_file(&path);
    let measured = measured?;
    match status {
        Some(s) if s.success() => Ok(measured),
        Some(s) => bail!("{}", crate::child::describe_exit("bench-producer", s)),
        None => bail!("bench-producer did not exit after publishing"),
    }
}

/// The ring hop between two threads of this process on a heap ring.
#[allow(clippy::too_many_arguments)]
fn ring_threads(
    clock: &Clock,
    tx_core: usize,
    rx_core: usize,
    total: u64,
    warmup: u64,
    spacing_raw: u64,
    capacity: u64,
    pins: &PinReport,
) -> Result<Consumed> {
    let region = Arc::new(HeapRegion::new(capacity));
    let mut publisher = Publisher::new(region.clone());
    let mut sub = Subscriber::new(region, StartAt::Oldest);
    let both_ready = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            pins.pin("ring producer", tx_core);
            both_ready.wait();
            produce(&mut publisher, clock, total, spacing_raw);
            publisher.end();
        });
        s.spawn(|| {
            pins.pin("ring consumer", rx_core);
            both_ready.wait();
            let ns = clock.delta_ns(0, spacing_raw);
            consume(&mut sub, clock, total, warmup, deadline(clock, total, ns))
        })
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the ring consumer thread panicked")))
    })
}

/// Runs the hidden `lab bench-producer`: creates the ring, waits for `start` on stdin,
/// publishes, ends and unlinks the ring.
pub fn producer(args: &ProducerArgs) -> Result<()> {
    if !common::cores::pin_current(args.core) {
        eprintln!(
            "warning: cannot pin the ring producer process to core {}; it runs unpinned",
            args.core
        );
    }
    let clock = Clock::new();
    let id = ProducerId {
        clock_source: clock.source() as u32,
        epoch_ns: common::clock::unix_ns(),
    };
    let mut publisher =
        shm::create(&args.ring, args.capacity, id).context("cannot create the ring")?;
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if !matches!(read, Ok(n) if n > 0 && line == START_LINE) {
        publisher.end_and_unlink();
        bail!("no start signal from the consumer");
    }
    produce(
        &mut publisher,
        &clock,
        args.count,
        clock.raw_from_ns(args.spacing_ns),
    );
    publisher.end_and_unlink();
    Ok(())
}

/// Where and how the benchmark ran.
struct Machine {
    cpu_model: String,
    kernel: String,
    clock_source: String,
    ns_per_raw: f64,
    tx_core: usize,
    rx_core: usize,
    pinned: bool,
}

/// `a / b`, or `None` when `b` is 0.
fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.2}x"))
}

/// The result table; `rows` are in [`ROWS`] order, the first being the floor.
fn format_table(
    m: &Machine,
    rows: &[&Row; 3],
    samples: u64,
    warmup: u64,
    spacing_ns: u64,
    capacity: u64,
) -> String {
    let mut t = String::new();
    let w = &mut t;
    let _ = writeln!(w, "\n== lab bench hop ==");
    let _ = writeln!(
        w,
        "machine  {}, kernel {}, clock {} ({:.4} ns per raw unit)",
        m.cpu_model, m.kernel, m.clock_source, m.ns_per_raw
    );
    let _ = writeln!(
        w,
        "cores    send {} -> receive {}{}; {samples} samples per row after {warmup} warm-up; \
         ring capacity {capacity}, spacing {spacing_ns} ns",
        m.tx_core,
        m.rx_core,
        if m.pinned { "" } else { " (NOT all pinned)" }
    );
    let _ = writeln!(
        w,
        "{:<16} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "row", "count", "p50", "p90", "p99", "p99.9", "p99.99", "max", "p50/floor", "p99/floor"
    );
    let floor = &rows[0].ns;
    for (name, row) in ROWS.iter().zip(rows) {
        let p = &row.ns;
        let _ = writeln!(
            w,
            "{name:<16} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
            p.count,
            fmt_ns(p.p50),
            fmt_ns(p.p90),
            fmt_ns(p.p99),
            fmt_ns(p.p99_9),
            fmt_ns(p.p99_99),
            fmt_ns(p.max),
            fmt_ratio(ratio(p.p50, floor.p50)),
            fmt_ratio(ratio(p.p99, floor.p99))
        );
    }
    let _ = writeln!(
        w,
        "cacheline is RTT/2 of a spin ping-pong; ring rows are one-way (published -> received)"
    );
    for (name, row) in ROWS.iter().zip(rows) {
        if row.queued > 0 {
            let _ = writeln!(
                w,
                "note: {name}: {} samples waited in the ring behind an earlier tick (the consumer \
                 was descheduled or slow); they make the tail",
                row.queued
            );
        }
        if row.gaps > 0 {
            let _ = writeln!(
                w,
                "warning: {name}: {} gaps (the consumer was lapped)",
                row.gaps
            );
        }
        if row.negative > 0 {
            let _ = writeln!(
                w,
                "warning: {name}: {} samples received before they were published (TSC skew), counted as 0",
                row.negative
            );
        }
    }
    if samples < 1_000_000 {
        let _ = writeln!(
            w,
            "note: fewer than 1,000,000 samples per row: p99.99 is not meaningful"
        );
    }
    t
}

/// The JSON report of `--json`.
fn to_json(
    m: &Machine,
    rows: &[&Row; 3],
    samples: u64,
    warmup: u64,
    spacing_ns: u64,
    capacity: u64,
) -> serde_json::Value {
    let floor = &rows[0].ns;
    let mut v = serde_json::json!({
        "machine": {
            "cpu_model": m.cpu_model,
            "kernel": m.kernel,
            "clock_source": m.clock_source,
            "ns_per_raw": m.ns_per_raw,
            "cores": { "send": m.tx_core, "receive": m.rx_core },
            "pinned": m.pinned,
            "git_rev": common::manifest::GIT_REV,
            "samples": samples,
            "warmup": warmup,
            "spacing_ns": spacing_ns,
            "ring_capacity": capacity,
        },
    });
    for (name, row) in ROWS.iter().zip(rows) {
        let mut r = serde_json::to_value(row.ns).unwrap_or_default();
        if *name != "cacheline" {
            r["gaps"] = row.gaps.into();
            r["negative"] = row.negative.into();
            r["queued"] = row.queued.into();
        }
        v[*name] = r;
    }
    for (i, name) in ROWS.iter().enumerate().skip(1) {
        let p = &rows[i].ns;
        v[format!("ratio_p50_{name}_to_cacheline")] = ratio(p.p50, floor.p50).into();
        v[format!("ratio_p99_{name}_to_cacheline")] = ratio(p.p99, floor.p99).into();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(base: u64) -> Row {
        Row {
            ns: Percentiles {
                count: 1000,
                min: base / 2,
                p50: base,
                p90: base * 2,
                p99: base * 3,
                p99_9: base * 4,
                p99_99: base * 5,
                max: base * 10,
            },
            gaps: 0,
            negative: 0,
            queued: 0,
        }
    }

    fn machine() -> Machine {
        Machine {
            cpu_model: "Test CPU".into(),
            kernel: "6.1".into(),
            clock_source: "tsc".into(),
            ns_per_raw: 0.5,
            tx_core: 0,
            rx_core: 1,
            pinned: true,
        }
    }

    #[test]
    fn table_has_rows_and_ratios() {
        let (a, b, mut c) = (row(40), row(60), row(100));
        c.gaps = 2;
        c.queued = 5;
        let t = format_table(&machine(), &[&a, &b, &c], 1000, 100, 2000, 4096);
        assert!(t.contains("Test CPU, kernel 6.1, clock tsc"), "{t}");
        assert!(t.contains("send 0 -> receive 1;"), "{t}");
        let cells = |name: &str| -> Vec<String> {
            t.lines()
                .find(|l| l.starts_with(name))
                .unwrap()
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        assert_eq!(
            cells("ring_processes"),
            [
                "ring_processes",
                "1000",
                "60ns",
                "120ns",
                "180ns",
                "240ns",
                "300ns",
                "600ns",
                "1.50x",
                "1.50x"
            ]
        );
        assert_eq!(cells("cacheline")[8], "1.00x");
        assert_eq!(cells("ring_threads")[8], "2.50x");
        assert!(t.contains("warning: ring_threads: 2 gaps"), "{t}");
        assert!(
            t.contains("note: ring_threads: 5 samples waited in the ring"),
            "{t}"
        );
        assert!(t.contains("p99.99 is not meaningful"), "{t}");
    }

    #[test]
    fn json_has_the_documented_keys() {
        let (a, b, c) = (row(40), row(60), row(0));
        let v = to_json(&machine(), &[&a, &b, &c], 1000, 100, 2000, 4096);
        for name in ROWS {
            for key in ["p50", "p90", "p99", "p99_9", "p99_99", "max", "count"] {
                assert!(v[name][key].is_u64(), "{name}.{key}: {v}");
            }
        }
        assert_eq!(v["ratio_p50_ring_processes_to_cacheline"], 1.5);
        assert_eq!(v["machine"]["cpu_model"], "Test CPU");
        assert_eq!(v["machine"]["clock_source"], "tsc");
        assert!(v["ratio_p50_ring_threads_to_cacheline"].is_f64());
        let zero_floor = to_json(&machine(), &[&c, &a, &b], 1000, 100, 2000, 4096);
        assert!(zero_floor["ratio_p50_ring_processes_to_cacheline"].is_null());
    }

    #[test]
    fn ring_threads_measures_every_sample() {
        let clock = Clock::new();
        let cores = common::cores::allowed_cores();
        let (a, b) = (cores[0], *cores.last().unwrap());
        let pins = PinReport::default();
        // 200 ticks, 50 discarded: tiny, so it stays quick even on a busy machine.
        let c = ring_threads(&clock, a, b, 200, 50, clock.raw_from_ns(1_000), 1024, &pins).unwrap();
        assert_eq!(c.hist.len(), 150);
        assert_eq!(c.gaps, 0);
    }
}
