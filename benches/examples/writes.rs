//! The batched write workload W3 on Gesta alone, for profiling: a fresh
//! store in a scratch directory (`Sync`, as `gesta-bench` runs it), `EVENTS`
//! standard events appended in batches of 100, `ROUNDS` times on a new store
//! each.
//!
//! ```text
//! cargo run --release -p gesta-benches --example writes -- [EVENTS] [ROUNDS]
//! perf record -e cpu-clock -g target/release/examples/writes
//! ```
//! Defaults: 500,000 events, 3 rounds. `DURABILITY=buffered` runs without
//! a sync per append, to measure the commit path's CPU alone.

use std::time::Duration;

use gesta::{Durability, Options, Store};
use gesta_benches::harness::workloads;
use gesta_benches::{EventGen, SEED, scratch_dir};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: u64| {
        args.get(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let events = arg(0, 500_000);
    let rounds = arg(1, 3);
    // DURABILITY=buffered takes the disk out, leaving the CPU cost of the
    // commit path (callers answered once their group is written).
    let durability = match std::env::var("DURABILITY").as_deref() {
        Ok("buffered") => Durability::Buffered,
        _ => Durability::Sync,
    };
    for round in 0..rounds {
        let scratch = scratch_dir("writes").expect("scratch");
        let store = Store::open_with(
            scratch.path().join("store"),
            Options::default().durability(durability),
        )
        .expect("open");
        let mut generator = EventGen::new(SEED);
        let o =
            workloads::w3(&store, &mut generator, events, Duration::from_secs(600)).expect("W3");
        println!(
            "W3 round {round}: {:.0} events/s in {:.2} s",
            o.rate(),
            o.elapsed.as_secs_f64()
        );
        store.close().expect("close");
    }
}
