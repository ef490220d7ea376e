//! Explicit compaction ([`Store::compact`]) and what compressed segments
//! cost to read ([`Store::block_cache_stats`]).

use super::Store;
use crate::error::Result;
use crate::indexes::CompactionSettings;
use crate::options::Options;
use crate::projections::Failure;

impl From<&Options> for CompactionSettings {
    fn from(o: &Options) -> Self {
        CompactionSettings {
            base: o.memtable_postings as u64,
            fan_in: o.merge_fan_in,
            bytes_per_sec: o.merge_bytes_per_sec,
            snapshots_kept: o.snapshots_kept,
            projection_interval: o.projection_interval,
        }
    }
}

impl Store {
    /// Hits, misses and bytes held of the block cache through which
    /// compressed segments are read (all zero while none is).
    pub fn block_cache_stats(&self) -> gesta_wal::CacheStats {
        self.inner.compressor.cache_stats()
    }

    /// Flushes the in-memory index to an on-disk run and merges every run
    /// into one, waiting until that is durable (the MANIFEST switched and
    /// the replaced files deleted) — the merge drops the type and tag
    /// postings of every event removed by then; compresses every sealed segment if
    /// [`Options::compression`](crate::Options::compression) is set; then
    /// catches every registered
    /// projection up and writes the snapshots that are due (every
    /// projection is tried: the first error is returned after all, and a
    /// panic of a projection's `fold` resumes in the caller once the others
    /// were snapshotted). Appends and reads go on meanwhile;
    /// background compaction waits. Useful before a backup, after a bulk
    /// import, and in tests; the background compactor otherwise keeps the
    /// number of runs logarithmic on its own.
    ///
    /// It first enforces the retention rules
    /// ([`enforce_retention`](Store::enforce_retention)), and erases from
    /// the log's files the bytes of every event
    /// [`redact`](Store::redact)ed or [`remove`](Store::remove)d since (sealing the active segment if it
    /// holds one, and deleting the snapshots taken at or after the first
    /// such event): once it returns, no file of the store holds them.
    pub fn compact(&self) -> Result<()> {
        // Retention first, so that the merge purges what it removes.
        self.enforce_retention()?;
        self.flush_index()?;
        self.inner.indexes.compact_all()?;
        self.erase_redacted()?;
        if let Some(settings) = self.inner.compression {
            self.inner
                .compressor
                .compress_sealed(settings, None, &|| false)?;
        }
        let failures = self
            .inner
            .projections
            .snapshot_pass(&self.projection_source());
        let mut first_error = None;
        let mut first_panic = None;
        for (name, failure) in failures {
            match failure {
                Failure::Failed(e) if first_error.is_none() => first_error = Some(e),
                Failure::Panicked(payload) if first_panic.is_none() => first_panic = Some(payload),
                other => {
                    log::error!("gesta: the snapshot pass of projection {name:?} failed: {other}")
                }
            }
        }
        // A panic is the caller's own fold's: it goes on in the caller's
        // thread, as in `project`, once every projection was tried.
        if let Some(payload) = first_panic {
            if let Some(e) = first_error {
                log::error!("gesta: a projection's snapshot pass failed: {e}");
            }
            std::panic::resume_unwind(payload);
        }
        first_error.map_or(Ok(()), Err)
    }
}
