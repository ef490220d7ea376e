//! `Overlay`: postings added to events after they were indexed (retroactive
//! tags), kept apart from the runs and memtables because they land at old
//! positions, inside ranges that immutable runs already answer for.
//!
//! An overlay is immutable and shared by the views taken while it is
//! current; [`Overlay::with`] makes the next one. The view reads a key's
//! overlay list as one more list OR-ed with the key's chain of sources, so
//! a position the overlay adds is found by every query, count and listing.
//! Whoever builds it keeps a position out of a key's overlay list when the
//! sources already hold it there (the engine checks before it adds), so
//! counts stay exact.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::key::Key;

/// Positions added to keys, per key sorted and without repeats.
#[derive(Clone, Debug, Default)]
pub struct Overlay {
    lists: BTreeMap<Key, Arc<[u64]>>,
    postings: u64,
}

impl Overlay {
    /// An overlay holding nothing.
    pub fn new() -> Overlay {
        Overlay::default()
    }

    /// Whether it holds no posting.
    pub fn is_empty(&self) -> bool {
        self.postings == 0
    }

    /// How many postings it holds over all keys.
    pub fn postings(&self) -> u64 {
        self.postings
    }

    /// How many keys it holds.
    pub fn keys(&self) -> usize {
        self.lists.len()
    }

    /// This overlay plus `additions` (each a key and positions in any
    /// order); a position already in a key's list is not added twice.
    pub fn with(&self, additions: &[(Key, Vec<u64>)]) -> Overlay {
        let mut lists = self.lists.clone();
        for (key, positions) in additions {
            if positions.is_empty() {
                continue;
            }
            let mut merged: Vec<u64> = lists.get(key).map(|l| l.to_vec()).unwrap_or_default();
            merged.extend_from_slice(positions);
            merged.sort_unstable();
            merged.dedup();
            lists.insert(key.clone(), Arc::from(merged));
        }
        let postings = lists.values().map(|l| l.len() as u64).sum();
        Overlay { lists, postings }
    }

    /// `key`'s added positions, ascending.
    pub fn get(&self, key: &Key) -> Option<&Arc<[u64]>> {
        self.lists.get(key)
    }

    /// The keys at or after `start` in key order, each with its list.
    pub(crate) fn from(&self, start: &[u8]) -> impl Iterator<Item = (&Key, &Arc<[u64]>)> {
        self.lists
            .range(Key::from_bytes(start)..)
            .filter(|(_, l)| !l.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_merges_sorted_and_once() {
        let a = Key::tag("a");
        let o = Overlay::new().with(&[(a.clone(), vec![9, 3, 3])]);
        let o2 = o.with(&[(a.clone(), vec![5, 9]), (Key::tag("b"), vec![])]);
        assert_eq!(&**o.get(&a).unwrap(), &[3, 9]);
        assert_eq!(&**o2.get(&a).unwrap(), &[3, 5, 9]);
        assert_eq!(o2.postings(), 3);
        assert_eq!(o2.keys(), 1);
        assert!(Overlay::new().is_empty());
    }
}
