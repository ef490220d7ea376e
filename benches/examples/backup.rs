//! Online backup under W2-like load: a store of `EVENTS` standard events
//! (default 1,000,000), then `WRITERS` (16) threads appending one event
//! per append (`Sync`), first for `SECONDS` during which backups of the
//! store are taken back to back, then for `SECONDS` without a backup.
//! Prints each backup's time and what it linked and copied, and the
//! appends' rate without and during the backups.
//!
//! ```text
//! cargo run --release -p gesta-benches --example backup -- [EVENTS] [SECONDS] [DEST_ROOT] [PAUSE_MS]
//! ```
//! `DEST_ROOT` (default: beside the store) on another file system makes
//! the backups copy instead of hard-linking. `PAUSE_MS` (default 0) is a
//! pause between two backups.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gesta::{Durability, Options, Store};
use gesta_benches::harness::workloads::{self, WRITERS};
use gesta_benches::{EventGen, SEED, scratch_dir};

/// Runs the writers until `stop`; returns their appends.
fn writers(
    store: &Store,
    stop: &Arc<AtomicBool>,
    appended: &Arc<AtomicU64>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..WRITERS as u64)
        .map(|t| {
            let (store, stop, appended) = (store.clone(), stop.clone(), appended.clone());
            std::thread::spawn(move || {
                let mut generator = EventGen::new(SEED ^ (t + 100));
                while !stop.load(Ordering::Relaxed) {
                    store.append(vec![generator.next_event()]).expect("append");
                    appended.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let events: u64 = args
        .first()
        .map_or(1_000_000, |a| a.parse().expect("EVENTS"));
    let seconds: u64 = args.get(1).map_or(10, |a| a.parse().expect("SECONDS"));
    let pause = Duration::from_millis(args.get(3).map_or(0, |a| a.parse().expect("PAUSE_MS")));
    let scratch = scratch_dir("backup").expect("scratch");
    let dest_root: PathBuf = args
        .get(2)
        .filter(|a| !a.is_empty())
        .map_or_else(|| scratch.path().to_owned(), PathBuf::from);
    let store = Store::open_with(
        scratch.path().join("store"),
        Options::default().durability(Durability::Sync),
    )
    .expect("open");
    let started = Instant::now();
    workloads::load(&store, events).expect("load");
    println!(
        "loaded {events} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let window = Duration::from_secs(seconds);
    let stop = Arc::new(AtomicBool::new(false));
    let appended = Arc::new(AtomicU64::new(0));
    let handles = writers(&store, &stop, &appended);
    std::thread::sleep(Duration::from_millis(500));
    // First during backups, back to back: the first is of a store of
    // about EVENTS events.
    let (n0, t0) = (appended.load(Ordering::Relaxed), Instant::now());
    let mut times = Vec::new();
    let mut round = 0;
    let mut first = None;
    while t0.elapsed() < window {
        let dest = dest_root.join(format!("backup-{round}"));
        let head = store.head();
        let began = Instant::now();
        let report = store.backup(&dest).expect("backup");
        let took = began.elapsed();
        times.push(took.as_secs_f64());
        println!(
            "backup {round}: {:.3} s, position {} (head at start {head}), {} segment files, {} index runs, {} linked, {} copied ({:.1} MB)",
            took.as_secs_f64(),
            report.position,
            report.segments,
            report.index_runs,
            report.files_linked,
            report.files_copied,
            report.bytes_copied as f64 / 1e6
        );
        if round == 0 {
            first = Some((dest, report.position));
        } else {
            std::fs::remove_dir_all(&dest).expect("remove the backup");
        }
        round += 1;
        std::thread::sleep(pause);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let during = (appended.load(Ordering::Relaxed) - n0) as f64 / elapsed;
    // Then without a backup (on the now larger store).
    let (n0, t0) = (appended.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(window);
    let without = (appended.load(Ordering::Relaxed) - n0) as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("writer");
    }
    times.sort_by(f64::total_cmp);
    println!(
        "backups: {} in {elapsed:.1} s; time median {:.3} s, min {:.3} s, max {:.3} s",
        times.len(),
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
    println!(
        "W2-like appends ({WRITERS} threads, 1 event each): {without:.0}/s without a backup, {during:.0}/s during backups ({:+.1}%)",
        (during / without - 1.0) * 100.0
    );
    store.close().expect("close");
    // The first backup (kept; checked outside the measured windows).
    let (dest, position) = first.expect("a backup");
    let copy = Store::open(&dest).expect("the backup opens");
    assert_eq!(copy.head(), position);
    copy.close().expect("close");
    let verified = gesta::inspect::verify(&dest, &mut |_, _| {}).expect("verify");
    assert!(verified.is_intact(), "{verified:?}");
    println!("backup 0 (position {position}) opens and verifies");
    std::fs::remove_dir_all(&dest).expect("remove the backup");
}
