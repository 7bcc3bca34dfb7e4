//! The global allocators a binary can choose, each with its name, version and
//! statistics behind a safe API: [`system`] (glibc malloc) always, and [`jemalloc`],
//! [`mimalloc`] and [`tcmalloc`] each behind the cargo feature of the same name.
//!
//! A binary declares its global allocator wrapped in [`CountingAlloc`] and passes
//! [`hooks`] of it to `feed::main_with` or `engine::main_with`; the hooks follow from
//! the wrapped type, so a binary cannot report another allocator's statistics.
//!
//! Statistics use two shared keys where the allocator can say them honestly, so that
//! [`crate::memory::fragmentation`] works across allocators:
//!
//! - `allocated`: bytes the program holds (allocated and not yet freed);
//! - `resident`: bytes of memory the allocator holds, used or not, counted as jemalloc
//!   counts its `resident`: an upper bound, since pages the allocator obtained but never
//!   touched are counted although the kernel has not backed them yet.
//!
//! Every other key is the allocator's own name for a figure. Values are bytes unless the
//! module says otherwise. Reading statistics takes locks inside the allocator, makes
//! system calls and allocates the map: call [`AllocatorHooks::stats`] from cold threads
//! only. Reading a version allocates its string.
//!
//! | allocator | `allocated` | `resident` | its own keys |
//! |---|---|---|---|
//! | system | `uordblks + hblkhd` | `arena + hblkhd` | `mallinfo2.*` |
//! | jemalloc | `stats.allocated` | `stats.resident` | `active`, `retained`, `mapped`, `metadata` |
//! | mimalloc | none | none | `current_commit`, `peak_commit`, `peak_rss`, `major_page_faults` |
//! | tcmalloc | `generic.current_allocated_bytes` | `generic.physical_memory_used` | `generic.*`, `tcmalloc.*` |
//!
//! Besides these figures of the moment, each allocator that counts how it gives memory
//! back to the kernel reports those counters, which only grow ([`COUNTERS`]):
//!
//! | allocator | counters |
//! |---|---|
//! | system | none: glibc counts no trims or `madvise` calls (its releasable top is `mallinfo2.keepcost`) |
//! | jemalloc | `dirty_npurge`, `dirty_nmadvise`, `dirty_purged` (pages), `muzzy_npurge`, `muzzy_nmadvise`, `muzzy_purged` (pages), over all arenas |
//! | mimalloc | `purge_calls`, `purged` (bytes), `reset_calls`, `reset` (bytes), `commit_calls`, `mmap_calls`, `arena_purges` |
//! | tcmalloc | `tcmalloc.num_released_total_bytes` |
//!
//! # Examples
//!
//! ```
//! use common::alloc::CountingAlloc;
//! use common::allocators::{hooks, system::System, Introspect};
//!
//! // In a binary this static carries `#[global_allocator]`.
//! static GLOBAL: CountingAlloc<System> = CountingAlloc::new(System, System::NAME);
//!
//! let hooks = hooks(&GLOBAL);
//! assert_eq!(hooks.name, "system");
//! let stats = (hooks.stats)();
//! assert!(stats["resident"] >= stats["allocated"]);
//! ```

use crate::alloc::CountingAlloc;
use std::collections::BTreeMap;

/// How a binary's global allocator is named and inspected.
#[derive(Clone, Copy, Debug)]
pub struct AllocatorHooks {
    /// `system`, `jemalloc`, `mimalloc` or `tcmalloc`.
    pub name: &'static str,
    /// The allocator's version.
    pub version: fn() -> String,
    /// The allocator's statistics (see the [module documentation](self) for the keys),
    /// read on a cold thread.
    pub stats: fn() -> BTreeMap<String, u64>,
}

/// Says on stderr (`PROCESS: note: …`) that the configuration's `[routing]` section,
/// if `routing_set`, does not apply when `hooks` is not the routing allocator's: a
/// process with one global allocator has nothing to route. Start-up only.
pub fn note_unrouted(process: &str, hooks: &AllocatorHooks, routing_set: bool) {
    if routing_set && hooks.name != "hybrid" {
        eprintln!(
            "{process}: note: [routing] applies to the routing allocator only (the `pipeline` binary); this process runs on {} alone",
            hooks.name
        );
    }
}

/// An allocator whose name, version and statistics this module can read.
pub trait Introspect {
    /// The name reports use for it.
    const NAME: &'static str;
    /// Its version.
    fn version() -> String;
    /// Its statistics (cold threads only).
    fn stats() -> BTreeMap<String, u64>;
}

/// The hooks of the allocator `global` wraps, named as `global` is named.
pub fn hooks<A: Introspect>(global: &CountingAlloc<A>) -> AllocatorHooks {
    AllocatorHooks {
        name: global.name(),
        version: A::version,
        stats: A::stats,
    }
}

/// The statistics keys, over all allocators, that count events since the process
/// started (they only grow): how often and how much each allocator gave memory back to
/// the kernel. [`crate::mechanisms`] reports their growth over a measured window.
pub const COUNTERS: [&str; 14] = [
    "dirty_npurge",
    "dirty_nmadvise",
    "dirty_purged",
    "muzzy_npurge",
    "muzzy_nmadvise",
    "muzzy_purged",
    "purge_calls",
    "purged",
    "reset_calls",
    "reset",
    "commit_calls",
    "mmap_calls",
    "arena_purges",
    "tcmalloc.num_released_total_bytes",
];

/// Collects `(key, value)` pairs into a statistics map.
fn to_map<'a>(pairs: impl IntoIterator<Item = (&'a str, u64)>) -> BTreeMap<String, u64> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

pub mod system {
    //! The C library's `malloc` (Rust's [`System`]), with glibc's `mallinfo2` figures.
    //!
    //! Keys (bytes, except the two counts):
    //!
    //! - `allocated` = `uordblks + hblkhd`: bytes in use in the arenas plus the chunks
    //!   glibc maps on their own (requests of at least `M_MMAP_THRESHOLD`, 128 KiB at
    //!   first). `uordblks` alone misses those large live blocks.
    //! - `resident` = `arena + hblkhd`: bytes glibc has obtained from the kernel for its
    //!   arenas (`sbrk` and arena `mmap`s) plus the separately mapped chunks.
    //! - `mallinfo2.arena`, `.uordblks`, `.fordblks` (free bytes in the arenas),
    //!   `.keepcost` (releasable top of the main arena), `.hblkhd`, and the counts
    //!   `.ordblks` (free chunks) and `.hblks` (mapped chunks).
    //!
    //! Outside glibc the map is empty and the version `unknown`. `mallinfo2` locks each
    //! arena in turn while it sums it up.

    use super::{to_map, Introspect};
    pub use std::alloc::System;
    use std::collections::BTreeMap;

    impl Introspect for System {
        const NAME: &'static str = "system";
        fn version() -> String {
            version()
        }
        fn stats() -> BTreeMap<String, u64> {
            stats()
        }
    }

    /// glibc's version (`2.36`), or `unknown` outside glibc.
    pub fn version() -> String {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            // SAFETY: `gnu_get_libc_version` has no preconditions and returns a pointer
            // to a NUL-terminated string in glibc's read-only data, valid for the whole
            // life of the process; `CStr::from_ptr` only reads up to that NUL.
            let v = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
            v.to_string_lossy().into_owned()
        }
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        {
            "unknown".to_string()
        }
    }

    /// glibc's heap figures; see the [module documentation](self) for the keys.
    pub fn stats() -> BTreeMap<String, u64> {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            // SAFETY: `mallinfo2` (glibc 2.33 and later) takes no arguments, reads
            // glibc's arena statistics under the arenas' own locks, and returns a plain
            // struct by value.
            let m = unsafe { libc::mallinfo2() };
            let b = |v: usize| v as u64;
            to_map([
                ("allocated", b(m.uordblks) + b(m.hblkhd)),
                ("resident", b(m.arena) + b(m.hblkhd)),
                ("mallinfo2.arena", b(m.arena)),
                ("mallinfo2.ordblks", b(m.ordblks)),
                ("mallinfo2.hblks", b(m.hblks)),
                ("mallinfo2.hblkhd", b(m.hblkhd)),
                ("mallinfo2.uordblks", b(m.uordblks)),
                ("mallinfo2.fordblks", b(m.fordblks)),
                ("mallinfo2.keepcost", b(m.keepcost)),
            ])
        }
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        {
            BTreeMap::new()
        }
    }

    #[cfg(all(test, target_os = "linux", target_env = "gnu"))]
    mod tests {
        use super::*;
        use std::alloc::{GlobalAlloc, Layout};

        #[test]
        fn version_is_numeric() {
            let v = version();
            let parts: Vec<u32> = v.split('.').map(|p| p.parse().unwrap()).collect();
            assert!(parts.len() >= 2 && parts[0] == 2 && parts[1] >= 33, "{v}");
        }

        /// A large block (glibc maps it on its own) and many small ones (from an arena)
        /// both count in `allocated`. Other tests allocate through `System` at the same
        /// time, so a measurement they disturb is retried.
        #[test]
        fn allocated_counts_large_and_small_blocks() {
            const LARGE: usize = 10 << 20;
            const SMALL: usize = 256;
            const SMALL_N: usize = 16 * 1024; // 4 MiB in 256-byte blocks
            let grew =
                |measure: &dyn Fn() -> u64, expected: u64| (0..20).any(|_| measure() >= expected);

            let large = Layout::from_size_align(LARGE, 16).unwrap();
            let during_large = || {
                let before = stats();
                // SAFETY: non-zero size; freed below with the same layout.
                let p = unsafe { System.alloc(large) };
                assert!(!p.is_null());
                let during = stats();
                // SAFETY: `p` came from `System.alloc(large)` and is freed once.
                unsafe { System.dealloc(p, large) };
                assert_eq!(
                    during["allocated"],
                    during["mallinfo2.uordblks"] + during["mallinfo2.hblkhd"]
                );
                assert!(during["resident"] >= during["allocated"], "{during:?}");
                during["allocated"].saturating_sub(before["allocated"])
            };
            assert!(
                grew(&during_large, LARGE as u64),
                "a 10 MiB block is not counted"
            );

            let small = Layout::from_size_align(SMALL, 16).unwrap();
            let during_small = || {
                let before = stats();
                let ps: Vec<*mut u8> = (0..SMALL_N)
                    // SAFETY: non-zero size; each pointer is freed below with the same layout.
                    .map(|_| unsafe { System.alloc(small) })
                    .collect();
                let during = stats();
                for p in ps {
                    assert!(!p.is_null());
                    // SAFETY: `p` came from `System.alloc(small)` and is freed once.
                    unsafe { System.dealloc(p, small) };
                }
                during["mallinfo2.uordblks"].saturating_sub(before["mallinfo2.uordblks"])
            };
            assert!(
                grew(&during_small, (SMALL * SMALL_N) as u64),
                "4 MiB of small blocks are not counted"
            );
        }
    }
}

#[cfg(feature = "jemalloc")]
pub mod jemalloc {
    //! jemalloc ([`Jemalloc`], tikv-jemallocator), with statistics through
    //! tikv-jemalloc-ctl.
    //!
    //! Keys, as jemalloc's `stats.*`: `allocated` (bytes the program holds), `active`
    //! (bytes in pages with allocations), `resident` (bytes in resident data and
    //! metadata pages, an upper bound), `retained` (virtual memory kept unmapped for
    //! reuse), `mapped` (bytes in active extents) and `metadata`; and, summed over all
    //! arenas (`stats.arenas.<MALLCTL_ARENAS_ALL>.*`), the purge counters: `dirty_npurge`
    //! and `muzzy_npurge` (purge sweeps), `dirty_nmadvise` and `muzzy_nmadvise`
    //! (`madvise` calls), `dirty_purged` and `muzzy_purged` (pages purged).
    //!
    //! Reading them first advances jemalloc's epoch (which refreshes the statistics,
    //! under a lock inside jemalloc).

    use super::Introspect;
    use std::collections::BTreeMap;
    pub use tikv_jemallocator::Jemalloc;

    impl Introspect for Jemalloc {
        const NAME: &'static str = "jemalloc";
        fn version() -> String {
            version()
        }
        fn stats() -> BTreeMap<String, u64> {
            stats()
        }
    }

    /// The jemalloc version (`5.3.0`, without the git suffix of its full version string).
    pub fn version() -> String {
        tikv_jemalloc_ctl::version::read()
            .map(|v| {
                v.trim_end_matches('\0')
                    .split('-')
                    .next()
                    .unwrap_or(v)
                    .to_string()
            })
            .unwrap_or_else(|_| "unknown".into())
    }

    /// allocated, active, resident, retained, mapped and metadata bytes.
    pub fn stats() -> BTreeMap<String, u64> {
        use tikv_jemalloc_ctl::{epoch, stats};
        let mut m = BTreeMap::new();
        if epoch::advance().is_err() {
            return m;
        }
        type Read = fn() -> tikv_jemalloc_ctl::Result<usize>;
        let reads: [(&str, Read); 6] = [
            ("allocated", stats::allocated::read),
            ("active", stats::active::read),
            ("resident", stats::resident::read),
            ("retained", stats::retained::read),
            ("mapped", stats::mapped::read),
            ("metadata", stats::metadata::read),
        ];
        for (name, read) in reads {
            if let Ok(v) = read() {
                m.insert(name.to_string(), v as u64);
            }
        }
        // `MALLCTL_ARENAS_ALL` (4096) names the sum over all arenas; these are
        // `uint64_t` in jemalloc 5.
        let purges: [(&str, &[u8]); 6] = [
            ("dirty_npurge", b"stats.arenas.4096.dirty_npurge\0"),
            ("dirty_nmadvise", b"stats.arenas.4096.dirty_nmadvise\0"),
            ("dirty_purged", b"stats.arenas.4096.dirty_purged\0"),
            ("muzzy_npurge", b"stats.arenas.4096.muzzy_npurge\0"),
            ("muzzy_nmadvise", b"stats.arenas.4096.muzzy_nmadvise\0"),
            ("muzzy_purged", b"stats.arenas.4096.muzzy_purged\0"),
        ];
        for (name, key) in purges {
            // SAFETY: each key is a NUL-terminated jemalloc statistic of type
            // `uint64_t` (jemalloc 5's `stats.arenas.<i>.*_npurge`, `*_nmadvise` and
            // `*_purged`), so reading it as a `u64` reads exactly its value.
            if let Ok(v) = unsafe { tikv_jemalloc_ctl::raw::read::<u64>(key) } {
                m.insert(name.to_string(), v);
            }
        }
        m
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::alloc::{GlobalAlloc, Layout};

        #[test]
        fn version_is_numeric() {
            let v = version();
            let parts: Vec<u32> = v.split('.').map(|p| p.parse().unwrap()).collect();
            assert_eq!(parts.len(), 3, "{v}");
            assert_eq!(parts[0], 5, "{v}");
        }

        /// Only this test allocates through jemalloc in this process, so the growth is exact.
        #[test]
        fn allocated_grows_by_a_block_and_the_figures_are_ordered() {
            const SIZE: usize = 10 << 20;
            let layout = Layout::from_size_align(SIZE, 64).unwrap();
            let before = stats();
            // SAFETY: non-zero size; freed below with the same layout.
            let p = unsafe { Jemalloc.alloc(layout) };
            assert!(!p.is_null());
            let during = stats();
            // SAFETY: `p` came from `Jemalloc.alloc(layout)` and is freed once.
            unsafe { Jemalloc.dealloc(p, layout) };
            let after = stats();
            assert_eq!(during.len(), 12, "{during:?}");
            // Other tests of this binary use jemalloc at the same time (reading the
            // statistics allocates a little): allow them 1 MiB either way.
            const SLACK: u64 = 1 << 20;
            assert!(
                during["allocated"] + SLACK >= before["allocated"] + SIZE as u64,
                "{before:?} → {during:?}"
            );
            assert!(after["allocated"] + SIZE as u64 <= during["allocated"] + SLACK);
            assert!(during["active"] >= during["allocated"], "{during:?}");
            assert!(during["resident"] >= during["active"], "{during:?}");
            assert!(during["mapped"] >= during["active"], "{during:?}");
        }

        /// Run alone by `freed_memory_is_purged_and_counted` in a child process.
        #[test]
        #[ignore = "run by freed_memory_is_purged_and_counted"]
        fn print_purge_counters() {
            const SIZE: usize = 64 << 20;
            let layout = Layout::from_size_align(SIZE, 64).unwrap();
            let before = stats();
            for _ in 0..4 {
                // SAFETY: non-zero size; every page written is inside the block, which
                // is freed at once with the same layout.
                unsafe {
                    let p = Jemalloc.alloc(layout);
                    assert!(!p.is_null());
                    for i in (0..SIZE).step_by(4096) {
                        p.add(i).write_volatile(1);
                    }
                    Jemalloc.dealloc(p, layout);
                }
            }
            let after = stats();
            let grew = |k: &str| after[k] - before[k];
            println!(
                "npurge={} nmadvise={} purged={}",
                grew("dirty_npurge") + grew("muzzy_npurge"),
                grew("dirty_nmadvise") + grew("muzzy_nmadvise"),
                grew("dirty_purged") + grew("muzzy_purged")
            );
        }

        /// With decay switched off (purge at once), 4 × 64 MiB freed are purged: the
        /// counters see a `madvise` call per block and at least those pages.
        #[test]
        fn freed_memory_is_purged_and_counted() {
            let (stdout, fields) = crate::allocators::tests::child_report(
                "allocators::jemalloc::tests::print_purge_counters",
                ("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0"),
                "npurge",
            );
            // jemalloc's page on x86-64 Linux. Decay 0 purges at each free, outside the
            // decay sweeps that `npurge` counts: only the madvise calls and the pages
            // show it.
            let page = 4096;
            assert!(fields[1] >= 4, "{stdout}");
            assert!(fields[2] * page >= 4 * (64 << 20), "{stdout}");
        }
    }
}

#[cfg(feature = "mimalloc")]
pub mod mimalloc {
    //! mimalloc ([`MiMalloc`]), with the process figures mimalloc keeps.
    //!
    //! Keys, from `mi_process_info`: `current_commit` and `peak_commit` (bytes mimalloc
    //! has committed from the kernel, now and at most), `peak_rss` (the process's
    //! largest resident set, from `getrusage`) and `major_page_faults` (the process's,
    //! from `getrusage`; mimalloc calls them `page_faults`). From `mi_stats_get_json`,
    //! the counters of its calls to the kernel, which it keeps in every build:
    //! `purge_calls` and `purged` (bytes decommitted or reset when purging),
    //! `reset_calls` and `reset` (bytes), `commit_calls`, `mmap_calls` and
    //! `arena_purges`.
    //!
    //! mimalloc cannot say `allocated` here: it counts allocated bytes (`malloc_normal`,
    //! `malloc_huge` in `mi_stats_get_json`) only when built with `MI_STAT` ≥ 1, and
    //! libmimalloc-sys builds it without (`MI_DEBUG=0`, hence `MI_STAT=0`), so those
    //! figures stay zero; `mi_heap_visit_blocks` would walk every block of one thread's
    //! heap, neither cheap nor safe for other threads' heaps. Nor `resident`: on Linux
    //! the `current_rss` of `mi_process_info` is only `current_commit` again, and the
    //! committed bytes include arenas committed ahead of use, so they are not resident
    //! memory. Fragmentation is therefore not reported for mimalloc; the process's own
    //! RSS is sampled separately ([`crate::memory`]).

    use super::{to_map, Introspect};
    pub use ::mimalloc::MiMalloc;
    use std::collections::BTreeMap;

    impl Introspect for MiMalloc {
        const NAME: &'static str = "mimalloc";
        fn version() -> String {
            version()
        }
        fn stats() -> BTreeMap<String, u64> {
            stats()
        }
    }

    /// mimalloc's version as `major.minor.patch`.
    pub fn version() -> String {
        // SAFETY: `mi_version` takes no arguments, has no preconditions and only returns an int.
        let v = unsafe { libmimalloc_sys::mi_version() };
        // Encoded as major, then two digits of minor and two of patch (30302 is 3.3.2).
        format!("{}.{}.{}", v / 10_000, (v / 100) % 100, v % 100)
    }

    /// Committed bytes (current, peak), peak RSS and major page faults.
    pub fn stats() -> BTreeMap<String, u64> {
        let mut v = [0usize; 8];
        let [elapsed, user, system, rss, peak_rss, commit, peak_commit, faults] = &mut v;
        // SAFETY: every argument is a valid, distinct, writable `usize` on this stack
        // frame; `mi_process_info` only writes through them (reading atomics and
        // calling `getrusage`) and keeps no pointer after returning.
        unsafe {
            libmimalloc_sys::mi_process_info(
                elapsed,
                user,
                system,
                rss,
                peak_rss,
                commit,
                peak_commit,
                faults,
            )
        };
        let [_, _, _, _, peak_rss, commit, peak_commit, faults] = v.map(|x| x as u64);
        let mut m = to_map([
            ("current_commit", commit),
            ("peak_commit", peak_commit),
            ("peak_rss", peak_rss),
            ("major_page_faults", faults),
        ]);
        m.extend(os_counters());
        m
    }

    /// The counters mimalloc keeps of its calls to the kernel whatever its `MI_STAT`
    /// (they are the process's, updated atomically): purges, resets, commits and maps,
    /// from `mi_stats_get_json`. Empty if the JSON cannot be had.
    fn os_counters() -> BTreeMap<String, u64> {
        const KEYS: [&str; 7] = [
            "purge_calls",
            "purged",
            "reset_calls",
            "reset",
            "commit_calls",
            "mmap_calls",
            "arena_purges",
        ];
        // The JSON with every size bin is some 20 KB; a larger buffer than it needs.
        let mut buf = vec![0u8; 256 << 10];
        // SAFETY: `buf` is a writable buffer of exactly `buf.len()` bytes that outlives
        // the call; mimalloc writes at most that many bytes into it (zeroing it first,
        // NUL-terminated) and returns it, or NULL if it did not fit, keeping no pointer.
        let out = unsafe { libmimalloc_sys::mi_stats_get_json(buf.len(), buf.as_mut_ptr().cast()) };
        if out.is_null() {
            return BTreeMap::new();
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&buf[..end]) else {
            return BTreeMap::new();
        };
        KEYS.iter()
            .filter_map(|&k| Some((k.to_string(), json.get(k)?.as_u64()?)))
            .collect()
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::alloc::{GlobalAlloc, Layout};

        #[test]
        fn version_is_numeric() {
            let v = version();
            let parts: Vec<u32> = v.split('.').map(|p| p.parse().unwrap()).collect();
            assert_eq!(parts.len(), 3, "{v}");
            assert!(
                (1..=9).contains(&parts[0]) && parts[1] < 100 && parts[2] < 100,
                "{v}"
            );
        }

        /// A block held and touched through mimalloc is committed and was resident.
        #[test]
        fn a_touched_block_is_committed_and_resident() {
            const SIZE: usize = 32 << 20;
            let layout = Layout::from_size_align(SIZE, 64).unwrap();
            // SAFETY: non-zero size; freed below with the same layout.
            let p = unsafe { MiMalloc.alloc(layout) };
            assert!(!p.is_null());
            for i in (0..SIZE).step_by(4096) {
                // SAFETY: `i < SIZE`, inside the block just allocated.
                unsafe { p.add(i).write_volatile(1) };
            }
            let during = stats();
            // SAFETY: `p` came from `MiMalloc.alloc(layout)` and is freed once.
            unsafe { MiMalloc.dealloc(p, layout) };
            assert_eq!(during.len(), 11, "{during:?}");
            assert!(during["current_commit"] >= SIZE as u64, "{during:?}");
            assert!(during["mmap_calls"] >= 1, "{during:?}");
            assert!(
                during["peak_commit"] >= during["current_commit"],
                "{during:?}"
            );
            assert!(during["peak_rss"] >= SIZE as u64, "{during:?}");
        }

        /// Run alone by `freed_memory_is_purged_and_counted` in a child process.
        #[test]
        #[ignore = "run by freed_memory_is_purged_and_counted"]
        fn print_purge_counters() {
            const SIZE: usize = 64 << 20;
            let layout = Layout::from_size_align(SIZE, 64).unwrap();
            let before = stats();
            // SAFETY: non-zero size; every page written is inside the block, which is
            // freed at once with the same layout.
            unsafe {
                let p = MiMalloc.alloc(layout);
                assert!(!p.is_null());
                for i in (0..SIZE).step_by(4096) {
                    p.add(i).write_volatile(1);
                }
                MiMalloc.dealloc(p, layout);
            }
            // Purging may wait for the next allocation or free to look at the delay.
            for _ in 0..100 {
                std::thread::sleep(std::time::Duration::from_millis(2));
                let small = Layout::from_size_align(64, 8).unwrap();
                // SAFETY: non-zero size; freed at once with the same layout.
                unsafe { MiMalloc.dealloc(MiMalloc.alloc(small), small) };
            }
            // SAFETY: no arguments; asks mimalloc to purge what it may (`mi_collect`).
            unsafe { libmimalloc_sys::mi_collect(true) };
            let after = stats();
            let grew = |k: &str| after[k] - before[k];
            println!(
                "calls={} bytes={}",
                grew("purge_calls") + grew("reset_calls"),
                grew("purged") + grew("reset")
            );
        }

        /// With no purge delay, a 64 MiB block freed and collected is given back: the
        /// counters see the calls and at least the block's bytes.
        #[test]
        fn freed_memory_is_purged_and_counted() {
            let (stdout, fields) = crate::allocators::tests::child_report(
                "allocators::mimalloc::tests::print_purge_counters",
                ("MIMALLOC_PURGE_DELAY", "0"),
                "calls",
            );
            assert!(fields[0] >= 1, "{stdout}");
            assert!(fields[1] >= 64 << 20, "{stdout}");
        }
    }
}

#[cfg(all(feature = "jemalloc", feature = "mimalloc"))]
pub mod hybrid {
    //! The routing allocator [`Hybrid`] (hot threads on a mimalloc arena, everything
    //! else on jemalloc; [`crate::routed`]), named `hybrid`.
    //!
    //! Keys: jemalloc's (`allocated`, `resident` and the rest, for the cold side, where
    //! all but the hot threads' memory is), then mimalloc's, each prefixed `mimalloc.`
    //! (its figures are process-wide and include the hot arena's commit). The routes'
    //! own counts are [`crate::routed::Routed::stats`].

    use super::Introspect;
    pub use crate::routed::Hybrid;
    use std::collections::BTreeMap;

    impl Introspect for Hybrid {
        const NAME: &'static str = "hybrid";
        fn version() -> String {
            format!(
                "jemalloc {} + mimalloc {}",
                super::jemalloc::version(),
                super::mimalloc::version()
            )
        }
        fn stats() -> BTreeMap<String, u64> {
            let mut m = super::jemalloc::stats();
            m.extend(
                super::mimalloc::stats()
                    .into_iter()
                    .map(|(k, v)| (format!("mimalloc.{k}"), v)),
            );
            m
        }
    }
}

#[cfg(feature = "dhat")]
pub mod dhat {
    //! dhat-rs's profiling allocator (the system allocator with every allocation
    //! recorded with its backtrace, under a lock), named `dhat`: the global allocator of
    //! `pipeline-dhat`, which `lab profile` runs. No statistics of its own here (its
    //! figures are the profile it writes when its profiler ends).

    use super::Introspect;
    pub use ::dhat::Alloc;
    use std::collections::BTreeMap;

    impl Introspect for Alloc {
        const NAME: &'static str = "dhat";
        fn version() -> String {
            "dhat-rs 0.3 (over the system allocator)".to_string()
        }
        fn stats() -> BTreeMap<String, u64> {
            BTreeMap::new()
        }
    }
}

#[cfg(feature = "tcmalloc")]
pub mod tcmalloc {
    //! Google's tcmalloc ([`TCMalloc`], tcmalloc-better), with its numeric properties.
    //!
    //! Keys: `allocated` = `generic.current_allocated_bytes` (bytes the program holds),
    //! `resident` = `generic.physical_memory_used` (bytes of the page heap, caches and
    //! metadata backed by memory, less what tcmalloc has returned to the kernel), and
    //! the properties under their own names: `generic.heap_size`,
    //! `generic.virtual_memory_used`, `tcmalloc.pageheap_free_bytes`,
    //! `tcmalloc.pageheap_unmapped_bytes`, `tcmalloc.metadata_bytes`, the bytes free in
    //! each cache (`tcmalloc.cpu_free`, `.central_cache_free`, `.transfer_cache_free`,
    //! `.thread_cache_free`), `tcmalloc.external_fragmentation_bytes`, and
    //! `tcmalloc.per_cpu_caches_active` (1 or 0), and the counter
    //! `tcmalloc.num_released_total_bytes` (bytes released to the kernel so far).
    //!
    //! # Per-CPU caches
    //!
    //! tcmalloc's fast path uses per-CPU caches through the kernel's restartable
    //! sequences (rseq). glibc 2.35 and later registers rseq for every thread first, so
    //! tcmalloc falls back to slower caches unless the process starts with
    //! `GLIBC_TUNABLES=glibc.pthread.rseq=0`. Both states are measured, so every figure
    //! says which one it had: the statistics carry `tcmalloc.per_cpu_caches_active` and
    //! the version string ends in `per-CPU caches on` or `off`.
    //!
    //! The caches are switched on at start-up by a static initialiser in tcmalloc's
    //! `cpu_cache.cc`. Upstream tcmalloc always links that file; tcmalloc-better ships
    //! tcmalloc as a static library, from which the linker takes `cpu_cache.o` only if
    //! something refers to a symbol in it, and nothing in tcmalloc-better does: its
    //! binaries run without per-CPU caches whatever `GLIBC_TUNABLES` says.
    //! [`per_cpu_caches_active`] asks `cpu_cache.cc` itself, so every binary that reads
    //! these statistics or the version links it and starts as upstream tcmalloc does
    //! (checked by the test `per_cpu_caches_follow_glibc_rseq_tunable`).
    //!
    //! Each property read takes tcmalloc's page-heap lock and most sum up the per-CPU
    //! caches: a few microseconds each, cold threads only.

    use super::{to_map, Introspect};
    use std::collections::BTreeMap;
    use std::ffi::c_char;
    pub use tcmalloc_better::TCMalloc;

    extern "C" {
        /// tcmalloc's `MallocExtension::GetNumericProperty` entry point
        /// (`tcmalloc/tcmalloc.cc`), which tcmalloc-better does not wrap. It is in the
        /// static library libtcmalloc-sys builds for tcmalloc-better, in every
        /// configuration of its features. The name is a `string_view`: no NUL needed.
        fn MallocExtension_Internal_GetNumericProperty(
            name_data: *const c_char,
            name_size: usize,
            value: *mut usize,
        ) -> bool;

        /// Whether the per-CPU caches are active (`tcmalloc/cpu_cache.cc`). Referring to
        /// it links `cpu_cache.o`, whose static initialiser activates the caches when
        /// this process may register rseq (see the module documentation).
        fn MallocExtension_Internal_GetPerCpuCachesActive() -> bool;

        /// The mean bytes between sampled allocations (`tcmalloc/parameters.cc`);
        /// 0 or less switches sampling off.
        fn MallocExtension_Internal_GetProfileSamplingInterval() -> i64;
        fn MallocExtension_Internal_SetProfileSamplingInterval(interval: i64);
    }

    /// tcmalloc's allocation sampling interval in bytes (default 2 MiB): the mean
    /// allocated bytes between two allocations it samples for its heap profile, each
    /// taking a slow path with a stack trace.
    pub fn profile_sampling_interval() -> i64 {
        // SAFETY: no arguments or preconditions; it reads one atomic of tcmalloc.
        unsafe { MallocExtension_Internal_GetProfileSamplingInterval() }
    }

    /// Sets [`profile_sampling_interval`]; 0 switches sampling off. Each thread's
    /// sampler seeds its random intervals from the cycle counter, so with sampling on
    /// two runs of the same code take the slow path at different allocations; with it
    /// off, a thread's next sampling point (already drawn) is still random until the
    /// thread has allocated past it, after which it is fixed (every 128 MiB).
    pub fn set_profile_sampling_interval(bytes: i64) {
        // SAFETY: it stores one atomic of tcmalloc; any value is valid.
        unsafe { MallocExtension_Internal_SetProfileSamplingInterval(bytes) }
    }

    /// The version of tcmalloc-better in `Cargo.lock` (a test checks it). Google's
    /// tcmalloc has no releases: the crate bundles a snapshot of its sources.
    pub const CRATE_VERSION: &str = "0.1.19";

    /// The properties read, besides the two shared keys.
    const PROPERTIES: [&str; 14] = [
        "generic.current_allocated_bytes",
        "generic.physical_memory_used",
        "generic.virtual_memory_used",
        "generic.heap_size",
        "tcmalloc.pageheap_free_bytes",
        "tcmalloc.pageheap_unmapped_bytes",
        "tcmalloc.metadata_bytes",
        "tcmalloc.cpu_free",
        "tcmalloc.central_cache_free",
        "tcmalloc.transfer_cache_free",
        "tcmalloc.thread_cache_free",
        "tcmalloc.external_fragmentation_bytes",
        "tcmalloc.per_cpu_caches_active",
        "tcmalloc.num_released_total_bytes",
    ];

    impl Introspect for TCMalloc {
        const NAME: &'static str = "tcmalloc";
        fn version() -> String {
            version()
        }
        fn stats() -> BTreeMap<String, u64> {
            stats()
        }
    }

    /// One numeric property of tcmalloc, `None` if tcmalloc does not know the name.
    pub fn property(name: &str) -> Option<u64> {
        let mut value = 0usize;
        // SAFETY: `name` points to `name.len()` initialised bytes that outlive the call
        // (tcmalloc reads them as a string_view and keeps no reference); `value` is a
        // valid, writable `usize` on this stack frame, written at most once before the
        // function returns. The function takes tcmalloc's own locks and initialises
        // tcmalloc first if needed.
        let known = unsafe {
            MallocExtension_Internal_GetNumericProperty(
                name.as_ptr().cast(),
                name.len(),
                &mut value,
            )
        };
        known.then_some(value as u64)
    }

    /// Whether tcmalloc's per-CPU caches are active in this process. A binary that
    /// calls this (directly or through [`stats`] or [`version`]) links the code that
    /// activates them at start-up.
    pub fn per_cpu_caches_active() -> bool {
        // SAFETY: no arguments or preconditions; it reads one atomic flag of tcmalloc.
        unsafe { MallocExtension_Internal_GetPerCpuCachesActive() }
    }

    /// `0.1.19 (tcmalloc-better; per-CPU caches on)`: the crate version, since tcmalloc
    /// itself has none, and the per-CPU state that every tcmalloc figure depends on.
    pub fn version() -> String {
        let state = if per_cpu_caches_active() { "on" } else { "off" };
        format!("{CRATE_VERSION} (tcmalloc-better; per-CPU caches {state})")
    }

    /// tcmalloc's properties; see the [module documentation](self) for the keys.
    pub fn stats() -> BTreeMap<String, u64> {
        let mut m = to_map(PROPERTIES.iter().filter_map(|&p| Some((p, property(p)?))));
        for (key, from) in [
            ("allocated", "generic.current_allocated_bytes"),
            ("resident", "generic.physical_memory_used"),
        ] {
            if let Some(&v) = m.get(from) {
                m.insert(key.to_string(), v);
            }
        }
        m
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::alloc::{GlobalAlloc, Layout};

        #[test]
        fn version_is_the_locked_crate_version() {
            let lock =
                std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
                    .expect("the workspace's Cargo.lock");
            let locked = lock
                .split("[[package]]")
                .find(|p| p.contains("\nname = \"tcmalloc-better\"\n"))
                .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
                .and_then(|v| v.strip_suffix('"'))
                .expect("tcmalloc-better in Cargo.lock");
            assert_eq!(locked, CRATE_VERSION, "update CRATE_VERSION");
            let v = version();
            let parts: Vec<u32> = v
                .split(' ')
                .next()
                .unwrap()
                .split('.')
                .map(|p| p.parse().unwrap())
                .collect();
            assert_eq!(parts.len(), 3, "{v}");
            assert!(
                v.ends_with("per-CPU caches on)") || v.ends_with("per-CPU caches off)"),
                "{v}"
            );
        }

        /// Only this test allocates through tcmalloc in this process, so the growth is exact.
        #[test]
        fn allocated_grows_by_a_block_and_every_property_is_known() {
            const SIZE: usize = 10 << 20;
            let layout = Layout::from_size_align(SIZE, 64).unwrap();
            let before = stats();
            // SAFETY: non-zero size; freed below with the same layout.
            let p = unsafe { TCMalloc.alloc(layout) };
            assert!(!p.is_null());
            let during = stats();
            // SAFETY: `p` came from `TCMalloc.alloc(layout)` and is freed once.
            unsafe { TCMalloc.dealloc(p, layout) };
            assert_eq!(during.len(), PROPERTIES.len() + 2, "{during:?}");
            // Allow other tests running at the same time 1 MiB of their own activity.
            assert!(
                during["allocated"] + (1 << 20) >= before["allocated"] + SIZE as u64,
                "{before:?} → {during:?}"
            );
            assert!(during["resident"] >= during["allocated"], "{during:?}");
            assert!(
                during["generic.virtual_memory_used"] >= during["resident"],
                "{during:?}"
            );
            assert!(during["tcmalloc.per_cpu_caches_active"] <= 1);
            assert_eq!(property("no.such.property"), None);
        }

        /// Run alone by `per_cpu_caches_follow_glibc_rseq_tunable` in a child process.
        #[test]
        #[ignore = "run by per_cpu_caches_follow_glibc_rseq_tunable"]
        fn print_per_cpu_state() {
            let layout = Layout::from_size_align(64, 8).unwrap();
            // SAFETY: non-zero size; freed at once with the same layout.
            unsafe { TCMalloc.dealloc(TCMalloc.alloc(layout), layout) };
            let property = stats()["tcmalloc.per_cpu_caches_active"];
            println!(
                "per_cpu={} property={property}",
                per_cpu_caches_active() as u8
            );
        }

        /// With glibc's rseq registration switched off, tcmalloc takes rseq and its
        /// per-CPU caches are active; with glibc holding rseq they are not. Needs a
        /// kernel with rseq (Linux 4.18 or later, not blocked by seccomp).
        #[test]
        fn per_cpu_caches_follow_glibc_rseq_tunable() {
            let state = |tunables: &str| {
                let out = std::process::Command::new(std::env::current_exe().unwrap())
                    .args([
                        "--exact",
                        "allocators::tcmalloc::tests::print_per_cpu_state",
                    ])
                    .args(["--ignored", "--nocapture", "--test-threads=1"])
                    .env("GLIBC_TUNABLES", tunables)
                    .output()
                    .unwrap();
                let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                assert!(out.status.success(), "{stdout}");
                // libtest prints the test's name on the same line, before its output.
                let at = stdout.find("per_cpu=").expect("the child's report");
                stdout[at..].lines().next().unwrap().to_string()
            };
            assert_eq!(state("glibc.pthread.rseq=0"), "per_cpu=1 property=1");
            assert_eq!(state("glibc.pthread.rseq=1"), "per_cpu=0 property=0");
        }

        /// Why the binaries do not start tcmalloc-better's background-actions thread:
        /// in this build tcmalloc says it needs none (its `background.cc` is not linked,
        /// only weakly referenced), so `process_background_actions_thread` would start
        /// nothing. If this changes, revisit the comment in the tcmalloc binaries.
        #[test]
        fn no_background_actions_are_needed() {
            assert!(!TCMalloc::needs_process_background_actions());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocators::system::System;

    /// Runs the ignored test `test` of this test binary in a child process with `env`
    /// set, and returns its output and the numbers of its first line that starts with
    /// `first_key=` (`key=value` fields separated by spaces).
    #[cfg(any(feature = "jemalloc", feature = "mimalloc"))]
    pub(super) fn child_report(
        test: &str,
        env: (&str, &str),
        first_key: &str,
    ) -> (String, Vec<u64>) {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env(env.0, env.1)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout}");
        let at = stdout
            .find(&format!("{first_key}="))
            .expect("the child's report");
        let fields = stdout[at..]
            .lines()
            .next()
            .unwrap()
            .split(' ')
            .map(|f| f.split_once('=').unwrap().1.parse().unwrap())
            .collect();
        (stdout, fields)
    }

    #[test]
    fn hooks_follow_the_wrapped_allocator() {
        static G: CountingAlloc<System> = CountingAlloc::new(System, System::NAME);
        let h = hooks(&G);
        assert_eq!(h.name, "system");
        assert_eq!((h.version)(), system::version());
        assert!((h.stats)().contains_key("mallinfo2.arena"));
    }
}
