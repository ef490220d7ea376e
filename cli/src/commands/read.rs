//! `gesta read DIR`: matching events as JSON lines; with `--follow`, also
//! the events appended afterwards, as they are written, by tailing the log
//! read-only (the store may be open in another process).

use std::io::{self, BufWriter, Write};

use std::ops::ControlFlow;

use gesta::{EventRef, Query, ReadOptions};

use crate::StoreDir;
use crate::failure::{Failure, open_existing};
use crate::query::QueryArgs;
use gesta_json as json;

pub const AFTER_HELP: &str = r#"Output: one event per line:
  {"position":7,"type":"StudentSubscribed","tags":["course:c1","student:s7"],"stream":"course-c1","revision":3,
   "id":"0b6c3a52-…","timestamp":"2026-11-22T13:23:49.123456Z","data":{"student":"s7"}}
Data that is not JSON is printed as "data_base64".

Query JSON: {"items":[{"types":["A","B"],"tags":["x","y"]}, …]} — items OR-ed; an item matches an event whose type
is one of "types" (absent: any) and which carries every tag of "tags". {} matches everything.

Examples:
  gesta read ./events                                      # everything, oldest first
  gesta read ./events --tag course:c1 --tag student:s7     # both tags
  gesta read ./events --type CourseDefined --type CourseRenamed --after 100 --limit 20
  gesta read ./events --query '{"items":[{"tags":["course:c1"]},{"types":["Holiday"]}]}'
  gesta read ./events --backwards --limit 5                # the five newest
  gesta read ./events --tag course:c1 --last               # the newest event about c1
  gesta read ./events --type Enrolled --follow             # …and every new one as it is written (Ctrl-C stops)
  gesta read ./events --stream course-c1                   # a stream, by revision
  gesta read ./events --stream course-c1 --after 4 --limit 2   # revisions 5 and 6
  gesta read ./events --stream course-c1 --last            # its newest event
  gesta read ./events --since 2026-12-04T09:00:00Z         # committed at or after 9 o'clock (UTC)

With --stream, --after and --before are revisions (exclusive, as positions are otherwise); a stream without
events prints nothing.

--follow reads the log files directly, without opening the store or taking its lock, so it works while
another process (an application, `gesta serve`) appends; it shows events once written, which may be a moment
before they are durable. In an encrypted store it opens subjects' events with the key file, read only, and
reads the file again whenever the owning process replaces it (a new subject's key, a forget)."#;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
    #[command(flatten)]
    select: QueryArgs,
    /// The events of this stream, by revision (instead of a query).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["types", "tags", "query", "follow"])]
    stream: Option<String>,
    /// Only positions (with --stream: revisions) after this one.
    #[arg(long, value_name = "POSITION")]
    after: Option<u64>,
    /// Only positions (with --stream: revisions) before this one.
    #[arg(long, value_name = "POSITION")]
    before: Option<u64>,
    /// Only events committed at or after this time (RFC 3339, e.g.
    /// 2026-12-04T09:00:00Z).
    #[arg(long, value_name = "TIME", conflicts_with_all = ["after", "stream", "backwards", "last", "follow"])]
    since: Option<String>,
    /// Newest first.
    #[arg(long)]
    backwards: bool,
    /// At most this many events.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Only the newest matching event.
    #[arg(long, conflicts_with_all = ["backwards", "limit"])]
    last: bool,
    /// Keep printing matching events as they are written.
    #[arg(long, conflicts_with_all = ["backwards", "last", "before"])]
    follow: bool,
    /// How often --follow looks for new events, in milliseconds.
    #[arg(long, default_value_t = 100, value_name = "MS", requires = "follow")]
    poll_ms: u64,
}

/// `--follow`: everything after `--after`, then new events as they come.
fn follow(args: &Args, query: &Query) -> Result<(), Failure> {
    crate::failure::existing_store(&args.store.dir)?;
    let mut follower = gesta::inspect::Follower::new(&args.store.dir, args.after.unwrap_or(0))?;
    // An encrypted store's events are shown opened, as `read` shows them.
    let mut keys = super::encrypted::FollowKeys::new(&args.store.dir)?;
    let mut remaining = args.limit.unwrap_or(usize::MAX);
    let mut events = Vec::new();
    let mut line = Vec::with_capacity(512);
    let mut out = io::stdout().lock();
    while remaining > 0 {
        events.clear();
        if follower.poll(&mut events)? == 0 {
            std::thread::sleep(std::time::Duration::from_millis(args.poll_ms));
            continue;
        }
        keys.refresh()?;
        for event in events
            .drain(..)
            .filter(|e| query.matches(&e.event_type, &e.tags))
        {
            let event = keys.open(event)?;
            line.clear();
            json::write_event(&mut line, (&event).into());
            line.push(b'\n');
            if let Err(e) = out.write_all(&line) {
                return if super::closed_pipe(&e) {
                    Ok(())
                } else {
                    Err(e.into())
                };
            }
            remaining -= 1;
            if remaining == 0 {
                break;
            }
        }
        match out.flush() {
            Err(e) if super::closed_pipe(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
            Ok(()) => {}
        }
    }
    Ok(())
}

/// Prints events as JSON lines to standard output; a closed pipe ends the
/// output quietly.
struct Printer {
    out: BufWriter<io::StdoutLock<'static>>,
    line: Vec<u8>,
    failed: Option<io::Error>,
}

impl Printer {
    fn new() -> Printer {
        Printer {
            out: BufWriter::with_capacity(1 << 16, io::stdout().lock()),
            line: Vec::with_capacity(512),
            failed: None,
        }
    }

    /// Prints `event`; breaks once a write has failed.
    fn print(&mut self, event: EventRef<'_>) -> ControlFlow<()> {
        self.line.clear();
        json::write_event(&mut self.line, event);
        self.line.push(b'\n');
        match self.out.write_all(&self.line) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                self.failed = Some(e);
                ControlFlow::Break(())
            }
        }
    }

    fn finish(mut self) -> Result<(), Failure> {
        let result = match self.failed.take() {
            Some(e) => Err(e),
            None => self.out.flush(),
        };
        match result {
            Err(e) if !super::closed_pipe(&e) => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// `--since`: the time in microseconds since the Unix epoch.
fn since_micros(text: &str) -> Result<u64, Failure> {
    let usage = |reason: String| Failure {
        message: format!("--since {text:?}: {reason}"),
        code: 2,
    };
    let time = humantime::parse_rfc3339_weak(text).map_err(|e| usage(e.to_string()))?;
    let micros = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| usage("is before 1970".to_owned()))?
        .as_micros();
    u64::try_from(micros).map_err(|_| usage("is too far in the future".to_owned()))
}

pub fn run(mut args: Args) -> Result<(), Failure> {
    let since = args.since.as_deref().map(since_micros).transpose()?;
    let query = args.select.query()?;
    if args.follow {
        gesta::validation::check_query(&query)?;
        return follow(&args, &query);
    }
    let store = super::encrypted::Opened::wrap(open_existing(&args.store.dir)?, false)?;
    if let Some(t) = since {
        // The last position committed before `t`: what follows it is at or
        // after `t`, since commit times never decrease.
        args.after = Some(store.position_at(t.saturating_sub(1))?);
    }
    let backwards = args.backwards || args.last;
    let limit = if args.last { Some(1) } else { args.limit };
    let mut options = if backwards {
        ReadOptions::backwards()
    } else {
        ReadOptions::forwards()
    };
    options.start = if backwards { args.before } else { args.after };
    options.limit = limit;
    let (after, before) = (args.after.unwrap_or(0), args.before.unwrap_or(u64::MAX));
    let mut printer = Printer::new();
    match &args.stream {
        // Bounds in revisions; the first revision is 0, so "after" is only
        // a bound when given.
        Some(name) => {
            for event in store.read_stream(name, options)? {
                let event = event?;
                let r = event.revision.unwrap_or(0);
                if args.after.is_some_and(|a| r <= a) || r >= before {
                    break;
                }
                if printer.print((&event).into()).is_break() {
                    break;
                }
            }
        }
        // Lent, not copied: each event goes from the log to its line.
        None => store.read_each(&query, options, &mut |event| {
            if event.position <= after || event.position >= before {
                return ControlFlow::Break(());
            }
            printer.print(event)
        })?,
    }
    printer.finish()?;
    store.close()?;
    Ok(())
}
