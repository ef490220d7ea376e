//! [`repair`]: rebuilding from the log what verification found damaged
//! and can be rebuilt — the index (an index run or the MANIFEST damaged or
//! lost) and sealed segments' offset tables. The log is the truth and the
//! index only a cache of it, so the repair is exact — but it is never done
//! behind the user's back: opening a store with a damaged index fails with
//! [`Error::Corruption`], and only this explicit repair (`gesta verify
//! --repair`) throws the index away. An offset table is a cache that
//! recovery checks and rebuilds by itself when it is damaged or missing;
//! the repair rebuilds it at once, and also one whose checksum is intact
//! but whose contents are wrong, which recovery would trust. A damaged log
//! is not repaired: no guess about lost events is safe.

use std::path::{Path, PathBuf};

use gesta_compaction::manifest::{FILE_NAME as MANIFEST, Manifest};
use gesta_wal::io::{FileSystem, StdFs};

use super::verify::{Part, VerifyReport};
use crate::error::{Error, Result};
use crate::options::Options;
use crate::store::Store;

/// What [`repair`] (or [`repair_index`]) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// The index files removed (the MANIFEST and every index run) when the
    /// index was rebuilt; empty otherwise.
    pub removed: Vec<PathBuf>,
    /// Whether the index was thrown away and rebuilt from the log.
    pub index_rebuilt: bool,
    /// The offset tables removed and written again from their segments.
    pub tables_rebuilt: Vec<PathBuf>,
    /// Events the store holds (the log's head).
    pub events: u64,
}

/// Whether `e` names a file of the index (the MANIFEST or a run) rather
/// than of the log: what [`repair_index`] can fix.
pub fn is_index_damage(dir: &Path, e: &Error) -> bool {
    let file = match e {
        Error::Corruption { file, .. } => file,
        Error::Io { path, .. } => path,
        _ => return false,
    };
    file == &dir.join(MANIFEST) || file.starts_with(dir.join("index"))
}

/// Repairs what `report` (from [`verify`](super::verify())) found in the
/// store in `dir`: when it found damage to the index, removes the MANIFEST
/// and every index run and rebuilds them from the log (as
/// [`repair_index`]); it removes every offset table it found damaged,
/// missing or wrong, and the open that follows writes them again from
/// their segments. Takes the store's lock first ([`Error::Locked`] if
/// another process has it open). When `report` found damage to the log,
/// or the log does not recover now, it fails with that damage as
/// [`Error::Corruption`], changing nothing.
pub fn repair(dir: &Path, report: &VerifyReport) -> Result<RepairReport> {
    if let Some(f) = report.findings_in(Part::Log).next() {
        return Err(Error::Corruption {
            file: f.file.clone(),
            offset: f.offset.unwrap_or(0),
            reason: f.problem.clone(),
        });
    }
    let index = report.findings_in(Part::Index).next().is_some();
    let tables: Vec<PathBuf> = report
        .findings_in(Part::OffsetTable)
        .map(|f| f.file.clone())
        .collect();
    rebuild(dir, index, &tables)
}

/// Removes the MANIFEST and every index run of the store in `dir`, then
/// opens the store — which replays the whole log into memory, and checks
/// every sealed segment's offset table against its segment, writing it
/// again when it differs — and writes the index again as a fresh run.
/// Takes the store's lock first ([`Error::Locked`] if another process has
/// it open); fails, changing nothing, if the log itself does not recover.
pub fn repair_index(dir: &Path) -> Result<RepairReport> {
    rebuild(dir, true, &[])
}

/// Under the store's lock: checks the log, removes the index if `index`
/// and the offset tables `tables`; then opens the store, which rebuilds
/// what was removed.
fn rebuild(dir: &Path, index: bool, tables: &[PathBuf]) -> Result<RepairReport> {
    let fs = StdFs;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let mut report = RepairReport {
        index_rebuilt: index,
        ..RepairReport::default()
    };
    {
        let lock = fs.lock(&dir.join("LOCK")).map_err(|source| {
            if source.kind() == std::io::ErrorKind::WouldBlock {
                Error::Locked {
                    path: dir.to_owned(),
                }
            } else {
                Error::Io {
                    path: dir.join("LOCK"),
                    source,
                }
            }
        })?;
        // Check the log before touching anything, read-only, by
        // recovery's rules: up to what the index covers every record must
        // be intact, since those were committed; only after it may a torn
        // tail be cut. The run files say how far, when the MANIFEST
        // cannot (a damaged MANIFEST must not turn a committed record
        // into a torn write that opening the store would cut off).
        let covered = std::fs::read(dir.join(MANIFEST))
            .ok()
            .and_then(|b| Manifest::decode(&b).ok())
            .map_or(0, |m| m.covered());
        let covered = super::scan::committed_floor(dir, covered);
        super::scan::scan_log(dir, covered + 1, |_, _, _| Ok(()), &mut |_| {})?;
        let wal = dir.join(super::scan::WAL_DIR);
        for table in tables {
            // Only offset tables of this store's log are removed.
            if table.parent() != Some(wal.as_path()) || table.extension().is_none_or(|e| e != "off")
            {
                continue;
            }
            if fs.exists(table).map_err(io(table))? {
                fs.remove_file(table).map_err(io(table))?;
            }
            report.tables_rebuilt.push(table.clone());
        }
        if !report.tables_rebuilt.is_empty() {
            fs.sync_dir(&wal).map_err(io(&wal))?;
        }
        if index {
            let manifest = dir.join(MANIFEST);
            if fs.exists(&manifest).map_err(io(&manifest))? {
                fs.remove_file(&manifest).map_err(io(&manifest))?;
                report.removed.push(manifest);
            }
            let index = dir.join("index");
            if fs.exists(&index).map_err(io(&index))? {
                for name in fs.list(&index).map_err(io(&index))? {
                    let path = index.join(name);
                    fs.remove_file(&path).map_err(io(&path))?;
                    report.removed.push(path);
                }
                fs.sync_dir(&index).map_err(io(&index))?;
            }
            fs.sync_dir(dir).map_err(io(dir))?;
        }
        drop(lock);
    }
    let store = Store::open_with(dir, Options::default())?;
    if index {
        store.flush_index()?;
    }
    report.events = store.head();
    store.close()?;
    Ok(report)
}
