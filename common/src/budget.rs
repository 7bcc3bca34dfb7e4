//! What each cold thread costs the cores it shares with hot threads: its CPU time per
//! second, and the stretches it runs between two sleeps (the longest is how long it can
//! keep a hot thread off its core on a machine without spare cores).
//!
//! A cold thread's loop calls [`Meter::awake`] when a sleep returns and [`Meter::asleep`]
//! before the next one; the time between is one stretch. While working, it asks
//! [`Meter::over_slice`] every few items and, once the stretch has lasted its slice,
//! hands the core back with [`Meter::pause`]: cold work then runs in slices no longer
//! than the slice (plus one item), whatever the batch.
//!
//! # Guarantees
//!
//! - Each stretch is measured twice: its wall time (two TSC reads), which decides when
//!   to slice, and its CPU time (`CLOCK_THREAD_CPUTIME_ID` at both ends, two system
//!   calls per stretch), which is what the thread took from the core it ran on: a
//!   stretch's wall time also counts the time the thread itself waited while a hot
//!   thread had the core. The longest CPU stretch bounds how long the thread kept a hot
//!   thread off its core in one go.
//! - [`Meter::new`] allocates the histogram of stretch lengths; nothing after that
//!   allocates. For cold threads only (it reads clocks and sleeps).

use crate::clock::{thread_cpu_ns, Clock};
use crate::config::{ColdConfig, ColdPolicy};
use crate::cores::restrict_current;
use crate::latency::{fixed_histogram, HIGHEST_NS};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Times the stretches of one cold thread and slices its work.
pub struct Meter {
    clock: Clock,
    slice_raw: u64,
    pause: Duration,
    started_raw: u64,
    started_cpu_ns: u64,
    /// Raw clock when the current stretch began (0: asleep).
    awake_raw: u64,
    /// Thread CPU time when the current stretch began.
    awake_cpu_ns: u64,
    /// CPU time of each stretch, nanoseconds.
    stretches: Histogram<u64>,
    /// Wall time of the longest stretch, raw units.
    longest_wall_raw: u64,
    /// CPU time of the longest stretch (ns) and when it began (raw).
    longest_cpu: (u64, u64),
    pauses: u64,
}

/// One cold thread's budget over a run ([`Meter::report`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ColdBudget {
    /// Wall-clock seconds the thread was measured.
    pub seconds: f64,
    /// CPU time it used, milliseconds.
    pub cpu_ms: f64,
    /// CPU time per second of wall time, milliseconds (10 = 1% of a core).
    pub cpu_ms_per_s: f64,
    /// Stretches (runs between two sleeps).
    pub stretches: u64,
    /// Stretches per second.
    pub stretches_per_s: f64,
    /// Median CPU time of a stretch, microseconds.
    pub stretch_p50_us: f64,
    /// 99th percentile of the stretches' CPU time, microseconds.
    pub stretch_p99_us: f64,
    /// The longest stretch in CPU time (how long the thread held a core in one go),
    /// microseconds.
    pub longest_stretch_us: f64,
    /// The longest stretch in wall time (its CPU time plus any time it waited for the
    /// core meanwhile), microseconds.
    #[serde(default)]
    pub longest_wall_us: f64,
    /// When the longest stretch (in CPU time) began, seconds after the thread started.
    #[serde(default)]
    pub longest_at_s: f64,
    /// Times the thread handed its core back in the middle of its work because a
    /// stretch had lasted its slice.
    pub pauses: u64,
}

impl std::fmt::Display for ColdBudget {
    /// `cpu 12.3 ms/s, 200 stretches/s, cpu per stretch p50 20 µs, p99 45 µs, longest
    /// 120 µs (wall 900 µs), 3 pauses`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cpu {:.1} ms/s, {:.0} stretches/s, cpu per stretch p50 {:.1} µs, p99 {:.1} µs, longest {:.1} µs at {:.2} s (longest wall {:.1} µs), {} pauses",
            self.cpu_ms_per_s,
            self.stretches_per_s,
            self.stretch_p50_us,
            self.stretch_p99_us,
            self.longest_stretch_us,
            self.longest_at_s,
            self.longest_wall_us,
            self.pauses
        )
    }
}

impl Meter {
    /// A meter for the calling thread (its CPU time counts from now), slicing work at
    /// `slice` (`Duration::MAX`: never) and pausing for `pause` between slices.
    pub fn new(clock: &Clock, slice: Duration, pause: Duration) -> Meter {
        let now = clock.raw();
        Meter {
            clock: clock.clone(),
            slice_raw: u64::try_from(slice.as_nanos()).map_or(u64::MAX, |ns| clock.raw_from_ns(ns)),
            pause,
            started_raw: now,
            started_cpu_ns: thread_cpu_ns(),
            awake_raw: now,
            awake_cpu_ns: thread_cpu_ns(),
            stretches: fixed_histogram(HIGHEST_NS),
            longest_wall_raw: 0,
            longest_cpu: (0, 0),
            pauses: 0,
        }
    }

    /// The thread woke up: a stretch begins.
    #[inline]
    pub fn awake(&mut self) {
        self.awake_raw = self.clock.raw();
        self.awake_cpu_ns = thread_cpu_ns();
    }

    /// The thread is about to sleep: the stretch ends.
    #[inline]
    pub fn asleep(&mut self) {
        if self.awake_raw == 0 {
            return;
        }
        let d = self.clock.raw().saturating_sub(self.awake_raw);
        let cpu = thread_cpu_ns().saturating_sub(self.awake_cpu_ns);
        self.stretches.saturating_record(cpu.min(HIGHEST_NS));
        self.longest_wall_raw = self.longest_wall_raw.max(d);
        if cpu > self.longest_cpu.0 {
            self.longest_cpu = (cpu, self.awake_raw);
        }
        self.awake_raw = 0;
    }

    /// Whether the current stretch has lasted its slice: time to [`Meter::pause`].
    #[inline]
    pub fn over_slice(&self) -> bool {
        self.awake_raw != 0 && self.clock.raw().saturating_sub(self.awake_raw) >= self.slice_raw
    }

    /// Ends the stretch, sleeps for the pause (handing the core back), and begins the
    /// next one.
    pub fn pause(&mut self) {
        self.pauses += 1;
        self.asleep();
        std::thread::sleep(self.pause);
        self.awake();
    }

    /// Sleeps for `d` between two stretches (the thread's idle poll).
    pub fn sleep(&mut self, d: Duration) {
        self.asleep();
        std::thread::sleep(d);
        self.awake();
    }

    /// The budget so far. Reads the thread's CPU clock: call it on the measured thread.
    pub fn report(&self) -> ColdBudget {
        let ns_per_raw = self.clock.ns_per_raw();
        let seconds = self.clock.raw().saturating_sub(self.started_raw) as f64 * ns_per_raw / 1e9;
        let cpu_ms = thread_cpu_ns().saturating_sub(self.started_cpu_ns) as f64 / 1e6;
        let per_s = |x: f64| if seconds > 0.0 { x / seconds } else { 0.0 };
        let us = |ns: u64| ns as f64 / 1e3;
        let n = self.stretches.len();
        ColdBudget {
            seconds,
            cpu_ms,
            cpu_ms_per_s: per_s(cpu_ms),
            stretches: n,
            stretches_per_s: per_s(n as f64),
            stretch_p50_us: us(self.stretches.value_at_quantile(0.5)),
            stretch_p99_us: us(self.stretches.value_at_quantile(0.99)),
            longest_stretch_us: us(self.stretches.max()),
            longest_wall_us: self.longest_wall_raw as f64 * ns_per_raw / 1e3,
            longest_at_s: self.longest_cpu.1.saturating_sub(self.started_raw) as f64 * ns_per_raw
                / 1e9,
            pauses: self.pauses,
        }
    }
}

/// A cold thread's meter and idle poll, set up by [`ColdThread::enter`].
pub struct ColdThread {
    /// Its stretches and slices.
    pub meter: Meter,
    /// How long it sleeps when it finds nothing to do (`cold.poll_ms`).
    pub poll: Duration,
}

impl ColdThread {
    /// Makes the calling thread the cold thread `role` (`feed_history`, `engine_report`,
    /// …: process, underscore, thread) of `config` on `cores` ([`enter_cold`] with
    /// `config.cold`; `cores` is `cores.feed_cold()` or `cores.engine_cold()`), saying on
    /// stderr what the kernel refused (`PROCESS: warning: the ROLE thread could not take
    /// …`). Its allocations take the route of `role` under the routing allocator
    /// ([`crate::routed::enter_role`]). With `cold.time_allocator`, or when the adaptive
    /// router asked for it ([`crate::routed::request_profiling`]), its allocator calls
    /// are timed from here on ([`crate::alloc::time_this_thread`]).
    pub fn enter(
        role: &'static str,
        config: &crate::config::Config,
        cores: &[usize],
        clock: &Clock,
    ) -> ColdThread {
        let process = role.split('_').next().unwrap_or(role);
        let (meter, refused) = enter_cold(&config.cold, cores, clock);
        if let Some(r) = refused {
            eprintln!("{process}: warning: the {role} thread could not take {r}");
        }
        crate::routed::enter_role(role);
        let timed = config.cold.time_allocator || crate::routed::profiling_requested();
        if timed && !crate::alloc::time_this_thread(role) {
            eprintln!("{process}: warning: the {role} thread's allocator calls are not timed: no role slot left");
        }
        ColdThread {
            meter,
            poll: Duration::from_millis(config.cold.poll_ms),
        }
    }

    /// This thread with another idle poll (a thread that expects work only once per
    /// interval has no reason to wake every few milliseconds).
    pub fn with_poll(self, poll: Duration) -> ColdThread {
        ColdThread { poll, ..self }
    }

    /// Sleeps for the idle poll.
    pub fn idle(&mut self) {
        self.meter.sleep(self.poll);
    }

    /// Hands the core back if the current stretch has lasted its slice.
    #[inline]
    pub fn yield_if_due(&mut self) {
        if self.meter.over_slice() {
            self.meter.pause();
        }
    }

    /// Ends the last stretch and returns the budget.
    pub fn finish(mut self) -> ColdBudget {
        self.meter.asleep();
        self.meter.report()
    }
}

/// Makes the calling thread a cold thread as `cold` says: restricted to `cores` (empty:
/// any allowed core), in the scheduling class `cold.policy` with nice value `cold.nice`.
/// Returns its [`Meter`] (slicing at `cold.slice_us`, pausing `cold.pause_us`), and a
/// warning for whatever the kernel refused (the thread then runs as it was).
pub fn enter_cold(cold: &ColdConfig, cores: &[usize], clock: &Clock) -> (Meter, Option<String>) {
    let mut refused = Vec::new();
    if !restrict_current(cores) {
        refused.push(format!("cores {cores:?}"));
    }
    if let Err(e) = set_policy(cold.policy, cold.nice) {
        refused.push(e);
    }
    let slice = match cold.slice_us {
        0 => Duration::MAX,
        us => Duration::from_micros(us),
    };
    let meter = Meter::new(clock, slice, Duration::from_micros(cold.pause_us));
    let warning = (!refused.is_empty()).then(|| refused.join("; "));
    (meter, warning)
}

/// Sets the calling thread's scheduling class and nice value.
fn set_policy(policy: ColdPolicy, nice: i32) -> Result<(), String> {
    let class = match policy {
        ColdPolicy::Other => libc::SCHED_OTHER,
        ColdPolicy::Batch => libc::SCHED_BATCH,
        ColdPolicy::Idle => libc::SCHED_IDLE,
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 names the calling thread; `param` is a valid sched_param that lives
    // across the call, with the priority 0 these three classes require. The call reads
    // it and changes only this thread's scheduling.
    if unsafe { libc::sched_setscheduler(0, class, &param) } != 0 {
        return Err(format!(
            "scheduling class {}: {}",
            policy.name(),
            std::io::Error::last_os_error()
        ));
    }
    if nice != 0 {
        // SAFETY: gettid has no preconditions; setpriority with PRIO_PROCESS and a thread
        // id changes only that thread's nice value on Linux, and reads no memory of ours.
        let ok = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) == 0
        };
        if !ok {
            return Err(format!("nice {nice}: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stretches_are_timed_and_work_is_sliced() {
        let clock = Clock::new();
        let mut m = Meter::new(
            &clock,
            Duration::from_micros(200),
            Duration::from_micros(10),
        );
        m.awake();
        // Busy for about a millisecond, pausing at every slice.
        let until = clock.raw() + clock.raw_from_ns(1_000_000);
        while clock.raw() < until {
            if m.over_slice() {
                m.pause();
            }
        }
        m.sleep(Duration::from_millis(2));
        m.asleep();
        let b = m.report();
        assert!(b.pauses >= 1, "{b:?}");
        assert_eq!(b.stretches, b.pauses + 1 + 1, "{b:?}");
        assert!(b.longest_wall_us >= 200.0, "{b:?}");
        // CPU time within wall time, up to what two clocks can disagree by: the TSC's
        // calibration against CLOCK_MONOTONIC (0.7% seen once in CI on a VM; 2%
        // allowed), the histogram's bucket (0.1%) and a clock read at each end.
        assert!(
            b.longest_stretch_us <= b.longest_wall_us * 1.02 + 1.0,
            "{b:?}"
        );
        assert!(b.cpu_ms > 0.0, "{b:?}");
        assert!(b.seconds >= 0.003, "{b:?}");
    }

    #[test]
    fn a_cold_thread_takes_its_class_and_weight() {
        let clock = Clock::new();
        let cold = ColdConfig {
            policy: ColdPolicy::Batch,
            nice: 5,
            ..ColdConfig::default()
        };
        std::thread::spawn(move || {
            let (_meter, warning) = enter_cold(&cold, &[], &clock);
            assert_eq!(warning, None);
            // SAFETY: querying the calling thread's class has no preconditions.
            let class = unsafe { libc::sched_getscheduler(0) };
            assert_eq!(class, libc::SCHED_BATCH);
            // SAFETY: as above, for the nice value of this thread.
            let nice =
                unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
            assert_eq!(nice, 5);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn never_slices_without_a_slice() {
        let clock = Clock::new();
        let mut m = Meter::new(&clock, Duration::MAX, Duration::ZERO);
        m.awake();
        assert!(!m.over_slice());
        m.asleep();
        assert!(!m.over_slice(), "asleep");
        assert_eq!(m.report().stretches, 1);
    }
}
