//! `gesta-bench`: the comparison harness. Runs the workloads of
//! `BENCH.md` against Gesta, SQLite (FULL and NORMAL), PostgreSQL (with
//! `--postgres-url` or `GESTA_POSTGRES_URL`) and UmaDB (built with
//! `--features umadb`), prints one markdown table and writes the figures as
//! JSON. `gesta bench` runs the same with the same flags.
//!
//! ```text
//! cargo run --release -p gesta-benches --bin gesta-bench -- --quick
//! cargo run --release -p gesta-benches --bin gesta-bench -- --only W2,R2
//! ```

use std::process::ExitCode;

use clap::Parser;
use gesta_benches::cli::{self, BenchArgs};

/// Compares Gesta with SQLite, PostgreSQL and UmaDB on the workloads of
/// BENCH.md.
#[derive(Parser, Debug)]
#[command(name = "gesta-bench", version)]
struct Args {
    #[command(flatten)]
    bench: BenchArgs,
}

fn main() -> ExitCode {
    match cli::run(Args::parse().bench) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gesta-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
