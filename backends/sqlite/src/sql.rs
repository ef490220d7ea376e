//! DCB queries translated to SQL.
//!
//! A query becomes "arms" selecting positions in position order: an item
//! with tags is one arm, which scans the `tags` primary key for its first
//! tag within the position bounds, keeping the rows whose type (which the
//! row holds) the item names, and probes the primary key for each of its
//! other tags; `events` is joined only to read the events found. An
//! item with only types is one arm per type, each a range of
//! `events_by_type`. One arm is
//! read directly, in index order; several are OR-ed by a `UNION` merged in
//! position order. The condition check asks each arm for its first
//! position after `after` (`ORDER BY position LIMIT 1`, which stops at the
//! first index entry) and takes the smallest.
//!
//! Every statement takes the inclusive position bounds as `?1` and `?2`;
//! a read takes its limit as `?3`; the items' names follow.
//!
//! A query of more than [`MANY`] arms, or an item of more than [`MANY`]
//! types, would pass SQLite's limit of 32,766 variables one name at a
//! time: such a query's types of type-only items become one arm, and its
//! lone tags (items of one tag and no type) another, each matching its
//! names as one JSON array bound once (`IN (SELECT value FROM
//! json_each(?))`); so does such an item's list of types.

use rusqlite::types::Value;

use gesta::{Direction, Query};

/// The columns a read returns, in the order `store` decodes them.
const EVENT_COLUMNS: &str =
    "e.position, e.type, e.tags, e.stream, e.revision, e.id, e.data, e.metadata, e.ts";

/// The last revision of stream `?1`, its removed events included: one
/// probe of `events_by_stream` and one of `removed_by_stream`.
pub(crate) const LAST_REVISION: &str = "SELECT max(r) FROM (\
     SELECT max(revision) AS r FROM events WHERE stream = ?1 \
     UNION ALL SELECT max(revision) FROM removed_events WHERE stream = ?1)";

/// The events of stream `?1` with revisions in `?2..=?3`, at most `?4`, in
/// revision order (descending for `Backwards`): a range of
/// `events_by_stream`.
pub(crate) fn stream_read(direction: Direction) -> String {
    let order = match direction {
        Direction::Forwards => "ASC",
        Direction::Backwards => "DESC",
    };
    format!(
        "SELECT {EVENT_COLUMNS} FROM events e WHERE e.stream = ?1 \
         AND e.revision BETWEEN ?2 AND ?3 ORDER BY e.revision {order} LIMIT ?4"
    )
}

/// The event with id `?1`: one probe of the `id` column's unique index.
pub(crate) fn by_id() -> String {
    format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.id = ?1")
}

/// A statement's text and the parameters after the fixed ones.
#[derive(Clone, Debug)]
pub(crate) struct Statement {
    /// The SQL (also the key of the connection's statement cache).
    pub sql: String,
    /// Values of `?{fixed + 1}` onwards.
    pub params: Vec<Value>,
}

/// Builds one statement, numbering parameters after the fixed ones.
struct Builder {
    fixed: usize,
    params: Vec<Value>,
}

impl Builder {
    fn new(fixed: usize) -> Builder {
        Builder {
            fixed,
            params: Vec::new(),
        }
    }

    /// Adds a text parameter; returns its placeholder.
    fn text(&mut self, s: &str) -> String {
        self.params.push(Value::Text(s.to_owned()));
        format!("?{}", self.fixed + self.params.len())
    }

    /// `(?a, ?b, …)` for `names`, or past [`MANY`] names one parameter,
    /// a JSON array of them: `(SELECT value FROM json_each(?a))`.
    fn list(&mut self, names: &[&str]) -> String {
        if names.len() > MANY {
            let p = self.text(&json_array(names));
            return format!("(SELECT value FROM json_each({p}))");
        }
        let placeholders: Vec<String> = names.iter().map(|n| self.text(n)).collect();
        format!("({})", placeholders.join(", "))
    }

    fn finish(self, sql: String) -> Statement {
        Statement {
            sql,
            params: self.params,
        }
    }
}

/// Arms, or names in one list, beyond which names are bound as one JSON
/// array (see the module docs).
const MANY: usize = 256;

/// The distinct names of `names`, first occurrence first (in linear time:
/// an item may name tens of thousands).
fn distinct(names: &[String]) -> Vec<&str> {
    let mut seen = std::collections::HashSet::with_capacity(names.len());
    names
        .iter()
        .map(String::as_str)
        .filter(|n| seen.insert(*n))
        .collect()
}

/// `names` as a JSON array of strings, as `json_each` reads it back.
fn json_array(names: &[&str]) -> String {
    let mut out = String::from("[");
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in name.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push(']');
    out
}

/// One arm of a query: positions of the events some item matches.
struct Arm {
    /// `FROM … WHERE …`, the bounds as `?1` and `?2`.
    from: String,
    /// The column holding the position.
    pos: &'static str,
}

/// How many arms `query` (not matching everything) has, one per name
/// (see [`arms`]).
fn arm_count(query: &Query) -> usize {
    query
        .items
        .iter()
        .map(|item| match item.tags.is_empty() {
            true => distinct(&item.types).len(),
            false => 1,
        })
        .sum()
}

/// The arms of `query` (which does not match everything): an item with
/// tags is one arm; an item with only types is one arm per type, each a
/// range of `events_by_type` in position order (one arm over several types
/// would need a sort). `with_events` joins `events` as `e` into every arm
/// (so that it can select event columns).
///
/// Past [`MANY`] arms, the types of type-only items make one arm and the
/// lone tags another (see the module docs); the tag arm reads each
/// position once however many of the tags its event has.
fn arms(query: &Query, with_events: bool, b: &mut Builder) -> Vec<Arm> {
    let mut out = Vec::new();
    let many = arm_count(query) > MANY;
    let (mut lone_types, mut lone_tags) = (Vec::new(), Vec::new());
    for item in &query.items {
        let types = distinct(&item.types);
        let tags = distinct(&item.tags);
        if many && tags.is_empty() {
            lone_types.extend(types);
            continue;
        }
        if many && tags.len() == 1 && types.is_empty() {
            lone_tags.extend(tags);
            continue;
        }
        let Some((first_tag, other_tags)) = tags.split_first() else {
            for t in types {
                let p = b.text(t);
                out.push(Arm {
                    from: format!("events e WHERE e.type = {p} AND e.position BETWEEN ?1 AND ?2"),
                    pos: "e.position",
                });
            }
            continue;
        };
        let mut from = String::from("tags t0");
        if with_events {
            from.push_str(" JOIN events e ON e.position = t0.position");
        }
        let p = b.text(first_tag);
        from.push_str(&format!(" WHERE t0.tag = {p}"));
        // The type is in the tag's row: no join to look at it.
        match types.as_slice() {
            [] => {}
            [t] => {
                let p = b.text(t);
                from.push_str(&format!(" AND t0.type = {p}"));
            }
            types => {
                let types = b.list(types);
                from.push_str(&format!(" AND t0.type IN {types}"));
            }
        }
        from.push_str(" AND t0.position BETWEEN ?1 AND ?2");
        // Each further tag is a primary-key probe; EXISTS rather than a
        // join keeps an item of 255 tags clear of SQLite's 64-table join
        // limit.
        for tag in other_tags {
            let p = b.text(tag);
            from.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM tags t WHERE t.tag = {p} AND t.position = t0.position)"
            ));
        }
        out.push(Arm {
            from,
            pos: "t0.position",
        });
    }
    if !lone_types.is_empty() {
        let p = b.text(&json_array(&lone_types));
        out.push(Arm {
            from: format!(
                "events e WHERE e.type IN (SELECT value FROM json_each({p})) \
                 AND e.position BETWEEN ?1 AND ?2"
            ),
            pos: "e.position",
        });
    }
    if !lone_tags.is_empty() {
        let p = b.text(&json_array(&lone_tags));
        let joined = match with_events {
            true => " JOIN events e ON e.position = t0.position",
            false => "",
        };
        out.push(Arm {
            from: format!(
                "(SELECT DISTINCT position FROM tags \
                 WHERE tag IN (SELECT value FROM json_each({p})) \
                 AND position BETWEEN ?1 AND ?2) t0{joined}"
            ),
            pos: "t0.position",
        });
    }
    out
}

/// The read of `query`'s events between `?1` and `?2` (inclusive), in
/// `direction`, at most `?3` of them (-1: no limit).
///
/// One arm is read straight from its index; several are merged by a
/// compound `UNION … ORDER BY … LIMIT`, which SQLite evaluates as a merge
/// of the arms' ordered index scans that stops at the limit, before the
/// surviving positions are looked up in `events`.
pub(crate) fn read(query: &Query, direction: Direction) -> Statement {
    select(query, direction, EVENT_COLUMNS)
}

/// The read of `query` forwards, as [`read`] makes it, selecting only
/// each event's position and tag list: what a lifecycle operation needs
/// to resolve a query target (see `lifecycle`).
pub(crate) fn targets(query: &Query) -> Statement {
    select(query, Direction::Forwards, "e.position, e.tags")
}

/// The read of `query` forwards, as [`read`] makes it, selecting only
/// each event's position: how a redaction resolves a query target (see
/// `lifecycle`).
pub(crate) fn target_positions(query: &Query) -> Statement {
    select(query, Direction::Forwards, "e.position")
}

/// [`read`] selecting `columns` (of `events e`).
fn select(query: &Query, direction: Direction, columns: &str) -> Statement {
    let order = match direction {
        Direction::Forwards => "ASC",
        Direction::Backwards => "DESC",
    };
    let mut b = Builder::new(3);
    let sql = if query.is_all() {
        format!(
            "SELECT {columns} FROM events e WHERE e.position BETWEEN ?1 AND ?2 \
             ORDER BY e.position {order} LIMIT ?3"
        )
    } else if arm_count(query) == 1 {
        let arm = arms(query, true, &mut b).remove(0);
        format!(
            "SELECT {columns} FROM {} ORDER BY {} {order} LIMIT ?3",
            arm.from, arm.pos
        )
    } else {
        let arms: Vec<String> = arms(query, false, &mut b)
            .into_iter()
            .map(|a| format!("SELECT {} AS p FROM {}", a.pos, a.from))
            .collect();
        format!(
            "SELECT {columns} FROM ({} ORDER BY 1 {order} LIMIT ?3) m \
             JOIN events e ON e.position = m.p ORDER BY e.position {order}",
            compound(arms, " UNION ")
        )
    };
    b.finish(sql)
}

/// The most terms of one compound `SELECT` this store writes; SQLite
/// refuses more than 500 (`SQLITE_MAX_COMPOUND_SELECT`).
const COMPOUND_TERMS: usize = 400;

/// `arms` (each a `SELECT` of one column named `p`) joined by `op` (a
/// `UNION` or `UNION ALL`), nested in subqueries of at most
/// [`COMPOUND_TERMS`] terms each, so that a query of any number of arms
/// (one per type of a tag-less item, one per tagged item) stays within
/// SQLite's limit.
fn compound(arms: Vec<String>, op: &str) -> String {
    if arms.len() <= COMPOUND_TERMS {
        return arms.join(op);
    }
    let nested: Vec<String> = arms
        .chunks(COMPOUND_TERMS)
        .map(|chunk| format!("SELECT p FROM ({})", chunk.join(op)))
        .collect();
    compound(nested, op)
}

/// The first position between `?1` and `?2` (inclusive) of an event
/// matching `query`: at most one row, whose only column is that position
/// or NULL.
pub(crate) fn first_match(query: &Query) -> Statement {
    let mut b = Builder::new(2);
    let sql = if query.is_all() {
        "SELECT min(position) FROM events WHERE position BETWEEN ?1 AND ?2".to_owned()
    } else {
        let mut arms: Vec<String> = arms(query, false, &mut b)
            .into_iter()
            .map(|a| format!("SELECT {} FROM {} ORDER BY {0} LIMIT 1", a.pos, a.from))
            .collect();
        if arms.len() == 1 {
            arms.remove(0)
        } else {
            let arms: Vec<String> = arms.iter().map(|a| format!("SELECT ({a}) AS p")).collect();
            format!("SELECT min(p) FROM ({})", compound(arms, " UNION ALL "))
        }
    };
    b.finish(sql)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gesta::QueryItem;

    #[test]
    fn parameters_are_numbered_after_the_fixed_ones() {
        let q = Query::item(QueryItem::new().types(["A", "B"]).tags(["x", "y", "x"]));
        let s = read(&q, Direction::Forwards);
        assert_eq!(s.params.len(), 4, "{s:?}");
        assert!(s.sql.contains("t0.tag = ?4"), "{}", s.sql);
        assert!(s.sql.contains("t0.type IN (?5, ?6)"), "{}", s.sql);
        assert!(s.sql.contains("t.tag = ?7"), "{}", s.sql);
        let one = read(
            &Query::item(QueryItem::new().event_type("A").tag("x")),
            Direction::Forwards,
        );
        assert!(
            one.sql.contains("t0.tag = ?4 AND t0.type = ?5"),
            "{}",
            one.sql
        );
        assert_eq!(
            s.sql.matches("EXISTS").count(),
            1,
            "repeats probed once: {}",
            s.sql
        );
        let c = first_match(&q.or(QueryItem::new().event_type("C")));
        assert_eq!(c.params.len(), 5, "{c:?}");
        assert!(c.sql.contains("e.type = ?7"), "{}", c.sql);
    }

    #[test]
    fn a_query_of_many_names_binds_few_parameters() {
        let names: Vec<String> = (0..40_000).map(|i| format!("n{i}")).collect();
        let mut q = Query::item(QueryItem::new().types(names.clone()));
        for name in &names {
            q = q.or(QueryItem::new().tag(name.clone()));
        }
        q = q.or(QueryItem::new().tag("x").types(names.clone()));
        for s in [read(&q, Direction::Forwards), first_match(&q)] {
            // The lone types, the lone tags, and the tagged item's tag and
            // types.
            assert_eq!(s.params.len(), 4, "{}", &s.sql[..200]);
            assert_eq!(s.sql.matches("json_each").count(), 3);
        }
    }

    #[test]
    fn names_bound_as_json_read_back_as_they_were() {
        let names = [
            "plain",
            "a \"quoted\" name",
            "back\\slash",
            "tab\tand\u{1}",
            "ünï ✓",
            "",
        ];
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        let mut stmt = conn
            .prepare("SELECT value FROM json_each(?1)")
            .expect("prepare");
        let back: Vec<String> = stmt
            .query_map([json_array(&names)], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(back, names);
    }
}

#[cfg(test)]
mod plans {
    use super::*;
    use gesta::QueryItem;

    /// The lines of `EXPLAIN QUERY PLAN` for `s`, binding 1 to every fixed
    /// parameter.
    fn plan(conn: &rusqlite::Connection, s: &Statement, fixed: usize) -> Vec<String> {
        let params = (0..fixed)
            .map(|_| Value::Integer(1))
            .chain(s.params.iter().cloned());
        conn.prepare(&format!("EXPLAIN QUERY PLAN {}", s.sql))
            .and_then(|mut stmt| {
                stmt.query_map(rusqlite::params_from_iter(params), |r| r.get(3))?
                    .collect()
            })
            .unwrap_or_else(|e| panic!("{}: {e}", s.sql))
    }

    /// Every statement is index-driven: no table scan, and no sort except
    /// the one over the (page-limited) result of a merged union.
    #[test]
    fn statements_use_the_indexes() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let options = crate::options::SqliteOptions::default();
        let conn = crate::schema::open_writer(&dir.path().join("db"), &options).expect("open");
        let queries = [
            Query::all(),
            Query::event_type("A"),
            Query::item(QueryItem::new().types(["A", "B"])),
            Query::tag("x"),
            Query::item(QueryItem::new().tags(["x", "y", "z"])),
            Query::item(QueryItem::new().types(["A", "B"]).tags(["x", "y"])),
            Query::tag("x").or(QueryItem::new().event_type("A")),
            Query::tag("x").or(QueryItem::new().types(["A", "B"])),
        ];
        for q in &queries {
            for (s, fixed) in [
                (read(q, Direction::Forwards), 3),
                (targets(q), 3),
                (read(q, Direction::Backwards), 3),
                (first_match(q), 2),
            ] {
                let lines = plan(&conn, &s, fixed);
                let scans = lines
                    .iter()
                    .any(|l| l.starts_with("SCAN") && l != "SCAN CONSTANT ROW" && l != "SCAN m");
                assert!(!scans, "{}: {lines:#?}", s.sql);
                let sorts = lines.iter().filter(|l| l.contains("TEMP B-TREE")).count();
                let merged = lines.iter().any(|l| l == "SCAN m");
                assert!(sorts == usize::from(merged), "{}: {lines:#?}", s.sql);
            }
        }
        // "Type AND tag" is one range of the `tags` primary key, which
        // holds the types; `events` is joined only to read what it found,
        // and a condition does not touch it.
        let typed = Query::item(QueryItem::new().event_type("A").tag("x"));
        let either = Query::item(QueryItem::new().types(["A", "B"]).tag("x"));
        for q in [&typed, &either] {
            for (s, fixed) in [
                (read(q, Direction::Forwards), 3),
                (read(q, Direction::Backwards), 3),
                (first_match(q), 2),
            ] {
                let lines = plan(&conn, &s, fixed);
                assert!(
                    lines[0].starts_with("SEARCH t0 USING PRIMARY KEY (tag=? AND position"),
                    "{}: {lines:#?}",
                    s.sql
                );
            }
            let lines = plan(&conn, &first_match(q), 2);
            assert_eq!(lines.len(), 1, "{lines:#?}");
        }
        let revision = Statement {
            sql: LAST_REVISION.to_owned(),
            params: vec![Value::Text("s".to_owned())],
        };
        let lines = plan(&conn, &revision, 0);
        let searches: Vec<&String> = lines.iter().filter(|l| l.starts_with("SEARCH")).collect();
        assert_eq!(
            searches[..2],
            [
                "SEARCH events USING COVERING INDEX events_by_stream (stream=?)",
                "SEARCH removed_events USING COVERING INDEX removed_by_stream (stream=?)",
            ],
            "{lines:#?}"
        );
        assert!(!lines.iter().any(|l| l.starts_with("SCAN")), "{lines:#?}");
    }
}
