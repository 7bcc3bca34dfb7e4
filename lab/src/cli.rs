//! The command line of `lab`, parsed with clap's derive API.
//!
//! Parsing only checks the shape and range of each flag; everything that needs a file
//! (the configuration, the binaries) is checked by [`crate::run`] and [`crate::bench`].
//! Clap exits with code 2 on a bad flag; the same code is used for every other error in
//! what the user asked for, marked with [`BadInput`] (see `main.rs`).

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
    /// The run configuration (TOML), passed to both processes.
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
        let cli = Cli::try_parse_from(["lab", "run", "--duration", "2.5", "--out", "x"]).unwrap();
        let Command::Run(a) = cli.command else {
            panic!("not run")
        };
        assert_eq!(a.duration, Some(2.5));
        assert_eq!(a.out, Some(PathBuf::from("x")));
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
