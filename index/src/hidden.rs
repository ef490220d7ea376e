//! `Hidden`: positions whose events were removed after they were indexed
//! (stream deletion, truncation, retention), which every query must skip
//! although the immutable runs and the memtables still hold their postings.
//!
//! Like the [`Overlay`](crate::Overlay), a `Hidden` set is immutable and
//! shared by the views taken while it is current; [`Hidden::with`] makes
//! the next one. A view wraps each query's cursor in a [`Minus`] of the
//! set, so no query, condition or subscription sees a hidden position, and
//! subtracts from a key's listed count how many of its events were hidden
//! (counted by whoever hides them, who knows each event's keys). A key's
//! raw [`count`](crate::IndexView::count) and id lookups stay as they were:
//! a stream's revisions keep counting its removed events, and a removed
//! event's id stays taken.
//!
//! Purging: a merge of every run may drop the postings of hidden
//! positions from the lists of the keys that only queries and listings
//! read — types and tags ([`purgeable`]) — and keep those of streams
//! (revisions) and ids (retries). The set then stops counting what was
//! dropped ([`Hidden::discounted`]), so a listing subtracts each removed
//! event once, from the runs or from the count, never from both.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cursor::Cursor;
use crate::key::{Key, KeyKind};

/// Hidden positions, as ascending runs of consecutive positions (a
/// retention rule or a truncation removes long runs, which cost one entry
/// each), and per key how many of them it held.
#[derive(Clone, Debug, Default)]
pub struct Hidden {
    /// Inclusive `(first, last)` runs, ascending, neither overlapping nor
    /// touching.
    runs: Arc<[(u64, u64)]>,
    len: u64,
    counts: BTreeMap<Key, u64>,
    /// The lifecycle journal sequence of the newest removal it holds (0:
    /// none): what a purge that used this set records.
    sequence: u64,
}

/// Whether a merge that purges hidden positions drops them from `key`'s
/// list: a type's or a tag's (read only by queries and listings), not a
/// stream's (whose postings count revisions) or an id's (which stays
/// taken).
pub fn purgeable(key: &Key) -> bool {
    matches!(key.kind(), KeyKind::Type | KeyKind::Tag)
}

impl Hidden {
    /// A set hiding nothing.
    pub fn new() -> Hidden {
        Hidden::default()
    }

    /// Whether it hides no position.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many positions it hides.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The run holding `position`, if it is hidden.
    fn run_of(&self, position: u64) -> Option<(u64, u64)> {
        let i = self.runs.partition_point(|&(first, _)| first <= position);
        let run = *self.runs.get(i.checked_sub(1)?)?;
        (run.1 >= position).then_some(run)
    }

    /// Whether `position` is hidden.
    pub fn contains(&self, position: u64) -> bool {
        self.run_of(position).is_some()
    }

    /// The hidden positions as inclusive runs, ascending, neither
    /// overlapping nor touching.
    pub fn runs(&self) -> &[(u64, u64)] {
        &self.runs
    }

    /// The journal sequence of the newest removal it holds.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// This set, holding the removals up to journal entry `sequence`.
    pub fn at_sequence(mut self, sequence: u64) -> Hidden {
        self.sequence = self.sequence.max(sequence);
        self
    }

    /// This set with `dropped[key]` fewer events counted for each key: the
    /// postings a purging merge dropped from the runs.
    pub fn discounted(&self, dropped: &BTreeMap<Key, u64>) -> Hidden {
        let mut counts = self.counts.clone();
        for (key, n) in dropped {
            if let Some(count) = counts.get_mut(key) {
                *count = count.saturating_sub(*n);
                if *count == 0 {
                    counts.remove(key);
                }
            }
        }
        Hidden {
            runs: self.runs.clone(),
            len: self.len,
            counts,
            sequence: self.sequence,
        }
    }

    /// How many keys it counts events of (memory, and tests).
    pub fn counted_keys(&self) -> usize {
        self.counts.len()
    }

    /// Per key, how many hidden events carried it, by key.
    pub fn counts(&self) -> impl Iterator<Item = (&Key, u64)> + '_ {
        self.counts.iter().map(|(k, &n)| (k, n))
    }

    /// This set counting `counts` more events per key (counts known
    /// without reading the events: kept from a purge).
    pub fn counting(&self, counts: &[(Key, u64)]) -> Hidden {
        let mut more = self.counts.clone();
        for (key, n) in counts {
            *more.entry(key.clone()).or_insert(0) += n;
        }
        Hidden {
            runs: self.runs.clone(),
            len: self.len,
            counts: more,
            sequence: self.sequence,
        }
    }

    /// `list` (ascending) without the hidden positions; how many it lost.
    pub fn purge(&self, list: &mut Vec<u64>) -> u64 {
        let before = list.len();
        // The first run that may hold each position, found by a binary
        // search over the runs not passed yet: a sparse list over many
        // runs costs O(log runs) a position, not a walk of them all.
        let mut at = 0;
        list.retain(|&p| {
            if self.runs.get(at).is_some_and(|&(_, last)| last < p) {
                at += self
                    .runs
                    .get(at..)
                    .map_or(0, |rest| rest.partition_point(|&(_, last)| last < p));
            }
            self.runs.get(at).is_none_or(|&(first, _)| first > p)
        });
        (before - list.len()) as u64
    }

    /// The hidden positions, ascending.
    pub fn positions(&self) -> impl Iterator<Item = u64> + '_ {
        self.runs.iter().flat_map(|&(first, last)| first..=last)
    }

    /// How many hidden events carried `key`.
    pub fn count(&self, key: &Key) -> u64 {
        self.counts.get(key).copied().unwrap_or(0)
    }

    /// This set plus `positions` (in any order; ascending is cheapest),
    /// whose events carried `keys` (each key once per event that carried
    /// it). A position hidden already is hidden once.
    pub fn with(&self, positions: &[u64], keys: impl IntoIterator<Item = Key>) -> Hidden {
        let mut added: Vec<(u64, u64)> = Vec::new();
        for &p in positions {
            match added.last_mut() {
                Some(run) if run.1.checked_add(1) == Some(p) || run.1 == p => run.1 = p,
                _ => added.push((p, p)),
            }
        }
        if !added.is_sorted() {
            added.sort_unstable();
        }
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.runs.len() + added.len());
        let (mut a, mut b) = (self.runs.iter().peekable(), added.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 <= y.0 => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            let Some(&(first, last)) = next else { break };
            match merged.last_mut() {
                Some(run) if first <= run.1.saturating_add(1) => run.1 = run.1.max(last),
                _ => merged.push((first, last)),
            }
        }
        let len = merged.iter().map(|&(first, last)| last - first + 1).sum();
        let mut counts = self.counts.clone();
        for key in keys {
            *counts.entry(key).or_insert(0) += 1;
        }
        Hidden {
            runs: merged.into(),
            len,
            counts,
            sequence: self.sequence,
        }
    }
}

/// The positions of a cursor that a [`Hidden`] set does not hide: a seek
/// that lands in a hidden run goes on past the whole run.
pub struct Minus<C> {
    inner: C,
    hidden: Arc<Hidden>,
}

impl<C: Cursor> Minus<C> {
    /// `inner` without `hidden`'s positions.
    pub fn new(inner: C, hidden: Arc<Hidden>) -> Minus<C> {
        Minus { inner, hidden }
    }
}

impl<C: Cursor> Cursor for Minus<C> {
    fn seek_ge(&mut self, mut target: u64) -> Option<u64> {
        loop {
            let p = self.inner.seek_ge(target)?;
            match self.hidden.run_of(p) {
                None => return Some(p),
                Some((_, last)) => target = last.checked_add(1)?,
            }
        }
    }

    fn seek_le(&mut self, mut target: u64) -> Option<u64> {
        loop {
            let p = self.inner.seek_le(target)?;
            match self.hidden.run_of(p) {
                None => return Some(p),
                Some((first, _)) => target = first.checked_sub(1)?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cursor::{All, ListCursor};

    #[test]
    fn minus_skips_hidden_positions_both_ways() {
        let hidden = Hidden::new().with(&[2, 3, 7], [Key::tag("a"), Key::tag("a")]);
        let hidden = Arc::new(hidden.with(&[3, 9], [Key::tag("b")]));
        assert_eq!(hidden.positions().collect::<Vec<_>>(), [2, 3, 7, 9]);
        assert_eq!(hidden.len(), 4);
        assert_eq!(
            (hidden.count(&Key::tag("a")), hidden.count(&Key::tag("b"))),
            (2, 1)
        );
        assert!(hidden.contains(7) && !hidden.contains(8) && !hidden.contains(1));
        let mut c = Minus::new(ListCursor::new(vec![1, 2, 3, 4, 7, 8, 9]), hidden.clone());
        assert_eq!(c.seek_ge(2), Some(4));
        assert_eq!(c.seek_ge(5), Some(8));
        assert_eq!(c.seek_ge(9), None);
        assert_eq!(c.seek_le(7), Some(4));
        assert_eq!(c.seek_le(3), Some(1));
        let mut all = Minus::new(All, hidden);
        let forwards: Vec<u64> = std::iter::successors(all.seek_ge(1), |&p| all.seek_ge(p + 1))
            .take_while(|&p| p <= 10)
            .collect();
        assert_eq!(forwards, [1, 4, 5, 6, 8, 10]);
        assert_eq!(all.seek_le(3), Some(1));
        let edge = Arc::new(Hidden::new().with(&[0, u64::MAX], []));
        let mut edge = Minus::new(All, edge);
        assert_eq!(edge.seek_le(0), None);
        assert_eq!(edge.seek_ge(u64::MAX), None);
    }

    #[test]
    fn purge_drops_hidden_positions_and_discount_stops_counting_them() {
        let h = Hidden::new()
            .with(&[2, 3, 4, 9], [Key::tag("a"), Key::tag("a"), Key::tag("b")])
            .at_sequence(5);
        let mut list = vec![1, 2, 3, 5, 8, 9, 10];
        assert_eq!(h.purge(&mut list), 3);
        assert_eq!(list, [1, 5, 8, 10]);
        let mut none = vec![5, 6];
        assert_eq!(h.purge(&mut none), 0);
        // Against a plain membership test, over many runs.
        let scattered: Vec<u64> = (0..2_000).map(|i| i * 3).collect();
        let h2 = Hidden::new().with(&scattered, []);
        let mut list: Vec<u64> = (0..7_000).step_by(7).collect();
        let want: Vec<u64> = list.iter().copied().filter(|&p| !h2.contains(p)).collect();
        let lost = h2.purge(&mut list);
        assert_eq!(list, want);
        assert_eq!(lost as usize, 1_000 - want.len());
        let d = h.discounted(&BTreeMap::from([(Key::tag("a"), 2), (Key::tag("c"), 1)]));
        assert_eq!((d.count(&Key::tag("a")), d.count(&Key::tag("b"))), (0, 1));
        assert_eq!((d.counted_keys(), d.sequence(), d.len()), (1, 5, 4));
        assert!(d.contains(9));
        let c = d.counting(&[(Key::tag("b"), 2), (Key::stream("s"), 1)]);
        assert_eq!(
            c.counts().map(|(k, n)| (k.clone(), n)).collect::<Vec<_>>(),
            [(Key::tag("b"), 3), (Key::stream("s"), 1)]
        );
        assert!(purgeable(&Key::tag("a")) && purgeable(&Key::event_type("T")));
        assert!(!purgeable(&Key::stream("s")) && !purgeable(&Key::id(1)));
    }

    /// Runs merge with what they touch or overlap, in any order of
    /// additions, and a long run costs one entry.
    #[test]
    fn runs_merge_and_count_each_position_once() {
        let prefix: Vec<u64> = (1..=100_000).collect();
        let h = Hidden::new().with(&prefix, []);
        assert_eq!((h.runs.len(), h.len()), (1, 100_000));
        let h = h.with(&[100_002, 100_003, 100_001, 100_005], []);
        assert_eq!(&h.runs[..], &[(1, 100_003), (100_005, 100_005)]);
        assert_eq!(h.len(), 100_004);
        let h = Hidden::new()
            .with(&[10, 11, 12], [])
            .with(&[5, 6], [])
            .with(&[7, 8, 9], [])
            .with(&[12, 13], [])
            .with(&[20], []);
        assert_eq!(&h.runs[..], &[(5, 13), (20, 20)]);
        assert_eq!(h.len(), 10);
        assert_eq!(h.positions().count() as u64, h.len());
        let mut seen = std::collections::BTreeSet::new();
        let mut model = Hidden::new();
        let mut rng = 7u64;
        for _ in 0..200 {
            let mut batch: Vec<u64> = (0..5)
                .map(|_| {
                    rng = rng
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (rng >> 33) % 60
                })
                .collect();
            batch.sort_unstable();
            batch.dedup();
            seen.extend(batch.iter().copied());
            model = model.with(&batch, []);
            assert_eq!(
                model.positions().collect::<Vec<_>>(),
                seen.iter().copied().collect::<Vec<_>>()
            );
            assert!(model.runs.windows(2).all(|w| w[0].1 + 1 < w[1].0));
        }
    }
}
