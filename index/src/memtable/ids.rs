//! Id postings: the positions of one event id, kept apart from the other
//! posting lists.
//!
//! Almost every event id is a key of its own with exactly one position, so
//! a general list per id (a shared, chunked, lock-protected vector) would
//! cost several allocations and ~170 bytes each, and the committer would
//! take the key map's write lock for nearly every event. Ids instead live in
//! a `HashMap<u128, IdPositions>` where one position costs no allocation.

/// The positions of one id, ascending; in practice one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IdPositions {
    first: u64,
    /// Positions after `first`; empty (and unallocated) for a unique id.
    more: Vec<u64>,
}

impl IdPositions {
    pub(crate) fn new(position: u64) -> IdPositions {
        IdPositions {
            first: position,
            more: Vec::new(),
        }
    }

    /// Appends `position` if it is above the last one; returns whether it
    /// was added.
    pub(crate) fn push(&mut self, position: u64) -> bool {
        if position <= self.last() {
            return false;
        }
        self.more.push(position);
        true
    }

    pub(crate) fn first(&self) -> u64 {
        self.first
    }

    pub(crate) fn last(&self) -> u64 {
        self.more.last().copied().unwrap_or(self.first)
    }

    pub(crate) fn len(&self) -> usize {
        1 + self.more.len()
    }

    pub(crate) fn to_vec(&self) -> Vec<u64> {
        let mut v = Vec::with_capacity(self.len());
        v.push(self.first);
        v.extend_from_slice(&self.more);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_then_more() {
        let mut p = IdPositions::new(5);
        assert_eq!((p.first(), p.last(), p.len()), (5, 5, 1));
        assert!(!p.push(5));
        assert!(p.push(9));
        assert!(!p.push(7));
        assert_eq!(p.to_vec(), vec![5, 9]);
        assert_eq!(p.last(), 9);
    }
}
