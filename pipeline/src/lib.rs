//! The single-process pipeline: the feed (its md and history threads) and the engine
//! (its hot and cold threads) in one process, so that the hybrid of allocators can be
//! had without two processes: with the routing allocator ([`common::routed::Hybrid`],
//! the `pipeline` binary) each thread role allocates where `[routing.roles]` sends it
//! (by default the feed's md thread and the engine's hot thread from a mimalloc arena,
//! every other thread from jemalloc; `routing.adaptive` lets the cold roles keep the
//! faster allocator, see the `adapt` module); the variants
//! `pipeline-system`, `pipeline-jemalloc` and `pipeline-mimalloc` run the same threads on
//! one allocator, for comparison.
//!
//! Each side runs exactly as its own binary does, from the same configuration file:
//! the same threads, core plan, summaries, interval lines and `.hlog`, written into
//! one output folder as `lab run` lays it out (`feed_summary.json`,
//! `engine_summary.json`, `engine.hlog`). The ring between the md and the hot thread lives
//! in the process's memory (an anonymous mapping, pre-faulted, found by `ring.path` in a
//! table of the process: [`common::ring::shm::keep_rings_in_process`]); no ring file is
//! written. Both sides share the process's signal handling (SIGINT and SIGTERM stop
//! both), its RSS (each summary reports the process's) and its allocator statistics.
//! With the routing allocator it writes `routing.json` ([`common::runargs::ROUTING_REPORT`]) beside the
//! summaries: the routes as configured and as run, the adaptive evidence, the counts.
//!
//! Start-up and the adaptive warm-up only here (the main thread, cold): it reserves the
//! hot arena, sets the routes, starts the two sides on threads of their own, adapts if
//! asked and waits for them.
#![deny(unsafe_code)]

mod adapt;

use clap::Parser;
use common::allocators::AllocatorHooks;
use common::config::{Config, KeyPath, RouteAlloc};
use common::failure::Failure;
use common::routed::RouteStats;
use common::runargs::ROUTING_REPORT;
use common::summary::RoutingReport;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "The single-process pipeline: the feed's and the engine's threads in one process"
)]
pub struct Args {
    /// Run configuration (TOML), read by both sides.
    #[arg(
        long,
        short,
        value_name = "FILE",
        default_value = "configs/default.toml"
    )]
    pub config: PathBuf,
    /// Run for this many seconds instead of the config's `duration_s`.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<String>,
    /// Output folder, shared by both sides as in `lab run` (`feed_summary.json`,
    /// `engine_summary.json`, `engine.hlog`, …).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// With the routing allocator: the hot arena's size, reserved at start, instead of
    /// the configuration's `routing.arena_mib`.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub hot_arena_mib: Option<u64>,
}

/// What the pipeline needs of a routing global allocator (the `pipeline` binary's;
/// absent for a single-allocator variant).
pub trait Router: Sync {
    /// Reserves the hot arena of `bytes`; its address range.
    fn reserve(&self, bytes: usize) -> Result<std::ops::Range<usize>, String>;
    /// Allocations of hot-routed roles above `bytes` go to jemalloc from now on.
    fn set_hot_max_bytes(&self, bytes: usize);
    /// Both routes' counts so far.
    fn stats(&self) -> RouteStats;
}

/// The entry point of every pipeline binary.
pub fn main_with(hooks: AllocatorHooks, router: Option<&dyn Router>) -> ExitCode {
    main_guarded(hooks, router, &|_| Ok(Box::new(())))
}

/// Something a binary keeps alive for the whole run and drops after both sides have
/// ended (`pipeline-dhat`'s profiler, which writes its profile when dropped).
pub type Guard = Box<dyn std::any::Any>;

/// [`main_with`], with `guard` made from the arguments before anything starts and
/// dropped after both sides have ended.
pub fn main_guarded(
    hooks: AllocatorHooks,
    router: Option<&dyn Router>,
    guard: &dyn Fn(&Args) -> Result<Guard, Failure>,
) -> ExitCode {
    common::routed::enter_role("pipeline_main");
    let args = Args::parse();
    let kept = match guard(&args) {
        Ok(g) => g,
        Err(f) => return f.report("pipeline"),
    };
    let ran = run(&args, hooks, router);
    drop(kept);
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report("pipeline"),
    }
}

/// Reserves the arena, sets the routes from `config.routing` and asks the cold threads
/// to time their calls when the router adapts.
fn set_up_routing(args: &Args, config: &Config, router: &dyn Router) -> Result<u64, Failure> {
    let routing = &config.routing;
    let (mib, from_flag) = match args.hot_arena_mib {
        Some(m) => (m, true),
        None => (routing.arena_mib, false),
    };
    let bytes = (mib as usize) << 20;
    let range = router.reserve(bytes).map_err(|e| {
        Failure::bad_input(if from_flag {
            anyhow::anyhow!("--hot-arena-mib {mib}: {e}")
        } else {
            anyhow::Error::new(config.error_at(&KeyPath::key("routing").then("arena_mib"), e))
        })
    })?;
    if let Some(t) = routing.hot_max_bytes {
        router.set_hot_max_bytes(t as usize);
    }
    for (i, (_, alloc)) in routing.roles.all().iter().enumerate() {
        common::routed::set_role_route(i, alloc.route());
    }
    let on_arena: Vec<&str> = routing
        .roles
        .all()
        .iter()
        .filter(|(_, a)| *a == RouteAlloc::Mimalloc)
        .map(|(r, _)| *r)
        .collect();
    eprintln!(
        "pipeline: hot arena of {} MiB at {:#x}..{:#x} (mimalloc) for {}; every other role on jemalloc{}{}",
        range.len() >> 20,
        range.start,
        range.end,
        if on_arena.is_empty() { "no role".to_string() } else { on_arena.join(", ") },
        routing
            .hot_max_bytes
            .map_or(String::new(), |t| format!("; arena allocations above {t} bytes go to jemalloc")),
        if routing.adaptive { "; adaptive: the cold roles are profiled during the warm-up" } else { "" },
    );
    if routing.adaptive {
        common::routed::request_profiling();
    }
    Ok(range.len() as u64)
}

fn run(args: &Args, hooks: AllocatorHooks, router: Option<&dyn Router>) -> Result<(), Failure> {
    let allowed = common::cores::allowed_cores();
    let config = Config::load(&args.config, &allowed).map_err(Failure::bad_input)?;
    // The md and the hot thread are threads of this process: their ring lives in its
    // memory, found by `ring.path` in the process's table, not in a file.
    common::ring::shm::keep_rings_in_process();
    let arena_bytes = match router {
        Some(r) => Some(set_up_routing(args, &config, r)?),
        None => {
            if args.hot_arena_mib.is_some() {
                return Err(Failure::bad_input(anyhow::anyhow!(
                    "--hot-arena-mib: this pipeline runs on {} alone and has no hot arena (the `pipeline` binary routes)",
                    hooks.name
                )));
            }
            None
        }
    };
    let argv = |side: &str| {
        let mut v: Vec<OsString> = vec![
            side.into(),
            "--config".into(),
            args.config.clone().into(),
            "--out".into(),
            args.out.clone().into(),
        ];
        if let Some(d) = &args.duration {
            v.extend(["--duration".into(), d.into()]);
        }
        v
    };
    // The engine first: it waits for the feed's ring, as it does beside a feed process.
    let engine_argv = argv("engine");
    let engine = std::thread::Builder::new()
        .name("engine-main".into())
        .spawn(move || engine::run_from(engine_argv, hooks))
        .map_err(|e| Failure::runtime(anyhow::anyhow!("cannot start the engine: {e}")))?;
    let feed_argv = argv("feed");
    let feed = std::thread::Builder::new()
        .name("feed-main".into())
        .spawn(move || feed::run_from(feed_argv, hooks))
        .map_err(|e| Failure::runtime(anyhow::anyhow!("cannot start the feed: {e}")))?;
    let roles = match (router, arena_bytes) {
        (Some(_), Some(_)) if config.routing.adaptive => {
            let sides_done = || feed.is_finished() && engine.is_finished();
            adapt::adapt(&config, &sides_done)
        }
        _ => adapt::fixed(&config),
    };
    let joined = |h: std::thread::JoinHandle<Result<(), Failure>>, side: &str| {
        h.join()
            .unwrap_or_else(|_| Err(Failure::runtime(anyhow::anyhow!("the {side} panicked"))))
    };
    let feed = joined(feed, "feed");
    let engine = joined(engine, "engine");
    if let (Some(r), Some(arena_bytes)) = (router, arena_bytes) {
        let report = RoutingReport {
            arena_bytes,
            hot_max_bytes: config.routing.hot_max_bytes,
            adaptive: config.routing.adaptive,
            roles,
            counts: r.stats(),
        };
        print_counts(&report.counts);
        if feed.is_ok() && engine.is_ok() {
            common::files::write_json(&args.out.join(ROUTING_REPORT), &report)
                .map_err(|e| Failure::runtime(anyhow::anyhow!(e)))?;
        }
    }
    match (feed, engine) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(f), other) => {
            if let Err(e) = other {
                e.report("pipeline: engine");
            }
            Err(f)
        }
        (Ok(()), Err(e)) => Err(e),
    }
}

fn print_counts(s: &RouteStats) {
    eprintln!(
        "pipeline: routes: hot arena {} allocations ({} bytes), {} frees ({} by cold-routed threads), {} moved in; jemalloc {} allocations, {} frees ({} by hot-routed threads), {} fallbacks from hot-routed threads, {} moved in",
        s.hot.allocs,
        s.hot.bytes,
        s.hot.frees,
        s.hot.foreign_frees,
        s.hot.moved,
        s.cold.allocs,
        s.cold.frees,
        s.cold.foreign_frees,
        s.cold.fallbacks,
        s.cold.moved
    );
}
