//! Crypto-shredding through the server: a store served encrypted seals
//! subjects' events appended through either service, both services read
//! them back in plaintext, `Forget` destroys a subject's key (its events
//! read empty at once, through both services) and, once the store is
//! compacted, no file of the store holds the subject's plaintext or
//! ciphertext. A store without a key file is served as before.

mod common;

use std::path::Path;

use common::*;
use futures::{StreamExt, TryStreamExt};
use gesta::{Error, NewEvent, Query, ReadOptions, RecordedEvent};
use gesta_server::client::{ClientError, GestaClient, error_detail};
use gesta_server::proto::gesta_v1::error_detail::Kind;
use gesta_server::proto::v1;
use gesta_server::{ServeConfig, Served};
use tonic::Code;

const SECRET_U7: &str = "u7-secret-4f1c9a2e-email@example.org";
const SECRET_U7_META: &str = "u7-meta-8d03b6e1";
const SECRET_U7_UMADB: &str = "u7-umadb-secret-7a52c0d9";
const SECRET_U8: &str = "u8-secret-b6e0f3a7";
const PUBLIC: &str = "public-data-3c8e51f2";

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The files under `dir` that hold `needle`.
fn holders(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    files(dir)
        .into_iter()
        .filter(|f| {
            let bytes = std::fs::read(f).unwrap();
            !needle.is_empty() && bytes.windows(needle.len()).any(|w| w == needle)
        })
        .collect()
}

async fn gesta_client(addr: std::net::SocketAddr) -> GestaClient {
    GestaClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

async fn read_all(c: &mut GestaClient) -> Vec<RecordedEvent> {
    c.read(&Query::all(), ReadOptions::forwards())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// What umadb.v1 Read answers for every event: (position, tags, data).
async fn umadb_read(addr: std::net::SocketAddr) -> Vec<(u64, Vec<String>, Vec<u8>)> {
    let mut dcb = client(addr).await;
    let mut stream = dcb
        .read(v1::ReadRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while let Some(r) = stream.message().await.unwrap() {
        for e in r.events {
            let event = e.event.unwrap();
            out.push((e.position, event.tags, event.data.to_vec()));
        }
    }
    out
}

fn data_of(events: &[RecordedEvent], position: u64) -> &[u8] {
    &events.iter().find(|e| e.position == position).unwrap().data
}

#[tokio::test]
async fn an_encrypted_store_is_served_in_plaintext_and_forget_shreds_through_both_services() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::wrap(gesta::Store::open(dir.path()).unwrap(), true).unwrap();
    assert!(served.is_encrypted());
    assert!(dir.path().join("KEYS").is_file());
    let server = start_served(dir, served, ServeConfig::default()).await;
    let mut c = gesta_client(server.addr).await;

    // Through gesta.v1: two subjects' events and one in clear.
    let id = 0x1234_5678_9abc_def0_1122_3344_5566_7788u128;
    let appended = c
        .append(
            vec![
                NewEvent::new("Registered", SECRET_U7)
                    .tag("subject:u7")
                    .metadata(SECRET_U7_META)
                    .stream("user-u7")
                    .id(id),
                NewEvent::new("Registered", SECRET_U8).tag("subject:u8"),
                NewEvent::new("Announced", PUBLIC).tag("news"),
            ],
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!((appended.first, appended.last), (1, 3));
    // Through umadb.v1: one more of u7's.
    let mut dcb = client(server.addr).await;
    let mut event = common::event("Moved", &["subject:u7"]);
    event.data = SECRET_U7_UMADB.as_bytes().to_vec().into();
    assert_eq!(append(&mut dcb, vec![event], None).await.unwrap(), 4);

    // Both services read plaintext: reads, stream reads, lookups by id,
    // subscriptions, durable ones too.
    let events = read_all(&mut c).await;
    assert_eq!(data_of(&events, 1), SECRET_U7.as_bytes());
    assert_eq!(&events[0].metadata[..], SECRET_U7_META.as_bytes());
    assert_eq!(data_of(&events, 2), SECRET_U8.as_bytes());
    assert_eq!(data_of(&events, 3), PUBLIC.as_bytes());
    assert_eq!(data_of(&events, 4), SECRET_U7_UMADB.as_bytes());
    let stream: Vec<RecordedEvent> = c
        .read_stream("user-u7", ReadOptions::forwards())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(&stream[0].data[..], SECRET_U7.as_bytes());
    let by_id = c.event_by_id(id).await.unwrap().unwrap();
    assert_eq!(&by_id.data[..], SECRET_U7.as_bytes());
    let mut sub = c.subscribe(&Query::tag("subject:u7"), 0).await.unwrap();
    let mut delivered = Vec::new();
    while delivered.len() < 2 {
        delivered.extend(sub.next().await.unwrap().unwrap());
    }
    drop(sub);
    assert_eq!(&delivered[0].data[..], SECRET_U7.as_bytes());
    assert_eq!(&delivered[1].data[..], SECRET_U7_UMADB.as_bytes());
    let mut durable = c
        .subscribe_durable("mailer", &Query::tag("subject:u7"))
        .await
        .unwrap();
    let batch = durable.next().await.unwrap().unwrap();
    assert_eq!(&batch[0].data[..], SECRET_U7.as_bytes());
    drop(durable);
    let mut dcb_sub = dcb
        .subscribe(v1::SubscribeRequest {
            query: Some(query(&[], &["subject:u7"])),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let first = dcb_sub.message().await.unwrap().unwrap();
    assert_eq!(
        &first.events[0].event.as_ref().unwrap().data[..],
        SECRET_U7.as_bytes()
    );
    drop(dcb_sub);
    let umadb = umadb_read(server.addr).await;
    assert_eq!(umadb.len(), 4);
    assert_eq!(umadb[0].2, SECRET_U7.as_bytes());
    assert_eq!(umadb[3].2, SECRET_U7_UMADB.as_bytes());

    // The engine's store holds ciphertext only, and no file the plaintext.
    let sealed: Vec<RecordedEvent> = server
        .store
        .read(&Query::all(), ReadOptions::forwards())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (p, secret) in [(1, SECRET_U7), (2, SECRET_U8), (4, SECRET_U7_UMADB)] {
        let stored = data_of(&sealed, p);
        assert!(
            !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "position {p} is stored in clear"
        );
    }
    assert_eq!(data_of(&sealed, 3), PUBLIC.as_bytes());
    for secret in [SECRET_U7, SECRET_U7_META, SECRET_U8, SECRET_U7_UMADB] {
        assert_eq!(
            holders(server.dir.path(), secret.as_bytes()),
            Vec::<std::path::PathBuf>::new()
        );
    }
    // The search finds what is there: the event stored in clear.
    assert!(!holders(server.dir.path(), PUBLIC.as_bytes()).is_empty());
    let u7_ciphertext: Vec<Vec<u8>> = [1, 4].map(|p| data_of(&sealed, p).to_vec()).to_vec();
    let u8_ciphertext = data_of(&sealed, 2).to_vec();
    for c in u7_ciphertext.iter().chain([&u8_ciphertext]) {
        assert!(!holders(server.dir.path(), c).is_empty());
    }

    // Forget answers what the library's forget answers: u7's two events
    // redacted.
    let forgotten = c.forget("u7").await.unwrap();
    assert_eq!((forgotten.targeted, forgotten.redacted), (2, 2));

    // Both services now read u7's events empty, the rest unchanged.
    let events = read_all(&mut c).await;
    assert_eq!(events.len(), 4);
    assert!(data_of(&events, 1).is_empty() && events[0].metadata.is_empty());
    assert_eq!(events[0].event_type, "Registered");
    assert_eq!(events[0].tags, vec!["subject:u7".to_string()]);
    assert!(data_of(&events, 4).is_empty());
    assert_eq!(data_of(&events, 2), SECRET_U8.as_bytes());
    assert_eq!(data_of(&events, 3), PUBLIC.as_bytes());
    assert!(c.event_by_id(id).await.unwrap().unwrap().data.is_empty());
    let umadb = umadb_read(server.addr).await;
    assert!(umadb[0].2.is_empty() && umadb[3].2.is_empty());
    assert_eq!(umadb[1].2, SECRET_U8.as_bytes());

    // A forgotten subject cannot be named again, through either service.
    let again = c
        .append(
            vec![NewEvent::new("Registered", "x").tag("subject:u7")],
            Default::default(),
        )
        .await;
    match again {
        Err(ClientError::Store(Error::SubjectForgotten { subject })) => assert_eq!(subject, "u7"),
        other => panic!("expected SubjectForgotten, got {other:?}"),
    }
    let refused = append(
        &mut dcb,
        vec![common::event("Moved", &["subject:u7"])],
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    // An unknown subject is invalid input, changing nothing.
    match c.forget("nobody").await {
        Err(ClientError::Store(Error::InvalidInput { .. })) => {}
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert_eq!(c.head().await.unwrap(), 4);

    // Compacted, the store's files hold none of u7's ciphertext, and
    // still u8's.
    let dir = server.stop().await;
    let store = gesta::Store::open(dir.path()).unwrap();
    store.compact().unwrap();
    store.close().unwrap();
    for c in &u7_ciphertext {
        assert_eq!(holders(dir.path(), c), Vec::<std::path::PathBuf>::new());
    }
    assert!(!holders(dir.path(), &u8_ciphertext).is_empty());
    for secret in [SECRET_U7, SECRET_U7_META, SECRET_U8, SECRET_U7_UMADB] {
        assert_eq!(
            holders(dir.path(), secret.as_bytes()),
            Vec::<std::path::PathBuf>::new()
        );
    }

    // Served again (the key file makes it encrypted without asking): u8
    // still reads in plaintext, u7 empty.
    let served = Served::wrap(gesta::Store::open(dir.path()).unwrap(), false).unwrap();
    assert!(served.is_encrypted());
    let server = start_served(dir, served, ServeConfig::default()).await;
    let mut c = gesta_client(server.addr).await;
    let events = read_all(&mut c).await;
    assert_eq!(data_of(&events, 2), SECRET_U8.as_bytes());
    assert!(data_of(&events, 1).is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_store_without_a_key_file_is_served_plain_and_refuses_forget() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::wrap(gesta::Store::open(dir.path()).unwrap(), false).unwrap();
    assert!(!served.is_encrypted());
    let server = start_served(dir, served, ServeConfig::default()).await;
    assert!(!server.dir.path().join("KEYS").exists());
    let mut c = gesta_client(server.addr).await;
    c.append(
        vec![NewEvent::new("Registered", SECRET_U7).tag("subject:u7")],
        Default::default(),
    )
    .await
    .unwrap();
    // Stored as sent: nothing sealed.
    let stored = server.store.read_last(&Query::all()).unwrap().unwrap();
    assert_eq!(&stored.data[..], SECRET_U7.as_bytes());
    let status = match c.forget("u7").await {
        Err(ClientError::Status(s)) => s,
        other => panic!("expected a status, got {other:?}"),
    };
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(matches!(
        error_detail(&status).and_then(|d| d.kind),
        Some(Kind::NotEncrypted(_))
    ));
    assert_eq!(&read_all(&mut c).await[0].data[..], SECRET_U7.as_bytes());
    server.stop().await;
}
