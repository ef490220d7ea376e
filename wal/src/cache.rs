//! The block cache of compressed segments: decompressed blocks, shared by
//! every compressed segment of a log, evicted by the CLOCK algorithm once
//! their total size passes a bound.
//!
//! A point read of a compressed segment needs a few blocks (its record's
//! head, its entries of the event table, its own bytes); without the cache
//! every read would pay a decompression for each. The cache holds `Bytes`,
//! so a reader keeps the block it was handed even after the cache has
//! evicted it.
//!
//! CLOCK rather than a strict LRU: a hit only sets a flag, where an LRU
//! moves the block in an ordered structure, which cost more than the rest
//! of a cached read. Blocks sit in a ring; to make room, a hand sweeps it,
//! sparing (and unflagging) each block used since its last pass and
//! evicting the first that was not.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

/// What the cache holds: block `.1` of a compressed segment (the id `.0` it
/// was given when opened).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct BlockKey(u64, u64);

impl BlockKey {
    /// Block `i` of the segment opened as `segment`.
    pub(crate) fn block(segment: u64, i: usize) -> BlockKey {
        BlockKey(segment, i as u64)
    }
}

/// Hits and misses since the cache was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to decompress the block.
    pub misses: u64,
    /// Bytes of decompressed blocks held now.
    pub bytes: u64,
}

/// Decompressed blocks, evicted by CLOCK.
#[derive(Debug)]
pub struct BlockCache {
    capacity: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// A hasher for block keys: the keys are small integers chosen by no
/// adversary, so a multiplicative mix does, at a fraction of SipHash's cost.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
}

#[derive(Debug)]
struct Slot {
    key: BlockKey,
    bytes: Bytes,
    /// Used since the hand last passed.
    used: bool,
}

#[derive(Debug, Default)]
struct Inner {
    /// Block → its slot in the ring.
    slots_by_key: HashMap<BlockKey, usize, BuildHasherDefault<KeyHasher>>,
    ring: Vec<Slot>,
    hand: usize,
    bytes: usize,
}

impl Inner {
    /// Evicts the block at the hand: the last slot moves into its place.
    fn evict_at_hand(&mut self) {
        let gone = self.ring.swap_remove(self.hand);
        self.slots_by_key.remove(&gone.key);
        self.bytes -= gone.bytes.len();
        if let Some(moved) = self.ring.get(self.hand) {
            self.slots_by_key.insert(moved.key, self.hand);
        }
    }

    /// Sweeps the hand until the blocks held fit `capacity`.
    fn shrink_to(&mut self, capacity: usize) {
        while self.bytes > capacity && !self.ring.is_empty() {
            if self.hand >= self.ring.len() {
                self.hand = 0;
            }
            let slot = &mut self.ring[self.hand];
            if slot.used {
                slot.used = false;
                self.hand += 1;
            } else {
                self.evict_at_hand();
            }
        }
    }
}

impl BlockCache {
    /// Drops every block of the segment opened as `segment`.
    pub(crate) fn forget(&self, segment: u64) {
        let mut inner = self.inner.lock();
        let mut i = 0;
        while i < inner.ring.len() {
            if inner.ring[i].key.0 == segment {
                inner.hand = i;
                inner.evict_at_hand();
            } else {
                i += 1;
            }
        }
        inner.hand = 0;
    }

    /// A cache that holds at most `capacity` bytes of blocks (0 caches
    /// nothing).
    pub fn new(capacity: usize) -> BlockCache {
        BlockCache {
            capacity,
            inner: Mutex::new(Inner::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The block, if cached; counts a hit or a miss.
    pub(crate) fn get(&self, key: BlockKey) -> Option<Bytes> {
        let found = {
            let mut inner = self.inner.lock();
            let inner = &mut *inner;
            inner.slots_by_key.get(&key).copied().map(|i| {
                let slot = &mut inner.ring[i];
                slot.used = true;
                slot.bytes.clone()
            })
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Caches a block, evicting others to make room.
    pub(crate) fn insert(&self, key: BlockKey, bytes: Bytes) {
        if bytes.len() > self.capacity {
            return;
        }
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let len = bytes.len();
        match inner.slots_by_key.get(&key) {
            Some(&i) => {
                let slot = &mut inner.ring[i];
                let old = std::mem::replace(&mut slot.bytes, bytes);
                slot.used = true;
                inner.bytes = inner.bytes - old.len() + len;
            }
            None => {
                // A new block starts unflagged: it is spared only if it is
                // read again before the hand comes round.
                inner.slots_by_key.insert(key, inner.ring.len());
                inner.ring.push(Slot {
                    key,
                    bytes,
                    used: false,
                });
                inner.bytes += len;
            }
        }
        // Never evict the block just inserted to make room for itself.
        let capacity = self.capacity;
        if inner.bytes > capacity {
            let keep = inner.slots_by_key[&key];
            inner.ring[keep].used = true;
            inner.shrink_to(capacity);
        }
    }

    /// Hits, misses and the bytes held.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes: self.inner.lock().bytes as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(segment: u64, i: usize) -> BlockKey {
        BlockKey::block(segment, i)
    }

    fn block(n: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; n])
    }

    #[test]
    fn evicts_a_block_not_used_since_the_hand_passed_first() {
        let cache = BlockCache::new(300);
        cache.insert(key(1, 0), block(100, 1));
        cache.insert(key(1, 1), block(100, 2));
        cache.insert(key(1, 2), block(100, 3));
        // Use block 0, so that the hand spares it and evicts block 1.
        assert_eq!(cache.get(key(1, 0)).map(|b| b[0]), Some(1));
        cache.insert(key(2, 0), block(100, 4));
        assert!(cache.get(key(1, 1)).is_none());
        for ((segment, i), fill) in [((1, 0), 1), ((1, 2), 3), ((2, 0), 4)] {
            assert_eq!(cache.get(key(segment, i)).map(|b| b[0]), Some(fill));
        }
        let stats = cache.stats();
        assert_eq!(stats.bytes, 300);
        assert_eq!((stats.hits, stats.misses), (4, 1));
    }

    #[test]
    fn a_block_in_use_outlives_a_stream_of_blocks_read_once() {
        let cache = BlockCache::new(1000);
        cache.insert(key(0, 0), block(100, 9));
        for i in 1..200usize {
            assert_eq!(
                cache.get(key(0, 0)).map(|b| b[0]),
                Some(9),
                "after {i} blocks"
            );
            cache.insert(key(1, i), block(100, 1));
            assert!(cache.stats().bytes <= 1000);
        }
        // The blocks read once were evicted, oldest first.
        assert!(cache.get(key(1, 1)).is_none());
        assert!(cache.get(key(1, 199)).is_some());
    }

    #[test]
    fn replacing_a_block_keeps_the_size_right() {
        let cache = BlockCache::new(1000);
        cache.insert(key(1, 0), block(100, 1));
        cache.insert(key(1, 0), block(50, 2));
        cache.insert(key(2, 0), block(20, 3));
        assert_eq!(cache.stats().bytes, 70);
        assert_eq!(cache.get(key(1, 0)).map(|b| b.len()), Some(50));
        // A block larger than the whole cache is not kept.
        cache.insert(key(3, 0), block(2000, 4));
        assert!(cache.get(key(3, 0)).is_none());
        assert_eq!(cache.stats().bytes, 70);
    }
}
