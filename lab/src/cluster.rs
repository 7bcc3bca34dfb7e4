//! `lab cluster`: several hosts on one machine. Network namespaces joined by veth links
//! to a bridge (in a namespace of its own, multicast snooping off) stand for a feed host
//! and engine hosts; on each engine host a relay ([`net::summary`]) subscribes to the
//! feed's Aeron multicast stream and republishes it into the host's ring, and that
//! host's engines read the ring. Every process is a real binary with its own embedded
//! media driver, started in its namespace with `ip netns exec`.
//!
//! # What a run does
//!
//! 1. Reads the cluster file (`configs/cluster.toml`; schema: [`ClusterFile`]) and the
//!    base run configuration it names, derives one configuration per process (ring,
//!    interface, driver folder, history service, wait strategies) and validates each:
//!    every error is bad input (exit 2), located at the cluster file's key, before
//!    anything is created.
//! 2. Creates the namespaces `hft<pid>-<host>` and the switch `hft<pid>-sw`, and one
//!    folder `/dev/shm/hft-cluster-<pid>/` for every ring, driver folder and socket.
//! 3. Starts the relays, then the engines, then the feed (which waits for a
//!    subscriber), and the faults asked for: `--kill-relay S` (the first engine host's
//!    relay SIGKILLed S seconds after the feed started, a new one started on the same
//!    ring half a second later: it catches up from the feed's history service),
//!    `--kill-feed S` (every relay must notice within the producer timeout).
//! 4. Waits for every process to end, reads every summary, tears everything down (the
//!    processes, the namespaces, the folder: also after an error or Ctrl-C, by
//!    dropping its guards), checks that nothing is left, and prints one table: per
//!    host and per engine, ticks, gaps, recovered, unaccounted and the stage
//!    latencies, with the network hop. Writes `cluster_summary.json`.
//!
//! Fails (exit 1) where a tick is unaccounted for, a process ends in a way the run did
//! not ask for, or something is left after the teardown.
//!
//! # Clocks
//!
//! Every process here reads one machine's TSC, so the one-way figures (feed publish →
//! relay receive, relay ring → engine) are comparable across hosts. Real hosts need
//! synchronised clocks (PTP) for one-way figures; round trips do not.
//!
//! Cold code only: it forks, sleeps, and runs `ip`. Needs root (network namespaces).

use crate::child::Supervised;
use anyhow::{bail, ensure, Context, Result};
use common::config::edit::Edit;
use common::config::{error_at, parse_toml, Config, ConfigError, KeyPath};
use common::cores::WaitStrategy;
use common::failure::Failure;
use common::files::{self, Kind};
use common::latency::Percentiles;
use common::os::Signal;
use common::summary::{EndReason, EngineSummary, FeedSummary};
use net::summary::{RelaySummary, RELAY_SUMMARY};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What `lab cluster` writes into its output folder.
pub const CLUSTER_SUMMARY: &str = "cluster_summary.json";
/// What `lab cluster --repeat N` writes: the direct engines against the relay-fed ones.
pub const CLUSTER_COMPARE: &str = "cluster_compare.json";

/// The producer timeout every relay and engine runs with: how soon a feed's (or a
/// relay's) silence is noticed.
const PRODUCER_TIMEOUT_MS: u64 = 1000;
/// The name of an engine on the feed's stream itself, before its number (`direct-1`).
const DIRECT: &str = "direct-";

/// The cluster file (`configs/cluster.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// The base run configuration (symbols, rates, ring size, engine), relative to the
    /// cluster file's folder.
    config: PathBuf,
    /// Seconds the feed publishes (default: the base configuration's).
    duration_s: Option<f64>,
    /// The hosts' network: `A.B.C`, the feed host at `A.B.C.1`, engine host `i` at
    /// `A.B.C.(i+2)`, all on one bridge.
    #[serde(default = "default_subnet")]
    subnet: String,
    /// The multicast group and port of the feed's stream (`ADDRESS:PORT`, 224.0.0.0/4).
    #[serde(default = "default_group")]
    group: String,
    /// The TCP port of the feed's history service on the feed host, from which the
    /// relays fill gaps (0: no gap filling).
    #[serde(default = "default_service_port")]
    service_port: u16,
    /// Fraction of the data packets each engine host's media driver drops (Aeron's loss
    /// generator), from 0 to 1 (below 1).
    #[serde(default)]
    loss_rate: f64,
    /// The engine hosts' drivers' longest wait before asking for a lost frame again
    /// (`net.driver.nak_backoff_us`), microseconds.
    #[serde(default = "default_nak_backoff_us")]
    nak_backoff_us: u64,
    /// The wait strategy of every hot loop (feed md, relays, engines): on a small
    /// machine many processes share two cores, so not `spin`.
    #[serde(default = "default_wait")]
    wait: WaitStrategy,
    /// The engine hosts.
    hosts: Vec<HostFile>,
}

/// One engine host.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostFile {
    /// Its name: 1 to 8 lowercase letters and digits, not `feed` or `sw`.
    name: String,
    /// Engines on its ring, 1 to 4.
    #[serde(default = "one")]
    engines: u32,
    /// Engines that subscribe to the feed's stream themselves, with no relay and no
    /// ring (`engine.source = "aeron"`, each with its own media driver), 0 to 4: to
    /// compare with the relay-fed engines beside them.
    #[serde(default)]
    direct_engines: u32,
}

fn default_subnet() -> String {
    "10.77.0".into()
}
fn default_group() -> String {
    "239.77.0.1:40456".into()
}
fn default_service_port() -> u16 {
    7070
}
fn default_nak_backoff_us() -> u64 {
    200
}
fn default_wait() -> WaitStrategy {
    WaitStrategy::SpinYield
}
fn one() -> u32 {
    1
}

/// `lab cluster`'s command line.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// The cluster file.
    #[arg(long, value_name = "FILE", default_value = "configs/cluster.toml")]
    pub config: PathBuf,
    /// Seconds the feed publishes, instead of the cluster file's.
    #[arg(long, value_name = "SECS", value_parser = common::runargs::parse_secs)]
    pub duration: Option<f64>,
    /// Output folder [default: a new folder results/YYYYmmdd-HHMMSS-cluster, UTC].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Folder holding the `feed`, `engine` and `relay` binaries (built with the aeron
    /// feature) [default: the folder of `lab`].
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Packet loss on every engine host, instead of the cluster file's `loss_rate`
    /// (from 0 to below 1).
    #[arg(long, value_name = "RATE", value_parser = parse_loss)]
    pub loss: Option<f64>,
    /// SIGKILL the first engine host's relay this many seconds after the feed started,
    /// and start a new one on the same ring half a second later.
    #[arg(long, value_name = "SECS", value_parser = common::runargs::parse_secs)]
    pub kill_relay: Option<f64>,
    /// SIGKILL the feed this many seconds after it started: every relay must notice.
    #[arg(long, value_name = "SECS", value_parser = common::runargs::parse_secs)]
    pub kill_feed: Option<f64>,
    /// Run the cluster N times (2 to 50; each in `run-K/`) and compare, over the
    /// repetitions, each host's direct engines with its first relay-fed engine, and two
    /// relay-fed engines of one host with each other (the noise floor), with the
    /// report's verdict rule (`cluster_compare.json`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(2..=50))]
    pub repeat: Option<u32>,
}

/// A loss rate from 0 to below 1.
fn parse_loss(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        Ok(v) => Err(format!("must be a fraction from 0 to below 1, got {v}")),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

/// One engine host of a validated plan.
#[derive(Clone, Debug)]
struct Host {
    name: String,
    ip: Ipv4Addr,
    engines: u32,
    direct_engines: u32,
}

/// A validated cluster run.
#[derive(Debug)]
struct Plan {
    base: String,
    base_path: PathBuf,
    duration_s: f64,
    prefix: [u8; 3],
    group: String,
    service_port: u16,
    loss_rate: f64,
    nak_backoff_us: u64,
    wait: WaitStrategy,
    hosts: Vec<Host>,
}

impl Plan {
    fn feed_ip(&self) -> Ipv4Addr {
        let [a, b, c] = self.prefix;
        Ipv4Addr::new(a, b, c, 1)
    }
}

/// Reads and checks the cluster file at `path` with the command line's overrides.
fn load(path: &Path, args: &ClusterArgs) -> Result<Plan, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let file: ClusterFile = parse_toml(&text, path)?;
    let fail = |key: KeyPath, m: String| error_at(&text, path, &key, m);
    let base_path = path.parent().unwrap_or(Path::new("")).join(&file.config);
    let base = std::fs::read_to_string(&base_path).map_err(|e| {
        fail(
            KeyPath::key("config"),
            format!("cannot read {}: {e}", base_path.display()),
        )
    })?;
    let octets: Vec<Option<u8>> = file.subnet.split('.').map(|p| p.parse().ok()).collect();
    let prefix = match octets[..] {
        [Some(a), Some(b), Some(c)] => [a, b, c],
        _ => {
            return Err(fail(
                KeyPath::key("subnet"),
                format!(
                    "must be three octets A.B.C (hosts at A.B.C.1, .2, …), got {:?}",
                    file.subnet
                ),
            ))
        }
    };
    let group_ok = file
        .group
        .rsplit_once(':')
        .and_then(|(a, p)| Some((a.parse::<Ipv4Addr>().ok()?, p.parse::<u16>().ok()?)))
        .is_some_and(|(a, p)| a.is_multicast() && p != 0);
    if !group_ok {
        return Err(fail(
            KeyPath::key("group"),
            format!(
                "must be a multicast ADDRESS:PORT (224.0.0.0/4, port not 0), got {:?}",
                file.group
            ),
        ));
    }
    let loss_rate = args.loss.unwrap_or(file.loss_rate);
    if !(0.0..1.0).contains(&file.loss_rate) {
        return Err(fail(
            KeyPath::key("loss_rate"),
            format!(
                "must be a fraction from 0 to below 1, got {}",
                file.loss_rate
            ),
        ));
    }
    if file.hosts.is_empty() {
        return Err(fail(
            KeyPath::key("hosts"),
            "at least one engine host is required".into(),
        ));
    }
    if file.hosts.len() > 16 {
        return Err(fail(
            KeyPath::key("hosts"),
            format!("at most 16 engine hosts, got {}", file.hosts.len()),
        ));
    }
    let mut hosts = Vec::new();
    for (i, h) in file.hosts.iter().enumerate() {
        let k = |s: &str| KeyPath::key("hosts").index(i).then(s);
        let name_ok = (1..=8).contains(&h.name.len())
            && h.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && h.name != "feed"
            && h.name != "sw";
        if !name_ok {
            return Err(fail(
                k("name"),
                format!(
                    "must be 1 to 8 lowercase letters and digits, not \"feed\" or \"sw\", got {:?}",
                    h.name
                ),
            ));
        }
        if hosts.iter().any(|o: &Host| o.name == h.name) {
            return Err(fail(k("name"), format!("{:?} names two hosts", h.name)));
        }
        if !(1..=4).contains(&h.engines) {
            return Err(fail(
                k("engines"),
                format!("must be between 1 and 4, got {}", h.engines),
            ));
        }
        if h.direct_engines > 4 {
            return Err(fail(
                k("direct_engines"),
                format!("must be between 0 and 4, got {}", h.direct_engines),
            ));
        }
        let [a, b, c] = prefix;
        hosts.push(Host {
            name: h.name.clone(),
            ip: Ipv4Addr::new(a, b, c, i as u8 + 2),
            engines: h.engines,
            direct_engines: h.direct_engines,
        });
    }
    let duration_s = match (args.duration, file.duration_s) {
        (Some(d), _) => d,
        (None, Some(d)) if d > 0.0 && d <= 600.0 => d,
        (None, Some(d)) => {
            return Err(fail(
                KeyPath::key("duration_s"),
                format!("must be above 0 and at most 600 seconds, got {d}"),
            ))
        }
        (None, None) => {
            Config::parse(&base, &base_path, &common::cores::allowed_cores())
                .map_err(|e| fail(KeyPath::key("config"), format!("{e}")))?
                .duration_s
        }
    };
    Ok(Plan {
        base,
        base_path,
        duration_s,
        prefix,
        group: file.group,
        service_port: file.service_port,
        loss_rate,
        nak_backoff_us: file.nak_backoff_us,
        wait: file.wait,
        hosts,
    })
}

/// The namespaces and the folder of one run, removed when dropped (after the
/// processes in them, which are dropped first).
struct Topology {
    prefix: String,
    namespaces: Vec<String>,
    shm: PathBuf,
}

/// Runs `ip ARGS`, an error with its stderr if it fails.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run `ip` (iproute2)")?;
    ensure!(
        out.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

impl Topology {
    /// The switch and one namespace per host (`feed` and `hosts`), each with its veth
    /// link on the bridge, its address, its loopback and a multicast route.
    fn create(plan: &Plan, shm: PathBuf) -> Result<Topology> {
        let prefix = format!("hft{}", std::process::id());
        let mut t = Topology {
            prefix: prefix.clone(),
            namespaces: Vec::new(),
            shm,
        };
        let sw = format!("{prefix}-sw");
        ip(&["netns", "add", &sw])?;
        t.namespaces.push(sw.clone());
        ip(&[
            "-n",
            &sw,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        let all = std::iter::once(("feed".to_string(), plan.feed_ip()))
            .chain(plan.hosts.iter().map(|h| (h.name.clone(), h.ip)));
        for (i, (name, addr)) in all.enumerate() {
            let ns = t.namespace(&name);
            ip(&["netns", "add", &ns])?;
            t.namespaces.push(ns.clone());
            // Interface names are at most 15 bytes: the pid's last digits and the index.
            let veth = format!("v{}x{i}", std::process::id() % 100_000);
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["link", "set", &veth, "netns", &sw])?;
            ip(&["-n", &sw, "link", "set", &veth, "master", "br0", "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns, "route", "add", "224.0.0.0/4", "dev", "eth0"])?;
        }
        Ok(t)
    }

    fn namespace(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    /// What of this run is still there: namespaces and the folder.
    fn leftovers(&self) -> Vec<String> {
        let listed = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut left: Vec<String> = listed
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&format!("{}-", self.prefix)))
            .map(|n| format!("namespace {n}"))
            .collect();
        if self.shm.exists() {
            left.push(format!("folder {}", self.shm.display()));
        }
        left
    }

    /// Removes the namespaces (their veth links go with them) and the folder.
    fn remove(&mut self) {
        for ns in self.namespaces.drain(..).rev() {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                eprintln!("lab cluster: {e:#}");
            }
        }
        if self.shm.exists() {
            if let Err(e) = std::fs::remove_dir_all(&self.shm) {
                eprintln!("lab cluster: cannot remove {}: {e}", self.shm.display());
            }
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A process of the cluster: its folder (configuration, logs, summary) and its child.
struct Proc {
    sup: Supervised,
    dir: PathBuf,
    started: Instant,
}

impl Proc {
    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }
}

/// Starts `bin` in namespace `ns` with the configuration `text`, in folder `dir`.
fn start(
    name: &'static str,
    ns: &str,
    bin: &Path,
    dir: &Path,
    text: &str,
    duration_s: f64,
) -> Result<Proc> {
    files::create_dir_all(dir)?;
    let config = dir.join("config.toml");
    let header = Kind::Text.header("a lab cluster process's configuration");
    files::write(&config, Kind::Text, format!("{header}{text}").as_bytes())?;
    let log = |n: &str| files::create_log(&dir.join(n), &format!("{n} of the {name}"));
    let child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(bin)
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(dir)
        .arg("--duration")
        .arg(duration_s.to_string())
        .stdin(Stdio::null())
        .stdout(log("stdout.log")?)
        .stderr(log("stderr.log")?)
        .spawn()
        .with_context(|| format!("cannot start the {name} in {ns}"))?;
    Ok(Proc {
        sup: Supervised::new(name, child),
        dir: dir.to_path_buf(),
        started: Instant::now(),
    })
}

/// Derived configurations of one run.
struct Configs {
    feed: String,
    /// Per host.
    hosts: Vec<HostConfigs>,
}

/// The configurations of one engine host's processes.
struct HostConfigs {
    /// The relay's, with its driver folder's incarnation as `{n}`.
    relay: String,
    /// The engines' on the host's ring.
    engine: String,
    /// The direct engines', with the engine's number as `{n}` in its driver folder.
    direct: String,
}

/// The configurations of every process; with `relay_restarts`, the first host's engines
/// wait through their relay's death for the next one (`engine.on_producer_gone = "wait"`).
fn derive(plan: &Plan, shm: &Path, relay_restarts: bool) -> Result<Configs, (KeyPath, String)> {
    let ring = |host: &str| shm.join(format!("{host}.ring"));
    let common_edit = |e: Edit, host: &str| {
        e.set("duration_s", plan.duration_s)
            .set("ring.path", ring(host))
            .set("feed.wait", plan.wait)
            .set("engine.wait", plan.wait)
            .set("engine.producer_timeout_ms", PRODUCER_TIMEOUT_MS)
    };
    let net = |e: Edit, host: &str, ip: Ipv4Addr| {
        e.set("net.transport", "udp")
            .set("net.endpoint", &plan.group)
            .set("net.multicast", true)
            .set("net.flow_control", "min")
            .set("net.interface", ip.to_string())
            .set("net.driver.dir", shm.join(format!("{host}-aeron-{{n}}")))
            .set("net.driver.idle", "backoff")
    };
    let err = |e: common::config::edit::EditError| (KeyPath::key("config"), e.to_string());
    let mut feed = net(
        common_edit(Edit::new(&plan.base), "feed"),
        "feed",
        plan.feed_ip(),
    )
    .set("net.connect_timeout_ms", 10_000)
    .set("feed.service.socket", shm.join("feed.sock"));
    if plan.service_port != 0 {
        feed = feed.set(
            "feed.service.listen",
            format!("{}:{}", plan.feed_ip(), plan.service_port),
        );
    }
    let feed = feed.finish().map_err(err)?.replace("{n}", "1");
    let mut hosts = Vec::new();
    for (i, h) in plan.hosts.iter().enumerate() {
        let mut relay = net(common_edit(Edit::new(&plan.base), &h.name), &h.name, h.ip)
            .set("net.driver.loss_rate", plan.loss_rate)
            .set("net.driver.nak_backoff_us", plan.nak_backoff_us);
        if plan.service_port != 0 {
            relay = relay.set(
                "net.history",
                format!("{}:{}", plan.feed_ip(), plan.service_port),
            );
        }
        let mut engine = common_edit(Edit::new(&plan.base), &h.name);
        if relay_restarts && i == 0 {
            engine = engine.set("engine.on_producer_gone", "wait");
        }
        let engine = engine.finish().map_err(err)?;
        let direct = net(
            common_edit(Edit::new(&plan.base), &h.name),
            &format!("{}-direct", h.name),
            h.ip,
        )
        .set("engine.source", "aeron")
        .set("net.driver.loss_rate", plan.loss_rate)
        .set("net.driver.nak_backoff_us", plan.nak_backoff_us)
        .finish()
        .map_err(err)?;
        hosts.push(HostConfigs {
            relay: relay.finish().map_err(err)?,
            engine,
            direct,
        });
    }
    Ok(Configs { feed, hosts })
}

/// One row of the table: a process and what it counted.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Row {
    /// The host.
    pub host: String,
    /// `feed`, `relay`, `relay-2` (restarted), `engine-N` (on the host's ring),
    /// `direct-N` (on the feed's stream, no relay).
    pub process: String,
    /// The feed: ticks published; a relay: the newest sequence number the feed named;
    /// an engine: ticks its ring published.
    pub published: u64,
    /// Relays: ticks relayed from Aeron; engines: ticks received.
    pub ticks: u64,
    /// Gaps (relays: in the feed's stream; engines: in their ring).
    pub gaps: u64,
    /// Relays: filled from the history service; engines: their own recovery.
    pub recovered: u64,
    /// Relays: neither relayed nor recovered; engines: missed and not recovered.
    pub unrecovered: u64,
    /// What no count explains (0 when every tick is accounted for).
    pub unaccounted: i64,
    /// Relays and direct engines: feed publish → receive (the network); engines:
    /// their ring's hop.
    pub hop_ns: Percentiles,
    /// Relays: receive → local ring; engines: their per-tick work.
    pub work_ns: Percentiles,
    /// Engines: the open-loop schedule → the engine done with the tick.
    pub e2e_ns: Percentiles,
    /// Relays and direct engines: NAKs their driver sent (losses Aeron recovered).
    pub naks: i64,
    /// How it ended, and its exit.
    pub end: String,
    /// Exit status.
    pub exit: String,
}

/// `cluster_summary.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ClusterSummary {
    /// The cluster file.
    pub config: String,
    /// Seconds the feed published for.
    pub duration_s: f64,
    /// The loss rate of the engine hosts' drivers.
    pub loss_rate: f64,
    /// The faults injected, in words.
    pub faults: Vec<String>,
    /// Every process.
    pub rows: Vec<Row>,
    /// Kill to exit, per relay and per direct engine, ms (`--kill-feed`).
    pub feed_death_noticed_ms: Vec<(String, u128)>,
    /// What was left after the teardown (empty: nothing).
    pub left_after_teardown: Vec<String>,
    /// Problems found (empty: the run passed).
    pub problems: Vec<String>,
    /// The signal that interrupted the run, if any.
    pub interrupted_by: Option<String>,
}

/// `lab cluster`.
pub fn cluster(args: &ClusterArgs) -> Result<()> {
    let plan = load(&args.config, args).map_err(Failure::bad_input)?;
    for (flag, at) in [
        ("--kill-relay", args.kill_relay),
        ("--kill-feed", args.kill_feed),
    ] {
        if let Some(at) = at.filter(|&at| at >= plan.duration_s) {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "{flag} {at}: must come before the feed's end at {} s",
                plan.duration_s
            ))
            .into());
        }
    }
    let bins = crate::run::bin_dir(args.bin_dir.as_deref())?;
    let find = |name: &str| -> Result<PathBuf> {
        let p = bins.join(name);
        ensure!(
            p.is_file(),
            "no `{name}` binary in {}: build them with the aeron feature (`cargo build --release -p feed -p engine -p net --features feed/aeron,net/aeron,engine/aeron --bins`), or pass --bin-dir",
            bins.display()
        );
        Ok(p)
    };
    let (feed_bin, engine_bin, relay_bin) = (find("feed")?, find("engine")?, find("relay")?);
    if common::os::effective_uid() != 0 {
        bail!("lab cluster needs root: it creates network namespaces (`ip netns add`)");
    }
    let out = match &args.out {
        Some(d) => {
            common::runargs::prepare_out_dir(
                d,
                &[(CLUSTER_SUMMARY, Kind::Json), (CLUSTER_COMPARE, Kind::Json)],
            )
            .map_err(Failure::bad_input)?;
            d.clone()
        }
        None => files::create_fresh_dir(&Path::new("results").join(format!(
            "{}-cluster",
            common::units::utc_stamp(std::time::SystemTime::now())
        )))?,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("cannot install the SIGINT/SIGTERM handler")?;
    }
    let bins = [&feed_bin, &engine_bin, &relay_bin];
    let repeat = args.repeat.unwrap_or(1);
    if repeat == 1 {
        let summary = run_once(&plan, args, &out, &stop, bins)?;
        return passed(&summary);
    }
    let mut runs = Vec::new();
    for k in 1..=repeat {
        let dir = out.join(format!("run-{k}"));
        files::create_dir_all(&dir)?;
        let summary = run_once(&plan, args, &dir, &stop, bins)?;
        passed(&summary).with_context(|| format!("repetition {k} of {repeat}"))?;
        runs.push(summary);
    }
    let compared = compare_paths(&runs);
    files::write_json(&out.join(CLUSTER_COMPARE), &compared)?;
    print!("{}", format_compare(&compared, &out));
    Ok(())
}

/// Whether a run passed: not interrupted, no problem.
fn passed(summary: &ClusterSummary) -> Result<()> {
    if let Some(sig) = &summary.interrupted_by {
        bail!("the run was interrupted by {sig}; the table covers it up to then");
    }
    ensure!(
        summary.problems.is_empty(),
        "{} problem(s): {}",
        summary.problems.len(),
        summary.problems.join("; ")
    );
    Ok(())
}

/// One run of the cluster into `out`: the topology made, the processes driven, the
/// topology removed and checked; writes `cluster_summary.json` and prints the table.
fn run_once(
    plan: &Plan,
    args: &ClusterArgs,
    out: &Path,
    stop: &AtomicBool,
    bins: [&PathBuf; 3],
) -> Result<ClusterSummary> {
    let shm = PathBuf::from(format!("/dev/shm/hft-cluster-{}", std::process::id()));
    files::create_fresh_dir(&shm)?;
    // From here on the folder is the topology's: removed on every path out.
    let configs = match derive(plan, &shm, args.kill_relay.is_some()) {
        Ok(c) => c,
        Err((key, m)) => {
            let _ = std::fs::remove_dir_all(&shm);
            let text = std::fs::read_to_string(&args.config).unwrap_or_default();
            return Err(Failure::bad_input(error_at(&text, &args.config, &key, m)).into());
        }
    };
    let allowed = common::cores::allowed_cores();
    let check = |text: &str, what: &str| -> Result<()> {
        let probe = text.replace("{n}", "1");
        if let Err(e) = Config::parse(&probe, &plan.base_path, &allowed) {
            let text = std::fs::read_to_string(&args.config).unwrap_or_default();
            return Err(Failure::bad_input(error_at(
                &text,
                &args.config,
                &KeyPath::key("config"),
                format!(
                    "the {what}'s configuration derived from {} is not valid: {e}",
                    plan.base_path.display()
                ),
            ))
            .into());
        }
        Ok(())
    };
    let checked = check(&configs.feed, "feed").and_then(|()| {
        configs.hosts.iter().try_for_each(|h| {
            check(&h.relay, "relay")?;
            check(&h.engine, "engine")?;
            check(&h.direct, "direct engine")
        })
    });
    if let Err(e) = checked {
        let _ = std::fs::remove_dir_all(&shm);
        return Err(e);
    }
    let mut topo = Topology::create(plan, shm.clone())?;
    let ran = drive(plan, &configs, &topo, out, args, stop, bins);
    // Every process has ended (or was terminated when `drive` returned): the network
    // and the folder go now, and what is left is checked.
    topo.remove();
    let left = topo.leftovers();
    let mut summary = ran?;
    summary.config = args.config.display().to_string();
    summary.left_after_teardown = left.clone();
    for l in left {
        summary
            .problems
            .push(format!("left after the teardown: {l}"));
    }
    files::write_json(&out.join(CLUSTER_SUMMARY), &summary)?;
    print!("{}", format_table(&summary, out));
    Ok(summary)
}

/// Waits until `p` has exited or `secs` have passed (or a stop was asked); its status.
fn wait_exit(p: &mut Proc, secs: f64, stop: &AtomicBool) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        if let Some(s) = p.sup.try_wait()? {
            return Ok(Some(s));
        }
        if Instant::now() >= deadline || stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        std::thread::sleep(crate::child::POLL_EVERY);
    }
}

/// Sleeps until `at` after `since`, or a stop.
fn sleep_until(since: Instant, at: f64, stop: &AtomicBool) {
    let until = since + Duration::from_secs_f64(at);
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(crate::child::POLL_EVERY);
    }
}

/// Waits (at most 10 s) for a relay or a direct engine (`what`) to say it is
/// subscribed (its stderr names the stream).
fn wait_ready(p: &mut Proc, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if p.stderr().contains(" stream ") {
            return Ok(());
        }
        if let Some(s) = p.sup.try_wait()? {
            bail!(
                "the {what} in {} exited ({s}) before subscribing: {}",
                p.dir.display(),
                p.stderr().trim()
            );
        }
        std::thread::sleep(crate::child::POLL_EVERY);
    }
    bail!(
        "the {what} in {} did not subscribe within 10 s",
        p.dir.display()
    )
}

fn exit_text(s: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match s {
        None => "running".into(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit {c}"),
            (_, Some(sig)) => format!("signal {sig}"),
            _ => "?".into(),
        },
    }
}

/// Starts the processes, injects the faults, waits for the ends and reads the
/// summaries. Every process still running when this returns is terminated (its
/// [`Supervised`] guard).
fn drive(
    plan: &Plan,
    configs: &Configs,
    topo: &Topology,
    out: &Path,
    args: &ClusterArgs,
    stop: &AtomicBool,
    [feed_bin, engine_bin, relay_bin]: [&PathBuf; 3],
) -> Result<ClusterSummary> {
    let mut summary = ClusterSummary {
        duration_s: plan.duration_s,
        loss_rate: plan.loss_rate,
        ..ClusterSummary::default()
    };
    // Relays and engines outlive the feed: they end when it does.
    let long = plan.duration_s + 30.0;
    let mut relays: Vec<(String, Proc)> = Vec::new();
    for (h, c) in plan.hosts.iter().zip(&configs.hosts) {
        let mut p = start(
            "relay",
            &topo.namespace(&h.name),
            relay_bin,
            &out.join(&h.name).join("relay"),
            &c.relay.replace("{n}", "1"),
            long,
        )?;
        wait_ready(&mut p, "relay")?;
        relays.push(("relay".into(), p));
    }
    let mut engines: Vec<(usize, String, Proc)> = Vec::new();
    for (i, (h, c)) in plan.hosts.iter().zip(&configs.hosts).enumerate() {
        for n in 1..=h.engines {
            let name = format!("engine-{n}");
            let p = start(
                "engine",
                &topo.namespace(&h.name),
                engine_bin,
                &out.join(&h.name).join(&name),
                &c.engine,
                long,
            )?;
            engines.push((i, name, p));
        }
        for n in 1..=h.direct_engines {
            let name = format!("{DIRECT}{n}");
            let mut p = start(
                "engine",
                &topo.namespace(&h.name),
                engine_bin,
                &out.join(&h.name).join(&name),
                &c.direct.replace("{n}", &n.to_string()),
                long,
            )?;
            // Subscribed before the feed starts: it hears the feed's first message.
            wait_ready(&mut p, "engine")?;
            engines.push((i, name, p));
        }
    }
    let mut feed = start(
        "feed",
        &topo.namespace("feed"),
        feed_bin,
        &out.join("feed"),
        &configs.feed,
        plan.duration_s,
    )?;
    let t0 = feed.started;
    let relay_count = relays.len();
    let direct_count: usize = plan.hosts.iter().map(|h| h.direct_engines as usize).sum();
    let mut restarted: Option<Proc> = None;
    let mut killed_relay = None;
    let mut feed_killed_at = None;
    if let Some(at) = args.kill_relay.filter(|_| !stop.load(Ordering::Relaxed)) {
        sleep_until(t0, at, stop);
        let (_, p) = &mut relays[0];
        p.sup.signal(Signal::Kill);
        let s = wait_exit(p, 5.0, stop)?;
        killed_relay = Some(s);
        summary.faults.push(format!(
            "relay of {} SIGKILLed at {at} s, restarted 0.5 s later",
            plan.hosts[0].name
        ));
        std::thread::sleep(Duration::from_millis(500));
        let h = &plan.hosts[0];
        let mut p = start(
            "relay",
            &topo.namespace(&h.name),
            relay_bin,
            &out.join(&h.name).join("relay-2"),
            &configs.hosts[0].relay.replace("{n}", "2"),
            long,
        )?;
        wait_ready(&mut p, "relay")?;
        restarted = Some(p);
    }
    if let Some(at) = args.kill_feed.filter(|_| !stop.load(Ordering::Relaxed)) {
        sleep_until(t0, at, stop);
        feed.sup.signal(Signal::Kill);
        feed_killed_at = Some(Instant::now());
        summary.faults.push(format!("feed SIGKILLed at {at} s"));
    }
    // The feed's end (its duration, its lingering end, its summary), then the relays'
    // (the end message, or the producer timeout), then the engines'.
    let feed_exit = wait_exit(&mut feed, plan.duration_s + 20.0, stop)?;
    let mut relay_exits = Vec::new();
    {
        let mut waiting: Vec<&mut Proc> = relays
            .iter_mut()
            .skip(usize::from(restarted.is_some()))
            .map(|(_, p)| p)
            .chain(restarted.as_mut())
            .collect();
        let relays_waited = waiting.len();
        if feed_killed_at.is_some() {
            // The engines on the stream itself must notice the feed's death too.
            waiting.extend(
                engines
                    .iter_mut()
                    .filter(|(_, name, _)| name.starts_with(DIRECT))
                    .map(|(_, _, p)| p),
            );
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut exits: Vec<Option<(ExitStatus, Instant)>> = vec![None; waiting.len()];
        while exits.iter().any(Option::is_none)
            && Instant::now() < deadline
            && !stop.load(Ordering::Relaxed)
        {
            for (p, e) in waiting.iter_mut().zip(exits.iter_mut()) {
                if e.is_none() {
                    *e = p.sup.try_wait()?.map(|s| (s, Instant::now()));
                }
            }
            std::thread::sleep(crate::child::POLL_EVERY);
        }
        for (p, e) in waiting.iter().zip(&exits) {
            if let (Some(k), Some((_, at))) = (feed_killed_at, e) {
                summary
                    .feed_death_noticed_ms
                    .push((rel(out, &p.dir), at.duration_since(k).as_millis()));
            }
        }
        relay_exits.extend(exits.iter().take(relays_waited).map(|e| e.map(|(s, _)| s)));
    }
    let restarted_exit = match restarted {
        Some(_) => relay_exits.pop(),
        None => None,
    };
    if restarted.is_some() {
        // The first host's engines wait for a next relay after each: once the last
        // has ended, they are asked to stop (and write their summaries).
        std::thread::sleep(Duration::from_millis(500));
        for (_, _, p) in engines
            .iter_mut()
            .filter(|(i, name, _)| *i == 0 && name.starts_with("engine-"))
        {
            p.sup.signal(Signal::Int);
        }
    }
    let mut engine_exits = Vec::new();
    for (_, _, p) in engines.iter_mut() {
        engine_exits.push(wait_exit(p, 15.0, stop)?);
    }
    if stop.load(Ordering::Relaxed) {
        summary.interrupted_by = Some("SIGINT or SIGTERM".into());
        // Ended in order, each writing its summary: the feed, the relays, the engines.
        for p in std::iter::once(&mut feed)
            .chain(relays.iter_mut().map(|(_, p)| p))
            .chain(restarted.as_mut())
            .chain(engines.iter_mut().map(|(_, _, p)| p))
        {
            let _ = p.sup.terminate();
        }
    }

    // The rows.
    let problems = &mut summary.problems;
    let feed_summary: Option<FeedSummary> =
        crate::run::read_json(&feed.dir.join("feed_summary.json")).ok();
    let feed_published = feed_summary.as_ref().map(|f| f.published);
    match (&feed_summary, feed_killed_at) {
        (Some(f), None) => {
            if feed_exit.is_none_or(|s| !s.success()) {
                problems.push(format!(
                    "the feed ended with {}: {}",
                    exit_text(feed_exit),
                    last_line(&feed.stderr())
                ));
            }
            summary.rows.push(Row {
                host: "feed".into(),
                process: "feed".into(),
                published: f.published,
                ticks: f.net.as_ref().map_or(0, |n| n.stats.sent),
                end: format!("{:?}", f.end_reason),
                exit: exit_text(feed_exit),
                ..Row::default()
            })
        }
        (None, None) => problems.push(format!(
            "the feed wrote no summary ({}): {}",
            exit_text(feed_exit),
            last_line(&feed.stderr())
        )),
        (_, Some(_)) => summary.rows.push(Row {
            host: "feed".into(),
            process: "feed".into(),
            end: "killed".into(),
            exit: exit_text(feed_exit),
            ..Row::default()
        }),
    }
    let mut relay_rows =
        |host: &str, name: &str, p: &Proc, exit: Option<ExitStatus>, killed: bool| {
            let s: Option<RelaySummary> = crate::run::read_json(&p.dir.join(RELAY_SUMMARY)).ok();
            match s {
                Some(s) => {
                    let naks = s.driver_counters.get("NAKs sent").copied().unwrap_or(0);
                    for (j, sess) in s.sessions.iter().enumerate() {
                        if sess.unaccounted != 0 {
                            problems.push(format!(
                                "{host}/{name}: {} ticks unaccounted for",
                                sess.unaccounted
                            ));
                        }
                        if let (Some(fp), true) = (feed_published, sess.ended) {
                            if sess.published != fp {
                                problems.push(format!(
                                    "{host}/{name}: the feed published {fp}, the relay heard of {}",
                                    sess.published
                                ));
                            }
                        }
                        summary.rows.push(Row {
                            host: host.into(),
                            process: if s.sessions.len() > 1 {
                                format!("{name}#{}", j + 1)
                            } else {
                                name.into()
                            },
                            published: sess.published,
                            ticks: sess.relayed,
                            gaps: sess.gaps,
                            recovered: sess.recovered,
                            unrecovered: sess.unrecovered,
                            unaccounted: sess.unaccounted,
                            hop_ns: s.net_ns,
                            work_ns: s.relay_ns,
                            naks,
                            end: format!("{:?}", s.end_reason),
                            exit: exit_text(exit),
                            ..Row::default()
                        });
                    }
                    let expected = if feed_killed_at.is_some() {
                        EndReason::ProducerGone
                    } else {
                        EndReason::EndOfStream
                    };
                    if s.end_reason != expected && summary.interrupted_by.is_none() {
                        problems.push(format!(
                            "{host}/{name} ended with {:?}, expected {expected:?}",
                            s.end_reason
                        ));
                    }
                    if s.loop_allocs.calls() != 0 {
                        problems.push(format!(
                            "{host}/{name}: its receive loop allocated {} times",
                            s.loop_allocs.calls()
                        ));
                    }
                }
                None if killed => summary.rows.push(Row {
                    host: host.into(),
                    process: name.into(),
                    end: "killed".into(),
                    exit: exit_text(exit),
                    ..Row::default()
                }),
                None => problems.push(format!(
                    "{host}/{name} wrote no summary ({}): {}",
                    exit_text(exit),
                    last_line(&p.stderr())
                )),
            }
        };
    let mut exits = relay_exits.into_iter();
    for (i, (_, p)) in relays.iter().enumerate() {
        let host = &plan.hosts[i].name;
        if i == 0 && restarted.is_some() {
            relay_rows(host, "relay", p, killed_relay.flatten(), true);
            if let Some(r) = &restarted {
                relay_rows(host, "relay-2", r, restarted_exit.flatten(), false);
            }
        } else {
            relay_rows(host, "relay", p, exits.next().flatten(), false);
        }
    }
    for ((i, name, p), exit) in engines.iter().zip(engine_exits) {
        let host = &plan.hosts[*i].name;
        match crate::run::read_json::<EngineSummary>(&p.dir.join("engine_summary.json")) {
            Ok(e) => {
                let published: u64 = e.sessions.iter().map(|s| s.published).sum();
                let missed = e.missed_accounted();
                let unaccounted = e.unaccounted(published);
                if unaccounted != 0 {
                    summary.problems.push(format!(
                        "{host}/{name}: {unaccounted} ticks unaccounted for"
                    ));
                }
                // A direct engine hears the feed's death itself (exit 1, the feed
                // vanished); a ring's engine hears its relay end the ring.
                let direct = e.aeron.is_some();
                let feed_death =
                    direct && feed_killed_at.is_some() && e.end_reason == EndReason::ProducerGone;
                if exit.is_none_or(|s| !s.success())
                    && summary.interrupted_by.is_none()
                    && !feed_death
                {
                    summary.problems.push(format!(
                        "{host}/{name} ended with {}: {}",
                        exit_text(exit),
                        last_line(&p.stderr())
                    ));
                }
                if let (true, Some(fp), None) = (direct, feed_published, feed_killed_at) {
                    if published != fp {
                        summary.problems.push(format!(
                            "{host}/{name}: the feed published {fp}, the engine heard of {published}"
                        ));
                    }
                }
                // Per tick, nothing; waiting for a new feed between sessions (no ticks
                // to handle) allocates, so only a one-session run is held to it.
                if e.sessions.len() == 1 && e.hot_allocs.calls() != 0 {
                    summary.problems.push(format!(
                        "{host}/{name}: its hot thread allocated {} times after the warm-up",
                        e.hot_allocs.calls()
                    ));
                }
                let stage = |k: &str| e.latency_ns.get(k).copied().unwrap_or_default();
                let naks = e.aeron.as_ref().map_or(0, |a| {
                    a.driver_counters.get("NAKs sent").copied().unwrap_or(0)
                });
                summary.rows.push(Row {
                    host: host.clone(),
                    process: name.clone(),
                    published,
                    ticks: e.received,
                    gaps: e.gaps,
                    recovered: e.recovered,
                    unrecovered: missed - e.recovered,
                    unaccounted,
                    hop_ns: stage("hop"),
                    work_ns: stage("engine"),
                    e2e_ns: stage("e2e"),
                    naks,
                    end: format!("{:?}", e.end_reason),
                    exit: exit_text(exit),
                });
            }
            Err(err) => summary.problems.push(format!(
                "{host}/{name} wrote no summary ({}): {err:#}; {}",
                exit_text(exit),
                last_line(&p.stderr())
            )),
        }
    }
    if feed_killed_at.is_some() {
        let limit = PRODUCER_TIMEOUT_MS as u128 + 2000;
        let expected = relay_count + direct_count;
        if summary.feed_death_noticed_ms.len() != expected {
            summary.problems.push(format!(
                "{} of {relay_count} relays and {direct_count} direct engines ended after the feed's kill",
                summary.feed_death_noticed_ms.len()
            ));
        }
        for (who, ms) in &summary.feed_death_noticed_ms {
            if *ms > limit {
                summary.problems.push(format!("{who} ended {ms} ms after the feed's kill (producer timeout {PRODUCER_TIMEOUT_MS} ms)"));
            }
        }
    }
    Ok(summary)
}

/// One comparison of `lab cluster --repeat`: a variant engine against a baseline engine
/// of the same host, on one figure, over the repetitions.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PathComparison {
    /// The host.
    pub host: String,
    /// The baseline engine (`engine-1`: relay-fed, on the host's ring).
    pub baseline: String,
    /// The engine compared with it.
    pub variant: String,
    /// What the pair shows: the two paths, or the noise floor (two engines on one ring).
    pub what: String,
    /// The figure, lower is better: `e2e p50` or `e2e p99`.
    pub metric: String,
    /// The baseline's value per repetition, µs.
    pub baseline_us: Vec<f64>,
    /// The variant's value per repetition, µs.
    pub variant_us: Vec<f64>,
    /// Median of the variant over median of the baseline.
    pub ratio: f64,
    /// The bootstrap 95% interval of the ratio.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
    /// The median ratios of the odd and the even repetitions.
    pub halves: (f64, f64),
    /// The report's verdict (`better`, `worse`, `unstable`, `no detectable difference`).
    pub verdict: String,
}

/// `cluster_compare.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ClusterCompare {
    /// Repetitions compared.
    pub repetitions: usize,
    /// The rule, in words.
    pub rule: String,
    /// Every comparison.
    pub rows: Vec<PathComparison>,
}

/// One percentile of a stage.
type Pick = fn(&Percentiles) -> u64;

/// The direct engines of every host against its first relay-fed engine, and its second
/// relay-fed engine against the first (two engines on one ring: what the same path
/// differs from itself, the noise floor of the comparison), on e2e p50 and p99 over the
/// repetitions `runs`, by the report's rule ([`crate::report::verdict`]).
fn compare_paths(runs: &[ClusterSummary]) -> ClusterCompare {
    use crate::report::verdict;
    let rule = verdict::Rule::default();
    let mut pairs: Vec<(String, String, String, &str)> = Vec::new();
    if let Some(first) = runs.first() {
        for r in &first.rows {
            if r.process.starts_with(DIRECT) {
                pairs.push((
                    r.host.clone(),
                    "engine-1".into(),
                    r.process.clone(),
                    "no relay, no ring (the stream itself) vs relay and ring",
                ));
            } else if r.process.starts_with("engine-") && r.process != "engine-1" {
                pairs.push((
                    r.host.clone(),
                    "engine-1".into(),
                    r.process.clone(),
                    "noise floor: two engines on one ring",
                ));
            }
        }
    }
    let values = |host: &str, process: &str, pick: Pick| -> Vec<f64> {
        runs.iter()
            .filter_map(|run| {
                run.rows
                    .iter()
                    .find(|r| r.host == host && r.process == process && r.e2e_ns.count > 0)
                    .map(|r| pick(&r.e2e_ns) as f64 / 1e3)
            })
            .collect()
    };
    let metrics: [(&str, Pick); 2] = [("e2e p50", |p| p.p50), ("e2e p99", |p| p.p99)];
    let mut rows = Vec::new();
    for (host, baseline, variant, what) in &pairs {
        for (metric, pick) in metrics {
            let (b, v) = (values(host, baseline, pick), values(host, variant, pick));
            let c = verdict::compare(&format!("{host} {variant} {metric}"), &b, &v, &rule);
            rows.push(PathComparison {
                host: host.clone(),
                baseline: baseline.clone(),
                variant: variant.clone(),
                what: (*what).into(),
                metric: metric.into(),
                baseline_us: b,
                variant_us: v,
                ratio: c.ratio,
                lo: c.lo,
                hi: c.hi,
                halves: c.halves,
                verdict: c.verdict.word().into(),
            });
        }
    }
    ClusterCompare {
        repetitions: runs.len(),
        rule: format!(
            "ratio of medians over the repetitions, seeded bootstrap {:.0}% interval, Mann-Whitney U, minimum effect {:.0}%, split halves (lab/src/report/verdict.rs)",
            rule.confidence * 100.0,
            rule.min_effect * 100.0
        ),
        rows,
    }
}

/// The comparison table `lab cluster --repeat` prints.
pub fn format_compare(c: &ClusterCompare, out: &Path) -> String {
    let mut w = String::new();
    let _ = writeln!(
        w,
        "== lab cluster: {} repetitions, {} ==",
        c.repetitions,
        out.display()
    );
    let _ = writeln!(w, "{}", c.rule);
    let _ = writeln!(
        w,
        "{:<6} {:<21} {:<8} {:>13} {:>13} {:>22} {:>13}  verdict",
        "host",
        "variant vs baseline",
        "figure",
        "baseline µs",
        "variant µs",
        "ratio [95% interval]",
        "halves"
    );
    for r in &c.rows {
        let _ = writeln!(
            w,
            "{:<6} {:<21} {:<8} {:>13.1} {:>13.1} {:>22} {:>13}  {} ({})",
            r.host,
            format!("{} vs {}", r.variant, r.baseline),
            r.metric,
            crate::report::verdict::median(&r.baseline_us),
            crate::report::verdict::median(&r.variant_us),
            format!("{:.2} [{:.2}, {:.2}]", r.ratio, r.lo, r.hi),
            format!("{:.2}/{:.2}", r.halves.0, r.halves.1),
            r.verdict,
            r.what
        );
    }
    let _ = writeln!(
        w,
        "medians over the repetitions; each repetition's own table is in run-K/; one machine, one clock"
    );
    let _ = writeln!(w, "compare     {}", out.join(CLUSTER_COMPARE).display());
    w
}

/// `dir` relative to `out`, for the table.
fn rel(out: &Path, dir: &Path) -> String {
    dir.strip_prefix(out).unwrap_or(dir).display().to_string()
}

/// The last non-empty line of a log, for messages.
fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_string()
}

/// The table `lab cluster` prints.
pub fn format_table(s: &ClusterSummary, out: &Path) -> String {
    let mut w = String::new();
    let _ = writeln!(w, "== lab cluster: {} ==", out.display());
    let _ = writeln!(
        w,
        "{} s, loss {}{}",
        s.duration_s,
        s.loss_rate,
        if s.faults.is_empty() {
            String::new()
        } else {
            format!(", faults: {}", s.faults.join("; "))
        }
    );
    let _ = writeln!(
        w,
        "{:<6} {:<10} {:>9} {:>9} {:>5} {:>9} {:>9} {:>6} {:>17} {:>17} {:>17} {:>6}  end",
        "host",
        "process",
        "published",
        "ticks",
        "gaps",
        "recovered",
        "unrecov",
        "unacc",
        "hop p50/p99 µs",
        "work p50/p99 µs",
        "e2e p50/p99 µs",
        "NAKs"
    );
    let us = |p: &Percentiles| {
        if p.count == 0 {
            "-".to_string()
        } else {
            format!("{:.1}/{:.1}", p.p50 as f64 / 1e3, p.p99 as f64 / 1e3)
        }
    };
    for r in &s.rows {
        let _ = writeln!(
            w,
            "{:<6} {:<10} {:>9} {:>9} {:>5} {:>9} {:>9} {:>6} {:>17} {:>17} {:>17} {:>6}  {} ({})",
            r.host,
            r.process,
            r.published,
            r.ticks,
            r.gaps,
            r.recovered,
            r.unrecovered,
            r.unaccounted,
            us(&r.hop_ns),
            us(&r.work_ns),
            us(&r.e2e_ns),
            r.naks,
            r.end,
            r.exit
        );
    }
    let _ = writeln!(
        w,
        "hop: relays and direct engines feed publish → receive (the network), engines their host's ring; work: relays receive → ring, engines per tick; e2e: the feed's schedule → the engine done, comparable across both paths; one TSC on one machine (real hosts need PTP for one-way figures)"
    );
    for (who, ms) in &s.feed_death_noticed_ms {
        let _ = writeln!(w, "feed's death noticed by {who} after {ms} ms");
    }
    if s.left_after_teardown.is_empty() {
        let _ = writeln!(w, "teardown: no namespace, process or file left");
    }
    for p in &s.problems {
        let _ = writeln!(w, "PROBLEM: {p}");
    }
    let _ = writeln!(w, "summary     {}", out.join(CLUSTER_SUMMARY).display());
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ClusterArgs {
        ClusterArgs {
            config: PathBuf::from("../configs/cluster.toml"),
            duration: None,
            out: None,
            bin_dir: None,
            loss: Some(0.05),
            kill_relay: Some(1.0),
            kill_feed: None,
            repeat: None,
        }
    }

    /// The shipped cluster file: one feed host and two engine hosts, every process's
    /// derived configuration valid, each host on its own ring, interface and driver.
    #[test]
    fn the_shipped_cluster_file_derives_valid_configurations() {
        let a = args();
        let plan = load(&a.config, &a).unwrap();
        assert_eq!(plan.feed_ip(), Ipv4Addr::new(10, 77, 0, 1));
        let hosts: Vec<(&str, Ipv4Addr, u32, u32)> = plan
            .hosts
            .iter()
            .map(|h| (h.name.as_str(), h.ip, h.engines, h.direct_engines))
            .collect();
        assert_eq!(
            hosts,
            [
                ("east", Ipv4Addr::new(10, 77, 0, 2), 2, 0),
                ("west", Ipv4Addr::new(10, 77, 0, 3), 1, 1)
            ]
        );
        assert_eq!(plan.loss_rate, 0.05, "--loss wins over the file");
        let shm = tempfile::tempdir().unwrap();
        let c = derive(&plan, shm.path(), true).unwrap();
        let cores = common::cores::allowed_cores();
        let parse =
            |t: &str| Config::parse(&t.replace("{n}", "1"), &plan.base_path, &cores).unwrap();
        let feed = parse(&c.feed);
        let service = feed.feed.service.as_ref().unwrap();
        assert_eq!(service.listen, Some("10.77.0.1:7070".parse().unwrap()));
        assert_eq!(
            feed.net.as_ref().unwrap().interface.as_deref(),
            Some("10.77.0.1")
        );
        for (i, h) in c.hosts.iter().enumerate() {
            let (relay, engine) = (&h.relay, &h.engine);
            let (r, e) = (parse(relay), parse(engine));
            let d = parse(&h.direct);
            assert_eq!(d.engine.source, common::config::EngineSource::Aeron);
            assert_eq!(d.net.as_ref().unwrap().driver.loss_rate, 0.05);
            assert!(
                h.direct.contains("-direct-aeron-{n}"),
                "a driver per engine"
            );
            assert_eq!(r.ring.path, e.ring.path, "the relay's ring is its engines'");
            let n = r.net.as_ref().unwrap();
            assert_eq!(n.history, Some("10.77.0.1:7070".parse().unwrap()));
            assert_eq!(n.driver.loss_rate, 0.05);
            assert!(
                relay.contains("-aeron-{n}"),
                "a driver folder per incarnation"
            );
            // Only the first host's engines wait through their relay's restart.
            assert_eq!(
                e.engine.on_producer_gone == common::config::OnProducerGone::Wait,
                i == 0
            );
        }
    }

    /// `--repeat`'s comparison: a direct engine clearly faster than the relay-fed one in
    /// every repetition is better; two engines on one ring drawn alike are not told apart.
    #[test]
    fn repetitions_compare_the_paths_and_the_noise_floor() {
        let row = |host: &str, process: &str, p50: u64| Row {
            host: host.into(),
            process: process.into(),
            e2e_ns: Percentiles {
                count: 1000,
                p50,
                p99: p50 * 10,
                ..Percentiles::default()
            },
            ..Row::default()
        };
        let runs: Vec<ClusterSummary> = (0..8u64)
            .map(|k| ClusterSummary {
                rows: vec![
                    row("feed", "feed", 0),
                    row("east", "relay", 0),
                    row("east", "engine-1", 100_000 + (k * 7919) % 5_000),
                    row("east", "engine-2", 100_000 + (k * 104_729) % 5_000),
                    row("east", "direct-1", 50_000 + (k * 15_485) % 2_000),
                ],
                ..ClusterSummary::default()
            })
            .collect();
        let c = compare_paths(&runs);
        assert_eq!(c.repetitions, 8);
        let found: Vec<(&str, &str, &str)> = c
            .rows
            .iter()
            .map(|r| (r.variant.as_str(), r.metric.as_str(), r.verdict.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("engine-2", "e2e p50", "no detectable difference"),
                ("engine-2", "e2e p99", "no detectable difference"),
                ("direct-1", "e2e p50", "better"),
                ("direct-1", "e2e p99", "better"),
            ]
        );
        let direct = &c.rows[2];
        assert_eq!(direct.baseline, "engine-1");
        assert_eq!(direct.baseline_us.len(), 8);
        assert!(direct.hi < 1.0 && direct.ratio < 0.6, "{direct:?}");
        let table = format_compare(&c, Path::new("/tmp/x"));
        assert!(table.contains("direct-1 vs engine-1"), "{table}");
    }
}
