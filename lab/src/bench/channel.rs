//! crossbeam-channel as a benchmarked transport: `bounded(capacity)` between two
//! threads, the receiver spinning on `try_recv` (a blocking `recv` parks the thread and
//! pays a futex wake per message), the sender retrying `try_send` while the channel is
//! full (so that it never parks either, and never loses a message).

use super::harness::{
    consume_flow, latency_pair, produce, produce_spaced, Latency, Pace, Setup, Throughput,
};
use anyhow::Result;
use common::tick::Tick;
use common::transport::{Poll, Sink, Source};
use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use std::sync::Barrier;

struct ChannelSource(Receiver<Tick>);

impl Source for ChannelSource {
    #[inline]
    fn poll(&mut self) -> Poll {
        match self.0.try_recv() {
            Ok(t) => Poll::Tick(t),
            Err(TryRecvError::Empty) => Poll::Empty,
            Err(TryRecvError::Disconnected) => Poll::Ended,
        }
    }
}

struct ChannelSink(Sender<Tick>);

impl Sink for ChannelSink {
    #[inline]
    fn send(&mut self, tick: &Tick) -> Option<u64> {
        let mut t = *tick;
        loop {
            match self.0.try_send(t) {
                Ok(()) => return Some(tick.seq),
                Err(TrySendError::Full(back)) => {
                    t = back;
                    std::hint::spin_loop();
                }
                Err(TrySendError::Disconnected(_)) => return None,
            }
        }
    }
}

/// `crossbeam_threads`: one-way latency between two threads.
pub fn latency(s: &Setup) -> Result<Latency> {
    let (tx, rx) = crossbeam_channel::bounded(s.capacity as usize);
    let mut sink = ChannelSink(tx);
    let total = s.total();
    let produce = move || {
        // The sink (the channel's only sender) is dropped at the end: the receiver
        // sees the channel disconnect.
        produce_spaced(&mut sink, &s.clock, total, s.spacing_raw());
    };
    latency_pair(
        s,
        ("crossbeam sender", "crossbeam receiver"),
        produce,
        &mut ChannelSource(rx),
    )
}

/// `crossbeam_threads_1p1c`: one sender flat out, one receiver. (A second receiver of
/// an MPMC channel would share the messages, not see all of them: no 1p2c row.)
pub fn throughput(s: &Setup, pace: Pace) -> Result<Throughput> {
    let (tx, rx) = crossbeam_channel::bounded(s.capacity as usize);
    let mut sink = Some(ChannelSink(tx));
    let mut src = ChannelSource(rx);
    let both_ready = Barrier::new(2);
    let count = s.messages;
    let flow = std::thread::scope(|scope| {
        scope.spawn(|| {
            s.pins.pin("crossbeam sender", s.tx_core);
            both_ready.wait();
            if let Some(mut sink) = sink.take() {
                produce(&mut sink, &s.clock, count, pace, 0);
            }
        });
        scope
            .spawn(|| {
                s.pins.pin("crossbeam receiver", s.rx_core);
                both_ready.wait();
                consume_flow(&mut src, &s.clock, count, s.deadline(count, 0))
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the crossbeam receiver thread panicked")))
    })?;
    Ok(Throughput::of(count, pace, vec![flow]))
}
