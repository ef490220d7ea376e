//! `gesta`: the command-line tool for Gesta stores — append and read events
//! as JSON lines, inspect and verify a store, export and import it, run the
//! demo and the comparison harness.
//!
//! Each subcommand lives in its own module under `commands/`; a new one is
//! a variant of [`Command`] and a module.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod commands;
mod failure;
mod progress;
mod query;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::commands::{
    append, audit, backup, bench, compact, console, demo, export, forget, get, list, read, redact,
    remove, restore, retention, serve, snapshot, stats, tag, verify,
};

const AFTER_HELP: &str = "\
Examples:
  gesta demo                                  # a tour in a temporary directory
  echo '{\"type\":\"CourseDefined\",\"tags\":[\"course:c1\"],\"data\":{\"seats\":30}}' | gesta append ./events
  gesta read ./events --tag course:c1 --limit 10
  gesta read ./events --stream course-c1          # a stream, by revision
  gesta get ./events --id 0b6c3a52-6f3e-4d2a-9a8e-1f2d3c4b5a69
  gesta streams ./events --prefix course-       # streams, types, tags with counts
  gesta tag ./events --add gdpr:s7 --tag student:s7   # add a tag to the events about s7
  gesta redact ./events --tag gdpr:s7 --yes     # erase their data and metadata, for good
  gesta audit ./events                          # what was changed, when, and how
  gesta stats ./events
  gesta verify ./events
  gesta export ./events > events.jsonl && gesta import ./copy < events.jsonl

Every error is one line on stderr. Exit status: 0 success, 1 failure,
2 bad usage, 3 an append's condition or expected revision failed, 4 an
append's outcome is unknown (check the store before retrying).";

const SERVE_AFTER_HELP: &str = "\
Serves umadb.v1.DCB (Read, Subscribe, Append, Head, GetTrackingInfo), gesta.v1.Gesta (streams, lookups by id and
time, listings, durable subscriptions, snapshots, retroactive tags, redaction and their audit trail) and the
standard gRPC health service until SIGINT or SIGTERM, then finishes the calls in flight and closes the store.
UmaDB's clients (Rust, Python, .NET, Java, PHP, Elixir) work unchanged. Plaintext on loopback by default; --api-key
requires TLS unless --insecure-loopback-api-key and a loopback address. The bytes a redaction erased leave the
store's files at the next `gesta compact`, run while the server is stopped.

--encrypt, or a key file DIR/KEYS (crypto-shredding, see `gesta forget --help`), serves the store through its
encryption wrapper on both services: events tagged subject:NAME are sealed on append and opened on read, and
gesta.v1 Forget destroys a subject's key. With --tenants, so is each tenant whose directory holds KEYS, or every
tenant with --encrypt.
--backup-dir ROOT allows gesta.v1 Backup calls, each writing a new directory under ROOT only (an encrypted
store's backups hold no key: see `gesta backup --help`).
--tenants serves the tenants under DIR (DIR/tenants/NAME): each call's API key, from --tenant-keys FILE (lines of
`TENANT KEY`), names the one tenant it reaches.
--metrics ADDR serves Prometheus metrics at http://ADDR/metrics. Logs go to stderr through `tracing`, filtered
by RUST_LOG (default info; RUST_LOG=gesta=debug adds the store's commit and compaction spans).

Examples:
  gesta serve ./events
  gesta serve ./events --metrics 127.0.0.1:9464 --backup-dir /var/backups/events
  gesta serve ./events --console 127.0.0.1:8080     # and the read-only web console beside it
  gesta serve ./tenants-root --tenants --tenant-keys keys.txt --tls-cert cert.pem --tls-key key.pem
  gesta serve ./events --listen 0.0.0.0:50051 --tls-cert cert.pem --tls-key key.pem --api-key \"$KEY\"";

/// Operate a Gesta event store from the shell.
#[derive(Parser, Debug)]
#[command(name = "gesta", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Append events read as JSON lines from standard input.
    #[command(after_help = append::AFTER_HELP)]
    Append(append::Args),
    /// Print matching events as JSON lines.
    #[command(after_help = read::AFTER_HELP)]
    Read(read::Args),
    /// Print the event with an id.
    #[command(after_help = get::AFTER_HELP)]
    Get(get::Args),
    /// List the streams with their counts of events.
    #[command(after_help = list::STREAMS_AFTER_HELP)]
    Streams(list::Args),
    /// List the event types with their counts of events.
    #[command(after_help = list::TYPES_AFTER_HELP)]
    Types(list::Args),
    /// List the tags with their counts of events.
    #[command(after_help = list::TAGS_AFTER_HELP)]
    Tags(list::Args),
    /// Add tags to committed events, by position or by query (retroactive tags).
    #[command(after_help = tag::AFTER_HELP)]
    Tag(tag::Args),
    /// Erase the data and metadata of committed events, for good, by position or by query.
    #[command(after_help = redact::AFTER_HELP)]
    Redact(redact::Args),
    /// Destroy a subject's key in an encrypted store: its events' data is unreadable at once.
    #[command(after_help = forget::AFTER_HELP)]
    Forget(forget::Args),
    /// Remove committed events from every read, by position or by query.
    #[command(after_help = remove::remove_after_help())]
    Remove(remove::RemoveArgs),
    /// Remove every event of a stream (a soft delete).
    #[command(after_help = remove::delete_after_help())]
    DeleteStream(remove::DeleteArgs),
    /// Remove a stream's events below a revision.
    #[command(after_help = remove::truncate_after_help())]
    TruncateStream(remove::TruncateArgs),
    /// List, set, clear and enforce retention rules (max age, max count).
    #[command(after_help = retention::AFTER_HELP)]
    Retention(retention::Args),
    /// List the audit trail: every operation that changed committed events.
    #[command(after_help = audit::AFTER_HELP)]
    Audit(audit::Args),
    /// Count what a store holds and what it takes on disk.
    #[command(after_help = stats::AFTER_HELP)]
    Stats(stats::Args),
    /// Check every record, offset table, index run, snapshot and cursor of a store; report every problem.
    #[command(after_help = verify::AFTER_HELP)]
    Verify(verify::Args),
    /// Flush the index and merge its runs into one, now.
    #[command(after_help = compact::AFTER_HELP)]
    Compact(compact::Args),
    /// Copy a store consistently into a new directory that opens as a store.
    #[command(after_help = backup::AFTER_HELP)]
    Backup(backup::Args),
    /// List, load, save and delete the snapshots of a key.
    #[command(after_help = snapshot::AFTER_HELP)]
    Snapshot(snapshot::Args),
    /// Write every event of a store as JSON lines.
    #[command(after_help = export::EXPORT_AFTER_HELP)]
    Export(export::ExportArgs),
    /// Append JSON lines (as `export` writes them) in large batches.
    #[command(after_help = export::IMPORT_AFTER_HELP)]
    Import(export::ImportArgs),
    /// Courses and students: DCB conditional appends under concurrency.
    #[command(after_help = demo::AFTER_HELP)]
    Demo(demo::Args),
    /// Serve a web console to look at a store in a browser.
    #[command(after_help = console::AFTER_HELP)]
    Console(console::Args),
    /// Serve a store over gRPC, speaking UmaDB's DCB protocol.
    #[command(after_help = format!("{SERVE_AFTER_HELP}\n{}", serve::SHIP_AFTER_HELP))]
    Serve(Box<serve::Args>),
    /// Rebuild a store from the bucket it was shipped to (gesta serve --ship-to).
    #[command(after_help = restore::AFTER_HELP)]
    Restore(restore::Args),
    /// Compare Gesta with SQLite and PostgreSQL (the comparison harness).
    #[command(after_help = bench::AFTER_HELP)]
    Bench(bench::Args),
}

/// A usage error as one line: clap's message up to its first blank line
/// (without the usage block and tips that follow), and where help is.
fn usage_error(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.split("\n\n").next().unwrap_or_default();
    let message = first
        .trim_start_matches("error: ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let args: Vec<String> = std::env::args().skip(1).take(1).collect();
    let command = match args.first() {
        Some(sub) if Cli::command().find_subcommand(sub).is_some() => format!("gesta {sub}"),
        _ => "gesta".to_owned(),
    };
    format!("{message} (see {command} --help)")
}

fn main() -> ExitCode {
    use clap::error::ErrorKind;
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            e.exit()
        }
        Err(e) => {
            eprintln!("gesta: {}", usage_error(&e));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Append(a) => append::run(a),
        Command::Read(a) => read::run(a),
        Command::Get(a) => get::run(a),
        Command::Streams(a) => list::run(gesta::Listing::Streams, a),
        Command::Types(a) => list::run(gesta::Listing::Types, a),
        Command::Tags(a) => list::run(gesta::Listing::Tags, a),
        Command::Tag(a) => tag::run(a),
        Command::Redact(a) => redact::run(a),
        Command::Forget(a) => forget::run(a),
        Command::Remove(a) => remove::remove(a),
        Command::DeleteStream(a) => remove::delete(a),
        Command::TruncateStream(a) => remove::truncate(a),
        Command::Retention(a) => retention::run(a),
        Command::Audit(a) => audit::run(a),
        Command::Stats(a) => stats::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Compact(a) => compact::run(a),
        Command::Backup(a) => backup::run(a),
        Command::Snapshot(a) => snapshot::run(a),
        Command::Export(a) => export::export(a),
        Command::Import(a) => export::import(a),
        Command::Demo(a) => demo::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Console(a) => console::run(a),
        Command::Serve(a) => serve::run(*a),
        Command::Restore(a) => restore::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("gesta: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// The store directory argument, shared by the subcommands.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreDir {
    /// The store's directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}
