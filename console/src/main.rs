//! `gesta-console`: the console on its own, with the options of
//! `gesta console`.

use std::process::ExitCode;

use clap::Parser;

/// Serve a web console for a Gesta store.
#[derive(Parser, Debug)]
#[command(name = "gesta-console", version, after_help = gesta_console::command::AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    args: gesta_console::command::ConsoleArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match gesta_console::command::run(cli.args, "gesta-console") {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gesta-console: {e}");
            ExitCode::FAILURE
        }
    }
}
