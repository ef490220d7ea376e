//! The byte layout of segment files: the segment header and record framing.
//!
//! A segment is a 32-byte header followed by records, then (in the active
//! segment) zeros up to the preallocated length. Every byte of the header
//! is checked: its CRC covers bytes 0..24 (magic, version, the first
//! reserved field, the first position) and the reserved fields must be
//! zero, so a header is accepted only as exactly the bytes
//! [`SegmentHeader::encode`] writes. A record is one committed batch:
//!
//! ```text
//! frame   len u32 | body_crc u32 | frame_crc u32  (crc32 of the body; crc32 of len and body_crc)
//! body    first_position u64 | count u32 | seq_len u32 | timestamp_micros u64
//!         seq [seq_len]      (bytes assigned at commit, e.g. stream revisions)
//!         head_crc u32       (crc32 of the body up to here)
//!         payload [..]       (the events, encoded by the caller)
//! ```
//!
//! The head checksum lets a point read trust the record's fields and
//! sequencing bytes without checksumming the whole payload: the payload's
//! encoding carries its own per-event checksums (see the engine's codec),
//! so reading one event of a large batch verifies only that event.
//!
//! All integers are little-endian. A frame whose `len` is zero is the end of
//! the log (the preallocated zeros); anything else that fails the checks is
//! torn or corrupt, which recovery ([`open`](crate::open)) tells apart. The
//! frame's own checksum is what makes that possible: a length that passed it
//! can be trusted, so a flipped bit can never make a record swallow the
//! records after it.
//! `docs/FORMAT.md` is the full specification.

use bytes::Bytes;

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"GESTAWAL";
/// The segment format version this build writes. Version 3 segments may
/// hold events whose names are over 255 bytes (encoded with varint lengths,
/// which a version 2 reader would misread), so a version 2 reader refuses
/// them by their version.
pub const SEGMENT_VERSION: u32 = 3;
/// The oldest segment format version this build reads: version 2 segments
/// are version 3 without such events. The writer never appends to one (see
/// `WalWriter::push`).
pub const OLDEST_SEGMENT_VERSION: u32 = 2;
/// The newest segment format version this build reads: version 4 is a
/// sealed segment rewritten to erase the bytes of redacted events (see
/// `Compressor::rewrite_sealed`), whose events may say so in a way a
/// version 3 reader would take for damage. The writer never writes it.
pub const NEWEST_SEGMENT_VERSION: u32 = 4;
/// Size of the segment header in bytes.
pub const SEGMENT_HEADER_LEN: usize = 32;
/// The header's reserved fields (byte ranges), which must be zero.
const HEADER_RESERVED: [std::ops::Range<usize>; 2] = [12..16, 28..32];
/// Size of a record's frame (length, body CRC, frame CRC) in bytes.
pub const FRAME_LEN: usize = 12;
/// Size of the fixed part of a record body (the fields and the head
/// checksum).
pub const BODY_FIXED_LEN: usize = 28;
/// Size of the fields at the start of a record body.
const FIELDS_LEN: usize = 24;
/// The largest record body accepted; bounds what a corrupt length can claim.
pub const MAX_BODY_LEN: usize = 160 << 20;

/// The header of a segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Position of the first event the segment holds (or will hold).
    pub first_position: u64,
}

impl SegmentHeader {
    /// Encodes the header, in this build's format version.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        self.encode_version(SEGMENT_VERSION)
    }

    /// Encodes the header as format `version` writes it.
    pub fn encode_version(&self, version: u32) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&version.to_le_bytes());
        b[16..24].copy_from_slice(&self.first_position.to_le_bytes());
        let crc = crc32fast::hash(&b[0..24]);
        b[24..28].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// The format version of a header [`decode`](Self::decode) accepted.
    pub fn version_of(b: &[u8]) -> u32 {
        u32_at(b, 8)
    }

    /// Decodes and checks a header: the magic, the CRC of bytes 0..24,
    /// the version and the reserved fields (zero). No byte goes unchecked:
    /// only the exact encoding of a header is accepted.
    pub fn decode(b: &[u8]) -> Result<SegmentHeader, HeaderError> {
        if b.len() < SEGMENT_HEADER_LEN {
            return Err(HeaderError::Short);
        }
        if b[0..8] != SEGMENT_MAGIC {
            return Err(HeaderError::Magic);
        }
        let crc = u32_at(b, 24);
        if crc32fast::hash(&b[0..24]) != crc {
            return Err(HeaderError::Checksum);
        }
        // The version first: another version may give the reserved fields
        // a meaning, and that is what to report.
        let version = u32_at(b, 8);
        if !(OLDEST_SEGMENT_VERSION..=NEWEST_SEGMENT_VERSION).contains(&version) {
            return Err(HeaderError::Version(version));
        }
        for range in HEADER_RESERVED {
            if b[range.clone()].iter().any(|&x| x != 0) {
                return Err(HeaderError::Reserved(range.start));
            }
        }
        Ok(SegmentHeader {
            first_position: u64_at(b, 16),
        })
    }
}

/// Why a segment header was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than [`SEGMENT_HEADER_LEN`] bytes.
    Short,
    /// Not a Gesta segment.
    Magic,
    /// The header's checksum does not match.
    Checksum,
    /// A reserved field (starting at this offset) is not zero.
    Reserved(usize),
    /// A format version this build does not know.
    Version(u32),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Short => write!(f, "segment header is truncated"),
            HeaderError::Magic => write!(f, "segment header has the wrong magic number"),
            HeaderError::Checksum => write!(f, "segment header checksum mismatch"),
            HeaderError::Reserved(at) => write!(
                f,
                "segment header's reserved bytes {at}..{} are not zero",
                at + 4
            ),
            HeaderError::Version(v) => write!(f, "unsupported segment format version {v}"),
        }
    }
}

/// The fixed fields of a record body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    /// Position of the batch's first event.
    pub first_position: u64,
    /// Number of events in the batch (at least 1).
    pub count: u32,
    /// Commit time, microseconds since the Unix epoch.
    pub timestamp_micros: u64,
}

impl RecordMeta {
    /// Position of the batch's last event.
    pub fn last_position(&self) -> u64 {
        self.first_position + u64::from(self.count) - 1
    }
}

/// A caller-encoded batch payload together with its CRC, computed in the
/// caller's thread so that the committer only combines checksums.
#[derive(Clone, Debug)]
pub struct Payload {
    bytes: Bytes,
    crc: crc32fast::Hasher,
}

impl Payload {
    /// Wraps encoded events and checksums them.
    pub fn new(bytes: Bytes) -> Payload {
        let mut crc = crc32fast::Hasher::new();
        crc.update(&bytes);
        Payload { bytes, crc }
    }

    /// The encoded events.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The framed size of a record carrying this payload and `seq_len`
    /// sequencing bytes.
    pub fn framed_len(&self, seq_len: usize) -> usize {
        FRAME_LEN + BODY_FIXED_LEN + seq_len + self.bytes.len()
    }
}

/// Appends one framed record to `out`.
pub fn encode_record(out: &mut Vec<u8>, meta: RecordMeta, seq: &[u8], payload: &Payload) {
    let body_len = BODY_FIXED_LEN + seq.len() + payload.bytes.len();
    let start = out.len();
    out.reserve(FRAME_LEN + body_len);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    let fixed = out.len();
    out.extend_from_slice(&meta.first_position.to_le_bytes());
    out.extend_from_slice(&meta.count.to_le_bytes());
    out.extend_from_slice(&(seq.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta.timestamp_micros.to_le_bytes());
    out.extend_from_slice(seq);
    let head_crc = crc32fast::hash(&out[fixed..]);
    out.extend_from_slice(&head_crc.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&out[fixed..]);
    crc.combine(&payload.crc);
    out.extend_from_slice(&payload.bytes);
    out[start + 4..start + 8].copy_from_slice(&crc.finalize().to_le_bytes());
    let frame_crc = crc32fast::hash(&out[start..start + 8]);
    out[start + 8..start + 12].copy_from_slice(&frame_crc.to_le_bytes());
}

/// A decoded record, its parts sharing the buffer it was read from.
#[derive(Clone, Debug)]
pub struct Record {
    /// The fixed fields.
    pub meta: RecordMeta,
    /// Bytes assigned at commit time.
    pub seq: Bytes,
    /// The encoded events.
    pub payload: Bytes,
}

/// The outcome of looking at the bytes where a record should start.
#[derive(Debug)]
pub enum Frame {
    /// A valid record spanning `len` bytes (frame included).
    Record(Record, usize),
    /// A zero length field: the end of the written log.
    End,
    /// Not a valid record.
    Invalid {
        /// Why the record was rejected.
        reason: &'static str,
        /// Relative end of the bytes the length field claims, when the
        /// frame's checksum vouches for that length and it is in range.
        claimed_end: Option<usize>,
        /// Whether the frame (length and body checksum) passed its own
        /// checksum.
        frame_ok: bool,
    },
}

/// Decodes the record at the start of `buf` (which extends to the end of the
/// readable data) and verifies its checksums.
pub fn decode_record(buf: &Bytes) -> Frame {
    decode(buf, Check::Whole(None))
}

/// [`decode_record`], given the CRC-32 of the record's body (the bytes
/// after its frame), computed already: the same checks, the same answer.
pub(crate) fn decode_record_with_body_crc(buf: &Bytes, body_crc: u32) -> Frame {
    decode(buf, Check::Whole(Some(body_crc)))
}

/// Decodes the record at the start of `buf` like [`decode_record`], but
/// verifies only the frame and the head checksum, not the payload's: for a
/// point read, whose caller verifies the one event it decodes by that
/// event's own checksum.
pub fn decode_record_head(buf: &Bytes) -> Frame {
    decode(buf, Check::Head)
}

/// Decodes the head of the record at the start of `buf` — its frame,
/// fields, sequencing bytes and head checksum, all of which `buf` must
/// hold — without its payload, which may be cut short or missing: for a
/// point read of a compressed segment, which then reads the payload in
/// pieces. `available` is how many bytes the record may span (to the end of
/// the readable data). The record returned has an empty payload.
pub fn decode_record_head_only(buf: &Bytes, available: usize) -> Frame {
    decode(buf, Check::HeadOnly { available })
}

/// How much of a record [`decode`] is given and checks.
#[derive(Clone, Copy)]
enum Check {
    /// All of it, every checksum (the body's given, if computed already).
    Whole(Option<u32>),
    /// All of it, the frame and head checksums.
    Head,
    /// At least its head, which is checked; the record may span
    /// `available` bytes.
    HeadOnly { available: usize },
}

/// The bytes to be read at a record's start to know its head's length: the
/// frame and the fixed fields.
pub const HEAD_FIELDS_LEN: usize = FRAME_LEN + FIELDS_LEN;

/// The length of the head (frame, fields, sequencing bytes, head checksum)
/// of the record whose first [`HEAD_FIELDS_LEN`] bytes are `b`, if its
/// sequencing length is in range for a body of the length the frame says
/// (which the caller has not checked yet: the decode that follows does).
pub fn head_len(b: &[u8]) -> usize {
    let body_len = u32_at(b, 0) as usize;
    let seq_len = u32_at(b, FRAME_LEN + 12) as usize;
    FRAME_LEN + FIELDS_LEN + seq_len.min(body_len.saturating_sub(BODY_FIXED_LEN)) + 4
}

fn decode(buf: &Bytes, check: Check) -> Frame {
    if buf.len() < 4 || u32_at(buf, 0) == 0 {
        return if buf.len() >= 4 || buf.iter().all(|&b| b == 0) {
            Frame::End
        } else {
            Frame::Invalid {
                reason: "truncated record frame",
                claimed_end: None,
                frame_ok: false,
            }
        };
    }
    if buf.len() < FRAME_LEN {
        return Frame::Invalid {
            reason: "truncated record frame",
            claimed_end: None,
            frame_ok: false,
        };
    }
    if crc32fast::hash(&buf[0..8]) != u32_at(buf, 8) {
        return Frame::Invalid {
            reason: "record frame checksum mismatch",
            claimed_end: None,
            frame_ok: false,
        };
    }
    // From here on the length field is trusted: its own checksum matched.
    let body_len = u32_at(buf, 0) as usize;
    if !(BODY_FIXED_LEN..=MAX_BODY_LEN).contains(&body_len) {
        return Frame::Invalid {
            reason: "record length out of range",
            claimed_end: None,
            frame_ok: true,
        };
    }
    let total = FRAME_LEN + body_len;
    let (available, present) = match check {
        Check::HeadOnly { available } => (available, buf.len().min(total)),
        _ => (buf.len(), total),
    };
    if available < total {
        return Frame::Invalid {
            reason: "record extends past the end of the file",
            claimed_end: Some(total),
            frame_ok: true,
        };
    }
    if buf.len() < present || present < FRAME_LEN + BODY_FIXED_LEN {
        return Frame::Invalid {
            reason: "truncated record head",
            claimed_end: Some(total),
            frame_ok: true,
        };
    }
    let body = &buf[FRAME_LEN..present];
    if let Check::Whole(given) = check
        && given.unwrap_or_else(|| crc32fast::hash(body)) != u32_at(buf, 4)
    {
        return Frame::Invalid {
            reason: "record checksum mismatch",
            claimed_end: Some(total),
            frame_ok: true,
        };
    }
    let seq_len = u32_at(body, 12) as usize;
    if seq_len > body_len - BODY_FIXED_LEN {
        return Frame::Invalid {
            reason: "record fields out of range",
            claimed_end: Some(total),
            frame_ok: true,
        };
    }
    let head_end = FIELDS_LEN + seq_len;
    if body.len() < head_end + 4 {
        return Frame::Invalid {
            reason: "truncated record head",
            claimed_end: Some(total),
            frame_ok: true,
        };
    }
    if crc32fast::hash(&body[..head_end]) != u32_at(body, head_end) {
        return Frame::Invalid {
            reason: "record head checksum mismatch",
            claimed_end: Some(total),
            frame_ok: true,
        };
    }
    let meta = RecordMeta {
        first_position: u64_at(body, 0),
        count: u32_at(body, 8),
        timestamp_micros: u64_at(body, 16),
    };
    // The position after the last one must exist too: it is the next
    // position every reader and the writer compute.
    let positions_fit = meta
        .first_position
        .checked_add(u64::from(meta.count))
        .is_some();
    if meta.count == 0 || meta.first_position == 0 || !positions_fit {
        return Frame::Invalid {
            reason: "record fields out of range",
            claimed_end: Some(total),
            frame_ok: true,
        };
    }
    let seq_start = FRAME_LEN + FIELDS_LEN;
    let seq = buf.slice(seq_start..seq_start + seq_len);
    let payload = match check {
        Check::HeadOnly { .. } => Bytes::new(),
        _ => buf.slice(seq_start + seq_len + 4..total),
    };
    Frame::Record(Record { meta, seq, payload }, total)
}

/// Reads a little-endian u32 at `at`; the caller has checked the bounds.
pub fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Reads a little-endian u64 at `at`; the caller has checked the bounds.
pub fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The file name of the segment whose first position is `first_position`.
pub fn segment_file_name(first_position: u64) -> String {
    format!("{first_position:020}.seg")
}

/// Parses a segment file name back into its first position.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(first: u64, count: u32, seq: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let meta = RecordMeta {
            first_position: first,
            count,
            timestamp_micros: 42,
        };
        encode_record(
            &mut out,
            meta,
            seq,
            &Payload::new(Bytes::copy_from_slice(payload)),
        );
        out
    }

    #[test]
    fn record_round_trips() {
        let bytes = Bytes::from(record(7, 3, b"seq", b"payload bytes"));
        let Frame::Record(r, len) = decode_record(&bytes) else {
            panic!("not a record")
        };
        assert_eq!(len, bytes.len());
        assert_eq!(r.meta.first_position, 7);
        assert_eq!(r.meta.count, 3);
        assert_eq!(r.meta.last_position(), 9);
        assert_eq!(r.meta.timestamp_micros, 42);
        assert_eq!(&r.seq[..], b"seq");
        assert_eq!(&r.payload[..], b"payload bytes");
    }

    #[test]
    fn combined_crc_equals_crc_of_body() {
        let bytes = record(1, 1, b"abc", &[9u8; 1000]);
        let body = &bytes[FRAME_LEN..];
        assert_eq!(crc32fast::hash(body), u32_at(&bytes, 4));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let clean = record(1, 2, b"", b"some event payload");
        for byte in 0..clean.len() {
            for bit in 0..8 {
                let mut bad = clean.clone();
                bad[byte] ^= 1 << bit;
                match decode_record(&Bytes::from(bad)) {
                    Frame::Record(..) => panic!("flip of byte {byte} bit {bit} went unnoticed"),
                    Frame::End | Frame::Invalid { .. } => {}
                }
            }
        }
    }

    #[test]
    fn zero_length_is_end_and_truncation_is_invalid() {
        assert!(matches!(
            decode_record(&Bytes::from(vec![0u8; 64])),
            Frame::End
        ));
        assert!(matches!(decode_record(&Bytes::new()), Frame::End));
        let full = record(1, 1, b"", b"xyz");
        let cut = Bytes::copy_from_slice(&full[..full.len() - 1]);
        assert!(matches!(
            decode_record(&cut),
            Frame::Invalid {
                claimed_end: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = SegmentHeader { first_position: 99 };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        let mut bad = b;
        bad[17] ^= 1;
        assert_eq!(SegmentHeader::decode(&bad), Err(HeaderError::Checksum));
        let mut bad = b;
        bad[0] = b'X';
        assert_eq!(SegmentHeader::decode(&bad), Err(HeaderError::Magic));
        assert_eq!(SegmentHeader::decode(&b[..10]), Err(HeaderError::Short));
    }

    #[test]
    fn every_bit_of_the_header_is_checked() {
        let h = SegmentHeader {
            first_position: 0x0102_0304_0506_0708,
        };
        let b = h.encode();
        for bit in 0..SEGMENT_HEADER_LEN * 8 {
            let mut bad = b;
            bad[bit / 8] ^= 1 << (bit % 8);
            let outcome = SegmentHeader::decode(&bad);
            assert!(
                outcome.is_err(),
                "flip of byte {} bit {} went unnoticed",
                bit / 8,
                bit % 8
            );
        }
        // Every byte, whatever it is changed to, and with the checksum
        // made to match wherever it covers the byte.
        for byte in 0..SEGMENT_HEADER_LEN {
            for value in [0x01, 0x80, 0xff] {
                let mut bad = b;
                bad[byte] ^= value;
                if byte < 24 {
                    let crc = crc32fast::hash(&bad[0..24]);
                    bad[24..28].copy_from_slice(&crc.to_le_bytes());
                }
                // The first position, or another version this build reads.
                let readable =
                    (OLDEST_SEGMENT_VERSION..=NEWEST_SEGMENT_VERSION).contains(&u32_at(&bad, 8));
                match SegmentHeader::decode(&bad) {
                    Ok(decoded) => assert!(
                        ((16..24).contains(&byte) && decoded != h) || (byte == 8 && readable),
                        "byte {byte} ^ {value:#x} accepted as {decoded:?}"
                    ),
                    Err(e) => assert!(!(16..24).contains(&byte), "byte {byte}: {e}"),
                }
            }
        }
    }

    #[test]
    fn reserved_bytes_must_be_zero() {
        let b = SegmentHeader { first_position: 7 }.encode();
        let mut bad = b;
        bad[29] = 1;
        assert_eq!(SegmentHeader::decode(&bad), Err(HeaderError::Reserved(28)));
        let mut bad = b;
        bad[13] = 1;
        let crc = crc32fast::hash(&bad[0..24]);
        bad[24..28].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(SegmentHeader::decode(&bad), Err(HeaderError::Reserved(12)));
        assert_eq!(
            HeaderError::Reserved(28).to_string(),
            "segment header's reserved bytes 28..32 are not zero"
        );
    }

    #[test]
    fn segment_names_round_trip() {
        let n = segment_file_name(123);
        assert_eq!(n, "00000000000000000123.seg");
        assert_eq!(parse_segment_file_name(&n), Some(123));
        assert_eq!(parse_segment_file_name("123.seg"), None);
        assert_eq!(parse_segment_file_name("00000000000000000123.idx"), None);
    }
}
