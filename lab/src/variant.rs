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

/// One point of a comparison: both allocators, the scratch strategy and the levels, and
/// any other configuration settings the matrix gives it (`set`), with an optional name.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Variant {
    /// The engine's global allocator.
    pub engine_alloc: Alloc,
    /// The feed's global allocator.
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

    /// A short readable label: its name, else `engine mimalloc + arena, feed jemalloc, 3
    /// levels` followed by its settings (`, cold.slice_us = 0`).
    pub fn label(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        let mut s = format!(
            "engine {}, feed {}, {} level{}",
            self.engine_side(),
            self.feed_alloc,
            self.levels,
            if self.levels == 1 { "" } else { "s" }
        );
        for (k, v) in &self.settings {
            s.push_str(&format!(", {k} = {v}"));
        }
        s
    }

    /// A file-name-safe identifier: `e-mimalloc-arena_f-jemalloc_L3`, or its name (with
    /// every character other than letters, digits, `-` and `_` as `-`), and a digest of
    /// its settings where it has some and no name.
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
        let mut s = format!(
            "e-{}-{}_f-{}_L{}",
            self.engine_alloc, self.scratch, self.feed_alloc, self.levels
        );
        if !self.settings.is_empty() {
            let mut h = 0xcbf2_9ce4_8422_2325u64;
            for b in format!("{:?}", self.settings).bytes() {
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
}
