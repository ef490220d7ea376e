//! Tenants over SQLite: each tenant's events in a database file of its
//! own, `<root>/tenants/<name>/events.db` (with SQLite's `-wal` and `-shm`
//! files beside it), under the engine's [`TenantSet`] and [`DirHome`], so
//! lazy opening, the bound on open stores, quotas, the name rules,
//! creation, listing and purge are the engine tenants' exactly.
//!
//! The file sits in a directory of its own rather than at
//! `<root>/tenants/<name>.db` so that a purge removes the database and its
//! WAL as one: the directory is renamed away first (see
//! [`TenantDirs`](gesta::tenants::TenantDirs)), so a crash midway never
//! leaves a database whose WAL is gone, which SQLite would open as an
//! older state of the tenant.
//!
//! Bounds: an open store holds its writer connection, up to four idle
//! reader connections (more while reads overlap) and, once it has a
//! subscription, one polling thread; `max_open` bounds the open stores.
//! Quotas: the events quota reads the head (one indexed `max`), the bytes
//! quota adds up the sizes of the tenant's files (a directory listing).

use std::path::Path;

use gesta::EventStore;
use gesta::tenants::{DirHome, DirStore, TenantLimits, TenantResult, TenantSet};

use crate::{SqliteOptions, SqliteStore};

/// The database file of a tenant, in its directory.
pub const TENANT_FILE: &str = "events.db";

/// The SQLite home: a database file per tenant directory.
pub type SqliteDirs = DirHome<SqliteOptions>;

/// The tenants of a root, each in a SQLite file of its own.
pub type SqliteTenants = TenantSet<SqliteDirs>;

/// The tenants under `root` (`<root>/tenants/` is created if missing, and
/// purges a crash interrupted are finished), their stores opened with
/// `options` and bounded by `limits`; opens no store.
pub fn open(
    root: impl AsRef<Path>,
    options: SqliteOptions,
    limits: TenantLimits,
) -> TenantResult<SqliteTenants> {
    Ok(TenantSet::new(DirHome::open(root, options)?, limits))
}

impl DirStore for SqliteOptions {
    type Store = SqliteStore;

    fn open(&self, _name: &str, dir: &Path) -> TenantResult<SqliteStore> {
        Ok(SqliteStore::open(dir.join(TENANT_FILE), *self)?)
    }

    fn events(&self, store: &SqliteStore) -> TenantResult<u64> {
        Ok(store.head()?)
    }
}
