//! The cursor abstraction every posting list and query is read through, and
//! the trivial cursors (`All`, `Empty`, `ListCursor`).
//!
//! A cursor answers two questions about an ascending set of positions:
//! the smallest member at or after a target and the largest at or before
//! one. Everything else — forward and backward iteration, AND by leapfrog,
//! OR by merge, chaining sources — is built from those two seeks, which is
//! what lets a query stop early at a limit and run in either direction.

/// A lazy cursor over ascending positions.
///
/// Seeks are expected to be monotone within one direction of use (forward
/// iteration is repeated `seek_ge(last + 1)`, backward is repeated
/// `seek_le(last - 1)`), and implementations are fastest that way; every
/// cursor in this crate also answers correctly for any sequence of seeks.
///
/// Implementations must return a value `>= target` from `seek_ge` and
/// `<= target` from `seek_le`; the combinators rely on it to terminate.
pub trait Cursor: Send {
    /// Smallest position >= target in this list, or None.
    fn seek_ge(&mut self, target: u64) -> Option<u64>;
    /// Largest position <= target in this list, or None.
    fn seek_le(&mut self, target: u64) -> Option<u64>;
    /// Whether `position` is in this list, if the cursor can tell at
    /// once (a bitmap); `None` if only a seek can. It leaves the cursor's
    /// answers unchanged.
    ///
    /// An intersection asks it of every child but the one proposing
    /// candidates: unlike a seek's answer, the next candidate does not
    /// depend on it, so the memory reads of several candidates' checks
    /// overlap instead of each waiting for the one before.
    fn contains(&mut self, position: u64) -> Option<bool> {
        let _ = position;
        None
    }
    /// Whether [`contains`](Cursor::contains) can answer for some
    /// position: an intersection asks only the children that can, so the
    /// others pay nothing for it.
    fn tells_membership(&self) -> bool {
        false
    }
    /// Appends to `out` the smallest positions at or after `target` and
    /// at most `hi`, in order, up to `n` of them: what `n` forward seeks,
    /// each from the answer before plus one, would find. A cursor that
    /// holds its positions decoded (a run's block) hands them over in one
    /// go rather than a seek each.
    fn take_ge(&mut self, target: u64, hi: u64, n: usize, out: &mut Vec<u64>) {
        let mut target = target;
        for _ in 0..n {
            match self.seek_ge(target) {
                Some(p) if p >= target && p <= hi => {
                    out.push(p);
                    match p.checked_add(1) {
                        Some(next) => target = next,
                        None => return,
                    }
                }
                _ => return,
            }
        }
    }
}

impl Cursor for Box<dyn Cursor> {
    fn seek_ge(&mut self, target: u64) -> Option<u64> {
        (**self).seek_ge(target)
    }
    fn seek_le(&mut self, target: u64) -> Option<u64> {
        (**self).seek_le(target)
    }
    fn contains(&mut self, position: u64) -> Option<bool> {
        (**self).contains(position)
    }
    fn tells_membership(&self) -> bool {
        (**self).tells_membership()
    }
    fn take_ge(&mut self, target: u64, hi: u64, n: usize, out: &mut Vec<u64>) {
        (**self).take_ge(target, hi, n, out)
    }
}

/// Every position: a seek returns its target.
#[derive(Clone, Copy, Debug, Default)]
pub struct All;

impl Cursor for All {
    fn seek_ge(&mut self, target: u64) -> Option<u64> {
        Some(target)
    }
    fn seek_le(&mut self, target: u64) -> Option<u64> {
        Some(target)
    }
}

/// No position at all.
#[derive(Clone, Copy, Debug, Default)]
pub struct Empty;

impl Cursor for Empty {
    fn seek_ge(&mut self, _: u64) -> Option<u64> {
        None
    }
    fn seek_le(&mut self, _: u64) -> Option<u64> {
        None
    }
}

/// The answer of a cursor's previous seek, kept so that a repeated or
/// slightly advanced seek in the same direction costs nothing.
///
/// A forward answer `found` for `target` is still the answer for any
/// `t >= target` up to `found` (nothing lies in `target..found`); likewise
/// backwards. That is what makes a k-way merge cost one child seek per step.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) enum Memo {
    /// Nothing remembered.
    #[default]
    Unknown,
    /// `seek_ge(target)` returned `found`.
    Ge { target: u64, found: Option<u64> },
    /// `seek_le(target)` returned `found`.
    Le { target: u64, found: Option<u64> },
}

impl Memo {
    /// The remembered answer to `seek_ge(t)`, if it is still valid.
    pub(crate) fn ge(self, t: u64) -> Option<Option<u64>> {
        match self {
            Memo::Ge { target, found } if target <= t && found.is_none_or(|v| v >= t) => {
                Some(found)
            }
            _ => None,
        }
    }

    /// The remembered answer to `seek_le(t)`, if it is still valid.
    pub(crate) fn le(self, t: u64) -> Option<Option<u64>> {
        match self {
            Memo::Le { target, found } if target >= t && found.is_none_or(|v| v <= t) => {
                Some(found)
            }
            _ => None,
        }
    }
}

/// A cursor over a sorted list held in memory, e.g. the positions a commit
/// group has accepted but not yet published, or a shared list of the
/// index's overlay (`L = Arc<[u64]>`).
#[derive(Clone, Debug, Default)]
pub struct ListCursor<L = Vec<u64>> {
    list: L,
    /// Index of the previous answer, where the next search starts.
    hint: usize,
}

impl ListCursor {
    /// A cursor over `positions`, which are sorted and deduplicated here if
    /// they are not already.
    pub fn new(mut positions: Vec<u64>) -> ListCursor {
        if !positions.is_sorted_by(|a, b| a < b) {
            positions.sort_unstable();
            positions.dedup();
        }
        ListCursor {
            list: positions,
            hint: 0,
        }
    }
}

impl ListCursor<std::sync::Arc<[u64]>> {
    /// A cursor over a shared list, which must be sorted and free of
    /// repeats (as the overlay keeps its lists).
    pub fn shared(list: std::sync::Arc<[u64]>) -> Self {
        ListCursor { list, hint: 0 }
    }
}

impl<L: AsRef<[u64]> + Send> Cursor for ListCursor<L> {
    fn seek_ge(&mut self, target: u64) -> Option<u64> {
        let list = self.list.as_ref();
        let i = gallop(list.len(), self.hint, |i| {
            list.get(i).is_some_and(|&p| p < target)
        });
        self.hint = i;
        list.get(i).copied()
    }

    fn seek_le(&mut self, target: u64) -> Option<u64> {
        let list = self.list.as_ref();
        let end = gallop(list.len(), self.hint, |i| {
            list.get(i).is_some_and(|&p| p <= target)
        });
        let i = end.checked_sub(1)?;
        self.hint = i;
        list.get(i).copied()
    }
}

/// The first index in `0..len` where `pred` is false (or `len`), for a
/// `pred` that is true on a prefix and false after it — like
/// `slice::partition_point`, but searching outwards from `hint` with
/// doubling steps before bisecting.
///
/// Iteration asks for the neighbour of the previous answer, so starting at
/// the hint makes a step O(1) and a jump O(log distance) instead of
/// O(log len) every time.
pub(crate) fn gallop(len: usize, hint: usize, mut pred: impl FnMut(usize) -> bool) -> usize {
    let hint = hint.min(len);
    let (mut lo, mut hi);
    if hint < len && pred(hint) {
        // The answer lies after the hint: pred(lo - 1) holds throughout.
        lo = hint + 1;
        let mut step = 1usize;
        hi = loop {
            let probe = lo.saturating_add(step - 1);
            if probe >= len {
                break len;
            }
            if pred(probe) {
                lo = probe + 1;
                step = step.saturating_mul(2);
            } else {
                break probe;
            }
        };
    } else {
        // The answer is at or before the hint: it is <= hi throughout.
        hi = hint;
        let mut step = 1usize;
        lo = loop {
            if hi == 0 {
                break 0;
            }
            let probe = hi.saturating_sub(step);
            if pred(probe) {
                break probe + 1;
            }
            hi = probe;
            step = step.saturating_mul(2);
        };
    }
    // Bisect lo..hi: pred(lo - 1) holds (or lo == 0) and the answer <= hi.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// A key's list in one source (a run or a memtable): a cursor over it, its
/// length and its range, which the view chains with the other sources'.
pub(crate) struct Found {
    pub(crate) cursor: Box<dyn Cursor>,
    pub(crate) count: u64,
    pub(crate) first: u64,
    pub(crate) last: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_and_empty() {
        assert_eq!(All.seek_ge(5), Some(5));
        assert_eq!(All.seek_le(0), Some(0));
        assert_eq!(Empty.seek_ge(5), None);
        assert_eq!(Empty.seek_le(5), None);
    }

    #[test]
    fn list_cursor_seeks_any_order() {
        let mut c = ListCursor::new(vec![9, 3, 5, 5, 20]);
        assert_eq!(c.seek_ge(0), Some(3));
        assert_eq!(c.seek_ge(4), Some(5));
        assert_eq!(c.seek_ge(6), Some(9));
        assert_eq!(c.seek_ge(21), None);
        assert_eq!(c.seek_le(21), Some(20));
        assert_eq!(c.seek_le(19), Some(9));
        assert_eq!(c.seek_le(8), Some(5));
        assert_eq!(c.seek_le(2), None);
        assert_eq!(c.seek_ge(3), Some(3));
        assert_eq!(c.seek_le(u64::MAX), Some(20));
    }

    #[test]
    fn gallop_matches_partition_point() {
        let v: Vec<u64> = (0..50).map(|i| i * 3).collect();
        for t in 0..160 {
            let want = v.partition_point(|&p| p < t);
            for hint in [0, 1, 7, 25, 49, 50, 99] {
                assert_eq!(
                    gallop(v.len(), hint, |i| v[i] < t),
                    want,
                    "t={t} hint={hint}"
                );
            }
        }
        assert_eq!(gallop(0, 5, |_| true), 0);
    }

    #[test]
    fn memo_validity() {
        let m = Memo::Ge {
            target: 10,
            found: Some(15),
        };
        assert_eq!(m.ge(12), Some(Some(15)));
        assert_eq!(m.ge(15), Some(Some(15)));
        assert_eq!(m.ge(16), None);
        assert_eq!(m.ge(9), None);
        assert_eq!(m.le(12), None);
        let m = Memo::Le {
            target: 10,
            found: None,
        };
        assert_eq!(m.le(3), Some(None));
        assert_eq!(m.le(11), None);
    }
}
