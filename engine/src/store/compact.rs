//! Explicit compaction ([`Store::compact`]) and what compressed segments
//! cost to read ([`Store::block_cache_stats`]).

use super::Store;
use crate::error::Result;
use crate::indexes::CompactionSettings;
use crate::options::Options;

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
    /// projection up and writes the snapshots that are due. Appends and reads go on meanwhile;
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
        self.inner
            .projections
            .snapshot_pass(&self.projection_source())
    }
}
