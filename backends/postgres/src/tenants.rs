//! Tenants over PostgreSQL: [`PostgresTenants`] keeps each tenant's store
//! in a schema of its own, `<prefix><name>` (prefix `tenant_` by default),
//! under the engine's [`TenantSet`], so lazy opening, the bound on open
//! stores, quotas and the name rules are the engine tenants' exactly.
//!
//! - **Names.** A tenant name ([`check_tenant_name`]: `a-z`, `0-9`, `-`,
//!   `_`) is always quoted as an identifier, so it cannot reach into SQL
//!   text or another schema; PostgreSQL keeps 63 bytes of a name, so a
//!   name longer than `63 − prefix` bytes is refused as invalid rather
//!   than cut (two long names would meet in one schema).
//! - **Create** is `CREATE SCHEMA`; the store's tables are made on first
//!   use. **Purge** is `DROP SCHEMA … CASCADE`, one transaction: a crash
//!   leaves the whole tenant or none of it. **List** reads the schemas
//!   whose names start with the prefix.
//! - **Bounds.** Every tenant's store takes its statements' connections
//!   from one pool of [`PostgresOptions::pool_size`] connections, shared by
//!   all tenants; a store with subscriptions adds its listener and up to
//!   two feed connections. With `max_open` stores open, a process holds at
//!   most `pool_size + 3 × max_open` connections (`pool_size` without
//!   subscriptions), whatever the number of tenants.
//! - **Quotas.** The events quota reads the head (one indexed `max`); the
//!   bytes quota sums `pg_total_relation_size` over the schema's tables
//!   (tables, indexes and TOAST), one catalog query per checked append.

use std::sync::Arc;

use gesta::tenants::{
    TenantError, TenantHome, TenantLimits, TenantResult, TenantSet, check_tenant_name,
};
use gesta::{Error, EventStore};

use crate::pool::Pool;
use crate::schema::quote_ident;
use crate::store::parse_url;
use crate::{PostgresOptions, PostgresStore, pg_error};

/// The default prefix of tenants' schemas.
pub const DEFAULT_PREFIX: &str = "tenant_";

/// The longest prefix: tenant names keep at least 31 bytes.
pub const MAX_PREFIX: usize = 32;

/// The longest schema name PostgreSQL keeps whole (NAMEDATALEN - 1).
const MAX_SCHEMA: usize = 63;

/// The PostgreSQL [`TenantHome`]: a schema per tenant, one connection
/// pool for all.
pub struct PostgresSchemas {
    config: postgres::Config,
    prefix: String,
    options: PostgresOptions,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for PostgresSchemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSchemas")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The tenants of a database, each in a schema of its own.
pub type PostgresTenants = TenantSet<PostgresSchemas>;

impl PostgresSchemas {
    /// The tenants in the database at `url` whose schemas start with
    /// `prefix` (1 to [`MAX_PREFIX`] bytes of `a-z`, `0-9` and `_`,
    /// starting with a letter), each store opened with `options` (its
    /// `schema` is ignored; its `pool_size` is the size of the shared
    /// pool). Connects once, to check the server can be reached.
    pub fn connect(
        url: &str,
        prefix: &str,
        options: PostgresOptions,
    ) -> TenantResult<PostgresSchemas> {
        check_prefix(prefix)?;
        if options.pool_size == 0 {
            return Err(invalid("pool_size must be at least 1".to_owned()));
        }
        let config = parse_url(url)?;
        let pool = Arc::new(Pool::new(config.clone(), options.pool_size));
        drop(pool.get()?);
        Ok(PostgresSchemas {
            config,
            prefix: prefix.to_owned(),
            options,
            pool,
        })
    }

    /// The schema of a tenant (the name unchecked).
    pub fn schema(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

/// The tenants in the database at `url` whose schemas start with
/// `prefix`, bounded by `limits`; see [`PostgresSchemas::connect`]. Opens
/// no store.
pub fn connect(
    url: &str,
    prefix: &str,
    options: PostgresOptions,
    limits: TenantLimits,
) -> TenantResult<PostgresTenants> {
    Ok(TenantSet::new(
        PostgresSchemas::connect(url, prefix, options)?,
        limits,
    ))
}

fn invalid(reason: String) -> TenantError {
    TenantError::Store(Error::InvalidInput { reason })
}

fn check_prefix(prefix: &str) -> TenantResult<()> {
    let ok = !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX
        && prefix.as_bytes()[0].is_ascii_lowercase()
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "a tenants' schema prefix must be 1 to {MAX_PREFIX} bytes of a-z, 0-9 and '_', \
             starting with a letter, got {prefix:?}"
        )))
    }
}

impl TenantHome for PostgresSchemas {
    type Store = PostgresStore;

    fn check_name(&self, name: &str) -> TenantResult<()> {
        check_tenant_name(name)?;
        if self.prefix.len() + name.len() > MAX_SCHEMA {
            return Err(TenantError::InvalidName {
                name: name.to_owned(),
                reason: "with the schema prefix it is longer than PostgreSQL's 63-byte names",
            });
        }
        Ok(())
    }

    fn exists(&self, name: &str) -> TenantResult<bool> {
        let mut conn = self.pool.get()?;
        let row = conn.query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&self.schema(name)],
        )?;
        Ok(row.try_get(0).map_err(pg_error)?)
    }

    fn create(&self, name: &str) -> TenantResult<()> {
        let mut conn = self.pool.get()?;
        let sql = format!("CREATE SCHEMA {}", quote_ident(&self.schema(name)));
        match conn.client.batch_execute(&sql) {
            Ok(()) => Ok(()),
            // Made by another process since the set looked.
            Err(e) if e.code() == Some(&postgres::error::SqlState::DUPLICATE_SCHEMA) => {
                Err(TenantError::Exists(name.to_owned()))
            }
            Err(e) => Err(pg_error(e).into()),
        }
    }

    fn list(&self) -> TenantResult<Vec<String>> {
        let mut conn = self.pool.get()?;
        let rows = conn.query(
            "SELECT nspname::text FROM pg_namespace \
             WHERE substr(nspname, 1, length($1)) = $1",
            &[&self.prefix],
        )?;
        rows.iter()
            .map(|row| {
                let schema: String = row.try_get(0).map_err(pg_error)?;
                Ok(schema[self.prefix.len()..].to_owned())
            })
            .collect()
    }

    fn open(&self, name: &str) -> TenantResult<PostgresStore> {
        let options = PostgresOptions {
            schema: self.schema(name),
            ..self.options.clone()
        };
        Ok(PostgresStore::connect_pooled(
            self.config.clone(),
            self.pool.clone(),
            options,
        )?)
    }

    fn purge(&self, name: &str) -> TenantResult<()> {
        let mut conn = self.pool.get()?;
        let sql = format!("DROP SCHEMA {} CASCADE", quote_ident(&self.schema(name)));
        match conn.client.batch_execute(&sql) {
            Ok(()) => Ok(()),
            // Dropped by another process since the set looked.
            Err(e) if e.code() == Some(&postgres::error::SqlState::INVALID_SCHEMA_NAME) => {
                Err(TenantError::Unknown(name.to_owned()))
            }
            Err(e) => Err(pg_error(e).into()),
        }
    }

    fn events(&self, store: &PostgresStore) -> TenantResult<u64> {
        Ok(store.head()?)
    }

    fn bytes(&self, name: &str, _store: &PostgresStore) -> TenantResult<u64> {
        let mut conn = self.pool.get()?;
        let row = conn.query_one(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind = 'r'",
            &[&self.schema(name)],
        )?;
        let bytes: i64 = row.try_get(0).map_err(pg_error)?;
        Ok(u64::try_from(bytes).unwrap_or(0))
    }
}
