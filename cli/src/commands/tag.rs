//! `gesta tag DIR --add TAG … (--position P … | --type/--tag/--query)`:
//! retroactive tags (`EventStore::add_tags`), added to committed events
//! named by position or by a query, and recorded in the audit trail.

use std::io::Write;

use gesta::EventStore;
use gesta::lifecycle::{TagsAdded, Target};

use crate::StoreDir;
use crate::failure::{Failure, open_existing};
use crate::query::TargetArgs;

pub const AFTER_HELP: &str = r#"Adds each --add tag to each targeted event that does not carry it yet, after its own tags; an event
keeps the tags it has. The target is the events at the --position(s) given, or the events that --type,
--tag or --query match when the tags are added (as `read` takes them). Positions never move and the
head stays where it is; from then on reads, queries, listings and conditions see the added tags. Tags
cannot be removed. Every call that passes the checks is recorded in the audit trail (`gesta audit`).

Output: "targeted N events, tagged M" (M: those that gained a tag), or with --json {"targeted":N,"tagged":M}.
A position that is not a committed one (1 to the head), or an event that would carry more than 255 tags,
is refused with status 1 and changes nothing.

Examples:
  gesta tag ./events --add gdpr:s7 --tag student:s7                # every event about student s7
  gesta tag ./events --add audited --add batch:12 --position 41 --position 42
  gesta tag ./events --add legacy --query '{"items":[{"types":["CourseDefined","CourseRenamed"]}]}' --json
  gesta read ./events --tag gdpr:s7                                 # finds them now"#;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
    /// A tag to add (repeatable: all of them).
    #[arg(long = "add", value_name = "TAG", required = true)]
    add: Vec<String>,
    #[command(flatten)]
    target: TargetArgs,
    /// Print {"targeted":N,"tagged":M} instead of text.
    #[arg(long)]
    json: bool,
}

/// What a lifecycle operation did, as one line (`tag` and `redact`):
/// "targeted N events, <did> M", or with `json` {"targeted":N,"<did>":M}.
pub(super) fn format_counts(
    out: &mut Vec<u8>,
    targeted: u64,
    did: &'static str,
    count: u64,
    json: bool,
) -> Result<(), Failure> {
    if json {
        writeln!(out, "{{\"targeted\":{targeted},\"{did}\":{count}}}")?;
    } else {
        let s = if targeted == 1 { "" } else { "s" };
        writeln!(out, "targeted {targeted} event{s}, {did} {count}")?;
    }
    Ok(())
}

/// Writes a command's output to stdout; a reader gone away is no failure.
pub(super) fn print(line: &[u8]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(line).and_then(|()| out.flush()) {
        Err(e) if !super::closed_pipe(&e) => Err(e.into()),
        _ => Ok(()),
    }
}

/// Adds `tags` to `target`'s events in `store`; prints what it did.
fn tag<S: EventStore + ?Sized>(
    store: &S,
    target: &Target,
    tags: &[String],
    json: bool,
    out: &mut Vec<u8>,
) -> Result<(), Failure> {
    let TagsAdded { targeted, tagged } = store.add_tags(target, tags)?;
    format_counts(out, targeted, "tagged", tagged, json)
}

pub fn run(args: Args) -> Result<(), Failure> {
    let target = args.target.target()?;
    // Through the wrapper of an encrypted store, which refuses a subject
    // tag added after the fact (the event was stored in clear).
    let store = super::encrypted::Opened::wrap(open_existing(&args.store.dir)?, false)?;
    let mut line = Vec::with_capacity(64);
    let tagged = tag(&*store, &target, &args.add, args.json, &mut line);
    store.close()?;
    tagged?;
    print(&line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gesta::{MemoryStore, NewEvent, Query};

    #[test]
    fn tags_by_position_and_query_and_prints_what_it_did() {
        let store = MemoryStore::new();
        store
            .append(vec![
                NewEvent::new("A", "{}").tag("x"),
                NewEvent::new("B", "{}"),
                NewEvent::new("A", "{}"),
            ])
            .unwrap();
        let mut out = Vec::new();
        let tags = ["t".to_owned()];
        tag(
            &store,
            &Target::Positions(vec![3, 1, 3]),
            &tags,
            false,
            &mut out,
        )
        .unwrap();
        tag(
            &store,
            &Target::Query(Query::event_type("A")),
            &tags,
            true,
            &mut out,
        )
        .unwrap();
        let only = Target::Positions(vec![2]);
        tag(
            &store,
            &only,
            &["u".to_owned(), "t".to_owned()],
            false,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "targeted 2 events, tagged 2\n{\"targeted\":2,\"tagged\":0}\ntargeted 1 event, tagged 1\n"
        );
        let e = store.read_last(&Query::tag("t")).unwrap().unwrap();
        assert_eq!(e.tags, ["t"]);
        let mut out = Vec::new();
        let err = tag(&store, &Target::Positions(vec![4]), &tags, false, &mut out).unwrap_err();
        assert_eq!(err.code, 1);
        assert!(err.message.contains("position 4"), "{}", err.message);
        assert!(out.is_empty());
    }
}
