//! Retention rules on the engine: by age with a clock the test moves, in
//! the background on their own, and without keeping a dropped store open.
//! (Rules by count, and everything a removal does to reads, are conformance
//! cases, run on every store.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use gesta::clock::ManualClock;
use gesta::{NewEvent, Options, Query, ReadOptions, RetentionRule, Store};

fn positions(store: &Store, query: &Query) -> Vec<u64> {
    store
        .read(query, ReadOptions::forwards())
        .unwrap()
        .map(|e| e.unwrap().position)
        .collect()
}

fn ev(i: u64) -> NewEvent {
    NewEvent::new("Tick", format!("{i}"))
        .tag(if i.is_multiple_of(2) { "even" } else { "odd" })
        .stream("ticks")
}

/// Events older than the rule's age go when it is enforced, measured on
/// the store's clock; younger ones and events outside the scope stay; the
/// audit trail has the removal, and `compact` enforces too.
#[test]
fn rules_by_age_follow_the_clock() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let options = || Options::default().clock(clock.clone());
    let store = Store::open_with(tmp.path(), options()).unwrap();
    for i in 1..=6 {
        store.append(vec![ev(i)]).unwrap();
        clock.advance(10_000_000); // 10 s between appends
    }
    // Now 61 s; events at 1, 11, 21, 31, 41 and 51 s.
    let rule = RetentionRule::query(Query::tag("even")).max_age(Duration::from_secs(35));
    store.set_retention(&rule).unwrap();
    // Older than 35 s at 61 s: committed before 26 s — 2 (11 s); not 4, 6.
    let done = store.enforce_retention().unwrap();
    assert_eq!((done.targeted, done.removed), (1, 1));
    assert_eq!(positions(&store, &Query::all()), [1, 3, 4, 5, 6]);
    clock.advance(20_000_000); // 81 s: before 46 s goes — 4 (31 s)
    store.compact().unwrap();
    assert_eq!(positions(&store, &Query::all()), [1, 3, 5, 6]);
    assert_eq!((store.head(), store.events()), (6, 4));
    assert_eq!(
        store.retention_rules().unwrap(),
        std::slice::from_ref(&rule)
    );
    store.close().unwrap();
    let store = Store::open_with(tmp.path(), options()).unwrap();
    assert_eq!(store.retention_rules().unwrap(), [rule]);
    assert_eq!(positions(&store, &Query::all()), [1, 3, 5, 6]);
    let stream: Vec<Option<u64>> = store
        .read_stream("ticks", ReadOptions::forwards())
        .unwrap()
        .map(|e| e.unwrap().revision)
        .collect();
    assert_eq!(stream, [Some(0), Some(2), Some(4), Some(5)]);
}

/// With a short interval, the background compactor enforces a rule on its
/// own as events arrive.
#[test]
fn rules_are_enforced_in_the_background() {
    let tmp = tempfile::tempdir().unwrap();
    let options = Options::default().retention_interval(Duration::from_millis(20));
    let store = Store::open_with(tmp.path(), options).unwrap();
    store
        .set_retention(&RetentionRule::stream("ticks").max_count(3))
        .unwrap();
    for i in 1..=10 {
        store.append(vec![ev(i)]).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while positions(&store, &Query::all()) != [8, 9, 10] {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            positions(&store, &Query::all())
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The background thread holds the store weakly: `close` waits for a pass
/// in flight and frees the lock at once; dropping the last handle closes
/// the store too — at once, or when the pass in flight ends.
#[test]
fn the_retention_thread_does_not_keep_a_store_open() {
    let tmp = tempfile::tempdir().unwrap();
    let options = || Options::default().retention_interval(Duration::from_millis(1));
    let fill = |store: &Store| {
        store
            .set_retention(&RetentionRule::stream("ticks").max_count(1))
            .unwrap();
        for round in 0..20 {
            store.append(vec![ev(round)]).unwrap();
        }
    };
    for _ in 0..20 {
        let store = Store::open_with(tmp.path(), options()).unwrap();
        fill(&store);
        store.close().unwrap();
        drop(store);
        let again = Store::open_with(tmp.path(), options()).unwrap();
        assert_eq!(again.retention_rules().unwrap().len(), 1);
        fill(&again);
        drop(again);
        let deadline = Instant::now() + Duration::from_secs(10);
        let reopened = loop {
            match Store::open_with(tmp.path(), options()) {
                Ok(store) => break store,
                Err(gesta::Error::Locked { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("the dropped store stayed open: {e}"),
            }
        };
        reopened.close().unwrap();
    }
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    })
}

/// What a retention rule removes leaves the index runs too at the next
/// `compact`: the merge drops the removed events' type and tag postings
/// (keeping their stream and id postings, which revisions and retries
/// still need), so the index shrinks, while queries, listings, stream
/// revisions and lookups by id answer as before — after a reopen, in a
/// backup, and to `verify`, which knows which postings were purged. A
/// removal after the purge, at positions the purged run holds, is counted
/// right too.
#[test]
fn a_compaction_purges_removed_events_from_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = Store::open_with(&dir, Options::default()).unwrap();
    for i in 0..2_000u64 {
        store
            .append(vec![
                NewEvent::new(if i % 2 == 0 { "Even" } else { "Odd" }, format!("{i}"))
                    .tag(format!("user:{i}"))
                    .tag(format!("group:{}", i % 10))
                    .stream(format!("s{}", i % 7))
                    .id(u128::from(i) + 1),
            ])
            .unwrap();
    }
    store.compact().unwrap();
    let index = dir.join("index");
    let before = dir_bytes(&index);
    store
        .set_retention(&RetentionRule::query(Query::all()).max_count(200))
        .unwrap();
    store.compact().unwrap();
    let after = dir_bytes(&index);
    // 1,800 events' unique user tags, their group and type postings gone;
    // their ids and stream postings (with the ids' 16-byte keys) stay.
    assert!(
        after * 10 < before * 7,
        "index {before} bytes before the purge, {after} after"
    );
    let listings = |s: &Store| {
        [
            gesta::Listing::Types,
            gesta::Listing::Tags,
            gesta::Listing::Streams,
        ]
        .map(|what| s.list(what, "", None, 10_000).unwrap())
    };
    let tags = |s: &Store| listings(s)[1].len();
    assert_eq!(tags(&store), 200 + 10);
    assert_eq!(positions(&store, &Query::tag("group:3")).len(), 20);
    assert_eq!(positions(&store, &Query::tag("user:5")), Vec::<u64>::new());
    assert_eq!(positions(&store, &Query::event_type("Even")).len(), 100);
    // Revisions still count every event, removed ones included; ids stay
    // taken: a retry of a removed event's batch gets its position back.
    assert_eq!(store.stream_revision("s0").unwrap(), Some(285));
    let retry = store
        .append(vec![
            NewEvent::new("Even", "0")
                .tag("user:0")
                .tag("group:0")
                .stream("s0")
                .id(1),
        ])
        .unwrap();
    assert_eq!(retry.first, 1);
    // A removal after the purge, of events the purged run holds.
    store
        .remove(&gesta::lifecycle::Target::Query(Query::tag("group:3")))
        .unwrap();
    let expected = listings(&store);
    assert_eq!(expected[1].len(), 200 + 10 - 20 - 1);
    store.close().unwrap();
    let report = gesta::inspect::verify(&dir, &mut |_, _| {}).unwrap();
    assert!(report.is_intact(), "{:#?}", report.findings);
    let store = Store::open_with(&dir, Options::default()).unwrap();
    assert_eq!(listings(&store), expected);
    assert_eq!(positions(&store, &Query::tag("group:3")), Vec::<u64>::new());
    // A backup taken now holds the purged run and verifies.
    let copy = tmp.path().join("copy");
    let backup = store.backup(&copy).unwrap();
    assert!(backup.index_runs > 0, "{backup:?}");
    let report = gesta::inspect::verify(&copy, &mut |_, _| {}).unwrap();
    assert!(report.is_intact(), "{:#?}", report.findings);
    let copied = Store::open_with(&copy, Options::default()).unwrap();
    assert_eq!(listings(&copied), expected);
}

/// A store whose index was purged of removals that its lifecycle journal
/// no longer holds (the journal lost) is refused, never opened with events
/// that nothing hides missing from its queries; `verify --repair`
/// rebuilds the index from the log.
#[test]
fn an_index_purged_of_removals_the_journal_lacks_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let store = Store::open_with(dir, Options::default()).unwrap();
    for i in 0..20 {
        store.append(vec![ev(i)]).unwrap();
    }
    store.delete_stream("ticks").unwrap();
    store.compact().unwrap();
    store.close().unwrap();
    std::fs::remove_file(dir.join("LIFECYCLE")).unwrap();
    let err = Store::open_with(dir, Options::default())
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("purged")),
        "{err:?}"
    );
    let report = gesta::inspect::verify(dir, &mut |_, _| {}).unwrap();
    assert!(!report.is_intact());
    gesta::inspect::repair(dir, &report).unwrap();
    let store = Store::open_with(dir, Options::default()).unwrap();
    // Without the journal nothing hides them: the events are back, as the
    // log holds them (their data erased by the compaction).
    assert_eq!(positions(&store, &Query::tag("even")).len(), 10);
}
