//! `gesta-server DIR`: serves a Gesta store over gRPC — UmaDB's DCB
//! protocol and `gesta.v1.Gesta` — until SIGINT or SIGTERM (the same as
//! `gesta serve`).

use std::process::ExitCode;

use clap::Parser;
use gesta_server::command::{ServeArgs, run};

/// Serve a Gesta store over gRPC (UmaDB's umadb.v1.DCB protocol and gesta.v1.Gesta).
#[derive(Parser, Debug)]
#[command(name = "gesta-server", version)]
struct Cli {
    #[command(flatten)]
    args: ServeArgs,
}

fn main() -> ExitCode {
    match run(Cli::parse().args, "gesta-server") {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gesta-server: {e}");
            ExitCode::FAILURE
        }
    }
}
