//! The comparison's `--server` mode (feature `server`): W1–W4 and R2 on
//! embedded Gesta and on Gesta through its gRPC server's `umadb.v1`
//! service at several client connection counts — with `--umadb-server`,
//! on UmaDB's own server through the same client, and with `--gesta-v1`,
//! through Gesta's own `gesta.v1` service and client — in one run so that
//! the ratios hold; its tables (the figures, and the CPU each side took)
//! and JSON.
//!
//! Every target gets the same treatment: a fresh store (`Durability::Sync`,
//! as the comparison opens Gesta) per write workload, the same loaded store
//! for R2. Through gRPC the store is served by a [`LocalServer`] in this
//! process, started for the workload and stopped gracefully after it. The
//! workloads are those of `BENCH.md` unchanged, so their concurrency is
//! theirs (one thread, or 16 writers), whatever the number of connections
//! the calls are spread over.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::cpu::{Cpu, Sample};
use super::remote::{CLIENT_THREADS, LocalServer, SERVER_THREADS, UmaServer};
use super::report::fmt_num;
use super::stores::{Handle, Instance, Location, Mode, StoreKind};
use super::workloads::{self, Outcome, Queries, ReadKind};
use super::{HarnessError, Sizes};
use crate::{EventGen, SEED};

/// The workloads server mode runs, in table order.
pub const SERVER_WORKLOADS: [&str; 5] = ["W1", "W2", "W3", "W4", "R2"];

/// The client connection counts measured unless told otherwise.
pub const DEFAULT_CONNECTIONS: [usize; 3] = [1, 16, 64];

/// Where a workload runs: on the store directly, or through gRPC with this
/// many connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// Embedded Gesta, as in the main comparison.
    Embedded,
    /// Through the gRPC server, with this many client connections.
    Grpc(usize),
    /// Through UmaDB's own server, with this many client connections.
    Uma(usize),
    /// Through the gRPC server's `gesta.v1` service and the server crate's
    /// client, with this many client connections.
    GestaV1(usize),
}

impl Target {
    /// The column heading.
    pub fn label(self) -> String {
        match self {
            Target::Embedded => "embedded".to_owned(),
            Target::Grpc(n) => format!("gRPC ×{n}"),
            Target::Uma(n) => format!("UmaDB server ×{n}"),
            Target::GestaV1(n) => format!("gesta.v1 ×{n}"),
        }
    }

    /// A short name for directories and JSON keys.
    pub fn key(self) -> String {
        match self {
            Target::Embedded => "embedded".to_owned(),
            Target::Grpc(n) => format!("grpc_x{n}"),
            Target::Uma(n) => format!("umadb_server_x{n}"),
            Target::GestaV1(n) => format!("gesta_v1_x{n}"),
        }
    }

    /// Whether a server answers it.
    pub fn is_remote(self) -> bool {
        self != Target::Embedded
    }
}

/// What a server-mode run does.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Whether these are the small CI sizes.
    pub quick: bool,
    /// The sizes (`w3` is also the R2 store's events).
    pub sizes: Sizes,
    /// The workloads, from [`SERVER_WORKLOADS`], in table order.
    pub workloads: Vec<&'static str>,
    /// The connection counts, each a column.
    pub connections: Vec<usize>,
    /// Scratch directory (each store gets a fresh directory inside it).
    pub dir: PathBuf,
    /// UmaDB's server command (`umadb`), to run every workload on it too.
    pub umadb_server: Option<PathBuf>,
    /// Whether every workload also runs through the `gesta.v1` service.
    pub gesta_v1: bool,
    /// The in-process server's worker threads, as `gesta serve
    /// --worker-threads` takes them (0: one per core, its default).
    pub server_threads: usize,
}

impl ServerConfig {
    /// The columns: embedded, then gRPC at each connection count (each
    /// followed by UmaDB's server and by `gesta.v1` at the same count, if
    /// they run).
    pub fn targets(&self) -> Vec<Target> {
        let uma = self.umadb_server.is_some();
        std::iter::once(Target::Embedded)
            .chain(self.connections.iter().flat_map(|&n| {
                std::iter::once(Target::Grpc(n))
                    .chain(uma.then_some(Target::Uma(n)))
                    .chain(self.gesta_v1.then_some(Target::GestaV1(n)))
            }))
            .collect()
    }

    /// The workloads of an `--only` list (read as
    /// [`super::Config::parse_only`] reads it; `None`: all five), noting
    /// those it names that server mode does not run.
    pub fn pick(only: Option<&str>) -> Result<Vec<&'static str>, HarnessError> {
        let Some(only) = only else {
            return Ok(SERVER_WORKLOADS.to_vec());
        };
        let only = super::Config::parse_only(Some(only))?;
        let picked: Vec<&'static str> = SERVER_WORKLOADS
            .iter()
            .copied()
            .filter(|w| only.contains(w))
            .collect();
        if picked.is_empty() {
            return Err(format!(
                "--server runs {} only; --only selected none of them",
                SERVER_WORKLOADS.join(", ")
            )
            .into());
        }
        let others: Vec<&str> = only
            .iter()
            .copied()
            .filter(|w| !SERVER_WORKLOADS.contains(w))
            .collect();
        if !others.is_empty() {
            eprintln!(
                "note: --server runs {} only; not running {}",
                SERVER_WORKLOADS.join(", "),
                others.join(", ")
            );
        }
        Ok(picked)
    }
}

/// One workload's outcome on one target.
#[derive(Clone, Debug)]
pub struct ServerMeasured {
    /// Where it ran.
    pub target: Target,
    /// The workload id.
    pub workload: &'static str,
    /// What was measured.
    pub outcome: Outcome,
    /// The CPU client and server took (through a server only).
    pub cpu: Option<Cpu>,
}

/// Everything a server-mode run measured.
#[derive(Debug, Default)]
pub struct ServerResults {
    /// Each workload's outcome on each target.
    pub measured: Vec<ServerMeasured>,
    /// Workloads that failed: (target, workload, error).
    pub errors: Vec<(Target, &'static str, String)>,
}

impl ServerResults {
    /// The outcome of `workload` on `target`.
    pub fn get(&self, target: Target, workload: &str) -> Option<&Outcome> {
        self.find(target, workload).map(|m| &m.outcome)
    }

    fn find(&self, target: Target, workload: &str) -> Option<&ServerMeasured> {
        self.measured
            .iter()
            .find(|m| m.target == target && m.workload == workload)
    }

    fn record(
        &mut self,
        target: Target,
        workload: &'static str,
        result: Result<(Outcome, Option<Cpu>), HarnessError>,
    ) {
        match result {
            Ok((outcome, cpu)) => self.measured.push(ServerMeasured {
                target,
                workload,
                outcome,
                cpu,
            }),
            Err(e) => self.errors.push((target, workload, e.to_string())),
        }
    }
}

/// Runs every selected workload on every target, workload by workload
/// (all targets of one workload close together in time), recording
/// failures instead of giving up.
pub fn run_server(config: &ServerConfig) -> Result<ServerResults, HarnessError> {
    if config.connections.contains(&0) {
        return Err("--connections must be at least 1".into());
    }
    std::fs::create_dir_all(&config.dir)?;
    let scratch = tempfile::Builder::new()
        .prefix("gesta-bench-server-")
        .tempdir_in(&config.dir)?;
    let at = Location {
        dir: scratch.path().to_owned(),
        postgres_url: None,
    };
    let runtimes = Runtimes {
        server: super::remote::runtime_with(SERVER_THREADS, config.server_threads)?,
        client: super::remote::runtime(CLIENT_THREADS)?,
        umadb: config.umadb_server.clone(),
    };
    let targets = config.targets();
    let bar = ProgressBar::new((config.workloads.len() * targets.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
    );
    let sizes = &config.sizes;
    let budget = std::time::Duration::from_secs_f64(sizes.budget_secs);
    let mut results = ServerResults::default();
    for &id in &config.workloads {
        if id == "R2" {
            bar.set_message(format!("R2: loading {} events", sizes.w3));
            if let Err(e) = reads(config, &at, &runtimes, &targets, &mut results, &bar) {
                for &t in &targets {
                    if results.get(t, "R2").is_none() {
                        results.errors.push((t, "R2", e.to_string()));
                    }
                }
            }
            continue;
        }
        for &target in &targets {
            bar.set_message(format!("{id} {}", target.label()));
            let result = on_fresh_store(target, &at, &runtimes, id, |store| {
                let outcome = match id {
                    "W1" => workloads::w1(store, sizes.w1, budget),
                    "W2" => workloads::writers(store, sizes.w2, false, budget),
                    "W3" => workloads::w3(store, &mut EventGen::new(SEED), sizes.w3, budget),
                    _ => workloads::writers(store, sizes.w4, true, budget),
                }?;
                // Every acknowledged append is in the store, and nothing else.
                let head = store.head()?;
                if head != outcome.ops {
                    return Err(format!(
                        "{id} acknowledged {} events but the head is {head}",
                        outcome.ops
                    )
                    .into());
                }
                Ok(outcome)
            });
            results.record(target, id, result);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(results)
}

/// Opens the Gesta store of `instance` as the comparison measures it.
fn open_measured(instance: &Instance) -> Result<gesta::Store, HarnessError> {
    match instance.open(Mode::Measured)? {
        Handle::Gesta(store) => Ok(store),
        _ => Err("not a Gesta store".into()),
    }
}

/// The runtimes of the in-process server and of the clients, and UmaDB's
/// server command.
struct Runtimes {
    server: Arc<tokio::runtime::Runtime>,
    client: Arc<tokio::runtime::Runtime>,
    umadb: Option<PathBuf>,
}

type Work<'a> = Box<dyn FnOnce(&dyn gesta::EventStore) -> Result<Outcome, HarnessError> + 'a>;

/// Runs `work` through `store`, measuring the CPU its client and server
/// (in `child`, or in this process) take.
fn measured(
    store: &dyn gesta::EventStore,
    child: Option<u32>,
    work: Work<'_>,
) -> Result<(Outcome, Option<Cpu>), HarnessError> {
    let before = Sample::take(child);
    let outcome = work(store)?;
    let cpu = Sample::take(child).since(&before);
    Ok((outcome, Some(cpu)))
}

/// Runs `work` on a Gesta `store` directly or through a server of its
/// own, then stops the server and closes the store.
fn on_target(
    target: Target,
    store: gesta::Store,
    runtimes: &Runtimes,
    work: Work<'_>,
) -> Result<(Outcome, Option<Cpu>), HarnessError> {
    match target {
        Target::Embedded => {
            let result = work(&store);
            store.close()?;
            result.map(|o| (o, None))
        }
        Target::Grpc(connections) => {
            let server = LocalServer::start(Arc::clone(&runtimes.server), store)?;
            let result = server
                .connect(&runtimes.client, connections)
                .and_then(|remote| measured(&remote, None, work));
            server.stop()?;
            result
        }
        Target::GestaV1(connections) => {
            let server = LocalServer::start(Arc::clone(&runtimes.server), store)?;
            let result = server
                .connect_gesta(&runtimes.client, connections)
                .and_then(|remote| measured(&remote, None, work));
            server.stop()?;
            result
        }
        Target::Uma(_) => Err("not a Gesta target".into()),
    }
}

/// Runs `work` through UmaDB's server over the database in `dir`.
fn on_uma(
    connections: usize,
    dir: &std::path::Path,
    runtimes: &Runtimes,
    work: Work<'_>,
) -> Result<(Outcome, Option<Cpu>), HarnessError> {
    let command = runtimes
        .umadb
        .as_deref()
        .ok_or("UmaDB's server command is not known")?;
    let server = UmaServer::start(command, dir, &runtimes.client)?;
    let result = server
        .connect(&runtimes.client, connections)
        .and_then(|remote| measured(&remote, Some(server.pid()), work));
    server.stop();
    result
}

/// Runs `work` on a fresh store on `target`, then deletes the store.
fn on_fresh_store(
    target: Target,
    at: &Location,
    runtimes: &Runtimes,
    name: &str,
    work: impl FnOnce(&dyn gesta::EventStore) -> Result<Outcome, HarnessError>,
) -> Result<(Outcome, Option<Cpu>), HarnessError> {
    let dir = format!("{}-{}", target.key(), name.to_ascii_lowercase());
    if let Target::Uma(connections) = target {
        let dir = at.dir.join(dir);
        let result = on_uma(connections, &dir, runtimes, Box::new(work));
        std::fs::remove_dir_all(&dir)?;
        return result;
    }
    let instance = Instance::fresh(StoreKind::Gesta, at, &dir)?;
    let result = open_measured(&instance)
        .and_then(|store| on_target(target, store, runtimes, Box::new(work)));
    instance.remove()?;
    result
}

/// R2 on every target over one store of the standard data, loaded once
/// (embedded for Gesta; through its server for UmaDB); every target must
/// find the same events.
fn reads(
    config: &ServerConfig,
    at: &Location,
    runtimes: &Runtimes,
    targets: &[Target],
    results: &mut ServerResults,
    bar: &ProgressBar,
) -> Result<(), HarnessError> {
    let instance = Instance::fresh(StoreKind::Gesta, at, "r2-data")?;
    let uma_dir = at.dir.join("r2-umadb");
    let outcome = (|| -> Result<(), HarnessError> {
        // Loaded through the server, as UmaDB's is, so that both hold the
        // same events in the same form (a stream as a metadata entry).
        let Handle::Gesta(store) = instance.open(Mode::Load)? else {
            return Err("not a Gesta store".into());
        };
        let server = LocalServer::start(Arc::clone(&runtimes.server), store)?;
        let loaded = server
            .connect(&runtimes.client, 1)
            .and_then(|remote| workloads::load(&remote, config.sizes.w3));
        server.stop()?;
        loaded?;
        if targets.iter().any(|t| matches!(t, Target::Uma(_))) {
            bar.set_message(format!("R2: loading {} events into UmaDB", config.sizes.w3));
            on_uma(
                1,
                &uma_dir,
                runtimes,
                Box::new(|store| {
                    workloads::load(store, config.sizes.w3)?;
                    Ok(Outcome::default())
                }),
            )?;
        }
        let work = Queries::new();
        let mut expected_hits = None;
        for &target in targets {
            bar.set_message(format!("R2 {}", target.label()));
            let query = Box::new(|store: &dyn gesta::EventStore| {
                workloads::queries(store, &work, ReadKind::Tag, config.sizes.queries)
            });
            let result = match target {
                Target::Uma(connections) => {
                    crate::warm_page_cache(&uma_dir)?;
                    on_uma(connections, &uma_dir, runtimes, query)
                }
                _ => {
                    crate::warm_page_cache(&instance.dir)?;
                    let store = open_measured(&instance)?;
                    on_target(target, store, runtimes, query)
                }
            };
            let result = result.and_then(|(o, cpu)| {
                // The same queries over the same events: the same hits.
                match expected_hits {
                    None if o.extra == 0 => Err("R2 found no events".into()),
                    None => {
                        expected_hits = Some(o.extra);
                        Ok((o, cpu))
                    }
                    Some(hits) if hits != o.extra => Err(format!(
                        "R2 found {} events where the first target found {hits}",
                        o.extra
                    )
                    .into()),
                    Some(_) => Ok((o, cpu)),
                }
            });
            results.record(target, "R2", result);
            bar.inc(1);
        }
        Ok(())
    })();
    instance.remove()?;
    if uma_dir.exists() {
        std::fs::remove_dir_all(&uma_dir)?;
    }
    outcome
}

/// One row of the table.
struct ServerRow {
    workload: &'static str,
    metric: &'static str,
    higher_is_better: bool,
    value: fn(&Outcome) -> Option<f64>,
}

const SERVER_ROWS: &[ServerRow] = &[
    ServerRow {
        workload: "W1",
        metric: "events/s",
        higher_is_better: true,
        value: |o| Some(o.rate()),
    },
    ServerRow {
        workload: "W1",
        metric: "p50 µs ↓",
        higher_is_better: false,
        value: |o| o.quantile_us(0.5),
    },
    ServerRow {
        workload: "W1",
        metric: "p99 µs ↓",
        higher_is_better: false,
        value: |o| o.quantile_us(0.99),
    },
    ServerRow {
        workload: "W2",
        metric: "events/s",
        higher_is_better: true,
        value: |o| Some(o.rate()),
    },
    ServerRow {
        workload: "W2",
        metric: "p99 µs ↓",
        higher_is_better: false,
        value: |o| o.quantile_us(0.99),
    },
    ServerRow {
        workload: "W3",
        metric: "events/s",
        higher_is_better: true,
        value: |o| Some(o.rate()),
    },
    ServerRow {
        workload: "W4",
        metric: "events/s",
        higher_is_better: true,
        value: |o| Some(o.rate()),
    },
    ServerRow {
        workload: "W4",
        metric: "p99 µs ↓",
        higher_is_better: false,
        value: |o| o.quantile_us(0.99),
    },
    ServerRow {
        workload: "R2",
        metric: "queries/s",
        higher_is_better: true,
        value: |o| Some(o.rate()),
    },
    ServerRow {
        workload: "R2",
        metric: "p99 µs ↓",
        higher_is_better: false,
        value: |o| o.quantile_us(0.99),
    },
];

/// One computed row of the JSON.
#[derive(Debug, Serialize)]
pub struct ServerJsonRow {
    /// Workload id.
    pub workload: &'static str,
    /// What the figures are (`↓`: lower is better).
    pub metric: &'static str,
    /// Each target's figure (null: failed).
    pub values: BTreeMap<String, Option<f64>>,
    /// The best gRPC figure divided by the embedded one.
    pub best_grpc_vs_embedded: Option<f64>,
    /// Per connection count, how many times better Gesta's server did
    /// than UmaDB's (for `↓` rows, UmaDB's figure ÷ Gesta's).
    pub gesta_vs_umadb_server: BTreeMap<String, f64>,
}

/// One workload's raw outcome on one target.
#[derive(Debug, Serialize)]
pub struct ServerJsonRaw {
    /// Target key.
    pub target: String,
    /// Workload id.
    pub workload: &'static str,
    /// Operations done.
    pub ops: u64,
    /// Time they took, seconds.
    pub elapsed_s: f64,
    /// Events returned (R2).
    pub extra: u64,
    /// Whether the time budget stopped it early.
    pub cut_short: bool,
    /// Median latency, µs.
    pub p50_us: Option<f64>,
    /// 99th percentile latency, µs.
    pub p99_us: Option<f64>,
    /// CPU the client and the server took (through a server only).
    pub cpu: Option<Cpu>,
}

/// The JSON document of a server-mode run.
#[derive(Debug, Serialize)]
pub struct ServerJsonReport {
    /// Whether the small CI sizes were used.
    pub quick: bool,
    /// The sizes.
    pub sizes: Sizes,
    /// Scratch directory.
    pub scratch_dir: String,
    /// Its file-system type.
    pub fs_type: Option<String>,
    /// The connection counts.
    pub connections: Vec<usize>,
    /// UmaDB's server command, when it ran too.
    pub umadb_server: Option<String>,
    /// The in-process server's worker threads (0: one per core).
    pub server_threads: usize,
    /// Target keys and column labels, in column order.
    pub targets: Vec<(String, String)>,
    /// The table's rows.
    pub rows: Vec<ServerJsonRow>,
    /// Raw outcomes.
    pub raw: Vec<ServerJsonRaw>,
    /// Failures: target, workload, error.
    pub errors: Vec<(String, &'static str, String)>,
}

fn server_rows(config: &ServerConfig, results: &ServerResults) -> Vec<ServerJsonRow> {
    let targets = config.targets();
    SERVER_ROWS
        .iter()
        .filter(|row| config.workloads.contains(&row.workload))
        .map(|row| {
            let value = |t: Target| results.get(t, row.workload).and_then(row.value);
            let grpc = targets
                .iter()
                .filter(|t| matches!(t, Target::Grpc(_)))
                .filter_map(|&t| value(t));
            let best = if row.higher_is_better {
                grpc.max_by(f64::total_cmp)
            } else {
                grpc.min_by(f64::total_cmp)
            };
            let best_grpc_vs_embedded = match (best, value(Target::Embedded)) {
                (Some(g), Some(e)) if e > 0.0 => Some(g / e),
                _ => None,
            };
            let vs_umadb = config
                .connections
                .iter()
                .filter_map(|&n| {
                    let (g, u) = (value(Target::Grpc(n))?, value(Target::Uma(n))?);
                    let ratio = if row.higher_is_better { g / u } else { u / g };
                    ratio.is_finite().then(|| (n.to_string(), ratio))
                })
                .collect();
            ServerJsonRow {
                workload: row.workload,
                metric: row.metric,
                values: targets.iter().map(|&t| (t.key(), value(t))).collect(),
                best_grpc_vs_embedded,
                gesta_vs_umadb_server: vs_umadb,
            }
        })
        .collect()
}

/// Builds the JSON document.
pub fn server_json(config: &ServerConfig, results: &ServerResults) -> ServerJsonReport {
    ServerJsonReport {
        quick: config.quick,
        sizes: config.sizes.clone(),
        scratch_dir: config.dir.display().to_string(),
        fs_type: crate::fs_type(&config.dir),
        connections: config.connections.clone(),
        umadb_server: config
            .umadb_server
            .as_ref()
            .map(|p| p.display().to_string()),
        server_threads: config.server_threads,
        targets: config
            .targets()
            .into_iter()
            .map(|t| (t.key(), t.label()))
            .collect(),
        rows: server_rows(config, results),
        raw: results
            .measured
            .iter()
            .map(|m| ServerJsonRaw {
                target: m.target.key(),
                workload: m.workload,
                ops: m.outcome.ops,
                elapsed_s: m.outcome.elapsed.as_secs_f64(),
                extra: m.outcome.extra,
                cut_short: m.outcome.cut_short,
                p50_us: m.outcome.quantile_us(0.5),
                p99_us: m.outcome.quantile_us(0.99),
                cpu: m.cpu,
            })
            .collect(),
        errors: results
            .errors
            .iter()
            .map(|(t, w, e)| (t.key(), *w, e.clone()))
            .collect(),
    }
}

/// The markdown report: a heading line, the table, and notes.
pub fn server_markdown(config: &ServerConfig, results: &ServerResults) -> String {
    let mut s = String::new();
    let targets = config.targets();
    let fs = crate::fs_type(&config.dir).unwrap_or_else(|| "file system unknown".into());
    let _ = writeln!(
        s,
        "## gesta-bench --server{}{} (scratch dir {}, {fs})\n",
        if config.quick {
            " --quick: CI sizes, not figures to quote"
        } else {
            ""
        },
        match config.server_threads {
            0 => String::new(),
            n => format!(" --server-threads {n}"),
        },
        config.dir.display()
    );
    let uma = config.umadb_server.is_some();
    let _ = write!(s, "| workload | metric |");
    for t in &targets {
        let _ = write!(s, " {} |", t.label());
        if let Target::Uma(n) = t {
            let _ = write!(s, " Gesta ÷ UmaDB ×{n} |");
        }
    }
    let _ = writeln!(s, " best gRPC ÷ embedded |");
    let _ = write!(s, "|---|---|");
    for t in &targets {
        let _ = write!(s, "---:|");
        if let Target::Uma(_) = t {
            let _ = write!(s, "---:|");
        }
    }
    let _ = writeln!(s, "---:|");
    let mut cut = false;
    for row in server_rows(config, results) {
        let _ = write!(s, "| {} | {} |", row.workload, row.metric);
        for &t in &targets {
            let cell = match row.values.get(&t.key()).copied().flatten() {
                Some(v) => {
                    let short = results.get(t, row.workload).is_some_and(|o| o.cut_short);
                    cut |= short;
                    format!("{}{}", fmt_num(v), if short { "*" } else { "" })
                }
                None if results
                    .errors
                    .iter()
                    .any(|(et, w, _)| *et == t && *w == row.workload) =>
                {
                    "error".to_owned()
                }
                None => "–".to_owned(),
            };
            let _ = write!(s, " {cell} |");
            if let Target::Uma(n) = t {
                let ratio = row
                    .gesta_vs_umadb_server
                    .get(&n.to_string())
                    .map_or("–".to_owned(), |r| format!("**{r:.2}×**"));
                let _ = write!(s, " {ratio} |");
            }
        }
        let ratio = row
            .best_grpc_vs_embedded
            .map_or("–".to_owned(), |r| format!("{r:.2}×"));
        let _ = writeln!(s, " {ratio} |");
    }
    cpu_table(&mut s, config, results);
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "↓: lower is better. gRPC ×N: the server in this process on a loopback port, \
         the client's calls spread over N HTTP/2 connections in turn; the workloads' own \
         concurrency is unchanged (W1, W3 and R2 one thread, W2 and W4 16 writers), so \
         beyond 16 connections some stay idle. Both sides share the machine's cores. \
         Streams travel as metadata over gRPC (the protocol has none), so the server \
         assigns no stream revisions.{}",
        if uma {
            " UmaDB server ×N: UmaDB's own server (a child process) through the same client; \
             Gesta ÷ UmaDB: how many times better Gesta's server did at N connections \
             (for ↓ rows, UmaDB's figure ÷ Gesta's)."
        } else {
            ""
        }
    );
    if config.gesta_v1 {
        let _ = writeln!(
            s,
            "gesta.v1 ×N: the same server's `gesta.v1` service through the server crate's \
             client (`GestaClient`), its reads lent (`read_each`); streams are the \
             protocol's own there, with their revisions."
        );
    }
    if cut {
        let _ = writeln!(
            s,
            "*: stopped when its time budget ({} s) ran out; the rate is over what it did.",
            fmt_num(config.sizes.budget_secs)
        );
    }
    for (target, workload, error) in &results.errors {
        let _ = writeln!(s, "- {} {workload} failed: {error}", target.label());
    }
    s
}

/// The CPU each side took per operation, the client's share of it, and
/// the cores both kept busy: whether the shared machine, and which side of
/// it, bounds a figure.
fn cpu_table(s: &mut String, config: &ServerConfig, results: &ServerResults) {
    let targets: Vec<Target> = config
        .targets()
        .into_iter()
        .filter(|t| t.is_remote())
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let _ = writeln!(
        s,
        "\nCPU per operation (client and server share the machine's {cores} cores):\n"
    );
    let _ = writeln!(
        s,
        "| workload | target | ops/s | client µs/op | server µs/op | client share | cores busy | server CPU ceiling ops/s |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
    for &workload in &config.workloads {
        for &t in &targets {
            let Some(m) = results.find(t, workload) else {
                continue;
            };
            let Some(cpu) = m.cpu else {
                continue;
            };
            let per_op = |secs: f64| fmt_num(secs * 1e6 / m.outcome.ops.max(1) as f64);
            // What the server's CPU alone would allow with every core to
            // itself (a client on another machine): no bound on latency.
            let ceiling = (cpu.server_s > 0.0)
                .then(|| cores as f64 * m.outcome.ops as f64 / cpu.server_s)
                .map_or("–".to_owned(), fmt_num);
            let _ = writeln!(
                s,
                "| {workload} | {} | {} | {} | {} | {} | {:.2} | {ceiling} |",
                t.label(),
                fmt_num(m.outcome.rate()),
                per_op(cpu.client_s),
                per_op(cpu.server_s),
                cpu.client_share()
                    .map_or("–".to_owned(), |c| format!("{:.0}%", c * 100.0)),
                cpu.cores_busy()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lists_pick_the_server_workloads() {
        assert_eq!(ServerConfig::pick(None).unwrap(), SERVER_WORKLOADS);
        assert_eq!(ServerConfig::pick(Some("r2,w1,W5")).unwrap(), ["W1", "R2"]);
        assert!(ServerConfig::pick(Some("W5,R1")).is_err());
        assert!(ServerConfig::pick(Some("W9")).is_err());
    }
}
