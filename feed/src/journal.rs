//! The feed's side of the tick journal ([`common::journal`]): opened at start-up (main
//! thread), the earlier epochs restored into the history before the md thread starts,
//! then every tick the history thread receives appended by it.
//!
//! A write error does not stop the feed: the journal stops, the error is printed once
//! and reported in `feed_summary.json` (`journal.error`), and every tick received after
//! it is counted as `journal.unjournaled`. Everything here allocates and makes system
//! calls: start-up and the history thread only.

use common::config::{Config, JournalConfig, KeyPath};
use common::failure::Failure;
use common::journal::{Journal, JournalWriter, Restored, WriterSettings};
use common::summary::JournalReport;
use common::tick::Tick;

/// Opens the journal of `j`: a journal folder or segment that is not the project's, or
/// a journal of other symbols, is bad input located at `feed.journal.dir`. Prints what
/// was restored and what was cut.
pub fn open(
    config: &Config,
    j: &JournalConfig,
    clock: &common::clock::Clock,
) -> Result<(JournalWriter, Restored), Failure> {
    let settings = WriterSettings {
        segment_bytes: j.segment_bytes,
        retention_bytes: j.retention_bytes,
        fsync: j.fsync,
        symbols: config.symbols.iter().map(|s| s.name.clone()).collect(),
        ns_per_raw: clock.ns_per_raw(),
        on_restart: j.on_restart,
    };
    let (writer, restored) = JournalWriter::open(&j.dir, settings).map_err(|e| {
        if e.is_bad_input() {
            let key = KeyPath::key("feed").then("journal").then("dir");
            Failure::bad_input(config.error_at(&key, e.to_string()))
        } else {
            Failure::runtime(e)
        }
    })?;
    if let Some((path, bytes, why)) = &restored.truncated {
        eprintln!(
            "feed: journal: cut a torn tail of {bytes} bytes ({why}) from {}; every block before it is kept",
            path.display()
        );
    }
    for (path, bytes, why) in &restored.damaged {
        eprintln!(
            "feed: warning: journal: {} has {bytes} unreadable bytes ({why}); read up to them, left as it is",
            path.display()
        );
    }
    let continued = restored.next_seq > 1;
    eprintln!(
        "feed: journal {}: epoch {}{}; {} ticks of earlier epochs and runs in {} segments{}",
        j.dir.display(),
        writer.epoch(),
        if continued {
            format!(" continued at sequence number {}", restored.next_seq)
        } else {
            String::new()
        },
        restored.ticks.len(),
        restored.segments,
        if j.restore {
            ", restored into the history"
        } else {
            " (not restored: feed.journal.restore = false)"
        }
    );
    Ok((writer, restored))
}

/// Pushes the restored ticks into `hist` (where `feed.journal.restore`), each in the bar
/// of its second since the start of its own run (a run begins where the sequence starts
/// again or the recording clock steps back). The ticks of an epoch this run continues
/// are pushed as this run's (their sequence numbers go on in the ring, so a range can
/// reach them); the earlier epochs' as earlier ones ([`History::push_earlier`]).
/// Returns the report to start the run's journaling with.
///
/// [`History::push_earlier`]: crate::history::History::push_earlier
pub fn restore(
    config: &Config,
    restored: &Restored,
    hist: &mut crate::history::History,
) -> JournalReport {
    let restore = config.feed.journal.as_ref().is_some_and(|j| j.restore);
    let mut pushed = 0;
    if restore {
        let (mut prev, mut base) = (None::<&common::tick::Tick>, 0u64);
        for (i, t) in restored.ticks.iter().enumerate() {
            if prev.is_none_or(|p| t.seq <= p.seq || t.scheduled_raw < p.scheduled_raw) {
                base = t.scheduled_raw;
            }
            prev = Some(t);
            let second =
                (t.scheduled_raw.saturating_sub(base) as f64 * restored.ns_per_raw / 1e9) as u64;
            if i < restored.continued_from {
                hist.push_earlier(*t, second);
            } else {
                hist.push(*t, second);
            }
            pushed += 1;
        }
    }
    JournalReport {
        dir: config
            .feed
            .journal
            .as_ref()
            .map(|j| j.dir.display().to_string())
            .unwrap_or_default(),
        restored: pushed,
        continued: restored.next_seq > 1,
        first_seq: restored.next_seq,
        truncated_bytes: restored.truncated.as_ref().map_or(0, |t| t.1),
        ..JournalReport::default()
    }
}

/// The history thread's journal: the writer until an error stops it.
pub struct Journaling {
    writer: Option<JournalWriter>,
    report: JournalReport,
}

impl Journaling {
    /// Journaling into `writer`, its report begun by [`restore`].
    pub fn new(writer: JournalWriter, mut report: JournalReport) -> Journaling {
        report.epoch = writer.epoch();
        Journaling {
            writer: Some(writer),
            report,
        }
    }

    fn failed(&mut self, e: common::journal::JournalError) {
        eprintln!("feed: error: journal stopped: {e}; the feed goes on, the ticks from here on are not journaled");
        if let Some(w) = self.writer.take() {
            self.note(&w);
            self.report.unjournaled += w.pending();
        }
        self.report.error = Some(e.to_string());
    }

    fn note(&mut self, w: &JournalWriter) {
        self.report.journaled = w.ticks();
        self.report.blocks = w.blocks();
        self.report.removed_segments = w.removed();
    }

    /// Appends a tick the history thread received.
    pub fn append(&mut self, tick: Tick) {
        match self.writer.as_mut() {
            Some(w) => {
                if let Err(e) = w.append(tick) {
                    self.failed(e);
                }
            }
            None => self.report.unjournaled += 1,
        }
    }

    /// Writes the pending ticks as a block (after each batch the thread drained).
    pub fn flush(&mut self) {
        if let Some(Err(e)) = self.writer.as_mut().map(JournalWriter::flush) {
            self.failed(e);
        }
    }

    /// Flushes and syncs as `feed.journal.fsync` says (once per interval, and at the end).
    pub fn sync(&mut self) {
        if let Some(Err(e)) = self.writer.as_mut().map(JournalWriter::sync) {
            self.failed(e);
        }
    }

    /// This run's epoch.
    pub fn epoch(&self) -> u64 {
        self.report.epoch
    }

    /// The lowest sequence number of this run's sequence the journal holds, while it
    /// runs ([`JournalWriter::first_seq`]).
    pub fn first_seq(&self) -> Option<u64> {
        self.writer.as_ref().and_then(JournalWriter::first_seq)
    }

    /// Reads ticks `from..to` of this run's sequence back from the journal
    /// ([`JournalWriter::read_range`]); `None` once the journal has stopped.
    pub fn read_range(
        &self,
        from: u64,
        to: u64,
        max: usize,
        out: &mut Vec<Tick>,
    ) -> Option<Result<u64, common::journal::JournalError>> {
        self.writer
            .as_ref()
            .map(|w| w.read_range(from, to, max, out))
    }

    /// What the journal did.
    pub fn report(mut self) -> JournalReport {
        if let Some(w) = self.writer.take() {
            self.note(&w);
        }
        self.report
    }
}

/// Loads the ticks of `epoch` (default: the newest) of the journal in `dir` for
/// `feed --replay`: bad input (exit 2) if it is not a journal of ours, has no such
/// epoch or no ticks, or was recorded for other symbols than `config`'s.
pub fn load_replay(
    config: &Config,
    dir: &std::path::Path,
    epoch: Option<u64>,
    speed: f64,
) -> Result<crate::md::Replay, Failure> {
    let bad = |e: common::journal::JournalError| {
        if e.is_bad_input() {
            Failure::bad_input(anyhow::anyhow!("--replay: {e}"))
        } else {
            Failure::runtime(e)
        }
    };
    let journal = Journal::open(dir).map_err(bad)?;
    let epochs = journal.epochs();
    let epoch = match epoch {
        Some(e) if epochs.contains(&e) => e,
        Some(e) => {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "--epoch {e}: {} has the epochs {epochs:?}",
                dir.display()
            )))
        }
        None => *epochs.last().ok_or_else(|| {
            Failure::bad_input(anyhow::anyhow!(
                "--replay: {} holds no journal segment",
                dir.display()
            ))
        })?,
    };
    let reads = journal.read(Some(epoch)).map_err(bad)?;
    let symbols: Vec<String> = config.symbols.iter().map(|s| s.name.clone()).collect();
    let recorded = &reads[0].header.symbols;
    if *recorded != symbols {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--replay: {} was recorded for the symbols {recorded:?}, {} has {symbols:?}",
            dir.display(),
            config.origin.path.display()
        )));
    }
    for r in &reads {
        if let Some((bytes, why)) = &r.torn {
            eprintln!(
                "feed: warning: --replay: {} has {bytes} unreadable bytes at its end ({why}); replaying the ticks before them",
                r.path.display()
            );
        }
    }
    let mut ticks: Vec<Tick> = reads.iter().flat_map(|r| r.ticks.iter().copied()).collect();
    // An epoch continued by later feed runs may step back in recorded time where a run
    // began on another clock (after a reboot): such a step is replayed as no pause, so
    // the schedule stays monotonic. (A forward step, the time the feed was down, is
    // replayed as recorded.)
    let mut prev = ticks.first().map_or(0, |t| t.scheduled_raw);
    let mut at = prev;
    for t in &mut ticks {
        at += t.scheduled_raw.saturating_sub(prev);
        prev = t.scheduled_raw;
        t.scheduled_raw = at;
    }
    let (Some(first), Some(last)) = (ticks.first(), ticks.last()) else {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--replay: epoch {epoch} of {} holds no ticks",
            dir.display()
        )));
    };
    let ns_per_raw = reads[0].header.ns_per_raw;
    let recorded_s =
        last.scheduled_raw.saturating_sub(first.scheduled_raw) as f64 * ns_per_raw / 1e9;
    eprintln!(
        "feed: replaying {} ticks of epoch {epoch} of {} (recorded over {recorded_s:.2} s) at speed {speed}",
        ticks.len(),
        dir.display()
    );
    Ok(crate::md::Replay {
        ticks,
        ns_per_raw,
        speed,
    })
}
