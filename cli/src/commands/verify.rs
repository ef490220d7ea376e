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

Examples:
  gesta verify ./events
  gesta verify ./events && echo intact";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let dir = &args.store.dir;
    existing_store(dir)?;
    let bar = progress::bytes(0, "verifying");
    let result = gesta::inspect::verify(dir, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let report = result?;
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
