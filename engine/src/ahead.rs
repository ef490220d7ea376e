//! Looking up the positions an index read yields a window at a time, with
//! the window's records and events warmed first.
//!
//! A lookup of one event waits on a few cache misses in turn (its record's
//! frame, its head, its event's bytes); a read of scattered positions, such
//! as a stream whose events were appended among others', spends most of
//! its time waiting so. [`Ahead`] takes the next positions from the index
//! in windows that double from one up to [`MAX_WINDOW`], and before
//! yielding them has the log touch every record of the window, then every
//! event, so that their misses overlap. The window starts at one so that a
//! read that stops early (a limit of one, `read_last`) takes no more
//! positions from the index than before.

use std::collections::VecDeque;

use gesta_wal::{MappedPayload, WalReader};

use crate::codec::warm_events;

/// The largest window: enough misses to keep the memory system busy, few
/// enough lines (about a dozen per event) to stay in the first-level
/// caches until the lookups read them.
pub(crate) const MAX_WINDOW: usize = 32;

/// Positions from `inner`, each window's warmed before it is yielded.
pub(crate) struct Ahead<I> {
    inner: I,
    reader: WalReader,
    queue: VecDeque<u64>,
    window: usize,
    found: Vec<MappedPayload>,
}

impl<I: Iterator<Item = u64>> Ahead<I> {
    pub(crate) fn new(reader: WalReader, inner: I) -> Ahead<I> {
        Ahead {
            inner,
            reader,
            queue: VecDeque::new(),
            window: 1,
            found: Vec::new(),
        }
    }
}

impl<I: Iterator<Item = u64>> Iterator for Ahead<I> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if let Some(p) = self.queue.pop_front() {
            return Some(p);
        }
        self.queue.extend(self.inner.by_ref().take(self.window));
        if self.queue.len() > 1 {
            self.reader
                .warm(self.queue.make_contiguous(), &mut self.found);
            warm_events(&self.found);
            self.found.clear();
        }
        self.window = (self.window * 2).min(MAX_WINDOW);
        self.queue.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::event::NewEvent;
    use crate::store::Store;

    /// Windows double from one: a read that stops after a few events has
    /// taken at most about twice as many positions from the index, and one
    /// that stops after the first has taken only that one.
    #[test]
    fn windows_grow_from_one_and_keep_the_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..100 {
            store
                .append(vec![NewEvent::new("T", format!("{i}").into_bytes())])
                .unwrap();
        }
        let reader = store.inner.reader.clone();
        let taken = Cell::new(0);
        let counted = || (1..=100u64).inspect(|_| taken.set(taken.get() + 1));

        let first: Vec<u64> = Ahead::new(reader.clone(), counted()).take(1).collect();
        assert_eq!((first, taken.get()), (vec![1], 1));

        taken.set(0);
        let ten: Vec<u64> = Ahead::new(reader.clone(), counted()).take(10).collect();
        assert_eq!(ten, (1..=10).collect::<Vec<_>>());
        assert_eq!(taken.get(), 15, "windows of 1, 2, 4 and 8");

        taken.set(0);
        let all: Vec<u64> = Ahead::new(reader.clone(), counted()).collect();
        assert_eq!(all, (1..=100).collect::<Vec<_>>());
        assert_eq!(taken.get(), 100);
        // Backwards, and with gaps, in the order given.
        let picked = [90, 7, 55, 3, 100, 1];
        let back: Vec<u64> = Ahead::new(reader, picked.into_iter()).collect();
        assert_eq!(back, picked);
    }
}
