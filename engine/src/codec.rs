//! The encoding of events inside a log record's payload, and of the
//! per-record sequencing bytes (stream revisions) the committer adds.
//!
//! Each event: `flags u8` (bit 0 id, bit 1 stream, bit 2 metadata),
//! `type_len u8, type`, `tag_count u8, (tag_len u8, tag)*`,
//! `[stream_len u8, stream]`, `[id u128 LE]`, `[metadata_len varint, metadata]`,
//! `data_len varint, data`. The sequencing bytes are one `u64 LE` revision per
//! event that names a stream, in event order. See `docs/FORMAT.md`.

use bytes::Bytes;
use gesta_index::Key;
use gesta_wal::{Record, format::u64_at};

use crate::error::{Error, Result};
use crate::event::{MAX_BATCH_LEN, NewEvent, RecordedEvent, validate};

const FLAG_ID: u8 = 1;
const FLAG_STREAM: u8 = 2;
const FLAG_METADATA: u8 = 4;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Validates a batch and encodes it; fails before anything is sent to the
/// committer.
pub(crate) fn encode_batch(events: &[NewEvent]) -> Result<Vec<u8>> {
    if events.is_empty() {
        return Err(Error::invalid(
            "empty batch: an append needs at least one event",
        ));
    }
    if events.len() > u32::MAX as usize {
        return Err(Error::invalid("too many events in one batch"));
    }
    let mut size = 0usize;
    for (i, e) in events.iter().enumerate() {
        validate(i, e)?;
        size += 32
            + e.event_type.len()
            + e.tags.iter().map(|t| t.len() + 1).sum::<usize>()
            + e.stream.as_ref().map_or(0, String::len)
            + e.metadata.len()
            + e.data.len();
        if size > MAX_BATCH_LEN {
            return Err(Error::invalid(format!(
                "batch exceeds {MAX_BATCH_LEN} bytes encoded"
            )));
        }
    }
    let mut out = Vec::with_capacity(size);
    for e in events {
        let mut flags = 0u8;
        if e.id.is_some() {
            flags |= FLAG_ID;
        }
        if e.stream.is_some() {
            flags |= FLAG_STREAM;
        }
        if !e.metadata.is_empty() {
            flags |= FLAG_METADATA;
        }
        out.push(flags);
        out.push(e.event_type.len() as u8);
        out.extend_from_slice(e.event_type.as_bytes());
        out.push(e.tags.len() as u8);
        for t in &e.tags {
            out.push(t.len() as u8);
            out.extend_from_slice(t.as_bytes());
        }
        if let Some(s) = &e.stream {
            out.push(s.len() as u8);
            out.extend_from_slice(s.as_bytes());
        }
        if let Some(id) = e.id {
            out.extend_from_slice(&id.to_le_bytes());
        }
        if !e.metadata.is_empty() {
            put_varint(&mut out, e.metadata.len() as u64);
            out.extend_from_slice(&e.metadata);
        }
        put_varint(&mut out, e.data.len() as u64);
        out.extend_from_slice(&e.data);
    }
    Ok(out)
}

/// A cursor over an encoded payload that fails instead of panicking on
/// malformed input (the payload passed its CRC, but a bug or a
/// version mismatch must still not crash a reader).
struct Cursor<'a> {
    bytes: &'a Bytes,
    at: usize,
}

fn malformed(what: &str) -> Error {
    Error::Corruption {
        file: Default::default(),
        offset: 0,
        reason: format!("malformed event in a record that passed its checksum: {what}"),
    }
}

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> Result<u8> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or_else(|| malformed("truncated"))?;
        self.at += 1;
        Ok(b)
    }

    /// The next `n` bytes as a plain slice (no reference count touched).
    fn slice(&mut self, n: usize) -> Result<&'a [u8]> {
        let bytes: &'a Bytes = self.bytes;
        let end = self.at.checked_add(n).filter(|&e| e <= bytes.len());
        let end = end.ok_or_else(|| malformed("field runs past the payload"))?;
        let b = &bytes[self.at..end];
        self.at = end;
        Ok(b)
    }

    fn name(&mut self) -> Result<&'a str> {
        let n = self.u8()? as usize;
        std::str::from_utf8(self.slice(n)?).map_err(|_| malformed("name is not UTF-8"))
    }

    fn take(&mut self, n: usize) -> Result<Bytes> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| malformed("field runs past the payload"))?;
        let b = self.bytes.slice(self.at..end);
        self.at = end;
        Ok(b)
    }

    fn string(&mut self, n: usize) -> Result<String> {
        std::str::from_utf8(self.slice(n)?)
            .map(str::to_owned)
            .map_err(|_| malformed("name is not UTF-8"))
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(malformed("varint too long"))
    }
}

/// Decodes the events of one record in order, or steps over them.
struct Decoder<'a> {
    record: &'a Record,
    cursor: Cursor<'a>,
    revisions: usize,
    index: u32,
}

impl<'a> Decoder<'a> {
    fn new(record: &'a Record) -> Decoder<'a> {
        Decoder {
            record,
            cursor: Cursor {
                bytes: &record.payload,
                at: 0,
            },
            revisions: 0,
            index: 0,
        }
    }

    fn revision(&mut self) -> Result<u64> {
        let at = self.revisions * 8;
        if at + 8 > self.record.seq.len() {
            return Err(malformed("missing stream revision"));
        }
        self.revisions += 1;
        Ok(u64_at(&self.record.seq, at))
    }

    /// Steps over the next event without allocating or touching a
    /// reference count: stepping over the events before a hit in a large
    /// batch is on the path of every indexed read.
    fn skip(&mut self) -> Result<()> {
        let c = &mut self.cursor;
        let flags = c.u8()?;
        let n = c.u8()? as usize;
        c.slice(n)?;
        for _ in 0..c.u8()? {
            let n = c.u8()? as usize;
            c.slice(n)?;
        }
        if flags & FLAG_STREAM != 0 {
            let n = c.u8()? as usize;
            c.slice(n)?;
            self.revisions += 1;
        }
        let c = &mut self.cursor;
        if flags & FLAG_ID != 0 {
            c.slice(16)?;
        }
        if flags & FLAG_METADATA != 0 {
            let n = c.varint()? as usize;
            c.slice(n)?;
        }
        let n = c.varint()? as usize;
        c.slice(n)?;
        self.index += 1;
        Ok(())
    }

    /// The index entries of the next event — its type, tags, stream and id
    /// keys at its position — without building the event.
    fn keys(&mut self, out: &mut Vec<(Key, u64)>) -> Result<()> {
        let position = self.record.meta.first_position + u64::from(self.index);
        let c = &mut self.cursor;
        let flags = c.u8()?;
        out.push((Key::event_type(c.name()?), position));
        for _ in 0..c.u8()? {
            out.push((Key::tag(c.name()?), position));
        }
        if flags & FLAG_STREAM != 0 {
            out.push((Key::stream(c.name()?), position));
            self.revisions += 1;
        }
        let c = &mut self.cursor;
        if flags & FLAG_ID != 0 {
            let b = c.slice(16)?;
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            out.push((Key::id(u128::from_le_bytes(a)), position));
        }
        if flags & FLAG_METADATA != 0 {
            let n = c.varint()? as usize;
            c.slice(n)?;
        }
        let n = c.varint()? as usize;
        c.slice(n)?;
        self.index += 1;
        Ok(())
    }

    fn next(&mut self) -> Result<RecordedEvent> {
        let meta = self.record.meta;
        let c = &mut self.cursor;
        let flags = c.u8()?;
        let type_len = c.u8()? as usize;
        let event_type = c.string(type_len)?;
        let tag_count = c.u8()? as usize;
        let mut tags = Vec::with_capacity(tag_count);
        for _ in 0..tag_count {
            let n = c.u8()? as usize;
            tags.push(c.string(n)?);
        }
        let (stream, revision) = if flags & FLAG_STREAM != 0 {
            let n = c.u8()? as usize;
            let stream = c.string(n)?;
            (Some(stream), Some(self.revision()?))
        } else {
            (None, None)
        };
        let c = &mut self.cursor;
        let id = if flags & FLAG_ID != 0 {
            let b = c.take(16)?;
            let mut a = [0u8; 16];
            a.copy_from_slice(&b);
            Some(u128::from_le_bytes(a))
        } else {
            None
        };
        let metadata = if flags & FLAG_METADATA != 0 {
            let n = c.varint()? as usize;
            c.take(n)?
        } else {
            Bytes::new()
        };
        let n = c.varint()? as usize;
        let data = c.take(n)?;
        let position = meta.first_position + u64::from(self.index);
        self.index += 1;
        Ok(RecordedEvent {
            position,
            event_type,
            tags,
            data,
            metadata,
            id,
            stream,
            revision,
            timestamp_micros: meta.timestamp_micros,
        })
    }
}

/// Decodes every event of a record, appending them to `out` in order.
pub(crate) fn decode_record(record: &Record, out: &mut Vec<RecordedEvent>) -> Result<()> {
    let mut d = Decoder::new(record);
    for _ in 0..record.meta.count {
        out.push(d.next()?);
    }
    if d.cursor.at != record.payload.len() {
        return Err(malformed("trailing bytes after the last event"));
    }
    Ok(())
}

/// Appends the index entries of every event of `record` at a position of
/// `from` or later — what replaying the log into the memtable needs.
pub(crate) fn index_entries(record: &Record, from: u64, out: &mut Vec<(Key, u64)>) -> Result<()> {
    let mut d = Decoder::new(record);
    for _ in 0..record.meta.count {
        if record.meta.first_position + u64::from(d.index) >= from {
            d.keys(out)?;
        } else {
            d.skip()?;
        }
    }
    if d.cursor.at != record.payload.len() {
        return Err(malformed("trailing bytes after the last event"));
    }
    Ok(())
}

/// Decodes the one event of a record at `position`.
pub(crate) fn decode_event(record: &Record, position: u64) -> Result<RecordedEvent> {
    let index = position
        .checked_sub(record.meta.first_position)
        .filter(|&i| i < u64::from(record.meta.count))
        .ok_or_else(|| malformed("position outside the record"))?;
    let mut d = Decoder::new(record);
    for _ in 0..index {
        d.skip()?;
    }
    d.next()
}
