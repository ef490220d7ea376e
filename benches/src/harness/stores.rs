//! The stores the harness compares, and how each is opened, loaded and
//! closed. Everything backend-specific lives in this file; the workloads
//! see only `&dyn EventStore`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gesta::{Durability, EventStore, Options};

use super::HarnessError;

/// SQLite's page cache per connection in the harness: 256 MiB, as UmaDB's
/// (`uma::UMA_PAGE_CACHE_MB`), the memory
/// Gesta's M1 target allows.
pub const SQLITE_CACHE_BYTES: u64 = 256 << 20;
/// SQLite's memory-mapped file in the harness: 1 GiB, more than the read
/// store's database, so that it is read through the map as Gesta's log is.
pub const SQLITE_MMAP_BYTES: u64 = 1 << 30;

/// One store the harness can run the workloads against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreKind {
    /// Gesta's engine, `Durability::Sync`.
    Gesta,
    /// The same with sealed segments compressed (`Compression::default()`,
    /// compacted after loading): run on W3, D1 and R1–R4 only, beside the
    /// uncompressed engine, to show what compression costs and saves.
    GestaZstd,
    /// SQLite in WAL mode with `synchronous=FULL`.
    SqliteFull,
    /// SQLite in WAL mode with `synchronous=NORMAL` (not durable on power
    /// loss: shown for reference).
    SqliteNormal,
    /// PostgreSQL with `synchronous_commit=on`.
    Postgres,
    /// UmaDB's embedded storage engine.
    UmaDb,
}

impl StoreKind {
    /// The column heading of this store.
    pub fn label(self) -> &'static str {
        match self {
            StoreKind::Gesta => "Gesta (Sync)",
            StoreKind::GestaZstd => "Gesta (Sync, zstd)",
            StoreKind::SqliteFull => "SQLite FULL",
            StoreKind::SqliteNormal => "SQLite NORMAL",
            StoreKind::Postgres => "PostgreSQL",
            StoreKind::UmaDb => "UmaDB (embedded)",
        }
    }

    /// A short name for file names and JSON keys.
    pub fn key(self) -> &'static str {
        match self {
            StoreKind::Gesta => "gesta",
            StoreKind::GestaZstd => "gesta_zstd",
            StoreKind::SqliteFull => "sqlite_full",
            StoreKind::SqliteNormal => "sqlite_normal",
            StoreKind::Postgres => "postgres",
            StoreKind::UmaDb => "umadb",
        }
    }

    /// Whether the store keeps its data in files under a directory of its
    /// own (so that its bytes on disk can be summed).
    pub fn is_embedded(self) -> bool {
        !matches!(self, StoreKind::Postgres)
    }

    /// Whether this is one of the other stores Gesta is compared with (not
    /// Gesta in another configuration).
    pub fn is_peer(self) -> bool {
        !matches!(self, StoreKind::Gesta | StoreKind::GestaZstd)
    }

    /// Whether the store runs only the workloads on the standard data set
    /// (W3, D1, R1–R4).
    pub fn data_only(self) -> bool {
        self == StoreKind::GestaZstd
    }

    /// Whether every acknowledged append survives a power loss (SQLite
    /// NORMAL in WAL mode may lose the last commits).
    pub fn durable(self) -> bool {
        !matches!(self, StoreKind::SqliteNormal)
    }

    /// The stores this run can use: Gesta (plain and compressed) and both
    /// SQLite modes always,
    /// PostgreSQL when a URL was given, UmaDB when built with the `umadb`
    /// feature.
    pub fn available(postgres_url: Option<&str>) -> Vec<StoreKind> {
        let mut kinds = vec![
            StoreKind::Gesta,
            StoreKind::GestaZstd,
            StoreKind::SqliteFull,
            StoreKind::SqliteNormal,
        ];
        if postgres_url.is_some() {
            kinds.push(StoreKind::Postgres);
        }
        if cfg!(feature = "umadb") {
            kinds.push(StoreKind::UmaDb);
        }
        kinds
    }
}

/// How a store is opened: for its measured workloads (the strongest
/// durability it offers), or to load it with data as fast as it can.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The durability the comparison is about.
    Measured,
    /// The fastest way to load that still leaves a consistent store after
    /// a clean close (Gesta `Buffered`, SQLite `synchronous=OFF`).
    Load,
}

/// Where the stores of one run live.
#[derive(Clone, Debug)]
pub struct Location {
    /// Scratch directory for embedded stores.
    pub dir: PathBuf,
    /// PostgreSQL connection URL, if any.
    pub postgres_url: Option<String>,
}

/// Counter that gives every PostgreSQL schema of a run its own name.
static SCHEMAS: AtomicU64 = AtomicU64::new(0);

/// An open store of some kind.
pub enum Handle {
    /// Gesta's engine.
    Gesta(gesta::Store),
    /// SQLite.
    Sqlite(Box<gesta_sqlite::SqliteStore>),
    /// PostgreSQL.
    Postgres(Box<gesta_postgres::PostgresStore>),
    /// UmaDB (embedded).
    #[cfg(feature = "umadb")]
    UmaDb(super::uma::UmaStore),
}

impl Handle {
    /// The store, as the workloads see it.
    pub fn store(&self) -> &dyn EventStore {
        match self {
            Handle::Gesta(s) => s,
            Handle::Sqlite(s) => s.as_ref(),
            Handle::Postgres(s) => s.as_ref(),
            #[cfg(feature = "umadb")]
            Handle::UmaDb(s) => s,
        }
    }

    /// Closes the store cleanly, keeping its data.
    pub fn close(self) -> Result<(), HarnessError> {
        match self {
            Handle::Gesta(s) => s.close()?,
            Handle::Sqlite(s) => drop(s),
            Handle::Postgres(s) => drop(s),
            #[cfg(feature = "umadb")]
            Handle::UmaDb(s) => drop(s),
        }
        Ok(())
    }

    /// Closes the store and deletes its data (a PostgreSQL schema is
    /// dropped; an embedded store's directory is removed by the caller).
    pub fn discard(self) -> Result<(), HarnessError> {
        match self {
            Handle::Postgres(s) => {
                s.drop_schema()?;
                drop(s);
                Ok(())
            }
            other => other.close(),
        }
    }
}

/// One store instance: where it lives and how to (re)open it.
#[derive(Clone, Debug)]
pub struct Instance {
    /// The kind of store.
    pub kind: StoreKind,
    /// Its directory (embedded stores).
    pub dir: PathBuf,
    /// Its PostgreSQL schema (PostgreSQL only).
    pub schema: String,
    /// The PostgreSQL URL (PostgreSQL only).
    pub url: Option<String>,
}

impl Instance {
    /// A fresh instance named `name` (a new directory under the location's
    /// scratch directory, or a new schema).
    pub fn fresh(kind: StoreKind, at: &Location, name: &str) -> Result<Instance, HarnessError> {
        let dir = at.dir.join(format!("{}-{name}", kind.key()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        if kind.is_embedded() {
            std::fs::create_dir_all(&dir)?;
        }
        let n = SCHEMAS.fetch_add(1, Ordering::Relaxed);
        let schema = format!("gesta_bench_{}_{n}_{name}", std::process::id())
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
        let url = at.postgres_url.clone();
        if kind == StoreKind::Postgres && url.is_none() {
            return Err("PostgreSQL needs --postgres-url or GESTA_POSTGRES_URL".into());
        }
        Ok(Instance {
            kind,
            dir,
            schema,
            url,
        })
    }

    /// Opens the instance.
    pub fn open(&self, mode: Mode) -> Result<Handle, HarnessError> {
        Ok(match self.kind {
            StoreKind::Gesta => {
                let options = match mode {
                    Mode::Measured => Options::default().durability(Durability::Sync),
                    Mode::Load => crate::build_options(),
                };
                Handle::Gesta(gesta::Store::open_with(&self.dir, options)?)
            }
            StoreKind::GestaZstd => {
                let options = match mode {
                    Mode::Measured => Options::default().durability(Durability::Sync),
                    Mode::Load => crate::build_options(),
                };
                let options = options.compression(Some(gesta::Compression::default()));
                Handle::Gesta(gesta::Store::open_with(&self.dir, options)?)
            }
            StoreKind::SqliteFull | StoreKind::SqliteNormal => {
                use gesta_sqlite::Synchronous;
                let synchronous = match (mode, self.kind) {
                    (Mode::Load, _) => Synchronous::Off,
                    (Mode::Measured, StoreKind::SqliteFull) => Synchronous::Full,
                    (Mode::Measured, _) => Synchronous::Normal,
                };
                // Memory for its pages, as a user who reads would give it
                // (SQLite's defaults: a 2 MB cache per connection, no map),
                // about what Gesta's reads use: its mapped log and caches.
                let options = gesta_sqlite::SqliteOptions::default()
                    .synchronous(synchronous)
                    .busy_timeout(Duration::from_secs(60))
                    .memory(SQLITE_CACHE_BYTES, SQLITE_MMAP_BYTES);
                Handle::Sqlite(Box::new(gesta_sqlite::SqliteStore::open(
                    self.dir.join("events.sqlite3"),
                    options,
                )?))
            }
            StoreKind::Postgres => {
                let url = self.url.as_deref().ok_or("no PostgreSQL URL")?;
                let options = gesta_postgres::PostgresOptions {
                    schema: self.schema.clone(),
                    pool_size: 32,
                    ..gesta_postgres::PostgresOptions::default()
                };
                Handle::Postgres(Box::new(gesta_postgres::PostgresStore::connect(
                    url, options,
                )?))
            }
            StoreKind::UmaDb => open_umadb(&self.dir)?,
        })
    }

    /// Deletes what is left of the instance: its directory.
    pub fn remove(&self) -> Result<(), HarnessError> {
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir)?;
        }
        Ok(())
    }

    /// The bytes of its files on disk (embedded stores, closed): the sum of
    /// the file sizes, less, for Gesta and UmaDB, the zeros at the end of
    /// each file (space preallocated ahead of the data).
    pub fn bytes_on_disk(&self) -> Option<u64> {
        match self.kind {
            StoreKind::Postgres => None,
            StoreKind::Gesta | StoreKind::GestaZstd | StoreKind::UmaDb => {
                Some(crate::size_without_trailing_zeros(&self.dir))
            }
            _ => crate::dir_size(&self.dir).ok(),
        }
    }
}

#[cfg(feature = "umadb")]
fn open_umadb(dir: &Path) -> Result<Handle, HarnessError> {
    Ok(Handle::UmaDb(super::uma::UmaStore::open(dir)?))
}

#[cfg(not(feature = "umadb"))]
fn open_umadb(_dir: &Path) -> Result<Handle, HarnessError> {
    Err("UmaDB needs the `umadb` feature".into())
}
