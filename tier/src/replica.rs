//! Read replicas: a store that follows the bucket a writer ships to.
//!
//! [`Replica::start`] restores the store from the bucket if its directory
//! does not exist (see [`restore`](mod@crate::restore)), opens it as a
//! read replica of the checkpoint's writer (the engine refuses every
//! write on it with `gesta::Error::Replica`, naming that writer), and
//! polls the `CHECKPOINT` every interval. When the checkpoint's head is
//! beyond the replica's, it fetches the log records the replica lacks
//! from the segment files the checkpoint names and applies them
//! (`Store::apply_records`): readers and live subscriptions of the
//! replica see them as if they had been appended there, with the same
//! positions and commit times.
//!
//! What it fetches: for each segment file holding positions after the
//! replica's head, the bytes after the last record it applied from that
//! file (remembered between polls; when the replica starts, taken from
//! its own newest segment, which holds the writer's records at the same
//! offsets — else, or if the bytes there do not continue its log, the
//! whole file),
//! through ranged reads of the chunk objects. A chunk read whole is
//! checked against its CRC-32 in the checkpoint; a part of a chunk cannot
//! be, and is checked by the records' own checksums when applied. A
//! compressed segment (`.zseg`) is fetched whole, every chunk checked,
//! and decompressed.
//!
//! A checkpoint of a newer epoch (another writer took over) is followed
//! as any other; the refusals name the new writer. A checkpoint whose
//! head is below the replica's, or whose records do not continue the
//! replica's log, means the bucket's history is not the replica's: the
//! replica stops applying, for good, and its status says why
//! ([`ReplicaStatus::diverged`]); make a new replica.
//!
//! The writer's lifecycle journal (`LIFECYCLE`: retroactive tags,
//! redactions, removals, retention rules) is followed too: when its
//! chunks change, it is fetched whole and each entry the replica lacks is
//! applied once the replica's head has reached the head the entry was
//! made at (`Store::apply_lifecycle`).
//!
//! The writer's snapshots are followed too: each snapshot file the
//! checkpoint names that the replica lacks (or holds with another length)
//! is fetched whole, every chunk checked, and installed once the
//! replica's head has reached its position; each one the checkpoint no
//! longer names is dropped (`Store::apply_snapshot`, `drop_snapshot`).
//!
//! Not followed: durable subscriptions' cursors (a replica refuses
//! acknowledgements, so its durable subscriptions start from the cursors
//! it was restored with). A sealed segment the writer rewrote to erase redacted
//! events (format version 4) that holds positions the replica lacks is
//! refused (the poll fails, saying so; make a new replica). See
//! docs/TIER.md.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::checkpoint::{Checkpoint, FileEntry};
use crate::error::{Error, Result};
use crate::fence;
use crate::location::Location;
use crate::runtime;

/// How a [`Replica`] follows its bucket.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReplicaOptions {
    /// The time between the end of one poll of the checkpoint and the
    /// start of the next. Default 1 s.
    pub interval: Duration,
    /// The options the replica's store is opened with (its
    /// `replica_of` is set by the replica). Default: the engine's.
    pub store: gesta::Options,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        ReplicaOptions {
            interval: Duration::from_secs(1),
            store: gesta::Options::default(),
        }
    }
}

impl ReplicaOptions {
    /// Sets [`interval`](Self::interval).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets [`store`](Self::store).
    pub fn store(mut self, options: gesta::Options) -> Self {
        self.store = options;
        self
    }
}

/// Where a replica stands, as of now.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ReplicaStatus {
    /// The replica's head: it holds positions `1..=head`.
    pub head: u64,
    /// The head of the last checkpoint read from the bucket.
    pub bucket_head: u64,
    /// Positions in the bucket the replica does not hold yet
    /// (`bucket_head - head`, or 0).
    pub behind: u64,
    /// The epoch of the last checkpoint read.
    pub epoch: u64,
    /// The writer of the last checkpoint read.
    pub writer: String,
    /// The time since the last poll that succeeded (`None` before the
    /// first).
    pub since_last_poll: Option<Duration>,
    /// Polls that succeeded.
    pub polls: u64,
    /// Polls that failed since the last success (0 when healthy).
    pub failures_in_a_row: u64,
    /// Polls that failed, in all.
    pub failures: u64,
    /// Times a poll found a chunk gone (the writer replaced the
    /// checkpoint meanwhile) and went on from the new checkpoint.
    pub moved: u64,
    /// The last failure's message, until a poll succeeds.
    pub last_error: Option<String>,
    /// Set when the bucket's history is not the replica's: it applies
    /// nothing more.
    pub diverged: Option<String>,
    /// Bytes read from the bucket by polls, in all.
    pub bytes_fetched: u64,
    /// Events applied, in all.
    pub events_applied: u64,
    /// The entries of the writer's lifecycle journal the replica has
    /// applied (its sequence).
    pub journal_entries: u64,
}

/// What the poll thread keeps between polls.
#[derive(Default)]
struct Progress {
    bucket_head: u64,
    epoch: u64,
    writer: String,
    last_ok: Option<Instant>,
    polls: u64,
    failures_in_a_row: u64,
    failures: u64,
    moved: u64,
    last_error: Option<String>,
    diverged: Option<String>,
    bytes_fetched: u64,
    events_applied: u64,
    journal_entries: u64,
}

enum Command {
    PollNow(mpsc::Sender<Result<u64>>),
    Stop(mpsc::Sender<()>),
}

/// A read replica of the store a writer ships to a bucket; see the module
/// doc.
pub struct Replica {
    store: gesta::Store,
    progress: Arc<Mutex<Progress>>,
    commands: mpsc::Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("status", &self.status())
            .finish()
    }
}

/// How a replica names its writer in its refusals.
fn describe(location: &Location, checkpoint: &Checkpoint) -> String {
    format!(
        "writer {} (epoch {}) of {location}",
        checkpoint.writer, checkpoint.epoch
    )
}

fn lock(progress: &Mutex<Progress>) -> std::sync::MutexGuard<'_, Progress> {
    progress
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Replica {
    /// Starts a replica of the store shipped to `location` in `dir`:
    /// restores `dir` from the bucket first if it does not exist, opens
    /// it as a read replica, and polls the bucket every
    /// [`ReplicaOptions::interval`], the first poll at once. A `dir` that
    /// exists is served even if the bucket does not answer at start
    /// (the polls retry; [`status`](Self::status) says why they fail); a
    /// missing one needs the bucket, to be restored from it.
    pub fn start(
        location: Location,
        dir: impl AsRef<Path>,
        options: ReplicaOptions,
    ) -> Result<Replica> {
        if options.interval.is_zero() {
            return Err(Error::InvalidInput(
                "the replica's poll interval must be above zero".into(),
            ));
        }
        let dir = dir.as_ref();
        let runtime = runtime()?;
        let writer = match runtime.block_on(fence::load_checkpoint(&location)) {
            Ok(checkpoint) => describe(&location, &checkpoint),
            // A replica that has its directory serves what it holds while
            // the bucket is away (after a reboot during an outage, say);
            // its polls retry, and its status says why they fail.
            Err(e @ Error::Bucket { .. }) if dir.exists() => {
                log::warn!(
                    "gesta-tier replica: {location} did not answer ({e}); serving {} as it is                      until it does",
                    dir.display()
                );
                format!("the writer of {location} (not reached yet)")
            }
            Err(e) => return Err(e),
        };
        if !dir.exists() {
            crate::restore(&location, dir)?;
        }
        let store = gesta::Store::open_replica(dir, writer, options.store.clone())?;
        let progress = Arc::new(Mutex::new(Progress::default()));
        let cursor = local_cursor(dir);
        let (commands, inbox) = mpsc::channel();
        let thread = {
            let (store, progress) = (store.clone(), progress.clone());
            let interval = options.interval;
            std::thread::Builder::new()
                .name("gesta-tier-replica".into())
                .spawn(move || {
                    let follower = Follower {
                        store,
                        location,
                        runtime,
                        cursor,
                        journal: None,
                        snapshots: None,
                    };
                    follower.run(interval, &progress, &inbox);
                })
                .map_err(|e| Error::Io {
                    path: PathBuf::from("(thread)"),
                    source: e,
                })?
        };
        Ok(Replica {
            store,
            progress,
            commands,
            thread: Some(thread),
        })
    }

    /// The replica's store, for reads and subscriptions (its writes are
    /// refused).
    pub fn store(&self) -> &gesta::Store {
        &self.store
    }

    /// Where the replica stands.
    pub fn status(&self) -> ReplicaStatus {
        let p = lock(&self.progress);
        let head = self.store.head();
        ReplicaStatus {
            head,
            bucket_head: p.bucket_head,
            behind: p.bucket_head.saturating_sub(head),
            epoch: p.epoch,
            writer: p.writer.clone(),
            since_last_poll: p.last_ok.map(|t| t.elapsed()),
            polls: p.polls,
            failures_in_a_row: p.failures_in_a_row,
            failures: p.failures,
            moved: p.moved,
            last_error: p.last_error.clone(),
            diverged: p.diverged.clone(),
            bytes_fetched: p.bytes_fetched,
            events_applied: p.events_applied,
            journal_entries: p.journal_entries,
        }
    }

    /// Positions the bucket holds and the replica does not yet, as of the
    /// last poll ([`ReplicaStatus::behind`]).
    pub fn lag(&self) -> u64 {
        self.status().behind
    }

    /// Polls now (after the poll in progress, if any); the replica's head
    /// after it, or the poll's error.
    pub fn poll_now(&self) -> Result<u64> {
        let (reply, answer) = mpsc::channel();
        self.commands
            .send(Command::PollNow(reply))
            .map_err(|_| Error::Stopped)?;
        answer.recv().map_err(|_| Error::Stopped)?
    }

    /// Waits until the replica's head reaches `position`, at most
    /// `timeout`; whether it did.
    pub fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.store.head() < position {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Stops polling and closes the replica's store.
    pub fn stop(mut self) -> Result<()> {
        self.finish();
        self.store.close().map_err(Error::from)
    }

    fn finish(&mut self) {
        let (reply, answer) = mpsc::channel();
        if self.commands.send(Command::Stop(reply)).is_ok() {
            let _ = answer.recv();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Replica {
    /// Stops polling; the store closes when its last handle is dropped.
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.finish();
        }
    }
}

/// How many times one poll starts again from a newer checkpoint after
/// finding a chunk of the one it read gone.
const MOVED_RETRIES: usize = 3;

/// The end of the last record applied from one of the writer's segment
/// files: the next poll fetches only the bytes after it.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    /// The segment's first position (its identity across compression).
    first: u64,
    /// The offset after the last record applied from it.
    offset: u64,
    /// The offset the last record applied from it starts at: the next
    /// fetch starts there, so that the replica compares a record it holds
    /// with the writer's (`gesta::replication::last_record_start`).
    last: u64,
    /// Taken from the replica's own newest segment when it started, not
    /// from a fetch: right when that file holds the writer's records from
    /// the same first position (as a restore leaves it, and as applying
    /// keeps it), which the first fetch from it checks.
    local: bool,
}

/// The cursor a starting replica can take from its own newest segment
/// file: the same records at the same offsets as the writer's file of
/// the same first position, so that the first poll fetches the bytes
/// after them instead of the whole file (up to a segment's size). `None`
/// when there is no such file or it cannot be read.
fn local_cursor(dir: &Path) -> Option<Cursor> {
    let wal = dir.join("wal");
    let (first, name) = std::fs::read_dir(&wal)
        .ok()?
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let first = name
                .ends_with(".seg")
                .then(|| gesta::replication::segment_first_position(&name))??;
            Some((first, name))
        })
        .max()?;
    let bytes = Bytes::from(std::fs::read(wal.join(&name)).ok()?);
    let records = gesta::replication::segment_records(&name, bytes).ok()?;
    let offset = SEGMENT_HEADER_LEN + records.len() as u64;
    Some(Cursor {
        first,
        offset,
        last: gesta::replication::last_record_start(&records)
            .map_or(offset, |at| SEGMENT_HEADER_LEN + at),
        local: true,
    })
}

/// A segment file's header length: where its records start.
const SEGMENT_HEADER_LEN: u64 = 32;

/// Why a poll failed.
enum Failure {
    /// The bucket's history is not the replica's.
    Diverged(String),
    Failed(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Failed(e)
    }
}

struct Follower {
    store: gesta::Store,
    location: Location,
    runtime: tokio::runtime::Runtime,
    cursor: Option<Cursor>,
    /// The chunks of the lifecycle journal last applied whole.
    journal: Option<Vec<String>>,
    /// The chunks of the snapshot files last applied whole.
    snapshots: Option<Vec<String>>,
}

impl Follower {
    fn run(
        mut self,
        interval: Duration,
        progress: &Mutex<Progress>,
        inbox: &mpsc::Receiver<Command>,
    ) {
        let mut wait = Duration::ZERO;
        loop {
            let reply = match inbox.recv_timeout(wait) {
                Ok(Command::PollNow(reply)) => Some(reply),
                Ok(Command::Stop(reply)) => {
                    let _ = reply.send(());
                    return;
                }
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let outcome = self.poll_once(progress);
            // A store closed under the replica takes no more records:
            // polling on would only fail.
            let closed = matches!(outcome, Err(Error::Store(gesta::Error::Closed)));
            if let Some(reply) = reply {
                let _ = reply.send(outcome);
            }
            if closed {
                return;
            }
            wait = interval;
        }
    }

    /// One poll, its outcome recorded in `progress`.
    fn poll_once(&mut self, progress: &Mutex<Progress>) -> Result<u64> {
        if let Some(why) = lock(progress).diverged.clone() {
            return Err(diverged_error(&self.location, why));
        }
        let mut outcome = self.poll(progress);
        // A chunk gone: the writer's next round replaced the checkpoint
        // (and deleted the chunks it no longer names) during the poll.
        // What was applied stays; the poll goes on from the new one.
        for _ in 0..MOVED_RETRIES {
            match &outcome {
                Err(Failure::Failed(Error::Bucket {
                    source: object_store::Error::NotFound { .. },
                    ..
                })) => {
                    lock(progress).moved += 1;
                    outcome = self.poll(progress);
                }
                _ => break,
            }
        }
        let mut p = lock(progress);
        match outcome {
            Ok(head) => {
                p.polls += 1;
                p.failures_in_a_row = 0;
                p.last_error = None;
                p.last_ok = Some(Instant::now());
                Ok(head)
            }
            Err(Failure::Diverged(why)) => {
                log::error!("gesta-tier replica: {why}");
                p.diverged = Some(why.clone());
                p.last_error = Some(why.clone());
                p.failures += 1;
                p.failures_in_a_row += 1;
                Err(diverged_error(&self.location, why))
            }
            Err(Failure::Failed(e)) => {
                log::warn!("gesta-tier replica: poll failed: {e}");
                p.failures += 1;
                p.failures_in_a_row += 1;
                p.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn poll(&mut self, progress: &Mutex<Progress>) -> Result<u64, Failure> {
        let checkpoint = self
            .runtime
            .block_on(fence::load_checkpoint(&self.location))?;
        {
            let mut p = lock(progress);
            if (p.epoch, p.writer.as_str()) != (checkpoint.epoch, checkpoint.writer.as_str()) {
                // A newer writer: it is the one the refusals name now.
                self.store
                    .set_replica_of(describe(&self.location, &checkpoint))
                    .map_err(Error::from)?;
                p.epoch = checkpoint.epoch;
                p.writer = checkpoint.writer.clone();
            }
            p.bucket_head = checkpoint.head;
        }
        let head = self.store.head();
        if checkpoint.head < head {
            return Err(Failure::Diverged(format!(
                "{}: the checkpoint (epoch {}, writer {}) holds positions up to {}, the replica \
                 up to {head}: the bucket's history is not the replica's",
                self.location, checkpoint.epoch, checkpoint.writer, checkpoint.head
            )));
        }
        let mut segments: Vec<(u64, &FileEntry)> = checkpoint
            .files
            .iter()
            .filter_map(|f| {
                let name = f.path.strip_prefix("wal/")?;
                gesta::replication::segment_first_position(name).map(|first| (first, f))
            })
            .collect();
        segments.sort_by_key(|(first, _)| *first);
        for (i, (first, file)) in segments.iter().enumerate() {
            let head = self.store.head();
            if head >= checkpoint.head {
                break;
            }
            // The segment holds positions first..next.
            if segments
                .get(i + 1)
                .is_some_and(|(next, _)| *next <= head + 1)
            {
                continue;
            }
            self.follow(*first, file, progress)?;
        }
        if let Some(file) = checkpoint.file("LIFECYCLE") {
            self.follow_journal(file, progress)?;
        }
        self.follow_snapshots(&checkpoint, progress)?;
        Ok(self.store.head())
    }

    /// Makes the replica's snapshots the checkpoint's: fetches each one it
    /// lacks (or holds with another length) once the replica's head has
    /// reached its position, and drops each one the writer no longer
    /// keeps. Skipped while the checkpoint's snapshot files are the ones
    /// last applied whole.
    fn follow_snapshots(
        &mut self,
        checkpoint: &Checkpoint,
        progress: &Mutex<Progress>,
    ) -> Result<(), Failure> {
        let files: Vec<((String, u64), &FileEntry)> = checkpoint
            .files
            .iter()
            .filter_map(|f| gesta::replication::snapshot_file(&f.path).map(|id| (id, f)))
            .collect();
        let seen: Vec<String> = files
            .iter()
            .flat_map(|(_, f)| f.chunks.iter().map(|c| c.key.clone()))
            .collect();
        if self.snapshots.as_ref() == Some(&seen) {
            return Ok(());
        }
        let held: std::collections::HashMap<(String, u64), u64> = self
            .store
            .snapshot_inventory()
            .map_err(Error::from)?
            .into_iter()
            .map(|(key, position, len)| ((key, position), len))
            .collect();
        let head = self.store.head();
        let mut waiting = false;
        for ((key, position), file) in &files {
            if held.get(&(key.clone(), *position)) == Some(&file.len) {
                continue;
            }
            if *position > head {
                waiting = true;
                continue;
            }
            let bytes = self.fetch(file, 0..file.len, progress)?;
            self.store.apply_snapshot(&bytes).map_err(Error::from)?;
        }
        let named: std::collections::HashSet<&(String, u64)> =
            files.iter().map(|(id, _)| id).collect();
        for id in held.keys() {
            if !named.contains(id) {
                let (key, position) = id;
                self.store
                    .drop_snapshot(key, *position)
                    .map_err(Error::from)?;
            }
        }
        // While some wait for the head, the next poll looks again.
        self.snapshots = (!waiting).then_some(seen);
        Ok(())
    }

    /// Applies the entries of the writer's lifecycle journal the replica
    /// lacks: fetched whole (it is small) when its chunks changed, or while
    /// some of its entries wait for the replica's head.
    fn follow_journal(
        &mut self,
        file: &FileEntry,
        progress: &Mutex<Progress>,
    ) -> Result<(), Failure> {
        let seen: Vec<String> = file.chunks.iter().map(|c| c.key.clone()).collect();
        if self.journal.as_ref() == Some(&seen) {
            return Ok(());
        }
        let bytes = self.fetch(file, 0..file.len, progress)?;
        match self.store.apply_lifecycle(&bytes) {
            Ok(applied) => {
                lock(progress).journal_entries = applied.sequence;
                // While entries wait, the next poll applies them.
                self.journal = (applied.waiting == 0).then_some(seen);
                Ok(())
            }
            Err(gesta::Error::InvalidInput { reason }) if reason.contains("is not the one") => {
                Err(Failure::Diverged(format!("{}: {reason}", self.location)))
            }
            Err(e) => Err(Failure::Failed(e.into())),
        }
    }

    /// Applies the records of one of the writer's segment files that the
    /// replica lacks.
    fn follow(
        &mut self,
        first: u64,
        file: &FileEntry,
        progress: &Mutex<Progress>,
    ) -> Result<(), Failure> {
        let name = file.path.strip_prefix("wal/").unwrap_or(&file.path);
        let compressed = name.ends_with(".zseg");
        let from = match self.cursor {
            Some(c) if c.first == first && !compressed => Some(c),
            _ => None,
        };
        // The bytes fetched, where they start in the file, and where the
        // records in them end.
        let (records, start, end) = match from {
            Some(c) if c.offset >= file.len => return Ok(()),
            Some(c) => {
                // From the last record applied, which the replica holds
                // and compares with the writer's: a file of another
                // history with a record ending where the cursor stands
                // must not pass for the continuation of the replica's.
                let bytes = self.fetch(file, c.last..file.len, progress)?;
                (bytes, c.last, file.len)
            }
            None => {
                let bytes = self.fetch(file, 0..file.len, progress)?;
                let len = bytes.len() as u64;
                let records = gesta::replication::segment_records(name, bytes)
                    .map_err(|e| self.refused(first, e))?;
                let end = if compressed {
                    // Offsets into a compressed segment are offsets into
                    // the bytes it replaced; no cursor is kept in it.
                    0
                } else {
                    len.min(SEGMENT_HEADER_LEN + records.len() as u64)
                };
                (records, SEGMENT_HEADER_LEN, end)
            }
        };
        let last = gesta::replication::last_record_start(&records).map_or(end, |at| start + at);
        match self.store.apply_records(records) {
            Ok(applied) => {
                lock(progress).events_applied += applied.events;
                self.cursor = (!compressed).then_some(Cursor {
                    first,
                    offset: end,
                    last,
                    local: false,
                });
                Ok(())
            }
            Err(e) if from.is_some() && self.cursor.is_some_and(|c| c.local) => {
                // The replica's own file was not a prefix of the writer's
                // after all (nothing was applied: the records are checked
                // before any is written): read the writer's from its start.
                log::debug!(
                    "gesta-tier replica: the local cursor did not fit ({e}); fetching whole"
                );
                self.cursor = None;
                self.follow(first, file, progress)
            }
            Err(e) => {
                // The next poll reads the file from its start again.
                self.cursor = None;
                Err(self.refused(first, e))
            }
        }
    }

    /// The failure for records the store refused.
    fn refused(&self, first: u64, e: gesta::Error) -> Failure {
        match e {
            // The engine's words for a record across the replica's head.
            gesta::Error::InvalidInput { reason } if reason.contains("is not the one") => {
                Failure::Diverged(format!(
                    "{}: the segment from position {first}: {reason}",
                    self.location
                ))
            }
            e => Failure::Failed(e.into()),
        }
    }

    /// Bytes `range` of `file`, from its chunks: a chunk read whole is
    /// checked against its length and CRC-32; a part of one is read with
    /// a ranged GET.
    fn fetch(
        &self,
        file: &FileEntry,
        range: Range<u64>,
        progress: &Mutex<Progress>,
    ) -> Result<Bytes> {
        let location = &self.location;
        let bytes = self
            .runtime
            .block_on(crate::chunks::fetch_range(location, file, range))?;
        lock(progress).bytes_fetched += bytes.len() as u64;
        Ok(bytes)
    }
}

fn diverged_error(location: &Location, why: String) -> Error {
    Error::Diverged {
        location: location.to_string(),
        reason: why,
    }
}
