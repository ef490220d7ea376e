//! The tables and indexes of one store, created in their own schema, and
//! the schema version recorded next to them.
//!
//! - `events`: one row per event, keyed by position; names as `bytea`, the
//!   tags in their given order (repeats kept) as `bytea[]`, the id as
//!   16-byte big-endian `bytea` (unique), the stream and its revision
//!   (unique together), the batch's commit timestamp. Indexed by
//!   `(event_type, position)`.
//! - `event_tags`: `(tag, position)` for each distinct tag of each event,
//!   the index DCB queries with tags scan.
//! - `batches`: the first and last position and the timestamp of every
//!   committed batch: an idempotent retry must repeat exactly a committed
//!   batch, and timestamps never decrease.
//! - `gesta_meta`: `schema_version`.
//! - `snapshots` and `tracking`: snapshots by `(key, position)` and each
//!   tracking source's stored position; added to version 1 without
//!   changing it (see [`create_state`]).
//! - `cursors` (added after version 1, see `live_tables`): the durable
//!   subscriptions' positions by name.
//! - `audit` (added after version 1, see `audit_table`): the audit trail
//!   of lifecycle operations, one row per operation by `sequence` (1, 2,
//!   …), with its commit time and the whole entry in the engine's portable
//!   binary form (`gesta::lifecycle::encode_entry`).
//! - `redacted` (added after version 1, with `audit`): the position of
//!   every redacted event.
//! - `added_tags` (added after version 1, with `audit`): how many tags an
//!   event gained after the fact, by position (no row: none).
//! - `removed_events` and `retention` (version 2, see `removal_tables`):
//!   the events removed (stream deletion and truncation, retention), moved
//!   out of `events` without their data and metadata and out of
//!   `event_tags`, so that every read and condition stops seeing them while
//!   their positions, stream revisions and ids stay taken; and the
//!   retention rules in force, in the order they were first set.
//!
//! Retroactive tags (see `lifecycle`) change no table's layout: an event
//! that gains tags gets them appended to its `tags` array and a row in
//! `event_tags` each, and its count in `added_tags` grows by as many, in
//! the transaction that records the operation in `audit`. The count is
//! what tells the event's own tags (the first ones of the array) from
//! those added since: an idempotent retry is compared with the event as
//! it was appended. Tags added before the table existed, or by an older
//! build, are not counted: they pass for the event's own, and a retry of
//! its batch is then refused as a duplicate rather than recognised.
//! Redaction changes none either: a redacted event's `data` and
//! `metadata` are the empty `bytea`, and its position is in `redacted`
//! (an event may have been appended with both empty, so the columns alone
//! do not tell). An older build returns the redacted events as they are,
//! empty.

use gesta::{Error, Result};

use crate::pool::Conn;

/// The version of the tables this build creates and reads.
pub(crate) const SCHEMA_VERSION: u32 = 2;

/// The longest schema name PostgreSQL keeps whole (NAMEDATALEN - 1).
const MAX_SCHEMA_NAME: usize = 63;

/// Checks a schema name.
pub(crate) fn check_schema_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_SCHEMA_NAME || name.contains('\0') {
        return Err(Error::InvalidInput {
            reason: format!(
                "schema name must be 1 to {MAX_SCHEMA_NAME} bytes without NUL, got {name:?}"
            ),
        });
    }
    Ok(())
}

/// `name` as a quoted SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The advisory lock key of the store in schema `name`: FNV-1a of the
/// name. Two schemas with the same key merely serialize their appends.
pub(crate) fn lock_key(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"gesta-postgres:".iter().chain(name.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// The statements that start an append transaction: `READ COMMITTED`, so
/// that every later statement sees what was committed before the lock was
/// granted, then the store's lock.
pub(crate) fn begin_locked(key: i64) -> String {
    format!("BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock({key})")
}

fn create_tables(s: &str) -> String {
    format!(
        "CREATE TABLE {s}.events (
            position bigint PRIMARY KEY,
            event_type bytea NOT NULL,
            tags bytea[] NOT NULL,
            data bytea NOT NULL,
            metadata bytea NOT NULL,
            id bytea UNIQUE,
            stream bytea,
            revision bigint,
            timestamp_micros bigint NOT NULL,
            CHECK ((stream IS NULL) = (revision IS NULL))
        );
        CREATE INDEX events_type ON {s}.events (event_type, position);
        CREATE UNIQUE INDEX events_stream ON {s}.events (stream, revision)
            WHERE stream IS NOT NULL;
        CREATE TABLE {s}.event_tags (
            tag bytea NOT NULL,
            position bigint NOT NULL,
            PRIMARY KEY (tag, position)
        );
        CREATE TABLE {s}.batches (
            first bigint PRIMARY KEY,
            last bigint NOT NULL,
            timestamp_micros bigint NOT NULL
        );
        INSERT INTO {s}.gesta_meta (key, value)
            VALUES ('schema_version', '{SCHEMA_VERSION}');"
    )
}

// --- Snapshots and tracking info -------------------------------------
//
// Additive: created if missing on every connect, under the store's lock,
// so a version-1 schema made before them gains them and keeps its
// version (and older builds ignore them). Keys and sources are `bytea`,
// compared byte for byte as the engine does. A tracking position is any
// u64 (a position in another log): it is stored as the bigint of the same
// bits and compared in Rust, never in SQL.

/// The snapshot and tracking tables of schema `s` (a quoted identifier).
fn create_state(s: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {s}.snapshots (
            key bytea NOT NULL,
            position bigint NOT NULL,
            state bytea NOT NULL,
            PRIMARY KEY (key, position)
        );
        CREATE TABLE IF NOT EXISTS {s}.tracking (
            source bytea PRIMARY KEY,
            position bigint NOT NULL
        );"
    )
}

// --- end of snapshots and tracking info ---------------------------------

/// Creates the schema and its tables if they are missing, or checks the
/// recorded version if they exist. Runs under the store's lock, so that
/// stores connecting at once to a new schema create it once.
pub(crate) fn ensure(conn: &mut Conn, name: &str, key: i64) -> Result<()> {
    let s = quote_ident(name);
    conn.execute_batch(&begin_locked(key))?;
    let result = (|| {
        conn.execute_batch(&format!(
            "CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {s}.gesta_meta (
                 key text PRIMARY KEY,
                 value text NOT NULL
             );"
        ))?;
        let rows = conn.query(
            &format!("SELECT value FROM {s}.gesta_meta WHERE key = 'schema_version'"),
            &[],
        )?;
        match rows.first() {
            None => {
                conn.execute_batch(&create_tables(&s))?;
                conn.execute_batch(&removal_tables(&s))?;
                conn.execute_batch(&create_state(&s))
            }
            Some(row) => {
                let version: String = row.try_get(0).map_err(crate::pg_error)?;
                if version == SCHEMA_VERSION.to_string() {
                    conn.execute_batch(&create_state(&s))
                } else if version == "1" {
                    conn.execute_batch(&create_state(&s))?;
                    conn.execute_batch(&removal_tables(&s))?;
                    conn.execute_batch(&format!(
                        "UPDATE {s}.gesta_meta SET value = '{SCHEMA_VERSION}' \
                         WHERE key = 'schema_version'"
                    ))
                } else {
                    Err(crate::pg_error(format!(
                        "schema {name:?} has version {version}, this build reads version \
                         {SCHEMA_VERSION}"
                    )))
                }
            }
        }
    })()
    .and_then(|()| conn.execute_batch(&live_tables(&s)))
    .and_then(|()| conn.execute_batch(&audit_table(&s)));
    match result {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

// ---- Subscriptions: durable cursors ----

/// The tables subscriptions add, created if missing on every connect: an
/// additive change, so the schema version stays 1 (a store of version 1
/// gets them on its next connect; an older build ignores them).
fn live_tables(s: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {s}.cursors (
            name bytea PRIMARY KEY,
            position bigint NOT NULL
        );"
    )
}

// ---- Lifecycle: the audit trail and the redacted positions ----

/// The audit trail's table, the redacted positions' and the added tags'
/// counts, created if missing on every connect: an additive change like
/// `live_tables`, so the schema version stays 1. The commit time has a
/// column of its own, so that the next entry's is found without decoding
/// one.
fn audit_table(s: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {s}.audit (
            sequence bigint PRIMARY KEY,
            timestamp_micros bigint NOT NULL,
            entry bytea NOT NULL
        );
        CREATE TABLE IF NOT EXISTS {s}.redacted (
            position bigint PRIMARY KEY
        );
        CREATE TABLE IF NOT EXISTS {s}.added_tags (
            position bigint PRIMARY KEY,
            count bigint NOT NULL
        );"
    )
}

// ---- Version 2: removal ----

/// The removed events and the retention rules (version 2, from version 1
/// by adding them). Not additive like the audit tables: a removed event
/// leaves `events`, so a build that does not know `removed_events` would
/// take its position, revision or id for free again — version 2 keeps such
/// builds out.
fn removal_tables(s: &str) -> String {
    format!(
        "CREATE TABLE {s}.removed_events (
            position bigint PRIMARY KEY,
            event_type bytea NOT NULL,
            tags bytea[] NOT NULL,
            id bytea UNIQUE,
            stream bytea,
            revision bigint,
            timestamp_micros bigint NOT NULL
        );
        CREATE INDEX removed_stream ON {s}.removed_events (stream, revision)
            WHERE stream IS NOT NULL;
        CREATE TABLE {s}.retention (
            ord bigint PRIMARY KEY,
            rule bytea NOT NULL
        );"
    )
}
