//! [`repair_index`]: rebuilding a store's index from its log, for when an
//! index run or the MANIFEST is damaged or lost. The log is the truth and
//! the index only a cache of it, so the repair is exact — but it is never
//! done behind the user's back: opening a store with a damaged index fails
//! with [`Error::Corruption`], and only this explicit repair (`gesta verify
//! --repair`) throws the index away. A damaged log is not repaired: no
//! guess about lost events is safe.

use std::path::{Path, PathBuf};

use gesta_compaction::manifest::FILE_NAME as MANIFEST;
use gesta_wal::io::{FileSystem, StdFs};

use crate::error::{Error, Result};
use crate::options::Options;
use crate::store::Store;

/// What [`repair_index`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// The files removed: the MANIFEST and every index run.
    pub removed: Vec<PathBuf>,
    /// Events the rebuilt index covers (the log's head).
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

/// Removes the MANIFEST and every index run of the store in `dir`, then
/// opens the store — which replays the whole log into memory — and writes
/// the index again as a fresh run. Takes the store's lock first
/// ([`Error::Locked`] if another process has it open); fails, changing
/// nothing, if the log itself does not recover.
pub fn repair_index(dir: &Path) -> Result<RepairReport> {
    let fs = StdFs;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let mut removed = Vec::new();
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
        // Check the log before touching anything: recovery's own scan,
        // without the index (an empty replay point), read-only.
        super::scan::scan_log(dir, |_, _, _| Ok(()), &mut |_| {})?;
        let manifest = dir.join(MANIFEST);
        if fs.exists(&manifest).map_err(io(&manifest))? {
            fs.remove_file(&manifest).map_err(io(&manifest))?;
            removed.push(manifest);
        }
        let index = dir.join("index");
        if fs.exists(&index).map_err(io(&index))? {
            for name in fs.list(&index).map_err(io(&index))? {
                let path = index.join(name);
                fs.remove_file(&path).map_err(io(&path))?;
                removed.push(path);
            }
            fs.sync_dir(&index).map_err(io(&index))?;
        }
        fs.sync_dir(dir).map_err(io(dir))?;
        drop(lock);
    }
    let store = Store::open_with(dir, Options::default())?;
    store.flush_index()?;
    let events = store.head();
    store.close()?;
    Ok(RepairReport { removed, events })
}
