//! The block cache of compressed segments: decompressed blocks, shared by
//! every compressed segment of a log, evicted least recently used first
//! once their total size passes a bound.
//!
//! A point read of a compressed segment needs one block (two when its
//! record straddles a boundary); without the cache every read would pay a
//! decompression. The cache holds `Bytes`, so a reader keeps the block it was
//! handed even after the cache has evicted it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

/// A block: the first position of its segment and its number in it.
pub(crate) type BlockKey = (u64, u32);

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

/// Decompressed blocks, least recently used evicted first.
#[derive(Debug)]
pub struct BlockCache {
    capacity: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    /// Block → (its bytes, the tick of its last use).
    blocks: HashMap<BlockKey, (Bytes, u64)>,
    /// Tick of last use → block, oldest first.
    order: BTreeMap<u64, BlockKey>,
    tick: u64,
    bytes: usize,
}

impl BlockCache {
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
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        inner.tick += 1;
        let tick = inner.tick;
        let Some((bytes, last)) = inner.blocks.get_mut(&key) else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        inner.order.remove(last);
        *last = tick;
        inner.order.insert(tick, key);
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(bytes.clone())
    }

    /// Caches a block, evicting the least recently used ones to make room.
    pub(crate) fn insert(&self, key: BlockKey, bytes: Bytes) {
        if bytes.len() > self.capacity {
            return;
        }
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        inner.tick += 1;
        let tick = inner.tick;
        let len = bytes.len();
        if let Some((old, last)) = inner.blocks.insert(key, (bytes, tick)) {
            inner.order.remove(&last);
            inner.bytes -= old.len();
        }
        inner.order.insert(tick, key);
        inner.bytes += len;
        while inner.bytes > self.capacity {
            let Some((_, oldest)) = inner.order.pop_first() else {
                break;
            };
            if let Some((gone, _)) = inner.blocks.remove(&oldest) {
                inner.bytes -= gone.len();
            }
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

    fn block(n: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; n])
    }

    #[test]
    fn evicts_the_least_recently_used_first() {
        let cache = BlockCache::new(300);
        cache.insert((1, 0), block(100, 1));
        cache.insert((1, 1), block(100, 2));
        cache.insert((1, 2), block(100, 3));
        // Touch block 0 so that block 1 is now the oldest.
        assert_eq!(cache.get((1, 0)).map(|b| b[0]), Some(1));
        cache.insert((2, 0), block(100, 4));
        assert!(cache.get((1, 1)).is_none());
        for (key, fill) in [((1, 0), 1), ((1, 2), 3), ((2, 0), 4)] {
            assert_eq!(cache.get(key).map(|b| b[0]), Some(fill), "{key:?}");
        }
        let stats = cache.stats();
        assert_eq!(stats.bytes, 300);
        assert_eq!((stats.hits, stats.misses), (4, 1));
    }

    #[test]
    fn replacing_a_block_keeps_the_size_right() {
        let cache = BlockCache::new(1000);
        cache.insert((1, 0), block(100, 1));
        cache.insert((1, 0), block(50, 2));
        cache.insert((2, 0), block(20, 3));
        assert_eq!(cache.stats().bytes, 70);
        assert_eq!(cache.get((1, 0)).map(|b| b.len()), Some(50));
        // A block larger than the whole cache is not kept.
        cache.insert((3, 0), block(2000, 4));
        assert!(cache.get((3, 0)).is_none());
        assert_eq!(cache.stats().bytes, 70);
    }
}
