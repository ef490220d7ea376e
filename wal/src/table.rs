//! The offset table of a sealed segment, kept in a small file beside it
//! (`<first-position>.off`), so that opening a store does not have to scan
//! every sealed segment to know where its records are.
//!
//! Written once, when the segment is sealed; if it is missing or damaged,
//! recovery scans the segment as usual and writes it again. Records are
//! still checksummed whenever they are read, so trusting the table at open
//! never lets damaged data through: a segment that no longer matches its
//! table is reported as corruption on read (and by a full verification).
//!
//! Layout (little-endian): magic `GESTAOFF`, version `u32`, entry count
//! `u32`, first position `u64`, last position `u64`, end offset `u64` (the
//! segment's length), last commit timestamp `u64`, then per entry `position
//! u64, offset u64`, then a CRC-32 of all preceding bytes.

use std::io;
use std::path::{Path, PathBuf};

use crate::format::{u32_at, u64_at};
use crate::io::{FileSystem, OpenMode, read_all};

const MAGIC: [u8; 8] = *b"GESTAOFF";
const VERSION: u32 = 1;
const FIXED: usize = 48;

/// What a sealed segment's table says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentTable {
    /// First position of the segment.
    pub first_position: u64,
    /// Last position of the segment.
    pub last_position: u64,
    /// Length of the segment file (the end of its last record).
    pub end: u64,
    /// Commit timestamp of its last record.
    pub last_timestamp_micros: u64,
    /// Sparse (first position of a record, byte offset of that record).
    pub entries: Vec<(u64, u64)>,
}

/// The table file's name for the segment starting at `first_position`.
pub fn table_file_name(first_position: u64) -> String {
    format!("{first_position:020}.off")
}

/// The path of the table beside a segment.
pub fn table_path(dir: &Path, first_position: u64) -> PathBuf {
    dir.join(table_file_name(first_position))
}

impl SegmentTable {
    /// Encodes the table.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED + 16 * self.entries.len() + 4);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for v in [
            self.first_position,
            self.last_position,
            self.end,
            self.last_timestamp_micros,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for &(p, o) in &self.entries {
            out.extend_from_slice(&p.to_le_bytes());
            out.extend_from_slice(&o.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a table; `None` if it fails any check (the caller then scans
    /// the segment instead).
    pub fn decode(b: &[u8]) -> Option<SegmentTable> {
        SegmentTable::check(b).ok()
    }

    /// Decodes a table like [`decode`](SegmentTable::decode), saying what
    /// failed and at which offset when it is rejected.
    pub fn check(b: &[u8]) -> Result<SegmentTable, (u64, &'static str)> {
        if b.len() < FIXED + 4 {
            return Err((0, "offset table is shorter than its fixed fields"));
        }
        if b[..8] != MAGIC {
            return Err((0, "offset table has the wrong magic number"));
        }
        let body = &b[..b.len() - 4];
        if crc32fast::hash(body) != u32_at(b, b.len() - 4) {
            return Err(((b.len() - 4) as u64, "offset table checksum mismatch"));
        }
        if u32_at(b, 8) != VERSION {
            return Err((8, "unsupported offset table version"));
        }
        let count = u32_at(b, 12) as usize;
        if Some(body.len()) != count.checked_mul(16).and_then(|n| n.checked_add(FIXED)) {
            return Err((12, "offset table entry count disagrees with its length"));
        }
        let entries: Vec<(u64, u64)> = (0..count)
            .map(|i| {
                (
                    u64_at(body, FIXED + 16 * i),
                    u64_at(body, FIXED + 16 * i + 8),
                )
            })
            .collect();
        let table = SegmentTable {
            first_position: u64_at(b, 16),
            last_position: u64_at(b, 24),
            end: u64_at(b, 32),
            last_timestamp_micros: u64_at(b, 40),
            entries,
        };
        let ordered = table
            .entries
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1);
        let bounded = table.entries.first().map(|e| e.0) == Some(table.first_position)
            && table
                .entries
                .iter()
                .all(|&(p, o)| p <= table.last_position && o < table.end);
        if !(ordered && bounded) {
            return Err((FIXED as u64, "offset table entries out of order or range"));
        }
        Ok(table)
    }

    /// Reads the table of the segment starting at `first_position`, if it
    /// exists and is intact.
    pub fn load(
        fs: &dyn FileSystem,
        dir: &Path,
        first_position: u64,
    ) -> io::Result<Option<SegmentTable>> {
        let path = table_path(dir, first_position);
        if !fs.exists(&path)? {
            return Ok(None);
        }
        let file = fs.open(&path, OpenMode::Existing)?;
        let table = SegmentTable::decode(&read_all(file.as_ref())?);
        Ok(table.filter(|t| t.first_position == first_position))
    }

    /// Writes the table durably (the directory is synced by the caller,
    /// with the rollover that follows).
    pub fn store(&self, fs: &dyn FileSystem, dir: &Path) -> io::Result<()> {
        let path = table_path(dir, self.first_position);
        let file = fs.open(&path, OpenMode::Truncate)?;
        file.write_at(&self.encode(), 0)?;
        file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SegmentTable {
        SegmentTable {
            first_position: 10,
            last_position: 99,
            end: 9000,
            last_timestamp_micros: 77,
            entries: vec![(10, 32), (40, 4200), (80, 8400)],
        }
    }

    #[test]
    fn round_trips() {
        let t = sample();
        assert_eq!(SegmentTable::decode(&t.encode()), Some(t));
    }

    #[test]
    fn every_bit_flip_and_truncation_is_rejected() {
        let b = sample().encode();
        for i in 0..b.len() * 8 {
            let mut bad = b.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert_eq!(SegmentTable::decode(&bad), None, "flip of bit {i}");
        }
        for n in 0..b.len() {
            assert_eq!(SegmentTable::decode(&b[..n]), None);
        }
    }

    #[test]
    fn check_says_what_failed_and_where() {
        let b = sample().encode();
        assert_eq!(SegmentTable::check(&b), Ok(sample()));
        let mut bad = b.clone();
        bad[30] ^= 1;
        assert_eq!(
            SegmentTable::check(&bad),
            Err(((b.len() - 4) as u64, "offset table checksum mismatch"))
        );
        assert_eq!(SegmentTable::check(&b[..20]).map_err(|e| e.0), Err(0));
        let mut unordered = sample();
        unordered.entries.swap(1, 2);
        assert_eq!(
            SegmentTable::check(&unordered.encode()).map_err(|e| e.0),
            Err(FIXED as u64)
        );
    }
}
