//! What the conformance suite does not reach: reads spanning many pages,
//! the schema version, the file layout on disk, readers running beside the
//! writer.

use std::sync::Arc;

use gesta::{EventStore, NewEvent, Query, QueryItem, ReadOptions};
use gesta_sqlite::{SqliteOptions, SqliteStore, Synchronous};

fn options() -> SqliteOptions {
    SqliteOptions::default().synchronous(Synchronous::Off)
}

fn positions(store: &SqliteStore, query: &Query, options: ReadOptions) -> Vec<u64> {
    store
        .read(query, options)
        .expect("read")
        .map(|e| e.expect("event").position)
        .collect()
}

#[test]
fn reads_span_pages_in_both_directions() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(dir.path().join("e.db"), options()).expect("open");
    let n = 1300u64;
    for chunk in (1..=n).collect::<Vec<_>>().chunks(100) {
        let batch = chunk
            .iter()
            .map(|i| {
                let ty = if i % 2 == 0 { "Even" } else { "Odd" };
                NewEvent::new(ty, i.to_string()).tag(format!("m3:{}", i % 3))
            })
            .collect();
        store.append(batch).expect("append");
    }
    let all: Vec<u64> = (1..=n).collect();
    assert_eq!(
        positions(&store, &Query::all(), ReadOptions::forwards()),
        all
    );
    let back: Vec<u64> = all.iter().rev().copied().collect();
    assert_eq!(
        positions(&store, &Query::all(), ReadOptions::backwards()),
        back
    );

    let query = Query::tag("m3:0").or(QueryItem::new().event_type("Even"));
    let matching: Vec<u64> = all
        .iter()
        .copied()
        .filter(|i| i % 3 == 0 || i % 2 == 0)
        .collect();
    for (start, limit) in [(None, None), (Some(7), Some(600)), (Some(1000), None)] {
        let mut fwd = ReadOptions::forwards();
        let mut bwd = ReadOptions::backwards();
        if let Some(s) = start {
            fwd = fwd.start(s);
            bwd = bwd.start(s);
        }
        if let Some(l) = limit {
            fwd = fwd.limit(l);
            bwd = bwd.limit(l);
        }
        let want_fwd: Vec<u64> = matching
            .iter()
            .copied()
            .filter(|&p| p > start.unwrap_or(0))
            .take(limit.unwrap_or(usize::MAX))
            .collect();
        let want_bwd: Vec<u64> = matching
            .iter()
            .rev()
            .copied()
            .filter(|&p| p < start.unwrap_or(u64::MAX))
            .take(limit.unwrap_or(usize::MAX))
            .collect();
        assert_eq!(positions(&store, &query, fwd), want_fwd, "{fwd:?}");
        assert_eq!(positions(&store, &query, bwd), want_bwd, "{bwd:?}");
    }
    let last = store
        .read_last(&Query::event_type("Odd"))
        .expect("read_last");
    assert_eq!(last.map(|e| e.position), Some(n - 1));
}

#[test]
fn a_read_stops_at_the_head_it_began_with() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(dir.path().join("e.db"), options()).expect("open");
    let batch = |k: usize| (0..k).map(|i| NewEvent::new("A", i.to_string())).collect();
    store.append(batch(1000)).expect("append");
    let mut read = store
        .read(&Query::all(), ReadOptions::forwards())
        .expect("read");
    assert_eq!(read.next().expect("first").expect("event").position, 1);
    store.append(batch(10)).expect("append more");
    assert_eq!(read.count(), 999);
    assert_eq!(store.head().expect("head"), 1010);
}

#[test]
fn the_database_records_its_schema_version_and_refuses_others() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("nested").join("dirs").join("e.db");
    let store = SqliteStore::open(&path, options()).expect("open, creating directories");
    store
        .append(vec![NewEvent::new("A", "x").tag("t").tag("t")])
        .expect("append");
    drop(store);

    let conn = rusqlite::Connection::open(&path).expect("open with rusqlite");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, SqliteStore::schema_version());
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    let tag_rows: i64 = conn
        .query_row("SELECT count(*) FROM tags", [], |r| r.get(0))
        .expect("count tags");
    assert_eq!(tag_rows, 1, "a repeated tag is indexed once");
    conn.pragma_update(None, "user_version", 99)
        .expect("set version");
    drop(conn);

    let err = SqliteStore::open(&path, options()).expect_err("a newer schema is refused");
    assert!(
        matches!(&err, gesta::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::InvalidData),
        "{err:?}"
    );
}

#[test]
fn readers_run_beside_the_writer() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Arc::new(SqliteStore::open(dir.path().join("e.db"), options()).expect("open"));
    let writer = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            for i in 0..200 {
                store
                    .append(vec![NewEvent::new("A", "x").tag(format!("t{}", i % 4))])
                    .expect("append");
            }
        })
    };
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut seen = 0;
                while seen < 200 {
                    let got = positions(&store, &Query::all(), ReadOptions::forwards());
                    assert_eq!(got, (1..=got.len() as u64).collect::<Vec<_>>(), "no gaps");
                    seen = got.len();
                }
            })
        })
        .collect();
    writer.join().expect("writer");
    for r in readers {
        r.join().expect("reader");
    }
}

/// A database made before snapshots and tracking info had tables (the
/// same layout, without them) opens, keeps its events and its
/// version, and gains both.
#[test]
fn a_database_without_the_state_tables_gains_them_on_open() {
    use gesta::AppendOptions;

    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("e.db");
    let store = SqliteStore::open(&path, options()).expect("open");
    store
        .append(vec![NewEvent::new("A", "1"), NewEvent::new("B", "2")])
        .expect("append");
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("open with rusqlite");
    conn.execute_batch("DROP TABLE snapshots; DROP TABLE tracking;")
        .expect("make the layout of the earlier version");
    drop(conn);

    let store = SqliteStore::open(&path, options()).expect("open the earlier layout");
    assert_eq!(
        positions(&store, &Query::all(), ReadOptions::forwards()),
        [1, 2]
    );
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

    let store = SqliteStore::open(&path, options()).expect("reopen");
    assert_eq!(store.tracking_info("p").expect("tracking"), Some(7));
    let snapshot = store.load_snapshot("k", u64::MAX).expect("load");
    assert_eq!(
        snapshot.map(|s| (s.position, s.state)),
        Some((3, b"state".to_vec()))
    );
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("open with rusqlite");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    assert_eq!(
        version,
        SqliteStore::schema_version(),
        "the additions keep the layout version"
    );
}

/// Turns the database at `path` (of the current layout) into version 3's:
/// its tag index without the events' types.
fn make_version_3(path: &std::path::Path, extra: &str) {
    let conn = rusqlite::Connection::open(path).expect("open with rusqlite");
    conn.execute_batch(&format!(
        "CREATE TABLE tags_v3 (tag TEXT NOT NULL, position INTEGER NOT NULL,
             PRIMARY KEY (tag, position)) WITHOUT ROWID;
         INSERT INTO tags_v3 SELECT tag, position FROM tags;
         DROP TABLE tags; ALTER TABLE tags_v3 RENAME TO tags;
         {extra}
         PRAGMA user_version = 3;"
    ))
    .expect("the version 3 layout");
}

/// A version 3 database (whose tag index holds no types) is migrated on
/// open: every tag row gains its event's type, retroactive tags
/// included, "type AND tag" reads and conditions answer from the new
/// index, and new appends index their types.
#[test]
fn a_version_3_database_gains_the_types_in_its_tag_index() {
    use gesta::{AppendOptions, Error, Target};

    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("e.db");
    let store = SqliteStore::open(&path, options()).expect("open");
    store
        .append(vec![
            NewEvent::new("A", "1").tag("x").tag("y"),
            NewEvent::new("B", "2").tag("x"),
        ])
        .expect("append");
    store
        .append(vec![NewEvent::new("A", "3").tag("x").stream("s")])
        .expect("append");
    store
        .append(vec![NewEvent::new("B", "4").tag("y")])
        .expect("append");
    store
        .add_tags(&Target::Positions(vec![4]), &["x".to_owned()])
        .expect("add a tag");
    store
        .remove(&Target::Positions(vec![2]))
        .expect("remove an event");
    drop(store);
    make_version_3(&path, "");

    let store = SqliteStore::open(&path, options()).expect("open and migrate");
    let conn = rusqlite::Connection::open(&path).expect("open with rusqlite");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, SqliteStore::schema_version());
    let rows: Vec<(String, i64, String)> = conn
        .prepare("SELECT tag, position, type FROM tags ORDER BY tag, position")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .expect("tag rows");
    let want = [
        ("x", 1, "A"),
        ("x", 3, "A"),
        ("x", 4, "B"),
        ("y", 1, "A"),
        ("y", 4, "B"),
    ];
    let want: Vec<(String, i64, String)> = want
        .iter()
        .map(|(t, p, ty)| (t.to_string(), *p, ty.to_string()))
        .collect();
    assert_eq!(rows, want);

    let typed = |ty: &str, tag: &str| Query::item(QueryItem::new().event_type(ty).tag(tag));
    assert_eq!(
        positions(&store, &typed("A", "x"), ReadOptions::forwards()),
        [1, 3]
    );
    assert_eq!(
        positions(&store, &typed("B", "x"), ReadOptions::forwards()),
        [4]
    );
    let either = Query::item(QueryItem::new().types(["A", "B"]).tag("x"));
    assert_eq!(
        positions(&store, &either, ReadOptions::backwards()),
        [4, 3, 1]
    );
    let both = Query::item(QueryItem::new().event_type("A").tags(["x", "y"]));
    assert_eq!(positions(&store, &both, ReadOptions::forwards()), [1]);
    let refused = store.append_with(
        vec![NewEvent::new("C", "5")],
        AppendOptions::new().fail_if(typed("B", "x"), Some(3)),
    );
    assert!(
        matches!(refused, Err(Error::ConditionFailed { position: 4 })),
        "{refused:?}"
    );
    store
        .append_with(
            vec![NewEvent::new("C", "5").tag("x")],
            AppendOptions::new().fail_if(typed("B", "x"), Some(4)),
        )
        .expect("append after the conflict");
    assert_eq!(
        positions(&store, &typed("C", "x"), ReadOptions::forwards()),
        [5]
    );
    let typed_rows: i64 = conn
        .query_row(
            "SELECT count(*) FROM tags WHERE tag = 'x' AND position = 5 AND type = 'C'",
            [],
            |r| r.get(0),
        )
        .expect("new row");
    assert_eq!(typed_rows, 1);
}

/// A version 3 database whose tag index names a position with no event
/// (damage) is refused, not migrated with the row dropped, and is left
/// as it was.
#[test]
fn a_version_3_tag_index_naming_no_event_is_refused() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("e.db");
    let store = SqliteStore::open(&path, options()).expect("open");
    store
        .append(vec![NewEvent::new("A", "1").tag("x")])
        .expect("append");
    drop(store);
    make_version_3(&path, "INSERT INTO tags (tag, position) VALUES ('x', 99);");

    let err = SqliteStore::open(&path, options()).expect_err("damage is refused");
    assert!(
        matches!(&err, gesta::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::InvalidData),
        "{err:?}"
    );
    let conn = rusqlite::Connection::open(&path).expect("open with rusqlite");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, 3, "the file is left as it was");
}
