//! Query throughput over a store of 1,000,000 standard events, against
//! answering the same queries by scanning the log; and 16 concurrent writers
//! with and without a DCB condition.
//!
//! `query/runs/*`: the store's index is in on-disk runs (the store built in
//! appends of 1,000 events, `flush_index`ed and closed, then reopened).
//! `query/memtable/*`: the same events with the whole index in the memtable
//! (a copy of the store whose MANIFEST is removed, so opening replays the
//! entire log into a memtable that is never flushed).
//! `query/runs_1event_records/*`: the same events appended one per append,
//! so each record of the log holds one event (an indexed read then does not
//! have to find its event inside a 1,000-event record).
//! `query/runs_compressed/*`: the runs store with its sealed segments
//! compressed (the default zstd blocks and block cache). In each:
//!
//! - `r2_tag`: every event carrying one tag (~300 hits), read forwards;
//! - `r3_type_and_tag`: every event of one type carrying one tag (~15 hits);
//! - `r4_read_last`: `read_last` of type AND tag.
//!
//! Each call cycles through a fixed list of tags (and types), so the figures
//! are over many different lists. `query/r1_read_all` (and
//! `r1_read_all_1event_records`, `r1_read_all_compressed`): all 1,000,000
//! events, forwards, with `Query::all()` (a log scan); `query/r1_read_each`
//! the same lent through `read_each` instead of copied.
//!
//! Each variant's files are read once before it is measured, so the figures
//! are for a warm page cache; the one R2 query run before that is reported
//! in the summary (cold when the kernel has reclaimed the store's pages).
//!
//! After the runs variant's benchmarks, the same three queries are answered a few times
//! the way a store without indices must — `Query::all()` read and filtered in
//! Rust (R4 scans backwards and stops at the first match) — and their
//! results checked against the indexed answers.
//!
//! `writers/*`: 16 threads in `Sync` mode, one event per append, each a
//! standard event that also carries a tag its thread owns;
//! `w2_unconditional` appends plainly, `w4_conditional` appends with
//! `fail_if(Query::tag(own tag), Some(the thread's previous position))`,
//! which never conflicts. Each runs on a fresh store; then both run again in
//! alternating rounds on one store (`W2/W4 (alternating rounds)` in the
//! summary), which gives the fairer W4 ÷ W2 on a disk whose speed drifts.
//! The disk's 16-thread group-commit probe is measured just before them as
//! their limit.
//!
//! The 1,000,000-event stores are built once and cached (see
//! `gesta_benches::cached_store_batched`; the 1-event-record one takes
//! about 80 s to build on the first run); every store lives under
//! `gesta_benches::bench_root` (override with `GESTA_BENCH_DIR`). A summary
//! with the ratios is printed after criterion's report.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use gesta::{AppendOptions, Durability, Error, Options, Query, ReadOptions, RecordedEvent, Store};
use gesta_benches::harness::workloads::{self, QUERY_TAGS, Queries};
use gesta_benches::{
    BUILD_BATCH, EventGen, Latencies, Tally, bench_root, cached_store_batched, copy_dir, fs_type,
    group_commit_probe, run_parallel, scratch_dir, warm_page_cache,
};

/// Events in the queried store (R1–R4's size).
const EVENTS: u64 = 1_000_000;
/// Distinct tags the queries cycle through.
/// How many times each query is answered by scanning the log.
const SCAN_RUNS: usize = 3;
/// Writer threads in the concurrent workloads.
const WRITERS: usize = 16;

static TALLIES: Mutex<BTreeMap<String, Tally>> = Mutex::new(BTreeMap::new());

fn tally(name: &str, f: impl FnOnce(&mut Tally)) {
    let mut tallies = TALLIES.lock().expect("tally lock");
    f(tallies.entry(name.to_owned()).or_default());
}

/// The 16-thread group-commit probe's commits/s, for W2 and W4.
static PROBE: Mutex<Option<f64>> = Mutex::new(None);

/// Lines for the summary that are not rates (store shapes, open times).
static NOTES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn note(line: String) {
    println!("{line}");
    NOTES.lock().expect("notes lock").push(line);
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The three indexed queries, as benchmark names and summary keys.
const KINDS: [(&str, &str); 3] = [
    ("r2_tag", "R2 tag (~300 hits)"),
    ("r3_type_and_tag", "R3 type AND tag"),
    ("r4_read_last", "R4 read_last type AND tag"),
];

/// Runs one indexed query; returns the number of events it yielded.
fn run_query(store: &Store, work: &Queries, kind: usize, i: usize) -> u64 {
    match kind {
        0 => count(store.read(&work.tag(i), ReadOptions::forwards()).unwrap()),
        1 => count(
            store
                .read(&work.type_and_tag(i), ReadOptions::forwards())
                .unwrap(),
        ),
        _ => u64::from(
            store
                .read_last(&work.type_and_tag(i))
                .expect("read_last")
                .is_some(),
        ),
    }
}

fn count(events: impl Iterator<Item = gesta::Result<RecordedEvent>>) -> u64 {
    let mut n = 0;
    for e in events {
        black_box(e.expect("read"));
        n += 1;
    }
    n
}

fn bench_queries(c: &mut Criterion, store: &Store, work: &Queries, variant: &str) {
    let mut group = c.benchmark_group(format!("query/{variant}"));
    configure(&mut group);
    group.throughput(Throughput::Elements(1));
    for (kind, (name, label)) in KINDS.iter().enumerate() {
        let key = format!("{variant}: {label}");
        let mut next = 0usize;
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut hits = 0;
                let mut lat = Vec::with_capacity(iters as usize);
                for _ in 0..iters {
                    let start = Instant::now();
                    hits += run_query(store, work, kind, next);
                    let took = start.elapsed();
                    next += 1;
                    total += took;
                    lat.push(took);
                }
                tally(&key, |t| {
                    t.add(iters, total);
                    t.hits += hits;
                    t.latencies.extend(lat);
                });
                total
            })
        });
    }
    group.finish();
}

fn bench_read_all(c: &mut Criterion, store: &Store, name: &str, key: &str) {
    bench_r1(c, name, key, || {
        count(store.read(&Query::all(), ReadOptions::forwards()).unwrap())
    });
}

/// Times `read`, which reads every event and returns how many it read.
fn bench_r1(c: &mut Criterion, name: &str, key: &str, read: impl Fn() -> u64) {
    let mut group = c.benchmark_group("query");
    configure(&mut group);
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let n = read();
                total += start.elapsed();
                assert_eq!(n, EVENTS, "{name}: every event");
            }
            tally(key, |t| t.add(iters * EVENTS, total));
            total
        })
    });
    group.finish();
}

/// R1 through `read_each`: every event lent from the log, its type, tags
/// and data looked at, none copied.
fn bench_read_each(c: &mut Criterion, store: &Store) {
    bench_r1(c, "r1_read_each", R1_LENT_KEY, || {
        workloads::count(store, &Query::all()).expect("read_each")
    });
}

/// The summary's key for R1 through `read_each`.
const R1_LENT_KEY: &str = "R1 read all, lent (events/s)";

/// Answers the three queries by scanning the log, `SCAN_RUNS` times each
/// with different arguments, checking every answer against the index's.
fn scan_comparison(store: &Store, work: &Queries) {
    println!("\nAnswering R2–R4 by scanning the log ({SCAN_RUNS} runs each)…");
    // Spread the runs over the tag list, away from its start.
    let picks: Vec<usize> = (0..SCAN_RUNS).map(|r| 7 + r * 331).collect();
    for (kind, (_, label)) in KINDS.iter().enumerate() {
        let key = format!("scan: {label}");
        for &i in &picks {
            let start = Instant::now();
            let positions: Vec<u64> = match kind {
                0 | 1 => {
                    let q = if kind == 0 {
                        work.tag(i)
                    } else {
                        work.type_and_tag(i)
                    };
                    let item = &q.items[0];
                    store
                        .read(&Query::all(), ReadOptions::forwards())
                        .unwrap()
                        .map(|e| e.expect("scan"))
                        .filter(|e| item.matches(&e.event_type, &e.tags))
                        .map(|e| e.position)
                        .collect()
                }
                _ => {
                    let q = work.type_and_tag(i);
                    let item = &q.items[0];
                    store
                        .read(&Query::all(), ReadOptions::backwards())
                        .unwrap()
                        .map(|e| e.expect("scan"))
                        .find(|e| item.matches(&e.event_type, &e.tags))
                        .map(|e| e.position)
                        .into_iter()
                        .collect()
                }
            };
            let took = start.elapsed();
            tally(&key, |t| {
                t.add(1, took);
                t.hits += positions.len() as u64;
                t.latencies.push(took);
            });
            let indexed: Vec<u64> = match kind {
                0 => store
                    .read(&work.tag(i), ReadOptions::forwards())
                    .unwrap()
                    .map(|e| e.expect("read").position)
                    .collect(),
                1 => store
                    .read(&work.type_and_tag(i), ReadOptions::forwards())
                    .unwrap()
                    .map(|e| e.expect("read").position)
                    .collect(),
                _ => store
                    .read_last(&work.type_and_tag(i))
                    .expect("read_last")
                    .map(|e| e.position)
                    .into_iter()
                    .collect(),
            };
            assert_eq!(
                indexed, positions,
                "{label}, query {i}: the index and the scan disagree"
            );
        }
    }
}

/// One full scan: how many events carry each of the query tags.
fn hit_counts(store: &Store, work: &Queries) -> Vec<u64> {
    let wanted: HashMap<&str, usize> = work
        .tags()
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut counts = vec![0u64; QUERY_TAGS];
    for e in store.read(&Query::all(), ReadOptions::forwards()).unwrap() {
        for tag in &e.expect("scan").tags {
            if let Some(&i) = wanted.get(tag.as_str()) {
                counts[i] += 1;
            }
        }
    }
    counts
}

fn describe(store: &Store, what: &str, open: Duration) {
    let r = store.recovery_report();
    let gesta::IndexShape { runs, frozen } = store.index_shape();
    note(format!(
        "{what}: opened in {:.1} ms; {} segments ({} offset tables trusted), {} records scanned; \
         index: {runs} runs, {frozen} frozen memtables",
        ms(open),
        r.segments,
        r.tables_trusted,
        r.records
    ));
}

/// Opens the cached 1,000,000-event store built `batch` events per append.
fn open_cached(batch: usize, what: &str) -> Store {
    let (dir, built) = cached_store_batched(EVENTS, batch).expect("cached store");
    if let Some(t) = built {
        note(format!(
            "built the {EVENTS}-event store of {batch}-event records in {:.1} s \
             ({:.0} events/s, Buffered): {}",
            t.as_secs_f64(),
            EVENTS as f64 / t.as_secs_f64(),
            dir.display()
        ));
    }
    let start = Instant::now();
    let store = Store::open_with(&dir, Options::default()).expect("open the cached store");
    describe(&store, what, start.elapsed());
    assert_eq!(store.head(), EVENTS);
    first_query_then_warm(&store, what);
    store
}

/// Times one R2 query straight after opening — cold if the kernel has
/// reclaimed the store's pages since they were last read — then reads every
/// file of the store so that the benchmarks measure warm reads.
fn first_query_then_warm(store: &Store, what: &str) {
    let start = Instant::now();
    let hits = count(
        store
            .read(&Query::tag("region:999"), ReadOptions::forwards())
            .unwrap(),
    );
    let first = start.elapsed();
    let start = Instant::now();
    let bytes = warm_page_cache(store.path()).expect("warm the page cache");
    note(format!(
        "{what}: the first R2 query after opening ({hits} hits) took {:.1} ms; \
         then {:.0} MB read into the page cache in {:.0} ms",
        ms(first),
        bytes as f64 / 1e6,
        ms(start.elapsed())
    ));
}

/// The 1,000,000-event store of 1,000-event records with its index in runs.
fn queries_on_runs(c: &mut Criterion, work: &Queries) -> Store {
    let store = open_cached(BUILD_BATCH, "runs variant (1,000-event records)");
    let counts = hit_counts(&store, work);
    let (min, max) = (
        counts.iter().min().copied().unwrap_or(0),
        counts.iter().max().copied().unwrap_or(0),
    );
    note(format!(
        "query tags: {QUERY_TAGS} distinct, {:.1} hits each on average (min {min}, max {max})",
        counts.iter().sum::<u64>() as f64 / QUERY_TAGS as f64
    ));

    bench_queries(c, &store, work, "runs");
    bench_read_all(c, &store, "r1_read_all", "R1 read all (events/s)");
    bench_read_each(c, &store);
    scan_comparison(&store, work);
    store
}

/// The same events appended one per append, so that every record holds one
/// event: what an indexed read costs when it need not find its event inside
/// a large batch.
fn queries_on_small_records(c: &mut Criterion, work: &Queries) {
    let store = open_cached(1, "runs variant (1-event records)");
    bench_queries(c, &store, work, "runs_1event_records");
    bench_read_all(
        c,
        &store,
        "r1_read_all_1event_records",
        "R1 read all, 1-event records (events/s)",
    );
    store.close().expect("close");
}

/// The same store with its sealed segments compressed (zstd, the default
/// 1 KiB blocks with a dictionary, and 32 MiB block cache): a copy opened
/// with compression on and compacted, so every query hit and scan
/// decompresses what the block cache does not hold.
fn queries_on_compressed(c: &mut Criterion, work: &Queries, cached: &Path) {
    let scratch = scratch_dir("gesta-bench-query-z").expect("scratch dir");
    let dir = scratch.path().join("store");
    copy_dir(cached, &dir).expect("copy the cached store");
    let options = Options::default().compression(Some(gesta::Compression::default()));
    let store = Store::open_with(&dir, options).expect("open the copy");
    let start = Instant::now();
    store.compact().expect("compress the sealed segments");
    note(format!(
        "compressed variant: compacting and compressing took {:.1} s",
        start.elapsed().as_secs_f64()
    ));
    assert_eq!(store.head(), EVENTS);
    first_query_then_warm(&store, "compressed variant");
    bench_queries(c, &store, work, "runs_compressed");
    bench_read_all(
        c,
        &store,
        "r1_read_all_compressed",
        "R1 read all, compressed (events/s)",
    );
    store.close().expect("close");
}

/// The same events with the whole index in the memtable: a copy of the
/// cached store without its MANIFEST, so opening replays the whole log.
fn queries_on_memtable(c: &mut Criterion, work: &Queries, cached: &Path) {
    let scratch = scratch_dir("gesta-bench-query-mem").expect("scratch dir");
    let dir = scratch.path().join("store");
    copy_dir(cached, &dir).expect("copy the cached store");
    std::fs::remove_file(dir.join(gesta_manifest_name())).expect("remove the MANIFEST");
    let options = Options {
        memtable_postings: usize::MAX,
        close_flush_postings: usize::MAX,
        ..Options::default()
    };
    let start = Instant::now();
    let store = Store::open_with(&dir, options).expect("open the copy");
    describe(
        &store,
        "memtable variant (full replay of the log)",
        start.elapsed(),
    );
    assert_eq!(store.head(), EVENTS);
    assert_eq!(
        store.index_shape(),
        gesta::IndexShape { runs: 0, frozen: 0 },
        "the whole index in the memtable"
    );
    first_query_then_warm(&store, "memtable variant");
    bench_queries(c, &store, work, "memtable");
    store.close().expect("close");
}

/// The MANIFEST's file name (the engine keeps it in `gesta-compaction`,
/// which this crate does not depend on; it is fixed by docs/FORMAT.md).
fn gesta_manifest_name() -> &'static str {
    "MANIFEST"
}

/// One writer store and what its threads remember across rounds.
struct Writers {
    _dir: tempfile::TempDir,
    store: Store,
    /// Each thread's previous position.
    last_seen: Vec<Mutex<Option<u64>>>,
    /// Rounds run so far (each round's events are different).
    rounds: u64,
}

impl Writers {
    fn new() -> Writers {
        let dir = scratch_dir("gesta-bench-writers").expect("scratch dir");
        let store = Store::open_with(dir.path(), Options::default().durability(Durability::Sync))
            .expect("open store");
        Writers {
            _dir: dir,
            store,
            last_seen: (0..WRITERS).map(|_| Mutex::new(None)).collect(),
            rounds: 0,
        }
    }

    /// Each of the 16 threads appends `per_thread` events, one per append,
    /// each carrying the thread's own tag; with `conditional`, each append
    /// fails if anything with that tag exists after the thread's previous
    /// append (which never happens). Records the wall time and every
    /// append's latency under `key`; returns the wall time.
    fn round(&mut self, per_thread: u64, conditional: bool, key: &str) -> Duration {
        self.rounds += 1;
        let r = self.rounds;
        let (store, last_seen) = (&self.store, &self.last_seen);
        let lats = Mutex::new(Vec::with_capacity(WRITERS * per_thread as usize));
        let elapsed = run_parallel(
            WRITERS,
            |t| {
                let own = format!("owner:{t}");
                let mut generator = EventGen::for_writer((r << 8) | t as u64);
                let events: Vec<_> = (0..per_thread)
                    .map(|_| generator.next_event().tag(own.clone()))
                    .collect();
                (own, events)
            },
            |t, (own, events)| {
                let mut lat = Vec::with_capacity(events.len());
                let mut last = last_seen[t].lock().expect("last seen");
                for event in events {
                    let options = if conditional {
                        AppendOptions::new().fail_if(Query::tag(&own), *last)
                    } else {
                        AppendOptions::new()
                    };
                    let start = Instant::now();
                    let result = store.append_with(vec![event], options);
                    lat.push(start.elapsed());
                    match result {
                        Ok(appended) => *last = Some(appended.last),
                        Err(Error::ConditionFailed { position }) => {
                            panic!("{key}: thread {t}'s own tag conflicted at {position}")
                        }
                        Err(e) => panic!("append: {e}"),
                    }
                }
                lats.lock().expect("latency lock").extend(lat);
            },
        );
        tally(key, |t| {
            t.add(WRITERS as u64 * per_thread, elapsed);
            t.latencies.extend(lats.into_inner().expect("latency lock"));
        });
        elapsed
    }
}

/// Keys of the writer workloads in the summary.
const W2_KEY: &str = "W2 16 writers, no condition";
const W4_KEY: &str = "W4 16 writers, fail_if(own tag)";
const W2_ALT_KEY: &str = "W2 (alternating rounds)";
const W4_ALT_KEY: &str = "W4 (alternating rounds)";
/// Alternating rounds of the W2/W4 comparison, and events per thread in each.
const ALT_ROUNDS: usize = 10;
const ALT_PER_THREAD: u64 = 500;

/// W2 and W4 under criterion, each on a fresh store; then both again in
/// alternating rounds on one store, so that drift in the disk's speed
/// (which on a shared VM disk is larger than the difference sought) hits
/// both alike.
fn bench_writers(c: &mut Criterion) {
    // The limit line for these: the disk's group-commit rate with 16
    // threads, measured right before them.
    {
        let dir = scratch_dir("gesta-bench-probe").expect("scratch dir");
        let report = group_commit_probe(dir.path(), WRITERS, 500).expect("group commit probe");
        let rate = report.commits_per_sec();
        *PROBE.lock().expect("probe lock") = Some(rate);
        note(format!(
            "limit line: 16-thread group-commit probe {rate:.0} commits/s, {:.1} commits per fdatasync",
            report.commits_per_sync()
        ));
    }
    let mut group = c.benchmark_group("writers");
    configure(&mut group);
    group.throughput(Throughput::Elements(WRITERS as u64));
    for (name, key, conditional) in [
        ("w2_unconditional", W2_KEY, false),
        ("w4_conditional", W4_KEY, true),
    ] {
        let mut writers = Writers::new();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| writers.round(iters, conditional, key))
        });
        writers.store.close().expect("close");
    }
    group.finish();

    let mut writers = Writers::new();
    for i in 0..2 * ALT_ROUNDS {
        let conditional = i % 2 == 1;
        let key = if conditional { W4_ALT_KEY } else { W2_ALT_KEY };
        writers.round(ALT_PER_THREAD, conditional, key);
    }
    writers.store.close().expect("close");
}

/// Prints every figure and the index ÷ scan ratios.
fn summary() {
    let tallies = TALLIES.lock().expect("tally lock");
    let notes = NOTES.lock().expect("notes lock");
    let root = bench_root();
    println!();
    println!(
        "## Summary (scratch dir {}, {}; rates: work-weighted median over calls, mean beside)",
        root.display(),
        fs_type(&root).unwrap_or_else(|| "file system unknown".into())
    );
    println!();
    for n in notes.iter() {
        println!("- {n}");
    }
    println!();
    println!("| workload | rate (median) | rate (mean) | p50 | p99 | hits/query | µs per hit |");
    println!("|---|---|---|---|---|---|---|");
    for (name, t) in tallies.iter() {
        if t.elements == 0 {
            continue;
        }
        let unit = if name.starts_with('W') || name.starts_with("R1") {
            "events/s"
        } else {
            "queries/s"
        };
        let (p50, p99) = if t.latencies.is_empty() {
            ("–".to_owned(), "–".to_owned())
        } else {
            let l = Latencies::new(t.latencies.clone());
            let fmt = |d: Duration| {
                if d >= Duration::from_millis(10) {
                    format!("{:.0} ms", ms(d))
                } else {
                    format!("{:.1} µs", us(d))
                }
            };
            (fmt(l.quantile(0.5)), fmt(l.quantile(0.99)))
        };
        let (hits, per_hit) = if unit == "queries/s" && t.hits > 0 {
            (
                format!("{:.1}", t.hits as f64 / t.elements as f64),
                format!("{:.1}", us(t.elapsed) / t.hits as f64),
            )
        } else {
            ("–".to_owned(), "–".to_owned())
        };
        println!(
            "| {name} | {:.0} {unit} | {:.0} | {p50} | {p99} | {hits} | {per_hit} |",
            t.median_rate(),
            t.mean_rate()
        );
    }
    println!();
    let rate = |k: &str| {
        tallies
            .get(k)
            .filter(|t| t.elements > 0)
            .map(Tally::median_rate)
    };
    for (_, label) in KINDS {
        let scan = rate(&format!("scan: {label}"));
        for variant in ["runs", "memtable", "runs_1event_records", "runs_compressed"] {
            if let (Some(i), Some(s)) = (rate(&format!("{variant}: {label}")), scan) {
                println!("- {label}, index ({variant}) ÷ scan: {:.0}×", i / s);
            }
        }
    }
    if let Some(r4) = rate("runs: R4 read_last type AND tag") {
        println!(
            "- R4 (runs) is {:.0}% of the 100,000 queries/s target",
            r4 / 1e3
        );
    }
    if let Some(r1) = rate("R1 read all (events/s)") {
        println!(
            "- R1 is {:.0}% of the 10 M events/s target",
            100.0 * r1 / 1e7
        );
    }
    if let Some(r1) = rate(R1_LENT_KEY) {
        println!(
            "- R1 through read_each is {:.0}% of the 10 M events/s target",
            100.0 * r1 / 1e7
        );
    }
    for (_, label) in KINDS {
        let plain = rate(&format!("runs: {label}"));
        let z = rate(&format!("runs_compressed: {label}"));
        if let (Some(p), Some(z)) = (plain, z) {
            println!("- {label}, compressed ÷ uncompressed: {:.3}×", z / p);
        }
    }
    if let (Some(w2), Some(w4)) = (rate(W2_ALT_KEY), rate(W4_ALT_KEY)) {
        println!(
            "- W4 ÷ W2 = {:.2} in {ALT_ROUNDS} alternating rounds each on one store",
            w4 / w2
        );
    }
    if let (Some(w2), Some(w4)) = (rate(W2_KEY), rate(W4_KEY)) {
        println!(
            "- W4 ÷ W2 = {:.2} under criterion (separate stores, W2 first)",
            w4 / w2
        );
        if let Some(probe) = *PROBE.lock().expect("probe lock") {
            println!(
                "- W2 is {:.0}%, W4 {:.0}% of the 16-thread group-commit probe ({probe:.0} commits/s)",
                100.0 * w2 / probe,
                100.0 * w4 / probe
            );
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let work = Queries::new();
    let store = queries_on_runs(&mut c, &work);
    let cached = store.path().to_owned();
    store.close().expect("close");
    drop(store);
    queries_on_memtable(&mut c, &work, &cached);
    queries_on_compressed(&mut c, &work, &cached);
    queries_on_small_records(&mut c, &work);
    bench_writers(&mut c);
    c.final_summary();
    summary();
}
