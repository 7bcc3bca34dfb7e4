//! `lab`: runs the feed and the engine together with one command (`lab run`), compares
//! allocator and scratch-strategy variants side by side with a report (`lab compare`),
//! benchmarks the ring against the cache-line floor and its peers (`lab bench transport`)
//! and measures the machine's noise floor (`lab bench jitter`), and runs the fault
//! scenarios end to end (`lab chaos`), runs a feed host and engine hosts in network
//! namespaces over Aeron (`lab cluster`), and prints what a feed journaled (`lab history`).
//!
//! `lab` has no hot path of the pipeline: it starts and supervises the binaries. Its own
//! timed loops are the benchmarks' senders and receivers, in `bench/harness.rs` (and the
//! jitter probe in `bench/jitter.rs`).
//!
//! This file only parses the command line and maps the outcome to an exit code:
//! 0 on success, 2 for bad input (a bad flag — clap's own code — or a bad config file,
//! marked with [`Failure::bad_input`], or a path that holds someone else's file), 1 for a
//! failure while running, as [`Failure::classify`] decides. Errors print as
//! `error: {:#}`, the whole context chain on one line.
#![deny(unsafe_code)]

mod bench;
mod chaos;
mod child;
mod cli;
mod cluster;
mod compare;
mod history;
mod hlog;
mod host;
mod matrix;
mod noise;
mod plot;
mod profile;
mod report;
mod run;
mod table;
mod variant;

use clap::Parser;
use common::failure::Failure;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match &cli.command {
        cli::Command::Run(args) => run::run(args),
        cli::Command::Compare(args) => compare::compare(args),
        cli::Command::Chaos(args) => chaos::chaos(args),
        cli::Command::Cluster(args) => cluster::cluster(args),
        cli::Command::History(args) => history::history(args),
        cli::Command::Profile(args) => profile::profile(args),
        cli::Command::Bench {
            which: cli::BenchCommand::Transport(args),
        } => bench::transport(args),
        cli::Command::Bench {
            which: cli::BenchCommand::Jitter(args),
        } => bench::jitter(args),
        cli::Command::BenchProducer(args) => bench::producer(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A path holding someone else's file is bad input too: the user chose it.
            let failure = Failure::classify(err);
            eprintln!("error: {:#}", failure.error());
            failure.exit_code()
        }
    }
}
