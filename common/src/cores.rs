//! Core plan: which core each pinned thread uses, checked against the cores this
//! process may run on; pinning; and the wait strategies of polling loops.
//!
//! Read the allowed cores once with [`allowed_cores`] at start-up, before pinning
//! anything: `core_affinity::get_core_ids()` reports the calling thread's mask, and
//! a pinned thread's children inherit it. Validation happens in
//! [`crate::config::Config::validate_cores`], so a bad id is a config error naming
//! its key, never an abort inside `core_affinity` (which aborts on ids ≥ 1024).
//!
//! [`Waiter::wait`] is called on the hot path when there is nothing to do: `spin`
//! only issues a pause instruction; `spin_yield` yields the core after a while;
//! `block` sleeps (a system call) after a while and suits only cold or idle threads.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The cores the calling thread may run on, ascending. Call once, before pinning.
pub fn allowed_cores() -> Vec<usize> {
    let mut ids: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort_unstable();
    ids
}

/// Pins the calling thread to `core`. Returns whether the kernel accepted it.
///
/// `core` must come from a validated plan (an id in [`allowed_cores`]).
pub fn pin_current(core: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: core })
}

/// [`pin_current`], saying on stderr when it fails (`PROCESS: warning: could not pin
/// the THREAD thread to core N`): the thread then runs wherever the kernel puts it.
/// Start-up work: it formats and writes when pinning fails.
pub fn pin_or_warn(process: &str, thread: &str, core: usize) -> bool {
    let pinned = pin_current(core);
    if !pinned {
        eprintln!("{process}: warning: could not pin the {thread} thread to core {core}");
    }
    pinned
}

/// Restricts the calling thread to `cores` (for cold threads); an empty list leaves
/// the mask as it is. Returns whether the kernel accepted it.
pub fn restrict_current(cores: &[usize]) -> bool {
    if cores.is_empty() {
        return true;
    }
    // SAFETY: `set` is a zero-initialised cpu_set_t on the stack, filled with CPU_SET for
    // ids already validated to be < CPU_SETSIZE (they come from `allowed_cores`), and
    // passed by pointer with its exact size to sched_setaffinity for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cores {
            if c >= libc::CPU_SETSIZE as usize {
                return false;
            }
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// What a polling loop does when there is nothing to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitStrategy {
    /// Busy-spin with a pause instruction: lowest latency, burns the core.
    #[default]
    Spin,
    /// Spin a while, then yield the core to other threads between polls.
    SpinYield,
    /// Spin a while, then sleep briefly between polls: frees the core, adds
    /// tens of microseconds of wake-up latency.
    Block,
}

/// Spins before `spin_yield` and `block` start yielding or sleeping.
const SPINS_BEFORE_BACKOFF: u32 = 1_000;
/// Sleep of the `block` strategy once spinning has not found work.
const BLOCK_SLEEP: Duration = Duration::from_micros(50);

/// Per-loop state of a [`WaitStrategy`].
#[derive(Debug)]
pub struct Waiter {
    strategy: WaitStrategy,
    idle: u32,
}

impl Waiter {
    /// A waiter following `strategy`.
    pub fn new(strategy: WaitStrategy) -> Waiter {
        Waiter { strategy, idle: 0 }
    }

    /// Waits once, per the strategy, after a poll that found nothing.
    #[inline]
    pub fn wait(&mut self) {
        match self.strategy {
            WaitStrategy::Spin => std::hint::spin_loop(),
            WaitStrategy::SpinYield | WaitStrategy::Block if self.idle < SPINS_BEFORE_BACKOFF => {
                self.idle += 1;
                std::hint::spin_loop();
            }
            WaitStrategy::SpinYield => std::thread::yield_now(),
            WaitStrategy::Block => std::thread::sleep(BLOCK_SLEEP),
        }
    }

    /// Notes that work was found: the next idle period starts by spinning again.
    #[inline]
    pub fn reset(&mut self) {
        self.idle = 0;
    }

    /// The strategy.
    pub fn strategy(&self) -> WaitStrategy {
        self.strategy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_cores_are_sorted_and_nonempty() {
        let c = allowed_cores();
        assert!(!c.is_empty());
        assert!(c.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn pin_and_restrict_in_a_thread() {
        let cores = allowed_cores();
        let first = cores[0];
        std::thread::spawn(move || {
            assert!(pin_current(first));
            assert_eq!(allowed_cores(), vec![first]);
        })
        .join()
        .unwrap();
        let all = cores.clone();
        std::thread::spawn(move || {
            assert!(restrict_current(&all));
            assert_eq!(allowed_cores(), all);
            assert!(!restrict_current(&[100_000]));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn waiters_back_off_and_reset() {
        for s in [
            WaitStrategy::Spin,
            WaitStrategy::SpinYield,
            WaitStrategy::Block,
        ] {
            let mut w = Waiter::new(s);
            for _ in 0..(SPINS_BEFORE_BACKOFF + 3) {
                w.wait();
            }
            let expected = if s == WaitStrategy::Spin {
                0
            } else {
                SPINS_BEFORE_BACKOFF
            };
            assert_eq!(w.idle, expected);
            w.reset();
            assert_eq!(w.idle, 0);
        }
    }
}
