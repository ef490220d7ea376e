//! A segment as the rest of the log sees it: its file, the position it starts
//! at, and the sparse offset table that maps a position to a byte offset
//! without scanning.
//!
//! The writer publishes each committed record here after its bytes are
//! written; readers never look past the published end, so they never decode
//! bytes that a concurrent write is still producing.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

use crate::error::WalError;
use crate::error::{IoContext, Result};
use crate::format::SEGMENT_HEADER_LEN;
use crate::io::{FileHandle, read_exact_at};
use crate::remote::{EvictedSegment, RemoteSegments};
use crate::zseg::CompressedSegment;

/// One offset-table entry is kept per this many bytes of records, so the
/// table stays small (a few bytes per KiB of log) and a lookup scans at most
/// this much.
pub(crate) const INDEX_STRIDE: u64 = 4096;

/// A segment file and what is known about its published contents.
#[derive(Debug)]
pub struct Segment {
    first_position: u64,
    /// Whether a map of the file shows later writes (see
    /// `FileSystem::mmap_is_coherent`); if not, only a sealed segment is
    /// read through a map.
    coherent: bool,
    backing: RwLock<Backing>,
    state: RwLock<SegmentState>,
}

/// Where a segment's bytes are: its file (mapped whole once it has been
/// mapped), once sealed and compressed, a compressed file, or once
/// evicted, remote storage (`path` and `file` are then its marker's).
#[derive(Debug)]
struct Backing {
    path: PathBuf,
    file: Arc<dyn FileHandle>,
    mapping: Option<Bytes>,
    compressed: Option<Arc<CompressedSegment>>,
    remote: Option<Remote>,
}

impl Backing {
    /// The map of a plain segment (neither compressed nor evicted), if it
    /// is mapped.
    fn plain_map(&self) -> Option<&Bytes> {
        match (&self.mapping, &self.compressed, &self.remote) {
            (Some(map), None, None) => Some(map),
            _ => None,
        }
    }
}

/// An evicted segment's remote, and what its marker says of it.
#[derive(Debug, Clone)]
struct Remote {
    segments: Arc<dyn RemoteSegments>,
    marker: EvictedSegment,
}

#[derive(Debug, Clone)]
struct SegmentState {
    /// (first position of a record, byte offset of that record), ascending.
    entries: Vec<(u64, u64)>,
    /// End of the last published record.
    end: u64,
    /// Last position published, or `first_position - 1` when empty.
    last_position: u64,
    sealed: bool,
    /// The block size of a compressed segment, whose table has an entry
    /// for the first record starting in each block (see
    /// [`Segment::index_by_block`]); `None`: one per [`INDEX_STRIDE`].
    block: Option<u64>,
}

impl SegmentState {
    fn add(&mut self, first: u64, last: u64, offset: u64, end: u64) {
        let due = match (self.entries.last(), self.block) {
            (None, _) => true,
            (Some(&(_, o)), None) => offset >= o + INDEX_STRIDE,
            (Some(&(_, o)), Some(block)) => offset / block != o / block,
        };
        if due {
            self.entries.push((first, offset));
        }
        self.end = end;
        self.last_position = last;
    }
}

/// A copy of the part of a segment's state a reader needs.
#[derive(Debug, Clone, Copy)]
pub struct SegmentBounds {
    /// End of the last published record.
    pub end: u64,
    /// Last published position (`first_position - 1` when empty).
    pub last_position: u64,
}

impl Segment {
    pub(crate) fn new(
        first_position: u64,
        path: PathBuf,
        file: Arc<dyn FileHandle>,
        coherent: bool,
    ) -> Segment {
        Segment {
            first_position,
            coherent,
            backing: RwLock::new(Backing {
                path,
                file,
                mapping: None,
                compressed: None,
                remote: None,
            }),
            state: RwLock::new(SegmentState {
                entries: Vec::new(),
                end: SEGMENT_HEADER_LEN as u64,
                last_position: first_position - 1,
                sealed: false,
                block: None,
            }),
        }
    }

    /// Position of the first event in this segment.
    pub fn first_position(&self) -> u64 {
        self.first_position
    }

    /// Whether the segment is evicted (its bytes are read from remote
    /// storage).
    pub fn is_evicted(&self) -> bool {
        self.backing.read().remote.is_some()
    }

    /// What the eviction marker says of the segment, if it is evicted
    /// (its bytes are read from remote storage).
    pub fn evicted(&self) -> Option<EvictedSegment> {
        self.backing
            .read()
            .remote
            .as_ref()
            .map(|r| r.marker.clone())
    }

    /// The path of the file that holds the segment now (its eviction
    /// marker, once evicted).
    pub fn path(&self) -> PathBuf {
        self.backing.read().path.clone()
    }

    /// The open file (the compressed file once the segment is compressed).
    pub fn file(&self) -> Arc<dyn FileHandle> {
        self.backing.read().file.clone()
    }

    /// The compressed segment, once the segment has been compressed.
    pub fn compressed(&self) -> Option<Arc<CompressedSegment>> {
        self.backing.read().compressed.clone()
    }

    /// Bytes `start..end` of the segment, which the caller knows to be
    /// written and published. Served from a shared map when the segment may
    /// be mapped (no copy, no system call), from decompressed blocks when it
    /// is compressed, else read with `pread`.
    pub fn read(&self, start: u64, end: u64) -> Result<Bytes> {
        let (s, e) = (start as usize, end as usize);
        let (path, file) = {
            let b = self.backing.read();
            if let Some(z) = &b.compressed {
                return z.read(start, end);
            }
            if let Some(r) = &b.remote {
                let remote = r.clone();
                let path = b.path.clone();
                drop(b);
                return read_remote(&remote, &path, start, end);
            }
            if let Some(map) = b.mapping.as_ref().filter(|m| m.len() >= e) {
                return Ok(map.slice(s..e));
            }
            (b.path.clone(), b.file.clone())
        };
        if self.coherent || self.is_sealed() {
            let map = Bytes::from_owner(file.map().at(&path)?);
            if map.len() >= e {
                let out = map.slice(s..e);
                let mut b = self.backing.write();
                if b.compressed.is_none() && b.remote.is_none() {
                    b.mapping = Some(map);
                }
                return Ok(out);
            }
        }
        let mut buf = vec![0u8; e - s];
        read_exact_at(file.as_ref(), &mut buf, start).at(&path)?;
        Ok(Bytes::from(buf))
    }

    /// Seeds the map with bytes already read whole (by recovery), for a
    /// segment that is sealed or whose file system maps coherently.
    pub(crate) fn set_mapping(&self, bytes: Bytes) {
        self.backing.write().mapping = Some(bytes);
    }

    /// Switches a sealed segment to its compressed file: later reads
    /// decompress; reads already handed bytes of the old map keep them.
    pub(crate) fn set_compressed(&self, file: Arc<dyn FileHandle>, z: Arc<CompressedSegment>) {
        let mut b = self.backing.write();
        b.path = z.path().to_owned();
        b.file = file;
        b.mapping = None;
        b.compressed = Some(z);
        b.remote = None;
    }

    /// Switches a sealed plain segment to remote storage: later reads go
    /// through `segments`; reads already handed bytes of the old map keep
    /// them (the map outlives the file's removal).
    pub(crate) fn set_remote(
        &self,
        marker_path: PathBuf,
        marker_file: Arc<dyn FileHandle>,
        segments: Arc<dyn RemoteSegments>,
        marker: EvictedSegment,
    ) {
        let mut b = self.backing.write();
        b.path = marker_path;
        b.file = marker_file;
        b.mapping = None;
        b.compressed = None;
        b.remote = Some(Remote { segments, marker });
    }

    /// Switches a sealed plain (or evicted) segment to a rewritten file
    /// at `path` holding its records at the same offsets (`map`, the new
    /// file's bytes); reads already handed bytes of the old map keep them.
    pub(crate) fn set_plain(&self, path: PathBuf, file: Arc<dyn FileHandle>, map: Bytes) {
        let mut b = self.backing.write();
        b.path = path;
        b.file = file;
        b.mapping = Some(map);
        b.compressed = None;
        b.remote = None;
    }

    /// The published end and last position.
    pub fn bounds(&self) -> SegmentBounds {
        let s = self.state.read();
        SegmentBounds {
            end: s.end,
            last_position: s.last_position,
        }
    }

    /// Whether the segment is sealed (will never grow).
    pub fn is_sealed(&self) -> bool {
        self.state.read().sealed
    }

    pub(crate) fn seal(&self) {
        self.state.write().sealed = true;
    }

    /// Publishes a record written at `offset`, ending at `end`, holding
    /// positions `first..=last`.
    pub(crate) fn publish(&self, first: u64, last: u64, offset: u64, end: u64) {
        self.state.write().add(first, last, offset, end);
    }

    /// The offset table the segment will have once `pending` records
    /// (first, last, offset, end) are published too: (entries, last
    /// position, end).
    pub(crate) fn table_with(
        &self,
        pending: impl Iterator<Item = (u64, u64, u64, u64)>,
    ) -> (Vec<(u64, u64)>, u64, u64) {
        let mut s = self.state.read().clone();
        for (first, last, offset, end) in pending {
            s.add(first, last, offset, end);
        }
        (s.entries, s.last_position, s.end)
    }

    /// Indexes the records published from now on by blocks of
    /// `block_size` bytes: an entry for the first record starting in each
    /// block. A compressed segment's point read then walks the record
    /// heads of one block, which it decompresses once, instead of a
    /// stretch of [`INDEX_STRIDE`] bytes across several blocks.
    pub(crate) fn index_by_block(&self, block_size: u32) {
        self.state.write().block = Some(u64::from(block_size.max(1)));
    }

    /// Replaces the offset table of a sealed segment with one indexed by
    /// blocks of `block_size` bytes (see [`index_by_block`](Self::index_by_block)),
    /// built from `starts`, every record's (first position, offset) in
    /// order; returns the new entries.
    pub(crate) fn reindex_by_block(
        &self,
        block_size: u32,
        starts: impl IntoIterator<Item = (u64, u64)>,
    ) -> Vec<(u64, u64)> {
        let mut s = self.state.write();
        let mut rebuilt = SegmentState {
            entries: Vec::new(),
            end: s.end,
            last_position: s.last_position,
            sealed: s.sealed,
            block: Some(u64::from(block_size.max(1))),
        };
        for (first, offset) in starts {
            rebuilt.add(first, s.last_position, offset, s.end);
        }
        *s = rebuilt;
        s.entries.clone()
    }

    /// Installs a whole offset table read from disk.
    pub(crate) fn load_table(&self, entries: Vec<(u64, u64)>, last_position: u64, end: u64) {
        let mut s = self.state.write();
        s.entries = entries;
        s.last_position = last_position;
        s.end = end;
    }

    /// The byte offset at which to start scanning for `position`, and the
    /// offset where that stretch of the table ends (the next entry, or the
    /// published end). `None` if the position is not in this segment.
    pub fn locate(&self, position: u64) -> Option<(u64, u64)> {
        stretch_of(&self.state.read(), self.first_position, position)
    }

    /// For each of `positions`, the offset-table stretch holding it (as
    /// [`locate`](Self::locate)) and that stretch's bytes, if the segment
    /// is plain and already mapped that far, under one lock of each:
    /// `None` for a position outside the segment or where the segment is
    /// not mapped. Never reads, decompresses or fetches anything (for hints
    /// such as warming).
    pub fn mapped_stretches(&self, positions: &[u64], out: &mut Vec<Option<(u64, Bytes)>>) {
        // The two locks are taken one after the other, never one inside
        // the other.
        let stretches: Vec<Option<(u64, u64)>> = {
            let s = self.state.read();
            positions
                .iter()
                .map(|&p| stretch_of(&s, self.first_position, p))
                .collect()
        };
        let b = self.backing.read();
        let map = b.plain_map();
        out.extend(stretches.into_iter().map(|found| {
            let ((start, stop), map) = (found?, map?);
            let (a, z) = (usize::try_from(start).ok()?, usize::try_from(stop).ok()?);
            (a <= z && z <= map.len()).then(|| (start, map.slice(a..z)))
        }));
    }

    /// The segment's map, if it is plain and mapped: never reads,
    /// decompresses or fetches anything (for work done ahead of a reader,
    /// such as checksumming its next records).
    pub(crate) fn mapped(&self) -> Option<Bytes> {
        self.backing.read().plain_map().cloned()
    }

    /// The offset-table stretch that precedes the one starting at `offset`,
    /// for backward scans: `(start, stop)` with `stop == offset`.
    pub fn stretch_before(&self, offset: u64) -> Option<(u64, u64)> {
        let s = self.state.read();
        let i = s.entries.partition_point(|&(_, o)| o < offset);
        if i == 0 {
            return None;
        }
        Some((s.entries[i - 1].1, offset))
    }
}

/// Bytes `start..end` of an evicted segment, from its remote: exactly
/// that many, within the length its marker gives, or an error naming the
/// segment.
fn read_remote(remote: &Remote, path: &std::path::Path, start: u64, end: u64) -> Result<Bytes> {
    let failed = |source| WalError::Remote {
        file: path.to_owned(),
        source,
    };
    if start > end || end > remote.marker.len {
        return Err(failed(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "bytes {start}..{end} lie beyond the segment's {} bytes",
                remote.marker.len
            ),
        )));
    }
    if start == end {
        return Ok(Bytes::new());
    }
    let bytes = remote
        .segments
        .read(&remote.marker, start, end)
        .map_err(failed)?;
    if bytes.len() as u64 != end - start {
        return Err(failed(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "a read of {} bytes at {start} gave {}",
                end - start,
                bytes.len()
            ),
        )));
    }
    Ok(bytes)
}

/// [`Segment::locate`] in a segment's state.
fn stretch_of(s: &SegmentState, first_position: u64, position: u64) -> Option<(u64, u64)> {
    if position < first_position || position > s.last_position {
        return None;
    }
    let i = entries_up_to(&s.entries, position);
    // entries[0] is the first record, so i >= 1 for an in-range position.
    let start = s.entries[i.saturating_sub(1)].1;
    let stop = s.entries.get(i).map_or(s.end, |&(_, o)| o);
    Some((start, stop))
}

/// How many of `entries` (ascending by first position) start at or before
/// `position`: `entries.partition_point(|&(p, _)| p <= position)`, found
/// from where the positions would put it were they spread evenly. They
/// nearly are (an entry every [`INDEX_STRIDE`] bytes or more, at a record's
/// start, and records of an application's events alike in size), so a
/// point read, which asks this of every event it reads, mostly takes one
/// guess and two comparisons where a binary search takes a dozen
/// unpredictable branches; a guess four entries off or more falls back to
/// the binary search.
fn entries_up_to(entries: &[(u64, u64)], position: u64) -> usize {
    let (Some(&(lo, _)), Some(&(hi, _))) = (entries.first(), entries.last()) else {
        return 0;
    };
    if position < lo {
        return 0;
    }
    if position >= hi {
        return entries.len();
    }
    // Here lo <= position < hi, so there are two entries at least, and the
    // answer `i` has entries[i - 1] <= position < entries[i] and lies in
    // 1..len: each step below keeps `i` there.
    let last = (entries.len() - 1) as u64;
    if let Some(scaled) = (position - lo).checked_mul(last) {
        let mut i = (scaled / (hi - lo)) as usize + 1;
        for _ in 0..4 {
            if entries[i - 1].0 > position {
                i -= 1;
            } else if entries[i].0 <= position {
                i += 1;
            } else {
                return i;
            }
        }
    }
    entries.partition_point(|&(p, _)| p <= position)
}

/// The ordered list of segments, shared between the writer and readers.
#[derive(Debug, Clone, Default)]
pub struct SegmentSet(Arc<RwLock<Vec<Arc<Segment>>>>);

impl SegmentSet {
    /// A copy of the list (cheap: one `Arc` per segment).
    pub fn snapshot(&self) -> Vec<Arc<Segment>> {
        self.0.read().clone()
    }

    pub(crate) fn push(&self, segment: Arc<Segment>) {
        self.0.write().push(segment);
    }

    /// The segment that holds (or would hold) `position`: the last one whose
    /// first position is at or before it.
    pub fn find(&self, position: u64) -> Option<(usize, Arc<Segment>)> {
        let list = self.0.read();
        let i = list.partition_point(|s| s.first_position <= position);
        if i == 0 {
            return None;
        }
        Some((i - 1, list[i - 1].clone()))
    }

    /// [`find`](Self::find) for each of `positions`, under one lock:
    /// calls `f` with each run of consecutive positions that one segment
    /// holds, and that segment (`None` for a run before the first one), in
    /// order.
    pub fn find_runs(&self, positions: &[u64], mut f: impl FnMut(&[u64], Option<&Arc<Segment>>)) {
        let list = self.0.read();
        let mut rest = positions;
        while let Some(&position) = rest.first() {
            let i = list.partition_point(|s| s.first_position <= position);
            let next = list.get(i).map_or(u64::MAX, |s| s.first_position);
            let first = i.checked_sub(1).and_then(|i| list.get(i));
            let first_position = first.map_or(0, |s| s.first_position);
            let run = rest
                .iter()
                .take_while(|&&p| p >= first_position && p < next)
                .count()
                .max(1);
            f(&rest[..run], first);
            rest = &rest[run..];
        }
    }

    /// The segment whose first position is `first_position`, if any.
    pub fn starting_at(&self, first_position: u64) -> Option<Arc<Segment>> {
        let list = self.0.read();
        let i = list
            .binary_search_by_key(&first_position, |s| s.first_position)
            .ok()?;
        Some(list[i].clone())
    }

    /// The segment at index `i`.
    pub fn get(&self, i: usize) -> Option<Arc<Segment>> {
        self.0.read().get(i).cloned()
    }

    /// Number of segments.
    pub fn len(&self) -> usize {
        self.0.read().len()
    }

    /// Whether there are no segments.
    pub fn is_empty(&self) -> bool {
        self.0.read().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::entries_up_to;

    /// Tables of ascending first positions: evenly spread, spread with
    /// gaps of any size, and near the top of the range of positions (where
    /// the guess's product overflows).
    fn tables() -> impl Strategy<Value = Vec<(u64, u64)>> {
        let gaps = prop_oneof![
            prop::collection::vec(Just(100u64), 0..300),
            prop::collection::vec(90u64..110, 0..300),
            prop::collection::vec(1u64..5_000, 0..300),
            prop::collection::vec(prop_oneof![Just(1u64), Just(1u64 << 40)], 0..300),
        ];
        (
            gaps,
            prop_oneof![Just(1u64), 1u64..1 << 20, Just(u64::MAX - (1 << 50))],
        )
            .prop_map(|(gaps, first)| {
                let mut at = first;
                gaps.into_iter()
                    .map(|g| {
                        let entry = (at, at.wrapping_mul(3));
                        at = at.saturating_add(g);
                        entry
                    })
                    .take_while(|&(p, _)| p < u64::MAX)
                    .collect::<Vec<_>>()
            })
    }

    proptest! {
        /// The guess and its steps find what a binary search finds, for
        /// positions before, among, at and after the entries.
        #[test]
        fn entries_up_to_is_the_partition_point(
            mut entries in tables(),
            picks in prop::collection::vec((any::<prop::sample::Index>(), -3i64..4), 1..40),
        ) {
            entries.dedup_by_key(|e| e.0);
            for (pick, delta) in picks {
                let base = if entries.is_empty() { 0 } else { entries[pick.index(entries.len())].0 };
                let position = base.saturating_add_signed(delta);
                prop_assert_eq!(
                    entries_up_to(&entries, position),
                    entries.partition_point(|&(p, _)| p <= position),
                    "position {}", position
                );
            }
        }
    }
}
