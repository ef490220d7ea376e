//! `gesta bench`: the comparison harness of `gesta-benches`, with its flags
//! (with the `bench` feature; without it, a message that says how to get it).

use crate::failure::Failure;

pub const AFTER_HELP: &str = "\
Runs the workloads of BENCH.md against Gesta, SQLite (FULL and NORMAL) and, given --postgres-url, PostgreSQL;
prints a markdown table and writes the figures as JSON. Same flags as the gesta-bench binary.
Build with --release: a debug build measures the compiler, not the store.

Needs the `bench` feature (it brings SQLite and the PostgreSQL client into the build).

Examples:
  cargo run --release -p gesta-cli --features bench -- bench --quick
  cargo run --release -p gesta-cli --features bench -- bench --only W2,R2 --budget 10
  cargo run --release -p gesta-cli --features bench -- bench --postgres-url postgres://localhost/gesta --json figures.json
  cargo run --release -p gesta-cli --features bench -- bench --server --connections 1,16   # W1-W4, R2: embedded vs through gRPC";

#[cfg(feature = "bench")]
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    bench: gesta_benches::cli::BenchArgs,
}

#[cfg(feature = "bench")]
pub fn run(args: Args) -> Result<(), Failure> {
    gesta_benches::cli::run(args.bench).map_err(Failure::new)
}

#[cfg(not(feature = "bench"))]
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The harness's flags.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    flags: Vec<String>,
}

#[cfg(not(feature = "bench"))]
pub fn run(_args: Args) -> Result<(), Failure> {
    Err(Failure::new(
        "this gesta was built without the comparison harness: run it with \
         `cargo run --release -p gesta-cli --features bench -- bench …` \
         or `cargo run --release -p gesta-benches --bin gesta-bench -- …`",
    ))
}
