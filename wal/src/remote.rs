//! Sealed segments whose bytes are not on the local disk: the seam
//! ([`RemoteSegments`]) through which they are read, and the small file
//! that stands for such a segment in the log directory (its *eviction
//! marker*, `<first-position>.evicted`).
//!
//! Evicting a sealed plain segment ([`Compressor::evict`]) keeps its
//! offset table (`.off`) and writes the marker, which says what the
//! segment was — its first and last positions, its length and the CRC-32
//! of all its bytes — then removes the segment file. Reads of the
//! segment go through the [`RemoteSegments`] the log was opened with;
//! every record read is checked by its own checksums, as from a local
//! file, and a whole-segment read (recovery's scan) is checked against
//! the marker's length and CRC-32 too. A log opened without a
//! `RemoteSegments` refuses to open when it finds a marker
//! ([`WalError::Evicted`], naming the segment): it never opens with a
//! hole in its history.
//!
//! The steps of an eviction, each durable before the next: the marker is
//! written atomically (temporary file, fsync, rename, directory fsync),
//! the segment is switched in memory to the remote, then the segment file
//! is removed and the directory synced. A crash between the two leaves
//! both the segment and its marker: recovery keeps the segment and removes
//! the marker (see `resolve_listing`).
//!
//! Marker layout (little-endian, 48 bytes): magic `GESTAEVC`, version
//! `u32` (1), `u32` zero, first position `u64`, last position `u64`,
//! length `u64`, CRC-32 of the segment's bytes `u32`, then the CRC-32 of
//! the 44 bytes before it.
//!
//! [`Compressor::evict`]: crate::Compressor::evict

use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::format::{segment_file_name, u32_at, u64_at};

const MAGIC: [u8; 8] = *b"GESTAEVC";
const VERSION: u32 = 1;
/// The marker's length.
pub const MARKER_LEN: usize = 48;
const SUFFIX: &str = ".evicted";

/// Reads byte ranges of sealed segments that are no longer on the local
/// disk (typically from object storage, through a cache).
///
/// An implementation returns exactly `end - start` bytes or an error; it
/// need not check them against anything (the log checks every record's
/// checksums, and a whole segment against its CRC-32), but it should
/// check what it can — a cache block against the checksum of the object
/// it came from — so that damage is reported where it happened. Errors
/// reach the caller of the read as [`WalError::Remote`], naming the
/// segment; they are never taken for the end of the log.
///
/// [`WalError::Remote`]: crate::WalError::Remote
pub trait RemoteSegments: Send + Sync + Debug {
    /// Bytes `start..end` of the evicted segment `segment` (`end` at most
    /// its length).
    fn read(&self, segment: &EvictedSegment, start: u64, end: u64) -> io::Result<Bytes>;
}

/// What an eviction marker says of the segment it stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvictedSegment {
    /// The segment's first position.
    pub first_position: u64,
    /// Its last position.
    pub last_position: u64,
    /// Its length in bytes (the end of its last record).
    pub len: u64,
    /// The CRC-32 (IEEE) of its `len` bytes.
    pub crc: u32,
}

/// The marker's file name for the segment starting at `first_position`.
pub fn marker_file_name(first_position: u64) -> String {
    format!("{first_position:020}{SUFFIX}")
}

/// The first position a marker's file name gives, if it is one.
pub fn parse_marker_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The marker's path in the log directory `dir`.
pub fn marker_path(dir: &Path, first_position: u64) -> PathBuf {
    dir.join(marker_file_name(first_position))
}

impl EvictedSegment {
    /// The name of the segment file it stands for
    /// (`<first-position>.seg`), as the segment had it locally.
    pub fn file_name(&self) -> String {
        segment_file_name(self.first_position)
    }

    /// The marker's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MARKER_LEN);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&self.first_position.to_le_bytes());
        out.extend_from_slice(&self.last_position.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.crc.to_le_bytes());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a marker, saying what failed when it is refused.
    pub fn decode(b: &[u8]) -> Result<EvictedSegment, &'static str> {
        if b.len() != MARKER_LEN {
            return Err("eviction marker has the wrong length");
        }
        if b[..8] != MAGIC {
            return Err("eviction marker has the wrong magic number");
        }
        if crc32fast::hash(&b[..MARKER_LEN - 4]) != u32_at(b, MARKER_LEN - 4) {
            return Err("eviction marker checksum mismatch");
        }
        if u32_at(b, 8) != VERSION {
            return Err("unsupported eviction marker version");
        }
        if u32_at(b, 12) != 0 {
            return Err("eviction marker's reserved field is not zero");
        }
        let marker = EvictedSegment {
            first_position: u64_at(b, 16),
            last_position: u64_at(b, 24),
            len: u64_at(b, 32),
            crc: u32_at(b, 40),
        };
        if marker.first_position == 0 || marker.last_position < marker.first_position {
            return Err("eviction marker's positions are out of order");
        }
        Ok(marker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EvictedSegment {
        EvictedSegment {
            first_position: 7,
            last_position: 99,
            len: 12345,
            crc: 0xdead_beef,
        }
    }

    #[test]
    fn a_marker_round_trips_and_every_flip_or_cut_is_refused() {
        let b = sample().encode();
        assert_eq!(b.len(), MARKER_LEN);
        assert_eq!(EvictedSegment::decode(&b), Ok(sample()));
        for i in 0..b.len() * 8 {
            let mut bad = b.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(EvictedSegment::decode(&bad).is_err(), "flip of bit {i}");
        }
        for n in 0..b.len() {
            assert!(EvictedSegment::decode(&b[..n]).is_err());
        }
    }

    #[test]
    fn marker_names_parse() {
        assert_eq!(marker_file_name(7), "00000000000000000007.evicted");
        assert_eq!(parse_marker_file_name(&marker_file_name(7)), Some(7));
        assert_eq!(parse_marker_file_name("00000000000000000007.seg"), None);
        assert_eq!(parse_marker_file_name("7.evicted"), None);
    }
}
