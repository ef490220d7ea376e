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
}
