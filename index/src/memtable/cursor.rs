//! `MemCursor`: a cursor over one memtable list that keeps working while
//! the writer appends to it.
//!
//! Each seek takes the list's chunk-table read lock for the duration of a
//! search and no longer, so readers never hold up the writer for more than
//! one search. Seeks start from the previous answer, first within its chunk
//! (reading slots directly), then over the whole list.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::postings::PostingVec;
use crate::cursor::{Cursor, gallop};

/// A cursor over one memtable list. The list's read lock is held only for
/// the duration of a seek.
pub(crate) struct MemCursor {
    pub(crate) list: Arc<PostingVec>,
    /// Index of the previous answer, where the next search starts.
    pub(crate) hint: usize,
}

impl Cursor for MemCursor {
    fn seek_ge(&mut self, target: u64) -> Option<u64> {
        let s = self.list.read();
        if let Some((start, slots)) = s.chunk(self.hint)
            && covers(slots, target)
        {
            let j = gallop(slots.len(), self.hint - start, |j| load(slots, j) < target);
            self.hint = start + j;
            return slots.get(j).map(|a| a.load(Ordering::Relaxed));
        }
        let i = gallop(s.len(), self.hint, |i| s.get(i).is_some_and(|p| p < target));
        self.hint = i;
        s.get(i)
    }

    fn seek_le(&mut self, target: u64) -> Option<u64> {
        let s = self.list.read();
        if let Some((start, slots)) = s.chunk(self.hint)
            && covers(slots, target)
        {
            let end = gallop(slots.len(), self.hint - start, |j| load(slots, j) <= target);
            let j = end.checked_sub(1)?;
            self.hint = start + j;
            return slots.get(j).map(|a| a.load(Ordering::Relaxed));
        }
        let end = gallop(s.len(), self.hint, |i| {
            s.get(i).is_some_and(|p| p <= target)
        });
        let i = end.checked_sub(1)?;
        self.hint = i;
        s.get(i)
    }
}

/// The `j`th slot of a chunk (`u64::MAX` past its end, which keeps a
/// search's predicate monotone).
fn load(slots: &[AtomicU64], j: usize) -> u64 {
    slots.get(j).map_or(u64::MAX, |a| a.load(Ordering::Relaxed))
}

/// Whether `target` lies between the chunk's first and last position, so
/// that both seeks find their answer inside it.
fn covers(slots: &[AtomicU64], target: u64) -> bool {
    let last = slots.len().wrapping_sub(1);
    !slots.is_empty() && load(slots, 0) <= target && target <= load(slots, last)
}
