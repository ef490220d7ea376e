//! The public error type: a few coarse, actionable kinds.

use std::io;
use std::path::PathBuf;

use gesta_wal::WalError;

use crate::revision::ExpectedRevision;

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request was rejected before it touched the store: an empty batch,
    /// an empty or overlong type or tag, too many tags, an oversize event or
    /// batch. The store is unchanged and usable.
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What was wrong.
        reason: String,
    },
    /// The DCB append condition failed: an event matching
    /// `fail_if_events_match` exists after `after`. Nothing was appended.
    #[error("append condition failed: event at position {position} matches the condition")]
    ConditionFailed {
        /// The first conflicting position.
        position: u64,
    },
    /// A stream was not at the expected revision. Nothing was appended.
    #[error(
        "stream {stream:?} {}, but the append expected {expected}",
        match actual { Some(r) => format!("is at revision {r}"), None => "has no events".to_owned() }
    )]
    WrongExpectedRevision {
        /// The stream.
        stream: String,
        /// What the append expected.
        expected: ExpectedRevision,
        /// The stream's last revision (None: the stream has no events).
        actual: Option<u64>,
    },
    /// Some but not all of a batch's event ids were already committed, or
    /// they were committed with different events. Nothing was appended. (An
    /// id that repeats within one batch is [`Error::InvalidInput`].)
    #[error("event id {} is already committed, in a different batch", Uuid(*id))]
    DuplicateEventId {
        /// One offending id.
        id: u128,
    },
    /// The append's tracking position for a source is not greater than the
    /// one already stored for it: the upstream position was recorded
    /// before. Nothing was appended.
    #[error(
        "tracking position {position} for source {source_name:?} is not after the stored {stored}"
    )]
    TrackingConflict {
        /// The source.
        source_name: String,
        /// The position the append carried.
        position: u64,
        /// The position stored for the source.
        stored: u64,
    },
    /// A file of the store failed a check (checksum, length, order) at a place
    /// where a torn write cannot explain it. Nothing was silently skipped.
    #[error("corruption in {} at offset {offset}: {reason}", file.display())]
    Corruption {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damage.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// Another process (or another open `Store` in this one) holds the
    /// store directory.
    #[error("the store at {} is locked by another process or handle", path.display())]
    Locked {
        /// The store directory.
        path: PathBuf,
    },
    /// The disk failed an operation (EIO, ENOSPC, permissions…). An append
    /// that fails with this error appended nothing, and never will: Gesta
    /// either failed it before any of it was written or cut it off the log
    /// again before answering.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// An append's write or sync failed, and cutting its events off the log
    /// again failed too: they may or may not be in the store when it is
    /// reopened. Read the store (after reopening it) before retrying; a
    /// retry whose events carry the same ids is safe either way, as it
    /// appends nothing if the first attempt committed. The store refuses
    /// appends until it is reopened.
    #[error(
        "the append's outcome is unknown: I/O error on {}: {source}; its events may or may not be in the store: reopen it and read before retrying (a retry with the same event ids is safe)",
        path.display()
    )]
    OutcomeUnknown {
        /// The file concerned.
        path: PathBuf,
        /// The error of the write or sync.
        #[source]
        source: io::Error,
    },
    /// An earlier write or fsync failed, so what is durable is unknown; the
    /// store refuses appends until it is closed and reopened, which recovers
    /// the log from what the disk actually holds. Reads keep working.
    #[error("the store refuses appends after a failed write or sync; reopen it to recover")]
    Poisoned,
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
    /// A sealed field of the event at `position` could not be opened: its
    /// bytes were changed, or the key is not the one that sealed it (a
    /// different key file), or the key file does not name the subject.
    /// Returned by the `encryption` wrapper only; never garbage data.
    #[error("cannot decrypt the event at position {position} (subject {subject:?}): {reason}")]
    Undecryptable {
        /// The event.
        position: u64,
        /// The subject its tag names (empty if it names none, or several).
        subject: String,
        /// What failed.
        reason: &'static str,
    },
    /// The append names a subject that was forgotten: its key is destroyed
    /// and it cannot be used again. Nothing was appended. Returned by the
    /// `encryption` wrapper only.
    #[error("the subject {subject:?} was forgotten; new events cannot name it")]
    SubjectForgotten {
        /// The subject.
        subject: String,
    },
    /// The store is a read replica: it serves reads and subscriptions,
    /// and takes its events from its writer, never from a caller. Nothing
    /// was changed; send the write to the writer.
    #[error("this store is a read replica of {writer}: it refuses writes; send them to {writer}")]
    Replica {
        /// The writer the replica follows, as the replica knows it.
        writer: String,
    },
    /// This store does not implement the operation.
    #[error("this store does not support {what}")]
    Unsupported {
        /// The operation.
        what: &'static str,
    },
    /// The store holds a sealed segment that was evicted to remote storage
    /// (its eviction marker is in the log directory), and it was opened
    /// without [`Options::remote_segments`](crate::Options::remote_segments)
    /// to read it through. Nothing was changed; open it with the remote.
    #[error(
        "segment {} (positions {first_position}..={last_position}) was evicted to remote storage; \
         open the store with its remote segments (Options::remote_segments) to read it",
        file.display()
    )]
    Evicted {
        /// The segment's eviction marker.
        file: PathBuf,
        /// The segment's first position.
        first_position: u64,
        /// Its last position.
        last_position: u64,
    },
    /// A read of an evicted segment from remote storage failed: the remote
    /// is unreachable, or what it holds failed a check. No data was
    /// returned for it; the local segments are unaffected, and the read
    /// may be retried.
    #[error("reading evicted segment {} from remote storage: {source}", file.display())]
    Remote {
        /// The segment's eviction marker.
        file: PathBuf,
        /// The remote's error.
        #[source]
        source: io::Error,
    },
}

/// An event id as a UUID (8-4-4-4-12 hex digits), as users write them.
pub(crate) struct Uuid(pub u128);

impl std::fmt::Display for Uuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = format!("{:032x}", self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(reason: impl Into<String>) -> Error {
        Error::InvalidInput {
            reason: reason.into(),
        }
    }
}

impl From<WalError> for Error {
    fn from(e: WalError) -> Self {
        match e {
            WalError::Io { path, source } => Error::Io { path, source },
            WalError::Corruption {
                file,
                offset,
                reason,
            } => Error::Corruption {
                file,
                offset,
                reason,
            },
            WalError::Poisoned => Error::Poisoned,
            WalError::Indeterminate { path, source } => Error::OutcomeUnknown { path, source },
            WalError::Evicted {
                file,
                first_position,
                last_position,
            } => Error::Evicted {
                file,
                first_position,
                last_position,
            },
            WalError::Remote { file, source } => Error::Remote { file, source },
            other => Error::Io {
                path: PathBuf::new(),
                source: io::Error::other(other.to_string()),
            },
        }
    }
}
