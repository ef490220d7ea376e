//! Admission: the checks an append must pass before the committer gives it
//! positions, in the order the `EventStore` contract fixes — idempotency by
//! event id, expected stream revisions, then the DCB condition, then
//! tracking info — each against the committed indices plus the batches
//! admitted earlier in the same commit group, which are written but not yet
//! indexed.
//!
//! [`Admission`] keeps what those checks look up often (each stream's next
//! revision, each tracking source's stored position) in caches that count
//! admitted batches too; when a group fails, [`Admission::forget`] drops
//! them and they refill from the index. They hold at most
//! [`CACHED_KEYS`] entries each from one group to the next
//! ([`Admission::trim`]), so that a store appending to millions of streams
//! does not keep one entry per stream it ever saw.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use gesta_index::{ItemSpec, Key, KeyHasher, Positions, QuerySpec};
use gesta_wal::WalReader;

use crate::append::{Appended, ExpectedRevision};
use crate::error::{Error, Result};
use crate::indexes::Indexes;
use crate::oneshot;

/// The index keys of a batch's events, built in the caller's thread: the
/// keys of all of them in one list. Committing a batch moves its keys into
/// the memtable's entries and frees the lists they came in on the commit
/// thread; one list a batch is one free there, where a list an event cost a
/// free an event (into the caller's arena, under its lock, and about once a
/// group a consolidation of that arena's free chunks).
pub(crate) struct BatchKeys {
    /// Each event's type, tag, stream and id keys, event after event:
    /// everything the memtable gets.
    keys: Vec<Key>,
    events: Vec<EventKeys>,
}

/// One event's part of a [`BatchKeys`].
struct EventKeys {
    /// Where its keys end in the batch's list.
    end: usize,
    /// Where its stream key is in the batch's list, if it names a stream.
    stream: Option<usize>,
    id: Option<u128>,
}

impl BatchKeys {
    /// Room for `events` events of `keys` keys in all.
    pub(crate) fn with_capacity(events: usize, keys: usize) -> BatchKeys {
        BatchKeys {
            keys: Vec::with_capacity(keys),
            events: Vec::with_capacity(events),
        }
    }

    /// Adds the next event's keys.
    pub(crate) fn push(
        &mut self,
        event_type: &str,
        tags: &[String],
        stream: Option<&str>,
        id: Option<u128>,
    ) {
        self.keys.push(Key::event_type(event_type));
        self.keys.extend(tags.iter().map(|t| Key::tag(t)));
        let stream = stream.map(|s| {
            self.keys.push(Key::stream(s));
            self.keys.len() - 1
        });
        self.keys.extend(id.map(Key::id));
        self.events.push(EventKeys {
            end: self.keys.len(),
            stream,
            id,
        });
    }

    /// How many events.
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// How many keys, all events together.
    pub(crate) fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Each event's id, in order.
    pub(crate) fn ids(&self) -> impl Iterator<Item = Option<u128>> + '_ {
        self.events.iter().map(|e| e.id)
    }

    /// The stream key of each event that names a stream, with the event's
    /// index, in order.
    pub(crate) fn streams(&self) -> impl Iterator<Item = (usize, &Key)> + '_ {
        self.events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((i, &self.keys[e.stream?])))
    }

    /// Each event's keys, in order.
    pub(crate) fn per_event(&self) -> impl Iterator<Item = &[Key]> + '_ {
        let starts = std::iter::once(0).chain(self.events.iter().map(|e| e.end));
        starts
            .zip(&self.events)
            .map(|(start, e)| &self.keys[start..e.end])
    }

    /// Moves every key into `out`, each at its event's position (the first
    /// event's is `first`).
    pub(crate) fn into_entries(self, first: u64, out: &mut Vec<(Key, u64)>) {
        let mut keys = self.keys.into_iter();
        let mut start = 0;
        for (position, e) in (first..).zip(&self.events) {
            out.extend(keys.by_ref().take(e.end - start).map(|k| (k, position)));
            start = e.end;
        }
    }
}

/// One append, validated and encoded in the caller's thread.
pub(crate) struct AppendRequest {
    pub payload: gesta_wal::Payload,
    pub events: BatchKeys,
    /// (stream key, stream name, expectation), in the order given.
    pub expected: Vec<(Key, String, ExpectedRevision)>,
    /// The condition's query and its `after` (0 when none was given).
    pub condition: Option<(QuerySpec, u64)>,
    /// Tracking info: (tracking key, source, position); boxed, as most
    /// appends carry none, to keep the request small.
    pub tracking: Option<Box<(Key, String, u64)>>,
    pub reply: oneshot::Sender<Result<Appended>>,
    /// When it was queued, for telemetry (zero-sized without it).
    pub queued: crate::telemetry::Queued,
}

/// A request admitted into the current group.
pub(crate) struct Admitted {
    pub reply: oneshot::Sender<Result<Appended>>,
    pub appended: Appended,
    /// The events' keys, or `None` for an idempotent retry (nothing new).
    pub events: Option<BatchKeys>,
    /// The tracking key to post at the batch's last position.
    pub tracking: Option<Key>,
}

/// What the group admitted so far, for the checks of later requests.
#[derive(Default)]
pub(crate) struct Group {
    pub admitted: Vec<Admitted>,
    /// Ids of events admitted in this group, with their positions.
    pub ids: HashMap<u128, u64>,
    /// Batches admitted in this group by first position: (count, payload).
    pub batches: HashMap<u64, (u32, Bytes)>,
}

/// Whether an event with `keys` matches `spec` (the group-local check; the
/// committed events are checked through the index).
fn matches(spec: &QuerySpec, keys: &[Key]) -> bool {
    spec.items.iter().any(|item: &ItemSpec| {
        (item.types.is_empty() || item.types.iter().any(|t| keys.contains(t)))
            && item.tags.iter().all(|t| keys.contains(t))
    })
}

/// How many streams (and tracking sources) the caches keep between groups:
/// past it, a cache is emptied before the next group and refills from the
/// index. A kept entry costs about 50 bytes.
pub(crate) const CACHED_KEYS: usize = 1 << 16;

/// The checks, and the caches they keep.
pub(crate) struct Admission {
    indexes: Arc<Indexes>,
    reader: WalReader,
    /// Next revision of every stream looked at so far.
    revisions: HashMap<Key, u64, KeyHasher>,
    /// Stored tracking position of every source looked at so far.
    tracking: HashMap<Key, u64, KeyHasher>,
}

impl Admission {
    pub(crate) fn new(indexes: Arc<Indexes>, reader: WalReader) -> Admission {
        Admission {
            indexes,
            reader,
            revisions: HashMap::default(),
            tracking: HashMap::default(),
        }
    }

    /// Drops the caches: the batches they counted did not commit.
    pub(crate) fn forget(&mut self) {
        self.revisions.clear();
        self.tracking.clear();
    }

    /// Empties a cache that grew past `limit` entries (its memory too).
    /// Only between groups, when the index holds every batch admitted so
    /// far: an entry dropped there is counted again from the index, which
    /// then gives the same number.
    pub(crate) fn trim(&mut self, limit: usize) {
        if self.revisions.len() > limit {
            self.revisions = HashMap::default();
        }
        if self.tracking.len() > limit {
            self.tracking = HashMap::default();
        }
    }

    /// How many streams and tracking sources the caches hold.
    #[cfg(test)]
    pub(crate) fn cached(&self) -> (usize, usize) {
        (self.revisions.len(), self.tracking.len())
    }

    /// The next revision of a stream: cached, or counted in the index.
    fn next_revision(&mut self, stream: &Key) -> u64 {
        if let Some(&next) = self.revisions.get(stream) {
            return next;
        }
        let next = self.indexes.view().count(stream);
        self.revisions.insert(stream.clone(), next);
        next
    }

    /// Takes the next revision of `stream` for an admitted event.
    pub(crate) fn take_revision(&mut self, stream: &Key) -> u64 {
        let next = self.next_revision(stream);
        // next_revision cached the stream, so no key is cloned here.
        if let Some(n) = self.revisions.get_mut(stream) {
            *n = next + 1;
        }
        next
    }

    /// Records the tracking position an admitted batch stores.
    pub(crate) fn track(&mut self, key: &Key, position: u64) {
        self.tracking.insert(key.clone(), position);
    }

    /// Runs every check against the committed log up to `head` and the
    /// group; `Ok(Some(_))` is an idempotent retry of a committed (or
    /// earlier admitted) batch, to be answered with its positions.
    pub(crate) fn check(
        &mut self,
        group: &Group,
        a: &AppendRequest,
        head: u64,
    ) -> Result<Option<Appended>> {
        if let Some(done) = self.check_ids(group, a)? {
            return Ok(Some(done));
        }
        for (key, name, expected) in &a.expected {
            let next = self.next_revision(key);
            let actual = next.checked_sub(1);
            if !expected.accepts(actual) {
                return Err(Error::WrongExpectedRevision {
                    stream: name.clone(),
                    expected: *expected,
                    actual,
                });
            }
        }
        if let Some((spec, after)) = &a.condition {
            // Only the sources after `after` can fail it.
            let view = self.indexes.view().within(after.saturating_add(1), head);
            let mut committed = Positions::new(
                view.evaluate(spec),
                after.saturating_add(1),
                head,
                gesta_index::Direction::Forwards,
            );
            if let Some(position) = committed.next() {
                return Err(Error::ConditionFailed { position });
            }
            if let Some(position) = group_conflict(group, spec, *after) {
                return Err(Error::ConditionFailed { position });
            }
        }
        if let Some((key, source, position)) = a.tracking.as_deref() {
            let stored = self.tracked(key, source)?;
            crate::validation::check_tracking(source, *position, stored)?;
        }
        Ok(None)
    }

    /// The stored tracking position of a source: cached (admitted batches
    /// update the cache), or read from the record of its last posting.
    fn tracked(&mut self, key: &Key, source: &str) -> Result<Option<u64>> {
        if let Some(&stored) = self.tracking.get(key) {
            return Ok(Some(stored));
        }
        let view = self.indexes.view();
        let stored = crate::tracking::tracking_at(&self.reader, &view, key, source, u64::MAX)?;
        if let Some(stored) = stored {
            self.tracking.insert(key.clone(), stored);
        }
        Ok(stored)
    }

    /// Whether `payload` (a retry's) is what `record` holds as it was
    /// appended: tags added later are not in the record's payload, and a
    /// redacted or removed event's data and metadata, erased or about to
    /// be, are not compared.
    fn as_appended(&self, record: &gesta_wal::Record, payload: &bytes::Bytes) -> Result<bool> {
        if record.payload == payload {
            return Ok(true);
        }
        let amendments = self.indexes.amendments();
        let (lo, hi) = (record.meta.first_position, record.meta.last_position());
        if !(lo..=hi).any(|p| amendments.is_erasable(p)) {
            return Ok(false);
        }
        // Event by event; the retry decoded with the record's sequencing
        // bytes (a retry of this batch names the same streams).
        let retry = gesta_wal::Record {
            meta: record.meta,
            seq: record.seq.clone(),
            payload: payload.clone(),
        };
        let (mut stored, mut retried) = (Vec::new(), Vec::new());
        crate::codec::decode_record(record, &mut stored)?;
        if crate::codec::decode_record(&retry, &mut retried).is_err() {
            return Ok(false);
        }
        Ok(stored.iter().zip(&retried).all(|(s, r)| {
            let redacted = amendments.is_erasable(s.position);
            s.event_type == r.event_type
                && s.tags == r.tags
                && s.id == r.id
                && s.stream == r.stream
                && (redacted || (s.data == r.data && s.metadata == r.metadata))
        }))
    }

    /// The idempotency rule. Ids repeated inside the batch were refused in
    /// the caller's thread.
    fn check_ids(&mut self, group: &Group, a: &AppendRequest) -> Result<Option<Appended>> {
        if a.events.ids().all(|id| id.is_none()) {
            return Ok(None);
        }
        let view = self.indexes.view();
        let found: Vec<Option<u64>> = a
            .events
            .ids()
            .map(|id| id.and_then(|id| group.ids.get(&id).copied().or_else(|| view.lookup_id(id))))
            .collect();
        let Some(first_found) = a.events.ids().zip(&found).find_map(|(id, f)| f.and(id)) else {
            return Ok(None);
        };
        let duplicate = Err(Error::DuplicateEventId { id: first_found });
        let Some(first) = found[0] else {
            return duplicate;
        };
        let count = a.events.len() as u64;
        let consecutive = found
            .iter()
            .enumerate()
            .all(|(i, f)| *f == Some(first + i as u64));
        if !consecutive {
            return duplicate;
        }
        let same = match group.batches.get(&first) {
            Some((n, payload)) => u64::from(*n) == count && payload == a.payload.bytes(),
            None => match self.reader.record_containing(first)? {
                Some(r) => {
                    r.meta.first_position == first
                        && u64::from(r.meta.count) == count
                        && self.as_appended(&r, a.payload.bytes())?
                }
                None => false,
            },
        };
        if same {
            Ok(Some(Appended {
                first,
                last: first + count - 1,
            }))
        } else {
            duplicate
        }
    }
}

/// The first event admitted in `group` after `after` that `spec` matches.
fn group_conflict(group: &Group, spec: &QuerySpec, after: u64) -> Option<u64> {
    group.admitted.iter().find_map(|a| {
        let events = a.events.as_ref()?;
        (a.appended.first..)
            .zip(events.per_event())
            .find_map(|(position, keys)| {
                (position > after && matches(spec, keys)).then_some(position)
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::append::AppendOptions;
    use crate::event::NewEvent;
    use crate::store::Store;

    fn in_stream(stream: String) -> NewEvent {
        NewEvent::new("T", b"x".to_vec()).stream(stream)
    }

    /// A cache past its limit is emptied, and what it held is counted
    /// again from the index, to the same numbers; one within its limit is
    /// kept.
    #[test]
    fn a_trimmed_cache_refills_from_the_index_to_the_same_revisions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let events = (0..30).map(|i| in_stream(format!("s{}", i % 10))).collect();
        store.append(events).unwrap();
        let mut admission = Admission::new(store.inner.indexes.clone(), store.inner.reader.clone());
        let keys: Vec<Key> = (0..10).map(|i| Key::stream(&format!("s{i}"))).collect();
        for key in &keys {
            assert_eq!(admission.next_revision(key), 3);
        }
        admission.trim(10);
        assert_eq!(admission.cached(), (10, 0), "within the limit: kept");
        admission.trim(9);
        assert_eq!(admission.cached(), (0, 0), "past the limit: emptied");
        for key in &keys {
            assert_eq!(admission.next_revision(key), 3, "counted again");
        }
        assert_eq!(admission.cached(), (10, 0));
    }

    /// More streams than the caches keep, in one batch that starts and
    /// ends in the same stream, then more batches into the first streams:
    /// every revision is the stream's own count, whatever the committer
    /// dropped from its cache between groups.
    #[test]
    fn revisions_stay_exact_past_the_cached_streams() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut batch = vec![in_stream("first".into())];
        batch.extend((0..CACHED_KEYS + 10).map(|i| in_stream(format!("s{i}"))));
        batch.push(in_stream("first".into()));
        store.append(batch).unwrap();
        for round in 0..2u64 {
            let appended = store
                .append_with(
                    vec![in_stream("first".into()), in_stream("s0".into())],
                    AppendOptions::default()
                        .expect("first", ExpectedRevision::Exact(1 + round))
                        .expect("s0", ExpectedRevision::Exact(round)),
                )
                .unwrap();
            let revisions: Vec<_> = store
                .read_stream("first", crate::read::ReadOptions::forwards())
                .unwrap()
                .map(|e| e.unwrap().revision)
                .collect();
            assert_eq!(
                revisions,
                (0..=2 + round).map(Some).collect::<Vec<_>>(),
                "after {appended:?}"
            );
        }
    }

    /// A batch's keys come back event by event as they were given: each
    /// event's own keys (type, tags, stream, id, in that order), streams and
    /// ids with their event's index, and every key at its event's position.
    #[test]
    fn batch_keys_keep_each_event_apart() {
        let tags = |n: usize| (0..n).map(|i| format!("t{i}")).collect::<Vec<_>>();
        let events = [
            ("A", tags(0), None, None),
            ("B", tags(2), Some("s"), Some(7u128)),
            ("C", tags(1), None, Some(9)),
            ("D", tags(3), Some("u"), None),
        ];
        let mut batch = BatchKeys::with_capacity(0, 0);
        let mut expected = Vec::new();
        for (event_type, tags, stream, id) in &events {
            batch.push(event_type, tags, *stream, *id);
            let mut keys = vec![Key::event_type(event_type)];
            keys.extend(tags.iter().map(|t| Key::tag(t)));
            keys.extend(stream.map(Key::stream));
            keys.extend(id.map(Key::id));
            expected.push(keys);
        }
        assert_eq!(batch.len(), 4);
        assert_eq!(
            batch.key_count(),
            expected.iter().map(Vec::len).sum::<usize>()
        );
        let per_event: Vec<Vec<Key>> = batch.per_event().map(<[Key]>::to_vec).collect();
        assert_eq!(per_event, expected);
        let streams: Vec<(usize, Key)> = batch.streams().map(|(i, k)| (i, k.clone())).collect();
        assert_eq!(streams, [(1, Key::stream("s")), (3, Key::stream("u"))]);
        assert_eq!(
            batch.ids().collect::<Vec<_>>(),
            [None, Some(7), Some(9), None]
        );
        let mut entries = Vec::new();
        batch.into_entries(10, &mut entries);
        let want: Vec<(Key, u64)> = (10..)
            .zip(&expected)
            .flat_map(|(p, keys)| keys.iter().map(move |k| (k.clone(), p)))
            .collect();
        assert_eq!(entries, want);
    }
}
