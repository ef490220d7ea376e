//! The database layout and how connections are opened: the tables and
//! indexes, the schema version recorded in `PRAGMA user_version`, and the
//! pragmas every connection gets (WAL journal, `synchronous`, busy
//! timeout, `secure_delete`).
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
//! CREATE TABLE batches (             -- every append (version 1: only
//!     first INTEGER PRIMARY KEY,     -- those whose first event has an id)
//!     last  INTEGER NOT NULL
//! );
//! -- version 2 (see `LIVE`):
//! CREATE TABLE cursors (             -- durable subscriptions' positions
//!     name     TEXT    PRIMARY KEY,
//!     position INTEGER NOT NULL
//! ) WITHOUT ROWID;
//! -- version 3 (see `REMOVAL`):
//! CREATE TABLE removed_events (      -- the events removed (stream deleted
//!     position INTEGER PRIMARY KEY,  -- or truncated, retention): moved out
//!     type     TEXT    NOT NULL,     -- of `events` without their data and
//!     tags     BLOB    NOT NULL,     -- metadata, so that positions, stream
//!     stream   TEXT,                 -- revisions and ids stay taken
//!     revision INTEGER,
//!     id       BLOB    UNIQUE,
//!     ts       INTEGER NOT NULL
//! );
//! CREATE INDEX removed_by_stream ON removed_events (stream, revision)
//!     WHERE stream IS NOT NULL;
//! CREATE TABLE retention (           -- the retention rules in force, in
//!     ord  INTEGER PRIMARY KEY,      -- the order they were first set
//!     rule BLOB    NOT NULL          -- gesta::lifecycle::encode_rule
//! );
//! -- version 4 (see `TYPED_TAGS`): `tags` rebuilt with its event's type
//! CREATE TABLE tags (
//!     tag      TEXT    NOT NULL,
//!     position INTEGER NOT NULL,
//!     type     TEXT    NOT NULL,     -- the type of the event at position
//!     PRIMARY KEY (tag, position)
//! ) WITHOUT ROWID;
//! -- additive, in any version (see `CREATE_STATE` and `CREATE_AUDIT`):
//! CREATE TABLE snapshots (           -- snapshots by key and position
//!     key      BLOB    NOT NULL,
//!     position INTEGER NOT NULL,
//!     state    BLOB    NOT NULL,
//!     PRIMARY KEY (key, position)
//! );
//! CREATE TABLE tracking (            -- each source's tracking position
//!     source   BLOB    PRIMARY KEY,
//!     position INTEGER NOT NULL
//! ) WITHOUT ROWID;
//! CREATE TABLE audit (               -- the audit trail of lifecycle
//!     sequence INTEGER PRIMARY KEY,  -- operations: 1, 2, …
//!     ts       INTEGER NOT NULL,     -- commit time, µs since the epoch
//!     entry    BLOB    NOT NULL      -- gesta::lifecycle::encode_entry
//! );
//! CREATE TABLE redacted (            -- the positions of the events
//!     position INTEGER PRIMARY KEY   -- redacted
//! );
//! CREATE TABLE added_tags (          -- how many of an event's tags
//!     position INTEGER PRIMARY KEY,  -- were added after the fact
//!     count    INTEGER NOT NULL      -- (no row: none)
//! );
//! ```
//!
//! Snapshots, tracking info, the audit trail, the redacted positions and
//! the added tags' counts have tables of their own, added to the layout
//! without changing its version: every open creates them if they are
//! missing (see [`CREATE_STATE`] and [`CREATE_AUDIT`]), so databases made
//! before them keep opening, and older builds ignore them.
//!
//! Retroactive tags (see `lifecycle`) change no table's layout: an event
//! that gains tags gets them appended to its `tags` list and a row in the
//! `tags` table each, and its count in `added_tags` grows by as many, in
//! the transaction that records the operation in `audit`. The count is
//! what tells the event's own tags (the first ones of the list) from
//! those added since: an idempotent retry is compared with the event as
//! it was appended (see `SqliteStore::check_ids`). Tags added before the
//! table existed, or by an older build, are not counted: they pass for
//! the event's own, and a retry of its batch is then refused as a
//! duplicate rather than recognised. Redaction changes none either: a
//! redacted event's `data` and `metadata` are the empty blob, and its
//! position is in `redacted` (an event may have been appended with both
//! empty, so the columns alone do not tell). An older build reading the
//! file returns the redacted events as they are, empty.
//!
//! Every connection runs with `PRAGMA secure_delete = ON`: SQLite then
//! overwrites with zeros the content that a write deletes or frees — the
//! old cell of a row rewritten by `add_tags` or a redaction, freed pages
//! — so that erased bytes do not linger in free space. It costs a little
//! on writes that free space (appends free none).
//!
//! The `tags` table is the tag index: its primary key is `(tag,
//! position)`, so a tag's positions are one range scan in order. Each
//! row also holds the type of its event (an event's type never changes;
//! the table is `WITHOUT ROWID`, so the type is in the primary key's
//! B-tree, beside the key): "these types AND this tag" is answered from
//! that one range, each row's type looked at where it lies, rather than
//! by joining every event with the tag to `events` to look at its type.
//! (An index on `(tag, type, position)` would narrow the range to the
//! matching rows, but it is a second B-tree written at random places for
//! every tag of every append: measured, it cost appends more than it
//! saved the reads.) The
//! `batches` table records which positions each append got: idempotency
//! needs it (a re-sent batch is a retry only if its ids were committed as
//! exactly one batch), and subscriptions deliver each append's matching
//! events as one batch (see `live`).

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::options::SqliteOptions;

/// The layout version this crate writes and reads (older ones are
/// migrated on open, see `migrate`).
pub(crate) const SCHEMA_VERSION: i64 = 4;

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

// --- The audit trail ------------------------------------------------------
//
// Additive like the state tables: created if missing on every open. One
// row per lifecycle operation, the whole entry in the engine's portable
// binary form; the commit time also has a column, so that the next entry's
// time is read without decoding one.

/// The audit trail's table, the redacted positions (a redaction records
/// its operation in the one and the events it erased in the other), and
/// how many tags each event gained after the fact (`add_tags` counts them
/// there as it records its operation).
pub(crate) const CREATE_AUDIT: &str = "
CREATE TABLE IF NOT EXISTS audit (
    sequence INTEGER PRIMARY KEY,
    ts       INTEGER NOT NULL,
    entry    BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS redacted (
    position INTEGER PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS added_tags (
    position INTEGER PRIMARY KEY,
    count    INTEGER NOT NULL
);
";

// --- end of the audit trail -------------------------------------------------

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

/// A connection with the pragmas every connection gets.
pub(crate) fn connect(path: &Path, options: &SqliteOptions) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(options.busy_timeout)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "synchronous", options.synchronous.pragma())?;
    conn.pragma_update(None, "secure_delete", true)?;
    // Negative: a size in KiB rather than in pages.
    let cache_kib = i64::try_from(options.cache_bytes / 1024).unwrap_or(i64::MAX);
    conn.pragma_update(None, "cache_size", -cache_kib.max(1))?;
    let mmap = i64::try_from(options.mmap_bytes).unwrap_or(i64::MAX);
    // The pragma answers with the size it took, as a row.
    conn.query_row(&format!("PRAGMA mmap_size = {mmap}"), [], |_| Ok(()))
        .optional()?;
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
    if !(0..=SCHEMA_VERSION).contains(&version) {
        return Err(OpenError::Unsupported(format!(
            "schema version {version}, this version of gesta-sqlite reads {SCHEMA_VERSION}"
        )));
    }
    // Each version's additions, from the one after the file's on.
    if version == 0 {
        tx.execute_batch(CREATE)?;
        tx.execute_batch(LIVE)?;
    }
    if version == 1 {
        migrate_to_live(&tx)?;
    }
    if version < 3 {
        tx.execute_batch(REMOVAL)?;
    }
    if version < 4 {
        migrate_to_typed_tags(&tx)?;
    }
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.execute_batch(CREATE_STATE)?;
    tx.execute_batch(CREATE_AUDIT)?;
    tx.commit()?;
    Ok(conn)
}

/// Opens a reader connection (it refuses writes).
pub(crate) fn open_reader(path: &Path, options: &SqliteOptions) -> rusqlite::Result<Connection> {
    let conn = connect(path, options)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

// ---- Version 4: the event type in the tag index -------------------------

/// What version 4 makes of `tags`: each row with its event's type, so
/// that "type AND tag" is answered from the table alone. Not additive: a
/// build that does not know the column would insert tag rows without it
/// — version 4 keeps such builds out.
const TYPED_TAGS: &str = "
CREATE TABLE tags_typed (
    tag      TEXT    NOT NULL,
    position INTEGER NOT NULL,
    type     TEXT    NOT NULL,
    PRIMARY KEY (tag, position)
) WITHOUT ROWID;
INSERT INTO tags_typed (tag, position, type)
    SELECT t.tag, t.position, e.type FROM tags t JOIN events e ON e.position = t.position
    ORDER BY t.tag, t.position;
DROP TABLE tags;
ALTER TABLE tags_typed RENAME TO tags;
";

/// Rebuilds the `tags` table of a version 3 (or older, already migrated
/// to 3) database with each row's event type, in the open's
/// transaction: one pass over the tag
/// rows, each joined to its event. Every tag row names an event in
/// `events` (a removal deletes its events' tag rows); a row that does not
/// is damage, and the migration refuses the file rather than drop it.
fn migrate_to_typed_tags(tx: &rusqlite::Transaction<'_>) -> Result<(), OpenError> {
    let orphans: i64 = tx.query_row(
        "SELECT count(*) FROM tags t WHERE NOT EXISTS \
         (SELECT 1 FROM events e WHERE e.position = t.position)",
        [],
        |r| r.get(0),
    )?;
    if orphans > 0 {
        return Err(OpenError::Unsupported(format!(
            "{orphans} rows of the tags table name positions with no event; \
             the tag index cannot be migrated to schema version 4"
        )));
    }
    tx.execute_batch(TYPED_TAGS)?;
    Ok(())
}

// ---- Version 3: removal ----------------------------------------------

/// What version 3 adds to version 2: the removed events and the retention
/// rules. Not additive like the audit tables: a removed event leaves
/// `events`, so a build that does not know `removed_events` would take
/// the head, a stream's revision or an id for free again — version 3
/// keeps such builds out.
const REMOVAL: &str = "
CREATE TABLE removed_events (
    position INTEGER PRIMARY KEY,
    type     TEXT    NOT NULL,
    tags     BLOB    NOT NULL,
    stream   TEXT,
    revision INTEGER,
    id       BLOB    UNIQUE,
    ts       INTEGER NOT NULL
);
CREATE INDEX removed_by_stream ON removed_events (stream, revision) WHERE stream IS NOT NULL;
CREATE TABLE retention (
    ord  INTEGER PRIMARY KEY,
    rule BLOB    NOT NULL
);
";

// ---- Version 2: subscriptions (batch boundaries) and durable cursors ----

/// What version 2 adds to version 1: the cursors of durable subscriptions.
/// (It also records every append in `batches`, which needs no DDL.)
const LIVE: &str = "
CREATE TABLE cursors (
    name     TEXT    PRIMARY KEY,
    position INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Migrates a version 1 database (additively): creates `cursors`, and
/// records the appends `batches` lacks — version 1 kept only those whose
/// first event had an id. Which events formed one append is not stored
/// in version 1, but every event of an append got the append's commit
/// time, and a later append never an earlier one: a run of consecutive
/// positions with one `ts` is taken as one append, split where `batches`
/// knows a boundary. Two appends committed within the same microsecond
/// would become one batch for subscriptions (idempotency is unaffected: it
/// only looks up batches whose first event has an id, which version 1
/// recorded exactly).
pub(crate) fn migrate_to_live(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(LIVE)?;
    // Each event asks whether a batch ends just before it: without an index
    // on `last` that is a scan of `batches` per event, quadratic in a large
    // store whose batches carried ids. The index lives for the migration.
    tx.execute_batch(
        "CREATE INDEX migrate_batches_by_last ON batches (last);
         INSERT OR IGNORE INTO batches (first, last)
         SELECT min(position), max(position) FROM (
             SELECT position, sum(starts) OVER (ORDER BY position) AS run FROM (
                 SELECT e.position,
                        CASE WHEN e.ts IS NOT lag(e.ts) OVER (ORDER BY e.position)
                               OR EXISTS (SELECT 1 FROM batches b WHERE b.first = e.position)
                               OR EXISTS (SELECT 1 FROM batches b WHERE b.last = e.position - 1)
                             THEN 1 ELSE 0 END AS starts
                 FROM events e))
         GROUP BY run;
         DROP INDEX migrate_batches_by_last;",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection gets the cache and the map its options give, and
    /// SQLite's own defaults without them.
    #[test]
    fn connections_get_the_memory_their_options_give() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.db");
        let pragma = |conn: &Connection, name: &str| -> i64 {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .unwrap()
        };
        let default = connect(&path, &SqliteOptions::default()).unwrap();
        assert_eq!(pragma(&default, "cache_size"), -2000);
        assert_eq!(pragma(&default, "mmap_size"), 0);
        let tuned = SqliteOptions::default().memory(64 << 20, 1 << 30);
        let conn = connect(&path, &tuned).unwrap();
        assert_eq!(pragma(&conn, "cache_size"), -(64 << 10));
        assert_eq!(pragma(&conn, "mmap_size"), 1 << 30);
    }
}
