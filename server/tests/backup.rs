//! `gesta.v1.Gesta/Backup` through the Rust client: refused without a
//! backup root, confined to it, behind the API key, and — while appends
//! continue through the server — a copy that verifies, opens as a store
//! and holds exactly the store's first `position` events.

mod common;

use common::*;
use futures::TryStreamExt;
use gesta::{AppendOptions, NewEvent, Query, ReadOptions, RecordedEvent};
use gesta_server::ServeConfig;
use gesta_server::client::{ClientError, GestaClient, error_detail};
use gesta_server::proto::gesta_v1::error_detail::Kind;
use tonic::Code;
use tonic::transport::Endpoint;

const KEY: &str = "backup-key";

fn status(r: Result<gesta::BackupReport, ClientError>) -> tonic::Status {
    match r {
        Err(ClientError::Status(s)) => s,
        other => panic!("expected a status, got {other:?}"),
    }
}

fn invalid(r: Result<gesta::BackupReport, ClientError>) -> String {
    match r {
        Err(ClientError::Store(gesta::Error::InvalidInput { reason })) => reason,
        other => panic!("expected invalid input, got {other:?}"),
    }
}

async fn keyed_client(addr: std::net::SocketAddr, key: &str) -> GestaClient {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    GestaClient::with_api_key(channel, key).unwrap()
}

fn all(store: &gesta::Store) -> Vec<RecordedEvent> {
    store
        .read(&Query::all(), ReadOptions::forwards())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn without_a_backup_root_the_call_is_refused() {
    let server = start().await;
    let mut client = GestaClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    let dest = tempfile::tempdir().unwrap();
    let s = status(client.backup(dest.path().join("b").to_str().unwrap()).await);
    assert_eq!(s.code(), Code::PermissionDenied);
    assert!(matches!(
        error_detail(&s).and_then(|d| d.kind),
        Some(Kind::PermissionDenied(_))
    ));
    assert!(s.message().contains("--backup-dir"), "{}", s.message());
    assert!(!dest.path().join("b").exists());
    server.stop().await;
}

#[tokio::test]
async fn a_server_with_a_missing_backup_root_does_not_start() {
    let store = gesta::Store::open(tempfile::tempdir().unwrap().keep()).unwrap();
    let config = ServeConfig {
        backup_dir: Some("/nonexistent/gesta-backups".into()),
        ..ServeConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let result = gesta_server::serve_on(listener, store, config, std::future::pending()).await;
    assert!(
        matches!(result, Err(gesta_server::ServeError::Config(_))),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_the_root_while_appends_continue() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let server = start_with(ServeConfig {
        api_key: Some(KEY.into()),
        insecure_loopback_api_key: true,
        backup_dir: Some(root.path().to_owned()),
        ..ServeConfig::default()
    })
    .await;
    let mut client = keyed_client(server.addr, KEY).await;
    for i in 0..200 {
        let event = NewEvent::new("Loaded", format!("{{\"i\":{i}}}")).tag(format!("k:{}", i % 7));
        client
            .append(vec![event], AppendOptions::new())
            .await
            .unwrap();
    }

    // The API key applies.
    let mut stranger = keyed_client(server.addr, "wrong").await;
    assert_eq!(
        status(stranger.backup("nope").await).code(),
        Code::Unauthenticated
    );
    assert!(!root.path().join("nope").exists());

    // Destinations outside the root are refused, and nothing is written.
    let escape = outside.path().join("b");
    assert_eq!(
        status(client.backup(escape.to_str().unwrap()).await).code(),
        Code::PermissionDenied
    );
    assert!(invalid(client.backup("../b").await).contains(".."));
    assert!(invalid(client.backup("").await).contains("empty"));
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        assert_eq!(
            status(client.backup("link/b").await).code(),
            Code::PermissionDenied
        );
    }
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);

    // Appends continue through the server while the backup runs.
    let writer = {
        let mut writer = keyed_client(server.addr, KEY).await;
        tokio::spawn(async move {
            for i in 0..300 {
                let event = NewEvent::new("During", format!("{{\"i\":{i}}}"));
                writer
                    .append(vec![event], AppendOptions::new())
                    .await
                    .unwrap();
            }
        })
    };
    let before = server.store.head();
    let report = client.backup("daily/first").await.unwrap();
    writer.await.unwrap();
    let dest = root.path().canonicalize().unwrap().join("daily/first");
    assert_eq!(report.path, dest);
    assert!(report.position >= before && report.position <= server.store.head());
    assert!(report.segments >= 1);

    // The copy verifies, opens, and holds exactly the first `position`
    // events of the store, which went on to more.
    let verified = gesta::inspect::verify(&dest, &mut |_, _| {}).unwrap();
    assert!(verified.findings.is_empty(), "{verified:?}");
    assert_eq!(verified.last_position, report.position);
    let copy = gesta::Store::open(&dest).unwrap();
    assert_eq!(copy.head(), report.position);
    let original = all(&server.store);
    assert_eq!(original.len() as u64, server.store.head());
    assert_eq!(all(&copy), original[..report.position as usize]);
    // An indexed query agrees too.
    let tagged: Vec<_> = copy
        .read(&Query::tag("k:3"), ReadOptions::forwards())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tagged.len(), (0..200).filter(|i| i % 7 == 3).count());
    copy.close().unwrap();

    // The same destination again is refused: a backup never overwrites.
    assert!(invalid(client.backup("daily/first").await).contains("exists"));
    // The client's reads still work on the server afterwards.
    let read: Vec<_> = client
        .read(&Query::all(), ReadOptions::forwards().limit(3))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(read.len(), 3);
    server.stop().await;
}
