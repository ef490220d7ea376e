//! What crypto-shredding costs: the same events appended to a store and
//! read back, plain and through `Encrypted` (every event naming one of
//! `SUBJECTS` subjects, whose keys are created first, timed apart), then
//! one subject forgotten and the store compacted. Durability `Buffered`, so the numbers are the CPU's, not the
//! disk's.
//!
//! ```text
//! cargo run --release -p gesta --features encryption --example encryption -- [EVENTS] [SUBJECTS]
//! ```
//! Defaults: 200,000 events of 200 bytes in batches of 100, 1,000 subjects.

use std::time::Duration;

use gesta_wal::time::now;

use gesta::encryption::{Encrypted, EncryptionOptions};
use gesta::{Durability, EventStore, NewEvent, Options, Query, ReadOptions, Store};

fn events(n: u64, subjects: u64) -> Vec<Vec<NewEvent>> {
    (0..n)
        .map(|i| {
            NewEvent::new("Updated", format!("{i:>12} {}", "p".repeat(187)))
                .tag(format!("subject:u{}", i % subjects))
                .metadata("corr=42")
                .id(u128::from(i + 1))
        })
        .collect::<Vec<_>>()
        .chunks(100)
        .map(<[NewEvent]>::to_vec)
        .collect()
}

fn run<S: EventStore>(s: &S, batches: &[Vec<NewEvent>]) -> (Duration, Duration) {
    let t = now();
    for b in batches {
        s.append(b.clone()).expect("append");
    }
    let append = t.elapsed();
    let t = now();
    let mut bytes = 0;
    for e in s
        .read(&Query::all(), ReadOptions::forwards())
        .expect("read")
    {
        bytes += e.expect("event").data.len();
    }
    assert!(bytes > 0);
    (append, t.elapsed())
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number"))
        .collect();
    let n = args.first().copied().unwrap_or(200_000);
    let subjects = args.get(1).copied().unwrap_or(1_000);
    let batches = events(n, subjects);
    let options = || Options::default().durability(Durability::Buffered);
    let tmp = tempfile::tempdir().expect("a temporary directory");

    let plain = Store::open_with(tmp.path().join("plain"), options()).expect("open");
    let (pa, pr) = run(&plain, &batches);
    plain.close().expect("close");

    let dir = tmp.path().join("sealed");
    let store = Store::open_with(&dir, options()).expect("open");
    let sealed = Encrypted::open(store, EncryptionOptions::in_dir(&dir)).expect("wrap");
    let t = now();
    let warm: Vec<NewEvent> = (0..subjects)
        .map(|i| NewEvent::new("Warm", "").tag(format!("subject:u{i}")))
        .collect();
    for chunk in warm.chunks(100) {
        sealed.append(chunk.to_vec()).expect("keys");
    }
    println!(
        "{subjects} keys created, {} key file replacements: {:.2?}",
        subjects.div_ceil(100),
        t.elapsed()
    );
    let (sa, sr) = run(&sealed, &batches);
    let per = |d: Duration| d.as_nanos() as f64 / n as f64 / 1000.0;
    println!("{n} events, {subjects} subjects");
    println!(
        "append: plain {pa:.2?} ({:.2} µs/event), encrypted {sa:.2?} ({:.2} µs/event), +{:.0}%",
        per(pa),
        per(sa),
        (sa.as_secs_f64() / pa.as_secs_f64() - 1.0) * 100.0
    );
    println!(
        "read all: plain {pr:.2?} ({:.2} µs/event), encrypted {sr:.2?} ({:.2} µs/event), +{:.0}%",
        per(pr),
        per(sr),
        (sr.as_secs_f64() / pr.as_secs_f64() - 1.0) * 100.0
    );
    let t = now();
    let r = sealed.forget("u7").expect("forget");
    println!(
        "forget one subject ({} events, key file of {subjects} subjects rewritten twice): {:.2?}",
        r.redacted,
        t.elapsed()
    );
    let t = now();
    sealed.inner().compact().expect("compact");
    println!("compact after it: {:.2?}", t.elapsed());
    let keys = std::fs::metadata(dir.join("KEYS")).expect("key file").len();
    println!("key file: {keys} bytes");
}
