//! The one place the workspace's core crates read the monotonic clock.
//!
//! Commit timestamps (wall time) come through the engine's `Clock` seam.
//! What remains is monotonic time for waiting — pacing a background
//! rewrite, the commit delay, the periodic sync's deadline, a subscriber's
//! timeout — and every such reading goes through [`now`], so that a
//! `clippy.toml` can ban `Instant::now` everywhere else.

use std::time::Instant;

/// The current instant of the monotonic clock.
#[allow(clippy::disallowed_methods)] // the one sanctioned reading
pub fn now() -> Instant {
    Instant::now()
}
