//! The `engine` binary's handling of bad input and of a missing feed.

use common::config::edit::Edit;
use common::config::DEFAULT_TOML;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `configs/default.toml` for an engine on its own: its ring at `ring` (1024 slots), one
/// second, the engine blocking (not spinning) while it waits; written to `dir/c.toml`.
fn config(dir: &Path, ring: &Path) -> std::path::PathBuf {
    let text = Edit::new(DEFAULT_TOML)
        .set("duration_s", 1.0)
        .set("warmup_s", 0.1)
        .set("ring.path", ring)
        .set("ring.capacity", 1024)
        .set("engine.wait", "block")
        .finish()
        .unwrap();
    let p = dir.join("c.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// The 1-based number of the first line of `text` that starts with `start`.
fn line_of(text: &str, start: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starts with {start:?}:\n{text}"))
        + 1
}

fn engine(cfg: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_engine"));
    c.arg("--config").arg(cfg).arg("--out").arg(out);
    c
}

/// Runs `cmd` under a watchdog (a hang fails the test instead of blocking it) and
/// returns (exit code, stderr).
fn run_watched(cmd: &mut Command) -> (Option<i32>, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "watchdog: engine still running after 30 s: {}",
                reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (status.code(), reader.join().unwrap())
}

/// The ring-file catalogue: a valid ring made by `shm::create` with one defect each (at
/// header offsets from `common::ring::offsets`, so the cases follow layout changes), or
/// something that is not a ring file at all. The engine must refuse each with exit
/// code 2 and a message naming the file and the check, never panic and never hang.
#[test]
fn corrupt_ring_files_exit_2_naming_the_file_and_the_check() {
    use common::clock::ClockSource;
    use common::ring::shm::{self, ProducerId};
    use common::ring::{offsets, HEADER_BYTES, LAYOUT_VERSION};
    use common::tick::TICK_LAYOUT_FINGERPRINT;

    let dir = tempfile::tempdir().unwrap();
    let valid = {
        let path = dir.path().join("valid.ring");
        let id = ProducerId::now(ClockSource::Tsc, false);
        let _producer = shm::create(&path, 1024, id).unwrap();
        std::fs::read(&path).unwrap()
    };
    let put = |at: usize, bytes: &[u8]| {
        let mut b = valid.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        b
    };
    let resized = |len: usize| {
        let mut b = valid.clone();
        b.resize(len, 0);
        b
    };
    let header = format!("shorter than the {HEADER_BYTES}-byte header");
    let version = format!("layout version {}, this build", LAYOUT_VERSION + 1);
    let files: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "wrong magic",
            put(offsets::MAGIC, b"NOTARING"),
            "wrong magic",
        ),
        (
            "other layout version",
            put(offsets::LAYOUT_VERSION, &(LAYOUT_VERSION + 1).to_ne_bytes()),
            &version,
        ),
        (
            "other slot size",
            put(offsets::SLOT_BYTES, &32u32.to_ne_bytes()),
            "slot size 32 bytes",
        ),
        (
            "other tick layout",
            put(
                offsets::TICK_FINGERPRINT,
                &(!TICK_LAYOUT_FINGERPRINT).to_ne_bytes(),
            ),
            "tick layout fingerprint",
        ),
        (
            "capacity not a power of two",
            put(offsets::CAPACITY, &1000u64.to_ne_bytes()),
            "capacity 1000 is not a power of two",
        ),
        (
            "capacity that does not fit the file",
            put(offsets::CAPACITY, &2048u64.to_ne_bytes()),
            "capacity 2048 needs a file of",
        ),
        (
            "unknown producer state",
            put(offsets::STATE, &7u32.to_ne_bytes()),
            "unknown producer state 7",
        ),
        ("empty file", Vec::new(), &header),
        ("shorter than the header", resized(100), &header),
        (
            "truncated slots",
            resized(valid.len() - 64),
            "capacity 1024 needs a file of",
        ),
        (
            "extended",
            resized(valid.len() + 4096),
            "capacity 1024 needs a file of",
        ),
    ];
    let ring = dir.path().join("r.ring");
    let cfg = config(dir.path(), &ring);
    let check = |what: &str, expected: &str| {
        let (code, stderr) = run_watched(&mut engine(&cfg, dir.path()));
        assert_eq!(code, Some(2), "{what}: {stderr}");
        let wanted = format!("ring file {} is not usable: ", ring.display());
        assert!(stderr.contains(&wanted), "{what}: names the file: {stderr}");
        assert!(
            stderr.contains(expected),
            "{what}: wanted {expected:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert_eq!(
            stderr.lines().filter(|l| l.contains("error")).count(),
            1,
            "{what}: {stderr}"
        );
    };
    for (what, bytes, expected) in &files {
        std::fs::write(&ring, bytes).unwrap();
        check(what, expected);
    }
    // Not regular files: a device, and a FIFO (opening one for reading would block).
    // (A folder is refused earlier, by the configuration's check of ring.path.)
    std::fs::remove_file(&ring).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &ring).unwrap();
    check("a device", "not a regular file");
    std::fs::remove_file(&ring).unwrap();
    let mkfifo = Command::new("mkfifo").arg(&ring).status();
    if mkfifo.is_ok_and(|s| s.success()) {
        check("a fifo", "not a regular file");
    }
}

#[test]
fn bad_config_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &dir.path().join("r.ring"));
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = Edit::new(&text).set("engine.level", 3).finish().unwrap();
    std::fs::write(&cfg, &text).unwrap();
    let out = engine(&cfg, dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let wanted = format!(
        "c.toml:{}:1: engine.level: unknown field `level`",
        line_of(&text, "level = 3")
    );
    assert!(stderr.contains(&wanted), "{wanted}: {stderr}");
}

/// `engine.source = "aeron"` in an engine built without Aeron: exit 2 naming the key and
/// how to build one that has it. (Built with the feature, the Aeron source is tested end
/// to end in `net/tests/relay.rs`.)
#[cfg(not(feature = "aeron"))]
#[test]
fn an_aeron_source_without_the_feature_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &dir.path().join("r.ring"));
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = Edit::new(&text)
        .set("engine.source", "aeron")
        .set("net.transport", "ipc")
        .set("net.driver.dir", dir.path().join("aeron"))
        .finish()
        .unwrap();
    std::fs::write(&cfg, &text).unwrap();
    let (code, stderr) = run_watched(&mut engine(&cfg, &dir.path().join("out")));
    assert_eq!(code, Some(2), "{stderr}");
    let wanted = format!(
        "c.toml:{}:1: engine.source: \"aeron\": this engine binary was built without Aeron",
        line_of(&text, "source = ")
    );
    assert!(stderr.contains(&wanted), "{wanted}: {stderr}");
    assert!(!dir.path().join("aeron").exists(), "{stderr}");
}

/// The engine shares the feed's flags (`common::runargs`, catalogued in
/// `feed/tests/cli.rs`); these prove its exit-code path for them.
#[test]
fn bad_flags_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &dir.path().join("r.ring"));
    for (flag, value, expected) in [
        (
            "--duration",
            "-1",
            "error: invalid value '-1' for '--duration <SECS>'",
        ),
        (
            "--out",
            "/sys",
            "engine: error: output folder /sys is not writable: ",
        ),
        (
            "--config",
            "/no/such.toml",
            "engine: error: /no/such.toml: cannot read config: ",
        ),
    ] {
        let pick = |name: &str, default: &Path| {
            if flag == name {
                Path::new(value).to_path_buf()
            } else {
                default.to_path_buf()
            }
        };
        let mut cmd = engine(&pick("--config", &cfg), &pick("--out", dir.path()));
        if flag == "--duration" {
            cmd.arg(format!("{flag}={value}"));
        }
        let (code, stderr) = run_watched(&mut cmd);
        assert_eq!(code, Some(2), "{flag} {value}: {stderr}");
        assert!(
            stderr.starts_with(expected),
            "{flag} {value}: wanted {expected:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
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
    common::os::send_signal(child.id(), common::os::Signal::Term).unwrap();
    let code = child.wait().unwrap().code();
    stderr.read_to_string(&mut seen).unwrap();
    assert_eq!(code, Some(0), "{seen}");
    assert!(
        seen.contains("stopped while waiting for the feed"),
        "{seen}"
    );
}

/// A ring file the engine may not read (permission denied) is bad input: exit 2 with one
/// message, located at `ring.path`, that says so. As root (who may read anything) the
/// engine runs as user `nobody` (setpriv) against the root-owned, owner-only ring of a
/// live producer; as any other user the ring's mode is 0000.
#[test]
fn an_unreadable_ring_exits_2_saying_so() {
    use common::clock::ClockSource;
    use common::ring::shm::{self, ProducerId};
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ring = d.join("r.ring");
    let id = ProducerId::now(ClockSource::Tsc, false);
    let _producer = shm::create(&ring, 1024, id).unwrap();
    let cfg = config(d, &ring);
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    let root = common::os::effective_uid() == 0;
    let mut cmd = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_engine"));
        c
    } else {
        std::fs::set_permissions(&ring, std::fs::Permissions::from_mode(0o000)).unwrap();
        Command::new(env!("CARGO_BIN_EXE_engine"))
    };
    cmd.arg("--config").arg(&cfg).arg("--out").arg(&out);
    let (code, stderr) = run_watched(&mut cmd);
    assert_eq!(code, Some(2), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "one message: {stderr}");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let wanted = format!(
        "c.toml:{}:1: ring.path: ring file {} exists but this user may not read it",
        line_of(&text, "path = "),
        ring.display()
    );
    assert!(errors[0].contains(&wanted), "{stderr}");
    assert!(errors[0].contains("ermission denied"), "{stderr}");
}
