//! A small blocking pool of connections, each with its prepared statements.
//!
//! Every store operation holds at most one connection at a time, and only
//! for its own duration (reads take one per page), so waiting for a free
//! connection cannot deadlock.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard};

use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement};

use gesta::Result;

use crate::pg_error;

/// Prepared statements kept per connection before the cache starts over
/// (queries of many shapes each prepare their own statement).
const MAX_CACHED_STATEMENTS: usize = 256;

/// One connection and the statements prepared on it.
pub(crate) struct Conn {
    pub(crate) client: Client,
    statements: HashMap<String, Statement>,
}

impl Conn {
    /// The prepared statement of `sql`, prepared now if it is not yet.
    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).map_err(pg_error)?;
        if self.statements.len() >= MAX_CACHED_STATEMENTS {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Runs `sql` (prepared once per connection) and collects its rows.
    pub(crate) fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let statement = self.statement(sql)?;
        self.client.query(&statement, params).map_err(pg_error)
    }

    /// Runs `sql` (prepared once per connection), handing its rows to `f`
    /// as they arrive until `f` answers `false`; the rest are discarded
    /// unread rather than collected.
    pub(crate) fn query_each(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        mut f: impl FnMut(Row) -> Result<bool>,
    ) -> Result<()> {
        use postgres::fallible_iterator::FallibleIterator;
        let statement = self.statement(sql)?;
        let mut rows = self
            .client
            .query_raw(&statement, params.iter().copied())
            .map_err(pg_error)?;
        while let Some(row) = rows.next().map_err(pg_error)? {
            if !f(row)? {
                break;
            }
        }
        Ok(())
    }

    /// Runs `sql`, which returns exactly one row.
    pub(crate) fn query_one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        let statement = self.statement(sql)?;
        self.client.query_one(&statement, params).map_err(pg_error)
    }

    /// Runs statements without parameters (simple query protocol: several
    /// statements, one round trip).
    pub(crate) fn execute_batch(&mut self, sql: &str) -> Result<()> {
        self.client.batch_execute(sql).map_err(pg_error)
    }

    /// Commits the open transaction. If the server answered with an error,
    /// the transaction was rolled back: a definite failure. If no answer
    /// came (the connection broke), whether it committed is unknown:
    /// [`gesta::Error::OutcomeUnknown`].
    // Appends commit with `commit_after` (they announce the commit); other
    // transactions (`add_tags`) commit plainly.
    pub(crate) fn commit(&mut self) -> Result<()> {
        self.commit_after("")
    }

    /// Runs `before` (statements without parameters, or nothing) and
    /// commits, in one round trip; errors as for [`commit`](Conn::commit).
    pub(crate) fn commit_after(&mut self, before: &str) -> Result<()> {
        let sql = if before.is_empty() {
            "COMMIT".to_owned()
        } else {
            format!("{before}; COMMIT")
        };
        self.client.batch_execute(&sql).map_err(|e| {
            if e.as_db_error().is_some() {
                pg_error(e)
            } else {
                gesta::Error::OutcomeUnknown {
                    path: std::path::PathBuf::from("postgres"),
                    source: std::io::Error::other(e),
                }
            }
        })
    }
}

struct Slots {
    idle: Vec<Conn>,
    /// Connections open, idle or in use.
    open: usize,
}

/// At most `size` connections to one server.
pub(crate) struct Pool {
    config: postgres::Config,
    size: usize,
    slots: Mutex<Slots>,
    freed: Condvar,
}

impl Pool {
    pub(crate) fn new(config: postgres::Config, size: usize) -> Pool {
        Pool {
            config,
            size,
            slots: Mutex::new(Slots {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        // A panic while the lock was held cannot leave the slots
        // inconsistent (every change is a single push, pop or count).
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection, a new one if fewer than `size` are open, or the
    /// next one returned.
    pub(crate) fn get(&self) -> Result<Pooled<'_>> {
        let mut slots = self.slots();
        loop {
            if let Some(conn) = slots.idle.pop() {
                return Ok(Pooled {
                    pool: self,
                    conn: Some(conn),
                    broken: false,
                });
            }
            if slots.open < self.size {
                slots.open += 1;
                drop(slots);
                return match self.connect() {
                    Ok(conn) => Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                        broken: false,
                    }),
                    Err(e) => {
                        self.slots().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            slots = self.freed.wait(slots).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn connect(&self) -> Result<Conn> {
        let mut client = self.config.connect(NoTls).map_err(pg_error)?;
        client
            .batch_execute("SET synchronous_commit = on")
            .map_err(pg_error)?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }

    fn put(&self, conn: Option<Conn>) {
        let mut slots = self.slots();
        match conn {
            Some(conn) if !conn.client.is_closed() => slots.idle.push(conn),
            _ => slots.open -= 1,
        }
        drop(slots);
        self.freed.notify_one();
    }
}

/// A connection taken from the pool, returned when dropped (closed instead
/// if it was marked broken).
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
    broken: bool,
}

impl Pooled<'_> {
    /// Closes the connection instead of returning it: its state (an open
    /// transaction, a lost connection) is unknown.
    pub(crate) fn discard(&mut self) {
        self.broken = true;
    }
}

impl Deref for Pooled<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        self.conn
            .as_ref()
            .expect("a pooled connection is present until dropped")
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("a pooled connection is present until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let conn = self.conn.take();
        self.pool.put(if self.broken { None } else { conn });
    }
}
