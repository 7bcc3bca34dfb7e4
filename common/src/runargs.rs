//! The command-line arguments shared by the `feed` and `engine` binaries, and loading
//! the run configuration with their overrides.
//!
//! Every failure here is bad input: the binaries exit with code 2 and print the
//! error's one-line message. Start-up only; allocates.

use crate::config::{Config, ConfigError};
use std::path::{Path, PathBuf};

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

impl RunArgs {
    /// Loads and validates the configuration against `allowed_cores`, applies
    /// `--duration`, and creates the output folder, which is returned.
    pub fn load(&self, allowed_cores: &[usize]) -> Result<(Config, PathBuf), RunError> {
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
        let out = self
            .out
            .clone()
            .unwrap_or_else(|| config.log.out_dir.clone());
        prepare_out_dir(&out)?;
        Ok((config, out))
    }
}

/// Creates the output folder `dir` (and its parents) if it is missing, and proves that
/// files can be written there by creating and removing a probe file, so that a run with
/// an unwritable folder fails at start-up rather than after its work is done.
pub fn prepare_out_dir(dir: &Path) -> Result<(), RunError> {
    std::fs::create_dir_all(dir).map_err(|error| RunError::OutDir {
        path: dir.to_path_buf(),
        error,
    })?;
    let probe = dir.join(format!(".write-probe.{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .map_err(|error| RunError::OutDirNotWritable {
            path: dir.to_path_buf(),
            error,
        })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
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
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/default.toml"),
        )
        .unwrap()
        .replace(
            "/dev/shm/hft-alloc-lab.ring",
            &dir.path().join("r").display().to_string(),
        );
        std::fs::write(&cfg, text).unwrap();
        let out = dir.path().join("a/b");
        let args = RunArgs {
            config: cfg.clone(),
            duration: Some(3.0),
            out: Some(out.clone()),
        };
        let (c, o) = args.load(&[0, 1]).unwrap();
        assert_eq!((c.duration_s, o), (3.0, out.clone()));
        assert!(out.is_dir());
        let short = RunArgs {
            duration: Some(0.5),
            ..args.clone()
        };
        assert!(matches!(
            short.load(&[0, 1]),
            Err(RunError::Duration { .. })
        ));
        std::fs::write(dir.path().join("file"), "").unwrap();
        let blocked = RunArgs {
            out: Some(dir.path().join("file/sub")),
            ..args
        };
        let e = blocked.load(&[0, 1]).unwrap_err().to_string();
        assert!(e.starts_with("cannot create output folder"), "{e}");
        // sysfs refuses new files to everyone, root included (a 0500 folder would not
        // stop root).
        if Path::new("/sys").is_dir() {
            let unwritable = RunArgs {
                out: Some("/sys".into()),
                ..blocked
            };
            let e = unwritable.load(&[0, 1]).unwrap_err().to_string();
            assert!(e.starts_with("output folder /sys is not writable: "), "{e}");
        }
        assert!(
            std::fs::read_dir(&out).unwrap().next().is_none(),
            "the probe file is removed"
        );
    }
}

/// A failure of a feed or engine run with its process exit code: 2 for bad input
/// ([`Failure::bad_input`]), 1 for everything else ([`Failure::runtime`]).
#[derive(Debug)]
pub struct Failure {
    /// Process exit code.
    pub code: u8,
    /// What went wrong.
    pub error: anyhow::Error,
}

impl Failure {
    /// Bad input (configuration, flags, ring file): exit code 2.
    pub fn bad_input(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code: 2,
            error: error.into(),
        }
    }

    /// A failure while running: exit code 1.
    pub fn runtime(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code: 1,
            error: error.into(),
        }
    }

    /// Prints `PROCESS: error: …` (the whole context chain on one line) and returns the
    /// exit code.
    pub fn report(&self, process: &str) -> std::process::ExitCode {
        eprintln!("{process}: error: {:#}", self.error);
        std::process::ExitCode::from(self.code)
    }
}
