//! Many stores under one root: [`Tenants`] keeps each tenant's store in
//! `<root>/tenants/<name>/`, a normal store directory, opens it on first
//! use and closes the least recently used idle one when more than
//! [`TenantOptions::max_open`] are open, so that the threads, open files
//! and memtables of a process are bounded by `max_open`, not by the number
//! of tenants. It also creates, lists and purges tenants and checks
//! per-tenant quotas before appends.
//!
//! A tenant's name is its directory's name and nothing else: 1 to 64
//! bytes of `a-z`, `0-9`, `-` and `_`, starting with a letter or digit, so
//! no name can reach outside `<root>/tenants/` or into another tenant.
//! Directories go through the stores' file system seam
//! ([`Options::fs`](crate::Options::fs)). A purge first renames the
//! tenant's directory to `.purging-<name>` (never a tenant name), so a
//! crash midway leaves no half-deleted store to open; [`Tenants::open`]
//! finishes such purges.
//!
//! Bounds: each open store runs a committer and a flusher thread (and a
//! projector once a projection is registered, and a retention thread once
//! it has a retention rule), holds its active segment, index runs and
//! memtable; with `max_open` stores open at most, a process runs at most
//! `2 × max_open` store threads, and up to `4 × max_open` with projections
//! and retention rules in every store. A store handed out by
//! [`Tenants::get`] stays open while its `Arc` is held (an in-flight call
//! or an open subscription); when every open store is held, opening one
//! more is refused with [`TenantError::Busy`] rather than exceeding the
//! bound.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gesta_wal::io::FileSystem;
use parking_lot::Mutex;

use crate::append::{AppendOptions, Appended};
use crate::error::Error;
use crate::event::NewEvent;
use crate::options::Options;
use crate::store::Store;

/// The longest tenant name, in bytes.
pub const MAX_TENANT_NAME: usize = 64;

/// How tenants' stores are opened and bounded.
#[derive(Clone, Debug)]
pub struct TenantOptions {
    /// The options each tenant's store is opened with. Default
    /// [`Options::default`].
    pub store: Options,
    /// The most stores open at once. Default 64.
    pub max_open: usize,
    /// The most events a tenant may hold; an append that would pass it is
    /// refused with [`TenantError::QuotaExceeded`]. Default none.
    pub max_events: Option<u64>,
    /// The most bytes a tenant's files may take on disk (preallocated
    /// segment space included); an append once they take it is refused
    /// with [`TenantError::QuotaExceeded`]. Default none.
    pub max_bytes: Option<u64>,
}

impl Default for TenantOptions {
    fn default() -> Self {
        TenantOptions {
            store: Options::default(),
            max_open: 64,
            max_events: None,
            max_bytes: None,
        }
    }
}

/// Why a tenant operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TenantError {
    /// The name is not a valid tenant name.
    #[error("invalid tenant name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No tenant has this name.
    #[error("no tenant named {0:?}")]
    Unknown(String),
    /// A tenant with this name exists already.
    #[error("a tenant named {0:?} exists already")]
    Exists(String),
    /// The append would take the tenant over a quota; nothing was appended.
    #[error("tenant {tenant:?} is over its quota: {what}")]
    QuotaExceeded {
        /// The tenant.
        tenant: String,
        /// Which quota, and by how much.
        what: String,
    },
    /// Every open store is in use, so no other can be opened now; retry
    /// later.
    #[error("all {0} open tenant stores are in use; retry later")]
    Busy(usize),
    /// The tenant's store is in use (a purge waits for none).
    #[error("tenant {0:?} is in use")]
    InUse(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] Error),
}

/// A tenant's result.
pub type TenantResult<T> = std::result::Result<T, TenantError>;

/// Checks a tenant name; see the module documentation.
pub fn check_tenant_name(name: &str) -> TenantResult<()> {
    let invalid = |reason| {
        Err(TenantError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > MAX_TENANT_NAME {
        return invalid("it is longer than 64 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return invalid("only a-z, 0-9, '-' and '_' are allowed");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return invalid("it must start with a letter or a digit");
    }
    Ok(())
}

struct Slot {
    store: Arc<Store>,
    /// The tick of its last use, for least-recently-used eviction.
    used: u64,
}

#[derive(Default)]
struct Open {
    stores: HashMap<String, Slot>,
    tick: u64,
}

/// The tenants under a root; see the module documentation.
pub struct Tenants {
    dir: PathBuf,
    options: TenantOptions,
    open: Mutex<Open>,
}

impl std::fmt::Debug for Tenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenants")
            .field("dir", &self.dir)
            .field("open", &self.open_count())
            .finish()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TenantError + '_ {
    move |source| {
        TenantError::Store(Error::Io {
            path: path.to_owned(),
            source,
        })
    }
}

/// The prefix of a directory being purged.
const PURGING: &str = ".purging-";

/// Removes `dir` and everything under it.
fn remove_tree(fs: &dyn FileSystem, dir: &Path) -> TenantResult<()> {
    for name in fs.list(dir).map_err(io(dir))? {
        let path = dir.join(name);
        if fs.remove_file(&path).is_err() {
            remove_tree(fs, &path)?;
        }
    }
    fs.remove_dir(dir).map_err(io(dir))
}

impl Tenants {
    /// The tenants under `root` (its `tenants/` directory is created if
    /// missing). Opens no store.
    pub fn open(root: impl AsRef<Path>, options: TenantOptions) -> TenantResult<Tenants> {
        let dir = root.as_ref().join("tenants");
        let fs = options.store.fs.clone();
        fs.create_dir_all(&dir).map_err(io(&dir))?;
        for name in fs.list(&dir).map_err(io(&dir))? {
            if name.starts_with(PURGING) {
                remove_tree(fs.as_ref(), &dir.join(name))?;
            }
        }
        Ok(Tenants {
            dir,
            options: TenantOptions {
                max_open: options.max_open.max(1),
                ..options
            },
            open: Mutex::new(Open::default()),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn fs(&self) -> &dyn FileSystem {
        self.options.store.fs.as_ref()
    }

    fn exists(&self, name: &str) -> TenantResult<bool> {
        let path = self.path(name);
        self.fs().exists(&path).map_err(io(&path))
    }

    /// Creates a tenant (an empty directory; its store is made on first
    /// use).
    pub fn create(&self, name: &str) -> TenantResult<()> {
        check_tenant_name(name)?;
        // Under the lock, so that a concurrent create of the same name
        // cannot also succeed.
        let _open = self.open.lock();
        if self.exists(name)? {
            return Err(TenantError::Exists(name.to_owned()));
        }
        let path = self.path(name);
        self.fs().create_dir_all(&path).map_err(io(&path))?;
        self.fs().sync_dir(&self.dir).map_err(io(&self.dir))
    }

    /// Every tenant's name, sorted.
    pub fn list(&self) -> TenantResult<Vec<String>> {
        let mut names: Vec<String> = self
            .fs()
            .list(&self.dir)
            .map_err(io(&self.dir))?
            .into_iter()
            .filter(|name| check_tenant_name(name).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// The tenant's store, opened now if it is not open. Hold the `Arc`
    /// (not a clone of the store) for as long as the store is used: an
    /// open store no `Arc` holds may be closed to make room for another.
    pub fn get(&self, name: &str) -> TenantResult<Arc<Store>> {
        check_tenant_name(name)?;
        let mut open = self.open.lock();
        open.tick += 1;
        let tick = open.tick;
        if let Some(slot) = open.stores.get_mut(name) {
            slot.used = tick;
            return Ok(slot.store.clone());
        }
        if !self.exists(name)? {
            return Err(TenantError::Unknown(name.to_owned()));
        }
        let path = self.path(name);
        if open.stores.len() >= self.options.max_open {
            let idle = open
                .stores
                .iter()
                .filter(|(_, slot)| Arc::strong_count(&slot.store) == 1)
                .min_by_key(|(_, slot)| slot.used)
                .map(|(name, _)| name.clone());
            let Some(idle) = idle else {
                return Err(TenantError::Busy(open.stores.len()));
            };
            if let Some(slot) = open.stores.remove(&idle) {
                // Appends it acknowledged are durable already; a failure
                // to flush its index costs only replay time at next open.
                if let Err(e) = slot.store.close() {
                    log::warn!("gesta: closing tenant {idle:?} failed: {e}");
                }
            }
        }
        let store = Arc::new(Store::open_with(&path, self.options.store.clone())?);
        open.stores.insert(
            name.to_owned(),
            Slot {
                store: store.clone(),
                used: tick,
            },
        );
        Ok(store)
    }

    /// Appends to the tenant's store after checking its quotas.
    /// Concurrent appends to one tenant are checked against the same
    /// state, so together they may pass a quota by what they carry.
    pub fn append(
        &self,
        name: &str,
        events: Vec<NewEvent>,
        options: AppendOptions,
    ) -> TenantResult<Appended> {
        let store = self.get(name)?;
        self.check_quota(name, &store, events.len() as u64)?;
        Ok(store.append_with(events, options)?)
    }

    /// Refuses adding `events` events to `store` if a quota forbids it.
    pub fn check_quota(&self, name: &str, store: &Store, events: u64) -> TenantResult<()> {
        if let Some(max) = self.options.max_events {
            let after = store.head().saturating_add(events);
            if after > max {
                return Err(TenantError::QuotaExceeded {
                    tenant: name.to_owned(),
                    what: format!("{after} events would pass the limit of {max}"),
                });
            }
        }
        if let Some(max) = self.options.max_bytes {
            let bytes = dir_bytes(store.path());
            if bytes >= max {
                return Err(TenantError::QuotaExceeded {
                    tenant: name.to_owned(),
                    what: format!("its files take {bytes} bytes, the limit is {max}"),
                });
            }
        }
        Ok(())
    }

    /// Deletes a tenant and every file of its store. Refused while its
    /// store is in use.
    pub fn purge(&self, name: &str) -> TenantResult<()> {
        check_tenant_name(name)?;
        let mut open = self.open.lock();
        if let Some(slot) = open.stores.get(name) {
            if Arc::strong_count(&slot.store) > 1 {
                return Err(TenantError::InUse(name.to_owned()));
            }
            if let Some(slot) = open.stores.remove(name) {
                slot.store.close()?;
            }
        }
        if !self.exists(name)? {
            return Err(TenantError::Unknown(name.to_owned()));
        }
        let path = self.path(name);
        let purging = self.dir.join(format!("{PURGING}{name}"));
        self.fs().rename(&path, &purging).map_err(io(&path))?;
        self.fs().sync_dir(&self.dir).map_err(io(&self.dir))?;
        remove_tree(self.fs(), &purging)?;
        self.fs().sync_dir(&self.dir).map_err(io(&self.dir))
    }

    /// How many tenant stores are open now.
    pub fn open_count(&self) -> usize {
        self.open.lock().stores.len()
    }

    /// Closes every open store.
    pub fn close(&self) -> TenantResult<()> {
        let stores: Vec<Slot> = self.open.lock().stores.drain().map(|(_, s)| s).collect();
        for slot in stores {
            slot.store.close()?;
        }
        Ok(())
    }
}

/// The bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&entry.path()),
            Ok(t) if t.is_file() => entry.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}
