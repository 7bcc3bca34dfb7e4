//! `lab profile`: where each component allocates. Runs the single-process pipeline once
//! on dhat-rs's profiling allocator (`pipeline-dhat`: every allocation of every thread
//! recorded with its full backtrace), then reads the profile (`dhat-heap.json`) and
//! writes a report folder: per thread role its allocations, frees, bytes and live bytes
//! at the heap's peak; the top call sites by count and by bytes with their source
//! locations; flame graphs (inferno) of the whole process and of each role; and
//! suggestions derived from those figures by the rules of [`suggest`].
//!
//! **Attribution.** dhat does not record threads; a backtrace is attributed to a role
//! by the innermost frame that is a thread's entry function ([`ROLE_ENTRIES`]: the md
//! thread's `feed::md::thread`, the history thread's `feed::history_thread`, …). A call
//! site is the innermost frame in the project's own code (`common`, `feed`, `engine`,
//! `pipeline`) outside the allocation wrappers, else the innermost frame outside the
//! standard library and the allocators.
//!
//! **What it cannot see**: allocations that bypass the Rust global allocator (the
//! ring's and the hot arena's mappings, mimalloc's and jemalloc's own metadata: none of
//! those run under dhat); the time of each allocation (figures are over the whole run,
//! start-up and warm-up included: the engine's own counting allocator gives the hot
//! thread's allocations after warm-up, quoted beside). dhat takes a lock and walks the
//! stack on every allocation: the profiled run is slow and its latencies are not the
//! pipeline's.
//!
//! Cold work: reads files, allocates, starts a process.

use crate::run::{bin_dir, execute, Binaries, Output, Overrides, RunPlan};
use crate::variant::{PipelineAlloc, ScratchMode};
use anyhow::{bail, Context, Result};
use common::failure::Failure;
use common::files::{self, Kind};
use common::summary::Summary;
use serde::Deserialize;
use signal_hook::iterator::Signals;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

// The profile `pipeline-dhat` writes into its output folder.
use common::runargs::DHAT_PROFILE as PROFILE;

/// Thread entry functions and the role of the thread they run, most specific first.
/// A frame whose function is one of these, or starts with one followed by `::`, names
/// the role of its backtrace; a spawned closure of a main function (`feed::run::{{closure}}`)
/// names no role, so a thread missing here is `other`, not its spawner's.
pub const ROLE_ENTRIES: [(&str, &str); 14] = [
    ("feed::md::thread", "feed_md"),
    ("feed::md::run", "feed_md"),
    ("feed::history_thread", "feed_history"),
    ("engine::hot::thread", "engine_hot"),
    ("engine::hot::run", "engine_hot"),
    ("engine::report_thread", "engine_report"),
    ("engine::order_thread", "engine_orders"),
    ("engine::recovery::thread", "engine_recovery"),
    ("engine::load::thread", "engine_load"),
    ("feed::run_from", "feed_main"),
    ("feed::run", "feed_main"),
    ("engine::run_from", "engine_main"),
    ("engine::run", "engine_main"),
    ("pipeline::", "pipeline_main"),
];

/// The roles that run a hot loop on a core of their own.
const HOT: [&str; 2] = ["feed_md", "engine_hot"];

/// The project's crates: a call site is the innermost frame in one of them.
const OWN: [&str; 4] = ["common::", "feed::", "engine::", "pipeline::"];
/// The allocation wrappers among them, never a call site.
const WRAPPERS: [&str; 2] = ["common::alloc::", "common::routed::"];
/// Frames of the standard library and the allocators, never a call site.
const MACHINERY: [&str; 9] = [
    "alloc::",
    "core::",
    "std::",
    "dhat::",
    "hashbrown::",
    "allocator_api2::",
    "__rust",
    "[root]",
    "_rust",
];

/// dhat's heap profile (DHAT file version 2, `rust-heap` mode), the parts read here.
#[derive(Debug, Deserialize)]
pub struct DhatFile {
    /// File version.
    #[serde(rename = "dhatFileVersion")]
    pub version: u32,
    /// `rust-heap`.
    pub mode: String,
    /// Time units of `tl` (`µs`).
    #[serde(default)]
    pub tu: String,
    /// The run's length, in `tu`.
    #[serde(default)]
    pub te: u64,
    /// One entry per distinct backtrace ("program point").
    pub pps: Vec<ProgramPoint>,
    /// The frames, `fs` index into it.
    pub ftbl: Vec<String>,
}

/// One backtrace's figures.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ProgramPoint {
    /// Total bytes allocated.
    pub tb: u64,
    /// Total blocks allocated.
    pub tbk: u64,
    /// Total lifetime of those blocks, in the file's time units.
    #[serde(default)]
    pub tl: u64,
    /// Bytes live at the heap's global peak.
    #[serde(default)]
    pub gb: u64,
    /// Bytes still live at the end.
    #[serde(default)]
    pub eb: u64,
    /// Blocks still live at the end.
    #[serde(default)]
    pub ebk: u64,
    /// Frames, innermost (the allocation) first, as indices into `ftbl`.
    pub fs: Vec<usize>,
}

/// A frame of the table: its function and, where known, `file:line:column`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The function, demangled, without its hash.
    pub func: String,
    /// Its source location.
    pub loc: Option<String>,
}

/// Reads a frame as dhat writes it: `0x55d1…: engine::hot::thread (engine/src/hot.rs:170:5)`.
pub fn parse_frame(s: &str) -> Frame {
    let rest = match s.split_once(": ") {
        Some((addr, rest)) if addr.starts_with("0x") => rest,
        _ => s,
    };
    let (func, loc) = match rest.rfind(" (") {
        Some(i) if rest.ends_with(')') => {
            (&rest[..i], Some(rest[i + 2..rest.len() - 1].to_string()))
        }
        _ => (rest, None),
    };
    Frame {
        func: strip_hash(func).to_string(),
        loc,
    }
}

/// `f::h0123456789abcdef` without its hash.
fn strip_hash(f: &str) -> &str {
    match f.rsplit_once("::h") {
        Some((head, h)) if h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()) => head,
        _ => f,
    }
}

/// The function a frame names with generic wrappers taken off (`<engine::x::Y as T>::f`
/// reads as `engine::x::Y as T>::f`), for matching by prefix.
fn bare(func: &str) -> &str {
    func.trim_start_matches(['<', '&', ' '])
}

/// The role of a backtrace (frames innermost first): the innermost frame that is a
/// thread's entry function (see [`ROLE_ENTRIES`]), else `other`.
pub fn role_of(frames: &[Frame]) -> &'static str {
    for f in frames {
        let name = bare(&f.func);
        for (entry, role) in ROLE_ENTRIES {
            let hit = if entry.ends_with("::") {
                name.starts_with(entry)
            } else {
                name == entry || name.starts_with(&format!("{entry}::"))
            };
            if hit {
                if name.contains("{{closure}}") && role.ends_with("_main") {
                    // A thread spawned by a main function, not the main thread.
                    return "other";
                }
                return role;
            }
        }
    }
    "other"
}

/// The call site of a backtrace (frames innermost first): the innermost frame in the
/// project's code outside the allocation wrappers, else the innermost one outside the
/// standard library and the allocators, else the allocation itself.
pub fn site_of(frames: &[Frame]) -> Option<&Frame> {
    let own = |f: &&Frame| {
        let n = bare(&f.func);
        OWN.iter().any(|p| n.starts_with(p)) && !WRAPPERS.iter().any(|p| n.starts_with(p))
    };
    let lib = |f: &&Frame| {
        let n = bare(&f.func);
        !MACHINERY.iter().any(|p| n.starts_with(p)) && !WRAPPERS.iter().any(|p| n.starts_with(p))
    };
    frames
        .iter()
        .find(own)
        .or_else(|| frames.iter().find(lib))
        .or_else(|| frames.first())
}

/// One role's figures over the run.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct RoleFigures {
    /// The role.
    pub role: String,
    /// Allocations (reallocations count as allocations, as dhat counts them).
    pub allocs: u64,
    /// Of them, freed before the end.
    pub frees: u64,
    /// Bytes allocated.
    pub bytes: u64,
    /// Bytes live at the heap's global peak.
    pub peak_live: u64,
    /// Bytes live at the end.
    pub end_live: u64,
}

/// One call site of one role.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Site {
    /// The role.
    pub role: String,
    /// The function.
    pub func: String,
    /// Its source location.
    pub loc: String,
    /// Allocations.
    pub allocs: u64,
    /// Bytes allocated.
    pub bytes: u64,
    /// Bytes live at the heap's global peak.
    pub peak_live: u64,
    /// Mean lifetime of its blocks, microseconds.
    pub mean_life_us: f64,
}

/// A profile read and attributed.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Profile {
    /// Per role, most allocations first.
    pub roles: Vec<RoleFigures>,
    /// Per role and call site, most allocations first.
    pub sites: Vec<Site>,
    /// Collapsed stacks (`role;outermost;…;innermost`) with their allocations and bytes.
    #[serde(skip)]
    pub stacks: Vec<(String, u64, u64)>,
    /// The run's length, seconds (dhat's).
    pub seconds: f64,
}

impl Profile {
    /// Attributes every program point of `file`.
    pub fn of(file: &DhatFile) -> Result<Profile> {
        if file.version != 2 || file.mode != "rust-heap" {
            bail!(
                "not a dhat heap profile (version {}, mode {:?})",
                file.version,
                file.mode
            );
        }
        let frames: Vec<Frame> = file.ftbl.iter().map(|s| parse_frame(s)).collect();
        let per_us = match file.tu.as_str() {
            "µs" | "us" | "" => 1.0,
            "ns" => 1e-3,
            "ms" => 1e3,
            other => bail!("unknown time unit {other:?} in the profile"),
        };
        let mut roles: BTreeMap<&str, RoleFigures> = BTreeMap::new();
        let mut sites: BTreeMap<(&str, String, String), (Site, u64)> = BTreeMap::new();
        let mut stacks = Vec::new();
        for pp in &file.pps {
            let fs: Vec<Frame> = pp
                .fs
                .iter()
                .map(|&i| {
                    frames
                        .get(i)
                        .cloned()
                        .context("a frame index outside the table")
                })
                .collect::<Result<_>>()?;
            let role = role_of(&fs);
            let r = roles.entry(role).or_insert_with(|| RoleFigures {
                role: role.to_string(),
                ..RoleFigures::default()
            });
            r.allocs += pp.tbk;
            r.frees += pp.tbk.saturating_sub(pp.ebk);
            r.bytes += pp.tb;
            r.peak_live += pp.gb;
            r.end_live += pp.eb;
            let site = site_of(&fs);
            let (func, loc) = site.map_or(("[unknown]".to_string(), String::new()), |f| {
                (f.func.clone(), f.loc.clone().unwrap_or_default())
            });
            let s = sites
                .entry((role, func.clone(), loc.clone()))
                .or_insert_with(|| {
                    (
                        Site {
                            role: role.to_string(),
                            func,
                            loc,
                            ..Site::default()
                        },
                        0,
                    )
                });
            s.0.allocs += pp.tbk;
            s.0.bytes += pp.tb;
            s.0.peak_live += pp.gb;
            s.1 += pp.tl;
            let path: Vec<&str> = fs
                .iter()
                .rev()
                .filter(|f| f.func != "[root]")
                .map(|f| f.func.as_str())
                .collect();
            stacks.push((
                format!("{role};{}", path.join(";").replace(' ', "\u{a0}")),
                pp.tbk,
                pp.tb,
            ));
        }
        let mut roles: Vec<RoleFigures> = roles.into_values().collect();
        roles.sort_by(|a, b| b.allocs.cmp(&a.allocs).then(a.role.cmp(&b.role)));
        let mut sites: Vec<Site> = sites
            .into_values()
            .map(|(mut s, tl)| {
                s.mean_life_us = if s.allocs == 0 {
                    0.0
                } else {
                    tl as f64 * per_us / s.allocs as f64
                };
                s
            })
            .collect();
        sites.sort_by(|a, b| b.allocs.cmp(&a.allocs).then(b.bytes.cmp(&a.bytes)));
        Ok(Profile {
            roles,
            sites,
            stacks,
            seconds: file.te as f64 * per_us / 1e6,
        })
    }

    /// The figures of `role`.
    #[cfg(test)]
    pub fn role(&self, role: &str) -> Option<&RoleFigures> {
        self.roles.iter().find(|r| r.role == role)
    }
}

/// What the run besides the profile says, for the rules.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunFacts {
    /// Ticks the engine handled.
    pub ticks: u64,
    /// Peak RSS of the process, bytes.
    pub rss: u64,
    /// The engine's scratch mode.
    pub scratch: ScratchMode,
    /// Whether cold threads share the hot threads' cores (every allowed core runs a
    /// hot thread, as on the 2-core machine).
    pub cold_on_hot_cores: bool,
}

/// One suggestion: the site (or role) it is about, the figure that triggered it, and
/// the change.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Suggestion {
    /// The rule that made it.
    pub rule: &'static str,
    /// The role.
    pub role: String,
    /// The call site (`function (file:line:col)`), if it is about one.
    pub site: Option<String>,
    /// The measured figure, in words.
    pub figure: String,
    /// The change.
    pub change: String,
}

/// A hot role's site allocating on at least this share of ticks is a per-tick site.
pub const PER_TICK: f64 = 0.5;
/// A cold role allocating more often than this, per second, on cores shared with hot
/// threads.
pub const COLD_RATE_PER_S: f64 = 10_000.0;
/// A cold site allocating at least this often, per second, with blocks that live
/// shorter than [`TEMPORARY_US`], is a churn of temporaries.
pub const CHURN_PER_S: f64 = 10.0;
/// Mean lifetime below which a block is a temporary, microseconds.
pub const TEMPORARY_US: f64 = 1_000.0;
/// Share of the heap's peak above which a role dominates it.
pub const DOMINANT: f64 = 0.5;
/// Smallest peak a role must hold to dominate it, bytes.
pub const DOMINANT_MIN: u64 = 1 << 20;
/// Sites per rule at most.
const PER_RULE: usize = 3;

fn at(s: &Site) -> String {
    if s.loc.is_empty() {
        s.func.clone()
    } else {
        format!("{} ({})", s.func, s.loc)
    }
}

/// The suggestions the profile supports, by these rules:
///
/// - `per_tick`: a site of a hot role that allocates on at least [`PER_TICK`] of the
///   ticks: move it to the per-tick arena or reuse a buffer.
/// - `cold_rate`: a cold role allocating more than [`COLD_RATE_PER_S`] times a second
///   while cold threads share the hot threads' cores: every call is CPU taken from a
///   hot thread there; batch, pool or move it.
/// - `churn`: a cold site allocating at least [`CHURN_PER_S`] times a second blocks
///   that live less than [`TEMPORARY_US`] on average: reuse one buffer.
/// - `dominant`: a role holding more than [`DOMINANT`] of the live bytes at the heap's
///   peak (and at least [`DOMINANT_MIN`]): its biggest site is where RSS goes.
pub fn suggest(p: &Profile, facts: &RunFacts) -> Vec<Suggestion> {
    let mut out = Vec::new();
    let secs = p.seconds.max(1e-9);
    for role in HOT {
        let mut n = 0;
        for s in p.sites.iter().filter(|s| s.role == role) {
            let per_tick = s.allocs as f64 / facts.ticks.max(1) as f64;
            if facts.ticks == 0 || per_tick < PER_TICK || n == PER_RULE {
                continue;
            }
            n += 1;
            let mean = s.bytes as f64 / s.allocs.max(1) as f64;
            let change = if role == "engine_hot" && facts.scratch == ScratchMode::Heap {
                "allocate it from the per-tick arena (engine.scratch = \"arena\") or reuse one buffer across ticks"
            } else {
                "reuse one buffer across ticks, or allocate it from a per-tick arena"
            };
            out.push(Suggestion {
                rule: "per_tick",
                role: role.to_string(),
                site: Some(at(s)),
                figure: format!(
                    "{per_tick:.2} allocations per tick ({} in {} ticks, {mean:.0} bytes each on average)",
                    s.allocs, facts.ticks
                ),
                change: change.to_string(),
            });
        }
    }
    for r in p.roles.iter().filter(|r| !HOT.contains(&r.role.as_str())) {
        let rate = r.allocs as f64 / secs;
        if facts.cold_on_hot_cores && rate > COLD_RATE_PER_S {
            let top = p.sites.iter().find(|s| s.role == r.role);
            out.push(Suggestion {
                rule: "cold_rate",
                role: r.role.clone(),
                site: top.map(at),
                figure: format!(
                    "{rate:.0} allocations per second on cores the hot threads spin on"
                ),
                change: "batch the work (fewer, larger allocations), keep a pool of its objects, or give the cold threads cores of their own (cores.cold)".to_string(),
            });
        }
    }
    let mut n = 0;
    for s in p
        .sites
        .iter()
        .filter(|s| !HOT.contains(&s.role.as_str()) && s.role != "other")
    {
        let rate = s.allocs as f64 / secs;
        if rate >= CHURN_PER_S && s.mean_life_us < TEMPORARY_US && n < PER_RULE {
            n += 1;
            out.push(Suggestion {
                rule: "churn",
                role: s.role.clone(),
                site: Some(at(s)),
                figure: format!(
                    "{rate:.0} allocations per second of {:.0} bytes on average, each live {:.0} µs on average",
                    s.bytes as f64 / s.allocs.max(1) as f64,
                    s.mean_life_us
                ),
                change: "keep one buffer and reuse it (clear it instead of dropping it)".to_string(),
            });
        }
    }
    let peak: u64 = p.roles.iter().map(|r| r.peak_live).sum();
    for r in &p.roles {
        if peak > 0 && r.peak_live >= DOMINANT_MIN && r.peak_live as f64 > DOMINANT * peak as f64 {
            let top = p
                .sites
                .iter()
                .filter(|s| s.role == r.role)
                .max_by_key(|s| s.peak_live);
            let rss = if facts.rss > 0 {
                format!(
                    " (the process's peak RSS: {})",
                    common::units::fmt_bytes(facts.rss)
                )
            } else {
                String::new()
            };
            out.push(Suggestion {
                rule: "dominant",
                role: r.role.clone(),
                site: top.map(at),
                figure: format!(
                    "{} of the {} live at the heap's peak ({:.0}%){rss}",
                    common::units::fmt_bytes(r.peak_live),
                    common::units::fmt_bytes(peak),
                    100.0 * r.peak_live as f64 / peak as f64
                ),
                change: "bound what it keeps (a retention limit), or store it more densely; this is where the heap's RSS goes".to_string(),
            });
        }
    }
    out
}

/// `lab profile`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ProfileArgs {
    /// The run configuration (TOML).
    #[arg(long, value_name = "FILE", default_value = "configs/default.toml")]
    pub config: PathBuf,
    /// Run for this many seconds instead of the config's `duration_s`.
    #[arg(long, value_name = "SECS", value_parser = common::runargs::parse_secs)]
    pub duration: Option<f64>,
    /// The engine's scratch strategy instead of the config's (`heap` shows its per-tick
    /// allocations).
    #[arg(long, value_name = "MODE", value_enum)]
    pub scratch: Option<ScratchMode>,
    /// Report folder (a new `results/<UTC time>-profile-<config>` by default); must not
    /// hold an earlier profile.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Folder of `pipeline-dhat` [default: `target/profiling` beside lab's folder if it
    /// has one (debug info: source locations), else lab's own folder].
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
}

/// The folder of `pipeline-dhat`: the flag, else the profiling build beside lab's
/// folder when it has the binary, else lab's folder.
fn profile_bin_dir(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(d) = flag {
        return Ok(d.to_path_buf());
    }
    let own = bin_dir(None)?;
    let profiling = own.parent().map(|t| t.join("profiling"));
    match profiling {
        Some(p) if p.join(PipelineAlloc::Dhat.bin()).is_file() => Ok(p),
        _ => Ok(own),
    }
}

/// Runs `lab profile`.
pub fn profile(args: &ProfileArgs) -> Result<()> {
    let allowed = common::cores::allowed_cores();
    let overrides = Overrides {
        scratch: args.scratch,
        duration_s: args.duration,
        ..Overrides::default()
    };
    let plan = RunPlan::load(&args.config, &overrides, &allowed)?;
    let dir = profile_bin_dir(args.bin_dir.as_deref())?;
    let bins = Binaries::find_pipeline(&dir, PipelineAlloc::Dhat).context(
        "lab profile runs pipeline-dhat: build it with `cargo build --profile profiling -p pipeline --bin pipeline-dhat` (source locations need its debug info)",
    )?;
    let out = match &args.out {
        Some(d) => {
            if d.join(PROFILE).exists() {
                return Err(Failure::bad_input(anyhow::anyhow!(
                    "{} holds a profile already: profile into a new folder",
                    d.display()
                ))
                .into());
            }
            common::runargs::prepare_out_dir(d, &crate::run::RUN_OUTPUTS)
                .map_err(Failure::bad_input)?;
            d.clone()
        }
        None => {
            let stem = args
                .config
                .file_stem()
                .map_or("config".into(), |s| s.to_string_lossy().into_owned());
            files::create_fresh_dir(&Path::new(crate::run::RESULTS_DIR).join(format!(
                "{}-profile-{stem}",
                common::units::utc_stamp(std::time::SystemTime::now())
            )))?
        }
    };
    let mut signals = Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .context("cannot install the SIGINT/SIGTERM handler")?;
    eprintln!(
        "lab: profiling {} with {} (every allocation recorded: slow, its latencies are not the pipeline's)",
        args.config.display(),
        dir.join(PipelineAlloc::Dhat.bin()).display()
    );
    let allowed_all_hot = allowed.len() <= 2;
    let ran = execute(
        &plan,
        &bins,
        &out,
        Output::Logs,
        &mut signals,
        None,
        &[plan.config.cores.engine_hot],
    )?;
    if let Some(sig) = ran.interrupted_by {
        bail!("the run was interrupted by {sig}");
    }
    let text = std::fs::read(out.join(PROFILE))
        .with_context(|| format!("cannot read {}", out.join(PROFILE).display()))?;
    let file: DhatFile = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a dhat heap profile", out.join(PROFILE).display()))?;
    let p = Profile::of(&file)?;
    let facts = RunFacts {
        ticks: ran.summary.ticks.received,
        rss: ran.summary.engine.detail.memory.peak_rss_bytes,
        scratch: ScratchMode::from_name(&ran.summary.engine.detail.scratch).unwrap_or_default(),
        cold_on_hot_cores: allowed_all_hot,
    };
    let suggestions = suggest(&p, &facts);
    let svgs = write_flame_graphs(&p, &out)?;
    let report = render(&p, &suggestions, &facts, &ran.summary, &svgs, &args.config);
    files::write(&out.join("profile.md"), Kind::Markup, report.as_bytes())?;
    #[derive(serde::Serialize)]
    struct Written<'a> {
        profile: &'a Profile,
        suggestions: &'a [Suggestion],
        ticks: u64,
    }
    files::write_json(
        &out.join("profile.json"),
        &Written {
            profile: &p,
            suggestions: &suggestions,
            ticks: facts.ticks,
        },
    )?;
    print!("{report}");
    eprintln!("lab: profile in {}", out.display());
    Ok(())
}

/// Flame graphs of the collapsed stacks: the process by allocations and by bytes, and
/// each role with allocations by allocations. Returns the files' names.
pub fn write_flame_graphs(p: &Profile, out: &Path) -> Result<Vec<String>> {
    let mut written = Vec::new();
    let mut draw = |name: String, title: String, count: &str, lines: Vec<String>| -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let svg = flame_svg(&title, count, &lines)?;
        files::write(&out.join(&name), Kind::Markup, svg.as_bytes())?;
        written.push(name);
        Ok(())
    };
    let by = |bytes: bool, role: Option<&str>| -> Vec<String> {
        p.stacks
            .iter()
            .filter(|(s, _, _)| role.is_none_or(|r| s.split(';').next() == Some(r)))
            .map(|(s, n, b)| (s, if bytes { *b } else { *n }))
            .filter(|(_, v)| *v > 0)
            .map(|(s, v)| format!("{s} {v}"))
            .collect()
    };
    draw(
        "flame-allocations.svg".into(),
        "pipeline: allocations by backtrace (root: thread role)".into(),
        "allocations",
        by(false, None),
    )?;
    draw(
        "flame-bytes.svg".into(),
        "pipeline: bytes allocated by backtrace (root: thread role)".into(),
        "bytes",
        by(true, None),
    )?;
    for r in &p.roles {
        draw(
            format!("flame-{}.svg", r.role),
            format!("{}: allocations by backtrace", r.role),
            "allocations",
            by(false, Some(&r.role)),
        )?;
    }
    Ok(written)
}

/// One flame graph (inferno) of collapsed-stack `lines`, marked as the project's
/// file (its XML declaration replaced by the mark, which must come first).
pub fn flame_svg(title: &str, count: &str, lines: &[String]) -> Result<String> {
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = title.to_string();
    opts.count_name = count.to_string();
    opts.colors =
        inferno::flamegraph::color::Palette::Multi(inferno::flamegraph::color::MultiPalette::Rust);
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), &mut svg)
        .context("inferno could not draw the flame graph")?;
    let svg = String::from_utf8(svg).context("inferno wrote something other than UTF-8")?;
    let body = match svg.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map_or(rest, |(_, b)| b).trim_start(),
        None => svg.as_str(),
    };
    Ok(format!(
        "{}{body}",
        Kind::Markup.header(&format!("flame graph of lab profile: {title}"))
    ))
}

fn render(
    p: &Profile,
    suggestions: &[Suggestion],
    facts: &RunFacts,
    summary: &Summary,
    svgs: &[String],
    config: &Path,
) -> String {
    use common::units::fmt_bytes as b;
    let mut w = Kind::Markup.header("report of lab profile");
    let m = &summary.manifest;
    let _ = writeln!(w, "# Allocation profile: `lab profile`\n");
    let _ = writeln!(
        w,
        "- Configuration `{}`, engine scratch `{}`; {} ticks handled in {:.1} s under the profiler; git {}, {} ({} cores allowed).",
        config.display(),
        facts.scratch,
        facts.ticks,
        p.seconds,
        m.git_rev,
        m.cpu_model,
        m.cores_allowed.len()
    );
    let _ = writeln!(
        w,
        "- Tool: dhat-rs 0.3 as the global allocator of `pipeline-dhat` (the feed's and the engine's threads in one process, over the system allocator): every allocation with its full backtrace, under a lock, so the run is slow and its latencies are not the pipeline's. It sees every allocation through the Rust global allocator; it cannot see memory mapped directly (the ring, an arena's reservation) or an allocator's own metadata, and figures are over the whole run, start-up and warm-up included.\n- Roles: a backtrace belongs to the thread whose entry function is its innermost such frame (`feed::md::thread` is `feed_md`, …); a call site is its innermost frame in the project's code outside the allocation wrappers.\n"
    );
    let _ = writeln!(w, "## Per thread role\n");
    let _ = writeln!(w, "| role | allocations | per tick | per second | frees | bytes | live at the heap's peak | live at the end |");
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &p.roles {
        let _ = writeln!(
            w,
            "| {} | {} | {:.3} | {:.0} | {} | {} | {} | {} |",
            r.role,
            r.allocs,
            r.allocs as f64 / facts.ticks.max(1) as f64,
            r.allocs as f64 / p.seconds.max(1e-9),
            r.frees,
            b(r.bytes),
            b(r.peak_live),
            b(r.end_live)
        );
    }
    let hot = &summary.engine.detail.hot_allocs;
    let _ = writeln!(
        w,
        "\nThe engine's own counting allocator, after the warm-up: {} allocations and {} reallocations on the hot thread in {} ticks ({:.3} per tick). Under dhat it also counts dhat's own bookkeeping (its backtraces and tables go through the global allocator too), so the per-tick figures above, dhat's, are the pipeline's.\n",
        hot.allocs,
        hot.reallocs,
        summary.engine.detail.measured_ticks,
        summary.engine.global_allocs_per_tick
    );
    let top = |w: &mut String, title: &str, key: &dyn Fn(&Site) -> u64| {
        let mut s: Vec<&Site> = p.sites.iter().collect();
        s.sort_by_key(|x| std::cmp::Reverse(key(x)));
        let _ = writeln!(w, "## Top call sites by {title}\n");
        let _ = writeln!(
            w,
            "| role | call site | location | allocations | bytes | live at the peak | mean life |"
        );
        let _ = writeln!(w, "|---|---|---|---:|---:|---:|---:|");
        for x in s.iter().take(15) {
            let _ = writeln!(
                w,
                "| {} | `{}` | {} | {} | {} | {} | {:.0} µs |",
                x.role,
                x.func.replace('|', "\\|"),
                x.loc,
                x.allocs,
                b(x.bytes),
                b(x.peak_live),
                x.mean_life_us
            );
        }
        let _ = writeln!(w);
    };
    top(&mut w, "count", &|s| s.allocs);
    top(&mut w, "bytes", &|s| s.bytes);
    let _ = writeln!(w, "## Suggestions\n");
    if suggestions.is_empty() {
        let _ = writeln!(
            w,
            "None: no rule's threshold was reached (see `lab/src/profile.rs`, `suggest`).\n"
        );
    }
    for s in suggestions {
        let _ = writeln!(
            w,
            "- **{}** ({}): {}{}: {}.",
            s.role,
            s.rule,
            s.site
                .as_ref()
                .map_or(String::new(), |x| format!("`{x}`, ")),
            s.figure,
            s.change
        );
    }
    let _ = writeln!(w, "\n## Flame graphs\n");
    for f in svgs {
        let _ = writeln!(w, "- [{f}]({f})");
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fr(func: &str) -> Frame {
        Frame {
            func: func.into(),
            loc: Some("x.rs:1:1".into()),
        }
    }

    #[test]
    fn frames_read_as_dhat_writes_them() {
        assert_eq!(
            parse_frame(
                "0x55d1a2: engine::hot::thread::h0123456789abcdef (engine/src/hot.rs:170:5)"
            ),
            Frame {
                func: "engine::hot::thread".into(),
                loc: Some("engine/src/hot.rs:170:5".into())
            }
        );
        assert_eq!(
            parse_frame("0x1: <alloc::vec::Vec<T> as core::clone::Clone>::clone"),
            Frame {
                func: "<alloc::vec::Vec<T> as core::clone::Clone>::clone".into(),
                loc: None
            }
        );
        assert_eq!(parse_frame("[root]").func, "[root]");
    }

    #[test]
    fn stacks_go_to_the_role_of_their_innermost_thread_entry() {
        let stack = |fs: &[&str]| fs.iter().map(|f| fr(f)).collect::<Vec<_>>();
        // Innermost first: the history thread inside the feed's spawning closure.
        let history = stack(&[
            "alloc::raw_vec::finish_grow",
            "feed::history::History::push",
            "feed::history_thread",
            "feed::run::{{closure}}",
            "std::thread::Builder::spawn_unchecked_::{{closure}}",
        ]);
        assert_eq!(role_of(&history), "feed_history");
        assert_eq!(
            role_of(&stack(&[
                "alloc::alloc",
                "engine::hot::Scratch::handle",
                "engine::hot::run",
                "engine::hot::thread"
            ])),
            "engine_hot"
        );
        assert_eq!(
            role_of(&stack(&[
                "<engine::order::OrderMsg>::encode",
                "engine::order_thread"
            ])),
            "engine_orders"
        );
        assert_eq!(
            role_of(&stack(&[
                "feed::journal::open",
                "feed::run",
                "feed::run_from",
                "pipeline::run::{{closure}}"
            ])),
            "feed_main"
        );
        assert_eq!(
            role_of(&stack(&[
                "serde_json::to_vec",
                "pipeline::run",
                "pipeline::main_guarded"
            ])),
            "pipeline_main"
        );
        // A thread this table does not know, spawned by a main function: not the main one.
        assert_eq!(
            role_of(&stack(&[
                "alloc::alloc",
                "engine::new_thread_fn",
                "engine::run::{{closure}}"
            ])),
            "other"
        );
        assert_eq!(
            role_of(&stack(&["alloc::alloc", "std::rt::lang_start"])),
            "other"
        );
        // The call site: the project's innermost frame outside the allocation wrappers.
        let s = stack(&[
            "alloc::raw_vec::finish_grow",
            "<common::alloc::CountingAlloc<A> as core::alloc::global::GlobalAlloc>::alloc",
            "common::routed::on_fixed",
            "feed::history::SymbolHistory::push_tick",
            "feed::history_thread",
        ]);
        assert_eq!(
            site_of(&s).unwrap().func,
            "feed::history::SymbolHistory::push_tick"
        );
        let lib = stack(&[
            "alloc::alloc",
            "serde_json::ser::to_vec",
            "std::rt::lang_start",
        ]);
        assert_eq!(site_of(&lib).unwrap().func, "serde_json::ser::to_vec");
    }

    /// A profile of three backtraces: the engine's hot thread allocating 6 blocks per
    /// tick at one site, the report thread's short-lived strings, and the history
    /// holding most of the heap's peak.
    fn file(hot_blocks: u64) -> DhatFile {
        let ftbl = [
            "[root]",
            "0x1: alloc::alloc::alloc",
            "0x2: engine::decider::Decider::quote (engine/src/decider.rs:88:13)",
            "0x3: engine::hot::thread (engine/src/hot.rs:170:5)",
            "0x4: alloc::fmt::format::format_inner",
            "0x5: engine::report_thread (engine/src/lib.rs:600:9)",
            "0x6: feed::history::SymbolHistory::push_tick (feed/src/history.rs:63:33)",
            "0x7: feed::history_thread (feed/src/lib.rs:340:5)",
        ]
        .map(String::from)
        .to_vec();
        let pp = |tb, tbk, tl, gb, eb, ebk, fs: &[usize]| ProgramPoint {
            tb,
            tbk,
            tl,
            gb,
            eb,
            ebk,
            fs: fs.to_vec(),
        };
        DhatFile {
            version: 2,
            mode: "rust-heap".into(),
            tu: "µs".into(),
            te: 10_000_000,
            pps: vec![
                pp(
                    hot_blocks * 48,
                    hot_blocks,
                    hot_blocks,
                    0,
                    0,
                    0,
                    &[1, 2, 3, 0],
                ),
                pp(64 * 2000, 2000, 2000 * 30, 0, 0, 0, &[1, 4, 5, 0]),
                pp(
                    16384 * 400,
                    400,
                    400 * 5_000_000,
                    6 << 20,
                    6 << 20,
                    384,
                    &[1, 6, 7, 0],
                ),
            ],
            ftbl,
        }
    }

    fn facts(scratch: ScratchMode) -> RunFacts {
        RunFacts {
            ticks: 100_000,
            rss: 80 << 20,
            scratch,
            cold_on_hot_cores: true,
        }
    }

    #[test]
    fn roles_and_sites_add_up() {
        let p = Profile::of(&file(600_000)).unwrap();
        assert_eq!(p.seconds, 10.0);
        let hot = p.role("engine_hot").unwrap();
        assert_eq!(
            (hot.allocs, hot.frees, hot.bytes),
            (600_000, 600_000, 600_000 * 48)
        );
        let hist = p.role("feed_history").unwrap();
        assert_eq!(
            (hist.allocs, hist.frees, hist.peak_live),
            (400, 16, 6 << 20)
        );
        assert_eq!(p.sites[0].func, "engine::decider::Decider::quote");
        assert_eq!(p.sites[0].loc, "engine/src/decider.rs:88:13");
        assert_eq!(p.sites[1].mean_life_us, 30.0);
        assert!(p.stacks.iter().any(|(s, n, _)| s
            == "engine_hot;engine::hot::thread;engine::decider::Decider::quote;alloc::alloc::alloc"
            && *n == 600_000));
        let mut bad = file(1);
        bad.pps[0].fs.push(99);
        assert!(Profile::of(&bad).is_err(), "a frame outside the table");
    }

    #[test]
    fn suggestions_follow_the_figures() {
        let rules = |p: &Profile, f: &RunFacts| -> Vec<(&'static str, String)> {
            suggest(p, f)
                .into_iter()
                .map(|s| (s.rule, s.role))
                .collect()
        };
        // Heap scratch: 6 per tick on the hot thread; the report thread's strings are
        // churn; the history dominates the heap's peak.
        let p = Profile::of(&file(600_000)).unwrap();
        let s = suggest(&p, &facts(ScratchMode::Heap));
        let per_tick = s
            .iter()
            .find(|s| s.rule == "per_tick")
            .expect("per-tick site");
        assert_eq!(per_tick.role, "engine_hot");
        assert!(per_tick
            .site
            .as_deref()
            .unwrap()
            .contains("engine/src/decider.rs:88:13"));
        assert!(
            per_tick.figure.starts_with("6.00 allocations per tick"),
            "{}",
            per_tick.figure
        );
        assert!(per_tick.change.contains("engine.scratch = \"arena\""));
        assert_eq!(
            rules(&p, &facts(ScratchMode::Heap)),
            vec![
                ("per_tick", "engine_hot".to_string()),
                ("churn", "engine_report".to_string()),
                ("dominant", "feed_history".to_string())
            ]
        );
        // Arena scratch: a handful of start-up blocks on the hot thread, no per-tick site.
        let p = Profile::of(&file(12)).unwrap();
        assert!(!rules(&p, &facts(ScratchMode::Arena))
            .iter()
            .any(|(r, _)| *r == "per_tick"));
        // A cold role above the rate, on shared cores only.
        let mut f = file(12);
        f.pps[1].tbk = 200_000;
        let p = Profile::of(&f).unwrap();
        assert!(rules(&p, &facts(ScratchMode::Arena))
            .contains(&("cold_rate", "engine_report".to_string())));
        let own_cores = RunFacts {
            cold_on_hot_cores: false,
            ..facts(ScratchMode::Arena)
        };
        assert!(!rules(&p, &own_cores).iter().any(|(r, _)| *r == "cold_rate"));
        // Long-lived blocks are not churn; a small peak dominates nothing.
        let mut f = file(12);
        f.pps[1].tl = 2000 * 5_000;
        f.pps[2].gb = 1000;
        let p = Profile::of(&f).unwrap();
        assert!(
            rules(&p, &facts(ScratchMode::Arena)).is_empty(),
            "{:?}",
            rules(&p, &facts(ScratchMode::Arena))
        );
    }

    #[test]
    fn flame_graphs_are_marked_svg() {
        let lines = vec![
            "engine_hot;engine::hot::thread;alloc 600".to_string(),
            "feed_history;feed::history_thread 5".to_string(),
        ];
        let svg = flame_svg("t", "allocations", &lines).unwrap();
        assert!(
            svg.starts_with("<!-- written by hft-alloc-lab"),
            "{}",
            &svg[..80]
        );
        assert!(!svg.contains("<?xml"));
        let opts = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        };
        let doc = roxmltree::Document::parse_with_options(&svg, opts).expect("well-formed SVG");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(svg.contains("engine::hot::thread"));
    }
}
