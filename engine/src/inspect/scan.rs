//! A read-only walk over the segments of a log, in position order, that
//! verifies every record as recovery does and hands each one on.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use gesta_wal::TornTail;
use gesta_wal::files::{CompressedSegment, Layout};
use gesta_wal::files::{SegmentFile as WalFile, resolve_listing};
use gesta_wal::format::{self, Frame, Record, SEGMENT_HEADER_LEN, SegmentHeader};

use crate::error::{Error, Result};

/// The log directory inside a store directory.
pub(crate) const WAL_DIR: &str = "wal";

/// Up to which position the log is known committed: what the MANIFEST
/// says the index covers (`covered`), or further if a run file in
/// `index/` is named for a later position — one a flush wrote before a
/// crash kept it from the MANIFEST, or one a damaged MANIFEST no longer
/// names. A run is written only once the log is durable up to its last
/// position (the log is synced before a memtable freezes), so a damaged
/// record at or below that point was committed: damage, never a torn
/// write to cut off.
pub(crate) fn committed_floor(dir: &Path, covered: u64) -> u64 {
    let named = std::fs::read_dir(dir.join(gesta_compaction::flush::INDEX_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".idx")?;
            // `<lo>-<hi>` or `<lo>-<hi>-purged<sequence>`, 20 digits each.
            let hi = stem.split('-').nth(1)?;
            (hi.len() == 20).then(|| hi.parse::<u64>().ok())?
        })
        .max()
        .unwrap_or(0);
    covered.max(named)
}

/// A segment file found in the log directory.
pub(crate) struct SegmentFile {
    pub first: u64,
    pub path: PathBuf,
    /// Its length on disk.
    pub len: u64,
    /// Whether it is a compressed segment (`.zseg`).
    pub compressed: bool,
}

impl SegmentFile {
    /// The segment's bytes: the file, or the compressed file decompressed
    /// (its blocks and index checked on the way) with its layout.
    pub fn contents(&self) -> Result<(Bytes, Option<Layout>)> {
        let bytes = Bytes::from(std::fs::read(&self.path).map_err(io_error(&self.path))?);
        if !self.compressed {
            return Ok((bytes, None));
        }
        let cache = std::sync::Arc::new(gesta_wal::BlockCache::new(0));
        let z = CompressedSegment::open(self.path.clone(), bytes, cache)?;
        if z.layout().first_position != self.first {
            return Err(corruption(
                &self.path,
                0,
                "compressed segment disagrees with its file name",
            ));
        }
        Ok((z.read_all()?, Some(z.layout().clone())))
    }
}

/// What a walk over the log found.
#[derive(Debug, Default)]
pub(crate) struct Scanned {
    pub segments: usize,
    pub records: u64,
    pub last_position: u64,
    pub first_timestamp_micros: Option<u64>,
    pub last_timestamp_micros: u64,
    pub torn_tail: Option<TornTail>,
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

pub(crate) fn corruption(path: &Path, offset: u64, reason: impl Into<String>) -> Error {
    Error::Corruption {
        file: path.to_owned(),
        offset,
        reason: reason.into(),
    }
}

/// Fails unless `dir` looks like a store directory (it has a log).
pub(crate) fn check_store_dir(dir: &Path) -> Result<()> {
    let wal = dir.join(WAL_DIR);
    if wal.is_dir() {
        return Ok(());
    }
    Err(Error::Io {
        path: dir.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no Gesta store here (it has no wal/ directory)",
        ),
    })
}

/// The error of an offline tool that meets an evicted segment: its bytes
/// are in remote storage, which the tools do not read.
fn evicted(path: &Path) -> Error {
    let marker = std::fs::read(path)
        .ok()
        .and_then(|b| gesta_wal::EvictedSegment::decode(&b).ok());
    match marker {
        Some(m) => Error::Evicted {
            file: path.to_owned(),
            first_position: m.first_position,
            last_position: m.last_position,
        },
        None => Error::Corruption {
            file: path.to_owned(),
            offset: 0,
            reason: "an eviction marker that does not decode".into(),
        },
    }
}

/// The segment files of the store in `dir`, in position order.
pub(crate) fn segment_files(dir: &Path) -> Result<Vec<SegmentFile>> {
    check_store_dir(dir)?;
    let wal = dir.join(WAL_DIR);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&wal).map_err(io_error(&wal))? {
        let entry = entry.map_err(io_error(&wal))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    // A compressed copy beside its original is the leftover of an
    // interrupted rewrite, which recovery deletes: the original counts.
    let (found, _leftovers) = resolve_listing(&wal, &names);
    let mut files = Vec::with_capacity(found.len());
    for (first, file) in found {
        let (path, compressed) = match file {
            WalFile::Plain(path) => (path, false),
            WalFile::Compressed(path) => (path, true),
            WalFile::Evicted(path) => return Err(evicted(&path)),
        };
        let len = std::fs::metadata(&path).map_err(io_error(&path))?.len();
        files.push(SegmentFile {
            first,
            path,
            len,
            compressed,
        });
    }
    Ok(files)
}

/// What a walk over the log hands its [`Visitor`]: every verified record,
/// every problem, and a summary of each sealed segment walked whole.
pub(crate) trait Visitor {
    /// A record whose checksums passed, found at `offset` of `path`.
    fn record(&mut self, record: &Record, path: &Path, offset: u64) -> Result<()>;

    /// Damage to the log, as [`Error::Corruption`] or [`Error::Io`]
    /// naming the segment. Returning the error stops the walk with it;
    /// returning `Ok` goes on with the next segment (the rest of this one
    /// is not walked, so positions may then jump).
    fn damage(&mut self, e: Error) -> Result<()> {
        Err(e)
    }

    /// A sealed segment whose every record was walked without damage.
    fn sealed(&mut self, _segment: &Sealed<'_>) -> Result<()> {
        Ok(())
    }

    /// The number of segment bytes walked so far.
    fn progress(&mut self, _walked: u64) {}
}

/// A sealed segment walked whole without damage: what its offset table
/// must agree with.
pub(crate) struct Sealed<'a> {
    pub file: &'a SegmentFile,
    /// The length of its contents (decompressed, for a `.zseg`).
    pub len: u64,
    /// The footer of a compressed segment.
    pub layout: Option<&'a Layout>,
    /// (first position, offset) of every record, in order.
    pub starts: &'a [(u64, u64)],
    /// Its last position.
    pub last_position: u64,
    /// Where its last record ends.
    pub end: u64,
    /// Commit time of its last record.
    pub last_timestamp_micros: u64,
}

/// Walks the log of the store in `dir`, calling `on_record` with each
/// verified record and `progress` with the number of segment bytes walked so
/// far. Follows recovery's rules: a bad record is a torn tail (reported, not
/// an error) only at the end of the newest segment with nothing but zeros
/// after it, and only at or after `replay_from` (the first position the
/// index does not cover; 1 for none); anything else is
/// [`Error::Corruption`] with file and offset, and stops the walk.
pub(crate) fn scan_log(
    dir: &Path,
    replay_from: u64,
    on_record: impl FnMut(&Record, &Path, u64) -> Result<()>,
    progress: &mut dyn FnMut(u64),
) -> Result<Scanned> {
    struct Strict<'p, F> {
        on_record: F,
        progress: &'p mut dyn FnMut(u64),
    }
    impl<F: FnMut(&Record, &Path, u64) -> Result<()>> Visitor for Strict<'_, F> {
        fn record(&mut self, record: &Record, path: &Path, offset: u64) -> Result<()> {
            (self.on_record)(record, path, offset)
        }
        fn progress(&mut self, walked: u64) {
            (self.progress)(walked)
        }
    }
    let files = segment_files(dir)?;
    walk_log(
        &files,
        replay_from,
        &mut Strict {
            on_record,
            progress,
        },
    )
}

/// Walks the segments `files` (those of one log, in position order) as
/// [`scan_log`] does, handing everything to `visitor`, which decides
/// whether damage stops the walk. Positions below `replay_from` are known
/// to be committed (the index covers them), so a bad record there is
/// damage even where it would otherwise pass for a torn write, as in
/// recovery.
pub(crate) fn walk_log(
    files: &[SegmentFile],
    replay_from: u64,
    visitor: &mut dyn Visitor,
) -> Result<Scanned> {
    let mut scanned = Scanned::default();
    let mut expected_next = 1u64;
    // After damage, the positions the rest of the damaged segment held are
    // unknown: the next segment's first position is taken as it is.
    let mut resync = false;
    let mut walked = 0u64;
    for (i, file) in files.iter().enumerate() {
        // A compressed segment is sealed, even if the one after it is gone.
        let newest = i + 1 == files.len() && !file.compressed;
        let at = Walk {
            newest,
            expected_next,
            resync,
            replay_from,
            walked,
        };
        match walk_segment(file, at, &mut scanned, visitor) {
            Ok(next) => {
                expected_next = next;
                resync = false;
            }
            Err(e) => {
                visitor.damage(e)?;
                resync = true;
            }
        }
        walked += file.len;
        visitor.progress(walked);
    }
    scanned.last_position = expected_next - 1;
    Ok(scanned)
}

/// Where a walk over the log is when it reaches a segment.
struct Walk {
    /// Whether it is the newest segment (plain, last).
    newest: bool,
    /// The position its first record must have.
    expected_next: u64,
    /// Whether the segment before was damaged, so that the position this
    /// one starts at is unknown.
    resync: bool,
    replay_from: u64,
    /// Segment bytes walked before it.
    walked: u64,
}

/// Whether the newest segment `file` is trimmed to the end its offset
/// table gives: a rollover does that only once the segment after it
/// exists, so that segment was lost (recovery refuses such a log too).
fn newer_segment_lost(path: &Path, file: &SegmentFile) -> bool {
    let wal = path.parent().unwrap_or(Path::new("."));
    std::fs::read(gesta_wal::files::table_path(wal, file.first))
        .ok()
        .and_then(|bytes| gesta_wal::files::SegmentTable::decode(&bytes))
        .is_some_and(|t| t.end == file.len && t.end > SEGMENT_HEADER_LEN as u64)
}

/// Walks one segment; returns the position expected after it.
fn walk_segment(
    file: &SegmentFile,
    at: Walk,
    scanned: &mut Scanned,
    visitor: &mut dyn Visitor,
) -> Result<u64> {
    let Walk {
        newest,
        mut expected_next,
        resync,
        replay_from,
        walked,
    } = at;
    let path = &file.path;
    let (bytes, layout) = file.contents()?;
    // Progress counts bytes on disk; a compressed segment's offsets are
    // into its decompressed bytes.
    let on_disk = |offset: usize| offset as u64 * file.len / (bytes.len() as u64).max(1);
    let header = match SegmentHeader::decode(&bytes) {
        Ok(h) => h,
        // Recovery removes a newest segment whose creation was cut short.
        Err(_) if newest && all_zero(bytes.get(SEGMENT_HEADER_LEN..).unwrap_or(&[])) => {
            return Ok(expected_next);
        }
        Err(e) => return Err(corruption(path, 0, e.to_string())),
    };
    if header.first_position != file.first {
        return Err(corruption(
            path,
            16,
            "segment header disagrees with its file name",
        ));
    }
    if resync && file.first > expected_next {
        expected_next = file.first;
    }
    if file.first != expected_next {
        let reason = if file.first > expected_next {
            format!(
                "segment starts at position {}, expected {expected_next}: a segment is missing",
                file.first
            )
        } else {
            format!(
                "segment starts at position {}, but the segments before it reach position {}",
                file.first,
                expected_next - 1
            )
        };
        return Err(corruption(path, 0, reason));
    }
    if newest && newer_segment_lost(path, file) {
        return Err(corruption(
            path,
            0,
            "the newest segment is trimmed to the end of its offset table, which a rollover \
             writes only once the segment after it exists: that segment is missing",
        ));
    }
    scanned.segments += 1;
    let mut starts = Vec::new();
    let mut last_timestamp_micros = 0;
    let mut offset = SEGMENT_HEADER_LEN;
    loop {
        let rest = bytes.slice(offset..);
        match format::decode_record(&rest) {
            Frame::Record(record, len) => {
                if record.meta.first_position != expected_next {
                    return Err(corruption(
                        path,
                        offset as u64,
                        format!(
                            "record starts at position {}, expected {expected_next}",
                            record.meta.first_position
                        ),
                    ));
                }
                visitor.record(&record, path, offset as u64)?;
                starts.push((record.meta.first_position, offset as u64));
                expected_next = record.meta.last_position() + 1;
                scanned.records += 1;
                scanned
                    .first_timestamp_micros
                    .get_or_insert(record.meta.timestamp_micros);
                scanned.last_timestamp_micros = record.meta.timestamp_micros;
                last_timestamp_micros = record.meta.timestamp_micros;
                offset += len;
                visitor.progress(walked + on_disk(offset));
            }
            Frame::End => {
                if let Some(at) = rest.iter().position(|&b| b != 0) {
                    return Err(corruption(
                        path,
                        (offset + at) as u64,
                        "data follows the end-of-log marker",
                    ));
                }
                break;
            }
            Frame::Invalid {
                reason,
                claimed_end,
                frame_ok,
            } => {
                if !gesta_wal::files::is_torn_write(&rest, claimed_end, frame_ok, newest) {
                    return Err(corruption(path, offset as u64, reason));
                }
                if expected_next < replay_from {
                    // The index holds this position, which only durable
                    // records reach: the record was committed, so it is
                    // damaged, not torn, and cutting it would lose it.
                    return Err(corruption(
                        path,
                        offset as u64,
                        format!(
                            "{reason}, in a record known to be committed (position {expected_next} is below the replay point {replay_from})"
                        ),
                    ));
                }
                let cut = rest.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
                scanned.torn_tail = Some(TornTail {
                    file: path.clone(),
                    offset: offset as u64,
                    bytes: cut as u64,
                    reason: reason.to_owned(),
                });
                break;
            }
        }
    }
    if let Some(layout) = &layout {
        check_footer(file, layout, &bytes, expected_next - 1)?;
    }
    if !newest {
        visitor.sealed(&Sealed {
            file,
            len: bytes.len() as u64,
            layout: layout.as_ref(),
            starts: &starts,
            last_position: expected_next - 1,
            end: offset as u64,
            last_timestamp_micros,
        })?;
    }
    Ok(expected_next)
}

/// Checks that a compressed segment's footer names the positions its
/// records hold: recovery trusts the footer with the offset table.
fn check_footer(
    file: &SegmentFile,
    layout: &Layout,
    bytes: &[u8],
    last_position: u64,
) -> Result<()> {
    if layout.last_position != last_position || layout.len != bytes.len() as u64 {
        return Err(corruption(
            &file.path,
            0,
            "compressed segment's footer disagrees with its records",
        ));
    }
    Ok(())
}

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}
