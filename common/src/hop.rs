//! The bounded queue between two threads of one process (a hot thread and its cold
//! threads): one producer, one consumer, as `cold.channel` chooses.
//!
//! - [`ChannelKind::Rtrb`] (the default): `rtrb`, a wait-free single-producer,
//!   single-consumer ring. Neither side ever waits for the other: a send writes its slot
//!   and then publishes it, a receive sees only published slots.
//! - [`ChannelKind::Crossbeam`]: `crossbeam_channel::bounded`, the behaviour before,
//!   kept for comparison. Its slots are claimed before they are written: a receiver that
//!   finds a slot claimed but not yet written spins until the sender finishes, and a
//!   sender spins likewise on a slot a receiver is still reading. Where the two threads
//!   share a core and one is preempted in the middle of its operation, the other spins
//!   until the scheduler switches back (measured on the 2-core machine: the engine's
//!   order sink spinning 4.5 ms in `try_recv`, on the hot thread's core; docs/tuning.md).
//!
//! # Guarantees
//!
//! [`bounded`] allocates the queue's slots; [`HopTx::try_send`] and
//! [`HopRx::try_recv`] never allocate, lock, block or make a system call. With
//! [`ChannelKind::Rtrb`] they also never wait for the other thread. Dropping one end
//! disconnects the other: a receiver sees [`TryRecvError::Disconnected`] once it has
//! taken everything sent, a sender sees [`TrySendError::Disconnected`] at once.

pub use crossbeam_channel::{TryRecvError, TrySendError};
use serde::{Deserialize, Serialize};

/// `cold.channel`: which queue carries values between a hot thread and a cold one.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// `rtrb`: wait-free single-producer, single-consumer ring.
    #[default]
    Rtrb,
    /// `crossbeam_channel::bounded` (either side may spin on the other's half-done
    /// operation).
    Crossbeam,
}

impl ChannelKind {
    /// The name in the config file.
    pub fn name(self) -> &'static str {
        match self {
            ChannelKind::Rtrb => "rtrb",
            ChannelKind::Crossbeam => "crossbeam",
        }
    }
}

/// The sending end of a hop.
pub struct HopTx<T>(Tx<T>);

/// The receiving end of a hop.
pub struct HopRx<T>(Rx<T>);

enum Tx<T> {
    Rtrb(rtrb::Producer<T>),
    Crossbeam(crossbeam_channel::Sender<T>),
}

enum Rx<T> {
    Rtrb(rtrb::Consumer<T>),
    Crossbeam(crossbeam_channel::Receiver<T>),
}

/// A hop of `kind` holding up to `capacity` values (at least 1).
pub fn bounded<T>(kind: ChannelKind, capacity: usize) -> (HopTx<T>, HopRx<T>) {
    let capacity = capacity.max(1);
    match kind {
        ChannelKind::Rtrb => {
            let (tx, rx) = rtrb::RingBuffer::new(capacity);
            (HopTx(Tx::Rtrb(tx)), HopRx(Rx::Rtrb(rx)))
        }
        ChannelKind::Crossbeam => {
            let (tx, rx) = crossbeam_channel::bounded(capacity);
            (HopTx(Tx::Crossbeam(tx)), HopRx(Rx::Crossbeam(rx)))
        }
    }
}

impl<T> HopTx<T> {
    /// Sends `value` if there is room and the receiver is alive; otherwise hands it
    /// back in the error.
    #[inline]
    pub fn try_send(&mut self, value: T) -> Result<(), TrySendError<T>> {
        match &mut self.0 {
            Tx::Rtrb(tx) => {
                if tx.is_abandoned() {
                    return Err(TrySendError::Disconnected(value));
                }
                tx.push(value)
                    .map_err(|rtrb::PushError::Full(v)| TrySendError::Full(v))
            }
            Tx::Crossbeam(tx) => tx.try_send(value),
        }
    }
}

impl<T> HopRx<T> {
    /// The oldest value sent and not yet received, if any.
    #[inline]
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        match &mut self.0 {
            Rx::Rtrb(rx) => match rx.pop() {
                Ok(v) => Ok(v),
                Err(rtrb::PopError::Empty) => {
                    if rx.is_abandoned() {
                        // The sender may have pushed its last values between the pop
                        // and the check: take them before reporting the end.
                        rx.pop().map_err(|_| TryRecvError::Disconnected)
                    } else {
                        Err(TryRecvError::Empty)
                    }
                }
            },
            Rx::Crossbeam(rx) => rx.try_recv(),
        }
    }

    /// Values waiting to be received.
    pub fn len(&self) -> usize {
        match &self.0 {
            Rx::Rtrb(rx) => rx.slots(),
            Rx::Crossbeam(rx) => rx.len(),
        }
    }

    /// Whether no value is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Receives and drops everything waiting; returns how many there were.
    pub fn drain(&mut self) -> usize {
        let mut n = 0;
        while self.try_recv().is_ok() {
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [ChannelKind; 2] = [ChannelKind::Rtrb, ChannelKind::Crossbeam];

    #[test]
    fn values_arrive_in_order_and_a_full_hop_hands_the_value_back() {
        for kind in KINDS {
            let (mut tx, mut rx) = bounded::<u32>(kind, 3);
            for v in 0..3 {
                tx.try_send(v).unwrap();
            }
            assert_eq!(tx.try_send(9), Err(TrySendError::Full(9)), "{kind:?}");
            assert_eq!(rx.len(), 3);
            assert_eq!(
                (0..3).map(|_| rx.try_recv().unwrap()).collect::<Vec<_>>(),
                [0, 1, 2]
            );
            assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "{kind:?}");
            assert!(rx.is_empty());
        }
    }

    #[test]
    fn a_dropped_sender_disconnects_after_its_last_value() {
        for kind in KINDS {
            let (mut tx, mut rx) = bounded::<u32>(kind, 4);
            tx.try_send(1).unwrap();
            tx.try_send(2).unwrap();
            drop(tx);
            assert_eq!(rx.try_recv(), Ok(1), "{kind:?}");
            assert_eq!(rx.try_recv(), Ok(2), "{kind:?}");
            assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected), "{kind:?}");
        }
    }

    #[test]
    fn a_dropped_receiver_disconnects_the_sender_at_once() {
        for kind in KINDS {
            let (mut tx, rx) = bounded::<u32>(kind, 4);
            drop(rx);
            assert_eq!(
                tx.try_send(5),
                Err(TrySendError::Disconnected(5)),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn every_value_crosses_between_two_threads_exactly_once() {
        for kind in KINDS {
            let (mut tx, mut rx) = bounded::<u64>(kind, 64);
            let n = 200_000u64;
            let producer = std::thread::spawn(move || {
                let mut full = 0u64;
                for v in 0..n {
                    let mut v = v;
                    loop {
                        match tx.try_send(v) {
                            Ok(()) => break,
                            Err(TrySendError::Full(back)) => {
                                full += 1;
                                v = back;
                                std::hint::spin_loop();
                            }
                            Err(TrySendError::Disconnected(_)) => panic!("receiver gone"),
                        }
                    }
                }
                full
            });
            let mut expect = 0u64;
            loop {
                match rx.try_recv() {
                    Ok(v) => {
                        assert_eq!(v, expect, "{kind:?}");
                        expect += 1;
                    }
                    Err(TryRecvError::Empty) => std::hint::spin_loop(),
                    Err(TryRecvError::Disconnected) => break,
                }
            }
            producer.join().unwrap();
            assert_eq!(expect, n, "{kind:?}");
        }
    }

    #[test]
    fn capacity_zero_still_holds_one_value() {
        let (mut tx, mut rx) = bounded::<u8>(ChannelKind::Rtrb, 0);
        tx.try_send(1).unwrap();
        assert_eq!(rx.try_recv(), Ok(1));
    }

    #[test]
    fn config_names_parse() {
        #[derive(Deserialize)]
        struct C {
            channel: ChannelKind,
        }
        for kind in KINDS {
            let c: C = toml::from_str(&format!("channel = \"{}\"", kind.name())).unwrap();
            assert_eq!(c.channel, kind);
        }
    }
}
