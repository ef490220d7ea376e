//! A read-only walk over the segments of a log, in position order, that
//! verifies every record as recovery does and hands each one on.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use gesta_wal::TornTail;
use gesta_wal::compress::{SegmentFile as WalFile, resolve_listing};
use gesta_wal::format::{self, Frame, Record, SEGMENT_HEADER_LEN, SegmentHeader};
use gesta_wal::table::{SegmentTable, table_path};
use gesta_wal::zseg::{CompressedSegment, Layout};

use crate::error::{Error, Result};

/// The log directory inside a store directory.
pub(crate) const WAL_DIR: &str = "wal";

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
        let cache = std::sync::Arc::new(gesta_wal::cache::BlockCache::new(0));
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

/// Walks the log of the store in `dir`, calling `on_record` with each
/// verified record and `progress` with the number of segment bytes walked so
/// far. Follows recovery's rules: a bad record is a torn tail (reported, not
/// an error) only at the end of the newest segment with nothing but zeros
/// after it; anything else is [`Error::Corruption`] with file and offset.
/// Sealed segments' offset tables, when present and intact, must agree with
/// the records, because recovery trusts them.
pub(crate) fn scan_log(
    dir: &Path,
    mut on_record: impl FnMut(&Record, &Path, u64) -> Result<()>,
    progress: &mut dyn FnMut(u64),
) -> Result<Scanned> {
    let files = segment_files(dir)?;
    let mut scanned = Scanned::default();
    let mut expected_next = 1u64;
    let mut walked = 0u64;
    for (i, file) in files.iter().enumerate() {
        // A compressed segment is sealed, even if the one after it is gone.
        let newest = i + 1 == files.len() && !file.compressed;
        let path = &file.path;
        let (bytes, layout) = file.contents()?;
        // Progress counts bytes on disk; a compressed segment's offsets are
        // into its decompressed bytes.
        let on_disk = |offset: usize| offset as u64 * file.len / (bytes.len() as u64).max(1);
        let header = match SegmentHeader::decode(&bytes) {
            Ok(h) => h,
            // Recovery removes a newest segment whose creation was cut short.
            Err(_) if newest && all_zero(bytes.get(SEGMENT_HEADER_LEN..).unwrap_or(&[])) => break,
            Err(e) => return Err(corruption(path, 0, e.to_string())),
        };
        if header.first_position != file.first {
            return Err(corruption(
                path,
                16,
                "segment header disagrees with its file name",
            ));
        }
        if file.first != expected_next {
            return Err(corruption(
                path,
                0,
                format!(
                    "segment starts at position {}, expected {expected_next}: a segment is missing",
                    file.first
                ),
            ));
        }
        scanned.segments += 1;
        let mut starts = Vec::new();
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
                    on_record(&record, path, offset as u64)?;
                    starts.push((record.meta.first_position, offset as u64));
                    expected_next = record.meta.last_position() + 1;
                    scanned.records += 1;
                    scanned
                        .first_timestamp_micros
                        .get_or_insert(record.meta.timestamp_micros);
                    scanned.last_timestamp_micros = record.meta.timestamp_micros;
                    offset += len;
                    progress(walked + on_disk(offset));
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
                    if !gesta_wal::recovery::is_torn_write(&rest, claimed_end, frame_ok, newest) {
                        return Err(corruption(path, offset as u64, reason));
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
        if let Some(layout) = layout {
            check_footer(file, &layout, &bytes, expected_next - 1)?;
        }
        if !newest {
            check_table(
                dir,
                file,
                bytes.len() as u64,
                &starts,
                expected_next - 1,
                offset as u64,
            )?;
        }
        walked += file.len;
        progress(walked);
    }
    scanned.last_position = expected_next - 1;
    Ok(scanned)
}

/// Checks a sealed segment's offset table, if it has an intact one, against
/// what the walk found: recovery trusts such a table instead of scanning.
fn check_table(
    dir: &Path,
    file: &SegmentFile,
    len: u64,
    starts: &[(u64, u64)],
    last_position: u64,
    end: u64,
) -> Result<()> {
    let wal = dir.join(WAL_DIR);
    let path = table_path(&wal, file.first);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(&path)(e)),
    };
    // A table that fails its own checks is ignored by recovery, which then
    // scans the segment and writes the table again: harmless.
    let Some(table) = SegmentTable::decode(&bytes) else {
        return Ok(());
    };
    if table.first_position != file.first || table.end != len {
        return Ok(());
    }
    if table.last_position != last_position || table.end != end {
        return Err(corruption(
            &path,
            24,
            format!(
                "offset table says the segment ends at position {} and byte {}, its records at {last_position} and {end}",
                table.last_position, table.end
            ),
        ));
    }
    for (i, entry) in table.entries.iter().enumerate() {
        if starts.binary_search(entry).is_err() {
            return Err(corruption(
                &path,
                48 + 16 * i as u64,
                format!(
                    "offset table entry (position {}, offset {}) is not the start of a record",
                    entry.0, entry.1
                ),
            ));
        }
    }
    Ok(())
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
