//! The [`EventStore`] contract that every store implements — Gesta's engine,
//! the in-memory reference, and the SQL backends — so that one conformance
//! suite and one benchmark harness run over all of them.

use crate::append::AppendOptions;
use crate::append::Appended;
use crate::durable::{DurableSubscription, DurableSubscriptionState};
use crate::error::Result;
use crate::event::{NewEvent, RecordedEvent};
use crate::query::Query;
use crate::read::ReadOptions;
use crate::subscription::Subscription;

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
///   conflicting position).
/// - Reads see only committed events; `start` is exclusive in both
///   directions (see [`ReadOptions`]).
///
/// [`Error::InvalidInput`]: crate::Error::InvalidInput
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
