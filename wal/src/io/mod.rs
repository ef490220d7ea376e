//! The one seam between Gesta and the disk.
//!
//! Every file operation that the log, the index runs and the MANIFEST make goes
//! through [`FileSystem`] and [`FileHandle`]. Production code uses [`StdFs`];
//! tests swap in `fault::FaultFs`, which can lose unsynced data, tear the
//! last write and fail chosen operations, or `obfuscated::ObfuscatedFs`,
//! which transforms every byte on its way to and from the disk so that any
//! code reaching the disk around this trait is caught by the tests. Both are
//! behind the crate's `testing` feature.
//!
//! The trait is deliberately small: positional reads and writes, `fdatasync`,
//! length changes, and the directory operations a crash-safe metadata switch
//! needs (rename, remove, list, directory fsync), plus the exclusive lock that
//! keeps a second process out of a store directory.

#[cfg(any(test, feature = "testing"))]
pub mod fault;
#[cfg(any(test, feature = "testing"))]
pub mod obfuscated;
mod std_fs;

use std::any::Any;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use std_fs::StdFs;

/// How [`FileSystem::open`] treats a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Open an existing file for reading and writing; fail with
    /// `NotFound` if it does not exist.
    Existing,
    /// Create a new file for reading and writing; fail with `AlreadyExists`
    /// if it exists.
    CreateNew,
    /// Create the file if it is missing, truncate it to zero length if not.
    Truncate,
    /// [`Truncate`](Self::Truncate), a file created readable and writable
    /// by its owner only (mode 0600): for secrets, such as the key file of
    /// crypto-shredding, whose copy by another local user would outlive
    /// every forget.
    TruncatePrivate,
    /// Open an existing file for reading only; fail with `NotFound` if it
    /// does not exist. For a file this process must not change (another
    /// process's key file), or may not be allowed to.
    ReadOnly,
}

/// An open file. All I/O is positional, so one handle can be shared by the
/// writer and any number of readers without a seek position to race on.
pub trait FileHandle: Send + Sync + fmt::Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read
    /// (fewer only at the end of the file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Writes all of `buf` at `offset`, extending the file if needed.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// Makes every completed write to this file durable (`fdatasync`),
    /// including a changed length.
    fn sync_data(&self) -> io::Result<()>;

    /// The current length of the file in bytes.
    fn len(&self) -> io::Result<u64>;

    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Maps the whole file read-only, at its current length. Callers read
    /// through a map only bytes that no longer change: immutable files
    /// (sealed segments, index runs), or the published part of the active
    /// segment when [`FileSystem::mmap_is_coherent`] holds.
    fn map(&self) -> io::Result<Mapping>;
}

/// A read-only view of a whole file, as returned by [`FileHandle::map`].
///
/// Backed by an `mmap` on a real file system and by an owned copy on the
/// test file systems.
#[derive(Clone)]
pub struct Mapping(Arc<dyn AsRef<[u8]> + Send + Sync>);

impl Mapping {
    /// Wraps anything that derefs to bytes.
    pub fn new(bytes: Arc<dyn AsRef<[u8]> + Send + Sync>) -> Self {
        Mapping(bytes)
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping")
            .field("len", &self.bytes().len())
            .finish()
    }
}

/// A held exclusive lock on a store directory; released when dropped.
pub type LockGuard = Box<dyn Any + Send + Sync>;

/// The file-system operations Gesta uses, and nothing more.
pub trait FileSystem: Send + Sync + fmt::Debug + 'static {
    /// Opens a file; see [`OpenMode`].
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>>;

    /// Creates a directory and its missing parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;

    /// Atomically replaces `to` with `from` (durable only after
    /// [`sync_dir`](Self::sync_dir) of the parent).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes a file (durable only after [`sync_dir`](Self::sync_dir)).
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Removes an empty directory (an error if it holds anything). Not
    /// durable until its parent directory is synced.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;

    /// The names (not paths) of the entries of a directory, in no order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// Whether a file or directory exists.
    fn exists(&self, path: &Path) -> io::Result<bool>;

    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Whether a [`FileHandle::map`] of a file keeps showing bytes written
    /// to it later (true for a real `mmap`, false for file systems whose map
    /// is a copy). Readers map a file that is still being appended to only
    /// when this holds; immutable files they map regardless.
    fn mmap_is_coherent(&self) -> bool {
        false
    }

    /// Makes `to` a second name of the file `from` (a hard link). Neither
    /// is durable until the directory of `to` is synced. File systems that
    /// cannot (the test file systems, whose files live in memory) return
    /// `io::ErrorKind::Unsupported`, and callers copy instead.
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let _ = (from, to);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this file system makes no hard links",
        ))
    }

    /// Takes an exclusive lock on `path` (created if missing). Fails with
    /// `io::ErrorKind::WouldBlock` if another holder, in this process or
    /// another, has it.
    fn lock(&self, path: &Path) -> io::Result<LockGuard>;
}

/// Joins a directory and a file name; a small helper shared by callers.
pub fn join(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// Reads exactly `buf.len()` bytes at `offset`, failing with
/// `UnexpectedEof` if the file is shorter.
pub fn read_exact_at(file: &dyn FileHandle, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file ended before the expected bytes",
                ));
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads the whole file into memory.
pub fn read_all(file: &dyn FileHandle) -> io::Result<Vec<u8>> {
    let len = usize::try_from(file.len()?)
        .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "file too large to read"))?;
    let mut buf = vec![0; len];
    read_exact_at(file, &mut buf, 0)?;
    Ok(buf)
}

/// Creates `dir` and its missing parents, durably: each directory it
/// creates is synced into its parent, so a crash after this returns leaves
/// all of them (and the files synced into them later). Directories that
/// exist are left as they are, unsynced.
pub fn create_dir_all_durably(fs: &dyn FileSystem, dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.as_os_str().is_empty() && !fs.exists(at)? {
        missing.push(at);
        match at.parent() {
            Some(parent) => at = parent,
            None => break,
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    fs.create_dir_all(dir)?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs.sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Replaces the file at `path` with `contents` atomically and durably:
/// write a temporary file, fsync it, rename it over `path`, fsync the
/// directory. A crash leaves either the old or the new contents.
pub fn write_atomic(fs: &dyn FileSystem, path: &Path, contents: &[u8]) -> io::Result<()> {
    write_atomic_as(fs, path, contents, OpenMode::Truncate)
}

/// [`write_atomic`] for a secret: the file (and its temporary file, before
/// any byte is written) readable by its owner only
/// ([`OpenMode::TruncatePrivate`]).
pub fn write_atomic_private(fs: &dyn FileSystem, path: &Path, contents: &[u8]) -> io::Result<()> {
    write_atomic_as(fs, path, contents, OpenMode::TruncatePrivate)
}

fn write_atomic_as(
    fs: &dyn FileSystem,
    path: &Path,
    contents: &[u8],
    mode: OpenMode,
) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!("{name}.tmp"));
    let file = fs.open(&tmp, mode)?;
    file.write_at(contents, 0)?;
    file.sync_data()?;
    drop(file);
    fs.rename(&tmp, path)?;
    fs.sync_dir(dir)
}
