//! The engine's snapshot files: retention off, a closed store;
//! corruption reported naming the file; a crash at any operation of a
//! snapshot write leaves the old snapshots or the new one, whole, and no
//! temporary file after the next open. (Save, load, list, delete and
//! retention are conformance cases, run on every store.)

use std::path::Path;
use std::sync::Arc;

use gesta::io::FileSystem;
use gesta::io::fault::{CrashMode, FaultFs};
use gesta::{Error, NewEvent, Options, Store};

const DIR: &str = "/store";

fn options(fault: &FaultFs, kept: usize) -> Options {
    let mut o = Options::default().fs(Arc::new(fault.clone()));
    o.snapshots_kept = kept;
    o
}

fn store_with_events(fault: &FaultFs, kept: usize, events: usize) -> Store {
    let store = Store::open_with(DIR, options(fault, kept)).expect("open");
    for i in 0..events {
        store
            .append(vec![NewEvent::new("E", format!("{i}"))])
            .expect("append");
    }
    store
}

fn state(position: u64) -> Vec<u8> {
    format!("state at {position}: ").repeat(50).into_bytes()
}

/// What the conformance suite does not cover (its cases in
/// `gesta_tests::conformance::state` run on the engine too): a retention
/// of 0 keeps every snapshot, across a reopen, and a closed store refuses
/// snapshot calls.
#[test]
fn keeping_all_and_a_closed_store() {
    let fault = FaultFs::new();
    let store = store_with_events(&fault, 0, 100);
    for p in (1..=10).rev() {
        store
            .save_snapshot("acct", p * 10, &state(p))
            .expect("save");
    }
    let all: Vec<u64> = (1..=10).map(|p| p * 10).collect();
    assert_eq!(store.list_snapshots("acct").expect("list"), all);
    store.close().expect("close");
    for result in [
        store.list_snapshots("acct").map(drop),
        store.load_snapshot("acct", 10).map(drop),
        store.save_snapshot("acct", 10, b"x"),
        store.delete_snapshot("acct", 10).map(drop),
    ] {
        assert!(matches!(result, Err(Error::Closed)), "{result:?}");
    }
    drop(store);
    let store = Store::open_with(DIR, options(&fault, 0)).expect("reopen");
    assert_eq!(store.list_snapshots("acct").expect("list"), all);
    assert_eq!(
        store
            .load_snapshot("acct", 55)
            .expect("load")
            .map(|s| (s.position, s.state)),
        Some((50, state(5)))
    );
}

#[test]
fn a_damaged_snapshot_is_corruption_naming_the_file() {
    let fault = FaultFs::new();
    let store = store_with_events(&fault, 0, 10);
    store.save_snapshot("acct", 4, &state(4)).expect("save");
    store.save_snapshot("acct", 8, &state(8)).expect("save");
    // "acct" in hex names the key's directory.
    let path = Path::new(DIR).join("snapshots/61636374/00000000000000000008.snap");
    assert!(fault.exists(&path).expect("exists"));
    let len = fault.durable_contents(&path).expect("the file").len() as u64;
    for offset in [0, 17, 30, len / 2, len - 1] {
        fault.corrupt(&path, offset, 0x10);
        match store.load_snapshot("acct", 9) {
            Err(Error::Corruption { file, .. }) => assert_eq!(file, path),
            other => panic!("offset {offset}: {other:?}"),
        }
        fault.corrupt(&path, offset, 0x10);
        assert_eq!(
            store
                .load_snapshot("acct", 9)
                .expect("load")
                .map(|s| s.position),
            Some(8)
        );
    }
    // The older snapshot is still readable on its own.
    fault.corrupt(&path, 3, 1);
    assert_eq!(
        store
            .load_snapshot("acct", 7)
            .expect("load")
            .map(|s| s.state),
        Some(state(4))
    );
}

#[test]
fn a_crash_at_every_operation_of_a_snapshot_write_leaves_old_or_new() {
    let setup = |fault: &FaultFs| {
        let store = store_with_events(fault, 2, 30);
        store.save_snapshot("acct", 10, &state(10)).expect("save");
        store.save_snapshot("acct", 20, &state(20)).expect("save");
        store
    };
    let fault = FaultFs::new();
    let store = setup(&fault);
    let before = fault.mutating_ops();
    store.save_snapshot("acct", 30, &state(30)).expect("save");
    let ops = fault.mutating_ops() - before;
    assert_eq!(store.list_snapshots("acct").expect("list"), vec![20, 30]);
    drop(store);
    assert!(ops >= 5, "{ops}");

    for n in 0..=ops {
        for mode in [CrashMode::DropUnsynced, CrashMode::Torn { seed: n }] {
            let what = format!("crash after {n} of {ops} ({mode:?})");
            let fault = FaultFs::new();
            let store = setup(&fault);
            fault.crash_after(n);
            let _ = store.save_snapshot("acct", 30, &state(30));
            drop(store);
            fault.crash(mode);
            let store = Store::open_with(DIR, options(&fault, 2)).expect("reopen");
            let listed = store.list_snapshots("acct").expect("list");
            assert!(
                [vec![10, 20], vec![10, 20, 30], vec![20, 30]].contains(&listed),
                "{what}: {listed:?}"
            );
            for p in &listed {
                let s = store
                    .load_snapshot("acct", *p)
                    .unwrap_or_else(|e| panic!("{what}: {e}"))
                    .expect("listed");
                assert_eq!((s.position, s.state), (*p, state(*p)), "{what}");
            }
            let files = fault
                .list(&Path::new(DIR).join("snapshots/61636374"))
                .expect("list");
            assert!(
                files.iter().all(|f| f.ends_with(".snap")),
                "{what}: {files:?}"
            );
            // And the store goes on saving.
            store
                .save_snapshot("acct", 30, &state(30))
                .expect("save again");
            assert_eq!(store.list_snapshots("acct").expect("list"), vec![20, 30]);
        }
    }
}

/// In `Buffered` mode, a snapshot is never more durable than the events it
/// covers: saving one (by hand, or by the projector) makes the log durable
/// up to the head first. A power loss right after leaves the events with
/// it, so no new event can take their positions and be skipped by a fold
/// that starts from the snapshot.
#[test]
fn a_snapshot_is_never_more_durable_than_the_events_it_covers() {
    use gesta::{Durability, Projection, Query, RecordedEvent};
    use std::time::{Duration, Instant};
    let buffered = |fault: &FaultFs| {
        Options::default()
            .fs(Arc::new(fault.clone()))
            .durability(Durability::Buffered)
            .projection_interval(Duration::from_millis(5))
    };
    let deposit = |store: &Store, amount: u64| {
        store
            .append(vec![
                NewEvent::new("Deposited", amount.to_string()).tag("acct"),
            ])
            .unwrap();
    };
    // By hand.
    let fault = FaultFs::new();
    let store = Store::open_with(DIR, buffered(&fault)).unwrap();
    for _ in 0..5 {
        deposit(&store, 100);
    }
    store.save_snapshot("sum", 5, b"500").unwrap();
    fault.crash_after(0);
    drop(store);
    fault.crash(CrashMode::DropUnsynced);
    let store = Store::open_with(DIR, buffered(&fault)).unwrap();
    assert_eq!(store.head(), 5, "the events the snapshot covers are lost");
    drop(store);
    // By the projector.
    let sum = || {
        Projection::new(
            "sum",
            1,
            Query::tag("acct"),
            0u64,
            |s: &mut u64, e: &RecordedEvent| {
                *s += std::str::from_utf8(&e.data)
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            },
            |s: &u64| s.to_le_bytes().to_vec(),
            |b: &[u8]| Some(u64::from_le_bytes(b.try_into().ok()?)),
        )
        .snapshot_every(1)
    };
    let fault = FaultFs::new();
    let store = Store::open_with(DIR, buffered(&fault)).unwrap();
    store.register_projection(sum()).unwrap();
    for _ in 0..5 {
        deposit(&store, 100);
    }
    let started = Instant::now();
    while store.list_snapshots("projection:sum:v1").unwrap() != vec![5] {
        assert!(started.elapsed() < Duration::from_secs(10), "no snapshot");
        std::thread::sleep(Duration::from_millis(5));
    }
    fault.crash_after(0);
    drop(store);
    fault.crash(CrashMode::DropUnsynced);
    let store = Store::open_with(DIR, buffered(&fault)).unwrap();
    assert_eq!(store.head(), 5, "the events the snapshot covers are lost");
    store.register_projection(sum()).unwrap();
    deposit(&store, 1);
    assert_eq!(store.project::<u64>("sum").unwrap(), 501);
}
