//! The shipper: a background thread that claims the prefix's epoch, then
//! runs a round (see [`crate::round`]) every interval (the recovery-point
//! objective) and publishes what the bucket holds as its shipped head.
//!
//! A failed round (the bucket unreachable, a request refused, the local
//! backup failing) is retried with exponential backoff; the shipped head
//! stays where the last checkpoint put it, so it never counts what was
//! not shipped, and the lag (`head - shipped_head`) grows and is
//! reported. A fenced shipper stops for good and says so in its status.
//!
//! Appends never wait for the shipper, unless the caller asks:
//! [`Shipper::ship_through`] waits until a position is in the bucket and
//! hurries a round for it, so a writer can acknowledge only what the
//! bucket holds. Waiters that arrive while a round runs are served by the
//! next one together, as a group commit serves its writers: one round per
//! burst, not one per waiter. A hurried round never cuts a backoff short.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result, io_at};
use crate::fence;
use crate::location::Location;
use crate::round::{self, RoundReport, State};

/// How a [`Shipper`] ships.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ShipOptions {
    /// The time between the end of one round and the start of the next:
    /// the recovery-point objective, as far as the bucket answers in
    /// time. Default 1 s.
    pub interval: Duration,
    /// Take the prefix over from a writer that still holds its epoch (one
    /// that was killed, or whose machine is gone). That writer is fenced:
    /// its later checkpoints are refused. Default false: a held prefix is
    /// [`Error::Claimed`].
    pub takeover: bool,
    /// The directory for each round's local copy. It must be on the
    /// store's file system (the copy's sealed files are hard links) and
    /// outside the store. Default: `.NAME.tier` beside the store's
    /// directory `NAME`.
    pub staging: Option<PathBuf>,
    /// The first wait after a failed round; it doubles with every failure
    /// in a row up to [`max_backoff`](Self::max_backoff). Default 100 ms.
    pub min_backoff: Duration,
    /// The longest wait between failed rounds. Default 5 s.
    pub max_backoff: Duration,
    /// Chunk uploads in flight at once. Default 4.
    pub concurrency: usize,
    /// This writer's id, written in the epoch object and the checkpoint.
    /// Default: `pid<PID>-<nanoseconds since 1970, hex>`.
    pub writer: Option<String>,
    /// Ship as soon as the log has grown by this many bytes since the last
    /// round began, without waiting for the rest of the
    /// [`interval`](Self::interval): the recovery-point objective in
    /// bytes as well as in time. Looked at every 10 ms; not while rounds
    /// are failing (their backoff holds). Default none.
    pub bytes: Option<u64>,
    /// After every round that succeeds, evict the sealed segments this
    /// policy lets go that the checkpoint just written holds (as
    /// [`Evictor`](crate::Evictor) does, without reading the checkpoint
    /// again). The store must have been opened with a
    /// [`BucketSegments`](crate::BucketSegments) over the same location.
    /// Default none: every segment stays local.
    pub evict: Option<crate::EvictPolicy>,
}

impl Default for ShipOptions {
    fn default() -> Self {
        ShipOptions {
            interval: Duration::from_secs(1),
            takeover: false,
            staging: None,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            concurrency: 4,
            writer: None,
            bytes: None,
            evict: None,
        }
    }
}

impl ShipOptions {
    /// Sets [`interval`](Self::interval).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets [`takeover`](Self::takeover).
    pub fn takeover(mut self, takeover: bool) -> Self {
        self.takeover = takeover;
        self
    }

    /// Sets [`staging`](Self::staging).
    pub fn staging(mut self, dir: impl Into<PathBuf>) -> Self {
        self.staging = Some(dir.into());
        self
    }

    /// Sets [`min_backoff`](Self::min_backoff) and
    /// [`max_backoff`](Self::max_backoff).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }

    /// Sets [`writer`](Self::writer).
    pub fn writer(mut self, id: impl Into<String>) -> Self {
        self.writer = Some(id.into());
        self
    }

    /// Sets [`bytes`](Self::bytes).
    pub fn bytes(mut self, bytes: u64) -> Self {
        self.bytes = Some(bytes.max(1));
        self
    }

    /// Sets [`evict`](Self::evict).
    pub fn evict(mut self, policy: crate::EvictPolicy) -> Self {
        self.evict = Some(policy);
        self
    }
}

/// What a shipper has done, as of now.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ShipStatus {
    /// The epoch this shipper holds (or held, when fenced).
    pub epoch: u64,
    /// The head the bucket restores to: every position up to it is in the
    /// bucket, under a checkpoint this shipper wrote.
    pub shipped_head: u64,
    /// Rounds that succeeded.
    pub rounds: u64,
    /// Rounds that failed since the last success (0 when healthy).
    pub failures_in_a_row: u64,
    /// Rounds that failed, in all.
    pub failures: u64,
    /// The last failure's message, until a round succeeds.
    pub last_error: Option<String>,
    /// The writer that fenced this shipper, if one did: it ships no more.
    pub fenced_by: Option<String>,
    /// Bytes uploaded, in all.
    pub bytes_uploaded: u64,
    /// The last successful round.
    pub last_round: Option<RoundReport>,
    /// When the last successful round ended.
    pub last_success: Option<Instant>,
    /// The shipper's thread has ended (stopped, or fenced and dropped).
    pub stopped: bool,
    /// Sealed segments evicted after rounds ([`ShipOptions::evict`]), in
    /// all, and their bytes.
    pub segments_evicted: u64,
    /// The bytes of those segments (freed locally).
    pub bytes_evicted: u64,
    /// The last eviction's error, until one succeeds.
    pub evict_error: Option<String>,
}

/// The status, and the signal that it changed (a round ended, the thread
/// stopped), for the waiters of [`Shipper::ship_through`].
struct Shared {
    status: Mutex<ShipStatus>,
    changed: Condvar,
}

impl Shared {
    /// Changes the status and wakes every waiter.
    fn update(&self, change: impl FnOnce(&mut ShipStatus)) {
        change(&mut lock(&self.status));
        self.changed.notify_all();
    }
}

enum Command {
    /// Run a round now and answer with its outcome.
    ShipNow(mpsc::Sender<Result<u64>>),
    /// Run a round soon unless the shipped head has reached this position
    /// meanwhile (sent by the waiters of `ship_through`).
    Hurry(u64),
    /// Stop: run a last round first when asked to, release the epoch,
    /// and answer with the shipped head.
    Stop {
        last_round: bool,
        reply: mpsc::Sender<Result<u64>>,
    },
}

/// Ships a store to a bucket prefix in the background; see the module doc.
pub struct Shipper {
    store: gesta::Store,
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Shipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shipper")
            .field("status", &self.status())
            .finish()
    }
}

/// The default staging directory of a store's directory.
fn default_staging(dir: &std::path::Path) -> Result<PathBuf> {
    let absolute = std::path::absolute(dir).map_err(io_at(dir))?;
    let name = absolute
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::InvalidInput(format!("{} has no usable name", dir.display())))?;
    let parent = absolute.parent().unwrap_or(std::path::Path::new("/"));
    Ok(parent.join(format!(".{name}.tier")))
}

fn default_writer() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("pid{}-{nanos:x}", std::process::id())
}

impl Shipper {
    /// Claims `location`'s epoch for `store` (refused with
    /// [`Error::Claimed`] if another writer holds it, unless
    /// [`ShipOptions::takeover`]; with [`Error::Behind`] if the bucket
    /// holds a later head than the store), fences the checkpoint, and starts
    /// shipping every [`ShipOptions::interval`], the first round at once.
    pub fn start(store: gesta::Store, location: Location, options: ShipOptions) -> Result<Shipper> {
        if options.interval.is_zero() {
            return Err(Error::InvalidInput(
                "the ship interval must be above zero".into(),
            ));
        }
        let staging = match &options.staging {
            Some(dir) => dir.clone(),
            None => default_staging(store.path())?,
        };
        let writer = options.writer.clone().unwrap_or_else(default_writer);
        if !crate::location::plain_segment(&writer) {
            return Err(Error::InvalidInput(format!(
                "writer id {writer:?}: letters, digits and . - _ = + only"
            )));
        }
        let shared = Arc::new(Shared {
            status: Mutex::new(ShipStatus::default()),
            changed: Condvar::new(),
        });
        let (commands, inbox) = mpsc::channel();
        let (started, started_rx) = mpsc::channel();
        let thread = {
            let store = store.clone();
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("gesta-tier-ship".into())
                .spawn(move || {
                    ship_thread(
                        store, location, options, writer, staging, &shared, inbox, started,
                    );
                    shared.update(|s| s.stopped = true);
                })
                .map_err(|e| Error::Io {
                    path: PathBuf::from("(thread)"),
                    source: e,
                })?
        };
        match started_rx.recv() {
            Ok(Ok(())) => Ok(Shipper {
                store,
                shared,
                commands,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(Error::Stopped)
            }
        }
    }

    /// The head the bucket restores to.
    pub fn shipped_head(&self) -> u64 {
        self.status().shipped_head
    }

    /// Positions committed locally and not yet in the bucket.
    pub fn lag(&self) -> u64 {
        self.store.head().saturating_sub(self.shipped_head())
    }

    /// The epoch this shipper holds.
    pub fn epoch(&self) -> u64 {
        self.status().epoch
    }

    /// What the shipper has done.
    pub fn status(&self) -> ShipStatus {
        lock(&self.shared.status).clone()
    }

    /// Runs a round now (after the one in progress, if any) and returns
    /// the shipped head, or the round's error.
    pub fn ship_now(&self) -> Result<u64> {
        let (reply, answer) = mpsc::channel();
        self.commands
            .send(Command::ShipNow(reply))
            .map_err(|_| Error::Stopped)?;
        answer.recv().map_err(|_| Error::Stopped)?
    }

    /// Waits until the shipped head reaches `position`, at most `timeout`;
    /// whether it did. It does not hurry a round: see
    /// [`ship_through`](Self::ship_through).
    pub fn wait_shipped(&self, position: u64, timeout: Duration) -> bool {
        self.waiter().wait(position, timeout, false).is_ok()
    }

    /// A handle that waits for positions to be shipped, cheap to clone and
    /// to hand to other threads (a server's append handlers), without
    /// holding the shipper itself. Once the shipper has stopped its waits
    /// fail with [`Error::Stopped`].
    pub fn waiter(&self) -> ShipWaiter {
        ShipWaiter {
            shared: self.shared.clone(),
            commands: self.commands.clone(),
        }
    }

    /// Waits until `position` is in the bucket, at most `timeout`, and
    /// returns the shipped head: the acknowledgement after upload. A round
    /// is hurried for it rather than waited for at the next interval;
    /// waiters that arrive during a round share the next one. Call it with
    /// an append's last position (`Appended::last`) to acknowledge only
    /// what the bucket holds; a position beyond the store's head waits
    /// until it is committed and shipped.
    ///
    /// Fails with [`Error::NotShipped`] (naming the shipped head and the
    /// last round's error) when the timeout passes or the shipper has been
    /// fenced, and with [`Error::Stopped`] when it has stopped. The event
    /// is then committed locally all the same, as any append is: only the
    /// bucket's copy is in doubt.
    pub fn ship_through(&self, position: u64, timeout: Duration) -> Result<u64> {
        self.waiter().ship_through(position, timeout)
    }

    /// Ships what is committed (one last round), releases the epoch (the
    /// next shipper on the prefix needs no takeover), and stops; returns
    /// the shipped head, or the last round's error (the epoch is released
    /// even then). Stop the shipper before closing the store: a store
    /// closed first ships nothing more (no error for that).
    pub fn stop(mut self) -> Result<u64> {
        self.finish(true)
    }

    fn finish(&mut self, last_round: bool) -> Result<u64> {
        let (reply, answer) = mpsc::channel();
        let result = match self.commands.send(Command::Stop { last_round, reply }) {
            Ok(()) => answer.recv().map_err(|_| Error::Stopped)?,
            Err(_) => Err(Error::Stopped),
        };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        result
    }
}

impl Drop for Shipper {
    /// Stops without a last round, releasing the epoch.
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.finish(false);
        }
    }
}

/// Waits for positions to be shipped: see [`Shipper::waiter`].
#[derive(Clone)]
pub struct ShipWaiter {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
}

impl std::fmt::Debug for ShipWaiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShipWaiter")
            .field("shipped_head", &lock(&self.shared.status).shipped_head)
            .finish()
    }
}

impl ShipWaiter {
    /// [`Shipper::ship_through`], from a handle.
    pub fn ship_through(&self, position: u64, timeout: Duration) -> Result<u64> {
        self.wait(position, timeout, true)
    }

    fn wait(&self, position: u64, timeout: Duration, hurry: bool) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        let mut asked = !hurry;
        let mut status = lock(&self.shared.status);
        loop {
            if status.shipped_head >= position {
                return Ok(status.shipped_head);
            }
            if status.stopped {
                return Err(Error::Stopped);
            }
            let now = Instant::now();
            if status.fenced_by.is_some() || now >= deadline {
                return Err(Error::NotShipped {
                    position,
                    shipped_head: status.shipped_head,
                    last_error: status.last_error.clone(),
                });
            }
            if !asked {
                asked = true;
                if self.commands.send(Command::Hurry(position)).is_err() {
                    return Err(Error::Stopped);
                }
            }
            status = self
                .shared
                .changed
                .wait_timeout(status, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}

/// Refuses a store whose log is not the bucket's up to the bucket's
/// head: its record holding that position must be the bucket's (the same
/// positions, commit time and sequencing bytes; see
/// `gesta::Store::holds_record`). A store restored from the bucket
/// earlier that then appended events of its own, while the bucket's
/// writer went on, is ahead of the bucket too; shipping it would replace
/// events the bucket holds (and may have acknowledged) with others. Only
/// the byte range where this store keeps that record is fetched from the
/// bucket's plain segment file; when that is not the same record (or the
/// file is compressed), the file is fetched whole, once, for the answer.
/// A file the check cannot read records from (a segment rewritten to erase
/// redacted events) is not compared.
async fn check_history(
    location: &Location,
    checkpoint: &crate::checkpoint::Checkpoint,
    store: &gesta::Store,
) -> Result<()> {
    let head = checkpoint.head;
    let holding = checkpoint
        .files
        .iter()
        .filter_map(|f| {
            let name = f.path.strip_prefix("wal/")?;
            let first = gesta::replication::segment_first_position(name)?;
            (first <= head).then_some((first, name, f))
        })
        .max_by_key(|(first, ..)| *first);
    let Some((first, name, file)) = holding else {
        return Ok(());
    };
    // Where this store keeps the record, in the same plain file: a range
    // that holds it in the bucket's too answers at the cost of one record.
    if gesta::replication::is_plain_segment_name(name)
        && let Some((own_first, span)) = store.record_span(head)?
        && own_first == first
        && span.end <= file.len
    {
        let record = crate::chunks::fetch_range(location, file, span).await?;
        if let Ok(Some(true)) = store.holds_record(&record, head) {
            return Ok(());
        }
    }
    let bytes = crate::chunks::fetch_range(location, file, 0..file.len).await?;
    let records = match gesta::replication::segment_records(name, bytes) {
        Ok(records) => records,
        Err(gesta::Error::InvalidInput { reason }) => {
            log::warn!("gesta-tier: the bucket's {name} is not compared with this store: {reason}");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    match store.holds_record(&records, head)? {
        Some(true) | None => Ok(()),
        Some(false) => Err(Error::HistoryDiffers {
            location: location.to_string(),
            reason: format!(
                "this store's record holding position {head} (the bucket's head) is not the \
                 bucket's, and shipping would replace events the bucket holds; ship to another \
                 prefix, or restore from the bucket"
            ),
        }),
    }
}

fn lock(status: &Mutex<ShipStatus>) -> std::sync::MutexGuard<'_, ShipStatus> {
    status
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[allow(clippy::too_many_arguments)]
fn ship_thread(
    store: gesta::Store,
    location: Location,
    options: ShipOptions,
    writer: String,
    staging: PathBuf,
    shared: &Shared,
    inbox: mpsc::Receiver<Command>,
    started: mpsc::Sender<Result<()>>,
) {
    let runtime = match crate::runtime() {
        Ok(r) => r,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    let claimed = runtime.block_on(async {
        // Checked before the claim, so that a mistaken takeover fences no one.
        match fence::load_checkpoint(&location).await {
            Ok(checkpoint) if checkpoint.head > store.head() => {
                return Err(Error::Behind {
                    location: location.to_string(),
                    head: store.head(),
                    bucket_head: checkpoint.head,
                });
            }
            Ok(checkpoint) => check_history(&location, &checkpoint, &store).await?,
            Err(Error::NoCheckpoint { .. }) => {}
            Err(e) => return Err(e),
        }
        let claim = fence::claim(&location, &writer, options.takeover).await?;
        match fence::fence_checkpoint(&location, &claim).await {
            Ok(chain) => Ok((claim, chain)),
            Err(e) => {
                let _ = fence::release(&location, &claim).await;
                Err(e)
            }
        }
    });
    let (claim, chain) = match claimed {
        Ok(c) => c,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    // Leftovers of killed rounds and fenced writers; best effort.
    match runtime.block_on(crate::garbage::collect(
        &location,
        &chain.checkpoint,
        claim.epoch,
    )) {
        Ok(0) => {}
        Ok(n) => log::info!("gesta-tier: deleted {n} chunk(s) that no checkpoint named"),
        Err(e) => log::warn!("gesta-tier: could not delete the chunks no checkpoint names: {e}"),
    }
    shared.update(|s| {
        s.epoch = claim.epoch;
        // The bucket restores to the inherited head already, but that
        // head is not this store's until a round has checked its files.
        s.shipped_head = 0;
    });
    let _ = started.send(Ok(()));
    let mut state = State::new(claim, chain, staging, options.concurrency);
    let mut fenced = None;
    // The log's bytes when the last round began, for `options.bytes`.
    let shipped_bytes = std::cell::Cell::new(store.log_bytes());
    let round = |state: &mut State, fenced: &mut Option<(u64, String)>| -> Result<u64> {
        shipped_bytes.set(store.log_bytes());
        if let Some((by, writer)) = fenced {
            return Err(Error::Fenced {
                epoch: state.claim.epoch,
                by: *by,
                writer: writer.clone(),
            });
        }
        let outcome = runtime.block_on(round::run(&store, &location, state));
        shared.update(|s| match &outcome {
            Ok(report) => {
                if s.failures_in_a_row > 0 {
                    log::info!(
                        "gesta-tier: shipping resumed after {} failed round(s); shipped up to {}",
                        s.failures_in_a_row,
                        report.head
                    );
                }
                s.shipped_head = report.head;
                s.rounds += 1;
                s.failures_in_a_row = 0;
                s.last_error = None;
                s.bytes_uploaded += report.bytes_uploaded;
                s.last_round = Some(report.clone());
                s.last_success = Some(Instant::now());
            }
            Err(e) => {
                s.failures += 1;
                s.failures_in_a_row += 1;
                s.last_error = Some(e.to_string());
                if let Error::Fenced { by, writer, .. } = e {
                    *fenced = Some((*by, writer.clone()));
                    s.fenced_by = Some(format!("epoch {by} (writer {writer})"));
                    log::error!("gesta-tier: {e}");
                } else {
                    log::warn!(
                        "gesta-tier: a shipping round failed (shipped up to {}, {} failed in a row), retried: {e}",
                        s.shipped_head,
                        s.failures_in_a_row
                    );
                }
            }
        });
        if outcome.is_ok()
            && let Some(policy) = &options.evict
        {
            let evicted = crate::evict::evict_with(&store, policy, &state.chain.checkpoint);
            shared.update(|s| match &evicted {
                Ok(report) => {
                    s.segments_evicted += report.evicted.len() as u64;
                    s.bytes_evicted += report.bytes;
                    s.evict_error = None;
                }
                Err(e) => {
                    log::warn!("gesta-tier: eviction after a round failed: {e}");
                    s.evict_error = Some(e.to_string());
                }
            });
        }
        outcome.map(|r| r.head)
    };
    let release = |state: &State, fenced: bool| {
        // A fenced shipper's epoch is someone else's now.
        if !fenced {
            let _ = runtime.block_on(fence::release(&location, &state.claim));
        }
        let _ = std::fs::remove_dir_all(&state.staging);
    };
    let status = &shared.status;
    // When the next round is due: a deadline rather than a wait, so that
    // commands (a hurry that finds its position shipped) do not put the
    // interval's round off.
    let mut due = Instant::now();
    loop {
        let until_due = due.saturating_duration_since(Instant::now());
        // With a bytes bound, woken every BYTES_WATCH to look at the log.
        let wait = match options.bytes {
            Some(_) => until_due.min(BYTES_WATCH),
            None => until_due,
        };
        let command = inbox.recv_timeout(wait);
        match command {
            Ok(Command::ShipNow(reply)) => {
                let outcome = round(&mut state, &mut fenced);
                due = Instant::now() + next_wait(&options, status, &outcome);
                let _ = reply.send(outcome);
            }
            Ok(Command::Hurry(position)) => {
                let s = lock(status);
                // Shipped by a round since it was asked, or nothing a round
                // could do now: fenced, or backing off after failures
                // (the round due then serves the waiter).
                let served = s.shipped_head >= position;
                let hold = fenced.is_some() || s.failures_in_a_row > 0;
                drop(s);
                if served || hold {
                    continue;
                }
                let outcome = round(&mut state, &mut fenced);
                due = Instant::now() + next_wait(&options, status, &outcome);
            }
            Ok(Command::Stop { last_round, reply }) => {
                let outcome = match last_round && fenced.is_none() {
                    true => match round(&mut state, &mut fenced) {
                        // Closed before the shipper was stopped: what
                        // was shipped is all there is to say.
                        Err(Error::Store(gesta::Error::Closed)) => Ok(lock(status).shipped_head),
                        other => other,
                    },
                    false => Ok(lock(status).shipped_head),
                };
                release(&state, fenced.is_some());
                let _ = reply.send(outcome);
                return;
            }
            Err(RecvTimeoutError::Timeout) => {
                if fenced.is_some() {
                    // Nothing more to do but answer commands.
                    due = Instant::now() + Duration::from_secs(3600);
                    continue;
                }
                if Instant::now() < due {
                    // Woken early to look at the log: a round only once it
                    // has grown by the bound, and not during a backoff.
                    let grown = store.log_bytes().saturating_sub(shipped_bytes.get());
                    let bound = options.bytes.unwrap_or(u64::MAX);
                    if grown < bound || lock(status).failures_in_a_row > 0 {
                        continue;
                    }
                }
                let outcome = round(&mut state, &mut fenced);
                due = Instant::now() + next_wait(&options, status, &outcome);
            }
            Err(RecvTimeoutError::Disconnected) => {
                release(&state, fenced.is_some());
                return;
            }
        }
    }
}

/// How often a shipper with a bytes bound looks at the log's growth.
const BYTES_WATCH: Duration = Duration::from_millis(10);

/// The interval after a success, the backoff after failures in a row.
fn next_wait(options: &ShipOptions, status: &Mutex<ShipStatus>, outcome: &Result<u64>) -> Duration {
    match outcome {
        Ok(_) => return options.interval,
        // A closed store has nothing more to ship: no retrying until
        // asked (the shipper should have been stopped first).
        Err(Error::Store(gesta::Error::Closed)) => return Duration::from_secs(3600),
        Err(_) => {}
    }
    let failures = lock(status).failures_in_a_row.min(30) as u32;
    let backoff = options
        .min_backoff
        .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    backoff.min(options.max_backoff)
}
