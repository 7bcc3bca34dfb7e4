//! The `engine` binary's handling of bad input and of a missing feed.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn config(dir: &Path, ring: &Path) -> std::path::PathBuf {
    let text = format!(
        r#"seed = 1
duration_s = 1.0
warmup_s = 0.1
[ring]
path = "{}"
capacity = 1024
[cores]
feed_md = 0
engine_hot = 1
[engine]
wait = "block"
[[symbols]]
name = "AAA"
rate_per_s = 1000
start_px = 100.0
tick_size = 0.01
volatility_bps = 0.1
"#,
        ring.display()
    );
    let p = dir.join("c.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn engine(cfg: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_engine"));
    c.arg("--config").arg(cfg).arg("--out").arg(out);
    c
}

#[test]
fn corrupt_ring_file_exits_2_naming_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("r.ring");
    for (what, bytes, expected) in [
        ("wrong magic", vec![7u8; 4096 + 64 * 1024], "wrong magic"),
        (
            "truncated",
            vec![0u8; 100],
            "shorter than the 4096-byte header",
        ),
    ] {
        std::fs::write(&ring, &bytes).unwrap();
        let out = engine(&config(dir.path(), &ring), dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(stderr.contains(expected), "{what}: {stderr}");
        assert!(
            stderr.contains("r.ring"),
            "{what}: names the file: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    }
}

#[test]
fn bad_config_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &dir.path().join("r.ring"));
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("[engine]\n", "[engine]\nlevel = 3\n")).unwrap();
    let out = engine(&cfg, dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("c.toml:11:1: engine.level: unknown field `level`"),
        "{stderr}"
    );
}

#[test]
fn waits_for_the_feed_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("none.ring");
    let mut child = engine(&config(dir.path(), &ring), dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    // Wait until it says it is waiting (watchdog: 30 s).
    let start = Instant::now();
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains("waiting for feed") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no waiting message: {seen}"
        );
        let n = stderr.read(&mut buf).unwrap();
        assert!(n > 0, "engine exited early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains(&ring.display().to_string()), "{seen}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap().code();
    stderr.read_to_string(&mut seen).unwrap();
    assert_eq!(code, Some(0), "{seen}");
    assert!(
        seen.contains("stopped while waiting for the feed"),
        "{seen}"
    );
}
