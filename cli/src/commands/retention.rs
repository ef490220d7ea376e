//! `gesta retention DIR`: the retention rules of a store — listed, set
//! (`--stream S` or a query, with `--max-age` and/or `--max-count`),
//! cleared, and enforced now (`--enforce`).

use std::io::Write;
use std::time::Duration;

use gesta::{EventStore, RetentionRule, RetentionScope};

use super::tag::{format_counts, print};
use crate::StoreDir;
use crate::failure::{Failure, open_existing};
use crate::query::{QueryArgs, RuleJson};

pub const AFTER_HELP: &str = r#"A retention rule removes, of its scope's events — one stream's (--stream S), or those a query matches
(--type, --tag, --query; none of them: every event) — those committed longer ago than --max-age and all
but the newest --max-count. Setting a rule replaces the rule of the same scope; --clear removes it. The
store enforces its rules in the background (every minute while it is open), at every `gesta compact`,
and with --enforce, now. What a removal does — and what stays (positions, stream revisions, ids) — is
`gesta remove --help`'s.

Without a rule to set, the command lists the rules in force, one per line:
  stream "cart-17" max_age 30d max_count 100
  query {"items":[{"tags":["session"]}]} max_age 1day
or with --json one JSON object per line: {"stream":"cart-17","max_age_micros":…,"max_count":100}.

--max-age takes a duration such as 90s, 15min, 12h, 30days, 1y. Setting and enforcing are recorded in the
audit trail (`gesta audit`).

Examples:
  gesta retention ./events --tag session --max-age 30days   # sessions go after 30 days
  gesta retention ./events --stream metrics --max-count 1000
  gesta retention ./events                                   # the rules in force
  gesta retention ./events --enforce                         # now, not in a minute
  gesta retention ./events --stream metrics --clear"#;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
    /// The rule applies to this stream's events (instead of a query).
    #[arg(long, value_name = "STREAM", conflicts_with_all = ["types", "tags", "query"])]
    stream: Option<String>,
    #[command(flatten)]
    select: QueryArgs,
    /// Remove the scope's events committed longer ago than this (90s, 12h, 30days).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    max_age: Option<Duration>,
    /// Keep at most the newest N of the scope's events.
    #[arg(long, value_name = "N")]
    max_count: Option<u64>,
    /// Clear the scope's rule.
    #[arg(long, conflicts_with_all = ["max_age", "max_count"])]
    clear: bool,
    /// Enforce every rule now (after setting one, if one is given).
    #[arg(long)]
    enforce: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// The rule the flags describe, if they set or clear one.
fn rule(args: &Args) -> Result<Option<RetentionRule>, Failure> {
    let sets = args.max_age.is_some() || args.max_count.is_some() || args.clear;
    let scoped = args.stream.is_some()
        || !args.select.types.is_empty()
        || !args.select.tags.is_empty()
        || args.select.query.is_some();
    if !sets {
        if scoped {
            return Err(Failure {
                message: "a scope without --max-age, --max-count or --clear sets nothing (see \
                          gesta retention --help)"
                    .into(),
                code: 2,
            });
        }
        return Ok(None);
    }
    let scope = match &args.stream {
        Some(s) => RetentionScope::Stream(s.clone()),
        None => RetentionScope::Query(args.select.query()?),
    };
    let mut rule = RetentionRule::new(scope);
    if let Some(age) = args.max_age {
        rule = rule.max_age(age);
    }
    rule.max_count = args.max_count;
    Ok(Some(rule))
}

/// Writes `rule` as one line, text or JSON.
fn format_rule(out: &mut Vec<u8>, rule: &RetentionRule, json: bool) -> Result<(), Failure> {
    if json {
        let line = RuleJson::new(rule);
        serde_json::to_writer(&mut *out, &line).map_err(Failure::new)?;
        out.push(b'\n');
        return Ok(());
    }
    writeln!(out, "{}", RuleJson::new(rule).text())?;
    Ok(())
}

/// Sets `rule` if given, enforces if asked, and lists the rules if
/// nothing else was asked; writes what it did to `out`.
fn apply<S: EventStore + ?Sized>(
    store: &S,
    rule: Option<&RetentionRule>,
    enforce: bool,
    json: bool,
    out: &mut Vec<u8>,
) -> Result<(), Failure> {
    if let Some(rule) = rule {
        store.set_retention(rule)?;
    }
    if enforce {
        let done = store.enforce_retention()?;
        format_counts(out, done.targeted, "removed", done.removed, json)?;
    }
    if rule.is_none() && !enforce {
        for rule in store.retention_rules()? {
            format_rule(out, &rule, json)?;
        }
    }
    Ok(())
}

pub fn run(args: Args) -> Result<(), Failure> {
    let rule = rule(&args)?;
    let store = open_existing(&args.store.dir)?;
    let mut out = Vec::with_capacity(256);
    let done = apply(&store, rule.as_ref(), args.enforce, args.json, &mut out);
    store.close()?;
    done?;
    print(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gesta::{MemoryStore, NewEvent, Query};

    #[test]
    fn sets_lists_enforces_and_clears_rules() {
        let store = MemoryStore::new();
        for _ in 0..3 {
            store
                .append(vec![NewEvent::new("A", "{}").stream("s").tag("x")])
                .unwrap();
        }
        let mut out = Vec::new();
        let by_count = RetentionRule::stream("s").max_count(1);
        apply(&store, Some(&by_count), false, false, &mut out).unwrap();
        let by_age = RetentionRule::query(Query::tag("x")).max_age(Duration::from_secs(86_400));
        apply(&store, Some(&by_age), false, false, &mut out).unwrap();
        assert!(out.is_empty());
        apply(&store, None, false, false, &mut out).unwrap();
        apply(&store, None, false, true, &mut out).unwrap();
        apply(&store, None, true, false, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "stream \"s\" max_count 1\n\
             query {\"items\":[{\"tags\":[\"x\"]}]} max_age 1day\n\
             {\"stream\":\"s\",\"max_count\":1}\n\
             {\"query\":{\"items\":[{\"tags\":[\"x\"]}]},\"max_age_micros\":86400000000}\n\
             targeted 2 events, removed 2\n"
        );
        let mut out = Vec::new();
        apply(
            &store,
            Some(&RetentionRule::stream("s")),
            false,
            false,
            &mut out,
        )
        .unwrap();
        assert_eq!(store.retention_rules().unwrap(), vec![by_age]);
    }
}
