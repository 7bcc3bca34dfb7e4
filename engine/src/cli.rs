//! Command line of the `engine` binary.

use clap::Parser;
use common::runargs::RunArgs;

/// Trading engine: waits for the feed's ring, runs the market-making strategy on every
/// tick on a pinned hot thread with a per-tick arena, and logs stage latency percentiles.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    #[command(flatten)]
    /// Configuration, duration and output folder.
    pub run: RunArgs,
}
