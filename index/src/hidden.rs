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

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cursor::Cursor;
use crate::key::Key;

/// Hidden positions, ascending, and per key how many of them it held.
#[derive(Clone, Debug, Default)]
pub struct Hidden {
    positions: Arc<[u64]>,
    counts: BTreeMap<Key, u64>,
}

impl Hidden {
    /// A set hiding nothing.
    pub fn new() -> Hidden {
        Hidden::default()
    }

    /// Whether it hides no position.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// How many positions it hides.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether `position` is hidden.
    pub fn contains(&self, position: u64) -> bool {
        self.positions.binary_search(&position).is_ok()
    }

    /// The hidden positions, ascending.
    pub fn positions(&self) -> &Arc<[u64]> {
        &self.positions
    }

    /// How many hidden events carried `key`.
    pub fn count(&self, key: &Key) -> u64 {
        self.counts.get(key).copied().unwrap_or(0)
    }

    /// This set plus `positions` (ascending, none hidden already), whose
    /// events carried `keys` (each key once per event that carried it).
    pub fn with(&self, positions: &[u64], keys: impl IntoIterator<Item = Key>) -> Hidden {
        let mut merged = Vec::with_capacity(self.positions.len() + positions.len());
        let (mut a, mut b) = (
            self.positions.iter().peekable(),
            positions.iter().peekable(),
        );
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x <= y => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            if let Some(&p) = next
                && merged.last() != Some(&p)
            {
                merged.push(p);
            }
        }
        let mut counts = self.counts.clone();
        for key in keys {
            *counts.entry(key).or_insert(0) += 1;
        }
        Hidden {
            positions: merged.into(),
            counts,
        }
    }
}

/// The positions of a cursor that a [`Hidden`] set does not hide.
pub struct Minus<C> {
    inner: C,
    hidden: Arc<[u64]>,
}

impl<C: Cursor> Minus<C> {
    /// `inner` without `hidden` (ascending).
    pub fn new(inner: C, hidden: Arc<[u64]>) -> Minus<C> {
        Minus { inner, hidden }
    }

    fn is_hidden(&self, p: u64) -> bool {
        self.hidden.binary_search(&p).is_ok()
    }
}

impl<C: Cursor> Cursor for Minus<C> {
    fn seek_ge(&mut self, mut target: u64) -> Option<u64> {
        loop {
            let p = self.inner.seek_ge(target)?;
            if !self.is_hidden(p) {
                return Some(p);
            }
            target = p.checked_add(1)?;
        }
    }

    fn seek_le(&mut self, mut target: u64) -> Option<u64> {
        loop {
            let p = self.inner.seek_le(target)?;
            if !self.is_hidden(p) {
                return Some(p);
            }
            target = p.checked_sub(1)?;
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
        let hidden = hidden.with(&[3, 9], [Key::tag("b")]);
        assert_eq!(&hidden.positions()[..], &[2, 3, 7, 9]);
        assert_eq!(
            (hidden.count(&Key::tag("a")), hidden.count(&Key::tag("b"))),
            (2, 1)
        );
        assert!(hidden.contains(7) && !hidden.contains(8));
        let mut c = Minus::new(
            ListCursor::new(vec![1, 2, 3, 4, 7, 8, 9]),
            hidden.positions().clone(),
        );
        assert_eq!(c.seek_ge(2), Some(4));
        assert_eq!(c.seek_ge(5), Some(8));
        assert_eq!(c.seek_ge(9), None);
        assert_eq!(c.seek_le(7), Some(4));
        assert_eq!(c.seek_le(3), Some(1));
        let mut all = Minus::new(All, hidden.positions().clone());
        let forwards: Vec<u64> = std::iter::successors(all.seek_ge(1), |&p| all.seek_ge(p + 1))
            .take_while(|&p| p <= 10)
            .collect();
        assert_eq!(forwards, [1, 4, 5, 6, 8, 10]);
        assert_eq!(all.seek_le(3), Some(1));
        let mut edge = Minus::new(All, Arc::from(vec![0u64, u64::MAX]));
        assert_eq!(edge.seek_le(0), None);
        assert_eq!(edge.seek_ge(u64::MAX), None);
    }
}
