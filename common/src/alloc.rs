//! A counting wrapper for any global allocator: per-thread counts of allocations,
//! frees, reallocations and bytes, kept without allocating.
//!
//! Each binary declares its global allocator as `CountingAlloc<TheAllocator>`; any
//! thread can then read its own counts with [`thread_counts`]. The engine's hot
//! thread reads them each interval to prove that it made no global allocation per
//! tick after warm-up.
//!
//! The counters are `const`-initialised thread-locals without destructors, so using
//! them never allocates or registers anything; each call adds a few plain stores to
//! the wrapped allocator's cost. Nothing here blocks.
//!
//! # Timed calls (the timed-allocator mode)
//!
//! A thread that calls [`time_this_thread`] has every later call into the allocator
//! timed: the time stamp counter is read before and after the wrapped allocator's call
//! and the difference counted in a fixed-bound histogram of its role and operation
//! (`alloc`, `free`, `realloc`; 16 sub-buckets per power of two, so within 6.25%), kept
//! in static atomics: no allocation, no lock. Only cold threads call it (the engine's
//! and the feed's `ColdThread::enter` when `cold.time_allocator` is set); hot threads
//! are never timed, and untimed threads pay one thread-local read per call.
//! [`call_times`] reads the histograms (any thread) as nanosecond percentiles. The
//! timer's own cost (two `rdtsc` and an atomic add) is inside every timed figure; the
//! `timed_overhead_64B` rows of `cargo bench -p lab --bench allocators` measure it.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Counts of one thread's calls into the global allocator since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AllocCounts {
    /// `alloc` and `alloc_zeroed` calls.
    pub allocs: u64,
    /// `dealloc` calls.
    pub frees: u64,
    /// `realloc` calls.
    pub reallocs: u64,
    /// Bytes requested by allocations and the growth of reallocations.
    pub bytes: u64,
}

impl AllocCounts {
    /// Counts accumulated since `earlier` (saturating).
    pub fn since(&self, earlier: &AllocCounts) -> AllocCounts {
        AllocCounts {
            allocs: self.allocs.saturating_sub(earlier.allocs),
            frees: self.frees.saturating_sub(earlier.frees),
            reallocs: self.reallocs.saturating_sub(earlier.reallocs),
            bytes: self.bytes.saturating_sub(earlier.bytes),
        }
    }

    /// Calls that went to the allocator: allocations plus reallocations.
    pub fn calls(&self) -> u64 {
        self.allocs + self.reallocs
    }
}

thread_local! {
    static COUNTS: Cell<AllocCounts> = const {
        Cell::new(AllocCounts { allocs: 0, frees: 0, reallocs: 0, bytes: 0 })
    };
}

#[inline(always)]
fn bump(f: impl FnOnce(&mut AllocCounts)) {
    // `try_with` fails only while the thread is being torn down; those calls go
    // uncounted rather than aborting.
    let _ = COUNTS.try_with(|c| {
        let mut v = c.get();
        f(&mut v);
        c.set(v);
    });
}

/// The calling thread's counts since it started.
pub fn thread_counts() -> AllocCounts {
    COUNTS.try_with(Cell::get).unwrap_or_default()
}

/// Per-role allocation counts that threads publish for a reporting thread to read.
///
/// Each thread of a process has a role (`engine_hot`, `feed_history`, …); it calls
/// [`AllocProfile::publish`] now and then (a few relaxed stores: no allocation, no lock)
/// to copy its own [`thread_counts`] into its role's slot, and a cold thread reads them
/// all with [`AllocProfile::snapshot`].
///
/// # Examples
///
/// ```
/// use common::alloc::AllocProfile;
///
/// let profile = AllocProfile::new(&["main", "worker"]);
/// profile.publish(0);
/// assert!(profile.snapshot().contains_key("main"));
/// ```
pub struct AllocProfile {
    names: Vec<&'static str>,
    slots: Vec<[AtomicU64; 4]>,
}

impl AllocProfile {
    /// A profile with one slot per role name, in this order.
    pub fn new(roles: &[&'static str]) -> AllocProfile {
        AllocProfile {
            names: roles.to_vec(),
            slots: roles.iter().map(|_| Default::default()).collect(),
        }
    }

    /// Stores the calling thread's counts as those of role number `role`. Never
    /// allocates; an unknown role number is ignored.
    #[inline]
    pub fn publish(&self, role: usize) {
        if let Some(slot) = self.slots.get(role) {
            let c = thread_counts();
            for (a, v) in slot.iter().zip([c.allocs, c.frees, c.reallocs, c.bytes]) {
                a.store(v, Ordering::Relaxed);
            }
        }
    }

    /// `role=calls/frees …` for every role: calls into the allocator (allocations and
    /// reallocations) and frees, as last published.
    pub fn format_line(&self) -> String {
        self.snapshot()
            .iter()
            .map(|(role, c)| format!("{role}={}/{}", c.calls(), c.frees))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The last published counts of every role.
    pub fn snapshot(&self) -> BTreeMap<String, AllocCounts> {
        self.names
            .iter()
            .zip(&self.slots)
            .map(|(name, s)| {
                let v = |i: usize| s[i].load(Ordering::Relaxed);
                (
                    name.to_string(),
                    AllocCounts {
                        allocs: v(0),
                        frees: v(1),
                        reallocs: v(2),
                        bytes: v(3),
                    },
                )
            })
            .collect()
    }
}

/// One live allocation from allocator `A`, with its first byte written; freed by `Drop`.
///
/// Lets safe code (the allocator benchmarks) call an allocator's `GlobalAlloc` directly,
/// whatever the process's global allocator is. `Send` when `A: Sync`, so a block may be
/// freed on another thread, as every `GlobalAlloc` allows.
///
/// # Examples
///
/// ```
/// use common::alloc::RawBlock;
/// use std::alloc::{Layout, System};
///
/// let block = RawBlock::new(&System, Layout::from_size_align(64, 8).unwrap());
/// assert!(!block.as_ptr().is_null());
/// drop(block); // freed through System
/// ```
pub struct RawBlock<A: GlobalAlloc + ?Sized + 'static> {
    ptr: NonNull<u8>,
    layout: Layout,
    alloc: &'static A,
}

impl<A: GlobalAlloc + ?Sized + 'static> RawBlock<A> {
    /// Allocates `layout` from `alloc` and writes its first byte.
    ///
    /// # Panics
    ///
    /// If `layout` has size zero; an allocation failure aborts like `Box::new`.
    #[inline(always)]
    pub fn new(alloc: &'static A, layout: Layout) -> Self {
        assert!(layout.size() > 0, "zero-sized layouts are not benchmarked");
        // SAFETY: `layout` has a non-zero size (asserted above), the one precondition of
        // `GlobalAlloc::alloc`.
        let raw = unsafe { alloc.alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout)
        };
        // SAFETY: `ptr` is a fresh allocation of `layout.size() > 0` bytes that nothing else
        // refers to, so its first byte is in bounds and writable.
        unsafe { ptr.as_ptr().write(1) };
        RawBlock { ptr, layout, alloc }
    }

    /// Address of the block.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
}

impl<A: GlobalAlloc + ?Sized + 'static> Drop for RawBlock<A> {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `self.alloc.alloc(self.layout)` in `RawBlock::new` (the only
        // constructor), with this same layout, and is freed exactly once: here, when the
        // block that owns it is dropped.
        unsafe { self.alloc.dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

// SAFETY: a `RawBlock` owns its allocation exclusively, like a `Box<[u8]>`, so moving it to
// another thread moves the only access. Freeing from a thread other than the allocating one
// is allowed by the `GlobalAlloc` contract (any of them may be the global allocator, under
// which a `Box` may be dropped on any thread), and
// `A: Sync` makes the shared `&A` usable from there.
unsafe impl<A: GlobalAlloc + Sync + ?Sized + 'static> Send for RawBlock<A> {}

/// Roles whose calls can be timed, per process.
pub const TIMED_ROLES: usize = 8;
/// Sub-buckets per power of two of the call-time histograms.
const SUB: usize = 16;
/// Buckets per histogram: values below [`SUB`] ticks one by one, then [`SUB`] per power of
/// two up to 2^48 ticks.
const BUCKETS: usize = SUB + (48 - 4) * SUB;
/// The timed operations, in histogram order.
pub const TIMED_OPS: [&str; 3] = ["alloc", "free", "realloc"];
const OP_ALLOC: usize = 0;
const OP_FREE: usize = 1;
const OP_REALLOC: usize = 2;
/// The thread-local slot of an untimed thread.
const UNTIMED: u8 = u8::MAX;

/// One role's histograms: per operation, the count of calls per bucket of ticks.
struct RoleTimes([[AtomicU64; BUCKETS]; 3]);

impl RoleTimes {
    const fn new() -> RoleTimes {
        RoleTimes([const { [const { AtomicU64::new(0) }; BUCKETS] }; 3])
    }
}

static TIMES: [RoleTimes; TIMED_ROLES] = [const { RoleTimes::new() }; TIMED_ROLES];
/// The role of each slot, in the order threads claimed them.
static TIMED_NAMES: Mutex<[Option<&'static str>; TIMED_ROLES]> = Mutex::new([None; TIMED_ROLES]);

thread_local! {
    static TIMED_SLOT: Cell<u8> = const { Cell::new(UNTIMED) };
}

/// The bucket of `ticks`: exact below [`SUB`], then [`SUB`] per power of two.
#[inline(always)]
fn bucket(ticks: u64) -> usize {
    if ticks < SUB as u64 {
        return ticks as usize;
    }
    let exp = 63 - ticks.leading_zeros() as usize; // ≥ 4
    let sub = ((ticks >> (exp - 4)) & (SUB as u64 - 1)) as usize;
    (SUB + (exp - 4) * SUB + sub).min(BUCKETS - 1)
}

/// The smallest value of bucket `b` and the first value past it, in ticks.
fn bucket_bounds(b: usize) -> (u64, u64) {
    if b < SUB {
        return (b as u64, b as u64 + 1);
    }
    let exp = (b - SUB) / SUB + 4;
    let sub = ((b - SUB) % SUB) as u64;
    let width = 1u64 << (exp - 4);
    let lo = (1u64 << exp) + sub * width;
    (lo, lo + width)
}

/// The time stamp counter (x86-64), else nanoseconds of a monotonic clock.
#[inline(always)]
fn stamp() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `rdtsc` exists on every x86-64 CPU and only reads the counter.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_nanos() as u64
    }
}

/// Whether [`call_times`] needs the caller's ticks-to-nanoseconds factor (the time stamp
/// counter) or counts nanoseconds already.
pub const TIMED_IN_TSC_TICKS: bool = cfg!(target_arch = "x86_64");

/// Whether timed threads are timed now ([`set_timing`]).
static TIMING: AtomicBool = AtomicBool::new(true);

/// Switches the timing of every timed thread on or off (on at start): the adaptive
/// router times the cold roles during the warm-up only.
pub fn set_timing(on: bool) {
    TIMING.store(on, Ordering::Relaxed);
}

/// Runs `f`, timing it into `op` of the calling thread's role if the thread is timed.
#[inline(always)]
fn timed<R>(op: usize, f: impl FnOnce() -> R) -> R {
    let slot = TIMED_SLOT.try_with(Cell::get).unwrap_or(UNTIMED);
    if slot == UNTIMED || !TIMING.load(Ordering::Relaxed) {
        return f();
    }
    let t0 = stamp();
    let r = f();
    let ticks = stamp().wrapping_sub(t0);
    TIMES[slot as usize].0[op][bucket(ticks)].fetch_add(1, Ordering::Relaxed);
    r
}

/// Times every later allocator call of the calling thread under `role`
/// (`feed_history`, …). Threads of the same role share its histograms. Returns `false`
/// (and times nothing) when [`TIMED_ROLES`] other roles already have slots. Takes a
/// lock: call it once, when a cold thread starts; never on a hot thread.
pub fn time_this_thread(role: &'static str) -> bool {
    let mut names = TIMED_NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let slot = match names.iter().position(|n| *n == Some(role)) {
        Some(i) => i,
        None => match names.iter().position(Option::is_none) {
            Some(i) => {
                names[i] = Some(role);
                i
            }
            None => return false,
        },
    };
    TIMED_SLOT.with(|s| s.set(slot as u8));
    true
}

/// Runs `f` with the calling thread's allocator calls untimed: a call whose allocator
/// is not its role's (the routing allocator's per-type handles) must not count as
/// its role's evidence. No allocation, no lock.
#[inline(always)]
pub fn without_timing<R>(f: impl FnOnce() -> R) -> R {
    let before = TIMED_SLOT.try_with(|s| s.replace(UNTIMED)).ok();
    let v = f();
    if let Some(b) = before {
        let _ = TIMED_SLOT.try_with(|s| s.set(b));
    }
    v
}

/// Stops timing the calling thread's allocator calls (what it recorded stays).
pub fn untime_this_thread() {
    let _ = TIMED_SLOT.try_with(|s| s.set(UNTIMED));
}

/// Allocator call times of one role and operation, nanoseconds; each percentile is the
/// middle of its bucket (within 6.25%), the maximum its bucket's upper end.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CallTimes {
    /// Calls timed.
    pub count: u64,
    /// Median.
    pub p50_ns: f64,
    /// 90th percentile.
    pub p90_ns: f64,
    /// 99th percentile.
    pub p99_ns: f64,
    /// 99.9th percentile.
    pub p99_9_ns: f64,
    /// The longest call.
    pub max_ns: f64,
    /// The mean, from the buckets' middles (within 6.25%).
    #[serde(default)]
    pub mean_ns: f64,
}

/// [`CallTimes`] of one histogram's bucket counts, with `ns_per_tick` nanoseconds per tick.
fn times_of(counts: &[u64], ns_per_tick: f64) -> CallTimes {
    let count: u64 = counts.iter().sum();
    let mid = |b: usize| {
        let (lo, hi) = bucket_bounds(b);
        (lo + hi - 1) as f64 / 2.0 * ns_per_tick
    };
    let at = |q: f64| {
        let rank = ((count as f64 * q).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, &c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return mid(b);
            }
        }
        0.0
    };
    let max = counts
        .iter()
        .rposition(|&c| c > 0)
        .map_or(0.0, |b| bucket_bounds(b).1 as f64 * ns_per_tick);
    let sum: f64 = counts
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(b, &c)| c as f64 * mid(b))
        .sum();
    CallTimes {
        count,
        p50_ns: at(0.5),
        p90_ns: at(0.9),
        p99_ns: at(0.99),
        p99_9_ns: at(0.999),
        max_ns: max,
        mean_ns: if count == 0 { 0.0 } else { sum / count as f64 },
    }
}

/// The timed calls' histograms at one moment, per role and operation: two snapshots
/// give the calls between them ([`TimedSnapshot::since`]). Allocates: cold threads.
#[derive(Clone, Debug, Default)]
pub struct TimedSnapshot {
    roles: Vec<(&'static str, Vec<[u64; BUCKETS]>)>,
}

impl TimedSnapshot {
    /// The histograms now.
    pub fn take() -> TimedSnapshot {
        let names = *TIMED_NAMES.lock().unwrap_or_else(|e| e.into_inner());
        let roles = names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((i, (*n)?)))
            .map(|(i, role)| {
                let ops = (0..TIMED_OPS.len())
                    .map(|op| {
                        let mut h = [0u64; BUCKETS];
                        for (b, c) in TIMES[i].0[op].iter().enumerate() {
                            h[b] = c.load(Ordering::Relaxed);
                        }
                        h
                    })
                    .collect();
                (role, ops)
            })
            .collect();
        TimedSnapshot { roles }
    }

    /// The calls after `earlier` up to this snapshot.
    pub fn since(&self, earlier: &TimedSnapshot) -> TimedSnapshot {
        let roles = self
            .roles
            .iter()
            .map(|(role, ops)| {
                let before = earlier.roles.iter().find(|(r, _)| r == role);
                let ops = ops
                    .iter()
                    .enumerate()
                    .map(|(op, h)| {
                        let mut d = *h;
                        if let Some((_, b)) = before {
                            for (x, y) in d.iter_mut().zip(b[op].iter()) {
                                *x = x.saturating_sub(*y);
                            }
                        }
                        d
                    })
                    .collect();
                (*role, ops)
            })
            .collect();
        TimedSnapshot { roles }
    }

    /// Adds `other`'s calls of `role` to these.
    pub fn add_role(&mut self, other: &TimedSnapshot, role: &str) {
        for (role, ops) in other.roles.iter().filter(|(r, _)| *r == role) {
            match self.roles.iter_mut().find(|(r, _)| r == role) {
                Some((_, mine)) => {
                    for (m, o) in mine.iter_mut().zip(ops) {
                        for (x, y) in m.iter_mut().zip(o.iter()) {
                            *x += y;
                        }
                    }
                }
                None => self.roles.push((role, ops.clone())),
            }
        }
    }

    /// The times of `role`'s `op` (one of [`TIMED_OPS`]) in these calls, with
    /// `ns_per_tick` as in [`call_times`].
    pub fn times(&self, role: &str, op: &str, ns_per_tick: f64) -> CallTimes {
        let factor = if TIMED_IN_TSC_TICKS { ns_per_tick } else { 1.0 };
        let Some(op) = TIMED_OPS.iter().position(|o| *o == op) else {
            return CallTimes::default();
        };
        self.roles
            .iter()
            .find(|(r, _)| *r == role)
            .map_or_else(CallTimes::default, |(_, ops)| times_of(&ops[op], factor))
    }
}

/// The timed calls so far, per role and operation (`alloc`, `free`, `realloc`; those with
/// calls only). `ns_per_tick` converts the time stamp counter's ticks (the clock's
/// `ns_per_raw` where it reads the TSC; ignored where [`TIMED_IN_TSC_TICKS`] is false).
/// Allocates the map: cold threads.
pub fn call_times(ns_per_tick: f64) -> BTreeMap<String, BTreeMap<String, CallTimes>> {
    let snap = TimedSnapshot::take();
    snap.roles
        .iter()
        .map(|(role, _)| {
            let ops = TIMED_OPS
                .iter()
                .map(|op| (op.to_string(), snap.times(role, op, ns_per_tick)))
                .filter(|(_, t)| t.count > 0)
                .collect();
            (role.to_string(), ops)
        })
        .collect()
}

/// A [`GlobalAlloc`] that forwards to `A` and counts per thread.
///
/// # Examples
///
/// ```
/// use common::alloc::{thread_counts, CountingAlloc};
/// use std::alloc::{GlobalAlloc, Layout, System};
///
/// static COUNTED: CountingAlloc<System> = CountingAlloc::new(System, "system");
/// let before = thread_counts();
/// let layout = Layout::from_size_align(32, 8).unwrap();
/// // SAFETY: layout has non-zero size; the pointer is freed with the same layout.
/// unsafe {
///     let p = COUNTED.alloc(layout);
///     COUNTED.dealloc(p, layout);
/// }
/// let d = thread_counts().since(&before);
/// assert_eq!((d.allocs, d.frees, d.bytes), (1, 1, 32));
/// ```
pub struct CountingAlloc<A> {
    inner: A,
    name: &'static str,
}

impl<A> CountingAlloc<A> {
    /// Wraps `inner`, which `name` names in reports (`system`, `jemalloc`, …).
    pub const fn new(inner: A, name: &'static str) -> CountingAlloc<A> {
        CountingAlloc { inner, name }
    }

    /// The wrapped allocator's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The wrapped allocator.
    pub fn inner(&self) -> &A {
        &self.inner
    }
}

// SAFETY: every method forwards to `A`, which upholds the `GlobalAlloc` contract, with
// the caller's arguments unchanged; the counting touches only a thread-local `Cell`,
// the timing a thread-local `Cell` and static atomics, and neither allocates or unwinds.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAlloc<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump(|c| {
            c.allocs += 1;
            c.bytes += layout.size() as u64;
        });
        // SAFETY: the caller upholds `alloc`'s contract, passed on unchanged.
        timed(OP_ALLOC, || unsafe { self.inner.alloc(layout) })
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump(|c| {
            c.allocs += 1;
            c.bytes += layout.size() as u64;
        });
        // SAFETY: the caller upholds `alloc_zeroed`'s contract, passed on unchanged.
        timed(OP_ALLOC, || unsafe { self.inner.alloc_zeroed(layout) })
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        bump(|c| c.frees += 1);
        // SAFETY: the caller upholds `dealloc`'s contract, passed on unchanged.
        timed(OP_FREE, || unsafe { self.inner.dealloc(ptr, layout) })
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump(|c| {
            c.reallocs += 1;
            c.bytes += (new_size as u64).saturating_sub(layout.size() as u64);
        });
        // SAFETY: the caller upholds `realloc`'s contract, passed on unchanged.
        timed(OP_REALLOC, || unsafe {
            self.inner.realloc(ptr, layout, new_size)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    static A: CountingAlloc<System> = CountingAlloc::new(System, "system");

    #[test]
    fn each_call_is_counted_once_on_its_own_thread() {
        let layout = Layout::from_size_align(100, 8).unwrap();
        let before = thread_counts();
        // SAFETY: non-zero size; freed with the same layout after a realloc to 300 bytes.
        unsafe {
            let p = A.alloc(layout);
            assert!(!p.is_null());
            let p = A.realloc(p, layout, 300);
            A.dealloc(p, Layout::from_size_align(300, 8).unwrap());
            let z = A.alloc_zeroed(layout);
            A.dealloc(z, layout);
        }
        let d = thread_counts().since(&before);
        assert_eq!(
            d,
            AllocCounts {
                allocs: 2,
                frees: 2,
                reallocs: 1,
                bytes: 100 + 200 + 100
            }
        );
        // Another thread's calls do not show up here.
        let mid = thread_counts();
        std::thread::spawn(move || {
            // SAFETY: as above.
            unsafe { A.dealloc(A.alloc(layout), layout) };
            assert_eq!(thread_counts().allocs, 1);
        })
        .join()
        .unwrap();
        assert_eq!(thread_counts().since(&mid), AllocCounts::default());
    }

    #[test]
    fn raw_blocks_are_counted_once_and_freed_on_any_thread() {
        let before = thread_counts();
        let block = RawBlock::new(&A, Layout::from_size_align(200, 16).unwrap());
        assert_eq!(block.as_ptr() as usize % 16, 0);
        let d = thread_counts().since(&before);
        assert_eq!((d.allocs, d.frees, d.bytes), (1, 0, 200));
        std::thread::spawn(move || {
            let before = thread_counts();
            drop(block);
            assert_eq!(thread_counts().since(&before).frees, 1);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn buckets_cover_every_value_within_a_sixteenth() {
        for v in (0..100_000u64).chain([1 << 20, (1 << 40) + 12_345, u64::MAX / 2]) {
            let b = bucket(v);
            let (lo, hi) = bucket_bounds(b);
            if b < BUCKETS - 1 {
                assert!(lo <= v && v < hi, "{v} in bucket {b} = {lo}..{hi}");
                assert!((hi - lo) * 16 <= lo.max(16), "{v}: {lo}..{hi} too wide");
            }
            if v > 0 {
                assert!(bucket(v - 1) <= b, "buckets are ordered");
            }
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn timed_threads_record_their_calls_and_untimed_ones_do_not() {
        let layout = Layout::from_size_align(48, 8).unwrap();
        // An untimed thread: nothing for its would-be role.
        std::thread::spawn(move || {
            // SAFETY: non-zero size; freed with the same layout.
            unsafe { A.dealloc(A.alloc(layout), layout) };
        })
        .join()
        .unwrap();
        assert!(!call_times(1.0).contains_key("test_untimed"));
        std::thread::spawn(move || {
            assert!(time_this_thread("test_timed"));
            for _ in 0..1000 {
                // SAFETY: non-zero size; reallocated to 96 bytes, freed with that layout.
                unsafe {
                    let p = A.alloc(layout);
                    let p = A.realloc(p, layout, 96);
                    A.dealloc(p, Layout::from_size_align(96, 8).unwrap());
                }
            }
        })
        .join()
        .unwrap();
        let t = &call_times(1.0)["test_timed"];
        assert_eq!(t["alloc"].count, 1000);
        assert_eq!(t["free"].count, 1000);
        assert_eq!(t["realloc"].count, 1000);
        let a = t["alloc"];
        assert!(
            a.p50_ns > 0.0 && a.p50_ns <= a.p99_ns && a.p99_ns <= a.max_ns,
            "{a:?}"
        );
    }

    #[test]
    fn profile_publishes_each_role_from_its_own_thread() {
        let profile = std::sync::Arc::new(AllocProfile::new(&["a", "b"]));
        let p = std::sync::Arc::clone(&profile);
        let layout = Layout::from_size_align(8, 8).unwrap();
        std::thread::spawn(move || {
            // SAFETY: non-zero size; freed with the same layout.
            unsafe { A.dealloc(A.alloc(layout), layout) };
            p.publish(1);
            p.publish(7); // unknown role: ignored
        })
        .join()
        .unwrap();
        let snap = profile.snapshot();
        assert_eq!(snap["a"], AllocCounts::default(), "never published");
        assert_eq!(
            snap["b"],
            AllocCounts {
                allocs: 1,
                frees: 1,
                reallocs: 0,
                bytes: 8
            }
        );
    }
}
