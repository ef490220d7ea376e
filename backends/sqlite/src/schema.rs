//! The database layout and how connections are opened: the tables and
//! indexes, the schema version recorded in `PRAGMA user_version`, and the
//! pragmas every connection gets (WAL journal, `synchronous`, busy
//! timeout).
//!
//! ```sql
//! CREATE TABLE events (
//!     position INTEGER PRIMARY KEY,  -- the rowid: the global order
//!     type     TEXT    NOT NULL,
//!     tags     BLOB    NOT NULL,     -- the tag list in order (see codec)
//!     stream   TEXT,
//!     revision INTEGER,
//!     id       BLOB    UNIQUE,       -- 16 bytes, big-endian
//!     data     BLOB    NOT NULL,
//!     metadata BLOB    NOT NULL,
//!     ts       INTEGER NOT NULL      -- commit time, µs since the epoch
//! );
//! CREATE INDEX events_by_type ON events (type, position);
//! CREATE UNIQUE INDEX events_by_stream ON events (stream, revision)
//!     WHERE stream IS NOT NULL;
//! CREATE TABLE tags (                -- one row per distinct tag of an event
//!     tag      TEXT    NOT NULL,
//!     position INTEGER NOT NULL,
//!     PRIMARY KEY (tag, position)
//! ) WITHOUT ROWID;
//! CREATE TABLE batches (             -- batches whose first event has an id
//!     first INTEGER PRIMARY KEY,
//!     last  INTEGER NOT NULL
//! );
//! ```
//!
//!
//! Snapshots and tracking info have tables of their own, added to layout
//! version 1 without changing it: every open creates them if they are
//! missing (see [`CREATE_STATE`]), so databases made before them keep
//! opening, and older builds ignore them.
//!
//! The `tags` table is the tag index: its primary key is `(tag,
//! position)`, so a tag's positions are one range scan in order. The
//! `batches` table exists for idempotency: a re-sent batch is a retry only
//! if its ids were committed as exactly one batch, and only batches whose
//! first event has an id can ever be retried.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::options::SqliteOptions;

/// The layout version this crate writes and reads.
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// How many prepared statements each connection keeps (query shapes vary
/// with the number of items, types and tags).
const STATEMENT_CACHE: usize = 128;

const CREATE: &str = "
CREATE TABLE events (
    position INTEGER PRIMARY KEY,
    type     TEXT    NOT NULL,
    tags     BLOB    NOT NULL,
    stream   TEXT,
    revision INTEGER,
    id       BLOB    UNIQUE,
    data     BLOB    NOT NULL,
    metadata BLOB    NOT NULL,
    ts       INTEGER NOT NULL
);
CREATE INDEX events_by_type ON events (type, position);
CREATE UNIQUE INDEX events_by_stream ON events (stream, revision) WHERE stream IS NOT NULL;
CREATE TABLE tags (
    tag      TEXT    NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (tag, position)
) WITHOUT ROWID;
CREATE TABLE batches (
    first INTEGER PRIMARY KEY,
    last  INTEGER NOT NULL
);
";

// --- Snapshots and tracking info -------------------------------------
//
// Additive: created if missing on every open, in the open's transaction,
// so a version-1 database made before them gains them and keeps its
// version. Snapshot states can be large, so the snapshot table keeps its
// rowid (a WITHOUT ROWID table stores whole rows in its B-tree). Keys and
// sources are BLOBs, compared byte for byte as the engine does. A tracking
// position is any u64 (a position in another log): it is stored as the
// i64 of the same bits and compared in Rust, never in SQL.

/// The snapshot and tracking tables.
pub(crate) const CREATE_STATE: &str = "
CREATE TABLE IF NOT EXISTS snapshots (
    key      BLOB    NOT NULL,
    position INTEGER NOT NULL,
    state    BLOB    NOT NULL,
    PRIMARY KEY (key, position)
);
CREATE TABLE IF NOT EXISTS tracking (
    source   BLOB    PRIMARY KEY,
    position INTEGER NOT NULL
) WITHOUT ROWID;
";

// --- end of snapshots and tracking info ---------------------------------

/// Why a database cannot be used.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// SQLite failed.
    Sqlite(rusqlite::Error),
    /// The file holds a layout this version does not know, or cannot be
    /// switched to WAL.
    Unsupported(String),
}

impl From<rusqlite::Error> for OpenError {
    fn from(e: rusqlite::Error) -> OpenError {
        OpenError::Sqlite(e)
    }
}

fn connect(path: &Path, options: &SqliteOptions) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(options.busy_timeout)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "synchronous", options.synchronous.pragma())?;
    Ok(conn)
}

/// Opens the writer connection: switches the file to WAL and creates the
/// schema if the database is new, or checks its version.
pub(crate) fn open_writer(path: &Path, options: &SqliteOptions) -> Result<Connection, OpenError> {
    let mut conn = connect(path, options)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::Unsupported(format!(
            "the database cannot use a WAL journal (journal_mode is {mode})"
        )));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    match version {
        0 => {
            tx.execute_batch(CREATE)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        SCHEMA_VERSION => {}
        other => {
            return Err(OpenError::Unsupported(format!(
                "schema version {other}, this version of gesta-sqlite reads {SCHEMA_VERSION}"
            )));
        }
    }
    tx.execute_batch(CREATE_STATE)?;
    tx.commit()?;
    Ok(conn)
}

/// Opens a reader connection (it refuses writes).
pub(crate) fn open_reader(path: &Path, options: &SqliteOptions) -> rusqlite::Result<Connection> {
    let conn = connect(path, options)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}
