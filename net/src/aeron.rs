//! The Aeron glue (feature `aeron`): the process's media driver, the feed's publication
//! as a [`Sink`] beside the ring, and the relay's subscription as a message source.
//!
//! # Guarantees
//!
//! - [`Driver::start`] (start-up, any thread) launches an embedded media driver in
//!   `net.driver.dir` with the configured threading mode, idle strategy and cores, or
//!   checks that the directory of an external driver holds one. The embedded driver's
//!   folder is created owner-only and marked as the project's ([`OWNER_MARK`]); a folder
//!   there that is not the project's is refused and left as it is. The driver removes
//!   its folder when it stops.
//! - [`NetSink::send`] (the feed's md thread, per tick) encodes the tick into a stack
//!   array and offers it to an exclusive publication: Aeron's `offer` copies it into the
//!   publication's shared log buffer; the driver's threads send it. No allocation, lock
//!   or system call. A refused offer (no subscriber yet, back-pressure, an admin action)
//!   is counted by cause and the tick is not sent: the receivers see a gap and the
//!   counts say why. Heartbeats and the end go the same way.
//! - [`NetSource::poll`] (the relay's receive thread) takes at most one message per call
//!   from the subscription and decodes it; nothing allocates per message.
//! - [`DirectFeed`] (the engine's hot thread, `engine.source = "aeron"`) is the
//!   subscription as a [`FeedSource`]: [`NetSource::poll`] and [`crate::direct::Direct`]'s
//!   bookkeeping, nothing more per message.

use crate::direct::{Direct, DirectCounts};
use crate::wire::{self, Control, ControlKind, Message, WireError};
use common::config::net::{DriverIdle, DriverThreading, NetConfig};
use common::files::{self, Kind};
use common::summary::NetSendStats;
use common::tick::Tick;
use common::transport::{FeedSource, Poll, ProducerIdentity, Progress, Sink, Source};
use rusteron_client::{
    Aeron, AeronContext, AeronExclusivePublication, AeronOfferError, AeronSubscription, Handlers,
    IntoCString,
};
use rusteron_media_driver::bindings::aeron_threading_mode_enum;
use rusteron_media_driver::{AeronDriver, AeronDriverContext, AeronIdleStrategyKind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The file that marks an embedded driver's folder as the project's.
pub const OWNER_MARK: &str = "hft-owner";
/// How long start-up waits for a publication or a subscription to be added.
const ADD_TIMEOUT: Duration = Duration::from_secs(5);

/// An error of the Aeron layer, with Aeron's own message.
fn aeron_error(what: &str, e: impl std::fmt::Debug) -> String {
    format!("{what}: {e:?}")
}

/// The process's media driver: embedded (stopped and its folder removed on drop) or
/// another process's.
pub struct Driver {
    dir: PathBuf,
    embedded: Option<AeronDriver>,
}

impl Driver {
    /// Starts the driver `config.driver` describes (see the module's guarantees).
    pub fn start(config: &NetConfig) -> Result<Driver, String> {
        let d = &config.driver;
        if !d.embedded {
            return Ok(Driver {
                dir: d.dir.clone(),
                embedded: None,
            });
        }
        prepare_dir(&d.dir)?;
        if d.loss_rate > 0.0 {
            // Aeron reads its interceptors and the loss generator's arguments from the
            // environment when the context is made: set here, at start-up, before this
            // process starts any thread that reads the environment. Only data frames
            // (type 1, mask bit 0x2) are dropped, so set-up and status messages get
            // through and every loss is one Aeron can retransmit.
            std::env::set_var("AERON_UDP_CHANNEL_INCOMING_INTERCEPTORS", "loss");
            std::env::set_var(
                "AERON_UDP_CHANNEL_TRANSPORT_BINDINGS_LOSS_ARGS",
                format!(
                    "rate={}|seed={}|recv-msg-mask=0x2",
                    d.loss_rate, d.loss_seed
                ),
            );
        }
        let ctx = AeronDriverContext::new().map_err(|e| aeron_error("driver context", e))?;
        let dir = d.dir.display().to_string().into_c_string();
        let set = |what: &str, r: Result<i32, rusteron_media_driver::AeronCError>| {
            r.map(drop).map_err(|e| aeron_error(what, e))
        };
        set("driver directory", ctx.set_dir(&dir))?;
        set("driver directory", ctx.set_dir_delete_on_start(false))?;
        set("driver directory", ctx.set_dir_delete_on_shutdown(true))?;
        set(
            "threading mode",
            ctx.set_threading_mode(match d.threading {
                DriverThreading::Shared => aeron_threading_mode_enum::AERON_THREADING_MODE_SHARED,
                DriverThreading::SharedNetwork => {
                    aeron_threading_mode_enum::AERON_THREADING_MODE_SHARED_NETWORK
                }
                DriverThreading::Dedicated => {
                    aeron_threading_mode_enum::AERON_THREADING_MODE_DEDICATED
                }
            }),
        )?;
        let idle = match d.idle {
            DriverIdle::Backoff => AeronIdleStrategyKind::Backoff,
            DriverIdle::Spin => AeronIdleStrategyKind::BusySpin,
            DriverIdle::Yield => AeronIdleStrategyKind::Yielding,
            DriverIdle::Sleep => AeronIdleStrategyKind::Sleeping,
        };
        set("idle strategy", ctx.set_shared_idle_strategy_kind(idle))?;
        set(
            "idle strategy",
            ctx.set_sharednetwork_idle_strategy_kind(idle),
        )?;
        set("idle strategy", ctx.set_conductor_idle_strategy_kind(idle))?;
        set("idle strategy", ctx.set_sender_idle_strategy_kind(idle))?;
        set("idle strategy", ctx.set_receiver_idle_strategy_kind(idle))?;
        set(
            "NAK backoff",
            ctx.set_nak_multicast_max_backoff_ns(d.nak_backoff_us * 1000),
        )?;
        set("MTU", ctx.set_mtu_length(config.mtu as usize))?;
        set(
            "term length",
            ctx.set_term_buffer_length(config.term_length as usize),
        )?;
        // Latency-sensitive streams: the log buffers are touched at creation, not on the
        // first send.
        set("term buffers", ctx.set_term_buffer_sparse_file(false))?;
        if let Some(&first) = d.cores.first() {
            let core =
                |i: usize| *d.cores.get(i).unwrap_or(d.cores.last().unwrap_or(&first)) as i32;
            set("driver cores", ctx.set_conductor_cpu_affinity(core(0)))?;
            set("driver cores", ctx.set_sender_cpu_affinity(core(1)))?;
            set("driver cores", ctx.set_receiver_cpu_affinity(core(2)))?;
            ctx.set_thread_affinity_on_start();
        }
        let driver = AeronDriver::new(&ctx).map_err(|e| aeron_error("media driver", e))?;
        driver
            .start(false)
            .map_err(|e| aeron_error("media driver start", e))?;
        Ok(Driver {
            dir: d.dir.clone(),
            embedded: Some(driver),
        })
    }

    /// The driver's folder, for clients.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether it runs in this process.
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// A client of this driver.
    pub fn client(&self) -> Result<Client, String> {
        Client::connect(&self.dir)
    }
}

/// Creates the embedded driver's folder owner-only with the project's mark, or takes
/// one the project made before (a run that was killed); anything else is refused.
fn prepare_dir(dir: &Path) -> Result<(), String> {
    let mark = dir.join(OWNER_MARK);
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            files::create_dir_all(dir).map_err(|e| e.to_string())?;
            files::write(
                &mark,
                Kind::Text,
                format!(
                    "{}the folder of an embedded Aeron media driver\n",
                    Kind::Text.header("Aeron media driver folder")
                )
                .as_bytes(),
            )
            .map_err(|e| e.to_string())
        }
        Err(e) => Err(format!("{}: {e}", dir.display())),
        Ok(m) if m.is_dir() => match files::examine(&mark, Kind::Text) {
            Ok(files::Existing::Own(_)) => Ok(()),
            _ => Err(format!(
                "{} exists and is not a media driver folder of this project (no {OWNER_MARK} mark): choose another net.driver.dir, or remove it",
                dir.display()
            )),
        },
        Ok(_) => Err(format!(
            "{} exists and is not a folder: choose another net.driver.dir",
            dir.display()
        )),
    }
}

/// An Aeron client of one driver.
pub struct Client {
    aeron: Aeron,
    _ctx: AeronContext,
}

impl Client {
    /// Connects to the driver in `dir`.
    pub fn connect(dir: &Path) -> Result<Client, String> {
        let ctx = AeronContext::new().map_err(|e| aeron_error("client context", e))?;
        ctx.set_dir(&dir.display().to_string().into_c_string())
            .map_err(|e| aeron_error("client directory", e))?;
        ctx.set_pre_touch_mapped_memory(true)
            .map_err(|e| aeron_error("client", e))?;
        // Aeron's default handler exits the process (a driver that shut down, for
        // example the relay's after its feed ended): report instead, on Aeron's conductor
        // thread, and let the process end in order.
        ctx.set_error_handler(Some(|code: i32, msg: &str| {
            eprintln!("aeron: error {code}: {msg}")
        }))
        .map_err(|e| aeron_error("client error handler", e))?;
        let aeron = Aeron::new(&ctx).map_err(|e| aeron_error("Aeron client", e))?;
        aeron
            .start()
            .map_err(|e| aeron_error("Aeron client start", e))?;
        Ok(Client { aeron, _ctx: ctx })
    }

    /// The media driver's system counters (type 0: NAKs sent and received, retransmits,
    /// loss gap fills, errors, …) by label. Reads the driver's counters file; cold, at
    /// the end of a run.
    pub fn driver_counters(&self) -> std::collections::BTreeMap<String, i64> {
        let mut out = std::collections::BTreeMap::new();
        self.aeron
            .counters_reader()
            .foreach_counter_fn(|value, _id, type_id, _key, label| {
                if type_id == 0 {
                    out.insert(label.to_string(), value);
                }
            });
        out
    }

    /// The feed's publication of `config`'s channel and stream.
    pub fn publish(&self, config: &NetConfig, producer: u64) -> Result<NetSink, String> {
        let channel = config.publication_channel().into_c_string();
        let publication = self
            .aeron
            .async_add_exclusive_publication(&channel, config.stream_id)
            .map_err(|e| aeron_error("add publication", e))?
            .poll_blocking(ADD_TIMEOUT)
            .map_err(|e| {
                aeron_error(
                    &format!("add publication {}", config.publication_channel()),
                    e,
                )
            })?;
        Ok(NetSink {
            publication,
            producer,
            last_seq: 0,
            window: 0,
            stats: NetSendStats::default(),
        })
    }

    /// A subscription to `config`'s channel and stream.
    pub fn subscribe(&self, config: &NetConfig) -> Result<NetSource, String> {
        let channel = config.channel().into_c_string();
        let subscription = self
            .aeron
            .async_add_subscription(&channel, config.stream_id, Handlers::NONE, Handlers::NONE)
            .map_err(|e| aeron_error("add subscription", e))?
            .poll_blocking(ADD_TIMEOUT)
            .map_err(|e| aeron_error(&format!("add subscription {}", config.channel()), e))?;
        Ok(NetSource { subscription })
    }
}

/// The feed's Aeron publication as a [`Sink`]: the tick goes out with the sequence
/// number the ring gave it (the caller sets it), so receivers see gaps.
pub struct NetSink {
    publication: AeronExclusivePublication,
    producer: u64,
    last_seq: u64,
    /// The largest lead of the publication's limit over its position seen: the flow
    /// control window when every receiver has consumed everything.
    window: i64,
    stats: NetSendStats,
}

/// How long the end waits for the receivers to consume the stream (Aeron retransmits
/// lost frames only while this process's driver runs).
const LINGER: Duration = Duration::from_secs(3);
/// The feed's end lingers at least this long: a receiver that lost the last frames
/// learns of them only from the driver's heartbeats (every 100 ms while the stream is
/// idle), and asks for them again; the driver must still be there to send them.
const LINGER_FLOOR: Duration = Duration::from_millis(500);

impl NetSink {
    /// What it sent and refused so far.
    pub fn stats(&self) -> NetSendStats {
        self.stats
    }

    /// Whether a subscriber is connected.
    pub fn is_connected(&self) -> bool {
        self.publication.is_connected()
    }

    /// The publication limit's lead over the position (bytes): the window once the
    /// receivers have consumed everything, less while they lag.
    fn lead(&self) -> i64 {
        self.publication.position_limit() - self.publication.position()
    }

    fn control(&mut self, kind: ControlKind, now_raw: u64) {
        self.window = self.window.max(self.lead());
        let msg = wire::encode_control(&Control {
            kind,
            last_seq: self.last_seq,
            producer: self.producer,
            sent_raw: now_raw,
        });
        if self.publication.offer(&msg).is_err() {
            self.stats.control_refused += 1;
        }
    }
}

impl Sink for NetSink {
    #[inline]
    fn send(&mut self, tick: &Tick) -> Option<u64> {
        let msg = wire::encode_tick(tick);
        self.last_seq = tick.seq;
        match self.publication.offer(&msg) {
            Ok(_) => {
                self.stats.sent += 1;
                Some(tick.seq)
            }
            Err(e) => {
                match e {
                    AeronOfferError::NotConnected => self.stats.not_connected += 1,
                    AeronOfferError::BackPressured => self.stats.back_pressured += 1,
                    AeronOfferError::AdminAction => self.stats.admin_action += 1,
                    _ => self.stats.failed += 1,
                }
                None
            }
        }
    }

    #[inline]
    fn heartbeat(&mut self, now_raw: u64) {
        self.control(ControlKind::Heartbeat, now_raw);
    }

    fn connected(&self) -> bool {
        self.publication.is_connected()
    }

    fn end(&mut self) {
        // The end must arrive: retried for a while (back-pressure clears as the
        // receivers catch up); refused at last, it is counted and the receivers notice
        // the feed's silence instead.
        let msg = wire::encode_control(&Control {
            kind: ControlKind::End,
            last_seq: self.last_seq,
            producer: self.producer,
            sent_raw: 0,
        });
        let offered = std::time::Instant::now();
        let deadline = offered + LINGER;
        loop {
            match self.publication.offer(&msg) {
                Ok(_) => break,
                Err(e) if e.is_retryable() && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_micros(100))
                }
                Err(_) => {
                    self.stats.control_refused += 1;
                    return;
                }
            }
        }
        // Linger until the receiver that paces the stream (the slowest under fc=min, the
        // fastest under fc=max) has consumed all of it (the limit leads the position by
        // the whole window again), and at least LINGER_FLOOR, so that the driver is
        // still there to retransmit what the receivers lost; one that never catches up is
        // given up on after LINGER, and what it had not consumed is counted.
        while self.publication.is_connected() {
            let lead = self.lead();
            self.window = self.window.max(lead);
            if self.window > 0 && lead >= self.window && offered.elapsed() >= LINGER_FLOOR {
                return;
            }
            if std::time::Instant::now() >= deadline {
                self.stats.unconsumed_at_end = (self.window - lead).max(0) as u64;
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The relay's subscription: one message per [`NetSource::poll`].
pub struct NetSource {
    subscription: AeronSubscription,
}

/// One receive attempt on a [`NetSource`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// A message.
    Message(Message),
    /// Bytes that are not one of ours.
    Foreign(WireError),
    /// Nothing new.
    Empty,
}

impl NetSource {
    /// Takes at most one message. Never blocks.
    #[inline]
    pub fn poll(&mut self) -> Result<Received, String> {
        let mut got = Received::Empty;
        self.subscription
            .poll_fn(
                |buf, _header| {
                    got = match wire::decode(buf) {
                        Ok(m) => Received::Message(m),
                        Err(e) => Received::Foreign(e),
                    };
                },
                1,
            )
            .map_err(|e| aeron_error("subscription poll", e))?;
        Ok(got)
    }

    /// Whether a publisher's image is connected.
    pub fn is_connected(&self) -> bool {
        self.subscription.is_connected()
    }
}

/// The subscription as a transport [`Source`] (for the benchmarks): a tick is a tick,
/// the feed's end ends the stream, a heartbeat is nothing new, a foreign message is
/// corrupt and a failed poll fails the transport.
impl Source for NetSource {
    #[inline]
    fn poll(&mut self) -> Poll {
        match NetSource::poll(self) {
            Ok(Received::Message(Message::Tick(t))) => Poll::Tick(t),
            Ok(Received::Message(Message::Control(c))) if c.kind == ControlKind::End => Poll::Ended,
            Ok(Received::Message(Message::Control(_))) | Ok(Received::Empty) => Poll::Empty,
            Ok(Received::Foreign(_)) => Poll::Corrupt { seq: 0 },
            Err(_) => Poll::Failed("aeron subscription poll failed"),
        }
    }
}

/// A [`NetSink`] that retries an offer Aeron refuses for a while (back-pressure, an
/// admin action, no subscriber yet), as an Aeron publisher that must not drop does: the
/// benchmarks' lossless publisher. A fatal refusal (a closed publication) is refused.
pub struct RetryingSink(pub NetSink);

impl Sink for RetryingSink {
    #[inline]
    fn send(&mut self, tick: &Tick) -> Option<u64> {
        let msg = wire::encode_tick(tick);
        self.0.last_seq = tick.seq;
        loop {
            match self.0.publication.offer(&msg) {
                Ok(_) => {
                    self.0.stats.sent += 1;
                    return Some(tick.seq);
                }
                Err(e) if e.is_retryable() => std::hint::spin_loop(),
                Err(_) => {
                    self.0.stats.failed += 1;
                    return None;
                }
            }
        }
    }
    fn heartbeat(&mut self, now_raw: u64) {
        self.0.heartbeat(now_raw)
    }
    fn end(&mut self) {
        self.0.end()
    }
    fn connected(&self) -> bool {
        self.0.connected()
    }
}

/// The feed's stream read by an engine directly, as a [`FeedSource`] (see
/// [`crate::direct`]): one message per poll.
pub struct DirectFeed {
    source: NetSource,
    state: Direct,
}

impl DirectFeed {
    /// Reads `source` from its next control message on.
    pub fn new(source: NetSource) -> DirectFeed {
        DirectFeed {
            source,
            state: Direct::default(),
        }
    }

    /// What was skipped of the stream so far.
    pub fn counts(&self) -> DirectCounts {
        self.state.counts()
    }

    /// Whether a feed's publication is connected.
    pub fn is_connected(&self) -> bool {
        self.source.is_connected()
    }

    /// Waits for a feed run to read (at the start; or after the run read so far is gone
    /// or has ended: another one), sleeping a millisecond between empty polls (there are
    /// no ticks to handle), until its control message arrives, and counts from it. False
    /// if `stop` is set first or the subscription fails.
    pub fn wait_for_run(&mut self, stop: &AtomicBool) -> bool {
        if self.state.next_run() {
            return true;
        }
        while !stop.load(Ordering::Relaxed) {
            match self.source.poll() {
                Ok(Received::Message(m)) => {
                    self.state.on_message(m);
                    if self.state.joined() {
                        return true;
                    }
                }
                Ok(Received::Foreign(_)) => {
                    self.state.on_foreign();
                }
                Ok(Received::Empty) => std::thread::sleep(Duration::from_millis(1)),
                Err(_) => return false,
            }
        }
        false
    }
}

impl Source for DirectFeed {
    #[inline]
    fn poll(&mut self) -> Poll {
        if let Some(p) = self.state.pending() {
            return p;
        }
        match self.source.poll() {
            Ok(Received::Message(m)) => self.state.on_message(m),
            Ok(Received::Empty) => Poll::Empty,
            Ok(Received::Foreign(_)) => self.state.on_foreign(),
            Err(_) => Poll::Failed("aeron subscription poll failed"),
        }
    }
}

impl FeedSource for DirectFeed {
    #[inline]
    fn producer_progress(&self) -> Progress {
        self.state.progress()
    }
    fn next_seq(&self) -> u64 {
        self.state.next_seq()
    }
    fn first_seq(&self) -> u64 {
        self.state.first_seq()
    }
    fn producer(&self) -> ProducerIdentity {
        self.state.producer()
    }
}
