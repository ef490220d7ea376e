//! gesta-compaction: the durable state beyond the log and the background
//! work that keeps a store small and fast as it grows.
//!
//! It owns the [`manifest`] (which index runs exist and what they cover) and
//! [`flush`] (writing a frozen memtable as an index run and switching the
//! MANIFEST to include it), [`merge`] (the size-tiered policy that keeps the
//! number of runs logarithmic, and the merge itself) and [`snapshot`] (the
//! zstd-compressed, checksummed snapshot files).
#![deny(missing_docs)]

pub mod flush;
pub mod manifest;
pub mod merge;
pub mod snapshot;

/// The crates compaction builds on, re-exported for the engine.
pub use gesta_index as index;
pub use gesta_wal as wal;
