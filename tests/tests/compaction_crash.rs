//! Crash safety of compaction: a store with several index runs and an
//! unflushed memtable is compacted (a flush, then a merge of every run),
//! and the machine goes down after each one of that compaction's mutating
//! operations in turn — dropping unsynced state, or tearing it. After each
//! crash the store must open, hold every acknowledged event, answer every
//! query exactly as a scan of the log does, keep no file in `index/` that
//! its MANIFEST does not list, and compact and reopen cleanly again.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use gesta::io::FileSystem;
use gesta::io::fault::{CrashMode, FaultFs};
use gesta::{NewEvent, Options, Query, ReadOptions, RecordedEvent, Store};

const DIR: &str = "/store";

fn options(fault: &FaultFs) -> Options {
    let mut o = Options::default()
        .fs(Arc::new(fault.clone()))
        .segment_size(16 << 10)
        .preallocate(4 << 10)
        // No background merges, so that every operation of the compaction
        // happens in the order `compact` issues it, the same in every run.
        .merge_fan_in(0);
    o.memtable_postings = 1 << 20;
    o.close_flush_postings = 1;
    o.merge_bytes_per_sec = None;
    o
}

/// The events the setup appends: 60 batches, tags and types varied.
fn batches() -> Vec<Vec<NewEvent>> {
    (0..60u64)
        .map(|b| {
            (0..1 + b % 3)
                .map(|i| {
                    NewEvent::new(["A", "B", "C"][((b + i) % 3) as usize], format!("{b}/{i}"))
                        .tag(format!("t{}", (b * 7 + i) % 11))
                        .tag(format!("u{}", b % 4))
                })
                .collect()
        })
        .collect()
}

/// A store with three runs and a memtable of unflushed events, every
/// append acknowledged (and so durable: `Sync` mode).
fn setup(fault: &FaultFs) -> (Store, Vec<(u64, String)>) {
    let store = Store::open_with(DIR, options(fault)).expect("open");
    let mut acked = Vec::new();
    for (b, events) in batches().into_iter().enumerate() {
        let data: Vec<String> = (0..events.len()).map(|i| format!("{b}/{i}")).collect();
        let appended = store.append(events).expect("append");
        for (i, d) in data.into_iter().enumerate() {
            acked.push((appended.first + i as u64, d));
        }
        if b % 15 == 14 && b < 50 {
            store.flush_index().expect("flush");
        }
    }
    assert_eq!(
        store.index_shape(),
        gesta::IndexShape { runs: 3, frozen: 0 }
    );
    (store, acked)
}

fn scan(store: &Store) -> Vec<RecordedEvent> {
    store
        .read(&Query::all(), ReadOptions::forwards())
        .unwrap()
        .collect::<Result<_, _>>()
        .expect("scan")
}

fn check(store: &Store, fault: &FaultFs, acked: &[(u64, String)], what: &str) {
    let events = scan(store);
    let got: Vec<(u64, String)> = events
        .iter()
        .map(|e| (e.position, String::from_utf8_lossy(&e.data).into_owned()))
        .collect();
    assert_eq!(
        got, acked,
        "{what}: the log differs from what was acknowledged"
    );
    let mut lists = BTreeMap::<(bool, String), Vec<u64>>::new();
    for e in &events {
        lists
            .entry((true, e.event_type.clone()))
            .or_default()
            .push(e.position);
        for t in &e.tags {
            lists
                .entry((false, t.clone()))
                .or_default()
                .push(e.position);
        }
    }
    for ((is_type, name), expected) in &lists {
        let query = if *is_type {
            Query::event_type(name.clone())
        } else {
            Query::tag(name.clone())
        };
        let query = &query;
        for options in [ReadOptions::forwards(), ReadOptions::backwards()] {
            let mut got: Vec<u64> = store
                .read(query, options)
                .unwrap()
                .map(|e| e.expect("read").position)
                .collect();
            if options == ReadOptions::backwards() {
                got.reverse();
            }
            assert_eq!(&got, expected, "{what}: {query:?} {options:?}");
        }
    }
    let mut files = fault
        .list(&Path::new(DIR).join("index"))
        .unwrap_or_default();
    files.sort();
    assert_eq!(
        files.len(),
        store.index_shape().runs,
        "{what}: index/ holds files the MANIFEST does not list: {files:?}"
    );
    assert!(
        !fault
            .exists(&Path::new(DIR).join("MANIFEST.tmp"))
            .expect("exists"),
        "{what}: MANIFEST.tmp left behind"
    );
}

#[test]
fn a_crash_at_every_operation_of_a_compaction_loses_nothing() {
    // A clean run counts the compaction's operations.
    let fault = FaultFs::new();
    let (store, acked) = setup(&fault);
    let before = fault.mutating_ops();
    store.compact().expect("compact");
    let ops = fault.mutating_ops() - before;
    assert_eq!(
        store.index_shape(),
        gesta::IndexShape { runs: 1, frozen: 0 }
    );
    check(&store, &fault, &acked, "clean compaction");
    drop(store);
    assert!(
        ops >= 15,
        "a flush and a merge take more than {ops} operations"
    );

    let mut crashed = 0;
    for n in 0..=ops {
        for mode in [
            CrashMode::DropUnsynced,
            CrashMode::Torn { seed: n * 31 + 7 },
        ] {
            let what = format!("crash after {n} of {ops} operations ({mode:?})");
            let fault = FaultFs::new();
            let (store, acked) = setup(&fault);
            fault.crash_after(n);
            // Past the MANIFEST switch, compact succeeds even if the machine
            // dies while it deletes the replaced runs: they are orphans the
            // next open removes.
            let _ = store.compact();
            crashed += usize::from(fault.is_down());
            drop(store);
            fault.crash(mode);
            let store = Store::open_with(DIR, options(&fault))
                .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
            check(&store, &fault, &acked, &what);
            store
                .compact()
                .unwrap_or_else(|e| panic!("{what}: compact after recovery: {e}"));
            assert_eq!(
                store.index_shape(),
                gesta::IndexShape { runs: 1, frozen: 0 },
                "{what}"
            );
            check(&store, &fault, &acked, &what);
            store.close().expect("close");
            drop(store);
            let store = Store::open_with(DIR, options(&fault)).expect("second reopen");
            check(&store, &fault, &acked, &what);
        }
    }
    assert!(crashed as u64 >= 2 * ops, "only {crashed} runs crashed");
}
