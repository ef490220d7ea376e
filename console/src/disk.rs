//! What a store's files take on disk, from a walk of its directory (file
//! names and lengths only, nothing read): segments and how many are
//! compressed, index runs, everything summed, and the keys that have
//! snapshots. Cheap enough to run every second: its cost is the number of
//! files, not the events.

use std::io;
use std::path::Path;

/// What [`measure`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct DiskUse {
    /// Every file under the store's directory, summed.
    pub bytes_on_disk: u64,
    /// Segment files (`wal/*.seg`, `wal/*.zseg`).
    pub segments: usize,
    /// Those rewritten compressed (`.zseg`).
    pub compressed_segments: usize,
    /// The segments' total length (the newest is preallocated).
    pub segment_bytes: u64,
    /// On-disk index runs (`index/*.idx`).
    pub index_runs: usize,
    /// Their total length.
    pub index_bytes: u64,
    /// The keys with at least one snapshot directory, sorted.
    pub snapshot_keys: Vec<String>,
}

/// Walks the store in `dir`. Files that vanish during the walk (a
/// compaction replacing them) are skipped.
pub(crate) fn measure(dir: &Path) -> io::Result<DiskUse> {
    let mut disk = DiskUse {
        bytes_on_disk: total_bytes(dir)?,
        ..DiskUse::default()
    };
    for (name, len) in files(&dir.join("wal"))? {
        if name.ends_with(".seg") {
            disk.segments += 1;
            disk.segment_bytes += len;
        } else if name.ends_with(".zseg") {
            disk.segments += 1;
            disk.compressed_segments += 1;
            disk.segment_bytes += len;
        }
    }
    for (name, len) in files(&dir.join("index"))? {
        if name.ends_with(".idx") {
            disk.index_runs += 1;
            disk.index_bytes += len;
        }
    }
    disk.snapshot_keys = snapshot_keys(&dir.join("snapshots"))?;
    Ok(disk)
}

/// The regular files directly in `dir` with their lengths (none if `dir`
/// does not exist).
fn files(dir: &Path) -> io::Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for entry in entries(dir)? {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file()
            && let Ok(name) = entry.file_name().into_string()
        {
            out.push((name, meta.len()));
        }
    }
    Ok(out)
}

/// The entries of `dir`, none if it does not exist.
fn entries(dir: &Path) -> io::Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(rd) => Ok(rd.filter_map(|e| e.ok()).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The lengths of every file under `dir`, summed.
fn total_bytes(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in entries(dir)? {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            total += total_bytes(&entry.path())?;
        } else {
            total += meta.len();
        }
    }
    Ok(total)
}

/// A key from its directory name: the key's UTF-8 bytes in lowercase hex.
fn unhex(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// The snapshot keys under `dir` (`snapshots/`): `<hex key>/` directories,
/// and `long/<first half>/<second half>/` for keys too long for one name.
fn snapshot_keys(dir: &Path) -> io::Result<Vec<String>> {
    let mut keys = Vec::new();
    for entry in entries(dir)? {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name == "long" {
            for first in entries(&entry.path())? {
                let Ok(a) = first.file_name().into_string() else {
                    continue;
                };
                for second in entries(&first.path())? {
                    if let Ok(b) = second.file_name().into_string()
                        && let Some(key) = unhex(&format!("{a}{b}"))
                    {
                        keys.push(key);
                    }
                }
            }
        } else if let Some(key) = unhex(&name) {
            keys.push(key);
        }
    }
    keys.sort();
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_back_from_their_hex_names() {
        assert_eq!(unhex("636f75727365").as_deref(), Some("course"));
        assert_eq!(unhex("6"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn a_store_is_measured_from_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = gesta::Store::open(dir.path()).unwrap();
        store
            .append(vec![gesta::NewEvent::new("A", "{}").tag("t:1")])
            .unwrap();
        store.save_snapshot("course", 1, b"state").unwrap();
        store.flush_index().unwrap();
        let disk = measure(dir.path()).unwrap();
        assert_eq!(disk.segments, 1);
        assert_eq!(disk.compressed_segments, 0);
        assert!(disk.index_runs >= 1);
        assert!(disk.bytes_on_disk >= disk.segment_bytes + disk.index_bytes);
        assert_eq!(disk.snapshot_keys, ["course"]);
        store.close().unwrap();
    }
}
