//! Group commit: the queue between callers and the committer thread, and the
//! durability policy that decides when the committer syncs.
//!
//! Callers encode their batches in their own threads and send them through a
//! bounded channel (a full queue is back-pressure). The committer blocks for
//! the first request, then takes everything else already waiting, up to a
//! count and byte bound, and commits the whole group with one write and one
//! `fdatasync` — so the cost of a sync is shared by every caller that arrived
//! while the previous one ran.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

/// When the log is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// `fdatasync` once per commit group, before any caller of the group is
    /// answered. An acknowledged append survives power loss.
    #[default]
    Sync,
    /// Callers are answered once their group is written; the log is synced
    /// at most this long after a write. A crash may lose that window.
    Periodic(Duration),
    /// The operating system decides when to write back; the log is synced
    /// only at segment rollover and on close.
    Buffered,
}

/// Anything that can report its size for the group bound.
pub trait GroupSize {
    /// Approximate bytes this request adds to a group.
    fn group_bytes(&self) -> usize;
}

/// Bounds on one commit group.
#[derive(Clone, Copy, Debug)]
pub struct GroupLimits {
    /// At most this many requests per group.
    pub max_requests: usize,
    /// Stop adding requests once the group holds this many bytes.
    pub max_bytes: usize,
}

impl Default for GroupLimits {
    fn default() -> Self {
        GroupLimits {
            max_requests: 4096,
            max_bytes: 16 << 20,
        }
    }
}

/// Creates the bounded commit queue.
pub fn queue<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    crossbeam_channel::bounded(capacity)
}

/// What the committer should do next.
#[derive(Debug)]
pub enum Next<T> {
    /// A group of requests to commit, in arrival order.
    Group(Vec<T>),
    /// Nothing arrived before the durability deadline: sync now.
    SyncDue,
    /// Every sender is gone: shut down.
    Closed,
}

/// Tracks unsynced writes and decides when to sync.
#[derive(Debug)]
pub struct SyncPolicy {
    mode: Durability,
    /// When the oldest unsynced write happened.
    unsynced_since: Option<Instant>,
}

impl SyncPolicy {
    /// A policy for `mode`.
    pub fn new(mode: Durability) -> SyncPolicy {
        SyncPolicy {
            mode,
            unsynced_since: None,
        }
    }

    /// The durability mode.
    pub fn mode(&self) -> Durability {
        self.mode
    }

    /// Whether a group must be synced before its callers are answered.
    pub fn sync_each_group(&self) -> bool {
        self.mode == Durability::Sync
    }

    /// Notes that a group was written without a sync.
    pub fn wrote_unsynced(&mut self, now: Instant) {
        self.unsynced_since.get_or_insert(now);
    }

    /// Notes that everything written is durable.
    pub fn synced(&mut self) {
        self.unsynced_since = None;
    }

    /// Whether a periodic sync is due now.
    pub fn sync_due(&self, now: Instant) -> bool {
        match (self.mode, self.unsynced_since) {
            (Durability::Periodic(every), Some(since)) => now.duration_since(since) >= every,
            _ => false,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match (self.mode, self.unsynced_since) {
            (Durability::Periodic(every), Some(since)) => Some(since + every),
            _ => None,
        }
    }

    /// Waits for the next group: blocks for the first request (or until a
    /// periodic sync is due), then drains whatever else is waiting within
    /// `limits`.
    ///
    /// In `Sync` mode it may then wait up to `delay` for more: `callers`
    /// counts the callers inside an append (from before they enqueue until
    /// they hold their answer), so while the group is smaller than that,
    /// callers answered a moment ago are about to enqueue again. Without the
    /// wait, closed-loop writers split into two halves that alternate
    /// between being synced and queueing, and each sync serves only half
    /// of them.
    pub fn next_group<T: GroupSize>(
        &self,
        rx: &Receiver<T>,
        limits: GroupLimits,
        callers: &AtomicUsize,
        delay: Duration,
    ) -> Next<T> {
        let first = match self.deadline() {
            Some(deadline) => match rx.recv_deadline(deadline) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => return Next::SyncDue,
                Err(RecvTimeoutError::Disconnected) => return Next::Closed,
            },
            None => match rx.recv() {
                Ok(r) => r,
                Err(_) => return Next::Closed,
            },
        };
        let mut bytes = first.group_bytes();
        let mut group = vec![first];
        let room = |group: &Vec<T>, bytes: usize| {
            group.len() < limits.max_requests && bytes < limits.max_bytes
        };
        while room(&group, bytes) {
            match rx.try_recv() {
                Ok(r) => {
                    bytes += r.group_bytes();
                    group.push(r);
                }
                Err(_) => break,
            }
        }
        if self.sync_each_group() && !delay.is_zero() {
            let deadline = Instant::now() + delay;
            while room(&group, bytes) && group.len() < callers.load(Ordering::Acquire) {
                match rx.recv_deadline(deadline) {
                    Ok(r) => {
                        bytes += r.group_bytes();
                        group.push(r);
                    }
                    Err(_) => break,
                }
            }
        }
        Next::Group(group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Req(usize);
    impl GroupSize for Req {
        fn group_bytes(&self) -> usize {
            self.0
        }
    }

    #[test]
    fn drains_everything_waiting_within_limits() {
        let (tx, rx) = queue(100);
        for _ in 0..10 {
            tx.send(Req(10)).unwrap();
        }
        let policy = SyncPolicy::new(Durability::Sync);
        let limits = GroupLimits {
            max_requests: 4,
            max_bytes: 1000,
        };
        let Next::Group(g) = policy.next_group(&rx, limits, &AtomicUsize::new(0), Duration::ZERO)
        else {
            panic!("expected a group")
        };
        assert_eq!(g.len(), 4);
        let limits = GroupLimits {
            max_requests: 100,
            max_bytes: 25,
        };
        let Next::Group(g) = policy.next_group(&rx, limits, &AtomicUsize::new(0), Duration::ZERO)
        else {
            panic!("expected a group")
        };
        assert_eq!(g.len(), 3, "stops once the byte bound is reached");
        drop(tx);
        let Next::Group(g) = policy.next_group(
            &rx,
            GroupLimits::default(),
            &AtomicUsize::new(0),
            Duration::ZERO,
        ) else {
            panic!("expected a group")
        };
        assert_eq!(g.len(), 3);
        assert!(matches!(
            policy.next_group(
                &rx,
                GroupLimits::default(),
                &AtomicUsize::new(0),
                Duration::ZERO
            ),
            Next::Closed
        ));
    }

    #[test]
    fn waits_for_callers_that_are_about_to_enqueue() {
        let (tx, rx) = queue(100);
        let policy = SyncPolicy::new(Durability::Sync);
        let callers = AtomicUsize::new(3);
        tx.send(Req(1)).unwrap();
        let late = tx.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            late.send(Req(1)).unwrap();
            late.send(Req(1)).unwrap();
        });
        let started = Instant::now();
        let Next::Group(g) = policy.next_group(
            &rx,
            GroupLimits::default(),
            &callers,
            Duration::from_secs(5),
        ) else {
            panic!("expected a group")
        };
        assert_eq!(g.len(), 3, "the group waited for the two late callers");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "and closed once they came"
        );
        t.join().unwrap();

        // With nobody else inside an append, no wait at all.
        tx.send(Req(1)).unwrap();
        callers.store(1, Ordering::Release);
        let started = Instant::now();
        let Next::Group(g) = policy.next_group(
            &rx,
            GroupLimits::default(),
            &callers,
            Duration::from_secs(5),
        ) else {
            panic!("expected a group")
        };
        assert_eq!(g.len(), 1);
        assert!(started.elapsed() < Duration::from_secs(1));

        // The wait is bounded by the delay.
        tx.send(Req(1)).unwrap();
        callers.store(5, Ordering::Release);
        let started = Instant::now();
        let Next::Group(g) = policy.next_group(
            &rx,
            GroupLimits::default(),
            &callers,
            Duration::from_millis(30),
        ) else {
            panic!("expected a group")
        };
        assert_eq!(g.len(), 1);
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn periodic_policy_asks_for_a_sync_when_idle() {
        let (_tx, rx) = queue::<Req>(1);
        let mut policy = SyncPolicy::new(Durability::Periodic(Duration::from_millis(5)));
        assert!(!policy.sync_each_group());
        policy.wrote_unsynced(Instant::now());
        assert!(matches!(
            policy.next_group(
                &rx,
                GroupLimits::default(),
                &AtomicUsize::new(0),
                Duration::ZERO
            ),
            Next::SyncDue
        ));
        assert!(policy.sync_due(Instant::now()));
        policy.synced();
        assert!(!policy.sync_due(Instant::now()));
    }
}
