//! The single-process pipeline end to end: the `pipeline` binary (routing hybrid) and a
//! single-allocator variant on a small configuration, checked as `lab run` is checked:
//! every tick accounted (none lost at this rate), no global allocation on the hot
//! thread after warm-up, every stage recorded, the `.hlog` readable by hdrhistogram's
//! interval-log reader, no ring file (the ring is in the process's memory), and
//! (routing) the hot threads' memory in the arena, the routes and their report.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Two symbols, 20,000 ticks/s in all, 2 s, both hot threads yielding when idle so that
/// the test runs on 2 cores beside others; a 64 MiB hot arena, and `routing` added to
/// the `[routing]` section.
fn config(dir: &Path, routing: &str) -> std::path::PathBuf {
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

[routing]
arena_mib = 64
{routing}

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
    // The routing lines may name a table of their own (`[routing.roles]`): after it.
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The `ring.path` of the test configuration at `cfg`.
fn ring_path(cfg: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(cfg).unwrap();
    let line = text.lines().find(|l| l.starts_with("path = ")).unwrap();
    line.trim_start_matches("path = ").trim_matches('"').into()
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

/// Runs `bin` on the test configuration with `routing` and checks what `lab run`
/// checks; returns its stderr and the routing report, if it wrote one.
fn check(bin: &str, allocator: &str, routing: &str) -> (String, Option<Value>) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), routing);
    let out = dir.path().join("out");
    let ring = ring_path(&cfg);
    let child = Command::new(bin)
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The ring lives in the process's memory: no file ever appears at ring.path.
    let mut ring_seen = false;
    let pid = child.id();
    let watch = std::thread::spawn(move || {
        while Path::new(&format!("/proc/{pid}")).exists() {
            ring_seen |= ring.exists();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        ring_seen
    });
    let run = child.wait_with_output().unwrap();
    assert!(!watch.join().unwrap(), "{bin}: a ring file appeared");
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{bin}: {:?}\n{stderr}", run.status);
    let f = json(&out.join("feed_summary.json"));
    let e = json(&out.join("engine_summary.json"));
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
    let hlog = std::fs::read(out.join("engine.hlog")).unwrap();
    let mut intervals = 0;
    for entry in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&hlog) {
        if let hdrhistogram::serialization::interval_log::LogEntry::Interval(_) =
            entry.expect("a readable .hlog")
        {
            intervals += 1;
        }
    }
    assert!(intervals >= 4, "{intervals} intervals");
    let routing = out.join("routing.json");
    (stderr, routing.exists().then(|| json(&routing)))
}

/// The rows of a routing report, by role.
fn roles(report: &Value) -> Vec<(String, &Value)> {
    report["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .map(|r| (r["role"].as_str().unwrap().to_string(), r))
        .collect()
}

#[test]
fn the_routed_pipeline_runs_like_two_processes() {
    let (stderr, report) = check(env!("CARGO_BIN_EXE_pipeline"), "hybrid", "");
    assert!(stderr.contains("pipeline: hot arena of 64 MiB"), "{stderr}");
    let report = report.expect("routing.json");
    assert_eq!(report["adaptive"], false);
    let rows = roles(&report);
    assert_eq!(rows.len(), 11, "every role");
    for (role, r) in &rows {
        let want = if role == "feed_md" || role == "engine_hot" {
            "mimalloc"
        } else {
            "jemalloc"
        };
        assert_eq!(
            (r["configured"].as_str(), r["chosen"].as_str()),
            (Some(want), Some(want)),
            "{role}"
        );
        assert_eq!(n(&r["changes"]), 0, "{role}");
    }
    assert!(n(&report["counts"]["hot"]["allocs"]) > 0);
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
    assert_eq!(num("by hot-routed threads), "), 0, "no fallback: {line}");
}

/// `adaptive = true`: every cold role alternates between the allocators during the
/// warm-up and ends on one of them with the evidence that chose it, said on stderr
/// too; the hot roles are never timed and stay on the arena; the run is as sound.
#[test]
fn the_adaptive_router_records_its_choice_and_evidence_per_role() {
    let (stderr, report) = check(
        env!("CARGO_BIN_EXE_pipeline"),
        "hybrid",
        "adaptive = true\n[routing.roles]\nengine_orders = \"mimalloc\"",
    );
    let report = report.expect("routing.json");
    assert_eq!(report["adaptive"], true);
    assert!(
        stderr.contains("pipeline: adaptive: measured phase:"),
        "{stderr}"
    );
    let mut timed = 0;
    for (role, r) in roles(&report) {
        let chosen = r["chosen"].as_str().unwrap();
        if role == "feed_md" || role == "engine_hot" {
            assert_eq!(chosen, "mimalloc", "{role}");
            assert!(r.get("evidence").is_none(), "{role} is never timed");
            continue;
        }
        let want = if role == "engine_orders" {
            "mimalloc"
        } else {
            "jemalloc"
        };
        assert_eq!(r["configured"].as_str(), Some(want), "{role}");
        assert!(n(&r["changes"]) >= 5, "{role} alternated: {r}");
        let e = &r["evidence"];
        let decision = e["decision"].as_str().unwrap();
        assert!(
            decision.starts_with(&format!("chose {chosen}:"))
                || decision.starts_with(&format!("kept {chosen}:")),
            "{role}: {decision}"
        );
        let calls = n(&e["jemalloc"]["count"]) + n(&e["mimalloc"]["count"]);
        if calls > 0 {
            timed += 1;
            assert!(
                stderr.contains(&format!("pipeline: adaptive: {role}: ")),
                "{role}: {stderr}"
            );
        }
    }
    assert!(
        timed > 0,
        "some cold role allocated during the warm-up: {report}"
    );
}

#[test]
fn a_single_allocator_variant_runs_the_same_pipeline() {
    let (stderr, report) = check(env!("CARGO_BIN_EXE_pipeline-jemalloc"), "jemalloc", "");
    assert!(report.is_none(), "nothing routed, no routing report");
    assert!(
        stderr.contains("[routing] applies to the routing allocator only"),
        "the routing section is said not to apply: {stderr}"
    );
}

/// The routing pipeline under an address-space limit of 16 GiB (util-linux `prlimit`),
/// so that a 64 GiB arena cannot be reserved on any machine, however much memory it has.
fn limited() -> Command {
    let mut c = Command::new("prlimit");
    c.arg(format!("--as={}", 16u64 << 30))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_pipeline"));
    c
}

/// Runs the routing pipeline on the test configuration with `routing` (or the flag
/// `--hot-arena-mib` of `flag`); it must exit 2 before starting anything, with one
/// message that contains `wanted`.
fn refused(routing: &str, flag: Option<&str>, wanted: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), routing);
    let mut cmd = limited();
    cmd.arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(dir.path().join("out"));
    if let Some(f) = flag {
        cmd.arg("--hot-arena-mib").arg(f);
    }
    let run = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{routing}: {stderr}");
    assert!(
        stderr.contains(wanted),
        "{routing}: wanted {wanted}\n{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one message: {stderr}");
    assert!(!dir.path().join("out").exists(), "nothing started");
}

#[test]
fn bad_routing_configuration_exits_2_with_a_located_message() {
    // `[routing]` starts on line 23 of the test configuration (arena_mib on 24).
    refused(
        "[routing.roles]\nfeed_journal = \"jemalloc\"",
        None,
        "pipeline.toml:26:1: routing.roles.feed_journal: unknown field `feed_journal`",
    );
    refused(
        "[routing.roles]\nengine_report = \"tcmalloc\"",
        None,
        "pipeline.toml:26:17: routing.roles.engine_report: unknown variant `tcmalloc`, expected `mimalloc` or `jemalloc`",
    );
    refused(
        "hot_max_bytes = 0",
        None,
        "pipeline.toml:25:1: routing.hot_max_bytes: the threshold must be between 1 byte and the arena's size (67108864 bytes), got 0",
    );
    refused(
        "hot_max_bytes = 100000000",
        None,
        "routing.hot_max_bytes: the threshold must be between",
    );
}

#[test]
fn an_arena_the_machine_cannot_reserve_exits_2() {
    let text =
        "pipeline.toml:24:1: routing.arena_mib: cannot reserve a hot arena of 68719476736 bytes";
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let big = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("arena_mib = 64", "arena_mib = 65536");
    std::fs::write(&cfg, big).unwrap();
    let run = limited()
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(text), "{stderr}");
    assert!(!dir.path().join("out").exists(), "nothing started");
    // The flag names itself.
    refused("", Some("65536"), "--hot-arena-mib 65536: cannot reserve");
}
