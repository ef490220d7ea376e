//! `gesta verify DIR`: every record's checksums, every sealed segment's
//! offset table, every index run against the log, every snapshot and
//! cursor; every problem found, one line each.

use gesta::inspect::{Finding, Part, VerifyReport};

use crate::StoreDir;
use crate::failure::{Failure, existing_store};
use crate::progress;

pub const AFTER_HELP: &str = "\
Checks, without opening the store (read-only, no lock): every segment header, every record's frame and body
checksums, that positions follow each other, that every event decodes, every sealed segment's offset table
against its segment, the MANIFEST, every index run (its checksum and structure, and that it lists exactly the
positions the log's events give it), and every snapshot and cursor file.

Reports every problem it finds, not only the first: one line each on stdout, naming the file and, when the
damage is at one place, the byte offset, then what it means:
  log damage: …                the log is the store's truth; it is never repaired
  index damage: …              the MANIFEST or an index run; --repair rebuilds the index from the log
  cache damage (harmless): …   a sealed segment's offset table (.off), a cache of where its records are, is
                               damaged or missing; the next open ignores it and rebuilds it from the segment
  cache damage: …              an offset table whose checksum is intact but whose contents are wrong: the
                               next open trusts it; --repair rebuilds it from the segment
  snapshot damage: …           a snapshot file; loading it fails until it is deleted (gesta snapshot delete)
  cursor damage: …             a durable subscription's cursor file; it cannot resume until the file is deleted
After damage to a segment the check goes on with the next segment, and the index runs are then checked on
their own, no longer against the log.

Exit status: 0 when nothing is damaged or missing; 1 when anything is, even when it is only an offset table
that the next open would rebuild (the line says it is harmless).
A torn write at the very end of the log (an append interrupted by a crash) is reported but is not damage:
the next open cuts it off.

With --repair, when the log is intact, what was found is rebuilt from the log under the store's lock: a
damaged or lost index (the MANIFEST and every index run thrown away and written again) and every offset table
reported (written again from its segment); then everything is verified again. Damage to the log itself is
never repaired, and then nothing else is either; snapshots and cursors are not repaired.

Examples:
  gesta verify ./events
  gesta verify ./events && echo intact
  gesta verify ./events --repair";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
    /// Rebuild a damaged or lost index and damaged or missing offset tables
    /// from the log.
    #[arg(long)]
    repair: bool,
}

fn verify(dir: &std::path::Path) -> gesta::Result<VerifyReport> {
    let bar = progress::bytes(0, "verifying");
    let result = gesta::inspect::verify(dir, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    result
}

/// The line a finding is printed as.
fn line(f: &Finding) -> String {
    match f.part {
        Part::Log => format!("log damage: {f}; the log is never repaired"),
        Part::Index => format!("index damage: {f}; --repair rebuilds the index from the log"),
        Part::OffsetTable if f.harmless => format!(
            "cache damage (harmless): {f}; the offset table is a cache that the next open ignores and \
             rebuilds from its segment; --repair rebuilds it now"
        ),
        Part::OffsetTable => format!(
            "cache damage: {f}; the next open does not rebuild this offset table by itself (it trusts \
             a table whose checksum is intact); --repair rebuilds it from its segment"
        ),
        Part::Snapshot => format!(
            "snapshot damage: {f}; loading this snapshot fails until it is deleted (gesta snapshot \
             delete); --repair does not touch snapshots"
        ),
        Part::Cursor => format!(
            "cursor damage: {f}; the durable subscription cannot resume, and listing cursors fails, \
             until the file is deleted (Store::delete_cursor; the subscription then starts from the \
             beginning); --repair does not touch cursors"
        ),
        Part::Lifecycle if f.harmless => format!("lifecycle (harmless): {f}"),
        Part::Lifecycle => format!(
            "lifecycle journal damage: {f}; the store refuses to open: the journal is the only record \
             of its retroactive tags and audit trail; --repair does not touch it"
        ),
        Part::KeyFile => format!(
            "key file damage: {f}; every door refuses the encrypted store until a copy of its key \
             file is put back (the keys exist nowhere else); --repair does not touch it"
        ),
    }
}

/// Whether `--repair` can do something about a finding.
fn repairable(f: &Finding) -> bool {
    matches!(f.part, Part::Index | Part::OffsetTable)
}

/// Prints the findings, and fails unless there are none.
fn report(report: &VerifyReport) -> Result<(), Failure> {
    for f in &report.findings {
        println!("{}", line(f));
    }
    if let Some(t) = &report.torn_tail {
        println!(
            "note: a torn write of {} bytes at offset {} of {} ({}); the next open cuts it off",
            t.bytes,
            t.offset,
            t.file.display(),
            t.reason
        );
    }
    // Redacted events whose bytes wait for `gesta compact` are a notice:
    // the store is intact.
    let problems: Vec<_> = report
        .findings
        .iter()
        .filter(|f| !(f.part == Part::Lifecycle && f.harmless))
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    let n = problems.len();
    let count = |part| problems.iter().filter(|f| f.part == part).count();
    let message = if problems.iter().all(|f| f.harmless) {
        format!(
            "{n} problem(s), all in offset tables, caches that the next open rebuilds by itself \
             (harmless); --repair rebuilds them now"
        )
    } else {
        let parts: Vec<String> = [
            (Part::Log, "in the log"),
            (Part::Index, "in the index"),
            (Part::OffsetTable, "in offset tables"),
            (Part::Snapshot, "in snapshots"),
            (Part::Cursor, "in cursors"),
            (Part::Lifecycle, "in the lifecycle journal"),
            (Part::KeyFile, "in the key file"),
        ]
        .into_iter()
        .filter(|(part, _)| count(*part) > 0)
        .map(|(part, what)| format!("{} {what}", count(part)))
        .collect();
        let repairable = problems.iter().filter(|f| repairable(f)).count();
        let journal = count(Part::Lifecycle) > 0;
        let remedy = if count(Part::Log) > 0 {
            "damage to the log is not repairable"
        } else if journal {
            "--repair does not touch the lifecycle journal, and rebuilds nothing while it is damaged"
        } else if count(Part::KeyFile) > 0 {
            "--repair does not touch the key file; put a copy of it back"
        } else if repairable == n {
            "--repair rebuilds them from the log"
        } else if repairable > 0 {
            "--repair rebuilds the index and offset tables from the log, not snapshots or cursors"
        } else {
            "--repair does not touch snapshots or cursors"
        };
        format!("{n} problem(s): {}; {remedy}", parts.join(", "))
    };
    Err(Failure::new(message))
}

fn ok_line(report: &VerifyReport) {
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
}

pub fn run(args: Args) -> Result<(), Failure> {
    let dir = &args.store.dir;
    existing_store(dir)?;
    let found = verify(dir)?;
    let outcome = report(&found);
    if outcome.is_ok() {
        ok_line(&found);
        return Ok(());
    }
    if !args.repair {
        return outcome;
    }
    if found.findings_in(Part::Log).next().is_some() {
        return Err(Failure::new(
            "the log is damaged: nothing was repaired (damage to the log is never repaired)",
        ));
    }
    // The index is rebuilt by opening the store, which replays the
    // journal: with the journal damaged it would fail after the index is
    // gone, and what the index held about it (purged removals) with it.
    if found.findings_in(Part::Lifecycle).any(|f| !f.harmless) {
        return Err(Failure::new(
            "the lifecycle journal is damaged: nothing was repaired (a rebuilt index needs the \
             journal; --repair does not touch it)",
        ));
    }
    if !found.findings.iter().any(repairable) {
        return outcome;
    }
    let repaired = gesta::inspect::repair(dir, &found)?;
    if repaired.index_rebuilt {
        println!(
            "repaired: removed {} index file(s); the index was rebuilt from the log ({} events)",
            repaired.removed.len(),
            repaired.events
        );
    }
    for table in &repaired.tables_rebuilt {
        println!("repaired: {} was rebuilt from its segment", table.display());
    }
    let again = verify(dir)?;
    report(&again)?;
    ok_line(&again);
    Ok(())
}
