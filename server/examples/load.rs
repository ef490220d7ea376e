//! Throughput and latency through gRPC, against a server started in this
//! process on a loopback port over a temporary store (Durability::Sync):
//!
//! - W1: one connection, one event per append, one after another;
//! - W2: `c` connections appending single events concurrently;
//! - W3: one connection, batches of 100 events;
//! - W4: as W2, each append conditional on its writer's own tag;
//! - R2: `c` connections reading every event with one tag (100 each).
//!
//! for `c` in 1, 16 and 64 where it applies. Every loop is bounded.
//!
//! ```sh
//! cargo run --release -p gesta-server --example load -- 2000
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gesta_server::proto::v1;
use gesta_server::proto::v1::dcb_client::DcbClient;
use tonic::transport::Channel;

fn event(tag: String) -> v1::Event {
    v1::Event {
        event_type: "Measured".into(),
        tags: vec![tag],
        data: vec![b'x'; 200].into(),
        uuid: String::new(),
        metadata: vec![],
    }
}

async fn connect(addr: SocketAddr) -> DcbClient<Channel> {
    DcbClient::connect(format!("http://{addr}"))
        .await
        .expect("connect")
}

struct Outcome {
    events: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Outcome {
    fn print(&self, name: &str, connections: usize) {
        let mut l = self.latencies.clone();
        l.sort();
        let pct = |p: f64| l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)));
        println!(
            "{name:<3} conns={connections:<3} {:>9.0} events/s  p50={:>8.2?} p99={:>8.2?}  ({} events in {:.2?})",
            self.events as f64 / self.elapsed.as_secs_f64(),
            pct(0.5).copied().unwrap_or_default(),
            pct(0.99).copied().unwrap_or_default(),
            self.events,
            self.elapsed,
        );
    }
}

/// `connections` writers share `total` appends of `batch` events each.
async fn writers(
    addr: SocketAddr,
    connections: usize,
    total: usize,
    batch: usize,
    conditional: bool,
    run: &str,
) -> Outcome {
    let per = total.div_ceil(connections);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..connections {
        let tag = format!("{run}:w{w}");
        tasks.push(tokio::spawn(async move {
            let mut c = connect(addr).await;
            let mut latencies = Vec::with_capacity(per);
            let mut last = None;
            for _ in 0..per {
                let condition = conditional.then(|| v1::AppendCondition {
                    fail_if_events_match: Some(v1::Query {
                        items: vec![v1::QueryItem {
                            types: vec![],
                            tags: vec![tag.clone()],
                        }],
                    }),
                    after: last,
                });
                let request = v1::AppendRequest {
                    events: (0..batch).map(|_| event(tag.clone())).collect(),
                    condition,
                    tracking_info: None,
                };
                let t = Instant::now();
                let position = c
                    .append(request)
                    .await
                    .expect("append")
                    .into_inner()
                    .position;
                latencies.push(t.elapsed());
                last = Some(position);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("writer"));
    }
    Outcome {
        events: (latencies.len() * batch) as u64,
        elapsed: started.elapsed(),
        latencies,
    }
}

/// `connections` readers run `total` reads of the events of one W2 tag.
async fn readers(addr: SocketAddr, connections: usize, total: usize, tags: usize) -> Outcome {
    let per = total.div_ceil(connections);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for r in 0..connections {
        tasks.push(tokio::spawn(async move {
            let mut c = connect(addr).await;
            let mut latencies = Vec::with_capacity(per);
            let mut events = 0u64;
            for i in 0..per {
                let tag = format!("R2:w{}", (r + i) % tags);
                let request = v1::ReadRequest {
                    query: Some(v1::Query {
                        items: vec![v1::QueryItem {
                            types: vec![],
                            tags: vec![tag],
                        }],
                    }),
                    ..Default::default()
                };
                let t = Instant::now();
                let mut stream = c.read(request).await.expect("read").into_inner();
                while let Some(r) = stream.message().await.expect("read") {
                    events += r.events.len() as u64;
                }
                latencies.push(t.elapsed());
            }
            (latencies, events)
        }));
    }
    let mut latencies = Vec::new();
    let mut events = 0;
    for t in tasks {
        let (l, e) = t.await.expect("reader");
        latencies.extend(l);
        events += e;
    }
    Outcome {
        events,
        elapsed: started.elapsed(),
        latencies,
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = gesta::Store::open(dir.path()).expect("open");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gesta_server::serve_on(
        listener,
        store.clone(),
        gesta_server::ServeConfig::default(),
        async {
            let _ = stopped.await;
        },
    ));

    writers(addr, 1, n, 1, false, "W1").await.print("W1", 1);
    for c in [1, 16, 64] {
        writers(addr, c, n, 1, false, &format!("W2c{c}"))
            .await
            .print("W2", c);
    }
    writers(addr, 1, n / 10, 100, false, "W3")
        .await
        .print("W3", 1);
    for c in [1, 16, 64] {
        writers(addr, c, n, 1, true, &format!("W4c{c}"))
            .await
            .print("W4", c);
    }
    // R2's data: 100 tags of 100 events each.
    let tags = 100;
    writers(addr, tags, tags, 100, false, "R2").await;
    for c in [1, 16, 64] {
        readers(addr, c, n / 4, tags).await.print("R2", c);
    }

    let _ = stop.send(());
    server.await.expect("server task").expect("server");
    store.close().expect("close");
}
