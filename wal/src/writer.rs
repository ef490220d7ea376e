//! Appending records to the active segment: one buffered group, one write,
//! at most one `fdatasync`, preallocation ahead of the writer, and rollover.
//!
//! The writer is owned by the single committer thread. Records pushed into a
//! group become visible to readers only when [`WalWriter::commit`] has
//! written (and, if asked, synced) them. A failed write or sync poisons the
//! writer: the state of the tail on disk is unknown, so it refuses all further
//! work until the log is reopened and recovered.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{IoContext, Result, WalError};
use crate::format::Payload;
use crate::format::{
    RecordMeta, SEGMENT_HEADER_LEN, SegmentHeader, encode_record, segment_file_name,
};
use crate::io::{FileHandle, FileSystem, OpenMode};
use crate::segment::{Segment, SegmentSet};
use crate::table::{SegmentTable, table_path};

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
    /// for reads (see [`crate::cache`]). Default 32 MiB.
    pub block_cache_bytes: usize,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: 64 << 20,
            preallocate: 4 << 20,
            block_cache_bytes: 32 << 20,
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
    poisoned: bool,
}

impl std::fmt::Debug for WalWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalWriter")
            .field("dir", &self.dir)
            .field("active", &self.active.path())
            .field("next_position", &self.next_position)
            .field("poisoned", &self.poisoned)
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
    ) -> WalWriter {
        WalWriter {
            fs,
            dir,
            options,
            segments,
            active_path: tail.segment.path(),
            active_file: tail.segment.file(),
            active: tail.segment,
            flushed: tail.end,
            allocated: tail.allocated,
            buf: Vec::new(),
            pending: Vec::new(),
            next_position,
            dirty: false,
            last_timestamp: 0,
            poisoned: false,
        }
    }

    /// Creates a new, empty segment starting at `first_position`, durably:
    /// header, zero-filled preallocation, file sync, directory sync.
    pub(crate) fn create_segment(
        fs: &dyn FileSystem,
        dir: &std::path::Path,
        first_position: u64,
        preallocate: u64,
    ) -> Result<(Arc<Segment>, u64)> {
        let path = dir.join(segment_file_name(first_position));
        let file = fs.open(&path, OpenMode::Truncate).at(&path)?;
        let allocated = (SEGMENT_HEADER_LEN as u64).max(preallocate);
        let mut init = vec![0u8; allocated as usize];
        init[..SEGMENT_HEADER_LEN].copy_from_slice(&SegmentHeader { first_position }.encode());
        file.write_at(&init, 0).at(&path)?;
        file.sync_data().at(&path)?;
        fs.sync_dir(dir).at(dir)?;
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
        self.poisoned
    }

    /// Whether writes have happened since the last sync.
    pub fn is_dirty(&self) -> bool {
        self.dirty || !self.buf.is_empty()
    }

    fn check(&self) -> Result<()> {
        if self.poisoned {
            Err(WalError::Poisoned)
        } else {
            Ok(())
        }
    }

    fn poison<T>(&mut self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.poisoned = true;
            self.buf.clear();
            self.pending.clear();
        }
        r
    }

    /// Adds one record to the current group. The record is not written until
    /// [`commit`](Self::commit); if it would overflow the active segment, the
    /// group so far is written and the segment is sealed first.
    pub fn push(&mut self, meta: RecordMeta, seq: &[u8], payload: &Payload) -> Result<()> {
        self.check()?;
        assert_eq!(
            meta.first_position, self.next_position,
            "records must be pushed in position order"
        );
        let len = payload.framed_len(seq.len()) as u64;
        let offset = self.flushed + self.buf.len() as u64;
        let has_records = offset > SEGMENT_HEADER_LEN as u64;
        let offset = if has_records && offset + len > self.options.segment_size {
            let r = self.roll();
            self.poison(r)?;
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
        Ok(())
    }

    /// Writes the group with one write (plus zeros for preallocation when the
    /// group reaches past the allocated end), syncs it if `sync`, and then
    /// publishes its records to readers.
    pub fn commit(&mut self, sync: bool) -> Result<()> {
        self.check()?;
        let r = self.write_buf();
        self.poison(r)?;
        if sync {
            let r = self.sync();
            self.poison(r)?;
        }
        for p in self.pending.drain(..) {
            p.segment.publish(p.first, p.last, p.offset, p.end);
        }
        Ok(())
    }

    /// Makes everything written so far durable, if anything is unsynced.
    pub fn sync(&mut self) -> Result<()> {
        self.check()?;
        if self.dirty {
            let r = self.active_file.sync_data().at(&self.active_path);
            self.poison(r)?;
            self.dirty = false;
        }
        Ok(())
    }

    fn write_buf(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let end = self.flushed + self.buf.len() as u64;
        if end > self.allocated {
            // Extend in the same write: records, then zeros up to the next
            // preallocation boundary.
            let target = end + self.options.preallocate;
            self.buf.resize((target - self.flushed) as usize, 0);
            self.allocated = target;
        }
        self.active_file
            .write_at(&self.buf, self.flushed)
            .at(&self.active_path)?;
        self.flushed = end;
        self.buf.clear();
        self.dirty = true;
        Ok(())
    }

    /// Seals the active segment (written, synced, trimmed to its records,
    /// synced again) and starts the next one.
    fn roll(&mut self) -> Result<()> {
        self.write_buf()?;
        let path = self.active_path.clone();
        let file = self.active_file.clone();
        file.sync_data().at(&path)?;
        file.set_len(self.flushed).at(&path)?;
        file.sync_data().at(&path)?;
        self.dirty = false;
        let active = self.active.clone();
        let pending = self
            .pending
            .iter()
            .filter(|p| Arc::ptr_eq(&p.segment, &active))
            .map(|p| (p.first, p.last, p.offset, p.end));
        let (entries, last_position, end) = active.table_with(pending);
        let table = SegmentTable {
            first_position: active.first_position(),
            last_position,
            end,
            last_timestamp_micros: self.last_timestamp,
            entries,
        };
        let table_path = table_path(&self.dir, table.first_position);
        table.store(self.fs.as_ref(), &self.dir).at(&table_path)?;
        self.active.seal();
        let (segment, allocated) = Self::create_segment(
            self.fs.as_ref(),
            &self.dir,
            self.next_position,
            self.options.preallocate,
        )?;
        self.segments.push(segment.clone());
        self.active_path = segment.path();
        self.active_file = segment.file();
        self.active = segment;
        self.flushed = SEGMENT_HEADER_LEN as u64;
        self.allocated = allocated;
        Ok(())
    }

    /// Writes and syncs anything outstanding. The active segment keeps its
    /// preallocated zeros; recovery reads them as the end of the log.
    pub fn close(&mut self) -> Result<()> {
        self.check()?;
        self.commit(true)
    }
}
