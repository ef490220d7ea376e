//! Searching a store's files byte for byte, as the erasure tests do: every
//! file under a directory, each as stored and as a reader of its format
//! sees it (compressed segments decompressed, snapshots decoded).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

/// Every file under `dir`, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Whether `haystack` holds `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A file's bytes as stored, and as a reader of its format sees them:
/// a compressed segment decompressed, a snapshot decoded.
pub fn readable_bytes(path: &Path) -> Vec<Vec<u8>> {
    let raw = std::fs::read(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut views = vec![raw.clone()];
    if name.ends_with(".zseg") {
        let z = gesta_wal::files::CompressedSegment::open(
            path.to_owned(),
            Bytes::from(raw),
            Arc::new(gesta_wal::BlockCache::new(0)),
        )
        .unwrap();
        views.push(z.read_all().unwrap().to_vec());
    } else if name.ends_with(".snap") {
        let (_, snapshot) = gesta_compaction::snapshot::decode(&raw).unwrap();
        views.push(snapshot.state.to_vec());
    }
    views
}

/// The files under `dir` that hold `needle`, in any of their readable
/// forms.
pub fn holders(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files(dir)
        .into_iter()
        .filter(|p| readable_bytes(p).iter().any(|b| contains(b, needle)))
        .collect()
}
