//! The commit hub: how subscribers learn that the head moved.
//!
//! Subscribers do not receive events from the committer; they read them from
//! the log and the index themselves (see `subscription`). The committer only
//! says "the head moved" — and when nobody is waiting, which is the common
//! case under load (subscribers are busy reading), that costs it one atomic
//! load. Waiting subscribers are threads parked on a condition variable or
//! async tasks that left a waker.
//!
//! The lost-wakeup race is closed the usual way: a waiter registers
//! (`interested`) and then re-reads the head; the committer stores the head
//! and then reads `interested`. With a sequentially consistent fence on both
//! sides, at least one of them sees the other's write.

use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::task::Waker;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

#[derive(Debug, Default)]
struct State {
    closed: bool,
    sleepers: usize,
    wakers: Vec<Waker>,
}

/// Wakes subscribers when the head moves or the store closes.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    state: Mutex<State>,
    cond: Condvar,
    /// Sleeping threads plus registered wakers.
    interested: AtomicUsize,
}

/// Why a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// The head is past what the waiter had seen.
    Advanced,
    /// The store closed.
    Closed,
    /// The deadline passed first.
    TimedOut,
    /// (Async only) the waker is registered; it will be woken.
    Registered,
}

impl Hub {
    /// Called after the head moved: wakes whoever waits.
    pub(crate) fn publish(&self) {
        fence(Ordering::SeqCst);
        if self.interested.load(Ordering::Relaxed) == 0 {
            return;
        }
        let wakers = {
            let mut s = self.state.lock();
            let wakers = std::mem::take(&mut s.wakers);
            self.interested.store(s.sleepers, Ordering::Relaxed);
            wakers
        };
        self.cond.notify_all();
        for w in wakers {
            w.wake();
        }
    }

    /// Ends every wait, now and later.
    pub(crate) fn close(&self) {
        let wakers = {
            let mut s = self.state.lock();
            s.closed = true;
            std::mem::take(&mut s.wakers)
        };
        self.cond.notify_all();
        for w in wakers {
            w.wake();
        }
    }

    /// Blocks until `head()` exceeds `seen`, the store closes, or `deadline`.
    pub(crate) fn wait(
        &self,
        seen: u64,
        head: impl Fn() -> u64,
        deadline: Option<Instant>,
    ) -> Wake {
        let mut s = self.state.lock();
        s.sleepers += 1;
        self.interested.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let wake = loop {
            if head() > seen {
                break Wake::Advanced;
            }
            if s.closed {
                break Wake::Closed;
            }
            match deadline {
                Some(d) => {
                    if self.cond.wait_until(&mut s, d).timed_out() {
                        break if head() > seen {
                            Wake::Advanced
                        } else {
                            Wake::TimedOut
                        };
                    }
                }
                None => self.cond.wait(&mut s),
            }
        };
        s.sleepers -= 1;
        self.interested
            .store(s.sleepers + s.wakers.len(), Ordering::Relaxed);
        wake
    }

    /// Leaves `waker` to be woken once `head()` exceeds `seen`, unless it
    /// already does (or the store is closed), which is said at once.
    pub(crate) fn register(&self, waker: &Waker, seen: u64, head: impl Fn() -> u64) -> Wake {
        let mut s = self.state.lock();
        if !s.closed && !s.wakers.iter().any(|w| w.will_wake(waker)) {
            s.wakers.push(waker.clone());
            self.interested
                .store(s.sleepers + s.wakers.len(), Ordering::Relaxed);
        }
        fence(Ordering::SeqCst);
        if head() > seen {
            Wake::Advanced
        } else if s.closed {
            Wake::Closed
        } else {
            Wake::Registered
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_waiter_sees_every_publish() {
        let hub = Arc::new(Hub::default());
        let head = Arc::new(AtomicU64::new(0));
        let (h2, hd2) = (hub.clone(), head.clone());
        let waiter = std::thread::spawn(move || {
            let mut seen = 0;
            while seen < 10_000 {
                assert_eq!(
                    h2.wait(seen, || hd2.load(Ordering::SeqCst), None),
                    Wake::Advanced
                );
                seen = hd2.load(Ordering::SeqCst);
            }
        });
        for i in 1..=10_000 {
            head.store(i, Ordering::SeqCst);
            hub.publish();
        }
        waiter.join().unwrap();
    }

    #[test]
    fn close_and_timeouts_end_waits() {
        let hub = Arc::new(Hub::default());
        let deadline = Instant::now() + Duration::from_millis(20);
        assert_eq!(hub.wait(0, || 0, Some(deadline)), Wake::TimedOut);
        let h2 = hub.clone();
        let t = std::thread::spawn(move || h2.wait(0, || 0, None));
        std::thread::sleep(Duration::from_millis(20));
        hub.close();
        assert_eq!(t.join().unwrap(), Wake::Closed);
        assert_eq!(hub.wait(0, || 0, None), Wake::Closed);
    }
}
