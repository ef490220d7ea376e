//! The harness that runs the conformance suite and the model tests on
//! [`SqliteStore`], each store a fresh database file in a temporary
//! directory, with `synchronous=NORMAL` to keep the suites fast.

use gesta_sqlite::{SqliteOptions, SqliteStore, Synchronous};

use crate::conformance::Harness;

/// Opens [`SqliteStore`]s for the suites.
#[derive(Debug)]
pub struct SqliteHarness {
    options: SqliteOptions,
    /// Temporary directories, kept alive as long as the harness.
    temps: Vec<tempfile::TempDir>,
}

impl SqliteHarness {
    /// Stores in temporary directories, `synchronous=NORMAL`.
    pub fn new() -> SqliteHarness {
        SqliteHarness {
            options: SqliteOptions::default().synchronous(Synchronous::Normal),
            temps: Vec::new(),
        }
    }
}

impl Default for SqliteHarness {
    fn default() -> SqliteHarness {
        SqliteHarness::new()
    }
}

impl Harness for SqliteHarness {
    type Store = SqliteStore;

    fn create(&mut self) -> SqliteStore {
        let temp = tempfile::tempdir().expect("temporary directory");
        let path = temp.path().join("events.db");
        self.temps.push(temp);
        SqliteStore::open(path, self.options).expect("open a new store")
    }

    fn reopen(&mut self, store: SqliteStore) -> SqliteStore {
        let path = store.path().to_owned();
        drop(store);
        SqliteStore::open(path, self.options).expect("reopen")
    }

    fn flush_index(&mut self, _store: &SqliteStore) {}

    fn name(&self) -> &'static str {
        "sqlite"
    }
}
