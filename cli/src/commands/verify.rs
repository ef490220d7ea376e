//! `gesta verify DIR`: every record's checksums and every index run
//! against the log.

use crate::StoreDir;
use crate::failure::{Failure, existing_store};
use crate::progress;

pub const AFTER_HELP: &str = "\
Checks, without opening the store (read-only, no lock): every record's frame and body checksums, that positions
follow each other, that every event decodes, the sealed segments' offset tables, the MANIFEST, and every index
run (its checksum and structure, and that it lists exactly the positions the log's events give it).
Stops at the first problem, naming the file and the byte offset, and exits with status 1.
A torn write at the very end of the log (an append interrupted by a crash) is reported but is not damage:
the next open cuts it off.

With --repair, damage to the index (the MANIFEST or an index run, damaged or missing) is repaired: the
index is thrown away and rebuilt from the log, under the store's lock, then everything is verified again.
Damage to the log itself is never repaired.

Examples:
  gesta verify ./events
  gesta verify ./events && echo intact
  gesta verify ./events --repair";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
    /// Rebuild a damaged or lost index from the log.
    #[arg(long)]
    repair: bool,
}

fn verify(dir: &std::path::Path) -> gesta::Result<gesta::inspect::VerifyReport> {
    let bar = progress::bytes(0, "verifying");
    let result = gesta::inspect::verify(dir, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    result
}

pub fn run(args: Args) -> Result<(), Failure> {
    let dir = &args.store.dir;
    existing_store(dir)?;
    let report = match verify(dir) {
        Err(e) if args.repair && gesta::inspect::is_index_damage(dir, &e) => {
            eprintln!("gesta: {e}");
            eprintln!("gesta: rebuilding the index from the log");
            let repaired = gesta::inspect::repair_index(dir)?;
            println!(
                "repaired: removed {} index file(s); the index was rebuilt from the log ({} events)",
                repaired.removed.len(),
                repaired.events
            );
            verify(dir)?
        }
        other => other?,
    };
    println!(
        "ok: {} events in {} records, positions 1..={}, {} segment(s) ({} bytes); {} index run(s) ({} bytes, {} postings) agree with the log",
        report.events,
        report.records,
        report.last_position,
        report.segments,
        report.log_bytes,
        report.runs,
        report.run_bytes,
        report.postings
    );
    if let Some(t) = report.torn_tail {
        println!(
            "note: a torn write of {} bytes at offset {} of {} ({}); the next open cuts it off",
            t.bytes,
            t.offset,
            t.file.display(),
            t.reason
        );
    }
    Ok(())
}
