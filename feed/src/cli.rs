//! Command line of the `feed` binary.

use clap::Parser;
use common::runargs::RunArgs;

/// Market-data feed: publishes seeded synthetic ticks for the configured symbols and
/// rates into the shared-memory ring, and keeps the cold tick history.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    #[command(flatten)]
    /// Configuration, duration and output folder.
    pub run: RunArgs,
}
