//! An engine that reads the feed's Aeron stream itself (`engine.source = "aeron"`), with
//! no relay and no ring in between: what each message of the stream means, said the way
//! a ring's poll says it, and what the engine's hot loop reads of a ring's header (the
//! run's producer, the newest sequence number, its last sign of life), kept from the
//! messages.
//!
//! - **Joining.** The engine joins the stream at the first control message it hears (a
//!   feed sends a heartbeat before its first tick, and about once a millisecond while it
//!   has nothing to send): counting starts after that message's `last_seq`, as a ring
//!   subscriber that starts at the latest tick. Ticks heard before it are skipped and
//!   counted ([`DirectCounts::before_join`]): which run sent them is not known yet.
//! - **A jump in the sequence numbers** (what Aeron could not recover, what the feed could
//!   not offer): [`Poll::Gap`] first, then the tick, held in one slot meanwhile. A control
//!   message naming a newer sequence number than the last tick is a gap at the tail.
//! - **A duplicate or an older tick**: skipped and counted ([`DirectCounts::duplicates`]).
//! - **The feed's end**: [`Poll::Ended`], after any gap at the tail.
//! - **Another feed run** on the stream (a control message of another producer): the run
//!   being read is gone ([`Poll::Failed`], which the engine takes for a vanished feed);
//!   [`Direct::next_run`] then counts from the new run.
//! - **A message that is not one of ours**: skipped and counted ([`DirectCounts::foreign`]);
//!   a tick it stood in for shows up as a gap.
//!
//! Every sequence number of the run after the join is accounted for: the engine's
//! `published = received + missed + unread`, as with a ring. Pure bookkeeping on the
//! engine's hot thread: no allocation, no lock, no system call.

use crate::seq::{SeqTracker, Step};
use crate::wire::{Control, ControlKind, Message};
use common::tick::Tick;
use common::transport::{Poll, ProducerIdentity, Progress};
use serde::Serialize;

/// What the engine skipped of the stream, beyond what the hot loop counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DirectCounts {
    /// Ticks heard before the first control message of a run (not counted as published).
    pub before_join: u64,
    /// Ticks heard twice or out of order (skipped).
    pub duplicates: u64,
    /// Messages that are not ticks or control messages of this project (skipped).
    pub foreign: u64,
    /// Feed runs joined.
    pub runs: u64,
}

/// The state of one engine's reading of the stream (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct Direct {
    tracker: SeqTracker,
    joined: bool,
    first_seq: u64,
    held: Option<Tick>,
    end_pending: bool,
    heartbeat_raw: u64,
    /// The first control message of a newer run, heard while reading the last one.
    next: Option<Control>,
    /// The run read last, not joined again.
    left: u64,
    counts: DirectCounts,
}

/// What [`Poll::Failed`] says when another feed run takes over the stream.
pub const ANOTHER_RUN: &str = "another feed run publishes on the stream";

impl Direct {
    /// What is still to be said before the next message: the tick held after a gap, or
    /// the end after a gap at the tail. Call it first in every poll.
    #[inline]
    pub fn pending(&mut self) -> Option<Poll> {
        if let Some(t) = self.held.take() {
            return Some(Poll::Tick(t));
        }
        if self.end_pending {
            self.end_pending = false;
            return Some(Poll::Ended);
        }
        None
    }

    /// What message `m` means.
    #[inline]
    pub fn on_message(&mut self, m: Message) -> Poll {
        match m {
            Message::Tick(t) if self.joined => match self.tracker.on_tick(t.seq) {
                Step::Gap { first, missed } => {
                    self.held = Some(t);
                    Poll::Gap {
                        first_seq: first,
                        missed,
                    }
                }
                Step::Old => {
                    self.counts.duplicates += 1;
                    Poll::Empty
                }
                Step::Next | Step::NewProducer => Poll::Tick(t),
            },
            Message::Tick(_) => {
                self.counts.before_join += 1;
                Poll::Empty
            }
            Message::Control(c) => self.on_control(c),
        }
    }

    #[cold]
    fn on_control(&mut self, c: Control) -> Poll {
        if !self.joined {
            if c.producer == self.left {
                return Poll::Empty;
            }
            self.join(c);
            return if c.kind == ControlKind::End {
                Poll::Ended
            } else {
                Poll::Empty
            };
        }
        let step = self.tracker.on_control(c.last_seq, c.producer);
        if step == Step::NewProducer {
            self.next = Some(c);
            return Poll::Failed(ANOTHER_RUN);
        }
        if c.kind == ControlKind::Heartbeat {
            self.heartbeat_raw = c.sent_raw;
        }
        match (step, c.kind) {
            (Step::Gap { first, missed }, kind) => {
                self.end_pending = kind == ControlKind::End;
                Poll::Gap {
                    first_seq: first,
                    missed,
                }
            }
            (_, ControlKind::End) => Poll::Ended,
            _ => Poll::Empty,
        }
    }

    fn join(&mut self, c: Control) {
        self.tracker = SeqTracker {
            producer: c.producer,
            newest: c.last_seq,
            ..SeqTracker::default()
        };
        self.joined = true;
        self.first_seq = c.last_seq + 1;
        self.heartbeat_raw = c.sent_raw;
        self.held = None;
        self.end_pending = false;
        self.counts.runs += 1;
    }

    /// A message that is not one of ours.
    #[cold]
    pub fn on_foreign(&mut self) -> Poll {
        self.counts.foreign += 1;
        Poll::Empty
    }

    /// Leaves the run read so far: joins the newer run already heard and returns true,
    /// or returns false and joins the next run whose control message arrives (never the
    /// one left).
    pub fn next_run(&mut self) -> bool {
        self.left = self.tracker.producer;
        self.joined = false;
        self.held = None;
        self.end_pending = false;
        match self.next.take() {
            Some(c) => {
                self.join(c);
                true
            }
            None => false,
        }
    }

    /// Whether a run has been joined.
    pub fn joined(&self) -> bool {
        self.joined
    }

    /// The newest sequence number heard (in a tick or named by a control message) and
    /// the producer's last heartbeat stamp.
    #[inline]
    pub fn progress(&self) -> Progress {
        Progress {
            published: self.tracker.newest,
            heartbeat_raw: self.heartbeat_raw,
        }
    }

    /// The sequence number read next.
    pub fn next_seq(&self) -> u64 {
        match &self.held {
            Some(t) => t.seq,
            None => self.tracker.newest + 1,
        }
    }

    /// The first sequence number counted in this run (1 before a join).
    pub fn first_seq(&self) -> u64 {
        self.first_seq.max(1)
    }

    /// The run's producer (its start time; the stream does not carry a process id).
    pub fn producer(&self) -> ProducerIdentity {
        ProducerIdentity {
            pid: 0,
            epoch_ns: self.tracker.producer,
        }
    }

    /// What was skipped so far.
    pub fn counts(&self) -> DirectCounts {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(seq: u64) -> Message {
        Message::Tick(Tick {
            seq,
            ..Tick::default()
        })
    }

    fn control(kind: ControlKind, last_seq: u64, producer: u64, sent_raw: u64) -> Message {
        Message::Control(Control {
            kind,
            last_seq,
            producer,
            sent_raw,
        })
    }

    /// Polls as the engine's source does: what is pending first, then the message.
    fn feed(d: &mut Direct, msgs: &[Message]) -> Vec<Poll> {
        let mut out = Vec::new();
        for &m in msgs {
            while let Some(p) = d.pending() {
                out.push(p);
            }
            out.push(d.on_message(m));
        }
        while let Some(p) = d.pending() {
            out.push(p);
        }
        out.retain(|p| *p != Poll::Empty);
        out
    }

    fn seqs(polls: &[Poll]) -> Vec<String> {
        polls
            .iter()
            .map(|p| match p {
                Poll::Tick(t) => format!("t{}", t.seq),
                Poll::Gap { first_seq, missed } => format!("gap{first_seq}+{missed}"),
                Poll::Ended => "end".into(),
                Poll::Failed(_) => "failed".into(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn joins_at_the_first_control_message_and_says_gaps_before_the_tick() {
        use ControlKind::*;
        let mut d = Direct::default();
        let polls = feed(
            &mut d,
            &[
                tick(4), // before any control message: not counted
                control(Heartbeat, 4, 9, 100),
                tick(5),
                tick(8),
                tick(7), // late: a duplicate
                tick(9),
                control(Heartbeat, 9, 9, 200),
            ],
        );
        assert_eq!(seqs(&polls), ["t5", "gap6+2", "t8", "t9"]);
        assert_eq!(d.first_seq(), 5);
        assert_eq!(
            d.progress(),
            Progress {
                published: 9,
                heartbeat_raw: 200
            }
        );
        assert_eq!(d.next_seq(), 10);
        assert_eq!(d.producer().epoch_ns, 9);
        let c = d.counts();
        assert_eq!((c.before_join, c.duplicates, c.runs), (1, 1, 1));
        // Published after the join (5..=9) = received + missed.
        assert_eq!(9 - (d.first_seq() - 1), 3 + 2);
    }

    #[test]
    fn the_end_comes_after_a_gap_at_the_tail() {
        use ControlKind::*;
        let mut d = Direct::default();
        let polls = feed(
            &mut d,
            &[
                control(Heartbeat, 0, 1, 1),
                tick(1),
                tick(2),
                control(End, 5, 1, 0),
            ],
        );
        assert_eq!(seqs(&polls), ["t1", "t2", "gap3+3", "end"]);
        assert_eq!(d.progress().published, 5);
        // The end's stamp (0) is not a heartbeat.
        assert_eq!(d.progress().heartbeat_raw, 1);
    }

    #[test]
    fn a_tick_held_after_a_gap_is_the_next_sequence_number() {
        let mut d = Direct::default();
        d.on_message(control(ControlKind::Heartbeat, 0, 1, 1));
        assert_eq!(
            d.on_message(tick(3)),
            Poll::Gap {
                first_seq: 1,
                missed: 2
            }
        );
        assert_eq!(d.next_seq(), 3);
        assert!(matches!(d.pending(), Some(Poll::Tick(t)) if t.seq == 3));
        assert_eq!(d.next_seq(), 4);
        assert_eq!(d.pending(), None);
    }

    #[test]
    fn another_run_ends_this_one_and_is_joined_next() {
        use ControlKind::*;
        let mut d = Direct::default();
        let polls = feed(
            &mut d,
            &[
                control(Heartbeat, 0, 1, 1),
                tick(1),
                control(Heartbeat, 0, 2, 5),
            ],
        );
        assert_eq!(seqs(&polls), ["t1", "failed"]);
        assert!(d.next_run());
        assert_eq!((d.producer().epoch_ns, d.first_seq()), (2, 1));
        let polls = feed(&mut d, &[tick(1), tick(2)]);
        assert_eq!(seqs(&polls), ["t1", "t2"]);
        assert_eq!(d.counts().runs, 2);
    }

    #[test]
    fn after_an_end_the_next_run_is_joined_never_the_one_left() {
        use ControlKind::*;
        let mut d = Direct::default();
        feed(
            &mut d,
            &[control(Heartbeat, 0, 1, 1), tick(1), control(End, 1, 1, 0)],
        );
        assert!(!d.next_run());
        // The run left still heartbeats (it lingers): not joined again.
        assert!(feed(&mut d, &[control(Heartbeat, 1, 1, 9), tick(1)]).is_empty());
        assert!(!d.joined());
        feed(&mut d, &[control(Heartbeat, 0, 3, 10)]);
        assert!(d.joined());
        assert_eq!(d.producer().epoch_ns, 3);
        assert_eq!(d.counts().before_join, 1);
    }

    #[test]
    fn foreign_messages_are_counted_and_skipped() {
        let mut d = Direct::default();
        assert_eq!(d.on_foreign(), Poll::Empty);
        assert_eq!(d.counts().foreign, 1);
    }
}
