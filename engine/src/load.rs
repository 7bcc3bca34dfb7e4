//! The service-load thread (`engine.service_load`): asks the feed's history service for
//! snapshots and ranges of the latest ticks at a fixed rate, as engines that join late
//! or recover gaps would, and measures each request from connecting to the answer's
//! last byte.
//!
//! It stands in for a population of recovering engines, so that a comparison can show
//! what serving them costs the feed (its md thread's `feed_lag`, its history thread's
//! service latency and allocations). Cold: it connects, allocates the answers and
//! sleeps between requests; it never touches the hot thread. It reads how far the feed
//! has published from the ring's header (a second, read-only subscriber that is never
//! polled and never registers).

use common::budget::{ColdBudget, ColdThread};
use common::config::ServiceLoad;
use common::ring::shm;
use common::ring::StartAt;
use common::service::{request_at, Request, MAX_DEPTH};
use common::summary::LoadReport;
use hdrhistogram::Histogram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Where the load goes and what it asks.
pub struct Target {
    /// The service: its socket, or its TCP address.
    pub socket: common::service::Endpoint,
    /// The feed's ring (for the latest sequence number).
    pub ring: PathBuf,
    /// The load.
    pub load: ServiceLoad,
    /// Ticks per symbol in a snapshot (`engine.window`).
    pub depth: usize,
}

/// Runs the load until `done` is set; returns what it measured and its budget.
pub fn thread(t: Target, done: &AtomicBool, mut cold: ColdThread) -> (LoadReport, ColdBudget) {
    let mut r = LoadReport::default();
    // Microseconds, up to 100 s.
    let mut us = Histogram::<u64>::new_with_bounds(1, 100_000_000, 3).expect("valid bounds");
    let ring = shm::open(&t.ring, StartAt::Latest).ok().map(|(sub, _)| sub);
    let period = Duration::from_secs_f64(1.0 / t.load.requests_per_s);
    let start = Instant::now();
    let mut k: u64 = 0;
    while !done.load(Ordering::Relaxed) {
        let due = start + period.mul_f64(k as f64);
        let now = Instant::now();
        if now < due {
            // Short sleeps, so that the end is seen soon.
            std::thread::sleep((due - now).min(Duration::from_millis(20)));
            continue;
        }
        let snapshot = t.load.snapshot_every > 0 && k.is_multiple_of(t.load.snapshot_every);
        k += 1;
        let req = if snapshot {
            Request::Snapshot {
                depth: (t.depth as u32).clamp(1, MAX_DEPTH),
            }
        } else {
            let newest = ring.as_ref().map_or(0, |s| s.producer_progress().published);
            if newest == 0 {
                continue;
            }
            Request::Range {
                from: newest.saturating_sub(t.load.range_ticks).max(1),
                to: newest + 1,
            }
        };
        let began = Instant::now();
        match request_at(&t.socket, &req, Duration::from_secs(5)) {
            Ok(a) => {
                let took = began.elapsed().as_micros() as u64;
                us.saturating_record(took.max(1));
                r.requests += 1;
                r.snapshots += snapshot as u64;
                r.ticks += a.ticks.len() as u64;
            }
            Err(e) => {
                r.errors += 1;
                r.last_error = Some(e);
            }
        }
        cold.yield_if_due();
    }
    r.seconds = start.elapsed().as_secs_f64();
    r.ticks_per_s = if r.seconds > 0.0 {
        r.ticks as f64 / r.seconds
    } else {
        0.0
    };
    if !us.is_empty() {
        r.latency_p50_us = us.value_at_quantile(0.5) as f64;
        r.latency_p99_us = us.value_at_quantile(0.99) as f64;
        r.latency_max_us = us.max() as f64;
    }
    (r, cold.finish())
}
