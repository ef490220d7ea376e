//! The first Store API: positions, reads, limits at the boundary, locking,
//! durability modes and closing.

use std::sync::Arc;
use std::time::Duration;

use gesta::clock::ManualClock;
use gesta::event::{MAX_BATCH_LEN, MAX_DATA_LEN, MAX_NAME_LEN, MAX_TAGS};
use gesta::io::fault::{CrashMode, FaultFs};
use gesta::{
    Appended, Durability, Error, NewEvent, Options, Query, ReadOptions, RecordedEvent, Store,
};

fn ev(i: u64) -> NewEvent {
    NewEvent::new(format!("T{}", i % 3), format!("data {i}")).tag(format!("k:{}", i % 5))
}

fn all(store: &Store, options: ReadOptions) -> Vec<RecordedEvent> {
    store
        .read(&Query::all(), options)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn positions(store: &Store, options: ReadOptions) -> Vec<u64> {
    all(store, options).iter().map(|e| e.position).collect()
}

#[test]
fn positions_start_at_one_and_batches_are_consecutive() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.head(), 0);
    assert_eq!(
        store.append(vec![ev(1)]).unwrap(),
        Appended { first: 1, last: 1 }
    );
    assert_eq!(
        store.append(vec![ev(2), ev(3), ev(4)]).unwrap(),
        Appended { first: 2, last: 4 }
    );
    assert_eq!(store.head(), 4);
    let events = all(&store, ReadOptions::forwards());
    assert_eq!(events.len(), 4);
    for (e, i) in events.iter().zip(1u64..) {
        assert_eq!(e.position, i);
        assert_eq!(e.event_type, format!("T{}", i % 3));
        assert_eq!(&e.data[..], format!("data {i}").as_bytes());
        assert_eq!(e.tags, vec![format!("k:{}", i % 5)]);
    }
    // A batch shares one commit timestamp.
    assert_eq!(events[1].timestamp_micros, events[3].timestamp_micros);
}

#[test]
fn read_options_are_exclusive_in_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for i in 0..10 {
        store.append(vec![ev(2 * i), ev(2 * i + 1)]).unwrap();
    }
    assert_eq!(
        positions(&store, ReadOptions::forwards()),
        (1..=20).collect::<Vec<_>>()
    );
    assert_eq!(
        positions(&store, ReadOptions::forwards().start(0)),
        (1..=20).collect::<Vec<_>>()
    );
    assert_eq!(
        positions(&store, ReadOptions::forwards().start(5)),
        (6..=20).collect::<Vec<_>>()
    );
    assert_eq!(
        positions(&store, ReadOptions::forwards().start(5).limit(3)),
        vec![6, 7, 8]
    );
    assert!(positions(&store, ReadOptions::forwards().start(20)).is_empty());
    assert!(positions(&store, ReadOptions::forwards().start(99)).is_empty());
    assert!(positions(&store, ReadOptions::forwards().limit(0)).is_empty());
    assert_eq!(
        positions(&store, ReadOptions::backwards()),
        (1..=20).rev().collect::<Vec<_>>()
    );
    assert_eq!(
        positions(&store, ReadOptions::backwards().start(6)),
        vec![5, 4, 3, 2, 1]
    );
    assert_eq!(
        positions(&store, ReadOptions::backwards().start(6).limit(2)),
        vec![5, 4]
    );
    assert_eq!(
        positions(&store, ReadOptions::backwards().start(99).limit(1)),
        vec![20]
    );
    assert!(positions(&store, ReadOptions::backwards().start(1)).is_empty());
    assert!(positions(&store, ReadOptions::backwards().start(0)).is_empty());
}

#[test]
fn every_field_round_trips_through_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let full = NewEvent::new("OrderPlaced", vec![0u8, 1, 2, 255])
        .tags(["order:1", "customer:7"])
        .metadata(&b"{\"corr\":\"x\"}"[..])
        .id(0x0123_4567_89ab_cdef_0011_2233_4455_6677)
        .stream("order-1");
    let bare = NewEvent::new("Tick", "");
    store.append(vec![full.clone(), bare.clone()]).unwrap();
    store.append(vec![full.clone().id(2)]).unwrap();
    store.close().unwrap();
    assert!(matches!(
        store.append(vec![bare.clone()]),
        Err(Error::Closed)
    ));

    let store = Store::open(dir.path()).unwrap();
    let events = all(&store, ReadOptions::forwards());
    assert_eq!(events.len(), 3);
    let e = &events[0];
    assert_eq!(e.event_type, "OrderPlaced");
    assert_eq!(&e.data[..], &[0u8, 1, 2, 255]);
    assert_eq!(e.tags, vec!["order:1", "customer:7"]);
    assert_eq!(&e.metadata[..], b"{\"corr\":\"x\"}");
    assert_eq!(e.id, full.id);
    assert_eq!(e.stream.as_deref(), Some("order-1"));
    assert_eq!(e.revision, Some(0));
    assert_eq!(events[1].stream, None);
    assert_eq!(events[1].revision, None);
    assert!(events[1].tags.is_empty() && events[1].data.is_empty() && events[1].id.is_none());
    assert_eq!(events[2].revision, Some(1), "revisions continue per stream");
    // Revisions survive a reopen: the next event of the stream is 2.
    store
        .append(vec![NewEvent::new("X", "").stream("order-1")])
        .unwrap();
    assert_eq!(
        all(&store, ReadOptions::backwards().limit(1))[0].revision,
        Some(2)
    );
}

#[test]
fn limits_are_checked_and_the_store_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let long = "x".repeat(MAX_NAME_LEN + 1);
    let bad: Vec<(&str, Vec<NewEvent>)> = vec![
        ("empty batch", vec![]),
        ("empty type", vec![NewEvent::new("", "d")]),
        ("long type", vec![NewEvent::new(long.clone(), "d")]),
        ("empty tag", vec![NewEvent::new("T", "d").tag("")]),
        ("long tag", vec![NewEvent::new("T", "d").tag(long.clone())]),
        (
            "too many tags",
            vec![NewEvent::new("T", "d").tags((0..=MAX_TAGS).map(|i| format!("t{i}")))],
        ),
        ("empty stream", vec![NewEvent::new("T", "d").stream("")]),
        (
            "long stream",
            vec![NewEvent::new("T", "d").stream(long.clone())],
        ),
        (
            "oversize data",
            vec![NewEvent::new("T", vec![0u8; MAX_DATA_LEN + 1])],
        ),
        (
            "oversize metadata",
            vec![NewEvent::new("T", "d").metadata(vec![0u8; MAX_DATA_LEN + 1])],
        ),
        (
            "oversize batch",
            (0..=MAX_BATCH_LEN / MAX_DATA_LEN)
                .map(|_| NewEvent::new("T", vec![0u8; MAX_DATA_LEN]))
                .collect(),
        ),
        ("bad second event", vec![ev(1), NewEvent::new("", "d")]),
    ];
    for (what, events) in bad {
        match store.append(events) {
            Err(Error::InvalidInput { reason }) => assert!(!reason.is_empty(), "{what}"),
            other => panic!("{what}: expected InvalidInput, got {other:?}"),
        }
    }
    assert_eq!(store.head(), 0, "no position was consumed");
    // The limits themselves are allowed.
    let max = "y".repeat(MAX_NAME_LEN);
    let edge = NewEvent::new(max.clone(), vec![1u8; MAX_DATA_LEN])
        .tags((0..MAX_TAGS).map(|i| format!("{i:03}{}", &max[..MAX_NAME_LEN - 3])))
        .stream(max.clone());
    assert_eq!(
        store.append(vec![edge]).unwrap(),
        Appended { first: 1, last: 1 }
    );
    assert_eq!(store.append(vec![ev(1)]).unwrap().first, 2);
    let events = all(&store, ReadOptions::forwards());
    assert_eq!(events[0].data.len(), MAX_DATA_LEN);
    assert_eq!(events[0].tags.len(), MAX_TAGS);
}

#[test]
fn a_second_open_in_this_process_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    match Store::open(dir.path()) {
        Err(Error::Locked { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    store.close().unwrap();
    Store::open(dir.path()).unwrap();
}

/// Run as a child process by the test below (ignored otherwise, since on
/// its own it has nothing to check): opens the store named in the
/// environment and prints the outcome.
#[test]
#[ignore = "child-process entry point of a_second_open_from_another_process_is_locked_out"]
fn lock_child() {
    if let Ok(dir) = std::env::var("GESTA_LOCK_CHILD_DIR") {
        match Store::open(&dir) {
            Err(Error::Locked { .. }) => println!("CHILD-LOCKED"),
            Ok(_) => println!("CHILD-OPENED"),
            Err(e) => println!("CHILD-ERROR {e}"),
        }
    }
}

#[test]
fn a_second_open_from_another_process_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let child = |dir: &std::path::Path| {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "lock_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("GESTA_LOCK_CHILD_DIR", dir)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let store = Store::open(dir.path()).unwrap();
    store.append(vec![ev(1)]).unwrap();
    let out = child(dir.path());
    assert!(out.contains("CHILD-LOCKED"), "child said: {out}");
    store.close().unwrap();
    let out = child(dir.path());
    assert!(out.contains("CHILD-OPENED"), "child said: {out}");
}

#[test]
fn concurrent_appends_get_distinct_contiguous_positions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), Options::default().segment_size(64 << 10)).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| {
                        let n = (i % 3) + 1;
                        let batch = (0..n)
                            .map(|j| NewEvent::new("T", format!("{t}/{i}/{j}")))
                            .collect();
                        (format!("{t}/{i}"), n, store.append(batch).unwrap())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut results: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    results.sort_by_key(|(_, _, a)| a.first);
    let mut next = 1;
    for (_, n, a) in &results {
        assert_eq!(a.first, next);
        assert_eq!(a.last - a.first + 1, *n as u64);
        next = a.last + 1;
    }
    let events = all(&store, ReadOptions::forwards());
    assert_eq!(events.len() as u64, next - 1);
    for (key, n, a) in &results {
        for j in 0..*n {
            let e = &events[(a.first - 1) as usize + j];
            assert_eq!(&e.data[..], format!("{key}/{j}").as_bytes());
        }
    }
}

#[test]
fn durability_modes_acknowledge_and_persist_on_close() {
    for mode in [
        Durability::Sync,
        Durability::Periodic(Duration::from_millis(5)),
        Durability::Buffered,
    ] {
        let fs = FaultFs::new();
        let options = Options::default().fs(Arc::new(fs.clone())).durability(mode);
        let store = Store::open_with("/s", options.clone()).unwrap();
        for i in 0..20 {
            store.append(vec![ev(i)]).unwrap();
        }
        store.close().unwrap();
        fs.crash(CrashMode::DropUnsynced);
        let store = Store::open_with("/s", options).unwrap();
        assert_eq!(store.head(), 20, "{mode:?}: close makes everything durable");
    }
}

#[test]
fn periodic_mode_syncs_on_its_own_and_sync_mode_never_loses_an_ack() {
    let fs = FaultFs::new();
    let periodic = Options::default()
        .fs(Arc::new(fs.clone()))
        .durability(Durability::Periodic(Duration::from_millis(20)));
    let store = Store::open_with("/p", periodic.clone()).unwrap();
    store.append(vec![ev(1)]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    fs.crash(CrashMode::DropUnsynced);
    drop(store);
    let store = Store::open_with("/p", periodic).unwrap();
    assert_eq!(store.head(), 1, "the periodic sync ran while idle");
    drop(store);

    let fs = FaultFs::new();
    let sync = Options::default().fs(Arc::new(fs.clone()));
    let store = Store::open_with("/s", sync.clone()).unwrap();
    for i in 0..10 {
        store.append(vec![ev(i)]).unwrap();
    }
    // Power loss while the store is open: nothing is closed or flushed.
    fs.crash(CrashMode::DropUnsynced);
    drop(store);
    let store = Store::open_with("/s", sync).unwrap();
    assert_eq!(
        store.head(),
        10,
        "every acknowledged append was synced before it returned"
    );
}

#[test]
fn timestamps_come_from_the_clock_and_never_go_back() {
    let fs = FaultFs::new();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let options = Options::default().fs(Arc::new(fs)).clock(clock.clone());
    let store = Store::open_with("/c", options).unwrap();
    store.append(vec![ev(1)]).unwrap();
    clock.advance(5);
    store.append(vec![ev(2)]).unwrap();
    let events = all(&store, ReadOptions::forwards());
    assert_eq!(events[0].timestamp_micros, 1_000_000);
    assert_eq!(events[1].timestamp_micros, 1_000_005);
}

#[test]
fn reads_see_only_committed_events_and_a_read_stops_at_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for i in 0..5 {
        store.append(vec![ev(i)]).unwrap();
    }
    let mut reader = store.read(&Query::all(), ReadOptions::forwards()).unwrap();
    let first = reader.next().unwrap().unwrap();
    for i in 0..5 {
        store.append(vec![ev(i)]).unwrap();
    }
    assert_eq!(first.position, 1);
    assert_eq!(reader.count(), 4, "the read captured head 5 when it began");
    assert_eq!(
        store
            .read(&Query::all(), ReadOptions::forwards())
            .unwrap()
            .count(),
        10
    );
}

/// A path that is not a directory, or a directory holding what a store
/// never holds, is refused with a message that says so, and left as it
/// was; a missing or empty directory becomes a store, and a store's own
/// directory reopens.
#[test]
fn open_refuses_what_is_not_a_store_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("events.jsonl");
    std::fs::write(&file, "{}\n").unwrap();
    match Store::open(&file) {
        Err(Error::InvalidInput { reason }) => {
            assert_eq!(reason, format!("{} is not a directory", file.display()))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"{}\n");

    let home = tmp.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(home.join("notes.txt"), "mine").unwrap();
    std::fs::create_dir(home.join("wal")).unwrap();
    match Store::open(&home) {
        Err(Error::InvalidInput { reason }) => assert_eq!(
            reason,
            format!(
                "{} is not a Gesta store: it holds \"notes.txt\", which a store never does; give a new or empty directory",
                home.display()
            )
        ),
        other => panic!("{other:?}"),
    }
    let mut left: Vec<_> = std::fs::read_dir(&home)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["notes.txt", "wal"], "the directory was touched");

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let new = tmp.path().join("new");
    for dir in [&empty, &new] {
        let store = Store::open(dir).unwrap();
        store.append(vec![ev(1)]).unwrap();
        store.compact().unwrap();
        store.save_snapshot("k", 1, b"state").unwrap();
        drop(store);
        let store = Store::open(dir).unwrap();
        assert_eq!(store.head(), 1);
    }
}

/// Every event's stream revision, read back by id in batches large enough
/// for their heads to be kept, is right whether the read walks the batch's
/// revision entries or finds it in the table built once the walks have cost
/// as much: lone lookups forwards, backwards and scattered, events without
/// a stream among them, revisions and indexes of one and two bytes.
#[test]
fn revisions_read_by_id_are_right_before_and_after_their_tables_are_built() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (batches, per_batch) = (6u64, 300u64);
    let mut expected = Vec::new();
    let mut next = std::collections::HashMap::new();
    for b in 0..batches {
        let mut batch = Vec::new();
        for i in b * per_batch..(b + 1) * per_batch {
            let e = NewEvent::new("T", format!("data {i}")).id(u128::from(i) + 1);
            if i % 7 == 3 {
                expected.push((i + 1, None, None));
                batch.push(e);
            } else {
                let stream = format!("s{}", i % 4);
                let revision = next.entry(stream.clone()).or_insert(0u64);
                expected.push((i + 1, Some(stream.clone()), Some(*revision)));
                *revision += 1;
                batch.push(e.stream(stream));
            }
        }
        store.append(batch).unwrap();
    }
    by_id_in_three_orders(&store, &expected);
    // Again on the kept heads and built tables, and after a reopen (none).
    by_id_in_three_orders(&store, &expected);
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    by_id_in_three_orders(&store, &expected);
    for s in 0..4 {
        let name = format!("s{s}");
        let mut revisions = Vec::new();
        store
            .read_stream_each(&name, ReadOptions::forwards(), &mut |e| {
                revisions.push(e.revision);
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
        let want: Vec<_> = expected
            .iter()
            .filter(|e| e.1.as_deref() == Some(name.as_str()))
            .map(|e| e.2)
            .collect();
        assert_eq!(revisions, want, "stream {name}");
    }
}

/// Looks up every event of `expected` (position, stream, revision) by its
/// id, which is its position, forwards, backwards and scattered.
fn by_id_in_three_orders(store: &Store, expected: &[(u64, Option<String>, Option<u64>)]) {
    let n = expected.len();
    let check = |k: usize| {
        let (position, stream, revision) = &expected[k];
        let mut got = None;
        let found = store
            .event_by_id_with(u128::from(*position), &mut |e| {
                got = Some((e.position, e.stream.map(str::to_owned), e.revision));
            })
            .unwrap();
        assert!(found, "event {position}");
        assert_eq!(
            got,
            Some((*position, stream.clone(), *revision)),
            "event {position}"
        );
    };
    (0..n).for_each(check);
    (0..n).rev().for_each(check);
    (0..n).map(|k| k * 37 % n).for_each(check);
}
