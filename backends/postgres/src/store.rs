//! [`PostgresStore`]: the handle — the append transaction, reads, and the
//! statements they run. Snapshots and tracking info are `state`'s,
//! retroactive tags, redaction and the audit trail `lifecycle`'s; this
//! module only gives them a connection (and, for `add_tags` and `redact`,
//! the transaction under the store's lock).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use gesta::event::MAX_TAGS;
use gesta::validation::{check_query, check_stream_name};
use gesta::{
    AppendOptions, Appended, AuditEntry, Direction, Error, EventIter, EventRef, EventStore,
    NewEvent, Query, ReadOptions, RecordedEvent, Redacted, Result, Tags, TagsAdded, Target,
};
use postgres::Row;
use postgres::types::ToSql;

use crate::lifecycle::{self, LifecycleSql};
use crate::live::Live;
use crate::pool::{Conn, Pool};
use crate::schema::{self, quote_ident};
use crate::sql::{self, EVENT_COLUMNS, Param, Select};
use crate::state::{self, StateSql};
use crate::{PostgresOptions, pg_error};

/// Events fetched per round trip when reading.
const PAGE: usize = 512;

/// An [`EventStore`] in one schema of a PostgreSQL database.
///
/// `Send + Sync`: share it between threads (an `Arc`, or by reference in
/// scoped threads); every operation takes a pooled connection for its
/// duration.
pub struct PostgresStore {
    schema: String,
    /// The schema name as a quoted identifier.
    s: String,
    /// Its own, or shared with the other tenants of a `PostgresSchemas`.
    pool: Arc<Pool>,
    /// `BEGIN …; SELECT pg_advisory_xact_lock(…)`.
    begin: String,
    insert: String,
    find_ids: String,
    revisions: String,
    head: String,
    stream_revision: String,
    /// A stream's events by revision range, ascending and descending.
    stream_forwards: String,
    stream_backwards: String,
    by_id: String,
    /// Snapshots' and tracking info's statements.
    state: StateSql,
    /// Retroactive tags' and the audit trail's statements.
    lifecycle: LifecycleSql,
    /// Removal's and retention rules' statements.
    removal: crate::removal::RemovalSql,
    snapshots_kept: usize,
    /// Subscriptions: the head they read to, the hub, the listener.
    live: Live,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// What an append transaction found: a new batch to commit, or a retry of
/// a committed one (nothing to commit).
enum Outcome {
    New(Appended),
    Retry(Appended),
}

/// A committed event whose id a batch repeats, with what the idempotency
/// rule needs besides: the last position of the batch it began (if it
/// began one), how many of its tags were added after the fact, and whether
/// it was redacted.
struct Stored {
    event: RecordedEvent,
    batch_last: Option<i64>,
    added: usize,
    redacted: bool,
}

impl Stored {
    /// Whether the event is `new` as it was appended: its own tags are the
    /// first ones of its array (those added since follow them), and once
    /// it was redacted its data and metadata (erased) are not compared.
    fn is_as_appended(&self, new: &NewEvent) -> bool {
        let e = &self.event;
        let own = e.tags.len().checked_sub(self.added).map(|n| &e.tags[..n]);
        e.event_type == new.event_type
            && own == Some(new.tags.as_slice())
            && (self.redacted || (e.data == new.data && e.metadata == new.metadata))
            && e.id == new.id
            && e.stream == new.stream
    }
}

fn corrupt(position: i64, reason: impl Into<String>) -> Error {
    Error::Corruption {
        file: PathBuf::from("postgres"),
        offset: u64::try_from(position).unwrap_or(0),
        reason: reason.into(),
    }
}

pub(crate) fn to_u64(position: i64, value: i64, what: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| corrupt(position, format!("negative {what} {value}")))
}

/// A position bound as a bigint (positions never reach `i64::MAX`).
pub(crate) fn bound(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

fn id_bytes(id: u128) -> [u8; 16] {
    id.to_be_bytes()
}

/// Decodes the first columns of `row`, laid out as [`EVENT_COLUMNS`].
pub(crate) fn event_from_row(row: &Row) -> Result<RecordedEvent> {
    let raw: Vec<&[u8]> = row.try_get(2).map_err(pg_error)?;
    let mut tags = [""; MAX_TAGS];
    event_ref_from_row(row, &raw, &mut tags).map(|e| e.to_owned())
}

/// Lends the event of one row of event columns to `f`, borrowed from the
/// row (its tags from a stack array, the row's list of them allocated).
fn lend_row(
    row: &Row,
    f: &mut dyn FnMut(EventRef<'_>) -> ControlFlow<()>,
) -> Result<ControlFlow<()>> {
    let raw: Vec<&[u8]> = row.try_get(2).map_err(pg_error)?;
    let mut tags = [""; MAX_TAGS];
    Ok(f(event_ref_from_row(row, &raw, &mut tags)?))
}

/// One row of event columns lent (see `EventStore::read_each`): the
/// strings and bytes borrowed from the row; the tags' UTF-8 checked into
/// `tags`, whose slots borrow from `raw` (the row's tag array).
fn event_ref_from_row<'r>(
    row: &'r Row,
    raw: &'r [&'r [u8]],
    tags: &'r mut [&'r str; MAX_TAGS],
) -> Result<EventRef<'r>> {
    let position: i64 = row.try_get(0).map_err(pg_error)?;
    let text = |bytes: &'r [u8], what: &str| {
        std::str::from_utf8(bytes).map_err(|_| corrupt(position, format!("{what} is not UTF-8")))
    };
    if raw.len() > MAX_TAGS {
        return Err(corrupt(position, format!("more than {MAX_TAGS} tags")));
    }
    for (slot, tag) in tags.iter_mut().zip(raw) {
        *slot = text(tag, "tag")?;
    }
    let id = match row.try_get::<_, Option<&[u8]>>(5).map_err(pg_error)? {
        None => None,
        Some(bytes) => {
            let bytes: [u8; 16] = bytes
                .try_into()
                .map_err(|_| corrupt(position, "an id is not 16 bytes"))?;
            Some(u128::from_be_bytes(bytes))
        }
    };
    let stream = match row.try_get::<_, Option<&[u8]>>(6).map_err(pg_error)? {
        None => None,
        Some(bytes) => Some(text(bytes, "stream")?),
    };
    let revision = match row.try_get::<_, Option<i64>>(7).map_err(pg_error)? {
        None => None,
        Some(r) => Some(to_u64(position, r, "revision")?),
    };
    let timestamp: i64 = row.try_get(8).map_err(pg_error)?;
    Ok(EventRef {
        position: to_u64(position, position, "position")?,
        event_type: text(row.try_get(1).map_err(pg_error)?, "event type")?,
        tags: Tags::strs(&tags[..raw.len()]),
        data: row.try_get(3).map_err(pg_error)?,
        metadata: row.try_get(4).map_err(pg_error)?,
        id,
        stream,
        revision,
        timestamp_micros: to_u64(position, timestamp, "timestamp")?,
        shared: None,
    })
}

/// A connection URL (or `key=value` string) as a configuration, named
/// `gesta` to the server unless it names itself.
pub(crate) fn parse_url(url: &str) -> Result<postgres::Config> {
    let mut config = postgres::Config::from_str(url).map_err(pg_error)?;
    if config.get_application_name().is_none() {
        config.application_name("gesta");
    }
    Ok(config)
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL or a
    /// `key=value` connection string, without TLS) and opens the store in
    /// `options.schema`, creating the schema and its tables if they are
    /// missing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad schema name or a pool size of 0;
    /// [`Error::Io`] if the server cannot be reached, or the schema holds
    /// tables of another version.
    pub fn connect(url: &str, options: PostgresOptions) -> Result<PostgresStore> {
        schema::check_schema_name(&options.schema)?;
        let config = parse_url(url)?;
        if options.pool_size == 0 {
            return Err(Error::InvalidInput {
                reason: "pool_size must be at least 1".to_owned(),
            });
        }
        let pool = Arc::new(Pool::new(config.clone(), options.pool_size));
        PostgresStore::connect_pooled(config, pool, options)
    }

    /// Opens the store in `options.schema` as [`connect`](Self::connect)
    /// does, taking its connections from `pool` (which other stores may
    /// share: statements name their schema, so a connection serves any).
    pub(crate) fn connect_pooled(
        config: postgres::Config,
        pool: Arc<Pool>,
        options: PostgresOptions,
    ) -> Result<PostgresStore> {
        schema::check_schema_name(&options.schema)?;
        let key = schema::lock_key(&options.schema);
        let s = quote_ident(&options.schema);
        let store = PostgresStore {
            begin: schema::begin_locked(key),
            insert: insert_sql(&s),
            // A removed event is compared as a redacted one: without its
            // data and metadata, which are gone.
            find_ids: format!(
                "SELECT {EVENT_COLUMNS}, b.last, coalesce(a.count, 0), \
                        r.position IS NOT NULL \
                 FROM {s}.events e \
                 LEFT JOIN {s}.batches b ON b.first = e.position \
                 LEFT JOIN {s}.added_tags a ON a.position = e.position \
                 LEFT JOIN {s}.redacted r ON r.position = e.position \
                 WHERE e.id = ANY($1::bytea[]) \
                 UNION ALL \
                 SELECT e.position, e.event_type, e.tags, ''::bytea, ''::bytea, \
                        e.id, e.stream, e.revision, e.timestamp_micros, \
                        b.last, coalesce(a.count, 0), true \
                 FROM {s}.removed_events e \
                 LEFT JOIN {s}.batches b ON b.first = e.position \
                 LEFT JOIN {s}.added_tags a ON a.position = e.position \
                 WHERE e.id = ANY($1::bytea[])"
            ),
            revisions: format!(
                "SELECT {} \
                 FROM unnest($1::bytea[]) WITH ORDINALITY AS n(name, ord) ORDER BY n.ord",
                sql::last_revision(&s, "n.name")
            ),
            head: sql::head(&s),
            stream_revision: format!("SELECT {}", sql::last_revision(&s, "$1")),
            stream_forwards: format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events e WHERE e.stream = $1 \
                 AND e.revision BETWEEN $2 AND $3 ORDER BY e.revision ASC LIMIT $4"
            ),
            stream_backwards: format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events e WHERE e.stream = $1 \
                 AND e.revision BETWEEN $2 AND $3 ORDER BY e.revision DESC LIMIT $4"
            ),
            by_id: format!("SELECT {EVENT_COLUMNS} FROM {s}.events e WHERE e.id = $1"),
            state: StateSql::new(&s),
            lifecycle: LifecycleSql::new(&s),
            removal: crate::removal::RemovalSql::new(&s),
            snapshots_kept: options.snapshots_kept,
            live: Live::new(config.clone(), &s, key, options.poll_interval),
            pool,
            schema: options.schema,
            s,
        };
        let mut conn = store.pool.get()?;
        schema::ensure(&mut conn, &store.schema, key)?;
        drop(conn);
        Ok(store)
    }

    /// The schema holding the store.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Drops the store's schema and everything in it (for tests and
    /// benchmarks to clean up). The store is unusable afterwards.
    pub fn drop_schema(&self) -> Result<()> {
        let mut conn = self.pool.get()?;
        conn.execute_batch(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.s))
    }

    /// Runs `f` in a transaction under the store's lock (begun as an
    /// append's) and commits it if `f` succeeds, rolling it back otherwise.
    fn locked<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let mut conn = self.pool.get()?;
        if let Err(e) = conn.execute_batch(&self.begin) {
            conn.discard();
            return Err(e);
        }
        match f(&mut conn) {
            Ok(done) => match conn.commit() {
                Ok(()) => Ok(done),
                Err(e) => {
                    conn.discard();
                    Err(e)
                }
            },
            Err(e) => {
                if conn.execute_batch("ROLLBACK").is_err() {
                    conn.discard();
                }
                Err(e)
            }
        }
    }

    /// The checks and the insert of an append, inside its transaction and
    /// under the store's lock.
    fn append_locked(
        &self,
        conn: &mut Conn,
        events: &[NewEvent],
        options: &AppendOptions,
    ) -> Result<Outcome> {
        if options
            .condition
            .as_ref()
            .is_some_and(|c| c.after.is_some())
        {
            let head: i64 = conn
                .query_one(&self.head, &[])?
                .try_get(0)
                .map_err(pg_error)?;
            gesta::validation::check_after(options, to_u64(head, head, "head")?)?;
        }
        if events.iter().any(|e| e.id.is_some())
            && let Some(done) = self.committed_batch(conn, events)?
        {
            return Ok(Outcome::Retry(done));
        }
        if !options.expected.is_empty() {
            let names: Vec<&[u8]> = options.expected.iter().map(|(s, _)| s.as_bytes()).collect();
            let rows = conn.query(&self.revisions, &[&names])?;
            for ((stream, expected), row) in options.expected.iter().zip(&rows) {
                let actual = match row.try_get::<_, Option<i64>>(0).map_err(pg_error)? {
                    None => None,
                    Some(r) => Some(to_u64(0, r, "revision")?),
                };
                if !expected.accepts(actual) {
                    return Err(Error::WrongExpectedRevision {
                        stream: stream.clone(),
                        expected: *expected,
                        actual,
                    });
                }
            }
        }
        if let Some(c) = &options.condition {
            let built = sql::build(
                &self.s,
                &c.fail_if_events_match,
                Direction::Forwards,
                Select::Positions,
            );
            let (after, before, limit) = (bound(c.after.unwrap_or(0)), i64::MAX, 1i64);
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&after, &before, &limit];
            params.extend(built.params.iter().map(|p| &**p as &(dyn ToSql + Sync)));
            if let Some(row) = conn.query(&built.sql, &params)?.first() {
                let position: i64 = row.try_get(0).map_err(pg_error)?;
                return Err(Error::ConditionFailed {
                    position: to_u64(position, position, "position")?,
                });
            }
        }
        state::check_tracking(conn, &self.state, options)?;
        let appended = self.insert(conn, events)?;
        state::store_tracking(conn, &self.state, options)?;
        Ok(Outcome::New(appended))
    }

    /// The idempotency rule: `Some` if `events` repeat a committed batch
    /// exactly as it was appended (see [`Stored::is_as_appended`]), an
    /// error if some of their ids were committed otherwise.
    fn committed_batch(&self, conn: &mut Conn, events: &[NewEvent]) -> Result<Option<Appended>> {
        let ids: Vec<[u8; 16]> = events.iter().filter_map(|e| e.id.map(id_bytes)).collect();
        let ids: Vec<&[u8]> = ids.iter().map(|id| &id[..]).collect();
        let rows = conn.query(&self.find_ids, &[&ids])?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut stored: HashMap<u128, Stored> = HashMap::new();
        for row in &rows {
            let event = event_from_row(row)?;
            let position = bound(event.position);
            let batch_last: Option<i64> = row.try_get(9).map_err(pg_error)?;
            let added: i64 = row.try_get(10).map_err(pg_error)?;
            let redacted: bool = row.try_get(11).map_err(pg_error)?;
            if let Some(id) = event.id {
                let added = to_u64(position, added, "count of added tags")?;
                stored.insert(
                    id,
                    Stored {
                        event,
                        batch_last,
                        added: usize::try_from(added).unwrap_or(usize::MAX),
                        redacted,
                    },
                );
            }
        }
        let found: Vec<Option<&Stored>> = events
            .iter()
            .map(|e| e.id.and_then(|id| stored.get(&id)))
            .collect();
        let Some(first_found) = found.iter().flatten().next() else {
            return Ok(None);
        };
        let len = events.len() as u64;
        if let Some(head) = found[0] {
            let first = head.event.position;
            let last = first + len - 1;
            let whole_batch = head.batch_last.is_some_and(|b| b == bound(last));
            let identical = events.iter().zip(&found).enumerate().all(|(i, (new, s))| {
                s.is_some_and(|s| s.event.position == first + i as u64 && s.is_as_appended(new))
            });
            if whole_batch && identical {
                return Ok(Some(Appended { first, last }));
            }
        }
        Err(Error::DuplicateEventId {
            id: first_found.event.id.unwrap_or_default(),
        })
    }

    /// Inserts `events` after the head: one statement for the events, their
    /// tags and the batch.
    fn insert(&self, conn: &mut Conn, events: &[NewEvent]) -> Result<Appended> {
        let ids: Vec<Option<[u8; 16]>> = events.iter().map(|e| e.id.map(id_bytes)).collect();
        let types: Vec<&[u8]> = events.iter().map(|e| e.event_type.as_bytes()).collect();
        let data: Vec<&[u8]> = events.iter().map(|e| &e.data[..]).collect();
        let metadata: Vec<&[u8]> = events.iter().map(|e| &e.metadata[..]).collect();
        let ids: Vec<Option<&[u8]>> = ids.iter().map(|id| id.as_ref().map(|b| &b[..])).collect();
        let streams: Vec<Option<&[u8]>> = events
            .iter()
            .map(|e| e.stream.as_ref().map(|s| s.as_bytes()))
            .collect();
        let mut tag_owners: Vec<i64> = Vec::new();
        let mut tags: Vec<&[u8]> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            for tag in &e.tags {
                tag_owners.push(i as i64 + 1);
                tags.push(tag.as_bytes());
            }
        }
        let len = events.len() as i64;
        let row = conn.query_one(
            &self.insert,
            &[
                &types,
                &data,
                &metadata,
                &ids,
                &streams,
                &tag_owners,
                &tags,
                &len,
            ],
        )?;
        let head: i64 = row.try_get(0).map_err(pg_error)?;
        let head = to_u64(head, head, "head")?;
        Ok(Appended {
            first: head + 1,
            last: head + events.len() as u64,
        })
    }

    /// The rows of a read of `stream` per `options` (revisions as
    /// `EventStore::read_stream` counts them), in one query.
    fn stream_rows(&self, stream: &str, options: ReadOptions) -> Result<Vec<Row>> {
        check_stream_name(stream)?;
        let Some((lo, hi)) = options.revision_bounds() else {
            return Ok(Vec::new());
        };
        let (lo, hi) = (bound(lo), bound(hi));
        let limit = options.limit.map_or(i64::MAX, |n| bound(n as u64));
        let sql = match options.direction {
            Direction::Forwards => &self.stream_forwards,
            Direction::Backwards => &self.stream_backwards,
        };
        let mut conn = self.pool.get()?;
        conn.query(sql, &[&stream.as_bytes(), &lo, &hi, &limit])
    }

    /// A paged reader of `query`'s events per `options`, nothing fetched
    /// yet (done at once when the limit is 0).
    fn reader(&self, query: &Query, options: ReadOptions) -> Result<Reader<'_>> {
        check_query(query)?;
        let built = sql::build(&self.s, query, options.direction, Select::Events);
        let (lo, hi) = match options.direction {
            Direction::Forwards => (bound(options.start.unwrap_or(0)), i64::MAX),
            Direction::Backwards => (0, options.start.map_or(i64::MAX, bound)),
        };
        let remaining = options.limit.unwrap_or(usize::MAX);
        Ok(Reader {
            store: self,
            sql: built.sql,
            params: built.params,
            direction: options.direction,
            lo,
            hi,
            remaining,
            first_page: true,
            buffered: VecDeque::new(),
            done: remaining == 0,
        })
    }
}

/// The insert of a batch: positions after the head, revisions after each
/// stream's last, one timestamp (the server's clock, but never below the
/// previous batch's); returns the head before the batch.
fn insert_sql(s: &str) -> String {
    format!(
        "WITH head AS (
            SELECT coalesce(
                (SELECT last FROM {s}.batches ORDER BY first DESC LIMIT 1), 0) AS head
        ), clock AS (
            SELECT greatest(
                (extract(epoch FROM clock_timestamp()) * 1000000)::bigint,
                coalesce(
                    (SELECT timestamp_micros + 1 FROM {s}.batches ORDER BY first DESC LIMIT 1),
                    0
                )
            ) AS ts
        ), input AS (
            SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[])
                WITH ORDINALITY AS i(event_type, data, metadata, id, stream, ord)
        ), tag_input AS (
            SELECT * FROM unnest($6::bigint[], $7::bytea[]) WITH ORDINALITY AS t(ord, tag, k)
        ), tag_lists AS (
            SELECT ord, array_agg(tag ORDER BY k) AS tags FROM tag_input GROUP BY ord
        ), new_events AS (
            INSERT INTO {s}.events
                (position, event_type, tags, data, metadata, id, stream, revision,
                 timestamp_micros)
            SELECT head.head + i.ord, i.event_type, coalesce(l.tags, '{{}}'::bytea[]), i.data,
                i.metadata, i.id, i.stream,
                CASE WHEN i.stream IS NOT NULL THEN
                    coalesce({revision}, -1)
                        + row_number() OVER (PARTITION BY i.stream ORDER BY i.ord)
                END,
                clock.ts
            FROM input i CROSS JOIN head CROSS JOIN clock LEFT JOIN tag_lists l ON l.ord = i.ord
        ), new_tags AS (
            INSERT INTO {s}.event_tags (tag, position)
            SELECT DISTINCT t.tag, head.head + t.ord FROM tag_input t CROSS JOIN head
        ), new_batch AS (
            INSERT INTO {s}.batches (first, last, timestamp_micros)
            SELECT head.head + 1, head.head + $8, clock.ts FROM head CROSS JOIN clock
        )
        SELECT head FROM head",
        revision = sql::last_revision(s, "i.stream")
    )
}

impl EventStore for PostgresStore {
    fn append_with(&self, events: Vec<NewEvent>, options: AppendOptions) -> Result<Appended> {
        gesta::validation::check_append(&events, &options)?;
        let mut conn = self.pool.get()?;
        if let Err(e) = conn.execute_batch(&self.begin) {
            conn.discard();
            return Err(e);
        }
        let outcome = self.append_locked(&mut conn, &events, &options);
        match outcome {
            Ok(Outcome::New(appended)) => match conn.commit_after(self.live.notify_sql()) {
                Ok(()) => {
                    self.live.committed(appended.last, &events);
                    Ok(appended)
                }
                Err(e) => {
                    conn.discard();
                    Err(e)
                }
            },
            Ok(Outcome::Retry(appended)) => {
                if conn.execute_batch("ROLLBACK").is_err() {
                    conn.discard();
                }
                Ok(appended)
            }
            Err(e) => {
                if conn.execute_batch("ROLLBACK").is_err() {
                    conn.discard();
                }
                Err(e)
            }
        }
    }

    fn read<'a>(&'a self, query: &Query, options: ReadOptions) -> Result<EventIter<'a>> {
        let mut reader = self.reader(query, options)?;
        if !reader.done {
            reader.fetch()?;
        }
        Ok(Box::new(reader))
    }

    /// Pages through the rows as `read` does, each row's event lent to `f`
    /// with its strings and bytes borrowed from the row (one allocation
    /// per event remains: the row's list of tags).
    fn read_each(
        &self,
        query: &Query,
        options: ReadOptions,
        f: &mut dyn FnMut(EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
        let mut reader = self.reader(query, options)?;
        while !reader.done {
            for row in &reader.next_page()? {
                if lend_row(row, f)?.is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn head(&self) -> Result<u64> {
        let mut conn = self.pool.get()?;
        let head: i64 = conn
            .query_one(&self.head, &[])?
            .try_get(0)
            .map_err(pg_error)?;
        to_u64(head, head, "head")
    }

    fn stream_revision(&self, stream: &str) -> Result<Option<u64>> {
        check_stream_name(stream)?;
        let mut conn = self.pool.get()?;
        let row = conn.query_one(&self.stream_revision, &[&stream.as_bytes()])?;
        match row.try_get::<_, Option<i64>>(0).map_err(pg_error)? {
            None => Ok(None),
            Some(r) => to_u64(0, r, "revision").map(Some),
        }
    }

    fn read_stream<'a>(&'a self, stream: &str, options: ReadOptions) -> Result<EventIter<'a>> {
        let events = self
            .stream_rows(stream, options)?
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(events.into_iter().map(Ok)))
    }

    /// One query, each row's event lent to `f` with its strings and bytes
    /// borrowed from the row, as `read_each` lends them.
    fn read_stream_each(
        &self,
        stream: &str,
        options: ReadOptions,
        f: &mut dyn FnMut(EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
        for row in &self.stream_rows(stream, options)? {
            if lend_row(row, f)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// A binary search over positions, one primary-key probe per step
    /// (commit times never decrease with positions), on one connection.
    fn position_at(&self, timestamp_micros: u64) -> Result<u64> {
        let mut conn = self.pool.get()?;
        let head: i64 = conn
            .query_one(&self.head, &[])?
            .try_get(0)
            .map_err(pg_error)?;
        let head = to_u64(head, head, "head")?;
        crate::removal::position_at(&mut conn, &self.removal, bound(timestamp_micros), head)
    }

    fn list(
        &self,
        what: gesta::Listing,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<gesta::Listed>> {
        gesta::validation::check_listing(prefix, after, limit)?;
        let mut conn = self.pool.get()?;
        crate::listings::list(&mut conn, &self.s, what, prefix, after, limit)
    }

    fn event_by_id(&self, id: u128) -> Result<Option<RecordedEvent>> {
        let mut found = None;
        self.event_by_id_with(id, &mut |e| found = Some(e.to_owned()))?;
        Ok(found)
    }

    /// One query, the row's event lent to `f` with its strings and bytes
    /// borrowed from the row, as `read_each` lends them.
    fn event_by_id_with(&self, id: u128, f: &mut dyn FnMut(EventRef<'_>)) -> Result<bool> {
        let mut conn = self.pool.get()?;
        let id = id_bytes(id);
        let rows = conn.query(&self.by_id, &[&&id[..]])?;
        match rows.first() {
            Some(row) => {
                // One row: whether `f` broke off tells nothing more.
                let _ = lend_row(row, &mut |e| {
                    f(e);
                    ControlFlow::Break(())
                })?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    // --- Snapshots and tracking info (see `state`) ---

    fn save_snapshot(&self, key: &str, position: u64, state: &[u8]) -> Result<()> {
        let mut conn = self.pool.get()?;
        let snapshot = (key, position, state);
        state::save(
            &mut conn,
            &self.state,
            &self.head,
            snapshot,
            self.snapshots_kept,
        )
    }

    fn load_snapshot(&self, key: &str, at_or_before: u64) -> Result<Option<gesta::Snapshot>> {
        gesta::validation::check_snapshot_key(key)?;
        state::load(&mut *self.pool.get()?, &self.state, key, at_or_before)
    }

    fn list_snapshots(&self, key: &str) -> Result<Vec<u64>> {
        gesta::validation::check_snapshot_key(key)?;
        state::list(&mut *self.pool.get()?, &self.state, key)
    }

    fn delete_snapshot(&self, key: &str, position: u64) -> Result<bool> {
        gesta::validation::check_snapshot_key(key)?;
        state::delete(&mut *self.pool.get()?, &self.state, key, position)
    }

    fn tracking_info(&self, source: &str) -> Result<Option<u64>> {
        gesta::validation::check_tracking_source(source)?;
        state::tracking(&mut *self.pool.get()?, &self.state, source)
    }

    // --- Lifecycle: retroactive tags, redaction, the audit trail (see `lifecycle`) ---

    /// One transaction under the store's lock, as an append: serialized
    /// with appends, committed with its audit entry or not at all. It
    /// announces nothing: no `NOTIFY`, no wake-up (the head does not move).
    fn add_tags(&self, target: &Target, tags: &[String]) -> Result<TagsAdded> {
        let tags = gesta::lifecycle::check_add_tags(target, tags)?;
        self.locked(|conn| lifecycle::add_tags(conn, &self.lifecycle, target, tags))
    }

    /// One transaction under the store's lock, as `add_tags`; it announces
    /// nothing either.
    ///
    /// PostgreSQL does not overwrite a row: the update writes a new
    /// version of each erased event's row, and the old one — its data and
    /// metadata included, out of line in the TOAST table when large —
    /// stays in the table's files, invisible to every read, until `VACUUM`
    /// removes it (autovacuum does, in time), and its bytes can stay in
    /// the page's free space until it is reused; the WAL holds the
    /// original insert until its segments are recycled (archives, replicas
    /// and backups keep theirs). The store runs no `VACUUM`: it cannot run
    /// in the operation's transaction, needs the table's owner, and could
    /// do nothing about the WAL. To have the bytes leave the table's files
    /// at once, run `VACUUM (FULL) <schema>.events` (it rewrites the table
    /// and its TOAST table into new files, holding an exclusive lock
    /// meanwhile).
    fn redact(&self, target: &Target) -> Result<Redacted> {
        gesta::lifecycle::check_target(target)?;
        self.locked(|conn| lifecycle::redact(conn, &self.lifecycle, target))
    }

    fn audit_log(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        gesta::lifecycle::check_audit_page(limit)?;
        lifecycle::audit_log(&mut *self.pool.get()?, &self.lifecycle, after, limit)
    }

    // ---- Removal and retention (see `removal`) ----

    /// One transaction under the store's lock, as `redact` (and, as for a
    /// redaction, the removed rows' old versions stay in the table's files
    /// until `VACUUM`).
    fn remove(&self, target: &Target) -> Result<gesta::Removed> {
        gesta::lifecycle::check_target(target)?;
        self.locked(|conn| crate::removal::remove(conn, &self.lifecycle, &self.removal, target))
    }

    fn delete_stream(&self, stream: &str) -> Result<gesta::Removed> {
        gesta::validation::check_stream_name(stream)?;
        self.locked(|conn| {
            crate::removal::remove_stream(conn, &self.lifecycle, &self.removal, stream, None)
        })
    }

    fn truncate_stream(&self, stream: &str, before: u64) -> Result<gesta::Removed> {
        gesta::validation::check_stream_name(stream)?;
        self.locked(|conn| {
            crate::removal::remove_stream(
                conn,
                &self.lifecycle,
                &self.removal,
                stream,
                Some(before),
            )
        })
    }

    fn set_retention(&self, rule: &gesta::RetentionRule) -> Result<()> {
        gesta::removal::check_rule(rule)?;
        self.locked(|conn| crate::removal::set_rule(conn, &self.lifecycle, &self.removal, rule))
    }

    fn retention_rules(&self) -> Result<Vec<gesta::RetentionRule>> {
        crate::removal::rules(&mut *self.pool.get()?, &self.removal)
    }

    fn enforce_retention(&self) -> Result<gesta::Removed> {
        self.locked(|conn| crate::removal::enforce(conn, &self.lifecycle, &self.removal))
    }

    // ---- Subscriptions (see `live`) ----

    fn subscribe(&self, query: &Query, after: u64) -> Result<gesta::Subscription> {
        check_query(query)?;
        self.live.subscribe(query, after, self.head()?)
    }

    fn subscribe_durable(&self, name: &str, query: &Query) -> Result<gesta::DurableSubscription> {
        check_query(query)?;
        self.live.subscribe_durable(name, query, self.head()?)
    }

    fn durable_subscriptions(&self) -> Result<Vec<gesta::DurableSubscriptionState>> {
        self.live.durable().list()
    }

    fn delete_durable_subscription(&self, name: &str) -> Result<bool> {
        self.live.durable().delete(name)
    }
}

/// A read, fetched a page at a time; each page continues after the last
/// event of the previous one and, forwards, stops at the head read with the
/// first page, so the read never sees events committed after it began.
struct Reader<'a> {
    store: &'a PostgresStore,
    sql: String,
    params: Vec<Param>,
    direction: Direction,
    /// Exclusive position bounds of what is left to read.
    lo: i64,
    hi: i64,
    remaining: usize,
    first_page: bool,
    buffered: VecDeque<RecordedEvent>,
    done: bool,
}

impl Reader<'_> {
    /// The next page of rows, the bounds moved past it.
    fn next_page(&mut self) -> Result<Vec<Row>> {
        let page = self.remaining.min(PAGE);
        let limit = page as i64;
        let rows = {
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.lo, &self.hi, &limit];
            params.extend(self.params.iter().map(|p| &**p as &(dyn ToSql + Sync)));
            let mut conn = self.store.pool.get()?;
            conn.query(&self.sql, &params)?
        };
        if self.first_page
            && self.direction == Direction::Forwards
            && let Some(row) = rows.first()
        {
            let head: i64 = row.try_get(9).map_err(pg_error)?;
            self.hi = self.hi.min(head.saturating_add(1));
        }
        self.first_page = false;
        if let Some(row) = rows.last() {
            let position: i64 = row.try_get(0).map_err(pg_error)?;
            match self.direction {
                Direction::Forwards => self.lo = position,
                Direction::Backwards => self.hi = position,
            }
        }
        self.remaining -= rows.len();
        if rows.len() < page || self.remaining == 0 {
            self.done = true;
        }
        Ok(rows)
    }

    fn fetch(&mut self) -> Result<()> {
        for row in &self.next_page()? {
            let event = event_from_row(row)?;
            self.buffered.push_back(event);
        }
        Ok(())
    }
}

impl Iterator for Reader<'_> {
    type Item = Result<RecordedEvent>;

    fn next(&mut self) -> Option<Result<RecordedEvent>> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.fetch() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}
