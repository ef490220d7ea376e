//! R1 and R2 (docs BENCH.md) on one store, side by side: local, then with
//! every sealed segment evicted to a loopback S3 server and read back
//! through `BucketSegments` — with a cold cache (emptied before each
//! measurement; for R2, before each query) and with a warm one — with
//! the bytes and requests fetched.
//!
//! ```text
//! cargo run --release -p gesta-tier --example evicted_reads [EVENTS] [R2_QUERIES] [COLD_R2_QUERIES] [BLOCK_KIB] [FETCH_KIB]
//! ```
//!
//! Defaults: 1,000,000 events, 10,000 queries local and warm, 30 cold
//! queries, 64 KiB blocks, 256 KiB read ahead (`BucketOptions`). The data are BENCH.md's: 200-byte JSON-like
//! payloads, 20 types, 3 tags per event out of 10,000 (~300 events a
//! tag), 10,000 streams, a fixed seed. The server is
//! `GESTA_S3_ENDPOINT`'s, or one this example starts with `.ci/s3.sh
//! --for-pid` (moto, which keeps objects in memory).

use std::sync::Arc;
use std::time::{Duration, Instant};

use gesta::{NewEvent, Options, Query, ReadOptions, Store};
use gesta_tier::{
    BucketOptions, BucketSegments, EvictPolicy, Evictor, Location, ShipOptions, Shipper,
};

// The tier tests' harness: the S3 server (`GESTA_S3_ENDPOINT`, or one
// started by `.ci/s3.sh`) and bucket creation.
#[path = "../tests/harness/mod.rs"]
mod harness;

const TAGS: u64 = 10_000;

/// xorshift64*: the fixed-seed generator of the data and the queries.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn event(rng: &mut Rng, i: u64) -> NewEvent {
    let body = format!(
        "{{\"n\":{i},\"account\":\"acc-{:06}\",\"amount\":{},\"note\":\"",
        rng.next() % 1_000_000,
        rng.next() % 100_000
    );
    let pad = 200usize.saturating_sub(body.len() + 2);
    let payload = format!("{body}{}\"}}", "lorem ipsum ".repeat(20)[..pad].to_owned());
    let mut e = NewEvent::new(format!("Type{}", rng.next() % 20), payload.into_bytes())
        .stream(format!("stream-{}", rng.next() % 10_000));
    for _ in 0..3 {
        e = e.tag(format!("tag:{}", rng.next() % TAGS));
    }
    e
}

fn r1(store: &Store) -> (u64, Duration) {
    let started = Instant::now();
    let mut n = 0;
    for e in store
        .read(&Query::all(), ReadOptions::forwards())
        .expect("read")
    {
        e.expect("event");
        n += 1;
    }
    (n, started.elapsed())
}

/// Runs the queries; returns (hits, total time, per-query latencies).
fn r2(store: &Store, tags: &[u64], before_each: &dyn Fn()) -> (u64, Duration, Vec<Duration>) {
    let mut hits = 0;
    let mut latencies = Vec::with_capacity(tags.len());
    let mut total = Duration::ZERO;
    for t in tags {
        before_each();
        let started = Instant::now();
        for e in store
            .read(&Query::tag(format!("tag:{t}")), ReadOptions::forwards())
            .expect("query")
        {
            e.expect("event");
            hits += 1;
        }
        let took = started.elapsed();
        total += took;
        latencies.push(took);
    }
    latencies.sort();
    (hits, total, latencies)
}

fn pct(v: &[Duration], p: usize) -> f64 {
    v[(v.len() * p / 100).min(v.len() - 1)].as_secs_f64() * 1e3
}

fn main() {
    let arg = |i: usize, default: u64| -> u64 {
        std::env::args()
            .nth(i)
            .map(|a| a.parse().expect("a number"))
            .unwrap_or(default)
    };
    let events = arg(1, 1_000_000);
    let queries = arg(2, 10_000) as usize;
    let cold_queries = arg(3, 30) as usize;
    let block_kib = arg(4, 64);
    let fetch_kib = arg(5, 256);

    let endpoint = harness::endpoint();
    let bucket = format!("gesta-evicted-{}", std::process::id());
    harness::create_bucket(&endpoint, &bucket);
    let location: Location = harness::location_at(&endpoint, &bucket, "store");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let remote = |cache: u64| {
        Arc::new(
            BucketSegments::with_options(
                location.clone(),
                BucketOptions {
                    cache_bytes: cache,
                    block_bytes: block_kib << 10,
                    fetch_bytes: fetch_kib << 10,
                    ..BucketOptions::default()
                },
            )
            .expect("bucket segments"),
        )
    };
    let options = |remote: Arc<BucketSegments>| Options::default().remote_segments(remote);

    // The store, all of it in sealed segments, indexed, shipped.
    let store = Store::open_with(&dir, options(remote(0))).expect("open");
    let started = Instant::now();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut i = 0;
    while i < events {
        let n = 1_000.min(events - i);
        let batch = (i..i + n).map(|i| event(&mut rng, i)).collect();
        store.append(batch).expect("append");
        i += n;
    }
    store.seal_active_segment().expect("seal");
    store.compact().expect("compact");
    let sealed = store.sealed_segments();
    let log_bytes: u64 = sealed.iter().map(|s| s.len).sum();
    println!(
        "store: {events} events, {} sealed segments, {:.1} MB of log, built in {:.1} s",
        sealed.len(),
        log_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let shipper = Shipper::start(
        store.clone(),
        location.clone(),
        ShipOptions::default().interval(Duration::from_secs(3600)),
    )
    .expect("ship");
    assert!(shipper.wait_shipped(events, Duration::from_secs(3600)));
    shipper.stop().expect("stop");

    let mut q = Rng(42);
    let tags: Vec<u64> = (0..queries).map(|_| q.next() % TAGS).collect();
    let cold_tags: Vec<u64> = tags.iter().take(cold_queries).copied().collect();
    let mut rows = Vec::new();
    let row = |what: &str, r1: (u64, Duration), fetched: String| {
        format!(
            "| {what} | {:.0} events/s ({:.2} s) | {fetched} |",
            r1.0 as f64 / r1.1.as_secs_f64(),
            r1.1.as_secs_f64()
        )
    };

    // Local (warm page cache: the run's second pass).
    r1(&store);
    let local_r1 = r1(&store);
    rows.push(row("R1 local", local_r1, "—".into()));
    let (hits, total, lat) = r2(&store, &tags, &|| {});
    let local_r2 = format!(
        "| R2 local, {} queries | {:.0} queries/s, p50 {:.3} ms, p99 {:.3} ms, {:.0} hits/query | — |",
        tags.len(),
        tags.len() as f64 / total.as_secs_f64(),
        pct(&lat, 50),
        pct(&lat, 99),
        hits as f64 / tags.len() as f64
    );

    // Evicted: every sealed segment, then the store reopened with an
    // empty cache large enough for the whole log.
    let policy = EvictPolicy {
        keep_newest: 0,
        keep_bytes: 0,
    };
    let report = Evictor::new(location.clone(), policy)
        .expect("evictor")
        .run(&store)
        .expect("evict");
    assert_eq!(report.evicted.len(), sealed.len(), "{report:?}");
    store.close().expect("close");
    drop(store);
    let bucket_segments = remote(2 * log_bytes + (64 << 20));
    let started = Instant::now();
    let store = Store::open_with(&dir, options(bucket_segments.clone())).expect("reopen");
    println!(
        "evicted {} segments ({:.1} MB freed); reopened in {:.3} s, {} bytes fetched to open",
        report.evicted.len(),
        report.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        bucket_segments.stats().bytes_fetched
    );
    let fetched_since = |before: gesta_tier::BucketStats| {
        let now = bucket_segments.stats();
        format!(
            "{:.1} MB in {} GETs",
            (now.bytes_fetched - before.bytes_fetched) as f64 / 1e6,
            now.requests - before.requests
        )
    };

    bucket_segments.clear_cache();
    let before = bucket_segments.stats();
    let cold_r1 = r1(&store);
    rows.push(row(
        "R1 evicted, cold cache",
        cold_r1,
        fetched_since(before),
    ));
    let before = bucket_segments.stats();
    let warm_r1 = r1(&store);
    rows.push(row(
        "R1 evicted, warm cache",
        warm_r1,
        fetched_since(before),
    ));
    assert_eq!(cold_r1.0, local_r1.0);

    let before = bucket_segments.stats();
    let (hits, total, lat) = r2(&store, &tags, &|| {});
    let warm_r2 = format!(
        "| R2 evicted, warm cache, {} queries | {:.0} queries/s, p50 {:.3} ms, p99 {:.3} ms, {:.0} hits/query | {} |",
        tags.len(),
        tags.len() as f64 / total.as_secs_f64(),
        pct(&lat, 50),
        pct(&lat, 99),
        hits as f64 / tags.len() as f64,
        fetched_since(before)
    );
    let before = bucket_segments.stats();
    let (hits, total, lat) = r2(&store, &cold_tags, &|| bucket_segments.clear_cache());
    let cold_r2 = format!(
        "| R2 evicted, cache emptied before each query, {} queries | {:.1} queries/s, p50 {:.1} ms, p99 {:.1} ms, {:.0} hits/query | {} |",
        cold_tags.len(),
        cold_tags.len() as f64 / total.as_secs_f64(),
        pct(&lat, 50),
        pct(&lat, 99),
        hits as f64 / cold_tags.len() as f64,
        fetched_since(before)
    );
    println!();
    println!("blocks of {block_kib} KiB, read ahead to {fetch_kib} KiB");
    println!("| workload | figure | fetched from the bucket |");
    println!("|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    println!("{local_r2}");
    println!("{warm_r2}");
    println!("{cold_r2}");
    store.close().expect("close");
}
