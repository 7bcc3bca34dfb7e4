//! The feed's journal: every published tick, appended by the feed's history thread to
//! segment files in one folder, so that a restarted feed restores its history, a
//! recorded run can be replayed (`feed --replay`) and read (`lab history`).
//!
//! # Layout
//!
//! A journal is a folder (mode 0700) of segment files (0600) named
//! `EEEEEEEE-NNNNNNNN.journal`: the epoch (one per feed run on the journal, from 1) and
//! the segment's number within it, zero-padded so that names sort in time order.
//! Anything else in the folder is left alone. A segment is a header and blocks, all
//! integers little-endian:
//!
//! - **header**: the line [`SEGMENT_MARK`] (the files' rule mark: a file that does not
//!   begin with it is not a segment of ours), then the header length (u32, from the
//!   start of the file), the tick layout fingerprint (u64), the epoch (u64), the
//!   segment number (u64), the recording clock's nanoseconds per raw unit (f64), the
//!   creation time (u64, ns since the Unix epoch), the symbol count (u32) and each
//!   symbol name (u8 length, bytes), then a CRC-32 of everything before it (u32);
//! - **blocks**, one per batch the history thread drained: the magic `TBLK`, the tick
//!   count (u32, 1 to [`MAX_BLOCK_TICKS`]), the first tick's sequence number (u64), a
//!   CRC-32 of the count, the sequence number and the tick bytes (u32), 4 zero bytes,
//!   then the ticks, 64 bytes each ([`Tick::to_words`]).
//!
//! # Guarantees
//!
//! - **Torn tails are found and cut, nothing before them is lost.** A block is written
//!   with one `write` call after the block before it; a killed feed leaves at most its
//!   last block partly written. Reading a segment stops at the first block that is
//!   short, has a bad magic or count, a bad checksum or a tick that does not decode: that
//!   block and everything after it is the segment's torn tail ([`SegmentRead::torn`]).
//!   [`JournalWriter::open`] truncates the newest segment's torn tail, the only one a
//!   crash can leave, and reports how many bytes went; older segments are read up to
//!   theirs and never changed.
//! - **Durability as configured** (`feed.journal.fsync`): `block` fsyncs after every
//!   block, `interval` once per log interval ([`JournalWriter::sync`]), `none` leaves it
//!   to the kernel. A process crash loses nothing written; a power loss loses what was
//!   not yet synced.
//! - **Never over someone else's file.** A file with a segment's name but without the
//!   mark, or of another user, makes [`Journal::open`] fail with
//!   [`crate::files::FileError::Foreign`] and is left exactly as it was; the journal
//!   folder itself must be a folder. Retention removes whole segments, oldest first,
//!   only files that carry the mark, never the one being written.
//! - Everything here allocates and makes system calls: for cold threads and start-up,
//!   never a hot thread.

use crate::files::{self, FileError};
use crate::tick::{Tick, TICK_LAYOUT_FINGERPRINT, TICK_WORDS};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The first line of every segment file.
pub const SEGMENT_MARK: &[u8] = b"# hft-alloc-lab journal segment v1\n";
/// Most ticks in one block.
pub const MAX_BLOCK_TICKS: usize = 4096;
const BLOCK_MAGIC: &[u8; 4] = b"TBLK";
const BLOCK_HEADER: usize = 24;
const TICK_BYTES: usize = TICK_WORDS * 8;
const SUFFIX: &str = ".journal";

/// What a segment's header says.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentHeader {
    /// The feed run that wrote it (1, 2, …).
    pub epoch: u64,
    /// Its number within the epoch (1, 2, …).
    pub segment: u64,
    /// Nanoseconds per raw clock unit of the recording machine (to convert the ticks'
    /// `scheduled_raw` and `published_raw`).
    pub ns_per_raw: f64,
    /// When it was created, nanoseconds since the Unix epoch.
    pub created_unix_ns: u64,
    /// The configuration's symbol names, in index order.
    pub symbols: Vec<String>,
}

/// One segment as read: its header, its good ticks, and its torn tail if any.
#[derive(Debug)]
pub struct SegmentRead {
    /// The file.
    pub path: PathBuf,
    /// Its header.
    pub header: SegmentHeader,
    /// Every tick of its good blocks, in order.
    pub ticks: Vec<Tick>,
    /// Bytes from the start of the file to the end of the last good block.
    pub good_bytes: u64,
    /// The torn tail: its length in bytes and why it is not a block.
    pub torn: Option<(u64, String)>,
    /// Sparse index of its good blocks: (file offset, first sequence number) of the
    /// first block and of one block at least every [`MARK_BYTES`] after it.
    pub marks: Vec<(u64, u64)>,
}

/// Bytes of a segment between two entries of its sparse block index: a range read
/// starts at most this far before the block it needs.
pub const MARK_BYTES: u64 = 64 << 10;

/// Adds the block at `offset` (first sequence number `seq`) to `marks` if it is the
/// first one or [`MARK_BYTES`] past the last entry.
fn mark(marks: &mut Vec<(u64, u64)>, offset: u64, seq: u64) {
    if marks.last().is_none_or(|m| offset >= m.0 + MARK_BYTES) {
        marks.push((offset, seq));
    }
}

/// One segment of this run's sequence, as [`JournalWriter::read_range`] finds it.
#[derive(Debug)]
struct Indexed {
    path: PathBuf,
    marks: Vec<(u64, u64)>,
}

/// A journal folder that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file or the folder is not the project's (left as it was), or a file system
    /// call failed.
    #[error(transparent)]
    File(#[from] FileError),
    /// A segment of ours whose header cannot be read: the journal is damaged beyond a
    /// torn tail.
    #[error("{}: not a readable journal segment: {why}", path.display())]
    BadHeader {
        /// The segment.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// There is no journal folder at the path given.
    #[error("{}: no such journal folder", dir.display())]
    Missing {
        /// The path.
        dir: PathBuf,
    },
    /// The journal was recorded with other symbols than the configuration's.
    #[error("{} was recorded for the symbols {recorded:?}, the configuration has {configured:?}: use another journal folder", dir.display())]
    Symbols {
        /// The journal folder.
        dir: PathBuf,
        /// Its symbols.
        recorded: Vec<String>,
        /// The configuration's.
        configured: Vec<String>,
    },
    /// A written block that does not read back whole (found by a range read).
    #[error("{}: {why}", path.display())]
    Damaged {
        /// The segment.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The epoch to continue recorded sequence numbers a ring cannot go on from.
    #[error("{}: the newest epoch's last sequence number is {last}: it cannot be continued; set feed.journal.on_restart = \"new_epoch\"", dir.display())]
    SequenceExhausted {
        /// The journal folder.
        dir: PathBuf,
        /// The highest sequence number recorded.
        last: u64,
    },
}

/// Sequence numbers a continued epoch may reach (a ring's are below 2⁶³).
const MAX_SEQ: u64 = 1 << 62;

impl JournalError {
    /// Whether this is bad input (someone else's file, a journal of other symbols or a
    /// damaged header) rather than a failure while running.
    pub fn is_bad_input(&self) -> bool {
        match self {
            JournalError::File(e) => e.is_foreign(),
            JournalError::BadHeader { .. }
            | JournalError::Symbols { .. }
            | JournalError::SequenceExhausted { .. }
            | JournalError::Missing { .. } => true,
            JournalError::Damaged { .. } => false,
        }
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> JournalError + 'a {
    move |error| {
        JournalError::File(FileError::Io {
            action,
            path: path.to_path_buf(),
            error,
        })
    }
}

/// The segments of a journal folder, oldest first.
pub struct Journal {
    /// (epoch, segment, path).
    segments: Vec<(u64, u64, PathBuf)>,
}

/// `EEEEEEEE-NNNNNNNN.journal` → (epoch, segment).
fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(SUFFIX)?;
    let (e, n) = stem.split_once('-')?;
    let digits = |s: &str| s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(e) || !digits(n) {
        return None;
    }
    Some((e.parse().ok()?, n.parse().ok()?))
}

fn segment_name(epoch: u64, segment: u64) -> String {
    format!("{epoch:08}-{segment:08}{SUFFIX}")
}

impl Journal {
    /// The journal in `dir` (which must exist and be a folder); every file with a
    /// segment's name must carry the mark, else [`FileError::Foreign`].
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        let meta = std::fs::symlink_metadata(dir).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => JournalError::Missing {
                dir: dir.to_path_buf(),
            },
            _ => io_err("open journal folder", dir)(e),
        })?;
        if let Some(what) = files::describe_special(dir, &meta).filter(|_| !meta.is_dir()) {
            return Err(FileError::Foreign {
                path: dir.to_path_buf(),
                what,
            }
            .into());
        }
        if !meta.is_dir() {
            return Err(FileError::Foreign {
                path: dir.to_path_buf(),
                what: format!("a file of {} bytes, not a journal folder", meta.len()),
            }
            .into());
        }
        let mut segments = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err("list", dir))? {
            let entry = entry.map_err(io_err("list", dir))?;
            let Some((epoch, segment)) = entry.file_name().to_str().and_then(parse_name) else {
                continue;
            };
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).map_err(io_err("examine", &path))?;
            let head = files::read_head(&path, &meta, SEGMENT_MARK.len()).map_err(|what| {
                FileError::Foreign {
                    path: path.clone(),
                    what,
                }
            })?;
            if head != SEGMENT_MARK {
                return Err(FileError::Foreign {
                    path,
                    what: format!(
                        "a file of {} bytes without a journal segment's mark",
                        meta.len()
                    ),
                }
                .into());
            }
            segments.push((epoch, segment, path));
        }
        segments.sort();
        Ok(Journal { segments })
    }

    /// The newest epoch recorded (0: none).
    pub fn last_epoch(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.0)
    }

    /// The epochs recorded, oldest first.
    pub fn epochs(&self) -> Vec<u64> {
        let mut e: Vec<u64> = self.segments.iter().map(|s| s.0).collect();
        e.dedup();
        e
    }

    /// The segment files, oldest first.
    pub fn segment_paths(&self) -> impl Iterator<Item = &Path> {
        self.segments.iter().map(|s| s.2.as_path())
    }

    /// Reads every segment (of `epoch` only, if given), oldest first.
    pub fn read(&self, epoch: Option<u64>) -> Result<Vec<SegmentRead>, JournalError> {
        self.segments
            .iter()
            .filter(|s| epoch.is_none_or(|e| s.0 == e))
            .map(|s| read_segment(&s.2))
            .collect()
    }
}

fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

fn encode_header(h: &SegmentHeader) -> Vec<u8> {
    let mut b = SEGMENT_MARK.to_vec();
    b.extend_from_slice(&0u32.to_le_bytes()); // length, set below
    b.extend_from_slice(&TICK_LAYOUT_FINGERPRINT.to_le_bytes());
    b.extend_from_slice(&h.epoch.to_le_bytes());
    b.extend_from_slice(&h.segment.to_le_bytes());
    b.extend_from_slice(&h.ns_per_raw.to_le_bytes());
    b.extend_from_slice(&h.created_unix_ns.to_le_bytes());
    b.extend_from_slice(&(h.symbols.len() as u32).to_le_bytes());
    for s in &h.symbols {
        let name = &s.as_bytes()[..s.len().min(255)];
        b.push(name.len() as u8);
        b.extend_from_slice(name);
    }
    let len = (b.len() + 4) as u32;
    let at = SEGMENT_MARK.len();
    b[at..at + 4].copy_from_slice(&len.to_le_bytes());
    let c = crc(&[&b]);
    b.extend_from_slice(&c.to_le_bytes());
    b
}

/// Reads fields off the front of a byte slice.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (a, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

fn decode_header(bytes: &[u8]) -> Result<(SegmentHeader, usize), String> {
    let mut f = Fields(bytes);
    if f.take(SEGMENT_MARK.len()) != Some(SEGMENT_MARK) {
        return Err("no journal segment mark".into());
    }
    let short = || "the header is cut short".to_string();
    let len = f.u32().ok_or_else(short)? as usize;
    if len < SEGMENT_MARK.len() + 48 || len > bytes.len() {
        return Err(format!("header length {len} out of range"));
    }
    let stored = u32::from_le_bytes(bytes[len - 4..len].try_into().map_err(|_| short())?);
    if crc(&[&bytes[..len - 4]]) != stored {
        return Err("the header's checksum does not match".into());
    }
    let fingerprint = f.u64().ok_or_else(short)?;
    if fingerprint != TICK_LAYOUT_FINGERPRINT {
        return Err(format!(
            "written with another tick layout (fingerprint {fingerprint:016x}, this build {TICK_LAYOUT_FINGERPRINT:016x})"
        ));
    }
    let epoch = f.u64().ok_or_else(short)?;
    let segment = f.u64().ok_or_else(short)?;
    let ns_per_raw = f64::from_bits(f.u64().ok_or_else(short)?);
    let created_unix_ns = f.u64().ok_or_else(short)?;
    let n = f.u32().ok_or_else(short)?;
    let mut symbols = Vec::new();
    for _ in 0..n {
        let l = f.take(1).ok_or_else(short)?[0] as usize;
        let name = f.take(l).ok_or_else(short)?;
        symbols.push(String::from_utf8(name.to_vec()).map_err(|_| "a symbol name is not UTF-8")?);
    }
    if bytes.len() - f.0.len() != len - 4 {
        return Err("the header's length does not match its fields".into());
    }
    Ok((
        SegmentHeader {
            epoch,
            segment,
            ns_per_raw,
            created_unix_ns,
            symbols,
        },
        len,
    ))
}

fn encode_block(ticks: &[Tick], out: &mut Vec<u8>) {
    debug_assert!(!ticks.is_empty() && ticks.len() <= MAX_BLOCK_TICKS);
    out.clear();
    out.extend_from_slice(BLOCK_MAGIC);
    out.extend_from_slice(&(ticks.len() as u32).to_le_bytes());
    out.extend_from_slice(&ticks[0].seq.to_le_bytes());
    out.extend_from_slice(&[0u8; 8]); // checksum and reserved, set below
    for t in ticks {
        t.write_le(out);
    }
    let c = crc(&[&out[4..16], &out[BLOCK_HEADER..]]);
    out[16..20].copy_from_slice(&c.to_le_bytes());
}

/// What [`decode_blocks`] found.
struct Blocks {
    /// The good blocks' ticks.
    ticks: Vec<Tick>,
    /// The bytes the good blocks span.
    good: usize,
    /// Why the rest (if any) is not a block.
    torn: Option<String>,
    /// The sparse index ([`SegmentRead::marks`]).
    marks: Vec<(u64, u64)>,
}

/// Decodes the blocks of `body` (a segment after its header, which is `base` bytes
/// long).
fn decode_blocks(body: &[u8], base: u64) -> Blocks {
    let mut ticks = Vec::new();
    let mut marks = Vec::new();
    let mut at = 0;
    let torn = loop {
        let rest = &body[at..];
        if rest.is_empty() {
            break None;
        }
        let Some(head) = rest.get(..BLOCK_HEADER) else {
            break Some(format!("a block header cut short ({} bytes)", rest.len()));
        };
        if &head[..4] != BLOCK_MAGIC {
            break Some("no block magic".into());
        }
        let count = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
        if count == 0 || count > MAX_BLOCK_TICKS {
            break Some(format!("a block count of {count}"));
        }
        let len = BLOCK_HEADER + count * TICK_BYTES;
        let Some(block) = rest.get(..len) else {
            break Some(format!(
                "a block of {count} ticks cut short ({} of {len} bytes)",
                rest.len()
            ));
        };
        let stored = u32::from_le_bytes(head[16..20].try_into().expect("4 bytes"));
        if crc(&[&head[4..16], &block[BLOCK_HEADER..]]) != stored {
            break Some("a block whose checksum does not match".into());
        }
        let first = ticks.len();
        let decoded = block[BLOCK_HEADER..]
            .chunks_exact(TICK_BYTES)
            .map(Tick::read_le)
            .try_for_each(|t| t.map(|t| ticks.push(t)));
        if decoded.is_none() {
            ticks.truncate(first);
            break Some("a block with a tick that does not decode".into());
        }
        let seq = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
        mark(&mut marks, base + at as u64, seq);
        at += len;
    };
    Blocks {
        ticks,
        good: at,
        torn,
        marks,
    }
}

/// Reads one segment file.
pub fn read_segment(path: &Path) -> Result<SegmentRead, JournalError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_err("read", path))?;
    let (header, len) = decode_header(&bytes).map_err(|why| JournalError::BadHeader {
        path: path.to_path_buf(),
        why,
    })?;
    let Blocks {
        ticks,
        good,
        torn: why,
        marks,
    } = decode_blocks(&bytes[len..], len as u64);
    let good_bytes = (len + good) as u64;
    Ok(SegmentRead {
        path: path.to_path_buf(),
        header,
        ticks,
        good_bytes,
        torn: why.map(|w| (bytes.len() as u64 - good_bytes, w)),
        marks,
    })
}

/// `feed.journal.fsync`: when the journal's data is forced to disk.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Fsync {
    /// Never: the kernel writes it back in its own time (a process crash loses nothing,
    /// a power loss what was not yet written back).
    None,
    /// Once per log interval.
    #[default]
    Interval,
    /// After every block.
    Block,
}

impl Fsync {
    /// The name in the config file.
    pub fn name(self) -> &'static str {
        match self {
            Fsync::None => "none",
            Fsync::Interval => "interval",
            Fsync::Block => "block",
        }
    }
}

/// `feed.journal.on_restart`: what a feed started on a journal that holds earlier
/// epochs does with their sequence.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnRestart {
    /// Start a new epoch whose sequence begins at 1 again.
    #[default]
    NewEpoch,
    /// Go on with the newest epoch: its next segment, and the sequence number after
    /// the last one it recorded (the ring's first tick gets it), so that the journal's
    /// sequence numbers stay unique across feed runs and a range can reach back past a
    /// restart. The journal is the record: ticks a killed feed published but had not
    /// yet journaled (its last batch) are numbered again by the next run.
    Continue,
}

impl OnRestart {
    /// The name in the config file.
    pub fn name(self) -> &'static str {
        match self {
            OnRestart::NewEpoch => "new_epoch",
            OnRestart::Continue => "continue",
        }
    }
}

/// What [`JournalWriter::open`] found and restored.
#[derive(Debug, Default)]
pub struct Restored {
    /// Every good tick of the earlier epochs (and runs), oldest first.
    pub ticks: Vec<Tick>,
    /// Index in `ticks` of the first tick of the epoch this run continues
    /// ([`OnRestart::Continue`]); `ticks.len()` when it begins a new epoch.
    pub continued_from: usize,
    /// The sequence number this run's first tick gets: 1 for a new epoch, one past the
    /// highest the continued epoch recorded.
    pub next_seq: u64,
    /// Segments read.
    pub segments: usize,
    /// The torn tail cut from the newest segment: its length and why.
    pub truncated: Option<(PathBuf, u64, String)>,
    /// Torn tails of older segments, read up to them and left as they are.
    pub damaged: Vec<(PathBuf, u64, String)>,
    /// Nanoseconds per raw clock unit of the newest segment read (0: none read).
    pub ns_per_raw: f64,
}

/// Appends ticks to a journal: a new epoch, its segments rotated at `segment_bytes`,
/// the oldest segments removed beyond `retention_bytes`. For the history thread.
pub struct JournalWriter {
    dir: PathBuf,
    epoch: u64,
    segment: u64,
    file: File,
    path: PathBuf,
    written: u64,
    segment_bytes: u64,
    retention_bytes: u64,
    fsync: Fsync,
    header: SegmentHeader,
    /// (path, bytes) of the closed segments still kept, oldest first.
    kept: Vec<(PathBuf, u64)>,
    pending: Vec<Tick>,
    buf: Vec<u8>,
    blocks: u64,
    ticks: u64,
    removed: u64,
    /// This run's sequence in the journal: the segments of this epoch this writer wrote
    /// or (continuing it) found, oldest first, each with its sparse block index.
    index: std::collections::VecDeque<Indexed>,
}

/// The settings of a [`JournalWriter`].
#[derive(Clone, Debug)]
pub struct WriterSettings {
    /// A segment is closed once it holds this many bytes.
    pub segment_bytes: u64,
    /// The oldest segments are removed while all of them together hold more.
    pub retention_bytes: u64,
    /// When data is synced.
    pub fsync: Fsync,
    /// The configuration's symbols (checked against the journal's).
    pub symbols: Vec<String>,
    /// The recording clock's nanoseconds per raw unit.
    pub ns_per_raw: f64,
    /// A new epoch, or the newest one continued.
    pub on_restart: OnRestart,
}

impl JournalWriter {
    /// Opens (creating the folder, 0700, if missing) the journal in `dir`, reads what
    /// earlier epochs recorded (cutting the newest segment's torn tail), and starts the
    /// next epoch with a new segment, or (with [`OnRestart::Continue`]) the newest
    /// epoch's next segment.
    pub fn open(
        dir: &Path,
        settings: WriterSettings,
    ) -> Result<(JournalWriter, Restored), JournalError> {
        if std::fs::symlink_metadata(dir).is_err() {
            files::create_dir_all(dir)?;
        }
        let journal = Journal::open(dir)?;
        let mut restored = Restored::default();
        let mut kept = Vec::new();
        let n = journal.segments.len();
        let last_epoch = journal.last_epoch();
        let continuing = settings.on_restart == OnRestart::Continue && last_epoch > 0;
        let mut last_segment = 0;
        let mut index = std::collections::VecDeque::new();
        for (i, (epoch, segment, path)) in journal.segments.iter().enumerate() {
            if continuing && *epoch == last_epoch && last_segment == 0 {
                restored.continued_from = restored.ticks.len();
            }
            if *epoch == last_epoch {
                last_segment = *segment;
            }
            let read = read_segment(path)?;
            if read.header.symbols != settings.symbols {
                return Err(JournalError::Symbols {
                    dir: dir.to_path_buf(),
                    recorded: read.header.symbols,
                    configured: settings.symbols,
                });
            }
            let mut size = read.good_bytes;
            if let Some((torn, why)) = read.torn {
                if i + 1 == n {
                    let f = OpenOptions::new()
                        .write(true)
                        .custom_flags(libc::O_NOFOLLOW)
                        .open(path)
                        .map_err(io_err("open", path))?;
                    f.set_len(read.good_bytes)
                        .and_then(|()| f.sync_all())
                        .map_err(io_err("truncate", path))?;
                    restored.truncated = Some((path.clone(), torn, why));
                } else {
                    size += torn;
                    restored.damaged.push((path.clone(), torn, why));
                }
            }
            restored.ticks.extend_from_slice(&read.ticks);
            if continuing && *epoch == last_epoch {
                index.push_back(Indexed {
                    path: path.clone(),
                    marks: read.marks,
                });
            }
            restored.ns_per_raw = read.header.ns_per_raw;
            restored.segments += 1;
            kept.push((path.clone(), size));
        }
        if !continuing {
            restored.continued_from = restored.ticks.len();
        }
        restored.next_seq = restored.ticks[restored.continued_from..]
            .iter()
            .map(|t| t.seq)
            .max()
            .map_or(1, |s| s + 1);
        if restored.next_seq >= MAX_SEQ {
            return Err(JournalError::SequenceExhausted {
                dir: dir.to_path_buf(),
                last: restored.next_seq - 1,
            });
        }
        let (epoch, segment) = if continuing {
            (last_epoch, last_segment + 1)
        } else {
            (last_epoch + 1, 1)
        };
        let header = SegmentHeader {
            epoch,
            segment,
            ns_per_raw: settings.ns_per_raw,
            created_unix_ns: 0,
            symbols: settings.symbols,
        };
        let (file, path, written) = create_segment(dir, &header)?;
        index.push_back(Indexed {
            path: path.clone(),
            marks: Vec::new(),
        });
        let mut w = JournalWriter {
            dir: dir.to_path_buf(),
            epoch: header.epoch,
            segment,
            file,
            path,
            written,
            segment_bytes: settings.segment_bytes,
            retention_bytes: settings.retention_bytes,
            fsync: settings.fsync,
            header,
            kept,
            pending: Vec::with_capacity(MAX_BLOCK_TICKS),
            buf: Vec::with_capacity(BLOCK_HEADER + MAX_BLOCK_TICKS * TICK_BYTES),
            blocks: 0,
            ticks: 0,
            removed: 0,
            index,
        };
        w.retire()?;
        Ok((w, restored))
    }

    /// This run's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Ticks written so far.
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// Ticks appended but not yet written (the next block).
    pub fn pending(&self) -> u64 {
        self.pending.len() as u64
    }

    /// Blocks written so far.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Segments removed by retention so far.
    pub fn removed(&self) -> u64 {
        self.removed
    }

    /// The lowest sequence number of this run's sequence (this epoch) the journal still
    /// holds in written blocks; `None` if none.
    pub fn first_seq(&self) -> Option<u64> {
        self.index.iter().find_map(|s| s.marks.first()).map(|m| m.1)
    }

    /// Reads the written ticks of this run's sequence with sequence numbers in
    /// `from..to` into `out`, in order, at most `max` of them; returns the sequence
    /// number to go on from: past the last tick read when `max` stopped it, else `to`
    /// (the journal holds no more of the range; ticks still pending are not read).
    /// A block that does not read back whole is [`JournalError::Damaged`].
    ///
    /// Starts at the sparse index's entry before `from` (at most [`MARK_BYTES`] plus a
    /// block ahead of it) and reads the segment files through a 64 KiB buffer: for the
    /// history thread, which calls it for ranges older than its memory.
    pub fn read_range(
        &self,
        from: u64,
        to: u64,
        max: usize,
        out: &mut Vec<Tick>,
    ) -> Result<u64, JournalError> {
        let starts = |s: &Indexed| s.marks.first().map(|m| m.1);
        let first = self
            .index
            .partition_point(|s| starts(s).is_some_and(|seq| seq <= from))
            .saturating_sub(1);
        let mut head = [0u8; BLOCK_HEADER];
        let mut block = Vec::new();
        for seg in self.index.range(first..) {
            let Some(&(_, seg_first)) = seg.marks.first() else {
                continue;
            };
            if seg_first >= to {
                break;
            }
            let m = seg.marks.partition_point(|m| m.1 <= from).saturating_sub(1);
            let file = File::open(&seg.path).map_err(io_err("read", &seg.path))?;
            let mut r = io::BufReader::with_capacity(64 << 10, file);
            let mut at = seg.marks[m].0;
            r.seek(SeekFrom::Start(at))
                .map_err(io_err("read", &seg.path))?;
            let damaged = |why: String| JournalError::Damaged {
                path: seg.path.clone(),
                why,
            };
            loop {
                match r.read_exact(&mut head) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(io_err("read", &seg.path)(e)),
                }
                let seq = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
                if seq >= to {
                    return Ok(to);
                }
                let count = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
                if &head[..4] != BLOCK_MAGIC || count == 0 || count > MAX_BLOCK_TICKS {
                    return Err(damaged(format!("no block at byte {at}")));
                }
                block.clear();
                block.extend_from_slice(&head);
                block.resize(BLOCK_HEADER + count * TICK_BYTES, 0);
                r.read_exact(&mut block[BLOCK_HEADER..])
                    .map_err(|e| damaged(format!("the block at byte {at}: {e}")))?;
                let Blocks { ticks, torn, .. } = decode_blocks(&block, at);
                if let Some(why) = torn {
                    return Err(damaged(format!("the block at byte {at}: {why}")));
                }
                for t in ticks {
                    if t.seq >= to {
                        return Ok(to);
                    }
                    if t.seq >= from {
                        out.push(t);
                        if out.len() >= max {
                            return Ok(t.seq + 1);
                        }
                    }
                }
                at += block.len() as u64;
            }
        }
        Ok(to)
    }

    /// Adds `tick`; a full block is written at once.
    pub fn append(&mut self, tick: Tick) -> Result<(), JournalError> {
        self.pending.push(tick);
        if self.pending.len() == MAX_BLOCK_TICKS {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the pending ticks as one block (nothing if none are pending).
    pub fn flush(&mut self) -> Result<(), JournalError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.written >= self.segment_bytes {
            self.rotate()?;
        }
        encode_block(&self.pending, &mut self.buf);
        self.file
            .write_all(&self.buf)
            .map_err(io_err("append to", &self.path))?;
        if let Some(seg) = self.index.back_mut() {
            mark(&mut seg.marks, self.written, self.pending[0].seq);
        }
        if self.fsync == Fsync::Block {
            self.file.sync_data().map_err(io_err("sync", &self.path))?;
        }
        self.written += self.buf.len() as u64;
        self.blocks += 1;
        self.ticks += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Flushes, and syncs where the policy is `interval` or `block`: once per log
    /// interval, and at the end of the run.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.flush()?;
        if self.fsync != Fsync::None {
            self.file.sync_data().map_err(io_err("sync", &self.path))?;
        }
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), JournalError> {
        if self.fsync != Fsync::None {
            self.file.sync_data().map_err(io_err("sync", &self.path))?;
        }
        self.kept.push((self.path.clone(), self.written));
        self.segment += 1;
        self.header.segment = self.segment;
        let (file, path, written) = create_segment(&self.dir, &self.header)?;
        self.index.push_back(Indexed {
            path: path.clone(),
            marks: Vec::new(),
        });
        self.file = file;
        self.path = path;
        self.written = written;
        self.retire()
    }

    /// Removes the oldest closed segments while everything kept holds more than the
    /// retention.
    fn retire(&mut self) -> Result<(), JournalError> {
        let mut total: u64 = self.kept.iter().map(|k| k.1).sum::<u64>() + self.written;
        while total > self.retention_bytes && !self.kept.is_empty() {
            let (path, bytes) = self.kept.remove(0);
            self.index.retain(|s| s.path != path);
            files::remove_own_with(&path, |head| head.starts_with(SEGMENT_MARK))?;
            total -= bytes;
            self.removed += 1;
        }
        Ok(())
    }
}

fn create_segment(
    dir: &Path,
    header: &SegmentHeader,
) -> Result<(File, PathBuf, u64), JournalError> {
    let path = dir.join(segment_name(header.epoch, header.segment));
    let mut header = header.clone();
    header.created_unix_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let bytes = encode_header(&header);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => JournalError::File(FileError::Foreign {
                path: path.clone(),
                what: "a file that appeared while the journal was opened".into(),
            }),
            _ => io_err("create", &path)(e),
        })?;
    file.write_all(&bytes).map_err(io_err("write", &path))?;
    file.seek(SeekFrom::End(0)).map_err(io_err("seek", &path))?;
    let meta = file.metadata().map_err(io_err("examine", &path))?;
    debug_assert_eq!(meta.mode() & 0o077, 0);
    Ok((file, path, bytes.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tick::TickKind;

    fn tick(seq: u64) -> Tick {
        Tick {
            seq,
            symbol: (seq % 3) as u16,
            kind: if seq.is_multiple_of(5) {
                TickKind::Trade
            } else {
                TickKind::Quote
            },
            bid_px_e8: 100 + seq as i64,
            ask_px_e8: 102 + seq as i64,
            scheduled_raw: seq * 1000,
            published_raw: seq * 1000 + 7,
            ..Tick::default()
        }
    }

    fn settings() -> WriterSettings {
        WriterSettings {
            segment_bytes: 1 << 20,
            retention_bytes: 1 << 30,
            fsync: Fsync::None,
            symbols: vec!["A".into(), "B".into(), "C".into()],
            ns_per_raw: 0.5,
            on_restart: OnRestart::NewEpoch,
        }
    }

    fn write_epoch(dir: &Path, s: WriterSettings, seqs: std::ops::RangeInclusive<u64>) -> Restored {
        let (mut w, restored) = JournalWriter::open(dir, s).unwrap();
        for seq in seqs {
            w.append(tick(seq)).unwrap();
            if seq.is_multiple_of(1000) {
                w.flush().unwrap();
            }
        }
        w.sync().unwrap();
        restored
    }

    #[test]
    fn ticks_come_back_in_order_with_their_header() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("j");
        assert!(write_epoch(&j, settings(), 1..=10_000).ticks.is_empty());
        let journal = Journal::open(&j).unwrap();
        assert_eq!(journal.epochs(), [1]);
        let reads = journal.read(None).unwrap();
        let ticks: Vec<Tick> = reads.iter().flat_map(|r| r.ticks.iter().copied()).collect();
        assert_eq!(ticks, (1..=10_000).map(tick).collect::<Vec<_>>());
        assert!(reads.iter().all(|r| r.torn.is_none()));
        assert_eq!(reads[0].header.symbols, ["A", "B", "C"]);
        assert_eq!(reads[0].header.ns_per_raw, 0.5);
        let mode = std::fs::metadata(&reads[0].path).unwrap().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&j).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn a_second_run_restores_the_first_and_starts_a_new_epoch() {
        let dir = tempfile::tempdir().unwrap();
        write_epoch(dir.path(), settings(), 1..=500);
        let restored = write_epoch(dir.path(), settings(), 1..=300);
        assert_eq!(restored.ticks, (1..=500).map(tick).collect::<Vec<_>>());
        assert!(restored.truncated.is_none());
        let journal = Journal::open(dir.path()).unwrap();
        assert_eq!(journal.epochs(), [1, 2]);
        assert_eq!(journal.read(Some(2)).unwrap()[0].ticks.len(), 300);
        assert_eq!((restored.continued_from, restored.next_seq), (500, 1));
    }

    /// `on_restart = continue`: the newest epoch goes on in its next segment, and the
    /// next run's sequence starts one past the last recorded; the epochs before it
    /// are restored as earlier ones. On an empty journal it is the first epoch.
    #[test]
    fn a_continued_run_goes_on_with_the_newest_epochs_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let cont = || WriterSettings {
            on_restart: OnRestart::Continue,
            ..settings()
        };
        let first = write_epoch(dir.path(), cont(), 1..=200);
        assert_eq!((first.continued_from, first.next_seq), (0, 1));
        write_epoch(dir.path(), settings(), 1..=500);
        let second = write_epoch(dir.path(), cont(), 501..=800);
        assert_eq!((second.continued_from, second.next_seq), (200, 501));
        let third = write_epoch(dir.path(), cont(), 801..=900);
        assert_eq!((third.continued_from, third.next_seq), (200, 801));
        assert_eq!(third.ticks.len(), 200 + 800);
        let journal = Journal::open(dir.path()).unwrap();
        assert_eq!(journal.epochs(), [1, 2]);
        let reads = journal.read(Some(2)).unwrap();
        assert_eq!(
            reads.iter().map(|r| r.header.segment).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        let seqs: Vec<u64> = reads
            .iter()
            .flat_map(|r| r.ticks.iter().map(|t| t.seq))
            .collect();
        assert_eq!(seqs, (1..=900).collect::<Vec<_>>());
    }

    /// Ranges read back from the journal, across blocks of every size, index entries
    /// and segments, after retention removed the oldest, and from a continued epoch's
    /// earlier run; a range is cut at `max` and goes on where it stopped.
    #[test]
    fn ranges_are_read_back_by_sequence_number() {
        let dir = tempfile::tempdir().unwrap();
        let s = WriterSettings {
            segment_bytes: 64 * 1024,
            retention_bytes: 512 * 1024,
            on_restart: OnRestart::Continue,
            ..settings()
        };
        let write = |seqs: std::ops::RangeInclusive<u64>| {
            let (mut w, _) = JournalWriter::open(dir.path(), s.clone()).unwrap();
            for seq in seqs {
                // Every 7th sequence number is missing (dropped before the journal);
                // blocks of 1 to 300 ticks.
                if seq % 7 != 0 {
                    w.append(tick(seq)).unwrap();
                }
                if (seq * 31) % 300 == 0 {
                    w.flush().unwrap();
                }
            }
            w.flush().unwrap();
            w
        };
        drop(write(1..=3_000));
        let w = write(3_001..=12_000);
        assert!(w.removed() > 0, "retention removed segments");
        let oldest = w.first_seq().unwrap();
        assert!(oldest > 1, "the oldest segments are gone");
        let want = |from: u64, to: u64| -> Vec<u64> {
            (from.max(oldest)..to.min(12_001))
                .filter(|s| s % 7 != 0)
                .collect()
        };
        for (from, to) in [
            (1, 2),
            (1, oldest + 10),
            (oldest, oldest + 1),
            (2_990, 3_020),
            (5_000, 5_001),
            (7_777, 9_999),
            (11_990, 12_100),
            (13_000, 14_000),
        ] {
            let mut out = Vec::new();
            let next = w.read_range(from, to, usize::MAX, &mut out).unwrap();
            assert_eq!(next, to, "{from}..{to}");
            assert_eq!(
                out.iter().map(|t| t.seq).collect::<Vec<_>>(),
                want(from, to),
                "{from}..{to}"
            );
            assert!(out.iter().all(|t| *t == tick(t.seq)));
        }
        // In pieces of at most 100.
        let (mut next, mut all) = (4_000, Vec::new());
        while next < 6_000 {
            let mut out = Vec::new();
            next = w.read_range(next, 6_000, 100, &mut out).unwrap();
            assert!(out.len() <= 100);
            all.extend(out.iter().map(|t| t.seq));
        }
        assert_eq!(all, want(4_000, 6_000));
    }

    #[test]
    fn segments_rotate_and_retention_removes_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let s = WriterSettings {
            segment_bytes: 64 * 1024,
            retention_bytes: 256 * 1024,
            ..settings()
        };
        let (mut w, _) = JournalWriter::open(dir.path(), s).unwrap();
        for seq in 1..=20_000 {
            w.append(tick(seq)).unwrap();
            if seq.is_multiple_of(100) {
                w.flush().unwrap();
            }
        }
        w.sync().unwrap();
        assert!(w.removed() > 0, "retention removed segments");
        let journal = Journal::open(dir.path()).unwrap();
        let total: u64 = journal
            .segment_paths()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        // Within the retention plus the segment being written past its size by a block.
        assert!(total <= 256 * 1024 + 64 * 1024 + 100 * 64 + 24, "{total}");
        let ticks: Vec<u64> = journal
            .read(None)
            .unwrap()
            .iter()
            .flat_map(|r| r.ticks.iter().map(|t| t.seq))
            .collect();
        assert_eq!(*ticks.last().unwrap(), 20_000);
        let first = ticks[0];
        assert_eq!(
            ticks,
            (first..=20_000).collect::<Vec<_>>(),
            "a contiguous tail kept"
        );
    }

    /// Every way a tail can be torn: cut anywhere in a block, or overwritten.
    #[test]
    fn a_torn_tail_is_cut_to_the_last_good_block_and_nothing_before_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        write_epoch(dir.path(), settings(), 1..=3000); // blocks of 1000
        let path = Journal::open(dir.path()).unwrap().segments[0].2.clone();
        let full = std::fs::read(&path).unwrap();
        let block = BLOCK_HEADER + 1000 * TICK_BYTES;
        let body = full.len() - 3 * block;
        let damage: Vec<(&str, Vec<u8>, usize)> = vec![
            (
                "cut in a block header",
                full[..body + 2 * block + 10].to_vec(),
                2000,
            ),
            (
                "cut in a block's ticks",
                full[..body + 2 * block + 500].to_vec(),
                2000,
            ),
            (
                "cut at a block's end",
                full[..body + 2 * block].to_vec(),
                2000,
            ),
            (
                "a flipped byte",
                {
                    let mut b = full.clone();
                    b[body + block + 100] ^= 1;
                    b
                },
                1000,
            ),
            (
                "bad magic",
                {
                    let mut b = full.clone();
                    b[body + 2 * block] = b'X';
                    b
                },
                2000,
            ),
            (
                "garbage appended",
                [full.clone(), vec![7u8; 40]].concat(),
                3000,
            ),
        ];
        for (what, bytes, good) in damage {
            std::fs::write(&path, &bytes).unwrap();
            let read = read_segment(&path).unwrap();
            assert_eq!(read.ticks.len(), good, "{what}");
            assert_eq!(
                read.torn.is_some(),
                bytes.len() as u64 != read.good_bytes,
                "{what}"
            );
            let (w, restored) = JournalWriter::open(dir.path(), settings()).unwrap();
            assert_eq!(
                restored.ticks,
                (1..=good as u64).map(tick).collect::<Vec<_>>(),
                "{what}"
            );
            let cut = bytes.len() as u64 - read.good_bytes;
            assert_eq!(
                restored.truncated.as_ref().map(|t| t.1),
                (cut > 0).then_some(cut),
                "{what}"
            );
            assert_eq!(
                std::fs::metadata(&path).unwrap().len(),
                read.good_bytes,
                "{what}"
            );
            // The new epoch's (empty) segment goes, for the next case.
            drop(w);
            for p in Journal::open(dir.path()).unwrap().segment_paths().skip(1) {
                std::fs::remove_file(p).unwrap();
            }
        }
    }

    #[test]
    fn an_older_damaged_segment_is_read_up_to_its_damage_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        write_epoch(dir.path(), settings(), 1..=2000);
        write_epoch(dir.path(), settings(), 1..=10);
        let first = Journal::open(dir.path()).unwrap().segments[0].2.clone();
        let mut b = std::fs::read(&first).unwrap();
        let n = b.len();
        b[n - 10] ^= 0xff;
        std::fs::write(&first, &b).unwrap();
        let (_, restored) = JournalWriter::open(dir.path(), settings()).unwrap();
        assert_eq!(restored.ticks.len(), 1000 + 10);
        assert_eq!(restored.damaged.len(), 1);
        assert!(restored.truncated.is_none());
        assert_eq!(std::fs::read(&first).unwrap(), b, "left as it was");
    }

    #[test]
    fn someone_elses_file_is_refused_and_left() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("00000001-00000001.journal");
        std::fs::write(&other, b"my notes\n").unwrap();
        let before = files::snapshot(&other).unwrap();
        let e = JournalWriter::open(dir.path(), settings()).err().unwrap();
        assert!(e.is_bad_input(), "{e}");
        assert!(
            e.to_string().contains("without a journal segment's mark"),
            "{e}"
        );
        assert_eq!(files::snapshot(&other).unwrap(), before);
        // A file where the folder should be.
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        let e = JournalWriter::open(&file, settings()).err().unwrap();
        assert!(e.is_bad_input(), "{e}");
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
    }

    #[test]
    fn a_journal_of_other_symbols_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_epoch(dir.path(), settings(), 1..=10);
        let e = JournalWriter::open(
            dir.path(),
            WriterSettings {
                symbols: vec!["X".into()],
                ..settings()
            },
        )
        .err()
        .unwrap();
        assert!(matches!(e, JournalError::Symbols { .. }), "{e}");
        assert!(e.is_bad_input());
    }

    #[test]
    fn a_damaged_header_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        write_epoch(dir.path(), settings(), 1..=10);
        let path = Journal::open(dir.path()).unwrap().segments[0].2.clone();
        let mut b = std::fs::read(&path).unwrap();
        b[SEGMENT_MARK.len() + 12] ^= 1; // the epoch
        std::fs::write(&path, &b).unwrap();
        let e = read_segment(&path).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
    }

    #[test]
    fn names_parse_only_in_the_segment_pattern() {
        assert_eq!(parse_name("00000002-00000010.journal"), Some((2, 10)));
        assert_eq!(parse_name(&segment_name(7, 3)), Some((7, 3)));
        for bad in [
            "2-10.journal",
            "00000002-00000010.jrnl",
            "0000000a-00000010.journal",
            "notes.txt",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }
}
