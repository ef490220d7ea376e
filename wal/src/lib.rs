//! gesta-wal: Gesta's write-ahead segment log.
//!
//! This crate owns everything between an encoded batch of events and the
//! disk: the [`io`] seam through which every file operation passes, the
//! on-disk format of segments and records ([`format`](mod@format)), writing
//! segments with preallocation and rollover ([`WalWriter`]), group commit
//! ([`GroupCommit`]: the queue that lets one committer thread write many
//! callers' batches with one write and one `fdatasync`, and the durability
//! policy), recovery of the log on open ([`open`]), reads ([`WalReader`]), the
//! [`journal`] (a small append-only file of durable entries, for what
//! commits outside the log's positions),
//! rewriting sealed segments compressed ([`Compressor`]), evicting sealed
//! segments to remote storage ([`RemoteSegments`]), and what offline
//! tools read ([`files`]). Everything else is private.
//!
//! It knows nothing of what an event means: positions, counts and opaque
//! encoded bytes are all it sees. The byte-level format is specified in
//! `docs/FORMAT.md` at the repository root.
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod cache;
mod checksum_ahead;
mod commit;
mod compress;
mod error;
mod evict;
pub mod format;
#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
mod heads;
pub mod io;
pub mod journal;
mod lines;
mod reader;
mod recovery;
mod remote;
mod rewrite;
pub mod rng;
mod segment;
mod table;
pub mod time;
mod warm;
mod writer;
mod zseg;

pub use cache::{BlockCache, CacheStats};
/// How many checksums computed ahead of scans they used, and whether this
/// process computes them (for tests that must know the helper worked).
#[cfg(feature = "testing")]
pub use checksum_ahead::{available as checksums_ahead_available, taken as checksums_taken_ahead};
pub use commit::{Durability, GroupCommit, GroupLimits, GroupSize, Next, SyncPolicy, queue};
pub use compress::{CompressReport, Compressor};
pub use error::{Result, WalError};
pub use evict::EvictRefusal;
pub use format::{Payload, Record, RecordMeta};
pub use heads::{KEEP_BYTES, KEEP_FROM_SEQ};
pub use lines::{LINE, touch, touch_lines};
pub use reader::{Backward, Forward, Place, RecordHead, WalReader};
pub use recovery::{OpenedWal, RecoveryReport, TornTail, open};
pub use remote::{EvictedSegment, RemoteSegments};
pub use rewrite::RewriteReport;
pub use segment::{Segment, SegmentBounds, SegmentSet};
pub use warm::MappedPayload;
pub use writer::{CommitObserver, LogState, Pushed, WalOptions, WalWriter};
pub use zseg::Compression;

/// What tools that read a log's files without opening it (`verify`,
/// `stats`, `--repair`) use beyond the format: how a directory listing
/// resolves to segments, the offset tables, the layout of compressed
/// segments, and the rule that tells a torn tail from damage.
pub mod files {
    pub use crate::compress::{SegmentFile, resolve_listing};
    pub use crate::recovery::is_torn_write;
    pub use crate::remote::{MARKER_LEN, marker_file_name, marker_path, parse_marker_file_name};
    pub use crate::table::{SegmentTable, table_path};
    pub use crate::zseg::{
        CompressedSegment, Layout, compress, compressed_file_name, parse_compressed_file_name,
    };
}
