//! Reading a stream by revision, an event by its id and a position by its
//! commit time: from the indices the committer already keeps (a stream's
//! postings are its events in revision order; the id index maps an id to
//! its position), and for time from the records' headers, whose commit
//! times never decrease.

use std::ops::ControlFlow;

use gesta_index::{Direction, ItemSpec, Key, Positions, QuerySpec};

use super::Store;
use crate::error::Result;
use crate::event::{RecordedEvent, check_stream_name};
use crate::read::{Events, Lookup, ReadOptions};
use crate::view::EventRef;

impl Store {
    /// The events of `stream` in revision order (reversed backwards), with
    /// `options.start` a **revision**, exclusive as a position is for
    /// [`read`](Store::read): forwards yields revisions `> start`,
    /// backwards revisions `< start`; a limit stops the work. A stream
    /// without events reads as empty.
    ///
    /// Finding where a start revision lies walks the stream's postings up
    /// to it (cheap, but linear in the revision); reading from the start
    /// or the end of a stream does not.
    pub fn read_stream(&self, stream: &str, options: ReadOptions) -> Result<Events> {
        check_stream_name(stream)?;
        let head = self.head();
        let Some((lo_rev, hi_rev)) = options.revision_bounds() else {
            return Ok(Events::empty());
        };
        let view = self.inner.indexes.view();
        let spec = QuerySpec {
            items: vec![ItemSpec {
                types: Vec::new(),
                tags: vec![Key::stream(stream)],
            }],
        };
        let (lo, hi) = if (lo_rev, hi_rev) == (0, u64::MAX) {
            // A read of the whole stream (loading an aggregate, its last
            // event) has no revision to find: its range is the whole log,
            // and the index is asked once.
            (1, head)
        } else {
            // The positions of the first and last revision in range: the
            // stream's postings, counted from the start. Revisions count
            // removed events too: they are counted in the postings with
            // nothing hidden, and skipped when read.
            let every = view.including_hidden();
            let mut postings = Positions::new(every.evaluate(&spec), 1, head, Direction::Forwards);
            let Some(lo) = postings.nth(lo_rev as usize) else {
                return Ok(Events::empty());
            };
            let hi = match hi_rev {
                u64::MAX => head,
                hi_rev if hi_rev == lo_rev => lo,
                hi_rev => postings.nth((hi_rev - lo_rev - 1) as usize).unwrap_or(head),
            };
            (lo, hi)
        };
        Ok(Events::in_range(
            &self.inner.reader,
            self.inner.indexes.amendments(),
            view.within(lo, hi).evaluate(&spec),
            (lo, hi),
            options.direction,
            options.limit,
        ))
    }

    /// The events [`read_stream`](Store::read_stream) yields, lent to `f`
    /// without copying (see [`EventStore::read_stream_each`]): each
    /// borrows the mapped segment that holds it.
    ///
    /// [`EventStore::read_stream_each`]: crate::EventStore::read_stream_each
    pub fn read_stream_each(
        &self,
        stream: &str,
        options: ReadOptions,
        f: &mut dyn FnMut(EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
        self.read_stream(stream, options)?.lend_each(f)
    }

    /// The newest event of `stream` (None when it has no events).
    pub fn read_stream_last(&self, stream: &str) -> Result<Option<RecordedEvent>> {
        self.read_stream(stream, ReadOptions::backwards().limit(1))?
            .next()
            .transpose()
    }

    /// The last position committed at or before `timestamp_micros`: 0
    /// before the first event, the head after the last. A binary search
    /// over the records' headers (each found through its segment's offset
    /// table), so it costs about `log2(records)` header reads — fewer once
    /// earlier searches have kept the records they verified (the store
    /// module `times`).
    pub fn position_at(&self, timestamp_micros: u64) -> Result<u64> {
        let head = self.head();
        let reader = &self.inner.reader;
        let mut kept = self.inner.record_times.lock();
        let (mut lo, mut hi, mut found) = (1, head, 0);
        while lo <= hi {
            let mid = lo + (hi - lo) / 2;
            let (first, last, time) = match kept.containing(mid) {
                Some(record) => record,
                None => {
                    let Some(record) = kept.unlocked(|| reader.record_head_containing(mid))? else {
                        return Err(crate::read::name_file(
                            reader,
                            mid,
                            crate::Error::Corruption {
                                file: Default::default(),
                                offset: 0,
                                reason: format!(
                                    "position {mid} is below the head but not in the log"
                                ),
                            },
                        ));
                    };
                    kept.keep(&record.meta);
                    let m = record.meta;
                    (m.first_position, m.last_position(), m.timestamp_micros)
                }
            };
            if time <= timestamp_micros {
                found = last.min(head);
                lo = found + 1;
            } else {
                hi = first - 1;
            }
        }
        Ok(found)
    }

    /// The committed event with id `id`, if any (None once removed).
    pub fn event_by_id(&self, id: u128) -> Result<Option<RecordedEvent>> {
        let mut found = None;
        self.event_by_id_with(id, &mut |e| found = Some(e.to_owned()))?;
        Ok(found)
    }

    /// The event [`event_by_id`](Store::event_by_id) finds, lent to `f`
    /// borrowed from the mapped segment that holds it (see
    /// [`EventStore::event_by_id_with`]); whether one was found.
    ///
    /// [`EventStore::event_by_id_with`]: crate::EventStore::event_by_id_with
    pub fn event_by_id_with(&self, id: u128, f: &mut dyn FnMut(EventRef<'_>)) -> Result<bool> {
        let head = self.head();
        let amendments = self.inner.indexes.amendments();
        match self.inner.indexes.view().lookup_id(id) {
            Some(position) if position <= head && !amendments.is_removed(position) => {
                let mut lookup = Lookup::new(self.inner.reader.clone(), amendments.clone());
                f(lookup.event_ref(position)?);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
