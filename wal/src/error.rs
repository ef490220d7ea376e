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
