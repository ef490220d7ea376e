//! Work that only concerns the newest events of a large store, for
//! profiling: in a copy of the cached standard store (its index in on-disk
//! runs), conditional appends whose DCB condition names a tag of the
//! standard data after the head they read ("C"), and tag queries that
//! start a few events before the head ("Q"). Both should cost what the
//! newest events cost, not what the store's older index runs hold.
//!
//! ```text
//! cargo run --release -p gesta-benches --example recent -- C [EVENTS] [OPS] [ROUNDS]
//! perf record -e cpu-clock -g target/release/examples/recent Q
//! ```
//! Defaults: 1,000,000 events, 20,000 operations, 3 rounds. The appends are
//! `Buffered`, so that they measure the work of admitting them, not the
//! disk.

use std::time::Instant;

use gesta::{AppendOptions, Durability, NewEvent, Options, Query, ReadOptions, Store};
use gesta_benches::{EventGen, SEED, SplitMix64, TAGS};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let workload = args
        .first()
        .map_or("C", String::as_str)
        .to_ascii_uppercase();
    let arg = |i: usize, default: u64| {
        args.get(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let events = arg(1, 1_000_000);
    let ops = arg(2, 20_000);
    let rounds = arg(3, 3);
    let (cached, _) = gesta_benches::cached_store(events).expect("the cached store");
    let scratch = gesta_benches::scratch_dir("recent").expect("scratch");
    let dir = scratch.path().join("store");
    gesta_benches::copy_dir(&cached, &dir).expect("copy");
    gesta_benches::warm_page_cache(&dir).expect("warm");
    let options = Options::default().durability(Durability::Buffered);
    let store = Store::open_with(&dir, options).expect("open");
    let tags = EventGen::new(SEED);
    let mut rng = SplitMix64::new(7);
    let mut tag = || tags.tag(rng.below_uniform(TAGS as u64) as usize).to_owned();
    for round in 0..rounds {
        let started = Instant::now();
        match workload.as_str() {
            "C" => {
                for i in 0..ops {
                    let head = store.head();
                    let event = NewEvent::new("Decided", format!("{i}")).tag(tag());
                    let options = AppendOptions::new().fail_if(Query::tag(tag()), Some(head));
                    store.append_with(vec![event], options).expect("append");
                }
            }
            "Q" => {
                let mut found = 0u64;
                for _ in 0..ops {
                    let head = store.head();
                    let from = ReadOptions::forwards().start(head.saturating_sub(100));
                    store
                        .read_each(&Query::tag(tag()), from, &mut |_| {
                            found += 1;
                            std::ops::ControlFlow::Continue(())
                        })
                        .expect("read");
                }
                std::hint::black_box(found);
            }
            other => panic!("unknown workload {other}: C or Q"),
        }
        let took = started.elapsed();
        println!(
            "{workload} round {round}: {:.0}/s ({:.2} µs each)",
            ops as f64 / took.as_secs_f64(),
            took.as_secs_f64() * 1e6 / ops as f64,
        );
    }
    store.close().expect("close");
}
