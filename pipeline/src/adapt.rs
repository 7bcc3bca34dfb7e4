//! The adaptive router: during the warm-up, each cold role's allocation calls are
//! timed on each allocator in turn, and each role keeps the faster one for the
//! measured phase.
//!
//! Runs on the pipeline's main thread (a cold thread that sleeps between slices). The
//! warm-up (`warmup_s`) is cut into [`SLICES`] equal slices after a first tenth left to
//! start-up; the slices alternate every cold role between its configured allocator and
//! the other one, starting with the configured one, so that both allocators see the
//! early and the late warm-up alike. Each slice's timed calls (the timed-allocator
//! histograms of [`common::alloc`], switched on for every cold thread by
//! [`common::routed::request_profiling`]) are added to the allocator it ran on.
//!
//! **The rule.** A role moves off its configured allocator only if both allocators
//! served at least [`MIN_CALLS`] of its `alloc` and `realloc` calls and the other
//! one's mean call was at least [`MARGIN`] faster; otherwise it keeps the configured
//! one. Frees are left out of the evidence: a free goes home by address, so the
//! slice after a switch frees blocks of the other allocator. The hot roles
//! ([`common::routed::HOT_ROLES`]) are never timed and keep their route. A route change
//! never moves live memory. After the warm-up the timing is switched off again (unless
//! the configuration's `cold.time_allocator` asks for it).
//!
//! Allocates (snapshots of the histograms, the report) and sleeps: never on a hot
//! thread.

use common::alloc::{CallTimes, TimedSnapshot};
use common::clock::Clock;
use common::config::{Config, RouteAlloc};
use common::routed::{role_index, role_route, set_role_route, HOT_ROLES};
use common::summary::{RoleRouting, RouteEvidence};
use std::time::{Duration, Instant};

/// Slices of the warm-up, alternating allocators.
pub const SLICES: usize = 6;
/// Calls each allocator must have served for a role before the rule may move it.
pub const MIN_CALLS: u64 = 100;
/// How much faster (fraction of the configured allocator's mean call) the other one
/// must be.
pub const MARGIN: f64 = 0.05;

/// The routes as configured, no adaptation: one row per role.
pub fn fixed(config: &Config) -> Vec<RoleRouting> {
    config
        .routing
        .roles
        .all()
        .iter()
        .map(|(role, alloc)| RoleRouting {
            role: role.to_string(),
            configured: alloc.name().to_string(),
            chosen: alloc.name().to_string(),
            changes: 0,
            evidence: None,
        })
        .collect()
}

/// Sleeps `d`, in short steps, unless `done` says the run is over; whether it is not.
fn nap(d: Duration, done: &dyn Fn() -> bool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if done() {
            return false;
        }
        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(20)));
    }
    true
}

fn other(a: RouteAlloc) -> RouteAlloc {
    match a {
        RouteAlloc::Jemalloc => RouteAlloc::Mimalloc,
        RouteAlloc::Mimalloc => RouteAlloc::Jemalloc,
    }
}

/// The calls that count as evidence: `alloc` and `realloc` together.
fn evidence_of(s: &TimedSnapshot, role: &str, ns_per_tick: f64) -> CallTimes {
    let a = s.times(role, "alloc", ns_per_tick);
    let r = s.times(role, "realloc", ns_per_tick);
    if r.count == 0 {
        return a;
    }
    // The percentiles of the larger set stand for both; the mean and count are exact
    // over both.
    let count = a.count + r.count;
    let mean = (a.mean_ns * a.count as f64 + r.mean_ns * r.count as f64) / count as f64;
    let big = if a.count >= r.count { a } else { r };
    CallTimes {
        count,
        mean_ns: mean,
        max_ns: a.max_ns.max(r.max_ns),
        ..big
    }
}

/// The rule: the allocator a role keeps, and why.
pub fn decide(configured: RouteAlloc, on: &CallTimes, off: &CallTimes) -> (RouteAlloc, String) {
    let (c, o) = (configured.name(), other(configured).name());
    if on.count < MIN_CALLS || off.count < MIN_CALLS {
        return (
            configured,
            format!(
                "kept {c}: too few calls to choose ({} on {c}, {} on {o}; {MIN_CALLS} each needed)",
                on.count, off.count
            ),
        );
    }
    let gain = 1.0 - off.mean_ns / on.mean_ns;
    if gain >= MARGIN {
        (
            other(configured),
            format!(
                "chose {o}: mean call {:.0} ns against {:.0} ns on {c} ({:.0}% faster)",
                off.mean_ns,
                on.mean_ns,
                gain * 100.0
            ),
        )
    } else {
        (
            configured,
            format!(
                "kept {c}: mean call {:.0} ns against {:.0} ns on {o} (the other must be {:.0}% faster)",
                on.mean_ns,
                off.mean_ns,
                MARGIN * 100.0
            ),
        )
    }
}

/// Profiles the cold roles over the warm-up, sets each one's route for the measured
/// phase and says on stderr what it chose and why; one row per role. Stops early
/// (keeping the configured routes) if `done` says both sides have ended.
pub fn adapt(config: &Config, done: &dyn Fn() -> bool) -> Vec<RoleRouting> {
    let ns_per_tick = Clock::new().ns_per_raw();
    let warmup = Duration::from_secs_f64(config.warmup_s);
    let slice = warmup.mul_f64(0.9 / SLICES as f64);
    let mut rows = fixed(config);
    let cold: Vec<(usize, RouteAlloc)> = config
        .routing
        .roles
        .all()
        .iter()
        .filter(|(r, _)| !HOT_ROLES.contains(r))
        .filter_map(|(r, a)| Some((role_index(r)?, *a)))
        .collect();
    // Per allocator (jemalloc, mimalloc): the calls timed while the roles ran on it.
    let mut on = [TimedSnapshot::default(), TimedSnapshot::default()];
    let slot = |a: RouteAlloc| match a {
        RouteAlloc::Jemalloc => 0,
        RouteAlloc::Mimalloc => 1,
    };
    let mut completed = nap(warmup.mul_f64(0.1), done);
    let mut before = TimedSnapshot::take();
    for k in 0..SLICES {
        if !completed {
            break;
        }
        let flip = k % 2 == 1;
        for &(i, a) in &cold {
            let want = if flip { other(a) } else { a };
            if role_route(i) != want.route() {
                set_role_route(i, want.route());
                rows[i].changes += 1;
            }
        }
        completed = nap(slice, done);
        let after = TimedSnapshot::take();
        let d = after.since(&before);
        before = after;
        // Each role ran this slice on its own allocator: add its calls there.
        for &(i, a) in &cold {
            let want = if flip { other(a) } else { a };
            on[slot(want)].add_role(&d, common::routed::ROLES[i]);
        }
    }
    if !config.cold.time_allocator {
        common::alloc::set_timing(false);
    }
    for &(i, configured) in &cold {
        let role = common::routed::ROLES[i];
        let je = evidence_of(&on[0], role, ns_per_tick);
        let mi = evidence_of(&on[1], role, ns_per_tick);
        let (mine, theirs) = match configured {
            RouteAlloc::Jemalloc => (&je, &mi),
            RouteAlloc::Mimalloc => (&mi, &je),
        };
        let (chosen, why) = if completed {
            decide(configured, mine, theirs)
        } else {
            (
                configured,
                format!(
                    "kept {}: the run ended during the warm-up",
                    configured.name()
                ),
            )
        };
        if role_route(i) != chosen.route() {
            set_role_route(i, chosen.route());
            rows[i].changes += 1;
        }
        rows[i].chosen = chosen.name().to_string();
        if je.count + mi.count > 0 {
            eprintln!(
                "pipeline: adaptive: {role}: {why} (jemalloc: {} calls, mean {:.0} ns, p99 {:.0} ns; mimalloc: {} calls, mean {:.0} ns, p99 {:.0} ns)",
                je.count, je.mean_ns, je.p99_ns, mi.count, mi.mean_ns, mi.p99_ns
            );
        }
        rows[i].evidence = Some(RouteEvidence {
            jemalloc: je,
            mimalloc: mi,
            decision: why,
        });
    }
    let moved: Vec<String> = rows
        .iter()
        .filter(|r| r.chosen != r.configured)
        .map(|r| format!("{} on {}", r.role, r.chosen))
        .collect();
    eprintln!(
        "pipeline: adaptive: measured phase: {}",
        if moved.is_empty() {
            "every role on its configured allocator".to_string()
        } else {
            moved.join(", ")
        }
    );
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(count: u64, mean_ns: f64) -> CallTimes {
        CallTimes {
            count,
            mean_ns,
            ..CallTimes::default()
        }
    }

    #[test]
    fn the_rule_moves_a_role_only_on_enough_calls_and_a_clear_margin() {
        let j = RouteAlloc::Jemalloc;
        let (a, why) = decide(j, &times(1000, 100.0), &times(1000, 80.0));
        assert_eq!(a, RouteAlloc::Mimalloc, "{why}");
        assert!(
            why.starts_with("chose mimalloc: mean call 80 ns against 100 ns"),
            "{why}"
        );
        let (a, why) = decide(j, &times(1000, 100.0), &times(1000, 97.0));
        assert_eq!(a, j, "3% is inside the margin: {why}");
        let (a, why) = decide(j, &times(1000, 100.0), &times(50, 10.0));
        assert_eq!(a, j, "{why}");
        assert!(why.contains("too few calls"), "{why}");
        let (a, _) = decide(RouteAlloc::Mimalloc, &times(500, 60.0), &times(500, 40.0));
        assert_eq!(a, j);
    }
}
