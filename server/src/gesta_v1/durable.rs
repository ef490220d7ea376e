//! The durable subscriptions this server holds open, by name: each open
//! `SubscribeDurable` call's [`gesta::subscribe::Acker`], so that `Ack`
//! reaches the subscription that delivered the events, `ListDurable` says
//! which are open and `DeleteDurable` refuses an open one.
//!
//! The store is reached through the `EventStore` contract, so that an
//! encrypted store's subscriptions deliver opened events.
//!
//! The registry's lock is held while a name is claimed in the store and
//! while it is released, so that "open here" and "claimed in the store"
//! never disagree for names this server opened.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tonic::Status;

use super::convert::{from_engine, subscription_open};

type Acker = gesta::Acker;

/// The open durable subscriptions.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    open: Arc<Mutex<HashMap<String, Acker>>>,
}

/// A durable subscription opened through the registry; dropping it closes
/// the subscription and forgets the name.
pub(crate) struct Opened {
    registry: Registry,
    name: String,
    stream: Option<gesta::SubscriptionStream>,
}

/// The subscription's batches.
impl futures::Stream for Opened {
    type Item = gesta::Result<Vec<gesta::RecordedEvent>>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match self.get_mut().stream.as_mut() {
            Some(stream) => std::pin::Pin::new(stream).poll_next(cx),
            None => std::task::Poll::Ready(None),
        }
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        let mut open = self.registry.lock();
        // Released in the store before the name is forgotten here.
        drop(self.stream.take());
        open.remove(&self.name);
    }
}

impl Registry {
    /// The map; a panic while it was held left it consistent (every
    /// change is one insert or remove), so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Acker>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens `name` in `store` (blocking: it reads the cursor). `over`:
    /// the refusal of a tenant over its quota, which may go on with the
    /// cursors it has but start no new one (each is a file).
    pub(crate) fn open(
        &self,
        store: &dyn gesta::EventStore,
        name: &str,
        query: &gesta::Query,
        over: Option<Status>,
    ) -> Result<Opened, Status> {
        let mut open = self.lock();
        if open.contains_key(name) {
            return Err(subscription_open(name));
        }
        refuse_new(store, name, over)?;
        let subscription = store.subscribe_durable(name, query).map_err(from_engine)?;
        open.insert(name.to_owned(), subscription.acker());
        Ok(Opened {
            registry: self.clone(),
            name: name.to_owned(),
            stream: Some(subscription.into_stream()),
        })
    }

    /// Acknowledges `position` for `name` (blocking: it writes the cursor,
    /// and may sync the log first), through the open subscription if there
    /// is one, else by claiming the name for the while; returns the
    /// acknowledged position.
    pub(crate) fn ack(
        &self,
        store: &dyn gesta::EventStore,
        name: &str,
        position: u64,
        over: Option<Status>,
    ) -> Result<u64, Status> {
        let open = self.lock();
        if let Some(acker) = open.get(name).cloned() {
            drop(open);
            match acker.ack(position) {
                Ok(()) => return Ok(acker.acked()),
                // Its stream closed since it was looked up: the name is
                // acknowledged by claiming it, as for one not open.
                Err(_) if !acker.is_open() => {}
                Err(e) => return Err(from_engine(e)),
            }
            return self.ack(store, name, position, over);
        }
        refuse_new(store, name, over)?;
        // Held, so that a SubscribeDurable of the name waits for this.
        let claimed = store
            .subscribe_durable(name, &gesta::Query::all())
            .map_err(from_engine)?;
        claimed.ack(position).map_err(from_engine)?;
        let acked = claimed.acked();
        drop(claimed);
        drop(open);
        Ok(acked)
    }

    /// Whether `name` is open here.
    pub(crate) fn is_open(&self, name: &str) -> bool {
        self.lock().contains_key(name)
    }

    /// Deletes `name`'s cursor unless it is open (blocking).
    pub(crate) fn delete(&self, store: &dyn gesta::EventStore, name: &str) -> Result<bool, Status> {
        let open = self.lock();
        if open.contains_key(name) {
            return Err(subscription_open(name));
        }
        let deleted = store
            .delete_durable_subscription(name)
            .map_err(from_engine)?;
        drop(open);
        Ok(deleted)
    }
}

/// `over` (a quota's refusal) if `name` has no cursor in `store` yet.
fn refuse_new(
    store: &dyn gesta::EventStore,
    name: &str,
    over: Option<Status>,
) -> Result<(), Status> {
    let Some(over) = over else {
        return Ok(());
    };
    let cursors = store.durable_subscriptions().map_err(from_engine)?;
    match cursors.iter().any(|c| c.name == name) {
        true => Ok(()),
        false => Err(over),
    }
}
