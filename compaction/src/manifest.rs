//! The MANIFEST: what is durable beyond the log — today, the index runs and
//! the positions each covers. It is replaced atomically (write a temporary
//! file, fsync, rename, fsync the directory), so a crash leaves the old or
//! the new version, never a mix; a damaged MANIFEST is corruption, never
//! guessed at.
//!
//! Layout (little-endian): magic `GESTAMAN`, version `u32`, run count `u32`,
//! then per run `name_len u16, name, lo u64, hi u64`, then (version 2 only)
//! the purge `sequence u64, through u64, count u32` and `count` entries
//! `key_len u16, key, events u64`, then a CRC-32 of all preceding bytes. Version 1 is written while nothing was purged, so a store that
//! never removes events keeps the MANIFEST older builds read. See
//! `docs/FORMAT.md`.

use std::io;
use std::path::Path;

use gesta_index::Key;
use gesta_wal::format::{u32_at, u64_at};
use gesta_wal::io::{FileSystem, OpenMode, read_all, write_atomic};

const MAGIC: [u8; 8] = *b"GESTAMAN";
/// The version written while nothing was purged.
const VERSION: u32 = 1;
/// The version that records a purge.
const VERSION_PURGED: u32 = 2;
/// The MANIFEST's file name inside the store directory.
pub const FILE_NAME: &str = "MANIFEST";

/// An index run the MANIFEST lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunEntry {
    /// File name inside `index/`.
    pub name: String,
    /// First position the run covers.
    pub lo: u64,
    /// Last position the run covers.
    pub hi: u64,
}

/// Which removed events' postings the runs no longer hold: the type and
/// tag postings of every event removed by a lifecycle journal entry up to
/// `sequence`, at a position up to `through` (a merge of every run, which
/// then covered `1..=through`, dropped them). Zero: nothing purged.
///
/// `counts` are, per index key, how many of the events removed by those
/// entries carried it and still count in the runs (their streams, added
/// tags, and types and tags of any not purged): what the listings
/// subtract, kept so that opening the store need not read every removed
/// event again to learn it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// The journal sequence of the newest removal purged.
    pub sequence: u64,
    /// The last position the purging merge covered.
    pub through: u64,
    /// Per key (its bytes, ascending), the removed events still counted.
    pub counts: Vec<(Key, u64)>,
}

impl Purged {
    /// Whether the removal of `position` by journal entry `sequence` had
    /// its type and tag postings dropped.
    pub fn covers(&self, sequence: u64, position: u64) -> bool {
        sequence <= self.sequence && position <= self.through
    }
}

/// The durable state beyond the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Index runs, in position order, covering `1..=covered()` without gaps.
    pub runs: Vec<RunEntry>,
    /// What the runs no longer hold of removed events.
    pub purged: Purged,
}

/// Why a MANIFEST could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Reading it failed.
    #[error("I/O error reading the MANIFEST: {0}")]
    Io(#[from] io::Error),
    /// Its contents fail a check.
    #[error("MANIFEST corrupt at offset {offset}: {reason}")]
    Corrupt {
        /// Byte offset of the problem.
        offset: u64,
        /// What check failed.
        reason: &'static str,
    },
}

impl Manifest {
    /// The last position the runs cover (0 when there are none).
    pub fn covered(&self) -> u64 {
        self.runs.last().map_or(0, |r| r.hi)
    }

    /// Encodes the MANIFEST.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let purged = self.purged.sequence != 0;
        out.extend_from_slice(&MAGIC);
        let version = if purged { VERSION_PURGED } else { VERSION };
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&(self.runs.len() as u32).to_le_bytes());
        for r in &self.runs {
            out.extend_from_slice(&(r.name.len() as u16).to_le_bytes());
            out.extend_from_slice(r.name.as_bytes());
            out.extend_from_slice(&r.lo.to_le_bytes());
            out.extend_from_slice(&r.hi.to_le_bytes());
        }
        if purged {
            out.extend_from_slice(&self.purged.sequence.to_le_bytes());
            out.extend_from_slice(&self.purged.through.to_le_bytes());
            out.extend_from_slice(&(self.purged.counts.len() as u32).to_le_bytes());
            for (key, events) in &self.purged.counts {
                let key = key.as_bytes();
                out.extend_from_slice(&(key.len() as u16).to_le_bytes());
                out.extend_from_slice(key);
                out.extend_from_slice(&events.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and checks a MANIFEST.
    pub fn decode(b: &[u8]) -> Result<Manifest, ManifestError> {
        let bad = |offset: usize, reason| ManifestError::Corrupt {
            offset: offset as u64,
            reason,
        };
        if b.len() < 20 {
            return Err(bad(0, "too short"));
        }
        let body = &b[..b.len() - 4];
        if crc32fast::hash(body) != u32_at(b, b.len() - 4) {
            return Err(bad(b.len() - 4, "checksum mismatch"));
        }
        if body[..8] != MAGIC {
            return Err(bad(0, "wrong magic number"));
        }
        let version = u32_at(body, 8);
        if version != VERSION && version != VERSION_PURGED {
            return Err(bad(8, "unsupported version"));
        }
        let count = u32_at(body, 12) as usize;
        let mut at = 16;
        let mut runs = Vec::with_capacity(count.min(1 << 16));
        let mut expected_lo = 1;
        for _ in 0..count {
            if at + 2 > body.len() {
                return Err(bad(at, "truncated run entry"));
            }
            let n = u16::from_le_bytes([body[at], body[at + 1]]) as usize;
            at += 2;
            if at + n + 16 > body.len() {
                return Err(bad(at, "truncated run entry"));
            }
            let name = std::str::from_utf8(&body[at..at + n])
                .map_err(|_| bad(at, "run name is not UTF-8"))?
                .to_owned();
            at += n;
            let (lo, hi) = (u64_at(body, at), u64_at(body, at + 8));
            if lo != expected_lo || hi < lo {
                return Err(bad(at, "runs do not cover consecutive positions"));
            }
            // The position after a run must exist: it is where the next one
            // (or the log replay) starts.
            expected_lo = hi
                .checked_add(1)
                .ok_or_else(|| bad(at + 8, "run range ends at the largest position"))?;
            at += 16;
            runs.push(RunEntry { name, lo, hi });
        }
        let mut purged = Purged::default();
        if version == VERSION_PURGED {
            if at + 20 > body.len() {
                return Err(bad(at, "truncated purge"));
            }
            purged.sequence = u64_at(body, at);
            purged.through = u64_at(body, at + 8);
            let covered = runs.last().map_or(0, |r| r.hi);
            if purged.sequence == 0 || purged.through == 0 || purged.through > covered {
                return Err(bad(at, "a purge beyond the runs"));
            }
            let count = u32_at(body, at + 16) as usize;
            at += 20;
            for _ in 0..count {
                if at + 2 > body.len() {
                    return Err(bad(at, "truncated purge count"));
                }
                let n = u16::from_le_bytes([body[at], body[at + 1]]) as usize;
                at += 2;
                if n == 0 || at + n + 8 > body.len() {
                    return Err(bad(at, "truncated purge count"));
                }
                let key = Key::from_bytes(&body[at..at + n]);
                let events = u64_at(body, at + n);
                if events == 0 || purged.counts.last().is_some_and(|(k, _)| *k >= key) {
                    return Err(bad(at, "purge counts not ascending, or zero"));
                }
                purged.counts.push((key, events));
                at += n + 8;
            }
        }
        if at != body.len() {
            return Err(bad(at, "trailing bytes"));
        }
        Ok(Manifest { runs, purged })
    }

    /// Reads the MANIFEST of the store in `dir`; `None` if there is none.
    pub fn load(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Manifest>, ManifestError> {
        let path = dir.join(FILE_NAME);
        if !fs.exists(&path)? {
            return Ok(None);
        }
        let file = fs.open(&path, OpenMode::Existing)?;
        Manifest::decode(&read_all(file.as_ref())?).map(Some)
    }

    /// Replaces the MANIFEST of the store in `dir` atomically and durably.
    pub fn store(&self, fs: &dyn FileSystem, dir: &Path) -> io::Result<()> {
        write_atomic(fs, &dir.join(FILE_NAME), &self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            runs: vec![
                RunEntry {
                    name: "a.idx".into(),
                    lo: 1,
                    hi: 10,
                },
                RunEntry {
                    name: "b.idx".into(),
                    lo: 11,
                    hi: 99,
                },
            ],
            purged: Purged::default(),
        }
    }

    fn purged() -> Manifest {
        Manifest {
            purged: Purged {
                sequence: 7,
                through: 10,
                counts: vec![(Key::tag("t"), 1), (Key::stream("s1"), 3)],
            },
            ..sample()
        }
    }

    #[test]
    fn round_trips() {
        let m = sample();
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
        assert_eq!(u32_at(&m.encode(), 8), VERSION);
        let p = purged();
        assert_eq!(Manifest::decode(&p.encode()).unwrap(), p);
        assert_eq!(u32_at(&p.encode(), 8), VERSION_PURGED);
        assert!(p.purged.covers(7, 10) && !p.purged.covers(8, 1) && !p.purged.covers(1, 11));
        assert_eq!(m.covered(), 99);
        assert_eq!(Manifest::default().covered(), 0);
    }

    #[test]
    fn every_bit_flip_is_detected() {
        for b in [sample().encode(), purged().encode()] {
            flips(&b);
        }
    }

    fn flips(b: &[u8]) {
        for i in 0..b.len() * 8 {
            let mut bad = b.to_vec();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(
                Manifest::decode(&bad).is_err(),
                "flip of bit {i} went unnoticed"
            );
        }
        for n in 0..b.len() {
            assert!(Manifest::decode(&b[..n]).is_err());
        }
    }
}
