//! A store written by a build whose segment format was version 2 (the
//! fixture in `tests/fixtures/store-v2`: 80 events in 40 batches, ids,
//! tags, streams, metadata, an index run) opens, reads and queries as it
//! did, takes new events — names over 255 bytes included — into a segment
//! of this build's format, and compresses. Its index run is of index format
//! version 1 (ids in the key directory): it answers lookups by id as it
//! did, and compaction rewrites it in version 2 (ids in their section).

use std::path::Path;

use gesta::{Compression, NewEvent, Options, Query, ReadOptions, RecordedEvent, Store};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn fixture() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/store-v2");
    copy_dir(&from, tmp.path());
    tmp
}

fn all(store: &Store) -> Vec<RecordedEvent> {
    store
        .read(&Query::all(), ReadOptions::forwards())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The format version of every index run in `dir`.
fn run_versions(dir: &Path) -> Vec<u32> {
    std::fs::read_dir(dir.join("index"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "idx"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            u32::from_le_bytes(bytes[8..12].try_into().unwrap())
        })
        .collect()
}

/// Every id of the fixture is found at its event's position.
fn check_fixture_ids(store: &Store) {
    for i in 0..40u64 {
        let found = store.event_by_id(1000 + u128::from(i)).unwrap();
        assert_eq!(
            found.map(|e| e.position),
            Some(2 * i + 1),
            "id {}",
            1000 + i
        );
    }
    assert_eq!(store.event_by_id(999).unwrap(), None);
    assert_eq!(store.event_by_id(1040).unwrap(), None);
}

fn segment_versions(dir: &Path) -> Vec<(String, u32)> {
    let mut out: Vec<(String, u32)> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                version,
            )
        })
        .collect();
    out.sort();
    out
}

/// What the fixture's writer appended: batch `i` is the event below, then
/// a second one, `Batch`.
fn check_fixture_events(events: &[RecordedEvent]) {
    assert_eq!(events.len(), 80);
    for (i, pair) in events.chunks(2).enumerate() {
        let i = i as u64;
        let e = &pair[0];
        assert_eq!(e.position, 2 * i + 1);
        let want_type = if i.is_multiple_of(2) {
            "Opened"
        } else {
            "Moved"
        };
        assert_eq!(e.event_type, want_type);
        assert_eq!(&e.data[..], format!("{{\"i\":{i}}}").as_bytes());
        assert_eq!(e.tags, vec![format!("account:{}", i % 5)]);
        assert_eq!(e.id, Some(1000 + u128::from(i)));
        if i.is_multiple_of(3) {
            assert_eq!(e.stream.as_deref(), Some(format!("s{}", i % 4).as_str()));
            assert_eq!(&e.metadata[..], b"m");
        } else {
            assert_eq!(e.stream, None);
        }
        assert_eq!(pair[1].event_type, "Batch");
        assert_eq!(pair[1].tags, vec!["batch:1".to_owned()]);
    }
}

#[test]
fn a_version_2_store_reads_and_takes_new_events_in_version_3_segments() {
    let tmp = fixture();
    let dir = tmp.path();
    let before = segment_versions(dir);
    assert!(
        before.iter().all(|(_, v)| *v == 2),
        "the fixture is a version 2 store: {before:?}"
    );
    assert_eq!(run_versions(dir), vec![1], "its index run is of version 1");
    let options = || Options::default().segment_size(4096).preallocate(512);
    let store = Store::open_with(dir, options()).unwrap();
    check_fixture_events(&all(&store));
    let by_tag: Vec<u64> = store
        .read(&Query::tag("account:3"), ReadOptions::forwards())
        .unwrap()
        .map(|e| e.unwrap().position)
        .collect();
    assert_eq!(
        by_tag,
        (0..40u64)
            .filter(|i| i % 5 == 3)
            .map(|i| 2 * i + 1)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        store.event_by_id(1007).unwrap().map(|e| e.position),
        Some(15)
    );
    check_fixture_ids(&store);

    // New events, one of them wide, go to a new segment of this format.
    let long = "l".repeat(600);
    let appended = store
        .append(vec![
            NewEvent::new(long.as_str(), "wide")
                .tag(long.as_str())
                .stream(long.as_str()),
            NewEvent::new("After", "narrow").tag("account:3"),
        ])
        .unwrap();
    assert_eq!((appended.first, appended.last), (81, 82));
    store.close().unwrap();
    drop(store);
    let after = segment_versions(dir);
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "old segments untouched"
    );
    assert_eq!(after.last().map(|(_, v)| *v), Some(3), "{after:?}");

    // Reopened and compressed, everything reads back.
    let store = Store::open_with(dir, options().compression(Some(Compression::default()))).unwrap();
    store.compact().unwrap();
    let events = all(&store);
    check_fixture_events(&events[..80]);
    assert_eq!(events[80].event_type, long);
    assert_eq!(events[80].tags, vec![long.clone()]);
    assert_eq!(events[80].stream.as_deref(), Some(long.as_str()));
    assert_eq!(events[81].event_type, "After");
    let hits: Vec<u64> = store
        .read(&Query::tag(long.clone()), ReadOptions::forwards())
        .unwrap()
        .map(|e| e.unwrap().position)
        .collect();
    assert_eq!(hits, vec![81]);
    assert_eq!(store.stream_revision(&long).unwrap(), Some(0));
    // The index is one run of version 2 now, and finds every id.
    assert_eq!(run_versions(dir), vec![2]);
    check_fixture_ids(&store);
    store.close().unwrap();
    drop(store);
    let store = Store::open_with(dir, options()).unwrap();
    check_fixture_ids(&store);
}
