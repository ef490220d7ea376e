//! The clock seam: commit timestamps come from here, so tests can drive time
//! and a failing run replays the same way.

use std::fmt::Debug;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// Microseconds since the Unix epoch.
    fn now_micros(&self) -> u64;
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned wall-clock reading
    fn now_micros(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)
    }
}

/// A clock that returns a fixed time, advanced by hand.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicU64);

impl ManualClock {
    /// A clock standing at `micros`.
    pub fn new(micros: u64) -> ManualClock {
        ManualClock(std::sync::atomic::AtomicU64::new(micros))
    }

    /// Moves the clock forward.
    pub fn advance(&self, micros: u64) {
        self.0
            .fetch_add(micros, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_micros(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}
