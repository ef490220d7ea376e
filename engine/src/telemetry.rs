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
//! The log writes a group and syncs it in one call (`gesta_wal`), so the
//! latency measured is of both: in `Sync` mode, one write and one
//! `fdatasync`.

use crate::error::Error;

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

/// Sets the gauges (and the block cache's counters) that describe `store`
/// now: its head, index runs and frozen memtables, block cache, and the
/// bytes of its files (a walk of its directory). Call it before each scrape
/// (or periodically); it reads counters the store keeps anyway.
#[cfg(feature = "metrics")]
pub fn record_store_gauges(store: &crate::Store) {
    use metrics::{counter, gauge};
    gauge!(names::HEAD).set(store.head() as f64);
    let shape = store.index_shape();
    gauge!(names::INDEX_RUNS).set(shape.runs as f64);
    gauge!(names::FROZEN).set(shape.frozen as f64);
    let cache = store.block_cache_stats();
    counter!(names::CACHE_HITS).absolute(cache.hits);
    counter!(names::CACHE_MISSES).absolute(cache.misses);
    gauge!(names::CACHE_BYTES).set(cache.bytes as f64);
    gauge!(names::DISK_BYTES).set(disk_bytes(store.path()) as f64);
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
    pub(crate) fn taken(&mut self) {
        #[cfg(feature = "metrics")]
        metrics::histogram!(names::QUEUE_WAIT).record(self.at.elapsed());
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

/// A clock started before the group's write and sync.
pub(crate) struct WriteSync {
    #[cfg(feature = "metrics")]
    at: std::time::Instant,
}

impl WriteSync {
    #[inline]
    pub(crate) fn start() -> WriteSync {
        WriteSync {
            #[cfg(feature = "metrics")]
            at: gesta_wal::time::now(),
        }
    }

    /// The write and sync succeeded.
    #[inline]
    pub(crate) fn done(self) {
        #[cfg(feature = "metrics")]
        metrics::histogram!(names::WRITE_SYNC).record(self.at.elapsed());
    }
}

/// A group committed: `batches` appends with `events` events in all, and
/// `duplicates` idempotent retries answered with their earlier positions.
#[inline]
pub(crate) fn committed(batches: usize, events: u64, duplicates: usize) {
    #[cfg(feature = "metrics")]
    {
        use metrics::{counter, histogram};
        counter!(names::APPENDS, "outcome" => "committed").increment(batches as u64);
        if duplicates > 0 {
            counter!(names::APPENDS, "outcome" => "duplicate").increment(duplicates as u64);
        }
        counter!(names::EVENTS).increment(events);
        histogram!(names::GROUP_BATCHES).record(batches as f64);
        histogram!(names::GROUP_EVENTS).record(events as f64);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (batches, events, duplicates);
}

/// The committer answered an append with `e`.
#[inline]
pub(crate) fn refused(e: &Error) {
    #[cfg(feature = "metrics")]
    metrics::counter!(names::APPENDS, "outcome" => outcome(e)).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = e;
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
