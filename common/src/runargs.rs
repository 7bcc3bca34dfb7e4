//! The command-line arguments shared by the `feed` and `engine` binaries, and loading
//! the run configuration with their overrides.
//!
//! Every failure here is bad input: the binaries exit with code 2 and print the
//! error's one-line message. Start-up only; allocates.

use crate::config::{Config, ConfigError};
use std::path::PathBuf;

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
    #[error("cannot create output folder {path}: {source}")]
    OutDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
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
        std::fs::create_dir_all(&out).map_err(|source| RunError::OutDir {
            path: out.clone(),
            source,
        })?;
        Ok((config, out))
    }
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
    }
}
