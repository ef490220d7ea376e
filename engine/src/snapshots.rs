//! Snapshots: opaque state saved for a key at a position (or a stream
//! revision), so that rebuilding state reads the newest snapshot and folds
//! only the events after it. The files are zstd-compressed and checksummed
//! (`gesta_compaction::snapshot`, `docs/FORMAT.md`).
//!
//! This module checks what a caller gives and maps the files' errors; the
//! store's methods (`Store::save_snapshot` and its kin) and the projections
//! both come here.

pub use gesta_compaction::snapshot::{MAX_KEY_LEN, MAX_STATE_LEN, Snapshot};

use crate::error::{Error, Result};

/// How many snapshots a store keeps per key unless told otherwise (see
/// [`Options::snapshots_kept`](crate::Options::snapshots_kept)).
pub const DEFAULT_KEPT: usize = 3;
use crate::indexes::{Indexes, snapshot_error};

/// Checks a snapshot key: 1 to [`MAX_KEY_LEN`] bytes.
pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(Error::invalid(format!(
            "a snapshot key must be 1 to {MAX_KEY_LEN} bytes long"
        )));
    }
    Ok(())
}

/// The checks of a save, in this order: the key, the state's size, the
/// position against `head` (a state cannot include events that were not
/// committed).
pub(crate) fn check_save(head: u64, key: &str, position: u64, state: &[u8]) -> Result<()> {
    check_key(key)?;
    if state.len() > MAX_STATE_LEN {
        return Err(Error::invalid(format!(
            "snapshot state of {} bytes exceeds {MAX_STATE_LEN}",
            state.len()
        )));
    }
    if position > head {
        return Err(Error::invalid(format!(
            "snapshot position {position} is past the head {head}"
        )));
    }
    Ok(())
}

/// Saves `state` for `key` at `position`, which may not lie past `head`;
/// see `Store::save_snapshot`.
pub(crate) fn save(
    indexes: &Indexes,
    head: u64,
    key: &str,
    position: u64,
    state: &[u8],
) -> Result<()> {
    check_save(head, key, position, state)?;
    let (snapshots, keep) = indexes.snapshots();
    snapshots
        .save(key, position, state, keep)
        .map_err(snapshot_error)
}

/// The newest snapshot of `key` at or before `at_or_before`.
pub(crate) fn load(indexes: &Indexes, key: &str, at_or_before: u64) -> Result<Option<Snapshot>> {
    check_key(key)?;
    let (snapshots, _) = indexes.snapshots();
    snapshots.load(key, at_or_before).map_err(snapshot_error)
}

/// The positions of `key`'s snapshots, ascending.
pub(crate) fn list(indexes: &Indexes, key: &str) -> Result<Vec<u64>> {
    check_key(key)?;
    let (snapshots, _) = indexes.snapshots();
    snapshots.list(key).map_err(snapshot_error)
}

/// Deletes `key`'s snapshot at `position`; returns whether there was one.
pub(crate) fn delete(indexes: &Indexes, key: &str, position: u64) -> Result<bool> {
    check_key(key)?;
    let (snapshots, _) = indexes.snapshots();
    snapshots.delete(key, position).map_err(snapshot_error)
}
