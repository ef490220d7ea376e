//! [`Shared`]: the state the committer publishes and every other part of a
//! store reads — the head, how many callers are inside an append, and
//! whether the store is closing. (The log publishes its own durable
//! position and poison flag, in `gesta_wal::LogState`.)

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};

/// What the committer publishes to everyone else.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// The last committed position; readers never look past it.
    pub head: AtomicU64,
    /// Callers inside an append: from before they enqueue until they hold
    /// their answer (the commit delay waits for them).
    pub callers: AtomicUsize,
    /// Set when the store starts closing, so that background work that can
    /// stop early (compressing segments) does so instead of delaying the
    /// close.
    pub closing: AtomicBool,
}
