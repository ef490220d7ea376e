//! gesta-wal: Gesta's write-ahead segment log.
//!
//! This crate owns everything between an encoded batch of events and the
//! disk: the [`io`] seam through which every file operation passes, the
//! on-disk format of segments and records ([`format`](mod@format)), writing segments with
//! preallocation and rollover ([`log`]), the group-commit queue that lets one
//! committer thread write many callers' batches with one write and one
//! `fdatasync` ([`commit`]), and recovery of the log on open ([`recovery`]).
//!
//! It knows nothing of what an event means: positions, counts and opaque
//! encoded bytes are all it sees. The byte-level format is specified in
//! `docs/FORMAT.md` at the repository root.
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod cache;
pub mod commit;
pub mod compress;
pub mod error;
pub mod format;
#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
pub mod io;
pub mod reader;
pub mod recovery;
pub mod segment;
pub mod table;
pub mod time;
pub mod writer;
pub mod zseg;

pub use commit::{Durability, GroupCommit, GroupLimits, GroupSize, Next, SyncPolicy};
pub use compress::{CompressReport, Compressor};
pub use error::{Result, WalError};
pub use format::{Payload, Record, RecordMeta};
pub use reader::{Backward, Forward, WalReader};
pub use recovery::{OpenedWal, RecoveryReport, TornTail, open};
pub use writer::{LogState, Pushed, WalOptions, WalWriter};
pub use zseg::Compression;
