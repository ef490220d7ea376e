//! The crate's one public error type: a few coarse kinds a caller can act
//! on (bad input, a prefix held by another writer, a shipper fenced out,
//! a corrupt object, the bucket or the store failing).

use std::path::PathBuf;

/// What went wrong while shipping to, or restoring from, a bucket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bucket location, an option or a path that cannot be used.
    #[error("{0}")]
    InvalidInput(String),
    /// Another writer holds the prefix's epoch: a second shipper is
    /// refused unless it takes over (which fences the holder).
    #[error(
        "{location} is claimed by writer {writer} (epoch {epoch}); stop that writer, or take over \
         (which fences it) if it is gone"
    )]
    Claimed {
        /// The bucket location.
        location: String,
        /// The holder's epoch.
        epoch: u64,
        /// The holder's writer id.
        writer: String,
    },
    /// This shipper's epoch was taken over: it ships nothing more, and
    /// nothing it still sends can replace the new writer's checkpoint.
    #[error(
        "epoch {epoch} was taken over by epoch {by} (writer {writer}): this shipper is fenced and ships no more"
    )]
    Fenced {
        /// This shipper's epoch.
        epoch: u64,
        /// The epoch that took over.
        by: u64,
        /// The writer that took over.
        writer: String,
    },
    /// An object whose bytes do not match what the checkpoint (or its own
    /// checksum) says: it is refused, never served.
    #[error("object {key} is corrupt: {reason}")]
    Corrupt {
        /// The object's key in the bucket.
        key: String,
        /// What did not match.
        reason: String,
    },
    /// The bucket holds a later head than the store to be shipped there:
    /// shipping would replace the bucket's store by an older one (an empty
    /// directory given by mistake, or a stale copy). Nothing was claimed.
    #[error(
        "{location} holds positions up to {bucket_head}, this store only up to {head}: restore \
         from the bucket first (gesta restore), or ship to another prefix"
    )]
    Behind {
        /// The bucket location.
        location: String,
        /// The store's head.
        head: u64,
        /// The head of the bucket's checkpoint.
        bucket_head: u64,
    },
    /// The bucket's history is not the replica's (its checkpoint's head
    /// is below the replica's, or its records do not continue the
    /// replica's log): the replica applies nothing more.
    #[error("{location} has diverged from this replica: {reason}; make a new replica")]
    Diverged {
        /// The bucket location.
        location: String,
        /// What was found.
        reason: String,
    },
    /// The store to be shipped holds another history than the one the
    /// bucket holds: its record at the bucket's head differs from the
    /// bucket's (a store restored from the bucket earlier that then took
    /// writes of its own while the bucket's writer went on). Shipping it
    /// would replace events the bucket holds. Nothing was claimed.
    #[error("{location} holds another history than this store: {reason}")]
    HistoryDiffers {
        /// The bucket location.
        location: String,
        /// What was found.
        reason: String,
    },
    /// The prefix holds no checkpoint: nothing was ever shipped there.
    #[error("{location} holds no checkpoint: nothing was shipped there")]
    NoCheckpoint {
        /// The bucket location.
        location: String,
    },
    /// The bucket refused or failed a request (after the client's own
    /// retries).
    #[error("object storage, {what}: {source}")]
    Bucket {
        /// The request, and its key.
        what: String,
        /// The client's error.
        #[source]
        source: object_store::Error,
    },
    /// The local store failed (its backup into the staging directory).
    #[error(transparent)]
    Store(#[from] gesta::Error),
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// A position was not in the bucket in time (`Shipper::ship_through`):
    /// the timeout passed, or the shipper was fenced. The position is
    /// committed locally all the same.
    #[error(
        "position {position} was not shipped in time: the bucket holds up to {shipped_head}{}",
        last_error.as_ref().map(|e| format!(" (last round: {e})")).unwrap_or_default()
    )]
    NotShipped {
        /// The position waited for.
        position: u64,
        /// The head the bucket restores to.
        shipped_head: u64,
        /// The last failed round's error, if the last round failed.
        last_error: Option<String>,
    },
    /// The shipper's thread is gone (stopped, or it panicked).
    #[error("the shipper has stopped")]
    Stopped,
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

pub(crate) fn bucket(what: impl Into<String>) -> impl FnOnce(object_store::Error) -> Error {
    let what = what.into();
    move |source| Error::Bucket { what, source }
}
