//! Rewriting sealed segments compressed, in the background, and the rule
//! recovery follows when such a rewrite was interrupted.
//!
//! A rewrite is: compress the sealed segment's bytes, check that they
//! decompress to the same bytes, write the compressed file atomically
//! (temporary file, fsync, rename, directory fsync), switch the segment in
//! memory to it, then delete the original and fsync the directory. The
//! original is never modified, so at every step one complete copy exists:
//!
//! - before the rename, only the original (and maybe a `.zseg.tmp`, which
//!   recovery deletes);
//! - after it, both: recovery keeps the original and deletes the compressed
//!   file (it is complete, but the original is the authority and the
//!   rewrite simply runs again);
//! - after the delete, only the compressed file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::cache::{BlockCache, CacheStats};
use crate::error::{IoContext, Result, WalError};
use crate::format::{self, Frame, SEGMENT_HEADER_LEN, parse_segment_file_name, segment_file_name};
use crate::io::{FileHandle, FileSystem, OpenMode, write_atomic};
use crate::remote::{marker_path, parse_marker_file_name};
use crate::segment::{Segment, SegmentSet};
use crate::table::{SegmentTable, table_path};
use crate::zseg::{self, CompressedSegment, Compression};

/// Rewrites sealed segments compressed; cheap to clone, usable from any
/// thread while the log is written and read.
#[derive(Clone, Debug)]
pub struct Compressor {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    segments: SegmentSet,
    cache: Arc<BlockCache>,
    /// Where evicted segments are read from, if anywhere.
    remote: Option<Arc<dyn crate::RemoteSegments>>,
    /// One pass at a time: the background compactor and an explicit
    /// compaction must not rewrite the same segment twice over.
    busy: Arc<Mutex<()>>,
}

/// What a pass of [`Compressor::compress_sealed`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompressReport {
    /// Segments rewritten.
    pub segments: usize,
    /// Their bytes before.
    pub bytes_before: u64,
    /// Their bytes after.
    pub bytes_after: u64,
}

impl Compressor {
    pub(crate) fn new(
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
        segments: SegmentSet,
        cache: Arc<BlockCache>,
        remote: Option<Arc<dyn crate::RemoteSegments>>,
    ) -> Compressor {
        Compressor {
            fs,
            dir,
            segments,
            cache,
            remote,
            busy: Arc::new(Mutex::new(())),
        }
    }

    /// Holds off every other pass (compression, rewrites) while held.
    pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.busy.lock()
    }

    pub(crate) fn segments(&self) -> &SegmentSet {
        &self.segments
    }

    pub(crate) fn fs(&self) -> &dyn FileSystem {
        self.fs.as_ref()
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn remote(&self) -> Option<&Arc<dyn crate::RemoteSegments>> {
        self.remote.as_ref()
    }

    /// The block cache of the log's compressed segments.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Compresses every sealed segment not compressed yet, oldest first.
    /// With `bytes_per_sec`, sleeps after each segment so that on average
    /// no more than that many original bytes are rewritten per second.
    /// Stops early, between two segments, once `stop` says so (the
    /// background compactor has other work waiting).
    pub fn compress_sealed(
        &self,
        settings: Compression,
        bytes_per_sec: Option<u64>,
        stop: &dyn Fn() -> bool,
    ) -> Result<CompressReport> {
        let _busy = self.busy.lock();
        let mut report = CompressReport::default();
        for segment in self.segments.snapshot() {
            if !segment.is_sealed()
                || segment.compressed().is_some()
                || segment.evicted().is_some()
                || !self.is_complete(&segment)?
            {
                continue;
            }
            if stop() {
                break;
            }
            let started = crate::time::now();
            let (before, after) = self.compress(&segment, settings)?;
            report.segments += 1;
            report.bytes_before += before;
            report.bytes_after += after;
            if let Some(rate) = bytes_per_sec.filter(|&r| r > 0) {
                // Paced in short sleeps, so that `stop` is heard promptly.
                let due = started + Duration::from_secs_f64(before as f64 / rate as f64);
                while !stop() {
                    let Some(wait) = due.checked_duration_since(crate::time::now()) else {
                        break;
                    };
                    std::thread::sleep(wait.min(Duration::from_millis(20)));
                }
            }
        }
        Ok(report)
    }

    /// Whether every record of a sealed segment is published. The writer
    /// seals a segment when it rolls over, before the records of the group
    /// in flight are published (they are, once that group's sync returns);
    /// until then the published bounds stop short of what the segment's
    /// offset table, written durably at the seal, says it holds, and a
    /// rewrite from them would drop those records.
    pub(crate) fn is_complete(&self, segment: &Segment) -> Result<bool> {
        let first = segment.first_position();
        let table = SegmentTable::load(self.fs.as_ref(), &self.dir, first)
            .at(&table_path(&self.dir, first))?;
        let bounds = segment.bounds();
        Ok(table.is_some_and(|t| t.end == bounds.end && t.last_position == bounds.last_position))
    }

    /// Compresses `bytes` (a whole segment's, positions `first..=last`),
    /// checks that the result decompresses to them — the file written is
    /// about to become the only copy — writes it atomically at `path` and
    /// opens it through the log's block cache.
    pub(crate) fn write_compressed(
        &self,
        path: &Path,
        bytes: &Bytes,
        first: u64,
        last: u64,
        settings: Compression,
    ) -> Result<(Arc<dyn FileHandle>, CompressedSegment)> {
        let packed = zseg::compress(bytes, first, last, settings).at(path)?;
        let check = CompressedSegment::open(
            path.to_owned(),
            Bytes::copy_from_slice(&packed),
            Arc::new(BlockCache::new(0)),
        )?;
        if check.read_all()? != *bytes {
            return Err(WalError::Corruption {
                file: path.to_owned(),
                offset: 0,
                reason: "compressed segment does not decompress to the original".into(),
            });
        }
        drop(check);
        write_atomic(self.fs.as_ref(), path, &packed).at(path)?;
        let file = self.fs.open(path, OpenMode::Existing).at(path)?;
        let data = Bytes::from_owner(file.map().at(path)?);
        let z = CompressedSegment::open(path.to_owned(), data, self.cache.clone())?;
        Ok((file, z))
    }

    /// Rewrites one sealed segment compressed; returns its sizes before
    /// and after.
    fn compress(&self, segment: &Segment, settings: Compression) -> Result<(u64, u64)> {
        let bounds = segment.bounds();
        let original = segment.read(0, bounds.end)?;
        let plain_path = segment.path();
        let first = segment.first_position();
        let path = self.dir.join(zseg::compressed_file_name(first));
        let (file, z) =
            self.write_compressed(&path, &original, first, bounds.last_position, settings)?;
        let after = z.file_len();
        let block_size = z.layout().block_size;
        segment.set_compressed(file, Arc::new(z));
        self.fs.remove_file(&plain_path).at(&plain_path)?;
        self.fs.sync_dir(&self.dir).at(&self.dir)?;
        self.index_by_block(segment, &original, block_size)?;
        Ok((bounds.end, after))
    }

    /// Gives a segment just compressed an offset table with an entry per
    /// block (see `Segment::index_by_block`), in memory and in its table
    /// file. `original` holds its records, checked when they were
    /// compressed. The table file is a cache (recovery rebuilds it from
    /// the records, by block too): if writing it fails or a crash cuts it
    /// off, the sparser one it replaces is still right.
    fn index_by_block(&self, segment: &Segment, original: &Bytes, block_size: u32) -> Result<()> {
        let first = segment.first_position();
        let path = table_path(&self.dir, first);
        let Some(mut table) = SegmentTable::load(self.fs.as_ref(), &self.dir, first).at(&path)?
        else {
            return Ok(());
        };
        let mut starts = Vec::new();
        let mut at = SEGMENT_HEADER_LEN;
        while at < original.len() {
            match format::decode_record_head_only(&original.slice(at..), original.len() - at) {
                Frame::Record(r, total) => {
                    starts.push((r.meta.first_position, at as u64));
                    at += total;
                }
                // Checked when compressed: nothing else can be there.
                _ => break,
            }
        }
        table.entries = segment.reindex_by_block(block_size, starts);
        if let Err(e) = table.store(self.fs.as_ref(), &self.dir) {
            log::warn!(
                "the block-indexed offset table of {} was not written ({e}); the sparser one stays",
                path.display()
            );
        }
        Ok(())
    }
}

/// How recovery finds one segment on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentFile {
    /// A plain segment file.
    Plain(PathBuf),
    /// A compressed segment file.
    Compressed(PathBuf),
    /// The eviction marker of a segment whose bytes are in remote storage
    /// (see [`RemoteSegments`](crate::RemoteSegments)).
    Evicted(PathBuf),
}

/// The segments in a log directory listing, in position order, and the
/// leftovers of interrupted rewrites: a compressed file whose original
/// still exists, an eviction marker whose segment still exists (plain,
/// or compressed by an erasure's rewrite), and temporary files. See the
/// module documentation, and `remote`'s.
pub fn resolve_listing(dir: &Path, names: &[String]) -> (Vec<(u64, SegmentFile)>, Vec<PathBuf>) {
    use std::collections::BTreeSet;
    let mut plain = BTreeSet::new();
    let mut packed = BTreeSet::new();
    let mut evicted = BTreeSet::new();
    let mut garbage = Vec::new();
    for name in names {
        if let Some(first) = parse_segment_file_name(name) {
            plain.insert(first);
        } else if let Some(first) = zseg::parse_compressed_file_name(name) {
            packed.insert(first);
        } else if let Some(first) = parse_marker_file_name(name) {
            evicted.insert(first);
        } else if name.strip_suffix(".tmp").is_some_and(|n| {
            zseg::parse_compressed_file_name(n).is_some()
                || parse_segment_file_name(n).is_some()
                || parse_marker_file_name(n).is_some()
        }) {
            // An interrupted compression, rewrite or eviction.
            garbage.push(dir.join(name));
        }
    }
    let mut files = Vec::new();
    let all: BTreeSet<u64> = plain
        .union(&packed)
        .chain(evicted.iter())
        .copied()
        .collect();
    for first in all {
        if plain.contains(&first) {
            files.push((
                first,
                SegmentFile::Plain(dir.join(segment_file_name(first))),
            ));
            if packed.contains(&first) {
                garbage.push(dir.join(zseg::compressed_file_name(first)));
            }
        } else if packed.contains(&first) {
            let path = dir.join(zseg::compressed_file_name(first));
            files.push((first, SegmentFile::Compressed(path)));
        } else {
            files.push((first, SegmentFile::Evicted(marker_path(dir, first))));
            continue;
        }
        if evicted.contains(&first) {
            // An eviction interrupted before the segment file was removed,
            // or an evicted segment rewritten locally by an erasure: the
            // local file is whole, and wins.
            garbage.push(marker_path(dir, first));
        }
    }
    (files, garbage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_wins_and_temporaries_are_garbage() {
        let dir = Path::new("/w");
        let names: Vec<String> = [
            "00000000000000000001.zseg",
            "00000000000000000007.seg",
            "00000000000000000007.zseg",
            "00000000000000000009.seg",
            "00000000000000000009.zseg.tmp",
            "00000000000000000007.seg.tmp",
            "00000000000000000001.off",
            "00000000000000000007.evicted",
            "00000000000000000011.evicted",
            "00000000000000000012.evicted.tmp",
            "00000000000000000013.zseg",
            "00000000000000000013.evicted",
            "MANIFEST",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (files, garbage) = resolve_listing(dir, &names);
        assert_eq!(
            files,
            vec![
                (
                    1,
                    SegmentFile::Compressed(dir.join("00000000000000000001.zseg"))
                ),
                (7, SegmentFile::Plain(dir.join("00000000000000000007.seg"))),
                (9, SegmentFile::Plain(dir.join("00000000000000000009.seg"))),
                (
                    11,
                    SegmentFile::Evicted(dir.join("00000000000000000011.evicted"))
                ),
                (
                    13,
                    SegmentFile::Compressed(dir.join("00000000000000000013.zseg"))
                ),
            ]
        );
        assert_eq!(
            garbage,
            vec![
                dir.join("00000000000000000009.zseg.tmp"),
                dir.join("00000000000000000007.seg.tmp"),
                dir.join("00000000000000000012.evicted.tmp"),
                dir.join("00000000000000000007.zseg"),
                dir.join("00000000000000000007.evicted"),
                dir.join("00000000000000000013.evicted"),
            ]
        );
    }
}
