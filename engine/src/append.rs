//! What an append may demand besides its events: a DCB append condition and
//! expected stream revisions.

use crate::query::Query;

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

/// The revision a stream must be at for an append to go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExpectedRevision {
    /// No check.
    Any,
    /// The stream must have no events.
    NoStream,
    /// The stream must have at least one event.
    Exists,
    /// The stream's last event must have this revision.
    Exact(u64),
}

impl ExpectedRevision {
    /// Whether a stream whose last revision is `actual` (None: no events)
    /// satisfies the expectation.
    pub fn accepts(self, actual: Option<u64>) -> bool {
        match self {
            ExpectedRevision::Any => true,
            ExpectedRevision::NoStream => actual.is_none(),
            ExpectedRevision::Exists => actual.is_some(),
            ExpectedRevision::Exact(n) => actual == Some(n),
        }
    }
}

/// What the append expected, in words: "revision 5", "no events", "at
/// least one event", "any revision".
impl std::fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedRevision::Any => write!(f, "any revision"),
            ExpectedRevision::NoStream => write!(f, "no events"),
            ExpectedRevision::Exists => write!(f, "at least one event"),
            ExpectedRevision::Exact(n) => write!(f, "revision {n}"),
        }
    }
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
    /// [`Store::tracking_info`](crate::Store::tracking_info). Only the
    /// engine stores it; other stores refuse it as unsupported.
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
