//! `lab bench transport`: one-way latency and throughput of every transport we might put
//! between the feed and the engine, next to the physical floor (a cache-line hand-off
//! between the same two cores), in one run, so that the results are ratios that survive
//! a noisy, shared machine. `lab bench jitter` measures the machine's own noise floor.
//!
//! # Latency rows
//!
//! All on the same pair of cores (`--tx-core` sends, `--rx-core` receives; by default the
//! config's `cores.feed_md` and `cores.engine_hot`):
//!
//! | row | what | method |
//! |---|---|---|
//! | `cacheline` | two threads bounce a counter through two `CachePadded<AtomicU64>` | RTT/2 of the ping-pong, timed by the initiator |
//! | `ring_threads` | our ring on a [`common::ring::HeapRegion`] between two threads | one-way TSC: `received_raw - published_raw` |
//! | `ring_processes` | our ring in `/dev/shm` between this process and a `bench-producer` child | one-way TSC |
//! | `crossbeam_threads` | `crossbeam_channel::bounded` between two threads, receiver spinning on `try_recv` | one-way TSC |
//! | `iceoryx2_processes` | iceoryx2 publish–subscribe between a `bench-producer` child and this process (feature `peers`) | one-way TSC |
//!
//! Ticks are published at least `--spacing-ns` apart (a busy-wait), so that every hop is
//! measured on an idle transport. Each row takes `--samples` measurements after a
//! discarded warm-up of 10% more. Values are recorded in raw clock units into
//! fixed-bound histograms (recording never allocates) and converted to nanoseconds
//! afterwards. One-way figures rely on the TSC being synchronised across cores (the
//! clock source printed says `tsc` only where it is invariant).
//!
//! # Throughput rows
//!
//! The producer publishes `--messages` 64-byte ticks flat out (no clock read, no
//! spacing); each consumer counts what it receives and what it lost (sequence numbers
//! that never arrived, and for our lossy ring the gaps when it was lapped) and times its
//! first to its last message. `msgs_per_s` is the slowest consumer's received messages
//! per second. crossbeam and iceoryx2 apply back-pressure (a full channel makes the
//! sender retry), our ring in its default lossy mode never waits: a consumer that falls
//! a whole ring behind is lapped, and the loss is reported, never hidden.
//!
//! A benchmark reports; it checks nothing. Producer processes are supervised: they are
//! terminated and reaped on every path, and their shared-memory files removed.
//!
//! # Layout
//!
//! [`harness`] holds what every row shares (the settings, pacing, producers, consumers
//! and their sequence tally), [`rows`] the rows themselves and the order they are
//! measured in, [`output`] the table and the `--json` report. The transports are
//! [`ring`], [`channel`], `iceoryx` (feature `peers`) and, for the `*_processes` rows,
//! the producer child of [`process`]; this file picks the transport of a producer child.

#[cfg(feature = "aeron")]
mod aeron;
mod channel;
pub mod harness;
#[cfg(feature = "peers")]
mod iceoryx;
pub mod jitter;
mod output;
mod process;
mod ring;
mod rows;

pub use jitter::jitter;

use crate::cli::{ProducerArgs, ProducerTransport, TransportArgs};
use anyhow::anyhow;
use anyhow::Result;
use common::clock::Clock;
use common::config::{Config, MAX_RING_CAPACITY, MIN_RING_CAPACITY};
use common::failure::Failure;
use harness::{PinReport, Setup};
use output::{format_table, JsonReport};
use rows::{measure, Outcome};
use std::io::Write as _;

/// Runs `lab bench transport`.
pub fn transport(args: &TransportArgs) -> Result<()> {
    // Read before anything is pinned: a pinned thread's children inherit its mask.
    let allowed = common::cores::allowed_cores();
    if let Some(path) = &args.json {
        // Refuse someone else's file before the benchmark, not after it.
        common::files::examine(path, common::files::Kind::Json)?;
    }
    let config = Config::load(&args.config, &allowed).map_err(Failure::bad_input)?;
    let tx_core = args.tx_core.unwrap_or(config.cores.feed_md);
    let rx_core = args.rx_core.unwrap_or(config.cores.engine_hot);
    if tx_core == rx_core || !allowed.contains(&tx_core) || !allowed.contains(&rx_core) {
        return Err(Failure::bad_input(anyhow!(
            "bench transport needs two distinct allowed cores, got sending core {tx_core} \
             (--tx-core or cores.feed_md) and receiving core {rx_core} (--rx-core or \
             cores.engine_hot); allowed: {allowed:?}"
        ))
        .into());
    }
    let rx2_core = match args.rx2_core {
        Some(c) if !allowed.contains(&c) => {
            return Err(Failure::bad_input(anyhow!(
                "--rx2-core {c} is not an allowed core (allowed: {allowed:?})"
            ))
            .into())
        }
        Some(c) => Some(c),
        None => allowed
            .iter()
            .copied()
            .find(|&c| c != tx_core && c != rx_core),
    };
    let capacity = args.capacity.unwrap_or(config.ring.capacity);
    if !capacity.is_power_of_two() || !(MIN_RING_CAPACITY..=MAX_RING_CAPACITY).contains(&capacity) {
        return Err(Failure::bad_input(anyhow!(
            "--capacity must be a power of two from {MIN_RING_CAPACITY} to {MAX_RING_CAPACITY}, \
             got {capacity}"
        ))
        .into());
    }
    let clock = Clock::new();
    let setup = Setup {
        clock,
        tx_core,
        rx_core,
        rx2_core,
        samples: args.samples,
        warmup: args.samples / 10,
        spacing_ns: args.spacing_ns,
        messages: args.messages,
        capacity,
        pins: PinReport::default(),
    };
    eprintln!(
        "lab bench transport: {} latency samples per row after {} warm-up, spacing {} ns; \
         {} messages per throughput row; cores {tx_core} -> {rx_core}{}; capacity {capacity}",
        setup.samples,
        setup.warmup,
        setup.spacing_ns,
        setup.messages,
        rx2_core.map_or(String::new(), |c| format!(" (second consumer {c})")),
    );

    let report = measure(&setup);
    print!("{}", format_table(&report));
    let _ = std::io::stdout().flush();
    if let Some(path) = &args.json {
        common::files::write_json(path, &JsonReport::of(&report))?;
        eprintln!("lab bench transport: wrote {}", path.display());
    }
    let failed: Vec<&str> = report
        .latency
        .iter()
        .map(|(n, o)| (*n, matches!(o, Outcome::Failed(_))))
        .chain(
            report
                .throughput
                .iter()
                .map(|(n, o)| (*n, matches!(o, Outcome::Failed(_)))),
        )
        .filter_map(|(n, f)| f.then_some(n))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{} row(s) failed: {}", failed.len(), failed.join(", "))
    }
}

/// Runs the hidden `lab bench-producer`: pins itself to the sending core and sends on
/// the transport the consumer asked for (see [`process`]).
pub fn producer(args: &ProducerArgs) -> Result<()> {
    if !common::cores::pin_current(args.core) {
        eprintln!(
            "warning: cannot pin the producer process to core {}; it runs unpinned",
            args.core
        );
    }
    let clock = Clock::new();
    match args.transport {
        ProducerTransport::Ring => ring::producer_process(args, &clock),
        ProducerTransport::Iceoryx2 => iceoryx2_producer(args, &clock),
    }
}

#[cfg(feature = "peers")]
fn iceoryx2_producer(args: &ProducerArgs, clock: &Clock) -> Result<()> {
    iceoryx::producer_process(args, clock)
}

#[cfg(not(feature = "peers"))]
fn iceoryx2_producer(_: &ProducerArgs, _: &Clock) -> Result<()> {
    anyhow::bail!("this lab was built without iceoryx2 (enable --features peers)")
}

#[cfg(test)]
mod fixtures {
    //! Measurements the tests of [`super::rows`], [`super::harness`] and
    //! [`super::output`] share.

    use super::harness::{Flow, Latency, Throughput};
    use super::rows::{Cores, Machine, Outcome, Report, ThroughputRow, NOT_BUILT, PEERS_BUILT};
    use crate::host::Host;
    use common::latency::Percentiles;

    pub fn latency(base: u64) -> Latency {
        Latency {
            ns: Percentiles {
                count: 1000,
                min: base / 2,
                p50: base,
                p90: base * 2,
                p99: base * 3,
                p99_9: base * 4,
                p99_99: base * 5,
                max: base * 10,
            },
            msgs_per_s: Some(1e6),
            ..Latency::default()
        }
    }

    pub fn flow(received: u64, lost: u64, seconds: f64) -> Flow {
        Flow {
            received,
            lost,
            gaps: u64::from(lost > 0),
            seconds,
        }
    }

    pub fn run(offered: Option<f64>, consumers: Vec<Flow>) -> Throughput {
        Throughput {
            published: 1001,
            undelivered: 0,
            offered_per_s: offered,
            consumers,
        }
    }

    pub fn report() -> Report {
        let mut queued = latency(60);
        queued.queued = 5;
        queued.lost = 2;
        queued.gaps = 1;
        Report {
            machine: Machine {
                host: Host {
                    cpu_model: "Test CPU".into(),
                    kernel: "6.1".into(),
                    clock_source: "tsc".into(),
                    git_rev: "abc1234".into(),
                },
                ns_per_raw: 0.5,
                cores: Cores {
                    send: 0,
                    receive: 1,
                    second_receive: None,
                },
                pinned: true,
                samples: 1000,
                warmup: 100,
                spacing_ns: 2000,
                messages: 1001,
                capacity: 4096,
                peers_built: PEERS_BUILT,
                aeron_built: false,
            },
            latency: vec![
                ("cacheline", Outcome::Done(latency(40))),
                ("ring_threads", Outcome::Done(queued)),
                ("ring_processes", Outcome::Failed("it broke".into())),
                ("crossbeam_threads", Outcome::Done(latency(0))),
                ("iceoryx2_processes", Outcome::Skipped(NOT_BUILT.into())),
            ],
            throughput: vec![
                (
                    "ring_threads_1p1c",
                    Outcome::Done(ThroughputRow {
                        flat: run(None, vec![flow(601, 400, 1e-5)]),
                        paced: vec![
                            run(Some(5e7), vec![flow(901, 100, 2e-5)]),
                            run(Some(4e7), vec![flow(1001, 0, 2.5e-5)]),
                        ],
                    }),
                ),
                (
                    "ring_threads_1p2c",
                    Outcome::Skipped("needs a third core".into()),
                ),
            ],
        }
    }
}
