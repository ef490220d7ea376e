//! The workloads of `BENCH.md`, each run against one `&dyn EventStore`.
//!
//! Every write workload stops early when it has run longer than its time
//! budget (a slow store must not hold up the whole comparison); its rate is
//! then over what it did, and the figures say how many operations that was.

use std::hint::black_box;
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gesta::{AppendOptions, Error, EventStore, Query, QueryItem, ReadOptions};

use super::HarnessError;
use crate::{EVENT_TYPE_NAMES, EventGen, Latencies, SEED, SplitMix64, TAGS, run_parallel};

/// Writer threads of W2, W4 and W5.
pub const WRITERS: usize = 16;
/// Events per append in W3.
pub const W3_BATCH: usize = 100;
/// Events per append when a store is loaded for the read workloads: the
/// same as W3's, so that the read store has the same shape whether or not
/// W3 ran.
pub const LOAD_BATCH: usize = W3_BATCH;
/// Distinct tags (each with an event type) the queries cycle through.
pub const QUERY_TAGS: usize = 1_000;

/// What one workload measured on one store.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Operations (events, commits or queries) done.
    pub ops: u64,
    /// Wall time (or, for one writer, summed operation time).
    pub elapsed: Duration,
    /// Per-operation latencies, where recorded.
    pub latencies: Option<Latencies>,
    /// Conflicts (W5) or hits (queries), where counted.
    pub extra: u64,
    /// Whether the time budget ran out before all operations were done.
    pub cut_short: bool,
}

impl Outcome {
    /// Operations per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q`-quantile latency in microseconds, if recorded.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        self.latencies
            .as_ref()
            .filter(|l| !l.is_empty())
            .map(|l| l.quantile(q).as_secs_f64() * 1e6)
    }
}

/// Records the first error any worker thread hit.
#[derive(Default)]
struct FirstError(Mutex<Option<HarnessError>>);

impl FirstError {
    fn set(&self, e: HarnessError) {
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(e);
        }
    }

    fn is_set(&self) -> bool {
        self.0.lock().map(|s| s.is_some()).unwrap_or(true)
    }

    fn into_result(self) -> Result<(), HarnessError> {
        match self.0.into_inner() {
            Ok(Some(e)) => Err(e),
            Ok(None) => Ok(()),
            Err(_) => Err("a worker thread panicked".into()),
        }
    }
}

/// W1: one writer, one event per append, `n` appends.
pub fn w1(store: &dyn EventStore, n: u64, budget: Duration) -> Result<Outcome, HarnessError> {
    let mut generator = EventGen::new(SEED ^ 1);
    let events: Vec<_> = (0..n).map(|_| generator.next_event()).collect();
    let mut lat = Vec::with_capacity(n as usize);
    let mut total = Duration::ZERO;
    let mut cut_short = false;
    for event in events {
        if total > budget {
            cut_short = true;
            break;
        }
        let start = Instant::now();
        store.append(vec![event])?;
        let took = start.elapsed();
        total += took;
        lat.push(took);
    }
    Ok(Outcome {
        ops: lat.len() as u64,
        elapsed: total,
        latencies: Some(Latencies::new(lat)),
        extra: 0,
        cut_short,
    })
}

/// W2 (`conditional` false) and W4 (true): [`WRITERS`] threads append
/// `total` events in all, one per append; each event also carries a tag its
/// thread owns, and in W4 each append fails if anything with that tag was
/// appended after the thread's previous append (which never happens).
pub fn writers(
    store: &dyn EventStore,
    total: u64,
    conditional: bool,
    budget: Duration,
) -> Result<Outcome, HarnessError> {
    let per_thread = total.div_ceil(WRITERS as u64);
    let lats = Mutex::new(Vec::with_capacity(total as usize));
    let done = AtomicU64::new(0);
    let failed = FirstError::default();
    let cut = AtomicU64::new(0);
    let salt = if conditional { 4 } else { 2 };
    let elapsed = run_parallel(
        WRITERS,
        |t| {
            let own = format!("owner:{t}");
            let mut generator = EventGen::for_writer((salt << 8) | t as u64);
            let events: Vec<_> = (0..per_thread)
                .map(|_| generator.next_event().tag(own.clone()))
                .collect();
            (own, events)
        },
        |_, (own, events)| {
            let started = Instant::now();
            let mut lat = Vec::with_capacity(events.len());
            let mut last = None;
            for event in events {
                if started.elapsed() > budget {
                    cut.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                if failed.is_set() {
                    break;
                }
                let options = if conditional {
                    AppendOptions::new().fail_if(Query::tag(&own), last)
                } else {
                    AppendOptions::new()
                };
                let start = Instant::now();
                let result = store.append_with(vec![event], options);
                lat.push(start.elapsed());
                match result {
                    Ok(appended) => last = Some(appended.last),
                    Err(Error::ConditionFailed { position }) => {
                        failed.set(
                            format!("W4: {own} conflicted at {position}, which cannot happen")
                                .into(),
                        );
                        break;
                    }
                    Err(e) => {
                        failed.set(e.into());
                        break;
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            if let Ok(mut all) = lats.lock() {
                all.extend(lat);
            }
        },
    );
    failed.into_result()?;
    Ok(Outcome {
        ops: done.into_inner(),
        elapsed,
        latencies: Some(Latencies::new(
            lats.into_inner().map_err(|_| "latency lock poisoned")?,
        )),
        extra: 0,
        cut_short: cut.into_inner() > 0,
    })
}

/// W5: [`WRITERS`] threads each commit `total / WRITERS` events carrying
/// one shared tag, each by read–decide–append: read the newest event with
/// the tag, then append on the condition that no event with the tag came
/// after it, retrying on conflict. `ops` counts commits, `extra` conflicts.
pub fn contended(
    store: &dyn EventStore,
    total: u64,
    budget: Duration,
) -> Result<Outcome, HarnessError> {
    const SHARED: &str = "contended:w5";
    let per_thread = total.div_ceil(WRITERS as u64);
    let committed = AtomicU64::new(0);
    let conflicts = AtomicU64::new(0);
    let failed = FirstError::default();
    let cut = AtomicU64::new(0);
    let elapsed = run_parallel(
        WRITERS,
        |t| {
            let mut generator = EventGen::for_writer((5 << 8) | t as u64);
            (0..per_thread)
                .map(|_| generator.next_event().tag(SHARED))
                .collect::<Vec<_>>()
        },
        |_, events| {
            let query = Query::tag(SHARED);
            let started = Instant::now();
            'events: for event in events {
                loop {
                    if started.elapsed() > budget {
                        cut.fetch_add(1, Ordering::Relaxed);
                        break 'events;
                    }
                    if failed.is_set() {
                        break 'events;
                    }
                    let seen = match store.read_last(&query) {
                        Ok(last) => last.map(|e| e.position),
                        Err(e) => {
                            failed.set(e.into());
                            break 'events;
                        }
                    };
                    let options = AppendOptions::new().fail_if(query.clone(), seen);
                    match store.append_with(vec![event.clone()], options) {
                        Ok(_) => {
                            committed.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Err(Error::ConditionFailed { .. }) => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            failed.set(e.into());
                            break 'events;
                        }
                    }
                }
            }
        },
    );
    failed.into_result()?;
    Ok(Outcome {
        ops: committed.into_inner(),
        elapsed,
        latencies: None,
        extra: conflicts.into_inner(),
        cut_short: cut.into_inner() > 0,
    })
}

/// W3: one writer appends the next `n` events of `generator` (the
/// standard data: [`EventGen::new`]`(`[`SEED`]`)`) in batches of
/// [`W3_BATCH`]; the time is the appends' only (generating a batch is
/// outside it). When the time budget runs out it stops early (`ops` tells
/// how many events it appended) and leaves `generator` where it stopped, so
/// the caller can finish the read workloads' data with [`load_from`].
pub fn w3(
    store: &dyn EventStore,
    generator: &mut EventGen,
    n: u64,
    budget: Duration,
) -> Result<Outcome, HarnessError> {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < n {
        if total > budget {
            break;
        }
        let k = (n - done).min(W3_BATCH as u64);
        let batch = generator.batch(k as usize);
        let start = Instant::now();
        store.append(batch)?;
        total += start.elapsed();
        done += k;
    }
    Ok(Outcome {
        ops: done,
        elapsed: total,
        latencies: None,
        extra: 0,
        cut_short: done < n,
    })
}

/// Appends the first `n` events of the standard data, [`LOAD_BATCH`] per
/// append (untimed: the data of the read workloads).
pub fn load(store: &dyn EventStore, n: u64) -> Result<(), HarnessError> {
    load_from(store, &mut EventGen::new(SEED), n)
}

/// Appends the next `n` events of `generator`, [`LOAD_BATCH`] per append.
pub fn load_from(
    store: &dyn EventStore,
    generator: &mut EventGen,
    n: u64,
) -> Result<(), HarnessError> {
    let mut left = n;
    while left > 0 {
        let k = left.min(LOAD_BATCH as u64);
        store.append(generator.batch(k as usize))?;
        left -= k;
    }
    Ok(())
}

/// The read workloads' arguments: [`QUERY_TAGS`] distinct tags drawn with
/// a fixed seed, each paired with an event type (the same lists as the
/// `query` bench).
pub struct Queries {
    tags: Vec<String>,
    types: Vec<&'static str>,
}

impl Default for Queries {
    fn default() -> Self {
        Queries::new()
    }
}

impl Queries {
    /// The fixed lists.
    pub fn new() -> Queries {
        let generator = EventGen::new(SEED);
        let mut rng = SplitMix64::new(SEED ^ 0x0051_7565_7279);
        let mut picked = vec![false; TAGS];
        let mut tags = Vec::with_capacity(QUERY_TAGS);
        while tags.len() < QUERY_TAGS {
            let t = rng.below_uniform(TAGS as u64) as usize;
            if !std::mem::replace(&mut picked[t], true) {
                tags.push(generator.tag(t).to_owned());
            }
        }
        let types = (0..QUERY_TAGS)
            .map(|_| EVENT_TYPE_NAMES[rng.below_uniform(EVENT_TYPE_NAMES.len() as u64) as usize])
            .collect();
        Queries { tags, types }
    }

    /// The query tags, in order.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// R2's `i`-th query: one tag.
    pub fn tag(&self, i: usize) -> Query {
        Query::tag(&self.tags[i % QUERY_TAGS])
    }

    /// R3's and R4's `i`-th query: an event type AND a tag.
    pub fn type_and_tag(&self, i: usize) -> Query {
        let i = i % QUERY_TAGS;
        Query::item(
            QueryItem::new()
                .event_type(self.types[i])
                .tag(&self.tags[i]),
        )
    }
}

/// Which read workload [`queries`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadKind {
    /// R2: every event with one tag, forwards.
    Tag,
    /// R3: every event of one type with one tag, forwards.
    TypeAndTag,
    /// R4: `read_last` of type AND tag.
    LastTypeAndTag,
}

/// Times `one(i)` for `i` in `0..n`, one latency per call; `extra` sums
/// what the calls return (hits, events). Warm-up is the caller's.
pub(crate) fn time_calls(
    n: usize,
    mut one: impl FnMut(usize) -> Result<u64, HarnessError>,
) -> Result<Outcome, HarnessError> {
    let mut lat = Vec::with_capacity(n);
    let mut total = Duration::ZERO;
    let mut extra = 0;
    for i in 0..n {
        let start = Instant::now();
        extra += one(i)?;
        let took = start.elapsed();
        total += took;
        lat.push(took);
    }
    Ok(Outcome {
        ops: n as u64,
        elapsed: total,
        latencies: Some(Latencies::new(lat)),
        extra,
        cut_short: false,
    })
}

/// R2–R4: `n` queries of `kind`, cycling through the query lists after
/// `n / 10` untimed warm-up queries; `extra` counts the events returned.
pub fn queries(
    store: &dyn EventStore,
    work: &Queries,
    kind: ReadKind,
    n: usize,
) -> Result<Outcome, HarnessError> {
    let one = |i: usize| -> Result<u64, HarnessError> {
        Ok(match kind {
            ReadKind::Tag => count(store, &work.tag(i))?,
            ReadKind::TypeAndTag => count(store, &work.type_and_tag(i))?,
            ReadKind::LastTypeAndTag => {
                u64::from(black_box(store.read_last(&work.type_and_tag(i))?).is_some())
            }
        })
    };
    let warm = n / 10;
    for i in 0..warm {
        one(QUERY_TAGS - 1 - i % QUERY_TAGS)?;
    }
    time_calls(n, one)
}

/// The events matching `query`, read forwards through
/// [`EventStore::read_each`] (the engine, SQLite and PostgreSQL lend their
/// buffers; UmaDB and `MemoryStore` lend owned events), each looked at as a
/// consumer would ([`look_at`]). R1–R3 and the query bench's lent R1 all
/// read through it.
pub fn count(store: &dyn EventStore, query: &Query) -> Result<u64, HarnessError> {
    let mut n = 0;
    store.read_each(query, ReadOptions::forwards(), &mut |e| {
        black_box(look_at(&e));
        n += 1;
        ControlFlow::Continue(())
    })?;
    Ok(n)
}

/// What a consumer reads of an event: every byte of its type, its tags
/// and its data, summed, so that no store's reader is timed without them
/// being read (a pointer and a length passed on would leave the bytes of
/// a lent event untouched).
///
/// The bytes are summed eight at a time, as little-endian words: every
/// byte is still loaded, at the cost of a consumer that does little with
/// each, rather than of one that widens each byte on its own. The cost is
/// the same for every store, so the ratios between stores measure the
/// stores.
pub fn look_at(e: &gesta::EventRef<'_>) -> u64 {
    let sum = sum_words;
    let mut seen = e
        .position
        .wrapping_add(sum(e.event_type.as_bytes()))
        .wrapping_add(sum(e.data));
    for tag in e.tags {
        seen = seen.wrapping_add(sum(tag.as_bytes()));
    }
    seen
}

/// The wrapping sum of `b` as little-endian words of eight bytes (and its
/// last bytes one by one): every byte loaded, little done with each.
pub fn sum_words(b: &[u8]) -> u64 {
    let mut words = b.chunks_exact(8);
    let mut total = 0u64;
    for w in &mut words {
        let w: [u8; 8] = w.try_into().expect("chunks of eight");
        total = total.wrapping_add(u64::from_le_bytes(w));
    }
    words
        .remainder()
        .iter()
        .fold(total, |a, &x| a.wrapping_add(u64::from(x)))
}

/// R1: reads every event forwards, `runs` times; the outcome is the fastest
/// run's (the first one may warm caches).
pub fn read_all(store: &dyn EventStore, runs: usize) -> Result<Outcome, HarnessError> {
    let head = store.head()?;
    let mut best: Option<Outcome> = None;
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let n = count(store, &Query::all())?;
        let elapsed = start.elapsed();
        if n != head {
            return Err(format!("R1 read {n} events of {head}").into());
        }
        if best.as_ref().is_none_or(|b| elapsed < b.elapsed) {
            best = Some(Outcome {
                ops: n,
                elapsed,
                latencies: None,
                extra: 0,
                cut_short: false,
            });
        }
    }
    best.ok_or_else(|| "R1 did not run".into())
}

/// S1: one live subscriber on every event while [`WRITERS`] threads append
/// `total` single events as in W2. A writer notes when each append returned
/// (the commit as its caller sees it); the subscriber notes when each event
/// reached it. The latencies are delivery minus commit (zero when the
/// subscriber was first: the committer wakes subscribers before it answers
/// the writers). A store that cannot subscribe fails with
/// `Error::Unsupported`.
pub fn s1(store: &dyn EventStore, total: u64, budget: Duration) -> Result<Outcome, HarnessError> {
    let per_thread = total.div_ceil(WRITERS as u64);
    let start_head = store.head()?;
    let mut subscription = store.subscribe(&Query::all(), start_head)?;
    let base = Instant::now();
    let slots = (per_thread * WRITERS as u64) as usize + 1;
    let acked: Vec<AtomicU64> = (0..slots).map(|_| AtomicU64::new(0)).collect();
    let delivered: Vec<AtomicU64> = (0..slots).map(|_| AtomicU64::new(0)).collect();
    let done = AtomicU64::new(0);
    let writing = std::sync::atomic::AtomicBool::new(true);
    let failed = FirstError::default();
    let elapsed = std::thread::scope(|scope| {
        let subscriber = scope.spawn(|| -> Result<u64, HarnessError> {
            let mut received = 0u64;
            loop {
                match subscription.recv_timeout(Duration::from_millis(50))? {
                    Some(batch) => {
                        let now = base.elapsed().as_nanos() as u64;
                        for e in batch {
                            let slot = (e.position - start_head) as usize;
                            if let Some(d) = delivered.get(slot) {
                                d.store(now, Ordering::Relaxed);
                            }
                            received += 1;
                        }
                    }
                    None => {
                        let committed = store.head()? - start_head;
                        if !writing.load(Ordering::Acquire) && received >= committed {
                            return Ok(received);
                        }
                    }
                }
            }
        });
        let elapsed = run_parallel(
            WRITERS,
            |t| {
                let mut generator = EventGen::for_writer((6 << 8) | t as u64);
                (0..per_thread)
                    .map(|_| generator.next_event())
                    .collect::<Vec<_>>()
            },
            |_, events| {
                let started = Instant::now();
                for event in events {
                    if started.elapsed() > budget || failed.is_set() {
                        break;
                    }
                    match store.append(vec![event]) {
                        Ok(a) => {
                            let now = base.elapsed().as_nanos() as u64;
                            let slot = (a.first - start_head) as usize;
                            if let Some(s) = acked.get(slot) {
                                s.store(now, Ordering::Relaxed);
                            }
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            failed.set(e.into());
                            break;
                        }
                    }
                }
            },
        );
        writing.store(false, Ordering::Release);
        match subscriber.join() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failed.set(e),
            Err(_) => failed.set("the subscriber thread panicked".into()),
        }
        elapsed
    });
    failed.into_result()?;
    let ops = done.into_inner();
    let mut lats = Vec::with_capacity(ops as usize);
    for (a, d) in acked.iter().zip(&delivered).skip(1) {
        let (a, d) = (a.load(Ordering::Relaxed), d.load(Ordering::Relaxed));
        if a == 0 {
            continue;
        }
        if d == 0 {
            return Err("S1: a committed event was never delivered".into());
        }
        lats.push(Duration::from_nanos(d.saturating_sub(a)));
    }
    Ok(Outcome {
        ops,
        elapsed,
        latencies: Some(Latencies::new(lats)),
        extra: 0,
        cut_short: ops < total,
    })
}

/// W2 with `subscribers` live subscribers attached, each on one event type
/// (of the 20, in turn) and each draining its subscription in its own
/// thread: what subscribers cost the writers.
pub fn writers_with_subscribers(
    store: &dyn EventStore,
    total: u64,
    subscribers: usize,
    budget: Duration,
) -> Result<Outcome, HarnessError> {
    let head = store.head()?;
    let mut subs = Vec::with_capacity(subscribers);
    for i in 0..subscribers {
        let t = EVENT_TYPE_NAMES[i % EVENT_TYPE_NAMES.len()];
        subs.push(store.subscribe(&Query::event_type(t), head)?);
    }
    let writing = std::sync::atomic::AtomicBool::new(true);
    let delivered = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for mut sub in subs {
            let (writing, delivered) = (&writing, &delivered);
            scope.spawn(move || {
                while writing.load(Ordering::Acquire) {
                    if let Ok(Some(batch)) = sub.recv_timeout(Duration::from_millis(20)) {
                        delivered.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    }
                }
            });
        }
        let outcome = writers(store, total, false, budget);
        writing.store(false, Ordering::Release);
        outcome.map(|mut o| {
            o.extra = delivered.load(Ordering::Relaxed);
            o
        })
    })
}
