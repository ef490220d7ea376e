//! Subscriptions on a [`PostgresStore`](crate::PostgresStore): the feed that
//! reads them from the tables, how subscribers learn of commits, and the
//! cursors of durable subscriptions (the `cursors` table, upserted in a
//! transaction of its own: appends commit durably, so the events an
//! acknowledgement covers are durable before it).
//!
//! A durable subscription's name is claimed per handle: two handles on one
//! schema (two processes, say) can each open a subscription under the same
//! name. The upsert therefore keeps the greater of a cursor's position and
//! the one acknowledged, so that it never moves backwards whichever handle
//! acknowledges.
//!
//! Every append sends `NOTIFY` on the store's channel (`gesta_` and the hex
//! of the schema's lock key) inside its transaction, so the notification
//! is delivered only if, and once, it commits. A listener thread, started
//! with the first subscription, holds a dedicated connection that
//! `LISTEN`s on that channel; on a notification — or every
//! [`poll_interval`](crate::PostgresOptions::poll_interval) without one,
//! or after reconnecting — it reads the last position, and a head that
//! moved wakes every subscriber. A lost notification (a dropped
//! connection, a server restart) therefore only delays delivery. The
//! handle's own appends also raise the head and notify the hub right after
//! they commit, by the types and tags of what they appended.
//!
//! Appends serialize under the store's advisory lock and each commits
//! before the next takes its positions, so every position up to the last
//! committed one is committed and visible: the head read by `max(position)`
//! is safe to read up to. A fetch reads the matching events after a
//! position, at most [`FETCH_EVENTS`](gesta::FETCH_EVENTS) of them plus the
//! rest of the append the last one belongs to, in one statement that also
//! gives each event the last position of its append from the `batches`
//! table (every append's first and last position), and groups them by it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use gesta::{
    CommitHub, CursorStore, Direction, DurableCursors, DurableSubscription, Error, NewEvent, Query,
    RecordedEvent, Result, Subscription, SubscriptionFeed, validation,
};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, NoTls};

use crate::pg_error;
use crate::pool::{Conn, Pool};
use crate::sql::{self, Param, Select};
use crate::store::{bound, event_from_row, to_u64};

/// Connections the feeds of one store share.
const FEED_CONNECTIONS: usize = 2;

/// The live side of one store handle.
pub(crate) struct Live {
    shared: Arc<Shared>,
    /// Whether the listener thread was started.
    listening: AtomicBool,
    /// `SELECT pg_notify(…)`, run in every append transaction.
    notify: String,
    durable: DurableCursors,
}

/// What the handle, its feeds and its listener share.
struct Shared {
    /// The schema, quoted.
    s: String,
    config: postgres::Config,
    channel: String,
    poll_interval: Duration,
    hub: CommitHub,
    /// Every position up to here is committed (as far as this handle
    /// knows).
    head: AtomicU64,
    pool: Pool,
    /// Set when the handle is dropped; the listener ends within an
    /// interval.
    stop: AtomicBool,
}

impl Shared {
    /// Raises the head to `position` (never lowers it); true if it moved.
    fn advance(&self, position: u64) -> bool {
        self.head.fetch_max(position, Ordering::AcqRel) < position
    }

    fn read_head(&self, client: &mut Client) -> Result<u64> {
        let head: i64 = client
            .query_one(&crate::sql::head(&self.s), &[])
            .and_then(|row| row.try_get(0))
            .map_err(pg_error)?;
        to_u64(head, head, "head")
    }

    fn listen(&self) -> Result<Client> {
        let mut client = self.config.connect(NoTls).map_err(pg_error)?;
        client
            .batch_execute(&format!("LISTEN {}", self.channel))
            .map_err(pg_error)?;
        Ok(client)
    }

    /// Follows commits until the handle is dropped: wait for a
    /// notification or the interval, then read the head.
    fn run_listener(&self) {
        let mut client: Option<Client> = None;
        while !self.stop.load(Ordering::Acquire) {
            let Some(c) = client.as_mut() else {
                match self.listen() {
                    Ok(c) => client = Some(c),
                    Err(e) => {
                        log::warn!("gesta-postgres: listening for commits: {e}");
                        std::thread::sleep(self.poll_interval);
                    }
                }
                // Connected (or not): look at the head either way, since
                // notifications may have been missed meanwhile.
                if let Some(c) = client.as_mut()
                    && let Ok(head) = self.read_head(c)
                    && self.advance(head)
                {
                    self.hub.notify_all();
                }
                continue;
            };
            let waited = {
                let mut notifications = c.notifications();
                let first = notifications.timeout_iter(self.poll_interval).next();
                // Several commits may have notified: one head read covers
                // them all.
                first.and_then(|_| notifications.iter().count().map(|_| ()))
            };
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            let head = waited.map_err(pg_error).and_then(|()| self.read_head(c));
            match head {
                Ok(head) => {
                    if self.advance(head) {
                        self.hub.notify_all();
                    }
                }
                Err(e) => {
                    log::warn!("gesta-postgres: following commits, reconnecting: {e}");
                    client = None;
                }
            }
        }
    }
}

impl Live {
    /// The live side of the store in schema `s` (quoted) whose advisory
    /// lock key is `key`.
    pub(crate) fn new(
        config: postgres::Config,
        s: &str,
        key: i64,
        poll_interval: Duration,
    ) -> Live {
        let channel = format!("gesta_{:016x}", u64::from_ne_bytes(key.to_ne_bytes()));
        let notify = format!("SELECT pg_notify('{channel}', '')");
        let shared = Arc::new(Shared {
            s: s.to_owned(),
            pool: Pool::new(config.clone(), FEED_CONNECTIONS),
            config,
            channel,
            poll_interval,
            hub: CommitHub::new(),
            head: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        Live {
            notify,
            durable: DurableCursors::new(Arc::new(Cursors {
                shared: shared.clone(),
            })),
            shared,
            listening: AtomicBool::new(false),
        }
    }

    /// See [`EventStore::subscribe_durable`](gesta::EventStore::subscribe_durable);
    /// `head` is the store's committed head.
    pub(crate) fn subscribe_durable(
        &self,
        name: &str,
        query: &Query,
        head: u64,
    ) -> Result<DurableSubscription> {
        self.durable
            .subscribe(name, |acked| self.subscribe(query, acked, head))
    }

    /// The durable subscriptions' cursors.
    pub(crate) fn durable(&self) -> &DurableCursors {
        &self.durable
    }

    /// The statement that announces a commit, run inside the append
    /// transaction.
    pub(crate) fn notify_sql(&self) -> &str {
        &self.notify
    }

    /// Called right after this handle committed `events` at positions up
    /// to `last`.
    pub(crate) fn committed(&self, last: u64, events: &[NewEvent]) {
        self.shared.advance(last);
        self.shared.hub.notify(events);
    }

    /// See [`EventStore::subscribe`](gesta::EventStore::subscribe); `head`
    /// is the store's committed head.
    pub(crate) fn subscribe(&self, query: &Query, after: u64, head: u64) -> Result<Subscription> {
        validation::check_query(query)?;
        self.shared.advance(head);
        if after > head {
            return Err(Error::InvalidInput {
                reason: format!("cannot subscribe after position {after}: the head is {head}"),
            });
        }
        if !self.listening.swap(true, Ordering::AcqRel) {
            let shared = self.shared.clone();
            std::thread::Builder::new()
                .name("gesta-postgres-listen".into())
                .spawn(move || shared.run_listener())
                .map_err(pg_error)?;
        }
        let built = sql::build(&self.shared.s, query, Direction::Forwards, Select::Events);
        let feed = Feed {
            shared: self.shared.clone(),
            sql: format!(
                "SELECT q.*, (SELECT b.last FROM {}.batches b WHERE b.first <= q.position \
                 ORDER BY b.first DESC LIMIT 1) FROM ({}) q ORDER BY q.position",
                self.shared.s, built.sql
            ),
            params: built.params,
        };
        Ok(Subscription::from_feed(
            Arc::new(feed),
            query.clone(),
            after,
        ))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // The listener is not joined: it may be waiting for up to an
        // interval, and holds only what it shares with the feeds.
        self.shared.stop.store(true, Ordering::Release);
        self.shared.hub.close();
    }
}

/// One subscription's view of the tables.
struct Feed {
    shared: Arc<Shared>,
    /// The query as a forward read (`$1 < position < $2`, limit `$3`), each
    /// row with the last position of its append.
    sql: String,
    params: Vec<Param>,
}

impl Feed {
    /// Hands `take` the matching events with `after < position <= upto`,
    /// at most `limit`, each with the last position of its append, as
    /// their rows arrive, until it breaks: one round trip.
    fn events(
        &self,
        conn: &mut Conn,
        after: u64,
        upto: u64,
        limit: usize,
        take: gesta::TakeRow<'_>,
    ) -> Result<()> {
        let (lo, hi) = (bound(after), bound(upto).saturating_add(1));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&lo, &hi, &limit];
        params.extend(self.params.iter().map(|p| &**p as &(dyn ToSql + Sync)));
        conn.query_each(&self.sql, &params, |row| {
            let event = event_from_row(&row)?;
            let last: Option<i64> = row.try_get(10).map_err(pg_error)?;
            let p = bound(event.position);
            match last {
                Some(last) if last >= p => {
                    let last = to_u64(p, last, "batch")?;
                    Ok(take(event, last).is_continue())
                }
                _ => Err(Error::Corruption {
                    file: std::path::PathBuf::from("postgres"),
                    offset: event.position,
                    reason: format!("position {} belongs to no batch", event.position),
                }),
            }
        })
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
        let mut conn = self.shared.pool.get()?;
        gesta::fetch_by_append(after, head, max_events, out, |after, upto, limit, take| {
            self.events(&mut conn, after, upto, limit, take)
        })
    }
}

/// Durable subscriptions' positions in the `cursors` table.
struct Cursors {
    shared: Arc<Shared>,
}

impl CursorStore for Cursors {
    fn head(&self) -> Result<u64> {
        if self.shared.hub.is_closed() {
            return Err(Error::Closed);
        }
        let mut conn = self.shared.pool.get()?;
        let head: i64 = conn
            .query_one(&crate::sql::head(&self.shared.s), &[])?
            .try_get(0)
            .map_err(pg_error)?;
        to_u64(head, head, "head")
    }

    fn load(&self, name: &str) -> Result<Option<u64>> {
        let mut conn = self.shared.pool.get()?;
        let sql = format!(
            "SELECT position FROM {}.cursors WHERE name = $1",
            self.shared.s
        );
        match conn.query(&sql, &[&name.as_bytes()])?.first() {
            None => Ok(None),
            Some(row) => {
                let p: i64 = row.try_get(0).map_err(pg_error)?;
                to_u64(p, p, "cursor position").map(Some)
            }
        }
    }

    fn save(&self, name: &str, position: u64) -> Result<()> {
        let mut conn = self.shared.pool.get()?;
        let sql = format!(
            "INSERT INTO {}.cursors AS c (name, position) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET position = GREATEST(c.position, EXCLUDED.position)",
            self.shared.s
        );
        conn.query(&sql, &[&name.as_bytes(), &bound(position)])?;
        Ok(())
    }

    fn list(&self) -> Result<Vec<(String, u64)>> {
        let mut conn = self.shared.pool.get()?;
        let sql = format!(
            "SELECT name, position FROM {}.cursors ORDER BY name",
            self.shared.s
        );
        conn.query(&sql, &[])?
            .iter()
            .map(|row| {
                let name: Vec<u8> = row.try_get(0).map_err(pg_error)?;
                let p: i64 = row.try_get(1).map_err(pg_error)?;
                let name = String::from_utf8(name).map_err(|_| Error::Corruption {
                    file: self.place(),
                    offset: 0,
                    reason: "a cursor name is not UTF-8".to_owned(),
                })?;
                Ok((name, to_u64(p, p, "cursor position")?))
            })
            .collect()
    }

    fn remove(&self, name: &str) -> Result<bool> {
        let mut conn = self.shared.pool.get()?;
        let sql = format!(
            "DELETE FROM {}.cursors WHERE name = $1 RETURNING name",
            self.shared.s
        );
        Ok(!conn.query(&sql, &[&name.as_bytes()])?.is_empty())
    }

    fn place(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("postgres:{}.cursors", self.shared.s))
    }
}
