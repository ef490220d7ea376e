//! Removal and retention rules (see [`gesta::removal`] for the contract):
//! the statements of `remove`, `delete_stream`, `truncate_stream`,
//! `set_retention`, `retention_rules` and `enforce_retention`, run on the
//! transaction the store gives (`BEGIN IMMEDIATE` on the writer, as an
//! append, so a removal is serialized with appends and conditions).
//!
//! A removed event leaves `events`: its row moves to `removed_events`
//! without its data and metadata, and its rows in `tags` are deleted. So
//! every read, query, condition, listing and subscription — all of which
//! read `events` and `tags` — stops seeing it without a change to their
//! statements. What must outlive it reads `removed_events` too: the head
//! (the last position of either table), a stream's last revision, the ids
//! taken (and a retry's comparison, without data and metadata), and the
//! commit times `position_at` searches. `secure_delete` zeroes the deleted
//! cells, and the store checkpoints the WAL afterwards, as for a
//! redaction.
//!
//! The rules live in `retention`, in the order they were first set; each
//! change is also an audit entry.

use std::path::Path;

use gesta::lifecycle::{self as lc, Operation, Target, decode_rule, encode_rule};
use gesta::removal::{self as rm, Removal, Removed, RetentionRule, RetentionScope};
use gesta::{Error, Result};
use rusqlite::{Transaction, params};

use crate::codec::decode_tags;
use crate::lifecycle::{record, resolve_positions};
use crate::sql;
use crate::store::{bind, last_position, signed, sqlite_error, unsigned};

/// Removes the events `target` names that are still there, and records it.
pub(crate) fn remove(
    tx: &Transaction<'_>,
    path: &Path,
    target: &Target,
    now: i64,
) -> Result<Removed> {
    let head = last_position(tx).map_err(|e| sqlite_error(path, e))?;
    let positions = resolve_positions(tx, path, target, head)?;
    commit(
        tx,
        path,
        head,
        Removal::Target(target.clone()),
        &positions,
        now,
    )
}

/// Removes the events of `stream` with revisions below `before` (all of
/// them with `None`), and records it.
pub(crate) fn remove_stream(
    tx: &Transaction<'_>,
    path: &Path,
    stream: &str,
    before: Option<u64>,
    now: i64,
) -> Result<Removed> {
    let err = |e| sqlite_error(path, e);
    let head = last_position(tx).map_err(err)?;
    let below = before.map_or(i64::MAX, signed);
    let positions: Vec<u64> = tx
        .prepare_cached(
            "SELECT position FROM events WHERE stream = ?1 AND revision < ?2 ORDER BY revision",
        )
        .map_err(err)?
        .query_map(params![stream, below], |r| r.get::<_, i64>(0).map(unsigned))
        .map_err(err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(err)?;
    lc::check_targeted(positions.len())?;
    let removal = Removal::Stream {
        stream: stream.to_owned(),
        before,
    };
    commit(tx, path, head, removal, &positions, now)
}

/// Moves the events at `positions` (ascending, all in `events`) out, and
/// records the removal made at `head`.
fn commit(
    tx: &Transaction<'_>,
    path: &Path,
    head: u64,
    removal: Removal,
    positions: &[u64],
    now: i64,
) -> Result<Removed> {
    let err = |e| sqlite_error(path, e);
    let (removed, result) = rm::plan_remove(positions, |_| false);
    let mut tags_of = tx
        .prepare_cached("SELECT tags FROM events WHERE position = ?1")
        .map_err(err)?;
    let mut keep = tx
        .prepare_cached(
            "INSERT INTO removed_events (position, type, tags, stream, revision, id, ts) \
             SELECT position, type, tags, stream, revision, id, ts FROM events WHERE position = ?1",
        )
        .map_err(err)?;
    let mut untag = tx
        .prepare_cached("DELETE FROM tags WHERE tag = ?1 AND position = ?2")
        .map_err(err)?;
    let mut delete = tx
        .prepare_cached("DELETE FROM events WHERE position = ?1")
        .map_err(err)?;
    for p in removed {
        let tags: Vec<u8> = tags_of.query_row([signed(p)], |r| r.get(0)).map_err(err)?;
        let tags = decode_tags(&tags).map_err(|reason| Error::Corruption {
            file: path.to_owned(),
            offset: 0,
            reason: format!("event at position {p}: {reason}"),
        })?;
        keep.execute([signed(p)]).map_err(err)?;
        for tag in &tags {
            untag.execute(params![tag, signed(p)]).map_err(err)?;
        }
        delete.execute([signed(p)]).map_err(err)?;
    }
    record(tx, path, head, now, Operation::Remove { removal, result })?;
    Ok(result)
}

/// The retention rules in force, in the order they were first set.
pub(crate) fn rules(conn: &rusqlite::Connection, path: &Path) -> Result<Vec<RetentionRule>> {
    let err = |e| sqlite_error(path, e);
    let mut stmt = conn
        .prepare_cached("SELECT ord, rule FROM retention ORDER BY ord")
        .map_err(err)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
        .map_err(err)?;
    let mut out = Vec::new();
    for row in rows {
        let (ord, bytes) = row.map_err(err)?;
        out.push(decode_rule(&bytes).map_err(|e| Error::Corruption {
            file: path.to_owned(),
            offset: 0,
            reason: format!("retention rule {ord}: {e}"),
        })?);
    }
    Ok(out)
}

/// Sets `rule` (checked), replacing its scope's, and records it.
pub(crate) fn set_rule(
    tx: &Transaction<'_>,
    path: &Path,
    rule: &RetentionRule,
    now: i64,
) -> Result<()> {
    let err = |e| sqlite_error(path, e);
    let rules = rm::with_rule(&rules(tx, path)?, rule)?;
    tx.execute("DELETE FROM retention", []).map_err(err)?;
    let mut insert = tx
        .prepare_cached("INSERT INTO retention (ord, rule) VALUES (?1, ?2)")
        .map_err(err)?;
    for (i, r) in rules.iter().enumerate() {
        insert
            .execute(params![i as i64, encode_rule(r)])
            .map_err(err)?;
    }
    let head = last_position(tx).map_err(err)?;
    record(
        tx,
        path,
        head,
        now,
        Operation::SetRetention { rule: rule.clone() },
    )
}

/// Enforces every rule, each one removal (recorded if it removed any).
pub(crate) fn enforce(tx: &Transaction<'_>, path: &Path, now: i64) -> Result<Removed> {
    let err = |e| sqlite_error(path, e);
    let mut total = Removed::default();
    for rule in rules(tx, path)? {
        let head = last_position(tx).map_err(err)?;
        let scope: Vec<u64> = match &rule.scope {
            RetentionScope::Stream(stream) => tx
                .prepare_cached("SELECT position FROM events WHERE stream = ?1 ORDER BY revision")
                .map_err(err)?
                .query_map([stream], |r| r.get::<_, i64>(0).map(unsigned))
                .map_err(err)?
                .collect::<rusqlite::Result<_>>()
                .map_err(err)?,
            RetentionScope::Query(query) => {
                let stmt = sql::target_positions(query);
                let params = bind(&[1, signed(head), -1], &stmt);
                tx.prepare_cached(&stmt.sql)
                    .map_err(err)?
                    .query_map(rusqlite::params_from_iter(params), |r| {
                        r.get::<_, i64>(0).map(unsigned)
                    })
                    .map_err(err)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(err)?
            }
        };
        let too_old = match rm::too_old_at_or_before(&rule, unsigned(now)) {
            Some(t) if !scope.is_empty() => position_at(tx, signed(t), head).map_err(err)?,
            _ => 0,
        };
        let n = rm::removed_prefix(&rule, &scope, too_old);
        if n > 0 {
            let removal = Removal::Retention(rule.clone());
            total += commit(tx, path, head, removal, &scope[..n], now)?;
        }
    }
    Ok(total)
}

/// The last position up to `head` committed at or before `t` (0 if
/// none): a binary search over the commit times of events, removed or
/// not, which never decrease with positions, as one recursive statement
/// whose every step is a primary-key probe (a search driven from Rust paid
/// a statement per step). A position the search reaches without an event
/// is damage.
pub(crate) fn position_at(conn: &rusqlite::Connection, t: i64, head: u64) -> rusqlite::Result<u64> {
    let (found, bad): (i64, bool) = conn
        .prepare_cached(&position_at_sql())?
        .query_row(rusqlite::params![t, signed(head)], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    if bad {
        return Err(rusqlite::Error::QueryReturnedNoRows);
    }
    Ok(unsigned(found))
}

/// [`position_at`]'s statement: `?1` the time, `?2` the head.
fn position_at_sql() -> String {
    let mid = "lo + (hi - lo) / 2";
    let ts = format!(
        "coalesce((SELECT ts FROM events WHERE position = {mid}), \
         (SELECT ts FROM removed_events WHERE position = {mid}))"
    );
    format!(
        "WITH RECURSIVE step(lo, hi, found, bad) AS (
            SELECT 1, ?2, 0, 0
            UNION ALL
            SELECT
                CASE WHEN {ts} <= ?1 THEN {mid} + 1 ELSE lo END,
                CASE WHEN {ts} <= ?1 THEN hi ELSE {mid} - 1 END,
                CASE WHEN {ts} <= ?1 THEN {mid} ELSE found END,
                max(bad, {ts} IS NULL)
            FROM step WHERE lo <= hi
        )
        SELECT found, bad FROM step WHERE lo > hi"
    )
}
