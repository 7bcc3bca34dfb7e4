//! `lab run`: starts the engine and then the feed on one configuration (or, with
//! `--single-process`, one pipeline process running both), relays their output, waits
//! for them, merges their summaries into `summary.json` and prints the final table.
//! [`execute`] is the part `lab compare` shares: one run of one variant into one folder.
//!
//! # Guarantees
//!
//! - The configuration is validated (with the cores this process may use) before
//!   anything starts; an invalid one is reported as `FILE:LINE:COL: KEY: MESSAGE` and is
//!   bad input (exit code 2).
//! - The configuration as run is always recorded as `DIR/config.toml`, and both children
//!   read that copy: the file's own text, or, when `--scratch`, `--levels` or
//!   `--duration` is given, a copy with those keys edited by `common::config::edit`
//!   (comments and layout kept, see [`derive_config`]) and validated like the original (an invalid
//!   value is bad input, reported as `FILE with FLAGS: KEY: MESSAGE`).
//! - The allocators are chosen by binary: `--engine-alloc` and `--feed-alloc` pick
//!   `engine`/`engine-<ALLOC>` and `feed`/`feed-<ALLOC>` (see [`crate::variant`]). With
//!   `--single-process`, `--pipeline-alloc` picks `pipeline`/`pipeline-<ALLOC>` ([`Binaries`]):
//!   one supervised child instead of two, which refuses `--engines` above 1 (bad input;
//!   `--engine-alloc` and `--feed-alloc` cannot be combined with it, clap refuses them).
//! - No child is ever left running: each is a [`Supervised`] child, terminated (SIGTERM,
//!   5 s, SIGKILL) and reaped on every error path. SIGINT and SIGTERM sent to `lab` are
//!   forwarded to both children as SIGTERM; a second one kills them.
//! - A child that fails stops the other one; the run then fails (exit code 1) naming the
//!   child and its status. Backstops end a run whose feed outlives its duration by more
//!   than [`FEED_OVERRUN`], or whose engine outlives the feed's end by more than the
//!   engine's `grace_s` plus [`ENGINE_OVERRUN`].
//! - Output ([`Output`]): for `lab run`, each line a child writes is relayed whole,
//!   prefixed `[feed]   `, `[engine] ` or `[pipeline] `: stdout lines to our stdout, stderr
//!   lines to our stderr. For `lab compare`, each child's stdout and stderr go to
//!   `DIR/feed.log` and `DIR/engine.log` (`DIR/pipeline.log` for one process), and lab's
//!   own messages and the final table to `DIR/lab.log`.
//! - The contract with the children: each is started as
//!   `BIN --config DIR/config.toml --out DIR [--duration SECS]`; the feed writes
//!   `DIR/feed_summary.json`, the engine `DIR/engine_summary.json` and `DIR/engine.hlog`.
//!   A pipeline is started the same way and writes all three (and, on the routing
//!   allocator, `DIR/routing.json`, which `summary.json` includes as `routing`); both its
//!   summaries report the one process's RSS, threads and allocator (the final table
//!   shows the threads and names the allocator once, as the process's; `lab compare`
//!   counts the RSS once, see `crate::report::metrics`).

use crate::child::{describe_exit, Supervised, POLL_EVERY};
use crate::cli::RunArgs;
use crate::host::Host;
use crate::table::{group, percentile_cells, Table, P9999_MIN_SAMPLES, PERCENTILE_COLUMNS};
use crate::variant::{Alloc, PipelineAlloc, Process, ScratchMode, Variant};
use anyhow::{anyhow, bail, Context, Result};
use common::config::edit::{Edit, EditError};
use common::config::{Config, ConfigError};
use common::failure::Failure;
use common::files::{self, Kind};
use common::latency::STAGES;
use common::runargs::{ENGINE_HLOG, ENGINE_SUMMARY, FEED_SUMMARY, ROUTING_REPORT};
use common::summary::{EngineRow, EngineSummary, EnginesTotal, FeedSummary, NoiseFloor, Summary};
use common::units::{fmt_ns, utc_stamp};
use serde::de::DeserializeOwned;
use signal_hook::iterator::Signals;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Folder under which default output folders are created.
pub const RESULTS_DIR: &str = "results";
/// How long past its configured duration the feed may run before `lab` stops it.
pub const FEED_OVERRUN: Duration = Duration::from_secs(60);
/// How long past the feed's end (plus the engine's `grace_s`) the engine may run.
pub const ENGINE_OVERRUN: Duration = Duration::from_secs(10);
/// Name of the configuration as run, in every run folder.
pub const CONFIG_FILE: &str = "config.toml";
/// Everything a run writes into its folder (lab's own files and the children's), with
/// each file's kind: a folder that holds one of these names must hold the project's
/// own earlier output there, never someone else's file.
pub const RUN_OUTPUTS: [(&str, Kind); 10] = [
    (CONFIG_FILE, Kind::Text),
    ("lab.log", Kind::Text),
    ("feed.log", Kind::Text),
    ("engine.log", Kind::Text),
    ("pipeline.log", Kind::Text),
    ("summary.json", Kind::Json),
    (FEED_SUMMARY, Kind::Json),
    (ENGINE_SUMMARY, Kind::Json),
    (ENGINE_HLOG, Kind::Hlog),
    (ROUTING_REPORT, Kind::Json),
];

/// Prefix of the feed's relayed lines.
const FEED_PREFIX: &str = "[feed]   ";
/// Prefix of the engine's relayed lines.
const ENGINE_PREFIX: &str = "[engine] ";
/// Prefix of a pipeline's relayed lines (one process: the feed and the engine).
const PIPELINE_PREFIX: &str = "[pipeline] ";
/// Most engines on one feed: the ring's consumer table.
pub const MAX_ENGINES: usize = common::ring::MAX_CONSUMERS;
/// Names (and folders) of the engines of a run of several.
const ENGINE_NAMES: [&str; MAX_ENGINES] = [
    "engine-1",
    "engine-2",
    "engine-3",
    "engine-4",
    "engine-5",
    "engine-6",
    "engine-7",
    "engine-8",
    "engine-9",
    "engine-10",
    "engine-11",
    "engine-12",
    "engine-13",
    "engine-14",
    "engine-15",
    "engine-16",
];
/// Prefixes of their relayed lines.
const ENGINE_PREFIXES: [&str; MAX_ENGINES] = [
    "[engine-1] ",
    "[engine-2] ",
    "[engine-3] ",
    "[engine-4] ",
    "[engine-5] ",
    "[engine-6] ",
    "[engine-7] ",
    "[engine-8] ",
    "[engine-9] ",
    "[engine-10] ",
    "[engine-11] ",
    "[engine-12] ",
    "[engine-13] ",
    "[engine-14] ",
    "[engine-15] ",
    "[engine-16] ",
];

/// The hot cores of `n` engines on one feed: the first on `cores.engine_hot`, the others
/// on the allowed cores that neither the feed's md thread nor an earlier engine holds,
/// in order. With too few cores, engines share them in turn, which only a waiting
/// (not spinning) engine may do: a spinning engine needs a core of its own, and the
/// error says how many. Bad input otherwise.
pub fn engine_cores(config: &Config, n: usize, allowed: &[usize]) -> Result<Vec<usize>> {
    if !(1..=MAX_ENGINES).contains(&n) {
        return Err(Failure::bad_input(anyhow!(
            "--engines must be between 1 and {MAX_ENGINES} (the ring's consumer table), got {n}"
        ))
        .into());
    }
    let c = &config.cores;
    let mut free: Vec<usize> = std::iter::once(c.engine_hot)
        .chain(
            allowed
                .iter()
                .copied()
                .filter(|&k| k != c.feed_md && k != c.engine_hot),
        )
        .collect();
    if free.len() >= n {
        free.truncate(n);
        return Ok(free);
    }
    if config.engine.wait == common::cores::WaitStrategy::Spin {
        return Err(Failure::bad_input(anyhow!(
            "--engines {n} with engine.wait = \"spin\" needs {} cores (the feed's md thread and one per engine), this process may use {} ({allowed:?}): run fewer engines, on more cores, or set engine.wait = \"spin_yield\" or \"block\" so that engines can share a core",
            n + 1,
            allowed.len()
        ))
        .into());
    }
    Ok((0..n).map(|i| free[i % free.len()]).collect())
}

/// Runs `lab run`.
pub fn run(args: &RunArgs) -> Result<()> {
    let allowed = common::cores::allowed_cores();
    let overrides = Overrides {
        scratch: args.scratch,
        levels: args.levels,
        duration_s: args.duration,
        settings: if args.time_allocator {
            vec![("cold.time_allocator".to_string(), "true".to_string())]
        } else {
            Vec::new()
        },
    };
    let plan = RunPlan::load(&args.config, &overrides, &allowed)?;
    if args.single_process && args.engines > 1 {
        return Err(Failure::bad_input(anyhow!(
            "--engines {} with --single-process: the pipeline runs one engine beside the feed in its one process; run several engines as separate processes (without --single-process)",
            args.engines
        ))
        .into());
    }
    let cores = engine_cores(&plan.config, args.engines as usize, &allowed)?;
    let dir = bin_dir(args.bin_dir.as_deref())?;
    let bins = if args.single_process {
        Binaries::find_pipeline(&dir, args.pipeline_alloc)?
    } else {
        Binaries::find(&dir, args.engine_alloc, args.feed_alloc)?
    };
    let out_dir = match &args.out {
        Some(d) => {
            common::runargs::prepare_out_dir(d, &RUN_OUTPUTS).map_err(Failure::bad_input)?;
            d.clone()
        }
        None => files::create_fresh_dir(&default_out_dir(
            Path::new(RESULTS_DIR),
            &args.config,
            SystemTime::now(),
        ))?,
    };
    // Register before starting anything, so that a signal cannot kill lab between
    // the start of a child and the moment it is supervised.
    let mut signals = Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .context("cannot install the SIGINT/SIGTERM handler")?;
    let noise = (args.noise > 0.0).then(|| {
        let cores = [plan.config.cores.feed_md, plan.config.cores.engine_hot];
        eprintln!(
            "lab: probing the machine's noise on cores {cores:?} for {} s before the run",
            args.noise
        );
        crate::noise::probe(&cores, args.noise, "before")
    });
    let ran = execute(
        &plan,
        &bins,
        &out_dir,
        Output::Relay,
        &mut signals,
        noise,
        &cores,
    )?;
    print!("{}", format_table(&ran.summary, &out_dir, bins.process()));
    let _ = io::stdout().flush();
    if let Some(sig) = ran.interrupted_by {
        bail!("the run was interrupted by {sig}; the summary covers it up to then");
    }
    Ok(())
}

/// Settings that replace the configuration file's, given as flags (`lab run`) or by a
/// matrix variant (`lab compare`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    /// `engine.scratch`.
    pub scratch: Option<ScratchMode>,
    /// `engine.levels`.
    pub levels: Option<u32>,
    /// `duration_s` (also passed to the children as `--duration`).
    pub duration_s: Option<f64>,
    /// Further settings (key path, value as TOML text), from a matrix variant's `set`.
    pub settings: Vec<(String, String)>,
}

impl Overrides {
    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        *self == Overrides::default()
    }

    /// The overrides as flags: `--scratch pool --levels 2 --duration 5`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.scratch {
            parts.push(format!("--scratch {s}"));
        }
        if let Some(l) = self.levels {
            parts.push(format!("--levels {l}"));
        }
        if let Some(d) = self.duration_s {
            parts.push(format!("--duration {d}"));
        }
        for (k, v) in &self.settings {
            parts.push(format!("{k} = {v}"));
        }
        parts.join(" ")
    }
}

/// `text` (a configuration) with `overrides` applied through [`Edit`]: `engine.scratch`,
/// `engine.levels` and `duration_s` are set, everything else (comments, order, layout)
/// is kept, as is each edited value's trailing comment. Without overrides the text
/// comes back as is.
pub fn derive_config(text: &str, overrides: &Overrides) -> Result<String, EditError> {
    let mut edit = Edit::new(text);
    if let Some(d) = overrides.duration_s {
        edit = edit.set("duration_s", d);
    }
    if let Some(s) = overrides.scratch {
        edit = edit.set("engine.scratch", s.name());
    }
    if let Some(l) = overrides.levels {
        edit = edit.set("engine.levels", l);
    }
    for (key, value) in &overrides.settings {
        // The value was written as TOML by the matrix: read it back as one.
        let value: toml::Value = match format!("v = {value}").parse::<toml::Table>() {
            Ok(mut t) => t.remove("v").unwrap_or(toml::Value::Boolean(false)),
            Err(_) => toml::Value::String(value.clone()),
        };
        edit = edit.set(key, value);
    }
    edit.finish()
}

/// A validated configuration, ready to be written into a run folder.
#[derive(Clone, Debug)]
pub struct RunPlan {
    /// The configuration file it comes from.
    pub source: PathBuf,
    /// The exact text the children read (`DIR/config.toml`).
    pub text: String,
    /// The same text, parsed and validated.
    pub config: Config,
    /// `--duration` for the children, if overridden.
    pub duration_s: Option<f64>,
}

impl RunPlan {
    /// Reads and validates the configuration at `path`, applies `overrides` and
    /// validates the result against `allowed` cores. Every error is bad input ([`Failure::bad_input`]):
    /// `FILE:LINE:COL: KEY: MESSAGE` for the file itself, `FILE with FLAGS: KEY: MESSAGE`
    /// for a value the overrides brought in.
    pub fn load(path: &Path, overrides: &Overrides, allowed: &[usize]) -> Result<RunPlan> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError::Read {
                path: path.to_path_buf(),
                error,
            })
            .map_err(Failure::bad_input)?;
        let config = Config::parse(&text, path, allowed).map_err(Failure::bad_input)?;
        if overrides.is_empty() {
            return Ok(RunPlan {
                source: path.to_path_buf(),
                text,
                config,
                duration_s: None,
            });
        }
        let with = overrides.describe();
        let derived = derive_config(&text, overrides)
            .map_err(|e| Failure::bad_input(anyhow!("{} with {with}: {e}", path.display())))?;
        let config = Config::parse(&derived, path, allowed).map_err(|e| match e {
            ConfigError::Invalid { key, message, .. } => {
                Failure::bad_input(anyhow!("{} with {with}: {key}: {message}", path.display()))
            }
            other => Failure::bad_input(other),
        })?;
        Ok(RunPlan {
            source: path.to_path_buf(),
            text: derived,
            config,
            duration_s: overrides.duration_s,
        })
    }
}

/// The binaries of one variant: the feed and the engine, or one pipeline.
#[derive(Clone, Debug)]
pub enum Binaries {
    /// Two processes.
    Two {
        /// The feed binary.
        feed: PathBuf,
        /// The engine binary.
        engine: PathBuf,
    },
    /// One process running the feed's and the engine's threads.
    Single {
        /// The pipeline binary.
        pipeline: PathBuf,
        /// Its global allocator.
        alloc: PipelineAlloc,
    },
}

impl Binaries {
    /// The binaries linking `engine_alloc` and `feed_alloc` in `dir`; an error naming
    /// the first one missing.
    pub fn find(dir: &Path, engine_alloc: Alloc, feed_alloc: Alloc) -> Result<Binaries> {
        Ok(Binaries::Two {
            feed: find_bin(dir, feed_alloc.feed_bin())?,
            engine: find_bin(dir, engine_alloc.engine_bin())?,
        })
    }

    /// The pipeline binary linking `alloc` in `dir`; an error naming it if missing.
    pub fn find_pipeline(dir: &Path, alloc: PipelineAlloc) -> Result<Binaries> {
        Ok(Binaries::Single {
            pipeline: find_bin(dir, alloc.bin())?,
            alloc,
        })
    }

    /// The binaries `variant` runs: from its own `bin_dir` when the matrix gives it one,
    /// else from `dir`.
    pub fn of(dir: &Path, variant: &Variant) -> Result<Binaries> {
        let dir = variant.bin_dir.as_deref().unwrap_or(dir);
        match variant.process {
            Process::Two => Binaries::find(dir, variant.engine_alloc, variant.feed_alloc),
            Process::Single(a) => Binaries::find_pipeline(dir, a),
        }
    }

    /// The process shape they run.
    pub fn process(&self) -> Process {
        match self {
            Binaries::Two { .. } => Process::Two,
            Binaries::Single { alloc, .. } => Process::Single(*alloc),
        }
    }
}

/// `flag` if given, else the folder of the running `lab` binary.
pub fn bin_dir(flag: Option<&Path>) -> Result<PathBuf> {
    match flag {
        Some(d) => Ok(d.to_path_buf()),
        None => Ok(std::env::current_exe()
            .context("cannot find the lab binary's own path")?
            .parent()
            .context("the lab binary's path has no folder")?
            .to_path_buf()),
    }
}

/// Where the children's output and lab's own messages go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Relayed line by line to our stdout and stderr, prefixed (`lab run`).
    Relay,
    /// Kept in `feed.log`, `engine.log` (or `pipeline.log`) and `lab.log` in the run
    /// folder (`lab compare`).
    Logs,
}

/// What [`execute`] produced.
pub struct Ran {
    /// The merged summary (also written to `DIR/summary.json`).
    pub summary: Summary,
    /// The signal that interrupted the run, if any: the summary covers it up to then.
    pub interrupted_by: Option<&'static str>,
}

/// lab's own messages about a run: to stderr, or to the run's `lab.log`.
struct Notes(Option<File>);

impl Notes {
    fn say(&mut self, msg: &str) {
        match &mut self.0 {
            None => eprintln!("{msg}"),
            Some(f) => {
                let _ = writeln!(f, "{msg}");
            }
        }
    }
}

/// Runs `plan` with `bins` into `out_dir` (which must exist): writes `config.toml`,
/// starts the engine and then the feed (or the one pipeline, [`Binaries::Single`]),
/// supervises them (forwarding what `signals` catches), and merges their summaries into
/// `summary.json`.
///
/// With more than one of `engine_cores` (see [`engine_cores`]), one engine runs per
/// core, each in its own folder `engine-1/`, `engine-2/`, … of `out_dir` (its
/// configuration with its `cores.engine_hot`, its log, summary and `.hlog`);
/// `summary.json` is merged with the first and lists every engine and their totals. A
/// pipeline runs one engine: more than one core is an error.
#[allow(clippy::too_many_arguments)] // each is a distinct part of the run
pub fn execute(
    plan: &RunPlan,
    bins: &Binaries,
    out_dir: &Path,
    output: Output,
    signals: &mut Signals,
    noise: Option<NoiseFloor>,
    engine_cores: &[usize],
) -> Result<Ran> {
    let several = engine_cores.len() > 1;
    if several && matches!(bins, Binaries::Single { .. }) {
        bail!("one process runs one engine, not {}", engine_cores.len());
    }
    let mut notes = Notes(match output {
        Output::Relay => None,
        Output::Logs => Some(files::create_log(
            &out_dir.join("lab.log"),
            "lab's notes on this run and its table",
        )?),
    });
    // Results of an earlier run in the same folder must not pass for this run's (only
    // the project's own are removed: anything else there is refused).
    for name in [FEED_SUMMARY, ENGINE_SUMMARY, ROUTING_REPORT, "summary.json"] {
        let stale = out_dir.join(name);
        if files::remove_own(&stale, Kind::Json)? {
            notes.say(&format!(
                "lab: removed {} of an earlier run",
                stale.display()
            ));
        }
    }
    let config_path = out_dir.join(CONFIG_FILE);
    let header = Kind::Text.header(&format!(
        "the configuration as run, from {}",
        plan.source.display()
    ));
    files::write(
        &config_path,
        Kind::Text,
        format!("{header}{}", plan.text).as_bytes(),
    )?;

    // A child reading `config` and writing into `out`.
    let child_args = |bin: &Path, config: &Path, out: &Path| child_command(plan, bin, config, out);
    let mut relays = Vec::new();
    // (folder, hot core) of each engine.
    let mut engine_dirs = Vec::new();
    let mut engines = Vec::new();
    let (engine_bin, feed_bin) = match bins {
        Binaries::Two { feed, engine } => (engine, feed),
        Binaries::Single { pipeline, alloc } => {
            let (summary, interrupted_by) = run_pipeline(
                plan,
                (pipeline, *alloc),
                out_dir,
                output,
                signals,
                &mut relays,
                &mut notes,
            )?;
            return finish(
                summary,
                noise,
                out_dir,
                output,
                bins.process(),
                &mut notes,
                interrupted_by,
            );
        }
    };
    if several {
        for (i, &core) in engine_cores.iter().enumerate() {
            let dir = out_dir.join(ENGINE_NAMES[i]);
            common::runargs::prepare_out_dir(&dir, &RUN_OUTPUTS)?;
            // An earlier run's summary must not pass for this run's.
            files::remove_own(&dir.join(ENGINE_SUMMARY), Kind::Json)?;
            let text = Edit::new(&plan.text)
                .set("cores.engine_hot", core as i64)
                .finish()
                .map_err(|e| anyhow!("{}: {e}", plan.source.display()))?;
            let config = dir.join(CONFIG_FILE);
            let header = Kind::Text.header(&format!(
                "the configuration as run by {}, from {}",
                ENGINE_NAMES[i],
                plan.source.display()
            ));
            files::write(&config, Kind::Text, format!("{header}{text}").as_bytes())?;
            engines.push(spawn(
                child_args(engine_bin, &config, &dir),
                ENGINE_NAMES[i],
                ENGINE_PREFIXES[i],
                output,
                &dir.join("engine.log"),
                &mut relays,
            )?);
            engine_dirs.push((dir, core));
        }
    } else {
        engines.push(spawn(
            child_args(engine_bin, &config_path, out_dir),
            "engine",
            ENGINE_PREFIX,
            output,
            &out_dir.join("engine.log"),
            &mut relays,
        )?);
        engine_dirs.push((out_dir.to_path_buf(), plan.config.cores.engine_hot));
    }
    let mut feed = spawn(
        child_args(feed_bin, &config_path, out_dir),
        "feed",
        FEED_PREFIX,
        output,
        &out_dir.join("feed.log"),
        &mut relays,
    )?;
    let pids = match engines.as_slice() {
        [one] => format!("pid {}", one.pid()),
        several => {
            let each: Vec<String> = several
                .iter()
                .zip(&engine_dirs)
                .map(|(e, (_, core))| format!("{} pid {} on core {core}", e.name(), e.pid()))
                .collect();
            format!("({})", each.join(", "))
        }
    };
    notes.say(&format!(
        "lab: config {} (as run: {}), output {}, engine {} {pids}, feed {} pid {}",
        plan.source.display(),
        config_path.display(),
        out_dir.display(),
        engine_bin.display(),
        feed_bin.display(),
        feed.pid()
    ));

    let limits = Limits {
        feed: secs(plan.config.duration_s).saturating_add(FEED_OVERRUN),
        engine_after_feed: secs(plan.config.engine.grace_s).saturating_add(ENGINE_OVERRUN),
    };
    let outcome = supervise(&mut feed, &mut engines, signals, &limits, &mut notes);
    // Every child is reaped now; their pipes close, so the relays end.
    drop((feed, engines));
    for r in relays {
        let _ = r.join();
    }
    if !outcome.failures.is_empty() {
        bail!("{}", outcome.failures.join("; "));
    }

    let feed_summary: FeedSummary = read_json(&out_dir.join(FEED_SUMMARY))?;
    let mut engine_summaries = Vec::new();
    for (dir, core) in &engine_dirs {
        let e: EngineSummary = read_json(&dir.join(ENGINE_SUMMARY))?;
        engine_summaries.push((e, *core));
    }
    let rows: Vec<EngineRow> = engine_summaries
        .iter()
        .enumerate()
        .map(|(i, (e, core))| EngineRow::of(ENGINE_NAMES[i].to_string(), *core, e))
        .collect();
    let first = engine_summaries.swap_remove(0).0;
    let mut summary = Summary::merge(feed_summary, first);
    if several {
        summary.engines_total = Some(EnginesTotal::of(&rows));
        summary.engines = rows;
    }
    finish(
        summary,
        noise,
        out_dir,
        output,
        Process::Two,
        &mut notes,
        outcome.interrupted_by,
    )
}

/// The end of [`execute`]: the noise floor added to `summary`, which is written to
/// `summary.json` (and its table to `lab.log` with [`Output::Logs`]).
fn finish(
    mut summary: Summary,
    noise: Option<NoiseFloor>,
    out_dir: &Path,
    output: Output,
    process: Process,
    notes: &mut Notes,
    interrupted_by: Option<&'static str>,
) -> Result<Ran> {
    summary.noise = noise;
    files::write_json(&out_dir.join("summary.json"), &summary)?;
    if output == Output::Logs {
        notes.say(&format_table(&summary, out_dir, process));
    }
    Ok(Ran {
        summary,
        interrupted_by,
    })
}

/// One process: starts `pipeline` (linking `alloc`) on the configuration as run in
/// `out_dir`, supervises it as [`execute`] does two processes, and merges the summaries
/// both its sides wrote (with its `routing.json`, where it wrote one). Returns the
/// summary and the signal that interrupted the run, if any.
fn run_pipeline(
    plan: &RunPlan,
    (pipeline, alloc): (&Path, PipelineAlloc),
    out_dir: &Path,
    output: Output,
    signals: &mut Signals,
    relays: &mut Vec<JoinHandle<()>>,
    notes: &mut Notes,
) -> Result<(Summary, Option<&'static str>)> {
    let config_path = out_dir.join(CONFIG_FILE);
    let mut child = spawn(
        child_command(plan, pipeline, &config_path, out_dir),
        "pipeline",
        PIPELINE_PREFIX,
        output,
        &out_dir.join("pipeline.log"),
        relays,
    )?;
    notes.say(&format!(
        "lab: config {} (as run: {}), output {}, one process: pipeline {} pid {} (the feed's and the engine's threads, allocator {alloc})",
        plan.source.display(),
        config_path.display(),
        out_dir.display(),
        pipeline.display(),
        child.pid()
    ));
    // The pipeline ends when its engine does: after the feed's stream, or at the
    // engine's own grace after its first tick.
    let limits = Limits {
        feed: secs(plan.config.duration_s + plan.config.engine.grace_s)
            .saturating_add(FEED_OVERRUN),
        engine_after_feed: ENGINE_OVERRUN,
    };
    let outcome = supervise(&mut child, &mut [], signals, &limits, notes);
    // The child is reaped now; its pipes close, so the relays end.
    drop(child);
    for r in relays.drain(..) {
        let _ = r.join();
    }
    if !outcome.failures.is_empty() {
        bail!("{}", outcome.failures.join("; "));
    }
    let feed_summary: FeedSummary = read_json(&out_dir.join(FEED_SUMMARY))?;
    let engine_summary: EngineSummary = read_json(&out_dir.join(ENGINE_SUMMARY))?;
    for (side, name) in [
        ("feed", &feed_summary.manifest.allocator.name),
        ("engine", &engine_summary.manifest.allocator.name),
    ] {
        if name != alloc.name() {
            notes.say(&format!(
                "lab: warning: the {side} side of {} reports allocator {name:?}, not {:?}: is it the pipeline binary of this variant?",
                pipeline.display(),
                alloc.name()
            ));
        }
    }
    let mut summary = Summary::merge(feed_summary, engine_summary);
    // The routing allocator's routes, where the pipeline wrote them (`pipeline` does;
    // the single-allocator pipelines have none).
    let routes = out_dir.join(ROUTING_REPORT);
    if routes.is_file() {
        summary.routing = Some(read_json(&routes)?);
    }
    Ok((summary, outcome.interrupted_by))
}

/// A child `bin` of `plan` reading `config` and writing into `out` (and running for
/// the plan's `--duration`, if it has one).
fn child_command(plan: &RunPlan, bin: &Path, config: &Path, out: &Path) -> Command {
    let mut c = Command::new(bin);
    c.arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .stdin(Stdio::null());
    if let Some(d) = plan.duration_s {
        c.arg("--duration").arg(d.to_string());
    }
    c
}

/// `x` seconds as a duration, 0 for a negative or NaN `x`, saturating when huge.
fn secs(x: f64) -> Duration {
    Duration::try_from_secs_f64(x.max(0.0)).unwrap_or(Duration::MAX)
}

/// `dir/name` if it is a file, else an error saying how to build it.
fn find_bin(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        bail!(
            "no `{name}` binary in {}: build them with `cargo build --release` (or pass --bin-dir)",
            dir.display()
        )
    }
}

/// Starts `cmd` as a supervised child; its stdout and stderr are relayed
/// ([`Output::Relay`]) or written to `log` ([`Output::Logs`]).
fn spawn(
    mut cmd: Command,
    name: &'static str,
    prefix: &'static str,
    output: Output,
    log: &Path,
    relays: &mut Vec<JoinHandle<()>>,
) -> Result<Supervised> {
    match output {
        Output::Relay => {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        Output::Logs => {
            let file = files::create_log(log, &format!("stdout and stderr of the {name}"))?;
            let err = file
                .try_clone()
                .with_context(|| format!("cannot share {}", log.display()))?;
            cmd.stdout(file).stderr(err);
        }
    }
    let child = cmd.spawn().with_context(|| {
        format!(
            "cannot start {name} ({})",
            cmd.get_program().to_string_lossy()
        )
    })?;
    let mut child = Supervised::new(name, child);
    if let Some(out) = child.child_mut().stdout.take() {
        relays.push(relay(out, prefix, false)?);
    }
    if let Some(err) = child.child_mut().stderr.take() {
        relays.push(relay(err, prefix, true)?);
    }
    Ok(child)
}

/// A thread copying `from` line by line to our stdout (or stderr), each line prefixed.
/// Lines are relayed as bytes (no UTF-8 needed); a write error (a closed stdout) does not
/// stop the copying, so the child never blocks on a full pipe.
fn relay(
    from: impl Read + Send + 'static,
    prefix: &'static str,
    to_stderr: bool,
) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("relay {}", prefix.trim()))
        .spawn(move || {
            let mut reader = BufReader::new(from);
            let mut line = Vec::with_capacity(256);
            let mut out = Vec::with_capacity(256);
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                out.clear();
                out.extend_from_slice(prefix.as_bytes());
                out.extend_from_slice(&line);
                if !out.ends_with(b"\n") {
                    out.push(b'\n');
                }
                let _ = if to_stderr {
                    io::stderr().lock().write_all(&out)
                } else {
                    let mut o = io::stdout().lock();
                    o.write_all(&out).and_then(|()| o.flush())
                };
            }
        })
        .context("cannot start an output relay thread")
}

/// Backstops of [`supervise`].
struct Limits {
    /// Longest the feed may run.
    feed: Duration,
    /// Longest the engine may run after the feed ended well.
    engine_after_feed: Duration,
}

/// How the children ended.
#[derive(Default)]
struct Outcome {
    /// One message per failure (a child's bad status, a backstop that fired).
    failures: Vec<String>,
    /// The signal that interrupted the run, if any.
    interrupted_by: Option<&'static str>,
}

/// Waits for the feed and every engine, forwarding signals and enforcing the
/// backstops; returns with all of them reaped. A pipeline is supervised as `feed` with
/// no `engines` (its backstop is `limits.feed`).
fn supervise(
    feed: &mut Supervised,
    engines: &mut [Supervised],
    signals: &mut Signals,
    limits: &Limits,
    notes: &mut Notes,
) -> Outcome {
    let mut outcome = Outcome::default();
    let started = Instant::now();
    let mut feed_ended_at: Option<Instant> = None;
    let mut signal_count = 0;
    let mut ended: Vec<Option<std::process::ExitStatus>> = vec![None; engines.len()];
    let mut feed_status = None;
    // Who the notes name: "feed and engine", or the one pipeline.
    let children = if engines.is_empty() {
        feed.name().to_string()
    } else {
        format!("{} and engine", feed.name())
    };
    loop {
        for sig in signals.pending() {
            signal_count += 1;
            let name = if sig == signal_hook::consts::SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            if signal_count == 1 {
                notes.say(&format!(
                    "lab: {name}: asking {children} to stop (again to kill them)"
                ));
                outcome.interrupted_by = Some(name);
                feed.signal_term();
                engines.iter_mut().for_each(Supervised::signal_term);
            } else {
                notes.say(&format!("lab: {name} again: killing {children}"));
                feed.signal_kill();
                engines.iter_mut().for_each(Supervised::signal_kill);
            }
        }
        if feed_status.is_none() {
            feed_status = status_of(feed, &mut outcome);
        }
        for (e, st) in engines.iter_mut().zip(ended.iter_mut()) {
            if st.is_none() {
                *st = status_of(e, &mut outcome);
            }
        }
        let failed = |s: &Option<std::process::ExitStatus>| s.is_some_and(|s| !s.success());
        if failed(&feed_status) || ended.iter().any(failed) {
            // One side failed: the others have nothing useful left to do.
            let children = std::iter::once((&mut *feed, feed_status))
                .chain(engines.iter_mut().zip(ended.iter().copied()));
            for (child, status) in children {
                match status {
                    Some(s) if !s.success() => {
                        outcome.failures.push(describe_exit(child.name(), s))
                    }
                    Some(_) => {}
                    None => {
                        notes.say(&format!("lab: stopping {} after the failure", child.name()));
                        child.terminate();
                    }
                }
            }
            return outcome;
        }
        let all_engines = ended.iter().all(Option::is_some);
        match (feed_status, all_engines) {
            (Some(_), true) => return outcome,
            (Some(_), false) => {
                let at = *feed_ended_at.get_or_insert_with(Instant::now);
                if at.elapsed() > limits.engine_after_feed {
                    for (e, st) in engines.iter_mut().zip(&ended) {
                        if st.is_none() {
                            outcome.failures.push(format!(
                                "{} still running {:.0} s after the feed ended; stopped it",
                                e.name(),
                                limits.engine_after_feed.as_secs_f64()
                            ));
                            e.terminate();
                        }
                    }
                    return outcome;
                }
            }
            (None, _) if started.elapsed() > limits.feed => {
                outcome.failures.push(format!(
                    "{} still running after {:.0} s; stopped {}",
                    feed.name(),
                    limits.feed.as_secs_f64(),
                    if engines.is_empty() { "it" } else { "both" }
                ));
                feed.terminate();
                for (e, st) in engines.iter_mut().zip(&ended) {
                    if st.is_none() {
                        e.terminate();
                    }
                }
                return outcome;
            }
            _ => {}
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// The child's status if it has exited; an error reading it is a failure (and the child
/// is then terminated by the caller's guard).
fn status_of(child: &mut Supervised, outcome: &mut Outcome) -> Option<std::process::ExitStatus> {
    match child.try_wait() {
        Ok(s) => s,
        Err(e) => {
            outcome
                .failures
                .push(format!("cannot read the state of {}: {e}", child.name()));
            child.terminate()
        }
    }
}

/// Reads and parses a JSON file written by a child.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("cannot parse {}", path.display()))
}

/// `root/<UTC YYYYmmdd-HHMMSS>-<config stem>`.
pub fn default_out_dir(root: &Path, config: &Path, now: SystemTime) -> PathBuf {
    let stem = config
        .file_stem()
        .map_or_else(|| "run".into(), |s| s.to_string_lossy().into_owned());
    root.join(format!("{}-{stem}", utc_stamp(now)))
}

/// The final table of a run whose files are in `out_dir`, run as `process` (one process
/// names its allocator and its purges once, as the process's).
pub fn format_table(s: &Summary, out_dir: &Path, process: Process) -> String {
    let mut t = String::new();
    let w = &mut t;
    let _ = writeln!(w, "\n== lab run: {} ==", out_dir.display());
    let (offered, achieved) = (s.rate.offered_per_s, s.rate.achieved_per_s);
    let pct = if offered > 0.0 {
        achieved / offered * 100.0
    } else {
        0.0
    };
    let _ = write!(
        w,
        "rate        offered {} ticks/s, achieved {} ticks/s ({pct:.1}%)",
        group(offered.round() as u64),
        group(achieved.round() as u64)
    );
    if pct < crate::report::RATE_KEPT_PCT {
        let _ = write!(w, "  WARNING: the feed did not keep the offered rate");
    }
    let _ = writeln!(w);
    let c = &s.ticks;
    let unread = s.engine.detail.unread;
    let balanced = c.published == c.received + c.missed + unread;
    let _ = writeln!(
        w,
        "ticks       published {}, received {}, gaps {}, missed {}{}; published == received + missed{}: {}{}",
        group(c.published),
        group(c.received),
        group(c.gaps),
        group(c.missed),
        if unread > 0 { format!(", unread {}", group(unread)) } else { String::new() },
        if unread > 0 { " + unread" } else { "" },
        if balanced { "yes" } else { "NO" },
        s.engines
            .first()
            .map_or(String::new(), |e| format!(" ({})", e.name))
    );
    if !s.engines.is_empty() {
        engines_text(w, s);
    }
    let latency_title = if s.engines.is_empty() {
        "latency".to_string()
    } else {
        format!("latency ({})", s.engines[0].name)
    };
    let mut latency =
        Table::new(std::iter::once(latency_title.as_str()).chain(PERCENTILE_COLUMNS)).right_from(1);
    let mut few = Vec::new();
    for stage in STAGES {
        let name = stage.name();
        match s.latency_ns.get(name) {
            Some(p) => {
                latency.row(std::iter::once(format!("  {name}")).chain(percentile_cells(p)));
                if p.count < P9999_MIN_SAMPLES {
                    few.push((name, p.count));
                }
            }
            None => latency.row_spanning([format!("  {name}")], "(not reported)"),
        }
    }
    w.push_str(&latency.terminal());
    if !few.is_empty() {
        let list: Vec<String> = few
            .iter()
            .map(|(name, n)| format!("{name} ({})", group(*n)))
            .collect();
        let _ = writeln!(
            w,
            "  note: fewer than {} samples in {}: p99.99 is not meaningful there",
            group(P9999_MIN_SAMPLES),
            list.join(", ")
        );
    }
    let per_tick = s.engine.global_allocs_per_tick;
    let per_tick = if per_tick == 0.0 {
        "0".to_string()
    } else {
        format!("{per_tick:.3}")
    };
    let _ = writeln!(
        w,
        "engine      {per_tick} global allocations per tick on the hot thread after warm-up (scratch: {})",
        if s.engine.scratch.is_empty() { "?" } else { &s.engine.scratch }
    );
    let alloc = |a: &common::manifest::AllocatorInfo| {
        if a.version.is_empty() {
            a.name.clone()
        } else {
            format!("{} {}", a.name, a.version)
        }
    };
    match process {
        Process::Two => {
            let _ = writeln!(
                w,
                "allocators  feed: {}, engine: {}",
                alloc(&s.feed.allocator),
                alloc(&s.engine.allocator)
            );
        }
        Process::Single(a) => {
            let _ = writeln!(
                w,
                "allocators  one process ({}): {}, for the feed's and the engine's threads",
                a.bin(),
                alloc(&s.engine.allocator)
            );
        }
    }
    let _ = writeln!(
        w,
        "history     {} ticks held by the feed, {} copies dropped (history thread behind); {} orders dropped (order thread behind)",
        group(s.feed.history_ticks),
        group(s.feed.detail.history_dropped),
        group(s.engine.detail.orders_dropped)
    );
    if !s.cold_threads.is_empty() {
        let mut cold = Table::new([
            "cold thread",
            "cpu/s",
            "stretches/s",
            "p99 stretch",
            "longest stretch",
            "at",
            "pauses",
        ])
        .right_from(1);
        for (name, b) in &s.cold_threads {
            cold.row([
                format!("  {name}"),
                format!("{:.1} ms", b.cpu_ms_per_s),
                format!("{:.0}", b.stretches_per_s),
                fmt_ns((b.stretch_p99_us * 1e3) as u64),
                fmt_ns((b.longest_stretch_us * 1e3) as u64),
                format!("{:.2} s", b.longest_at_s),
                group(b.pauses),
            ]);
        }
        w.push_str(&cold.terminal());
        let total: f64 = s.cold_threads.values().map(|b| b.cpu_ms_per_s).sum();
        let _ = writeln!(
            w,
            "  (CPU time per second of wall time; a stretch is the CPU a cold thread took between two sleeps; {total:.1} ms/s in all)"
        );
    }
    mechanisms_text(w, s, process.is_single());
    match &s.noise {
        Some(n) => {
            let cores: Vec<String> = n
                .cores
                .iter()
                .map(|c| {
                    format!(
                        "core {} lost {:.2}% ({:.1} gaps over 100 µs/s, longest {})",
                        c.core,
                        c.lost_fraction * 100.0,
                        c.gaps_over_100us_per_s,
                        fmt_ns(c.max_gap_ns)
                    )
                })
                .collect();
            let _ = writeln!(
                w,
                "noise       {} s on both hot cores {} the run: {}; the machine alone would give a steady stream p99 {}, p99.9 {}",
                n.seconds,
                n.when,
                cores.join("; "),
                fmt_ns(n.stream_p99_ns),
                fmt_ns(n.stream_p99_9_ns)
            );
        }
        None => {
            let _ = writeln!(w, "noise       not probed (--noise 0)");
        }
    }
    let _ = writeln!(w, "machine     {}", Host::of(&s.manifest));
    let _ = writeln!(w, "summary     {}", out_dir.join("summary.json").display());
    let hlog = match s.engines.first() {
        Some(e) => out_dir.join(&e.name).join("engine.hlog"),
        None => out_dir.join("engine.hlog"),
    };
    let _ = writeln!(w, "hlog        {}", hlog.display());
    t
}

/// The engines of a run of several: one row each, then the totals.
fn engines_text(w: &mut String, s: &Summary) {
    let mut t = Table::new([
        "engine",
        "core",
        "published",
        "received",
        "missed",
        "recovered",
        "unread",
        "unaccounted",
        "orders",
        "e2e p50",
        "e2e p99",
        "e2e p99.9",
        "allocs/tick",
    ])
    .right_from(1);
    let e2e = |l: &std::collections::BTreeMap<String, common::latency::Percentiles>| {
        l.get("e2e")
            .map_or(["-".to_string(), "-".into(), "-".into()], |p| {
                [fmt_ns(p.p50), fmt_ns(p.p99), fmt_ns(p.p99_9)]
            })
    };
    for r in &s.engines {
        let [p50, p99, p999] = e2e(&r.latency_ns);
        t.row([
            format!("  {}", r.name),
            r.core.to_string(),
            group(r.published_seen),
            group(r.received),
            group(r.missed),
            group(r.recovered),
            group(r.unread),
            r.unaccounted.to_string(),
            group(r.orders),
            p50,
            p99,
            p999,
            format!("{:.3}", r.global_allocs_per_tick),
        ]);
    }
    if let Some(total) = &s.engines_total {
        let worst = total.worst_ns.get("e2e");
        let cell = |i: usize| worst.map_or("-".to_string(), |w| format!("≤ {}", fmt_ns(w[i])));
        t.row([
            format!("  total ({})", total.engines),
            String::new(),
            group(s.engines.iter().map(|r| r.published_seen).sum()),
            group(total.received),
            group(total.missed),
            group(total.recovered),
            group(total.unread),
            total.unaccounted.to_string(),
            group(total.orders),
            cell(0),
            cell(1),
            cell(2),
            String::new(),
        ]);
    }
    w.push_str(&t.terminal());
    let _ = writeln!(
        w,
        "  (each engine reads every tick of the ring; the total's latencies are the worst engine's, as percentiles of different engines do not add up; the lines below are {}'s)",
        s.engines[0].name
    );
}

/// The mechanisms of the final table: per thread, interrupts on the hot cores, the
/// allocators' counters, and the timed allocator calls. When `single`, both sides
/// sampled the same process (its every thread, its one allocator): the threads and the
/// counters are shown once, the engine side's, as the process's.
fn mechanisms_text(w: &mut String, s: &Summary, single: bool) {
    let shown: Vec<(&str, &common::mechanisms::Mechanisms)> = if single {
        s.mechanisms
            .get("engine")
            .or_else(|| s.mechanisms.values().next())
            .map(|m| ("the one process", m))
            .into_iter()
            .collect()
    } else {
        s.mechanisms.iter().map(|(p, m)| (p.as_str(), m)).collect()
    };
    if !shown.is_empty() {
        let mut threads = Table::new([
            "thread (measured window)",
            "cpu/s",
            "involuntary cs/s",
            "voluntary cs/s",
            "minor faults/s",
            "major faults",
            "migrations",
        ])
        .right_from(1);
        for (_, m) in &shown {
            for (name, t) in &m.threads {
                let per_s = |x: f64| if t.seconds > 0.0 { x / t.seconds } else { 0.0 };
                threads.row([
                    format!("  {name}"),
                    format!("{:.1} ms", per_s(t.cpu_ms)),
                    format!("{:.1}", per_s(t.involuntary_switches as f64)),
                    format!("{:.1}", per_s(t.voluntary_switches as f64)),
                    format!("{:.1}", per_s(t.minor_faults as f64)),
                    group(t.major_faults),
                    t.migrations.map_or("n/a".into(), group),
                ]);
            }
        }
        w.push_str(&threads.terminal());
        if let Some(e) = s.mechanisms.get("engine") {
            let kinds: Vec<String> = ["TLB", "CAL", "RES", "LOC"]
                .iter()
                .filter_map(|k| {
                    let row = e.interrupts.get(*k)?;
                    let cores: Vec<String> = row
                        .iter()
                        .map(|(c, n)| format!("{c}: {:.1}", *n as f64 / e.seconds.max(1e-9)))
                        .collect();
                    Some(format!("{k} {}", cores.join(", ")))
                })
                .collect();
            if !kinds.is_empty() {
                let _ = writeln!(
                    w,
                    "interrupts  per second on the hot cores over {:.1} s: {} (TLB shootdowns, function-call and rescheduling IPIs, timer)",
                    e.seconds,
                    kinds.join("; ")
                );
            }
        }
        for (process, m) in shown {
            let grown: Vec<String> = m
                .allocator
                .iter()
                .map(|(k, v)| format!("{k} {}", group(*v)))
                .collect();
            let _ = writeln!(
                w,
                "purges      {process}: {}",
                if grown.is_empty() {
                    "the allocator counts none (glibc keeps no purge counters)".to_string()
                } else {
                    format!("{} in the measured window", grown.join(", "))
                }
            );
        }
    }
    if !s.alloc_call_ns.is_empty() {
        let mut calls = Table::new([
            "allocator call (timed)",
            "calls",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max",
        ])
        .right_from(1);
        for (role, ops) in &s.alloc_call_ns {
            for (op, t) in ops {
                calls.row([
                    format!("  {role} {op}"),
                    group(t.count),
                    fmt_ns(t.p50_ns as u64),
                    fmt_ns(t.p90_ns as u64),
                    fmt_ns(t.p99_ns as u64),
                    fmt_ns(t.p99_9_ns as u64),
                    fmt_ns(t.max_ns as u64),
                ]);
            }
        }
        w.push_str(&calls.terminal());
        let _ = writeln!(
            w,
            "  (every allocator call of the cold threads over the run, timer included; hot threads are never timed)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::latency::Percentiles;
    use common::manifest::{AllocatorInfo, Manifest};
    use common::summary::{EngineSummary, FeedSummary};

    #[test]
    fn derived_configs_keep_comments_and_layout() {
        let text = "# top\nseed = 1\nduration_s = 10.0 # long\n\n[engine]\nscratch = \"arena\"   # note\nlevels = 3\n";
        assert_eq!(derive_config(text, &Overrides::default()).unwrap(), text);
        let o = Overrides {
            scratch: Some(ScratchMode::Pool),
            levels: Some(2),
            duration_s: Some(5.0),
            settings: Vec::new(),
        };
        assert_eq!(
            derive_config(text, &o).unwrap(),
            "# top\nseed = 1\nduration_s = 5.0 # long\n\n[engine]\nscratch = \"pool\"   # note\nlevels = 2\n"
        );
        assert_eq!(o.describe(), "--scratch pool --levels 2 --duration 5");
        // No [engine] table yet: one is added.
        let d = derive_config("seed = 1\n", &o).unwrap();
        let t: toml::Table = d.parse().unwrap();
        assert_eq!(t["engine"]["scratch"].as_str(), Some("pool"));
        assert_eq!(t["engine"]["levels"].as_integer(), Some(2));
    }

    #[test]
    fn engines_get_cores_of_their_own_or_share_them_only_when_waiting() {
        let text = common::config::edit::Edit::new(common::config::DEFAULT_TOML)
            .set("ring.path", std::env::temp_dir().join("unused.ring"))
            .finish()
            .unwrap();
        let allowed = [0, 1, 2, 3];
        let spin = Config::parse(&text, Path::new("d.toml"), &allowed).unwrap();
        // feed_md 0, engine_hot 1 in the default: then 2 and 3.
        assert_eq!(engine_cores(&spin, 1, &allowed).unwrap(), vec![1]);
        assert_eq!(engine_cores(&spin, 3, &allowed).unwrap(), vec![1, 2, 3]);
        let e = engine_cores(&spin, 4, &allowed).unwrap_err().to_string();
        assert!(e.contains("needs 5 cores"), "{e}");
        assert!(engine_cores(&spin, 0, &allowed).is_err());
        assert!(engine_cores(&spin, 17, &allowed).is_err());
        let text = common::config::edit::Edit::new(&text)
            .set("engine.wait", "block")
            .finish()
            .unwrap();
        let block = Config::parse(&text, Path::new("d.toml"), &allowed).unwrap();
        assert_eq!(
            engine_cores(&block, 5, &allowed).unwrap(),
            vec![1, 2, 3, 1, 2]
        );
        assert_eq!(engine_cores(&block, 2, &[0, 1]).unwrap(), vec![1, 1]);
    }

    #[test]
    fn out_dir_is_stamp_and_config_stem() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            default_out_dir(Path::new("results"), Path::new("configs/high_rate.toml"), t),
            PathBuf::from("results/20231114-221320-high_rate")
        );
    }

    fn summary() -> Summary {
        let pct = |count, base: u64| Percentiles {
            count,
            min: base,
            p50: base * 2,
            p90: base * 3,
            p99: base * 4,
            p99_9: base * 5,
            p99_99: base * 6,
            max: base * 100,
        };
        let feed = FeedSummary {
            published: 3000,
            offered_per_s: 1000.0,
            achieved_per_s: 999.6,
            history_ticks: 3000,
            manifest: Manifest {
                allocator: AllocatorInfo {
                    name: "jemalloc".into(),
                    version: "5.3.0".into(),
                },
                ..Manifest::default()
            },
            ..FeedSummary::default()
        };
        let engine = EngineSummary {
            received: 2990,
            gaps: 1,
            missed: 10,
            scratch: "arena".into(),
            latency_ns: [
                ("feed_lag".to_string(), pct(2_000_000, 100)),
                ("hop".to_string(), pct(2500, 60)),
                ("engine".to_string(), pct(2500, 300)),
                ("e2e".to_string(), pct(2500, 1200)),
            ]
            .into(),
            manifest: Manifest {
                cpu_model: "Test CPU".into(),
                kernel: "6.1".into(),
                clock_source: "tsc".into(),
                git_rev: "abc1234".into(),
                allocator: AllocatorInfo {
                    name: "mimalloc".into(),
                    version: "2.1.7".into(),
                },
                ..Manifest::default()
            },
            ..EngineSummary::default()
        };
        Summary::merge(feed, engine)
    }

    #[test]
    fn table_has_every_figure() {
        let t = format_table(&summary(), Path::new("results/x"), Process::Two);
        assert!(t.contains("== lab run: results/x =="), "{t}");
        assert!(
            t.contains("offered 1,000 ticks/s, achieved 1,000 ticks/s (100.0%)"),
            "{t}"
        );
        assert!(!t.contains("WARNING"), "{t}");
        assert!(
            t.contains("published 3,000, received 2,990, gaps 1, missed 10; published == received + missed: yes"),
            "{t}"
        );
        let hop = t
            .lines()
            .find(|l| l.trim_start().starts_with("hop"))
            .unwrap();
        let cells: Vec<&str> = hop.split_whitespace().collect();
        assert_eq!(
            cells,
            ["hop", "2,500", "120ns", "180ns", "240ns", "300ns", "360ns", "6.00µs"]
        );
        for stage in ["feed_lag", "engine", "e2e"] {
            assert!(
                t.lines().any(|l| l.trim_start().starts_with(stage)),
                "{stage}: {t}"
            );
        }
        // Stages under a million samples get the note; feed_lag (2M) does not.
        assert!(
            t.contains("note: fewer than 1,000,000 samples in hop (2,500), engine (2,500), e2e (2,500): p99.99 is not meaningful there"),
            "{t}"
        );
        assert!(
            t.contains("engine      0 global allocations per tick"),
            "{t}"
        );
        assert!(t.contains("(scratch: arena)"), "{t}");
        assert!(
            t.contains("allocators  feed: jemalloc 5.3.0, engine: mimalloc 2.1.7"),
            "{t}"
        );
        assert!(t.contains("history     3,000 ticks"), "{t}");
        assert!(
            t.contains("machine     Test CPU, kernel 6.1, clock tsc, git abc1234"),
            "{t}"
        );
        assert!(t.contains("summary     results/x/summary.json"), "{t}");
        assert!(t.contains("hlog        results/x/engine.hlog"), "{t}");
    }

    #[test]
    fn table_flags_imbalance_low_rate_and_allocations() {
        let mut s = summary();
        s.ticks.missed = 0;
        s.rate.achieved_per_s = 500.0;
        s.engine.global_allocs_per_tick = 1.5;
        s.latency_ns.remove("engine");
        let t = format_table(&s, Path::new("o"), Process::Two);
        assert!(t.contains("published == received + missed: NO"), "{t}");
        assert!(
            t.contains("(50.0%)  WARNING: the feed did not keep the offered rate"),
            "{t}"
        );
        assert!(
            t.contains("engine      1.500 global allocations per tick"),
            "{t}"
        );
        assert!(t.contains("\n  engine    (not reported)\n"), "{t}");
    }

    #[test]
    fn one_process_names_its_allocator_once() {
        let mut s = summary();
        for a in [&mut s.engine.allocator, &mut s.feed.allocator] {
            *a = AllocatorInfo {
                name: "hybrid".into(),
                version: "jemalloc 5 + mimalloc 2".into(),
            };
        }
        let t = format_table(&s, Path::new("o"), Process::Single(PipelineAlloc::Hybrid));
        assert!(
            t.contains("allocators  one process (pipeline): hybrid jemalloc 5 + mimalloc 2, for the feed's and the engine's threads"),
            "{t}"
        );
        assert!(!t.contains("feed: hybrid"), "{t}");
    }

    #[test]
    fn binaries_follow_the_variant() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["pipeline", "pipeline-jemalloc", "engine", "feed"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let v = Variant::single(PipelineAlloc::Jemalloc, ScratchMode::Arena, 3);
        match Binaries::of(dir.path(), &v).unwrap() {
            Binaries::Single { pipeline, alloc } => {
                assert_eq!(pipeline, dir.path().join("pipeline-jemalloc"));
                assert_eq!(alloc, PipelineAlloc::Jemalloc);
            }
            other => panic!("{other:?}"),
        }
        let two = Variant {
            engine_alloc: Alloc::Mimalloc,
            feed_alloc: Alloc::Jemalloc,
            ..Variant::default()
        };
        assert_eq!(
            Binaries::of(dir.path(), &two).unwrap().process(),
            Process::Two
        );
        let e = Binaries::of(
            dir.path(),
            &Variant::single(PipelineAlloc::System, ScratchMode::Arena, 3),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("no `pipeline-system` binary") && e.contains("cargo build --release"),
            "{e}"
        );
    }
}
