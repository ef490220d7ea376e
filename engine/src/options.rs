//! The options a store is opened with, each documented with its default.

use std::sync::Arc;

use gesta_wal::io::{FileSystem, StdFs};
pub use gesta_wal::{
    Compression, Durability, EvictRefusal, EvictedSegment, GroupLimits, RemoteSegments,
};

use crate::clock::{Clock, SystemClock};

/// How a store is opened.
#[derive(Clone, Debug)]
pub struct Options {
    /// When appends become durable. Default [`Durability::Sync`]: every
    /// `append` returns only after its commit group was `fdatasync`ed.
    pub durability: Durability,
    /// Segment files are sealed and a new one started at about this size.
    /// Default 64 MiB.
    pub segment_size: u64,
    /// How far ahead of the writer the active segment is zero-filled, so
    /// that commits overwrite existing blocks instead of growing the file.
    /// Default 4 MiB.
    pub preallocate: u64,
    /// How many appends may wait for the committer before `append` blocks
    /// (back-pressure). Default 4096.
    pub queue_capacity: usize,
    /// Bounds on one commit group (requests and bytes). Default 4096
    /// requests, 16 MiB.
    pub group_limits: GroupLimits,
    /// The longest the committer waits, in `Sync` mode, for callers that
    /// are inside an append but not yet queued (typically writers answered
    /// a moment ago), so that one `fdatasync` serves them too. The actual
    /// wait is at most half the recent write-and-sync time, and ends as soon
    /// as they have all arrived; a lone writer never waits. Default 200 µs;
    /// zero turns it off.
    pub max_commit_delay: std::time::Duration,
    /// The longest a lone writer (the only caller inside an append) spins
    /// for its answer, and the committer for the next append, before
    /// parking. Waking a parked thread costs tens of microseconds on a
    /// virtual machine, as much as a fast disk's `fdatasync`; spinning
    /// saves it for the single writer whose appends follow each other. Callers
    /// among several always park (their spinning would take the CPU the
    /// committer needs), and the committer spins only for a lone writer
    /// and while appends have been arriving within this time. Default 200 µs; zero turns it off.
    pub spin: std::time::Duration,
    /// The active memtable is frozen and flushed to an on-disk index run in
    /// the background once it holds this many postings (one per type, tag,
    /// stream and id of each event). It bounds both the memtable's memory
    /// and how much of the log an open after a crash must replay. Default
    /// 2,000,000 (about 400,000 events of five keys).
    pub memtable_postings: usize,
    /// On close, the memtable is flushed if it holds at least this many
    /// postings, so that the next open does not replay much of the log;
    /// smaller ones are rebuilt from the log on open. Default 65,536.
    pub close_flush_postings: usize,
    /// How many adjacent index runs of the same size tier the background
    /// compactor merges into one (size-tiered merging, see
    /// `gesta_compaction::merge`): the store keeps at most `fan_in − 1` runs
    /// per tier, `O(log n)` runs in all. Default 4; 0 or 1 turns background
    /// merging off (runs then pile up, one per flush; [`Store::compact`]
    /// still merges them all).
    ///
    /// [`Store::compact`]: crate::Store::compact
    pub merge_fan_in: usize,
    /// The most bytes per second a background merge writes, so that it does
    /// not starve appends of disk bandwidth; `None` is unlimited. Explicit
    /// [`Store::compact`](crate::Store::compact) calls are not limited.
    /// Default 64 MiB/s.
    pub merge_bytes_per_sec: Option<u64>,
    /// Whether and how sealed segments are rewritten zstd-compressed by the
    /// background compactor (and by [`Store::compact`]). Reads stay
    /// transparent: a compressed segment is read through a block cache of
    /// [`block_cache_bytes`](Self::block_cache_bytes). Default `None`: the
    /// log stays uncompressed, so that reads cost no decompression. Older
    /// segments keep whichever form they have when it is turned off.
    ///
    /// [`Store::compact`]: crate::Store::compact
    pub compression: Option<Compression>,
    /// When erasing redacted or removed events' bytes ([`Store::compact`])
    /// rewrites a plain segment, a rewrite that zeroes at least this share
    /// of the segment's bytes (0 to 1) writes it compressed (with
    /// [`compression`](Self::compression)'s settings, or the default ones),
    /// so that the space of the erased bytes comes back: a plain segment's
    /// records keep their offsets and lengths, so its zeroed bytes would
    /// stay on disk. Reads of the events left in such a segment then pay
    /// for decompression, as in a compressed store. Default 0.5: a plain
    /// segment never holds more erased bytes than live ones. `None` keeps
    /// every plain segment plain.
    ///
    /// [`Store::compact`]: crate::Store::compact
    pub reclaim_share: Option<f64>,
    /// Bytes of decompressed blocks of compressed segments kept in memory.
    /// Default 32 MiB.
    pub block_cache_bytes: usize,
    /// How many snapshots [`Store::save_snapshot`] keeps per key: saving
    /// one deletes all but the newest this many. Default 3; 0 keeps all.
    ///
    /// [`Store::save_snapshot`]: crate::Store::save_snapshot
    pub snapshots_kept: usize,
    /// How often the background projector looks for new events to fold
    /// into registered projections (and writes the snapshots that are
    /// due). Default 100 ms.
    pub projection_interval: std::time::Duration,
    /// How often the background compactor enforces the retention rules
    /// ([`Store::set_retention`]), while the store has any. Default 60 s.
    ///
    /// [`Store::set_retention`]: crate::Store::set_retention
    pub retention_interval: std::time::Duration,
    /// The file system. Default: the operating system's. Tests substitute a
    /// fault-injecting one.
    pub fs: Arc<dyn FileSystem>,
    /// The source of commit timestamps. Default: the system clock.
    pub clock: Arc<dyn Clock>,
    /// The `tenant` label of the store's metrics (feature `metrics`; see
    /// [`telemetry`](crate::telemetry)). Default none: no label. The
    /// engine's tenants set it to
    /// [`tenant_label`](crate::telemetry::tenant_label) of the tenant.
    pub tenant_label: Option<Arc<str>>,
    /// Opens the store as a read replica of the writer named here (see
    /// [`replication`](crate::replication)): every write is refused with
    /// [`Error::Replica`](crate::Error::Replica) naming it, and the log
    /// grows only by [`Store::apply_records`](crate::Store::apply_records).
    /// Default none: a writable store.
    pub replica_of: Option<String>,
    /// Where the bytes of evicted sealed segments are read from
    /// ([`Store::evict_segment`](crate::Store::evict_segment);
    /// `gesta_tier::BucketSegments` reads them from the bucket the store
    /// is shipped to). Default none: a store holding an evicted segment
    /// refuses to open ([`Error::Evicted`](crate::Error::Evicted), naming
    /// the segment), and nothing can be evicted.
    pub remote_segments: Option<Arc<dyn RemoteSegments>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::Sync,
            segment_size: 64 << 20,
            preallocate: 4 << 20,
            queue_capacity: 4096,
            group_limits: GroupLimits::default(),
            max_commit_delay: std::time::Duration::from_micros(200),
            spin: std::time::Duration::from_micros(200),
            memtable_postings: 2_000_000,
            close_flush_postings: 65_536,
            merge_fan_in: 4,
            merge_bytes_per_sec: Some(64 << 20),
            compression: None,
            reclaim_share: Some(0.5),
            block_cache_bytes: 32 << 20,
            snapshots_kept: crate::snapshots::DEFAULT_KEPT,
            projection_interval: std::time::Duration::from_millis(100),
            retention_interval: std::time::Duration::from_secs(60),
            fs: Arc::new(StdFs),
            clock: Arc::new(SystemClock),
            tenant_label: None,
            replica_of: None,
            remote_segments: None,
        }
    }
}

impl Options {
    /// Sets [`replica_of`](Options::replica_of).
    pub fn replica_of(mut self, writer: impl Into<String>) -> Options {
        self.replica_of = Some(writer.into());
        self
    }

    /// Sets the durability mode.
    pub fn durability(mut self, durability: Durability) -> Options {
        self.durability = durability;
        self
    }

    /// Sets the segment size.
    pub fn segment_size(mut self, bytes: u64) -> Options {
        self.segment_size = bytes;
        self
    }

    /// Sets the preallocation step.
    pub fn preallocate(mut self, bytes: u64) -> Options {
        self.preallocate = bytes;
        self
    }

    /// Sets the background merge fan-in (0 or 1: no background merging).
    pub fn merge_fan_in(mut self, fan_in: usize) -> Options {
        self.merge_fan_in = fan_in;
        self
    }

    /// Sets how sealed segments are compressed (`None`: not at all).
    pub fn compression(mut self, compression: Option<Compression>) -> Options {
        self.compression = compression;
        self
    }

    /// Sets the file system.
    pub fn fs(mut self, fs: Arc<dyn FileSystem>) -> Options {
        self.fs = fs;
        self
    }

    /// Sets the clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Options {
        self.clock = clock;
        self
    }

    /// Sets the commit queue's capacity (at least 1).
    pub fn queue_capacity(mut self, requests: usize) -> Options {
        self.queue_capacity = requests;
        self
    }

    /// Sets the bounds on one commit group.
    pub fn group_limits(mut self, limits: GroupLimits) -> Options {
        self.group_limits = limits;
        self
    }

    /// Sets the longest a group waits for callers about to enqueue (zero
    /// turns the wait off).
    pub fn max_commit_delay(mut self, delay: std::time::Duration) -> Options {
        self.max_commit_delay = delay;
        self
    }

    /// Sets the longest a lone writer and the committer spin before they
    /// park (zero turns spinning off).
    pub fn spin(mut self, spin: std::time::Duration) -> Options {
        self.spin = spin;
        self
    }

    /// Sets how many postings the active memtable holds before it is
    /// flushed to a run.
    pub fn memtable_postings(mut self, postings: usize) -> Options {
        self.memtable_postings = postings;
        self
    }

    /// Sets how many postings a memtable must hold for a close to flush it.
    pub fn close_flush_postings(mut self, postings: usize) -> Options {
        self.close_flush_postings = postings;
        self
    }

    /// Sets the pace of background merge writes (`None`: unpaced).
    pub fn merge_bytes_per_sec(mut self, bytes: Option<u64>) -> Options {
        self.merge_bytes_per_sec = bytes;
        self
    }

    /// Sets the share of a plain segment's bytes that an erasure must zero
    /// for the segment to be written compressed (`None`: never).
    pub fn reclaim_share(mut self, share: Option<f64>) -> Options {
        self.reclaim_share = share;
        self
    }

    /// Sets the bytes of decompressed blocks kept for reads of compressed
    /// segments.
    pub fn block_cache_bytes(mut self, bytes: usize) -> Options {
        self.block_cache_bytes = bytes;
        self
    }

    /// Sets how many snapshots are kept per key (0: all).
    pub fn snapshots_kept(mut self, kept: usize) -> Options {
        self.snapshots_kept = kept;
        self
    }

    /// Sets how often the projector folds new events into projections.
    pub fn projection_interval(mut self, interval: std::time::Duration) -> Options {
        self.projection_interval = interval;
        self
    }

    /// Sets how often the retention rules are enforced in the background.
    pub fn retention_interval(mut self, interval: std::time::Duration) -> Options {
        self.retention_interval = interval;
        self
    }

    /// Sets [`remote_segments`](Options::remote_segments).
    pub fn remote_segments(mut self, remote: Arc<dyn RemoteSegments>) -> Options {
        self.remote_segments = Some(remote);
        self
    }
}
