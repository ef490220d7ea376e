//! The encoding of events inside a log record's payload, and of the
//! per-record sequencing bytes (stream revisions) the committer adds.
//!
//! The payload is a table of `count` event end offsets (`u32 LE`, relative to
//! the end of the table), then the events back to back, each `crc u32 |
//! body`, where `crc` is the CRC-32 of the event's index in the batch
//! (`u32 LE`) followed by its body. The body is `flags u8` (bit 0 id, bit 1
//! stream, bit 2 metadata, bit 3 wide; no other may be set), `type_len,
//! type`, `tag_count u8, (tag_len, tag)*`, `[stream_len, stream]`, `[id u128
//! LE]`, `[metadata_len varint, metadata]`, then the data (the rest of the
//! body), where each name's length is one byte, or a varint in a wide
//! event (one with a name over 255 bytes). The sequencing bytes
//! are, for each event that names a stream, in event order, `index varint |
//! revision varint`, then, for a batch appended with tracking info, a
//! trailer: `count varint | source_len varint, source | position varint`.
//! See `docs/FORMAT.md`.
//!
//! This is what makes a point read cheap: the n-th event of a batch is found
//! through the table without touching the events before it, and it is
//! verified by its own checksum rather than the whole record's. Seeding the
//! checksum with the index means a damaged table entry that points at another
//! event's bytes is caught too; finding a revision by index in the
//! sequencing bytes (which the record's head checksum covers) makes it
//! independent of the flags of other, unverified, events.

use bytes::Bytes;
use gesta_index::Key;
use gesta_wal::{MappedPayload, Record, RecordHead, RecordMeta};

use crate::error::{Error, Result};
use crate::event::{MAX_BATCH_LEN, NewEvent, RecordedEvent, validate};
use crate::view::{EventRef, Tags};

const FLAG_ID: u8 = 1;
const FLAG_STREAM: u8 = 2;
const FLAG_METADATA: u8 = 4;
/// The event's name lengths are varints, not bytes: set only on an event
/// with a name longer than 255 bytes (segment format 3 on; older readers
/// refuse such segments by their version).
const FLAG_WIDE: u8 = 8;
/// The event was redacted: its metadata (if any) and data bytes are zeros
/// and read as empty. Set only by the rewrite of a sealed segment (format
/// 4, see [`redact_payload`]); the writer never sets it.
const FLAG_REDACTED: u8 = 16;
/// Every flag a reader knows: an event with another set is malformed.
const KNOWN_FLAGS: u8 = FLAG_ID | FLAG_STREAM | FLAG_METADATA | FLAG_WIDE | FLAG_REDACTED;

/// Appends a name's length: one byte, or a varint in a wide event.
fn put_len(out: &mut Vec<u8>, len: usize, wide: bool) {
    if wide {
        put_varint(out, len as u64);
    } else {
        out.push(len as u8);
    }
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The checksum of the event at `index` of a batch whose body is `body`.
fn event_crc(index: u32, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&index.to_le_bytes());
    h.update(body);
    h.finalize()
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
    let table = events.len() * 4;
    let mut out = Vec::with_capacity(table + size + events.len() * 4);
    out.resize(table, 0);
    for (index, e) in events.iter().enumerate() {
        let crc_at = out.len();
        out.extend_from_slice(&[0; 4]);
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
        let wide = e.event_type.len() > 255
            || e.tags.iter().any(|t| t.len() > 255)
            || e.stream.as_ref().is_some_and(|s| s.len() > 255);
        if wide {
            flags |= FLAG_WIDE;
        }
        out.push(flags);
        put_len(&mut out, e.event_type.len(), wide);
        out.extend_from_slice(e.event_type.as_bytes());
        out.push(e.tags.len() as u8);
        for t in &e.tags {
            put_len(&mut out, t.len(), wide);
            out.extend_from_slice(t.as_bytes());
        }
        if let Some(s) = &e.stream {
            put_len(&mut out, s.len(), wide);
            out.extend_from_slice(s.as_bytes());
        }
        if let Some(id) = e.id {
            out.extend_from_slice(&id.to_le_bytes());
        }
        if !e.metadata.is_empty() {
            put_varint(&mut out, e.metadata.len() as u64);
            out.extend_from_slice(&e.metadata);
        }
        out.extend_from_slice(&e.data);
        let crc = event_crc(index as u32, &out[crc_at + 4..]);
        out[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
        let end = (out.len() - table) as u32;
        out[index * 4..index * 4 + 4].copy_from_slice(&end.to_le_bytes());
    }
    Ok(out)
}

/// Rewrites the checksum of every event of a `count`-event payload to match
/// its body, as far as the table is intact: lets a fuzzer reach the body
/// decoder, which a guessed checksum never would.
#[doc(hidden)]
pub fn fix_event_checksums(payload: &mut [u8], count: u32) {
    let table = count as usize * 4;
    if payload.len() < table {
        return;
    }
    let mut start = table;
    for index in 0..count {
        let at = index as usize * 4;
        let end = table + u32_at(payload, at) as usize;
        if end > payload.len() || end < start + 4 {
            return;
        }
        let crc = event_crc(index, &payload[start + 4..end]);
        payload[start..start + 4].copy_from_slice(&crc.to_le_bytes());
        start = end;
    }
}

/// A little-endian u32 at `at`; the caller has checked the bounds.
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A cursor over an encoded payload that fails instead of panicking on
/// malformed input (the payload passed its CRC, but a bug or a
/// version mismatch must still not crash a reader).
struct Cursor<'a> {
    bytes: &'a Bytes,
    at: usize,
    /// Reads stop here (the end of the payload, or of one event's body).
    end: usize,
}

/// What decoding found wrong with a record, kept to two words so that the
/// decoder's results come back in registers rather than through the stack
/// (a full [`Error`] in every `Result` cost a third of a scan); it becomes
/// an [`Error`] where it leaves this module.
#[derive(Debug)]
enum Bad {
    /// Bytes that passed their record's checksum but do not decode.
    Malformed(&'static str),
    /// The event at this position failed its own checksum.
    Checksum(u64),
}

/// A decoding step's result.
type Decoded<T> = std::result::Result<T, Bad>;

impl From<Bad> for Error {
    fn from(bad: Bad) -> Error {
        let reason = match bad {
            Bad::Malformed(what) => {
                format!("malformed event in a record that passed its checksum: {what}")
            }
            Bad::Checksum(position) => {
                format!("checksum mismatch in the event at position {position}")
            }
        };
        Error::Corruption {
            file: Default::default(),
            offset: 0,
            reason,
        }
    }
}

fn malformed(what: &'static str) -> Bad {
    Bad::Malformed(what)
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a Bytes) -> Cursor<'a> {
        Cursor {
            bytes,
            at: 0,
            end: bytes.len(),
        }
    }

    #[inline(always)]
    fn u8(&mut self) -> Decoded<u8> {
        if self.at >= self.end {
            return Err(malformed("truncated"));
        }
        let b = self.bytes[self.at];
        self.at += 1;
        Ok(b)
    }

    /// The next `n` bytes as a plain slice (no reference count touched).
    #[inline(always)]
    fn slice(&mut self, n: usize) -> Decoded<&'a [u8]> {
        let bytes: &'a Bytes = self.bytes;
        let end = self.at.checked_add(n).filter(|&e| e <= self.end);
        let end = end.ok_or_else(|| malformed("field runs past the payload"))?;
        let b = &bytes[self.at..end];
        self.at = end;
        Ok(b)
    }

    /// A name's length: a byte, or a varint in a wide event.
    #[inline(always)]
    fn len(&mut self, wide: bool) -> Decoded<usize> {
        if wide {
            usize::try_from(self.varint()?).map_err(|_| malformed("name too long"))
        } else {
            self.u8().map(usize::from)
        }
    }

    fn name(&mut self, wide: bool) -> Decoded<&'a str> {
        let n = self.len(wide)?;
        std::str::from_utf8(self.slice(n)?).map_err(|_| malformed("name is not UTF-8"))
    }

    /// An event's flags, refused if any is unknown.
    #[inline(always)]
    fn flags(&mut self) -> Decoded<u8> {
        let flags = self.u8()?;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(malformed("unknown event flags"));
        }
        Ok(flags)
    }

    fn string(&mut self, n: usize) -> Decoded<String> {
        std::str::from_utf8(self.slice(n)?)
            .map(str::to_owned)
            .map_err(|_| malformed("name is not UTF-8"))
    }

    /// A LEB128 varint. Point reads step over many of them (event lengths,
    /// revision indices), so the one-byte case is kept short.
    #[inline(always)]
    fn varint(&mut self) -> Decoded<u64> {
        match self.bytes.get(self.at) {
            Some(&b) if b < 0x80 && self.at < self.end => {
                self.at += 1;
                Ok(u64::from(b))
            }
            _ => self.varint_long(),
        }
    }

    fn varint_long(&mut self) -> Decoded<u64> {
        let rest = self.bytes.get(self.at..self.end).unwrap_or_default();
        let mut v = 0u64;
        for (i, &b) in rest.iter().take(10).enumerate() {
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.at += i + 1;
                return Ok(v);
            }
        }
        Err(malformed("truncated or overlong varint"))
    }
}

/// Where an event's names lie: its type, its tags and its stream, each a
/// length (a byte, or a varint in a wide event) and that many bytes of
/// UTF-8, one after the other (with the tag count between type and tags).
struct Names<'a> {
    /// From the type's length byte to the end of the stream's name.
    bytes: &'a [u8],
    /// The type's start and end, the tags' start and end, in `bytes`.
    type_start: usize,
    type_end: usize,
    tags: (usize, usize),
    tag_count: usize,
    /// The stream's name, in `bytes`.
    stream: Option<(usize, usize)>,
    /// Whether every length is below 128 (so that each is one byte, an
    /// ASCII char).
    short: bool,
    /// Whether the lengths are varints (a wide event).
    wide: bool,
}

impl<'a> Names<'a> {
    /// Steps `c` over the names, checking their bounds but not yet their
    /// UTF-8.
    #[inline(always)]
    fn read(c: &mut Cursor<'a>, has_stream: bool, wide: bool) -> Decoded<Names<'a>> {
        let start = c.at;
        let mut lengths = c.len(wide)?;
        let type_start = c.at - start;
        c.slice(lengths)?;
        let type_end = c.at - start;
        let tag_count = c.u8()? as usize;
        let tags_start = c.at - start;
        for _ in 0..tag_count {
            let n = c.len(wide)?;
            lengths |= n;
            c.slice(n)?;
        }
        let tags = (tags_start, c.at - start);
        let stream = if has_stream {
            let n = c.len(wide)?;
            lengths |= n;
            c.slice(n)?;
            Some((c.at - start - n, c.at - start))
        } else {
            None
        };
        let all: &'a Bytes = c.bytes;
        Ok(Names {
            bytes: &all[start..c.at],
            type_start,
            type_end,
            tags,
            tag_count,
            stream,
            short: lengths < 0x80,
            wide,
        })
    }

    /// The names as strings. Their UTF-8 is checked in one pass over all of
    /// them when every length byte between them is below 128 (an ASCII
    /// char: the whole stretch is then UTF-8 exactly when each name is, and
    /// each is cut from it at char boundaries), else name by name.
    #[inline(always)]
    fn checked(&self) -> Decoded<(&'a str, Tags<'a>, Option<&'a str>)> {
        let not_utf8 = || malformed("name is not UTF-8");
        if self.short
            && let Ok(text) = std::str::from_utf8(self.bytes)
        {
            let cut = |(a, b): (usize, usize)| text.get(a..b);
            if let (Some(event_type), Some(tags), Some(stream)) = (
                cut((self.type_start, self.type_end)),
                cut(self.tags),
                self.stream.map_or(Some(None), |s| cut(s).map(Some)),
            ) {
                return Ok((event_type, Tags::text(tags, self.tag_count), stream));
            }
        }
        let utf8 = |(a, b): (usize, usize)| std::str::from_utf8(&self.bytes[a..b]);
        let event_type = utf8((self.type_start, self.type_end)).map_err(|_| not_utf8())?;
        let (mut at, end) = self.tags;
        while at < end {
            let (n, from) = if self.wide {
                let (n, from) = varint_at(self.bytes, at).ok_or_else(not_utf8)?;
                (n as usize, from)
            } else {
                (usize::from(self.bytes[at]), at + 1)
            };
            utf8((from, from + n)).map_err(|_| not_utf8())?;
            at = from + n;
        }
        let stream = match self.stream {
            Some(s) => Some(utf8(s).map_err(|_| not_utf8())?),
            None => None,
        };
        let tags = Tags::encoded(
            &self.bytes[self.tags.0..self.tags.1],
            self.tag_count,
            self.wide,
        );
        Ok((event_type, tags, stream))
    }
}

/// Where event `index` of a record of `count` events lies in its payload,
/// relative to the end of the event table, from entries of the table
/// starting with entry `first` (the whole table, or entries `index - 1` and
/// `index`). Its frame (checksum and body) is at least five bytes.
fn event_bounds(entries: &[u8], first: usize, count: u32, index: u32) -> Decoded<(usize, usize)> {
    let i = index as usize;
    if i >= count as usize || first > i.saturating_sub(1) {
        return Err(malformed("event table truncated"));
    }
    let at = |k: usize| {
        let k = k - first;
        entries
            .get(k * 4..k * 4 + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("four bytes")) as usize)
            .ok_or_else(|| malformed("event table truncated"))
    };
    let start = match i {
        0 => 0,
        _ => at(i - 1)?,
    };
    let end = at(i)?;
    if end < start + 5 {
        return Err(malformed("event bounds out of range"));
    }
    Ok((start, end))
}

/// Decodes the events of one record in order, or steps over them.
struct Decoder<'a> {
    meta: RecordMeta,
    /// The record's payload, or, for a windowed point read, the frame of
    /// the one event read (see [`decode_event_in_window`]).
    payload: &'a Bytes,
    /// Whether `payload` is one event's frame rather than the payload.
    windowed: bool,
    /// Over the payload: at the next event's frame.
    cursor: Cursor<'a>,
    /// Over the sequencing bytes: at the next stream event's revision.
    seq: Cursor<'a>,
    index: u32,
    /// Whether revisions are looked up at their place rather than walked
    /// to: for a point read, which decodes one event of the record.
    direct: bool,
    /// Every event's revision by index, when the record's head is kept
    /// with its [`RevisionTable`].
    table: Option<&'a RevisionTable>,
}

impl<'a> Decoder<'a> {
    fn new(record: &'a Record) -> Decoder<'a> {
        Decoder::of(record.meta, &record.seq, &record.payload)
    }

    fn of(meta: RecordMeta, seq: &'a Bytes, payload: &'a Bytes) -> Decoder<'a> {
        Decoder {
            meta,
            payload,
            windowed: false,
            cursor: Cursor::new(payload),
            seq: Cursor::new(seq),
            index: 0,
            direct: false,
            table: None,
        }
    }

    fn position(&self) -> u64 {
        self.meta.first_position + u64::from(self.index)
    }

    /// The next event's body, found through the table and checked against
    /// its checksum if `verify`.
    #[inline(always)]
    fn frame(&mut self, verify: bool) -> Decoded<Cursor<'a>> {
        let payload: &'a Bytes = self.cursor.bytes;
        let (start, end) = if self.windowed {
            if payload.len() < 5 {
                return Err(malformed("event bounds out of range"));
            }
            (0, payload.len())
        } else {
            let table = self.meta.count as usize * 4;
            let entries = payload.get(..table).unwrap_or_default();
            let (start, end) = event_bounds(entries, 0, self.meta.count, self.index)?;
            let (start, end) = (table + start, table + end);
            if end > payload.len() {
                return Err(malformed("event bounds out of range"));
            }
            (start, end)
        };
        let body = &payload[start + 4..end];
        if verify && event_crc(self.index, body).to_le_bytes() != payload[start..start + 4] {
            return Err(Bad::Checksum(self.position()));
        }
        self.cursor.at = end;
        Ok(Cursor {
            bytes: payload,
            at: start + 4,
            end,
        })
    }

    /// The revision of the current event, found by its index in the
    /// sequencing bytes (which the record's head checksum covers): straight
    /// at its place when every event before it names a stream (see
    /// [`dense_revision`]), else by walking the entries from where the
    /// decoder is.
    #[inline(always)]
    fn revision(&mut self) -> Decoded<u64> {
        // A scan reads the entries in order, so the next one is the current
        // event's: taken here, inline, when both its varints are short
        // (every entry of a batch of up to 16,384 events with revisions
        // below 16,384), rather than through a call per event.
        if self.table.is_none()
            && !self.direct
            && let Some((index, revision, next)) =
                short_entry(self.seq.bytes, self.seq.at, self.seq.end)
            && index == u64::from(self.index)
        {
            self.seq.at = next;
            return Ok(revision);
        }
        self.revision_slow()
    }

    /// [`revision`](Self::revision) from the table, by counting or by
    /// walking.
    #[inline(never)]
    fn revision_slow(&mut self) -> Decoded<u64> {
        if let Some(table) = self.table {
            return table.get(self.index);
        }
        if self.direct
            && self.index >= DIRECT_FROM
            && let Some((revision, next)) =
                dense_revision(self.seq.bytes, self.meta.count, self.index)
        {
            self.seq.at = next;
            return Ok(revision);
        }
        self.walk_revision()
    }

    /// [`revision`](Self::revision) by walking the entries.
    fn walk_revision(&mut self) -> Decoded<u64> {
        let missing = || malformed("missing stream revision");
        let want = u64::from(self.index);
        // Entries of short varints (nearly all) are read inline, as
        // `RevisionTable::build` reads them.
        while let Some((index, revision, next)) =
            short_entry(self.seq.bytes, self.seq.at, self.seq.end)
        {
            self.seq.at = next;
            match index.cmp(&want) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => return Ok(revision),
                std::cmp::Ordering::Greater => return Err(missing()),
            }
        }
        loop {
            let index = self.seq.varint().map_err(|_| missing())?;
            let revision = self.seq.varint().map_err(|_| missing())?;
            match index.cmp(&want) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => return Ok(revision),
                std::cmp::Ordering::Greater => return Err(missing()),
            }
        }
    }

    /// Steps over the next event without reading it.
    fn skip(&mut self) -> Decoded<()> {
        self.index += 1;
        Ok(())
    }

    /// The index entries of the next event — its type, tags, stream and id
    /// keys at its position — without building the event.
    fn keys(&mut self, out: &mut Vec<(Key, u64)>) -> Decoded<()> {
        let position = self.position();
        let mut c = self.frame(false)?;
        let flags = c.flags()?;
        let wide = flags & FLAG_WIDE != 0;
        out.push((Key::event_type(c.name(wide)?), position));
        for _ in 0..c.u8()? {
            out.push((Key::tag(c.name(wide)?), position));
        }
        if flags & FLAG_STREAM != 0 {
            out.push((Key::stream(c.name(wide)?), position));
        }
        if flags & FLAG_ID != 0 {
            let b = c.slice(16)?;
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            out.push((Key::id(u128::from_le_bytes(a)), position));
        }
        self.index += 1;
        Ok(())
    }

    /// The next event, borrowed from the record: nothing is allocated.
    #[inline(always)]
    fn next_ref(&mut self, verify: bool) -> Decoded<EventRef<'a>> {
        let meta = self.meta;
        let position = self.position();
        let mut c = self.frame(verify)?;
        let flags = c.flags()?;
        let names = Names::read(&mut c, flags & FLAG_STREAM != 0, flags & FLAG_WIDE != 0)?;
        let (event_type, tags, stream) = names.checked()?;
        let revision = match stream {
            Some(_) => Some(self.revision()?),
            None => None,
        };
        let id = if flags & FLAG_ID != 0 {
            let b = c.slice(16)?;
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            Some(u128::from_le_bytes(a))
        } else {
            None
        };
        let mut metadata = if flags & FLAG_METADATA != 0 {
            let n = c.varint()? as usize;
            c.slice(n)?
        } else {
            &[]
        };
        let mut data = c.slice(c.end - c.at)?;
        if flags & FLAG_REDACTED != 0 {
            if metadata.iter().chain(data).any(|&b| b != 0) {
                return Err(malformed("a redacted event holds data"));
            }
            (metadata, data) = (&[], &[]);
        }
        self.index += 1;
        Ok(EventRef {
            position,
            event_type,
            tags,
            data,
            metadata,
            id,
            stream,
            revision,
            timestamp_micros: meta.timestamp_micros,
            shared: Some(self.payload),
        })
    }

    /// Fails unless every byte of the payload was consumed, and, if
    /// `revisions`, every byte of the sequencing bytes.
    fn finish(&self, revisions: bool) -> Decoded<()> {
        let payload = self.payload;
        let table = self.meta.count as usize * 4;
        if table == 0 || payload.len() < table {
            return Err(malformed("event table truncated"));
        }
        if table + u32_at(payload, table - 4) as usize != payload.len() {
            return Err(malformed("trailing bytes after the last event"));
        }
        if revisions && self.seq.at != self.seq.end {
            let mut rest = Cursor {
                bytes: self.seq.bytes,
                at: self.seq.at,
                end: self.seq.end,
            };
            if trailer(&mut rest, self.meta.count)?.is_none() {
                return Err(malformed("sequencing bytes for events without a stream"));
            }
        }
        Ok(())
    }
}

/// From which index in a record a point read finds its revision at its
/// place rather than walking to it: ruling out the tracking trailer costs up
/// to a few hundred byte compares, about what walking this many entries
/// costs.
const DIRECT_FROM: u32 = 128;

/// LEB128 ends every varint with a byte below 0x80 and no other, so the
/// k-th varint of a run of varints starts right after the k-th such byte:
/// counting them finds it without decoding the varints before it, eight
/// bytes per step. `None` if `b` holds fewer than `k + 1` varint starts.
fn varint_start(b: &[u8], k: usize) -> Option<usize> {
    if k == 0 {
        return (!b.is_empty()).then_some(0);
    }
    let mut left = k;
    let mut chunks = b.chunks_exact(8);
    let mut base = 0usize;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let mut ends = !word & 0x8080_8080_8080_8080;
        let n = byte_flags(ends);
        if n < left {
            left -= n;
            base += 8;
            continue;
        }
        for _ in 1..left {
            ends &= ends - 1;
        }
        let at = base + ends.trailing_zeros() as usize / 8 + 1;
        return (at < b.len()).then_some(at);
    }
    for (i, &byte) in chunks.remainder().iter().enumerate() {
        if byte < 0x80 {
            left -= 1;
            if left == 0 {
                let at = base + i + 1;
                return (at < b.len()).then_some(at);
            }
        }
    }
    None
}

/// How many bytes of `flags` (each 0x80 or 0) are set: their high bits
/// moved to each byte's low bit and summed into the top byte by one
/// multiplication, cheaper than a population count on a CPU the build
/// does not assume to have one.
#[inline]
fn byte_flags(flags: u64) -> usize {
    ((flags >> 7).wrapping_mul(0x0101_0101_0101_0101) >> 56) as usize
}

/// The number of varint ends (bytes below 0x80) in `b`.
fn varint_ends(b: &[u8]) -> usize {
    let mut chunks = b.chunks_exact(8);
    let mut n = 0usize;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        n += byte_flags(!word & 0x8080_8080_8080_8080);
    }
    n + chunks.remainder().iter().filter(|&&b| b < 0x80).count()
}

/// The start of the varint that ends at `last` (a byte below 0x80), found
/// by stepping back over at most nine continuation bytes.
fn varint_ending_at(b: &[u8], last: usize) -> usize {
    let mut start = last;
    while start > 0 && last - start < 9 && b[start - 1] >= 0x80 {
        start -= 1;
    }
    start
}

/// The value of the varint at `b[at..]` and where the next one starts.
fn varint_at(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.get(at..)?.iter().take(10).enumerate() {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((v, at + i + 1));
        }
    }
    None
}

/// Whether the tracking trailer of a record's sequencing bytes, if there
/// is one, starts at or before `at` (a varint start, counted as one of the
/// entries'): then the varint at `at` may be the trailer's, not an entry.
///
/// The trailer is `count`, the source's length `n` (1–255), `n` bytes and a
/// position, so it can be recognised from the end: for each `n`, the last
/// varint is the position, the `n` bytes before it the source, and before
/// them must stand the varints `n` and `count`, with `count` an even
/// number of varints after the start (a whole number of entries). No
/// entry's index equals `count`, so no such place lies among the entries.
/// Only places up to `at` are tried: none when `at` is further from the end
/// than the longest trailer, and a byte compare rejects almost every `n`.
fn trailer_at_or_before(seq: &[u8], count: u32, at: usize) -> bool {
    /// Count and length varints, the longest source, and a position.
    const LONGEST: usize = 10 + 2 + MAX_SOURCE_LEN + 10;
    let Some(&last) = seq.last() else {
        return false;
    };
    if last >= 0x80 || seq.len() - at > LONGEST {
        return false;
    }
    let pos_start = varint_ending_at(seq, seq.len() - 1);
    // The count varint starts at least 2 and at most 12 bytes before the
    // source, so places before `at` need `n >= pos_start - at - 12`.
    let shortest = pos_start.saturating_sub(at + 12).max(1);
    let longest = MAX_SOURCE_LEN.min(pos_start.saturating_sub(2));
    for n in (shortest..=longest).rev() {
        let len_last = pos_start - n - 1;
        let len_end_byte = if n < 128 { n } else { n >> 7 };
        if usize::from(seq[len_last]) != len_end_byte || len_last == 0 {
            continue;
        }
        let len_start = varint_ending_at(seq, len_last);
        if varint_at(seq, len_start).map(|(v, _)| v) != Some(n as u64) || len_start == 0 {
            continue;
        }
        let count_start = varint_ending_at(seq, len_start - 1);
        if count_start > at || varint_at(seq, count_start).map(|(v, _)| v) != Some(u64::from(count))
        {
            continue;
        }
        if varint_ends(&seq[..count_start]).is_multiple_of(2) {
            return true;
        }
    }
    false
}

/// The revision of event `index` read straight from its place in `seq`,
/// the `index`-th entry: there when every event before it names a stream
/// (entries ascend strictly by index, so an entry `index` at that place is
/// the one). `None` when the entry there is another event's, or the place
/// is past the entries (in the tracking trailer, or the end), and the
/// caller walks the entries.
///
/// Returns the revision and where the entry after it starts.
fn dense_revision(seq: &Bytes, count: u32, index: u32) -> Option<(u64, usize)> {
    let at = varint_start(seq, 2 * index as usize)?;
    let (found, next) = varint_at(seq, at)?;
    if found != u64::from(index) || trailer_at_or_before(seq, count, at) {
        return None;
    }
    varint_at(seq, next)
}

/// Appends a tracking trailer to a batch's sequencing bytes (after its
/// revisions).
pub(crate) fn put_tracking(seq: &mut Vec<u8>, count: u32, source: &str, position: u64) {
    put_varint(seq, u64::from(count));
    put_varint(seq, source.len() as u64);
    seq.extend_from_slice(source.as_bytes());
    put_varint(seq, position);
}

/// The longest tracking source, in bytes: a record's tracking trailer is
/// found from its end by trying each source length up to this.
pub(crate) const MAX_SOURCE_LEN: usize = 255;

/// The tracking trailer at `c`, which must then be at its end: `None` if
/// the next varint is not the trailer's marker (`count`).
fn trailer(c: &mut Cursor<'_>, count: u32) -> Decoded<Option<(String, u64)>> {
    if c.varint()? != u64::from(count) {
        return Ok(None);
    }
    // An append writes 1 to MAX_SOURCE_LEN bytes (`check_tracking_source`),
    // and only such a trailer is found from the record's end
    // (`trailer_at_or_before`), as a point read looks for it: any other
    // length is damage, not a trailer one reader sees and another not.
    let n = c.varint()?;
    let n = usize::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_SOURCE_LEN).contains(n))
        .ok_or_else(|| malformed("a tracking source of a length no append writes"))?;
    let source = c.string(n)?;
    let position = c.varint()?;
    if c.at != c.end {
        return Err(malformed("trailing bytes after the tracking info"));
    }
    Ok(Some((source, position)))
}

/// The tracking info `(source, position)` a record was appended with, from
/// its sequencing bytes (which the record's head checksum covers).
pub(crate) fn tracking_of(seq: &Bytes, count: u32) -> Result<Option<(String, u64)>> {
    let (batch, count) = (count, u64::from(count));
    let mut c = Cursor::new(seq);
    while c.at < c.end {
        let at = c.at;
        let index = c.varint()?;
        if index == count {
            c.at = at;
            return Ok(trailer(&mut c, batch)?);
        }
        if index > count {
            return Err(malformed("revision entry for an event past the batch").into());
        }
        c.varint()?;
    }
    Ok(None)
}

/// A batch's positions and the tracking info it was appended with.
type BatchAt = (std::ops::RangeInclusive<u64>, Option<(String, u64)>);

impl crate::Store {
    /// The committed batch holding `position`: the range of its positions,
    /// and the tracking info `(source, position)` it was appended with (see
    /// [`AppendOptions::track`](crate::AppendOptions::track)), if any.
    /// `None` for 0 and positions beyond the head.
    ///
    /// One record-head lookup, no event decoded: for a server that returns
    /// each event with its batch's tracking info, as UmaDB's protocol does,
    /// or tells whether events were appended together.
    pub fn batch_at(&self, position: u64) -> Result<Option<BatchAt>> {
        if position == 0 || position > self.head() {
            return Ok(None);
        }
        let Some(record) = self.inner.reader.record_head_containing(position)? else {
            return Ok(None);
        };
        let tracking = tracking_of(record.seq(), record.meta.count)?;
        Ok(Some((
            record.meta.first_position..=record.meta.last_position(),
            tracking,
        )))
    }
}

/// Decodes every event of a record, appending them to `out` in order. The
/// record's whole payload must have been verified (by the log's record
/// checksum); events are not checked one by one again.
pub(crate) fn decode_record(record: &Record, out: &mut Vec<RecordedEvent>) -> Result<()> {
    each_event_of(record, |e| out.push(e.to_owned()))
}

/// Hands every event of a record a scan read (its checksum verified whole)
/// to `f` in order, borrowed from the record; checks, after the last, that
/// nothing follows it.
pub(crate) fn each_event_of<'r>(record: &'r Record, mut f: impl FnMut(EventRef<'r>)) -> Result<()> {
    let mut d = Decoder::new(record);
    for _ in 0..record.meta.count {
        f(d.next_ref(false)?);
    }
    Ok(d.finish(true)?)
}

/// Appends the index entries of every event of `record` at a position of
/// `from` or later — what replaying the log into the memtable needs.
pub(crate) fn index_entries(record: &Record, from: u64, out: &mut Vec<(Key, u64)>) -> Result<()> {
    let mut d = Decoder::new(record);
    for _ in 0..record.meta.count {
        if d.position() >= from {
            d.keys(out)?;
        } else {
            d.skip()?;
        }
    }
    d.finish(false)?;
    let last = record.meta.last_position();
    if last >= from
        && let Some((source, _)) = tracking_of(&record.seq, record.meta.count)?
    {
        out.push((Key::tracking(&source), last));
    }
    Ok(())
}

/// Decodes the one event of a record at `position`, verifying it by its own
/// checksum: the record may have been read with only its head verified.
pub(crate) fn decode_event(record: &Record, position: u64) -> Result<RecordedEvent> {
    decode_event_after(
        record.meta,
        &record.seq,
        &record.payload,
        position,
        &mut RevisionHint::default(),
    )
    .map(|e| e.to_owned())
}

/// The payload of `record` with the events at the positions `redacted`
/// says erased — their metadata and data bytes zeroed, the redacted flag
/// set, their checksums computed again — or `None` if no event of it is to
/// be erased that still holds its bytes. The payload keeps its length, so
/// the record keeps its place in its segment. Every event of the record is
/// checked first (the record's checksum was verified by the caller's read).
pub(crate) fn redact_payload(
    record: &Record,
    redacted: &dyn Fn(u64) -> bool,
) -> Result<Option<Bytes>> {
    redact_payload_noting(record, redacted, &mut Vec::new())
}

/// [`redact_payload`], also appending to `zeroed` the position of each
/// event it erases (ascending): those `redacted` names whose bytes the
/// record still holds, not those an earlier rewrite already erased.
pub(crate) fn redact_payload_noting(
    record: &Record,
    redacted: &dyn Fn(u64) -> bool,
    zeroed: &mut Vec<u64>,
) -> Result<Option<Bytes>> {
    let meta = record.meta;
    let payload = &record.payload;
    let table = meta.count as usize * 4;
    let entries = payload.get(..table).unwrap_or_default();
    let mut out: Option<Vec<u8>> = None;
    for index in 0..meta.count {
        let position = meta.first_position + u64::from(index);
        if !redacted(position) {
            continue;
        }
        let (start, end) = event_bounds(entries, 0, meta.count, index)?;
        let (start, end) = (table + start, table + end);
        if end > payload.len() || start + 5 > end {
            return Err(malformed("event bounds out of range").into());
        }
        let mut c = Cursor {
            bytes: payload,
            at: start + 4,
            end,
        };
        let flags = c.flags()?;
        if flags & FLAG_REDACTED != 0 {
            continue;
        }
        Names::read(&mut c, flags & FLAG_STREAM != 0, flags & FLAG_WIDE != 0)?.checked()?;
        if flags & FLAG_ID != 0 {
            c.slice(16)?;
        }
        // The metadata's length stays (so the event keeps its shape); its
        // bytes and the data's become zeros.
        let erased_from = if flags & FLAG_METADATA != 0 {
            let n = c.varint()? as usize;
            let at = c.at;
            c.slice(n)?;
            at
        } else {
            c.at
        };
        zeroed.push(position);
        let bytes = out.get_or_insert_with(|| payload.to_vec());
        bytes[start + 4] = flags | FLAG_REDACTED;
        bytes[erased_from..end].fill(0);
        let crc = event_crc(index, &bytes[start + 4..end]);
        bytes[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    }
    Ok(out.map(Bytes::from))
}

/// Where point reads in one record left off in its revision entries: the
/// index of the last event read that names a stream, and where the entry
/// after its own starts. A later read a few events further on (the next
/// event of a stream or of a query in the same batch) walks on from there
/// instead of finding its entry from the start.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RevisionHint(Option<(u32, usize)>);

/// How many events past the hint a read still walks on from it; further,
/// finding the entry from the start costs less.
const WALK_ON: u32 = 64;

/// [`decode_event`] for one of several reads in `record`, `hint` being
/// what the previous ones left (and updated for the next).
pub(crate) fn decode_event_after<'r>(
    meta: RecordMeta,
    seq: &'r Bytes,
    payload: &'r Bytes,
    position: u64,
    hint: &mut RevisionHint,
) -> Result<EventRef<'r>> {
    decode_event_by_table(meta, seq, payload, position, hint, None)
}

/// [`decode_event_after`], finding the revision in `table` when there is
/// one: the same answer, at the same cost at any index of the record.
pub(crate) fn decode_event_by_table<'r>(
    meta: RecordMeta,
    seq: &'r Bytes,
    payload: &'r Bytes,
    position: u64,
    hint: &mut RevisionHint,
    table: Option<&'r RevisionTable>,
) -> Result<EventRef<'r>> {
    let mut d = Decoder::of(meta, seq, payload);
    d.table = table;
    decode_at(d, position, hint)
}

/// Every event's stream revision in a record, by index, decoded once from
/// its verified sequencing bytes and kept with its head (see
/// [`RecordHead::derived`]), so that a point read finds a revision without
/// walking or counting the entries before it.
#[derive(Debug)]
pub(crate) struct RevisionTable(Box<[u64]>);

/// What building one event's entry of a revision table costs, in entries
/// walked (`Decoder::walk_revision`): about 46 instructions against 21
/// (callgrind, records of 100 events).
const TABLE_PRICE_PER_EVENT: u64 = 2;

/// How many entries counting to an entry (`dense_revision`, eight bytes a
/// step) passes in the time walking passes one, its check for a tracking
/// trailer included.
const COUNTED_PER_WALKED: u32 = 4;

/// The table's mark for an event without a stream.
const NO_REVISION: u64 = u64::MAX;

impl RevisionTable {
    /// The table of a record's sequencing bytes, or `None` if they are
    /// not well formed (entries out of order, a varint cut short): the
    /// walk then finds and reports what is wrong, as without a table.
    pub(crate) fn build(meta: &RecordMeta, seq: &Bytes) -> Option<RevisionTable> {
        let count = u64::from(meta.count);
        let mut table = vec![NO_REVISION; meta.count as usize];
        let (b, end) = (&seq[..], seq.len());
        let (mut at, mut next) = (0, 0u64);
        while at < end {
            // Built on a record's second point read, often with a lookup
            // or two waiting on it: entries of short varints (every index
            // below 16,384 and nearly every revision) are read inline.
            let (index, revision, after) = match short_entry(b, at, end) {
                Some(entry) => entry,
                None => {
                    let (index, after) = varint_at(b, at)?;
                    if index >= count {
                        break;
                    }
                    let (revision, after) = varint_at(b, after)?;
                    (index, revision, after)
                }
            };
            if index >= count {
                // The tracking trailer: no event has its marker's index.
                break;
            }
            if index < next || revision == NO_REVISION {
                return None;
            }
            *table.get_mut(index as usize)? = revision;
            (at, next) = (after, index + 1);
        }
        Some(RevisionTable(table.into_boxed_slice()))
    }

    /// The table of `head`'s record for a point read of the event at
    /// `index`, `hint` being where the reads before it left off: the one
    /// kept with the head if it was built, else built now if the reads into
    /// the record have walked, without it, as much as building it costs
    /// (see [`RecordHead::derived_once_paid`]), else `None` and this read
    /// walks. A record read once or twice, as lookups by id at random read
    /// most records, so costs no table.
    pub(crate) fn of<'h>(
        head: &'h RecordHead,
        index: u32,
        hint: &RevisionHint,
    ) -> Option<&'h RevisionTable> {
        let walk = match hint.0 {
            Some((last, _)) if last < index && index - last <= WALK_ON => index - last,
            // Counted to eight bytes a step (`dense_revision`).
            _ if index >= DIRECT_FROM => index / COUNTED_PER_WALKED,
            _ => index + 1,
        };
        let price = TABLE_PRICE_PER_EVENT * u64::from(head.meta.count);
        head.derived_once_paid(u64::from(walk), price, RevisionTable::build)
            .and_then(Option::as_ref)
    }

    /// The revision of the event at `index`; an error, as the walk gives,
    /// if the record holds none for it.
    fn get(&self, index: u32) -> Decoded<u64> {
        match self.0.get(index as usize) {
            Some(&r) if r != NO_REVISION => Ok(r),
            _ => Err(malformed("missing stream revision")),
        }
    }
}

/// The frame (checksum and body) of the event at `position` of a record
/// whose payload was left in its (compressed) segment, read in two pieces:
/// its entries of the event table, then the frame they point at. Neither
/// is verified here: the frame's checksum is, when it is decoded by
/// [`decode_event_in_window`].
pub(crate) fn event_frame(head: &RecordHead, position: u64) -> Result<Bytes> {
    let index = index_in(head.meta, position)?;
    let table = head.meta.count as usize * 4;
    let first = (index as usize).saturating_sub(1);
    let entries = head.payload_range(first * 4, index as usize * 4 + 4)?;
    let (start, end) = event_bounds(&entries, first, head.meta.count, index)?;
    if table + end > head.payload_len() {
        return Err(malformed("event bounds out of range").into());
    }
    Ok(head.payload_range(table + start, table + end)?)
}

/// Warms the events [`WalReader::warm`](gesta_wal::WalReader::warm)
/// found: every table entry first, then every line of every event, so that
/// the lookups that follow find them in the cache. Only a hint: values out
/// of range warm less.
pub(crate) fn warm_events(found: &[MappedPayload<'_>]) {
    gesta_wal::touch(found.iter().map(|f| (f.payload, f.index as usize * 4)));
    // And each event's entry in its record's revision table, if kept.
    let mut sum = 0u64;
    for f in found {
        if let Some(Some(table)) = f.derived::<Option<RevisionTable>>() {
            sum ^= table.0.get(f.index as usize).copied().unwrap_or(0);
        }
    }
    std::hint::black_box(sum);
    for f in found {
        warm_event_lines(f.payload, f.index, f.count);
    }
}

/// Warms one event about to be decoded from `payload`: its entry in the
/// revision table is missed with its entry in the payload's table, then
/// its lines, rather than the revision only after the event is checked.
/// Only a hint, as [`warm_events`].
pub(crate) fn warm_event(payload: &[u8], index: u32, count: u32, table: Option<&RevisionTable>) {
    let revision = table.and_then(|t| t.0.get(index as usize).copied());
    warm_event_lines(payload, index, count);
    std::hint::black_box(revision);
}

/// Touches every line of event `index` of a payload of `count` events,
/// where its table says it lies.
fn warm_event_lines(payload: &[u8], index: u32, count: u32) {
    let table = count as usize * 4;
    let at = |i: usize| {
        payload
            .get(i * 4..i * 4 + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let index = index as usize;
    let start = if index == 0 { 0 } else { at(index - 1) };
    let end = at(index);
    if start < end {
        gesta_wal::touch_lines(
            payload,
            table.saturating_add(start),
            table.saturating_add(end),
        );
    }
}

/// Decodes the event at `position` from its frame, read by
/// [`event_frame`], verifying it by its checksum; `hint` as for
/// [`decode_event_after`].
pub(crate) fn decode_event_in_window<'r>(
    head: &'r RecordHead,
    frame: &'r Bytes,
    position: u64,
    hint: &mut RevisionHint,
) -> Result<EventRef<'r>> {
    let mut d = Decoder::of(head.meta, head.seq(), frame);
    d.windowed = true;
    d.table = RevisionTable::of(head, index_in(head.meta, position)?, hint);
    decode_at(d, position, hint)
}

/// The sequencing entry starting at `at` (before `end`) when both its
/// varints are one or two bytes long: its index, its revision and where the
/// next entry starts. `None` for anything else, which the walk then reads.
#[inline(always)]
fn short_entry(b: &[u8], at: usize, end: usize) -> Option<(u64, u64, usize)> {
    #[inline(always)]
    fn short(b: &[u8], at: usize, end: usize) -> Option<(u64, usize)> {
        let first = *b.get(at).filter(|_| at < end)?;
        if first < 0x80 {
            return Some((u64::from(first), at + 1));
        }
        let second = *b.get(at + 1).filter(|_| at + 1 < end)?;
        (second < 0x80).then(|| (u64::from(first & 0x7f) | (u64::from(second) << 7), at + 2))
    }
    let (index, at) = short(b, at, end)?;
    let (revision, at) = short(b, at, end)?;
    Some((index, revision, at))
}

/// The index in its record of the event at `position`.
fn index_in(meta: RecordMeta, position: u64) -> Decoded<u32> {
    position
        .checked_sub(meta.first_position)
        .filter(|&i| i < u64::from(meta.count))
        .map(|i| i as u32)
        .ok_or_else(|| malformed("position outside the record"))
}

fn decode_at<'r>(
    mut d: Decoder<'r>,
    position: u64,
    hint: &mut RevisionHint,
) -> Result<EventRef<'r>> {
    let index = index_in(d.meta, position)?;
    d.index = index;
    match hint.0 {
        Some((last, at)) if last < index && index - last <= WALK_ON => d.seq.at = at,
        _ => d.direct = true,
    }
    let event = d.next_ref(true)?;
    if event.revision.is_some() {
        hint.0 = Some((index, d.seq.at));
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use gesta_wal::format::{self, Frame, Payload, RecordMeta};

    use super::*;

    fn record_bytes() -> (Vec<u8>, Vec<NewEvent>) {
        let events = vec![
            NewEvent::new("Opened", "first").tag("a:1").stream("s1"),
            NewEvent::new("Moved", vec![7u8; 40])
                .tags(["a:1", "b:2"])
                .metadata("m")
                .id(9),
            NewEvent::new("Closed", "").stream("s2"),
        ];
        let payload = encode_batch(&events).unwrap();
        let mut seq = Vec::new();
        for (index, revision) in [(0, 3), (2, 300)] {
            put_varint(&mut seq, index);
            put_varint(&mut seq, revision);
        }
        let mut out = Vec::new();
        format::encode_record(
            &mut out,
            RecordMeta {
                first_position: 41,
                count: 3,
                timestamp_micros: 5,
            },
            &seq,
            &Payload::new(Bytes::from(payload)),
        );
        (out, events)
    }

    fn decode_whole(bytes: &[u8]) -> Record {
        match format::decode_record(&Bytes::copy_from_slice(bytes)) {
            Frame::Record(r, _) => r,
            other => panic!("{other:?}"),
        }
    }

    /// Redacting events of a record zeroes their data and metadata bytes,
    /// keeps the payload's length and every other event, and reads back as
    /// empty data and metadata with every other field the same; a second
    /// pass changes nothing.
    #[test]
    fn redacted_payloads_keep_their_shape_and_lose_their_data() {
        let (bytes, events) = record_bytes();
        let record = decode_whole(&bytes);
        let redacted = |p: u64| p == 42 || p == 43;
        let new = redact_payload(&record, &redacted).unwrap().unwrap();
        assert_eq!(new.len(), record.payload.len());
        let mut framed = Vec::new();
        format::encode_record(&mut framed, record.meta, &record.seq, &Payload::new(new));
        assert_eq!(framed.len(), bytes.len());
        let again = decode_whole(&framed);
        assert!(!contains(&again.payload, &[7u8; 40]));
        let mut out = Vec::new();
        decode_record(&again, &mut out).unwrap();
        let mut before = Vec::new();
        decode_record(&record, &mut before).unwrap();
        assert_eq!(out[0], before[0]);
        for i in [1, 2] {
            let (a, b) = (&out[i], &before[i]);
            assert!(a.data.is_empty() && a.metadata.is_empty());
            assert_eq!(
                (&a.event_type, &a.tags, a.id, &a.stream, a.revision),
                (&b.event_type, &b.tags, b.id, &b.stream, b.revision)
            );
        }
        assert_eq!(events[1].id, out[1].id);
        // Point reads agree, and nothing is left to erase.
        let mut hint = RevisionHint::default();
        let e = decode_event_after(again.meta, &again.seq, &again.payload, 42, &mut hint).unwrap();
        assert!(e.data.is_empty() && e.metadata.is_empty());
        assert_eq!(redact_payload(&again, &redacted).unwrap(), None);
        assert_eq!(redact_payload(&record, &|_| false).unwrap(), None);
        // A redacted event whose zeros are not zeros is damage.
        // (Event 1's last data byte, its checksum made to match.)
        let mut tampered = again.payload.to_vec();
        let table = 12;
        let start = table + u32_at(&tampered, 0) as usize;
        let end = table + u32_at(&tampered, 4) as usize;
        tampered[end - 1] = 1;
        let crc = event_crc(1, &tampered[start + 4..end]);
        tampered[start..start + 4].copy_from_slice(&crc.to_le_bytes());
        let mut framed = Vec::new();
        format::encode_record(
            &mut framed,
            record.meta,
            &record.seq,
            &Payload::new(Bytes::from(tampered)),
        );
        let mut out = Vec::new();
        assert!(decode_record(&decode_whole(&framed), &mut out).is_err());
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    /// A point read verifies only the record's head and the one event, yet
    /// no single flipped bit anywhere in the record makes it return a
    /// different event than was written.
    #[test]
    fn point_reads_never_return_a_damaged_event() {
        let (bytes, events) = record_bytes();
        let Frame::Record(record, _) = format::decode_record_head(&Bytes::from(bytes.clone()))
        else {
            panic!("the record decodes");
        };
        let originals: Vec<RecordedEvent> = (41..44)
            .map(|p| decode_event(&record, p).unwrap())
            .collect();
        for (e, new) in originals.iter().zip(&events) {
            assert_eq!(e.event_type, new.event_type);
            assert_eq!(e.data, new.data);
        }
        assert_eq!(originals[0].revision, Some(3));
        assert_eq!(originals[2].revision, Some(300));
        let mut caught = 0;
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let bad = Bytes::from(bad);
            assert!(
                !matches!(format::decode_record(&bad), Frame::Record(..)),
                "a full read accepted flipped bit {bit}"
            );
            let Frame::Record(record, _) = format::decode_record_head(&bad) else {
                caught += 1;
                continue;
            };
            for (i, original) in originals.iter().enumerate() {
                match decode_event(&record, 41 + i as u64) {
                    Ok(e) => assert_eq!(&e, original, "flipped bit {bit} changed an event"),
                    Err(_) => caught += 1,
                }
            }
        }
        assert!(caught > bytes.len() * 8, "most flips are caught");
    }

    /// The revision found at its place equals the one found by walking,
    /// for dense and sparse entries, with and without a tracking trailer
    /// (whose source bytes are chosen to look like entries).
    /// Names of every length class (the one-pass UTF-8 check holds only
    /// while every length byte is below 128) and with multi-byte chars,
    /// including ones whose bytes could pass for length bytes, come back
    /// whole, by a scan and by point reads; a name that is not UTF-8 is
    /// corruption, whichever way it is checked.
    /// A flag this build does not know (a later format's) makes the event
    /// malformed, never read as if it were not set.
    #[test]
    fn an_unknown_flag_is_refused() {
        let events = [NewEvent::new("T", "data").tag("a:1")];
        let payload = encode_batch(&events).unwrap();
        for bit in 4..8 {
            let mut bad = payload.clone();
            bad[4 + 4] |= 1 << bit; // the table (4), the checksum (4), flags
            fix_event_checksums(&mut bad, 1);
            let mut out = Vec::new();
            let meta = RecordMeta {
                first_position: 1,
                count: 1,
                timestamp_micros: 1,
            };
            format::encode_record(&mut out, meta, &[], &Payload::new(Bytes::from(bad)));
            let Frame::Record(record, _) = format::decode_record(&Bytes::from(out)) else {
                panic!("the record decodes");
            };
            assert!(decode_event(&record, 1).is_err(), "flag bit {bit}");
            assert!(
                decode_record(&record, &mut Vec::new()).is_err(),
                "bit {bit}"
            );
            // Bit 4 (redacted) is known: the event's keys read, but its
            // data, not zeros, is damage.
            assert_eq!(
                index_entries(&record, 0, &mut Vec::new()).is_err(),
                bit != 4,
                "bit {bit}"
            );
        }
    }

    #[test]
    fn names_of_every_length_and_script_round_trip() {
        let name = |len: usize, fill: &str| fill.repeat(len / fill.len());
        let mut events = Vec::new();
        // Past 255 bytes an event is wide (varint lengths); 1,024 is the
        // limit.
        for len in [1usize, 2, 126, 127, 128, 129, 200, 254, 255, 256, 300, 1024] {
            for fill in ["a", "é", "€", "\u{10348}"] {
                let n = name(len, fill);
                if n.is_empty() {
                    continue;
                }
                events.push(
                    NewEvent::new(n.as_str(), "d")
                        .tags([n.as_str(), "x", n.as_str()])
                        .stream(n.as_str()),
                );
                events.push(NewEvent::new("T", "d").tags(["short", n.as_str()]));
            }
        }
        let count = events.len() as u32;
        let payload = encode_batch(&events).unwrap();
        let mut seq = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if e.stream.is_some() {
                put_varint(&mut seq, i as u64);
                put_varint(&mut seq, i as u64 + 7);
            }
        }
        let mut out = Vec::new();
        let meta = RecordMeta {
            first_position: 1,
            count,
            timestamp_micros: 5,
        };
        format::encode_record(&mut out, meta, &seq, &Payload::new(Bytes::from(payload)));
        let Frame::Record(record, _) = format::decode_record(&Bytes::from(out)) else {
            panic!("the record does not decode");
        };
        let mut scanned = Vec::new();
        decode_record(&record, &mut scanned).unwrap();
        for (i, (got, want)) in scanned.iter().zip(&events).enumerate() {
            assert_eq!(got.event_type, want.event_type, "event {i}");
            assert_eq!(got.tags, want.tags, "event {i}");
            assert_eq!(got.stream, want.stream, "event {i}");
            let point = decode_event(&record, 1 + i as u64).unwrap();
            assert_eq!(&point, got, "point read of event {i}");
        }
        assert_eq!(scanned.len(), events.len());
        let mut keys = Vec::new();
        index_entries(&record, 0, &mut keys).unwrap();
        let want: Vec<Key> = events
            .iter()
            .flat_map(|e| {
                std::iter::once(Key::event_type(&e.event_type))
                    .chain(e.tags.iter().map(|t| Key::tag(t)))
                    .chain(e.stream.iter().map(|s| Key::stream(s)))
            })
            .collect();
        let got: Vec<Key> = keys.into_iter().map(|(k, _)| k).collect();
        assert_eq!(got, want, "index keys of wide and narrow events");
        // Names that are not UTF-8, in the one-pass and the name-by-name
        // check.
        for type_len in [3usize, 200] {
            for bad_at in [0, 1] {
                let mut bytes = vec![type_len as u8];
                bytes.extend(std::iter::repeat_n(b'a', type_len));
                bytes.extend([1, 2, b'x', b'y', 1, b's']);
                let target = if bad_at == 0 { 2 } else { type_len + 4 };
                bytes[target] = 0xFF;
                let bytes = Bytes::from(bytes);
                let mut c = Cursor::new(&bytes);
                let names = Names::read(&mut c, true, false).unwrap();
                assert_eq!(c.at, bytes.len());
                assert!(
                    names.checked().is_err(),
                    "type {type_len}, bad byte {target}"
                );
            }
        }
    }

    #[test]
    fn byte_flags_counts_the_set_bytes() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let flags = x & 0x8080_8080_8080_8080;
            assert_eq!(byte_flags(flags), flags.count_ones() as usize, "{flags:#x}");
        }
        assert_eq!(byte_flags(0x8080_8080_8080_8080), 8);
        assert_eq!(byte_flags(0), 0);
    }

    #[test]
    fn revision_tables_give_what_the_walk_gives() {
        // Revisions of one, two, three and nine bytes.
        let revision = |i: u32| match i % 4 {
            0 => u64::from(i % 128),
            1 => u64::from(i) * 37 + 200,
            2 => u64::from(i) * 37 + 20_000,
            _ => u64::from(i) << 40,
        };
        for count in [1u32, 2, 7, 130, 1000, 17_000] {
            for stride in [1u32, 2, 3] {
                for source in ["", "a", &"z".repeat(255)] {
                    let mut seq = Vec::new();
                    for i in (0..count).filter(|i| i % stride == 0) {
                        put_varint(&mut seq, u64::from(i));
                        put_varint(&mut seq, revision(i));
                    }
                    if !source.is_empty() {
                        put_tracking(&mut seq, count, source, 5);
                    }
                    let meta = RecordMeta {
                        first_position: 1,
                        count,
                        timestamp_micros: 0,
                    };
                    let seq = Bytes::from(seq);
                    let table = RevisionTable::build(&meta, &seq).unwrap();
                    for i in 0..count {
                        let expected = (i % stride == 0).then(|| revision(i));
                        assert_eq!(
                            table.get(i).ok(),
                            expected,
                            "count {count} stride {stride} index {i}"
                        );
                        // The walk is O(index): beside the table in the
                        // smaller records and at the ends of the largest.
                        if count <= 1000 || i < 300 || count - i < 300 {
                            let mut walk = Decoder::of(meta, &seq, &seq);
                            walk.index = i;
                            assert_eq!(walk.walk_revision().ok(), expected, "walk, index {i}");
                        }
                    }
                }
            }
        }
        // Entries out of order, or cut short: no table (the walk reports).
        let meta = RecordMeta {
            first_position: 1,
            count: 4,
            timestamp_micros: 0,
        };
        for bad in [&[2u8, 5, 1, 6][..], &[0, 0x80], &[1, 3, 1, 4]] {
            assert!(RevisionTable::build(&meta, &Bytes::copy_from_slice(bad)).is_none());
        }
    }

    #[test]
    fn warming_damaged_payloads_never_panics() {
        let mut rng = gesta_wal::rng::SplitMix64::new(11);
        for round in 0..2_000u64 {
            let len = rng.below_uniform(300) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| match round % 3 {
                    0 => 0xff,
                    1 => rng.next_u64() as u8 & 0x0f,
                    _ => rng.next_u64() as u8,
                })
                .collect();
            let count = rng.below_uniform(100) as u32 + 1;
            let index = rng.below_uniform(u64::from(count) + 2) as u32;
            super::warm_events(&[MappedPayload::new(&bytes, index, count)]);
            let table = RevisionTable(vec![7; rng.below_uniform(4) as usize].into());
            super::warm_event(&bytes, index, count, Some(&table));
        }
        super::warm_events(&[MappedPayload::new(&[0xff; 16], u32::MAX, u32::MAX)]);
        super::warm_event(&[0xff; 16], u32::MAX, u32::MAX, None);
    }

    #[test]
    fn revisions_at_their_place_match_the_walk() {
        let sources = [
            "",
            "a",
            "\u{5}\u{7}\u{2}",
            "\u{3}\u{9}\u{8}\u{1}x",
            &"z".repeat(255),
        ];
        for count in [1u32, 2, 3, 7, 130, 1000] {
            for stride in [1u32, 2, 3] {
                for source in sources {
                    let mut seq = Vec::new();
                    let mut expected = Vec::new();
                    for i in (0..count).filter(|i| i % stride == 0) {
                        let revision = u64::from(i) * 37 + 200;
                        put_varint(&mut seq, u64::from(i));
                        put_varint(&mut seq, revision);
                        expected.push((i, revision));
                    }
                    if !source.is_empty() {
                        put_tracking(&mut seq, count, source, 5);
                    }
                    let seq = Bytes::from(seq);
                    let walked_end = if source.is_empty() {
                        seq.len()
                    } else {
                        seq.len() - trailer_len(count, source, 5)
                    };
                    // Every varint start among the entries, and the trailer's.
                    for k in 0..=2 * expected.len() {
                        let Some(at) = varint_start(&seq, k) else {
                            assert!(source.is_empty() && k == 2 * expected.len());
                            continue;
                        };
                        assert_eq!(
                            trailer_at_or_before(&seq, count, at),
                            at >= walked_end,
                            "count {count} stride {stride} {source:?} varint {k}"
                        );
                    }
                    for &(i, revision) in &expected {
                        match dense_revision(&seq, count, i) {
                            Some((r, _)) => assert_eq!(r, revision),
                            None => assert!(stride > 1 && i > 0, "dense entry {i} missed"),
                        }
                    }
                    for i in (0..count).filter(|i| i % stride != 0) {
                        assert_eq!(dense_revision(&seq, count, i), None);
                    }
                }
            }
        }
    }

    /// A tracking trailer is what an append writes: a source of 1 to
    /// `MAX_SOURCE_LEN` bytes. One with an empty or a longer source is
    /// damage to every reader (a whole decode, the tracking lookup), not a
    /// trailer that a scan reads and a point read, which finds trailers
    /// from the record's end trying only those lengths, does not.
    #[test]
    fn a_tracking_source_no_append_writes_is_damage() {
        let payload = encode_batch(&[NewEvent::new("T", "d").stream("s")]).unwrap();
        let meta = RecordMeta {
            first_position: 3,
            count: 1,
            timestamp_micros: 5,
        };
        let record = |source: &str| {
            let mut seq = Vec::new();
            put_varint(&mut seq, 0);
            put_varint(&mut seq, 0);
            put_tracking(&mut seq, 1, source, 7);
            let mut out = Vec::new();
            format::encode_record(
                &mut out,
                meta,
                &seq,
                &Payload::new(Bytes::from(payload.clone())),
            );
            decode_whole(&out)
        };
        let longest = "x".repeat(MAX_SOURCE_LEN);
        for source in ["p", longest.as_str()] {
            let r = record(source);
            let mut events = Vec::new();
            decode_record(&r, &mut events).unwrap();
            assert_eq!(events.len(), 1);
            assert_eq!(
                tracking_of(&r.seq, 1).unwrap(),
                Some((source.to_owned(), 7))
            );
            assert!(trailer_at_or_before(&r.seq, 1, 2), "found from the end");
        }
        let longer = "x".repeat(MAX_SOURCE_LEN + 1);
        for source in ["", longer.as_str()] {
            let r = record(source);
            assert!(decode_record(&r, &mut Vec::new()).is_err(), "{source:?}");
            assert!(tracking_of(&r.seq, 1).is_err(), "{source:?}");
            assert!(!trailer_at_or_before(&r.seq, 1, 2), "{source:?}");
        }
    }

    fn trailer_len(count: u32, source: &str, position: u64) -> usize {
        let mut t = Vec::new();
        put_tracking(&mut t, count, source, position);
        t.len()
    }

    /// A 300-event record at position 10, appended with tracking info:
    /// every event has revision `index * 1000`, except, if `sparse`, those
    /// whose index is 3 mod 5, which have no stream.
    fn big_record(sparse: bool) -> Vec<u8> {
        record_with_revisions(sparse, |i| u64::from(i) * 1000)
    }

    /// [`big_record`] with revision `revision(index)` for each event.
    fn record_with_revisions(sparse: bool, revision: impl Fn(u32) -> u64) -> Vec<u8> {
        let streamless = |i: u32| sparse && i % 5 == 3;
        let count = 300u32;
        let events: Vec<NewEvent> = (0..count)
            .map(|i| {
                let e = NewEvent::new("T", vec![i as u8; 3]).tag("t:1");
                if streamless(i) {
                    e
                } else {
                    e.stream(format!("s{}", i % 2))
                }
            })
            .collect();
        let payload = encode_batch(&events).unwrap();
        let mut seq = Vec::new();
        for i in (0..count).filter(|&i| !streamless(i)) {
            put_varint(&mut seq, u64::from(i));
            put_varint(&mut seq, revision(i));
        }
        put_tracking(&mut seq, count, "\u{1}\u{2}", 9);
        let mut out = Vec::new();
        format::encode_record(
            &mut out,
            RecordMeta {
                first_position: 10,
                count,
                timestamp_micros: 5,
            },
            &seq,
            &Payload::new(Bytes::from(payload)),
        );
        out
    }

    /// A scan takes every event's revision from the entry it has reached:
    /// inline when the entry's varints are one or two bytes long, by the
    /// walk when one is longer, and none for an event without a stream
    /// (whose index the next entry does not hold), up to the tracking
    /// trailer.
    #[test]
    fn scans_take_each_revision_in_turn() {
        let revisions: [fn(u32) -> u64; 3] = [
            // One- and two-byte indices with one- and two-byte revisions.
            u64::from,
            // Revisions of every length: 1, 2, 3 and more bytes.
            |i| {
                if i % 2 == 0 {
                    u64::from(i) << (i % 40)
                } else {
                    16_383 + u64::from(i)
                }
            },
            // Large, then small, so that the inline path follows the walk.
            |i| if i < 150 { 1 << 40 } else { u64::from(i) - 150 },
        ];
        for sparse in [false, true] {
            for revision in revisions {
                let record = decode_whole(&record_with_revisions(sparse, revision));
                let mut seen = Vec::new();
                each_event_of(&record, |e| seen.push((e.position, e.revision))).unwrap();
                let expected: Vec<_> = (0..300u32)
                    .map(|i| {
                        let named = !(sparse && i % 5 == 3);
                        (10 + u64::from(i), named.then(|| revision(i)))
                    })
                    .collect();
                assert_eq!(seen, expected, "sparse {sparse}");
            }
        }
    }

    /// An entry is taken inline only whole and inside the bytes given.
    #[test]
    fn short_entries_stop_at_the_end() {
        let bytes = [0x81, 0x01, 0x05, 0x80, 0x80, 0x01];
        assert_eq!(short_entry(&bytes, 0, 3), Some((129, 5, 3)));
        assert_eq!(short_entry(&bytes, 0, 2), None);
        assert_eq!(short_entry(&bytes, 0, 1), None);
        // A third varint byte is the walk's to read.
        assert_eq!(short_entry(&bytes, 2, 6), None);
        assert_eq!(short_entry(&bytes, 6, 6), None);
    }

    /// Point reads with a hint, in any order, give the events a whole
    /// decode of the record gives.
    #[test]
    fn hinted_point_reads_match_the_whole_record() {
        for sparse in [false, true] {
            hinted_reads(sparse);
        }
    }

    fn hinted_reads(sparse: bool) {
        let count = 300u32;
        let bytes = Bytes::from(big_record(sparse));
        let Frame::Record(record, _) = format::decode_record(&bytes) else {
            panic!("the record decodes");
        };
        let mut whole = Vec::new();
        decode_record(&record, &mut whole).unwrap();
        let orders: [Vec<u32>; 3] = [
            (0..count).collect(),
            (0..count)
                .step_by(7)
                .chain((0..count).rev().step_by(3))
                .collect(),
            (0..count).map(|i| (i * 97) % count).collect(),
        ];
        for order in orders {
            let mut hint = RevisionHint::default();
            for i in order {
                let position = 10 + u64::from(i);
                let (seq, payload) = (&record.seq, &record.payload);
                let e = decode_event_after(record.meta, seq, payload, position, &mut hint)
                    .unwrap()
                    .to_owned();
                assert_eq!(e, whole[i as usize]);
                let expected = (!sparse || i % 5 != 3).then_some(u64::from(i) * 1000);
                assert_eq!(e.revision, expected);
            }
        }
    }

    /// Events whose revision is found at its place (index 128 and up) are
    /// no less protected: no flipped bit makes a point read return a
    /// different event.
    #[test]
    fn direct_revisions_never_come_from_damaged_bytes() {
        let bytes = big_record(false);
        let Frame::Record(record, _) = format::decode_record(&Bytes::from(bytes.clone())) else {
            panic!("the record decodes");
        };
        let picks = [10 + 130, 10 + 201, 10 + 299];
        let originals: Vec<RecordedEvent> = picks
            .iter()
            .map(|&p| decode_event(&record, p).unwrap())
            .collect();
        assert_eq!(originals[0].revision, Some(130_000));
        let mut caught = 0;
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let Frame::Record(record, _) = format::decode_record_head(&Bytes::from(bad)) else {
                caught += 1;
                continue;
            };
            for (&p, original) in picks.iter().zip(&originals) {
                match decode_event(&record, p) {
                    Ok(e) => assert_eq!(&e, original, "flipped bit {bit} changed an event"),
                    Err(_) => caught += 1,
                }
            }
        }
        assert!(caught > 0);
    }
}
