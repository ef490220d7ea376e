//! Shared helpers for Gesta's benchmarks.
//!
//! Two halves:
//!
//! - **Data** ([`SplitMix64`], [`EventGen`]): the standard events of
//!   `BENCH.md` — a 200-byte JSON-like payload, one of 20 event types, 3 tags
//!   drawn uniformly from 10,000 distinct `key:value` tags, one of 10,000
//!   streams — generated from a fixed seed so every store and every run sees
//!   the same events.
//! - **The limit line** ([`SyncProbe`], [`GroupCommitProbe`],
//!   [`BandwidthProbe`]): what the disk itself can do, measured with
//!   `std::fs` directly (not through Gesta): the latency of a 4 KiB write +
//!   `fdatasync`, growing a file or overwriting a pre-zeroed one; how many
//!   commits per second 16 threads get when they share `fdatasync`s; and
//!   sequential write bandwidth with an `fdatasync` per MiB.
//!
//! [`bench_root`] picks a directory on a real disk for all of them.
//!
//! [`harness`] is the comparison harness behind the `gesta-bench` binary.
#![deny(missing_docs)]

pub mod cli;
pub mod harness;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Condvar, Mutex};
use std::time::{Duration, Instant};

use gesta::NewEvent;

// ---------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------

/// The fixed seed of the standard data set.
pub const SEED: u64 = 0x6765_7374_6121_2024;
/// Bytes of payload per event.
pub const PAYLOAD_LEN: usize = 200;
/// Number of distinct event types.
pub const EVENT_TYPES: usize = 20;
/// Number of distinct tags.
pub const TAGS: usize = 10_000;
/// Tags per event.
pub const TAGS_PER_EVENT: usize = 3;
/// Number of distinct streams.
pub const STREAMS: usize = 10_000;

/// The 20 event types of the standard data set.
pub const EVENT_TYPE_NAMES: [&str; EVENT_TYPES] = [
    "AccountOpened",
    "AccountClosed",
    "CustomerRegistered",
    "CustomerRenamed",
    "OrderPlaced",
    "OrderShipped",
    "OrderDelivered",
    "OrderCancelled",
    "PaymentAuthorized",
    "PaymentCaptured",
    "PaymentRefunded",
    "InvoiceIssued",
    "InvoicePaid",
    "CourseDefined",
    "StudentSubscribed",
    "StudentUnsubscribed",
    "CapacityChanged",
    "ItemAddedToCart",
    "ItemRemovedFromCart",
    "AddressChanged",
];

/// Tag keys; a tag is `KEY:n`, and tag number `i` is
/// `TAG_KEYS[i % 10]:(i / 10)`, so the 10,000 tags are distinct.
const TAG_KEYS: [&str; 10] = [
    "account", "customer", "order", "payment", "invoice", "course", "student", "cart", "region",
    "product",
];

/// Words the payload's free-text field is made of (few and repeated, so the
/// payload compresses like real JSON does).
const WORDS: [&str; 16] = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "order",
    "customer",
    "express",
    "standard",
    "delivery",
    "pending",
    "confirmed",
    "the",
    "and",
    "with",
    "priority",
];

pub use gesta_wal::rng::SplitMix64;

/// The standard event generator: deterministic for a given seed.
#[derive(Debug)]
pub struct EventGen {
    rng: SplitMix64,
    tags: Vec<String>,
    seq: u64,
}

impl EventGen {
    /// A generator seeded with `seed`. Use [`SEED`] for the standard data
    /// set, or [`EventGen::for_writer`] for one of several concurrent
    /// writers.
    pub fn new(seed: u64) -> EventGen {
        let tags = (0..TAGS)
            .map(|i| format!("{}:{}", TAG_KEYS[i % TAG_KEYS.len()], i / TAG_KEYS.len()))
            .collect();
        EventGen {
            rng: SplitMix64::new(seed),
            tags,
            seq: 0,
        }
    }

    /// The generator of writer `writer` among several: seeded from [`SEED`]
    /// and the writer's number, so each writer's sequence is fixed too.
    pub fn for_writer(writer: u64) -> EventGen {
        EventGen::new(SplitMix64::new(SEED ^ writer.wrapping_mul(0xa076_1d64_78bd_642f)).next_u64())
    }

    /// Tag number `i` (`i < TAGS`).
    pub fn tag(&self, i: usize) -> &str {
        &self.tags[i]
    }

    /// A 200-byte JSON-like payload for the event numbered `seq`.
    pub fn payload(&mut self, seq: u64) -> String {
        let mut p = String::with_capacity(PAYLOAD_LEN + 32);
        let customer = self.rng.below_uniform(100_000);
        let cents = self.rng.below_uniform(1_000_000);
        let qty = 1 + self.rng.below_uniform(20);
        p.push_str(&format!(
            r#"{{"seq":{seq},"customer":"cust-{customer:05}","amount":{}.{:02},"currency":"EUR","quantity":{qty},"note":""#,
            cents / 100,
            cents % 100,
        ));
        // Free text up to the closing `"}`.
        while p.len() < PAYLOAD_LEN - 2 {
            if !p.ends_with('"') {
                p.push(' ');
            }
            p.push_str(WORDS[self.rng.below_uniform(WORDS.len() as u64) as usize]);
        }
        p.truncate(PAYLOAD_LEN - 2);
        p.push_str("\"}");
        debug_assert_eq!(p.len(), PAYLOAD_LEN);
        p
    }

    /// The next event: a random type, 3 distinct random tags, a random
    /// stream and a 200-byte payload.
    pub fn next_event(&mut self) -> NewEvent {
        let seq = self.seq;
        self.seq += 1;
        let event_type = EVENT_TYPE_NAMES[self.rng.below_uniform(EVENT_TYPES as u64) as usize];
        let mut picked = [usize::MAX; TAGS_PER_EVENT];
        let mut n = 0;
        while n < TAGS_PER_EVENT {
            let t = self.rng.below_uniform(TAGS as u64) as usize;
            if !picked[..n].contains(&t) {
                picked[n] = t;
                n += 1;
            }
        }
        let stream = format!("stream-{}", self.rng.below_uniform(STREAMS as u64));
        let payload = self.payload(seq);
        NewEvent::new(event_type, payload)
            .tags(picked.iter().map(|&t| self.tags[t].clone()))
            .stream(stream)
    }

    /// The next `n` events, as one batch.
    pub fn batch(&mut self, n: usize) -> Vec<NewEvent> {
        (0..n).map(|_| self.next_event()).collect()
    }
}

// ---------------------------------------------------------------------------
// Where to run
// ---------------------------------------------------------------------------

/// The file-system type (`ext4`, `tmpfs`, …) of the mount holding `path`,
/// from `/proc/self/mounts`; `None` if that cannot be told.
pub fn fs_type(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(_dev), Some(mount_point), Some(kind)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        // /proc/mounts escapes spaces as \040; good enough for a prefix test.
        let mount_point = mount_point.replace("\\040", " ");
        if path.starts_with(&mount_point)
            && best.as_ref().is_none_or(|(l, _)| mount_point.len() > *l)
        {
            best = Some((mount_point.len(), kind.to_owned()));
        }
    }
    best.map(|(_, kind)| kind)
}

/// Whether a file-system type keeps data in memory only (so `fdatasync`
/// measures nothing).
fn in_memory(kind: &str) -> bool {
    matches!(kind, "tmpfs" | "ramfs")
}

/// The directory benchmarks create their scratch directories in: the
/// `GESTA_BENCH_DIR` environment variable if set, else the system temporary
/// directory if it is on a real disk, else `target/bench-tmp` in the
/// workspace (a temporary directory on tmpfs would make every `fdatasync`
/// free and every durable figure meaningless).
pub fn bench_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("GESTA_BENCH_DIR") {
        return PathBuf::from(dir);
    }
    let tmp = std::env::temp_dir();
    match fs_type(&tmp) {
        Some(kind) if !in_memory(&kind) => tmp,
        _ => {
            let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
                || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
                PathBuf::from,
            );
            target.join("bench-tmp")
        }
    }
}

/// A fresh scratch directory under [`bench_root`], deleted when dropped.
pub fn scratch_dir(prefix: &str) -> io::Result<tempfile::TempDir> {
    let root = bench_root();
    std::fs::create_dir_all(&root)?;
    tempfile::Builder::new().prefix(prefix).tempdir_in(root)
}

// ---------------------------------------------------------------------------
// The limit line: 4 KiB write + fdatasync
// ---------------------------------------------------------------------------

/// Size of one probe record: a 4 KiB block.
pub const BLOCK: usize = 4096;
/// One MiB.
pub const MIB: usize = 1 << 20;

/// How a [`SyncProbe`] writes its blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// Each block extends the file, so every `fdatasync` also has to commit
    /// the new size and block allocation (file-system metadata).
    Growing,
    /// Each block overwrites one of a file that was zero-filled (with real
    /// writes, not `fallocate`) and synced beforehand, so `fdatasync` has
    /// only data to flush — what Gesta's preallocated segments aim for.
    PreZeroed,
}

/// One 4 KiB `pwrite` + `fdatasync` at a time, to a file of its own.
#[derive(Debug)]
pub struct SyncProbe {
    file: File,
    mode: SyncMode,
    /// Where the next block goes.
    offset: u64,
    /// The file is restarted (growing) or written from the start again
    /// (pre-zeroed) once `offset` reaches this.
    limit: u64,
    block: Vec<u8>,
    writes: u64,
}

impl SyncProbe {
    /// Bytes a probe file is allowed to reach before it starts over.
    pub const FILE_LEN: u64 = 64 << 20;

    /// Creates the probe's file at `path` (replacing any file there) and, for
    /// [`SyncMode::PreZeroed`], fills it with zeros and syncs it.
    pub fn new(path: &Path, mode: SyncMode) -> io::Result<SyncProbe> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        if mode == SyncMode::PreZeroed {
            zero_fill(&file, Self::FILE_LEN)?;
        }
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        let mut block = vec![0u8; BLOCK];
        fill_block(&mut block, 0);
        Ok(SyncProbe {
            file,
            mode,
            offset: 0,
            limit: Self::FILE_LEN,
            block,
            writes: 0,
        })
    }

    /// The probe's mode.
    pub fn mode(&self) -> SyncMode {
        self.mode
    }

    /// Writes one 4 KiB block and `fdatasync`s it; returns how long the write
    /// and the sync took together. Starting over at the end of the file
    /// (truncating, for a growing file) happens before the clock starts.
    pub fn write_sync(&mut self) -> io::Result<Duration> {
        if self.offset + BLOCK as u64 > self.limit {
            if self.mode == SyncMode::Growing {
                self.file.set_len(0)?;
                self.file.sync_all()?;
            }
            self.offset = 0;
        }
        self.writes += 1;
        // Different bytes each time, so nothing can skip an unchanged block.
        self.block[..8].copy_from_slice(&self.writes.to_le_bytes());
        let start = Instant::now();
        self.file.write_all_at(&self.block, self.offset)?;
        self.file.sync_data()?;
        let took = start.elapsed();
        self.offset += BLOCK as u64;
        Ok(took)
    }

    /// Runs `n` write + sync rounds and returns their latencies.
    pub fn measure(&mut self, n: usize) -> io::Result<Latencies> {
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            samples.push(self.write_sync()?);
        }
        Ok(Latencies::new(samples))
    }
}

/// Writes `len` bytes of zeros to `file` from offset 0 (real blocks, not a
/// hole or an unwritten extent) and syncs data and metadata.
fn zero_fill(file: &File, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; MIB];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(MIB as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    file.sync_all()
}

/// Fills `block` with printable, lightly varying bytes.
fn fill_block(block: &mut [u8], salt: u64) {
    let mut rng = SplitMix64::new(SEED ^ salt);
    for b in block.iter_mut() {
        *b = b'a' + (rng.below_uniform(26) as u8);
    }
}

/// A set of latency samples.
#[derive(Clone, Debug)]
pub struct Latencies {
    /// The samples, sorted ascending.
    sorted: Vec<Duration>,
}

impl Latencies {
    /// Wraps (and sorts) the samples.
    pub fn new(mut samples: Vec<Duration>) -> Latencies {
        samples.sort_unstable();
        Latencies { sorted: samples }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The mean (zero when empty).
    pub fn mean(&self) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        self.sorted.iter().sum::<Duration>() / self.sorted.len() as u32
    }

    /// The `q`-quantile, `0.0 ..= 1.0`, nearest-rank (zero when empty).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = (q.clamp(0.0, 1.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }
}

// ---------------------------------------------------------------------------
// The limit line: group commit
// ---------------------------------------------------------------------------

/// What [`group_commit_probe`] measured.
#[derive(Clone, Copy, Debug)]
pub struct GroupCommitReport {
    /// Commits made durable (threads × commits per thread).
    pub commits: u64,
    /// `fdatasync` calls it took.
    pub syncs: u64,
    /// Wall time from the start signal until the last thread finished.
    pub elapsed: Duration,
}

impl GroupCommitReport {
    /// Durable commits per second.
    pub fn commits_per_sec(&self) -> f64 {
        self.commits as f64 / self.elapsed.as_secs_f64()
    }

    /// Average number of commits that shared one `fdatasync`.
    pub fn commits_per_sync(&self) -> f64 {
        self.commits as f64 / self.syncs.max(1) as f64
    }
}

/// The state shared by the group-commit probe's threads.
#[derive(Debug, Default)]
struct Watermark {
    /// Everything counted in `written` up to this value is durable.
    durable: u64,
    /// Whether some thread is in `fdatasync` right now.
    syncing: bool,
    /// Number of `fdatasync` calls made.
    syncs: u64,
}

/// A leader/follower group-commit log on one pre-zeroed file.
#[derive(Debug)]
struct GroupLog {
    file: File,
    slots: u64,
    /// Next 4 KiB slot to write (mod `slots`).
    next_slot: AtomicU64,
    /// Number of completed writes; a write is counted only after its
    /// `pwrite` returned.
    written: AtomicU64,
    state: Mutex<Watermark>,
    synced: Condvar,
}

impl GroupLog {
    /// Writes one 4 KiB record and returns once an `fdatasync` that started
    /// after the write completed has finished — its own or another
    /// thread's.
    fn commit(&self, block: &[u8]) -> io::Result<()> {
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed) % self.slots;
        self.file.write_all_at(block, slot * BLOCK as u64)?;
        // `ticket` is covered by any sync whose leader reads `written >= ticket`.
        let ticket = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        loop {
            if state.durable >= ticket {
                return Ok(());
            }
            if state.syncing {
                // A sync is running; it may or may not cover this write.
                state = self.synced.wait(state).map_err(|_| poisoned())?;
                continue;
            }
            // Lead: sync everything written so far, for everyone.
            let target = self.written.load(Ordering::SeqCst);
            state.syncing = true;
            drop(state);
            let result = self.file.sync_data();
            state = self.state.lock().map_err(|_| poisoned())?;
            state.syncing = false;
            if result.is_ok() {
                state.durable = state.durable.max(target);
                state.syncs += 1;
            }
            self.synced.notify_all();
            result?;
        }
    }
}

fn poisoned() -> io::Error {
    io::Error::other("a probe thread panicked")
}

/// A leader/follower group-commit log on one pre-zeroed file, reusable
/// across runs (the zero-fill happens once, in [`GroupCommitProbe::new`]).
///
/// In [`run`](GroupCommitProbe::run), each thread writes its 4 KiB record
/// with `pwrite`, then looks at the durable watermark: if it is behind, and
/// nobody is syncing, the thread `fdatasync`s on behalf of every write
/// completed so far and advances the watermark; if someone is syncing, it
/// waits for that sync and looks again. So threads that arrive during a sync
/// share the next one — the best a group-committing store can do on this
/// disk with this many writers.
#[derive(Debug)]
pub struct GroupCommitProbe {
    log: GroupLog,
}

impl GroupCommitProbe {
    /// Creates the probe's file at `path` (replacing any file there),
    /// zero-filled to [`SyncProbe::FILE_LEN`] and synced.
    pub fn new(path: &Path) -> io::Result<GroupCommitProbe> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let len = SyncProbe::FILE_LEN;
        zero_fill(&file, len)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(GroupCommitProbe {
            log: GroupLog {
                file,
                slots: len / BLOCK as u64,
                next_slot: AtomicU64::new(0),
                written: AtomicU64::new(0),
                state: Mutex::new(Watermark::default()),
                synced: Condvar::new(),
            },
        })
    }

    /// `threads` threads, started together, each make `commits_per_thread`
    /// durable 4 KiB commits; returns the commits, the `fdatasync`s they
    /// took and the wall time.
    pub fn run(&self, threads: usize, commits_per_thread: u64) -> io::Result<GroupCommitReport> {
        let log = &self.log;
        let syncs_before = log.state.lock().map_err(|_| poisoned())?.syncs;
        let failed = Mutex::new(None);
        let elapsed = run_parallel(
            threads,
            |t| {
                let mut block = vec![0u8; BLOCK];
                fill_block(&mut block, t as u64 + 1);
                block
            },
            |_, mut block| {
                for i in 0..commits_per_thread {
                    block[..8].copy_from_slice(&i.to_le_bytes());
                    if let Err(e) = log.commit(&block) {
                        if let Ok(mut f) = failed.lock() {
                            f.get_or_insert(e);
                        }
                        return;
                    }
                }
            },
        );
        if let Some(e) = failed.into_inner().map_err(|_| poisoned())? {
            return Err(e);
        }
        let syncs = log.state.lock().map_err(|_| poisoned())?.syncs - syncs_before;
        Ok(GroupCommitReport {
            commits: threads as u64 * commits_per_thread,
            syncs,
            elapsed,
        })
    }
}

/// One-shot [`GroupCommitProbe`]: creates the probe file in `dir`, runs
/// `threads` × `commits_per_thread` commits, and removes the file.
pub fn group_commit_probe(
    dir: &Path,
    threads: usize,
    commits_per_thread: u64,
) -> io::Result<GroupCommitReport> {
    let path = dir.join("group-commit.probe");
    let probe = GroupCommitProbe::new(&path)?;
    let report = probe.run(threads, commits_per_thread)?;
    drop(probe);
    std::fs::remove_file(&path)?;
    Ok(report)
}

// ---------------------------------------------------------------------------
// The limit line: sequential bandwidth
// ---------------------------------------------------------------------------

/// Sequential writes of 1 MiB, each followed by an `fdatasync`, appending to
/// a file of its own.
#[derive(Debug)]
pub struct BandwidthProbe {
    file: File,
    offset: u64,
    chunk: Vec<u8>,
}

impl BandwidthProbe {
    /// The file starts over (truncated, outside the timing) at this size.
    pub const FILE_LEN: u64 = 256 << 20;

    /// Creates the probe's file at `path`, replacing any file there.
    pub fn new(path: &Path) -> io::Result<BandwidthProbe> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        let mut chunk = vec![0u8; MIB];
        fill_block(&mut chunk, 0xb00);
        Ok(BandwidthProbe {
            file,
            offset: 0,
            chunk,
        })
    }

    /// Appends 1 MiB and `fdatasync`s; returns how long that took.
    pub fn write_mib(&mut self) -> io::Result<Duration> {
        if self.offset + MIB as u64 > Self::FILE_LEN {
            self.file.set_len(0)?;
            self.file.sync_all()?;
            self.offset = 0;
        }
        self.chunk[..8].copy_from_slice(&self.offset.to_le_bytes());
        let start = Instant::now();
        self.file.write_all_at(&self.chunk, self.offset)?;
        self.file.sync_data()?;
        let took = start.elapsed();
        self.offset += MIB as u64;
        Ok(took)
    }

    /// Writes `mib` MiB (each synced) and returns the bandwidth in MiB/s.
    pub fn measure(&mut self, mib: usize) -> io::Result<f64> {
        let mut total = Duration::ZERO;
        for _ in 0..mib {
            total += self.write_mib()?;
        }
        Ok(mib as f64 / total.as_secs_f64())
    }
}

// ---------------------------------------------------------------------------
// Running writers in parallel
// ---------------------------------------------------------------------------

/// Runs `work(thread)` on `threads` scoped threads that start together, and
/// returns the wall time from the start signal until the last one finished.
/// `prepare(thread)` runs on each thread before the start signal (outside
/// the timing) and its result is handed to `work`. Panics in a worker are
/// propagated.
pub fn run_parallel<P, T, W>(threads: usize, prepare: P, work: W) -> Duration
where
    P: Fn(usize) -> T + Sync,
    W: Fn(usize, T) + Sync,
{
    let start = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (prepare, work, start) = (&prepare, &work, &start);
                s.spawn(move || {
                    let input = prepare(t);
                    start.wait();
                    work(t, input);
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        for h in handles {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
        began.elapsed()
    })
}

// ---------------------------------------------------------------------------
// Stores of the standard data, built once and cached
// ---------------------------------------------------------------------------

/// Version of the data in a cached store: bump it whenever [`EventGen`],
/// [`fill_store`] or [`cached_store`]'s recipe changes, so that stale caches
/// are rebuilt instead of measured.
pub const DATA_VERSION: u32 = 2;

/// Events per append when a store of the standard data is built.
pub const BUILD_BATCH: usize = 1_000;

/// The options stores of the standard data are built with:
/// [`Durability::Buffered`](gesta::Durability::Buffered) (the log is synced
/// at segment rollover and on close), everything else the default.
pub fn build_options() -> gesta::Options {
    gesta::Options::default().durability(gesta::Durability::Buffered)
}

/// Appends the next `events` events of `generator` to `store`, in batches of
/// [`BUILD_BATCH`].
pub fn fill_store(
    store: &gesta::Store,
    generator: &mut EventGen,
    events: u64,
) -> gesta::Result<()> {
    fill_store_batched(store, generator, events, BUILD_BATCH)
}

/// Appends the next `events` events of `generator` to `store`, `batch`
/// events per append (`batch > 0`), so that each record of the log holds
/// `batch` events.
pub fn fill_store_batched(
    store: &gesta::Store,
    generator: &mut EventGen,
    events: u64,
    batch: usize,
) -> gesta::Result<()> {
    assert!(batch > 0, "batches of at least one event");
    let mut left = events;
    while left > 0 {
        let n = left.min(batch as u64);
        store.append(generator.batch(n as usize))?;
        left -= n;
    }
    Ok(())
}

/// Waits until no frozen memtable is waiting to be written as an index run
/// (the background flush after the memtable filled up), polling every
/// millisecond for at most `timeout`; returns whether it got there. The
/// committer freezes a full memtable just after answering the append that
/// filled it, so a freeze caused by the very last append may not have
/// happened yet when this returns.
pub fn wait_for_index_flush(store: &gesta::Store, timeout: Duration) -> bool {
    let start = Instant::now();
    loop {
        if store.index_shape().frozen == 0 {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The directory cached stores live in: `gesta-bench-cache` under
/// [`bench_root`].
pub fn cache_root() -> PathBuf {
    bench_root().join("gesta-bench-cache")
}

/// The file beside a finished cached store `dir` that holds its event
/// count: beside, not inside, because a store refuses to open a directory
/// holding files a store never does.
fn cache_marker(dir: &Path) -> PathBuf {
    dir.with_extension("complete")
}

/// [`cached_store_batched`] with batches of [`BUILD_BATCH`].
pub fn cached_store(events: u64) -> io::Result<(PathBuf, Option<Duration>)> {
    cached_store_batched(events, BUILD_BATCH)
}

/// A closed store holding the first `events` events of the standard data
/// ([`EventGen::new`]`(`[`SEED`]`)`), appended `batch` per append with
/// [`build_options`], then [`flush_index`](gesta::Store::flush_index)ed and
/// closed cleanly — so its whole index is in on-disk runs.
///
/// The store is kept in
/// [`cache_root`]`/std-<events>-b<batch>-v<DATA_VERSION>` and
/// reused by later runs. It is built (in a temporary directory, renamed into
/// place when complete, so an interrupted build is never used) when it is
/// missing, lacks its completion marker, or does not open with `events`
/// events (e.g. after an on-disk format change). Callers that modify a store
/// must work on a copy ([`copy_dir`]). Returns the directory and, when it
/// was built now, how long that took.
pub fn cached_store_batched(events: u64, batch: usize) -> io::Result<(PathBuf, Option<Duration>)> {
    let root = cache_root();
    std::fs::create_dir_all(&root)?;
    let dir = root.join(format!("std-{events}-b{batch}-v{DATA_VERSION}"));
    let marker = cache_marker(&dir);
    let marker_ok = std::fs::read_to_string(&marker).is_ok_and(|s| s.trim() == events.to_string());
    if marker_ok {
        let head = gesta::Store::open_with(&dir, build_options()).and_then(|s| {
            let head = s.head();
            s.close().map(|()| head)
        });
        if matches!(head, Ok(h) if h == events) {
            return Ok((dir, None));
        }
    }
    let _ = std::fs::remove_file(&marker);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let started = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix(&format!("building-std-{events}-b{batch}-"))
        .tempdir_in(&root)?;
    let store = gesta::Store::open_with(tmp.path(), build_options()).map_err(io::Error::other)?;
    let mut generator = EventGen::new(SEED);
    fill_store_batched(&store, &mut generator, events, batch).map_err(io::Error::other)?;
    store.flush_index().map_err(io::Error::other)?;
    store.close().map_err(io::Error::other)?;
    let built = tmp.keep();
    if let Err(e) = std::fs::rename(&built, &dir) {
        // Another process may have finished the same store first.
        std::fs::remove_dir_all(&built)?;
        if !marker.exists() {
            return Err(e);
        }
        return Ok((dir, Some(started.elapsed())));
    }
    std::fs::write(&marker, events.to_string())?;
    Ok((dir, Some(started.elapsed())))
}

/// Copies the directory tree `from` to `to` (created; must not exist yet),
/// file by file with `std::fs::copy`, and syncs every file and directory of
/// the copy (so its write-back does not overlap what is measured next);
/// returns the bytes copied. Copying a store that is open and idle gives the
/// image a crashed process leaves.
pub fn copy_dir(from: &Path, to: &Path) -> io::Result<u64> {
    std::fs::create_dir(to)?;
    let mut bytes = 0;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            bytes += copy_dir(&entry.path(), &target)?;
        } else {
            bytes += std::fs::copy(entry.path(), &target)?;
            File::open(&target)?.sync_all()?;
        }
    }
    File::open(to)?.sync_all()?;
    Ok(bytes)
}

/// The total size of the files under `dir`, in bytes.
pub fn dir_size(dir: &Path) -> io::Result<u64> {
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        bytes += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(bytes)
}

/// Reads every file under `dir` once, sequentially and into a small
/// buffer, so that their pages are in the page cache; returns the bytes
/// read. Benchmarks of warm reads call it first: on a machine that reclaims
/// idle page cache (or after a reboot) the first reads of a cached store
/// otherwise go to the disk, and through a memory map a single page fault
/// may read as much as the device's read-ahead (8 MiB on some VMs).
pub fn warm_page_cache(dir: &Path) -> io::Result<u64> {
    use std::io::Read;
    let mut buf = vec![0u8; MIB];
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            bytes += warm_page_cache(&entry.path())?;
            continue;
        }
        let mut file = File::open(entry.path())?;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
        }
    }
    Ok(bytes)
}

/// What one benchmark timed over all its runs (warm-up included), for the
/// summary a bench target prints after criterion's output. Each target
/// uses the fields that fit its workloads and leaves the rest at zero.
#[derive(Default)]
pub struct Tally {
    /// Elements (events, commits or bytes) done.
    pub elements: u64,
    /// Time they took.
    pub elapsed: Duration,
    /// Each timed call's (elements, time), for the median rate.
    pub calls: Vec<(u64, Duration)>,
    /// Per-operation latencies, where the benchmark records them.
    pub latencies: Vec<Duration>,
    /// `fdatasync`s taken, for the group-commit probe.
    pub syncs: u64,
    /// Bytes on disk per event, for Gesta workloads.
    pub bytes_per_event: Option<f64>,
    /// Events the queries returned, for the mean hits per query.
    pub hits: u64,
}

impl Tally {
    /// Elements per second over all calls.
    pub fn mean_rate(&self) -> f64 {
        self.elements as f64 / self.elapsed.as_secs_f64()
    }

    /// The work-weighted median of the calls' rates: the rate that half of
    /// the elements were done faster than, half slower. Unlike the mean it
    /// shrugs off a burst of someone else's I/O that slows down less than
    /// half of the work (and the few elements of tiny warm-up calls barely
    /// count).
    pub fn median_rate(&self) -> f64 {
        let mut rates: Vec<(f64, u64)> = self
            .calls
            .iter()
            .filter(|(n, t)| *n > 0 && !t.is_zero())
            .map(|&(n, t)| (n as f64 / t.as_secs_f64(), n))
            .collect();
        if rates.is_empty() {
            return self.mean_rate();
        }
        rates.sort_by(|a, b| a.0.total_cmp(&b.0));
        let half = rates.iter().map(|r| r.1).sum::<u64>().div_ceil(2);
        let mut seen = 0;
        for &(rate, n) in &rates {
            seen += n;
            if seen >= half {
                return rate;
            }
        }
        rates[rates.len() - 1].0
    }

    /// Records one timed call.
    pub fn add(&mut self, elements: u64, elapsed: Duration) {
        self.elements += elements;
        self.elapsed += elapsed;
        self.calls.push((elements, elapsed));
    }
}

/// The size of the files under `dir`, not counting zeros at the end of
/// each file (preallocated space that holds no data yet).
pub fn size_without_trailing_zeros(dir: &Path) -> u64 {
    fn trailing_zeros(p: &Path, len: u64) -> u64 {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(p) else {
            return 0;
        };
        let mut buf = vec![0u8; 1 << 16];
        let mut end = len;
        while end > 0 {
            let start = end.saturating_sub(buf.len() as u64);
            let chunk = &mut buf[..(end - start) as usize];
            if f.seek(SeekFrom::Start(start)).is_err() || f.read_exact(chunk).is_err() {
                return 0;
            }
            if let Some(i) = chunk.iter().rposition(|&b| b != 0) {
                return len - (start + i as u64 + 1);
            }
            end = start;
        }
        len
    }
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| size_without_trailing_zeros(&e.path()))
                    .sum()
            })
            .unwrap_or(0),
        Ok(m) => m.len() - trailing_zeros(dir, m.len()),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_follow_the_standard_shape_and_are_deterministic() {
        let mut a = EventGen::new(SEED);
        let mut b = EventGen::new(SEED);
        for _ in 0..1000 {
            let e = a.next_event();
            assert_eq!(e, b.next_event());
            assert_eq!(e.data.len(), PAYLOAD_LEN);
            assert!(e.data.starts_with(b"{\"seq\":") && e.data.ends_with(b"\"}"));
            assert_eq!(e.tags.len(), TAGS_PER_EVENT);
            assert!(e.tags.iter().all(|t| t.contains(':')));
            assert!(e.tags[0] != e.tags[1] && e.tags[1] != e.tags[2] && e.tags[0] != e.tags[2]);
            assert!(EVENT_TYPE_NAMES.contains(&e.event_type.as_str()));
            assert!(
                e.stream
                    .as_deref()
                    .is_some_and(|s| s.starts_with("stream-"))
            );
        }
        let g = EventGen::new(SEED);
        let distinct: std::collections::HashSet<_> = (0..TAGS).map(|i| g.tag(i)).collect();
        assert_eq!(distinct.len(), TAGS);
    }

    #[test]
    fn latency_quantiles() {
        let l = Latencies::new((1..=100).rev().map(Duration::from_micros).collect());
        assert_eq!(l.quantile(0.5), Duration::from_micros(50));
        assert_eq!(l.quantile(0.99), Duration::from_micros(99));
        assert_eq!(l.quantile(1.0), Duration::from_micros(100));
        assert_eq!(
            l.mean(),
            Duration::from_micros(50) + Duration::from_nanos(500)
        );
    }

    #[test]
    fn probes_run() {
        let dir = scratch_dir("gesta-probe-test").unwrap();
        for mode in [SyncMode::Growing, SyncMode::PreZeroed] {
            let mut p = SyncProbe::new(&dir.path().join(format!("{mode:?}")), mode).unwrap();
            assert_eq!(p.measure(3).unwrap().len(), 3);
        }
        let r = group_commit_probe(dir.path(), 4, 5).unwrap();
        assert_eq!(r.commits, 20);
        assert!(r.syncs >= 1 && r.syncs <= 20);
        let mut bw = BandwidthProbe::new(&dir.path().join("bw")).unwrap();
        assert!(bw.measure(2).unwrap() > 0.0);
    }
}
