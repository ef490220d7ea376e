//! Snapshots and tracking info in their tables (`schema::create_state`),
//! with the semantics of the [`EventStore`](gesta::EventStore) docs: the
//! statements, and the transaction of a snapshot save.
//!
//! Tracking info is checked and stored inside the append's transaction,
//! under the store's lock ([`check_tracking`] after the DCB condition,
//! [`store_tracking`] after the insert), so it commits with the batch or
//! not at all. A snapshot is saved, and the key's old ones trimmed, in one
//! transaction of its own: appends do not wait for it. Two saves of one key
//! at once may each miss the other's new row when trimming, which can
//! leave one snapshot more than the store keeps until the key's next save
//! — never fewer.

use gesta::{AppendOptions, Result, Snapshot, validation};

use crate::pg_error;
use crate::pool::{Conn, Pooled};

/// The statements, for one schema.
pub(crate) struct StateSql {
    tracking: String,
    store_tracking: String,
    save: String,
    trim: String,
    load: String,
    list: String,
    delete: String,
}

impl StateSql {
    /// The statements on the tables of schema `s` (a quoted identifier).
    pub(crate) fn new(s: &str) -> StateSql {
        StateSql {
            tracking: format!("SELECT position FROM {s}.tracking WHERE source = $1"),
            store_tracking: format!(
                "INSERT INTO {s}.tracking (source, position) VALUES ($1, $2) \
                 ON CONFLICT (source) DO UPDATE SET position = EXCLUDED.position"
            ),
            save: format!(
                "INSERT INTO {s}.snapshots (key, position, state) VALUES ($1, $2, $3) \
                 ON CONFLICT (key, position) DO UPDATE SET state = EXCLUDED.state"
            ),
            trim: format!(
                "DELETE FROM {s}.snapshots WHERE key = $1 AND position NOT IN \
                 (SELECT position FROM {s}.snapshots WHERE key = $1 \
                  ORDER BY position DESC LIMIT $2)"
            ),
            load: format!(
                "SELECT position, state FROM {s}.snapshots WHERE key = $1 AND position <= $2 \
                 ORDER BY position DESC LIMIT 1"
            ),
            list: format!("SELECT position FROM {s}.snapshots WHERE key = $1 ORDER BY position"),
            delete: format!(
                "DELETE FROM {s}.snapshots WHERE key = $1 AND position = $2 RETURNING position"
            ),
        }
    }
}

/// A snapshot position (never past the head, so it fits) or a bound on
/// one, clamped.
fn bound(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A tracking position as stored: the bigint of the same bits, since any
/// u64 is a valid upstream position (compared in Rust, never in SQL).
fn tracking_to_sql(position: u64) -> i64 {
    i64::from_ne_bytes(position.to_ne_bytes())
}

fn tracking_from_sql(stored: i64) -> u64 {
    u64::from_ne_bytes(stored.to_ne_bytes())
}

fn position_from_sql(stored: i64) -> Result<u64> {
    u64::try_from(stored).map_err(|_| gesta::Error::Corruption {
        file: std::path::PathBuf::from("postgres"),
        offset: 0,
        reason: format!("a snapshot at negative position {stored}"),
    })
}

/// The stored tracking position of `source`.
pub(crate) fn tracking(conn: &mut Conn, sql: &StateSql, source: &str) -> Result<Option<u64>> {
    let rows = conn.query(&sql.tracking, &[&source.as_bytes()])?;
    match rows.first() {
        None => Ok(None),
        Some(row) => Ok(Some(tracking_from_sql(row.try_get(0).map_err(pg_error)?))),
    }
}

/// The append's tracking check, inside its transaction.
pub(crate) fn check_tracking(
    conn: &mut Conn,
    sql: &StateSql,
    options: &AppendOptions,
) -> Result<()> {
    let Some((source, position)) = &options.tracking else {
        return Ok(());
    };
    let stored = tracking(conn, sql, source)?;
    validation::check_tracking(source, *position, stored)
}

/// Stores the append's tracking position, inside its transaction.
pub(crate) fn store_tracking(
    conn: &mut Conn,
    sql: &StateSql,
    options: &AppendOptions,
) -> Result<()> {
    if let Some((source, position)) = &options.tracking {
        conn.query(
            &sql.store_tracking,
            &[&source.as_bytes(), &tracking_to_sql(*position)],
        )?;
    }
    Ok(())
}

/// Saves a snapshot in a transaction of its own: checks it against the
/// head (read with `head_sql`), stores it, and deletes all but the key's
/// newest `kept` (0: keeps all).
pub(crate) fn save(
    conn: &mut Pooled<'_>,
    sql: &StateSql,
    head_sql: &str,
    snapshot: (&str, u64, &[u8]),
    kept: usize,
) -> Result<()> {
    let (key, position, state) = snapshot;
    if let Err(e) = conn.execute_batch("BEGIN ISOLATION LEVEL READ COMMITTED") {
        conn.discard();
        return Err(e);
    }
    let written = (|| {
        let head: i64 = conn
            .query_one(head_sql, &[])?
            .try_get(0)
            .map_err(pg_error)?;
        validation::check_snapshot_save(position_from_sql(head)?, key, position, state)?;
        conn.query(&sql.save, &[&key.as_bytes(), &bound(position), &state])?;
        if kept > 0 {
            conn.query(&sql.trim, &[&key.as_bytes(), &bound(kept as u64)])?;
        }
        Ok(())
    })();
    let ended = match &written {
        Ok(()) => conn.commit(),
        Err(_) => conn.execute_batch("ROLLBACK"),
    };
    // A transaction that did not end cleanly leaves the connection in an
    // unknown state: it is closed, not reused.
    if ended.is_err() {
        conn.discard();
    }
    written.and(ended)
}

/// The snapshot of `key` with the greatest position at or before
/// `at_or_before`.
pub(crate) fn load(
    conn: &mut Conn,
    sql: &StateSql,
    key: &str,
    at_or_before: u64,
) -> Result<Option<Snapshot>> {
    let rows = conn.query(&sql.load, &[&key.as_bytes(), &bound(at_or_before)])?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    Ok(Some(Snapshot {
        position: position_from_sql(row.try_get(0).map_err(pg_error)?)?,
        state: row.try_get(1).map_err(pg_error)?,
    }))
}

/// The positions of `key`'s snapshots, ascending.
pub(crate) fn list(conn: &mut Conn, sql: &StateSql, key: &str) -> Result<Vec<u64>> {
    conn.query(&sql.list, &[&key.as_bytes()])?
        .iter()
        .map(|row| position_from_sql(row.try_get(0).map_err(pg_error)?))
        .collect()
}

/// Deletes `key`'s snapshot at `position`; whether there was one.
pub(crate) fn delete(conn: &mut Conn, sql: &StateSql, key: &str, position: u64) -> Result<bool> {
    let Ok(position) = i64::try_from(position) else {
        // No snapshot is ever saved past the head, which fits a bigint.
        return Ok(false);
    };
    Ok(!conn
        .query(&sql.delete, &[&key.as_bytes(), &position])?
        .is_empty())
}
