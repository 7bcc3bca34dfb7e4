//! The ring in a memory-mapped file (by default under `/dev/shm`), shared by processes.
//!
//! This is a thin layer over the protocol in [`crate::ring`]: it creates, validates and
//! maps the file; everything that happens per tick is the same code that the loom and
//! Miri checks run on heap memory.
//!
//! # Guarantees
//!
//! - [`create`] writes the whole file under a temporary name (mode 0600, owner only),
//!   touches every page so that publishing never page-faults, and renames it into
//!   place only when the header is complete: a consumer never sees a half-built ring.
//! - [`create`] never replaces, truncates or removes a file it did not write (the rule
//!   of [`crate::files`]): where something is at the path already it takes its place
//!   only if it is provably a ring of this project left by a dead producer (a regular
//!   file of this user with the ring's magic and this build's layout version, whose lock
//!   is free). Anything else is refused with [`CreateError::Foreign`] before anything is
//!   written, and left exactly as it was. The same holds for the lock file beside it.
//!   At the end, the producer removes the ring and lock files only if they are still the
//!   ones it created or took over (same inode).
//! - [`open`] trusts nothing in the file before checking it: magic, layout version,
//!   slot size, tick-layout fingerprint, a power-of-two capacity within bounds, and a
//!   file length that matches the capacity exactly. A file that fails any check is
//!   refused with an [`OpenError`] that says which.
//! - Creating and opening allocate and make system calls; they are start-up work.
//!   Publishing and polling through the mapping do neither.
//!
//! A process that truncates the file under a live mapping can still make readers fault
//! (`SIGBUS`); the file is owner-only so only the same user can do that.
//!
//! **In process memory.** After [`keep_rings_in_process`] (the single-process
//! pipeline), [`create`] maps the ring anonymously (private to the process,
//! pre-faulted, the same layout and header) and enters it in a table of the process
//! under its path; [`open`] finds it there and validates it as it validates a file. No
//! file, lock file or folder is touched; a second live producer at the same path in
//! the process is [`CreateError::Held`]. Publishing and polling are the same code.

use super::{
    Header, Publisher, Region, RegisterError, Slot, StartAt, Subscriber, HEADER_BYTES,
    LAYOUT_VERSION, MAGIC, MAX_CAPACITY, MIN_CAPACITY,
};
use crate::files::{self, Draft, Existing, FileError, FileId};
use crate::os::process_alive;
use crate::sync::Ordering;
use crate::tick::TICK_LAYOUT_FINGERPRINT;
use memmap2::{MmapOptions, MmapRaw};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a ring file could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The capacity is not a power of two within bounds.
    #[error("ring capacity {0} is not a power of two between {MIN_CAPACITY} and {MAX_CAPACITY}")]
    Capacity(u64),
    /// The first sequence number is 0 or not below 2⁶³.
    #[error("a ring's first sequence number must be in 1..2^63, not {0}")]
    FirstSeq(u64),
    /// Another live producer holds the ring's lock file.
    #[error(
        "ring {} is held by another running feed{}; stop it or configure another ring.path",
        path.display(),
        pid.map_or(String::new(), |p| format!(" (pid {p})"))
    )]
    Held {
        /// The ring file.
        path: PathBuf,
        /// The holder's process id, as written in the lock file.
        pid: Option<u32>,
    },
    /// Something at the ring's path, or its lock file's, is not a ring (or lock) this
    /// project left: it is left as it was. Bad input: the user chose `ring.path`.
    #[error(
        "{} is {what}: the feed creates its ring only where nothing is, or over a ring a dead feed left, so it is left as it is; remove it or choose another ring.path",
        path.display()
    )]
    Foreign {
        /// The path.
        path: PathBuf,
        /// What is there, in words.
        what: String,
    },
    /// A file system call failed.
    #[error("cannot create ring file {}: {error}", path.display())]
    Io {
        /// The file in question.
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
}

/// Why a ring file could not be opened as a consumer.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No file at the path (yet).
    #[error("ring file {} does not exist", .0.display())]
    Missing(PathBuf),
    /// A file system call failed.
    #[error("cannot open ring file {}: {error}", path.display())]
    Io {
        /// The file in question.
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
    /// The file is not a valid ring of this build's layout.
    #[error("ring file {} is not usable: {reason}", path.display())]
    Invalid {
        /// The file in question.
        path: PathBuf,
        /// What check failed.
        reason: String,
    },
    /// A lossless ring's consumer table had no room for this consumer.
    #[error("cannot register with lossless ring {}: {error}", path.display())]
    Register {
        /// The file in question.
        path: PathBuf,
        /// Why.
        error: RegisterError,
    },
}

/// The lock file of the ring at `ring`: `<ring>.lock`.
pub fn lock_path(ring: &Path) -> PathBuf {
    let mut p = ring.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// The lock file `<ring>.lock` a producer holds (an advisory `flock`) for as long as
/// it lives: the kernel releases it when the process dies, however it dies, so a ring
/// left behind by a dead producer can be reclaimed and a live one cannot be taken.
struct RingLock {
    file: File,
    path: PathBuf,
}

impl RingLock {
    fn acquire(ring: &Path) -> Result<RingLock, CreateError> {
        let path = lock_path(ring);
        let io_err = |error| CreateError::Io {
            path: path.clone(),
            error,
        };
        loop {
            // A lock file holds a pid and a newline (or nothing, just created): anything
            // else is not ours, and is refused unread beyond its first bytes.
            let (mut file, _) = files::open_own(&path, |head| {
                head.len() <= 21 && head.iter().all(|b| b.is_ascii_digit() || *b == b'\n')
            })
            .map_err(|e| from_file_error(e, &path))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let mut text = String::new();
                    let _ = file.read_to_string(&mut text);
                    return Err(CreateError::Held {
                        path: ring.to_path_buf(),
                        pid: text.trim().parse().ok(),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io_err(e)),
            }
            // The previous holder may have removed the lock file between our open and
            // our lock: only a lock on the file the path still names counts.
            let ours = FileId::of(&file.metadata().map_err(io_err)?);
            if ours.is_at(&path) {
                file.set_len(0).map_err(io_err)?;
                file.rewind().map_err(io_err)?;
                writeln!(file, "{}", std::process::id()).map_err(io_err)?;
                return Ok(RingLock { file, path });
            }
        }
    }
}

impl Drop for RingLock {
    fn drop(&mut self) {
        // Remove the lock file while still holding the lock (closing the file unlocks),
        // and only if the path still names the file this producer locked.
        if let Ok(m) = self.file.metadata() {
            if FileId::of(&m).is_at(&self.path) {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// A [`FileError`] about `path` as a [`CreateError`].
fn from_file_error(e: FileError, path: &Path) -> CreateError {
    match e {
        FileError::Foreign { path, what } => CreateError::Foreign { path, what },
        FileError::Io { error, .. } => CreateError::Io {
            path: path.to_path_buf(),
            error,
        },
    }
}

/// A ring mapped read-write by its producer, which holds the ring's lock.
pub struct OwnedRegion {
    map: Arc<MmapRaw>,
    path: PathBuf,
    /// The ring file and its lock; none for a ring kept in process memory.
    file: Option<(FileId, RingLock)>,
    reclaimed: Option<u32>,
}

/// A ring mapped by a consumer: read-only, or read-write for a lossless ring (the
/// consumer writes only its own consumer-table entry).
pub struct MappedRegion {
    map: Arc<MmapRaw>,
    path: PathBuf,
    /// The ring file's inode; none for a ring kept in process memory.
    ino: Option<u64>,
}

fn header_of(map: &MmapRaw) -> &Header {
    debug_assert!(map.len() >= HEADER_BYTES);
    debug_assert_eq!(map.as_ptr() as usize % 4096, 0);
    // SAFETY: [1] the mapping is page-aligned (mmap returns page-aligned addresses) and at
    // least HEADER_BYTES long (checked by `create`/`validate` before a region is built),
    // and `Header` fits in HEADER_BYTES (const-asserted) with alignment 128 < 4096;
    // [2] `Header` is all atomics (plus padding never read), for which every bit
    // pattern is valid, and the file was zero-filled or written by a producer; [3] the
    // pointer comes from the raw mapping, not from a `&[u8]`, so writing through the
    // atomics (where the mapping is writable) is allowed; a read-only mapping is only
    // written by `Subscriber::register`, which `open` calls only on a writable one;
    // [4] the mapping lives as long as the region that lends this reference.
    unsafe { &*(map.as_ptr() as *const Header) }
}

fn slots_of(map: &MmapRaw) -> &[Slot] {
    let n = (map.len() - HEADER_BYTES) / std::mem::size_of::<Slot>();
    // SAFETY: [1] HEADER_BYTES is a multiple of 64, so the slots start 64-aligned in a
    // page-aligned mapping; [2] the file length is HEADER_BYTES + capacity * 64 exactly
    // (checked by `create`/`validate`), so `n` slots lie inside the mapping; [3] a slot
    // is eight `AtomicU64`s, valid for any bit pattern; [4] provenance and lifetime as
    // in `header_of`.
    unsafe { std::slice::from_raw_parts(map.as_ptr().add(HEADER_BYTES) as *const Slot, n) }
}

impl Region for OwnedRegion {
    fn header(&self) -> &Header {
        header_of(&self.map)
    }
    fn slots(&self) -> &[Slot] {
        slots_of(&self.map)
    }
}

impl Region for MappedRegion {
    fn header(&self) -> &Header {
        header_of(&self.map)
    }
    fn slots(&self) -> &[Slot] {
        slots_of(&self.map)
    }
}

impl OwnedRegion {
    /// Path of the ring file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `create` took the place of a ring left by an earlier producer that no
    /// longer holds the lock, and that producer's pid.
    pub fn reclaimed(&self) -> Option<u32> {
        self.reclaimed
    }
}

impl MappedRegion {
    /// Path the ring was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the path still names the file this region maps (a new producer replaces
    /// it). A ring in process memory is current while its producer has not ended it.
    pub fn is_current(&self) -> bool {
        match self.ino {
            Some(ino) => std::fs::metadata(&self.path).is_ok_and(|m| m.ino() == ino),
            None => in_process_ring(&self.path).is_some_and(|m| Arc::ptr_eq(&m, &self.map)),
        }
    }

    /// Whether the ring is in process memory ([`keep_rings_in_process`]), not a file.
    pub fn in_process(&self) -> bool {
        self.ino.is_none()
    }
}

/// Size in bytes of a ring file of `capacity` slots.
pub fn file_len(capacity: u64) -> u64 {
    HEADER_BYTES as u64 + capacity * std::mem::size_of::<Slot>() as u64
}

/// What a producer start writes into the header besides the capacity.
#[derive(Clone, Copy, Debug)]
pub struct ProducerId {
    /// The producer's clock source ([`crate::clock::ClockSource`] as u32).
    pub clock_source: u32,
    /// Start time in nanoseconds since the Unix epoch.
    pub epoch_ns: u64,
    /// Lossless mode: the producer waits for registered consumers.
    pub lossless: bool,
    /// Sequence number of the first tick (1, or where the feed continues the sequence
    /// of its earlier run); in 1..2⁶³.
    pub first_seq: u64,
}

impl ProducerId {
    /// A producer starting now (its epoch is the current time) with stamps from
    /// `clock_source`.
    pub fn now(clock_source: crate::clock::ClockSource, lossless: bool) -> ProducerId {
        ProducerId {
            clock_source: clock_source as u32,
            epoch_ns: crate::clock::unix_ns(),
            lossless,
            first_seq: 1,
        }
    }

    /// The same producer, its first tick numbered `first_seq`.
    pub fn starting_at(self, first_seq: u64) -> ProducerId {
        ProducerId { first_seq, ..self }
    }
}

/// Looks at what is at `path` before a producer creates its ring there, changing
/// nothing: `Ok(None)` for nothing, `Ok(Some((id, pid)))` for a regular file of this
/// user with the ring's magic and this build's layout version (left by producer `pid`),
/// else [`CreateError::Foreign`] saying what is there.
fn examine_ring(path: &Path) -> Result<Option<(FileId, u32)>, CreateError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(CreateError::Io {
                path: path.to_path_buf(),
                error,
            })
        }
    };
    let foreign = |what: String| CreateError::Foreign {
        path: path.to_path_buf(),
        what,
    };
    let head = files::read_head(path, &meta, 64).map_err(foreign)?;
    let word = |at: usize, n: usize| {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&head[at..at + n]);
        u64::from_ne_bytes(b)
    };
    if meta.len() == 0 {
        return Err(foreign("an empty file".into()));
    }
    if head.len() < 64 || word(std::mem::offset_of!(Header, magic), 8) != MAGIC {
        return Err(foreign(format!(
            "a file of {} bytes that is not a ring (no ring magic)",
            meta.len()
        )));
    }
    let version = word(std::mem::offset_of!(Header, layout_version), 4) as u32;
    if version != LAYOUT_VERSION {
        return Err(foreign(format!(
            "a ring of layout version {version}, which this build does not read (it reads version {LAYOUT_VERSION})"
        )));
    }
    let pid = word(std::mem::offset_of!(Header, producer_pid), 4) as u32;
    Ok(Some((FileId::of(&meta), pid)))
}

/// Creates a ring file of `capacity` slots at `path` and returns its publisher.
///
/// What is at `path` is examined first, without writing anything: nothing, or a ring of
/// this project and layout, may be replaced; anything else is refused with
/// [`CreateError::Foreign`]. Then the producer takes the ring's lock file
/// (`<path>.lock`): if another live producer holds it, this fails with
/// [`CreateError::Held`] naming its pid; otherwise a ring at `path` was left by a dead
/// producer and is replaced (see [`OwnedRegion::reclaimed`]). The new file is complete
/// and pre-faulted before it appears. The lock is held until the publisher is dropped.
pub fn create(
    path: &Path,
    capacity: u64,
    id: ProducerId,
) -> Result<Publisher<OwnedRegion>, CreateError> {
    if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
        return Err(CreateError::Capacity(capacity));
    }
    if !(1..1 << 63).contains(&id.first_seq) {
        return Err(CreateError::FirstSeq(id.first_seq));
    }
    if rings_in_process() {
        return create_in_process(path, capacity, id);
    }
    examine_ring(path)?;
    let lock = RingLock::acquire(path)?;
    // Under the lock: no live producer, so a ring there now is a dead one's.
    let found = examine_ring(path)?;
    let existing = found.map_or(Existing::Nothing, |(id, _)| Existing::Own(id));
    let reclaimed = found.map(|(_, pid)| pid);
    let io_err = |error| CreateError::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut draft = Draft::replacing(path, existing).map_err(|e| from_file_error(e, path))?;
    let (map, file_id) = (|| {
        let file = draft.file();
        file.set_len(file_len(capacity))?;
        // SAFETY: the file was just created by this process under a private temporary
        // name with mode 0600; nothing else maps or truncates it.
        let mut map = unsafe { MmapOptions::new().populate().map_mut(&*file)? };
        prefault(&mut map);
        let file_id = FileId::of(&file.metadata()?);
        Ok::<_, io::Error>((MmapRaw::from(map), file_id))
    })()
    .map_err(io_err)?;
    init_header(&map, capacity, id);
    draft.publish().map_err(|e| from_file_error(e, path))?;
    Ok(Publisher::new(OwnedRegion {
        map: Arc::new(map),
        path: path.to_path_buf(),
        file: Some((file_id, lock)),
        reclaimed,
    }))
}

/// Touches every page of a new ring's mapping so the first publish into it does not
/// fault.
fn prefault(map: &mut memmap2::MmapMut) {
    for page in map.chunks_mut(4096) {
        page[0] = 0;
    }
}

/// Writes a new ring's header: its capacity and this producer's identity.
fn init_header(map: &MmapRaw, capacity: u64, id: ProducerId) {
    header_of(map).init(
        capacity,
        id.lossless,
        id.clock_source,
        std::process::id(),
        id.epoch_ns,
        id.first_seq,
    );
}

/// Rings created and opened in this process from now on live in process memory (an
/// anonymous private mapping, pre-faulted), found by their path in a table of this
/// process instead of in a file: for a producer and consumers that are threads of one
/// process (the single-process pipeline). Nothing is written to the file system; two
/// processes with the same `ring.path` then have a ring each. Start-up only: call it
/// before any ring is created.
pub fn keep_rings_in_process() {
    IN_PROCESS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(Vec::new);
}

/// Rings kept in process memory, by path.
type InProcessRings = Vec<(PathBuf, Arc<MmapRaw>)>;

/// The rings kept in process memory; `None` until [`keep_rings_in_process`].
static IN_PROCESS: std::sync::Mutex<Option<InProcessRings>> = std::sync::Mutex::new(None);

fn rings_in_process() -> bool {
    IN_PROCESS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_some()
}

fn in_process_ring(path: &Path) -> Option<Arc<MmapRaw>> {
    let table = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    table
        .as_ref()?
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, m)| Arc::clone(m))
}

/// [`create`] in process memory: a live producer of this process at `path` is
/// [`CreateError::Held`]; an ended one's ring is replaced.
fn create_in_process(
    path: &Path,
    capacity: u64,
    id: ProducerId,
) -> Result<Publisher<OwnedRegion>, CreateError> {
    let mut table = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let rings = table.get_or_insert_with(Vec::new);
    if let Some(i) = rings.iter().position(|(p, _)| p == path) {
        if header_of(&rings[i].1).producer_state() == Some(super::ProducerState::Running) {
            return Err(CreateError::Held {
                path: path.to_path_buf(),
                pid: Some(std::process::id()),
            });
        }
        rings.swap_remove(i);
    }
    let mut map = MmapOptions::new()
        .len(file_len(capacity) as usize)
        .populate()
        .map_anon()
        .map_err(|error| CreateError::Io {
            path: path.to_path_buf(),
            error,
        })?;
    prefault(&mut map);
    let map = Arc::new(MmapRaw::from(map));
    init_header(&map, capacity, id);
    rings.push((path.to_path_buf(), Arc::clone(&map)));
    Ok(Publisher::new(OwnedRegion {
        map,
        path: path.to_path_buf(),
        file: None,
        reclaimed: None,
    }))
}

/// Removes the ring at `path` if it is one a dead producer left (a ring of this project
/// and layout whose lock is free), with its lock file; `Ok(false)` if nothing is there.
/// A live producer's ring is [`CreateError::Held`], anything else
/// [`CreateError::Foreign`]: both are left as they are.
pub fn remove_stale(path: &Path) -> Result<bool, CreateError> {
    examine_ring(path)?;
    let _lock = RingLock::acquire(path)?;
    // Under the lock, as in `create`; dropping the lock removes its file.
    match examine_ring(path)? {
        Some((id, _)) if id.is_at(path) => {
            std::fs::remove_file(path)
                .map(|()| true)
                .map_err(|error| CreateError::Io {
                    path: path.to_path_buf(),
                    error,
                })
        }
        _ => Ok(false),
    }
}

impl Publisher<OwnedRegion> {
    /// Ends the stream and removes the ring file if it is still this producer's.
    /// Consumers that have it mapped keep reading what is in it.
    pub fn end_and_unlink(&self) {
        self.end();
        let region = self.region();
        match &region.file {
            Some((id, _)) => {
                if id.is_at(&region.path) {
                    let _ = std::fs::remove_file(&region.path);
                }
            }
            None => {
                let mut table = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(rings) = table.as_mut() {
                    rings.retain(|(_, m)| !Arc::ptr_eq(m, &region.map));
                }
            }
        }
    }
}

/// What a valid ring header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingInfo {
    /// Number of slots.
    pub capacity: u64,
    /// Producer process id.
    pub producer_pid: u32,
    /// Producer clock source.
    pub clock_source: u32,
    /// Producer start time, ns since the Unix epoch.
    pub epoch_ns: u64,
    /// Whether the producer waits for registered consumers.
    pub lossless: bool,
}

/// Checks a mapped ring file of `len` bytes; `map` holds at least its header.
fn validate(map: &MmapRaw, len: u64) -> Result<RingInfo, String> {
    if len < HEADER_BYTES as u64 {
        return Err(format!(
            "file is {len} bytes, shorter than the {HEADER_BYTES}-byte header"
        ));
    }
    let h = header_of(map);
    // SYNC POINT: pairs with the release store of `magic` in `Header::init`.
    let magic = h.magic.load(Ordering::Acquire);
    if magic != MAGIC {
        return Err(format!("wrong magic {magic:#018x}, expected {MAGIC:#018x}"));
    }
    let version = h.layout_version.load(Ordering::Relaxed);
    if version != LAYOUT_VERSION {
        return Err(format!(
            "layout version {version}, this build reads version {LAYOUT_VERSION}"
        ));
    }
    let slot_bytes = h.slot_bytes.load(Ordering::Relaxed);
    if slot_bytes as usize != std::mem::size_of::<Slot>() {
        return Err(format!("slot size {slot_bytes} bytes, expected 64"));
    }
    let fp = h.tick_fingerprint.load(Ordering::Relaxed);
    if fp != TICK_LAYOUT_FINGERPRINT {
        return Err(format!(
            "tick layout fingerprint {fp:#018x} differs from this build's {TICK_LAYOUT_FINGERPRINT:#018x}"
        ));
    }
    let capacity = h.capacity.load(Ordering::Relaxed);
    if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
        return Err(format!(
            "capacity {capacity} is not a power of two between {MIN_CAPACITY} and {MAX_CAPACITY}"
        ));
    }
    if file_len(capacity) != len {
        return Err(format!(
            "capacity {capacity} needs a file of {} bytes, the file has {len}",
            file_len(capacity)
        ));
    }
    if h.producer_state().is_none() {
        return Err(format!(
            "unknown producer state {}",
            h.state.load(Ordering::Relaxed)
        ));
    }
    Ok(RingInfo {
        capacity,
        producer_pid: h.producer_pid.load(Ordering::Relaxed),
        clock_source: h.clock_source.load(Ordering::Relaxed),
        epoch_ns: h.epoch_ns.load(Ordering::Relaxed),
        lossless: match h.lossless.load(Ordering::Relaxed) {
            0 => false,
            1 => true,
            other => return Err(format!("unknown ring mode {other}")),
        },
    })
}

/// Opens the ring file at `path` read-only, validates it, pre-faults the mapping and
/// returns a subscriber with what the header says.
pub fn open(
    path: &Path,
    start: StartAt,
) -> Result<(Subscriber<MappedRegion>, RingInfo), OpenError> {
    if rings_in_process() {
        return open_in_process(path, start);
    }
    // O_NONBLOCK: opening a FIFO for reading would wait for a writer (the check below
    // refuses it); for a regular file the flag changes nothing.
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(OpenError::Missing(path.to_path_buf()))
        }
        Err(error) => {
            return Err(OpenError::Io {
                path: path.to_path_buf(),
                error,
            })
        }
    };
    let io_err = |error| OpenError::Io {
        path: path.to_path_buf(),
        error,
    };
    let meta = file.metadata().map_err(io_err)?;
    let len = meta.len();
    let invalid = |reason| OpenError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    if !meta.is_file() {
        return Err(invalid("not a regular file".into()));
    }
    if len < HEADER_BYTES as u64 {
        return Err(invalid(format!(
            "file is {len} bytes, shorter than the {HEADER_BYTES}-byte header"
        )));
    }
    if len > file_len(MAX_CAPACITY) {
        return Err(invalid(format!(
            "file is {len} bytes, larger than any ring"
        )));
    }
    // A raw mapping: every byte is then read through atomics (header and slots are all
    // `AtomicU64`/`AtomicU32`, see `header_of`), so concurrent writes by the producer
    // are not data races. Truncation by another process could fault; the file is
    // owner-only (see the module docs).
    let map = MmapOptions::new()
        .populate()
        .map_raw_read_only(&file)
        .map_err(io_err)?;
    let mut info = validate(&map, meta.len()).map_err(invalid)?;
    let map = if info.lossless {
        // A lossless ring: map it writable to enter this consumer in its table, and
        // check it again (the file may have been replaced in between).
        drop(map);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err)?;
        let meta2 = file.metadata().map_err(io_err)?;
        if meta2.ino() != meta.ino() {
            return Err(OpenError::Missing(path.to_path_buf()));
        }
        // As above; the consumer writes only its own consumer-table entry, through
        // atomics.
        let map = MmapOptions::new()
            .populate()
            .map_raw(&file)
            .map_err(io_err)?;
        info = validate(&map, meta2.len()).map_err(invalid)?;
        map
    } else {
        map
    };
    let region = MappedRegion {
        map: Arc::new(map),
        path: path.to_path_buf(),
        ino: Some(meta.ino()),
    };
    subscribe(region, info, start)
}

/// [`open`] of a ring in process memory ([`keep_rings_in_process`]): validated as a
/// file is; [`OpenError::Missing`] until its producer has created it.
fn open_in_process(
    path: &Path,
    start: StartAt,
) -> Result<(Subscriber<MappedRegion>, RingInfo), OpenError> {
    let map = in_process_ring(path).ok_or_else(|| OpenError::Missing(path.to_path_buf()))?;
    let info = validate(&map, map.len() as u64).map_err(|reason| OpenError::Invalid {
        path: path.to_path_buf(),
        reason,
    })?;
    let region = MappedRegion {
        map,
        path: path.to_path_buf(),
        ino: None,
    };
    subscribe(region, info, start)
}

/// A subscriber of `region`, entered in its consumer table if it is lossless.
fn subscribe(
    region: MappedRegion,
    info: RingInfo,
    start: StartAt,
) -> Result<(Subscriber<MappedRegion>, RingInfo), OpenError> {
    let path = region.path.clone();
    let mut sub = Subscriber::new(region, start);
    if info.lossless {
        sub.register(std::process::id(), |pid| !process_alive(pid))
            .map_err(|error| OpenError::Register { path, error })?;
    }
    Ok((sub, info))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::ring::Poll;
    use crate::tick::Tick;
    use std::os::unix::fs::PermissionsExt;

    const ID: ProducerId = ProducerId {
        clock_source: 1,
        epoch_ns: 42,
        lossless: false,
        first_seq: 1,
    };

    #[test]
    fn create_publish_open_poll() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.ring");
        let mut p = create(&path, 16, ID).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "owner-only");
        p.publish(&Tick {
            symbol: 5,
            ..Tick::default()
        });
        let (mut s, info) = open(&path, StartAt::Oldest).unwrap();
        assert_eq!(info.capacity, 16);
        assert_eq!(info.epoch_ns, 42);
        assert_eq!(info.producer_pid, std::process::id());
        assert!(matches!(s.poll(), Poll::Tick(t) if t.symbol == 5 && t.seq == 1));
        assert_eq!(s.poll(), Poll::Empty);
        assert!(s.region().is_current());
        p.end_and_unlink();
        assert!(!path.exists());
        assert!(s.producer_ended());
    }

    /// A ring that continues an earlier run's sequence: its first tick is numbered
    /// `first_seq`, a consumer from the oldest tick starts there, and counts are counts.
    #[test]
    fn ring_continues_a_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.ring");
        let mut p = create(&path, 8, ID.starting_at(1_000)).unwrap();
        let (mut s, _) = open(&path, StartAt::Oldest).unwrap();
        assert_eq!(
            (p.first_seq(), s.first_seq(), p.published()),
            (1_000, 1_000, 0)
        );
        assert_eq!(s.poll(), Poll::Empty);
        for _ in 0..3 {
            p.publish(&Tick::default());
        }
        let seqs: Vec<u64> = (0..3)
            .map(|_| match s.poll() {
                Poll::Tick(t) => t.seq,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(seqs, [1_000, 1_001, 1_002]);
        assert_eq!(p.published(), 3);
        assert_eq!(s.producer_progress().published, 1_002);
        // Lapped from the start: the gap counts only this ring's ticks.
        for _ in 0..20 {
            p.publish(&Tick::default());
        }
        let (mut late, _) = open(&path, StartAt::Oldest).unwrap();
        let (mut received, mut missed, mut last) = (0, 0, 0);
        loop {
            match late.poll() {
                Poll::Gap {
                    first_seq,
                    missed: m,
                } => {
                    assert_eq!(first_seq, 1_000, "the gap starts at the ring's first tick");
                    missed += m;
                }
                Poll::Tick(t) => (received, last) = (received + 1, t.seq),
                _ => break,
            }
        }
        assert_eq!((received + missed, last), (23, 1_022));
        for (bad, ok) in [(0, false), (1 << 63, false), ((1 << 63) - 1, true)] {
            let r = create(
                &dir.path().join(format!("{bad}.ring")),
                8,
                ID.starting_at(bad),
            );
            assert_eq!(r.is_ok(), ok, "first_seq {bad}");
        }
    }

    #[test]
    fn missing_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            open(&dir.path().join("none"), StartAt::Oldest),
            Err(OpenError::Missing(_))
        ));
    }

    fn corrupt(edit: impl FnOnce(&mut Vec<u8>)) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.ring");
        let _p = create(&path, 8, ID).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        edit(&mut bytes);
        let bad = dir.path().join("bad.ring");
        std::fs::write(&bad, &bytes).unwrap();
        match open(&bad, StartAt::Oldest) {
            Err(OpenError::Invalid { reason, .. }) => reason,
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("corrupt ring accepted"),
        }
    }

    #[test]
    fn corrupt_files_are_refused() {
        assert!(corrupt(|b| b[0] ^= 1).contains("wrong magic"));
        assert!(corrupt(|b| b[8] = 9).contains("layout version 9"));
        assert!(corrupt(|b| b[12] = 32).contains("slot size 32"));
        assert!(corrupt(|b| b[16] ^= 1).contains("fingerprint"));
        assert!(corrupt(|b| b[24] = 3).contains("capacity 3 is not a power of two"));
        assert!(corrupt(|b| b[24] = 16).contains("needs a file of"));
        assert!(corrupt(|b| b.truncate(HEADER_BYTES + 64)).contains("needs a file of"));
        assert!(corrupt(|b| b.truncate(100)).contains("shorter than"));
        assert!(corrupt(|b| b.extend_from_slice(&[0; 64])).contains("needs a file of"));
    }

    #[test]
    fn bad_capacity_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.ring");
        assert!(matches!(
            create(&path, 12, ID),
            Err(CreateError::Capacity(12))
        ));
        assert!(matches!(
            create(&path, 1, ID),
            Err(CreateError::Capacity(1))
        ));
    }

    #[test]
    fn second_live_producer_is_refused_and_leftover_reclaimed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.ring");
        let p1 = create(&path, 8, ID).unwrap();
        assert_eq!(p1.region().reclaimed(), None);
        let lock = lock_path(&path);
        let mode = std::fs::metadata(&lock).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "owner-only lock file");
        match create(&path, 8, ID) {
            Err(e @ CreateError::Held { pid, .. }) => {
                assert_eq!(pid, Some(std::process::id()));
                let msg = e.to_string();
                assert!(msg.contains("held by another running feed"), "{msg}");
                assert!(
                    msg.contains(&format!("pid {}", std::process::id())),
                    "{msg}"
                );
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a second producer took a held ring"),
        }
        let (s, _) = open(&path, StartAt::Oldest).unwrap();
        // The producer goes away without ending (as if killed): the file stays, the
        // lock is released.
        drop(p1);
        assert!(path.exists());
        assert!(!lock.exists());
        let p2 = create(&path, 8, ID).unwrap();
        assert_eq!(p2.region().reclaimed(), Some(std::process::id()));
        assert!(!s.region().is_current());
        p2.end_and_unlink();
        drop(p2);
        assert!(!path.exists() && !lock.exists());
    }

    #[test]
    fn foreign_objects_at_the_ring_path_are_refused_and_left_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let other_layout = {
            let p = d.join("v1.src");
            let ring = create(&p, 8, ID).unwrap();
            let mut bytes = std::fs::read(&p).unwrap();
            ring.end_and_unlink();
            bytes[std::mem::offset_of!(Header, layout_version)] = 1;
            bytes
        };
        type Make = Box<dyn Fn(&Path)>;
        let cases: Vec<(&str, Make, &str)> = vec![
            (
                "text",
                Box::new(|p| std::fs::write(p, b"user data\n").unwrap()),
                "a file of 10 bytes that is not a ring",
            ),
            (
                "empty",
                Box::new(|p| std::fs::write(p, b"").unwrap()),
                "an empty file",
            ),
            (
                "v1",
                Box::new(move |p| std::fs::write(p, &other_layout).unwrap()),
                "a ring of layout version 1",
            ),
            (
                "dir",
                Box::new(|p| std::fs::create_dir(p).unwrap()),
                "a folder",
            ),
            (
                "fifo",
                Box::new(|p| {
                    let ok = std::process::Command::new("mkfifo")
                        .arg(p)
                        .status()
                        .unwrap();
                    assert!(ok.success());
                }),
                "a FIFO",
            ),
            (
                "link",
                Box::new(|p| {
                    let target = p.with_extension("target");
                    std::fs::write(&target, b"elsewhere").unwrap();
                    std::os::unix::fs::symlink(&target, p).unwrap();
                }),
                "a symbolic link",
            ),
        ];
        for (name, make, what) in cases {
            let path = d.join(format!("{name}.ring"));
            make(&path);
            let before = crate::files::snapshot(&path).unwrap();
            match create(&path, 8, ID) {
                Err(e @ CreateError::Foreign { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains(what), "{name}: {msg}");
                    assert!(msg.contains(&path.display().to_string()), "{msg}");
                }
                Err(e) => panic!("{name}: unexpected error {e}"),
                Ok(_) => panic!("{name}: a foreign object was taken as a ring"),
            }
            assert_eq!(
                crate::files::snapshot(&path).unwrap(),
                before,
                "{name} changed"
            );
            assert!(
                !lock_path(&path).exists(),
                "{name}: a lock file was written"
            );
        }
        assert_eq!(std::fs::read(d.join("link.target")).unwrap(), b"elsewhere");
        // No temporary file anywhere.
        let left: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains("tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_foreign_lock_file_is_refused_and_left_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.ring");
        let lock = lock_path(&path);
        std::fs::write(&lock, b"my notes\n").unwrap();
        let before = crate::files::snapshot(&lock).unwrap();
        assert!(matches!(
            create(&path, 8, ID),
            Err(CreateError::Foreign { .. })
        ));
        assert_eq!(crate::files::snapshot(&lock).unwrap(), before);
        assert!(!path.exists());
        // A leftover lock file of a dead producer (a pid) is taken over, and removed.
        std::fs::write(&lock, b"123\n").unwrap();
        let p = create(&path, 8, ID).unwrap();
        assert_eq!(
            std::fs::read_to_string(&lock).unwrap(),
            format!("{}\n", std::process::id())
        );
        p.end_and_unlink();
        drop(p);
        assert!(!path.exists() && !lock.exists());
    }

    #[test]
    fn a_live_producers_ring_is_left_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.ring");
        let live = create(&path, 8, ID).unwrap();
        let (ring, lock) = (
            crate::files::snapshot(&path).unwrap(),
            crate::files::snapshot(&lock_path(&path)).unwrap(),
        );
        assert!(matches!(
            create(&path, 8, ID),
            Err(CreateError::Held { .. })
        ));
        assert_eq!(crate::files::snapshot(&path).unwrap(), ring);
        assert_eq!(crate::files::snapshot(&lock_path(&path)).unwrap(), lock);
        drop(live);
    }

    #[test]
    fn remove_stale_takes_only_a_dead_producers_ring() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.ring");
        assert!(!remove_stale(&path).unwrap());
        assert!(!lock_path(&path).exists());
        let live = create(&path, 8, ID).unwrap();
        assert!(matches!(remove_stale(&path), Err(CreateError::Held { .. })));
        drop(live); // dies without ending: the ring stays, the lock goes
        assert!(path.exists());
        assert!(remove_stale(&path).unwrap());
        assert!(!path.exists() && !lock_path(&path).exists());
        std::fs::write(&path, b"mine").unwrap();
        assert!(matches!(
            remove_stale(&path),
            Err(CreateError::Foreign { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"mine");
    }

    #[test]
    fn removing_at_the_end_spares_a_file_that_took_the_rings_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.ring");
        let p = create(&path, 8, ID).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"someone else's").unwrap();
        p.end_and_unlink();
        assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
    }

    #[test]
    fn lossless_consumer_registers_and_producer_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.ring");
        let id = ProducerId {
            lossless: true,
            ..ID
        };
        let mut p = create(&path, 4, id).unwrap();
        let (mut s, info) = open(&path, StartAt::Oldest).unwrap();
        assert!(info.lossless);
        assert_eq!(s.registration(), crate::ring::Registration::Active);
        assert_eq!(s.active_consumers(), 1);
        for i in 0..4 {
            p.publish(&Tick {
                symbol: i,
                ..Tick::default()
            });
        }
        // The ring is full: a fifth publish would wait. Drain one, then it fits.
        assert!(matches!(s.poll(), Poll::Tick(t) if t.seq == 1));
        p.publish(&Tick::default());
        for seq in 2..=5 {
            assert!(matches!(s.poll(), Poll::Tick(t) if t.seq == seq));
        }
        drop(s);
        assert_eq!(p.active_consumers(), 0);
        // Nobody registered: publishing never waits.
        for _ in 0..100 {
            p.publish(&Tick::default());
        }
    }
}
