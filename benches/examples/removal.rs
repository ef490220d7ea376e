//! What removal costs: a store of the standard events (batches of 100,
//! 10,000 streams of ~100 events), then `delete_stream` of 100 streams,
//! `truncate_stream` of 100 more, a retention rule keeping the newest half
//! of every event enforced (and a second pass, which finds nothing), a
//! tag query read before and after (the hidden
//! set in every query's cursor), and the `compact` that erases the removed
//! events' bytes — times and counts, and the store's size before and after
//! (`COMPRESS=1`: sealed segments compressed, where zeroed bytes take
//! almost no space; `RECLAIM=0`: plain segments stay plain, so their
//! zeroed bytes stay on disk), and of its index.
//!
//! ```text
//! cargo run --release -p gesta-benches --example removal -- [EVENTS]
//! COMPRESS=1 cargo run --release -p gesta-benches --example removal
//! RECLAIM=0 cargo run --release -p gesta-benches --example removal
//! ```
//! Defaults: 1,000,000 events.

use std::path::Path;
use std::time::Instant;

use gesta::{Compression, Durability, Options, Query, ReadOptions, RetentionRule, Store};
use gesta_benches::{EventGen, SEED, bench_root, fill_store_batched};

fn bytes_on_disk(dir: &Path) -> u64 {
    let mut total = 0;
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                dirs.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

/// Reads a tag's events `rounds` times; µs per read and events per read.
fn tag_reads(store: &Store, tag: &str, rounds: u32) -> (f64, usize) {
    let query = Query::tag(tag);
    let started = Instant::now();
    let mut n = 0;
    for _ in 0..rounds {
        n = 0;
        for e in store.read(&query, ReadOptions::forwards()).expect("read") {
            e.expect("event");
            n += 1;
        }
    }
    (started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds), n)
}

fn main() {
    let events = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().expect("a number"));
    let compress = std::env::var_os("COMPRESS").is_some();
    let reclaim = std::env::var("RECLAIM").map_or(true, |v| v != "0");
    let dir = bench_root().join("gesta-removal");
    let _ = std::fs::remove_dir_all(&dir);
    let mut options = Options::default().durability(Durability::Buffered);
    if !reclaim {
        options = options.reclaim_share(None);
    }
    if compress {
        options = options.compression(Some(Compression::default()));
    }
    let store = Store::open_with(&dir, options).expect("open");
    let mut generator = EventGen::new(SEED);
    let started = Instant::now();
    fill_store_batched(&store, &mut generator, events, 100).expect("fill");
    store.compact().expect("compact");
    println!(
        "filled and compacted {events} events in {:.1?}: {:.1} MiB",
        started.elapsed(),
        bytes_on_disk(&dir) as f64 / 1048576.0
    );
    let tag = generator.tag(7).to_owned();
    let (before_us, before_n) = tag_reads(&store, &tag, 20);

    let started = Instant::now();
    let mut deleted = 0;
    for s in 0..100 {
        deleted += store
            .delete_stream(&format!("stream-{s}"))
            .expect("delete")
            .removed;
    }
    println!(
        "delete_stream ×100: {deleted} events in {:.1?}",
        started.elapsed()
    );
    let started = Instant::now();
    let mut truncated = 0;
    for s in 100..200 {
        truncated += store
            .truncate_stream(&format!("stream-{s}"), 50)
            .expect("truncate")
            .removed;
    }
    println!(
        "truncate_stream ×100: {truncated} events in {:.1?}",
        started.elapsed()
    );
    let rule = RetentionRule::query(Query::all()).max_count(events / 2);
    store.set_retention(&rule).expect("rule");
    let started = Instant::now();
    let retained = store.enforce_retention().expect("enforce");
    println!(
        "retention keeping the newest {}: {} events removed in {:.1?}",
        events / 2,
        retained.removed,
        started.elapsed()
    );
    let started = Instant::now();
    let again = store.enforce_retention().expect("enforce");
    println!(
        "a second pass ({} removed): {:.1?}",
        again.removed,
        started.elapsed()
    );
    let (after_us, after_n) = tag_reads(&store, &tag, 20);
    println!(
        "tag query: {before_n} events in {before_us:.0} µs before, {after_n} in {after_us:.0} µs after"
    );
    let size = bytes_on_disk(&dir);
    let index = bytes_on_disk(&dir.join("index"));
    let started = Instant::now();
    store.compact().expect("compact");
    println!(
        "compact erasing them: {:.1?}; {:.1} MiB → {:.1} MiB, of which the index {:.1} MiB → {:.1} MiB",
        started.elapsed(),
        size as f64 / 1048576.0,
        bytes_on_disk(&dir) as f64 / 1048576.0,
        index as f64 / 1048576.0,
        bytes_on_disk(&dir.join("index")) as f64 / 1048576.0
    );
    let (compacted_us, compacted_n) = tag_reads(&store, &tag, 20);
    println!("tag query after compact: {compacted_n} events in {compacted_us:.0} µs");
    let started = Instant::now();
    store.close().expect("close");
    let mut reopen = Options::default();
    if !reclaim {
        reopen = reopen.reclaim_share(None);
    }
    let store = Store::open_with(&dir, reopen).expect("reopen");
    println!(
        "reopen (the journal replayed, {} events hidden): {:.1?}",
        deleted + truncated + retained.removed,
        started.elapsed()
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
