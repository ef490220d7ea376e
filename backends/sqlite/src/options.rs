//! How a [`SqliteStore`](crate::SqliteStore) is opened: the durability of a
//! commit (`PRAGMA synchronous`), how long to wait for a lock held by
//! another connection, and how many snapshots to keep per key.

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
}

impl Default for SqliteOptions {
    fn default() -> SqliteOptions {
        SqliteOptions {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            snapshots_kept: gesta::snapshots::DEFAULT_KEPT,
        }
    }
}

impl SqliteOptions {
    /// Sets [`synchronous`](SqliteOptions::synchronous).
    pub fn synchronous(mut self, synchronous: Synchronous) -> SqliteOptions {
        self.synchronous = synchronous;
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
}
