//! How a [`SqliteStore`](crate::SqliteStore) is opened: the durability of a
//! commit (`PRAGMA synchronous`), how long to wait for a lock held by
//! another connection, how many snapshots to keep per key, how often
//! subscriptions look for commits made by other connections, and the
//! memory SQLite may keep pages in (`PRAGMA cache_size`, `mmap_size`).

use std::time::Duration;

/// SQLite's `synchronous` setting, in WAL mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Synchronous {
    /// Every commit syncs the WAL: a committed append survives a power
    /// loss. The default.
    #[default]
    Full,
    /// The WAL is synced only at checkpoints: a commit survives a crash of
    /// the process, but the last commits may be lost on power loss (the
    /// database stays consistent).
    Normal,
    /// Never sync: for tests and throwaway data.
    Off,
}

impl Synchronous {
    /// The pragma's value.
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
            Synchronous::Off => "OFF",
        }
    }
}

/// Options of [`SqliteStore::open`](crate::SqliteStore::open).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Durability of a commit (default [`Synchronous::Full`]).
    pub synchronous: Synchronous,
    /// How long a statement waits for a lock held by another connection
    /// (another process on the same file) before failing (default 5 s).
    pub busy_timeout: Duration,
    /// How many snapshots a save keeps per key: saving one deletes all but
    /// the newest this many (default 3; 0 keeps all), as
    /// [`gesta::Options::snapshots_kept`] does for the engine.
    pub snapshots_kept: usize,
    /// How often a store with subscriptions looks for commits made through
    /// other connections to the file — other processes, or other
    /// [`SqliteStore`](crate::SqliteStore) handles — (default 50 ms). A
    /// commit through this handle wakes its subscribers at once; one
    /// through another connection reaches them within about this interval.
    pub poll_interval: Duration,
    /// Bytes of each connection's page cache (`PRAGMA cache_size`;
    /// default SQLite's own, about 2 MB).
    pub cache_bytes: u64,
    /// Bytes of the database file read through a memory map (`PRAGMA
    /// mmap_size`; default 0, SQLite's own: no map).
    pub mmap_bytes: u64,
}

/// SQLite's default page cache: 2,000 KiB per connection.
const SQLITE_CACHE_BYTES: u64 = 2_000 * 1024;

impl Default for SqliteOptions {
    fn default() -> SqliteOptions {
        SqliteOptions {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            snapshots_kept: gesta::snapshots::DEFAULT_KEPT,
            poll_interval: Duration::from_millis(50),
            cache_bytes: SQLITE_CACHE_BYTES,
            mmap_bytes: 0,
        }
    }
}

impl SqliteOptions {
    /// Sets [`synchronous`](SqliteOptions::synchronous).
    pub fn synchronous(mut self, synchronous: Synchronous) -> SqliteOptions {
        self.synchronous = synchronous;
        self
    }

    /// Sets [`cache_bytes`](SqliteOptions::cache_bytes) and
    /// [`mmap_bytes`](SqliteOptions::mmap_bytes): what a store that is
    /// read much gives SQLite to keep pages in memory.
    pub fn memory(mut self, cache_bytes: u64, mmap_bytes: u64) -> SqliteOptions {
        self.cache_bytes = cache_bytes;
        self.mmap_bytes = mmap_bytes;
        self
    }

    /// Sets [`busy_timeout`](SqliteOptions::busy_timeout).
    pub fn busy_timeout(mut self, timeout: Duration) -> SqliteOptions {
        self.busy_timeout = timeout;
        self
    }

    /// Sets [`snapshots_kept`](SqliteOptions::snapshots_kept).
    pub fn snapshots_kept(mut self, kept: usize) -> SqliteOptions {
        self.snapshots_kept = kept;
        self
    }

    /// Sets [`poll_interval`](SqliteOptions::poll_interval).
    pub fn poll_interval(mut self, interval: Duration) -> SqliteOptions {
        self.poll_interval = interval;
        self
    }
}
