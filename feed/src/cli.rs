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
    /// Publish the ticks a journal recorded (`feed.journal.dir` of an earlier run), with
    /// their recorded spacing, instead of generated ones. The journal's symbols must be
    /// the configuration's.
    #[arg(long, value_name = "JOURNAL")]
    pub replay: Option<std::path::PathBuf>,
    /// With `--replay`: the epoch (feed run) to replay [default: the newest].
    #[arg(long, value_name = "N", requires = "replay")]
    pub epoch: Option<u64>,
    /// With `--replay`: how much faster than recorded (2: twice as fast).
    #[arg(long, value_name = "X", default_value_t = 1.0, requires = "replay", value_parser = parse_speed)]
    pub speed: f64,
}

/// `--speed`: a finite number above 0 and at most 1000.
fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x <= 1000.0 => Ok(x),
        _ => Err(format!(
            "must be a number above 0 and at most 1000, got {s}"
        )),
    }
}
