//! The command line of `lab`, parsed with clap's derive API.
//!
//! Parsing only checks the shape and range of each flag; everything that needs a file
//! (the configuration, the binaries) is checked by [`crate::run`] and [`crate::bench`].
//! Clap exits with code 2 on a bad flag; the same code is used for every other error in
//! what the user asked for, marked with [`common::failure::Failure::bad_input`] (see
//! `main.rs`).

use crate::variant::{Alloc, PipelineAlloc, ScratchMode};
use clap::{Args, Parser, Subcommand};
use common::runargs::parse_secs;
use std::path::PathBuf;

/// Runs the feed and the engine together, compares allocator variants, and benchmarks
/// the ring against the cache-line floor and its peers.
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
    /// Run the engine and the feed on one config (two processes, or one pipeline process
    /// with `--single-process`), then merge their summaries and print the latency table.
    Run(RunArgs),
    /// Run a matrix of variants (allocators, scratch strategy, levels) on the same seeded
    /// workload, interleaved and repeated, and write a report with tables and plots.
    Compare(CompareArgs),
    /// Profile where each component allocates: one pipeline run on dhat-rs's profiling
    /// allocator, then per thread role its allocations and bytes, the top call sites,
    /// flame graphs and the suggestions the figures support.
    Profile(crate::profile::ProfileArgs),
    /// Run the fault scenarios (killed, restarted, stalled and duplicate processes,
    /// signals, lossless mode) end to end and print a table with the tick accounting;
    /// fails if any scenario fails.
    Chaos(ChaosArgs),
    /// Run a feed host and engine hosts in network namespaces on this machine (root):
    /// the feed's Aeron multicast stream, a relay per host into its ring, the engines;
    /// gaps filled from the feed's history service over TCP; faults (loss, a killed
    /// relay, a killed feed); one table with every host's and engine's accounting and
    /// latencies. Needs the binaries built with the aeron feature.
    Cluster(crate::cluster::ClusterArgs),
    /// Print the ticks (or 1-second bars) a feed journaled (`feed.journal`), as CSV or
    /// JSON lines; read-only.
    History(HistoryArgs),
    /// Benchmarks that report numbers (they check nothing).
    Bench {
        /// Which benchmark.
        #[command(subcommand)]
        which: BenchCommand,
    },
    /// Internal: the producer process of `lab bench transport`.
    #[command(name = "bench-producer", hide = true)]
    BenchProducer(ProducerArgs),
}

/// `lab history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The journal folder (`feed.journal.dir`).
    #[arg(value_name = "JOURNAL")]
    pub journal: PathBuf,
    /// Only this epoch (one feed run on the journal) [default: every epoch].
    #[arg(long, value_name = "N")]
    pub epoch: Option<u64>,
    /// Only this symbol.
    #[arg(long, value_name = "NAME")]
    pub symbol: Option<String>,
    /// Print 1-second OHLCV bars instead of ticks.
    #[arg(long)]
    pub bars: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: HistoryFormat,
}

/// `lab history --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HistoryFormat {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// `lab chaos`.
#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// Output folder [default: a new folder results/YYYYmmdd-HHMMSS-chaos, UTC].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Folder holding the `feed`, `engine` and `lab` binaries [default: the folder of
    /// `lab`].
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Run only these scenarios (repeatable).
    #[arg(long, value_name = "SCENARIO")]
    pub only: Vec<String>,
    /// Fail `service_abuse` where the feed md thread's system calls cannot be counted
    /// (`perf stat -e raw_syscalls:sys_enter` needs perf and root or
    /// `perf_event_paranoid` ≤ -1); without it such a row says "not measured".
    #[arg(long)]
    pub require_perf: bool,
}

/// `lab run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The run configuration (TOML). Both processes (or the one pipeline process) read the
    /// copy recorded in the output folder as `config.toml`, with `--scratch`, `--levels`
    /// and `--duration` applied.
    #[arg(long, value_name = "FILE", default_value = "configs/default.toml")]
    pub config: PathBuf,
    /// Override the config's `duration_s`, in seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<f64>,
    /// Output folder [default: a new folder results/YYYYmmdd-HHMMSS-STEM, UTC, STEM the config file name without .toml].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Folder holding the `feed` and `engine` binaries (and `pipeline*`) [default: the
    /// folder of `lab`].
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Global allocator of the engine: picks the binary (`engine` links mimalloc, the
    /// others are `engine-<ALLOC>`). Two processes only.
    #[arg(long, value_name = "ALLOC", value_enum, default_value_t = Alloc::Mimalloc,
          conflicts_with = "single_process")]
    pub engine_alloc: Alloc,
    /// Global allocator of the feed: picks the binary (`feed` links jemalloc, the others
    /// are `feed-<ALLOC>`). Two processes only.
    #[arg(long, value_name = "ALLOC", value_enum, default_value_t = Alloc::Jemalloc,
          conflicts_with = "single_process")]
    pub feed_alloc: Alloc,
    /// Run the feed's and the engine's threads in one process: one pipeline binary
    /// (`--pipeline-alloc`) instead of `engine` and `feed`, with the same configuration
    /// and output folder, its output prefixed `[pipeline] `. One engine only; the
    /// allocator is `--pipeline-alloc`'s (`--engine-alloc`/`--feed-alloc` are refused).
    #[arg(long)]
    pub single_process: bool,
    /// With `--single-process`: the pipeline's global allocator, which picks the binary
    /// (`pipeline` is the routing hybrid, the others are `pipeline-<ALLOC>`).
    #[arg(long, value_name = "ALLOC", value_enum, default_value_t = PipelineAlloc::Hybrid,
          requires = "single_process")]
    pub pipeline_alloc: PipelineAlloc,
    /// The engine's scratch strategy (`engine.scratch`) [default: the config's].
    #[arg(long, value_name = "MODE", value_enum)]
    pub scratch: Option<ScratchMode>,
    /// Orders per side per decision (`engine.levels`, 1 to 16) [default: the config's].
    #[arg(long, value_name = "N")]
    pub levels: Option<u32>,
    /// Seconds to probe the machine's noise on both hot cores before the run (a busy
    /// loop on each, reported beside the run's latencies); 0 skips the probe.
    #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = parse_secs_or_zero)]
    pub noise: f64,
    /// The timed-allocator mode (`cold.time_allocator = true`): every allocator call of
    /// the cold threads is timed; the final table and summary show call times per role.
    #[arg(long)]
    pub time_allocator: bool,
    /// Engines on the feed's ring, each on a hot core of its own (`cores.engine_hot`,
    /// then the allowed cores the feed's md thread does not hold; engines that do not
    /// spin may share them); each writes to its own folder `engine-N/`, and the table
    /// and `summary.json` show each engine and the total.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub engines: u32,
}

/// A number of seconds from 0 (off) to 60.
fn parse_secs_or_zero(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=60.0).contains(&v) => Ok(v),
        Ok(v) => Err(format!("must be a number of seconds from 0 to 60, got {v}")),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

/// `lab compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The matrix of variants (TOML; see `configs/compare.toml`).
    #[arg(long, value_name = "FILE", default_value = "configs/compare.toml")]
    pub matrix: PathBuf,
    /// Report folder [default: a new folder results/compare-YYYYmmdd-HHMMSS, UTC].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Repetitions of every variant, instead of the matrix's `repetitions` (at least 2: a
    /// verdict needs two runs of each variant).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub repetitions: Option<u32>,
    /// Seconds each run publishes, instead of the matrix's and the configs' durations.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<f64>,
    /// Folder holding the `feed*`, `engine*` and `pipeline*` binaries [default: the folder
    /// of `lab`]; a variant's own `bin_dir` in the matrix wins over it.
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
}

/// `lab bench …`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// One-way latency (count, p50 … max) and throughput of the cache-line floor, our
    /// ring (two threads, two processes), crossbeam-channel (two threads), iceoryx2
    /// (two processes, with `--features peers`) and Aeron (IPC and UDP on the loopback,
    /// two threads and an embedded driver, with `--features aeron`) on the same two
    /// cores, in one run: a side-by-side table with ratios to the floor, and JSON with
    /// `--json`.
    #[command(visible_alias = "hop")]
    Transport(TransportArgs),
    /// The machine's noise floor: a busy loop on one pinned core reading the clock,
    /// with the gaps between consecutive reads as percentiles.
    Jitter(JitterArgs),
}

/// `lab bench transport` (alias `hop`).
#[derive(Debug, Args)]
pub struct TransportArgs {
    /// The configuration whose `cores.feed_md` (sending side), `cores.engine_hot`
    /// (receiving side) and `ring.capacity` are used unless overridden below.
    #[arg(long, value_name = "FILE", default_value = "configs/default.toml")]
    pub config: PathBuf,
    /// Measured latency samples per row; a further 10% are taken first as warm-up and
    /// discarded.
    #[arg(long, value_name = "N", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub samples: u64,
    /// Busy-wait between two latency samples, in nanoseconds, so that each hop is
    /// measured on an idle transport.
    #[arg(long, value_name = "NS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000_000))]
    pub spacing_ns: u64,
    /// Ticks each throughput row publishes flat out (0: no throughput rows).
    #[arg(long, value_name = "N", default_value_t = 50_000_000,
          value_parser = clap::value_parser!(u64).range(0..=10_000_000_000))]
    pub messages: u64,
    /// Sending core [default: the config's `cores.feed_md`].
    #[arg(long, value_name = "CORE")]
    pub tx_core: Option<usize>,
    /// Receiving core [default: the config's `cores.engine_hot`].
    #[arg(long, value_name = "CORE")]
    pub rx_core: Option<usize>,
    /// Core of the second consumer of the one-producer-two-consumers rows [default: an
    /// allowed core other than the two above; without one those rows are skipped].
    #[arg(long, value_name = "CORE")]
    pub rx2_core: Option<usize>,
    /// Ring capacity in slots, crossbeam channel bound and iceoryx2 subscriber buffer
    /// (a power of two, 1024 to 2^26) [default: the config's `ring.capacity`].
    #[arg(long, value_name = "N")]
    pub capacity: Option<u64>,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// `lab bench jitter`.
#[derive(Debug, Args)]
pub struct JitterArgs {
    /// How long to probe, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3.0, value_parser = parse_secs)]
    pub seconds: f64,
    /// The core to probe [default: the highest allowed core].
    #[arg(long, value_name = "CORE")]
    pub core: Option<usize>,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// The transport of a `lab bench-producer` process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProducerTransport {
    /// Our ring, in a new file at `--name`.
    Ring,
    /// iceoryx2 publish-subscribe, the service and file names derived from `--name`.
    Iceoryx2,
}

/// `lab bench-producer` (hidden): the producer process of `lab bench transport`.
#[derive(Debug, Args)]
pub struct ProducerArgs {
    /// Which transport to send on.
    #[arg(long, value_enum, default_value_t = ProducerTransport::Ring)]
    pub transport: ProducerTransport,
    /// The ring file to create, or the iceoryx2 run token.
    #[arg(long, alias = "ring", value_name = "NAME")]
    pub name: String,
    /// Core to pin the sending thread to.
    #[arg(long, value_name = "N")]
    pub core: usize,
    /// Ticks to send.
    #[arg(long, value_name = "N")]
    pub count: u64,
    /// Busy-wait between two ticks, in nanoseconds (ignored with `--flat`).
    #[arg(long, value_name = "NS", default_value_t = 0)]
    pub spacing_ns: u64,
    /// Send unstamped for throughput: flat out, or at `--rate`.
    #[arg(long)]
    pub flat: bool,
    /// Ticks per second on average (throughput), in bursts of 64.
    #[arg(long, value_name = "PER_S")]
    pub rate: Option<f64>,
    /// Ring capacity in slots, or the iceoryx2 subscriber buffer (a power of two).
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    pub capacity: u64,
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
        assert!(!a.single_process);
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
    fn single_process_flags() {
        let parse = |extra: &[&str]| {
            let argv = ["lab", "run"].iter().chain(extra).copied();
            Cli::try_parse_from(argv).map(|c| match c.command {
                Command::Run(a) => a,
                _ => panic!("not run"),
            })
        };
        let a = parse(&["--single-process"]).unwrap();
        assert!(a.single_process);
        assert_eq!(a.pipeline_alloc, PipelineAlloc::Hybrid);
        let a = parse(&["--single-process", "--pipeline-alloc", "jemalloc"]).unwrap();
        assert_eq!(a.pipeline_alloc, PipelineAlloc::Jemalloc);
        // --engines is checked when the run starts (more than one is refused there).
        assert_eq!(
            parse(&["--single-process", "--engines", "2"])
                .unwrap()
                .engines,
            2
        );
        for bad in [
            &["--pipeline-alloc", "system"][..],
            &["--single-process", "--engine-alloc", "system"],
            &["--single-process", "--feed-alloc", "mimalloc"],
            &["--single-process", "--pipeline-alloc", "tcmalloc"],
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}: {e}");
        }
        let e = parse(&["--single-process", "--engine-alloc", "system"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'--single-process' cannot be used with '--engine-alloc <ALLOC>'"),
            "{e}"
        );
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
        assert!(Cli::try_parse_from(["lab", "compare", "--repetitions", "1"]).is_err());
    }

    #[test]
    fn bench_transport_defaults_and_alias() {
        for name in ["transport", "hop"] {
            let cli = Cli::try_parse_from(["lab", "bench", name]).unwrap();
            let Command::Bench {
                which: BenchCommand::Transport(t),
            } = cli.command
            else {
                panic!("not bench transport")
            };
            assert_eq!(t.config, PathBuf::from("configs/default.toml"));
            assert_eq!(
                (t.samples, t.spacing_ns, t.messages),
                (1_000_000, 2_000, 50_000_000)
            );
            assert!(t.tx_core.is_none() && t.rx_core.is_none() && t.rx2_core.is_none());
            assert!(t.capacity.is_none() && t.json.is_none());
        }
    }

    #[test]
    fn bench_transport_overrides() {
        let cli = Cli::try_parse_from([
            "lab",
            "bench",
            "transport",
            "--samples",
            "10",
            "--spacing-ns",
            "0",
            "--messages",
            "0",
            "--tx-core",
            "2",
            "--rx-core",
            "3",
            "--rx2-core",
            "4",
            "--capacity",
            "4096",
            "--json",
            "t.json",
        ])
        .unwrap();
        let Command::Bench {
            which: BenchCommand::Transport(t),
        } = cli.command
        else {
            panic!("not bench transport")
        };
        assert_eq!((t.samples, t.spacing_ns, t.messages), (10, 0, 0));
        assert_eq!(
            (t.tx_core, t.rx_core, t.rx2_core),
            (Some(2), Some(3), Some(4))
        );
        assert_eq!(t.capacity, Some(4096));
        assert_eq!(t.json, Some(PathBuf::from("t.json")));
        for bad in [
            &["--samples", "0"][..],
            &["--messages", "-1"],
            &["--tx-core", "x"],
            &["--spacing-ns", "soon"],
        ] {
            let mut argv = vec!["lab", "bench", "transport"];
            argv.extend_from_slice(bad);
            assert!(Cli::try_parse_from(&argv).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bench_jitter_flags() {
        let cli = Cli::try_parse_from(["lab", "bench", "jitter"]).unwrap();
        let Command::Bench {
            which: BenchCommand::Jitter(j),
        } = cli.command
        else {
            panic!("not bench jitter")
        };
        assert_eq!((j.seconds, j.core), (3.0, None));
        assert!(j.json.is_none());
        let cli = Cli::try_parse_from([
            "lab",
            "bench",
            "jitter",
            "--seconds",
            "0.5",
            "--core",
            "1",
            "--json",
            "j.json",
        ])
        .unwrap();
        let Command::Bench {
            which: BenchCommand::Jitter(j),
        } = cli.command
        else {
            panic!("not bench jitter")
        };
        assert_eq!((j.seconds, j.core), (0.5, Some(1)));
        assert_eq!(j.json, Some(PathBuf::from("j.json")));
        for bad in ["0", "-1", "nan"] {
            assert!(
                Cli::try_parse_from(["lab", "bench", "jitter", "--seconds", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn bench_producer_flags() {
        let cli = Cli::try_parse_from([
            "lab",
            "bench-producer",
            "--transport",
            "iceoryx2",
            "--name",
            "tok",
            "--core",
            "0",
            "--count",
            "5",
            "--flat",
        ])
        .unwrap();
        let Command::BenchProducer(p) = cli.command else {
            panic!("not bench-producer")
        };
        assert_eq!(p.transport, ProducerTransport::Iceoryx2);
        assert_eq!(
            (p.name.as_str(), p.core, p.count, p.flat),
            ("tok", 0, 5, true)
        );
        // The old spelling still parses.
        let cli = Cli::try_parse_from([
            "lab",
            "bench-producer",
            "--ring",
            "/x",
            "--core",
            "0",
            "--count",
            "5",
        ])
        .unwrap();
        let Command::BenchProducer(p) = cli.command else {
            panic!("not bench-producer")
        };
        assert_eq!(
            (p.transport, p.name.as_str()),
            (ProducerTransport::Ring, "/x")
        );
    }
}
