//! Tracking info: committed with the events, refused when not after the
//! stored position, kept across reopen and index flushes.

use gesta::{AppendOptions, Error, NewEvent, Query, ReadOptions, Store};

fn ev(t: &str) -> NewEvent {
    NewEvent::new(t, "{}").tag("t:1")
}

fn track(source: &str, position: u64) -> AppendOptions {
    AppendOptions::new().track(source, position)
}

#[test]
fn tracking_positions_must_grow_per_source() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.tracking_info("projection").unwrap(), None);
    let a = store
        .append_with(vec![ev("A"), ev("B")], track("projection", 5))
        .unwrap();
    assert_eq!(a.last, 2);
    assert_eq!(store.tracking_info("projection").unwrap(), Some(5));
    for stale in [5, 4, 0] {
        match store.append_with(vec![ev("C")], track("projection", stale)) {
            Err(Error::TrackingConflict {
                source_name,
                position,
                stored,
            }) => {
                assert_eq!(
                    (source_name.as_str(), position, stored),
                    ("projection", stale, 5)
                );
            }
            other => panic!("expected a tracking conflict, got {other:?}"),
        }
    }
    assert_eq!(store.head(), 2, "a refused append appends nothing");
    // Other sources are independent; untracked appends leave it alone.
    store.append_with(vec![ev("D")], track("other", 1)).unwrap();
    store.append(vec![ev("E")]).unwrap();
    store
        .append_with(vec![ev("F")], track("projection", 6))
        .unwrap();
    assert_eq!(store.tracking_info("projection").unwrap(), Some(6));
    assert_eq!(store.tracking_info("other").unwrap(), Some(1));
    assert!(matches!(
        store.tracking_info(""),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        store.append_with(vec![ev("G")], track("", 1)),
        Err(Error::InvalidInput { .. })
    ));
}

#[test]
fn tracking_info_survives_reopen_and_index_flushes_and_events_read_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let streamed = vec![ev("A").stream("s-1"), ev("B"), ev("C").stream("s-1")];
        store.append_with(streamed, track("p", 10)).unwrap();
        store.flush_index().unwrap();
        store.append_with(vec![ev("D")], track("p", 11)).unwrap();
        store.append_with(vec![ev("E")], track("q", 3)).unwrap();
        store.close().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.tracking_info("p").unwrap(), Some(11));
    assert_eq!(store.tracking_info("q").unwrap(), Some(3));
    assert!(matches!(
        store.append_with(vec![ev("F")], track("p", 11)),
        Err(Error::TrackingConflict { .. })
    ));
    let events: Vec<_> = store
        .read(&Query::all(), ReadOptions::forwards())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["A", "B", "C", "D", "E"]);
    assert_eq!(events[2].revision, Some(1));
    assert_eq!(store.stream_revision("s-1").unwrap(), Some(1));
}

#[test]
fn concurrent_appends_with_the_same_tracking_position_commit_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || store.append_with(vec![ev("X")], track("p", 1)))
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(store.head(), 1);
}

#[test]
fn an_idempotent_retry_with_tracking_returns_the_earlier_positions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let batch = || vec![ev("A").id(7), ev("B").id(8)];
    let first = store.append_with(batch(), track("p", 1)).unwrap();
    let again = store.append_with(batch(), track("p", 1)).unwrap();
    assert_eq!(first, again);
    assert_eq!(store.head(), 2);
}
