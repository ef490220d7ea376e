//! Query evaluation: turning a DCB query (an OR of items, each a set of
//! types OR-ed and tags AND-ed) into one lazy cursor over a view, and
//! reading a cursor as positions within a range in either direction.

use std::iter::FusedIterator;

use crate::combine::{Intersection, Union};
use crate::cursor::{All, Cursor, Empty};
use crate::key::Key;
use crate::view::IndexView;

/// A query: the OR of its items. No items matches nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuerySpec {
    /// The items, any of which may match.
    pub items: Vec<ItemSpec>,
}

/// One query item: an event matches when its type is one of `types` (any
/// type if empty) and it carries every tag of `tags` (no constraint if
/// empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemSpec {
    /// Type keys, OR-ed.
    pub types: Vec<Key>,
    /// Tag keys, AND-ed.
    pub tags: Vec<Key>,
}

/// Which way a read goes: the one direction type of the workspace (the
/// engine re-exports it as `gesta::Direction`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Direction {
    /// Ascending positions: oldest first.
    #[default]
    Forwards,
    /// Descending positions: newest first.
    Backwards,
}

/// What one item evaluates to before it is combined.
enum Matches {
    All,
    Empty,
    Some(Box<dyn Cursor>),
}

impl IndexView {
    /// A lazy cursor over the positions matching `spec`, without the
    /// hidden ones.
    pub fn evaluate(&self, spec: &QuerySpec) -> Box<dyn Cursor> {
        self.visible(self.evaluate_all(spec))
    }

    /// [`evaluate`](Self::evaluate) with the hidden positions left in.
    fn evaluate_all(&self, spec: &QuerySpec) -> Box<dyn Cursor> {
        let mut items = Vec::with_capacity(spec.items.len());
        for item in &spec.items {
            match self.item(item) {
                // OR with everything is everything.
                Matches::All => return Box::new(All),
                Matches::Empty => {}
                Matches::Some(cursor) => items.push(cursor),
            }
        }
        match items.len() {
            0 => Box::new(Empty),
            1 => items.pop().unwrap_or_else(|| Box::new(Empty)),
            _ => Box::new(Union::new(items)),
        }
    }

    fn item(&self, item: &ItemSpec) -> Matches {
        // Each part with its size, so the leapfrog can start at the rarest.
        let mut parts: Vec<(Box<dyn Cursor>, u64)> = Vec::with_capacity(item.tags.len() + 1);
        for tag in &item.tags {
            match self.lookup(tag) {
                Some(part) => parts.push(part),
                // AND with nothing is nothing.
                None => return Matches::Empty,
            }
        }
        if !item.types.is_empty() {
            let mut types: Vec<(Box<dyn Cursor>, u64)> =
                item.types.iter().filter_map(|t| self.lookup(t)).collect();
            let count = types.iter().map(|(_, n)| n).sum();
            match types.len() {
                0 => return Matches::Empty,
                1 => parts.extend(types.pop()),
                _ => {
                    let union = Union::new(types.into_iter().map(|(c, _)| c).collect());
                    parts.push((Box::new(union), count));
                }
            }
        }
        parts.sort_by_key(|(_, n)| *n);
        let mut cursors: Vec<Box<dyn Cursor>> = parts.into_iter().map(|(c, _)| c).collect();
        match cursors.len() {
            0 => Matches::All,
            1 => cursors.pop().map_or(Matches::Empty, Matches::Some),
            _ => Matches::Some(Box::new(Intersection::new(cursors))),
        }
    }
}

/// The most positions a forward read takes from its cursor at a time.
const TAKE: usize = 32;

/// The positions of a cursor within `lo..=hi`, lazily, in one direction.
/// Forwards, they are taken from the cursor several at a time
/// ([`Cursor::take_ge`]), not a seek each: one, then twice as many each
/// time up to 32, so that a read that stops after a few has asked the
/// index for few more.
pub struct Positions {
    cursor: Box<dyn Cursor>,
    /// The next seek target, or `None` once exhausted.
    next: Option<u64>,
    lo: u64,
    hi: u64,
    dir: Direction,
    /// Positions taken but not yet yielded (forwards), `taken[at..]`.
    taken: Vec<u64>,
    at: usize,
    /// How many to take next.
    take: usize,
}

impl Positions {
    /// The positions of `cursor` within `lo..=hi`, read in direction `dir`.
    pub fn new(cursor: Box<dyn Cursor>, lo: u64, hi: u64, dir: Direction) -> Positions {
        let next = (lo <= hi).then_some(match dir {
            Direction::Forwards => lo,
            Direction::Backwards => hi,
        });
        Positions {
            cursor,
            next,
            lo,
            hi,
            dir,
            taken: Vec::new(),
            at: 0,
            take: 1,
        }
    }
}

impl Iterator for Positions {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if let Some(&p) = self.taken.get(self.at) {
            self.at += 1;
            return Some(p);
        }
        let target = self.next?;
        if self.dir == Direction::Forwards {
            self.taken.clear();
            self.at = 0;
            let take = self.take;
            self.take = (take * 2).min(TAKE);
            self.cursor.take_ge(target, self.hi, take, &mut self.taken);
            // The same guard as a seek's: the positions must ascend from
            // the target within the range, else the iteration ends there.
            let good = self
                .taken
                .iter()
                .scan(target, |t, &p| {
                    let ok = p >= *t && p <= self.hi;
                    *t = p.saturating_add(1);
                    ok.then_some(())
                })
                .count();
            self.next = if good == take {
                self.taken
                    .last()
                    .and_then(|p| p.checked_add(1))
                    .filter(|&n| n <= self.hi)
            } else {
                None
            };
            self.taken.truncate(good);
            let first = self.taken.first().copied();
            self.at = usize::from(first.is_some());
            return first;
        }
        // The range checks also guard against a cursor that breaks its
        // contract: a result behind the target ends the iteration rather
        // than repeating forever.
        let found = match self.dir {
            Direction::Forwards => self
                .cursor
                .seek_ge(target)
                .filter(|&p| p >= target && p <= self.hi),
            Direction::Backwards => self
                .cursor
                .seek_le(target)
                .filter(|&p| p <= target && p >= self.lo),
        };
        self.next = found.and_then(|p| match self.dir {
            Direction::Forwards => p.checked_add(1).filter(|&n| n <= self.hi),
            Direction::Backwards => p.checked_sub(1).filter(|&n| n >= self.lo),
        });
        found
    }
}

impl FusedIterator for Positions {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cursor::ListCursor;

    fn list(v: &[u64]) -> Box<dyn Cursor> {
        Box::new(ListCursor::new(v.to_vec()))
    }

    /// A list cursor that counts the positions its takes hand over.
    struct Counted(
        ListCursor<Vec<u64>>,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    );

    impl Cursor for Counted {
        fn seek_ge(&mut self, target: u64) -> Option<u64> {
            self.0.seek_ge(target)
        }
        fn seek_le(&mut self, target: u64) -> Option<u64> {
            self.0.seek_le(target)
        }
        fn take_ge(&mut self, target: u64, hi: u64, n: usize, out: &mut Vec<u64>) {
            let before = out.len();
            self.0.take_ge(target, hi, n, out);
            let handed = out.len() - before;
            self.1
                .fetch_add(handed, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Forwards, a read that stops after a few positions has taken at most
    /// about twice as many from its cursor (and never a whole take more
    /// than it read), and one that reads on gets every position once, in
    /// order.
    #[test]
    fn forward_takes_grow_with_what_is_read() {
        let all: Vec<u64> = (1..=1000).collect();
        for stop in [1usize, 2, 3, 10, 33, 100, 1000, 2000] {
            let handed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let cursor = Counted(ListCursor::new(all.clone()), handed.clone());
            let read: Vec<u64> = Positions::new(Box::new(cursor), 0, u64::MAX, Direction::Forwards)
                .take(stop)
                .collect();
            assert_eq!(read, all[..stop.min(1000)], "stop {stop}");
            let handed = handed.load(std::sync::atomic::Ordering::Relaxed);
            assert!(
                handed <= (2 * stop).min(stop + TAKE).min(1000),
                "stop {stop}: {handed} handed over"
            );
        }
    }

    #[test]
    fn positions_respect_range_and_direction() {
        let fwd: Vec<u64> =
            Positions::new(list(&[1, 3, 5, 7, 9]), 3, 7, Direction::Forwards).collect();
        assert_eq!(fwd, vec![3, 5, 7]);
        let back: Vec<u64> =
            Positions::new(list(&[1, 3, 5, 7, 9]), 2, 8, Direction::Backwards).collect();
        assert_eq!(back, vec![7, 5, 3]);
        assert_eq!(
            Positions::new(list(&[1]), 5, 4, Direction::Forwards).count(),
            0
        );
        let edge: Vec<u64> =
            Positions::new(Box::new(All), u64::MAX - 1, u64::MAX, Direction::Forwards).collect();
        assert_eq!(edge, vec![u64::MAX - 1, u64::MAX]);
        let edge: Vec<u64> = Positions::new(Box::new(All), 0, 1, Direction::Backwards).collect();
        assert_eq!(edge, vec![1, 0]);
    }

    #[test]
    fn positions_is_lazy() {
        let mut p = Positions::new(Box::new(All), 1, u64::MAX, Direction::Forwards);
        assert_eq!(p.nth(2), Some(3));
    }
}
