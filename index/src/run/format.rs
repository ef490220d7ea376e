//! The byte layout of an index run: constants, the footer, little-endian
//! field access and LEB128 varints. `docs/FORMAT.md` ("Index runs") is the
//! specification; this module is its single transcription into code.
//!
//! ```text
//! header | postings | skip table | key directory | key bytes | ids | filter | footer
//! ```
//!
//! Version 1 has no id section and an 80-byte footer; version 2 (written
//! now) adds the section and the footer field that says where it starts.

/// The first and last eight bytes of every run file.
pub(crate) const MAGIC: &[u8; 8] = b"GESTAIDX";
/// The format version this code writes.
pub(crate) const VERSION: u32 = 2;
/// The version before the id section, still read.
pub(crate) const VERSION_1: u32 = 1;
/// Header: magic, version, reserved.
pub(crate) const HEADER_LEN: usize = 16;
/// Footer: nine u64 fields, a reserved u32, the CRC, the magic.
pub(crate) const FOOTER_LEN: usize = 88;
/// A version 1 footer: eight u64 fields (no id section), a reserved u32,
/// the CRC, the magic.
pub(crate) const FOOTER_LEN_1: usize = 80;
/// Offset of the CRC field from the end of the file; the CRC covers every
/// byte before it, footer fields included, so no single bit goes unchecked.
pub(crate) const CRC_FROM_END: usize = 12;
/// Positions per posting block (the last block of a list may hold fewer).
pub(crate) const BLOCK: usize = 64;
/// Bytes of one skip-table entry: first, last, byte offset.
pub(crate) const SKIP_ENTRY: usize = 24;
/// Bytes of one key-directory entry: key offset, count, first block.
pub(crate) const DIR_ENTRY: usize = 24;
/// Bytes of one id-section entry: the id (big-endian) and its position.
pub(crate) const ID_ENTRY: usize = 24;

/// The section offsets and totals recorded in the footer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Footer {
    /// File offset of the skip table (= end of the postings area).
    pub(crate) skip_off: u64,
    /// File offset of the key directory.
    pub(crate) dir_off: u64,
    /// File offset of the key bytes.
    pub(crate) keys_off: u64,
    /// File offset of the filter.
    pub(crate) filter_off: u64,
    /// The positions the run covers, inclusive.
    pub(crate) covers: (u64, u64),
    /// Number of keys (directory entries).
    pub(crate) key_count: u64,
    /// Number of positions over all lists and the id section.
    pub(crate) posting_count: u64,
    /// File offset of the id section (= end of the key bytes); the
    /// filter's offset in a version 1 run, which has none.
    pub(crate) ids_off: u64,
    /// The run's format version.
    pub(crate) version: u32,
}

impl Footer {
    /// Appends the footer, the CRC of everything before the CRC field, and
    /// the trailing magic to `out`, completing the file. A version 1
    /// footer (written for tests of old runs) has no id section's offset.
    pub(crate) fn finish(&self, out: &mut Vec<u8>) {
        for v in [
            self.skip_off,
            self.dir_off,
            self.keys_off,
            self.filter_off,
            self.covers.0,
            self.covers.1,
            self.key_count,
            self.posting_count,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        if self.version != VERSION_1 {
            out.extend_from_slice(&self.ids_off.to_le_bytes());
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        let crc = crc32fast::hash(out);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(MAGIC);
    }

    /// Reads the footer fields from the footer at the end of a file of
    /// format `version` ([`FOOTER_LEN`] bytes, or [`FOOTER_LEN_1`] for
    /// version 1). Only meaningful once the CRC has been checked.
    pub(crate) fn parse(tail: &[u8], version: u32) -> Option<Footer> {
        let f = |i: usize| le_u64(tail, i * 8);
        let filter_off = f(3)?;
        Some(Footer {
            skip_off: f(0)?,
            dir_off: f(1)?,
            keys_off: f(2)?,
            filter_off,
            covers: (f(4)?, f(5)?),
            key_count: f(6)?,
            posting_count: f(7)?,
            ids_off: if version == VERSION_1 {
                filter_off
            } else {
                f(8)?
            },
            version,
        })
    }
}

/// The little-endian u64 at `off`, if in bounds.
pub(crate) fn le_u64(b: &[u8], off: usize) -> Option<u64> {
    let bytes = b.get(off..off.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// The little-endian u32 at `off`, if in bounds.
pub(crate) fn le_u32(b: &[u8], off: usize) -> Option<u32> {
    let bytes = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// Appends `v` as an unsigned LEB128 varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Decodes the varint at `*pos` in `b`, advancing `*pos` past it. `None`
/// if it runs past the end or does not fit a u64.
#[inline]
pub(crate) fn get_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0u32;
    loop {
        let byte = *b.get(*pos)?;
        *pos += 1;
        let bits = u64::from(byte & 0x7f);
        if shift == 63 && bits > 1 {
            return None;
        }
        v |= bits << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip() {
        for v in [0, 1, 127, 128, 300, 1 << 35, u64::MAX - 1, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut pos = 0;
            assert_eq!(get_varint(&out, &mut pos), Some(v));
            assert_eq!(pos, out.len());
        }
    }

    #[test]
    fn varint_rejects_overflow_and_truncation() {
        let mut pos = 0;
        assert_eq!(get_varint(&[0x80, 0x80], &mut pos), None);
        let eleven = [0xff; 10];
        let mut pos = 0;
        assert_eq!(get_varint(&eleven, &mut pos), None);
        let mut too_big = vec![0xff; 9];
        too_big.push(0x02);
        let mut pos = 0;
        assert_eq!(get_varint(&too_big, &mut pos), None);
    }

    #[test]
    fn footer_round_trip() {
        let f = Footer {
            skip_off: 1,
            dir_off: 2,
            keys_off: 3,
            filter_off: 4,
            covers: (5, 6),
            key_count: 7,
            posting_count: 8,
            ids_off: 9,
            version: VERSION,
        };
        let mut out = Vec::new();
        f.finish(&mut out);
        assert_eq!(out.len(), FOOTER_LEN);
        assert_eq!(Footer::parse(&out, VERSION), Some(f));
        assert_eq!(&out[FOOTER_LEN - 8..], MAGIC);
        let crc = le_u32(&out, FOOTER_LEN - CRC_FROM_END).unwrap();
        assert_eq!(crc, crc32fast::hash(&out[..FOOTER_LEN - CRC_FROM_END]));
    }
}
