//! The commit times of records already looked up, kept for
//! [`Store::position_at`](super::Store::position_at).
//!
//! A lookup by time is a binary search over the log's records, and every
//! search of one log visits the same records near the top of its search
//! tree; reading and verifying each of those record heads again (a segment
//! lookup, an offset-table search and a checksum over the head, stream
//! revisions included) was most of the work. A committed record's position
//! range and commit time never change, so what one search verified serves
//! every later one. The map is bounded: once full it takes no more records,
//! and keeps those found first — the top of the search tree, which every
//! search passes through.

use std::collections::BTreeMap;

use gesta_wal::format::RecordMeta;
use parking_lot::{Mutex, MutexGuard};

/// Records kept at most (about 40 bytes each, in the map's nodes).
pub(crate) const CAPACITY: usize = 1 << 16;

/// First position of a record → (its last position, its commit time).
#[derive(Debug, Default)]
pub(crate) struct RecordTimes {
    records: Mutex<BTreeMap<u64, (u64, u64)>>,
}

/// The map, locked for one search.
pub(crate) struct Locked<'a>(MutexGuard<'a, BTreeMap<u64, (u64, u64)>>);

impl RecordTimes {
    pub(crate) fn lock(&self) -> Locked<'_> {
        Locked(self.records.lock())
    }

    /// The number of records kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.records.lock().len()
    }
}

impl Locked<'_> {
    /// The kept record holding `position`: (first position, last position,
    /// commit time).
    pub(crate) fn containing(&self, position: u64) -> Option<(u64, u64, u64)> {
        let (&first, &(last, time)) = self.0.range(..=position).next_back()?;
        (position <= last).then_some((first, last, time))
    }

    /// Keeps a verified record head, unless the map is full.
    pub(crate) fn keep(&mut self, meta: &RecordMeta) {
        if self.0.len() < CAPACITY {
            self.0.insert(
                meta.first_position,
                (meta.last_position(), meta.timestamp_micros),
            );
        }
    }

    /// Unlocks the map while `f` runs (a record is read from the log), and
    /// locks it again.
    pub(crate) fn unlocked<T>(&mut self, f: impl FnOnce() -> T) -> T {
        MutexGuard::unlocked(&mut self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::{NewEvent, Options, Query, ReadOptions, Store};

    /// Every answer, with the map cold, warm, and after more appends moved
    /// the search tree, is the last position committed at or before the
    /// time, judged by the events' own commit times.
    #[test]
    fn kept_records_give_the_same_answers_as_the_log() {
        let tmp = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000));
        let store = Store::open_with(tmp.path(), Options::default().clock(clock.clone())).unwrap();
        let append = |records: u64| {
            for i in 0..records {
                let batch = (0..1 + i % 3)
                    .map(|j| NewEvent::new("A", format!("{i}.{j}")))
                    .collect();
                store.append(batch).unwrap();
                // Some records share a commit time, others are far apart.
                clock.advance([0, 1, 7, 250][(i % 4) as usize]);
            }
        };
        let check = |store: &Store| {
            let events: Vec<_> = store
                .read(&Query::all(), ReadOptions::forwards())
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let expected = |t: u64| {
                events
                    .iter()
                    .rev()
                    .find(|e| e.timestamp_micros <= t)
                    .map_or(0, |e| e.position)
            };
            let last = events.last().unwrap().timestamp_micros;
            // Twice: the second pass answers mostly from the kept records.
            for _ in 0..2 {
                for t in (990..last + 3).rev() {
                    assert_eq!(store.position_at(t).unwrap(), expected(t), "time {t}");
                }
            }
            assert_eq!(store.position_at(u64::MAX).unwrap(), store.head());
        };
        append(200);
        check(&store);
        let kept = store.inner.record_times.len();
        assert!(kept > 0 && kept <= 200, "{kept} records kept");
        append(333);
        check(&store);
    }

    #[test]
    fn a_full_map_keeps_what_it_has() {
        let times = RecordTimes::default();
        let mut locked = times.lock();
        let meta = |first: u64| RecordMeta {
            first_position: first,
            count: 2,
            timestamp_micros: first * 10,
        };
        for i in 0..CAPACITY as u64 + 5 {
            locked.keep(&meta(1 + 2 * i));
        }
        assert_eq!(locked.containing(1), Some((1, 2, 10)));
        assert_eq!(locked.containing(4), Some((3, 4, 30)));
        let past = 1 + 2 * CAPACITY as u64;
        assert_eq!(locked.containing(past), None);
        drop(locked);
        assert_eq!(times.len(), CAPACITY);
    }
}
