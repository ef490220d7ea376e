//! Opening the log: find the segments, verify every record, cut a torn tail
//! off the newest segment, and refuse anything else that is damaged.
//!
//! The rule that tells a torn write from corruption: the writer syncs each
//! group before it writes the next (in `Sync` mode) and syncs a segment before
//! it starts the next one, so only the end of the newest segment can hold a
//! write that was interrupted. A bad record there is torn when nothing but
//! zeros (the preallocated area) follows where the interrupted write could
//! have stopped: after the frame, if the frame fails its own checksum, or
//! after the extent its (checksummed, so trustworthy) length claims. A bad record anywhere else, or
//! one followed by written data, is corruption, and the log refuses to open
//! rather than silently skip acknowledged events.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::cache::BlockCache;
use crate::compress::{Compressor, SegmentFile, resolve_listing};
use crate::error::{IoContext, Result, WalError};
use crate::format::{self, Frame, Record, SEGMENT_HEADER_LEN, SEGMENT_VERSION, SegmentHeader};
use crate::io::{FileHandle, FileSystem, OpenMode, read_all};
use crate::reader::WalReader;
use crate::remote::{EvictedSegment, RemoteSegments};
use crate::segment::{Segment, SegmentSet};
use crate::table::{SegmentTable, table_path};
use crate::writer::{ActiveTail, WalOptions, WalWriter};
use crate::zseg::CompressedSegment;

/// A torn write found at the tail of the log and cut off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment it was found in.
    pub file: PathBuf,
    /// Offset of the first byte cut.
    pub offset: u64,
    /// How many non-zero bytes were discarded.
    pub bytes: u64,
    /// Why the record was rejected.
    pub reason: String,
}

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Number of segment files.
    pub segments: usize,
    /// Number of records (committed batches) scanned and verified.
    pub records: u64,
    /// Number of sealed segments opened from their offset table without a
    /// scan (their records are checksummed when read).
    pub tables_trusted: usize,
    /// The last position in the log (0 when empty).
    pub last_position: u64,
    /// A torn tail that was cut off, if any.
    pub torn_tail: Option<TornTail>,
    /// A newest segment whose creation was interrupted and which was
    /// replaced, if any.
    pub removed_partial_segment: Option<PathBuf>,
}

/// An opened log: the writer (for the committer thread), a reader handle,
/// and the report of what recovery did.
#[derive(Debug)]
pub struct OpenedWal {
    /// The single writer.
    pub writer: WalWriter,
    /// A reader; clone it freely.
    pub reader: WalReader,
    /// Rewrites sealed segments compressed; clone it freely.
    pub compressor: Compressor,
    /// What recovery found.
    pub report: RecoveryReport,
    /// Timestamp of the newest record (0 when empty).
    pub last_timestamp_micros: u64,
}

fn corruption(file: &Path, offset: u64, reason: impl Into<String>) -> WalError {
    WalError::Corruption {
        file: file.to_owned(),
        offset,
        reason: reason.into(),
    }
}

/// Recovery's torn-tail rule, shared with read-only walks of the log: a
/// record at the start of `rest` that failed its checks (`claimed_end` and
/// `frame_ok` as [`Frame::Invalid`] gives them) is
/// a torn write — not damage — only in the newest segment, and only if
/// nothing but zeros follows where an interrupted write would have stopped:
/// inside the frame when the frame is bad, inside the body (whose extent
/// the checked frame gives) when it is good.
pub fn is_torn_write(
    rest: &[u8],
    claimed_end: Option<usize>,
    frame_ok: bool,
    newest: bool,
) -> bool {
    let after = match (frame_ok, claimed_end) {
        (false, _) => Some(format::FRAME_LEN.min(rest.len())),
        (true, Some(end)) => Some(end.min(rest.len())),
        (true, None) => None,
    };
    newest && after.is_some_and(|a| all_zero(&rest[a..]))
}

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// Opens (creating if needed) the log in `dir`, verifying every record and
/// calling `on_record` for each one from `replay_from` on, in order.
///
/// The caller vouches that every position below `replay_from` was
/// committed durably (it has them in its on-disk index): a record there
/// that fails its checks is corruption even at the very end of the log,
/// where it would otherwise pass for a torn write and be cut off.
pub fn open(
    fs: Arc<dyn FileSystem>,
    dir: &Path,
    options: WalOptions,
    replay_from: u64,
    mut on_record: impl FnMut(&Record) -> Result<()>,
) -> Result<OpenedWal> {
    crate::io::create_dir_all_durably(fs.as_ref(), dir).at(dir)?;
    let (files, garbage) = resolve_listing(dir, &fs.list(dir).at(dir)?);
    if !garbage.is_empty() {
        for path in &garbage {
            log::warn!(
                "gesta-wal: removed the leftover of an interrupted segment rewrite: {}",
                path.display()
            );
            fs.remove_file(path).at(path)?;
        }
        fs.sync_dir(dir).at(dir)?;
    }
    let cache = Arc::new(BlockCache::new(options.block_cache_bytes));
    let coherent = fs.mmap_is_coherent();

    let segments = SegmentSet::default();
    let mut report = RecoveryReport::default();
    let mut scan = Scan {
        expected_next: 1,
        last_timestamp: 0,
        replay_from,
        on_record: &mut on_record,
    };
    let mut tail: Option<ActiveTail> = None;

    for (i, (first, found)) in files.iter().enumerate() {
        let first = *first;
        let newest = i + 1 == files.len();
        let (path, compressed) = match found {
            SegmentFile::Plain(path) => (path, false),
            SegmentFile::Compressed(path) => (path, true),
            SegmentFile::Evicted(path) => {
                let remote = options.remote.as_ref();
                let segment = open_evicted(&*fs, dir, path, first, remote, &mut scan, &mut report)?;
                segments.push(segment);
                continue;
            }
        };
        let file = fs.open(path, OpenMode::Existing).at(path)?;
        // A map reads the file without copying it where the file system
        // maps for real; elsewhere it is a copy, as a read would be.
        let mapped = Bytes::from_owner(file.map().at(path)?);
        let segment = Arc::new(Segment::new(first, path.clone(), file.clone(), coherent));
        let mut z = None;
        if compressed {
            let opened = CompressedSegment::open(path.clone(), mapped.clone(), cache.clone())?;
            if opened.layout().first_position != first {
                return Err(corruption(
                    path,
                    0,
                    "compressed segment disagrees with its file name",
                ));
            }
            let opened = Arc::new(opened);
            segment.set_compressed(file.clone(), opened.clone());
            // A rescan indexes it by block, as compression did.
            segment.index_by_block(opened.layout().block_size);
            z = Some(opened);
        }
        let len = z.as_ref().map_or(mapped.len() as u64, |z| z.layout().len);

        if !compressed && !check_header(&mapped, path, first, scan.expected_next, newest)? {
            // The rollover that created this segment was interrupted
            // before it was durable; nothing was ever written to it.
            drop((segment, file, mapped));
            fs.remove_file(path).at(path)?;
            fs.sync_dir(dir).at(dir)?;
            report.removed_partial_segment = Some(path.clone());
            break;
        }
        if compressed && first != scan.expected_next {
            return Err(missing_segment(path, first, scan.expected_next));
        }
        // A rollover (or a seal) trims a segment to its records and writes
        // its offset table only once the segment after it was created
        // durably: the newest segment trimmed to the end its table gives
        // means a newer segment existed and is gone, with every record it
        // held; appending here would give their positions to other
        // events. (A table that disagrees with the file's length is a
        // stale one — recovery writes one for a segment it took for
        // sealed before it removed a partial segment after it — and is
        // rebuilt as before.)
        if newest && !compressed {
            let table = SegmentTable::load(fs.as_ref(), dir, first).at(&table_path(dir, first))?;
            if table.is_some_and(|t| t.end == len && t.end > SEGMENT_HEADER_LEN as u64) {
                return Err(corruption(
                    path,
                    0,
                    "the newest segment is trimmed to the end of its offset table, which a \
                     rollover writes only once the segment after it exists: that segment is \
                     missing"
                        .to_string(),
                ));
            }
        }
        // A compressed segment is sealed by construction, even when the
        // segment after it was lost with an interrupted rollover.
        let sealed = !newest || compressed;
        if sealed {
            // A sealed segment whose records all lie before the replay point
            // and whose offset table is intact need not be scanned: opening
            // then costs time in proportion to the unflushed tail.
            let table = SegmentTable::load(fs.as_ref(), dir, first).at(&table_path(dir, first))?;
            let agrees = |t: &SegmentTable| {
                t.last_position < replay_from
                    && t.end == len
                    && z.as_ref()
                        .is_none_or(|z| z.layout().last_position == t.last_position)
            };
            if let Some(t) = table.filter(agrees) {
                scan.expected_next = t.last_position + 1;
                scan.last_timestamp = t.last_timestamp_micros;
                segment.load_table(t.entries, t.last_position, t.end);
                segment.seal();
                if !compressed {
                    segment.set_mapping(mapped);
                }
                segments.push(segment);
                report.tables_trusted += 1;
                continue;
            }
        }

        let bytes = match &z {
            Some(z) => z.read_all()?,
            None => mapped,
        };
        if compressed {
            check_header(&bytes, path, first, scan.expected_next, false)?;
        }
        let end = scan.records(&bytes, path, &segment, sealed, &mut report)?;
        if let Some(torn) = &report.torn_tail
            && !sealed
        {
            zero_torn_tail(file.as_ref(), path, &bytes, torn.offset)?;
        }
        if sealed {
            if let Some(z) = &z
                && (z.layout().last_position + 1 != scan.expected_next || z.layout().len != end)
            {
                return Err(corruption(
                    path,
                    0,
                    "compressed segment's footer disagrees with its records",
                ));
            }
            segment.seal();
            if !compressed {
                segment.set_mapping(bytes.clone());
            }
            store_table(fs.as_ref(), dir, &segment, scan.last_timestamp)?;
        } else {
            let mut version = SegmentHeader::version_of(&bytes);
            if version < SEGMENT_VERSION && end == SEGMENT_HEADER_LEN as u64 {
                // An empty segment of an older format, which the writer
                // would append to: it says it holds this format. A torn
                // rewrite is an unfinished creation to the next open.
                let header = SegmentHeader {
                    first_position: first,
                }
                .encode();
                file.write_at(&header, 0).at(path)?;
                file.sync_data().at(path)?;
                version = SEGMENT_VERSION;
            }
            if coherent {
                segment.set_mapping(bytes.clone());
            }
            tail = Some(ActiveTail {
                segment: segment.clone(),
                end,
                allocated: bytes.len() as u64,
                version,
            });
        }
        segments.push(segment);
    }
    let expected_next = scan.expected_next;
    let last_timestamp = scan.last_timestamp;

    let tail = match tail {
        Some(tail) => {
            // What was read may exist only in the page cache: the tail of a
            // log whose last sync failed, or a segment whose creation failed
            // before its directory entry was synced, read back without a
            // crash in between. The store is about to present those records
            // as committed and append after them, so make them durable first.
            let path = tail.segment.path();
            tail.segment.file().sync_data().at(&path)?;
            fs.sync_dir(dir).at(dir)?;
            tail
        }
        None => {
            let (segment, allocated) =
                WalWriter::create_segment(fs.as_ref(), dir, expected_next, options.preallocate)?;
            segments.push(segment.clone());
            ActiveTail {
                segment,
                end: SEGMENT_HEADER_LEN as u64,
                allocated,
                version: SEGMENT_VERSION,
            }
        }
    };
    report.segments = segments.len();
    report.last_position = expected_next - 1;
    let compressor = Compressor::new(
        fs.clone(),
        dir.to_owned(),
        segments.clone(),
        cache,
        options.remote.clone(),
    );
    let writer = WalWriter::resume(
        fs,
        dir.to_owned(),
        options,
        segments.clone(),
        tail,
        expected_next,
        last_timestamp,
    );
    Ok(OpenedWal {
        writer,
        reader: WalReader::new(segments),
        compressor,
        report,
        last_timestamp_micros: last_timestamp,
    })
}

/// Opens an evicted segment from its marker: from its offset table alone
/// when the table agrees with the marker and the caller's index covers
/// the segment (no byte is fetched), else by fetching it whole from the
/// remote, checking it against the marker's length and CRC-32, and
/// scanning its records as a sealed segment's. An evicted segment is
/// sealed, even when it is the newest file (a rollover after it was lost).
fn open_evicted<F: FnMut(&Record) -> Result<()>>(
    fs: &dyn FileSystem,
    dir: &Path,
    path: &Path,
    first: u64,
    remote: Option<&Arc<dyn RemoteSegments>>,
    scan: &mut Scan<'_, F>,
    report: &mut RecoveryReport,
) -> Result<Arc<Segment>> {
    let file = fs.open(path, OpenMode::Existing).at(path)?;
    let marker = EvictedSegment::decode(&read_all(file.as_ref()).at(path)?)
        .map_err(|reason| corruption(path, 0, reason))?;
    if marker.first_position != first {
        return Err(corruption(
            path,
            0,
            "eviction marker disagrees with its file name",
        ));
    }
    if first != scan.expected_next {
        return Err(missing_segment(path, first, scan.expected_next));
    }
    let Some(remote) = remote else {
        return Err(WalError::Evicted {
            file: path.to_owned(),
            first_position: marker.first_position,
            last_position: marker.last_position,
        });
    };
    let segment = Arc::new(Segment::new(first, path.to_owned(), file.clone(), false));
    segment.set_remote(path.to_owned(), file, remote.clone(), marker.clone());
    let table = SegmentTable::load(fs, dir, first).at(&table_path(dir, first))?;
    let agrees = |t: &SegmentTable| {
        t.last_position == marker.last_position
            && t.end == marker.len
            && t.last_position < scan.replay_from
    };
    if let Some(t) = table.filter(agrees) {
        scan.expected_next = t.last_position + 1;
        scan.last_timestamp = t.last_timestamp_micros;
        segment.load_table(t.entries, t.last_position, t.end);
        segment.seal();
        report.tables_trusted += 1;
        return Ok(segment);
    }
    let bytes = segment.read(0, marker.len)?;
    let crc = crc32fast::hash(&bytes);
    if crc != marker.crc {
        return Err(WalError::Remote {
            file: path.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the segment's bytes have CRC-32 {crc:08x}, its eviction marker says {:08x}",
                    marker.crc
                ),
            ),
        });
    }
    check_header(&bytes, path, first, scan.expected_next, false)?;
    let end = scan.records(&bytes, path, &segment, true, report)?;
    if end != marker.len || scan.expected_next != marker.last_position + 1 {
        return Err(corruption(
            path,
            0,
            "an evicted segment's records disagree with its eviction marker",
        ));
    }
    segment.seal();
    store_table(fs, dir, &segment, scan.last_timestamp)?;
    Ok(segment)
}

/// Stores the offset table of a sealed segment as the scan just indexed
/// it, unless the table on disk already says the same.
fn store_table(
    fs: &dyn FileSystem,
    dir: &Path,
    segment: &Segment,
    last_timestamp_micros: u64,
) -> Result<()> {
    let first = segment.first_position();
    let (entries, last_position, end) = segment.table_with(std::iter::empty());
    let table = SegmentTable {
        first_position: first,
        last_position,
        end,
        last_timestamp_micros,
        entries,
    };
    let path = table_path(dir, first);
    if SegmentTable::load(fs, dir, first).at(&path)?.as_ref() != Some(&table) {
        table.store(fs, dir).at(&path)?;
    }
    Ok(())
}

/// Checks a segment's header against its file name and the position the
/// log has reached. `Ok(false)`: the newest segment's creation was cut
/// short before anything was written to it.
fn check_header(
    bytes: &[u8],
    path: &Path,
    first: u64,
    expected_next: u64,
    newest: bool,
) -> Result<bool> {
    let header = match SegmentHeader::decode(bytes) {
        Ok(h) => h,
        Err(e) if newest && all_zero(bytes.get(SEGMENT_HEADER_LEN..).unwrap_or(&[])) => {
            log_partial(path, &e.to_string());
            return Ok(false);
        }
        Err(e) => return Err(corruption(path, 0, e.to_string())),
    };
    if header.first_position != first {
        return Err(corruption(
            path,
            16,
            "segment header disagrees with its file name",
        ));
    }
    if first != expected_next {
        return Err(missing_segment(path, first, expected_next));
    }
    Ok(true)
}

fn missing_segment(path: &Path, first: u64, expected_next: u64) -> WalError {
    corruption(
        path,
        0,
        format!(
            "segment starts at position {first}, expected {expected_next}: a segment is missing"
        ),
    )
}

/// The running state of recovery's walk over the records.
struct Scan<'a, F> {
    expected_next: u64,
    last_timestamp: u64,
    replay_from: u64,
    on_record: &'a mut F,
}

impl<F: FnMut(&Record) -> Result<()>> Scan<'_, F> {
    /// Verifies and publishes every record of one segment's `bytes`,
    /// returning the offset where they end. A torn write at the end of the
    /// newest segment (`sealed` false) is reported in `report`, not
    /// returned as an error; the caller zeroes it.
    fn records(
        &mut self,
        bytes: &Bytes,
        path: &Path,
        segment: &Segment,
        sealed: bool,
        report: &mut RecoveryReport,
    ) -> Result<u64> {
        let mut offset = SEGMENT_HEADER_LEN;
        loop {
            let rest = bytes.slice(offset..);
            match format::decode_record(&rest) {
                Frame::Record(record, len) => {
                    if record.meta.first_position != self.expected_next {
                        return Err(corruption(
                            path,
                            offset as u64,
                            format!(
                                "record starts at position {}, expected {}",
                                record.meta.first_position, self.expected_next
                            ),
                        ));
                    }
                    if record.meta.last_position() >= self.replay_from {
                        (self.on_record)(&record)?;
                    }
                    self.expected_next = record.meta.last_position() + 1;
                    self.last_timestamp = record.meta.timestamp_micros;
                    report.records += 1;
                    segment.publish(
                        record.meta.first_position,
                        record.meta.last_position(),
                        offset as u64,
                        (offset + len) as u64,
                    );
                    offset += len;
                }
                Frame::End => {
                    if !all_zero(&rest) {
                        return Err(corruption(
                            path,
                            offset as u64,
                            "data follows the end-of-log marker",
                        ));
                    }
                    return Ok(offset as u64);
                }
                Frame::Invalid {
                    reason,
                    claimed_end,
                    frame_ok,
                } => {
                    if !is_torn_write(&rest, claimed_end, frame_ok, !sealed) {
                        return Err(corruption(path, offset as u64, reason));
                    }
                    if self.expected_next < self.replay_from {
                        // The caller holds (indexes) positions up to the
                        // replay point, which only durable records reach:
                        // this record was committed, so it is damaged, not
                        // torn, and cutting it would lose it.
                        return Err(corruption(
                            path,
                            offset as u64,
                            format!(
                                "{reason}, in a record known to be committed (position {} is below the replay point {})",
                                self.expected_next, self.replay_from
                            ),
                        ));
                    }
                    let cut = rest.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1) as u64;
                    let torn = TornTail {
                        file: path.to_owned(),
                        offset: offset as u64,
                        bytes: cut,
                        reason: reason.to_owned(),
                    };
                    log_torn(&torn);
                    report.torn_tail = Some(torn);
                    return Ok(offset as u64);
                }
            }
        }
    }
}

/// Zeroes the torn bytes at `offset` so that the next open reads a clean
/// end there even if nothing is appended in between. The writes go back to
/// front, each synced, so that a crash during them (which may tear them
/// too) always leaves something that still reads as a torn tail or a clean
/// end: first the body (the frame still vouches for the length and zeros
/// follow), then the checksums (a bad frame with zeros after it), then the
/// length (zero: the end).
fn zero_torn_tail(file: &dyn FileHandle, path: &Path, bytes: &[u8], offset: u64) -> Result<()> {
    let rest = &bytes[offset as usize..];
    let cut = rest.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    for range in [
        format::FRAME_LEN.min(cut)..cut,
        4.min(cut)..format::FRAME_LEN.min(cut),
        0..4.min(cut),
    ] {
        if !range.is_empty() {
            file.write_at(&vec![0u8; range.len()], offset + range.start as u64)
                .at(path)?;
            file.sync_data().at(path)?;
        }
    }
    Ok(())
}

fn log_torn(t: &TornTail) {
    log::warn!(
        "gesta-wal: cut a torn write off the log tail: {} bytes at offset {} of {} ({})",
        t.bytes,
        t.offset,
        t.file.display(),
        t.reason
    );
}

fn log_partial(path: &Path, reason: &str) {
    log::warn!(
        "gesta-wal: removed a segment whose creation was interrupted: {} ({reason})",
        path.display()
    );
}
