//! `gesta export DIR` and `gesta import DIR`: a whole store as JSON lines,
//! and back.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;

use std::ops::ControlFlow;

use gesta::{Query, ReadOptions};

use super::{Batch, LineBatches};
use crate::StoreDir;
use crate::failure::{Failure, open_existing};
use crate::progress;
use gesta_json as json;

pub const EXPORT_AFTER_HELP: &str = "\
Writes every event, oldest first, in the format `gesta read` prints and `gesta import` reads.

An encrypted store (its directory holds the key file KEYS, see `gesta forget --help`) is exported opened, as
`gesta read` shows it: subjects' events with their data in clear, a forgotten subject's empty. Keep such a file
as carefully as the keys; `gesta import --encrypt` seals it again.

Examples:
  gesta export ./events > events.jsonl
  gesta export ./events --output events.jsonl";

pub const IMPORT_AFTER_HELP: &str = "\
Appends the events in order, --batch lines per atomic append, fewer when their events take more than 32 MiB
(parsing overlaps the appends).
Kept: order, types, tags, data, metadata, streams and ids; positions and revisions come out the same when the
store starts empty and the export holds every position (`gesta export` says how many hold removed events: the
events after such a gap take the next free positions, their streams' revisions close up). Commit timestamps are the time of the import. Re-importing a file whose events all have ids
is idempotent batch by batch (same file, same --batch); an id already committed otherwise is an error.

Into an encrypted store (one whose directory holds KEYS, or any store with --encrypt, which makes it so),
every event tagged subject:NAME is sealed with NAME's key, as `gesta append` seals it; an event naming a
forgotten subject is refused.

Examples:
  gesta import ./copy < events.jsonl
  gesta import ./copy events.jsonl --batch 5000";

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    store: StoreDir,
    /// Write to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    #[command(flatten)]
    store: StoreDir,
    /// Read this file instead of standard input.
    #[arg(value_name = "FILE")]
    input: Option<PathBuf>,
    /// Lines per atomic append (fewer when their events take over 32 MiB).
    #[arg(long, default_value_t = 1000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    batch: u64,
    /// Make the store encrypted (create its key file), so that events
    /// tagged subject:NAME are sealed; an encrypted store stays so
    /// without the flag.
    #[arg(long)]
    encrypt: bool,
}

pub fn export(args: ExportArgs) -> Result<(), Failure> {
    // An encrypted store's events are exported opened, never as
    // ciphertext that no import could open.
    let store = super::encrypted::Opened::wrap(open_existing(&args.store.dir)?, false)?;
    let out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            File::create(path)
                .map_err(|e| Failure::new(format!("cannot create {}: {e}", path.display())))?,
        ),
        None => Box::new(io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let head = store.head()?;
    let bar = progress::events(head, "exporting");
    let mut line = Vec::with_capacity(512);
    let mut n = 0u64;
    // Events are lent, not copied: each goes from the mapped log to its
    // JSON line. A write error stops the read and is reported after it.
    let mut failed: Option<io::Error> = None;
    store.read_each(&Query::all(), ReadOptions::forwards(), &mut |event| {
        line.clear();
        json::write_event(&mut line, event);
        line.push(b'\n');
        if let Err(e) = out.write_all(&line) {
            failed = Some(e);
            return ControlFlow::Break(());
        }
        n += 1;
        if n.is_multiple_of(1024) {
            bar.set_position(n);
        }
        ControlFlow::Continue(())
    })?;
    if let Some(e) = failed {
        bar.abandon();
        return if super::closed_pipe(&e) {
            Ok(())
        } else {
            Err(e.into())
        };
    }
    out.flush()?;
    bar.finish_and_clear();
    store.close()?;
    eprintln!("exported {n} events");
    // Only events bounded by the head are lent, so fewer means removals.
    if n < head {
        eprintln!(
            "note: {} of the {head} positions hold removed events, which are not exported: an import \
             gives the events after each gap the next free positions, and their streams' revisions \
             close up too",
            head - n
        );
    }
    Ok(())
}

pub fn import(args: ImportArgs) -> Result<(), Failure> {
    let (input, size): (Box<dyn Read + Send>, Option<u64>) = match &args.input {
        Some(path) => {
            let file = File::open(path)
                .map_err(|e| Failure::new(format!("cannot open {}: {e}", path.display())))?;
            let size = file.metadata().ok().map(|m| m.len());
            (Box::new(file), size)
        }
        None => {
            // The size is known when stdin is a redirected file.
            let size = io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .ok()
                .map(File::from)
                .and_then(|f| f.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len());
            (Box::new(io::stdin()), size)
        }
    };
    let store = super::encrypted::Opened::wrap(gesta::Store::open(&args.store.dir)?, args.encrypt)?;
    let head_before = store.head()?;
    let bar = progress::bytes(size.unwrap_or(0), "importing");
    let started = Instant::now();
    let mut events = 0u64;
    // Parsing runs in its own thread, a few batches ahead of the appends.
    let (tx, rx) = mpsc::sync_channel::<Result<(Batch, u64), Failure>>(4);
    let batch = args.batch as usize;
    let result = std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut lines = LineBatches::new(BufReader::with_capacity(1 << 20, input), batch)
                .cut_at_bytes(super::BATCH_BYTES);
            loop {
                let next = lines.next_batch().map(|b| b.map(|b| (b, lines.bytes)));
                let stop = !matches!(next, Ok(Some(_)));
                if let Some(item) = next.transpose()
                    && tx.send(item).is_err()
                {
                    break;
                }
                if stop {
                    break;
                }
            }
        });
        for item in rx {
            let (batch, bytes) = item?;
            let where_ = batch.lines();
            let count = batch.events.len() as u64;
            store.append(batch.events).map_err(|e| {
                let mut f = Failure::from(e);
                f.message = format!(
                    "{where_}: {} ({events} events before it were imported)",
                    f.message
                );
                f
            })?;
            events += count;
            bar.set_position(bytes);
        }
        Ok::<(), Failure>(())
    });
    bar.finish_and_clear();
    result?;
    let head = store.head()?;
    store.close()?;
    let secs = started.elapsed().as_secs_f64();
    // Batches already committed with the same ids append nothing.
    let new = head - head_before;
    eprintln!(
        "imported {events} events in {secs:.2} s ({:.0} events/s), {new} new, head {head}",
        events as f64 / secs.max(1e-9),
    );
    Ok(())
}
