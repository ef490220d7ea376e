//! Many tenants in one process: `TENANTS` (default 1,000) tenants under one
//! root with at most `MAX_OPEN` (default 64) stores open, each created and
//! given `EVENTS` (default 10) one-event appends, then `ROUNDS` (default 3)
//! passes that append one event to every tenant in a shuffled order (so
//! stores are closed and reopened throughout). Prints the time of each
//! phase, the most threads the process ran and its peak resident memory.
//!
//! `TENANTS_BACKEND` picks the stores, all under the same
//! `gesta::tenants::TenantSet`: `engine` (the default: a store directory
//! per tenant), `sqlite` (a database file per tenant, synchronous FULL) or
//! `postgres` (a schema per tenant, prefix `bench_tenant_`, in the database
//! of `GESTA_POSTGRES_URL`; the schemas are dropped at the end).
//!
//! ```text
//! cargo run --release -p gesta-benches --example tenants -- [TENANTS] [MAX_OPEN] [EVENTS] [ROUNDS]
//! TENANTS_BACKEND=sqlite cargo run --release -p gesta-benches --example tenants
//! TENANTS_BACKEND=postgres .ci/postgres.sh cargo run --release -p gesta-benches --example tenants -- 300
//! ```

use std::time::Instant;

use gesta::tenants::{TenantHome, TenantLimits, TenantOptions, TenantSet, Tenants};
use gesta::{AppendOptions, EventStore, NewEvent, Options};
use gesta_benches::scratch_dir;

/// A line of `/proc/self/status` (Linux), e.g. `VmHWM`, as its value.
fn status(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .map(|l| l[key.len() + 1..].trim().to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn event(i: u64) -> NewEvent {
    NewEvent::new("Ping", format!("{{\"i\":{i}}}")).tag(format!("k:{}", i % 10))
}

fn main() {
    let arg = |i: usize, default: u64| {
        std::env::args()
            .nth(i)
            .map(|s| s.parse().expect("a number"))
            .unwrap_or(default)
    };
    let (count, max_open, events, rounds) = (arg(1, 1000), arg(2, 64), arg(3, 10), arg(4, 3));
    let limits = TenantLimits {
        max_open: max_open as usize,
        ..TenantLimits::default()
    };
    let root = scratch_dir("tenants").expect("a scratch directory");
    let backend = std::env::var("TENANTS_BACKEND").unwrap_or_else(|_| "engine".into());
    match backend.as_str() {
        "engine" => {
            let tenants = Tenants::open(
                root.path(),
                TenantOptions {
                    // Segments sized for small tenants: a new store
                    // preallocates `preallocate` bytes of its first segment.
                    store: Options::default()
                        .segment_size(4 << 20)
                        .preallocate(256 << 10),
                    max_open: limits.max_open,
                    ..TenantOptions::default()
                },
            )
            .expect("tenants");
            run(&tenants, count, events, rounds);
        }
        "sqlite" => {
            let options = gesta_sqlite::SqliteOptions::default();
            let tenants =
                gesta_sqlite::tenants::open(root.path(), options, limits).expect("tenants");
            run(&tenants, count, events, rounds);
        }
        "postgres" => {
            let url = std::env::var("GESTA_POSTGRES_URL").expect("GESTA_POSTGRES_URL");
            let options = gesta_postgres::PostgresOptions::default();
            let tenants = gesta_postgres::tenants::connect(&url, "bench_tenant_", options, limits)
                .expect("tenants");
            run(&tenants, count, events, rounds);
            for name in tenants.list().expect("list") {
                tenants.purge(&name).expect("purge");
            }
        }
        other => panic!("TENANTS_BACKEND={other:?}: engine, sqlite or postgres"),
    }
}

/// Creates the tenants and runs the passes; see the module documentation.
fn run<H: TenantHome>(tenants: &TenantSet<H>, count: u64, events: u64, rounds: u64)
where
    H::Store: EventStore,
{
    let max_open = tenants.limits().max_open;
    let names: Vec<String> = (0..count).map(|i| format!("tenant-{i}")).collect();
    let started = Instant::now();
    let mut most_threads = threads();
    for name in &names {
        tenants.create(name).expect("create");
        for i in 0..events {
            tenants
                .append(name, vec![event(i)], AppendOptions::new())
                .expect("append");
        }
        most_threads = most_threads.max(threads());
    }
    let created = started.elapsed();
    let mut order: Vec<usize> = (0..names.len()).collect();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let started = Instant::now();
    for round in 0..rounds {
        // Fisher-Yates with a fixed xorshift: the same order every run.
        for i in (1..order.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        for &t in &order {
            tenants
                .append(&names[t], vec![event(events + round)], AppendOptions::new())
                .expect("append");
        }
        most_threads = most_threads.max(threads());
    }
    let passes = started.elapsed();
    let appends = count * rounds;
    println!(
        "{count} tenants, at most {max_open} open: created with {events} events each in {:.2} s; \
         {rounds} shuffled passes ({appends} appends, most reopening a store) in {:.2} s ({:.0} appends/s)",
        created.as_secs_f64(),
        passes.as_secs_f64(),
        appends as f64 / passes.as_secs_f64()
    );
    println!(
        "threads at most {most_threads}; peak resident memory {}; open now {}",
        status("VmHWM"),
        tenants.open_count()
    );
    tenants.close().expect("close");
}
