//! The comparison harness behind the `gesta-bench` binary: runs the
//! workloads of `BENCH.md` against every available store through
//! `&dyn EventStore`, measures the disk's limit line once, and reports one
//! table (and the same figures as JSON).
//!
//! - [`stores`]: the stores and how each is opened, loaded and closed;
//! - [`workloads`]: W1–W5 and R1–R4 over `&dyn EventStore`;
//! - [`lookups`]: R5–R7, a stream by revision, an event by id and a
//!   position by time, on a store of the standard data with ids;
//! - [`report`]: the table and the JSON;
//! - [`charts`]: the same as pictures, drawn from the JSON: one SVG bar
//!   chart per workload and an HTML page with all of them;
//! - `uma` (feature `umadb`): UmaDB's embedded engine as a store;
//! - `remote`, `remote_gesta`, `server_mode` and `cpu` (feature
//!   `server`): Gesta through its gRPC server (its `umadb.v1` service, and
//!   UmaDB's own server; or its `gesta.v1` service), the `--server` run
//!   that sets them beside embedded Gesta, and the CPU each side takes.

pub mod charts;
#[cfg(feature = "server")]
pub mod cpu;
pub mod lookups;
#[cfg(feature = "server")]
pub mod remote;
#[cfg(feature = "server")]
pub mod remote_gesta;
pub mod report;
#[cfg(feature = "server")]
pub mod server_mode;
pub mod stores;
#[cfg(feature = "umadb")]
pub mod uma;
pub mod workloads;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::{BandwidthProbe, EventGen, MIB, SEED, SyncMode, SyncProbe, group_commit_probe};
use stores::{Handle, Instance, Location, Mode, StoreKind};
use workloads::{Outcome, Queries, ReadKind};

/// Errors of the harness: anything printable.
pub type HarnessError = Box<dyn std::error::Error + Send + Sync>;

/// Every workload id the harness knows, in table order.
pub const WORKLOADS: [&str; 16] = [
    "W1", "W2", "W3", "W4", "W5", "R1", "R2", "R3", "R4", "R5", "R6", "R7", "S1", "O1", "M1", "D1",
];

/// Workloads of `BENCH.md` the harness does not run yet.
pub const SKIPPED: [(&str, &str); 0] = [];

/// How many operations each workload does, and how long each may take.
#[derive(Clone, Debug, Serialize)]
pub struct Sizes {
    /// W1 appends.
    pub w1: u64,
    /// W2 appends, over all writers.
    pub w2: u64,
    /// W3 events; also the events of the store R1–R4, O1 and D1 run on,
    /// and of the store R5–R7 run on.
    pub w3: u64,
    /// W4 appends, over all writers.
    pub w4: u64,
    /// W5 commits, over all writers.
    pub w5: u64,
    /// Queries in each of R2–R4, and lookups in each of R5–R7.
    pub queries: usize,
    /// Runs of R1 (the fastest counts).
    pub r1_runs: usize,
    /// S1 appends, over all writers.
    pub s1: u64,
    /// Events of the M1 store.
    pub m1: u64,
    /// Longest a write workload may run before it stops early, seconds.
    pub budget_secs: f64,
    /// Samples of each 4 KiB write + fdatasync probe.
    pub sync_samples: usize,
    /// Commits per thread of the 16-thread group-commit probe.
    pub group_commits_per_thread: u64,
    /// MiB written by the bandwidth probe.
    pub bandwidth_mib: usize,
}

impl Sizes {
    /// The sizes of `BENCH.md`.
    pub fn full() -> Sizes {
        Sizes {
            w1: 20_000,
            w2: 100_000,
            w3: 1_000_000,
            w4: 100_000,
            w5: 10_000,
            queries: 10_000,
            r1_runs: 3,
            s1: 100_000,
            m1: 10_000_000,
            budget_secs: 30.0,
            sync_samples: 2_000,
            group_commits_per_thread: 300,
            bandwidth_mib: 128,
        }
    }

    /// Small sizes, for CI: the whole run takes seconds.
    pub fn quick() -> Sizes {
        Sizes {
            w1: 500,
            w2: 2_000,
            w3: 20_000,
            w4: 2_000,
            w5: 400,
            queries: 200,
            r1_runs: 2,
            s1: 2_000,
            m1: 100_000,
            budget_secs: 5.0,
            sync_samples: 200,
            group_commits_per_thread: 30,
            bandwidth_mib: 16,
        }
    }

    fn budget(&self) -> Duration {
        Duration::from_secs_f64(self.budget_secs)
    }
}

/// What a run does.
#[derive(Clone, Debug)]
pub struct Config {
    /// Whether these are the small CI sizes.
    pub quick: bool,
    /// The sizes.
    pub sizes: Sizes,
    /// The workloads to run (ids from [`WORKLOADS`]).
    pub workloads: BTreeSet<&'static str>,
    /// The stores to run them against.
    pub stores: Vec<StoreKind>,
    /// Scratch directory (each store gets fresh directories inside it).
    pub dir: PathBuf,
    /// PostgreSQL connection URL.
    pub postgres_url: Option<String>,
}

impl Config {
    /// Parses a comma-separated `--only` list (case-insensitive) into
    /// workload ids; `None` selects them all.
    pub fn parse_only(only: Option<&str>) -> Result<BTreeSet<&'static str>, HarnessError> {
        let Some(only) = only else {
            return Ok(WORKLOADS.iter().copied().collect());
        };
        let mut picked = BTreeSet::new();
        for id in only.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let id = id.to_ascii_uppercase();
            if let Some(w) = WORKLOADS.iter().find(|w| **w == id) {
                picked.insert(*w);
            } else if SKIPPED.iter().any(|(s, _)| *s == id) {
                eprintln!("note: {id} is not implemented yet; skipping it");
            } else {
                return Err(
                    format!("unknown workload {id:?}; known: {}", WORKLOADS.join(",")).into(),
                );
            }
        }
        if picked.is_empty() {
            return Err("--only selected no workload".into());
        }
        Ok(picked)
    }

    fn wants(&self, id: &str) -> bool {
        self.workloads.contains(id)
    }
}

/// The disk's limit line, measured with `std::fs` in the scratch directory.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct LimitLine {
    /// Mean latency of a 4 KiB write + fdatasync overwriting a pre-zeroed
    /// file, µs.
    pub pre_zeroed_sync_us: f64,
    /// The same growing the file, µs.
    pub growing_sync_us: f64,
    /// The 16-thread leader/follower group-commit probe, commits/s.
    pub group_commit_per_s: f64,
    /// Commits per fdatasync in that probe.
    pub group_commits_per_sync: f64,
    /// Sequential write bandwidth with an fdatasync per MiB, bytes/s.
    pub bandwidth_bytes_per_s: f64,
}

impl LimitLine {
    /// Measures the limit line in `dir`.
    pub fn measure(dir: &std::path::Path, sizes: &Sizes) -> Result<LimitLine, HarnessError> {
        let latency = |mode: SyncMode, name: &str| -> Result<f64, HarnessError> {
            let path = dir.join(name);
            let mut probe = SyncProbe::new(&path, mode)?;
            let l = probe.measure(sizes.sync_samples)?;
            drop(probe);
            std::fs::remove_file(&path)?;
            Ok(l.mean().as_secs_f64() * 1e6)
        };
        let pre_zeroed_sync_us = latency(SyncMode::PreZeroed, "probe-pre-zeroed")?;
        let growing_sync_us = latency(SyncMode::Growing, "probe-growing")?;
        let group = group_commit_probe(dir, workloads::WRITERS, sizes.group_commits_per_thread)?;
        let path = dir.join("probe-bandwidth");
        let mut bw = BandwidthProbe::new(&path)?;
        let mib_per_s = bw.measure(sizes.bandwidth_mib)?;
        drop(bw);
        std::fs::remove_file(&path)?;
        Ok(LimitLine {
            pre_zeroed_sync_us,
            growing_sync_us,
            group_commit_per_s: group.commits_per_sec(),
            group_commits_per_sync: group.commits_per_sync(),
            bandwidth_bytes_per_s: mib_per_s * MIB as f64,
        })
    }
}

/// One workload's outcome on one store.
#[derive(Clone, Debug)]
pub struct Measured {
    /// The store.
    pub store: StoreKind,
    /// The workload id.
    pub workload: &'static str,
    /// What was measured.
    pub outcome: Outcome,
}

/// Everything a run measured.
#[derive(Debug, Default)]
pub struct Results {
    /// The disk's limit line, if measured.
    pub limit: Option<LimitLine>,
    /// Each workload's outcome on each store.
    pub measured: Vec<Measured>,
    /// Bytes on disk per event, per store (D1).
    pub bytes_per_event: BTreeMap<StoreKind, f64>,
    /// Open times after a clean close, ms (O1; Gesta only).
    pub open_ms: BTreeMap<StoreKind, f64>,
    /// Open times after a crash (a copy of the store's files taken while
    /// it was open, as a killed process leaves them), ms (O1; Gesta only).
    pub open_crash_ms: BTreeMap<StoreKind, f64>,
    /// Peak resident memory with the M1 store open and R2 running, MiB
    /// (Gesta only), and the events it held.
    pub peak_rss_mib: BTreeMap<StoreKind, (f64, u64)>,
    /// Workloads that failed: (store, workload, error).
    pub errors: Vec<(StoreKind, &'static str, String)>,
    /// Remarks for the report.
    pub notes: Vec<String>,
}

impl Results {
    /// The outcome of `workload` on `store`.
    pub fn get(&self, store: StoreKind, workload: &str) -> Option<&Outcome> {
        self.measured
            .iter()
            .find(|m| m.store == store && m.workload == workload)
            .map(|m| &m.outcome)
    }

    /// Whether `workload` failed on `store`.
    pub fn failed(&self, store: StoreKind, workload: &str) -> bool {
        self.errors
            .iter()
            .any(|(s, w, _)| *s == store && *w == workload)
    }
}

/// Runs the whole comparison.
pub fn run(config: &Config) -> Result<Results, HarnessError> {
    std::fs::create_dir_all(&config.dir)?;
    let scratch = tempfile::Builder::new()
        .prefix("gesta-bench-")
        .tempdir_in(&config.dir)?;
    let at = Location {
        dir: scratch.path().to_owned(),
        postgres_url: config.postgres_url.clone(),
    };
    let steps = 1 + config.stores.len() as u64 * config.workloads.len() as u64;
    let bar = ProgressBar::new(steps);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
    );
    let mut results = Results::default();

    bar.set_message("limit line (disk probes)");
    if config
        .workloads
        .iter()
        .any(|w| matches!(*w, "W1" | "W2" | "W3" | "W4"))
    {
        results.limit = Some(LimitLine::measure(&at.dir, &config.sizes)?);
    }
    bar.inc(1);

    for &kind in &config.stores {
        run_store(config, &at, kind, &mut results, &bar);
    }
    bar.finish_and_clear();
    same_hits(&mut results);
    Ok(results)
}

/// The queries of R2–R4 run over the same events on every store, so they
/// must find the same events: a store whose count differs from the first
/// store's is an error in the report, not a figure (a store that skipped
/// events would otherwise look fast).
fn same_hits(results: &mut Results) {
    for id in ["R2", "R3", "R4"] {
        let found: Vec<(StoreKind, u64)> = results
            .measured
            .iter()
            .filter(|m| m.workload == id)
            .map(|m| (m.store, m.outcome.extra))
            .collect();
        let Some(&(first, hits)) = found.first() else {
            continue;
        };
        for &(store, extra) in &found[1..] {
            if extra != hits {
                results
                    .measured
                    .retain(|m| !(m.store == store && m.workload == id));
                results.errors.push((
                    store,
                    id,
                    format!(
                        "found {extra} events where {} found {hits}: not the same answers",
                        first.label()
                    ),
                ));
            }
        }
    }
}

/// Runs every selected workload on one kind of store, recording failures
/// instead of giving up.
fn run_store(
    config: &Config,
    at: &Location,
    kind: StoreKind,
    results: &mut Results,
    bar: &ProgressBar,
) {
    let sizes = &config.sizes;
    let budget = sizes.budget();
    let writes: [(&'static str, u64); 5] = [
        ("W1", sizes.w1),
        ("W2", sizes.w2),
        ("W4", sizes.w4),
        ("W5", sizes.w5),
        ("S1", sizes.s1),
    ];
    for (id, n) in writes {
        if !config.wants(id) {
            continue;
        }
        if kind.data_only() {
            bar.inc(1);
            continue;
        }
        bar.set_message(format!("{} {id}", kind.label()));
        let result = on_fresh_store(kind, at, id, |store| match id {
            "W1" => workloads::w1(store, n, budget),
            "W2" => workloads::writers(store, n, false, budget),
            "W4" => workloads::writers(store, n, true, budget),
            "S1" => workloads::s1(store, n, budget),
            _ => workloads::contended(store, n, budget),
        });
        let unsupported = result.as_ref().is_err_and(|e| {
            matches!(
                e.downcast_ref::<gesta::Error>(),
                Some(gesta::Error::Unsupported { .. })
            )
        });
        if !unsupported {
            record(results, kind, id, result);
        }
        if id == "S1" && kind == StoreKind::Gesta {
            subscriber_cost(kind, at, n, budget, results);
        }
        bar.inc(1);
    }
    if config.wants("M1") {
        if kind == StoreKind::Gesta {
            bar.set_message(format!("{} M1 (loading {} events)", kind.label(), sizes.m1));
            if let Err(e) = peak_memory(config, at, kind, results) {
                results.errors.push((kind, "M1", e.to_string()));
            }
        }
        bar.inc(1);
    }

    if kind.data_only() {
        let skipped = lookups::LOOKUPS
            .iter()
            .filter(|id| config.wants(id))
            .count();
        bar.inc(skipped as u64);
    } else {
        lookup_workloads(config, at, kind, results, bar);
    }

    let data_ids = ["W3", "R1", "R2", "R3", "R4", "O1", "D1"];
    let done_ids = ["W3", "R1", "R2", "R3", "R4", "O1", "D1"];
    let wanted: Vec<&'static str> = data_ids
        .iter()
        .copied()
        .filter(|id| config.wants(id))
        .collect();
    if wanted.is_empty() {
        return;
    }
    bar.set_message(format!("{} W3 / loading the read store", kind.label()));
    if let Err(e) = data_store(config, at, kind, results, bar) {
        for id in wanted {
            let applies = match id {
                "O1" => kind == StoreKind::Gesta,
                "D1" => kind.is_embedded(),
                _ => true,
            };
            if applies && results.get(kind, id).is_none() && !results.failed(kind, id) {
                results.errors.push((kind, id, e.to_string()));
            }
        }
    }
    // The progress bar counts every selected workload once per store.
    let done = config
        .workloads
        .iter()
        .filter(|w| done_ids.contains(w))
        .count() as u64;
    bar.inc(done);
}

/// R5–R7 on one kind of store: loads the standard data with ids into a
/// fresh store (untimed), reopens it as measured and runs the selected
/// lookups on it. UmaDB has none of the three, so they are not run on it
/// and the report says so.
fn lookup_workloads(
    config: &Config,
    at: &Location,
    kind: StoreKind,
    results: &mut Results,
    bar: &ProgressBar,
) {
    let wanted: Vec<&'static str> = lookups::LOOKUPS
        .iter()
        .copied()
        .filter(|id| config.wants(id))
        .collect();
    if wanted.is_empty() {
        return;
    }
    if kind == StoreKind::UmaDb {
        results.notes.push(format!(
            "{} not run on {}: UmaDB has no equivalent — no streams (the adapter keeps an \
             event's stream in its metadata, unindexed), no lookup by an event's UUID, and no \
             commit times.",
            wanted.join(", "),
            kind.label()
        ));
        bar.inc(wanted.len() as u64);
        return;
    }
    bar.set_message(format!("{} loading the lookup store", kind.label()));
    if let Err(e) = lookup_store(config, at, kind, &wanted, results, bar) {
        for &id in &wanted {
            if results.get(kind, id).is_none() && !results.failed(kind, id) {
                results.errors.push((kind, id, e.to_string()));
            }
        }
    }
    bar.inc(wanted.len() as u64);
}

fn lookup_store(
    config: &Config,
    at: &Location,
    kind: StoreKind,
    wanted: &[&'static str],
    results: &mut Results,
    bar: &ProgressBar,
) -> Result<(), HarnessError> {
    let sizes = &config.sizes;
    let instance = Instance::fresh(kind, at, "lookups")?;
    let outcome = (|| -> Result<(), HarnessError> {
        let handle = instance.open(Mode::Load)?;
        lookups::load_with_ids(handle.store(), sizes.w3)?;
        handle.close()?;
        let handle = instance.open(Mode::Measured)?;
        if kind.is_embedded() {
            crate::warm_page_cache(&instance.dir)?;
        }
        let store = handle.store();
        let events = store.head()?;
        for &id in wanted {
            bar.set_message(format!("{} {id}", kind.label()));
            let outcome = match id {
                "R5" => lookups::stream_reads(store, sizes.queries),
                "R6" => lookups::id_lookups(store, events, sizes.queries),
                _ => lookups::time_range(store)
                    .and_then(|range| lookups::time_lookups(store, range, sizes.queries)),
            };
            record(results, kind, id, outcome);
        }
        handle.discard()?;
        Ok(())
    })();
    finish(&instance, kind, outcome)
}

/// Removes a store's instance after its workloads; a PostgreSQL schema is
/// discarded first if they failed before doing so.
fn finish(
    instance: &Instance,
    kind: StoreKind,
    outcome: Result<(), HarnessError>,
) -> Result<(), HarnessError> {
    if outcome.is_err() && kind == StoreKind::Postgres {
        // Leave no schema behind.
        if let Ok(h) = instance.open(Mode::Measured) {
            let _ = h.discard();
        }
    }
    instance.remove()?;
    outcome
}

fn record(
    results: &mut Results,
    store: StoreKind,
    workload: &'static str,
    result: Result<Outcome, HarnessError>,
) {
    match result {
        Ok(outcome) => results.measured.push(Measured {
            store,
            workload,
            outcome,
        }),
        Err(e) => results.errors.push((store, workload, e.to_string())),
    }
}

/// Runs `work` on a fresh store of `kind`, then deletes the store.
fn on_fresh_store(
    kind: StoreKind,
    at: &Location,
    name: &str,
    work: impl FnOnce(&dyn gesta::EventStore) -> Result<Outcome, HarnessError>,
) -> Result<Outcome, HarnessError> {
    let instance = Instance::fresh(kind, at, &name.to_ascii_lowercase())?;
    let handle = instance.open(Mode::Measured)?;
    let result = work(handle.store());
    let closed = handle.discard();
    instance.remove()?;
    let outcome = result?;
    closed?;
    Ok(outcome)
}

/// W3 (or an untimed load of the same events), then D1 on the closed
/// store, O1 on reopening it, and R1–R4 on it.
fn data_store(
    config: &Config,
    at: &Location,
    kind: StoreKind,
    results: &mut Results,
    bar: &ProgressBar,
) -> Result<(), HarnessError> {
    let sizes = &config.sizes;
    let instance = Instance::fresh(kind, at, "data")?;
    let outcome = (|| -> Result<(), HarnessError> {
        let handle = if config.wants("W3") {
            let handle = instance.open(Mode::Measured)?;
            let mut generator = EventGen::new(SEED);
            let w3 = workloads::w3(handle.store(), &mut generator, sizes.w3, sizes.budget());
            // A failed W3 leaves no data to read: it fails the rest too.
            let w3 = w3?;
            let done = w3.ops;
            record(results, kind, "W3", Ok(w3));
            if done < sizes.w3 {
                // Stopped early: finish the read workloads' data the fast way.
                bar.set_message(format!("{} loading the read store", kind.label()));
                handle.close()?;
                let handle = instance.open(Mode::Load)?;
                workloads::load_from(handle.store(), &mut generator, sizes.w3 - done)?;
                handle.close()?;
                instance.open(Mode::Measured)?
            } else {
                handle
            }
        } else {
            let handle = instance.open(Mode::Load)?;
            workloads::load(handle.store(), sizes.w3)?;
            handle
        };
        let events = handle.store().head()?;
        if let Handle::Gesta(store) = &handle
            && kind == StoreKind::GestaZstd
        {
            // Every sealed segment compressed before D1 and the reads.
            bar.set_message(format!("{} compressing", kind.label()));
            store.compact()?;
        }
        // What a process killed now would leave: the files as they are
        // while the store is open (its index partly only in memory).
        let crashed = instance.dir.with_extension("crashed");
        if kind == StoreKind::Gesta && config.wants("O1") {
            copy_dir(&instance.dir, &crashed)?;
        }
        handle.close()?;
        if let Some(bytes) = instance.bytes_on_disk().filter(|_| events > 0) {
            results
                .bytes_per_event
                .insert(kind, bytes as f64 / events as f64);
        }

        bar.set_message(format!("{} O1 / reopening", kind.label()));
        let start = Instant::now();
        let handle = instance.open(Mode::Measured)?;
        let open = start.elapsed();
        if kind == StoreKind::Gesta {
            results.open_ms.insert(kind, open.as_secs_f64() * 1e3);
            if crashed.exists() {
                let start = Instant::now();
                let store = gesta::Store::open(&crashed)?;
                let open = start.elapsed();
                if store.head() != events {
                    return Err(format!(
                        "O1: the crashed copy reopened at {} of {events} events",
                        store.head()
                    )
                    .into());
                }
                drop(store);
                std::fs::remove_dir_all(&crashed)?;
                results.open_crash_ms.insert(kind, open.as_secs_f64() * 1e3);
            }
        }
        let reads = ["R1", "R2", "R3", "R4"];
        if reads.iter().any(|r| config.wants(r)) && kind.is_embedded() {
            crate::warm_page_cache(&instance.dir)?;
        }
        let store = handle.store();
        let work = Queries::new();
        for id in reads {
            if !config.wants(id) {
                continue;
            }
            bar.set_message(format!("{} {id}", kind.label()));
            let outcome = match id {
                "R1" => workloads::read_all(store, sizes.r1_runs),
                "R2" => workloads::queries(store, &work, ReadKind::Tag, sizes.queries),
                "R3" => workloads::queries(store, &work, ReadKind::TypeAndTag, sizes.queries),
                _ => workloads::queries(store, &work, ReadKind::LastTypeAndTag, sizes.queries),
            };
            record(results, kind, id, outcome);
        }
        handle.discard()?;
        Ok(())
    })();
    finish(&instance, kind, outcome)
}

/// Appends as in W2 with 0, 1 and 100 live subscribers attached, each on
/// a fresh store, and notes the throughputs side by side.
fn subscriber_cost(
    kind: StoreKind,
    at: &Location,
    n: u64,
    budget: std::time::Duration,
    results: &mut Results,
) {
    let mut rates = Vec::new();
    for subscribers in [0, 1, 100] {
        let name = format!("s1-{subscribers}");
        let result = on_fresh_store(kind, at, &name, |store| {
            workloads::writers_with_subscribers(store, n, subscribers, budget)
        });
        match result {
            Ok(o) => rates.push((subscribers, o.rate(), o.extra)),
            Err(e) => {
                results.errors.push((kind, "S1", e.to_string()));
                return;
            }
        }
    }
    let base = rates[0].1.max(1e-9);
    let cells: Vec<String> = rates
        .iter()
        .map(|(s, r, delivered)| {
            format!(
                "{s} subscribers: {} events/s ({:.0}% of none; {delivered} events delivered)",
                report::fmt_num(*r),
                100.0 * r / base
            )
        })
        .collect();
    results.notes.push(format!(
        "S1 append throughput (16 writers) with {}",
        cells.join(", ")
    ));
}

/// Copies the files of a store directory (one level of subdirectories).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> Result<(), HarnessError> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Linux's resident-memory figures of this process, in KiB: (peak, anon,
/// file-backed).
fn rss_kib() -> Option<(u64, u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmHWM:")?, field("RssAnon:")?, field("RssFile:")?))
}

/// M1: loads `sizes.m1` events into a fresh store, closes it, then — with
/// the peak-RSS mark reset (`/proc/self/clear_refs`) — opens it and runs
/// R2 on it, and reads the process's peak resident memory. The mapped log
/// pages R2 touches count (as file-backed RSS, which the kernel can
/// reclaim); the note splits the figure.
fn peak_memory(
    config: &Config,
    at: &Location,
    kind: StoreKind,
    results: &mut Results,
) -> Result<(), HarnessError> {
    let sizes = &config.sizes;
    let instance = Instance::fresh(kind, at, "m1")?;
    let outcome = (|| -> Result<(), HarnessError> {
        let handle = instance.open(Mode::Load)?;
        workloads::load(handle.store(), sizes.m1)?;
        handle.close()?;
        std::fs::write("/proc/self/clear_refs", "5")
            .map_err(|e| format!("M1 needs /proc/self/clear_refs (Linux): {e}"))?;
        let before = rss_kib().ok_or("M1: /proc/self/status unreadable")?;
        let handle = instance.open(Mode::Measured)?;
        let events = handle.store().head()?;
        workloads::queries(
            handle.store(),
            &Queries::new(),
            ReadKind::Tag,
            sizes.queries,
        )?;
        let (peak, anon, file) = rss_kib().ok_or("M1: /proc/self/status unreadable")?;
        handle.close()?;
        let peak_mib = peak as f64 / 1024.0;
        results.peak_rss_mib.insert(kind, (peak_mib, events));
        results.notes.push(format!(
            "M1: peak RSS {:.0} MiB with {events} events open and R2 run \
             (after: {:.0} MiB anonymous, {:.0} MiB mapped files; \
             before opening: {:.0} MiB anonymous)",
            peak_mib,
            anon as f64 / 1024.0,
            file as f64 / 1024.0,
            before.1 as f64 / 1024.0
        ));
        Ok(())
    })();
    instance.remove()?;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lists_are_parsed() {
        assert_eq!(
            Config::parse_only(Some("w2, R2")).unwrap(),
            BTreeSet::from(["W2", "R2"])
        );
        assert_eq!(Config::parse_only(None).unwrap().len(), WORKLOADS.len());
        assert!(Config::parse_only(Some("W9")).is_err());
        assert!(Config::parse_only(Some("M1")).is_ok());
    }
}
