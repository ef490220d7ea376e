//! The read workloads R1–R3 on Gesta alone, for profiling: opens (and
//! builds once, kept in the bench cache directory, as `gesta-bench` does)
//! the store of the standard data and runs the chosen workload `ROUNDS`
//! times.
//!
//! ```text
//! cargo run --release -p gesta-benches --example reads -- R1 [EVENTS] [ROUNDS]
//! perf record -e cpu-clock -g target/release/examples/reads R2
//! ```
//! Defaults: 1,000,000 events, 5 rounds. With `COMPRESS=1` in the
//! environment the copy's sealed segments are first compressed with the
//! default settings, so the rounds read compressed segments. With
//! `BATCH=N` the store is appended `N` events per append instead (the
//! harness's read workloads run on the store W3 wrote, in batches of 100).

use gesta::{Durability, EventStore, Options, Store};
use gesta_benches::harness::workloads;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let workload = args
        .first()
        .map_or("R1", String::as_str)
        .to_ascii_uppercase();
    let arg = |i: usize, default: u64| {
        args.get(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let events = arg(1, 1_000_000);
    let rounds = arg(2, 5);
    let batch = std::env::var("BATCH").map_or(gesta_benches::BUILD_BATCH, |b| {
        b.parse().expect("BATCH: a number of events")
    });
    let (cached, _) = gesta_benches::cached_store_batched(events, batch).expect("the cached store");
    let scratch = gesta_benches::scratch_dir("reads").expect("scratch");
    let dir = scratch.path().join("store");
    gesta_benches::copy_dir(&cached, &dir).expect("copy");
    gesta_benches::warm_page_cache(&dir).expect("warm");
    let compress = std::env::var_os("COMPRESS").is_some_and(|v| v != "0");
    let options = Options::default()
        .durability(Durability::Sync)
        .compression(compress.then(gesta::Compression::default));
    let store = Store::open_with(&dir, options).expect("open");
    if compress {
        store.compact().expect("compress");
    }
    let engine = &store;
    let store: &dyn EventStore = &store;
    let work = workloads::Queries::new();
    for round in 0..rounds {
        let o = match workload.as_str() {
            "R1" => workloads::read_all(store, 1),
            "R2" => workloads::queries(store, &work, workloads::ReadKind::Tag, 2_000),
            "R3" => workloads::queries(store, &work, workloads::ReadKind::TypeAndTag, 10_000),
            other => panic!("unknown workload {other}: R1, R2 or R3"),
        }
        .expect("workload");
        println!(
            "{workload} round {round}: {:.0}/s in {:.3} s",
            o.rate(),
            o.elapsed.as_secs_f64()
        );
        if compress {
            let c = engine.block_cache_stats();
            println!(
                "  block cache: {} hits, {} misses, {:.1} MiB held",
                c.hits,
                c.misses,
                c.bytes as f64 / f64::from(1 << 20)
            );
        }
    }
}
