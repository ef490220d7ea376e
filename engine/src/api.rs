//! The [`EventStore`] contract that every store implements — Gesta's engine,
//! the in-memory reference, and the SQL backends — so that one conformance
//! suite and one benchmark harness run over all of them.

use std::ops::ControlFlow;

use crate::append::AppendOptions;
use crate::append::Appended;
use crate::durable::{DurableSubscription, DurableSubscriptionState};
use crate::error::Result;
use crate::event::{NewEvent, RecordedEvent};
use crate::lifecycle::{AuditEntry, Redacted, TagsAdded, Target};
use crate::listing::{Listed, Listing};
use crate::query::Query;
use crate::read::ReadOptions;
use crate::removal::{Removed, RetentionRule};
use crate::snapshots::Snapshot;
use crate::subscription::Subscription;
use crate::view::EventRef;

/// A boxed iterator of read results.
pub type EventIter<'a> = Box<dyn Iterator<Item = Result<RecordedEvent>> + Send + 'a>;

/// An event store with DCB queries and conditional appends, streams with
/// expected revisions and idempotent appends.
///
/// Semantics every implementation follows (the conformance suite checks
/// them against [`MemoryStore`](crate::MemoryStore)):
///
/// - Positions start at 1, grow by one per event without gaps, a batch gets
///   consecutive positions, and a failed append consumes none.
/// - An append is checked in this order, failing with the first error found
///   and appending nothing: input limits ([`Error::InvalidInput`]); event ids
///   — if every event has an id and the ids were committed as exactly this
///   batch, the append succeeds with the original positions and appends
///   nothing, before any other check; if some ids were committed otherwise,
///   or an id repeats in the batch, [`Error::DuplicateEventId`]; expected
///   stream revisions in the order given ([`Error::WrongExpectedRevision`]);
///   the DCB condition ([`Error::ConditionFailed`] naming the first
///   conflicting position); tracking info ([`Error::TrackingConflict`],
///   see [Snapshots and tracking info](#snapshots-and-tracking-info)).
/// - Reads see only committed events; `start` is exclusive in both
///   directions (see [`ReadOptions`]).
///
/// # Snapshots and tracking info
///
/// **Snapshots** are opaque states saved for a key at a position (or a
/// stream revision), so that rebuilding state reads the newest snapshot and
/// folds only the events after it. Every snapshot method first checks the
/// key: 1 to 255 bytes of UTF-8 (any characters), else
/// [`Error::InvalidInput`].
///
/// - [`save_snapshot`](Self::save_snapshot)`(key, position, state)` checks
///   the key, then the state's size (at most 256 MiB,
///   [`MAX_STATE_LEN`](crate::snapshots::MAX_STATE_LEN)), then that
///   `position` is not past the head (a state cannot include events that
///   were not committed; 0 is fine), each failure [`Error::InvalidInput`]
///   with nothing changed. It then stores the state (as durably as the
///   store's commits), replacing a
///   snapshot of the key at the same position, and deletes all but the
///   newest N snapshots of the key by position — the one just saved too,
///   if it is older than N others. N is a store option, `snapshots_kept`,
///   3 by default, 0 keeping all: [`Options::snapshots_kept`],
///   [`MemoryStore::with_snapshots_kept`], and the SQL stores' options.
/// - [`load_snapshot`](Self::load_snapshot)`(key, at_or_before)` is the
///   snapshot of the key with the greatest position `<= at_or_before`
///   (`u64::MAX`: the newest), with its position and the state exactly as
///   saved; `None` if there is none (an unknown key included).
/// - [`list_snapshots`](Self::list_snapshots)`(key)` is the positions of
///   the key's snapshots, ascending; empty for an unknown key.
/// - [`delete_snapshot`](Self::delete_snapshot)`(key, position)` deletes
///   the key's snapshot at exactly `position` and returns whether there
///   was one.
///
/// Snapshots of different keys are independent; they survive reopening.
///
/// **Tracking info** is how far a consumer (a projection, a process
/// manager) named `source` has processed an upstream log, committed
/// atomically with the events it produced:
/// [`AppendOptions::track`]`(source, position)`. The source is 1 to 255
/// bytes of UTF-8, checked with the append's other input. The
/// append's tracking check comes last, after the DCB condition: unless
/// `position` is greater than the source's stored position (any position
/// is, for a source with none), the append fails with
/// [`Error::TrackingConflict`] naming the source, the position given and
/// the stored one, and appends nothing; otherwise the batch commits and
/// the source's stored position becomes `position`, in one atomic step.
/// An append that fails any check stores no tracking info; an idempotent
/// retry (answered by the id check, before the later checks) neither
/// checks nor stores it.
/// [`tracking_info`](Self::tracking_info)`(source)` is the stored position
/// (`None` for a source never tracked). Sources are independent; tracking
/// info survives reopening.
///
/// A store without snapshots or tracking info (none of Gesta's) answers
/// these methods with [`Error::Unsupported`], their default, and refuses
/// appends that carry tracking info.
///
/// [`Error::Unsupported`]: crate::Error::Unsupported
/// [`Error::InvalidInput`]: crate::Error::InvalidInput
/// [`Error::TrackingConflict`]: crate::Error::TrackingConflict
/// [`AppendOptions::track`]: crate::AppendOptions::track
/// [`Options::snapshots_kept`]: crate::Options::snapshots_kept
/// [`MemoryStore::with_snapshots_kept`]: crate::MemoryStore::with_snapshots_kept
/// [`Error::DuplicateEventId`]: crate::Error::DuplicateEventId
/// [`Error::WrongExpectedRevision`]: crate::Error::WrongExpectedRevision
/// [`Error::ConditionFailed`]: crate::Error::ConditionFailed
pub trait EventStore: Send + Sync {
    /// Appends a batch atomically, subject to `options`.
    fn append_with(&self, events: Vec<NewEvent>, options: AppendOptions) -> Result<Appended>;

    /// Appends a batch atomically, unconditionally.
    fn append(&self, events: Vec<NewEvent>) -> Result<Appended> {
        self.append_with(events, AppendOptions::default())
    }

    /// Events matching `query`, per `options`, in position order (reversed
    /// when reading backwards).
    fn read<'a>(&'a self, query: &Query, options: ReadOptions) -> Result<EventIter<'a>>;

    /// The events [`read`](Self::read) yields, handed to `f` one by one as
    /// borrowed views ([`EventRef`]) instead of owned events, until `f`
    /// answers [`ControlFlow::Break`]: a store that can lend its buffers
    /// allocates nothing per event (the engine lends its mapped segments,
    /// SQLite its rows). The same events in the same order as `read`; the
    /// same errors, with the events before a damaged one already handed
    /// to `f`. The default reads owned events and lends those.
    ///
    /// ```
    /// use std::ops::ControlFlow;
    /// use gesta::{EventStore, MemoryStore, NewEvent, Query, ReadOptions};
    ///
    /// let store = MemoryStore::new();
    /// store.append(vec![
    ///     NewEvent::new("Enrolled", "{}").tag("course:c1"),
    ///     NewEvent::new("Enrolled", "{}").tag("course:c2"),
    /// ])?;
    /// let mut in_c1 = 0;
    /// let enrolled = Query::event_type("Enrolled");
    /// store.read_each(&enrolled, ReadOptions::forwards(), &mut |e| {
    ///     let mut tags = e.tags; // borrowed, like e.event_type and e.data
    ///     if tags.any(|t| t == "course:c1") {
    ///         in_c1 += 1;
    ///     }
    ///     ControlFlow::Continue(()) // Break(()) stops the read
    /// })?;
    /// assert_eq!(in_c1, 1);
    /// # Ok::<(), gesta::Error>(())
    /// ```
    fn read_each(
        &self,
        query: &Query,
        options: ReadOptions,
        f: &mut dyn FnMut(EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
        crate::view::lend_owned(self.read(query, options)?, f)
    }

    /// The newest event matching `query`.
    fn read_last(&self, query: &Query) -> Result<Option<RecordedEvent>> {
        self.read(query, ReadOptions::backwards().limit(1))?
            .next()
            .transpose()
    }

    /// The position of the last committed event (0 when empty).
    fn head(&self) -> Result<u64>;

    /// The last revision of `stream` (None when it has no events).
    fn stream_revision(&self, stream: &str) -> Result<Option<u64>>;

    /// The events of `stream` in revision order (reversed when reading
    /// backwards), with `options.start` a **revision**, exclusive as a
    /// position is for [`read`](Self::read): forwards yields revisions
    /// `> start`, backwards revisions `< start`. A stream without events
    /// reads as empty; an invalid name is [`Error::InvalidInput`].
    ///
    /// [`Error::InvalidInput`]: crate::Error::InvalidInput
    fn read_stream<'a>(&'a self, stream: &str, options: ReadOptions) -> Result<EventIter<'a>> {
        let _ = (stream, options);
        Err(crate::Error::Unsupported {
            what: "stream reads",
        })
    }

    /// The events [`read_stream`](Self::read_stream) yields, handed to `f`
    /// one by one as borrowed views until `f` answers
    /// [`ControlFlow::Break`], as [`read_each`](Self::read_each) does for
    /// queries: the engine lends each event from its mapped segment, the
    /// SQL stores from their rows. The same events, order and errors as
    /// `read_stream`; the default reads owned events and lends those.
    fn read_stream_each(
        &self,
        stream: &str,
        options: ReadOptions,
        f: &mut dyn FnMut(EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
        crate::view::lend_owned(self.read_stream(stream, options)?, f)
    }

    /// The newest event of `stream` (None when it has no events).
    fn read_stream_last(&self, stream: &str) -> Result<Option<RecordedEvent>> {
        self.read_stream(stream, ReadOptions::backwards().limit(1))?
            .next()
            .transpose()
    }

    /// The last position committed at or before `timestamp_micros`
    /// (microseconds since the Unix epoch, as events' `timestamp_micros`):
    /// 0 before the first event, the head after the last. Commit times
    /// never decrease with positions, so a read from a time is
    /// `read(query, ReadOptions::forwards().start(position_at(t - 1)))`.
    fn position_at(&self, timestamp_micros: u64) -> Result<u64> {
        let _ = timestamp_micros;
        Err(crate::Error::Unsupported {
            what: "lookups by time",
        })
    }

    /// The committed event with id `id`, if any.
    fn event_by_id(&self, id: u128) -> Result<Option<RecordedEvent>> {
        let _ = id;
        Err(crate::Error::Unsupported {
            what: "lookups by event id",
        })
    }

    /// The event [`event_by_id`](Self::event_by_id) finds, lent to `f` as
    /// a borrowed view, as [`read_each`](Self::read_each) lends: the engine
    /// lends it from its mapped segment, the SQL stores from their row.
    /// Whether an event was found (`f` is then called once, else never);
    /// the same answers and errors as `event_by_id`. The default looks the
    /// event up owned and lends that.
    fn event_by_id_with(&self, id: u128, f: &mut dyn FnMut(EventRef<'_>)) -> Result<bool> {
        Ok(match self.event_by_id(id)? {
            Some(e) => {
                f(EventRef::from(&e));
                true
            }
            None => false,
        })
    }

    // --- Listings: streams, event types and tags, with counts ---

    /// One page of the names of `what` this store holds — stream names,
    /// event types or tags — each with its count of committed events not
    /// removed (a stream's is its last revision + 1 less its removed
    /// events, so not the next revision once any was removed: ask
    /// [`stream_revision`](Self::stream_revision) for that; a tag's counts
    /// each event that carries it once). The contract, the same on every
    /// store:
    ///
    /// - names in byte order (of their UTF-8 encoding), each once, only
    ///   names with at least one committed event;
    /// - only names starting with `prefix` (`""`: all);
    /// - only names after `after` (exclusive), so keyset pagination passes
    ///   the last name of a page as the next page's `after`, and the pages
    ///   put together are the whole listing; `after` need not be a name the
    ///   store holds;
    /// - at most `limit` names; a page shorter than `limit` is the last;
    /// - answered from the indices, in time proportional to the names
    ///   listed (and, on the SQL stores, to the events counted), never by
    ///   scanning the log.
    ///
    /// A `prefix` or `after` longer than
    /// [`MAX_NAME_LEN`](crate::event::MAX_NAME_LEN) bytes, or a `limit` of 0
    /// or above [`MAX_LIST_LIMIT`](crate::listing::MAX_LIST_LIMIT), is
    /// [`Error::InvalidInput`](crate::Error::InvalidInput).
    fn list(
        &self,
        what: Listing,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Listed>> {
        let _ = (what, prefix, after, limit);
        Err(crate::Error::Unsupported { what: "listings" })
    }

    /// [`list`](Self::list) of stream names.
    fn list_streams(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<Listed>> {
        self.list(Listing::Streams, prefix, after, limit)
    }

    /// [`list`](Self::list) of event types.
    fn list_types(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<Listed>> {
        self.list(Listing::Types, prefix, after, limit)
    }

    /// [`list`](Self::list) of tags.
    fn list_tags(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<Listed>> {
        self.list(Listing::Tags, prefix, after, limit)
    }

    // --- End of listings ---

    /// Every committed event matching `query` after position `after`, then
    /// each append as it commits; see [`Subscription`]. Stores that cannot
    /// follow commits live return [`Error::Unsupported`].
    ///
    /// [`Error::Unsupported`]: crate::Error::Unsupported
    fn subscribe(&self, query: &Query, after: u64) -> Result<Subscription> {
        let _ = (query, after);
        Err(crate::Error::Unsupported {
            what: "subscriptions",
        })
    }

    // --- Snapshots and tracking info (see the trait's docs) ---

    /// Saves `state` for `key` at `position`, then keeps only the key's
    /// newest snapshots; see [Snapshots and tracking
    /// info](#snapshots-and-tracking-info).
    fn save_snapshot(&self, key: &str, position: u64, state: &[u8]) -> Result<()> {
        let _ = (key, position, state);
        Err(crate::Error::Unsupported { what: "snapshots" })
    }

    /// The snapshot of `key` with the greatest position at or before
    /// `at_or_before` (`u64::MAX`: the newest), if any.
    fn load_snapshot(&self, key: &str, at_or_before: u64) -> Result<Option<Snapshot>> {
        let _ = (key, at_or_before);
        Err(crate::Error::Unsupported { what: "snapshots" })
    }

    /// The positions of `key`'s snapshots, ascending.
    fn list_snapshots(&self, key: &str) -> Result<Vec<u64>> {
        let _ = key;
        Err(crate::Error::Unsupported { what: "snapshots" })
    }

    /// Deletes `key`'s snapshot at `position`; returns whether there was
    /// one.
    fn delete_snapshot(&self, key: &str, position: u64) -> Result<bool> {
        let _ = (key, position);
        Err(crate::Error::Unsupported { what: "snapshots" })
    }

    /// The tracking position stored for `source` by the last append that
    /// carried tracking info for it ([`AppendOptions::tracking`]), or
    /// `None` if none did.
    fn tracking_info(&self, source: &str) -> Result<Option<u64>> {
        let _ = source;
        Err(crate::Error::Unsupported {
            what: "tracking info",
        })
    }

    // --- Lifecycle: changes to committed events, and their audit trail ---

    /// Adds `tags` to the committed events `target` names, durably, without
    /// moving any position; see [the lifecycle contract](crate::lifecycle)
    /// for what reads, queries, conditions and subscriptions see, and for
    /// the checks (each [`Error::InvalidInput`], changing nothing).
    ///
    /// ```
    /// use gesta::lifecycle::Target;
    /// use gesta::{EventStore, MemoryStore, NewEvent, Query};
    ///
    /// let store = MemoryStore::new();
    /// store.append(vec![NewEvent::new("Enrolled", "{}").tag("student:s1")])?;
    /// let added = store.add_tags(&Target::Query(Query::tag("student:s1")), &["gdpr:s1".into()])?;
    /// assert_eq!(added.tagged, 1);
    /// assert_eq!(store.read_last(&Query::tag("gdpr:s1"))?.unwrap().tags, ["student:s1", "gdpr:s1"]);
    /// # Ok::<(), gesta::Error>(())
    /// ```
    ///
    /// [`Error::InvalidInput`]: crate::Error::InvalidInput
    fn add_tags(&self, target: &Target, tags: &[String]) -> Result<TagsAdded> {
        let _ = (target, tags);
        Err(crate::Error::Unsupported {
            what: "retroactive tags",
        })
    }

    /// Erases the data and metadata of the committed events `target`
    /// names, durably; type, tags, stream, revision, id, position and
    /// commit time stay, so the history keeps its shape. See [the
    /// lifecycle contract](crate::lifecycle) for what reads return and
    /// when the bytes leave the store's files.
    ///
    /// ```
    /// use gesta::lifecycle::Target;
    /// use gesta::{EventStore, MemoryStore, NewEvent, Query};
    ///
    /// let store = MemoryStore::new();
    /// store.append(vec![NewEvent::new("Registered", r#"{"email":"a@b.c"}"#).tag("user:u1")])?;
    /// store.redact(&Target::Query(Query::tag("user:u1")))?;
    /// let event = store.read_last(&Query::tag("user:u1"))?.unwrap();
    /// assert!(event.data.is_empty() && event.event_type == "Registered");
    /// # Ok::<(), gesta::Error>(())
    /// ```
    fn redact(&self, target: &Target) -> Result<Redacted> {
        let _ = target;
        Err(crate::Error::Unsupported { what: "redaction" })
    }

    /// Removes committed events: no read returns them from then on (see
    /// the [`removal`](crate::removal) contract: positions stay, streams
    /// keep counting revisions, ids stay taken).
    ///
    /// ```
    /// use gesta::lifecycle::Target;
    /// use gesta::{EventStore, MemoryStore, NewEvent, Query};
    ///
    /// let store = MemoryStore::new();
    /// store.append(vec![NewEvent::new("Seen", "1").tag("x"), NewEvent::new("Seen", "2")])?;
    /// store.remove(&Target::Query(Query::tag("x")))?;
    /// let left: Vec<u64> = store.read(&Query::all(), Default::default())?
    ///     .map(|e| e.map(|e| e.position))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(left, [2]);
    /// # Ok::<(), gesta::Error>(())
    /// ```
    fn remove(&self, target: &Target) -> Result<Removed> {
        let _ = target;
        Err(crate::Error::Unsupported { what: "removal" })
    }

    /// Removes every event of `stream` committed so far (a soft delete:
    /// the name stays usable and its revisions go on from where they
    /// were).
    fn delete_stream(&self, stream: &str) -> Result<Removed> {
        let _ = stream;
        Err(crate::Error::Unsupported {
            what: "stream deletion",
        })
    }

    /// Removes the events of `stream` with revisions below `before`.
    fn truncate_stream(&self, stream: &str, before: u64) -> Result<Removed> {
        let _ = (stream, before);
        Err(crate::Error::Unsupported {
            what: "stream truncation",
        })
    }

    /// Sets a retention rule, replacing the rule of its scope (a rule
    /// without limits clears it).
    fn set_retention(&self, rule: &RetentionRule) -> Result<()> {
        let _ = rule;
        Err(crate::Error::Unsupported {
            what: "retention rules",
        })
    }

    /// The retention rules in force.
    fn retention_rules(&self) -> Result<Vec<RetentionRule>> {
        Err(crate::Error::Unsupported {
            what: "retention rules",
        })
    }

    /// Enforces every retention rule now, each as one removal in the audit
    /// trail; returns what they removed together.
    fn enforce_retention(&self) -> Result<Removed> {
        Err(crate::Error::Unsupported {
            what: "retention rules",
        })
    }

    /// The audit trail: every lifecycle operation committed, oldest first,
    /// from sequence `after + 1`, at most `limit` entries.
    fn audit_log(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        let _ = (after, limit);
        Err(crate::Error::Unsupported {
            what: "the audit trail",
        })
    }

    // ---- Durable subscriptions (the rules: `DurableCursors`) ----

    /// A subscription to `query` that resumes after the position last
    /// acknowledged under `name` (from the start if there is none), kept by
    /// the store across reopens: at-least-once delivery; see
    /// [`DurableSubscription`] and, for the rules every store keeps,
    /// [`DurableCursors`](crate::DurableCursors). One subscription per name
    /// may be open through one handle.
    fn subscribe_durable(&self, name: &str, query: &Query) -> Result<DurableSubscription> {
        let _ = (name, query);
        Err(crate::Error::Unsupported {
            what: "durable subscriptions",
        })
    }

    /// Every durable subscription the store keeps, with the position it
    /// acknowledged last, by name.
    fn durable_subscriptions(&self) -> Result<Vec<DurableSubscriptionState>> {
        Err(crate::Error::Unsupported {
            what: "durable subscriptions",
        })
    }

    /// Forgets a durable subscription's acknowledged position (the next
    /// subscription under that name starts from the beginning); false if
    /// there was none; [`Error::InvalidInput`] while one is open.
    ///
    /// [`Error::InvalidInput`]: crate::Error::InvalidInput
    fn delete_durable_subscription(&self, name: &str) -> Result<bool> {
        let _ = name;
        Err(crate::Error::Unsupported {
            what: "durable subscriptions",
        })
    }
}
