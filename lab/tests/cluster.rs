//! `lab cluster` end to end (feature `aeron`, root): a feed host and two engine hosts
//! (two engines on one) in network namespaces, over Aeron UDP multicast, with the real
//! `feed`, `relay` and `engine` binaries. Checks the accounting of every process, the
//! faults (loss, a killed relay, a killed feed, Ctrl-C) and that nothing is left after
//! a run: no namespace of lab's, no folder in /dev/shm, no process.
//!
//! Needs the binaries built with the feature beside lab's:
//! `cargo build -p feed -p engine -p net --features feed/aeron,net/aeron,engine/aeron --bins`.
//! No test asserts a latency.
#![cfg(feature = "aeron")]

use common::os::{send_signal, Signal};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const LAB: &str = env!("CARGO_BIN_EXE_lab");
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// One cluster at a time: they share the cores and the multicast group.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn bin_dir() -> PathBuf {
    let dir = Path::new(LAB).parent().unwrap().to_path_buf();
    for b in ["feed", "engine", "relay"] {
        assert!(
            dir.join(b).is_file(),
            "{} is missing: build with `cargo build -p feed -p engine -p net --features feed/aeron,net/aeron,engine/aeron --bins`",
            dir.join(b).display()
        );
    }
    dir
}

/// Whether this test can make network namespaces (root); says so when not.
fn root() -> bool {
    let ok = common::os::effective_uid() == 0;
    if !ok {
        eprintln!("skipped: lab cluster needs root (network namespaces)");
    }
    ok
}

/// A finished `lab cluster` run: its output, summary and pid.
struct Ran {
    out: Output,
    summary: Option<Value>,
    pid: u32,
}

impl Ran {
    fn text(&self) -> String {
        format!(
            "status {}\n--- stdout\n{}\n--- stderr\n{}",
            self.out.status,
            String::from_utf8_lossy(&self.out.stdout),
            String::from_utf8_lossy(&self.out.stderr)
        )
    }

    fn rows(&self) -> Vec<Value> {
        self.summary.as_ref().expect("a summary")["rows"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn row(&self, host: &str, process: &str) -> Value {
        self.rows()
            .into_iter()
            .find(|r| r["host"] == host && r["process"] == process)
            .unwrap_or_else(|| panic!("no row {host}/{process}\n{}", self.text()))
    }
}

/// Runs `lab cluster` with `args` (under a watchdog); `during` gets its pid.
fn cluster(dir: &Path, args: &[&str], during: impl FnOnce(u32)) -> Ran {
    let out = dir.join("out");
    let child = Command::new(LAB)
        .current_dir(WORKSPACE)
        .args(["cluster", "--out"])
        .arg(&out)
        .arg("--bin-dir")
        .arg(bin_dir())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lab");
    let pid = child.id();
    during(pid);
    let started = Instant::now();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            while started.elapsed() < Duration::from_secs(120) {
                std::thread::sleep(Duration::from_millis(100));
                if done.load(std::sync::atomic::Ordering::Acquire) {
                    return;
                }
            }
            // SIGTERM: lab stops its processes and tears its network down.
            let _ = send_signal(pid, Signal::Term);
        })
    };
    let output = child.wait_with_output().expect("lab ran");
    done.store(true, std::sync::atomic::Ordering::Release);
    let _ = watchdog.join();
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "watchdog: lab cluster ran longer than 120 s"
    );
    let summary = std::fs::read(out.join("cluster_summary.json"))
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap());
    Ran {
        out: output,
        summary,
        pid,
    }
}

/// Nothing of run `pid` is left: no namespace, no folder in /dev/shm, no process
/// started with a configuration of the run's folder `dir`.
fn assert_torn_down(r: &Ran, dir: &Path) {
    let mine = dir.display().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            assert!(
                !cmdline.contains(&mine),
                "a process of the run is left: {cmdline}\n{}",
                r.text()
            );
        }
    }
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    let prefix = format!("hft{}-", r.pid);
    assert!(
        !listed.lines().any(|l| l.starts_with(&prefix)),
        "namespaces left: {listed}\n{}",
        r.text()
    );
    let shm = PathBuf::from(format!("/dev/shm/hft-cluster-{}", r.pid));
    assert!(!shm.exists(), "{} left\n{}", shm.display(), r.text());
    if let Some(s) = &r.summary {
        assert_eq!(
            s["left_after_teardown"],
            Value::Array(vec![]),
            "{}",
            r.text()
        );
    }
}

/// Every row of a run that passed: accounting closed, the counts adding up.
fn assert_accounted(r: &Ran) {
    assert!(r.out.status.success(), "{}", r.text());
    let s = r.summary.as_ref().unwrap();
    assert_eq!(s["problems"], Value::Array(vec![]), "{}", r.text());
    for row in r.rows() {
        assert_eq!(row["unaccounted"], 0, "{row}\n{}", r.text());
    }
}

#[test]
fn two_engine_hosts_every_tick_accounted_and_nothing_left() {
    if !root() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let r = cluster(dir.path(), &["--duration", "2"], |_| {});
    assert_accounted(&r);
    assert_torn_down(&r, dir.path());
    let feed = r.row("feed", "feed");
    let published = feed["published"].as_u64().unwrap();
    assert!(published > 10_000, "{feed}");
    let processes: Vec<(String, String)> = r
        .rows()
        .iter()
        .map(|row| {
            (
                row["host"].as_str().unwrap().to_string(),
                row["process"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("feed", "feed"),
        ("east", "relay"),
        ("east", "engine-1"),
        ("east", "engine-2"),
        ("west", "relay"),
        ("west", "engine-1"),
        ("west", "direct-1"),
    ] {
        assert!(
            processes.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} missing\n{}",
            r.text()
        );
    }
    for host in ["east", "west"] {
        let relay = r.row(host, "relay");
        assert_eq!(relay["published"].as_u64(), Some(published), "{relay}");
        let filled = relay["ticks"].as_u64().unwrap() + relay["recovered"].as_u64().unwrap();
        assert_eq!(filled, published, "{relay}");
        assert!(relay["hop_ns"]["count"].as_u64().unwrap() > 0, "{relay}");
        // Each engine read the whole stream its relay put into the ring.
        for e in r
            .rows()
            .iter()
            .filter(|x| x["host"] == host && x["process"] != "relay")
        {
            assert_eq!(
                e["published"].as_u64(),
                Some(published),
                "{e}\n{}",
                r.text()
            );
            assert!(e["e2e_ns"]["count"].as_u64().unwrap() > 0, "{e}");
        }
    }
    // The engine on the stream itself heard every tick the feed published, over the
    // network (its hop), with nothing of the relay's.
    let direct = r.row("west", "direct-1");
    assert!(direct["hop_ns"]["count"].as_u64().unwrap() > 0, "{direct}");
    assert_eq!(direct["recovered"], 0, "{direct}");
    let stdout = String::from_utf8_lossy(&r.out.stdout);
    assert!(stdout.contains("== lab cluster:"), "{stdout}");
    assert!(
        stdout.contains("teardown: no namespace, process or file left"),
        "{stdout}"
    );
    // Every process's summary and latency log is in the results folder.
    let out = dir.path().join("out");
    for f in [
        "feed/feed_summary.json",
        "east/relay/relay_summary.json",
        "east/engine-2/engine_summary.json",
        "west/engine-1/engine.hlog",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
}

#[test]
fn under_simulated_loss_aeron_retransmits_and_no_tick_is_unaccounted() {
    if !root() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for loss in ["0.01", "0.1"] {
        let dir = tempfile::tempdir().unwrap();
        let r = cluster(dir.path(), &["--duration", "2", "--loss", loss], |_| {});
        assert_accounted(&r);
        assert_torn_down(&r, dir.path());
        assert_eq!(
            r.summary.as_ref().unwrap()["loss_rate"].as_f64(),
            Some(loss.parse().unwrap())
        );
        for (host, process) in [("east", "relay"), ("west", "relay"), ("west", "direct-1")] {
            let row = r.row(host, process);
            assert!(row["naks"].as_i64().unwrap() > 0, "loss {loss}: {row}");
        }
    }
}

#[test]
fn a_killed_relay_restarted_catches_up_from_the_history_service() {
    if !root() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let r = cluster(
        dir.path(),
        &["--duration", "3", "--kill-relay", "1"],
        |_| {},
    );
    assert_accounted(&r);
    assert_torn_down(&r, dir.path());
    let published = r.row("feed", "feed")["published"].as_u64().unwrap();
    assert_eq!(r.row("east", "relay")["end"], "killed");
    let second = r.row("east", "relay-2");
    // It joined mid-stream: everything before it was filled from the service.
    assert!(second["recovered"].as_u64().unwrap() > 1_000, "{second}");
    assert_eq!(second["unrecovered"], 0, "{second}");
    assert_eq!(second["published"].as_u64(), Some(published), "{second}");
    // The other host was not disturbed.
    assert_eq!(
        r.row("west", "relay")["ticks"].as_u64().unwrap()
            + r.row("west", "relay")["recovered"].as_u64().unwrap(),
        published
    );
}

#[test]
fn a_killed_feed_is_noticed_by_every_host() {
    if !root() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let r = cluster(dir.path(), &["--duration", "3", "--kill-feed", "1"], |_| {});
    assert_accounted(&r);
    assert_torn_down(&r, dir.path());
    let s = r.summary.as_ref().unwrap();
    // Both relays and west's direct engine, each within the producer timeout (else a
    // problem, and the run fails).
    let noticed = s["feed_death_noticed_ms"].as_array().unwrap();
    assert_eq!(noticed.len(), 3, "{}", r.text());
    assert!(
        noticed
            .iter()
            .any(|n| n[0].as_str().unwrap().contains("direct-1")),
        "{}",
        r.text()
    );
    for host in ["east", "west"] {
        let relay = r.row(host, "relay");
        assert_eq!(relay["end"], "ProducerGone", "{relay}");
        assert!(relay["published"].as_u64().unwrap() > 0, "{relay}");
    }
    // The engine on the stream itself noticed it too.
    let direct = r.row("west", "direct-1");
    assert_eq!(direct["end"], "ProducerGone", "{direct}");
    assert!(direct["ticks"].as_u64().unwrap() > 0, "{direct}");
}

#[test]
fn ctrl_c_tears_everything_down() {
    if !root() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let r = cluster(dir.path(), &["--duration", "30"], |pid| {
        std::thread::sleep(Duration::from_secs(4));
        send_signal(pid, Signal::Int).unwrap();
    });
    assert_eq!(r.out.status.code(), Some(1), "{}", r.text());
    assert!(
        String::from_utf8_lossy(&r.out.stderr).contains("interrupted"),
        "{}",
        r.text()
    );
    assert_torn_down(&r, dir.path());
}

#[test]
fn a_bad_cluster_file_exits_2_with_a_located_message() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(Path::new(WORKSPACE).join("configs/cluster.toml")).unwrap();
    let run =
        std::fs::read_to_string(Path::new(WORKSPACE).join("configs/cluster_run.toml")).unwrap();
    std::fs::write(dir.path().join("cluster_run.toml"), run).unwrap();
    for (what, from, to, expect) in [
        (
            "a unicast group",
            "group = \"239.77.0.1:40456\"",
            "group = \"10.1.1.1:40456\"",
            "group: must be a multicast",
        ),
        (
            "a bad subnet",
            "subnet = \"10.77.0\"",
            "subnet = \"10.77\"",
            "subnet: must be three octets",
        ),
        (
            "too many engines",
            "engines = 2",
            "engines = 9",
            "hosts[0].engines: must be between 1 and 4",
        ),
        (
            "too many direct engines",
            "direct_engines = 1",
            "direct_engines = 9",
            "hosts[1].direct_engines: must be between 0 and 4",
        ),
        (
            "an unknown key",
            "wait = \"spin_yield\"",
            "wait = \"spin_yield\"\nspeed = 3",
            "unknown field `speed`",
        ),
    ] {
        assert!(base.contains(from), "{from}");
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, base.replace(from, to)).unwrap();
        let out = Command::new(LAB)
            .args(["cluster", "--config"])
            .arg(&path)
            .arg("--bin-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(
            err.contains(&format!("{}:", path.display())),
            "{what}: {err}"
        );
        assert!(err.contains(expect), "{what}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{what}: one line: {err}");
    }
}

/// `--repeat 2`: two whole runs, each in its own folder with its own summary, then the
/// comparison of the paths over them (too few repetitions for a verdict, and said so).
#[test]
fn repetitions_compare_the_direct_engine_with_the_relay_fed_one() {
    if !root() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let r = cluster(dir.path(), &["--duration", "2", "--repeat", "2"], |_| {});
    assert!(r.out.status.success(), "{}", r.text());
    assert_torn_down(&r, dir.path());
    let out = dir.path().join("out");
    for k in 1..=2 {
        let s: Value = serde_json::from_slice(
            &std::fs::read(out.join(format!("run-{k}/cluster_summary.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(s["problems"], Value::Array(vec![]), "run {k}: {s}");
        assert!(out
            .join(format!("run-{k}/west/direct-1/engine_summary.json"))
            .is_file());
    }
    let c: Value =
        serde_json::from_slice(&std::fs::read(out.join("cluster_compare.json")).unwrap()).unwrap();
    assert_eq!(c["repetitions"], 2);
    let rows = c["rows"].as_array().unwrap();
    let pairs: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["host"].as_str().unwrap().into(),
                r["variant"].as_str().unwrap().into(),
                r["metric"].as_str().unwrap().into(),
            )
        })
        .collect();
    for want in [
        ("east", "engine-2", "e2e p50"),
        ("west", "direct-1", "e2e p50"),
        ("west", "direct-1", "e2e p99"),
    ] {
        assert!(
            pairs.contains(&(want.0.into(), want.1.into(), want.2.into())),
            "{want:?} missing: {c}"
        );
    }
    for row in rows {
        assert_eq!(row["baseline_us"].as_array().unwrap().len(), 2, "{row}");
        // Two repetitions cannot pass the rank test: never a verdict.
        assert!(
            !["better", "worse"].contains(&row["verdict"].as_str().unwrap()),
            "{row}"
        );
    }
    let stdout = String::from_utf8_lossy(&r.out.stdout);
    assert!(stdout.contains("direct-1 vs engine-1"), "{stdout}");
}
