//! Removal and retention rules (see [`gesta::removal`] for the contract):
//! the statements of `remove`, `delete_stream`, `truncate_stream`,
//! `set_retention`, `retention_rules` and `enforce_retention`, run in a
//! transaction begun as an append's (the store's advisory lock), so a
//! removal is serialized with appends and their conditions.
//!
//! A removed event leaves `events` — one statement moves its row to
//! `removed_events` without its data and metadata and deletes its rows in
//! `event_tags` — so every read, query, condition, listing and
//! subscription stops seeing it with no change to their statements. What
//! must outlive it reads `removed_events` too or does not read `events`:
//! the head (the last batch's last position), a stream's last revision,
//! the ids taken (and a retry's comparison), the commit times
//! `position_at` searches. As for a redaction, PostgreSQL keeps the
//! deleted row versions in the table's files until `VACUUM`.
//!
//! The rules live in `retention`, in the order they were first set; each
//! change is also an audit entry.

use gesta::lifecycle::{self as lc, Operation, Target, decode_rule, encode_rule};
use gesta::removal::{self as rm, Removal, Removed, RetentionRule, RetentionScope};
use gesta::{Direction, Error, Result};
use postgres::types::ToSql;

use crate::lifecycle::{LifecycleSql, head, record, resolve_positions};
use crate::pg_error;
use crate::pool::Conn;
use crate::sql::{self, Select};
use crate::store::{bound, to_u64};

/// The statements, for one schema.
pub(crate) struct RemovalSql {
    s: String,
    of_stream: String,
    below_revision: String,
    remove: String,
    rules: String,
    clear_rules: String,
    insert_rules: String,
    position_at: String,
    now: String,
}

impl RemovalSql {
    /// The statements on the tables of schema `s` (a quoted identifier).
    pub(crate) fn new(s: &str) -> RemovalSql {
        RemovalSql {
            s: s.to_owned(),
            of_stream: format!(
                "SELECT position FROM {s}.events WHERE stream = $1 ORDER BY revision"
            ),
            below_revision: format!(
                "SELECT position FROM {s}.events WHERE stream = $1 AND revision < $2 \
                 ORDER BY revision"
            ),
            // `$1`: the positions to remove (all in `events`); how many
            // moved.
            remove: format!(
                "WITH moved AS (
                    DELETE FROM {s}.events WHERE position = ANY($1::bigint[])
                    RETURNING position, event_type, tags, id, stream, revision, timestamp_micros
                ), kept AS (
                    INSERT INTO {s}.removed_events
                        (position, event_type, tags, id, stream, revision, timestamp_micros)
                    SELECT * FROM moved RETURNING position
                ), untagged AS (
                    DELETE FROM {s}.event_tags t
                    USING (SELECT m.position, unnest(m.tags) AS tag FROM moved m) x
                    WHERE t.tag = x.tag AND t.position = x.position
                )
                SELECT count(*) FROM kept"
            ),
            rules: format!("SELECT ord, rule FROM {s}.retention ORDER BY ord"),
            clear_rules: format!("DELETE FROM {s}.retention"),
            insert_rules: format!(
                "INSERT INTO {s}.retention (ord, rule) \
                 SELECT * FROM unnest($1::bigint[], $2::bytea[])"
            ),
            // `$1` the time, `$2` the head: a binary search over the
            // commit times of events, removed or not, in one statement
            // (a search driven from Rust paid a round trip per step).
            position_at: {
                let mid = "lo + (hi - lo) / 2";
                let ts = format!(
                    "coalesce((SELECT timestamp_micros FROM {s}.events WHERE position = {mid}), \
                     (SELECT timestamp_micros FROM {s}.removed_events WHERE position = {mid}))"
                );
                format!(
                    "WITH RECURSIVE step(lo, hi, found, bad) AS (
                        SELECT 1::bigint, $2::bigint, 0::bigint, false
                        UNION ALL
                        SELECT
                            CASE WHEN {ts} <= $1 THEN {mid} + 1 ELSE lo END,
                            CASE WHEN {ts} <= $1 THEN hi ELSE {mid} - 1 END,
                            CASE WHEN {ts} <= $1 THEN {mid} ELSE found END,
                            bad OR {ts} IS NULL
                        FROM step WHERE lo <= hi
                    )
                    SELECT found, bad FROM step WHERE lo > hi"
                )
            },
            // The clock appends take their commit times from.
            now: "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint".to_owned(),
        }
    }
}

fn positions_of(rows: Vec<postgres::Row>) -> Result<Vec<u64>> {
    rows.iter()
        .map(|row| {
            let position: i64 = row.try_get(0).map_err(pg_error)?;
            to_u64(position, position, "position")
        })
        .collect()
}

/// Removes the events `target` names that are still there, and records it.
pub(crate) fn remove(
    conn: &mut Conn,
    lifecycle: &LifecycleSql,
    sql: &RemovalSql,
    target: &Target,
) -> Result<Removed> {
    let head = head(conn, lifecycle)?;
    let positions = resolve_positions(conn, lifecycle, target, head)?;
    commit(
        conn,
        lifecycle,
        sql,
        head,
        Removal::Target(target.clone()),
        &positions,
    )
}

/// Removes the events of `stream` with revisions below `before` (all with
/// `None`), and records it.
pub(crate) fn remove_stream(
    conn: &mut Conn,
    lifecycle: &LifecycleSql,
    sql: &RemovalSql,
    stream: &str,
    before: Option<u64>,
) -> Result<Removed> {
    let head = head(conn, lifecycle)?;
    let name = stream.as_bytes();
    let rows = match before {
        Some(b) => conn.query(&sql.below_revision, &[&name, &bound(b)])?,
        None => conn.query(&sql.of_stream, &[&name])?,
    };
    let positions = positions_of(rows)?;
    lc::check_targeted(positions.len())?;
    let removal = Removal::Stream {
        stream: stream.to_owned(),
        before,
    };
    commit(conn, lifecycle, sql, head, removal, &positions)
}

/// Moves the events at `positions` (ascending, all in `events`) out and
/// records the removal made at `head`.
fn commit(
    conn: &mut Conn,
    lifecycle: &LifecycleSql,
    sql: &RemovalSql,
    head: u64,
    removal: Removal,
    positions: &[u64],
) -> Result<Removed> {
    let (removed, result) = rm::plan_remove(positions, |_| false);
    if !removed.is_empty() {
        let wanted: Vec<i64> = removed.iter().map(|&p| bound(p)).collect();
        let moved: i64 = conn
            .query_one(&sql.remove, &[&wanted])?
            .try_get(0)
            .map_err(pg_error)?;
        if moved != wanted.len() as i64 {
            return Err(Error::Corruption {
                file: std::path::PathBuf::from("postgres"),
                offset: head,
                reason: format!("{moved} of {} events to remove were found", wanted.len()),
            });
        }
    }
    record(conn, lifecycle, head, Operation::Remove { removal, result })?;
    Ok(result)
}

/// The retention rules in force, in the order they were first set.
pub(crate) fn rules(conn: &mut Conn, sql: &RemovalSql) -> Result<Vec<RetentionRule>> {
    conn.query(&sql.rules, &[])?
        .iter()
        .map(|row| {
            let ord: i64 = row.try_get(0).map_err(pg_error)?;
            let bytes: &[u8] = row.try_get(1).map_err(pg_error)?;
            decode_rule(bytes).map_err(|e| Error::Corruption {
                file: std::path::PathBuf::from("postgres"),
                offset: u64::try_from(ord).unwrap_or(0),
                reason: format!("retention rule {ord}: {e}"),
            })
        })
        .collect()
}

/// Sets `rule` (checked), replacing its scope's, and records it.
pub(crate) fn set_rule(
    conn: &mut Conn,
    lifecycle: &LifecycleSql,
    sql: &RemovalSql,
    rule: &RetentionRule,
) -> Result<()> {
    let rules = rm::with_rule(&rules(conn, sql)?, rule)?;
    conn.query(&sql.clear_rules, &[])?;
    let ords: Vec<i64> = (0..rules.len() as i64).collect();
    let bytes: Vec<Vec<u8>> = rules.iter().map(encode_rule).collect();
    conn.query(&sql.insert_rules, &[&ords, &bytes])?;
    let head = head(conn, lifecycle)?;
    record(
        conn,
        lifecycle,
        head,
        Operation::SetRetention { rule: rule.clone() },
    )
}

/// Enforces every rule now (by the server's clock, which commit times
/// come from), each one removal (recorded if it removed any).
pub(crate) fn enforce(
    conn: &mut Conn,
    lifecycle: &LifecycleSql,
    sql: &RemovalSql,
) -> Result<Removed> {
    let now: i64 = conn
        .query_one(&sql.now, &[])?
        .try_get(0)
        .map_err(pg_error)?;
    let now = to_u64(0, now, "clock")?;
    let mut total = Removed::default();
    for rule in rules(conn, sql)? {
        let head = head(conn, lifecycle)?;
        let scope = match &rule.scope {
            RetentionScope::Stream(stream) => {
                positions_of(conn.query(&sql.of_stream, &[&stream.as_bytes()])?)?
            }
            RetentionScope::Query(query) => {
                let built = sql::build(&sql.s, query, Direction::Forwards, Select::Positions);
                let (after, before, limit) = (0i64, bound(head).saturating_add(1), i64::MAX);
                let mut params: Vec<&(dyn ToSql + Sync)> = vec![&after, &before, &limit];
                params.extend(built.params.iter().map(|p| &**p as &(dyn ToSql + Sync)));
                positions_of(conn.query(&built.sql, &params)?)?
            }
        };
        let too_old = match rm::too_old_at_or_before(&rule, now) {
            Some(t) if !scope.is_empty() => position_at(conn, sql, bound(t), head)?,
            _ => 0,
        };
        let n = rm::removed_prefix(&rule, &scope, too_old);
        if n > 0 {
            let removal = Removal::Retention(rule.clone());
            total += commit(conn, lifecycle, sql, head, removal, &scope[..n])?;
        }
    }
    Ok(total)
}

/// The last position up to `head` committed at or before `t` (0 if
/// none): a binary search over the commit times of events, removed or
/// not, which never decrease with positions, in one statement whose every
/// step is a primary-key probe. A position the search reaches without an
/// event is damage.
pub(crate) fn position_at(conn: &mut Conn, sql: &RemovalSql, t: i64, head: u64) -> Result<u64> {
    let row = conn.query_one(&sql.position_at, &[&t, &bound(head)])?;
    let found: i64 = row.try_get(0).map_err(pg_error)?;
    let bad: bool = row.try_get(1).map_err(pg_error)?;
    if bad {
        return Err(gesta::Error::Corruption {
            file: std::path::PathBuf::from("postgres"),
            offset: 0,
            reason: format!("a position up to the head {head} holds no event, removed or not"),
        });
    }
    to_u64(found, found, "position")
}
