//! The Gesta [`EventStore`](gesta::EventStore) contract over PostgreSQL.
//!
//! [`PostgresStore`] keeps every event in a few tables of one PostgreSQL
//! schema, created on first [`connect`](PostgresStore::connect), so that
//! several stores (one per tenant, say) share one database. It behaves
//! exactly like [`MemoryStore`](gesta::MemoryStore), the semantic
//! reference: gapless positions, DCB queries and conditional appends,
//! streams with expected revisions, idempotent appends by event id, reads in
//! both directions with an exclusive start and a limit, snapshots,
//! tracking info, retroactive tags and redaction with their audit trail.
//!
//! ```no_run
//! use gesta::{EventStore, NewEvent, Query, ReadOptions};
//! use gesta_postgres::{PostgresOptions, PostgresStore};
//!
//! let store = PostgresStore::connect(
//!     "postgres://postgres@127.0.0.1:5432/app",
//!     PostgresOptions {
//!         schema: "tenant_42".into(),
//!         ..PostgresOptions::default()
//!     },
//! )?;
//! store.append(vec![NewEvent::new("CourseDefined", "{}").tag("course:c1")])?;
//! for event in store.read(&Query::tag("course:c1"), ReadOptions::forwards())? {
//!     println!("{}", event?.position);
//! }
//! # Ok::<(), gesta::Error>(())
//! ```
//!
//! How it works:
//!
//! - **Appends serialize per store.** Each append is one `READ COMMITTED`
//!   transaction that first takes a transaction-level advisory lock keyed by
//!   a hash of the schema name (`pg_advisory_xact_lock`), then checks ids,
//!   expected revisions and the DCB condition, each statement seeing every
//!   append committed before the lock was granted, then inserts the batch
//!   at `max(position) + 1` with one multi-row `INSERT … SELECT FROM
//!   unnest(…)`, and stores the append's tracking info, if any, checked
//!   after the condition. Positions are therefore gapless, and a failed append rolls
//!   back and consumes none. Commits are durable (`synchronous_commit =
//!   on` on every connection).
//! - **Reads** are a query per page of events, each page bounded by the
//!   previous one's last position and, forwards, by the head read with the
//!   first page, so a read sees the log as it was when it began. DCB queries
//!   become a `UNION` of index range scans: `(tag, position)` for items with
//!   tags, `(event_type, position)` for items of types only.
//! - **Connections** come from a small pool of at most
//!   [`PostgresOptions::pool_size`] connections, each caching its prepared
//!   statements. TLS is not supported (use a local socket or a trusted
//!   network).
//!
//! Names (types, tags, streams) are stored as `bytea`, byte for byte, so
//! that any name the engine accepts round-trips and compares exactly as in
//! the engine; `convert_from(event_type, 'UTF8')` shows them as text.
//! Ids are 16-byte big-endian `bytea`; timestamps are microseconds since
//! the Unix epoch from the server's clock, never decreasing within a store.
//!
//! - **Subscriptions** are live through `LISTEN/NOTIFY`: every append
//!   notifies the store's channel in its transaction, and a dedicated
//!   connection listens, with a poll as the fallback (see
//!   [`PostgresOptions::poll_interval`]).
//! - **Durable subscriptions** keep their cursors in the `cursors` table.
//!   One per name may be open through a handle, as on every store; but the
//!   claim is the handle's, not the schema's: another handle (another
//!   process) on the same schema can open the same name at the same time.
//!   Both then receive the events, and the stored cursor keeps the greater
//!   of their acknowledgements, so it never moves backwards.
//! - **Retroactive tags** (`add_tags`) take the appends' lock in a
//!   transaction of their own, append the tags to the events' tag arrays
//!   and index rows, and record the operation in the `audit` table in the
//!   same transaction; they consume no position and notify no one.
//! - **Redaction** (`redact`) runs the same way: it sets the events'
//!   `data` and `metadata` to the empty `bytea`, records their positions
//!   in the `redacted` table and the operation in `audit`. The old row
//!   versions, with the values, stay in the table's files until `VACUUM`
//!   (and in the WAL until it is recycled); the store runs none (see
//!   [`EventStore::redact`](gesta::EventStore::redact) on
//!   [`PostgresStore`]).
//!
//! Module map: `schema` (the tables, indexes and schema version), `sql`
//! (DCB queries translated to SQL), `pool` (connections and their prepared
//! statements), `store` (the handle: the append transaction and reads),
//! `state` (snapshots and tracking info), `lifecycle` (retroactive tags,
//! redaction and the audit trail), `listings` (streams, types and tags
//! with counts), `live` (subscriptions: the feed, the listener, durable
//! cursors) and [`tenants`] (a schema per tenant, under the engine's
//! tenant set, with one connection pool for all).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod lifecycle;
mod listings;
mod live;
mod pool;
mod removal;
mod schema;
mod sql;
mod state;
mod store;
pub mod tenants;

pub use store::PostgresStore;
pub use tenants::{PostgresSchemas, PostgresTenants};

/// How a [`PostgresStore`] connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresOptions {
    /// The PostgreSQL schema holding the store's tables (created if
    /// missing); one store per schema. 1 to 63 bytes, no NUL.
    pub schema: String,
    /// Most connections the store opens at once (at least 1). Appends
    /// serialize anyway; more connections let reads run alongside.
    pub pool_size: usize,
    /// How many snapshots a save keeps per key: saving one deletes all but
    /// the newest this many (default 3; 0 keeps all), as
    /// [`gesta::Options::snapshots_kept`] does for the engine.
    pub snapshots_kept: usize,
    /// How long the listener of a store with subscriptions waits for a
    /// commit notification before it reads the head anyway (default
    /// 500 ms): a notification lost with a broken connection delays
    /// subscribers by at most about this much. Commits through this handle
    /// wake its subscribers at once, others' as their notification
    /// arrives.
    pub poll_interval: std::time::Duration,
}

impl Default for PostgresOptions {
    /// Schema `gesta`, at most 8 connections, 3 snapshots kept per key, a
    /// 500 ms poll interval.
    fn default() -> PostgresOptions {
        PostgresOptions {
            schema: "gesta".to_owned(),
            pool_size: 8,
            snapshots_kept: gesta::snapshots::DEFAULT_KEPT,
            poll_interval: std::time::Duration::from_millis(500),
        }
    }
}

/// A PostgreSQL (or connection) error as a store error.
pub(crate) fn pg_error<E>(e: E) -> gesta::Error
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    gesta::Error::Io {
        path: std::path::PathBuf::from("postgres"),
        source: std::io::Error::other(e),
    }
}
