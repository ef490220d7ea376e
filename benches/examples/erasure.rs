//! What erasure costs: a store of the standard events (batches of 100),
//! then `redact` by a query of one tag and by a list of positions, and the
//! `compact` that erases the bytes — times, events erased, segments
//! rewritten — against a `compact` with nothing to erase.
//!
//! ```text
//! cargo run --release -p gesta-benches --example erasure -- [EVENTS] [TAGS_REDACTED]
//! COMPRESS=1 cargo run --release -p gesta-benches --example erasure   # sealed segments compressed
//! ```
//! Defaults: 1,000,000 events, 20 tags.

use std::time::Instant;

use gesta::lifecycle::Target;
use gesta::{Compression, Durability, Options, Query, Store};
use gesta_benches::{EventGen, SEED, bench_root, fill_store_batched};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: u64| {
        args.get(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let events = arg(0, 1_000_000);
    let tags = arg(1, 20) as usize;
    let compress = std::env::var_os("COMPRESS").is_some();
    let dir = bench_root().join("gesta-erasure");
    let _ = std::fs::remove_dir_all(&dir);
    let mut options = Options::default().durability(Durability::Buffered);
    if compress {
        options = options.compression(Some(Compression::default()));
    }
    let store = Store::open_with(&dir, options).expect("open");
    let mut generator = EventGen::new(SEED);
    let started = Instant::now();
    fill_store_batched(&store, &mut generator, events, 100).expect("fill");
    println!("filled {events} events in {:.1?}", started.elapsed());
    let started = Instant::now();
    store.compact().expect("compact");
    println!("compact with nothing to erase: {:.1?}", started.elapsed());
    let log_bytes = |dir: &std::path::Path| -> u64 {
        std::fs::read_dir(dir.join("wal"))
            .expect("wal")
            .map(|e| e.expect("entry").metadata().expect("metadata").len())
            .sum()
    };
    println!("log: {} bytes", log_bytes(&dir));

    // By query: every event of `tags` tags drawn from the generator's.
    let generator = EventGen::new(SEED);
    let mut redacted = 0;
    let started = Instant::now();
    for i in 0..tags {
        let tag = generator.tag(i * 7).to_owned();
        let r = store
            .redact(&Target::Query(Query::tag(tag)))
            .expect("redact");
        redacted += r.redacted;
    }
    let by_query = started.elapsed();
    // By positions: one event in a thousand.
    let positions: Vec<u64> = (1..=events).step_by(1000).collect();
    let started = Instant::now();
    let r = store
        .redact(&Target::Positions(positions.clone()))
        .expect("redact");
    let by_positions = started.elapsed();
    redacted += r.redacted;
    println!(
        "redact: {tags} tags by query in {by_query:.1?}, {} positions in {by_positions:.1?}; {redacted} events redacted",
        positions.len()
    );
    let started = Instant::now();
    store.compact().expect("compact");
    let erase = started.elapsed();
    println!(
        "compact that erases {redacted} events: {erase:.1?} ({:.0} events erased/s); log now {} bytes",
        redacted as f64 / erase.as_secs_f64(),
        log_bytes(&dir)
    );
    let started = Instant::now();
    store.compact().expect("compact");
    println!(
        "compact again, nothing left to erase: {:.1?}",
        started.elapsed()
    );
    store.close().expect("close");
    let started = Instant::now();
    let report = gesta::inspect::verify(&dir, &mut |_, _| {}).expect("verify");
    println!(
        "verify: intact {} in {:.1?}",
        report.is_intact(),
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
