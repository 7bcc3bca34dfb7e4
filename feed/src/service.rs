//! The history service ([`common::service`]): a Unix domain socket beside the ring and,
//! where `feed.service.listen` is set, a TCP address too (for engines in other network
//! namespaces or on other hosts), served by the history thread from its memory between
//! two drains of the md → history queue, so the md thread never sees a client. A range
//! older than the memory holds is read back from the journal
//! ([`common::journal::JournalWriter::read_range`]), one frame's worth per step.
//!
//! # Guarantees
//!
//! - **No client can stall or slow the md thread.** Sockets are non-blocking; each
//!   [`Service::poll`] accepts, reads, answers and writes what the sockets take without
//!   waiting, and the history thread's slice check runs between frames. Its own queue
//!   from the md thread never blocks the md thread (a full queue drops and counts).
//! - **TCP is served like the socket.** A TCP client is accepted in the same poll, gets
//!   the same frames and the same answers, and is held to the same limits; accepted
//!   connections have `TCP_NODELAY`, so each frame leaves when written.
//! - **Limits.** At most `max_clients` at once, Unix and TCP together (one more gets an
//!   error frame and is closed); at most `max_requests_per_s` requests per client per
//!   second (one more: an error frame, closed); at most 256 KiB of unsent response per
//!   client (a response is produced only as the client reads it); a client that leaves
//!   a frame half sent, or reads nothing of its response, for `client_timeout_ms` is
//!   closed.
//! - **Malformed frames** get an error frame naming their class and the connection
//!   closes; the feed goes on.
//! - **The socket follows the files rule.** It is created only where nothing is, or
//!   where a socket of this user that no live feed serves sits beside its marker file
//!   `<socket>.owner` (the mark of a socket a killed feed left); anything else is
//!   refused (exit 2, located at `feed.service.socket`) and left as it is. Mode 0600;
//!   the feed removes the socket and its marker when it ends.
//! - **TCP has no owner-only protection.** Anyone who can reach the address may ask for
//!   the history (it is read-only, and held to the limits above): bind it to a private
//!   interface. An address that is not this host's (or a port this user may not bind)
//!   is refused as bad input (exit 2, located at `feed.service.listen`); an address in
//!   use is a runtime error (exit 1) naming it. Either way the TCP address is bound
//!   before the socket is made, so a refused address leaves no file behind. The
//!   address bound (the port the system chose, for port 0) is in the summary
//!   (`service.listen`) and in the line the feed prints at start.
//!
//! Everything here allocates and makes system calls: the history thread only.

use crate::history::History;
use crate::journal::Journaling;
use common::budget::ColdThread;
use common::config::{Config, KeyPath, ServiceConfig};
use common::failure::Failure;
use common::files::{self, Existing, FileId, Kind};
use common::service::{
    decode_request, encode_response, Decoded, Request, Response, WireBar, ERR_BUSY, ERR_RATE,
    ERR_STALLED, TICKS_PER_FRAME,
};
use common::summary::ServiceReport;
use common::tick::Tick;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Unsent bytes per client above which no more of its response is produced.
const WRITE_AHEAD: usize = 256 << 10;

/// Connections accepted per listener per poll at most: a flood of connections (TCP
/// can bring one from anywhere on its network) is taken in turns with the history
/// thread's other work.
const ACCEPTS_PER_POLL: usize = 256;

/// What a client asked for and how far the answer has come.
enum Job {
    Snapshot { depth: u32, next_symbol: u16 },
    Range { next: u64, to: u64 },
    Bars { symbol: u16, from: u64, to: u64 },
}

/// A client's connection, of either kind.
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
        }
    }
}

impl Stream {
    /// Made ready to serve: non-blocking (and, for TCP, `TCP_NODELAY`).
    fn prepare(&self) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_nonblocking(true),
            Stream::Tcp(s) => {
                s.set_nodelay(true)?;
                s.set_nonblocking(true)
            }
        }
    }
}

struct Client {
    stream: Stream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    job: Option<(Request, Job, u64, Instant)>,
    last_progress: Instant,
    /// (second since the service started, requests in it).
    rate: (u64, u32),
    /// Closing once `wbuf` is sent (after an error frame).
    closing: bool,
    /// Waiting for the last of a response to be sent: (request start).
    finishing: Option<Instant>,
}

/// The service: its socket, its TCP listener, their clients, and what it did.
pub struct Service {
    listener: UnixListener,
    /// The TCP listener (`feed.service.listen`) and the address it is bound to.
    tcp: Option<(TcpListener, SocketAddr)>,
    path: PathBuf,
    marker: PathBuf,
    id: FileId,
    settings: ServiceConfig,
    clients: Vec<Client>,
    started: Instant,
    report: ServiceReport,
    /// Request received → last byte of its response written, nanoseconds.
    latency: hdrhistogram::Histogram<u64>,
    /// The ring producer's start time, in every done frame.
    producer: u64,
}

/// Binds the socket of `s` under the files rule, and its TCP address where it has one;
/// bad input (someone else's file there, an address not of this host) is located at
/// `feed.service.socket` or `feed.service.listen`. `producer` (the ring's producer
/// start time) goes into every done frame.
pub fn open(config: &Config, s: &ServiceConfig, producer: u64) -> Result<Service, Failure> {
    let key = KeyPath::key("feed").then("service").then("socket");
    let bad = |m: String| Failure::bad_input(config.error_at(&key, m));
    let path = s.socket.clone();
    let marker = PathBuf::from(format!("{}.owner", path.display()));
    let marker_ours = matches!(files::examine(&marker, Kind::Text), Ok(Existing::Own(_)));
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Failure::runtime(anyhow::anyhow!(
                "cannot examine {}: {e}",
                path.display()
            )))
        }
        Ok(meta) => {
            let socket_of_ours = meta.file_type().is_socket()
                && meta.uid() == common::os::effective_uid()
                && marker_ours;
            if !socket_of_ours {
                let what = files::describe_special(&path, &meta)
                    .unwrap_or_else(|| format!("a file of {} bytes", meta.len()));
                return Err(bad(format!(
                    "{} is {what}, not a socket hft-alloc-lab left (no marker {}); it is left as it is: move it away or choose another path",
                    path.display(),
                    marker.display()
                )));
            }
            match UnixStream::connect(&path) {
                Ok(_) => {
                    return Err(Failure::runtime(anyhow::anyhow!(
                        "{} is served by a live feed (see {}): stop it or choose another socket",
                        path.display(),
                        marker.display()
                    )))
                }
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    eprintln!(
                        "feed: service: removing the socket {} a feed that no longer runs left",
                        path.display()
                    );
                    std::fs::remove_file(&path).map_err(|e| {
                        Failure::runtime(anyhow::anyhow!("cannot remove {}: {e}", path.display()))
                    })?;
                }
                Err(e) => {
                    return Err(Failure::runtime(anyhow::anyhow!(
                        "cannot tell whether a feed serves {}: {e}",
                        path.display()
                    )))
                }
            }
        }
    }
    if !marker_ours && marker.exists() {
        return Err(bad(format!(
            "{} exists and is not hft-alloc-lab's marker; it is left as it is",
            marker.display()
        )));
    }
    // Before the socket is made: a refused address leaves no file behind.
    let tcp = match s.listen {
        Some(addr) => Some(listen_tcp(config, addr)?),
        None => None,
    };
    let listener = UnixListener::bind(&path)
        .map_err(|e| Failure::runtime(anyhow::anyhow!("cannot bind {}: {e}", path.display())))?;
    let set_up = |e: std::io::Error| {
        Failure::runtime(anyhow::anyhow!("cannot set up {}: {e}", path.display()))
    };
    let id = FileId::of(&std::fs::symlink_metadata(&path).map_err(set_up)?);
    // A failure from here on removes the socket just made (and only it), as Drop does.
    let remove_bound = || {
        if id.is_at(&path) {
            let _ = std::fs::remove_file(&path);
        }
    };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| listener.set_nonblocking(true))
        .map_err(|e| {
            remove_bound();
            set_up(e)
        })?;
    let text = format!(
        "{}pid {}\n",
        Kind::Text.header("the marker of a feed's history service socket"),
        std::process::id()
    );
    files::write(&marker, Kind::Text, text.as_bytes()).map_err(|e| {
        remove_bound();
        Failure::classify(e)
    })?;
    match &tcp {
        Some((_, addr)) => eprintln!("feed: history service on {} and tcp {addr}", path.display()),
        None => eprintln!("feed: history service on {}", path.display()),
    }
    Ok(Service {
        listener,
        tcp,
        path,
        marker,
        id,
        settings: s.clone(),
        clients: Vec::new(),
        started: Instant::now(),
        report: ServiceReport::default(),
        latency: common::latency::fixed_histogram(common::latency::HIGHEST_NS),
        producer,
    })
}

/// A non-blocking listener on `addr` and the address it is bound to. An address this
/// host does not have, or a port this user may not bind, is bad input located at
/// `feed.service.listen`; anything else (the address in use) a runtime error naming it.
fn listen_tcp(config: &Config, addr: SocketAddr) -> Result<(TcpListener, SocketAddr), Failure> {
    let key = KeyPath::key("feed").then("service").then("listen");
    let listener = TcpListener::bind(addr).map_err(|e| match e.kind() {
        ErrorKind::AddrNotAvailable => Failure::bad_input(config.error_at(
            &key,
            format!("cannot listen on {addr}, not an address of this host: {e}"),
        )),
        ErrorKind::PermissionDenied => Failure::bad_input(config.error_at(
            &key,
            format!("cannot listen on {addr}, a port this user may not bind: {e}"),
        )),
        _ => Failure::runtime(anyhow::anyhow!(
            "cannot listen on tcp {addr} (feed.service.listen): {e}"
        )),
    })?;
    let bound = (|| -> std::io::Result<SocketAddr> {
        listener.set_nonblocking(true)?;
        listener.local_addr()
    })()
    .map_err(|e| Failure::runtime(anyhow::anyhow!("cannot set up tcp {addr}: {e}")))?;
    Ok((listener, bound))
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.id.is_at(&self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
        let _ = files::remove_own(&self.marker, Kind::Text);
    }
}

fn push(r: &Response, out: &mut Vec<u8>) {
    encode_response(r, out);
}

impl Service {
    /// Accepts, reads, answers and writes without waiting; ranges older than `hist`
    /// holds are read back from `journal`, whose epoch goes into every done frame.
    /// Hands the core back between frames when the slice is over.
    pub fn poll(&mut self, hist: &History, journal: Option<&Journaling>, cold: &mut ColdThread) {
        let now = Instant::now();
        for _ in 0..ACCEPTS_PER_POLL {
            let stream = match self.listener.accept() {
                Ok((s, _)) => Stream::Unix(s),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            self.admit(stream, now);
        }
        if let Some((tcp, addr)) = self.tcp.take() {
            for _ in 0..ACCEPTS_PER_POLL {
                let stream = match tcp.accept() {
                    Ok((s, _)) => Stream::Tcp(s),
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    // WouldBlock: none waiting. Anything else (a connection reset while
                    // it waited, out of descriptors): the next poll tries again.
                    Err(_) => break,
                };
                self.admit(stream, now);
            }
            self.tcp = Some((tcp, addr));
        }
        let timeout = Duration::from_millis(self.settings.client_timeout_ms);
        let second = self.started.elapsed().as_secs();
        let mut i = 0;
        while i < self.clients.len() {
            let keep = self.serve(i, hist, journal, now, timeout, second, cold);
            if keep {
                i += 1;
            } else {
                self.clients.swap_remove(i);
            }
            cold.yield_if_due();
        }
    }

    /// Takes a newly accepted connection as a client, or tells it the feed is busy.
    fn admit(&mut self, stream: Stream, now: Instant) {
        self.report.accepted += 1;
        if stream.prepare().is_err() {
            return;
        }
        let mut c = Client {
            stream,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            wpos: 0,
            job: None,
            last_progress: now,
            rate: (0, 0),
            closing: false,
            finishing: None,
        };
        if self.clients.len() >= self.settings.max_clients {
            self.report.refused_busy += 1;
            let message = format!("the feed serves {} clients already", self.clients.len());
            push(
                &Response::Error {
                    code: ERR_BUSY,
                    message,
                },
                &mut c.wbuf,
            );
            // Best effort: a client that cannot take the frame is closed.
            let _ = c.stream.write(&c.wbuf);
            return;
        }
        self.clients.push(c);
    }

    /// Serves client `i`; whether to keep it.
    #[allow(clippy::too_many_arguments)]
    fn serve(
        &mut self,
        i: usize,
        hist: &History,
        journal: Option<&Journaling>,
        now: Instant,
        timeout: Duration,
        second: u64,
        cold: &mut ColdThread,
    ) -> bool {
        let symbols = hist.symbol_count();
        let max_rate = self.settings.max_requests_per_s;
        let c = &mut self.clients[i];
        // Read only between requests: a client is answered one request at a time.
        if c.job.is_none() && c.finishing.is_none() && !c.closing {
            let mut buf = [0u8; 4096];
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => return false,
                    Ok(n) => {
                        c.rbuf.extend_from_slice(&buf[..n]);
                        c.last_progress = now;
                        if c.rbuf.len() >= 4096 {
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => return false,
                }
            }
            match decode_request(&c.rbuf, symbols) {
                Ok(Decoded::Incomplete) => {
                    if !c.rbuf.is_empty() && now.duration_since(c.last_progress) > timeout {
                        self.report.closed_stalled += 1;
                        let message =
                            format!("a frame left half sent for {} ms", timeout.as_millis());
                        push(
                            &Response::Error {
                                code: ERR_STALLED,
                                message,
                            },
                            &mut c.wbuf,
                        );
                        c.closing = true;
                    }
                }
                Ok(Decoded::Request(r, used)) => {
                    c.rbuf.drain(..used);
                    self.report.requests += 1;
                    if c.rate.0 != second {
                        c.rate = (second, 0);
                    }
                    c.rate.1 += 1;
                    if c.rate.1 > max_rate {
                        self.report.errors += 1;
                        let message = format!("more than {max_rate} requests in a second");
                        push(
                            &Response::Error {
                                code: ERR_RATE,
                                message,
                            },
                            &mut c.wbuf,
                        );
                        c.closing = true;
                    } else {
                        let job = match r {
                            Request::Snapshot { depth } => Job::Snapshot {
                                depth,
                                next_symbol: 0,
                            },
                            Request::Range { from, to } => Job::Range { next: from, to },
                            Request::Bars {
                                symbol,
                                from_second,
                                to_second,
                            } => Job::Bars {
                                symbol,
                                from: from_second,
                                to: to_second,
                            },
                        };
                        c.job = Some((r, job, 0, now));
                    }
                }
                Err(e) => {
                    self.report.errors += 1;
                    push(
                        &Response::Error {
                            code: e.code(),
                            message: e.to_string(),
                        },
                        &mut c.wbuf,
                    );
                    c.closing = true;
                }
            }
        }
        // Produce the answer as fast as the client takes it.
        while c.wbuf.len() - c.wpos < WRITE_AHEAD {
            let Some((request, job, items, t0)) = c.job.as_mut() else {
                break;
            };
            let done = step(job, hist, journal, &mut c.wbuf, items, &mut self.report);
            if done {
                push(
                    &Response::Done {
                        request: request.kind(),
                        items: *items,
                        first_held: first_held(hist, journal),
                        newest: hist.newest_held(),
                        epoch: journal.map_or(0, Journaling::epoch),
                        producer: self.producer,
                    },
                    &mut c.wbuf,
                );
                c.finishing = Some(*t0);
                c.job = None;
            }
            cold.yield_if_due();
        }
        // Write what the socket takes.
        while c.wpos < c.wbuf.len() {
            match c.stream.write(&c.wbuf[c.wpos..]) {
                Ok(0) => return false,
                Ok(n) => {
                    c.wpos += n;
                    c.last_progress = now;
                    self.report.bytes_out += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
        if c.wpos == c.wbuf.len() {
            c.wbuf.clear();
            c.wpos = 0;
            if let Some(t0) = c.finishing.take() {
                if c.job.is_none() {
                    let _ = self
                        .latency
                        .record((t0.elapsed().as_nanos() as u64).min(common::latency::HIGHEST_NS));
                }
            }
            if c.closing {
                return false;
            }
        } else if now.duration_since(c.last_progress) > timeout {
            // It reads nothing of its answer: closed without a word (it would not
            // read that either).
            self.report.closed_stalled += 1;
            return false;
        }
        true
    }

    /// What the service did.
    pub fn report(&self) -> ServiceReport {
        let mut r = self.report.clone();
        let us = |q: f64| self.latency.value_at_quantile(q) as f64 / 1e3;
        r.answered = self.latency.len();
        if r.answered > 0 {
            r.latency_p50_us = us(0.5);
            r.latency_p99_us = us(0.99);
            r.latency_max_us = self.latency.max() as f64 / 1e3;
        }
        r.socket = self.path.display().to_string();
        r.listen = self
            .tcp
            .as_ref()
            .map_or(String::new(), |(_, a)| a.to_string());
        r
    }
}

/// The oldest sequence number of this run a range can be served from: the journal's
/// oldest, else the history's.
fn first_held(hist: &History, journal: Option<&Journaling>) -> u64 {
    let mem = hist.first_held();
    match journal.and_then(Journaling::first_seq) {
        Some(j) if mem == 0 || j < mem => j,
        _ => mem,
    }
}

/// Produces one frame of `job` into `out`; whether the job is done.
fn step(
    job: &mut Job,
    hist: &History,
    journal: Option<&Journaling>,
    out: &mut Vec<u8>,
    items: &mut u64,
    report: &mut ServiceReport,
) -> bool {
    match job {
        Job::Snapshot { depth, next_symbol } => {
            let s = *next_symbol;
            if s as usize >= hist.symbol_count() {
                return true;
            }
            // The last `depth` ticks, after the symbol's latest quote and trade where
            // those are older (the book state a late joiner needs).
            let last: Vec<Tick> = hist.last_ticks(s, *depth as usize).copied().collect();
            let mut ticks: Vec<Tick> = hist
                .latest(s)
                .into_iter()
                .flatten()
                .filter(|l| !last.iter().any(|t| t.kind == l.kind))
                .copied()
                .collect();
            ticks.sort_unstable_by_key(|t| t.seq);
            ticks.extend(last);
            for chunk in ticks.chunks(TICKS_PER_FRAME) {
                push(&Response::Ticks(chunk.to_vec()), out);
            }
            let all: Vec<WireBar> = hist.bars_between(s, 0, u64::MAX).map(wire).collect();
            let bars = all[all.len().saturating_sub(60)..].to_vec();
            *items += (ticks.len() + bars.len()) as u64;
            report.ticks_served += ticks.len() as u64;
            report.bars_served += bars.len() as u64;
            push(&Response::Bars { symbol: s, bars }, out);
            *next_symbol += 1;
            false
        }
        Job::Range { next, to } => {
            if *next >= *to {
                return true;
            }
            // Older than the memory holds (or nothing held): from the journal, up to
            // where the memory begins.
            let mem = hist.first_held();
            if let Some(j) = journal.filter(|_| mem == 0 || *next < mem) {
                let upto = if mem == 0 { *to } else { (*to).min(mem) };
                let mut ticks = Vec::new();
                match j.read_range(*next, upto, TICKS_PER_FRAME, &mut ticks) {
                    Some(Ok(n)) => *next = n.max(*next + 1).min(upto),
                    Some(Err(_)) => {
                        report.journal_errors += 1;
                        *next = upto;
                    }
                    None => *next = upto,
                }
                if !ticks.is_empty() {
                    *items += ticks.len() as u64;
                    report.ticks_served += ticks.len() as u64;
                    report.journal_ticks_served += ticks.len() as u64;
                    push(&Response::Ticks(ticks), out);
                }
                return false;
            }
            // The next stretch of sequence numbers, from every symbol, in order.
            let hi = (*next + TICKS_PER_FRAME as u64).min(*to);
            let mut ticks: Vec<Tick> = Vec::new();
            for s in 0..hist.symbol_count() as u16 {
                ticks.extend(
                    hist.ticks_from(s, *next)
                        .take_while(|t| t.seq < hi)
                        .copied(),
                );
            }
            ticks.sort_unstable_by_key(|t| t.seq);
            *next = hi;
            if !ticks.is_empty() {
                *items += ticks.len() as u64;
                report.ticks_served += ticks.len() as u64;
                push(&Response::Ticks(ticks), out);
            }
            false
        }
        Job::Bars { symbol, from, to } => {
            let bars: Vec<WireBar> = hist.bars_between(*symbol, *from, *to).map(wire).collect();
            *items += bars.len() as u64;
            report.bars_served += bars.len() as u64;
            push(
                &Response::Bars {
                    symbol: *symbol,
                    bars,
                },
                out,
            );
            true
        }
    }
}

fn wire(b: &crate::history::Bar) -> WireBar {
    WireBar {
        second: b.second,
        open: b.open,
        high: b.high,
        low: b.low,
        close: b.close,
        volume: b.volume,
        ticks: b.ticks,
    }
}
