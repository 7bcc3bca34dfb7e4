//! Our ring ([`common::ring`]) as a benchmarked transport: between two threads on a
//! [`HeapRegion`], and between this process and a `bench-producer` child through a
//! ring file under `/dev/shm` (the name holds our pid; the producer removes it with
//! `end_and_unlink`, and we remove it again in case the producer died).

use super::harness::{
    consume_flow, consume_latency, latency_pair, latency_row, produce, produce_spaced, shm_dir,
    Flow, Latency, Pace, Setup, Throughput,
};
use super::process::{self, ProducerProcess};
use crate::cli::ProducerArgs;
use anyhow::{bail, Context, Result};
use common::clock::Clock;
use common::ring::shm::{self, OpenError, ProducerId};
use common::ring::{HeapRegion, Publisher, StartAt, Subscriber};
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::Instant;

/// `ring_threads`: one-way latency between two threads.
pub fn latency_threads(s: &Setup) -> Result<Latency> {
    let region = Arc::new(HeapRegion::new(s.capacity));
    let mut sink = Publisher::new(region.clone());
    let total = s.total();
    let produce = move || {
        produce_spaced(&mut sink, &s.clock, total, s.spacing_raw());
        sink.end();
    };
    latency_pair(
        s,
        ("ring producer", "ring consumer"),
        produce,
        &mut Subscriber::new(region, StartAt::Oldest),
    )
}

/// `ring_threads_1p1c` / `_1p2c` (and `ring_threads_lossless_*`): one producer thread,
/// one consumer on the receiving core and, with `rx2`, a second one there. `lossless`
/// uses the ring's lossless mode: the consumers register and the producer waits for the
/// slowest instead of lapping it.
pub fn throughput_threads(
    s: &Setup,
    rx2: Option<usize>,
    pace: Pace,
    lossless: bool,
) -> Result<Throughput> {
    let region = Arc::new(if lossless {
        HeapRegion::lossless(s.capacity)
    } else {
        HeapRegion::new(s.capacity)
    });
    let mut sink = Publisher::new(region.clone());
    let cores: Vec<usize> = std::iter::once(s.rx_core).chain(rx2).collect();
    let mut sources: Vec<_> = cores
        .iter()
        .map(|_| Subscriber::new(region.clone(), StartAt::Oldest))
        .collect();
    if lossless {
        // No liveness timeout: the producer waits for these consumers however long.
        for src in &mut sources {
            src.register(std::process::id(), |_| false)
                .context("cannot register with the lossless ring")?;
        }
    }
    let ready = Barrier::new(cores.len() + 1);
    let count = s.messages;
    let consumers = std::thread::scope(|scope| {
        let handles: Vec<_> = sources
            .iter_mut()
            .zip(&cores)
            .map(|(src, &core)| {
                let ready = &ready;
                scope.spawn(move || {
                    s.pins.pin("ring consumer", core);
                    ready.wait();
                    consume_flow(src, &s.clock, count, s.deadline(count, 0))
                })
            })
            .collect();
        scope.spawn(|| {
            s.pins.pin("ring producer", s.tx_core);
            ready.wait();
            produce(&mut sink, &s.clock, count, pace, 0);
            sink.end();
        });
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a ring consumer thread panicked")))
            })
            .collect::<Result<Vec<Flow>>>()
    });
    Ok(Throughput::of(count, pace, consumers?))
}

/// `ring_processes`: one-way latency between a `bench-producer` child and this process.
pub fn latency_processes(s: &Setup) -> Result<Latency> {
    let total = s.total();
    let (hist, l) = with_producer(s, total, Pace::Spaced, |src| {
        let deadline = s.deadline(total, s.spacing_ns);
        consume_latency(src, &s.clock, total, s.warmup, deadline)
    })?;
    Ok(latency_row(&hist, l, &s.clock))
}

/// `ring_processes_1p1c`: a `bench-producer` child flat out, one consumer here.
pub fn throughput_processes(s: &Setup, pace: Pace) -> Result<Throughput> {
    let count = s.messages;
    let flow = with_producer(s, count, pace, |src| {
        consume_flow(src, &s.clock, count, s.deadline(count, 0))
    })?;
    Ok(Throughput::of(count, pace, vec![flow]))
}

/// Starts a ring producer process sending `count` ticks and runs `consume` on its ring
/// in a thread pinned to the receiving core.
fn with_producer<T: Send>(
    s: &Setup,
    count: u64,
    pace: Pace,
    consume: impl FnOnce(&mut Subscriber<shm::MappedRegion>) -> Result<T> + Send,
) -> Result<T> {
    let path = shm_dir().join(format!("lab-bench-transport-{}.ring", std::process::id()));
    shm::remove_stale(&path)?;
    let mut producer = ProducerProcess::spawn("ring", &path.display().to_string(), s, count, pace)?;
    let producer_ref = &mut producer;
    let consumed = std::thread::scope(|scope| {
        scope
            .spawn(|| -> Result<T> {
                s.pins.pin("ring consumer", s.rx_core);
                let by = Instant::now() + process::OPEN_TIMEOUT;
                let (mut sub, info) = loop {
                    match shm::open(&path, StartAt::Oldest) {
                        Ok(v) => break v,
                        Err(OpenError::Missing(_))
                            if Instant::now() < by && producer_ref.is_running() =>
                        {
                            std::thread::sleep(std::time::Duration::from_millis(1));
                        }
                        Err(e) => return Err(e).context("cannot open the producer's ring"),
                    }
                };
                if info.clock_source != s.clock.source() as u32 {
                    bail!(
                        "the producer process uses another clock source; its stamps cannot be \
                         compared"
                    );
                }
                producer_ref.start()?;
                consume(&mut sub)
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the ring consumer thread panicked")))
    });
    let finished = producer.finish(consumed);
    // The producer ends and removes its ring; one that died leaves it.
    let _ = shm::remove_stale(&path);
    finished.map(|(v, _)| v)
}

/// The producer process's side: creates the ring, waits for the start line, sends,
/// ends and unlinks the ring.
pub fn producer_process(args: &ProducerArgs, clock: &Clock) -> Result<()> {
    let id = ProducerId::now(clock.source(), false);
    let path = PathBuf::from(&args.name);
    let mut sink = shm::create(&path, args.capacity, id).context("cannot create the ring")?;
    if let Err(e) = process::wait_for_start() {
        sink.end_and_unlink();
        return Err(e);
    }
    let undelivered = process::send_all(&mut sink, args, clock);
    sink.end_and_unlink();
    process::report_and_wait(args.count, undelivered)
}
