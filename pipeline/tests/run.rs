//! The single-process pipeline end to end: the `pipeline` binary (routing hybrid) and a
//! single-allocator variant on a small configuration, checked as `lab run` is checked:
//! every tick accounted (none lost at this rate), no global allocation on the hot
//! thread after warm-up, every stage recorded, the `.hlog` readable by hdrhistogram's
//! interval-log reader, and (routing) the hot threads' memory in the arena.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Two symbols, 20,000 ticks/s in all, 2 s, both hot threads yielding when idle so that
/// the test runs on 2 cores beside others.
fn config(dir: &Path) -> std::path::PathBuf {
    let cores = core_count();
    let text = format!(
        r#"seed = 3
duration_s = 2.0
warmup_s = 0.2

[ring]
path = "/dev/shm/hft-pipeline-test-{pid}-{name}.ring"
capacity = 65536

[cores]
feed_md = 0
engine_hot = {hot}

[feed]
wait = "spin_yield"

[engine]
wait = "spin_yield"
scratch = "arena"

[log]
interval_ms = 500

[[symbols]]
name = "AAA"
rate_per_s = 12000
start_px = 100.0
tick_size = 0.01
volatility_bps = 0.1

[[symbols]]
name = "BBB"
rate_per_s = 8000
start_px = 20.0
tick_size = 0.05
volatility_bps = 0.1
"#,
        pid = std::process::id(),
        name = dir.file_name().unwrap().to_string_lossy(),
        hot = if cores > 1 { 1 } else { 0 },
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn core_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// One pipeline at a time: each spins two threads on the machine's first two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `bin` and checks what `lab run` checks; returns its stderr.
fn check(bin: &str, allocator: &str) -> String {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let out = dir.path().join("out");
    let run = Command::new(bin)
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .arg("--hot-arena-mib")
        .arg("64")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{bin}: {:?}\n{stderr}", run.status);
    let f = json(&out.join("feed/feed_summary.json"));
    let e = json(&out.join("engine/engine_summary.json"));
    for s in [&f, &e] {
        assert_eq!(s["manifest"]["allocator"]["name"], allocator, "{bin}");
    }
    let published = n(&f["published"]);
    assert!(published > 30_000, "{published} published");
    assert_eq!(
        n(&e["received"]) + n(&e["missed"]) + n(&e["unread"]),
        published,
        "every tick accounted"
    );
    assert_eq!(n(&e["missed"]), 0, "no tick lost at 20,000/s");
    assert_eq!(
        n(&e["hot_allocs"]["allocs"]) + n(&e["hot_allocs"]["reallocs"]),
        0
    );
    assert_eq!(
        n(&f["md_allocs"]["allocs"]) + n(&f["md_allocs"]["reallocs"]),
        0
    );
    for stage in ["feed_lag", "hop", "engine", "e2e"] {
        assert!(n(&e["latency_ns"][stage]["count"]) > 0, "{stage}");
    }
    let hlog = std::fs::read(out.join("engine/engine.hlog")).unwrap();
    let mut intervals = 0;
    for entry in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&hlog) {
        if let hdrhistogram::serialization::interval_log::LogEntry::Interval(_) =
            entry.expect("a readable .hlog")
        {
            intervals += 1;
        }
    }
    assert!(intervals >= 4, "{intervals} intervals");
    stderr
}

#[test]
fn the_routed_pipeline_runs_like_two_processes() {
    let stderr = check(env!("CARGO_BIN_EXE_pipeline"), "hybrid");
    assert!(stderr.contains("pipeline: hot arena of 64 MiB"), "{stderr}");
    // The routes' counts: the hot threads allocated in the arena at start, nothing fell
    // back, and every arena block went home (freed by whatever thread).
    let line = stderr
        .lines()
        .find(|l| l.starts_with("pipeline: routes:"))
        .unwrap_or_else(|| panic!("no routes line: {stderr}"));
    let num = |after: &str| -> u64 {
        let rest = &line[line
            .find(after)
            .unwrap_or_else(|| panic!("{after}: {line}"))
            + after.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (allocs, frees) = (num("hot arena "), num("bytes), "));
    assert!(allocs > 0, "{line}");
    assert!(frees <= allocs, "{line}");
    assert_eq!(num("hot threads), "), 0, "no fallback: {line}");
}

#[test]
fn a_single_allocator_variant_runs_the_same_pipeline() {
    check(env!("CARGO_BIN_EXE_pipeline-jemalloc"), "jemalloc");
}

#[test]
fn an_arena_the_machine_cannot_reserve_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let run = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--hot-arena-mib")
        .arg("65536")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--hot-arena-mib 65536"), "{stderr}");
    assert!(!dir.path().join("out").exists(), "nothing started");
}
