//! Cursors built from other cursors: OR (`Union`), AND (`Intersection`) and
//! the concatenation of sources covering consecutive position ranges
//! (`Chain`).
//!
//! None of them buffers results: each seek is answered by seeking the
//! children, so a query stops doing work as soon as its reader stops asking.

use crate::cursor::{Cursor, Memo};

/// A child of a union with the answer of its last seek.
struct Head {
    cursor: Box<dyn Cursor>,
    memo: Memo,
}

/// OR of cursors: a k-way merge. A union of nothing is empty.
///
/// Queries OR a handful of lists (the types of an item, the items of a
/// query), so the merge takes the minimum over a small vector rather than
/// keeping a heap; each child remembers its last answer, so a step of
/// forward or backward iteration re-seeks only the child that was consumed.
pub struct Union {
    heads: Vec<Head>,
}

impl Union {
    /// The union of `children`.
    pub fn new(children: Vec<Box<dyn Cursor>>) -> Union {
        let heads = children
            .into_iter()
            .map(|cursor| Head {
                cursor,
                memo: Memo::Unknown,
            })
            .collect();
        Union { heads }
    }
}

impl Cursor for Union {
    fn seek_ge(&mut self, target: u64) -> Option<u64> {
        let mut best: Option<u64> = None;
        for head in &mut self.heads {
            let found = match head.memo.ge(target) {
                Some(found) => found,
                None => {
                    let found = head.cursor.seek_ge(target);
                    head.memo = Memo::Ge { target, found };
                    found
                }
            };
            if let Some(v) = found {
                best = Some(best.map_or(v, |b| b.min(v)));
            }
        }
        best
    }

    fn seek_le(&mut self, target: u64) -> Option<u64> {
        let mut best: Option<u64> = None;
        for head in &mut self.heads {
            let found = match head.memo.le(target) {
                Some(found) => found,
                None => {
                    let found = head.cursor.seek_le(target);
                    head.memo = Memo::Le { target, found };
                    found
                }
            };
            if let Some(v) = found {
                best = Some(best.map_or(v, |b| b.max(v)));
            }
        }
        best
    }
}

/// AND of cursors by leapfrog. An intersection of nothing is every position.
///
/// Each child in turn is sought to the current candidate; a child that lands
/// beyond it makes its answer the new candidate, until all children agree.
/// The candidate only ever moves in the direction of the seek, so a rare
/// list drags a frequent one along in big jumps instead of both being
/// walked. Put the rarest child first: it proposes the first candidate.
pub struct Intersection {
    children: Vec<Box<dyn Cursor>>,
}

impl Intersection {
    /// The intersection of `children`.
    pub fn new(children: Vec<Box<dyn Cursor>>) -> Intersection {
        Intersection { children }
    }
}

impl Cursor for Intersection {
    fn seek_ge(&mut self, target: u64) -> Option<u64> {
        let n = self.children.len();
        let mut candidate = target;
        let mut agreed = 0;
        let mut i = 0;
        while agreed < n {
            let found = self.children.get_mut(i)?.seek_ge(candidate)?;
            if found == candidate {
                agreed += 1;
            } else if found > candidate {
                candidate = found;
                agreed = 1;
            } else {
                // A child broke the cursor contract; stopping is the only
                // answer that cannot loop.
                return None;
            }
            i = if i + 1 == n { 0 } else { i + 1 };
        }
        Some(candidate)
    }

    fn seek_le(&mut self, target: u64) -> Option<u64> {
        let n = self.children.len();
        let mut candidate = target;
        let mut agreed = 0;
        let mut i = 0;
        while agreed < n {
            let found = self.children.get_mut(i)?.seek_le(candidate)?;
            if found == candidate {
                agreed += 1;
            } else if found < candidate {
                candidate = found;
                agreed = 1;
            } else {
                return None;
            }
            i = if i + 1 == n { 0 } else { i + 1 };
        }
        Some(candidate)
    }
}

/// One source of a [`Chain`]: a cursor whose positions all lie in `lo..=hi`.
pub struct Segment {
    /// Smallest position the source may hold.
    pub lo: u64,
    /// Largest position the source may hold.
    pub hi: u64,
    /// The source's positions.
    pub cursor: Box<dyn Cursor>,
}

/// The concatenation of sources whose ranges ascend and do not overlap, as
/// the index runs and memtables of a view do.
///
/// A seek starts in the source whose range can hold the answer and falls
/// through to the next (forwards) or previous (backwards) source when that
/// one has nothing in the direction sought.
pub struct Chain {
    segments: Vec<Segment>,
}

impl Chain {
    /// A chain of `segments`, which must be in ascending, non-overlapping
    /// order of their ranges.
    pub fn new(segments: Vec<Segment>) -> Chain {
        Chain { segments }
    }
}

impl Cursor for Chain {
    fn seek_ge(&mut self, target: u64) -> Option<u64> {
        // Sources ending before the target cannot hold the answer.
        let start = self.segments.partition_point(|s| s.hi < target);
        let rest = self.segments.get_mut(start..)?;
        rest.iter_mut()
            .find_map(|s| s.cursor.seek_ge(target.max(s.lo)))
    }

    fn seek_le(&mut self, target: u64) -> Option<u64> {
        // Sources starting after the target cannot hold the answer.
        let end = self.segments.partition_point(|s| s.lo <= target);
        let rest = self.segments.get_mut(..end)?;
        rest.iter_mut()
            .rev()
            .find_map(|s| s.cursor.seek_le(target.min(s.hi)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cursor::{All, Empty, ListCursor};

    fn list(v: &[u64]) -> Box<dyn Cursor> {
        Box::new(ListCursor::new(v.to_vec()))
    }

    fn forward(c: &mut dyn Cursor) -> Vec<u64> {
        let mut out = Vec::new();
        let mut t = 0;
        while let Some(p) = c.seek_ge(t) {
            out.push(p);
            t = p + 1;
        }
        out
    }

    fn backward(c: &mut dyn Cursor, from: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut t = from;
        while let Some(p) = c.seek_le(t) {
            out.push(p);
            let Some(next) = p.checked_sub(1) else { break };
            t = next;
        }
        out
    }

    #[test]
    fn union_merges_and_dedups() {
        let mut u = Union::new(vec![list(&[1, 5, 9]), list(&[2, 5, 10]), list(&[])]);
        assert_eq!(forward(&mut u), vec![1, 2, 5, 9, 10]);
        assert_eq!(backward(&mut u, 100), vec![10, 9, 5, 2, 1]);
        assert_eq!(Union::new(vec![]).seek_ge(0), None);
    }

    #[test]
    fn intersection_leapfrogs() {
        let mut i = Intersection::new(vec![
            list(&[2, 4, 6, 8, 10, 12]),
            list(&[3, 6, 9, 12]),
            list(&[1, 6, 7, 12, 13]),
        ]);
        assert_eq!(forward(&mut i), vec![6, 12]);
        assert_eq!(backward(&mut i, 100), vec![12, 6]);
        let mut with_empty = Intersection::new(vec![list(&[1, 2]), Box::new(Empty)]);
        assert_eq!(with_empty.seek_ge(0), None);
        let mut with_all = Intersection::new(vec![Box::new(All), list(&[4, 7])]);
        assert_eq!(forward(&mut with_all), vec![4, 7]);
        assert_eq!(Intersection::new(vec![]).seek_ge(3), Some(3));
    }

    #[test]
    fn chain_falls_through() {
        let seg = |lo, hi, v: &[u64]| Segment {
            lo,
            hi,
            cursor: list(v),
        };
        let mut c = Chain::new(vec![
            seg(1, 10, &[3, 7]),
            seg(11, 20, &[]),
            seg(21, u64::MAX, &[21, 30]),
        ]);
        assert_eq!(forward(&mut c), vec![3, 7, 21, 30]);
        assert_eq!(backward(&mut c, u64::MAX), vec![30, 21, 7, 3]);
        assert_eq!(c.seek_ge(8), Some(21));
        assert_eq!(c.seek_le(20), Some(7));
    }

    #[test]
    fn contract_breaker_does_not_loop() {
        struct Liar;
        impl Cursor for Liar {
            fn seek_ge(&mut self, _: u64) -> Option<u64> {
                Some(0)
            }
            fn seek_le(&mut self, _: u64) -> Option<u64> {
                Some(u64::MAX)
            }
        }
        let mut i = Intersection::new(vec![list(&[5]), Box::new(Liar)]);
        assert_eq!(i.seek_ge(1), None);
        assert_eq!(i.seek_le(9), None);
    }
}
