//! R2 through `gesta serve`'s DCB service (the server in this process, on
//! a loopback port), for profiling: builds once, kept in the bench cache
//! directory, a store of the standard data loaded through the server as
//! `gesta-bench --server` loads it (an event's stream as a metadata
//! entry), then runs R2's queries through UmaDB's generated client
//! `ROUNDS` times.
//!
//! ```text
//! cargo run --release -p gesta-benches --features server --example server_reads -- [EVENTS] [QUERIES] [ROUNDS] [CONNECTIONS]
//! perf record -e cpu-clock -g target/release/examples/server_reads
//! ```
//! Defaults: 1,000,000 events, 2,000 queries, 5 rounds, 1 connection.

use std::sync::Arc;

use gesta::{Durability, Options, Store};
use gesta_benches::harness::remote::{LocalServer, runtime};
use gesta_benches::harness::workloads;
use gesta_benches::{build_options, cache_root};

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
    let remote = server
        .connect(&client_runtime, connections)
        .expect("connect");
    let work = workloads::Queries::new();
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
