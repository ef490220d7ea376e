//! Fuzzing entry points: each takes arbitrary bytes, runs one decoder (or the
//! whole of recovery) over them, and checks the invariants its callers rely
//! on. They must never panic; a panic is a bug, either in the code under test
//! or in the invariant checked here.
//!
//! The fuzz targets in `fuzz/` call these functions, and the seed corpus is
//! replayed through them by the `fuzz_corpus` test of the `gesta-tests`
//! crate, so the same checks run under libFuzzer and in CI.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::cache::BlockCache;
use crate::error::{Result, WalError};
use crate::format::{
    self, BODY_FIXED_LEN, FRAME_LEN, Frame, HeaderError, Payload, Record, RecordMeta,
    SEGMENT_HEADER_LEN, SEGMENT_MAGIC, SegmentHeader,
};
use crate::io::fault::FaultFs;
use crate::io::{FileSystem, OpenMode};
use crate::recovery::{self, RecoveryReport};
use crate::writer::WalOptions;
use crate::zseg::{self, CompressedSegment};

/// Flag bit of the first byte of a [`recover_segment`] input: the segment is
/// written exactly as given, without a valid header in front of it.
pub const RAW_SEGMENT: u8 = 1;

/// Flag bit of the first byte of a [`recover_segment`] input: after a
/// successful recovery, append a few records through the returned writer
/// (with segments small enough to roll over) before reopening.
pub const APPEND_AND_REOPEN: u8 = 2;

/// Flag bit of the first byte of a [`recover_segment`] input: before the
/// segment is written, the checksum of its header (if given raw) and of each
/// record frame, walked from the first by their length fields, are set to
/// the right values, so that the fuzzer reaches the checks behind them.
pub const FIX_CHECKSUMS: u8 = 0x20;

/// Where [`recover_segment`] puts the log in its in-memory file system.
const DIR: &str = "/fuzz/wal";

/// Log options for [`recover_segment`]: tiny segments and preallocation so
/// that appends roll over and grow files after a few records.
fn options() -> WalOptions {
    WalOptions {
        segment_size: 1024,
        preallocate: 256,
        ..WalOptions::default()
    }
}

/// Fuzzing entry point for the byte-level format: decodes `data` as a record
/// frame ([`format::decode_record`]), as a segment header
/// ([`SegmentHeader::decode`]), as a compressed segment
/// ([`CompressedSegment`], checksums corrected too) and as a segment file
/// name ([`format::parse_segment_file_name`],
/// [`zseg::parse_compressed_file_name`]). The frame and the header are also
/// decoded once more with their checksums corrected, because a fuzzer
/// rarely guesses a CRC and would otherwise never get past it.
///
/// Checks that an accepted record re-encodes to exactly the bytes it was
/// decoded from, that its positions do not overflow, that an invalid frame's
/// claimed end is what its length field says, that an accepted header is
/// byte for byte its own encoding (no byte of it goes unchecked), and that
/// an accepted file name round-trips. Returns the record frame outcome and the header
/// outcome.
///
/// # Panics
///
/// If one of those invariants does not hold.
pub fn decode_record(data: &[u8]) -> (Frame, std::result::Result<SegmentHeader, HeaderError>) {
    let bytes = Bytes::copy_from_slice(data);
    let frame = format::decode_record(&bytes);
    check_frame(data, &frame);
    let header = SegmentHeader::decode(data);
    check_header(data, header);

    let mut fixed = data.to_vec();
    if fix_record_checksum(&mut fixed, 0).is_some() {
        let frame = format::decode_record(&Bytes::from(fixed.clone()));
        check_frame(&fixed, &frame);
    }
    if fix_header_checksum(&mut fixed) {
        check_header(&fixed, SegmentHeader::decode(&fixed));
    }
    if let Ok(name) = std::str::from_utf8(data)
        && let Some(first) = format::parse_segment_file_name(name)
    {
        assert_eq!(
            format::segment_file_name(first),
            name,
            "a parsed segment file name does not round-trip"
        );
    }
    if let Ok(name) = std::str::from_utf8(data)
        && let Some(first) = zseg::parse_compressed_file_name(name)
    {
        assert_eq!(
            zseg::compressed_file_name(first),
            name,
            "a parsed compressed segment file name does not round-trip"
        );
    }
    check_compressed(data);
    let mut fixed = data.to_vec();
    if fix_compressed_checksums(&mut fixed) {
        check_compressed(&fixed);
    }
    (frame, header)
}

/// Opens `data` as a compressed segment and reads it whole and in pieces:
/// every outcome must be `Ok` or a corruption error, and what is read must
/// be as long as the footer says and the same whichever way it is read.
fn check_compressed(data: &[u8]) {
    let cache = Arc::new(BlockCache::new(1 << 16));
    let opened = CompressedSegment::open("fuzz.zseg".into(), Bytes::copy_from_slice(data), cache);
    let Ok(z) = opened else {
        return;
    };
    let len = z.layout().len;
    let Ok(all) = z.read_all() else {
        return;
    };
    assert_eq!(
        all.len() as u64,
        len,
        "decompressed length differs from the footer's"
    );
    let step = (len / 7).max(1);
    let mut at = 0;
    while at < len {
        let end = (at + step + 3).min(len);
        let part = z
            .read(at, end)
            .expect("a block that decompressed once fails later");
        assert_eq!(
            part,
            all.slice(at as usize..end as usize),
            "a partial read differs"
        );
        at += step;
    }
}

/// Corrects the footer and block checksums of `data` as a compressed
/// segment, where its footer's fields let them be found; returns whether
/// it changed anything.
fn fix_compressed_checksums(data: &mut [u8]) -> bool {
    const FOOTER: usize = 40;
    if data.len() < 16 + FOOTER {
        return false;
    }
    let f = data.len() - FOOTER;
    // Version 2 has a longer header and a dictionary after it, both
    // under the footer's checksum.
    let covered = if format::u32_at(data, 8) == 2 && data.len() >= 24 + FOOTER {
        24 + format::u32_at(data, 16) as usize
    } else {
        16
    };
    let Ok(index) = usize::try_from(format::u64_at(data, f + 24)) else {
        return false;
    };
    let count = format::u32_at(data, f + 32) as usize;
    if index < covered || index.checked_add(count.saturating_mul(16)) != Some(f) {
        return false;
    }
    for i in 0..count {
        let at = index + 16 * i;
        let offset = format::u64_at(data, at) as usize;
        let len = format::u32_at(data, at + 8) as usize;
        if let Some(block) = offset
            .checked_add(len)
            .and_then(|end| data.get(offset..end))
        {
            let crc = crc32fast::hash(block);
            data[at + 12..at + 16].copy_from_slice(&crc.to_le_bytes());
        }
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&data[..covered]);
    crc.update(&data[index..f + 36]);
    let crc = crc.finalize();
    data[f + 36..f + 40].copy_from_slice(&crc.to_le_bytes());
    true
}

/// Sets the head checksum and the checksums of the record frame at `at` in
/// `data` to match its body, if its length field is in range and the body is all there; returns
/// where the record ends.
fn fix_record_checksum(data: &mut [u8], at: usize) -> Option<usize> {
    let frame = data.get(at..at.checked_add(FRAME_LEN)?)?;
    let body_len = format::u32_at(frame, 0) as usize;
    if !(BODY_FIXED_LEN..=format::MAX_BODY_LEN).contains(&body_len) {
        return None;
    }
    let end = at + FRAME_LEN + body_len;
    data.get(at + FRAME_LEN..end)?;
    let body = at + FRAME_LEN;
    let seq_len = format::u32_at(data, body + 12) as usize;
    if seq_len <= body_len - BODY_FIXED_LEN {
        let head_end = body + 24 + seq_len;
        let head_crc = crc32fast::hash(&data[body..head_end]);
        data[head_end..head_end + 4].copy_from_slice(&head_crc.to_le_bytes());
    }
    let crc = crc32fast::hash(&data[body..end]);
    data[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    let frame_crc = crc32fast::hash(&data[at..at + 8]);
    data[at + 8..at + 12].copy_from_slice(&frame_crc.to_le_bytes());
    Some(end)
}

/// Sets the checksum of the segment header at the start of `data`, if there
/// is a whole one; returns whether there was.
fn fix_header_checksum(data: &mut [u8]) -> bool {
    if data.len() < SEGMENT_HEADER_LEN {
        return false;
    }
    let crc = crc32fast::hash(&data[0..24]);
    data[24..28].copy_from_slice(&crc.to_le_bytes());
    true
}

fn check_frame(data: &[u8], frame: &Frame) {
    match frame {
        Frame::Record(record, len) => {
            let len = *len;
            assert!(len <= data.len(), "record claims more bytes than it has");
            assert_eq!(
                len,
                FRAME_LEN + BODY_FIXED_LEN + record.seq.len() + record.payload.len(),
                "record length disagrees with its parts"
            );
            check_meta(&record.meta);
            let mut again = Vec::new();
            format::encode_record(
                &mut again,
                record.meta,
                &record.seq,
                &Payload::new(record.payload.clone()),
            );
            assert_eq!(
                again[..],
                data[..len],
                "an accepted record does not re-encode to its own bytes"
            );
        }
        Frame::End => {
            let head = &data[..data.len().min(4)];
            assert!(
                head.iter().all(|&b| b == 0),
                "end-of-log marker on a non-zero length field"
            );
        }
        Frame::Invalid { claimed_end, .. } => {
            if let Some(end) = *claimed_end {
                assert!(data.len() >= 4, "claimed end without a length field");
                let body_len = format::u32_at(data, 0) as usize;
                assert_eq!(
                    end,
                    FRAME_LEN + body_len,
                    "claimed end is not the length field's"
                );
                assert!(
                    (BODY_FIXED_LEN..=format::MAX_BODY_LEN).contains(&body_len),
                    "claimed end from an out-of-range length"
                );
            }
        }
    }
}

/// The invariants every accepted record's fixed fields must satisfy.
fn check_meta(meta: &RecordMeta) {
    assert!(meta.first_position >= 1, "accepted record at position 0");
    assert!(meta.count >= 1, "accepted record with no events");
    // The position after the record's last one must exist: recovery and the
    // writer compute it as the next position to expect.
    assert!(
        meta.first_position
            .checked_add(u64::from(meta.count))
            .is_some(),
        "accepted record whose positions overflow: first {} count {}",
        meta.first_position,
        meta.count
    );
}

fn check_header(data: &[u8], header: std::result::Result<SegmentHeader, HeaderError>) {
    match header {
        Ok(h) => {
            assert!(data.len() >= SEGMENT_HEADER_LEN && data[..8] == SEGMENT_MAGIC);
            assert_eq!(
                SegmentHeader::decode(&h.encode()),
                Ok(h),
                "a decoded header does not round-trip"
            );
            // Every byte of a header is checked, so only its exact
            // encoding (in the version it says) is accepted.
            assert_eq!(
                h.encode_version(SegmentHeader::version_of(data))[..],
                data[..SEGMENT_HEADER_LEN],
                "a header was accepted with bytes its encoding does not have"
            );
        }
        Err(HeaderError::Short) => assert!(data.len() < SEGMENT_HEADER_LEN),
        Err(_) => assert!(data.len() >= SEGMENT_HEADER_LEN),
    }
}

/// Fuzzing entry point for recovery: writes a segment file built from `data`
/// into a fresh in-memory [`FaultFs`] and opens the log with
/// [`recovery::open`].
///
/// The first byte of `data` holds flags, the rest is the segment: unless the
/// first byte has [`RAW_SEGMENT`] set, a valid header for position 1 is put
/// in front of it; bits 2–4 of the first byte give the `replay_from`
/// position (0–7); with [`FIX_CHECKSUMS`] set, checksums are corrected
/// first. Recovery must return `Ok` or `Err` without panicking. When
/// it succeeds, this checks that the records it reported are consecutive
/// from position 1, that the returned reader gives exactly those records
/// forwards and backwards (whole and from several positions), and that
/// reopening finds the same log with nothing left to repair — after first
/// appending a few records (and rolling over to new segments) if the first
/// byte has [`APPEND_AND_REOPEN`] set.
///
/// Returns what the first recovery returned.
///
/// # Panics
///
/// If one of those invariants does not hold, or the in-memory file system
/// fails where it cannot fail.
pub fn recover_segment(data: &[u8]) -> Result<RecoveryReport> {
    let flags = data.first().copied().unwrap_or(0);
    let body = data.get(1..).unwrap_or(&[]);
    let mut file = Vec::with_capacity(SEGMENT_HEADER_LEN + body.len());
    if flags & RAW_SEGMENT == 0 {
        file.extend_from_slice(&SegmentHeader { first_position: 1 }.encode());
    }
    file.extend_from_slice(body);
    if flags & FIX_CHECKSUMS != 0 {
        if flags & RAW_SEGMENT != 0 {
            fix_header_checksum(&mut file);
        }
        let mut at = SEGMENT_HEADER_LEN;
        while let Some(end) = fix_record_checksum(&mut file, at) {
            at = end;
        }
    }
    let replay_from = u64::from((flags >> 2) & 7);

    let memfs = FaultFs::new();
    let dir = Path::new(DIR);
    let path = dir.join(format::segment_file_name(1));
    memfs.create_dir_all(dir).expect("in-memory mkdir");
    let handle = memfs
        .open(&path, OpenMode::CreateNew)
        .expect("in-memory create");
    handle.write_at(&file, 0).expect("in-memory write");
    handle.sync_data().expect("in-memory sync");
    drop(handle);
    memfs.sync_dir(dir).expect("in-memory directory sync");
    let fs: Arc<dyn FileSystem> = Arc::new(memfs);

    let mut replayed = Vec::new();
    let opened = recovery::open(fs.clone(), dir, options(), replay_from, |r| {
        touch(r);
        replayed.push(r.clone());
        Ok(())
    })?;
    let report = opened.report.clone();

    // Everything recovery verified, read back through the reader.
    let all = read_forward(&opened.reader, 1, u64::MAX);
    check_consecutive(&all, 1);
    assert_eq!(
        all.len() as u64,
        report.records,
        "reader and report disagree"
    );
    assert_eq!(
        all.last().map_or(0, |r| r.meta.last_position()),
        report.last_position
    );
    assert_eq!(
        opened.last_timestamp_micros,
        all.last().map_or(0, |r| r.meta.timestamp_micros)
    );
    let expected_replay: Vec<&Record> = all
        .iter()
        .filter(|r| r.meta.last_position() >= replay_from)
        .collect();
    assert_eq!(
        replayed.len(),
        expected_replay.len(),
        "replay skipped records"
    );
    for (a, b) in replayed.iter().zip(expected_replay) {
        assert_same(a, b);
    }
    check_reader(&opened.reader, &all);

    let mut expected = all;
    let mut opened = opened;
    if flags & APPEND_AND_REOPEN != 0 {
        append_some(&mut opened, &mut expected, body.len());
        check_reader(&opened.reader, &expected);
    }
    drop(opened);

    // A second open finds exactly what the first left, with nothing to cut.
    let mut seen = Vec::new();
    let reopened = match recovery::open(fs, dir, options(), 1, |r| {
        seen.push(r.clone());
        Ok(())
    }) {
        Ok(o) => o,
        Err(e) => panic!("a recovered log does not reopen: {e}"),
    };
    assert_eq!(reopened.report.torn_tail, None, "second open cut a tail");
    assert_eq!(reopened.report.removed_partial_segment, None);
    assert_eq!(seen.len(), expected.len(), "second open lost records");
    for (a, b) in seen.iter().zip(&expected) {
        assert_same(a, b);
    }
    check_reader(&reopened.reader, &expected);
    Ok(report)
}

/// Reads every field of a record, as a consumer of the log would.
fn touch(r: &Record) {
    let meta = r.meta;
    check_meta(&meta);
    let sum = r
        .seq
        .iter()
        .chain(r.payload.iter())
        .fold(0u64, |s, &b| s.wrapping_mul(31).wrapping_add(u64::from(b)));
    std::hint::black_box((sum, meta.last_position(), meta.timestamp_micros));
}

fn assert_same(a: &Record, b: &Record) {
    assert_eq!(a.meta, b.meta, "records differ");
    assert_eq!(a.seq, b.seq, "record sequencing bytes differ");
    assert_eq!(a.payload, b.payload, "record payloads differ");
}

fn check_consecutive(records: &[Record], first: u64) {
    let mut next = first;
    for r in records {
        check_meta(&r.meta);
        assert_eq!(r.meta.first_position, next, "records out of position order");
        next = r.meta.last_position() + 1;
    }
}

fn collect(iter: impl Iterator<Item = Result<Record>>) -> Vec<Record> {
    iter.map(|r| match r {
        Ok(r) => r,
        Err(e) => panic!("reading a recovered log failed: {e}"),
    })
    .collect()
}

fn read_forward(reader: &crate::reader::WalReader, from: u64, up_to: u64) -> Vec<Record> {
    collect(reader.forward(from, up_to))
}

/// Checks that forward and backward reads over `reader` agree with `all`,
/// the log's records in order, whole and from a few positions.
fn check_reader(reader: &crate::reader::WalReader, all: &[Record]) {
    let forward = read_forward(reader, 1, u64::MAX);
    assert_eq!(forward.len(), all.len(), "forward read lost records");
    for (a, b) in forward.iter().zip(all) {
        assert_same(a, b);
    }
    let mut backward = collect(reader.backward(u64::MAX));
    backward.reverse();
    assert_eq!(backward.len(), all.len(), "backward read lost records");
    for (a, b) in backward.iter().zip(all) {
        assert_same(a, b);
    }

    let last = all.last().map_or(0, |r| r.meta.last_position());
    let mut probes = vec![0, 1, last, last.saturating_add(1)];
    if let Some(mid) = all.get(all.len() / 2) {
        probes.push(mid.meta.first_position);
        probes.push(mid.meta.last_position());
    }
    for p in probes {
        let covering: Vec<&Record> = all
            .iter()
            .filter(|r| r.meta.first_position <= p && p <= r.meta.last_position())
            .collect();
        let got = read_forward(reader, p, p);
        assert_eq!(got.len(), covering.len(), "forward({p}, {p}) is wrong");
        for (a, b) in got.iter().zip(covering) {
            assert_same(a, b);
        }
        let tail = read_forward(reader, p, u64::MAX);
        let expected_tail: Vec<&Record> =
            all.iter().filter(|r| r.meta.last_position() >= p).collect();
        assert_eq!(tail.len(), expected_tail.len(), "forward({p}, ..) is wrong");
        for (a, b) in tail.iter().zip(expected_tail) {
            assert_same(a, b);
        }
        let down = collect(reader.backward(p));
        let expected_down: Vec<&Record> = all
            .iter()
            .rev()
            .filter(|r| p != 0 && r.meta.first_position <= p)
            .collect();
        assert_eq!(down.len(), expected_down.len(), "backward({p}) is wrong");
        for (a, b) in down.iter().zip(expected_down) {
            assert_same(a, b);
        }
    }
}

/// Appends three records of sizes derived from `salt`, committing them in
/// two groups, and adds them to `expected`.
fn append_some(opened: &mut recovery::OpenedWal, expected: &mut Vec<Record>, salt: usize) {
    let writer = &mut opened.writer;
    let sizes = [salt % 700, 1 + salt % 97, 900];
    for (i, &size) in sizes.iter().enumerate() {
        let meta = RecordMeta {
            first_position: writer.next_position(),
            count: 1 + (i as u32 + salt as u32) % 3,
            timestamp_micros: 1_000 + i as u64,
        };
        let seq = vec![i as u8; i * 8];
        let payload = Bytes::from(vec![0xA5 ^ i as u8; size]);
        let payload_ = Payload::new(payload.clone());
        let mut r = writer.push(meta, &seq, &payload_);
        if let Ok(crate::writer::Pushed::SegmentFull) = r {
            expect_ok(writer.commit(false), "commit");
            r = writer.push(meta, &seq, &payload_);
        }
        expect_ok(
            r.map(|pushed| assert_eq!(pushed, crate::writer::Pushed::Added)),
            "push",
        );
        if i == 1 {
            expect_ok(writer.commit(false), "commit");
        }
        expected.push(Record {
            meta,
            seq: Bytes::from(seq),
            payload,
        });
    }
    expect_ok(writer.commit(true), "commit");
}

fn expect_ok(r: std::result::Result<(), WalError>, what: &str) {
    if let Err(e) = r {
        panic!("{what} after recovery failed: {e}");
    }
}
