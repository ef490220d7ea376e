//! Subscriptions on a [`SqliteStore`](crate::SqliteStore): the feed that
//! reads them from the tables, how subscribers learn of commits, and the
//! cursors of durable subscriptions (the `cursors` table, written by a
//! connection of their own, in a transaction that commits after the events
//! it acknowledges: the WAL keeps that order through a crash).
//!
//! A durable subscription's name is claimed per handle: two handles on one
//! file (two processes, say) can each open a subscription under the same
//! name. A cursor's row therefore keeps the greater of its position and
//! the one acknowledged, so that it never moves backwards whichever handle
//! acknowledges.
//!
//! A store keeps the head its subscribers may read up to in an atomic and
//! owns a [`CommitHub`]. Its own appends raise the head and notify the hub
//! right after they commit, so their subscribers wake at once, by the
//! types and tags of what was appended. Commits made through other
//! connections to the file (other processes, other handles) are found by a
//! poller thread, started with the first subscription, that reads `PRAGMA
//! data_version` every [`poll_interval`](crate::SqliteOptions::poll_interval)
//! and, when it changed, the last position; a head that moved wakes every
//! subscriber.
//!
//! A fetch reads the matching events after a position from a reader
//! connection (a committed WAL snapshot, so nothing uncommitted) with the
//! read statement of `sql`, at most [`FETCH_EVENTS`](gesta::FETCH_EVENTS)
//! of them plus the rest of the append the last one belongs to, each with
//! the last position of its append from the `batches` table (which holds
//! every append's first and last position), and groups them by it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, OptionalExtension};

use gesta::{
    CommitHub, CursorStore, Direction, DurableCursors, DurableSubscription, Error, NewEvent, Query,
    RecordedEvent, Result, Subscription, SubscriptionFeed, validation,
};

use crate::options::SqliteOptions;
use crate::readers::Readers;
use crate::schema;
use crate::sql::{self, Statement};
use crate::store::{bind, decode_row, last_position, signed, sqlite_error, unsigned};

/// The live side of one store handle.
pub(crate) struct Live {
    shared: Arc<Shared>,
    poller: Mutex<Option<JoinHandle<()>>>,
    durable: DurableCursors,
}

/// What the handle, its feeds and its poller share.
struct Shared {
    path: PathBuf,
    options: SqliteOptions,
    hub: CommitHub,
    /// Every position up to here is committed (as far as this handle
    /// knows).
    head: AtomicU64,
    /// The handle's reader connections, shared with its reads.
    readers: Arc<Readers>,
    /// Set when the handle closes; the poller waits on `stop_signal`.
    stop: Mutex<bool>,
    stop_signal: Condvar,
}

impl Shared {
    fn err(&self, e: rusqlite::Error) -> Error {
        sqlite_error(&self.path, e)
    }

    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.readers.with(f)
    }

    /// Raises the head to `position` (never lowers it).
    fn advance(&self, position: u64) -> bool {
        self.head.fetch_max(position, Ordering::AcqRel) < position
    }

    /// Looks for commits made through other connections until the handle
    /// closes.
    fn poll(&self) {
        let conn = match schema::open_reader(&self.path, &self.options) {
            Ok(conn) => conn,
            Err(e) => {
                log::warn!(
                    "{}: subscriptions cannot see other connections' commits: {e}",
                    self.path.display()
                );
                return;
            }
        };
        let mut version: Option<i64> = None;
        loop {
            {
                let mut stop = self.stop.lock();
                if *stop {
                    return;
                }
                self.stop_signal
                    .wait_for(&mut stop, self.options.poll_interval);
                if *stop {
                    return;
                }
            }
            let now: Option<i64> = conn.query_row("PRAGMA data_version", [], |r| r.get(0)).ok();
            if now.is_some() && now == version {
                continue;
            }
            version = now;
            match last_position(&conn) {
                Ok(head) => {
                    if self.advance(head) {
                        self.hub.notify_all();
                    }
                }
                Err(e) => log::warn!("{}: polling for commits: {e}", self.path.display()),
            }
        }
    }
}

impl Live {
    /// The live side of a handle on `path` whose committed head is `head`.
    pub(crate) fn new(
        path: &Path,
        options: SqliteOptions,
        head: u64,
        readers: Arc<Readers>,
    ) -> Live {
        let shared = Arc::new(Shared {
            path: path.to_owned(),
            options,
            hub: CommitHub::new(),
            head: AtomicU64::new(head),
            readers,
            stop: Mutex::new(false),
            stop_signal: Condvar::new(),
        });
        Live {
            shared: shared.clone(),
            poller: Mutex::new(None),
            durable: DurableCursors::new(Arc::new(Cursors {
                shared,
                writer: Mutex::new(None),
            })),
        }
    }

    /// See [`EventStore::subscribe_durable`](gesta::EventStore::subscribe_durable).
    pub(crate) fn subscribe_durable(
        &self,
        name: &str,
        query: &Query,
    ) -> Result<DurableSubscription> {
        self.durable
            .subscribe(name, |acked| self.subscribe(query, acked))
    }

    /// The durable subscriptions' cursors.
    pub(crate) fn durable(&self) -> &DurableCursors {
        &self.durable
    }

    /// Called right after this handle committed `events` (one append's or
    /// a group's) at positions up to `last`.
    pub(crate) fn committed<'e>(&self, last: u64, events: impl IntoIterator<Item = &'e NewEvent>) {
        self.shared.advance(last);
        self.shared.hub.notify(events);
    }

    /// See [`EventStore::subscribe`](gesta::EventStore::subscribe).
    pub(crate) fn subscribe(&self, query: &Query, after: u64) -> Result<Subscription> {
        validation::check_query(query)?;
        let shared = &self.shared;
        let head = shared.with_reader(|conn| last_position(conn).map_err(|e| shared.err(e)))?;
        shared.advance(head);
        if after > head {
            return Err(Error::InvalidInput {
                reason: format!("cannot subscribe after position {after}: the head is {head}"),
            });
        }
        self.start_poller()?;
        let stmt = sql::read(query, Direction::Forwards);
        let feed = Feed {
            shared: shared.clone(),
            sql: format!(
                "SELECT q.*, (SELECT b.last FROM batches b WHERE b.first <= q.position \
                 ORDER BY b.first DESC LIMIT 1) FROM ({}) q ORDER BY q.position",
                stmt.sql
            ),
            stmt,
        };
        Ok(Subscription::from_feed(
            Arc::new(feed),
            query.clone(),
            after,
        ))
    }

    fn start_poller(&self) -> Result<()> {
        let mut poller = self.poller.lock();
        if poller.is_some() {
            return Ok(());
        }
        let shared = self.shared.clone();
        let handle = std::thread::Builder::new()
            .name("gesta-sqlite-poll".into())
            .spawn(move || shared.poll())
            .map_err(|source| Error::Io {
                path: self.shared.path.clone(),
                source,
            })?;
        *poller = Some(handle);
        Ok(())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        *self.shared.stop.lock() = true;
        self.shared.stop_signal.notify_all();
        if let Some(handle) = self.poller.lock().take() {
            let _ = handle.join();
        }
        self.shared.hub.close();
    }
}

/// One subscription's view of the tables.
struct Feed {
    shared: Arc<Shared>,
    /// The subscription's query as a forward read (its parameters).
    stmt: Statement,
    /// That read, each row with the last position of its append.
    sql: String,
}

impl Feed {
    /// Hands `take` the matching events in `lo..=hi`, at most `limit`,
    /// each with the last position of its append, row by row until it
    /// breaks (one statement: the append is a probe of `batches` per row
    /// inside SQLite).
    fn events(
        &self,
        conn: &Connection,
        lo: u64,
        hi: u64,
        limit: usize,
        take: gesta::TakeRow<'_>,
    ) -> Result<()> {
        let shared = &self.shared;
        let params = bind(&[signed(lo), signed(hi), signed(limit as u64)], &self.stmt);
        let mut stmt = conn.prepare_cached(&self.sql).map_err(|e| shared.err(e))?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params))
            .map_err(|e| shared.err(e))?;
        while let Some(row) = rows.next().map_err(|e| shared.err(e))? {
            let event = decode_row(&shared.path, row)?;
            let last: Option<i64> = row.get(9).map_err(|e| shared.err(e))?;
            match last.map(unsigned) {
                Some(last) if last >= event.position => {
                    if take(event, last).is_break() {
                        break;
                    }
                }
                _ => {
                    return Err(Error::Corruption {
                        file: shared.path.clone(),
                        offset: 0,
                        reason: format!(
                            "position {} belongs to no append in the batches table",
                            event.position
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

impl SubscriptionFeed for Feed {
    fn hub(&self) -> &CommitHub {
        &self.shared.hub
    }

    fn head(&self) -> u64 {
        self.shared.head.load(Ordering::Acquire)
    }

    fn fetch(
        &self,
        _query: &Query,
        after: u64,
        head: u64,
        max_events: usize,
        out: &mut VecDeque<Vec<RecordedEvent>>,
    ) -> Result<u64> {
        self.shared.with_reader(|conn| {
            gesta::fetch_by_append(after, head, max_events, out, |after, upto, limit, take| {
                self.events(conn, after + 1, upto, limit, take)
            })
        })
    }
}

/// Durable subscriptions' positions in the `cursors` table.
struct Cursors {
    shared: Arc<Shared>,
    /// Opened with the first acknowledgement.
    writer: Mutex<Option<Connection>>,
}

impl Cursors {
    fn write<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut writer = self.writer.lock();
        if writer.is_none() {
            let conn = schema::connect(&self.shared.path, &self.shared.options)
                .map_err(|e| self.shared.err(e))?;
            *writer = Some(conn);
        }
        match writer.as_ref() {
            Some(conn) => f(conn).map_err(|e| self.shared.err(e)),
            None => Err(Error::Closed),
        }
    }
}

impl CursorStore for Cursors {
    fn head(&self) -> Result<u64> {
        if self.shared.hub.is_closed() {
            return Err(Error::Closed);
        }
        let shared = &self.shared;
        shared.with_reader(|conn| last_position(conn).map_err(|e| shared.err(e)))
    }

    fn load(&self, name: &str) -> Result<Option<u64>> {
        let shared = &self.shared;
        shared.with_reader(|conn| {
            conn.prepare_cached("SELECT position FROM cursors WHERE name = ?1")
                .and_then(|mut stmt| stmt.query_row([name], |r| r.get::<_, i64>(0)).optional())
                .map(|p| p.map(unsigned))
                .map_err(|e| shared.err(e))
        })
    }

    fn save(&self, name: &str, position: u64) -> Result<()> {
        self.write(|conn| {
            conn.prepare_cached(
                "INSERT INTO cursors (name, position) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO UPDATE SET position = max(position, excluded.position)",
            )?
            .execute(rusqlite::params![name, signed(position)])
            .map(|_| ())
        })
    }

    fn list(&self) -> Result<Vec<(String, u64)>> {
        let shared = &self.shared;
        shared.with_reader(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT name, position FROM cursors ORDER BY name")
                .map_err(|e| shared.err(e))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, unsigned(r.get(1)?))))
                .map_err(|e| shared.err(e))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|e| shared.err(e))
        })
    }

    fn remove(&self, name: &str) -> Result<bool> {
        self.write(|conn| {
            conn.prepare_cached("DELETE FROM cursors WHERE name = ?1")?
                .execute([name])
                .map(|n| n > 0)
        })
    }

    fn place(&self) -> PathBuf {
        self.shared.path.clone()
    }
}
