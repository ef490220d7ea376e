//! Durable subscriptions on any store: [`DurableSubscription`] and its
//! [`Acker`], the rules they keep, and [`CursorStore`], the one thing a
//! store provides — where a name's acknowledged position is kept (a file
//! per cursor for the engine, a table for the SQL stores, a map for the
//! in-memory reference).
//!
//! The rules, the same on every store:
//!
//! - A durable subscription named `name` resumes after the position last
//!   acknowledged under that name (from the start if none): delivery is at
//!   least once — what was delivered but not acknowledged comes again.
//! - [`ack`](Acker::ack) of a position at or below the acknowledged one
//!   changes nothing; beyond the store's head it is
//!   [`Error::InvalidInput`]; otherwise it is recorded durably before it
//!   returns (after the events up to it are durable).
//! - One subscription per name may be open through one store handle; a
//!   second is [`Error::InvalidInput`], and so is deleting the cursor of an
//!   open one. An [`Acker`] acknowledges for its subscription only while
//!   that is open: once the subscription (or its stream) is dropped, its
//!   `ack` is [`Error::InvalidInput`] and writes nothing, so a late ack
//!   neither brings back a deleted cursor nor moves back the cursor of a
//!   later subscription under the name. Names are 1 to 120 bytes
//!   ([`MAX_DURABLE_NAME_LEN`](crate::MAX_DURABLE_NAME_LEN)), so that every
//!   store can keep any name, the engine in a file named after it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::subscription::{Subscription, SubscriptionStream};

/// Where a store keeps its durable subscriptions' positions. Implemented
/// by each store; the rules (see [`DurableCursors`]) are not its concern.
pub trait CursorStore: Send + Sync {
    /// The store's committed head; [`Error::Closed`] once it is closed.
    fn head(&self) -> Result<u64>;

    /// The acknowledged position of `name`, if it has one.
    fn load(&self, name: &str) -> Result<Option<u64>>;

    /// Records `position` for `name`, durably, once every event up to it
    /// is durable.
    fn save(&self, name: &str, position: u64) -> Result<()>;

    /// Every cursor with its position, by name.
    fn list(&self) -> Result<Vec<(String, u64)>>;

    /// Forgets `name`; false if it had no position.
    fn remove(&self, name: &str) -> Result<bool>;

    /// Where the cursors live, for error messages.
    fn place(&self) -> PathBuf;
}

/// The durable subscriptions of one store handle: its [`CursorStore`] and
/// the names open through it. The stores' `subscribe_durable`,
/// `durable_subscriptions` and `delete_durable_subscription` go through
/// it, so the rules in the module doc hold on every store.
pub struct DurableCursors {
    store: Arc<dyn CursorStore>,
    open: Arc<Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for DurableCursors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableCursors")
            .field("place", &self.store.place())
            .field("open", &self.open.lock().len())
            .finish()
    }
}

/// Marks a name as open until dropped.
struct Claim {
    open: Arc<Mutex<HashSet<String>>>,
    name: String,
    /// The acknowledgements of the subscription holding the claim.
    acks: Arc<Mutex<Acks>>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        // The subscription's acknowledgements end (after one in flight)
        // before the name is free, so no later subscription under it, and
        // no deletion of its cursor, sees one of them land afterwards.
        self.acks.lock().open = false;
        self.open.lock().remove(&self.name);
    }
}

/// What an [`Acker`] and its clones share.
struct Acks {
    /// The last acknowledged position.
    acked: u64,
    /// Whether the subscription is still open (its claim not dropped).
    open: bool,
}

impl DurableCursors {
    /// The durable subscriptions kept in `store`.
    pub fn new(store: Arc<dyn CursorStore>) -> DurableCursors {
        DurableCursors {
            store,
            open: Arc::default(),
        }
    }

    /// A durable subscription named `name`: `subscribe(after)` opens the
    /// plain subscription after the acknowledged position.
    pub fn subscribe(
        &self,
        name: &str,
        subscribe: impl FnOnce(u64) -> Result<Subscription>,
    ) -> Result<DurableSubscription> {
        crate::cursors::check_name(name)?;
        if !self.open.lock().insert(name.to_owned()) {
            return Err(Error::invalid(format!(
                "the durable subscription {name:?} is already open"
            )));
        }
        let acks = Arc::new(Mutex::new(Acks {
            acked: 0,
            open: true,
        }));
        let claim = Claim {
            open: self.open.clone(),
            name: name.to_owned(),
            acks: acks.clone(),
        };
        let acked = self.store.load(name)?.unwrap_or(0);
        let head = self.store.head()?;
        if acked > head {
            return Err(Error::Corruption {
                file: self.store.place(),
                offset: 0,
                reason: format!(
                    "the cursor {name:?} acknowledges position {acked}, beyond the log's head {head}"
                ),
            });
        }
        acks.lock().acked = acked;
        Ok(DurableSubscription {
            subscription: subscribe(acked)?,
            acker: Acker {
                name: name.into(),
                acks,
                store: self.store.clone(),
            },
            claim,
        })
    }

    /// Every durable subscription kept, with the position it acknowledged
    /// last, by name.
    pub fn list(&self) -> Result<Vec<DurableSubscriptionState>> {
        let mut all = self.store.list()?;
        all.sort();
        Ok(all
            .into_iter()
            .map(|(name, acknowledged)| DurableSubscriptionState { name, acknowledged })
            .collect())
    }

    /// Forgets the position of `name` (the next subscription under it
    /// starts from the beginning); false if there was none. An open
    /// subscription's cannot be forgotten.
    pub fn delete(&self, name: &str) -> Result<bool> {
        crate::cursors::check_name(name)?;
        // Held through the removal, so that no subscription under the name
        // opens (and acknowledges) in between.
        let open = self.open.lock();
        if open.contains(name) {
            return Err(Error::invalid(format!(
                "the durable subscription {name:?} is open; drop it before deleting its cursor"
            )));
        }
        self.store.remove(name)
    }
}

/// A [`Subscription`] whose progress is kept in the store under a name:
/// [`ack`](DurableSubscription::ack) records a position durably, and
/// `subscribe_durable` with the same name resumes after the last
/// acknowledged position — after a close, a reopen or a crash. Delivery is
/// at least once: what was delivered but not acknowledged is delivered
/// again. The same on every store (see
/// [`EventStore::subscribe_durable`](crate::EventStore::subscribe_durable)).
///
/// It dereferences to its [`Subscription`] and is an [`Iterator`] like it;
/// for async code, take an [`Acker`] and then
/// [`into_stream`](DurableSubscription::into_stream).
///
/// ```no_run
/// # fn main() -> gesta::Result<()> {
/// use gesta::{Query, Store};
///
/// let store = Store::open("/tmp/events")?;
/// let mut sub = store.subscribe_durable("course-list", &Query::event_type("CourseDefined"))?;
/// loop {
///     let batch = sub.recv()?; // the matching events of one append
///     // …update the read model…
///     sub.ack(batch.last().map_or(0, |e| e.position))?;
/// }
/// # }
/// ```
pub struct DurableSubscription {
    subscription: Subscription,
    acker: Acker,
    claim: Claim,
}

/// Acknowledges positions of one durable subscription; cheap to clone and
/// usable from any thread or task, as long as the subscription is open:
/// once it (or its stream) is dropped, [`ack`](Acker::ack) is refused.
#[derive(Clone)]
pub struct Acker {
    name: Arc<str>,
    acks: Arc<Mutex<Acks>>,
    store: Arc<dyn CursorStore>,
}

impl std::fmt::Debug for DurableSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableSubscription")
            .field("name", &self.acker.name)
            .field("acked", &self.acker.acked())
            .field("subscription", &self.subscription)
            .finish()
    }
}

impl std::fmt::Debug for Acker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acker")
            .field("name", &self.name)
            .field("acked", &self.acked())
            .finish()
    }
}

impl DurableSubscription {
    /// The cursor's name.
    pub fn name(&self) -> &str {
        &self.acker.name
    }

    /// The last acknowledged position; see [`Acker::acked`].
    pub fn acked(&self) -> u64 {
        self.acker.acked()
    }

    /// Records durably that every event up to `position` is processed; see
    /// [`Acker::ack`].
    pub fn ack(&self, position: u64) -> Result<()> {
        self.acker.ack(position)
    }

    /// A handle that acknowledges for this subscription, for use alongside
    /// [`into_stream`](DurableSubscription::into_stream).
    pub fn acker(&self) -> Acker {
        self.acker.clone()
    }

    /// This subscription as a [`futures_core::Stream`]; the name stays
    /// taken until the stream is dropped.
    pub fn into_stream(self) -> SubscriptionStream {
        self.subscription.into_stream_holding(Box::new(self.claim))
    }
}

impl Acker {
    /// The last acknowledged position (where a new subscription under this
    /// name would resume).
    pub fn acked(&self) -> u64 {
        self.acks.lock().acked
    }

    /// Whether its subscription is still open, so that [`ack`](Self::ack)
    /// records what it is given.
    pub fn is_open(&self) -> bool {
        self.acks.lock().open
    }

    /// Records durably that every event up to `position` is processed.
    /// Acknowledging a position at or below the current one changes
    /// nothing; a position beyond the head is refused. The engine, in
    /// durability modes that do not sync every commit, syncs the log
    /// first, so that a cursor never points past what a crash could take
    /// away. Once the subscription is dropped, an ack is
    /// [`Error::InvalidInput`] and records nothing: the cursor may have
    /// been deleted since, or belong to a new subscription under the name.
    pub fn ack(&self, position: u64) -> Result<()> {
        let mut acks = self.acks.lock();
        if !acks.open {
            return Err(Error::invalid(format!(
                "cannot acknowledge position {position}: the durable subscription {:?} was closed",
                self.name
            )));
        }
        if position <= acks.acked {
            return Ok(());
        }
        let head = self.store.head()?;
        if position > head {
            return Err(Error::invalid(format!(
                "cannot acknowledge position {position}: the head is {head}"
            )));
        }
        self.store.save(&self.name, position)?;
        acks.acked = position;
        Ok(())
    }
}

impl std::ops::Deref for DurableSubscription {
    type Target = Subscription;

    fn deref(&self) -> &Subscription {
        &self.subscription
    }
}

impl std::ops::DerefMut for DurableSubscription {
    fn deref_mut(&mut self) -> &mut Subscription {
        &mut self.subscription
    }
}

impl Iterator for DurableSubscription {
    type Item = Result<Vec<RecordedEvent>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.subscription.next()
    }
}

/// A durable subscription as the store keeps it: its name and the last
/// position it acknowledged (see
/// [`EventStore::durable_subscriptions`](crate::EventStore::durable_subscriptions)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurableSubscriptionState {
    /// The subscription's name.
    pub name: String,
    /// The last position it acknowledged.
    pub acknowledged: u64,
}

/// The cursors of the in-memory reference: a map that lives as long as the
/// store (and is gone with it, like its events).
pub(crate) struct MemoryCursors {
    positions: Mutex<std::collections::BTreeMap<String, u64>>,
    head: Box<dyn Fn() -> Result<u64> + Send + Sync>,
}

impl MemoryCursors {
    /// Cursors of a store whose head `head` reads.
    pub(crate) fn new(head: impl Fn() -> Result<u64> + Send + Sync + 'static) -> MemoryCursors {
        MemoryCursors {
            positions: Mutex::default(),
            head: Box::new(head),
        }
    }
}

impl CursorStore for MemoryCursors {
    fn head(&self) -> Result<u64> {
        (self.head)()
    }

    fn load(&self, name: &str) -> Result<Option<u64>> {
        Ok(self.positions.lock().get(name).copied())
    }

    fn save(&self, name: &str, position: u64) -> Result<()> {
        self.positions.lock().insert(name.to_owned(), position);
        Ok(())
    }

    fn list(&self) -> Result<Vec<(String, u64)>> {
        Ok(self
            .positions
            .lock()
            .iter()
            .map(|(n, p)| (n.clone(), *p))
            .collect())
    }

    fn remove(&self, name: &str) -> Result<bool> {
        Ok(self.positions.lock().remove(name).is_some())
    }

    fn place(&self) -> PathBuf {
        PathBuf::from("memory")
    }
}

#[cfg(feature = "encryption")]
impl DurableSubscription {
    /// [`Subscription::map_events`] on the subscription inside.
    pub(crate) fn map_events(&mut self, map: crate::subscription::MapEvent) -> Result<()> {
        self.subscription.map_events(map)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::api::EventStore;
    use crate::event::NewEvent;
    use crate::memory::MemoryStore;
    use crate::query::Query;

    /// Cursors in a map whose `remove` waits for a go once it has begun.
    struct SlowRemove {
        cursors: MemoryCursors,
        removing: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
    }

    impl CursorStore for SlowRemove {
        fn head(&self) -> Result<u64> {
            self.cursors.head()
        }
        fn load(&self, name: &str) -> Result<Option<u64>> {
            self.cursors.load(name)
        }
        fn save(&self, name: &str, position: u64) -> Result<()> {
            self.cursors.save(name, position)
        }
        fn list(&self) -> Result<Vec<(String, u64)>> {
            self.cursors.list()
        }
        fn remove(&self, name: &str) -> Result<bool> {
            let gate = self.removing.lock().take();
            if let Some((begun, go)) = gate {
                begun.send(()).expect("send");
                go.recv().expect("recv");
            }
            self.cursors.remove(name)
        }
        fn place(&self) -> PathBuf {
            self.cursors.place()
        }
    }

    /// A subscription opened while the cursor of its name is being deleted
    /// waits for the deletion: what it acknowledges is not deleted.
    #[test]
    fn a_deletion_in_flight_holds_the_name() {
        let events = Arc::new(MemoryStore::default());
        for i in 0..5 {
            events
                .append(vec![NewEvent::new("A", format!("{i}"))])
                .expect("append");
        }
        let (begun, removing) = mpsc::channel();
        let (go, wait) = mpsc::channel();
        let store = Arc::new(SlowRemove {
            cursors: MemoryCursors::new(|| Ok(5)),
            removing: Mutex::new(Some((begun, wait))),
        });
        store.save("d", 2).expect("save");
        let durable = Arc::new(DurableCursors::new(store.clone()));
        let deleting = {
            let durable = durable.clone();
            std::thread::spawn(move || durable.delete("d"))
        };
        removing.recv().expect("the deletion begins");
        let acking = {
            let (durable, events) = (durable.clone(), events.clone());
            std::thread::spawn(move || {
                let sub = durable.subscribe("d", |after| events.subscribe(&Query::all(), after))?;
                sub.ack(5)
            })
        };
        // Time for the subscription to open and acknowledge if it does not
        // wait for the deletion.
        std::thread::sleep(Duration::from_millis(200));
        go.send(()).expect("go");
        assert!(deleting.join().expect("join").expect("delete"));
        acking.join().expect("join").expect("subscribe and ack");
        assert_eq!(store.load("d").expect("load"), Some(5));
    }
}
