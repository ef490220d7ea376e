//! Dense lists held as bitmaps: a run's list in which positions lie close
//! together (an event type of a store with few types) is decoded once, on
//! the first cursor asked of it, into one bit per position of its range,
//! and every later cursor seeks it in O(1) instead of searching the skip
//! table and decoding a block.
//!
//! That is what an intersection needs of a dense list: a rare list
//! proposes candidates far apart, and each seek of the dense one lands in
//! a new block, which the varint layout can only decode from its start.
//! A bitmap answers it with one or two words.
//!
//! A run keeps its bitmaps for as long as it is open, within a budget of a
//! quarter of its file's bytes (first come, first kept; a list beyond the
//! budget is read from the file as before). Only lists at least
//! [`DENSE_MIN`] long with at most [`DENSE_SPREAD`] positions of range per
//! posting qualify, so a bitmap is never more than four bytes a posting.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::cursor::Cursor;

/// The fewest postings a list needs to be held as a bitmap: shorter ones
/// are decoded quickly enough from the file.
pub(crate) const DENSE_MIN: u64 = 4096;

/// The most positions of its range a list may have per posting to be held
/// as a bitmap (bits per posting).
pub(crate) const DENSE_SPREAD: u64 = 32;

/// The share of a run's file size its bitmaps may take, as a divisor.
const BUDGET_SHARE: usize = 4;

/// Whether a list of `count` postings from `first` to `last` is dense
/// enough to be held as a bitmap.
pub(crate) fn qualifies(count: u64, first: u64, last: u64) -> bool {
    let range = last.saturating_sub(first).saturating_add(1);
    count >= DENSE_MIN && range / DENSE_SPREAD <= count
}

/// The positions of one list, one bit each over `lo..=hi`.
#[derive(Debug)]
pub(crate) struct Bitmap {
    lo: u64,
    hi: u64,
    words: Box<[u64]>,
}

impl Bitmap {
    /// The bitmap of `positions` (ascending, at least one).
    pub(crate) fn new(positions: &[u64]) -> Option<Bitmap> {
        let (&lo, &hi) = (positions.first()?, positions.last()?);
        let bits = usize::try_from(hi - lo).ok()?.checked_add(1)?;
        let mut words = vec![0u64; bits.div_ceil(64)].into_boxed_slice();
        for &p in positions {
            let i = usize::try_from(p.checked_sub(lo)?).ok()?;
            *words.get_mut(i / 64)? |= 1 << (i % 64);
        }
        Some(Bitmap { lo, hi, words })
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.words.len() * 8
    }

    fn seek_ge(&self, target: u64) -> Option<u64> {
        if target > self.hi {
            return None;
        }
        let i = target.saturating_sub(self.lo);
        let mut w = usize::try_from(i / 64).ok()?;
        let mut bits = self.words.get(w)? & (!0u64 << (i % 64));
        while bits == 0 {
            w += 1;
            bits = *self.words.get(w)?;
        }
        Some(self.lo + w as u64 * 64 + u64::from(bits.trailing_zeros()))
    }

    fn contains(&self, position: u64) -> bool {
        let Some(i) = position.checked_sub(self.lo) else {
            return false;
        };
        usize::try_from(i / 64)
            .ok()
            .and_then(|w| self.words.get(w))
            .is_some_and(|word| word & (1 << (i % 64)) != 0)
    }

    fn seek_le(&self, target: u64) -> Option<u64> {
        if target < self.lo {
            return None;
        }
        let i = target.min(self.hi) - self.lo;
        let mut w = usize::try_from(i / 64).ok()?;
        let mut bits = self.words.get(w)? & (!0u64 >> (63 - i % 64));
        while bits == 0 {
            w = w.checked_sub(1)?;
            bits = *self.words.get(w)?;
        }
        Some(self.lo + w as u64 * 64 + 63 - u64::from(bits.leading_zeros()))
    }
}

/// A cursor over a shared bitmap.
pub(crate) struct BitmapCursor(pub(crate) Arc<Bitmap>);

impl Cursor for BitmapCursor {
    fn seek_ge(&mut self, target: u64) -> Option<u64> {
        self.0.seek_ge(target)
    }

    fn seek_le(&mut self, target: u64) -> Option<u64> {
        self.0.seek_le(target)
    }

    fn contains(&mut self, position: u64) -> Option<bool> {
        Some(self.0.contains(position))
    }

    fn tells_membership(&self) -> bool {
        true
    }
}

/// A run's bitmaps, by their list's first block, and what they take.
#[derive(Debug)]
pub(crate) struct DenseLists {
    budget: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    bitmaps: HashMap<usize, Arc<Bitmap>>,
    bytes: usize,
    /// Lists built and found beyond the budget, not to be decoded again.
    refused: std::collections::HashSet<usize>,
}

impl DenseLists {
    /// The bitmaps of a run of `file_bytes` bytes.
    pub(crate) fn new(file_bytes: usize) -> DenseLists {
        DenseLists {
            budget: file_bytes / BUDGET_SHARE,
            held: Mutex::new(Held::default()),
        }
    }

    /// The bitmap of the list starting at block `first_block`, built from
    /// `decode` (its positions) on first use; `None` if it does not fit
    /// the budget (or `decode` gives nothing to build one from).
    pub(crate) fn get_or_build(
        &self,
        first_block: usize,
        decode: impl FnOnce() -> Option<Vec<u64>>,
    ) -> Option<Arc<Bitmap>> {
        {
            let held = self.held.lock();
            if let Some(b) = held.bitmaps.get(&first_block) {
                return Some(b.clone());
            }
            if held.refused.contains(&first_block) || held.bytes >= self.budget {
                return None;
            }
        }
        // Decoded outside the lock: another thread may build the same one
        // meanwhile, and the first to insert it wins.
        let bitmap = decode().and_then(|positions| Bitmap::new(&positions));
        let mut held = self.held.lock();
        if let Some(b) = held.bitmaps.get(&first_block) {
            return Some(b.clone());
        }
        match bitmap {
            Some(b) if held.bytes + b.bytes() <= self.budget => {
                held.bytes += b.bytes();
                let b = Arc::new(b);
                held.bitmaps.insert(first_block, b.clone());
                Some(b)
            }
            _ => {
                held.refused.insert(first_block);
                None
            }
        }
    }

    /// Bytes of bitmaps held.
    pub(crate) fn bytes(&self) -> usize {
        self.held.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cursor::ListCursor;
    use proptest::prelude::*;

    proptest! {
        /// Every seek of a bitmap answers as the list itself does, in any
        /// order of seeks, at and around its ends.
        #[test]
        fn a_bitmap_seeks_as_its_list(
            start in 0u64..200,
            gaps in proptest::collection::vec(1u64..150, 1..400),
            seeks in proptest::collection::vec((any::<bool>(), 0u64..30_000), 1..200),
        ) {
            let mut positions = vec![start];
            for g in gaps {
                let next = positions.last().unwrap() + g;
                positions.push(next);
            }
            let bitmap = Arc::new(Bitmap::new(&positions).unwrap());
            let mut cursor = BitmapCursor(bitmap);
            let mut list = ListCursor::new(positions.clone());
            let (lo, hi) = (positions[0], *positions.last().unwrap());
            let ends = [0, lo.saturating_sub(1), lo, lo + 1, hi - 1, hi, hi + 1, u64::MAX];
            for (forwards, t) in seeks.into_iter().chain(ends.iter().flat_map(|&t| [(true, t), (false, t)])) {
                prop_assert_eq!(cursor.contains(t), Some(positions.binary_search(&t).is_ok()), "contains({})", t);
                if forwards {
                    prop_assert_eq!(cursor.seek_ge(t), list.seek_ge(t), "seek_ge({})", t);
                } else {
                    prop_assert_eq!(cursor.seek_le(t), list.seek_le(t), "seek_le({})", t);
                }
            }
        }
    }

    #[test]
    fn only_long_close_lists_qualify() {
        assert!(qualifies(DENSE_MIN, 1, DENSE_MIN * DENSE_SPREAD));
        assert!(!qualifies(
            DENSE_MIN,
            1,
            DENSE_MIN * DENSE_SPREAD + DENSE_SPREAD
        ));
        assert!(!qualifies(DENSE_MIN - 1, 1, DENSE_MIN));
        assert!(qualifies(DENSE_MIN, u64::MAX - DENSE_MIN, u64::MAX));
    }

    #[test]
    fn bitmaps_stay_within_the_budget() {
        // 64 KiB of file: 16 KiB of bitmaps, two of 8 KiB (65,536 bits).
        let lists = DenseLists::new(64 << 10);
        let list = |lo: u64| (lo..lo + 65_536).step_by(8).collect::<Vec<_>>();
        let a = lists.get_or_build(0, || Some(list(1))).unwrap();
        assert_eq!(a.bytes(), 8 << 10);
        let b = lists.get_or_build(7, || Some(list(100))).unwrap();
        assert_eq!(lists.bytes(), 16 << 10);
        assert!(
            lists.get_or_build(9, || Some(list(5))).is_none(),
            "over budget"
        );
        // Built ones are shared, not built again.
        let again = lists.get_or_build(0, || panic!("built twice")).unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        assert!(Arc::ptr_eq(&b, &lists.get_or_build(7, || None).unwrap()));
        // A list refused is not decoded again.
        let small = DenseLists::new(1 << 10);
        assert!(small.get_or_build(3, || Some(list(1))).is_none());
        assert!(small.get_or_build(3, || panic!("decoded twice")).is_none());
        assert_eq!(small.bytes(), 0);
    }
}
