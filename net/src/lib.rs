//! Market data beyond one host: the feed's ticks over Aeron, and the relay that
//! republishes them into an engine host's ring.
//!
//! - [`wire`]: the messages on the feed's Aeron stream (a tick, a heartbeat, the end).
//! - [`seq`]: the relay's account of the stream's sequence numbers (relayed, missing).
//! - [`direct`]: an engine's reading of the stream without a relay (`engine.source =
//!   "aeron"`): the messages said as ring polls.
//! - `aeron` (feature `aeron`): the media driver, the feed's publication as a
//!   [`common::transport::Sink`] beside the ring, the relay's subscription.
//! - `relay` (feature `aeron`): the relay process (binary `relay`, mimalloc).
//! - [`summary`]: what the relay reports (`relay_summary.json`), in every build.
//!
//! Without the feature the crate is the pure parts only, so that the workspace's
//! default build needs no C toolchain for Aeron. The modules say which thread runs what
//! and what allocates.
#![deny(unsafe_code)]

#[cfg(feature = "aeron")]
pub mod aeron;
pub mod direct;
#[cfg(feature = "aeron")]
pub mod relay;
pub mod seq;
pub mod summary;
pub mod wire;
