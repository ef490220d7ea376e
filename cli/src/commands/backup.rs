//! `gesta backup DIR DEST`: copy a store, consistently, into a new
//! directory that opens as a store of its own.

use std::path::PathBuf;
use std::time::Instant;

use crate::StoreDir;
use crate::failure::{Failure, existing_store};

pub const AFTER_HELP: &str = "\
Opens the store (it must not be open elsewhere: a process that has it open takes its backups itself, with
Store::backup), and copies it into DEST, a directory that must not exist, as a store holding every event up to
the head at the start. Sealed segments, index runs and snapshots are hard-linked when DEST is on the same file
system (they never change; the store replaces them by new files, never in place), and copied otherwise; the newest
segment, offset tables, the lifecycle journal and cursors are copied.

The copy is built in DEST.partial and renamed to DEST only when complete and synced: if the backup is interrupted,
DEST does not exist, and DEST.partial holds a BACKUP-INCOMPLETE marker that makes every open refuse it. The next
backup to DEST removes it.

Examples:
  gesta backup ./events ./events-backup
  gesta backup ./events /mnt/other-disk/events-$(date +%F) && gesta verify /mnt/other-disk/events-$(date +%F)";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
    /// The backup's directory (must not exist).
    #[arg(value_name = "DEST")]
    dest: PathBuf,
}

pub fn run(args: Args) -> Result<(), Failure> {
    existing_store(&args.store.dir)?;
    let store = match gesta::Store::open(&args.store.dir) {
        Ok(store) => store,
        Err(e @ gesta::Error::Locked { .. }) => {
            return Err(Failure::new(format!(
                "{e}; a store open in another process is backed up by that process (Store::backup)"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let started = Instant::now();
    let report = store.backup(&args.dest)?;
    println!(
        "backed up positions 1..={} to {} in {:.2} s: {} segment file(s), {} index run(s), {} lifecycle entr{}, {} snapshot(s), {} cursor(s); {} file(s) linked, {} copied ({:.1} MB)",
        report.position,
        report.path.display(),
        started.elapsed().as_secs_f64(),
        report.segments,
        report.index_runs,
        report.lifecycle_entries,
        if report.lifecycle_entries == 1 {
            "y"
        } else {
            "ies"
        },
        report.snapshots,
        report.cursors,
        report.files_linked,
        report.files_copied,
        report.bytes_copied as f64 / 1e6,
    );
    store.close()?;
    Ok(())
}
