//! What one point read costs in a store written in large batches against
//! one written an event per append: the same events (each with an id, every
//! 1,000 consecutive events in one stream), looked up by id at random, so
//! every lookup decodes one event of its record. With batches of 1,000, each
//! hit is one event of a 1,000-event record with a 1,000-entry revision
//! list. Then the same for indexed query hits: every hit of one tag at a
//! time, for tags of events drawn at random.
//!
//! ```text
//! cargo run --release -p gesta-benches --example point_reads -- [EVENTS] [LOOKUPS] [ROUNDS]
//! perf record -e cpu-clock -g target/release/examples/point_reads
//! ```
//! Defaults: 100,000 events, 20,000 lookups, 5 rounds. The stores are built
//! in a scratch directory under `gesta_benches::bench_root` and removed at
//! the end.

use std::hint::black_box;
use std::time::Instant;

use gesta::{EventStore, Query, ReadOptions, Store};
use gesta_benches::{EventGen, Latencies, build_options, scratch_dir};

/// Events per stream (and per append in the batched store).
const BATCH: u64 = 1_000;

fn id_of(seq: u64) -> u128 {
    0x5eed_0000_0000_0000_0000_0000_0000_0000 | u128::from(seq)
}

fn build(store: &Store, events: u64, per_append: u64) {
    let mut generator = EventGen::new(7);
    let mut seq = 0;
    while seq < events {
        let k = (events - seq).min(per_append);
        let batch = generator
            .batch(k as usize)
            .into_iter()
            .zip(seq..)
            .map(|(e, s)| e.id(id_of(s)).stream(format!("s{}", s / BATCH)))
            .collect();
        store.append(batch).expect("append");
        seq += k;
    }
}

/// A small deterministic generator (xorshift), so both stores see the same
/// picks.
fn picks(n: usize, below: u64) -> Vec<u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % below
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: u64| {
        args.get(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let events = arg(0, 100_000);
    let lookups = arg(1, 20_000) as usize;
    let rounds = arg(2, 5);

    let scratch = scratch_dir("gesta-point-reads").expect("scratch dir");
    let mut stores = Vec::new();
    for per_append in [BATCH, 1] {
        let dir = scratch.path().join(format!("batch-{per_append}"));
        let store = Store::open_with(&dir, build_options()).expect("open");
        let start = Instant::now();
        build(&store, events, per_append);
        store.close().expect("close");
        println!(
            "built {events} events in batches of {per_append} in {:.1} s",
            start.elapsed().as_secs_f64()
        );
        stores.push((per_append, Store::open(&dir).expect("reopen")));
    }
    let seqs = picks(lookups, events);
    let mut tags: Vec<String> = Vec::new();
    for &seq in seqs.iter().take(20) {
        let e = stores[0].1.event_by_id(id_of(seq)).expect("lookup");
        tags.extend(e.expect("found").tags);
    }
    tags.sort();
    tags.dedup();
    for round in 0..rounds {
        for (per_append, store) in &stores {
            let store: &dyn EventStore = store;
            let mut samples = Vec::with_capacity(lookups);
            let all = Instant::now();
            for &seq in &seqs {
                let start = Instant::now();
                let e = store.event_by_id(id_of(seq)).expect("lookup");
                samples.push(start.elapsed());
                let e = e.expect("found");
                assert_eq!(e.position, seq + 1);
                assert_eq!(e.revision, Some(seq % BATCH));
                black_box(e);
            }
            let total = all.elapsed();
            let l = Latencies::new(samples);
            println!(
                "round {round} batches of {per_append:>4}: {:.2} µs per lookup, p50 {:.2} µs, p99 {:.2} µs",
                total.as_secs_f64() * 1e6 / lookups as f64,
                l.quantile(0.5).as_secs_f64() * 1e6,
                l.quantile(0.99).as_secs_f64() * 1e6,
            );
            let mut hits = 0u64;
            let all = Instant::now();
            for tag in &tags {
                for e in store
                    .read(&Query::tag(tag), ReadOptions::forwards())
                    .expect("read")
                {
                    black_box(e.expect("hit"));
                    hits += 1;
                }
            }
            println!(
                "round {round} batches of {per_append:>4}: {:.2} µs per query hit ({hits} hits of {} tags)",
                all.elapsed().as_secs_f64() * 1e6 / hits as f64,
                tags.len()
            );
        }
    }
}
