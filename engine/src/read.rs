//! Reading events by position: forwards or backwards, from an exclusive
//! start, with a limit, never past the head captured when the read began.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use gesta_index::{Cursor, Positions};
use gesta_wal::{Backward, Forward, Place, Record, RecordHead, WalReader};

use std::ops::ControlFlow;

use crate::ahead::Ahead;
use crate::amended::{Amended, Amendments};
use crate::codec::{
    RevisionHint, RevisionTable, decode_event_by_table, decode_event_in_window, decode_record,
    each_event_of, event_frame, warm_event,
};
use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::view::EventRef;

pub use gesta_index::Direction;

/// What to read.
///
/// `start` is **exclusive** in both directions: forwards yields positions
/// `> start` (`None` means from the beginning), backwards yields positions
/// `< start` (`None` means from the head).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Forwards or backwards.
    pub direction: Direction,
    /// The exclusive start position.
    pub start: Option<u64>,
    /// At most this many events (`None`: no limit).
    pub limit: Option<usize>,
}

impl ReadOptions {
    /// Everything, oldest first.
    pub fn forwards() -> ReadOptions {
        ReadOptions::default()
    }

    /// Everything, newest first.
    pub fn backwards() -> ReadOptions {
        ReadOptions {
            direction: Direction::Backwards,
            ..ReadOptions::default()
        }
    }

    /// Starts after (forwards) or before (backwards) `position`.
    pub fn start(mut self, position: u64) -> ReadOptions {
        self.start = Some(position);
        self
    }

    /// Stops after `n` events.
    pub fn limit(mut self, n: usize) -> ReadOptions {
        self.limit = Some(n);
        self
    }

    /// The inclusive range of stream revisions a stream read covers, with
    /// `start` taken as a revision (exclusive, like a position in
    /// [`bounds`](Self::bounds)): forwards `start + 1 ..`, backwards
    /// `..= start - 1`; `None` when nothing can match (backwards from
    /// revision 0).
    pub fn revision_bounds(&self) -> Option<(u64, u64)> {
        match self.direction {
            Direction::Forwards => match self.start {
                None => Some((0, u64::MAX)),
                Some(s) => s.checked_add(1).map(|lo| (lo, u64::MAX)),
            },
            Direction::Backwards => match self.start {
                None => Some((0, u64::MAX)),
                Some(s) => s.checked_sub(1).map(|hi| (0, hi)),
            },
        }
    }

    /// The inclusive range of positions a read at `head` covers: forwards
    /// `start + 1 ..= head`, backwards `1 ..= start - 1` (at most the head).
    /// The range is empty (`lo > hi`) when nothing can match.
    pub fn bounds(&self, head: u64) -> (u64, u64) {
        match self.direction {
            Direction::Forwards => (self.start.unwrap_or(0).saturating_add(1), head),
            Direction::Backwards => (
                1,
                self.start.map_or(head, |s| s.saturating_sub(1).min(head)),
            ),
        }
    }
}

enum Source {
    Forward(Forward),
    Backward(Backward),
    /// Positions from the index, each looked up in the log.
    Indexed {
        positions: Box<Ahead<Positions>>,
        lookup: Lookup,
    },
    Failed(Error),
    Done,
}

/// A lazy iterator over events; see [`Store::read`](crate::Store::read).
pub struct Events {
    source: Source,
    /// The log a scan reads (to name the file of a damaged event), and
    /// what lifecycle operations changed about its events.
    scanned: Option<(WalReader, Arc<Amendments>)>,
    buffered: VecDeque<RecordedEvent>,
    /// Inclusive position bounds.
    lo: u64,
    hi: u64,
    remaining: usize,
}

impl Events {
    /// An iterator that yields nothing.
    pub(crate) fn empty() -> Events {
        Events {
            scanned: None,
            source: Source::Done,
            buffered: VecDeque::new(),
            lo: 1,
            hi: 0,
            remaining: 0,
        }
    }

    /// An iterator that yields `error` once.
    pub(crate) fn failed(error: Error) -> Events {
        Events {
            scanned: None,
            source: Source::Failed(error),
            buffered: VecDeque::new(),
            lo: 1,
            hi: 0,
            remaining: 1,
        }
    }

    /// The positions of `cursor` within the read's bounds, each event read
    /// from the log.
    pub(crate) fn indexed(
        reader: &WalReader,
        added: &Arc<Amendments>,
        cursor: Box<dyn Cursor>,
        head: u64,
        options: ReadOptions,
    ) -> Events {
        let (lo, hi, dir) = bounds(head, options);
        Events::in_range(reader, added, cursor, (lo, hi), dir, options.limit)
    }

    /// The positions of `cursor` within `lo..=hi`, in `dir`, at most
    /// `limit`, each event read from the log.
    pub(crate) fn in_range(
        reader: &WalReader,
        added: &Arc<Amendments>,
        cursor: Box<dyn Cursor>,
        (lo, hi): (u64, u64),
        dir: Direction,
        limit: Option<usize>,
    ) -> Events {
        let remaining = limit.unwrap_or(usize::MAX);
        let source = if lo > hi || remaining == 0 {
            Source::Done
        } else {
            Source::Indexed {
                positions: Box::new(
                    Ahead::new(reader.clone(), Positions::new(cursor, lo, hi, dir))
                        .expecting(limit),
                ),
                lookup: Lookup::new(reader.clone(), added.clone()),
            }
        };
        Events {
            scanned: None,
            source,
            buffered: VecDeque::new(),
            lo,
            hi,
            remaining,
        }
    }

    /// Every event within the read's bounds, scanning the log.
    pub(crate) fn scan(
        reader: &WalReader,
        added: &Arc<Amendments>,
        head: u64,
        options: ReadOptions,
    ) -> Events {
        let remaining = options.limit.unwrap_or(usize::MAX);
        let (lo, hi) = options.bounds(head);
        let source = match options.direction {
            Direction::Forwards => Source::Forward(reader.forward(lo, head)),
            Direction::Backwards => Source::Backward(reader.backward(hi)),
        };
        let empty = lo > hi || remaining == 0;
        Events {
            scanned: Some((reader.clone(), added.clone())),
            source: if empty { Source::Done } else { source },
            buffered: VecDeque::new(),
            lo,
            hi,
            remaining,
        }
    }

    /// Hands each event this read would yield to `f` as a borrowed view,
    /// until `f` breaks off: an indexed read lends each event from the
    /// record it looked up (nothing allocated per event), a scan lends its
    /// owned events. The same events, in the same order, with the same
    /// errors as iterating.
    pub(crate) fn lend_each(
        mut self,
        f: &mut dyn FnMut(EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
        if let Source::Indexed { positions, lookup } = &mut self.source {
            while self.remaining > 0 {
                let Some((position, place)) = positions.next() else {
                    break;
                };
                self.remaining -= 1;
                if f(lookup.event_ref_at(position, place)?).is_break() {
                    break;
                }
            }
            return Ok(());
        }
        crate::view::lend_owned(self, f)
    }

    fn next_indexed(&mut self) -> Result<Option<RecordedEvent>> {
        let Source::Indexed { positions, lookup } = &mut self.source else {
            return Ok(None);
        };
        match positions.next() {
            Some((position, place)) => lookup.event_at(position, place).map(Some),
            None => Ok(None),
        }
    }

    fn refill(&mut self) -> Result<bool> {
        if matches!(self.source, Source::Failed(_)) {
            let Source::Failed(e) = std::mem::replace(&mut self.source, Source::Done) else {
                return Ok(false);
            };
            return Err(e);
        }
        if matches!(self.source, Source::Indexed { .. }) {
            return match self.next_indexed()? {
                Some(e) => {
                    self.buffered.push_back(e);
                    Ok(true)
                }
                None => {
                    self.source = Source::Done;
                    Ok(false)
                }
            };
        }
        let record = match &mut self.source {
            Source::Forward(f) => f.next(),
            Source::Backward(b) => b.next(),
            _ => None,
        };
        let Some(record) = record else {
            self.source = Source::Done;
            return Ok(false);
        };
        let record = record?;
        let mut events = Vec::with_capacity(record.meta.count as usize);
        if let Some((reader, added)) = &self.scanned {
            decode_scanned(reader, added, &record, &mut events)?;
        }
        let (lo, hi) = (self.lo, self.hi);
        let keep = events
            .into_iter()
            .filter(|e| (lo..=hi).contains(&e.position));
        match self.source {
            Source::Backward(_) => self.buffered.extend(keep.rev()),
            _ => self.buffered.extend(keep),
        }
        Ok(true)
    }
}

impl Iterator for Events {
    type Item = Result<RecordedEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        loop {
            if let Some(e) = self.buffered.pop_front() {
                self.remaining -= 1;
                return Some(Ok(e));
            }
            match self.refill() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.source = Source::Done;
                    self.remaining = 0;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Finds the events at positions the index gives, for reads and
/// subscriptions: the record holding a position is looked up through the
/// segments' offset tables, kept (the next position is often in it), and
/// the one event decoded and checked by its own checksum. Every error names
/// the segment and offset.
pub(crate) struct Lookup {
    reader: WalReader,
    /// What lifecycle operations changed about events, and about the
    /// event read last (which its view borrows).
    amendments: Arc<Amendments>,
    amended: Amended,
    record: Option<RecordHead>,
    /// The frame of the event read last, when its record's payload was
    /// left in a compressed segment and read in pieces.
    frame: Bytes,
    /// Where the reads in `record` left off in its revisions.
    hint: RevisionHint,
}

impl Lookup {
    pub(crate) fn new(reader: WalReader, amendments: Arc<Amendments>) -> Lookup {
        Lookup {
            reader,
            amendments,
            amended: Amended::default(),
            record: None,
            frame: Bytes::new(),
            hint: RevisionHint::default(),
        }
    }

    /// Whether `position` is in the record looked up last (so the event at
    /// `position` belongs to the same append as the previous one).
    pub(crate) fn in_last(&self, position: u64) -> bool {
        self.record.as_ref().is_some_and(|r| {
            r.meta.first_position <= position && position <= r.meta.last_position()
        })
    }

    /// The event at `position`, its record where `place` says (see
    /// [`Ahead`]).
    pub(crate) fn event_at(
        &mut self,
        position: u64,
        place: Option<Place>,
    ) -> Result<RecordedEvent> {
        self.event_ref_at(position, place).map(|e| e.to_owned())
    }

    /// The event at `position`, borrowed from the record that holds it.
    pub(crate) fn event_ref(&mut self, position: u64) -> Result<EventRef<'_>> {
        self.event_ref_at(position, None)
    }

    /// [`event_ref`](Self::event_ref), its record where `place` says.
    pub(crate) fn event_ref_at(
        &mut self,
        position: u64,
        place: Option<Place>,
    ) -> Result<EventRef<'_>> {
        // A read given no place was not warmed with others (`warm`).
        let lone = place.is_none();
        if !self.in_last(position) {
            self.record = self.reader.record_head_at(position, place)?;
            self.hint = RevisionHint::default();
        }
        let found = match &self.record {
            Some(record) => match record.payload() {
                Some(payload) => {
                    let index = position.saturating_sub(record.meta.first_position) as u32;
                    let table = RevisionTable::of(record, index, &self.hint);
                    if lone {
                        warm_event(payload, index, record.meta.count, table);
                    }
                    decode_event_by_table(
                        record.meta,
                        record.seq(),
                        payload,
                        position,
                        &mut self.hint,
                        table,
                    )
                }
                None => match event_frame(record, position) {
                    Ok(frame) => {
                        self.frame = frame;
                        decode_event_in_window(record, &self.frame, position, &mut self.hint)
                    }
                    Err(e) => Err(e),
                },
            },
            None => Err(Error::Corruption {
                file: Default::default(),
                offset: 0,
                reason: format!("the index names position {position}, which the log does not hold"),
            }),
        };
        let event = found.map_err(|e| name_file(&self.reader, position, e))?;
        self.amended = self.amendments.get(position);
        Ok(self.amended.apply(event))
    }
}

/// Decodes every event of a record a scan read, naming its segment if one
/// is damaged, and leaves out the events removed since.
pub(crate) fn decode_scanned(
    reader: &WalReader,
    added: &Amendments,
    record: &Record,
    out: &mut Vec<RecordedEvent>,
) -> Result<()> {
    let from = out.len();
    decode_record(record, out).map_err(|e| name_file(reader, record.meta.first_position, e))?;
    added.amend_tail(out, from);
    Ok(())
}

/// Names the segment (and the offset-table stretch) of an event-level
/// corruption found while decoding the record holding `position`: the codec
/// sees only bytes, not where they came from.
pub(crate) fn name_file(reader: &WalReader, position: u64, e: Error) -> Error {
    match e {
        Error::Corruption {
            file,
            offset,
            reason,
        } if file.as_os_str().is_empty() => {
            let found = reader.segments().find(position).map(|(_, s)| {
                let at = s.locate(position).map_or(offset, |(start, _)| start);
                (s.path().clone(), at)
            });
            let (file, offset) = found.unwrap_or((file, offset));
            Error::Corruption {
                file,
                offset,
                reason: format!("{reason} (the record holding position {position})"),
            }
        }
        other => other,
    }
}

/// [`read`], lending each event to `f` (see `EventStore::read_each`): a
/// scan decodes each record's events in place, an indexed read each
/// position's event in the record it keeps.
pub(crate) fn read_each(
    reader: &WalReader,
    indexes: &crate::indexes::Indexes,
    head: u64,
    query: &crate::query::Query,
    options: ReadOptions,
    f: &mut dyn FnMut(EventRef<'_>) -> ControlFlow<()>,
) -> Result<()> {
    let mut remaining = options.limit.unwrap_or(usize::MAX);
    let (lo, hi) = options.bounds(head);
    if lo > hi || remaining == 0 {
        return Ok(());
    }
    let mut lend = |e: EventRef<'_>| {
        remaining -= 1;
        match f(e) {
            ControlFlow::Continue(()) if remaining > 0 => ControlFlow::Continue(()),
            _ => ControlFlow::Break(()),
        }
    };
    if !query.is_all() {
        let view = indexes.view().within(lo, hi);
        let cursor = view.evaluate(&crate::query::query_spec(query));
        let mut lookup = Lookup::new(reader.clone(), indexes.amendments().clone());
        let positions = Positions::new(cursor, lo, hi, options.direction);
        for (position, place) in Ahead::new(reader.clone(), positions).expecting(options.limit) {
            if lend(lookup.event_ref_at(position, place)?).is_break() {
                break;
            }
        }
        return Ok(());
    }
    let records: Box<dyn Iterator<Item = gesta_wal::Result<Record>>> = match options.direction {
        Direction::Forwards => Box::new(reader.forward(lo, head)),
        Direction::Backwards => Box::new(reader.backward(hi)),
    };
    // A scan's events get their added tags here; an indexed read's from
    // its `Lookup`.
    // A store nothing was ever amended in (asked once per record, not per
    // event) lends its events as they are.
    let added = indexes.amendments();
    let mut lend_with_added = |e: EventRef<'_>, any: bool| {
        if !any {
            return lend(e);
        }
        let amended = added.get(e.position);
        match amended.removed() {
            true => ControlFlow::Continue(()),
            false => lend(amended.apply(e)),
        }
    };
    for record in records {
        let record = record?;
        let any = added.any();
        let mut flow = ControlFlow::Continue(());
        let in_bounds = |e: &EventRef<'_>| (lo..=hi).contains(&e.position);
        let decoded = match options.direction {
            Direction::Forwards => each_event_of(&record, |e| {
                if flow.is_continue() && in_bounds(&e) {
                    flow = lend_with_added(e, any);
                }
            }),
            Direction::Backwards => {
                // A record's events decode oldest first; they are lent
                // newest first.
                let mut events = Vec::with_capacity(record.meta.count as usize);
                let decoded = each_event_of(&record, |e| {
                    if in_bounds(&e) {
                        events.push(e);
                    }
                });
                if decoded.is_ok() {
                    for e in events.into_iter().rev() {
                        flow = lend_with_added(e, any);
                        if flow.is_break() {
                            break;
                        }
                    }
                }
                decoded
            }
        };
        decoded.map_err(|e| name_file(reader, record.meta.first_position, e))?;
        if flow.is_break() {
            break;
        }
    }
    Ok(())
}

/// The inclusive position bounds and direction of a read at `head`.
fn bounds(head: u64, options: ReadOptions) -> (u64, u64, Direction) {
    let (lo, hi) = options.bounds(head);
    (lo, hi, options.direction)
}

/// The events matching `query` up to `head`: from the indices, or for
/// [`Query::all`] by a scan of the log. A query that fails its checks
/// yields its error.
pub(crate) fn read(
    reader: &WalReader,
    indexes: &crate::indexes::Indexes,
    head: u64,
    query: &crate::query::Query,
    options: ReadOptions,
) -> Events {
    if let Err(e) = query.validate() {
        return Events::failed(e);
    }
    if query.is_all() {
        Events::scan(reader, indexes.amendments(), head, options)
    } else {
        let (lo, hi) = options.bounds(head);
        let view = indexes.view().within(lo, hi);
        let cursor = view.evaluate(&crate::query::query_spec(query));
        Events::indexed(reader, indexes.amendments(), cursor, head, options)
    }
}
