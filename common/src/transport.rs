//! The one way ticks are sent and received, whatever carries them: a [`Sink`] sends, a
//! [`Source`] receives.
//!
//! The ring implements both ([`crate::ring::Publisher`], [`crate::ring::Subscriber`]).
//! The feed's md loop sends through a [`Sink`], the benchmarks drive every transport
//! they compare (the ring, crossbeam-channel, iceoryx2) through the pair, and a network
//! publisher can stand beside the ring without touching the md loop.
//!
//! # Guarantees
//!
//! - Callers are generic over these traits, so every call is monomorphised and inlined:
//!   no dynamic dispatch and no instruction per tick beyond the transport's own (the
//!   instruction-count benchmarks of the ring go through the traits and count the same
//!   as direct calls; see `icount/benches/hot.rs`).
//! - An implementation states whether it allocates, blocks or makes a system call per
//!   tick. The ring does none of these; a transport that must wait (a full channel, a
//!   lossless ring) says so.
//! - Nothing is lost silently: a [`Sink`] that cannot deliver a tick says so in its
//!   return value, and a [`Source`] reports what it knows was lost ([`Poll::Gap`],
//!   [`Poll::Corrupt`]).

use crate::tick::Tick;

/// The result of one receive attempt on a [`Source`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// The next tick, whole and in order.
    Tick(Tick),
    /// Nothing new yet.
    Empty,
    /// The receiver fell behind (a ring consumer that was lapped): `missed` ticks
    /// starting at `first_seq` are gone and skipped. Receiving goes on after them.
    Gap {
        /// First skipped sequence number.
        first_seq: u64,
        /// Number of skipped ticks.
        missed: u64,
    },
    /// The transport delivered something that is not a valid tick (a corrupt or foreign
    /// ring slot). The tick `seq` is skipped and counted as missed.
    Corrupt {
        /// Sequence number of the invalid tick.
        seq: u64,
    },
    /// The sender ended its stream and every tick it sent has been received.
    Ended,
    /// The transport itself failed (a peer library's error); nothing more will come.
    Failed(&'static str),
}

/// The sending end of a tick transport.
pub trait Sink {
    /// Sends `tick` and returns the sequence number it went out with: a transport that
    /// numbers its stream (the ring: 1, 2, 3, …) assigns it, others send `tick.seq` as
    /// given and return it. `None`: the transport refused the tick or delivered it to
    /// nobody; the caller counts it.
    fn send(&mut self, tick: &Tick) -> Option<u64>;

    /// A sign of life while nothing is sent, for receivers that watch for a dead sender
    /// (`now_raw` is a raw clock reading). By default nothing.
    #[inline]
    fn heartbeat(&mut self, now_raw: u64) {
        let _ = now_raw;
    }

    /// Ends the stream: receivers see [`Poll::Ended`] once they have everything. By
    /// default nothing (dropping the sink ends it).
    fn end(&mut self) {}
}

/// The receiving end of a tick transport, polled without blocking.
pub trait Source {
    /// One receive attempt. Never blocks.
    fn poll(&mut self) -> Poll;
}

impl<S: Sink + ?Sized> Sink for &mut S {
    #[inline]
    fn send(&mut self, tick: &Tick) -> Option<u64> {
        (**self).send(tick)
    }
    #[inline]
    fn heartbeat(&mut self, now_raw: u64) {
        (**self).heartbeat(now_raw)
    }
    fn end(&mut self) {
        (**self).end()
    }
}

impl<S: Source + ?Sized> Source for &mut S {
    #[inline]
    fn poll(&mut self) -> Poll {
        (**self).poll()
    }
}
