//! Aeron as a benchmarked transport (`--features aeron`): one embedded media driver in
//! this process, a publisher thread and a subscriber thread as its clients, over
//! `aeron:ipc` (the driver's shared memory) or `aeron:udp` on the loopback (through the
//! driver's sender and receiver and the kernel's UDP stack). The rows measure what the
//! feed's network publication and the relay pay per tick: the 64-byte tick as one Aeron
//! message (`net::wire`), offered with retries while Aeron pushes back (nothing is lost),
//! polled one message at a time.
//!
//! Each thread makes its own client and its handles (Aeron's handles stay on the thread
//! that made them). The driver's threads use the back-off idle strategy, unpinned: on a
//! 2-core machine they share the two measured cores, as they would in the feed and the
//! relay, which is part of what the rows show.

use super::harness::{
    consume_flow, consume_latency, latency_row, produce, Latency, Pace, Setup, Throughput,
};
use anyhow::{anyhow, Context, Result};
use common::config::net::{DriverConfig, NetConfig, NetTransport};
use common::transport::Sink;
use net::aeron::{Client, Driver, NetSource, RetryingSink};
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Which Aeron channel a row uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// `aeron:ipc`.
    Ipc,
    /// `aeron:udp` to 127.0.0.1.
    Udp,
}

impl Channel {
    fn name(self) -> &'static str {
        match self {
            Channel::Ipc => "aeron ipc",
            Channel::Udp => "aeron udp",
        }
    }
}

/// The row's configuration: its channel, a driver folder of its own under the shm
/// folder, 16 MiB terms.
fn config(channel: Channel) -> Result<NetConfig> {
    let dir = super::harness::shm_dir().join(format!(
        "lab-bench-aeron-{}-{}",
        std::process::id(),
        common::clock::monotonic_ns()
    ));
    let endpoint = match channel {
        Channel::Ipc => None,
        Channel::Udp => {
            let port = std::net::UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .context("cannot find a free UDP port on the loopback")?
                .port();
            Some(format!("127.0.0.1:{port}"))
        }
    };
    Ok(NetConfig {
        transport: match channel {
            Channel::Ipc => NetTransport::Ipc,
            Channel::Udp => NetTransport::Udp,
        },
        endpoint,
        multicast: false,
        flow_control: Default::default(),
        receiver_timeout_ms: 500,
        interface: None,
        stream_id: 1001,
        mtu: 1408,
        term_length: 16 << 20,
        connect_timeout_ms: 5000,
        history: None,
        recovery_buffer: 65_536,
        driver: DriverConfig {
            dir,
            ..DriverConfig::default()
        },
    })
}

/// The publisher: its client and a retrying sink, connected to a subscriber.
fn publisher(dir: &Path, cfg: &NetConfig) -> Result<(Client, RetryingSink)> {
    let client = Client::connect(dir).map_err(|m| anyhow!(m))?;
    let sink = client.publish(cfg, 1).map_err(|m| anyhow!(m))?;
    let sink = RetryingSink(sink);
    let deadline = Instant::now() + Duration::from_millis(cfg.connect_timeout_ms);
    while !sink.connected() {
        if Instant::now() > deadline {
            return Err(anyhow!("no subscriber connected to {}", cfg.channel()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok((client, sink))
}

/// The subscriber: its client and subscription.
fn subscriber(dir: &Path, cfg: &NetConfig) -> Result<(Client, NetSource)> {
    let client = Client::connect(dir).map_err(|m| anyhow!(m))?;
    let src = client.subscribe(cfg).map_err(|m| anyhow!(m))?;
    Ok((client, src))
}

/// `aeron_ipc_threads`, `aeron_udp_threads`: one-way latency between two threads.
pub fn latency(s: &Setup, channel: Channel) -> Result<Latency> {
    let cfg = config(channel)?;
    let driver = Driver::start(&cfg).map_err(|m| anyhow!(m))?;
    let dir = driver.dir();
    let subscribed = Barrier::new(2);
    let total = s.total();
    let roles = (channel.name(), "receiver");
    let (hist, l) = std::thread::scope(|scope| {
        let sender = scope.spawn(|| -> Result<()> {
            s.pins.pin(&format!("{} publisher", roles.0), s.tx_core);
            subscribed.wait();
            let (_client, mut sink) = publisher(dir, &cfg)?;
            super::harness::produce_spaced(&mut sink, &s.clock, total, s.spacing_raw());
            sink.end();
            Ok(())
        });
        let got = scope
            .spawn(|| -> Result<_> {
                s.pins.pin(&format!("{} subscriber", roles.0), s.rx_core);
                let made = subscriber(dir, &cfg);
                subscribed.wait();
                let (_client, mut src) = made?;
                consume_latency(
                    &mut src,
                    &s.clock,
                    total,
                    s.warmup,
                    s.deadline(total, s.spacing_ns),
                )
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the {} subscriber thread panicked", roles.0)));
        let sent = sender
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the {} publisher thread panicked", roles.0)));
        sent.and(got)
    })?;
    drop(driver);
    Ok(latency_row(&hist, l, &s.clock))
}

/// `aeron_ipc_threads_1p1c`, `aeron_udp_threads_1p1c`: one publisher as fast as `pace`
/// says, retrying while Aeron pushes back, one subscriber.
pub fn throughput(s: &Setup, channel: Channel, pace: Pace) -> Result<Throughput> {
    let cfg = config(channel)?;
    let driver = Driver::start(&cfg).map_err(|m| anyhow!(m))?;
    let dir = driver.dir();
    let subscribed = Barrier::new(2);
    let count = s.messages;
    let flow = std::thread::scope(|scope| {
        let sender = scope.spawn(|| -> Result<()> {
            s.pins
                .pin(&format!("{} publisher", channel.name()), s.tx_core);
            subscribed.wait();
            let (_client, mut sink) = publisher(dir, &cfg)?;
            produce(&mut sink, &s.clock, count, pace, 0);
            sink.end();
            Ok(())
        });
        let got = scope
            .spawn(|| -> Result<_> {
                s.pins
                    .pin(&format!("{} subscriber", channel.name()), s.rx_core);
                let made = subscriber(dir, &cfg);
                subscribed.wait();
                let (_client, mut src) = made?;
                consume_flow(&mut src, &s.clock, count, s.deadline(count, 0))
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the subscriber thread panicked")));
        let sent = sender
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the publisher thread panicked")));
        sent.and(got)
    })?;
    drop(driver);
    Ok(Throughput::of(count, pace, vec![flow]))
}
