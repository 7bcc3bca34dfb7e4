//! The single-process pipeline: the feed (its md and history threads) and the engine
//! (its hot and cold threads) in one process, so that the hybrid of allocators can be
//! had without two processes: with the routing allocator ([`common::routed::Hybrid`],
//! the `pipeline` binary) the feed's md thread and the engine's hot thread allocate
//! from a mimalloc arena and every other thread from jemalloc; the variants
//! `pipeline-system`, `pipeline-jemalloc` and `pipeline-mimalloc` run the same threads on
//! one allocator, for comparison.
//!
//! Each side runs exactly as its own binary does, from the same configuration file:
//! the same threads, core plan, summaries, interval lines and `.hlog`, written to
//! `OUT/feed` and `OUT/engine`. The ring between the md and the hot thread is the
//! configuration's `ring.path`, mapped by both sides of the one process. Both sides
//! share the process's signal handling (SIGINT and SIGTERM stop both), its RSS (each
//! summary reports the process's) and its allocator statistics.
//!
//! Start-up only here: it reserves the hot arena, starts the two sides on threads of
//! their own and waits for them.
#![deny(unsafe_code)]

use clap::Parser;
use common::allocators::AllocatorHooks;
use common::failure::Failure;
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
    /// Output folder: the feed writes into `OUT/feed`, the engine into `OUT/engine`.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// With the routing allocator: the hot arena's size, reserved at start.
    #[arg(long, value_name = "MIB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub hot_arena_mib: u64,
}

/// Reserves the routing allocator's hot arena of the given bytes (absent for a
/// single-allocator variant); returns its address range.
pub type Reserve<'a> = &'a dyn Fn(usize) -> Result<std::ops::Range<usize>, String>;

/// The entry point of every pipeline binary.
pub fn main_with(hooks: AllocatorHooks, reserve: Option<Reserve>) -> ExitCode {
    let args = Args::parse();
    match run(&args, hooks, reserve) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report("pipeline"),
    }
}

fn run(args: &Args, hooks: AllocatorHooks, reserve: Option<Reserve>) -> Result<(), Failure> {
    if let Some(reserve) = reserve {
        let bytes = (args.hot_arena_mib as usize) << 20;
        let range = reserve(bytes).map_err(|e| {
            Failure::bad_input(anyhow::anyhow!(
                "--hot-arena-mib {}: {e}",
                args.hot_arena_mib
            ))
        })?;
        eprintln!(
            "pipeline: hot arena of {} MiB at {:#x}..{:#x} (mimalloc); every other thread on jemalloc",
            range.len() >> 20,
            range.start,
            range.end
        );
    }
    let argv = |side: &str| {
        let mut v: Vec<OsString> = vec![
            side.into(),
            "--config".into(),
            args.config.clone().into(),
            "--out".into(),
            args.out.join(side).into(),
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
    let joined = |h: std::thread::JoinHandle<Result<(), Failure>>, side: &str| {
        h.join()
            .unwrap_or_else(|_| Err(Failure::runtime(anyhow::anyhow!("the {side} panicked"))))
    };
    let feed = joined(feed, "feed");
    let engine = joined(engine, "engine");
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
