//! The run configuration: one TOML file read by feed, engine and lab.
//!
//! Every table has `deny_unknown_fields`, so a misspelt key is an error, not a silent
//! default. After parsing, [`Config::validate`] checks every value and cross-field
//! rule (positive finite rates, unique symbol names, a power-of-two ring capacity, a
//! core plan whose hot cores are distinct and allowed, …).
//!
//! Every error is a [`ConfigError::Invalid`] that renders as
//! `FILE:LINE:COLUMN: KEY: MESSAGE`, with the line and column of the offending key in
//! the file, so both processes fail with the same readable message.
//!
//! A configuration written from another one (`lab run`'s flags, `lab chaos`, the tests)
//! is derived with [`edit::Edit`], usually from the shipped [`DEFAULT_TOML`], and then
//! parsed and validated here like any file.
//!
//! Loading reads a file and allocates; it is start-up work, never on a hot path.

pub mod edit;
pub mod net;

use crate::cores::WaitStrategy;
use crate::hop::ChannelKind;
use crate::journal::{Fsync, OnRestart};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The text of the shipped `configs/default.toml`, built in: the base from which
/// `lab chaos` and the tests derive their configurations ([`edit::Edit`]).
pub const DEFAULT_TOML: &str = include_str!("../../configs/default.toml");

/// The cores `configs/default.toml` names (`cores.feed_md`, `cores.engine_hot`).
pub const DEFAULT_CORES: [usize; 2] = [0, 1];

impl Config {
    /// [`DEFAULT_TOML`] parsed and validated as `configs/default.toml` on a machine
    /// with the [`DEFAULT_CORES`]: the default scenario (seed, symbols, schedule,
    /// engine parameters) for benchmarks and tests that need no real machine.
    pub fn shipped_default() -> Config {
        Config::parse(
            DEFAULT_TOML,
            Path::new("configs/default.toml"),
            &DEFAULT_CORES,
        )
        .expect("the shipped configs/default.toml is valid (a test checks it)")
    }
}

/// Largest offered rate per symbol, and in total, in ticks per second.
pub const MAX_RATE_PER_S: f64 = 100_000_000.0;
/// Longest run (and longest ramp or burst), seconds: one week.
pub const MAX_DURATION_S: f64 = 7.0 * 86_400.0;
/// Largest number of symbols (the tick carries a 16-bit symbol index).
pub const MAX_SYMBOLS: usize = u16::MAX as usize + 1;
/// Longest symbol name (order messages carry it).
pub const MAX_SYMBOL_NAME: usize = 32;
/// Smallest ring capacity a configuration may ask for.
pub const MIN_RING_CAPACITY: u64 = 1024;
/// Largest ring capacity a configuration may ask for (2²⁶ slots, 4 GiB).
pub const MAX_RING_CAPACITY: u64 = 1 << 26;

/// A whole run, as read from TOML. See `configs/default.toml` and the README's
/// configuration reference for every key.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Seed of the synthetic market data; the same seed gives the same ticks.
    pub seed: u64,
    /// How long the feed publishes, in seconds.
    pub duration_s: f64,
    /// Leading part of the run whose latencies are discarded, in seconds.
    #[serde(default = "default_warmup_s")]
    pub warmup_s: f64,
    /// The shared-memory ring.
    pub ring: RingConfig,
    /// Core plan.
    pub cores: CoreConfig,
    /// Feed settings.
    #[serde(default)]
    pub feed: FeedConfig,
    /// Engine settings.
    #[serde(default)]
    pub engine: EngineConfig,
    /// Interval logs and output files.
    #[serde(default)]
    pub log: LogConfig,
    /// Memory warning thresholds.
    #[serde(default)]
    pub monitor: MonitorConfig,
    /// How cold threads share cores with hot ones.
    #[serde(default)]
    pub cold: ColdConfig,
    /// Process-wide memory settings.
    #[serde(default)]
    pub memory: MemoryConfig,
    /// Which allocator each thread role uses under the routing allocator (the
    /// single-process `pipeline` binary only).
    #[serde(default)]
    pub routing: RoutingConfig,
    /// The feed's stream over Aeron, beside the ring (absent: the ring only). Read by
    /// the feed and the relay built with the `aeron` feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<net::NetConfig>,
    /// The instruments, in symbol-index order.
    pub symbols: Vec<SymbolConfig>,
    /// The file and text this configuration was parsed from, so that a problem found
    /// later with one of its values (a path that holds someone else's file) can still
    /// be reported at the key's line and column. Not a key of the file.
    #[serde(skip)]
    pub origin: Origin,
}

/// Where a [`Config`] came from: its file and text.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    /// The file.
    pub path: PathBuf,
    /// Its text.
    pub text: std::sync::Arc<str>,
}

fn default_warmup_s() -> f64 {
    1.0
}

/// `[ring]`: where the ring lives and how many ticks it holds.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RingConfig {
    /// Path of the ring file, normally under `/dev/shm`.
    pub path: PathBuf,
    /// Number of 64-byte slots; a power of two.
    pub capacity: u64,
    /// Lossless mode: the feed never overwrites a tick that a registered, live engine
    /// has not read; it waits instead (its publishing lags, its schedule stays). Off by
    /// default: a slow consumer is lapped and counts the gap.
    #[serde(default)]
    pub lossless: bool,
    /// Lossless mode: a consumer whose heartbeat stands still this long while the feed
    /// waits for it is evicted (the feed goes on; the consumer counts what it missed).
    #[serde(default = "default_consumer_timeout_ms")]
    pub consumer_timeout_ms: u64,
    /// Lossless mode: the feed starts its schedule once this many consumers have
    /// registered (0: at once).
    #[serde(default = "default_wait_for_consumers")]
    pub wait_for_consumers: u32,
}

fn default_consumer_timeout_ms() -> u64 {
    1000
}

fn default_wait_for_consumers() -> u32 {
    1
}

/// `[cores]`: the core plan.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CoreConfig {
    /// Core of the feed's publishing (md) thread.
    pub feed_md: usize,
    /// Core of the engine's hot thread.
    pub engine_hot: usize,
    /// Cores cold threads may use; empty means every allowed core.
    #[serde(default)]
    pub cold: Vec<usize>,
    /// Cores of the feed's cold threads, instead of `cold` (for example the engine's hot
    /// core, so that the history thread never preempts the md thread it reads from).
    #[serde(default)]
    pub feed_cold: Option<Vec<usize>>,
    /// Cores of the engine's cold threads, instead of `cold` (for example the feed's hot
    /// core, so that the report and order threads never preempt the hot thread they
    /// read from).
    #[serde(default)]
    pub engine_cold: Option<Vec<usize>>,
}

impl CoreConfig {
    /// Where the feed's cold threads may run: `feed_cold`, else `cold` (empty: anywhere).
    pub fn feed_cold(&self) -> &[usize] {
        self.feed_cold.as_deref().unwrap_or(&self.cold)
    }

    /// Where the engine's cold threads may run: `engine_cold`, else `cold`.
    pub fn engine_cold(&self) -> &[usize] {
        self.engine_cold.as_deref().unwrap_or(&self.cold)
    }
}

/// `[feed]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedConfig {
    /// What the md thread does while waiting for the next scheduled tick.
    pub wait: WaitStrategy,
    /// Fraction of ticks that are trades (the rest are quotes), in `[0, 1]`.
    pub trade_ratio: f64,
    /// Capacity of the md → history channel, in ticks; a full channel drops (and counts)
    /// history copies rather than stall publishing.
    pub history_channel: usize,
    /// Cold history retention.
    pub history: HistoryConfig,
    /// The tick journal (`[feed.journal]`); none unless configured.
    pub journal: Option<JournalConfig>,
    /// The history service (`[feed.service]`); none unless configured.
    pub service: Option<ServiceConfig>,
}

impl Default for FeedConfig {
    fn default() -> FeedConfig {
        FeedConfig {
            wait: WaitStrategy::Spin,
            trade_ratio: 0.1,
            history_channel: 1 << 16,
            history: HistoryConfig::default(),
            journal: None,
            service: None,
        }
    }
}

/// `[feed.history]`: how much tick history the feed keeps; set exactly one key.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// Keep at most this many ticks (all symbols together); the oldest are evicted.
    pub retention_ticks: Option<u64>,
    /// Keep at most this many bytes of ticks; the oldest are evicted.
    pub retention_bytes: Option<u64>,
}

impl HistoryConfig {
    /// The retention as a tick count (bytes are divided by the 64-byte tick size).
    pub fn max_ticks(&self) -> u64 {
        match (self.retention_ticks, self.retention_bytes) {
            (Some(t), _) => t,
            (None, Some(b)) => b / 64,
            (None, None) => 1_000_000,
        }
    }
}

/// `[feed.journal]`: every published tick appended to segment files in `dir`, so that a
/// restarted feed restores its history and a run can be replayed ([`crate::journal`]).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// The journal folder (created 0700 if missing; a file there that is not a segment
    /// of ours is refused).
    pub dir: PathBuf,
    /// A segment is closed, and the next one begun, once it holds this many bytes.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    /// The oldest segments are removed while all of them hold more than this.
    #[serde(default = "default_journal_retention")]
    pub retention_bytes: u64,
    /// When the data is forced to disk: `none`, `interval` (once per log interval) or
    /// `block` (after every block).
    #[serde(default)]
    pub fsync: Fsync,
    /// Whether a feed started on a journal restores its history from it.
    #[serde(default = "default_true")]
    pub restore: bool,
    /// A feed started on a journal with earlier epochs: `new_epoch` (its sequence
    /// starts at 1 again) or `continue` (the newest epoch goes on, the ring's first
    /// tick numbered one past its last).
    #[serde(default)]
    pub on_restart: OnRestart,
}

/// `[feed.service]`: the history service on a Unix domain socket ([`crate::service`])
/// and, with `listen`, on a TCP address as well, answered by the history thread from
/// memory.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The socket's path (created 0600, with a marker file `<socket>.owner` beside it;
    /// anything else there is refused and left as it is).
    pub socket: PathBuf,
    /// `feed.service.listen`: a TCP address (`IP:PORT`, an IP address of this host and
    /// a port; 0: any free one, the one bound is in the feed's summary) on which the
    /// service is reachable too, with the same frames, answers and limits (clients of
    /// both kinds count toward `max_clients`), for engines in other network
    /// namespaces or hosts; none: Unix socket only. TCP has none of the socket's
    /// owner-only protection: listen on a private interface only.
    #[serde(
        default,
        deserialize_with = "listen_address",
        skip_serializing_if = "Option::is_none"
    )]
    pub listen: Option<SocketAddr>,
    /// Clients served at once (Unix and TCP together); one more gets an error frame and
    /// is closed.
    #[serde(default = "default_max_clients")]
    pub max_clients: usize,
    /// A client that leaves a frame half sent, or reads nothing of its response, this
    /// long is closed.
    #[serde(default = "default_client_timeout_ms")]
    pub client_timeout_ms: u64,
    /// Requests one client may send per second; one more gets an error frame and is
    /// closed.
    #[serde(default = "default_max_requests_per_s")]
    pub max_requests_per_s: u32,
}

/// `feed.service.listen`: `IP:PORT` (a host name is not resolved: the address bound is
/// the one written).
fn listen_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    text.trim().parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "{text:?} is not IP:PORT, an IP address and a port (10.77.0.1:7070, [fd00::1]:7070; port 0: any free one); host names are not resolved"
        ))
    })
}

fn default_max_clients() -> usize {
    16
}

fn default_client_timeout_ms() -> u64 {
    2000
}

fn default_max_requests_per_s() -> u32 {
    100
}

fn default_segment_bytes() -> u64 {
    64 << 20
}

fn default_journal_retention() -> u64 {
    1 << 30
}

fn default_true() -> bool {
    true
}

/// Where the engine's per-tick scratch memory comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scratch {
    /// The global allocator (allocates and frees every tick).
    Heap,
    /// A bumpalo arena, reset at every tick.
    #[default]
    Arena,
    /// Pre-allocated fixed-size blocks, recycled ([`crate::pool::Pool`]).
    Pool,
}

impl Scratch {
    /// Lowercase name as in the config.
    pub fn name(self) -> &'static str {
        match self {
            Scratch::Heap => "heap",
            Scratch::Arena => "arena",
            Scratch::Pool => "pool",
        }
    }
}

/// `engine.source`: where the engine's ticks come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineSource {
    /// The host's ring (`ring.path`), written by the feed or by a relay.
    #[default]
    Ring,
    /// The feed's Aeron stream (`[net]`), subscribed to by the engine itself, with no
    /// relay and no ring: to compare with a relay-fed ring (the engine binary needs the
    /// `aeron` feature).
    Aeron,
}

impl EngineSource {
    /// Lowercase name as in the config.
    pub fn name(self) -> &'static str {
        match self {
            EngineSource::Ring => "ring",
            EngineSource::Aeron => "aeron",
        }
    }
}

/// `[engine]`: hot path and strategy settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Where the ticks come from: the ring, or the feed's Aeron stream.
    pub source: EngineSource,
    /// What the hot thread does when the ring is empty.
    pub wait: WaitStrategy,
    /// Scratch memory strategy.
    pub scratch: Scratch,
    /// Pre-sized capacity of the per-tick arena, in bytes.
    pub arena_bytes: usize,
    /// Blocks in each size class of the pool (`scratch = "pool"`; classes of
    /// [`crate::pool::ENGINE_CLASSES`] bytes). A tick needs at most three at once.
    pub pool_blocks: usize,
    /// Order levels quoted on each side per decision.
    pub levels: u32,
    /// Length of the moving window of mid prices (mean and volatility).
    pub window: usize,
    /// Lots quoted at the first level; deeper levels quote more.
    pub quote_lots: u32,
    /// Half spread of the first level, in ticks of the symbol.
    pub half_spread_ticks: u32,
    /// Distance between levels, in ticks.
    pub level_step_ticks: u32,
    /// Price skew per lot of inventory, in ticks (leans quotes to reduce the position).
    pub skew_ticks_per_lot: f64,
    /// Widening of the spread per unit of windowed volatility (in ticks).
    pub vol_widen: f64,
    /// Position limit per symbol, in lots: beyond it the engine quotes one side only.
    pub max_position_lots: i64,
    /// Capacity of the hot → cold order channel; a full channel drops (and counts) orders.
    pub order_channel: usize,
    /// Extra seconds the engine waits past `duration_s` (from its first tick) for the
    /// end of the feed's stream before it stops by itself.
    pub grace_s: f64,
    /// Milliseconds without a sign of life from the feed (no tick, no heartbeat) after
    /// which the engine reports the producer gone.
    pub producer_timeout_ms: u64,
    /// What the engine does when the feed is gone (no sign of life for
    /// `producer_timeout_ms`) or has ended its stream: `exit` (write the summary and
    /// exit, non-zero for a vanished feed) or `wait` (wait for a new feed, resynchronise
    /// on its ring and go on; each feed is a `session` in the summary).
    pub on_producer_gone: OnProducerGone,
    /// The feed's history service: its socket's path (`feed.service.socket`, a path
    /// with a `/`), or its TCP address (`feed.service.listen`, `tcp://IP:PORT`, for an
    /// engine on another host; [`crate::service::Endpoint`]): at start the engine
    /// asks it for a snapshot (the last `window` ticks of every symbol), warms each
    /// symbol's book from it, skips the ring's ticks the snapshot covered, and quotes a
    /// symbol only once its window is full. None: start cold, quote from the first tick.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_service: Option<crate::service::Endpoint>,
    /// Gap recovery (needs `history_service`): after a gap in the ring (lossy mode, a
    /// lapped engine) the engine stops quoting, asks the history service for the missed
    /// range on a cold thread, applies the recovered ticks to its books in sequence
    /// order, then the live ticks it buffered meanwhile, and resumes quoting. Off: a gap
    /// is counted as missed and the engine quotes on.
    pub recover: bool,
    /// Live ticks the hot thread buffers while it recovers (allocated at start, 64 bytes
    /// each). Ticks past a full buffer are recovered from the service in turn.
    pub recovery_buffer: usize,
    /// `[engine.service_load]`: a cold thread that loads the history service with
    /// snapshot and range requests at a fixed rate (needs `history_service`), for
    /// measuring what serving costs the feed. None: no load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_load: Option<ServiceLoad>,
}

/// `[engine.service_load]`: the history service's load, as engines asking for snapshots
/// and gap ranges would make it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceLoad {
    /// Requests per second (an open-loop schedule; a late request goes at once).
    pub requests_per_s: f64,
    /// Ticks per range request: the latest `range_ticks` the feed published.
    #[serde(default = "default_range_ticks")]
    pub range_ticks: u64,
    /// Every `snapshot_every`-th request is a snapshot (the last `engine.window` ticks
    /// of every symbol and the recent bars) instead of a range; 0: ranges only.
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every: u64,
}

fn default_range_ticks() -> u64 {
    10_000
}

fn default_snapshot_every() -> u64 {
    10
}

/// `engine.on_producer_gone`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnProducerGone {
    /// Write the summary and exit (code 1 if the feed vanished, 0 if it ended).
    #[default]
    Exit,
    /// Wait for a new feed on the same ring path and go on reading.
    Wait,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            source: EngineSource::Ring,
            wait: WaitStrategy::Spin,
            scratch: Scratch::Arena,
            arena_bytes: 64 * 1024,
            pool_blocks: 256,
            levels: 3,
            window: 64,
            quote_lots: 10,
            half_spread_ticks: 1,
            level_step_ticks: 1,
            skew_ticks_per_lot: 0.02,
            vol_widen: 1.0,
            max_position_lots: 500,
            order_channel: 1 << 16,
            grace_s: 2.0,
            producer_timeout_ms: 1000,
            on_producer_gone: OnProducerGone::Exit,
            history_service: None,
            recover: false,
            recovery_buffer: 65_536,
            service_load: None,
        }
    }
}

/// `[cold]`: how the cold threads (the feed's history, the engine's report and order
/// sink) share cores with the spinning hot threads on a machine without spare cores.
/// Each does its work in slices of at most `slice_us`, sleeping `pause_us` between two
/// slices, and sleeps `poll_ms` when it finds nothing to do; `policy` and `nice` set
/// its scheduling class and weight.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ColdConfig {
    /// Longest slice of cold work before the thread hands its core back, microseconds
    /// (0: no slicing, each batch runs whole).
    pub slice_us: u64,
    /// Sleep between two slices, microseconds.
    pub pause_us: u64,
    /// Sleep of a cold thread that found nothing to do, milliseconds.
    pub poll_ms: u64,
    /// Scheduling class of the cold threads.
    pub policy: ColdPolicy,
    /// Nice value of the cold threads (-20 to 19; below 0 needs privileges).
    pub nice: i32,
    /// The timed-allocator mode: every allocator call of the cold threads is timed into
    /// per-role histograms (the summaries' `alloc_call_ns`); hot threads never are.
    pub time_allocator: bool,
    /// The queue between a hot thread and its cold threads (the feed's md → history,
    /// the engine's hot → order sink and hot ⇄ report).
    pub channel: ChannelKind,
}

impl Default for ColdConfig {
    fn default() -> ColdConfig {
        ColdConfig {
            slice_us: 50,
            pause_us: 50,
            poll_ms: 5,
            policy: ColdPolicy::Other,
            nice: 0,
            time_allocator: false,
            channel: ChannelKind::default(),
        }
    }
}

/// `cold.policy`: the Linux scheduling class of the cold threads.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ColdPolicy {
    /// `SCHED_OTHER`, the normal class.
    #[default]
    Other,
    /// `SCHED_BATCH`: treated as CPU-bound, does not preempt a running thread when it
    /// wakes up.
    Batch,
    /// `SCHED_IDLE`: runs only when nothing else wants the core (a spinning hot thread
    /// always does, so only what the scheduler's minimum share allows).
    Idle,
}

impl ColdPolicy {
    /// The name used in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            ColdPolicy::Other => "other",
            ColdPolicy::Batch => "batch",
            ColdPolicy::Idle => "idle",
        }
    }
}

/// `[log]`: interval lines and output files.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Length of one logging interval, in milliseconds.
    pub interval_ms: u64,
    /// Folder for `summary.json` and the `.hlog` files (created if missing).
    pub out_dir: PathBuf,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            interval_ms: 1000,
            out_dir: PathBuf::from("results/latest"),
        }
    }
}

/// `[memory]`: process-wide memory settings of the feed and the engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// Transparent huge pages for the process.
    pub thp: Thp,
}

/// `memory.thp`: whether the process may get transparent huge pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Thp {
    /// As the kernel and the allocator decide (mimalloc asks for them with
    /// `madvise(MADV_HUGEPAGE)` where the kernel's mode is `madvise`).
    #[default]
    Default,
    /// Switched off for the process at start-up (`prctl(PR_SET_THP_DISABLE)`): every
    /// page fault maps 4 KiB. Measured on the 2-core machine (docs/tuning.md): a
    /// mimalloc engine's cold threads otherwise fault in and zero 2 MiB pages for
    /// milliseconds at a time, and its RSS is 1.6× larger.
    Off,
}

/// Largest hot arena a configuration may ask for, MiB (64 GiB).
pub const MAX_ARENA_MIB: u64 = 65_536;

/// `[routing]`: the routing allocator of the single-process `pipeline` binary
/// ([`crate::routed`]): the hot arena, the route of each thread role and whether the
/// router adapts. Binaries with one global allocator (the feed, the engine, the
/// single-allocator pipelines) have nothing to route and say so if it is set.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// The hot arena (mimalloc), reserved and committed at start-up, MiB.
    pub arena_mib: u64,
    /// Allocations of a role routed to the arena larger than this go to jemalloc
    /// (counted as fallbacks); absent: no threshold.
    pub hot_max_bytes: Option<u64>,
    /// Profile the cold roles during the warm-up (their allocation calls timed on each
    /// allocator in turn) and keep the faster allocator for each.
    pub adaptive: bool,
    /// The allocator of each thread role.
    pub roles: RoleRoutes,
}

impl Default for RoutingConfig {
    fn default() -> RoutingConfig {
        RoutingConfig {
            arena_mib: 256,
            hot_max_bytes: None,
            adaptive: false,
            roles: RoleRoutes::default(),
        }
    }
}

impl RoutingConfig {
    /// Whether it differs from the default (a binary that cannot route says so).
    pub fn is_set(&self) -> bool {
        *self != RoutingConfig::default()
    }
}

/// An allocator a role can be routed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteAlloc {
    /// The hot arena: mimalloc, a heap per thread in one exclusive arena.
    Mimalloc,
    /// jemalloc.
    Jemalloc,
}

impl RouteAlloc {
    /// The route the routing allocator takes for it.
    pub fn route(self) -> crate::routed::Route {
        match self {
            RouteAlloc::Mimalloc => crate::routed::Route::Hot,
            RouteAlloc::Jemalloc => crate::routed::Route::Cold,
        }
    }

    /// Its name in the configuration and reports.
    pub fn name(self) -> &'static str {
        match self {
            RouteAlloc::Mimalloc => "mimalloc",
            RouteAlloc::Jemalloc => "jemalloc",
        }
    }
}

/// `[routing.roles]`: the allocator of each thread role ([`crate::routed::ROLES`]);
/// by default the two hot loops on the arena, everything else on jemalloc.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleRoutes {
    /// Threads that name no role.
    pub other: RouteAlloc,
    /// The pipeline's main thread.
    pub pipeline_main: RouteAlloc,
    /// The feed's main thread (start-up, summary).
    pub feed_main: RouteAlloc,
    /// The feed's md thread (hot).
    pub feed_md: RouteAlloc,
    /// The feed's history thread (history, journal, snapshots, service).
    pub feed_history: RouteAlloc,
    /// The engine's main thread (start-up, summary).
    pub engine_main: RouteAlloc,
    /// The engine's hot thread.
    pub engine_hot: RouteAlloc,
    /// The engine's report thread (intervals, `.hlog`).
    pub engine_report: RouteAlloc,
    /// The engine's order sink.
    pub engine_orders: RouteAlloc,
    /// The engine's gap recovery.
    pub engine_recovery: RouteAlloc,
    /// The engine's service load generator.
    pub engine_load: RouteAlloc,
}

impl Default for RoleRoutes {
    fn default() -> RoleRoutes {
        use RouteAlloc::{Jemalloc as J, Mimalloc as M};
        RoleRoutes {
            other: J,
            pipeline_main: J,
            feed_main: J,
            feed_md: M,
            feed_history: J,
            engine_main: J,
            engine_hot: M,
            engine_report: J,
            engine_orders: J,
            engine_recovery: J,
            engine_load: J,
        }
    }
}

impl RoleRoutes {
    /// Each role's name and allocator, in the order of [`crate::routed::ROLES`].
    pub fn all(&self) -> [(&'static str, RouteAlloc); 11] {
        [
            ("other", self.other),
            ("pipeline_main", self.pipeline_main),
            ("feed_main", self.feed_main),
            ("feed_md", self.feed_md),
            ("feed_history", self.feed_history),
            ("engine_main", self.engine_main),
            ("engine_hot", self.engine_hot),
            ("engine_report", self.engine_report),
            ("engine_orders", self.engine_orders),
            ("engine_recovery", self.engine_recovery),
            ("engine_load", self.engine_load),
        ]
    }
}

/// Thresholds for memory warnings (`[monitor]` in the configuration).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// Warn when fragmentation exceeds this fraction.
    pub fragmentation_warn: f64,
    /// Warn when RSS has grown by more than this many MiB since the start.
    pub rss_growth_warn_mib: u64,
}

impl Default for MonitorConfig {
    fn default() -> MonitorConfig {
        MonitorConfig {
            fragmentation_warn: 0.5,
            rss_growth_warn_mib: 1024,
        }
    }
}

/// `[[symbols]]`: one instrument.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SymbolConfig {
    /// Unique name.
    pub name: String,
    /// Offered rate in ticks per second.
    pub rate_per_s: f64,
    /// Starting mid price.
    pub start_px: f64,
    /// Price increment; every price is a multiple of it.
    pub tick_size: f64,
    /// Standard deviation of the mid's move per tick, in basis points.
    pub volatility_bps: f64,
    /// How ticks arrive: `even` (fixed spacing, a seeded phase; the default) or
    /// `poisson` (exponential gaps at the same mean rate).
    #[serde(default)]
    pub arrivals: Arrivals,
    /// A market-open ramp: the rate starts at `from` × `rate_per_s` and rises linearly
    /// to `rate_per_s` over `length_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<Ramp>,
    /// Bursts (`[[symbols.bursts]]`): from `start_s`, for `length_s`, the rate times
    /// `multiplier` (overlapping bursts multiply).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bursts: Vec<Burst>,
}

/// `symbols[].arrivals`: the arrival process of a symbol's ticks.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Arrivals {
    /// Fixed spacing at the rate of the moment.
    #[default]
    Even,
    /// A Poisson process at the rate of the moment (seeded).
    Poisson,
}

/// `symbols[].ramp`: a market-open ramp.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Ramp {
    /// The starting fraction of the rate, in (0, 1].
    pub from: f64,
    /// Seconds to reach the full rate.
    pub length_s: f64,
}

/// `[[symbols.bursts]]`: a stretch of the run at a multiple of the rate.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    /// Seconds into the run the burst starts.
    pub start_s: f64,
    /// Its length, seconds.
    pub length_s: f64,
    /// The rate's multiple while it lasts, in (0, 1000].
    pub multiplier: f64,
}

/// A stretch of a symbol's rate profile: from `t0` to `t1` seconds the rate goes
/// linearly from `r0` to `r1` ticks per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateSegment {
    /// Start, seconds into the run.
    pub t0: f64,
    /// End, seconds into the run.
    pub t1: f64,
    /// Rate at `t0`, ticks per second.
    pub r0: f64,
    /// Rate at `t1`, ticks per second.
    pub r1: f64,
}

impl SymbolConfig {
    /// Whether the rate changes over the run or arrivals are random (otherwise the
    /// schedule is a fixed period).
    pub fn has_profile(&self) -> bool {
        self.arrivals != Arrivals::Even || self.ramp.is_some() || !self.bursts.is_empty()
    }

    /// The ramp's factor at `t` seconds (1 once the ramp is over, or without one).
    fn ramp_at(&self, t: f64) -> f64 {
        match self.ramp {
            Some(r) if t < r.length_s => r.from + (1.0 - r.from) * t / r.length_s,
            _ => 1.0,
        }
    }

    /// The product of the multipliers of the bursts active at `t` seconds.
    fn bursts_at(&self, t: f64) -> f64 {
        self.bursts
            .iter()
            .filter(|b| t >= b.start_s && t < b.start_s + b.length_s)
            .map(|b| b.multiplier)
            .product()
    }

    /// The rate at `t` seconds into the run: `rate_per_s` times the ramp's factor times
    /// every active burst's multiplier.
    pub fn rate_at(&self, t: f64) -> f64 {
        self.rate_per_s * self.ramp_at(t) * self.bursts_at(t)
    }

    /// The profile over `duration_s` as segments of linear rate, in time order, covering
    /// `[0, duration_s]`: cut wherever a burst starts or ends and where the ramp ends, so
    /// that inside a segment the bursts are constant and the ramp is one line.
    pub fn segments(&self, duration_s: f64) -> Vec<RateSegment> {
        let mut cuts = vec![0.0, duration_s];
        if let Some(r) = self.ramp {
            cuts.push(r.length_s);
        }
        for b in &self.bursts {
            cuts.push(b.start_s);
            cuts.push(b.start_s + b.length_s);
        }
        cuts.retain(|t| (0.0..=duration_s).contains(t));
        cuts.sort_by(f64::total_cmp);
        cuts.dedup();
        cuts.windows(2)
            .map(|w| {
                let (t0, t1) = (w[0], w[1]);
                let scale = self.rate_per_s * self.bursts_at((t0 + t1) / 2.0);
                RateSegment {
                    t0,
                    t1,
                    r0: scale * self.ramp_at(t0),
                    r1: scale * self.ramp_at(t1),
                }
            })
            .collect()
    }

    /// Ticks the profile offers over `duration_s` (the integral of the rate).
    pub fn expected_ticks(&self, duration_s: f64) -> f64 {
        if !self.has_profile() {
            return self.rate_per_s * duration_s;
        }
        self.segments(duration_s)
            .iter()
            .map(|s| (s.r0 + s.r1) / 2.0 * (s.t1 - s.t0))
            .sum()
    }

    /// The highest rate anywhere in the profile over `duration_s`.
    pub fn peak_rate(&self, duration_s: f64) -> f64 {
        if !self.has_profile() {
            return self.rate_per_s;
        }
        self.segments(duration_s)
            .iter()
            .map(|s| s.r0.max(s.r1))
            .fold(0.0, f64::max)
    }
}

impl Config {
    /// Reads, parses and validates `path` against the cores this process may use.
    pub fn load(path: &Path, allowed_cores: &[usize]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Config::parse(&text, path, allowed_cores)
    }

    /// Parses and validates `text`; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path, allowed_cores: &[usize]) -> Result<Config, ConfigError> {
        let mut config: Config = parse_toml(text, path)?;
        config
            .validate(allowed_cores)
            .map_err(|(key, message)| invalid(text, path, &key, None, message))?;
        config.origin = Origin {
            path: path.to_path_buf(),
            text: text.into(),
        };
        Ok(config)
    }

    /// A [`ConfigError::Invalid`] about `key` of this configuration, located in the
    /// file it was parsed from: for problems found after validation, such as a
    /// `ring.path` that holds someone else's file.
    pub fn error_at(&self, key: &KeyPath, message: impl Into<String>) -> ConfigError {
        invalid(
            &self.origin.text,
            &self.origin.path,
            key,
            None,
            message.into(),
        )
    }

    /// Total offered rate of all symbols, ticks per second (their base rates; see
    /// [`Config::offered_per_s`] for rate profiles).
    pub fn total_rate_per_s(&self) -> f64 {
        self.symbols.iter().map(|s| s.rate_per_s).sum()
    }

    /// The mean rate all symbols offer over the run, with their rate profiles (ramps,
    /// bursts), ticks per second.
    pub fn offered_per_s(&self) -> f64 {
        let d = self.duration_s;
        self.symbols
            .iter()
            .map(|s| s.expected_ticks(d))
            .sum::<f64>()
            / d
    }

    /// Checks every value and cross-field rule. On failure returns the key path
    /// (`symbols[2].rate_per_s`) and what is wrong with it.
    pub fn validate(&self, allowed_cores: &[usize]) -> Result<(), (KeyPath, String)> {
        let k = |s: &str| KeyPath::key(s);
        positive_finite(self.duration_s, MAX_DURATION_S)
            .map_err(|m| (k("duration_s"), format!("duration {m}")))?;
        if !(self.warmup_s.is_finite() && self.warmup_s >= 0.0 && self.warmup_s < self.duration_s) {
            return Err((
                k("warmup_s"),
                format!(
                    "warm-up must be at least 0 and shorter than duration_s ({}), got {}",
                    self.duration_s, self.warmup_s
                ),
            ));
        }
        self.validate_ring()?;
        self.validate_cores(allowed_cores)?;
        self.validate_feed()?;
        self.validate_engine()?;
        if self.log.interval_ms < 10 || self.log.interval_ms > 3_600_000 {
            return Err((
                KeyPath::key("log").then("interval_ms"),
                format!(
                    "must be between 10 and 3600000 ms, got {}",
                    self.log.interval_ms
                ),
            ));
        }
        self.validate_cold()?;
        self.validate_routing()?;
        if let Some(n) = &self.net {
            n.validate(allowed_cores)?;
        }
        let m = &self.monitor;
        if !(m.fragmentation_warn > 0.0 && m.fragmentation_warn <= 1.0) {
            return Err((
                KeyPath::key("monitor").then("fragmentation_warn"),
                format!(
                    "must be a fraction above 0 and at most 1, got {}",
                    m.fragmentation_warn
                ),
            ));
        }
        if m.rss_growth_warn_mib == 0 {
            return Err((
                KeyPath::key("monitor").then("rss_growth_warn_mib"),
                "must be at least 1".into(),
            ));
        }
        self.validate_symbols()
    }

    fn validate_routing(&self) -> Result<(), (KeyPath, String)> {
        let r = &self.routing;
        let k = |s: &str| KeyPath::key("routing").then(s);
        if !(1..=MAX_ARENA_MIB).contains(&r.arena_mib) {
            return Err((
                k("arena_mib"),
                format!(
                    "the hot arena must be between 1 and {MAX_ARENA_MIB} MiB, got {}",
                    r.arena_mib
                ),
            ));
        }
        if let Some(t) = r.hot_max_bytes {
            let arena = r.arena_mib << 20;
            if !(1..=arena).contains(&t) {
                return Err((
                    k("hot_max_bytes"),
                    format!(
                        "the threshold must be between 1 byte and the arena's size ({arena} bytes), got {t}"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_cold(&self) -> Result<(), (KeyPath, String)> {
        let c = &self.cold;
        let k = |name: &str| KeyPath::key("cold").then(name);
        if c.slice_us > 1_000_000 {
            return Err((
                k("slice_us"),
                format!(
                    "must be at most 1000000 (0: no slicing), got {}",
                    c.slice_us
                ),
            ));
        }
        if !(1..=100_000).contains(&c.pause_us) {
            return Err((
                k("pause_us"),
                format!("must be between 1 and 100000, got {}", c.pause_us),
            ));
        }
        if !(1..=1000).contains(&c.poll_ms) {
            return Err((
                k("poll_ms"),
                format!("must be between 1 and 1000, got {}", c.poll_ms),
            ));
        }
        if !(-20..=19).contains(&c.nice) {
            return Err((
                k("nice"),
                format!("must be between -20 and 19, got {}", c.nice),
            ));
        }
        Ok(())
    }

    fn validate_ring(&self) -> Result<(), (KeyPath, String)> {
        let cap = self.ring.capacity;
        if !cap.is_power_of_two() || !(MIN_RING_CAPACITY..=MAX_RING_CAPACITY).contains(&cap) {
            return Err((
                KeyPath::key("ring").then("capacity"),
                format!(
                    "must be a power of two between {MIN_RING_CAPACITY} and {MAX_RING_CAPACITY}, got {cap}"
                ),
            ));
        }
        if !(10..=3_600_000).contains(&self.ring.consumer_timeout_ms) {
            return Err((
                KeyPath::key("ring").then("consumer_timeout_ms"),
                format!(
                    "must be between 10 and 3600000, got {}",
                    self.ring.consumer_timeout_ms
                ),
            ));
        }
        if self.ring.wait_for_consumers as usize > crate::ring::MAX_CONSUMERS {
            return Err((
                KeyPath::key("ring").then("wait_for_consumers"),
                format!(
                    "must be at most {} (the ring's consumer table), got {}",
                    crate::ring::MAX_CONSUMERS,
                    self.ring.wait_for_consumers
                ),
            ));
        }
        let path = &self.ring.path;
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        if path.file_name().is_none() || parent.is_some_and(|p| !p.is_dir()) || path.is_dir() {
            return Err((
                KeyPath::key("ring").then("path"),
                format!(
                    "{} is not a file path in an existing folder",
                    path.display()
                ),
            ));
        }
        Ok(())
    }

    /// Checks the core plan against `allowed` (the process's cores, read at start-up):
    /// every id allowed, the two hot cores distinct, cold cores allowed.
    pub fn validate_cores(&self, allowed: &[usize]) -> Result<(), (KeyPath, String)> {
        let c = &self.cores;
        let shown = format!("{allowed:?}");
        for (name, id) in [("feed_md", c.feed_md), ("engine_hot", c.engine_hot)] {
            if !allowed.contains(&id) {
                return Err((
                    KeyPath::key("cores").then(name),
                    format!("core {id} is not one this process may use (allowed: {shown})"),
                ));
            }
        }
        if c.feed_md == c.engine_hot {
            return Err((
                KeyPath::key("cores").then("engine_hot"),
                format!(
                    "core {} is already the feed's hot core (cores.feed_md); hot threads need cores of their own",
                    c.engine_hot
                ),
            ));
        }
        for (key, list) in [
            ("cold", Some(&c.cold)),
            ("feed_cold", c.feed_cold.as_ref()),
            ("engine_cold", c.engine_cold.as_ref()),
        ] {
            for (i, &id) in list.into_iter().flatten().enumerate() {
                if !allowed.contains(&id) {
                    return Err((
                        KeyPath::key("cores").then(key).index(i),
                        format!("core {id} is not one this process may use (allowed: {shown})"),
                    ));
                }
            }
        }
        // SCHED_IDLE threads run only when their core is otherwise idle, which a core
        // with a spinning hot thread never is: measured on the 2-core machine, such cold
        // threads fell behind until three quarters of the history copies and four fifths
        // of the orders were dropped (docs/tuning.md). Refused unless each process's cold
        // threads have a core without a spinning hot thread (`spin_yield` counts as
        // spinning: a yielding thread stays runnable).
        if self.cold.policy == ColdPolicy::Idle {
            let spinning: Vec<usize> = [
                (c.feed_md, self.feed.wait != WaitStrategy::Block),
                (c.engine_hot, self.engine.wait != WaitStrategy::Block),
            ]
            .into_iter()
            .filter_map(|(core, spins)| spins.then_some(core))
            .collect();
            for (who, cold) in [("feed", c.feed_cold()), ("engine", c.engine_cold())] {
                let cold = if cold.is_empty() { allowed } else { cold };
                if cold.iter().all(|id| spinning.contains(id)) {
                    return Err((
                        KeyPath::key("cold").then("policy"),
                        format!(
                            "\"idle\" would starve the {who}'s cold threads: every core they may use ({cold:?}) runs a spinning hot thread, and SCHED_IDLE runs only on an idle core; give them a core of their own (cores.cold, cores.{who}_cold) or choose \"other\" or \"batch\""
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_feed(&self) -> Result<(), (KeyPath, String)> {
        let f = &self.feed;
        let feed = KeyPath::key("feed");
        if !(f.trade_ratio.is_finite() && (0.0..=1.0).contains(&f.trade_ratio)) {
            return Err((
                feed.then("trade_ratio"),
                format!("must be between 0 and 1, got {}", f.trade_ratio),
            ));
        }
        if !(16..=1 << 24).contains(&f.history_channel) {
            return Err((
                feed.then("history_channel"),
                format!(
                    "must be between 16 and {}, got {}",
                    1 << 24,
                    f.history_channel
                ),
            ));
        }
        if let Some(j) = &f.journal {
            let key = |k| feed.clone().then("journal").then(k);
            if j.dir.as_os_str().is_empty() {
                return Err((key("dir"), "must name a folder".into()));
            }
            if !(64 << 10..=1 << 30).contains(&j.segment_bytes) {
                return Err((
                    key("segment_bytes"),
                    format!(
                        "must be between 65536 and {}, got {}",
                        1u64 << 30,
                        j.segment_bytes
                    ),
                ));
            }
            if j.retention_bytes < j.segment_bytes {
                return Err((
                    key("retention_bytes"),
                    format!(
                        "must be at least segment_bytes ({}), got {}",
                        j.segment_bytes, j.retention_bytes
                    ),
                ));
            }
        }
        if let Some(sv) = &f.service {
            let key = |k| feed.clone().then("service").then(k);
            if sv.socket.as_os_str().is_empty() {
                return Err((key("socket"), "must name a socket path".into()));
            }
            // sun_path holds 108 bytes with its terminating zero.
            if sv.socket.as_os_str().len() > 107 {
                return Err((
                    key("socket"),
                    format!(
                        "a socket path has at most 107 bytes, got {}",
                        sv.socket.as_os_str().len()
                    ),
                ));
            }
            if !(1..=1024).contains(&sv.max_clients) {
                return Err((
                    key("max_clients"),
                    format!("must be between 1 and 1024, got {}", sv.max_clients),
                ));
            }
            if !(10..=600_000).contains(&sv.client_timeout_ms) {
                return Err((
                    key("client_timeout_ms"),
                    format!(
                        "must be between 10 and 600000, got {}",
                        sv.client_timeout_ms
                    ),
                ));
            }
            if !(1..=100_000).contains(&sv.max_requests_per_s) {
                return Err((
                    key("max_requests_per_s"),
                    format!(
                        "must be between 1 and 100000, got {}",
                        sv.max_requests_per_s
                    ),
                ));
            }
        }
        let h = &f.history;
        let hist = feed.then("history");
        match (h.retention_ticks, h.retention_bytes) {
            (Some(_), Some(_)) => Err((
                hist.then("retention_bytes"),
                "set either retention_ticks or retention_bytes, not both".into(),
            )),
            (Some(0), None) => Err((hist.then("retention_ticks"), "must be at least 1".into())),
            (None, Some(b)) if b < 64 => Err((
                hist.then("retention_bytes"),
                format!("must be at least one 64-byte tick, got {b}"),
            )),
            _ => Ok(()),
        }
    }

    fn validate_engine(&self) -> Result<(), (KeyPath, String)> {
        let e = &self.engine;
        let key = |s| KeyPath::key("engine").then(s);
        let range = |name: &'static str, v: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err((key(name), format!("must be between {lo} and {hi}, got {v}")))
            }
        };
        range("arena_bytes", e.arena_bytes as u64, 1024, 1 << 30)?;
        range("pool_blocks", e.pool_blocks as u64, 1, 1_000_000)?;
        range("levels", e.levels as u64, 1, 16)?;
        range("window", e.window as u64, 2, 65_536)?;
        range("quote_lots", e.quote_lots as u64, 1, 1_000_000)?;
        range(
            "half_spread_ticks",
            e.half_spread_ticks as u64,
            1,
            1_000_000,
        )?;
        range("level_step_ticks", e.level_step_ticks as u64, 1, 1_000_000)?;
        range(
            "max_position_lots",
            e.max_position_lots.max(0) as u64,
            1,
            1 << 40,
        )?;
        range("order_channel", e.order_channel as u64, 16, 1 << 24)?;
        range("producer_timeout_ms", e.producer_timeout_ms, 10, 3_600_000)?;
        range("recovery_buffer", e.recovery_buffer as u64, 16, 1 << 24)?;
        if e.source == EngineSource::Aeron && self.net.is_none() {
            return Err((
                key("source"),
                "\"aeron\" needs a [net] section: the feed's channel to subscribe to".into(),
            ));
        }
        if e.source == EngineSource::Aeron && e.service_load.is_some() {
            return Err((
                key("source"),
                "\"aeron\" cannot be combined with engine.service_load, which reads the feed's ring".into(),
            ));
        }
        if e.recover && e.history_service.is_none() {
            return Err((
                key("recover"),
                "needs engine.history_service (the feed's feed.service.socket or tcp://feed.service.listen) to recover gaps from".into(),
            ));
        }
        if let Some(l) = &e.service_load {
            let key = |s| KeyPath::key("engine").then("service_load").then(s);
            if e.history_service.is_none() {
                return Err((
                    key("requests_per_s"),
                    "needs engine.history_service (the feed's feed.service.socket or tcp://feed.service.listen) to send requests to".into(),
                ));
            }
            if !(l.requests_per_s.is_finite()
                && l.requests_per_s > 0.0
                && l.requests_per_s <= 10_000.0)
            {
                return Err((
                    key("requests_per_s"),
                    format!(
                        "must be more than 0 and at most 10000, got {}",
                        l.requests_per_s
                    ),
                ));
            }
            if !(1..=crate::service::MAX_RANGE).contains(&l.range_ticks) {
                return Err((
                    key("range_ticks"),
                    format!(
                        "must be between 1 and {}, got {}",
                        crate::service::MAX_RANGE,
                        l.range_ticks
                    ),
                ));
            }
        }
        for (name, v) in [
            ("skew_ticks_per_lot", e.skew_ticks_per_lot),
            ("vol_widen", e.vol_widen),
            ("grace_s", e.grace_s),
        ] {
            if !(v.is_finite() && (0.0..=1e6).contains(&v)) {
                return Err((
                    key(name),
                    format!("must be a finite number from 0 to 1e6, got {v}"),
                ));
            }
        }
        Ok(())
    }

    fn validate_symbols(&self) -> Result<(), (KeyPath, String)> {
        if self.symbols.is_empty() {
            return Err((
                KeyPath::key("symbols"),
                "at least one symbol is required".into(),
            ));
        }
        if self.symbols.len() > MAX_SYMBOLS {
            return Err((
                KeyPath::key("symbols"),
                format!("at most {MAX_SYMBOLS} symbols, got {}", self.symbols.len()),
            ));
        }
        let mut seen = HashSet::with_capacity(self.symbols.len());
        for (i, s) in self.symbols.iter().enumerate() {
            let key = |f: &str| KeyPath::key("symbols").index(i).then(f);
            let name = s.name.trim();
            if name.is_empty() {
                return Err((key("name"), "symbol name is empty".into()));
            }
            if name.len() > MAX_SYMBOL_NAME
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./:".contains(&b))
            {
                return Err((
                    key("name"),
                    format!(
                        "symbol name {name:?} must be at most {MAX_SYMBOL_NAME} characters of A-Z, a-z, 0-9, '-', '_', '.', '/', ':'"
                    ),
                ));
            }
            if !seen.insert(name) {
                return Err((key("name"), format!("duplicate symbol name {name:?}")));
            }
            positive_finite(s.rate_per_s, MAX_RATE_PER_S)
                .map_err(|m| (key("rate_per_s"), format!("rate {m}")))?;
            positive_finite(s.start_px, 1e9)
                .map_err(|m| (key("start_px"), format!("price {m}")))?;
            positive_finite(s.tick_size, s.start_px)
                .map_err(|m| (key("tick_size"), format!("tick size {m} (the start price)")))?;
            if s.tick_size * crate::tick::PX_SCALE as f64 <= 0.5 {
                return Err((
                    key("tick_size"),
                    format!(
                        "tick size {} is finer than the 1e-8 price resolution",
                        s.tick_size
                    ),
                ));
            }
            if !(s.volatility_bps.is_finite() && (0.0..=1000.0).contains(&s.volatility_bps)) {
                return Err((
                    key("volatility_bps"),
                    format!(
                        "must be between 0 and 1000 basis points, got {}",
                        s.volatility_bps
                    ),
                ));
            }
        }
        for (i, s) in self.symbols.iter().enumerate() {
            let key = |f: &str| KeyPath::key("symbols").index(i).then(f);
            if let Some(r) = s.ramp {
                if !(r.from.is_finite() && r.from > 0.0 && r.from <= 1.0) {
                    return Err((
                        key("ramp").then("from"),
                        format!("must be above 0 and at most 1, got {}", r.from),
                    ));
                }
                positive_finite(r.length_s, MAX_DURATION_S)
                    .map_err(|m| (key("ramp").then("length_s"), m))?;
            }
            for (j, b) in s.bursts.iter().enumerate() {
                let bkey = |f: &str| key("bursts").index(j).then(f);
                if !(b.start_s.is_finite() && (0.0..=MAX_DURATION_S).contains(&b.start_s)) {
                    return Err((
                        bkey("start_s"),
                        format!("must be between 0 and {MAX_DURATION_S}, got {}", b.start_s),
                    ));
                }
                positive_finite(b.length_s, MAX_DURATION_S).map_err(|m| (bkey("length_s"), m))?;
                positive_finite(b.multiplier, 1000.0).map_err(|m| (bkey("multiplier"), m))?;
            }
            let peak = s.peak_rate(self.duration_s);
            if peak > MAX_RATE_PER_S {
                return Err((
                    key("bursts"),
                    format!("the peak rate {peak} ticks/s is above the {MAX_RATE_PER_S} limit"),
                ));
            }
        }
        let total = self.total_rate_per_s();
        if total > MAX_RATE_PER_S {
            return Err((
                KeyPath::key("symbols"),
                format!("total rate {total} ticks/s is above the {MAX_RATE_PER_S} limit"),
            ));
        }
        Ok(())
    }
}

fn positive_finite(v: f64, max: f64) -> Result<(), String> {
    if v.is_nan() {
        Err("must be a number, got nan".into())
    } else if v <= 0.0 {
        Err(format!("must be greater than 0, got {v}"))
    } else if !v.is_finite() || v > max {
        Err(format!("must be at most {max}, got {v}"))
    } else {
        Ok(())
    }
}

/// A key path inside the config, like `symbols[2].rate_per_s`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<Seg>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

impl KeyPath {
    /// A path of one key.
    pub fn key(k: &str) -> KeyPath {
        KeyPath(vec![Seg::Key(k.to_string())])
    }
    /// This path followed by key `k`.
    pub fn then(mut self, k: &str) -> KeyPath {
        self.0.push(Seg::Key(k.to_string()));
        self
    }
    /// This path followed by array index `i`.
    pub fn index(mut self, i: usize) -> KeyPath {
        self.0.push(Seg::Index(i));
        self
    }

    /// The path `text` names, written as errors print paths (`symbols[2].rate_per_s`,
    /// `feed.history.retention_ticks`): keys of letters, digits, `_` and `-`, joined by
    /// `.`, each followed by any number of `[INDEX]`. `None` for anything else.
    ///
    /// ```
    /// use common::config::KeyPath;
    ///
    /// let path = KeyPath::parse("symbols[2].rate_per_s").unwrap();
    /// assert_eq!(path, KeyPath::key("symbols").index(2).then("rate_per_s"));
    /// assert_eq!(path.to_string(), "symbols[2].rate_per_s");
    /// assert_eq!(KeyPath::parse("symbols..x"), None);
    /// ```
    pub fn parse(text: &str) -> Option<KeyPath> {
        let mut path = KeyPath::default();
        for part in text.split('.') {
            let (key, mut indexes) = part.split_once('[').map_or((part, ""), |(k, i)| (k, i));
            let bare = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
            if key.is_empty() || !key.chars().all(bare) {
                return None;
            }
            path = path.then(key);
            if !indexes.is_empty() {
                indexes = indexes.strip_suffix(']')?;
                for index in indexes.split("][") {
                    if index.is_empty() || !index.chars().all(|c| c.is_ascii_digit()) {
                        return None;
                    }
                    path = path.index(index.parse().ok()?);
                }
            }
        }
        Some(path)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A configuration that could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read config: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (in the message, not a `source()`, so `{:#}` prints it once).
        error: std::io::Error,
    },
    /// The file is not a valid configuration.
    #[error("{path}:{line}:{column}: {key}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending key.
        line: usize,
        /// 1-based column of the offending key.
        column: usize,
        /// The key path, like `symbols[2].rate_per_s`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// Parses `text` (the contents of `path`) into any `T` (the run configuration, a `lab
/// compare` matrix): a syntax or type error becomes a [`ConfigError::Invalid`] naming
/// the file, line, column and key.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text))
        .map_err(|e| serde_error(text, path, e))
}

/// A [`ConfigError::Invalid`] about `key` of `text` (the contents of `path`), located
/// where the key is written (or its nearest written parent).
pub fn error_at(text: &str, path: &Path, key: &KeyPath, message: String) -> ConfigError {
    invalid(text, path, key, None, message)
}

fn serde_error(
    text: &str,
    path: &Path,
    err: serde_path_to_error::Error<toml::de::Error>,
) -> ConfigError {
    let mut key = KeyPath::default();
    for seg in err.path().iter() {
        match seg {
            serde_path_to_error::Segment::Seq { index } => key = key.index(*index),
            serde_path_to_error::Segment::Map { key: k } => key = key.then(k),
            serde_path_to_error::Segment::Enum { variant } => key = key.then(variant),
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    let inner = err.inner();
    // One line: toml's messages can span several.
    let message = inner
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    // Name the key serde could not place: a missing or unknown field.
    for prefix in ["missing field `", "unknown field `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            if let Some(name) = rest.split('`').next() {
                let named = matches!(key.0.last(), Some(Seg::Key(k)) if k == name);
                if !named {
                    key = key.then(name);
                }
            }
        }
    }
    if key.0.is_empty() {
        if let Some(k) = inner.span().and_then(|s| key_on_line(text, s.start)) {
            key = KeyPath::key(&k);
        }
    }
    invalid(text, path, &key, inner.span().map(|s| s.start), message)
}

/// The key assigned on the line holding byte `offset`, prefixed with the table it is
/// in, for syntax errors (which come before any structure is known).
fn key_on_line(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (k, _) = line.split_once('=')?;
    let k = k.trim();
    if k.is_empty() || k.starts_with('#') {
        return None;
    }
    let table = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim());
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{k}"),
        _ => k.to_string(),
    })
}

fn invalid(
    text: &str,
    path: &Path,
    key: &KeyPath,
    offset: Option<usize>,
    message: String,
) -> ConfigError {
    let offset = offset.or_else(|| span_of(text, key)).unwrap_or(0);
    let (line, column) = line_col(text, offset);
    ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        column,
        key: key.to_string(),
        message,
    }
}

/// Byte offset of `key` in `text`: the key itself where it is written, else the
/// deepest enclosing table or array element that is.
fn span_of(text: &str, key: &KeyPath) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let mut item: Option<&toml_edit::Item> = None;
    let mut best = None;
    for seg in &key.0 {
        match seg {
            Seg::Key(k) => {
                // A key that is not written (a required key left out) is located at
                // the deepest enclosing table that is.
                let found = match item {
                    None => table.get_key_value(k),
                    Some(it) => match it.as_table_like() {
                        Some(t) => {
                            table = t;
                            table.get_key_value(k)
                        }
                        None => return best,
                    },
                };
                let Some((key, it)) = found else {
                    return best;
                };
                best = key.span().map(|s| s.start).or(best);
                item = Some(it);
            }
            Seg::Index(i) => {
                let it = item?;
                let off = if let Some(aot) = it.as_array_of_tables() {
                    let t = aot.get(*i)?;
                    item = None;
                    table = t;
                    t.span().map(|s| s.start)
                } else {
                    let v = it.as_array()?.get(*i)?;
                    let off = v.span().map(|s| s.start);
                    if let Some(t) = v.as_inline_table() {
                        table = t;
                        item = None;
                    } else {
                        return off.or(best);
                    }
                    off
                };
                best = off.or(best);
            }
        }
    }
    best
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::edit::Edit;
    use super::*;

    const GOOD: &str = r#"
seed = 7
duration_s = 2.0
warmup_s = 0.5

[ring]
path = "/dev/shm/test.ring"
capacity = 4096

[cores]
feed_md = 0
engine_hot = 1

[[symbols]]
name = "AAA"
rate_per_s = 1000
start_px = 100.0
tick_size = 0.01
volatility_bps = 1.0

[[symbols]]
name = "BBB"
rate_per_s = 500.5
start_px = 20.0
tick_size = 0.05
volatility_bps = 2.0
"#;

    const CORES: &[usize] = &[0, 1];

    fn err(text: &str) -> String {
        match Config::parse(text, Path::new("cfg.toml"), CORES) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let c = Config::parse(GOOD, Path::new("cfg.toml"), CORES).unwrap();
        assert_eq!(c.symbols.len(), 2);
        assert_eq!(c.total_rate_per_s(), 1500.5);
        assert_eq!(c.engine.scratch, Scratch::Arena);
        assert_eq!(c.feed.history.max_ticks(), 1_000_000);
        assert_eq!(c.log.interval_ms, 1000);
    }

    #[test]
    fn service_listen_is_an_optional_socket_address() {
        let with = |listen: Option<&str>| {
            let mut e = Edit::new(GOOD).set("feed.service.socket", "/tmp/s.sock");
            if let Some(l) = listen {
                e = e.set("feed.service.listen", l);
            }
            let c = Config::parse(&e.finish().unwrap(), Path::new("cfg.toml"), CORES).unwrap();
            c.feed.service.unwrap().listen
        };
        assert_eq!(with(None), None);
        assert_eq!(
            with(Some("10.77.0.1:7070")),
            Some("10.77.0.1:7070".parse().unwrap())
        );
        assert_eq!(
            with(Some(" 127.0.0.1:0")),
            Some("127.0.0.1:0".parse().unwrap())
        );
        assert_eq!(
            with(Some("[::1]:7070")),
            Some("[::1]:7070".parse().unwrap())
        );
    }

    #[test]
    fn rate_profiles_integrate_to_what_they_offer() {
        let mut c = Config::parse(GOOD, Path::new("cfg.toml"), CORES).unwrap();
        let s = &mut c.symbols[0];
        s.rate_per_s = 1000.0;
        s.ramp = Some(Ramp {
            from: 0.5,
            length_s: 2.0,
        });
        s.bursts = vec![
            Burst {
                start_s: 1.0,
                length_s: 2.0,
                multiplier: 3.0,
            },
            Burst {
                start_s: 2.5,
                length_s: 1.0,
                multiplier: 2.0,
            },
        ];
        let segs = s.segments(5.0);
        let cuts: Vec<f64> = segs.iter().map(|g| g.t0).collect();
        assert_eq!(cuts, [0.0, 1.0, 2.0, 2.5, 3.0, 3.5]);
        assert_eq!(segs.last().unwrap().t1, 5.0);
        // The ramp's line inside the first burst, the product where bursts overlap.
        assert_eq!((segs[1].r0, segs[1].r1), (2250.0, 3000.0));
        assert_eq!((segs[3].r0, segs[3].r1), (6000.0, 6000.0));
        assert_eq!(s.rate_at(2.7), 6000.0);
        // ∫: 625 + 2625 + 1500 + 3000 + 1000 + 1500.
        assert_eq!(s.expected_ticks(5.0), 10_250.0);
        assert_eq!(s.peak_rate(5.0), 6000.0);
        // The shipped bursty scenario offers what its comment says.
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/bursts.toml"),
        )
        .unwrap();
        let b: Config = toml::from_str(&text).unwrap();
        assert_eq!(b.offered_per_s(), 105_250.0);
        assert_eq!(b.symbols[0].peak_rate(b.duration_s), 120_000.0);
    }

    #[test]
    fn shipped_configs_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                // `lab compare` matrices (with `[[block]]`s) and `lab cluster` files
                // (with `[[hosts]]`) live here too.
                let table: toml::Table = toml::from_str(&text).unwrap();
                if table.contains_key("block") || table.contains_key("hosts") {
                    continue;
                }
                // Ring folders may not exist on every machine; check the rest.
                let c: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
                let mut c2 = c.clone();
                c2.ring.path = std::env::temp_dir().join("x.ring");
                c2.validate(CORES)
                    .unwrap_or_else(|(k, m)| panic!("{path:?}: {k}: {m}"));
                n += 1;
            }
        }
        assert!(n >= 4, "default, high_rate, many_symbols, history_churn");
    }

    /// The bad-input catalogue of the run configuration: each row is a broken variant of
    /// `GOOD` (an [`Edit`] of it where the mistake is a value) and the start of its
    /// one-line error after `cfg.toml:`, so every row checks
    /// the line, column, key and message. The binaries print the same text and exit 2
    /// (`feed/tests/cli.rs`, `engine/tests/cli.rs`, `lab/tests/cli.rs`).
    #[test]
    fn bad_config_catalogue() {
        // Layout mistakes need the text itself; every other row is an edit of a key.
        let r = |find: &str, with: &str| {
            assert!(GOOD.contains(find), "{find}");
            GOOD.replacen(find, with, 1)
        };
        let e = |edit: fn(Edit) -> Edit| edit(Edit::new(GOOD)).finish().unwrap();
        let cases: Vec<(&str, String, &str)> = vec![
            // TOML and types.
            ("syntax", r("capacity = 4096", "capacity = = 4096"), "8:12: ring.capacity: "),
            ("unclosed string", r("\"AAA\"", "\"AAA"), "15:12: symbols.name: invalid basic string"),
            ("unknown key", e(|e| e.set("ring.capacty", 3)), "9:1: ring.capacty: unknown field `capacty`"),
            ("unknown table", e(|e| e.set("engin.levels", 3)), "28:2: engin: unknown field `engin`"),
            ("wrong type", e(|e| e.set("symbols[0].rate_per_s", "fast")), "16:14: symbols[0].rate_per_s: invalid type: string"),
            ("float for integer", e(|e| e.set("ring.capacity", 4096.5)), "8:12: ring.capacity: invalid type: floating point"),
            ("table for value", r("seed = 7", "[seed]"), "2:1: seed: invalid type"),
            ("missing key", e(|e| e.remove("ring.capacity")), "6:1: ring.capacity: missing field `capacity`"),
            // Symbols.
            ("no symbols", e(|e| e.remove("symbols")), "1:1: symbols: missing field `symbols`"),
            ("empty symbol list", e(|e| e.remove("symbols").set("symbols", [0; 0])), "5:1: symbols: at least one symbol is required"),
            ("ramp from zero", e(|e| e.set("symbols[0].ramp.from", 0.0).set("symbols[0].ramp.length_s", 2.0)), "22:1: symbols[0].ramp.from: must be above 0 and at most 1, got 0"),
            ("ramp without a length", e(|e| e.set("symbols[0].ramp.from", 0.5)), "21:1: symbols[0].ramp.length_s: missing field `length_s`"),
            ("burst of zero length", r("volatility_bps = 2.0", "volatility_bps = 2.0\n[[symbols.bursts]]\nstart_s = 1\nlength_s = 0\nmultiplier = 5"), "29:1: symbols[1].bursts[0].length_s: must be greater than 0, got 0"),
            ("burst above the peak rate", r("volatility_bps = 2.0", "volatility_bps = 2.0\n[[symbols.bursts]]\nstart_s = 0.1\nlength_s = 0.5\nmultiplier = 1000\n[[symbols.bursts]]\nstart_s = 0.2\nlength_s = 0.5\nmultiplier = 1000"), "27:11: symbols[1].bursts: the peak rate 500500000 ticks/s is above the 100000000 limit"),
            ("unknown arrivals", e(|e| e.set("symbols[0].arrivals", "bursty")), "20:12: symbols[0].arrivals: unknown variant `bursty`, expected `even` or `poisson`"),
            ("duplicate symbol", e(|e| e.set("symbols[1].name", "AAA")), "22:1: symbols[1].name: duplicate symbol name \"AAA\""),
            ("duplicate up to blanks", e(|e| e.set("symbols[1].name", " AAA ")), "22:1: symbols[1].name: duplicate symbol name \"AAA\""),
            ("empty name", e(|e| e.set("symbols[1].name", " ")), "22:1: symbols[1].name: symbol name is empty"),
            ("bad name", e(|e| e.set("symbols[1].name", "A=B")), "22:1: symbols[1].name: symbol name \"A=B\" must be"),
            ("zero rate", e(|e| e.set("symbols[1].rate_per_s", 0)), "23:1: symbols[1].rate_per_s: rate must be greater than 0, got 0"),
            ("negative rate", e(|e| e.set("symbols[1].rate_per_s", -5)), "23:1: symbols[1].rate_per_s: rate must be greater than 0, got -5"),
            ("nan rate", e(|e| e.set("symbols[1].rate_per_s", f64::NAN)), "23:1: symbols[1].rate_per_s: rate must be a number, got nan"),
            ("infinite rate", e(|e| e.set("symbols[1].rate_per_s", f64::INFINITY)), "23:1: symbols[1].rate_per_s: rate must be at most 100000000, got inf"),
            ("absurd rate", e(|e| e.set("symbols[1].rate_per_s", 1e12)), "23:1: symbols[1].rate_per_s: rate must be at most 100000000, got 1000000000000"),
            ("absurd total rate", e(|e| e.set("symbols[0].rate_per_s", 99_999_999.5)), "14:3: symbols: total rate 100000500 ticks/s is above"),
            ("zero tick size", e(|e| e.set("symbols[1].tick_size", 0.0)), "25:1: symbols[1].tick_size: tick size must be greater than 0"),
            ("nan volatility", e(|e| e.set("symbols[1].volatility_bps", f64::NAN)), "26:1: symbols[1].volatility_bps: must be between 0 and 1000"),
            // Ring.
            ("capacity not a power of two", e(|e| e.set("ring.capacity", 4000)), "8:1: ring.capacity: must be a power of two between 1024 and 67108864, got 4000"),
            ("capacity too small", e(|e| e.set("ring.capacity", 512)), "8:1: ring.capacity: must be a power of two between 1024 and 67108864, got 512"),
            ("capacity too large", e(|e| e.set("ring.capacity", 134_217_728)), "8:1: ring.capacity: must be a power of two between 1024 and 67108864, got 134217728"),
            ("capacity zero", e(|e| e.set("ring.capacity", 0)), "8:1: ring.capacity: must be a power of two"),
            ("capacity negative", e(|e| e.set("ring.capacity", -4096)), "8:12: ring.capacity: invalid value: integer `-4096`"),
            ("ring in a missing folder", e(|e| e.set("ring.path", "/no/such/dir/x.ring")), "7:1: ring.path: /no/such/dir/x.ring is not a file path in an existing folder"),
            ("ring path empty", e(|e| e.set("ring.path", "")), "7:1: ring.path:  is not a file path"),
            ("ring path a folder", e(|e| e.set("ring.path", "/")), "7:1: ring.path: / is not a file path"),
            ("ring path an existing folder", e(|e| e.set("ring.path", "/dev")), "7:1: ring.path: /dev is not a file path"),
            // Cores (allowed: 0 and 1). core_affinity aborts on ids >= 1024: refused first.
            ("hot core out of range", e(|e| e.set("cores.engine_hot", 5000)), "12:1: cores.engine_hot: core 5000 is not one this process may use (allowed: [0, 1])"),
            ("hot core not allowed", e(|e| e.set("cores.feed_md", 2)), "11:1: cores.feed_md: core 2 is not one this process may use"),
            ("shared hot core", e(|e| e.set("cores.engine_hot", 0)), "12:1: cores.engine_hot: core 0 is already the feed's hot core"),
            ("cold core out of range", e(|e| e.set("cores.cold", [0, 9])), "13:12: cores.cold[1]: core 9 is not one"),
            ("feed cold core out of range", e(|e| e.set("cores.feed_cold", [9])), "13:14: cores.feed_cold[0]: core 9 is not one"),
            ("engine cold core out of range", e(|e| e.set("cores.engine_cold", [1, 7])), "13:19: cores.engine_cold[1]: core 7 is not one"),
            ("negative core", e(|e| e.set("cores.feed_md", -1)), "11:11: cores.feed_md: invalid value: integer `-1`"),
            // Other values.
            ("zero duration", e(|e| e.set("duration_s", 0)), "3:1: duration_s: duration must be greater than 0"),
            ("infinite duration", e(|e| e.set("duration_s", f64::INFINITY)), "3:1: duration_s: duration must be at most"),
            ("warm-up too long", e(|e| e.set("warmup_s", 3)), "4:1: warmup_s: warm-up must be at least 0 and shorter"),
            ("interval zero", e(|e| e.set("log.interval_ms", 0)), "29:1: log.interval_ms: must be between 10 and 3600000 ms, got 0"),
            ("cold slice too long", e(|e| e.set("cold.slice_us", 2_000_000)), "29:1: cold.slice_us: must be at most 1000000 (0: no slicing), got 2000000"),
            ("cold pause zero", e(|e| e.set("cold.pause_us", 0)), "29:1: cold.pause_us: must be between 1 and 100000, got 0"),
            ("cold poll zero", e(|e| e.set("cold.poll_ms", 0)), "29:1: cold.poll_ms: must be between 1 and 1000, got 0"),
            ("cold nice out of range", e(|e| e.set("cold.nice", 20)), "29:1: cold.nice: must be between -20 and 19, got 20"),
            ("cold policy unknown", e(|e| e.set("cold.policy", "fifo")), "29:10: cold.policy: unknown variant `fifo`"),
            ("journal segment too small", e(|e| e.set("feed.journal.dir", "/tmp/j").set("feed.journal.segment_bytes", 100)), "30:1: feed.journal.segment_bytes: must be between 65536 and 1073741824, got 100"),
            ("journal retention below a segment", e(|e| e.set("feed.journal.dir", "/tmp/j").set("feed.journal.retention_bytes", 65536)), "30:1: feed.journal.retention_bytes: must be at least segment_bytes (67108864), got 65536"),
            ("journal fsync unknown", e(|e| e.set("feed.journal.dir", "/tmp/j").set("feed.journal.fsync", "always")), "30:9: feed.journal.fsync: unknown variant `always`"),
            ("journal on_restart unknown", e(|e| e.set("feed.journal.dir", "/tmp/j").set("feed.journal.on_restart", "resume")), "30:14: feed.journal.on_restart: unknown variant `resume`"),
            ("journal without a folder", e(|e| e.set("feed.journal.fsync", "none")), "28:1: feed.journal.dir: missing field `dir`"),
            ("channel unknown", e(|e| e.set("cold.channel", "flume")), "29:11: cold.channel: unknown variant `flume`, expected `rtrb` or `crossbeam`"),
            ("thp unknown", e(|e| e.set("memory.thp", "never")), "29:7: memory.thp: unknown variant `never`, expected `default` or `off`"),
            ("cold idle beside spinning hot threads", e(|e| e.set("cold.policy", "idle")), "29:1: cold.policy: \"idle\" would starve the feed's cold threads: every core they may use ([0, 1]) runs a spinning hot thread"),
            ("cold idle, engine cold on the spinning cores", e(|e| e.set("cold.policy", "idle").set("feed.wait", "block").set("cores.engine_cold", [1])), "30:1: cold.policy: \"idle\" would starve the engine's cold threads"),
            ("cold unknown key", e(|e| e.set("cold.slice", 5)), "29:1: cold.slice: unknown field `slice`"),
            ("levels zero", e(|e| e.set("engine.levels", 0)), "29:1: engine.levels: must be between 1 and 16, got 0"),
            ("unknown scratch", e(|e| e.set("engine.scratch", "pool2")), "29:11: engine.scratch: unknown variant `pool2`"),
            ("pool of nothing", e(|e| e.set("engine.scratch", Scratch::Pool).set("engine.pool_blocks", 0)), "30:1: engine.pool_blocks: must be between 1 and 1000000, got 0"),
            ("recovery without a service", e(|e| e.set("engine.recover", true)), "29:1: engine.recover: needs engine.history_service"),
            ("a service that is no endpoint", e(|e| e.set("engine.history_service", "feed.sock")), "29:19: engine.history_service: \"feed.sock\" is neither a TCP address"),
            ("a service host name", e(|e| e.set("engine.history_service", "tcp://feed:7070")), "29:19: engine.history_service: \"tcp://feed:7070\" is not tcp://IP:PORT"),
            ("aeron without a channel", e(|e| e.set("engine.source", "aeron")), "29:1: engine.source: \"aeron\" needs a [net] section"),
            ("unknown source", e(|e| e.set("engine.source", "udp")), "29:10: engine.source: unknown variant `udp`"),
            ("load without a service", e(|e| e.set("engine.service_load.requests_per_s", 10)), "29:1: engine.service_load.requests_per_s: needs engine.history_service"),
            ("load rate zero", e(|e| e.set("engine.history_service", "/tmp/s.sock").set("engine.service_load.requests_per_s", 0)), "32:1: engine.service_load.requests_per_s: must be more than 0"),
            ("load range too long", e(|e| e.set("engine.history_service", "/tmp/s.sock").set("engine.service_load.requests_per_s", 5).set("engine.service_load.range_ticks", 2_000_000)), "33:1: engine.service_load.range_ticks: must be between 1 and 1000000"),
            ("recovery buffer too small", e(|e| e.set("engine.recovery_buffer", 4)), "29:1: engine.recovery_buffer: must be between 16 and 16777216, got 4"),
            // Routing.
            ("routing unknown role", e(|e| e.set("routing.roles.feed_journal", "jemalloc")), "29:1: routing.roles.feed_journal: unknown field `feed_journal`, expected one of `other`"),
            ("routing unknown allocator", e(|e| e.set("routing.roles.engine_report", "tcmalloc")), "29:17: routing.roles.engine_report: unknown variant `tcmalloc`, expected `mimalloc` or `jemalloc`"),
            ("routing threshold zero", e(|e| e.set("routing.hot_max_bytes", 0)), "29:1: routing.hot_max_bytes: the threshold must be between 1 byte and the arena's size (268435456 bytes), got 0"),
            ("routing threshold above the arena", e(|e| e.set("routing.arena_mib", 1).set("routing.hot_max_bytes", 2_000_000)), "30:1: routing.hot_max_bytes: the threshold must be between 1 byte and the arena's size (1048576 bytes), got 2000000"),
            ("routing arena zero", e(|e| e.set("routing.arena_mib", 0)), "29:1: routing.arena_mib: the hot arena must be between 1 and 65536 MiB, got 0"),
            ("routing arena too large", e(|e| e.set("routing.arena_mib", 1_000_000)), "29:1: routing.arena_mib: the hot arena must be between 1 and 65536 MiB, got 1000000"),
            ("routing adaptive not a flag", e(|e| e.set("routing.adaptive", "yes")), "29:12: routing.adaptive: invalid type: string \"yes\", expected a boolean"),
            ("service listen not an address", e(|e| e.set("feed.service.socket", "/tmp/s.sock").set("feed.service.listen", "localhost:7070")), "30:10: feed.service.listen: \"localhost:7070\" is not IP:PORT"),
            ("service listen without a port", e(|e| e.set("feed.service.socket", "/tmp/s.sock").set("feed.service.listen", "10.77.0.1")), "30:10: feed.service.listen: \"10.77.0.1\" is not IP:PORT"),
            ("service listen not a string", e(|e| e.set("feed.service.socket", "/tmp/s.sock").set("feed.service.listen", 7070)), "30:10: feed.service.listen: invalid type: integer `7070`, expected a string"),
            ("two retentions", e(|e| e.set("feed.history.retention_ticks", 5).set("feed.history.retention_bytes", 640)), "30:1: feed.history.retention_bytes: set either"),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .map(|(what, text, expected)| (what, err(text), expected))
            .filter(|(_, e, expected)| {
                !e.starts_with(&format!("cfg.toml:{expected}")) || e.lines().count() != 1
            })
            .map(|(what, e, expected)| format!("{what}: wanted cfg.toml:{expected}\n   got {e}"))
            .collect();
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    }

    #[test]
    fn routing_roles_are_the_routers_roles_in_its_order() {
        let names: Vec<&str> = RoleRoutes::default()
            .all()
            .iter()
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(names, crate::routed::ROLES);
        for (name, alloc) in RoleRoutes::default().all() {
            let hot = crate::routed::HOT_ROLES.contains(&name);
            assert_eq!(alloc == RouteAlloc::Mimalloc, hot, "{name}");
            let i = crate::routed::role_index(name).unwrap();
            assert_eq!(crate::routed::default_route(i), alloc.route(), "{name}");
        }
    }

    #[test]
    fn unreadable_file() {
        let e = Config::load(Path::new("/no/such/file.toml"), CORES).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("/no/such/file.toml: cannot read config"));
    }
}
