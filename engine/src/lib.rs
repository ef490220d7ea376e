//! Gesta: an embedded, log-structured event store.
//!
//! Every event a [`Store`] accepts is appended, in one global order, to a
//! write-ahead segment log; a batch gets consecutive positions and commits
//! atomically; concurrent appends share one `fdatasync` through group
//! commit; reopening the store recovers the log, cutting off a torn tail and
//! refusing anything corrupt. There is no external database.
//!
//! ```no_run
//! use gesta::{NewEvent, Query, ReadOptions, Store};
//!
//! let store = Store::open("/tmp/my-store")?;
//! let appended = store.append(vec![
//!     NewEvent::new("CourseDefined", r#"{"capacity":30}"#).tag("course:c1"),
//! ])?;
//! for event in store.read(&Query::all(), ReadOptions::forwards())? {
//!     let event = event?;
//!     println!("{} {}", event.position, event.event_type);
//! }
//! # Ok::<(), gesta::Error>(())
//! ```
//!
//! Keeping a store small and fast as it grows: [`Store::compact`], the
//! background compactor (flushes, size-tiered merges, segment compression,
//! projection snapshots), [`snapshots`] (saved state at a position) and
//! [`projections`] (folds the compactor snapshots).
//!
//! Module map (`docs/ARCHITECTURE.md` follows an append and a query through
//! it): `store` (the [`Store`] handle: open, append, read, close; its
//! snapshot, projection and compaction methods in submodules), `committer`
//! (the single writer thread: positions, publishing) on
//! `gesta_wal::GroupCommit` (write, sync policy, poisoning), `admission`
//! (ids, expected revisions, the DCB condition, tracking info), `shared`
//! (the head and what else the committer publishes), `indexes` (runs,
//! memtables and the view readers take), `compactor` (the background
//! threads), [`read`] (read options, the event iterator, finding events by
//! position), `subscription` and `subscribe` ([`Subscription`]s: catch-up
//! then live, fed by any store through `SubscriptionFeed`), `durable`
//! (durable subscriptions on every store: the ack rules and the
//! `CursorStore` a store provides; the engine's cursor files are
//! `cursors`), `notify` (the `CommitHub` that wakes subscribers), [`replication`]
//! (read replicas: refused writes, records applied from the writer's log), `query`, `revision`, `append`,
//! [`event`] and `error` (the types of the API), `codec` (the event
//! encoding inside a record), `tracking` (tracking info read back),
//! [`validation`] (the input checks every store shares), [`options`],
//! [`clock`] (the time seam), [`snapshots`], [`projections`], `memory`
//! (the reference store) and [`inspect`] (verify, stats, repair and follow
//! a store directory without opening it). No module imports another that
//! imports it back.
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod admission;
mod ahead;
mod amended;
mod api;
mod append;
pub mod clock;
mod codec;
mod committer;
mod compactor;
mod cursors;
mod durable;
#[cfg(feature = "encryption")]
pub mod encryption;
mod error;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
mod indexes;
pub mod inspect;
pub mod lifecycle;
pub mod listing;
mod memory;
mod names;
mod notify;
mod oneshot;
pub mod options;
pub mod projections;
mod query;
pub mod read;
pub mod removal;
pub mod replication;
mod revision;
mod shared;
pub mod snapshots;
mod store;
mod subscribe;
mod subscription;
mod target;
pub mod telemetry;
pub mod tenants;
mod tracking;
pub mod view;

pub use api::{EventIter, EventStore};
pub use append::{AppendCondition, AppendOptions, Appended, ExpectedRevision};
pub use error::{Error, Result};
pub use event::{NewEvent, RecordedEvent};
pub use lifecycle::{AuditEntry, Operation, Redacted, TagsAdded, Target};
pub use listing::{Listed, Listing};
pub use memory::MemoryStore;
pub use options::{
    Compression, Durability, EvictRefusal, EvictedSegment, GroupLimits, Options, RemoteSegments,
};
pub use query::{Query, QueryItem};
pub use removal::{Removal, Removed, RetentionRule, RetentionScope};
pub use replication::{Applied, JournalApplied};

/// The input checks every store applies before it touches anything, so that
/// other implementations of [`EventStore`] (the SQL backends) refuse exactly
/// what the engine refuses, with the same [`Error::InvalidInput`] reasons.
pub mod validation {
    use crate::error::Result;
    use crate::event::NewEvent;
    use crate::query::Query;

    /// Checks a batch against the documented limits (non-empty, names,
    /// tags, data and metadata sizes, encoded batch size).
    pub fn check_batch(events: &[NewEvent]) -> Result<()> {
        crate::codec::encode_batch(events).map(|_| ())
    }

    /// Every input check of an append, in the contract's order: the batch's
    /// limits, then the condition's query, the expected streams' names, the
    /// tracking source's name, and ids repeated within the batch. (The
    /// condition's `after` against the head is [`check_after`], which needs
    /// the head.)
    pub fn check_append(events: &[NewEvent], options: &crate::AppendOptions) -> Result<()> {
        check_append_encoded(events, options).map(drop)
    }

    /// [`check_append`], returning the encoded batch.
    pub(crate) fn check_append_encoded(
        events: &[NewEvent],
        options: &crate::AppendOptions,
    ) -> Result<Vec<u8>> {
        let encoded = crate::codec::encode_batch(events)?;
        if let Some(c) = &options.condition {
            c.fail_if_events_match.validate()?;
        }
        for (stream, _) in &options.expected {
            crate::event::check_stream_name(stream)?;
        }
        if let Some((source, _)) = &options.tracking {
            crate::tracking::check_tracking_source(source)?;
        }
        check_ids_unique(events)?;
        Ok(encoded)
    }

    /// Checks a query's names against the limits events have.
    pub fn check_query(query: &Query) -> Result<()> {
        query.validate()
    }

    pub use crate::listing::check_listing;

    /// Checks a stream name given outside an event.
    pub fn check_stream_name(name: &str) -> Result<()> {
        crate::event::check_stream_name(name)
    }

    /// Refuses tracking info, for stores that do not keep it.
    pub fn refuse_tracking(options: &crate::AppendOptions) -> Result<()> {
        match options.tracking {
            Some(_) => Err(crate::Error::Unsupported {
                what: "tracking info",
            }),
            None => Ok(()),
        }
    }

    /// Checks that no id repeats within a batch.
    pub fn check_ids_unique(events: &[NewEvent]) -> Result<()> {
        let mut seen = std::collections::HashMap::new();
        for (i, e) in events.iter().enumerate() {
            if let Some(id) = e.id
                && let Some(first) = seen.insert(id, i)
            {
                return Err(crate::Error::invalid(format!(
                    "event id {} appears twice in the batch (at indices {first} and {i})",
                    crate::error::Uuid(id)
                )));
            }
        }
        Ok(())
    }

    /// Checks a condition's `after` against the store's head: a decision
    /// made on positions the store never had is a client bug. Every
    /// position a client can know is at or below the head at the time it
    /// learned it, and the head only grows, so checking against the head
    /// of any moment after the call began is exact.
    pub fn check_after(options: &crate::AppendOptions, head: u64) -> Result<()> {
        match options.condition.as_ref().and_then(|c| c.after) {
            Some(after) if after > head => Err(crate::Error::invalid(format!(
                "the condition's after {after} is beyond the head {head}"
            ))),
            _ => Ok(()),
        }
    }

    // Snapshots and tracking info (see the `EventStore` trait's docs).

    /// Checks a snapshot key (1 to 255 bytes), as every snapshot method
    /// does first.
    pub fn check_snapshot_key(key: &str) -> Result<()> {
        crate::snapshots::check_key(key)
    }

    /// The checks of a snapshot save, in the contract's order: the key,
    /// the state's size, the position against the store's `head`.
    pub fn check_snapshot_save(head: u64, key: &str, position: u64, state: &[u8]) -> Result<()> {
        crate::snapshots::check_save(head, key, position, state)
    }

    /// Checks a tracking source's name (1 to 255 bytes).
    pub fn check_tracking_source(source: &str) -> Result<()> {
        crate::tracking::check_tracking_source(source)
    }

    /// The tracking check of an append: `position` must be greater than
    /// the position `stored` for `source` (any position is, when none is).
    pub fn check_tracking(source: &str, position: u64, stored: Option<u64>) -> Result<()> {
        match stored {
            Some(stored) if position <= stored => Err(crate::Error::TrackingConflict {
                source_name: source.to_owned(),
                position,
                stored,
            }),
            _ => Ok(()),
        }
    }

    /// The positions a save leaves to delete so that the newest `kept`
    /// remain (`kept == 0`: none), given all of a key's positions ascending.
    pub fn snapshots_past_retention(positions: &[u64], kept: usize) -> &[u64] {
        match kept {
            0 => &[],
            _ => &positions[..positions.len().saturating_sub(kept)],
        }
    }
}
pub use cursors::MAX_NAME_LEN as MAX_DURABLE_NAME_LEN;
pub use durable::{
    Acker, CursorStore, DurableCursors, DurableSubscription, DurableSubscriptionState,
};
pub use notify::CommitHub;
pub use projections::{MAX_PROJECTION_NAME_LEN, Projection};
pub use read::{Direction, Events, ReadOptions};
pub use snapshots::Snapshot;
pub use store::{BACKUP_INCOMPLETE, BackupReport, IndexShape, SealedSegment, Store};
pub use subscription::{
    FETCH_BYTES, FETCH_EVENTS, Subscription, SubscriptionFeed, SubscriptionStream, TakeRow,
    fetch_by_append, fetch_bytes,
};
pub use view::{EventRef, Tags};

pub use gesta_wal::CacheStats;
/// The I/O seam, re-exported so tests and tools can open a store on another
/// file system.
pub use gesta_wal::io;
pub use gesta_wal::{RecoveryReport, TornTail};
