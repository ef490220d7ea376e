//! Retroactive tags, redaction and the audit trail on SQLite: what the
//! tables hold after `add_tags` (read back, queried, listed, checked by
//! conditions), that refused input leaves no trace, audit paging,
//! reopening, and that subscriptions are not fed by it — through this
//! handle or another; what reads return after `redact`, and that the
//! erased bytes leave the database's files (the main file, the WAL and its
//! index), `vacuum` included.
// The clock seam is for the crate's code; a test measures real time.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gesta::event::MAX_TAGS;
use gesta::lifecycle::{AuditEntry, Operation, Redacted, TagsAdded, Target};
use gesta::{
    AppendOptions, Error, EventStore, Listing, NewEvent, Query, QueryItem, ReadOptions,
    RecordedEvent,
};
use gesta_sqlite::{SqliteOptions, SqliteStore, Synchronous};

fn options() -> SqliteOptions {
    SqliteOptions::default().synchronous(Synchronous::Off)
}

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("e.db"), options()).expect("open")
}

fn strings(tags: &[&str]) -> Vec<String> {
    tags.iter().map(|t| (*t).to_owned()).collect()
}

fn events(store: &SqliteStore, query: &Query) -> Vec<RecordedEvent> {
    store
        .read(query, ReadOptions::forwards())
        .expect("read")
        .map(|e| e.expect("event"))
        .collect()
}

fn positions(store: &SqliteStore, query: &Query) -> Vec<u64> {
    events(store, query).iter().map(|e| e.position).collect()
}

/// Every event's tags, by position.
fn all_tags(store: &SqliteStore) -> Vec<Vec<String>> {
    events(store, &Query::all())
        .into_iter()
        .map(|e| e.tags)
        .collect()
}

fn tag_counts(store: &SqliteStore) -> Vec<(String, u64)> {
    store
        .list(Listing::Tags, "", None, 1000)
        .expect("list")
        .into_iter()
        .map(|l| (l.name, l.count))
        .collect()
}

fn counts(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
}

/// Three events: 1 `A` [a], 2 `B` [b, x], 3 `A` [].
fn three(store: &SqliteStore) {
    store
        .append(vec![
            NewEvent::new("A", "1").tag("a"),
            NewEvent::new("B", "2").tag("b").tag("x"),
        ])
        .expect("append");
    store.append(vec![NewEvent::new("A", "3")]).expect("append");
}

fn now_micros() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch");
    u64::try_from(since.as_micros()).expect("fits")
}

#[test]
fn tags_added_by_positions_and_by_query_are_read_queried_and_listed() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir);
    three(&store);

    let added = store
        .add_tags(
            &Target::Positions(vec![3, 1, 3]),
            &strings(&["n1", "n2", "n1"]),
        )
        .expect("add by positions");
    assert_eq!(
        added,
        TagsAdded {
            targeted: 2,
            tagged: 2
        }
    );
    let added = store
        .add_tags(&Target::Query(Query::tag("b")), &strings(&["x", "n1"]))
        .expect("add by query");
    assert_eq!(
        added,
        TagsAdded {
            targeted: 1,
            tagged: 1
        }
    );
    assert_eq!(store.head().expect("head"), 3, "no position consumed");

    // After the event's own tags, in the order added; `x` was there.
    assert_eq!(
        all_tags(&store),
        [
            strings(&["a", "n1", "n2"]),
            strings(&["b", "x", "n1"]),
            strings(&["n1", "n2"]),
        ]
    );
    let last = store.read_last(&Query::tag("n2")).expect("read_last");
    assert_eq!(
        last.map(|e| (e.position, e.tags)),
        Some((3, strings(&["n1", "n2"])))
    );
    let mut lent = Vec::new();
    store
        .read_each(&Query::all(), ReadOptions::backwards(), &mut |e| {
            lent.push(e.tags.map(str::to_owned).collect::<Vec<_>>());
            std::ops::ControlFlow::Continue(())
        })
        .expect("read_each");
    assert_eq!(lent[0], strings(&["n1", "n2"]));

    // Queries by the new tags find the events, alone and with others.
    assert_eq!(positions(&store, &Query::tag("n1")), [1, 2, 3]);
    assert_eq!(positions(&store, &Query::tag("n2")), [1, 3]);
    assert_eq!(
        positions(
            &store,
            &Query::item(QueryItem::new().event_type("A").tags(["n1", "n2"]))
        ),
        [1, 3]
    );
    assert_eq!(
        positions(
            &store,
            &Query::item(QueryItem::new().tags(["b", "n1"])).or(QueryItem::new().tag("a"))
        ),
        [1, 2]
    );
    assert_eq!(
        tag_counts(&store),
        counts(&[("a", 1), ("b", 1), ("n1", 3), ("n2", 2), ("x", 1)])
    );

    // A query target sees the tags added before it.
    let added = store
        .add_tags(&Target::Query(Query::tag("n2")), &strings(&["n3"]))
        .expect("add by a retroactive tag");
    assert_eq!(added.tagged, 2);
    assert_eq!(positions(&store, &Query::tag("n3")), [1, 3]);
}

#[test]
fn tags_an_event_carries_are_skipped_and_still_audited() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir);
    three(&store);
    let before = all_tags(&store);
    let added = store
        .add_tags(&Target::Positions(vec![2]), &strings(&["x", "b"]))
        .expect("add");
    assert_eq!(
        added,
        TagsAdded {
            targeted: 1,
            tagged: 0
        }
    );
    assert_eq!(all_tags(&store), before);
    store
        .add_tags(&Target::Positions(vec![1, 2]), &strings(&["x"]))
        .expect("add");
    store
        .add_tags(&Target::Positions(vec![1, 2]), &strings(&["x"]))
        .expect("add again");
    assert_eq!(all_tags(&store)[0], strings(&["a", "x"]), "once");
    assert_eq!(all_tags(&store)[1], strings(&["b", "x"]));
    assert_eq!(tag_counts(&store), counts(&[("a", 1), ("b", 1), ("x", 2)]));
    // A query target that matches nothing, in an empty range too.
    let added = store
        .add_tags(&Target::Query(Query::tag("nothing")), &strings(&["y"]))
        .expect("add to nothing");
    assert_eq!(added, TagsAdded::default());
    let log = store.audit_log(0, 100).expect("audit");
    let results: Vec<TagsAdded> = log
        .iter()
        .map(|e| match &e.operation {
            Operation::AddTags { result, .. } => *result,
            other => panic!("not an add_tags: {other:?}"),
        })
        .collect();
    assert_eq!(
        results,
        [
            TagsAdded {
                targeted: 1,
                tagged: 0
            },
            TagsAdded {
                targeted: 2,
                tagged: 1
            },
            TagsAdded {
                targeted: 2,
                tagged: 0
            },
            TagsAdded::default(),
        ]
    );
}

#[test]
fn conditions_see_added_tags_only_after_their_after() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir);
    three(&store);
    let late = Query::tag("late");
    let try_append = |after: Option<u64>| {
        store.append_with(
            vec![NewEvent::new("C", "c")],
            AppendOptions::new().fail_if(late.clone(), after),
        )
    };
    // Passes before the tag exists, then the tag lands on position 2.
    let head = store.head().expect("head");
    store
        .add_tags(&Target::Positions(vec![2]), &strings(&["late"]))
        .expect("add");
    for after in [None, Some(0), Some(1)] {
        match try_append(after) {
            Err(Error::ConditionFailed { position }) => assert_eq!(position, 2, "{after:?}"),
            other => panic!("after {after:?}: {other:?}"),
        }
    }
    assert_eq!(
        store.head().expect("head"),
        head,
        "the failed appends wrote nothing"
    );
    let appended = try_append(Some(2)).expect("tagging at or before `after` is not a conflict");
    assert_eq!(appended.first, 4);
    try_append(Some(3)).expect("after the tagged event");
    // A type-and-tag condition, through the multi-arm statement.
    let both = Query::item(QueryItem::new().event_type("B").tag("late"))
        .or(QueryItem::new().event_type("Z"));
    match store.append_with(
        vec![NewEvent::new("C", "c")],
        AppendOptions::new().fail_if(both, Some(1)),
    ) {
        Err(Error::ConditionFailed { position }) => assert_eq!(position, 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn refused_input_changes_nothing_and_is_not_audited() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir);
    three(&store);
    // Event 4 carries all but one tag it may.
    let nearly_full: Vec<String> = (0..MAX_TAGS - 1).map(|i| format!("f{i}")).collect();
    let mut e = NewEvent::new("F", "f");
    for t in &nearly_full {
        e = e.tag(t.clone());
    }
    store.append(vec![e]).expect("append");
    let before = all_tags(&store);
    let listed = tag_counts(&store);

    let bad: Vec<(Target, Vec<String>)> = vec![
        (Target::Positions(vec![0]), strings(&["t"])),
        (Target::Positions(vec![5]), strings(&["t"])),
        (Target::Positions(vec![1, 99]), strings(&["t"])),
        (Target::Positions(vec![]), strings(&["t"])),
        (Target::Positions(vec![1]), vec![]),
        (Target::Positions(vec![1]), strings(&[""])),
        (Target::Positions(vec![1]), vec!["x".repeat(2000)]),
        (
            Target::Positions(vec![1]),
            (0..=MAX_TAGS).map(|i| format!("t{i}")).collect(),
        ),
        // Event 4 would carry MAX_TAGS + 1; event 1, first, would be fine.
        (Target::Positions(vec![1, 4]), strings(&["g1", "g2"])),
        (Target::Query(Query::all()), strings(&["g1", "g2"])),
        (Target::Query(Query::tag("")), strings(&["t"])),
        (Target::Query(Query::tag("q".repeat(2000))), strings(&["t"])),
    ];
    for (target, tags) in &bad {
        match store.add_tags(target, tags) {
            Err(Error::InvalidInput { .. }) => {}
            other => panic!("{target:?} {tags:?}: {other:?}"),
        }
    }
    assert_eq!(all_tags(&store), before);
    assert_eq!(tag_counts(&store), listed);
    assert!(positions(&store, &Query::tag("g1")).is_empty());
    assert!(store.audit_log(0, 100).expect("audit").is_empty());

    // One tag more fits exactly; the first entry is sequence 1.
    let added = store
        .add_tags(&Target::Positions(vec![4]), &strings(&["last"]))
        .expect("up to the limit");
    assert_eq!(added.tagged, 1);
    assert_eq!(all_tags(&store)[3].len(), MAX_TAGS);
    let log = store.audit_log(0, 100).expect("audit");
    assert_eq!(log.iter().map(|e| e.sequence).collect::<Vec<_>>(), [1]);
}

#[test]
fn the_audit_log_pages_in_order_and_records_each_operation() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir);
    three(&store);
    let started = now_micros();
    let targets = [
        Target::Positions(vec![3, 1, 3]),
        Target::Query(Query::tag("a")),
        Target::Positions(vec![2]),
        Target::Query(Query::event_type("A").or(QueryItem::new().tags(["b", "x"]))),
        Target::Positions(vec![1]),
    ];
    for (i, target) in targets.iter().enumerate() {
        store
            .add_tags(
                target,
                &[format!("op{i}"), "dup".to_owned(), format!("op{i}")],
            )
            .expect("add");
        if i == 2 {
            store.append(vec![NewEvent::new("D", "d")]).expect("append");
        }
    }
    let ended = now_micros();

    let mut paged: Vec<AuditEntry> = Vec::new();
    let mut after = 0;
    loop {
        let page = store.audit_log(after, 2).expect("page");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = last.sequence;
        paged.extend(page);
    }
    assert_eq!(
        paged.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(store.audit_log(0, 100).expect("all"), paged);
    assert_eq!(store.audit_log(3, 1).expect("one"), paged[3..4]);
    assert!(store.audit_log(5, 10).expect("none after").is_empty());
    assert!(store.audit_log(u64::MAX, 10).expect("none").is_empty());
    for limit in [0, gesta::listing::MAX_LIST_LIMIT + 1] {
        assert!(matches!(
            store.audit_log(0, limit),
            Err(Error::InvalidInput { .. })
        ));
    }

    let heads: Vec<u64> = paged.iter().map(|e| e.head).collect();
    assert_eq!(heads, [3, 3, 3, 4, 4]);
    for (i, (entry, target)) in paged.iter().zip(&targets).enumerate() {
        let Operation::AddTags {
            tags,
            target: recorded,
            result,
        } = &entry.operation
        else {
            panic!("not an add_tags: {entry:?}");
        };
        assert_eq!(tags, &[format!("op{i}"), "dup".to_owned()], "each once");
        assert_eq!(recorded, target, "the target as given");
        assert!(result.targeted >= 1);
        assert!(
            (started..=ended).contains(&entry.timestamp_micros),
            "{entry:?} not in {started}..={ended}"
        );
    }
    assert!(
        paged
            .windows(2)
            .all(|w| w[0].timestamp_micros <= w[1].timestamp_micros)
    );
    let d = events(&store, &Query::event_type("D")).remove(0);
    assert!(paged[3].timestamp_micros >= d.timestamp_micros);
    // Operation 4 targets 1, 3 and 4 (A, or b and x: 2), all of them.
    let Operation::AddTags { result, .. } = &paged[3].operation else {
        panic!("not an add_tags: {:?}", paged[3]);
    };
    assert_eq!(
        *result,
        TagsAdded {
            targeted: 3,
            tagged: 3
        }
    );
}

#[test]
fn reopening_keeps_the_tags_and_the_audit_trail() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir);
    three(&store);
    store
        .add_tags(&Target::Positions(vec![1, 3]), &strings(&["kept"]))
        .expect("add");
    store
        .add_tags(&Target::Query(Query::tag("kept")), &strings(&["too"]))
        .expect("add");
    let tags = all_tags(&store);
    let log = store.audit_log(0, 10).expect("audit");
    assert_eq!(log.len(), 2);
    drop(store);

    let store = open(&dir);
    assert_eq!(all_tags(&store), tags);
    assert_eq!(positions(&store, &Query::tag("too")), [1, 3]);
    assert_eq!(store.audit_log(0, 10).expect("audit"), log);
    store
        .add_tags(&Target::Positions(vec![2]), &strings(&["after"]))
        .expect("add after reopening");
    let log = store.audit_log(2, 10).expect("audit");
    assert_eq!(log.iter().map(|e| e.sequence).collect::<Vec<_>>(), [3]);
}

/// A database made before the audit table existed (the same layout
/// without it) opens, keeps its version, and gains the table.
#[test]
fn a_database_without_the_audit_table_gains_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("e.db");
    let store = open(&dir);
    three(&store);
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("open with rusqlite");
    conn.execute_batch("DROP TABLE audit")
        .expect("the earlier layout");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");

    let store = open(&dir);
    assert!(store.audit_log(0, 10).expect("empty trail").is_empty());
    store
        .add_tags(&Target::Positions(vec![1]), &strings(&["new"]))
        .expect("add");
    assert_eq!(store.audit_log(0, 10).expect("audit").len(), 1);
    drop(store);
    let after: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(
        after, version,
        "the table is an addition, not a new version"
    );
    assert_eq!(version, SqliteStore::schema_version());
}

/// `add_tags` feeds no subscription: not one on the tag it adds (the old
/// event is not delivered), not one caught up on everything — whether
/// the tags come through the subscriber's handle or another one (found by
/// polling).
#[test]
fn subscriptions_deliver_nothing_for_added_tags() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("e.db");
    let a = SqliteStore::open(&path, options().poll_interval(Duration::from_millis(10)))
        .expect("open a");
    let b = SqliteStore::open(&path, options()).expect("open b");
    three(&a);
    let mut on_tag = a.subscribe(&Query::tag("new"), 0).expect("subscribe");
    let mut on_all = a.subscribe(&Query::all(), 3).expect("subscribe");
    assert_eq!(
        on_tag
            .recv_timeout(Duration::from_millis(50))
            .expect("recv"),
        None
    );
    assert_eq!(on_tag.checkpoint(), 3);

    a.add_tags(&Target::Positions(vec![1]), &strings(&["new"]))
        .expect("add through a");
    b.add_tags(&Target::Query(Query::tag("b")), &strings(&["new"]))
        .expect("add through b");
    for sub in [&mut on_tag, &mut on_all] {
        assert_eq!(
            sub.recv_timeout(Duration::from_millis(300)).expect("recv"),
            None,
            "{sub:?}"
        );
        assert_eq!(sub.checkpoint(), 3);
    }

    // The next append is delivered, and only it.
    b.append(vec![NewEvent::new("N", "n").tag("new")])
        .expect("append");
    let batch = on_tag.recv_timeout(Duration::from_secs(20)).expect("recv");
    assert_eq!(
        batch.map(|b| b.iter().map(|e| e.position).collect::<Vec<_>>()),
        Some(vec![4])
    );
    let batch = on_all.recv_timeout(Duration::from_secs(20)).expect("recv");
    assert_eq!(batch.map(|b| b.len()), Some(1));
    // A new subscription from the start reads the old events with the
    // tags they have now.
    let mut fresh = a.subscribe(&Query::tag("new"), 0).expect("subscribe");
    let batch = fresh.recv_timeout(Duration::from_secs(20)).expect("recv");
    let got: Vec<(u64, Vec<String>)> = batch
        .expect("a batch")
        .into_iter()
        .map(|e| (e.position, e.tags))
        .collect();
    assert_eq!(
        got,
        [
            (1, strings(&["a", "new"])),
            (2, strings(&["b", "x", "new"]))
        ]
    );
}

/// Conditional appends through one handle and `add_tags` through another
/// run at once, serialized by the database's write lock: no call fails
/// for it, each append's condition on a tag added meanwhile either passes
/// or fails at the tagged event, and nothing is half done at the end.
#[test]
fn add_tags_serializes_with_conditional_appends_of_another_handle() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("e.db");
    let a = SqliteStore::open(&path, options()).expect("open a");
    let b = SqliteStore::open(&path, options()).expect("open b");
    a.append(vec![NewEvent::new("A", "0")]).expect("append");
    let rounds = 50;
    let committed = std::thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..rounds {
                b.add_tags(&Target::Positions(vec![1]), &[format!("t{i}")])
                    .expect("add");
            }
        });
        let mut committed = 0;
        for i in 0..rounds {
            let query = Query::tag(format!("t{i}"));
            match a.append_with(
                vec![NewEvent::new("B", "b")],
                AppendOptions::new().fail_if(query, Some(0)),
            ) {
                Ok(_) => committed += 1,
                Err(Error::ConditionFailed { position: 1 }) => {}
                Err(e) => panic!("append {i}: {e}"),
            }
        }
        committed
    });
    assert_eq!(a.head().expect("head"), 1 + committed);
    let want: Vec<String> = (0..rounds).map(|i| format!("t{i}")).collect();
    assert_eq!(all_tags(&a)[0], want);
    for tag in &want {
        assert_eq!(positions(&a, &Query::tag(tag.clone())), [1]);
    }
    let log = a.audit_log(0, 100).expect("audit");
    assert_eq!(log.len(), rounds);
    assert!(log.windows(2).all(|w| w[0].head <= w[1].head));
}

// ---- Redaction ----

fn redacted(targeted: u64, redacted: u64) -> Redacted {
    Redacted { targeted, redacted }
}

/// `e` as a redaction leaves it: data and metadata empty.
fn erased(mut e: RecordedEvent) -> RecordedEvent {
    e.data = bytes::Bytes::new();
    e.metadata = bytes::Bytes::new();
    e
}

/// `events` with those at `positions` erased.
fn erasing(events: &[RecordedEvent], positions: &[u64]) -> Vec<RecordedEvent> {
    events
        .iter()
        .map(|e| match positions.contains(&e.position) {
            true => erased(e.clone()),
            false => e.clone(),
        })
        .collect()
}

/// Five events: 1 `A` [a] in stream s, id 1, with metadata; 2 `B` [b] in
/// s; 3 `A` [] with empty data and metadata; 4 `C` [a, c], id 4, with
/// metadata; 5 `B` [] in s.
fn five(store: &SqliteStore) {
    store
        .append(vec![
            NewEvent::new("A", "d1")
                .tag("a")
                .stream("s")
                .id(1)
                .metadata("m1"),
            NewEvent::new("B", "d2").tag("b").stream("s"),
        ])
        .expect("append");
    store.append(vec![NewEvent::new("A", "")]).expect("append");
    store
        .append(vec![
            NewEvent::new("C", "d4")
                .tags(["a", "c"])
                .id(4)
                .metadata(vec![0u8, 255]),
            NewEvent::new("B", "d5").stream("s"),
        ])
        .expect("append");
}

/// Every way to read the store's events, each compared with `want` (the
/// whole log): both directions, `read_each`, `read_last`, the stream, by
/// id.
fn check_reads(store: &SqliteStore, want: &[RecordedEvent]) {
    assert_eq!(events(store, &Query::all()), want, "read forwards");
    let mut back: Vec<RecordedEvent> = store
        .read(&Query::all(), ReadOptions::backwards())
        .expect("read")
        .map(|e| e.expect("event"))
        .collect();
    back.reverse();
    assert_eq!(back, want, "read backwards");
    let mut lent = Vec::new();
    store
        .read_each(&Query::tag("a"), ReadOptions::forwards(), &mut |e| {
            lent.push(e.to_owned());
            std::ops::ControlFlow::Continue(())
        })
        .expect("read_each");
    assert_eq!(lent, [want[0].clone(), want[3].clone()], "read_each");
    assert_eq!(
        store.read_last(&Query::event_type("A")).expect("read_last"),
        Some(want[2].clone())
    );
    let stream: Vec<RecordedEvent> = store
        .read_stream("s", ReadOptions::forwards())
        .expect("read_stream")
        .map(|e| e.expect("event"))
        .collect();
    assert_eq!(
        stream,
        [want[0].clone(), want[1].clone(), want[4].clone()],
        "read_stream"
    );
    assert_eq!(store.event_by_id(1).expect("by id"), Some(want[0].clone()));
    assert_eq!(store.event_by_id(4).expect("by id"), Some(want[3].clone()));
}

fn redact_results(store: &SqliteStore) -> Vec<(Target, Redacted, u64)> {
    store
        .audit_log(0, 100)
        .expect("audit")
        .into_iter()
        .filter_map(|e| match e.operation {
            Operation::Redact { target, result } => Some((target, result, e.head)),
            _ => None,
        })
        .collect()
}

/// Redaction by positions and by query: the results count the events
/// named and those not redacted before (an event appended with empty data
/// and metadata counts as redacted the first time); reads return the
/// events with empty data and metadata and every other field as it was
/// (added tags too); queries, listings, revisions, conditions and the
/// head do not change; the audit trail records each operation.
#[test]
fn redaction_erases_data_and_metadata_and_nothing_else() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir);
    five(&store);
    store
        .add_tags(&Target::Positions(vec![4]), &strings(&["n"]))
        .expect("add");
    let before = events(&store, &Query::all());
    let listed = tag_counts(&store);
    let types = store.list(Listing::Types, "", None, 100).expect("types");

    let by_positions = Target::Positions(vec![4, 1, 4]);
    assert_eq!(store.redact(&by_positions).expect("redact"), redacted(2, 2));
    check_reads(&store, &erasing(&before, &[1, 4]));
    let by_query = Target::Query(Query::event_type("A"));
    assert_eq!(store.redact(&by_query).expect("redact"), redacted(2, 1));
    let now = erasing(&before, &[1, 3, 4]);
    check_reads(&store, &now);
    assert_eq!(now[3].tags, strings(&["a", "c", "n"]), "added tags stay");
    assert_eq!(now[1].data, "d2", "others keep theirs");

    assert_eq!(positions(&store, &Query::tag("a")), [1, 4]);
    assert_eq!(positions(&store, &Query::tag("n")), [4]);
    assert_eq!(tag_counts(&store), listed);
    assert_eq!(
        store.list(Listing::Types, "", None, 100).expect("types"),
        types
    );
    assert_eq!(store.head().expect("head"), 5);
    assert_eq!(store.stream_revision("s").expect("revision"), Some(2));
    match store.append_with(
        vec![NewEvent::new("X", "x")],
        AppendOptions::new().fail_if(Query::tag("c"), Some(3)),
    ) {
        Err(Error::ConditionFailed { position: 4 }) => {}
        other => panic!("the condition sees the redacted event: {other:?}"),
    }
    assert_eq!(store.head().expect("head"), 5);

    // Everything: two new, then nothing new.
    let all = Target::Query(Query::all());
    assert_eq!(store.redact(&all).expect("redact"), redacted(5, 2));
    assert_eq!(store.redact(&all).expect("redact"), redacted(5, 0));
    assert_eq!(
        store
            .redact(&Target::Positions(vec![3]))
            .expect("redact again"),
        redacted(1, 0)
    );
    check_reads(&store, &erasing(&before, &[1, 2, 3, 4, 5]));

    let log = store.audit_log(0, 100).expect("audit");
    assert_eq!(
        log.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert!(
        log.windows(2)
            .all(|w| w[0].timestamp_micros <= w[1].timestamp_micros)
    );
    assert_eq!(
        redact_results(&store),
        [
            (by_positions, redacted(2, 2), 5),
            (by_query, redacted(2, 1), 5),
            (all.clone(), redacted(5, 2), 5),
            (all, redacted(5, 0), 5),
            (Target::Positions(vec![3]), redacted(1, 0), 5),
        ]
    );
}

/// Refused targets change nothing, record nothing, mark nothing.
#[test]
fn refused_redactions_change_nothing_and_are_not_audited() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("e.db");
    let store = open(&dir);
    five(&store);
    let before = events(&store, &Query::all());
    let bad = [
        Target::Positions(vec![]),
        Target::Positions(vec![0]),
        Target::Positions(vec![6]),
        Target::Positions(vec![1, 99]),
        Target::Positions(vec![2, 0]),
        Target::Positions(vec![u64::MAX]),
        Target::Query(Query::tag("")),
        Target::Query(Query::tag("q".repeat(2000))),
        Target::Query(Query::event_type("")),
    ];
    for target in &bad {
        match store.redact(target) {
            Err(Error::InvalidInput { .. }) => {}
            other => panic!("{target:?}: {other:?}"),
        }
    }
    check_reads(&store, &before);
    assert!(store.audit_log(0, 100).expect("audit").is_empty());
    let conn = rusqlite::Connection::open(&path).expect("open with rusqlite");
    let marked: i64 = conn
        .query_row("SELECT count(*) FROM redacted", [], |r| r.get(0))
        .expect("count");
    assert_eq!(marked, 0);
    assert_eq!(
        store
            .redact(&Target::Positions(vec![5]))
            .expect("a valid one"),
        redacted(1, 1)
    );
    let log = store.audit_log(0, 100).expect("audit");
    assert_eq!(log.iter().map(|e| e.sequence).collect::<Vec<_>>(), [1]);
}

/// A redaction is durable: after reopening, reads return the events
/// erased and redacting them again counts none.
#[test]
fn redaction_survives_reopening() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir);
    five(&store);
    let before = events(&store, &Query::all());
    store
        .redact(&Target::Query(Query::tag("a")))
        .expect("redact");
    let log = store.audit_log(0, 10).expect("audit");
    drop(store);

    let store = open(&dir);
    check_reads(&store, &erasing(&before, &[1, 4]));
    assert_eq!(store.audit_log(0, 10).expect("audit"), log);
    assert_eq!(
        store
            .redact(&Target::Positions(vec![1, 2, 3, 4]))
            .expect("redact after reopening"),
        redacted(4, 2)
    );
    check_reads(&store, &erasing(&before, &[1, 2, 3, 4]));
    assert_eq!(store.audit_log(0, 10).expect("audit").len(), 2);
}

/// A database made before the `redacted` table opens, keeps its version
/// and gains the table.
#[test]
fn a_database_without_the_redacted_table_gains_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("e.db");
    let store = open(&dir);
    five(&store);
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("open with rusqlite");
    conn.execute_batch("DROP TABLE redacted")
        .expect("the earlier layout");
    let store = open(&dir);
    assert_eq!(
        store.redact(&Target::Positions(vec![2])).expect("redact"),
        redacted(1, 1)
    );
    assert_eq!(
        store.redact(&Target::Positions(vec![2])).expect("redact"),
        redacted(1, 0)
    );
    drop(store);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, SqliteStore::schema_version());
}

/// Two batches with ids: 1 `A` [a] (id 0xa1) and 2 `B` [b] (id 0xa2);
/// then 3 `C` [c] (id 0xc1).
fn with_ids() -> [Vec<NewEvent>; 2] {
    [
        vec![
            NewEvent::new("A", "1").tag("a").id(0xa1),
            NewEvent::new("B", "2").tag("b").id(0xa2),
        ],
        vec![NewEvent::new("C", "3").tag("c").id(0xc1)],
    ]
}

/// A database made before the `added_tags` table opens, keeps its
/// version and gains the table; tags added from then on are counted (a
/// retry of their event's batch is recognised, however many operations
/// added them), while tags added before pass for the event's own (a retry
/// is refused as a duplicate, as the crate documents).
#[test]
fn a_database_without_the_added_tags_table_gains_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("e.db");
    let store = open(&dir);
    let [first, second] = with_ids();
    store.append(first.clone()).expect("append");
    store.append(second.clone()).expect("append");
    store
        .add_tags(&Target::Positions(vec![1]), &strings(&["before"]))
        .expect("add");
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("open with rusqlite");
    conn.execute_batch("DROP TABLE added_tags")
        .expect("the earlier layout");

    let store = open(&dir);
    store
        .add_tags(&Target::Positions(vec![3]), &strings(&["one"]))
        .expect("add");
    store
        .add_tags(&Target::Query(Query::tag("one")), &strings(&["two"]))
        .expect("add");
    let count: i64 = conn
        .query_row("SELECT count FROM added_tags WHERE position = 3", [], |r| {
            r.get(0)
        })
        .expect("counted");
    assert_eq!(count, 2);
    let retried = store.append(second).expect("a retry");
    assert_eq!((retried.first, retried.last), (3, 3));
    assert!(matches!(
        store.append(first),
        Err(Error::DuplicateEventId { id: 0xa1 })
    ));
    assert_eq!(store.head().expect("head"), 3);
    drop(store);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, SqliteStore::schema_version());
}

/// The database's files: the main file, the WAL and the WAL index.
fn files(dir: &tempfile::TempDir) -> [std::path::PathBuf; 3] {
    ["e.db", "e.db-wal", "e.db-shm"].map(|name| dir.path().join(name))
}

/// Which of the database's files hold `needle`, and how many times.
fn holding(dir: &tempfile::TempDir, needle: &[u8]) -> Vec<(String, usize)> {
    files(dir)
        .iter()
        .filter_map(|path| {
            let bytes = std::fs::read(path).ok()?;
            let found = bytes.windows(needle.len()).filter(|w| *w == needle).count();
            let name = path.file_name()?.to_string_lossy().into_owned();
            (found > 0).then_some((name, found))
        })
        .collect()
}

/// Events around the ones redacted, enough to fill pages.
fn filler(store: &SqliteStore, from: u32, n: u32) {
    for i in from..from + n {
        let pad = "f".repeat((i as usize * 37) % 300);
        store
            .append(vec![
                NewEvent::new("F", format!("filler {i} {pad}")).tag("f"),
            ])
            .expect("append");
    }
}

/// After a redaction no file of the database holds a byte string of the
/// erased data or metadata: not the row (rewritten since by `add_tags`),
/// not the overflow pages of a large value, not the WAL. Before it, the
/// files did hold them (so the search finds what it looks for).
#[test]
fn a_redacted_secret_leaves_every_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir);
    let (data, meta, large) = (
        "secret-data-5c1e7d02",
        "secret-meta-90aa41f3",
        "secret-large-e8b26c17",
    );
    filler(&store, 0, 200);
    store
        .append(vec![
            NewEvent::new("Registered", format!(r#"{{"email":"{data}"}}"#))
                .tag("user:u1")
                .metadata(meta),
            // Spread over overflow pages: a copy every 1000 bytes.
            NewEvent::new("Uploaded", format!("{large}{}", "x".repeat(979)).repeat(20))
                .tag("user:u1"),
        ])
        .expect("append");
    filler(&store, 200, 200);
    store
        .add_tags(&Target::Query(Query::tag("user:u1")), &strings(&["gdpr"]))
        .expect("add");
    filler(&store, 400, 100);
    for secret in [data, meta, large] {
        assert!(
            !holding(&dir, secret.as_bytes()).is_empty(),
            "{secret} is in the files before"
        );
    }

    let result = store
        .redact(&Target::Query(Query::tag("user:u1")))
        .expect("redact");
    assert_eq!(result, redacted(2, 2));
    for secret in [data, meta, large] {
        assert_eq!(
            holding(&dir, secret.as_bytes()),
            [],
            "{secret} after the redaction"
        );
    }
    let redacted_events = events(&store, &Query::tag("gdpr"));
    assert_eq!(redacted_events.len(), 2);
    assert!(
        redacted_events
            .iter()
            .all(|e| e.data.is_empty() && e.metadata.is_empty())
    );
    assert_eq!(events(&store, &Query::tag("f")).len(), 500);
    drop(store);
    for secret in [data, meta, large] {
        assert_eq!(holding(&dir, secret.as_bytes()), [], "{secret} closed");
    }
}

/// Rows this build rewrote — `add_tags` on many events, round after
/// round, so that rows grow, move within their pages and between them —
/// leave no copy of the erased values behind them: `secure_delete`
/// zeroed each old cell, without a `vacuum`.
#[test]
fn rows_rewritten_by_add_tags_leave_no_copy_behind() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir);
    let secret = "secret-churn-6b07e2c9";
    for i in 0..60 {
        store
            .append(vec![
                NewEvent::new("Registered", format!("{secret} {i}")).tag("user"),
            ])
            .expect("append");
        filler(&store, i * 2, 2);
    }
    for round in 0..5u64 {
        let tag = format!("o{round}-{}", "t".repeat(40));
        let every_third: Vec<u64> = (1..=180).filter(|p| p % 3 == round % 3).collect();
        store
            .add_tags(&Target::Positions(every_third), &[tag])
            .expect("add");
    }
    assert_eq!(
        store
            .redact(&Target::Query(Query::tag("user")))
            .expect("redact"),
        redacted(60, 60)
    );
    assert_eq!(holding(&dir, secret.as_bytes()), []);
    assert_eq!(events(&store, &Query::tag("f")).len(), 120);
}

/// What `secure_delete` cannot reach — bytes an earlier build left in
/// pages' free space when its `add_tags` rewrote rows without it — is
/// gone after `vacuum`, which builds every page anew.
#[test]
fn vacuum_clears_what_an_earlier_build_left_in_free_space() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("e.db");
    let store = open(&dir);
    let secret = "secret-stale-31f09a6d";
    for i in 0..60 {
        store
            .append(vec![
                NewEvent::new("Registered", format!("{secret} {i}")).tag("user"),
            ])
            .expect("append");
        filler(&store, i * 2, 2);
    }
    drop(store);
    // An earlier build's `add_tags`, without secure_delete: five rounds,
    // each adding a tag to every third event; rows grow, are rewritten,
    // and old cells stay in free space.
    let conn = rusqlite::Connection::open(&path).expect("open with rusqlite");
    conn.execute_batch("PRAGMA secure_delete = OFF; PRAGMA synchronous = OFF")
        .expect("pragma");
    for round in 0..5 {
        let tag = format!("o{round}-{}", "t".repeat(40));
        let rows: Vec<(i64, Vec<u8>)> = conn
            .prepare("SELECT position, tags FROM events WHERE position % 3 = ?1")
            .and_then(|mut s| {
                s.query_map([round % 3], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()
            })
            .expect("read the tags");
        for (position, mut tags) in rows {
            tags.extend_from_slice(&(tag.len() as u16).to_le_bytes());
            tags.extend_from_slice(tag.as_bytes());
            conn.execute(
                "UPDATE events SET tags = ?2 WHERE position = ?1",
                rusqlite::params![position, tags],
            )
            .expect("an earlier build's add_tags");
            // (With the event's type, which the tag index holds since.)
            conn.execute(
                "INSERT INTO tags (tag, position, type) \
                 SELECT ?1, position, type FROM events WHERE position = ?2",
                rusqlite::params![tag, position],
            )
            .expect("index the tag");
        }
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    drop(conn);
    let copies: usize = holding(&dir, secret.as_bytes())
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert!(copies > 60, "the rows and stale copies: {copies}");

    let store = open(&dir);
    assert_eq!(
        store
            .redact(&Target::Query(Query::tag("user")))
            .expect("redact"),
        redacted(60, 60)
    );
    store.vacuum().expect("vacuum");
    assert_eq!(holding(&dir, secret.as_bytes()), []);
    let users = events(&store, &Query::tag("user"));
    assert_eq!(users.len(), 60);
    assert!(
        users
            .iter()
            .all(|e| e.data.is_empty() && e.tags[0] == "user")
    );
    assert_eq!(
        positions(&store, &Query::tag(format!("o4-{}", "t".repeat(40)))).len(),
        60
    );
    assert_eq!(events(&store, &Query::tag("f")).len(), 120);
    assert_eq!(
        store
            .redact(&Target::Query(Query::tag("user")))
            .expect("redact"),
        redacted(60, 0),
        "vacuum keeps the redacted positions"
    );
}

/// A connection reading an older snapshot holds up the checkpoint, not
/// the redaction: `redact` returns once the busy timeout ran out, reads
/// through the store see the events erased, and the bytes leave the files
/// at the next checkpoint that completes — the next `redact`'s. `vacuum`
/// says when its checkpoint was blocked.
#[test]
fn a_reader_of_an_older_snapshot_delays_only_the_checkpoint() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("e.db");
    let store =
        SqliteStore::open(&path, options().busy_timeout(Duration::from_millis(100))).expect("open");
    let secret = "secret-held-7d4410be";
    filler(&store, 0, 20);
    store
        .append(vec![NewEvent::new("Registered", secret).tag("user:u3")])
        .expect("append");

    let reader = rusqlite::Connection::open(&path).expect("open with rusqlite");
    reader
        .execute_batch("BEGIN; SELECT count(*) FROM events;")
        .expect("a read transaction");
    let old: Vec<u8> = reader
        .query_row("SELECT data FROM events WHERE position = 21", [], |r| {
            r.get(0)
        })
        .expect("read");
    assert_eq!(old, secret.as_bytes());

    let target = Target::Query(Query::tag("user:u3"));
    assert_eq!(store.redact(&target).expect("redact"), redacted(1, 1));
    let e = events(&store, &Query::tag("user:u3")).remove(0);
    assert!(e.data.is_empty(), "the store's reads see the redaction");
    assert!(
        !holding(&dir, secret.as_bytes()).is_empty(),
        "the reader's snapshot holds the checkpoint back"
    );
    match store.vacuum() {
        Err(Error::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::WouldBlock)
        }
        other => panic!("vacuum with a reader in the way: {other:?}"),
    }

    reader.execute_batch("COMMIT").expect("end the read");
    assert_eq!(store.redact(&target).expect("redact"), redacted(1, 0));
    assert_eq!(holding(&dir, secret.as_bytes()), []);
    store.vacuum().expect("vacuum");
    assert_eq!(holding(&dir, secret.as_bytes()), []);
}

/// A version 2 database (without the removal tables, and its tag index
/// without types) opens as the current version: it gains them, and
/// removal works on it; a build reading version 2 would then refuse the
/// file, which is the point (it would take a removed position for free
/// again).
#[test]
fn a_version_2_database_gains_removal() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("e.db");
    let store = open(&dir);
    three(&store);
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("open with rusqlite");
    conn.execute_batch(
        "DROP TABLE removed_events; DROP TABLE retention;
         CREATE TABLE tags_v2 (tag TEXT NOT NULL, position INTEGER NOT NULL,
             PRIMARY KEY (tag, position)) WITHOUT ROWID;
         INSERT INTO tags_v2 SELECT tag, position FROM tags;
         DROP TABLE tags; ALTER TABLE tags_v2 RENAME TO tags;
         PRAGMA user_version = 2;",
    )
    .expect("the version 2 layout");

    let store = open(&dir);
    let removed = store.delete_stream("nope").expect("delete");
    assert_eq!(removed.removed, 0);
    let removed = store
        .remove(&Target::Positions(vec![3]))
        .expect("remove the last event");
    assert_eq!(removed.removed, 1);
    assert_eq!(store.head().expect("head"), 3, "the head stays");
    let next = store.append(vec![NewEvent::new("C", "4")]).expect("append");
    assert_eq!(next.first, 4, "a removed position is not taken again");
    drop(store);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, SqliteStore::schema_version());
}
