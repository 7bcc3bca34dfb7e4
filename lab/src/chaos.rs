//! `lab chaos`: the fault scenarios, run end to end with the real `feed` and `engine`
//! binaries, each checked against what it must produce, with a table of the results.
//!
//! Every scenario starts the processes on its own ring file (under `/dev/shm`, named
//! after lab's pid) and its own folders, injects its fault with signals (SIGKILL,
//! SIGSTOP/SIGCONT, SIGINT, SIGTERM) or a second process, waits for the exits, and reads
//! the summaries the processes wrote. The tick accounting of each row is
//!
//! `unaccounted = published − received − missed − unread`
//!
//! (with gap recovery on, `missed` is `recovered + unrecovered`, each counted by the
//! engine on its own: `published = received + recovered + unrecovered + unread`)
//!
//! where `published` comes from the feed's summary (or, for a feed killed before it
//! could write one, from the ring header's count as the engine read it), and
//! `received`, `missed` (gaps and corrupt ticks the engine reported) and `unread`
//! (published after the engine stopped) from the engine's summary. A scenario passes
//! when its expected behaviour is observed and nothing is unaccounted.
//!
//! Cold code only: it forks, sleeps and reads files. Nothing here is timed as a result;
//! the delays between steps only give the processes time to reach the state under test.

use crate::child::{describe_exit, Supervised};
use crate::cli::ChaosArgs;
use crate::run::read_json;
use crate::table::Table;
use anyhow::{anyhow, bail, ensure, Context, Result};
use common::config::edit::Edit;
use common::config::{OnProducerGone, DEFAULT_TOML, MIN_RING_CAPACITY};
use common::cores::WaitStrategy;
use common::failure::Failure;
use common::files::{self, Kind};
use common::journal::Journal;
use common::os::{process_alive, Signal};
use common::ring::shm::lock_path;
use common::summary::{EndReason, EngineSummary, FeedSummary, JournalReport};
use common::tick::{ContentDigest, Tick};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How a scenario's processes are configured.
#[derive(Clone, Copy, Debug)]
struct Knobs {
    /// Ring slots.
    capacity: u64,
    /// `ring.lossless`.
    lossless: bool,
    /// `ring.consumer_timeout_ms`.
    consumer_timeout_ms: u64,
    /// `engine.on_producer_gone = "wait"`.
    engine_waits: bool,
    /// Ticks per second over the two symbols.
    rate: u32,
}

impl Default for Knobs {
    fn default() -> Knobs {
        Knobs {
            capacity: 65_536,
            lossless: false,
            consumer_timeout_ms: 1000,
            engine_waits: false,
            rate: 20_000,
        }
    }
}

/// Liveness timeout of the engines in every scenario.
const PRODUCER_TIMEOUT_MS: u64 = 500;

/// One row of the table.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Row {
    /// Scenario name.
    pub scenario: &'static str,
    /// What must happen.
    pub expected: &'static str,
    /// What happened.
    pub observed: String,
    /// Ticks published.
    pub published: u64,
    /// Ticks the engine received.
    pub received: u64,
    /// Ticks the engine reported missed.
    pub missed: u64,
    /// Ticks published after the engine stopped (reported by it).
    pub unread: u64,
    /// `published − received − missed − unread`; must be 0.
    pub unaccounted: i64,
    /// Whether the scenario passed.
    pub pass: bool,
}

impl Row {
    /// Adds `other`'s tick accounting to this row's (a scenario of several runs).
    fn add(&mut self, other: &Row) {
        self.published += other.published;
        self.received += other.received;
        self.missed += other.missed;
        self.unread += other.unread;
        self.unaccounted += other.unaccounted;
    }

    fn account(&mut self, published: u64, e: &EngineSummary) {
        self.published = published;
        self.received = e.received;
        self.missed = e.missed;
        self.unread = e.unread;
        self.unaccounted = e.unaccounted(published);
    }
}

/// A scenario: name, expectation, and the function that runs it and fills the row.
type Scenario = (
    &'static str,
    &'static str,
    fn(&Env, &mut Row) -> Result<bool>,
);

const SCENARIOS: &[Scenario] = &[
    (
        "engine_first",
        "engine waits for the feed; both exit 0",
        engine_first,
    ),
    (
        "feed_first",
        "engine attaches to a running feed; both exit 0",
        feed_first,
    ),
    (
        "feed_killed",
        "SIGKILL feed: engine notices by heartbeat, writes summary, exits 1",
        feed_killed,
    ),
    (
        "feed_restarted",
        "SIGKILL feed, start another: engine (wait mode) resyncs, 2 sessions",
        feed_restarted,
    ),
    (
        "engine_killed",
        "SIGKILL engine: feed unaffected; a new engine catches up",
        engine_killed,
    ),
    (
        "second_feed",
        "a second feed on a live ring is refused, naming the holder's pid",
        second_feed,
    ),
    (
        "stale_ring",
        "a dead feed's ring is reclaimed by the next feed",
        stale_ring,
    ),
    (
        "engine_lapped",
        "SIGSTOP engine on a small lossy ring: gaps reported, exact counts",
        engine_lapped,
    ),
    (
        "lossless_stall",
        "lossless: SIGSTOP engine under the timeout: feed waits, 0 missed",
        lossless_stall,
    ),
    (
        "lossless_dead",
        "lossless: SIGKILL engine: feed evicts it after the timeout, goes on",
        lossless_dead,
    ),
    (
        "sigint_feed",
        "SIGINT feed: stream ends in order, engine drains and exits 0",
        sigint_feed,
    ),
    (
        "sigterm_both",
        "SIGTERM both: summaries and hlog complete, ring removed",
        sigterm_both,
    ),
    (
        "lab_run_ctrl_c",
        "SIGINT lab run: forwarded, summary written, no child left",
        lab_run_ctrl_c,
    ),
    (
        "journal_restored",
        "SIGKILL a journaling feed, start another on its journal: history restored (count, content)",
        journal_restored,
    ),
    (
        "journal_continued",
        "SIGKILL a feed on a journal with on_restart = continue, start another: same epoch, sequence goes on, a range reaches back past the restart",
        journal_continued,
    ),
    (
        "journal_torn",
        "a journal cut inside its last block: torn tail cut and reported, the rest restored",
        journal_torn,
    ),
    (
        "journal_foreign",
        "feed.journal.dir holding someone else's file: exit 2, the file unchanged",
        journal_foreign,
    ),
    (
        "service_abuse",
        "history service: garbage, a stalled client and 100 at once; the feed keeps its rate, its md thread makes no allocation and no system call per tick",
        service_abuse,
    ),
    (
        "late_engine_warm",
        "an engine started late warms from a snapshot: a full window at its first quote",
        late_engine_warm,
    ),
    (
        "feed_restarted_warm",
        "SIGKILL feed, start another: the engine (wait mode) empties its books and warms from the new feed's snapshot",
        feed_restarted_warm,
    ),
    (
        "lapped_engine_recovers",
        "a lapped engine in lossy mode recovers every missed tick from the history service, no order while stale",
        lapped_engine_recovers,
    ),
    (
        "recovery_from_journal",
        "a lapped engine recovers ticks the feed's memory no longer holds: read back from its journal, unrecovered = 0",
        recovery_from_journal,
    ),
    (
        "replay_twice",
        "a journal replayed twice: the same ticks published, the engines emit the same orders",
        replay_twice,
    ),
];

/// Where the binaries are and where a scenario writes.
struct Env {
    feed: PathBuf,
    engine: PathBuf,
    lab: PathBuf,
    /// The scenario's own folder.
    dir: PathBuf,
    /// The scenario's ring file.
    ring: PathBuf,
    /// (feed md core, engine hot core).
    cores: (usize, usize),
    /// `--require-perf`.
    require_perf: bool,
}

/// What `lab chaos` writes at the top of its folder (each scenario has a folder below).
const CHAOS_OUTPUTS: [(&str, Kind); 2] = [("chaos.md", Kind::Markup), ("chaos.json", Kind::Json)];

/// `chaos.json`: every scenario's row.
#[derive(Serialize)]
struct ChaosReport<'a> {
    scenarios: &'a [Row],
}

/// Runs the scenarios, prints the table, writes `chaos.md` and `chaos.json`; fails if
/// any scenario failed.
pub fn chaos(args: &ChaosArgs) -> Result<()> {
    let bins = crate::run::bin_dir(args.bin_dir.as_deref())?;
    let find = |name: &str| {
        let p = bins.join(name);
        ensure!(
            p.is_file(),
            "no `{name}` binary in {}: build with `cargo build --release` (or pass --bin-dir)",
            bins.display()
        );
        Ok(p)
    };
    let (feed, engine, lab) = (find("feed")?, find("engine")?, find("lab")?);
    let allowed = common::cores::allowed_cores();
    let cores = match allowed[..] {
        [a, b, ..] => (a, b),
        _ => bail!("lab chaos needs at least 2 allowed cores, this process has {allowed:?}"),
    };
    let out = match &args.out {
        Some(d) => {
            common::runargs::prepare_out_dir(d, &CHAOS_OUTPUTS).map_err(Failure::bad_input)?;
            d.clone()
        }
        None => files::create_fresh_dir(&Path::new("results").join(format!(
            "{}-chaos",
            common::units::utc_stamp(std::time::SystemTime::now())
        )))?,
    };
    let chosen: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|(name, ..)| args.only.is_empty() || args.only.iter().any(|o| o == name))
        .collect();
    if chosen.is_empty() {
        let names: Vec<_> = SCENARIOS.iter().map(|s| s.0).collect();
        return Err(Failure::bad_input(anyhow!(
            "--only names no scenario; they are: {}",
            names.join(", ")
        ))
        .into());
    }
    let mut rows = Vec::new();
    for (name, expected, run) in chosen {
        let env = Env {
            feed: feed.clone(),
            engine: engine.clone(),
            lab: lab.clone(),
            dir: out.join(name),
            ring: PathBuf::from(format!(
                "/dev/shm/hft-chaos-{}-{name}.ring",
                std::process::id()
            )),
            cores,
            require_perf: args.require_perf,
        };
        files::create_dir_all(&env.dir)?;
        eprintln!("lab chaos: {name}: {expected}");
        let mut row = Row {
            scenario: name,
            expected,
            ..Row::default()
        };
        let started = Instant::now();
        match run(&env, &mut row) {
            Ok(ok) => row.pass = ok && row.unaccounted == 0,
            Err(e) => {
                row.observed = format!("harness error: {e:#}");
                row.pass = false;
            }
        }
        // Whatever a killed feed left behind (a ring and lock of its own, never more).
        if let Err(e) = common::ring::shm::remove_stale(&env.ring) {
            eprintln!("lab chaos: {name}: cannot remove what the scenario left: {e}");
        }
        eprintln!(
            "lab chaos: {name}: {} in {:.1} s: {}",
            if row.pass { "pass" } else { "FAIL" },
            started.elapsed().as_secs_f64(),
            row.observed
        );
        rows.push(row);
    }
    let table = format_table(&rows);
    print!("{table}");
    let header = Kind::Markup.header("lab chaos: the fault scenarios and their tick accounting");
    files::write(
        &out.join(CHAOS_OUTPUTS[0].0),
        Kind::Markup,
        format!("{header}{table}").as_bytes(),
    )?;
    files::write_json(
        &out.join(CHAOS_OUTPUTS[1].0),
        &ChaosReport { scenarios: &rows },
    )?;
    println!("results in {}", out.display());
    let failed: Vec<_> = rows
        .iter()
        .filter(|r| !r.pass)
        .map(|r| r.scenario)
        .collect();
    ensure!(
        failed.is_empty(),
        "{} of {} scenarios failed: {}",
        failed.len(),
        rows.len(),
        failed.join(", ")
    );
    Ok(())
}

/// The markdown table of the rows, and the tally.
pub fn format_table(rows: &[Row]) -> String {
    let mut table = Table::new([
        "scenario",
        "expected",
        "observed",
        "published",
        "received",
        "missed",
        "unread",
        "unaccounted",
        "result",
    ])
    .right(&[3, 4, 5, 6, 7]);
    for r in rows {
        table.row([
            r.scenario.to_string(),
            r.expected.to_string(),
            r.observed.replace('|', "/"),
            r.published.to_string(),
            r.received.to_string(),
            r.missed.to_string(),
            r.unread.to_string(),
            r.unaccounted.to_string(),
            if r.pass { "pass" } else { "FAIL" }.to_string(),
        ]);
    }
    let passed = rows.iter().filter(|r| r.pass).count();
    format!(
        "{}\n{passed} of {} scenarios passed.\n",
        table.markdown(),
        rows.len()
    )
}

/// A started feed or engine with its folder.
struct Proc {
    sup: Supervised,
    dir: PathBuf,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.sup.pid()
    }

    /// Waits up to `secs` for the exit.
    fn exit_within(&mut self, secs: f64) -> Result<ExitStatus> {
        self.sup
            .wait_timeout(Duration::from_secs_f64(secs))
            .with_context(|| format!("{} did not exit within {secs} s", self.sup.name()))
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    fn engine_summary(&self) -> Result<EngineSummary> {
        read_json(&self.dir.join("engine_summary.json"))
    }

    fn feed_summary(&self) -> Result<FeedSummary> {
        read_json(&self.dir.join("feed_summary.json"))
    }

    /// Stops the process (SIGSTOP) for `ms` milliseconds, then lets it go on.
    fn pause_ms(&mut self, ms: u64) -> Result<()> {
        self.signal(Signal::Stop)?;
        sleep_ms(ms);
        self.signal(Signal::Cont)
    }

    fn signal(&mut self, sig: Signal) -> Result<()> {
        ensure!(
            self.sup.signal(sig),
            "cannot send {} to {}",
            sig.name(),
            self.sup.name()
        );
        Ok(())
    }
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

impl Env {
    /// Whether neither the ring file nor its lock file is left.
    fn ring_removed(&self) -> bool {
        !self.ring.exists() && !lock_path(&self.ring).exists()
    }

    /// Writes the configuration of `knobs` into `dir/config.toml`: the shipped default
    /// (`configs/default.toml`) with the scenario's ring, cores, timings and two symbols
    /// at half the rate each.
    fn config(&self, dir: &Path, k: Knobs, more: &dyn Fn(Edit) -> Edit) -> Result<PathBuf> {
        let gone = if k.engine_waits {
            OnProducerGone::Wait
        } else {
            OnProducerGone::Exit
        };
        let mut edit = Edit::new(DEFAULT_TOML)
            .set("seed", 7)
            .set("duration_s", 2.0)
            .set("warmup_s", 0.2)
            .set("ring.path", &self.ring)
            .set("ring.capacity", k.capacity)
            .set("ring.lossless", k.lossless)
            .set("ring.consumer_timeout_ms", k.consumer_timeout_ms)
            .set("ring.wait_for_consumers", 1)
            .set("cores.feed_md", self.cores.0)
            .set("cores.engine_hot", self.cores.1)
            .set("feed.wait", WaitStrategy::SpinYield)
            .set("engine.wait", WaitStrategy::SpinYield)
            .set("engine.grace_s", 1.0)
            .set("engine.producer_timeout_ms", PRODUCER_TIMEOUT_MS)
            .set("engine.on_producer_gone", gone)
            .set("log.interval_ms", 500)
            .truncate("symbols", 2);
        for i in 0..2 {
            edit = edit.set(&format!("symbols[{i}].rate_per_s"), k.rate / 2);
        }
        let text = more(edit).finish()?;
        let path = dir.join("config.toml");
        let header = Kind::Text.header("a lab chaos scenario's configuration");
        files::write(&path, Kind::Text, format!("{header}{text}").as_bytes())?;
        Ok(path)
    }

    /// Starts `bin` (feed or engine) in the folder `dir/<name>` with `knobs` and a
    /// `--duration` of `secs`.
    fn start(&self, name: &'static str, k: Knobs, secs: f64) -> Result<Proc> {
        self.start_with(name, k, secs, &|e| e, &[])
    }

    /// [`Env::start`] with the configuration edited further by `edit` and `args` added
    /// to the command line.
    fn start_with(
        &self,
        name: &'static str,
        k: Knobs,
        secs: f64,
        edit: &dyn Fn(Edit) -> Edit,
        args: &[&std::ffi::OsStr],
    ) -> Result<Proc> {
        let bin = if name.starts_with("feed") {
            &self.feed
        } else {
            &self.engine
        };
        let dir = self.dir.join(name);
        files::create_dir_all(&dir)?;
        let config = self.config(&dir, k, edit)?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(&dir)
            .arg("--duration")
            .arg(secs.to_string())
            .args(args);
        spawn(cmd, name, dir)
    }
}

fn spawn(mut cmd: Command, name: &'static str, dir: PathBuf) -> Result<Proc> {
    let file = |n: &str| files::create_log(&dir.join(n), &format!("{n} of the {name}"));
    cmd.stdin(Stdio::null())
        .stdout(file("stdout.log")?)
        .stderr(file("stderr.log")?);
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    Ok(Proc {
        sup: Supervised::new(name, child),
        dir,
    })
}

/// `code N` or `signal N`.
fn exit_text(s: ExitStatus) -> String {
    describe_exit("", s).trim().to_string()
}

/// Both exited 0, and the engine's count of published ticks matches the feed's.
fn clean_pair(feed: &mut Proc, engine: &mut Proc, row: &mut Row, secs: f64) -> Result<bool> {
    let fs = feed.exit_within(secs)?;
    let es = engine.exit_within(5.0)?;
    let f = feed.feed_summary()?;
    let e = engine.engine_summary()?;
    row.account(f.published, &e);
    let ok = fs.success() && es.success() && e.published_seen == f.published;
    row.observed = format!(
        "feed {}, engine {}; engine saw {} published, feed says {}",
        exit_text(fs),
        exit_text(es),
        e.published_seen,
        f.published
    );
    Ok(ok)
}

fn engine_first(env: &Env, row: &mut Row) -> Result<bool> {
    let k = Knobs::default();
    let mut engine = env.start("engine", k, 60.0)?;
    sleep_ms(400);
    let mut feed = env.start("feed", k, 2.0)?;
    let ok = clean_pair(&mut feed, &mut engine, row, 10.0)?;
    let waited = engine.stderr().contains("waiting for feed");
    row.observed = format!("engine waited: {waited}; {}", row.observed);
    Ok(ok && waited)
}

fn feed_first(env: &Env, row: &mut Row) -> Result<bool> {
    let k = Knobs::default();
    let mut feed = env.start("feed", k, 2.0)?;
    sleep_ms(600);
    let mut engine = env.start("engine", k, 60.0)?;
    clean_pair(&mut feed, &mut engine, row, 10.0)
}

fn feed_killed(env: &Env, row: &mut Row) -> Result<bool> {
    let k = Knobs::default();
    let mut engine = env.start("engine", k, 60.0)?;
    let mut feed = env.start("feed", k, 30.0)?;
    sleep_ms(1500);
    feed.signal(Signal::Kill)?;
    let killed = Instant::now();
    let es = engine.exit_within(10.0)?;
    let after_ms = killed.elapsed().as_millis();
    let e = engine.engine_summary()?;
    // The feed wrote no summary: its count is the ring header's, as the engine read it.
    row.account(e.published_seen, &e);
    let said = engine.stderr().contains("stopped showing signs of life");
    row.observed = format!(
        "engine {} {after_ms} ms after the kill (timeout {PRODUCER_TIMEOUT_MS} ms), end_reason {:?}, said so: {said}",
        exit_text(es),
        e.end_reason
    );
    Ok(es.code() == Some(1)
        && e.end_reason == EndReason::ProducerGone
        && said
        && e.published_seen > 0)
}

/// A feed SIGKILLed under an engine in wait mode, and a second feed started on its
/// ring: both feeds with `feed_edit`, the engine with `engine_edit`.
struct Restarted {
    engine: Proc,
    feed1: Proc,
    feed2: Proc,
    engine_exit: ExitStatus,
    feed2_exit: ExitStatus,
    f2: FeedSummary,
    e: EngineSummary,
}

fn restart_feed(
    env: &Env,
    row: &mut Row,
    feed_edit: &dyn Fn(Edit) -> Edit,
    engine_edit: &dyn Fn(Edit) -> Edit,
) -> Result<Restarted> {
    let k = Knobs {
        engine_waits: true,
        ..Knobs::default()
    };
    let mut engine = env.start_with("engine", k, 60.0, engine_edit, &[])?;
    let mut feed1 = env.start_with("feed1", k, 30.0, feed_edit, &[])?;
    sleep_ms(1500);
    feed1.signal(Signal::Kill)?;
    feed1.exit_within(5.0)?;
    sleep_ms(1000);
    let mut feed2 = env.start_with("feed2", k, 1.5, feed_edit, &[])?;
    let feed2_exit = feed2.exit_within(10.0)?;
    sleep_ms(500);
    engine.signal(Signal::Int)?;
    let engine_exit = engine.exit_within(10.0)?;
    let f2 = feed2.feed_summary()?;
    let e = engine.engine_summary()?;
    ensure!(
        e.sessions.len() == 2,
        "engine reports {} sessions, expected 2: {:?}",
        e.sessions.len(),
        e.sessions
    );
    row.account(e.sessions[0].published + f2.published, &e);
    Ok(Restarted {
        engine,
        feed1,
        feed2,
        engine_exit,
        feed2_exit,
        f2,
        e,
    })
}

fn feed_restarted(env: &Env, row: &mut Row) -> Result<bool> {
    let Restarted {
        feed1,
        feed2,
        engine_exit: es,
        feed2_exit: f2s,
        f2,
        e,
        ..
    } = restart_feed(env, row, &|e| e, &|e| e)?;
    let sessions = &e.sessions;
    let (s1, s2) = (&sessions[0], &sessions[1]);
    let reclaimed = feed2
        .stderr()
        .contains(&format!("reclaimed the ring left by pid {}", feed1.pid()));
    let per_session_ok = sessions
        .iter()
        .all(|s| s.published == s.received + s.missed + s.unread);
    row.observed = format!(
        "engine {}; session 1: pid {} {:?} after {} published; session 2: pid {} {:?}, {} published (feed2 says {}); feed2 {}, reclaimed the ring: {reclaimed}",
        exit_text(es),
        s1.producer_pid,
        s1.end,
        s1.published,
        s2.producer_pid,
        s2.end,
        s2.published,
        f2.published,
        exit_text(f2s),
    );
    Ok(es.success()
        && f2s.success()
        && s1.producer_pid == feed1.pid()
        && s1.end == EndReason::ProducerGone
        && s2.producer_pid == feed2.pid()
        && s2.published == f2.published
        && per_session_ok
        && reclaimed)
}

fn engine_killed(env: &Env, row: &mut Row) -> Result<bool> {
    let k = Knobs::default();
    let mut feed = env.start("feed", k, 3.0)?;
    let mut engine1 = env.start("engine1", k, 60.0)?;
    sleep_ms(1000);
    engine1.signal(Signal::Kill)?;
    engine1.exit_within(5.0)?;
    sleep_ms(500);
    let mut engine2 = env.start("engine2", k, 60.0)?;
    let ok = clean_pair(&mut feed, &mut engine2, row, 10.0)?;
    let f = feed.feed_summary()?;
    let steady = f.achieved_per_s >= 0.98 * f.offered_per_s;
    row.observed = format!(
        "feed end {:?}, achieved {:.0}/s of {:.0}/s; {}",
        f.end_reason, f.achieved_per_s, f.offered_per_s, row.observed
    );
    Ok(ok && steady && f.end_reason == EndReason::EndOfStream)
}

fn second_feed(env: &Env, row: &mut Row) -> Result<bool> {
    let k = Knobs::default();
    let mut engine = env.start("engine", k, 60.0)?;
    let mut feed1 = env.start("feed1", k, 2.5)?;
    sleep_ms(700);
    let mut feed2 = env.start("feed2", k, 2.0)?;
    let f2s = feed2.exit_within(5.0)?;
    let refusal = feed2.stderr();
    let named = refusal.contains(&format!(
        "held by another running feed (pid {})",
        feed1.pid()
    ));
    let ok = clean_pair(&mut feed1, &mut engine, row, 10.0)?;
    row.observed = format!(
        "second feed {}, message names pid {}: {named}; {}",
        exit_text(f2s),
        feed1.pid(),
        row.observed
    );
    Ok(ok && !f2s.success() && named && !feed2.dir.join("feed_summary.json").exists())
}

fn stale_ring(env: &Env, row: &mut Row) -> Result<bool> {
    let k = Knobs::default();
    let mut feed1 = env.start("feed1", k, 30.0)?;
    sleep_ms(700);
    feed1.signal(Signal::Kill)?;
    feed1.exit_within(5.0)?;
    let left = env.ring.exists();
    let mut engine = env.start("engine", k, 60.0)?;
    sleep_ms(700);
    let mut feed2 = env.start("feed2", k, 1.5)?;
    let ok = clean_pair(&mut feed2, &mut engine, row, 10.0)?;
    let engine_saw = engine
        .stderr()
        .contains(&format!("was left by pid {}", feed1.pid()));
    let reclaimed = feed2
        .stderr()
        .contains(&format!("reclaimed the ring left by pid {}", feed1.pid()));
    let removed = env.ring_removed();
    row.observed = format!(
        "dead feed's ring left: {left}; engine ignored it: {engine_saw}; new feed reclaimed it: {reclaimed}; removed at the end: {removed}; {}",
        row.observed
    );
    Ok(ok && left && engine_saw && reclaimed && removed)
}

fn engine_lapped(env: &Env, row: &mut Row) -> Result<bool> {
    let k = Knobs {
        capacity: MIN_RING_CAPACITY,
        ..Knobs::default()
    };
    let mut engine = env.start("engine", k, 60.0)?;
    let mut feed = env.start("feed", k, 3.0)?;
    sleep_ms(1000);
    engine.pause_ms(400)?;
    let ok = clean_pair(&mut feed, &mut engine, row, 10.0)?;
    let e = engine.engine_summary()?;
    row.observed = format!(
        "{} gaps, {} missed, {} corrupt; {}",
        e.gaps, e.missed, e.corrupt, row.observed
    );
    Ok(ok && e.gaps >= 1 && e.missed > 0 && e.corrupt == 0)
}

fn lossless_stall(env: &Env, row: &mut Row) -> Result<bool> {
    let k = Knobs {
        capacity: MIN_RING_CAPACITY,
        lossless: true,
        consumer_timeout_ms: 3000,
        ..Knobs::default()
    };
    let mut engine = env.start("engine", k, 60.0)?;
    let mut feed = env.start("feed", k, 3.0)?;
    sleep_ms(1000);
    engine.pause_ms(400)?;
    let ok = clean_pair(&mut feed, &mut engine, row, 15.0)?;
    let f = feed.feed_summary()?;
    let e = engine.engine_summary()?;
    let l = f.lossless.unwrap_or_default();
    row.observed = format!(
        "feed waited {} times ({:.0} ms), evicted {}; engine {} gaps; {}",
        l.waits, l.wait_ms, l.evictions, e.gaps, row.observed
    );
    Ok(ok && e.missed == 0 && e.gaps == 0 && l.waits >= 1 && l.evictions == 0)
}

fn lossless_dead(env: &Env, row: &mut Row) -> Result<bool> {
    let k = Knobs {
        capacity: MIN_RING_CAPACITY,
        lossless: true,
        consumer_timeout_ms: 1000,
        ..Knobs::default()
    };
    let mut engine1 = env.start("engine1", k, 60.0)?;
    let mut feed = env.start("feed", k, 4.0)?;
    sleep_ms(1000);
    engine1.signal(Signal::Kill)?;
    engine1.exit_within(5.0)?;
    // Past the eviction (the ring fills within 0.1 s, then 1 s of timeout).
    sleep_ms(2200);
    let mut engine2 = env.start("engine2", k, 60.0)?;
    let ok = clean_pair(&mut feed, &mut engine2, row, 15.0)?;
    let f = feed.feed_summary()?;
    let e = engine2.engine_summary()?;
    let l = f.lossless.unwrap_or_default();
    let evicted_pid = l.evicted.first().map(|v| v.pid);
    let said = feed
        .stderr()
        .contains(&format!("evicted engine pid {}", engine1.pid()));
    row.observed = format!(
        "feed evicted {} engine(s) (pid {:?}, had passed seq {:?}), said so: {said}; new engine: {} gaps, lossless after; {}",
        l.evictions,
        evicted_pid,
        l.evicted.first().map(|v| v.cursor),
        e.gaps,
        row.observed
    );
    Ok(ok
        && l.evictions == 1
        && evicted_pid == Some(engine1.pid())
        && said
        && f.end_reason == EndReason::EndOfStream)
}

/// Interval log entries in `path` that decode as histograms (0 if none parse).
fn hlog_intervals(path: &Path) -> Result<usize> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    crate::hlog::count_intervals(&bytes)
}

fn sigint_feed(env: &Env, row: &mut Row) -> Result<bool> {
    let k = Knobs::default();
    let mut engine = env.start("engine", k, 60.0)?;
    let mut feed = env.start("feed", k, 30.0)?;
    sleep_ms(1500);
    feed.signal(Signal::Int)?;
    let ok = clean_pair(&mut feed, &mut engine, row, 5.0)?;
    let f = feed.feed_summary()?;
    let e = engine.engine_summary()?;
    let intervals = hlog_intervals(&engine.dir.join("engine.hlog"))?;
    let removed = env.ring_removed();
    row.observed = format!(
        "feed end {:?}, engine end {:?}; engine.hlog: {intervals} intervals; ring removed: {removed}; {}",
        f.end_reason, e.end_reason, row.observed
    );
    Ok(ok
        && f.end_reason == EndReason::Signal
        && e.end_reason == EndReason::EndOfStream
        && intervals > 0
        && removed)
}

fn sigterm_both(env: &Env, row: &mut Row) -> Result<bool> {
    let k = Knobs::default();
    let mut engine = env.start("engine", k, 60.0)?;
    let mut feed = env.start("feed", k, 30.0)?;
    sleep_ms(1500);
    engine.signal(Signal::Term)?;
    feed.signal(Signal::Term)?;
    let fs = feed.exit_within(5.0)?;
    let es = engine.exit_within(5.0)?;
    let f = feed.feed_summary()?;
    let e = engine.engine_summary()?;
    row.account(f.published, &e);
    let intervals = hlog_intervals(&engine.dir.join("engine.hlog"))?;
    let removed = env.ring_removed();
    row.observed = format!(
        "feed {} ({:?}), engine {} ({:?}); engine.hlog: {intervals} intervals; ring removed: {removed}",
        exit_text(fs),
        f.end_reason,
        exit_text(es),
        e.end_reason
    );
    Ok(fs.success()
        && es.success()
        && f.end_reason == EndReason::Signal
        && intervals > 0
        && removed
        && e.published_seen == f.published)
}

fn lab_run_ctrl_c(env: &Env, row: &mut Row) -> Result<bool> {
    let config = env.config(&env.dir, Knobs::default(), &|e| e)?;
    let out = env.dir.join("run");
    let mut cmd = Command::new(&env.lab);
    cmd.arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--duration")
        .arg("30")
        .arg("--out")
        .arg(&out)
        .arg("--bin-dir")
        .arg(env.feed.parent().unwrap_or(Path::new(".")));
    let mut lab = spawn(cmd, "lab", env.dir.clone())?;
    sleep_ms(2000);
    lab.signal(Signal::Int)?;
    let ls = lab.exit_within(20.0)?;
    let text = std::fs::read_to_string(env.dir.join("stderr.log")).unwrap_or_default()
        + &std::fs::read_to_string(env.dir.join("stdout.log")).unwrap_or_default();
    let pids = child_pids(&text);
    let left: Vec<u32> = pids.iter().copied().filter(|&p| process_alive(p)).collect();
    let summary: common::summary::Summary = read_json(&out.join("summary.json"))?;
    let e: EngineSummary = read_json(&out.join("engine_summary.json"))?;
    row.account(summary.ticks.published, &e);
    let interrupted = text.contains("interrupted by SIGINT");
    row.observed = format!(
        "lab {}, said interrupted: {interrupted}; children {pids:?} still running: {left:?}",
        exit_text(ls)
    );
    Ok(pids.len() == 2 && left.is_empty() && interrupted && ls.code() == Some(1))
}

/// Every good tick of `epoch` in the journal `dir`, and the bytes of torn tails.
fn journal_ticks(dir: &Path, epoch: u64) -> Result<(Vec<Tick>, u64)> {
    let reads = Journal::open(dir)?.read(Some(epoch))?;
    let torn = reads
        .iter()
        .filter_map(|r| r.torn.as_ref().map(|t| t.0))
        .sum();
    Ok((reads.into_iter().flat_map(|r| r.ticks).collect(), torn))
}

/// The feed's history digest ([`ContentDigest`], symbol by symbol, oldest first) of
/// `ticks` held in full.
fn history_digest(ticks: &[Tick]) -> String {
    let mut by_symbol: std::collections::BTreeMap<u16, Vec<&Tick>> = Default::default();
    for t in ticks {
        by_symbol.entry(t.symbol).or_default().push(t);
    }
    let mut d = ContentDigest::default();
    for t in by_symbol.values().flatten() {
        d.add(t);
    }
    format!("{:016x}", d.value())
}

/// How a journal scenario's second feed and its engine ended.
struct OnJournal {
    f2s: ExitStatus,
    es: ExitStatus,
    f2: FeedSummary,
    e: EngineSummary,
    j: JournalReport,
    /// Every feed session accounted exactly.
    per_session_ok: bool,
}

/// Waits for `feed2` (started on the journal a killed feed left), stops the engine,
/// reads their summaries and feed2's journal report, and accounts the row: the engine
/// must have seen two feed sessions.
fn end_on_journal(feed2: &mut Proc, engine: &mut Proc, row: &mut Row) -> Result<OnJournal> {
    let f2s = feed2.exit_within(10.0)?;
    sleep_ms(500);
    engine.signal(Signal::Int)?;
    let es = engine.exit_within(10.0)?;
    let f2 = feed2.feed_summary()?;
    let e = engine.engine_summary()?;
    let j = f2
        .journal
        .clone()
        .context("feed2 wrote no journal report")?;
    let sessions = &e.sessions;
    ensure!(
        sessions.len() == 2,
        "engine reports {} sessions, expected 2",
        sessions.len()
    );
    row.account(sessions[0].published + f2.published, &e);
    let per_session_ok = sessions
        .iter()
        .all(|s| s.published == s.received + s.missed + s.unread);
    Ok(OnJournal {
        f2s,
        es,
        f2,
        e,
        j,
        per_session_ok,
    })
}

fn journal_restored(env: &Env, row: &mut Row) -> Result<bool> {
    let k = Knobs {
        engine_waits: true,
        ..Knobs::default()
    };
    let journal = env.dir.join("journal");
    let with = |e: Edit| e.set("feed.journal.dir", &journal);
    let mut engine = env.start("engine", k, 60.0)?;
    let mut feed1 = env.start_with("feed1", k, 30.0, &with, &[])?;
    sleep_ms(1500);
    feed1.signal(Signal::Kill)?;
    feed1.exit_within(5.0)?;
    // What the killed feed left: every good block of epoch 1.
    let (kept, torn) = journal_ticks(&journal, 1)?;
    sleep_ms(500);
    let mut feed2 = env.start_with("feed2", k, 1.5, &with, &[])?;
    let OnJournal {
        f2s,
        es,
        f2,
        e,
        j,
        per_session_ok,
    } = end_on_journal(&mut feed2, &mut engine, row)?;
    let (after, _) = journal_ticks(&journal, 1)?;
    let (second, _) = journal_ticks(&journal, 2)?;
    let sessions = &e.sessions;
    let expected_digest = history_digest(&[kept.clone(), second.clone()].concat());
    row.observed = format!(
        "feed1 published {} before the kill, journaled {} ({} bytes of torn tail); feed2: epoch {}, restored {}, cut {} bytes, published {}, journaled {}; history digest {} (expected {}); epoch 1 unchanged: {}; feed2 {}, engine {}",
        sessions[0].published,
        kept.len(),
        torn,
        j.epoch,
        j.restored,
        j.truncated_bytes,
        f2.published,
        second.len(),
        f2.history_digest,
        expected_digest,
        after == kept,
        exit_text(f2s),
        exit_text(es)
    );
    Ok(es.success()
        && f2s.success()
        && per_session_ok
        && !kept.is_empty()
        && kept.len() as u64 <= sessions[0].published
        && j.epoch == 2
        && j.restored == kept.len() as u64
        && j.truncated_bytes == torn
        && after == kept
        && second.len() as u64 == f2.published
        && f2.history_evicted == 0
        && f2.history_digest == expected_digest)
}

fn journal_continued(env: &Env, row: &mut Row) -> Result<bool> {
    use common::service::{request, Request};
    let k = Knobs {
        engine_waits: true,
        ..Knobs::default()
    };
    let journal = env.dir.join("journal");
    let socket = PathBuf::from(format!("/tmp/hft-chaos-{}-cont.sock", std::process::id()));
    let with = |e: Edit| {
        e.set("feed.journal.dir", &journal)
            .set("feed.journal.on_restart", "continue")
            .set("feed.service.socket", &socket)
    };
    let mut engine = env.start("engine", k, 60.0)?;
    let mut feed1 = env.start_with("feed1", k, 30.0, &with, &[])?;
    sleep_ms(1500);
    feed1.signal(Signal::Kill)?;
    feed1.exit_within(5.0)?;
    let (kept, _) = journal_ticks(&journal, 1)?;
    let last = kept.last().map_or(0, |t| t.seq);
    sleep_ms(500);
    let mut feed2 = env.start_with("feed2", k, 1.5, &with, &[])?;
    // A range across the restart: the end of feed1's run (restored from the journal)
    // and the start of feed2's, in one answer.
    sleep_ms(700);
    let (from, to) = (last.saturating_sub(100).max(1), last + 101);
    let range = request(
        &socket,
        &Request::Range { from, to },
        Duration::from_secs(5),
    )
    .map_err(|e| anyhow!(e))?;
    let OnJournal {
        f2s,
        es,
        f2,
        e,
        j,
        per_session_ok,
    } = end_on_journal(&mut feed2, &mut engine, row)?;
    let epochs = Journal::open(&journal)?.epochs();
    let (all, _) = journal_ticks(&journal, 1)?;
    let second = &all[kept.len().min(all.len())..];
    let sessions = &e.sessions;
    let sequence_goes_on = second
        .iter()
        .map(|t| t.seq)
        .eq(last + 1..=last + f2.published);
    let before: Vec<&Tick> = kept.iter().filter(|t| t.seq >= from).collect();
    let range_ok = range.ticks.iter().map(|t| t.seq).eq(from..to)
        && range
            .ticks
            .iter()
            .take(before.len())
            .eq(before.iter().copied());
    row.observed = format!(
        "feed1 journaled {} ticks (last sequence number {last}) before the kill, published {}; feed2: epoch {} (journal epochs {epochs:?}), continued {}, first sequence number {}, restored {}, published {}, journaled {} numbered on: {sequence_goes_on}; range {from}..{to} across the restart: {} ticks, whole and matching the journal: {range_ok}; feed2 {}, engine {}",
        kept.len(),
        sessions[0].published,
        j.epoch,
        j.continued,
        j.first_seq,
        j.restored,
        f2.published,
        second.len(),
        range.ticks.len(),
        exit_text(f2s),
        exit_text(es)
    );
    Ok(es.success()
        && f2s.success()
        && per_session_ok
        && !kept.is_empty()
        && epochs == [1]
        && j.epoch == 1
        && j.continued
        && j.first_seq == last + 1
        && j.restored == kept.len() as u64
        && all[..kept.len()] == kept[..]
        && sessions[1].published == f2.published
        && sequence_goes_on
        && range_ok
        && !socket.exists())
}

fn journal_torn(env: &Env, row: &mut Row) -> Result<bool> {
    let k = Knobs::default();
    let journal = env.dir.join("journal");
    let with = |e: Edit| e.set("feed.journal.dir", &journal);
    let mut feed1 = env.start_with("feed1", k, 1.0, &with, &[])?;
    sleep_ms(300);
    let mut engine1 = env.start("engine1", k, 60.0)?;
    let first_ok = clean_pair(&mut feed1, &mut engine1, row, 10.0)?;
    let f1 = feed1.feed_summary()?;
    // Cut the newest segment in the middle of its last block, as a crash would.
    let segment = Journal::open(&journal)?
        .segment_paths()
        .last()
        .map(Path::to_path_buf)
        .context("no journal segment")?;
    let len = std::fs::metadata(&segment)?.len();
    let file = std::fs::OpenOptions::new().write(true).open(&segment)?;
    file.set_len(len - 100)?;
    drop(file);
    let read = common::journal::read_segment(&segment)?;
    let (good, torn) = (
        read.ticks.len() as u64,
        read.torn.as_ref().map_or(0, |t| t.0),
    );
    let mut feed2 = env.start_with("feed2", k, 1.0, &with, &[])?;
    sleep_ms(300);
    let mut engine2 = env.start("engine2", k, 60.0)?;
    let first_row = row.clone();
    let second_ok = clean_pair(&mut feed2, &mut engine2, row, 10.0)?;
    let e1 = engine1.engine_summary()?;
    let e2 = engine2.engine_summary()?;
    row.add(&first_row);
    let f2 = feed2.feed_summary()?;
    let j = f2
        .journal
        .clone()
        .context("feed2 wrote no journal report")?;
    let said = feed2
        .stderr()
        .contains(&format!("cut a torn tail of {torn} bytes"));
    row.observed = format!(
        "run 1 published {} (journaled {}); cut 100 bytes: {good} good ticks, a torn tail of {torn} bytes; feed2 cut {} bytes, restored {}, said so: {said}; engines received {} and {}",
        f1.published,
        f1.journal.as_ref().map_or(0, |j| j.journaled),
        j.truncated_bytes,
        j.restored,
        e1.received,
        e2.received
    );
    Ok(first_ok
        && second_ok
        && torn > 0
        && good > 0
        && good < f1.published
        && j.truncated_bytes == torn
        && j.restored == good
        && said
        && std::fs::metadata(&segment)?.len() == read.good_bytes)
}

fn journal_foreign(env: &Env, row: &mut Row) -> Result<bool> {
    let journal = env.dir.join("journal");
    files::create_dir_all(&journal)?;
    let other = journal.join("00000001-00000001.journal");
    std::fs::write(&other, b"someone else's notes\n")?;
    let before = files::snapshot(&journal)?;
    let with = |e: Edit| e.set("feed.journal.dir", &journal);
    let mut feed = env.start_with("feed", Knobs::default(), 1.0, &with, &[])?;
    let fs = feed.exit_within(10.0)?;
    let err = feed.stderr();
    let unchanged = files::snapshot(&journal)? == before;
    let located = err.contains("config.toml:") && err.contains("feed.journal.dir");
    row.observed = format!(
        "feed {}; message located at feed.journal.dir: {located}; the folder unchanged: {unchanged}; ring left: {}",
        exit_text(fs),
        !env.ring_removed()
    );
    Ok(fs.code() == Some(2) && located && unchanged && env.ring_removed())
}

fn replay_twice(env: &Env, row: &mut Row) -> Result<bool> {
    let k = Knobs::default();
    let recorded = env.dir.join("recorded");
    let rec = |e: Edit| e.set("feed.journal.dir", &recorded);
    let pair = |name: (&'static str, &'static str),
                edit: &dyn Fn(Edit) -> Edit,
                args: &[&std::ffi::OsStr],
                row: &mut Row|
     -> Result<(bool, FeedSummary, EngineSummary)> {
        let mut feed = env.start_with(name.0, k, 1.5, edit, args)?;
        sleep_ms(300);
        let mut engine = env.start(name.1, k, 60.0)?;
        let mut r = Row::default();
        let ok = clean_pair(&mut feed, &mut engine, &mut r, 10.0)?;
        row.add(&r);
        Ok((ok, feed.feed_summary()?, engine.engine_summary()?))
    };
    let (ok0, f0, e0) = pair(("feed-record", "engine-record"), &rec, &[], row)?;
    // Another seed: a replay's ticks must come from the journal, not the generator.
    let reseed = |e: Edit| e.set("seed", 1234);
    let args = [std::ffi::OsStr::new("--replay"), recorded.as_os_str()];
    let (ok1, f1, e1) = pair(("feed-replay1", "engine-replay1"), &reseed, &args, row)?;
    let (ok2, f2, e2) = pair(("feed-replay2", "engine-replay2"), &reseed, &args, row)?;
    row.observed = format!(
        "published {} / {} / {}; history digests {} / {} / {}; order digests {} / {} / {} ({} / {} / {} orders, {} dropped)",
        f0.published,
        f1.published,
        f2.published,
        f0.history_digest,
        f1.history_digest,
        f2.history_digest,
        e0.orders_digest,
        e1.orders_digest,
        e2.orders_digest,
        e0.orders,
        e1.orders,
        e2.orders,
        e0.orders_dropped + e1.orders_dropped + e2.orders_dropped
    );
    let dropped = e0.orders_dropped
        + e1.orders_dropped
        + e2.orders_dropped
        + e0.missed
        + e1.missed
        + e2.missed
        + f0.history_dropped
        + f1.history_dropped
        + f2.history_dropped;
    Ok(ok0
        && ok1
        && ok2
        && dropped == 0
        && f1.published == f0.published
        && f2.published == f0.published
        && f1.history_digest == f0.history_digest
        && f2.history_digest == f0.history_digest
        && e1.orders_digest == e0.orders_digest
        && e2.orders_digest == e0.orders_digest
        && e0.orders > 0)
}

fn late_engine_warm(env: &Env, row: &mut Row) -> Result<bool> {
    let k = Knobs::default();
    let socket = PathBuf::from(format!("/tmp/hft-chaos-{}-warm.sock", std::process::id()));
    let feed_edit = |e: Edit| {
        e.set("feed.service.socket", &socket)
            .set("ring.wait_for_consumers", 0)
    };
    let engine_edit = |e: Edit| e.set("engine.history_service", &socket);
    let mut feed = env.start_with("feed", k, 3.0, &feed_edit, &[])?;
    sleep_ms(1500);
    let mut engine = env.start_with("engine", k, 60.0, &engine_edit, &[])?;
    let ok = clean_pair(&mut feed, &mut engine, row, 10.0)?;
    let e = engine.engine_summary()?;
    let w = e
        .warm
        .clone()
        .context("the engine wrote no warm-up report")?;
    let window = common::config::Config::shipped_default().engine.window as u64;
    row.observed = format!(
        "snapshot of {} ticks covering seq 1..={}, {} of 2 symbols' windows full, {} ring ticks skipped; fewest mids at a first quote {} (window {window}); {} orders; {}",
        w.snapshot_ticks,
        w.covered_through,
        w.symbols_full,
        w.skipped,
        w.first_quote_window_min,
        e.orders,
        row.observed
    );
    Ok(ok
        && w.error.is_none()
        && w.snapshot_ticks == 2 * window
        && w.symbols_full == 2
        && w.covered_through > 0
        && w.skipped > 0
        && w.first_quote_window_min == window
        && e.orders > 0)
}

fn feed_restarted_warm(env: &Env, row: &mut Row) -> Result<bool> {
    let socket = PathBuf::from(format!("/tmp/hft-chaos-{}-rewarm.sock", std::process::id()));
    let feed_edit = |e: Edit| e.set("feed.service.socket", &socket);
    let engine_edit = |e: Edit| e.set("engine.history_service", &socket);
    let Restarted {
        engine,
        engine_exit: es,
        feed2_exit: f2s,
        f2,
        e,
        ..
    } = restart_feed(env, row, &feed_edit, &engine_edit)?;
    let sessions = &e.sessions;
    let w = e
        .warm
        .clone()
        .context("the engine wrote no warm-up report")?;
    let said = engine
        .stderr()
        .contains("ticks of the new feed, covering it through seq");
    let window = common::config::Config::shipped_default().engine.window as u64;
    row.observed = format!(
        "engine {}; {} snapshots warmed from (at start and after the restart), said so: {said}; fewest mids at a first quote after the last warm-up {} (window {window}); session 2: {} published, {} received; feed2 {}",
        exit_text(es),
        w.warmups,
        w.first_quote_window_min,
        sessions[1].published,
        sessions[1].received,
        exit_text(f2s),
    );
    Ok(es.success()
        && f2s.success()
        && w.warmups == 2
        && said
        && w.first_quote_window_min == window
        && sessions[1].published == f2.published)
}

fn lapped_engine_recovers(env: &Env, row: &mut Row) -> Result<bool> {
    let k = Knobs {
        capacity: MIN_RING_CAPACITY,
        ..Knobs::default()
    };
    let socket = PathBuf::from(format!("/tmp/hft-chaos-{}-rec.sock", std::process::id()));
    let feed_edit = |e: Edit| e.set("feed.service.socket", &socket);
    let engine_edit = |e: Edit| {
        e.set("engine.history_service", &socket)
            .set("engine.recover", true)
    };
    let mut engine = env.start_with("engine", k, 60.0, &engine_edit, &[])?;
    let mut feed = env.start_with("feed", k, 3.0, &feed_edit, &[])?;
    sleep_ms(1000);
    // Lapped twice: each pause lets the feed run hundreds of ring lengths ahead.
    engine.pause_ms(400)?;
    sleep_ms(500);
    engine.pause_ms(300)?;
    let ok = clean_pair(&mut feed, &mut engine, row, 10.0)?;
    let e = engine.engine_summary()?;
    let r = e
        .recovery
        .clone()
        .context("the engine wrote no recovery report")?;
    row.observed = format!(
        "{} gaps, {} missed: {} recovered, {} unrecovered in {} stale stretches (longest {:.1} ms, {} ranges, {} live ticks buffered at most, {} past the buffer); {} orders while stale, {} orders in all; hot thread {} allocator calls after warm-up; {}",
        e.gaps,
        e.missed,
        e.recovered,
        e.unrecovered,
        r.recoveries,
        r.stale_ms_max,
        r.ranges,
        r.buffered_max,
        r.overflowed,
        r.orders_while_stale,
        e.orders,
        e.hot_allocs.calls(),
        row.observed
    );
    Ok(ok
        && e.gaps >= 2
        && e.missed > 0
        && e.recovered == e.missed
        && e.unrecovered == 0
        && r.recoveries >= 2
        && r.orders_while_stale == 0
        && e.hot_allocs.calls() == 0
        && e.orders > 0
        && e.sessions.iter().map(|s| s.recovered).sum::<u64>() == e.recovered)
}

fn recovery_from_journal(env: &Env, row: &mut Row) -> Result<bool> {
    let k = Knobs {
        capacity: MIN_RING_CAPACITY,
        ..Knobs::default()
    };
    let socket = PathBuf::from(format!("/tmp/hft-chaos-{}-rj.sock", std::process::id()));
    let journal = env.dir.join("journal");
    // The memory holds 500 ticks (25 ms at 20,000/s): a 400 ms pause misses far more.
    let feed_edit = |e: Edit| {
        e.set("feed.service.socket", &socket)
            .set("feed.history.retention_ticks", 500)
            .set("feed.journal.dir", &journal)
    };
    let engine_edit = |e: Edit| {
        e.set("engine.history_service", &socket)
            .set("engine.recover", true)
    };
    let mut engine = env.start_with("engine", k, 60.0, &engine_edit, &[])?;
    let mut feed = env.start_with("feed", k, 3.0, &feed_edit, &[])?;
    sleep_ms(1000);
    engine.pause_ms(400)?;
    let ok = clean_pair(&mut feed, &mut engine, row, 10.0)?;
    let e = engine.engine_summary()?;
    let f = feed.feed_summary()?;
    let svc = f
        .service
        .clone()
        .context("the feed wrote no service report")?;
    row.observed = format!(
        "{} gaps, {} missed: {} recovered, {} unrecovered; feed history held {} ticks at the end, evicted {}; service sent {} ticks, {} of them read back from the journal, {} journal read errors; {}",
        e.gaps,
        e.missed,
        e.recovered,
        e.unrecovered,
        f.history_ticks,
        f.history_evicted,
        svc.ticks_served,
        svc.journal_ticks_served,
        svc.journal_errors,
        row.observed
    );
    Ok(ok
        && e.gaps >= 1
        && e.missed > 500
        && e.recovered == e.missed
        && e.unrecovered == 0
        && svc.journal_ticks_served > 0
        && svc.journal_errors == 0
        && f.history_evicted > 0)
}

/// The thread id of the thread named `name` in process `pid`.
fn thread_id(pid: u32, name: &str) -> Option<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .filter_map(|e| e.ok())
        .find(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim_end() == name)
        })?
        .file_name()
        .to_str()?
        .parse()
        .ok()
}

/// Counts the system calls thread `tid` makes in the next `secs` seconds, with `perf stat
/// -e raw_syscalls:sys_enter -t TID` (the kernel's syscall-entry tracepoint); `Err` says
/// why they could not be counted.
fn count_syscalls(tid: u32, secs: f64) -> std::result::Result<u64, String> {
    let out = Command::new("perf")
        .args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "-t"])
        .arg(tid.to_string())
        .args(["--", "sleep"])
        .arg(format!("{secs}"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run perf: {e}"))?;
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("raw_syscalls:sys_enter"))
        .ok_or_else(|| format!("perf counted nothing: {}", text.trim()))?;
    let field = line.split(',').next().unwrap_or_default();
    field
        .parse()
        .map_err(|_| format!("perf says {field}: {}", text.trim()))
}

fn service_abuse(env: &Env, row: &mut Row) -> Result<bool> {
    use common::service::{decode_response, encode_request, request, Request, Response};
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let k = Knobs::default();
    let socket = PathBuf::from(format!("/tmp/hft-chaos-{}.sock", std::process::id()));
    // The md thread spins (the shipped strategy) so that what is counted is its work
    // per tick, not the yields of an idle wait.
    let with = |e: Edit| {
        e.set("feed.service.socket", &socket)
            .set("feed.service.client_timeout_ms", 300)
            .set("feed.wait", WaitStrategy::Spin)
    };
    let mut feed = env.start_with("feed", k, 3.0, &with, &[])?;
    sleep_ms(300);
    let mut engine = env.start("engine", k, 60.0)?;
    let started = Instant::now();
    while !socket.exists() {
        ensure!(
            started.elapsed() < Duration::from_secs(10),
            "the feed made no socket"
        );
        sleep_ms(20);
    }
    sleep_ms(700);
    // The md thread's system calls, counted while the clients below misbehave.
    const COUNT_S: f64 = 1.5;
    let md = thread_id(feed.pid(), "feed-md");
    let counting = std::thread::spawn(move || match md {
        Some(tid) => count_syscalls(tid, COUNT_S),
        None => Err("no thread feed-md in the feed".into()),
    });
    let t = Duration::from_secs(5);
    // Garbage: another protocol version.
    let mut g = UnixStream::connect(&socket)?;
    g.set_read_timeout(Some(t))?;
    g.write_all(&[2, 0, 0, 0, 9, 9])?;
    let mut reply = Vec::new();
    let _ = g.read_to_end(&mut reply);
    let garbage_refused = matches!(
        decode_response(&reply).map_err(|e| anyhow!(e))?,
        Some((Response::Error { code: 3, .. }, _))
    );
    // Half a frame, then silence.
    let mut stall = UnixStream::connect(&socket)?;
    let mut half = Vec::new();
    encode_request(&Request::Snapshot { depth: 5 }, &mut half);
    stall.write_all(&half[..5])?;
    stall.set_read_timeout(Some(t))?;
    let mut rest = Vec::new();
    let _ = stall.read_to_end(&mut rest);
    let stall_closed = !rest.is_empty();
    // 100 at once, held while a well-behaved client asks for a range.
    let many: Vec<UnixStream> = (0..100)
        .filter_map(|_| UnixStream::connect(&socket).ok())
        .collect();
    sleep_ms(200);
    let held = many.len();
    drop(many);
    sleep_ms(100);
    let range =
        request(&socket, &Request::Range { from: 1, to: 1001 }, t).map_err(|e| anyhow!(e))?;
    let range_ok = range.ticks.iter().map(|t| t.seq).eq(1..1001);
    let syscalls = counting
        .join()
        .unwrap_or_else(|_| Err("the counting thread panicked".into()));
    let ok = clean_pair(&mut feed, &mut engine, row, 10.0)?;
    let f = feed.feed_summary()?;
    let svc = f
        .service
        .clone()
        .context("the feed wrote no service report")?;
    // The ticks scheduled while it ran, up to its 3 s: the time after the last tick
    // (the stream's end, the summary) schedules none.
    let expected = (f.offered_per_s * f.elapsed_s.min(3.0)).round() as u64;
    let rate_kept = f.published + 2 >= expected;
    // "No system call per tick": at most one per 1,000 ticks published while counted.
    let ticks_counted = f.offered_per_s * COUNT_S;
    let (md_syscalls, syscalls_ok) = match &syscalls {
        Ok(n) => (
            format!(
                "{n} in {COUNT_S} s ({:.6} per tick)",
                *n as f64 / ticks_counted
            ),
            (*n as f64) < ticks_counted / 1000.0,
        ),
        Err(why) => (format!("not measured ({why})"), !env.require_perf),
    };
    row.observed = format!(
        "garbage refused: {garbage_refused}; stalled client closed: {stall_closed}; {held} clients at once, {} refused busy; range 1..1001 whole: {range_ok}; service: {} requests, {} errors, {} stalled, {} ticks served, latency p99 {:.0} µs; feed published {} of {expected} offered, md allocations {}, md system calls {md_syscalls}; {}",
        svc.refused_busy,
        svc.requests,
        svc.errors,
        svc.closed_stalled,
        svc.ticks_served,
        svc.latency_p99_us,
        f.published,
        f.md_allocs.calls(),
        row.observed
    );
    Ok(ok
        && garbage_refused
        && stall_closed
        && held == 100
        && svc.refused_busy >= 84
        && range_ok
        && rate_kept
        && f.md_allocs.calls() == 0
        && syscalls_ok
        && !socket.exists())
}

/// The engine and feed pids lab printed (`engine … pid N, feed … pid M`).
fn child_pids(text: &str) -> Vec<u32> {
    let Some(line) = text.lines().find(|l| l.contains("lab: config")) else {
        return Vec::new();
    };
    line.split(" pid ")
        .skip(1)
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::md_row;

    #[test]
    fn table_lists_every_row_and_the_tally() {
        let rows = vec![
            Row {
                scenario: "a",
                expected: "x",
                observed: "y | z".into(),
                published: 10,
                received: 8,
                missed: 2,
                pass: true,
                ..Row::default()
            },
            Row {
                scenario: "b",
                expected: "x",
                unaccounted: -3,
                ..Row::default()
            },
        ];
        let t = format_table(&rows);
        assert_eq!(
            md_row(&t, "a"),
            ["a", "x", "y / z", "10", "8", "2", "0", "0", "pass"]
        );
        assert_eq!(
            md_row(&t, "b"),
            ["b", "x", "", "0", "0", "0", "0", "-3", "FAIL"]
        );
        assert!(t.contains("1 of 2 scenarios passed."), "{t}");
    }

    #[test]
    fn pids_are_read_from_labs_start_line() {
        let text = "lab: config c.toml (as run: x), output o, engine /b/engine pid 41, feed /b/feed pid 42\nother";
        assert_eq!(child_pids(text), vec![41, 42]);
        assert!(child_pids("nothing").is_empty());
    }

    #[test]
    fn scenario_names_are_unique() {
        let mut names: Vec<_> = SCENARIOS.iter().map(|s| s.0).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SCENARIOS.len());
    }
}
