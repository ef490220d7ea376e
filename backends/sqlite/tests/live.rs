//! Subscriptions on SQLite beyond the shared suite: commits made through
//! another handle on the same file (the path of another process), the
//! wake-up of this handle's own commits without polling, and the batch
//! boundaries of a database created by schema version 1.
// The clock seam is for the crate's code; a test measures real time.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use gesta::{EventStore, NewEvent, Query, QueryItem, RecordedEvent, Subscription};
use gesta_sqlite::{SqliteOptions, SqliteStore, Synchronous};

const WAIT: Duration = Duration::from_secs(20);

fn options() -> SqliteOptions {
    SqliteOptions::default().synchronous(Synchronous::Off)
}

fn ev(t: &str, tag: &str, label: &str) -> NewEvent {
    NewEvent::new(t, label.to_owned()).tag(tag)
}

fn positions(batches: &[Vec<RecordedEvent>]) -> Vec<Vec<u64>> {
    batches
        .iter()
        .map(|b| b.iter().map(|e| e.position).collect())
        .collect()
}

/// Receives batches until the subscription has looked at `upto`.
fn until(sub: &mut Subscription, upto: u64) -> Vec<Vec<RecordedEvent>> {
    let deadline = std::time::Instant::now() + WAIT;
    let mut out = Vec::new();
    while sub.checkpoint() < upto {
        assert!(
            std::time::Instant::now() < deadline,
            "stuck at {} waiting for {upto}",
            sub.checkpoint()
        );
        if let Some(batch) = sub.recv_timeout(Duration::from_millis(50)).expect("recv") {
            out.push(batch);
        }
    }
    out
}

/// A subscriber on one handle receives, live and grouped by append, what
/// another handle on the same file commits (found by polling), as well as
/// its own handle's commits, in position order.
#[test]
fn commits_through_another_handle_reach_subscribers() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("e.db");
    let a = SqliteStore::open(&path, options().poll_interval(Duration::from_millis(10)))
        .expect("open a");
    let b = SqliteStore::open(&path, options()).expect("open b");
    a.append(vec![ev("A", "t", "a0")]).expect("append");
    let query = Query::event_type("A").or(QueryItem::new().tag("x"));
    let mut sub = a.subscribe(&query, 0).expect("subscribe");
    assert_eq!(positions(&until(&mut sub, 1)), vec![vec![1]]);

    // b: [A, B, A(x)] = 2..=4, then a: [B] = 5, then b: [B(x), A] = 6..=7.
    b.append(vec![
        ev("A", "t", "b0"),
        ev("B", "t", "b1"),
        ev("A", "x", "b2"),
    ])
    .expect("append");
    let got = until(&mut sub, 4);
    assert_eq!(positions(&got), vec![vec![2, 4]]);
    assert_eq!(got[0][0].data.as_ref(), b"b0");
    assert_eq!(got[0][1].tags, vec!["x".to_owned()]);
    a.append(vec![ev("B", "t", "a1")]).expect("append");
    b.append(vec![ev("B", "x", "b3"), ev("A", "t", "b4")])
        .expect("append");
    let got = until(&mut sub, 7);
    assert_eq!(positions(&got), vec![vec![6, 7]]);
    let read: Vec<RecordedEvent> = a
        .read(&query, gesta::ReadOptions::forwards().start(5))
        .expect("read")
        .collect::<gesta::Result<_>>()
        .expect("read");
    assert_eq!(got[0], read);
}

/// With polling all but off, a commit through the subscriber's own handle
/// still wakes it at once.
#[test]
fn own_commits_wake_without_polling() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(
        dir.path().join("e.db"),
        options().poll_interval(Duration::from_secs(3600)),
    )
    .expect("open");
    let mut sub = store.subscribe(&Query::all(), 0).expect("subscribe");
    std::thread::scope(|scope| {
        let waiter = scope.spawn(move || {
            let batch = sub.recv_timeout(WAIT).expect("recv").expect("a batch");
            (batch, std::time::Instant::now())
        });
        std::thread::sleep(Duration::from_millis(50));
        let sent = std::time::Instant::now();
        store
            .append(vec![ev("A", "t", "1"), ev("B", "t", "2")])
            .expect("append");
        let (batch, at) = waiter.join().expect("join");
        assert_eq!(
            batch.iter().map(|e| e.position).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(
            at.saturating_duration_since(sent) < Duration::from_secs(2),
            "took {:?}",
            at - sent
        );
    });
}

/// A database written by schema version 1 (which recorded only appends
/// whose first event had an id) is migrated on open: its appends are
/// recovered from commit times and the recorded batches, subscriptions
/// deliver them as they were appended, and idempotent retries still work.
#[test]
fn a_version_1_database_keeps_its_batches() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("v1.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("create");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE events (
                 position INTEGER PRIMARY KEY, type TEXT NOT NULL, tags BLOB NOT NULL,
                 stream TEXT, revision INTEGER, id BLOB UNIQUE, data BLOB NOT NULL,
                 metadata BLOB NOT NULL, ts INTEGER NOT NULL);
             CREATE INDEX events_by_type ON events (type, position);
             CREATE UNIQUE INDEX events_by_stream ON events (stream, revision)
                 WHERE stream IS NOT NULL;
             CREATE TABLE tags (tag TEXT NOT NULL, position INTEGER NOT NULL,
                 PRIMARY KEY (tag, position)) WITHOUT ROWID;
             CREATE TABLE batches (first INTEGER PRIMARY KEY, last INTEGER NOT NULL);
             PRAGMA user_version = 1;",
        )
        .expect("version 1 schema");
        // Appends: [1,2] at ts 100; [3] at 100 with an id (recorded);
        // [4,5,6] at 200; [7] at 300; [8,9] at 300 with ids (recorded).
        let rows: [(i64, i64, Option<u128>); 9] = [
            (1, 100, None),
            (2, 100, None),
            (3, 100, Some(0xa)),
            (4, 200, None),
            (5, 200, None),
            (6, 200, None),
            (7, 300, None),
            (8, 300, Some(0xb)),
            (9, 300, Some(0xc)),
        ];
        for (position, ts, id) in rows {
            conn.execute(
                "INSERT INTO events (position, type, tags, id, data, metadata, ts) \
                 VALUES (?1, 'A', x'', ?2, ?3, x'', ?4)",
                rusqlite::params![
                    position,
                    id.map(|id| id.to_be_bytes().to_vec()),
                    format!("e{position}").into_bytes(),
                    ts
                ],
            )
            .expect("insert");
        }
        conn.execute_batch("INSERT INTO batches VALUES (3, 3), (8, 9);")
            .expect("batches");
    }
    let store = SqliteStore::open(&path, options()).expect("open and migrate");
    let mut sub = store.subscribe(&Query::all(), 0).expect("subscribe");
    assert_eq!(
        positions(&until(&mut sub, 9)),
        vec![vec![1, 2], vec![3], vec![4, 5, 6], vec![7], vec![8, 9]]
    );
    let retry = store
        .append(vec![
            NewEvent::new("A", "e8").id(0xb),
            NewEvent::new("A", "e9").id(0xc),
        ])
        .expect("an idempotent retry");
    assert_eq!((retry.first, retry.last), (8, 9));
    let appended = store
        .append(vec![ev("A", "t", "10"), ev("A", "t", "11")])
        .expect("append");
    assert_eq!(positions(&until(&mut sub, 11)), vec![vec![10, 11]]);
    assert_eq!((appended.first, appended.last), (10, 11));
    drop(sub);
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("open");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, SqliteStore::schema_version());
}
