//! Gap recovery (`engine.recover`): the ticks a lapped engine missed, fetched from the
//! feed's history service on a cold thread and applied in sequence order.
//!
//! On a gap `from..to` in the ring the hot thread becomes *stale*: it stops deciding
//! (no symbol quotes: a gap may hold ticks of any symbol), hands the range to the
//! recovery thread over a hop, and goes on polling the ring, buffering the live ticks
//! in a buffer allocated at start ([`Recovery::new`], `engine.recovery_buffer`). The
//! recovery thread ([`thread`]) asks the service for the range in requests of at most
//! [`common::service::MAX_RANGE`] ticks, retries what the service does not hold yet
//! (its history lags the ring by the md → history hop) for up to
//! `engine.producer_timeout_ms`, and sends the ticks back in order, then a done mark.
//! The hot thread applies each recovered tick to its books and positions
//! ([`crate::decider::Decider::apply`]), then the buffered live ticks, and resumes
//! deciding with the next live tick.
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

use crate::decider::Decider;
use common::budget::{ColdBudget, ColdThread};
use common::hop::{HopRx, HopTx, TryRecvError, TrySendError};
use common::service::{request, Request, MAX_RANGE};
use common::summary::RecoveryReport;
use common::tick::Tick;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Range requests in flight at most (the hot thread has one outstanding).
pub const REQUEST_HOP: usize = 4;
/// Recovered ticks in flight from the recovery thread to the hot thread.
pub const TICK_HOP: usize = 4096;

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
    pub fn on_gap(&mut self, decider: &Decider, gap: (u64, u64), producer: u64, now_raw: u64) {
        let (from, to) = gap;
        self.producer = producer;
        if to <= from {
            return;
        }
        if self.active.is_some() {
            self.extend_overflow(from, to);
        } else {
            self.stale_since_raw = now_raw;
            self.orders_at_stale = decider.orders + decider.orders_dropped;
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

    /// Applies what the recovery thread sent (recovered ticks, in order, to `decider`'s
    /// books); when the range is done applies the buffered live ticks, then starts on
    /// the overflow range or, with none, ends the stale stretch. Returns whether the
    /// engine is stale still.
    #[cold]
    pub fn pump(&mut self, decider: &mut Decider, now_raw: u64) -> bool {
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
    pub fn close_session(&mut self, decider: &mut Decider, now_raw: u64) {
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

    fn range_done(&mut self, decider: &mut Decider, now_raw: u64) {
        self.active = None;
        for t in self.buffer.drain(..) {
            decider.apply(&t);
        }
        let next = self.overflow.take();
        if !next.is_some_and(|(from, to)| self.start(from, to)) {
            self.end_stale(decider, now_raw);
        }
    }

    fn end_stale(&mut self, decider: &Decider, now_raw: u64) {
        // Orders the decider made while stale: none, unless a tick was decided on.
        self.counts.orders_while_stale +=
            (decider.orders + decider.orders_dropped) - self.orders_at_stale;
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

/// The recovery thread: serves each range request from the history service at `socket`
/// and sends the ticks it gets back in sequence order, then [`Recovered::Done`]. A tick
/// the service does not hold yet is asked for again until `patience` has passed since
/// the range's last progress; a tick older than the oldest the service holds is not.
/// Ends when the hot thread's side is dropped.
pub fn thread(
    socket: PathBuf,
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
            let answer = match request(
                &socket,
                &Request::Range { from: next, to },
                Duration::from_secs(2),
            ) {
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
                    socket.display(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::tests::config;
    use allocator_api2::alloc::Global;
    use common::config::Config;
    use common::hop::{self, ChannelKind};
    use common::tick::PX_SCALE;

    /// The start time of the feed run the tests' ranges belong to.
    const PRODUCER: u64 = 1_700_000_000_123_456_789;

    /// Tick `seq` of a two-symbol stream, a new price every tick.
    fn tick(seq: u64) -> Tick {
        let mid = (3_000 + (seq as i64 * 7) % 50) * PX_SCALE;
        Tick {
            seq,
            symbol: (seq % 2) as u16,
            bid_px_e8: mid - 50_000_000,
            ask_px_e8: mid + 50_000_000,
            bid_qty_lots: 3,
            ask_qty_lots: 4,
            ..Tick::default()
        }
    }

    fn decider(c: &Config) -> (Decider, HopRx<crate::order::OrderMsg>) {
        let (tx, rx) = hop::bounded(ChannelKind::Rtrb, 1 << 16);
        (Decider::new(c, tx), rx)
    }

    struct Side {
        rec: Recovery,
        requests: HopRx<RangeRequest>,
        out: HopTx<Recovered>,
    }

    fn side(buffer: usize) -> Side {
        let (req_tx, requests) = hop::bounded(ChannelKind::Rtrb, REQUEST_HOP);
        let (out, rx) = hop::bounded(ChannelKind::Rtrb, TICK_HOP);
        Side {
            rec: Recovery::new(buffer, req_tx, rx),
            requests,
            out,
        }
    }

    /// Serves `req` the way the recovery thread does, from `held` (the service's
    /// history), then marks it done.
    fn serve(s: &mut Side, req: RangeRequest, held: impl Fn(u64) -> bool) {
        for seq in (req.from..req.to).filter(|&q| held(q)) {
            let m = Recovered::Tick {
                session: req.session,
                tick: tick(seq),
            };
            s.out.try_send(m).unwrap();
        }
        s.out
            .try_send(Recovered::Done {
                session: req.session,
            })
            .unwrap();
    }

    fn books(d: &Decider) -> Vec<(i64, i64, u64, u64)> {
        (0..2)
            .map(|i| {
                let b = d.book(i).unwrap();
                (
                    b.bid_px_e8,
                    b.ask_px_e8,
                    b.mean_mid_e8().to_bits(),
                    b.volatility_ticks().to_bits(),
                )
            })
            .collect()
    }

    #[test]
    fn a_recovered_gap_leaves_the_books_as_if_nothing_was_missed_and_nothing_quotes_while_stale() {
        let c = config();
        let (mut whole, _rx1) = decider(&c);
        let (mut lapped, _rx2) = decider(&c);
        let mut s = side(64);
        for seq in 1..=100 {
            whole.handle(&tick(seq), Global);
        }
        for seq in 1..=40 {
            lapped.handle(&tick(seq), Global);
        }
        // Ticks 41..70 are lost in the ring; 71..=90 arrive live while recovering.
        s.rec.on_gap(&lapped, (41, 71), PRODUCER, 0);
        assert!(s.rec.stale());
        let orders = lapped.orders + lapped.orders_dropped;
        for seq in 71..=90 {
            assert!(s.rec.on_live(&tick(seq)), "room in the buffer");
            assert!(
                s.rec.pump(&mut lapped, 0),
                "still stale: nothing recovered yet"
            );
        }
        let req = s.requests.try_recv().unwrap();
        assert_eq!((req.from, req.to), (41, 71));
        serve(&mut s, req, |_| true);
        assert!(!s.rec.pump(&mut lapped, 10), "resumed");
        assert_eq!(
            lapped.orders + lapped.orders_dropped,
            orders,
            "no order while stale"
        );
        for seq in 91..=100 {
            lapped.handle(&tick(seq), Global);
        }
        assert_eq!(books(&lapped), books(&whole));
        assert!(lapped.orders > orders, "quotes again after recovering");
        let r = s.rec.report(1.0);
        assert_eq!((r.recovered, r.unrecovered), (30, 0));
        assert_eq!((r.recoveries, r.ranges, r.buffered_max), (1, 1, 20));
        assert_eq!(r.orders_while_stale, 0);
        assert_eq!(r.stale_ms_max, 10.0 / 1e6);
    }

    #[test]
    fn live_ticks_past_a_full_buffer_and_a_second_gap_are_recovered_in_turn() {
        let c = config();
        let (mut whole, _rx1) = decider(&c);
        let (mut lapped, _rx2) = decider(&c);
        let mut s = side(16);
        for seq in 1..=200 {
            whole.handle(&tick(seq), Global);
        }
        for seq in 1..=10 {
            lapped.handle(&tick(seq), Global);
        }
        s.rec.on_gap(&lapped, (11, 31), PRODUCER, 0);
        let mut received = 0;
        for seq in 31..=60 {
            received += s.rec.on_live(&tick(seq)) as u64;
        }
        // Another gap while recovering, then more live ticks: all of the overflow.
        s.rec.on_gap(&lapped, (61, 80), PRODUCER, 0);
        for seq in 80..=100 {
            received += s.rec.on_live(&tick(seq)) as u64;
        }
        assert_eq!(received, 16, "the buffer's capacity");
        let first = s.requests.try_recv().unwrap();
        assert_eq!((first.from, first.to), (11, 31));
        serve(&mut s, first, |_| true);
        assert!(
            s.rec.pump(&mut lapped, 0),
            "stale: the overflow range is next"
        );
        let second = s.requests.try_recv().unwrap();
        assert_eq!((second.from, second.to), (47, 101));
        serve(&mut s, second, |_| true);
        assert!(!s.rec.pump(&mut lapped, 0));
        for seq in 101..=200 {
            lapped.handle(&tick(seq), Global);
        }
        assert_eq!(books(&lapped), books(&whole));
        let r = s.rec.report(1.0);
        // Missed: 20 + 19 in the ring, 14 + 21 past the buffer.
        assert_eq!(r.overflowed, 14 + 21);
        assert_eq!(r.recovered, 20 + 19 + 14 + 21);
        assert_eq!((r.unrecovered, r.recoveries, r.ranges), (0, 1, 2));
        // Every tick 1..=200 is received, recovered or unrecovered exactly once.
        assert_eq!(10 + received + 100 + r.recovered + r.unrecovered, 200);
    }

    #[test]
    fn what_the_service_lacks_and_what_is_outstanding_at_a_session_end_is_unrecovered() {
        let c = config();
        let (mut d, _rx) = decider(&c);
        let mut s = side(64);
        s.rec.on_gap(&d, (5, 25), PRODUCER, 0);
        let req = s.requests.try_recv().unwrap();
        // The service lost 5..10 (evicted) and 20 (a hole).
        serve(&mut s, req, |q| q >= 10 && q != 20);
        assert!(!s.rec.pump(&mut d, 0));
        assert_eq!(s.rec.totals(), (14, 6));
        // A gap whose range is outstanding when the feed goes.
        s.rec.on_gap(&d, (30, 40), PRODUCER, 0);
        let old = s.requests.try_recv().unwrap();
        s.rec.on_live(&tick(41));
        s.rec.close_session(&mut d, 0);
        assert!(!s.rec.stale());
        assert_eq!(s.rec.totals(), (14, 16));
        // The old session's answer comes late: ignored, in the next session too.
        s.rec.on_gap(&d, (3, 5), PRODUCER, 0);
        serve(&mut s, old, |_| true);
        assert!(
            s.rec.pump(&mut d, 0),
            "the old range does not end the new one"
        );
        assert_eq!(s.rec.totals(), (14, 16));
        let req = s.requests.try_recv().unwrap();
        assert_eq!((req.session, req.from, req.to), (1, 3, 5));
        serve(&mut s, req, |_| true);
        assert!(!s.rec.pump(&mut d, 0));
        assert_eq!(s.rec.totals(), (16, 16));
    }

    #[test]
    fn a_gone_recovery_thread_leaves_the_range_unrecovered_and_the_engine_quoting() {
        let c = config();
        let (mut d, _rx) = decider(&c);
        let (req_tx, requests) = hop::bounded(ChannelKind::Rtrb, REQUEST_HOP);
        let (out, rx) = hop::bounded::<Recovered>(ChannelKind::Rtrb, TICK_HOP);
        drop(requests);
        drop(out);
        let mut rec = Recovery::new(16, req_tx, rx);
        rec.on_gap(&d, (1, 9), PRODUCER, 0);
        assert!(!rec.stale());
        assert!(!rec.pump(&mut d, 0));
        assert_eq!(rec.totals(), (0, 8));
    }

    #[test]
    fn the_hot_side_allocates_nothing_after_it_is_made() {
        let c = config();
        let (mut d, _rx) = decider(&c);
        let mut s = side(64);
        let before = common::alloc::thread_counts();
        for round in 0..10u64 {
            let base = 1 + round * 100;
            s.rec.on_gap(&d, (base, base + 30), PRODUCER, 0);
            for seq in base + 30..base + 100 {
                s.rec.on_live(&tick(seq));
            }
            let req = s.requests.try_recv().unwrap();
            serve(&mut s, req, |_| true);
            while s.rec.pump(&mut d, 0) {
                if let Ok(req) = s.requests.try_recv() {
                    serve(&mut s, req, |_| true);
                }
            }
        }
        assert_eq!(common::alloc::thread_counts().since(&before).calls(), 0);
        assert_eq!(s.rec.totals().1, 0);
    }

    /// A stand-in for the feed's history service: answers range requests from ticks
    /// `first_held..=held_through(n)` for its `n`-th connection.
    fn fake_service(
        socket: &std::path::Path,
        first_held: u64,
        held_through: impl Fn(u64) -> u64 + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        use common::service::{decode_request, encode_response, Decoded, Response};
        use std::io::{Read, Write};
        let listener = std::os::unix::net::UnixListener::bind(socket).unwrap();
        std::thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                let Ok(mut conn) = conn else { return };
                let mut buf = Vec::new();
                let req = loop {
                    let mut b = [0u8; 64];
                    let k = conn.read(&mut b).unwrap();
                    buf.extend_from_slice(&b[..k]);
                    if let Ok(Decoded::Request(r, _)) = decode_request(&buf, 2) {
                        break r;
                    }
                };
                let Request::Range { from, to } = req else {
                    return;
                };
                let last = held_through(n as u64);
                let ticks: Vec<Tick> = (from.max(first_held)..to.min(last + 1)).map(tick).collect();
                let mut out = Vec::new();
                encode_response(&Response::Ticks(ticks.clone()), &mut out);
                encode_response(
                    &Response::Done {
                        request: req.kind(),
                        items: ticks.len() as u64,
                        first_held,
                        newest: last,
                        epoch: 1,
                        producer: PRODUCER,
                    },
                    &mut out,
                );
                conn.write_all(&out).unwrap();
            }
        })
    }

    #[test]
    fn the_recovery_thread_waits_for_ticks_not_held_yet_and_skips_evicted_ones() {
        let c = config();
        let dir = std::env::temp_dir().join(format!("hft-recovery-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("history.sock");
        let _ = std::fs::remove_file(&socket);
        // Ticks 1..=4 evicted; the history holds through 50 at first, through 70 from
        // the third connection on.
        let _server = fake_service(&socket, 5, |n| if n < 2 { 50 } else { 70 });
        let (mut req_tx, requests) = hop::bounded(ChannelKind::Rtrb, REQUEST_HOP);
        let (out, mut rx) = hop::bounded(ChannelKind::Rtrb, TICK_HOP);
        let clock = common::clock::Clock::with_source(common::clock::ClockSource::Monotonic);
        let cold = ColdThread::enter("engine_recovery", &c, &[], &clock);
        let worker = {
            let socket = socket.clone();
            std::thread::spawn(move || thread(socket, Duration::from_secs(5), requests, out, cold))
        };
        let req = RangeRequest {
            session: 3,
            producer: PRODUCER,
            from: 1,
            to: 61,
        };
        req_tx.try_send(req).unwrap();
        let mut got = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(Recovered::Tick { session, tick }) => {
                    assert_eq!(session, 3);
                    got.push(tick.seq);
                }
                Ok(Recovered::Done { session }) => {
                    assert_eq!(session, 3);
                    break;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        assert_eq!(got, (5..61).collect::<Vec<_>>());
        // A range of another feed run than the one answering: nothing applied.
        req_tx
            .try_send(RangeRequest {
                session: 4,
                producer: PRODUCER + 1,
                from: 61,
                to: 71,
            })
            .unwrap();
        loop {
            match rx.try_recv() {
                Ok(Recovered::Tick { tick, .. }) => panic!("tick {} of another feed", tick.seq),
                Ok(Recovered::Done { session }) => {
                    assert_eq!(session, 4);
                    break;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        drop(req_tx);
        let report = worker.join().unwrap();
        assert!(report.requests >= 4, "{} requests", report.requests);
        assert_eq!((report.errors, report.foreign), (0, 1));
        assert!(report.last_error.unwrap().contains("left unrecovered"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
