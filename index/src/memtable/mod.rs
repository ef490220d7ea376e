//! The memtable: posting lists of the positions committed since the last
//! flush, in memory, readable while the committer keeps appending.
//!
//! Type, tag and stream lists live in a hash map from key to list behind a
//! read-write lock, which readers take to find a list and the writer takes
//! for writing only to add a key. The writer appends through a map of its
//! own, from key to the list's writer-side end (`Tail`, see [`postings`]),
//! so an append to a known key touches nothing readers share but the
//! list's slots and length. Event ids, nearly all unique, live in
//! a second map keyed by the id itself (see [`ids`]). A third structure keeps
//! the list keys in order, for listings that page through them by name.

mod cursor;
mod ids;
mod postings;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::cursor::{Cursor, Found, ListCursor, gallop};
use crate::key::Key;
use cursor::MemCursor;
use ids::IdPositions;
use postings::{PostingVec, Tail};

use crate::key::KeyHasher as Hasher;

/// Estimated bytes a list key costs beyond its name (kept three times:
/// in the list map, the writer's map and the key order) and its positions:
/// the map entries, the list header, the writer's tail and the chunk table.
const KEY_OVERHEAD: usize = 192;
/// Estimated bytes an id costs: its share of a B-tree node.
const ID_COST: usize = 48;

/// Posting lists for the positions after some base, in memory.
///
/// One writer (the committer) inserts; any number of readers take cursors
/// at the same time. Positions for one key must arrive ascending; a
/// position not above the key's last one is ignored (an event may carry
/// the same tag twice).
pub struct Memtable {
    lists: RwLock<HashMap<Key, Arc<PostingVec>, Hasher>>,
    /// The writer's end of every list of `lists` (lock order: `tails`,
    /// then `lists`). Appends find a key's list here, not in `lists`, so
    /// that they touch only the writer's memory and the list's slots.
    tails: Mutex<HashMap<Key, Tail, Hasher>>,
    /// The keys of `lists`, in order. A key is added here while the
    /// `lists` write lock is held (lock order: `lists`, then `order`), so
    /// a reader that finds a key here finds its list in `lists`.
    order: RwLock<BTreeSet<Key>>,
    ids: RwLock<HashMap<u128, IdPositions, Hasher>>,
    postings: AtomicUsize,
    bytes: AtomicUsize,
    /// Smallest and largest position inserted, for the view's source ranges.
    lo: AtomicU64,
    hi: AtomicU64,
}

/// What one insert call added, published to the shared counters once.
struct Tally {
    postings: usize,
    bytes: usize,
    lo: u64,
    hi: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            postings: 0,
            bytes: 0,
            lo: u64::MAX,
            hi: 0,
        }
    }

    fn added(&mut self, position: u64, bytes: usize) {
        self.postings += 1;
        self.bytes += bytes;
        self.lo = self.lo.min(position);
        self.hi = self.hi.max(position);
    }
}

/// One key's positions, found under the map lock and read after it.
enum Entry {
    List(Arc<PostingVec>),
    Id(IdPositions),
}

impl Entry {
    /// Count, first and last position.
    fn summary(&self) -> Option<(u64, u64, u64)> {
        match self {
            Entry::List(list) => {
                let s = list.read();
                let last = s.get(s.len().checked_sub(1)?)?;
                Some((s.len() as u64, s.get(0)?, last))
            }
            Entry::Id(p) => Some((p.len() as u64, p.first(), p.last())),
        }
    }

    fn cursor(self) -> Box<dyn Cursor> {
        match self {
            Entry::List(list) => Box::new(MemCursor { list, hint: 0 }),
            Entry::Id(p) => Box::new(ListCursor::new(p.to_vec())),
        }
    }
}

impl Default for Memtable {
    fn default() -> Self {
        Memtable::new()
    }
}

impl Memtable {
    /// An empty memtable.
    pub fn new() -> Memtable {
        Memtable {
            lists: RwLock::new(HashMap::default()),
            tails: Mutex::new(HashMap::default()),
            order: RwLock::new(BTreeSet::new()),
            ids: RwLock::new(HashMap::default()),
            postings: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            lo: AtomicU64::new(u64::MAX),
            hi: AtomicU64::new(0),
        }
    }

    /// Appends `position` to `key`'s list.
    pub fn insert(&self, key: &Key, position: u64) {
        self.insert_many(std::slice::from_ref(&(key.clone(), position)));
    }

    /// Appends every `(key, position)` of `entries`, in order, taking each
    /// map's write lock at most once (for the keys not yet present, and for
    /// the ids).
    pub fn insert_many(&self, entries: &[(Key, u64)]) {
        let mut tally = Tally::new();
        let mut missing = Vec::new();
        let mut ids = Vec::new();
        let mut tails = self.tails.lock();
        for (i, (key, position)) in entries.iter().enumerate() {
            if let Some(id) = key.as_id() {
                ids.push((id, *position));
                continue;
            }
            match tails.get_mut(key) {
                Some(tail) => push(tail, *position, &mut tally),
                // All of a new key's entries are deferred together, so
                // its positions still arrive in order.
                None => missing.push(i),
            }
        }
        if !missing.is_empty() {
            let mut lists = self.lists.write();
            let mut order = self.order.write();
            for (key, position) in missing.into_iter().filter_map(|i| entries.get(i)) {
                let tail = tails.entry(key.clone()).or_insert_with(|| {
                    let list = Arc::<PostingVec>::default();
                    lists.insert(key.clone(), list.clone());
                    order.insert(key.clone());
                    tally.bytes += 3 * key.as_bytes().len() + KEY_OVERHEAD;
                    Tail::new(list)
                });
                push(tail, *position, &mut tally);
            }
        }
        drop(tails);
        if !ids.is_empty() {
            let mut map = self.ids.write();
            for (id, position) in ids {
                match map.get_mut(&id) {
                    Some(p) => {
                        if p.push(position) {
                            tally.added(position, size_of::<u64>());
                        }
                    }
                    None => {
                        map.insert(id, IdPositions::new(position));
                        tally.added(position, ID_COST);
                    }
                }
            }
        }
        if tally.postings > 0 {
            self.postings.fetch_add(tally.postings, Ordering::Relaxed);
            self.lo.fetch_min(tally.lo, Ordering::Relaxed);
            self.hi.fetch_max(tally.hi, Ordering::Relaxed);
        }
        self.bytes.fetch_add(tally.bytes, Ordering::Relaxed);
    }

    fn entry(&self, key: &Key) -> Option<Entry> {
        match key.as_id() {
            Some(id) => self.ids.read().get(&id).cloned().map(Entry::Id),
            None => self.lists.read().get(key).cloned().map(Entry::List),
        }
    }

    /// A cursor over `key`'s positions, or `None` if the key has none. It
    /// stays valid while inserts continue and may see positions inserted
    /// after it was made.
    pub fn cursor(&self, key: &Key) -> Option<Box<dyn Cursor>> {
        Some(self.entry(key)?.cursor())
    }

    /// A cursor with the list's current length and range, found with one
    /// lookup.
    pub(crate) fn found(&self, key: &Key) -> Option<Found> {
        let entry = self.entry(key)?;
        let (count, first, last) = entry.summary()?;
        Some(Found {
            cursor: entry.cursor(),
            count,
            first,
            last,
        })
    }

    /// The number of positions in `key`'s list.
    pub fn count(&self, key: &Key) -> u64 {
        self.entry(key)
            .and_then(|e| e.summary())
            .map_or(0, |(n, _, _)| n)
    }

    /// The number of positions of `key` within `lo..=hi`.
    pub(crate) fn count_within(&self, key: &Key, lo: u64, hi: u64) -> u64 {
        match self.entry(key) {
            None => 0,
            Some(Entry::Id(p)) => p.to_vec().iter().filter(|&&x| lo <= x && x <= hi).count() as u64,
            Some(Entry::List(list)) => {
                let s = list.read();
                let below = gallop(s.len(), 0, |i| s.get(i).is_some_and(|p| p < lo));
                let upto = gallop(s.len(), s.len(), |i| s.get(i).is_some_and(|p| p <= hi));
                upto.saturating_sub(below) as u64
            }
        }
    }

    /// Up to `max` list keys (not ids) at or above `start` (after it, if
    /// `exclusive`), in key order, each with its number of positions within
    /// `lo..=hi` (possibly 0). The walk is a range of the ordered key set,
    /// so it touches only the keys it returns.
    pub(crate) fn counts_from(
        &self,
        start: &[u8],
        exclusive: bool,
        max: usize,
        lo: u64,
        hi: u64,
    ) -> Vec<(Key, u64)> {
        use std::ops::Bound;
        let start = Key::from_bytes(start);
        let lower = if exclusive {
            Bound::Excluded(&start)
        } else {
            Bound::Included(&start)
        };
        let keys: Vec<Key> = self
            .order
            .read()
            .range::<Key, _>((lower, Bound::Unbounded))
            .take(max)
            .cloned()
            .collect();
        keys.into_iter()
            .map(|key| {
                let n = self.count_within(&key, lo, hi);
                (key, n)
            })
            .collect()
    }

    /// The first position in `key`'s list.
    pub fn first(&self, key: &Key) -> Option<u64> {
        self.entry(key)?.summary().map(|(_, first, _)| first)
    }

    /// The last position in `key`'s list.
    pub fn last(&self, key: &Key) -> Option<u64> {
        self.entry(key)?.summary().map(|(_, _, last)| last)
    }

    /// The total number of positions over all keys (for flush decisions).
    pub fn postings(&self) -> usize {
        self.postings.load(Ordering::Relaxed)
    }

    /// The number of keys.
    pub fn keys(&self) -> usize {
        self.lists.read().len() + self.ids.read().len()
    }

    /// An estimate of the memory held, in bytes.
    pub fn approx_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Whether nothing has been inserted.
    pub fn is_empty(&self) -> bool {
        self.postings() == 0
    }

    /// The smallest and largest position inserted, if any.
    pub fn range(&self) -> Option<(u64, u64)> {
        let lo = self.lo.load(Ordering::Relaxed);
        let hi = self.hi.load(Ordering::Relaxed);
        (lo <= hi).then_some((lo, hi))
    }

    /// Every key with its positions, sorted by key (for flushing).
    pub fn entries(&self) -> Vec<(Key, Vec<u64>)> {
        // The maps are hashed for cheap inserts on the commit path; the
        // order a run needs is made here, on the flusher's thread.
        let mut lists: Vec<(Key, Vec<u64>)> = self
            .lists
            .read()
            .iter()
            .map(|(key, list)| (key.clone(), list.read().to_vec()))
            .collect();
        lists.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut ids: Vec<(u128, Vec<u64>)> = self
            .ids
            .read()
            .iter()
            .map(|(&id, p)| (id, p.to_vec()))
            .collect();
        ids.sort_unstable_by_key(|e| Key::id(e.0));
        let ids = ids.into_iter().map(|(id, p)| (Key::id(id), p)).collect();
        merge_sorted(lists, ids)
    }
}

/// Appends to a list, counting what was added.
fn push(tail: &mut Tail, position: u64, tally: &mut Tally) {
    if let Some(grown) = tail.push(position) {
        tally.added(position, grown);
    }
}

/// Merges two lists sorted by key. Id keys sort among themselves by id (they
/// are big-endian), but a foreign key with the id kind byte and another
/// length can fall between them, so this is a real merge, not a concatenation.
fn merge_sorted(a: Vec<(Key, Vec<u64>)>, b: Vec<(Key, Vec<u64>)>) -> Vec<(Key, Vec<u64>)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut a = a.into_iter().peekable();
    let mut b = b.into_iter().peekable();
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.0 <= y.0,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return out,
        };
        out.extend(if take_a { a.next() } else { b.next() });
    }
}

#[cfg(test)]
mod tests;
