//! iceoryx2 publish–subscribe as a benchmarked transport (feature `peers`): a
//! `bench-producer` child publishes, subscribers in this process receive, polling
//! `receive()` without blocking.
//!
//! iceoryx2's defaults drop samples silently (a subscriber buffer of 2 with *safe
//! overflow*: the oldest sample is replaced when the buffer is full). Here the service
//! has safe overflow **off**, a subscriber buffer of `--capacity` samples and no
//! history, and the publisher's back-pressure strategy is `RetryUntilDelivered`: a full
//! subscriber makes the publisher retry, never lose. Loss is still counted: every
//! payload carries its sequence number, and `send` reports to how many subscribers it
//! delivered (0 counts as undelivered).
//!
//! The payload is the tick's eight words (`[u64; 8]`, 64 bytes), sent with
//! `send_copy`. Every run uses its own file prefix (`iox2_lab<pid><row>_`) and root
//! folder (`/tmp/iceoryx2_lab<pid><row>/`), so that what iceoryx2 leaves behind can
//! be removed exactly, and a config is built in code, so no config file is looked up.
//! iceoryx2 logs at `error` level unless `IOX2_LOG_LEVEL` says otherwise.

use super::harness::{
    consume_flow, consume_latency, latency_row, Latency, Pace, Setup, Throughput,
};
use super::process::{self, ProducerProcess};
use crate::cli::ProducerArgs;
use anyhow::{anyhow, Context, Result};
use common::clock::Clock;
use common::tick::{Tick, TICK_WORDS};
use common::transport::{Poll, Sink, Source};
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::{
    ipc, set_log_level_from_env_or, BackpressureStrategy, Config, FileName, LogLevel, Node,
    NodeBuilder, PortFactory as _, SemanticString, ServiceName, SignalHandlingMode,
};
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

/// What travels: the tick's words.
type Payload = [u64; TICK_WORDS];
type Service = PortFactory<ipc::Service, Payload, ()>;

/// Consecutive empty receives between two looks at the producer's done flag.
const DONE_CHECK_EVERY: u32 = 1024;

/// The file prefix and root folder of one run, removed when dropped.
struct RunFiles {
    token: String,
}

impl RunFiles {
    fn prefix(token: &str) -> String {
        format!("iox2_{token}_")
    }

    fn root(token: &str) -> String {
        format!("/tmp/iceoryx2_{token}/")
    }
}

impl Drop for RunFiles {
    fn drop(&mut self) {
        let prefix = RunFiles::prefix(&self.token);
        for dir in [std::path::Path::new("/dev/shm"), &std::env::temp_dir()] {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let _ = std::fs::remove_dir_all(RunFiles::root(&self.token));
    }
}

/// A node with this run's prefix and root folder, no signal handlers, quiet logging.
fn new_node(token: &str) -> Result<Node<ipc::Service>> {
    set_log_level_from_env_or(LogLevel::Error);
    let mut config = Config::default();
    config.global.prefix = FileName::new(RunFiles::prefix(token).as_bytes())
        .map_err(|e| anyhow!("bad iceoryx2 prefix: {e:?}"))?;
    let root = iceoryx2::prelude::Path::new(RunFiles::root(token).as_bytes())
        .map_err(|e| anyhow!("bad iceoryx2 root path: {e:?}"))?;
    config.global.set_root_path(&root);
    NodeBuilder::new()
        .config(&config)
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .map_err(|e| anyhow!("cannot create an iceoryx2 node: {e:?}"))
}

/// The run's service, created (`create`) or opened, with the lossless settings.
fn new_service(
    node: &Node<ipc::Service>,
    token: &str,
    buffer: usize,
    create: bool,
) -> Result<Service> {
    let name: ServiceName = format!("lab/bench/{token}")
        .as_str()
        .try_into()
        .map_err(|e| anyhow!("bad iceoryx2 service name: {e:?}"))?;
    let builder = node
        .service_builder(&name)
        .publish_subscribe::<Payload>()
        .enable_safe_overflow(false)
        .subscriber_max_buffer_size(buffer)
        .history_size(0)
        .max_publishers(1)
        .max_subscribers(2);
    if create {
        builder
            .create()
            .map_err(|e| anyhow!("cannot create the iceoryx2 service: {e:?}"))
    } else {
        builder
            .open()
            .map_err(|e| anyhow!("cannot open the iceoryx2 service: {e:?}"))
    }
}

/// A subscriber as a [`Source`]; it ends once the producer said it sent everything and
/// a receive after that finds nothing.
struct IoxSource {
    sub: Subscriber<ipc::Service, Payload, ()>,
    done: Arc<AtomicBool>,
    done_seen: bool,
    idle: u32,
}

impl Source for IoxSource {
    #[inline]
    fn poll(&mut self) -> Poll {
        match self.sub.receive() {
            Ok(Some(sample)) => {
                let words = *sample.payload();
                drop(sample);
                self.idle = 0;
                match Tick::from_words(words) {
                    Some(t) => Poll::Tick(t),
                    None => Poll::Corrupt { seq: words[0] },
                }
            }
            Ok(None) => {
                if self.done_seen {
                    return Poll::Ended;
                }
                self.idle += 1;
                if self.idle >= DONE_CHECK_EVERY {
                    self.idle = 0;
                    // SYNC POINT: pairs with the release store of the producer's reader
                    // thread; every send returned before the producer reported.
                    self.done_seen = self.done.load(Ordering::Acquire);
                }
                Poll::Empty
            }
            Err(_) => Poll::Failed("iceoryx2 receive failed"),
        }
    }
}

/// A publisher as a [`Sink`].
struct IoxSink(Publisher<ipc::Service, Payload, ()>);

impl Sink for IoxSink {
    #[inline]
    fn send(&mut self, tick: &Tick) -> Option<u64> {
        matches!(self.0.send_copy(tick.to_words()), Ok(n) if n > 0).then_some(tick.seq)
    }
}

/// `iceoryx2_processes`: one-way latency from a producer process to this one.
pub fn latency(s: &Setup) -> Result<Latency> {
    let total = s.total();
    let (mut results, _) = with_producer(s, "l", total, Pace::Spaced, &[s.rx_core], |src| {
        let deadline = s.deadline(total, s.spacing_ns);
        consume_latency(src, &s.clock, total, s.warmup, deadline)
    })?;
    let (hist, l) = results.pop().context("no consumer result")?;
    Ok(latency_row(&hist, l, &s.clock))
}

/// `iceoryx2_processes_1p1c` / `_1p2c`: a producer process flat out, one or two
/// subscribers here.
pub fn throughput(s: &Setup, rx2: Option<usize>, pace: Pace) -> Result<Throughput> {
    let count = s.messages;
    let cores: Vec<usize> = std::iter::once(s.rx_core).chain(rx2).collect();
    let row = if rx2.is_some() { "t2" } else { "t1" };
    let (consumers, undelivered) = with_producer(s, row, count, pace, &cores, |src| {
        consume_flow(src, &s.clock, count, s.deadline(count, 0))
    })?;
    Ok(Throughput {
        undelivered,
        ..Throughput::of(count, pace, consumers)
    })
}

/// Creates the service, starts a producer process sending `count` ticks, and runs
/// `consume` in one thread per core of `cores`, each with its own subscriber. Returns
/// the consumers' results and the producer's undelivered count.
fn with_producer<T: Send>(
    s: &Setup,
    row: &str,
    count: u64,
    pace: Pace,
    cores: &[usize],
    consume: impl Fn(&mut IoxSource) -> Result<T> + Sync,
) -> Result<(Vec<T>, u64)> {
    let token = format!("lab{}{row}", std::process::id());
    let _files = RunFiles {
        token: token.clone(),
    };
    let buffer = s.capacity as usize;
    let node = new_node(&token)?;
    let service = new_service(&node, &token, buffer, true)?;
    let mut producer = ProducerProcess::spawn("iceoryx2", &token, s, count, pace)?;
    let done = producer.done_flag();
    let ready = Barrier::new(cores.len() + 1);
    let consumed = std::thread::scope(|scope| {
        let handles: Vec<_> = cores
            .iter()
            .map(|&core| {
                let (ready, consume, done, token) = (&ready, &consume, done.clone(), &token);
                scope.spawn(move || -> Result<T> {
                    s.pins.pin("iceoryx2 subscriber", core);
                    let setup = (|| {
                        let node = new_node(token)?;
                        let service = new_service(&node, token, buffer, false)?;
                        let sub = service
                            .subscriber_builder()
                            .buffer_size(buffer)
                            .create()
                            .map_err(|e| anyhow!("cannot create an iceoryx2 subscriber: {e:?}"))?;
                        Ok::<_, anyhow::Error>((node, service, sub))
                    })();
                    ready.wait();
                    let (_node, _service, sub) = setup?;
                    let mut src = IoxSource {
                        sub,
                        done,
                        done_seen: false,
                        idle: 0,
                    };
                    consume(&mut src)
                })
            })
            .collect();
        ready.wait();
        let started = (|| {
            let want = cores.len();
            producer.wait_until("a subscriber-ready iceoryx2 publisher", || {
                let d = service.dynamic_config();
                d.number_of_subscribers() >= want && d.number_of_publishers() >= 1
            })?;
            producer.start()
        })();
        if started.is_err() {
            // Nothing will come: let the subscribers end instead of waiting for a deadline.
            done.store(true, Ordering::Release);
        }
        let results: Vec<Result<T>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("an iceoryx2 subscriber thread panicked")))
            })
            .collect();
        started.and_then(|()| results.into_iter().collect::<Result<Vec<T>>>())
    });
    let finished = producer.finish(consumed);
    drop(service);
    drop(node);
    finished
}

/// The producer process's side: opens the service, creates the publisher, waits for
/// the start line, sends, reports, and waits for the consumer to close stdin.
pub fn producer_process(args: &ProducerArgs, clock: &Clock) -> Result<()> {
    let token = &args.name;
    let node = new_node(token)?;
    let service = new_service(&node, token, args.capacity as usize, false)?;
    let publisher = service
        .publisher_builder()
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .max_loaned_samples(1)
        .create()
        .map_err(|e| anyhow!("cannot create an iceoryx2 publisher: {e:?}"))?;
    process::wait_for_start()?;
    let mut sink = IoxSink(publisher);
    let undelivered = process::send_all(&mut sink, args, clock);
    process::report_and_wait(args.count, undelivered)?;
    drop(sink);
    drop(service);
    drop(node);
    Ok(())
}
