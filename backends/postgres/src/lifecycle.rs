//! Retroactive tags, redaction and the audit trail (see
//! [`gesta::lifecycle`] for the contract): the statements of [`add_tags`],
//! [`redact`] and [`audit_log`].
//!
//! `add_tags` runs in a transaction begun as an append's is — `READ
//! COMMITTED`, then the store's advisory lock — so it is serialized with
//! appends: an append's condition is checked either wholly before it or,
//! by statements whose snapshot is taken after it committed, wholly after
//! it. Under the lock, the target is resolved against the head: a query
//! with the read statement of `sql` (positions ascending, up to the head),
//! positions by their rows; each targeted event's current tags come from
//! its `tags` array. The shared checks and plan decide what each event
//! gains; one statement appends the gained tags to the events' `tags`
//! arrays (in the order asked for), indexes them in `event_tags` and
//! counts them in `added_tags` (so that the events' own tags stay known,
//! for idempotent retries), and the operation's audit entry is inserted
//! last. Any error rolls all of it back.
//!
//! `redact` runs in the same kind of transaction: the target resolved
//! against the head (positions checked, or the query's positions), the
//! `redacted` table read for which of them are redacted already, then one
//! statement sets the others' `data` and `metadata` to the empty `bytea`
//! and inserts their positions into `redacted`, and the audit entry is
//! inserted last. PostgreSQL writes a new row version; the old one, with
//! the values, stays in the table's files until `VACUUM` (see
//! `PostgresStore::redact`).
//!
//! Nothing is announced to subscriptions: no `NOTIFY` (the head does not
//! move, and listeners only read it), no `batches` row, no wake-up of this
//! handle's subscribers.

use std::collections::HashSet;

use gesta::lifecycle::{
    self as lc, AuditEntry, MAX_TARGETED_EVENTS, Operation, Redacted, TagsAdded, Target,
};
use gesta::{Direction, Error, Result};
use postgres::Row;
use postgres::types::ToSql;

use crate::pg_error;
use crate::pool::Conn;
use crate::sql::{self, Select};
use crate::store::{bound, to_u64};

/// The statements, for one schema.
pub(crate) struct LifecycleSql {
    /// The schema, quoted (for the target queries built per call).
    s: String,
    head: String,
    tags_at: String,
    present: String,
    apply: String,
    redacted_of: String,
    erase: String,
    next_entry: String,
    record: String,
    page: String,
}

impl LifecycleSql {
    /// The statements on the tables of schema `s` (a quoted identifier).
    pub(crate) fn new(s: &str) -> LifecycleSql {
        LifecycleSql {
            s: s.to_owned(),
            head: crate::sql::head(s),
            tags_at: format!(
                "SELECT position, tags FROM {s}.events \
                 WHERE position = ANY($1::bigint[]) ORDER BY position"
            ),
            present: format!(
                "SELECT position FROM {s}.events WHERE position = ANY($1::bigint[]) \
                 ORDER BY position"
            ),
            // `$1`, `$2`: each (position, tag) gained, in the order of the
            // operation's tags; the ordinality keeps that order per event.
            apply: format!(
                "WITH gained AS (
                    SELECT * FROM unnest($1::bigint[], $2::bytea[])
                        WITH ORDINALITY AS g(position, tag, k)
                ), lists AS (
                    SELECT position, array_agg(tag ORDER BY k) AS tags
                    FROM gained GROUP BY position
                ), updated AS (
                    UPDATE {s}.events e SET tags = e.tags || l.tags
                    FROM lists l WHERE e.position = l.position
                ), counted AS (
                    INSERT INTO {s}.added_tags AS a (position, count)
                    SELECT position, cardinality(tags) FROM lists
                    ON CONFLICT (position) DO UPDATE SET count = a.count + excluded.count
                )
                INSERT INTO {s}.event_tags (tag, position)
                SELECT tag, position FROM gained ON CONFLICT DO NOTHING"
            ),
            redacted_of: format!(
                "SELECT position FROM {s}.redacted WHERE position = ANY($1::bigint[])"
            ),
            // `$1`: the positions to erase (none redacted yet); how many
            // rows it changed. The snapshots that may hold what was folded
            // from them go too: at or after the least erased position or
            // stream revision (`gesta::lifecycle::snapshots_erased_from`;
            // `least` passes over a null revision).
            erase: format!(
                "WITH erased AS (
                    UPDATE {s}.events SET data = ''::bytea, metadata = ''::bytea
                    WHERE position = ANY($1::bigint[]) RETURNING position, revision
                ), marked AS (
                    INSERT INTO {s}.redacted (position) SELECT position FROM erased
                    RETURNING position
                ), dropped AS (
                    DELETE FROM {s}.snapshots
                    WHERE position >= (SELECT min(least(position, revision)) FROM erased)
                )
                SELECT count(*) FROM marked"
            ),
            // The next sequence, and the commit time: the server's clock,
            // as an append's, never before the previous entry's nor the
            // head event's (`$1`).
            next_entry: format!(
                "SELECT
                    coalesce((SELECT sequence FROM {s}.audit ORDER BY sequence DESC LIMIT 1), 0)
                        + 1,
                    greatest(
                        (extract(epoch FROM clock_timestamp()) * 1000000)::bigint,
                        coalesce(
                            (SELECT timestamp_micros FROM {s}.audit
                             ORDER BY sequence DESC LIMIT 1),
                            0
                        ),
                        coalesce(
                            (SELECT timestamp_micros FROM {s}.events WHERE position = $1),
                            0
                        )
                    )"
            ),
            record: format!(
                "INSERT INTO {s}.audit (sequence, timestamp_micros, entry) VALUES ($1, $2, $3)"
            ),
            page: format!(
                "SELECT sequence, entry FROM {s}.audit WHERE sequence > $1 \
                 ORDER BY sequence LIMIT $2"
            ),
        }
    }
}

fn corrupt(offset: u64, reason: String) -> Error {
    Error::Corruption {
        file: std::path::PathBuf::from("postgres"),
        offset,
        reason,
    }
}

/// A targeted event's position and tags from a `(position, tags)` row.
fn targeted(row: &Row) -> Result<(u64, Vec<String>)> {
    let position: i64 = row.try_get(0).map_err(pg_error)?;
    let position = to_u64(position, position, "position")?;
    let raw: Vec<Vec<u8>> = row.try_get(1).map_err(pg_error)?;
    let tags = raw
        .into_iter()
        .map(|t| {
            String::from_utf8(t).map_err(|_| {
                corrupt(
                    position,
                    format!("event at position {position}: a tag is not UTF-8"),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((position, tags))
}

/// The events `target` names, ascending, each with its tags, up to `head`;
/// the target's checks applied. Removed events are left out (a position
/// target may name one: below the head, only a removal leaves no row).
fn resolve(
    conn: &mut Conn,
    sql: &LifecycleSql,
    target: &Target,
    head: u64,
) -> Result<Vec<(u64, Vec<String>)>> {
    match target {
        Target::Positions(positions) => {
            let positions = lc::check_positions(positions, head)?;
            let wanted: Vec<i64> = positions.iter().map(|&p| bound(p)).collect();
            conn.query(&sql.tags_at, &[&wanted])?
                .iter()
                .map(targeted)
                .collect::<Result<Vec<_>>>()
        }
        Target::Query(query) => {
            let built = sql::build(&sql.s, query, Direction::Forwards, Select::Tags);
            // One more than the limit, so that too many is seen without
            // reading them all.
            let (after, before) = (0i64, bound(head).saturating_add(1));
            let limit = bound(MAX_TARGETED_EVENTS as u64 + 1);
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&after, &before, &limit];
            params.extend(built.params.iter().map(|p| &**p as &(dyn ToSql + Sync)));
            let found = conn
                .query(&built.sql, &params)?
                .iter()
                .map(targeted)
                .collect::<Result<Vec<_>>>()?;
            lc::check_targeted(found.len())?;
            Ok(found)
        }
    }
}

/// Adds `tags` (checked by [`lc::check_add_tags`]: each once, in order) to
/// the events `target` names and records the operation, inside the
/// transaction open on `conn` under the store's lock; the caller commits
/// if this succeeds and rolls back otherwise.
pub(crate) fn add_tags(
    conn: &mut Conn,
    sql: &LifecycleSql,
    target: &Target,
    tags: Vec<String>,
) -> Result<TagsAdded> {
    let head = head(conn, sql)?;
    let events = resolve(conn, sql, target, head)?;
    let positions: Vec<u64> = events.iter().map(|(p, _)| *p).collect();
    let (gained, result) =
        lc::plan_tags(&positions, &tags, |p| match positions.binary_search(&p) {
            Ok(i) => Ok(events[i].1.clone()),
            Err(_) => Err(corrupt(p, format!("position {p} was not resolved"))),
        })?;

    let mut owners: Vec<i64> = Vec::new();
    let mut names: Vec<&[u8]> = Vec::new();
    for (tag, list) in tags.iter().zip(&gained) {
        for &p in list {
            owners.push(bound(p));
            names.push(tag.as_bytes());
        }
    }
    if !owners.is_empty() {
        conn.query(&sql.apply, &[&owners, &names])?;
    }

    let operation = Operation::AddTags {
        tags,
        target: target.clone(),
        result,
    };
    record(conn, sql, head, operation)?;
    Ok(result)
}

/// The store's head, inside the operation's transaction.
pub(crate) fn head(conn: &mut Conn, sql: &LifecycleSql) -> Result<u64> {
    let head: i64 = conn
        .query_one(&sql.head, &[])?
        .try_get(0)
        .map_err(pg_error)?;
    to_u64(head, head, "head")
}

/// The positions `target` names, ascending and each once, up to `head`;
/// the target's checks applied. Removed events are left out (a position
/// target may name one).
pub(crate) fn resolve_positions(
    conn: &mut Conn,
    sql: &LifecycleSql,
    target: &Target,
    head: u64,
) -> Result<Vec<u64>> {
    match target {
        Target::Positions(positions) => {
            let positions = lc::check_positions(positions, head)?;
            let wanted: Vec<i64> = positions.iter().map(|&p| bound(p)).collect();
            conn.query(&sql.present, &[&wanted])?
                .iter()
                .map(|row| {
                    let position: i64 = row.try_get(0).map_err(pg_error)?;
                    to_u64(position, position, "position")
                })
                .collect()
        }
        Target::Query(query) => {
            let built = sql::build(&sql.s, query, Direction::Forwards, Select::Positions);
            // One more than the limit, as `resolve` does.
            let (after, before) = (0i64, bound(head).saturating_add(1));
            let limit = bound(MAX_TARGETED_EVENTS as u64 + 1);
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&after, &before, &limit];
            params.extend(built.params.iter().map(|p| &**p as &(dyn ToSql + Sync)));
            let found = conn
                .query(&built.sql, &params)?
                .iter()
                .map(|row| {
                    let position: i64 = row.try_get(0).map_err(pg_error)?;
                    to_u64(position, position, "position")
                })
                .collect::<Result<Vec<_>>>()?;
            lc::check_targeted(found.len())?;
            Ok(found)
        }
    }
}

/// Erases the data and metadata of the events `target` names (checked by
/// [`lc::check_target`]) that are not redacted yet, and records the
/// operation, inside the transaction open on `conn` under the store's
/// lock; the caller commits if this succeeds and rolls back otherwise.
pub(crate) fn redact(conn: &mut Conn, sql: &LifecycleSql, target: &Target) -> Result<Redacted> {
    let head = head(conn, sql)?;
    let positions = resolve_positions(conn, sql, target, head)?;
    let wanted: Vec<i64> = positions.iter().map(|&p| bound(p)).collect();
    let already: HashSet<u64> = conn
        .query(&sql.redacted_of, &[&wanted])?
        .iter()
        .map(|row| {
            let position: i64 = row.try_get(0).map_err(pg_error)?;
            to_u64(position, position, "redacted position")
        })
        .collect::<Result<_>>()?;
    let (erased, result) = lc::plan_redact(&positions, |p| Ok(already.contains(&p)))?;
    if !erased.is_empty() {
        let erased: Vec<i64> = erased.iter().map(|&p| bound(p)).collect();
        let changed: i64 = conn
            .query_one(&sql.erase, &[&erased])?
            .try_get(0)
            .map_err(pg_error)?;
        if changed != erased.len() as i64 {
            return Err(corrupt(
                head,
                format!(
                    "{} of {} positions up to the head {head} have no event",
                    erased.len() as i64 - changed,
                    erased.len()
                ),
            ));
        }
    }
    let operation = Operation::Redact {
        target: target.clone(),
        result,
    };
    record(conn, sql, head, operation)?;
    Ok(result)
}

/// Records `operation`, made at `head`, in the audit trail: the next
/// sequence and the commit time (see `next_entry`).
pub(crate) fn record(
    conn: &mut Conn,
    sql: &LifecycleSql,
    head: u64,
    operation: Operation,
) -> Result<()> {
    let row = conn.query_one(&sql.next_entry, &[&bound(head)])?;
    let sequence: i64 = row.try_get(0).map_err(pg_error)?;
    let timestamp: i64 = row.try_get(1).map_err(pg_error)?;
    let entry = AuditEntry {
        sequence: to_u64(sequence, sequence, "audit sequence")?,
        timestamp_micros: to_u64(sequence, timestamp, "audit timestamp")?,
        head,
        operation,
    };
    let bytes = lc::encode_entry(&entry);
    conn.query(&sql.record, &[&sequence, &timestamp, &bytes])?;
    Ok(())
}

/// The audit entries after sequence `after`, oldest first, at most `limit`
/// (checked by the caller).
pub(crate) fn audit_log(
    conn: &mut Conn,
    sql: &LifecycleSql,
    after: u64,
    limit: usize,
) -> Result<Vec<AuditEntry>> {
    let limit = bound(limit as u64);
    conn.query(&sql.page, &[&bound(after), &limit])?
        .iter()
        .map(|row| {
            let sequence: i64 = row.try_get(0).map_err(pg_error)?;
            let bytes: &[u8] = row.try_get(1).map_err(pg_error)?;
            let offset = u64::try_from(sequence).unwrap_or(0);
            let entry = lc::decode_entry(bytes)
                .map_err(|e| corrupt(offset, format!("audit entry {sequence}: {e}")))?;
            if entry.sequence != offset {
                return Err(corrupt(
                    offset,
                    format!("audit entry {sequence} holds sequence {}", entry.sequence),
                ));
            }
            Ok(entry)
        })
        .collect()
}
