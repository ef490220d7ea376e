//! The checkpoint object (`CHECKPOINT` under the prefix): the one object
//! that says what the bucket holds — the head position `P` it restores
//! to, every file of the store at `P` with its length, and the chunk
//! objects that make each file up, each with its length and CRC-32.
//! It is written last in a round (after every chunk it names) and only
//! by a conditional PUT, so it always names objects that exist.
//!
//! The format is text, one record a line, ending with the CRC-32 of
//! everything before the `end` line (docs/TIER.md gives it in full):
//!
//! ```text
//! gesta-tier checkpoint 1
//! epoch 3
//! writer pid4242-18c9a…
//! sequence 17
//! head 120000
//! dir wal
//! file wal/00000000000000000001.seg 1048576
//! chunk 0 1048576 1a2b3c4d data/e00000003/wal/00000000000000000001.seg/0000000000000000-100000-1a2b3c4d
//! end 5e6f7a8b
//! ```

use crate::location::plain_segment;

/// The first line of every checkpoint.
const MAGIC: &str = "gesta-tier checkpoint 1";

/// One object holding bytes `offset..offset + len` of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Where the bytes start in the file.
    pub offset: u64,
    /// How many bytes.
    pub len: u64,
    /// Their CRC-32 (IEEE).
    pub crc: u32,
    /// The object's key, relative to the prefix.
    pub key: String,
}

/// The CRC-32 of any bytes that end with the CRC-32 of the bytes before
/// them (little-endian), whatever those are: CRC-32's residue. A
/// `MANIFEST` or a cursor file, each ending with its own CRC-32, is such a
/// chunk whole, so its CRC-32 tells nothing of what it holds: two
/// MANIFESTs of the same length have the same CRC-32.
pub const CRC_RESIDUE: u32 = 0x2144_df1c;

/// The second digest of a chunk whose CRC-32 is [`CRC_RESIDUE`]: 64-bit
/// FNV-1a of its bytes. Not another CRC: a CRC is affine over its input,
/// so any CRC-32 of such bytes, even behind a prefix, still depends on
/// their length alone; FNV's multiplications do not let the file's own
/// checksum cancel out.
pub fn residue_digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The key of a new chunk of epoch `epoch` holding `bytes` at `offset` of
/// the file `rel`, and the bytes' CRC-32:
/// `data/e<epoch>/<rel>/<offset>-<len>-<crc>`, followed by
/// `-d<digest>` ([`residue_digest`]) when the CRC-32 is the residue, so
/// that different bytes never get the same key.
pub fn chunk_key(epoch: u64, rel: &str, offset: u64, bytes: &[u8]) -> (u32, String) {
    let crc = crc32fast::hash(bytes);
    let n = bytes.len();
    let mut key = format!("data/e{epoch:08}/{rel}/{offset:016x}-{n:x}-{crc:08x}");
    if crc == CRC_RESIDUE {
        key.push_str(&format!("-d{:016x}", residue_digest(bytes)));
    }
    (crc, key)
}

impl Chunk {
    /// The digest this chunk's key names, if it has one (see
    /// [`chunk_key`]).
    pub fn digest(&self) -> Option<u64> {
        let last = self.key.rsplit('/').next()?;
        let parts: Vec<&str> = last.split('-').collect();
        let digest = match parts[..] {
            [_, _, _, d] => d.strip_prefix('d').filter(|d| d.len() == 16)?,
            _ => return None,
        };
        u64::from_str_radix(digest, 16).ok()
    }

    /// Checks `bytes` against the chunk: its length, its CRC-32, and the
    /// digest its key names, if any. A chunk whose CRC-32 is the residue
    /// and whose key names no digest (written before digests were) is
    /// checked by length and CRC-32 only, which its own content's
    /// checksum backs up when the file is read.
    pub fn check(&self, bytes: &[u8]) -> Result<(), String> {
        if bytes.len() as u64 != self.len {
            return Err(format!(
                "{} bytes, where the checkpoint says {}",
                bytes.len(),
                self.len
            ));
        }
        let crc = crc32fast::hash(bytes);
        if crc != self.crc {
            return Err(format!(
                "its CRC-32 is {crc:08x}, where the checkpoint says {:08x}",
                self.crc
            ));
        }
        if let Some(digest) = self.digest() {
            let actual = residue_digest(bytes);
            if actual != digest {
                return Err(format!(
                    "its digest is {actual:016x}, where its key says {digest:016x}"
                ));
            }
        }
        Ok(())
    }

    /// Whether `bytes` are certainly this chunk's: [`check`](Self::check)
    /// passes and, if the CRC-32 is the residue, a digest in the key
    /// vouched for them.
    pub fn holds(&self, bytes: &[u8]) -> bool {
        self.check(bytes).is_ok() && (self.crc != CRC_RESIDUE || self.digest().is_some())
    }
}

/// One file of the store, as the concatenation of its chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// The file's path relative to the store's directory, `/`-separated.
    pub path: String,
    /// Its length.
    pub len: u64,
    /// Its chunks, in order, covering `0..len` without gap or overlap.
    pub chunks: Vec<Chunk>,
}

/// What the bucket holds: the store at position `head`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// The epoch of the writer that wrote it.
    pub epoch: u64,
    /// That writer's id.
    pub writer: String,
    /// Incremented by every checkpoint written on the prefix.
    pub sequence: u64,
    /// The store holds exactly positions `1..=head`.
    pub head: u64,
    /// Directories of the store (so that empty ones are restored too).
    pub dirs: Vec<String>,
    /// Every file, sorted by path.
    pub files: Vec<FileEntry>,
}

/// Whether `path` is a relative `/`-separated path of plain names.
pub(crate) fn plain_path(path: &str) -> bool {
    path.split('/').all(plain_segment)
}

impl Checkpoint {
    /// The checkpoint's bytes.
    pub fn encode(&self) -> Vec<u8> {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "{MAGIC}");
        let _ = writeln!(s, "epoch {}", self.epoch);
        let _ = writeln!(s, "writer {}", self.writer);
        let _ = writeln!(s, "sequence {}", self.sequence);
        let _ = writeln!(s, "head {}", self.head);
        for dir in &self.dirs {
            let _ = writeln!(s, "dir {dir}");
        }
        for file in &self.files {
            let _ = writeln!(s, "file {} {}", file.path, file.len);
            for c in &file.chunks {
                let _ = writeln!(s, "chunk {} {} {:08x} {}", c.offset, c.len, c.crc, c.key);
            }
        }
        let crc = crc32fast::hash(s.as_bytes());
        let _ = writeln!(s, "end {crc:08x}");
        s.into_bytes()
    }

    /// Parses and checks a checkpoint: its own CRC, then that every file's
    /// chunks cover it exactly and every name is plain. The error says
    /// what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())?;
        let body_end = text
            .trim_end_matches('\n')
            .rfind('\n')
            .map(|i| i + 1)
            .ok_or("too short")?;
        let (body, last) = text.split_at(body_end);
        // Strict: exactly `end ` and eight lower-case hex digits and a
        // newline, so that no changed byte of that line goes unnoticed.
        let stated = last
            .strip_suffix('\n')
            .and_then(|l| l.strip_prefix("end "))
            .filter(|h| h.len() == 8 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or("no `end CRC` line: the object is truncated")?;
        let actual = crc32fast::hash(body.as_bytes());
        if stated != actual {
            return Err(format!(
                "its CRC is {actual:08x}, its end line says {stated:08x}"
            ));
        }
        let mut lines = body.lines();
        if lines.next() != Some(MAGIC) {
            return Err(format!("the first line is not `{MAGIC}`"));
        }
        let mut field = |name: &str| -> Result<String, String> {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
                .map(str::to_owned)
                .ok_or_else(|| format!("no `{name}` line"))
        };
        let number = |s: String, name: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("`{name} {s}` is not a number"))
        };
        let epoch = number(field("epoch")?, "epoch")?;
        let writer = field("writer")?;
        let sequence = number(field("sequence")?, "sequence")?;
        let head = number(field("head")?, "head")?;
        let mut checkpoint = Checkpoint {
            epoch,
            writer,
            sequence,
            head,
            dirs: Vec::new(),
            files: Vec::new(),
        };
        for line in lines {
            let words: Vec<&str> = line.split(' ').collect();
            match words.as_slice() {
                ["dir", path] if plain_path(path) => checkpoint.dirs.push((*path).to_owned()),
                ["file", path, len] if plain_path(path) => {
                    checkpoint.files.push(FileEntry {
                        path: (*path).to_owned(),
                        len: len.parse().map_err(|_| format!("bad length in `{line}`"))?,
                        chunks: Vec::new(),
                    });
                }
                ["chunk", offset, len, crc, key] if plain_path(key) => {
                    let file = checkpoint
                        .files
                        .last_mut()
                        .ok_or_else(|| format!("`{line}` before any file"))?;
                    let bad = || format!("bad chunk line `{line}`");
                    file.chunks.push(Chunk {
                        offset: offset.parse().map_err(|_| bad())?,
                        len: len.parse().map_err(|_| bad())?,
                        crc: u32::from_str_radix(crc, 16).map_err(|_| bad())?,
                        key: (*key).to_owned(),
                    });
                }
                _ => return Err(format!("unexpected line `{line}`")),
            }
        }
        for file in &checkpoint.files {
            let mut at = 0u64;
            for c in &file.chunks {
                if c.offset != at || c.len == 0 {
                    return Err(format!(
                        "the chunks of {} do not follow each other at offset {at}",
                        file.path
                    ));
                }
                at += c.len;
            }
            if at != file.len {
                return Err(format!(
                    "the chunks of {} cover {at} bytes of {}",
                    file.path, file.len
                ));
            }
        }
        Ok(checkpoint)
    }

    /// Every chunk key the checkpoint names.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.files
            .iter()
            .flat_map(|f| f.chunks.iter().map(|c| c.key.as_str()))
    }

    /// The entry of the file at `path`.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            epoch: 3,
            writer: "pid1-abc".into(),
            sequence: 17,
            head: 1200,
            dirs: vec!["index".into(), "wal".into()],
            files: vec![
                FileEntry {
                    path: "MANIFEST".into(),
                    len: 10,
                    chunks: vec![Chunk {
                        offset: 0,
                        len: 10,
                        crc: 0xdead_beef,
                        key: "data/e3/MANIFEST/0-a-deadbeef".into(),
                    }],
                },
                FileEntry {
                    path: "wal/1.seg".into(),
                    len: 30,
                    chunks: vec![
                        Chunk {
                            offset: 0,
                            len: 20,
                            crc: 1,
                            key: "data/e2/wal/1.seg/0-14-00000001".into(),
                        },
                        Chunk {
                            offset: 20,
                            len: 10,
                            crc: 2,
                            key: "data/e3/wal/1.seg/14-a-00000002".into(),
                        },
                    ],
                },
                FileEntry {
                    path: "wal/empty".into(),
                    len: 0,
                    chunks: vec![],
                },
            ],
        }
    }

    #[test]
    fn a_checkpoint_decodes_to_itself() {
        let c = sample();
        assert_eq!(Checkpoint::decode(&c.encode()).unwrap(), c);
        assert_eq!(c.file("wal/1.seg").unwrap().len, 30);
        assert!(c.file("wal/2.seg").is_none());
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_refused() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(Checkpoint::decode(&b).is_err(), "flip at {i} accepted");
        }
        for n in 0..bytes.len() - 1 {
            assert!(
                Checkpoint::decode(&bytes[..n]).is_err(),
                "truncation to {n} accepted"
            );
        }
    }

    #[test]
    fn chunks_that_do_not_cover_their_file_are_refused() {
        let mut c = sample();
        c.files[1].len = 31;
        let e = Checkpoint::decode(&c.encode()).unwrap_err();
        assert!(e.contains("cover 30 bytes of 31"), "{e}");
        let mut c = sample();
        c.files[1].chunks[1].offset = 19;
        assert!(Checkpoint::decode(&c.encode()).is_err());
        let mut c = sample();
        c.files[0].path = "../MANIFEST".into();
        assert!(Checkpoint::decode(&c.encode()).is_err());
    }

    /// Bytes followed by their own CRC-32, as a MANIFEST or a cursor file.
    fn self_checked(body: &[u8]) -> Vec<u8> {
        let mut b = body.to_vec();
        b.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        b
    }

    #[test]
    fn files_that_end_with_their_own_crc_get_different_keys_and_are_told_apart() {
        let (a, b) = (self_checked(b"runs 1-3050"), self_checked(b"runs 1-4080"));
        assert_eq!(crc32fast::hash(&a), CRC_RESIDUE);
        assert_eq!(
            crc32fast::hash(&b),
            CRC_RESIDUE,
            "the same CRC-32, other bytes"
        );
        let (crc_a, key_a) = chunk_key(1, "MANIFEST", 0, &a);
        let (crc_b, key_b) = chunk_key(1, "MANIFEST", 0, &b);
        assert_eq!(crc_a, crc_b);
        assert_ne!(key_a, key_b);
        let chunk = |key: String| Chunk {
            offset: 0,
            len: a.len() as u64,
            crc: CRC_RESIDUE,
            key,
        };
        let with_digest = chunk(key_a.clone());
        assert!(with_digest.holds(&a));
        assert!(!with_digest.holds(&b));
        assert!(with_digest.check(&b).unwrap_err().contains("digest"));
        // A key of before digests: the CRC-32 cannot vouch for the bytes,
        // so they are never taken for the chunk's without a check of their
        // own.
        let old = chunk("data/e00000001/MANIFEST/0000000000000000-f-2144df1c".into());
        assert_eq!(old.digest(), None);
        assert!(old.check(&b).is_ok());
        assert!(!old.holds(&a));
        // Other chunks keep their keys, and are told apart by their CRC-32.
        let (crc, key) = chunk_key(2, "wal/x.seg", 16, b"records");
        assert_eq!(
            key,
            format!("data/e00000002/wal/x.seg/0000000000000010-7-{crc:08x}")
        );
        let plain = Chunk {
            offset: 16,
            len: 7,
            crc,
            key,
        };
        assert!(plain.holds(b"records"));
        assert!(!plain.holds(b"recordz"));
        // A CRC-32 that starts with a `d` is no digest.
        let d = Chunk {
            key: "data/e00000002/wal/x.seg/0000000000000010-7-d3adbeef".into(),
            ..plain.clone()
        };
        assert_eq!(d.digest(), None);
        // Keys with a digest are plain names a checkpoint accepts.
        let mut c = sample();
        c.files[0].len = a.len() as u64;
        c.files[0].chunks = vec![with_digest];
        assert_eq!(Checkpoint::decode(&c.encode()), Ok(c));
    }
}
