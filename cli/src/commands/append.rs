//! `gesta append DIR`: events from JSON lines on stdin, in atomic batches,
//! optionally conditional.

use std::io::{self, Write};

use gesta::{AppendCondition, AppendOptions, ExpectedRevision};

use super::LineBatches;
use crate::StoreDir;
use crate::failure::Failure;
use gesta_json as json;

pub const AFTER_HELP: &str = r#"Input: one event per line, e.g.
  {"type":"StudentSubscribed","tags":["course:c1","student:s7"],"data":{"student":"s7"},"stream":"course-c1","id":"0b6c3a52-6f3e-4d2a-9a8e-1f2d3c4b5a69"}
Only "type" is required; "data" is any JSON, stored as its text; "data_base64" gives raw bytes instead.
Output: one line per committed batch, {"first":F,"last":L}.

Examples:
  gesta append ./events < events.jsonl
  gesta append ./events --batch 100 < events.jsonl        # 100 lines per atomic append
  # DCB: append only if nothing about course c1 happened after position 41
  echo '{"type":"StudentSubscribed","tags":["course:c1","student:s7"]}' |
    gesta append ./events --condition '{"items":[{"tags":["course:c1"]}]}' --after 41
  echo '{"type":"CourseDefined","stream":"course-c1"}' |
    gesta append ./events --expected-revision course-c1=no-stream

A failed condition or expected revision exits with status 3; the batches before it stay committed.
A batch that fails with any other error was not appended, except when the message says its outcome
is unknown (exit status 4): then read the store before retrying, or retry with the same event ids,
which appends nothing if the first attempt committed. --after beyond the store's head is refused.

Encryption (crypto-shredding, see `gesta forget --help`): with --encrypt, the store becomes encrypted
(its directory gets the key file KEYS) and every event tagged subject:NAME has its data and metadata
sealed with NAME's key; every later command on an encrypted store seals and opens without the flag —
`read` (--follow too), `get`, `export`, `import`, `console`, and `serve` on both its services."#;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
    /// Make the store encrypted (create its key file): events tagged
    /// subject:NAME are sealed with NAME's key, so `gesta forget` can
    /// shred them. An encrypted store stays so without the flag.
    #[arg(long)]
    encrypt: bool,
    /// Lines per atomic append.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    batch: u64,
    /// DCB condition, as query JSON: each append fails if an event matching
    /// it exists after --after (after any position when --after is absent).
    #[arg(long, value_name = "QUERY_JSON")]
    condition: Option<String>,
    /// The position up to which the condition was already checked.
    #[arg(long, value_name = "POSITION", requires = "condition")]
    after: Option<u64>,
    /// STREAM=REVISION that each append expects: REVISION is a number, any,
    /// no-stream or exists. Repeatable.
    #[arg(long = "expected-revision", value_name = "STREAM=REVISION", value_parser = parse_expected)]
    expected: Vec<(String, ExpectedRevision)>,
}

fn parse_expected(s: &str) -> Result<(String, ExpectedRevision), String> {
    let (stream, rev) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("{s:?} is not STREAM=REVISION"))?;
    let rev = match rev {
        "any" => ExpectedRevision::Any,
        "no-stream" => ExpectedRevision::NoStream,
        "exists" => ExpectedRevision::Exists,
        n => ExpectedRevision::Exact(
            n.parse()
                .map_err(|_| format!("revision {n:?} is not a number, any, no-stream or exists"))?,
        ),
    };
    Ok((stream.to_owned(), rev))
}

pub fn run(args: Args) -> Result<(), Failure> {
    let mut options = AppendOptions::new();
    if let Some(text) = &args.condition {
        let query = json::parse_query(text)
            .map_err(|e| Failure::new(format!("--condition is not a query{e}")))?;
        options = options.condition(AppendCondition::new(query, args.after));
    }
    options.expected = args.expected;
    // An encrypted store (or one --encrypt makes so) seals its subjects'
    // events before they reach the log.
    let store = super::encrypted::Opened::wrap(gesta::Store::open(&args.store.dir)?, args.encrypt)?;
    let stdin = io::stdin().lock();
    let mut lines = LineBatches::new(stdin, args.batch as usize);
    let mut out = io::stdout().lock();
    while let Some(batch) = lines.next_batch()? {
        let where_ = batch.lines();
        let appended = store
            .append_with(batch.events, options.clone())
            .map_err(|e| {
                let definite = matches!(e, gesta::Error::Io { .. } | gesta::Error::Poisoned);
                let mut f = Failure::from(e);
                f.message = if definite {
                    format!("{where_}: {}; they were not appended", f.message)
                } else {
                    format!("{where_}: {}", f.message)
                };
                f
            })?;
        writeln!(
            out,
            r#"{{"first":{},"last":{}}}"#,
            appended.first, appended.last
        )
        .or_else(|e| {
            if super::closed_pipe(&e) {
                Ok(())
            } else {
                Err(e)
            }
        })?;
    }
    out.flush().ok();
    store.close()?;
    Ok(())
}
