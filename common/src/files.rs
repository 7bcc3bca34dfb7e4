//! Files and folders the project writes, under one rule: it never replaces, truncates or
//! removes anything it did not write, and everything it creates is owner-only.
//!
//! # Guarantees
//!
//! - **Owner-only, whatever the umask.** Folders are created with mode 0700 and files
//!   with 0600, given at creation (a umask can only take bits away). A folder that
//!   exists already is used as it is; its mode is never changed.
//! - **Marked.** Every file written here begins with its [`Kind`]'s mark (the line
//!   `# written by hft-alloc-lab …`, `<!-- written by hft-alloc-lab … -->`, an hlog
//!   comment, or a leading `"written_by"` JSON key). That mark is how a later run tells
//!   its own earlier output from a file of someone else's.
//! - **Never over someone else's file.** Before writing a path, [`examine`] looks at what
//!   is there without following a symbolic link: nothing, or a regular file of this user
//!   that carries the kind's mark, may be written; anything else (a file without the
//!   mark, an empty file, a folder, a FIFO, a socket, a device, a symbolic link, a file
//!   of another user or one this user may not read) is refused with
//!   [`FileError::Foreign`] and left exactly as it was.
//! - **Atomic.** A file is written under a temporary name in the same folder and then
//!   renamed into place, so a reader sees the old file or the new one, never a part of
//!   either. Where nothing was at the path, the rename never replaces what may have
//!   appeared there meanwhile; where an earlier output was, it replaces only that file
//!   (same inode, checked just before). A streamed file ([`Draft`]) appears once its
//!   first bytes (the mark) are written and grows in place after that.
//! - **Removes only its own.** [`remove_own`] removes a file only if it carries the mark.
//!
//! Everything here allocates and makes system calls: start-up and shutdown work for
//! cold threads, never for a hot one.

use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The writer named in every mark: the project and its version.
pub const WRITER: &str = concat!("hft-alloc-lab ", env!("CARGO_PKG_VERSION"));

/// What the project writes, and how a file of that kind shows it is the project's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// JSON ([`write_json`]): an object whose first key is `"written_by"`, with a value
    /// that starts with `hft-alloc-lab`.
    Json,
    /// An HdrHistogram interval log: its first line is the comment
    /// `#written by hft-alloc-lab …`.
    Hlog,
    /// Text with `#` comments (TOML, logs): its first line is
    /// `# written by hft-alloc-lab …`.
    Text,
    /// Markdown, SVG: its first line is `<!-- written by hft-alloc-lab … -->`.
    Markup,
}

const MARK: &str = "written by hft-alloc-lab";

impl Kind {
    /// The first line of a file of this kind (with its newline), saying what it is:
    /// `what` is free text, for example `report of lab compare`. Not for [`Kind::Json`]
    /// (see [`write_json`]) or [`Kind::Hlog`] (see [`Kind::hlog_comment`]).
    pub fn header(self, what: &str) -> String {
        let what = what.replace('\n', " ");
        match self {
            Kind::Text | Kind::Json | Kind::Hlog => format!("# {MARK} {}: {what}\n", version()),
            Kind::Markup => format!(
                "<!-- {MARK} {}: {} -->\n",
                version(),
                what.replace("--", "-")
            ),
        }
    }

    /// The first comment of an `.hlog` (the writer adds the leading `#`).
    pub fn hlog_comment(what: &str) -> String {
        format!("{MARK} {}: {}", version(), what.replace('\n', " "))
    }

    /// Whether `head`, the first bytes of a file, carry this kind's mark.
    pub fn is_marked(self, head: &[u8]) -> bool {
        match self {
            Kind::Text => head.starts_with(b"# written by hft-alloc-lab"),
            Kind::Hlog => head.starts_with(b"#written by hft-alloc-lab"),
            Kind::Markup => head.starts_with(b"<!-- written by hft-alloc-lab"),
            Kind::Json => json_marked(head),
        }
    }
}

/// `hft-alloc-lab 0.1.0` without the project name (the marks name it).
fn version() -> &'static str {
    &WRITER["hft-alloc-lab ".len()..]
}

/// `{ "written_by" : "hft-alloc-lab` with any whitespace between the tokens.
fn json_marked(head: &[u8]) -> bool {
    let mut rest = head;
    for token in [&b"{"[..], b"\"written_by\"", b":", b"\"hft-alloc-lab"] {
        let start = rest
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(rest.len());
        rest = &rest[start..];
        match rest.strip_prefix(token) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    true
}

/// A path could not be written, or is not the project's to write.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Something that is not the project's own output is at the path: it is left as it
    /// was. Bad input: the user chose the path.
    #[error(
        "{} is {what}, not a file hft-alloc-lab wrote; it is left as it is: move it away or choose another path",
        path.display()
    )]
    Foreign {
        /// The path.
        path: PathBuf,
        /// What is there, in words (`a folder`, `an empty file`, …).
        what: String,
    },
    /// A file system call failed.
    #[error("cannot {action} {}: {error}", path.display())]
    Io {
        /// What was being done (`create`, `write`, `rename into place`, …).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// Why (in the message, not a `source()`, so `{:#}` prints it once).
        error: io::Error,
    },
}

impl FileError {
    /// Whether this is bad input (a path holding someone else's file) rather than a
    /// failure while running.
    pub fn is_foreign(&self) -> bool {
        matches!(self, FileError::Foreign { .. })
    }

    fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FileError + 'a {
        move |error| FileError::Io {
            action,
            path: path.to_path_buf(),
            error,
        }
    }
}

/// Identity of a file: device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The identity in `meta`.
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// Whether `path` names this file now (without following a symbolic link).
    pub fn is_at(&self, path: &Path) -> bool {
        std::fs::symlink_metadata(path).is_ok_and(|m| FileId::of(&m) == *self)
    }
}

/// What [`examine`] found at a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Nothing.
    Nothing,
    /// A file of the project's own, of the kind asked for.
    Own(FileId),
}

/// What a non-regular object at a path is, in words; `None` for a regular file.
pub fn describe_special(path: &Path, meta: &std::fs::Metadata) -> Option<String> {
    let t = meta.file_type();
    Some(if t.is_symlink() {
        match std::fs::read_link(path) {
            Ok(target) => format!("a symbolic link (to {})", target.display()),
            Err(_) => "a symbolic link".to_string(),
        }
    } else if t.is_dir() {
        "a folder".to_string()
    } else if t.is_fifo() {
        "a FIFO".to_string()
    } else if t.is_socket() {
        "a socket".to_string()
    } else if t.is_block_device() || t.is_char_device() {
        "a device".to_string()
    } else if t.is_file() {
        return None;
    } else {
        "not a regular file".to_string()
    })
}

/// Opens the regular file at `path` for reading without following a symbolic link and
/// without blocking on a FIFO swapped in meanwhile; checks that it is still the file
/// `meta` describes, a regular file of this user. Returns its first `n` bytes (fewer if
/// it is shorter). `Err(what)` says, in words, why it is not for us.
pub fn read_head(path: &Path, meta: &std::fs::Metadata, n: usize) -> Result<Vec<u8>, String> {
    if let Some(what) = describe_special(path, meta) {
        return Err(what);
    }
    if meta.uid() != crate::os::effective_uid() {
        return Err(format!("a file of user {}", meta.uid()));
    }
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => "a file this user may not read".to_string(),
            _ => format!("a file that cannot be opened ({e})"),
        })?;
    let now = file
        .metadata()
        .map_err(|e| format!("a file that cannot be examined ({e})"))?;
    if FileId::of(&now) != FileId::of(meta) || !now.is_file() {
        return Err("a file that changed while it was examined".to_string());
    }
    let mut head = Vec::with_capacity(n);
    (&mut file)
        .take(n as u64)
        .read_to_end(&mut head)
        .map_err(|e| format!("a file that cannot be read ({e})"))?;
    Ok(head)
}

/// Looks at `path` before the project writes a file of `kind` there, without changing
/// anything: [`Existing::Nothing`], [`Existing::Own`] for a regular file of this user
/// that carries the kind's mark, else [`FileError::Foreign`] saying what is there.
pub fn examine(path: &Path, kind: Kind) -> Result<Existing, FileError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Existing::Nothing),
        Err(e) => return Err(FileError::io("examine", path)(e)),
    };
    let foreign = |what: String| FileError::Foreign {
        path: path.to_path_buf(),
        what,
    };
    let head = read_head(path, &meta, 256).map_err(foreign)?;
    if kind.is_marked(&head) {
        Ok(Existing::Own(FileId::of(&meta)))
    } else if meta.len() == 0 {
        Err(foreign("an empty file".to_string()))
    } else {
        Err(foreign(format!(
            "a file of {} bytes without hft-alloc-lab's mark",
            meta.len()
        )))
    }
}

/// A file being written under a temporary name (mode 0600) in the folder of the path it
/// will take; [`Draft::publish`] renames it into place. Dropped unpublished, the
/// temporary file is removed.
pub struct Draft {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
    existing: Existing,
}

impl Draft {
    /// Starts a file of `kind` for `path`, after [`examine`] found nothing or an earlier
    /// output of the project's own there.
    pub fn create(path: &Path, kind: Kind) -> Result<Draft, FileError> {
        let existing = examine(path, kind)?;
        Draft::replacing(path, existing)
    }

    /// Starts a file for `path` where the caller examined it already and found
    /// `existing` (for files with their own way of telling theirs, like the ring).
    pub fn replacing(path: &Path, existing: Existing) -> Result<Draft, FileError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut prefix = std::ffi::OsString::from(".");
        prefix.push(path.file_name().unwrap_or_default());
        prefix.push(".");
        let tmp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".tmp")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .tempfile_in(dir)
            .map_err(FileError::io("create a file in", dir))?;
        Ok(Draft {
            tmp,
            path: path.to_path_buf(),
            existing,
        })
    }

    /// The file being written.
    pub fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// Renames the file into place and returns it (still open for writing). Where
    /// nothing was at the path, nothing that appeared there since is replaced; where an
    /// earlier output was, only that same file is.
    pub fn publish(self) -> Result<File, FileError> {
        let path = self.path;
        let result = match self.existing {
            Existing::Nothing => self.tmp.persist_noclobber(&path),
            Existing::Own(id) => {
                if !id.is_at(&path) {
                    return Err(FileError::Foreign {
                        what: "a file that replaced the project's own output while it was being written"
                            .to_string(),
                        path,
                    });
                }
                self.tmp.persist(&path)
            }
        };
        result.map_err(|e| match e.error.kind() {
            io::ErrorKind::AlreadyExists => FileError::Foreign {
                path: path.clone(),
                what: "a file that appeared while the project's own was being written".to_string(),
            },
            _ => FileError::Io {
                action: "rename into place",
                path: path.clone(),
                error: e.error,
            },
        })
    }
}

/// Writes `bytes` (which must begin with `kind`'s mark) to `path` atomically and
/// owner-only, replacing only an earlier output of the project's own (see the module
/// docs); the data is on disk (fsync) before the rename.
pub fn write(path: &Path, kind: Kind, bytes: &[u8]) -> Result<(), FileError> {
    debug_assert!(kind.is_marked(bytes), "{kind:?} output without its mark");
    let mut draft = Draft::create(path, kind)?;
    let file = draft.file();
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(FileError::io("write", path))?;
    draft.publish().map(drop)
}

/// Creates a log file of [`Kind::Text`] at `path` (replacing only an earlier log of the
/// project's own), its first line saying `what` it holds; returns it open for appending.
pub fn create_log(path: &Path, what: &str) -> Result<File, FileError> {
    let mut draft = Draft::create(path, Kind::Text)?;
    draft
        .file()
        .write_all(Kind::Text.header(what).as_bytes())
        .map_err(FileError::io("write", path))?;
    draft.publish()
}

/// Writes `value` (a struct or map) as pretty JSON, `"written_by"` first, with
/// [`write()`]'s guarantees: a reader never sees a half-written file.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), FileError> {
    #[derive(Serialize)]
    struct Marked<'a, T> {
        written_by: &'static str,
        #[serde(flatten)]
        value: &'a T,
    }
    let mut bytes = serde_json::to_vec_pretty(&Marked {
        written_by: WRITER,
        value,
    })
    .map_err(|e| FileError::Io {
        action: "encode JSON for",
        path: path.to_path_buf(),
        error: io::Error::other(e),
    })?;
    bytes.push(b'\n');
    write(path, Kind::Json, &bytes)
}

/// Removes the file at `path` if it is an output of `kind` of the project's own;
/// `Ok(false)` if nothing is there. Anything else is refused and left.
pub fn remove_own(path: &Path, kind: Kind) -> Result<bool, FileError> {
    match examine(path, kind)? {
        Existing::Nothing => Ok(false),
        Existing::Own(_) => std::fs::remove_file(path)
            .map(|()| true)
            .map_err(FileError::io("remove", path)),
    }
}

/// Removes the file at `path` if it is a regular file of this user whose first 256
/// bytes `accept` takes as the project's own (for kinds with their own marks, such as
/// journal segments); `Ok(false)` if nothing is there. Anything else is refused and left.
pub fn remove_own_with(path: &Path, accept: impl Fn(&[u8]) -> bool) -> Result<bool, FileError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(FileError::io("examine", path)(e)),
    };
    let foreign = |what: String| FileError::Foreign {
        path: path.to_path_buf(),
        what,
    };
    let head = read_head(path, &meta, 256).map_err(foreign)?;
    if !accept(&head) {
        return Err(foreign(format!(
            "a file of {} bytes that is not one of the project's",
            meta.len()
        )));
    }
    std::fs::remove_file(path)
        .map(|()| true)
        .map_err(FileError::io("remove", path))
}

/// Creates the folder `dir` and its missing parents, each with mode 0700; folders that
/// exist are left as they are.
pub fn create_dir_all(dir: &Path) -> Result<(), FileError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(FileError::io("create folder", dir))
}

/// Creates `base` (mode 0700, missing parents too); if something is there already,
/// `base-2`, `base-3`, … so that two runs started in the same second never share a
/// folder. Returns the folder made.
pub fn create_fresh_dir(base: &Path) -> Result<PathBuf, FileError> {
    if let Some(parent) = base.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(parent)?;
    }
    for n in 1..1000u32 {
        let path = if n == 1 {
            base.to_path_buf()
        } else {
            let mut s = base.as_os_str().to_owned();
            s.push(format!("-{n}"));
            PathBuf::from(s)
        };
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(FileError::io("create folder", &path)(e)),
        }
    }
    Err(FileError::Io {
        action: "create a fresh folder next to",
        path: base.to_path_buf(),
        error: io::Error::new(
            io::ErrorKind::AlreadyExists,
            "999 folders of that name exist",
        ),
    })
}

/// Proves that files can be created in `dir` by creating one without a name (or a
/// named one, removed at once, where the file system has no unnamed files).
pub fn probe_dir(dir: &Path) -> io::Result<()> {
    tempfile::tempfile_in(dir).map(drop)
}

/// Opens (creating it 0600 if missing) the file at `path` for reading and writing,
/// without following a symbolic link and without blocking on a FIFO; `accept` gets the
/// first 256 bytes of an existing file and decides whether it is the project's own.
/// Returns the file and whether it was created. Anything refused is left as it was.
pub fn open_own(path: &Path, accept: impl Fn(&[u8]) -> bool) -> Result<(File, bool), FileError> {
    loop {
        match std::fs::symlink_metadata(path) {
            Ok(meta) => {
                let foreign = |what: String| FileError::Foreign {
                    path: path.to_path_buf(),
                    what,
                };
                let head = read_head(path, &meta, 256).map_err(foreign)?;
                if !accept(&head) {
                    return Err(foreign(format!(
                        "a file of {} bytes that is not one of the project's",
                        meta.len()
                    )));
                }
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                    .open(path)
                    .map_err(FileError::io("open", path))?;
                let now = file.metadata().map_err(FileError::io("examine", path))?;
                if FileId::of(&now) == FileId::of(&meta) {
                    return Ok((file, false));
                }
                // Replaced between the look and the open: look again.
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                {
                    Ok(file) => return Ok((file, true)),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(FileError::io("create", path)(e)),
                }
            }
            Err(e) => return Err(FileError::io("examine", path)(e)),
        }
    }
}

/// Everything observable about the object at `path`, without following a symbolic
/// link: identity, mode, size, modification and change times, and content (a link's
/// target, a folder's sorted names, a regular file's bytes). Two equal snapshots mean
/// the object was left exactly as it was: for tests and fault scenarios that check the
/// project did not touch a file of someone else's.
pub fn snapshot(path: &Path) -> io::Result<String> {
    let m = std::fs::symlink_metadata(path)?;
    let content = if m.file_type().is_symlink() {
        format!("-> {}", std::fs::read_link(path)?.display())
    } else if m.is_dir() {
        let mut names = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<Vec<_>>>()?;
        names.sort();
        format!("{names:?}")
    } else if m.is_file() {
        format!("{:?}", std::fs::read(path)?)
    } else {
        String::new()
    };
    Ok(format!(
        "ino {} mode {:o} uid {} len {} mtime {}.{} ctime {}.{} {content}",
        m.ino(),
        m.mode(),
        m.uid(),
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn marks_are_recognised() {
        for kind in [Kind::Text, Kind::Markup] {
            assert!(kind.is_marked(kind.header("x").as_bytes()), "{kind:?}");
            assert!(!kind.is_marked(b"hello"), "{kind:?}");
            assert!(!kind.is_marked(b""), "{kind:?}");
        }
        assert!(Kind::Hlog.is_marked(format!("#{}\n", Kind::hlog_comment("e")).as_bytes()));
        assert!(!Kind::Hlog.is_marked(b"#[StartTime: 1]\n"));
        assert!(Kind::Json.is_marked(b"{\n  \"written_by\": \"hft-alloc-lab 0.1.0\""));
        assert!(Kind::Json.is_marked(b" {\"written_by\" :\"hft-alloc-lab"));
        assert!(!Kind::Json.is_marked(b"{\"written_by\": \"someone else\"}"));
        assert!(!Kind::Json.is_marked(b"{\"a\": 1, \"written_by\": \"hft-alloc-lab\"}"));
        assert!(!Kind::Markup.is_marked(Kind::Text.header("x").as_bytes()));
    }

    #[test]
    fn writes_owner_only_and_replaces_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("report.md");
        let first = Kind::Markup.header("first");
        write(&p, Kind::Markup, first.as_bytes()).unwrap();
        assert_eq!(mode(&p), 0o600);
        let second = format!("{}body\n", Kind::Markup.header("second"));
        write(&p, Kind::Markup, second.as_bytes()).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), second);
        // Of its own, but not of this kind: refused.
        assert!(matches!(
            write(&p, Kind::Text, Kind::Text.header("t").as_bytes()),
            Err(FileError::Foreign { .. })
        ));
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn foreign_objects_are_refused_and_left_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("mine.json"), b"{\"user\": 1}").unwrap();
        std::fs::write(d.join("empty.json"), b"").unwrap();
        std::fs::create_dir(d.join("folder.json")).unwrap();
        std::os::unix::fs::symlink(d.join("mine.json"), d.join("link.json")).unwrap();
        let fifo = d.join("fifo.json");
        assert!(Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        for (name, what) in [
            ("mine.json", "a file of 11 bytes without"),
            ("empty.json", "an empty file"),
            ("folder.json", "a folder"),
            ("link.json", "a symbolic link"),
            ("fifo.json", "a FIFO"),
        ] {
            let p = d.join(name);
            let before = std::fs::symlink_metadata(&p).unwrap();
            match write_json(&p, &serde_json::json!({"x": 1})) {
                Err(e @ FileError::Foreign { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains(what), "{name}: {msg}");
                    assert!(msg.contains(&p.display().to_string()), "{msg}");
                }
                other => panic!("{name}: {other:?}"),
            }
            let after = std::fs::symlink_metadata(&p).unwrap();
            assert_eq!(FileId::of(&before), FileId::of(&after), "{name}");
            assert_eq!(before.mtime(), after.mtime(), "{name}");
            assert_eq!(before.len(), after.len(), "{name}");
            assert!(matches!(
                remove_own(&p, Kind::Json),
                Err(FileError::Foreign { .. })
            ));
            assert!(std::fs::symlink_metadata(&p).is_ok(), "{name} removed");
        }
        assert_eq!(
            std::fs::read(d.join("mine.json")).unwrap(),
            b"{\"user\": 1}"
        );
        use std::process::Command;
    }

    #[test]
    fn json_is_marked_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        write_json(&p, &serde_json::json!({"count": 3})).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.starts_with("{\n  \"written_by\": \"hft-alloc-lab "),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["count"], 3);
        assert!(remove_own(&p, Kind::Json).unwrap());
        assert!(!remove_own(&p, Kind::Json).unwrap());
    }

    #[test]
    fn folders_are_owner_only_and_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("a/b/run");
        let first = create_fresh_dir(&base).unwrap();
        let second = create_fresh_dir(&base).unwrap();
        assert_eq!(first, base);
        assert_eq!(second, dir.path().join("a/b/run-2"));
        for p in [dir.path().join("a"), dir.path().join("a/b"), first, second] {
            assert_eq!(mode(&p), 0o700, "{}", p.display());
        }
        probe_dir(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_streamed_draft_appears_marked_and_grows_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        let mut d = Draft::create(&p, Kind::Text).unwrap();
        d.file()
            .write_all(Kind::Text.header("log").as_bytes())
            .unwrap();
        assert!(!p.exists());
        let mut f = d.publish().unwrap();
        f.write_all(b"line\n").unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.ends_with("line\n") && Kind::Text.is_marked(text.as_bytes()));
        // An unpublished draft leaves nothing.
        drop(Draft::create(&dir.path().join("y.log"), Kind::Text).unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn open_own_creates_or_accepts_only_what_it_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let (_f, created) = open_own(&p, |h| h.iter().all(u8::is_ascii_digit)).unwrap();
        assert!(created);
        assert_eq!(mode(&p), 0o600);
        let (_f, created) = open_own(&p, |h| h.iter().all(u8::is_ascii_digit)).unwrap();
        assert!(!created);
        std::fs::write(&p, b"user data").unwrap();
        assert!(matches!(
            open_own(&p, |h| h.iter().all(u8::is_ascii_digit)),
            Err(FileError::Foreign { .. })
        ));
        assert_eq!(std::fs::read(&p).unwrap(), b"user data");
    }
}
