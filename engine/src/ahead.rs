//! Looking up the positions an index read yields a window at a time, with
//! the window's records and events warmed first.
//!
//! A lookup of one event waits on a few cache misses in turn (its record's
//! frame, its head, its event's bytes); a read of scattered positions, such
//! as a stream whose events were appended among others', spends most of
//! its time waiting so. [`Ahead`] takes the next positions from the index
//! in windows that double up to [`MAX_WINDOW`], and before yielding them
//! has the log touch every record of the window, then every event, so that
//! their misses overlap. A read with a limit starts with a window of its
//! limit (one for `read_last`), so it takes no more positions from the
//! index than it reads; one without starts at [`UNLIMITED_WINDOW`]; other
//! readers start at one.

use std::collections::VecDeque;

use gesta_wal::{Place, WalReader};

use crate::codec::warm_events;

/// The largest window: enough misses to keep the memory system busy, few
/// enough lines (about a dozen per event) to stay in the first-level
/// caches until the lookups read them.
pub(crate) const MAX_WINDOW: usize = 32;

/// The first window of a read that may take every position: its consumer
/// may stop early, but one that reads a few events and stops has little to
/// lose to a window warmed beyond them, while one that reads on would have
/// looked up the ramp's first events with few misses overlapped.
pub(crate) const UNLIMITED_WINDOW: usize = MAX_WINDOW;

/// Positions from `inner`, each window's warmed before it is yielded,
/// each with where warming found its record (`None` where it did not):
/// the lookup takes it from there rather than finding it again.
pub(crate) struct Ahead<I> {
    inner: I,
    reader: WalReader,
    queue: VecDeque<(u64, Option<Place>)>,
    window: usize,
    /// The next window's positions, and where warming placed them.
    positions: Vec<u64>,
    placed: Vec<Option<Place>>,
}

impl<I: Iterator<Item = u64>> Ahead<I> {
    pub(crate) fn new(reader: WalReader, inner: I) -> Ahead<I> {
        Ahead {
            inner,
            reader,
            queue: VecDeque::new(),
            window: 1,
            positions: Vec::new(),
            placed: Vec::new(),
        }
    }

    /// Starts with a window as large as a read of at most `limit`
    /// positions (`None`: no limit) takes, up to [`UNLIMITED_WINDOW`],
    /// rather than one.
    pub(crate) fn expecting(mut self, limit: Option<usize>) -> Ahead<I> {
        self.window = limit.map_or(UNLIMITED_WINDOW, |l| l.clamp(1, MAX_WINDOW));
        self
    }
}

impl<I: Iterator<Item = u64>> Iterator for Ahead<I> {
    type Item = (u64, Option<Place>);

    fn next(&mut self) -> Option<(u64, Option<Place>)> {
        if let Some(next) = self.queue.pop_front() {
            return Some(next);
        }
        self.positions.clear();
        if self.window > 1 && self.positions.capacity() < MAX_WINDOW {
            // Once a window is more than one, the lists are sized for the
            // largest: grown window by window, a read of a few dozen
            // positions reallocated each of them several times.
            self.positions.reserve(MAX_WINDOW);
            self.placed.reserve(MAX_WINDOW);
            self.queue.reserve(MAX_WINDOW);
        }
        self.positions.extend(self.inner.by_ref().take(self.window));
        if self.positions.len() > 1 {
            self.reader
                .warm(&self.positions, &mut self.placed, warm_events);
        }
        // A window of one is not warmed, and its position is not placed.
        let placed = self.placed.drain(..).chain(std::iter::repeat(None));
        self.queue
            .extend(self.positions.iter().copied().zip(placed));
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

    fn positions(ahead: impl Iterator<Item = (u64, Option<Place>)>) -> Vec<u64> {
        ahead.map(|(p, _)| p).collect()
    }

    /// A store of 100 events, one per append, and its directory.
    fn hundred_events() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..100 {
            store
                .append(vec![NewEvent::new("T", format!("{i}").into_bytes())])
                .unwrap();
        }
        (dir, store)
    }

    /// Positions 1 to 100, counting in `taken` how many were taken.
    fn counted(taken: &Cell<usize>) -> impl Iterator<Item = u64> + '_ {
        (1..=100u64).inspect(|_| taken.set(taken.get() + 1))
    }

    /// Windows double from one: a read that stops after a few events has
    /// taken at most about twice as many positions from the index, and one
    /// that stops after the first has taken only that one.
    #[test]
    fn windows_grow_from_one_and_keep_the_order() {
        let (_dir, store) = hundred_events();
        let reader = store.inner.reader.clone();
        let taken = Cell::new(0);

        let first: Vec<u64> = positions(Ahead::new(reader.clone(), counted(&taken)).take(1));
        assert_eq!((first, taken.get()), (vec![1], 1));

        taken.set(0);
        let ten: Vec<u64> = positions(Ahead::new(reader.clone(), counted(&taken)).take(10));
        assert_eq!(ten, (1..=10).collect::<Vec<_>>());
        assert_eq!(taken.get(), 15, "windows of 1, 2, 4 and 8");

        taken.set(0);
        let all: Vec<u64> = positions(Ahead::new(reader.clone(), counted(&taken)));
        assert_eq!(all, (1..=100).collect::<Vec<_>>());
        assert_eq!(taken.get(), 100);
        // Backwards, and with gaps, in the order given.
        let picked = [90, 7, 55, 3, 100, 1];
        let back: Vec<u64> = positions(Ahead::new(reader, picked.into_iter()));
        assert_eq!(back, picked);
    }

    /// A read that says how many positions it takes starts with a window
    /// of that many (up to the largest), and one that takes them all with
    /// the largest; either way in order and each once.
    #[test]
    fn a_limit_sets_the_first_window() {
        let (_dir, store) = hundred_events();
        let reader = store.inner.reader.clone();
        let taken = Cell::new(0);
        for (limit, first_window) in [
            (Some(1), 1),
            (Some(10), 10),
            (Some(0), 1),
            (Some(500), MAX_WINDOW),
            (None, UNLIMITED_WINDOW),
        ] {
            taken.set(0);
            let mut ahead = Ahead::new(reader.clone(), counted(&taken)).expecting(limit);
            assert_eq!(ahead.next().map(|(p, _)| p), Some(1));
            assert_eq!(taken.get(), first_window, "limit {limit:?}");
            let rest = positions(ahead);
            assert_eq!(rest, (2..=100).collect::<Vec<_>>(), "limit {limit:?}");
            assert_eq!(taken.get(), 100);
        }
    }
}
