//! Projections: state folded from the events matching a query, kept cheap
//! to rebuild by snapshots the background compactor writes.
//!
//! A user registers a [`Projection`] — a name, a version, a query, an
//! initial state, a fold function and the state's encode/decode. A
//! background thread (`gesta-projector`), every
//! [`Options::projection_interval`](crate::Options::projection_interval),
//! folds newly committed matching events into an in-memory copy of each
//! projection's state and saves a snapshot every
//! [`Projection::snapshot_every`] folded events, under the
//! snapshot key `projection:<name>:v<version>`. [`Store::project`](crate::Store::project) returns
//! the state at the current head: the newest of that in-memory copy and the
//! newest snapshot, plus a fold of the matching events after it. A changed
//! version has its own key, so it starts over from the initial state and
//! replays every event.
//!
//! The in-memory copy always holds exactly the matching events up to its
//! position: a catch-up moves the position with each event it folds, so a
//! read that fails partway (a damaged record, an I/O error) leaves it
//! where the fold stopped, and a `fold` that panics drops the copy, so the
//! next catch-up starts over from the newest snapshot. A pass (the
//! projector's, or [`Store::compact`](crate::Store::compact)'s) tries every
//! projection, whichever of them fails or panics.

use std::any::Any;
use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gesta_wal::WalReader;
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::indexes::{Indexes, snapshot_error};
use crate::query::Query;
use crate::read::{Events, ReadOptions};
use crate::shared::Shared;

/// The longest projection name, in bytes: its snapshot key
/// (`projection:<name>:v<version>`) must fit a snapshot key's
/// [`MAX_KEY_LEN`](crate::snapshots::MAX_KEY_LEN) at every version, up to
/// `u32::MAX`'s ten digits.
pub const MAX_PROJECTION_NAME_LEN: usize =
    crate::snapshots::MAX_KEY_LEN - "projection:".len() - ":v".len() - 10;

type Fold<S> = dyn Fn(&mut S, &RecordedEvent) + Send + Sync;
type Encode<S> = dyn Fn(&S) -> Vec<u8> + Send + Sync;
type Decode<S> = dyn Fn(&[u8]) -> Option<S> + Send + Sync;

/// A projection: how to fold matching events into a state of type `S`.
pub struct Projection<S> {
    name: String,
    version: u32,
    query: Query,
    initial: S,
    fold: Arc<Fold<S>>,
    encode: Arc<Encode<S>>,
    decode: Arc<Decode<S>>,
    every: u64,
}

impl<S> std::fmt::Debug for Projection<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projection")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("query", &self.query)
            .field("every", &self.every)
            .finish()
    }
}

impl<S: Clone + Send + Sync + 'static> Projection<S> {
    /// A projection named `name` at `version` over the events matching
    /// `query`: the state starts as `initial`, `fold` applies one event,
    /// and `encode`/`decode` turn the state into snapshot bytes and back
    /// (`decode` returns `None` for bytes it cannot read, which
    /// [`Store::project`](crate::Store::project) reports as corruption of the snapshot).
    /// The name is 1 to [`MAX_PROJECTION_NAME_LEN`] bytes (232), whatever
    /// the version; registering one outside that is
    /// [`Error::InvalidInput`].
    /// Snapshots are written every 1,000 folded events; see
    /// [`snapshot_every`](Self::snapshot_every).
    pub fn new(
        name: impl Into<String>,
        version: u32,
        query: Query,
        initial: S,
        fold: impl Fn(&mut S, &RecordedEvent) + Send + Sync + 'static,
        encode: impl Fn(&S) -> Vec<u8> + Send + Sync + 'static,
        decode: impl Fn(&[u8]) -> Option<S> + Send + Sync + 'static,
    ) -> Projection<S> {
        Projection {
            name: name.into(),
            version,
            query,
            initial,
            fold: Arc::new(fold),
            encode: Arc::new(encode),
            decode: Arc::new(decode),
            every: 1000,
        }
    }

    /// Sets how many folded events the background compactor lets pass
    /// between two snapshots (at least 1).
    pub fn snapshot_every(mut self, events: u64) -> Projection<S> {
        self.every = events.max(1);
        self
    }

    /// The snapshot key of this projection's version.
    pub fn snapshot_key(&self) -> String {
        format!("projection:{}:v{}", self.name, self.version)
    }
}

/// Whether `key` is the snapshot key of a version of the projection named
/// `name`: `projection:<name>:v<digits>`. A prefix would also take the keys
/// of the projections whose names begin with `<name>:v`.
fn is_version_key(key: &str, name: &str) -> bool {
    key.strip_prefix("projection:")
        .and_then(|k| k.strip_prefix(name))
        .and_then(|k| k.strip_prefix(":v"))
        .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
}

/// How one projection's snapshot pass failed.
pub(crate) enum Failure {
    /// It returned an error.
    Failed(Error),
    /// Its `fold`, `encode` or `decode` panicked, with this payload.
    Panicked(Box<dyn Any + Send>),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Failed(e) => write!(f, "{e}"),
            Failure::Panicked(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("no message");
                write!(f, "it panicked: {message}")
            }
        }
    }
}

/// What projections read and write — the log, the index and its
/// snapshots, the head — without the store itself, so that the projector
/// never keeps a store open.
#[derive(Clone)]
pub(crate) struct Source {
    pub reader: WalReader,
    pub indexes: Arc<Indexes>,
    pub shared: Arc<Shared>,
    /// Makes the log durable up to a position (a sync, unless it is
    /// already): a snapshot at a position the log could still lose would
    /// outlive a crash that took the events it folded, and their
    /// positions would be taken by others.
    pub durable: Arc<dyn Fn(u64) -> Result<()> + Send + Sync>,
}

impl Source {
    fn head(&self) -> u64 {
        self.shared.head.load(Ordering::Acquire)
    }

    fn read(&self, query: &Query, options: ReadOptions) -> Events {
        crate::read::read(&self.reader, &self.indexes, self.head(), query, options)
    }
}

/// The state folded so far: up to which position, and how many events were
/// folded since the last snapshot.
struct Folded<S> {
    position: u64,
    state: S,
    since_snapshot: u64,
}

/// A registered projection with its in-memory state.
struct Registered<S> {
    projection: Projection<S>,
    folded: Mutex<Option<Folded<S>>>,
    /// Set, holding `folded`, once another registration replaced this
    /// one: a pass still in flight on it saves no snapshot, which could
    /// be of a version whose snapshots the registration deleted.
    replaced: AtomicBool,
}

impl<S: Clone + Send + Sync + 'static> Registered<S> {
    /// Brings the state up to `head`: from the in-memory copy, or else the
    /// newest snapshot, or else the initial state, folding the matching
    /// events after it. Saves a snapshot if `snapshot` and enough events
    /// were folded since the last one. Returns the state.
    fn catch_up(&self, source: &Source, snapshot: bool) -> Result<S> {
        let mut slot = self.folded.lock();
        let head = source.head();
        // The state is out of its slot while it is folded: a panic in
        // `fold` leaves the slot empty, and the next catch-up starts over
        // from a snapshot instead of from a state folded halfway through
        // an event.
        let mut f = match slot.take() {
            Some(f) if f.position <= head => f,
            _ => self.load(source, head)?,
        };
        let done = self
            .advance(source, &mut f, head, snapshot)
            .map(|()| f.state.clone());
        // After an error too: the state holds exactly the events up to
        // its position.
        *slot = Some(f);
        done
    }

    /// The newest snapshot at or before `head`, or else the initial state.
    fn load(&self, source: &Source, head: u64) -> Result<Folded<S>> {
        let p = &self.projection;
        let key = p.snapshot_key();
        Ok(match crate::snapshots::load(&source.indexes, &key, head)? {
            Some(s) => {
                let state = (p.decode)(&s.state).ok_or_else(|| {
                    let (snapshots, _) = source.indexes.snapshots();
                    snapshot_error(gesta_compaction::snapshot::SnapshotError::Corrupt {
                        path: snapshots.path(&key, s.position),
                        offset: 0,
                        reason: "the projection cannot decode this state",
                    })
                })?;
                Folded {
                    position: s.position,
                    state,
                    since_snapshot: 0,
                }
            }
            None => Folded {
                position: 0,
                state: p.initial.clone(),
                since_snapshot: 0,
            },
        })
    }

    /// Folds the matching events in `f.position+1..=head` into `f`, then
    /// saves a snapshot if `snapshot` and one is due. The position moves
    /// with each event folded, so that a read failing partway leaves a
    /// state that folded every event up to its position and none after.
    fn advance(&self, source: &Source, f: &mut Folded<S>, head: u64, snapshot: bool) -> Result<()> {
        let p = &self.projection;
        if f.position < head {
            for event in source.read(&p.query, ReadOptions::forwards().start(f.position)) {
                let event = event?;
                if event.position > head {
                    break;
                }
                (p.fold)(&mut f.state, &event);
                f.position = event.position;
                f.since_snapshot += 1;
            }
            f.position = head;
        }
        // Under the lock `register` takes to mark a projection replaced.
        if snapshot && f.since_snapshot >= p.every && !self.replaced.load(Ordering::Acquire) {
            (source.durable)(f.position)?;
            crate::snapshots::save(
                &source.indexes,
                head,
                &p.snapshot_key(),
                f.position,
                &(p.encode)(&f.state),
            )?;
            f.since_snapshot = 0;
        }
        Ok(())
    }
}

/// What the registry and the projector thread see of a projection.
trait Erased: Send + Sync {
    fn snapshot_pass(&self, source: &Source) -> Result<()>;
    /// Keeps this projection from saving snapshots from now on, once a
    /// pass in flight on it is done.
    fn mark_replaced(&self);
    /// Runs `then` holding the in-memory state, then drops the state if
    /// it folded the event at `position` or a later one.
    fn forgetting_from(&self, position: u64, then: &mut dyn FnMut() -> Result<()>) -> Result<()>;
    fn as_any(&self) -> &dyn Any;
}

impl<S: Clone + Send + Sync + 'static> Erased for Registered<S> {
    fn snapshot_pass(&self, source: &Source) -> Result<()> {
        self.catch_up(source, true).map(|_| ())
    }

    fn mark_replaced(&self) {
        let _held = self.folded.lock();
        self.replaced.store(true, Ordering::Release);
    }

    fn forgetting_from(&self, position: u64, then: &mut dyn FnMut() -> Result<()>) -> Result<()> {
        let mut folded = self.folded.lock();
        let done = then();
        if folded.as_ref().is_some_and(|f| f.position >= position) {
            *folded = None;
        }
        done
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The projections registered with a store.
#[derive(Default)]
pub(crate) struct Registry {
    projections: Mutex<HashMap<String, Arc<dyn Erased>>>,
}

impl Registry {
    fn all(&self) -> Vec<Arc<dyn Erased>> {
        self.projections.lock().values().cloned().collect()
    }

    /// Catches every projection up and writes the snapshots that are due,
    /// each on its own: one that fails, or whose `fold` panics (which
    /// drops its in-memory state, see `Registered::catch_up`), holds up
    /// none of the others. Returns what failed, by projection name.
    pub(crate) fn snapshot_pass(&self, source: &Source) -> Vec<(String, Failure)> {
        let named: Vec<(String, Arc<dyn Erased>)> = self
            .projections
            .lock()
            .iter()
            .map(|(name, p)| (name.clone(), p.clone()))
            .collect();
        let mut failures = Vec::new();
        for (name, p) in named {
            match panic::catch_unwind(AssertUnwindSafe(|| p.snapshot_pass(source))) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push((name, Failure::Failed(e))),
                Err(payload) => failures.push((name, Failure::Panicked(payload))),
            }
        }
        failures
    }

    /// Runs `then` (which deletes the snapshots at or after `position`)
    /// holding every projection's in-memory state, then drops each state
    /// that folded the event at `position` or a later one, so that it is
    /// folded again from an older snapshot. Held throughout, so that no
    /// pass in flight saves a snapshot of such a state after `then` has
    /// deleted those. The erasure of a redacted event needs this: the
    /// state may hold what was folded from its data.
    pub(crate) fn forgetting_from(
        &self,
        position: u64,
        then: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        fn hold(
            held: &[Arc<dyn Erased>],
            position: u64,
            then: &mut dyn FnMut() -> Result<()>,
        ) -> Result<()> {
            match held.split_first() {
                None => then(),
                Some((first, rest)) => {
                    first.forgetting_from(position, &mut || hold(rest, position, then))
                }
            }
        }
        hold(&self.all(), position, then)
    }

    /// Registers `projection`, replacing one of the same name; deletes the
    /// snapshots of its other versions (after the one it replaces can save
    /// no more). If that deletion fails, the projection is registered all
    /// the same and the error returned: the snapshots left are of another
    /// key, never read, and the next registration deletes them. See
    /// `Store::register_projection`.
    pub(crate) fn register<S: Clone + Send + Sync + 'static>(
        &self,
        source: &Source,
        projection: Projection<S>,
    ) -> Result<()> {
        if projection.name.is_empty() || projection.name.len() > MAX_PROJECTION_NAME_LEN {
            return Err(Error::invalid(format!(
                "a projection name must be 1 to {MAX_PROJECTION_NAME_LEN} bytes long, not {}",
                projection.name.len()
            )));
        }
        projection.query.validate()?;
        let name = projection.name.clone();
        let current = projection.snapshot_key();
        let replaced = self.projections.lock().insert(
            name.clone(),
            Arc::new(Registered {
                projection,
                folded: Mutex::new(None),
                replaced: AtomicBool::new(false),
            }),
        );
        if let Some(replaced) = replaced {
            replaced.mark_replaced();
        }
        // Snapshots of the projection's other versions will never be read.
        let (snapshots, _) = source.indexes.snapshots();
        for key in snapshots.keys().map_err(snapshot_error)? {
            if is_version_key(&key, &name) && key != current {
                snapshots.delete_key(&key).map_err(snapshot_error)?;
            }
        }
        Ok(())
    }

    /// The state of the projection registered as `name` at the head; see
    /// `Store::project`.
    pub(crate) fn project<S: Clone + Send + Sync + 'static>(
        &self,
        source: &Source,
        name: &str,
    ) -> Result<S> {
        let p = self
            .projections
            .lock()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::invalid(format!("no projection named {name:?}")))?;
        let typed = p
            .as_any()
            .downcast_ref::<Registered<S>>()
            .ok_or_else(|| Error::invalid(format!("projection {name:?} has another type")))?;
        typed.catch_up(source, false)
    }
}

#[cfg(test)]
mod tests {
    use super::is_version_key;

    #[test]
    fn version_keys_are_matched_exactly() {
        assert!(is_version_key("projection:user:v1", "user"));
        assert!(is_version_key("projection:user:v4294967295", "user"));
        assert!(is_version_key("projection:user:visits:v2", "user:visits"));
        for other in [
            "projection:user:visits:v1",
            "projection:user:v1:v2",
            "projection:user:v",
            "projection:user:v1x",
            "projection:users:v1",
            "user:v1",
        ] {
            assert!(!is_version_key(other, "user"), "{other}");
        }
    }

    #[test]
    fn the_longest_name_fits_a_snapshot_key_at_every_version() {
        assert_eq!(super::MAX_PROJECTION_NAME_LEN, 232);
        let longest = format!("projection:{}:v{}", "n".repeat(232), u32::MAX);
        assert_eq!(longest.len(), crate::snapshots::MAX_KEY_LEN);
    }
}
