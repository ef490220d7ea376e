//! The idle reader connections of one store handle, shared by its reads and
//! its subscriptions' feeds, so that a handle keeps one pool, not one per
//! use.

use std::path::PathBuf;

use parking_lot::Mutex;
use rusqlite::Connection;

use gesta::{Error, Result};

use crate::options::SqliteOptions;
use crate::schema;
use crate::store::sqlite_error;

/// Idle reader connections kept for reuse; more are opened when reads
/// overlap, and closed when they end.
const IDLE_READERS: usize = 4;

/// A handle's reader connections.
pub(crate) struct Readers {
    path: PathBuf,
    options: SqliteOptions,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(crate) fn new(path: PathBuf, options: SqliteOptions) -> Readers {
        Readers {
            path,
            options,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A SQLite error on this store's file as a store error.
    pub(crate) fn err(&self, e: rusqlite::Error) -> Error {
        sqlite_error(&self.path, e)
    }

    /// Runs `f` on an idle reader connection (opening one if none is idle).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let idle = self.idle.lock().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => schema::open_reader(&self.path, &self.options).map_err(|e| self.err(e))?,
        };
        let out = f(&conn);
        let mut idle = self.idle.lock();
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        out
    }
}
