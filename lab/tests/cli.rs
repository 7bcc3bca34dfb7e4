//! Integration tests of the `lab` binary, one test binary for all of them.
//!
//! - `config`: bad input exits with code 2 and names file, line and key.
//! - `plumbing`: `lab run` against small fake `feed`/`engine`/`pipeline` shell scripts
//!   (`--bin-dir`): the child contract, relayed output, merged summary, failures and
//!   signals. These need no real binaries and finish in about a second.
//! - `end_to_end`: `lab run` with the real feed and engine (and `--single-process` with
//!   the real pipeline), built here with cargo (binaries of other packages have no
//!   `CARGO_BIN_EXE_*`).
//! - `variants`: `lab run --scratch/--levels/--engine-alloc/--feed-alloc` and
//!   `--single-process/--pipeline-alloc` against the fakes: the derived `config.toml`,
//!   binary selection, bad values.
//! - `compare`: bad matrix files (exit 2 naming file, line, column and key), and tiny
//!   `lab compare` runs against the fakes (interleaving, failures recorded, report folder,
//!   one-process variants).
//! - `bench`: tiny `lab bench transport` and `lab bench jitter` runs that check the JSON
//!   shape and the counts (never the numbers).
//!
//! Every run of `lab` is under a watchdog: it gets SIGTERM (and later SIGKILL) after a
//! timeout, so a hang fails the test instead of blocking CI. No test asserts a latency.

use common::config::edit::Edit;
use common::config::DEFAULT_TOML;
use common::os::{send_signal, Signal};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const LAB: &str = env!("CARGO_BIN_EXE_lab");
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Tests that spin on the hot cores take this lock, so they do not fight each other.
static HOT_CORES: Mutex<()> = Mutex::new(());

/// What a finished `lab` run left.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl std::fmt::Debug for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` to completion under a watchdog of `limit`; `during` runs once the child
/// has started, with its pid.
fn run_watched(mut cmd: Command, limit: Duration, during: impl FnOnce(u32)) -> Ran {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lab");
    let collect = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = collect(Box::new(child.stdout.take().unwrap()));
    let err = collect(Box::new(child.stderr.take().unwrap()));
    during(child.id());
    let started = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > limit && !timed_out {
            // SIGTERM first, so that lab can stop its own children.
            timed_out = true;
            let _ = send_signal(child.id(), Signal::Term);
        }
        if started.elapsed() > limit + Duration::from_secs(15) {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let ran = Ran {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    assert!(
        !timed_out,
        "watchdog: lab ran longer than {limit:?}\n{ran:?}"
    );
    ran
}

fn lab(args: &[&str]) -> Command {
    let mut c = Command::new(LAB);
    c.args(args);
    c
}

/// The cores this test may use, if there are two.
fn two_cores() -> Option<(usize, usize)> {
    let cores = common::cores::allowed_cores();
    match cores.as_slice() {
        [a, b, ..] => Some((*a, *b)),
        _ => {
            eprintln!("skipped: needs two allowed cores, have {cores:?}");
            None
        }
    }
}

fn shm_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// `configs/default.toml` with the test's cores, ring path and output folder, then
/// `edit` applied; returns the TOML text.
fn config_text(
    cores: (usize, usize),
    ring: &Path,
    out: &Path,
    edit: impl FnOnce(Edit) -> Edit,
) -> String {
    let base = Edit::new(DEFAULT_TOML)
        .set("cores.feed_md", cores.0)
        .set("cores.engine_hot", cores.1)
        .set("ring.path", ring)
        .set("log.out_dir", out);
    edit(base).finish().unwrap()
}

/// A small run: 2 symbols at 1000 ticks/s, 3 s, 0.5 s warm-up, `spin_yield` on both
/// sides so that a 2-core CI box is not starved.
fn small_run(e: Edit) -> Edit {
    e.set("duration_s", 3.0)
        .set("warmup_s", 0.5)
        .set("feed.wait", "spin_yield")
        .set("engine.wait", "spin_yield")
        .truncate("symbols", 2)
        .set("symbols[0].rate_per_s", 1000)
        .set("symbols[1].rate_per_s", 1000)
}

mod config {
    use super::*;

    #[test]
    fn bad_config_exits_2_naming_file_line_and_key() {
        let Some(cores) = two_cores() else { return };
        let dir = tempfile::tempdir().unwrap();
        let text = config_text(cores, &dir.path().join("r.ring"), dir.path(), |e| {
            e.set("symbols[0].rate_per_s", 0)
        });
        let line = text
            .lines()
            .position(|l| l.trim_start().starts_with("rate_per_s = 0"))
            .expect("rate_per_s line")
            + 1;
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, &text).unwrap();
        let out = dir.path().join("out");
        let ran = run_watched(
            lab(&[
                "run",
                "--config",
                path.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ]),
            Duration::from_secs(30),
            |_| {},
        );
        assert_eq!(ran.code(), Some(2), "{ran:?}");
        let expected = format!("error: {}:{line}:", path.display());
        assert!(
            ran.stderr.contains(&expected),
            "wanted {expected:?}\n{ran:?}"
        );
        assert!(ran.stderr.contains("symbols[0].rate_per_s"), "{ran:?}");
        assert!(!out.exists(), "nothing is created for a bad config");
    }

    #[test]
    fn missing_config_and_bad_flags_exit_2() {
        let ran = run_watched(
            lab(&["run", "--config", "/no/such/config.toml"]),
            Duration::from_secs(30),
            |_| {},
        );
        assert_eq!(ran.code(), Some(2), "{ran:?}");
        assert!(ran.stderr.contains("/no/such/config.toml"), "{ran:?}");
        let ran = run_watched(
            lab(&["run", "--duration", "-3"]),
            Duration::from_secs(30),
            |_| {},
        );
        assert_eq!(ran.code(), Some(2), "{ran:?}");
        let ran = run_watched(
            lab(&["bench", "transport", "--samples", "x"]),
            Duration::from_secs(30),
            |_| {},
        );
        assert_eq!(ran.code(), Some(2), "{ran:?}");
    }

    #[test]
    fn bench_on_one_core_exits_2() {
        let Some(cores) = two_cores() else { return };
        let dir = tempfile::tempdir().unwrap();
        let text = config_text(
            (cores.0, cores.0),
            &dir.path().join("r.ring"),
            dir.path(),
            |e| e,
        );
        let path = dir.path().join("same.toml");
        std::fs::write(&path, text).unwrap();
        let ran = run_watched(
            lab(&[
                "bench",
                "transport",
                "--config",
                path.to_str().unwrap(),
                "--samples",
                "10",
            ]),
            Duration::from_secs(30),
            |_| {},
        );
        assert_eq!(ran.code(), Some(2), "{ran:?}");
        assert!(ran.stderr.contains("cores.engine_hot"), "{ran:?}");
    }
}

mod plumbing {
    //! Fake `feed` and `engine`: shell scripts that follow the contract (flags, output
    //! lines, summary files) and misbehave on request through environment variables.
    use super::*;
    use common::manifest::{AllocatorInfo, Manifest};
    use common::summary::{EngineSummary, FeedSummary};

    const FAKE: &str = r#"#!/bin/sh
# Fake NAME: records its arguments, prints a line on each stream, copies its summary.
name=NAME
args="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    *) shift ;;
  esac
done
echo "$$" > "$out/$name.pid"
echo "$args" > "$out/$name.args"
if [ "$(basename "$0")" = "$FAKE_FAIL_BIN" ]; then echo "failing on purpose" >&2; exit 4; fi
echo "$name stdout line"
echo "$name stderr line" >&2
if [ -n "$FAKE_WAIT_FOR_TERM" ]; then
  trap 'cp "$FAKE_DIR/${name}_summary.json" "$out/"; exit 0' TERM
  while :; do sleep 0.02; done
fi
cp "$FAKE_DIR/${name}_summary.json" "$out/"
[ "$name" = engine ] && echo '#written by hft-alloc-lab (fake engine)' > "$out/engine.hlog"
if [ "$name" = feed ]; then exit "${FAKE_FEED_EXIT:-0}"; fi
exit 0
"#;

    /// Fake pipeline: one process writing both sides' files, each summary naming the
    /// allocator its binary's name says (`pipeline` is the hybrid).
    const FAKE_PIPELINE: &str = r#"#!/bin/sh
args="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    *) shift ;;
  esac
done
echo "$$" > "$out/pipeline.pid"
echo "$args" > "$out/pipeline.args"
if [ "$(basename "$0")" = "$FAKE_FAIL_BIN" ]; then echo "failing on purpose" >&2; exit 4; fi
alloc=$(basename "$0" | sed -e 's/^pipeline-//' -e 's/^pipeline$/hybrid/')
echo "pipeline stdout line"
echo "pipeline stderr line" >&2
for side in feed engine; do
  sed -e "s/\"name\": \"[a-z]*\"/\"name\": \"$alloc\"/" "$FAKE_DIR/${side}_summary.json" > "$out/${side}_summary.json"
done
echo '#written by hft-alloc-lab (fake pipeline)' > "$out/engine.hlog"
exit 0
"#;

    pub(super) struct Fake {
        pub(super) dir: tempfile::TempDir,
        pub(super) config: PathBuf,
        pub(super) out: PathBuf,
    }

    pub(super) fn fake() -> Option<Fake> {
        let cores = two_cores()?;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        // Every variant binary: `feed`, `feed-system`, …, `engine-tcmalloc`.
        for name in ["feed", "engine"] {
            for suffix in ["", "-system", "-jemalloc", "-mimalloc", "-tcmalloc"] {
                let path = bin.join(format!("{name}{suffix}"));
                std::fs::write(&path, FAKE.replace("NAME", name)).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        // Every pipeline binary: `pipeline`, `pipeline-system`, …
        for suffix in ["", "-system", "-jemalloc", "-mimalloc"] {
            let path = bin.join(format!("pipeline{suffix}"));
            std::fs::write(&path, FAKE_PIPELINE).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let feed = FeedSummary {
            published: 3000,
            offered_per_s: 2000.0,
            achieved_per_s: 1999.0,
            history_ticks: 3000,
            manifest: Manifest {
                allocator: AllocatorInfo {
                    name: "jemalloc".into(),
                    version: "5".into(),
                },
                ..Manifest::default()
            },
            ..FeedSummary::default()
        };
        let engine = EngineSummary {
            received: 3000,
            scratch: "arena".into(),
            latency_ns: [(
                "hop".to_string(),
                common::latency::Percentiles {
                    count: 5,
                    p50: 80,
                    ..Default::default()
                },
            )]
            .into(),
            manifest: Manifest {
                cpu_model: "Fake CPU".into(),
                clock_source: "tsc".into(),
                allocator: AllocatorInfo {
                    name: "mimalloc".into(),
                    version: "2".into(),
                },
                ..Manifest::default()
            },
            ..EngineSummary::default()
        };
        common::files::write_json(&dir.path().join("feed_summary.json"), &feed).unwrap();
        common::files::write_json(&dir.path().join("engine_summary.json"), &engine).unwrap();
        let out = dir.path().join("out");
        let text = config_text(cores, &dir.path().join("r.ring"), &out, |e| e);
        let config = dir.path().join("fake.toml");
        std::fs::write(&config, text).unwrap();
        Some(Fake { dir, config, out })
    }

    impl Fake {
        pub(super) fn cmd(&self, extra: &[&str]) -> Command {
            self.cmd_with_bins(&self.dir.path().join("bin"), extra)
        }

        fn cmd_with_bins(&self, bin_dir: &Path, extra: &[&str]) -> Command {
            let mut c = lab(&[
                "run",
                "--config",
                self.config.to_str().unwrap(),
                "--out",
                self.out.to_str().unwrap(),
            ]);
            // The fakes need no noise probe (it spins both cores for a second).
            c.arg("--bin-dir").arg(bin_dir).args(["--noise", "0"]);
            c.args(extra);
            c.env("FAKE_DIR", self.dir.path());
            c
        }

        /// Asserts that the fake `name` is no longer running.
        fn assert_gone(&self, name: &str) {
            let pid = std::fs::read_to_string(self.out.join(format!("{name}.pid"))).unwrap();
            let cmdline = std::fs::read_to_string(format!("/proc/{}/cmdline", pid.trim()))
                .unwrap_or_default();
            assert!(
                !cmdline.contains(name),
                "{name} (pid {}) still running",
                pid.trim()
            );
        }
    }

    /// An output folder that cannot be written to is refused (exit 2) before anything
    /// starts. sysfs refuses new files to everyone, root included.
    #[test]
    fn unwritable_out_exits_2_before_starting_anything() {
        let Some(f) = fake() else { return };
        let config = f.config.to_str().unwrap();
        let mut cmd = lab(&["run", "--config", config, "--out", "/sys"]);
        cmd.arg("--bin-dir").arg(f.dir.path().join("bin"));
        let ran = run_watched(cmd, Duration::from_secs(30), |_| {});
        assert_eq!(ran.code(), Some(2), "{ran:?}");
        let expected = "error: output folder /sys is not writable: ";
        assert!(ran.stderr.contains(expected), "{ran:?}");
        assert!(!ran.stdout.contains("[feed]"), "nothing started: {ran:?}");
    }

    #[test]
    fn merges_summaries_and_relays_output() {
        let Some(f) = fake() else { return };
        let ran = run_watched(
            f.cmd(&["--duration", "1.5"]),
            Duration::from_secs(60),
            |_| {},
        );
        assert_eq!(ran.code(), Some(0), "{ran:?}");
        assert!(
            ran.stdout.contains("[feed]   feed stdout line\n"),
            "{ran:?}"
        );
        assert!(
            ran.stdout.contains("[engine] engine stdout line\n"),
            "{ran:?}"
        );
        assert!(
            ran.stderr.contains("[feed]   feed stderr line\n"),
            "{ran:?}"
        );
        assert!(
            ran.stderr.contains("[engine] engine stderr line\n"),
            "{ran:?}"
        );
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(f.out.join("summary.json")).unwrap()).unwrap();
        assert_eq!(v["ticks"]["published"], 3000);
        assert_eq!(v["ticks"]["received"], 3000);
        assert_eq!(v["feed"]["allocator"]["name"], "jemalloc");
        assert_eq!(v["engine"]["allocator"]["name"], "mimalloc");
        assert!(
            ran.stdout.contains("published == received + missed: yes"),
            "{ran:?}"
        );
        assert!(
            ran.stdout
                .contains("allocators  feed: jemalloc 5, engine: mimalloc 2"),
            "{ran:?}"
        );
        assert!(
            ran.stdout
                .contains(&format!("{}", f.out.join("engine.hlog").display())),
            "{ran:?}"
        );
    }

    #[test]
    fn failing_feed_exits_1_and_stops_the_engine() {
        let Some(f) = fake() else { return };
        let mut cmd = f.cmd(&[]);
        cmd.env("FAKE_FEED_EXIT", "3");
        let ran = run_watched(cmd, Duration::from_secs(60), |_| {});
        assert_eq!(ran.code(), Some(1), "{ran:?}");
        assert!(
            ran.stderr.contains("error: feed exited with status 3"),
            "{ran:?}"
        );
        f.assert_gone("feed");
        f.assert_gone("engine");
    }

    #[test]
    fn missing_binaries_are_named() {
        let Some(f) = fake() else { return };
        let cmd = f.cmd_with_bins(&f.dir.path().join("nowhere"), &[]);
        let ran = run_watched(cmd, Duration::from_secs(30), |_| {});
        assert_eq!(ran.code(), Some(1), "{ran:?}");
        assert!(ran.stderr.contains("cargo build --release"), "{ran:?}");
    }

    #[test]
    fn sigterm_is_forwarded_and_nothing_is_left_running() {
        let Some(f) = fake() else { return };
        let mut cmd = f.cmd(&[]);
        cmd.env("FAKE_WAIT_FOR_TERM", "1");
        let out = f.out.clone();
        let ran = run_watched(cmd, Duration::from_secs(60), |pid| {
            // Wait until both fakes run, then stop lab as a user would.
            let until = Instant::now() + Duration::from_secs(20);
            while !(out.join("feed.pid").exists() && out.join("engine.pid").exists())
                && Instant::now() < until
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(100));
            send_signal(pid, Signal::Term).unwrap();
        });
        assert_eq!(ran.code(), Some(1), "{ran:?}");
        assert!(ran.stderr.contains("interrupted by SIGTERM"), "{ran:?}");
        // The children stopped cleanly on the forwarded SIGTERM and wrote their summaries.
        assert!(f.out.join("summary.json").exists(), "{ran:?}");
        f.assert_gone("feed");
        f.assert_gone("engine");
    }
}

mod variants {
    //! `lab run` variant flags: the derived `config.toml`, binary selection, bad values.
    use super::plumbing::fake;
    use super::*;

    #[test]
    fn scratch_and_levels_write_a_derived_config() {
        let Some(f) = fake() else { return };
        // A comment on the edited line, and one elsewhere, must survive.
        let text = std::fs::read_to_string(&f.config).unwrap();
        assert!(text.contains("scratch = \"arena\"\n"), "{text}");
        let text = format!("# my run\n{text}").replace(
            "scratch = \"arena\"\n",
            "scratch = \"arena\"   # what it was\n",
        );
        std::fs::write(&f.config, &text).unwrap();
        let ran = run_watched(
            f.cmd(&["--scratch", "pool", "--levels", "2"]),
            Duration::from_secs(60),
            |_| {},
        );
        assert_eq!(ran.code(), Some(0), "{ran:?}");
        let recorded = std::fs::read_to_string(f.out.join("config.toml")).unwrap();
        let derived = after_mark(&recorded);
        let t: toml::Table = derived.parse().unwrap();
        assert_eq!(t["engine"]["scratch"].as_str(), Some("pool"), "{derived}");
        assert_eq!(t["engine"]["levels"].as_integer(), Some(2), "{derived}");
        assert!(derived.starts_with("# my run\n"), "{derived}");
        assert!(
            derived.contains("scratch = \"pool\"   # what it was"),
            "{derived}"
        );
        // Both children read the derived copy.
        for name in ["feed", "engine"] {
            let args = std::fs::read_to_string(f.out.join(format!("{name}.args"))).unwrap();
            let expected = format!("--config {}", f.out.join("config.toml").display());
            assert!(args.contains(&expected), "{name}: {args}");
        }
        // The original is untouched.
        assert_eq!(std::fs::read_to_string(&f.config).unwrap(), text);
    }

    #[test]
    fn without_overrides_the_config_is_recorded_verbatim() {
        let Some(f) = fake() else { return };
        let ran = run_watched(f.cmd(&[]), Duration::from_secs(60), |_| {});
        assert_eq!(ran.code(), Some(0), "{ran:?}");
        assert_eq!(
            after_mark(&std::fs::read_to_string(f.out.join("config.toml")).unwrap()),
            std::fs::read_to_string(&f.config).unwrap()
        );
    }

    /// A recorded configuration without its first line, which must be the project's
    /// mark naming the file it was copied from.
    fn after_mark(recorded: &str) -> &str {
        let (first, rest) = recorded.split_once('\n').unwrap();
        assert!(
            first.starts_with("# written by hft-alloc-lab "),
            "{recorded}"
        );
        assert!(
            first.contains("the configuration as run, from "),
            "{recorded}"
        );
        rest
    }

    #[test]
    fn allocator_flags_pick_the_binaries() {
        let Some(f) = fake() else { return };
        let ran = run_watched(
            f.cmd(&["--engine-alloc", "tcmalloc", "--feed-alloc", "system"]),
            Duration::from_secs(60),
            |_| {},
        );
        assert_eq!(ran.code(), Some(0), "{ran:?}");
        assert!(ran.stderr.contains("/bin/engine-tcmalloc pid"), "{ran:?}");
        assert!(ran.stderr.contains("/bin/feed-system pid"), "{ran:?}");
        std::fs::remove_file(f.dir.path().join("bin/engine-jemalloc")).unwrap();
        let ran = run_watched(
            f.cmd(&["--engine-alloc", "jemalloc"]),
            Duration::from_secs(30),
            |_| {},
        );
        assert_eq!(ran.code(), Some(1), "{ran:?}");
        assert!(
            ran.stderr.contains("no `engine-jemalloc` binary"),
            "{ran:?}"
        );
    }

    #[test]
    fn single_process_runs_one_pipeline() {
        let Some(f) = fake() else { return };
        let ran = run_watched(
            f.cmd(&["--single-process", "--duration", "1.5"]),
            Duration::from_secs(60),
            |_| {},
        );
        assert_eq!(ran.code(), Some(0), "{ran:?}");
        assert!(
            ran.stdout.contains("[pipeline] pipeline stdout line\n"),
            "{ran:?}"
        );
        assert!(
            ran.stderr.contains("[pipeline] pipeline stderr line\n"),
            "{ran:?}"
        );
        assert!(ran.stderr.contains("one process: pipeline "), "{ran:?}");
        assert!(ran.stderr.contains("/bin/pipeline pid"), "{ran:?}");
        // One child, with the contract of the two: the recorded config, the folder, the
        // duration.
        assert!(!f.out.join("feed.pid").exists() && !f.out.join("engine.pid").exists());
        let args = std::fs::read_to_string(f.out.join("pipeline.args")).unwrap();
        let expected = format!(
            "--config {} --out {} --duration 1.5",
            f.out.join("config.toml").display(),
            f.out.display()
        );
        assert_eq!(args.trim(), expected);
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(f.out.join("summary.json")).unwrap()).unwrap();
        assert_eq!(v["ticks"]["published"], 3000);
        assert_eq!(v["feed"]["allocator"]["name"], "hybrid");
        assert_eq!(v["engine"]["allocator"]["name"], "hybrid");
        assert!(
            ran.stdout.contains(
                "allocators  one process (pipeline): hybrid 2, for the feed's and the engine's threads"
            ),
            "{ran:?}"
        );
        assert!(!ran.stderr.contains("warning"), "{ran:?}");
        // --pipeline-alloc picks the binary.
        let ran = run_watched(
            f.cmd(&["--single-process", "--pipeline-alloc", "jemalloc"]),
            Duration::from_secs(60),
            |_| {},
        );
        assert_eq!(ran.code(), Some(0), "{ran:?}");
        assert!(ran.stderr.contains("/bin/pipeline-jemalloc pid"), "{ran:?}");
        assert!(
            ran.stdout
                .contains("allocators  one process (pipeline-jemalloc): jemalloc 2"),
            "{ran:?}"
        );
        // A missing pipeline binary is named, with how to build it.
        std::fs::remove_file(f.dir.path().join("bin/pipeline-system")).unwrap();
        let ran = run_watched(
            f.cmd(&["--single-process", "--pipeline-alloc", "system"]),
            Duration::from_secs(30),
            |_| {},
        );
        assert_eq!(ran.code(), Some(1), "{ran:?}");
        assert!(
            ran.stderr.contains("no `pipeline-system` binary")
                && ran.stderr.contains("cargo build --release"),
            "{ran:?}"
        );
    }

    #[test]
    fn single_process_refuses_what_does_not_apply() {
        let Some(f) = fake() else { return };
        let ran = run_watched(
            f.cmd(&["--single-process", "--engines", "2"]),
            Duration::from_secs(30),
            |_| {},
        );
        assert_eq!(ran.code(), Some(2), "{ran:?}");
        assert!(
            ran.stderr
                .contains("error: --engines 2 with --single-process: the pipeline runs one engine"),
            "{ran:?}"
        );
        assert!(!f.out.exists(), "nothing is created for bad input");
        for bad in [
            &["--single-process", "--engine-alloc", "system"][..],
            &["--single-process", "--feed-alloc", "system"],
            &["--pipeline-alloc", "system"],
        ] {
            let ran = run_watched(f.cmd(bad), Duration::from_secs(30), |_| {});
            assert_eq!(ran.code(), Some(2), "{bad:?}: {ran:?}");
            assert!(!f.out.exists(), "{bad:?}: nothing is created for bad input");
        }
    }

    #[test]
    fn bad_levels_exit_2_naming_the_key() {
        let Some(f) = fake() else { return };
        let ran = run_watched(f.cmd(&["--levels", "17"]), Duration::from_secs(30), |_| {});
        assert_eq!(ran.code(), Some(2), "{ran:?}");
        assert!(
            ran.stderr.contains(&format!(
                "error: {} with --levels 17: engine.levels: must be between 1 and 16, got 17",
                f.config.display()
            )),
            "{ran:?}"
        );
        assert!(!f.out.exists(), "nothing is created for bad input");
        let ran = run_watched(
            f.cmd(&["--scratch", "stack"]),
            Duration::from_secs(30),
            |_| {},
        );
        assert_eq!(ran.code(), Some(2), "{ran:?}");
    }
}

mod compare {
    //! `lab compare`: bad matrix files (exit 2, file:line:column: key), and a small
    //! comparison against the fake binaries (no real runs, about a second).
    use super::plumbing::fake;
    use super::*;

    /// Writes `text` as a matrix next to nothing else and runs `lab compare` on it.
    fn compare_with(text: &str) -> (Ran, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, text).unwrap();
        let ran = run_watched(
            lab(&[
                "compare",
                "--matrix",
                path.to_str().unwrap(),
                "--out",
                dir.path().join("out").to_str().unwrap(),
            ]),
            Duration::from_secs(30),
            |_| {},
        );
        assert!(
            !dir.path().join("out").exists(),
            "nothing is created for bad input"
        );
        (ran, path)
    }

    const GOOD: &str = "config = \"CONFIG\"\nrepetitions = 2\n\n[[block]]\nengine_alloc = [\"system\", \"mimalloc\"]\nscratch = [\"heap\"]\n";

    fn good() -> String {
        let config = Path::new(WORKSPACE).join("configs/default.toml");
        GOOD.replace("CONFIG", config.to_str().unwrap())
    }

    #[test]
    fn bad_matrices_exit_2_naming_file_line_column_and_key() {
        for (bad, at) in [
            // syntax error
            (
                good().replace("repetitions = 2", "repetitions = = 2"),
                "2:15: repetitions: ",
            ),
            // unknown key
            (
                good().replace("scratch =", "scrach ="),
                "6:1: block[0].scrach: unknown field `scrach`",
            ),
            // unknown allocator
            (
                good().replace("\"mimalloc\"", "\"glibc\""),
                "5:27: block[0].engine_alloc[1]: unknown variant `glibc`",
            ),
            // empty list
            (
                good().replace("[\"heap\"]", "[]"),
                "6:1: block[0].scratch: the list is empty",
            ),
            // repetitions 0
            (
                good().replace("repetitions = 2", "repetitions = 0"),
                "2:1: repetitions: must be between 2 and 1000 (a verdict needs at least two runs of each variant), got 0",
            ),
            // one repetition: no verdict possible
            (
                good().replace("repetitions = 2", "repetitions = 1"),
                "2:1: repetitions: must be between 2 and 1000",
            ),
            // unknown metric
            (
                good().replace("repetitions = 2", "repetitions = 2\nmetrics = [\"e2e p99\", \"e2e p42\"]"),
                "3:23: metrics[1]: unknown metric \"e2e p42\"",
            ),
            // more runs than fit the budget
            (
                good().replace("repetitions = 2", "repetitions = 40\nmax_minutes = 1"),
                "3:1: max_minutes: 80 runs need about",
            ),
            // a baseline that is not a variant
            (
                good().replace("scratch = [\"heap\"]", "scratch = [\"heap\"]\nbaseline = 3"),
                "7:1: block[0].baseline: names variant V3, but the block has 2",
            ),
        ] {
            let (ran, path) = compare_with(&bad);
            assert_eq!(ran.code(), Some(2), "{bad}\n{ran:?}");
            let expected = format!("error: {}:{at}", path.display());
            assert!(
                ran.stderr.contains(&expected),
                "wanted {expected:?}\n{ran:?}"
            );
            assert!(!ran.stderr.contains("panicked"), "{ran:?}");
        }
    }

    #[test]
    fn missing_matrix_exits_2() {
        let ran = run_watched(
            lab(&["compare", "--matrix", "/no/such/matrix.toml"]),
            Duration::from_secs(30),
            |_| {},
        );
        assert_eq!(ran.code(), Some(2), "{ran:?}");
        assert!(ran.stderr.contains("/no/such/matrix.toml"), "{ran:?}");
    }

    #[test]
    fn runs_interleaved_records_failures_and_writes_the_report() {
        let Some(f) = fake() else { return };
        let matrix = f.dir.path().join("m.toml");
        std::fs::write(
            &matrix,
            format!(
                "config = \"{}\"\nrepetitions = 2\nduration_s = 1.5\n\n[[block]]\nname = \"tiny\"\nengine_alloc = [\"system\", \"mimalloc\"]\nfeed_alloc = [\"jemalloc\"]\nscratch = [\"pool\"]\nlevels = [2]\n\n[[block.variant]]\nengine_alloc = \"system\"\nfeed_alloc = \"system\"\nscratch = \"heap\"\n",
                f.config.display()
            ),
        )
        .unwrap();
        let out = f.dir.path().join("report");
        let mut cmd = lab(&[
            "compare",
            "--matrix",
            matrix.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--bin-dir",
            f.dir.path().join("bin").to_str().unwrap(),
        ]);
        cmd.env("FAKE_DIR", f.dir.path())
            .env("FAKE_FAIL_BIN", "engine-system");
        let ran = run_watched(cmd, Duration::from_secs(120), |_| {});
        // The engine-system variants fail; the comparison goes on and says so.
        assert_eq!(ran.code(), Some(1), "{ran:?}");
        assert!(ran.stderr.contains("4 of 6 runs failed"), "{ran:?}");
        assert!(
            !ran.stdout.contains("feed stdout line"),
            "children's output is not relayed"
        );
        let report = std::fs::read_to_string(out.join("report.md")).unwrap();
        assert!(report.contains("6 runs, 4 failed"), "{report}");
        assert!(report.contains("engine exited with status 4"), "{report}");
        assert!(std::fs::read_to_string(out.join("matrix.toml"))
            .unwrap()
            .contains("tiny"));
        // Every verdict as data; here the baseline (engine system) failed every run, so
        // there is nothing to judge against and the file says so with no verdicts.
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("verdicts.json")).unwrap()).unwrap();
        assert_eq!(
            v["written_by"]
                .as_str()
                .map(|s| s.starts_with("hft-alloc-lab")),
            Some(true)
        );
        assert_eq!(v["verdicts"].as_array().map(Vec::len), Some(0), "{v}");
        // Interleaved: round 1 runs every variant before round 2 starts.
        let rows: Vec<&str> = report
            .lines()
            .filter(|l| l.starts_with("| `runs/"))
            .collect();
        let order: Vec<String> = rows
            .iter()
            .map(|l| l.split('`').nth(1).unwrap().to_string())
            .collect();
        assert_eq!(
            order,
            [
                "runs/b1-v01-e-system-heap_f-system_L2/r1",
                "runs/b1-v02-e-system-pool_f-jemalloc_L2/r1",
                "runs/b1-v03-e-mimalloc-pool_f-jemalloc_L2/r1",
                "runs/b1-v01-e-system-heap_f-system_L2/r2",
                "runs/b1-v02-e-system-pool_f-jemalloc_L2/r2",
                "runs/b1-v03-e-mimalloc-pool_f-jemalloc_L2/r2",
            ]
        );
        let ok = out.join("runs/b1-v03-e-mimalloc-pool_f-jemalloc_L2/r2");
        for file in [
            "summary.json",
            "engine.hlog",
            "config.toml",
            "feed.log",
            "engine.log",
            "lab.log",
        ] {
            assert!(
                ok.join(file).is_file(),
                "{file} missing in {}",
                ok.display()
            );
        }
        let config: toml::Table = std::fs::read_to_string(ok.join("config.toml"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(config["engine"]["scratch"].as_str(), Some("pool"));
        assert_eq!(config["engine"]["levels"].as_integer(), Some(2));
        assert_eq!(config["duration_s"].as_float(), Some(1.5));
        let log = std::fs::read_to_string(ok.join("feed.log")).unwrap();
        assert!(
            log.contains("feed stdout line") && log.contains("feed stderr line"),
            "{log}"
        );
        for stage in ["feed_lag", "hop", "engine", "e2e"] {
            let svg = out.join(format!("plots/b1-{stage}.svg"));
            assert!(svg.is_file(), "{}", svg.display());
            assert!(
                report.contains(&format!("(plots/b1-{stage}.svg)")),
                "{report}"
            );
        }
    }
}

mod compare_one_process {
    //! `lab compare` with one-process variants, against the fakes.
    use super::plumbing::fake;
    use super::*;

    #[test]
    fn one_process_variants_run_the_pipeline_binaries() {
        let Some(f) = fake() else { return };
        let matrix = f.dir.path().join("m.toml");
        std::fs::write(
            &matrix,
            format!(
                "config = \"{}\"\nrepetitions = 2\nduration_s = 1.5\nmetrics = [\"e2e p99\", \"RSS total\", \"feed RSS\"]\n\n[[block]]\nname = \"shapes\"\nprocess = \"single\"\npipeline_alloc = [\"hybrid\", \"mimalloc\"]\nscratch = [\"arena\"]\nbaseline = 1\n\n[[block.variant]]\nprocess = \"two\"\n",
                f.config.display()
            ),
        )
        .unwrap();
        let out = f.dir.path().join("report");
        let mut cmd = lab(&[
            "compare",
            "--matrix",
            matrix.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--bin-dir",
            f.dir.path().join("bin").to_str().unwrap(),
        ]);
        cmd.env("FAKE_DIR", f.dir.path());
        let ran = run_watched(cmd, Duration::from_secs(120), |_| {});
        assert_eq!(ran.code(), Some(0), "{ran:?}");
        let report = std::fs::read_to_string(out.join("report.md")).unwrap();
        for dir in [
            "runs/b1-v01-e-mimalloc-arena_f-jemalloc_L3/r2",
            "runs/b1-v02-p-hybrid-arena_L3/r2",
            "runs/b1-v03-p-mimalloc-arena_L3/r2",
        ] {
            assert!(report.contains(&format!("`{dir}`")), "{dir}: {report}");
        }
        let one = out.join("runs/b1-v02-p-hybrid-arena_L3/r1");
        for file in ["summary.json", "pipeline.log", "lab.log", "config.toml"] {
            assert!(
                one.join(file).is_file(),
                "{file} missing in {}",
                one.display()
            );
        }
        assert!(!one.join("feed.log").exists() && !one.join("engine.log").exists());
        let log = std::fs::read_to_string(one.join("pipeline.log")).unwrap();
        assert!(log.contains("pipeline stdout line"), "{log}");
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(one.join("summary.json")).unwrap()).unwrap();
        assert_eq!(v["engine"]["allocator"]["name"], "hybrid");
        let v3: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join("runs/b1-v03-p-mimalloc-arena_L3/r1/summary.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(v3["feed"]["allocator"]["name"], "mimalloc");
        assert!(
            report.contains("one process, hybrid routing + arena, 3 levels"),
            "{report}"
        );
        assert!(report.contains("1 process: pipeline-mimalloc"), "{report}");
        // The fakes report no RSS: every RSS verdict is n/a, and a one-process variant's
        // feed RSS is n/a whatever it reports.
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("verdicts.json")).unwrap()).unwrap();
        let verdicts = v["verdicts"].as_array().unwrap();
        assert_eq!(verdicts.len(), 2 * 3, "{v}");
        assert!(verdicts
            .iter()
            .filter(|x| x["metric"] != "e2e p99")
            .all(|x| x["verdict"] == "n/a"));
    }
}

mod end_to_end {
    use super::*;

    /// Builds feed, engine and lab (debug, like this test) and returns their folder.
    /// It asks for what `cargo test --workspace` builds (every member's binaries and
    /// tests, with dev-dependencies), so that features resolve the same way and, run
    /// from `cargo test --workspace`, it finds everything built already.
    fn build_binaries() -> PathBuf {
        let root = Path::new(WORKSPACE);
        let status = Command::new(env!("CARGO"))
            .args(["build", "--workspace", "--bins", "--tests"])
            .current_dir(root)
            .status()
            .expect("run cargo build");
        assert!(
            status.success(),
            "cargo build of feed, engine and lab failed"
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|t| if t.is_relative() { root.join(t) } else { t })
            .unwrap_or_else(|| root.join("target"));
        target.join("debug")
    }

    /// A small run (`small_run`) of the built lab on the test's cores, its own ring and
    /// output folder; holds the hot cores while it lives.
    struct Small {
        cores: (usize, usize),
        _hot: std::sync::MutexGuard<'static, ()>,
        _dir: tempfile::TempDir,
        bins: PathBuf,
        ring: PathBuf,
        out: PathBuf,
        config: PathBuf,
    }

    impl Small {
        fn new(tag: &str) -> Option<Small> {
            let cores = two_cores()?;
            let bins = build_binaries();
            let hot = HOT_CORES.lock().unwrap_or_else(|e| e.into_inner());
            let dir = tempfile::tempdir().unwrap();
            let ring = shm_dir().join(format!("lab-test{tag}-{}.ring", std::process::id()));
            let out = dir.path().join("out");
            let config = dir.path().join("small.toml");
            std::fs::write(&config, config_text(cores, &ring, &out, small_run)).unwrap();
            Some(Small {
                cores,
                _hot: hot,
                _dir: dir,
                bins,
                ring,
                out,
                config,
            })
        }

        /// Runs `lab run` on it with `extra` flags (within 120 s) and removes the ring.
        fn run(&self, extra: &[&str]) -> Ran {
            let mut cmd = Command::new(self.bins.join("lab"));
            cmd.args(["run", "--config", self.config.to_str().unwrap()])
                .args(["--out", self.out.to_str().unwrap()])
                .args(extra);
            let ran = run_watched(cmd, Duration::from_secs(120), |_| {});
            let _ = std::fs::remove_file(&self.ring);
            ran
        }

        fn summary(&self) -> serde_json::Value {
            serde_json::from_slice(
                &std::fs::read(self.out.join("summary.json")).expect("summary.json"),
            )
            .unwrap()
        }
    }

    #[test]
    fn several_engines_read_one_feed_each_in_its_own_folder() {
        let Some(small) = Small::new("-multi") else {
            return;
        };
        let ran = small.run(&["--engines", "2", "--noise", "0"]);
        assert_eq!(ran.code(), Some(0), "{ran:?}");
        let v = small.summary();
        let out = &small.out;
        let n = |x: &serde_json::Value| x.as_u64().unwrap_or_else(|| panic!("not a count: {x}"));
        let published = n(&v["ticks"]["published"]);
        assert!(published > 0, "{v:#}");
        let engines = v["engines"].as_array().expect("engines");
        assert_eq!(engines.len(), 2, "{v:#}");
        for (i, e) in engines.iter().enumerate() {
            let name = format!("engine-{}", i + 1);
            assert_eq!(e["name"], name.as_str());
            assert_eq!(n(&e["published_seen"]), published, "{e}");
            assert_eq!(e["unaccounted"].as_i64(), Some(0), "{e}");
            assert_eq!(
                n(&e["published_seen"]),
                n(&e["received"]) + n(&e["missed"]) + n(&e["unread"]),
                "{e}"
            );
            let folder = out.join(&name);
            for f in ["engine_summary.json", "engine.hlog", "config.toml"] {
                assert!(folder.join(f).exists(), "{name}/{f}");
            }
            assert!(
                ran.stdout.contains(&format!("[{name}] engine done")),
                "{ran:?}"
            );
        }
        let total = &v["engines_total"];
        assert_eq!(n(&total["engines"]), 2);
        assert_eq!(
            n(&total["received"]),
            n(&engines[0]["received"]) + n(&engines[1]["received"])
        );
        assert_eq!(total["unaccounted"].as_i64(), Some(0));
        assert!(ran.stdout.contains("  total (2)"), "{ran:?}");
        // The summary's engine is the first one's.
        assert_eq!(v["ticks"]["received"], engines[0]["received"]);
    }

    #[test]
    fn several_spinning_engines_on_too_few_cores_exit_2() {
        let Some(cores) = two_cores() else { return };
        let allowed = common::cores::allowed_cores().len();
        let dir = tempfile::tempdir().unwrap();
        let text = config_text(cores, &dir.path().join("r.ring"), dir.path(), |e| e);
        let config = dir.path().join("spin.toml");
        std::fs::write(&config, text).unwrap();
        let n = allowed.to_string();
        let ran = run_watched(
            lab(&["run", "--config", config.to_str().unwrap(), "--engines", &n]),
            Duration::from_secs(30),
            |_| {},
        );
        assert_eq!(ran.code(), Some(2), "{ran:?}");
        assert!(
            ran.stderr.contains(&format!(
                "--engines {n} with engine.wait = \"spin\" needs {} cores",
                allowed + 1
            )),
            "{ran:?}"
        );
        assert!(!ran.stdout.contains("[feed]"), "nothing started: {ran:?}");
    }

    #[test]
    fn feed_and_engine_run_together() {
        let Some(small) = Small::new("") else { return };
        let cores = small.cores;
        let ran = small.run(&[]);
        assert_eq!(ran.code(), Some(0), "{ran:?}");
        let out = &small.out;
        let v = small.summary();
        let ticks = &v["ticks"];
        let n = |x: &serde_json::Value| x.as_u64().unwrap_or_else(|| panic!("not a count: {x}"));
        assert!(n(&ticks["published"]) > 0, "{v:#}");
        assert_eq!(
            n(&ticks["published"]),
            n(&ticks["received"]) + n(&ticks["missed"]),
            "{ticks}"
        );
        assert_eq!(n(&ticks["gaps"]), 0, "{ticks}");
        for stage in ["feed_lag", "hop", "engine", "e2e"] {
            assert!(
                n(&v["latency_ns"][stage]["count"]) > 0,
                "{stage}: {}",
                v["latency_ns"]
            );
        }
        assert_eq!(
            v["engine"]["allocator"]["name"], "mimalloc",
            "{}",
            v["engine"]["allocator"]
        );
        assert_eq!(
            v["feed"]["allocator"]["name"], "jemalloc",
            "{}",
            v["feed"]["allocator"]
        );
        assert_eq!(
            v["engine"]["global_allocs_per_tick"].as_f64(),
            Some(0.0),
            "{}",
            v["engine"]
        );
        for key in ["cpu_model", "clock_source"] {
            let s = v["manifest"][key].as_str().unwrap_or_default();
            assert!(!s.is_empty(), "manifest.{key} is empty: {}", v["manifest"]);
        }
        // Every order handed off was checked, and all were well formed.
        let engine = &v["engine"]["detail"];
        assert!(n(&engine["orders"]) > 0, "{engine}");
        assert_eq!(
            n(&engine["orders"]),
            n(&engine["orders_verified"]) + n(&engine["orders_invalid"]),
            "an order went unchecked"
        );
        assert_eq!(n(&engine["orders_invalid"]), 0);
        // The machine's noise was probed on both hot cores, before the run.
        let noise = &v["noise"];
        assert_eq!(noise["cores"].as_array().map(Vec::len), Some(2), "{noise}");
        assert_eq!(noise["when"], "before");
        assert!(ran.stdout.contains("noise       "), "{ran:?}");
        // Every cold thread reported its budget.

        for thread in ["feed_history", "engine_report", "engine_orders"] {
            let b = &v["cold_threads"][thread];
            assert!(n(&b["stretches"]) > 0, "{thread}: {b}");
        }
        // No interval went unlogged: the measured e2e intervals of the .hlog follow each
        // other without a hole and hold every measured tick.
        let hlog = std::fs::read(out.join("engine.hlog")).expect("engine.hlog");
        let mut intervals = Vec::new();
        for entry in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&hlog) {
            if let hdrhistogram::serialization::interval_log::LogEntry::Interval(i) =
                entry.expect("a readable .hlog")
            {
                if i.tag().map(|t| t.as_str()) == Some("e2e") {
                    let raw = base64::Engine::decode(
                        &base64::engine::general_purpose::STANDARD,
                        i.encoded_histogram(),
                    )
                    .unwrap();
                    let h: hdrhistogram::Histogram<u64> =
                        hdrhistogram::serialization::Deserializer::new()
                            .deserialize(&mut &raw[..])
                            .unwrap();
                    intervals.push((i.start_timestamp(), i.duration(), h.len()));
                }
            }
        }
        assert!(intervals.len() >= 2, "{intervals:?}");
        for w in intervals.windows(2) {
            let gap = w[1].0.abs_diff(w[0].0 + w[0].1);
            // Times are written to the millisecond.
            assert!(gap <= Duration::from_millis(2), "a hole in the log: {w:?}");
        }
        let logged: u64 = intervals.iter().map(|i| i.2).sum();
        assert_eq!(logged, n(&v["latency_ns"]["e2e"]["count"]), "{intervals:?}");
        assert!(
            ran.stdout.contains("published == received + missed: yes"),
            "{ran:?}"
        );
        // The mechanisms of each process's measured window: its threads, and on the
        // engine's side the interrupts of both hot cores.
        let mech = &v["mechanisms"];
        for (process, threads) in [
            ("feed", &["feed-md", "feed-history"][..]),
            (
                "engine",
                &["engine-hot", "engine-report", "engine-orders"][..],
            ),
        ] {
            let m = &mech[process];
            assert!(m["seconds"].as_f64().unwrap_or(0.0) > 1.0, "{process}: {m}");
            for t in threads {
                assert!(m["threads"][t]["cpu_ms"].as_f64().is_some(), "{t}: {m}");
            }
        }
        let local_timer = &mech["engine"]["interrupts"]["LOC"];
        for core in [cores.0, cores.1] {
            assert!(n(&local_timer[core.to_string()]) > 0, "{local_timer}");
        }
        assert!(
            v.get("alloc_call_ns").is_none(),
            "not timed without the flag"
        );
        assert!(ran.stdout.contains("thread (measured window)"), "{ran:?}");
    }

    /// `--single-process`: the real pipeline (the routing hybrid) as one child, 2 s.
    #[test]
    fn the_pipeline_runs_as_one_process() {
        let Some(small) = Small::new("-single") else {
            return;
        };
        let ran = small.run(&["--single-process", "--noise", "0", "--duration", "2"]);
        assert_eq!(ran.code(), Some(0), "{ran:?}");
        let v = small.summary();
        let n = |x: &serde_json::Value| x.as_u64().unwrap_or_else(|| panic!("not a count: {x}"));
        let ticks = &v["ticks"];
        assert!(n(&ticks["published"]) > 0, "{v:#}");
        assert_eq!(
            n(&ticks["published"]),
            n(&ticks["received"]) + n(&ticks["missed"]),
            "{ticks}"
        );
        for stage in ["feed_lag", "hop", "engine", "e2e"] {
            assert!(n(&v["latency_ns"][stage]["count"]) > 0, "{stage}");
        }
        for side in ["feed", "engine"] {
            assert_eq!(v[side]["allocator"]["name"], "hybrid", "{}", v[side]);
        }
        assert_eq!(v["engine"]["global_allocs_per_tick"].as_f64(), Some(0.0));
        // Both sides are the one process: the same RSS figure's process.
        assert!(n(&v["engine"]["detail"]["memory"]["peak_rss_bytes"]) > 0);
        for f in [
            "feed_summary.json",
            "engine_summary.json",
            "engine.hlog",
            "config.toml",
        ] {
            assert!(small.out.join(f).is_file(), "{f}");
        }
        assert!(ran.stdout.contains("[pipeline] "), "{ran:?}");
        assert!(!ran.stdout.contains("[feed]"), "{ran:?}");
        assert!(
            ran.stdout
                .contains("allocators  one process (pipeline): hybrid"),
            "{ran:?}"
        );
        assert!(
            ran.stdout.contains("published == received + missed: yes"),
            "{ran:?}"
        );
        assert!(!ran.stderr.contains("lab: warning"), "{ran:?}");
        // The routing hybrid's routes are in the summary too.
        assert!(small.out.join("routing.json").is_file());
        assert!(
            v["routing"]["roles"]
                .as_array()
                .is_some_and(|r| !r.is_empty()),
            "{v:#}"
        );
    }

    /// `--time-allocator`: the cold threads' allocator calls are timed per role, the
    /// hot threads' never.
    #[test]
    fn the_timed_allocator_mode_times_cold_threads_only() {
        let Some(small) = Small::new("-timed") else {
            return;
        };
        let ran = small.run(&["--noise", "0", "--time-allocator"]);
        assert_eq!(ran.code(), Some(0), "{ran:?}");
        let v = small.summary();
        let out = &small.out;
        let calls = v["alloc_call_ns"].as_object().expect("timed calls");
        let roles: Vec<&str> = calls.keys().map(String::as_str).collect();
        // The history thread allocates as the history grows; every timed role is a
        // cold thread's.
        assert!(roles.contains(&"feed_history"), "{roles:?}");
        for role in &roles {
            assert!(
                ["feed_history", "engine_report", "engine_orders"].contains(role),
                "{role} is not a cold thread"
            );
        }
        let alloc = &calls["feed_history"]["alloc"];
        assert!(alloc["count"].as_u64().unwrap() > 0, "{alloc}");
        assert!(alloc["p50_ns"].as_f64().unwrap() <= alloc["max_ns"].as_f64().unwrap());
        let recorded = std::fs::read_to_string(out.join("config.toml")).unwrap();
        assert!(recorded.contains("time_allocator = true"), "{recorded}");
        assert!(ran.stdout.contains("allocator call (timed)"), "{ran:?}");
    }

    /// Every file and folder under `root` (and `root` itself) whose mode lets the group
    /// or others read, write or enter it.
    fn open_to_others(root: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut todo = vec![root.to_path_buf()];
        while let Some(p) = todo.pop() {
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.permissions().mode() & 0o077 != 0 {
                found.push(format!(
                    "{} {:o}",
                    p.display(),
                    m.permissions().mode() & 0o777
                ));
            }
            if m.is_dir() {
                todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            }
        }
        found
    }

    /// `lab run` and `lab compare` (and the feed and engine they start) under umask 000
    /// create every file 0600 and every folder 0700: nothing readable by group or others.
    #[test]
    fn under_umask_000_nothing_is_readable_by_others() {
        let Some(cores) = two_cores() else { return };
        let bins = build_binaries();
        let _hot = HOT_CORES.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let ring = shm_dir().join(format!("lab-test-umask-{}.ring", std::process::id()));
        let root = dir.path().join("made");
        let run_out = root.join("a/run");
        let config = dir.path().join("small.toml");
        std::fs::write(&config, config_text(cores, &ring, &run_out, small_run)).unwrap();
        let under_umask_000 = |args: &[&str]| {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", "umask 000 && exec \"$0\" \"$@\""])
                .arg(bins.join("lab"))
                .args(args);
            cmd
        };
        let ran = run_watched(
            under_umask_000(&[
                "run",
                "--config",
                config.to_str().unwrap(),
                "--duration",
                "1.5",
                "--out",
                run_out.to_str().unwrap(),
            ]),
            Duration::from_secs(120),
            |_| {},
        );
        assert_eq!(ran.code(), Some(0), "{ran:?}");
        let matrix = dir.path().join("m.toml");
        std::fs::write(
            &matrix,
            format!(
                "config = \"{}\"\nrepetitions = 2\nnoise_s = 0\nduration_s = 1.5\n\n[[block]]\nname = \"umask\"\nengine_alloc = [\"mimalloc\"]\nscratch = [\"arena\"]\n",
                config.display()
            ),
        )
        .unwrap();
        let compare_out = root.join("b/compare");
        let ran = run_watched(
            under_umask_000(&[
                "compare",
                "--matrix",
                matrix.to_str().unwrap(),
                "--out",
                compare_out.to_str().unwrap(),
            ]),
            Duration::from_secs(180),
            |_| {},
        );
        let _ = std::fs::remove_file(&ring);
        assert_eq!(ran.code(), Some(0), "{ran:?}");
        for made in ["summary.json", "engine.hlog", "config.toml"] {
            assert!(run_out.join(made).is_file(), "lab run: {made} missing");
        }
        for made in ["report.md", "matrix.toml", "plots/b1-e2e.svg"] {
            assert!(
                compare_out.join(made).is_file(),
                "lab compare: {made} missing"
            );
        }
        let open = open_to_others(&root);
        assert!(open.is_empty(), "readable by others: {open:#?}");
    }

    /// `lab profile` on the small run with the debug `pipeline-dhat` (full debug info),
    /// in `heap` and in `arena` scratch: the report folder has the per-role table, the
    /// call sites with source locations, flame graphs that parse as SVG, and the
    /// suggestions the figures support; in `heap` mode the hot thread's allocations per
    /// tick are attributed to its sites (a per-tick suggestion names them), in `arena`
    /// mode it has none per tick.
    #[test]
    fn profile_attributes_allocations_to_roles_and_sites() {
        let Some(small) = Small::new("-profile") else {
            return;
        };
        let n = |x: &serde_json::Value| x.as_u64().unwrap_or_else(|| panic!("not a count: {x}"));
        let mut per_tick = Vec::new();
        for scratch in ["heap", "arena"] {
            let out = small.out.with_file_name(format!("profile-{scratch}"));
            let mut cmd = Command::new(small.bins.join("lab"));
            cmd.args(["profile", "--config", small.config.to_str().unwrap()])
                .args(["--scratch", scratch, "--out", out.to_str().unwrap()])
                .args(["--bin-dir", small.bins.to_str().unwrap()]);
            let ran = run_watched(cmd, Duration::from_secs(180), |_| {});
            let _ = std::fs::remove_file(&small.ring);
            assert_eq!(ran.code(), Some(0), "{scratch}: {ran:?}");
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(out.join("profile.json")).unwrap()).unwrap();
            let ticks = n(&v["ticks"]);
            assert!(ticks > 0, "{v:#}");
            let roles = v["profile"]["roles"].as_array().unwrap();
            for role in [
                "engine_hot",
                "feed_history",
                "engine_report",
                "feed_main",
                "engine_main",
            ] {
                assert!(
                    roles.iter().any(|r| r["role"] == role),
                    "{scratch}: no {role}: {v:#}"
                );
            }
            let sites = v["profile"]["sites"].as_array().unwrap();
            let hot: Vec<&serde_json::Value> =
                sites.iter().filter(|s| s["role"] == "engine_hot").collect();
            let hot_allocs: u64 = hot.iter().map(|s| n(&s["allocs"])).sum();
            per_tick.push(hot_allocs as f64 / ticks as f64);
            // Sites carry source locations in the project's code.
            assert!(
                sites.iter().any(|s| s["role"] == "feed_history"
                    && s["func"].as_str().unwrap().starts_with("feed::history::")
                    && s["loc"]
                        .as_str()
                        .unwrap()
                        .starts_with("feed/src/history.rs:")),
                "{scratch}: the history's chunks: {v:#}"
            );
            let suggestions = v["suggestions"].as_array().unwrap();
            let hot_rule = suggestions
                .iter()
                .any(|s| s["rule"] == "per_tick" && s["role"] == "engine_hot");
            assert_eq!(hot_rule, scratch == "heap", "{scratch}: {suggestions:?}");
            if scratch == "heap" {
                assert!(
                    hot.iter()
                        .any(|s| s["loc"].as_str().unwrap().starts_with("engine/src/")),
                    "{hot:?}"
                );
            }
            let report = std::fs::read_to_string(out.join("profile.md")).unwrap();
            for part in [
                "## Per thread role",
                "## Top call sites by count",
                "## Top call sites by bytes",
                "## Suggestions",
                "## Flame graphs",
            ] {
                assert!(report.contains(part), "{part}: {report}");
            }
            let opts = roxmltree::ParsingOptions {
                allow_dtd: true,
                ..roxmltree::ParsingOptions::default()
            };
            for svg in [
                "flame-allocations.svg",
                "flame-bytes.svg",
                "flame-engine_hot.svg",
            ] {
                let text = std::fs::read_to_string(out.join(svg)).unwrap();
                let doc = roxmltree::Document::parse_with_options(&text, opts)
                    .unwrap_or_else(|e| panic!("{svg}: {e}"));
                assert_eq!(doc.root_element().tag_name().name(), "svg", "{svg}");
            }
            // A second profile into the same folder is refused.
            let mut again = Command::new(small.bins.join("lab"));
            again
                .args(["profile", "--config", small.config.to_str().unwrap()])
                .args([
                    "--out",
                    out.to_str().unwrap(),
                    "--bin-dir",
                    small.bins.to_str().unwrap(),
                ]);
            let ran = run_watched(again, Duration::from_secs(60), |_| {});
            assert_eq!(ran.code(), Some(2), "{ran:?}");
            assert!(ran.stderr.contains("holds a profile already"), "{ran:?}");
        }
        assert!(
            per_tick[0] >= 3.0,
            "heap: {} per tick on the hot thread",
            per_tick[0]
        );
        assert!(
            per_tick[1] < 0.01,
            "arena: {} per tick on the hot thread",
            per_tick[1]
        );
    }
}

mod bench {
    use super::*;

    /// `lab bench transport` with tiny counts: every row that this build has is
    /// measured with the asked-for count and the JSON has the documented keys. The
    /// numbers themselves are not looked at.
    #[test]
    fn transport_writes_the_documented_json() {
        let Some(cores) = two_cores() else { return };
        let _hot = HOT_CORES.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("c.toml");
        std::fs::write(
            &config,
            config_text(cores, &dir.path().join("r.ring"), dir.path(), |e| e),
        )
        .unwrap();
        let json = dir.path().join("transport.json");
        let mut lab_pid = 0;
        let ran = run_watched(
            lab(&[
                "bench",
                "transport",
                "--config",
                config.to_str().unwrap(),
                "--samples",
                "500",
                "--messages",
                "5000",
                "--json",
                json.to_str().unwrap(),
            ]),
            Duration::from_secs(180),
            |pid| lab_pid = pid,
        );
        assert_eq!(ran.code(), Some(0), "{ran:?}");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let mut rows = vec![
            "cacheline",
            "ring_threads",
            "ring_processes",
            "crossbeam_threads",
        ];
        let peers = v["machine"]["peers_built"].as_bool().unwrap();
        if peers {
            rows.push("iceoryx2_processes");
        } else {
            assert_eq!(
                v["iceoryx2_processes"]["skipped"], "not built (enable --features peers)",
                "{v:#}"
            );
            assert!(ran.stdout.contains("not built (enable --features peers)"));
        }
        let aeron = v["machine"]["aeron_built"].as_bool().unwrap();
        if aeron {
            rows.extend(["aeron_ipc_threads", "aeron_udp_threads"]);
        } else {
            for row in ["aeron_ipc_threads", "aeron_udp_threads"] {
                assert_eq!(
                    v[row]["skipped"], "not built (enable --features aeron)",
                    "{v:#}"
                );
            }
        }
        for row in rows {
            assert_eq!(v[row]["count"], 500, "{row}: {v:#}");
            for key in ["p50", "p90", "p99", "p99_9", "p99_99", "max"] {
                assert!(v[row][key].is_u64(), "{row}.{key}: {v:#}");
            }
            assert!(v[row]["msgs_per_s"].is_number(), "{row}: {v:#}");
            assert!(v[row]["method"].is_string(), "{row}: {v:#}");
            assert!(ran.stdout.contains(row), "{ran:?}");
        }
        assert_eq!(
            v["ring_threads"]["lost"], 0,
            "an idle ring loses nothing: {v:#}"
        );
        let mut flows = vec![
            "ring_threads_1p1c",
            "ring_threads_lossless_1p1c",
            "ring_processes_1p1c",
            "crossbeam_threads_1p1c",
        ];
        if peers {
            flows.push("iceoryx2_processes_1p1c");
        }
        if aeron {
            flows.extend(["aeron_ipc_threads_1p1c", "aeron_udp_threads_1p1c"]);
        }
        for row in flows {
            let t = &v["throughput"][row];
            assert_eq!(t["published"], 5000, "{row}: {t:#}");
            assert_eq!(t["consumers"], 1, "{row}: {t:#}");
            assert!(t["msgs_per_s"].is_number(), "{row}: {t:#}");
            // What arrived plus what was lost is what was sent (lossy ring included).
            let received = t["received"][0].as_u64().unwrap();
            assert_eq!(received + t["lost"].as_u64().unwrap(), 5000, "{row}: {t:#}");
        }
        let retrying: &[&str] = if aeron {
            &[
                "crossbeam_threads_1p1c",
                "ring_threads_lossless_1p1c",
                "aeron_ipc_threads_1p1c",
                "aeron_udp_threads_1p1c",
            ]
        } else {
            &["crossbeam_threads_1p1c", "ring_threads_lossless_1p1c"]
        };
        for row in retrying.iter().copied() {
            assert_eq!(
                v["throughput"][row]["lost"], 0,
                "{row}: back-pressure loses nothing"
            );
        }
        assert!(!v["machine"]["cpu_model"].as_str().unwrap().is_empty());
        let ring = shm_dir().join(format!("lab-bench-transport-{lab_pid}.ring"));
        assert!(!ring.exists(), "ring file left behind: {}", ring.display());
        let leftovers: Vec<_> = std::fs::read_dir(shm_dir())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("iox2_lab{lab_pid}"))
            })
            .collect();
        assert!(
            leftovers.is_empty(),
            "iceoryx2 files left behind: {leftovers:?}"
        );
    }

    #[test]
    fn jitter_writes_the_documented_json() {
        let Some(cores) = two_cores() else { return };
        let _hot = HOT_CORES.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("jitter.json");
        let ran = run_watched(
            lab(&[
                "bench",
                "jitter",
                "--seconds",
                "0.2",
                "--core",
                &cores.1.to_string(),
                "--json",
                json.to_str().unwrap(),
            ]),
            Duration::from_secs(60),
            |_| {},
        );
        assert_eq!(ran.code(), Some(0), "{ran:?}");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(v["core"], cores.1 as u64, "{v:#}");
        assert!(v["count"].as_u64().unwrap() > 0, "{v:#}");
        for key in [
            "p50",
            "p90",
            "p99",
            "p99_9",
            "p99_99",
            "max",
            "gaps_over_1us",
        ] {
            assert!(v[key].is_u64(), "{key}: {v:#}");
        }
        assert!(
            ran.stdout.contains("gap between consecutive clock reads"),
            "{ran:?}"
        );
    }

    #[test]
    fn jitter_on_a_core_not_allowed_exits_2() {
        let ran = run_watched(
            lab(&["bench", "jitter", "--seconds", "0.1", "--core", "100000"]),
            Duration::from_secs(30),
            |_| {},
        );
        assert_eq!(ran.code(), Some(2), "{ran:?}");
        assert!(ran.stderr.contains("--core 100000"), "{ran:?}");
    }
}
