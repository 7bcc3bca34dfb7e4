//! The matrix file of `lab compare`: which variants to run, on which configurations,
//! how long and how often.
//!
//! ```toml
//! config = "default.toml"      # base configuration, relative to this file's folder
//! duration_s = 5.0             # optional: every run's duration (default: the config's)
//! repetitions = 5              # optional, default 5 (at least 2): runs of every variant
//!
//! [[block]]                    # one or more blocks; each is reported on its own
//! name = "engine allocator × scratch"
//! config = "default.toml"      # optional: this block's base configuration
//! duration_s = 5.0             # optional: this block's duration
//! engine_alloc = ["system", "jemalloc", "mimalloc", "tcmalloc"]  # default ["mimalloc"]
//! feed_alloc = ["jemalloc"]                                      # default ["jemalloc"]
//! scratch = ["heap", "arena", "pool"]       # default: the config's engine.scratch
//! levels = [3]                              # default: the config's engine.levels
//! set = { log.interval_ms = 500 }           # optional: other keys of the run
//!                                           # configuration, for every variant
//! baseline = 1                 # optional: the variant (V1, V2, …) the others are judged
//!                              # against; default: the all-system heap variant
//!
//! [[block.variant]]            # optional extra variants, run before the product:
//! engine_alloc = "system"      # each fixes the keys it sets; a key it leaves out
//! feed_alloc = "system"        # ranges over the block's list (here: levels [3])
//! scratch = "heap"
//! name = "all system"          # optional: its name in the report
//! set = { cold.slice_us = 0 }  # optional: its own settings (after the block's)
//! bin_dir = "../before/release" # optional: the folder of its binaries, relative to
//!                              # this file's folder (default: `lab compare --bin-dir`,
//!                              # else lab's own folder)
//! ```
//!
//! `bin_dir` compares builds: the same variant run from the binaries of the code before
//! a change (another checkout's `target/release`) and from the current ones, interleaved
//! and judged like any other pair of variants. The report names each variant's commit.
//!
//! At the top level, besides `config`, `duration_s` and `repetitions` (default 5, at
//! least 2): `metrics = ["e2e p99", …]` (the metrics the report judges, names in
//! `crate::report::metrics`; default `DEFAULT_METRICS`), `noise_s = 1.0` (the noise probe
//! at the start of every round, 0 for none) and `max_minutes = 10` (refuse a matrix whose
//! estimated time is longer).
//!
//! A block's variants are its `[[block.variant]]` entries followed by the product of its
//! lists (the product is left out when a block has `[[block.variant]]` entries and none
//! of the lists); a variant listed twice runs once, at its first place.
//!
//! # One process
//!
//! ```toml
//! [[block]]
//! process = "single"           # optional, default "two": the feed and the engine as
//!                              # one pipeline process instead of two
//! pipeline_alloc = ["hybrid", "jemalloc"]   # process = "single" only; default ["hybrid"]
//! scratch = ["arena"]
//!
//! [[block.variant]]            # a variant may set its own shape:
//! process = "two"              # two processes (ranges over engine_alloc and feed_alloc,
//!                              # which a single block leaves at their defaults)
//!
//! [[block.variant]]
//! process = "single"
//! pipeline_alloc = "hybrid"    # one value in a variant
//! set = { routing.adaptive = true }
//! ```
//!
//! `pipeline_alloc` picks the binary: `hybrid` is `pipeline` (the routing allocator), and
//! `system`, `jemalloc`, `mimalloc` are `pipeline-<alloc>`. A block's `process` is every
//! variant's unless the variant says otherwise. `engine_alloc` and `feed_alloc` apply to
//! two processes only and `pipeline_alloc` to one only: either where it does not apply is
//! an error at that key, as is an unknown `process` or `pipeline_alloc`.
//!
//! # Errors
//!
//! Every table denies unknown keys. Every error is a [`ConfigError::Invalid`] that
//! renders as `FILE:LINE:COLUMN: KEY: MESSAGE`, like the run configuration's
//! (`common::config`), with the position of the offending key: syntax errors, unknown
//! keys, unknown allocator, process or scratch names, keys of the other process shape
//! (`engine_alloc` with `process = "single"`), empty lists, zero repetitions, a
//! non-positive duration, and any value that makes a derived run configuration invalid
//! (a `levels` of 17, a duration shorter than the warm-up), which is reported at the
//! matrix key that brought it in, with the configuration's own message.
//!
//! The span and key-path helpers below follow `common::config`'s (which are private
//! there).

use crate::run::{Overrides, RunPlan};
use crate::variant::{Alloc, PipelineAlloc, Process, ScratchMode, Variant};
use common::config::{error_at, parse_toml, ConfigError, KeyPath};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A variant with the matrix keys that brought in its scratch, its levels and its
/// settings, so an error in the variant's configuration points at the right key.
type Listed = (Variant, Option<KeyPath>, Option<KeyPath>, Option<KeyPath>);

/// What a `[[block.variant]]` adds to the block's lists: its settings, its name, the key
/// that brought its settings in, and the folder of its binaries.
type Extra = (
    Vec<(String, String)>,
    Option<String>,
    Option<KeyPath>,
    Option<PathBuf>,
);

/// `process = "two" | "single"` in a matrix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Shape {
    /// The feed and the engine binaries.
    #[default]
    Two,
    /// One pipeline binary.
    Single,
}

/// A variant's process with the allocators of its binaries (the two-process ones at
/// their defaults for one process).
type Binary = (Process, Alloc, Alloc);

/// Every engine × feed allocator pair, as two processes.
fn two(engines: &[Alloc], feeds: &[Alloc]) -> Vec<Binary> {
    engines
        .iter()
        .flat_map(|e| feeds.iter().map(move |f| (Process::Two, *e, *f)))
        .collect()
}

/// Every pipeline allocator, as one process (the two-process allocators as
/// [`Variant::single`] leaves them).
fn single(allocs: &[PipelineAlloc]) -> Vec<Binary> {
    allocs
        .iter()
        .map(|a| {
            let v = Variant::single(*a, ScratchMode::default(), 1);
            (v.process, v.engine_alloc, v.feed_alloc)
        })
        .collect()
}

/// Repetitions when the matrix does not say.
pub const DEFAULT_REPETITIONS: u32 = 5;
/// Fewest repetitions a matrix may ask for: a verdict needs two runs of each variant.
pub const MIN_REPETITIONS: u32 = 2;
/// Seconds of the noise probe per round when the matrix does not say.
pub const DEFAULT_NOISE_S: f64 = 1.0;
/// Most repetitions a matrix may ask for.
pub const MAX_REPETITIONS: u32 = 1000;
/// Estimated cost of one run beyond its duration (start-up, pre-faulting, the engine's
/// drain, writing summaries), for the time estimate only.
pub const RUN_OVERHEAD: Duration = Duration::from_secs(2);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatrixFile {
    config: Option<PathBuf>,
    duration_s: Option<f64>,
    repetitions: Option<u32>,
    metrics: Option<Vec<String>>,
    max_minutes: Option<f64>,
    noise_s: Option<f64>,
    block: Vec<BlockFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockFile {
    name: Option<String>,
    config: Option<PathBuf>,
    duration_s: Option<f64>,
    process: Option<Shape>,
    pipeline_alloc: Option<Vec<PipelineAlloc>>,
    engine_alloc: Option<Vec<Alloc>>,
    feed_alloc: Option<Vec<Alloc>>,
    scratch: Option<Vec<ScratchMode>>,
    levels: Option<Vec<u32>>,
    baseline: Option<usize>,
    set: Option<toml::Table>,
    #[serde(default)]
    variant: Vec<VariantFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VariantFile {
    name: Option<String>,
    process: Option<Shape>,
    pipeline_alloc: Option<PipelineAlloc>,
    engine_alloc: Option<Alloc>,
    feed_alloc: Option<Alloc>,
    scratch: Option<ScratchMode>,
    levels: Option<u32>,
    set: Option<toml::Table>,
    bin_dir: Option<PathBuf>,
}

/// `set = { cold.slice_us = 0, cores.feed_cold = [1] }` as (key path, TOML value) pairs,
/// tables walked down to their values.
fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, String)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            other => out.push((key, other.to_string())),
        }
    }
}

/// What the command line overrides in a matrix.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MatrixOverrides {
    /// `--repetitions`.
    pub repetitions: Option<u32>,
    /// `--duration`, for every block.
    pub duration_s: Option<f64>,
}

/// A resolved, validated matrix.
#[derive(Clone, Debug)]
pub struct Matrix {
    /// The matrix file.
    pub path: PathBuf,
    /// Its text, recorded in the report folder.
    pub text: String,
    /// Runs of every variant.
    pub repetitions: u32,
    /// The metrics the report judges ([`crate::report::metrics`] names).
    pub metrics: Vec<String>,
    /// Seconds of the noise probe on the hot cores at the start of every round (0: none).
    pub noise_s: f64,
    /// The blocks, in file order.
    pub blocks: Vec<Block>,
}

/// One block of a matrix.
#[derive(Clone, Debug)]
pub struct Block {
    /// Its name (`block N` when the file gives none).
    pub name: String,
    /// Its base configuration file.
    pub config: PathBuf,
    /// Seconds each run publishes.
    pub duration_s: f64,
    /// The configuration's warm-up, seconds.
    pub warmup_s: f64,
    /// The configuration's seed (the same for every variant).
    pub seed: u64,
    /// Its variants, in run order.
    pub variants: Vec<Variant>,
    /// One validated run configuration per variant, in the same order.
    pub plans: Vec<RunPlan>,
    /// Index of the variant the others are compared with, when the matrix names one
    /// (`baseline = N`, the report's VN); else the report picks the all-system heap
    /// variant at the same levels.
    pub baseline: Option<usize>,
}

impl Matrix {
    /// Reads and resolves the matrix at `path`; every error is bad input.
    pub fn load(
        path: &Path,
        cli: &MatrixOverrides,
        allowed: &[usize],
    ) -> Result<Matrix, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Matrix::parse(text, path, cli, allowed)
    }

    /// Parses and resolves `text`; `path` names the file in errors, and relative
    /// configuration paths are taken from its folder. Reads the base configurations.
    pub fn parse(
        text: String,
        path: &Path,
        cli: &MatrixOverrides,
        allowed: &[usize],
    ) -> Result<Matrix, ConfigError> {
        let file: MatrixFile = parse_toml(&text, path)?;
        let fail = |key: KeyPath, message: String| error_at(&text, path, &key, message);
        let repetitions = match (cli.repetitions, file.repetitions) {
            (Some(r), _) => r,
            (None, Some(r)) if (MIN_REPETITIONS..=MAX_REPETITIONS).contains(&r) => r,
            (None, Some(r)) => {
                return Err(fail(
                    KeyPath::key("repetitions"),
                    format!(
                        "must be between {MIN_REPETITIONS} and {MAX_REPETITIONS} (a verdict needs at least two runs of each variant), got {r}"
                    ),
                ))
            }
            (None, None) => DEFAULT_REPETITIONS,
        };
        let metrics = match &file.metrics {
            None => crate::report::DEFAULT_METRICS
                .iter()
                .map(|m| m.to_string())
                .collect(),
            Some(list) if list.is_empty() => {
                return Err(fail(
                    KeyPath::key("metrics"),
                    "the list is empty: name at least one metric or leave the key out".into(),
                ))
            }
            Some(list) => {
                for (j, m) in list.iter().enumerate() {
                    if crate::report::metric(m).is_none() {
                        return Err(fail(
                            KeyPath::key("metrics").index(j),
                            format!(
                                "unknown metric {m:?}; the metrics are: {}",
                                crate::report::metric_names().join(", ")
                            ),
                        ));
                    }
                }
                list.clone()
            }
        };
        let noise_s = match file.noise_s {
            None => DEFAULT_NOISE_S,
            Some(s) if s.is_finite() && (0.0..=60.0).contains(&s) => s,
            Some(s) => {
                return Err(fail(
                    KeyPath::key("noise_s"),
                    format!("must be a number of seconds from 0 to 60, got {s}"),
                ))
            }
        };
        if let Some(d) = file.duration_s {
            check_duration(d).map_err(|m| fail(KeyPath::key("duration_s"), m))?;
        }
        if file.block.is_empty() {
            return Err(fail(
                KeyPath::key("block"),
                "at least one [[block]] is required".into(),
            ));
        }
        let folder = path.parent().unwrap_or(Path::new(""));
        let mut blocks = Vec::with_capacity(file.block.len());
        for (i, b) in file.block.iter().enumerate() {
            let bk = || KeyPath::key("block").index(i);
            if let Some(d) = b.duration_s {
                check_duration(d).map_err(|m| fail(bk().then("duration_s"), m))?;
            }
            for (name, len) in [
                ("pipeline_alloc", b.pipeline_alloc.as_ref().map(Vec::len)),
                ("engine_alloc", b.engine_alloc.as_ref().map(Vec::len)),
                ("feed_alloc", b.feed_alloc.as_ref().map(Vec::len)),
                ("scratch", b.scratch.as_ref().map(Vec::len)),
                ("levels", b.levels.as_ref().map(Vec::len)),
            ] {
                if len == Some(0) {
                    return Err(fail(
                        bk().then(name),
                        "the list is empty: give at least one value or leave the key out".into(),
                    ));
                }
            }
            let block_shape = b.process.unwrap_or_default();
            shape_keys(
                block_shape,
                b.pipeline_alloc.is_some(),
                b.engine_alloc.is_some(),
                b.feed_alloc.is_some(),
            )
            .map_err(|(key, m)| fail(bk().then(key), m))?;
            let (config_key, config_rel) = match (&b.config, &file.config) {
                (Some(c), _) => (bk().then("config"), c),
                (None, Some(c)) => (KeyPath::key("config"), c),
                (None, None) => {
                    return Err(fail(
                        bk(),
                        "no configuration: set `config` at the top level or in the block".into(),
                    ))
                }
            };
            let config_path = folder.join(config_rel);
            let base = RunPlan::load(&config_path, &Overrides::default(), allowed)
                .map_err(|e| fail(config_key.clone(), format!("{e:#}")))?;
            let (duration_key, duration_s) = match (cli.duration_s, b.duration_s, file.duration_s) {
                (Some(d), _, _) => (None, Some(d)),
                (None, Some(d), _) => (Some(bk().then("duration_s")), Some(d)),
                (None, None, Some(d)) => (Some(KeyPath::key("duration_s")), Some(d)),
                (None, None, None) => (None, None),
            };

            // The block's lists, each value with the key that brought it in (for errors).
            let own_scratch = ScratchMode::from_name(base.config.engine.scratch.name());
            let engines = b.engine_alloc.clone().unwrap_or(vec![Alloc::Mimalloc]);
            let feeds = b.feed_alloc.clone().unwrap_or(vec![Alloc::Jemalloc]);
            let pipelines = b
                .pipeline_alloc
                .clone()
                .unwrap_or(vec![PipelineAlloc::Hybrid]);
            let scratches: Vec<(ScratchMode, Option<KeyPath>)> = match (&b.scratch, own_scratch) {
                (Some(list), _) => list
                    .iter()
                    .enumerate()
                    .map(|(j, s)| (*s, Some(bk().then("scratch").index(j))))
                    .collect(),
                (None, Some(s)) => vec![(s, None)],
                (None, None) => return Err(fail(bk(), "set `scratch`".into())),
            };
            let levels: Vec<(u32, Option<KeyPath>)> = match &b.levels {
                Some(list) => list
                    .iter()
                    .enumerate()
                    .map(|(j, l)| (*l, Some(bk().then("levels").index(j))))
                    .collect(),
                None => vec![(base.config.engine.levels, None)],
            };

            // Variants with the keys that brought in their scratch and levels: each
            // [[block.variant]] fixes the keys it sets, the others range over the
            // block's lists; then the product of the lists.
            let mut listed: Vec<Listed> = Vec::new();
            let mut product = |binaries: &[Binary],
                               s: &[(ScratchMode, Option<KeyPath>)],
                               l: &[(u32, Option<KeyPath>)],
                               extra: &Extra| {
                for (levels, lk) in l {
                    for &(process, engine_alloc, feed_alloc) in binaries {
                        for (scratch, sk) in s {
                            let v = Variant {
                                process,
                                engine_alloc,
                                feed_alloc,
                                scratch: *scratch,
                                levels: *levels,
                                settings: extra.0.clone(),
                                name: extra.1.clone(),
                                bin_dir: extra.3.clone(),
                            };
                            listed.push((v, sk.clone(), lk.clone(), extra.2.clone()));
                        }
                    }
                }
            };
            // The block's `set` applies to all its variants; a variant's own `set` comes
            // after it, so it wins on a key both name.
            let mut block_settings = Vec::new();
            if let Some(set) = &b.set {
                flatten("", set, &mut block_settings);
            }
            let block_set_key = b.set.as_ref().map(|_| bk().then("set"));
            for (k, v) in b.variant.iter().enumerate() {
                let vk = || bk().then("variant").index(k);
                let mut settings = block_settings.clone();
                if let Some(set) = &v.set {
                    flatten("", set, &mut settings);
                }
                let bin_dir = match &v.bin_dir {
                    None => None,
                    Some(rel) => {
                        let dir = folder.join(rel);
                        if !dir.is_dir() {
                            return Err(fail(
                                vk().then("bin_dir"),
                                format!(
                                    "{} is not a folder: give the folder of a build's binaries (target/release of another checkout)",
                                    dir.display()
                                ),
                            ));
                        }
                        Some(dir)
                    }
                };
                let extra = (
                    settings,
                    v.name.clone(),
                    v.set
                        .as_ref()
                        .map(|_| vk().then("set"))
                        .or_else(|| block_set_key.clone()),
                    bin_dir,
                );
                let shape = v.process.unwrap_or(block_shape);
                shape_keys(
                    shape,
                    v.pipeline_alloc.is_some(),
                    v.engine_alloc.is_some(),
                    v.feed_alloc.is_some(),
                )
                .map_err(|(key, m)| fail(vk().then(key), m))?;
                let binaries = match shape {
                    Shape::Two => two(
                        &v.engine_alloc.map_or_else(|| engines.clone(), |a| vec![a]),
                        &v.feed_alloc.map_or_else(|| feeds.clone(), |a| vec![a]),
                    ),
                    Shape::Single => single(
                        &v.pipeline_alloc
                            .map_or_else(|| pipelines.clone(), |a| vec![a]),
                    ),
                };
                let s = v.scratch.map_or_else(
                    || scratches.clone(),
                    |x| vec![(x, Some(vk().then("scratch")))],
                );
                let l = v
                    .levels
                    .map_or_else(|| levels.clone(), |x| vec![(x, Some(vk().then("levels")))]);
                product(&binaries, &s, &l, &extra);
            }
            let has_lists = b.pipeline_alloc.is_some()
                || b.engine_alloc.is_some()
                || b.feed_alloc.is_some()
                || b.scratch.is_some()
                || b.levels.is_some();
            if has_lists || b.variant.is_empty() {
                let binaries = match block_shape {
                    Shape::Two => two(&engines, &feeds),
                    Shape::Single => single(&pipelines),
                };
                product(
                    &binaries,
                    &scratches,
                    &levels,
                    &(block_settings.clone(), None, block_set_key.clone(), None),
                );
            }
            let mut seen = HashSet::new();
            listed.retain(|(v, ..)| seen.insert(v.clone()));

            let mut variants = Vec::with_capacity(listed.len());
            let mut plans = Vec::with_capacity(listed.len());
            for (v, scratch_key, levels_key, set_key) in listed {
                let overrides = Overrides {
                    scratch: Some(v.scratch),
                    levels: Some(v.levels),
                    duration_s,
                    settings: v.settings.clone(),
                };
                let plan = RunPlan::load(&config_path, &overrides, allowed).map_err(|e| {
                    // Point at the matrix key that brought the bad value in.
                    let msg = format!("{e:#}");
                    let culprit = if msg.contains(": engine.levels: ") {
                        levels_key.clone()
                    } else if msg.contains(": engine.scratch: ") {
                        scratch_key.clone()
                    } else if msg.contains(": duration_s: ") || msg.contains(": warmup_s: ") {
                        duration_key.clone()
                    } else if set_key.is_some() {
                        // Anything else a `set` brought in.
                        set_key.clone()
                    } else {
                        None
                    };
                    // A bad value with no matrix key (from --duration, or the config
                    // itself) is reported at the block's configuration.
                    fail(culprit.unwrap_or_else(|| config_key.clone()), msg)
                })?;
                variants.push(v);
                plans.push(plan);
            }
            let baseline = match b.baseline {
                None => None,
                Some(n) if (1..=variants.len()).contains(&n) => Some(n - 1),
                Some(n) => {
                    return Err(fail(
                        bk().then("baseline"),
                        format!(
                            "names variant V{n}, but the block has {} (V1 to V{})",
                            variants.len(),
                            variants.len()
                        ),
                    ))
                }
            };
            blocks.push(Block {
                baseline,
                name: b.name.clone().unwrap_or_else(|| format!("block {}", i + 1)),
                config: config_path,
                duration_s: duration_s.unwrap_or(base.config.duration_s),
                warmup_s: base.config.warmup_s,
                seed: base.config.seed,
                variants,
                plans,
            });
        }
        let max_minutes = file.max_minutes;
        let budget_error = max_minutes.and_then(|max| {
            let runs: usize = blocks.iter().map(|b| b.variants.len()).sum::<usize>()
                * repetitions as usize;
            let estimate = estimate(&blocks, repetitions, noise_s, RUN_OVERHEAD).as_secs_f64() / 60.0;
            if !(max.is_finite() && max > 0.0) {
                Some(format!("must be a number of minutes above 0, got {max}"))
            } else if estimate > max {
                Some(format!(
                    "{runs} runs need about {estimate:.1} minutes, more than the {max} minutes allowed: fewer repetitions, variants or seconds per run"
                ))
            } else {
                None
            }
        });
        if let Some(m) = budget_error {
            return Err(fail(KeyPath::key("max_minutes"), m));
        }
        let matrix = Matrix {
            path: path.to_path_buf(),
            text,
            repetitions,
            metrics,
            noise_s,
            blocks,
        };
        Ok(matrix)
    }

    /// Number of runs: every variant of every block, `repetitions` times.
    pub fn runs(&self) -> usize {
        self.blocks.iter().map(|b| b.variants.len()).sum::<usize>() * self.repetitions as usize
    }

    /// Estimated wall time, with `overhead` per run beyond its duration, and the noise
    /// probe of every round.
    pub fn estimate(&self, overhead: Duration) -> Duration {
        estimate(&self.blocks, self.repetitions, self.noise_s, overhead)
    }
}

/// Wall time of `repetitions` rounds of `blocks`, with `overhead` per run and a noise
/// probe of `noise_s` per round.
fn estimate(blocks: &[Block], repetitions: u32, noise_s: f64, overhead: Duration) -> Duration {
    let one_round: f64 = blocks
        .iter()
        .map(|b| b.variants.len() as f64 * (b.duration_s + overhead.as_secs_f64()))
        .sum::<f64>()
        + noise_s;
    Duration::from_secs_f64(one_round * f64::from(repetitions))
}

/// Whether a block or variant of `shape` may set the keys it sets: `pipeline_alloc`
/// for one process only, `engine_alloc` and `feed_alloc` for two only. The error is the
/// first offending key and its message.
fn shape_keys(
    shape: Shape,
    pipeline_alloc: bool,
    engine_alloc: bool,
    feed_alloc: bool,
) -> Result<(), (&'static str, String)> {
    match shape {
        Shape::Two if pipeline_alloc => Err((
            "pipeline_alloc",
            "applies to one process only: set process = \"single\" (the pipeline binaries), or leave pipeline_alloc out".into(),
        )),
        Shape::Single => match (engine_alloc, feed_alloc) {
            (true, _) => Err(("engine_alloc", one_process_only("engine_alloc"))),
            (_, true) => Err(("feed_alloc", one_process_only("feed_alloc"))),
            _ => Ok(()),
        },
        Shape::Two => Ok(()),
    }
}

fn one_process_only(key: &str) -> String {
    format!(
        "applies to two processes only, and this is process = \"single\": one process picks its allocator with pipeline_alloc (leave {key} out, or set process = \"two\")"
    )
}

fn check_duration(d: f64) -> Result<(), String> {
    if d.is_finite() && d > 0.0 && d <= 7.0 * 86_400.0 {
        Ok(())
    } else {
        Err(format!(
            "must be a number of seconds above 0 and at most 604800, got {d}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORES: &[usize] = &[0, 1];

    fn configs() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
    }

    /// Parses `text` as if it were a file `test.toml` in `configs/` (relative paths in it
    /// name the real configurations there).
    fn parse(text: &str) -> Result<Matrix, String> {
        Matrix::parse(
            text.to_string(),
            &configs().join("test.toml"),
            &MatrixOverrides::default(),
            CORES,
        )
        .map_err(|e| e.to_string())
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e
                .strip_prefix(&format!("{}/", configs().display()))
                .unwrap_or(&e)
                .to_string(),
        }
    }

    const GOOD: &str = r#"config = "default.toml"
duration_s = 4.0
repetitions = 2

[[block]]
name = "engine"
engine_alloc = ["system", "mimalloc"]
scratch = ["heap", "arena"]

[[block.variant]]
engine_alloc = "system"
feed_alloc = "system"
scratch = "heap"

[[block]]
feed_alloc = ["system", "jemalloc"]
duration_s = 6.0
levels = [1, 2]
"#;

    #[test]
    fn good_matrix_resolves_variants_in_order() {
        let m = parse(GOOD).unwrap();
        assert_eq!(m.repetitions, 2);
        assert_eq!(m.blocks.len(), 2);
        let b = &m.blocks[0];
        assert_eq!(b.name, "engine");
        assert_eq!(b.duration_s, 4.0);
        let labels: Vec<String> = b.variants.iter().map(Variant::slug).collect();
        assert_eq!(
            labels,
            [
                "e-system-heap_f-system_L3",
                "e-system-heap_f-jemalloc_L3",
                "e-system-arena_f-jemalloc_L3",
                "e-mimalloc-heap_f-jemalloc_L3",
                "e-mimalloc-arena_f-jemalloc_L3",
            ]
        );
        assert!(b.variants[0].is_baseline() && b.variants[4].is_hybrid());
        for (v, p) in b.variants.iter().zip(&b.plans) {
            assert_eq!(p.config.engine.scratch.name(), v.scratch.name());
            assert_eq!(p.config.engine.levels, v.levels);
            assert_eq!(p.config.duration_s, 4.0);
            assert_eq!(p.duration_s, Some(4.0));
        }
        let b = &m.blocks[1];
        assert_eq!(b.name, "block 2");
        assert_eq!(b.duration_s, 6.0);
        assert_eq!(b.variants.len(), 4, "{:?}", b.variants);
        assert!(b
            .variants
            .iter()
            .all(|v| v.scratch == ScratchMode::Arena && v.engine_alloc == Alloc::Mimalloc));
        assert_eq!(m.runs(), (5 + 4) * 2);
        // Each round: its runs (duration plus 2 s) and the noise probe.
        let est = m.estimate(Duration::from_secs(2)).as_secs_f64();
        assert!(
            (est - ((5.0 * 6.0) + 4.0 * 8.0 + DEFAULT_NOISE_S) * 2.0).abs() < 1e-6,
            "{est}"
        );
        assert_eq!(m.metrics, crate::report::DEFAULT_METRICS);
        assert_eq!(m.blocks[0].baseline, None);
    }

    #[test]
    fn extra_variants_range_over_the_keys_they_leave_out() {
        let text = "config = \"default.toml\"\n[[block]]\nlevels = [1, 4]\nscratch = [\"pool\"]\n[[block.variant]]\nengine_alloc = \"system\"\nfeed_alloc = \"system\"\nscratch = \"heap\"\n";
        let m = parse(text).unwrap();
        let slugs: Vec<String> = m.blocks[0].variants.iter().map(Variant::slug).collect();
        assert_eq!(
            slugs,
            [
                "e-system-heap_f-system_L1",
                "e-system-heap_f-system_L4",
                "e-mimalloc-pool_f-jemalloc_L1",
                "e-mimalloc-pool_f-jemalloc_L4",
            ]
        );
        assert_eq!(m.repetitions, DEFAULT_REPETITIONS);
    }

    #[test]
    fn command_line_overrides_win() {
        let cli = MatrixOverrides {
            repetitions: Some(1),
            duration_s: Some(2.5),
        };
        let m = Matrix::parse(GOOD.into(), &configs().join("t.toml"), &cli, CORES).unwrap();
        assert_eq!(m.repetitions, 1);
        assert!(m.blocks.iter().all(|b| b.duration_s == 2.5));
        assert!(m.blocks[1].plans.iter().all(|p| p.config.duration_s == 2.5));
    }

    #[test]
    fn shipped_matrices_resolve() {
        for name in [
            "compare.toml",
            "compare_full.toml",
            "pool_breakeven.toml",
            "cold_budget.toml",
            "timed.toml",
            "thp.toml",
            "channel.toml",
            "journal.toml",
            "service.toml",
        ] {
            let path = configs().join(name);
            let m = Matrix::load(&path, &MatrixOverrides::default(), CORES)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(m.runs() > 0, "{name}");
            assert!(
                m.repetitions >= DEFAULT_REPETITIONS,
                "{name}: too few for a verdict"
            );
        }
        // The before/after matrix needs the "before" build scripts/results makes: with
        // it in place of any folder it resolves, and without it the error is at its key.
        let path = configs().join("profile_before_after.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let m = Matrix::parse(
            text.replace("../target/before/release", "."),
            &path,
            &MatrixOverrides::default(),
            CORES,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.blocks[0].variants.len(), 2);
        assert!(m.blocks[0].variants[0].bin_dir.is_some());
        let e = Matrix::parse(
            text.replace("../target/before/release", "no-such-build"),
            &path,
            &MatrixOverrides::default(),
            CORES,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("block[0].variant[0].bin_dir: "), "{e}");
        // The default matrix is the one sized for the 10-minute budget.
        let m = Matrix::load(
            &configs().join("compare.toml"),
            &MatrixOverrides::default(),
            CORES,
        )
        .unwrap();
        let estimate = m.estimate(RUN_OVERHEAD);
        assert!(estimate <= Duration::from_secs(600), "{estimate:?}");
    }

    #[test]
    fn syntax_error() {
        let e = err(&GOOD.replace("repetitions = 2", "repetitions = = 2"));
        assert!(e.starts_with("test.toml:3:15: repetitions: "), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    #[test]
    fn unknown_key() {
        let e = err(&GOOD.replace(
            "name = \"engine\"",
            "name = \"engine\"\nscrach = [\"heap\"]",
        ));
        assert!(
            e.starts_with("test.toml:7:1: block[0].scrach: unknown field `scrach`"),
            "{e}"
        );
    }

    #[test]
    fn unknown_allocator() {
        let e = err(&GOOD.replace("[\"system\", \"mimalloc\"]", "[\"system\", \"tcmallok\"]"));
        assert!(
            e.starts_with("test.toml:7:27: block[0].engine_alloc[1]: unknown variant `tcmallok`"),
            "{e}"
        );
    }

    #[test]
    fn empty_list() {
        let e = err(&GOOD.replace("scratch = [\"heap\", \"arena\"]", "scratch = []"));
        assert!(
            e.starts_with("test.toml:8:1: block[0].scratch: the list is empty"),
            "{e}"
        );
    }

    #[test]
    fn too_few_repetitions() {
        for r in [0, 1] {
            let e = err(&GOOD.replace("repetitions = 2", &format!("repetitions = {r}")));
            assert!(
                e.starts_with(&format!("test.toml:3:1: repetitions: must be between 2 and 1000 (a verdict needs at least two runs of each variant), got {r}")),
                "{e}"
            );
        }
    }

    #[test]
    fn metrics_budget_noise_and_baseline_are_checked() {
        let e = err(&GOOD.replace(
            "repetitions = 2",
            "repetitions = 2\nmetrics = [\"e2e p99\", \"e2e p42\"]",
        ));
        assert!(
            e.starts_with("test.toml:4:23: metrics[1]: unknown metric \"e2e p42\"; the metrics are: feed_lag p50,"),
            "{e}"
        );
        let e = err(&GOOD.replace("repetitions = 2", "repetitions = 2\nmetrics = []"));
        assert!(
            e.starts_with("test.toml:4:1: metrics: the list is empty"),
            "{e}"
        );
        let e = err(&GOOD.replace("repetitions = 2", "repetitions = 2\nmax_minutes = 1"));
        assert!(
            e.starts_with("test.toml:4:1: max_minutes: 18 runs need about 2.1 minutes, more than the 1 minutes allowed"),
            "{e}"
        );
        parse(&GOOD.replace("repetitions = 2", "repetitions = 2\nmax_minutes = 3")).unwrap();
        let e = err(&GOOD.replace("repetitions = 2", "repetitions = 2\nnoise_s = -1"));
        assert!(
            e.starts_with("test.toml:4:1: noise_s: must be a number of seconds from 0 to 60"),
            "{e}"
        );
        let e = err(&GOOD.replace("name = \"engine\"", "name = \"engine\"\nbaseline = 9"));
        assert!(
            e.starts_with("test.toml:7:1: block[0].baseline: names variant V9, but the block has 5 (V1 to V5)"),
            "{e}"
        );
        let m =
            parse(&GOOD.replace("name = \"engine\"", "name = \"engine\"\nbaseline = 2")).unwrap();
        assert_eq!(m.blocks[0].baseline, Some(1));
    }

    #[test]
    fn variants_set_other_keys_and_have_names() {
        let m = parse(
            "config = \"default.toml\"\n\n[[block]]\n\n[[block.variant]]\nname = \"whole\"\nset = { cold.slice_us = 0 }\n\n[[block.variant]]\nname = \"crossed\"\nset = { cold.slice_us = 50, cores.feed_cold = [1], cores.engine_cold = [0] }\n",
        )
        .unwrap();
        let b = &m.blocks[0];
        assert_eq!(b.variants.len(), 2);
        assert_eq!(b.variants[0].label(), "whole");
        assert_eq!(b.variants[1].slug(), "crossed");
        assert_eq!(
            b.variants[1].settings,
            [
                ("cold.slice_us".to_string(), "50".to_string()),
                ("cores.engine_cold".to_string(), "[0]".to_string()),
                ("cores.feed_cold".to_string(), "[1]".to_string())
            ]
        );
        assert_eq!(b.plans[0].config.cold.slice_us, 0);
        assert_eq!(b.plans[1].config.cores.feed_cold(), [1]);
        assert_eq!(b.plans[1].config.cores.engine_cold(), [0]);
        // A value the configuration refuses is reported at the variant's `set`.
        let e = err("config = \"default.toml\"\n\n[[block]]\n\n[[block.variant]]\nset = { cold.pause_us = 0 }\n");
        assert!(
            e.starts_with("test.toml:6:1: block[0].variant[0].set: "),
            "{e}"
        );
        assert!(
            e.contains("cold.pause_us: must be between 1 and 100000, got 0"),
            "{e}"
        );
    }

    #[test]
    fn a_variant_may_run_the_binaries_of_another_build() {
        let m = parse(
            "config = \"default.toml\"\n\n[[block]]\n\n[[block.variant]]\nname = \"before\"\nbin_dir = \".\"\n\n[[block.variant]]\nname = \"after\"\n",
        )
        .unwrap();
        let b = &m.blocks[0];
        assert_eq!(b.variants.len(), 2);
        // Relative to the matrix file's folder.
        assert_eq!(
            b.variants[0].bin_dir.as_deref(),
            Some(&*configs().join("."))
        );
        assert_eq!(b.variants[1].bin_dir, None);
        // Otherwise the same variant: the same configuration.
        assert_eq!(
            (b.variants[0].engine_alloc, b.variants[0].scratch),
            (b.variants[1].engine_alloc, b.variants[1].scratch)
        );
        let e = err("config = \"default.toml\"\n\n[[block]]\n\n[[block.variant]]\nbin_dir = \"no-such-build\"\n");
        assert!(
            e.starts_with("test.toml:6:1: block[0].variant[0].bin_dir: "),
            "{e}"
        );
        assert!(e.contains("no-such-build is not a folder"), "{e}");
        // A block has no bin_dir of its own.
        let e = err("config = \"default.toml\"\n\n[[block]]\nbin_dir = \".\"\n");
        assert!(e.contains("bin_dir"), "{e}");
    }

    #[test]
    fn values_a_config_refuses_point_at_the_matrix_key() {
        let e = err(&GOOD.replace("levels = [1, 2]", "levels = [1, 17]"));
        assert!(
            e.starts_with("test.toml:18:14: block[1].levels[1]: "),
            "{e}"
        );
        assert!(
            e.contains("engine.levels: must be between 1 and 16, got 17"),
            "{e}"
        );
        let e = err(&GOOD.replace("duration_s = 6.0", "duration_s = 0.5"));
        assert!(
            e.starts_with("test.toml:17:1: block[1].duration_s: "),
            "{e}"
        );
        assert!(e.contains("warmup_s"), "{e}");
        let e = err(&GOOD.replace("duration_s = 4.0", "duration_s = -1"));
        assert!(e.starts_with("test.toml:2:1: duration_s: must be"), "{e}");
        let e = err(&GOOD.replace("config = \"default.toml\"", "config = \"nope.toml\""));
        assert!(e.starts_with("test.toml:1:1: config: "), "{e}");
        assert!(e.contains("nope.toml: cannot read config"), "{e}");
    }

    #[test]
    fn empty_matrix_and_bad_variant_values() {
        for (text, expected) in [
            ("", "test.toml:1:1: block: missing field `block`"),
            (
                "config = \"default.toml\"\nblock = []\n",
                "test.toml:2:1: block: at least one [[block]] is required",
            ),
            (
                &GOOD.replace("scratch = \"heap\"", "scratch = \"stack\""),
                "test.toml:13:11: block[0].variant[0].scratch: unknown variant `stack`",
            ),
            (
                &GOOD.replace("levels = [1, 2]", "levels = [-1]"),
                "test.toml:18:11: block[1].levels[0]: invalid value: integer `-1`",
            ),
            (
                &GOOD.replace("repetitions = 2", "repetitions = \"2\""),
                "test.toml:3:15: repetitions: invalid type: string",
            ),
        ] {
            let e = err(text);
            assert!(e.starts_with(expected), "wanted {expected}\n   got {e}");
        }
    }

    const SINGLE: &str = r#"config = "default.toml"
duration_s = 4.0
repetitions = 2

[[block]]
name = "one or two"
pipeline_alloc = ["hybrid", "system"]
process = "single"
scratch = ["arena"]

[[block.variant]]
process = "two"
name = "two processes"

[[block.variant]]
pipeline_alloc = "jemalloc"
set = { cold.slice_us = 0 }
"#;

    #[test]
    fn one_process_blocks_and_variants() {
        let m = parse(SINGLE).unwrap();
        let b = &m.blocks[0];
        let slugs: Vec<String> = b.variants.iter().map(Variant::slug).collect();
        assert_eq!(slugs.len(), 4, "{slugs:?}");
        assert_eq!(slugs[0], "two-processes");
        assert!(slugs[1].starts_with("p-jemalloc-arena_L3_s"), "{slugs:?}");
        assert_eq!(slugs[2..], ["p-hybrid-arena_L3", "p-system-arena_L3"]);
        // The two-process variant ranges over the (default) allocator lists.
        let two = &b.variants[0];
        assert_eq!(two.process, Process::Two);
        assert_eq!(
            (two.engine_alloc, two.feed_alloc, two.scratch),
            (Alloc::Mimalloc, Alloc::Jemalloc, ScratchMode::Arena)
        );
        assert!(two.is_hybrid(), "the two-process hybrid");
        let j = &b.variants[1];
        assert_eq!(j.process, Process::Single(PipelineAlloc::Jemalloc));
        assert_eq!(
            j.label(),
            "one process, jemalloc + arena, 3 levels, cold.slice_us = 0"
        );
        assert_eq!(b.plans[1].config.cold.slice_us, 0);
        assert!(b.variants[2..]
            .iter()
            .all(|v| v.is_single() && !v.is_hybrid()));
        // A one-process variant equals Variant::single (so a duplicate runs once).
        assert_eq!(
            b.variants[2],
            Variant::single(PipelineAlloc::Hybrid, ScratchMode::Arena, 3)
        );
        // A one-process block without a list runs the hybrid.
        let m = parse("config = \"default.toml\"\n[[block]]\nprocess = \"single\"\n").unwrap();
        let slugs: Vec<String> = m.blocks[0].variants.iter().map(Variant::slug).collect();
        assert_eq!(slugs, ["p-hybrid-arena_L3"]);
        // In a two-process block, a variant may be one process.
        let m = parse(
            "config = \"default.toml\"\n[[block]]\nengine_alloc = [\"system\"]\n[[block.variant]]\nprocess = \"single\"\npipeline_alloc = \"mimalloc\"\n",
        )
        .unwrap();
        let slugs: Vec<String> = m.blocks[0].variants.iter().map(Variant::slug).collect();
        assert_eq!(
            slugs,
            ["p-mimalloc-arena_L3", "e-system-arena_f-jemalloc_L3"]
        );
    }

    #[test]
    fn one_process_keys_are_checked_where_they_are() {
        for (text, expected) in [
            (
                SINGLE.replace("[\"hybrid\", \"system\"]", "[\"hybrid\", \"tcmalloc\"]"),
                "test.toml:7:29: block[0].pipeline_alloc[1]: unknown variant `tcmalloc`, expected one of `hybrid`, `system`, `jemalloc`, `mimalloc`",
            ),
            (
                SINGLE.replace("pipeline_alloc = \"jemalloc\"", "pipeline_alloc = \"jemallok\""),
                "test.toml:16:18: block[0].variant[1].pipeline_alloc: unknown variant `jemallok`",
            ),
            (
                SINGLE.replace("process = \"single\"", "process = \"triple\""),
                "test.toml:8:11: block[0].process: unknown variant `triple`, expected `two` or `single`",
            ),
            (
                SINGLE.replace("process = \"single\"\n", ""),
                "test.toml:7:1: block[0].pipeline_alloc: applies to one process only: set process = \"single\"",
            ),
            (
                SINGLE.replace("scratch = [\"arena\"]", "scratch = [\"arena\"]\nfeed_alloc = [\"system\"]"),
                "test.toml:10:1: block[0].feed_alloc: applies to two processes only, and this is process = \"single\"",
            ),
            (
                SINGLE.replace("name = \"two processes\"", "name = \"two processes\"\npipeline_alloc = \"system\""),
                "test.toml:14:1: block[0].variant[0].pipeline_alloc: applies to one process only",
            ),
            (
                SINGLE.replace("pipeline_alloc = \"jemalloc\"", "engine_alloc = \"jemalloc\""),
                "test.toml:16:1: block[0].variant[1].engine_alloc: applies to two processes only",
            ),
            (
                SINGLE.replace("[\"hybrid\", \"system\"]", "[]"),
                "test.toml:7:1: block[0].pipeline_alloc: the list is empty",
            ),
        ] {
            let e = err(&text);
            assert!(e.starts_with(expected), "wanted {expected}\n   got {e}");
        }
    }

    #[test]
    fn the_one_process_matrix_resolves() {
        let path = configs().join("compare_single.toml");
        let m = Matrix::load(&path, &MatrixOverrides::default(), CORES)
            .unwrap_or_else(|e| panic!("{e}"));
        let b = &m.blocks[0];
        let slugs: Vec<String> = b.variants.iter().map(Variant::slug).collect();
        assert_eq!(slugs.len(), 6, "{slugs:?}");
        assert_eq!(slugs[0], "e-mimalloc-arena_f-jemalloc_L3");
        assert_eq!(slugs[1], "p-hybrid-arena_L3");
        assert!(slugs[2].starts_with("p-hybrid-arena_L3_s"), "{slugs:?}");
        assert_eq!(
            slugs[3..],
            [
                "p-system-arena_L3",
                "p-jemalloc-arena_L3",
                "p-mimalloc-arena_L3"
            ]
        );
        assert!(b.variants[0].is_hybrid(), "V1: the two-process hybrid");
        assert_eq!(b.baseline, Some(0));
        assert!(b.variants[1..].iter().all(Variant::is_single));
        assert_eq!(
            b.variants[2].settings,
            [("routing.adaptive".to_string(), "true".to_string())]
        );
        assert!(b
            .plans
            .iter()
            .all(|p| p.config.engine.scratch.name() == "arena"));
        assert!(m.repetitions >= DEFAULT_REPETITIONS);
        assert!(m.estimate(RUN_OVERHEAD) <= Duration::from_secs(600));
        for metric in ["RSS total", "e2e p99", "hop p50", "allocs/tick"] {
            assert!(m.metrics.iter().any(|x| x == metric), "{metric}");
        }
    }

    #[test]
    fn missing_blocks_and_configs() {
        let e = err("config = \"default.toml\"\n");
        assert!(
            e.starts_with("test.toml:1:1: block: missing field `block`"),
            "{e}"
        );
        let e = err("[[block]]\nscratch = [\"heap\"]\n");
        assert!(
            e.starts_with("test.toml:1:1: block[0]: no configuration"),
            "{e}"
        );
    }
}
