//! The gesta.v1 service through its Rust client against a real server on
//! loopback: every RPC, its answers compared field by field with what the
//! store itself answers, and its error paths with their typed details.

mod common;

use std::time::Duration;

use common::*;
use futures::{StreamExt, TryStreamExt};
use gesta::lifecycle::{AuditEntry, Operation, Redacted, TagsAdded, Target};
use gesta::{
    AppendOptions, Error, ExpectedRevision, Listed, NewEvent, Query, QueryItem, ReadOptions,
    RecordedEvent,
};
use gesta_server::ServeConfig;
use gesta_server::client::{ClientError, DurableInfo, GestaClient, error_detail};
use gesta_server::proto::gesta_v1 as g;
use gesta_server::proto::gesta_v1::error_detail::Kind;
use tonic::Code;

async fn gesta_client(addr: std::net::SocketAddr) -> GestaClient {
    GestaClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

fn ev(event_type: &str, stream: &str) -> NewEvent {
    NewEvent::new(event_type, format!("{{\"t\":\"{event_type}\"}}"))
        .stream(stream)
        .tag(format!("s:{stream}"))
        .metadata("m")
}

async fn collect(stream: gesta_server::client::EventStream) -> Vec<RecordedEvent> {
    stream.try_collect().await.unwrap()
}

/// What the store itself answers for a stream read.
fn engine_stream(store: &gesta::Store, name: &str, options: ReadOptions) -> Vec<RecordedEvent> {
    store
        .read_stream(name, options)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn store_error(e: ClientError) -> Error {
    match e {
        ClientError::Store(e) => e,
        other => panic!("expected a store error, got {other:?}"),
    }
}

/// The error of a call that must fail at once (the stream types are not
/// `Debug`).
fn failed<T>(r: Result<T, ClientError>) -> ClientError {
    match r {
        Ok(_) => panic!("the call succeeded"),
        Err(e) => e,
    }
}

fn status(e: ClientError) -> tonic::Status {
    match e {
        ClientError::Status(s) => s,
        other => panic!("expected a status, got {other:?}"),
    }
}

#[tokio::test]
async fn appends_with_streams_and_reads_them_back() {
    let server = start().await;
    let mut c = gesta_client(server.addr).await;
    let appended = c
        .append(
            vec![
                ev("Opened", "acc-1"),
                ev("Deposited", "acc-1"),
                ev("Opened", "acc-2"),
            ],
            AppendOptions::new()
                .expect("acc-1", ExpectedRevision::NoStream)
                .expect("acc-2", ExpectedRevision::Any),
        )
        .await
        .unwrap();
    assert_eq!((appended.first, appended.last), (1, 3));
    let appended = c
        .append(
            vec![ev("Withdrawn", "acc-1"), ev("Closed", "acc-1")],
            AppendOptions::new().expect("acc-1", ExpectedRevision::Exact(1)),
        )
        .await
        .unwrap();
    assert_eq!((appended.first, appended.last), (4, 5));

    // Every field as the store has it.
    let all = collect(
        c.read_stream("acc-1", ReadOptions::forwards())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        all,
        engine_stream(&server.store, "acc-1", ReadOptions::forwards())
    );
    assert_eq!(
        all.iter()
            .map(|e| (e.position, e.revision))
            .collect::<Vec<_>>(),
        vec![(1, Some(0)), (2, Some(1)), (4, Some(2)), (5, Some(3))]
    );
    assert_eq!(all[2].event_type, "Withdrawn");
    assert_eq!(all[2].stream.as_deref(), Some("acc-1"));
    assert_eq!(all[2].tags, vec!["s:acc-1".to_string()]);
    assert_eq!(&all[2].data[..], br#"{"t":"Withdrawn"}"#);
    assert_eq!(&all[2].metadata[..], b"m");
    assert!(all[2].timestamp_micros > 0);

    // The start is an exclusive revision, in both directions, with limits.
    for options in [
        ReadOptions::forwards().start(1),
        ReadOptions::forwards().start(0).limit(2),
        ReadOptions::backwards(),
        ReadOptions::backwards().start(3).limit(2),
        ReadOptions::backwards().start(0),
        ReadOptions::forwards().start(3),
    ] {
        let read = collect(c.read_stream("acc-1", options).await.unwrap()).await;
        assert_eq!(
            read,
            engine_stream(&server.store, "acc-1", options),
            "{options:?}"
        );
    }
    let revisions = |events: Vec<RecordedEvent>| {
        events
            .iter()
            .map(|e| e.revision.unwrap())
            .collect::<Vec<_>>()
    };
    let read = c
        .read_stream("acc-1", ReadOptions::backwards().start(3).limit(2))
        .await
        .unwrap();
    assert_eq!(revisions(collect(read).await), vec![2, 1]);

    let last = c.read_stream_last("acc-1").await.unwrap().unwrap();
    assert_eq!(
        last,
        server.store.read_stream_last("acc-1").unwrap().unwrap()
    );
    assert_eq!((last.position, last.revision), (5, Some(3)));
    assert_eq!(c.stream_revision("acc-1").await.unwrap(), Some(3));
    assert_eq!(c.stream_revision("acc-2").await.unwrap(), Some(0));

    // An unknown stream reads as empty; a bad name is refused.
    let unknown = collect(
        c.read_stream("nope", ReadOptions::forwards())
            .await
            .unwrap(),
    )
    .await;
    assert!(unknown.is_empty());
    assert_eq!(c.read_stream_last("nope").await.unwrap(), None);
    assert_eq!(c.stream_revision("nope").await.unwrap(), None);
    let bad = failed(c.read_stream("", ReadOptions::forwards()).await);
    assert!(matches!(store_error(bad), Error::InvalidInput { .. }));

    // Query reads and the head.
    let query = Query::event_type("Opened");
    for options in [
        ReadOptions::forwards(),
        ReadOptions::backwards().limit(1),
        ReadOptions::forwards().start(1),
    ] {
        let read = collect(c.read(&query, options).await.unwrap()).await;
        let engine: Vec<_> = server
            .store
            .read(&query, options)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(read, engine, "{options:?}");
    }
    let opened = collect(c.read(&query, ReadOptions::forwards()).await.unwrap()).await;
    assert_eq!(
        opened.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert_eq!(c.head().await.unwrap(), 5);
    server.stop().await;
}

#[tokio::test]
async fn a_read_longer_than_a_response_arrives_whole_and_in_order() {
    let server = start().await;
    let mut c = gesta_client(server.addr).await;
    for chunk in 0..3 {
        let events = (0..1000)
            .map(|i| ev(&format!("E{chunk}-{i}"), "long"))
            .collect();
        c.append(events, AppendOptions::new()).await.unwrap();
    }
    let read = collect(
        c.read_stream("long", ReadOptions::forwards())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(read.len(), 3000);
    assert!(
        read.iter()
            .enumerate()
            .all(|(i, e)| e.revision == Some(i as u64))
    );
    // Through the generated client: several responses.
    let mut responses = c
        .raw()
        .read_stream(g::ReadStreamRequest {
            stream: "long".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut sizes = Vec::new();
    while let Some(r) = responses.message().await.unwrap() {
        sizes.push(r.events.len());
    }
    assert!(sizes.len() >= 3, "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 3000);
    // An empty read still answers once.
    let mut responses = c
        .raw()
        .read_stream(g::ReadStreamRequest {
            stream: "empty".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(responses.message().await.unwrap().unwrap().events.len(), 0);
    assert!(responses.message().await.unwrap().is_none());
    server.stop().await;
}

/// What `read_each` lends, made owned.
async fn lent(
    c: &mut GestaClient,
    query: &Query,
    options: ReadOptions,
) -> Result<Vec<RecordedEvent>, ClientError> {
    let mut got = Vec::new();
    c.read_each(query, options, |e| {
        got.push(e.to_owned());
        std::ops::ControlFlow::Continue(())
    })
    .await?;
    Ok(got)
}

#[tokio::test]
async fn lent_reads_lend_what_owned_reads_return() {
    let server = start().await;
    let mut c = gesta_client(server.addr).await;
    // Events with and without ids, streams, tags, metadata and data, in
    // batches longer than a response.
    for chunk in 0..3u128 {
        let events = (0..1000u128)
            .map(|i| {
                let e = NewEvent::new(format!("E{}", i % 3), vec![i as u8; (i % 5) as usize]);
                match i % 4 {
                    0 => e.stream(format!("s{}", i % 7)).id(chunk << 32 | i),
                    1 => e.tag("a").tag(format!("b:{i}")).metadata("m"),
                    2 => e.stream("long").tag("a"),
                    _ => e,
                }
            })
            .collect();
        c.append(events, AppendOptions::new()).await.unwrap();
    }
    for (query, options) in [
        (Query::all(), ReadOptions::forwards()),
        (Query::tag("a"), ReadOptions::backwards().limit(700)),
        (Query::event_type("E1"), ReadOptions::forwards().start(1500)),
    ] {
        let owned = collect(c.read(&query, options).await.unwrap()).await;
        assert!(!owned.is_empty());
        assert_eq!(lent(&mut c, &query, options).await.unwrap(), owned);
    }
    for options in [
        ReadOptions::forwards(),
        ReadOptions::backwards().start(600).limit(10),
    ] {
        let owned = collect(c.read_stream("long", options).await.unwrap()).await;
        let mut got = Vec::new();
        c.read_stream_each("long", options, |e| {
            got.push(e.to_owned());
            std::ops::ControlFlow::Continue(())
        })
        .await
        .unwrap();
        assert_eq!(got, owned);
    }
    // A break ends the read there.
    let mut seen = Vec::new();
    c.read_each(&Query::all(), ReadOptions::forwards(), |e| {
        seen.push(e.position);
        if seen.len() == 1500 {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    })
    .await
    .unwrap();
    assert_eq!(seen, (1..=1500).collect::<Vec<_>>());
    // An unknown stream lends nothing; a bad name is the store's error.
    let mut none = 0;
    c.read_stream_each("nope", ReadOptions::forwards(), |_| {
        none += 1;
        std::ops::ControlFlow::Continue(())
    })
    .await
    .unwrap();
    assert_eq!(none, 0);
    let bad = c
        .read_stream_each("", ReadOptions::forwards(), |_| {
            std::ops::ControlFlow::Continue(())
        })
        .await;
    assert!(matches!(
        store_error(failed(bad)),
        Error::InvalidInput { .. }
    ));
    // The connection serves other calls after a read broken off.
    assert_eq!(c.head().await.unwrap(), 3000);
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_expected_revision_names_stream_expected_and_actual() {
    let server = start().await;
    let mut c = gesta_client(server.addr).await;
    c.append(vec![ev("A", "s"), ev("B", "s")], AppendOptions::new())
        .await
        .unwrap();
    let cases = [
        ("s", ExpectedRevision::Exact(0), Some(1)),
        ("s", ExpectedRevision::NoStream, Some(1)),
        ("other", ExpectedRevision::Exists, None),
        ("other", ExpectedRevision::Exact(0), None),
    ];
    for (stream, expected, actual) in cases {
        let options = AppendOptions::new()
            .expect("s", ExpectedRevision::Exact(1))
            .expect(stream, expected);
        let err = c.append(vec![ev("C", "s")], options).await.unwrap_err();
        match store_error(err) {
            Error::WrongExpectedRevision {
                stream: s,
                expected: e,
                actual: a,
            } => assert_eq!((s.as_str(), e, a), (stream, expected, actual)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(server.store.head(), 2);

    // On the wire: FAILED_PRECONDITION with the typed detail.
    let err = c
        .raw()
        .append(g::AppendRequest {
            events: vec![g::NewEvent {
                event_type: "C".into(),
                stream: Some("s".into()),
                ..Default::default()
            }],
            expected: vec![g::StreamExpectation {
                stream: "s".into(),
                revision: Some(g::ExpectedRevision {
                    kind: Some(g::expected_revision::Kind::Exact(7)),
                }),
            }],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let Some(Kind::WrongExpectedRevision(w)) = error_detail(&err).and_then(|d| d.kind) else {
        panic!("{err:?}");
    };
    assert_eq!(w.stream, "s");
    assert_eq!(
        w.expected.and_then(|e| e.kind),
        Some(g::expected_revision::Kind::Exact(7))
    );
    assert_eq!(w.actual, Some(1));

    // An expectation that does not say which is refused, not taken as Any.
    let err = c
        .raw()
        .append(g::AppendRequest {
            events: vec![g::NewEvent {
                event_type: "C".into(),
                ..Default::default()
            }],
            expected: vec![g::StreamExpectation {
                stream: "s".into(),
                revision: None,
            }],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(matches!(
        error_detail(&err).and_then(|d| d.kind),
        Some(Kind::InvalidInput(_))
    ));
    assert_eq!(server.store.head(), 2);
    server.stop().await;
}

#[tokio::test]
async fn a_failed_condition_names_the_conflicting_position() {
    let server = start().await;
    let mut c = gesta_client(server.addr).await;
    let tagged = |t: &str| NewEvent::new("Enrolled", "{}").tag(t);
    c.append(
        vec![tagged("course:1"), tagged("course:2"), tagged("course:1")],
        AppendOptions::new(),
    )
    .await
    .unwrap();
    let query = Query::tag("course:1");
    for (after, position) in [(None, 1), (Some(1), 3)] {
        let options = AppendOptions::new().fail_if(query.clone(), after);
        let err = c
            .append(vec![tagged("course:1")], options)
            .await
            .unwrap_err();
        match store_error(err) {
            Error::ConditionFailed { position: p } => assert_eq!(p, position, "{after:?}"),
            other => panic!("{other:?}"),
        }
    }
    // Nothing after 3 matches: the append goes through.
    let options = AppendOptions::new().fail_if(query.clone(), Some(3));
    let appended = c.append(vec![tagged("course:1")], options).await.unwrap();
    assert_eq!((appended.first, appended.last), (4, 4));

    let err = c
        .raw()
        .append(g::AppendRequest {
            events: vec![g::NewEvent {
                event_type: "Enrolled".into(),
                ..Default::default()
            }],
            condition: Some(g::AppendCondition {
                fail_if_events_match: Some(g::Query {
                    items: vec![g::QueryItem {
                        types: vec![],
                        tags: vec!["course:2".into()],
                    }],
                }),
                after: Some(0),
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(
        error_detail(&err).and_then(|d| d.kind),
        Some(Kind::ConditionFailed(g::ConditionFailed { position: 2 }))
    );
    assert_eq!(server.store.head(), 4);
    server.stop().await;
}

#[tokio::test]
async fn ids_make_appends_idempotent_and_find_events() {
    let server = start().await;
    let mut c = gesta_client(server.addr).await;
    let (a, b) = (0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8u128, 42u128);
    let batch = vec![ev("A", "s").id(a), ev("B", "s").id(b)];
    let first = c.append(batch.clone(), AppendOptions::new()).await.unwrap();
    // Sent again: the same positions, nothing appended.
    let again = c.append(batch, AppendOptions::new()).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(server.store.head(), 2);
    // One id committed in another batch.
    let err = c
        .append(
            vec![ev("C", "s").id(7), ev("A", "s").id(a)],
            AppendOptions::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(store_error(err), Error::DuplicateEventId { id } if id == a));
    let err = c
        .raw()
        .append(g::AppendRequest {
            events: vec![g::NewEvent {
                event_type: "A".into(),
                id: Some("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(
        error_detail(&err).and_then(|d| d.kind),
        Some(Kind::DuplicateEventId(g::DuplicateEventId {
            id: "67e55044-10b1-426f-9247-bb680e5fe0c8".into()
        }))
    );

    let found = c.event_by_id(a).await.unwrap().unwrap();
    assert_eq!(found, server.store.event_by_id(a).unwrap().unwrap());
    assert_eq!(
        (found.position, found.id, found.event_type.as_str()),
        (1, Some(a), "A")
    );
    assert_eq!(c.event_by_id(b).await.unwrap().unwrap().position, 2);
    // Unknown: none, not an error; malformed: refused.
    assert_eq!(c.event_by_id(99).await.unwrap(), None);
    let err = c
        .raw()
        .event_by_id(g::EventByIdRequest { id: "nope".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = c
        .raw()
        .append(g::AppendRequest {
            events: vec![g::NewEvent {
                event_type: "A".into(),
                id: Some("xyz".into()),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(server.store.head(), 2);
    server.stop().await;
}

#[tokio::test]
async fn positions_by_time_and_tracking_info() {
    let server = start().await;
    let mut c = gesta_client(server.addr).await;
    assert_eq!(c.position_at(u64::MAX).await.unwrap(), 0);
    c.append(vec![ev("A", "s")], AppendOptions::new().track("up", 10))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    c.append(
        vec![ev("B", "s"), ev("C", "s")],
        AppendOptions::new().track("up", 11),
    )
    .await
    .unwrap();
    let events = collect(c.read_stream("s", ReadOptions::forwards()).await.unwrap()).await;
    let (t1, t2) = (events[0].timestamp_micros, events[1].timestamp_micros);
    assert!(t1 < t2);
    assert_eq!(c.position_at(0).await.unwrap(), 0);
    assert_eq!(c.position_at(t1 - 1).await.unwrap(), 0);
    assert_eq!(c.position_at(t1).await.unwrap(), 1);
    assert_eq!(c.position_at(t2 - 1).await.unwrap(), 1);
    assert_eq!(c.position_at(t2).await.unwrap(), 3);
    assert_eq!(c.position_at(u64::MAX).await.unwrap(), 3);
    for t in [0, t1, t2 - 1, t2, u64::MAX] {
        assert_eq!(
            c.position_at(t).await.unwrap(),
            server.store.position_at(t).unwrap()
        );
    }

    assert_eq!(c.tracking_info("up").await.unwrap(), Some(11));
    assert_eq!(c.tracking_info("down").await.unwrap(), None);
    let err = c
        .append(vec![ev("D", "s")], AppendOptions::new().track("up", 11))
        .await
        .unwrap_err();
    match store_error(err) {
        Error::TrackingConflict {
            source_name,
            position,
            stored,
        } => assert_eq!((source_name.as_str(), position, stored), ("up", 11, 11)),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.store.head(), 3);
    server.stop().await;
}

#[tokio::test]
async fn subscriptions_catch_up_then_follow_one_append_per_batch() {
    let server = start().await;
    let mut c = gesta_client(server.addr).await;
    c.append(vec![ev("A", "x"), ev("B", "x")], AppendOptions::new())
        .await
        .unwrap();
    c.append(vec![ev("A", "y")], AppendOptions::new())
        .await
        .unwrap();
    let mut sub = c.subscribe(&Query::event_type("A"), 0).await.unwrap();
    let positions = |b: Vec<RecordedEvent>| b.iter().map(|e| e.position).collect::<Vec<_>>();
    assert_eq!(positions(sub.next().await.unwrap().unwrap()), vec![1]);
    assert_eq!(positions(sub.next().await.unwrap().unwrap()), vec![3]);
    // Live: an append of 2000 matching events is one batch, though it
    // travels in several responses.
    let big: Vec<_> = (0..2000).map(|_| ev("A", "z")).collect();
    c.append(big, AppendOptions::new()).await.unwrap();
    let batch = sub.next().await.unwrap().unwrap();
    assert_eq!(positions(batch), (4..=2003).collect::<Vec<_>>());
    c.append(vec![ev("B", "x"), ev("A", "x")], AppendOptions::new())
        .await
        .unwrap();
    assert_eq!(positions(sub.next().await.unwrap().unwrap()), vec![2005]);

    // The parts on the wire.
    let mut raw = c
        .raw()
        .subscribe(g::SubscribeRequest {
            query: None,
            after: 3,
        })
        .await
        .unwrap()
        .into_inner();
    let first = raw.message().await.unwrap().unwrap();
    assert!(first.continued);
    let mut count = first.events.len();
    loop {
        let part = raw.message().await.unwrap().unwrap();
        count += part.events.len();
        if !part.continued {
            break;
        }
    }
    assert_eq!(count, 2000);
    // After the head: refused.
    let err = failed(c.subscribe(&Query::all(), 9999).await);
    assert!(matches!(store_error(err), Error::InvalidInput { .. }));
    server.stop().await;
}

#[tokio::test]
async fn durable_subscriptions_keep_their_cursor_on_the_server() {
    let server = start().await;
    let mut c = gesta_client(server.addr).await;
    for i in 0..3 {
        c.append(vec![ev(&format!("E{i}"), "s")], AppendOptions::new())
            .await
            .unwrap();
    }
    let mut sub = c.subscribe_durable("proj", &Query::all()).await.unwrap();
    assert_eq!(sub.next().await.unwrap().unwrap()[0].position, 1);
    assert_eq!(sub.next().await.unwrap().unwrap()[0].position, 2);
    assert_eq!(c.ack("proj", 2).await.unwrap(), 2);
    // An older position changes nothing; one past the head is refused.
    assert_eq!(c.ack("proj", 1).await.unwrap(), 2);
    let err = c.ack("proj", 99).await.unwrap_err();
    assert!(matches!(store_error(err), Error::InvalidInput { .. }));
    assert_eq!(
        c.durable_subscriptions().await.unwrap(),
        vec![DurableInfo {
            name: "proj".into(),
            acknowledged: 2,
            open: true
        }]
    );
    // One subscription per name; an open one cannot be deleted.
    let err = c.subscribe_durable("proj", &Query::all()).await;
    let err = match err {
        Ok(mut s) => s.next().await.unwrap().unwrap_err(),
        Err(e) => e,
    };
    let err = status(err);
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        error_detail(&err).and_then(|d| d.kind),
        Some(Kind::SubscriptionOpen(g::SubscriptionOpen {
            name: "proj".into()
        }))
    );
    let err = status(c.delete_durable_subscription("proj").await.unwrap_err());
    assert_eq!(err.code(), Code::FailedPrecondition);

    // Closed by the client: the server lets the name go.
    drop(sub);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while c.durable_subscriptions().await.unwrap()[0].open {
        assert!(tokio::time::Instant::now() < deadline, "still open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Acknowledged while closed (after a broken stream, say).
    assert_eq!(c.ack("proj", 3).await.unwrap(), 3);
    assert_eq!(
        server.store.durable_subscriptions().unwrap(),
        vec![gesta::DurableSubscriptionState {
            name: "proj".into(),
            acknowledged: 3
        }]
    );
    // Resumes after the acknowledged position.
    let mut sub = c.subscribe_durable("proj", &Query::all()).await.unwrap();
    c.append(vec![ev("E3", "s")], AppendOptions::new())
        .await
        .unwrap();
    let batch = sub.next().await.unwrap().unwrap();
    assert_eq!((batch[0].position, batch[0].event_type.as_str()), (4, "E3"));
    drop(sub);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match c.delete_durable_subscription("proj").await {
            Ok(deleted) => {
                assert!(deleted);
                break;
            }
            Err(ClientError::Status(s)) if s.code() == Code::FailedPrecondition => {
                assert!(tokio::time::Instant::now() < deadline, "still open");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(!c.delete_durable_subscription("proj").await.unwrap());
    assert_eq!(c.durable_subscriptions().await.unwrap(), vec![]);
    let err = c.subscribe_durable("", &Query::all()).await;
    let err = match err {
        Ok(mut s) => s.next().await.unwrap().unwrap_err(),
        Err(e) => e,
    };
    assert!(matches!(store_error(err), Error::InvalidInput { .. }));
    server.stop().await;
}

#[tokio::test]
async fn snapshots_save_load_list_and_delete() {
    let server = start().await;
    let mut c = gesta_client(server.addr).await;
    for i in 0..5 {
        c.append(vec![ev(&format!("E{i}"), "s")], AppendOptions::new())
            .await
            .unwrap();
    }
    c.save_snapshot("counter", 2, &b"two"[..]).await.unwrap();
    c.save_snapshot("counter", 4, &b"four"[..]).await.unwrap();
    assert_eq!(c.list_snapshots("counter").await.unwrap(), vec![2, 4]);
    let load = |at| {
        let mut c = c.clone();
        async move { c.load_snapshot("counter", at).await.unwrap() }
    };
    let newest = load(u64::MAX).await.unwrap();
    assert_eq!(
        (newest.position, newest.state.as_slice()),
        (4, &b"four"[..])
    );
    let at3 = load(3).await.unwrap();
    assert_eq!((at3.position, at3.state.as_slice()), (2, &b"two"[..]));
    assert!(load(1).await.is_none());
    // The store has what the client saved.
    let stored = server.store.load_snapshot("counter", 3).unwrap().unwrap();
    assert_eq!((stored.position, stored.state), (2, b"two".to_vec()));
    assert_eq!(c.load_snapshot("other", u64::MAX).await.unwrap(), None);
    assert_eq!(c.list_snapshots("other").await.unwrap(), Vec::<u64>::new());

    let err = c
        .save_snapshot("counter", 6, &b"six"[..])
        .await
        .unwrap_err();
    assert!(matches!(store_error(err), Error::InvalidInput { .. }));
    let err = c.save_snapshot("", 1, &b"x"[..]).await.unwrap_err();
    assert!(matches!(store_error(err), Error::InvalidInput { .. }));

    assert!(c.delete_snapshot("counter", 4).await.unwrap());
    assert!(!c.delete_snapshot("counter", 4).await.unwrap());
    assert_eq!(c.list_snapshots("counter").await.unwrap(), vec![2]);
    // Through the generated client, absent `at_or_before` is the newest.
    let r = c
        .raw()
        .load_snapshot(g::LoadSnapshotRequest {
            key: "counter".into(),
            at_or_before: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.snapshot.map(|s| s.position), Some(2));
    server.stop().await;
}

/// Every name of a listing, fetched `page` names at a time by passing
/// each page's last name as the next `after`; the pages' lengths too.
async fn paged(
    c: &mut GestaClient,
    what: gesta::Listing,
    prefix: &str,
    page: usize,
) -> (Vec<Listed>, Vec<usize>) {
    let (mut all, mut lengths) = (Vec::new(), Vec::new());
    loop {
        let after = all.last().map(|l: &Listed| l.name.clone());
        let after = after.as_deref();
        let got = match what {
            gesta::Listing::Streams => c.list_streams(prefix, after, page).await,
            gesta::Listing::Types => c.list_types(prefix, after, page).await,
            gesta::Listing::Tags => c.list_tags(prefix, after, page).await,
        }
        .unwrap();
        lengths.push(got.len());
        let last = got.len() < page;
        all.extend(got);
        if last {
            return (all, lengths);
        }
    }
}

fn listed(names: &[(&str, u64)]) -> Vec<Listed> {
    names.iter().map(|(n, c)| Listed::new(*n, *c)).collect()
}

#[tokio::test]
async fn listings_count_filter_by_prefix_and_page() {
    let server = start().await;
    let mut c = gesta_client(server.addr).await;
    for (listing, expected) in [
        (gesta::Listing::Streams, vec![]),
        (gesta::Listing::Types, vec![]),
        (gesta::Listing::Tags, vec![]),
    ] {
        assert_eq!(paged(&mut c, listing, "", 10).await, (expected, vec![0]));
    }
    let at = |event_type: &str, stream: Option<&str>, tags: &[&str]| {
        let e = NewEvent::new(event_type, "{}");
        let e = tags.iter().fold(e, |e, t| e.tag(*t));
        match stream {
            Some(s) => e.stream(s),
            None => e,
        }
    };
    let appended = c
        .append(
            vec![
                at("OrderPlaced", Some("order-1"), &["c:1", "region:eu"]),
                at("OrderPaid", Some("order-1"), &["c:1"]),
                at("OrderPlaced", Some("order-2"), &["c:2"]),
            ],
            AppendOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!((appended.first, appended.last), (1, 3));
    c.append(
        vec![
            at("OrderPlaced", Some("order-10"), &["c:1"]),
            // A tag carried twice counts the event once.
            at("UserJoined", Some("user-1"), &["c:1", "c:1"]),
            // No stream: counted for its type only.
            at("Tick", None, &[]),
            // Past every ASCII name in byte order.
            at("Été", Some("élan"), &["é"]),
            at("OrderPaid", Some("order-1"), &["c:1", "region:eu"]),
        ],
        AppendOptions::new(),
    )
    .await
    .unwrap();

    let streams = listed(&[
        ("order-1", 3),
        ("order-10", 1),
        ("order-2", 1),
        ("user-1", 1),
        ("élan", 1),
    ]);
    let types = listed(&[
        ("OrderPaid", 2),
        ("OrderPlaced", 3),
        ("Tick", 1),
        ("UserJoined", 1),
        ("Été", 1),
    ]);
    let tags = listed(&[("c:1", 5), ("c:2", 1), ("region:eu", 2), ("é", 1)]);
    assert_eq!(c.list_streams("", None, 100).await.unwrap(), streams);
    assert_eq!(c.list_types("", None, 100).await.unwrap(), types);
    assert_eq!(c.list_tags("", None, 100).await.unwrap(), tags);
    // What the store itself answers.
    for (listing, expected) in [
        (gesta::Listing::Streams, &streams),
        (gesta::Listing::Types, &types),
        (gesta::Listing::Tags, &tags),
    ] {
        assert_eq!(
            &server.store.list(listing, "", None, 100).unwrap(),
            expected
        );
    }

    // Prefix and after, alone and together; `after` need not be held.
    assert_eq!(
        c.list_streams("order-1", None, 100).await.unwrap(),
        listed(&[("order-1", 3), ("order-10", 1)])
    );
    assert_eq!(
        c.list_streams("order-", Some("order-10"), 100)
            .await
            .unwrap(),
        listed(&[("order-2", 1)])
    );
    assert_eq!(
        c.list_streams("", Some("order-15"), 2).await.unwrap(),
        listed(&[("order-2", 1), ("user-1", 1)])
    );
    assert_eq!(
        c.list_types("Order", None, 1).await.unwrap(),
        listed(&[("OrderPaid", 2)])
    );
    assert_eq!(
        c.list_tags("c:", Some("c:1"), 100).await.unwrap(),
        listed(&[("c:2", 1)])
    );
    assert_eq!(c.list_tags("nope", None, 100).await.unwrap(), vec![]);
    assert_eq!(c.list_types("", Some("Été"), 100).await.unwrap(), vec![]);

    // Pages put together are the whole listing, for every page size.
    for (listing, whole) in [
        (gesta::Listing::Streams, &streams),
        (gesta::Listing::Types, &types),
        (gesta::Listing::Tags, &tags),
    ] {
        for page in 1..=whole.len() + 1 {
            let (all, lengths) = paged(&mut c, listing, "", page).await;
            assert_eq!(&all, whole, "{listing:?} by {page}");
            let mut expected = vec![page; whole.len() / page];
            expected.push(whole.len() % page);
            assert_eq!(lengths, expected, "{listing:?} by {page}");
        }
    }
    let (orders, lengths) = paged(&mut c, gesta::Listing::Streams, "order-", 2).await;
    assert_eq!(orders, streams[..3]);
    assert_eq!(lengths, [2, 1]);
    server.stop().await;
}

#[tokio::test]
async fn bad_listings_are_invalid_input() {
    let server = start().await;
    let mut c = gesta_client(server.addr).await;
    c.append(vec![ev("A", "s")], AppendOptions::new())
        .await
        .unwrap();
    let long = "x".repeat(gesta::event::MAX_NAME_LEN + 1);
    let max = gesta::listing::MAX_LIST_LIMIT;
    for (prefix, after, limit) in [
        ("", None, 0),
        ("", None, max + 1),
        (long.as_str(), None, 10),
        ("", Some(long.as_str()), 10),
    ] {
        for result in [
            c.list_streams(prefix, after, limit).await,
            c.list_types(prefix, after, limit).await,
            c.list_tags(prefix, after, limit).await,
        ] {
            let e = store_error(result.unwrap_err());
            assert!(
                matches!(&e, Error::InvalidInput { reason } if reason.contains("listing")),
                "{prefix:?} {after:?} {limit}: {e:?}"
            );
        }
    }
    // The status itself: INVALID_ARGUMENT with the typed detail, and a
    // limit beyond any page (even beyond usize) refused the same way.
    for limit in [0, u64::MAX] {
        let err = c
            .raw()
            .list_tags(g::ListTagsRequest {
                prefix: String::new(),
                after: None,
                limit,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(matches!(
            error_detail(&err).and_then(|d| d.kind),
            Some(Kind::InvalidInput(g::InvalidInput { reason })) if reason.contains("limit")
        ));
    }
    // The largest page is fine, and the store is as it was.
    assert_eq!(
        c.list_streams("", None, max).await.unwrap(),
        vec![Listed::new("s", 1)]
    );
    assert_eq!(server.store.head(), 1);
    server.stop().await;
}

#[tokio::test]
async fn every_call_needs_the_api_key_and_umadb_answers_on_the_same_port() {
    let server = start_with(ServeConfig {
        api_key: Some("s3cret".into()),
        insecure_loopback_api_key: true,
        ..ServeConfig::default()
    })
    .await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    for mut refused in [
        GestaClient::new(channel.clone()),
        GestaClient::with_api_key(channel.clone(), "wrong").unwrap(),
    ] {
        let err = status(refused.head().await.unwrap_err());
        assert_eq!(err.code(), Code::Unauthenticated);
        assert_eq!(
            error_detail(&err).and_then(|d| d.kind),
            Some(Kind::Unauthenticated(g::Empty {}))
        );
        let err = refused
            .append(vec![ev("A", "s")], AppendOptions::new())
            .await
            .unwrap_err();
        assert_eq!(status(err).code(), Code::Unauthenticated);
        let err = failed(refused.read_stream("s", ReadOptions::forwards()).await);
        assert_eq!(status(err).code(), Code::Unauthenticated);
        let err = refused.list_streams("", None, 10).await.unwrap_err();
        assert_eq!(status(err).code(), Code::Unauthenticated);
        let err = refused
            .add_tags(&Target::Query(Query::all()), &["t".to_owned()])
            .await
            .unwrap_err();
        assert_eq!(status(err).code(), Code::Unauthenticated);
        let err = refused.audit_log(0, 10).await.unwrap_err();
        assert_eq!(status(err).code(), Code::Unauthenticated);
        let err = refused
            .redact(&Target::Query(Query::all()))
            .await
            .unwrap_err();
        assert_eq!(status(err).code(), Code::Unauthenticated);
        let err = refused.delete_stream("s").await.unwrap_err();
        assert_eq!(status(err).code(), Code::Unauthenticated);
        let err = refused
            .set_retention(&gesta::RetentionRule::stream("s").max_count(1))
            .await
            .unwrap_err();
        assert_eq!(status(err).code(), Code::Unauthenticated);
        let err = refused.enforce_retention().await.unwrap_err();
        assert_eq!(status(err).code(), Code::Unauthenticated);
    }
    assert_eq!(server.store.head(), 0);

    let mut c = GestaClient::with_api_key(channel.clone(), "s3cret").unwrap();
    let appended = c
        .append(vec![ev("A", "s")], AppendOptions::new())
        .await
        .unwrap();
    assert_eq!(appended.last, 1);
    assert_eq!(c.head().await.unwrap(), 1);
    assert_eq!(
        c.list_streams("", None, 10).await.unwrap(),
        vec![Listed::new("s", 1)]
    );
    // Tagging is a write, admitted with the key like an append.
    let added = c
        .add_tags(&Target::Positions(vec![1]), &["t".to_owned()])
        .await
        .unwrap();
    assert_eq!(added.tagged, 1);
    assert_eq!(c.audit_log(0, 10).await.unwrap().len(), 1);
    // So is redacting.
    let redacted = c.redact(&Target::Positions(vec![1])).await.unwrap();
    assert_eq!(redacted.redacted, 1);
    assert_eq!(c.audit_log(0, 10).await.unwrap().len(), 2);

    // umadb.v1.DCB on the same port, with the same key, sees the event.
    let mut dcb = gesta_server::proto::v1::dcb_client::DcbClient::new(channel);
    let mut request = tonic::Request::new(gesta_server::proto::v1::HeadRequest {});
    request
        .metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    assert_eq!(
        dcb.head(request).await.unwrap().into_inner().position,
        Some(1)
    );
    let err = dcb
        .head(gesta_server::proto::v1::HeadRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // Refused with UmaDB's details there, as before.
    assert_eq!(
        details(&err).error_type,
        gesta_server::proto::v1::error_response::ErrorType::Authentication as i32
    );
    server.stop().await;
}

#[tokio::test]
async fn umadb_and_gesta_share_the_store() {
    let server = start().await;
    let mut c = gesta_client(server.addr).await;
    let mut dcb = client(server.addr).await;
    let position = append(&mut dcb, vec![event("FromUmaDB", &["t:1"])], None)
        .await
        .unwrap();
    assert_eq!(position, 1);
    c.append(vec![ev("FromGesta", "s").tag("t:1")], AppendOptions::new())
        .await
        .unwrap();
    let read = collect(
        c.read(&Query::tag("t:1"), ReadOptions::forwards())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        read.iter()
            .map(|e| (e.position, e.event_type.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "FromUmaDB"), (2, "FromGesta")]
    );
    let responses = read_all(
        &mut dcb,
        gesta_server::proto::v1::ReadRequest {
            query: Some(query(&[], &["t:1"])),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(responses, vec![(vec![1, 2], Some(2))]);
    // The health service knows both.
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    for service in ["umadb.v1.DCB", "gesta.v1.Gesta"] {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn over_tls_with_an_api_key() {
    use gesta_server::TlsFiles;
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = certified.cert.pem();
    let files = tempfile::tempdir().unwrap();
    let tls = TlsFiles {
        cert: files.path().join("cert.pem"),
        key: files.path().join("key.pem"),
    };
    std::fs::write(&tls.cert, &cert_pem).unwrap();
    std::fs::write(&tls.key, certified.signing_key.serialize_pem()).unwrap();
    let server = start_with(ServeConfig {
        tls: Some(tls),
        api_key: Some("k1".into()),
        ..ServeConfig::default()
    })
    .await;
    let channel = Endpoint::from_shared(format!("https://localhost:{}", server.addr.port()))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&cert_pem))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = GestaClient::with_api_key(channel, "k1").unwrap();
    let appended = c
        .append(
            vec![ev("Secure", "s")],
            AppendOptions::new().expect("s", ExpectedRevision::NoStream),
        )
        .await
        .unwrap();
    assert_eq!((appended.first, appended.last), (1, 1));
    assert_eq!(c.stream_revision("s").await.unwrap(), Some(0));
    // A plaintext client gets nowhere.
    let plain = GestaClient::connect(format!("http://127.0.0.1:{}", server.addr.port())).await;
    if let Ok(mut plain) = plain {
        assert!(plain.head().await.is_err());
    }
    server.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_subscriptions_and_keeps_acknowledged_cursors() {
    let server = start().await;
    let mut c = gesta_client(server.addr).await;
    c.append(vec![ev("A", "s"), ev("B", "s")], AppendOptions::new())
        .await
        .unwrap();
    let mut durable = c.subscribe_durable("proj", &Query::all()).await.unwrap();
    let mut live = c.subscribe(&Query::all(), 0).await.unwrap();
    assert_eq!(durable.next().await.unwrap().unwrap().len(), 2);
    assert_eq!(live.next().await.unwrap().unwrap().len(), 2);
    assert_eq!(c.ack("proj", 2).await.unwrap(), 2);
    // Stops, though both subscriptions are open and waiting.
    let dir = tokio::time::timeout(Duration::from_secs(10), server.stop())
        .await
        .expect("the server stopped");
    assert!(durable.next().await.is_none_or(|r| r.is_err()));
    assert!(live.next().await.is_none_or(|r| r.is_err()));
    let store = gesta::Store::open(dir.path()).unwrap();
    assert_eq!(
        store.durable_subscriptions().unwrap(),
        vec![gesta::DurableSubscriptionState {
            name: "proj".into(),
            acknowledged: 2
        }]
    );
}

#[tokio::test]
async fn limits_bound_events_and_open_streams_across_both_services() {
    let server = start_with(ServeConfig {
        max_event_bytes: 1000,
        max_open_streams: 1,
        ..ServeConfig::default()
    })
    .await;
    let mut c = gesta_client(server.addr).await;
    // No events, or one too large to come back: refused, nothing appended.
    let err = c.append(vec![], AppendOptions::new()).await.unwrap_err();
    assert!(matches!(store_error(err), Error::InvalidInput { .. }));
    let big = NewEvent::new("Big", vec![0u8; 2000]);
    let err = c
        .append(vec![big.clone()], AppendOptions::new())
        .await
        .unwrap_err();
    match store_error(err) {
        Error::InvalidInput { reason } => assert!(reason.contains("1000"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.store.head(), 0);
    // Appended through the Rust API, it ends a read after what precedes it.
    server.store.append(vec![ev("Small", "s")]).unwrap();
    server.store.append(vec![big.stream("s")]).unwrap();
    let mut read = c.read_stream("s", ReadOptions::forwards()).await.unwrap();
    assert_eq!(read.next().await.unwrap().unwrap().position, 1);
    let err = status(read.next().await.unwrap().unwrap_err());
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(matches!(
        error_detail(&err).and_then(|d| d.kind),
        Some(Kind::ResourceExhausted(_))
    ));
    drop(read);
    let err = status(c.read_stream_last("s").await.unwrap_err());
    assert_eq!(err.code(), Code::ResourceExhausted);

    // One open stream for both services: a DCB subscription holds it
    // (one that skips the large event, which would end it).
    let mut dcb = client(server.addr).await;
    let mut held = dcb
        .subscribe(gesta_server::proto::v1::SubscribeRequest {
            query: Some(query(&["Small"], &[])),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(held.message().await.unwrap().unwrap().events.len(), 1);
    let err = status(failed(c.subscribe(&Query::all(), 0).await));
    assert_eq!(err.code(), Code::ResourceExhausted);
    let err = status(failed(c.read(&Query::all(), ReadOptions::forwards()).await));
    assert_eq!(err.code(), Code::ResourceExhausted);
    drop(held);
    // Released once the server sees the call end.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut sub = loop {
        match c.subscribe(&Query::event_type("Small"), 0).await {
            Ok(sub) => break sub,
            Err(_) => {
                assert!(tokio::time::Instant::now() < deadline, "never released");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    assert_eq!(sub.next().await.unwrap().unwrap()[0].position, 1);
    server.stop().await;
}

#[tokio::test]
async fn a_durable_subscription_delivers_only_what_its_query_matches() {
    let server = start().await;
    let mut c = gesta_client(server.addr).await;
    c.append(
        vec![ev("A", "s"), ev("B", "s"), ev("A", "t")],
        AppendOptions::new(),
    )
    .await
    .unwrap();
    c.append(vec![ev("B", "s")], AppendOptions::new())
        .await
        .unwrap();
    c.append(vec![ev("A", "u")], AppendOptions::new())
        .await
        .unwrap();
    let mut sub = c
        .subscribe_durable("only-a", &Query::event_type("A"))
        .await
        .unwrap();
    let batch = sub.next().await.unwrap().unwrap();
    assert_eq!(
        batch
            .iter()
            .map(|e| (e.position, e.stream.as_deref()))
            .collect::<Vec<_>>(),
        vec![(1, Some("s")), (3, Some("t"))]
    );
    let batch = sub.next().await.unwrap().unwrap();
    assert_eq!(
        batch.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![5]
    );
    server.stop().await;
}

/// What the store itself holds in its audit trail.
fn engine_audit(store: &gesta::Store, after: u64, limit: usize) -> Vec<AuditEntry> {
    gesta::EventStore::audit_log(store, after, limit).unwrap()
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[tokio::test]
async fn retroactive_tags_by_position_and_query_and_their_audit_trail() {
    let server = start().await;
    let mut c = gesta_client(server.addr).await;
    c.append(
        vec![
            NewEvent::new("Enrolled", "{}").tag("student:s1"),
            NewEvent::new("Enrolled", "{}").tag("student:s2"),
            NewEvent::new("Graded", "{}").tag("student:s1"),
        ],
        AppendOptions::new(),
    )
    .await
    .unwrap();

    // By positions (repeats count once), by a query, by the query of every
    // event; an event keeps a tag it has, once.
    let by_positions = Target::Positions(vec![3, 1, 3]);
    let added = c
        .add_tags(&by_positions, &strings(&["gdpr:s1"]))
        .await
        .unwrap();
    assert_eq!(
        added,
        TagsAdded {
            targeted: 2,
            tagged: 2
        }
    );
    let by_query =
        Target::Query(Query::tag("student:s1").or(QueryItem::new().event_type("Graded")));
    let added = c
        .add_tags(&by_query, &strings(&["gdpr:s1", "reviewed", "gdpr:s1"]))
        .await
        .unwrap();
    assert_eq!(
        added,
        TagsAdded {
            targeted: 2,
            tagged: 2
        }
    );
    let everything = Target::Query(Query::all());
    let added = c.add_tags(&everything, &strings(&["2026"])).await.unwrap();
    assert_eq!(
        added,
        TagsAdded {
            targeted: 3,
            tagged: 3
        }
    );

    // Reads, listings and the DCB service see the tags, as the store does;
    // no position moved.
    let query = Query::tag("gdpr:s1");
    let read = collect(c.read(&query, ReadOptions::forwards()).await.unwrap()).await;
    let engine: Vec<_> = server
        .store
        .read(&query, ReadOptions::forwards())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(read, engine);
    assert_eq!(
        read.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert_eq!(read[0].tags, ["student:s1", "gdpr:s1", "reviewed", "2026"]);
    assert_eq!(
        c.list_tags("", None, 10).await.unwrap(),
        listed(&[
            ("2026", 3),
            ("gdpr:s1", 2),
            ("reviewed", 2),
            ("student:s1", 2),
            ("student:s2", 1)
        ])
    );
    let mut dcb = client(server.addr).await;
    let responses = read_all(
        &mut dcb,
        gesta_server::proto::v1::ReadRequest {
            query: Some(common::query(&[], &["gdpr:s1"])),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(responses, vec![(vec![1, 3], Some(3))]);
    assert_eq!(c.head().await.unwrap(), 3);

    // The trail: what was asked (tags each once, the target as given) and
    // what it did, as the store keeps it.
    let trail = c.audit_log(0, 10).await.unwrap();
    assert_eq!(trail, engine_audit(&server.store, 0, 10));
    assert_eq!(trail.len(), 3);
    let expected = [
        (by_positions, strings(&["gdpr:s1"]), (2, 2)),
        (by_query, strings(&["gdpr:s1", "reviewed"]), (2, 2)),
        (everything, strings(&["2026"]), (3, 3)),
    ];
    for (i, (entry, (target, tags, (targeted, tagged)))) in trail.iter().zip(expected).enumerate() {
        assert_eq!(entry.sequence, i as u64 + 1);
        assert_eq!(entry.head, 3);
        assert!(entry.timestamp_micros > 0);
        assert_eq!(
            entry.operation,
            Operation::AddTags {
                tags,
                target,
                result: TagsAdded { targeted, tagged }
            }
        );
    }
    assert!(trail[0].timestamp_micros <= trail[2].timestamp_micros);
    // Pages: after a sequence, at most a limit.
    assert_eq!(c.audit_log(1, 1).await.unwrap(), trail[1..2]);
    assert_eq!(c.audit_log(1, 10).await.unwrap(), trail[1..]);
    assert!(c.audit_log(3, 10).await.unwrap().is_empty());
    // The messages themselves: the operation as a oneof with its fields.
    let r = c
        .raw()
        .audit_log(g::AuditLogRequest { after: 2, limit: 5 })
        .await
        .unwrap()
        .into_inner();
    assert!(!r.truncated);
    assert_eq!(r.entries.len(), 1);
    assert_eq!(r.entries[0].sequence, 3);
    assert_eq!(
        r.entries[0].operation,
        Some(g::audit_entry::Operation::AddTags(g::AddTagsOperation {
            tags: strings(&["2026"]),
            target: Some(g::Target {
                kind: Some(g::target::Kind::Query(g::Query { items: vec![] }))
            }),
            targeted: 3,
            tagged: 3,
        }))
    );
    let r = c
        .raw()
        .add_tags(g::AddTagsRequest {
            target: Some(g::Target {
                kind: Some(g::target::Kind::Positions(g::Positions {
                    positions: vec![2],
                })),
            }),
            tags: strings(&["late"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.targeted, r.tagged), (1, 1));

    // They survive a restart of the server and the store.
    let dir = server.stop().await;
    let server = start_in(dir, ServeConfig::default()).await;
    let mut c = gesta_client(server.addr).await;
    assert_eq!(c.audit_log(0, 10).await.unwrap()[..3], trail);
    let read = collect(
        c.read(&Query::tag("late"), ReadOptions::forwards())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].tags, ["student:s2", "2026", "late"]);
    server.stop().await;
}

#[tokio::test]
async fn bad_add_tags_and_audit_requests_are_invalid_input_and_change_nothing() {
    let server = start().await;
    let mut c = gesta_client(server.addr).await;
    c.append(vec![ev("A", "s"), ev("B", "s")], AppendOptions::new())
        .await
        .unwrap();
    let tag = strings(&["x"]);
    let long = "x".repeat(gesta::event::MAX_NAME_LEN + 1);
    let cases: Vec<(Target, Vec<String>, &str)> = vec![
        (Target::Positions(vec![1, 3]), tag.clone(), "position 3"),
        (Target::Positions(vec![0]), tag.clone(), "position 0"),
        (Target::Positions(vec![]), tag.clone(), "position"),
        (Target::Positions(vec![1]), vec![], "tag"),
        (Target::Positions(vec![1]), strings(&[""]), "tag"),
        (Target::Positions(vec![1]), vec![long], "tag"),
        (Target::Query(Query::tag("")), tag.clone(), "query item 0"),
    ];
    for (target, tags, words) in cases {
        let e = store_error(c.add_tags(&target, &tags).await.unwrap_err());
        assert!(
            matches!(&e, Error::InvalidInput { reason } if reason.contains(words)),
            "{target:?} {tags:?}: {e:?}"
        );
    }
    // The status itself: INVALID_ARGUMENT with the typed detail; an unset
    // target is refused, not taken for every event.
    let err = c
        .raw()
        .add_tags(g::AddTagsRequest {
            target: Some(g::Target {
                kind: Some(g::target::Kind::Positions(g::Positions {
                    positions: vec![7],
                })),
            }),
            tags: tag.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(matches!(
        error_detail(&err).and_then(|d| d.kind),
        Some(Kind::InvalidInput(g::InvalidInput { reason })) if reason.contains("position 7")
    ));
    for target in [None, Some(g::Target { kind: None })] {
        let err = c
            .raw()
            .add_tags(g::AddTagsRequest {
                target,
                tags: tag.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(matches!(
            error_detail(&err).and_then(|d| d.kind),
            Some(Kind::InvalidInput(g::InvalidInput { reason })) if reason.contains("target")
        ));
    }
    // Audit pages of 1 to 10000 entries.
    let max = gesta::listing::MAX_LIST_LIMIT;
    for limit in [0, max + 1] {
        let e = store_error(c.audit_log(0, limit).await.unwrap_err());
        assert!(matches!(e, Error::InvalidInput { .. }), "{limit}: {e:?}");
    }
    for limit in [0, u64::MAX] {
        let err = c
            .raw()
            .audit_log(g::AuditLogRequest { after: 0, limit })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(matches!(
            error_detail(&err).and_then(|d| d.kind),
            Some(Kind::InvalidInput(_))
        ));
    }
    // Nothing was tagged, nothing recorded.
    assert!(c.audit_log(0, max).await.unwrap().is_empty());
    let tagged = collect(
        c.read(&Query::tag("x"), ReadOptions::forwards())
            .await
            .unwrap(),
    )
    .await;
    assert!(tagged.is_empty());
    assert_eq!(c.head().await.unwrap(), 2);
    server.stop().await;
}

/// Entries that target many positions are large: a page of them comes in
/// responses within the server's response size, which the client joins.
#[tokio::test]
async fn a_large_audit_page_is_answered_in_parts_and_joined() {
    let server = start_with(ServeConfig {
        max_message_bytes: 64 << 10,
        ..ServeConfig::default()
    })
    .await;
    let events: Vec<_> = (0..10_000).map(|_| NewEvent::new("E", "")).collect();
    server.store.append(events).unwrap();
    let mut c = gesta_client(server.addr).await;
    for i in 0..3 {
        let positions: Vec<u64> = (1..=10_000).collect();
        let added = c
            .add_tags(&Target::Positions(positions), &[format!("t{i}")])
            .await
            .unwrap();
        assert_eq!(added.tagged, 10_000);
    }
    // About 20 KB each, two do not fit in the 32 KiB of a response.
    let r = c
        .raw()
        .audit_log(g::AuditLogRequest {
            after: 0,
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.entries.len(), 1);
    assert!(r.truncated);
    let trail = c.audit_log(0, 10).await.unwrap();
    assert_eq!(trail, engine_audit(&server.store, 0, 10));
    assert_eq!(
        trail.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(c.audit_log(0, 2).await.unwrap(), trail[..2]);
    server.stop().await;
}

/// Every event a umadb.v1 read answers, in order.
async fn umadb_read(
    dcb: &mut gesta_server::proto::v1::dcb_client::DcbClient<tonic::transport::Channel>,
    query: Option<gesta_server::proto::v1::Query>,
) -> Vec<gesta_server::proto::v1::SequencedEvent> {
    let request = gesta_server::proto::v1::ReadRequest {
        query,
        ..Default::default()
    };
    let mut stream = dcb.read(request).await.unwrap().into_inner();
    let mut out = Vec::new();
    while let Some(r) = stream.message().await.unwrap() {
        out.extend(r.events);
    }
    out
}

/// `e` as a redaction leaves it: without data and metadata.
fn erased(e: &RecordedEvent) -> RecordedEvent {
    RecordedEvent {
        data: Default::default(),
        metadata: Default::default(),
        ..e.clone()
    }
}

#[tokio::test]
async fn redaction_erases_data_and_metadata_for_both_services_and_is_audited() {
    use gesta_server::proto::v1;
    let server = start().await;
    let mut c = gesta_client(server.addr).await;
    let mut dcb = client(server.addr).await;
    let id = 0x0b6c_3a52_6f3e_4d2a_9a8e_1f2d_3c4b_5a69;
    c.append(
        vec![
            NewEvent::new("Registered", r#"{"email":"ada@example.com"}"#)
                .stream("user-u1")
                .tag("user:u1")
                .id(id)
                .metadata("ip=192.0.2.7"),
            NewEvent::new("Ordered", r#"{"address":"1 Main St"}"#)
                .stream("user-u1")
                .tag("user:u1"),
            NewEvent::new("Ordered", r#"{"address":"2 Side St"}"#)
                .stream("user-u2")
                .tag("user:u2"),
        ],
        AppendOptions::new(),
    )
    .await
    .unwrap();
    // An event appended through umadb.v1: a UUID, metadata entries and
    // tracking info.
    let uuid = "5e3c4a52-1f2d-4d2a-9a8e-0b6c3a526f3e";
    let mut from_umadb = event("Called", &["user:u1"]);
    from_umadb.data = b"{\"phone\":\"555-0100\"}".to_vec().into();
    from_umadb.uuid = uuid.into();
    from_umadb.metadata = vec![v1::MetadataEntry {
        key: "agent".into(),
        value: "crm".into(),
    }];
    let r = dcb
        .append(v1::AppendRequest {
            events: vec![from_umadb],
            condition: None,
            tracking_info: Some(v1::TrackingInfo {
                source: "crm".into(),
                position: 9,
            }),
        })
        .await
        .unwrap();
    assert_eq!(r.into_inner().position, 4);
    let before = collect(
        c.read(&Query::all(), ReadOptions::forwards())
            .await
            .unwrap(),
    )
    .await;
    let umadb_before = umadb_read(&mut dcb, None).await;
    assert_eq!(umadb_before[3].event.as_ref().unwrap().uuid, uuid);

    // By position (repeats count once), then by a query that names it
    // again: it counts as targeted, not redacted.
    let by_positions = Target::Positions(vec![1, 1]);
    assert_eq!(
        c.redact(&by_positions).await.unwrap(),
        Redacted {
            targeted: 1,
            redacted: 1
        }
    );
    let by_query = Target::Query(Query::tag("user:u1"));
    assert_eq!(
        c.redact(&by_query).await.unwrap(),
        Redacted {
            targeted: 3,
            redacted: 2
        }
    );

    // gesta.v1 reads — by query, stream, id, subscription — answer the
    // events without data and metadata, all else as it was, as the store
    // does; the other user's event is untouched.
    let expected = vec![
        erased(&before[0]),
        erased(&before[1]),
        before[2].clone(),
        erased(&before[3]),
    ];
    let read = collect(
        c.read(&Query::all(), ReadOptions::forwards())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(read, expected);
    let engine: Vec<_> = server
        .store
        .read(&Query::all(), ReadOptions::forwards())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(read, engine);
    let stream = collect(
        c.read_stream("user-u1", ReadOptions::forwards())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(stream, expected[..2]);
    assert_eq!(
        c.read_stream_last("user-u1").await.unwrap(),
        Some(expected[1].clone())
    );
    assert_eq!(c.stream_revision("user-u1").await.unwrap(), Some(1));
    assert_eq!(c.event_by_id(id).await.unwrap(), Some(expected[0].clone()));
    let mut sub = c.subscribe(&Query::tag("user:u1"), 0).await.unwrap();
    let mut delivered = Vec::new();
    while delivered.len() < 3 {
        delivered.extend(sub.next().await.unwrap().unwrap());
    }
    assert_eq!(
        delivered,
        [
            expected[0].clone(),
            expected[1].clone(),
            expected[3].clone()
        ]
    );
    drop(sub);
    assert_eq!(c.head().await.unwrap(), 4);
    assert_eq!(
        c.list_tags("user:", None, 10).await.unwrap(),
        listed(&[("user:u1", 3), ("user:u2", 1)])
    );

    // umadb.v1 reads answer them with empty data and no metadata entries;
    // type, tags and position stay, and so does the tracking info. The
    // UUID an event was appended with through umadb.v1 was kept in its
    // metadata and goes with it; an event with a store id shows that id.
    let umadb = umadb_read(&mut dcb, None).await;
    assert_eq!(umadb.len(), 4);
    for (now, was) in umadb.iter().zip(&umadb_before) {
        let (e, w) = (now.event.as_ref().unwrap(), was.event.as_ref().unwrap());
        assert_eq!(now.position, was.position);
        assert_eq!((&e.event_type, &e.tags), (&w.event_type, &w.tags));
        assert_eq!(now.tracking_info, was.tracking_info, "{}", now.position);
        if now.position == 3 {
            assert_eq!(now, was);
        } else {
            assert!(e.data.is_empty(), "{}", now.position);
            assert!(e.metadata.is_empty(), "{}", now.position);
        }
    }
    let first = umadb[0].event.as_ref().unwrap();
    assert_eq!(first.uuid, "0b6c3a52-6f3e-4d2a-9a8e-1f2d3c4b5a69");
    assert_eq!(
        umadb_before[3].event.as_ref().unwrap().metadata,
        [v1::MetadataEntry {
            key: "agent".into(),
            value: "crm".into()
        }]
    );
    assert_eq!(umadb[3].event.as_ref().unwrap().uuid, "");
    assert_eq!(
        umadb[3].tracking_info,
        Some(v1::TrackingInfo {
            source: "crm".into(),
            position: 9
        })
    );
    let only_u1 = umadb_read(&mut dcb, Some(query(&[], &["user:u1"]))).await;
    assert_eq!(
        only_u1.iter().map(|e| e.position).collect::<Vec<_>>(),
        [1, 2, 4]
    );
    // Conditions answer as before: the redacted events still match.
    let err = append(
        &mut dcb,
        vec![event("Registered", &["user:u1"])],
        Some(v1::AppendCondition {
            fail_if_events_match: Some(query(&["Called"], &[])),
            after: Some(3),
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    // The trail: the targets as given and what each did, as the store
    // keeps it, and as the messages carry it.
    let trail = c.audit_log(0, 10).await.unwrap();
    assert_eq!(trail, engine_audit(&server.store, 0, 10));
    assert_eq!(
        trail.iter().map(|e| &e.operation).collect::<Vec<_>>(),
        [
            &Operation::Redact {
                target: by_positions,
                result: Redacted {
                    targeted: 1,
                    redacted: 1
                }
            },
            &Operation::Redact {
                target: by_query.clone(),
                result: Redacted {
                    targeted: 3,
                    redacted: 2
                }
            }
        ]
    );
    assert!(trail.iter().all(|e| e.head == 4));
    let r = c
        .raw()
        .audit_log(g::AuditLogRequest { after: 0, limit: 1 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.entries[0].operation,
        Some(g::audit_entry::Operation::Redact(g::RedactOperation {
            target: Some(g::Target {
                kind: Some(g::target::Kind::Positions(g::Positions {
                    positions: vec![1, 1],
                })),
            }),
            targeted: 1,
            redacted: 1,
        }))
    );
    let r = c
        .raw()
        .redact(g::RedactRequest {
            target: Some(g::Target {
                kind: Some(g::target::Kind::Positions(g::Positions {
                    positions: vec![3],
                })),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.targeted, r.redacted), (1, 1));

    // All of it survives a restart of the server and the store.
    let dir = server.stop().await;
    let server = start_in(dir, ServeConfig::default()).await;
    let mut c = gesta_client(server.addr).await;
    let read = collect(
        c.read(&Query::all(), ReadOptions::forwards())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(read, before.iter().map(erased).collect::<Vec<_>>());
    let after_restart = c.audit_log(0, 10).await.unwrap();
    assert_eq!(after_restart[..2], trail);
    assert_eq!(after_restart.len(), 3);
    server.stop().await;
}

#[tokio::test]
async fn bad_redact_requests_are_invalid_input_and_change_nothing() {
    let server = start().await;
    let mut c = gesta_client(server.addr).await;
    c.append(vec![ev("A", "s"), ev("B", "s")], AppendOptions::new())
        .await
        .unwrap();
    let before = collect(
        c.read(&Query::all(), ReadOptions::forwards())
            .await
            .unwrap(),
    )
    .await;
    let cases: Vec<(Target, &str)> = vec![
        (Target::Positions(vec![1, 3]), "position 3"),
        (Target::Positions(vec![0]), "position 0"),
        (Target::Positions(vec![]), "position"),
        (Target::Query(Query::tag("")), "query item 0"),
    ];
    for (target, words) in cases {
        let e = store_error(c.redact(&target).await.unwrap_err());
        assert!(
            matches!(&e, Error::InvalidInput { reason } if reason.contains(words)),
            "{target:?}: {e:?}"
        );
    }
    // The status itself: INVALID_ARGUMENT with the typed detail; an unset
    // target is refused, not taken for every event.
    let err = c
        .raw()
        .redact(g::RedactRequest {
            target: Some(g::Target {
                kind: Some(g::target::Kind::Positions(g::Positions {
                    positions: vec![7],
                })),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(matches!(
        error_detail(&err).and_then(|d| d.kind),
        Some(Kind::InvalidInput(g::InvalidInput { reason })) if reason.contains("position 7")
    ));
    for target in [None, Some(g::Target { kind: None })] {
        let err = c
            .raw()
            .redact(g::RedactRequest { target })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(matches!(
            error_detail(&err).and_then(|d| d.kind),
            Some(Kind::InvalidInput(g::InvalidInput { reason })) if reason.contains("target")
        ));
    }
    // Nothing was erased, nothing recorded.
    let after = collect(
        c.read(&Query::all(), ReadOptions::forwards())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(after, before);
    assert!(!after[0].data.is_empty() && !after[0].metadata.is_empty());
    assert!(c.audit_log(0, 10).await.unwrap().is_empty());
    server.stop().await;
}

/// Removal and retention through the server: each call answers what the
/// store does, the store sees the events gone, the audit trail comes back
/// with every removal and rule as the store records them, and bad input
/// is INVALID_ARGUMENT with the store's typed error.
#[tokio::test]
async fn removal_and_retention_rules() {
    let server = start().await;
    let mut c = gesta_client(server.addr).await;
    for i in 0..4 {
        c.append(
            vec![ev("A", "a"), ev("B", &format!("b{i}"))],
            AppendOptions::new(),
        )
        .await
        .unwrap();
    }
    // a: 1, 3, 5, 7; b0..b3: 2, 4, 6, 8.
    let removed = c.truncate_stream("a", 2).await.unwrap();
    assert_eq!((removed.targeted, removed.removed), (2, 2));
    let removed = c.remove(&Target::Positions(vec![2, 1])).await.unwrap();
    assert_eq!(
        (removed.targeted, removed.removed),
        (1, 1),
        "1 is gone already"
    );
    let removed = c.delete_stream("b1").await.unwrap();
    assert_eq!(removed.removed, 1);
    let rule = gesta::RetentionRule::query(Query::event_type("A")).max_count(1);
    c.set_retention(&rule).await.unwrap();
    assert_eq!(c.retention_rules().await.unwrap(), vec![rule.clone()]);
    let removed = c.enforce_retention().await.unwrap();
    assert_eq!(removed.removed, 1, "of 5 and 7, 5 goes");
    let left: Vec<u64> = collect(
        c.read(&Query::all(), ReadOptions::forwards())
            .await
            .unwrap(),
    )
    .await
    .iter()
    .map(|e| e.position)
    .collect();
    assert_eq!(left, [6, 7, 8]);
    assert_eq!(
        server
            .store
            .read(&Query::all(), ReadOptions::forwards())
            .unwrap()
            .map(|e| e.unwrap().position)
            .collect::<Vec<_>>(),
        left
    );
    assert_eq!(
        c.stream_revision("a").await.unwrap(),
        Some(3),
        "revisions stay"
    );
    let trail = c.audit_log(0, 100).await.unwrap();
    assert_eq!(trail, server.store.audit_log(0, 100).unwrap());
    assert_eq!(trail.len(), 5);
    assert!(matches!(
        &trail[4].operation,
        Operation::Remove { removal: gesta::Removal::Retention(r), .. } if *r == rule
    ));
    // Bad input: the store's typed error.
    let e = store_error(c.delete_stream("").await.unwrap_err());
    assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}");
    let e = store_error(
        c.set_retention(&gesta::RetentionRule::stream("a").max_count(0))
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}");
    server.stop().await;
}

/// A read replica's store (the engine's `open_replica`) served with a
/// replication probe: gesta.v1 Replication reports the probe's figures and
/// the store's head; writes fail on both services with the writer named
/// (gesta.v1: FAILED_PRECONDITION and a ReadReplica detail; umadb.v1:
/// FAILED_PRECONDITION, not INTEGRITY, which clients retry as a
/// conflict); a store served without a probe reports role NONE.
#[tokio::test]
async fn a_replica_refuses_writes_naming_its_writer_and_reports_where_it_stands() {
    let plain = start().await;
    let mut c = gesta_client(plain.addr).await;
    c.append(vec![ev("Opened", "a")], AppendOptions::default())
        .await
        .unwrap();
    let status = c.replication().await.unwrap();
    assert_eq!(status.role, g::replication_response::Role::None as i32);
    assert_eq!(status.head, 1);
    assert_eq!(status.behind, 0);
    let dir = plain.stop().await;

    let store = gesta::Store::open_replica(
        dir.path(),
        "writer w1 (epoch 2) of s3://b/p",
        gesta::Options::default(),
    )
    .unwrap();
    let probe: gesta_server::Probe = std::sync::Arc::new(|| {
        let mut s = gesta_server::ReplicationStatus::new(gesta_server::Role::Replica, "s3://b/p");
        s.bucket_head = 7;
        s.behind = 6;
        s.since_last_success = Some(Duration::from_millis(1500));
        s.failures = 2;
        s.last_error = Some("timed out".into());
        s.writer = "w1 (epoch 2)".into();
        s.bytes_transferred = 4096;
        s
    });
    let served = gesta_server::Served::from(store).reports_replication(probe);
    let server = start_served(dir, served, ServeConfig::default()).await;
    let mut c = gesta_client(server.addr).await;
    let status = c.replication().await.unwrap();
    assert_eq!(
        status,
        g::ReplicationResponse {
            role: g::replication_response::Role::Replica as i32,
            bucket: "s3://b/p".into(),
            head: 1,
            bucket_head: 7,
            behind: 6,
            since_last_success_ms: Some(1500),
            failures_in_a_row: 0,
            failures: 2,
            last_error: "timed out".into(),
            stopped: String::new(),
            writer: "w1 (epoch 2)".into(),
            bytes_transferred: 4096,
        }
    );

    let refused = c
        .raw()
        .append(g::AppendRequest {
            events: vec![g::NewEvent {
                event_type: "X".into(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    match error_detail(&refused).and_then(|d| d.kind) {
        Some(Kind::ReadReplica(r)) => assert_eq!(r.writer, "writer w1 (epoch 2) of s3://b/p"),
        other => panic!("not a ReadReplica detail: {other:?}"),
    }
    // The typed client hands back the engine's error.
    match store_error(failed(
        c.append(vec![ev("X", "a")], AppendOptions::default()).await,
    )) {
        Error::Replica { writer } => assert!(writer.contains("w1"), "{writer}"),
        other => panic!("{other:?}"),
    }
    let mut dcb = client(server.addr).await;
    let refused = dcb
        .append(gesta_server::proto::v1::AppendRequest {
            events: vec![event("X", &[])],
            condition: None,
            tracking_info: None,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("w1"), "{refused:?}");
    assert_eq!(c.head().await.unwrap(), 1);
    server.stop().await;
}
