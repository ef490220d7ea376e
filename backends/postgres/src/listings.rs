//! Listings of streams, event types and tags with their counts, from the
//! indexes alone (see `EventStore::list` for the contract), one statement
//! and one round trip per page.
//!
//! Names are `bytea`, which compares byte by byte whatever the database's
//! collation: the contract's order. Every statement is bounded to the page
//! on both sides: below by the page's start (`>` after, `>=` the prefix),
//! above by the prefix's successor (the prefix with its last byte raised
//! by one, which no name with the prefix reaches), so no index range is
//! read beyond the names the page may hold.
//!
//! - Types: `GROUP BY event_type` over `events_type (event_type,
//!   position)`; tags over `event_tags`'s primary key `(tag, position)`. A
//!   count is the length of its group, so a page costs the index entries
//!   of the names it lists.
//! - Streams: a loose index scan of `events_stream (stream, revision)` in
//!   a recursive query: each step seeks to the next stream name, and a
//!   stream's count is its last revision + 1 less its events removed
//!   before that revision, two more seeks; PostgreSQL
//!   evaluates the recursion only as far as the outer `LIMIT` asks.

use gesta::listing::page_start;
use gesta::{Listed, Listing, Result};
use postgres::types::ToSql;

use crate::pg_error;
use crate::pool::Conn;

/// The smallest byte string above every string that starts with
/// `prefix`, or `None` for the empty prefix (no bound). UTF-8 never holds
/// the byte 0xFF, so raising the last byte never carries; the loop stays
/// correct for any bytes all the same.
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut upper = prefix.to_vec();
    while let Some(last) = upper.pop() {
        if last < u8::MAX {
            upper.push(last + 1);
            return Some(upper);
        }
    }
    None
}

/// The statement of one page: `$1` the start, `$2` the limit, `$3` the
/// upper bound when `bounded`.
fn statement(s: &str, what: Listing, exclusive: bool, bounded: bool) -> String {
    let op = if exclusive { ">" } else { ">=" };
    match what {
        Listing::Streams => {
            let upper = if bounded { " AND e.stream < $3" } else { "" };
            format!(
                "WITH RECURSIVE names(name) AS ( \
                   (SELECT e.stream FROM {s}.events e \
                     WHERE e.stream IS NOT NULL AND e.stream {op} $1{upper} \
                     ORDER BY e.stream LIMIT 1) \
                   UNION ALL \
                   SELECT (SELECT e.stream FROM {s}.events e \
                            WHERE e.stream IS NOT NULL AND e.stream > names.name{upper} \
                            ORDER BY e.stream LIMIT 1) \
                     FROM names WHERE names.name IS NOT NULL \
                 ) \
                 SELECT names.name, last.revision + 1 - \
                        (SELECT count(*) FROM {s}.removed_events r \
                          WHERE r.stream = names.name AND r.revision < last.revision) \
                   FROM names CROSS JOIN LATERAL \
                        (SELECT max(e.revision) AS revision FROM {s}.events e \
                          WHERE e.stream = names.name) last \
                  WHERE names.name IS NOT NULL LIMIT $2"
            )
        }
        Listing::Types | Listing::Tags => {
            let (column, table) = match what {
                Listing::Types => ("event_type", "events"),
                _ => ("tag", "event_tags"),
            };
            let upper = if bounded {
                format!(" AND {column} < $3")
            } else {
                String::new()
            };
            format!(
                "SELECT {column}, count(*) FROM {s}.{table} \
                 WHERE {column} {op} $1{upper} \
                 GROUP BY {column} ORDER BY {column} LIMIT $2"
            )
        }
    }
}

/// One page of the listing in the store of schema `s` (quoted); the
/// request was checked by the caller.
pub(crate) fn list(
    conn: &mut Conn,
    s: &str,
    what: Listing,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<Listed>> {
    let (start, exclusive) = page_start(prefix, after);
    let upper = successor(prefix.as_bytes());
    let sql = statement(s, what, exclusive, upper.is_some());
    let start = start.as_bytes();
    let limit = limit as i64;
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&start, &limit];
    if let Some(upper) = &upper {
        params.push(upper);
    }
    let rows = conn.query(&sql, &params)?;
    rows.iter()
        .map(|row| {
            let name: Vec<u8> = row.try_get(0).map_err(pg_error)?;
            let count: Option<i64> = row.try_get(1).map_err(pg_error)?;
            let name = String::from_utf8(name)
                .map_err(|e| pg_error(format!("a listed name is not UTF-8: {e}")))?;
            Ok(Listed::new(name, count.unwrap_or(0).max(0) as u64))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_bounds_the_prefix() {
        assert_eq!(successor(b""), None);
        assert_eq!(successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(successor(&[b'a', 0xff]), Some(b"b".to_vec()));
        assert_eq!(successor(&[0xff, 0xff]), None);
        let p = "é".as_bytes();
        let up = successor(p).unwrap();
        for name in ["é", "éa", "é\u{10FFFF}"] {
            assert!(name.as_bytes() >= p && name.as_bytes() < &up[..]);
        }
        assert!("ê".as_bytes() >= &up[..]);
    }
}
