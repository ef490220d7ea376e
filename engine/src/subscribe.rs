//! Subscriptions on a [`Store`]: the feed that reads them from the log and
//! the index, and the durable ones over the store's cursor files (their
//! rules are `durable`'s, the same for every store; the files `cursors`').

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use gesta_index::{Direction, Positions, QuerySpec};
use gesta_wal::{Place, WalReader};

use crate::ahead::Ahead;
use crate::amended::Amendments;
use crate::durable::{DurableSubscription, DurableSubscriptionState};
use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::notify::Hub;
use crate::query::Query;
use crate::query::query_spec;
use crate::read::{Lookup, decode_scanned};
use crate::shared::Shared;
use crate::store::{Inner, Store};
use crate::subscription::{FETCH_BYTES, Subscription, SubscriptionFeed, fetch_bytes};

/// A store's log and index as a subscription feed. It holds the store
/// weakly: a subscription does not keep a dropped store open.
struct StoreFeed {
    inner: Weak<Inner>,
    shared: Arc<Shared>,
    hub: Arc<Hub>,
    spec: QuerySpec,
}

impl SubscriptionFeed for StoreFeed {
    fn hub(&self) -> &Hub {
        &self.hub
    }

    fn head(&self) -> u64 {
        self.shared.head.load(Ordering::Acquire)
    }

    fn fetch(
        &self,
        query: &Query,
        after: u64,
        head: u64,
        max_events: usize,
        out: &mut VecDeque<Vec<RecordedEvent>>,
    ) -> Result<u64> {
        let inner = self.inner.upgrade().ok_or(Error::Closed)?;
        if query.is_all() {
            return fetch_scan(
                &inner.reader,
                inner.indexes.amendments(),
                after,
                head,
                (max_events, FETCH_BYTES),
                out,
            );
        }
        let view = inner.indexes.view().within(after.saturating_add(1), head);
        let cursor = view.evaluate(&self.spec);
        let positions = Ahead::new(
            inner.reader.clone(),
            Positions::new(cursor, after + 1, head, Direction::Forwards),
        );
        let lookup = Lookup::new(inner.reader.clone(), inner.indexes.amendments().clone());
        fetch_positions(lookup, positions, head, (max_events, FETCH_BYTES), out)
    }
}

/// Every event of the records in `after+1..=head`, one batch per record,
/// until `max` (events, bytes) is reached at the end of one.
fn fetch_scan(
    reader: &WalReader,
    added: &Amendments,
    after: u64,
    head: u64,
    max: (usize, usize),
    out: &mut VecDeque<Vec<RecordedEvent>>,
) -> Result<u64> {
    let (mut taken, mut bytes) = (0, 0);
    for record in reader.forward(after + 1, head) {
        let record = record?;
        let mut events = Vec::with_capacity(record.meta.count as usize);
        decode_scanned(reader, added, &record, &mut events)?;
        events.retain(|e| e.position > after && e.position <= head);
        taken += events.len();
        bytes += events.iter().map(fetch_bytes).sum::<usize>();
        let last = record.meta.last_position().min(head);
        if !events.is_empty() {
            out.push_back(events);
        }
        if (taken >= max.0 || bytes >= max.1) && last < head {
            return Ok(last);
        }
    }
    Ok(head)
}

/// The events at `positions`, grouped by the record (append) holding them,
/// until `max` (events, bytes) is reached at the end of one.
fn fetch_positions(
    mut lookup: Lookup,
    positions: impl Iterator<Item = (u64, Option<Place>)>,
    head: u64,
    max: (usize, usize),
    out: &mut VecDeque<Vec<RecordedEvent>>,
) -> Result<u64> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    for (taken, (position, place)) in positions.enumerate() {
        if !lookup.in_last(position) {
            if !batch.is_empty() {
                out.push_back(std::mem::take(&mut batch));
            }
            if taken >= max.0 || bytes >= max.1 {
                return Ok(position - 1);
            }
        }
        let event = lookup.event_at(position, place)?;
        bytes += fetch_bytes(&event);
        batch.push(event);
    }
    if !batch.is_empty() {
        out.push_back(batch);
    }
    Ok(head)
}

impl Store {
    /// Every committed event matching `query` with a position after
    /// `after`, in order: those already in the log first, then each append
    /// as it commits, with no gap and no duplicate; see [`Subscription`].
    pub fn subscribe(&self, query: &Query, after: u64) -> Result<Subscription> {
        query.validate()?;
        let head = self.head();
        if after > head {
            return Err(Error::invalid(format!(
                "cannot subscribe after position {after}: the head is {head}"
            )));
        }
        let feed = StoreFeed {
            inner: Arc::downgrade(&self.inner),
            shared: self.inner.shared.clone(),
            hub: self.inner.hub.clone(),
            spec: query_spec(query),
        };
        Ok(Subscription::new(Arc::new(feed), query.clone(), after))
    }

    /// A subscription that resumes after the position last acknowledged
    /// under `name` (from the start if there is none); see
    /// [`DurableSubscription`]. One subscription per name may be open.
    /// A read replica refuses it ([`Error::Replica`]): the cursors are the
    /// writer's, and an acknowledgement is a write.
    pub fn subscribe_durable(&self, name: &str, query: &Query) -> Result<DurableSubscription> {
        self.writable()?;
        self.inner
            .durable
            .subscribe(name, |acked| self.subscribe(query, acked))
    }

    /// Every durable subscription the store keeps, with the position it
    /// acknowledged last, by name.
    pub fn durable_subscriptions(&self) -> Result<Vec<DurableSubscriptionState>> {
        self.inner.durable.list()
    }

    /// Forgets a durable subscription's acknowledged position (the next
    /// subscription under that name starts from the beginning); false if
    /// there was none. An open subscription cannot be forgotten.
    pub fn delete_durable_subscription(&self, name: &str) -> Result<bool> {
        self.writable()?;
        self.inner.durable.delete(name)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::event::NewEvent;
    use crate::query::{Query, QueryItem};
    use crate::store::Store;

    /// A fetch stops at the end of the append that takes it to its byte
    /// budget, by a scan (every event) and by the index (a query) alike,
    /// and the next fetch goes on from there: nothing skipped, nothing
    /// repeated, no append split.
    #[test]
    fn a_fetch_stops_at_the_append_that_reaches_its_bytes() {
        use std::collections::VecDeque;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..6u8 {
            let data = vec![b'a' + i; 600];
            store
                .append(vec![
                    NewEvent::new("A", data.clone()).tag("t"),
                    NewEvent::new("A", data).tag("t"),
                ])
                .unwrap();
        }
        let head = store.head();
        let inner = &store.inner;
        let fetched = |fetch: &dyn Fn(u64, &mut VecDeque<Vec<crate::RecordedEvent>>) -> u64| {
            let (mut after, mut rounds, mut seen) = (0, Vec::new(), Vec::new());
            while after < head {
                let mut out = VecDeque::new();
                after = fetch(after, &mut out);
                rounds.push(out.len());
                for batch in out {
                    assert_eq!(batch.len(), 2, "an append is never split");
                    seen.extend(batch.iter().map(|e| e.position));
                }
            }
            assert_eq!(seen, (1..=head).collect::<Vec<_>>());
            rounds
        };
        // 2,000 bytes: the second append (2,400 bytes in all) reaches it.
        let by_scan = fetched(&|after, out| {
            super::fetch_scan(
                &inner.reader,
                inner.indexes.amendments(),
                after,
                head,
                (1024, 2_000),
                out,
            )
            .unwrap()
        });
        assert_eq!(by_scan, [2, 2, 2]);
        let spec = crate::query::query_spec(&Query::tag("t"));
        let by_index = fetched(&|after, out| {
            let view = inner.indexes.view().within(after + 1, head);
            let positions = crate::ahead::Ahead::new(
                inner.reader.clone(),
                gesta_index::Positions::new(
                    view.evaluate(&spec),
                    after + 1,
                    head,
                    gesta_index::Direction::Forwards,
                ),
            );
            let lookup =
                crate::read::Lookup::new(inner.reader.clone(), inner.indexes.amendments().clone());
            super::fetch_positions(lookup, positions, head, (1024, 2_000), out).unwrap()
        });
        assert_eq!(by_index, [2, 2, 2]);
    }

    /// Subscribers waiting for type A (or a tag only A events carry) sleep
    /// through a thousand commits of type B, and still get the A appended
    /// after them at once.
    #[test]
    fn commits_of_other_types_do_not_wake_subscribers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let hub = store.inner.hub.clone();
        let queries = [
            Query::event_type("A"),
            Query::event_type("A").or(QueryItem::new().event_type("C")),
            Query::item(QueryItem::new().tags(["ta", "tb"])),
        ];
        std::thread::scope(|scope| {
            let mut subscribers = Vec::new();
            for query in &queries {
                let mut sub = store.subscribe(query, 0).unwrap();
                subscribers.push(scope.spawn(move || {
                    let batch = sub.recv_timeout(Duration::from_secs(20)).unwrap();
                    (batch, gesta_wal::time::now())
                }));
            }
            let deadline = gesta_wal::time::now() + Duration::from_secs(10);
            while hub.waiting() < queries.len() {
                assert!(
                    gesta_wal::time::now() < deadline,
                    "subscribers never waited"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            for i in 0..1_000 {
                let event = NewEvent::new("B", format!("b{i}")).tags(["tb"]);
                store.append(vec![event]).unwrap();
            }
            assert_eq!(hub.woken(), 0, "a commit of B woke a subscriber");
            assert_eq!(hub.waiting(), queries.len());
            let a = NewEvent::new("A", "a").tags(["ta", "tb"]);
            let appended = store.append(vec![a]).unwrap();
            let sent = gesta_wal::time::now();
            for s in subscribers {
                let (batch, at) = s.join().unwrap();
                let batch = batch.expect("the A event arrived");
                assert_eq!(batch.len(), 1);
                assert_eq!(batch[0].position, appended.first);
                assert!(
                    at.saturating_duration_since(sent) < Duration::from_secs(1),
                    "the A event took {:?}",
                    at - sent
                );
            }
            assert_eq!(hub.woken(), queries.len());
        });
    }
}
