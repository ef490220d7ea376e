//! [`Store`]: opening a directory, appending through the committer, reading,
//! and closing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

mod backup;
mod compact;
mod cursors;
mod erase;
mod evict;
mod lifecycle;
mod listings;

pub use backup::{BACKUP_INCOMPLETE, BackupReport};
pub use evict::SealedSegment;
pub(crate) use lifecycle::JOURNAL_FILE;
mod projections;
mod removal;
mod replica;
mod snapshots;
mod streams;
mod times;

use bytes::Bytes;
use crossbeam_channel::Sender;
use gesta_wal::io::LockGuard;
use gesta_wal::{GroupCommit, LogState, Payload, RecoveryReport, WalOptions, WalReader};
use parking_lot::Mutex;

use gesta_index::Key;

use crate::admission::Admission;
use crate::api::{EventIter, EventStore};
use crate::append::AppendOptions;
use crate::append::Appended;
use crate::codec::index_entries;
use crate::committer::{AppendRequest, BatchKeys, Committer, Request};
use crate::compactor::{FlushJob, Projector, spawn_flusher};
use crate::cursors::Cursors;
use crate::error::{Error, Result};
use crate::event::{NewEvent, check_stream_name};
use crate::indexes::{CompactionSettings, Indexes};
use crate::notify::Hub;
use crate::oneshot;
use crate::options::Options;
use crate::projections::{Registry, Source};
use crate::query::{Query, query_spec};
use crate::read::{Events, ReadOptions};
use crate::shared::Shared;
use crate::tracking::{check_tracking_source, tracking_at};

/// An open event store. Cheap to clone and share across threads; the store
/// closes when [`close`](Store::close) is called or the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    dir: PathBuf,
    /// The file system the store's files are read and written through.
    fs: Arc<dyn gesta_wal::io::FileSystem>,
    pub(crate) compressor: gesta_wal::Compressor,
    pub(crate) compression: Option<gesta_wal::Compression>,
    /// [`Options::reclaim_share`].
    pub(crate) reclaim_share: Option<f64>,
    pub(crate) tx: Sender<Request>,
    pub(crate) shared: Arc<Shared>,
    /// The log's durable position and poison flag.
    pub(crate) log: Arc<LogState>,
    pub(crate) reader: WalReader,
    pub(crate) indexes: Arc<Indexes>,
    pub(crate) hub: Arc<Hub>,
    /// The `tenant` label of its metrics, if it is a tenant's.
    tenant_label: Option<Arc<str>>,
    pub(crate) durable: crate::durable::DurableCursors,
    /// The lifecycle journal (retroactive tags, the audit trail).
    pub(crate) lifecycle: Mutex<lifecycle::Lifecycle>,
    /// Where lifecycle operations get their times.
    pub(crate) clock: Arc<dyn crate::clock::Clock>,
    /// Commit times of records `position_at` has verified.
    pub(crate) record_times: times::RecordTimes,
    /// The registered projections, and the thread that snapshots them.
    projections: Arc<Registry>,
    projector: Projector,
    /// The thread that enforces the retention rules, once there are any.
    pub(crate) retention: removal::Retention,
    pub(crate) retention_interval: std::time::Duration,
    /// [`Options::spin`], for a lone writer waiting for its answer.
    spin: std::time::Duration,
    committer: Mutex<Option<JoinHandle<()>>>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    lock: Mutex<Option<LockGuard>>,
    closed: AtomicBool,
    report: RecoveryReport,
    /// Set when the store is a read replica: the writer it follows.
    pub(crate) replica: Option<crate::replication::ReplicaOf>,
    /// [`Options::remote_segments`].
    pub(crate) remote_segments: Option<Arc<dyn gesta_wal::RemoteSegments>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("head", &self.shared.head.load(Ordering::Relaxed))
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(dir, Options::default())
    }

    /// Opens (creating if needed) the store in `dir`.
    ///
    /// Takes the directory's lock (a second open, from any process, gets
    /// [`Error::Locked`]), then recovers the log: every record is verified, a
    /// torn write at the tail is cut off, anything else damaged is
    /// [`Error::Corruption`].
    pub fn open_with(dir: impl AsRef<Path>, options: Options) -> Result<Store> {
        let dir = dir.as_ref().to_owned();
        if options.segment_size < 4096 {
            return Err(Error::invalid("segment_size must be at least 4096 bytes"));
        }
        if options.queue_capacity == 0 {
            return Err(Error::invalid("queue_capacity must be at least 1"));
        }
        if options
            .reclaim_share
            .is_some_and(|s| !(s > 0.0 && s <= 1.0))
        {
            return Err(Error::invalid(
                "reclaim_share must be above 0 and at most 1",
            ));
        }
        let fs = options.fs.clone();
        check_store_dir(fs.as_ref(), &dir)?;
        crate::io::create_dir_all_durably(fs.as_ref(), &dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        let lock_path = dir.join("LOCK");
        let lock = fs.lock(&lock_path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::WouldBlock {
                Error::Locked { path: dir.clone() }
            } else {
                Error::Io {
                    path: lock_path.clone(),
                    source,
                }
            }
        })?;

        let (indexes, covered) =
            Indexes::open(fs.clone(), &dir, CompactionSettings::from(&options))?;
        let indexes = Arc::new(indexes);
        let memtable = indexes.active();
        let mut entries = Vec::new();
        let mut decode_error = None;
        let opened = gesta_wal::open(
            fs,
            &dir.join("wal"),
            WalOptions {
                segment_size: options.segment_size,
                preallocate: options.preallocate,
                block_cache_bytes: options.block_cache_bytes,
                remote: options.remote_segments.clone(),
            },
            covered + 1,
            |record| {
                entries.clear();
                if let Err(e) = index_entries(record, covered + 1, &mut entries) {
                    decode_error.get_or_insert(e);
                    return Ok(());
                }
                memtable.insert_many(&entries);
                Ok(())
            },
        )?;
        if let Some(e) = decode_error {
            return Err(e);
        }
        if covered > opened.report.last_position {
            return Err(Error::Corruption {
                file: dir.join(gesta_compaction::manifest::FILE_NAME),
                offset: 0,
                reason: format!(
                    "index runs cover positions up to {covered}, but the log ends at {}",
                    opened.report.last_position
                ),
            });
        }

        let lifecycle = lifecycle::open(
            options.fs.clone(),
            &dir,
            &indexes,
            &opened.reader,
            opened.report.last_position,
        )?;
        let shared = Arc::new(Shared::default());
        shared
            .head
            .store(opened.report.last_position, Ordering::Release);
        let hub = Arc::new(Hub::default());
        let cursors = Cursors::new(options.fs.clone(), &dir);
        let (flush_tx, flush_rx) = crossbeam_channel::unbounded::<FlushJob>();
        let compress = options.compression.map(|settings| {
            (
                opened.compressor.clone(),
                settings,
                options.merge_bytes_per_sec,
            )
        });
        let flusher = spawn_flusher(indexes.clone(), compress, shared.clone(), flush_rx).map_err(
            |source| Error::Io {
                path: dir.clone(),
                source,
            },
        )?;
        let log = GroupCommit::new(
            opened.writer,
            options.durability,
            options.group_limits,
            options.max_commit_delay,
        )
        .with_spin(options.spin);
        let log_state = log.state();
        let committer = Committer {
            log,
            admission: Admission::new(indexes.clone(), opened.reader.clone()),
            reader: opened.reader.clone(),
            shared: shared.clone(),
            clock: options.clock.clone(),
            last_timestamp: opened.last_timestamp_micros,
            indexes: indexes.clone(),
            memtable,
            memtable_lo: covered + 1,
            flush_postings: options.memtable_postings,
            close_flush_postings: options.close_flush_postings,
            flusher: Some(flush_tx.clone()),
            segments_seen: opened.reader.segments().len(),
            compress_on_roll: options.compression.is_some(),
            hub: hub.clone(),
            meters: crate::telemetry::Meters::new(options.tenant_label.as_ref()),
        };
        let (tx, rx) = gesta_wal::queue(options.queue_capacity);
        let handle = std::thread::Builder::new()
            .name("gesta-committer".into())
            .spawn(move || committer.run(rx))
            .map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
        if options.compression.is_some() {
            // Sealed segments left uncompressed by an earlier run.
            let _ = flush_tx.send(FlushJob { reply: None });
        }
        drop(flush_tx);
        let store = Store {
            // The cursors acknowledge through the store (a sync of the log
            // first), which they hold weakly.
            inner: Arc::new_cyclic(|store| Inner {
                dir,
                fs: options.fs.clone(),
                compressor: opened.compressor,
                compression: options.compression,
                reclaim_share: options.reclaim_share,
                tx,
                shared,
                log: log_state,
                reader: opened.reader,
                indexes,
                hub,
                tenant_label: options.tenant_label.clone(),
                durable: crate::durable::DurableCursors::new(Arc::new(cursors::FileCursors {
                    cursors,
                    store: store.clone(),
                })),
                lifecycle: Mutex::new(lifecycle),
                clock: options.clock.clone(),
                record_times: times::RecordTimes::default(),
                projections: Arc::default(),
                projector: Projector::default(),
                retention: removal::Retention::default(),
                retention_interval: options.retention_interval,
                spin: options.spin,
                committer: Mutex::new(Some(handle)),
                flusher: Mutex::new(Some(flusher)),
                lock: Mutex::new(Some(lock)),
                closed: AtomicBool::new(false),
                report: opened.report,
                replica: options
                    .replica_of
                    .clone()
                    .map(crate::replication::ReplicaOf::new),
                remote_segments: options.remote_segments.clone(),
            }),
        };
        // A replica enforces no retention rule: removals are its writer's.
        if store.inner.replica.is_none() && !store.inner.lifecycle.lock().rules.is_empty() {
            store.start_retention()?;
        }
        Ok(store)
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// What recovery found when the store was opened (e.g. a torn tail it
    /// cut off).
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// Appends a batch atomically: all its events get consecutive positions
    /// and are committed together, or none is. Returns once the batch is
    /// durable per the store's [`Durability`](crate::Durability).
    pub fn append(&self, events: Vec<NewEvent>) -> Result<Appended> {
        self.append_with(events, AppendOptions::default())
    }

    /// Appends a batch atomically, subject to a DCB condition and expected
    /// stream revisions; see [`EventStore`] for the order of the checks.
    pub fn append_with(&self, events: Vec<NewEvent>, options: AppendOptions) -> Result<Appended> {
        let (request, answer) = self.prepare(events, options)?;
        let callers = &self.inner.shared.callers;
        // Only a lone writer spins for its answer (see `Options::spin`).
        let spin = match callers.fetch_add(1, Ordering::AcqRel) {
            0 => self.inner.spin,
            _ => std::time::Duration::ZERO,
        };
        let answer = match self.inner.tx.send(Request::Append(request)) {
            Ok(()) => answer.recv_spinning(spin).unwrap_or(Err(Error::Closed)),
            Err(_) => Err(Error::Closed),
        };
        callers.fetch_sub(1, Ordering::AcqRel);
        answer
    }

    /// [`append_with`](Store::append_with) for async code: the returned
    /// future resolves when the group commit answers, without blocking an
    /// executor thread while it waits. (Handing the batch to the committer
    /// blocks only if its queue is full, which is the store's backpressure.)
    /// Works with any executor.
    pub fn append_async(
        &self,
        events: Vec<NewEvent>,
        options: AppendOptions,
    ) -> impl std::future::Future<Output = Result<Appended>> + Send + 'static {
        let submitted = self.prepare(events, options).and_then(|(request, answer)| {
            let guard = CallerGuard::enter(self.inner.shared.clone());
            self.inner
                .tx
                .send(Request::Append(request))
                .map_err(|_| Error::Closed)?;
            Ok((answer, guard))
        });
        AppendFuture {
            submitted: Some(submitted),
        }
    }

    /// Validates and encodes a batch in the caller's thread, ready for the
    /// committer.
    fn prepare(
        &self,
        events: Vec<NewEvent>,
        options: AppendOptions,
    ) -> Result<(AppendRequest, oneshot::Receiver<Result<Appended>>)> {
        self.writable()?;
        let encoded = crate::validation::check_append_encoded(&events, &options)?;
        crate::validation::check_after(&options, self.head())?;
        let tracking = options
            .tracking
            .map(|(source, position)| Box::new((Key::tracking(&source), source, position)));
        let expected = options
            .expected
            .into_iter()
            .map(|(stream, revision)| (Key::stream(&stream), stream, revision))
            .collect();
        let key_count = events.iter().map(|e| e.tags.len() + 3).sum();
        let mut keys = BatchKeys::with_capacity(events.len(), key_count);
        for e in &events {
            keys.push(&e.event_type, &e.tags, e.stream.as_deref(), e.id);
        }
        let (reply, answer) = oneshot::oneshot();
        let request = AppendRequest {
            payload: Payload::new(Bytes::from(encoded)),
            events: keys,
            expected,
            condition: options
                .condition
                .map(|c| (query_spec(&c.fail_if_events_match), c.after.unwrap_or(0))),
            tracking,
            reply,
            queued: crate::telemetry::Queued::now(),
        };
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if self.inner.log.is_poisoned() {
            return Err(Error::Poisoned);
        }
        Ok((request, answer))
    }

    /// The `tenant` label of the store's metrics, if it was opened with one
    /// ([`Options::tenant_label`]).
    pub fn tenant_label(&self) -> Option<&Arc<str>> {
        self.inner.tenant_label.as_ref()
    }

    /// The positions of the subscriptions open on the store now (durable
    /// ones included), each the position up to which it has handed out
    /// every matching event: the head less one is its lag.
    pub fn subscription_positions(&self) -> Vec<u64> {
        self.inner.hub.subscription_positions()
    }

    /// The position of the last committed event (0 when empty).
    pub fn head(&self) -> u64 {
        self.inner.shared.head.load(Ordering::Acquire)
    }

    /// The bytes of the log's published records, headers included, as
    /// written (before any compression): it grows with every commit, and
    /// shrinks only when retention drops whole segments. A shipper uses
    /// it to ship after so many bytes rather than only so much time.
    pub fn log_bytes(&self) -> u64 {
        self.inner
            .reader
            .segments()
            .snapshot()
            .iter()
            .map(|segment| segment.bounds().end)
            .sum()
    }

    /// How many committed events the store holds: the head, less the
    /// events removed (whose positions stay taken).
    pub fn events(&self) -> u64 {
        let removed = self.inner.indexes.amendments().hidden().len();
        self.head().saturating_sub(removed)
    }

    /// Whether an earlier write or sync failure makes the store refuse
    /// appends until reopened.
    pub fn is_poisoned(&self) -> bool {
        self.inner.log.is_poisoned()
    }

    /// Reads the events matching `query`; see [`ReadOptions`]. The read
    /// sees the events committed when it starts and is lazy: a limit stops
    /// the work. Queries are answered from the indices; [`Query::all`] scans
    /// the log. A query that fails its checks is refused here, as by every
    /// [`EventStore`]; damage found while reading comes as an item.
    pub fn read(&self, query: &Query, options: ReadOptions) -> Result<Events> {
        query.validate()?;
        Ok(crate::read::read(
            &self.inner.reader,
            &self.inner.indexes,
            self.head(),
            query,
            options,
        ))
    }

    /// The events [`read`](Store::read) yields, lent to `f` without copying
    /// (see [`EventStore::read_each`]): each borrows the mapped segment that
    /// holds it, so a read allocates nothing per event.
    pub fn read_each(
        &self,
        query: &Query,
        options: ReadOptions,
        f: &mut dyn FnMut(crate::EventRef<'_>) -> std::ops::ControlFlow<()>,
    ) -> Result<()> {
        query.validate()?;
        crate::read::read_each(
            &self.inner.reader,
            &self.inner.indexes,
            self.head(),
            query,
            options,
            f,
        )
    }

    /// The tracking position stored for `source` by the last append that
    /// carried tracking info for it (see [`AppendOptions::tracking`]), or
    /// `None` if none did.
    pub fn tracking_info(&self, source: &str) -> Result<Option<u64>> {
        check_tracking_source(source)?;
        // The head first: the view may hold postings of a commit whose head
        // is not published yet, which no read returns.
        let head = self.head();
        let view = self.inner.indexes.view();
        tracking_at(
            &self.inner.reader,
            &view,
            &Key::tracking(source),
            source,
            head,
        )
    }

    /// The newest event matching `query`.
    pub fn read_last(&self, query: &Query) -> Result<Option<crate::RecordedEvent>> {
        self.read(query, ReadOptions::backwards().limit(1))?
            .next()
            .transpose()
    }

    /// The last revision of `stream` (None when it has no events).
    pub fn stream_revision(&self, stream: &str) -> Result<Option<u64>> {
        check_stream_name(stream)?;
        // Bounded by the head read first, as every read is: the committer
        // makes a commit's postings visible before its head, and a revision
        // counted from them would be one no read returns yet (a caller
        // folding the stream to that revision would miss its last event
        // and still pass the expected-revision check).
        let head = self.head();
        Ok(self
            .inner
            .indexes
            .view()
            .count_upto(&Key::stream(stream), head)
            .checked_sub(1))
    }

    /// Writes the in-memory index to an on-disk run now and waits for it
    /// (normally this happens in the background when the memtable grows).
    pub fn flush_index(&self) -> Result<()> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.inner
            .tx
            .send(Request::FlushIndex(reply))
            .map_err(|_| Error::Closed)?;
        answer.recv().unwrap_or(Err(Error::Closed))
    }

    /// What the projections read and write.
    fn projection_source(&self) -> Source {
        let (log, shared, tx) = (
            self.inner.log.clone(),
            self.inner.shared.clone(),
            self.inner.tx.clone(),
        );
        Source {
            reader: self.inner.reader.clone(),
            indexes: self.inner.indexes.clone(),
            shared: self.inner.shared.clone(),
            durable: Arc::new(move |position| sync_through(&log, &shared, &tx, position)),
        }
    }

    /// Whether [`close`](Store::close) was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// How many on-disk index runs there are and how many memtables wait to
    /// be flushed.
    pub fn index_shape(&self) -> IndexShape {
        let (runs, frozen) = self.inner.indexes.shape();
        IndexShape { runs, frozen }
    }

    /// Flushes and syncs whatever is outstanding, stops the committer and
    /// releases the directory lock. Appends after this fail with
    /// [`Error::Closed`]; closing twice is harmless. Dropping the last clone
    /// closes too, ignoring errors.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }
}

/// What [`Store::index_shape`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexShape {
    /// On-disk index runs.
    pub runs: usize,
    /// Memtables frozen and waiting to be flushed to a run.
    pub frozen: usize,
}

/// Makes the log durable up to `position`: at once when it is (in `Sync`
/// mode every acknowledged append is), else by asking the committer for a
/// sync.
fn sync_through(
    log: &LogState,
    shared: &Shared,
    tx: &Sender<Request>,
    position: u64,
) -> Result<()> {
    if position <= log.durable() {
        return Ok(());
    }
    if shared.closing.load(Ordering::Acquire) {
        return Err(Error::Closed);
    }
    let (reply, answer) = oneshot::oneshot();
    tx.send(Request::Sync(reply)).map_err(|_| Error::Closed)?;
    answer.recv().unwrap_or(Err(Error::Closed))
}

impl Inner {
    /// Makes the log durable up to `position`: at once when it is (in
    /// `Sync` mode every acknowledged append is), else by asking the
    /// committer for a sync.
    pub(crate) fn make_durable(&self, position: u64) -> Result<()> {
        sync_through(&self.log, &self.shared, &self.tx, position)
    }

    /// Sends the committer a request that answers with a result (a sync,
    /// a seal) and waits for the answer.
    pub(crate) fn ask_committer(
        &self,
        request: fn(oneshot::Sender<Result<()>>) -> Request,
    ) -> Result<()> {
        let (reply, answer) = oneshot::oneshot();
        self.tx.send(request(reply)).map_err(|_| Error::Closed)?;
        answer.recv().unwrap_or(Err(Error::Closed))
    }

    fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.shared.closing.store(true, Ordering::Release);
        self.projector.stop();
        self.retention.stop();
        let (reply, answer) = oneshot::oneshot();
        let result = match self.tx.send(Request::Close(reply)) {
            Ok(()) => answer.recv().unwrap_or(Ok(())),
            Err(_) => Ok(()),
        };
        if let Some(handle) = self.committer.lock().take() {
            let _ = handle.join();
        }
        if let Some(handle) = self.flusher.lock().take() {
            let _ = handle.join();
        }
        self.hub.close();
        self.lock.lock().take();
        result
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Counts an async caller as inside an append (for the commit delay) until
/// its future is done or dropped.
struct CallerGuard(Arc<Shared>);

impl CallerGuard {
    fn enter(shared: Arc<Shared>) -> CallerGuard {
        shared.callers.fetch_add(1, Ordering::AcqRel);
        CallerGuard(shared)
    }
}

impl Drop for CallerGuard {
    fn drop(&mut self) {
        self.0.callers.fetch_sub(1, Ordering::AcqRel);
    }
}

type Submitted = Result<(oneshot::Receiver<Result<Appended>>, CallerGuard)>;

/// The future of [`Store::append_async`].
struct AppendFuture {
    submitted: Option<Submitted>,
}

impl std::future::Future for AppendFuture {
    type Output = Result<Appended>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Appended>> {
        use std::task::Poll;
        let Some(submitted) = self.submitted.take() else {
            return Poll::Ready(Err(Error::Closed));
        };
        match submitted {
            Err(e) => Poll::Ready(Err(e)),
            Ok((answer, guard)) => match answer.poll(cx) {
                Poll::Ready(a) => Poll::Ready(a.unwrap_or(Err(Error::Closed))),
                Poll::Pending => {
                    self.submitted = Some(Ok((answer, guard)));
                    Poll::Pending
                }
            },
        }
    }
}

impl EventStore for Store {
    fn append_with(&self, events: Vec<NewEvent>, options: AppendOptions) -> Result<Appended> {
        Store::append_with(self, events, options)
    }

    fn read<'a>(&'a self, query: &Query, options: ReadOptions) -> Result<EventIter<'a>> {
        Ok(Box::new(Store::read(self, query, options)?))
    }

    fn read_each(
        &self,
        query: &Query,
        options: ReadOptions,
        f: &mut dyn FnMut(crate::EventRef<'_>) -> std::ops::ControlFlow<()>,
    ) -> Result<()> {
        Store::read_each(self, query, options, f)
    }

    fn read_last(&self, query: &Query) -> Result<Option<crate::RecordedEvent>> {
        Store::read_last(self, query)
    }

    fn head(&self) -> Result<u64> {
        Ok(Store::head(self))
    }

    fn stream_revision(&self, stream: &str) -> Result<Option<u64>> {
        Store::stream_revision(self, stream)
    }

    fn read_stream<'a>(&'a self, stream: &str, options: ReadOptions) -> Result<EventIter<'a>> {
        Ok(Box::new(Store::read_stream(self, stream, options)?))
    }

    fn read_stream_last(&self, stream: &str) -> Result<Option<crate::RecordedEvent>> {
        Store::read_stream_last(self, stream)
    }

    fn read_stream_each(
        &self,
        stream: &str,
        options: ReadOptions,
        f: &mut dyn FnMut(crate::EventRef<'_>) -> std::ops::ControlFlow<()>,
    ) -> Result<()> {
        Store::read_stream_each(self, stream, options, f)
    }

    fn event_by_id(&self, id: u128) -> Result<Option<crate::RecordedEvent>> {
        Store::event_by_id(self, id)
    }

    fn event_by_id_with(&self, id: u128, f: &mut dyn FnMut(crate::EventRef<'_>)) -> Result<bool> {
        Store::event_by_id_with(self, id, f)
    }

    fn position_at(&self, timestamp_micros: u64) -> Result<u64> {
        Store::position_at(self, timestamp_micros)
    }

    fn list(
        &self,
        what: crate::Listing,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<crate::Listed>> {
        Store::list(self, what, prefix, after, limit)
    }

    fn subscribe(&self, query: &Query, after: u64) -> Result<crate::Subscription> {
        Store::subscribe(self, query, after)
    }

    // --- Snapshots and tracking info ---

    fn save_snapshot(&self, key: &str, position: u64, state: &[u8]) -> Result<()> {
        Store::save_snapshot(self, key, position, state)
    }

    fn load_snapshot(&self, key: &str, at_or_before: u64) -> Result<Option<crate::Snapshot>> {
        Store::load_snapshot(self, key, at_or_before)
    }

    fn list_snapshots(&self, key: &str) -> Result<Vec<u64>> {
        Store::list_snapshots(self, key)
    }

    fn delete_snapshot(&self, key: &str, position: u64) -> Result<bool> {
        Store::delete_snapshot(self, key, position)
    }

    fn tracking_info(&self, source: &str) -> Result<Option<u64>> {
        Store::tracking_info(self, source)
    }

    // ---- Durable subscriptions ----

    fn subscribe_durable(&self, name: &str, query: &Query) -> Result<crate::DurableSubscription> {
        Store::subscribe_durable(self, name, query)
    }

    fn durable_subscriptions(&self) -> Result<Vec<crate::DurableSubscriptionState>> {
        Store::durable_subscriptions(self)
    }

    fn delete_durable_subscription(&self, name: &str) -> Result<bool> {
        Store::delete_durable_subscription(self, name)
    }

    // ---- Lifecycle ----

    fn add_tags(
        &self,
        target: &crate::lifecycle::Target,
        tags: &[String],
    ) -> Result<crate::lifecycle::TagsAdded> {
        Store::add_tags(self, target, tags)
    }

    fn redact(&self, target: &crate::lifecycle::Target) -> Result<crate::lifecycle::Redacted> {
        Store::redact(self, target)
    }

    fn audit_log(&self, after: u64, limit: usize) -> Result<Vec<crate::lifecycle::AuditEntry>> {
        Store::audit_log(self, after, limit)
    }

    fn remove(&self, target: &crate::lifecycle::Target) -> Result<crate::removal::Removed> {
        Store::remove(self, target)
    }

    fn delete_stream(&self, stream: &str) -> Result<crate::removal::Removed> {
        Store::delete_stream(self, stream)
    }

    fn truncate_stream(&self, stream: &str, before: u64) -> Result<crate::removal::Removed> {
        Store::truncate_stream(self, stream, before)
    }

    fn set_retention(&self, rule: &crate::removal::RetentionRule) -> Result<()> {
        Store::set_retention(self, rule)
    }

    fn retention_rules(&self) -> Result<Vec<crate::removal::RetentionRule>> {
        Store::retention_rules(self)
    }

    fn enforce_retention(&self) -> Result<crate::removal::Removed> {
        Store::enforce_retention(self)
    }
}

/// What the top level of a store directory may hold: the lock, the
/// lifecycle journal (and its temporary file while it is created), the
/// MANIFEST (and its temporary file while it is replaced), and the
/// directories of the log, the index runs, snapshots and cursors; and the
/// key file of the `encryption` wrapper and its mark (and their temporary
/// files), which live in the store's directory by default — a store built
/// without the feature must still open a directory that one built with it
/// used.
const STORE_ENTRIES: [&str; 13] = [
    "LOCK",
    KEY_FILE_NAME,
    "KEYS.tmp",
    ENCRYPTED_MARK_NAME,
    "ENCRYPTED.tmp",
    lifecycle::JOURNAL_FILE,
    "LIFECYCLE.tmp",
    gesta_compaction::manifest::FILE_NAME,
    "MANIFEST.tmp",
    "wal",
    gesta_compaction::flush::INDEX_DIR,
    gesta_compaction::snapshot::SNAPSHOT_DIR,
    crate::cursors::DIR,
];

pub(crate) use crate::names::{ENCRYPTED_MARK_NAME, KEY_FILE_NAME};

/// Refuses to open a path that is not a directory, or a directory that
/// holds anything a store never does (a user's home directory, another
/// program's data): opening would litter it with a store's files. A
/// missing or empty directory becomes a new store.
fn check_store_dir(fs: &dyn gesta_wal::io::FileSystem, dir: &Path) -> Result<()> {
    let names = match fs.list(dir) {
        Ok(names) => names,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(Error::invalid(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        Err(source) => {
            return Err(Error::Io {
                path: dir.to_owned(),
                source,
            });
        }
    };
    if names.iter().any(|n| n == backup::BACKUP_INCOMPLETE) {
        return Err(Error::invalid(format!(
            "{} is an unfinished backup (it holds {}): its copy was interrupted; take the backup again",
            dir.display(),
            backup::BACKUP_INCOMPLETE
        )));
    }
    let mut foreign: Vec<&String> = names
        .iter()
        .filter(|n| !STORE_ENTRIES.contains(&n.as_str()))
        .collect();
    foreign.sort();
    match foreign.first() {
        None => Ok(()),
        Some(name) => Err(Error::invalid(format!(
            "{} is not a Gesta store: it holds {name:?}{}, which a store never does; give a new or empty directory",
            dir.display(),
            match foreign.len() {
                1 => String::new(),
                n => format!(" and {} other entries", n - 1),
            }
        ))),
    }
}
