//! The concurrent write workloads W2 and W4 on Gesta alone, for profiling:
//! a fresh store in a scratch directory (`Sync`, as `gesta-bench` runs it)
//! per round, `EVENTS` single-event appends from 16 writer threads, each
//! append in W4 with a DCB condition on a tag its writer owns.
//!
//! ```text
//! cargo run --release -p gesta-benches --example writers -- W4 [EVENTS] [ROUNDS]
//! perf record -e cpu-clock -g target/release/examples/writers W4
//! ```
//! Defaults: 100,000 events, 3 rounds.

use std::time::Duration;

use gesta::{Durability, Options, Store};
use gesta_benches::harness::workloads;
use gesta_benches::scratch_dir;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let workload = args
        .first()
        .map_or("W4", String::as_str)
        .to_ascii_uppercase();
    let conditional = match workload.as_str() {
        "W2" => false,
        "W4" => true,
        other => panic!("unknown workload {other}: W2 or W4"),
    };
    let arg = |i: usize, default: u64| {
        args.get(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let events = arg(1, 100_000);
    let rounds = arg(2, 3);
    for round in 0..rounds {
        let scratch = scratch_dir("writers").expect("scratch");
        let store = Store::open_with(
            scratch.path().join("store"),
            Options::default().durability(Durability::Sync),
        )
        .expect("open");
        let o = workloads::writers(&store, events, conditional, Duration::from_secs(600))
            .expect("workload");
        println!(
            "{workload} round {round}: {:.0} events/s, p99 {:.0} µs",
            o.rate(),
            o.quantile_us(0.99).unwrap_or(0.0)
        );
        store.close().expect("close");
    }
}
