//! `gesta redact DIR --yes (--position P … | --type/--tag/--query)`:
//! redaction (`EventStore::redact`), erasing the data and metadata of
//! committed events named by position or by a query, for good, and
//! recorded in the audit trail.

use gesta::EventStore;
use gesta::lifecycle::{Redacted, Target};

use super::tag::{format_counts, print};
use crate::StoreDir;
use crate::failure::{Failure, open_existing};
use crate::query::TargetArgs;

pub const AFTER_HELP: &str = r#"Erases the data and metadata of each targeted event, for good (the right to erasure). What stays is
everything else: the event's position, type, tags (its own and added ones), stream and revision, id and
commit time. So the history keeps its shape — positions, stream revisions, listings, conditions and
expected revisions answer exactly as before — and what must go has to be in the data or the metadata:
put nothing personal in types, tags, stream names or ids.

The target is the events at the --position(s) given, or the events that --type, --tag or --query match
when the redaction commits (as `read` takes them: run that `read` first to see what they match). From
then on every read returns them with empty data and metadata (`read`, `get` and `export` print them
without "data" and "metadata"; `gesta serve` clients get them empty too).

The bytes: the erased data and metadata stay in the store's log files until the next `gesta compact` of
the store, which rewrites every segment that holds some, and deletes the snapshots taken at or after the
first event erased (they may hold state folded from the data). Copies made before — backups, exports —
still hold them.

Redaction cannot be undone, so the command does nothing without --yes. Redacting an event already
redacted changes nothing (it counts as targeted, not redacted). Every call that passes the checks is
recorded in the audit trail (`gesta audit`): the target as given and the counts, never the data.

Output: "targeted N events, redacted M" (M: those not redacted before), or with --json
{"targeted":N,"redacted":M}. Without --yes the status is 2; a position that is not a committed one (1 to
the head) is refused with status 1; either way nothing changes.

Examples:
  gesta read ./events --tag user:u7                          # what the query matches
  gesta redact ./events --tag user:u7 --yes                  # erase it
  gesta redact ./events --position 41 --position 42 --yes --json
  gesta compact ./events                                     # and the bytes leave the files
  gesta audit ./events                                       # the redaction, as recorded"#;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
    #[command(flatten)]
    target: TargetArgs,
    /// Confirm: the targeted events' data and metadata are erased for good.
    #[arg(long)]
    yes: bool,
    /// Print {"targeted":N,"redacted":M} instead of text.
    #[arg(long)]
    json: bool,
}

/// Redacts `target`'s events in `store`; prints what it did.
fn redact<S: EventStore + ?Sized>(
    store: &S,
    target: &Target,
    json: bool,
    out: &mut Vec<u8>,
) -> Result<(), Failure> {
    let Redacted { targeted, redacted } = store.redact(target)?;
    format_counts(out, targeted, "redacted", redacted, json)
}

pub fn run(args: Args) -> Result<(), Failure> {
    if !args.yes {
        return Err(Failure {
            message: "redaction erases the targeted events' data and metadata and cannot be \
                      undone: add --yes to do it (see gesta redact --help)"
                .into(),
            code: 2,
        });
    }
    let target = args.target.target()?;
    let store = open_existing(&args.store.dir)?;
    let mut line = Vec::with_capacity(64);
    let done = redact(&store, &target, args.json, &mut line);
    store.close()?;
    done?;
    print(&line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gesta::{MemoryStore, NewEvent, Query};

    #[test]
    fn redacts_by_position_and_query_and_prints_what_it_did() {
        let store = MemoryStore::new();
        store
            .append(vec![
                NewEvent::new("A", r#"{"name":"Ada"}"#)
                    .tag("x")
                    .metadata("m"),
                NewEvent::new("B", "{}"),
                NewEvent::new("A", "{}"),
            ])
            .unwrap();
        let mut out = Vec::new();
        redact(&store, &Target::Positions(vec![3, 1, 3]), false, &mut out).unwrap();
        redact(
            &store,
            &Target::Query(Query::event_type("A")),
            true,
            &mut out,
        )
        .unwrap();
        redact(&store, &Target::Positions(vec![2]), false, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "targeted 2 events, redacted 2\n{\"targeted\":2,\"redacted\":0}\ntargeted 1 event, redacted 1\n"
        );
        let e = store.read_last(&Query::tag("x")).unwrap().unwrap();
        assert_eq!((e.position, e.event_type.as_str()), (1, "A"));
        assert!(e.data.is_empty() && e.metadata.is_empty());
        let mut out = Vec::new();
        let err = redact(&store, &Target::Positions(vec![4]), false, &mut out).unwrap_err();
        assert_eq!(err.code, 1);
        assert!(err.message.contains("position 4"), "{}", err.message);
        assert!(out.is_empty());
    }
}
