//! The public error type: a few coarse, actionable kinds.

use std::io;
use std::path::PathBuf;

use gesta_wal::WalError;

use crate::append::ExpectedRevision;

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
    #[error("stream {stream:?} is at revision {actual:?}, the append expected {expected:?}")]
    WrongExpectedRevision {
        /// The stream.
        stream: String,
        /// What the append expected.
        expected: ExpectedRevision,
        /// The stream's last revision (None: the stream has no events).
        actual: Option<u64>,
    },
    /// Some but not all of a batch's event ids were already committed, or
    /// they were committed with different events, or an id repeats within
    /// the batch. Nothing was appended.
    #[error("event id {id:032x} is already committed with a different batch")]
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
    /// The disk failed an operation (EIO, ENOSPC, permissions…).
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
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
    /// This store does not implement the operation.
    #[error("this store does not support {what}")]
    Unsupported {
        /// The operation.
        what: &'static str,
    },
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
            other => Error::Io {
                path: PathBuf::new(),
                source: io::Error::other(other.to_string()),
            },
        }
    }
}
