//! Index runs: immutable, sorted posting lists for a closed range of
//! positions, written once (by a flush or a merge) and then read in place
//! from mapped bytes.
//!
//! [`write_run`] encodes; [`Run`] opens and answers lookups without copying
//! or decoding more than the blocks a cursor touches. Event ids, one
//! position each, have a section of their own (format version 2): a row of
//! fixed-size entries searched by the ids' values, which costs 24 bytes an
//! id where a directory entry, a skip entry and the key's bytes cost 65.

mod cursor;
mod dense;
mod format;
mod layout;
mod open;
mod writer;

use std::fmt;
use std::hint::black_box;
use std::ops::Deref;
use std::sync::OnceLock;

use bytes::Bytes;

use crate::cursor::{Cursor, Found, ListCursor};
use crate::filter::{self, Probe};
use crate::key::{ID_KEY_LEN, KIND_ID, Key};
use cursor::{RunCursor, decode_list};
use dense::{BitmapCursor, DenseLists};
use layout::{Layout, ListRef};
pub use writer::{write_run, write_run_v1};

/// Why a run could not be opened.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunError {
    /// The bytes are not a valid run: a bad magic, version, checksum or
    /// structure, found at `offset` in the file.
    Corrupt {
        /// Byte offset in the run file of the first bad field found.
        offset: u64,
        /// What was wrong there.
        reason: &'static str,
    },
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Corrupt { offset, reason } => {
                write!(f, "corrupt index run at offset {offset}: {reason}")
            }
        }
    }
}

impl std::error::Error for RunError {}

/// An open, verified index run.
pub struct Run {
    bytes: Bytes,
    layout: Layout,
    covers: (u64, u64),
    postings: u64,
    /// The directory entries of the id keys, `ids.0..ids.1` (all keys of one
    /// kind are adjacent).
    ids: (usize, usize),
    /// Whether every key of the id kind is an id key, so that the ids can
    /// be searched by their values (else every key is searched by its
    /// bytes).
    ids_whole: bool,
    /// Every [`FENCE_EVERY`]-th id key's id, read on the first lookup of an
    /// id in a run holding at least [`FENCES_FROM`] of them (`None` if a
    /// key was unreadable; the search then goes without).
    fences: OnceLock<Option<Fences>>,
    /// Every [`FENCE_EVERY`]-th id of the id section, read on the first
    /// lookup of an id in a section of at least [`FENCES_FROM`] ids (`None`
    /// if an entry was unreadable; the search then goes without).
    section_fences: OnceLock<Option<Box<[u128]>>>,
    /// Its dense lists decoded as bitmaps, on first use (see `dense`).
    dense: DenseLists,
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("covers", &self.covers)
            .field("keys", &self.layout.key_count)
            .field("postings", &self.postings)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Run {
    /// Opens the run in `bytes` (typically a mapped file), verifying its
    /// magic, version, checksum and structure.
    pub fn open(bytes: Bytes) -> Result<Run, RunError> {
        let (layout, footer, ids_whole) = open::open(&bytes)?;
        let kind_below = |kind: u8| partition(&bytes, &layout, |k| k.first() < Some(&kind));
        let ids = kind_below(KIND_ID)
            .zip(kind_below(KIND_ID + 1))
            .ok_or(RunError::Corrupt {
                offset: layout.dir as u64,
                reason: "unreadable key directory",
            })?;
        Ok(Run {
            layout,
            covers: footer.covers,
            postings: footer.posting_count,
            ids,
            ids_whole,
            fences: OnceLock::new(),
            section_fences: OnceLock::new(),
            dense: DenseLists::new(bytes.len()),
            bytes,
        })
    }

    /// The positions the run covers, inclusive: it holds every posting for
    /// positions in `covers().0..=covers().1`.
    pub fn covers(&self) -> (u64, u64) {
        self.covers
    }

    /// The number of keys, the id section's included.
    pub fn keys(&self) -> u64 {
        (self.layout.key_count + self.layout.id_count) as u64
    }

    /// The number of positions over all keys.
    pub fn postings(&self) -> u64 {
        self.postings
    }

    /// The run's bytes, as opened.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Finds `key`'s list: the filter first, then the id section (for an
    /// id) or a binary search of the key directory in place.
    fn find(&self, key: &Key) -> Option<Hit> {
        self.find_probed(key, Probe::of(key.as_bytes()))
    }

    /// [`find`](Self::find), with the key's filter hash computed already.
    fn find_probed(&self, key: &Key, probe: Probe) -> Option<Hit> {
        let b = &self.bytes[..];
        let key = key.as_bytes();
        let filter = b.get(self.layout.filter..self.layout.footer)?;
        if !filter::may_contain(filter, probe) {
            return None;
        }
        if let Some(id) = id_of(key) {
            if let Some(position) = self.find_in_section(b, id) {
                return Some(Hit::One(position));
            }
            // Only a version 1 run, or an id of several positions, has
            // ids in its directory.
            if self.ids.0 >= self.ids.1 {
                return None;
            }
        }
        self.find_listed(b, key).map(Hit::List)
    }

    /// `key`'s list in the directory.
    fn find_listed(&self, b: &[u8], key: &[u8]) -> Option<ListRef> {
        if self.ids_whole
            && let Some(id) = id_of(key)
        {
            return self.find_id(b, id);
        }
        let (mut lo, mut hi) = (0, self.layout.key_count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.layout.key(b, mid)?.cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(self.layout.entry(b, mid)?.list),
            }
        }
        None
    }

    /// Finds the list of the id key `id` among the id keys by
    /// [`interpolate`]: a handful of keys read where a binary search reads
    /// `log2(keys)`, each a cache miss, or a page fault, in a large run.
    fn find_id(&self, b: &[u8], id: u128) -> Option<ListRef> {
        let (lo, hi) = self.ids;
        if lo >= hi {
            return None;
        }
        let id_at = |i: usize| id_of(self.layout.key(b, i)?);
        let hit = |i: usize| self.layout.entry(b, i).map(|e| e.list);
        if hi - lo >= FENCES_FROM
            && let Some(fences) = self.id_fences(b)
        {
            return self.find_id_fenced(b, fences, id);
        }
        match interpolate(lo, hi, id, id_at)? {
            Ok(i) => hit(i),
            Err(_) => None,
        }
    }

    /// The run's id fences, read on first use.
    fn id_fences(&self, b: &[u8]) -> Option<&Fences> {
        self.fences
            .get_or_init(|| {
                let (lo, hi) = self.ids;
                let first = self.layout.entry(b, lo)?.key_start;
                let mut fixed = true;
                let ids = (lo..hi)
                    .step_by(FENCE_EVERY)
                    .map(|i| {
                        let e = self.layout.entry(b, i)?;
                        fixed &= e.key_start == first + (i - lo) * ID_KEY_LEN;
                        id_of(b.get(e.key_start..e.key_end)?)
                    })
                    .collect::<Option<Box<[u128]>>>()?;
                Some(Fences {
                    ids,
                    keys_at: fixed.then_some(first),
                })
            })
            .as_ref()
    }

    /// [`find_id`](Self::find_id) through the fences: they give, from
    /// memory, the window of [`FENCE_EVERY`] directory entries the id can
    /// only be in. The window's entries, then its keys, are touched all at
    /// once, so that their cache misses overlap, and the window is bisected
    /// in the cache: two rounds of misses instead of a dozen one after the
    /// other.
    ///
    /// Every id key is [`ID_KEY_LEN`] bytes, so where the fences found each
    /// of theirs at its place in a row of such keys (as a run's writer
    /// lays them out), the window is bisected by reading the keys at their
    /// places, without the directory; what that finds is then checked
    /// against the directory (the key at the entry found, or the keys at
    /// either side of where the id would be), and a run laid out otherwise
    /// is searched through its directory.
    fn find_id_fenced(&self, b: &[u8], fences: &Fences, id: u128) -> Option<ListRef> {
        let (lo, hi) = self.ids;
        // The last fence at or below the id: fences are ids, as evenly
        // spread, and a binary search of a large run's fences reads a
        // dozen lines of them one after the other.
        let (start, end) = fence_window(&fences.ids, id, lo, hi)?;
        let dir = self.layout.dir;
        touch_lines(
            b,
            dir + start * format::DIR_ENTRY,
            dir + (end + 1) * format::DIR_ENTRY,
        );
        if let Some(at) = fences.keys_at {
            let key_at = |i: usize| at + (i - lo) * ID_KEY_LEN;
            touch_lines(b, key_at(start), key_at(end));
            let id_at = |i: usize| id_of(b.get(key_at(i)..key_at(i) + ID_KEY_LEN)?);
            let (mut l, mut r) = (start, end);
            while l < r {
                let mid = l + (r - l) / 2;
                match id_at(mid) {
                    Some(v) if v < id => l = mid + 1,
                    Some(_) => r = mid,
                    None => break,
                }
            }
            // `l`: the first entry of the window whose id is not below
            // `id`, by the keys' places; the directory says whether so.
            let real = |i: usize| {
                let e = self.layout.entry(b, i)?;
                Some((id_of(b.get(e.key_start..e.key_end)?)?, e.list))
            };
            let at_l = real(l);
            if let Some((v, list)) = at_l
                && v == id
            {
                return Some(list);
            }
            // Absent, if the directory agrees that `id` falls between the
            // entry before `l` and the entry at `l` (real keys ascend).
            let above = match at_l {
                Some((v, _)) => v > id,
                None => l == end,
            };
            let below = l == start || real(l - 1).is_some_and(|(v, _)| v < id);
            if l == r && above && below {
                return None;
            }
        }
        self.find_id_in_window(b, start, end, id)
    }

    /// The window `start..end` of the id keys' entries, bisected through
    /// the directory.
    fn find_id_in_window(&self, b: &[u8], start: usize, end: usize, id: u128) -> Option<ListRef> {
        let first = self.layout.entry(b, start)?;
        let last = self.layout.entry(b, end - 1)?;
        touch_lines(b, first.key_start, last.key_end);
        let (mut l, mut r) = (start, end);
        while l < r {
            let mid = l + (r - l) / 2;
            match id_of(self.layout.key(b, mid)?)?.cmp(&id) {
                std::cmp::Ordering::Less => l = mid + 1,
                std::cmp::Ordering::Greater => r = mid,
                std::cmp::Ordering::Equal => return self.layout.entry(b, mid).map(|e| e.list),
            }
        }
        None
    }

    /// The position of the id `id` in the id section: through the fences
    /// (as [`find_id_fenced`](Self::find_id_fenced)) to a window of
    /// [`FENCE_EVERY`] entries, whose lines are touched together, then
    /// [`interpolate`]d; in a small section, interpolated from the start.
    fn find_in_section(&self, b: &[u8], id: u128) -> Option<u64> {
        let n = self.layout.id_count;
        if n == 0 {
            return None;
        }
        let (start, end) = match self.section_fences(b) {
            Some(fences) => {
                let (start, end) = fence_window(fences, id, 0, n)?;
                let at = |i: usize| self.layout.ids + i * format::ID_ENTRY;
                touch_lines(b, at(start), at(end));
                (start, end)
            }
            None => (0, n),
        };
        match interpolate(start, end, id, |i| self.layout.id_at(b, i))? {
            Ok(i) => self.layout.id_entry(b, i).map(|(_, position)| position),
            Err(_) => None,
        }
    }

    /// The id section's fences, read on first use, if it is large enough
    /// to have them.
    fn section_fences(&self, b: &[u8]) -> Option<&[u128]> {
        let n = self.layout.id_count;
        if n < FENCES_FROM {
            return None;
        }
        self.section_fences
            .get_or_init(|| {
                (0..n)
                    .step_by(FENCE_EVERY)
                    .map(|i| self.layout.id_at(b, i))
                    .collect()
            })
            .as_deref()
    }

    /// Whether the run holds `key`.
    pub fn contains(&self, key: &Key) -> bool {
        self.find(key).is_some()
    }

    /// The number of positions in `key`'s list.
    pub fn count(&self, key: &Key) -> u64 {
        self.find(key).map_or(0, |hit| match hit {
            Hit::List(l) => l.count,
            Hit::One(_) => 1,
        })
    }

    /// A lazy cursor over `key`'s positions, or `None` if the run does not
    /// hold the key.
    pub fn cursor(&self, key: &Key) -> Option<Box<dyn Cursor>> {
        self.found(key).map(|f| f.cursor)
    }

    /// A cursor with the list's length and range, found with one lookup.
    pub(crate) fn found(&self, key: &Key) -> Option<Found> {
        let list = match self.find(key)? {
            Hit::List(list) => list,
            Hit::One(p) => {
                return Some(Found {
                    cursor: Box::new(ListCursor::new(vec![p])),
                    count: 1,
                    first: p,
                    last: p,
                });
            }
        };
        let (first, last) = self.ends(list)?;
        Some(Found {
            cursor: self.cursor_of(list, first, last),
            count: list.count,
            first,
            last,
        })
    }

    /// The first and last positions of `list`, from the skip table.
    fn ends(&self, list: ListRef) -> Option<(u64, u64)> {
        let first = self.layout.block(&self.bytes, list.first_block)?.first;
        let last_block = (list.first_block + list.blocks).checked_sub(1)?;
        let last = self.layout.block(&self.bytes, last_block)?.last;
        Some((first, last))
    }

    /// A cursor over `list` (from `first` to `last`): its bitmap if it is
    /// dense and one fits the run's budget, the file's blocks otherwise.
    fn cursor_of(&self, list: ListRef, first: u64, last: u64) -> Box<dyn Cursor> {
        if dense::qualifies(list.count, first, last) {
            let decode = || {
                let positions = decode_list(&self.bytes, &self.layout, list);
                (positions.len() as u64 == list.count).then_some(positions)
            };
            if let Some(bitmap) = self.dense.get_or_build(list.first_block, decode) {
                return Box::new(BitmapCursor(bitmap));
            }
        }
        Box::new(RunCursor::new(self.bytes.clone(), self.layout, list))
    }

    /// Bytes of the bitmaps the run holds for its dense lists (at most a
    /// quarter of its file's bytes).
    pub fn dense_bytes(&self) -> usize {
        self.dense.bytes()
    }

    /// Reads the ends of the block of this run's filter that a lookup of
    /// the key `probe` was computed from reads first, so that the lookups
    /// of several runs can miss their filters together (see
    /// `IndexView::lookup_id`).
    pub(crate) fn touch_filter(&self, probe: Probe) -> u8 {
        let b = &self.bytes[..];
        b.get(self.layout.filter..self.layout.footer)
            .map_or(0, |f| filter::touch_block(f, probe))
    }

    /// The first position in `key`'s list, read from the skip table.
    pub fn first(&self, key: &Key) -> Option<u64> {
        self.first_probed(key, Probe::of(key.as_bytes()))
    }

    /// [`first`](Self::first), with the key's filter hash computed already
    /// (once for every run a lookup asks).
    pub(crate) fn first_probed(&self, key: &Key, probe: Probe) -> Option<u64> {
        match self.find_probed(key, probe)? {
            Hit::List(list) => Some(self.layout.block(&self.bytes, list.first_block)?.first),
            Hit::One(p) => Some(p),
        }
    }

    /// The last position in `key`'s list, read from the skip table.
    pub fn last(&self, key: &Key) -> Option<u64> {
        let list = match self.find(key)? {
            Hit::List(list) => list,
            Hit::One(p) => return Some(p),
        };
        let last_block = (list.first_block + list.blocks).checked_sub(1)?;
        Some(self.layout.block(&self.bytes, last_block)?.last)
    }

    /// The position of the event with id `id`, if this run holds it.
    pub fn lookup_id(&self, id: u128) -> Option<u64> {
        self.first(&Key::id(id))
    }

    /// The keys at or above `start`, in key order, each with its count of
    /// positions, read from the key directory without decoding a posting:
    /// one binary search, then one directory entry per key taken. A
    /// malformed directory ends the iteration early.
    pub fn keys_from(&self, start: &[u8]) -> RunKeys<'_> {
        let b = &self.bytes[..];
        let (mut lo, mut hi) = (0, self.layout.key_count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.layout.key(b, mid) {
                Some(key) if key < start => lo = mid + 1,
                Some(_) => hi = mid,
                None => {
                    (lo, hi) = (self.layout.key_count, self.layout.key_count);
                }
            }
        }
        let (mut id_lo, mut id_hi) = (0, self.layout.id_count);
        while id_lo < id_hi {
            let mid = id_lo + (id_hi - id_lo) / 2;
            match self.layout.id_at(b, mid) {
                Some(id) if id_key(id).as_slice() < start => id_lo = mid + 1,
                Some(_) => id_hi = mid,
                None => (id_lo, id_hi) = (self.layout.id_count, self.layout.id_count),
            }
        }
        RunKeys {
            run: self,
            next: Next { dir: lo, id: id_lo },
        }
    }

    /// Every key with its positions, in key order (for merging runs).
    pub fn iter(&self) -> RunIter<'_> {
        RunIter {
            run: self,
            next: Next::default(),
        }
    }

    /// The next key at `next` of the directory and the id section merged
    /// in key order, stepping past it: from the directory (its index) or
    /// from the id section (the id and its position). `None` at the end, or
    /// at a directory entry that cannot be read.
    fn step(&self, next: &mut Next) -> Option<Step<'_>> {
        let b = &self.bytes[..];
        let listed = (next.dir < self.layout.key_count).then(|| {
            let entry = self.layout.entry(b, next.dir)?;
            Some((b.get(entry.key_start..entry.key_end)?, entry.list))
        });
        let id = self.layout.id_entry(b, next.id);
        match (listed, id) {
            (Some(None), _) => None,
            (Some(Some((key, list))), Some((id, _))) if key < id_key(id).as_slice() => {
                next.dir += 1;
                Some(Step::Listed(key, list))
            }
            (Some(Some((key, list))), None) => {
                next.dir += 1;
                Some(Step::Listed(key, list))
            }
            (_, Some((id, position))) => {
                next.id += 1;
                Some(Step::Id(id, position))
            }
            (None, None) => None,
        }
    }
}

/// What a lookup found in a run: a list in the directory, or the one
/// position of an id in the id section.
#[derive(Clone, Copy, Debug)]
enum Hit {
    List(ListRef),
    One(u64),
}

/// Where a walk over a run's keys is: in the directory and in the id
/// section.
#[derive(Clone, Copy, Debug, Default)]
struct Next {
    dir: usize,
    id: usize,
}

/// One step of a walk over a run's keys (see [`Run::step`]).
enum Step<'a> {
    /// A key of the directory, with its list.
    Listed(&'a [u8], ListRef),
    /// An id of the id section, with its position.
    Id(u128, u64),
}

/// The key bytes of the id `id`.
fn id_key(id: u128) -> [u8; ID_KEY_LEN] {
    let mut key = [KIND_ID; ID_KEY_LEN];
    key[1..].copy_from_slice(&id.to_be_bytes());
    key
}

/// A key read from a run by [`Run::keys_from`]: borrowed from its key
/// bytes, or made from an id of the id section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKey<'a> {
    /// A key of the directory.
    Listed(&'a [u8]),
    /// The key of an id of the id section.
    Id([u8; ID_KEY_LEN]),
}

impl Deref for RunKey<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            RunKey::Listed(key) => key,
            RunKey::Id(key) => key,
        }
    }
}

/// Where `id` is among the ascending ids `at(lo..hi)`: `Ok(i)` if
/// `at(i)` is `id`, else `Err(i)` with the ids before `i` below it and
/// those from `i` on above it; `None` if `at` reads no id where one should
/// be. Ids are as good as random (UUIDs), so where `id` falls between two
/// known ids is a good guess of its place: a handful of reads where a
/// binary search makes `log2(hi - lo)`. After [`INTERPOLATIONS`] guesses it
/// bisects, so ids that are not spread evenly cost no more than a binary
/// search.
fn interpolate(
    lo: usize,
    hi: usize,
    id: u128,
    at: impl Fn(usize) -> Option<u128>,
) -> Option<Result<usize, usize>> {
    if lo >= hi {
        return Some(Err(lo));
    }
    // Known points left and right of the id: (index, id there).
    let (mut l, mut vl) = (lo, at(lo)?);
    let (mut r, mut vr) = (hi - 1, at(hi - 1)?);
    if id <= vl {
        return Some(if id == vl { Ok(l) } else { Err(l) });
    }
    if id >= vr {
        return Some(if id == vr { Ok(r) } else { Err(hi) });
    }
    let mut guesses = 0;
    while r - l > 1 {
        let bisect = l + (r - l) / 2;
        let mid = if guesses < INTERPOLATIONS {
            guesses += 1;
            // (id - vl) / (vr - vl) of the way from l to r, in integers:
            // both differences cut to their top 32 bits (id - vl < vr - vl).
            let span = vr - vl;
            let shift = (128 - span.leading_zeros()).saturating_sub(32);
            let (num, den) = (((id - vl) >> shift) as u64, (span >> shift) as u64);
            num.checked_mul((r - l) as u64)
                .and_then(|n| n.checked_div(den))
                .map_or(bisect, |d| (l + d as usize).clamp(l + 1, r - 1))
        } else {
            bisect
        };
        let v = at(mid)?;
        match v.cmp(&id) {
            std::cmp::Ordering::Less => (l, vl) = (mid, v),
            std::cmp::Ordering::Greater => (r, vr) = (mid, v),
            std::cmp::Ordering::Equal => return Some(Ok(mid)),
        }
    }
    Some(Err(r))
}

/// The window of entries `start..end` (within `lo..hi`, of which
/// `fences` holds every [`FENCE_EVERY`]-th id from `lo`) that `id` can
/// only be in: the one starting at the last fence at or below it (found
/// by [`interpolate`]: fences are ids, as evenly spread, and a binary
/// search of a large run's fences reads a dozen lines one after the
/// other). `None` if `id` is below the first fence.
fn fence_window(fences: &[u128], id: u128, lo: usize, hi: usize) -> Option<(usize, usize)> {
    let j = match interpolate(0, fences.len(), id, |i| fences.get(i).copied())? {
        Ok(j) => j,
        Err(j) => j.checked_sub(1)?,
    };
    let start = lo + j * FENCE_EVERY;
    Some((start, (start + FENCE_EVERY).min(hi)))
}

/// Interpolation guesses [`interpolate`] makes before it bisects.
const INTERPOLATIONS: u32 = 8;

/// One id in this many is a fence (see [`Run::find_id_fenced`]): sixteen
/// bytes of memory per 32 ids, a window of 13 directory lines and 9 key
/// lines.
const FENCE_EVERY: usize = 32;

/// A run's id fences (see [`Run::find_id_fenced`]).
struct Fences {
    /// Every [`FENCE_EVERY`]-th id, from the first.
    ids: Box<[u128]>,
    /// Where the first id key starts, if every fence's key starts where a
    /// row of [`ID_KEY_LEN`]-byte keys from there puts it.
    keys_at: Option<usize>,
}

/// Runs with fewer id keys than this go without fences: their search is
/// short, and fences would be read for every small run a flush writes.
const FENCES_FROM: usize = 4096;

/// Reads a byte of every cache line of `b[start..end]` in one tight loop,
/// so that their misses are in flight together.
fn touch_lines(b: &[u8], start: usize, end: usize) {
    let end = end.min(b.len());
    if start >= end {
        return;
    }
    // Memory's lines, not the slice's: from `start`, then from each line
    // start after it, so that the stretch's last line is touched too.
    let next = start + 64 - (b.as_ptr() as usize).wrapping_add(start) % 64;
    let mut sum = 0u8;
    for at in std::iter::once(start).chain((next..end).step_by(64)) {
        sum ^= b.get(at).copied().unwrap_or(0);
    }
    black_box(sum);
}

/// The id of an id key's bytes.
fn id_of(key: &[u8]) -> Option<u128> {
    match key {
        [KIND_ID, id @ ..] => Some(u128::from_be_bytes(id.try_into().ok()?)),
        _ => None,
    }
}

/// The number of directory entries whose key satisfies `below` (which must
/// hold for a prefix of the sorted keys); `None` if a key is unreadable.
fn partition(b: &[u8], layout: &Layout, below: impl Fn(&[u8]) -> bool) -> Option<usize> {
    let (mut lo, mut hi) = (0, layout.key_count);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if below(layout.key(b, mid)?) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Some(lo)
}

/// Iterator over a run's keys and their counts, from [`Run::keys_from`].
pub struct RunKeys<'a> {
    run: &'a Run,
    next: Next,
}

impl<'a> Iterator for RunKeys<'a> {
    type Item = (RunKey<'a>, u64);

    fn next(&mut self) -> Option<Self::Item> {
        let run = self.run;
        match run.step(&mut self.next)? {
            Step::Listed(key, list) => Some((RunKey::Listed(key), list.count)),
            Step::Id(id, _) => Some((RunKey::Id(id_key(id)), 1)),
        }
    }
}

/// Iterator over a run's keys and decoded posting lists, from [`Run::iter`].
pub struct RunIter<'a> {
    run: &'a Run,
    next: Next,
}

impl Iterator for RunIter<'_> {
    type Item = (Key, Vec<u64>);

    fn next(&mut self) -> Option<Self::Item> {
        let run = self.run;
        match run.step(&mut self.next)? {
            Step::Listed(key, list) => Some((
                Key::from_bytes(key),
                decode_list(&run.bytes, &run.layout, list),
            )),
            Step::Id(id, position) => Some((Key::id(id), vec![position])),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.run.layout.key_count + self.run.layout.id_count)
            .saturating_sub(self.next.dir + self.next.id);
        (0, Some(left))
    }
}

#[cfg(test)]
mod tests;
