//! gesta-tier: a Gesta store that outlives its disk. A [`Shipper`]
//! mirrors a store's directory under a prefix of an S3 (or
//! S3-compatible) bucket in the background; [`restore()`] rebuilds the
//! store from the bucket alone; an epoch object claimed by conditional
//! PUT keeps a single writer per prefix; a [`Replica`] follows the bucket
//! and serves reads.
//!
//! The core engine knows nothing of this crate: the shipper takes the
//! engine's own consistent online backup (`Store::backup`) into a staging
//! directory beside the store every interval and uploads what the bucket
//! lacks. docs/TIER.md gives the bucket's layout and its formats.
//!
//! Modules, each owning one thing:
//!
//! - [`location`]: `s3://bucket/prefix` and the client for it.
//! - [`checkpoint`]: the checkpoint object's format (what the bucket
//!   holds, with checksums).
//! - [`fence`]: the epoch object, the claim, and the conditional writes of
//!   the checkpoint.
//! - [`round`]: one shipping round (what is uploaded, what is deleted).
//! - `garbage`: chunks no checkpoint names, deleted when a writer
//!   starts.
//! - [`shipper`]: the background thread, its interval, retries and status.
//! - [`restore`](mod@restore): the bucket back into a directory.
//! - [`replica`]: a read replica that follows the bucket (polls the
//!   checkpoint, fetches and applies the log records it lacks).
//! - [`chunks`]: a shipped file's bytes read back from its chunk objects.
//! - [`evict`](mod@evict): sealed segments in the bucket only — the
//!   engine's `RemoteSegments` over the bucket ([`BucketSegments`]) and
//!   the policy that evicts them ([`Evictor`]).
//!
//! # Guarantees, and the failure cases
//!
//! - **Shipped means restorable.** The shipped head advances only after
//!   the checkpoint naming every byte up to it was written; a restore
//!   gives exactly the store at the last checkpoint's head, every file
//!   checked against the checkpoint's CRC-32s. What a restore lacks is at
//!   most what was committed after the last round (the lag, reported).
//! - **An upload fails or times out** (or the bucket is unreachable for a
//!   while): the round fails, nothing is reported shipped, appends go on
//!   locally, the lag grows, and rounds are retried with exponential
//!   backoff until the bucket answers again; chunks already uploaded are
//!   not sent again.
//! - **The process is killed mid-round**: the bucket keeps the previous
//!   checkpoint, whole. Chunks the killed round uploaded are named by no
//!   checkpoint; they stay in the bucket, unread, until the next writer
//!   on the prefix starts (it deletes the unnamed chunks of earlier
//!   epochs). The killed writer's epoch stays held: the restarted writer
//!   takes over ([`ShipOptions::takeover`]).
//! - **A second writer on the prefix** is refused ([`Error::Claimed`])
//!   while the epoch is held, unless it takes over.
//! - **A store behind the bucket** (its head below the checkpoint's: an
//!   empty directory given by mistake, a stale copy) is refused
//!   ([`Error::Behind`]) before it claims anything, so it can neither
//!   fence the writer nor replace the bucket's store by an older one. A
//!   store whose history differs from the bucket's (its record at the
//!   checkpoint's head is not the bucket's) is refused the same way
//!   ([`Error::HistoryDiffers`]).
//! - **A writer taken over** (it still runs, but another claimed the
//!   prefix) finds out at its next round: its conditional checkpoint
//!   write fails, it stops shipping for good ([`Error::Fenced`], in its
//!   status), and nothing it still sends can replace the new writer's
//!   checkpoint or any object that checkpoint names (chunk keys carry
//!   the epoch and the content's CRC, and are never rewritten with other
//!   bytes). It does not stop the local store's appends: those are
//!   simply no longer shipped.
//! - **Fail-over order.** Take the prefix over *before* restoring from
//!   it: a restore taken while the old writer still ships may miss its
//!   last rounds, and the new writer's checkpoint then replaces them.
//! - **An object corrupted in the bucket** is found by its CRC on restore
//!   and refused ([`Error::Corrupt`]), never written into the store.
//! - **Erasure, redaction and compression** rewrite files: the next round
//!   uploads the new file, and deletes the old file's chunks once the new
//!   checkpoint is written. Until that round, the bucket holds the old
//!   bytes.
//! - **A read replica** ([`Replica`]) only reads the bucket: it claims
//!   nothing and cannot disturb the writer. It applies only records whose
//!   checksums pass and that continue its log, with the writer's
//!   positions and commit times; a corrupt or missing chunk applies
//!   nothing and is retried at the next poll; a bucket whose history is
//!   not the replica's (a checkpoint below its head, records or journal
//!   entries that do not continue its own) stops it for good
//!   ([`Error::Diverged`], in its status). What it lacks of the writer's
//!   store is the shipper's lag plus its own (`behind`, reported).
//! - **Evicted segments** ([`Evictor`]) are only those the bucket's
//!   checkpoint holds with the same length and CRC-32s; every later round
//!   keeps naming them (a round that cannot is refused), so restore and
//!   replicas get the whole store. Reads of them ([`BucketSegments`]) are
//!   checked (chunk CRC-32s, the records' checksums, the whole file's
//!   CRC-32); a corrupt object or an unreachable bucket fails the read
//!   with `gesta::Error::Remote` (or `Corruption`), never wrong data, and
//!   the store's local data stays usable. A store with evicted segments
//!   opened without the bucket refuses, naming the segment
//!   (`gesta::Error::Evicted`).
//! - **Conditional PUT is required** of the server (`If-None-Match: *`
//!   and `If-Match`), as S3 has had since 2024.

#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod checkpoint;
pub mod chunks;
mod error;
pub mod evict;
pub mod fence;
mod garbage;
pub mod location;
pub mod replica;
pub mod restore;
pub mod round;
pub mod shipper;

pub use error::{Error, Result};
pub use evict::{BucketOptions, BucketSegments, BucketStats, EvictPolicy, EvictReport, Evictor};
pub use location::Location;
pub use replica::{Replica, ReplicaOptions, ReplicaStatus};
pub use restore::{RestoreReport, restore};
pub use round::RoundReport;
pub use shipper::{ShipOptions, ShipStatus, ShipWaiter, Shipper};

/// The single-threaded runtime each of the crate's threads (shipper,
/// evictor, replica, restore) drives its requests to the bucket on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io {
            path: std::path::PathBuf::from("(runtime)"),
            source: e,
        })
}
