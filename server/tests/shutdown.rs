//! Graceful shutdown: acknowledged appends are durable, and the binary
//! stops cleanly on SIGTERM.

mod common;

use std::time::Duration;

use common::*;
use gesta::{Query, ReadOptions};

#[tokio::test]
async fn appends_in_flight_at_shutdown_are_answered_and_kept() {
    let server = start().await;
    let addr = server.addr;
    let mut tasks = Vec::new();
    for w in 0..16 {
        tasks.push(tokio::spawn(async move {
            let mut c = client(addr).await;
            let mut acknowledged = Vec::new();
            for i in 0..50 {
                let tag = format!("w{w}:{i}");
                match append(&mut c, vec![event("E", &[&tag])], None).await {
                    Ok(p) => acknowledged.push((p, tag)),
                    Err(_) => break,
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let dir = server.stop().await;
    let mut acknowledged = Vec::new();
    for t in tasks {
        acknowledged.extend(t.await.unwrap());
    }
    let store = gesta::Store::open(dir.path()).unwrap();
    for (position, tag) in &acknowledged {
        let found = store
            .read(&Query::tag(tag.as_str()), ReadOptions::forwards())
            .unwrap()
            .next()
            .expect("an acknowledged append is in the store")
            .unwrap();
        assert_eq!(found.position, *position);
    }
    assert!(!acknowledged.is_empty());
    // A client may lose the answer to an append that committed (the
    // connection closing), never the other way round.
    assert!(store.head() as usize >= acknowledged.len());
}

#[test]
fn the_binary_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gesta-server"))
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .spawn()
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let head = runtime.block_on(async {
        let endpoint = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if let Ok(mut c) =
                gesta_server::proto::v1::dcb_client::DcbClient::connect(endpoint.clone()).await
            {
                append(&mut c, vec![event("E", &[])], None).await.unwrap();
                let head = c
                    .head(gesta_server::proto::v1::HeadRequest {})
                    .await
                    .unwrap();
                return head.into_inner().position;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server never listened");
    });
    assert_eq!(head, Some(1));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let store = gesta::Store::open(dir.path()).unwrap();
    assert_eq!(store.head(), 1);
}

#[tokio::test]
async fn a_client_that_stops_reading_cannot_hold_up_shutdown() {
    let config = gesta_server::ServeConfig {
        shutdown_grace: Duration::from_secs(1),
        ..gesta_server::ServeConfig::default()
    };
    let server = start_with(config).await;
    let mut c = client(server.addr).await;
    for _ in 0..20 {
        let events = (0..100)
            .map(|_| {
                let mut e = event("Big", &["b"]);
                e.data = vec![b'z'; 4 << 10].into();
                e
            })
            .collect();
        append(&mut c, events, None).await.unwrap();
    }
    // A read and a subscription whose responses nobody takes.
    let read = gesta_server::proto::v1::ReadRequest {
        batch_size: Some(10),
        ..Default::default()
    };
    let _stalled_read = c.read(read).await.unwrap();
    let _stalled_subscription = c
        .subscribe(gesta_server::proto::v1::SubscribeRequest::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(20), server.stop())
        .await
        .expect("shutdown finished");
    assert!(started.elapsed() < Duration::from_secs(10));
}
