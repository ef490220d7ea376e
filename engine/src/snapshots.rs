//! Snapshots: opaque state saved for a key at a position (or a stream
//! revision), so that rebuilding state reads the newest snapshot and folds
//! only the events after it. The files are zstd-compressed and checksummed
//! (`gesta_compaction::snapshot`, `docs/FORMAT.md`).

pub use gesta_compaction::snapshot::{MAX_KEY_LEN, MAX_STATE_LEN, Snapshot};

use crate::error::{Error, Result};
use crate::indexes::snapshot_error;
use crate::store::Store;

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(Error::invalid(format!(
            "a snapshot key must be 1 to {MAX_KEY_LEN} bytes long"
        )));
    }
    Ok(())
}

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
        check_key(key)?;
        if state.len() > MAX_STATE_LEN {
            return Err(Error::invalid(format!(
                "snapshot state of {} bytes exceeds {MAX_STATE_LEN}",
                state.len()
            )));
        }
        if position > self.head() {
            return Err(Error::invalid(format!(
                "snapshot position {position} is past the head {}",
                self.head()
            )));
        }
        let (snapshots, keep) = self.indexes().snapshots();
        snapshots
            .save(key, position, state, keep)
            .map_err(snapshot_error)
    }

    /// The newest snapshot of `key` at or before `at_or_before` (pass
    /// `u64::MAX` for the newest of all). A damaged snapshot file is
    /// [`Error::Corruption`] naming it, never skipped.
    pub fn load_snapshot(&self, key: &str, at_or_before: u64) -> Result<Option<Snapshot>> {
        self.open_for_snapshots()?;
        check_key(key)?;
        let (snapshots, _) = self.indexes().snapshots();
        snapshots.load(key, at_or_before).map_err(snapshot_error)
    }

    /// The positions of `key`'s snapshots, ascending.
    pub fn list_snapshots(&self, key: &str) -> Result<Vec<u64>> {
        self.open_for_snapshots()?;
        check_key(key)?;
        let (snapshots, _) = self.indexes().snapshots();
        snapshots.list(key).map_err(snapshot_error)
    }

    /// Deletes `key`'s snapshot at `position`; returns whether there was
    /// one.
    pub fn delete_snapshot(&self, key: &str, position: u64) -> Result<bool> {
        self.open_for_snapshots()?;
        check_key(key)?;
        let (snapshots, _) = self.indexes().snapshots();
        snapshots.delete(key, position).map_err(snapshot_error)
    }
}
