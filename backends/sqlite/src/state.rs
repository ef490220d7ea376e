//! Snapshots and tracking info in their tables (`schema::CREATE_STATE`),
//! with the semantics of the [`EventStore`](gesta::EventStore) docs: the
//! statements, run on whichever connection or transaction the store gives.
//!
//! Tracking info is checked and stored inside the append's transaction
//! ([`check_tracking`] after the DCB condition, [`store_tracking`] after
//! the insert), so it commits with the batch or not at all. A snapshot is
//! saved (and the key's old ones trimmed) in one transaction on the writer.

use gesta::{AppendOptions, Result, Snapshot, validation};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// A snapshot position (never past the head, so it fits) or a bound on
/// one, clamped.
fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A tracking position as stored: the i64 of the same bits, since any u64
/// is a valid upstream position.
fn tracking_to_sql(position: u64) -> i64 {
    i64::from_ne_bytes(position.to_ne_bytes())
}

fn tracking_from_sql(stored: i64) -> u64 {
    u64::from_ne_bytes(stored.to_ne_bytes())
}

/// The stored tracking position of `source`.
pub(crate) fn tracking(conn: &Connection, source: &str) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached("SELECT position FROM tracking WHERE source = ?1")?
        .query_row([source.as_bytes()], |r| r.get::<_, i64>(0))
        .optional()
        .map(|p| p.map(tracking_from_sql))
}

/// The append's tracking check, against what `tx` sees: the outer error is
/// SQLite's, the inner one the contract's.
pub(crate) fn check_tracking(
    tx: &Transaction<'_>,
    options: &AppendOptions,
) -> rusqlite::Result<Result<()>> {
    let Some((source, position)) = &options.tracking else {
        return Ok(Ok(()));
    };
    let stored = tracking(tx, source)?;
    Ok(validation::check_tracking(source, *position, stored))
}

/// Stores the append's tracking position, in its transaction.
pub(crate) fn store_tracking(
    tx: &Transaction<'_>,
    options: &AppendOptions,
) -> rusqlite::Result<()> {
    if let Some((source, position)) = &options.tracking {
        tx.prepare_cached(
            "INSERT INTO tracking (source, position) VALUES (?1, ?2) \
             ON CONFLICT (source) DO UPDATE SET position = excluded.position",
        )?
        .execute(params![source.as_bytes(), tracking_to_sql(*position)])?;
    }
    Ok(())
}

/// Saves a snapshot inside `tx` after checking it against the head `tx`
/// sees, then deletes all but the key's newest `kept` (0: keeps all).
pub(crate) fn save(
    tx: &Transaction<'_>,
    head: u64,
    key: &str,
    position: u64,
    state: &[u8],
    kept: usize,
) -> rusqlite::Result<Result<()>> {
    if let Err(e) = validation::check_snapshot_save(head, key, position, state) {
        return Ok(Err(e));
    }
    tx.prepare_cached(
        "INSERT INTO snapshots (key, position, state) VALUES (?1, ?2, ?3) \
         ON CONFLICT (key, position) DO UPDATE SET state = excluded.state",
    )?
    .execute(params![key.as_bytes(), signed(position), state])?;
    if kept > 0 {
        tx.prepare_cached(
            "DELETE FROM snapshots WHERE key = ?1 AND position NOT IN \
             (SELECT position FROM snapshots WHERE key = ?1 ORDER BY position DESC LIMIT ?2)",
        )?
        .execute(params![key.as_bytes(), signed(kept as u64)])?;
    }
    Ok(Ok(()))
}

/// The snapshot of `key` with the greatest position at or before
/// `at_or_before`.
pub(crate) fn load(
    conn: &Connection,
    key: &str,
    at_or_before: u64,
) -> rusqlite::Result<Option<Snapshot>> {
    conn.prepare_cached(
        "SELECT position, state FROM snapshots WHERE key = ?1 AND position <= ?2 \
         ORDER BY position DESC LIMIT 1",
    )?
    .query_row(params![key.as_bytes(), signed(at_or_before)], |r| {
        Ok(Snapshot {
            position: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
            state: r.get(1)?,
        })
    })
    .optional()
}

/// The positions of `key`'s snapshots, ascending.
pub(crate) fn list(conn: &Connection, key: &str) -> rusqlite::Result<Vec<u64>> {
    conn.prepare_cached("SELECT position FROM snapshots WHERE key = ?1 ORDER BY position")?
        .query_map([key.as_bytes()], |r| r.get::<_, i64>(0))?
        .map(|p| p.map(|p| u64::try_from(p).unwrap_or(0)))
        .collect()
}

/// Deletes `key`'s snapshot at `position`; whether there was one.
pub(crate) fn delete(conn: &Connection, key: &str, position: u64) -> rusqlite::Result<bool> {
    let Ok(position) = i64::try_from(position) else {
        // No snapshot is ever saved past the head, which fits an i64.
        return Ok(false);
    };
    conn.prepare_cached("DELETE FROM snapshots WHERE key = ?1 AND position = ?2")?
        .execute(params![key.as_bytes(), position])
        .map(|n| n > 0)
}
