//! Append throughput in `Sync` mode, next to the disk's limit line.
//!
//! `append/*`: events/s for one writer appending one event at a time (W1's
//! shape), 16 writer threads appending one event at a time (W2's), and one
//! writer appending batches of 100 (W3's), also in `Buffered` mode (the
//! commit path's CPU, without the sync). `limit_line/*`: a 4 KiB write +
//! `fdatasync` overwriting a pre-zeroed file and growing one, 16 threads
//! sharing `fdatasync`s (leader/follower group commit), and sequential
//! writes with an `fdatasync` per MiB — measured with `std::fs`, not Gesta.
//!
//! Every store and probe file lives in a scratch directory on a real disk
//! (see `gesta_benches::bench_root`; override with `GESTA_BENCH_DIR`). After
//! criterion's own report a summary prints each figure next to its limit.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use gesta::{Durability, Options, Store};
use gesta_benches::{
    BandwidthProbe, EventGen, GroupCommitProbe, Latencies, MIB, SEED, SyncMode, SyncProbe, Tally,
    bench_root, fs_type, run_parallel, scratch_dir, size_without_trailing_zeros,
};

/// Writer threads in the concurrent workloads.
const WRITERS: usize = 16;
/// Events per append in the batched workload.
const BATCH: usize = 100;

static TALLIES: Mutex<BTreeMap<&'static str, Tally>> = Mutex::new(BTreeMap::new());

fn tally(name: &'static str, f: impl FnOnce(&mut Tally)) {
    let mut tallies = TALLIES.lock().expect("tally lock");
    f(tallies.entry(name).or_default());
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
}

fn open_store(dir: &Path) -> Store {
    Store::open_with(dir, Options::default().durability(Durability::Sync)).expect("open store")
}

/// One writer appending batches of [`BATCH`] events to a store in `dir`
/// opened with `durability`, benchmarked as `append/<name>` and tallied
/// under `key`; returns the store, still open.
fn batches(
    group: &mut BenchmarkGroup<'_, WallTime>,
    dir: &Path,
    durability: Durability,
    (name, key): (&str, &'static str),
) -> Store {
    let store =
        Store::open_with(dir, Options::default().durability(durability)).expect("open store");
    let mut generator = EventGen::new(SEED ^ 3);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let batch = generator.batch(BATCH);
                let start = Instant::now();
                store.append(batch).expect("append");
                total += start.elapsed();
            }
            tally(key, |t| t.add(BATCH as u64 * iters, total));
            total
        })
    });
    store
}

/// Bytes of a closed store's files per event: everything in `dir` except
/// the zeros at the end of each file (the active segment's preallocation),
/// divided by `events`.
fn bytes_per_event(dir: &Path, events: u64) -> Option<f64> {
    (events > 0).then(|| size_without_trailing_zeros(dir) as f64 / events as f64)
}

/// Closes the store and records its bytes on disk per event under `key`.
fn close_and_measure(store: Store, dir: &Path, key: &'static str) {
    let events = store.head();
    store.close().expect("close");
    tally(key, |t| t.bytes_per_event = bytes_per_event(dir, events));
}

fn appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    configure(&mut group);

    // (a) One writer, one event per append.
    {
        let dir = scratch_dir("gesta-bench-w1").expect("scratch dir");
        let store = open_store(dir.path());
        let mut generator = EventGen::new(SEED);
        group.throughput(Throughput::Elements(1));
        group.bench_function("1_writer_x_1_event", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut lat = Vec::with_capacity(iters as usize);
                for _ in 0..iters {
                    let event = generator.next_event();
                    let start = Instant::now();
                    store.append(vec![event]).expect("append");
                    let took = start.elapsed();
                    total += took;
                    lat.push(took);
                }
                tally("a: 1 writer x 1 event", |t| {
                    t.add(iters, total);
                    t.latencies.extend(lat);
                });
                total
            })
        });
        close_and_measure(store, dir.path(), "a: 1 writer x 1 event");
    }

    // (b) 16 writer threads, one event per append: an iteration is one
    // append by each thread, timed as wall time for all 16·k events.
    {
        let dir = scratch_dir("gesta-bench-w2").expect("scratch dir");
        let store = open_store(dir.path());
        let mut round = 0u64;
        group.throughput(Throughput::Elements(WRITERS as u64));
        group.bench_function("16_writers_x_1_event", |b| {
            b.iter_custom(|iters| {
                // Fresh events each call, still fixed by the seed.
                round += 1;
                let r = round;
                let lats = Mutex::new(Vec::with_capacity(WRITERS * iters as usize));
                let elapsed = run_parallel(
                    WRITERS,
                    |t| {
                        // Outside the timing: this thread's events.
                        let mut generator = EventGen::for_writer((r << 8) | t as u64);
                        (0..iters)
                            .map(|_| generator.next_event())
                            .collect::<Vec<_>>()
                    },
                    |_, events| {
                        let mut lat = Vec::with_capacity(events.len());
                        for event in events {
                            let start = Instant::now();
                            store.append(vec![event]).expect("append");
                            lat.push(start.elapsed());
                        }
                        lats.lock().expect("latency lock").extend(lat);
                    },
                );
                tally("b: 16 writers x 1 event", |t| {
                    t.add(WRITERS as u64 * iters, elapsed);
                    t.latencies.extend(lats.into_inner().expect("latency lock"));
                });
                elapsed
            })
        });
        close_and_measure(store, dir.path(), "b: 16 writers x 1 event");
    }

    // (c) One writer, batches of 100 events.
    {
        let key = "c: 1 writer x 100 events";
        let dir = scratch_dir("gesta-bench-w3").expect("scratch dir");
        let name = ("1_writer_x_100_events", key);
        let store = batches(&mut group, dir.path(), Durability::Sync, name);
        close_and_measure(store, dir.path(), key);
    }

    // (c') The same in `Buffered` mode: the commit path's CPU (encoding,
    // admission, the write into the page cache, the memtable) without the
    // disk's sync.
    {
        let key = "c': 1 writer x 100 events, Buffered (no sync)";
        let dir = scratch_dir("gesta-bench-w3-buffered").expect("scratch dir");
        let name = ("1_writer_x_100_events_buffered", key);
        batches(&mut group, dir.path(), Durability::Buffered, name)
            .close()
            .expect("close");
    }
    group.finish();
}

fn limit_line(c: &mut Criterion) {
    let dir = scratch_dir("gesta-bench-disk").expect("scratch dir");
    let mut group = c.benchmark_group("limit_line");
    configure(&mut group);

    // (d) 4 KiB write + fdatasync.
    group.throughput(Throughput::Elements(1));
    for (mode, name, key) in [
        (
            SyncMode::PreZeroed,
            "fdatasync_4k_pre_zeroed",
            "d: fdatasync 4k pre-zeroed",
        ),
        (
            SyncMode::Growing,
            "fdatasync_4k_growing",
            "d: fdatasync 4k growing",
        ),
    ] {
        let mut probe = SyncProbe::new(&dir.path().join(name), mode).expect("probe file");
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut lat = Vec::with_capacity(iters as usize);
                for _ in 0..iters {
                    let took = probe.write_sync().expect("write + fdatasync");
                    total += took;
                    lat.push(took);
                }
                tally(key, |t| {
                    t.add(iters, total);
                    t.latencies.extend(lat);
                });
                total
            })
        });
    }

    // 16 threads sharing fdatasyncs: an iteration is one commit per thread.
    {
        let probe = GroupCommitProbe::new(&dir.path().join("group_commit")).expect("probe file");
        group.throughput(Throughput::Elements(WRITERS as u64));
        group.bench_function("group_commit_16_threads", |b| {
            b.iter_custom(|iters| {
                let report = probe.run(WRITERS, iters).expect("group commit probe");
                tally("e: group commit, 16 threads", |t| {
                    t.add(report.commits, report.elapsed);
                    t.syncs += report.syncs;
                });
                report.elapsed
            })
        });
    }

    // Sequential bandwidth, fdatasync per MiB.
    {
        let mut probe = BandwidthProbe::new(&dir.path().join("bandwidth")).expect("probe file");
        group.throughput(Throughput::Bytes(MIB as u64));
        group.bench_function("sequential_1MiB_fdatasync", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += probe.write_mib().expect("write + fdatasync");
                }
                tally("f: sequential MiB + fdatasync", |t| {
                    t.add(iters * MIB as u64, total);
                });
                total
            })
        });
    }
    group.finish();
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Prints every figure the run collected and the ratios that matter. Rates
/// are time-weighted medians over every timed call (warm-up included), with
/// the plain mean beside them: on a shared disk the two can differ a lot.
fn summary() {
    let tallies = TALLIES.lock().expect("tally lock");
    if tallies.is_empty() {
        return;
    }
    let root = bench_root();
    println!();
    println!(
        "## Summary (scratch dir {}, {}; rates: median, mean)",
        root.display(),
        fs_type(&root).unwrap_or_else(|| "file system unknown".into())
    );
    println!();
    for (name, t) in tallies.iter() {
        if t.elements == 0 {
            continue;
        }
        let (unit, scale) = match name.as_bytes()[0] {
            b'f' => ("MiB/s", MIB as f64),
            b'd' => ("syncs/s", 1.0),
            b'e' => ("commits/s", 1.0),
            _ => ("events/s", 1.0),
        };
        let mut line = format!(
            "{name}: {:.0} {unit} (mean {:.0})",
            t.median_rate() / scale,
            t.mean_rate() / scale
        );
        if t.syncs > 0 {
            line += &format!(
                ", {:.1} commits per fdatasync",
                t.elements as f64 / t.syncs as f64
            );
        }
        if !t.latencies.is_empty() {
            let l = Latencies::new(t.latencies.clone());
            line += &format!(
                "; latency p50 {:.0} µs, p99 {:.0} µs, mean {:.0} µs",
                us(l.quantile(0.5)),
                us(l.quantile(0.99)),
                us(l.mean())
            );
        }
        if let Some(b) = t.bytes_per_event {
            line += &format!("; {b:.0} bytes on disk per event");
        }
        println!("- {line}");
    }
    let rate = |k: &str| {
        tallies
            .get(k)
            .filter(|t| t.elements > 0)
            .map(Tally::median_rate)
    };
    let a = rate("a: 1 writer x 1 event");
    let b = rate("b: 16 writers x 1 event");
    let c = rate("c: 1 writer x 100 events");
    let pre = rate("d: fdatasync 4k pre-zeroed");
    let grow = rate("d: fdatasync 4k growing");
    let group = rate("e: group commit, 16 threads");
    let bw = rate("f: sequential MiB + fdatasync");
    println!();
    if let (Some(a), Some(b)) = (a, b) {
        println!("- (b)/(a) = {:.2}", b / a);
    }
    if let (Some(a), Some(pre)) = (a, pre) {
        println!(
            "- W1 shape: (a) is {:.0}% of 1 ÷ (pre-zeroed 4 KiB write + fdatasync) (target ≥ 90%)",
            100.0 * a / pre
        );
    }
    if let (Some(pre), Some(grow)) = (pre, grow) {
        println!(
            "- a growing-file write + fdatasync takes {:.2}× the pre-zeroed one",
            pre / grow
        );
    }
    if let (Some(b), Some(group)) = (b, group) {
        println!(
            "- W2 shape: (b) is {:.0}% of the 16-thread group-commit probe",
            100.0 * b / group
        );
    }
    let bpe = tallies
        .get("c: 1 writer x 100 events")
        .and_then(|t| t.bytes_per_event);
    if let (Some(c), Some(bw), Some(bpe)) = (c, bw, bpe) {
        let limit = bw / bpe;
        println!(
            "- W3 shape: (c) is {:.0}% of bandwidth ÷ bytes per event = {limit:.0} events/s (target ≥ 20%)",
            100.0 * c / limit
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    appends(&mut c);
    limit_line(&mut c);
    c.final_summary();
    summary();
}
