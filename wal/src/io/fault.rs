//! An in-memory file system that models what a disk keeps across power loss.
//!
//! [`FaultFs`] owns the crash model the crash tests rely on. Every file is an
//! inode with two images: the *live* bytes that reads see and the *durable*
//! bytes that survive a crash, with the unsynced operations between them kept
//! in order. The namespace (path to inode) likewise has a live and a durable
//! version, and only [`FileSystem::sync_dir`] moves a directory's entries from
//! one to the other — strict POSIX, so a file that was created and fsynced in
//! a directory that was never fsynced is gone after a crash. Directories
//! themselves are durable as soon as they are created: Gesta syncs every
//! directory it creates into its parent (through
//! [`create_dir_all_durably`](super::create_dir_all_durably), which a test
//! checks, or by hand where it creates one level), and modelling lost
//! directories on top would only test the test.
//!
//! On top of the model sit the knobs a test turns: [`FaultFs::crash`]
//! (dropping unsynced state, or tearing it at a seeded random point),
//! [`FaultFs::fail_nth`] / [`FaultFs::fail_from`] to fail chosen operations
//! with `EIO` or `ENOSPC`, and [`FaultFs::crash_after`] to stop the world
//! after exactly *n* state-changing operations, so that a test can crash a
//! workload at every point in turn.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{FileHandle, FileSystem, LockGuard, Mapping, OpenMode};
use crate::rng::SplitMix64;

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

/// The kinds of operation that faults can target and that
/// [`FaultFs::op_count`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// [`FileSystem::open`], in any mode.
    Open,
    /// [`FileHandle::read_at`].
    Read,
    /// [`FileHandle::write_at`].
    Write,
    /// [`FileHandle::sync_data`].
    Sync,
    /// [`FileHandle::set_len`].
    SetLen,
    /// [`FileHandle::map`].
    Map,
    /// [`FileSystem::rename`].
    Rename,
    /// [`FileSystem::remove_file`] and [`FileSystem::remove_dir`].
    Remove,
    /// [`FileSystem::list`].
    List,
    /// [`FileSystem::exists`].
    Exists,
    /// [`FileSystem::sync_dir`].
    SyncDir,
    /// [`FileSystem::create_dir_all`].
    CreateDir,
    /// [`FileSystem::lock`].
    Lock,
}

impl OpKind {
    const COUNT: usize = 13;

    fn index(self) -> usize {
        self as usize
    }
}

/// An error to inject into an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `EIO`: the device reported an I/O error.
    Eio,
    /// `ENOSPC`: the device is full.
    Enospc,
}

impl Fault {
    /// The error an operation failed by this fault returns: the real OS
    /// error, so that both `raw_os_error()` and `kind()` match what a disk
    /// would report.
    pub fn to_io_error(self) -> io::Error {
        match self {
            Fault::Eio => io::Error::from_raw_os_error(EIO),
            Fault::Enospc => io::Error::from_raw_os_error(ENOSPC),
        }
    }
}

/// What survives a simulated power loss; see [`FaultFs::crash`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Every file is exactly as of its last `sync_data`.
    DropUnsynced,
    /// Every file keeps a pseudo-random prefix of its unsynced operations,
    /// the last kept write itself cut short. The same seed on the same
    /// history gives the same result.
    Torn {
        /// Seeds the generator that picks the prefixes.
        seed: u64,
    },
}

/// An in-memory file system with a power-loss model and fault injection.
///
/// Clones share the same disk. See the [module documentation](self) for the
/// model; every method on the [`FileSystem`] and [`FileHandle`] traits counts
/// as one operation of its [`OpKind`] (except [`FileHandle::len`], which is
/// neither counted nor injectable but still fails when the machine is down or
/// the handle is stale).
#[derive(Clone, Debug)]
pub struct FaultFs {
    state: Arc<Mutex<State>>,
}

impl Default for FaultFs {
    fn default() -> Self {
        Self::new()
    }
}

impl FaultFs {
    /// An empty file system: no files, only the root directory.
    pub fn new() -> Self {
        FaultFs {
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// Simulates a power loss and restart.
    ///
    /// Files fall back to their durable bytes (plus, with
    /// [`CrashMode::Torn`], a prefix of their unsynced operations), the
    /// namespace falls back to its durable version and files no longer named
    /// vanish. Locks are released, a pending or reached
    /// [`crash_after`](Self::crash_after) is cleared, and every handle and
    /// lock guard from before the crash becomes stale: handles fail every
    /// operation, guards release nothing. Injected faults are kept, as a
    /// failing disk stays failing across a reboot; see
    /// [`clear_faults`](Self::clear_faults).
    pub fn crash(&self, mode: CrashMode) {
        self.state.lock().crash(mode);
    }

    /// Makes the `n`-th (counting from 1, from now) operation of `kind`
    /// fail with `fault`, once. The failed operation has no effect.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    pub fn fail_nth(&self, kind: OpKind, n: u64, fault: Fault) {
        self.add_rule(kind, n, fault, false, false);
    }

    /// Like [`fail_nth`](Self::fail_nth), but the failed operation first
    /// takes effect in part, the worst a real disk does: a write stores the
    /// first half of its bytes (a short write, then `ENOSPC`), a
    /// `sync_data` makes the file durable and still reports the error, a
    /// `set_len` applies. Operations of other kinds fail without effect, as
    /// with `fail_nth`.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    pub fn fail_nth_partly(&self, kind: OpKind, n: u64, fault: Fault) {
        self.add_rule(kind, n, fault, false, true);
    }

    /// Makes the `n`-th (counting from 1, from now) and every later
    /// operation of `kind` fail with `fault`, until
    /// [`clear_faults`](Self::clear_faults).
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    pub fn fail_from(&self, kind: OpKind, n: u64, fault: Fault) {
        self.add_rule(kind, n, fault, true, false);
    }

    fn add_rule(&self, kind: OpKind, n: u64, fault: Fault, sticky: bool, partly: bool) {
        assert!(n >= 1, "operations are counted from 1");
        let mut state = self.state.lock();
        let at = state.counts[kind.index()] + n;
        state.rules.push(Rule {
            kind,
            at,
            fault,
            sticky,
            partly,
        });
    }

    /// Removes every fault set by [`fail_nth`](Self::fail_nth) or
    /// [`fail_from`](Self::fail_from) that has not fired yet or is still
    /// firing.
    pub fn clear_faults(&self) {
        self.state.lock().rules.clear();
    }

    /// How many state-changing operations have completed since the file
    /// system was created: opens that create or truncate, writes, length
    /// changes, file and directory syncs, renames, removals, directory
    /// creations, and locks that create their file. Each counts whether or
    /// not it actually changed anything (a sync with nothing to sync still
    /// counts), so the count depends only on the caller's sequence of calls.
    pub fn mutating_ops(&self) -> u64 {
        self.state.lock().mutating
    }

    /// Takes the machine down once `n` more state-changing operations (as
    /// counted by [`mutating_ops`](Self::mutating_ops)) have completed:
    /// from then on every operation of any kind fails with `EIO` until
    /// [`crash`](Self::crash). With `n == 0` the machine goes down at once.
    pub fn crash_after(&self, n: u64) {
        let mut state = self.state.lock();
        let at = state.mutating + n;
        state.down_at = Some(at);
        if n == 0 {
            state.down = true;
        }
    }

    /// Whether a [`crash_after`](Self::crash_after) point has been reached
    /// and the machine is waiting for [`crash`](Self::crash).
    pub fn is_down(&self) -> bool {
        self.state.lock().down
    }

    /// How many operations of `kind` have been attempted since the file
    /// system was created, including ones that failed.
    pub fn op_count(&self, kind: OpKind) -> u64 {
        self.state.lock().counts[kind.index()]
    }

    /// What a crash right now would leave at `path` with
    /// [`CrashMode::DropUnsynced`]: the durable bytes of the file the durable
    /// namespace names there, or `None` if it names nothing.
    pub fn durable_contents(&self, path: impl AsRef<Path>) -> Option<Vec<u8>> {
        let state = self.state.lock();
        let ino = state.durable.get(path.as_ref())?;
        state.inodes.get(ino).map(|inode| inode.durable.clone())
    }

    /// XORs the byte at `offset` of the file at `path` with `xor_mask`, in
    /// both its live and its durable image (wherever the file is that long):
    /// bit rot on the medium, for corruption tests.
    ///
    /// The next `sync_data` of the file makes its durable image equal to
    /// the corrupted live one.
    ///
    /// # Panics
    ///
    /// If no file is named `path` (live or durable), or `offset` lies beyond
    /// the end of both images: a corruption test that corrupts nothing would
    /// pass for the wrong reason.
    pub fn corrupt(&self, path: impl AsRef<Path>, offset: u64, xor_mask: u8) {
        let path = path.as_ref();
        let mut state = self.state.lock();
        let ino = state
            .live
            .get(path)
            .or_else(|| state.durable.get(path))
            .copied();
        let inode = ino
            .and_then(|ino| state.inodes.get_mut(&ino))
            .unwrap_or_else(|| panic!("corrupt: no file at {}", path.display()));
        let mut hit = false;
        for image in [&mut inode.live, &mut inode.durable] {
            if let Some(byte) = usize::try_from(offset).ok().and_then(|o| image.get_mut(o)) {
                *byte ^= xor_mask;
                hit = true;
            }
        }
        assert!(
            hit,
            "corrupt: offset {offset} is beyond the end of {}",
            path.display()
        );
        // The unsynced operations no longer turn the durable image into the
        // live one, so the next sync must copy instead of replaying them.
        inode.resync = true;
    }
}

/// One unsynced change to a file, in the order it was made.
#[derive(Clone, Debug)]
enum Pending {
    Write { offset: usize, bytes: Vec<u8> },
    SetLen(usize),
}

impl Pending {
    fn apply(&self, data: &mut Vec<u8>) {
        match self {
            Pending::Write { offset, bytes } => write_into(data, *offset, bytes),
            Pending::SetLen(len) => data.resize(*len, 0),
        }
    }
}

fn write_into(data: &mut Vec<u8>, offset: usize, bytes: &[u8]) {
    // A zero-length write extends nothing, as with pwrite(2).
    if bytes.is_empty() {
        return;
    }
    let end = offset + bytes.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[offset..end].copy_from_slice(bytes);
}

#[derive(Default)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Invariant (unless `resync`): replaying these on `durable` gives
    /// `live`. Syncing replays them rather than copying `live`, so a sync
    /// costs what was written since the last one, not the file's size.
    unsynced: Vec<Pending>,
    /// Set when `live` was changed behind the log (by `corrupt`).
    resync: bool,
}

impl Inode {
    fn record(&mut self, op: Pending) {
        op.apply(&mut self.live);
        self.unsynced.push(op);
    }

    fn sync(&mut self) {
        if self.resync {
            self.durable.clone_from(&self.live);
            self.resync = false;
        } else {
            for op in &self.unsynced {
                op.apply(&mut self.durable);
            }
        }
        self.unsynced.clear();
    }

    fn crash(&mut self, rng: Option<&mut SplitMix64>) {
        let unsynced = std::mem::take(&mut self.unsynced);
        self.resync = false;
        if let Some(rng) = rng.filter(|_| !unsynced.is_empty()) {
            let kept = rng.below(unsynced.len() as u64 + 1) as usize;
            for (i, op) in unsynced[..kept].iter().enumerate() {
                match op {
                    Pending::Write { offset, bytes } if i + 1 == kept => {
                        let cut = rng.below(bytes.len() as u64 + 1) as usize;
                        write_into(&mut self.durable, *offset, &bytes[..cut]);
                    }
                    op => op.apply(&mut self.durable),
                }
            }
        }
        self.live.clone_from(&self.durable);
    }
}

struct Rule {
    kind: OpKind,
    /// The value of the kind's counter at which the rule fires.
    at: u64,
    fault: Fault,
    sticky: bool,
    /// The operation takes effect in part before it fails.
    partly: bool,
}

#[derive(Default)]
struct State {
    inodes: BTreeMap<u64, Inode>,
    next_ino: u64,
    live: BTreeMap<PathBuf, u64>,
    durable: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
    /// Bumped by every crash; handles and lock guards remember the value
    /// they were made under.
    generation: u64,
    counts: [u64; OpKind::COUNT],
    rules: Vec<Rule>,
    mutating: u64,
    down_at: Option<u64>,
    down: bool,
}

impl fmt::Debug for State {
    // File contents would drown any assertion message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("files", &self.live.keys().collect::<Vec<_>>())
            .field("dirs", &self.dirs)
            .field("generation", &self.generation)
            .field("mutating", &self.mutating)
            .field("down", &self.down)
            .finish_non_exhaustive()
    }
}

impl State {
    /// Counts an operation and decides whether it may run at all.
    fn enter(&mut self, kind: OpKind, generation: Option<u64>) -> io::Result<()> {
        match self.gate(kind, generation)? {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Counts an operation and decides how it runs: `Err`, not at all;
    /// `Ok(Some(error))`, in part, then fails with `error`; `Ok(None)`, as
    /// asked.
    fn gate(&mut self, kind: OpKind, generation: Option<u64>) -> io::Result<Option<io::Error>> {
        let count = &mut self.counts[kind.index()];
        *count += 1;
        let count = *count;
        self.check_alive(generation)?;
        let fired = self
            .rules
            .iter()
            .find(|r| r.kind == kind && (r.at == count || (r.sticky && r.at < count)))
            .map(|r| (r.fault, r.partly));
        // One-shot rules are spent once their operation has come, whether
        // it failed by them or by something else.
        self.rules
            .retain(|r| r.sticky || r.kind != kind || r.at > count);
        match fired {
            Some((fault, true)) => Ok(Some(fault.to_io_error())),
            Some((fault, false)) => Err(fault.to_io_error()),
            None => Ok(None),
        }
    }

    fn check_alive(&self, generation: Option<u64>) -> io::Result<()> {
        if self.down {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        match generation {
            Some(g) if g != self.generation => Err(io::Error::other(
                "stale file handle: opened before a simulated crash",
            )),
            _ => Ok(()),
        }
    }

    /// Records a completed state-changing operation.
    fn mutated(&mut self) {
        self.mutating += 1;
        if self.down_at.is_some_and(|at| self.mutating >= at) {
            self.down = true;
        }
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.parent().is_none() || self.dirs.contains(path)
    }

    fn check_parent(&self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(dir) if !self.is_dir(dir) => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: parent directory does not exist", path.display()),
            )),
            _ => Ok(()),
        }
    }

    fn check_not_dir(&self, path: &Path) -> io::Result<()> {
        if self.is_dir(path) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{}: is a directory", path.display()),
            ));
        }
        Ok(())
    }

    fn create(&mut self, path: &Path) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(ino, Inode::default());
        self.live.insert(path.to_path_buf(), ino);
        ino
    }

    fn inode(&mut self, ino: u64) -> io::Result<&mut Inode> {
        // Inodes are only dropped by a crash, which also makes every handle
        // naming them stale; reaching this error means a bug in FaultFs.
        self.inodes
            .get_mut(&ino)
            .ok_or_else(|| io::Error::other("FaultFs: handle names a vanished inode"))
    }

    fn crash(&mut self, mode: CrashMode) {
        self.live = self.durable.clone();
        let named: BTreeSet<u64> = self.durable.values().copied().collect();
        self.inodes.retain(|ino, _| named.contains(ino));
        let mut rng = match mode {
            CrashMode::DropUnsynced => None,
            CrashMode::Torn { seed } => Some(SplitMix64::new(seed)),
        };
        for inode in self.inodes.values_mut() {
            inode.crash(rng.as_mut());
        }
        self.locks.clear();
        self.generation += 1;
        self.down = false;
        self.down_at = None;
    }
}

fn to_usize(n: u64) -> io::Result<usize> {
    usize::try_from(n)
        .map_err(|_| io::Error::new(io::ErrorKind::FileTooLarge, "offset beyond memory"))
}

/// A handle on one inode; it keeps working across renames and removals of
/// its path, but not across a crash.
struct FaultFile {
    state: Arc<Mutex<State>>,
    ino: u64,
    generation: u64,
}

impl fmt::Debug for FaultFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultFile")
            .field("ino", &self.ino)
            .field("generation", &self.generation)
            .finish()
    }
}

impl FaultFile {
    /// Runs `f` on the inode as one operation of `kind`; `mutating`
    /// operations count towards a crash point once they succeed.
    fn op<T>(
        &self,
        kind: OpKind,
        mutating: bool,
        f: impl FnOnce(&mut Inode) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut state = self.state.lock();
        state.enter(kind, Some(self.generation))?;
        let out = f(state.inode(self.ino)?)?;
        if mutating {
            state.mutated();
        }
        Ok(out)
    }

    /// Like `op`, for operations that can take effect in part: `f` gets
    /// whether it must (and then its result is replaced by the fault).
    fn op_partly<T>(
        &self,
        kind: OpKind,
        mutating: bool,
        f: impl FnOnce(&mut Inode, bool) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut state = self.state.lock();
        let partly = state.gate(kind, Some(self.generation))?;
        let out = f(state.inode(self.ino)?, partly.is_some())?;
        if mutating {
            state.mutated();
        }
        match partly {
            Some(error) => Err(error),
            None => Ok(out),
        }
    }
}

impl FileHandle for FaultFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.op(OpKind::Read, false, |inode| {
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            let available = inode.live.get(start..).unwrap_or_default();
            let n = available.len().min(buf.len());
            buf[..n].copy_from_slice(&available[..n]);
            Ok(n)
        })
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.op_partly(OpKind::Write, true, |inode, partly| {
            let offset = to_usize(offset)?;
            offset
                .checked_add(buf.len())
                .ok_or_else(|| io::Error::new(io::ErrorKind::FileTooLarge, "write past usize"))?;
            let kept = if partly { buf.len() / 2 } else { buf.len() };
            inode.record(Pending::Write {
                offset,
                bytes: buf[..kept].to_vec(),
            });
            Ok(())
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.op_partly(OpKind::Sync, true, |inode, _| {
            inode.sync();
            Ok(())
        })
    }

    fn len(&self) -> io::Result<u64> {
        let mut state = self.state.lock();
        state.check_alive(Some(self.generation))?;
        Ok(state.inode(self.ino)?.live.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.op_partly(OpKind::SetLen, true, |inode, _| {
            inode.record(Pending::SetLen(to_usize(len)?));
            Ok(())
        })
    }

    fn map(&self) -> io::Result<Mapping> {
        self.op(OpKind::Map, false, |inode| {
            Ok(Mapping::new(Arc::new(inode.live.clone())))
        })
    }
}

/// The lock taken by [`FileSystem::lock`]; releases it on drop unless a
/// crash has already released it (and someone may have taken it again).
struct FaultLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
    generation: u64,
}

impl Drop for FaultLock {
    fn drop(&mut self) {
        let mut state = self.state.lock();
        if state.generation == self.generation {
            state.locks.remove(&self.path);
        }
    }
}

impl FaultFs {
    fn handle(&self, state: &State, ino: u64) -> Arc<dyn FileHandle> {
        Arc::new(FaultFile {
            state: Arc::clone(&self.state),
            ino,
            generation: state.generation,
        })
    }
}

impl FileSystem for FaultFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>> {
        let mut state = self.state.lock();
        state.enter(OpKind::Open, None)?;
        state.check_not_dir(path)?;
        let existing = state.live.get(path).copied();
        let ino = match (mode, existing) {
            (OpenMode::Existing | OpenMode::ReadOnly, Some(ino)) => {
                return Ok(self.handle(&state, ino));
            }
            (OpenMode::Existing | OpenMode::ReadOnly, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{}: no such file", path.display()),
                ));
            }
            (OpenMode::CreateNew, Some(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{}: already exists", path.display()),
                ));
            }
            (OpenMode::CreateNew | OpenMode::Truncate | OpenMode::TruncatePrivate, None) => {
                state.check_parent(path)?;
                state.create(path)
            }
            (OpenMode::Truncate | OpenMode::TruncatePrivate, Some(ino)) => {
                state.inode(ino)?.record(Pending::SetLen(0));
                ino
            }
        };
        state.mutated();
        Ok(self.handle(&state, ino))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.enter(OpKind::CreateDir, None)?;
        for (i, dir) in path.ancestors().enumerate() {
            if state.live.contains_key(dir) {
                let (kind, what) = if i == 0 {
                    (io::ErrorKind::AlreadyExists, "is a file")
                } else {
                    (io::ErrorKind::NotADirectory, "has a file as an ancestor")
                };
                return Err(io::Error::new(kind, format!("{}: {what}", path.display())));
            }
        }
        for dir in path.ancestors().filter(|d| d.parent().is_some()) {
            state.dirs.insert(dir.to_path_buf());
        }
        state.mutated();
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.enter(OpKind::Rename, None)?;
        let Some(ino) = state.live.get(from).copied() else {
            let (kind, what) = if state.is_dir(from) {
                (io::ErrorKind::Unsupported, "FaultFs renames files only")
            } else {
                (io::ErrorKind::NotFound, "no such file")
            };
            return Err(io::Error::new(kind, format!("{}: {what}", from.display())));
        };
        state.check_not_dir(to)?;
        state.check_parent(to)?;
        state.live.remove(from);
        state.live.insert(to.to_path_buf(), ino);
        state.mutated();
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.enter(OpKind::Remove, None)?;
        state.check_not_dir(path)?;
        if state.live.remove(path).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such file", path.display()),
            ));
        }
        state.mutated();
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.enter(OpKind::Remove, None)?;
        if !state.dirs.contains(path) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such directory", path.display()),
            ));
        }
        // Entries only the durable namespace still names would come back
        // with a crash: the directory is not empty until they are gone too.
        let inside = |p: &PathBuf| p.parent() == Some(path);
        let occupied = state.live.keys().any(inside)
            || state.durable.keys().any(inside)
            || state.dirs.iter().any(inside);
        if occupied {
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                format!("{}: directory not empty", path.display()),
            ));
        }
        state.dirs.remove(path);
        state.mutated();
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut state = self.state.lock();
        state.enter(OpKind::List, None)?;
        if state.live.contains_key(dir) {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{}: not a directory", dir.display()),
            ));
        }
        if !state.is_dir(dir) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such directory", dir.display()),
            ));
        }
        let files = state.live.keys();
        let dirs = state.dirs.iter();
        Ok(files
            .chain(dirs)
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let mut state = self.state.lock();
        state.enter(OpKind::Exists, None)?;
        Ok(state.live.contains_key(path) || state.is_dir(path))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.enter(OpKind::SyncDir, None)?;
        if !state.is_dir(dir) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such directory", dir.display()),
            ));
        }
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        state.durable.retain(|p, _| !in_dir(p));
        let entries: Vec<_> = state
            .live
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, ino)| (p.clone(), *ino))
            .collect();
        state.durable.extend(entries);
        state.mutated();
        Ok(())
    }

    fn lock(&self, path: &Path) -> io::Result<LockGuard> {
        let mut state = self.state.lock();
        state.enter(OpKind::Lock, None)?;
        state.check_not_dir(path)?;
        if !state.live.contains_key(path) {
            state.check_parent(path)?;
            state.create(path);
            state.mutated();
        }
        // Locks are keyed by path, not inode: callers lock a fixed path and
        // never rename the lock file.
        if !state.locks.insert(path.to_path_buf()) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{}: already locked", path.display()),
            ));
        }
        Ok(Box::new(FaultLock {
            state: Arc::clone(&self.state),
            path: path.to_path_buf(),
            generation: state.generation,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{read_all, write_atomic};

    fn dir() -> &'static Path {
        Path::new("/store")
    }

    fn file() -> PathBuf {
        dir().join("f")
    }

    /// A file system holding `/store/f`, created, and its directory synced.
    fn with_file() -> (FaultFs, Arc<dyn FileHandle>) {
        let fs = FaultFs::new();
        fs.create_dir_all(dir()).unwrap();
        let f = fs.open(&file(), OpenMode::CreateNew).unwrap();
        fs.sync_dir(dir()).unwrap();
        (fs, f)
    }

    fn contents(fs: &FaultFs, path: &Path) -> Vec<u8> {
        read_all(&*fs.open(path, OpenMode::Existing).unwrap()).unwrap()
    }

    #[test]
    fn unsynced_write_is_lost_on_crash() {
        let (fs, f) = with_file();
        f.write_at(b"hello", 0).unwrap();
        assert_eq!(read_all(&*f).unwrap(), b"hello");
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(contents(&fs, &file()), b"");
    }

    #[test]
    fn synced_write_is_kept() {
        let (fs, f) = with_file();
        f.write_at(b"hello", 0).unwrap();
        f.sync_data().unwrap();
        f.write_at(b"J", 0).unwrap();
        f.set_len(3).unwrap();
        assert_eq!(read_all(&*f).unwrap(), b"Jel");
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(contents(&fs, &file()), b"hello");
    }

    #[test]
    fn sync_after_corrupt_keeps_the_corruption() {
        let (fs, f) = with_file();
        f.write_at(b"abc", 0).unwrap();
        f.sync_data().unwrap();
        f.write_at(b"xyz", 3).unwrap();
        fs.corrupt(file(), 4, 0xff);
        f.sync_data().unwrap();
        let expected = [b'a', b'b', b'c', b'x', !b'y', b'z'];
        assert_eq!(read_all(&*f).unwrap(), expected);
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(contents(&fs, &file()), expected);
    }

    #[test]
    fn writes_and_set_len_extend_with_zeros() {
        let (_fs, f) = with_file();
        f.write_at(b"ab", 3).unwrap();
        assert_eq!(read_all(&*f).unwrap(), b"\0\0\0ab");
        f.set_len(7).unwrap();
        assert_eq!(read_all(&*f).unwrap(), b"\0\0\0ab\0\0");
        f.set_len(4).unwrap();
        assert_eq!(read_all(&*f).unwrap(), b"\0\0\0a");
        let mut buf = [9; 8];
        assert_eq!(f.read_at(&mut buf, 2).unwrap(), 2);
        assert_eq!(f.read_at(&mut buf, 4).unwrap(), 0);
        assert_eq!(f.read_at(&mut buf, 100).unwrap(), 0);
    }

    #[test]
    fn created_and_synced_file_without_dir_sync_vanishes() {
        let fs = FaultFs::new();
        fs.create_dir_all(dir()).unwrap();
        let f = fs.open(&file(), OpenMode::CreateNew).unwrap();
        f.write_at(b"data", 0).unwrap();
        f.sync_data().unwrap();
        assert_eq!(fs.durable_contents(file()), None);
        fs.crash(CrashMode::DropUnsynced);
        assert!(!fs.exists(&file()).unwrap());
        assert!(fs.exists(dir()).unwrap(), "directories are durable at once");
        assert_eq!(fs.list(dir()).unwrap(), Vec::<String>::new());
    }

    /// Each directory `create_dir_all_durably` creates is synced into its
    /// parent, and nothing is synced when the directory exists.
    #[test]
    fn directories_created_durably_are_synced_into_their_parents() {
        let fs = FaultFs::new();
        fs.create_dir_all(dir()).unwrap();
        let synced = |fs: &FaultFs| fs.op_count(OpKind::SyncDir);
        super::super::create_dir_all_durably(&fs, &dir().join("a/b")).unwrap();
        assert!(fs.exists(&dir().join("a/b")).unwrap());
        assert_eq!(synced(&fs), 2, "/store for a, /store/a for b");
        super::super::create_dir_all_durably(&fs, &dir().join("a/b")).unwrap();
        assert_eq!(synced(&fs), 2);
        super::super::create_dir_all_durably(&fs, &dir().join("a/c")).unwrap();
        assert_eq!(synced(&fs), 3);
    }

    #[test]
    fn rename_is_durable_only_after_sync_dir() {
        let (fs, f) = with_file();
        f.write_at(b"old", 0).unwrap();
        f.sync_data().unwrap();
        let to = dir().join("g");
        fs.rename(&file(), &to).unwrap();
        assert!(!fs.exists(&file()).unwrap());
        assert_eq!(f.len().unwrap(), 3, "handles follow the inode");
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(contents(&fs, &file()), b"old");
        assert!(!fs.exists(&to).unwrap());

        fs.rename(&file(), &to).unwrap();
        fs.sync_dir(dir()).unwrap();
        fs.crash(CrashMode::DropUnsynced);
        assert!(!fs.exists(&file()).unwrap());
        assert_eq!(contents(&fs, &to), b"old");
        assert_eq!(fs.list(dir()).unwrap(), vec!["g".to_owned()]);
    }

    #[test]
    fn write_atomic_leaves_old_or_new() {
        let fs = FaultFs::new();
        fs.create_dir_all(dir()).unwrap();
        let path = dir().join("MANIFEST");
        write_atomic(&fs, &path, b"one").unwrap();
        let start = fs.mutating_ops();
        write_atomic(&fs, &path, b"two").unwrap();
        let steps = fs.mutating_ops() - start;
        for n in 0..=steps {
            for mode in [CrashMode::DropUnsynced, CrashMode::Torn { seed: n }] {
                let fs = FaultFs::new();
                fs.create_dir_all(dir()).unwrap();
                write_atomic(&fs, &path, b"one").unwrap();
                fs.crash_after(n);
                let result = write_atomic(&fs, &path, b"two");
                assert_eq!(result.is_ok(), n >= steps, "n = {n}");
                fs.crash(mode);
                let got = contents(&fs, &path);
                assert!(got == b"one" || got == b"two", "n = {n}: {got:?}");
                if n >= steps {
                    assert_eq!(got, b"two");
                }
            }
        }
    }

    #[test]
    fn remove_is_durable_only_after_sync_dir() {
        let (fs, f) = with_file();
        f.write_at(b"x", 0).unwrap();
        f.sync_data().unwrap();
        fs.remove_file(&file()).unwrap();
        assert_eq!(read_all(&*f).unwrap(), b"x", "handle outlives the name");
        fs.crash(CrashMode::DropUnsynced);
        assert!(fs.exists(&file()).unwrap());
        fs.remove_file(&file()).unwrap();
        fs.sync_dir(dir()).unwrap();
        fs.crash(CrashMode::DropUnsynced);
        assert!(!fs.exists(&file()).unwrap());
    }

    #[test]
    fn remove_dir_refuses_until_empty_also_durably() {
        let (fs, f) = with_file();
        f.sync_data().unwrap();
        fs.sync_dir(dir()).unwrap();
        let err = fs.remove_dir(dir()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::DirectoryNotEmpty);
        fs.remove_file(&file()).unwrap();
        // Still named in the durable namespace: a crash would bring it back.
        assert_eq!(
            fs.remove_dir(dir()).unwrap_err().kind(),
            io::ErrorKind::DirectoryNotEmpty
        );
        fs.sync_dir(dir()).unwrap();
        fs.remove_dir(dir()).unwrap();
        assert!(!fs.exists(dir()).unwrap());
        assert_eq!(
            fs.remove_dir(dir()).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn truncating_open_is_an_unsynced_set_len() {
        let (fs, f) = with_file();
        f.write_at(b"keep", 0).unwrap();
        f.sync_data().unwrap();
        let g = fs.open(&file(), OpenMode::Truncate).unwrap();
        assert_eq!(g.len().unwrap(), 0);
        assert_eq!(f.len().unwrap(), 0, "same inode");
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(contents(&fs, &file()), b"keep");
    }

    #[test]
    fn open_modes_and_missing_parents() {
        let fs = FaultFs::new();
        let err = fs.open(&file(), OpenMode::CreateNew).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        fs.create_dir_all(dir()).unwrap();
        let err = fs.open(&file(), OpenMode::Existing).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        fs.open(&file(), OpenMode::CreateNew).unwrap();
        let err = fs.open(&file(), OpenMode::CreateNew).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        let err = fs.open(dir(), OpenMode::Existing).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::IsADirectory);
        fs.create_dir_all(&dir().join("sub")).unwrap();
        let mut names = fs.list(dir()).unwrap();
        names.sort();
        assert_eq!(names, ["f", "sub"]);
    }

    /// Applies `writes` to `base` the way a torn crash would with `kept`
    /// writes kept, the last cut to `cut` bytes.
    fn torn_model(base: &[u8], writes: &[(usize, &[u8])], kept: usize, cut: usize) -> Vec<u8> {
        let mut v = base.to_vec();
        for (i, &(offset, bytes)) in writes[..kept].iter().enumerate() {
            let bytes = if i + 1 == kept { &bytes[..cut] } else { bytes };
            if bytes.is_empty() {
                continue;
            }
            if v.len() < offset + bytes.len() {
                v.resize(offset + bytes.len(), 0);
            }
            v[offset..offset + bytes.len()].copy_from_slice(bytes);
        }
        v
    }

    #[test]
    fn torn_crash_keeps_a_prefix_of_the_unsynced_writes() {
        let base = b"0123456789";
        let writes: [(usize, &[u8]); 3] = [(2, b"abcdef"), (8, b"ghijklmn"), (20, b"opq")];
        let run = |seed: u64| {
            let (fs, f) = with_file();
            f.write_at(base, 0).unwrap();
            f.sync_data().unwrap();
            for (offset, bytes) in writes {
                f.write_at(bytes, offset as u64).unwrap();
            }
            fs.crash(CrashMode::Torn { seed });
            contents(&fs, &file())
        };
        let mut partial = 0;
        for seed in 0..64 {
            let got = run(seed);
            assert_eq!(got, run(seed), "seed {seed} is not deterministic");
            let whole = (0..=writes.len()).any(|kept| {
                let full = kept.checked_sub(1).map_or(0, |i| writes[i].1.len());
                got == torn_model(base, &writes, kept, full)
            });
            let torn = (1..=writes.len()).any(|kept| {
                (1..writes[kept - 1].1.len()).any(|cut| got == torn_model(base, &writes, kept, cut))
            });
            assert!(whole || torn, "seed {seed}: {got:?} is no prefix");
            if torn && !whole {
                partial += 1;
            }
        }
        assert!(partial > 0, "no seed tore a write");
    }

    #[test]
    fn fail_nth_fails_exactly_that_op_without_effect() {
        let (fs, f) = with_file();
        fs.fail_nth(OpKind::Write, 2, Fault::Enospc);
        f.write_at(b"a", 0).unwrap();
        let err = f.write_at(b"b", 1).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(ENOSPC));
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(read_all(&*f).unwrap(), b"a");
        f.write_at(b"c", 1).unwrap();
        assert_eq!(read_all(&*f).unwrap(), b"ac");

        fs.fail_nth(OpKind::Sync, 1, Fault::Eio);
        let err = f.sync_data().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(EIO));
        assert_eq!(fs.durable_contents(file()).unwrap(), b"");
        f.sync_data().unwrap();
        assert_eq!(fs.durable_contents(file()).unwrap(), b"ac");
        assert_eq!(fs.op_count(OpKind::Sync), 2);

        fs.fail_nth(OpKind::Rename, 1, Fault::Eio);
        let to = dir().join("g");
        fs.rename(&file(), &to).unwrap_err();
        assert!(fs.exists(&file()).unwrap() && !fs.exists(&to).unwrap());
    }

    #[test]
    fn fail_nth_partly_takes_effect_in_part_then_fails() {
        let (fs, f) = with_file();
        fs.fail_nth_partly(OpKind::Write, 1, Fault::Enospc);
        let err = f.write_at(b"abcd", 0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(ENOSPC));
        assert_eq!(read_all(&*f).unwrap(), b"ab", "a short write");

        fs.fail_nth_partly(OpKind::Sync, 1, Fault::Eio);
        let err = f.sync_data().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(EIO));
        assert_eq!(
            fs.durable_contents(file()).unwrap(),
            b"ab",
            "the failed sync still made the data durable"
        );

        fs.fail_nth_partly(OpKind::SetLen, 1, Fault::Eio);
        assert!(f.set_len(1).is_err());
        assert_eq!(read_all(&*f).unwrap(), b"a");

        // Kinds that cannot take effect in part fail without effect.
        fs.fail_nth_partly(OpKind::Rename, 1, Fault::Eio);
        assert!(fs.rename(&file(), &dir().join("other")).is_err());
        assert!(fs.exists(&file()).unwrap());
    }

    #[test]
    fn fail_from_fails_until_cleared() {
        let (fs, _f) = with_file();
        fs.fail_from(OpKind::Open, 2, Fault::Eio);
        fs.open(&file(), OpenMode::Existing).unwrap();
        for _ in 0..3 {
            let err = fs.open(&file(), OpenMode::Existing).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(EIO));
        }
        let before = fs.mutating_ops();
        fs.open(&dir().join("new"), OpenMode::CreateNew)
            .unwrap_err();
        assert_eq!(fs.mutating_ops(), before, "failed ops change nothing");
        assert!(!fs.exists(&dir().join("new")).unwrap());
        fs.clear_faults();
        fs.open(&file(), OpenMode::Existing).unwrap();
    }

    #[test]
    fn crash_after_stops_the_world_at_n() {
        let (fs, _) = with_file();
        fs.crash_after(3);
        let f = fs.open(&file(), OpenMode::Existing).unwrap(); // not mutating
        f.write_at(b"one", 0).unwrap(); // 1
        f.sync_data().unwrap(); // 2
        assert!(!fs.is_down());
        f.write_at(b"two", 0).unwrap(); // 3: completes, then down
        assert!(fs.is_down());
        let mut buf = [0; 3];
        assert_eq!(
            f.read_at(&mut buf, 0).unwrap_err().raw_os_error(),
            Some(EIO)
        );
        assert_eq!(fs.exists(dir()).unwrap_err().raw_os_error(), Some(EIO));
        assert_eq!(f.sync_data().unwrap_err().raw_os_error(), Some(EIO));
        fs.crash(CrashMode::DropUnsynced);
        assert!(!fs.is_down());
        assert_eq!(contents(&fs, &file()), b"one");
    }

    #[test]
    fn stale_handles_fail_after_crash() {
        let (fs, f) = with_file();
        f.write_at(b"x", 0).unwrap();
        f.sync_data().unwrap();
        fs.crash(CrashMode::DropUnsynced);
        let mut buf = [0; 1];
        f.read_at(&mut buf, 0).unwrap_err();
        f.write_at(b"y", 0).unwrap_err();
        f.sync_data().unwrap_err();
        f.len().unwrap_err();
        f.set_len(0).unwrap_err();
        f.map().unwrap_err();
        let g = fs.open(&file(), OpenMode::Existing).unwrap();
        assert_eq!(g.map().unwrap().bytes(), b"x");
    }

    #[test]
    fn lock_blocks_a_second_holder_until_released() {
        let fs = FaultFs::new();
        fs.create_dir_all(dir()).unwrap();
        let path = dir().join("LOCK");
        let guard = fs.lock(&path).unwrap();
        assert!(fs.exists(&path).unwrap(), "lock creates its file");
        let err = fs.lock(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(guard);
        let _guard = fs.lock(&path).unwrap();
    }

    #[test]
    fn stale_guard_does_not_release_a_newer_lock() {
        let fs = FaultFs::new();
        fs.create_dir_all(dir()).unwrap();
        let path = dir().join("LOCK");
        let old = fs.lock(&path).unwrap();
        fs.crash(CrashMode::DropUnsynced);
        let new = fs.lock(&path).unwrap();
        drop(old);
        let err = fs.lock(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(new);
        fs.lock(&path).unwrap();
    }
}
