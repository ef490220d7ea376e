//! `gesta compact DIR`: flush the in-memory index and merge every index run
//! into one, now.

use std::time::Instant;

use crate::StoreDir;
use crate::failure::{Failure, open_existing};

pub const AFTER_HELP: &str = "\
Opens the store (it must not be open elsewhere), writes its in-memory index to disk and merges all index runs
into one, then closes it. The background compactor keeps the number of runs logarithmic on its own; compacting
by hand suits a store about to be backed up or archived, or one just filled by an import.

Examples:
  gesta compact ./events
  gesta import ./copy < events.jsonl && gesta compact ./copy";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let store = open_existing(&args.store.dir)?;
    let (before, _) = store.index_shape();
    let started = Instant::now();
    store.compact()?;
    let (after, frozen) = store.index_shape();
    println!(
        "compacted: {before} index run(s) -> {after} ({} events, {frozen} memtable(s) waiting) in {:.2} s",
        store.head(),
        started.elapsed().as_secs_f64()
    );
    store.close()?;
    Ok(())
}
