//! `gesta streams DIR`, `gesta types DIR`, `gesta tags DIR`: the names a
//! store holds with their counts of events, in byte order, from the index
//! (`EventStore::list`), one page or all of them.

use std::io::Write;

use gesta::listing::MAX_LIST_LIMIT;
use gesta::{Listed, Listing};

use crate::StoreDir;
use crate::failure::{Failure, open_existing};

pub const STREAMS_AFTER_HELP: &str = "\
Each line is a stream's number of events (its last revision + 1) and its name, in byte order of the names, from
the index (no scan of the log). Without --limit every stream is listed; with it, one page: the next page is
--after the last name printed, and a page shorter than --limit is the last.

Examples:
  gesta streams ./events
  gesta streams ./events --prefix course- --limit 100
  gesta streams ./events --prefix course- --after course-c41 --limit 100 --json";

pub const TYPES_AFTER_HELP: &str = "\
Each line is the number of events of a type and the type, in byte order of the names, from the index (no scan
of the log). Without --limit every type is listed; with it, one page: the next page is --after the last name
printed, and a page shorter than --limit is the last.

Examples:
  gesta types ./events
  gesta types ./events --prefix Course --json";

pub const TAGS_AFTER_HELP: &str = "\
Each line is the number of events carrying a tag and the tag, in byte order of the names, from the index (no
scan of the log). Without --limit every tag is listed; with it, one page: the next page is --after the last
name printed, and a page shorter than --limit is the last.

Examples:
  gesta tags ./events --prefix course:
  gesta tags ./events --prefix student: --after student:s99 --limit 50 --json";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
    /// Only names that start with P.
    #[arg(long, value_name = "P", default_value = "", hide_default_value = true)]
    prefix: String,
    /// Only names after NAME (exclusive): the last name of the previous page.
    #[arg(long, value_name = "NAME")]
    after: Option<String>,
    /// At most N names (one page; 1 to 10000). Without it, every name.
    #[arg(long, value_name = "N", value_parser = parse_limit)]
    limit: Option<usize>,
    /// Print each name as a JSON line {"name":…,"count":…} instead of text.
    #[arg(long)]
    json: bool,
}

pub fn parse_limit(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX_LIST_LIMIT).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a number from 1 to {MAX_LIST_LIMIT}")),
    }
}

/// A request the store refuses as invalid (a prefix or after longer than
/// any name) is bad usage, as a malformed flag is.
fn usage(e: gesta::Error) -> Failure {
    match e {
        gesta::Error::InvalidInput { reason } => Failure {
            message: reason,
            code: 2,
        },
        e => e.into(),
    }
}

pub fn run(what: Listing, args: Args) -> Result<(), Failure> {
    let store = open_existing(&args.store.dir)?;
    let mut out = std::io::stdout().lock();
    let mut after = args.after.clone();
    let mut left = args.limit.unwrap_or(usize::MAX);
    let mut line = Vec::with_capacity(256);
    let result = loop {
        let limit = left.min(MAX_LIST_LIMIT);
        let page = match store.list(what, &args.prefix, after.as_deref(), limit) {
            Ok(page) => page,
            Err(e) => break Err(usage(e)),
        };
        line.clear();
        for listed in &page {
            format_line(&mut line, listed, args.json)?;
        }
        if let Err(e) = out.write_all(&line) {
            break if super::closed_pipe(&e) {
                Ok(())
            } else {
                Err(e.into())
            };
        }
        left -= page.len();
        if page.len() < limit || left == 0 {
            break Ok(());
        }
        after = page.last().map(|l| l.name.clone());
    };
    let flushed = out.flush();
    store.close()?;
    result?;
    match flushed {
        Err(e) if !super::closed_pipe(&e) => Err(e.into()),
        _ => Ok(()),
    }
}

fn format_line(out: &mut Vec<u8>, listed: &Listed, json: bool) -> Result<(), Failure> {
    if json {
        #[derive(serde::Serialize)]
        struct Line<'a> {
            name: &'a str,
            count: u64,
        }
        serde_json::to_writer(
            &mut *out,
            &Line {
                name: &listed.name,
                count: listed.count,
            },
        )
        .map_err(Failure::new)?;
        out.push(b'\n');
    } else {
        writeln!(out, "{:>12}  {}", listed.count, listed.name)?;
    }
    Ok(())
}
