//! Checksums of a scan's next record, computed on a helper thread while the
//! scan's caller is still busy with the record before it.
//!
//! A forward scan verifies every record whole (its body checksum) before
//! handing it out, and for large records that checksum is about a sixth of
//! what reading an event costs. The bytes of a plain, mapped segment's
//! published records never change (erasure replaces whole files), so the
//! checksum of the record after the one just handed out can be computed
//! elsewhere in the meantime. The scan still compares it with the record's
//! own before handing the record out: a record is never used before it is
//! verified, and a checksum that is not ready when it is wanted is computed
//! on the scan's thread as before, so a busy helper never makes a scan
//! wait.
//!
//! One helper thread serves the whole process (started on first use, only
//! where there are two cores or more), with a short queue: a scan whose
//! job does not fit checksums its record itself. Each scan marks how far
//! it has read, and the helper passes over the bodies of records a scan
//! has already checksummed itself, so that a helper behind many scans
//! does not spend its time on checksums no one will use.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};

/// Records at least this long (frame included) are checksummed ahead:
/// smaller ones cost less to checksum than to hand over.
pub(crate) const AHEAD_FROM: u64 = 16 << 10;

/// How far ahead of a scan its records are checksummed: a job is handed
/// over whenever less than half of this is in flight, so that waking the
/// helper (a few microseconds of the scan's thread) is paid once per
/// several records.
const AHEAD_BYTES: u64 = 4 << 20;

/// How many bytes of records a scan hands over at once.
pub(crate) const BATCH_BYTES: u64 = AHEAD_BYTES / 2;

/// Jobs waiting for the helper at most: a scan keeps one or two in flight.
const QUEUE: usize = 16;

struct Job {
    /// Each record's offset and body.
    bodies: Vec<(u64, Bytes)>,
    /// Each checksum, with its record's offset.
    reply: Sender<(u64, u32)>,
    /// The offset below which the scan wants no more checksums.
    reached: Arc<AtomicU64>,
}

/// The bodies handed to the helper for one scan, in log order, and their
/// checksums as the helper computes them.
pub(crate) struct Ahead {
    /// The records handed over and not yet reached: `(offset, length)`.
    due: VecDeque<(u64, u64)>,
    /// Where the record after the last one handed over starts.
    end: u64,
    in_flight: u64,
    /// Checksums received and not yet taken, by offset, ascending.
    received: VecDeque<(u64, u32)>,
    reached: Arc<AtomicU64>,
    reply: Sender<(u64, u32)>,
    crcs: Receiver<(u64, u32)>,
}

impl Ahead {
    /// Checksums for the records from `offset` on, none handed over yet.
    pub(crate) fn new(offset: u64) -> Ahead {
        let (reply, crcs) = unbounded();
        Ahead {
            due: VecDeque::new(),
            end: offset,
            in_flight: 0,
            received: VecDeque::new(),
            reached: Arc::new(AtomicU64::new(offset)),
            reply,
            crcs,
        }
    }

    /// Whether the record `length` bytes long at `offset` is the next one
    /// handed over. If not, the checksums to come are of other records:
    /// the caller starts afresh.
    pub(crate) fn is_next(&self, offset: u64, length: u64) -> bool {
        self.due.front() == Some(&(offset, length))
    }

    /// The body checksum of the next record handed over (see
    /// [`is_next`](Self::is_next)), if the helper has computed it; if it
    /// is behind, `None`, and the caller checksums the record itself (and
    /// the helper, told so, passes it over).
    pub(crate) fn take(&mut self) -> Option<u32> {
        let (offset, length) = self.due.pop_front()?;
        self.in_flight -= length;
        self.reached.store(offset + length, Ordering::Relaxed);
        self.collect();
        while let Some(&(at, crc)) = self.received.front() {
            if at > offset {
                break;
            }
            self.received.pop_front();
            if at == offset {
                #[cfg(feature = "testing")]
                TAKEN.fetch_add(1, Ordering::Relaxed);
                return Some(crc);
            }
        }
        None
    }

    /// Moves the checksums the helper has sent into `received`.
    fn collect(&mut self) {
        self.received.extend(self.crcs.try_iter());
    }

    /// Whether more should be handed over.
    pub(crate) fn wants_more(&self) -> bool {
        self.in_flight < AHEAD_BYTES / 2
    }

    /// Where the next record to hand over starts.
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// Hands the helper the bodies of the records `(length, body)` that
    /// start at [`end`](Self::end) and follow each other; `false` (and
    /// nothing handed over) if there is no helper or its queue is full.
    pub(crate) fn hand_over(&mut self, records: Vec<(u64, Bytes)>) -> bool {
        let Some(helper) = helper() else {
            return false;
        };
        let mut at = self.end;
        let mut bodies = Vec::with_capacity(records.len());
        let mut due = Vec::with_capacity(records.len());
        for (length, body) in records {
            due.push((at, length));
            bodies.push((at, body));
            at += length;
        }
        let job = Job {
            bodies,
            reply: self.reply.clone(),
            reached: self.reached.clone(),
        };
        if helper.try_send(job).is_err() {
            return false;
        }
        self.in_flight += at - self.end;
        self.end = at;
        self.due.extend(due);
        true
    }
}

/// How many checksums computed ahead scans have used.
#[cfg(feature = "testing")]
static TAKEN: AtomicU64 = AtomicU64::new(0);

/// How many checksums computed ahead scans have used, in this process so
/// far (for tests that must know the helper did the work).
#[cfg(feature = "testing")]
pub fn taken() -> u64 {
    TAKEN.load(Ordering::Relaxed)
}

/// Whether this process checksums ahead of scans (two cores or more).
#[cfg(feature = "testing")]
pub fn available() -> bool {
    helper().is_some()
}

fn helper() -> Option<&'static Sender<Job>> {
    static HELPER: OnceLock<Option<Sender<Job>>> = OnceLock::new();
    HELPER
        .get_or_init(|| {
            if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
                return None;
            }
            let (jobs, queue) = bounded::<Job>(QUEUE);
            std::thread::Builder::new()
                .name("gesta-checksum".into())
                .spawn(move || {
                    for job in queue {
                        for (offset, body) in &job.bodies {
                            // A record the scan has checksummed itself.
                            if *offset < job.reached.load(Ordering::Relaxed) {
                                continue;
                            }
                            // A scan that ended listens no more, and needs
                            // the rest no more either.
                            if job.reply.send((*offset, crc32fast::hash(body))).is_err() {
                                break;
                            }
                        }
                    }
                })
                .ok()?;
            Some(jobs)
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Vec<(u64, Bytes)> {
        let body = |n: u32| Bytes::from((0..n).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>());
        [70_000u32, 20_000, 123_457, 40_000]
            .into_iter()
            .map(|n| (u64::from(n) + 12, body(n)))
            .collect()
    }

    /// Waits until the helper has sent the checksum of the record at
    /// `offset`.
    fn wait_for(ahead: &mut Ahead, offset: u64) {
        let deadline = crate::time::now() + std::time::Duration::from_secs(10);
        loop {
            ahead.collect();
            if ahead.received.iter().any(|&(at, _)| at == offset) {
                return;
            }
            assert!(crate::time::now() < deadline, "the helper never answered");
            std::thread::yield_now();
        }
    }

    /// What the helper computes is each body's CRC-32, taken record by
    /// record; a record out of turn is not the next; a checksum taken
    /// before it is ready is computed by the caller, and the helper's
    /// later ones still match their records.
    #[test]
    fn the_helper_computes_each_bodys_checksum() {
        let records = records();
        let mut ahead = Ahead::new(100);
        if !ahead.hand_over(records.clone()) {
            // One core: no helper, and scans checksum on their own thread.
            assert!(std::thread::available_parallelism().map_or(1, |n| n.get()) < 2);
            return;
        }
        assert_eq!(ahead.end(), 100 + records.iter().map(|r| r.0).sum::<u64>());
        assert!(!ahead.is_next(100 + 70_012, 20_012), "out of turn");
        let mut at = 100;
        for (i, (length, body)) in records.iter().enumerate() {
            assert!(ahead.is_next(at, *length));
            // Every record's checksum is waited for but the second's,
            // which is taken at once: if the helper is behind, the caller
            // computes it.
            if i != 1 {
                wait_for(&mut ahead, at);
            }
            match ahead.take() {
                Some(crc) => assert_eq!(crc, crc32fast::hash(body), "record {i}"),
                None => assert_eq!(i, 1, "only a record taken at once may be missing"),
            }
            at += length;
        }
        assert_eq!(ahead.take(), None, "nothing more was handed over");
        assert!(ahead.wants_more());
    }

    /// A record the scan has reached is passed over by the helper: it
    /// sends no checksum for it.
    #[test]
    fn the_helper_passes_over_what_the_scan_has_reached() {
        let records = records();
        let mut ahead = Ahead::new(100);
        let past = 100 + records[0].0 + records[1].0;
        // As if the scan had checksummed the first two itself already.
        ahead.reached.store(past, Ordering::Relaxed);
        if !ahead.hand_over(records.clone()) {
            // One core: no helper.
            assert!(std::thread::available_parallelism().map_or(1, |n| n.get()) < 2);
            return;
        }
        wait_for(&mut ahead, past + records[2].0);
        let offsets: Vec<u64> = ahead.received.iter().map(|&(at, _)| at).collect();
        assert_eq!(offsets, vec![past, past + records[2].0]);
    }
}
