//! Child processes that are never left running: a [`Supervised`] child is terminated
//! (SIGTERM, up to 5 s of grace, then SIGKILL) and reaped when it is dropped, so every
//! error path of `lab` cleans up by returning.
//!
//! Signals go through [`common::os::send_signal`] (`lab` itself denies `unsafe`). A
//! signal is only ever sent to a child that has not been reaped yet (its last
//! `try_wait` said it was running), so its pid cannot have been reused by another
//! process.
//!
//! Nothing here runs on a hot path: these calls fork, sleep and make system calls.

use common::os::{send_signal, Signal};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Grace a child gets between SIGTERM and SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(5);

/// How often a waiting loop looks at its children.
pub const POLL_EVERY: Duration = Duration::from_millis(10);

/// A child process with a name, terminated and reaped on drop if still running.
pub struct Supervised {
    name: &'static str,
    child: Child,
    status: Option<ExitStatus>,
}

impl Supervised {
    /// Takes charge of `child`, called `name` in messages.
    pub fn new(name: &'static str, child: Child) -> Supervised {
        Supervised {
            name,
            child,
            status: None,
        }
    }

    /// The name given at creation.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The underlying child, to take its pipes.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The exit status if the child has exited (reaping it), `None` while it runs.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.child.try_wait()?;
        }
        Ok(self.status)
    }

    /// Whether the child is still running (an error reading its state counts as not).
    pub fn is_running(&mut self) -> bool {
        matches!(self.try_wait(), Ok(None))
    }

    /// Sends SIGTERM if the child is still running.
    pub fn signal_term(&mut self) {
        if self.is_running() {
            let sent = send_signal(self.child.id(), Signal::Term).is_ok();
            if !sent && self.is_running() {
                // SIGTERM could not be sent: SIGKILL through std is all that is left.
                let _ = self.child.kill();
            }
        }
    }

    /// Sends `signal` if the child is still running; whether it was sent.
    pub fn signal(&mut self, signal: Signal) -> bool {
        self.is_running() && send_signal(self.child.id(), signal).is_ok()
    }

    /// Sends SIGKILL if the child is still running.
    pub fn signal_kill(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
        }
    }

    /// Waits up to `timeout` for the child to exit; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + timeout;
        loop {
            match self.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < until => std::thread::sleep(POLL_EVERY),
                Ok(None) => return None,
                Err(_) => return self.child.wait().ok(),
            }
        }
    }

    /// Terminates the child if it still runs: SIGTERM, up to [`TERM_GRACE`] to exit,
    /// then SIGKILL; always reaps it. Returns its exit status.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        self.terminate_within(TERM_GRACE)
    }

    /// [`Supervised::terminate`] with `grace` between SIGTERM and SIGKILL.
    pub fn terminate_within(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.status {
            return Some(status);
        }
        self.signal_term();
        if let Some(status) = self.wait_timeout(grace) {
            return Some(status);
        }
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        self.status = status;
        status
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if self.is_running() {
            eprintln!("lab: stopping {} (pid {})", self.name, self.child.id());
        }
        self.terminate();
    }
}

/// `NAME exited with status N`, or `NAME was killed by signal N`, for a failed child.
pub fn describe_exit(name: &str, status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("{name} exited with status {code}"),
        (None, Some(sig)) => format!("{name} was killed by signal {sig}"),
        (None, None) => format!("{name} ended with {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn drop_terminates_a_running_child() {
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        drop(Supervised::new("sleep", child));
        // Reaped: /proc no longer lists it (or lists another process that reused the pid).
        let stat = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(!stat.starts_with("sleep"), "{stat}");
    }

    #[test]
    fn term_ignored_then_killed() {
        // A shell that ignores SIGTERM must still be gone after terminate().
        let child = Command::new("sh")
            .args(["-c", "trap '' TERM; while :; do sleep 0.05; done"])
            .spawn()
            .unwrap();
        let mut s = Supervised::new("stubborn", child);
        std::thread::sleep(Duration::from_millis(100));
        let status = s.terminate_within(Duration::from_millis(300)).unwrap();
        assert_eq!(status.signal(), Some(9));
        assert!(describe_exit("x", status).contains("killed by signal 9"));
    }

    #[test]
    fn exit_codes_are_described() {
        let mut s = Supervised::new(
            "x",
            Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap(),
        );
        let status = s.wait_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(describe_exit("feed", status), "feed exited with status 3");
    }
}
