//! The `feed` binary's handling of bad input: every case exits with code 2 and one
//! message naming the file, line, column and key; none panics.

use common::config::edit::Edit;
use std::path::Path;
use std::process::Command;

/// The fixed base of these tests, so that the catalogue below can name exact lines and
/// columns; every variant is derived from it with [`Edit`] (see [`good`]).
const GOOD: &str = r#"seed = 1
duration_s = 1.0
warmup_s = 0.1

[ring]
path = "set by good()"
capacity = 4096

[cores]
feed_md = 0
engine_hot = 1

[[symbols]]
name = "AAA"
rate_per_s = 1000
start_px = 100.0
tick_size = 0.01
volatility_bps = 0.1

[[symbols]]
name = "BBB"
rate_per_s = 500
start_px = 20.0
tick_size = 0.05
volatility_bps = 0.1
"#;

/// [`GOOD`] with its ring at `ring`, to be edited further.
fn good(ring: &Path) -> Edit {
    Edit::new(GOOD).set("ring.path", ring)
}

/// The text of `edit`.
fn text(edit: Edit) -> String {
    edit.finish().unwrap()
}

/// `feed --config CFG --out OUT`.
fn feed(cfg: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_feed"));
    c.arg("--config").arg(cfg).arg("--out").arg(out);
    c
}

/// Starts the feed on `cfg` (stderr piped) and waits until its history service's
/// `socket` exists and half a second of ticks is in its history.
fn serving_feed(cfg: &Path, out: &Path, socket: &Path) -> std::process::Child {
    let child = feed(cfg, out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !socket.exists() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "no socket"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    child
}

/// Runs the feed on `text` (written to `dir/bad.toml`) with `--out dir/out` and returns
/// (exit code, stderr).
fn run_feed(dir: &Path, text: &str) -> (Option<i32>, String) {
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = feed(&cfg, &dir.join("out")).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_configs_exit_2_with_file_line_column_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("r.ring");
    let with = |edit: fn(Edit) -> Edit| text(edit(good(&ring)));
    let cases: &[(&str, String, &str)] = &[
        (
            "syntax error",
            with(|e| e).replace("capacity = 4096", "capacity = = 4096"),
            ":7:12: ring.capacity: ",
        ),
        (
            "unknown key",
            with(|e| e.set("cores.hot", 3)),
            ":12:1: cores.hot: unknown field `hot`",
        ),
        (
            "wrong type",
            with(|e| e.set("symbols[0].rate_per_s", "x")),
            ":15:14: symbols[0].rate_per_s: invalid type",
        ),
        (
            "missing symbols",
            with(|e| e.remove("symbols")),
            ":1:1: symbols: missing field `symbols`",
        ),
        (
            "duplicate symbol",
            with(|e| e.set("symbols[1].name", "AAA")),
            ":21:1: symbols[1].name: duplicate symbol name",
        ),
        (
            "zero rate",
            with(|e| e.set("symbols[1].rate_per_s", 0)),
            ":22:1: symbols[1].rate_per_s: rate must be greater than 0",
        ),
        (
            "negative rate",
            with(|e| e.set("symbols[1].rate_per_s", -500)),
            ":22:1: symbols[1].rate_per_s: rate must be greater than 0",
        ),
        (
            "nan rate",
            with(|e| e.set("symbols[1].rate_per_s", f64::NAN)),
            ":22:1: symbols[1].rate_per_s: rate must be a number",
        ),
        (
            "core out of range",
            with(|e| e.set("cores.engine_hot", 4096)),
            ":11:1: cores.engine_hot: core 4096 is not one",
        ),
        (
            "shared hot core",
            with(|e| e.set("cores.engine_hot", 0)),
            ":11:1: cores.engine_hot: core 0 is already",
        ),
        (
            "capacity not a power of two",
            with(|e| e.set("ring.capacity", 5000)),
            ":7:1: ring.capacity: must be a power of two",
        ),
    ];
    // The core cases need two allowed cores; on one core they fail differently, still with 2.
    let two_cores = common::cores::allowed_cores().len() >= 2;
    for (what, text, expected) in cases {
        let (code, stderr) = run_feed(dir.path(), text);
        assert_eq!(code, Some(2), "{what}: {stderr}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{what}: one message, got {stderr}");
        assert!(errors[0].starts_with("feed: error: "), "{what}: {stderr}");
        assert!(
            errors[0].contains("bad.toml:"),
            "{what}: names the file: {stderr}"
        );
        if two_cores || !what.contains("core") {
            assert!(
                errors[0].contains(expected),
                "{what}: expected {expected:?} in {stderr}"
            );
        }
    }
}

/// Bad command lines: clap's usage errors and our own checks of flags and the files
/// they name. Each exits 2 with one message, printed once, and no panic.
#[test]
fn bad_flags_and_files_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ok.toml");
    let ring = dir.path().join("r.ring");
    std::fs::write(&cfg, text(good(&ring))).unwrap();
    std::fs::write(dir.path().join("file"), "").unwrap();
    let blocked = dir.path().join("file/sub");
    let (cfg, blocked) = (cfg.to_str().unwrap(), blocked.to_str().unwrap());
    let cases: &[(&[&str], &str)] = &[
        (&["--config", "/no/such/config.toml"], "feed: error: /no/such/config.toml: cannot read config: "),
        (&["--config", cfg, "--duration", "-1"], "error: unexpected argument '-1' found"),
        (&["--config", cfg, "--duration=-1"], "error: invalid value '-1' for '--duration <SECS>': must be a number of seconds above 0"),
        (&["--config", cfg, "--duration", "abc"], "error: invalid value 'abc' for '--duration <SECS>': not a number"),
        (&["--config", cfg, "--duration", "nan"], "error: invalid value 'nan' for '--duration <SECS>': must be a number of seconds"),
        (&["--config", cfg, "--duration", "0.05"], "feed: error: --duration 0.05 must be longer than warmup_s (0.1) of "),
        (&["--config", cfg, "--out", blocked], "feed: error: cannot create output folder "),
        // sysfs refuses new files to everyone, root included.
        (&["--config", cfg, "--out", "/sys"], "feed: error: output folder /sys is not writable: "),
        (&["--bogus"], "error: unexpected argument '--bogus' found"),
    ];
    for (args, expected) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_feed"))
            .args(*args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: one message: {stderr}");
        assert!(
            errors[0].starts_with(expected),
            "{args:?}: wanted {expected:?}: {stderr}"
        );
        assert!(
            errors[0].matches("(os error").count() <= 1,
            "{args:?}: the cause twice: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    assert!(!Path::new(&ring).exists(), "nothing was published");
}

#[test]
fn publishes_and_writes_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ok.toml");
    let ring = dir.path().join("r.ring");
    let config = text(good(&ring).set("duration_s", 0.5).set("feed.wait", "block"));
    std::fs::write(&cfg, config).unwrap();
    let out = feed(&cfg, dir.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: common::summary::FeedSummary =
        serde_json::from_slice(&std::fs::read(dir.path().join("feed_summary.json")).unwrap())
            .unwrap();
    // 1500 ticks/s for 0.5 s, minus at most one tick per symbol for the random phase.
    assert!((748..=750).contains(&s.published), "{}", s.published);
    assert_eq!(
        s.history_ticks + s.history_evicted + s.history_dropped,
        s.published
    );
    assert_eq!(s.md_allocs.calls(), 0, "the md thread allocated");
    assert_eq!(s.manifest.allocator.name, "jemalloc");
    assert!(!ring.exists(), "the feed removes its ring file at the end");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("feed done: published="), "{stdout}");
}

/// A ring made by this build, with another layout version written into its header.
fn ring_of_another_layout(dir: &Path) -> Vec<u8> {
    use common::clock::ClockSource;
    use common::ring::shm::{self, ProducerId};
    use common::ring::{offsets, LAYOUT_VERSION};
    let path = dir.join("layout.src");
    let id = ProducerId::now(ClockSource::Tsc, false);
    let producer = shm::create(&path, 1024, id).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    producer.end_and_unlink();
    let at = offsets::LAYOUT_VERSION;
    bytes[at..at + 4].copy_from_slice(&(LAYOUT_VERSION + 1).to_ne_bytes());
    bytes
}

/// Whatever is at `ring.path` and is not a ring a dead feed of this project left is
/// refused before anything is written: exit 2, one message located at `ring.path`
/// (file, line, column) saying what is there, and the object exactly as it was.
#[test]
fn foreign_objects_at_ring_path_exit_2_and_are_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let other_layout = ring_of_another_layout(dir.path());
    let ring = dir.path().join("r.ring");
    type Make = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Make, String)> = vec![
        (
            "a file with other content",
            Box::new(|p| std::fs::write(p, "my trades\n").unwrap()),
            "is a file of 10 bytes that is not a ring".into(),
        ),
        (
            "an empty file",
            Box::new(|p| std::fs::write(p, "").unwrap()),
            "is an empty file".into(),
        ),
        (
            "a ring of another layout version",
            Box::new(move |p| std::fs::write(p, &other_layout).unwrap()),
            format!(
                "is a ring of layout version {}",
                common::ring::LAYOUT_VERSION + 1
            ),
        ),
        (
            "a folder",
            Box::new(|p| std::fs::create_dir(p).unwrap()),
            "is not a file path in an existing folder".into(),
        ),
        (
            "a FIFO",
            Box::new(|p| {
                assert!(Command::new("mkfifo").arg(p).status().unwrap().success());
            }),
            "is a FIFO".into(),
        ),
        (
            "a symbolic link",
            Box::new(|p| {
                let target = p.with_extension("target");
                std::fs::write(&target, "elsewhere").unwrap();
                std::os::unix::fs::symlink(&target, p).unwrap();
            }),
            "is a symbolic link (to ".into(),
        ),
    ];
    for (what, make, expected) in &cases {
        make(&ring);
        let before = common::files::snapshot(&ring).unwrap();
        let (code, stderr) = run_feed(dir.path(), &text(good(&ring)));
        assert_eq!(code, Some(2), "{what}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{what}: one message: {stderr}");
        let located = format!("bad.toml:6:1: ring.path: {}", ring.display());
        assert!(errors[0].contains(&located), "{what}: {stderr}");
        assert!(
            errors[0].contains(expected),
            "{what}: {expected:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert_eq!(
            common::files::snapshot(&ring).unwrap(),
            before,
            "{what}: changed"
        );
        let lock = common::ring::shm::lock_path(&ring);
        assert!(!lock.exists(), "{what}: a lock file was left");
        if std::fs::symlink_metadata(&ring).unwrap().is_dir() {
            std::fs::remove_dir(&ring).unwrap();
        } else {
            std::fs::remove_file(&ring).unwrap();
        }
    }
    assert_eq!(
        std::fs::read(ring.with_extension("target")).unwrap(),
        b"elsewhere"
    );
}

/// A second feed on a live feed's ring exits 1 naming the holder, and changes nothing
/// of the ring (same file, size and mode); the first feed publishes all it should.
#[test]
fn a_live_feeds_ring_is_refused_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("r.ring");
    let cfg = dir.path().join("live.toml");
    let live_config = text(good(&ring).set("duration_s", 3.0).set("feed.wait", "block"));
    std::fs::write(&cfg, live_config).unwrap();
    let mut live = feed(&cfg, &dir.path().join("live"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !ring.exists() {
        assert!(
            started.elapsed().as_secs() < 20,
            "the first feed made no ring"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let identity = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.ino(), m.len(), m.mode())
    };
    let before = identity(&ring);
    let (code, stderr) = run_feed(dir.path(), &text(good(&ring).set("duration_s", 3.0)));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("is held by another running feed (pid "),
        "{stderr}"
    );
    assert_eq!(identity(&ring), before);
    assert!(live.wait().unwrap().success());
    let s: common::summary::FeedSummary =
        serde_json::from_slice(&std::fs::read(dir.path().join("live/feed_summary.json")).unwrap())
            .unwrap();
    assert!(s.published >= 4_497, "{}", s.published);
}

/// Slicing the history thread's work (`[cold]` in the config) changes when the work is
/// done, not what it does: a seeded run keeps exactly the same history (its digest) with
/// and without slices, and drops nothing.
#[test]
fn sliced_cold_work_keeps_the_history_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let run = |slice_us: u64| {
        let out = dir.path().join(format!("slice-{slice_us}"));
        let cfg = dir.path().join(format!("slice-{slice_us}.toml"));
        let t = text(
            good(&dir.path().join(format!("slice-{slice_us}.ring")))
                .set("duration_s", 0.5)
                .set("feed.wait", "block")
                .set("cold.slice_us", slice_us)
                .set("cold.pause_us", 10)
                .set("cold.poll_ms", 1),
        );
        std::fs::write(&cfg, t).unwrap();
        let ran = feed(&cfg, &out).output().unwrap();
        assert!(
            ran.status.success(),
            "{}",
            String::from_utf8_lossy(&ran.stderr)
        );
        let s: common::summary::FeedSummary =
            serde_json::from_slice(&std::fs::read(out.join("feed_summary.json")).unwrap()).unwrap();
        assert_eq!(s.history_dropped, 0);
        assert!(s.cold_threads["feed_history"].stretches > 0);
        (s.published, s.history_ticks, s.history_digest)
    };
    let whole = run(0);
    let sliced = run(1);
    assert!(whole.0 > 0);
    assert_eq!(whole, sliced);
}

/// Runs the feed on `edit` (its ring and out folder under `dir`, named `name`) with
/// `extra` arguments; returns its summary.
fn journaled_run(
    dir: &Path,
    name: &str,
    edit: Edit,
    extra: &[&str],
) -> common::summary::FeedSummary {
    let cfg = dir.join(format!("{name}.toml"));
    let out = dir.join(name);
    std::fs::write(
        &cfg,
        text(edit.set("ring.path", dir.join(format!("{name}.ring")))),
    )
    .unwrap();
    let ran = feed(&cfg, &out).args(extra).output().unwrap();
    assert!(
        ran.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&ran.stderr)
    );
    serde_json::from_slice(&std::fs::read(out.join("feed_summary.json")).unwrap()).unwrap()
}

fn journal_config(dir: &Path, journal: &Path) -> Edit {
    good(&dir.join("unused.ring"))
        .set("duration_s", 0.5)
        .set("feed.wait", "block")
        .set("feed.journal.dir", journal)
}

#[test]
fn a_restarted_feed_restores_its_history_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let first = journaled_run(
        dir.path(),
        "first",
        journal_config(dir.path(), &journal),
        &[],
    );
    let j = first.journal.as_ref().unwrap();
    assert_eq!((j.epoch, j.restored, j.unjournaled), (1, 0, 0));
    assert_eq!(
        j.journaled, first.published,
        "every published tick journaled"
    );
    let second = journaled_run(
        dir.path(),
        "second",
        journal_config(dir.path(), &journal),
        &[],
    );
    let j2 = second.journal.as_ref().unwrap();
    assert_eq!(j2.epoch, 2);
    assert_eq!(
        j2.restored, first.published,
        "the first run's ticks restored"
    );
    assert_eq!(
        second.history_ticks + second.history_evicted,
        first.published + second.published,
        "the history holds both runs"
    );
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(&journal), 0o700);
    for e in std::fs::read_dir(&journal).unwrap() {
        assert_eq!(mode(&e.unwrap().path()), 0o600);
    }
}

#[test]
fn replaying_a_journal_twice_publishes_the_same_ticks() {
    let dir = tempfile::tempdir().unwrap();
    let recorded = dir.path().join("recorded");
    let original = journaled_run(
        dir.path(),
        "original",
        journal_config(dir.path(), &recorded),
        &[],
    );
    let replay = |name: &str| {
        let again = dir.path().join(format!("{name}-journal"));
        journaled_run(
            dir.path(),
            name,
            journal_config(dir.path(), &again).set("seed", 999),
            &["--replay", recorded.to_str().unwrap(), "--speed", "4"],
        )
    };
    let (a, b) = (replay("replay-a"), replay("replay-b"));
    assert_eq!(a.published, original.published);
    assert_eq!(
        a.history_dropped + b.history_dropped + original.history_dropped,
        0
    );
    // Another seed in the config: the ticks are the recording's, not generated.
    assert_eq!(a.history_digest, original.history_digest);
    assert_eq!(a.history_digest, b.history_digest);
    assert_eq!(
        a.md_allocs.calls(),
        0,
        "the md thread allocated while replaying"
    );
}

#[test]
fn a_journal_path_at_someone_elses_file_exits_2_and_leaves_it() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    let other = journal.join("00000001-00000001.journal");
    std::fs::write(&other, b"not ours\n").unwrap();
    let plain = dir.path().join("plain.txt");
    std::fs::write(&plain, b"notes\n").unwrap();
    for (what, path) in [("a segment-named file", &journal), ("a plain file", &plain)] {
        let before = common::files::snapshot(path).unwrap();
        let (code, err) = run_feed(dir.path(), &text(journal_config(dir.path(), path)));
        assert_eq!(code, Some(2), "{what}: {err}");
        assert!(
            err.contains("bad.toml:") && err.contains("feed.journal.dir"),
            "{what}: {err}"
        );
        assert_eq!(
            err.trim().lines().filter(|l| l.contains("error")).count(),
            1,
            "{what}: {err}"
        );
        assert_eq!(
            common::files::snapshot(path).unwrap(),
            before,
            "{what}: left unchanged"
        );
    }
    assert_eq!(std::fs::read(&other).unwrap(), b"not ours\n");
}

#[test]
fn bad_replays_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ok.toml");
    std::fs::write(
        &cfg,
        text(good(&dir.path().join("r.ring")).set("duration_s", 0.5)),
    )
    .unwrap();
    let journal = dir.path().join("j");
    // A journal of other symbols.
    let other = text(
        journal_config(dir.path(), &journal)
            .set("symbols[0].name", "ZZZ")
            .set("ring.path", dir.path().join("o.ring")),
    );
    let ocfg = dir.path().join("other.toml");
    std::fs::write(&ocfg, other).unwrap();
    assert!(feed(&ocfg, &dir.path().join("o"))
        .output()
        .unwrap()
        .status
        .success());
    for (what, args) in [
        ("missing folder", vec!["--replay", "/nonexistent/journal"]),
        ("other symbols", vec!["--replay", journal.to_str().unwrap()]),
        (
            "no such epoch",
            vec!["--replay", journal.to_str().unwrap(), "--epoch", "7"],
        ),
        (
            "zero speed",
            vec!["--replay", journal.to_str().unwrap(), "--speed", "0"],
        ),
        ("epoch without replay", vec!["--epoch", "1"]),
    ] {
        let out = feed(&cfg, &dir.path().join("out"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
}

#[test]
fn the_history_service_answers_and_survives_bad_clients() {
    use common::service::{encode_request, request, Request};
    use common::tick::TickKind;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("feed.sock");
    let cfg = dir.path().join("svc.toml");
    let config = text(
        good(&dir.path().join("svc.ring"))
            .set("duration_s", 3.0)
            .set("feed.wait", "block")
            .set("feed.service.socket", &socket)
            .set("feed.service.client_timeout_ms", 300),
    );
    std::fs::write(&cfg, config).unwrap();
    let child = serving_feed(&cfg, &dir.path().join("out"), &socket);
    let t = Duration::from_secs(5);
    // A range: every sequence number from 1 to 99, in order.
    let a = request(&socket, &Request::Range { from: 1, to: 100 }, t).unwrap();
    assert_eq!(
        a.ticks.iter().map(|t| t.seq).collect::<Vec<_>>(),
        (1..100).collect::<Vec<_>>()
    );
    assert_eq!((a.items, a.first_held), (99, 1));
    // A snapshot: symbol by symbol, the last 10 ticks, after the symbol's latest quote
    // and latest trade where those are older.
    let s = request(&socket, &Request::Snapshot { depth: 10 }, t).unwrap();
    let n0 = s.ticks.iter().take_while(|t| t.symbol == 0).count();
    assert!(
        s.ticks[n0..].iter().all(|t| t.symbol == 1),
        "grouped by symbol"
    );
    for ticks in [&s.ticks[..n0], &s.ticks[n0..]] {
        assert!((10..=12).contains(&ticks.len()), "{} ticks", ticks.len());
        let (older, last) = ticks.split_at(ticks.len() - 10);
        assert!(
            ticks.windows(2).all(|w| w[0].seq < w[1].seq),
            "in sequence order"
        );
        for o in older {
            assert!(
                last.iter().all(|t| t.kind != o.kind),
                "{:?} is among the last 10",
                o.kind
            );
        }
        assert!(
            ticks.iter().any(|t| t.kind == TickKind::Trade),
            "a trade in every snapshot"
        );
    }
    // Garbage: an error frame, then the connection closes.
    let mut g = UnixStream::connect(&socket).unwrap();
    g.set_read_timeout(Some(t)).unwrap();
    g.write_all(&[2, 0, 0, 0, 9, 9]).unwrap(); // version 9
    let mut reply = Vec::new();
    g.read_to_end(&mut reply).unwrap();
    let (frame, _) = common::service::decode_response(&reply).unwrap().unwrap();
    assert!(
        matches!(frame, common::service::Response::Error { code: 3, .. }),
        "{frame:?}"
    );
    // A client that sends half a frame and stalls is closed after the timeout.
    let mut stall = UnixStream::connect(&socket).unwrap();
    let mut half = Vec::new();
    encode_request(&Request::Snapshot { depth: 5 }, &mut half);
    stall.write_all(&half[..5]).unwrap();
    stall.set_read_timeout(Some(t)).unwrap();
    let mut rest = Vec::new();
    let _ = stall.read_to_end(&mut rest);
    assert!(!rest.is_empty(), "an error frame before the close");
    // 100 clients at once: 16 served, the others told the feed is busy.
    let many: Vec<UnixStream> = (0..100)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let after = request(&socket, &Request::Range { from: 1, to: 10 }, t);
    drop(many);
    assert!(
        after.is_err() || after.unwrap().ticks.len() == 9,
        "busy or served, never wrong"
    );
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sum: common::summary::FeedSummary =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/feed_summary.json")).unwrap())
            .unwrap();
    let svc = sum.service.unwrap();
    assert!(
        svc.requests >= 2 && svc.errors >= 1 && svc.closed_stalled >= 1,
        "{svc:?}"
    );
    assert!(svc.refused_busy >= 84, "{svc:?}");
    assert_eq!(sum.md_allocs.calls(), 0, "the md thread allocated");
    assert!(
        (4490..=4500).contains(&sum.published),
        "the feed kept its rate: {}",
        sum.published
    );
    assert!(!socket.exists(), "the socket is removed at the end");
}

#[test]
fn a_service_socket_path_at_someone_elses_file_exits_2_and_leaves_it() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("notes.sock");
    std::fs::write(&plain, b"mine\n").unwrap();
    // A socket without the marker (someone else's, or not a feed's).
    let other = dir.path().join("other.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&other).unwrap();
    for path in [&plain, &other] {
        let before = common::files::snapshot(path).unwrap();
        let t = text(
            good(&dir.path().join("s.ring"))
                .set("duration_s", 0.5)
                .set("feed.service.socket", path),
        );
        let (code, err) = run_feed(dir.path(), &t);
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains("feed.service.socket") && err.contains("left as it is"),
            "{err}"
        );
        assert_eq!(common::files::snapshot(path).unwrap(), before);
        assert!(
            !dir.path().join("s.ring").exists() && !err.contains("publishing"),
            "the refused service comes before the ring: {err}"
        );
    }
}

/// A port on 127.0.0.1 nobody listens on (bound to port 0 and let go).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The feed's summary in `out`.
fn summary(out: &Path) -> common::summary::FeedSummary {
    serde_json::from_slice(&std::fs::read(out.join("feed_summary.json")).unwrap()).unwrap()
}

#[test]
fn the_history_service_answers_over_tcp_as_on_its_socket() {
    use common::service::{request, request_at, Endpoint, Request};
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("feed.sock");
    let listen = format!("127.0.0.1:{}", free_port());
    let cfg = dir.path().join("tcp.toml");
    let config = text(
        good(&dir.path().join("tcp.ring"))
            .set("duration_s", 2.0)
            .set("feed.wait", "block")
            .set("feed.service.socket", &socket)
            .set("feed.service.listen", listen.as_str()),
    );
    std::fs::write(&cfg, config).unwrap();
    let child = serving_feed(&cfg, &dir.path().join("out"), &socket);
    let t = Duration::from_secs(5);
    let tcp: Endpoint = format!("tcp://{listen}").parse().unwrap();
    assert_eq!(tcp, Endpoint::Tcp(listen.parse().unwrap()));
    // A range over TCP: every sequence number from 1 to 199, in order, the same ticks
    // the socket returns for it.
    let range = Request::Range { from: 1, to: 200 };
    let a = request_at(&tcp, &range, t).unwrap();
    assert_eq!(
        a.ticks.iter().map(|t| t.seq).collect::<Vec<_>>(),
        (1..200).collect::<Vec<_>>()
    );
    assert_eq!((a.items, a.first_held), (199, 1));
    let u = request(&socket, &range, t).unwrap();
    assert_eq!(u.ticks, a.ticks, "the socket's answer is the same");
    assert_eq!(
        (u.items, u.first_held, u.epoch),
        (a.items, a.first_held, a.epoch)
    );
    assert_eq!(u.producer, a.producer, "the same feed answered");
    assert_ne!(a.producer, 0);
    // A snapshot over TCP: symbol by symbol, each in sequence order, ending at most at
    // the newest tick held, from the same feed.
    let s = request_at(&tcp, &Request::Snapshot { depth: 10 }, t).unwrap();
    let n0 = s.ticks.iter().take_while(|t| t.symbol == 0).count();
    assert!(n0 >= 10, "{n0} ticks of symbol 0");
    assert!(
        s.ticks[n0..].iter().all(|t| t.symbol == 1),
        "grouped by symbol"
    );
    for ticks in [&s.ticks[..n0], &s.ticks[n0..]] {
        assert!((10..=12).contains(&ticks.len()), "{} ticks", ticks.len());
        assert!(
            ticks.windows(2).all(|w| w[0].seq < w[1].seq),
            "in sequence order"
        );
        assert!(ticks.iter().all(|t| t.seq <= s.newest));
    }
    assert_eq!(s.producer, a.producer);
    assert!(!s.bars.is_empty(), "the recent bars too");
    // The snapshot's ticks are the ticks of those sequence numbers, as the socket has
    // them.
    let lo = s.ticks.iter().map(|t| t.seq).min().unwrap();
    let hi = s.ticks.iter().map(|t| t.seq).max().unwrap();
    let back = request(
        &socket,
        &Request::Range {
            from: lo,
            to: hi + 1,
        },
        t,
    )
    .unwrap();
    for tick in &s.ticks {
        assert!(back.ticks.contains(tick), "{tick:?} as the socket has it");
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "history service on {} and tcp {listen}",
            socket.display()
        )),
        "{err}"
    );
    let sum = summary(&dir.path().join("out"));
    let svc = sum.service.unwrap();
    assert_eq!(svc.listen, listen);
    assert_eq!(
        (svc.accepted, svc.requests, svc.answered, svc.errors),
        (4, 4, 4, 0),
        "two requests on each kind of connection, all answered: {svc:?}"
    );
    assert_eq!(sum.md_allocs.calls(), 0, "the md thread allocated");
    assert!(!socket.exists(), "the socket is removed at the end");
}

/// Port 0: the system chooses one, and the summary names it.
#[test]
fn a_service_listening_on_port_0_reports_the_port_bound() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("p0.sock");
    let t = text(
        good(&dir.path().join("p0.ring"))
            .set("duration_s", 0.3)
            .set("warmup_s", 0.05)
            .set("feed.service.socket", &socket)
            .set("feed.service.listen", "127.0.0.1:0"),
    );
    let (code, err) = run_feed(dir.path(), &t);
    assert_eq!(code, Some(0), "{err}");
    let listen = summary(&dir.path().join("out")).service.unwrap().listen;
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0, "{listen}");
    assert!(err.contains(&format!("and tcp {listen}")), "{err}");
}

/// A `feed.service.listen` that is not `IP:PORT`, or not an address of this host:
/// exit 2, one message at the key's line and column, and no socket made.
#[test]
fn a_bad_service_listen_address_exits_2_at_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("bad.sock");
    for (listen, says) in [
        ("not-an-address", "\"not-an-address\" is not IP:PORT"),
        ("feed.example:7070", "is not IP:PORT"),
        ("10.77.0.1", "is not IP:PORT"),
        ("127.0.0.1:99999", "is not IP:PORT"),
        // TEST-NET-1 (RFC 5737): no host has it.
        ("192.0.2.1:7070", "cannot listen on 192.0.2.1:7070"),
    ] {
        let t = text(
            good(&dir.path().join("bad.ring"))
                .set("duration_s", 0.5)
                .set("feed.service.socket", &socket)
                .set("feed.service.listen", listen),
        );
        let line = t.lines().position(|l| l.starts_with("listen = ")).unwrap() + 1;
        // Parse errors point at the value; those found at bind time at the key.
        let column = if listen.starts_with("192.") { 1 } else { 10 };
        let (code, err) = run_feed(dir.path(), &t);
        assert_eq!(code, Some(2), "{listen}: {err}");
        let at = format!("bad.toml:{line}:{column}: feed.service.listen: ");
        assert!(err.contains(&at) && err.contains(says), "{listen}: {err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{listen}: one error line: {err}");
        assert!(
            errors[0].contains(&at),
            "{listen}: one line says it all: {err}"
        );
        assert!(!err.contains("panicked"), "{listen}: {err}");
        assert!(!socket.exists(), "{listen}: no socket made");
    }
}

/// A `feed.service.listen` address another listener holds: a runtime error (exit 1)
/// naming it, and no socket made.
#[test]
fn a_service_listen_address_in_use_exits_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("busy.sock");
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = held.local_addr().unwrap().to_string();
    let t = text(
        good(&dir.path().join("busy.ring"))
            .set("duration_s", 0.5)
            .set("feed.service.socket", &socket)
            .set("feed.service.listen", listen.as_str()),
    );
    let (code, err) = run_feed(dir.path(), &t);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "cannot listen on tcp {listen} (feed.service.listen)"
        )),
        "{err}"
    );
    assert!(!socket.exists(), "no socket made");
    assert!(
        !dir.path().join("busy.sock.owner").exists(),
        "no marker made"
    );
}

/// A feed built without the `aeron` feature refuses `[net]`: exit 2, one message located
/// at the section, and no ring file made.
#[cfg(not(feature = "aeron"))]
#[test]
fn net_without_the_aeron_feature_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("r.ring");
    let t = format!(
        "{}\n[net]\nendpoint = \"127.0.0.1:40456\"\n",
        text(good(&ring))
    );
    let (code, err) = run_feed(dir.path(), &t);
    assert_eq!(code, Some(2), "{err}");
    let line = t.lines().position(|l| l == "[net]").unwrap() + 1;
    assert!(
        err.contains(&format!(
            "bad.toml:{line}:2: net: this feed is built without Aeron"
        )),
        "{err}"
    );
    assert!(!ring.exists());
}
