//! Answers that must agree with reads made after them, while a writer
//! commits: the committer makes a commit's postings visible before it
//! publishes the commit's head, and an answer counted from the postings
//! alone (a stream's revision, a source's tracking position) ran ahead of
//! every read. A caller that takes a stream's revision, folds the stream
//! and appends with that expected revision would then miss the last event
//! and still pass the check.

use std::sync::Arc;

use gesta::{AppendOptions, NewEvent, Options, Query, Store};

/// A store whose memtable takes every posting (no flush mid-test), and a
/// writer appending `batches` commits of one `first` event and 1,000 more
/// with eight tags each (a long stretch of postings to insert).
fn racing(
    batches: u64,
    first: impl Fn(u64) -> (NewEvent, AppendOptions) + Send + 'static,
) -> (Arc<Store>, std::thread::JoinHandle<()>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        memtable_postings: 1 << 30,
        ..Options::default()
    };
    let store = Arc::new(Store::open_with(dir.path(), options).unwrap());
    let writer =
        {
            let store = store.clone();
            std::thread::spawn(move || {
                for n in 1..=batches {
                    let (event, options) = first(n);
                    let mut batch = vec![event];
                    batch.extend((0..1_000).map(|i| {
                        NewEvent::new("T", "").tags((0..8).map(|j| format!("t{n}-{i}-{j}")))
                    }));
                    store.append_with(batch, options).unwrap();
                }
            })
        };
    (store, writer, dir)
}

#[test]
fn a_streams_revision_is_never_ahead_of_its_events() {
    let (store, writer, _dir) = racing(60, |_| {
        (
            NewEvent::new("S", "x").stream("s"),
            AppendOptions::default(),
        )
    });
    let (mut ahead, mut tries) = (0, 0);
    while !writer.is_finished() {
        tries += 1;
        let revision = store.stream_revision("s").unwrap();
        let last = store
            .read_stream_last("s")
            .unwrap()
            .and_then(|e| e.revision);
        if revision > last {
            ahead += 1;
        }
    }
    writer.join().unwrap();
    assert_eq!(
        ahead, 0,
        "{ahead} of {tries} revisions were ahead of the stream's last event"
    );
}

#[test]
fn a_sources_tracking_position_is_never_ahead_of_its_events() {
    let (store, writer, _dir) = racing(60, |n| {
        (
            NewEvent::new("U", n.to_string()),
            AppendOptions::default().track("up", n),
        )
    });
    let (mut ahead, mut tries) = (0, 0);
    while !writer.is_finished() {
        tries += 1;
        let Some(tracked) = store.tracking_info("up").unwrap() else {
            continue;
        };
        let newest = store
            .read_last(&Query::event_type("U"))
            .unwrap()
            .map(|e| String::from_utf8_lossy(&e.data).parse::<u64>().unwrap());
        if newest < Some(tracked) {
            ahead += 1;
        }
    }
    writer.join().unwrap();
    assert_eq!(
        ahead, 0,
        "{ahead} of {tries} tracking positions were ahead of their events"
    );
}
