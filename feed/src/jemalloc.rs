//! jemalloc statistics through tikv-jemalloc-ctl (cold thread only: reading them
//! advances jemalloc's epoch, which takes a lock inside jemalloc).

use std::collections::BTreeMap;
use tikv_jemalloc_ctl::{epoch, stats};

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
    m
}
