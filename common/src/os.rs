//! What the project asks of the host operating system (Linux): this process's resident
//! set and page faults, the CPU model and its TSC flags, the kernel release, this
//! process's effective user, whether another process is alive, and sending it a signal.
//!
//! # Guarantees
//!
//! - Every probe answers instead of failing: where `/proc` cannot be read the figure is
//!   0, `unknown` or `false`, as each function says, so a report never stops for a
//!   missing figure.
//! - [`send_signal`] signals exactly one process: a pid that is 0 or does not fit a
//!   positive `pid_t` (which `kill(2)` would read as a process group, or as every
//!   process) is refused without a system call.
//! - Probes read files under `/proc` or make a system call, and most allocate: call them
//!   at start-up, from cold threads, or at the end of a run, never per tick.
//!
//! # Examples
//!
//! ```
//! use common::os::{process_alive, send_signal, Signal};
//!
//! assert!(common::os::rss_bytes() > 0);
//! let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
//! assert!(process_alive(child.id()));
//! send_signal(child.id(), Signal::Term).unwrap();
//! assert!(child.wait().unwrap().code().is_none(), "ended by the signal");
//! assert!(send_signal(0, Signal::Kill).is_err(), "never a process group");
//! ```

use std::io;
use std::path::Path;

/// Switches transparent huge pages off for this process (`prctl(PR_SET_THP_DISABLE)`):
/// from now on its page faults map 4 KiB pages, whatever the kernel's mode and any
/// `madvise(MADV_HUGEPAGE)` of its allocator. Children inherit the setting. A system
/// call: start-up only.
pub fn disable_thp() -> io::Result<()> {
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only (the flag, then three
    // zeros) and changes one flag of this process; no memory is passed.
    let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1 as libc::c_ulong, 0, 0, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether transparent huge pages are switched off for this process
/// (`prctl(PR_GET_THP_DISABLE)`).
pub fn thp_disabled() -> io::Result<bool> {
    // SAFETY: PR_GET_THP_DISABLE takes no memory arguments and returns the flag.
    let r = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r == 1)
    }
}

/// Resident set size of this process in bytes, from `/proc/self/statm` (0 if unreadable),
/// in pages of the kernel's page size (`sysconf(_SC_PAGESIZE)` through procfs).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * procfs::page_size())
}

/// Minor and major page faults of this process since it started, from
/// `/proc/self/stat` (fields 10 and 12: minflt, majflt); `(0, 0)` if unreadable.
pub fn page_faults() -> (u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0, 0);
    };
    // The command name (field 2) is in parentheses and may contain spaces.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return (0, 0);
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): minflt is field 10, majflt field 12.
    let get = |n: usize| fields.get(n - 3).and_then(|f| f.parse().ok()).unwrap_or(0);
    (get(10), get(12))
}

/// The value of the first `/proc/cpuinfo` line whose name starts with `name`.
fn cpuinfo(name: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(name))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

/// The CPU model name from `/proc/cpuinfo`, or `unknown`.
pub fn cpu_model() -> String {
    cpuinfo("model name").unwrap_or_else(|| "unknown".into())
}

/// Whether `/proc/cpuinfo` reports an invariant TSC (`constant_tsc` and `nonstop_tsc`);
/// `false` if it cannot be read.
pub fn tsc_is_invariant() -> bool {
    cpuinfo("flags").is_some_and(|flags| {
        let has = |f: &str| flags.split_whitespace().any(|w| w == f);
        has("constant_tsc") && has("nonstop_tsc")
    })
}

/// The kernel release (`/proc/sys/kernel/osrelease`), or `unknown`.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid takes no arguments, touches no memory of ours and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether a process with this id is running (`/proc/<pid>` exists; pid 0 is not).
pub fn process_alive(pid: u32) -> bool {
    pid != 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// The signals the project sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT: interrupt, as Ctrl-C sends it.
    Int,
    /// SIGTERM: asks the process to stop.
    Term,
    /// SIGKILL: ends the process; it cannot be caught.
    Kill,
    /// SIGSTOP: stops the process until SIGCONT; it cannot be caught.
    Stop,
    /// SIGCONT: lets a stopped process go on.
    Cont,
}

impl Signal {
    /// The signal's name, as `kill -l` prints it with the `SIG` prefix: `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
            Signal::Kill => "SIGKILL",
            Signal::Stop => "SIGSTOP",
            Signal::Cont => "SIGCONT",
        }
    }

    fn number(self) -> libc::c_int {
        match self {
            Signal::Int => libc::SIGINT,
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
            Signal::Stop => libc::SIGSTOP,
            Signal::Cont => libc::SIGCONT,
        }
    }
}

/// Sends `signal` to the one process `pid`. Fails with `InvalidInput` for a pid that is
/// 0 or above `i32::MAX` (which would name a process group or every process), else with
/// the system's error (`ESRCH`: no such process; `EPERM`: not ours to signal).
pub fn send_signal(pid: u32, signal: Signal) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{pid} is not the id of one process"),
            )
        })?;
    // SAFETY: kill(2) takes two integers and touches no memory of ours; `pid` is
    // positive, so it names one process, never a group, and the signal number is one
    // of libc's constants.
    let sent = unsafe { libc::kill(pid, signal.number()) };
    if sent == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transparent_huge_pages_can_be_switched_off() {
        disable_thp().unwrap();
        assert!(thp_disabled().unwrap());
    }
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    #[test]
    fn this_process_is_probed() {
        assert!(rss_bytes() > 0);
        let (minor, _major) = page_faults();
        assert!(minor > 0, "a running process has faulted pages in");
        assert!(!cpu_model().is_empty());
        assert!(!kernel_release().is_empty());
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(0));
    }

    #[test]
    fn signals_reach_one_child() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        send_signal(pid, Signal::Stop).unwrap();
        send_signal(pid, Signal::Cont).unwrap();
        send_signal(pid, Signal::Kill).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn groups_and_everyone_are_refused() {
        for pid in [0, u32::MAX, i32::MAX as u32 + 1] {
            let e = send_signal(pid, Signal::Term).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{pid}");
        }
        assert_eq!(Signal::Term.name(), "SIGTERM");
    }
}
