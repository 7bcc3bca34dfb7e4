//! What varies between runs of one workload: the global allocator of each process, and
//! the engine's scratch strategy and levels (orders per side per decision).
//!
//! An allocator is chosen by picking a binary: one `cargo build --release` builds every
//! variant as a thin `main.rs` over the same library (`engine` is mimalloc, `feed` is
//! jemalloc; the others are named `engine-<allocator>`, `feed-<allocator>`). Scratch and
//! levels are configuration settings (`engine.scratch`, `engine.levels`), written into a
//! derived copy of the configuration (see [`crate::run::derive_config`]).
//!
//! Pure data: nothing here reads a file or starts a process.

use serde::Deserialize;
use std::fmt;

/// A global allocator one of the binaries links.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Alloc {
    /// The C library's malloc (glibc).
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

/// The engine's scratch strategy (`engine.scratch` in the configuration).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum ScratchMode {
    /// The global allocator, allocating and freeing every tick.
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

/// One point of a comparison: both allocators, the scratch strategy and the levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Variant {
    /// The engine's global allocator.
    pub engine_alloc: Alloc,
    /// The feed's global allocator.
    pub feed_alloc: Alloc,
    /// The engine's scratch strategy.
    pub scratch: ScratchMode,
    /// Orders per side per decision.
    pub levels: u32,
}

impl Variant {
    /// The all-system heap baseline: both processes on the system allocator, heap scratch.
    pub fn is_baseline(&self) -> bool {
        self.engine_alloc == Alloc::System
            && self.feed_alloc == Alloc::System
            && self.scratch == ScratchMode::Heap
    }

    /// The hybrid configuration of the brief: feed jemalloc, engine mimalloc with a
    /// per-tick arena.
    pub fn is_hybrid(&self) -> bool {
        self.engine_alloc == Alloc::Mimalloc
            && self.feed_alloc == Alloc::Jemalloc
            && self.scratch == ScratchMode::Arena
    }

    /// The engine side alone: `mimalloc + arena`.
    pub fn engine_side(&self) -> String {
        format!("{} + {}", self.engine_alloc, self.scratch)
    }

    /// A short readable label: `engine mimalloc + arena, feed jemalloc, 3 levels`.
    pub fn label(&self) -> String {
        format!(
            "engine {}, feed {}, {} level{}",
            self.engine_side(),
            self.feed_alloc,
            self.levels,
            if self.levels == 1 { "" } else { "s" }
        )
    }

    /// A file-name-safe identifier: `e-mimalloc-arena_f-jemalloc_L3`.
    pub fn slug(&self) -> String {
        format!(
            "e-{}-{}_f-{}_L{}",
            self.engine_alloc, self.scratch, self.feed_alloc, self.levels
        )
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
        };
        assert!(v.is_baseline() && !v.is_hybrid());
        assert_eq!(v.label(), "engine system + heap, feed system, 1 level");
        let h = Variant {
            engine_alloc: Alloc::Mimalloc,
            feed_alloc: Alloc::Jemalloc,
            scratch: ScratchMode::Arena,
            levels: 3,
        };
        assert!(h.is_hybrid() && !h.is_baseline());
        assert_eq!(h.slug(), "e-mimalloc-arena_f-jemalloc_L3");
        assert_eq!(ScratchMode::from_name("pool"), Some(ScratchMode::Pool));
        assert_eq!(ScratchMode::from_name("x"), None);
    }
}
