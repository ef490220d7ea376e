//! gesta-compaction: the background work that keeps a Gesta store small and
//! fast as it grows — flushing the memtable into index runs, merging runs,
//! compressing sealed segments and producing snapshots.
//!
//! The foundation has no background work yet: the log is the only state, and
//! recovery rebuilds everything from it. This crate exists so that the
//! dependency graph (`compaction` uses `wal` and `index`, `engine` uses all)
//! is in place from the start.
#![deny(missing_docs)]

/// The crates compaction builds on, re-exported for the engine.
pub use gesta_index as index;
pub use gesta_wal as wal;
