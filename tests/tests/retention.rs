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
