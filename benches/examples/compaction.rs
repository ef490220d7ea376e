//! Compaction figures: index runs, one-tag query latency (R2) and open time
//! after appending the standard events with background merging on and off;
//! `Store::project` time from a snapshot versus a full replay.
//!
//! ```text
//! cargo run --release -p gesta-benches --example compaction -- [EVENTS] [PROJECTION_EVENTS]
//! ```
//! Defaults: 10,000,000 and 1,000,000.

use std::time::{Duration, Instant};

use gesta::{Durability, Options, Projection, Query, ReadOptions, RecordedEvent, Store};
use gesta_benches::{EventGen, SEED, SplitMix64, TAGS, bench_root};

const BATCH: usize = 1000;

fn options(fan_in: usize) -> Options {
    Options::default()
        .durability(Durability::Buffered)
        .merge_fan_in(fan_in)
}

fn fill(store: &Store, events: u64) -> Duration {
    let mut generator = EventGen::new(SEED);
    let started = Instant::now();
    let mut n = 0;
    while n < events {
        let len = BATCH.min((events - n) as usize);
        store.append(generator.batch(len)).expect("append");
        n += len as u64;
    }
    started.elapsed()
}

/// Waits until the index shape has not changed for two seconds.
fn settle(store: &Store) -> gesta::IndexShape {
    let mut last = store.index_shape();
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(100));
        let now = store.index_shape();
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    last
}

/// R2: one random tag per query, every hit read; returns (queries/s,
/// median µs, p99 µs, mean hits).
fn r2(store: &Store, queries: usize) -> (f64, u128, u128, f64) {
    r2_limited(store, queries, usize::MAX)
}

/// R2 reading only the first `limit` hits: the index lookups dominate.
fn r2_limited(store: &Store, queries: usize, limit: usize) -> (f64, u128, u128, f64) {
    let generator = EventGen::new(SEED);
    let mut rng = SplitMix64::new(42);
    let mut latencies = Vec::with_capacity(queries);
    let mut hits = 0usize;
    let started = Instant::now();
    for _ in 0..queries {
        let tag = generator
            .tag(rng.below_uniform(TAGS as u64) as usize)
            .to_owned();
        let t = Instant::now();
        for e in store
            .read(&Query::tag(tag), ReadOptions::forwards().limit(limit))
            .unwrap()
        {
            e.expect("read");
            hits += 1;
        }
        latencies.push(t.elapsed().as_micros());
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    (
        queries as f64 / elapsed,
        latencies[queries / 2],
        latencies[queries * 99 / 100],
        hits as f64 / queries as f64,
    )
}

fn index_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir.join("index"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn compaction_figures(events: u64) {
    // A one-tag query reads ~events/3,333 hits; keep each measurement short.
    let queries = if events > 1_000_000 { 300 } else { 2000 };
    for (label, fan_in) in [("off", 0), ("on", 4)] {
        let temp = tempfile::tempdir_in(bench_root()).expect("temporary directory");
        let store = Store::open_with(temp.path(), options(fan_in)).expect("open");
        let appended = fill(&store, events);
        store.flush_index().expect("flush");
        let settled = Instant::now();
        let gesta::IndexShape { runs, frozen } = settle(&store);
        let settle_time = settled.elapsed().saturating_sub(Duration::from_secs(2));
        let (qps, p50, p99, hits) = r2(&store, queries);
        println!(
            "compaction {label}: {events} events appended in {:.1}s; {runs} runs ({frozen} frozen) \
             {:.0} MiB of index (merges finished {:.1}s after the last append); \
             R2 {qps:.0} queries/s, median {p50} µs, p99 {p99} µs, {hits:.0} hits/query",
            appended.as_secs_f64(),
            index_bytes(temp.path()) as f64 / (1 << 20) as f64,
            settle_time.as_secs_f64(),
        );
        let (qps, p50, p99, _) = r2_limited(&store, 20_000, 10);
        println!(
            "compaction {label}: R2 first 10 hits {qps:.0} queries/s, median {p50} µs, p99 {p99} µs"
        );
        store.close().expect("close");
        drop(store);
        let t = Instant::now();
        let store = Store::open_with(temp.path(), options(fan_in)).expect("reopen");
        let open = t.elapsed();
        let (qps, p50, p99, _) = r2(&store, queries);
        println!(
            "compaction {label}: open {:.0} ms ({} runs); R2 after reopen {qps:.0} queries/s, \
             median {p50} µs, p99 {p99} µs",
            open.as_secs_f64() * 1000.0,
            store.index_shape().runs
        );
        if fan_in == 0 {
            let t = Instant::now();
            store.compact().expect("compact");
            let compact = t.elapsed();
            let (qps, p50, p99, _) = r2(&store, queries);
            println!(
                "compaction {label}: Store::compact (merge all into one run) {:.1}s; \
                 R2 then {qps:.0} queries/s, median {p50} µs, p99 {p99} µs",
                compact.as_secs_f64()
            );
            let (qps, p50, p99, _) = r2_limited(&store, 20_000, 10);
            println!(
                "compaction {label}: after compact, R2 first 10 hits {qps:.0} queries/s, \
                 median {p50} µs, p99 {p99} µs"
            );
        }
    }
}

#[derive(Clone)]
struct Totals {
    events: u64,
    bytes: u64,
}

fn projection(every: u64) -> Projection<Totals> {
    Projection::new(
        "totals",
        1,
        Query::all(),
        Totals {
            events: 0,
            bytes: 0,
        },
        |s: &mut Totals, e: &RecordedEvent| {
            s.events += 1;
            s.bytes += e.data.len() as u64;
        },
        |s: &Totals| [s.events.to_le_bytes(), s.bytes.to_le_bytes()].concat(),
        |b: &[u8]| {
            Some(Totals {
                events: u64::from_le_bytes(b.get(..8)?.try_into().ok()?),
                bytes: u64::from_le_bytes(b.get(8..16)?.try_into().ok()?),
            })
        },
    )
    .snapshot_every(every)
}

fn projection_figures(events: u64) {
    let temp = tempfile::tempdir_in(bench_root()).expect("temporary directory");
    let store = Store::open_with(temp.path(), options(4)).expect("open");
    fill(&store, events);
    store.close().expect("close");
    drop(store);

    // Full replay: no snapshot exists.
    let store = Store::open_with(temp.path(), options(4)).expect("reopen");
    store
        .register_projection(projection(u64::MAX))
        .expect("register");
    let t = Instant::now();
    let full = store.project::<Totals>("totals").expect("project");
    let replay = t.elapsed();
    assert_eq!(full.events, events);
    // A snapshot at the head, then 1,000 more events.
    store.register_projection(projection(1)).expect("register");
    store.compact().expect("compact writes the snapshot");
    let mut generator = EventGen::new(SEED ^ 1);
    store.append(generator.batch(1000)).expect("append");
    store.close().expect("close");
    drop(store);

    let store = Store::open_with(temp.path(), options(4)).expect("reopen");
    store.register_projection(projection(1)).expect("register");
    let t = Instant::now();
    let resumed = store.project::<Totals>("totals").expect("project");
    let from_snapshot = t.elapsed();
    assert_eq!(resumed.events, events + 1000);
    println!(
        "project() over {events} events: full replay {:.0} ms; from a snapshot plus 1,000 \
         events {:.2} ms ({:.0}× faster)",
        replay.as_secs_f64() * 1000.0,
        from_snapshot.as_secs_f64() * 1000.0,
        replay.as_secs_f64() / from_snapshot.as_secs_f64()
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args
        .next()
        .map_or(10_000_000, |a| a.parse().expect("EVENTS"));
    let projected: u64 = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("PROJECTION_EVENTS"));
    println!("data directory: {}", bench_root().display());
    if projected > 0 {
        projection_figures(projected);
    }
    compaction_figures(events);
}
