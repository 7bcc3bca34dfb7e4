//! What varies between runs of one workload: the process shape (the feed and the engine
//! as two processes, or their threads in one pipeline process), the global allocator of
//! each process, and the engine's scratch strategy and levels (orders per side per
//! decision).
//!
//! An allocator is chosen by picking a binary: one `cargo build --release` builds every
//! variant as a thin `main.rs` over the same library (`engine` is mimalloc, `feed` is
//! jemalloc; the others are named `engine-<allocator>`, `feed-<allocator>`). One process
//! is a pipeline binary ([`PipelineAlloc`]: `pipeline` on the routing hybrid,
//! `pipeline-<allocator>` on one allocator). Scratch and levels are configuration
//! settings (`engine.scratch`, `engine.levels`), written into a derived copy of the
//! configuration (see [`crate::run::derive_config`]).
//!
//! Labels and slugs of two-process variants are `engine mimalloc + arena, feed jemalloc,
//! 3 levels` and `e-mimalloc-arena_f-jemalloc_L3`; of one-process variants `one process,
//! hybrid routing + arena, 3 levels` and `p-hybrid-arena_L3`.
//!
//! Pure data: nothing here reads a file or starts a process.

use serde::Deserialize;
use std::fmt;

/// A global allocator one of the binaries links.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Alloc {
    /// The C library's malloc (glibc).
    #[default]
    System,
    /// jemalloc (tikv-jemallocator); the feed's default.
    Jemalloc,
    /// mimalloc; the engine's default.
    Mimalloc,
    /// tcmalloc (tcmalloc-better).
    Tcmalloc,
}

impl Alloc {
    /// Lowercase name, as in flags, matrix files and summaries.
    pub fn name(self) -> &'static str {
        match self {
            Alloc::System => "system",
            Alloc::Jemalloc => "jemalloc",
            Alloc::Mimalloc => "mimalloc",
            Alloc::Tcmalloc => "tcmalloc",
        }
    }

    /// File name of the engine binary linking this allocator.
    pub fn engine_bin(self) -> &'static str {
        match self {
            Alloc::System => "engine-system",
            Alloc::Jemalloc => "engine-jemalloc",
            Alloc::Mimalloc => "engine",
            Alloc::Tcmalloc => "engine-tcmalloc",
        }
    }

    /// File name of the feed binary linking this allocator.
    pub fn feed_bin(self) -> &'static str {
        match self {
            Alloc::System => "feed-system",
            Alloc::Jemalloc => "feed",
            Alloc::Mimalloc => "feed-mimalloc",
            Alloc::Tcmalloc => "feed-tcmalloc",
        }
    }
}

impl fmt::Display for Alloc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The global allocator of a single-process pipeline binary.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum PipelineAlloc {
    /// The routing hybrid (`pipeline`): the hot threads on a mimalloc arena, every other
    /// thread on jemalloc.
    #[default]
    Hybrid,
    /// The C library's malloc for every thread (`pipeline-system`).
    System,
    /// jemalloc for every thread (`pipeline-jemalloc`).
    Jemalloc,
    /// mimalloc for every thread (`pipeline-mimalloc`).
    Mimalloc,
    /// dhat-rs's heap profiler over the system allocator for every thread
    /// (`pipeline-dhat`, what `lab profile` runs): every allocation recorded with its
    /// backtrace under a lock, so its latencies are not the pipeline's.
    Dhat,
}

impl PipelineAlloc {
    /// Lowercase name, as in flags, matrix files and the summaries'
    /// `manifest.allocator.name`.
    pub fn name(self) -> &'static str {
        match self {
            PipelineAlloc::Hybrid => "hybrid",
            PipelineAlloc::System => "system",
            PipelineAlloc::Jemalloc => "jemalloc",
            PipelineAlloc::Mimalloc => "mimalloc",
            PipelineAlloc::Dhat => "dhat",
        }
    }

    /// File name of the pipeline binary linking this allocator.
    pub fn bin(self) -> &'static str {
        match self {
            PipelineAlloc::Hybrid => "pipeline",
            PipelineAlloc::System => "pipeline-system",
            PipelineAlloc::Jemalloc => "pipeline-jemalloc",
            PipelineAlloc::Mimalloc => "pipeline-mimalloc",
            PipelineAlloc::Dhat => "pipeline-dhat",
        }
    }

    /// How a label says it: `hybrid routing`, `jemalloc`.
    fn describe(self) -> &'static str {
        match self {
            PipelineAlloc::Hybrid => "hybrid routing",
            other => other.name(),
        }
    }
}

impl fmt::Display for PipelineAlloc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a variant runs the feed and the engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Process {
    /// Two processes, the `feed*` and `engine*` binaries of the variant's `feed_alloc`
    /// and `engine_alloc`.
    #[default]
    Two,
    /// One process, the pipeline binary of this allocator; the variant's `engine_alloc`
    /// and `feed_alloc` do not apply (they are left at their defaults).
    Single(PipelineAlloc),
}

impl Process {
    /// Whether the feed and the engine are one process.
    pub fn is_single(self) -> bool {
        matches!(self, Process::Single(_))
    }
}

/// The engine's scratch strategy (`engine.scratch` in the configuration).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum ScratchMode {
    /// The global allocator, allocating and freeing every tick.
    #[default]
    Heap,
    /// A bumpalo arena, reset at every tick.
    Arena,
    /// Pre-allocated order objects and message buffers, recycled.
    Pool,
}

impl ScratchMode {
    /// Lowercase name, as in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            ScratchMode::Heap => "heap",
            ScratchMode::Arena => "arena",
            ScratchMode::Pool => "pool",
        }
    }

    /// The mode named `s` in a configuration or summary.
    pub fn from_name(s: &str) -> Option<ScratchMode> {
        match s {
            "heap" => Some(ScratchMode::Heap),
            "arena" => Some(ScratchMode::Arena),
            "pool" => Some(ScratchMode::Pool),
            _ => None,
        }
    }
}

impl fmt::Display for ScratchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One point of a comparison: the process shape, both allocators (two processes) or the
/// pipeline's (one), the scratch strategy and the levels, and any other configuration
/// settings the matrix gives it (`set`), with an optional name.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Variant {
    /// Two processes, or one with its pipeline allocator.
    pub process: Process,
    /// The engine's global allocator (two processes only).
    pub engine_alloc: Alloc,
    /// The feed's global allocator (two processes only).
    pub feed_alloc: Alloc,
    /// The engine's scratch strategy.
    pub scratch: ScratchMode,
    /// Orders per side per decision.
    pub levels: u32,
    /// Further settings of the run configuration: key path (`cold.slice_us`) and value
    /// written as TOML (`0`, `"batch"`, `[1]`), in the order given.
    pub settings: Vec<(String, String)>,
    /// The name the matrix gives it, if any.
    pub name: Option<String>,
    /// The folder of its binaries when the matrix gives it one (`bin_dir`): a build of
    /// other code, for a before/after comparison of a change; `None`, the comparison's.
    pub bin_dir: Option<std::path::PathBuf>,
}

impl Variant {
    /// A one-process variant: the pipeline binary of `alloc`, with this scratch and
    /// levels (the two-process allocators at their defaults).
    pub fn single(alloc: PipelineAlloc, scratch: ScratchMode, levels: u32) -> Variant {
        Variant {
            process: Process::Single(alloc),
            scratch,
            levels,
            ..Variant::default()
        }
    }

    /// Whether the feed and the engine run as one process.
    pub fn is_single(&self) -> bool {
        self.process.is_single()
    }

    /// The all-system heap baseline: two processes, both on the system allocator, heap
    /// scratch.
    pub fn is_baseline(&self) -> bool {
        self.process == Process::Two
            && self.engine_alloc == Alloc::System
            && self.feed_alloc == Alloc::System
            && self.scratch == ScratchMode::Heap
    }

    /// The hybrid configuration of the brief: two processes, feed jemalloc, engine
    /// mimalloc with a per-tick arena (a one-process routed hybrid is not it).
    pub fn is_hybrid(&self) -> bool {
        self.process == Process::Two
            && self.engine_alloc == Alloc::Mimalloc
            && self.feed_alloc == Alloc::Jemalloc
            && self.scratch == ScratchMode::Arena
    }

    /// The engine side alone: `mimalloc + arena`; for one process, `one process,
    /// hybrid routing + arena`.
    pub fn engine_side(&self) -> String {
        match self.process {
            Process::Two => format!("{} + {}", self.engine_alloc, self.scratch),
            Process::Single(a) => format!("one process, {} + {}", a.describe(), self.scratch),
        }
    }

    /// A short readable label: its name, else `engine mimalloc + arena, feed jemalloc, 3
    /// levels` (two processes) or `one process, hybrid routing + arena, 3 levels`, followed
    /// by its settings (`, cold.slice_us = 0`).
    pub fn label(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        let levels = format!(
            "{} level{}",
            self.levels,
            if self.levels == 1 { "" } else { "s" }
        );
        let mut s = match self.process {
            Process::Two => format!(
                "engine {}, feed {}, {levels}",
                self.engine_side(),
                self.feed_alloc
            ),
            Process::Single(_) => format!("{}, {levels}", self.engine_side()),
        };
        for (k, v) in &self.settings {
            s.push_str(&format!(", {k} = {v}"));
        }
        if let Some(d) = &self.bin_dir {
            s.push_str(&format!(", binaries from {}", d.display()));
        }
        s
    }

    /// A file-name-safe identifier: `e-mimalloc-arena_f-jemalloc_L3` (two processes),
    /// `p-hybrid-arena_L3` (one process), or its name (with every character other than
    /// letters, digits, `-` and `_` as `-`), and a digest of its settings where it has
    /// some and no name.
    pub fn slug(&self) -> String {
        if let Some(name) = &self.name {
            return name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
        }
        let mut s = match self.process {
            Process::Two => format!(
                "e-{}-{}_f-{}_L{}",
                self.engine_alloc, self.scratch, self.feed_alloc, self.levels
            ),
            Process::Single(a) => format!("p-{a}-{}_L{}", self.scratch, self.levels),
        };
        if !self.settings.is_empty() || self.bin_dir.is_some() {
            let mut h = 0xcbf2_9ce4_8422_2325u64;
            let digested = match &self.bin_dir {
                None => format!("{:?}", self.settings),
                Some(d) => format!("{:?}{:?}", self.settings, d),
            };
            for b in digested.bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
            s.push_str(&format!("_s{:08x}", h as u32));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binaries_follow_the_naming_rule() {
        assert_eq!(Alloc::Mimalloc.engine_bin(), "engine");
        assert_eq!(Alloc::Jemalloc.feed_bin(), "feed");
        assert_eq!(Alloc::System.engine_bin(), "engine-system");
        assert_eq!(Alloc::Tcmalloc.feed_bin(), "feed-tcmalloc");
    }

    #[test]
    fn baseline_hybrid_and_names() {
        let v = Variant {
            engine_alloc: Alloc::System,
            feed_alloc: Alloc::System,
            scratch: ScratchMode::Heap,
            levels: 1,
            ..Variant::default()
        };
        assert!(v.is_baseline() && !v.is_hybrid());
        assert_eq!(v.label(), "engine system + heap, feed system, 1 level");
        let h = Variant {
            engine_alloc: Alloc::Mimalloc,
            feed_alloc: Alloc::Jemalloc,
            scratch: ScratchMode::Arena,
            levels: 3,
            ..Variant::default()
        };
        assert!(h.is_hybrid() && !h.is_baseline());
        assert_eq!(h.slug(), "e-mimalloc-arena_f-jemalloc_L3");
        assert_eq!(ScratchMode::from_name("pool"), Some(ScratchMode::Pool));
        assert_eq!(ScratchMode::from_name("x"), None);
    }

    #[test]
    fn one_process_variants_are_told_apart() {
        let p = Variant::single(PipelineAlloc::Hybrid, ScratchMode::Arena, 3);
        assert_eq!(p.label(), "one process, hybrid routing + arena, 3 levels");
        assert_eq!(p.slug(), "p-hybrid-arena_L3");
        assert_eq!(p.engine_side(), "one process, hybrid routing + arena");
        assert!(p.is_single() && !p.is_hybrid() && !p.is_baseline());
        // The two-process allocators are at their defaults, yet a one-process heap
        // variant is not the all-system baseline.
        let s = Variant::single(PipelineAlloc::System, ScratchMode::Heap, 1);
        assert_eq!(
            (s.engine_alloc, s.feed_alloc),
            (Alloc::System, Alloc::System)
        );
        assert!(!s.is_baseline());
        assert_eq!(s.label(), "one process, system + heap, 1 level");
        assert_eq!(s.slug(), "p-system-heap_L1");
        // Settings: appended to the label, a digest in the slug, as for two processes.
        let a = Variant {
            settings: vec![("routing.adaptive".into(), "true".into())],
            ..p.clone()
        };
        assert_eq!(
            a.label(),
            "one process, hybrid routing + arena, 3 levels, routing.adaptive = true"
        );
        assert!(a.slug().starts_with("p-hybrid-arena_L3_s"), "{}", a.slug());
        assert_ne!(a.slug(), p.slug());
        // Every pipeline allocator has its own binary and slug.
        let all = [
            PipelineAlloc::Hybrid,
            PipelineAlloc::System,
            PipelineAlloc::Jemalloc,
            PipelineAlloc::Mimalloc,
        ];
        let bins: Vec<&str> = all.iter().map(|a| a.bin()).collect();
        assert_eq!(
            bins,
            [
                "pipeline",
                "pipeline-system",
                "pipeline-jemalloc",
                "pipeline-mimalloc"
            ]
        );
        let slugs: std::collections::BTreeSet<String> = all
            .iter()
            .map(|a| Variant::single(*a, ScratchMode::Arena, 3).slug())
            .collect();
        assert_eq!(slugs.len(), 4);
        // The two-process labels and slugs are as they were.
        let two = Variant {
            engine_alloc: Alloc::Mimalloc,
            feed_alloc: Alloc::Jemalloc,
            scratch: ScratchMode::Arena,
            levels: 3,
            ..Variant::default()
        };
        assert_eq!(
            two.label(),
            "engine mimalloc + arena, feed jemalloc, 3 levels"
        );
        assert_eq!(two.slug(), "e-mimalloc-arena_f-jemalloc_L3");
        // Binaries of another build: in the label, a digest in the slug.
        let before = Variant {
            bin_dir: Some("/tmp/before/release".into()),
            ..two.clone()
        };
        assert_eq!(
            before.label(),
            "engine mimalloc + arena, feed jemalloc, 3 levels, binaries from /tmp/before/release"
        );
        assert!(before
            .slug()
            .starts_with("e-mimalloc-arena_f-jemalloc_L3_s"));
        assert_ne!(before, two);
        assert_ne!(
            two,
            Variant {
                process: Process::Single(PipelineAlloc::Mimalloc),
                ..two.clone()
            }
        );
    }
}
