//! TLS, the API key, and the limits that keep a client from exhausting the
//! server.

mod common;

use std::time::Duration;

use common::*;
use gesta_server::proto::v1;
use gesta_server::proto::v1::dcb_client::DcbClient;
use gesta_server::proto::v1::error_response::ErrorType;
use gesta_server::{ServeConfig, ServeError, TlsFiles};
use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

fn with_key(key: &str) -> ServeConfig {
    ServeConfig {
        api_key: Some(key.into()),
        insecure_loopback_api_key: true,
        ..ServeConfig::default()
    }
}

fn head_request(key: Option<&str>) -> tonic::Request<v1::HeadRequest> {
    let mut request = tonic::Request::new(v1::HeadRequest {});
    if let Some(key) = key {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    request
}

#[tokio::test]
async fn an_api_key_without_tls_is_refused_unless_on_loopback_and_allowed() {
    let store = || gesta::Store::open(tempfile::tempdir().unwrap().keep()).unwrap();
    let refused = |config: ServeConfig| async move {
        let result = gesta_server::serve(store(), config, std::future::pending()).await;
        assert!(matches!(result, Err(ServeError::Config(_))), "{result:?}");
    };
    refused(ServeConfig {
        api_key: Some("k".into()),
        ..ServeConfig::default()
    })
    .await;
    refused(ServeConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..with_key("k")
    })
    .await;
    refused(with_key("")).await;
}

#[tokio::test]
async fn every_call_needs_the_api_key() {
    let server = start_with(with_key("s3cret")).await;
    let mut c = client(server.addr).await;
    for key in [None, Some("wrong"), Some("s3cret ")] {
        let err = c.head(head_request(key)).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
        assert_eq!(details(&err).error_type, ErrorType::Authentication as i32);
    }
    let err = append(&mut c, vec![event("E", &[])], None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(server.store.head(), 0);
    let head = c.head(head_request(Some("s3cret"))).await.unwrap();
    assert_eq!(head.into_inner().position, None);
    server.stop().await;
}

#[tokio::test]
async fn tls_with_an_api_key() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = certified.cert.pem();
    let files = tempfile::tempdir().unwrap();
    let tls = TlsFiles {
        cert: files.path().join("cert.pem"),
        key: files.path().join("key.pem"),
    };
    std::fs::write(&tls.cert, &cert_pem).unwrap();
    std::fs::write(&tls.key, certified.signing_key.serialize_pem()).unwrap();
    let config = ServeConfig {
        tls: Some(tls),
        insecure_loopback_api_key: false,
        ..with_key("k1")
    };
    let server = start_with(config).await;

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
    let key: tonic::metadata::MetadataValue<_> = "Bearer k1".parse().unwrap();
    let mut c = DcbClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
        r.metadata_mut().insert("authorization", key.clone());
        Ok(r)
    });
    let appended = c
        .append(v1::AppendRequest {
            events: vec![event("Secure", &[])],
            condition: None,
            tracking_info: None,
        })
        .await
        .unwrap();
    assert_eq!(appended.into_inner().position, 1);
    assert_eq!(
        c.head(v1::HeadRequest {})
            .await
            .unwrap()
            .into_inner()
            .position,
        Some(1)
    );

    // A plaintext client gets nowhere.
    let plain = Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    if let Ok(channel) = plain.connect().await {
        let mut c = DcbClient::new(channel);
        assert!(c.head(head_request(Some("k1"))).await.is_err());
    }
    server.stop().await;
}

#[tokio::test]
async fn oversize_messages_are_refused_and_the_store_is_unchanged() {
    let config = ServeConfig {
        max_message_bytes: 64 << 10,
        ..ServeConfig::default()
    };
    let server = start_with(config).await;
    let mut c = client(server.addr).await;
    let mut big = event("Big", &[]);
    big.data = vec![b'x'; 100 << 10].into();
    let err = append(&mut c, vec![big], None).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert_eq!(server.store.head(), 0);
    // Within the limit, a read splits responses to stay under it.
    let events = (0..4)
        .map(|_| {
            let mut e = event("Mid", &[]);
            e.data = vec![b'y'; 12 << 10].into();
            e
        })
        .collect();
    append(&mut c, events, None).await.unwrap();
    let request = v1::ReadRequest {
        batch_size: Some(100),
        ..Default::default()
    };
    let responses = read_all(&mut c, request).await;
    assert!(responses.len() >= 2, "{responses:?}");
    assert_eq!(responses.iter().map(|r| r.0.len()).sum::<usize>(), 4);
    server.stop().await;
}

#[tokio::test]
async fn open_streams_are_limited() {
    let config = ServeConfig {
        max_open_streams: 1,
        ..ServeConfig::default()
    };
    let server = start_with(config).await;
    let mut c = client(server.addr).await;
    let subscribe = v1::SubscribeRequest::default();
    let first = c.subscribe(subscribe.clone()).await.unwrap().into_inner();
    let err = c.subscribe(subscribe.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    // With UmaDB's details, as every refusal of the service.
    let refusal = details(&err);
    assert_eq!(refusal.error_type, ErrorType::Io as i32);
    assert_eq!(refusal.message, err.message());
    drop(first);
    // The slot frees once the server notices the client went.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match c.subscribe(subscribe.clone()).await {
            Ok(_) => break,
            Err(e) if e.code() == Code::ResourceExhausted => {
                assert!(tokio::time::Instant::now() < deadline, "slot never freed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    server.stop().await;
}

/// Reads whose clients stop receiving each hold a blocking thread, up to
/// the bound on open streams; on the runtime `gesta serve` builds
/// (`command::runtime_builder`), every other call still finds one: here
/// 600 stalled reads (above tokio's default of 512 blocking threads) and a
/// lookup and a fresh read still answer at once. A stalled read lets its
/// thread go at shutdown.
#[test]
fn reads_clients_stop_receiving_do_not_hold_up_other_calls() {
    let runtime =
        gesta_server::command::runtime_builder(2, ServeConfig::default().max_open_streams)
            .build()
            .unwrap();
    runtime.block_on(async {
        let server = start().await;
        let mut c = client(server.addr).await;
        for _ in 0..10 {
            let events = (0..10)
                .map(|_| {
                    let mut e = event("E", &["t:1"]);
                    e.data = vec![b'x'; 4096].into();
                    e
                })
                .collect();
            append(&mut c, events, None).await.unwrap();
        }
        let mut held = Vec::new();
        for _ in 0..3 {
            // A receive window of 1 KiB: the server can send little before
            // it waits for the client, which never reads.
            let channel = Endpoint::from_shared(format!("http://{}", server.addr))
                .unwrap()
                .initial_stream_window_size(Some(1024))
                .initial_connection_window_size(Some(1024))
                .connect()
                .await
                .unwrap();
            for _ in 0..200 {
                let mut slow = DcbClient::new(channel.clone());
                let request = v1::ReadRequest {
                    batch_size: Some(1),
                    ..Default::default()
                };
                held.push(slow.read(request).await.unwrap().into_inner());
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut fresh = client(server.addr).await;
        let tracking = tokio::time::timeout(
            Duration::from_secs(10),
            fresh.get_tracking_info(v1::TrackingRequest { source: "s".into() }),
        )
        .await;
        assert!(tracking.is_ok_and(|r| r.is_ok()), "a lookup waited");
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            let request = v1::ReadRequest {
                limit: Some(1),
                ..Default::default()
            };
            fresh
                .read(request)
                .await
                .unwrap()
                .into_inner()
                .message()
                .await
        })
        .await;
        assert!(read.is_ok_and(|r| r.is_ok()), "a read waited");
        drop(held);
        drop(server);
    });
}
