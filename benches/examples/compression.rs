//! Sealed-segment compression figures: bytes per event (D1) and the read
//! workloads R1–R4 on the standard data set, uncompressed and compressed
//! in 1 KiB blocks with a dictionary (the default) and in 64 KiB blocks
//! without one, measured side by side in one run (the
//! stores are copies of one another, each compacted to one index run, and
//! every workload runs on each store in turn).
//!
//! ```text
//! cargo run --release -p gesta-benches --example compression -- [EVENTS] [QUERIES]
//! ```
//! Defaults: 1,000,000 events (W3's data set) and 10,000 queries.

use std::path::Path;
use std::time::Instant;

use gesta::{Compression, Options, Store};
use gesta_benches::harness::workloads::{self, Queries, ReadKind};
use gesta_benches::{bench_root, build_options, size_without_trailing_zeros};

struct Variant {
    label: &'static str,
    compression: Option<Compression>,
}

fn options(compression: Option<Compression>) -> Options {
    Options::default().compression(compression)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Bytes of the log: segment files (compressed or not) less the zeros
/// preallocated at the end of the active one.
fn log_bytes(dir: &Path) -> u64 {
    size_without_trailing_zeros(&dir.join("wal"))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("EVENTS"));
    let queries: usize = args.next().map_or(10_000, |a| a.parse().expect("QUERIES"));
    let root = tempfile::tempdir_in(bench_root()).expect("temporary directory");

    // The data set, loaded once, compacted to one index run.
    let base = root.path().join("plain");
    {
        let store = Store::open_with(&base, build_options()).expect("open");
        let started = Instant::now();
        workloads::load(&store, events).expect("load");
        store.compact().expect("compact");
        store.close().expect("close");
        println!(
            "loaded {events} events in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }

    let variants = [
        Variant {
            label: "uncompressed",
            compression: None,
        },
        Variant {
            label: "zstd 3, 1 KiB blocks, 16 KiB dictionary (default)",
            compression: Some(Compression::default()),
        },
        Variant {
            label: "zstd 3, 64 KiB blocks, no dictionary",
            compression: Some(Compression {
                level: 3,
                block_size: 64 << 10,
                dictionary_size: 0,
            }),
        },
    ];
    let mut stores = Vec::new();
    for (i, v) in variants.iter().enumerate() {
        let dir = if i == 0 {
            base.clone()
        } else {
            let dir = root.path().join(format!("compressed-{i}"));
            copy_dir(&base, &dir);
            dir
        };
        let store = Store::open_with(&dir, options(v.compression)).expect("open");
        let started = Instant::now();
        store.compact().expect("compact");
        let took = started.elapsed();
        let head = store.head();
        let log = log_bytes(&dir);
        let total = size_without_trailing_zeros(&dir);
        println!(
            "{}: log {:.1} B/event, store {:.1} B/event ({:.1} MB of log); compressing took {:.1}s",
            v.label,
            log as f64 / head as f64,
            total as f64 / head as f64,
            log as f64 / 1e6,
            took.as_secs_f64()
        );
        stores.push(store);
    }

    let work = Queries::new();
    println!(
        "\n| workload | metric | {} |",
        variants
            .iter()
            .map(|v| v.label)
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|---|{}", "---:|".repeat(variants.len()));
    // R1: the fastest of 3 full scans.
    let r1: Vec<String> = stores
        .iter()
        .map(|s| {
            let o = workloads::read_all(s, 3).expect("R1");
            format!("{:.0}", o.rate())
        })
        .collect();
    println!("| R1 | events/s | {} |", r1.join(" | "));
    for (id, kind, n) in [
        ("R2", ReadKind::Tag, queries),
        ("R3", ReadKind::TypeAndTag, queries),
        ("R4", ReadKind::LastTypeAndTag, queries * 10),
    ] {
        let outcomes: Vec<_> = stores
            .iter()
            .map(|s| workloads::queries(s, &work, kind, n).expect("query"))
            .collect();
        let rate: Vec<String> = outcomes
            .iter()
            .map(|o| format!("{:.0}", o.rate()))
            .collect();
        let p50: Vec<String> = outcomes
            .iter()
            .map(|o| format!("{:.1}", o.quantile_us(0.5).unwrap_or(0.0)))
            .collect();
        let p99: Vec<String> = outcomes
            .iter()
            .map(|o| format!("{:.1}", o.quantile_us(0.99).unwrap_or(0.0)))
            .collect();
        println!("| {id} | queries/s | {} |", rate.join(" | "));
        println!("| {id} | p50 µs ↓ | {} |", p50.join(" | "));
        println!("| {id} | p99 µs ↓ | {} |", p99.join(" | "));
    }
    for (v, s) in variants.iter().zip(&stores) {
        if v.compression.is_some() {
            let c = s.block_cache_stats();
            println!(
                "{}: block cache {} hits, {} misses ({:.0}% hits), {:.1} MiB held",
                v.label,
                c.hits,
                c.misses,
                100.0 * c.hits as f64 / (c.hits + c.misses).max(1) as f64,
                c.bytes as f64 / (1 << 20) as f64
            );
        }
    }
}
