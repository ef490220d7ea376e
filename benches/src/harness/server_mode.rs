//! The comparison's `--server` mode (feature `server`): W1–W4 and R2 on
//! embedded Gesta and on Gesta through its gRPC server at several client
//! connection counts, in one run so that the ratios hold; its table and
//! JSON.
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

use super::remote::{LocalServer, RemoteStore};
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
}

impl Target {
    /// The column heading.
    pub fn label(self) -> String {
        match self {
            Target::Embedded => "embedded".to_owned(),
            Target::Grpc(n) => format!("gRPC ×{n}"),
        }
    }

    /// A short name for directories and JSON keys.
    pub fn key(self) -> String {
        match self {
            Target::Embedded => "embedded".to_owned(),
            Target::Grpc(n) => format!("grpc_x{n}"),
        }
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
}

impl ServerConfig {
    /// The columns: embedded, then gRPC at each connection count.
    pub fn targets(&self) -> Vec<Target> {
        std::iter::once(Target::Embedded)
            .chain(self.connections.iter().map(|&n| Target::Grpc(n)))
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
        self.measured
            .iter()
            .find(|m| m.target == target && m.workload == workload)
            .map(|m| &m.outcome)
    }

    fn record(
        &mut self,
        target: Target,
        workload: &'static str,
        result: Result<Outcome, HarnessError>,
    ) {
        match result {
            Ok(outcome) => self.measured.push(ServerMeasured {
                target,
                workload,
                outcome,
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
    let runtime = super::remote::runtime()?;
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
            if let Err(e) = reads(config, &at, &runtime, &targets, &mut results, &bar) {
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
            let result = on_fresh_store(target, &at, &runtime, id, |store| {
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

/// Runs `work` on `store` directly or through a server of its own, then
/// stops the server and closes the store.
fn on_target(
    target: Target,
    store: gesta::Store,
    runtime: &Arc<tokio::runtime::Runtime>,
    work: impl FnOnce(&dyn gesta::EventStore) -> Result<Outcome, HarnessError>,
) -> Result<Outcome, HarnessError> {
    match target {
        Target::Embedded => {
            let result = work(&store);
            store.close()?;
            result
        }
        Target::Grpc(connections) => {
            let server = LocalServer::start(Arc::clone(runtime), store)?;
            let result = server
                .connect(connections)
                .and_then(|remote: RemoteStore| work(&remote));
            server.stop()?;
            result
        }
    }
}

/// Runs `work` on a fresh store on `target`, then deletes the store.
fn on_fresh_store(
    target: Target,
    at: &Location,
    runtime: &Arc<tokio::runtime::Runtime>,
    name: &str,
    work: impl FnOnce(&dyn gesta::EventStore) -> Result<Outcome, HarnessError>,
) -> Result<Outcome, HarnessError> {
    let dir = format!("{}-{}", target.key(), name.to_ascii_lowercase());
    let instance = Instance::fresh(StoreKind::Gesta, at, &dir)?;
    let result = open_measured(&instance).and_then(|store| on_target(target, store, runtime, work));
    instance.remove()?;
    result
}

/// R2 on every target over one store of the standard data, loaded once;
/// every target must find the same events.
fn reads(
    config: &ServerConfig,
    at: &Location,
    runtime: &Arc<tokio::runtime::Runtime>,
    targets: &[Target],
    results: &mut ServerResults,
    bar: &ProgressBar,
) -> Result<(), HarnessError> {
    let instance = Instance::fresh(StoreKind::Gesta, at, "r2-data")?;
    let outcome = (|| -> Result<(), HarnessError> {
        let handle = instance.open(Mode::Load)?;
        workloads::load(handle.store(), config.sizes.w3)?;
        handle.close()?;
        let work = Queries::new();
        let mut expected_hits = None;
        for &target in targets {
            bar.set_message(format!("R2 {}", target.label()));
            crate::warm_page_cache(&instance.dir)?;
            let store = open_measured(&instance)?;
            let result = on_target(target, store, runtime, |store| {
                workloads::queries(store, &work, ReadKind::Tag, config.sizes.queries)
            })
            .and_then(|o| {
                // The same queries over the same events: the same hits.
                match expected_hits {
                    None if o.extra == 0 => Err("R2 found no events".into()),
                    None => {
                        expected_hits = Some(o.extra);
                        Ok(o)
                    }
                    Some(hits) if hits != o.extra => Err(format!(
                        "R2 found {} events where the first target found {hits}",
                        o.extra
                    )
                    .into()),
                    Some(_) => Ok(o),
                }
            });
            results.record(target, "R2", result);
            bar.inc(1);
        }
        Ok(())
    })();
    instance.remove()?;
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
                .filter(|t| **t != Target::Embedded)
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
            ServerJsonRow {
                workload: row.workload,
                metric: row.metric,
                values: targets.iter().map(|&t| (t.key(), value(t))).collect(),
                best_grpc_vs_embedded,
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
        "## gesta-bench --server{} (scratch dir {}, {fs})\n",
        if config.quick {
            " --quick: CI sizes, not figures to quote"
        } else {
            ""
        },
        config.dir.display()
    );
    let _ = write!(s, "| workload | metric |");
    for t in &targets {
        let _ = write!(s, " {} |", t.label());
    }
    let _ = writeln!(s, " best gRPC ÷ embedded |");
    let _ = write!(s, "|---|---|");
    for _ in &targets {
        let _ = write!(s, "---:|");
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
        }
        let ratio = row
            .best_grpc_vs_embedded
            .map_or("–".to_owned(), |r| format!("{r:.2}×"));
        let _ = writeln!(s, " {ratio} |");
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "↓: lower is better. gRPC ×N: the server in this process on a loopback port, \
         the client's calls spread over N HTTP/2 connections in turn; the workloads' own \
         concurrency is unchanged (W1, W3 and R2 one thread, W2 and W4 16 writers), so \
         beyond 16 connections some stay idle. Both sides share the machine's cores. \
         Streams travel as metadata over gRPC (the protocol has none), so the server \
         assigns no stream revisions."
    );
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
