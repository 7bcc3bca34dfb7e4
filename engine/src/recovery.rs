//! The engine's side of gap recovery (`engine.recover`, [`common::recovery`]): the
//! decider is what recovered ticks are applied to, its orders what it emitted while
//! stale.

use crate::decider::Decider;
pub use common::recovery::*;

impl Apply for Decider {
    #[inline]
    fn apply(&mut self, tick: &common::tick::Tick) {
        Decider::apply(self, tick);
    }

    #[inline]
    fn emitted(&self) -> u64 {
        self.orders + self.orders_dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::tests::config;
    use allocator_api2::alloc::Global;
    use common::budget::ColdThread;
    use common::config::Config;
    use common::hop::{self, ChannelKind};
    use common::hop::{HopRx, HopTx};
    use common::service::Request;
    use common::tick::Tick;
    use common::tick::PX_SCALE;
    use std::time::Duration;

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
            std::thread::spawn(move || {
                let name = socket.display().to_string();
                let fetch =
                    |r: &Request| common::service::request(&socket, r, Duration::from_secs(2));
                thread(&name, fetch, Duration::from_secs(5), requests, out, cold)
            })
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
