//! [`verify`]: every record of the log checked (frame and body checksums,
//! consecutive positions, the events decode), then every index run checked
//! against the log: it must hold exactly the postings the log's events give
//! for the positions it covers.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use gesta_compaction::flush::INDEX_DIR;
use gesta_compaction::manifest::{FILE_NAME, Manifest, ManifestError, RunEntry};
use gesta_index::{Key, Run, RunError};
use gesta_wal::TornTail;

use super::scan::{corruption, io_error, scan_log, segment_files};
use crate::codec::{decode_record, index_entries};
use crate::error::Result;

/// What [`verify`] checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segment files walked.
    pub segments: usize,
    /// Records (committed batches) whose checksums and events were checked.
    pub records: u64,
    /// Events decoded.
    pub events: u64,
    /// The last position in the log (0 when empty).
    pub last_position: u64,
    /// Bytes of segment files read.
    pub log_bytes: u64,
    /// Index runs checked against the log.
    pub runs: usize,
    /// Bytes of index runs read.
    pub run_bytes: u64,
    /// Postings of the runs compared with the log.
    pub postings: u64,
    /// A torn write at the end of the newest segment: not damage, but the
    /// remains of an interrupted append that the next open cuts off.
    pub torn_tail: Option<TornTail>,
}

/// The index run being compared with the log, and what the log says it
/// must hold.
struct Pending {
    entry: RunEntry,
    path: PathBuf,
    expected: BTreeMap<Key, Vec<u64>>,
}

/// Checks the store in `dir` without opening it (no lock, files opened
/// read-only, nothing repaired): every record's checksums, the positions'
/// order, that every event decodes, the offset tables of sealed segments,
/// the MANIFEST, and every index run — its own checksums and structure, and
/// that it holds exactly the postings of the log's events in the positions
/// it covers. Returns the first problem as [`Error::Corruption`] naming the
/// file and offset.
///
/// `progress` is called with the bytes checked so far and the total.
///
/// [`Error::Corruption`]: crate::Error::Corruption
pub fn verify(dir: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<VerifyReport> {
    let segments = segment_files(dir)?;
    let log_bytes: u64 = segments.iter().map(|s| s.len).sum();
    let manifest = load_manifest(dir)?;
    let index_dir = dir.join(INDEX_DIR);
    let mut runs = Vec::with_capacity(manifest.runs.len());
    let mut run_bytes = 0;
    for entry in &manifest.runs {
        let path = index_dir.join(&entry.name);
        run_bytes += std::fs::metadata(&path).map_err(io_error(&path))?.len();
        runs.push((entry.clone(), path));
    }
    let total = log_bytes + run_bytes;
    progress(0, total);

    let mut report = VerifyReport {
        log_bytes,
        run_bytes,
        ..VerifyReport::default()
    };
    let runs_done = Cell::new(0u64);
    let mut runs = runs.into_iter();
    let mut pending = runs.next().map(Pending::new);
    let mut decoded = Vec::new();
    let mut keys = Vec::new();
    let scanned = scan_log(
        dir,
        |record, path, offset| {
            decoded.clear();
            decode_record(record, &mut decoded).map_err(|e| {
                corruption(
                    path,
                    offset,
                    format!("the record's events do not decode: {e}"),
                )
            })?;
            report.events += decoded.len() as u64;
            let Some(current) = pending.as_mut() else {
                return Ok(());
            };
            if record.meta.first_position > current.entry.hi {
                return Ok(());
            }
            keys.clear();
            index_entries(record, current.entry.lo, &mut keys)?;
            keys.sort_by_key(|(_, position)| *position);
            let mut next = 0;
            loop {
                let Some(current) = pending.as_mut() else {
                    return Ok(());
                };
                while let Some((key, position)) = keys.get(next) {
                    if *position > current.entry.hi {
                        break;
                    }
                    let list = current.expected.entry(key.clone()).or_default();
                    if list.last() != Some(position) {
                        list.push(*position);
                    }
                    next += 1;
                }
                if record.meta.last_position() < current.entry.hi {
                    return Ok(());
                }
                let done = pending.take().map(|p| p.check()).transpose()?;
                if let Some((bytes, postings)) = done {
                    runs_done.set(runs_done.get() + bytes);
                    report.runs += 1;
                    report.postings += postings;
                }
                pending = runs.next().map(Pending::new);
            }
        },
        &mut |walked| progress(walked + runs_done.get(), total),
    )?;
    if let Some(p) = pending {
        return Err(corruption(
            &dir.join(FILE_NAME),
            0,
            format!(
                "index run {} covers positions {}..={}, but the log ends at {}",
                p.entry.name, p.entry.lo, p.entry.hi, scanned.last_position
            ),
        ));
    }
    progress(total, total);
    report.segments = scanned.segments;
    report.records = scanned.records;
    report.last_position = scanned.last_position;
    report.torn_tail = scanned.torn_tail;
    Ok(report)
}

fn load_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
        Err(e) => return Err(io_error(&path)(e)),
    };
    Manifest::decode(&bytes).map_err(|e| match e {
        ManifestError::Corrupt { offset, reason } => corruption(&path, offset, reason),
        ManifestError::Io(source) => io_error(&path)(source),
    })
}

impl Pending {
    fn new((entry, path): (RunEntry, PathBuf)) -> Pending {
        Pending {
            entry,
            path,
            expected: BTreeMap::new(),
        }
    }

    /// Opens the run (checking its checksum and structure) and compares its
    /// lists with the log's; returns its size and posting count.
    fn check(self) -> Result<(u64, u64)> {
        let path = &self.path;
        let bytes = Bytes::from(std::fs::read(path).map_err(io_error(path))?);
        let size = bytes.len() as u64;
        let run = Run::open(bytes).map_err(|e| {
            let (offset, reason) = match e {
                RunError::Corrupt { offset, reason } => (offset, reason.to_owned()),
                other => (0, other.to_string()),
            };
            corruption(path, offset, reason)
        })?;
        if run.covers() != (self.entry.lo, self.entry.hi) {
            return Err(corruption(
                path,
                0,
                format!(
                    "the run covers positions {:?}, the MANIFEST says {}..={}",
                    run.covers(),
                    self.entry.lo,
                    self.entry.hi
                ),
            ));
        }
        let mut expected = self.expected.into_iter();
        let mut postings = 0u64;
        for (key, list) in run.iter() {
            postings += list.len() as u64;
            match expected.next() {
                Some((k, l)) if k == key && l == list => {}
                Some((k, l)) if k == key => {
                    let at = list.iter().zip(&l).position(|(a, b)| a != b);
                    let detail = match at {
                        Some(i) => {
                            format!("its position #{i} is {}, the log says {}", list[i], l[i])
                        }
                        None => format!("it has {} positions, the log {}", list.len(), l.len()),
                    };
                    return Err(corruption(
                        path,
                        0,
                        format!("the run's list of {key:?} disagrees with the log: {detail}"),
                    ));
                }
                Some((k, _)) if k < key => {
                    return Err(corruption(
                        path,
                        0,
                        format!(
                            "the run lacks {k:?}, which events in the positions it covers carry"
                        ),
                    ));
                }
                _ => {
                    return Err(corruption(
                        path,
                        0,
                        format!(
                            "the run lists {key:?}, which no event in the positions it covers carries"
                        ),
                    ));
                }
            }
        }
        if let Some((k, _)) = expected.next() {
            return Err(corruption(
                path,
                0,
                format!("the run lacks {k:?}, which events in the positions it covers carry"),
            ));
        }
        if postings != run.postings() {
            return Err(corruption(
                path,
                0,
                format!(
                    "the run's lists hold {postings} positions, its footer says {}",
                    run.postings()
                ),
            ));
        }
        Ok((size, postings))
    }
}
