//! `gesta-bench`: the comparison harness. Runs the workloads of
//! `BENCH.md` against Gesta, SQLite (FULL and NORMAL), PostgreSQL (with
//! `--postgres-url` or `GESTA_POSTGRES_URL`) and UmaDB (built with
//! `--features umadb`), prints one markdown table and writes the figures as
//! JSON.
//!
//! ```text
//! cargo run --release -p gesta-benches --bin gesta-bench -- --quick
//! cargo run --release -p gesta-benches --bin gesta-bench -- --only W2,R2
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gesta_benches::harness::{self, Config, Sizes, report, stores::StoreKind};

/// Compares Gesta with SQLite, PostgreSQL and UmaDB on the workloads of
/// BENCH.md.
#[derive(Parser, Debug)]
#[command(name = "gesta-bench", version)]
struct Args {
    /// Small sizes, for CI (the figures are not for quoting).
    #[arg(long)]
    quick: bool,
    /// Only these workloads, comma-separated (W1–W5, R1–R4, S1, O1, M1, D1).
    #[arg(long, value_name = "IDS")]
    only: Option<String>,
    /// Scratch directory for the stores and disk probes (default: as the
    /// benchmarks choose, on a real disk; `GESTA_BENCH_DIR` overrides it).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// PostgreSQL URL; PostgreSQL is compared only when it is given.
    #[arg(long, env = "GESTA_POSTGRES_URL", value_name = "URL")]
    postgres_url: Option<String>,
    /// Where to write the figures as JSON.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Longest each write workload may run before it stops early, seconds
    /// (default 30, or 5 with --quick).
    #[arg(long, value_name = "SECS")]
    budget: Option<f64>,
}

fn default_json() -> PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().unwrap_or(manifest);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), PathBuf::from);
    target.join("gesta-bench.json")
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gesta-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), harness::HarnessError> {
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
    let postgres_url = args.postgres_url.filter(|u| !u.is_empty());
    let config = Config {
        quick: args.quick,
        sizes,
        workloads: Config::parse_only(args.only.as_deref())?,
        stores: StoreKind::available(postgres_url.as_deref()),
        dir: args.dir.unwrap_or_else(gesta_benches::bench_root),
        postgres_url,
    };
    let results = harness::run(&config)?;
    print!("{}", report::markdown(&config, &results));
    let path = args.json.unwrap_or_else(default_json);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let json = serde_json::to_string_pretty(&report::json(&config, &results))?;
    std::fs::write(&path, json + "\n")?;
    eprintln!("figures written to {}", path.display());
    if results.errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{} workload(s) failed", results.errors.len()).into())
    }
}
