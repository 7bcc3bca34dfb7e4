//! The command-line arguments shared by the `feed` and `engine` binaries, and loading
//! the run configuration with their overrides.
//!
//! Every failure here is bad input: the binaries exit with code 2
//! ([`crate::failure::BAD_INPUT`]) and print the error's one-line message. Start-up
//! only; allocates.

use crate::config::{Config, ConfigError};
use crate::cores::WaitStrategy;
use crate::failure::Failure;
use crate::files::{self, FileError, Kind};
use crate::ring::shm::{self, CreateError, OwnedRegion, ProducerId};
use crate::ring::Publisher;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The summary the feed writes into its `--out` folder.
pub const FEED_SUMMARY: &str = "feed_summary.json";
/// The summary the engine writes into its `--out` folder.
pub const ENGINE_SUMMARY: &str = "engine_summary.json";
/// The engine's HdrHistogram interval log, in its `--out` folder.
pub const ENGINE_HLOG: &str = "engine.hlog";
/// The routing report the `pipeline` binary writes into its `--out` folder.
pub const ROUTING_REPORT: &str = "routing.json";
/// The heap profile `pipeline-dhat` writes into its `--out` folder.
pub const DHAT_PROFILE: &str = "dhat-heap.json";

/// `--config`, `--duration`, `--out`: the contract `lab run` relies on.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Run configuration (TOML).
    #[arg(
        long,
        short,
        value_name = "FILE",
        default_value = "configs/default.toml"
    )]
    pub config: PathBuf,
    /// Run for this many seconds instead of the config's `duration_s`.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<f64>,
    /// Folder for summaries and logs instead of the config's `log.out_dir`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Time every allocator call of the cold threads (`cold.time_allocator = true`):
    /// call times per thread role in the summary. Hot threads are never timed.
    #[arg(long)]
    pub time_allocator: bool,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `--duration` conflicts with the configuration.
    #[error("--duration {duration} must be longer than warmup_s ({warmup_s}) of {path}")]
    Duration {
        /// The flag's value.
        duration: f64,
        /// The config's warm-up.
        warmup_s: f64,
        /// The config file.
        path: PathBuf,
    },
    /// The output folder cannot be created.
    #[error("cannot create output folder {path}: {error}")]
    OutDir {
        /// The folder.
        path: PathBuf,
        /// Why (in the message, not a `source()`, so `{:#}` prints it once).
        error: std::io::Error,
    },
    /// The output folder exists but no file can be created in it.
    #[error("output folder {path} is not writable: {error}")]
    OutDirNotWritable {
        /// The folder.
        path: PathBuf,
        /// Why the probe file could not be created.
        error: std::io::Error,
    },
    /// A file the run would write holds something that is not the project's own.
    #[error(transparent)]
    Output(FileError),
}

/// Parses a positive, finite number of seconds (at most a week).
pub fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 7.0 * 86_400.0 => Ok(v),
        Ok(v) => Err(format!(
            "must be a number of seconds above 0 and at most 604800, got {v}"
        )),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

/// What a feed or engine run starts from ([`RunArgs::start`]).
pub struct Started {
    /// The cores this process may use, read before any thread was pinned.
    pub allowed: Vec<usize>,
    /// The validated configuration, with `--duration` applied.
    pub config: Config,
    /// The output folder, ready for the process's outputs.
    pub out: PathBuf,
    /// Set by SIGINT or SIGTERM: stop in order.
    pub stop: Arc<AtomicBool>,
}

impl RunArgs {
    /// The start-up that feed and engine share: reads the allowed cores (before any
    /// thread is pinned), loads the configuration and prepares the output folder for
    /// `outputs` ([`RunArgs::load`]; bad input), installs the SIGINT/SIGTERM flag, and
    /// says so on stderr when `hot_wait` of the configuration spins on a machine with
    /// no core to spare for cold threads. `process` names the process in messages.
    pub fn start(
        &self,
        process: &str,
        outputs: &[(&str, Kind)],
        hot_wait: impl Fn(&Config) -> WaitStrategy,
    ) -> Result<Started, Failure> {
        let allowed = crate::cores::allowed_cores();
        let (config, out) = self.load(&allowed, outputs).map_err(Failure::bad_input)?;
        if config.memory.thp == crate::config::Thp::Off {
            crate::os::disable_thp().map_err(|e| {
                Failure::runtime(anyhow::anyhow!(
                    "memory.thp = \"off\": cannot switch transparent huge pages off: {e}"
                ))
            })?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| {
                Failure::runtime(anyhow::anyhow!("cannot install signal handler: {e}"))
            })?;
        }
        if hot_wait(&config) == WaitStrategy::Spin && allowed.len() <= 2 {
            eprintln!(
                "{process}: note: {} allowed cores for 2 spinning hot threads (feed md, engine hot); \
                 cold threads share their cores, expect a noisy tail",
                allowed.len()
            );
        }
        Ok(Started {
            allowed,
            config,
            out,
            stop,
        })
    }

    /// Loads and validates the configuration against `allowed_cores`, applies
    /// `--duration`, and prepares the output folder for `outputs` (see
    /// [`prepare_out_dir`]), which is returned.
    pub fn load(
        &self,
        allowed_cores: &[usize],
        outputs: &[(&str, Kind)],
    ) -> Result<(Config, PathBuf), RunError> {
        let mut config = Config::load(&self.config, allowed_cores)?;
        if let Some(duration) = self.duration {
            if config.warmup_s >= duration {
                return Err(RunError::Duration {
                    duration,
                    warmup_s: config.warmup_s,
                    path: self.config.clone(),
                });
            }
            config.duration_s = duration;
        }
        if self.time_allocator {
            config.cold.time_allocator = true;
        }
        let out = self
            .out
            .clone()
            .unwrap_or_else(|| config.log.out_dir.clone());
        prepare_out_dir(&out, outputs)?;
        Ok((config, out))
    }
}

/// Creates the output folder `dir` (and its missing parents, mode 0700) and proves that
/// files can be created there, so that a run with an unwritable folder fails at
/// start-up rather than after its work is done. Then checks each of `outputs` (a file
/// name in `dir` and its kind) that exists already: the run may replace an earlier
/// output of the project's own, never someone else's file ([`RunError::Output`]).
pub fn prepare_out_dir(dir: &Path, outputs: &[(&str, Kind)]) -> Result<(), RunError> {
    files::create_dir_all(dir).map_err(|e| match e {
        FileError::Io { error, .. } => RunError::OutDir {
            path: dir.to_path_buf(),
            error,
        },
        other => RunError::Output(other),
    })?;
    files::probe_dir(dir).map_err(|error| RunError::OutDirNotWritable {
        path: dir.to_path_buf(),
        error,
    })?;
    for (name, kind) in outputs {
        files::examine(&dir.join(name), *kind).map_err(RunError::Output)?;
    }
    Ok(())
}

/// Creates the ring of `config` (`ring.path`, `ring.capacity`) for `producer`, the way
/// every producer does: someone else's file at `ring.path` is bad input located at that
/// key (and left as it is); anything else that fails is a runtime failure.
pub fn create_ring(
    config: &Config,
    producer: ProducerId,
) -> Result<Publisher<OwnedRegion>, Failure> {
    shm::create(&config.ring.path, config.ring.capacity, producer).map_err(|e| match e {
        CreateError::Foreign { .. } => Failure::bad_input(config.error_at(
            &crate::config::KeyPath::key("ring").then("path"),
            e.to_string(),
        )),
        other => Failure::runtime(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds() {
        assert_eq!(parse_secs("2.5"), Ok(2.5));
        for bad in ["0", "-1", "nan", "inf", "x", "1e9"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overrides_and_out_dir() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        let text = crate::config::edit::Edit::new(crate::config::DEFAULT_TOML)
            .set("ring.path", dir.path().join("r"))
            .finish()
            .unwrap();
        std::fs::write(&cfg, text).unwrap();
        let out = dir.path().join("a/b");
        let args = RunArgs {
            config: cfg.clone(),
            duration: Some(3.0),
            out: Some(out.clone()),
            time_allocator: false,
        };
        let outputs = [("s.json", Kind::Json)];
        let (c, o) = args.load(&[0, 1], &outputs).unwrap();
        assert_eq!((c.duration_s, o), (3.0, out.clone()));
        assert!(!c.cold.time_allocator);
        let timed = RunArgs {
            time_allocator: true,
            ..args.clone()
        };
        assert!(timed.load(&[0, 1], &outputs).unwrap().0.cold.time_allocator);
        assert!(out.is_dir());
        let short = RunArgs {
            duration: Some(0.5),
            ..args.clone()
        };
        assert!(matches!(
            short.load(&[0, 1], &outputs),
            Err(RunError::Duration { .. })
        ));
        std::fs::write(dir.path().join("file"), "").unwrap();
        let blocked = RunArgs {
            out: Some(dir.path().join("file/sub")),
            ..args.clone()
        };
        let e = blocked.load(&[0, 1], &outputs).unwrap_err().to_string();
        assert!(e.starts_with("cannot create output folder"), "{e}");
        // sysfs refuses new files to everyone, root included (a 0500 folder would not
        // stop root).
        if Path::new("/sys").is_dir() {
            let unwritable = RunArgs {
                out: Some("/sys".into()),
                ..blocked
            };
            let e = unwritable.load(&[0, 1], &outputs).unwrap_err().to_string();
            assert!(e.starts_with("output folder /sys is not writable: "), "{e}");
        }
        assert!(
            std::fs::read_dir(&out).unwrap().next().is_none(),
            "the probe leaves no file"
        );
        // An output of someone else's is refused, and left; one of the project's is not.
        std::fs::write(out.join("s.json"), "{}").unwrap();
        let e = args.load(&[0, 1], &outputs).unwrap_err();
        assert!(
            matches!(e, RunError::Output(FileError::Foreign { .. })),
            "{e}"
        );
        assert_eq!(std::fs::read(out.join("s.json")).unwrap(), b"{}");
        std::fs::remove_file(out.join("s.json")).unwrap();
        files::write_json(&out.join("s.json"), &serde_json::json!({"a": 1})).unwrap();
        args.load(&[0, 1], &outputs).unwrap();
    }
}
