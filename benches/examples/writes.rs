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
//! a sync per append, to measure the commit path's CPU alone. `W1=1` runs
//! W1 instead (one event per append, from one writer).

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
        let budget = Duration::from_secs(600);
        let (name, o) = if std::env::var_os("W1").is_some() {
            ("W1", workloads::w1(&store, events, budget).expect("W1"))
        } else {
            let o = workloads::w3(&store, &mut generator, events, budget).expect("W3");
            ("W3", o)
        };
        println!(
            "{name} round {round}: {:.0} events/s in {:.2} s, p50 {:.1} µs",
            o.rate(),
            o.elapsed.as_secs_f64(),
            o.quantile_us(0.5).unwrap_or(0.0)
        );
        store.close().expect("close");
    }
}
