//! Producer processes for the `*_processes` rows: `lab` re-executes itself as the hidden
//! `lab bench-producer`, which creates or opens the transport, pins itself to the
//! sending core, and then follows a small protocol over its standard streams:
//!
//! 1. it waits for [`START_LINE`] on stdin (the consumer is ready and polling);
//! 2. it sends its ticks, spaced (latency) or flat out (throughput);
//! 3. it prints `published N undelivered K` on stdout;
//! 4. it waits for stdin to close (the consumer has everything), cleans up and exits.
//!
//! The consumer side is [`ProducerProcess`]: the child is supervised (terminated and
//! reaped on every path), and a reader thread turns step 3 into a flag the consumer
//! can poll to know that nothing more is coming.
//!
//! This module knows no transport: each transport's producer side calls the steps
//! below ([`wait_for_start`], [`send_all`], [`report_and_wait`]), and
//! [`super::producer`] picks the transport.

use super::harness::{produce, Pace, Setup};
use crate::child::Supervised;
use crate::cli::ProducerArgs;
use anyhow::{bail, Context, Result};
use common::clock::Clock;
use common::transport::Sink;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Line the consumer sends the producer process once it polls the transport.
pub const START_LINE: &str = "start\n";
/// How long the consumer waits for the producer process to set up its transport, and
/// for it to exit at the end.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Step 1: waits for the consumer's start line.
pub fn wait_for_start() -> Result<()> {
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if !matches!(read, Ok(n) if n > 0 && line == START_LINE) {
        bail!("no start signal from the consumer");
    }
    Ok(())
}

/// Step 2: sends what `args` asks for; returns the undelivered count.
pub fn send_all<S: Sink>(sink: &mut S, args: &ProducerArgs, clock: &Clock) -> u64 {
    let pace = match (args.flat, args.rate) {
        (_, Some(rate)) => Pace::Rate(rate),
        (true, None) => Pace::Flat,
        (false, None) => Pace::Spaced,
    };
    produce(
        sink,
        clock,
        args.count,
        pace,
        clock.raw_from_ns(args.spacing_ns),
    )
}

/// Steps 3 and 4: reports, then waits until the consumer closes stdin.
pub fn report_and_wait(published: u64, undelivered: u64) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "published {published} undelivered {undelivered}")
        .and_then(|()| out.flush())
        .context("cannot report to the consumer")?;
    let mut rest = Vec::new();
    let _ = std::io::stdin().lock().read_to_end(&mut rest);
    Ok(())
}

/// A running `lab bench-producer`, seen from the consumer.
pub struct ProducerProcess {
    child: Supervised,
    stdin: Option<ChildStdin>,
    reader: Option<JoinHandle<Option<u64>>>,
    #[cfg_attr(not(feature = "peers"), allow(dead_code))]
    done: Arc<AtomicBool>,
}

impl ProducerProcess {
    /// Starts `lab bench-producer --transport T --name NAME` sending `count` ticks on
    /// the setup's sending core, paced as `pace` says.
    pub fn spawn(
        transport: &str,
        name: &str,
        s: &Setup,
        count: u64,
        pace: Pace,
    ) -> Result<ProducerProcess> {
        let exe = std::env::current_exe().context("cannot find the lab binary's own path")?;
        let mut cmd = Command::new(&exe);
        cmd.arg("bench-producer")
            .args(["--transport", transport, "--name", name])
            .args(["--core", &s.tx_core.to_string()])
            .args(["--count", &count.to_string()])
            .args(["--spacing-ns", &s.spacing_ns.to_string()])
            .args(["--capacity", &s.capacity.to_string()]);
        match pace {
            Pace::Spaced => {}
            Pace::Flat => {
                cmd.arg("--flat");
            }
            Pace::Rate(r) => {
                cmd.args(["--flat", "--rate", &r.to_string()]);
            }
        }
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {} bench-producer", exe.display()))?;
        let mut child = Supervised::new("bench-producer", child);
        let stdin = child.child_mut().stdin.take();
        let stdout = child
            .child_mut()
            .stdout
            .take()
            .context("the producer's stdout is not a pipe")?;
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let reader = std::thread::spawn(move || {
            let mut undelivered = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("published ") {
                    undelivered = rest
                        .split_whitespace()
                        .nth(2)
                        .and_then(|k| k.parse::<u64>().ok());
                    // SYNC POINT: pairs with the acquire loads of the consumer's sources.
                    flag.store(true, Ordering::Release);
                } else {
                    println!("[bench-producer] {line}");
                }
            }
            undelivered
        });
        Ok(ProducerProcess {
            child,
            stdin,
            reader: Some(reader),
            done,
        })
    }

    /// Set once the producer has sent everything (step 3).
    #[cfg_attr(not(feature = "peers"), allow(dead_code))]
    pub fn done_flag(&self) -> Arc<AtomicBool> {
        self.done.clone()
    }

    /// Whether the child still runs.
    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }

    /// Step 1, from the consumer: everything is ready, go.
    pub fn start(&mut self) -> Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .context("the producer's stdin is not a pipe")?;
        stdin
            .write_all(START_LINE.as_bytes())
            .and_then(|()| stdin.flush())
            .context("cannot tell the producer to start")
    }

    #[cfg_attr(not(feature = "peers"), allow(dead_code))]
    /// Waits (up to [`OPEN_TIMEOUT`]) until `ready()` says the producer's side of the
    /// transport is there, failing early if the child exits.
    pub fn wait_until(&mut self, what: &str, mut ready: impl FnMut() -> bool) -> Result<()> {
        let by = Instant::now() + OPEN_TIMEOUT;
        while !ready() {
            if !self.is_running() {
                bail!("bench-producer exited before {what}");
            }
            if Instant::now() > by {
                bail!("bench-producer did not get {what} within {OPEN_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Step 4, from the consumer: closes stdin and reaps the child (or terminates it
    /// if `consumed` failed); returns the undelivered count the producer reported.
    pub fn finish<T>(mut self, consumed: Result<T>) -> Result<(T, u64)> {
        drop(self.stdin.take());
        let status = match &consumed {
            Ok(_) => self.child.wait_timeout(OPEN_TIMEOUT),
            Err(_) => self.child.terminate(),
        };
        let undelivered = self.reader.take().and_then(|r| r.join().ok()).flatten();
        let consumed = consumed?;
        match status {
            Some(s) if s.success() => Ok((consumed, undelivered.unwrap_or(0))),
            Some(s) => bail!("{}", crate::child::describe_exit("bench-producer", s)),
            None => bail!("bench-producer did not exit after sending"),
        }
    }
}
