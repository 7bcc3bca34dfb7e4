//! What the relay writes when it ends (`relay_summary.json`), readable without the
//! `aeron` feature (so `lab cluster` reads it in any build).
//!
//! Per feed run heard, every sequence number the feed named is accounted for once:
//! `published = relayed + recovered + unrecovered` (`unaccounted` is the difference,
//! 0 when nothing is lost track of). Plain data: allocates, for cold code only.

use common::alloc::AllocCounts;
use common::latency::Percentiles;
use common::manifest::Manifest;
use common::summary::{EndReason, RecoveryReport};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The summary the relay writes into its `--out` folder.
pub const RELAY_SUMMARY: &str = "relay_summary.json";

/// One feed run the relay heard, and what became of its sequence numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelaySession {
    /// The feed run's identity (its ring's producer start, ns since the Unix epoch).
    pub producer: u64,
    /// The newest sequence number the feed named (in a tick, a heartbeat or its end).
    pub published: u64,
    /// Ticks that arrived over Aeron and went into the local ring (at once, or held
    /// in order while a gap before them was filled).
    pub relayed: u64,
    /// Sequence numbers that never arrived over Aeron (what Aeron could not recover,
    /// what the feed could not offer, what the relay missed before it heard the feed).
    pub missing: u64,
    /// Runs of missing sequence numbers.
    pub gaps: u64,
    /// Ticks filled from the feed's history service (`net.history`) and put into the
    /// ring in sequence order: the missing ones, and live ones that found the hold
    /// buffer full.
    pub recovered: u64,
    /// Ticks neither relayed nor recovered (no `net.history`, not in the service's
    /// history, or outstanding when the feed run ended).
    pub unrecovered: u64,
    /// Duplicates and late ticks, not relayed.
    pub old: u64,
    /// `published − relayed − recovered − unrecovered`: 0 when every sequence number is
    /// accounted for.
    pub unaccounted: i64,
    /// Whether the feed's end message arrived.
    pub ended: bool,
}

impl RelaySession {
    /// The session's record with its accounting closed.
    pub fn closed(mut self) -> RelaySession {
        self.unaccounted = self.published as i64
            - self.relayed as i64
            - self.recovered as i64
            - self.unrecovered as i64;
        self
    }
}

/// `relay_summary.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RelaySummary {
    /// The channel it subscribed to.
    pub channel: String,
    /// Its Aeron stream id.
    pub stream_id: i32,
    /// The feed's history service the gaps were filled from (`net.history`), if any.
    #[serde(default)]
    pub history: Option<String>,
    /// The feed runs heard, in order.
    pub sessions: Vec<RelaySession>,
    /// Messages that were not the feed's (wrong length, magic or kind).
    pub foreign: u64,
    /// Ticks that arrived before the relay heard which feed run sent them (its first
    /// control message): not relayed, filled from the history service with the gap
    /// that message reveals.
    #[serde(default)]
    pub before_first_control: u64,
    /// The network hop, feed publish → relay receive, nanoseconds (every tick that
    /// arrived over Aeron and was relayed).
    pub net_ns: Percentiles,
    /// The relay's own cost: receive → the tick's stamp as it enters the local ring,
    /// nanoseconds (ticks relayed at once, not those held while a gap was filled).
    #[serde(default)]
    pub relay_ns: Percentiles,
    /// Gap filling (with `net.history`): ranges, ticks recovered and not, the hold
    /// buffer, time spent holding (`stale_ms_*`), requests and their errors.
    #[serde(default)]
    pub recovery: Option<RecoveryReport>,
    /// The relay's media driver's system counters at the end (`NAKs sent`: the gaps it
    /// asked the feed's driver to retransmit, which Aeron recovered; `Loss gap fills`:
    /// what it gave up on), by label.
    pub driver_counters: BTreeMap<String, i64>,
    /// Global allocator calls of the receive loop (0: nothing allocated).
    pub loop_allocs: AllocCounts,
    /// Whether the receive loop ran on `cores.feed_md`.
    pub pinned: bool,
    /// Why it ended.
    pub end_reason: EndReason,
    /// Build and machine.
    pub manifest: Manifest,
}
