//! [`Subscription`]: every event matching a query after a position, first
//! from the log (catch-up) and then live as appends commit.
//!
//! A subscription does not get events pushed to it. It reads them itself —
//! from the log and the index, exactly as [`Store::read`](crate::Store::read)
//! does — up to the head it last saw, and when it has read everything it
//! waits on the commit hub (see `notify`) for the head to move. So:
//!
//! - There is no switch between catch-up and live, hence no gap and no
//!   duplicate at it: both are the same read from an exclusive position,
//!   bounded by a head that only ever covers committed events.
//! - A slow subscriber holds no buffer the committer fills: it falls behind
//!   in the log, which is where it reads from anyway. Writers never wait for
//!   subscribers, and a commit costs the committer one atomic load when no
//!   subscriber is idle; otherwise a look-up per index key of the commit and
//!   a wake-up for each idle subscriber whose query those keys could match
//!   (see `notify`) — the others sleep on.
//! - Its memory is bounded: one fetch reads at most a fixed number of
//!   events (plus the rest of the append it is in), however far behind it
//!   is; on the engine, also at most [`FETCH_BYTES`] of their data and
//!   metadata (plus the rest of the append).
//!
//! Events are delivered in batches that are exactly the matching events of
//! one append, in position order.
//!
//! Any store can feed subscriptions: it implements [`SubscriptionFeed`]
//! (its head, and a fetch of the matching events after a position, grouped
//! by append) and owns a [`CommitHub`] it notifies after each commit; then
//! [`Subscription::from_feed`] gives the same subscriptions, with the same
//! guarantees, as the engine's. The engine's own store and the in-memory
//! reference use exactly this path.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::notify::{CommitHub, Interest, Waiter, Wake};
use crate::query::Query;

/// How many events one fetch reads at most (a fetch always finishes the
/// append it is in, so a batch is never split).
pub const FETCH_EVENTS: usize = 1024;

/// How many bytes of events (data and metadata) one fetch reads before it
/// stops at the end of an append: a thousand events of 16 MiB would
/// otherwise be held at once. With the append it finishes (at most the
/// 64 MiB a batch may take), a fetch holds about twice this at most.
pub const FETCH_BYTES: usize = 64 << 20;

/// What an event holds of a fetch's byte budget ([`FETCH_BYTES`]): its
/// data and metadata.
pub fn fetch_bytes(e: &RecordedEvent) -> usize {
    e.data.len() + e.metadata.len()
}

/// What a feed's read hands each row to (see [`fetch_by_append`]): it
/// takes the event with its append's last position, and says whether to
/// go on.
pub type TakeRow<'a> = &'a mut dyn FnMut(RecordedEvent, u64) -> ControlFlow<()>;

/// [`SubscriptionFeed::fetch`] for a store whose rows know the last
/// position of the append each event belongs to (the SQL stores keep a
/// `batches` table): `read(after, upto, limit, take)` hands `take` the
/// events in `after+1..=upto`, at most `limit` of them, in position order,
/// each with its append's last position, and stops when `take` breaks.
/// Takes at most `max_events` (at least one) or [`FETCH_BYTES`] of events
/// ([`fetch_bytes`] each), then the rest of the append the last one is in,
/// so that no append is split; pushes one entry per append to `out`;
/// returns the position up to which it looked.
pub fn fetch_by_append(
    after: u64,
    head: u64,
    max_events: usize,
    out: &mut VecDeque<Vec<RecordedEvent>>,
    mut read: impl FnMut(u64, u64, usize, TakeRow<'_>) -> Result<()>,
) -> Result<u64> {
    let max_events = max_events.max(1);
    let (mut events, mut bytes) = (Vec::new(), 0);
    read(after, head, max_events, &mut |event, end| {
        bytes += fetch_bytes(&event);
        events.push((event, end));
        match events.len() >= max_events || bytes >= FETCH_BYTES {
            true => ControlFlow::Break(()),
            false => ControlFlow::Continue(()),
        }
    })?;
    let mut looked = head;
    let cut = events.len() >= max_events || bytes >= FETCH_BYTES;
    if cut && let Some(&(ref event, end)) = events.last() {
        // Finish the append the last event is in (a batch takes at most
        // the 64 MiB an append may carry).
        let (last, end) = (event.position, end.min(head));
        if end > last {
            read(last, end, usize::MAX, &mut |event, end| {
                events.push((event, end));
                ControlFlow::Continue(())
            })?;
        }
        looked = end;
    }
    let mut batch_end = 0;
    for (event, end) in events {
        if event.position > batch_end {
            batch_end = end;
            out.push_back(Vec::new());
        }
        if let Some(batch) = out.back_mut() {
            batch.push(event);
        }
    }
    Ok(looked)
}

/// Where a [`Subscription`] reads from: a store's committed events, and the
/// hub that says when there are more. The engine's store reads its log and
/// index, the reference store its vector, the SQL stores their tables.
///
/// What an implementation must keep, for the subscription's guarantees
/// (no gap, no duplicate, batches kept, only committed events) to hold:
///
/// - [`head`](SubscriptionFeed::head) never decreases and never covers a
///   position that is not committed, and every position at or below it is
///   readable by [`fetch`](SubscriptionFeed::fetch). It is called with the
///   hub's lock held, so it must be cheap and must not block (an atomic
///   load, typically).
/// - After the head moved, the store calls [`CommitHub::notify`] (or
///   [`CommitHub::notify_all`]) — in that order: the hub's fences then
///   guarantee that a subscriber going to sleep either sees the new head
///   or is woken. A store that learns of commits late (by polling) only
///   delays its subscribers; one that never notifies leaves them asleep.
/// - When the store closes, it calls [`CommitHub::close`]; subscriptions
///   then end with [`Error::Closed`](crate::Error::Closed) once they have
///   delivered what `fetch` still returns up to the head.
pub trait SubscriptionFeed: Send + Sync {
    /// Wakes waiting subscribers when the head moves.
    fn hub(&self) -> &CommitHub;

    /// The last committed position (see the trait doc).
    fn head(&self) -> u64;

    /// Appends to `out` the events matching `query` in `after+1..=head`,
    /// one entry per append, each exactly that append's matching events in
    /// position order, and no empty entry; reads about `max_events` events
    /// at most but always finishes the append it is in; returns the
    /// position up to which it looked (`head` when it read everything; the
    /// last position of an append otherwise). An error ends the
    /// subscription with it.
    fn fetch(
        &self,
        query: &Query,
        after: u64,
        head: u64,
        max_events: usize,
        out: &mut VecDeque<Vec<RecordedEvent>>,
    ) -> Result<u64>;
}

/// A live feed of the events matching a query; see the module doc.
///
/// Use it as a blocking [`Iterator`] (each item is the matching events of
/// one append), with [`recv_timeout`](Subscription::recv_timeout), or —
/// after [`into_stream`](Subscription::into_stream) — as a
/// [`futures_core::Stream`] in async code. When the store closes, the
/// subscription delivers what was committed before, then yields
/// [`Error::Closed`] once and ends. Dropping it frees it.
pub struct Subscription {
    feed: Arc<dyn SubscriptionFeed>,
    query: Query,
    /// Everything up to here has been read from the feed.
    after: u64,
    /// The last position handed out (or skipped as not matching).
    delivered: u64,
    ready: VecDeque<Vec<RecordedEvent>>,
    ended: bool,
    /// Its place at the feed's hub, registered under the query's wake keys.
    waiter: Waiter,
    /// `delivered`, published at the feed's hub for the lag metric.
    position: Arc<AtomicU64>,
    /// What each event passes through as it is handed out (the
    /// `encryption` wrapper opens sealed events with it).
    #[cfg(feature = "encryption")]
    map: Option<MapEvent>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("query", &self.query)
            .field("position", &self.delivered)
            .field("ended", &self.ended)
            .finish()
    }
}

impl Subscription {
    /// A subscription to the events of `feed` matching `query` after
    /// position `after` — for stores outside the engine; see
    /// [`SubscriptionFeed`]. The caller has checked the query
    /// ([`validation::check_query`](crate::validation::check_query)) and
    /// that `after` is not beyond the head.
    pub fn from_feed(feed: Arc<dyn SubscriptionFeed>, query: Query, after: u64) -> Subscription {
        Subscription::new(feed, query, after)
    }

    pub(crate) fn new(feed: Arc<dyn SubscriptionFeed>, query: Query, after: u64) -> Subscription {
        Subscription {
            waiter: Waiter::new(Interest::of(&query)),
            position: feed.hub().track(after),
            feed,
            query,
            after,
            delivered: after,
            ready: VecDeque::new(),
            ended: false,
            #[cfg(feature = "encryption")]
            map: None,
        }
    }

    /// The position up to which this subscription has handed out every
    /// matching event: the last event delivered, or further when later
    /// positions did not match. Resuming after it misses nothing.
    pub fn checkpoint(&self) -> u64 {
        self.delivered
    }

    /// The query it follows.
    pub fn query(&self) -> &Query {
        &self.query
    }

    /// The next batch, waiting at most `timeout` for one; `Ok(None)` when
    /// the time ran out, [`Error::Closed`] once the store closed.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Vec<RecordedEvent>>> {
        self.recv_until(Some(gesta_wal::time::now() + timeout))
    }

    /// The next batch if one is committed already, without waiting.
    pub fn try_recv(&mut self) -> Result<Option<Vec<RecordedEvent>>> {
        self.recv_until(Some(gesta_wal::time::now()))
    }

    /// The next batch, waiting as long as it takes.
    pub fn recv(&mut self) -> Result<Vec<RecordedEvent>> {
        loop {
            if let Some(batch) = self.recv_until(None)? {
                return Ok(batch);
            }
        }
    }

    /// The next ready batch, passed through the map now, as it is handed
    /// out, not when it was fetched: a map that opens sealed events must
    /// see the keys as they are at delivery (a subject forgotten since the
    /// fetch reads as every read does then: without its data).
    fn take(&mut self) -> Result<Option<Vec<RecordedEvent>>> {
        #[cfg(feature = "encryption")]
        if let (Some(map), Some(front)) = (&self.map, self.ready.front_mut()) {
            map_batch(map, front)?;
        }
        Ok(self.pop())
    }

    fn pop(&mut self) -> Option<Vec<RecordedEvent>> {
        let batch = self.ready.pop_front()?;
        self.delivered = match (self.ready.is_empty(), batch.last()) {
            (true, _) => self.after,
            (false, Some(e)) => e.position,
            (false, None) => self.delivered,
        };
        self.position.store(self.delivered, Ordering::Relaxed);
        Some(batch)
    }

    /// Fills `ready` from what is committed; true if it holds a batch.
    fn fill(&mut self) -> Result<bool> {
        loop {
            if !self.ready.is_empty() {
                return Ok(true);
            }
            let head = self.feed.head();
            if head <= self.after {
                self.delivered = self.after;
                self.position.store(self.delivered, Ordering::Relaxed);
                return Ok(false);
            }
            self.after =
                self.feed
                    .fetch(&self.query, self.after, head, FETCH_EVENTS, &mut self.ready)?;
        }
    }

    fn end(&mut self, e: Error) -> Error {
        self.ended = true;
        self.ready.clear();
        e
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<Option<Vec<RecordedEvent>>> {
        if self.ended {
            return Err(Error::Closed);
        }
        loop {
            match self
                .fill()
                .and_then(|ready| if ready { self.take() } else { Ok(None) })
            {
                Ok(Some(batch)) => return Ok(Some(batch)),
                Ok(None) => {}
                Err(e) => return Err(self.end(e)),
            }
            let feed = self.feed.clone();
            match feed
                .hub()
                .wait(&self.waiter, self.after, || feed.head(), deadline)
            {
                Wake::Advanced => {}
                Wake::TimedOut => return Ok(None),
                Wake::Closed | Wake::Registered => return Err(self.end(Error::Closed)),
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.feed.hub().forget(&self.waiter);
    }
}

impl Iterator for Subscription {
    type Item = Result<Vec<RecordedEvent>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        Some(self.recv())
    }
}

impl Subscription {
    /// This subscription as a [`futures_core::Stream`] of batches, which
    /// waits without blocking an executor thread (any executor).
    pub fn into_stream(self) -> SubscriptionStream {
        SubscriptionStream {
            subscription: self,
            _hold: None,
        }
    }

    pub(crate) fn into_stream_holding(
        self,
        hold: Box<dyn std::any::Any + Send>,
    ) -> SubscriptionStream {
        SubscriptionStream {
            subscription: self,
            _hold: Some(hold),
        }
    }

    fn poll_batch(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Vec<RecordedEvent>>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        loop {
            match self
                .fill()
                .and_then(|ready| if ready { self.take() } else { Ok(None) })
            {
                Ok(Some(batch)) => return Poll::Ready(Some(Ok(batch))),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Err(self.end(e)))),
            }
            let feed = self.feed.clone();
            match feed
                .hub()
                .register(&self.waiter, cx.waker(), self.after, || feed.head())
            {
                Wake::Advanced => {}
                Wake::Registered => return Poll::Pending,
                Wake::Closed | Wake::TimedOut => {
                    return Poll::Ready(Some(Err(self.end(Error::Closed))));
                }
            }
        }
    }
}

/// A [`Subscription`] as a [`futures_core::Stream`]; see
/// [`Subscription::into_stream`]. Items, order and the end at close are the
/// same as the iterator's.
pub struct SubscriptionStream {
    subscription: Subscription,
    /// What must live as long as the stream (a durable cursor's claim).
    _hold: Option<Box<dyn std::any::Any + Send>>,
}

impl std::fmt::Debug for SubscriptionStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.subscription.fmt(f)
    }
}

impl SubscriptionStream {
    /// See [`Subscription::checkpoint`].
    pub fn checkpoint(&self) -> u64 {
        self.subscription.checkpoint()
    }
}

impl futures_core::Stream for SubscriptionStream {
    type Item = Result<Vec<RecordedEvent>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().subscription.poll_batch(cx)
    }
}

/// A function applied to each event a subscription delivers (the
/// `encryption` wrapper opens sealed events with one).
#[cfg(feature = "encryption")]
pub(crate) type MapEvent = Arc<dyn Fn(RecordedEvent) -> Result<RecordedEvent> + Send + Sync>;

#[cfg(feature = "encryption")]
fn map_batch(map: &MapEvent, batch: &mut Vec<RecordedEvent>) -> Result<()> {
    let events = std::mem::take(batch);
    *batch = events.into_iter().map(|e| map(e)).collect::<Result<_>>()?;
    Ok(())
}

#[cfg(feature = "encryption")]
impl Subscription {
    /// Passes every event this subscription delivers from now on through
    /// `map`, as it is delivered (after any map set before); an error of
    /// `map` ends the subscription with it.
    pub(crate) fn map_events(&mut self, map: MapEvent) -> Result<()> {
        self.map = Some(match self.map.take() {
            None => map,
            Some(before) => Arc::new(move |e| map(before(e)?)),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const MIB: usize = 1 << 20;

    /// A store of `appends` (each a count of events of `size` bytes), read
    /// as the SQL stores' feeds read: in position order, each event with
    /// its append's last position, until the taker breaks.
    struct Rows(Vec<(RecordedEvent, u64)>);

    impl Rows {
        fn of(appends: &[usize], size: usize) -> Rows {
            let data = Bytes::from(vec![0; size]);
            let mut rows = Vec::new();
            for &n in appends {
                let first = rows.len() as u64 + 1;
                let last = first + n as u64 - 1;
                for position in first..=last {
                    let event = RecordedEvent {
                        position,
                        event_type: "A".into(),
                        tags: Vec::new(),
                        data: data.clone(),
                        metadata: Bytes::new(),
                        id: None,
                        stream: None,
                        revision: None,
                        timestamp_micros: 0,
                    };
                    rows.push((event, last));
                }
            }
            Rows(rows)
        }

        fn read(&self, after: u64, upto: u64, limit: usize, take: TakeRow<'_>) -> Result<()> {
            let rows = self
                .0
                .iter()
                .filter(|(e, _)| e.position > after && e.position <= upto);
            for (e, last) in rows.take(limit) {
                if take(e.clone(), *last).is_break() {
                    break;
                }
            }
            Ok(())
        }

        /// Fetches from the start to `head` until nothing is left; the
        /// batches of every fetch, and the positions each fetch held.
        fn fetch_all(&self, head: u64) -> (Vec<Vec<u64>>, Vec<usize>) {
            let (mut after, mut batches, mut held) = (0, Vec::new(), Vec::new());
            while after < head {
                let mut out = VecDeque::new();
                let looked =
                    fetch_by_append(after, head, FETCH_EVENTS, &mut out, |a, u, l, take| {
                        self.read(a, u, l, take)
                    })
                    .expect("fetch");
                assert!(looked > after, "a fetch moves on");
                held.push(out.iter().map(Vec::len).sum());
                batches.extend(
                    out.into_iter()
                        .map(|b| b.iter().map(|e| e.position).collect()),
                );
                after = looked;
            }
            (batches, held)
        }
    }

    #[test]
    fn a_fetch_of_large_events_stops_at_its_bytes_and_keeps_appends_whole() {
        // Appends of three events of 10 MiB: a fetch reads seven events
        // (70 MiB), then the two that finish the seventh's append.
        let rows = Rows::of(&[3; 10], 10 * MIB);
        let (batches, held) = rows.fetch_all(30);
        let expected: Vec<Vec<u64>> = (0..10).map(|a| (3 * a + 1..=3 * a + 3).collect()).collect();
        assert_eq!(batches, expected);
        assert_eq!(held, [9, 9, 9, 3]);
    }

    #[test]
    fn an_append_larger_than_a_fetch_is_finished_whole() {
        // One append of twenty events of 10 MiB, then one of one event:
        // the first is finished whole past the fetch's bytes.
        let rows = Rows::of(&[20, 1], 10 * MIB);
        let (batches, held) = rows.fetch_all(21);
        assert_eq!(batches, [(1..=20).collect::<Vec<u64>>(), vec![21]]);
        assert_eq!(held, [20, 1]);
    }

    #[test]
    fn small_events_are_fetched_by_count() {
        let rows = Rows::of(&[500; 5], 16);
        let (batches, held) = rows.fetch_all(2_500);
        assert_eq!(batches.len(), 5);
        assert!(batches.iter().all(|b| b.len() == 500));
        // 1,024 events reach into the third append, which is finished.
        assert_eq!(held, [1_500, 1_000]);
    }
}
