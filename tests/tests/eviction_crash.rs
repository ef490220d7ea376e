//! Crash safety of eviction: every sealed segment of a store is evicted,
//! and the machine goes down after each one of those evictions' mutating
//! operations in turn — dropping unsynced state, or tearing it. After
//! each crash the store must open (with its remote), hold every
//! acknowledged event and answer every query as before, each sealed
//! segment exactly once (its file or its marker, no leftover), evict
//! again and reopen cleanly. A store that still holds a marker refuses to
//! open without the remote, naming it.
//!
//! The remote is an in-memory copy of the segments here, as the file
//! system is in memory; gesta-tier's tests run eviction against an S3
//! server.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use gesta::io::FileSystem;
use gesta::io::fault::{CrashMode, FaultFs};
use gesta::{
    Error, EvictedSegment, NewEvent, Options, Query, ReadOptions, RecordedEvent, RemoteSegments,
    Store,
};

const DIR: &str = "/store";

/// The segments' bytes, by first position: what a bucket would hold.
#[derive(Debug, Default)]
struct Copies(HashMap<u64, Bytes>);

impl RemoteSegments for Copies {
    fn read(&self, segment: &EvictedSegment, start: u64, end: u64) -> std::io::Result<Bytes> {
        let bytes = self
            .0
            .get(&segment.first_position)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no copy"))?;
        Ok(bytes.slice(start as usize..end as usize))
    }
}

fn options(fault: &FaultFs, remote: Option<Arc<Copies>>) -> Options {
    let mut o = Options::default()
        .fs(Arc::new(fault.clone()))
        .segment_size(16 << 10)
        .preallocate(4 << 10)
        .merge_fan_in(0);
    o.memtable_postings = 1 << 20;
    o.close_flush_postings = 1;
    if let Some(r) = remote {
        o = o.remote_segments(r);
    }
    o
}

/// A store of 60 batches in several sealed segments, its index flushed
/// halfway (so an open replays the later segments from the remote), the
/// active segment sealed; the copies of its sealed segments.
fn setup(fault: &FaultFs) -> (Store, Arc<Copies>, Vec<RecordedEvent>) {
    // The copies are those of the first, clean run: the same appends give
    // the same bytes but for commit times, so each run takes its own.
    let store = Store::open_with(DIR, options(fault, None)).expect("open");
    for b in 0..60u64 {
        let events = (0..1 + b % 3)
            .map(|i| {
                NewEvent::new(
                    ["A", "B", "C"][((b + i) % 3) as usize],
                    format!("{b}/{i} {}", "x".repeat(300)),
                )
                .tag(format!("t{}", (b * 7 + i) % 11))
            })
            .collect();
        store.append(events).expect("append");
        if b == 30 {
            store.flush_index().expect("flush");
        }
    }
    store.seal_active_segment().expect("seal");
    let mut copies = Copies::default();
    for s in store.sealed_segments() {
        let bytes = fault.durable_contents(&s.path).expect("a sealed segment");
        copies.0.insert(s.first_position, Bytes::from(bytes));
    }
    let events = scan(&store);
    store.close().expect("close");
    drop(store);
    let copies = Arc::new(copies);
    let store = Store::open_with(DIR, options(fault, Some(copies.clone()))).expect("reopen");
    (store, copies, events)
}

fn scan(store: &Store) -> Vec<RecordedEvent> {
    store
        .read(&Query::all(), ReadOptions::forwards())
        .unwrap()
        .collect::<Result<_, _>>()
        .expect("scan")
}

fn evict_all(store: &Store, copies: &Copies) -> gesta::Result<usize> {
    let mut n = 0;
    for s in store.sealed_segments() {
        let copy = copies.0.get(&s.first_position).cloned();
        let mut held = |b: &[u8]| copy.as_deref() == Some(b);
        if store.evict_segment(s.first_position, &mut held)?.is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

fn check(store: &Store, fault: &FaultFs, expected: &[RecordedEvent], what: &str) {
    assert!(scan(store) == expected, "{what}: the log differs");
    for t in 0..11 {
        let tag = format!("t{t}");
        let want: Vec<u64> = expected
            .iter()
            .filter(|e| e.tags.contains(&tag))
            .map(|e| e.position)
            .collect();
        let got: Vec<u64> = store
            .read(&Query::tag(tag.clone()), ReadOptions::forwards())
            .unwrap()
            .map(|e| e.expect("read").position)
            .collect();
        assert_eq!(got, want, "{what}: {tag}");
    }
    let names = fault.list(&Path::new(DIR).join("wal")).expect("list");
    assert!(
        !names.iter().any(|n| n.ends_with(".tmp")),
        "{what}: a temporary file is left: {names:?}"
    );
    for s in store.sealed_segments() {
        let seg = names.contains(&format!("{:020}.seg", s.first_position));
        let marker = names.contains(&format!("{:020}.evicted", s.first_position));
        assert!(
            seg != marker,
            "{what}: segment {} {names:?}",
            s.first_position
        );
        assert_eq!(marker, s.evicted, "{what}");
    }
}

#[test]
fn a_crash_at_every_operation_of_an_eviction_loses_nothing() {
    let fault = FaultFs::new();
    let (store, copies, expected) = setup(&fault);
    let sealed = store.sealed_segments().len();
    assert!(sealed >= 3, "{sealed} sealed segments");
    let before = fault.mutating_ops();
    assert_eq!(evict_all(&store, &copies).expect("evict"), sealed);
    let ops = fault.mutating_ops() - before;
    check(&store, &fault, &expected, "clean eviction");
    drop(store);
    assert!(ops >= 4 * sealed as u64, "{ops} operations");

    for n in 0..=ops {
        for mode in [
            CrashMode::DropUnsynced,
            CrashMode::Torn { seed: n * 31 + 7 },
        ] {
            let what = format!("crash after {n} of {ops} operations ({mode:?})");
            let fault = FaultFs::new();
            let (store, copies, expected) = setup(&fault);
            fault.crash_after(n);
            let _ = evict_all(&store, &copies);
            drop(store);
            fault.crash(mode);
            // A marker beside its segment file is the leftover of an
            // eviction cut short: the file wins, the marker goes.
            let names = fault.list(&Path::new(DIR).join("wal")).expect("list");
            let markers = names
                .iter()
                .filter_map(|n| n.strip_suffix(".evicted"))
                .filter(|first| !names.contains(&format!("{first}.seg")))
                .count();
            match Store::open_with(DIR, options(&fault, None)) {
                Ok(store) => {
                    assert_eq!(markers, 0, "{what}: opened with markers");
                    store.close().expect("close");
                }
                Err(Error::Evicted { .. }) => assert!(markers > 0, "{what}"),
                Err(e) => panic!("{what}: open without the remote: {e}"),
            }
            let store = Store::open_with(DIR, options(&fault, Some(copies.clone())))
                .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
            check(&store, &fault, &expected, &what);
            evict_all(&store, &copies)
                .unwrap_or_else(|e| panic!("{what}: evict after recovery: {e}"));
            assert!(store.sealed_segments().iter().all(|s| s.evicted), "{what}");
            check(&store, &fault, &expected, &what);
            store.close().expect("close");
            drop(store);
            let store = Store::open_with(DIR, options(&fault, Some(copies)))
                .unwrap_or_else(|e| panic!("{what}: second reopen: {e}"));
            check(&store, &fault, &expected, &what);
        }
    }
}
