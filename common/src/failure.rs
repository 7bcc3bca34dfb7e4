//! The one failure type of the `feed`, `engine` and `lab` binaries, with its exit code:
//! [`BAD_INPUT`] (2) for an error in what the user asked for (a flag value, a
//! configuration, a path that holds someone else's file), [`RUNTIME`] (1) for a failure
//! while running.
//!
//! Feed and engine return `Result<(), Failure>` from their `run` and end with
//! [`Failure::report`]. `lab`'s commands return `anyhow::Result` and mark bad input by
//! returning a [`Failure::bad_input`] (`?` turns it into an `anyhow::Error`); lab's
//! `main` turns whatever comes back into a `Failure` with [`Failure::classify`] and
//! exits with its code.
//!
//! # Guarantees
//!
//! - A `Failure` adds no text: its `Display` is its error's message and its `source()`
//!   is that error's source, so `{:#}` of a chain that carries a `Failure` reads exactly
//!   as the chain without it.
//! - [`Failure::classify`] decides by the chain: the outermost `Failure` in it keeps its
//!   class; without one, a [`FileError`] or [`CreateError`] that found someone else's
//!   file ([`FileError::is_foreign`], [`CreateError::Foreign`]) anywhere in the chain
//!   makes it bad input (the user chose that path); anything else is a runtime failure.
//! - Nothing here allocates beyond the error itself; it runs once, on the way out.
//!
//! # Examples
//!
//! ```
//! use anyhow::{anyhow, Context};
//! use common::failure::Failure;
//!
//! // lab: a bad input marked deep inside, with context added on the way out.
//! let err: anyhow::Error = Err::<(), _>(Failure::bad_input(anyhow!("no such scenario")))
//!     .context("lab chaos")
//!     .unwrap_err();
//! let failure = Failure::classify(err);
//! assert_eq!(failure.code(), 2);
//! assert_eq!(format!("{:#}", failure.error()), "lab chaos: no such scenario");
//!
//! // Anything unmarked is a failure while running.
//! assert_eq!(Failure::classify(anyhow!("the feed exited with status 1")).code(), 1);
//! ```

use crate::files::FileError;
use crate::ring::shm::CreateError;
use std::error::Error;
use std::fmt;
use std::process::ExitCode;

/// Exit code for bad input: a flag value, a configuration, a path of someone else's.
/// Clap exits with the same code for a malformed command line.
pub const BAD_INPUT: u8 = 2;
/// Exit code for a failure while running.
pub const RUNTIME: u8 = 1;

/// An error with its class: bad input ([`BAD_INPUT`]) or a failure while running
/// ([`RUNTIME`]). See the [module documentation](self).
#[derive(Debug)]
pub struct Failure {
    bad_input: bool,
    error: anyhow::Error,
}

impl Failure {
    /// Bad input (configuration, flags, a file the user named): exit code 2.
    pub fn bad_input(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            bad_input: true,
            error: error.into(),
        }
    }

    /// A failure while running: exit code 1.
    pub fn runtime(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            bad_input: false,
            error: error.into(),
        }
    }

    /// `error` with the class its chain says (see the [module documentation](self)): a
    /// `Failure` in it keeps its class, someone else's file found at a path is bad
    /// input, anything else a failure while running.
    pub fn classify(error: impl Into<anyhow::Error>) -> Failure {
        // Not `downcast`: through a context it would find the inner `Failure` and drop the
        // context's text.
        let error = error.into();
        let marked = error
            .chain()
            .find_map(|e| e.downcast_ref::<Failure>().map(|f| f.bad_input));
        Failure {
            bad_input: marked.unwrap_or_else(|| error.chain().any(is_foreign)),
            error,
        }
    }

    /// Whether this is bad input.
    pub fn is_bad_input(&self) -> bool {
        self.bad_input
    }

    /// The exit code: [`BAD_INPUT`] or [`RUNTIME`].
    pub fn code(&self) -> u8 {
        if self.bad_input {
            BAD_INPUT
        } else {
            RUNTIME
        }
    }

    /// The exit code, for `main`'s return.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code())
    }

    /// What went wrong (print it with `{:#}` for the whole chain on one line).
    pub fn error(&self) -> &anyhow::Error {
        &self.error
    }

    /// Prints `PROCESS: error: …` (the whole context chain on one line) and returns the
    /// exit code.
    pub fn report(&self, process: &str) -> ExitCode {
        eprintln!("{process}: error: {:#}", self.error);
        self.exit_code()
    }
}

impl From<anyhow::Error> for Failure {
    /// [`Failure::classify`].
    fn from(error: anyhow::Error) -> Failure {
        Failure::classify(error)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The message alone: the rest of the chain is `source()`'s.
        write!(f, "{}", self.error)
    }
}

impl Error for Failure {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.error.source()
    }
}

/// Whether `e` says a path holds someone else's file.
fn is_foreign(e: &(dyn Error + 'static)) -> bool {
    e.downcast_ref::<FileError>()
        .is_some_and(FileError::is_foreign)
        || matches!(
            e.downcast_ref::<CreateError>(),
            Some(CreateError::Foreign { .. })
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::{anyhow, Context};
    use std::path::PathBuf;

    fn foreign_file() -> FileError {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.json");
        std::fs::write(&path, "not the project's").unwrap();
        crate::files::write_json(&path, &serde_json::json!({"a": 1})).unwrap_err()
    }

    #[test]
    fn the_class_follows_the_chain() {
        let f = foreign_file();
        assert!(f.is_foreign(), "{f}");
        let cases: Vec<(&str, anyhow::Error, u8)> = vec![
            ("plain", anyhow!("boom"), RUNTIME),
            (
                "marked",
                Failure::bad_input(anyhow!("bad")).into(),
                BAD_INPUT,
            ),
            (
                "marked, with context",
                anyhow::Error::from(Failure::bad_input(anyhow!("bad"))).context("while x"),
                BAD_INPUT,
            ),
            (
                "runtime outside a bad input",
                Failure::runtime(anyhow::Error::from(Failure::bad_input(anyhow!("bad")))).into(),
                RUNTIME,
            ),
            (
                "foreign file",
                anyhow::Error::from(f).context("writing"),
                BAD_INPUT,
            ),
            (
                "foreign ring path",
                CreateError::Foreign {
                    path: PathBuf::from("/dev/shm/x"),
                    what: "is a file of 3 bytes".into(),
                }
                .into(),
                BAD_INPUT,
            ),
            ("other ring error", CreateError::Capacity(3).into(), RUNTIME),
        ];
        for (what, error, code) in cases {
            assert_eq!(Failure::classify(error).code(), code, "{what}");
        }
    }

    #[test]
    fn a_failure_adds_no_text() {
        let inner = Err::<(), _>(anyhow!("root cause"))
            .context("middle")
            .unwrap_err();
        let plain = format!("{:#}", inner);
        let carried = anyhow::Error::from(Failure::bad_input(inner)).context("outer");
        assert_eq!(format!("{carried:#}"), format!("outer: {plain}"));
        assert_eq!(plain, "middle: root cause");
        let f = Failure::classify(carried);
        assert_eq!(format!("{:#}", f.error()), "outer: middle: root cause");
        assert!(f.is_bad_input());
    }
}
