//! Mechanisms: what the kernel and the allocator did while a run was measured, so that a
//! difference between variants is explained, not only reported.
//!
//! - Per thread of this process (`/proc/self/task/*`, through procfs): minor and major
//!   page faults, voluntary and involuntary context switches, CPU time (from the
//!   scheduler's nanosecond `sum_exec_runtime` in `/proc/self/task/<tid>/sched` where the
//!   kernel has it, else user + system time in clock ticks) and migrations between cores
//!   (from `sched`, where present).
//! - Per core (`/proc/interrupts`, machine-wide): TLB shootdowns (`TLB`), function-call
//!   IPIs (`CAL`), rescheduling IPIs (`RES`), local timer interrupts (`LOC`) and the sum of
//!   the device interrupts.
//! - The allocator's own cumulative counters ([`crate::allocators::COUNTERS`]: purges,
//!   `madvise` calls, bytes returned to the kernel), from its statistics.
//!
//! A [`Window`] takes a [`Snapshot`] when the measured part of a run starts and one per
//! interval after it; [`Window::mechanisms`] is the difference between the first and the
//! last, per second of the window. A thread that ended keeps the figures of the last
//! snapshot that saw it.
//!
//! # Guarantees
//!
//! Cold threads only: a snapshot reads three files per thread and `/proc/interrupts`,
//! allocates, and takes some tens of microseconds. It never fails: what cannot be read is
//! left out of the snapshot.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;

/// What one thread did, or has done since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadStats {
    /// Minor page faults (a page mapped without I/O: first touch, copy-on-write).
    pub minor_faults: u64,
    /// Major page faults (a page read from disk).
    pub major_faults: u64,
    /// Voluntary context switches: the thread slept or blocked.
    pub voluntary_switches: u64,
    /// Involuntary context switches: the scheduler took the core away.
    pub involuntary_switches: u64,
    /// CPU time, milliseconds.
    pub cpu_ms: f64,
    /// Moves from one core to another, where the kernel reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations: Option<u64>,
    /// In a window: the seconds these figures cover (to the last snapshot that saw the
    /// thread, which for a thread that ended is before the window's end).
    #[serde(default)]
    pub seconds: f64,
}

impl ThreadStats {
    /// What happened between `earlier` and `self` (saturating).
    pub fn since(&self, earlier: &ThreadStats) -> ThreadStats {
        ThreadStats {
            minor_faults: self.minor_faults.saturating_sub(earlier.minor_faults),
            major_faults: self.major_faults.saturating_sub(earlier.major_faults),
            voluntary_switches: self
                .voluntary_switches
                .saturating_sub(earlier.voluntary_switches),
            involuntary_switches: self
                .involuntary_switches
                .saturating_sub(earlier.involuntary_switches),
            cpu_ms: (self.cpu_ms - earlier.cpu_ms).max(0.0),
            migrations: self
                .migrations
                .zip(earlier.migrations)
                .map(|(a, b)| a.saturating_sub(b)),
            seconds: 0.0,
        }
    }
}

/// The value of `key` in a `key: value` (or `key:\tvalue`) file such as `sched` or
/// `status`, without allocating.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// `se.sum_exec_runtime` (milliseconds) and `se.nr_migrations` from a `sched` file.
fn parse_sched(text: &str) -> (Option<f64>, Option<u64>) {
    (
        field(text, "se.sum_exec_runtime").and_then(|v| v.parse().ok()),
        field(text, "se.nr_migrations").and_then(|v| v.parse().ok()),
    )
}

/// `voluntary_ctxt_switches` and `nonvoluntary_ctxt_switches` from a `status` file.
fn parse_switches(text: &str) -> (Option<u64>, Option<u64>) {
    (
        field(text, "voluntary_ctxt_switches").and_then(|v| v.parse().ok()),
        field(text, "nonvoluntary_ctxt_switches").and_then(|v| v.parse().ok()),
    )
}

thread_local! {
    // The path and the text of the per-thread files `threads` reads, kept by the
    // calling (cold) thread between calls: once grown, reading them allocates nothing
    // (`lab profile` found `procfs`'s `status` parsing the cold threads' top
    // allocation site, about 1,500 allocations a second on each).
    static READ: std::cell::RefCell<(String, String)> =
        const { std::cell::RefCell::new((String::new(), String::new())) };
}

/// Reads `/proc/self/task/TID/FILE` into the thread's buffer and hands its text to `f`;
/// `None` if it cannot be read (the thread ended).
fn with_task_file<R>(tid: i32, file: &str, f: impl FnOnce(&str) -> R) -> Option<R> {
    use std::fmt::Write as _;
    use std::io::Read as _;
    READ.with(|b| {
        let (path, text) = &mut *b.borrow_mut();
        path.clear();
        let _ = write!(path, "/proc/self/task/{tid}/{file}");
        text.clear();
        std::fs::File::open(&*path)
            .and_then(|mut fd| fd.read_to_string(text))
            .ok()?;
        Some(f(text))
    })
}

/// Every thread of this process since it started, by name: the thread's own name
/// (`engine-hot`, `feed-history`, …), `PROCESS-main` for the main thread, and a `#tid`
/// suffix where two threads share a name.
pub fn threads(process: &str) -> BTreeMap<String, ThreadStats> {
    let mut out = BTreeMap::new();
    let Ok(me) = procfs::process::Process::myself() else {
        return out;
    };
    let Ok(tasks) = me.tasks() else {
        return out;
    };
    let tick_ms = 1000.0 / procfs::ticks_per_second() as f64;
    for task in tasks.flatten() {
        let Ok(stat) = task.stat() else {
            continue; // the thread ended meanwhile
        };
        let Some((voluntary, involuntary)) = with_task_file(task.tid, "status", parse_switches)
        else {
            continue;
        };
        let (runtime_ms, migrations) =
            with_task_file(task.tid, "sched", parse_sched).unwrap_or((None, None));
        let stats = ThreadStats {
            minor_faults: stat.minflt,
            major_faults: stat.majflt,
            voluntary_switches: voluntary.unwrap_or(0),
            involuntary_switches: involuntary.unwrap_or(0),
            cpu_ms: runtime_ms.unwrap_or((stat.utime + stat.stime) as f64 * tick_ms),
            migrations,
            seconds: 0.0,
        };
        let name = if task.tid == task.pid {
            format!("{process}-main")
        } else {
            stat.comm.clone()
        };
        let name = if out.contains_key(&name) {
            format!("{name}#{}", task.tid)
        } else {
            name
        };
        out.insert(name, stats);
    }
    out
}

/// The interrupt rows kept by name (the others with a name are left out).
pub const NAMED_ROWS: [&str; 4] = ["TLB", "CAL", "RES", "LOC"];

/// Counts per kind and core from the text of `/proc/interrupts`: the rows of
/// [`NAMED_ROWS`], and `device` for the sum of the numbered rows. Only `cores`.
pub fn parse_interrupts(text: &str, cores: &[usize]) -> BTreeMap<String, BTreeMap<usize, u64>> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return BTreeMap::new();
    };
    // Column i is the CPU named in the header (CPU0 CPU1 …; offline CPUs have none).
    let columns: Vec<Option<usize>> = header
        .split_whitespace()
        .map(|c| c.strip_prefix("CPU").and_then(|n| n.parse().ok()))
        .collect();
    let mut out: BTreeMap<String, BTreeMap<usize, u64>> = BTreeMap::new();
    for line in lines {
        let Some((label, rest)) = line.split_once(':') else {
            continue;
        };
        let label = label.trim();
        let kind = if label.chars().all(|c| c.is_ascii_digit()) {
            "device"
        } else if let Some(k) = NAMED_ROWS.iter().find(|k| **k == label) {
            k
        } else {
            continue;
        };
        let row = out.entry(kind.to_string()).or_default();
        for (field, column) in rest.split_whitespace().zip(&columns) {
            let (Ok(n), Some(cpu)) = (field.parse::<u64>(), column) else {
                break; // the description after the counts
            };
            if cores.contains(cpu) {
                *row.entry(*cpu).or_default() += n;
            }
        }
    }
    out
}

/// [`parse_interrupts`] of this machine's `/proc/interrupts` (empty if unreadable).
pub fn interrupts(cores: &[usize]) -> BTreeMap<String, BTreeMap<usize, u64>> {
    std::fs::read_to_string("/proc/interrupts")
        .map(|t| parse_interrupts(&t, cores))
        .unwrap_or_default()
}

/// The allocator counters of `stats` (an allocator's statistics) that only grow.
fn counters(stats: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    stats
        .iter()
        .filter(|(k, _)| crate::allocators::COUNTERS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// One reading of every mechanism.
#[derive(Clone, Debug)]
pub struct Snapshot {
    at: Instant,
    threads: BTreeMap<String, ThreadStats>,
    interrupts: BTreeMap<String, BTreeMap<usize, u64>>,
    allocator: BTreeMap<String, u64>,
}

impl Snapshot {
    /// Reads this process's threads, the interrupts of `cores` (none for an empty list)
    /// and the counters among `allocator_stats`.
    pub fn take(
        process: &str,
        cores: &[usize],
        allocator_stats: &BTreeMap<String, u64>,
    ) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            threads: threads(process),
            interrupts: if cores.is_empty() {
                BTreeMap::new()
            } else {
                interrupts(cores)
            },
            allocator: counters(allocator_stats),
        }
    }
}

/// What the mechanisms counted over a measured window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Mechanisms {
    /// Length of the window, seconds.
    pub seconds: f64,
    /// Per thread, what it did in the window.
    pub threads: BTreeMap<String, ThreadStats>,
    /// Interrupts per kind (`TLB`, `CAL`, `RES`, `LOC`, `device`) and core, in the window.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub interrupts: BTreeMap<String, BTreeMap<usize, u64>>,
    /// The allocator's counters ([`crate::allocators::COUNTERS`]), grown in the window.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocator: BTreeMap<String, u64>,
}

impl Mechanisms {
    /// The sum of the interrupts of `kind` over the cores, per second.
    pub fn interrupts_per_s(&self, kind: &str) -> Option<f64> {
        let row = self.interrupts.get(kind)?;
        (self.seconds > 0.0).then(|| row.values().sum::<u64>() as f64 / self.seconds)
    }

    /// A thread's figure per second of the part of the window it was seen in.
    pub fn per_s(&self, thread: &str, f: impl Fn(&ThreadStats) -> f64) -> Option<f64> {
        let t = self.threads.get(thread)?;
        (t.seconds > 0.0).then(|| f(t) / t.seconds)
    }
}

/// What happened between snapshots `a` and `b`; a thread missing from `b` is taken from
/// `ended` (its last figures) or left out.
fn between(
    a: &Snapshot,
    b: &Snapshot,
    ended: &BTreeMap<String, (ThreadStats, Instant)>,
) -> Mechanisms {
    let threads = a
        .threads
        .iter()
        .filter_map(|(name, x)| {
            let (y, seen) = match b.threads.get(name) {
                Some(y) => (y, b.at),
                None => {
                    let (y, seen) = ended.get(name)?;
                    (y, *seen)
                }
            };
            let mut d = y.since(x);
            d.seconds = seen.duration_since(a.at).as_secs_f64();
            Some((name.clone(), d))
        })
        .collect();
    let interrupts = b
        .interrupts
        .iter()
        .map(|(kind, row)| {
            let before = a.interrupts.get(kind);
            let row = row
                .iter()
                .map(|(cpu, n)| {
                    let was = before.and_then(|r| r.get(cpu)).copied().unwrap_or(0);
                    (*cpu, n.saturating_sub(was))
                })
                .collect();
            (kind.clone(), row)
        })
        .collect();
    let allocator = b
        .allocator
        .iter()
        .map(|(k, v)| {
            let was = a.allocator.get(k).copied().unwrap_or(0);
            (k.clone(), v.saturating_sub(was))
        })
        .collect();
    Mechanisms {
        seconds: b.at.duration_since(a.at).as_secs_f64(),
        threads,
        interrupts,
        allocator,
    }
}

/// The measured window of a run: its first snapshot, the latest one, and the last
/// figures of threads that ended in between.
#[derive(Debug, Default)]
pub struct Window {
    first: Option<Snapshot>,
    last: Option<Snapshot>,
    ended: BTreeMap<String, (ThreadStats, Instant)>,
}

impl Window {
    /// An empty window.
    pub fn new() -> Window {
        Window::default()
    }

    /// Adds a snapshot (the first one starts the window) and returns what happened
    /// since the previous one, for an interval line.
    pub fn observe(&mut self, s: Snapshot) -> Option<Mechanisms> {
        let Some(first) = &self.first else {
            self.first = Some(s);
            return None;
        };
        let prev = self.last.as_ref().unwrap_or(first);
        let step = between(prev, &s, &BTreeMap::new());
        if let Some(last) = self.last.take() {
            for (name, t) in last.threads {
                if !s.threads.contains_key(&name) {
                    self.ended.insert(name, (t, last.at));
                }
            }
        }
        self.last = Some(s);
        Some(step)
    }

    /// What happened between the first snapshot and the latest one; `None` before two
    /// snapshots.
    pub fn mechanisms(&self) -> Option<Mechanisms> {
        Some(between(
            self.first.as_ref()?,
            self.last.as_ref()?,
            &self.ended,
        ))
    }
}

/// One interval line: per thread CPU milliseconds, involuntary and voluntary switches
/// and minor faults (`engine-hot cpu=1000 inv=3 vol=0 minflt=0`), the interrupts per
/// kind and core (`TLB 0:+3 1:+2`), and the allocator counters that grew.
pub fn format_line(m: &Mechanisms) -> String {
    let mut parts: Vec<String> = m
        .threads
        .iter()
        .map(|(name, t)| {
            format!(
                "{name} cpu={:.0}ms inv={} vol={} minflt={}",
                t.cpu_ms, t.involuntary_switches, t.voluntary_switches, t.minor_faults
            )
        })
        .collect();
    for kind in ["TLB", "CAL", "RES"] {
        if let Some(row) = m.interrupts.get(kind) {
            let cores: Vec<String> = row.iter().map(|(c, n)| format!("{c}:+{n}")).collect();
            parts.push(format!("{kind} {}", cores.join(" ")));
        }
    }
    let grown: Vec<String> = m
        .allocator
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| format!("{k}=+{v}"))
        .collect();
    if !grown.is_empty() {
        parts.push(format!("allocator {}", grown.join(" ")));
    }
    parts.join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERRUPTS: &str = "           CPU0       CPU1       CPU2
  0:         10          0          5   IO-APIC   2-edge      timer
 24:          1          2          3   IO-APIC   5-edge      ACPI:Ged
NMI:          0          0          0   Non-maskable interrupts
LOC:    2732240    2348267        100   Local timer interrupts
RES:     339179     278866          7   Rescheduling interrupts
CAL:     695085     583732          1   Function call interrupts
TLB:     478657     462295          2   TLB shootdowns
ERR:          0
";

    #[test]
    fn interrupts_are_read_per_kind_and_core() {
        let m = parse_interrupts(INTERRUPTS, &[0, 1]);
        assert_eq!(m["TLB"], [(0, 478657), (1, 462295)].into());
        assert_eq!(m["CAL"][&1], 583732);
        assert_eq!(m["device"], [(0, 11), (1, 2)].into());
        assert!(!m.contains_key("NMI") && !m.contains_key("ERR"));
        assert_eq!(parse_interrupts(INTERRUPTS, &[2])["LOC"], [(2, 100)].into());
        assert!(parse_interrupts("", &[0]).is_empty());
    }

    #[test]
    fn sched_gives_runtime_and_migrations() {
        let text = "cat (1903, #threads: 1)\n----\nse.exec_start   :   10367398.116923\nse.sum_exec_runtime    :   12.294717\nse.nr_migrations   :   3\n";
        assert_eq!(parse_sched(text), (Some(12.294717), Some(3)));
        assert_eq!(parse_sched("nothing"), (None, None));
    }

    #[test]
    fn status_gives_the_context_switches() {
        let text = "Name:\tfeed-history\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t1203\nnonvoluntary_ctxt_switches:\t17\n";
        assert_eq!(parse_switches(text), (Some(1203), Some(17)));
        assert_eq!(parse_switches("Name:\tx\n"), (None, None));
        // This thread's own file, read through the kept buffer, twice.
        let tid = procfs::process::Process::myself().unwrap().pid;
        for _ in 0..2 {
            let (v, n) = with_task_file(tid, "status", parse_switches).expect("readable");
            assert!(v.is_some() && n.is_some());
        }
        assert!(with_task_file(i32::MAX, "status", parse_switches).is_none());
    }

    #[test]
    fn a_busy_thread_shows_its_cpu_and_faults_in_the_window() {
        let mut w = Window::new();
        let stats = BTreeMap::new();
        assert!(w.observe(Snapshot::take("test", &[0], &stats)).is_none());
        assert!(w.mechanisms().is_none(), "one snapshot is not a window");
        let t = std::thread::Builder::new()
            .name("mech-busy".into())
            .spawn(|| {
                // 8 MiB touched page by page: minor faults, and some CPU.
                let mut v = vec![0u8; 8 << 20];
                for i in (0..v.len()).step_by(4096) {
                    v[i] = 1;
                }
                std::hint::black_box(&v);
                let (tx, rx) = std::sync::mpsc::channel::<()>();
                std::thread::spawn(move || {
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    drop(tx);
                });
                let _ = rx.recv();
            })
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        // The thread exists now but not in the first snapshot: not in the window's
        // threads, which are the ones both ends know.
        let step = w.observe(Snapshot::take("test", &[0], &stats)).unwrap();
        let line = format_line(&step);
        assert!(
            line.contains("test-main cpu=") && line.contains("CAL 0:+"),
            "{line}"
        );
        t.join().unwrap();
        w.observe(Snapshot::take("test", &[0], &stats));
        let m = w.mechanisms().unwrap();
        assert!(m.seconds > 0.0);
        assert!(!m.threads.contains_key("mech-busy"), "{m:?}");
        assert!(m.threads.contains_key("test-main"), "{m:?}");
        assert!(m.interrupts.contains_key("LOC"), "{m:?}");
    }

    #[test]
    fn ended_threads_keep_their_last_figures() {
        let mut w = Window::new();
        let stats = BTreeMap::new();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let (touched, done) = std::sync::mpsc::channel::<()>();
        let (started, running) = std::sync::mpsc::channel::<()>();
        let t = std::thread::Builder::new()
            .name("mech-ends".into())
            .spawn(move || {
                // Fresh pages from the kernel: an allocator could hand out memory
                // that another test already made resident.
                let len = 4 << 20;
                // SAFETY: an anonymous private mapping of `len` bytes, no address hint;
                // the result is checked against MAP_FAILED before use.
                let p = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        len,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    )
                };
                assert_ne!(p, libc::MAP_FAILED);
                let _ = started.send(());
                let _ = wait.recv();
                for i in (0..len).step_by(4096) {
                    // SAFETY: `i < len`, inside the writable mapping made above.
                    unsafe { (p as *mut u8).add(i).write_volatile(1) };
                }
                let _ = touched.send(());
                let _ = wait.recv();
                // SAFETY: the mapping made above, unmapped once, nothing points into it.
                unsafe { libc::munmap(p, len) };
            })
            .unwrap();
        // Each step waits for the thread, so that a busy machine cannot reorder them.
        running.recv().unwrap();
        w.observe(Snapshot::take("test", &[], &stats));
        go.send(()).unwrap();
        done.recv().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        w.observe(Snapshot::take("test", &[], &stats));
        drop(go);
        t.join().unwrap();
        w.observe(Snapshot::take("test", &[], &stats));
        let m = w.mechanisms().unwrap();
        let t = m.threads.get("mech-ends").expect("seen at both ends");
        assert!(t.seconds > 0.0 && t.seconds < m.seconds, "{t:?} in {m:?}");
        // 1024 pages touched; the kernel may map some at once (fault-around), never more.
        assert!(t.minor_faults > 0 && t.minor_faults <= 1100, "{t:?}");
        assert!(t.voluntary_switches >= 1, "it slept on the channel: {t:?}");
        assert!(m.interrupts.is_empty());
    }
}
