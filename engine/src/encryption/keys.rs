//! The key file: every subject's key, and a tombstone for every subject
//! forgotten — its byte format (`docs/FORMAT.md`, "Key file"), its
//! decoding with every check, and its atomic, durable replacement through
//! the I/O seam (write a temporary file, fsync it, rename it over the old
//! one, fsync the directory), so that a crash at any step leaves the old
//! file or the new one, never a mix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::io::{FileSystem, OpenMode};

/// The first eight bytes of a key file.
pub(crate) const MAGIC: &[u8; 8] = b"GESTAKEY";
/// The version this code writes and reads.
pub(crate) const VERSION: u16 = 1;
/// The length of a subject's key: AES-256.
pub(crate) const KEY_LEN: usize = 32;

const KIND_LIVE: u8 = 1;
const KIND_FORGETTING: u8 = 2;
const KIND_FORGOTTEN: u8 = 3;

/// What the key file says about one subject.
#[derive(Clone)]
pub(crate) enum Entry {
    /// The subject's key, created at `since` (microseconds since the epoch).
    Live {
        key: Arc<Zeroizing<[u8; KEY_LEN]>>,
        since: u64,
    },
    /// The key is destroyed (at `since`); `redacted` says whether the
    /// subject's events were redacted in the store too, so that opening
    /// finishes a forget that a crash interrupted between the two steps.
    Forgotten { since: u64, redacted: bool },
}

impl std::fmt::Debug for Entry {
    // Never prints a key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Entry::Live { since, .. } => write!(f, "Live {{ since: {since} }}"),
            Entry::Forgotten { since, redacted } => {
                write!(f, "Forgotten {{ since: {since}, redacted: {redacted} }}")
            }
        }
    }
}

/// The subjects a key file names, by name.
pub(crate) type Entries = BTreeMap<String, Entry>;

/// Encodes a key file: the subject prefix its tags use, and `entries`.
pub(crate) fn encode(prefix: &str, entries: &Entries) -> Vec<u8> {
    let mut out = Vec::with_capacity(22 + prefix.len() + entries.len() * (11 + 16 + KEY_LEN));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // flags: none yet
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    // The prefix is part of the file's meaning (which tags name the
    // subjects it holds keys for), so the file keeps it: a store opened
    // later cannot read its events with another rule.
    out.extend_from_slice(&(prefix.len() as u16).to_le_bytes());
    out.extend_from_slice(prefix.as_bytes());
    for (subject, entry) in entries {
        let (kind, since) = match entry {
            Entry::Live { since, .. } => (KIND_LIVE, *since),
            Entry::Forgotten {
                since,
                redacted: false,
            } => (KIND_FORGETTING, *since),
            Entry::Forgotten {
                since,
                redacted: true,
            } => (KIND_FORGOTTEN, *since),
        };
        out.push(kind);
        // Subjects are at most MAX_NAME_LEN bytes (checked on the way in).
        out.extend_from_slice(&(subject.len() as u16).to_le_bytes());
        out.extend_from_slice(subject.as_bytes());
        out.extend_from_slice(&since.to_le_bytes());
        if let Entry::Live { key, .. } = entry {
            out.extend_from_slice(key.as_ref().as_ref());
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a key file read from `file` into its subject prefix and its
/// entries; any damage is [`Error::Corruption`] naming the file and the
/// offset.
pub(crate) fn decode(bytes: &[u8], file: &Path) -> Result<(String, Entries)> {
    let bad = |offset: usize, reason: &str| Error::Corruption {
        file: file.to_path_buf(),
        offset: offset as u64,
        reason: format!("key file: {reason}"),
    };
    if bytes.len() < 22 {
        return Err(bad(0, "shorter than a header and a checksum"));
    }
    if &bytes[..8] != MAGIC {
        return Err(bad(0, "bad magic"));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    if crc32fast::hash(body) != stored {
        return Err(bad(body.len(), "checksum mismatch"));
    }
    let version = u16::from_le_bytes([body[8], body[9]]);
    if version != VERSION {
        return Err(bad(8, &format!("unknown version {version}")));
    }
    if body[10..12] != [0, 0] {
        return Err(bad(10, "unknown flags"));
    }
    let count = u32::from_le_bytes([body[12], body[13], body[14], body[15]]);
    let mut at = 16;
    let take = |n: usize, at: &mut usize| -> Result<&[u8]> {
        let s = body
            .get(*at..*at + n)
            .ok_or_else(|| bad(*at, "entry runs past the end"))?;
        *at += n;
        Ok(s)
    };
    let len = take(2, &mut at)?;
    let len = u16::from_le_bytes([len[0], len[1]]) as usize;
    let prefix = std::str::from_utf8(take(len, &mut at)?)
        .map_err(|_| bad(18, "subject prefix is not UTF-8"))?
        .to_owned();
    // As the wrapper allows it (1 to MAX_NAME_LEN - 1 bytes): a longer one
    // would leave no room for a subject, and its checks would underflow.
    if prefix.is_empty() || prefix.len() >= crate::event::MAX_NAME_LEN {
        return Err(bad(16, "subject prefix empty or too long"));
    }
    let mut entries = Entries::new();
    for _ in 0..count {
        let start = at;
        let kind = take(1, &mut at)?[0];
        let len = take(2, &mut at)?;
        let len = u16::from_le_bytes([len[0], len[1]]) as usize;
        let subject = std::str::from_utf8(take(len, &mut at)?)
            .map_err(|_| bad(start + 3, "subject is not UTF-8"))?
            .to_owned();
        let since = take(8, &mut at)?;
        let since = u64::from_le_bytes(since.try_into().unwrap_or_default());
        let entry = match kind {
            KIND_LIVE => {
                let mut key = Zeroizing::new([0u8; KEY_LEN]);
                key.copy_from_slice(take(KEY_LEN, &mut at)?);
                Entry::Live {
                    key: Arc::new(key),
                    since,
                }
            }
            KIND_FORGETTING | KIND_FORGOTTEN => Entry::Forgotten {
                since,
                redacted: kind == KIND_FORGOTTEN,
            },
            other => return Err(bad(start, &format!("unknown entry kind {other}"))),
        };
        if entries.insert(subject, entry).is_some() {
            return Err(bad(start, "subject named twice"));
        }
    }
    if at != body.len() {
        return Err(bad(at, "bytes after the last entry"));
    }
    Ok((prefix, entries))
}

/// For a backup of an encrypted store: writes at `to` (atomically and
/// durably) a key file with the subject prefix of the one at `from` and no
/// key, if there is a file at `from`; returns whether there was. The keys
/// themselves are never copied, so that a later forget reaches the
/// backup too; the keyless file keeps the copy encrypted to every door
/// (its subjects' events fail to open, naming the missing key, rather
/// than reading as ciphertext, and new subjects' events are sealed, never
/// stored in clear) until the store's key file is put in its place.
pub(crate) fn write_keyless(fs: Arc<dyn FileSystem>, from: &Path, to: &Path) -> Result<bool> {
    let source = KeyFile {
        fs: fs.clone(),
        path: from.to_owned(),
        prefix: String::new(),
    };
    let Some((prefix, _keys)) = source.load()? else {
        return Ok(false);
    };
    let copy = KeyFile {
        fs,
        path: to.to_owned(),
        prefix,
    };
    copy.store(&Entries::new())?;
    Ok(true)
}

/// Where the key file lives and how it is reached.
#[derive(Clone, Debug)]
pub(crate) struct KeyFile {
    pub(crate) fs: Arc<dyn FileSystem>,
    pub(crate) path: PathBuf,
    /// The subject prefix written into the file.
    pub(crate) prefix: String,
}

impl KeyFile {
    fn io(&self, source: std::io::Error) -> Error {
        Error::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// The prefix and entries the file holds; `None` when there is no file
    /// yet. A
    /// leftover temporary file of an interrupted replacement is ignored
    /// (the rename that would have published it never happened) and is
    /// overwritten by the next replacement.
    pub(crate) fn load(&self) -> Result<Option<(String, Entries)>> {
        if !self.fs.exists(&self.path).map_err(|e| self.io(e))? {
            return Ok(None);
        }
        // Read only: a reader beside the owning process (`read --follow`)
        // may have no right to write the file, and never needs one.
        let file = self
            .fs
            .open(&self.path, OpenMode::ReadOnly)
            .map_err(|e| self.io(e))?;
        let bytes = crate::io::read_all(file.as_ref()).map_err(|e| self.io(e))?;
        decode(&bytes, &self.path).map(Some)
    }

    /// Replaces the file with `entries`, atomically and durably: when this
    /// returns `Ok`, a crash leaves exactly `entries`; when it fails, the
    /// file holds the old entries or the new ones.
    pub(crate) fn store(&self, entries: &Entries) -> Result<()> {
        let bytes = Zeroizing::new(encode(&self.prefix, entries));
        if let Some(dir) = self.path.parent() {
            // A directory created here is synced into its parent: the keys
            // must outlive a crash as surely as the events sealed with them.
            crate::io::create_dir_all_durably(self.fs.as_ref(), dir).map_err(|e| self.io(e))?;
        }
        crate::io::write_atomic_private(self.fs.as_ref(), &self.path, &bytes)
            .map_err(|e| self.io(e))
    }
}

/// The mark that a directory's store is encrypted: a small file beside the
/// key file, written once the key file exists and never removed by the
/// wrapper. A key file lost (deleted, left out of a copy) leaves the mark,
/// so the doors still open the store through the wrapper and the wrapper
/// refuses to start a new key file: the store would otherwise be opened
/// plain and its subjects' new events stored in clear, or given new keys
/// under which their old events no longer open.
#[derive(Clone, Debug)]
pub(crate) struct Mark {
    pub(crate) fs: Arc<dyn FileSystem>,
    pub(crate) path: PathBuf,
}

/// What the mark says, for a person who finds it.
const MARK_TEXT: &[u8] = b"This store is encrypted (crypto-shredding): its subjects' keys are in \
the key file KEYS beside this file. If KEYS is lost, put a copy back; \
remove this file only for a store whose events name no subject.\n";

impl Mark {
    fn io(&self, source: std::io::Error) -> Error {
        Error::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Whether the mark is there.
    pub(crate) fn exists(&self) -> Result<bool> {
        self.fs.exists(&self.path).map_err(|e| self.io(e))
    }

    /// Writes the mark, durably, unless it is there already.
    pub(crate) fn ensure(&self) -> Result<()> {
        if self.exists()? {
            return Ok(());
        }
        crate::io::write_atomic(self.fs.as_ref(), &self.path, MARK_TEXT).map_err(|e| self.io(e))
    }

    /// The refusal of a store whose mark is there and whose key file
    /// `key_file` is not.
    pub(crate) fn lost(&self, key_file: &Path) -> Error {
        Error::Corruption {
            file: key_file.to_owned(),
            offset: 0,
            reason: format!(
                "the key file is missing, but {} says the store is encrypted: put the key \
                 file back (a backup's holds no key). A new one would store subjects' new \
                 events under new keys, and their earlier events would no longer open",
                self.path.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entries {
        let mut e = Entries::new();
        e.insert(
            "alice".into(),
            Entry::Live {
                key: Arc::new(Zeroizing::new([7; KEY_LEN])),
                since: 11,
            },
        );
        e.insert(
            "bob".into(),
            Entry::Forgotten {
                since: 12,
                redacted: false,
            },
        );
        e.insert(
            "carol".into(),
            Entry::Forgotten {
                since: 13,
                redacted: true,
            },
        );
        e
    }

    #[test]
    fn round_trips() {
        let bytes = encode("subject:", &sample());
        let (prefix, back) = decode(&bytes, Path::new("KEYS")).unwrap();
        assert_eq!(prefix, "subject:");
        assert_eq!(format!("{back:?}"), format!("{:?}", sample()));
        match &back["alice"] {
            Entry::Live { key, .. } => assert_eq!(**key.as_ref(), [7; KEY_LEN]),
            other => panic!("{other:?}"),
        }
    }

    /// A prefix the wrapper would never write (no room left for a
    /// subject) is damage, not a prefix whose checks would underflow.
    #[test]
    fn a_prefix_out_of_range_is_corruption() {
        let longest = "p".repeat(crate::event::MAX_NAME_LEN - 1);
        assert!(decode(&encode(&longest, &sample()), Path::new("KEYS")).is_ok());
        let too_long = "p".repeat(crate::event::MAX_NAME_LEN);
        let refused = decode(&encode(&too_long, &sample()), Path::new("KEYS"));
        assert!(
            matches!(refused, Err(Error::Corruption { .. })),
            "{refused:?}"
        );
    }

    #[test]
    fn every_flipped_bit_and_every_cut_is_corruption() {
        let bytes = encode("subject:", &sample());
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(matches!(
                    decode(&b, Path::new("KEYS")),
                    Err(Error::Corruption { .. })
                ));
            }
            assert!(matches!(
                decode(&bytes[..i], Path::new("KEYS")),
                Err(Error::Corruption { .. })
            ));
        }
    }
}
