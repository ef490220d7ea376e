//! Tenants as directories: [`TenantDirs`] keeps one directory per tenant
//! under `<root>/tenants/`, through a [`FileSystem`] seam, and creates,
//! lists and purges them crash-safely; [`DirHome`] is the [`TenantHome`]
//! over it, with a [`DirStore`] saying what store a directory holds:
//! [`StoreDirs`] (the engine's [`Options`]: a store per directory) for
//! the engine, and the SQLite backend's options (a database file in the
//! directory) for SQLite.
//!
//! A purge first renames the tenant's directory to `.purging-<name>`
//! (never a tenant name) and syncs the root, so a crash midway leaves no
//! half-deleted store to open; [`TenantDirs::open`] finishes such purges.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gesta_wal::io::{FileSystem, StdFs};

use super::{TenantError, TenantHome, TenantResult};
use crate::error::Error;
use crate::options::Options;
use crate::store::Store;

/// The prefix of a directory being purged.
const PURGING: &str = ".purging-";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TenantError + '_ {
    move |source| {
        TenantError::Store(Error::Io {
            path: path.to_owned(),
            source,
        })
    }
}

/// Removes `dir` and everything under it.
fn remove_tree(fs: &dyn FileSystem, dir: &Path) -> TenantResult<()> {
    for name in fs.list(dir).map_err(io(dir))? {
        let path = dir.join(name);
        if let Err(e) = fs.remove_file(&path) {
            // A directory is emptied first; anything else keeps the
            // removal's own error, not the listing's "not a directory".
            if fs.list(&path).is_err() {
                return Err(io(&path)(e));
            }
            remove_tree(fs, &path)?;
        }
    }
    fs.remove_dir(dir).map_err(io(dir))
}

/// One directory per tenant under `<root>/tenants/`; see the module
/// documentation. Names are not checked here: the [`TenantSet`] checks
/// them before any of these is called.
///
/// [`TenantSet`]: super::TenantSet
#[derive(Clone)]
pub struct TenantDirs {
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
}

impl std::fmt::Debug for TenantDirs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantDirs")
            .field("dir", &self.dir)
            .finish()
    }
}

impl TenantDirs {
    /// The tenants' directories under `root` on the operating system's
    /// file system; see [`open_on`](Self::open_on).
    pub fn open(root: impl AsRef<Path>) -> TenantResult<TenantDirs> {
        TenantDirs::open_on(root, Arc::new(StdFs))
    }

    /// The tenants' directories under `root`, through `fs`: creates
    /// `<root>/tenants/` if missing and finishes the purges a crash
    /// interrupted.
    pub fn open_on(root: impl AsRef<Path>, fs: Arc<dyn FileSystem>) -> TenantResult<TenantDirs> {
        let dir = root.as_ref().join("tenants");
        crate::io::create_dir_all_durably(fs.as_ref(), &dir).map_err(io(&dir))?;
        for name in fs.list(&dir).map_err(io(&dir))? {
            if name.starts_with(PURGING) {
                remove_tree(fs.as_ref(), &dir.join(name))?;
            }
        }
        Ok(TenantDirs { dir, fs })
    }

    /// `<root>/tenants`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The tenant's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Whether the tenant's directory exists.
    pub fn exists(&self, name: &str) -> TenantResult<bool> {
        let path = self.path(name);
        self.fs.exists(&path).map_err(io(&path))
    }

    /// Makes the tenant's directory, durably.
    pub fn create(&self, name: &str) -> TenantResult<()> {
        let path = self.path(name);
        self.fs.create_dir_all(&path).map_err(io(&path))?;
        self.fs.sync_dir(&self.dir).map_err(io(&self.dir))
    }

    /// The names of the entries under `<root>/tenants/`.
    pub fn list(&self) -> TenantResult<Vec<String>> {
        self.fs.list(&self.dir).map_err(io(&self.dir))
    }

    /// Removes the tenant's directory and everything in it: renamed out
    /// of the tenants' names first, then deleted. Once the rename is
    /// durable the tenant is gone and the purge succeeds; what is left of
    /// its files if deleting them fails is logged and removed by the next
    /// purge of the name or the next open of the set.
    pub fn purge(&self, name: &str) -> TenantResult<()> {
        let path = self.path(name);
        let purging = self.dir.join(format!("{PURGING}{name}"));
        // What an earlier purge of the name could not delete: the rename
        // below needs its place.
        if self.fs.exists(&purging).map_err(io(&purging))? {
            remove_tree(self.fs.as_ref(), &purging)?;
        }
        self.fs.rename(&path, &purging).map_err(io(&path))?;
        self.fs.sync_dir(&self.dir).map_err(io(&self.dir))?;
        let removed = remove_tree(self.fs.as_ref(), &purging)
            .and_then(|()| self.fs.sync_dir(&self.dir).map_err(io(&self.dir)));
        if let Err(e) = removed {
            log::warn!(
                "gesta: tenant {name:?} is purged, but deleting its files failed (the next purge \
                 of the name or open of the tenants removes them): {e}"
            );
        }
        Ok(())
    }

    /// The bytes of the files under the tenant's directory.
    pub fn bytes(&self, name: &str) -> u64 {
        dir_bytes(&self.path(name))
    }
}

/// The bytes of the files under `dir` (0 if it cannot be listed): what a
/// tenant's directory takes for its byte quota, and what else a server
/// counts against it (the tenant's backups).
pub fn dir_bytes(dir: &Path) -> u64 {
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

/// What kind of store lives in each tenant's directory of a [`DirHome`],
/// and how it is opened: the engine's [`Options`] open a [`Store`] in
/// the directory; the SQLite backend's options a database file in it.
pub trait DirStore: Send + Sync {
    /// The store.
    type Store: Send + Sync;

    /// Opens (creating if empty) the store of tenant `name` in its
    /// directory `dir`.
    fn open(&self, name: &str, dir: &Path) -> TenantResult<Self::Store>;

    /// Closes a store no one holds any more (dropping it, by default).
    fn close(&self, _store: &Self::Store) -> TenantResult<()> {
        Ok(())
    }

    /// The events the store holds, for the events quota: its head.
    fn events(&self, store: &Self::Store) -> TenantResult<u64>;

    /// Whether the store has failed in a way only reopening it cures
    /// (the engine's poisoned store). No, by default.
    fn is_failed(&self, _store: &Self::Store) -> bool {
        false
    }
}

/// A [`TenantHome`] of directories: each tenant a store of kind `K` in
/// its directory under `<root>/tenants/`; its bytes are its files'.
#[derive(Debug)]
pub struct DirHome<K> {
    dirs: TenantDirs,
    kind: K,
}

/// The engine's home: a [`Store`] per tenant directory.
pub type StoreDirs = DirHome<Options>;

impl<K: DirStore> DirHome<K> {
    /// The stores under `root`, on the operating system's file system.
    pub fn open(root: impl AsRef<Path>, kind: K) -> TenantResult<DirHome<K>> {
        Ok(DirHome {
            dirs: TenantDirs::open(root)?,
            kind,
        })
    }

    /// The stores under `root`, their directories made, listed and
    /// removed through `fs`.
    pub fn open_on(
        root: impl AsRef<Path>,
        fs: Arc<dyn FileSystem>,
        kind: K,
    ) -> TenantResult<DirHome<K>> {
        Ok(DirHome {
            dirs: TenantDirs::open_on(root, fs)?,
            kind,
        })
    }

    /// The tenants' directories.
    pub fn dirs(&self) -> &TenantDirs {
        &self.dirs
    }

    /// How the stores are opened.
    pub fn kind(&self) -> &K {
        &self.kind
    }
}

impl<K: DirStore> TenantHome for DirHome<K> {
    type Store = K::Store;

    fn exists(&self, name: &str) -> TenantResult<bool> {
        self.dirs.exists(name)
    }

    fn create(&self, name: &str) -> TenantResult<()> {
        self.dirs.create(name)
    }

    fn list(&self) -> TenantResult<Vec<String>> {
        self.dirs.list()
    }

    fn open(&self, name: &str) -> TenantResult<K::Store> {
        self.kind.open(name, &self.dirs.path(name))
    }

    fn close(&self, _name: &str, store: &K::Store) -> TenantResult<()> {
        self.kind.close(store)
    }

    fn purge(&self, name: &str) -> TenantResult<()> {
        self.dirs.purge(name)
    }

    fn events(&self, store: &K::Store) -> TenantResult<u64> {
        self.kind.events(store)
    }

    fn bytes(&self, name: &str, _store: &K::Store) -> TenantResult<u64> {
        Ok(self.dirs.bytes(name))
    }

    fn is_failed(&self, store: &K::Store) -> bool {
        self.kind.is_failed(store)
    }
}

impl DirStore for Options {
    type Store = Store;

    fn open(&self, name: &str, dir: &Path) -> TenantResult<Store> {
        let options = Options {
            tenant_label: Some(crate::telemetry::tenant_label(name)),
            ..self.clone()
        };
        Ok(Store::open_with(dir, options)?)
    }

    fn close(&self, store: &Store) -> TenantResult<()> {
        Ok(store.close()?)
    }

    fn events(&self, store: &Store) -> TenantResult<u64> {
        Ok(store.head())
    }

    fn is_failed(&self, store: &Store) -> bool {
        store.is_poisoned()
    }
}
