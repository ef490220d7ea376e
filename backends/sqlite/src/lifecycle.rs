//! Retroactive tags, redaction and the audit trail (see
//! [`gesta::lifecycle`] for the contract): the statements of [`add_tags`],
//! [`redact`] and [`audit_log`], run on the connection or transaction the
//! store gives.
//!
//! `add_tags` runs in a `BEGIN IMMEDIATE` transaction on the writer, as an
//! append does, so it is serialized with appends (of this handle and of
//! any other connection to the file): a conditional append sees either
//! none or all of its tags. Inside it, the target is resolved against the
//! head it sees — a query with the read statement of `sql` (positions
//! ascending, up to the head) — each targeted event's current tags are
//! read from its `tags` column, the shared checks and plan decide what
//! each event gains, and then, for each event that gains tags, the gained
//! tags are appended to its `tags` list (same encoding, see `codec`),
//! indexed in the `tags` table (with the event's type, as an append
//! indexes them) and counted in `added_tags` (so that the
//! event's own tags stay known, for idempotent retries); the operation's
//! audit entry is inserted last. Any error drops the transaction, which
//! rolls all of it back.
//!
//! `redact` runs the same way: inside one `BEGIN IMMEDIATE` transaction
//! the target is resolved against the head (positions checked, or the
//! query's positions), the `redacted` table says which of the events are
//! redacted already, each of the others gets its `data` and `metadata`
//! set to the empty blob and a row in `redacted`, and the audit entry is
//! inserted last. What happens to the erased bytes in the database's
//! files is the store's business (see `SqliteStore::redact`): every
//! connection runs with `secure_delete` on, so the row's old cell is
//! overwritten with zeros, and the store checkpoints the WAL afterwards.
//!
//! Nothing is announced to subscriptions: the head does not move, so
//! neither this handle's hub nor the poller of another handle (which wakes
//! subscribers only when the head moved) has anything to deliver.

use std::collections::BTreeMap;
use std::path::Path;

use gesta::lifecycle::{
    self as lc, AuditEntry, MAX_TARGETED_EVENTS, Operation, Redacted, TagsAdded, Target,
};
use gesta::{Error, Result};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::codec::{decode_tags, encode_tags};
use crate::sql;
use crate::store::{bind, last_position, signed, sqlite_error, unsigned};

/// A targeted event: its position and its `tags` column as it is.
struct Targeted {
    position: u64,
    tags: Vec<u8>,
}

fn corrupt(path: &Path, position: u64, reason: String) -> Error {
    Error::Corruption {
        file: path.to_owned(),
        offset: 0,
        reason: format!("event at position {position}: {reason}"),
    }
}

/// The events `target` names, ascending, each with its tag list, as `tx`
/// sees them up to `head`; the target's checks applied. Removed events
/// are left out (a position target may name one).
fn resolve(tx: &Transaction<'_>, path: &Path, target: &Target, head: u64) -> Result<Vec<Targeted>> {
    let err = |e| sqlite_error(path, e);
    match target {
        Target::Positions(positions) => {
            let positions = lc::check_positions(positions, head)?;
            let mut stmt = tx
                .prepare_cached("SELECT tags FROM events WHERE position = ?1")
                .map_err(err)?;
            let mut found = Vec::with_capacity(positions.len());
            for position in positions {
                let tags = stmt
                    .query_row([signed(position)], |r| r.get(0))
                    .optional()
                    .map_err(err)?;
                found.extend(tags.map(|tags| Targeted { position, tags }));
            }
            Ok(found)
        }
        Target::Query(query) => {
            let stmt = sql::targets(query);
            // One more than the limit, so that too many is seen without
            // reading them all.
            let limit = signed(MAX_TARGETED_EVENTS as u64 + 1);
            let params = bind(&[1, signed(head), limit], &stmt);
            let mut prepared = tx.prepare_cached(&stmt.sql).map_err(err)?;
            let found = prepared
                .query_map(rusqlite::params_from_iter(params), |r| {
                    Ok(Targeted {
                        position: unsigned(r.get(0)?),
                        tags: r.get(1)?,
                    })
                })
                .map_err(err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(err)?;
            lc::check_targeted(found.len())?;
            Ok(found)
        }
    }
}

/// Adds `tags` (checked by [`lc::check_add_tags`]: each once, in order) to
/// the events `target` names and records the operation, all inside `tx`;
/// `now` is the store's clock. The caller commits `tx` if this succeeds.
pub(crate) fn add_tags(
    tx: &Transaction<'_>,
    path: &Path,
    target: &Target,
    tags: Vec<String>,
    now: i64,
) -> Result<TagsAdded> {
    let err = |e| sqlite_error(path, e);
    let head = last_position(tx).map_err(err)?;
    let targeted = resolve(tx, path, target, head)?;
    let positions: Vec<u64> = targeted.iter().map(|t| t.position).collect();
    // `positions` is ascending: each event's row is found by a search.
    let row = |p: u64| {
        positions
            .binary_search(&p)
            .map(|i| &targeted[i])
            .map_err(|_| corrupt(path, p, "not among the targeted events".to_owned()))
    };
    let (gained, result) = lc::plan_tags(&positions, &tags, |p| {
        decode_tags(&row(p)?.tags).map_err(|reason| corrupt(path, p, reason))
    })?;

    // What each event gains, in the order of `tags`.
    let mut gains: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (tag, list) in tags.iter().zip(&gained) {
        for &p in list {
            gains.entry(p).or_default().push(tag.clone());
        }
    }
    let mut update = tx
        .prepare_cached("UPDATE events SET tags = ?2 WHERE position = ?1")
        .map_err(err)?;
    let mut index = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO tags (tag, position, type) \
             SELECT ?1, position, type FROM events WHERE position = ?2",
        )
        .map_err(err)?;
    let mut count = tx
        .prepare_cached(
            "INSERT INTO added_tags (position, count) VALUES (?1, ?2) \
             ON CONFLICT (position) DO UPDATE SET count = count + excluded.count",
        )
        .map_err(err)?;
    for (&p, new) in &gains {
        let mut list = row(p)?.tags.clone();
        list.extend(encode_tags(new));
        update.execute(params![signed(p), list]).map_err(err)?;
        for tag in new {
            index.execute(params![tag, signed(p)]).map_err(err)?;
        }
        count
            .execute(params![signed(p), signed(new.len() as u64)])
            .map_err(err)?;
    }

    let operation = Operation::AddTags {
        tags,
        target: target.clone(),
        result,
    };
    record(tx, path, head, now, operation)?;
    Ok(result)
}

/// The positions `target` names, ascending and each once, as `tx` sees
/// them up to `head`; the target's checks applied. Removed events are
/// left out (a position target may name one).
pub(crate) fn resolve_positions(
    tx: &Transaction<'_>,
    path: &Path,
    target: &Target,
    head: u64,
) -> Result<Vec<u64>> {
    let err = |e| sqlite_error(path, e);
    match target {
        Target::Positions(positions) => {
            let positions = lc::check_positions(positions, head)?;
            present(tx, path, &positions)
        }
        Target::Query(query) => {
            let stmt = sql::target_positions(query);
            // One more than the limit, as `resolve` does.
            let limit = signed(MAX_TARGETED_EVENTS as u64 + 1);
            let params = bind(&[1, signed(head), limit], &stmt);
            let found = tx
                .prepare_cached(&stmt.sql)
                .map_err(err)?
                .query_map(rusqlite::params_from_iter(params), |r| {
                    r.get::<_, i64>(0).map(unsigned)
                })
                .map_err(err)?
                .collect::<rusqlite::Result<Vec<u64>>>()
                .map_err(err)?;
            lc::check_targeted(found.len())?;
            Ok(found)
        }
    }
}

/// Those of `positions` (ascending) whose events are in `events`: not
/// removed.
fn present(tx: &Transaction<'_>, path: &Path, positions: &[u64]) -> Result<Vec<u64>> {
    let err = |e| sqlite_error(path, e);
    let mut exists = tx
        .prepare_cached("SELECT 1 FROM events WHERE position = ?1")
        .map_err(err)?;
    let mut out = Vec::with_capacity(positions.len());
    for &p in positions {
        if exists.exists([signed(p)]).map_err(err)? {
            out.push(p);
        }
    }
    Ok(out)
}

/// Erases the data and metadata of the events `target` names (checked by
/// [`lc::check_target`]) that are not redacted yet, and records the
/// operation, all inside `tx`; `now` is the store's clock. The caller
/// commits `tx` if this succeeds.
pub(crate) fn redact(
    tx: &Transaction<'_>,
    path: &Path,
    target: &Target,
    now: i64,
) -> Result<Redacted> {
    let err = |e| sqlite_error(path, e);
    let head = last_position(tx).map_err(err)?;
    let positions = resolve_positions(tx, path, target, head)?;
    let mut redacted = tx
        .prepare_cached("SELECT 1 FROM redacted WHERE position = ?1")
        .map_err(err)?;
    let (erased, result) =
        lc::plan_redact(&positions, |p| redacted.exists([signed(p)]).map_err(err))?;
    let mut erase = tx
        .prepare_cached(
            "UPDATE events SET data = X'', metadata = X'' WHERE position = ?1 RETURNING revision",
        )
        .map_err(err)?;
    let mut mark = tx
        .prepare_cached("INSERT INTO redacted (position) VALUES (?1)")
        .map_err(err)?;
    let mut revisions = Vec::with_capacity(erased.len());
    for p in erased {
        let revision: Option<Option<i64>> = erase
            .query_row([signed(p)], |r| r.get(0))
            .optional()
            .map_err(err)?;
        let Some(revision) = revision else {
            return Err(corrupt(
                path,
                p,
                format!("no row, though the head is {head}"),
            ));
        };
        revisions.push((p, revision.map(unsigned)));
        mark.execute([signed(p)]).map_err(err)?;
    }
    if let Some(from) = lc::snapshots_erased_from(revisions) {
        tx.prepare_cached("DELETE FROM snapshots WHERE position >= ?1")
            .and_then(|mut s| s.execute([signed(from)]))
            .map_err(err)?;
    }
    let operation = Operation::Redact {
        target: target.clone(),
        result,
    };
    record(tx, path, head, now, operation)?;
    Ok(result)
}

/// Records `operation`, made at `head`, in the audit trail: the next
/// sequence, and the commit time by the store's clock (`now`), never
/// before the previous entry's nor the head event's (as an append's time
/// is never before the previous one's).
pub(crate) fn record(
    tx: &Transaction<'_>,
    path: &Path,
    head: u64,
    now: i64,
    operation: Operation,
) -> Result<()> {
    let err = |e| sqlite_error(path, e);
    let (last_sequence, last_ts): (i64, i64) = tx
        .prepare_cached("SELECT sequence, ts FROM audit ORDER BY sequence DESC LIMIT 1")
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(err)?
        .unwrap_or((0, 0));
    let head_ts: i64 = tx
        .prepare_cached("SELECT ts FROM events WHERE position = ?1")
        .and_then(|mut s| s.query_row([signed(head)], |r| r.get(0)).optional())
        .map_err(err)?
        .unwrap_or(0);
    let ts = now.max(last_ts).max(head_ts);
    let entry = AuditEntry {
        sequence: unsigned(last_sequence) + 1,
        timestamp_micros: unsigned(ts),
        head,
        operation,
    };
    tx.prepare_cached("INSERT INTO audit (sequence, ts, entry) VALUES (?1, ?2, ?3)")
        .and_then(|mut s| {
            s.execute(params![
                signed(entry.sequence),
                ts,
                lc::encode_entry(&entry)
            ])
        })
        .map_err(err)?;
    Ok(())
}

/// Checkpoints the WAL into the database file and truncates it, waiting
/// (up to the busy timeout) for readers of older snapshots to finish:
/// whether it completed (`false` if a reader or another checkpoint was in
/// the way).
pub(crate) fn checkpoint(conn: &Connection, path: &Path) -> Result<bool> {
    let blocked: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .map_err(|e| sqlite_error(path, e))?;
    Ok(blocked == 0)
}

/// The audit entries after sequence `after`, oldest first, at most `limit`
/// (checked by the caller).
pub(crate) fn audit_log(
    conn: &Connection,
    path: &Path,
    after: u64,
    limit: usize,
) -> Result<Vec<AuditEntry>> {
    let err = |e| sqlite_error(path, e);
    let mut stmt = conn
        .prepare_cached(
            "SELECT sequence, entry FROM audit WHERE sequence > ?1 ORDER BY sequence LIMIT ?2",
        )
        .map_err(err)?;
    let rows = stmt
        .query_map(params![signed(after), signed(limit as u64)], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .map_err(err)?;
    let mut out = Vec::new();
    for row in rows {
        let (sequence, bytes) = row.map_err(err)?;
        let damaged = |reason: String| Error::Corruption {
            file: path.to_owned(),
            offset: 0,
            reason: format!("audit entry {sequence}: {reason}"),
        };
        let entry = lc::decode_entry(&bytes).map_err(|e| damaged(e.to_string()))?;
        if entry.sequence != unsigned(sequence) {
            return Err(damaged(format!("holds sequence {}", entry.sequence)));
        }
        out.push(entry);
    }
    Ok(out)
}
