//! Writing an index run file and removing files the MANIFEST no longer
//! names.
//!
//! A run becomes part of the store in three durable steps: the run file is
//! written and fsynced under a temporary name and renamed to its final name,
//! the directory is fsynced, and only then is the MANIFEST switched to list
//! it (a merge deletes the runs it replaced only after that switch). A crash before the switch
//! leaves an orphaned file that the next open removes; a crash after leaves
//! a complete run. The log stays the truth throughout.

use std::io;
use std::path::Path;

use gesta_wal::io::{FileSystem, OpenMode, create_dir_all_durably};

/// The directory of index runs inside a store directory.
pub const INDEX_DIR: &str = "index";

/// The file name of the run covering `lo..=hi`.
pub fn run_file_name(lo: u64, hi: u64) -> String {
    format!("{lo:020}-{hi:020}.idx")
}

/// The file name of a run covering `lo..=hi` written by a merge that
/// purged the removals up to journal entry `sequence`: a name of its own,
/// so that rewriting a single run never replaces the file the MANIFEST
/// still lists before it is switched.
pub fn purged_run_file_name(lo: u64, hi: u64, sequence: u64) -> String {
    format!("{lo:020}-{hi:020}-purged{sequence}.idx")
}

/// Writes `bytes` as the run file `name` in `index_dir`, durably: into a
/// temporary file first, renamed into place once synced, so that the name
/// never holds a partial run even when a failed MANIFEST switch is retried.
pub fn write_run_file(
    fs: &dyn FileSystem,
    index_dir: &Path,
    name: &str,
    bytes: &[u8],
) -> io::Result<()> {
    write_run_file_paced(fs, index_dir, name, bytes, None)
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

/// Like [`write_run_file`], but writes at most `bytes_per_sec` (when given)
/// by writing in 1 MiB pieces and sleeping between them, so that a large
/// merge does not starve the log's writes of disk bandwidth.
pub fn write_run_file_paced(
    fs: &dyn FileSystem,
    index_dir: &Path,
    name: &str,
    bytes: &[u8],
    bytes_per_sec: Option<u64>,
) -> io::Result<()> {
    const PIECE: usize = 1 << 20;
    create_dir_all_durably(fs, index_dir)?;
    let tmp = index_dir.join(format!("{name}.tmp"));
    let file = fs.open(&tmp, OpenMode::Truncate)?;
    let started = gesta_wal::time::now();
    let mut written = 0u64;
    for piece in bytes.chunks(PIECE) {
        file.write_at(piece, written)?;
        written += piece.len() as u64;
        if let Some(rate) = bytes_per_sec.filter(|&r| r > 0) {
            let due = std::time::Duration::from_secs_f64(written as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    file.sync_data()?;
    drop(file);
    fs.rename(&tmp, &index_dir.join(name))?;
    fs.sync_dir(index_dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gesta_wal::io::fault::FaultFs;
    use gesta_wal::io::read_all;

    #[test]
    fn paced_writes_keep_to_the_rate_and_leave_no_temporary_file() {
        let fs = FaultFs::new();
        let dir = Path::new("/index");
        let bytes: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
        let started = gesta_wal::time::now();
        write_run_file_paced(&fs, dir, "r.idx", &bytes, Some(30 << 20)).unwrap();
        // 3 MiB at 30 MiB/s: at least 100 ms.
        assert!(started.elapsed() >= std::time::Duration::from_millis(95));
        assert_eq!(fs.list(dir).unwrap(), vec!["r.idx".to_owned()]);
        let file = fs.open(&dir.join("r.idx"), OpenMode::Existing).unwrap();
        assert_eq!(read_all(file.as_ref()).unwrap(), bytes);
        assert_eq!(
            remove_orphans(&fs, dir, &["r.idx"]).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(remove_orphans(&fs, dir, &[]).unwrap(), vec!["r.idx"]);
    }
}
