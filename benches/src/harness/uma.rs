//! UmaDB's embedded storage engine (`umadb-core`) behind `gesta::EventStore`,
//! for the comparison only (feature `umadb`).
//!
//! Appends go through UmaDB's own blocking writer thread
//! (`writer_thread_blocking`), which drains whatever requests are waiting
//! into one transaction and one commit — UmaDB's group commit, as its
//! server uses it. Reads go straight to the MVCC snapshot.
//!
//! What UmaDB does not have, the adapter maps or refuses: a stream name is
//! kept in the event's metadata (not indexed); metadata bytes are kept as
//! (lossy) UTF-8 text; event ids, expected stream revisions and
//! `stream_revision` are refused with `InvalidInput` (the workloads use
//! none of them). Commit timestamps are not recorded (0).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use gesta::{
    AppendOptions, Appended, Direction, Error, EventIter, EventStore, NewEvent, Query, ReadOptions,
    RecordedEvent, Result,
};
use tokio::sync::{mpsc, oneshot, watch};
use umadb_core::db::UmaDb;
use umadb_core::mvcc::{Mvcc, StorageOptions};
use umadb_core::pager::ReadMethod;
use umadb_core::writer_thread_blocking::writer_thread_blocking;
use umadb_core::writer_thread_request::WriterThreadRequest;
use umadb_dcb::{
    DcbAppendCondition, DcbError, DcbEvent, DcbEventStoreSync, DcbQuery, DcbQueryItem,
    DcbSequencedEvent,
};

/// Metadata key holding the event's stream.
const STREAM_KEY: &str = "gesta.stream";
/// Metadata key holding the event's metadata bytes.
const METADATA_KEY: &str = "gesta.metadata";
/// Requests the writer thread may have waiting.
const QUEUE: usize = 4096;
/// Most events the writer thread puts in one transaction.
const MAX_BATCH_EVENTS: usize = 100_000;

/// The MiB of UmaDB's page cache in the harness: what Gesta's anonymous
/// memory may take with ten million events open (M1, 256 MiB).
pub const UMA_PAGE_CACHE_MB: usize = 256;

/// An UmaDB database file in a directory, with its writer thread.
pub struct UmaStore {
    db: UmaDb,
    dir: PathBuf,
    tx: Option<mpsc::Sender<WriterThreadRequest>>,
    writer: Option<JoinHandle<()>>,
    _head: watch::Receiver<Option<u64>>,
}

impl UmaStore {
    /// Opens (creating if needed) the database `uma.db` in `dir` and starts
    /// its writer thread.
    pub fn open(dir: &Path) -> Result<UmaStore> {
        // Its reads through a mapped file and a page cache of decoded
        // pages, as a user who reads would set it: the defaults read every
        // page from the file and decode it again on each read, which no
        // comparison of reads should hold against it.
        let options = StorageOptions::default()
            .db_path(dir)
            .read_method(ReadMethod::Mmap)
            .page_cache_max_mb(UMA_PAGE_CACHE_MB);
        let mvcc = Mvcc::new(false, options).map_err(|e| io_error(dir, e))?;
        let mvcc = Arc::new(mvcc);
        let (tx, rx) = mpsc::channel(QUEUE);
        let (head_tx, head_rx) = watch::channel(None);
        let for_writer = Arc::clone(&mvcc);
        let writer = std::thread::Builder::new()
            .name("umadb-writer".into())
            .spawn(move || writer_thread_blocking(for_writer, rx, head_tx, MAX_BATCH_EVENTS))
            .map_err(|e| Error::Io {
                path: dir.to_owned(),
                source: e,
            })?;
        Ok(UmaStore {
            db: UmaDb::from_arc(mvcc),
            dir: dir.to_owned(),
            tx: Some(tx),
            writer: Some(writer),
            _head: head_rx,
        })
    }

    fn error(&self, e: DcbError) -> Error {
        io_error(&self.dir, e)
    }
}

impl Drop for UmaStore {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.blocking_send(WriterThreadRequest::Shutdown);
        }
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn io_error(dir: &Path, e: DcbError) -> Error {
    Error::Io {
        path: dir.to_owned(),
        source: std::io::Error::other(e.to_string()),
    }
}

fn unsupported(what: &str) -> Error {
    Error::InvalidInput {
        reason: format!("the UmaDB adapter does not support {what}"),
    }
}

fn to_query(query: &Query) -> DcbQuery {
    DcbQuery {
        items: query
            .items
            .iter()
            .map(|i| DcbQueryItem {
                types: i.types.clone(),
                tags: i.tags.clone(),
            })
            .collect(),
    }
}

fn to_event(e: NewEvent) -> Result<DcbEvent> {
    if e.id.is_some() {
        return Err(unsupported("event ids"));
    }
    let mut metadata = Vec::new();
    if let Some(stream) = e.stream {
        metadata.push((STREAM_KEY.to_owned(), stream));
    }
    if !e.metadata.is_empty() {
        metadata.push((
            METADATA_KEY.to_owned(),
            String::from_utf8_lossy(&e.metadata).into_owned(),
        ));
    }
    Ok(DcbEvent {
        event_type: e.event_type,
        tags: e.tags,
        data: e.data.to_vec(),
        uuid: None,
        metadata,
    })
}

fn to_recorded(e: DcbSequencedEvent) -> RecordedEvent {
    let mut stream = None;
    let mut metadata = Vec::new();
    for (k, v) in e.event.metadata {
        match k.as_str() {
            STREAM_KEY => stream = Some(v),
            METADATA_KEY => metadata = v.into_bytes(),
            _ => {}
        }
    }
    RecordedEvent {
        position: e.position,
        event_type: e.event.event_type,
        tags: e.event.tags,
        data: e.event.data.into(),
        metadata: metadata.into(),
        id: None,
        stream,
        revision: None,
        timestamp_micros: 0,
    }
}

impl EventStore for UmaStore {
    fn append_with(&self, events: Vec<NewEvent>, options: AppendOptions) -> Result<Appended> {
        gesta::validation::check_batch(&events)?;
        if !options.expected.is_empty() {
            return Err(unsupported("expected stream revisions"));
        }
        let n = events.len() as u64;
        let events = events
            .into_iter()
            .map(to_event)
            .collect::<Result<Vec<_>>>()?;
        let condition = options.condition.map(|c| DcbAppendCondition {
            fail_if_events_match: to_query(&c.fail_if_events_match),
            after: c.after,
        });
        let (response_tx, response_rx) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or(Error::Closed)?;
        tx.blocking_send(WriterThreadRequest::Append {
            events,
            condition,
            tracking_info: None,
            response_tx,
            cancel: None,
        })
        .map_err(|_| Error::Closed)?;
        match response_rx.blocking_recv().map_err(|_| Error::Closed)? {
            Ok(last) => Ok(Appended {
                first: last + 1 - n,
                last,
            }),
            // UmaDB does not say which event failed the condition, and its
            // clients do not look it up: neither does the harness (a read
            // per conflict UmaDB would not do), so the position is 0,
            // unknown.
            Err(DcbError::IntegrityError(_)) => Err(Error::ConditionFailed { position: 0 }),
            Err(e) => Err(self.error(e)),
        }
    }

    fn read<'a>(&'a self, query: &Query, options: ReadOptions) -> Result<EventIter<'a>> {
        gesta::validation::check_query(query)?;
        let limit = match options.limit {
            Some(0) => return Ok(Box::new(std::iter::empty())),
            Some(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            None => None,
        };
        let backwards = options.direction == Direction::Backwards;
        // Gesta's start is exclusive, UmaDB's inclusive.
        let start = match (options.start, backwards) {
            (None, _) => None,
            (Some(s), false) => Some(s.saturating_add(1)),
            (Some(0 | 1), true) => return Ok(Box::new(std::iter::empty())),
            (Some(s), true) => Some(s - 1),
        };
        let response = self
            .db
            .read(Some(to_query(query)), start, backwards, limit)
            .map_err(|e| self.error(e))?;
        let dir = self.dir.clone();
        Ok(Box::new(response.map(move |r| {
            r.map(to_recorded).map_err(|e| io_error(&dir, e))
        })))
    }

    fn head(&self) -> Result<u64> {
        Ok(self.db.head().map_err(|e| self.error(e))?.unwrap_or(0))
    }

    fn stream_revision(&self, _stream: &str) -> Result<Option<u64>> {
        Err(unsupported("stream revisions"))
    }
}
