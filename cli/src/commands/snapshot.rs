//! `gesta snapshot …`: look at and manage the snapshots stored for a key.

use std::io::{Read, Write};

use crate::failure::{Failure, open_existing};

pub const AFTER_HELP: &str = "\
Snapshots are opaque states an application saves for a key at a position (see Store::save_snapshot and
projections); they are stored compressed and checksummed. These commands open the store, so it must not be
open elsewhere.

Examples:
  gesta snapshot list ./events course-list
  gesta snapshot load ./events course-list > state.bin             # the newest
  gesta snapshot load ./events course-list --at 5000 > state.bin   # the newest at or before 5000
  gesta snapshot save ./events course-list --position 5000 < state.bin
  gesta snapshot delete ./events course-list --position 5000";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// The positions of a key's snapshots, one per line, oldest first.
    List {
        /// The store's directory.
        dir: std::path::PathBuf,
        /// The snapshot key.
        key: String,
    },
    /// Write a snapshot's state to standard output.
    Load {
        /// The store's directory.
        dir: std::path::PathBuf,
        /// The snapshot key.
        key: String,
        /// The newest snapshot at or before this position (default: the newest).
        #[arg(long, value_name = "POSITION")]
        at: Option<u64>,
    },
    /// Save standard input as a key's state at a position.
    Save {
        /// The store's directory.
        dir: std::path::PathBuf,
        /// The snapshot key.
        key: String,
        /// The position whose events the state includes.
        #[arg(long, value_name = "POSITION")]
        position: u64,
    },
    /// Delete a key's snapshot at a position.
    Delete {
        /// The store's directory.
        dir: std::path::PathBuf,
        /// The snapshot key.
        key: String,
        /// The snapshot's position.
        #[arg(long, value_name = "POSITION")]
        position: u64,
    },
}

pub fn run(args: Args) -> Result<(), Failure> {
    match args.command {
        Command::List { dir, key } => {
            let store = open_existing(&dir)?;
            for position in store.list_snapshots(&key)? {
                println!("{position}");
            }
            store.close()?;
        }
        Command::Load { dir, key, at } => {
            let store = open_existing(&dir)?;
            let Some(snapshot) = store.load_snapshot(&key, at.unwrap_or(u64::MAX))? else {
                return Err(Failure::new(match at {
                    Some(p) => format!("no snapshot of {key:?} at or before position {p}"),
                    None => format!("no snapshot of {key:?}"),
                }));
            };
            eprintln!(
                "gesta: snapshot of {key:?} at position {}, {} bytes",
                snapshot.position,
                snapshot.state.len()
            );
            let mut out = std::io::stdout().lock();
            out.write_all(&snapshot.state)?;
            out.flush()?;
            store.close()?;
        }
        Command::Save { dir, key, position } => {
            let mut state = Vec::new();
            std::io::stdin().read_to_end(&mut state)?;
            let store = open_existing(&dir)?;
            store.save_snapshot(&key, position, &state)?;
            println!(
                "saved {} bytes for {key:?} at position {position}",
                state.len()
            );
            store.close()?;
        }
        Command::Delete { dir, key, position } => {
            let store = open_existing(&dir)?;
            if !store.delete_snapshot(&key, position)? {
                return Err(Failure::new(format!(
                    "no snapshot of {key:?} at position {position}"
                )));
            }
            println!("deleted the snapshot of {key:?} at position {position}");
            store.close()?;
        }
    }
    Ok(())
}
