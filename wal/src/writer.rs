//! Appending records to the active segment: one buffered group, one write,
//! at most one `fdatasync`, preallocation ahead of the writer, and rollover.
//!
//! The writer is owned by the single committer thread. Records pushed into a
//! group become visible to readers only when [`WalWriter::commit`] has
//! written (and, if asked, synced) them.
//!
//! A failed commit has a definite outcome wherever the writer can make it
//! one. Room is made before any record byte is written (preallocation
//! ahead of the records, the next segment created before the group that
//! needs it, a group never spans two segments), so a full disk fails a
//! group before it touches the log, and the writer stays usable. If the
//! records' write or sync fails, the writer cuts the group off the segment
//! again (truncate, sync) before it answers: then the group is not in the
//! log and never will be ([`WalError::Io`]). Only if that rollback fails
//! too is the outcome unknown ([`WalError::Indeterminate`]). Either way a
//! failed write or sync poisons the writer: after a failed `fdatasync` the
//! kernel may have dropped dirty pages of earlier unsynced groups, so it
//! refuses all further work until the log is reopened and recovered.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::{IoContext, Result, WalError};
use crate::format::Payload;
use crate::format::{
    RecordMeta, SEGMENT_HEADER_LEN, SEGMENT_VERSION, SegmentHeader, encode_record,
    segment_file_name,
};
use crate::io::{FileHandle, FileSystem, OpenMode};
use crate::segment::{Segment, SegmentSet};
use crate::table::{SegmentTable, table_path};

/// How far ahead of its records the log preallocates by default.
const DEFAULT_PREALLOCATE: u64 = 4 << 20;

/// Zeros to preallocate from, as large as the default preallocation so
/// that it takes one write. A buffer made for each preallocation cost the
/// commit thread a zeroing of the whole of it (the allocator hands large
/// blocks back from its heap once some have been freed, not as fresh
/// pages), every few megabytes of log; a zero static costs nothing to
/// keep (its pages are the system's shared zero page until written, and
/// it is never written).
static ZEROS: [u8; DEFAULT_PREALLOCATE as usize] = [0; DEFAULT_PREALLOCATE as usize];

/// Writes zeros to `file` from byte `from` up to `to`.
fn write_zeros(file: &dyn FileHandle, from: u64, to: u64) -> std::io::Result<()> {
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS.len() as u64);
        file.write_at(&ZEROS[..n as usize], at)?;
        at += n;
    }
    Ok(())
}

/// What the log tells everyone else: how far it is durable, and whether it
/// refuses writes. Shared between the writer (which alone changes it) and
/// any number of observers.
#[derive(Debug, Default)]
pub struct LogState {
    durable: AtomicU64,
    poisoned: AtomicBool,
}

impl LogState {
    /// The last position known to be on stable storage.
    pub fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Whether a failed write or sync made the log refuse all further
    /// writes until it is reopened.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }
}

/// Tunables of the segment log.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// A segment is sealed and a new one started once the next group would
    /// take it past this many bytes. Default 64 MiB.
    pub segment_size: u64,
    /// The active segment is zero-filled this far ahead of the writer, so
    /// that a commit overwrites existing blocks instead of growing the file
    /// (which costs a metadata flush on every `fdatasync`). Default 4 MiB.
    pub preallocate: u64,
    /// Bytes of decompressed blocks of compressed segments kept in memory
    /// for reads (see [`BlockCache`](crate::BlockCache)). Default 32 MiB.
    pub block_cache_bytes: usize,
    /// Where the bytes of evicted segments are read from (see
    /// [`RemoteSegments`](crate::RemoteSegments)). Default none: a log
    /// holding an evicted segment refuses to open
    /// ([`WalError::Evicted`](crate::WalError::Evicted)), and
    /// [`Compressor::evict`](crate::Compressor::evict) is refused.
    pub remote: Option<Arc<dyn crate::RemoteSegments>>,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: 64 << 20,
            preallocate: DEFAULT_PREALLOCATE,
            block_cache_bytes: 32 << 20,
            remote: None,
        }
    }
}

/// Where recovery left the newest segment.
#[derive(Debug)]
pub(crate) struct ActiveTail {
    /// The newest segment.
    pub segment: Arc<Segment>,
    /// End of its last record.
    pub end: u64,
    /// Its length on disk (records plus preallocated zeros).
    pub allocated: u64,
    /// Its format version.
    pub version: u32,
}

/// What [`WalWriter::push`] did with a record.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// The record joined the group.
    Added,
    /// The record does not fit in the active segment and the group already
    /// holds records: commit the group, then push the record again (it then
    /// starts the next segment). A group never spans two segments, so that
    /// a failed group can be cut off one segment's tail.
    SegmentFull,
}

struct Published {
    segment: Arc<Segment>,
    first: u64,
    last: u64,
    offset: u64,
    end: u64,
}

/// The single writer of the log.
pub struct WalWriter {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    options: WalOptions,
    segments: SegmentSet,
    active: Arc<Segment>,
    /// The active segment's path and file, kept here so that a commit does
    /// not fetch them from the segment (an active segment is never
    /// compressed, so they never change under the writer).
    active_path: PathBuf,
    active_file: Arc<dyn FileHandle>,
    /// The active segment's format version: one older than this build's
    /// takes no more records (the next push starts a new segment).
    active_version: u32,
    /// Bytes before this offset have been handed to the file.
    flushed: u64,
    /// Bytes of the active segment that exist on disk (records plus zeros).
    allocated: u64,
    /// Records pushed but not yet written, to go at `flushed`.
    buf: Vec<u8>,
    pending: Vec<Published>,
    next_position: u64,
    /// Writes since the last `fdatasync`.
    dirty: bool,
    /// Commit timestamp of the last record pushed.
    last_timestamp: u64,
    /// Commit timestamp of the last record committed.
    committed_timestamp: u64,
    state: Arc<LogState>,
}

impl std::fmt::Debug for WalWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalWriter")
            .field("dir", &self.dir)
            .field("active", &self.active.path())
            .field("next_position", &self.next_position)
            .field("state", &self.state)
            .finish()
    }
}

impl WalWriter {
    /// Resumes writing after recovery at the end of `tail`.
    pub(crate) fn resume(
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
        options: WalOptions,
        segments: SegmentSet,
        tail: ActiveTail,
        next_position: u64,
        last_timestamp: u64,
    ) -> WalWriter {
        let state = Arc::new(LogState::default());
        state.durable.store(next_position - 1, Ordering::Release);
        WalWriter {
            fs,
            dir,
            options,
            segments,
            active_path: tail.segment.path(),
            active_file: tail.segment.file(),
            active: tail.segment,
            active_version: tail.version,
            flushed: tail.end,
            allocated: tail.allocated,
            buf: Vec::new(),
            pending: Vec::new(),
            next_position,
            dirty: false,
            last_timestamp,
            committed_timestamp: last_timestamp,
            state,
        }
    }

    /// Creates a new, empty segment starting at `first_position`, durably:
    /// header, zero-filled preallocation, file sync, directory sync. If any
    /// step fails, the file is removed again (best effort: a leftover holds
    /// no records, and recovery removes or reuses it).
    pub(crate) fn create_segment(
        fs: &dyn FileSystem,
        dir: &std::path::Path,
        first_position: u64,
        preallocate: u64,
    ) -> Result<(Arc<Segment>, u64)> {
        let path = dir.join(segment_file_name(first_position));
        let allocated = (SEGMENT_HEADER_LEN as u64).max(preallocate);
        let create = || -> Result<Arc<dyn FileHandle>> {
            let file = fs.open(&path, OpenMode::Truncate).at(&path)?;
            let mut init = vec![0u8; allocated as usize];
            init[..SEGMENT_HEADER_LEN].copy_from_slice(&SegmentHeader { first_position }.encode());
            file.write_at(&init, 0).at(&path)?;
            file.sync_data().at(&path)?;
            fs.sync_dir(dir).at(dir)?;
            Ok(file)
        };
        let file = match create() {
            Ok(file) => file,
            Err(e) => {
                if fs.exists(&path).unwrap_or(false) {
                    let removed = fs.remove_file(&path).and_then(|()| fs.sync_dir(dir));
                    if let Err(r) = removed {
                        log::warn!(
                            "gesta-wal: could not remove the segment whose creation failed, {}: {r}",
                            path.display()
                        );
                    }
                }
                return Err(e);
            }
        };
        Ok((
            Arc::new(Segment::new(
                first_position,
                path,
                file,
                fs.mmap_is_coherent(),
            )),
            allocated,
        ))
    }

    /// The position the next pushed record must start at.
    pub fn next_position(&self) -> u64 {
        self.next_position
    }

    /// Whether an earlier failure has poisoned the writer.
    pub fn is_poisoned(&self) -> bool {
        self.state.is_poisoned()
    }

    /// The log's durable position and poison flag, for observers.
    pub fn state(&self) -> Arc<LogState> {
        self.state.clone()
    }

    fn poison(&self) {
        self.state.poisoned.store(true, Ordering::Release);
    }

    /// Records that everything written so far is on stable storage.
    fn synced(&mut self) {
        self.dirty = false;
        self.state
            .durable
            .store(self.next_position - 1, Ordering::Release);
    }

    /// Whether writes have happened since the last sync.
    pub fn is_dirty(&self) -> bool {
        self.dirty || !self.buf.is_empty()
    }

    fn check(&self) -> Result<()> {
        if self.is_poisoned() {
            Err(WalError::Poisoned)
        } else {
            Ok(())
        }
    }

    /// Adds one record to the current group. The record is not written until
    /// [`commit`](Self::commit). A record that does not fit in the active
    /// segment either starts the next one (when the group is empty: the
    /// active segment is synced, the next one created, then the active one
    /// sealed) or is refused with [`Pushed::SegmentFull`].
    ///
    /// If creating the next segment fails, nothing was written and the
    /// writer stays usable: the error is definite.
    pub fn push(&mut self, meta: RecordMeta, seq: &[u8], payload: &Payload) -> Result<Pushed> {
        self.check()?;
        assert_eq!(
            meta.first_position, self.next_position,
            "records must be pushed in position order"
        );
        let len = payload.framed_len(seq.len()) as u64;
        let offset = self.flushed + self.buf.len() as u64;
        let has_records = offset > SEGMENT_HEADER_LEN as u64;
        // A segment of an older format is closed to new records, which may
        // use what only this format allows.
        let full =
            offset + len > self.options.segment_size || self.active_version < SEGMENT_VERSION;
        let offset = if has_records && full {
            if !self.buf.is_empty() {
                return Ok(Pushed::SegmentFull);
            }
            self.roll()?;
            self.flushed
        } else {
            offset
        };
        encode_record(&mut self.buf, meta, seq, payload);
        self.pending.push(Published {
            segment: self.active.clone(),
            first: meta.first_position,
            last: meta.last_position(),
            offset,
            end: offset + len,
        });
        self.next_position = meta.last_position() + 1;
        self.last_timestamp = meta.timestamp_micros;
        Ok(Pushed::Added)
    }

    /// Forgets the group: nothing of it reached the log.
    fn discard(&mut self) {
        if let Some(first) = self.pending.first() {
            self.next_position = first.first;
        }
        self.buf.clear();
        self.pending.clear();
        self.last_timestamp = self.committed_timestamp;
    }

    /// Writes the group with one write, syncs it if `sync`, and then
    /// publishes its records to readers.
    ///
    /// On failure nothing of the group is published, and the error says
    /// what became of it: [`WalError::Io`] — the group is not in the log
    /// and never will be (it failed before a byte of it was written, or it
    /// was cut off again and the cut synced); [`WalError::Indeterminate`] —
    /// the cut failed too, so the group may be there after a reopen. A
    /// failure before the records' write leaves the writer usable; any
    /// later one poisons it.
    pub fn commit(&mut self, sync: bool) -> Result<()> {
        self.commit_observed(sync, &mut ())
    }

    /// [`commit`](Self::commit), telling `observer` when the group's write
    /// and its sync are done, so that the two can be timed apart. An
    /// observer whose methods are empty (`()`) costs nothing.
    pub fn commit_observed<O: CommitObserver>(
        &mut self,
        sync: bool,
        observer: &mut O,
    ) -> Result<()> {
        self.check()?;
        if self.buf.is_empty() {
            if sync {
                // Only an earlier unsynced write makes this sync real.
                let dirty = self.dirty;
                self.sync()?;
                if dirty {
                    observer.synced();
                }
            }
            return Ok(());
        }
        let end = self.flushed + self.buf.len() as u64;
        if end > self.allocated {
            // Preallocate ahead of the records, in a write of its own: a
            // full disk then fails the group before any of it is written.
            let target = end + self.options.preallocate;
            if let Err(e) = write_zeros(self.active_file.as_ref(), self.allocated, target) {
                self.discard();
                return Err(WalError::Io {
                    path: self.active_path.clone(),
                    source: e,
                });
            }
            self.allocated = target;
        }
        let written = self
            .active_file
            .write_at(&self.buf, self.flushed)
            .and_then(|()| {
                self.dirty = true;
                observer.written();
                if sync {
                    self.active_file.sync_data().map(|()| observer.synced())
                } else {
                    Ok(())
                }
            });
        if let Err(e) = written {
            return Err(self.undo(e));
        }
        self.flushed = end;
        self.buf.clear();
        self.committed_timestamp = self.last_timestamp;
        if sync {
            self.synced();
        }
        for p in self.pending.drain(..) {
            p.segment.publish(p.first, p.last, p.offset, p.end);
        }
        Ok(())
    }

    /// After the group's write or sync failed with `error`: cuts the group
    /// off the segment (truncate to where it started, sync), poisons the
    /// writer, and says what became of the group.
    fn undo(&mut self, error: std::io::Error) -> WalError {
        self.poison();
        self.discard();
        let path = self.active_path.clone();
        let cut = self
            .active_file
            .set_len(self.flushed)
            .and_then(|()| self.active_file.sync_data());
        match cut {
            Ok(()) => {
                log::warn!(
                    "gesta-wal: a commit failed ({error}) on {}; its records were cut off the log",
                    path.display()
                );
                self.allocated = self.flushed;
                self.synced();
                WalError::Io {
                    path,
                    source: error,
                }
            }
            Err(cut) => {
                log::error!(
                    "gesta-wal: a commit failed ({error}) on {} and cutting its records off failed too ({cut}): they may or may not be in the log",
                    path.display()
                );
                WalError::Indeterminate {
                    path,
                    source: error,
                }
            }
        }
    }

    /// Makes everything written so far durable, if anything is unsynced.
    /// A failure poisons the writer.
    pub fn sync(&mut self) -> Result<()> {
        self.check()?;
        if self.dirty {
            if let Err(e) = self.active_file.sync_data() {
                self.poison();
                self.discard();
                log::error!(
                    "gesta-wal: fdatasync of {} failed, the log refuses writes until reopened: {e}",
                    self.active_path.display()
                );
                return Err(WalError::Io {
                    path: self.active_path.clone(),
                    source: e,
                });
            }
            self.synced();
        }
        Ok(())
    }

    /// Starts the next segment; called with an empty group. In order: the
    /// active segment is synced (a crash must never leave unsynced records
    /// in a segment that is no longer the newest, where recovery would take
    /// a torn one for damage), the next segment is created durably, then
    /// the active one is trimmed to its records and its offset table
    /// written. Trim and table are tidying: a segment keeps its records
    /// without them (recovery reads zeros after the last record as its end
    /// and rebuilds a missing table), so their failure is only logged.
    fn roll(&mut self) -> Result<()> {
        debug_assert!(self.buf.is_empty() && self.pending.is_empty());
        self.sync()?;
        let (segment, allocated) = Self::create_segment(
            self.fs.as_ref(),
            &self.dir,
            self.next_position,
            self.options.preallocate,
        )?;
        let path = self.active_path.clone();
        let file = self.active_file.clone();
        let trimmed = file.set_len(self.flushed).and_then(|()| file.sync_data());
        if let Err(e) = trimmed {
            log::warn!(
                "gesta-wal: could not trim the sealed segment {} to its records: {e}",
                path.display()
            );
        }
        let active = self.active.clone();
        let (entries, last_position, end) = active.table_with(std::iter::empty());
        let table = SegmentTable {
            first_position: active.first_position(),
            last_position,
            end,
            last_timestamp_micros: self.committed_timestamp,
            entries,
        };
        if let Err(e) = table.store(self.fs.as_ref(), &self.dir) {
            log::warn!(
                "gesta-wal: could not write the offset table {} (the next open rebuilds it): {e}",
                table_path(&self.dir, table.first_position).display()
            );
        }
        self.active.seal();
        self.segments.push(segment.clone());
        self.active_path = segment.path();
        self.active_file = segment.file();
        self.active = segment;
        self.active_version = SEGMENT_VERSION;
        self.flushed = SEGMENT_HEADER_LEN as u64;
        self.allocated = allocated;
        Ok(())
    }

    /// Seals the active segment now, if it holds a record, starting the
    /// next one (as when it fills up): so that a rewrite of sealed segments
    /// reaches every record written so far. Called between groups; returns
    /// whether a segment was sealed.
    pub fn seal_active(&mut self) -> Result<bool> {
        self.check()?;
        if !self.buf.is_empty() || self.flushed <= SEGMENT_HEADER_LEN as u64 {
            return Ok(false);
        }
        self.roll()?;
        Ok(true)
    }

    /// Writes and syncs anything outstanding. The active segment keeps its
    /// preallocated zeros; recovery reads them as the end of the log.
    pub fn close(&mut self) -> Result<()> {
        self.check()?;
        self.commit(true)
    }
}

/// What [`WalWriter::commit_observed`] tells of a commit as it goes: the
/// group's write is done, then its `fdatasync` (only when the group is
/// synced). Both do nothing by default; `()` is the observer that does
/// nothing, and with it the calls compile away.
pub trait CommitObserver {
    /// The group's bytes were written (preallocation included).
    #[inline]
    fn written(&mut self) {}

    /// The group's `fdatasync` returned successfully.
    #[inline]
    fn synced(&mut self) {}
}

impl CommitObserver for () {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::fault::FaultFs;

    /// Zeros reach exactly the range asked, whether it takes part of the
    /// shared block, all of it, or several writes of it; the bytes before
    /// are kept.
    #[test]
    fn zeros_fill_exactly_the_range_asked() {
        let fs = FaultFs::new();
        let dir = std::path::Path::new("/zeros");
        fs.create_dir_all(dir).unwrap();
        let block = ZEROS.len() as u64;
        for (i, len) in [0, 1, 4095, block, block + 1, 2 * block + 7]
            .into_iter()
            .enumerate()
        {
            let path = dir.join(format!("f{i}"));
            let file = fs.open(&path, OpenMode::Truncate).unwrap();
            let from = 3 + i as u64;
            let ones = vec![0xFFu8; 3 * block as usize];
            file.write_at(&ones, 0).unwrap();
            write_zeros(file.as_ref(), from, from + len).unwrap();
            let mut back = vec![0u8; ones.len()];
            assert_eq!(file.read_at(&mut back, 0).unwrap(), back.len());
            let (start, end) = (from as usize, (from + len) as usize);
            assert!(back[..start].iter().all(|&b| b == 0xFF), "{len}: before");
            assert!(back[start..end].iter().all(|&b| b == 0), "{len}: the range");
            assert!(back[end..].iter().all(|&b| b == 0xFF), "{len}: after");
        }
    }
}
