//! What the tier tests share: a real S3-compatible server on loopback
//! (moto's, started by the repository's `.ci/s3.sh`), a fresh bucket per
//! test, a TCP proxy in front of the server that a test can cut to make
//! the bucket unreachable, and stores filled with known events.
//!
//! The server is the one named by `GESTA_S3_ENDPOINT` when it is set
//! (`source .ci/s3.sh` sets it); otherwise each test process starts its
//! own through `.ci/s3.sh --for-pid`, which installs moto[server] from
//! PyPI when it is missing and stops the server when the process exits.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use gesta::{NewEvent, Options, Query, ReadOptions, RecordedEvent, Store};
use gesta_tier::Location;

/// The S3 server's endpoint, `http://127.0.0.1:PORT`.
pub fn endpoint() -> String {
    if let Ok(url) = std::env::var("GESTA_S3_ENDPOINT") {
        return url;
    }
    static STARTED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    STARTED
        .get_or_init(|| {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/s3.sh");
            let mut child = Command::new("bash")
                .arg(&script)
                .arg("--for-pid")
                .arg(std::process::id().to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("run .ci/s3.sh");
            let stdout = child.stdout.take().expect("its stdout");
            let mut line = String::new();
            BufReader::new(stdout)
                .read_line(&mut line)
                .expect("read .ci/s3.sh's output");
            let endpoint = line
                .trim()
                .strip_prefix("endpoint ")
                .unwrap_or_else(|| {
                    panic!(
                        "{} did not start an S3 server (it needs Python and PyPI's moto[server]); \
                         start one with `source .ci/s3.sh` and run the tests again",
                        script.display()
                    )
                })
                .to_owned();
            // The script lives as long as this process; it is not waited for.
            std::mem::forget(child);
            endpoint
        })
        .clone()
}

/// A name no other test uses.
pub fn unique(what: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{what}-{}-{:x}-{}",
        std::process::id(),
        nanos & 0xffff_ffff,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a bucket on the server at `endpoint` (object_store has no call
/// for it). moto checks no signature; it answers anonymous requests that
/// fail a condition with 403 rather than 412, so every request of the
/// tests carries credentials, this one included.
pub fn create_bucket(endpoint: &str, bucket: &str) {
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect to the S3 server");
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=gesta/20250101/us-east-1/s3/aws4_request, \
         SignedHeaders=host, Signature=0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
        "create bucket {bucket}: {answer}"
    );
}

/// The settings that point the client at `endpoint`.
pub fn settings(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("aws_endpoint_url", endpoint.to_owned()),
        ("aws_access_key_id", "gesta".into()),
        ("aws_secret_access_key", "gesta".into()),
        ("aws_default_region", "us-east-1".into()),
        ("aws_allow_http", "true".into()),
    ]
}

/// `s3://bucket/prefix` on the server at `endpoint`.
pub fn location_at(endpoint: &str, bucket: &str, prefix: &str) -> Location {
    location_with(endpoint, bucket, prefix, &[])
}

/// [`location_at`] with more client settings (`("timeout", "1s")`).
pub fn location_with(
    endpoint: &str,
    bucket: &str,
    prefix: &str,
    more: &[(&str, &str)],
) -> Location {
    let settings = settings(endpoint);
    let pairs: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(more.iter().copied())
        .collect();
    Location::from_url_with(&format!("s3://{bucket}/{prefix}"), &pairs).expect("location")
}

/// A new bucket on the test server, and a location in it.
pub fn fresh_location() -> (String, Location) {
    let endpoint = endpoint();
    let bucket = unique("gesta-t");
    create_bucket(&endpoint, &bucket);
    let location = location_at(&endpoint, &bucket, "stores/one");
    (bucket, location)
}

/// Small segments (many sealed ones) and a small memtable (index runs).
pub fn options() -> Options {
    Options::default()
        .segment_size(64 << 10)
        .memtable_postings(2_000)
}

/// The `i`-th event of the tests: its bytes depend on `i` alone, so a
/// test (or another process) can say what position `i` must hold.
pub fn event(i: u64) -> NewEvent {
    NewEvent::new(
        "Happened",
        format!("event {i} {}", "x".repeat((i % 97) as usize)).into_bytes(),
    )
    .tag(format!("mod:{}", i % 7))
    .stream(format!("s-{}", i % 5))
}

/// Appends events `from..from + count`, in batches of `batch`.
pub fn fill(store: &Store, from: u64, count: u64, batch: u64) {
    let mut i = from;
    while i < from + count {
        let n = batch.min(from + count - i);
        store
            .append((i..i + n).map(event).collect())
            .expect("append");
        i += n;
    }
}

pub fn read_all(store: &Store) -> Vec<RecordedEvent> {
    store
        .read(&Query::all(), ReadOptions::forwards())
        .expect("read")
        .collect::<gesta::Result<Vec<_>>>()
        .expect("read")
}

/// Checks `dir` verifies, opens, and holds exactly `expected`.
pub fn check_restored(dir: &Path, expected: &[RecordedEvent]) {
    let report = gesta::inspect::verify(dir, &mut |_, _| {}).expect("verify runs");
    assert!(
        report.findings.iter().all(|f| f.harmless),
        "the restored store verifies: {report:?}"
    );
    let store = Store::open_with(dir, options()).expect("the restored store opens");
    assert_eq!(store.head(), expected.len() as u64);
    let ours = read_all(&store);
    assert_eq!(ours.len(), expected.len());
    for (a, b) in ours.iter().zip(expected) {
        assert!(
            a == b,
            "position {}: restored {a:?}, source {b:?}",
            b.position
        );
    }
    store.close().expect("close");
}

/// A TCP proxy to the S3 server that a test can cut (every connection,
/// open or new, is dropped) or stall (connections are accepted, and
/// nothing goes through: requests time out), and restore: the bucket
/// unreachable for a while, with its contents kept.
pub struct Proxy {
    pub endpoint: String,
    up: Arc<AtomicBool>,
    stalled: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(target: &str) -> Proxy {
        let target: SocketAddr = target
            .trim_start_matches("http://")
            .parse()
            .expect("a loopback endpoint");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let up = Arc::new(AtomicBool::new(true));
        let stalled = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (up, generation, stop) = (up.clone(), generation.clone(), stop.clone());
            let stalled = stalled.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let client = match listener.accept() {
                        Ok((c, _)) => c,
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                    };
                    if !up.load(Ordering::SeqCst) {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(target) else {
                        continue;
                    };
                    let _ = client.set_nonblocking(false);
                    let born = generation.load(Ordering::SeqCst);
                    for (from, to) in [
                        (client.try_clone(), server.try_clone()),
                        (server.try_clone(), client.try_clone()),
                    ] {
                        let (Ok(from), Ok(to)) = (from, to) else {
                            continue;
                        };
                        let generation = generation.clone();
                        let stalled = stalled.clone();
                        std::thread::spawn(move || pump(from, to, &generation, born, &stalled));
                    }
                }
            });
        }
        Proxy {
            endpoint,
            up,
            stalled,
            generation,
            stop,
        }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Lets connections through again.
    pub fn mend(&self) {
        self.up.store(true, Ordering::SeqCst);
        self.stalled.store(false, Ordering::SeqCst);
    }

    /// Holds every byte, in both directions, until [`mend`](Self::mend).
    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
    }
}

/// Copies `from` to `to` until either closes or the proxy is cut.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    generation: &AtomicU64,
    born: u64,
    stalled: &AtomicBool,
) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buf = [0u8; 64 << 10];
    loop {
        if generation.load(Ordering::SeqCst) != born {
            break;
        }
        if stalled.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Ships only when asked (rounds every hour), so a test decides.
pub fn on_demand() -> gesta_tier::ShipOptions {
    gesta_tier::ShipOptions::default().interval(Duration::from_secs(3600))
}

/// A runtime for the tests' own requests to the bucket.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}
