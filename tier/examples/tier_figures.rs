//! Figures for the tier on a loopback S3 server: the first upload of a
//! store of N events (default 1,000,000), the cost of a round once the
//! store is in the bucket (append a batch, ship it), and a restore of the
//! whole store.
//!
//! ```text
//! cargo run --release -p gesta-tier --example tier_figures [EVENTS]
//! ```
//!
//! The server is `GESTA_S3_ENDPOINT`'s, or one this example starts with
//! `.ci/s3.sh --for-pid` (moto, which keeps objects in memory).

use std::path::Path;
use std::time::{Duration, Instant};

use gesta::{NewEvent, Store};
use gesta_tier::{Location, ShipOptions, Shipper, restore};

// The tier tests' harness: the S3 server (`GESTA_S3_ENDPOINT`, or one
// started by `.ci/s3.sh`) and bucket creation.
#[path = "../tests/harness/mod.rs"]
mod harness;

fn event(i: u64) -> NewEvent {
    NewEvent::new(
        "Happened",
        format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(60)).into_bytes(),
    )
    .tag(format!("mod:{}", i % 101))
    .stream(format!("s-{}", i % 1000))
}

fn size_of(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let meta = entry.metadata().expect("metadata");
        total += if meta.is_dir() {
            size_of(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let events: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("EVENTS is a number"))
        .unwrap_or(1_000_000);
    let endpoint = harness::endpoint();
    let bucket = format!("gesta-figures-{}", std::process::id());
    harness::create_bucket(&endpoint, &bucket);
    let location = Location::from_url_with(
        &format!("s3://{bucket}/store"),
        &[
            ("aws_endpoint_url", &endpoint),
            ("aws_access_key_id", "gesta"),
            ("aws_secret_access_key", "gesta"),
            ("aws_allow_http", "true"),
        ],
    )
    .expect("location");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let store = Store::open(&dir).expect("open");

    let started = Instant::now();
    let mut i = 0;
    while i < events {
        let n = 1_000.min(events - i);
        store
            .append((i..i + n).map(event).collect())
            .expect("append");
        i += n;
    }
    store.compact().expect("compact");
    println!(
        "store: {events} events, {:.1} MB on disk, written in {:.1} s",
        size_of(&dir) as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    // The first round, at start: everything.
    let started = Instant::now();
    let shipper = Shipper::start(
        store.clone(),
        location.clone(),
        ShipOptions::default().interval(Duration::from_secs(3600)),
    )
    .expect("start");
    assert!(shipper.wait_shipped(events, Duration::from_secs(3600)));
    let first = shipper.status().last_round.expect("a round");
    let took = started.elapsed();
    println!(
        "first upload: {:.1} MB in {} objects, {:.2} s ({:.1} MB/s); of it the local backup {:.3} s",
        first.bytes_uploaded as f64 / 1e6,
        first.objects_uploaded,
        took.as_secs_f64(),
        first.bytes_uploaded as f64 / 1e6 / took.as_secs_f64(),
        first.backup_time.as_secs_f64()
    );

    // Steady state: 1,000 events, then a round.
    let mut rounds = Vec::new();
    let mut backups = Vec::new();
    let mut bytes = Vec::new();
    for r in 0..20 {
        let from = events + r * 1_000;
        store
            .append((from..from + 1_000).map(event).collect())
            .expect("append");
        let t = Instant::now();
        shipper.ship_now().expect("ship");
        rounds.push(t.elapsed());
        let report = shipper.status().last_round.expect("a round");
        backups.push(report.backup_time);
        bytes.push(report.bytes_uploaded);
    }
    bytes.sort();
    println!(
        "a round after 1,000 new events (median of 20): {:.1} ms, of it the local backup {:.1} ms; {:.1} KB uploaded",
        median(rounds).as_secs_f64() * 1e3,
        median(backups).as_secs_f64() * 1e3,
        bytes[bytes.len() / 2] as f64 / 1e3
    );
    // Appends acknowledged after upload (`ship_through`): one writer, then
    // eight at once, one event per append.
    let mut next = events + 20 * 1_000;
    for writers in [1u64, 8] {
        let per_writer = if writers == 1 { 100 } else { 50 };
        let rounds_before = shipper.status().rounds;
        let started = Instant::now();
        let mut latencies: Vec<Duration> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..writers)
                .map(|w| {
                    let (store, waiter) = (&store, shipper.waiter());
                    let from = next + w * per_writer;
                    scope.spawn(move || {
                        (from..from + per_writer)
                            .map(|i| {
                                let t = Instant::now();
                                let appended = store.append(vec![event(i)]).expect("append");
                                waiter
                                    .ship_through(appended.last, Duration::from_secs(60))
                                    .expect("shipped");
                                t.elapsed()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("writer"))
                .collect()
        });
        let took = started.elapsed();
        next += writers * per_writer;
        latencies.sort();
        let total = latencies.len();
        println!(
            "appends acknowledged once shipped, {writers} writer(s): {total} in {:.2} s ({:.0}/s), p50 {:.1} ms, p99 {:.1} ms, {} rounds",
            took.as_secs_f64(),
            total as f64 / took.as_secs_f64(),
            latencies[total / 2].as_secs_f64() * 1e3,
            latencies[total * 99 / 100].as_secs_f64() * 1e3,
            shipper.status().rounds - rounds_before
        );
    }
    let head = shipper.stop().expect("stop");
    store.close().expect("close");

    let target = tmp.path().join("restored");
    let report = restore(&location, &target).expect("restore");
    println!(
        "restore: {} events, {:.1} MB in {} objects, {:.2} s ({:.1} MB/s)",
        report.head,
        report.bytes as f64 / 1e6,
        report.objects,
        report.time.as_secs_f64(),
        report.bytes as f64 / 1e6 / report.time.as_secs_f64()
    );
    assert_eq!(report.head, head);
    let started = Instant::now();
    let restored = Store::open(&target).expect("open the restored store");
    assert_eq!(restored.head(), head);
    println!(
        "the restored store opens at head {} in {:.2} s",
        restored.head(),
        started.elapsed().as_secs_f64()
    );
    restored.close().expect("close");
}
