//! Listings of streams, event types and tags with their counts, from the
//! indexes alone (see `EventStore::list` for the contract).
//!
//! - Types: `GROUP BY type` over the covering index `events_by_type`,
//!   entered at the page's start; tags likewise over the primary key of
//!   `tags`. A count is the length of its group, so a page costs the index
//!   entries of the names it lists.
//! - Streams: a loose scan of `events_by_stream`: the next stream name is
//!   one seek past the previous one, and its count (one more than its last
//!   revision) one more seek. A page costs two seeks per stream listed,
//!   whatever the streams' lengths.
//!
//! Every statement is entered at the page's start (`>` after, `>=` the
//! prefix) and, for types and tags, bounded above by the first name past
//! the prefix (a group past it would be counted whole before the walk saw
//! it); names compare with the `BINARY` collation, which is byte order.
//! The rows are stepped one at a time and the walk stops at the first name
//! past the prefix, so no statement reads beyond the page. All
//! of a page is read in one read transaction: one snapshot.

use gesta::listing::page_start;
use gesta::{Listed, Listing};
use rusqlite::{Connection, OptionalExtension, params};

/// One page of the listing; the request was checked by the caller.
pub(crate) fn list(
    conn: &Connection,
    what: Listing,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Vec<Listed>> {
    let (start, exclusive) = page_start(prefix, after);
    let op = if exclusive { ">" } else { ">=" };
    // The first name past the prefix, so that the last page does not
    // count the next name's whole group before the walk sees it is past.
    let upper = successor(prefix);
    let below = if upper.is_some() {
        " AND {col} < ?3"
    } else {
        ""
    };
    let tx = conn.unchecked_transaction()?;
    let out = match what {
        Listing::Streams => streams(&tx, op, start, prefix, limit)?,
        Listing::Types => grouped(
            &tx,
            &format!(
                "SELECT type, count(*) FROM events WHERE type {op} ?1{} \
                 GROUP BY type ORDER BY type LIMIT ?2",
                below.replace("{col}", "type")
            ),
            start,
            upper.as_deref(),
            prefix,
            limit,
        )?,
        Listing::Tags => grouped(
            &tx,
            &format!(
                "SELECT tag, count(*) FROM tags WHERE tag {op} ?1{} \
                 GROUP BY tag ORDER BY tag LIMIT ?2",
                below.replace("{col}", "tag")
            ),
            start,
            upper.as_deref(),
            prefix,
            limit,
        )?,
    };
    tx.commit()?;
    Ok(out)
}

/// The least string above every string that starts with `prefix`, in
/// byte order (which is code point order for UTF-8): the prefix with its
/// last character that can be, moved on by one (`None` for the empty
/// prefix, or one of `char::MAX` only). A string, so that SQLite compares
/// it with the names as text.
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match u32::from(last) + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The (name, count) rows of `sql`, while the names keep the prefix; `?3`
/// is `upper` when there is one.
fn grouped(
    conn: &Connection,
    sql: &str,
    start: &str,
    upper: Option<&str>,
    prefix: &str,
    limit: usize,
) -> rusqlite::Result<Vec<Listed>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = match upper {
        Some(upper) => stmt.query(rusqlite::params![start, limit as i64, upper])?,
        None => stmt.query(rusqlite::params![start, limit as i64])?,
    };
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let name: String = row.get(0)?;
        if !name.starts_with(prefix) {
            break;
        }
        let count: i64 = row.get(1)?;
        out.push(Listed::new(name, count.max(0) as u64));
    }
    Ok(out)
}

/// Streams by a loose index scan: seek to the next name, then to its last
/// revision (the count, less the stream's removed events before it).
fn streams(
    conn: &Connection,
    op: &str,
    start: &str,
    prefix: &str,
    limit: usize,
) -> rusqlite::Result<Vec<Listed>> {
    let first = format!(
        "SELECT stream FROM events WHERE stream IS NOT NULL AND stream {op} ?1 \
         ORDER BY stream LIMIT 1"
    );
    let mut next = conn.prepare_cached(
        "SELECT stream FROM events WHERE stream IS NOT NULL AND stream > ?1 \
         ORDER BY stream LIMIT 1",
    )?;
    let mut last = conn.prepare_cached("SELECT max(revision) FROM events WHERE stream = ?1")?;
    // Revisions count removed events too: those below the last one left
    // are not events the stream has.
    let mut gone = conn.prepare_cached(
        "SELECT count(*) FROM removed_events WHERE stream = ?1 AND revision < ?2",
    )?;
    let mut name: Option<String> = conn
        .prepare_cached(&first)?
        .query_row([start], |r| r.get(0))
        .optional()?;
    let mut out = Vec::new();
    while let Some(stream) = name.take() {
        if !stream.starts_with(prefix) || out.len() == limit {
            break;
        }
        let revision: Option<i64> = last.query_row([&stream], |r| r.get(0))?;
        name = next.query_row([&stream], |r| r.get(0)).optional()?;
        if let Some(revision) = revision {
            let gone: i64 = gone.query_row(params![&stream, revision], |r| r.get(0))?;
            out.push(Listed::new(
                stream,
                (revision.max(0) + 1 - gone).max(0) as u64,
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_successor_bounds_every_name_with_the_prefix() {
        assert_eq!(successor(""), None);
        assert_eq!(successor("ab").as_deref(), Some("ac"));
        assert_eq!(successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(successor("\u{10FFFF}"), None);
        let up = successor("é").unwrap();
        for name in ["é", "éa", "é\u{10FFFF}", "é\u{10FFFF}\u{10FFFF}"] {
            assert!(name < up.as_str(), "{name:?}");
        }
        assert!("ê" >= up.as_str());
    }

    /// The plan of every listing statement searches an index (never a full
    /// scan of `events`), so a page costs what it lists.
    #[test]
    fn statements_use_the_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            crate::SqliteStore::open(dir.path().join("db"), crate::SqliteOptions::default())
                .unwrap();
        let conn = Connection::open(dir.path().join("db")).unwrap();
        drop(store);
        let plan = |sql: &str| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<rusqlite::Result<Vec<_>>>()
                .unwrap();
            rows.join("; ")
        };
        let types = plan(
            "SELECT type, count(*) FROM events WHERE type > 'a' GROUP BY type ORDER BY type LIMIT 5",
        );
        assert!(
            types.contains("USING COVERING INDEX events_by_type (type>?)"),
            "{types}"
        );
        assert!(!types.contains("TEMP B-TREE"), "{types}");
        let tags = plan(
            "SELECT tag, count(*) FROM tags WHERE tag >= 'a' GROUP BY tag ORDER BY tag LIMIT 5",
        );
        assert!(tags.contains("USING PRIMARY KEY (tag>?)"), "{tags}");
        assert!(!tags.contains("TEMP B-TREE"), "{tags}");
        // A prefix's page ends at the name past it: the next group is not
        // counted.
        let bounded = plan(
            "SELECT tag, count(*) FROM tags WHERE tag >= 'a' AND tag < 'b' \
             GROUP BY tag ORDER BY tag LIMIT 5",
        );
        assert!(
            bounded.contains("USING PRIMARY KEY (tag>? AND tag<?)"),
            "{bounded}"
        );
        let next = plan(
            "SELECT stream FROM events WHERE stream IS NOT NULL AND stream > 'a' \
             ORDER BY stream LIMIT 1",
        );
        assert!(
            next.contains("USING COVERING INDEX events_by_stream (stream>?)"),
            "{next}"
        );
        let last = plan("SELECT max(revision) FROM events WHERE stream = 'a'");
        assert!(last.contains("events_by_stream (stream=?)"), "{last}");
    }
}
