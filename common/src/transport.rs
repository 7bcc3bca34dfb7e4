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

    /// Whether a receiver is there to take what is sent (a network publication with a
    /// subscriber). By default true (the ring takes every tick whoever reads it).
    fn connected(&self) -> bool {
        true
    }
}

/// The receiving end of a tick transport, polled without blocking.
pub trait Source {
    /// One receive attempt. Never blocks.
    fn poll(&mut self) -> Poll;
}

/// How far a feed's producer has got ([`FeedSource::producer_progress`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Highest sequence number published (or named by the producer's last message).
    pub published: u64,
    /// The producer's last sign of life (its raw clock), or 0.
    pub heartbeat_raw: u64,
}

/// Who produces a feed ([`FeedSource::producer`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProducerIdentity {
    /// Process id (0 where the transport does not carry it).
    pub pid: u32,
    /// Start time, nanoseconds since the Unix epoch: unique per producer start.
    pub epoch_ns: u64,
}

/// A [`Source`] that knows the feed run behind it: what a consumer that accounts for
/// every tick of a run (the engine's hot loop) reads besides the ticks. The ring
/// implements it from its header ([`crate::ring::Subscriber`]); a network subscription
/// from the sequence numbers and control messages it heard. Every method is cheap and
/// free of allocation, locks and system calls; all but [`Source::poll`] are for
/// housekeeping (about once a millisecond) and the end of a session.
pub trait FeedSource: Source {
    /// A sign of life to a producer that waits for its consumers (a lossless ring); by
    /// default nothing.
    #[inline]
    fn heartbeat(&self, now_raw: u64) {
        let _ = now_raw;
    }
    /// How far the producer has got: neither field changing for a while means it is
    /// gone.
    fn producer_progress(&self) -> Progress;
    /// The sequence number this consumer reads next.
    fn next_seq(&self) -> u64;
    /// The first sequence number of the run this consumer counts from: it has seen
    /// `producer_progress().published - (first_seq() - 1)` ticks published.
    fn first_seq(&self) -> u64;
    /// The producer's identity.
    fn producer(&self) -> ProducerIdentity;
    /// Whether the producer stopped waiting for this consumer (a lossless ring's
    /// eviction); by default false.
    fn evicted(&self) -> bool {
        false
    }
}

/// Two sinks as one: `first` numbers each tick (the ring), `second` (a network
/// publication beside it) sends it with that number. A tick `first` refuses is refused;
/// one only `second` refuses is sent (`first` has it) and counted by `second` itself.
/// Heartbeats go to both. Adds nothing per tick beyond the two sends and a copy of the
/// tick on the stack.
pub struct Tee<'a, A: Sink, B: Sink> {
    /// The numbering sink.
    pub first: &'a mut A,
    /// The sink beside it.
    pub second: &'a mut B,
}

impl<A: Sink, B: Sink> Sink for Tee<'_, A, B> {
    #[inline]
    fn send(&mut self, tick: &Tick) -> Option<u64> {
        let seq = self.first.send(tick)?;
        let mut numbered = *tick;
        numbered.seq = seq;
        let _ = self.second.send(&numbered);
        Some(seq)
    }
    #[inline]
    fn heartbeat(&mut self, now_raw: u64) {
        self.first.heartbeat(now_raw);
        self.second.heartbeat(now_raw);
    }
    fn end(&mut self) {
        self.first.end();
        self.second.end();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that numbers from 1 and refuses every `refuse_every`-th tick.
    #[derive(Default)]
    struct Counting {
        next: u64,
        seen: Vec<u64>,
        heartbeats: u32,
        refuse_every: u64,
    }

    impl Sink for Counting {
        fn send(&mut self, tick: &Tick) -> Option<u64> {
            self.next += 1;
            if self.refuse_every > 0 && self.next.is_multiple_of(self.refuse_every) {
                return None;
            }
            self.seen
                .push(if tick.seq == 0 { self.next } else { tick.seq });
            Some(self.next)
        }
        fn heartbeat(&mut self, _now_raw: u64) {
            self.heartbeats += 1;
        }
    }

    #[test]
    fn tee_numbers_with_the_first_and_sends_both() {
        let mut ring = Counting::default();
        let mut net = Counting {
            refuse_every: 2,
            ..Counting::default()
        };
        let mut tee = Tee {
            first: &mut ring,
            second: &mut net,
        };
        let sent: Vec<Option<u64>> = (0..4).map(|_| tee.send(&Tick::default())).collect();
        tee.heartbeat(7);
        // The ring's numbers come back, whether or not the second sink took the tick.
        assert_eq!(sent, [Some(1), Some(2), Some(3), Some(4)]);
        assert_eq!(ring.seen, [1, 2, 3, 4]);
        // The second sink saw the ring's numbers; it refused its 2nd and 4th.
        assert_eq!(net.seen, [1, 3]);
        assert_eq!((ring.heartbeats, net.heartbeats), (1, 1));
        // A tick the first sink refuses goes nowhere.
        let mut ring = Counting {
            refuse_every: 1,
            ..Counting::default()
        };
        let mut net = Counting::default();
        let mut tee = Tee {
            first: &mut ring,
            second: &mut net,
        };
        assert_eq!(tee.send(&Tick::default()), None);
        assert!(net.seen.is_empty());
    }
}
