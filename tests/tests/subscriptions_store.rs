//! Subscriptions on Gesta's engine: the subscription cases of the
//! conformance suite on disk and on the in-memory file system, then what
//! only the engine has — durable cursors across reopen and crash, the
//! async forms under tokio, and closing.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gesta::io::fault::{CrashMode, FaultFs};
use gesta::{AppendOptions, Durability, Error, NewEvent, Options, Query, Store};
use gesta_tests::store_harness::StoreHarness;

mod on_disk {
    gesta_tests::subscription_tests!(gesta_tests::store_harness::StoreHarness::on_disk());
    gesta_tests::durable_subscription_tests!(gesta_tests::store_harness::StoreHarness::on_disk());
}

mod in_memory_fs {
    gesta_tests::subscription_tests!(gesta_tests::store_harness::StoreHarness::in_memory());
    gesta_tests::durable_subscription_tests!(gesta_tests::store_harness::StoreHarness::in_memory());
}

fn ev(t: &str, label: &str) -> NewEvent {
    NewEvent::new(t, label.to_owned()).tag("t")
}

fn positions(batch: &[gesta::RecordedEvent]) -> Vec<u64> {
    batch.iter().map(|e| e.position).collect()
}

/// Acknowledged positions survive close and reopen; a new subscription
/// under the name resumes after the last ack, redelivering what was
/// delivered but not acknowledged.
#[test]
fn durable_cursor_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for i in 0..10 {
        store.append(vec![ev("A", &i.to_string())]).unwrap();
    }
    {
        let mut sub = store.subscribe_durable("proj", &Query::all()).unwrap();
        assert_eq!(sub.acked(), 0);
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.extend(positions(&sub.recv().unwrap()));
        }
        assert_eq!(seen, vec![1, 2, 3, 4, 5, 6]);
        sub.ack(4).unwrap();
        sub.ack(2).unwrap(); // going back changes nothing
        assert_eq!(sub.acked(), 4);
        match sub.ack(11) {
            Err(Error::InvalidInput { .. }) => {}
            other => panic!("ack beyond the head: {other:?}"),
        }
        // A second subscription under the same name is refused while the
        // first is open.
        assert!(matches!(
            store.subscribe_durable("proj", &Query::all()),
            Err(Error::InvalidInput { .. })
        ));
        assert!(store.delete_durable_subscription("proj").is_err());
    }
    assert_eq!(
        store.durable_subscriptions().unwrap(),
        vec![state("proj", 4)]
    );
    store.close().unwrap();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.durable_subscriptions().unwrap(),
        vec![state("proj", 4)]
    );
    let mut sub = store.subscribe_durable("proj", &Query::all()).unwrap();
    assert_eq!(sub.acked(), 4);
    assert_eq!(positions(&sub.recv().unwrap()), vec![5]);
    drop(sub);
    assert!(store.delete_durable_subscription("proj").unwrap());
    assert!(!store.delete_durable_subscription("proj").unwrap());
    assert!(store.durable_subscriptions().unwrap().is_empty());
    let mut sub = store.subscribe_durable("proj", &Query::all()).unwrap();
    assert_eq!(positions(&sub.recv().unwrap()), vec![1]);
}

/// On the fault-injecting file system: after a crash, every cursor is at
/// its last completed ack (never ahead, never behind), in every durability
/// mode, and the events it points at survived.
#[test]
fn durable_cursor_survives_crash() {
    for durability in [
        Durability::Sync,
        Durability::Buffered,
        Durability::Periodic(Duration::from_secs(3600)),
    ] {
        for mode in [CrashMode::DropUnsynced, CrashMode::Torn { seed: 7 }] {
            let fs = Arc::new(FaultFs::new());
            let options = Options::default().fs(fs.clone()).durability(durability);
            let store = Store::open_with("/s", options.clone()).unwrap();
            let mut sub = store.subscribe_durable("c", &Query::all()).unwrap();
            let mut acked = 0;
            for i in 0..20u64 {
                store.append(vec![ev("A", &i.to_string())]).unwrap();
                let batch = sub.recv().unwrap();
                if i % 3 == 0 {
                    acked = batch[0].position;
                    sub.ack(acked).unwrap();
                }
            }
            fs.crash(mode);
            drop(sub);
            drop(store);
            let store = Store::open_with("/s", options).unwrap();
            assert!(
                store.head() >= acked,
                "{durability:?}: the log lost acknowledged events"
            );
            assert_eq!(
                store.durable_subscriptions().unwrap(),
                vec![state("c", acked)],
                "{durability:?} {mode:?}"
            );
            let mut sub = store.subscribe_durable("c", &Query::all()).unwrap();
            if store.head() > acked {
                assert_eq!(positions(&sub.recv().unwrap()), vec![acked + 1]);
            }
        }
    }
}

/// Crashing in the middle of an acknowledgement — at every one of its file
/// operations — leaves the cursor at the previous or the new position.
#[test]
fn crash_during_ack_leaves_old_or_new() {
    for n in 0..12 {
        let fs = Arc::new(FaultFs::new());
        let options = Options::default().fs(fs.clone());
        let store = Store::open_with("/s", options.clone()).unwrap();
        for i in 0..5 {
            store.append(vec![ev("A", &i.to_string())]).unwrap();
        }
        let sub = store.subscribe_durable("c", &Query::all()).unwrap();
        sub.ack(2).unwrap();
        fs.crash_after(n);
        let result = sub.ack(4);
        fs.crash(CrashMode::DropUnsynced);
        drop(sub);
        drop(store);
        let store = Store::open_with("/s", options).unwrap();
        let kept = store.durable_subscriptions().unwrap();
        assert_eq!(kept.len(), 1, "crash after {n} operations");
        let at = kept[0].acknowledged;
        assert!(at == 2 || at == 4, "cursor at {at} after crash at op {n}");
        if result.is_ok() {
            assert_eq!(at, 4, "an acknowledged ack was lost (crash after {n})");
        }
    }
}

/// A cursor file with a flipped bit is reported as corruption naming it.
#[test]
fn corrupt_cursor_is_detected() {
    let fs = Arc::new(FaultFs::new());
    let options = Options::default().fs(fs.clone());
    let store = Store::open_with("/s", options).unwrap();
    store.append(vec![ev("A", "1")]).unwrap();
    store
        .subscribe_durable("c", &Query::all())
        .unwrap()
        .ack(1)
        .unwrap();
    fs.corrupt("/s/cursors/63.cursor", 20, 0x10);
    match store.durable_subscriptions() {
        Err(Error::Corruption { file, .. }) => assert!(file.ends_with("63.cursor")),
        other => panic!("expected corruption, got {other:?}"),
    }
    assert!(matches!(
        store.subscribe_durable("c", &Query::all()),
        Err(Error::Corruption { .. })
    ));
}

/// Closing the store ends subscriptions after what was committed before.
#[test]
fn close_ends_subscriptions_after_delivering_the_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut sub = store.subscribe(&Query::all(), 0).unwrap();
    store.append(vec![ev("A", "1"), ev("A", "2")]).unwrap();
    store.close().unwrap();
    assert_eq!(positions(&sub.next().unwrap().unwrap()), vec![1, 2]);
    assert!(matches!(sub.next(), Some(Err(Error::Closed))));
    assert!(sub.next().is_none());
}

/// Hundreds of subscribers all get every append while writers run.
#[test]
fn many_subscribers() {
    let mut harness = StoreHarness::on_disk();
    let store = gesta_tests::conformance::Harness::create(&mut harness);
    let subs: Vec<_> = (0..200)
        .map(|_| store.subscribe(&Query::all(), 0).unwrap())
        .collect();
    std::thread::scope(|scope| {
        for w in 0..4 {
            let store = &store;
            scope.spawn(move || {
                for i in 0..100 {
                    store.append(vec![ev("A", &format!("{w}/{i}"))]).unwrap();
                }
            });
        }
        for mut sub in subs {
            scope.spawn(move || {
                let mut next = 1;
                while next <= 400 {
                    for e in sub.recv().unwrap() {
                        assert_eq!(e.position, next);
                        next += 1;
                    }
                }
            });
        }
    });
}

/// The async forms: appends awaited on a tokio runtime, a subscription
/// consumed as a `Stream`, including live delivery and the end at close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_append_and_stream() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..25 {
                let a = store
                    .append_async(vec![ev("A", &format!("{w}/{i}"))], AppendOptions::default())
                    .await
                    .unwrap();
                got.push(a.first);
            }
            got
        }));
    }
    let mut sub = store
        .subscribe(&Query::event_type("A"), 0)
        .unwrap()
        .into_stream();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=200).collect::<Vec<_>>());
    let mut seen = Vec::new();
    while seen.len() < 200 {
        let batch = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("stream stalled")
            .unwrap()
            .unwrap();
        seen.extend(positions(&batch));
    }
    assert_eq!(seen, all);
    // Live: the stream waits without blocking the runtime, then delivers.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            store
                .append_async(vec![ev("A", "late")], AppendOptions::default())
                .await
                .unwrap()
        })
    };
    let batch = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("live delivery")
        .unwrap()
        .unwrap();
    assert_eq!(positions(&batch), vec![writer.await.unwrap().first]);
    // A failed condition comes back as an error through the future.
    let e = store
        .append_async(
            vec![ev("A", "x")],
            AppendOptions::default().fail_if(Query::event_type("A"), Some(0)),
        )
        .await;
    assert!(matches!(e, Err(Error::ConditionFailed { position: 1 })));
    store.close().unwrap();
    assert!(matches!(sub.next().await, Some(Err(Error::Closed))));
    assert!(sub.next().await.is_none());
    assert!(matches!(
        store
            .append_async(vec![ev("A", "y")], AppendOptions::default())
            .await,
        Err(Error::Closed)
    ));
}

fn state(name: &str, acknowledged: u64) -> gesta::DurableSubscriptionState {
    gesta::DurableSubscriptionState {
        name: name.to_owned(),
        acknowledged,
    }
}
