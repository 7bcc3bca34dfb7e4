//! What a run measured: the feed's [`FeedSummary`], the engine's [`EngineSummary`]
//! (with one [`FeedSession`] per feed it read), and the [`Summary`] that `lab run`
//! merges from both (`summary.json`), each with why the process stopped
//! ([`EndReason`]) and its [`Manifest`].
//!
//! Plain data, written and read as JSON with serde. Building and merging summaries
//! allocates: it runs at the end of a run, never per tick.

use crate::alloc::{AllocCounts, CallTimes};
use crate::budget::ColdBudget;
use crate::latency::Percentiles;
use crate::manifest::{AllocatorInfo, Manifest};
use crate::mechanisms::Mechanisms;
use crate::memory::MemoryReport;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why a process stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The feed published its whole configured duration / the engine drained the stream.
    #[default]
    EndOfStream,
    /// The configured duration (plus grace) passed.
    Duration,
    /// SIGINT or SIGTERM.
    Signal,
    /// The producer stopped showing signs of life.
    ProducerGone,
}

/// What the feed's Aeron publication sent and refused, by cause (`[net]`). A refused
/// tick is in the ring but not on the network: the relays count it missing.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetSendReport {
    /// The channel URI.
    pub channel: String,
    /// The Aeron stream id.
    pub stream_id: i32,
    /// What was sent and refused.
    pub stats: NetSendStats,
}

/// Counts of the feed's Aeron publication.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetSendStats {
    /// Ticks offered and accepted.
    pub sent: u64,
    /// Ticks refused: no subscriber connected.
    pub not_connected: u64,
    /// Ticks refused: back-pressure (the slowest receiver is a term behind).
    pub back_pressured: u64,
    /// Ticks refused: an admin action (a term rotation) was in progress.
    pub admin_action: u64,
    /// Ticks refused: the publication is closed or failed.
    pub failed: u64,
    /// Control messages (heartbeats, the end) refused, whatever the cause.
    pub control_refused: u64,
    /// Bytes of the stream the receiver that paces it had not consumed when the feed
    /// stopped waiting for it at the end (0: it had everything). That receiver is the
    /// slowest under `net.flow_control = "min"` (0: every receiver had everything) and
    /// the fastest under `"max"`, where a slower one is not waited for.
    #[serde(default)]
    pub unconsumed_at_end: u64,
}

impl NetSendStats {
    /// Ticks refused, all causes.
    pub fn refused(&self) -> u64 {
        self.not_connected + self.back_pressured + self.admin_action + self.failed
    }
}

/// One feed the engine read from: the first, and a new one after each restart of the
/// feed (`engine.on_producer_gone = "wait"`). For each, every tick the feed published
/// is received, counted missed, or counted unread (published after the engine stopped).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FeedSession {
    /// The feed's process id.
    pub producer_pid: u32,
    /// The feed's start time (ns since the Unix epoch), unique per feed start.
    pub epoch_ns: u64,
    /// Ticks the feed had published when the engine left its ring.
    pub published: u64,
    /// Ticks received whole.
    pub received: u64,
    /// Ticks skipped in gaps, or corrupt.
    pub missed: u64,
    /// Gaps reported.
    pub gaps: u64,
    /// Of `missed`, ticks recovered from the history service (`engine.recover`).
    #[serde(default)]
    pub recovered: u64,
    /// Of `missed`, ticks not recovered (`engine.recover`): `published = received +
    /// recovered + unrecovered + unread`.
    #[serde(default)]
    pub unrecovered: u64,
    /// Ticks published that the engine never polled because it stopped first.
    pub unread: u64,
    /// Why the engine left this feed's ring.
    pub end: EndReason,
    /// Whether the ring was lossless and the feed evicted this engine (it stopped
    /// waiting for it after `ring.consumer_timeout_ms`).
    pub evicted: bool,
}

/// A consumer the feed stopped waiting for (lossless mode).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EvictionReport {
    /// The consumer's process id.
    pub pid: u32,
    /// The highest sequence number it had passed.
    pub cursor: u64,
    /// The sequence number the feed was waiting to publish.
    pub blocked_seq: u64,
}

/// How the engine warmed its symbols from the feed's history service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WarmReport {
    /// Ticks of the snapshot applied to the books.
    pub snapshot_ticks: u64,
    /// The highest sequence number the snapshot covered: the ring's ticks up to it
    /// were received and skipped.
    pub covered_through: u64,
    /// Ring ticks received and skipped because the snapshot had them.
    pub skipped: u64,
    /// Symbols whose window the snapshot filled.
    pub symbols_full: u64,
    /// The fewest mids in any symbol's window when it first quoted after the last
    /// warm-up (the window's length when every symbol waited for a full one).
    pub first_quote_window_min: u64,
    /// Snapshots warmed from: one at start, one per new feed session after it.
    #[serde(default)]
    pub warmups: u64,
    /// Why there was no snapshot, if there was none (the engine then warmed from the
    /// ring).
    pub error: Option<String>,
}

/// How the engine recovered the ticks it missed (`engine.recover`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecoveryReport {
    /// Recoveries: stretches of time the engine was stale (not quoting) while it fetched
    /// missed ticks.
    pub recoveries: u64,
    /// Range requests the hot thread handed to the recovery thread.
    pub ranges: u64,
    /// Missed ticks recovered and applied to the books, in sequence order.
    pub recovered: u64,
    /// Missed ticks the service did not have (evicted from its history, or not there
    /// within `engine.producer_timeout_ms`) or that were outstanding when the engine
    /// left the feed.
    pub unrecovered: u64,
    /// Live ticks that arrived while recovering and found the buffer full: counted as
    /// missed and recovered from the service in turn.
    pub overflowed: u64,
    /// The buffer's capacity (`engine.recovery_buffer`) and the most live ticks it held.
    pub buffer_capacity: u64,
    /// See [`RecoveryReport::buffer_capacity`].
    pub buffered_max: u64,
    /// Orders the engine made (sent or dropped) while stale, measured from its order
    /// counts at the start and end of each stale stretch: 0 when no symbol quoted
    /// while recovering.
    pub orders_while_stale: u64,
    /// The longest and the total time stale, milliseconds.
    pub stale_ms_max: f64,
    /// See [`RecoveryReport::stale_ms_max`].
    pub stale_ms_total: f64,
    /// Service requests the recovery thread made, and the ones that failed (connection,
    /// protocol) and were retried.
    pub requests: u64,
    /// See [`RecoveryReport::requests`].
    pub request_errors: u64,
    /// Answers from another feed run than the range's (a new feed on the same socket):
    /// not applied, the rest of their range unrecovered.
    #[serde(default)]
    pub foreign_answers: u64,
    /// The last request error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// What the engine's service-load thread (`engine.service_load`) measured: its requests,
/// the ticks served to it and each request's time from connecting to the answer's last
/// byte, as a client sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Requests answered whole.
    pub requests: u64,
    /// Of them, snapshots.
    pub snapshots: u64,
    /// Requests that failed (connection, refusal, protocol).
    pub errors: u64,
    /// The last failure, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Ticks received in answers.
    pub ticks: u64,
    /// Seconds the load ran.
    pub seconds: f64,
    /// Ticks received per second of the load (the service's throughput at this load).
    pub ticks_per_s: f64,
    /// Request time, connect to last byte: median, microseconds.
    pub latency_p50_us: f64,
    /// Its 99th percentile, microseconds.
    pub latency_p99_us: f64,
    /// Its largest, microseconds.
    pub latency_max_us: f64,
}

/// What the feed's history service did in a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceReport {
    /// The socket.
    pub socket: String,
    /// The TCP address the service listened on (`feed.service.listen`, with the port
    /// the system chose where it was 0); empty: none.
    #[serde(default)]
    pub listen: String,
    /// Connections accepted.
    pub accepted: u64,
    /// Connections refused because `max_clients` were connected.
    pub refused_busy: u64,
    /// Requests received whole.
    pub requests: u64,
    /// Requests and frames refused (malformed, over the rate).
    pub errors: u64,
    /// Clients closed for stalling (a frame half sent, or their answer unread).
    pub closed_stalled: u64,
    /// Requests answered to the last byte.
    pub answered: u64,
    /// Ticks sent.
    pub ticks_served: u64,
    /// Of them, ticks of ranges older than the history's memory, read back from the
    /// journal.
    #[serde(default)]
    pub journal_ticks_served: u64,
    /// Range reads from the journal that failed (the range went on past them).
    #[serde(default)]
    pub journal_errors: u64,
    /// Bars sent.
    pub bars_served: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Request received to its answer's last byte written: median, microseconds.
    pub latency_p50_us: f64,
    /// Its 99th percentile, microseconds.
    pub latency_p99_us: f64,
    /// Its largest, microseconds.
    pub latency_max_us: f64,
}

/// What the feed's journal did in a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JournalReport {
    /// The journal folder.
    pub dir: String,
    /// This run's epoch.
    pub epoch: u64,
    /// Whether this run continued the newest epoch's sequence
    /// (`feed.journal.on_restart = "continue"` on a journal that had one).
    #[serde(default)]
    pub continued: bool,
    /// Sequence number of this run's first tick (1 unless it continued an epoch).
    #[serde(default)]
    pub first_seq: u64,
    /// Ticks of earlier epochs (and runs) restored into the history at start.
    pub restored: u64,
    /// Bytes of a torn tail cut from the newest segment at start (0: none).
    pub truncated_bytes: u64,
    /// Ticks journaled in this run.
    pub journaled: u64,
    /// Blocks written in this run.
    pub blocks: u64,
    /// Segments removed by retention in this run.
    pub removed_segments: u64,
    /// Ticks the history thread received but could not journal (after a write error).
    pub unjournaled: u64,
    /// The write error that stopped the journal, if one did.
    pub error: Option<String>,
}

/// What a lossless feed waited for.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LosslessReport {
    /// Times the feed found its slowest consumer a whole ring behind and waited.
    pub waits: u64,
    /// Milliseconds spent waiting.
    pub wait_ms: f64,
    /// Consumers evicted after the liveness timeout.
    pub evictions: u64,
    /// The first evictions, with what each consumer had passed.
    pub evicted: Vec<EvictionReport>,
}

/// What the feed reports at the end of a run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FeedSummary {
    /// Ticks published to the ring.
    pub published: u64,
    /// Configured total rate, ticks per second.
    pub offered_per_s: f64,
    /// Published ticks divided by the publishing time.
    pub achieved_per_s: f64,
    /// Seconds spent publishing.
    pub elapsed_s: f64,
    /// Ticks held in the cold history at the end.
    pub history_ticks: u64,
    /// Bytes of tick history held at the end (ticks × 64).
    pub history_bytes: u64,
    /// Ticks evicted from the history by the retention limit.
    pub history_evicted: u64,
    /// Completed 1-second OHLCV bars held at the end.
    pub history_bars: u64,
    /// History copies dropped because the md → history channel was full.
    pub history_dropped: u64,
    /// A digest of the held ticks' content (`History::digest` in the feed: sequence
    /// numbers and market data, not time stamps), hexadecimal: equal for two runs of one
    /// seeded configuration that drop nothing.
    #[serde(default)]
    pub history_digest: String,
    /// Global allocator calls of the md (publishing) thread while publishing.
    pub md_allocs: AllocCounts,
    /// Global allocator calls per thread role (`feed_main`, `feed_md`, `feed_history`),
    /// since each thread started.
    pub alloc_profile: BTreeMap<String, AllocCounts>,
    /// RSS, page faults, allocator statistics and fragmentation over the run.
    pub memory: MemoryReport,
    /// Lossless mode (`ring.lossless`): waits and evictions.
    #[serde(default)]
    pub lossless: Option<LosslessReport>,
    /// The pid of the dead feed whose ring this feed reclaimed.
    #[serde(default)]
    pub reclaimed_ring_of_pid: Option<u32>,
    /// The tick journal (`feed.journal`), where configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<JournalReport>,
    /// The history service (`feed.service`), where configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceReport>,
    /// The Aeron publication beside the ring (`[net]`): what it sent and refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<NetSendReport>,
    /// What each cold thread cost (`feed_history`): CPU per second, stretches.
    #[serde(default)]
    pub cold_threads: BTreeMap<String, ColdBudget>,
    /// Page faults, context switches and CPU time per thread (and, from the engine,
    /// interrupts on the hot cores) and the allocator's counters over the measured part
    /// of the run, where it lasted at least two report intervals' samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanisms: Option<Mechanisms>,
    /// The timed-allocator mode (`cold.time_allocator`): allocator call times per cold
    /// thread role and operation, over the whole run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub alloc_call_ns: BTreeMap<String, BTreeMap<String, CallTimes>>,
    /// Why the feed stopped.
    pub end_reason: EndReason,
    /// Run manifest.
    pub manifest: Manifest,
}

/// What an engine that read the feed's Aeron stream itself reports of it
/// (`engine.source = "aeron"`): what it skipped beyond the sessions' counts, and its media
/// driver's system counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AeronReadReport {
    /// The channel subscribed to.
    pub channel: String,
    /// Its stream id.
    pub stream_id: i32,
    /// Ticks heard before a feed run's first control message: not counted as published
    /// (the engine joins a run at its first control message).
    pub before_join: u64,
    /// Ticks heard twice or out of order (skipped).
    pub duplicates: u64,
    /// Messages that were not the project's (skipped).
    pub foreign: u64,
    /// Feed runs joined.
    pub runs: u64,
    /// The engine's media driver's system counters at the end (`NAKs sent`: the
    /// retransmissions it asked for, which Aeron recovered), when it ran in the engine.
    #[serde(default)]
    pub driver_counters: BTreeMap<String, i64>,
}

/// What the engine reports at the end of a run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EngineSummary {
    /// Ticks the feeds had published when the engine left their rings (summed over
    /// `sessions`).
    pub published_seen: u64,
    /// One entry per feed read from; more than one after feed restarts.
    #[serde(default)]
    pub sessions: Vec<FeedSession>,
    /// Ticks published that the engine never polled because it stopped first.
    #[serde(default)]
    pub unread: u64,
    /// Ticks received whole.
    pub received: u64,
    /// Gaps (lapped reads) reported by the ring.
    pub gaps: u64,
    /// Ticks skipped in gaps, or corrupt.
    pub missed: u64,
    /// Of `missed`, ticks recovered from the history service (`engine.recover`).
    #[serde(default)]
    pub recovered: u64,
    /// Of `missed`, ticks not recovered (`engine.recover`; see [`RecoveryReport`]).
    #[serde(default)]
    pub unrecovered: u64,
    /// Gap recovery (`engine.recover`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryReport>,
    /// The service load the engine made (`engine.service_load`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_load: Option<LoadReport>,
    /// The feed's Aeron stream, read with no relay (`engine.source = "aeron"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aeron: Option<AeronReadReport>,
    /// Ticks received after the warm-up (the ones in the latency figures).
    pub measured_ticks: u64,
    /// Scratch strategy.
    pub scratch: String,
    /// Hot-thread global allocator calls per measured tick.
    pub global_allocs_per_tick: f64,
    /// Hot-thread allocator counts after the warm-up.
    pub hot_allocs: AllocCounts,
    /// Orders encoded and handed to the cold thread.
    pub orders: u64,
    /// Orders dropped because the hot → cold channel was full.
    pub orders_dropped: u64,
    /// Orders the cold thread checked and found well formed; `orders_verified +
    /// orders_invalid = orders`: every order handed off is checked.
    #[serde(default)]
    pub orders_verified: u64,
    /// Orders the cold thread found malformed (framing, length or checksum); should be 0.
    pub orders_invalid: u64,
    /// CRC-32 of every order message's bytes in the order they were handed off,
    /// hexadecimal: two runs on the same ticks (`feed --replay`) that drop no order emit
    /// the same orders exactly when their digests agree.
    #[serde(default)]
    pub orders_digest: String,
    /// The snapshot the engine warmed from at start (`engine.history_service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<WarmReport>,
    /// Lots filled against the engine's quotes (simulated from trades).
    pub filled_lots: u64,
    /// Net position at the end, lots.
    pub net_position_lots: i64,
    /// Ticks whose slot held bytes that are not a valid tick (counted in `missed`).
    pub corrupt: u64,
    /// Arena capacity at the end (bytes; 0 without an arena).
    pub arena_bytes: u64,
    /// Pool counters (`scratch = "pool"`): fallbacks to the global allocator, blocks and
    /// high-water mark per size class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<crate::pool::PoolStats>,
    /// Global allocator calls per thread role (`engine_main`, `engine_hot`,
    /// `engine_report`, `engine_orders`, `engine_recovery`), since each thread started.
    pub alloc_profile: BTreeMap<String, AllocCounts>,
    /// RSS, page faults, allocator statistics and fragmentation over the run.
    pub memory: MemoryReport,
    /// Latency percentiles per stage after the warm-up, nanoseconds.
    pub latency_ns: BTreeMap<String, Percentiles>,
    /// What each cold thread cost (`engine_report`, `engine_orders`, `engine_recovery` with recovery on).
    #[serde(default)]
    pub cold_threads: BTreeMap<String, ColdBudget>,
    /// Page faults, context switches and CPU time per thread (and, from the engine,
    /// interrupts on the hot cores) and the allocator's counters over the measured part
    /// of the run, where it lasted at least two report intervals' samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanisms: Option<Mechanisms>,
    /// The timed-allocator mode (`cold.time_allocator`): allocator call times per cold
    /// thread role and operation, over the whole run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub alloc_call_ns: BTreeMap<String, BTreeMap<String, CallTimes>>,
    /// Why the engine stopped.
    pub end_reason: EndReason,
    /// Run manifest.
    pub manifest: Manifest,
}

impl EngineSummary {
    /// The ticks the engine counted as missed: with gap recovery on, each is recovered
    /// or unrecovered; without, the gaps' count.
    pub fn missed_accounted(&self) -> u64 {
        match self.recovery {
            Some(_) => self.recovered + self.unrecovered,
            None => self.missed,
        }
    }

    /// `published − received − missed − unread` for a producer that published
    /// `published` ticks: 0 when the engine accounted for every one.
    pub fn unaccounted(&self, published: u64) -> i64 {
        published as i64
            - self.received as i64
            - self.missed_accounted() as i64
            - self.unread as i64
    }
}

/// Tick accounting of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickCounts {
    /// Published by the feed.
    pub published: u64,
    /// Received whole by the engine.
    pub received: u64,
    /// Gaps the engine reported.
    pub gaps: u64,
    /// Ticks the engine missed in gaps.
    pub missed: u64,
}

/// Offered and achieved rates.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Rates {
    /// Configured total rate, ticks/s.
    pub offered_per_s: f64,
    /// Rate the feed achieved, ticks/s.
    pub achieved_per_s: f64,
}

/// The engine section of `summary.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EngineSection {
    /// Allocator name and version.
    pub allocator: AllocatorInfo,
    /// Scratch strategy.
    pub scratch: String,
    /// Hot-thread global allocator calls per tick after warm-up.
    pub global_allocs_per_tick: f64,
    /// Everything else the engine reported.
    pub detail: EngineSummary,
}

/// The feed section of `summary.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FeedSection {
    /// Allocator name and version.
    pub allocator: AllocatorInfo,
    /// Ticks in the cold history at the end.
    pub history_ticks: u64,
    /// Everything else the feed reported.
    pub detail: FeedSummary,
}

/// The machine's own noise on one hot core, probed beside a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CoreNoise {
    /// The core.
    pub core: usize,
    /// Fraction of the probe's time lost in gaps over 1 µs between clock reads.
    pub lost_fraction: f64,
    /// Gaps over 100 µs per second.
    pub gaps_over_100us_per_s: f64,
    /// 99.9th percentile of the gaps, nanoseconds.
    pub gap_p99_9_ns: u64,
    /// The longest gap, nanoseconds.
    pub max_gap_ns: u64,
}

/// The machine's noise floor on the hot cores, probed beside a run (`lab run --noise`):
/// a busy loop reading the clock on each hot core at once, and what those gaps alone
/// would do to a steady stream of ticks through the cores.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NoiseFloor {
    /// Seconds the cores were probed.
    pub seconds: f64,
    /// When it was probed: `before` the run.
    pub when: String,
    /// Each core's figures.
    pub cores: Vec<CoreNoise>,
    /// The best p99 a steady stream through these cores could have: the delay that only
    /// 1% of ticks arriving at uniform times would exceed because of the probed gaps
    /// alone (a tick arriving in a gap waits for its end), nanoseconds.
    pub stream_p99_ns: u64,
    /// The same for p99.9.
    pub stream_p99_9_ns: u64,
}

/// The merged result of one run (`summary.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Tick accounting.
    pub ticks: TickCounts,
    /// Offered and achieved rates.
    pub rate: Rates,
    /// Latency percentiles per stage, nanoseconds.
    pub latency_ns: BTreeMap<String, Percentiles>,
    /// Engine figures.
    pub engine: EngineSection,
    /// Feed figures.
    pub feed: FeedSection,
    /// What each cold thread of both processes cost the cores it shared with the hot
    /// threads: CPU time per second and its stretches between sleeps.
    #[serde(default)]
    pub cold_threads: BTreeMap<String, ColdBudget>,
    /// The machine's noise floor on the hot cores, when it was probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<NoiseFloor>,
    /// The mechanisms of each process (`feed`, `engine`) over its measured window.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mechanisms: BTreeMap<String, Mechanisms>,
    /// Allocator call times per cold thread role and operation, both processes (the
    /// timed-allocator mode).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub alloc_call_ns: BTreeMap<String, BTreeMap<String, CallTimes>>,
    /// The environment (from the engine's manifest, with both allocators).
    pub manifest: Manifest,
    /// Every engine of a run of several on one feed (`lab run --engines N`), the first
    /// being the one of `engine`, `ticks` and `latency_ns`; empty for one engine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub engines: Vec<EngineRow>,
    /// The engines' totals, with several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engines_total: Option<EnginesTotal>,
    /// The routing allocator's routes and counts (a single-process run on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<RoutingReport>,
}

/// What the routing allocator did in one single-process run (`routing.json`): the hot
/// arena, the route of each thread role (as configured and as run, with the adaptive
/// router's evidence) and both routes' counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoutingReport {
    /// The hot arena's size, bytes.
    pub arena_bytes: u64,
    /// The size above which a hot-routed role's allocations go to jemalloc.
    pub hot_max_bytes: Option<u64>,
    /// Whether the router adapted the cold roles' routes during the warm-up.
    pub adaptive: bool,
    /// Each thread role, in the order of [`crate::routed::ROLES`].
    pub roles: Vec<RoleRouting>,
    /// Both routes' counts over the whole run.
    pub counts: crate::routed::RouteStats,
}

/// One thread role's route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleRouting {
    /// The role (`feed_history`, …).
    pub role: String,
    /// The allocator the configuration names (`mimalloc`: the hot arena; `jemalloc`).
    pub configured: String,
    /// The allocator it ran the measured phase on.
    pub chosen: String,
    /// Times the router switched its route (the adaptive warm-up's alternation
    /// included).
    pub changes: u64,
    /// The adaptive router's evidence: its allocation calls timed on each allocator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<RouteEvidence>,
}

/// The adaptive router's evidence for one role: its `alloc` calls (with `realloc`s)
/// timed during the warm-up, on each allocator in turn, and what it decided.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteEvidence {
    /// Calls on jemalloc.
    pub jemalloc: CallTimes,
    /// Calls on the hot arena (mimalloc).
    pub mimalloc: CallTimes,
    /// The rule's verdict, in words.
    pub decision: String,
}

/// One engine of a run of several on one feed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineRow {
    /// `engine-1`, `engine-2`, …: also its folder in the run folder.
    pub name: String,
    /// Its hot core.
    pub core: usize,
    /// Ticks the feed had published when it left the ring.
    pub published_seen: u64,
    /// Ticks received.
    pub received: u64,
    /// Gaps.
    pub gaps: u64,
    /// Ticks missed.
    pub missed: u64,
    /// Of them, recovered (`engine.recover`).
    pub recovered: u64,
    /// Of them, not recovered.
    pub unrecovered: u64,
    /// Ticks published after it stopped reading.
    pub unread: u64,
    /// `published_seen − received − missed − unread`: 0 when every tick is accounted.
    pub unaccounted: i64,
    /// Orders handed to its order thread, and dropped.
    pub orders: u64,
    /// See [`EngineRow::orders`].
    pub orders_dropped: u64,
    /// Hot-thread global allocations per tick after warm-up.
    pub global_allocs_per_tick: f64,
    /// Its stage latencies after warm-up, nanoseconds.
    pub latency_ns: BTreeMap<String, Percentiles>,
    /// Why it stopped.
    pub end_reason: EndReason,
}

impl EngineRow {
    /// The row of engine `name` on `core` from its summary.
    pub fn of(name: String, core: usize, e: &EngineSummary) -> EngineRow {
        EngineRow {
            name,
            core,
            published_seen: e.published_seen,
            received: e.received,
            gaps: e.gaps,
            missed: e.missed,
            recovered: e.recovered,
            unrecovered: e.unrecovered,
            unread: e.unread,
            unaccounted: e.published_seen as i64
                - e.received as i64
                - e.missed as i64
                - e.unread as i64,
            orders: e.orders,
            orders_dropped: e.orders_dropped,
            global_allocs_per_tick: e.global_allocs_per_tick,
            latency_ns: e.latency_ns.clone(),
            end_reason: e.end_reason,
        }
    }
}

/// The totals over the engines of a run of several.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnginesTotal {
    /// Engines.
    pub engines: u64,
    /// Ticks received, summed (each engine receives every tick it does not miss).
    pub received: u64,
    /// Ticks missed, summed.
    pub missed: u64,
    /// Ticks recovered, summed.
    pub recovered: u64,
    /// Ticks published after an engine stopped, summed.
    pub unread: u64,
    /// Unaccounted ticks, summed: 0 when every engine accounted for every tick.
    pub unaccounted: i64,
    /// Orders, summed.
    pub orders: u64,
    /// Orders dropped, summed.
    pub orders_dropped: u64,
    /// The worst engine's percentile of each stage (percentiles of different engines
    /// do not add up): stage name → (p50, p99, p99.9) maxima, nanoseconds.
    pub worst_ns: BTreeMap<String, [u64; 3]>,
}

impl EnginesTotal {
    /// The totals of `rows`.
    pub fn of(rows: &[EngineRow]) -> EnginesTotal {
        let mut t = EnginesTotal {
            engines: rows.len() as u64,
            ..EnginesTotal::default()
        };
        for r in rows {
            t.received += r.received;
            t.missed += r.missed;
            t.recovered += r.recovered;
            t.unread += r.unread;
            t.unaccounted += r.unaccounted;
            t.orders += r.orders;
            t.orders_dropped += r.orders_dropped;
            for (stage, p) in &r.latency_ns {
                let w = t.worst_ns.entry(stage.clone()).or_default();
                for (i, v) in [p.p50, p.p99, p.p99_9].into_iter().enumerate() {
                    w[i] = w[i].max(v);
                }
            }
        }
        t
    }
}

impl Summary {
    /// Merges the two processes' summaries.
    pub fn merge(feed: FeedSummary, engine: EngineSummary) -> Summary {
        let mut manifest = engine.manifest.clone();
        manifest.cores_used.extend(feed.manifest.cores_used.clone());
        manifest
            .allocator_env
            .extend(feed.manifest.allocator_env.clone());
        manifest.allocators = [
            ("feed".to_string(), feed.manifest.allocator.clone()),
            ("engine".to_string(), engine.manifest.allocator.clone()),
        ]
        .into();
        Summary {
            ticks: TickCounts {
                published: feed.published,
                received: engine.received,
                gaps: engine.gaps,
                missed: engine.missed,
            },
            rate: Rates {
                offered_per_s: feed.offered_per_s,
                achieved_per_s: feed.achieved_per_s,
            },
            latency_ns: engine.latency_ns.clone(),
            noise: None,
            mechanisms: [("feed", &feed.mechanisms), ("engine", &engine.mechanisms)]
                .into_iter()
                .filter_map(|(p, m)| Some((p.to_string(), m.clone()?)))
                .collect(),
            alloc_call_ns: feed
                .alloc_call_ns
                .iter()
                .chain(&engine.alloc_call_ns)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            cold_threads: feed
                .cold_threads
                .iter()
                .chain(&engine.cold_threads)
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            engine: EngineSection {
                allocator: engine.manifest.allocator.clone(),
                scratch: engine.scratch.clone(),
                global_allocs_per_tick: engine.global_allocs_per_tick,
                detail: engine,
            },
            feed: FeedSection {
                allocator: feed.manifest.allocator.clone(),
                history_ticks: feed.history_ticks,
                detail: feed,
            },
            manifest,
            engines: Vec::new(),
            engines_total: None,
            routing: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_takes_counts_from_both_sides() {
        let feed = FeedSummary {
            published: 100,
            offered_per_s: 1000.0,
            achieved_per_s: 999.0,
            history_ticks: 100,
            manifest: Manifest {
                allocator: AllocatorInfo {
                    name: "jemalloc".into(),
                    version: "5".into(),
                },
                cores_used: [("feed_md".to_string(), 0)].into(),
                ..Manifest::default()
            },
            ..FeedSummary::default()
        };
        let engine = EngineSummary {
            received: 90,
            gaps: 1,
            missed: 10,
            scratch: "arena".into(),
            manifest: Manifest {
                allocator: AllocatorInfo {
                    name: "mimalloc".into(),
                    version: "2".into(),
                },
                cores_used: [("engine_hot".to_string(), 1)].into(),
                ..Manifest::default()
            },
            ..EngineSummary::default()
        };
        let s = Summary::merge(feed, engine);
        assert_eq!(
            s.ticks,
            TickCounts {
                published: 100,
                received: 90,
                gaps: 1,
                missed: 10
            }
        );
        assert_eq!(s.engine.allocator.name, "mimalloc");
        assert_eq!(s.feed.allocator.name, "jemalloc");
        assert_eq!(s.manifest.cores_used.len(), 2);
        assert_eq!(s.manifest.allocators["feed"].name, "jemalloc");
        assert_eq!(s.manifest.allocators["engine"].name, "mimalloc");
        let v = serde_json::to_value(&s).unwrap();
        for key in ["ticks", "rate", "latency_ns", "engine", "feed", "manifest"] {
            assert!(v.get(key).is_some(), "{key}");
        }
    }
}
