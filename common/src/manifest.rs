//! The run manifest: where and how a process ran (machine, cores, clock source,
//! allocator and its environment, git revision) and the validated configuration, as
//! JSON. What a run measured is in [`crate::summary`], which carries a manifest.
//!
//! Collecting a manifest reads files under `/proc` (through [`crate::os`]) and
//! allocates: it runs at start-up or shutdown, never per tick.

use crate::allocators::AllocatorHooks;
use crate::config::Config;
use crate::os::{cpu_model, kernel_release};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Git revision the binaries were built from (`-dirty` if the tree had changes).
pub const GIT_REV: &str = env!("HFT_GIT_REV");

/// The allocator of one process.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocatorInfo {
    /// `system`, `jemalloc`, `mimalloc` or `tcmalloc`.
    pub name: String,
    /// Version of the allocator library.
    pub version: String,
}

/// Where and how a process ran.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// CPU model name from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Cores this process was allowed to use at start-up.
    pub cores_allowed: Vec<usize>,
    /// Thread role → core it was pinned to (absent if pinning failed).
    pub cores_used: BTreeMap<String, usize>,
    /// Kernel release.
    pub kernel: String,
    /// Clock source of the stamps (`tsc` or `monotonic`).
    pub clock_source: String,
    /// Allocator of this process.
    pub allocator: AllocatorInfo,
    /// In a merged `summary.json`: the allocator of each process (`feed`, `engine`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocators: BTreeMap<String, AllocatorInfo>,
    /// Allocator-related environment variables as set for this process.
    pub allocator_env: BTreeMap<String, String>,
    /// Git revision of the build.
    pub git_rev: String,
    /// The configuration file and its validated contents.
    pub config_path: String,
    /// The validated configuration.
    pub config: serde_json::Value,
}

/// Environment variables that change allocator behaviour.
pub fn allocator_env() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| {
            k == "_RJEM_MALLOC_CONF"
                || k.starts_with("MIMALLOC_")
                || k == "GLIBC_TUNABLES"
                || k.starts_with("TCMALLOC_")
                || k.starts_with("MALLOC_ARENA")
        })
        .collect()
}

impl Manifest {
    /// Collects the manifest of this process.
    pub fn collect(
        config: &Config,
        config_path: &Path,
        cores_allowed: &[usize],
        cores_used: BTreeMap<String, usize>,
        clock_source: &str,
        allocator: &AllocatorHooks,
    ) -> Manifest {
        Manifest {
            cpu_model: cpu_model(),
            cores_allowed: cores_allowed.to_vec(),
            cores_used,
            kernel: kernel_release(),
            clock_source: clock_source.into(),
            allocator: AllocatorInfo {
                name: allocator.name.into(),
                version: (allocator.version)(),
            },
            allocators: BTreeMap::new(),
            allocator_env: allocator_env(),
            git_rev: GIT_REV.into(),
            config_path: config_path.display().to_string(),
            config: serde_json::to_value(config).unwrap_or_default(),
        }
    }
}
