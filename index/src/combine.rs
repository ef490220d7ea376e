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

    fn contains(&mut self, position: u64) -> Option<bool> {
        let mut unknown = false;
        for head in &mut self.heads {
            match head.cursor.contains(position) {
                Some(true) => return Some(true),
                Some(false) => {}
                None => unknown = true,
            }
        }
        (!unknown).then_some(false)
    }

    fn tells_membership(&self) -> bool {
        self.heads.iter().all(|h| h.cursor.tells_membership())
    }
}

/// AND of cursors by leapfrog. An intersection of nothing is every position.
///
/// The first child proposes a candidate; each other child in turn either
/// agrees or, when it can tell membership at once ([`Cursor::contains`]),
/// rejects it, or else is sought to it, and one that lands beyond it makes
/// its answer the new candidate; a moved candidate goes back to the first
/// child, until all agree. The candidate only ever moves in the direction
/// of the seek, so a rare list drags a frequent one along in big jumps
/// instead of both being walked. Put the rarest child first: it proposes
/// the candidates, and the others' membership checks cost at most one per
/// candidate.
pub struct Intersection {
    children: Vec<Box<dyn Cursor>>,
    /// Whether each child can tell membership at once (asked only then).
    tells: Vec<bool>,
}

impl Intersection {
    /// The intersection of `children`.
    pub fn new(children: Vec<Box<dyn Cursor>>) -> Intersection {
        let tells = children.iter().map(|c| c.tells_membership()).collect();
        Intersection { children, tells }
    }

    /// The leapfrog in one direction: `propose` seeks a child in it,
    /// `beyond` tells whether an answer lies past the candidate in it, and
    /// `step` moves the candidate one position on (`None` past the end).
    fn leapfrog(
        &mut self,
        target: u64,
        propose: fn(&mut dyn Cursor, u64) -> Option<u64>,
        beyond: fn(u64, u64) -> bool,
        step: fn(u64) -> Option<u64>,
    ) -> Option<u64> {
        let Some((first, rest)) = self.children.split_first_mut() else {
            return Some(target);
        };
        let mut candidate = target;
        'propose: loop {
            candidate = propose(first.as_mut(), candidate)?;
            for (child, &tells) in rest.iter_mut().zip(self.tells.iter().skip(1)) {
                match tells.then(|| child.contains(candidate)).flatten() {
                    Some(true) => continue,
                    Some(false) => {
                        candidate = step(candidate)?;
                        continue 'propose;
                    }
                    None => {}
                }
                let found = propose(child.as_mut(), candidate)?;
                if found == candidate {
                    continue;
                }
                if beyond(found, candidate) {
                    candidate = found;
                    continue 'propose;
                }
                // A child broke the cursor contract; stopping is the only
                // answer that cannot loop.
                return None;
            }
            return Some(candidate);
        }
    }
}

impl Cursor for Intersection {
    fn seek_ge(&mut self, target: u64) -> Option<u64> {
        self.leapfrog(
            target,
            |c, t| c.seek_ge(t),
            |found, candidate| found > candidate,
            |c| c.checked_add(1),
        )
    }

    fn seek_le(&mut self, target: u64) -> Option<u64> {
        self.leapfrog(
            target,
            |c, t| c.seek_le(t),
            |found, candidate| found < candidate,
            |c| c.checked_sub(1),
        )
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
        // A source's answer past its range is a later source's to give
        // (or not: a memtable may still hold what a run replaced).
        rest.iter_mut().find_map(|s| {
            s.cursor
                .seek_ge(target.max(s.lo))
                .filter(|&found| found <= s.hi)
        })
    }

    fn take_ge(&mut self, target: u64, hi: u64, n: usize, out: &mut Vec<u64>) {
        let start = self.segments.partition_point(|s| s.hi < target);
        let (from, mut target) = (out.len(), target);
        for s in self.segments.iter_mut().skip(start) {
            let taken = out.len() - from;
            if taken >= n || target.max(s.lo) > hi {
                return;
            }
            let before = out.len();
            s.cursor
                .take_ge(target.max(s.lo), hi.min(s.hi), n - taken, out);
            if out.len() > before {
                // Each source answers at or after its target, so the last
                // answer is the largest.
                match out.last().and_then(|p| p.checked_add(1)) {
                    Some(next) => target = next,
                    None => return,
                }
            }
        }
    }

    fn seek_le(&mut self, target: u64) -> Option<u64> {
        // Sources starting after the target cannot hold the answer.
        let end = self.segments.partition_point(|s| s.lo <= target);
        let rest = self.segments.get_mut(..end)?;
        rest.iter_mut()
            .rev()
            .find_map(|s| s.cursor.seek_le(target.min(s.hi)))
    }

    fn contains(&mut self, position: u64) -> Option<bool> {
        // Only the source whose range holds the position can hold it.
        let at = self.segments.partition_point(|s| s.hi < position);
        match self.segments.get_mut(at) {
            Some(s) if s.lo <= position => s.cursor.contains(position),
            _ => Some(false),
        }
    }

    fn tells_membership(&self) -> bool {
        self.segments.iter().any(|s| s.cursor.tells_membership())
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

    /// A list that also tells membership at once, as a bitmap does.
    struct Member(ListCursor);

    impl Cursor for Member {
        fn seek_ge(&mut self, target: u64) -> Option<u64> {
            self.0.seek_ge(target)
        }
        fn seek_le(&mut self, target: u64) -> Option<u64> {
            self.0.seek_le(target)
        }
        fn contains(&mut self, position: u64) -> Option<bool> {
            Some(self.0.seek_ge(position) == Some(position))
        }
        fn tells_membership(&self) -> bool {
            true
        }
    }

    fn member(v: &[u64]) -> Box<dyn Cursor> {
        Box::new(Member(ListCursor::new(v.to_vec())))
    }

    /// Children that tell membership answer as seeking ones do, in any
    /// place, through unions and chains, forwards and backwards, at the
    /// ends of the positions.
    #[test]
    fn membership_checks_answer_as_seeks() {
        let (a, b, c) = (
            (0..300).filter(|p| p % 3 == 0).collect::<Vec<u64>>(),
            (0..300).filter(|p| p % 5 != 1).collect::<Vec<u64>>(),
            vec![0, 15, 30, 45, 60, 61, 90, 299, u64::MAX],
        );
        let want: Vec<u64> = a
            .iter()
            .copied()
            .filter(|p| b.contains(p) && c.contains(p))
            .collect();
        type Make = fn(&[u64]) -> Box<dyn Cursor>;
        let kinds: [Make; 2] = [list, member];
        for ka in kinds {
            for kb in kinds {
                for kc in kinds {
                    let make = || Intersection::new(vec![kc(&c), ka(&a), kb(&b)]);
                    let mut i = make();
                    assert_eq!(forward(&mut i), want);
                    let mut i = make();
                    let mut back = backward(&mut i, u64::MAX);
                    back.reverse();
                    assert_eq!(back, want);
                }
            }
        }
        let mut u = Union::new(vec![member(&[1, 5]), member(&[2, 5])]);
        assert!(u.tells_membership());
        assert_eq!((u.contains(2), u.contains(3)), (Some(true), Some(false)));
        let mut u = Union::new(vec![member(&[1, 5]), list(&[2, 5])]);
        assert!(!u.tells_membership());
        assert_eq!((u.contains(1), u.contains(2)), (Some(true), None));
        let seg = |lo, hi, cursor| Segment { lo, hi, cursor };
        let mut chain = Chain::new(vec![
            seg(1, 10, member(&[3, 7])),
            seg(11, 20, list(&[12])),
            seg(31, 40, member(&[35])),
        ]);
        assert!(chain.tells_membership());
        assert!(!Chain::new(vec![seg(1, 10, list(&[3]))]).tells_membership());
        let answers: Vec<_> = [3, 4, 12, 25, 35, 36, 50].map(|p| chain.contains(p)).into();
        let expected = [
            Some(true),
            Some(false),
            None,
            Some(false),
            Some(true),
            Some(false),
            Some(false),
        ];
        assert_eq!(answers, expected);
        // A child that cannot tell is never asked.
        struct Mute(ListCursor);
        impl Cursor for Mute {
            fn seek_ge(&mut self, target: u64) -> Option<u64> {
                self.0.seek_ge(target)
            }
            fn seek_le(&mut self, target: u64) -> Option<u64> {
                self.0.seek_le(target)
            }
            fn contains(&mut self, _: u64) -> Option<bool> {
                panic!("asked a child that cannot tell")
            }
        }
        let mut i = Intersection::new(vec![
            list(&[1, 2, 3]),
            Box::new(Mute(ListCursor::new(vec![2, 3, 4]))),
        ]);
        assert_eq!(forward(&mut i), vec![2, 3]);
        let mut i = Intersection::new(vec![
            list(&[2, 3, 12, 35, 36]),
            Box::new(Chain::new(vec![
                seg(1, 10, member(&[3, 7])),
                seg(11, 20, list(&[12])),
                seg(31, 40, member(&[35])),
            ])),
        ]);
        assert_eq!(forward(&mut i), vec![3, 12, 35]);
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
    fn chain_answers_from_each_source_only_within_its_range() {
        let seg = |lo, hi, v: &[u64]| Segment {
            lo,
            hi,
            cursor: list(v),
        };
        // The first source holds 7 and 12 past its range, which the
        // second source (holding 8) answers for.
        let chain = || {
            Chain::new(vec![
                seg(1, 5, &[2, 7, 12]),
                seg(6, 10, &[8]),
                seg(11, u64::MAX, &[]),
            ])
        };
        assert_eq!(forward(&mut chain()), vec![2, 8]);
        assert_eq!(chain().seek_ge(3), Some(8));
        assert_eq!(backward(&mut chain(), u64::MAX), vec![8, 2]);
        let mut taken = Vec::new();
        chain().take_ge(1, u64::MAX, 10, &mut taken);
        assert_eq!(taken, vec![2, 8]);
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
