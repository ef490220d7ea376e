//! What UmaDB's clients see where Gesta and UmaDB could differ: events too
//! large for a client to read back, re-sent appends (the nil UUID
//! included), tracking info on reads, the input limits, and UmaDB's older
//! service path.

mod common;

use common::*;
use gesta_server::proto::v1;
use gesta_server::proto::v1::error_response::ErrorType;
use gesta_server::{CLIENT_RECEIVE_LIMIT, DEFAULT_MAX_EVENT_BYTES, ServeConfig};
use prost::Message;
use tonic::Code;

const NIL: &str = "00000000-0000-0000-0000-000000000000";

fn condition(tags: &[&str], after: Option<u64>) -> Option<v1::AppendCondition> {
    Some(v1::AppendCondition {
        fail_if_events_match: Some(query(&[], tags)),
        after,
    })
}

/// An event whose encoded `Event` message is exactly `size` bytes.
fn event_of_size(size: usize) -> v1::Event {
    let mut e = event("Big", &["big:1"]);
    e.data = Default::default();
    let base = e.encoded_len();
    let mut n = size - base;
    loop {
        e.data = vec![b'x'; n].into();
        match e.encoded_len() {
            s if s == size => return e,
            s if s > size => n -= s - size,
            s => n += size - s,
        }
    }
}

async fn read_events(
    c: &mut v1::dcb_client::DcbClient<tonic::transport::Channel>,
    request: v1::ReadRequest,
) -> Result<Vec<v1::SequencedEvent>, tonic::Status> {
    let mut stream = c.read(request).await?.into_inner();
    let mut out = Vec::new();
    while let Some(r) = stream.message().await? {
        out.extend(r.events);
    }
    Ok(out)
}

#[tokio::test]
async fn an_event_a_client_could_not_read_back_is_refused_at_append() {
    let server = start().await;
    // tonic's client, like every gRPC client, receives at most 4 MiB by
    // default.
    let mut c = client(server.addr).await;
    let mut big = event("Big", &[]);
    big.data = vec![b'x'; 5 << 20].into();
    let err = append(&mut c, vec![event("Small", &[]), big], None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(details(&err).error_type, ErrorType::InvalidArgument as i32);
    let message = details(&err).message;
    assert!(message.contains("event 1 is 524"), "{message}");
    assert!(
        message.contains(&DEFAULT_MAX_EVENT_BYTES.to_string()),
        "{message}"
    );
    assert!(message.contains("--max-event-bytes"), "{message}");
    assert_eq!(server.store.head(), 0);

    // The largest event allowed comes back in a response under the
    // client's limit, with the largest tracking info a batch can carry,
    // through reads and a subscription.
    let largest = event_of_size(DEFAULT_MAX_EVENT_BYTES);
    let tracked = v1::AppendRequest {
        events: vec![largest.clone(), largest.clone()],
        condition: None,
        tracking_info: Some(v1::TrackingInfo {
            source: "s".repeat(255),
            position: u64::MAX,
        }),
    };
    assert_eq!(c.append(tracked).await.unwrap().into_inner().position, 2);
    let too_large = event_of_size(DEFAULT_MAX_EVENT_BYTES + 1);
    let err = append(&mut c, vec![too_large], None).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let read = v1::ReadRequest::default();
    let got = read_events(&mut c, read).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].event.as_ref().unwrap(), &largest);
    assert_eq!(got[0].tracking_info.as_ref().unwrap().source.len(), 255);
    let mut sub = c
        .subscribe(v1::SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut delivered = 0;
    while delivered < 2 {
        delivered += sub.message().await.unwrap().unwrap().events.len();
    }
    drop(sub);
    // The worst a response can add around the largest event: under the
    // client's limit.
    let worst = v1::ReadResponse {
        events: vec![v1::SequencedEvent {
            position: u64::MAX,
            event: Some(largest),
            tracking_info: Some(v1::TrackingInfo {
                source: "s".repeat(255),
                position: u64::MAX,
            }),
        }],
        head: Some(u64::MAX),
    };
    assert_eq!(
        worst.encoded_len(),
        DEFAULT_MAX_EVENT_BYTES + gesta_server::RESPONSE_FRAMING
    );
    assert!(worst.encoded_len() <= CLIENT_RECEIVE_LIMIT);
    server.stop().await;
}

#[tokio::test]
async fn the_event_limit_is_configurable_and_reads_never_send_more() {
    let config = ServeConfig {
        max_event_bytes: 1000,
        ..ServeConfig::default()
    };
    let server = start_with(config).await;
    let mut c = client(server.addr).await;
    let err = append(&mut c, vec![event_of_size(1001)], None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(details(&err).message.contains("limit of 1000 bytes"));
    assert_eq!(
        append(&mut c, vec![event_of_size(1000)], None)
            .await
            .unwrap(),
        1
    );
    // Through the Rust API a larger event gets in; a read or subscription
    // reaching it fails clearly instead of sending what is over the limit.
    server
        .store
        .append(vec![gesta::NewEvent::new("Big", vec![b'x'; 5000])])
        .unwrap();
    let err = read_events(&mut c, v1::ReadRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(details(&err).error_type, ErrorType::Serialization as i32);
    assert!(details(&err).message.contains("position 2"), "{err:?}");
    let before = v1::ReadRequest {
        limit: Some(1),
        ..Default::default()
    };
    assert_eq!(read_events(&mut c, before).await.unwrap().len(), 1);
    let mut sub = c
        .subscribe(v1::SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sub.message().await.unwrap().unwrap().events.len(), 1);
    let err = sub.message().await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    server.stop().await;
}

#[tokio::test]
async fn a_resent_append_returns_the_earlier_position_and_a_different_one_conflicts() {
    let server = start().await;
    let mut c = client(server.addr).await;
    append(&mut c, vec![event("Before", &["other"])], None)
        .await
        .unwrap();
    // Events without an explicit UUID carry the nil UUID in UmaDB's
    // Python client.
    let mut booked = event("Booked", &["seat:1"]);
    booked.uuid = NIL.into();
    let mut note = event("Noted", &["note"]);
    note.uuid = NIL.into();
    let sent = vec![note.clone(), booked.clone()];
    let first = append(&mut c, sent.clone(), condition(&["seat:1"], Some(1)))
        .await
        .unwrap();
    assert_eq!(first, 3);
    append(&mut c, vec![event("After", &["seat:1"])], None)
        .await
        .unwrap();
    // The same append again, after a lost answer: the earlier position.
    let again = append(&mut c, sent.clone(), condition(&["seat:1"], Some(1)))
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(server.store.head(), 4);
    // The nil UUID comes back as sent.
    let got = read_events(
        &mut c,
        v1::ReadRequest {
            start: Some(2),
            limit: Some(2),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let got: Vec<v1::Event> = got.into_iter().map(|e| e.event.unwrap()).collect();
    assert_eq!(got, sent);
    assert_eq!(got[1].uuid, NIL);

    // A different event with the nil UUID under the same condition is a
    // conflict (UmaDB would answer 3 without storing it).
    let mut different = booked.clone();
    different.data = b"{\"seat\":2}".to_vec().into();
    for resent in [
        vec![note.clone(), different],
        vec![booked.clone()],
        vec![note.clone(), booked.clone(), event("Extra", &[])],
        vec![booked.clone(), note.clone()],
    ] {
        let err = append(&mut c, resent, condition(&["seat:1"], Some(1)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert_eq!(details(&err).error_type, ErrorType::Integrity as i32);
    }
    // Nor does a different UUID pass, or metadata in another order.
    let mut other_uuid = booked.clone();
    other_uuid.uuid = "67e55044-10b1-426f-9247-bb680e5fe0c8".into();
    let err = append(
        &mut c,
        vec![note.clone(), other_uuid],
        condition(&["seat:1"], Some(1)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(server.store.head(), 4);

    // Without a UUID, equal events are two intents, as in UmaDB.
    let err = append(
        &mut c,
        vec![event("Before", &["other"])],
        condition(&["other"], None),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    // The tracking info must match too.
    let mut counted = event("Counted", &["count"]);
    counted.uuid = NIL.into();
    let tracked = |position| v1::AppendRequest {
        events: vec![counted.clone()],
        condition: condition(&["count"], None),
        tracking_info: Some(v1::TrackingInfo {
            source: "up".into(),
            position,
        }),
    };
    assert_eq!(c.append(tracked(5)).await.unwrap().into_inner().position, 5);
    assert_eq!(c.append(tracked(5)).await.unwrap().into_inner().position, 5);
    let err = c.append(tracked(6)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(server.store.head(), 5);
    server.stop().await;
}

#[tokio::test]
async fn reads_and_subscriptions_return_tracking_info() {
    let server = start().await;
    let mut c = client(server.addr).await;
    append(&mut c, vec![event("Plain", &[])], None)
        .await
        .unwrap();
    let tracking = v1::TrackingInfo {
        source: "orders".into(),
        position: 41,
    };
    let request = v1::AppendRequest {
        events: vec![event("Projected", &[]), event("Projected", &[])],
        condition: None,
        tracking_info: Some(tracking.clone()),
    };
    assert_eq!(c.append(request).await.unwrap().into_inner().position, 3);
    // Appended through the Rust API with tracking info: the same.
    server
        .store
        .append_with(
            vec![gesta::NewEvent::new("Local", "{}")],
            gesta::AppendOptions::new().track("local", 7),
        )
        .unwrap();
    let expected = vec![
        None,
        Some(tracking.clone()),
        Some(tracking.clone()),
        Some(v1::TrackingInfo {
            source: "local".into(),
            position: 7,
        }),
    ];
    let got = read_events(&mut c, v1::ReadRequest::default())
        .await
        .unwrap();
    let infos: Vec<_> = got.into_iter().map(|e| e.tracking_info).collect();
    assert_eq!(infos, expected);
    let backwards = v1::ReadRequest {
        backwards: Some(true),
        batch_size: Some(1),
        ..Default::default()
    };
    let got = read_events(&mut c, backwards).await.unwrap();
    let mut infos: Vec<_> = got.into_iter().map(|e| e.tracking_info).collect();
    infos.reverse();
    assert_eq!(infos, expected);
    let mut sub = c
        .subscribe(v1::SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut infos = Vec::new();
    while infos.len() < 4 {
        let r = sub.message().await.unwrap().unwrap();
        infos.extend(r.events.into_iter().map(|e| e.tracking_info));
    }
    assert_eq!(infos, expected);
    server.stop().await;
}

#[tokio::test]
async fn input_beyond_the_documented_limits_is_refused_with_the_reason() {
    let server = start().await;
    let mut c = client(server.addr).await;
    let long = "x".repeat(1025);
    let many: Vec<String> = (0..256).map(|i| format!("t:{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let mut duplicate = event("E", &[]);
    duplicate.metadata = vec![
        v1::MetadataEntry {
            key: "k".into(),
            value: "1".into(),
        },
        v1::MetadataEntry {
            key: "k".into(),
            value: "2".into(),
        },
    ];
    let cases = [
        (event("E", &[""]), "empty tag"),
        (event("", &[]), "empty event type"),
        (
            event(&long, &[]),
            "event type is 1025 bytes, the limit is 1024",
        ),
        (event("E", &[&long]), "tag is 1025 bytes, the limit is 1024"),
        (event("E", &many), "256 tags, the limit is 255"),
        (duplicate, "metadata key \"k\" appears twice"),
    ];
    for (e, reason) in cases {
        let err = append(&mut c, vec![e], None).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{reason}");
        let details = details(&err);
        assert_eq!(details.error_type, ErrorType::InvalidArgument as i32);
        assert!(details.message.contains(reason), "{}", details.message);
    }
    // At the limits, accepted.
    let at = "y".repeat(1024);
    let most: Vec<String> = (0..255).map(|i| format!("t:{i}")).collect();
    let most: Vec<&str> = most.iter().map(String::as_str).collect();
    let mut e = event(&at, &most);
    e.tags[0] = at.clone();
    assert_eq!(append(&mut c, vec![e], None).await.unwrap(), 1);
    server.stop().await;
}

#[tokio::test]
async fn the_legacy_service_path_is_served() {
    let server = start().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    async fn call<Req, Resp>(
        grpc: &mut tonic::client::Grpc<tonic::transport::Channel>,
        method: &'static str,
        request: Req,
    ) -> Result<Resp, tonic::Status>
    where
        Req: Message + Send + Sync + 'static,
        Resp: Message + Default + Send + Sync + 'static,
    {
        grpc.ready().await.unwrap();
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(method);
        grpc.unary(
            tonic::Request::new(request),
            path,
            tonic_prost::ProstCodec::default(),
        )
        .await
        .map(tonic::Response::into_inner)
    }
    let appended: v1::AppendResponse = call(
        &mut grpc,
        "/umadb.UmaDBService/Append",
        v1::AppendRequest {
            events: vec![event("Old", &["client:old"])],
            condition: None,
            tracking_info: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(appended.position, 1);
    let head: v1::HeadResponse = call(&mut grpc, "/umadb.UmaDBService/Head", v1::HeadRequest {})
        .await
        .unwrap();
    assert_eq!(head.position, Some(1));
    let unknown: Result<v1::HeadResponse, _> =
        call(&mut grpc, "/umadb.UmaDBService/Nothing", v1::HeadRequest {}).await;
    assert_eq!(unknown.unwrap_err().code(), Code::Unimplemented);
    server.stop().await;
}
