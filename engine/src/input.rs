//! Where the engine's ticks come from (`engine.source`): the host's ring, or the feed's
//! Aeron stream read with no relay (feature `aeron`), to compare the two.
//!
//! [`open`] runs on the main thread at start-up and blocks (sleeping) until there is a
//! feed to read: a live feed's ring, or the first control message of a feed run on the
//! stream. [`Input::run_hot`] is the body of the hot thread: [`crate::hot::thread`] on
//! the source, generic over it, so the per-tick loop is the same code for both.
//!
//! For the Aeron source the engine runs a media driver (embedded, or the host's:
//! `net.driver`) and an Aeron client, whose threads are the driver's and the client's
//! conductor, not the hot thread's; the hot thread only polls the subscription (one
//! message per poll, no allocation, no system call). Its clock is this host's own:
//! one-way figures (the hop, end to end) hold where feed and engine share a clock (one
//! machine, or hosts synchronised by PTP).

use crate::hot::{self, FromService};
use crate::order::OrderMsg;
use common::clock::{Clock, ClockSource};
use common::config::{Config, EngineSource, KeyPath};
use common::failure::Failure;
use common::latency::IntervalRecorder;
use common::ring::shm::MappedRegion;
use common::ring::Subscriber;
use common::summary::AeronReadReport;
use std::sync::atomic::AtomicBool;

/// The source the hot thread reads.
pub(crate) enum Input {
    /// The feed's (or a relay's) ring.
    Ring(Subscriber<MappedRegion>),
    /// The feed's Aeron stream: the driver's folder and whether it runs in this process.
    /// Aeron's client handles are not `Send`: the hot thread connects its own client and
    /// adds the subscription itself, before it pins itself (so that the client's
    /// conductor thread is not pinned to the hot core).
    #[cfg(feature = "aeron")]
    Aeron {
        /// The media driver's folder.
        dir: std::path::PathBuf,
        /// Whether the driver runs in this process (its counters are then this
        /// engine's).
        embedded: bool,
    },
}

/// What the main thread keeps while the hot thread reads: the media driver of an Aeron
/// source (stopped when dropped, at the end).
#[derive(Default)]
pub(crate) struct Held {
    #[cfg(feature = "aeron")]
    _driver: Option<net::aeron::Driver>,
}

/// An opened source.
pub(crate) struct Opened {
    pub input: Input,
    pub held: Held,
    /// The clock the feed stamps ticks with (the ring's), or this host's own.
    pub clock: Clock,
    /// What is read, for the start-up line.
    pub reading: String,
}

/// Opens `engine.source`, waiting for a feed; `None` if stopped while waiting.
pub(crate) fn open(config: &Config, stop: &AtomicBool) -> Result<Option<Opened>, Failure> {
    match config.engine.source {
        EngineSource::Ring => open_ring(config, stop),
        EngineSource::Aeron => open_aeron(config, stop),
    }
}

fn open_ring(config: &Config, stop: &AtomicBool) -> Result<Option<Opened>, Failure> {
    let Some((sub, info)) = crate::wait_for_ring(config, stop, None)? else {
        return Ok(None);
    };
    let source = ClockSource::from_u32(info.clock_source).ok_or_else(|| {
        Failure::bad_input(anyhow::anyhow!(
            "ring {} names an unknown clock source {}",
            config.ring.path.display(),
            info.clock_source
        ))
    })?;
    Ok(Some(Opened {
        input: Input::Ring(sub),
        held: Held::default(),
        clock: Clock::with_source(source),
        reading: format!(
            "{} (feed pid {}, {} slots, {}, clock {})",
            config.ring.path.display(),
            info.producer_pid,
            info.capacity,
            if info.lossless {
                "lossless: registered, the feed waits for this engine"
            } else {
                "lossy"
            },
            source.name(),
        ),
    }))
}

#[cfg(not(feature = "aeron"))]
fn open_aeron(config: &Config, _stop: &AtomicBool) -> Result<Option<Opened>, Failure> {
    Err(Failure::bad_input(config.error_at(
        &KeyPath::key("engine").then("source"),
        "\"aeron\": this engine binary was built without Aeron; build it with `--features engine/aeron`",
    )))
}

#[cfg(feature = "aeron")]
fn open_aeron(config: &Config, _stop: &AtomicBool) -> Result<Option<Opened>, Failure> {
    let Some(net) = &config.net else {
        return Err(Failure::bad_input(config.error_at(
            &KeyPath::key("net"),
            "engine.source = \"aeron\" needs a [net] section: the feed's channel to subscribe to",
        )));
    };
    let clock = Clock::new();
    let driver = net::aeron::Driver::start(net)
        .map_err(|m| Failure::bad_input(config.error_at(&KeyPath::key("net").then("driver"), m)))?;
    let reading = format!(
        "{} stream {} (Aeron, no relay; driver {} {}; clock {}, this host's)",
        net.channel(),
        net.stream_id,
        driver.dir().display(),
        if driver.is_embedded() {
            "embedded"
        } else {
            "external"
        },
        clock.source().name(),
    );
    Ok(Some(Opened {
        input: Input::Aeron {
            dir: driver.dir().to_path_buf(),
            embedded: driver.is_embedded(),
        },
        held: Held {
            _driver: Some(driver),
        },
        clock,
        reading,
    }))
}

impl Input {
    /// The hot thread's body (see [`hot::thread`]); also hands back what the Aeron
    /// source skipped of the stream. `Ok(None)`: stopped while waiting for a feed run;
    /// `Err`: the Aeron subscription could not be made.
    pub(crate) fn run_hot(
        self,
        config: &Config,
        clock: &Clock,
        stop: &AtomicBool,
        recorder: IntervalRecorder,
        orders_tx: common::hop::HopTx<OrderMsg>,
        service: FromService,
    ) -> Result<Option<(hot::Finished, Option<AeronReadReport>)>, String> {
        match self {
            Input::Ring(sub) => {
                let mut reopen = hot::reopen_ring(config, stop, clock.source());
                let (finished, _) = hot::thread(
                    config,
                    clock,
                    sub,
                    &mut reopen,
                    recorder,
                    orders_tx,
                    stop,
                    service,
                );
                Ok(Some((finished, None)))
            }
            #[cfg(feature = "aeron")]
            Input::Aeron { dir, embedded } => {
                let net = config
                    .net
                    .as_ref()
                    .expect("validated: source aeron has [net]");
                let client = net::aeron::Client::connect(&dir)?;
                let mut feed = net::aeron::DirectFeed::new(client.subscribe(net)?);
                eprintln!(
                    "engine: waiting for a feed on {} stream {}",
                    net.channel(),
                    net.stream_id
                );
                if !feed.wait_for_run(stop) {
                    return match stop.load(std::sync::atomic::Ordering::Relaxed) {
                        true => Ok(None),
                        false => Err(format!(
                            "the subscription to {} failed while waiting for a feed",
                            net.channel()
                        )),
                    };
                }
                eprintln!(
                    "engine: joined the feed run started at {} ns since the Unix epoch",
                    common::transport::FeedSource::producer(&feed).epoch_ns
                );
                let mut reopen = |closed: &common::summary::FeedSession,
                                  feed: &mut net::aeron::DirectFeed|
                 -> hot::Reopened {
                    eprintln!(
                        "engine: the feed run started at {} ns {} after publishing {} ticks (received {}, missed {}); waiting for a new run on the stream",
                        closed.epoch_ns,
                        match closed.end {
                            common::summary::EndReason::EndOfStream => "ended its stream".to_string(),
                            _ => format!(
                                "showed no sign of life for {} ms, or another run took over",
                                config.engine.producer_timeout_ms
                            ),
                        },
                        closed.published,
                        closed.received,
                        closed.missed,
                    );
                    if !feed.wait_for_run(stop) {
                        return Err(common::summary::EndReason::Signal);
                    }
                    eprintln!(
                        "engine: joined the feed run started at {} ns; the discontinuity is a new session in the summary",
                        common::transport::FeedSource::producer(feed).epoch_ns
                    );
                    Ok(hot::new_feed_snapshot(config))
                };
                let (finished, feed) = hot::thread(
                    config,
                    clock,
                    feed,
                    &mut reopen,
                    recorder,
                    orders_tx,
                    stop,
                    service,
                );
                let c = feed.counts();
                drop(feed);
                let report = AeronReadReport {
                    channel: net.channel(),
                    stream_id: net.stream_id,
                    before_join: c.before_join,
                    duplicates: c.duplicates,
                    foreign: c.foreign,
                    runs: c.runs,
                    driver_counters: if embedded {
                        client.driver_counters()
                    } else {
                        Default::default()
                    },
                };
                Ok(Some((finished, Some(report))))
            }
        }
    }
}
