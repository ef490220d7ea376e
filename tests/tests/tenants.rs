//! The tenants suite (`gesta_tests::tenants`) on the engine's tenants, on
//! SQLite's (a file per tenant) and on PostgreSQL's (a schema per tenant,
//! against the server named by `GESTA_POSTGRES_URL`; skipped without it),
//! and what each home adds: where the files or schemas are, and what a
//! crash in a purge leaves.

use gesta::Options;
use gesta::tenants::{TenantLimits, TenantOptions, Tenants};
use gesta_postgres::{PostgresOptions, PostgresSchemas, PostgresTenants};
use gesta_sqlite::{SqliteOptions, SqliteTenants, Synchronous};
use gesta_tests::tenants as suite;

fn limits(max_open: usize, max_events: Option<u64>, max_bytes: Option<u64>) -> TenantLimits {
    TenantLimits {
        max_open,
        max_events,
        max_bytes,
    }
}

fn engine(root: &std::path::Path, limits: TenantLimits) -> Tenants {
    Tenants::open(
        root,
        TenantOptions {
            store: Options::default()
                .segment_size(1 << 20)
                .preallocate(64 << 10),
            max_open: limits.max_open,
            max_events: limits.max_events,
            max_bytes: limits.max_bytes,
        },
    )
    .unwrap()
}

fn sqlite(root: &std::path::Path, limits: TenantLimits) -> SqliteTenants {
    let options = SqliteOptions::default().synchronous(Synchronous::Off);
    gesta_sqlite::tenants::open(root, options, limits).unwrap()
}

/// One kind of home through the whole suite, each case on a fresh set.
macro_rules! suite_on {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn names_are_checked() {
                if let Some((set, _guard)) = $make(limits(4, None, None)) {
                    suite::names_are_checked(&set);
                }
            }

            #[test]
            fn tenants_are_isolated() {
                if let Some((set, _guard)) = $make(limits(4, None, None)) {
                    suite::tenants_are_isolated(&set);
                }
            }

            #[test]
            fn purge_removes_a_tenant() {
                if let Some((set, _guard)) = $make(limits(4, None, None)) {
                    suite::purge_removes_a_tenant(&set);
                }
            }

            #[test]
            fn open_stores_are_bounded() {
                if let Some((set, _guard)) = $make(limits(2, None, None)) {
                    suite::open_stores_are_bounded(&set);
                }
            }

            #[test]
            fn event_quota_refuses_whole_appends() {
                if let Some((set, _guard)) = $make(limits(4, Some(3), None)) {
                    suite::event_quota_refuses_whole_appends(&set);
                }
            }

            #[test]
            fn byte_quota_refuses_appends() {
                if let Some((set, _guard)) = $make(limits(4, None, Some(1024))) {
                    suite::byte_quota_refuses_appends(&set);
                }
            }
        }
    };
}

fn on_engine(limits: TenantLimits) -> Option<(Tenants, tempfile::TempDir)> {
    let root = tempfile::tempdir().unwrap();
    Some((engine(root.path(), limits), root))
}

fn on_sqlite(limits: TenantLimits) -> Option<(SqliteTenants, tempfile::TempDir)> {
    let root = tempfile::tempdir().unwrap();
    Some((sqlite(root.path(), limits), root))
}

/// Drops every schema of a test's prefix when the test ends.
struct DropSchemas {
    url: String,
    prefix: String,
}

impl Drop for DropSchemas {
    fn drop(&mut self) {
        let Ok(mut client) = postgres::Client::connect(&self.url, postgres::NoTls) else {
            return;
        };
        let Ok(rows) = client.query(
            "SELECT nspname::text FROM pg_namespace WHERE substr(nspname, 1, length($1)) = $1",
            &[&self.prefix],
        ) else {
            return;
        };
        for row in rows {
            let schema: String = row.get(0);
            let _ = client.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"));
        }
    }
}

/// A prefix of schemas no other test (of this or another process) uses.
fn unique_prefix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}_{}_",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn postgres_url() -> Option<String> {
    match std::env::var(gesta_tests::postgres_harness::URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ => {
            eprintln!("{}", gesta_tests::postgres_harness::SKIP_MESSAGE);
            None
        }
    }
}

fn on_postgres(limits: TenantLimits) -> Option<(PostgresTenants, DropSchemas)> {
    let url = postgres_url()?;
    let prefix = unique_prefix();
    let options = PostgresOptions {
        pool_size: 4,
        ..PostgresOptions::default()
    };
    let guard = DropSchemas {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let set = gesta_postgres::tenants::connect(&url, &prefix, options, limits).unwrap();
    Some((set, guard))
}

suite_on!(engine_tenants, on_engine);
suite_on!(sqlite_tenants, on_sqlite);
suite_on!(postgres_tenants, on_postgres);

#[test]
fn sqlite_keeps_a_file_per_tenant_and_finishes_an_interrupted_purge() {
    use gesta::EventStore;
    let root = tempfile::tempdir().unwrap();
    {
        let set = sqlite(root.path(), limits(4, None, None));
        set.create("a").unwrap();
        set.create("b").unwrap();
        set.get("a")
            .unwrap()
            .append(vec![gesta::NewEvent::new("E", "x")])
            .unwrap();
        assert_eq!(
            set.get("a").unwrap().path(),
            root.path().join("tenants/a/events.db")
        );
        set.close().unwrap();
        // Nothing outside `tenants/`.
        let top: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(top, ["tenants"]);
    }
    // A purge that renamed the directory and stopped: the tenant is gone
    // at once (never listed or opened again), and its files with the next
    // open.
    std::fs::rename(
        root.path().join("tenants/a"),
        root.path().join("tenants/.purging-a"),
    )
    .unwrap();
    let set = sqlite(root.path(), limits(4, None, None));
    assert_eq!(set.list().unwrap(), ["b"]);
    assert!(!root.path().join("tenants/.purging-a").exists());
    // The store is a plain SQLite store.
    let plain = gesta_sqlite::SqliteStore::open(
        root.path().join("tenants/b/events.db"),
        SqliteOptions::default(),
    )
    .unwrap();
    assert_eq!(plain.head().unwrap(), 0);
}

#[test]
fn postgres_keeps_a_schema_per_tenant_and_refuses_names_too_long_for_it() {
    use gesta::EventStore;
    use gesta::tenants::TenantError;
    let Some((set, guard)) = on_postgres(limits(4, None, None)) else {
        return;
    };
    let prefix = guard.prefix.clone();
    set.create("a").unwrap();
    let a = set.get("a").unwrap();
    a.append(vec![gesta::NewEvent::new("E", "x")]).unwrap();
    assert_eq!(a.schema(), format!("{prefix}a"));
    // A plain store on the schema sees the tenant's events.
    let plain = gesta_postgres::PostgresStore::connect(
        &guard.url,
        PostgresOptions {
            schema: format!("{prefix}a"),
            ..PostgresOptions::default()
        },
    )
    .unwrap();
    assert_eq!(plain.head().unwrap(), 1);
    drop(plain);
    // PostgreSQL keeps 63 bytes of a name: longer is refused, not cut.
    let longest = "x".repeat(63 - prefix.len());
    set.create(&longest).unwrap();
    let long = format!("{longest}y");
    assert!(matches!(
        set.create(&long),
        Err(TenantError::InvalidName { .. })
    ));
    // The purge drops the schema and everything in it.
    drop(a);
    set.purge("a").unwrap();
    let mut client = postgres::Client::connect(&guard.url, postgres::NoTls).unwrap();
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
            &[&format!("{prefix}a")],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    assert_eq!(set.list().unwrap(), [longest]);
    // A prefix that is not a plain identifier is refused.
    for bad in ["", "T_", "a\"", "1a", &"p".repeat(33)] {
        assert!(
            PostgresSchemas::connect(&guard.url, bad, PostgresOptions::default()).is_err(),
            "{bad:?}"
        );
    }
}
