//! A read-only walk over the segments of a log, in position order, that
//! verifies every record as recovery does and hands each one on.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use gesta_wal::TornTail;
use gesta_wal::format::{self, Frame, Record, SEGMENT_HEADER_LEN, SegmentHeader};
use gesta_wal::table::{SegmentTable, table_path};

use crate::error::{Error, Result};

/// The log directory inside a store directory.
pub(crate) const WAL_DIR: &str = "wal";

/// A segment file found in the log directory.
pub(crate) struct SegmentFile {
    pub first: u64,
    pub path: PathBuf,
    pub len: u64,
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
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&wal).map_err(io_error(&wal))? {
        let entry = entry.map_err(io_error(&wal))?;
        let name = entry.file_name();
        let Some(first) = name.to_str().and_then(format::parse_segment_file_name) else {
            continue;
        };
        let path = entry.path();
        let len = entry.metadata().map_err(io_error(&path))?.len();
        files.push(SegmentFile { first, path, len });
    }
    files.sort_unstable_by_key(|f| f.first);
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
        let newest = i + 1 == files.len();
        let path = &file.path;
        let bytes = Bytes::from(std::fs::read(path).map_err(io_error(path))?);
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
                    progress(walked + offset as u64);
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
        if !newest {
            check_table(dir, file, &starts, expected_next - 1, offset as u64)?;
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
    if table.first_position != file.first || table.end != file.len {
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

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}
