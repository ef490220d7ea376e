//! What an append may demand besides its events: a DCB append condition and
//! expected stream revisions.

use crate::query::Query;
pub use crate::revision::ExpectedRevision;

/// The DCB append condition: the append fails, atomically, if any committed
/// event with a position greater than `after` (any event at all when `after`
/// is `None`) matches `fail_if_events_match`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendCondition {
    /// The query no new event may match.
    pub fail_if_events_match: Query,
    /// The position up to which the caller has seen the facts it decided on.
    pub after: Option<u64>,
}

impl AppendCondition {
    /// Fail if anything matching `query` exists after `after`.
    pub fn new(query: Query, after: Option<u64>) -> AppendCondition {
        AppendCondition {
            fail_if_events_match: query,
            after,
        }
    }
}

/// The positions an append was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Appended {
    /// Position of the batch's first event.
    pub first: u64,
    /// Position of the batch's last event.
    pub last: u64,
}

/// Options of one append.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendOptions {
    /// The DCB condition, if any.
    pub condition: Option<AppendCondition>,
    /// Expected revisions of streams (any streams, not only those the
    /// batch's events name).
    pub expected: Vec<(String, ExpectedRevision)>,
    /// Tracking info `(source, position)`: how far a projection or process
    /// manager named `source` has processed its upstream, committed
    /// atomically with the events. The append fails with
    /// [`Error::TrackingConflict`](crate::Error::TrackingConflict) unless
    /// `position` is greater than the source's stored position, so a
    /// consumer that crashes between processing and recording cannot record
    /// the same upstream position twice. Read it back with
    /// [`EventStore::tracking_info`](crate::EventStore::tracking_info); the
    /// trait's docs say where the check sits among the others.
    pub tracking: Option<(String, u64)>,
}

impl AppendOptions {
    /// No condition, no expectations.
    pub fn new() -> AppendOptions {
        AppendOptions::default()
    }

    /// Sets the DCB condition.
    pub fn condition(mut self, condition: AppendCondition) -> AppendOptions {
        self.condition = Some(condition);
        self
    }

    /// Fails the append if anything matching `query` exists after `after`.
    pub fn fail_if(self, query: Query, after: Option<u64>) -> AppendOptions {
        self.condition(AppendCondition::new(query, after))
    }

    /// Records tracking info; see [`AppendOptions::tracking`].
    pub fn track(mut self, source: impl Into<String>, position: u64) -> AppendOptions {
        self.tracking = Some((source.into(), position));
        self
    }

    /// Expects `stream` to be at `revision`.
    pub fn expect(
        mut self,
        stream: impl Into<String>,
        revision: ExpectedRevision,
    ) -> AppendOptions {
        self.expected.push((stream.into(), revision));
        self
    }
}
