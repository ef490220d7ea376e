//! The store's snapshot methods; what they do is `crate::snapshots`'.

use super::Store;
use crate::error::{Error, Result};
use crate::snapshots::{self, Snapshot};

impl Store {
    fn open_for_snapshots(&self) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Saves `state` for `key` at `position` — the position (or stream
    /// revision) whose events the state includes — durably and atomically,
    /// replacing a snapshot of the key at the same position; then deletes
    /// all but the newest [`Options::snapshots_kept`](crate::Options::snapshots_kept)
    /// snapshots of the key. The position may not lie past the head: a
    /// state cannot include events that were not committed.
    pub fn save_snapshot(&self, key: &str, position: u64, state: &[u8]) -> Result<()> {
        self.open_for_snapshots()?;
        self.writable()?;
        let head = self.head();
        // The state may hold any event up to the head (a position may be
        // a stream revision): the log is made durable that far first, or a
        // crash could leave the snapshot of events it lost.
        self.inner.make_durable(head)?;
        snapshots::save(&self.inner.indexes, head, key, position, state)
    }

    /// The newest snapshot of `key` at or before `at_or_before` (pass
    /// `u64::MAX` for the newest of all). A damaged snapshot file is
    /// [`Error::Corruption`] naming it, never skipped.
    pub fn load_snapshot(&self, key: &str, at_or_before: u64) -> Result<Option<Snapshot>> {
        self.open_for_snapshots()?;
        snapshots::load(&self.inner.indexes, key, at_or_before)
    }

    /// The positions of `key`'s snapshots, ascending.
    pub fn list_snapshots(&self, key: &str) -> Result<Vec<u64>> {
        self.open_for_snapshots()?;
        snapshots::list(&self.inner.indexes, key)
    }

    /// Deletes `key`'s snapshot at `position`; returns whether there was
    /// one.
    pub fn delete_snapshot(&self, key: &str, position: u64) -> Result<bool> {
        self.open_for_snapshots()?;
        self.writable()?;
        snapshots::delete(&self.inner.indexes, key, position)
    }
}
