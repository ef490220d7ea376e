//! Group commit: the queue between callers and the committer thread, the
//! durability policy that decides when the log syncs, and [`GroupCommit`],
//! which owns the writer and that policy together.
//!
//! Callers encode their batches in their own threads and send them through a
//! bounded channel (a full queue is back-pressure). The committer blocks for
//! the first request, then takes everything else already waiting, up to a
//! count and byte bound, and commits the whole group with one write and one
//! `fdatasync` — so the cost of a sync is shared by every caller that arrived
//! while the previous one ran. Between groups the committer serving a lone
//! writer spins a little before it parks, as long as requests have been
//! arriving within that time (see [`crate::time::spin_until`]). What a
//! request means (conditions, positions, answers) is the committer's
//! business; when and how the group reaches the disk is this module's.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::error::Result;
use crate::format::{Payload, RecordMeta};
use crate::writer::{CommitObserver, LogState, Pushed, WalWriter};

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
            let deadline = crate::time::now() + delay;
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

/// The single writer of the log with its durability policy: the committer
/// pushes each admitted batch, then commits the group, and this decides
/// whether the group is synced (every group in `Sync` mode; in `Periodic`
/// mode when a sync is due), keeps the durable position and the poison flag
/// (in [`LogState`]), and logs every write or sync failure once.
#[derive(Debug)]
pub struct GroupCommit {
    writer: WalWriter,
    policy: SyncPolicy,
    limits: GroupLimits,
    /// Moving average of how long a group's write and sync take: the commit
    /// delay is a fraction of it.
    commit_ewma: Duration,
    /// The longest the commit delay may be (0 turns it off).
    max_commit_delay: Duration,
    /// The longest the committer spins for the next request before it
    /// parks (0 turns spinning off).
    spin: Duration,
    /// Whether the last wait for a request ended within `spin`: only then
    /// is the next one spun for, so that a log written now and then parks
    /// its committer at once.
    spin_pays: bool,
}

impl GroupCommit {
    /// Group commit over `writer`, syncing as `durability` says.
    pub fn new(
        writer: WalWriter,
        durability: Durability,
        limits: GroupLimits,
        max_commit_delay: Duration,
    ) -> GroupCommit {
        GroupCommit {
            writer,
            policy: SyncPolicy::new(durability),
            limits,
            commit_ewma: Duration::ZERO,
            max_commit_delay,
            spin: Duration::ZERO,
            spin_pays: true,
        }
    }

    /// Lets the committer spin up to `spin` for the next request before it
    /// parks, while requests keep arriving within that time (zero turns it
    /// off, the default).
    pub fn with_spin(mut self, spin: Duration) -> GroupCommit {
        self.spin = spin;
        self
    }

    /// The log's durable position and poison flag, for observers.
    pub fn state(&self) -> Arc<LogState> {
        self.writer.state()
    }

    /// Whether a failed write or sync poisoned the log.
    pub fn is_poisoned(&self) -> bool {
        self.writer.is_poisoned()
    }

    /// The position the next pushed record starts at.
    pub fn next_position(&self) -> u64 {
        self.writer.next_position()
    }

    /// Waits for the next group of requests, or for a periodic sync that is
    /// due (see [`SyncPolicy::next_group`]); the commit delay is half the
    /// recent commit time, at most the configured maximum. When the queue
    /// is empty it first spins for a request, if the last wait was short
    /// and at most one caller is inside an append (`callers`): a lone
    /// writer's next append follows its answer within microseconds, while
    /// many writers need both CPUs to prepare theirs.
    pub fn next_group<T: GroupSize>(&mut self, rx: &Receiver<T>, callers: &AtomicUsize) -> Next<T> {
        let delay = (self.commit_ewma / 2).min(self.max_commit_delay);
        if self.spin.is_zero() || !rx.is_empty() {
            return self.policy.next_group(rx, self.limits, callers, delay);
        }
        if self.spins_now(callers) && crate::time::spin_until(self.spin, || !rx.is_empty()) {
            return self.policy.next_group(rx, self.limits, callers, delay);
        }
        let parked = crate::time::now();
        let next = self.policy.next_group(rx, self.limits, callers, delay);
        // What the wait took, the commit delay included (at most `delay`).
        self.spin_pays = parked.elapsed() <= self.spin + delay;
        next
    }

    /// Whether an empty queue is spun for now: the last wait was short, and
    /// at most one caller is inside an append (with several, the CPU the
    /// spin would take is theirs).
    fn spins_now(&self, callers: &AtomicUsize) -> bool {
        self.spin_pays && callers.load(Ordering::Acquire) <= 1
    }

    /// Adds a record to the group; see [`WalWriter::push`].
    pub fn push(&mut self, meta: RecordMeta, seq: &[u8], payload: &Payload) -> Result<Pushed> {
        self.writer.push(meta, seq, payload)
    }

    /// Writes the group, syncing it if the policy asks (every group in
    /// `Sync` mode; in `Periodic` mode when a sync is due, so that a failed
    /// sync can still cut this group off), and publishes its records. The
    /// error says what became of the group; see [`WalWriter::commit`].
    pub fn commit(&mut self) -> Result<()> {
        self.commit_observed(&mut ())
    }

    /// [`commit`](Self::commit), telling `observer` when the write and the
    /// sync are done; see [`WalWriter::commit_observed`].
    pub fn commit_observed<O: CommitObserver>(&mut self, observer: &mut O) -> Result<()> {
        let now = crate::time::now();
        let sync = self.policy.sync_each_group() || self.policy.sync_due(now);
        self.writer.commit_observed(sync, observer)?;
        self.commit_ewma = (self.commit_ewma * 7 + now.elapsed()) / 8;
        if sync {
            self.policy.synced();
        } else {
            self.policy.wrote_unsynced(now);
        }
        Ok(())
    }

    /// Seals the active segment if it holds a record (see
    /// [`WalWriter::seal_active`]; the roll syncs it first).
    pub fn seal_active(&mut self) -> Result<bool> {
        let sealed = self.writer.seal_active()?;
        if sealed {
            self.policy.synced();
        }
        Ok(sealed)
    }

    /// Makes everything committed durable, if anything is not yet. A
    /// failure poisons the log.
    pub fn sync(&mut self) -> Result<()> {
        self.writer.sync()?;
        self.policy.synced();
        Ok(())
    }

    /// Whether committed records are not yet durable.
    pub fn is_dirty(&self) -> bool {
        self.writer.is_dirty()
    }

    /// Syncs what is outstanding before the log is closed. The active
    /// segment keeps its preallocated zeros; recovery reads them as the end.
    pub fn close(&mut self) -> Result<()> {
        self.writer.close()?;
        self.policy.synced();
        Ok(())
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
        let started = crate::time::now();
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
        let started = crate::time::now();
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
        let started = crate::time::now();
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
        policy.wrote_unsynced(crate::time::now());
        assert!(matches!(
            policy.next_group(
                &rx,
                GroupLimits::default(),
                &AtomicUsize::new(0),
                Duration::ZERO
            ),
            Next::SyncDue
        ));
        assert!(policy.sync_due(crate::time::now()));
        policy.synced();
        assert!(!policy.sync_due(crate::time::now()));
    }

    /// A group commit over an in-memory log, spinning up to `spin`.
    fn spinning(spin: Duration) -> GroupCommit {
        let fs: Arc<dyn crate::io::FileSystem> = Arc::new(crate::io::fault::FaultFs::new());
        let opened = crate::recovery::open(
            fs,
            std::path::Path::new("/wal"),
            crate::writer::WalOptions::default(),
            1,
            |_| Ok(()),
        )
        .unwrap();
        GroupCommit::new(
            opened.writer,
            Durability::Sync,
            GroupLimits::default(),
            Duration::ZERO,
        )
        .with_spin(spin)
    }

    /// Sends requests of `sizes` on `tx` from another thread, `after` from now.
    fn send_later(
        tx: &Sender<Req>,
        after: Duration,
        sizes: &'static [usize],
    ) -> std::thread::JoinHandle<()> {
        let tx = tx.clone();
        std::thread::spawn(move || {
            std::thread::sleep(after);
            for &size in sizes {
                tx.send(Req(size)).unwrap();
            }
        })
    }

    /// The committer spins only while requests keep arriving within its
    /// bound: a long wait turns spinning off until a short one again; and
    /// spinning changes nothing of what a group holds, nor of a close.
    #[test]
    fn the_committer_spins_while_requests_come_soon() {
        // Bounds far from the sleeps below, so that a loaded machine does
        // not change the outcome: 2 s where a wait must be short, 20 ms
        // where it must be long.
        let (long, short) = (Duration::from_secs(2), Duration::from_millis(20));
        let mut log = spinning(long);
        let callers = AtomicUsize::new(0);
        let (tx, rx) = queue::<Req>(8);
        assert!(log.spin_pays);
        assert!(log.spins_now(&callers));
        assert!(log.spins_now(&AtomicUsize::new(1)), "a lone writer");
        assert!(!log.spins_now(&AtomicUsize::new(2)), "several writers");

        // Sent soon: taken, and spinning stays on.
        let sender = send_later(&tx, Duration::from_millis(2), &[1, 2]);
        let Next::Group(g) = log.next_group(&rx, &callers) else {
            panic!("expected a group")
        };
        sender.join().unwrap();
        assert!(!g.is_empty());
        assert!(log.spin_pays);
        if g.len() == 1 {
            let Next::Group(g) = log.next_group(&rx, &callers) else {
                panic!("expected a group")
            };
            assert_eq!(g.len(), 1);
        }

        // Sent long after the spin ran out: the committer parks, and the
        // next wait does not spin.
        log.spin = short;
        let sender = send_later(&tx, Duration::from_millis(80), &[3]);
        let Next::Group(g) = log.next_group(&rx, &callers) else {
            panic!("expected a group")
        };
        sender.join().unwrap();
        assert_eq!(g.len(), 1);
        assert!(!log.spin_pays, "a long wait should turn spinning off");
        assert!(!log.spins_now(&callers));

        // A request waiting already: taken at once, whatever the state.
        tx.send(Req(4)).unwrap();
        let Next::Group(g) = log.next_group(&rx, &callers) else {
            panic!("expected a group")
        };
        assert_eq!(g.len(), 1);
        assert!(!log.spin_pays);

        // A short wait after parking turns spinning back on.
        log.spin = long;
        let sender = send_later(&tx, Duration::from_millis(1), &[5]);
        let Next::Group(g) = log.next_group(&rx, &callers) else {
            panic!("expected a group")
        };
        sender.join().unwrap();
        assert_eq!(g.len(), 1);
        assert!(log.spin_pays, "a short wait should turn spinning back on");

        // Every sender gone: the spin (at most its bound) ends in
        // `Closed`, not a hang.
        log.spin = short;
        drop(tx);
        assert!(matches!(log.next_group(&rx, &callers), Next::Closed));
    }
}
