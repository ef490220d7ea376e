//! [`SqliteStore`]: the handle. It owns the connections — one writer behind
//! a mutex, so writes are serialized in this process, and a small pool of
//! reader connections, which read WAL snapshots without blocking the writer
//! — the append transaction, and the paged read iterator.
//!
//! Appends commit in groups (see `group`): the appends that queued while
//! the previous group was written are run by one leader thread in one
//! `BEGIN IMMEDIATE` transaction, committed with one sync, in the order
//! they queued. Each append runs inside a savepoint of its own, making the
//! checks in the order the [`EventStore`] contract fixes (ids, expected
//! revisions, the DCB condition, tracking info) against the state the
//! transaction sees — the committed one and the appends before it in the
//! group — and then inserting the batch at `max(position) + 1` and storing
//! the tracking info. An append that fails is rolled back to its
//! savepoint: it consumes no positions, stores nothing, and leaves the
//! others of its group as they were. (A group of one append needs no
//! savepoint: it fails by dropping the transaction, which rolls it back.)
//! Every append of a group is answered only once the `COMMIT` returned;
//! if the `COMMIT` fails, all of them get its error. Should SQLite roll
//! the whole transaction back on an append's error (as it does on some
//! I/O errors and on a full disk), that append gets its error and the
//! others run again in a new transaction: nothing of theirs had been
//! committed or answered.
//!
//! Snapshots and tracking info are `state`'s, retroactive tags, redaction
//! and the audit trail `lifecycle`'s; this module only gives them a
//! connection (the writer's transaction for changes).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use gesta::event::MAX_TAGS;
use gesta::{
    AppendOptions, Appended, AuditEntry, Direction, Error, EventIter, EventRef, EventStore,
    NewEvent, Query, ReadOptions, RecordedEvent, Redacted, Result, Tags, TagsAdded, Target,
    validation,
};

use crate::codec::{decode_id, each_tag, encode_id, encode_tags};
use crate::group::{Joined, Queue, Request};
use crate::lifecycle;
use crate::live::Live;
use crate::options::SqliteOptions;
use crate::readers::Readers;
use crate::schema::{self, OpenError};
use crate::sql::{self, Statement};
use crate::state;
use gesta::removal::{Removed, RetentionRule};

/// Events fetched per statement by a read iterator.
const PAGE: usize = 512;

/// An event store in one SQLite database file; see the [crate](crate) docs.
pub struct SqliteStore {
    path: PathBuf,
    options: SqliteOptions,
    writer: Mutex<Connection>,
    /// Appends waiting for the writer, taken in groups.
    group: Queue,
    /// Transactions committed by groups of appends.
    commits: AtomicU64,
    readers: Arc<Readers>,
    /// Subscriptions: the head they read to, the hub, the poller.
    live: Live,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// What the id check found.
enum Ids {
    /// No event of the batch has a committed id: go on.
    New,
    /// The batch was committed exactly so: return its positions.
    Retry(Appended),
}

/// What one append of a group did inside the transaction.
enum Staged {
    /// Inserted its batch.
    Wrote(Appended),
    /// Was a retry of a batch already there: wrote nothing.
    Retry(Appended),
    /// Failed, and left nothing behind.
    Refused(Error),
}

/// How a group's transaction ended.
enum Attempt {
    /// Committed (or, if nothing was written, rolled back): each append's
    /// outcome, in the group's order.
    Done(Vec<Staged>),
    /// `BEGIN` or `COMMIT` failed: every append gets the error
    /// (`commit` tells which).
    Failed {
        error: rusqlite::Error,
        commit: bool,
    },
    /// The append at `at` failed and SQLite rolled the whole transaction
    /// back: it gets `error`, the others must run again.
    Lost { at: usize, error: Error },
}

/// An SQLite error as the contract's error type.
pub(crate) fn sqlite_error(path: &Path, e: rusqlite::Error) -> Error {
    Error::Io {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    }
}

/// A failed `COMMIT`: an I/O error (SQLite's `SQLITE_IOERR` family: a
/// write or an fsync that failed) may come after the commit frame reached
/// the WAL file, which recovery would then replay, so whether it
/// committed is unknown ([`Error::OutcomeUnknown`]: a retry with the same
/// event ids is safe). Any other error rolled the transaction back.
pub(crate) fn commit_error(path: &Path, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::SystemIoFailure) => Error::OutcomeUnknown {
            path: path.to_owned(),
            source: std::io::Error::other(e),
        },
        _ => sqlite_error(path, e),
    }
}

/// A position or revision from SQLite's signed integers.
pub(crate) fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A position, revision or limit for SQLite (values beyond `i64::MAX`
/// cannot occur as positions, so clamping them keeps comparisons right).
pub(crate) fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn now_micros() -> i64 {
    use gesta::clock::Clock;
    i64::try_from(gesta::clock::SystemClock.now_micros()).unwrap_or(i64::MAX)
}

/// The fixed parameters (bounds, then a limit for reads) followed by the
/// statement's own.
pub(crate) fn bind(fixed: &[i64], stmt: &Statement) -> Vec<Value> {
    fixed
        .iter()
        .map(|&n| Value::Integer(n))
        .chain(stmt.params.iter().cloned())
        .collect()
}

/// The parameters of `sql::stream_read` for a read of `stream`, or `None`
/// if `options` leave no revision to read.
fn stream_params(stream: &str, options: ReadOptions) -> Result<Option<Vec<Value>>> {
    validation::check_stream_name(stream)?;
    let Some((lo, hi)) = options.revision_bounds() else {
        return Ok(None);
    };
    let limit = options.limit.map_or(i64::MAX, |n| signed(n as u64));
    Ok(Some(vec![
        Value::Text(stream.to_owned()),
        Value::Integer(signed(lo)),
        Value::Integer(signed(hi)),
        Value::Integer(limit),
    ]))
}

/// Runs a statement of `tx` that returns no rows (a savepoint's).
fn run(tx: &Transaction<'_>, sql: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(sql)?.execute([]).map(drop)
}

/// The last revision of `stream`, on any connection.
fn last_revision(conn: &Connection, stream: &str) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached(sql::LAST_REVISION)?
        .query_row([stream], |r| r.get::<_, Option<i64>>(0))
        .map(|r| r.map(unsigned))
}

/// The last committed position, on any connection.
pub(crate) fn last_position(conn: &Connection) -> rusqlite::Result<u64> {
    conn.prepare_cached(
        "SELECT coalesce(max(p), 0) FROM (SELECT max(position) AS p FROM events \
         UNION ALL SELECT max(position) FROM removed_events)",
    )?
    .query_row([], |r| r.get::<_, i64>(0))
    .map(unsigned)
}

/// Whether the committed event `row` (type, tags, stream, data, metadata,
/// how many of its tags were added since, whether it was redacted) is
/// `new` (whose id matched already) as it was appended: its own tags are
/// the first ones of its list (those added since follow them), and a
/// redacted event's data and metadata, erased, are not compared.
fn same_event(row: &Row<'_>, new: &NewEvent) -> rusqlite::Result<bool> {
    let added = unsigned(row.get(5)?);
    let redacted: bool = row.get(6)?;
    let own = row
        .get_ref(1)?
        .as_blob()?
        .strip_prefix(encode_tags(&new.tags).as_slice());
    Ok(row.get_ref(0)?.as_str()? == new.event_type
        && own.is_some_and(|since| tag_count(since) == Some(added))
        && row.get_ref(2)?.as_str_or_null()? == new.stream.as_deref()
        && (redacted
            || (row.get_ref(3)?.as_blob()? == new.data.as_ref()
                && row.get_ref(4)?.as_blob()? == new.metadata.as_ref())))
}

/// How many tags an encoded tag list holds; `None` if it is malformed.
fn tag_count(blob: &[u8]) -> Option<u64> {
    let mut n = 0;
    each_tag(blob, |_| n += 1).ok()?;
    Some(n)
}

impl SqliteStore {
    /// Opens the database file at `path`, creating it (and its parent
    /// directory) with the schema if it does not exist.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<SqliteStore> {
        let path = path.as_ref().to_owned();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        let writer = schema::open_writer(&path, &options).map_err(|e| match e {
            OpenError::Sqlite(e) => sqlite_error(&path, e),
            OpenError::Unsupported(reason) => Error::Io {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, reason),
            },
        })?;
        let head = last_position(&writer).map_err(|e| sqlite_error(&path, e))?;
        let readers = Arc::new(Readers::new(path.clone(), options));
        Ok(SqliteStore {
            live: Live::new(&path, options, head, readers.clone()),
            group: Queue::new(&path),
            commits: AtomicU64::new(0),
            path,
            options,
            writer: Mutex::new(writer),
            readers,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options the store was opened with.
    pub fn options(&self) -> SqliteOptions {
        self.options
    }

    /// How many transactions this handle has committed for appends since
    /// it was opened. Appends that arrive while another group is being
    /// written share the next transaction (and its sync), so under
    /// concurrent appends this is less than the number of appends.
    pub fn append_commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// The schema version of the database layout this crate writes.
    pub fn schema_version() -> i64 {
        schema::SCHEMA_VERSION
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        sqlite_error(&self.path, e)
    }

    /// Runs `operation` (a redaction or removal) in one `BEGIN IMMEDIATE`
    /// transaction on the writer, as an append, in which SQLite
    /// overwrites the erased values with zeros where they were
    /// (`secure_delete`). Once it committed, the WAL — which still holds
    /// the pages as they were — is checkpointed into the database file and
    /// truncated. The checkpoint waits up to the busy timeout for
    /// connections reading older snapshots; if it cannot complete, the
    /// operation stands (reads see it, the call succeeds) and the old pages
    /// stay in the WAL, and may be copied into the database file, until a
    /// later checkpoint that completes: the next operation's or
    /// [`vacuum`](SqliteStore::vacuum)'s, or SQLite's when the last
    /// connection to the file closes. See [`vacuum`](SqliteStore::vacuum)
    /// for what `secure_delete` does not reach.
    fn erasing<T>(
        &self,
        operation: impl FnOnce(&rusqlite::Transaction<'_>, &Path) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.writer.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        // Dropping `tx` without committing rolls back, on any error.
        let done = operation(&tx, &self.path)?;
        tx.commit().map_err(|e| commit_error(&self.path, e))?;
        match lifecycle::checkpoint(&conn, &self.path) {
            Ok(true) => {}
            Ok(false) => log::warn!(
                "{}: committed; the WAL checkpoint was blocked by another connection, \
                 the erased values leave the WAL at a later one",
                self.path.display()
            ),
            Err(e) => log::warn!(
                "{}: committed; the WAL checkpoint failed: {e}",
                self.path.display()
            ),
        }
        Ok(done)
    }

    /// Rewrites the database file with only what it holds now (`VACUUM`),
    /// then checkpoints the WAL into it and truncates the WAL: afterwards
    /// no file of the store holds a byte of a redacted event's data or
    /// metadata.
    ///
    /// [`redact`](EventStore::redact) alone overwrites the erased values
    /// with zeros where they are (`secure_delete`, on for every connection
    /// of the store) and checkpoints: the row's cell, its overflow pages
    /// and the WAL lose them. It cannot reach copies that were left in
    /// free space before — by an earlier version of this crate, whose
    /// `add_tags` rewrote rows without `secure_delete`, or by another
    /// program writing the file without it — nor any copy SQLite's
    /// rebuilding of pages might leave that `secure_delete` does not
    /// promise to clear. `vacuum` builds every page anew. It takes time and
    /// temporary space (a temporary file, deleted at once) in proportion
    /// to the database, and holds the write lock meanwhile; reads go on.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if SQLite fails, or if the checkpoint could not
    /// complete within the busy timeout because another connection was
    /// reading an older snapshot or writing (kind `WouldBlock`): the
    /// database is vacuumed, but the WAL may still hold old pages until
    /// the next checkpoint completes; call again.
    pub fn vacuum(&self) -> Result<()> {
        let conn = self.writer.lock();
        conn.execute_batch("VACUUM").map_err(|e| self.err(e))?;
        if lifecycle::checkpoint(&conn, &self.path)? {
            Ok(())
        } else {
            Err(Error::Io {
                path: self.path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    "the WAL checkpoint was blocked by another connection",
                ),
            })
        }
    }

    /// Runs `f` on an idle reader connection (opening one if none is idle).
    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.readers.with(f)
    }

    /// The rows of `sql` (event columns) with `params`, decoded.
    fn query_events(
        &self,
        conn: &Connection,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<Vec<RecordedEvent>> {
        query_events(&self.path, conn, sql, params)
    }
}

/// The rows of `sql` (event columns) with `params` on `conn`, decoded.
pub(crate) fn query_events(
    path: &Path,
    conn: &Connection,
    sql: &str,
    params: Vec<Value>,
) -> Result<Vec<RecordedEvent>> {
    Decoder { path }.query_events(conn, sql, params)
}

/// One row of event columns (see `sql::EVENT_COLUMNS`) of the database at
/// `path`, decoded (later columns are ignored).
pub(crate) fn decode_row(path: &Path, row: &Row<'_>) -> Result<RecordedEvent> {
    Decoder { path }.decode(row)
}

/// Decodes event rows of the database at `path`.
struct Decoder<'a> {
    path: &'a Path,
}

impl Decoder<'_> {
    fn err(&self, e: rusqlite::Error) -> Error {
        sqlite_error(self.path, e)
    }

    fn query_events(
        &self,
        conn: &Connection,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<Vec<RecordedEvent>> {
        let mut stmt = conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            out.push(self.decode(row)?);
        }
        Ok(out)
    }

    /// The rows of `stmt` in `lo..=hi` (at most `limit`), each lent to `f`
    /// borrowed from the row: how many were lent, the last position lent,
    /// and whether `f` broke off.
    fn each_row(
        &self,
        conn: &Connection,
        stmt: &Statement,
        (lo, hi, limit): (u64, u64, usize),
        f: &mut dyn FnMut(EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<(usize, u64, bool)> {
        let params = bind(&[signed(lo), signed(hi), signed(limit as u64)], stmt);
        self.each_row_of(conn, &stmt.sql, params, f)
    }

    /// The rows of `sql` with `params`, each lent to `f` as
    /// [`each_row`](Self::each_row) lends them.
    fn each_row_of(
        &self,
        conn: &Connection,
        sql: &str,
        params: Vec<Value>,
        f: &mut dyn FnMut(EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<(usize, u64, bool)> {
        let mut prepared = conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let mut rows = prepared
            .query(rusqlite::params_from_iter(params))
            .map_err(|e| self.err(e))?;
        let (mut lent, mut last) = (0, 0);
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let mut tags = [""; MAX_TAGS];
            let event = self.decode_ref(row, &mut tags)?;
            last = event.position;
            lent += 1;
            if f(event).is_break() {
                return Ok((lent, last, true));
            }
        }
        Ok((lent, last, false))
    }

    /// One row of event columns borrowed from the row, its tags in `tags`.
    fn decode_ref<'r>(
        &self,
        row: &'r Row<'_>,
        tags: &'r mut [&'r str; MAX_TAGS],
    ) -> Result<EventRef<'r>> {
        let get = |i: usize| row.get_ref(i).map_err(|e| self.err(e));
        let position = unsigned(get(0)?.as_i64().map_err(|e| self.err(e.into()))?);
        let corrupt = |reason: String| Error::Corruption {
            file: self.path.to_owned(),
            offset: 0,
            reason: format!("event at position {position}: {reason}"),
        };
        let text =
            |i: usize| -> Result<&'r str> { get(i)?.as_str().map_err(|e| self.err(e.into())) };
        let mut n = 0;
        let blob = get(2)?.as_blob().map_err(|e| self.err(e.into()))?;
        let mut overflow = false;
        each_tag(blob, |tag| match tags.get_mut(n) {
            Some(slot) => {
                *slot = tag;
                n += 1;
            }
            None => overflow = true,
        })
        .map_err(corrupt)?;
        if overflow {
            return Err(corrupt(format!("more than {MAX_TAGS} tags")));
        }
        let id = match get(5)?.as_blob_or_null().map_err(|e| self.err(e.into()))? {
            None => None,
            Some(blob) => Some(
                decode_id(blob).ok_or_else(|| corrupt(format!("id of {} bytes", blob.len())))?,
            ),
        };
        let stream = get(3)?.as_str_or_null().map_err(|e| self.err(e.into()))?;
        let revision = get(4)?.as_i64_or_null().map_err(|e| self.err(e.into()))?;
        let bytes_of =
            |i: usize| -> Result<&'r [u8]> { get(i)?.as_bytes().map_err(|e| self.err(e.into())) };
        Ok(EventRef {
            position,
            event_type: text(1)?,
            tags: Tags::strs(&tags[..n]),
            data: bytes_of(6)?,
            metadata: bytes_of(7)?,
            id,
            stream,
            revision: revision.map(unsigned),
            timestamp_micros: unsigned(get(8)?.as_i64().map_err(|e| self.err(e.into()))?),
            shared: None,
        })
    }

    /// One row of event columns (see `sql::EVENT_COLUMNS`), owned.
    fn decode(&self, row: &Row<'_>) -> Result<RecordedEvent> {
        let mut tags = [""; MAX_TAGS];
        self.decode_ref(row, &mut tags).map(|e| e.to_owned())
    }
}

impl SqliteStore {
    /// The idempotency rule, exactly as the reference applies it (ids
    /// repeating within the batch were refused before).
    fn check_ids(
        &self,
        tx: &Transaction<'_>,
        events: &[NewEvent],
    ) -> rusqlite::Result<Result<Ids>> {
        if events.iter().all(|e| e.id.is_none()) {
            return Ok(Ok(Ids::New));
        }
        let mut by_id = tx.prepare_cached(
            "SELECT position FROM events WHERE id = ?1 \
             UNION ALL SELECT position FROM removed_events WHERE id = ?1",
        )?;
        let mut found = Vec::with_capacity(events.len());
        for e in events {
            let position = match e.id {
                Some(id) => by_id
                    .query_row([&encode_id(id)[..]], |r| r.get::<_, i64>(0))
                    .optional()?,
                None => None,
            };
            found.push(position);
        }
        let Some(offender) = found.iter().position(Option::is_some) else {
            return Ok(Ok(Ids::New));
        };
        let duplicate = Error::DuplicateEventId {
            id: events[offender].id.unwrap_or_default(),
        };
        let Some(first) = found[0] else {
            return Ok(Err(duplicate));
        };
        let last = first + events.len() as i64 - 1;
        let committed_last: Option<i64> = tx
            .prepare_cached("SELECT last FROM batches WHERE first = ?1")?
            .query_row([first], |r| r.get(0))
            .optional()?;
        let consecutive = found
            .iter()
            .enumerate()
            .all(|(i, p)| *p == Some(first + i as i64));
        if committed_last != Some(last) || !consecutive {
            return Ok(Err(duplicate));
        }
        // A removed event is compared as a redacted one: without its data
        // and metadata, which are gone.
        let mut stored = tx.prepare_cached(
            "SELECT e.type, e.tags, e.stream, e.data, e.metadata, coalesce(a.count, 0), \
                    r.position IS NOT NULL \
             FROM events e \
             LEFT JOIN added_tags a ON a.position = e.position \
             LEFT JOIN redacted r ON r.position = e.position \
             WHERE e.position = ?1 \
             UNION ALL \
             SELECT e.type, e.tags, e.stream, X'', X'', coalesce(a.count, 0), 1 \
             FROM removed_events e \
             LEFT JOIN added_tags a ON a.position = e.position \
             WHERE e.position = ?1",
        )?;
        for (i, e) in events.iter().enumerate() {
            let same = stored.query_row([first + i as i64], |row| same_event(row, e))?;
            if !same {
                return Ok(Err(duplicate));
            }
        }
        Ok(Ok(Ids::Retry(Appended {
            first: unsigned(first),
            last: unsigned(last),
        })))
    }

    /// Runs `group` (appends in queue order, each checked by its caller)
    /// on the writer and answers every append of it; see the module docs.
    fn commit_group(&self, conn: &mut Connection, mut group: Vec<Request>) {
        while !group.is_empty() {
            match self.attempt(conn, &group) {
                Attempt::Done(staged) => {
                    let wrote = |s: &Staged| matches!(s, Staged::Wrote(_));
                    let last = staged.iter().rev().find_map(|s| match s {
                        Staged::Wrote(appended) => Some(appended.last),
                        _ => None,
                    });
                    if let Some(last) = last {
                        self.commits.fetch_add(1, Ordering::Relaxed);
                        let events = group
                            .iter()
                            .zip(&staged)
                            .filter(|(_, s)| wrote(s))
                            .flat_map(|(r, _)| &r.events);
                        self.live.committed(last, events);
                    }
                    for (request, s) in group.into_iter().zip(staged) {
                        request.answer(match s {
                            Staged::Wrote(appended) | Staged::Retry(appended) => Ok(appended),
                            Staged::Refused(e) => Err(e),
                        });
                    }
                    return;
                }
                Attempt::Failed { error, commit } => {
                    for request in group {
                        request.answer(Err(self.group_error(&error, commit)));
                    }
                    return;
                }
                Attempt::Lost { at, error } => group.remove(at).answer(Err(error)),
            }
        }
    }

    /// One transaction for `group`: each append in a savepoint of its own
    /// (unless it is alone), committed if any of them wrote, rolled back
    /// otherwise.
    fn attempt(&self, conn: &mut Connection, group: &[Request]) -> Attempt {
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(error) => {
                return Attempt::Failed {
                    error,
                    commit: false,
                };
            }
        };
        // An append alone fails by dropping the transaction, as nothing
        // else is in it.
        let guarded = group.len() > 1;
        let mut staged = Vec::with_capacity(group.len());
        let mut wrote = false;
        for (at, request) in group.iter().enumerate() {
            let outcome = if guarded {
                run(&tx, "SAVEPOINT append").map_err(|e| self.err(e))
            } else {
                Ok(())
            };
            let outcome = outcome.and_then(|()| {
                match self.append_in(&tx, &request.events, &request.options) {
                    Ok(outcome) => outcome,
                    Err(e) => Err(self.err(e)),
                }
            });
            let outcome = match outcome {
                Ok(done) if guarded => run(&tx, "RELEASE append")
                    .map(|()| done)
                    .map_err(|e| self.err(e)),
                other => other,
            };
            match outcome {
                Ok(done) => {
                    wrote |= matches!(done, Staged::Wrote(_));
                    staged.push(done);
                }
                Err(error) => {
                    if guarded {
                        let undone = run(&tx, "ROLLBACK TO append")
                            .and_then(|()| run(&tx, "RELEASE append"));
                        if undone.is_err() || tx.is_autocommit() {
                            return Attempt::Lost { at, error };
                        }
                    }
                    staged.push(Staged::Refused(error));
                }
            }
        }
        if !wrote {
            // Nothing to keep: dropping `tx` rolls it back.
            return Attempt::Done(staged);
        }
        match tx.commit() {
            Ok(()) => Attempt::Done(staged),
            Err(error) => Attempt::Failed {
                error,
                commit: true,
            },
        }
    }

    /// `error`, which failed a whole group at its `BEGIN` or (`commit`)
    /// its `COMMIT`, as the error of one append of it.
    fn group_error(&self, error: &rusqlite::Error, commit: bool) -> Error {
        let copy = match error {
            rusqlite::Error::SqliteFailure(code, message) => {
                rusqlite::Error::SqliteFailure(*code, message.clone())
            }
            other => {
                return Error::Io {
                    path: self.path.clone(),
                    source: std::io::Error::other(other.to_string()),
                };
            }
        };
        match commit {
            true => commit_error(&self.path, copy),
            false => self.err(copy),
        }
    }

    /// The checks and inserts of one append, inside `tx`: the outer error
    /// is SQLite's, the inner one the contract's. A retry of a committed
    /// batch returns its positions having written nothing.
    fn append_in(
        &self,
        tx: &Transaction<'_>,
        events: &[NewEvent],
        options: &AppendOptions,
    ) -> rusqlite::Result<Result<Staged>> {
        if options
            .condition
            .as_ref()
            .is_some_and(|c| c.after.is_some())
        {
            let head = last_position(tx)?;
            if let Err(e) = validation::check_after(options, head) {
                return Ok(Err(e));
            }
        }
        match self.check_ids(tx, events)? {
            Ok(Ids::New) => {}
            Ok(Ids::Retry(appended)) => return Ok(Ok(Staged::Retry(appended))),
            Err(e) => return Ok(Err(e)),
        }
        for (stream, expected) in &options.expected {
            let actual = last_revision(tx, stream)?;
            if !expected.accepts(actual) {
                return Ok(Err(Error::WrongExpectedRevision {
                    stream: stream.clone(),
                    expected: *expected,
                    actual,
                }));
            }
        }
        if let Some(c) = &options.condition {
            let after = c.after.unwrap_or(0);
            if after < i64::MAX as u64 {
                let stmt = sql::first_match(&c.fail_if_events_match);
                let conflict: Option<i64> = tx
                    .prepare_cached(&stmt.sql)?
                    .query_row(
                        rusqlite::params_from_iter(bind(&[signed(after) + 1, i64::MAX], &stmt)),
                        |r| r.get(0),
                    )
                    .optional()?
                    .flatten();
                if let Some(position) = conflict {
                    return Ok(Err(Error::ConditionFailed {
                        position: unsigned(position),
                    }));
                }
            }
        }
        if let Err(e) = state::check_tracking(tx, options)? {
            return Ok(Err(e));
        }
        let appended = self.insert(tx, events)?;
        state::store_tracking(tx, options)?;
        Ok(Ok(Staged::Wrote(appended)))
    }

    /// Inserts the batch after the last committed event.
    fn insert(&self, tx: &Transaction<'_>, events: &[NewEvent]) -> rusqlite::Result<Appended> {
        // The last position taken, by an event still there or one removed.
        let (head, last_ts): (i64, i64) = tx
            .prepare_cached(
                "SELECT position, ts FROM (\
                   SELECT * FROM (SELECT position, ts FROM events \
                                  ORDER BY position DESC LIMIT 1) \
                   UNION ALL \
                   SELECT * FROM (SELECT position, ts FROM removed_events \
                                  ORDER BY position DESC LIMIT 1)) \
                 ORDER BY position DESC LIMIT 1",
            )?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((0, 0));
        let ts = now_micros().max(last_ts);
        let first = head + 1;
        let mut revisions: HashMap<&str, u64> = HashMap::new();
        let mut insert_event = tx.prepare_cached(
            "INSERT INTO events (position, type, tags, stream, revision, id, data, metadata, ts) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        let mut insert_tag = tx.prepare_cached(
            "INSERT OR IGNORE INTO tags (tag, position, type) VALUES (?1, ?2, ?3)",
        )?;
        for (i, e) in events.iter().enumerate() {
            let position = first + i as i64;
            let revision = match e.stream.as_deref() {
                None => None,
                Some(stream) => {
                    let next = match revisions.get(stream) {
                        Some(r) => r + 1,
                        None => last_revision(tx, stream)?.map_or(0, |r| r + 1),
                    };
                    revisions.insert(stream, next);
                    Some(signed(next))
                }
            };
            let id = e.id.map(encode_id);
            insert_event.execute(params![
                position,
                e.event_type,
                encode_tags(&e.tags),
                e.stream,
                revision,
                id.as_ref().map(|id| &id[..]),
                e.data.as_ref(),
                e.metadata.as_ref(),
                ts,
            ])?;
            for tag in &e.tags {
                insert_tag.execute(params![tag, position, e.event_type])?;
            }
        }
        let last = first + events.len() as i64 - 1;
        // Every append, for idempotency and subscriptions' batches.
        tx.prepare_cached("INSERT INTO batches (first, last) VALUES (?1, ?2)")?
            .execute([first, last])?;
        Ok(Appended {
            first: unsigned(first),
            last: unsigned(last),
        })
    }

    /// One page of a read: events of `stmt` within `lo..=hi`, at most
    /// `limit`.
    fn page(&self, stmt: &Statement, lo: u64, hi: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        let params = bind(&[signed(lo), signed(hi), signed(limit as u64)], stmt);
        self.with_reader(|conn| self.query_events(conn, &stmt.sql, params))
    }
}

impl EventStore for SqliteStore {
    fn append_with(&self, events: Vec<NewEvent>, options: AppendOptions) -> Result<Appended> {
        validation::check_append(&events, &options)?;
        let leader = match self.group.join(events, options) {
            Joined::Done(outcome) => return outcome,
            Joined::Lead(leader) => leader,
        };
        {
            let mut conn = self.writer.lock();
            self.commit_group(&mut conn, leader.take());
        }
        leader.finish()
    }

    fn read<'a>(&'a self, query: &Query, options: ReadOptions) -> Result<EventIter<'a>> {
        validation::check_query(query)?;
        let remaining = options.limit.unwrap_or(usize::MAX);
        let head = self.head()?;
        let (lo, hi) = options.bounds(head);
        if lo > hi || remaining == 0 {
            return Ok(Box::new(std::iter::empty()));
        }
        Ok(Box::new(Paged {
            store: self,
            stmt: sql::read(query, options.direction),
            direction: options.direction,
            lo,
            hi,
            remaining,
            buffer: VecDeque::new(),
            done: false,
        }))
    }

    /// Pages through the rows as `read` does, each row's event lent to `f`
    /// borrowed from the row (its tags from a stack array): nothing is
    /// allocated per event.
    fn read_each(
        &self,
        query: &Query,
        options: ReadOptions,
        f: &mut dyn FnMut(EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
        validation::check_query(query)?;
        let mut remaining = options.limit.unwrap_or(usize::MAX);
        let (mut lo, mut hi) = options.bounds(self.head()?);
        let stmt = sql::read(query, options.direction);
        let decoder = Decoder { path: &self.path };
        while remaining > 0 && lo <= hi {
            let limit = remaining.min(PAGE);
            let (lent, last, broke) =
                self.with_reader(|conn| decoder.each_row(conn, &stmt, (lo, hi, limit), f))?;
            remaining -= lent;
            if broke || lent < limit {
                break;
            }
            match options.direction {
                Direction::Forwards => lo = last + 1,
                Direction::Backwards => hi = last.saturating_sub(1),
            }
        }
        Ok(())
    }

    fn read_last(&self, query: &Query) -> Result<Option<RecordedEvent>> {
        validation::check_query(query)?;
        let stmt = sql::read(query, Direction::Backwards);
        Ok(self.page(&stmt, 1, u64::MAX, 1)?.pop())
    }

    fn head(&self) -> Result<u64> {
        self.with_reader(|conn| last_position(conn).map_err(|e| self.err(e)))
    }

    fn stream_revision(&self, stream: &str) -> Result<Option<u64>> {
        validation::check_stream_name(stream)?;
        self.with_reader(|conn| last_revision(conn, stream).map_err(|e| self.err(e)))
    }

    fn read_stream<'a>(&'a self, stream: &str, options: ReadOptions) -> Result<EventIter<'a>> {
        let Some(params) = stream_params(stream, options)? else {
            return Ok(Box::new(std::iter::empty()));
        };
        let sql = sql::stream_read(options.direction);
        let events = self.with_reader(|conn| self.query_events(conn, &sql, params))?;
        Ok(Box::new(events.into_iter().map(Ok)))
    }

    /// One query, each row's event lent to `f` borrowed from the row, as
    /// `read_each` lends them.
    fn read_stream_each(
        &self,
        stream: &str,
        options: ReadOptions,
        f: &mut dyn FnMut(EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
        let Some(params) = stream_params(stream, options)? else {
            return Ok(());
        };
        let sql = sql::stream_read(options.direction);
        let decoder = Decoder { path: &self.path };
        self.with_reader(|conn| decoder.each_row_of(conn, &sql, params, f))?;
        Ok(())
    }

    /// A binary search over positions, one primary-key probe per step
    /// (of `events` or `removed_events`): commit times never decrease with
    /// positions.
    fn position_at(&self, timestamp_micros: u64) -> Result<u64> {
        let t = signed(timestamp_micros);
        self.with_reader(|conn| {
            let head = last_position(conn).map_err(|e| self.err(e))?;
            crate::removal::position_at(conn, t, head).map_err(|e| self.err(e))
        })
    }

    fn list(
        &self,
        what: gesta::Listing,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<gesta::Listed>> {
        validation::check_listing(prefix, after, limit)?;
        self.with_reader(|conn| {
            crate::listings::list(conn, what, prefix, after, limit).map_err(|e| self.err(e))
        })
    }

    fn event_by_id(&self, id: u128) -> Result<Option<RecordedEvent>> {
        let mut found = None;
        self.event_by_id_with(id, &mut |e| found = Some(e.to_owned()))?;
        Ok(found)
    }

    /// One query, the row's event lent to `f` borrowed from the row, as
    /// `read_each` lends events.
    fn event_by_id_with(&self, id: u128, f: &mut dyn FnMut(EventRef<'_>)) -> Result<bool> {
        let params = vec![Value::Blob(encode_id(id).to_vec())];
        let decoder = Decoder { path: &self.path };
        let (lent, _, _) = self.with_reader(|conn| {
            decoder.each_row_of(conn, &sql::by_id(), params, &mut |e| {
                f(e);
                ControlFlow::Break(())
            })
        })?;
        Ok(lent > 0)
    }

    // --- Snapshots and tracking info (see `state`) ---

    fn save_snapshot(&self, key: &str, position: u64, state: &[u8]) -> Result<()> {
        let mut conn = self.writer.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let head = last_position(&tx).map_err(|e| self.err(e))?;
        let kept = self.options.snapshots_kept;
        state::save(&tx, head, key, position, state, kept).map_err(|e| self.err(e))??;
        tx.commit().map_err(|e| commit_error(&self.path, e))
    }

    fn load_snapshot(&self, key: &str, at_or_before: u64) -> Result<Option<gesta::Snapshot>> {
        validation::check_snapshot_key(key)?;
        self.with_reader(|conn| state::load(conn, key, at_or_before).map_err(|e| self.err(e)))
    }

    fn list_snapshots(&self, key: &str) -> Result<Vec<u64>> {
        validation::check_snapshot_key(key)?;
        self.with_reader(|conn| state::list(conn, key).map_err(|e| self.err(e)))
    }

    fn delete_snapshot(&self, key: &str, position: u64) -> Result<bool> {
        validation::check_snapshot_key(key)?;
        let conn = self.writer.lock();
        state::delete(&conn, key, position).map_err(|e| self.err(e))
    }

    fn tracking_info(&self, source: &str) -> Result<Option<u64>> {
        validation::check_tracking_source(source)?;
        self.with_reader(|conn| state::tracking(conn, source).map_err(|e| self.err(e)))
    }

    // --- Lifecycle: retroactive tags, redaction, the audit trail (see `lifecycle`) ---

    /// One `BEGIN IMMEDIATE` transaction on the writer, as an append:
    /// serialized with appends, committed with its audit entry or not at
    /// all. Subscribers are not told: the head does not move.
    fn add_tags(&self, target: &Target, tags: &[String]) -> Result<TagsAdded> {
        let tags = gesta::lifecycle::check_add_tags(target, tags)?;
        let mut conn = self.writer.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        // Dropping `tx` without committing rolls back, on any error.
        let added = lifecycle::add_tags(&tx, &self.path, target, tags, now_micros())?;
        tx.commit().map_err(|e| commit_error(&self.path, e))?;
        Ok(added)
    }

    /// See `erasing` for what happens to the erased bytes.
    fn redact(&self, target: &Target) -> Result<Redacted> {
        gesta::lifecycle::check_target(target)?;
        self.erasing(|tx, path| lifecycle::redact(tx, path, target, now_micros()))
    }

    fn audit_log(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        gesta::lifecycle::check_audit_page(limit)?;
        self.with_reader(|conn| lifecycle::audit_log(conn, &self.path, after, limit))
    }

    // ---- Removal and retention (see `removal`) ----

    fn remove(&self, target: &Target) -> Result<Removed> {
        gesta::lifecycle::check_target(target)?;
        self.erasing(|tx, path| crate::removal::remove(tx, path, target, now_micros()))
    }

    fn delete_stream(&self, stream: &str) -> Result<Removed> {
        validation::check_stream_name(stream)?;
        self.erasing(|tx, path| crate::removal::remove_stream(tx, path, stream, None, now_micros()))
    }

    fn truncate_stream(&self, stream: &str, before: u64) -> Result<Removed> {
        validation::check_stream_name(stream)?;
        self.erasing(|tx, path| {
            crate::removal::remove_stream(tx, path, stream, Some(before), now_micros())
        })
    }

    fn set_retention(&self, rule: &RetentionRule) -> Result<()> {
        gesta::removal::check_rule(rule)?;
        let mut conn = self.writer.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        crate::removal::set_rule(&tx, &self.path, rule, now_micros())?;
        tx.commit().map_err(|e| commit_error(&self.path, e))
    }

    fn retention_rules(&self) -> Result<Vec<RetentionRule>> {
        self.with_reader(|conn| crate::removal::rules(conn, &self.path))
    }

    fn enforce_retention(&self) -> Result<Removed> {
        self.erasing(|tx, path| crate::removal::enforce(tx, path, now_micros()))
    }

    // ---- Subscriptions (see `live`) ----

    fn subscribe(&self, query: &Query, after: u64) -> Result<gesta::Subscription> {
        self.live.subscribe(query, after)
    }

    fn subscribe_durable(&self, name: &str, query: &Query) -> Result<gesta::DurableSubscription> {
        self.live.subscribe_durable(name, query)
    }

    fn durable_subscriptions(&self) -> Result<Vec<gesta::DurableSubscriptionState>> {
        self.live.durable().list()
    }

    fn delete_durable_subscription(&self, name: &str) -> Result<bool> {
        self.live.durable().delete(name)
    }
}

/// A read, fetched a page at a time within the bounds fixed when it began
/// (so it never goes past the head of that moment).
struct Paged<'a> {
    store: &'a SqliteStore,
    stmt: Statement,
    direction: Direction,
    /// Inclusive bounds of what is left to read.
    lo: u64,
    hi: u64,
    remaining: usize,
    buffer: VecDeque<RecordedEvent>,
    done: bool,
}

impl Paged<'_> {
    fn refill(&mut self) -> Result<()> {
        let limit = self.remaining.min(PAGE);
        let page = self.store.page(&self.stmt, self.lo, self.hi, limit)?;
        if page.len() < limit {
            self.done = true;
        }
        if let Some(last) = page.last() {
            match self.direction {
                Direction::Forwards => self.lo = last.position + 1,
                Direction::Backwards => self.hi = last.position.saturating_sub(1),
            }
            if self.lo > self.hi {
                self.done = true;
            }
        }
        self.buffer.extend(page);
        Ok(())
    }
}

impl Iterator for Paged<'_> {
    type Item = Result<RecordedEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        if self.buffer.is_empty()
            && !self.done
            && let Err(e) = self.refill()
        {
            self.done = true;
            self.remaining = 0;
            return Some(Err(e));
        }
        let event = self.buffer.pop_front()?;
        self.remaining -= 1;
        Some(Ok(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: std::ffi::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    /// A `COMMIT` that failed on I/O may have reached the WAL: its outcome
    /// is unknown. Any other failure is a rollback.
    #[test]
    fn a_commit_failing_on_io_has_an_unknown_outcome() {
        let path = Path::new("events.db");
        for code in [
            rusqlite::ffi::SQLITE_IOERR_FSYNC,
            rusqlite::ffi::SQLITE_IOERR_WRITE,
        ] {
            let e = commit_error(path, failure(code));
            assert!(matches!(e, Error::OutcomeUnknown { .. }), "{code}: {e:?}");
        }
        for code in [rusqlite::ffi::SQLITE_BUSY, rusqlite::ffi::SQLITE_CONSTRAINT] {
            let e = commit_error(path, failure(code));
            assert!(matches!(e, Error::Io { .. }), "{code}: {e:?}");
        }
    }
}

#[cfg(test)]
mod group_tests {
    use super::*;
    use crate::Synchronous;
    use gesta::ExpectedRevision;

    fn store(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
        let options = SqliteOptions::default().synchronous(Synchronous::Off);
        Arc::new(SqliteStore::open(dir.path().join("e.db"), options).expect("open"))
    }

    /// Runs `appends` on threads while the writer is held, waits until all
    /// of them queued, then lets them go: they form one group. Their
    /// outcomes, in the order given.
    fn one_group(
        store: &Arc<SqliteStore>,
        appends: Vec<(Vec<NewEvent>, AppendOptions)>,
    ) -> Vec<Result<Appended>> {
        let n = appends.len();
        let held = store.writer.lock();
        let threads: Vec<_> = appends
            .into_iter()
            .map(|(events, options)| {
                let store = store.clone();
                std::thread::spawn(move || store.append_with(events, options))
            })
            .collect();
        while store.group.waiting() < n {
            std::thread::yield_now();
        }
        drop(held);
        threads
            .into_iter()
            .map(|t| t.join().expect("append thread"))
            .collect()
    }

    fn positions(store: &SqliteStore) -> Vec<u64> {
        store
            .read(&Query::all(), ReadOptions::forwards())
            .expect("read")
            .map(|e| e.expect("event").position)
            .collect()
    }

    /// Appends that queue while the writer is busy share one commit; each
    /// is checked against the committed state and the appends before it
    /// in the group, and the refused ones leave nothing behind.
    #[test]
    fn appends_queued_behind_the_writer_share_one_commit() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = store(&dir);
        let seed = || vec![NewEvent::new("Seed", "0").stream("s").id(1)];
        store
            .append_with(seed(), AppendOptions::new().track("src", 5))
            .expect("seed");
        let commits = store.append_commits();

        let mut appends = Vec::new();
        // 0..4: each fails if another claim came after position 1.
        for i in 0..4 {
            appends.push((
                vec![NewEvent::new("Claim", format!("c{i}")).tag("k")],
                AppendOptions::new().fail_if(Query::tag("k"), Some(1)),
            ));
        }
        // 4..6: each expects the stream at revision 0.
        for i in 0..2 {
            appends.push((
                vec![NewEvent::new("S", format!("s{i}")).stream("s")],
                AppendOptions::new().expect("s", ExpectedRevision::Exact(0)),
            ));
        }
        // 6: a committed id with other content.
        appends.push((
            vec![NewEvent::new("Other", "x").id(1)],
            AppendOptions::new(),
        ));
        // 7: a tracking position already stored.
        appends.push((
            vec![NewEvent::new("Tracked", "t")],
            AppendOptions::new().track("src", 5),
        ));
        // 8, 9: unconditional, two events each.
        for i in 0..2 {
            appends.push((
                vec![
                    NewEvent::new("Free", format!("f{i}a")),
                    NewEvent::new("Free", format!("f{i}b")),
                ],
                AppendOptions::new(),
            ));
        }
        // 10: a retry of the seed.
        appends.push((seed(), AppendOptions::new()));

        let out = one_group(&store, appends);
        assert_eq!(store.append_commits(), commits + 1, "one commit: {out:?}");

        let claims: Vec<&Appended> = out[..4].iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(claims.len(), 1, "exactly one claim wins: {out:?}");
        let won = claims[0].first;
        for r in &out[..4] {
            match r {
                Ok(_) => {}
                Err(Error::ConditionFailed { position }) => assert_eq!(*position, won),
                Err(e) => panic!("claim: {e:?}"),
            }
        }
        let streamed: Vec<&Appended> = out[4..6].iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(streamed.len(), 1, "one stream append wins: {out:?}");
        assert!(
            out[4..6].iter().any(|r| matches!(
                r,
                Err(Error::WrongExpectedRevision {
                    actual: Some(1),
                    ..
                })
            )),
            "{out:?}"
        );
        assert!(
            matches!(out[6], Err(Error::DuplicateEventId { id: 1 })),
            "{out:?}"
        );
        assert!(
            matches!(out[7], Err(Error::TrackingConflict { .. })),
            "{out:?}"
        );
        assert!(out[8].is_ok() && out[9].is_ok(), "{out:?}");
        assert_eq!(out[10].as_ref().ok(), Some(&Appended { first: 1, last: 1 }));

        // Six events written, densely after the seed, each where its
        // append was told.
        assert_eq!(positions(&store), (1..=7).collect::<Vec<_>>());
        let mut told: Vec<u64> = out[..10]
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .flat_map(|a| a.first..=a.last)
            .collect();
        told.sort_unstable();
        assert_eq!(told, (2..=7).collect::<Vec<_>>());
        assert_eq!(store.stream_revision("s").expect("revision"), Some(1));
        assert_eq!(store.tracking_info("src").expect("tracking"), Some(5));
    }

    /// An append that SQLite refuses midway (here a trigger aborts its
    /// second event) is rolled back to its savepoint: its first event is
    /// gone and its neighbours commit. One that makes SQLite roll back the
    /// whole transaction gets its error, and the others run again.
    #[test]
    fn an_append_sqlite_refuses_leaves_its_group_whole() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = store(&dir);
        let conn = Connection::open(dir.path().join("e.db")).expect("second connection");
        conn.execute_batch(
            "CREATE TRIGGER abort_boom BEFORE INSERT ON events WHEN NEW.type = 'Boom' \
             BEGIN SELECT RAISE(ABORT, 'boom'); END; \
             CREATE TRIGGER rollback_bust BEFORE INSERT ON events WHEN NEW.type = 'Bust' \
             BEGIN SELECT RAISE(ROLLBACK, 'bust'); END;",
        )
        .expect("triggers");
        drop(conn);

        for bad in ["Boom", "Bust"] {
            let head = store.head().expect("head");
            let commits = store.append_commits();
            let appends = vec![
                (vec![NewEvent::new("A", "a").tag("x")], AppendOptions::new()),
                (
                    vec![NewEvent::new("B", "b").tag("x"), NewEvent::new(bad, "!")],
                    AppendOptions::new(),
                ),
                (vec![NewEvent::new("C", "c").tag("x")], AppendOptions::new()),
            ];
            let out = one_group(&store, appends);
            assert!(out[1].is_err(), "{bad}: {out:?}");
            assert!(out[0].is_ok() && out[2].is_ok(), "{bad}: {out:?}");
            assert_eq!(store.head().expect("head"), head + 2, "{bad}");
            let types: Vec<String> = store
                .read(&Query::tag("x"), ReadOptions::forwards().start(head))
                .expect("read")
                .map(|e| e.expect("event").event_type)
                .collect();
            assert_eq!(types.len(), 2, "{bad}: {types:?}");
            assert!(!types.contains(&"B".to_owned()), "{bad}: {types:?}");
            // Boom: one commit; Bust: the transaction was lost and the
            // other two committed in a second one.
            assert_eq!(store.append_commits(), commits + 1, "{bad}");
        }
        assert_eq!(positions(&store), (1..=4).collect::<Vec<_>>());
    }
}
