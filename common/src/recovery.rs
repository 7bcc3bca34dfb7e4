//! Gap recovery: the ticks a consumer missed, fetched from the feed's history service
//! on a cold thread and applied in sequence order. Used by the engine (`engine.recover`:
//! a lapped engine's gaps in its ring, applied to its books) and by the relay
//! (`net.history`: the gaps in the feed's network stream, published into the host's
//! ring); what the ticks are applied to is an [`Apply`].
//!
//! On a gap `from..to` the hot thread becomes *stale*: an engine stops deciding
//! (no symbol quotes: a gap may hold ticks of any symbol), hands the range to the
//! recovery thread over a hop, and goes on polling the ring, buffering the live ticks
//! in a buffer allocated at start ([`Recovery::new`], `engine.recovery_buffer`). The
//! recovery thread ([`thread`]) asks the service for the range in requests of at most
//! [`crate::service::MAX_RANGE`] ticks, retries what the service does not hold yet
//! (its history lags the ring by the md → history hop) for up to
//! `engine.producer_timeout_ms`, and sends the ticks back in order, then a done mark.
//! The hot thread applies each recovered tick ([`Apply::apply`]: an engine's books and
//! positions, a relay's ring), then the buffered live ticks, and resumes with the next
//! live tick.
//!
//! A live tick that finds the buffer full, and a further gap while recovering, start
//! an *overflow* range: every later live tick joins it (counted as missed, not
//! received) until the current range is done; the overflow range is then recovered
//! the same way. Each cycle starts with an empty buffer, so recovery catches up as
//! long as the service serves faster than the feed publishes.
//!
//! Accounting, per feed session: every missed tick ends `recovered` or `unrecovered`
//! (what the service did not have in its memory or journal, and what was outstanding
//! when the engine left the
//! feed), so `published = received + recovered + unrecovered + unread`.
//!
//! [`Recovery`] is hot-thread state: it never allocates after [`Recovery::new`], never
//! blocks and makes no system call (two wait-free hops). [`thread`] is cold: it
//! connects, allocates and sleeps.

use crate::budget::{ColdBudget, ColdThread};
use crate::hop::{HopRx, HopTx, TryRecvError, TrySendError};
use crate::service::{Answer, Request, MAX_RANGE};
use crate::summary::RecoveryReport;
use crate::tick::Tick;
use std::time::{Duration, Instant};

/// Range requests in flight at most (the hot thread has one outstanding).
pub const REQUEST_HOP: usize = 4;
/// Recovered ticks in flight from the recovery thread to the hot thread.
pub const TICK_HOP: usize = 4096;

/// What recovered and buffered ticks are applied to, in sequence order, on the hot
/// thread: it must not allocate, block or make a system call.
pub trait Apply {
    /// Applies `tick` (recovered, or live and buffered while stale).
    fn apply(&mut self, tick: &Tick);
    /// What the consumer has emitted so far (an engine's orders), read at the start and
    /// the end of each stale stretch: [`RecoveryReport::orders_while_stale`].
    fn emitted(&self) -> u64 {
        0
    }
}

/// Ticks `from..to` of feed session `session` (the hot thread's count of feeds read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeRequest {
    /// Feed session the range belongs to.
    pub session: u32,
    /// That session's ring producer start time (the ring header's `epoch_ns`): an
    /// answer from another feed run is not this session's.
    pub producer: u64,
    /// First sequence number.
    pub from: u64,
    /// One past the last.
    pub to: u64,
}

/// What the recovery thread sends back, in order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Recovered {
    /// A recovered tick of the range being served.
    Tick {
        /// Its request's session.
        session: u32,
        /// The tick, as the feed published it.
        tick: Tick,
    },
    /// The range is done: every tick of it the service had was sent.
    Done {
        /// Its request's session.
        session: u32,
    },
}

/// The range being recovered.
#[derive(Clone, Copy, Debug)]
struct Active {
    from: u64,
    to: u64,
    /// Ticks of it recovered so far.
    got: u64,
}

/// The hot thread's side of gap recovery.
pub struct Recovery {
    req_tx: HopTx<RangeRequest>,
    rx: HopRx<Recovered>,
    buffer: Vec<Tick>,
    session: u32,
    /// The current session's producer start time (from its first gap).
    producer: u64,
    active: Option<Active>,
    overflow: Option<(u64, u64)>,
    stale_since_raw: u64,
    orders_at_stale: u64,
    stale_raw_max: u64,
    stale_raw_total: u64,
    /// Counts over the run (the time fields are filled by [`Recovery::report`]).
    counts: RecoveryReport,
}

impl Recovery {
    /// The hot side, with a buffer of `buffer` live ticks allocated now; requests go to
    /// `req_tx`, recovered ticks come from `rx`.
    pub fn new(buffer: usize, req_tx: HopTx<RangeRequest>, rx: HopRx<Recovered>) -> Recovery {
        let mut buffer = Vec::with_capacity(buffer);
        // Touch the buffer's pages now, not on the first gap.
        buffer.resize(buffer.capacity(), Tick::default());
        buffer.clear();
        Recovery {
            counts: RecoveryReport {
                buffer_capacity: buffer.capacity() as u64,
                ..RecoveryReport::default()
            },
            req_tx,
            rx,
            buffer,
            session: 0,
            producer: 0,
            active: None,
            overflow: None,
            stale_since_raw: 0,
            orders_at_stale: 0,
            stale_raw_max: 0,
            stale_raw_total: 0,
        }
    }

    /// Whether the engine is stale: recovering a range, not deciding.
    #[inline]
    pub fn stale(&self) -> bool {
        self.active.is_some()
    }

    /// Ticks recovered and unrecovered so far (run totals).
    pub fn totals(&self) -> (u64, u64) {
        (self.counts.recovered, self.counts.unrecovered)
    }

    /// A gap `from..to` in the ring of producer `producer` (its start time; or a
    /// corrupt tick, `to = from + 1`) at `now_raw`.
    #[cold]
    pub fn on_gap(&mut self, decider: &impl Apply, gap: (u64, u64), producer: u64, now_raw: u64) {
        let (from, to) = gap;
        self.producer = producer;
        if to <= from {
            return;
        }
        if self.active.is_some() {
            self.extend_overflow(from, to);
        } else {
            self.stale_since_raw = now_raw;
            self.orders_at_stale = decider.emitted();
            self.counts.recoveries += 1;
            if !self.start(from, to) {
                self.end_stale(decider, now_raw);
            }
        }
    }

    /// A live tick while stale: buffered (returns true: it counts as received) or, past
    /// a full buffer or an overflow range, added to the overflow range (false: it
    /// counts as missed).
    #[cold]
    pub fn on_live(&mut self, tick: &Tick) -> bool {
        if self.overflow.is_none() && self.buffer.len() < self.buffer.capacity() {
            self.buffer.push(*tick);
            self.counts.buffered_max = self.counts.buffered_max.max(self.buffer.len() as u64);
            return true;
        }
        self.counts.overflowed += 1;
        self.extend_overflow(tick.seq, tick.seq + 1);
        false
    }

    /// Applies what the recovery thread sent (recovered ticks, in order, to `decider`);
    /// when the range is done applies the buffered live ticks, then starts on
    /// the overflow range or, with none, ends the stale stretch. Returns whether the
    /// engine is stale still.
    #[cold]
    pub fn pump(&mut self, decider: &mut impl Apply, now_raw: u64) -> bool {
        loop {
            let m = match self.rx.try_recv() {
                Ok(m) => m,
                Err(TryRecvError::Empty) => return self.active.is_some(),
                Err(TryRecvError::Disconnected) => {
                    // The recovery thread is gone: nothing more will come.
                    if let Some(a) = self.active {
                        self.counts.unrecovered += (a.to - a.from) - a.got;
                        self.range_done(decider, now_raw);
                    }
                    return self.active.is_some();
                }
            };
            let Some(a) = self.active else {
                continue;
            };
            match m {
                Recovered::Tick { session, tick } if session == self.session => {
                    self.active = Some(Active {
                        got: a.got + 1,
                        ..a
                    });
                    self.counts.recovered += 1;
                    decider.apply(&tick);
                }
                Recovered::Done { session } if session == self.session => {
                    self.counts.unrecovered += (a.to - a.from) - a.got;
                    self.range_done(decider, now_raw);
                }
                // A range of a feed session the engine has left.
                _ => {}
            }
        }
    }

    /// The engine leaves the feed: whatever is outstanding is unrecovered, the buffered
    /// ticks are applied, and messages still coming for this session are ignored.
    pub fn close_session(&mut self, decider: &mut impl Apply, now_raw: u64) {
        if let Some(a) = self.active.take() {
            self.counts.unrecovered += (a.to - a.from) - a.got;
            if let Some((from, to)) = self.overflow.take() {
                self.counts.unrecovered += to - from;
            }
            for t in self.buffer.drain(..) {
                decider.apply(&t);
            }
            self.end_stale(decider, now_raw);
        }
        self.session = self.session.wrapping_add(1);
    }

    /// The run's report, with times converted by `ns_per_raw`. Allocates: after the
    /// loop.
    pub fn report(&self, ns_per_raw: f64) -> RecoveryReport {
        RecoveryReport {
            stale_ms_max: self.stale_raw_max as f64 * ns_per_raw / 1e6,
            stale_ms_total: self.stale_raw_total as f64 * ns_per_raw / 1e6,
            ..self.counts.clone()
        }
    }

    /// Asks for `from..to`; false (the range counted unrecovered) when no recovery
    /// thread takes requests (gone, or stuck with [`REQUEST_HOP`] requests of earlier
    /// sessions).
    fn start(&mut self, from: u64, to: u64) -> bool {
        let req = RangeRequest {
            session: self.session,
            producer: self.producer,
            from,
            to,
        };
        self.counts.ranges += 1;
        if self.req_tx.try_send(req).is_err() {
            self.counts.unrecovered += to - from;
            return false;
        }
        self.active = Some(Active { from, to, got: 0 });
        true
    }

    fn extend_overflow(&mut self, from: u64, to: u64) {
        self.overflow = Some(match self.overflow {
            None => (from, to),
            Some((f, t)) => (f.min(from), t.max(to)),
        });
    }

    fn range_done(&mut self, decider: &mut impl Apply, now_raw: u64) {
        self.active = None;
        for t in self.buffer.drain(..) {
            decider.apply(&t);
        }
        let next = self.overflow.take();
        if !next.is_some_and(|(from, to)| self.start(from, to)) {
            self.end_stale(decider, now_raw);
        }
    }

    fn end_stale(&mut self, decider: &impl Apply, now_raw: u64) {
        // What the consumer emitted while stale: none, unless a tick was decided on.
        self.counts.orders_while_stale += decider.emitted() - self.orders_at_stale;
        let d = now_raw.saturating_sub(self.stale_since_raw);
        self.stale_raw_max = self.stale_raw_max.max(d);
        self.stale_raw_total += d;
    }
}

/// What the recovery thread did.
pub struct ThreadReport {
    /// Service requests made.
    pub requests: u64,
    /// Requests that failed and were retried or given up.
    pub errors: u64,
    /// Answers from another feed run than the range's session (a new feed on the same
    /// socket): their ticks are not applied, the rest of the range is unrecovered.
    pub foreign: u64,
    /// The last error.
    pub last_error: Option<String>,
    /// The thread's budget.
    pub budget: ColdBudget,
}

/// The recovery thread: serves each range request from the history service `service`
/// (its name in messages) with `fetch` (one request, its whole answer) and sends the ticks it gets back in sequence order, then [`Recovered::Done`]. A tick
/// the service does not hold yet is asked for again until `patience` has passed since
/// the range's last progress; a tick older than the oldest the service holds is not.
/// Ends when the hot thread's side is dropped.
pub fn thread(
    service: &str,
    mut fetch: impl FnMut(&Request) -> Result<Answer, String>,
    patience: Duration,
    mut requests: HopRx<RangeRequest>,
    mut out: HopTx<Recovered>,
    mut cold: ColdThread,
) -> ThreadReport {
    let mut r = ThreadReport {
        requests: 0,
        errors: 0,
        foreign: 0,
        last_error: None,
        budget: ColdBudget::default(),
    };
    'serve: loop {
        let req = match requests.try_recv() {
            Ok(req) => req,
            Err(TryRecvError::Empty) => {
                cold.idle();
                continue;
            }
            Err(TryRecvError::Disconnected) => break,
        };
        let session = req.session;
        let mut next = req.from;
        let mut progress = Instant::now();
        while next < req.to {
            let to = req.to.min(next + MAX_RANGE);
            r.requests += 1;
            let answer = match fetch(&Request::Range { from: next, to }) {
                Ok(a) => a,
                Err(e) => {
                    r.errors += 1;
                    r.last_error = Some(e);
                    if progress.elapsed() >= patience {
                        break;
                    }
                    cold.idle();
                    continue;
                }
            };
            if answer.producer != req.producer {
                r.foreign += 1;
                r.last_error = Some(format!(
                    "{} answered for the feed started at {} ns since the Unix epoch, the range is of the one started at {} ns: left unrecovered",
                    service,
                    answer.producer,
                    req.producer
                ));
                break;
            }
            let before = next;
            for tick in answer.ticks {
                // In order and in range only: a tick skipped in the service's history
                // stays unrecovered.
                if tick.seq < next || tick.seq >= to {
                    continue;
                }
                next = tick.seq + 1;
                if !send(&mut out, &mut cold, Recovered::Tick { session, tick }) {
                    break 'serve;
                }
            }
            if next < to && answer.first_held > next {
                // Evicted from the service's history: not coming back.
                next = answer.first_held.min(to);
            }
            if next > before {
                progress = Instant::now();
            } else if progress.elapsed() >= patience {
                // Not in the service's history within the patience: give up the range.
                break;
            } else {
                cold.idle();
            }
            cold.yield_if_due();
        }
        if !send(&mut out, &mut cold, Recovered::Done { session }) {
            break;
        }
    }
    r.budget = cold.finish();
    r
}

/// Sends `m` to the hot thread, waiting (cold) while the hop is full; false when the
/// hot thread's side is gone.
fn send(out: &mut HopTx<Recovered>, cold: &mut ColdThread, mut m: Recovered) -> bool {
    loop {
        match out.try_send(m) {
            Ok(()) => return true,
            Err(TrySendError::Full(back)) => {
                m = back;
                cold.idle();
            }
            Err(TrySendError::Disconnected(_)) => return false,
        }
    }
}
