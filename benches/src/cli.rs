//! The comparison harness's command line, shared by the `gesta-bench`
//! binary and `gesta bench`: the flags ([`BenchArgs`]) and what they run
//! ([`run`]).

use std::path::PathBuf;

use crate::harness::{self, Config, HarnessError, Sizes, charts, report, stores::StoreKind};

/// Compares Gesta with SQLite, PostgreSQL and UmaDB on the workloads of
/// BENCH.md.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BenchArgs {
    /// Small sizes, for CI (the figures are not for quoting).
    #[arg(long)]
    pub quick: bool,
    /// Only these workloads, comma-separated (W1–W5, R1–R7, S1, O1, M1, D1).
    #[arg(long, value_name = "IDS")]
    pub only: Option<String>,
    /// Scratch directory for the stores and disk probes (default: as the
    /// benchmarks choose, on a real disk; `GESTA_BENCH_DIR` overrides it).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// PostgreSQL URL; PostgreSQL is compared only when it is given.
    #[arg(long, env = "GESTA_POSTGRES_URL", value_name = "URL")]
    pub postgres_url: Option<String>,
    /// Where to write the figures as JSON. The HTML report goes beside it
    /// (same name, `.html`), with one SVG chart per workload.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Runs nothing: draws the HTML report and SVG charts of an earlier
    /// run from its JSON, beside that file.
    #[arg(long, value_name = "JSON", conflicts_with_all = ["server", "quick", "only", "json"])]
    pub render: Option<PathBuf>,
    /// Longest each write workload may run before it stops early, seconds
    /// (default 30, or 5 with --quick).
    #[arg(long, value_name = "SECS")]
    pub budget: Option<f64>,
    /// Gesta through its gRPC server (started in this process, on a
    /// loopback port) beside embedded Gesta: W1–W4 and R2 only, at 1, 16
    /// and 64 client connections. Needs gesta-benches' `server` feature.
    #[arg(long)]
    pub server: bool,
    /// With --server, also run every workload on UmaDB's own server (a
    /// child process) through the same client.
    #[arg(long, requires = "server")]
    pub umadb_server: bool,
    /// With --server, also run every workload through the server's own
    /// `gesta.v1` service with the server crate's client.
    #[arg(long, requires = "server")]
    pub gesta_v1: bool,
    /// UmaDB's server command for --umadb-server: the `umadb` command of
    /// the `umadb` package on PyPI, which `.ci/umadb-server.sh` installs
    /// (and sets GESTA_UMADB_SERVER to).
    #[arg(long, env = "GESTA_UMADB_SERVER", value_name = "PATH")]
    pub umadb_command: Option<PathBuf>,
    /// The client connection counts of --server, comma-separated.
    #[arg(
        long,
        value_name = "N,N,..",
        value_delimiter = ',',
        requires = "server"
    )]
    pub connections: Option<Vec<usize>>,
    /// With --server, the in-process server's worker threads, as `gesta
    /// serve --worker-threads` (0: one per core, its default).
    #[arg(long, value_name = "N", default_value_t = 0, requires = "server")]
    pub server_threads: usize,
}

fn default_json(name: &str) -> PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().unwrap_or(manifest);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), PathBuf::from);
    target.join(name)
}

fn write_json(path: &std::path::Path, json: String) -> Result<(), HarnessError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, json + "\n")?;
    eprintln!("figures written to {}", path.display());
    Ok(())
}

/// Runs the harness as the flags say: prints the markdown table on stdout
/// and writes the figures as JSON, and beside it the HTML report and its
/// SVG charts (or, with `--render`, only draws an earlier run's).
pub fn run(args: BenchArgs) -> Result<(), HarnessError> {
    if let Some(json) = &args.render {
        charts::render_file(json)?;
        return Ok(());
    }
    let mut sizes = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    if let Some(secs) = args.budget {
        if !secs.is_finite() || secs <= 0.0 {
            return Err("--budget must be positive".into());
        }
        sizes.budget_secs = secs;
    }
    if args.server {
        return run_server(args, sizes);
    }
    let postgres_url = args.postgres_url.filter(|u| !u.is_empty());
    let config = Config {
        quick: args.quick,
        sizes,
        workloads: Config::parse_only(args.only.as_deref())?,
        stores: StoreKind::available(postgres_url.as_deref()),
        dir: args.dir.unwrap_or_else(crate::bench_root),
        postgres_url,
    };
    let results = harness::run(&config)?;
    print!("{}", report::markdown(&config, &results));
    let path = args
        .json
        .unwrap_or_else(|| default_json("gesta-bench.json"));
    write_json(
        &path,
        serde_json::to_string_pretty(&report::json(&config, &results))?,
    )?;
    // Drawn from the JSON just written, as --render draws it.
    charts::render_file(&path)?;
    if results.errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{} workload(s) failed", results.errors.len()).into())
    }
}

/// `--server`: embedded Gesta and Gesta through gRPC, side by side; the
/// JSON goes to `gesta-bench-server.json` unless `--json` says otherwise.
#[cfg(feature = "server")]
fn run_server(args: BenchArgs, sizes: Sizes) -> Result<(), HarnessError> {
    use crate::harness::server_mode::{self, DEFAULT_CONNECTIONS, ServerConfig};
    let config = ServerConfig {
        quick: args.quick,
        sizes,
        workloads: ServerConfig::pick(args.only.as_deref())?,
        connections: args
            .connections
            .unwrap_or_else(|| DEFAULT_CONNECTIONS.to_vec()),
        dir: args.dir.unwrap_or_else(crate::bench_root),
        umadb_server: match (args.umadb_server, args.umadb_command) {
            (false, _) => None,
            (true, Some(command)) if !command.as_os_str().is_empty() => Some(command),
            (true, _) => {
                return Err("--umadb-server needs UmaDB's server: run under \
                     .ci/umadb-server.sh (it installs it and sets GESTA_UMADB_SERVER) \
                     or give --umadb-command"
                    .into());
            }
        },
        gesta_v1: args.gesta_v1,
        server_threads: args.server_threads,
    };
    let results = server_mode::run_server(&config)?;
    print!("{}", server_mode::server_markdown(&config, &results));
    let path = args
        .json
        .unwrap_or_else(|| default_json("gesta-bench-server.json"));
    write_json(
        &path,
        serde_json::to_string_pretty(&server_mode::server_json(&config, &results))?,
    )?;
    if results.errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{} workload(s) failed", results.errors.len()).into())
    }
}

#[cfg(not(feature = "server"))]
fn run_server(_args: BenchArgs, _sizes: Sizes) -> Result<(), HarnessError> {
    Err(
        "--server needs gesta-benches built with the `server` feature \
         (cargo run --release -p gesta-benches --features server --bin gesta-bench -- --server)"
            .into(),
    )
}
