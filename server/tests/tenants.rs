//! A server of many tenants: each call's API key names its tenant, and no
//! call — through any RPC of `gesta.v1.Gesta` or `umadb.v1.DCB` — reads,
//! changes or even detects another tenant's data; a backup goes under the
//! caller's tenant's own directory of the backup root and nowhere else.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::event;
use futures::{StreamExt, TryStreamExt};
use gesta::lifecycle::Target;
use gesta::tenants::{TenantOptions, Tenants};
use gesta::{AppendOptions, NewEvent, Query, ReadOptions};
use gesta_server::client::{ClientError, GestaClient};
use gesta_server::proto::v1;
use gesta_server::proto::v1::dcb_client::DcbClient;
use gesta_server::{ServeConfig, TenantKeys};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

const ID: u128 = 0x0b6c_3a52_6f3e_4d2a_9a8e_1f2d_3c4b_5a69;

struct Server {
    addr: std::net::SocketAddr,
    /// The backup root: each tenant's backups go under `<backups>/<tenant>/`.
    backups: std::path::PathBuf,
    tenants: Arc<Tenants>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), gesta_server::ServeError>>,
    _root: tempfile::TempDir,
}

impl Server {
    /// Stops the server, waits for it to end, and closes the tenants'
    /// stores.
    async fn shut_down(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
        self.tenants.close().unwrap();
    }
}

async fn start(max_open: usize) -> Server {
    start_serving(max_open, gesta_server::TenantServing::default()).await
}

async fn start_serving(max_open: usize, serving: gesta_server::TenantServing) -> Server {
    let options = TenantOptions {
        max_open,
        ..TenantOptions::default()
    };
    start_with(options, serving).await
}

async fn start_with(options: TenantOptions, serving: gesta_server::TenantServing) -> Server {
    let root = tempfile::tempdir().unwrap();
    let tenants = Arc::new(Tenants::open(root.path(), options).unwrap());
    for name in ["alpha", "beta"] {
        tenants.create(name).unwrap();
    }
    let keys = TenantKeys::parse(
        "# tenant key\nalpha key-alpha\nbeta key-beta\nbeta key-beta-2\nghost key-ghost\n",
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let backups = root.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let config = ServeConfig {
        listen: addr,
        insecure_loopback_api_key: true,
        backup_dir: Some(backups.clone()),
        ..ServeConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(gesta_server::serve_tenants_with(
        listener,
        tenants.clone(),
        keys,
        serving,
        config,
        async move {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        backups,
        tenants,
        stop,
        task,
        _root: root,
    }
}

async fn channel(addr: std::net::SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn gesta(addr: std::net::SocketAddr, key: &str) -> GestaClient {
    GestaClient::with_api_key(channel(addr).await, key).unwrap()
}

fn keyed<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
}

fn code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> Code {
    match r {
        Err(ClientError::Status(s)) => s.code(),
        other => panic!("expected a status, got {other:?}"),
    }
}

/// Tenant alpha's data: events with a stream, an id, tags and tracking
/// info, a snapshot, a durable cursor, an added tag, a redaction.
async fn fill_alpha(alpha: &mut GestaClient) {
    let events = vec![
        NewEvent::new("Opened", r#"{"n":1}"#)
            .stream("account-1")
            .tag("secret:1")
            .id(ID),
        NewEvent::new("Deposited", r#"{"n":2}"#)
            .stream("account-1")
            .tag("secret:1"),
        NewEvent::new("Deposited", r#"{"n":3}"#).tag("secret:2"),
    ];
    alpha
        .append(events, AppendOptions::new().track("source-1", 7))
        .await
        .unwrap();
    alpha
        .save_snapshot("projection", 2, &b"state"[..])
        .await
        .unwrap();
    let mut durable = alpha
        .subscribe_durable("reader", &Query::all())
        .await
        .unwrap();
    assert_eq!(durable.next().await.unwrap().unwrap().len(), 3);
    assert_eq!(alpha.ack("reader", 2).await.unwrap(), 2);
    drop(durable);
    alpha
        .add_tags(&Target::Positions(vec![1]), &["extra:1".to_owned()])
        .await
        .unwrap();
    alpha.redact(&Target::Positions(vec![3])).await.unwrap();
    alpha
        .set_retention(&gesta::RetentionRule::stream("account-1").max_count(5))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_rpc_reaches_another_tenant() {
    let server = start(4).await;
    let mut alpha = gesta(server.addr, "key-alpha").await;
    fill_alpha(&mut alpha).await;
    let alpha_audit = alpha.audit_log(0, 100).await.unwrap();
    assert_eq!(alpha_audit.len(), 3);

    // Beta, through every gesta.v1 RPC, finds nothing of alpha's…
    let mut beta = gesta(server.addr, "key-beta").await;
    let all: Vec<_> = beta
        .read(&Query::all(), ReadOptions::forwards())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(all.is_empty());
    let stream: Vec<_> = beta
        .read_stream("account-1", ReadOptions::forwards())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(stream.is_empty());
    assert!(beta.read_stream_last("account-1").await.unwrap().is_none());
    assert_eq!(beta.stream_revision("account-1").await.unwrap(), None);
    assert!(beta.event_by_id(ID).await.unwrap().is_none());
    assert_eq!(beta.position_at(u64::MAX >> 1).await.unwrap(), 0);
    assert_eq!(beta.head().await.unwrap(), 0);
    assert_eq!(beta.tracking_info("source-1").await.unwrap(), None);
    assert!(beta.list_streams("", None, 100).await.unwrap().is_empty());
    assert!(beta.list_types("", None, 100).await.unwrap().is_empty());
    assert!(beta.list_tags("", None, 100).await.unwrap().is_empty());
    let mut subscription = beta.subscribe(&Query::all(), 0).await.unwrap();
    let nothing = tokio::time::timeout(Duration::from_millis(300), subscription.next()).await;
    assert!(
        nothing.is_err(),
        "beta's subscription delivered {nothing:?}"
    );
    drop(subscription);
    assert!(beta.durable_subscriptions().await.unwrap().is_empty());
    assert!(!beta.delete_durable_subscription("reader").await.unwrap());
    assert!(beta.ack("reader", 3).await.is_err());
    assert!(
        beta.load_snapshot("projection", 10)
            .await
            .unwrap()
            .is_none()
    );
    assert!(beta.list_snapshots("projection").await.unwrap().is_empty());
    assert!(!beta.delete_snapshot("projection", 2).await.unwrap());
    let tagged = beta
        .add_tags(&Target::Query(Query::tag("secret:1")), &["x".to_owned()])
        .await
        .unwrap();
    assert_eq!(tagged.targeted, 0);
    let redacted = beta
        .redact(&Target::Query(Query::tag("secret:1")))
        .await
        .unwrap();
    assert_eq!(redacted.targeted, 0);
    // Removal and retention touch beta's store only.
    let removed = beta
        .remove(&Target::Query(Query::tag("secret:1")))
        .await
        .unwrap();
    assert_eq!(removed.targeted, 0);
    assert_eq!(beta.delete_stream("account-1").await.unwrap().targeted, 0);
    assert_eq!(
        beta.truncate_stream("account-1", 5).await.unwrap().targeted,
        0
    );
    assert!(beta.retention_rules().await.unwrap().is_empty());
    beta.set_retention(&gesta::RetentionRule::stream("account-1").max_count(1))
        .await
        .unwrap();
    assert_eq!(beta.enforce_retention().await.unwrap().removed, 0);
    // Its own audit trail holds only its own (empty) operations.
    let beta_audit = beta.audit_log(0, 100).await.unwrap();
    assert!(beta_audit.iter().all(|e| e.head == 0), "{beta_audit:?}");
    // Backups: beta's goes under its own directory of the backup root, and
    // no destination reaches alpha's (checked below, once alpha has one).
    let backups = server.backups.canonicalize().unwrap();
    let beta_copy = beta.backup("copy").await.unwrap();
    assert_eq!(beta_copy.path, backups.join("beta/copy"));
    assert_eq!(beta_copy.position, 0);
    // Beta's own events start at position 1, and a condition on alpha's
    // tags sees nothing.
    let appended = beta
        .append(
            vec![NewEvent::new("Mine", "{}").tag("secret:1")],
            AppendOptions::new().fail_if(Query::tag("secret:1"), None),
        )
        .await
        .unwrap();
    assert_eq!((appended.first, appended.last), (1, 1));

    // …and through every umadb.v1 RPC.
    let mut dcb = DcbClient::new(channel(server.addr).await);
    let read = dcb
        .read(keyed(
            v1::ReadRequest {
                query: None,
                ..Default::default()
            },
            "key-beta-2",
        ))
        .await
        .unwrap()
        .into_inner()
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let positions: Vec<u64> = read
        .iter()
        .flat_map(|r| r.events.iter().map(|e| e.position))
        .collect();
    assert_eq!(positions, [1], "beta's second key reads beta's store");
    let head = dcb
        .head(keyed(v1::HeadRequest {}, "key-beta"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(head.position, Some(1));
    let tracking = dcb
        .get_tracking_info(keyed(
            v1::TrackingRequest {
                source: "source-1".into(),
            },
            "key-beta",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(tracking.position, None);
    let appended = dcb
        .append(keyed(
            v1::AppendRequest {
                events: vec![event("Mine", &["secret:2"])],
                condition: Some(v1::AppendCondition {
                    fail_if_events_match: Some(v1::Query {
                        items: vec![v1::QueryItem {
                            types: vec![],
                            tags: vec!["secret:2".into()],
                        }],
                    }),
                    after: None,
                }),
                tracking_info: None,
            },
            "key-beta",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(appended.position, 2);
    let mut subscribed = dcb
        .subscribe(keyed(
            v1::SubscribeRequest {
                query: None,
                after: None,
                batch_size: None,
            },
            "key-beta",
        ))
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let response = subscribed.next().await.unwrap().unwrap();
        seen.extend(response.events.iter().map(|e| e.position));
    }
    assert_eq!(seen, [1, 2]);
    drop(subscribed);

    // Alpha's data is as alpha left it.
    assert_eq!(alpha.head().await.unwrap(), 3);
    assert_eq!(alpha.stream_revision("account-1").await.unwrap(), Some(1));
    assert_eq!(alpha.tracking_info("source-1").await.unwrap(), Some(7));
    assert_eq!(alpha.list_snapshots("projection").await.unwrap(), [2]);
    let cursors = alpha.durable_subscriptions().await.unwrap();
    assert_eq!(cursors.len(), 1);
    assert_eq!(cursors[0].acknowledged, 2);
    assert_eq!(alpha.audit_log(0, 100).await.unwrap(), alpha_audit);
    assert_eq!(
        alpha.retention_rules().await.unwrap(),
        [gesta::RetentionRule::stream("account-1").max_count(5)]
    );
    assert_eq!(
        alpha
            .read_stream("account-1", ReadOptions::forwards())
            .await
            .unwrap()
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .len(),
        2,
        "beta's rule and deletion did not reach alpha's stream"
    );
    let tagged: Vec<_> = alpha
        .read(&Query::tag("x"), ReadOptions::forwards())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(tagged.is_empty());

    // Alpha's backup: under alpha's directory, as alpha's store is, and
    // the same name as beta's meets nothing of beta's.
    let alpha_copy = alpha.backup("copy").await.unwrap();
    assert_eq!(alpha_copy.path, backups.join("alpha/copy"));
    assert_eq!(alpha_copy.position, 3);
    for (copy, head) in [(&alpha_copy.path, 3), (&beta_copy.path, 0)] {
        let verified = gesta::inspect::verify(copy, &mut |_, _| {}).unwrap();
        // Alpha's redaction is not compacted yet: a harmless finding.
        assert!(verified.findings.iter().all(|f| f.harmless), "{verified:?}");
        assert_eq!(verified.last_position, head);
        let store = gesta::Store::open(copy).unwrap();
        assert_eq!(store.head(), head);
        store.close().unwrap();
    }
    // Neither names a way into the other's directory, or back to the root.
    for escape in [
        "../alpha/other".to_owned(),
        backups.join("alpha/other").display().to_string(),
        backups.join("elsewhere").display().to_string(),
        "/tmp/anywhere".to_owned(),
    ] {
        let refused = beta.backup(&escape).await;
        assert!(
            matches!(
                &refused,
                Err(ClientError::Store(gesta::Error::InvalidInput { .. }))
            ) || matches!(&refused, Err(ClientError::Status(s)) if s.code() == Code::PermissionDenied),
            "{escape}: {refused:?}"
        );
    }
    assert!(!backups.join("alpha/other").exists());
    assert!(!backups.join("beta/alpha").exists());
    let mut top: Vec<_> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    top.sort();
    assert_eq!(top, ["alpha", "beta"]);

    // A wrong key, no key, and the key of a tenant that does not exist.
    let mut stranger = gesta(server.addr, "key-nobody").await;
    assert_eq!(code(stranger.head().await), Code::Unauthenticated);
    let mut anonymous = GestaClient::new(channel(server.addr).await);
    assert_eq!(code(anonymous.head().await), Code::Unauthenticated);
    let status = dcb
        .head(tonic::Request::new(v1::HeadRequest {}))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut ghost = gesta(server.addr, "key-ghost").await;
    assert_eq!(code(ghost.head().await), Code::PermissionDenied);

    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_share_a_bounded_number_of_open_stores() {
    let server = start(1).await;
    let mut alpha = gesta(server.addr, "key-alpha").await;
    let mut beta = gesta(server.addr, "key-beta").await;
    for round in 0..3 {
        alpha
            .append(vec![NewEvent::new("A", "{}")], AppendOptions::new())
            .await
            .unwrap();
        beta.append(vec![NewEvent::new("B", "{}")], AppendOptions::new())
            .await
            .unwrap();
        assert_eq!(server.tenants.open_count(), 1);
        assert_eq!(alpha.head().await.unwrap(), round + 1);
    }
    // An open subscription holds alpha's store: beta must wait its turn.
    let subscription = alpha.subscribe(&Query::all(), 0).await.unwrap();
    let busy = beta.head().await;
    assert_eq!(code(busy), Code::ResourceExhausted);
    drop(subscription);
    let mut head = Err(ClientError::Status(tonic::Status::unknown("")));
    for _ in 0..100 {
        head = beta.head().await;
        if head.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(head.unwrap(), 3);
    server.shut_down().await;
}

/// What tenancy refuses — a key naming no tenant that exists, every open
/// store in use, a tenant over its quota — each service says in its own
/// protocol: every refusal of `umadb.v1.DCB` carries UmaDB's
/// `ErrorResponse` (and none is `INTEGRITY`, which UmaDB's clients take
/// for a conflict to retry), every refusal of `gesta.v1` the detail its
/// client reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_words_what_tenancy_refuses_in_its_own_protocol() {
    use gesta_server::client::error_detail;
    use gesta_server::proto::gesta_v1::error_detail::Kind;
    use prost::Message;
    use v1::error_response::ErrorType;

    fn uma(status: &tonic::Status) -> ErrorType {
        let detail = v1::ErrorResponse::decode(status.details()).expect("UmaDB's details");
        assert_eq!(detail.message, status.message());
        detail.error_type()
    }
    fn kind<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (Code, Kind) {
        match r {
            Err(ClientError::Status(s)) => {
                let kind = error_detail(&s).and_then(|d| d.kind).expect("a detail");
                (s.code(), kind)
            }
            other => panic!("expected a status, got {other:?}"),
        }
    }

    let options = TenantOptions {
        max_open: 1,
        max_events: Some(2),
        ..TenantOptions::default()
    };
    let server = start_with(options, gesta_server::TenantServing::default()).await;
    let mut dcb = DcbClient::new(channel(server.addr).await);
    let append = |key: &str, n: usize| {
        let events = (0..n)
            .map(|i| v1::Event {
                event_type: "A".into(),
                data: format!("{i}").into_bytes().into(),
                ..Default::default()
            })
            .collect();
        keyed(
            v1::AppendRequest {
                events,
                ..Default::default()
            },
            key,
        )
    };

    // A key of a tenant that does not exist.
    let ghost = dcb
        .head(keyed(v1::HeadRequest {}, "key-ghost"))
        .await
        .unwrap_err();
    assert_eq!(ghost.code(), Code::PermissionDenied);
    assert_eq!(uma(&ghost), ErrorType::Authentication);
    let mut gesta_ghost = gesta(server.addr, "key-ghost").await;
    let (code, detail) = kind(gesta_ghost.head().await);
    assert_eq!(code, Code::PermissionDenied);
    assert!(matches!(detail, Kind::PermissionDenied(_)), "{detail:?}");

    // Over the quota of two events.
    let over = dcb.append(append("key-alpha", 3)).await.unwrap_err();
    assert_eq!(over.code(), Code::ResourceExhausted);
    assert_eq!(uma(&over), ErrorType::InvalidArgument);
    let mut alpha = gesta(server.addr, "key-alpha").await;
    let (code, detail) = kind(
        alpha
            .append(
                (0..3).map(|i| NewEvent::new("A", format!("{i}"))).collect(),
                AppendOptions::new(),
            )
            .await,
    );
    assert_eq!(code, Code::ResourceExhausted);
    assert!(matches!(detail, Kind::ResourceExhausted(_)), "{detail:?}");
    dcb.append(append("key-alpha", 2)).await.unwrap();

    // Every open store in use: alpha's subscription holds the only one.
    let subscription = alpha.subscribe(&Query::all(), 0).await.unwrap();
    let busy = dcb
        .head(keyed(v1::HeadRequest {}, "key-beta"))
        .await
        .unwrap_err();
    assert_eq!(busy.code(), Code::ResourceExhausted);
    assert_eq!(uma(&busy), ErrorType::Io);
    let mut beta = gesta(server.addr, "key-beta").await;
    let (code, detail) = kind(beta.head().await);
    assert_eq!(code, Code::ResourceExhausted);
    assert!(matches!(detail, Kind::ResourceExhausted(_)), "{detail:?}");
    drop(subscription);

    server.shut_down().await;
}

/// A batch that brought a tenant to its event quota, sent again because
/// its answer was lost, is answered as the first was, on both services
/// (the quota's refusal says nothing was appended, and the events are in
/// the store): on `umadb.v1` a conditional append with UUIDs (what UmaDB
/// recognises as re-sent), on `gesta.v1` a batch with event ids. A new
/// batch is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_of_a_batch_that_reached_the_quota_is_answered_on_both_services() {
    let options = TenantOptions {
        max_events: Some(2),
        ..TenantOptions::default()
    };
    let server = start_with(options, gesta_server::TenantServing::default()).await;
    let mut dcb = DcbClient::new(channel(server.addr).await);
    let uuids = [
        "6f0c1a52-3b7e-4d21-9a55-0c2d7e4b8f10",
        "6f0c1a52-3b7e-4d21-9a55-0c2d7e4b8f11",
    ];
    let append = || {
        let events = uuids
            .iter()
            .map(|uuid| v1::Event {
                event_type: "A".into(),
                data: uuid.as_bytes().to_vec().into(),
                uuid: uuid.to_string(),
                ..Default::default()
            })
            .collect();
        let condition = v1::AppendCondition {
            fail_if_events_match: Some(v1::Query {
                items: vec![v1::QueryItem {
                    types: vec!["A".into()],
                    tags: vec![],
                }],
            }),
            after: None,
        };
        keyed(
            v1::AppendRequest {
                events,
                condition: Some(condition),
                ..Default::default()
            },
            "key-alpha",
        )
    };
    let first = dcb.append(append()).await.unwrap().into_inner().position;
    let again = dcb.append(append()).await.unwrap().into_inner().position;
    assert_eq!((first, again), (2, 2));

    let mut beta = gesta(server.addr, "key-beta").await;
    let batch = || vec![NewEvent::new("A", "1").id(1), NewEvent::new("A", "2").id(2)];
    let first = beta.append(batch(), AppendOptions::new()).await.unwrap();
    let again = beta.append(batch(), AppendOptions::new()).await.unwrap();
    assert_eq!((again.first, again.last), (first.first, first.last));
    let refused = beta
        .append(vec![NewEvent::new("A", "3").id(3)], AppendOptions::new())
        .await;
    assert!(
        matches!(&refused, Err(ClientError::Status(s)) if s.code() == Code::ResourceExhausted),
        "{refused:?}"
    );

    server.shut_down().await;
}

/// A tenant's backups count against its byte quota: they share the
/// server's disk, and a tenant could otherwise fill it with copies of
/// itself. Under the quota it backs up; once its store and its backups
/// take the quota, a backup is refused with the quota's refusal.
#[tokio::test]
async fn backups_count_against_the_byte_quota() {
    // A new store's files take its first segment's preallocated 4 MiB.
    let options = TenantOptions {
        max_bytes: Some((4 << 20) + 64),
        ..TenantOptions::default()
    };
    let server = start_with(options, gesta_server::TenantServing::default()).await;
    let mut alpha = gesta(server.addr, "key-alpha").await;
    alpha
        .append(vec![NewEvent::new("A", "x").tag("t")], AppendOptions::new())
        .await
        .unwrap();
    alpha.backup("first").await.unwrap();
    let taken = gesta::tenants::dir_bytes(&server.backups.join("alpha"));
    assert!(taken > 64, "{taken}");
    let refused = alpha.backup("second").await;
    assert_eq!(code(refused), Code::ResourceExhausted);
    assert!(!server.backups.join("alpha").join("second").exists());
    server.shut_down().await;
}

/// Whether any file under `dir` holds `needle`.
fn any_file_holds(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        if path.is_dir() {
            any_file_holds(&path, needle)
        } else {
            let bytes = std::fs::read(&path).unwrap();
            bytes.windows(needle.len()).any(|w| w == needle)
        }
    })
}

/// Every event the client's tenant holds.
async fn read_all(mut c: GestaClient) -> Vec<gesta::RecordedEvent> {
    c.read(&Query::all(), ReadOptions::default())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

fn data_of(events: &[gesta::RecordedEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| String::from_utf8_lossy(&e.data).into_owned())
        .collect()
}

/// A tenant whose directory holds crypto-shredding's key file is served
/// through its wrapper, on both services: plaintext out, ciphertext in
/// its files, Forget through its own key only. With one store open at a
/// time its store is closed and reopened between its calls, each time
/// with a new wrapper; no key is lost on the way (the events sealed
/// before and after read back). The other tenant stays plain.
#[tokio::test]
async fn an_encrypted_tenant_is_served_through_its_wrapper() {
    let server = start(1).await;
    let beta_dir = server._root.path().join("tenants").join("beta");
    gesta::encryption::Encrypted::open(
        gesta::MemoryStore::new(),
        gesta::encryption::EncryptionOptions::in_dir(&beta_dir),
    )
    .unwrap();
    assert!(beta_dir.join("KEYS").is_file());
    let mut alpha = gesta(server.addr, "key-alpha").await;
    let mut beta = gesta(server.addr, "key-beta").await;
    let secret = |subject: &str| {
        NewEvent::new("Registered", format!("beta-secret-{subject}"))
            .tags([format!("subject:{subject}")])
    };
    // Alternating with alpha closes beta's store each time (one open).
    for subject in ["u1", "u2", "u3"] {
        beta.append(vec![secret(subject)], AppendOptions::new())
            .await
            .unwrap();
        alpha
            .append(
                vec![NewEvent::new("A", "alpha-plain")],
                AppendOptions::new(),
            )
            .await
            .unwrap();
        assert_eq!(server.tenants.open_count(), 1);
    }
    assert_eq!(
        data_of(&read_all(beta.clone()).await),
        ["beta-secret-u1", "beta-secret-u2", "beta-secret-u3"]
    );
    let mut dcb = DcbClient::new(channel(server.addr).await);
    let response = dcb
        .read(keyed(v1::ReadRequest::default(), "key-beta"))
        .await
        .unwrap()
        .into_inner()
        .next()
        .await
        .unwrap()
        .unwrap();
    let via_umadb: Vec<String> = response
        .events
        .iter()
        .map(|e| String::from_utf8_lossy(&e.event.as_ref().unwrap().data).into_owned())
        .collect();
    assert_eq!(via_umadb.len(), 3);
    assert!(via_umadb.iter().all(|d| d.starts_with("beta-secret-")));
    assert!(!any_file_holds(&beta_dir, b"beta-secret"));
    assert!(any_file_holds(
        &server._root.path().join("tenants/alpha"),
        b"alpha-plain"
    ));

    // Forget reaches beta's subject only; alpha is not encrypted.
    let forgotten = beta.forget("u2").await.unwrap();
    assert_eq!(forgotten.redacted, 1);
    assert_eq!(
        data_of(&read_all(beta.clone()).await),
        ["beta-secret-u1", "", "beta-secret-u3"]
    );
    let refused = alpha.forget("u2").await;
    assert_eq!(code(refused), Code::FailedPrecondition);
    let refused = beta.append(vec![secret("u2")], AppendOptions::new()).await;
    assert!(
        matches!(
            refused,
            Err(ClientError::Store(gesta::Error::SubjectForgotten { .. }))
        ),
        "{refused:?}"
    );
    server.shut_down().await;
}

/// Served with every tenant encrypted, a tenant's key file is made on its
/// first call, and its subjects' events are sealed.
#[tokio::test]
async fn with_encrypt_every_tenant_is_served_encrypted() {
    let server = start_serving(2, gesta_server::TenantServing::default().encrypt(true)).await;
    let alpha_dir = server._root.path().join("tenants").join("alpha");
    assert!(!alpha_dir.join("KEYS").exists());
    let mut alpha = gesta(server.addr, "key-alpha").await;
    alpha
        .append(
            vec![NewEvent::new("Registered", "alpha-secret").tags(["subject:a1"])],
            AppendOptions::new(),
        )
        .await
        .unwrap();
    assert!(alpha_dir.join("KEYS").is_file());
    assert!(!any_file_holds(&alpha_dir, b"alpha-secret"));
    assert_eq!(data_of(&read_all(alpha.clone()).await), ["alpha-secret"]);
    assert_eq!(alpha.forget("a1").await.unwrap().redacted, 1);
    server.shut_down().await;
}

/// How many files under `dir` this process holds open or mapped.
fn held_under(dir: &std::path::Path) -> usize {
    let dir = dir.canonicalize().unwrap().to_string_lossy().into_owned();
    let open = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with(&dir))
        .count();
    let mapped = std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&dir))
        .count();
    open + mapped
}

/// An encrypted tenant's store, closed by the set to make room for
/// another's, holds no file open: its wrapper does not keep it alive, so
/// the bound on open stores holds for encrypted tenants as for plain ones.
#[tokio::test]
async fn an_encrypted_tenant_closed_to_make_room_holds_no_file() {
    let server = start(1).await;
    let beta_dir = server._root.path().join("tenants").join("beta");
    gesta::encryption::Encrypted::open(
        gesta::MemoryStore::new(),
        gesta::encryption::EncryptionOptions::in_dir(&beta_dir),
    )
    .unwrap();
    let mut alpha = gesta(server.addr, "key-alpha").await;
    let mut beta = gesta(server.addr, "key-beta").await;
    beta.append(
        vec![NewEvent::new("E", "{}").tags(["subject:s1"])],
        AppendOptions::new(),
    )
    .await
    .unwrap();
    assert!(held_under(&beta_dir) > 0, "beta's store is open");
    alpha
        .append(vec![NewEvent::new("E", "{}")], AppendOptions::new())
        .await
        .unwrap();
    assert_eq!(server.tenants.open_count(), 1);
    assert_eq!(held_under(&beta_dir), 0, "beta's closed store holds files");
    server.shut_down().await;
}

/// A tenant over its byte quota can neither save a snapshot, add tags nor
/// start a durable subscription's cursor: each takes its disk as an
/// append does, and is refused with the quota's refusal. It can still
/// move the cursors it has. A tenant under it can do all of these.
#[tokio::test]
async fn snapshots_and_added_tags_count_against_the_byte_quota() {
    // A new store's files take its first segment's preallocated 4 MiB.
    let options = TenantOptions {
        max_bytes: Some((4 << 20) + 1_000),
        ..TenantOptions::default()
    };
    let server = start_with(options, gesta_server::TenantServing::default()).await;
    let mut alpha = gesta(server.addr, "key-alpha").await;
    alpha
        .append(vec![NewEvent::new("A", "x").tag("t")], AppendOptions::new())
        .await
        .unwrap();
    assert_eq!(alpha.ack("kept", 1).await.unwrap(), 1);
    // Under the quota: saved, and it takes the tenant over it (snapshots
    // are compressed: the state is noise).
    let noise = || {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        (0..2_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect::<Vec<u8>>()
    };
    alpha.save_snapshot("k", 1, noise()).await.unwrap();
    let saved = alpha.save_snapshot("k", 1, noise()).await;
    assert_eq!(code(saved), Code::ResourceExhausted);
    let tagged = alpha
        .add_tags(&Target::Positions(vec![1]), &["u".to_owned()])
        .await;
    assert_eq!(code(tagged), Code::ResourceExhausted);
    // Over it, a cursor it has still moves; no new one is made (each is
    // a file), by an acknowledgement or a durable subscription.
    assert_eq!(alpha.ack("kept", 1).await.unwrap(), 1);
    let made = alpha.ack("new", 1).await;
    assert_eq!(code(made), Code::ResourceExhausted);
    let opened = alpha.subscribe_durable("new", &Query::all()).await;
    assert_eq!(code(opened.map(|_| ())), Code::ResourceExhausted);
    let resumed = alpha.subscribe_durable("kept", &Query::all()).await;
    assert!(resumed.is_ok());
    server.shut_down().await;
}
