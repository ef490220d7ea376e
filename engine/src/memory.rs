//! [`MemoryStore`]: the semantic reference. Deliberately simple — a vector
//! of events behind a mutex, every check a linear scan — so that it is easy
//! to believe, and every other store is tested against it. A subscription's
//! fetch is the exception: it holds the mutex every writer needs, so it
//! finds its first append by a binary search and reads a bounded number of
//! events, as every store's does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use gesta_index::Key;
use parking_lot::Mutex;

use crate::api::{EventIter, EventStore};
use crate::append::AppendOptions;
use crate::append::Appended;
use crate::durable::{
    DurableCursors, DurableSubscription, DurableSubscriptionState, MemoryCursors,
};
use crate::error::{Error, Result};
use crate::event::{NewEvent, RecordedEvent};
use crate::notify::Hub;
use crate::query::Query;
use crate::read::{Direction, ReadOptions};
use crate::snapshots::Snapshot;
use crate::subscription::{Subscription, SubscriptionFeed};

/// An in-memory event store with the full semantics and no persistence.
#[derive(Debug)]
pub struct MemoryStore {
    shared: Arc<Shared>,
    /// Durable subscriptions' positions, kept as long as the store.
    durable: DurableCursors,
}

impl Default for MemoryStore {
    fn default() -> MemoryStore {
        let shared = Arc::new(Shared::default());
        let weak = Arc::downgrade(&shared);
        let cursors = MemoryCursors::new(move || match weak.upgrade() {
            Some(s) if !s.hub.is_closed() => Ok(s.state.lock().events.len() as u64),
            _ => Err(Error::Closed),
        });
        MemoryStore {
            shared,
            durable: DurableCursors::new(Arc::new(cursors)),
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    hub: Hub,
}

impl Drop for MemoryStore {
    fn drop(&mut self) {
        self.shared.hub.close();
    }
}

impl SubscriptionFeed for Shared {
    fn hub(&self) -> &Hub {
        &self.hub
    }

    fn head(&self) -> u64 {
        self.state.lock().events.len() as u64
    }

    /// Like the engine's: about `max_events` matching events, never
    /// splitting an append, starting at the append that holds `after + 1`
    /// (found by a binary search, as the appends are in position order).
    fn fetch(
        &self,
        query: &Query,
        after: u64,
        head: u64,
        max_events: usize,
        out: &mut VecDeque<Vec<RecordedEvent>>,
    ) -> Result<u64> {
        let state = self.state.lock();
        let start = state.batches.partition_point(|&(_, last)| last <= after);
        let mut taken = 0;
        for &(first, last) in &state.batches[start..] {
            if first > head {
                break;
            }
            let last = last.min(head);
            let batch: Vec<RecordedEvent> = state.events
                [first.max(after + 1) as usize - 1..last as usize]
                .iter()
                .filter(|e| query.matches(&e.event_type, &e.tags))
                .filter(|e| !state.removed.contains(&e.position))
                .cloned()
                .collect();
            taken += batch.len();
            if !batch.is_empty() {
                out.push_back(batch);
            }
            if taken >= max_events && last < head {
                return Ok(last);
            }
        }
        Ok(head)
    }
}

#[derive(Debug, Default)]
struct State {
    events: Vec<RecordedEvent>,
    /// (first, last) of every committed batch.
    batches: Vec<(u64, u64)>,
    /// The timestamp of the last batch: a counter, since the reference has
    /// no clock (events of one batch share it, later batches get larger
    /// ones, which is all the contract promises).
    tick: u64,
    /// Snapshots and tracking info.
    saved: Saved,
    /// Every lifecycle operation, oldest first.
    audit: Vec<crate::lifecycle::AuditEntry>,
    /// The positions of the events redacted.
    redacted: std::collections::BTreeSet<u64>,
    /// How many tags were added to each event after it was appended.
    added: HashMap<u64, usize>,
    /// The positions of the events removed.
    removed: std::collections::BTreeSet<u64>,
    /// The retention rules in force.
    rules: Vec<crate::removal::RetentionRule>,
}

impl MemoryStore {
    fn remove_from_stream(
        &self,
        stream: &str,
        before: Option<u64>,
    ) -> Result<crate::removal::Removed> {
        crate::event::check_stream_name(stream)?;
        let mut state = self.shared.state.lock();
        let positions: Vec<u64> = state
            .events
            .iter()
            .filter(|e| e.stream.as_deref() == Some(stream))
            .filter(|e| before.is_none_or(|b| e.revision.is_some_and(|r| r < b)))
            .map(|e| e.position)
            .filter(|p| !state.removed.contains(p))
            .collect();
        crate::lifecycle::check_targeted(positions.len())?;
        let removal = crate::removal::Removal::Stream {
            stream: stream.to_owned(),
            before,
        };
        Ok(state.commit_removal(removal, &positions))
    }
}

impl State {
    /// Removes the events at `positions` (those not removed yet) and
    /// records it.
    fn commit_removal(
        &mut self,
        removal: crate::removal::Removal,
        positions: &[u64],
    ) -> crate::removal::Removed {
        let (removed, result) =
            crate::removal::plan_remove(positions, |p| self.removed.contains(&p));
        self.removed.extend(removed);
        self.record(crate::lifecycle::Operation::Remove { removal, result });
        result
    }

    /// Adds an operation to the audit trail.
    fn record(&mut self, operation: crate::lifecycle::Operation) {
        let entry = crate::lifecycle::AuditEntry {
            sequence: self.audit.len() as u64 + 1,
            timestamp_micros: self.tick,
            head: self.events.len() as u64,
            operation,
        };
        self.audit.push(entry);
    }

    /// The events not removed, in order.
    fn present(&self) -> impl DoubleEndedIterator<Item = &RecordedEvent> {
        self.events
            .iter()
            .filter(|e| !self.removed.contains(&e.position))
    }

    /// The positions a lifecycle operation's target names now, ascending
    /// (removed events left out).
    fn resolve(&self, target: &crate::lifecycle::Target) -> Result<Vec<u64>> {
        use crate::lifecycle::{self as lc, Target};
        match target {
            Target::Positions(p) => {
                let mut positions = lc::check_positions(p, self.events.len() as u64)?;
                positions.retain(|p| !self.removed.contains(p));
                Ok(positions)
            }
            Target::Query(q) => {
                let matching: Vec<u64> = self
                    .present()
                    .filter(|e| q.matches(&e.event_type, &e.tags))
                    .map(|e| e.position)
                    .collect();
                lc::check_targeted(matching.len())?;
                Ok(matching)
            }
        }
    }
}

/// Snapshots and tracking info, as the `EventStore` docs define them.
#[derive(Debug)]
struct Saved {
    /// Every key's snapshots by position.
    snapshots: HashMap<String, BTreeMap<u64, Vec<u8>>>,
    /// How many snapshots a save keeps per key (0: all).
    kept: usize,
    /// Every tracking source's stored position.
    tracking: HashMap<String, u64>,
}

impl Default for Saved {
    fn default() -> Saved {
        Saved {
            snapshots: HashMap::new(),
            kept: crate::snapshots::DEFAULT_KEPT,
            tracking: HashMap::new(),
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Sets how many snapshots a save keeps per key (default 3; 0 keeps
    /// all), as [`Options::snapshots_kept`](crate::Options::snapshots_kept)
    /// does for the engine.
    pub fn with_snapshots_kept(self, kept: usize) -> MemoryStore {
        self.shared.state.lock().saved.kept = kept;
        self
    }

    /// Every committed event, oldest first.
    pub fn events(&self) -> Vec<RecordedEvent> {
        self.shared.state.lock().events.clone()
    }
}

impl State {
    /// Whether `stored` is `new` as it was appended: the tags added to it
    /// since are not compared, nor, once it was redacted, its data and
    /// metadata (they are gone).
    fn is_as_appended(&self, stored: &RecordedEvent, new: &NewEvent) -> bool {
        let added = self.added.get(&stored.position).copied().unwrap_or(0);
        let own = &stored.tags[..stored.tags.len() - added];
        let redacted =
            self.redacted.contains(&stored.position) || self.removed.contains(&stored.position);
        stored.event_type == new.event_type
            && own == new.tags.as_slice()
            && (redacted || (stored.data == new.data && stored.metadata == new.metadata))
            && stored.id == new.id
            && stored.stream == new.stream
    }

    fn revision(&self, stream: &str) -> Option<u64> {
        self.events
            .iter()
            .rev()
            .find(|e| e.stream.as_deref() == Some(stream))
            .and_then(|e| e.revision)
    }

    /// The idempotency rule; `Ok(Some(_))` is a retry of a committed batch.
    fn check_ids(&self, events: &[NewEvent]) -> Result<Option<Appended>> {
        let ids: Vec<u128> = events.iter().filter_map(|e| e.id).collect();
        if ids.is_empty() {
            return Ok(None);
        }
        let found: Vec<Option<&RecordedEvent>> = events
            .iter()
            .map(|e| {
                e.id.and_then(|id| self.events.iter().find(|s| s.id == Some(id)))
            })
            .collect();
        let Some(first_found) = found.iter().flatten().next() else {
            return Ok(None);
        };
        let first = found[0].map(|e| e.position);
        let whole_batch = first.and_then(|first| {
            let last = first + events.len() as u64 - 1;
            self.batches
                .contains(&(first, last))
                .then_some((first, last))
        });
        if let Some((first, last)) = whole_batch {
            let identical = events
                .iter()
                .zip(&found)
                .enumerate()
                .all(|(i, (new, stored))| {
                    stored.is_some_and(|s| {
                        s.position == first + i as u64 && self.is_as_appended(s, new)
                    })
                });
            if identical {
                return Ok(Some(Appended { first, last }));
            }
        }
        Err(Error::DuplicateEventId {
            id: first_found.id.unwrap_or_default(),
        })
    }
}

impl EventStore for MemoryStore {
    fn append_with(&self, events: Vec<NewEvent>, options: AppendOptions) -> Result<Appended> {
        crate::validation::check_append(&events, &options)?;
        let mut state = self.shared.state.lock();
        crate::validation::check_after(&options, state.events.len() as u64)?;
        if let Some(done) = state.check_ids(&events)? {
            return Ok(done);
        }
        for (stream, expected) in &options.expected {
            let actual = state.revision(stream);
            if !expected.accepts(actual) {
                return Err(Error::WrongExpectedRevision {
                    stream: stream.clone(),
                    expected: *expected,
                    actual,
                });
            }
        }
        if let Some(c) = &options.condition {
            let after = c.after.unwrap_or(0);
            if let Some(e) = state.present().find(|e| {
                e.position > after && c.fail_if_events_match.matches(&e.event_type, &e.tags)
            }) {
                return Err(Error::ConditionFailed {
                    position: e.position,
                });
            }
        }
        if let Some((source, position)) = &options.tracking {
            let stored = state.saved.tracking.get(source).copied();
            crate::validation::check_tracking(source, *position, stored)?;
        }
        if let Some((source, position)) = options.tracking {
            state.saved.tracking.insert(source, position);
        }
        let first = state.events.len() as u64 + 1;
        state.tick += 1;
        let tick = state.tick;
        for (i, e) in events.into_iter().enumerate() {
            let revision = e
                .stream
                .as_deref()
                .map(|s| state.revision(s).map_or(0, |r| r + 1));
            state
                .events
                .push(e.into_recorded(first + i as u64, revision, tick));
        }
        let last = state.events.len() as u64;
        state.batches.push((first, last));
        // The keys the hub wakes subscribers by, as the store's index has them.
        let keys: Vec<Key> = state.events[first as usize - 1..]
            .iter()
            .flat_map(|e| {
                std::iter::once(Key::event_type(&e.event_type))
                    .chain(e.tags.iter().map(|t| Key::tag(t)))
            })
            .collect();
        drop(state);
        self.shared.hub.publish(&keys);
        Ok(Appended { first, last })
    }

    fn read<'a>(&'a self, query: &Query, options: ReadOptions) -> Result<EventIter<'a>> {
        query.validate()?;
        let state = self.shared.state.lock();
        let matching = state
            .present()
            .filter(|e| query.matches(&e.event_type, &e.tags));
        let limit = options.limit.unwrap_or(usize::MAX);
        let out: Vec<RecordedEvent> = match options.direction {
            Direction::Forwards => {
                let after = options.start.unwrap_or(0);
                matching
                    .filter(|e| e.position > after)
                    .take(limit)
                    .cloned()
                    .collect()
            }
            Direction::Backwards => {
                let before = options.start.unwrap_or(u64::MAX);
                matching
                    .rev()
                    .filter(|e| e.position < before)
                    .take(limit)
                    .cloned()
                    .collect()
            }
        };
        Ok(Box::new(out.into_iter().map(Ok)))
    }

    fn head(&self) -> Result<u64> {
        Ok(self.shared.state.lock().events.len() as u64)
    }

    fn stream_revision(&self, stream: &str) -> Result<Option<u64>> {
        crate::event::check_stream_name(stream)?;
        Ok(self.shared.state.lock().revision(stream))
    }

    fn read_stream<'a>(&'a self, stream: &str, options: ReadOptions) -> Result<EventIter<'a>> {
        crate::event::check_stream_name(stream)?;
        let Some((lo, hi)) = options.revision_bounds() else {
            return Ok(Box::new(std::iter::empty()));
        };
        let state = self.shared.state.lock();
        let mut events: Vec<RecordedEvent> = state
            .present()
            .filter(|e| {
                e.stream.as_deref() == Some(stream)
                    && e.revision.is_some_and(|r| (lo..=hi).contains(&r))
            })
            .cloned()
            .collect();
        if options.direction == crate::Direction::Backwards {
            events.reverse();
        }
        events.truncate(options.limit.unwrap_or(usize::MAX));
        Ok(Box::new(events.into_iter().map(Ok)))
    }

    fn position_at(&self, timestamp_micros: u64) -> Result<u64> {
        let state = self.shared.state.lock();
        Ok(state
            .events
            .iter()
            .rev()
            .find(|e| e.timestamp_micros <= timestamp_micros)
            .map_or(0, |e| e.position))
    }

    fn event_by_id(&self, id: u128) -> Result<Option<RecordedEvent>> {
        let state = self.shared.state.lock();
        Ok(state.present().find(|e| e.id == Some(id)).cloned())
    }

    // Listings: a scan of every event, then the shared paging rule.
    fn list(
        &self,
        what: crate::Listing,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<crate::Listed>> {
        crate::listing::check_listing(prefix, after, limit)?;
        let state = self.shared.state.lock();
        let counts = crate::listing::count_events(state.present(), what);
        Ok(crate::listing::page(&counts, prefix, after, limit))
    }

    // --- Lifecycle: the contract's steps in order, over the vector ---

    fn add_tags(
        &self,
        target: &crate::lifecycle::Target,
        tags: &[String],
    ) -> Result<crate::lifecycle::TagsAdded> {
        use crate::lifecycle as lc;
        let tags = lc::check_add_tags(target, tags)?;
        let mut state = self.shared.state.lock();
        let head = state.events.len() as u64;
        let positions = state.resolve(target)?;
        let (gained, result) = lc::plan_tags(&positions, &tags, |p| {
            Ok(state.events[(p - 1) as usize].tags.clone())
        })?;
        for (tag, list) in tags.iter().zip(&gained) {
            for &p in list {
                state.events[(p - 1) as usize].tags.push(tag.clone());
                *state.added.entry(p).or_default() += 1;
            }
        }
        let entry = lc::AuditEntry {
            sequence: state.audit.len() as u64 + 1,
            timestamp_micros: state.tick,
            head,
            operation: lc::Operation::AddTags {
                tags,
                target: target.clone(),
                result,
            },
        };
        state.audit.push(entry);
        Ok(result)
    }

    fn redact(&self, target: &crate::lifecycle::Target) -> Result<crate::lifecycle::Redacted> {
        use crate::lifecycle as lc;
        lc::check_target(target)?;
        let mut state = self.shared.state.lock();
        let head = state.events.len() as u64;
        let positions = state.resolve(target)?;
        let (erased, result) = lc::plan_redact(&positions, |p| Ok(state.redacted.contains(&p)))?;
        let mut revisions = Vec::with_capacity(erased.len());
        for p in erased {
            let e = &mut state.events[(p - 1) as usize];
            e.data = bytes::Bytes::new();
            e.metadata = bytes::Bytes::new();
            revisions.push((p, e.revision));
            state.redacted.insert(p);
        }
        if let Some(from) = lc::snapshots_erased_from(revisions) {
            for snapshots in state.saved.snapshots.values_mut() {
                snapshots.split_off(&from);
            }
            state.saved.snapshots.retain(|_, s| !s.is_empty());
        }
        let entry = lc::AuditEntry {
            sequence: state.audit.len() as u64 + 1,
            timestamp_micros: state.tick,
            head,
            operation: lc::Operation::Redact {
                target: target.clone(),
                result,
            },
        };
        state.audit.push(entry);
        Ok(result)
    }

    fn audit_log(&self, after: u64, limit: usize) -> Result<Vec<crate::lifecycle::AuditEntry>> {
        crate::lifecycle::check_audit_page(limit)?;
        let state = self.shared.state.lock();
        Ok(state
            .audit
            .iter()
            .filter(|e| e.sequence > after)
            .take(limit)
            .cloned()
            .collect())
    }

    fn remove(&self, target: &crate::lifecycle::Target) -> Result<crate::removal::Removed> {
        crate::lifecycle::check_target(target)?;
        let mut state = self.shared.state.lock();
        let positions = state.resolve(target)?;
        let removal = crate::removal::Removal::Target(target.clone());
        Ok(state.commit_removal(removal, &positions))
    }

    fn delete_stream(&self, stream: &str) -> Result<crate::removal::Removed> {
        self.remove_from_stream(stream, None)
    }

    fn truncate_stream(&self, stream: &str, before: u64) -> Result<crate::removal::Removed> {
        self.remove_from_stream(stream, Some(before))
    }

    fn set_retention(&self, rule: &crate::removal::RetentionRule) -> Result<()> {
        crate::removal::check_rule(rule)?;
        let mut state = self.shared.state.lock();
        state.rules = crate::removal::with_rule(&state.rules, rule)?;
        let operation = crate::lifecycle::Operation::SetRetention { rule: rule.clone() };
        state.record(operation);
        Ok(())
    }

    fn retention_rules(&self) -> Result<Vec<crate::removal::RetentionRule>> {
        Ok(self.shared.state.lock().rules.clone())
    }

    /// The reference's clock is its batch counter: an age is counted in
    /// batches committed since.
    fn enforce_retention(&self) -> Result<crate::removal::Removed> {
        use crate::removal::{self as rm, RetentionScope};
        let mut state = self.shared.state.lock();
        let mut total = rm::Removed::default();
        for rule in state.rules.clone() {
            let scope: Vec<u64> = state
                .present()
                .filter(|e| match &rule.scope {
                    RetentionScope::Stream(s) => e.stream.as_deref() == Some(s.as_str()),
                    RetentionScope::Query(q) => q.matches(&e.event_type, &e.tags),
                })
                .map(|e| e.position)
                .collect();
            let too_old = match rm::too_old_at_or_before(&rule, state.tick) {
                Some(t) => state
                    .events
                    .iter()
                    .rev()
                    .find(|e| e.timestamp_micros <= t)
                    .map_or(0, |e| e.position),
                None => 0,
            };
            let n = rm::removed_prefix(&rule, &scope, too_old);
            if n > 0 {
                total += state.commit_removal(rm::Removal::Retention(rule), &scope[..n]);
            }
        }
        Ok(total)
    }

    fn subscribe(&self, query: &Query, after: u64) -> Result<Subscription> {
        query.validate()?;
        let head = self.head()?;
        if after > head {
            return Err(Error::invalid(format!(
                "cannot subscribe after position {after}: the head is {head}"
            )));
        }
        Ok(Subscription::new(self.shared.clone(), query.clone(), after))
    }

    // --- Snapshots and tracking info ---

    fn save_snapshot(&self, key: &str, position: u64, state: &[u8]) -> Result<()> {
        let mut guard = self.shared.state.lock();
        crate::validation::check_snapshot_save(guard.events.len() as u64, key, position, state)?;
        let kept = guard.saved.kept;
        let snapshots = guard.saved.snapshots.entry(key.to_owned()).or_default();
        snapshots.insert(position, state.to_vec());
        let positions: Vec<u64> = snapshots.keys().copied().collect();
        for old in crate::validation::snapshots_past_retention(&positions, kept) {
            snapshots.remove(old);
        }
        Ok(())
    }

    fn load_snapshot(&self, key: &str, at_or_before: u64) -> Result<Option<Snapshot>> {
        crate::validation::check_snapshot_key(key)?;
        let state = self.shared.state.lock();
        Ok(state.saved.snapshots.get(key).and_then(|snapshots| {
            snapshots
                .range(..=at_or_before)
                .next_back()
                .map(|(&position, state)| Snapshot {
                    position,
                    state: state.clone(),
                })
        }))
    }

    fn list_snapshots(&self, key: &str) -> Result<Vec<u64>> {
        crate::validation::check_snapshot_key(key)?;
        let state = self.shared.state.lock();
        Ok(state
            .saved
            .snapshots
            .get(key)
            .map_or_else(Vec::new, |s| s.keys().copied().collect()))
    }

    fn delete_snapshot(&self, key: &str, position: u64) -> Result<bool> {
        crate::validation::check_snapshot_key(key)?;
        let mut state = self.shared.state.lock();
        Ok(state
            .saved
            .snapshots
            .get_mut(key)
            .is_some_and(|s| s.remove(&position).is_some()))
    }

    fn tracking_info(&self, source: &str) -> Result<Option<u64>> {
        crate::validation::check_tracking_source(source)?;
        Ok(self.shared.state.lock().saved.tracking.get(source).copied())
    }

    // ---- Durable subscriptions ----

    fn subscribe_durable(&self, name: &str, query: &Query) -> Result<DurableSubscription> {
        self.durable
            .subscribe(name, |acked| self.subscribe(query, acked))
    }

    fn durable_subscriptions(&self) -> Result<Vec<DurableSubscriptionState>> {
        self.durable.list()
    }

    fn delete_durable_subscription(&self, name: &str) -> Result<bool> {
        self.durable.delete(name)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::MemoryStore;
    use crate::api::EventStore;
    use crate::event::NewEvent;
    use crate::query::Query;
    use crate::subscription::SubscriptionFeed;

    fn positions(out: &VecDeque<Vec<crate::RecordedEvent>>) -> Vec<Vec<u64>> {
        out.iter()
            .map(|b| b.iter().map(|e| e.position).collect())
            .collect()
    }

    /// A fetch reads about `max_events`, finishing the append it is in,
    /// and starts at the append holding the position after `after`.
    #[test]
    fn a_fetch_stops_at_the_append_that_reaches_max_events() {
        let store = MemoryStore::default();
        for i in 0..10 {
            let batch = (0..3)
                .map(|j| NewEvent::new("A", format!("{i}.{j}")))
                .collect();
            store.append(batch).expect("append");
        }
        let feed = &store.shared;
        let mut out = VecDeque::new();
        assert_eq!(
            feed.fetch(&Query::all(), 0, 30, 4, &mut out)
                .expect("fetch"),
            6
        );
        assert_eq!(positions(&out), vec![vec![1, 2, 3], vec![4, 5, 6]]);
        out.clear();
        assert_eq!(
            feed.fetch(&Query::all(), 4, 30, 4, &mut out)
                .expect("fetch"),
            9
        );
        assert_eq!(positions(&out), vec![vec![5, 6], vec![7, 8, 9]]);
        out.clear();
        assert_eq!(
            feed.fetch(&Query::all(), 27, 30, 4, &mut out)
                .expect("fetch"),
            30
        );
        assert_eq!(positions(&out), vec![vec![28, 29, 30]]);
        out.clear();
        // Up to `head` only, and everything when it is within the limit.
        assert_eq!(
            feed.fetch(&Query::all(), 20, 24, 100, &mut out)
                .expect("fetch"),
            24
        );
        assert_eq!(positions(&out), vec![vec![21], vec![22, 23, 24]]);
    }
}
