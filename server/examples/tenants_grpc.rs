//! Many tenants in one server process: `TENANTS` (default 1,000) tenants,
//! each with its own API key, served from one root with at most
//! `MAX_OPEN` (default 64) stores open; a client in the same process
//! appends one event per tenant per pass, `ROUNDS` (default 3) passes in a
//! shuffled order (so most calls reopen a store closed to make room), then
//! reads each tenant's head back. Prints the rate, the most threads the
//! process ran and its peak resident memory (Linux). Every loop is bounded.
//!
//! ```sh
//! cargo run --release -p gesta-server --example tenants_grpc -- [TENANTS] [MAX_OPEN] [ROUNDS]
//! ```

use std::sync::Arc;
use std::time::Instant;

use gesta::tenants::{TenantOptions, Tenants};
use gesta::{AppendOptions, NewEvent, Options};
use gesta_server::client::GestaClient;
use gesta_server::{ServeConfig, TenantKeys};
use tonic::transport::Endpoint;

fn status(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .map(|l| l[key.len() + 1..].trim().to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .map(|s| s.parse().expect("a number"))
            .unwrap_or(default)
    };
    let (count, max_open, rounds) = (arg(1, 1000), arg(2, 64), arg(3, 3));
    let root = tempfile::tempdir().expect("a temporary directory");
    let tenants = Arc::new(
        Tenants::open(
            root.path(),
            TenantOptions {
                store: Options::default()
                    .segment_size(4 << 20)
                    .preallocate(256 << 10),
                max_open,
                ..TenantOptions::default()
            },
        )
        .expect("tenants"),
    );
    let mut keys = TenantKeys::default();
    let names: Vec<String> = (0..count).map(|i| format!("tenant-{i}")).collect();
    for name in &names {
        tenants.create(name).expect("create");
        keys.insert(name, &format!("key-{name}")).expect("a key");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let config = ServeConfig {
        listen: addr,
        insecure_loopback_api_key: true,
        ..ServeConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gesta_server::serve_tenants_on(
        listener,
        tenants.clone(),
        keys,
        config,
        async move {
            let _ = stopped.await;
        },
    ));
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut clients: Vec<GestaClient> = names
        .iter()
        .map(|name| {
            GestaClient::with_api_key(channel.clone(), &format!("key-{name}")).expect("key")
        })
        .collect();
    let mut order: Vec<usize> = (0..count).collect();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut most_threads = threads();
    let started = Instant::now();
    for round in 0..rounds {
        for i in (1..order.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        for &t in &order {
            let event = NewEvent::new("Ping", format!("{{\"round\":{round}}}"));
            clients[t]
                .append(vec![event], AppendOptions::new())
                .await
                .expect("append");
            if t % 50 == 0 {
                most_threads = most_threads.max(threads());
            }
        }
    }
    let elapsed = started.elapsed();
    for client in &mut clients {
        assert_eq!(client.head().await.expect("head"), rounds as u64);
    }
    let appends = count * rounds;
    println!(
        "{count} tenants, one key each, at most {max_open} stores open: {appends} appends through gRPC \
         in {:.2} s ({:.0}/s, most reopening a store)",
        elapsed.as_secs_f64(),
        appends as f64 / elapsed.as_secs_f64()
    );
    println!(
        "threads at most {most_threads}; peak resident memory {}",
        status("VmHWM")
    );
    let _ = stop.send(());
    server.await.expect("server task").expect("served");
    tenants.close().expect("close");
}
