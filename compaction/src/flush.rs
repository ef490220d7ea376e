//! Writing an index run file and removing files the MANIFEST no longer
//! names.
//!
//! A run becomes part of the store in three durable steps: the run file is
//! written and fsynced under its final name, the directory is fsynced, and
//! only then is the MANIFEST switched to list it. A crash before the switch
//! leaves an orphaned file that the next open removes; a crash after leaves
//! a complete run. The log stays the truth throughout.

use std::io;
use std::path::Path;

use gesta_wal::io::{FileSystem, OpenMode};

/// The directory of index runs inside a store directory.
pub const INDEX_DIR: &str = "index";

/// The file name of the run covering `lo..=hi`.
pub fn run_file_name(lo: u64, hi: u64) -> String {
    format!("{lo:020}-{hi:020}.idx")
}

/// Writes `bytes` as the run file `name` in `index_dir`, durably.
pub fn write_run_file(
    fs: &dyn FileSystem,
    index_dir: &Path,
    name: &str,
    bytes: &[u8],
) -> io::Result<()> {
    fs.create_dir_all(index_dir)?;
    let path = index_dir.join(name);
    let file = fs.open(&path, OpenMode::Truncate)?;
    file.write_at(bytes, 0)?;
    file.sync_data()?;
    drop(file);
    fs.sync_dir(index_dir)
}

/// Removes every file in `index_dir` that `keep` does not name (runs from a
/// flush or merge that crashed before its MANIFEST switch, temporary files).
/// Returns the names removed.
pub fn remove_orphans(
    fs: &dyn FileSystem,
    index_dir: &Path,
    keep: &[&str],
) -> io::Result<Vec<String>> {
    if !fs.exists(index_dir)? {
        return Ok(Vec::new());
    }
    let mut removed = Vec::new();
    for name in fs.list(index_dir)? {
        if !keep.contains(&name.as_str()) {
            fs.remove_file(&index_dir.join(&name))?;
            removed.push(name);
        }
    }
    if !removed.is_empty() {
        fs.sync_dir(index_dir)?;
    }
    Ok(removed)
}
