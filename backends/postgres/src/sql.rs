//! DCB queries translated to SQL.
//!
//! Every generated statement takes the same first three parameters — `$1`
//! the exclusive lower position bound, `$2` the exclusive upper bound, `$3`
//! the limit — then the query's names. Its text depends only on the
//! query's shape (how many items, types and tags), so that statements are
//! prepared once per shape and connection.
//!
//! A query matching everything scans positions. Otherwise each item
//! becomes one or more index range scans, each ordered and limited on its
//! own, and their `UNION` is ordered and limited again:
//!
//! - an item of types only: one scan of `(event_type, position)` per type;
//! - an item with tags: a scan of `(tag, position)` for its first tag, the
//!   other tags and the types checked on the event row.
//!
//! A query of more than [`MANY`] such scans would be refused by the
//! server: each name is a parameter (the protocol carries at most 65,535)
//! and each scan a level of the `UNION`'s parse tree (the server's stack
//! gives out first, at some thousands). Such a query's types of type-only
//! items are matched as one array, and so are its lone tags (items of one
//! tag and no type); the scans left are nested [`MANY`] to a `UNION`.

use gesta::{Direction, Query};
use postgres::types::ToSql;

/// A query's parameter, after the three bounds.
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// What a statement selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Select {
    /// Whole events ([`EVENT_COLUMNS`]), then the head.
    Events,
    /// Positions only.
    Positions,
    /// Each event's position and tag list (a lifecycle operation's
    /// target, see `lifecycle`).
    Tags,
}

/// The columns of an event, in the order `store::event_from_row` reads
/// them, for a table aliased `e`.
pub(crate) const EVENT_COLUMNS: &str = "e.position, e.event_type, e.tags, e.data, e.metadata, \
     e.id, e.stream, e.revision, e.timestamp_micros";

/// A statement and its parameters after `$1`–`$3`.
pub(crate) struct Built {
    pub(crate) sql: String,
    pub(crate) params: Vec<Param>,
}

/// Scans beyond which a query's names are matched as arrays, and the most
/// scans of one `UNION`.
pub(crate) const MANY: usize = 256;

/// `names` without repeats, in their order (in linear time: an item may
/// name tens of thousands).
fn distinct(names: &[String]) -> Vec<&String> {
    let mut seen = std::collections::HashSet::with_capacity(names.len());
    names.iter().filter(|n| seen.insert(n.as_str())).collect()
}

/// The head of the store in schema `s` (quoted): the last position of the
/// last batch. Not `max(position)` of `events`: removed events left it,
/// and their positions stay taken.
pub(crate) fn head(s: &str) -> String {
    format!("SELECT coalesce((SELECT last FROM {s}.batches ORDER BY first DESC LIMIT 1), 0)")
}

/// The last revision of the stream named by `name` (an SQL expression),
/// its removed events included.
pub(crate) fn last_revision(s: &str, name: &str) -> String {
    format!(
        "greatest((SELECT max(e.revision) FROM {s}.events e WHERE e.stream = {name}), \
                  (SELECT max(r.revision) FROM {s}.removed_events r WHERE r.stream = {name}))"
    )
}

/// The statement that selects, from the store in schema `s` (quoted), the
/// events (or positions) matching `query` strictly between `$1` and `$2`,
/// in `direction`, at most `$3` of them.
pub(crate) fn build(s: &str, query: &Query, direction: Direction, select: Select) -> Built {
    let order = match direction {
        Direction::Forwards => "ASC",
        Direction::Backwards => "DESC",
    };
    let columns = match select {
        Select::Events => {
            format!("{EVENT_COLUMNS}, ({}) AS head", head(s))
        }
        Select::Positions => "e.position".to_owned(),
        Select::Tags => "e.position, e.tags".to_owned(),
    };
    if query.is_all() {
        return Built {
            sql: format!(
                "SELECT {columns} FROM {s}.events e \
                 WHERE e.position > $1 AND e.position < $2 \
                 ORDER BY e.position {order} LIMIT $3"
            ),
            params: Vec::new(),
        };
    }
    let mut params: Vec<Param> = Vec::new();
    let mut next = |param: Param| {
        params.push(param);
        params.len() + 3
    };
    let mut branches = Vec::new();
    let scans: usize = query
        .items
        .iter()
        .map(|item| match item.tags.is_empty() {
            true => item.types.len(),
            false => 1,
        })
        .sum();
    let many = scans > MANY;
    let (mut lone_types, mut lone_tags): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
    for item in &query.items {
        let types = distinct(&item.types);
        let tags = distinct(&item.tags);
        if many && tags.is_empty() {
            lone_types.extend(types.iter().map(|t| t.as_bytes().to_vec()));
            continue;
        }
        if many && tags.len() == 1 && types.is_empty() {
            lone_tags.push(tags[0].as_bytes().to_vec());
            continue;
        }
        if tags.is_empty() {
            for t in types {
                let n = next(Box::new(t.as_bytes().to_vec()));
                branches.push(format!(
                    "(SELECT position FROM {s}.events \
                     WHERE event_type = ${n} AND position > $1 AND position < $2 \
                     ORDER BY position {order} LIMIT $3)"
                ));
            }
            continue;
        }
        let first = next(Box::new(tags[0].as_bytes().to_vec()));
        let mut filters = String::new();
        if tags.len() > 1 {
            let rest: Vec<Vec<u8>> = tags[1..].iter().map(|t| t.as_bytes().to_vec()).collect();
            let n = next(Box::new(rest));
            filters.push_str(&format!(" AND e.tags @> ${n}::bytea[]"));
        }
        if !types.is_empty() {
            let types: Vec<Vec<u8>> = types.iter().map(|t| t.as_bytes().to_vec()).collect();
            let n = next(Box::new(types));
            filters.push_str(&format!(" AND e.event_type = ANY(${n}::bytea[])"));
        }
        branches.push(if filters.is_empty() {
            format!(
                "(SELECT position FROM {s}.event_tags \
                 WHERE tag = ${first} AND position > $1 AND position < $2 \
                 ORDER BY position {order} LIMIT $3)"
            )
        } else {
            format!(
                "(SELECT g.position FROM {s}.event_tags g \
                 JOIN {s}.events e ON e.position = g.position \
                 WHERE g.tag = ${first} AND g.position > $1 AND g.position < $2{filters} \
                 ORDER BY g.position {order} LIMIT $3)"
            )
        });
    }
    // A position may come from several lone tags: `IN` takes it once.
    for (names, table, column) in [
        (lone_types, "events", "event_type"),
        (lone_tags, "event_tags", "tag"),
    ] {
        if !names.is_empty() {
            let n = next(Box::new(names));
            branches.push(format!(
                "(SELECT position FROM {s}.{table} \
                 WHERE {column} = ANY(${n}::bytea[]) AND position > $1 AND position < $2 \
                 ORDER BY position {order} LIMIT $3)"
            ));
        }
    }
    Built {
        sql: format!(
            "SELECT {columns} FROM {s}.events e WHERE e.position IN ({}) \
             ORDER BY e.position {order} LIMIT $3",
            nested_union(branches)
        ),
        params,
    }
}

/// `branches` as one `UNION ALL`, nested [`MANY`] to a level so that no
/// level is deeper than that.
fn nested_union(mut branches: Vec<String>) -> String {
    while branches.len() > MANY {
        branches = branches
            .chunks(MANY)
            .map(|group| format!("(SELECT position FROM ({}) u)", group.join(" UNION ALL ")))
            .collect();
    }
    branches.join(" UNION ALL ")
}
