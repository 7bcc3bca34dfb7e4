//! mimalloc's version and process statistics, behind a safe API.
//!
//! Only meaningful in a binary whose global allocator is mimalloc. Reading the
//! statistics makes system calls (`getrusage`); call it from a cold thread.

use std::collections::BTreeMap;

/// mimalloc's version as `major.minor.patch`.
pub fn version() -> String {
    // SAFETY: `mi_version` takes no arguments, has no preconditions and only returns an int.
    let v = unsafe { libmimalloc_sys::mi_version() };
    // Encoded as major, then two digits of minor and two of patch (30302 is 3.3.2).
    format!("{}.{}.{}", v / 10_000, (v / 100) % 100, v % 100)
}

/// Process figures that mimalloc keeps: RSS and commit (current and peak, bytes), page
/// faults, and CPU times (ms).
pub fn process_info() -> BTreeMap<String, u64> {
    let mut v = [0usize; 8];
    let [a, b, c, d, e, f, g, h] = &mut v;
    // SAFETY: every argument is a valid, distinct, writable `usize` on this stack frame;
    // `mi_process_info` only writes through them and keeps no pointer after returning.
    unsafe { libmimalloc_sys::mi_process_info(a, b, c, d, e, f, g, h) };
    let names = [
        "elapsed_ms",
        "user_ms",
        "system_ms",
        "current_rss",
        "peak_rss",
        "current_commit",
        "peak_commit",
        "page_faults",
    ];
    names
        .iter()
        .zip(v)
        .map(|(n, x)| (n.to_string(), x as u64))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_and_info() {
        let v = super::version();
        let parts: Vec<u32> = v.split('.').map(|p| p.parse().unwrap()).collect();
        assert_eq!(parts.len(), 3, "{v}");
        assert!(
            (1..=9).contains(&parts[0]) && parts[1] < 100 && parts[2] < 100,
            "{v}"
        );
        let info = super::process_info();
        assert_eq!(info.len(), 8);
        assert!(info["elapsed_ms"] < 1 << 40);
    }
}
