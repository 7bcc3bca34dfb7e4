//! The feed's network publisher (`[net]`): each tick the md thread publishes into the
//! ring also goes out on an Aeron publication, with the ring's sequence number, so the
//! relays on other hosts see what they miss ([`common::transport::Tee`]).
//!
//! Built with the `aeron` feature only; a feed without it refuses a configuration with
//! `[net]` (bad input, located at the section), so no run silently publishes to the ring
//! alone. The media driver and the client start here, on the main thread, before the md
//! thread; the publication's `offer` on the md thread neither allocates nor makes a
//! system call (see `net::aeron`).

use common::config::{Config, KeyPath};
use common::failure::Failure;
#[cfg(feature = "aeron")]
use common::summary::NetSendReport;

/// The network sink the md thread sends through.
#[cfg(feature = "aeron")]
pub use net::aeron::NetSink as Sink;

/// Without the `aeron` feature there is no network sink: this type has no values.
#[cfg(not(feature = "aeron"))]
pub enum Sink {}

#[cfg(not(feature = "aeron"))]
impl common::transport::Sink for Sink {
    fn send(&mut self, _tick: &common::tick::Tick) -> Option<u64> {
        match *self {}
    }
}

/// The feed's Aeron side, started on the main thread: the media driver, and what the
/// md thread needs to add its publication. Aeron's client handles are not `Send`: the md
/// thread creates its client and its exclusive publication itself (`Net::connect`),
/// before its loop.
pub struct Net {
    #[cfg(feature = "aeron")]
    driver: net::aeron::Driver,
    #[cfg(feature = "aeron")]
    config: common::config::net::NetConfig,
    #[cfg(feature = "aeron")]
    producer: u64,
}

/// The md thread's client and publication; the client lives as long as the publication.
#[cfg(feature = "aeron")]
pub struct Connected {
    /// The publication the md thread sends through.
    pub sink: Sink,
    _client: net::aeron::Client,
}

#[cfg(feature = "aeron")]
impl Net {
    /// Called on the md thread: its client of the driver and the publication.
    pub fn connect(&self) -> Result<Connected, Failure> {
        let client = net::aeron::Client::connect(self.driver.dir())
            .map_err(|m| Failure::runtime(anyhow::anyhow!(m)))?;
        let sink = client
            .publish(&self.config, self.producer)
            .map_err(|m| Failure::runtime(anyhow::anyhow!(m)))?;
        Ok(Connected {
            sink,
            _client: client,
        })
    }

    /// What the publication sent and refused.
    pub fn report(&self, stats: common::summary::NetSendStats) -> NetSendReport {
        NetSendReport {
            channel: self.config.publication_channel(),
            stream_id: self.config.stream_id,
            stats,
        }
    }
}

/// Starts the media driver `config.net` describes (none without `[net]`); `producer`
/// is this feed run's identity, sent in every control message.
#[cfg(feature = "aeron")]
pub fn open(config: &Config, producer: u64) -> Result<Option<Net>, Failure> {
    let Some(n) = &config.net else {
        return Ok(None);
    };
    let driver = net::aeron::Driver::start(n)
        .map_err(|m| Failure::bad_input(config.error_at(&KeyPath::key("net").then("driver"), m)))?;
    eprintln!(
        "feed: also publishing on {} stream {} (driver {}, {})",
        n.publication_channel(),
        n.stream_id,
        driver.dir().display(),
        if driver.is_embedded() {
            "embedded"
        } else {
            "external"
        }
    );
    Ok(Some(Net {
        driver,
        config: n.clone(),
        producer,
    }))
}

/// Without the `aeron` feature: `[net]` is refused.
#[cfg(not(feature = "aeron"))]
pub fn open(config: &Config, _producer: u64) -> Result<Option<Net>, Failure> {
    match &config.net {
        None => Ok(None),
        Some(_) => Err(Failure::bad_input(config.error_at(
            &KeyPath::key("net"),
            "this feed is built without Aeron: build it with `cargo build --release -p feed --features aeron`, or remove [net]",
        ))),
    }
}
