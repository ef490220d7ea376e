//! R2 through `gesta serve`'s DCB service (the server in this process, on
//! a loopback port), for profiling: builds once, kept in the bench cache
//! directory, a store of the standard data loaded through the server as
//! `gesta-bench --server` loads it (an event's stream as a metadata
//! entry), then runs R2's queries through UmaDB's generated client
//! `ROUNDS` times. With `PROTOCOL=gesta` in the environment the same
//! queries go through the `gesta.v1` service's `Read` instead, with the
//! server crate's Rust client (`GestaClient`) on one connection, its
//! events owned (`read`); with `PROTOCOL=gesta-lent`, lent
//! (`read_each`).
//!
//! ```text
//! cargo run --release -p gesta-benches --features server --example server_reads -- [EVENTS] [QUERIES] [ROUNDS] [CONNECTIONS]
//! perf record -e cpu-clock -g target/release/examples/server_reads
//! ```
//! Defaults: 1,000,000 events, 2,000 queries, 5 rounds, 1 connection.

use std::sync::Arc;

use futures::TryStreamExt;
use gesta::{Durability, Options, ReadOptions, Store};
use gesta_benches::harness::remote::{LocalServer, runtime};
use gesta_benches::harness::workloads;
use gesta_benches::{build_options, cache_root};
use gesta_server::client::GestaClient;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: u64| {
        args.get(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let events = arg(0, 1_000_000);
    let queries = arg(1, 2_000) as usize;
    let rounds = arg(2, 5);
    let connections = arg(3, 1) as usize;
    let server_runtime = runtime("server").expect("the server's runtime");
    let client_runtime = runtime("client").expect("the client's runtime");

    let dir = cache_root().join(format!("server-r2-{events}-v1"));
    let marker = dir.with_extension("complete");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let store = Store::open_with(&dir, build_options()).expect("open");
        let server = LocalServer::start(Arc::clone(&server_runtime), store).expect("serve");
        let remote = server.connect(&client_runtime, 1).expect("connect");
        workloads::load(&remote, events).expect("load");
        drop(remote);
        server.stop().expect("stop");
        std::fs::write(&marker, b"").expect("marker");
    }
    gesta_benches::warm_page_cache(&dir).expect("warm");
    let store =
        Store::open_with(&dir, Options::default().durability(Durability::Sync)).expect("open");
    let server = LocalServer::start(Arc::clone(&server_runtime), store).expect("serve");
    let work = workloads::Queries::new();
    let protocol = std::env::var("PROTOCOL").unwrap_or_default();
    if protocol.starts_with("gesta") {
        let lent = protocol == "gesta-lent";
        gesta_v1_reads(&server, &client_runtime, &work, queries, rounds, lent);
        server.stop().expect("stop");
        return;
    }
    let remote = server
        .connect(&client_runtime, connections)
        .expect("connect");
    for round in 0..rounds {
        let o = workloads::queries(&remote, &work, workloads::ReadKind::Tag, queries)
            .expect("workload");
        println!(
            "R2 through the server, round {round}: {:.0} queries/s, {} events",
            o.rate(),
            o.extra
        );
    }
    drop(remote);
    server.stop().expect("stop");
}

/// R2's queries through `gesta.v1.Gesta/Read`, one at a time on one
/// connection, each read to its end, its events `lent` or owned.
fn gesta_v1_reads(
    server: &LocalServer,
    runtime: &tokio::runtime::Runtime,
    work: &workloads::Queries,
    queries: usize,
    rounds: u64,
    lent: bool,
) {
    let mut client = runtime
        .block_on(GestaClient::connect(format!("http://{}", server.addr())))
        .expect("connect");
    let mut read = |i: usize| -> usize {
        runtime.block_on(async {
            let query = work.tag(i);
            if lent {
                // Looked at as `workloads::count` looks at a store's.
                let mut n = 0;
                client
                    .read_each(&query, ReadOptions::forwards(), |e| {
                        std::hint::black_box((e.position, e.event_type, e.data));
                        for tag in e.tags {
                            std::hint::black_box(tag);
                        }
                        n += 1;
                        std::ops::ControlFlow::Continue(())
                    })
                    .await
                    .expect("read");
                return n;
            }
            let events = client
                .read(&query, ReadOptions::forwards())
                .await
                .expect("read");
            events
                .try_fold(0, |n, e| async move {
                    std::hint::black_box(&e);
                    Ok(n + 1)
                })
                .await
                .expect("events")
        })
    };
    for i in 0..queries / 10 {
        read(i);
    }
    for round in 0..rounds {
        let started = std::time::Instant::now();
        let events: usize = (0..queries).map(&mut read).sum();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "R2 through gesta.v1 ({}), round {round}: {:.0} queries/s, {events} events",
            if lent { "lent" } else { "owned" },
            queries as f64 / secs
        );
    }
}
