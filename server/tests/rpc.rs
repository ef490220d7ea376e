//! Every DCB RPC through a real gRPC connection, with UmaDB's semantics.

mod common;

use std::time::Duration;

use common::*;
use gesta_server::proto::v1;
use gesta_server::proto::v1::error_response::ErrorType;
use tonic::Code;

#[allow(deprecated)]
fn read(start: Option<u64>, backwards: bool, limit: Option<u32>) -> v1::ReadRequest {
    v1::ReadRequest {
        query: None,
        start,
        backwards: Some(backwards),
        limit,
        subscribe: None,
        batch_size: None,
    }
}

fn flat(responses: &[(Vec<u64>, Option<u64>)]) -> Vec<u64> {
    responses.iter().flat_map(|(p, _)| p.clone()).collect()
}

#[tokio::test]
async fn empty_store_has_no_head_and_a_read_answers_once() {
    let server = start().await;
    let mut c = client(server.addr).await;
    let head = c.head(v1::HeadRequest {}).await.unwrap().into_inner();
    assert_eq!(head.position, None);
    assert_eq!(
        read_all(&mut c, read(None, false, None)).await,
        vec![(vec![], None)]
    );
    server.stop().await;
}

#[tokio::test]
async fn append_head_and_read_with_inclusive_start() {
    let server = start().await;
    let mut c = client(server.addr).await;
    let events = (0..5)
        .map(|i| event("Happened", &[&format!("n:{i}")]))
        .collect();
    assert_eq!(append(&mut c, events, None).await.unwrap(), 5);
    let head = c.head(v1::HeadRequest {}).await.unwrap().into_inner();
    assert_eq!(head.position, Some(5));

    let all = read_all(&mut c, read(None, false, None)).await;
    assert_eq!(all, vec![(vec![1, 2, 3, 4, 5], Some(5))]);
    // Start is inclusive, both ways.
    assert_eq!(
        flat(&read_all(&mut c, read(Some(2), false, None)).await),
        vec![2, 3, 4, 5]
    );
    assert_eq!(
        flat(&read_all(&mut c, read(Some(0), false, None)).await),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        flat(&read_all(&mut c, read(Some(2), true, None)).await),
        vec![2, 1]
    );
    assert_eq!(
        flat(&read_all(&mut c, read(None, true, None)).await),
        vec![5, 4, 3, 2, 1]
    );
    assert_eq!(
        read_all(&mut c, read(Some(6), false, None)).await,
        vec![(vec![], Some(5))]
    );
    // With a limit, head is the last position sent (none when nothing is).
    assert_eq!(
        read_all(&mut c, read(Some(2), false, Some(2))).await,
        vec![(vec![2, 3], Some(3))]
    );
    assert_eq!(
        read_all(&mut c, read(None, true, Some(1))).await,
        vec![(vec![5], Some(5))]
    );
    assert_eq!(
        read_all(&mut c, read(Some(9), false, Some(1))).await,
        vec![(vec![], None)]
    );

    // A query, and the events as they were given.
    let mut request = read(None, false, None);
    request.query = Some(query(&["Happened"], &["n:3"]));
    let mut stream = c.read(request).await.unwrap().into_inner();
    let response = stream.message().await.unwrap().unwrap();
    assert_eq!(response.events.len(), 1);
    let e = &response.events[0];
    assert_eq!(e.position, 4);
    let inner = e.event.as_ref().unwrap();
    assert_eq!(inner.event_type, "Happened");
    assert_eq!(inner.tags, vec!["n:3"]);
    assert_eq!(inner.data, &br#"{"type":"Happened"}"#[..]);
    assert!(stream.message().await.unwrap().is_none());
    server.stop().await;
}

#[tokio::test]
async fn reads_stream_in_batches_and_stop_at_the_captured_head() {
    let server = start().await;
    let mut c = client(server.addr).await;
    let events = (0..7).map(|_| event("E", &[])).collect();
    append(&mut c, events, None).await.unwrap();
    let mut request = read(None, false, None);
    request.batch_size = Some(3);
    let responses = read_all(&mut c, request.clone()).await;
    assert_eq!(
        responses,
        vec![
            (vec![1, 2, 3], Some(7)),
            (vec![4, 5, 6], Some(7)),
            (vec![7], Some(7))
        ]
    );
    request.backwards = Some(true);
    request.limit = Some(5);
    let responses = read_all(&mut c, request.clone()).await;
    assert_eq!(
        responses,
        vec![(vec![7, 6, 5], Some(5)), (vec![4, 3], Some(3))]
    );

    // Appends after a read began are not part of it.
    request.backwards = Some(false);
    request.limit = None;
    request.batch_size = Some(1);
    let mut stream = c.read(request).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.head, Some(7));
    let mut other = client(server.addr).await;
    append(&mut other, vec![event("Late", &[])], None)
        .await
        .unwrap();
    let mut seen = vec![first.events[0].position];
    while let Some(r) = stream.message().await.unwrap() {
        assert_eq!(r.head, Some(7));
        seen.extend(r.events.iter().map(|e| e.position));
    }
    assert_eq!(seen, (1..=7).collect::<Vec<_>>());
    server.stop().await;
}

#[tokio::test]
async fn a_failed_condition_is_failed_precondition_with_details() {
    let server = start().await;
    let mut c = client(server.addr).await;
    let p = append(&mut c, vec![event("Registered", &["user:1"])], None)
        .await
        .unwrap();
    let condition = |after| v1::AppendCondition {
        fail_if_events_match: Some(query(&[], &["user:1"])),
        after,
    };
    let err = append(
        &mut c,
        vec![event("Registered", &["user:1"])],
        Some(condition(None)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(details(&err).error_type, ErrorType::Integrity as i32);
    // Nothing was appended; knowing position p, the append goes through.
    let p2 = append(
        &mut c,
        vec![event("Renamed", &["user:1"])],
        Some(condition(Some(p))),
    )
    .await
    .unwrap();
    assert_eq!(p2, p + 1);
    // A condition with no query fails on any event after `after`.
    let any = v1::AppendCondition {
        fail_if_events_match: None,
        after: Some(p),
    };
    let err = append(&mut c, vec![event("X", &[])], Some(any))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // An append of no events checks the condition and answers the head.
    assert_eq!(
        append(&mut c, vec![], Some(condition(Some(p2))))
            .await
            .unwrap(),
        p2
    );
    let err = append(&mut c, vec![], Some(condition(Some(p))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // A condition after a position the store never had is refused, with
    // events and without (UmaDB accepts it; see the README).
    for events in [vec![event("X", &[])], vec![]] {
        let err = append(&mut c, events, Some(condition(Some(p2 + 1))))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(details(&err).error_type, ErrorType::InvalidArgument as i32);
        assert!(
            err.message().contains("is beyond the head"),
            "{}",
            err.message()
        );
    }
    assert_eq!(
        c.head(v1::HeadRequest {})
            .await
            .unwrap()
            .into_inner()
            .position,
        Some(p2)
    );
    server.stop().await;
}

#[tokio::test]
async fn invalid_input_is_invalid_argument_with_details() {
    let server = start().await;
    let mut c = client(server.addr).await;
    let err = append(&mut c, vec![event("", &[])], None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(details(&err).error_type, ErrorType::InvalidArgument as i32);
    let mut bad = event("E", &[]);
    bad.uuid = "not-a-uuid".into();
    let err = append(&mut c, vec![bad], None).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut request = read(None, false, None);
    request.query = Some(query(&[&"t".repeat(1025)], &[]));
    let err = c.read(request).await.err().unwrap();
    assert_eq!(err.code(), Code::InvalidArgument);
    #[allow(deprecated)]
    let deprecated = v1::ReadRequest {
        subscribe: Some(true),
        ..read(None, false, None)
    };
    assert_eq!(
        c.read(deprecated).await.err().unwrap().code(),
        Code::InvalidArgument
    );
    assert_eq!(
        c.head(v1::HeadRequest {})
            .await
            .unwrap()
            .into_inner()
            .position,
        None
    );
    server.stop().await;
}

#[tokio::test]
async fn a_retried_append_with_the_same_ids_returns_the_earlier_position() {
    let server = start().await;
    let mut c = client(server.addr).await;
    append(&mut c, vec![event("Before", &[])], None)
        .await
        .unwrap();
    let mut batch = vec![event("Booked", &["seat:1"]), event("Paid", &["seat:1"])];
    batch[0].uuid = "67e55044-10b1-426f-9247-bb680e5fe0c8".into();
    batch[1].uuid = "67e55044-10b1-426f-9247-bb680e5fe0c9".into();
    batch[0].metadata = vec![v1::MetadataEntry {
        key: "correlation".into(),
        value: "c-7".into(),
    }];
    let condition = v1::AppendCondition {
        fail_if_events_match: Some(query(&[], &["seat:1"])),
        after: Some(1),
    };
    let first = append(&mut c, batch.clone(), Some(condition.clone()))
        .await
        .unwrap();
    assert_eq!(first, 3);
    append(&mut c, vec![event("After", &[])], None)
        .await
        .unwrap();
    // The condition now fails, but the ids say it is the same append.
    let again = append(&mut c, batch.clone(), Some(condition))
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(
        c.head(v1::HeadRequest {})
            .await
            .unwrap()
            .into_inner()
            .position,
        Some(4)
    );
    // Ids and metadata come back as given.
    let mut stream = c
        .read(read(Some(2), false, Some(2)))
        .await
        .unwrap()
        .into_inner();
    let got = stream.message().await.unwrap().unwrap();
    let got: Vec<v1::Event> = got.events.into_iter().map(|e| e.event.unwrap()).collect();
    assert_eq!(got, batch);
    server.stop().await;
}

#[tokio::test]
async fn concurrent_appenders_with_conditions_never_both_win() {
    let server = start().await;
    let writers = 8;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = client(addr).await;
            let mut conflicts = 0;
            loop {
                // Decide on the last counter event, then append the next.
                let mut r = read(None, true, Some(1));
                r.query = Some(query(&["Counted"], &[]));
                let last = read_all(&mut c, r).await;
                let after = last[0].0.first().copied();
                let condition = v1::AppendCondition {
                    fail_if_events_match: Some(query(&["Counted"], &[])),
                    after,
                };
                match append(
                    &mut c,
                    vec![event("Counted", &[&format!("w:{w}")])],
                    Some(condition),
                )
                .await
                {
                    Ok(p) => return (p, conflicts),
                    Err(e) => {
                        assert_eq!(e.code(), Code::FailedPrecondition);
                        conflicts += 1;
                    }
                }
            }
        }));
    }
    let mut positions = Vec::new();
    for t in tasks {
        positions.push(t.await.unwrap().0);
    }
    positions.sort();
    assert_eq!(positions, (1..=writers).collect::<Vec<u64>>());
    server.stop().await;
}

async fn next_positions(stream: &mut tonic::Streaming<v1::SubscribeResponse>) -> Vec<u64> {
    let r = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a batch in time")
        .unwrap()
        .unwrap();
    r.events.iter().map(|e| e.position).collect()
}

#[tokio::test]
async fn subscribe_catches_up_then_follows_live_appends() {
    let server = start().await;
    let mut c = client(server.addr).await;
    let events = (0..5)
        .map(|i| event(if i % 2 == 0 { "Even" } else { "Odd" }, &[]))
        .collect();
    append(&mut c, events, None).await.unwrap();
    let request = v1::SubscribeRequest {
        query: Some(query(&["Even"], &[])),
        after: Some(1),
        batch_size: Some(1),
    };
    let mut stream = c.subscribe(request).await.unwrap().into_inner();
    // After is exclusive; batch_size splits the catch-up.
    assert_eq!(next_positions(&mut stream).await, vec![3]);
    assert_eq!(next_positions(&mut stream).await, vec![5]);
    let mut writer = client(server.addr).await;
    append(
        &mut writer,
        vec![event("Odd", &[]), event("Even", &[])],
        None,
    )
    .await
    .unwrap();
    assert_eq!(next_positions(&mut stream).await, vec![7]);

    // A subscription after the head waits for those positions.
    let ahead = v1::SubscribeRequest {
        query: None,
        after: Some(8),
        batch_size: None,
    };
    let mut ahead = c.subscribe(ahead).await.unwrap().into_inner();
    append(
        &mut writer,
        vec![event("Odd", &[]), event("Even", &[])],
        None,
    )
    .await
    .unwrap();
    assert_eq!(next_positions(&mut ahead).await, vec![9]);
    // Stopping the server ends open subscriptions instead of waiting on them.
    assert_eq!(next_positions(&mut stream).await, vec![9]);
    server.stop().await;
    let end = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .unwrap();
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
}

#[tokio::test]
async fn a_subscriber_resumes_across_a_server_restart() {
    let server = start().await;
    let mut c = client(server.addr).await;
    append(&mut c, vec![event("A", &[]), event("B", &[])], None)
        .await
        .unwrap();
    let request = v1::SubscribeRequest {
        query: None,
        after: None,
        batch_size: None,
    };
    let mut stream = c.subscribe(request.clone()).await.unwrap().into_inner();
    assert_eq!(next_positions(&mut stream).await, vec![1, 2]);
    let dir = server.stop().await;

    let server = start_in(dir, gesta_server::ServeConfig::default()).await;
    let mut c = client(server.addr).await;
    append(&mut c, vec![event("C", &[])], None).await.unwrap();
    let resumed = v1::SubscribeRequest {
        after: Some(2),
        ..request
    };
    let mut stream = c.subscribe(resumed).await.unwrap().into_inner();
    assert_eq!(next_positions(&mut stream).await, vec![3]);
    server.stop().await;
}

#[tokio::test]
async fn the_health_service_reports_serving() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let server = start().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "umadb.v1.DCB"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn tracking_info_is_stored_with_the_events_and_must_grow() {
    let server = start().await;
    let mut c = client(server.addr).await;
    let tracking = |_: u32| v1::TrackingRequest {
        source: "upstream-a".into(),
    };
    assert_eq!(
        c.get_tracking_info(tracking(0))
            .await
            .unwrap()
            .into_inner()
            .position,
        None
    );
    let append_tracked = |position: u64| v1::AppendRequest {
        events: vec![event("Projected", &[])],
        condition: None,
        tracking_info: Some(v1::TrackingInfo {
            source: "upstream-a".into(),
            position,
        }),
    };
    assert_eq!(
        c.append(append_tracked(7))
            .await
            .unwrap()
            .into_inner()
            .position,
        1
    );
    assert_eq!(
        c.get_tracking_info(tracking(0))
            .await
            .unwrap()
            .into_inner()
            .position,
        Some(7)
    );
    let err = c.append(append_tracked(7)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(details(&err).error_type, ErrorType::Integrity as i32);
    assert_eq!(
        c.append(append_tracked(8))
            .await
            .unwrap()
            .into_inner()
            .position,
        2
    );
    let empty = v1::AppendRequest {
        events: vec![],
        ..append_tracked(9)
    };
    assert_eq!(
        c.append(empty).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    server.stop().await;
}

#[tokio::test]
async fn short_reads_do_not_wait_for_delayed_acks() {
    let server = start().await;
    let mut c = client(server.addr).await;
    let events = (0..100)
        .map(|_| {
            let mut e = event("E", &["t"]);
            e.data = vec![b'x'; 200].into();
            e
        })
        .collect();
    append(&mut c, events, None).await.unwrap();
    read_all(&mut c, read(None, false, None)).await;
    // With Nagle's algorithm on the server's sockets each of these took
    // about 44 ms; without, well under 1 ms.
    let started = std::time::Instant::now();
    for _ in 0..10 {
        read_all(&mut c, read(None, false, None)).await;
    }
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    server.stop().await;
}

#[tokio::test]
async fn uuids_are_not_unique_as_in_umadb() {
    let server = start().await;
    let mut c = client(server.addr).await;
    let mut e = event("Noted", &["n"]);
    e.uuid = "0b0e7c52-3b7e-4f43-9a43-5c1b2f6e9a01".into();
    // Without a condition the same event is simply appended again.
    assert_eq!(append(&mut c, vec![e.clone()], None).await.unwrap(), 1);
    assert_eq!(append(&mut c, vec![e.clone()], None).await.unwrap(), 2);
    // A failing condition whose first matches carry other UUIDs is a
    // conflict, not a retry.
    let mut other = event("Noted", &["n"]);
    other.uuid = "0b0e7c52-3b7e-4f43-9a43-5c1b2f6e9a02".into();
    let condition = v1::AppendCondition {
        fail_if_events_match: Some(query(&[], &["n"])),
        after: None,
    };
    let err = append(&mut c, vec![other], Some(condition.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // The first match carries this UUID: a retry, answered with its position.
    assert_eq!(append(&mut c, vec![e], Some(condition)).await.unwrap(), 1);
    assert_eq!(
        c.head(v1::HeadRequest {})
            .await
            .unwrap()
            .into_inner()
            .position,
        Some(2)
    );
    server.stop().await;
}

/// A backwards read with a limit — "the last event matching the query" —
/// while other writers append, answers the newest matching event at or
/// before the head it captured, never nothing: events committed after
/// that head are not lent to it (they would be skipped, yet counted
/// against the limit, as UmaDB's snapshot read never does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backwards_limited_read_racing_appends_finds_the_last_event() {
    let server = start().await;
    let mut c = client(server.addr).await;
    append(&mut c, vec![event("E", &["t:1"])], None)
        .await
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (store, stop) = (server.store.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    store
                        .append(vec![gesta::NewEvent::new("E", "{}").tags(["t:1"])])
                        .unwrap();
                }
            })
        })
        .collect();
    let mut empty = 0;
    for _ in 0..2_000 {
        let responses = read_all(
            &mut c,
            v1::ReadRequest {
                query: Some(query(&[], &["t:1"])),
                backwards: Some(true),
                limit: Some(1),
                ..Default::default()
            },
        )
        .await;
        if responses.iter().map(|(p, _)| p.len()).sum::<usize>() == 0 {
            empty += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(
        empty, 0,
        "backwards reads of the last event that came back empty"
    );
}
