//! `gesta audit DIR`: the audit trail of a store's lifecycle operations
//! (`EventStore::audit_log`), oldest first, one page or all of it.

use std::io::Write;

use gesta::EventStore;
use gesta::lifecycle::{AuditEntry, Operation, Target};
use gesta::listing::MAX_LIST_LIMIT;
use gesta::{Removal, RetentionRule};
use gesta_json::rfc3339;

use super::list::parse_limit;
use crate::StoreDir;
use crate::failure::{Failure, open_existing};
use crate::query::{QueryJson, RuleJson};

pub const AFTER_HELP: &str = r#"Each line is one operation that changed committed events, as it was asked for and what it did: its
sequence number (1, 2, …), when it committed (RFC 3339, UTC), the head then (it saw the events up to
there), the operation (add_tags with its tags, or redact), its target — positions as a list, or a query
as --query takes it — and how many events it targeted and tagged or redacted. For example:
     1  2026-12-05T09:14:03.512204Z  head 7  add_tags ["gdpr:s1"]  positions [3,5]  targeted 2, tagged 2
     2  2026-12-05T09:15:40.003117Z  head 9  add_tags ["gdpr:s1"]  query {"items":[{"tags":["student:s1"]}]}  targeted 3, tagged 1
     3  2026-12-05T09:16:02.771930Z  head 9  redact  query {"items":[{"tags":["gdpr:s1"]}]}  targeted 3, redacted 3
With --json, each is a JSON line:
  {"sequence":1,"timestamp":"2026-12-05T09:14:03.512204Z","head":7,"operation":"add_tags","tags":["gdpr:s1"],
   "target":{"positions":[3,5]},"result":{"targeted":2,"tagged":2}}
  {"sequence":3,"timestamp":"2026-12-05T09:16:02.771930Z","head":9,"operation":"redact",
   "target":{"query":{"items":[{"tags":["gdpr:s1"]}]}},"result":{"targeted":3,"redacted":3}}
a positions target is {"positions":[…]}, a query target {"query":{"items":[…]}}. The trail never holds an
event's data: a redaction's entry says which events it erased, not what they held.

Without --limit the whole trail is listed; with it, one page: the next page is --after the last sequence
printed, and a page shorter than --limit is the last.

Examples:
  gesta audit ./events
  gesta audit ./events --after 100 --limit 50
  gesta audit ./events --json | jq 'select(.tags | index("gdpr:s1"))'
  gesta audit ./events --json | jq 'select(.operation == "redact")'"#;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
    /// Only entries after this sequence number (exclusive).
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    after: u64,
    /// At most N entries (one page; 1 to 10000). Without it, every entry.
    #[arg(long, value_name = "N", value_parser = parse_limit)]
    limit: Option<usize>,
    /// Print each entry as a JSON line instead of text.
    #[arg(long)]
    json: bool,
}

/// An entry as `--json` prints it.
#[derive(serde::Serialize)]
struct EntryJson<'a> {
    sequence: u64,
    timestamp: String,
    head: u64,
    operation: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<&'a [String]>,
    target: TargetJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<ResultJson>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum TargetJson<'a> {
    Positions(&'a [u64]),
    Query(QueryJson<'a>),
    /// A stream deleted (`before` none) or truncated.
    Stream {
        name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        before: Option<u64>,
    },
    /// A retention rule set or enforced.
    Retention(RuleJson<'a>),
}

impl<'a> TargetJson<'a> {
    fn new(target: &'a Target) -> TargetJson<'a> {
        match target {
            Target::Positions(p) => TargetJson::Positions(p),
            Target::Query(q) => TargetJson::Query(QueryJson::new(q)),
        }
    }

    fn rule(rule: &'a RetentionRule) -> TargetJson<'a> {
        TargetJson::Retention(RuleJson::new(rule))
    }

    /// The target as the text form prints it.
    fn text(&self) -> Result<String, Failure> {
        Ok(match self {
            TargetJson::Positions(p) => {
                format!(
                    "positions {}",
                    serde_json::to_string(p).map_err(Failure::new)?
                )
            }
            TargetJson::Query(q) => format!("query {q}"),
            TargetJson::Stream { name, before } => {
                let name = serde_json::to_string(name).map_err(Failure::new)?;
                match before {
                    Some(b) => format!("stream {name} before {b}"),
                    None => format!("stream {name}"),
                }
            }
            TargetJson::Retention(r) => r.text(),
        })
    }
}

/// What an operation did: how many events it targeted, and how many it
/// tagged or redacted.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum ResultJson {
    Tagged { targeted: u64, tagged: u64 },
    Redacted { targeted: u64, redacted: u64 },
    Removed { targeted: u64, removed: u64 },
}

impl std::fmt::Display for ResultJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResultJson::Tagged { targeted, tagged } => {
                write!(f, "targeted {targeted}, tagged {tagged}")
            }
            ResultJson::Redacted { targeted, redacted } => {
                write!(f, "targeted {targeted}, redacted {redacted}")
            }
            ResultJson::Removed { targeted, removed } => {
                write!(f, "targeted {targeted}, removed {removed}")
            }
        }
    }
}

/// An operation's parts as both forms print them: its name, its tags (if
/// it has any), its target, and what it did (a rule set did nothing yet).
fn parts(
    operation: &Operation,
) -> (
    &'static str,
    Option<&[String]>,
    TargetJson<'_>,
    Option<ResultJson>,
) {
    match operation {
        Operation::Remove { removal, result } => {
            let (name, target) = match removal {
                Removal::Target(t) => ("remove", TargetJson::new(t)),
                Removal::Stream { stream, before } => (
                    if before.is_some() {
                        "truncate_stream"
                    } else {
                        "delete_stream"
                    },
                    TargetJson::Stream {
                        name: stream,
                        before: *before,
                    },
                ),
                Removal::Retention(rule) => ("retention", TargetJson::rule(rule)),
            };
            let result = ResultJson::Removed {
                targeted: result.targeted,
                removed: result.removed,
            };
            (name, None, target, Some(result))
        }
        Operation::SetRetention { rule } => ("set_retention", None, TargetJson::rule(rule), None),
        Operation::AddTags {
            tags,
            target,
            result,
        } => (
            "add_tags",
            Some(tags),
            TargetJson::new(target),
            Some(ResultJson::Tagged {
                targeted: result.targeted,
                tagged: result.tagged,
            }),
        ),
        Operation::Redact { target, result } => (
            "redact",
            None,
            TargetJson::new(target),
            Some(ResultJson::Redacted {
                targeted: result.targeted,
                redacted: result.redacted,
            }),
        ),
    }
}

/// Writes `entry` as one line, text or JSON.
fn format_entry(out: &mut Vec<u8>, entry: &AuditEntry, json: bool) -> Result<(), Failure> {
    let (operation, tags, target, result) = parts(&entry.operation);
    let time = rfc3339(entry.timestamp_micros);
    if json {
        let line = EntryJson {
            sequence: entry.sequence,
            timestamp: time,
            head: entry.head,
            operation,
            tags,
            target,
            result,
        };
        serde_json::to_writer(&mut *out, &line).map_err(Failure::new)?;
        out.push(b'\n');
    } else {
        let tags = match tags {
            Some(tags) => format!(" {}", serde_json::to_string(tags).map_err(Failure::new)?),
            None => String::new(),
        };
        let target = target.text()?;
        let result = result.map_or(String::new(), |r| format!("  {r}"));
        writeln!(
            out,
            "{:>6}  {time}  head {}  {operation}{tags}  {target}{result}",
            entry.sequence, entry.head
        )?;
    }
    Ok(())
}

/// Writes the entries after `after`, at most `limit` of them (all when
/// `None`), a page at a time; stops quietly when the reader goes away.
fn print<S: EventStore + ?Sized>(
    store: &S,
    mut after: u64,
    limit: Option<usize>,
    json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let mut left = limit.unwrap_or(usize::MAX);
    let mut lines = Vec::with_capacity(4096);
    while left > 0 {
        let page_limit = left.min(MAX_LIST_LIMIT);
        let page = store.audit_log(after, page_limit)?;
        lines.clear();
        for entry in &page {
            format_entry(&mut lines, entry, json)?;
        }
        if let Err(e) = out.write_all(&lines) {
            return if super::closed_pipe(&e) {
                Ok(())
            } else {
                Err(e.into())
            };
        }
        left -= page.len();
        match page.last() {
            Some(last) if page.len() == page_limit => after = last.sequence,
            _ => break,
        }
    }
    match out.flush() {
        Err(e) if !super::closed_pipe(&e) => Err(e.into()),
        _ => Ok(()),
    }
}

pub fn run(args: Args) -> Result<(), Failure> {
    let store = open_existing(&args.store.dir)?;
    let mut out = std::io::stdout().lock();
    let printed = print(&store, args.after, args.limit, args.json, &mut out);
    store.close()?;
    printed
}

#[cfg(test)]
mod tests {
    use super::*;
    use gesta::{MemoryStore, NewEvent, Query, QueryItem};

    fn text(store: &MemoryStore, after: u64, limit: Option<usize>, json: bool) -> String {
        let mut out = Vec::new();
        print(store, after, limit, json, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn entries_are_listed_as_text_and_json_a_page_at_a_time() {
        let store = MemoryStore::new();
        store
            .append(vec![
                NewEvent::new("A", "{}").tag("x"),
                NewEvent::new("B", "{}"),
            ])
            .unwrap();
        let gdpr = ["gdpr:1".to_owned(), "y".to_owned()];
        store
            .add_tags(&Target::Positions(vec![2, 1, 2]), &gdpr)
            .unwrap();
        let query = Query::tag("x").or(QueryItem::new().event_type("B"));
        store.add_tags(&Target::Query(query), &gdpr[1..]).unwrap();
        store.redact(&Target::Positions(vec![2, 2])).unwrap();
        let time = rfc3339(1);
        assert_eq!(
            text(&store, 0, None, false),
            format!(
                "     1  {time}  head 2  add_tags [\"gdpr:1\",\"y\"]  positions [2,1,2]  targeted 2, tagged 2\n\
                 \x20    2  {time}  head 2  add_tags [\"y\"]  query {{\"items\":[{{\"tags\":[\"x\"]}},{{\"types\":[\"B\"]}}]}}  targeted 2, tagged 0\n\
                 \x20    3  {time}  head 2  redact  positions [2,2]  targeted 1, redacted 1\n"
            )
        );
        let lines: Vec<serde_json::Value> = text(&store, 0, None, true)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                serde_json::json!({
                    "sequence": 1, "timestamp": time, "head": 2, "operation": "add_tags",
                    "tags": ["gdpr:1", "y"], "target": {"positions": [2, 1, 2]},
                    "result": {"targeted": 2, "tagged": 2}
                }),
                serde_json::json!({
                    "sequence": 2, "timestamp": time, "head": 2, "operation": "add_tags",
                    "tags": ["y"], "target": {"query": {"items": [{"tags": ["x"]}, {"types": ["B"]}]}},
                    "result": {"targeted": 2, "tagged": 0}
                }),
                serde_json::json!({
                    "sequence": 3, "timestamp": time, "head": 2, "operation": "redact",
                    "target": {"positions": [2, 2]}, "result": {"targeted": 1, "redacted": 1}
                }),
            ]
        );
        assert!(text(&store, 0, Some(1), false).starts_with("     1  "));
        assert_eq!(text(&store, 0, Some(1), false).lines().count(), 1);
        assert!(text(&store, 1, Some(5), false).starts_with("     2  "));
        assert!(text(&store, 2, None, false).starts_with("     3  "));
        assert_eq!(text(&store, 3, None, false), "");
    }
}
