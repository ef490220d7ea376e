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

/// `gesta serve DIR --ship-to URL`, once it ships and listens (so that
/// its SIGTERM handler is in place).
fn serve_shipping(dir: &str, url: &str, extra: &[&str]) -> Child {
    serve_shipping_at(dir, url, extra).0
}

/// [`serve_shipping`], and the address it listens on.
fn serve_shipping_at(dir: &str, url: &str, extra: &[&str]) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = StdCommand::cargo_bin("gesta").expect("the gesta binary is built");
    aws_env(&mut cmd)
        .args(["serve", dir, "--listen", &listen, "--ship-to", url])
        .args(if extra.contains(&"--ship-interval") {
            &[][..]
        } else {
            &["--ship-interval", "100ms"][..]
        })
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start gesta serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "gesta serve did not start");
        match lines.next() {
            Some(Ok(line)) if line.contains("shipping to") => break,
            Some(Ok(_)) => continue,
            _ => panic!("gesta serve stopped before shipping"),
        }
    }
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(Instant::now() < deadline, "gesta serve did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Keep draining stderr so that the server never blocks on it; the
    // lines are handed back through a thread.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    STDERR.with(|s| *s.borrow_mut() = Some(rx));
    (child, listen)
}

thread_local! {
    static STDERR: std::cell::RefCell<Option<std::sync::mpsc::Receiver<String>>> =
        const { std::cell::RefCell::new(None) };
}

/// SIGTERM, then the exit status and the rest of stderr.
fn terminate(mut child: Child) -> (bool, String) {
    let killed = StdCommand::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    let rest = STDERR.with(|s| {
        s.borrow_mut()
            .take()
            .map(|rx| rx.iter().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    });
    (status.success(), rest)
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
    gesta()
        .args(["append", d])
        .write_stdin(EVENTS)
        .assert()
        .success();
    let url = format!("s3://{}/events", bucket("ship"));
    let server = serve_shipping(d, &url, &[]);

    // A second writer on the same prefix is refused while the first holds it.
    let other = tmp.path().join("other");
    gesta()
        .args(["append", other.to_str().unwrap()])
        .write_stdin(EVENTS)
        .assert()
        .success();
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
    gesta()
        .args(["append", d.to_str().unwrap()])
        .write_stdin(EVENTS)
        .assert()
        .success();
    let url = format!("s3://{}/events", bucket(name));
    let mut args = vec!["--ship-interval", "1h"];
    args.extend_from_slice(extra);
    let (server, listen) = serve_shipping_at(d.to_str().unwrap(), &url, &args);
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
    let appended = runtime.block_on(async {
        let mut client = gesta_server::client::GestaClient::connect(format!("http://{listen}"))
            .await
            .expect("connect");
        client
            .append(
                vec![gesta::NewEvent::new("Late", "after the first round")],
                gesta::AppendOptions::default(),
            )
            .await
            .expect("append")
    });
    assert_eq!(appended.last, 4);
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
