//! The commit hub: how subscribers learn that a commit may concern them.
//!
//! Subscribers do not receive events from the committer; they read them from
//! the log and the index themselves (see `subscription`). The committer only
//! says "the head moved, and these are the index keys of what moved it" —
//! and when nobody is waiting, which is the common case under load
//! (subscribers are busy reading), that costs it one atomic load. Waiting
//! subscribers are threads parked on their own condition variable or async
//! tasks that left a waker.
//!
//! The hub owns who waits for what. A waiter registers under its query's
//! wake keys ([`Interest`]): for each query item, its event types if it has
//! any, else its first tag, else everything. An event can only match an item
//! if it carries one of these keys, so a commit that carries none of a
//! waiter's keys holds nothing for it, and the hub leaves it asleep. Waking
//! too often is harmless (the subscriber reads, finds nothing, waits again);
//! waking too rarely would lose events, and is what the keys are chosen to
//! rule out.
//!
//! The lost-wakeup race is closed the usual way: a waiter registers (under
//! the lock, counted in `interested`) and then re-reads the head; the
//! committer stores the head and then reads `interested`. With a
//! sequentially consistent fence on both sides, at least one of them sees
//! the other's write: either the waiter sees the new head and does not
//! sleep, or the committer sees the registration, takes the lock — which
//! the waiter holds until it sleeps — and finds it under its keys.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Weak};
use std::task::Waker;
use std::time::Instant;

use gesta_index::{Key, KeyKind};
use parking_lot::{Condvar, Mutex};

use crate::query::Query;

/// The commits a waiter wants to be woken by: those carrying one of its
/// keys, or every commit.
#[derive(Clone, Debug)]
pub(crate) struct Interest {
    /// Type and tag keys, sorted and deduplicated; `None` for every commit.
    keys: Option<Arc<[Key]>>,
}

impl Interest {
    /// The wake keys of `query`: for each item its types, else its first
    /// tag (an event matching the item carries all its tags, so it carries
    /// that one), else everything.
    pub(crate) fn of(query: &Query) -> Interest {
        if query.items.is_empty() {
            return Interest::everything();
        }
        let mut keys = Vec::new();
        for item in &query.items {
            if !item.types.is_empty() {
                keys.extend(item.types.iter().map(|t| Key::event_type(t)));
            } else if let Some(tag) = item.tags.first() {
                keys.push(Key::tag(tag));
            } else {
                return Interest::everything();
            }
        }
        keys.sort();
        keys.dedup();
        Interest {
            keys: Some(keys.into()),
        }
    }

    /// Woken by every commit.
    pub(crate) fn everything() -> Interest {
        Interest { keys: None }
    }
}

/// One subscriber's place at a hub: what wakes it, and the condition
/// variable its thread sleeps on. A subscriber keeps one for its life and
/// calls [`Hub::forget`] when it goes away.
#[derive(Debug)]
pub(crate) struct Waiter {
    /// Unique among all waiters of the process.
    id: u64,
    interest: Interest,
    cond: Arc<Condvar>,
}

impl Waiter {
    pub(crate) fn new(interest: Interest) -> Waiter {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Waiter {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            interest,
            cond: Arc::new(Condvar::new()),
        }
    }
}

/// How a registered waiter is woken.
#[derive(Debug)]
enum Signal {
    /// A thread sleeps on this condition variable (under the hub's lock).
    Thread(Arc<Condvar>),
    /// An async task left this waker.
    Task(Waker),
}

impl Signal {
    /// Wakes a thread at once, or returns the task waker to wake.
    ///
    /// Called with the hub's lock held: a notified thread is then moved onto
    /// the lock's queue rather than woken, so the caller makes no system
    /// call per thread; each thread, when it gets the lock and leaves it,
    /// hands it to the next. Wakers run user code, hence after the lock.
    fn notify(self) -> Option<Waker> {
        match self {
            Signal::Thread(cond) => {
                cond.notify_one();
                None
            }
            Signal::Task(waker) => Some(waker),
        }
    }
}

#[derive(Debug)]
struct Registered {
    interest: Interest,
    signal: Signal,
}

#[derive(Debug, Default)]
struct State {
    closed: bool,
    /// Every registered waiter by id. A waiter leaves when it is woken (or
    /// stops waiting), so each is signalled at most once per registration.
    waiters: HashMap<u64, Registered>,
    /// Ids of the waiters woken by every commit.
    everything: Vec<u64>,
    /// Ids of the waiters registered under each wake key.
    by_key: HashMap<Key, Vec<u64>>,
}

impl State {
    /// Registers `waiter`, or only replaces its signal if it is registered.
    fn add(&mut self, waiter: &Waiter, signal: Signal) {
        let registered = Registered {
            interest: waiter.interest.clone(),
            signal,
        };
        if self.waiters.insert(waiter.id, registered).is_some() {
            return;
        }
        match &waiter.interest.keys {
            None => self.everything.push(waiter.id),
            Some(keys) => {
                for key in keys.iter() {
                    match self.by_key.get_mut(key) {
                        Some(ids) => ids.push(waiter.id),
                        None => {
                            self.by_key.insert(key.clone(), vec![waiter.id]);
                        }
                    }
                }
            }
        }
    }

    /// Unregisters waiter `id`, returning how it was to be woken.
    fn remove(&mut self, id: u64) -> Option<Signal> {
        let registered = self.waiters.remove(&id)?;
        match &registered.interest.keys {
            None => self.everything.retain(|&w| w != id),
            Some(keys) => {
                for key in keys.iter() {
                    if let Some(ids) = self.by_key.get_mut(key) {
                        ids.retain(|&w| w != id);
                        if ids.is_empty() {
                            self.by_key.remove(key);
                        }
                    }
                }
            }
        }
        Some(registered.signal)
    }
}

/// Wakes subscribers when a commit may concern them or the store closes.
///
/// Every store that feeds [`Subscription`](crate::Subscription)s owns one
/// (see [`SubscriptionFeed`](crate::SubscriptionFeed)): after the head it
/// reports has moved past a commit, it calls [`notify`](CommitHub::notify)
/// with the commit's events (or [`notify_all`](CommitHub::notify_all) when
/// it does not know them, as for a commit seen by polling), and
/// [`close`](CommitHub::close) when it closes. Subscribers wait on it
/// themselves; a store never calls anything else.
#[derive(Debug, Default)]
pub struct CommitHub {
    state: Mutex<State>,
    /// How many waiters are registered (written under the lock).
    interested: AtomicUsize,
    /// How many waiters `publish` has woken, for the tests.
    #[cfg(test)]
    woken: AtomicUsize,
    /// The positions of the subscriptions on the store (each up to where
    /// it has handed out every event), for their lag; a dropped one's
    /// entry is dead and pruned at the next registration or reading.
    positions: Mutex<Vec<Weak<AtomicU64>>>,
}

/// Why a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// The head is past what the waiter had seen.
    Advanced,
    /// The store closed.
    Closed,
    /// The deadline passed first.
    TimedOut,
    /// (Async only) the waker is registered; it will be woken.
    Registered,
}

/// The hub under its name inside the engine.
pub(crate) type Hub = CommitHub;

impl CommitHub {
    /// A hub nobody waits on yet.
    pub fn new() -> CommitHub {
        CommitHub::default()
    }

    /// Says that the head moved past a commit of `events`: wakes the
    /// subscribers whose queries could match one of them (a subscriber
    /// whose query names no type or tag of theirs sleeps on). Call it
    /// after the new head is visible to
    /// [`SubscriptionFeed::head`](crate::SubscriptionFeed::head). When
    /// nobody waits it costs one atomic load and allocates nothing.
    pub fn notify<'a>(&self, events: impl IntoIterator<Item = &'a crate::NewEvent>) {
        fence(Ordering::SeqCst);
        if self.interested.load(Ordering::Relaxed) == 0 {
            return;
        }
        let keys: Vec<Key> = events
            .into_iter()
            .flat_map(|e| {
                std::iter::once(Key::event_type(&e.event_type))
                    .chain(e.tags.iter().map(|t| Key::tag(t)))
            })
            .collect();
        self.publish(&keys);
    }

    /// Says that the head moved without saying what moved it: wakes every
    /// waiting subscriber (each reads, and sleeps again if nothing
    /// matched). For commits a store learns of by polling.
    pub fn notify_all(&self) {
        fence(Ordering::SeqCst);
        if self.interested.load(Ordering::Relaxed) == 0 {
            return;
        }
        let wakers: Vec<Waker> = {
            let mut s = self.state.lock();
            let ids: Vec<u64> = s.waiters.keys().copied().collect();
            let mut wakers = Vec::new();
            for id in ids {
                wakers.extend(s.remove(id).and_then(Signal::notify));
            }
            self.interested.store(s.waiters.len(), Ordering::Relaxed);
            wakers
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// Whether [`close`](CommitHub::close) was called.
    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Called after the head moved past a commit whose events have the
    /// index keys `keys` (types and tags matter, other keys are ignored):
    /// wakes the waiters registered for every commit or under one of them.
    pub(crate) fn publish<'a>(&self, keys: impl IntoIterator<Item = &'a Key>) {
        fence(Ordering::SeqCst);
        if self.interested.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut wakers = Vec::new();
        {
            let mut s = self.state.lock();
            // Every waiter found is woken, so whole lists are taken: removing
            // the waiters one by one from them would cost the square of their
            // length.
            let mut ids = std::mem::take(&mut s.everything);
            for key in keys {
                if matches!(key.kind(), KeyKind::Type | KeyKind::Tag)
                    && let Some(under) = s.by_key.remove(key)
                {
                    ids.extend(under);
                }
            }
            if ids.is_empty() {
                return;
            }
            ids.sort_unstable();
            ids.dedup();
            #[cfg(test)]
            self.woken.fetch_add(ids.len(), Ordering::Relaxed);
            for id in ids {
                wakers.extend(s.remove(id).and_then(Signal::notify));
            }
            self.interested.store(s.waiters.len(), Ordering::Relaxed);
        }
        for waker in wakers {
            waker.wake();
        }
    }

    /// Ends every wait, now and later: each subscription delivers what the
    /// feed still has up to its head, then [`Error::Closed`](crate::Error::Closed).
    pub fn close(&self) {
        let wakers: Vec<Waker> = {
            let mut s = self.state.lock();
            s.closed = true;
            s.everything.clear();
            s.by_key.clear();
            self.interested.store(0, Ordering::Relaxed);
            s.waiters
                .drain()
                .filter_map(|(_, r)| r.signal.notify())
                .collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// Blocks until `head()` exceeds `seen` and a commit concerned `waiter`
    /// (or already exceeds it), the store closes, or `deadline`.
    pub(crate) fn wait(
        &self,
        waiter: &Waiter,
        seen: u64,
        head: impl Fn() -> u64,
        deadline: Option<Instant>,
    ) -> Wake {
        let mut s = self.state.lock();
        let wake = loop {
            if head() > seen {
                break Wake::Advanced;
            }
            if s.closed {
                break Wake::Closed;
            }
            // Not registered yet, or a publish took it out when it woke it:
            // register, then look at the head again before sleeping.
            if !s.waiters.contains_key(&waiter.id) {
                s.add(waiter, Signal::Thread(waiter.cond.clone()));
                self.interested.store(s.waiters.len(), Ordering::Relaxed);
                fence(Ordering::SeqCst);
                continue;
            }
            match deadline {
                Some(d) => {
                    if waiter.cond.wait_until(&mut s, d).timed_out() {
                        break if head() > seen {
                            Wake::Advanced
                        } else {
                            Wake::TimedOut
                        };
                    }
                }
                None => waiter.cond.wait(&mut s),
            }
        };
        if s.remove(waiter.id).is_some() {
            self.interested.store(s.waiters.len(), Ordering::Relaxed);
        }
        wake
    }

    /// Leaves `waker` to be woken once a commit past `seen` concerns
    /// `waiter`, unless `head()` exceeds `seen` already (or the store is
    /// closed), which is said at once.
    pub(crate) fn register(
        &self,
        waiter: &Waiter,
        waker: &Waker,
        seen: u64,
        head: impl Fn() -> u64,
    ) -> Wake {
        let mut s = self.state.lock();
        if !s.closed {
            let same = matches!(
                s.waiters.get(&waiter.id).map(|r| &r.signal),
                Some(Signal::Task(w)) if w.will_wake(waker)
            );
            if !same {
                s.add(waiter, Signal::Task(waker.clone()));
                self.interested.store(s.waiters.len(), Ordering::Relaxed);
            }
        }
        fence(Ordering::SeqCst);
        if head() > seen {
            Wake::Advanced
        } else if s.closed {
            Wake::Closed
        } else {
            Wake::Registered
        }
    }

    /// A subscription's position, starting at `after`, kept here for
    /// [`subscription_positions`](CommitHub::subscription_positions) while
    /// the subscription holds the returned `Arc`.
    pub(crate) fn track(&self, after: u64) -> Arc<AtomicU64> {
        let position = Arc::new(AtomicU64::new(after));
        let mut positions = self.positions.lock();
        positions.retain(|p| p.strong_count() > 0);
        positions.push(Arc::downgrade(&position));
        position
    }

    /// The positions of the subscriptions open on the store now, each the
    /// position up to which it has handed out every matching event.
    pub fn subscription_positions(&self) -> Vec<u64> {
        let mut positions = self.positions.lock();
        positions.retain(|p| p.strong_count() > 0);
        positions
            .iter()
            .filter_map(|p| p.upgrade())
            .map(|p| p.load(Ordering::Relaxed))
            .collect()
    }

    /// Unregisters `waiter` (a dropped subscription's waker must not stay).
    pub(crate) fn forget(&self, waiter: &Waiter) {
        if self.interested.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut s = self.state.lock();
        s.remove(waiter.id);
        self.interested.store(s.waiters.len(), Ordering::Relaxed);
    }

    /// How many waiters `publish` has woken so far.
    #[cfg(test)]
    pub(crate) fn woken(&self) -> usize {
        self.woken.load(Ordering::Relaxed)
    }

    /// How many waiters are registered.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.state.lock().waiters.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    use super::*;
    use crate::query::QueryItem;

    fn type_a() -> Waiter {
        Waiter::new(Interest::of(&Query::event_type("A")))
    }

    /// Waits until `n` waiters are registered at `hub`.
    fn until_waiting(hub: &Hub, n: usize) {
        let deadline = gesta_wal::time::now() + Duration::from_secs(10);
        while hub.waiting() != n {
            assert!(
                gesta_wal::time::now() < deadline,
                "waiters never registered"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_waiter_sees_every_publish() {
        let hub = Arc::new(Hub::default());
        let head = Arc::new(AtomicU64::new(0));
        let (h2, hd2) = (hub.clone(), head.clone());
        let waiter = std::thread::spawn(move || {
            let waiter = type_a();
            let mut seen = 0;
            while seen < 10_000 {
                assert_eq!(
                    h2.wait(&waiter, seen, || hd2.load(Ordering::SeqCst), None),
                    Wake::Advanced
                );
                seen = hd2.load(Ordering::SeqCst);
            }
        });
        let keys = [Key::event_type("A"), Key::tag("x")];
        for i in 1..=10_000 {
            head.store(i, Ordering::SeqCst);
            hub.publish(&keys);
        }
        waiter.join().unwrap();
    }

    #[test]
    fn close_and_timeouts_end_waits() {
        let hub = Arc::new(Hub::default());
        let waiter = type_a();
        let deadline = gesta_wal::time::now() + Duration::from_millis(20);
        assert_eq!(hub.wait(&waiter, 0, || 0, Some(deadline)), Wake::TimedOut);
        assert_eq!(hub.waiting(), 0);
        let h2 = hub.clone();
        let t = std::thread::spawn(move || h2.wait(&type_a(), 0, || 0, None));
        until_waiting(&hub, 1);
        hub.close();
        assert_eq!(t.join().unwrap(), Wake::Closed);
        assert_eq!(hub.wait(&waiter, 0, || 0, None), Wake::Closed);
    }

    #[test]
    fn wake_keys_follow_the_query_items() {
        let keys = |q: &Query| Interest::of(q).keys.map(|k| k.to_vec());
        assert_eq!(keys(&Query::all()), None);
        assert_eq!(keys(&Query::item(QueryItem::new())), None);
        assert_eq!(
            keys(&Query::tag("x").or(QueryItem::new())),
            None,
            "an item matching everything makes the query match everything"
        );
        assert_eq!(
            keys(&Query::item(QueryItem::new().types(["B", "A"]).tag("x"))),
            Some(vec![Key::event_type("A"), Key::event_type("B")])
        );
        assert_eq!(
            keys(
                &Query::item(QueryItem::new().tags(["x", "y"]))
                    .or(QueryItem::new().event_type("A"))
            ),
            Some(vec![Key::event_type("A"), Key::tag("x")])
        );
    }

    /// A thread waiting on type A sleeps through commits that carry other
    /// types, tags, streams and ids, and wakes for the first one with an A.
    #[test]
    fn only_commits_with_a_wake_key_wake_a_waiter() {
        let hub = Arc::new(Hub::default());
        let head = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        for query in [
            Query::event_type("A"),
            Query::tag("t").or(QueryItem::new().event_type("A")),
            Query::item(QueryItem::new().tags(["t", "u"])),
        ] {
            let (h2, hd2) = (hub.clone(), head.clone());
            threads.push(std::thread::spawn(move || {
                let waiter = Waiter::new(Interest::of(&query));
                h2.wait(&waiter, 0, || hd2.load(Ordering::SeqCst), None)
            }));
        }
        until_waiting(&hub, 3);
        let other = [
            Key::event_type("B"),
            Key::tag("u"),
            Key::stream("A"),
            Key::id(7),
            Key::tracking("A"),
        ];
        for i in 1..=1_000 {
            head.store(i, Ordering::SeqCst);
            hub.publish(&other);
        }
        assert_eq!(hub.woken(), 0);
        assert_eq!(hub.waiting(), 3);
        head.store(1_001, Ordering::SeqCst);
        hub.publish(&[Key::event_type("A")]);
        assert_eq!(hub.woken(), 2);
        head.store(1_002, Ordering::SeqCst);
        hub.publish(&[Key::event_type("C"), Key::tag("t")]);
        assert_eq!(hub.woken(), 3);
        for t in threads {
            assert_eq!(t.join().unwrap(), Wake::Advanced);
        }
        assert_eq!(hub.waiting(), 0);
    }

    /// The public notifications: `notify` wakes by the events' types and
    /// tags as `publish` does by keys, `notify_all` wakes every waiter, and
    /// neither costs anything when nobody waits.
    #[test]
    fn public_notifications_wake_by_events_or_all() {
        let hub = CommitHub::new();
        let count = Arc::new(Count(AtomicU64::new(0)));
        let waker = Waker::from(count.clone());
        let (a, tagged) = (type_a(), Waiter::new(Interest::of(&Query::tag("t"))));
        hub.notify_all();
        hub.notify(&[crate::NewEvent::new("A", "")]);
        assert_eq!(hub.woken(), 0);
        assert_eq!(hub.register(&a, &waker, 0, || 0), Wake::Registered);
        assert_eq!(hub.register(&tagged, &waker, 0, || 0), Wake::Registered);
        hub.notify(&[crate::NewEvent::new("B", "").tag("u")]);
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "neither A nor t");
        hub.notify(&[crate::NewEvent::new("B", "").tags(["u", "t"])]);
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the tag woke one");
        assert_eq!(hub.waiting(), 1);
        assert_eq!(hub.register(&tagged, &waker, 0, || 0), Wake::Registered);
        hub.notify_all();
        assert_eq!(count.0.load(Ordering::SeqCst), 3, "both woken");
        assert_eq!(hub.waiting(), 0);
        assert!(!hub.is_closed());
        hub.close();
        assert!(hub.is_closed());
    }

    struct Count(AtomicU64);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Wakers are filtered the same way, registered once per waiter, and
    /// gone once their subscriber forgets them.
    #[test]
    fn wakers_are_filtered_and_forgotten() {
        let hub = Hub::default();
        let count = Arc::new(Count(AtomicU64::new(0)));
        let waker = Waker::from(count.clone());
        let (a, all) = (type_a(), Waiter::new(Interest::everything()));
        assert_eq!(hub.register(&a, &waker, 0, || 0), Wake::Registered);
        assert_eq!(hub.register(&a, &waker, 0, || 0), Wake::Registered);
        assert_eq!(hub.register(&all, &waker, 0, || 0), Wake::Registered);
        assert_eq!(hub.waiting(), 2);
        hub.publish(&[Key::event_type("B")]);
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "only the catch-all");
        hub.publish(&[Key::event_type("A"), Key::event_type("A")]);
        assert_eq!(count.0.load(Ordering::SeqCst), 2, "A woken once");
        assert_eq!(hub.waiting(), 0);
        assert_eq!(hub.register(&a, &waker, 0, || 1), Wake::Advanced);
        hub.forget(&a);
        assert_eq!(hub.waiting(), 0);
        hub.publish(&[Key::event_type("A")]);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert_eq!(hub.register(&a, &waker, 0, || 0), Wake::Registered);
        hub.close();
        assert_eq!(count.0.load(Ordering::SeqCst), 3);
        assert_eq!(hub.register(&a, &waker, 0, || 0), Wake::Closed);
    }
}
