//! `gesta compact DIR [--compress]`: flush the in-memory index and merge
//! every index run into one, now; with `--compress`, also rewrite every
//! sealed segment zstd-compressed.

use std::time::Instant;

use crate::StoreDir;
use crate::failure::{Failure, open_existing_with};

pub const AFTER_HELP: &str = "\
Opens the store (it must not be open elsewhere), writes its in-memory index to disk and merges all index runs
into one, then closes it. The background compactor keeps the number of runs logarithmic on its own; compacting
by hand suits a store about to be backed up or archived, or one just filled by an import.

With --compress, every sealed segment (all but the newest) is also rewritten zstd-compressed in blocks, read
transparently afterwards; the store stays readable by any Gesta. Segments already compressed are left alone.

Compacting is also when the bytes of redacted events (`gesta redact`) leave the store's files: every segment
that holds some is rewritten without them, and the snapshots taken at or after the first event erased are deleted.

Examples:
  gesta compact ./events
  gesta compact ./events --compress --level 9
  gesta import ./copy < events.jsonl && gesta compact ./copy";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
    /// Also rewrite sealed segments zstd-compressed.
    #[arg(long)]
    compress: bool,
    /// zstd level for --compress (1–22).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=22), requires = "compress")]
    level: i32,
    /// Bytes of log per compressed block for --compress: smaller blocks
    /// make point reads (indexed queries, lookups) cheaper and scans
    /// slower.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 10,
          value_parser = clap::value_parser!(u32).range(256..=(16 << 20)), requires = "compress")]
    block_size: u32,
    /// Largest zstd dictionary trained on each segment for --compress (0:
    /// none); it is what lets small blocks compress as well as large ones.
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 10,
          value_parser = clap::value_parser!(u32).range(0..=(1 << 20)), requires = "compress")]
    dictionary_size: u32,
}

/// Bytes of segment files (plain and compressed) in the store's log.
fn log_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir.join("wal"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| {
                    e.path()
                        .extension()
                        .is_some_and(|x| x == "seg" || x == "zseg")
                })
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

pub fn run(args: Args) -> Result<(), Failure> {
    let compression = args.compress.then_some(gesta::Compression {
        level: args.level,
        block_size: args.block_size,
        dictionary_size: args.dictionary_size,
    });
    let log_before = log_bytes(&args.store.dir);
    let store = open_existing_with(
        &args.store.dir,
        gesta::Options::default().compression(compression),
    )?;
    let before = store.index_shape().runs;
    let started = Instant::now();
    store.compact()?;
    let gesta::IndexShape {
        runs: after,
        frozen,
    } = store.index_shape();
    println!(
        "compacted: {before} index run(s) -> {after} ({} events, {frozen} memtable(s) waiting) in {:.2} s",
        store.head(),
        started.elapsed().as_secs_f64()
    );
    store.close()?;
    if args.compress {
        println!(
            "log: {:.1} MB -> {:.1} MB on disk",
            log_before as f64 / 1e6,
            log_bytes(&args.store.dir) as f64 / 1e6
        );
    }
    Ok(())
}
