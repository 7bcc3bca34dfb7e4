//! The command line of `lab`, parsed with clap's derive API.
//!
//! Parsing only checks the shape and range of each flag; everything that needs a file
//! (the configuration, the binaries) is checked by [`crate::run`] and [`crate::bench`].
//! Clap exits with code 2 on a bad flag; the same code is used for every other error in
//! what the user asked for, marked with [`BadInput`] (see `main.rs`).

use crate::variant::{Alloc, ScratchMode};
use clap::{Args, Parser, Subcommand};
use common::runargs::parse_secs;
use std::fmt;
use std::path::PathBuf;

/// Runs the feed and the engine together and benchmarks the ring against the
/// cache-line floor.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the engine and the feed on one config, then merge their summaries and print
    /// the latency table.
    Run(RunArgs),
    /// Run a matrix of variants (allocators, scratch strategy, levels) on the same seeded
    /// workload, interleaved and repeated, and write a report with tables and plots.
    Compare(CompareArgs),
    /// Benchmarks that report numbers (they check nothing).
    Bench {
        /// Which benchmark.
        #[command(subcommand)]
        which: BenchCommand,
    },
    /// Internal: the producer process of `lab bench hop`.
    #[command(name = "bench-producer", hide = true)]
    BenchProducer(ProducerArgs),
}

/// `lab run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The run configuration (TOML). Both processes read the copy recorded in the output
    /// folder as `config.toml`, with `--scratch`, `--levels` and `--duration` applied.
    #[arg(long, value_name = "FILE", default_value = "configs/default.toml")]
    pub config: PathBuf,
    /// Override the config's `duration_s`, in seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<f64>,
    /// Output folder [default: a new folder results/<UTC YYYYmmdd-HHMMSS>-<config stem>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Folder holding the `feed` and `engine` binaries [default: the folder of `lab`].
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Global allocator of the engine: picks the binary (`engine` links mimalloc, the
    /// others are `engine-<ALLOC>`).
    #[arg(long, value_name = "ALLOC", value_enum, default_value_t = Alloc::Mimalloc)]
    pub engine_alloc: Alloc,
    /// Global allocator of the feed: picks the binary (`feed` links jemalloc, the others
    /// are `feed-<ALLOC>`).
    #[arg(long, value_name = "ALLOC", value_enum, default_value_t = Alloc::Jemalloc)]
    pub feed_alloc: Alloc,
    /// The engine's scratch strategy (`engine.scratch`) [default: the config's].
    #[arg(long, value_name = "MODE", value_enum)]
    pub scratch: Option<ScratchMode>,
    /// Orders per side per decision (`engine.levels`, 1 to 16) [default: the config's].
    #[arg(long, value_name = "N")]
    pub levels: Option<u32>,
}

/// `lab compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The matrix of variants (TOML; see `configs/compare.toml`).
    #[arg(long, value_name = "FILE", default_value = "configs/compare.toml")]
    pub matrix: PathBuf,
    /// Report folder [default: a new folder results/compare-<UTC YYYYmmdd-HHMMSS>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Repetitions of every variant, instead of the matrix's `repetitions`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repetitions: Option<u32>,
    /// Seconds each run publishes, instead of the matrix's and the configs' durations.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<f64>,
    /// Folder holding the `feed*` and `engine*` binaries [default: the folder of `lab`].
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
}

/// `lab bench …`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// One-way latency of a ring hop between two processes and between two threads,
    /// next to the cache-line hand-off between the same two cores (the floor), in one run.
    Hop(HopArgs),
}

/// `lab bench hop`.
#[derive(Debug, Args)]
pub struct HopArgs {
    /// The configuration whose `cores.feed_md` (sending side) and `cores.engine_hot`
    /// (receiving side) are used, and whose `ring.capacity` the ring rows use.
    #[arg(long, value_name = "FILE", default_value = "configs/default.toml")]
    pub config: PathBuf,
    /// Measured samples per row; a further 10% are taken first as warm-up and discarded.
    #[arg(long, value_name = "N", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub samples: u64,
    /// Busy-wait between two published ticks, in nanoseconds, so that each hop is
    /// measured on an idle ring.
    #[arg(long, value_name = "NS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000_000))]
    pub spacing_ns: u64,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// `lab bench-producer` (hidden): publishes `count` ticks into a new ring at `ring`.
#[derive(Debug, Args)]
pub struct ProducerArgs {
    /// Path of the ring file to create.
    #[arg(long, value_name = "PATH")]
    pub ring: PathBuf,
    /// Core to pin the publishing thread to.
    #[arg(long, value_name = "N")]
    pub core: usize,
    /// Ticks to publish.
    #[arg(long, value_name = "N")]
    pub count: u64,
    /// Busy-wait between two ticks, in nanoseconds.
    #[arg(long, value_name = "NS")]
    pub spacing_ns: u64,
    /// Ring capacity in slots (a power of two).
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    pub capacity: u64,
}

/// An error in what the user asked for (a bad config file, an impossible core plan):
/// `main` exits with code 2 for it, and with 1 for failures while running.
///
/// Its `Display` is the message alone, so `error: {:#}` reads as the message does.
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

impl BadInput {
    /// Wraps `err`'s message (its `Display`) as bad input.
    pub fn from_display(err: impl fmt::Display) -> anyhow::Error {
        anyhow::Error::new(BadInput(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_defaults_and_overrides() {
        let cli = Cli::try_parse_from(["lab", "run"]).unwrap();
        let Command::Run(a) = cli.command else {
            panic!("not run")
        };
        assert_eq!(a.config, PathBuf::from("configs/default.toml"));
        assert!(a.duration.is_none() && a.out.is_none() && a.bin_dir.is_none());
        assert_eq!(
            (a.engine_alloc, a.feed_alloc),
            (Alloc::Mimalloc, Alloc::Jemalloc)
        );
        assert!(a.scratch.is_none() && a.levels.is_none());
        let cli = Cli::try_parse_from([
            "lab",
            "run",
            "--duration",
            "2.5",
            "--out",
            "x",
            "--engine-alloc",
            "tcmalloc",
            "--feed-alloc",
            "system",
            "--scratch",
            "pool",
            "--levels",
            "2",
        ])
        .unwrap();
        let Command::Run(a) = cli.command else {
            panic!("not run")
        };
        assert_eq!(a.duration, Some(2.5));
        assert_eq!(a.out, Some(PathBuf::from("x")));
        assert_eq!(
            (a.engine_alloc, a.feed_alloc),
            (Alloc::Tcmalloc, Alloc::System)
        );
        assert_eq!((a.scratch, a.levels), (Some(ScratchMode::Pool), Some(2)));
    }

    #[test]
    fn compare_defaults_and_overrides() {
        let cli = Cli::try_parse_from(["lab", "compare"]).unwrap();
        let Command::Compare(a) = cli.command else {
            panic!("not compare")
        };
        assert_eq!(a.matrix, PathBuf::from("configs/compare.toml"));
        assert!(a.out.is_none() && a.repetitions.is_none() && a.duration.is_none());
        let cli = Cli::try_parse_from(["lab", "compare", "--repetitions", "2", "--duration", "3"])
            .unwrap();
        let Command::Compare(a) = cli.command else {
            panic!("not compare")
        };
        assert_eq!((a.repetitions, a.duration), (Some(2), Some(3.0)));
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in ["0", "-1", "nan", "inf", "soon"] {
            assert!(
                Cli::try_parse_from(["lab", "run", "--duration", bad]).is_err(),
                "{bad}"
            );
        }
        assert!(Cli::try_parse_from(["lab", "bench", "hop", "--samples", "0"]).is_err());
        assert!(Cli::try_parse_from(["lab", "run", "--engine-alloc", "glibc"]).is_err());
        assert!(Cli::try_parse_from(["lab", "run", "--scratch", "stack"]).is_err());
        assert!(Cli::try_parse_from(["lab", "compare", "--repetitions", "0"]).is_err());
    }

    #[test]
    fn bench_hop_defaults() {
        let cli = Cli::try_parse_from(["lab", "bench", "hop"]).unwrap();
        let Command::Bench {
            which: BenchCommand::Hop(h),
        } = cli.command
        else {
            panic!("not bench hop")
        };
        assert_eq!(h.samples, 1_000_000);
        assert_eq!(h.spacing_ns, 2_000);
        assert!(h.json.is_none());
    }
}
