//! The harness that runs the conformance suite and the model tests on
//! [`PostgresStore`], against the server named by the environment variable
//! `GESTA_POSTGRES_URL` (`.ci/postgres.sh` starts one and sets it).
//!
//! Every store gets a fresh schema of its own; reopening reconnects to the
//! same schema; there is no index to flush. The harness drops the schemas
//! it created when it is dropped.
//!
//! Without the variable the suites skip: [`PostgresHarness::from_env`]
//! prints why and gives `None`, and the test returns —
//! [`postgres_harness_or_skip!`](crate::postgres_harness_or_skip) does both.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use gesta_postgres::{PostgresOptions, PostgresStore};

use crate::conformance::Harness;

/// The environment variable naming the test server.
pub const URL_VAR: &str = "GESTA_POSTGRES_URL";

/// What a skipped test prints.
pub const SKIP_MESSAGE: &str = "skipping: GESTA_POSTGRES_URL is not set";

/// Connections per store: enough for the concurrency cases to contend.
const POOL_SIZE: usize = 4;

/// Opens [`PostgresStore`]s, each in a new schema, for the suites.
#[derive(Debug)]
pub struct PostgresHarness {
    url: String,
    /// Schemas created, dropped with the harness.
    schemas: Vec<String>,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A schema name no other store (of this or another test process) has.
fn unique_schema() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "gesta_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000_000_000
    )
}

impl PostgresHarness {
    /// A harness on the server named by `GESTA_POSTGRES_URL`, or `None`
    /// (after printing [`SKIP_MESSAGE`] to the standard error stream) when
    /// it is unset or empty.
    pub fn from_env() -> Option<PostgresHarness> {
        match std::env::var(URL_VAR) {
            Ok(url) if !url.trim().is_empty() => Some(PostgresHarness::new(url.trim())),
            _ => {
                // Straight to the standard error stream, past the test
                // harness's capture, so that the skip shows in every run.
                let _ = writeln!(std::io::stderr(), "{SKIP_MESSAGE}");
                None
            }
        }
    }

    /// A harness on the server at `url`.
    pub fn new(url: &str) -> PostgresHarness {
        PostgresHarness {
            url: url.to_owned(),
            schemas: Vec::new(),
        }
    }

    fn options(schema: &str) -> PostgresOptions {
        PostgresOptions {
            schema: schema.to_owned(),
            pool_size: POOL_SIZE,
            ..PostgresOptions::default()
        }
    }
}

impl Harness for PostgresHarness {
    type Store = PostgresStore;

    fn create(&mut self) -> PostgresStore {
        let schema = unique_schema();
        let store = PostgresStore::connect(&self.url, Self::options(&schema))
            .unwrap_or_else(|e| panic!("connect to {URL_VAR} (schema {schema}): {e}"));
        self.schemas.push(schema);
        store
    }

    fn reopen(&mut self, store: PostgresStore) -> PostgresStore {
        let schema = store.schema().to_owned();
        drop(store);
        PostgresStore::connect(&self.url, Self::options(&schema))
            .unwrap_or_else(|e| panic!("reconnect to schema {schema}: {e}"))
    }

    fn flush_index(&mut self, _store: &PostgresStore) {}

    fn name(&self) -> &'static str {
        "postgres"
    }
}

impl Drop for PostgresHarness {
    fn drop(&mut self) {
        // Best effort: a leftover schema is harmless in a throw-away server.
        for schema in &self.schemas {
            let options = PostgresOptions {
                pool_size: 1,
                ..Self::options(schema)
            };
            if let Ok(store) = PostgresStore::connect(&self.url, options) {
                let _ = store.drop_schema();
            }
        }
    }
}

/// Evaluates to a [`PostgresHarness`] from the environment, or returns
/// `$ret` from the enclosing function after printing [`SKIP_MESSAGE`]
/// (`()` in a plain test, `Ok(())` in a proptest body).
#[macro_export]
macro_rules! postgres_harness_or_skip {
    () => {
        $crate::postgres_harness_or_skip!(())
    };
    ($ret:expr) => {
        match $crate::postgres_harness::PostgresHarness::from_env() {
            Some(harness) => harness,
            None => return $ret,
        }
    };
}
