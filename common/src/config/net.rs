//! `[net]`: market data beyond one host, over Aeron (the `aeron` feature of the feed
//! and of the relay; see the `net` crate).
//!
//! The section says where the feed's stream goes (UDP multicast or unicast to an
//! endpoint, or `aeron:ipc` on one host), with which Aeron stream id, MTU and term
//! length, and how the media driver of each process runs (its directory, threading
//! mode, idle strategy and cores). A configuration without `[net]` runs the ring only.
//!
//! Validation is pure (no Aeron code): every value Aeron would refuse, and every
//! combination that cannot work (a multicast channel to a unicast address, an
//! interface on `ipc`, a driver directory in a folder that does not exist, an
//! external driver's directory that does not exist), is a located error at its key,
//! like every other key of the run configuration. [`NetConfig::channel`] builds the
//! channel URI from the validated values.
//!
//! Start-up work only: nothing here runs per tick.

use super::KeyPath;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Smallest MTU Aeron takes: its data frame header (32 bytes) plus one tick.
pub const MIN_MTU: u32 = 32 + 64;
/// Largest MTU Aeron takes: the largest UDP payload, rounded down to its 32-byte
/// frame alignment.
pub const MAX_MTU: u32 = 65_504;
/// Aeron's frame alignment: the MTU is a multiple of it.
pub const FRAME_ALIGNMENT: u32 = 32;
/// Smallest term buffer Aeron takes, bytes.
pub const MIN_TERM_LENGTH: u64 = 64 * 1024;
/// Largest term buffer Aeron takes, bytes.
pub const MAX_TERM_LENGTH: u64 = 1 << 30;

/// How ticks travel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetTransport {
    /// UDP to `endpoint`, multicast or unicast (`aeron:udp`).
    #[default]
    Udp,
    /// Aeron's shared-memory transport on one host (`aeron:ipc`).
    Ipc,
}

/// The media driver's threading mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverThreading {
    /// One thread for the conductor, the sender and the receiver (the fewest cores).
    #[default]
    Shared,
    /// The conductor on one thread, the sender and the receiver on another.
    SharedNetwork,
    /// A thread each.
    Dedicated,
}

/// What the media driver's threads do when they have no work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverIdle {
    /// Spin, then yield, then park with exponential back-off (Aeron's default).
    #[default]
    Backoff,
    /// Busy-spin: the lowest latency, a whole core per driver thread.
    Spin,
    /// Yield the core to the scheduler.
    Yield,
    /// Sleep (Aeron's sleeping strategy): the least CPU, the most latency.
    Sleep,
}

/// `net.flow_control`: what paces a multicast publication.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowControl {
    /// Aeron's default: the fastest receiver; a receiver that falls a window behind
    /// loses what it cannot catch up (the relay counts it).
    #[default]
    Max,
    /// The slowest receiver: the feed's offers are refused (counted as back-pressure)
    /// while any receiver lags a whole window, and its end lingers for every receiver.
    /// A receiver silent for `net.receiver_timeout_ms` (a dead host) stops counting, so
    /// it stalls the stream no longer than that.
    Min,
}

/// `[net.driver]`: the process's Aeron media driver.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriverConfig {
    /// The driver's directory (its `cnc.dat` and log buffers). An embedded driver creates
    /// it (owner-only) in an existing folder and removes it at the end; a process that
    /// uses another's driver needs it to exist.
    pub dir: PathBuf,
    /// Launch the driver inside this process (true) or use the one running in `dir`.
    pub embedded: bool,
    /// Its threading mode.
    pub threading: DriverThreading,
    /// Its threads' idle strategy.
    pub idle: DriverIdle,
    /// Cores its threads are pinned to (conductor, sender, receiver in that order, the
    /// last one repeated); empty: not pinned.
    pub cores: Vec<usize>,
    /// Fault injection: the fraction of incoming data frames the driver drops (Aeron's
    /// `loss` UDP-channel interceptor), 0 (none) to below 1. UDP only; Aeron's
    /// retransmission recovers what it can, the relay counts the rest.
    pub loss_rate: f64,
    /// The loss generator's seed (the same seed drops the same frames of the same
    /// stream).
    pub loss_seed: u64,
    /// Multicast receivers: the longest random wait before asking for a lost frame
    /// again (a NAK), microseconds, 1 to 1,000,000. Aeron's default, 10,000 µs, keeps
    /// many receivers from asking at once; a receiver fills one gap at a time, so under
    /// heavy loss a shorter wait keeps it from falling behind the stream.
    pub nak_backoff_us: u64,
}

impl Default for DriverConfig {
    fn default() -> DriverConfig {
        DriverConfig {
            dir: PathBuf::from("/dev/shm/hft-aeron"),
            embedded: true,
            threading: DriverThreading::default(),
            idle: DriverIdle::default(),
            cores: Vec::new(),
            loss_rate: 0.0,
            loss_seed: 42,
            nak_backoff_us: 10_000,
        }
    }
}

/// `[net]`: the feed's stream over Aeron.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// UDP or IPC.
    #[serde(default)]
    pub transport: NetTransport,
    /// UDP only: `ADDRESS:PORT`, an IPv4 address (multicast or unicast, as `multicast`
    /// says) and a port.
    pub endpoint: Option<String>,
    /// UDP only: whether `endpoint` is a multicast group (224.0.0.0/4).
    #[serde(default)]
    pub multicast: bool,
    /// Multicast only: what paces the feed's publication ([`FlowControl`]).
    #[serde(default)]
    pub flow_control: FlowControl,
    /// With `flow_control = "min"`: how long a receiver may be silent before it no
    /// longer paces the stream, ms (10 to 60000). Below the engines' and relays'
    /// `engine.producer_timeout_ms`, so that a dead receiver does not make the others
    /// think the feed is gone.
    #[serde(default = "default_receiver_timeout_ms")]
    pub receiver_timeout_ms: u64,
    /// UDP only: the local interface address (`ADDRESS` or `ADDRESS/PREFIX`) to send and
    /// receive on; absent: Aeron's default.
    pub interface: Option<String>,
    /// The Aeron stream id of the ticks.
    #[serde(default = "default_stream_id")]
    pub stream_id: i32,
    /// Largest datagram, bytes: a multiple of 32 between [`MIN_MTU`] and [`MAX_MTU`].
    #[serde(default = "default_mtu")]
    pub mtu: u32,
    /// Length of each of the publication's three term buffers, bytes: a power of two
    /// between 64 KiB and 1 GiB. The publisher can run this far ahead of the slowest
    /// receiver before `offer` refuses (back-pressure).
    #[serde(default = "default_term_length")]
    pub term_length: u64,
    /// How long the feed waits for a subscriber before its first tick, ms (0: it
    /// starts at once, and the ticks it sends before one connects are counted as
    /// refused, `not_connected`). At most 60000.
    #[serde(default)]
    pub connect_timeout_ms: u64,
    /// The relay only: the feed's history service over TCP (`ADDRESS:PORT`, the feed's
    /// `feed.service.listen`), from which the gaps in the stream (what Aeron could not
    /// recover, what the feed could not offer, what a restarted relay missed) are filled;
    /// absent: gaps stay unrecovered.
    pub history: Option<std::net::SocketAddr>,
    /// The relay only: live ticks held, in order, while a gap is filled (allocated at
    /// start); ticks past it join the next range to fill. Between 16 and 2²⁴.
    #[serde(default = "default_recovery_buffer")]
    pub recovery_buffer: usize,
    /// The media driver.
    #[serde(default)]
    pub driver: DriverConfig,
}

fn default_receiver_timeout_ms() -> u64 {
    500
}

fn default_recovery_buffer() -> usize {
    65_536
}

fn default_stream_id() -> i32 {
    1001
}
fn default_mtu() -> u32 {
    1408
}
fn default_term_length() -> u64 {
    16 << 20
}

impl NetConfig {
    /// The endpoint as address and port (after [`NetConfig::validate`]: UDP only).
    pub fn endpoint_addr(&self) -> Option<(Ipv4Addr, u16)> {
        parse_endpoint(self.endpoint.as_deref()?).ok()
    }

    /// The channel URI: `aeron:udp?endpoint=239.1.1.1:40456|interface=10.0.0.1|mtu=1408|term-length=16777216`
    /// or `aeron:ipc?term-length=…` (for a configuration [`NetConfig::validate`] accepted).
    pub fn channel(&self) -> String {
        match self.transport {
            NetTransport::Ipc => format!("aeron:ipc?term-length={}", self.term_length),
            NetTransport::Udp => {
                let mut s = format!(
                    "aeron:udp?endpoint={}",
                    self.endpoint.as_deref().unwrap_or_default()
                );
                if let Some(i) = &self.interface {
                    s.push_str(&format!("|interface={i}"));
                }
                s.push_str(&format!(
                    "|mtu={}|term-length={}",
                    self.mtu, self.term_length
                ));
                s
            }
        }
    }

    /// The channel of the feed's publication: [`NetConfig::channel`] with its flow
    /// control (`fc=min,t:…ms` where `flow_control = "min"`).
    pub fn publication_channel(&self) -> String {
        match self.flow_control {
            FlowControl::Min => {
                format!("{}|fc=min,t:{}ms", self.channel(), self.receiver_timeout_ms)
            }
            FlowControl::Max => self.channel(),
        }
    }

    /// Checks every value (`prefix` is the section's key, `net`); `allowed` are the
    /// process's cores.
    pub fn validate(&self, allowed: &[usize]) -> Result<(), (KeyPath, String)> {
        let k = |s: &str| KeyPath::key("net").then(s);
        match self.transport {
            NetTransport::Ipc => {
                for (key, set) in [
                    ("endpoint", self.endpoint.is_some()),
                    ("interface", self.interface.is_some()),
                    ("multicast", self.multicast),
                ] {
                    if set {
                        return Err((
                            k(key),
                            "applies to transport = \"udp\" only (ipc has no address)".into(),
                        ));
                    }
                }
            }
            NetTransport::Udp => {
                let Some(endpoint) = &self.endpoint else {
                    return Err((
                        k("endpoint"),
                        "transport = \"udp\" needs an endpoint, ADDRESS:PORT (239.1.1.1:40456)"
                            .into(),
                    ));
                };
                let (addr, _) = parse_endpoint(endpoint).map_err(|m| (k("endpoint"), m))?;
                if self.multicast && !addr.is_multicast() {
                    return Err((
                        k("endpoint"),
                        format!(
                            "{addr} is not a multicast address (224.0.0.0 to 239.255.255.255), but multicast = true"
                        ),
                    ));
                }
                if !self.multicast && addr.is_multicast() {
                    return Err((
                        k("endpoint"),
                        format!("{addr} is a multicast address: set multicast = true"),
                    ));
                }
                if let Some(i) = &self.interface {
                    parse_interface(i).map_err(|m| (k("interface"), m))?;
                }
            }
        }
        if self.flow_control == FlowControl::Min && !self.multicast {
            return Err((
                k("flow_control"),
                "applies to a multicast channel only (multicast = true)".into(),
            ));
        }
        if !(10..=60_000).contains(&self.receiver_timeout_ms) {
            return Err((
                k("receiver_timeout_ms"),
                format!(
                    "must be between 10 and 60000, got {}",
                    self.receiver_timeout_ms
                ),
            ));
        }
        if !(16..=1 << 24).contains(&self.recovery_buffer) {
            return Err((
                k("recovery_buffer"),
                format!(
                    "must be between 16 and 16777216, got {}",
                    self.recovery_buffer
                ),
            ));
        }
        if self.connect_timeout_ms > 60_000 {
            return Err((
                k("connect_timeout_ms"),
                format!("must be at most 60000, got {}", self.connect_timeout_ms),
            ));
        }
        if self.stream_id == 0 {
            return Err((k("stream_id"), "must not be 0".into()));
        }
        if !(MIN_MTU..=MAX_MTU).contains(&self.mtu) || !self.mtu.is_multiple_of(FRAME_ALIGNMENT) {
            return Err((
                k("mtu"),
                format!(
                    "must be a multiple of {FRAME_ALIGNMENT} between {MIN_MTU} and {MAX_MTU} bytes, got {}",
                    self.mtu
                ),
            ));
        }
        let t = self.term_length;
        if !t.is_power_of_two() || !(MIN_TERM_LENGTH..=MAX_TERM_LENGTH).contains(&t) {
            return Err((
                k("term_length"),
                format!(
                    "must be a power of two between {MIN_TERM_LENGTH} and {MAX_TERM_LENGTH} bytes, got {t}"
                ),
            ));
        }
        if u64::from(self.mtu) > t / 8 {
            return Err((
                k("mtu"),
                format!(
                    "must be at most an eighth of term_length ({} bytes), got {}",
                    t / 8,
                    self.mtu
                ),
            ));
        }
        self.validate_driver(allowed)
    }

    fn validate_driver(&self, allowed: &[usize]) -> Result<(), (KeyPath, String)> {
        let d = &self.driver;
        let k = |s: &str| KeyPath::key("net").then("driver").then(s);
        let dir = &d.dir;
        if d.embedded {
            let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
            if dir.file_name().is_none() || parent.is_none_or(|p| !p.is_dir()) {
                return Err((
                    k("dir"),
                    format!(
                        "{} is not a folder path in an existing folder (the embedded driver creates it)",
                        dir.display()
                    ),
                ));
            }
        } else if !dir.join("cnc.dat").is_file() {
            return Err((
                k("dir"),
                format!(
                    "no media driver in {} (no cnc.dat): start one there, or set embedded = true",
                    dir.display()
                ),
            ));
        }
        if !(d.loss_rate.is_finite() && (0.0..1.0).contains(&d.loss_rate)) {
            return Err((
                k("loss_rate"),
                format!("must be a fraction from 0 to below 1, got {}", d.loss_rate),
            ));
        }
        if d.loss_rate > 0.0 && (self.transport == NetTransport::Ipc || !d.embedded) {
            return Err((
                k("loss_rate"),
                "applies to an embedded driver on transport = \"udp\" only (the loss generator drops UDP frames)".into(),
            ));
        }
        if !(1..=1_000_000).contains(&d.nak_backoff_us) {
            return Err((
                k("nak_backoff_us"),
                format!(
                    "must be between 1 and 1000000 microseconds, got {}",
                    d.nak_backoff_us
                ),
            ));
        }
        if !d.embedded && !d.cores.is_empty() {
            return Err((
                k("cores"),
                "applies to an embedded driver only (embedded = true)".into(),
            ));
        }
        for (i, c) in d.cores.iter().enumerate() {
            if !allowed.contains(c) {
                return Err((
                    k("cores").index(i),
                    format!("core {c} is not allowed for this process (allowed: {allowed:?})"),
                ));
            }
        }
        Ok(())
    }
}

/// `ADDRESS:PORT` with an IPv4 address and a port above 0.
fn parse_endpoint(s: &str) -> Result<(Ipv4Addr, u16), String> {
    let bad = || format!("{s:?} is not ADDRESS:PORT with an IPv4 address (239.1.1.1:40456)");
    let (a, p) = s.rsplit_once(':').ok_or_else(bad)?;
    let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
    let port: u16 = p.parse().map_err(|_| bad())?;
    if port == 0 {
        return Err(format!("{s:?}: the port must be between 1 and 65535"));
    }
    Ok((addr, port))
}

/// `ADDRESS` or `ADDRESS/PREFIX` (IPv4, a prefix of 0 to 32).
fn parse_interface(s: &str) -> Result<(), String> {
    let bad = || format!("{s:?} is not an IPv4 address, or ADDRESS/PREFIX (10.0.0.1, 10.0.0.0/24)");
    let (a, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    a.parse::<Ipv4Addr>().map_err(|_| bad())?;
    if let Some(p) = prefix {
        let n: u8 = p.parse().map_err(|_| bad())?;
        if n > 32 {
            return Err(bad());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, DEFAULT_CORES, DEFAULT_TOML};
    use std::path::Path;

    /// The shipped default with `net` appended, parsed as `net.toml`.
    fn parse(net: &str) -> Result<Config, String> {
        let text = format!("{DEFAULT_TOML}\n{net}");
        Config::parse(&text, Path::new("net.toml"), &DEFAULT_CORES).map_err(|e| e.to_string())
    }

    /// The error for `net`, with the line counted from the `[net]` header (line 1).
    fn err(net: &str) -> String {
        let offset = DEFAULT_TOML.lines().count() + 1;
        let e = parse(net).expect_err(net);
        // net.toml:LINE:COL: KEY: MESSAGE, the line made relative to the snippet.
        let rest = e.strip_prefix("net.toml:").unwrap_or(&e);
        let (line, rest) = rest.split_once(':').unwrap_or(("0", rest));
        let line: usize = line.parse().unwrap_or(0);
        format!("{}:{rest}", line.saturating_sub(offset))
    }

    #[test]
    fn udp_multicast_unicast_and_ipc_channels() {
        let c = parse(
            "[net]\nendpoint = \"239.1.1.1:40456\"\nmulticast = true\ninterface = \"10.0.0.1\"\n",
        )
        .unwrap();
        let n = c.net.unwrap();
        assert_eq!(
            n.channel(),
            "aeron:udp?endpoint=239.1.1.1:40456|interface=10.0.0.1|mtu=1408|term-length=16777216"
        );
        assert_eq!(
            n.endpoint_addr(),
            Some(("239.1.1.1".parse().unwrap(), 40456))
        );
        assert!(n.driver.embedded);
        let c = parse("[net]\nendpoint = \"127.0.0.1:40456\"\nmtu = 4096\nterm_length = 65536\n")
            .unwrap();
        assert_eq!(
            c.net.unwrap().channel(),
            "aeron:udp?endpoint=127.0.0.1:40456|mtu=4096|term-length=65536"
        );
        let c = parse("[net]\ntransport = \"ipc\"\n").unwrap();
        assert_eq!(c.net.unwrap().channel(), "aeron:ipc?term-length=16777216");
        // No [net]: the ring only.
        assert!(parse("").unwrap().net.is_none());
    }

    #[test]
    fn bad_network_configuration_is_located() {
        for (net, want) in [
            ("[net]\nendpoint = \"239.1.1.1\"\n", "2:1: net.endpoint: \"239.1.1.1\" is not ADDRESS:PORT"),
            ("[net]\nendpoint = \"host:1\"\n", "2:1: net.endpoint: \"host:1\" is not ADDRESS:PORT"),
            ("[net]\nendpoint = \"10.0.0.1:0\"\n", "2:1: net.endpoint: \"10.0.0.1:0\": the port must be"),
            (
                "[net]\nendpoint = \"10.0.0.1:4000\"\nmulticast = true\n",
                "2:1: net.endpoint: 10.0.0.1 is not a multicast address",
            ),
            ("[net]\nendpoint = \"239.0.0.1:4000\"\n", "2:1: net.endpoint: 239.0.0.1 is a multicast address"),
            ("[net]\n", "1:2: net.endpoint: transport = \"udp\" needs an endpoint"),
            (
                "[net]\nendpoint = \"10.0.0.1:4000\"\nmtu = 100\n",
                "3:1: net.mtu: must be a multiple of 32 between 96 and 65504 bytes, got 100",
            ),
            (
                "[net]\nendpoint = \"10.0.0.1:4000\"\nmtu = 65536\n",
                "3:1: net.mtu: must be a multiple of 32 between 96 and 65504 bytes, got 65536",
            ),
            (
                "[net]\nendpoint = \"10.0.0.1:4000\"\nterm_length = 100000\n",
                "3:1: net.term_length: must be a power of two",
            ),
            (
                "[net]\nendpoint = \"10.0.0.1:4000\"\nmtu = 16384\nterm_length = 65536\n",
                "3:1: net.mtu: must be at most an eighth of term_length",
            ),
            ("[net]\ntransport = \"ipc\"\nendpoint = \"10.0.0.1:4000\"\n", "3:1: net.endpoint: applies to transport = \"udp\" only"),
            ("[net]\nendpoint = \"10.0.0.1:4000\"\ninterface = \"eth0\"\n", "3:1: net.interface: \"eth0\" is not an IPv4 address"),
            ("[net]\nendpoint = \"10.0.0.1:4000\"\nstream_id = 0\n", "3:1: net.stream_id: must not be 0"),
            (
                "[net]\nendpoint = \"10.0.0.1:4000\"\nconnect_timeout_ms = 60001\n",
                "3:1: net.connect_timeout_ms: must be at most 60000, got 60001",
            ),
            (
                "[net]\nendpoint = \"10.0.0.1:4000\"\n[net.driver]\ndir = \"/no/such/folder/aeron\"\n",
                "4:1: net.driver.dir: /no/such/folder/aeron is not a folder path in an existing folder",
            ),
            (
                "[net]\nendpoint = \"10.0.0.1:4000\"\n[net.driver]\nembedded = false\ndir = \"/tmp/no-such-aeron-driver\"\n",
                "5:1: net.driver.dir: no media driver in /tmp/no-such-aeron-driver",
            ),
            (
                "[net]\nendpoint = \"10.0.0.1:4000\"\n[net.driver]\ncores = [7]\n",
                "4:10: net.driver.cores[0]: core 7 is not allowed",
            ),
            ("[net]\nendpoint = \"10.0.0.1:4000\"\nspeed = 1\n", "3:1: net.speed: unknown field"),
            (
                "[net]\nendpoint = \"10.0.0.1:4000\"\n[net.driver]\nloss_rate = 1.0\n",
                "4:1: net.driver.loss_rate: must be a fraction from 0 to below 1, got 1",
            ),
            (
                "[net]\ntransport = \"ipc\"\n[net.driver]\nloss_rate = 0.1\n",
                "4:1: net.driver.loss_rate: applies to an embedded driver on transport = \"udp\" only",
            ),
            (
                "[net]\nendpoint = \"10.0.0.1:4000\"\nflow_control = \"min\"\n",
                "3:1: net.flow_control: applies to a multicast channel only",
            ),
            (
                "[net]\nendpoint = \"10.0.0.1:4000\"\n[net.driver]\nnak_backoff_us = 0\n",
                "4:1: net.driver.nak_backoff_us: must be between 1 and 1000000 microseconds, got 0",
            ),
            ("[net]\ntransport = \"tcp\"\n", "2:13: net.transport: unknown variant"),
            (
                "[net]\nendpoint = \"10.0.0.1:4000\"\n[net.driver]\nthreading = \"many\"\n",
                "4:13: net.driver.threading: unknown variant",
            ),
        ] {
            let e = err(net);
            assert!(e.starts_with(want), "{net}\ngot:  {e}\nwant: {want}");
        }
    }
}
