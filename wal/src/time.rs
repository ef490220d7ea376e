//! The one place the workspace's core crates read the monotonic clock.
//!
//! Commit timestamps (wall time) come through the engine's `Clock` seam.
//! What remains is monotonic time for waiting — pacing a background
//! rewrite, the commit delay, the periodic sync's deadline, a subscriber's
//! timeout, a bounded spin before parking ([`spin_until`]) — and every
//! such reading goes through [`now`], so that a `clippy.toml` can ban
//! `Instant::now` everywhere else.

use std::time::Instant;

/// The current instant of the monotonic clock.
#[allow(clippy::disallowed_methods)] // the one sanctioned reading
pub fn now() -> Instant {
    Instant::now()
}

/// Checks between two readings of the clock while spinning.
const SPINS_PER_CHECK: u32 = 64;

/// Spins until `ready` says so or `bound` has passed; returns what `ready`
/// last said. A zero bound checks once.
///
/// This is for a thread that would otherwise park while it expects its
/// wait to end within microseconds: on a virtual machine, waking a thread
/// whose CPU went idle costs tens of microseconds (the idle virtual CPU
/// halts, and the wake-up goes through the hypervisor), as much as an
/// `fdatasync` on a fast disk. The spin does not yield (a `sched_yield`
/// per round cost more than it saved): a thread woken for this CPU
/// preempts it, and the bound limits how long it can hold back one
/// already waiting.
pub fn spin_until(bound: std::time::Duration, mut ready: impl FnMut() -> bool) -> bool {
    if bound.is_zero() {
        return ready();
    }
    let started = now();
    loop {
        for _ in 0..SPINS_PER_CHECK {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if started.elapsed() >= bound {
            return ready();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn spinning_ends_when_ready_or_at_its_bound() {
        let mut calls = 0;
        assert!(spin_until(Duration::from_secs(60), || {
            calls += 1;
            calls == 1000
        }));
        assert_eq!(calls, 1000);

        let started = now();
        assert!(!spin_until(Duration::from_millis(5), || false));
        assert!(started.elapsed() >= Duration::from_millis(5));

        let mut calls = 0;
        assert!(!spin_until(Duration::ZERO, || {
            calls += 1;
            false
        }));
        assert_eq!(calls, 1, "a zero bound checks once");
    }

    #[test]
    fn spinning_sees_another_thread_get_ready() {
        let flag = Arc::new(AtomicBool::new(false));
        let setter = {
            let flag = flag.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(2));
                flag.store(true, Ordering::Release);
            })
        };
        assert!(spin_until(Duration::from_secs(60), || flag.load(Ordering::Acquire)));
        setter.join().unwrap();
    }
}
