//! Record heads that point reads verified, kept so that the next point
//! read in the same record does not checksum its head again.
//!
//! A point read trusts a record's fields and sequencing bytes only after
//! checking its head checksum, which covers every stream revision of the
//! batch: in a record of a thousand events, a few kilobytes for each event
//! looked up. A head verified once is kept here, a copy of its fields and
//! sequencing bytes, keyed by where the record starts, and a later point
//! read into the same record takes it without reading the record's first
//! bytes again: a record's head never changes where it lies (the log is
//! only appended to; erasure rewrites payloads in place, every record at
//! its offset with its head as it was; a rewrite that moves records writes
//! a compressed file, whose heads are kept apart, below). What a point read
//! returns was verified, even if the log's bytes were damaged since: the
//! kept head, and its event, verified by its own checksum. Damage to a
//! record's frame after its head was kept is found by scans, recovery and
//! `verify`, which check every record whole.
//!
//! A compressed segment's heads are kept too, under the identity of that
//! opening of its file rather than the segment's first position (see
//! `reader::head_in_compressed`): such a file is never written again, so a
//! head kept from it is taken without reading its bytes, which would mean
//! finding and perhaps decompressing their block.
//!
//! The owner of the payload (the engine) may keep what it derives from a
//! kept head's sequencing bytes beside it (its revision table), so that
//! finding an event's revision costs the same at any index of a batch.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::RwLock;

use crate::format::RecordMeta;

/// Heads with fewer sequencing bytes than this are cheap enough to check
/// again, and are not kept. 192 bytes is a batch of about 60 events with
/// streams; in the lookups benchmark's batches of 100, keeping their heads
/// was a little faster (R5) or the same (R6) as checking them each time,
/// and in batches of 1,000 much faster.
pub const KEEP_FROM_SEQ: usize = 192;

/// What the kept heads may take at most: their copies, and an estimate of
/// what is derived from them (eight bytes per event).
pub const KEEP_BYTES: usize = 32 << 20;

/// A verified record head.
#[derive(Debug)]
pub(crate) struct KeptHead {
    pub(crate) meta: RecordMeta,
    pub(crate) seq: Bytes,
    /// The length of the head, where the payload starts.
    pub(crate) head_len: usize,
    /// The length of the whole record.
    pub(crate) total: usize,
    derived: OnceLock<Box<dyn Any + Send + Sync>>,
    /// What the point reads into the record have spent without what is
    /// derived, as they said (see [`derived_once_paid`](Self::derived_once_paid)).
    paid: AtomicU64,
}

impl KeptHead {
    /// The head of a record just verified: its fields, its sequencing
    /// bytes, the length of its head and of the whole record.
    pub(crate) fn new(meta: RecordMeta, seq: &[u8], head_len: usize, total: usize) -> KeptHead {
        KeptHead {
            meta,
            seq: Bytes::copy_from_slice(seq),
            head_len,
            total,
            derived: OnceLock::new(),
            paid: AtomicU64::new(0),
        }
    }

    /// Whether this record holds `position`.
    pub(crate) fn holds(&self, position: u64) -> bool {
        self.meta.first_position <= position && position <= self.meta.last_position()
    }

    /// What `build` derives from this head, built by the first caller.
    /// `None` if what was built first is of another type.
    pub(crate) fn derived<T: Any + Send + Sync>(
        &self,
        build: impl FnOnce(&RecordMeta, &Bytes) -> T,
    ) -> Option<&T> {
        self.derived
            .get_or_init(|| Box::new(build(&self.meta, &self.seq)))
            .downcast_ref()
    }

    /// What `build` derives from this head, built once the callers have
    /// spent without it as much as building it costs: each says what it
    /// spends without it (`cost`) and what building it costs (`price`, in
    /// the same units). `None` until then. A record read once or twice
    /// (lookups at random) then costs no build, and one read often pays at
    /// most twice what building it at once would have.
    pub(crate) fn derived_once_paid<T: Any + Send + Sync>(
        &self,
        cost: u64,
        price: u64,
        build: impl FnOnce(&RecordMeta, &Bytes) -> T,
    ) -> Option<&T> {
        if let Some(built) = self.derived.get() {
            return built.downcast_ref();
        }
        // Relaxed: the sum only decides when to build, and the build
        // itself is synchronised by the `OnceLock`.
        let paid = self
            .paid
            .fetch_add(cost, Ordering::Relaxed)
            .saturating_add(cost);
        if paid < price {
            return None;
        }
        self.derived(build)
    }

    /// What was derived from this head, if it has been built yet.
    pub(crate) fn built<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.derived.get()?.downcast_ref()
    }

    fn cost(&self) -> usize {
        std::mem::size_of::<KeptHead>() + self.seq.len() + self.meta.count as usize * 8
    }
}

/// The kept heads, by (segment's first position, record's offset), the
/// oldest dropped first once they take [`KEEP_BYTES`].
#[derive(Debug, Default)]
pub(crate) struct HeadCache {
    kept: RwLock<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    map: HashMap<(u64, u64), Arc<KeptHead>, BuildHasherDefault<PlaceHasher>>,
    order: VecDeque<(u64, u64)>,
    bytes: usize,
}

/// Hashes a record's place (two integers a reader chose, not an
/// adversary) with one multiplication per word: the map is looked up on
/// every point read, where SipHash would cost more than the lookup.
#[derive(Default)]
struct PlaceHasher(u64);

impl Hasher for PlaceHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl HeadCache {
    pub(crate) fn get(&self, segment: u64, offset: u64) -> Option<Arc<KeptHead>> {
        self.kept.read().map.get(&(segment, offset)).cloned()
    }

    /// [`get`](Self::get) for each of `places`, under one lock.
    pub(crate) fn get_each(
        &self,
        places: impl Iterator<Item = (u64, u64)>,
        mut f: impl FnMut(Option<Arc<KeptHead>>),
    ) {
        let k = self.kept.read();
        for place in places {
            f(k.map.get(&place).cloned());
        }
    }

    pub(crate) fn keep(&self, segment: u64, offset: u64, head: Arc<KeptHead>) {
        let cost = head.cost();
        if cost > KEEP_BYTES / 4 {
            return;
        }
        let mut k = self.kept.write();
        if let Some(old) = k.map.insert((segment, offset), head) {
            k.bytes -= old.cost();
        } else {
            k.order.push_back((segment, offset));
        }
        k.bytes += cost;
        while k.bytes > KEEP_BYTES {
            let Some(oldest) = k.order.pop_front() else {
                break;
            };
            if let Some(old) = k.map.remove(&oldest) {
                k.bytes -= old.cost();
            }
        }
    }

    /// The number of heads kept and the bytes they count for.
    pub(crate) fn usage(&self) -> (usize, usize) {
        let k = self.kept.read();
        (k.map.len(), k.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_heads_stay_within_their_bytes_dropping_the_oldest() {
        let cache = HeadCache::default();
        let seq = vec![7u8; 1 << 20];
        let head = |first: u64| {
            let meta = RecordMeta {
                first_position: first,
                count: 1000,
                timestamp_micros: 0,
            };
            Arc::new(KeptHead::new(meta, &seq, 40, 50))
        };
        for i in 0..100 {
            cache.keep(1, i * 100, head(i));
            let (_, bytes) = cache.usage();
            assert!(bytes <= KEEP_BYTES, "{bytes} after {i}");
        }
        let (kept, _) = cache.usage();
        assert!((20..40).contains(&kept), "{kept} kept");
        assert!(cache.get(1, 0).is_none(), "the oldest went first");
        assert!(cache.get(1, 99 * 100).is_some());
        // Keeping one again replaces it without counting it twice.
        let before = cache.usage();
        cache.keep(1, 99 * 100, head(99));
        assert_eq!(cache.usage(), before);
    }

    #[test]
    fn a_derived_value_is_built_once_its_price_is_paid() {
        let meta = RecordMeta {
            first_position: 1,
            count: 100,
            timestamp_micros: 0,
        };
        let head = KeptHead::new(meta, &[1, 2, 3], 40, 50);
        let builds = std::sync::atomic::AtomicUsize::new(0);
        let build = |m: &RecordMeta, seq: &Bytes| {
            builds.fetch_add(1, Ordering::Relaxed);
            (m.count, seq.len())
        };
        // Reads that spend 30, 30 and 39 of a price of 100: not yet.
        for _ in 0..2 {
            assert_eq!(head.derived_once_paid(30, 100, build), None);
        }
        assert_eq!(head.derived_once_paid(39, 100, build), None);
        assert!(head.built::<(u32, usize)>().is_none());
        // The read that brings the sum to the price builds it.
        assert_eq!(head.derived_once_paid(1, 100, build), Some(&(100, 3)));
        // Then it is taken, whatever a read would spend, and not built again.
        assert_eq!(head.derived_once_paid(0, 100, build), Some(&(100, 3)));
        assert_eq!(head.derived(build), Some(&(100, 3)));
        assert_eq!(builds.load(Ordering::Relaxed), 1);
        // A price of nothing builds at once, and a cost at the top of the
        // range pays any price.
        let other = KeptHead::new(meta, &[], 40, 50);
        assert_eq!(
            other.derived_once_paid(u64::MAX, u64::MAX, build),
            Some(&(100, 0))
        );
        let free = KeptHead::new(meta, &[9], 40, 50);
        assert_eq!(free.derived_once_paid(0, 0, build), Some(&(100, 1)));
    }
}
