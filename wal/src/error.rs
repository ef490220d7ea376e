//! The log's error type: I/O failures with the file they concern, corruption
//! with file and offset, and the poisoned state after a failed write or sync.

use std::io;
use std::path::PathBuf;

/// What can go wrong in the log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// An operation on a file failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A file's contents fail a check at a place where a torn write is not
    /// a possible explanation.
    #[error("corruption in {} at offset {offset}: {reason}", file.display())]
    Corruption {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damaged record or header.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// A group's write or `fdatasync` failed, and cutting the group off the
    /// log again failed too: the group may or may not be in the log when it
    /// is next opened.
    #[error(
        "I/O error on {}: {source}; the records may or may not have been written",
        path.display()
    )]
    Indeterminate {
        /// The segment concerned.
        path: PathBuf,
        /// The error of the write or sync.
        #[source]
        source: io::Error,
    },
    /// An earlier write or `fdatasync` failed, so what is durable is unknown;
    /// the log accepts no more writes until it is reopened and recovered.
    #[error("the log refuses writes after an earlier write or sync failure; reopen the store")]
    Poisoned,
    /// A sealed segment was evicted (its bytes are in remote storage, its
    /// marker in the log directory), and the log was opened without a
    /// [`RemoteSegments`](crate::RemoteSegments) to read it through.
    #[error(
        "segment {} (positions {first_position}..={last_position}) was evicted to remote storage; \
         open the store with the remote segments configured to read it",
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
    /// A read of an evicted segment through its
    /// [`RemoteSegments`](crate::RemoteSegments) failed (the remote is
    /// unreachable, or what it holds is damaged).
    #[error("reading evicted segment {} from remote storage: {source}", file.display())]
    Remote {
        /// The segment's eviction marker.
        file: PathBuf,
        /// The remote's error.
        #[source]
        source: io::Error,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = WalError> = std::result::Result<T, E>;

/// Attaches a path to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| WalError::Io {
            path: path.to_owned(),
            source,
        })
    }
}
