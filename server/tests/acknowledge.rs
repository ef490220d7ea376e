//! An append is answered only once the server's acknowledgement hook
//! (`Served::acknowledged_by`; `gesta serve --ship-ack` waits for the
//! bucket with it) has held its position, on both services: a failing
//! hook fails the call with `UNAVAILABLE` naming the committed positions,
//! the events stay committed, and a re-sent conditional append is
//! answered with the first one's position once the hook holds it.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use gesta_server::ServeConfig;
use gesta_server::client::GestaClient;
use gesta_server::proto::v1;
use tonic::Code;

/// A hook that records what it was asked for and fails while `failing`.
struct Hook {
    asked: Mutex<Vec<u64>>,
    failing: AtomicBool,
}

#[tokio::test]
async fn appends_are_answered_only_once_acknowledged_on_both_services() {
    let hook = Arc::new(Hook {
        asked: Mutex::new(Vec::new()),
        failing: AtomicBool::new(false),
    });
    let dir = tempfile::tempdir().unwrap();
    let store = gesta::Store::open(dir.path()).unwrap();
    let served = gesta_server::Served::from(store).acknowledged_by({
        let hook = hook.clone();
        Arc::new(move |position| {
            hook.asked.lock().unwrap().push(position);
            if hook.failing.load(Ordering::SeqCst) {
                Err("the bucket is away".into())
            } else {
                Ok(())
            }
        })
    });
    let server = start_served(dir, served, ServeConfig::default()).await;
    let mut dcb = client(server.addr).await;

    // umadb.v1: acknowledged at its last position.
    let position = append(&mut dcb, vec![event("A", &["x"]), event("B", &["x"])], None)
        .await
        .unwrap();
    assert_eq!(position, 2);
    assert_eq!(*hook.asked.lock().unwrap(), vec![2]);

    // Not acknowledged: UNAVAILABLE, naming the positions; committed all
    // the same.
    hook.failing.store(true, Ordering::SeqCst);
    // A UUID says a re-sent event is the same one.
    let c = v1::Event {
        uuid: "6f1c7ae8-3c0a-4b7e-9a55-2b1d7c0e4f11".into(),
        ..event("C", &[])
    };
    let condition = v1::AppendCondition {
        fail_if_events_match: Some(query(&["C"], &[])),
        after: Some(2),
    };
    let failed = append(&mut dcb, vec![c.clone()], Some(condition.clone()))
        .await
        .unwrap_err();
    assert_eq!(failed.code(), Code::Unavailable);
    assert!(failed.message().contains("positions 3..=3"), "{failed:?}");
    assert!(
        failed.message().contains("the bucket is away"),
        "{failed:?}"
    );
    assert_eq!(
        details(&failed).error_type,
        v1::error_response::ErrorType::Io as i32
    );
    assert_eq!(server.store.head(), 3);

    // The same conditional append re-sent once the hook holds: answered
    // with the first attempt's position, appended once.
    hook.failing.store(false, Ordering::SeqCst);
    let again = append(&mut dcb, vec![c], Some(condition)).await.unwrap();
    assert_eq!(again, 3);
    assert_eq!(server.store.head(), 3);
    assert_eq!(*hook.asked.lock().unwrap(), vec![2, 3, 3]);

    // gesta.v1: the same.
    let mut gesta = GestaClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    let appended = gesta
        .append(
            vec![gesta::NewEvent::new("D", "d")],
            gesta::AppendOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(appended.last, 4);
    hook.failing.store(true, Ordering::SeqCst);
    let failed = gesta
        .append(
            vec![gesta::NewEvent::new("E", "e")],
            gesta::AppendOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(failed.to_string().contains("positions 5..=5"), "{failed}");
    // The client reads gesta.v1's detail: an unknown outcome, whose rule
    // (a retry with the same ids is safe) holds.
    assert!(
        matches!(
            failed,
            gesta_server::client::ClientError::Store(gesta::Error::OutcomeUnknown { .. })
        ),
        "{failed:?}"
    );
    assert_eq!(server.store.head(), 5);
    assert_eq!(*hook.asked.lock().unwrap(), vec![2, 3, 3, 4, 5]);
    server.stop().await;
}
