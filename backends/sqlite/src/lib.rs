//! The Gesta [`EventStore`](gesta::EventStore) contract over SQLite.
//!
//! [`SqliteStore`] keeps every event in one SQLite database file (WAL
//! journal, bundled SQLite, so nothing needs to be installed) and behaves
//! exactly like [`MemoryStore`](gesta::MemoryStore), the semantic reference:
//! DCB queries and conditional appends, streams with expected revisions,
//! idempotent appends by event id, reads in both directions, subscriptions
//! (catch-up then live, each batch one append's matching events) and
//! durable subscriptions with their cursors in the database, snapshots,
//! tracking info, retroactive tags and redaction with their audit trail
//! (erased values are overwritten in the file, see
//! [`SqliteStore::vacuum`] for what that covers). Commits
//! through the same handle wake its subscribers at once; commits by other
//! processes on the file reach them within
//! [`SqliteOptions::poll_interval`].
//!
//! One durable subscription per name may be open through a handle, as on
//! every store; but the claim is the handle's, not the file's: another
//! handle (another process) on the same file can open the same name at the
//! same time. Both then receive the events, and the stored cursor keeps
//! the greater of their acknowledgements, so it never moves backwards.
//!
//! ```no_run
//! use gesta::{EventStore, NewEvent, Query, ReadOptions};
//! use gesta_sqlite::{SqliteOptions, SqliteStore};
//!
//! let store = SqliteStore::open("/tmp/events.db", SqliteOptions::default())?;
//! store.append(vec![NewEvent::new("CourseDefined", "{}").tag("course:c1")])?;
//! for event in store.read(&Query::tag("course:c1"), ReadOptions::forwards())? {
//!     println!("{}", event?.position);
//! }
//! # Ok::<(), gesta::Error>(())
//! ```
//!
//! Module map: [`options`] (how a store is opened), `schema` (the tables,
//! indexes, pragmas and schema version), `codec` (how ids and tag lists are
//! encoded in columns), `sql` (DCB queries translated to SQL), `group`
//! (group commit: concurrent appends gathered into one transaction),
//! `store` (the handle: the group's transaction and reads), `readers` (the
//! handle's reader connections), `state` (snapshots and tracking info),
//! `lifecycle` (retroactive tags, redaction and the audit trail),
//! `listings` (streams, types and tags with counts) and `live`
//! (subscriptions: the feed, waking subscribers on this handle's commits
//! and polling for other connections', durable cursors) and [`tenants`]
//! (a database file per tenant, under the engine's tenant set).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod codec;
mod group;
mod lifecycle;
mod listings;
mod live;
pub mod options;
mod readers;
mod removal;
mod schema;
mod sql;
mod state;
mod store;
pub mod tenants;

pub use options::{SqliteOptions, Synchronous};
pub use store::SqliteStore;
pub use tenants::{SqliteDirs, SqliteTenants};
