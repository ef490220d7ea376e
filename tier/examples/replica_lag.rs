//! Replica lag on a loopback S3 server while W2 runs (16 writers, one
//! event per append, `Sync`): a writer ships every SHIP_MS, a replica
//! polls every POLL_MS, and a subscription on the replica timestamps each
//! event as it arrives. The lag of an event is the time from its commit on
//! the writer to its delivery on the replica; positions behind is the
//! writer's head less the replica's, sampled every 10 ms.
//!
//! ```text
//! cargo run --release -p gesta-tier --example replica_lag [SECONDS] [SHIP_MS] [POLL_MS]
//! ```
//!
//! Defaults: 20 s, 1000 ms, 1000 ms (both crates' default intervals). The
//! server is `GESTA_S3_ENDPOINT`'s, or one this example starts with
//! `.ci/s3.sh --for-pid` (moto, which keeps objects in memory).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gesta::{NewEvent, Query, Store};
use gesta_tier::{Location, Replica, ReplicaOptions, ShipOptions, Shipper};

const WRITERS: u64 = 16;

// The tier tests' harness: the S3 server (`GESTA_S3_ENDPOINT`, or one
// started by `.ci/s3.sh`) and bucket creation.
#[path = "../tests/harness/mod.rs"]
mod harness;

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().expect("a number"));
    let seconds = args.next().unwrap_or(20);
    let ship_ms = args.next().unwrap_or(1000);
    let poll_ms = args.next().unwrap_or(1000);
    let endpoint = harness::endpoint();
    let bucket = format!("gesta-replica-lag-{}", std::process::id());
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
    let writer = Store::open(tmp.path().join("writer")).expect("open");
    writer
        .append(vec![NewEvent::new("Started", "{}")])
        .expect("append");
    let shipper = Shipper::start(
        writer.clone(),
        location.clone(),
        ShipOptions::default().interval(Duration::from_millis(ship_ms)),
    )
    .expect("ship");
    assert!(shipper.wait_shipped(1, Duration::from_secs(60)));
    let replica = Replica::start(
        location,
        tmp.path().join("replica"),
        ReplicaOptions::default().interval(Duration::from_millis(poll_ms)),
    )
    .expect("replica");
    let mut subscription = replica
        .store()
        .subscribe(&Query::all(), replica.store().head())
        .expect("subscribe");

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (writer, stop) = (writer.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let event = NewEvent::new(
                        "Happened",
                        format!("{{\"w\":{w},\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(60)),
                    )
                    .tag(format!("w:{w}"));
                    writer.append(vec![event]).expect("append");
                    i += 1;
                }
            })
        })
        .collect();
    let behind = {
        let (writer, store, stop) = (writer.clone(), replica.store().clone(), stop.clone());
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                samples.push(writer.head().saturating_sub(store.head()));
                std::thread::sleep(Duration::from_millis(10));
            }
            samples
        })
    };
    let started = Instant::now();
    let mut lags = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        if let Some(batch) = subscription
            .recv_timeout(Duration::from_millis(100))
            .expect("subscription")
        {
            let now = now_micros();
            lags.extend(batch.iter().map(|e| now.saturating_sub(e.timestamp_micros)));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    let mut behind = behind.join().expect("sampler");
    let appended = writer.head();
    let status = replica.status();
    lags.sort_unstable();
    behind.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "W2 ({WRITERS} writers x 1 event, Sync) for {seconds} s: {appended} events appended \
         ({:.0}/s); shipper every {ship_ms} ms, replica polls every {poll_ms} ms",
        appended as f64 / seconds as f64
    );
    println!(
        "commit -> delivered on the replica, over {} events: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        lags.len(),
        ms(percentile(&lags, 0.5)),
        ms(percentile(&lags, 0.99)),
        ms(lags.last().copied().unwrap_or(0))
    );
    println!(
        "positions behind (sampled every 10 ms): p50 {}, p99 {}, max {}",
        percentile(&behind, 0.5),
        percentile(&behind, 0.99),
        behind.last().copied().unwrap_or(0)
    );
    let log_bytes: u64 = std::fs::read_dir(tmp.path().join("writer/wal"))
        .expect("the writer's log")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum();
    println!(
        "replica: {} polls ({} failed, {} went on from a newer checkpoint), {} bytes fetched, {} \
         events applied; the writer's segment files: {} bytes (the active one preallocated ahead)",
        status.polls,
        status.failures,
        status.moved,
        status.bytes_fetched,
        status.events_applied,
        log_bytes
    );
    assert!(shipper.wait_shipped(appended, Duration::from_secs(60)));
    assert!(replica.wait_for(appended, Duration::from_secs(60)));
    let drained = Instant::now();
    replica.poll_now().expect("poll");
    println!(
        "after the writers stopped: the replica at the writer's head {appended}, lag {} ({:?} to confirm)",
        replica.lag(),
        drained.elapsed()
    );
    shipper.stop().expect("stop");
    replica.stop().expect("stop");
    writer.close().expect("close");
}
