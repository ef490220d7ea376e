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

An encrypted store's keys are never copied (crypto-shredding, see `gesta forget --help`): a copied key would
survive every later `gesta forget` of its subject, so that forgetting would not reach the backup. DEST gets a key
file KEYS with the store's subject prefix and no key, so the copy stays encrypted: its subjects' events fail to
open (naming the missing key) instead of reading as ciphertext, and new subjects' events are sealed, never
stored in clear. Keep the store's KEYS separately (as carefully as the data: it is what opens it), and to
restore a backup, copy the store's current KEYS over DEST/KEYS before using the copy: every subject still live
opens, every subject forgotten since the backup stays forgotten. The command prints a warning when it does this.

Examples:
  gesta backup ./events ./events-backup
  gesta backup ./events /mnt/other-disk/events-$(date +%F) && gesta verify /mnt/other-disk/events-$(date +%F)
  cp ./events/KEYS ./events-backup/KEYS                    # restoring an encrypted store's backup";

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
    if report.keys_left_out {
        eprintln!(
            "warning: {} is encrypted, and its keys were not copied: {}/KEYS names no key, so \
             that `gesta forget` reaches this backup too. Keep {}/KEYS separately; to restore the \
             backup, copy the store's KEYS over {}/KEYS first, or its subjects' events cannot be \
             read.",
            args.store.dir.display(),
            report.path.display(),
            args.store.dir.display(),
            report.path.display(),
        );
    }
    store.close()?;
    Ok(())
}
