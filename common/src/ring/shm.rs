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
//! - [`open`] trusts nothing in the file before checking it: magic, layout version,
//!   slot size, tick-layout fingerprint, a power-of-two capacity within bounds, and a
//!   file length that matches the capacity exactly. A file that fails any check is
//!   refused with an [`OpenError`] that says which.
//! - Creating and opening allocate and make system calls; they are start-up work.
//!   Publishing and polling through the mapping do neither.
//!
//! A process that truncates the file under a live mapping can still make readers fault
//! (`SIGBUS`); the file is owner-only so only the same user can do that.

use super::{
    Header, ProducerState, Publisher, Region, Slot, StartAt, Subscriber, HEADER_BYTES,
    LAYOUT_VERSION, MAGIC, MAX_CAPACITY, MIN_CAPACITY,
};
use crate::sync::Ordering;
use crate::tick::TICK_LAYOUT_FINGERPRINT;
use memmap2::{Mmap, MmapMut, MmapOptions};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a ring file could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The capacity is not a power of two within bounds.
    #[error("ring capacity {0} is not a power of two between {MIN_CAPACITY} and {MAX_CAPACITY}")]
    Capacity(u64),
    /// A file system call failed.
    #[error("cannot create ring file {path}: {source}")]
    Io {
        /// The file in question.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// Why a ring file could not be opened as a consumer.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No file at the path (yet).
    #[error("ring file {0} does not exist")]
    Missing(PathBuf),
    /// A file system call failed.
    #[error("cannot open ring file {path}: {source}")]
    Io {
        /// The file in question.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file is not a valid ring of this build's layout.
    #[error("ring file {path} is not usable: {reason}")]
    Invalid {
        /// The file in question.
        path: PathBuf,
        /// What check failed.
        reason: String,
    },
}

/// A ring mapped read-write by its producer.
pub struct OwnedRegion {
    map: MmapMut,
    path: PathBuf,
    ino: u64,
}

/// A ring mapped read-only by a consumer.
pub struct MappedRegion {
    map: Mmap,
    path: PathBuf,
    ino: u64,
}

fn header_of(bytes: &[u8]) -> &Header {
    debug_assert!(bytes.len() >= HEADER_BYTES);
    debug_assert_eq!(bytes.as_ptr() as usize % 4096, 0);
    // SAFETY: [1] the mapping is page-aligned (mmap returns page-aligned addresses) and at
    // least HEADER_BYTES long (checked by `create`/`validate` before a region is built),
    // and `Header` fits in HEADER_BYTES (const-asserted) with alignment 128 < 4096;
    // [2] `Header` is all atomics, for which every bit pattern is valid, and the file
    // was zero-filled or written by a producer; [3] the mapping lives as long as the
    // region that lends this reference, and is never unmapped while borrowed.
    unsafe { &*(bytes.as_ptr() as *const Header) }
}

fn slots_of(bytes: &[u8]) -> &[Slot] {
    let n = (bytes.len() - HEADER_BYTES) / std::mem::size_of::<Slot>();
    // SAFETY: [1] HEADER_BYTES is a multiple of 64, so the slots start 64-aligned in a
    // page-aligned mapping; [2] the file length is HEADER_BYTES + capacity * 64 exactly
    // (checked by `create`/`validate`), so `n` slots lie inside the mapping; [3] a slot
    // is eight `AtomicU64`s, valid for any bit pattern; [4] lifetime as in `header_of`.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().add(HEADER_BYTES) as *const Slot, n) }
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
}

impl MappedRegion {
    /// Path the ring was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the path still names the file this region maps (a new producer replaces it).
    pub fn is_current(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| m.ino() == self.ino)
    }
}

/// Size in bytes of a ring file of `capacity` slots.
pub fn file_len(capacity: u64) -> u64 {
    HEADER_BYTES as u64 + capacity * std::mem::size_of::<Slot>() as u64
}

/// Identity of a producer start, written into the header.
#[derive(Clone, Copy, Debug)]
pub struct ProducerId {
    /// The producer's clock source ([`crate::clock::ClockSource`] as u32).
    pub clock_source: u32,
    /// Start time in nanoseconds since the Unix epoch.
    pub epoch_ns: u64,
}

/// Creates a ring file of `capacity` slots at `path`, replacing any file there, and
/// returns its publisher. The file is complete and pre-faulted before it appears.
pub fn create(
    path: &Path,
    capacity: u64,
    id: ProducerId,
) -> Result<Publisher<OwnedRegion>, CreateError> {
    if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
        return Err(CreateError::Capacity(capacity));
    }
    let io_err = |source| CreateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err)?;
    let result = (|| {
        file.set_len(file_len(capacity))?;
        // SAFETY: the file was just created by this process under a private temporary
        // name with mode 0600; nothing else maps or truncates it.
        let mut map = unsafe { MmapOptions::new().populate().map_mut(&file)? };
        // Touch every page so the first publish into it does not fault.
        for page in map.chunks_mut(4096) {
            page[0] = 0;
        }
        let ino = file.metadata()?.ino();
        Ok::<_, io::Error>((map, ino))
    })();
    let (map, ino) = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_err(e));
        }
    };
    header_of(&map).init(capacity, id.clock_source, std::process::id(), id.epoch_ns);
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(e));
    }
    Ok(Publisher::new(OwnedRegion {
        map,
        path: path.to_path_buf(),
        ino,
    }))
}

impl Publisher<OwnedRegion> {
    /// Ends the stream and removes the ring file if it is still this producer's.
    /// Consumers that have it mapped keep reading what is in it.
    pub fn end_and_unlink(&self) {
        self.end();
        let region = self.region();
        if std::fs::metadata(&region.path).is_ok_and(|m| m.ino() == region.ino) {
            let _ = std::fs::remove_file(&region.path);
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
}

/// Checks a mapped ring file of `len` bytes; `bytes` holds at least its header.
fn validate(bytes: &[u8], len: u64) -> Result<RingInfo, String> {
    if len < HEADER_BYTES as u64 {
        return Err(format!(
            "file is {len} bytes, shorter than the {HEADER_BYTES}-byte header"
        ));
    }
    let h = header_of(bytes);
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
    })
}

/// Opens the ring file at `path` read-only, validates it, pre-faults the mapping and
/// returns a subscriber with what the header says.
pub fn open(
    path: &Path,
    start: StartAt,
) -> Result<(Subscriber<MappedRegion>, RingInfo), OpenError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(OpenError::Missing(path.to_path_buf()))
        }
        Err(source) => {
            return Err(OpenError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let io_err = |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
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
    // SAFETY: the mapping is read-only and every byte is read through atomics (header
    // and slots are all `AtomicU64`/`AtomicU32`), so concurrent writes by the producer
    // are not data races. Truncation by another process could fault; the file is
    // owner-only (see the module docs).
    let map = unsafe { MmapOptions::new().populate().map(&file) }.map_err(io_err)?;
    let info = validate(&map, map.len() as u64).map_err(invalid)?;
    let region = MappedRegion {
        map,
        path: path.to_path_buf(),
        ino: meta.ino(),
    };
    Ok((Subscriber::new(region, start), info))
}

impl Subscriber<MappedRegion> {
    /// Whether the producer has ended its stream.
    pub fn producer_ended(&self) -> bool {
        self.header().producer_state() == Some(ProducerState::Ended)
    }
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
    fn new_producer_replaces_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.ring");
        let _p1 = create(&path, 8, ID).unwrap();
        let (s, _) = open(&path, StartAt::Oldest).unwrap();
        let _p2 = create(&path, 8, ID).unwrap();
        assert!(!s.region().is_current());
    }
}
