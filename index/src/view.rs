//! `IndexView`: an immutable snapshot of the index sources that together
//! cover positions 1.. — the runs, then the memtables — read as one.
//!
//! The view owns the rule that turns per-source posting lists into one:
//! each source is given the position range it is responsible for, and a
//! key's cursor is the [`Chain`] of the sources that hold the key, OR-ed
//! with the key's list in the [`Overlay`] (postings added after the fact)
//! when it has one. Positions in the [`Hidden`] set (events removed after
//! they were indexed) are taken out of every query it evaluates and of
//! every count it lists.

use std::sync::Arc;

use crate::combine::{Chain, Segment, Union};
use crate::cursor::{Cursor, Empty, ListCursor};
use crate::filter::Probe;
use crate::hidden::{Hidden, Minus};
use crate::key::Key;
use crate::memtable::Memtable;
use crate::overlay::Overlay;
use crate::run::Run;

/// One source of a view.
#[derive(Clone)]
enum Source {
    Run(Arc<Run>),
    Memtable(Arc<Memtable>),
}

/// A snapshot of runs and memtables covering consecutive position ranges.
///
/// A view sees every position inserted into its memtables before it was
/// made; positions inserted later may or may not be seen, so readers bound
/// their reads by the committed head they read before taking the view.
pub struct IndexView {
    sources: Vec<(u64, u64, Source)>,
    /// Postings added after the fact, at any position.
    overlay: Option<Arc<Overlay>>,
    /// Positions removed after the fact, which queries skip.
    hidden: Option<Arc<Hidden>>,
}

impl IndexView {
    /// A view of `runs` (disjoint, ascending position ranges) followed by
    /// `memtables` for the later positions: frozen ones being flushed, then
    /// the active one.
    ///
    /// Each memtable answers for the positions after the previous source;
    /// a frozen memtable up to its largest position, the last one without
    /// bound. A source never answers outside its range, so a memtable that
    /// still holds positions a run also covers cannot produce duplicates.
    pub fn new(mut runs: Vec<Arc<Run>>, memtables: Vec<Arc<Memtable>>) -> IndexView {
        runs.sort_by_key(|r| r.covers());
        let mut sources = Vec::with_capacity(runs.len() + memtables.len());
        let mut prev_hi = 0u64;
        for run in runs {
            let (lo, hi) = run.covers();
            let lo = lo.max(prev_hi.saturating_add(1));
            prev_hi = prev_hi.max(hi);
            sources.push((lo, hi, Source::Run(run)));
        }
        let n = memtables.len();
        for (i, memtable) in memtables.into_iter().enumerate() {
            let lo = prev_hi.saturating_add(1);
            let hi = if i + 1 == n {
                u64::MAX
            } else {
                memtable.range().map_or(prev_hi, |(_, hi)| hi.max(prev_hi))
            };
            prev_hi = hi;
            sources.push((lo, hi, Source::Memtable(memtable)));
        }
        IndexView {
            sources,
            overlay: None,
            hidden: None,
        }
    }

    /// This view with `overlay`'s postings added to its keys' lists.
    pub fn with_overlay(mut self, overlay: Arc<Overlay>) -> IndexView {
        self.overlay = (!overlay.is_empty()).then_some(overlay);
        self
    }

    /// This view with `hidden`'s positions taken out of every query
    /// ([`evaluate`](Self::evaluate)) and listing ([`list`](Self::list)).
    pub fn with_hidden(mut self, hidden: Arc<Hidden>) -> IndexView {
        self.hidden = (!hidden.is_empty()).then_some(hidden);
        self
    }

    /// The positions this view hides (empty if none).
    pub fn hidden(&self) -> Option<&Arc<Hidden>> {
        self.hidden.as_ref()
    }

    /// `cursor` without the hidden positions.
    pub(crate) fn visible(&self, cursor: Box<dyn Cursor>) -> Box<dyn Cursor> {
        match &self.hidden {
            Some(hidden) => Box::new(Minus::new(cursor, hidden.clone())),
            None => cursor,
        }
    }

    /// This view's sources and overlay with nothing hidden: for what counts
    /// every event ever indexed (a stream's revisions).
    pub fn including_hidden(&self) -> IndexView {
        IndexView {
            sources: self.sources.clone(),
            overlay: self.overlay.clone(),
            hidden: None,
        }
    }

    /// This view for the positions `lo..=hi` only: the sources whose ranges
    /// lie wholly outside them are left out, so that a query read from a
    /// recent position (a DCB condition's "after", a read's start) neither
    /// probes nor opens a cursor on the runs before it. What it answers
    /// within `lo..=hi` is what this view answers there; outside, it may
    /// miss positions, so its reader bounds its reads by `lo..=hi`. When
    /// every source meets the bounds (a read from the start), it is this
    /// view itself, shared, not a copy.
    pub fn within(self: &Arc<IndexView>, lo: u64, hi: u64) -> Arc<IndexView> {
        let meets = |(from, to, _): &&(u64, u64, Source)| *from <= hi && lo <= *to;
        if self.sources.iter().all(|s| meets(&s)) {
            return self.clone();
        }
        Arc::new(IndexView {
            sources: self.sources.iter().filter(meets).cloned().collect(),
            overlay: self.overlay.clone(),
            hidden: self.hidden.clone(),
        })
    }

    /// `key`'s list in the overlay, if it has one.
    fn added(&self, key: &Key) -> Option<&Arc<[u64]>> {
        self.overlay.as_ref()?.get(key)
    }

    /// A cursor over `key`'s positions and its count, or `None` if no
    /// source holds the key.
    pub(crate) fn lookup(&self, key: &Key) -> Option<(Box<dyn Cursor>, u64)> {
        let base = self.lookup_sources(key);
        let Some(added) = self.added(key) else {
            return base;
        };
        let cursor = Box::new(ListCursor::shared(added.clone()));
        let count = added.len() as u64;
        Some(match base {
            None => (cursor, count),
            Some((chain, n)) => (Box::new(Union::new(vec![chain, cursor])), n + count),
        })
    }

    /// [`lookup`](Self::lookup) over the runs and memtables only.
    fn lookup_sources(&self, key: &Key) -> Option<(Box<dyn Cursor>, u64)> {
        let mut segments = Vec::new();
        let mut count = 0;
        let mut within = true;
        for (lo, hi, source) in &self.sources {
            let found = match source {
                Source::Run(run) => run.found(key),
                Source::Memtable(m) => m.found(key),
            };
            let Some(found) = found else { continue };
            count += found.count;
            within &= *lo <= found.first && found.last <= *hi;
            segments.push(Segment {
                lo: *lo,
                hi: *hi,
                cursor: found.cursor,
            });
        }
        // The common case of a key in one source that stays in its range
        // needs no chain around its cursor.
        if segments.len() == 1 && within {
            return segments.pop().map(|s| (s.cursor, count));
        }
        if segments.is_empty() {
            return None;
        }
        Some((Box::new(Chain::new(segments)), count))
    }

    /// A cursor over `key`'s positions in all sources ([`Empty`] if none
    /// holds it).
    pub fn cursor(&self, key: &Key) -> Box<dyn Cursor> {
        match self.lookup(key) {
            Some((cursor, _)) => cursor,
            None => Box::new(Empty),
        }
    }

    /// The number of positions of `key` over all sources (a memtable's
    /// counted within its range only).
    pub fn count(&self, key: &Key) -> u64 {
        self.added(key).map_or(0, |l| l.len() as u64)
            + self
                .sources
                .iter()
                .map(|(lo, hi, source)| match source {
                    Source::Run(run) => run.count(key),
                    Source::Memtable(m) => m.count_within(key, *lo, *hi),
                })
                .sum::<u64>()
    }

    /// [`count`](Self::count) of the postings at or below `head`: a
    /// writer makes a commit's postings visible before it publishes the
    /// commit's head, so a count that must agree with reads bounded by the
    /// head (a stream's revision) leaves out what lies above it.
    pub fn count_upto(&self, key: &Key, head: u64) -> u64 {
        let added = self
            .added(key)
            .map_or(0, |l| l.partition_point(|&p| p <= head) as u64);
        added
            + self
                .sources
                .iter()
                .filter(|(lo, _, _)| *lo <= head)
                .map(|(lo, hi, source)| match source {
                    Source::Memtable(m) => m.count_within(key, *lo, (*hi).min(head)),
                    Source::Run(run) if *hi <= head => run.count(key),
                    Source::Run(run) => {
                        let mut above = 0;
                        if let Some(mut cursor) = run.cursor(key) {
                            let mut at = cursor.seek_ge(head.saturating_add(1));
                            while let Some(p) = at.filter(|p| p <= hi) {
                                above += 1;
                                at = cursor.seek_ge(p.saturating_add(1));
                            }
                        }
                        run.count(key).saturating_sub(above)
                    }
                })
                .sum::<u64>()
    }

    /// [`last`](Self::last) at or below `head` (see
    /// [`count_upto`](Self::count_upto) for why).
    pub fn last_upto(&self, key: &Key, head: u64) -> Option<u64> {
        match self.last(key) {
            Some(p) if p <= head => Some(p),
            None => None,
            Some(_) => self.cursor(key).seek_le(head),
        }
    }

    /// The last position of `key`: the newest source's last position, read
    /// without building a cursor unless it lies outside the source's range.
    pub fn last(&self, key: &Key) -> Option<u64> {
        let added = self.added(key).and_then(|l| l.last().copied());
        let base = self.last_in_sources(key);
        base.max(added)
    }

    fn last_in_sources(&self, key: &Key) -> Option<u64> {
        self.sources.iter().rev().find_map(|(lo, hi, source)| {
            let last = match source {
                Source::Run(run) => run.last(key),
                Source::Memtable(m) => m.last(key),
            }?;
            if last <= *hi {
                return (last >= *lo).then_some(last);
            }
            let mut cursor = match source {
                Source::Run(run) => run.cursor(key),
                Source::Memtable(m) => m.cursor(key),
            }?;
            cursor.seek_le(*hi).filter(|p| p >= lo)
        })
    }

    /// The first position of `key`.
    pub fn first(&self, key: &Key) -> Option<u64> {
        self.cursor(key).seek_ge(0)
    }

    /// Up to `limit` keys that start with the bytes of `prefix` and lie
    /// after `after` (exclusive), in key order, each with its number of
    /// positions up to `head` over all sources; keys with none are left
    /// out. Each source is walked from the start key in its own order (a
    /// run's key directory, a memtable's ordered key set) and the walks are
    /// merged, so the work is proportional to the keys returned (times the
    /// number of sources), not to the size of the index. A run is counted
    /// whole, as [`count`](Self::count) does: runs cover disjoint ranges.
    pub fn list(
        &self,
        prefix: &Key,
        after: Option<&Key>,
        limit: usize,
        head: u64,
    ) -> Vec<(Key, u64)> {
        let prefix = prefix.as_bytes();
        let (start, exclusive) = match after {
            Some(after) if after.as_bytes() >= prefix => (after.as_bytes(), true),
            _ => (prefix, false),
        };
        let mut walks: Vec<Walk<'_>> = self
            .sources
            .iter()
            .map(|(lo, hi, source)| match source {
                Source::Run(run) => {
                    let mut keys = run.keys_from(start).peekable();
                    if exclusive {
                        keys.next_if(|(k, _)| &**k == start);
                    }
                    Walk::Run(keys)
                }
                Source::Memtable(m) => Walk::Memtable(MemWalk {
                    memtable: m,
                    lo: *lo,
                    hi: (*hi).min(head),
                    resume: start.to_vec(),
                    exclusive,
                    chunk: limit.saturating_add(1).clamp(16, 1024),
                    buffer: std::collections::VecDeque::new(),
                    done: false,
                }),
            })
            .collect();
        if let Some(overlay) = &self.overlay {
            let mut keys = (Box::new(overlay.from(start)) as OverlayKeys<'_>).peekable();
            if exclusive {
                keys.next_if(|(k, _)| k.as_bytes() == start);
            }
            walks.push(Walk::Overlay(keys, head));
        }
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(next) = walks.iter_mut().filter_map(|w| w.peek()).min() else {
                break;
            };
            if !next.starts_with(prefix) {
                break;
            }
            let next = next.to_vec();
            let total: u64 = walks.iter_mut().map(|w| w.take_if(&next)).sum();
            let key = Key::from_bytes(&next);
            let total = total.saturating_sub(self.hidden.as_ref().map_or(0, |h| h.count(&key)));
            if total > 0 {
                out.push((key, total));
            }
        }
        out
    }

    /// The position of the event with id `id`, through each run's filter and
    /// directory, then the memtables. If an id was (wrongly) indexed twice,
    /// the earliest position is returned, which is what idempotent appends
    /// need: the original.
    pub fn lookup_id(&self, id: u128) -> Option<u64> {
        let key = Key::id(id);
        // The runs are asked in turn, each after the one before said no:
        // their filters' blocks for the id are missed together first, all
        // found with one hash of the id.
        let probe = Probe::of(key.as_bytes());
        let touched = self
            .sources
            .iter()
            .fold(0u8, |sum, (_, _, source)| match source {
                Source::Run(run) => sum ^ run.touch_filter(probe),
                Source::Memtable(_) => sum,
            });
        std::hint::black_box(touched);
        self.sources.iter().find_map(|(lo, hi, source)| {
            let first = match source {
                Source::Run(run) => run.first_probed(&key, probe),
                Source::Memtable(m) => m.first(&key),
            }?;
            (*lo..=*hi).contains(&first).then_some(first)
        })
    }
}

/// One source's keys in order, for [`IndexView::list`].
enum Walk<'a> {
    Run(std::iter::Peekable<crate::run::RunKeys<'a>>),
    Memtable(MemWalk<'a>),
    /// The overlay's keys, each counted up to the head.
    Overlay(std::iter::Peekable<OverlayKeys<'a>>, u64),
}

type OverlayKeys<'a> = Box<dyn Iterator<Item = (&'a Key, &'a Arc<[u64]>)> + 'a>;

impl Walk<'_> {
    /// The walk's next key.
    fn peek(&mut self) -> Option<&[u8]> {
        match self {
            Walk::Run(keys) => keys.peek().map(|(k, _)| &**k),
            Walk::Memtable(m) => m.peek().map(|(k, _)| k.as_bytes()),
            Walk::Overlay(keys, _) => keys.peek().map(|(k, _)| k.as_bytes()),
        }
    }

    /// The count of `key` if it is the walk's next key (then stepping past
    /// it), else 0.
    fn take_if(&mut self, key: &[u8]) -> u64 {
        if self.peek() != Some(key) {
            return 0;
        }
        match self {
            Walk::Run(keys) => keys.next().map_or(0, |(_, n)| n),
            Walk::Memtable(m) => m.buffer.pop_front().map_or(0, |(_, n)| n),
            Walk::Overlay(keys, head) => keys
                .next()
                .map_or(0, |(_, l)| l.partition_point(|&p| p <= *head) as u64),
        }
    }
}

/// A memtable's keys in order, fetched a chunk at a time so that no lock
/// is held between two steps of the merge.
struct MemWalk<'a> {
    memtable: &'a Memtable,
    lo: u64,
    hi: u64,
    /// Where the next chunk starts.
    resume: Vec<u8>,
    exclusive: bool,
    chunk: usize,
    buffer: std::collections::VecDeque<(Key, u64)>,
    done: bool,
}

impl MemWalk<'_> {
    fn peek(&mut self) -> Option<&(Key, u64)> {
        if self.buffer.is_empty() && !self.done {
            let got = self.memtable.counts_from(
                &self.resume,
                self.exclusive,
                self.chunk,
                self.lo,
                self.hi,
            );
            self.done = got.len() < self.chunk;
            if let Some((last, _)) = got.last() {
                self.resume = last.as_bytes().to_vec();
                self.exclusive = true;
            }
            self.buffer.extend(got);
        }
        self.buffer.front()
    }
}

#[cfg(test)]
mod tests;
