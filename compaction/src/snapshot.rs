//! Snapshots: opaque state saved for a key at a position, so that rebuilding
//! it means reading the newest snapshot and folding only the events after
//! it, not replaying the whole log.
//!
//! Each snapshot is one file, `snapshots/<hex(key)>/<position>.snap`
//! (`snapshots/long/<first half of hex(key)>/<second half>/…` for keys
//! of more than 127 bytes, whose hex is too long for one file name),
//! zstd-compressed and checksummed (see `docs/FORMAT.md`), written through
//! the [`FileSystem`] seam atomically: a temporary file, fsynced, renamed
//! into place, the directory fsynced. A crash leaves the old set of
//! snapshots or the new one, plus at most a `.tmp` file that listing
//! ignores and [`Snapshots::sweep`] removes. A file that fails its checks is
//! reported as corrupt, naming it, never skipped in favour of an older one.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gesta_wal::format::{u32_at, u64_at};
use gesta_wal::io::{FileSystem, OpenMode, create_dir_all_durably, read_all, write_atomic};

const MAGIC: [u8; 8] = *b"GESTASNP";
const VERSION: u32 = 1;
/// Bytes before the key: magic, version, reserved, position, key length.
const FIXED: usize = 8 + 4 + 4 + 8 + 2;
/// The snapshot directory inside a store directory.
pub const SNAPSHOT_DIR: &str = "snapshots";
/// The longest key, in bytes.
pub const MAX_KEY_LEN: usize = 255;
/// The largest state a snapshot holds.
pub const MAX_STATE_LEN: usize = 256 << 20;
/// zstd's compression level: fast, and still several times smaller for
/// typical JSON-like state.
const LEVEL: i32 = 3;

/// Why a snapshot operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file system failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A snapshot file fails a check.
    #[error("snapshot {} corrupt at offset {offset}: {reason}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the problem.
        offset: u64,
        /// What check failed.
        reason: &'static str,
    },
}

/// A loaded snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The position (or stream revision) it was saved at.
    pub position: u64,
    /// The state, as saved.
    pub state: Vec<u8>,
}

/// Encodes a snapshot file.
pub fn encode(key: &str, position: u64, state: &[u8]) -> io::Result<Vec<u8>> {
    let compressed = zstd::bulk::compress(state, LEVEL)?;
    let mut out = Vec::with_capacity(FIXED + key.len() + 20 + compressed.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&position.to_le_bytes());
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&(state.len() as u64).to_le_bytes());
    out.extend_from_slice(&(compressed.len() as u64).to_le_bytes());
    out.extend_from_slice(&compressed);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Decodes and checks a snapshot file; returns its key and the snapshot.
/// Errors are `(offset, reason)`.
pub fn decode(b: &[u8]) -> Result<(String, Snapshot), (u64, &'static str)> {
    if b.len() < FIXED + 16 + 4 {
        return Err((0, "too short"));
    }
    let body = &b[..b.len() - 4];
    if crc32fast::hash(body) != u32_at(b, b.len() - 4) {
        return Err(((b.len() - 4) as u64, "checksum mismatch"));
    }
    if body[..8] != MAGIC {
        return Err((0, "wrong magic number"));
    }
    if u32_at(body, 8) != VERSION {
        return Err((8, "unsupported version"));
    }
    let position = u64_at(body, 16);
    let key_len = usize::from(u16::from_le_bytes([body[24], body[25]]));
    let at = FIXED + key_len;
    if at + 16 > body.len() {
        return Err((24, "key length past the end"));
    }
    let key = std::str::from_utf8(&body[FIXED..at])
        .map_err(|_| (FIXED as u64, "key is not UTF-8"))?
        .to_owned();
    let raw_len = u64_at(body, at);
    let compressed_len = u64_at(body, at + 8);
    let data = &body[at + 16..];
    if compressed_len != data.len() as u64 {
        return Err(((at + 8) as u64, "compressed length does not match the file"));
    }
    let raw_len = usize::try_from(raw_len)
        .ok()
        .filter(|&n| n <= MAX_STATE_LEN)
        .ok_or((at as u64, "state too large"))?;
    let state = zstd::bulk::decompress(data, raw_len)
        .map_err(|_| ((at + 16) as u64, "compressed state does not decompress"))?;
    if state.len() != raw_len {
        return Err((at as u64, "state length does not match"));
    }
    Ok((key, Snapshot { position, state }))
}

/// The longest key directory name: 255 bytes is the file name limit of
/// common file systems, so the hex of keys up to 127 bytes fits.
const MAX_DIR_NAME: usize = 254;
/// Where the directories of longer keys go: `long/<the first half of the
/// hex>/<the second half>` (each at most 255 digits, as keys are at most
/// 255 bytes). Not hex, so no key's own directory has this name.
const LONG_DIR: &str = "long";

/// The snapshot directory name of a key: the key's bytes in hex, so that
/// any key makes a valid, distinct file name (split in two levels under
/// [`LONG_DIR`] when longer than [`MAX_DIR_NAME`]).
fn key_dir_name(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The key a directory name stands for, if it is one [`key_dir_name`] made.
fn key_from_dir_name(name: &str) -> Option<String> {
    if !name.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..name.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(name.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?)
        .ok()
        .filter(|k| key_dir_name(k) == name)
}

/// The key and position of the snapshot file at `relative`, a path from
/// the store's directory with `/` separators as [`Snapshots::path`] makes
/// them (`snapshots/<hex key>/<position>.snap`, or under
/// `snapshots/long/` for a long key); `None` for any other path.
pub fn parse_path(relative: &str) -> Option<(String, u64)> {
    let rest = relative.strip_prefix(SNAPSHOT_DIR)?.strip_prefix('/')?;
    let parts: Vec<&str> = rest.split('/').collect();
    let (key, file) = match parts.as_slice() {
        [dir, file] => (key_from_dir_name(dir)?, *file),
        [long, head, rest, file]
            if *long == LONG_DIR && head.len() == rest.len() && head.len() * 2 > MAX_DIR_NAME =>
        {
            (key_from_dir_name(&format!("{head}{rest}"))?, *file)
        }
        _ => return None,
    };
    Some((key, parse_file_name(file)?))
}

fn file_name(position: u64) -> String {
    format!("{position:020}.snap")
}

fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".snap")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The snapshots of one store directory.
#[derive(Clone, Debug)]
pub struct Snapshots {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Snapshots {
    /// The snapshots under `store_dir/snapshots`.
    pub fn new(fs: Arc<dyn FileSystem>, store_dir: &Path) -> Snapshots {
        Snapshots {
            fs,
            dir: store_dir.join(SNAPSHOT_DIR),
        }
    }

    fn key_dir(&self, key: &str) -> PathBuf {
        let name = key_dir_name(key);
        if name.len() <= MAX_DIR_NAME {
            self.dir.join(name)
        } else {
            let (head, rest) = name.split_at(name.len() / 2);
            self.dir.join(LONG_DIR).join(head).join(rest)
        }
    }

    /// The directories of every key that has (or had) snapshots, with
    /// their keys.
    fn key_dirs(&self) -> Result<Vec<(String, PathBuf)>, SnapshotError> {
        let mut out = Vec::new();
        if !self.fs.exists(&self.dir).map_err(io_err(&self.dir))? {
            return Ok(out);
        }
        for name in self.fs.list(&self.dir).map_err(io_err(&self.dir))? {
            if let Some(key) = key_from_dir_name(&name) {
                out.push((key, self.dir.join(name)));
            }
        }
        let long = self.dir.join(LONG_DIR);
        if !self.fs.exists(&long).map_err(io_err(&long))? {
            return Ok(out);
        }
        for head in self.fs.list(&long).map_err(io_err(&long))? {
            let dir = long.join(&head);
            let Ok(rests) = self.fs.list(&dir) else {
                continue;
            };
            for rest in rests {
                if head.len() == rest.len()
                    && head.len() * 2 > MAX_DIR_NAME
                    && let Some(key) = key_from_dir_name(&format!("{head}{rest}"))
                {
                    out.push((key, dir.join(rest)));
                }
            }
        }
        Ok(out)
    }

    /// The path of the snapshot of `key` at `position`.
    pub fn path(&self, key: &str, position: u64) -> PathBuf {
        self.key_dir(key).join(file_name(position))
    }

    /// Saves `state` for `key` at `position`, replacing a snapshot at the
    /// same position, durably; then deletes all but the newest `keep`
    /// snapshots of the key (`keep == 0`: keep all).
    pub fn save(
        &self,
        key: &str,
        position: u64,
        state: &[u8],
        keep: usize,
    ) -> Result<(), SnapshotError> {
        let dir = self.key_dir(key);
        let path = dir.join(file_name(position));
        create_dir_all_durably(self.fs.as_ref(), &dir).map_err(io_err(&dir))?;
        let bytes = encode(key, position, state).map_err(io_err(&path))?;
        write_atomic(self.fs.as_ref(), &path, &bytes).map_err(io_err(&path))?;
        if keep > 0 {
            let positions = self.list(key)?;
            let excess = positions.len().saturating_sub(keep);
            for &old in positions.iter().take(excess) {
                self.delete(key, old)?;
            }
        }
        Ok(())
    }

    /// The positions of `key`'s snapshots, ascending.
    pub fn list(&self, key: &str) -> Result<Vec<u64>, SnapshotError> {
        let dir = self.key_dir(key);
        if !self.fs.exists(&dir).map_err(io_err(&dir))? {
            return Ok(Vec::new());
        }
        let mut positions: Vec<u64> = self
            .fs
            .list(&dir)
            .map_err(io_err(&dir))?
            .iter()
            .filter_map(|n| parse_file_name(n))
            .collect();
        positions.sort_unstable();
        Ok(positions)
    }

    /// Reads and checks the snapshot of `key` at exactly `position`.
    pub fn read(&self, key: &str, position: u64) -> Result<Snapshot, SnapshotError> {
        let path = self.path(key, position);
        let file = self
            .fs
            .open(&path, OpenMode::Existing)
            .map_err(io_err(&path))?;
        let bytes = read_all(file.as_ref()).map_err(io_err(&path))?;
        let corrupt = |(offset, reason)| SnapshotError::Corrupt {
            path: path.clone(),
            offset,
            reason,
        };
        let (stored_key, snapshot) = decode(&bytes).map_err(corrupt)?;
        if stored_key != key {
            return Err(corrupt((FIXED as u64, "snapshot of another key")));
        }
        if snapshot.position != position {
            return Err(corrupt((16, "position differs from the file name")));
        }
        Ok(snapshot)
    }

    /// The newest snapshot of `key` at or before `position`, if any.
    pub fn load(&self, key: &str, at_or_before: u64) -> Result<Option<Snapshot>, SnapshotError> {
        match self
            .list(key)?
            .into_iter()
            .rev()
            .find(|&p| p <= at_or_before)
        {
            Some(p) => self.read(key, p).map(Some),
            None => Ok(None),
        }
    }

    /// Deletes the snapshot of `key` at `position`; returns whether there
    /// was one.
    pub fn delete(&self, key: &str, position: u64) -> Result<bool, SnapshotError> {
        let dir = self.key_dir(key);
        let path = dir.join(file_name(position));
        if !self.fs.exists(&path).map_err(io_err(&path))? {
            return Ok(false);
        }
        self.fs.remove_file(&path).map_err(io_err(&path))?;
        self.fs.sync_dir(&dir).map_err(io_err(&dir))?;
        Ok(true)
    }

    /// Deletes every snapshot of `key` and then, if nothing else appeared
    /// in it meanwhile, its directory; returns how many snapshots there
    /// were. A directory that cannot be removed (a snapshot written
    /// concurrently) is left, empty or not, as if this had not tried.
    pub fn delete_key(&self, key: &str) -> Result<usize, SnapshotError> {
        let positions = self.list(key)?;
        for &position in &positions {
            self.delete(key, position)?;
        }
        let dir = self.key_dir(key);
        if self.fs.exists(&dir).map_err(io_err(&dir))?
            && self.fs.remove_dir(&dir).is_ok()
            && let Some(parent) = dir.parent()
        {
            self.fs.sync_dir(parent).map_err(io_err(parent))?;
        }
        Ok(positions.len())
    }

    /// Every snapshot: its key, position and file length, in no
    /// particular order.
    pub fn inventory(&self) -> Result<Vec<(String, u64, u64)>, SnapshotError> {
        let mut out = Vec::new();
        for key in self.keys()? {
            for position in self.list(&key)? {
                let path = self.path(&key, position);
                let len = self
                    .fs
                    .open(&path, OpenMode::Existing)
                    .and_then(|f| f.len());
                match len {
                    Ok(len) => out.push((key.clone(), position, len)),
                    // Deleted since the listing.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&path)(e)),
                }
            }
        }
        Ok(out)
    }

    /// Every key that has (or had) snapshots, in no particular order.
    pub fn keys(&self) -> Result<Vec<String>, SnapshotError> {
        Ok(self.key_dirs()?.into_iter().map(|(key, _)| key).collect())
    }

    /// Removes the temporary files of snapshot writes a crash interrupted.
    /// Returns their paths.
    pub fn sweep(&self) -> Result<Vec<PathBuf>, SnapshotError> {
        let mut removed = Vec::new();
        for (_, key_dir) in self.key_dirs()? {
            let Ok(names) = self.fs.list(&key_dir) else {
                continue;
            };
            let mut any = false;
            for name in names.iter().filter(|n| n.ends_with(".tmp")) {
                let path = key_dir.join(name);
                self.fs.remove_file(&path).map_err(io_err(&path))?;
                removed.push(path);
                any = true;
            }
            if any {
                self.fs.sync_dir(&key_dir).map_err(io_err(&key_dir))?;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_every_bit_flip() {
        let state = b"{\"balance\": 42, \"history\": [1,2,3,1,2,3,1,2,3]}".repeat(4);
        let b = encode("account:7", 99, &state).unwrap();
        let (key, snap) = decode(&b).unwrap();
        assert_eq!(key, "account:7");
        assert_eq!(snap.position, 99);
        assert_eq!(snap.state, state);
        assert!(b.len() < state.len(), "compressed");
        for i in 0..b.len() * 8 {
            let mut bad = b.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(decode(&bad).is_err(), "flip of bit {i} went unnoticed");
        }
        for n in 0..b.len() {
            assert!(decode(&b[..n]).is_err());
        }
    }

    #[test]
    fn empty_state_and_file_names() {
        let b = encode("k", 0, b"").unwrap();
        assert_eq!(decode(&b).unwrap().1.state, b"");
        assert_eq!(parse_file_name(&file_name(12)), Some(12));
        assert_eq!(parse_file_name("00000000000000000012.snap.tmp"), None);
        assert_eq!(key_dir_name("a/b"), "612f62");
        assert_eq!(key_from_dir_name("612f62").as_deref(), Some("a/b"));
        assert_eq!(key_from_dir_name("612"), None);
        assert_eq!(key_from_dir_name("zz"), None);
        assert_eq!(key_from_dir_name(LONG_DIR), None);
        let name = file_name(12);
        assert_eq!(
            parse_path(&format!("snapshots/612f62/{name}")),
            Some(("a/b".into(), 12))
        );
        for not_one in [
            format!("snapshots/612f62/{name}.tmp"),
            format!("snapshots/612/{name}"),
            format!("wal/612f62/{name}"),
            format!("snapshots/long/61/62/{name}"),
            format!("snapshots/{name}"),
            "snapshots/612f62".into(),
        ] {
            assert_eq!(parse_path(&not_one), None, "{not_one}");
        }
    }

    /// Keys up to 255 bytes work on a file system whose names are limited
    /// to 255 bytes (the hex of a key longer than 127 bytes is not).
    #[test]
    fn long_keys_fit_file_name_limits() {
        let fs: Arc<dyn FileSystem> = Arc::new(gesta_wal::io::StdFs);
        let dir = std::env::temp_dir().join(format!("gesta-snapshot-keys-{}", std::process::id()));
        let snapshots = Snapshots::new(fs, &dir);
        let keys: Vec<String> = [1, 127, 128, 200, MAX_KEY_LEN]
            .iter()
            .map(|&n| "\u{e9}".repeat(n / 2) + &"k".repeat(n % 2))
            .collect();
        for (i, key) in keys.iter().enumerate() {
            snapshots.save(key, 5, key.as_bytes(), 0).unwrap();
            snapshots.save(key, 7, b"x", 0).unwrap();
            assert_eq!(snapshots.list(key).unwrap(), [5, 7], "key {i}");
            assert_eq!(
                snapshots.load(key, 6).unwrap().unwrap().state,
                key.as_bytes()
            );
        }
        // Every file's path, relative to the store, names its key and
        // position; the inventory lists each with its length.
        let inventory = snapshots.inventory().unwrap();
        assert_eq!(inventory.len(), keys.len() * 2);
        for (key, position, len) in &inventory {
            let path = snapshots.path(key, *position);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), *len);
            let relative = path.strip_prefix(&dir).unwrap().to_str().unwrap();
            assert_eq!(
                parse_path(relative),
                Some((key.clone(), *position)),
                "{relative}"
            );
        }
        let mut found = snapshots.keys().unwrap();
        found.sort();
        let mut want = keys.clone();
        want.sort();
        assert_eq!(found, want);
        assert!(snapshots.sweep().unwrap().is_empty());
        for key in &keys {
            assert_eq!(snapshots.delete_key(key).unwrap(), 2);
            assert_eq!(snapshots.list(key).unwrap(), Vec::<u64>::new());
        }
        assert_eq!(snapshots.keys().unwrap(), Vec::<String>::new());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
