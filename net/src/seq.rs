//! The relay's account of the feed's stream: which sequence numbers arrived, which are
//! missing, and whether the stream it hears is still the same feed run.
//!
//! Aeron delivers a stream's messages in order and recovers lost packets itself within
//! its window; what it cannot recover (or what the feed never managed to offer) shows up
//! here as a jump in the feed's sequence numbers, or, at the tail, as a heartbeat or end
//! message naming a newer sequence number than the last tick. Every sequence number the
//! feed sent is counted once: `published = relayed + missing` (and, once the gaps are
//! filled from the history service, `missing = recovered + unrecovered`).
//!
//! Pure bookkeeping on the relay's receive thread: no allocation, no system call.

/// What one message means for the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The next tick in order: relay it.
    Next,
    /// A tick after a gap: sequence numbers `first..first + missed` never arrived. Relay
    /// the tick.
    Gap {
        /// First missing sequence number.
        first: u64,
        /// How many are missing.
        missed: u64,
    },
    /// A tick at or below one already seen (a duplicate): not relayed.
    Old,
    /// A message from another feed run than the one heard so far (a restarted feed):
    /// the count starts again from that run.
    NewProducer,
}

/// The stream's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqTracker {
    /// The feed run heard (0: none yet).
    pub producer: u64,
    /// The newest sequence number seen in a tick or named by a control message.
    pub newest: u64,
    /// Ticks that arrived in order or after a gap (relayed).
    pub relayed: u64,
    /// Sequence numbers that never arrived.
    pub missing: u64,
    /// Gaps (runs of missing sequence numbers).
    pub gaps: u64,
    /// Ticks that arrived twice or out of order (not relayed).
    pub old: u64,
}

impl SeqTracker {
    /// Accounts for a tick with sequence number `seq` (of the run heard last: a feed
    /// sends a heartbeat before its first tick).
    #[inline]
    pub fn on_tick(&mut self, seq: u64) -> Step {
        if seq <= self.newest {
            self.old += 1;
            return Step::Old;
        }
        let step = if seq == self.newest + 1 {
            Step::Next
        } else {
            let first = self.newest + 1;
            let missed = seq - first;
            self.missing += missed;
            self.gaps += 1;
            Step::Gap { first, missed }
        };
        self.newest = seq;
        self.relayed += 1;
        step
    }

    /// Accounts for a control message naming `last_seq` from feed run `producer`: a
    /// newer `last_seq` than any tick seen means the ticks up to it never arrived (a
    /// gap at the tail). A message from another run than the one heard so far changes
    /// nothing and returns [`Step::NewProducer`]: the caller keeps these counts as that
    /// run's and starts a new tracker for the new one.
    #[inline]
    pub fn on_control(&mut self, last_seq: u64, producer: u64) -> Step {
        if self.producer != 0 && self.producer != producer {
            return Step::NewProducer;
        }
        self.producer = producer;
        self.after_control(last_seq).unwrap_or(Step::Next)
    }

    fn after_control(&mut self, last_seq: u64) -> Option<Step> {
        if last_seq <= self.newest {
            return None;
        }
        let first = self.newest + 1;
        let missed = last_seq - self.newest;
        // A control message names a sequence number it did not carry: the ticks up to
        // it are missing.
        self.missing += missed;
        self.gaps += 1;
        self.newest = last_seq;
        Some(Step::Gap { first, missed })
    }

    /// Every sequence number of the run accounted for: relayed + missing = newest.
    pub fn balanced(&self) -> bool {
        self.relayed + self.missing == self.newest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_gaps_duplicates_and_the_tail() {
        let mut t = SeqTracker::default();
        assert_eq!(t.on_control(0, 77), Step::Next);
        assert_eq!(t.on_tick(1), Step::Next);
        assert_eq!(t.on_tick(2), Step::Next);
        assert_eq!(
            t.on_tick(5),
            Step::Gap {
                first: 3,
                missed: 2
            }
        );
        assert_eq!(t.on_tick(4), Step::Old);
        assert_eq!(t.on_tick(5), Step::Old);
        assert_eq!(t.on_tick(6), Step::Next);
        // A heartbeat naming what arrived: nothing new.
        assert_eq!(t.on_control(6, 77), Step::Next);
        // The end names two ticks that never came.
        assert_eq!(
            t.on_control(8, 77),
            Step::Gap {
                first: 7,
                missed: 2
            }
        );
        assert_eq!(
            (t.relayed, t.missing, t.gaps, t.old, t.newest),
            (4, 4, 2, 2, 8)
        );
        assert!(t.balanced());
    }

    #[test]
    fn another_feed_run_is_reported_not_counted() {
        let mut t = SeqTracker::default();
        t.on_control(0, 1);
        t.on_tick(1);
        let before = t;
        assert_eq!(t.on_control(0, 2), Step::NewProducer);
        assert_eq!(t, before);
        let mut next = SeqTracker::default();
        assert_eq!(next.on_control(0, 2), Step::Next);
        assert_eq!(next.on_tick(1), Step::Next);
        assert!(next.balanced() && before.balanced());
    }

    #[test]
    fn a_first_tick_after_the_start_is_a_gap() {
        let mut t = SeqTracker::default();
        assert_eq!(
            t.on_tick(3),
            Step::Gap {
                first: 1,
                missed: 2
            }
        );
        assert!(t.balanced());
    }
}
