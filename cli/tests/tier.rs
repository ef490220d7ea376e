//! `gesta serve --ship-to` and `gesta restore`, against a real
//! S3-compatible server (moto's, started by `.ci/s3.sh` unless
//! `GESTA_S3_ENDPOINT` names one), with the endpoint and credentials in
//! the standard AWS variables: a served store ships, and restores to a
//! store that exports the same and verifies; a second writer on the
//! prefix is refused; a corrupt or missing bucket location says so.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use assert_cmd::cargo::CommandCargoExt;

const EVENTS: &str = r#"{"type":"CourseDefined","tags":["course:c1"],"data":{"capacity":2}}
{"type":"StudentSubscribed","tags":["course:c1","student:s1"],"data":{"student":"s1"}}
{"type":"StudentSubscribed","tags":["course:c1","student:s2"],"data":"s2"}
"#;

/// The S3 server's endpoint: `GESTA_S3_ENDPOINT`, or one started for
/// this process by `.ci/s3.sh --for-pid` (which installs moto[server]
/// when it is missing, and stops the server when this process exits).
fn endpoint() -> String {
    if let Ok(url) = std::env::var("GESTA_S3_ENDPOINT") {
        return url;
    }
    static STARTED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    STARTED
        .get_or_init(|| {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/s3.sh");
            let mut child = StdCommand::new("bash")
                .arg(&script)
                .arg("--for-pid")
                .arg(std::process::id().to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("run .ci/s3.sh");
            let mut line = String::new();
            BufReader::new(child.stdout.take().expect("stdout"))
                .read_line(&mut line)
                .expect("read .ci/s3.sh's output");
            std::mem::forget(child);
            line.trim()
                .strip_prefix("endpoint ")
                .unwrap_or_else(|| panic!("{} started no S3 server", script.display()))
                .to_owned()
        })
        .clone()
}

/// A new bucket (moto checks no signature, but wants credentials).
fn bucket(name: &str) -> String {
    let endpoint = endpoint();
    let addr = endpoint.trim_start_matches("http://").to_owned();
    let bucket = format!("gesta-cli-{name}-{}", std::process::id());
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=gesta/20250101/us-east-1/s3/aws4_request, \
         SignedHeaders=host, Signature=0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    bucket
}

fn aws_env(cmd: &mut StdCommand) -> &mut StdCommand {
    cmd.env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_ACCESS_KEY_ID", "gesta")
        .env("AWS_SECRET_ACCESS_KEY", "gesta")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true")
}

fn gesta() -> Command {
    let mut cmd = StdCommand::cargo_bin("gesta").expect("the gesta binary is built");
    aws_env(&mut cmd);
    Command::from_std(cmd)
}

/// A `gesta serve` process, started by [`serve`].
struct Server {
    child: Child,
    /// The address it listens on.
    listen: String,
    /// Its stderr's lines from the start, drained by a thread so that it
    /// never blocks.
    stderr: std::sync::mpsc::Receiver<String>,
}

/// `gesta serve DIR --ship-to URL`, once it ships and listens (so that
/// its SIGTERM handler is in place).
fn serve_shipping(dir: &str, url: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--ship-to", url];
    if !extra.contains(&"--ship-interval") {
        args.extend(["--ship-interval", "100ms"]);
    }
    args.extend_from_slice(extra);
    serve(dir, &args, "shipping to")
}

/// A free loopback address, `127.0.0.1:PORT`.
fn free_addr() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .to_string()
}

/// `gesta serve DIR ARGS` on a free port, once its start line (holding
/// `started`) is printed and it listens.
fn serve(dir: &str, args: &[&str], started: &str) -> Server {
    let listen = free_addr();
    let mut cmd = StdCommand::cargo_bin("gesta").expect("the gesta binary is built");
    aws_env(&mut cmd)
        .args(["serve", dir, "--listen", &listen])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start gesta serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "gesta serve did not start");
        match lines.next() {
            Some(Ok(line)) if line.contains(started) => {
                seen.push(line);
                break;
            }
            Some(Ok(line)) => seen.push(line),
            _ => panic!("gesta serve stopped before starting: {}", seen.join("\n")),
        }
    }
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(Instant::now() < deadline, "gesta serve did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (tx, stderr) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in seen.into_iter().chain(lines.map_while(Result::ok)) {
            let _ = tx.send(line);
        }
    });
    Server {
        child,
        listen,
        stderr,
    }
}

/// SIGTERM, then the exit status and stderr.
fn terminate(mut server: Server) -> (bool, String) {
    let killed = StdCommand::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = server.child.wait().expect("wait");
    let rest = server.stderr.iter().collect::<Vec<_>>().join("\n");
    (status.success(), rest)
}

/// The text of a `GET /metrics` at `addr`.
fn scrape(addr: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the metrics");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// A store in `dir` holding the three events of `EVENTS`.
fn store_with_events(dir: &str) {
    gesta()
        .args(["append", dir])
        .write_stdin(EVENTS)
        .assert()
        .success();
}

fn stdout(cmd: &mut Command) -> String {
    let out = cmd.assert().success();
    String::from_utf8(out.get_output().stdout.clone()).expect("utf-8 output")
}

#[test]
fn a_served_store_ships_and_restores_from_the_bucket() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let d = dir.to_str().unwrap();
    store_with_events(d);
    // A copy of the store: the same history (a store of another history
    // would be refused before it asks for the prefix).
    let other = tmp.path().join("other");
    let copied = StdCommand::new("cp")
        .arg("-r")
        .arg(&dir)
        .arg(&other)
        .status()
        .expect("cp");
    assert!(copied.success());
    let url = format!("s3://{}/events", bucket("ship"));
    let server = serve_shipping(d, &url, &[]);

    // A second writer on the same prefix is refused while the first holds it.
    let refused = gesta()
        .args(["serve", other.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(["--ship-to", &url])
        .timeout(Duration::from_secs(60))
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&refused.get_output().stderr).to_string();
    assert!(err.contains("is claimed by writer"), "{err}");

    let (ok, err) = terminate(server);
    assert!(ok, "gesta serve exits cleanly: {err}");
    assert!(err.contains("shipped positions 1..=3"), "{err}");

    let restored = tmp.path().join("restored");
    let r = restored.to_str().unwrap();
    let out = stdout(gesta().args(["restore", &url, r]));
    assert!(out.contains("restored positions 1..=3"), "{out}");
    gesta().args(["verify", r]).assert().success();
    assert_eq!(
        stdout(gesta().args(["export", d])),
        stdout(gesta().args(["export", r]))
    );

    // Released by the clean stop: the other store may ship there now
    // (and the restored store, a takeover of it, then be served too).
    let (ok, err) = terminate(serve_shipping(other.to_str().unwrap(), &url, &[]));
    assert!(ok, "{err}");
    let (ok, err) = terminate(serve_shipping(r, &url, &["--ship-takeover"]));
    assert!(ok, "{err}");

    // A restore never writes over a directory.
    let out = gesta().args(["restore", &url, r]).assert().failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("already exists"), "{err}");
}

/// Appends one event through gRPC to a server shipping to `url` once an
/// hour, then restores the bucket while the server still runs: the head
/// the bucket restores to.
fn append_then_restore(dir: &Path, name: &str, extra: &[&str]) -> u64 {
    let d = dir.join(name);
    store_with_events(d.to_str().unwrap());
    let url = format!("s3://{}/events", bucket(name));
    let metrics = free_addr();
    let mut args = vec!["--ship-interval", "1h", "--metrics", &metrics];
    args.extend_from_slice(extra);
    let server = serve_shipping(d.to_str().unwrap(), &url, &args);
    let listen = server.listen.clone();
    // The round at start ships the first three; the next is an hour away.
    let restores = |what: &str| {
        let to = dir.join(format!("{name}-{what}"));
        let out = gesta()
            .args(["restore", &url, to.to_str().unwrap()])
            .output()
            .expect("gesta restore");
        let _ = std::fs::remove_dir_all(&to);
        String::from_utf8_lossy(&out.stdout).contains("restored positions 1..=3 ")
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut attempt = 0;
    while !restores(&format!("first{attempt}")) {
        assert!(Instant::now() < deadline, "the first round never shipped");
        attempt += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (appended, shipping) = runtime.block_on(async {
        let mut client = gesta_server::client::GestaClient::connect(format!("http://{listen}"))
            .await
            .expect("connect");
        let appended = client
            .append(
                vec![gesta::NewEvent::new("Late", "after the first round")],
                gesta::AppendOptions::default(),
            )
            .await
            .expect("append");
        (appended, client.replication().await.expect("Replication"))
    });
    assert_eq!(appended.last, 4);
    // The writer reports what the bucket holds, through gesta.v1 and its
    // metrics: position 4 waits for a round unless it was acknowledged
    // only once shipped.
    use gesta_server::proto::gesta_v1::replication_response::Role;
    assert_eq!(shipping.role, Role::Writer as i32);
    assert_eq!((shipping.head, &shipping.bucket), (4, &url));
    let behind = 4 - shipping.bucket_head;
    assert_eq!(shipping.behind, behind, "{shipping:?}");
    assert_eq!(behind, u64::from(!extra.contains(&"--ship-ack")));
    let text = scrape(&metrics);
    assert!(
        text.contains(&format!(
            "gesta_replication_behind_events{{role=\"writer\"}} {behind}"
        )),
        "{text}"
    );
    let restored = dir.join(format!("{name}-restored"));
    let out = stdout(gesta().args(["restore", &url, restored.to_str().unwrap()]));
    let (ok, err) = terminate(server);
    assert!(ok, "{err}");
    out.split("restored positions 1..=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no head in {out:?}"))
}

#[test]
fn with_ship_ack_an_append_is_answered_only_once_the_bucket_holds_it() {
    let tmp = tempfile::tempdir().unwrap();
    // Without it, the event waits for the next round, an hour away; with
    // it, the append's answer means the bucket restores to it.
    assert_eq!(append_then_restore(tmp.path(), "noack", &[]), 3);
    assert_eq!(
        append_then_restore(tmp.path(), "ack", &["--ship-ack", "30s"]),
        4
    );
}

#[test]
fn restore_says_what_is_wrong_with_the_location() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("r");
    let t = target.to_str().unwrap();
    let out = gesta()
        .args(["restore", "http://not-s3/x", t])
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("s3://BUCKET/PREFIX"), "{err}");
    let url = format!("s3://{}/nothing-here", bucket("empty"));
    let out = gesta().args(["restore", &url, t]).assert().failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("holds no checkpoint"), "{err}");
    assert!(!target.exists());
}

/// An encrypted store is served through its wrapper while it ships, and
/// its keys are never shipped (a forget must reach every copy): the
/// server says so, the restored store has a key file without keys (each
/// round ships the engine's backup, which writes it), so its subjects'
/// events do not open, and a copy of the store's own makes it read as the
/// store does.
#[test]
fn an_encrypted_store_ships_without_its_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let d = dir.to_str().unwrap();
    gesta()
        .args(["append", d, "--encrypt"])
        .write_stdin(
            "{\"type\":\"Registered\",\"tags\":[\"subject:u1\"],\"data\":\"u1-tier-secret-5e2a\"}\n",
        )
        .assert()
        .success();
    let url = format!("s3://{}/events", bucket("ship-encrypted"));
    let (ok, err) = terminate(serve_shipping(d, &url, &[]));
    assert!(ok, "{err}");
    assert!(err.contains("keys are not shipped"), "{err}");
    let restored = tmp.path().join("restored");
    let r = restored.to_str().unwrap();
    stdout(gesta().args(["restore", &url, r]));
    assert!(restored.join("KEYS").is_file());
    gesta()
        .args(["read", r])
        .assert()
        .failure()
        .stderr(predicates::str::contains("cannot decrypt"));
    std::fs::copy(dir.join("KEYS"), restored.join("KEYS")).unwrap();
    let read = stdout(gesta().args(["read", r]));
    assert!(read.contains("u1-tier-secret-5e2a"), "{read}");
}

/// `gesta serve --replica-of` follows a writer's bucket: it starts from an
/// empty directory (restored from the bucket), applies what the writer
/// ships afterwards, serves it on both services and to a live
/// subscription, reports how far behind it is (gesta.v1 Replication and
/// its metrics), and refuses writes on both services naming the writer.
/// Its directory then serves as the prefix's next writer (a failover).
#[test]
fn a_replica_serves_what_the_writer_ships_and_refuses_writes() {
    use futures::StreamExt;
    use gesta_server::proto::gesta_v1::replication_response::Role;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("writer");
    let d = dir.to_str().unwrap();
    store_with_events(d);
    let url = format!("s3://{}/events", bucket("replica"));
    let writer = serve_shipping(d, &url, &[]);
    let metrics = free_addr();
    let replica_dir = tmp.path().join("replica");
    let replica = serve(
        replica_dir.to_str().unwrap(),
        &[
            "--replica-of",
            &url,
            "--replica-interval",
            "50ms",
            "--metrics",
            &metrics,
        ],
        "a read replica of",
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let connect =
            |listen: &str| gesta_server::client::GestaClient::connect(format!("http://{listen}"));
        let mut w = connect(&writer.listen)
            .await
            .expect("connect to the writer");
        let mut r = connect(&replica.listen)
            .await
            .expect("connect to the replica");
        let caught_up = |mut r: gesta_server::client::GestaClient, head: u64| async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let status = r.replication().await.expect("Replication");
                // Polled at least once, and nothing left to apply.
                let polled = status.since_last_success_ms.is_some();
                if polled && status.head >= head && status.behind == 0 {
                    return status;
                }
                assert!(Instant::now() < deadline, "the replica lags: {status:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };

        // The replica started from the bucket; a live subscription on it
        // then sees what the writer appends.
        let status = caught_up(r.clone(), 3).await;
        assert_eq!(status.role, Role::Replica as i32);
        assert_eq!(status.bucket, url);
        assert!(status.writer.contains("epoch"), "{status:?}");
        let mut live = r
            .subscribe(&gesta::Query::all(), 3)
            .await
            .expect("subscribe");
        let appended = w
            .append(
                vec![
                    gesta::NewEvent::new("Late", "one")
                        .tags(["course:c1"])
                        .stream("course-c1"),
                    gesta::NewEvent::new("Late", "two").stream("course-c1"),
                ],
                gesta::AppendOptions::default(),
            )
            .await
            .expect("append to the writer");
        assert_eq!(appended.last, 5);
        let batch = tokio::time::timeout(Duration::from_secs(60), live.next())
            .await
            .expect("the subscription sees the writer's append")
            .expect("a batch")
            .expect("no error");
        assert_eq!(
            batch.iter().map(|e| e.position).collect::<Vec<_>>(),
            [4, 5],
            "one batch, as appended"
        );
        let status = caught_up(r.clone(), 5).await;
        assert_eq!(status.bucket_head, 5);

        // Both read the same events, through gesta.v1 and umadb.v1.
        let all = |mut c: gesta_server::client::GestaClient| async move {
            c.read(&gesta::Query::all(), gesta::ReadOptions::default())
                .await
                .expect("read")
                .map(|e| e.expect("event"))
                .collect::<Vec<_>>()
                .await
        };
        assert_eq!(all(w.clone()).await, all(r.clone()).await);
        let stream = r
            .read_stream("course-c1", Default::default())
            .await
            .expect("read_stream");
        assert_eq!(stream.count().await, 2);
        let mut dcb = gesta_server::proto::v1::dcb_client::DcbClient::connect(format!(
            "http://{}",
            replica.listen
        ))
        .await
        .expect("connect umadb.v1");
        let head = dcb
            .head(gesta_server::proto::v1::HeadRequest {})
            .await
            .expect("head")
            .into_inner()
            .position;
        assert_eq!(head, Some(5));

        // Writes are refused on both services, naming the writer; nothing
        // changes.
        let refused = r
            .append(vec![gesta::NewEvent::new("X", "no")], Default::default())
            .await
            .expect_err("a replica refuses appends");
        match refused {
            gesta_server::client::ClientError::Store(gesta::Error::Replica { writer }) => {
                assert!(writer.contains(&url), "{writer}")
            }
            other => panic!("not a replica's refusal: {other}"),
        }
        let refused = r.save_snapshot("k", 5, b"state".to_vec()).await;
        assert!(
            matches!(
                refused,
                Err(gesta_server::client::ClientError::Store(
                    gesta::Error::Replica { .. }
                ))
            ),
            "{refused:?}"
        );
        let refused = dcb
            .append(gesta_server::proto::v1::AppendRequest {
                events: vec![gesta_server::proto::v1::Event {
                    event_type: "X".into(),
                    ..Default::default()
                }],
                condition: None,
                tracking_info: None,
            })
            .await
            .expect_err("umadb.v1 appends are refused too");
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert!(refused.message().contains("read replica"), "{refused:?}");
        assert_eq!(r.head().await.unwrap(), 5);

        // The writer reports its side: everything shipped.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = w.replication().await.expect("Replication on the writer");
            assert_eq!(status.role, Role::Writer as i32);
            if status.bucket_head == 5 && status.behind == 0 {
                assert!(status.since_last_success_ms.is_some());
                break;
            }
            assert!(Instant::now() < deadline, "not shipped: {status:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    // The replica's metrics say where it stands.
    let text = scrape(&metrics);
    assert!(
        text.contains("gesta_replication_behind_events{role=\"replica\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("gesta_replication_bucket_head{role=\"replica\"} 5"),
        "{text}"
    );
    assert!(text.contains("gesta_head_position"), "{text}");

    let (ok, err) = terminate(replica);
    assert!(ok, "the replica exits cleanly: {err}");
    assert!(err.contains("stopped at head 5"), "{err}");
    let (ok, err) = terminate(writer);
    assert!(ok, "{err}");
    // The replica's directory is a store of its own: it verifies and
    // holds what the writer holds.
    let r = replica_dir.to_str().unwrap();
    gesta().args(["verify", r]).assert().success();
    assert_eq!(
        stdout(gesta().args(["export", d])),
        stdout(gesta().args(["export", r]))
    );

    // Promoted: served as the prefix's writer (the old one released it;
    // a dead one would need --ship-takeover), it takes appends and ships
    // them.
    let promoted = serve_shipping(r, &url, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let appended = runtime.block_on(async {
        let mut c =
            gesta_server::client::GestaClient::connect(format!("http://{}", promoted.listen))
                .await
                .expect("connect");
        c.append(
            vec![gesta::NewEvent::new("AfterFailover", "6")],
            Default::default(),
        )
        .await
        .expect("the promoted replica takes appends")
    });
    assert_eq!(appended.last, 6);
    let (ok, err) = terminate(promoted);
    assert!(ok, "{err}");
    assert!(err.contains("shipped positions 1..=6"), "{err}");
}

/// `gesta serve ROOT --tenants --ship-to URL` ships each tenant's store to
/// its own prefix `URL/NAME` while it is open: with one store open at a
/// time, each switch closes a tenant's store after a last round, so its
/// prefix restores to everything it committed; at shutdown, every open
/// one ships its last round.
#[test]
fn each_tenant_ships_to_its_own_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    for tenant in ["alpha", "beta"] {
        std::fs::create_dir_all(root.join("tenants").join(tenant)).unwrap();
    }
    let keys = tmp.path().join("keys");
    std::fs::write(&keys, "alpha key-a\nbeta key-b\n").unwrap();
    let url = format!("s3://{}/t", bucket("tenants"));
    let server = serve(
        root.to_str().unwrap(),
        &[
            "--tenants",
            "--tenant-keys",
            keys.to_str().unwrap(),
            "--max-open-tenants",
            "1",
            "--insecure-loopback-api-key",
            "--ship-to",
            &url,
            "--ship-interval",
            "1h",
        ],
        "tenants under",
    );
    let restored = |tenant: &str, name: &str| -> String {
        let to = tmp.path().join(name);
        stdout(gesta().args(["restore", &format!("{url}/{tenant}"), to.to_str().unwrap()]))
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = |key: &'static str| {
            let listen = server.listen.clone();
            async move {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{listen}"))
                    .unwrap()
                    .connect()
                    .await
                    .unwrap();
                gesta_server::client::GestaClient::with_api_key(channel, key).unwrap()
            }
        };
        let (mut alpha, mut beta) = (client("key-a").await, client("key-b").await);
        let one = |what: &str| vec![gesta::NewEvent::new("E", what.to_owned())];
        alpha.append(one("a1"), Default::default()).await.unwrap();
        alpha.append(one("a2"), Default::default()).await.unwrap();
        // Beta's store takes alpha's place: alpha's last round ships.
        beta.append(one("b1"), Default::default()).await.unwrap();
        // And back: beta's ships.
        alpha.append(one("a3"), Default::default()).await.unwrap();
    });
    // Alpha's prefix holds at least what it committed before its store
    // closed (its reopened store's first round may have shipped a3 too).
    let mid = restored("alpha", "alpha-mid");
    assert!(
        mid.contains("restored positions 1..=2 ") || mid.contains("restored positions 1..=3 "),
        "{mid}"
    );
    let mid = restored("beta", "beta-mid");
    assert!(mid.contains("restored positions 1..=1 "), "{mid}");
    let (ok, err) = terminate(server);
    assert!(ok, "{err}");
    assert!(
        err.contains("tenant alpha: shipped positions 1..=3"),
        "{err}"
    );
    assert!(
        err.contains("tenant beta: shipped positions 1..=1"),
        "{err}"
    );
    let out = restored("alpha", "alpha-end");
    assert!(out.contains("restored positions 1..=3 "), "{out}");
    assert_eq!(
        stdout(gesta().args(["export", root.join("tenants/alpha").to_str().unwrap()])),
        stdout(gesta().args(["export", tmp.path().join("alpha-end").to_str().unwrap()]))
    );
}

/// `gesta serve --ship-to URL --ship-evict-keep 0` keeps no sealed segment
/// on the local disk once the bucket holds it: reads of them go to the
/// bucket, a later `gesta serve --ship-to` opens the store through it, and
/// the commands that open the store alone say where its segments went.
#[test]
fn a_served_store_evicts_its_sealed_segments_and_reads_them_from_the_bucket() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    {
        // Small segments, so that the log has sealed ones to evict.
        let store = gesta::Store::open_with(
            &dir,
            gesta::Options::default()
                .segment_size(64 << 10)
                .preallocate(16 << 10),
        )
        .unwrap();
        for i in 0..2_000 {
            store
                .append(vec![
                    gesta::NewEvent::new("E", format!("event {i} {}", "x".repeat(64)))
                        .tags([format!("mod:{}", i % 7)]),
                ])
                .unwrap();
        }
        store.close().unwrap();
    }
    let d = dir.to_str().unwrap();
    let want = stdout(gesta().args(["export", d]));
    let url = format!("s3://{}/events", bucket("evict"));
    let evicted = || {
        std::fs::read_dir(dir.join("wal"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".evicted")
            })
            .count()
    };
    let read_all = |listen: &str| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            use futures::StreamExt;
            let mut c = gesta_server::client::GestaClient::connect(format!("http://{listen}"))
                .await
                .expect("connect");
            c.read(&gesta::Query::all(), gesta::ReadOptions::default())
                .await
                .expect("read")
                .map(|e| e.expect("event"))
                .collect::<Vec<_>>()
                .await
        })
    };

    let server = serve_shipping(d, &url, &["--ship-evict-keep", "0"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while evicted() < 2 {
        assert!(Instant::now() < deadline, "nothing was evicted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let events = read_all(&server.listen);
    assert_eq!(events.len(), 2_000);
    assert!(
        events
            .iter()
            .enumerate()
            .all(|(i, e)| e.position == i as u64 + 1)
    );
    let (ok, err) = terminate(server);
    assert!(ok, "{err}");
    assert!(evicted() >= 2);

    // Alone, the command cannot read them, and says where they are.
    let refused = gesta().args(["export", d]).assert().failure();
    let message = String::from_utf8_lossy(&refused.get_output().stderr).to_string();
    assert!(message.contains("evicted"), "{message}");
    assert!(message.contains("--ship-to"), "{message}");
    // Served with the bucket again, it reads them; and the bucket
    // restores the whole store.
    let server = serve_shipping(d, &url, &[]);
    assert_eq!(read_all(&server.listen), events);
    let (ok, err) = terminate(server);
    assert!(ok, "{err}");
    let restored = tmp.path().join("restored");
    stdout(gesta().args(["restore", &url, restored.to_str().unwrap()]));
    assert_eq!(
        stdout(gesta().args(["export", restored.to_str().unwrap()])),
        want
    );
}
