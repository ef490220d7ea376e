//! The lookups R5–R7 on Gesta alone, for profiling: builds (once, kept in
//! the bench cache directory) a store of the standard data with an id on
//! every event, as `gesta-bench` loads it, then runs the chosen workload
//! `ROUNDS` times.
//!
//! ```text
//! cargo run --release -p gesta-benches --example lookups -- R6 [EVENTS] [LOOKUPS] [ROUNDS]
//! perf record -e cpu-clock -g target/release/examples/lookups R5
//! ```
//! Defaults: 1,000,000 events, 10,000 lookups, 5 rounds. It prints how
//! long the store took to open; `STORE=DIR` runs on another store of the
//! same events instead of the cached one (a copy written by an older
//! build, say).

use gesta::{Durability, EventStore, Options, Store};
use gesta_benches::harness::lookups;
use gesta_benches::{build_options, cache_root};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let workload = args
        .first()
        .map_or("R5", String::as_str)
        .to_ascii_uppercase();
    let arg = |i: usize, default: u64| {
        args.get(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let events = arg(1, 1_000_000);
    let n = arg(2, 10_000) as usize;
    let rounds = arg(3, 5);

    // STORE names another store of the same events to run on (a copy
    // written by an older build, say).
    let dir = std::env::var_os("STORE").map_or_else(
        || cache_root().join(format!("lookups-{events}-v2")),
        std::path::PathBuf::from,
    );
    let marker = dir.with_extension("complete");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let store = Store::open_with(&dir, build_options()).expect("open");
        lookups::load_with_ids(&store, events).expect("load");
        store.close().expect("close");
        std::fs::write(&marker, b"").expect("marker");
    }
    gesta_benches::warm_page_cache(&dir).expect("warm");
    let opening = std::time::Instant::now();
    let store =
        Store::open_with(&dir, Options::default().durability(Durability::Sync)).expect("open");
    println!("opened in {:.1} ms", opening.elapsed().as_secs_f64() * 1e3);
    let store: &dyn EventStore = &store;
    let events = store.head().expect("head");
    let range = lookups::time_range(store).expect("time range");
    for round in 0..rounds {
        let o = match workload.as_str() {
            "R5" => lookups::stream_reads(store, n),
            "R6" => lookups::id_lookups(store, events, n),
            "R7" => lookups::time_lookups(store, range, n),
            other => panic!("unknown workload {other}: R5, R6 or R7"),
        }
        .expect("workload");
        println!(
            "{workload} round {round}: {:.0}/s, p50 {:.2} µs, p99 {:.2} µs ({} found)",
            o.rate(),
            o.quantile_us(0.5).unwrap_or(0.0),
            o.quantile_us(0.99).unwrap_or(0.0),
            o.extra
        );
    }
}
