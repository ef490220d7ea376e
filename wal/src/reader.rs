//! Reading committed records forwards and backwards, by position.
//!
//! Readers never wait for the writer: they see each segment up to the end the
//! writer last published, read it in large positional chunks, and verify
//! every record's checksum, so that damage on disk is reported as corruption
//! and never returned as data.

use std::sync::Arc;

use bytes::{Buf, Bytes};

use crate::checksum_ahead::{AHEAD_FROM, Ahead, BATCH_BYTES};
use crate::error::{Result, WalError};
use crate::format::{self, FRAME_LEN, Frame, Record, RecordMeta, SEGMENT_HEADER_LEN};
use crate::heads::{HeadCache, KEEP_FROM_SEQ, KeptHead};
use crate::segment::{Segment, SegmentSet};
use crate::zseg::CompressedSegment;

/// How much a forward reader fetches per read.
const CHUNK: u64 = 256 << 10;

/// How much a forward reader fetches per read of a compressed segment:
/// enough whole blocks that decompressing them on two threads (see
/// `CompressedSegment::read`) pays for starting the second.
const COMPRESSED_CHUNK: u64 = 2 << 20;

/// How many bytes a point read of a compressed segment reads at a record's
/// start (if they lie in the block its frame and fields are in), hoping to
/// get its whole head (frame, fields, sequencing bytes) in one read.
const HEAD_GUESS: u64 = 128;

/// Where [`WalReader::warm`](crate::WalReader::warm) found the record holding a position: its
/// segment, the start and bytes of its stretch of the offset table, and
/// its kept head if it had one. Handed to
/// [`WalReader::record_head_at`], it saves the lookup finding them again
/// (each finding takes a few locks and reference counts). The bytes are
/// the segment's map as it was: a segment compressed or evicted since is
/// still read from the map held here, which shows the same records.
#[derive(Clone, Debug)]
pub struct Place {
    pub(crate) segment: Arc<Segment>,
    pub(crate) start: u64,
    pub(crate) stretch: Bytes,
    pub(crate) kept: Option<Arc<KeptHead>>,
}

/// A handle for reading the log; cheap to clone.
#[derive(Clone, Debug)]
pub struct WalReader {
    segments: SegmentSet,
    pub(crate) heads: Arc<HeadCache>,
}

fn read_range(segment: &Segment, start: u64, end: u64) -> Result<Bytes> {
    segment.read(start, end)
}

fn corrupt(segment: &Segment, offset: u64, reason: &str) -> WalError {
    WalError::Corruption {
        file: segment.path(),
        offset,
        reason: reason.to_owned(),
    }
}

impl WalReader {
    pub(crate) fn new(segments: SegmentSet) -> WalReader {
        WalReader {
            segments,
            heads: Arc::default(),
        }
    }

    /// The segments of the log.
    pub fn segments(&self) -> &SegmentSet {
        &self.segments
    }

    /// The record holding `position`, if it is published. Records before it
    /// in its stretch of the offset table are stepped over by their length
    /// fields; only the record returned is checksummed.
    pub fn record_containing(&self, position: u64) -> Result<Option<Record>> {
        let Some((_, segment)) = self.segments.find(position) else {
            return Ok(None);
        };
        find_record(&segment, position, format::decode_record)
    }

    /// Where the record holding `position` lies: its segment's first
    /// position, and its byte range in the segment's original bytes (the
    /// plain segment file's; a compressed segment's decompressed bytes).
    /// For a check against another copy of the log that fetches only that
    /// range of the copy's file.
    pub fn record_span(&self, position: u64) -> Result<Option<(u64, std::ops::Range<u64>)>> {
        let Some((_, segment)) = self.segments.find(position) else {
            return Ok(None);
        };
        let Some((start, stop)) = segment.locate(position) else {
            return Ok(None);
        };
        let bytes = segment.read(start, stop)?;
        let found = find_record_in(&segment, position, start, bytes, format::decode_record_head)?;
        Ok(found.map(|(_, at, bytes)| {
            let from = start + at as u64;
            let len = FRAME_LEN as u64 + u64::from(format::u32_at(&bytes, at));
            (segment.first_position(), from..from + len)
        }))
    }

    /// [`record_containing`](Self::record_containing) for a point read:
    /// verifies the record's frame and head but not its payload, whose
    /// events the caller verifies one by one (see
    /// [`format::decode_record_head`]). On a compressed or evicted segment
    /// the payload is not read at all: the caller reads the pieces it needs
    /// through [`RecordHead::payload_range`], so that a point read
    /// decompresses (or fetches) the blocks of one event rather than of its
    /// whole record.
    pub fn record_head_containing(&self, position: u64) -> Result<Option<RecordHead>> {
        let Some((_, segment)) = self.segments.find(position) else {
            return Ok(None);
        };
        if segment.is_evicted() {
            return head_in_remote(segment, position);
        }
        match segment.compressed() {
            Some(z) => head_in_compressed(&self.heads, segment, &z, position),
            None => self.head_in_plain(&segment, position),
        }
    }

    /// [`record_head_containing`](Self::record_head_containing) for a
    /// position whose record [`warm`](Self::warm) already placed: the
    /// segment, offset-table stretch and kept head it found are used as
    /// they are, not looked up again. A place only saves the finding; the
    /// head is verified (or matched with its kept copy) as always.
    pub fn record_head_at(
        &self,
        position: u64,
        place: Option<Place>,
    ) -> Result<Option<RecordHead>> {
        match place {
            Some(p) => self.head_in_stretch(&p.segment, position, p.start, p.stretch, p.kept),
            None => self.record_head_containing(position),
        }
    }

    /// [`record_head_containing`](Self::record_head_containing) in a plain
    /// segment.
    fn head_in_plain(&self, segment: &Segment, position: u64) -> Result<Option<RecordHead>> {
        let Some((start, stop)) = segment.locate(position) else {
            return Ok(None);
        };
        let kept = self.heads.get(segment.first_position(), start);
        let stretch = segment.read(start, stop)?;
        self.head_in_stretch(segment, position, start, stretch, kept)
    }

    /// The head of the record holding `position` in the offset-table
    /// stretch starting at `start`, whose bytes are `stretch`: `kept` if
    /// the record starts the stretch and its head was verified before (see
    /// the `heads` module); else found and verified, and kept if it is
    /// worth keeping.
    fn head_in_stretch(
        &self,
        segment: &Segment,
        position: u64,
        start: u64,
        stretch: Bytes,
        kept: Option<Arc<KeptHead>>,
    ) -> Result<Option<RecordHead>> {
        if let Some(kept) = kept
            && kept.holds(position)
            && stretch.len() >= kept.total
        {
            return Ok(Some(kept_head(stretch, kept)));
        }
        let Some((r, at, bytes)) = find_record_in(
            segment,
            position,
            start,
            stretch,
            format::decode_record_head,
        )?
        else {
            return Ok(None);
        };
        // The head is kept, but handed out as kept only from the next read
        // into its record on: a record read once (a `read_last`, a lone
        // hit in a large store) is not worth its owner deriving anything.
        if at == 0 && r.seq.len() >= KEEP_FROM_SEQ {
            let total = FRAME_LEN + format::u32_at(&bytes, 0) as usize;
            let head_len = total - r.payload.len();
            let head = KeptHead::new(r.meta, &r.seq, head_len, total);
            self.heads
                .keep(segment.first_position(), start, Arc::new(head));
        }
        Ok(Some(RecordHead {
            meta: r.meta,
            seq: r.seq,
            payload: PayloadAt::Loaded(r.payload),
            kept: None,
        }))
    }

    /// How many verified record heads are kept, and the bytes they count
    /// for (at most [`KEEP_BYTES`](crate::heads::KEEP_BYTES)).
    pub fn kept_heads(&self) -> (usize, usize) {
        self.heads.usage()
    }

    /// Records holding any position in `from..=up_to`, oldest first.
    pub fn forward(&self, from: u64, up_to: u64) -> Forward {
        let (index, segment) = match self.segments.find(from) {
            Some(found) => found,
            None => match self.segments.get(0) {
                Some(s) => (0, s),
                None => return Forward::empty(self.segments.clone()),
            },
        };
        let offset = match segment.locate(from) {
            Some((start, _)) => start,
            None if from < segment.first_position() => SEGMENT_HEADER_LEN as u64,
            None => segment.bounds().end,
        };
        Forward {
            segments: self.segments.clone(),
            index,
            stop: segment.bounds().end,
            segment: Some(segment),
            offset,
            buf: Bytes::new(),
            buf_start: 0,
            from,
            up_to,
            ahead: None,
        }
    }

    /// Records whose first position is at or before `down_from`, newest first.
    pub fn backward(&self, down_from: u64) -> Backward {
        let mut b = Backward {
            segments: self.segments.clone(),
            index: 0,
            segment: None,
            stretch_start: 0,
            pending: Vec::new(),
            down_from,
        };
        if down_from == 0 {
            return b;
        }
        let Some((index, segment)) = self.segments.find(down_from) else {
            return b;
        };
        let stretch = segment
            .locate(down_from)
            .or_else(|| segment.stretch_before(segment.bounds().end));
        b.index = index;
        b.segment = Some(segment);
        match stretch {
            Some((start, stop)) => b.load_stretch(start, stop),
            None => b.stretch_start = SEGMENT_HEADER_LEN as u64,
        }
        b
    }
}

/// The record holding `position` in `segment`, decoded by `decode`. Records
/// before it in its stretch of the offset table are stepped over by their
/// length fields.
fn find_record(
    segment: &Segment,
    position: u64,
    decode: fn(&Bytes) -> Frame,
) -> Result<Option<Record>> {
    let Some((start, stop)) = segment.locate(position) else {
        return Ok(None);
    };
    let bytes = segment.read(start, stop)?;
    Ok(find_record_in(segment, position, start, bytes, decode)?.map(|(r, _, _)| r))
}

/// The head of a kept record, its payload cut from the stretch it starts
/// (which holds it whole).
fn kept_head(stretch: Bytes, kept: Arc<KeptHead>) -> RecordHead {
    // Narrowed in place: a slice would count a reference to the map and
    // drop the stretch's.
    let mut payload = stretch;
    payload.truncate(kept.total);
    payload.advance(kept.head_len.min(payload.len()));
    RecordHead {
        meta: kept.meta,
        seq: Bytes::new(),
        payload: PayloadAt::Loaded(payload),
        kept: Some(kept),
    }
}

/// [`find_record`] in the stretch of the offset table starting at `start`,
/// whose bytes are `bytes`: the record, its offset in the stretch, and the
/// stretch's bytes.
fn find_record_in(
    segment: &Segment,
    position: u64,
    start: u64,
    bytes: Bytes,
    decode: fn(&Bytes) -> Frame,
) -> Result<Option<(Record, usize, Bytes)>> {
    let mut at = 0usize;
    while at + FRAME_LEN + format::BODY_FIXED_LEN <= bytes.len() {
        let total = FRAME_LEN + format::u32_at(&bytes, at) as usize;
        if total < FRAME_LEN + format::BODY_FIXED_LEN || at + total > bytes.len() {
            break;
        }
        let first = format::u64_at(&bytes, at + FRAME_LEN);
        let count = u64::from(format::u32_at(&bytes, at + FRAME_LEN + 8));
        if first <= position && position < first.saturating_add(count) {
            return match decode(&bytes.slice(at..at + total)) {
                Frame::Record(r, _) => Ok(Some((r, at, bytes))),
                Frame::End => Err(corrupt(
                    segment,
                    start + at as u64,
                    "unexpected end-of-log marker",
                )),
                Frame::Invalid { reason, .. } => Err(corrupt(segment, start + at as u64, reason)),
            };
        }
        at += total;
    }
    Err(corrupt(
        segment,
        start + at as u64,
        "the offset table points at a stretch without the position",
    ))
}

/// [`WalReader::record_head_containing`] in a compressed segment: steps
/// from record to record of the position's stretch by their heads, reading
/// no payload, and leaves the payload of the one holding it in the segment.
/// A head read once and long enough to be worth it (see [`keeps`]) is kept
/// among the reader's verified heads, under the compressed segment's own
/// identity: the next point read into its record neither reads nor
/// checksums it again, and finds its revision by the kept table.
fn head_in_compressed(
    heads: &HeadCache,
    segment: Arc<Segment>,
    z: &CompressedSegment,
    position: u64,
) -> Result<Option<RecordHead>> {
    // Most heads are short: one read of the block the frame is in usually
    // gets the whole head.
    let read_head = |at: u64, stop: u64| -> Result<Bytes> {
        let fields_end = at + format::HEAD_FIELDS_LEN as u64;
        let guess_end = z.block_end(fields_end).min((at + HEAD_GUESS).min(stop));
        let first = z.read(at, guess_end.max(fields_end))?;
        let head_end = (format::head_len(&first) as u64).min(stop - at);
        if head_end <= first.len() as u64 {
            Ok(first.slice(..head_end as usize))
        } else {
            z.read(at, at + head_end)
        }
    };
    // Kept under the compressed segment's identity (unique to this opening
    // of its file), with the offset's top bit set, which no plain
    // segment's offset has: never taken for a plain segment's head.
    let id = z.cache_id();
    let kept = KeptHeads {
        get: &|at| heads.get(id, at | COMPRESSED_HEAD),
        keep: &|at, head| heads.keep(id, at | COMPRESSED_HEAD, head),
    };
    head_in_pieces(segment, position, read_head, Some(kept))
}

/// Marks a kept head's offset as one in a compressed segment.
const COMPRESSED_HEAD: u64 = 1 << 63;

/// Whether a compressed segment's head, just verified, is kept: when its
/// sequencing bytes are long enough that checking them again costs more
/// than finding the kept copy (as for a plain segment), or when it did not
/// fit the first read (it would take two reads, of several blocks, again).
fn keeps(head: &Bytes, seq_len: usize) -> bool {
    seq_len >= KEEP_FROM_SEQ || head.len() as u64 > HEAD_GUESS
}

/// [`WalReader::record_head_containing`] in an evicted segment, as in a
/// compressed one, so that a point read fetches the blocks of the head
/// and of one event, not its whole record (a batch may be large).
fn head_in_remote(segment: Arc<Segment>, position: u64) -> Result<Option<RecordHead>> {
    let remote = segment.clone();
    let read_head = |at: u64, stop: u64| -> Result<Bytes> {
        let fields_end = at + format::HEAD_FIELDS_LEN as u64;
        let first = remote.read(at, (at + HEAD_GUESS).min(stop).max(fields_end))?;
        let head_end = (format::head_len(&first) as u64).min(stop - at);
        if head_end <= first.len() as u64 {
            Ok(first.slice(..head_end as usize))
        } else {
            remote.read(at, at + head_end)
        }
    };
    head_in_pieces(segment, position, read_head, None)
}

/// Where [`head_in_pieces`] finds and keeps verified heads, by the offset
/// of their record.
struct KeptHeads<'a> {
    get: &'a dyn Fn(u64) -> Option<Arc<KeptHead>>,
    keep: &'a dyn Fn(u64, Arc<KeptHead>),
}

/// The point read of a segment whose bytes are read in pieces (compressed
/// or evicted): steps from record to record of the position's stretch by
/// their heads — each a kept one, or read by `read_head(at, stop)` and
/// verified (then kept, if `kept` says where and [`keeps`] agrees) —
/// reading no payload, and leaves the payload of the record holding the
/// position in the segment.
fn head_in_pieces(
    segment: Arc<Segment>,
    position: u64,
    mut read_head: impl FnMut(u64, u64) -> Result<Bytes>,
    kept: Option<KeptHeads<'_>>,
) -> Result<Option<RecordHead>> {
    let Some((start, stop)) = segment.locate(position) else {
        return Ok(None);
    };
    let in_segment = |segment: Arc<Segment>, start: u64, end: u64| PayloadAt::InSegment {
        segment,
        start,
        len: (end - start) as usize,
    };
    let mut at = start;
    while at + (FRAME_LEN + format::BODY_FIXED_LEN) as u64 <= stop {
        if let Some(k) = kept.as_ref().and_then(|k| (k.get)(at))
            && at + k.total as u64 <= stop
        {
            if k.meta.first_position <= position && position <= k.meta.last_position() {
                return Ok(Some(RecordHead {
                    meta: k.meta,
                    seq: Bytes::new(),
                    payload: in_segment(segment, at + k.head_len as u64, at + k.total as u64),
                    kept: Some(k),
                }));
            }
            at += k.total as u64;
            continue;
        }
        let available = (stop - at) as usize;
        let head = read_head(at, stop)?;
        let head_end = head.len() as u64;
        let (record, total) = match format::decode_record_head_only(&head, available) {
            Frame::Record(r, total) => (r, total),
            Frame::End => return Err(corrupt(&segment, at, "unexpected end-of-log marker")),
            Frame::Invalid { reason, .. } => return Err(corrupt(&segment, at, reason)),
        };
        if let Some(k) = &kept
            && keeps(&head, record.seq.len())
        {
            let verified = KeptHead::new(record.meta, &record.seq, head.len(), total);
            (k.keep)(at, Arc::new(verified));
        }
        let meta = record.meta;
        if meta.first_position <= position && position <= meta.last_position() {
            return Ok(Some(RecordHead {
                meta,
                seq: record.seq,
                payload: in_segment(segment, at + head_end, at + total as u64),
                kept: None,
            }));
        }
        at += total as u64;
    }
    Err(corrupt(
        &segment,
        at,
        "the offset table points at a stretch without the position",
    ))
}

/// A record found for a point read ([`WalReader::record_head_containing`]):
/// its fields and sequencing bytes, which its head checksum vouches for,
/// and where its payload is, unverified (its events carry their own
/// checksums).
#[derive(Clone, Debug)]
pub struct RecordHead {
    /// The fixed fields.
    pub meta: RecordMeta,
    /// Bytes assigned at commit time; empty when the head is kept, whose
    /// copy [`seq`](Self::seq) lends instead (a clone would touch a
    /// reference count on another line than the kept head's for every
    /// point read).
    seq: Bytes,
    payload: PayloadAt,
    /// The kept copy of this head, when it is one (see the `heads`
    /// module).
    kept: Option<Arc<KeptHead>>,
}

#[derive(Clone, Debug)]
enum PayloadAt {
    /// Read with the head (a slice of a mapped segment costs nothing).
    Loaded(Bytes),
    /// Left in a compressed segment, to be read in pieces.
    InSegment {
        segment: Arc<Segment>,
        start: u64,
        len: usize,
    },
}

impl RecordHead {
    /// The sequencing bytes, assigned at commit time.
    pub fn seq(&self) -> &Bytes {
        match &self.kept {
            Some(kept) => &kept.seq,
            None => &self.seq,
        }
    }

    /// What `build` derives from this head's fields and sequencing bytes,
    /// kept with the head when the head is kept (built once for every
    /// point read into its record); `None` when the head is not kept.
    pub fn derived<T: std::any::Any + Send + Sync>(
        &self,
        build: impl FnOnce(&RecordMeta, &Bytes) -> T,
    ) -> Option<&T> {
        self.kept.as_ref()?.derived(build)
    }

    /// [`derived`](Self::derived), built only once the point reads into
    /// this record have spent `price` without it, each saying what it
    /// spends (`cost`); `None` before, and when the head is not kept.
    pub fn derived_once_paid<T: std::any::Any + Send + Sync>(
        &self,
        cost: u64,
        price: u64,
        build: impl FnOnce(&RecordMeta, &Bytes) -> T,
    ) -> Option<&T> {
        self.kept.as_ref()?.derived_once_paid(cost, price, build)
    }

    /// The whole payload, if it was read with the head (the record is in
    /// a local, uncompressed segment).
    pub fn payload(&self) -> Option<&Bytes> {
        match &self.payload {
            PayloadAt::Loaded(b) => Some(b),
            PayloadAt::InSegment { .. } => None,
        }
    }

    /// The payload's length.
    pub fn payload_len(&self) -> usize {
        match &self.payload {
            PayloadAt::Loaded(b) => b.len(),
            PayloadAt::InSegment { len, .. } => *len,
        }
    }

    /// Bytes `start..end` of the payload, read from its segment (only the
    /// blocks they lie in are decompressed). Fails as corruption if the
    /// range is not inside the payload: a range comes from the payload's
    /// own, unverified, bytes.
    pub fn payload_range(&self, start: usize, end: usize) -> Result<Bytes> {
        match &self.payload {
            PayloadAt::Loaded(b) if start <= end && end <= b.len() => Ok(b.slice(start..end)),
            PayloadAt::InSegment {
                segment,
                start: base,
                len,
            } if start <= end && end <= *len => {
                read_range(segment, base + start as u64, base + end as u64)
            }
            PayloadAt::Loaded(_) => Err(WalError::Corruption {
                file: Default::default(),
                offset: 0,
                reason: "a range outside the record's payload".into(),
            }),
            PayloadAt::InSegment { segment, start, .. } => Err(corrupt(
                segment,
                *start,
                "a range outside the record's payload",
            )),
        }
    }
}

/// Iterator over records, oldest first; see [`WalReader::forward`].
pub struct Forward {
    segments: SegmentSet,
    index: usize,
    segment: Option<Arc<Segment>>,
    offset: u64,
    stop: u64,
    buf: Bytes,
    buf_start: u64,
    from: u64,
    up_to: u64,
    /// Checksums of the records after the one handed out last, being
    /// computed on the helper thread (see `checksum_ahead`), for the
    /// segment at this index.
    ahead: Option<(usize, Ahead)>,
}

impl Forward {
    fn empty(segments: SegmentSet) -> Forward {
        Forward {
            segments,
            index: 0,
            segment: None,
            offset: 0,
            stop: 0,
            buf: Bytes::new(),
            buf_start: 0,
            from: 0,
            up_to: 0,
            ahead: None,
        }
    }

    /// Hands the bodies of the records after `offset` to the checksum
    /// helper, if they are long enough to be worth it, lie in `segment`'s
    /// map below its published end and may be read (up to `up_to`), and
    /// less than enough is in flight. Their lengths are read unverified:
    /// each record is decoded and checked whole when it is reached, and
    /// its checksum from the helper used only if the record is the one
    /// handed over.
    fn checksum_ahead(&mut self, segment: &Segment) {
        let from = match &self.ahead {
            Some((index, ahead)) if *index == self.index => {
                if !ahead.wants_more() {
                    return;
                }
                ahead.end()
            }
            _ => self.offset,
        };
        let Some(map) = segment.mapped() else {
            return;
        };
        // The map may end short of the published end, while it grows.
        let stop = self.stop.min(map.len() as u64);
        let (mut at, mut records, mut bytes) = (from, Vec::new(), 0);
        while bytes < BATCH_BYTES && stop.saturating_sub(at) >= AHEAD_FROM {
            // Its frame, then its first position (the body's first field):
            // within the map, as at least AHEAD_FROM bytes are left.
            let head = &map[at as usize..];
            let total = FRAME_LEN as u64 + u64::from(format::u32_at(head, 0));
            let first_position = format::u64_at(head, FRAME_LEN);
            if total < AHEAD_FROM || total > stop - at || first_position > self.up_to {
                break;
            }
            records.push((
                total,
                map.slice((at as usize + FRAME_LEN)..(at + total) as usize),
            ));
            (at, bytes) = (at + total, bytes + total);
        }
        if records.is_empty() {
            return;
        }
        let ahead = match &mut self.ahead {
            Some((index, ahead)) if *index == self.index => ahead,
            _ => &mut self.ahead.insert((self.index, Ahead::new(from))).1,
        };
        ahead.hand_over(records);
    }

    /// Makes `buf` cover `offset..offset + need` (clipped to `stop`).
    fn fill(&mut self, segment: &Segment, need: u64) -> Result<()> {
        let have_end = self.buf_start + self.buf.len() as u64;
        if self.offset >= self.buf_start && self.offset + need <= have_end {
            return Ok(());
        }
        let compressed = segment.compressed().is_some();
        let chunk = if compressed { COMPRESSED_CHUNK } else { CHUNK };
        let end = (self.offset + need.max(chunk)).min(self.stop);
        let held = self.offset >= self.buf_start && self.offset < have_end;
        self.buf = if compressed && held {
            // A record crossing the end of the last read: only the rest is
            // read, so that its blocks are not decompressed twice. (A
            // mapped segment's bytes are sliced again, for free.)
            let kept = self.buf.slice((self.offset - self.buf_start) as usize..);
            let rest = read_range(segment, have_end, end)?;
            let mut joined = Vec::with_capacity(kept.len() + rest.len());
            joined.extend_from_slice(&kept);
            joined.extend_from_slice(&rest);
            Bytes::from(joined)
        } else {
            read_range(segment, self.offset, end)?
        };
        self.buf_start = self.offset;
        Ok(())
    }

    fn next_record(&mut self) -> Result<Option<Record>> {
        loop {
            let Some(segment) = self.segment.clone() else {
                return Ok(None);
            };
            if self.offset >= self.stop {
                self.stop = segment.bounds().end;
            }
            if self.offset >= self.stop {
                match self.segments.get(self.index + 1) {
                    Some(next) => {
                        self.index += 1;
                        self.offset = SEGMENT_HEADER_LEN as u64;
                        self.buf = Bytes::new();
                        self.buf_start = 0;
                        self.stop = next.bounds().end;
                        self.segment = Some(next);
                        continue;
                    }
                    None => return Ok(None),
                }
            }
            let remaining = self.stop - self.offset;
            if remaining < FRAME_LEN as u64 {
                return Err(corrupt(
                    &segment,
                    self.offset,
                    "record frame crosses the published end",
                ));
            }
            self.fill(&segment, FRAME_LEN as u64)?;
            let rel = (self.offset - self.buf_start) as usize;
            let total = FRAME_LEN as u64 + u64::from(format::u32_at(&self.buf, rel));
            if total > remaining {
                return Err(corrupt(
                    &segment,
                    self.offset,
                    "record crosses the published end",
                ));
            }
            self.fill(&segment, total)?;
            let rel = (self.offset - self.buf_start) as usize;
            let bytes = self.buf.slice(rel..rel + total as usize);
            let computed = match &mut self.ahead {
                Some((index, ahead))
                    if *index == self.index && ahead.is_next(self.offset, total) =>
                {
                    ahead.take()
                }
                _ => {
                    self.ahead = None;
                    None
                }
            };
            let decoded = match computed {
                Some(crc) => format::decode_record_with_body_crc(&bytes, crc),
                None => format::decode_record(&bytes),
            };
            let record = match decoded {
                Frame::Record(r, _) => r,
                Frame::End => {
                    return Err(corrupt(
                        &segment,
                        self.offset,
                        "unexpected end-of-log marker",
                    ));
                }
                Frame::Invalid { reason, .. } => {
                    return Err(corrupt(&segment, self.offset, reason));
                }
            };
            self.offset += total;
            if record.meta.last_position() < self.from {
                continue;
            }
            if record.meta.first_position > self.up_to {
                self.segment = None;
                return Ok(None);
            }
            // Records of a log tend to be alike: one too short to be
            // checksummed ahead is not followed by a look at the next.
            if total >= AHEAD_FROM && record.meta.last_position() < self.up_to {
                self.checksum_ahead(&segment);
            }
            return Ok(Some(record));
        }
    }
}

impl Iterator for Forward {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_record() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => None,
            Err(e) => {
                self.segment = None;
                Some(Err(e))
            }
        }
    }
}

/// Iterator over records, newest first; see [`WalReader::backward`].
pub struct Backward {
    segments: SegmentSet,
    index: usize,
    segment: Option<Arc<Segment>>,
    /// Start offset of the stretch most recently loaded.
    stretch_start: u64,
    /// Loaded records (or one error), popped from the end.
    pending: Vec<Result<Record>>,
    down_from: u64,
}

impl Backward {
    /// Loads the stretch `start..stop` of the current segment into `pending`.
    fn load_stretch(&mut self, start: u64, stop: u64) {
        self.stretch_start = start;
        let Some(segment) = self.segment.clone() else {
            return;
        };
        match Self::load(&segment, start, stop, self.down_from) {
            Ok(records) => self.pending = records.into_iter().map(Ok).collect(),
            Err(e) => self.pending = vec![Err(e)],
        }
    }

    fn load(segment: &Segment, start: u64, stop: u64, down_from: u64) -> Result<Vec<Record>> {
        let bytes = read_range(segment, start, stop)?;
        let mut records = Vec::new();
        let mut at = 0usize;
        while at < bytes.len() {
            match format::decode_record(&bytes.slice(at..)) {
                Frame::Record(r, len) => {
                    if r.meta.first_position <= down_from {
                        records.push(r);
                    }
                    at += len;
                }
                Frame::End => {
                    return Err(corrupt(
                        segment,
                        start + at as u64,
                        "unexpected end-of-log marker",
                    ));
                }
                Frame::Invalid { reason, .. } => {
                    return Err(corrupt(segment, start + at as u64, reason));
                }
            }
        }
        Ok(records)
    }
}

impl Iterator for Backward {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.pop() {
                if item.is_err() {
                    self.segment = None;
                }
                return Some(item);
            }
            let segment = self.segment.clone()?;
            if let Some((start, stop)) = segment.stretch_before(self.stretch_start) {
                self.load_stretch(start, stop);
                continue;
            }
            if self.index == 0 {
                self.segment = None;
                return None;
            }
            self.index -= 1;
            let previous = self.segments.get(self.index)?;
            let end = previous.bounds().end;
            self.segment = Some(previous);
            self.stretch_start = end;
        }
    }
}
