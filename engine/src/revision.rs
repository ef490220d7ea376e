//! [`ExpectedRevision`]: what an append expects of a stream's revision.

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
