//! A schema made before snapshots and tracking info had tables (version 1
//! without them, and so without version 2's removal tables) opens, keeps
//! its events, and gains them all: the state tables as an addition, the
//! removal tables with the move to version 2. Runs against the server named by
//! `GESTA_POSTGRES_URL` (`.ci/postgres.sh` starts one); skips without it.

use gesta::{AppendOptions, EventStore, NewEvent, Query, ReadOptions};
use gesta_postgres::{PostgresOptions, PostgresStore};

#[test]
fn a_schema_without_the_state_tables_gains_them_on_connect() {
    let Some(url) = std::env::var("GESTA_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    else {
        eprintln!("skipping: GESTA_POSTGRES_URL is not set");
        return;
    };
    let schema = format!("gesta_upgrade_{}", std::process::id());
    let options = PostgresOptions {
        schema: schema.clone(),
        pool_size: 2,
        ..PostgresOptions::default()
    };
    let store = PostgresStore::connect(&url, options.clone()).expect("connect");
    store
        .append(vec![NewEvent::new("A", "1"), NewEvent::new("B", "2")])
        .expect("append");
    drop(store);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("client");
    client
        .batch_execute(&format!(
            "DROP TABLE \"{schema}\".snapshots; DROP TABLE \"{schema}\".tracking; \
             DROP TABLE \"{schema}\".removed_events; DROP TABLE \"{schema}\".retention; \
             UPDATE \"{schema}\".gesta_meta SET value = '1' WHERE key = 'schema_version'"
        ))
        .expect("make the layout of the earlier version");

    let store = PostgresStore::connect(&url, options.clone()).expect("connect to the old layout");
    let positions: Vec<u64> = store
        .read(&Query::all(), ReadOptions::forwards())
        .expect("read")
        .map(|e| e.expect("event").position)
        .collect();
    assert_eq!(positions, [1, 2]);
    assert_eq!(store.tracking_info("p").expect("tracking"), None);
    assert_eq!(store.list_snapshots("k").expect("list"), Vec::<u64>::new());
    store
        .append_with(
            vec![NewEvent::new("C", "3")],
            AppendOptions::new().track("p", 7),
        )
        .expect("append with tracking");
    store.save_snapshot("k", 3, b"state").expect("save");
    drop(store);

    let store = PostgresStore::connect(&url, options).expect("reconnect");
    assert_eq!(store.tracking_info("p").expect("tracking"), Some(7));
    let snapshot = store.load_snapshot("k", u64::MAX).expect("load");
    assert_eq!(
        snapshot.map(|s| (s.position, s.state)),
        Some((3, b"state".to_vec()))
    );
    let version: String = client
        .query_one(
            &format!("SELECT value FROM \"{schema}\".gesta_meta WHERE key = 'schema_version'"),
            &[],
        )
        .expect("version")
        .get(0);
    assert_eq!(version, "2", "upgraded to the version with removal");
    assert_eq!(store.retention_rules().expect("rules"), Vec::new());
    store.drop_schema().expect("drop");
}
