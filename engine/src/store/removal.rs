//! Removal and retention on the engine: the contract is the `removal`
//! module's; each operation is resolved against the index (hidden
//! positions left out), committed as a lifecycle journal entry and applied
//! to the view's hidden set and the amendments, as `store::lifecycle`
//! does for every operation.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use gesta_index::{Direction, ItemSpec, Key, Positions, QuerySpec};

use super::{Inner, Store};
use crate::error::{Error, Result};
use crate::event::check_stream_name;
use crate::lifecycle::{self as lc, Operation, Target};
use crate::query::query_spec;
use crate::removal::{
    self, Removal, Removed, RetentionRule, RetentionScope, check_rule, plan_remove,
};

impl Store {
    /// Removes committed events; see
    /// [`EventStore::remove`](crate::EventStore::remove) and the
    /// [`removal`](crate::removal) contract.
    pub fn remove(&self, target: &Target) -> Result<Removed> {
        self.writable()?;
        lc::check_target(target)?;
        let mut lifecycle = self.lifecycle()?;
        let head = self.head();
        let positions = self.resolve(target, head)?;
        self.commit_removal(
            &mut lifecycle,
            head,
            Removal::Target(target.clone()),
            &positions,
        )
    }

    /// Removes the events of `stream` with revisions below `before`; see
    /// [`EventStore::truncate_stream`](crate::EventStore::truncate_stream).
    pub fn truncate_stream(&self, stream: &str, before: u64) -> Result<Removed> {
        self.remove_from_stream(stream, Some(before))
    }

    /// Removes every event of `stream`; see
    /// [`EventStore::delete_stream`](crate::EventStore::delete_stream).
    pub fn delete_stream(&self, stream: &str) -> Result<Removed> {
        self.remove_from_stream(stream, None)
    }

    fn remove_from_stream(&self, stream: &str, before: Option<u64>) -> Result<Removed> {
        self.writable()?;
        check_stream_name(stream)?;
        let mut lifecycle = self.lifecycle()?;
        let head = self.head();
        // The stream's postings, removed ones included, are its revisions
        // in order: the first `before` of them are the ones to go.
        let view = self.inner.indexes.view().including_hidden();
        let spec = stream_spec(stream);
        let limit = before.map_or(usize::MAX, |b| usize::try_from(b).unwrap_or(usize::MAX));
        let amendments = self.inner.indexes.amendments();
        let positions: Vec<u64> =
            Positions::new(view.evaluate(&spec), 1, head, Direction::Forwards)
                .take(limit)
                .filter(|&p| !amendments.is_removed(p))
                .take(lc::MAX_TARGETED_EVENTS + 1)
                .collect();
        // Those removed already do not count against the limit (as on the
        // other stores, which target only the events still there).
        lc::check_targeted(positions.len())?;
        let removal = Removal::Stream {
            stream: stream.to_owned(),
            before,
        };
        self.commit_removal(&mut lifecycle, head, removal, &positions)
    }

    fn commit_removal(
        &self,
        lifecycle: &mut super::lifecycle::Lifecycle,
        head: u64,
        removal: Removal,
        positions: &[u64],
    ) -> Result<Removed> {
        let amendments = self.inner.indexes.amendments();
        let (removed, result) = plan_remove(positions, |p| amendments.is_removed(p));
        let operation = Operation::Remove { removal, result };
        self.commit(lifecycle, head, operation, &[removed])?;
        Ok(result)
    }

    /// Sets a retention rule (replacing the rule of its scope; without
    /// limits, clearing it); see
    /// [`EventStore::set_retention`](crate::EventStore::set_retention).
    pub fn set_retention(&self, rule: &RetentionRule) -> Result<()> {
        self.writable()?;
        check_rule(rule)?;
        let mut lifecycle = self.lifecycle()?;
        removal::with_rule(&lifecycle.rules, rule)?;
        let head = self.head();
        let operation = Operation::SetRetention { rule: rule.clone() };
        self.commit(&mut lifecycle, head, operation, &[])?;
        drop(lifecycle);
        self.start_retention()
    }

    /// Starts the background enforcement of the retention rules, unless it
    /// runs already.
    pub(super) fn start_retention(&self) -> Result<()> {
        let interval = self.inner.retention_interval;
        self.inner
            .retention
            .ensure(Arc::downgrade(&self.inner), interval)
            .map_err(|source| Error::Io {
                path: self.path().to_owned(),
                source,
            })
    }

    /// The retention rules in force.
    pub fn retention_rules(&self) -> Result<Vec<RetentionRule>> {
        Ok(self.lifecycle()?.rules.clone())
    }

    /// Enforces every retention rule now; see
    /// [`EventStore::enforce_retention`](crate::EventStore::enforce_retention).
    /// A rule that finds nothing to remove records nothing.
    pub fn enforce_retention(&self) -> Result<Removed> {
        self.writable()?;
        let mut total = Removed::default();
        let rules = self.lifecycle()?.rules.clone();
        for rule in rules {
            // A rule removes at most MAX_TARGETED_EVENTS per operation:
            // repeat until it finds nothing more.
            loop {
                let mut lifecycle = self.lifecycle()?;
                // A rule changed or cleared meanwhile is not enforced.
                if !lifecycle.rules.contains(&rule) {
                    break;
                }
                let head = self.head();
                let now = self.inner.clock.now_micros();
                let spec = match &rule.scope {
                    RetentionScope::Stream(s) => stream_spec(s),
                    RetentionScope::Query(q) => query_spec(q),
                };
                let view = self.inner.indexes.view();
                // The removed events are the scope's oldest ones, up to a
                // cut: the newest one too old, or the newest beyond the
                // count. Only those are collected, so a pass that removes
                // nothing costs a time lookup and `max_count` steps, not
                // the whole scope.
                let too_old = match removal::too_old_at_or_before(&rule, now) {
                    Some(t) => self.position_at(t)?,
                    None => 0,
                };
                let beyond_count = rule.max_count.map_or(0, |n| {
                    let mut newest =
                        Positions::new(view.evaluate(&spec), 1, head, Direction::Backwards);
                    newest
                        .nth(usize::try_from(n).unwrap_or(usize::MAX))
                        .unwrap_or(0)
                });
                let cut = too_old.max(beyond_count).min(head);
                let positions: Vec<u64> =
                    Positions::new(view.evaluate(&spec), 1, cut, Direction::Forwards)
                        .take(lc::MAX_TARGETED_EVENTS)
                        .collect();
                let n = positions.len();
                if n == 0 {
                    break;
                }
                let removal = Removal::Retention(rule.clone());
                let done = self.commit_removal(&mut lifecycle, head, removal, &positions)?;
                total += done;
                if done.removed == 0 || n < lc::MAX_TARGETED_EVENTS {
                    break;
                }
            }
        }
        Ok(total)
    }
}

/// The query spec of a stream's events.
fn stream_spec(stream: &str) -> QuerySpec {
    QuerySpec {
        items: vec![ItemSpec {
            types: Vec::new(),
            tags: vec![Key::stream(stream)],
        }],
    }
}

/// The thread (`gesta-retention`) that enforces a store's retention rules
/// every [`Options::retention_interval`](crate::Options::retention_interval),
/// started by the first rule (or on open, if the store has rules). It holds
/// the store weakly, so that it never keeps one open: `close` waits for a
/// pass in flight; dropping the last handle during a pass closes the store
/// when the pass ends (on this thread). It ends when the store closes.
#[derive(Default)]
pub(crate) struct Retention(parking_lot::Mutex<Option<(Sender<()>, JoinHandle<()>)>>);

impl Retention {
    fn ensure(&self, store: Weak<Inner>, interval: Duration) -> std::io::Result<()> {
        let mut running = self.0.lock();
        if running.is_none() {
            let (stop, stopped) = crossbeam_channel::bounded(1);
            let handle = std::thread::Builder::new()
                .name("gesta-retention".into())
                .spawn(move || enforce_every(store, interval, stopped))?;
            *running = Some((stop, handle));
        }
        Ok(())
    }

    /// Stops the thread and waits for the pass in flight — unless the
    /// caller is that thread (its pass dropped the last handle of the
    /// store), which then ends by itself.
    pub(crate) fn stop(&self) {
        if let Some((stop, handle)) = self.0.lock().take() {
            drop(stop);
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
    }
}

fn enforce_every(store: Weak<Inner>, interval: Duration, stop: Receiver<()>) {
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(interval) {
        let Some(inner) = store.upgrade() else {
            return;
        };
        let store = Store { inner };
        if store.is_closed() {
            return;
        }
        match store.enforce_retention() {
            Ok(done) if done.removed > 0 => {
                log::info!("gesta: retention removed {} events", done.removed);
            }
            Ok(_) => {}
            Err(e) if store.is_closed() => {
                let _ = e;
                return;
            }
            Err(e) => log::error!("gesta: retention failed (will retry): {e}"),
        }
    }
}
