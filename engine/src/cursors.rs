//! Durable subscription cursors: for each name, the last position its
//! consumer acknowledged.
//!
//! Each cursor is its own small file in `cursors/`, replaced atomically
//! (write a temporary file, fsync, rename, fsync the directory) on every
//! acknowledgement, so a crash leaves either the previous or the new
//! position — never a torn one, never one ahead of an acknowledgement. One
//! file per cursor keeps consumers from contending with each other and
//! keeps an acknowledgement's cost independent of how many cursors exist.
//!
//! File layout (little-endian): magic `GESTACUR`, version `u32` (1), name
//! length `u32`, the name's UTF-8 bytes, position `u64`, then a CRC32C of
//! everything before it (CRC-32, as every Gesta file). File names are the hex of the cursor name, so any
//! name is safe on any file system.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gesta_wal::io::{FileSystem, OpenMode, read_all, write_atomic};

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"GESTACUR";
const VERSION: u32 = 1;
pub(crate) const SUFFIX: &str = ".cursor";
/// The directory, inside the store's, that holds cursor files.
pub(crate) const DIR: &str = "cursors";

/// The cursor files of one store (which names are open is the business of
/// [`DurableCursors`](crate::DurableCursors)).
pub(crate) struct Cursors {
    fs: Arc<dyn FileSystem>,
    store_dir: PathBuf,
    dir: PathBuf,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

pub(crate) fn encode(name: &str, position: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(28 + name.len());
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&(name.len() as u32).to_le_bytes());
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(&position.to_le_bytes());
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

pub(crate) fn decode(path: &Path, b: &[u8]) -> Result<(String, u64)> {
    let bad = |offset: usize, reason: &str| Error::Corruption {
        file: path.to_owned(),
        offset: offset as u64,
        reason: reason.to_owned(),
    };
    if b.len() < 28 {
        return Err(bad(0, "cursor file is too short"));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(bad(body.len(), "cursor checksum mismatch"));
    }
    if &body[..8] != MAGIC {
        return Err(bad(0, "not a cursor file"));
    }
    let version = u32::from_le_bytes(body[8..12].try_into().unwrap_or_default());
    if version != VERSION {
        return Err(bad(8, &format!("unknown cursor file version {version}")));
    }
    let len = u32::from_le_bytes(body[12..16].try_into().unwrap_or_default()) as usize;
    if body.len() != 24 + len {
        return Err(bad(12, "cursor name length does not match the file"));
    }
    let name = std::str::from_utf8(&body[16..16 + len])
        .map_err(|_| bad(16, "cursor name is not UTF-8"))?
        .to_owned();
    let position = u64::from_le_bytes(body[16 + len..].try_into().unwrap_or_default());
    Ok((name, position))
}

pub(crate) fn file_name(name: &str) -> String {
    let mut s = String::with_capacity(name.len() * 2 + SUFFIX.len());
    for b in name.as_bytes() {
        s.push_str(&format!("{b:02x}"));
    }
    s.push_str(SUFFIX);
    s
}

/// The longest durable subscription name, in bytes: its file name is the
/// name's hex plus the suffix (and `.tmp` while it is replaced), which must
/// fit the 255 bytes file systems allow in a file name. Every store keeps
/// the same limit, so a name that works on one works on all.
pub const MAX_NAME_LEN: usize = 120;

/// Checks a cursor name: 1 to [`MAX_NAME_LEN`] bytes.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(Error::invalid(format!(
            "a durable subscription name must be 1 to {MAX_NAME_LEN} bytes, got {}",
            name.len()
        )));
    }
    Ok(())
}

impl Cursors {
    pub(crate) fn new(fs: Arc<dyn FileSystem>, store_dir: &Path) -> Cursors {
        Cursors {
            fs,
            store_dir: store_dir.to_owned(),
            dir: store_dir.join(DIR),
        }
    }

    /// The directory of the cursor files.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(file_name(name))
    }

    /// The acknowledged position of `name`, if it has one.
    pub(crate) fn load(&self, name: &str) -> Result<Option<u64>> {
        let path = self.path(name);
        if !self.fs.exists(&path).map_err(io_error(&path))? {
            return Ok(None);
        }
        let file = self
            .fs
            .open(&path, OpenMode::Existing)
            .map_err(io_error(&path))?;
        let bytes = read_all(file.as_ref()).map_err(io_error(&path))?;
        let (stored, position) = decode(&path, &bytes)?;
        if stored != name {
            return Err(Error::Corruption {
                file: path,
                offset: 16,
                reason: format!("the file holds the cursor {stored:?}, not {name:?}"),
            });
        }
        Ok(Some(position))
    }

    /// Replaces the position of `name`, durably.
    pub(crate) fn store(&self, name: &str, position: u64) -> Result<()> {
        if !self.fs.exists(&self.dir).map_err(io_error(&self.dir))? {
            self.fs
                .create_dir_all(&self.dir)
                .map_err(io_error(&self.dir))?;
            self.fs
                .sync_dir(&self.store_dir)
                .map_err(io_error(&self.store_dir))?;
        }
        let path = self.path(name);
        write_atomic(self.fs.as_ref(), &path, &encode(name, position)).map_err(io_error(&path))
    }

    /// Every cursor with its position, by name.
    pub(crate) fn list(&self) -> Result<Vec<(String, u64)>> {
        if !self.fs.exists(&self.dir).map_err(io_error(&self.dir))? {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for file in self.fs.list(&self.dir).map_err(io_error(&self.dir))? {
            // Leftover temporary files of an interrupted replacement are
            // not cursors (the previous file is still in place).
            if !file.ends_with(SUFFIX) {
                continue;
            }
            let path = self.dir.join(&file);
            let handle = self
                .fs
                .open(&path, OpenMode::Existing)
                .map_err(io_error(&path))?;
            let bytes = read_all(handle.as_ref()).map_err(io_error(&path))?;
            out.push(decode(&path, &bytes)?);
        }
        out.sort();
        Ok(out)
    }

    /// Deletes the cursor `name`; false if it did not exist.
    pub(crate) fn delete(&self, name: &str) -> Result<bool> {
        let path = self.path(name);
        if !self.fs.exists(&path).map_err(io_error(&path))? {
            return Ok(false);
        }
        self.fs.remove_file(&path).map_err(io_error(&path))?;
        self.fs.sync_dir(&self.dir).map_err(io_error(&self.dir))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_every_bit_flip_is_detected() {
        let b = encode("projector/äöü", 42);
        let p = Path::new("x.cursor");
        assert_eq!(decode(p, &b).unwrap(), ("projector/äöü".to_owned(), 42));
        for i in 0..b.len() * 8 {
            let mut bad = b.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(decode(p, &bad).is_err(), "flip of bit {i} went unnoticed");
        }
        for n in 0..b.len() {
            assert!(decode(p, &b[..n]).is_err());
        }
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(file_name("a/b"), "612f62.cursor");
    }
}
