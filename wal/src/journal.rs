//! The journal: a small append-only file of checksummed entries, each made
//! durable (`fdatasync`) before [`Journal::append`] returns — what the
//! engine's lifecycle operations (retroactive tags, and the audit trail
//! they form) are committed to. It takes no positions and knows nothing of
//! what an entry means.
//!
//! Layout (`docs/FORMAT.md`): a 16-byte header (magic `GESTAJNL`, version
//! 1, CRC-32 of the first 12 bytes), then entries back to back, each a
//! 12-byte frame — body length, body CRC, CRC of those 8 bytes — and the
//! body. The file is created whole (written to a temporary name, synced,
//! renamed, directory synced), so a journal with a damaged header is
//! damage, never an interrupted creation. On open, an entry that fails its
//! checks is a torn append when nothing but zeros follows where the write
//! would have stopped (as in the log, [`is_torn_write`]); it is cut off,
//! and anything else is corruption.
//!
//! An append that fails leaves the journal as it was: the entry is cut off
//! again (truncate and sync) before the error is returned. If that fails
//! too, the outcome is unknown ([`WalError::Indeterminate`]) and the
//! journal refuses appends ([`WalError::Poisoned`]) until it is reopened.
//!
//! [`is_torn_write`]: crate::recovery::is_torn_write

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{IoContext, Result, WalError};
use crate::format::{FRAME_LEN, u32_at};
use crate::io::{FileHandle, FileSystem, OpenMode, read_all};

/// The journal file's magic number.
pub const JOURNAL_MAGIC: [u8; 8] = *b"GESTAJNL";
/// The journal format version written and read.
pub const JOURNAL_VERSION: u32 = 1;
/// Length of the journal's header.
pub const JOURNAL_HEADER_LEN: usize = 16;
/// Length of an entry's frame (length, body CRC, frame CRC).
pub const ENTRY_FRAME_LEN: usize = FRAME_LEN;
/// Largest entry body.
pub const MAX_ENTRY_LEN: usize = 64 << 20;

/// An open journal, the only writer of its file.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Arc<dyn FileHandle>,
    /// Where the next entry goes: the end of the last whole entry.
    end: u64,
    poisoned: bool,
}

/// A journal as [`Journal::open`] found it.
#[derive(Debug)]
pub struct OpenedJournal {
    /// The journal, ready to append.
    pub journal: Journal,
    /// Every entry's body, oldest first.
    pub entries: Vec<Vec<u8>>,
    /// How many bytes of a torn append were cut off the end (0: none).
    pub torn_bytes: u64,
}

fn corruption(file: &Path, offset: u64, reason: impl Into<String>) -> WalError {
    WalError::Corruption {
        file: file.to_owned(),
        offset,
        reason: reason.into(),
    }
}

fn header() -> [u8; JOURNAL_HEADER_LEN] {
    let mut h = [0u8; JOURNAL_HEADER_LEN];
    h[..8].copy_from_slice(&JOURNAL_MAGIC);
    h[8..12].copy_from_slice(&JOURNAL_VERSION.to_le_bytes());
    let crc = crc32fast::hash(&h[..12]);
    h[12..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Frames `body` as one entry.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_LEN + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    let frame_crc = crc32fast::hash(&out[..8]);
    out.extend_from_slice(&frame_crc.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// The entries of a journal's bytes, and where the whole ones end; an
/// entry that fails its checks ends the walk as a torn append (its offset
/// returned) when nothing but zeros follows it, else is corruption.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<(Vec<Vec<u8>>, u64)> {
    let Some(h) = bytes.get(..JOURNAL_HEADER_LEN) else {
        return Err(corruption(path, 0, "journal shorter than its header"));
    };
    if h[..8] != JOURNAL_MAGIC {
        return Err(corruption(path, 0, "not a journal (bad magic)"));
    }
    if u32_at(h, 12) != crc32fast::hash(&h[..12]) {
        return Err(corruption(path, 0, "journal header checksum mismatch"));
    }
    if u32_at(h, 8) != JOURNAL_VERSION {
        return Err(corruption(
            path,
            8,
            format!("unsupported journal version {}", u32_at(h, 8)),
        ));
    }
    let mut entries = Vec::new();
    let mut at = JOURNAL_HEADER_LEN;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let fail = |reason: &str, claimed_end: Option<usize>, frame_ok: bool| {
            if crate::recovery::is_torn_write(rest, claimed_end, frame_ok, true) {
                Ok(())
            } else {
                Err(corruption(path, at as u64, reason))
            }
        };
        if rest.len() < FRAME_LEN {
            fail("journal entry frame cut short", None, false)?;
            break;
        }
        let len = u32_at(rest, 0) as usize;
        if u32_at(rest, 8) != crc32fast::hash(&rest[..8]) {
            fail("journal entry frame checksum mismatch", None, false)?;
            break;
        }
        if len > MAX_ENTRY_LEN {
            return Err(corruption(path, at as u64, "journal entry too long"));
        }
        let end = FRAME_LEN + len;
        let Some(body) = rest.get(FRAME_LEN..end) else {
            fail("journal entry cut short", Some(end), true)?;
            break;
        };
        if u32_at(rest, 4) != crc32fast::hash(body) {
            fail("journal entry checksum mismatch", Some(end), true)?;
            break;
        }
        entries.push(body.to_vec());
        at += end;
    }
    Ok((entries, at as u64))
}

/// Reads a journal's entries without changing the file (for tools that
/// inspect a store): the entries, and how many bytes of a torn append
/// follow them. A missing journal has none.
pub fn read(fs: &dyn FileSystem, path: &Path) -> Result<(Vec<Vec<u8>>, u64)> {
    if !fs.exists(path).at(path)? {
        return Ok((Vec::new(), 0));
    }
    let file = fs.open(path, OpenMode::ReadOnly).at(path)?;
    let bytes = read_all(file.as_ref()).at(path)?;
    let (entries, end) = parse(path, &bytes)?;
    Ok((entries, bytes.len() as u64 - end))
}

impl Journal {
    /// Opens the journal at `path`, creating it if it does not exist, and
    /// reads its entries; a torn last append is cut off (and synced).
    pub fn open(fs: Arc<dyn FileSystem>, path: &Path) -> Result<OpenedJournal> {
        if !fs.exists(path).at(path)? {
            crate::io::write_atomic(fs.as_ref(), path, &header()).at(path)?;
        }
        let file = fs.open(path, OpenMode::Existing).at(path)?;
        let bytes = read_all(file.as_ref()).at(path)?;
        let (entries, end) = parse(path, &bytes)?;
        let torn_bytes = bytes.len() as u64 - end;
        if torn_bytes > 0 {
            log::warn!(
                "gesta-wal: cut a torn append of {torn_bytes} bytes off the journal {}",
                path.display()
            );
            file.set_len(end).at(path)?;
            file.sync_data().at(path)?;
        }
        Ok(OpenedJournal {
            journal: Journal {
                path: path.to_owned(),
                file,
                end,
                poisoned: false,
            },
            entries,
            torn_bytes,
        })
    }

    /// Appends one entry and makes it durable before returning. On failure
    /// the entry is not in the journal (cut off again), unless the error
    /// is [`WalError::Indeterminate`]: then the journal refuses appends
    /// until it is reopened.
    pub fn append(&mut self, body: &[u8]) -> Result<()> {
        if self.poisoned {
            return Err(WalError::Poisoned);
        }
        if body.len() > MAX_ENTRY_LEN {
            return Err(WalError::Io {
                path: self.path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "journal entry of {} bytes, the limit is {MAX_ENTRY_LEN}",
                        body.len()
                    ),
                ),
            });
        }
        let framed = frame(body);
        let written = self
            .file
            .write_at(&framed, self.end)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.end += framed.len() as u64;
                Ok(())
            }
            Err(source) => {
                // What reached the disk is unknown: cut it off durably, or
                // refuse appends until recovery has read what is there.
                let cut = self
                    .file
                    .set_len(self.end)
                    .and_then(|()| self.file.sync_data());
                match cut {
                    Ok(()) => Err(WalError::Io {
                        path: self.path.clone(),
                        source,
                    }),
                    Err(_) => {
                        self.poisoned = true;
                        Err(WalError::Indeterminate {
                            path: self.path.clone(),
                            source,
                        })
                    }
                }
            }
        }
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::StdFs;

    fn fs() -> Arc<dyn FileSystem> {
        Arc::new(StdFs)
    }

    #[test]
    fn entries_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut j = Journal::open(fs(), &path).unwrap();
        assert!(j.entries.is_empty());
        j.journal.append(b"one").unwrap();
        j.journal.append(b"").unwrap();
        j.journal.append(&[7; 5000]).unwrap();
        drop(j);
        let j = Journal::open(fs(), &path).unwrap();
        assert_eq!(j.entries, vec![b"one".to_vec(), vec![], vec![7; 5000]]);
        let len = std::fs::metadata(&path).unwrap().len();
        // Every prefix of the last append is a torn tail, cut on open.
        let whole = std::fs::read(&path).unwrap();
        for cut in (len - 5012 + 1..len).step_by(97) {
            std::fs::write(&path, &whole[..cut as usize]).unwrap();
            let j = Journal::open(fs(), &path).unwrap();
            assert_eq!(j.entries.len(), 2, "cut at {cut}");
            assert_eq!(j.torn_bytes, cut - (len - 5012));
            assert_eq!(std::fs::metadata(&path).unwrap().len(), len - 5012);
        }
        // Zeros where an append stopped are torn too.
        let mut zeros = whole[..(len - 5012) as usize].to_vec();
        zeros.extend_from_slice(&[0; 100]);
        std::fs::write(&path, &zeros).unwrap();
        assert_eq!(Journal::open(fs(), &path).unwrap().entries.len(), 2);
    }

    #[test]
    fn damage_before_the_end_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut j = Journal::open(fs(), &path).unwrap().journal;
        j.append(b"first").unwrap();
        j.append(b"second").unwrap();
        drop(j);
        let whole = std::fs::read(&path).unwrap();
        for i in 0..whole.len() {
            let mut bad = whole.clone();
            bad[i] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            match read(fs().as_ref(), &path) {
                // A flip in the last entry's body, with nothing after it,
                // may pass for a torn append; never for a wrong entry.
                Ok((entries, _)) => {
                    assert!(entries.len() < 2, "flip at {i} went unnoticed");
                    assert!(i >= JOURNAL_HEADER_LEN + FRAME_LEN + 5, "flip at {i}");
                }
                Err(WalError::Corruption { .. }) => {}
                Err(e) => panic!("flip at {i}: {e}"),
            }
        }
    }

    #[test]
    fn a_failed_append_leaves_the_journal_as_it_was() {
        use crate::io::fault::{Fault, FaultFs, OpKind};
        let fault = Arc::new(FaultFs::new());
        let fs: Arc<dyn FileSystem> = fault.clone();
        let path = Path::new("/store/journal");
        fs.create_dir_all(Path::new("/store")).unwrap();
        let mut j = Journal::open(fs.clone(), path).unwrap().journal;
        j.append(b"kept").unwrap();
        fault.fail_nth(OpKind::Sync, 1, Fault::Eio);
        assert!(j.append(b"lost").is_err());
        // The worst case: the sync made the entry durable and still failed.
        fault.fail_nth_partly(OpKind::Sync, 1, Fault::Eio);
        assert!(j.append(b"lost too").is_err());
        fault.fail_nth(OpKind::Write, 1, Fault::Enospc);
        assert!(j.append(b"no room").is_err());
        j.append(b"after").unwrap();
        drop(j);
        let entries = Journal::open(fs, path).unwrap().entries;
        assert_eq!(entries, vec![b"kept".to_vec(), b"after".to_vec()]);
    }
}
