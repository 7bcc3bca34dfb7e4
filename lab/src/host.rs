//! The machine a measurement ran on, described the same way by every command that
//! prints or records one (`lab run`, `lab compare`, `lab bench`): CPU model, kernel,
//! clock source and the git revision of the build.
//!
//! [`Host::probe`] reads this machine (files under `/proc`; it allocates, so never on a
//! measured path); [`Host::of`] takes what a child process recorded in its manifest.

use common::clock::Clock;
use common::manifest::Manifest;
use serde::Serialize;
use std::fmt;

/// Where a measurement ran. Serialises as the keys `cpu_model`, `kernel`,
/// `clock_source` and `git_rev`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Host {
    /// CPU model name (`unknown` where `/proc/cpuinfo` does not say).
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
    /// Clock source of the stamps (`tsc` or `monotonic`).
    pub clock_source: String,
    /// Git revision of the build (`-dirty` if the tree had changes).
    pub git_rev: String,
}

impl Host {
    /// This machine, `clock`'s source and this build's revision.
    pub fn probe(clock: &Clock) -> Host {
        Host {
            cpu_model: common::os::cpu_model(),
            kernel: common::os::kernel_release(),
            clock_source: clock.source().name().to_string(),
            git_rev: common::manifest::GIT_REV.to_string(),
        }
    }

    /// The machine a process recorded in its manifest.
    pub fn of(m: &Manifest) -> Host {
        Host {
            cpu_model: m.cpu_model.clone(),
            kernel: m.kernel.clone(),
            clock_source: m.clock_source.clone(),
            git_rev: m.git_rev.clone(),
        }
    }
}

impl fmt::Display for Host {
    /// `CPU, kernel K, clock C, git REV`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, kernel {}, clock {}, git {}",
            self.cpu_model, self.kernel, self.clock_source, self.git_rev
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_and_manifest_describe_alike() {
        let clock = Clock::new();
        let here = Host::probe(&clock);
        assert!(!here.cpu_model.is_empty() && !here.kernel.is_empty());
        assert_eq!(here.clock_source, clock.source().name());
        let m = Manifest {
            cpu_model: "Test CPU".into(),
            kernel: "6.1".into(),
            clock_source: "tsc".into(),
            git_rev: "abc1234".into(),
            ..Manifest::default()
        };
        assert_eq!(
            Host::of(&m).to_string(),
            "Test CPU, kernel 6.1, clock tsc, git abc1234"
        );
    }
}
