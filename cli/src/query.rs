//! The query flags that `read`, `tag` and `redact` share (`--type`,
//! `--tag`, `--query`), the target flags of `tag` and `redact` (those or
//! `--position`), and a query written back as the JSON `--query` takes.

use gesta::lifecycle::Target;
use gesta::{Query, QueryItem};
use gesta_json as json;

use crate::failure::Failure;

/// Which events: by type and tags, or by a query in JSON.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct QueryArgs {
    /// Only events of this type (repeatable: any of them).
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Only events carrying this tag (repeatable: all of them).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// A query as JSON, for several items (instead of --type/--tag).
    #[arg(long, value_name = "QUERY_JSON", conflicts_with_all = ["types", "tags"])]
    pub query: Option<String>,
}

impl QueryArgs {
    /// The query the flags describe: every event when none is given.
    pub fn query(&self) -> Result<Query, Failure> {
        if let Some(text) = &self.query {
            return json::parse_query(text)
                .map_err(|e| Failure::new(format!("--query is not a query{e}")));
        }
        if self.types.is_empty() && self.tags.is_empty() {
            return Ok(Query::all());
        }
        Ok(Query::item(
            QueryItem::new()
                .types(self.types.iter().cloned())
                .tags(self.tags.iter().cloned()),
        ))
    }
}

/// Which committed events a lifecycle command changes: those at the
/// `--position`s given, or those the query flags match when it commits.
/// One of them is required (no flag is not taken for every event: for
/// that, `--query '{}'`).
#[derive(clap::Args, Debug)]
#[command(group(
    clap::ArgGroup::new("target")
        .args(["positions", "types", "tags", "query"])
        .multiple(true)
        .required(true)
))]
pub struct TargetArgs {
    /// The event at this position (repeatable), instead of a query.
    #[arg(long = "position", value_name = "P", conflicts_with_all = ["types", "tags", "query"],
          value_parser = parse_position)]
    positions: Vec<u64>,
    #[command(flatten)]
    select: QueryArgs,
}

impl TargetArgs {
    /// The target the flags describe.
    pub fn target(self) -> Result<Target, Failure> {
        if self.positions.is_empty() {
            Ok(Target::Query(self.select.query()?))
        } else {
            Ok(Target::Positions(self.positions))
        }
    }
}

fn parse_position(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("{s:?} is not a position (1, 2, 3, …)")),
    }
}

/// A query as the JSON `--query` takes, `{"items":[{"types":[…],"tags":[…]},…]}`
/// without the lists that are empty: serialized, or shown with `{}`.
#[derive(serde::Serialize)]
pub struct QueryJson<'a> {
    items: Vec<ItemJson<'a>>,
}

#[derive(serde::Serialize)]
struct ItemJson<'a> {
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    types: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
}

impl<'a> QueryJson<'a> {
    pub fn new(query: &'a Query) -> QueryJson<'a> {
        QueryJson {
            items: query
                .items
                .iter()
                .map(|i| ItemJson {
                    types: &i.types,
                    tags: &i.tags,
                })
                .collect(),
        }
    }
}

impl std::fmt::Display for QueryJson<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Strings and lists of strings always serialize.
        let text = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_written_as_json_parses_back_the_same() {
        for query in [
            Query::all(),
            Query::tag("course:c1"),
            Query::item(QueryItem::new().types(["A", "B"]).tags(["x", "y \"z\""]))
                .or(QueryItem::new().event_type("Holiday"))
                .or(QueryItem::new()),
        ] {
            let text = QueryJson::new(&query).to_string();
            assert_eq!(json::parse_query(&text).unwrap(), query, "{text}");
        }
        assert_eq!(
            QueryJson::new(&Query::tag("course:c1").or(QueryItem::new().event_type("Holiday")))
                .to_string(),
            r#"{"items":[{"tags":["course:c1"]},{"types":["Holiday"]}]}"#
        );
        assert_eq!(QueryJson::new(&Query::all()).to_string(), r#"{"items":[]}"#);
    }

    #[test]
    fn flags_make_one_item_and_none_match_everything() {
        let args = QueryArgs {
            types: vec!["A".into(), "B".into()],
            tags: vec!["x".into()],
            query: None,
        };
        assert_eq!(
            args.query().unwrap(),
            Query::item(QueryItem::new().types(["A", "B"]).tag("x"))
        );
        assert!(QueryArgs::default().query().unwrap().is_all());
        let bad = QueryArgs {
            query: Some("{items".into()),
            ..QueryArgs::default()
        };
        assert!(
            bad.query()
                .unwrap_err()
                .message
                .starts_with("--query is not a query")
        );
    }
}

/// A retention rule as the commands print it in JSON: its scope (`stream`
/// or `query`) and its limits, each left out when absent.
#[derive(serde::Serialize)]
pub struct RuleJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<QueryJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_age_micros: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_count: Option<u64>,
}

impl<'a> RuleJson<'a> {
    /// `rule` in its JSON form.
    pub fn new(rule: &'a gesta::RetentionRule) -> RuleJson<'a> {
        let (stream, query) = match &rule.scope {
            gesta::RetentionScope::Stream(s) => (Some(s.as_str()), None),
            gesta::RetentionScope::Query(q) => (None, Some(QueryJson::new(q))),
        };
        RuleJson {
            stream,
            query,
            max_age_micros: rule.max_age_micros,
            max_count: rule.max_count,
        }
    }

    /// The text form: `stream "S"` or `query {…}`, then `max_age 30days`
    /// and `max_count N` as set, or `cleared` without either.
    pub fn text(&self) -> String {
        let mut text = match (&self.stream, &self.query) {
            (Some(s), _) => format!("stream {}", serde_json::Value::from(*s)),
            (None, Some(q)) => format!("query {q}"),
            (None, None) => String::new(),
        };
        if let Some(age) = self.max_age_micros {
            let age = humantime::format_duration(std::time::Duration::from_micros(age));
            text.push_str(&format!(" max_age {age}"));
        }
        if let Some(n) = self.max_count {
            text.push_str(&format!(" max_count {n}"));
        }
        if self.max_age_micros.is_none() && self.max_count.is_none() {
            text.push_str(" cleared");
        }
        text
    }
}
