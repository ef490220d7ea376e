//! Telemetry: what the store reports about its work, for operators.
//!
//! Two cargo features, both off by default, turn it on:
//!
//! - `metrics` reports through the [`metrics`](https://docs.rs/metrics)
//!   facade: install any recorder (for Prometheus,
//!   `metrics-exporter-prometheus`; `gesta serve --metrics ADDR` does) and
//!   the committer's counters and histograms reach it; call
//!   `record_store_gauges` when the recorder is scraped for the store's
//!   state (head, index runs, block cache, bytes on disk). The names are in
//!   `names`; `describe_metrics` gives them help texts and units.
//! - `tracing` opens [`tracing`](https://docs.rs/tracing) spans, at debug
//!   level with target `gesta`: `gesta.append.queue` from the caller's
//!   thread until the committer takes the append, and in the committer
//!   `gesta.commit` around a group, with `gesta.admit`, `gesta.write_sync`
//!   and `gesta.publish` inside it; in the background flusher
//!   `gesta.compaction.flush`, `gesta.compaction.merge` and
//!   `gesta.compaction.compress`.
//!
//! Without them every function here is empty and the queue's timestamp is zero-sized,
//! so a store that does not use telemetry pays nothing for it. With them
//! the committer pays a few relaxed atomic additions and two clock reads per
//! group, and one clock read per append.
//!
//! The log tells the committer when a group's write and its `fdatasync`
//! are done (`gesta_wal::CommitObserver`), so the two are timed apart as
//! well as together; without the `metrics` feature the observer is empty
//! and the calls compile away.
//!
//! **Tenants.** A store opened with [`Options::tenant_label`] (the
//! engine's tenants set it) labels every series it reports
//! `tenant="<name>"`. The label's values are bounded: the first
//! [`max_tenant_labels`] tenants opened in the process (default
//! [`DEFAULT_MAX_TENANT_LABELS`], see [`set_max_tenant_labels`]) get their
//! own name, every later one [`OTHER_TENANTS`] (`_other`, never a tenant
//! name), so a process reports at most that many plus one values however
//! many tenants it serves. Under `_other`, counters and histograms add up
//! the tenants', while a gauge holds whichever tenant was sampled last. A
//! closed tenant's gauges keep the value of their last sample.
//!
//! [`Options::tenant_label`]: crate::Options::tenant_label

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::error::Error;

/// The label naming a store's tenant.
pub const TENANT_LABEL: &str = "tenant";

/// The `tenant` label of every tenant past the first
/// [`max_tenant_labels`]: not a valid tenant name, so it meets none.
pub const OTHER_TENANTS: &str = "_other";

/// How many tenants get a `tenant` label value of their own by default.
pub const DEFAULT_MAX_TENANT_LABELS: usize = 100;

static MAX_TENANT_LABELS: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_TENANT_LABELS);
static LABELLED: Mutex<Option<HashSet<Arc<str>>>> = Mutex::new(None);

/// Sets how many tenants get a label value of their own (tenants labelled
/// already keep theirs).
pub fn set_max_tenant_labels(max: usize) {
    MAX_TENANT_LABELS.store(max, Ordering::Relaxed);
}

/// How many tenants get a label value of their own.
pub fn max_tenant_labels() -> usize {
    MAX_TENANT_LABELS.load(Ordering::Relaxed)
}

/// The `tenant` label value of tenant `name`: its name while fewer than
/// [`max_tenant_labels`] tenants have one (or if it has one already),
/// else [`OTHER_TENANTS`].
pub fn tenant_label(name: &str) -> Arc<str> {
    let mut labelled = LABELLED.lock();
    let labelled = labelled.get_or_insert_with(HashSet::new);
    if let Some(label) = labelled.get(name) {
        return label.clone();
    }
    if labelled.len() < max_tenant_labels() {
        let label: Arc<str> = Arc::from(name);
        labelled.insert(label.clone());
        return label;
    }
    Arc::from(OTHER_TENANTS)
}

/// The metric names, all prefixed `gesta_`.
#[cfg(feature = "metrics")]
pub mod names {
    /// Counter, label `outcome`: appends answered by the committer —
    /// `committed`, `duplicate` (an idempotent retry: nothing new),
    /// `condition_failed`, `revision_conflict`, `tracking_conflict`,
    /// `duplicate_id`, `failed` (the write or sync failed, or the store is
    /// poisoned or closing). Appends refused as invalid before they reach
    /// the committer are not counted.
    pub const APPENDS: &str = "gesta_appends_total";
    /// Counter: events committed.
    pub const EVENTS: &str = "gesta_events_committed_total";
    /// Histogram: appends (batches) committed per commit group.
    pub const GROUP_BATCHES: &str = "gesta_commit_group_batches";
    /// Histogram: events committed per commit group.
    pub const GROUP_EVENTS: &str = "gesta_commit_group_events";
    /// Histogram, seconds: one group's write and (in `Sync` mode) `fdatasync`.
    pub const WRITE_SYNC: &str = "gesta_commit_write_sync_seconds";
    /// Histogram, seconds: one group's write (to the page cache).
    pub const WRITE: &str = "gesta_commit_write_seconds";
    /// Histogram, seconds: one group's `fdatasync` (groups that are synced).
    pub const SYNC: &str = "gesta_commit_sync_seconds";
    /// Gauge: subscriptions open on the store (durable ones included).
    pub const SUBSCRIPTIONS: &str = "gesta_subscriptions_open";
    /// Gauge: the largest lag of the store's open subscriptions — the head
    /// less the position up to which a subscription has handed out every
    /// event; 0 with none open.
    pub const SUBSCRIPTION_LAG: &str = "gesta_subscription_lag_max_events";
    /// Gauge, label `subscription`: a durable subscription's lag — the head
    /// less its acknowledged position — for the first
    /// [`MAX_DURABLE_LAGS`](super::MAX_DURABLE_LAGS) names in order.
    pub const DURABLE_LAG: &str = "gesta_durable_subscription_lag_events";
    /// Histogram, seconds: how long appends waited in the commit queue.
    pub const QUEUE_WAIT: &str = "gesta_append_queue_wait_seconds";
    /// Gauge: the position of the last committed event.
    pub const HEAD: &str = "gesta_head_position";
    /// Gauge: on-disk index runs (merges keep their number small).
    pub const INDEX_RUNS: &str = "gesta_index_runs";
    /// Gauge: memtables frozen and waiting to be flushed to a run — the
    /// compaction backlog.
    pub const FROZEN: &str = "gesta_index_frozen_memtables";
    /// Counter: block cache hits (compressed segments' blocks).
    pub const CACHE_HITS: &str = "gesta_block_cache_hits_total";
    /// Counter: block cache misses.
    pub const CACHE_MISSES: &str = "gesta_block_cache_misses_total";
    /// Gauge: bytes the block cache holds.
    pub const CACHE_BYTES: &str = "gesta_block_cache_bytes";
    /// Gauge: bytes of the store's files on disk.
    pub const DISK_BYTES: &str = "gesta_disk_bytes";
}

/// Gives the recorder installed now a help text and a unit for every
/// metric the store reports (recorders that keep descriptions show them,
/// as Prometheus' `# HELP` lines).
#[cfg(feature = "metrics")]
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        names::APPENDS,
        "Appends answered by the committer, by outcome"
    );
    describe_counter!(names::EVENTS, Unit::Count, "Events committed");
    describe_histogram!(
        names::GROUP_BATCHES,
        Unit::Count,
        "Appends committed per commit group"
    );
    describe_histogram!(
        names::GROUP_EVENTS,
        Unit::Count,
        "Events committed per commit group"
    );
    describe_histogram!(
        names::WRITE_SYNC,
        Unit::Seconds,
        "A commit group's write and fdatasync"
    );
    describe_histogram!(names::WRITE, Unit::Seconds, "A commit group's write");
    describe_histogram!(names::SYNC, Unit::Seconds, "A commit group's fdatasync");
    describe_gauge!(names::SUBSCRIPTIONS, Unit::Count, "Subscriptions open");
    describe_gauge!(
        names::SUBSCRIPTION_LAG,
        Unit::Count,
        "The largest lag of the open subscriptions, in positions"
    );
    describe_gauge!(
        names::DURABLE_LAG,
        Unit::Count,
        "A durable subscription's lag behind the head, in positions"
    );
    describe_histogram!(
        names::QUEUE_WAIT,
        Unit::Seconds,
        "Time appends waited in the commit queue"
    );
    describe_gauge!(names::HEAD, "Position of the last committed event");
    describe_gauge!(names::INDEX_RUNS, Unit::Count, "On-disk index runs");
    describe_gauge!(
        names::FROZEN,
        Unit::Count,
        "Memtables waiting to be flushed (compaction backlog)"
    );
    describe_counter!(names::CACHE_HITS, Unit::Count, "Block cache hits");
    describe_counter!(names::CACHE_MISSES, Unit::Count, "Block cache misses");
    describe_gauge!(names::CACHE_BYTES, Unit::Bytes, "Bytes in the block cache");
    describe_gauge!(names::DISK_BYTES, Unit::Bytes, "Bytes of the store's files");
}

/// How many durable subscriptions of a store get a lag series each (the
/// first ones by name); the rest are left out, so that a store with many
/// cursors cannot flood the scrape.
pub const MAX_DURABLE_LAGS: usize = 64;

/// Sets the gauges (and the block cache's counters) that describe `store`
/// now: its head, index runs and frozen memtables, block cache, the bytes
/// of its files (a walk of its directory), and its subscriptions' lag.
/// Call it before each scrape (or periodically); it reads counters the
/// store keeps anyway. A tenant's store labels them with its tenant.
#[cfg(feature = "metrics")]
pub fn record_store_gauges(store: &crate::Store) {
    use metrics::{Label, counter, gauge};
    let labels: Vec<Label> = store
        .tenant_label()
        .map(|t| Label::new(TENANT_LABEL, t.to_string()))
        .into_iter()
        .collect();
    let head = store.head();
    gauge!(names::HEAD, labels.clone()).set(head as f64);
    let shape = store.index_shape();
    gauge!(names::INDEX_RUNS, labels.clone()).set(shape.runs as f64);
    gauge!(names::FROZEN, labels.clone()).set(shape.frozen as f64);
    let cache = store.block_cache_stats();
    counter!(names::CACHE_HITS, labels.clone()).absolute(cache.hits);
    counter!(names::CACHE_MISSES, labels.clone()).absolute(cache.misses);
    gauge!(names::CACHE_BYTES, labels.clone()).set(cache.bytes as f64);
    gauge!(names::DISK_BYTES, labels.clone()).set(disk_bytes(store.path()) as f64);
    let positions = store.subscription_positions();
    let lag = positions
        .iter()
        .map(|p| head.saturating_sub(*p))
        .max()
        .unwrap_or(0);
    gauge!(names::SUBSCRIPTIONS, labels.clone()).set(positions.len() as f64);
    gauge!(names::SUBSCRIPTION_LAG, labels.clone()).set(lag as f64);
    if let Ok(mut durable) = crate::EventStore::durable_subscriptions(store) {
        durable.sort_by(|a, b| a.name.cmp(&b.name));
        for cursor in durable.into_iter().take(MAX_DURABLE_LAGS) {
            let mut labels = labels.clone();
            labels.push(Label::new("subscription", cursor.name));
            gauge!(names::DURABLE_LAG, labels).set(head.saturating_sub(cursor.acknowledged) as f64);
        }
    }
}

/// The bytes of the files under `dir`; files that vanish meanwhile (a
/// compaction replaced them) count nothing.
#[cfg(feature = "metrics")]
fn disk_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => disk_bytes(&entry.path()),
            Ok(t) if t.is_file() => entry.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// When an append entered the commit queue (feature `metrics`), and the
/// span of its wait, opened in the caller's thread so that it nests under
/// the caller's own span (feature `tracing`).
pub(crate) struct Queued {
    #[cfg(feature = "metrics")]
    at: std::time::Instant,
    /// Boxed so that an append request stays small; `None` when no
    /// subscriber wants the span, so nothing is allocated then.
    #[cfg(feature = "tracing")]
    span: Option<Box<tracing::Span>>,
}

impl Queued {
    /// Now, in the caller's thread.
    #[inline]
    pub(crate) fn now() -> Queued {
        Queued {
            #[cfg(feature = "metrics")]
            at: gesta_wal::time::now(),
            #[cfg(feature = "tracing")]
            span: {
                let span = tracing::debug_span!(target: "gesta", "gesta.append.queue");
                (!span.is_disabled()).then(|| Box::new(span))
            },
        }
    }

    /// The committer took the append: the wait ends here.
    #[inline]
    pub(crate) fn taken(&mut self, meters: &Meters) {
        #[cfg(feature = "metrics")]
        metrics::histogram!(names::QUEUE_WAIT, meters.labels.clone()).record(self.at.elapsed());
        #[cfg(not(feature = "metrics"))]
        let _ = meters;
        #[cfg(feature = "tracing")]
        {
            self.span = None;
        }
    }
}

/// A stage of the commit path, for its span.
#[derive(Clone, Copy)]
pub(crate) enum Stage {
    /// One commit group, from its first admission to its last answer.
    Group,
    /// The checks of one append.
    Admit,
    /// The group's write and sync.
    WriteSync,
    /// Memtable, head, subscribers, answers.
    Publish,
    /// The flusher writes frozen memtables as index runs.
    Flush,
    /// The flusher merges index runs.
    Merge,
    /// The flusher rewrites sealed segments compressed.
    Compress,
}

/// A span entered for a stage; leaving it is dropping this.
#[cfg(feature = "tracing")]
pub(crate) type Entered = tracing::span::EnteredSpan;
/// A span entered for a stage (nothing without the `tracing` feature).
#[cfg(not(feature = "tracing"))]
pub(crate) struct Entered;

/// Enters the span of `stage` (a span's name must be a literal, hence the
/// match).
#[inline]
pub(crate) fn enter(stage: Stage) -> Entered {
    #[cfg(feature = "tracing")]
    {
        let span = match stage {
            Stage::Group => tracing::debug_span!(target: "gesta", "gesta.commit"),
            Stage::Admit => tracing::debug_span!(target: "gesta", "gesta.admit"),
            Stage::WriteSync => tracing::debug_span!(target: "gesta", "gesta.write_sync"),
            Stage::Publish => tracing::debug_span!(target: "gesta", "gesta.publish"),
            Stage::Flush => tracing::debug_span!(target: "gesta", "gesta.compaction.flush"),
            Stage::Merge => tracing::debug_span!(target: "gesta", "gesta.compaction.merge"),
            Stage::Compress => tracing::debug_span!(target: "gesta", "gesta.compaction.compress"),
        };
        span.entered()
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = stage;
        Entered
    }
}

/// The labels of a store's committer metrics: its tenant's, if it is a
/// tenant's store. Every report goes through the `metrics` macros, which
/// reach the recorder installed at that moment (a recorder installed after
/// the store opened gets everything from then on); nothing without the
/// `metrics` feature.
pub(crate) struct Meters {
    #[cfg(feature = "metrics")]
    labels: Vec<metrics::Label>,
}

impl Meters {
    /// The labels: `tenant` if the store has one.
    pub(crate) fn new(tenant: Option<&Arc<str>>) -> Meters {
        #[cfg(feature = "metrics")]
        {
            // A shared string: cloning the label per report is a
            // reference count, not a copy of the name.
            let labels = tenant
                .map(|t| metrics::Label::new(TENANT_LABEL, metrics::SharedString::from(t.clone())))
                .into_iter()
                .collect();
            Meters { labels }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = tenant;
            Meters {}
        }
    }

    /// The store's labels and an `outcome`.
    #[cfg(feature = "metrics")]
    fn outcome(&self, outcome: &'static str) -> Vec<metrics::Label> {
        let mut labels = self.labels.clone();
        labels.push(metrics::Label::new("outcome", outcome));
        labels
    }

    /// A group committed: `batches` appends with `events` events in all,
    /// and `duplicates` idempotent retries answered with their earlier
    /// positions.
    #[inline]
    pub(crate) fn committed(&self, batches: usize, events: u64, duplicates: usize) {
        #[cfg(feature = "metrics")]
        {
            use metrics::{counter, histogram};
            counter!(names::APPENDS, self.outcome("committed")).increment(batches as u64);
            if duplicates > 0 {
                counter!(names::APPENDS, self.outcome("duplicate")).increment(duplicates as u64);
            }
            counter!(names::EVENTS, self.labels.clone()).increment(events);
            histogram!(names::GROUP_BATCHES, self.labels.clone()).record(batches as f64);
            histogram!(names::GROUP_EVENTS, self.labels.clone()).record(events as f64);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (batches, events, duplicates);
    }

    /// The committer answered an append with `e`.
    #[inline]
    pub(crate) fn refused(&self, e: &Error) {
        #[cfg(feature = "metrics")]
        metrics::counter!(names::APPENDS, self.outcome(outcome(e))).increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = e;
    }
}

/// The `outcome` label of an append refused with `e`.
#[cfg(feature = "metrics")]
fn outcome(e: &Error) -> &'static str {
    match e {
        Error::ConditionFailed { .. } => "condition_failed",
        Error::WrongExpectedRevision { .. } => "revision_conflict",
        Error::TrackingConflict { .. } => "tracking_conflict",
        Error::DuplicateEventId { .. } => "duplicate_id",
        Error::InvalidInput { .. } => "invalid",
        _ => "failed",
    }
}

/// A clock over one group's write and sync: told by the log when each is
/// done ([`gesta_wal::CommitObserver`]), it times the write, the sync and
/// both. Zero-sized, its methods empty, without the `metrics` feature.
pub(crate) struct WriteSync<'m> {
    #[cfg(feature = "metrics")]
    meters: &'m Meters,
    #[cfg(feature = "metrics")]
    start: std::time::Instant,
    #[cfg(feature = "metrics")]
    written: Option<std::time::Instant>,
    #[cfg(not(feature = "metrics"))]
    meters: std::marker::PhantomData<&'m Meters>,
}

impl<'m> WriteSync<'m> {
    /// Starts the clock, before the group's write.
    #[inline]
    pub(crate) fn start(meters: &'m Meters) -> WriteSync<'m> {
        #[cfg(feature = "metrics")]
        {
            WriteSync {
                meters,
                start: gesta_wal::time::now(),
                written: None,
            }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = meters;
            WriteSync {
                meters: std::marker::PhantomData,
            }
        }
    }

    /// The write and sync succeeded.
    #[inline]
    pub(crate) fn done(self) {
        #[cfg(feature = "metrics")]
        metrics::histogram!(names::WRITE_SYNC, self.meters.labels.clone())
            .record(self.start.elapsed());
    }
}

impl gesta_wal::CommitObserver for WriteSync<'_> {
    #[inline]
    fn written(&mut self) {
        #[cfg(feature = "metrics")]
        {
            let now = gesta_wal::time::now();
            metrics::histogram!(names::WRITE, self.meters.labels.clone()).record(now - self.start);
            self.written = Some(now);
        }
    }

    #[inline]
    fn synced(&mut self) {
        #[cfg(feature = "metrics")]
        {
            // A sync with nothing newly written (a group of retries) is
            // timed from the start.
            let from = self.written.unwrap_or(self.start);
            metrics::histogram!(names::SYNC, self.meters.labels.clone()).record(from.elapsed());
        }
    }
}
