//! Shared building blocks of the feed, the engine and the lab.
//!
//! This is the only crate of the workspace with `unsafe` code; each block carries a
//! `// SAFETY:` comment and sits behind a safe API. What allocates, blocks or must run
//! on a particular thread is stated in each module's documentation.
//!
//! The code here that runs per tick on a hot thread: the ring's `Publisher::publish` and
//! `Subscriber::poll` (`ring/mod.rs`, through the `transport` traits), stage recording
//! (`latency.rs`, `StageSet::record`), the counting allocator (`alloc.rs`), the pool
//! (`pool.rs`, in pool mode) and the clock read (`clock.rs`). Everything else is start-up,
//! cold-thread or tool code.
//!
//! # Modules, in dependency order
//!
//! The modules import one way: each one imports only from the modules above it in this
//! table, the ones its last column names, so no module imports from one that imports
//! it back, directly or through others. The test `modules_import_one_way` reads this
//! table and checks every `crate::` path in the code against it. (Documentation links
//! may point anywhere.)
//!
//! | module | what it holds | imports from |
//! |---|---|---|
//! | `sync` | the ring's atomics, loom's model-checked ones under `cfg(loom)` (private) | nothing |
//! | [`tick`] | the 64-byte wire type | nothing |
//! | [`units`] | byte counts, durations and times written for people | nothing |
//! | [`os`] | what the project asks of the host: RSS, page faults, CPU model, kernel, process liveness, signals | nothing |
//! | [`alloc`] | a counting wrapper for any global allocator, and the timing of cold threads' calls | nothing |
//! | [`pool`] | a fixed-size-block pool, the engine's `pool` scratch allocator | nothing |
//! | [`cores`] | the core plan, pinning and wait strategies | nothing |
//! | [`hop`] | the bounded queue between a hot and a cold thread of one process (`rtrb`, or crossbeam-channel for comparison) | nothing |
//! | [`clock`] | raw TSC time stamps (or `CLOCK_MONOTONIC` where the TSC is not invariant) | `os` |
//! | [`files`] | the files and folders the project writes: owner-only, atomic, marked, never over a file of someone else's | `os` |
//! | [`journal`] | the feed's tick journal: segment files of checksummed blocks, torn tails cut, retention | `files`, `tick` |
//! | [`service`] | the feed's history service protocol: versioned, length-prefixed frames, every malformed class named | `tick` |
//! | [`transport`] | the trait pair every tick transport implements ([`transport::Sink`], [`transport::Source`]), and [`transport::FeedSource`], a source that knows its feed run | `tick` |
//! | [`routed`] | the routing global allocator: hot threads on a mimalloc arena, everything else on jemalloc, every free home by address; thread roles and their routes; per-type handles | `alloc` |
//! | [`allocators`] | the global allocators (system; jemalloc, mimalloc, tcmalloc behind features of those names; the routing hybrid of jemalloc and mimalloc), their versions and statistics, and the hooks that hand them to feed and engine | `alloc`, `routed` |
//! | [`ring`] | the single-producer, many-consumer broadcast ring, on heap memory or in a shared-memory file ([`ring::shm`]) | `sync`, `tick`, `transport`, `clock`, `files`, `os` |
//! | [`latency`] | per-stage fixed-bound histograms, interval hand-off, `.hlog` writer | `alloc`, `files`, `hop`, `units` |
//! | [`config`] | the TOML run configuration, validated, with errors naming file, line, column and key; [`config::edit`]: one configuration derived from another by key path | `cores`, `hop`, `journal`, `ring`, `routed`, `service`, `tick` |
//! | [`budget`] | what each cold thread costs the hot cores (CPU per second, stretches between sleeps) and the slicing of cold work | `alloc`, `clock`, `config`, `cores`, `latency`, `routed` |
//! | [`memory`] | memory samples (RSS, page faults, allocator statistics, fragmentation) and warnings | `config`, `os`, `units` |
//! | [`mechanisms`] | per-thread page faults, context switches and CPU time, interrupts per core and the allocator's counters over a measured window | `allocators` |
//! | [`manifest`] | the run manifest: machine, allocator, git revision, configuration | `allocators`, `config`, `os` |
//! | [`summary`] | what a run measured: the feed's, the engine's and the merged summary | `alloc`, `budget`, `latency`, `manifest`, `mechanisms`, `memory`, `pool`, `routed` |
//! | [`recovery`] | gap recovery from the feed's history service: the hot side's buffer and ranges, the cold thread that fetches them, applied through [`recovery::Apply`] | `budget`, `hop`, `service`, `summary`, `tick` |
//! | [`failure`] | the one failure type of the binaries, with its exit code (2 bad input, 1 runtime) | `files`, `ring` |
//! | [`runargs`] | the `--config`/`--duration`/`--out` arguments of feed and engine, and the start-up they share, and the ring's creation | `config`, `cores`, `failure`, `files`, `os`, `ring` |
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod alloc;
pub mod allocators;
pub mod budget;
pub mod clock;
pub mod config;
pub mod cores;
// The failure type and the run arguments name the shared-memory ring's errors, which
// the loom build (ring protocol only) leaves out.
#[cfg(not(loom))]
pub mod failure;
pub mod files;
pub mod hop;
pub mod journal;
pub mod latency;
pub mod manifest;
pub mod mechanisms;
pub mod memory;
pub mod os;
pub mod pool;
#[cfg(not(loom))]
pub mod recovery;
pub mod ring;
pub mod routed;
#[cfg(not(loom))]
pub mod runargs;
pub mod service;
pub mod summary;
mod sync;
pub mod tick;
pub mod transport;
pub mod units;

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// The module table of the crate docs: (module, the modules it may import from).
    fn documented_order() -> Vec<(String, BTreeSet<String>)> {
        let names = |cell: &str| -> BTreeSet<String> {
            cell.split(',')
                .map(|n| n.trim().trim_matches(['`', '[', ']']).to_string())
                .filter(|n| !n.is_empty() && n != "nothing")
                .collect()
        };
        include_str!("lib.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! | "))
            .filter(|row| row.starts_with('`') || row.starts_with("[`"))
            .map(|row| {
                let cells: Vec<&str> = row.trim_end_matches(" |").split(" | ").collect();
                let module = names(cells[0]).into_iter().next().unwrap();
                (module, names(cells[cells.len() - 1]))
            })
            .collect()
    }

    /// The modules of `crate::` paths in the code (comments left out) of every file of
    /// each top-level module (`ring/shm.rs` belongs to `ring`).
    fn actual_imports() -> BTreeMap<String, BTreeSet<String>> {
        fn visit(dir: &Path, module: Option<&str>, out: &mut BTreeMap<String, BTreeSet<String>>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
                let owner = module.unwrap_or(&stem).to_string();
                if path.is_dir() {
                    visit(&path, Some(&owner), out);
                    continue;
                }
                if owner == "lib" {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let used = out.entry(owner.clone()).or_default();
                for line in text.lines() {
                    let code = line.split("//").next().unwrap();
                    for (at, _) in code.match_indices("crate::") {
                        let name: String = code[at + 7..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        assert!(
                            !name.is_empty(),
                            "{}: write `crate::module::…`: {line}",
                            path.display()
                        );
                        if name != owner {
                            used.insert(name);
                        }
                    }
                }
            }
        }
        let mut out = BTreeMap::new();
        visit(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            None,
            &mut out,
        );
        out
    }

    #[test]
    fn modules_import_one_way() {
        let order = documented_order();
        let actual = actual_imports();
        let documented: BTreeSet<&String> = order.iter().map(|(m, _)| m).collect();
        let present: BTreeSet<&String> = actual.keys().collect();
        assert_eq!(documented, present, "the table names every module, once");
        assert_eq!(
            order.len(),
            documented.len(),
            "the table names every module, once"
        );
        for (at, (module, allowed)) in order.iter().enumerate() {
            let above: BTreeSet<&String> = order[..at].iter().map(|(m, _)| m).collect();
            for dep in allowed {
                assert!(
                    above.contains(dep),
                    "{module} imports from {dep}, which is not above it"
                );
            }
            assert_eq!(
                &actual[module], allowed,
                "{module}: the table's imports are the code's"
            );
        }
    }
}
