//! The feed → Aeron → relay → ring → engine path end to end, on this host (feature
//! `aeron`): a feed publishing over UDP on the loopback (and over `aeron:ipc`), a relay
//! republishing into its own ring, an engine reading that ring; and the feed → Aeron →
//! engine path with no relay (`engine.source = "aeron"`). Every process is a real binary
//! with its own embedded media driver (over IPC, one driver for the host).
//!
//! Needs the `feed` and `engine` binaries built with the feature beside the relay's:
//! `cargo build -p feed -p engine -p net --features feed/aeron,net/aeron,engine/aeron --bins`.
#![cfg(feature = "aeron")]

use common::config::edit::Edit;
use common::config::DEFAULT_TOML;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Held by each end-to-end test while it runs.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A binary of another package of the workspace, beside the relay's.
fn sibling(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_relay"))
        .parent()
        .unwrap()
        .join(name);
    assert!(
        p.is_file(),
        "{} is missing: build it with `cargo build -p feed -p engine -p net --features feed/aeron,net/aeron,engine/aeron --bins`",
        p.display()
    );
    p
}

/// A free UDP port on the loopback.
fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The default configuration for 2 s with `ring` and, when given, `[net]` (`channel`
/// is `udp:PORT` or `ipc`) with the driver folder `driver` (`embedded`: launched by the
/// process, else another process's).
fn config(dir: &Path, name: &str, ring: &Path, net: Option<(&str, &Path, bool)>) -> PathBuf {
    config_with(dir, name, ring, net, 0.0)
}

/// [`config`] with the driver dropping `loss` of the incoming data frames.
fn config_with(
    dir: &Path,
    name: &str,
    ring: &Path,
    net: Option<(&str, &Path, bool)>,
    loss: f64,
) -> PathBuf {
    let mut e = Edit::new(DEFAULT_TOML)
        .set("duration_s", 2.0)
        .set("warmup_s", 0.5)
        .set("ring.path", ring)
        .set("ring.capacity", 1 << 16)
        .set("engine.wait", "block")
        // Three processes and their drivers share two cores here: a stall of a second
        // is not a dead feed.
        .set("engine.producer_timeout_ms", 5000)
        // The engine stays for the relay's end of stream, however long retransmissions
        // under loss take (the relay ends its ring when the feed's end arrives).
        .set("engine.grace_s", 30.0)
        .set("feed.wait", "block");
    if let Some((channel, driver, embedded)) = net {
        e = match channel.strip_prefix("udp:") {
            Some(port) => e
                .set("net.transport", "udp")
                .set("net.endpoint", format!("127.0.0.1:{port}")),
            None => e.set("net.transport", "ipc"),
        }
        .set("net.driver.dir", driver)
        .set("net.driver.embedded", embedded)
        .set("net.connect_timeout_ms", 5000);
        if loss > 0.0 {
            e = e.set("net.driver.loss_rate", loss);
        }
    }
    let text = e.finish().unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn start(bin: &Path, cfg: &Path, out: &Path) -> Child {
    Command::new(bin)
        .arg("--config")
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` (at most 60 s) and returns its exit code and stderr.
fn finish(mut child: Child, what: &str) -> (i32, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code().unwrap_or(-1), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for the three processes of a path, each to exit 0; their summaries (in `d`'s
/// `feed/`, `relay/`, `engine/`) and the relay's stderr.
fn finish_path(
    d: &Path,
    feed: Child,
    relay: Child,
    engine: Child,
) -> (Value, Value, Value, String) {
    let (feed_code, feed_err) = finish(feed, "feed");
    assert_eq!(feed_code, 0, "feed: {feed_err}");
    let (relay_code, relay_err) = finish(relay, "relay");
    assert_eq!(relay_code, 0, "relay: {relay_err}");
    let (engine_code, engine_err) = finish(engine, "engine");
    assert_eq!(engine_code, 0, "engine: {engine_err}");
    (
        json(&d.join("feed/feed_summary.json")),
        json(&d.join("relay/relay_summary.json")),
        json(&d.join("engine/engine_summary.json")),
        relay_err,
    )
}

/// The ticks a feed's summary says it published (more than a thousand) and the offers
/// its publication refused, whatever the cause.
fn published_and_refused(feed: &Value) -> (u64, u64) {
    let published = feed["published"].as_u64().unwrap();
    assert!(published > 1000, "{feed}");
    let net = &feed["net"]["stats"];
    let refused = ["not_connected", "back_pressured", "admin_action", "failed"]
        .iter()
        .map(|k| net[k].as_u64().unwrap())
        .sum::<u64>();
    (published, refused)
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Feed → relay → engine over `channel`, the relay's driver dropping `loss` of the data
/// frames: every tick the feed published is relayed or counted missing, and the engine
/// accounts for every tick of the relay's ring. Returns the relay's summary.
fn path_over(channel: &str, loss: f64) -> Value {
    // One path at a time: each is three processes with their media drivers.
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let feed_ring = d.join("feed.ring");
    let host_ring = d.join("host.ring");
    // Over UDP each process has its own driver, as on two hosts; over IPC the feed uses
    // the relay's (one host, one driver: IPC is shared memory within a driver).
    let ipc = channel == "ipc";
    let relay_driver = d.join("aeron-relay");
    let feed_driver = if ipc {
        relay_driver.clone()
    } else {
        d.join("aeron-feed")
    };
    let feed_cfg_of = || {
        config(
            d,
            "feed.toml",
            &feed_ring,
            Some((channel, &feed_driver, !ipc)),
        )
    };
    let relay_cfg = config_with(
        d,
        "relay.toml",
        &host_ring,
        Some((channel, &relay_driver, true)),
        loss,
    );
    let engine_cfg = config(d, "engine.toml", &host_ring, None);
    let mut relay = start(
        Path::new(env!("CARGO_BIN_EXE_relay")),
        &relay_cfg,
        &d.join("relay"),
    );
    // The relay's ring exists before the engine looks for it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !host_ring.exists() {
        if Instant::now() > deadline || relay.try_wait().unwrap().is_some() {
            let _ = relay.kill();
            let (code, err) = finish(relay, "relay");
            panic!("the relay made no ring (exit {code}): {err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let engine = start(&sibling("engine"), &engine_cfg, &d.join("engine"));
    std::thread::sleep(Duration::from_millis(300));
    // Written now: a feed on the relay's driver needs its folder to exist.
    let feed_cfg = feed_cfg_of();
    let feed = start(&sibling("feed"), &feed_cfg, &d.join("feed"));
    let (feed, relay, engine, _) = finish_path(d, feed, relay, engine);
    let (published, refused) = published_and_refused(&feed);
    let net = &feed["net"]["stats"];
    assert_eq!(net["sent"].as_u64().unwrap() + refused, published, "{net}");
    // The feed stayed until the relay had consumed its whole stream.
    assert_eq!(net["unconsumed_at_end"].as_u64().unwrap(), 0, "{net}");

    let sessions = relay["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{relay}");
    let s = &sessions[0];
    assert!(s["ended"].as_bool().unwrap(), "{relay}");
    assert_eq!(s["published"].as_u64().unwrap(), published, "{relay}");
    assert_eq!(s["unaccounted"].as_i64().unwrap(), 0, "{relay}");
    let relayed = s["relayed"].as_u64().unwrap();
    let missing = s["missing"].as_u64().unwrap();
    assert_eq!(relayed + missing, published, "{relay}");
    // What the feed could not offer is what the relay misses; on the loopback Aeron
    // loses nothing else. The feed waited for the relay: none refused as unconnected.
    assert_eq!(missing, refused, "{relay}\n{net}");
    assert_eq!(net["not_connected"].as_u64().unwrap(), 0, "{net}");
    assert_eq!(relay["foreign"].as_u64().unwrap(), 0);
    assert_eq!(relay["end_reason"], "end_of_stream", "{relay}");
    assert!(relay["net_ns"]["count"].as_u64().unwrap() > 0, "{relay}");
    // The receive loop allocates nothing per tick.
    assert_eq!(
        relay["loop_allocs"]["allocs"].as_u64().unwrap(),
        0,
        "{relay}"
    );

    // The engine reads the relay's ring like a feed's: the ring's producer is the
    // relay, which published every tick it relayed, and the engine received each, or
    // counted it missed or unread.
    let sessions = engine["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{engine}");
    let e = &sessions[0];
    assert_eq!(e["published"].as_u64().unwrap(), relayed, "{engine}");
    let seen = ["received", "missed", "unread"]
        .iter()
        .map(|k| e[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(seen, relayed, "{engine}");
    assert!(e["received"].as_u64().unwrap() > 0, "{engine}");
    for dir in ["aeron-feed", "aeron-relay"] {
        assert!(!d.join(dir).exists(), "{dir} left behind");
    }
    assert!(!feed_ring.exists() && !host_ring.exists());
    relay
}

#[test]
fn feed_to_engine_over_udp_through_the_relay() {
    path_over(&format!("udp:{}", free_port()), 0.0);
}

#[test]
fn feed_to_engine_over_ipc_through_the_relay() {
    path_over("ipc", 0.0);
}

/// With Aeron's loss generator dropping 1% and then 10% of the data frames at the
/// relay's driver: Aeron asks for every lost frame again (NAKs) and gets it, so the
/// relay misses only what the feed could not offer, and every tick is accounted for.
#[test]
fn lost_frames_are_recovered_by_aeron_and_counted() {
    for loss in [0.01, 0.1] {
        let relay = path_over(&format!("udp:{}", free_port()), loss);
        let naks = relay["driver_counters"]["NAKs sent"].as_i64().unwrap();
        assert!(naks > 0, "loss {loss}: no NAKs sent: {relay}");
    }
}

/// Bad input to the relay: exit 2 and one located message; nothing left behind.
#[test]
fn bad_relay_input_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ring = d.join("host.ring");
    // No [net]: nothing to subscribe to.
    let no_net = config(d, "no-net.toml", &ring, None);
    // A driver folder that exists and is not one of the project's.
    let foreign = d.join("someone-elses");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("data"), "keep").unwrap();
    let taken = config(d, "taken.toml", &ring, Some(("udp:40999", &foreign, true)));
    for (cfg, want) in [
        (&no_net, "net: the relay needs a [net] section"),
        (&taken, "net.driver: "),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_relay"))
            .arg("--config")
            .arg(cfg)
            .arg("--out")
            .arg(d.join("out"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "one message: {err}");
        assert!(errors[0].contains(want), "{err}");
        assert!(!ring.exists());
    }
    assert!(
        std::fs::read_to_string(foreign.join("data")).unwrap() == "keep",
        "the foreign folder was touched"
    );
    let err = String::from_utf8_lossy(
        &Command::new(env!("CARGO_BIN_EXE_relay"))
            .arg("--config")
            .arg(&taken)
            .output()
            .unwrap()
            .stderr,
    )
    .to_string();
    assert!(
        err.contains("is not a media driver folder of this project"),
        "{err}"
    );
}

/// A feed killed mid-stream: the relay notices its silence within
/// `engine.producer_timeout_ms`, ends its ring (so the engine ends too, in order), and
/// still accounts for every sequence number the feed named before it died.
#[test]
fn a_killed_feed_is_noticed_and_accounted_for() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let feed_ring = d.join("feed.ring");
    let host_ring = d.join("host.ring");
    let channel = format!("udp:{}", free_port());
    let long = |name: &str, ring: &Path, driver: &str| {
        let p = config(d, name, ring, Some((&channel, &d.join(driver), true)));
        let text = Edit::new(&std::fs::read_to_string(&p).unwrap())
            .set("duration_s", 30.0)
            .set("engine.producer_timeout_ms", 1000)
            .finish()
            .unwrap();
        std::fs::write(&p, text).unwrap();
        p
    };
    let relay_cfg = long("relay.toml", &host_ring, "aeron-relay");
    let feed_cfg = long("feed.toml", &feed_ring, "aeron-feed");
    let engine_cfg = config(d, "engine.toml", &host_ring, None);
    let text = Edit::new(&std::fs::read_to_string(&engine_cfg).unwrap())
        .set("duration_s", 30.0)
        .set("engine.producer_timeout_ms", 1000)
        .finish()
        .unwrap();
    std::fs::write(&engine_cfg, text).unwrap();
    let relay = start(
        Path::new(env!("CARGO_BIN_EXE_relay")),
        &relay_cfg,
        &d.join("relay"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !host_ring.exists() {
        assert!(Instant::now() < deadline, "the relay made no ring");
        std::thread::sleep(Duration::from_millis(20));
    }
    let engine = start(&sibling("engine"), &engine_cfg, &d.join("engine"));
    let mut feed = start(&sibling("feed"), &feed_cfg, &d.join("feed"));
    std::thread::sleep(Duration::from_secs(2));
    feed.kill().unwrap();
    let killed = Instant::now();
    feed.wait().unwrap();
    let (relay_code, relay_err) = finish(relay, "relay");
    let noticed = killed.elapsed();
    assert_eq!(relay_code, 0, "relay: {relay_err}");
    // The feed's silence is noticed after the producer timeout, not much later (the
    // relay's heartbeat loop looks once a millisecond).
    assert!(
        noticed < Duration::from_secs(10),
        "noticed after {noticed:?}"
    );
    let (engine_code, engine_err) = finish(engine, "engine");
    assert_eq!(engine_code, 0, "engine: {engine_err}");
    let relay = json(&d.join("relay/relay_summary.json"));
    assert_eq!(relay["end_reason"], "producer_gone", "{relay}");
    let s = &relay["sessions"][0];
    assert!(!s["ended"].as_bool().unwrap(), "{relay}");
    assert!(s["published"].as_u64().unwrap() > 0, "{relay}");
    assert_eq!(s["unaccounted"].as_i64().unwrap(), 0, "{relay}");
    assert_eq!(
        s["relayed"].as_u64().unwrap() + s["missing"].as_u64().unwrap(),
        s["published"].as_u64().unwrap(),
        "{relay}"
    );
    // The relay ended its ring in order: the engine read every tick it relayed.
    let e = &json(&d.join("engine/engine_summary.json"))["sessions"][0];
    let seen = ["received", "missed", "unread"]
        .iter()
        .map(|k| e[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(seen, s["relayed"].as_u64().unwrap(), "{e}");
    assert!(!d.join("aeron-relay").exists() && !host_ring.exists());
}

/// A free TCP port on the loopback.
fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `path` with `edit` applied to its text.
fn edit_file(path: &Path, edit: impl FnOnce(Edit) -> Edit) {
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, edit(Edit::new(&text)).finish().unwrap()).unwrap();
}

/// A relay started a second after the feed (as a restarted one would be): the ticks it
/// never heard are filled from the feed's history service over TCP (`net.history`) and
/// put into the ring before the live ones; every sequence number is accounted for and
/// the receive loop allocates nothing while it holds the live ticks.
#[test]
fn a_relay_started_mid_stream_catches_up_from_the_history_service_over_tcp() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (feed_ring, host_ring) = (d.join("feed.ring"), d.join("host.ring"));
    let channel = format!("udp:{}", free_port());
    let service = format!("127.0.0.1:{}", free_tcp_port());
    let feed_cfg = config(
        d,
        "feed.toml",
        &feed_ring,
        Some((&channel, &d.join("aeron-feed"), true)),
    );
    edit_file(&feed_cfg, |e| {
        e.set("duration_s", 3.0)
            // No waiting for a subscriber: the relay comes later.
            .set("net.connect_timeout_ms", 0)
            .set("feed.service.socket", d.join("feed.sock"))
            .set("feed.service.listen", &service)
    });
    let relay_cfg = config(
        d,
        "relay.toml",
        &host_ring,
        Some((&channel, &d.join("aeron-relay"), true)),
    );
    edit_file(&relay_cfg, |e| e.set("net.history", &service));
    let engine_cfg = config(d, "engine.toml", &host_ring, None);
    let feed = start(&sibling("feed"), &feed_cfg, &d.join("feed"));
    std::thread::sleep(Duration::from_millis(1000));
    let relay = start(
        Path::new(env!("CARGO_BIN_EXE_relay")),
        &relay_cfg,
        &d.join("relay"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !host_ring.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let engine = start(&sibling("engine"), &engine_cfg, &d.join("engine"));
    let (feed, relay, engine, relay_err) = finish_path(d, feed, relay, engine);
    let published = feed["published"].as_u64().unwrap();
    let s = &relay["sessions"][0];
    assert_eq!(relay["sessions"].as_array().unwrap().len(), 1, "{relay}");
    assert_eq!(s["published"].as_u64().unwrap(), published, "{relay}");
    let (relayed, recovered) = (
        s["relayed"].as_u64().unwrap(),
        s["recovered"].as_u64().unwrap(),
    );
    // A second of the stream at about 100,000 ticks/s came before the relay.
    assert!(recovered > 10_000, "{relay}");
    assert_eq!(
        s["unrecovered"].as_u64().unwrap(),
        0,
        "{relay}\n{relay_err}"
    );
    assert_eq!(relayed + recovered, published, "{relay}");
    assert_eq!(s["unaccounted"].as_i64().unwrap(), 0, "{relay}");
    assert_eq!(relay["history"].as_str(), Some(service.as_str()), "{relay}");
    let rec = &relay["recovery"];
    assert!(rec["requests"].as_u64().unwrap() >= 1, "{relay}");
    assert_eq!(rec["recovered"].as_u64().unwrap(), recovered, "{relay}");
    assert_eq!(
        relay["loop_allocs"]["allocs"].as_u64().unwrap(),
        0,
        "{relay}"
    );
    // The engine read a ring of the whole stream, in order: the relay's count.
    let e = &engine["sessions"][0];
    assert_eq!(e["published"].as_u64().unwrap(), published, "{engine}");
    let seen = ["received", "missed", "unread"]
        .iter()
        .map(|k| e[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(seen, published, "{engine}");
    // The feed's service answered over TCP.
    assert_eq!(
        feed["service"]["listen"].as_str(),
        Some(service.as_str()),
        "{feed}"
    );
    assert!(feed["service"]["requests"].as_u64().unwrap() >= 1, "{feed}");
}

/// Feed → engine over `channel` with no relay (`engine.source = "aeron"`), the
/// engine's driver dropping `loss` of the data frames (over UDP; over IPC the engine
/// uses the feed's driver): the engine accounts for every tick the feed published,
/// allocates nothing on its hot thread after the warm-up, and reports the stream.
/// Returns the engine's summary.
fn direct_over(channel: &str, loss: f64) -> Value {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ipc = channel == "ipc";
    let feed_driver = d.join("aeron-feed");
    let engine_driver = if ipc {
        feed_driver.clone()
    } else {
        d.join("aeron-engine")
    };
    let feed_cfg = config(
        d,
        "feed.toml",
        &d.join("feed.ring"),
        Some((channel, &feed_driver, true)),
    );
    let engine_cfg = config_with(
        d,
        "engine.toml",
        &d.join("unused.ring"),
        Some((channel, &engine_driver, !ipc)),
        loss,
    );
    edit_file(&engine_cfg, |e| e.set("engine.source", "aeron"));
    if ipc {
        // The feed is there first: the engine warms from its history service over TCP,
        // as an engine on another host would.
        let service = format!("127.0.0.1:{}", free_tcp_port());
        edit_file(&feed_cfg, |e| {
            e.set("feed.service.socket", d.join("feed.sock"))
                .set("feed.service.listen", &service)
        });
        edit_file(&engine_cfg, |e| {
            e.set("engine.history_service", format!("tcp://{service}"))
        });
    }
    let (feed, engine) = if ipc {
        // The engine is a client of the feed's driver: the feed first.
        let mut feed = start(&sibling("feed"), &feed_cfg, &d.join("feed"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !feed_driver.join("cnc.dat").exists() {
            if Instant::now() > deadline || feed.try_wait().unwrap().is_some() {
                let _ = feed.kill();
                let (code, err) = finish(feed, "feed");
                panic!("the feed started no driver (exit {code}): {err}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (
            feed,
            start(&sibling("engine"), &engine_cfg, &d.join("engine")),
        )
    } else {
        let engine = start(&sibling("engine"), &engine_cfg, &d.join("engine"));
        std::thread::sleep(Duration::from_millis(300));
        (start(&sibling("feed"), &feed_cfg, &d.join("feed")), engine)
    };
    let (feed_code, feed_err) = finish(feed, "feed");
    assert_eq!(feed_code, 0, "feed: {feed_err}");
    let (engine_code, engine_err) = finish(engine, "engine");
    assert_eq!(engine_code, 0, "engine: {engine_err}");
    let feed = json(&d.join("feed/feed_summary.json"));
    let engine = json(&d.join("engine/engine_summary.json"));
    let (published, refused) = published_and_refused(&feed);
    let net = &feed["net"]["stats"];
    assert_eq!(engine["end_reason"], "end_of_stream", "{engine}");
    let sessions = engine["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{engine}");
    let s = &sessions[0];
    let a = &engine["aeron"];
    assert_eq!(a["runs"].as_u64().unwrap(), 1, "{a}");
    assert_eq!(a["foreign"].as_u64().unwrap(), 0, "{a}");
    // Joined at the feed's first heartbeat, before its first tick (the feed waited for
    // the engine to connect): every tick the feed published is this session's.
    assert_eq!(a["before_join"].as_u64().unwrap(), 0, "{a}");
    assert_eq!(s["published"].as_u64().unwrap(), published, "{engine}");
    assert_eq!(
        s["producer_pid"].as_u64().unwrap(),
        0,
        "the stream carries no pid"
    );
    let seen = ["received", "missed", "unread"]
        .iter()
        .map(|k| s[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(seen, published, "{engine}");
    // What the engine missed is what the feed could not offer: Aeron recovered the rest.
    assert_eq!(s["missed"].as_u64().unwrap(), refused, "{engine}\n{net}");
    assert_eq!(s["unread"].as_u64().unwrap(), 0, "{engine}");
    assert!(engine["measured_ticks"].as_u64().unwrap() > 0, "{engine}");
    assert_eq!(
        engine["hot_allocs"]["allocs"].as_u64().unwrap(),
        0,
        "the hot thread allocated: {engine}"
    );
    for dir in ["aeron-feed", "aeron-engine"] {
        assert!(!d.join(dir).exists(), "{dir} left behind");
    }
    engine
}

#[test]
fn an_engine_reads_the_feed_over_udp_with_no_relay() {
    let engine = direct_over(&format!("udp:{}", free_port()), 0.0);
    // Its own driver: its counters are in the summary.
    assert!(
        engine["aeron"]["driver_counters"]["Bytes received"]
            .as_i64()
            .unwrap()
            > 0,
        "{engine}"
    );
}

#[test]
fn an_engine_reads_the_feed_over_ipc_on_the_feeds_driver() {
    let engine = direct_over("ipc", 0.0);
    // It warmed from the feed's history service over TCP.
    let warm = &engine["warm"];
    assert_eq!(warm["error"], Value::Null, "{warm}");
    assert_eq!(warm["warmups"], 1, "{warm}");
    // Another process's driver: no counters of its own.
    assert!(
        engine["aeron"]["driver_counters"]
            .as_object()
            .unwrap()
            .is_empty(),
        "{engine}"
    );
}

/// 10% of the data frames dropped at the engine's driver: Aeron asks for each again
/// and gets it, and the engine misses nothing the feed sent.
#[test]
fn an_engine_reading_the_stream_itself_has_aeron_recover_lost_frames() {
    let engine = direct_over(&format!("udp:{}", free_port()), 0.1);
    let naks = engine["aeron"]["driver_counters"]["NAKs sent"]
        .as_i64()
        .unwrap();
    assert!(naks > 0, "no NAKs sent: {engine}");
}
