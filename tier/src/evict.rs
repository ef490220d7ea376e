//! Sealed segments that live in the bucket only: [`BucketSegments`] reads
//! an evicted segment's byte ranges from the chunk objects the bucket's
//! checkpoint names for it, through a bounded cache, and [`Evictor`]
//! removes the local files of sealed segments the bucket holds, keeping a
//! hot set of the newest ones (docs/TIER.md, "Eviction").

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gesta::{EvictRefusal, EvictedSegment, RemoteSegments, Store};

use crate::checkpoint::{Checkpoint, FileEntry};
use crate::chunks::{fetch_piece, file_crc, pieces};
use crate::error::{Error, Result};
use crate::fence::load_checkpoint;
use crate::location::Location;
use crate::runtime;

/// How [`BucketSegments`] reads.
#[derive(Clone, Debug)]
pub struct BucketOptions {
    /// The most bytes of fetched blocks kept in memory (least recently
    /// used go first). Default 256 MiB.
    pub cache_bytes: u64,
    /// The unit of the cache: a chunk object no larger is fetched whole
    /// (and checked against its CRC-32); a larger one in blocks of this
    /// many bytes, by ranged GETs (checked by the records' own checksums)
    /// — one GET for each run of adjacent blocks a read lacks, so a
    /// sequential read costs a GET per read of the engine (256 KiB) and a
    /// point read one block. Default 64 KiB.
    pub block_bytes: u64,
    /// A request for missing blocks reads ahead, within the chunk, to at
    /// least this many bytes (the blocks after the ones asked for go to
    /// the cache): over object storage a request's latency costs more
    /// than its bytes, and a point read's head, event table and event
    /// then usually come in one request. Default 256 KiB; 0 reads only
    /// what is asked for.
    pub fetch_bytes: u64,
    /// How many times a request that failed (not a corrupt object) is
    /// made in all, with exponential backoff. Default 4.
    pub attempts: u32,
    /// The first backoff, doubled after each failure. Default 100 ms.
    pub backoff: Duration,
}

impl Default for BucketOptions {
    fn default() -> Self {
        BucketOptions {
            cache_bytes: 256 << 20,
            block_bytes: 64 << 10,
            fetch_bytes: 256 << 10,
            attempts: 4,
            backoff: Duration::from_millis(100),
        }
    }
}

/// What [`BucketSegments`] did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BucketStats {
    /// Bytes fetched from the bucket.
    pub bytes_fetched: u64,
    /// GET requests that succeeded.
    pub requests: u64,
    /// Blocks served from the cache.
    pub hits: u64,
    /// Blocks fetched.
    pub misses: u64,
    /// Requests that failed (each retry counted).
    pub failures: u64,
    /// Bytes in the cache now.
    pub cached_bytes: u64,
}

/// The blocks of the cache, by chunk key then block index, each with its
/// tick of last use; a lookup allocates nothing.
#[derive(Default)]
struct Lru {
    blocks: HashMap<String, HashMap<u64, (Bytes, u64)>>,
    /// (chunk key, block index) by tick of last use.
    order: BTreeMap<u64, (String, u64)>,
    tick: u64,
    bytes: u64,
}

impl Lru {
    fn get(&mut self, key: &str, block: u64) -> Option<Bytes> {
        let (data, at) = self.blocks.get_mut(key)?.get_mut(&block)?;
        let used = self.order.remove(at)?;
        self.tick += 1;
        *at = self.tick;
        self.order.insert(self.tick, used);
        Some(data.clone())
    }

    fn contains(&self, key: &str, block: u64) -> bool {
        self.blocks.get(key).is_some_and(|b| b.contains_key(&block))
    }

    fn put(&mut self, key: &str, block: u64, data: Bytes, bound: u64) {
        if data.len() as u64 > bound || self.contains(key, block) {
            return;
        }
        self.tick += 1;
        self.bytes += data.len() as u64;
        self.order.insert(self.tick, (key.to_owned(), block));
        self.blocks
            .entry(key.to_owned())
            .or_default()
            .insert(block, (data, self.tick));
        while self.bytes > bound {
            let Some((_, (oldest, i))) = self.order.pop_first() else {
                break;
            };
            if let Some(blocks) = self.blocks.get_mut(&oldest) {
                if let Some((data, _)) = blocks.remove(&i) {
                    self.bytes -= data.len() as u64;
                }
                if blocks.is_empty() {
                    self.blocks.remove(&oldest);
                }
            }
        }
    }
}

/// The seam through which a store reads its evicted segments
/// ([`gesta::Options::remote_segments`]), over the bucket it is shipped
/// to: the checkpoint names each shipped file's chunk objects with their
/// CRC-32s; a range of an evicted segment is read from them, in blocks,
/// through an LRU cache bounded in bytes.
///
/// Checks: the checkpoint's entry for the segment must have the length
/// and (combined) CRC-32 the segment's eviction marker records, else the
/// read fails (the bucket holds another file under that name); a chunk
/// fetched whole is checked against its CRC-32 (and digest); a block of a
/// larger chunk is checked by the records' and events' own checksums
/// when the engine decodes it, and a whole segment (read on open, when
/// the index does not cover it) against the marker's CRC-32. Damage is
/// never cached and never served. A failed request is retried with
/// backoff ([`BucketOptions`]); then the read fails with an I/O error
/// (`InvalidData` for damage), which the store reports as
/// [`gesta::Error::Remote`] naming the segment.
///
/// Requests are made one at a time, on a thread of its own: concurrent
/// reads of evicted segments that miss the cache wait for each other.
pub struct BucketSegments {
    location: Location,
    options: BucketOptions,
    fetcher: Fetcher,
    checkpoint: Mutex<Option<Arc<Checkpoint>>>,
    /// Entries of the checkpoint above already checked against a marker,
    /// by the segment's first position.
    verified: Mutex<HashMap<u64, (EvictedSegment, Arc<FileEntry>)>>,
    cache: Mutex<Lru>,
    bytes_fetched: AtomicU64,
    requests: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    failures: AtomicU64,
}

impl std::fmt::Debug for BucketSegments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketSegments")
            .field("location", &self.location)
            .field("stats", &self.stats())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a failed request may succeed if made again.
fn transient(e: &Error) -> bool {
    matches!(e, Error::Bucket { source, .. } if !matches!(source, object_store::Error::NotFound { .. }))
}

fn not_found(e: &Error) -> bool {
    matches!(
        e,
        Error::Bucket {
            source: object_store::Error::NotFound { .. },
            ..
        }
    )
}

fn to_io(e: Error) -> io::Error {
    let kind = match &e {
        Error::Corrupt { .. } => io::ErrorKind::InvalidData,
        e if not_found(e) => io::ErrorKind::NotFound,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e.to_string())
}

impl BucketSegments {
    /// Reads evicted segments from `location` with the default options.
    pub fn new(location: Location) -> Result<BucketSegments> {
        BucketSegments::with_options(location, BucketOptions::default())
    }

    /// Reads evicted segments from `location`.
    pub fn with_options(location: Location, options: BucketOptions) -> Result<BucketSegments> {
        if options.block_bytes == 0 || options.attempts == 0 {
            return Err(Error::InvalidInput(
                "block_bytes and attempts must be at least 1".into(),
            ));
        }
        Ok(BucketSegments {
            location,
            options,
            fetcher: Fetcher::start()?,
            checkpoint: Mutex::new(None),
            verified: Mutex::new(HashMap::new()),
            cache: Mutex::new(Lru::default()),
            bytes_fetched: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }

    /// What it did so far.
    pub fn stats(&self) -> BucketStats {
        BucketStats {
            bytes_fetched: self.bytes_fetched.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            cached_bytes: lock(&self.cache).bytes,
        }
    }

    /// Empties the cache (the next reads fetch again).
    pub fn clear_cache(&self) {
        *lock(&self.cache) = Lru::default();
    }

    /// Runs `f` with retries and backoff while it fails transiently.
    fn retried<T, F>(&self, f: impl Fn() -> F) -> Result<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        let mut wait = self.options.backoff;
        let mut attempt = 1;
        loop {
            match self.fetcher.run(f()) {
                Ok(v) => {
                    self.requests.fetch_add(1, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(e) => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    if !transient(&e) || attempt >= self.options.attempts {
                        return Err(e);
                    }
                    log::warn!(
                        "gesta-tier: a read of an evicted segment failed (attempt {attempt}), retrying in {wait:?}: {e}"
                    );
                    std::thread::sleep(wait);
                    wait *= 2;
                    attempt += 1;
                }
            }
        }
    }

    /// The checkpoint, read from the bucket if `fresh` or not read yet.
    fn checkpoint(&self, fresh: bool) -> Result<Arc<Checkpoint>> {
        if !fresh && let Some(c) = lock(&self.checkpoint).clone() {
            return Ok(c);
        }
        let c = Arc::new(self.retried(|| {
            let location = self.location.clone();
            async move { load_checkpoint(&location).await }
        })?);
        *lock(&self.checkpoint) = Some(c.clone());
        lock(&self.verified).clear();
        Ok(c)
    }

    /// The checkpoint's entry for the evicted segment, checked against its
    /// marker; the checkpoint is read again once if it lacks it or holds
    /// other bytes (a newer one may have been written meanwhile).
    fn entry(&self, segment: &EvictedSegment, fresh: bool) -> Result<Arc<FileEntry>> {
        if !fresh
            && let Some((marker, entry)) = lock(&self.verified).get(&segment.first_position)
            && marker == segment
        {
            return Ok(entry.clone());
        }
        let rel = format!("wal/{}", segment.file_name());
        let mut fresh = fresh;
        loop {
            let checkpoint = self.checkpoint(fresh)?;
            let problem = match checkpoint.file(&rel) {
                Some(e) if e.len == segment.len && file_crc(e) == segment.crc => {
                    let entry = Arc::new(e.clone());
                    lock(&self.verified)
                        .insert(segment.first_position, (segment.clone(), entry.clone()));
                    return Ok(entry);
                }
                Some(e) => format!(
                    "the bucket's checkpoint holds {rel} with {} bytes, CRC-32 {:08x}; the evicted segment had {} bytes, CRC-32 {:08x}",
                    e.len,
                    file_crc(e),
                    segment.len,
                    segment.crc
                ),
                None => format!("the bucket's checkpoint does not hold {rel}"),
            };
            if fresh {
                return Err(Error::Corrupt {
                    key: self.location.key(&rel).to_string(),
                    reason: problem,
                });
            }
            fresh = true;
        }
    }

    /// Bytes `within` of one chunk of `entry`, from the cache or the
    /// bucket, in blocks.
    fn read_chunk(
        &self,
        chunk: &crate::checkpoint::Chunk,
        within: std::ops::Range<u64>,
    ) -> Result<Bytes> {
        let b = self.options.block_bytes;
        let block = |i: u64| {
            if chunk.len <= b {
                0..chunk.len
            } else {
                i * b..((i + 1) * b).min(chunk.len)
            }
        };
        let (first, last) = if chunk.len <= b {
            (0, 0)
        } else {
            (within.start / b, (within.end - 1) / b)
        };
        let mut blocks: Vec<Option<Bytes>> = (first..=last)
            .map(|i| lock(&self.cache).get(&chunk.key, i))
            .collect();
        let cached = blocks.iter().filter(|b| b.is_some()).count();
        self.hits.fetch_add(cached as u64, Ordering::Relaxed);
        // Each run of adjacent missing blocks is one request (a sequential
        // read costs one GET per read, a point read one small block).
        let mut i = first;
        while i <= last {
            if blocks[(i - first) as usize].is_some() {
                i += 1;
                continue;
            }
            let mut j = i;
            while j < last && blocks[(j + 1 - first) as usize].is_none() {
                j += 1;
            }
            // Read ahead, within the chunk, to at least `fetch_bytes`: a
            // point read's head, event table and event usually come in
            // one request.
            let end = j;
            let blocks_in_chunk = chunk.len.div_ceil(b);
            while j >= last
                && (j + 1 - i) * b < self.options.fetch_bytes
                && j + 1 < blocks_in_chunk
                && !lock(&self.cache).contains(&chunk.key, j + 1)
            {
                j += 1;
            }
            let run = block(i).start..block(j).end;
            let data = self.retried(|| {
                let (location, chunk, r) = (self.location.clone(), chunk.clone(), run.clone());
                async move { fetch_piece(&location, &chunk, r).await }
            })?;
            self.misses.fetch_add(j - i + 1, Ordering::Relaxed);
            self.bytes_fetched
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            for k in i..=j {
                let r = block(k);
                let piece =
                    data.slice((r.start - run.start) as usize..(r.end - run.start) as usize);
                lock(&self.cache).put(&chunk.key, k, piece.clone(), self.options.cache_bytes);
                if k <= end {
                    blocks[(k - first) as usize] = Some(piece);
                }
            }
            i = end + 1;
        }
        let mut parts = Vec::with_capacity(blocks.len());
        for (n, data) in blocks.into_iter().enumerate() {
            let range = block(first + n as u64);
            let data = data.unwrap_or_default();
            let lo = within.start.max(range.start) - range.start;
            let hi = within.end.min(range.end) - range.start;
            parts.push(data.slice(lo as usize..hi as usize));
        }
        Ok(join(parts))
    }

    fn read_range(&self, segment: &EvictedSegment, start: u64, end: u64) -> Result<Bytes> {
        let mut fresh = false;
        loop {
            let entry = self.entry(segment, fresh)?;
            let mut parts = Vec::new();
            let mut gone = None;
            for (chunk, within) in pieces(&entry, start..end) {
                match self.read_chunk(chunk, within) {
                    Ok(d) => parts.push(d),
                    // A newer checkpoint may name other chunks for the same
                    // bytes (the file was shipped again); read it once more.
                    Err(e) if not_found(&e) && !fresh => {
                        gone = Some(e);
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if gone.is_none() {
                return Ok(join(parts));
            }
            fresh = true;
        }
    }
}

/// A job for the fetcher's thread.
type Job = Box<dyn FnOnce(&tokio::runtime::Runtime) + Send>;

/// The thread that makes [`BucketSegments`]' requests, on a runtime of
/// its own: a read of an evicted segment may come from any thread, the
/// shipper's runtime included (its round's backup reads the log), where
/// blocking on another runtime is not allowed.
struct Fetcher {
    jobs: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Fetcher {
    fn start() -> Result<Fetcher> {
        let runtime = runtime()?;
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("gesta-tier-fetch".into())
            .spawn(move || {
                for job in rx {
                    job(&runtime);
                }
            })
            .map_err(|e| Error::Io {
                path: PathBuf::from("(fetch thread)"),
                source: e,
            })?;
        Ok(Fetcher {
            jobs: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Runs `future` on the fetcher's thread and waits for its result.
    fn run<T: Send + 'static>(
        &self,
        future: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::new(move |runtime| {
            let _ = reply.send(runtime.block_on(future));
        });
        let sent = lock(&self.jobs).as_ref().map(|tx| tx.send(job).is_ok());
        if sent != Some(true) {
            return Err(Error::Stopped);
        }
        answer.recv().unwrap_or(Err(Error::Stopped))
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        lock(&self.jobs).take();
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

fn join(parts: Vec<Bytes>) -> Bytes {
    match parts.len() {
        0 => Bytes::new(),
        1 => parts.into_iter().next().unwrap_or_default(),
        _ => {
            let mut out = Vec::with_capacity(parts.iter().map(Bytes::len).sum());
            for p in parts {
                out.extend_from_slice(&p);
            }
            Bytes::from(out)
        }
    }
}

impl RemoteSegments for BucketSegments {
    fn read(&self, segment: &EvictedSegment, start: u64, end: u64) -> io::Result<Bytes> {
        self.read_range(segment, start, end).map_err(to_io)
    }
}

/// Which sealed segments stay local.
#[derive(Clone, Debug)]
pub struct EvictPolicy {
    /// The newest this many sealed segments are never evicted. Default 2.
    pub keep_newest: usize,
    /// Nor are the newest sealed segments whose bytes, added up from the
    /// newest, stay within this bound. Default 0.
    pub keep_bytes: u64,
}

impl Default for EvictPolicy {
    fn default() -> Self {
        EvictPolicy {
            keep_newest: 2,
            keep_bytes: 0,
        }
    }
}

/// What one [`Evictor::run`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EvictReport {
    /// The first positions of the segments evicted.
    pub evicted: Vec<u64>,
    /// Their bytes (freed locally).
    pub bytes: u64,
    /// Segments the policy would evict that the bucket's checkpoint does
    /// not hold (not shipped yet) or holds with other bytes: left local.
    pub not_in_bucket: usize,
    /// Compressed segments, left local.
    pub compressed: usize,
    /// Sealed segments evicted already.
    pub already_evicted: usize,
}

/// Evicts the sealed segments of a store that its bucket holds, keeping a
/// hot set ([`EvictPolicy`]) local. The store must have been opened with
/// a [`BucketSegments`] over the same location as its remote segments.
///
/// A segment is evicted only if the bucket's latest checkpoint names it
/// with the segment's length and every one of its chunks' CRC-32s (and
/// digests) matches the local bytes, checked under the engine's lock that
/// keeps compaction from rewriting the segment meanwhile (a shipper with
/// [`ShipOptions::evict`](crate::ShipOptions::evict) does the same after
/// each round, against the checkpoint it has just written). The shipper's
/// rounds keep an evicted segment's entry in every later checkpoint (see
/// docs/TIER.md), so its chunks are never deleted while it is evicted.
pub struct Evictor {
    location: Location,
    policy: EvictPolicy,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Evictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evictor")
            .field("location", &self.location)
            .field("policy", &self.policy)
            .finish()
    }
}

impl Evictor {
    /// An evictor for stores shipped to `location`.
    pub fn new(location: Location, policy: EvictPolicy) -> Result<Evictor> {
        Ok(Evictor {
            location,
            policy,
            runtime: runtime()?,
        })
    }

    /// Evicts what the policy lets go and the bucket holds. It blocks on
    /// a request for the checkpoint: call it from a thread, not from an
    /// async task.
    pub fn run(&self, store: &Store) -> Result<EvictReport> {
        let checkpoint = self.runtime.block_on(load_checkpoint(&self.location))?;
        evict_with(store, &self.policy, &checkpoint)
    }
}

/// [`Evictor::run`] against `checkpoint`, the bucket's latest.
pub(crate) fn evict_with(
    store: &Store,
    policy: &EvictPolicy,
    checkpoint: &Checkpoint,
) -> Result<EvictReport> {
    let sealed = store.sealed_segments();
    let mut report = EvictReport::default();
    let mut newer_bytes = 0u64;
    for (rank, segment) in sealed.iter().rev().enumerate() {
        newer_bytes += segment.len;
        if rank < policy.keep_newest || newer_bytes <= policy.keep_bytes {
            continue;
        }
        if segment.evicted {
            report.already_evicted += 1;
            continue;
        }
        if segment.compressed {
            report.compressed += 1;
            continue;
        }
        let rel = format!("wal/{}", gesta_wal_name(segment.first_position));
        let Some(entry) = checkpoint.file(&rel).filter(|e| e.len == segment.len) else {
            report.not_in_bucket += 1;
            continue;
        };
        let mut held = |bytes: &[u8]| {
            bytes.len() as u64 == entry.len
                && entry
                    .chunks
                    .iter()
                    .all(|c| c.holds(&bytes[c.offset as usize..(c.offset + c.len) as usize]))
        };
        match store.evict_segment(segment.first_position, &mut held)? {
            Ok(marker) => {
                report.evicted.push(marker.first_position);
                report.bytes += marker.len;
            }
            Err(EvictRefusal::NotHeld) => report.not_in_bucket += 1,
            Err(EvictRefusal::AlreadyEvicted) => report.already_evicted += 1,
            Err(EvictRefusal::Compressed) => report.compressed += 1,
            Err(_) => {}
        }
    }
    Ok(report)
}

/// A plain segment's file name (`<first-position>.seg`).
fn gesta_wal_name(first_position: u64) -> String {
    format!("{first_position:020}.seg")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_the_most_recently_used_blocks_within_its_bound() {
        let mut lru = Lru::default();
        for i in 0..4 {
            lru.put("k", i, Bytes::from(vec![0u8; 10]), 30);
        }
        // 0 went first; 1 is used, so 2 goes next.
        assert!(lru.get("k", 0).is_none());
        assert!(lru.get("k", 1).is_some());
        lru.put("other", 4, Bytes::from(vec![0u8; 10]), 30);
        assert!(lru.get("k", 2).is_none());
        assert!(lru.get("k", 1).is_some() && lru.get("k", 3).is_some());
        assert!(lru.contains("other", 4) && !lru.contains("k", 4));
        assert_eq!(lru.bytes, 30);
        // A block larger than the bound is not kept.
        lru.put("k", 9, Bytes::from(vec![0u8; 31]), 30);
        assert!(!lru.contains("k", 9));
        // Evicting a chunk's last block forgets the chunk.
        lru.put("k", 10, Bytes::from(vec![0u8; 30]), 30);
        assert_eq!(lru.blocks.len(), 1);
    }
}
