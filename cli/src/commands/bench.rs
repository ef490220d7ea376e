//! `gesta bench`: the comparison harness of `gesta-benches`, with its flags.

use gesta_benches::cli::BenchArgs;

use crate::failure::Failure;

pub const AFTER_HELP: &str = "\
Runs the workloads of BENCH.md against Gesta, SQLite (FULL and NORMAL) and, given --postgres-url, PostgreSQL;
prints a markdown table and writes the figures as JSON. Same flags as the gesta-bench binary.
Build with --release: a debug build measures the compiler, not the store.

Examples:
  cargo run --release -p gesta-cli -- bench --quick
  cargo run --release -p gesta-cli -- bench --only W2,R2 --budget 10
  cargo run --release -p gesta-cli -- bench --postgres-url postgres://localhost/gesta --json figures.json
  cargo run --release -p gesta-cli -- bench --server --connections 1,16   # W1-W4, R2: embedded vs through gRPC";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    bench: BenchArgs,
}

pub fn run(args: Args) -> Result<(), Failure> {
    gesta_benches::cli::run(args.bench).map_err(Failure::new)
}
