//! `gesta remove`, `gesta delete-stream` and `gesta truncate-stream`:
//! removal (`EventStore::remove`, `delete_stream`, `truncate_stream`),
//! taking committed events out of every read for good, recorded in the
//! audit trail.

use gesta::EventStore;
use gesta::removal::Removed;

use super::tag::{format_counts, print};
use crate::StoreDir;
use crate::failure::{Failure, open_existing};
use crate::query::TargetArgs;

const WHAT_STAYS: &str = "No read returns a removed event from then on — `read`, `get`, `export`, listings, conditions,
subscriptions — and the global order keeps its hole: the positions of the events that remain never
change, and the head stays. A stream keeps counting its revisions: after `delete-stream` its revision
(what an expected revision is checked against) stays where it was and the next append to it continues
from there; a removed event's id stays taken (a retry of its batch still gets its positions).

The bytes: the removed events' data and metadata stay in the store's log files until the next
`gesta compact`, which rewrites the segments that hold some (snapshots are kept: what they folded
happened). Copies made before — backups, exports — still hold them.

Removal cannot be undone, so the command does nothing without --yes. Output: \"targeted N events, removed M\",
or with --json {\"targeted\":N,\"removed\":M}; without --yes the status is 2 and nothing changes.";

pub fn remove_after_help() -> String {
    format!(
        "Removes the events at the --position(s) given, or those that --type, --tag or --query match when
the removal commits (as `read` takes them: run that `read` first to see what they match). Events
removed already are not targeted again.

{WHAT_STAYS}

Examples:
  gesta read ./events --tag session:9                      # what the query matches
  gesta remove ./events --tag session:9 --yes
  gesta remove ./events --position 41 --yes --json
  gesta compact ./events                                   # and the bytes leave the files"
    )
}

pub fn delete_after_help() -> String {
    format!(
        "Removes every event of STREAM committed so far (a soft delete: the name stays usable).

{WHAT_STAYS}

Examples:
  gesta delete-stream ./events cart-17 --yes
  gesta streams ./events --prefix cart-                    # cart-17 is no longer listed"
    )
}

pub fn truncate_after_help() -> String {
    format!(
        "Removes the events of STREAM with revisions below --before (revision 0 is the stream's first event):
the stream then reads from --before on.

{WHAT_STAYS}

Examples:
  gesta truncate-stream ./events account-3 --before 1000 --yes
  gesta read ./events --stream account-3 --limit 1         # revision 1000 first"
    )
}

#[derive(clap::Args, Debug)]
pub struct RemoveArgs {
    #[command(flatten)]
    store: StoreDir,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    confirm: Confirm,
}

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    store: StoreDir,
    /// The stream whose events are removed.
    stream: String,
    #[command(flatten)]
    confirm: Confirm,
}

#[derive(clap::Args, Debug)]
pub struct TruncateArgs {
    #[command(flatten)]
    store: StoreDir,
    /// The stream whose first revisions are removed.
    stream: String,
    /// The first revision kept: those below it are removed.
    #[arg(long, value_name = "REVISION")]
    before: u64,
    #[command(flatten)]
    confirm: Confirm,
}

#[derive(clap::Args, Debug)]
struct Confirm {
    /// Confirm: the events are removed for good.
    #[arg(long)]
    yes: bool,
    /// Print {"targeted":N,"removed":M} instead of text.
    #[arg(long)]
    json: bool,
}

/// What a removal command asks of the store.
enum Ask {
    Remove(gesta::lifecycle::Target),
    Delete(String),
    Truncate(String, u64),
}

/// Runs `ask` on `store`; prints what it did.
fn apply<S: EventStore + ?Sized>(
    store: &S,
    ask: &Ask,
    json: bool,
    out: &mut Vec<u8>,
) -> Result<(), Failure> {
    let Removed { targeted, removed } = match ask {
        Ask::Remove(target) => store.remove(target)?,
        Ask::Delete(stream) => store.delete_stream(stream)?,
        Ask::Truncate(stream, before) => store.truncate_stream(stream, *before)?,
    };
    format_counts(out, targeted, "removed", removed, json)
}

/// Refuses to go on without --yes (status 2, nothing done).
fn confirmed(confirm: &Confirm) -> Result<(), Failure> {
    if confirm.yes {
        return Ok(());
    }
    Err(Failure {
        message: "removal takes the events out of every read and cannot be undone: add --yes to \
                  do it"
            .into(),
        code: 2,
    })
}

fn run(store: &StoreDir, confirm: &Confirm, ask: Ask) -> Result<(), Failure> {
    confirmed(confirm)?;
    let opened = open_existing(&store.dir)?;
    let mut line = Vec::with_capacity(64);
    let done = apply(&opened, &ask, confirm.json, &mut line);
    opened.close()?;
    done?;
    print(&line)
}

pub fn remove(args: RemoveArgs) -> Result<(), Failure> {
    confirmed(&args.confirm)?;
    let ask = Ask::Remove(args.target.target()?);
    run(&args.store, &args.confirm, ask)
}

pub fn delete(args: DeleteArgs) -> Result<(), Failure> {
    run(&args.store, &args.confirm, Ask::Delete(args.stream))
}

pub fn truncate(args: TruncateArgs) -> Result<(), Failure> {
    run(
        &args.store,
        &args.confirm,
        Ask::Truncate(args.stream, args.before),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use gesta::lifecycle::Target;
    use gesta::{MemoryStore, NewEvent, Query, ReadOptions};

    #[test]
    fn removes_by_target_and_stream_and_prints_what_it_did() {
        let store = MemoryStore::new();
        store
            .append(vec![
                NewEvent::new("A", "{}").stream("s").tag("x"),
                NewEvent::new("B", "{}").stream("s"),
                NewEvent::new("A", "{}").stream("t"),
                NewEvent::new("C", "{}").stream("s"),
            ])
            .unwrap();
        let mut out = Vec::new();
        apply(&store, &Ask::Truncate("s".into(), 1), false, &mut out).unwrap();
        apply(
            &store,
            &Ask::Remove(Target::Query(Query::event_type("A"))),
            true,
            &mut out,
        )
        .unwrap();
        apply(&store, &Ask::Delete("s".into()), false, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "targeted 1 event, removed 1\n{\"targeted\":1,\"removed\":1}\ntargeted 2 events, removed 2\n"
        );
        let left: Vec<u64> = store
            .read(&Query::all(), ReadOptions::forwards())
            .unwrap()
            .map(|e| e.unwrap().position)
            .collect();
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(store.stream_revision("s").unwrap(), Some(2));
    }
}
