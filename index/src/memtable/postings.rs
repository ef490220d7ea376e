//! `PostingVec`: one key's in-memory posting list, appended to by one writer
//! while many readers seek in it, and [`Tail`], the writer's end of it.
//!
//! Positions live in chunks of atomics that never move once allocated, so
//! an append never copies the list and a reader never sees a slot being
//! rewritten. The writer stores the value, then publishes the new length
//! with a release store; a reader loads the length with acquire and reads
//! only the slots below it, so it sees either the old or the new list,
//! never a torn one. The chunk table's lock is taken only to add a chunk
//! (by the writer, for writing) and to read (by readers), never for an
//! ordinary append.
//!
//! The writer appends through its [`Tail`], which holds what an append
//! needs — the list's length and last position and the chunk being filled —
//! in the writer's own memory. An append therefore reads nothing shared
//! and executes no locked instruction: it is two plain stores (the slot,
//! then the length). A group's appends go to hundreds of lists each in a
//! line of its own; without a load to wait on or a fence between them,
//! their cache misses overlap instead of being paid one after another.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard};

/// Capacity of the first chunk. Most keys (ids, rare tags) hold one or a
/// few positions, so lists start small.
const FIRST_CAP: usize = 4;
/// Chunks double in capacity this many times, then stay at [`MAX_CAP`], so
/// slack stays bounded for long lists.
const DOUBLINGS: usize = 9;
/// Capacity of every chunk after the doubling ones.
const MAX_CAP: usize = FIRST_CAP << (DOUBLINGS - 1);
/// Slots held by all the doubling chunks together.
const DOUBLING_SLOTS: usize = FIRST_CAP * ((1 << DOUBLINGS) - 1);

/// The chunk and the slot within it of the list's `i`th position.
fn locate(i: usize) -> (usize, usize) {
    if i < DOUBLING_SLOTS {
        let j = i / FIRST_CAP + 1;
        let k = j.ilog2() as usize;
        (k, i - FIRST_CAP * ((1 << k) - 1))
    } else {
        let r = i - DOUBLING_SLOTS;
        (DOUBLINGS + r / MAX_CAP, r % MAX_CAP)
    }
}

/// The number of slots of chunk `k`.
fn chunk_cap(k: usize) -> usize {
    if k < DOUBLINGS {
        FIRST_CAP << k
    } else {
        MAX_CAP
    }
}

/// An append-only list of strictly ascending positions, appended to
/// through its one [`Tail`].
#[derive(Default)]
pub(crate) struct PostingVec {
    /// The number of published positions.
    len: AtomicUsize,
    /// Chunk `k` holds positions `locate`d to it.
    chunks: RwLock<Vec<Arc<[AtomicU64]>>>,
}

/// The writer's end of a [`PostingVec`]: the only way to append to it, so
/// one list has one writer. Owned by the writer (not shared with readers).
pub(crate) struct Tail {
    list: Arc<PostingVec>,
    /// The chunk the next position goes to, unless it starts a new one.
    chunk: Arc<[AtomicU64]>,
    /// The list's length (what the writer published last) and its last
    /// position.
    len: usize,
    last: u64,
}

impl Tail {
    /// The writer's end of `list`, a list nothing has been appended to.
    pub(crate) fn new(list: Arc<PostingVec>) -> Tail {
        Tail {
            list,
            chunk: Arc::new([]),
            len: 0,
            last: 0,
        }
    }

    /// The list appended to.
    #[cfg(test)]
    pub(crate) fn list(&self) -> &Arc<PostingVec> {
        &self.list
    }

    /// Appends `position`. Returns the bytes newly allocated, or `None` if
    /// the position is not above the last one and was ignored: an event may
    /// carry a tag twice, and a list must stay strictly ascending for seeks.
    pub(crate) fn push(&mut self, position: u64) -> Option<usize> {
        if self.len > 0 && position <= self.last {
            return None;
        }
        let (k, off) = locate(self.len);
        let mut grown = 0;
        if off == 0 {
            let cap = chunk_cap(k);
            let chunk: Arc<[AtomicU64]> = (0..cap).map(|_| AtomicU64::new(0)).collect();
            self.list.chunks.write().push(chunk.clone());
            self.chunk = chunk;
            grown = cap * size_of::<u64>();
        }
        self.chunk.get(off)?.store(position, Ordering::Relaxed);
        self.len += 1;
        self.last = position;
        // Publishes the slot: a reader that sees the new length sees it.
        self.list.len.store(self.len, Ordering::Release);
        Some(grown)
    }
}

impl PostingVec {
    /// A consistent view of the positions published so far.
    pub(crate) fn read(&self) -> Snapshot<'_> {
        let chunks = self.chunks.read();
        let len = self.len.load(Ordering::Acquire);
        Snapshot { chunks, len }
    }
}

/// Reads one slot through a chunk table guard.
fn slot(chunks: &[Arc<[AtomicU64]>], i: usize) -> Option<u64> {
    let (k, off) = locate(i);
    Some(chunks.get(k)?.get(off)?.load(Ordering::Relaxed))
}

/// The published prefix of a [`PostingVec`], readable while the writer
/// continues. Holds the chunk table's read lock, so keep it short-lived.
pub(crate) struct Snapshot<'a> {
    chunks: RwLockReadGuard<'a, Vec<Arc<[AtomicU64]>>>,
    len: usize,
}

impl Snapshot<'_> {
    /// The number of positions in the snapshot.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The `i`th position, if `i < len`.
    pub(crate) fn get(&self, i: usize) -> Option<u64> {
        if i >= self.len {
            return None;
        }
        slot(&self.chunks, i)
    }

    /// The published slots of the chunk holding the `i`th position, with
    /// the index of the chunk's first slot: a search that stays within one
    /// chunk reads the slots directly instead of locating every probe.
    pub(crate) fn chunk(&self, i: usize) -> Option<(usize, &[AtomicU64])> {
        if i >= self.len {
            return None;
        }
        let (k, off) = locate(i);
        let start = i - off;
        let chunk = self.chunks.get(k)?;
        chunk
            .get(..(self.len - start).min(chunk.len()))
            .map(|s| (start, s))
    }

    /// All positions, in order.
    pub(crate) fn to_vec(&self) -> Vec<u64> {
        (0..self.len).map_while(|i| self.get(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_is_dense_and_in_bounds() {
        let mut expect = (0, 0);
        for i in 0..20_000 {
            let (k, off) = locate(i);
            assert_eq!((k, off), expect, "i={i}");
            assert!(off < chunk_cap(k));
            expect = if off + 1 == chunk_cap(k) {
                (k + 1, 0)
            } else {
                (k, off + 1)
            };
        }
    }

    #[test]
    fn push_and_read() {
        let mut v = Tail::new(Arc::default());
        for p in 1..=5000u64 {
            assert!(v.push(p * 2).is_some());
        }
        assert!(v.push(10_000).is_none(), "duplicate is ignored");
        assert!(v.push(3).is_none(), "descending is ignored");
        let s = v.list().read();
        assert_eq!(s.len(), 5000);
        assert_eq!(s.get(0), Some(2));
        assert_eq!(s.get(4999), Some(10_000));
        assert_eq!(s.get(5000), None);
        assert_eq!(s.to_vec(), (1..=5000).map(|p| p * 2).collect::<Vec<_>>());
    }
}
