//! Online backup: [`Store::backup`] copies the store, while appends and
//! compaction go on, as a store of its own that holds exactly the
//! positions `1..=P`, where `P` is the head when the backup starts (made
//! durable first).
//!
//! What is copied, and how:
//!
//! - Segments wholly before `P`'s are sealed, so immutable: each is hard
//!   linked into the copy when the file system allows (same device), else
//!   copied. The file a segment reader holds is linked by its name at that
//!   moment (`.seg` or `.zseg`); if compression or an erasure replaces it
//!   meanwhile, the link keeps the old file, which is whole and valid, or a
//!   vanished name is looked up again. `.tmp` files are never taken.
//! - An evicted segment (its bytes in remote storage, see
//!   [`Store::evict_segment`]) is its eviction marker, linked or copied
//!   like a sealed segment, even when it holds `P`: the copy reads it
//!   through the same remote, and must be opened with one.
//! - Their offset tables (`.off`) are copied, never linked: recovery
//!   rewrites a table in place, and the copy must never write into a file
//!   the source shares. A table that does not decode is left out (the
//!   restored store scans the segment and writes it again).
//! - The segment holding `P` is copied as a plain `.seg` (decompressed if
//!   it was compressed) up to the end of the record holding `P`: it becomes
//!   the copy's newest segment, which the restored store appends to. It is
//!   always a copy, never a link, for the same reason.
//! - Index runs: the runs the MANIFEST lists, up to the last one that ends
//!   at or before `P` (later runs are left out; the restored store replays
//!   the log from where the kept runs end). Runs are immutable and linked
//!   or copied; one that a merge deleted since the MANIFEST was read sends
//!   the backup back to the newer MANIFEST. The copy's MANIFEST is written
//!   afresh. If the runs were purged of removals the copied journal does
//!   not hold (made after `P`), every run is left out: the copy would not
//!   hide those events, so it must find them in its index.
//! - The lifecycle journal: its entries made at a head at or before `P`
//!   (entries are in head order), read under the store's lifecycle lock:
//!   the journal's header and those entries are a prefix of its file,
//!   which is copied.
//! - The key file of crypto-shredding (`KEYS`, the `encryption` feature)
//!   is never copied — a copy of a key would survive every later forget
//!   of its subject. When the store's directory holds one, the copy gets a
//!   key file with the same subject prefix and **no key**: the copy stays
//!   encrypted to every door (its subjects' events fail to open, naming
//!   the missing key, rather than read as ciphertext; new subjects'
//!   events are sealed, never stored in clear). Restoring it means putting
//!   a copy of the store's own key file in its place, which holds every
//!   key still live and no forgotten one. Built without the feature, the
//!   backup leaves the key file out and writes none.
//! - Snapshots at positions at or before `P` are linked or copied; later
//!   ones are left out. Durable-subscription cursors are copied, a cursor
//!   beyond `P` moved back to `P` (at-least-once: the restored store's
//!   events after `P` are new to every subscriber).
//!
//! Completeness: the copy is built in `DEST.partial`, which holds a
//! `BACKUP-INCOMPLETE` marker from the start; every file and directory is
//! synced, the marker removed, and the directory renamed to `DEST` last.
//! So `DEST` exists only when whole, and `Store::open` refuses a directory
//! holding the marker (a backup that was killed). A later backup to the
//! same `DEST` removes such a leftover first, or an empty `DEST.partial`
//! (killed before the marker was written). A `DEST.partial` without the
//! marker but with contents (killed between removing the marker and the
//! rename: the copy is complete) is refused, never removed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gesta_compaction::manifest::{FILE_NAME as MANIFEST_FILE, Manifest};
use gesta_wal::format::{FRAME_LEN, segment_file_name, u32_at, u64_at};
use gesta_wal::io::{FileHandle, FileSystem, OpenMode};
use gesta_wal::journal;

use super::{JOURNAL_FILE, Store};
use crate::error::{Error, Result};

/// The file that marks a directory as a backup still being written (or
/// one whose writer was killed); a store refuses to open it.
pub const BACKUP_INCOMPLETE: &str = "BACKUP-INCOMPLETE";

/// How much of a file is read at once when copying.
const CHUNK: u64 = 4 << 20;

/// How many times the index runs are taken again after a merge deleted one
/// under the backup, before the index is left out (and rebuilt from the
/// log by the restored store).
const INDEX_ATTEMPTS: usize = 16;

/// What [`Store::backup`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupReport {
    /// The backup's head: it holds exactly positions `1..=position`.
    pub position: u64,
    /// The finished backup's directory.
    pub path: PathBuf,
    /// Files hard-linked from the store (sealed segments, index runs,
    /// snapshots).
    pub files_linked: u64,
    /// Files copied (or written afresh).
    pub files_copied: u64,
    /// Bytes copied (linked files not counted).
    pub bytes_copied: u64,
    /// Segment files in the backup.
    pub segments: u64,
    /// Index runs in the backup.
    pub index_runs: u64,
    /// Index runs of the store left out because they cover positions after
    /// `position` (the restored store indexes those events from the log).
    pub index_runs_left_out: u64,
    /// Lifecycle journal entries in the backup.
    pub lifecycle_entries: u64,
    /// Lifecycle entries of the store left out (made after `position`).
    pub lifecycle_entries_left_out: u64,
    /// Snapshots in the backup.
    pub snapshots: u64,
    /// Snapshots left out (at positions after `position`).
    pub snapshots_left_out: u64,
    /// Durable-subscription cursors in the backup.
    pub cursors: u64,
    /// Cursors that were beyond `position` and were moved back to it.
    pub cursors_moved_back: u64,
    /// The store is encrypted (its directory holds crypto-shredding's key
    /// file): the backup's key file names the subject prefix and no key,
    /// and the store's key file must be kept, and restored, separately.
    pub keys_left_out: bool,
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// The parent of `path` for a directory sync (`.` for a bare name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

impl Store {
    /// Backs the store up into `dest`, a directory that must not exist,
    /// while appends continue: a consistent copy at the head when the
    /// backup starts, which opens as a normal store. See the module
    /// documentation of what is linked, copied and left out.
    ///
    /// The copy is built in `DEST.partial` and renamed to `dest` only when
    /// complete and synced; a backup killed midway leaves `DEST.partial`
    /// with a `BACKUP-INCOMPLETE` marker, which [`Store::open`] refuses
    /// and the next backup to `dest` removes.
    pub fn backup(&self, dest: impl AsRef<Path>) -> Result<BackupReport> {
        self.backup_at(dest.as_ref(), None)
    }

    /// [`backup`](Store::backup) at `position` (the head when `None`; the
    /// tests give earlier positions, as a race with later operations
    /// would leave them).
    fn backup_at(&self, dest: &Path, position: Option<u64>) -> Result<BackupReport> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let fs = self.inner.fs.clone();
        let Some(name) = dest.file_name().and_then(|n| n.to_str()) else {
            return Err(Error::invalid(format!(
                "backup destination {} has no usable file name",
                dest.display()
            )));
        };
        let inside = |d: &Path| {
            std::path::absolute(d)
                .ok()
                .zip(std::path::absolute(&self.inner.dir).ok())
                .is_some_and(|(d, store)| d.starts_with(store))
        };
        if inside(dest) {
            return Err(Error::invalid(format!(
                "backup destination {} is inside the store's directory",
                dest.display()
            )));
        }
        if fs.exists(dest).map_err(io_at(dest))? {
            return Err(Error::invalid(format!(
                "backup destination {} already exists; give a new path",
                dest.display()
            )));
        }
        let partial = parent_of(dest).join(format!("{name}.partial"));
        if fs.exists(&partial).map_err(io_at(&partial))? {
            let names = fs.list(&partial).map_err(io_at(&partial))?;
            // Empty: a backup killed before it wrote its marker.
            if !names.is_empty() && !names.iter().any(|n| n == BACKUP_INCOMPLETE) {
                return Err(Error::invalid(format!(
                    "{} exists and is not an unfinished backup; remove it or give another destination",
                    partial.display()
                )));
            }
            remove_tree(fs.as_ref(), &partial)?;
        }
        fs.create_dir_all(&partial).map_err(io_at(&partial))?;
        let marker = partial.join(BACKUP_INCOMPLETE);
        let file = fs
            .open(&marker, OpenMode::CreateNew)
            .map_err(io_at(&marker))?;
        file.sync_data().map_err(io_at(&marker))?;
        drop(file);
        sync_dir(fs.as_ref(), &partial)?;
        sync_dir(fs.as_ref(), &parent_of(&partial))?;

        let position = position.unwrap_or_else(|| self.head()).min(self.head());
        self.inner.make_durable(position)?;
        let mut copier = Copier {
            fs: fs.clone(),
            link: true,
            report: BackupReport {
                position,
                ..BackupReport::default()
            },
        };
        copier.segments(self, &partial.join("wal"), position)?;
        // The journal before the index: runs purged of removals the copy's
        // journal lacks are left out (see `index`).
        copier.lifecycle(self, &partial, position)?;
        copier.index(&self.inner.dir, &partial, position)?;
        copier.snapshots(
            &self
                .inner
                .dir
                .join(gesta_compaction::snapshot::SNAPSHOT_DIR),
            &partial.join(gesta_compaction::snapshot::SNAPSHOT_DIR),
            position,
        )?;
        copier.cursors(
            &self.inner.dir.join(crate::cursors::DIR),
            &partial.join(crate::cursors::DIR),
            position,
        )?;
        #[cfg(feature = "encryption")]
        {
            let keys = crate::store::KEY_FILE_NAME;
            copier.report.keys_left_out = crate::encryption::keys::write_keyless(
                fs.clone(),
                &self.inner.dir.join(keys),
                &partial.join(keys),
            )?;
            // The copy stays marked encrypted even if its keyless file is
            // lost before the store's key file is put in its place.
            let mark = crate::encryption::keys::Mark {
                fs: fs.clone(),
                path: partial.join(crate::store::ENCRYPTED_MARK_NAME),
            };
            let marked = fs
                .exists(&self.inner.dir.join(crate::store::ENCRYPTED_MARK_NAME))
                .map_err(io_at(&self.inner.dir))?;
            if copier.report.keys_left_out || marked {
                mark.ensure()?;
            }
        }

        fs.remove_file(&marker).map_err(io_at(&marker))?;
        sync_dir(fs.as_ref(), &partial)?;
        fs.rename(&partial, dest).map_err(io_at(dest))?;
        sync_dir(fs.as_ref(), &parent_of(dest))?;
        let mut report = copier.report;
        report.path = dest.to_owned();
        Ok(report)
    }
}

fn sync_dir(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    fs.sync_dir(dir).map_err(io_at(dir))
}

/// Removes a directory and everything in it (a killed backup's leftover).
fn remove_tree(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    for name in fs.list(dir).map_err(io_at(dir))? {
        let path = dir.join(name);
        if fs.remove_file(&path).is_err() {
            remove_tree(fs, &path)?;
        }
    }
    fs.remove_dir(dir).map_err(io_at(dir))?;
    sync_dir(fs, &parent_of(dir))
}

/// Links or copies files into the backup, and counts what it did.
struct Copier {
    fs: Arc<dyn FileSystem>,
    /// Whether to try hard links (cleared after the first refusal).
    link: bool,
    report: BackupReport,
}

/// Whether an I/O error says the file is gone (deleted or renamed away).
fn vanished(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

impl Copier {
    fn create_dir(&self, dir: &Path) -> Result<()> {
        self.fs.create_dir_all(dir).map_err(io_at(dir))?;
        sync_dir(self.fs.as_ref(), &parent_of(dir))
    }

    /// Gives `to` the contents of the immutable file `from`: a hard link
    /// if the file system makes one, else a copy. A missing `from` is an
    /// `Error::Io` of kind `NotFound` (see [`vanished`]).
    fn link_or_copy(&mut self, from: &Path, to: &Path) -> Result<()> {
        if self.link {
            match self.fs.hard_link(from, to) {
                Ok(()) => {
                    self.report.files_linked += 1;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(io_at(from)(e));
                }
                // Another device, or a file system without links: copy,
                // from now on.
                Err(_) => self.link = false,
            }
        }
        let file = self
            .fs
            .open(from, OpenMode::Existing)
            .map_err(io_at(from))?;
        let len = file.len().map_err(io_at(from))?;
        self.copy_range(file.as_ref(), from, len, to)
    }

    /// Copies bytes `0..len` of `file` to a new file `to`, synced.
    fn copy_range(
        &mut self,
        file: &dyn FileHandle,
        from: &Path,
        len: u64,
        to: &Path,
    ) -> Result<()> {
        let out = self.fs.open(to, OpenMode::CreateNew).map_err(io_at(to))?;
        let mut buf = Vec::new();
        let mut at = 0;
        while at < len {
            let n = (len - at).min(CHUNK);
            buf.resize(n as usize, 0);
            gesta_wal::io::read_exact_at(file, &mut buf, at).map_err(io_at(from))?;
            out.write_at(&buf, at).map_err(io_at(to))?;
            at += n;
        }
        out.sync_data().map_err(io_at(to))?;
        self.report.files_copied += 1;
        self.report.bytes_copied += len;
        Ok(())
    }

    /// Writes `bytes` as a new file `to`, synced.
    fn write_new(&mut self, to: &Path, bytes: &[u8]) -> Result<()> {
        let out = self.fs.open(to, OpenMode::CreateNew).map_err(io_at(to))?;
        out.write_at(bytes, 0).map_err(io_at(to))?;
        out.sync_data().map_err(io_at(to))?;
        self.report.files_copied += 1;
        self.report.bytes_copied += bytes.len() as u64;
        Ok(())
    }

    /// The log's segments up to the one holding `position`.
    fn segments(&mut self, store: &Store, wal: &Path, position: u64) -> Result<()> {
        self.create_dir(wal)?;
        for segment in store.inner.reader.segments().snapshot() {
            let first = segment.first_position();
            let bounds = segment.bounds();
            if first > position || bounds.last_position < first {
                continue;
            }
            // An evicted segment is never the copy's active segment (its
            // recovery starts a new one after it): its marker is linked
            // like a sealed segment, its bytes not fetched.
            if bounds.last_position < position
                || (segment.evicted().is_some() && bounds.last_position == position)
            {
                self.sealed_segment(&segment, wal)?;
            } else {
                self.newest_segment(&segment, wal, position)?;
            }
            self.report.segments += 1;
        }
        sync_dir(self.fs.as_ref(), wal)
    }

    /// A sealed segment whole, under the name of the file that holds it
    /// now, and its offset table.
    fn sealed_segment(&mut self, segment: &gesta_wal::Segment, wal: &Path) -> Result<()> {
        let mut attempts = 0;
        loop {
            let from = segment.path();
            let name = from
                .file_name()
                .ok_or_else(|| Error::invalid("a segment path without a file name"))?;
            match self.link_or_copy(&from, &wal.join(name)) {
                Ok(()) => break,
                // Replaced by its compressed file meanwhile: take that.
                Err(e) if vanished(&e) && attempts < 8 => attempts += 1,
                Err(e) => return Err(e),
            }
        }
        let first = segment.first_position();
        let table = gesta_wal::files::table_path(&parent_of(&segment.path()), first);
        let bytes = match self.fs.open(&table, OpenMode::Existing) {
            Ok(file) => gesta_wal::io::read_all(file.as_ref()).map_err(io_at(&table))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_at(&table)(e)),
        };
        if gesta_wal::files::SegmentTable::decode(&bytes).is_some()
            && let Some(name) = table.file_name()
        {
            self.write_new(&wal.join(name), &bytes)?;
        }
        Ok(())
    }

    /// The segment holding `position`, as a plain segment ending with the
    /// record that holds it.
    fn newest_segment(
        &mut self,
        segment: &gesta_wal::Segment,
        wal: &Path,
        position: u64,
    ) -> Result<()> {
        let corrupt = |offset: u64, reason: &str| Error::Corruption {
            file: segment.path(),
            offset,
            reason: reason.to_owned(),
        };
        let (mut at, stop) = segment
            .locate(position)
            .ok_or_else(|| corrupt(0, "the backup position is not in its segment"))?;
        // Step over the records of the position's stretch by their frames.
        let end = loop {
            if at >= stop {
                return Err(corrupt(at, "no record holds the backup position"));
            }
            let head = segment.read(at, at + FRAME_LEN as u64 + 12)?;
            let len = u64::from(u32_at(&head, 0));
            let first = u64_at(&head, FRAME_LEN);
            let count = u64::from(u32_at(&head, FRAME_LEN + 8));
            let end = at + FRAME_LEN as u64 + len;
            if count == 0 || end > stop || first > position {
                return Err(corrupt(at, "a record frame out of place"));
            }
            if first + count > position {
                break end;
            }
            at = end;
        };
        // One read, so that all the bytes come from one file even if the
        // segment is sealed and rewritten (compressed, or erased: same
        // offsets, other bytes) meanwhile. From a map it costs no copy.
        let bytes = segment.read(0, end)?;
        let to = wal.join(segment_file_name(segment.first_position()));
        let out = self.fs.open(&to, OpenMode::CreateNew).map_err(io_at(&to))?;
        for (i, chunk) in bytes.chunks(CHUNK as usize).enumerate() {
            out.write_at(chunk, i as u64 * CHUNK).map_err(io_at(&to))?;
        }
        out.sync_data().map_err(io_at(&to))?;
        self.report.files_copied += 1;
        self.report.bytes_copied += end;
        Ok(())
    }

    /// The index runs that end at or before `position`, and a MANIFEST
    /// listing them.
    fn index(&mut self, store_dir: &Path, dest: &Path, position: u64) -> Result<()> {
        let from_dir = store_dir.join(gesta_compaction::flush::INDEX_DIR);
        let to_dir = dest.join(gesta_compaction::flush::INDEX_DIR);
        for _ in 0..INDEX_ATTEMPTS {
            let manifest = Manifest::load(self.fs.as_ref(), store_dir)
                .map_err(|e| Error::Corruption {
                    file: store_dir.join(MANIFEST_FILE),
                    offset: 0,
                    reason: e.to_string(),
                })?
                .unwrap_or_default();
            let kept = manifest
                .runs
                .iter()
                .take_while(|r| r.hi <= position)
                .count();
            let kept_runs = manifest.runs[..kept].to_vec();
            let covered = kept_runs.last().map_or(0, |r| r.hi);
            // Runs purged of the postings of events removed after the
            // position would lose those events in the copy, where they
            // still exist: the copy rebuilds its index from the log.
            let purged = manifest.purged;
            if purged.sequence > self.report.lifecycle_entries || purged.through > covered {
                self.report.index_runs_left_out = manifest.runs.len() as u64;
                return Ok(());
            }
            if kept_runs.is_empty() {
                self.report.index_runs_left_out = manifest.runs.len() as u64;
                return Ok(());
            }
            self.create_dir(&to_dir)?;
            let mut taken = Vec::new();
            let mut missing = false;
            for run in &kept_runs {
                let to = to_dir.join(&run.name);
                match self.link_or_copy(&from_dir.join(&run.name), &to) {
                    Ok(()) => taken.push(to),
                    Err(e) if vanished(&e) => {
                        missing = true;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if missing {
                // A merge replaced runs since the MANIFEST was read: start
                // again from the MANIFEST that lists its result.
                for path in taken {
                    self.fs.remove_file(&path).map_err(io_at(&path))?;
                }
                continue;
            }
            sync_dir(self.fs.as_ref(), &to_dir)?;
            Manifest {
                runs: kept_runs,
                purged,
            }
            .store(self.fs.as_ref(), dest)
            .map_err(io_at(&dest.join(MANIFEST_FILE)))?;
            self.report.files_copied += 1;
            self.report.index_runs = kept as u64;
            self.report.index_runs_left_out = (manifest.runs.len() - kept) as u64;
            return Ok(());
        }
        log::warn!(
            "gesta: backup left the index out (merges kept replacing runs); the restored store rebuilds it from the log"
        );
        Ok(())
    }

    /// The lifecycle journal's entries made at or before `position`.
    fn lifecycle(&mut self, store: &Store, dest: &Path, position: u64) -> Result<()> {
        let path = store.inner.dir.join(JOURNAL_FILE);
        let bytes = {
            let _lifecycle = store.inner.lifecycle.lock();
            match self.fs.open(&path, OpenMode::Existing) {
                Ok(file) => gesta_wal::io::read_all(file.as_ref()).map_err(io_at(&path))?,
                // The store has had no lifecycle operation.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_at(&path)(e)),
            }
        };
        let (bodies, _) = journal::parse(&path, &bytes)?;
        let mut kept = 0;
        let mut offset = journal::JOURNAL_HEADER_LEN as u64;
        for body in &bodies {
            let (entry, _) = crate::lifecycle::decode_journal_entry(body)
                .map_err(|e| crate::lifecycle::journal_corruption(&path, offset, e))?;
            if entry.head > position {
                break;
            }
            offset += (journal::ENTRY_FRAME_LEN + body.len()) as u64;
            kept += 1;
        }
        self.report.lifecycle_entries = kept as u64;
        self.report.lifecycle_entries_left_out = (bodies.len() - kept) as u64;
        if kept == 0 {
            return Ok(());
        }
        // The header and the entries kept are the file's first `offset`
        // bytes, as the journal wrote them.
        self.write_new(&dest.join(JOURNAL_FILE), &bytes[..offset as usize])
    }

    /// The snapshot tree: every `<position>.snap` at or before `position`,
    /// in the same directories.
    fn snapshots(&mut self, from: &Path, to: &Path, position: u64) -> Result<()> {
        let names = match self.fs.list(from) {
            Ok(names) => names,
            // Not there (yet), deleted meanwhile (a key's last snapshot
            // deleted), or a stray file, which a store ignores too.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(());
            }
            Err(e) => return Err(io_at(from)(e)),
        };
        self.create_dir(to)?;
        for name in names {
            if name.ends_with(".tmp") {
                continue;
            }
            if let Some(stem) = name.strip_suffix(".snap") {
                let Ok(at) = stem.parse::<u64>() else {
                    continue;
                };
                if at > position {
                    self.report.snapshots_left_out += 1;
                    continue;
                }
                match self.link_or_copy(&from.join(&name), &to.join(&name)) {
                    Ok(()) => self.report.snapshots += 1,
                    // Deleted meanwhile (retention, or by hand).
                    Err(e) if vanished(&e) => {}
                    Err(e) => return Err(e),
                }
            } else {
                self.snapshots(&from.join(&name), &to.join(&name), position)?;
            }
        }
        sync_dir(self.fs.as_ref(), to)
    }

    /// The durable-subscription cursors, each at most at `position`.
    fn cursors(&mut self, from: &Path, to: &Path, position: u64) -> Result<()> {
        let names = match self.fs.list(from) {
            Ok(names) => names,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_at(from)(e)),
        };
        self.create_dir(to)?;
        for name in names.iter().filter(|n| n.ends_with(".cursor")) {
            let path = from.join(name);
            let bytes = match self.fs.open(&path, OpenMode::Existing) {
                Ok(file) => gesta_wal::io::read_all(file.as_ref()).map_err(io_at(&path))?,
                // Deleted meanwhile.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_at(&path)(e)),
            };
            let (cursor, at) = crate::cursors::decode(&path, &bytes)?;
            let bytes = if at > position {
                self.report.cursors_moved_back += 1;
                crate::cursors::encode(&cursor, position)
            } else {
                bytes
            };
            self.write_new(&to.join(name), &bytes)?;
            self.report.cursors += 1;
        }
        sync_dir(self.fs.as_ref(), to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Target;
    use crate::{NewEvent, Options, Query, ReadOptions};

    /// An encrypted store's backup holds a key file with its prefix and no
    /// key: the copy reads its subjects' events as undecryptable (never as
    /// ciphertext) and seals new ones, until the store's key file is put
    /// in its place — which then opens them, a forgotten subject's empty.
    #[cfg(feature = "encryption")]
    #[test]
    fn an_encrypted_stores_backup_keeps_its_prefix_and_no_key() {
        use crate::encryption::{Encrypted, EncryptionOptions, KEY_FILE_NAME};
        use crate::{Error, EventStore};
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        let options = EncryptionOptions::in_dir(&dir).subject_prefix("who:");
        let store = Encrypted::open(Store::open(&dir).unwrap(), options).unwrap();
        store
            .append(vec![
                NewEvent::new("Registered", "alice's secret").tag("who:alice"),
                NewEvent::new("Registered", "bob's secret").tag("who:bob"),
                NewEvent::new("Public", "in clear"),
            ])
            .unwrap();
        let dest = tmp.path().join("backup");
        let report = store.inner().backup(&dest).unwrap();
        assert!(report.keys_left_out);
        let keys = std::fs::read(dest.join(KEY_FILE_NAME)).unwrap();
        assert!(keys.len() < std::fs::read(dir.join(KEY_FILE_NAME)).unwrap().len());
        store.forget("bob").unwrap();
        let live_keys = std::fs::read(dir.join(KEY_FILE_NAME)).unwrap();
        store.into_inner().close().unwrap();

        // The prefix came along (another one is refused), no key did.
        let wrong = EncryptionOptions::in_dir(&dest).subject_prefix("subject:");
        assert!(Encrypted::open(Store::open(&dest).unwrap(), wrong).is_err());
        let copy = Encrypted::open(
            Store::open(&dest).unwrap(),
            EncryptionOptions::in_dir(&dest),
        )
        .unwrap();
        assert_eq!(copy.subject_prefix(), "who:");
        assert!(matches!(
            copy.read_last(&Query::tag("who:alice")),
            Err(Error::Undecryptable { .. })
        ));
        assert_eq!(
            &copy.read_last(&Query::all()).unwrap().unwrap().data[..],
            b"in clear"
        );
        copy.into_inner().close().unwrap();

        // Restored with the store's key file: alice opens, bob stays
        // forgotten.
        std::fs::write(dest.join(KEY_FILE_NAME), live_keys).unwrap();
        let restored = Encrypted::open(
            Store::open(&dest).unwrap(),
            EncryptionOptions::in_dir(&dest),
        )
        .unwrap();
        let read = |tag: &str| restored.read_last(&Query::tag(tag)).unwrap().unwrap();
        assert_eq!(&read("who:alice").data[..], b"alice's secret");
        assert!(read("who:bob").data.is_empty());
        restored.into_inner().close().unwrap();

        // A plain store's backup has no key file.
        let plain = Store::open(tmp.path().join("plain")).unwrap();
        plain.append(vec![NewEvent::new("T", "x")]).unwrap();
        let report = plain.backup(tmp.path().join("plain-backup")).unwrap();
        assert!(!report.keys_left_out);
        assert!(!tmp.path().join("plain-backup").join(KEY_FILE_NAME).exists());
    }

    /// What a backup leaves out or moves back when the store went on past
    /// the backup's position while it ran: index runs ending later,
    /// lifecycle entries made later, later snapshots and cursors.
    #[test]
    fn what_lies_beyond_the_position_is_left_out() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        let options = || Options::default().segment_size(16 << 10);
        let store = Store::open_with(&dir, options()).unwrap();
        let append = |n: u64| {
            for i in 0..n {
                let event = NewEvent::new("T", format!("event {i}").into_bytes()).tag("t");
                store.append(vec![event]).unwrap();
            }
        };
        append(300);
        store.flush_index().unwrap();
        store
            .add_tags(&Target::Positions(vec![10]), &["early".to_owned()])
            .unwrap();
        store.save_snapshot("k", 250, b"early").unwrap();
        append(300);
        store.flush_index().unwrap();
        store
            .add_tags(&Target::Positions(vec![20, 550]), &["late".to_owned()])
            .unwrap();
        store.save_snapshot("k", 550, b"late").unwrap();
        let subscription = store.subscribe_durable("s", &Query::all()).unwrap();
        subscription.ack(580).unwrap();
        drop(subscription);
        append(10);

        let dest = tmp.path().join("backup");
        let report = store.backup_at(&dest, Some(400)).unwrap();
        assert_eq!(report.position, 400);
        assert_eq!((report.index_runs, report.index_runs_left_out), (1, 1));
        assert_eq!(
            (report.lifecycle_entries, report.lifecycle_entries_left_out),
            (1, 1)
        );
        assert_eq!((report.snapshots, report.snapshots_left_out), (1, 1));
        assert_eq!((report.cursors, report.cursors_moved_back), (1, 1));

        let verified = crate::inspect::verify(&dest, &mut |_, _| {}).unwrap();
        assert!(verified.is_intact(), "{verified:?}");
        let backup = Store::open_with(&dest, options()).unwrap();
        assert_eq!(backup.head(), 400);
        let tagged = |store: &Store, tag: &str| -> Vec<u64> {
            store
                .read(&Query::tag(tag), ReadOptions::forwards())
                .unwrap()
                .map(|e| e.unwrap().position)
                .collect()
        };
        assert_eq!(tagged(&backup, "early"), vec![10]);
        assert!(tagged(&backup, "late").is_empty());
        assert_eq!(
            tagged(&backup, "t").len(),
            400,
            "the index rebuilt from the log"
        );
        assert_eq!(backup.list_snapshots("k").unwrap(), vec![250]);
        let cursors = backup.durable_subscriptions().unwrap();
        assert_eq!(cursors[0].acknowledged, 400);
        let events: Vec<_> = backup
            .read(&Query::all(), ReadOptions::forwards())
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        let original: Vec<_> = store
            .read(&Query::all(), ReadOptions::forwards().limit(400))
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        // The source's event 20 has gained a tag since.
        let strip = |mut e: crate::RecordedEvent| {
            e.tags.retain(|t| t != "late");
            e
        };
        assert!(events == original.into_iter().map(strip).collect::<Vec<_>>());
    }
}
