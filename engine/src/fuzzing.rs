//! Fuzzing entry points for the event codec, which is otherwise private to
//! this crate. Not part of the stable API.
//!
//! The fuzz targets in `fuzz/` call these functions, and the seed corpus is
//! replayed through them by the `fuzz_corpus` test of the `gesta-tests`
//! crate.

use bytes::Bytes;
use gesta_wal::Record;
use gesta_wal::format::{self, Frame, Payload, RecordMeta};

use crate::codec;
use crate::error::{Error, Result};
use crate::event::{NewEvent, RecordedEvent};

/// Length of the header [`decode_payload`] reads before the sequencing
/// bytes: `count u16 LE | seq_len u16 LE | first_position u64 LE`.
pub const INPUT_HEADER_LEN: usize = 12;

/// The commit timestamp of every record [`decode_payload`] builds.
pub const TIMESTAMP_MICROS: u64 = 1_700_000_000_000_000;

/// Builds a [`decode_payload`] input: the header, then `seq`, then `payload`.
///
/// # Panics
///
/// If `seq` is longer than `u16::MAX` bytes.
pub fn payload_input(first_position: u64, count: u16, seq: &[u8], payload: &[u8]) -> Vec<u8> {
    let seq_len = u16::try_from(seq.len()).expect("seq fits a u16 length");
    let mut out = Vec::with_capacity(INPUT_HEADER_LEN + seq.len() + payload.len());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&seq_len.to_le_bytes());
    out.extend_from_slice(&first_position.to_le_bytes());
    out.extend_from_slice(seq);
    out.extend_from_slice(payload);
    out
}

/// Validates and encodes a batch of events exactly as an append does,
/// giving the payload of the record that would carry them.
pub fn encode_payload(events: &[NewEvent]) -> Result<Vec<u8>> {
    codec::encode_batch(events)
}

/// Fuzzing entry point for the event codec: decodes the events of a record
/// built from `data`.
///
/// `data` is a header of [`INPUT_HEADER_LEN`] bytes (zero-extended if
/// shorter) giving the record's event count, the length of its sequencing
/// bytes and its first position, then the sequencing bytes, then the
/// payload (everything left). The record is framed with the log's own
/// encoder and decoded with its own decoder, so the codec only sees records
/// the log would hand it; one the log rejects is returned as an error.
///
/// When decoding succeeds, checks that there is one event per counted
/// position, in order, with its revision taken from the sequencing bytes,
/// that looking up each event alone by its position gives the same event;
/// and, if the events are valid to append, that encoding them again and
/// decoding the result gives the same events, and that this second encoding
/// is stable.
///
/// # Panics
///
/// If one of those invariants does not hold.
pub fn decode_payload(data: &[u8]) -> Result<Vec<RecordedEvent>> {
    let mut head = [0u8; INPUT_HEADER_LEN];
    let n = data.len().min(INPUT_HEADER_LEN);
    head[..n].copy_from_slice(&data[..n]);
    let count = u16::from_le_bytes([head[0], head[1]]);
    let seq_len = usize::from(u16::from_le_bytes([head[2], head[3]]));
    let first_position = format::u64_at(&head, 4);
    let rest = &data[n..];
    let (seq, payload) = rest.split_at(seq_len.min(rest.len()));
    // A fuzzer cannot guess per-event checksums; fixing them lets it reach
    // the body decoder (a separate check below keeps them honest).
    let mut payload = payload.to_vec();
    codec::fix_event_checksums(&mut payload, u32::from(count));
    let payload = &payload[..];

    let meta = RecordMeta {
        first_position,
        count: u32::from(count),
        timestamp_micros: TIMESTAMP_MICROS,
    };
    let record = frame(meta, seq, payload)?;
    let decoded = decode(&record);
    check_point_lookups(&record, decoded.as_ref().ok());
    let events = decoded?;
    check_events(meta, seq, &events);
    check_redaction(&record, &events);

    let again: Vec<NewEvent> = events.iter().map(RecordedEvent::to_new).collect();
    if let Ok(payload2) = codec::encode_batch(&again) {
        let mut seq2 = Vec::new();
        for (index, e) in events.iter().enumerate() {
            if let Some(revision) = e.revision {
                codec::put_varint(&mut seq2, index as u64);
                codec::put_varint(&mut seq2, revision);
            }
        }
        let events2 = match frame(meta, &seq2, &payload2).and_then(|r| decode(&r)) {
            Ok(e) => e,
            Err(e) => panic!("re-encoded events do not decode: {e}"),
        };
        assert_eq!(events2, events, "decode(encode(events)) != events");
        let payload3 = match codec::encode_batch(&again) {
            Ok(p) => p,
            Err(e) => panic!("encoding the same events failed the second time: {e}"),
        };
        assert_eq!(payload3, payload2, "encoding is not deterministic");
        let events3: Vec<NewEvent> = events2.iter().map(RecordedEvent::to_new).collect();
        match codec::encode_batch(&events3) {
            Ok(p) => assert_eq!(p, payload2, "canonical encoding is not stable"),
            Err(e) => panic!("decoded canonical events do not encode: {e}"),
        }
    }
    Ok(events)
}

/// Redacting every other event of a record that decodes keeps the
/// payload's length, and the result decodes to the same events with those
/// events' data and metadata empty; redacting again changes nothing.
fn check_redaction(record: &Record, events: &[RecordedEvent]) {
    let odd = |p: u64| p % 2 == 1;
    let payload = match codec::redact_payload(record, &odd) {
        Ok(Some(p)) => p,
        Ok(None) => {
            assert!(
                events
                    .iter()
                    .all(|e| !odd(e.position) || (e.data.is_empty() && e.metadata.is_empty())),
                "nothing to redact, yet an event to redact holds data"
            );
            return;
        }
        Err(e) => panic!("a record that decodes does not redact: {e}"),
    };
    assert_eq!(
        payload.len(),
        record.payload.len(),
        "redaction changed the length"
    );
    let redacted = match frame(record.meta, &record.seq, &payload).and_then(|r| decode(&r)) {
        Ok(e) => e,
        Err(e) => panic!("a redacted record does not decode: {e}"),
    };
    for (r, e) in redacted.iter().zip(events) {
        let mut want = e.clone();
        if odd(e.position) {
            want.data = Bytes::new();
            want.metadata = Bytes::new();
        }
        assert_eq!(r, &want, "redaction changed more than data and metadata");
    }
    let again = frame(record.meta, &record.seq, &payload).expect("framed above");
    match codec::redact_payload(&again, &odd) {
        Ok(None) => {}
        other => panic!("redacting a redacted record again: {other:?}"),
    }
}

/// The payload of the record `first_position` / `seq` / `payload` with the
/// events at `positions` redacted as a compaction rewrites them (the
/// payload unchanged if none is to be), for seeds of the fuzz corpus.
pub fn redact_payload(
    first_position: u64,
    count: u32,
    seq: &[u8],
    payload: &[u8],
    positions: &[u64],
) -> Result<Vec<u8>> {
    let meta = RecordMeta {
        first_position,
        count,
        timestamp_micros: TIMESTAMP_MICROS,
    };
    let record = frame(meta, seq, payload)?;
    Ok(codec::redact_payload(&record, &|p| positions.contains(&p))?
        .map_or_else(|| payload.to_vec(), |p| p.to_vec()))
}

/// Frames a record around `seq` and `payload` and decodes it with the log's
/// decoder.
fn frame(meta: RecordMeta, seq: &[u8], payload: &[u8]) -> Result<Record> {
    let mut framed = Vec::new();
    format::encode_record(
        &mut framed,
        meta,
        seq,
        &Payload::new(Bytes::copy_from_slice(payload)),
    );
    match format::decode_record(&Bytes::from(framed)) {
        Frame::Record(record, _) => Ok(record),
        Frame::End => Err(rejected("record decodes as the end of the log")),
        Frame::Invalid { reason, .. } => Err(rejected(reason)),
    }
}

/// Decodes every event of `record`.
fn decode(record: &Record) -> Result<Vec<RecordedEvent>> {
    let mut events = Vec::new();
    codec::decode_record(record, &mut events)?;
    Ok(events)
}

/// Looks up single events of `record` by position. When the whole record
/// decoded to `events`, each lookup must give the same event, and positions
/// outside the record must be refused; otherwise lookups must merely not
/// panic.
fn check_point_lookups(record: &Record, events: Option<&Vec<RecordedEvent>>) {
    let first = record.meta.first_position;
    let count = u64::from(record.meta.count);
    match events {
        Some(events) => {
            for (i, e) in events.iter().enumerate() {
                match codec::decode_event(record, first + i as u64) {
                    Ok(one) => assert_eq!(&one, e, "point lookup differs from a full decode"),
                    Err(err) => panic!("point lookup of a decodable event failed: {err}"),
                }
            }
            assert!(codec::decode_event(record, first - 1).is_err());
            assert!(codec::decode_event(record, first + count).is_err());
        }
        None => {
            for position in [first, first + count / 2, first + count - 1] {
                let _ = codec::decode_event(record, position);
            }
        }
    }
}

fn rejected(reason: &str) -> Error {
    Error::Corruption {
        file: Default::default(),
        offset: 0,
        reason: format!("the log rejects this record: {reason}"),
    }
}

fn check_events(meta: RecordMeta, seq: &[u8], events: &[RecordedEvent]) {
    assert_eq!(events.len() as u64, u64::from(meta.count), "event count");
    let mut seq = seq;
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.position, meta.first_position + i as u64, "positions");
        assert_eq!(e.timestamp_micros, meta.timestamp_micros, "timestamp");
        match (&e.stream, e.revision) {
            (Some(_), Some(rev)) => loop {
                let (index, revision) = (varint(&mut seq), varint(&mut seq));
                if index == i as u64 {
                    assert_eq!(rev, revision, "revision");
                    break;
                }
                assert!(index < i as u64, "revision of a later event used");
            },
            (None, None) => {}
            _ => panic!("a stream without a revision or a revision without a stream"),
        }
    }
    // What may follow the entries: the tracking trailer (the event count,
    // the source's length, the source, a position), as appends write it.
    if !seq.is_empty() {
        let marker = varint(&mut seq);
        assert_eq!(marker, u64::from(meta.count), "sequencing bytes left over");
        let n = varint(&mut seq) as usize;
        assert!(
            (1..=codec::MAX_SOURCE_LEN).contains(&n),
            "a tracking source no append writes"
        );
        let (source, rest) = seq
            .split_at_checked(n)
            .expect("a source past the seq bytes");
        assert!(
            std::str::from_utf8(source).is_ok(),
            "a tracking source not UTF-8"
        );
        seq = rest;
        varint(&mut seq);
    }
    assert!(seq.is_empty(), "sequencing bytes left over");
}

/// The varint at the start of `seq`, which it steps over.
fn varint(seq: &mut &[u8]) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let (&b, rest) = seq.split_first().expect("a varint past the seq bytes");
        *seq = rest;
        v |= u64::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return v;
        }
    }
}

/// Fuzzing entry point for index run files: opens `data` as a run and, if
/// it is accepted, reads every key's whole posting list, counts and bounds,
/// and walks a cursor over each list. The same is done for a copy with its
/// checksum corrected (a fuzzer rarely guesses a CRC-32), which is how the
/// structural checks behind the checksum are reached. Accepted runs that
/// the writer could have produced must read back as written; anything else
/// must be refused or read without panicking. Returns the outcome for the
/// input as given: the number of keys.
pub fn decode_index_run(data: &[u8]) -> std::result::Result<u64, gesta_index::RunError> {
    let result = gesta_index::Run::open(Bytes::copy_from_slice(data)).map(|run| walk_run(&run));
    if data.len() >= 12 {
        let mut fixed = data.to_vec();
        let at = fixed.len() - 12;
        let crc = crc32fast::hash(&fixed[..at]);
        fixed[at..at + 4].copy_from_slice(&crc.to_le_bytes());
        if let Ok(run) = gesta_index::Run::open(Bytes::from(fixed)) {
            walk_run(&run);
        }
    }
    result
}

fn walk_run(run: &gesta_index::Run) -> u64 {
    // The keys as a listing walks them: the directory and the id section
    // merged, which must end.
    let _ = run.keys_from(&[]).count();
    let mut keys = 0;
    for (key, list) in run.iter() {
        keys += 1;
        let _ = (run.count(&key), run.first(&key), run.last(&key));
        if let Some(mut cursor) = run.cursor(&key) {
            // Bounded: a damaged list must not make a cursor loop forever.
            let mut at = cursor.seek_ge(0);
            for _ in 0..=list.len() {
                let Some(p) = at else { break };
                at = cursor.seek_ge(p.saturating_add(1));
            }
        }
    }
    keys
}

/// Fuzzing entry point for MANIFEST files: decodes `data` (and a copy with
/// its checksum corrected); an accepted MANIFEST must encode back to the
/// same bytes. Returns the outcome for the input as given.
pub fn decode_manifest(
    data: &[u8],
) -> std::result::Result<
    gesta_compaction::manifest::Manifest,
    gesta_compaction::manifest::ManifestError,
> {
    use gesta_compaction::manifest::Manifest;
    let check = |bytes: &[u8]| {
        let decoded = Manifest::decode(bytes);
        if let Ok(m) = &decoded {
            assert_eq!(
                m.encode(),
                bytes,
                "an accepted MANIFEST does not re-encode to its bytes"
            );
        }
        decoded
    };
    let result = check(data);
    if let Some(fixed) = with_trailing_crc(data) {
        let _ = check(&fixed);
    }
    result
}

/// Fuzzing entry point for snapshot files: decodes `data` (and a copy with
/// its checksum corrected); an accepted snapshot must survive being encoded
/// again and decoded. Returns the outcome for the input as given.
pub fn decode_snapshot(
    data: &[u8],
) -> std::result::Result<(String, u64, Vec<u8>), (u64, &'static str)> {
    use gesta_compaction::snapshot::{decode, encode};
    let check = |bytes: &[u8]| {
        let decoded = decode(bytes);
        if let Ok((key, snapshot)) = &decoded {
            let again = encode(key, snapshot.position, &snapshot.state)
                .expect("an accepted snapshot encodes");
            let (key2, snapshot2) = decode(&again).expect("a re-encoded snapshot decodes");
            assert_eq!(
                (&key2, snapshot2.position, &snapshot2.state),
                (key, snapshot.position, &snapshot.state),
                "a snapshot does not survive encode(decode(..))"
            );
        }
        decoded.map(|(key, s)| (key, s.position, s.state))
    };
    let result = check(data);
    if let Some(fixed) = with_trailing_crc(data) {
        let _ = check(&fixed);
    }
    result
}

/// `data` with its last four bytes set to the CRC-32 of the rest (the
/// checksum layout of MANIFEST and snapshot files), if it has four bytes.
fn with_trailing_crc(data: &[u8]) -> Option<Vec<u8>> {
    let at = data.len().checked_sub(4)?;
    let mut fixed = data.to_vec();
    let crc = crc32fast::hash(&fixed[..at]);
    fixed[at..].copy_from_slice(&crc.to_le_bytes());
    Some(fixed)
}

/// Fuzzing entry point for lifecycle journal entries (the audit trail's
/// binary form, with what each operation did after it: every kind —
/// retroactive tags, redaction, removal, retention rules): decodes `data`
/// as a journal entry, as an audit entry alone and as a retention rule.
/// Whatever is accepted must survive being encoded again and decoded (the
/// same value: a number may have been written in more bytes than it
/// needs). Returns whether `data` was accepted as a journal entry.
pub fn decode_journal_entry(data: &[u8]) -> bool {
    use crate::lifecycle::{
        decode_entry, decode_journal_entry, decode_rule, encode_entry, encode_journal_entry,
        encode_rule,
    };
    if let Ok(entry) = decode_entry(data) {
        let again = decode_entry(&encode_entry(&entry));
        assert_eq!(
            again.ok(),
            Some(entry),
            "an audit entry does not round-trip"
        );
    }
    if let Ok(rule) = decode_rule(data) {
        let again = decode_rule(&encode_rule(&rule));
        assert_eq!(
            again.ok(),
            Some(rule),
            "a retention rule does not round-trip"
        );
    }
    match decode_journal_entry(data) {
        Ok((entry, lists)) => {
            let again = decode_journal_entry(&encode_journal_entry(&entry, &lists));
            assert_eq!(
                again.ok(),
                Some((entry, lists)),
                "a journal entry does not round-trip"
            );
            true
        }
        Err(_) => false,
    }
}

/// A journal entry's bytes, for seeds: `operation` made at `head`, with
/// the positions lists the journal keeps after it.
pub fn journal_entry_input(
    operation: crate::lifecycle::Operation,
    head: u64,
    lists: &[Vec<u64>],
) -> Vec<u8> {
    let entry = crate::lifecycle::AuditEntry {
        sequence: 1,
        timestamp_micros: 1_700_000_000_000_000,
        head,
        operation,
    };
    crate::lifecycle::encode_journal_entry(&entry, lists)
}

/// Arbitrary bytes as a key file (crypto-shredding's `KEYS`): `true` if
/// they decode, and then they must encode back to the same bytes (the
/// format has one encoding).
#[cfg(feature = "encryption")]
pub fn decode_key_file(data: &[u8]) -> bool {
    use crate::encryption::keys;
    match keys::decode(data, std::path::Path::new("KEYS")) {
        Ok((prefix, entries)) => {
            assert_eq!(
                keys::encode(&prefix, &entries),
                data,
                "a key file does not round-trip"
            );
            true
        }
        Err(_) => false,
    }
}

/// A key file's bytes, for seeds: `prefix`, a live key (all bytes `n`,
/// created at time `n`) for each of `live`, and a tombstone for each of
/// `forgotten` (redacted or not, alternately).
#[cfg(feature = "encryption")]
pub fn key_file_input(prefix: &str, live: &[&str], forgotten: &[&str]) -> Vec<u8> {
    use crate::encryption::keys::{Entries, Entry, KEY_LEN, encode};
    let mut entries = Entries::new();
    for (n, subject) in live.iter().enumerate() {
        entries.insert(
            (*subject).to_owned(),
            Entry::Live {
                key: std::sync::Arc::new(zeroize::Zeroizing::new([n as u8; KEY_LEN])),
                since: n as u64,
            },
        );
    }
    for (n, subject) in forgotten.iter().enumerate() {
        entries.insert(
            (*subject).to_owned(),
            Entry::Forgotten {
                since: 1_700_000_000_000_000 + n as u64,
                redacted: n % 2 == 0,
            },
        );
    }
    encode(prefix, &entries)
}
