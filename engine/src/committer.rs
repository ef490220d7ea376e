//! The committer thread: the only writer of the log and of the active
//! memtable.
//!
//! It takes every append waiting in the queue and admits them one by one in
//! arrival order — idempotency, expected revisions and the DCB condition are
//! checked against the committed indices plus the batches admitted earlier in
//! the same group (see `admission`) — assigns positions and stream
//! revisions, writes the group with one write and, in `Sync` mode, one
//! `fdatasync`, then publishes: the memtable gets the group's keys, the head
//! advances, the subscribers those keys concern are woken, and each caller is
//! answered. If the group's write or sync fails, every caller of the group
//! gets the error the log gives, which says what became of the group (see
//! `gesta_wal::writer`): `Error::Io`, not in the log and never will be;
//! `Error::OutcomeUnknown`, perhaps. A failure after the log started
//! writing the group poisons the store; one before (no room on the disk)
//! leaves it usable.
//!
//! On a read replica it writes, instead, records taken from the writer's
//! log (`Request::Apply`, checked and indexed beforehand by
//! `replication`): their positions and commit times are the writer's, so
//! there is nothing to admit, and they are published as a group is.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::{Receiver, Sender};

use crate::oneshot;
use gesta_index::Memtable;
use gesta_wal::{GroupCommit, GroupSize, Next, Pushed, RecordMeta, WalReader};

use crate::admission::Admission;
pub(crate) use crate::admission::{Admitted, AppendRequest, BatchKeys, Group};
use crate::append::Appended;
use crate::clock::Clock;
use crate::compactor::FlushJob;
use crate::error::{Error, Result};
use crate::indexes::Indexes;
use crate::notify::Hub;
use crate::replication::{Applied, ApplyRecord, ApplyRequest};
use crate::shared::Shared;
use crate::telemetry::{self, Stage};

pub(crate) enum Request {
    Append(AppendRequest),
    /// Write records taken from another store's log (a replica's only
    /// way to grow; see `replication`).
    Apply(ApplyRequest),
    /// Freeze the active memtable and flush every frozen one to a run.
    FlushIndex(Sender<Result<()>>),
    /// Make everything committed durable (for modes that do not sync each
    /// group).
    Sync(oneshot::Sender<Result<()>>),
    /// Seal the active segment if it holds a record (so that a rewrite of
    /// sealed segments reaches every record written so far).
    Seal(oneshot::Sender<Result<()>>),
    Close(oneshot::Sender<Result<()>>),
}

impl GroupSize for Request {
    fn group_bytes(&self) -> usize {
        match self {
            Request::Append(a) => a.payload.bytes().len(),
            Request::Apply(a) => a.records.iter().map(|r| r.len).sum(),
            Request::FlushIndex(_) | Request::Sync(_) | Request::Seal(_) | Request::Close(_) => 0,
        }
    }
}

pub(crate) struct Committer {
    pub log: GroupCommit,
    pub admission: Admission,
    pub reader: WalReader,
    pub shared: Arc<Shared>,
    pub clock: Arc<dyn Clock>,
    pub last_timestamp: u64,
    pub indexes: Arc<Indexes>,
    pub memtable: Arc<Memtable>,
    /// First position the active memtable covers.
    pub memtable_lo: u64,
    /// Freeze the active memtable once it holds this many postings.
    pub flush_postings: usize,
    /// On close, flush the memtable if it holds at least this many postings.
    pub close_flush_postings: usize,
    pub flusher: Option<Sender<FlushJob>>,
    /// Segments in the log after the last commit, to notice a rollover.
    pub segments_seen: usize,
    /// Whether a rollover should wake the compactor to compress the
    /// segment it sealed.
    pub compress_on_roll: bool,
    /// Wakes subscribers when the head moves.
    pub hub: Arc<Hub>,
    /// The metrics it reports, labelled with the store's tenant.
    pub meters: telemetry::Meters,
}

/// A copy of an error for every caller of a failed group (`io::Error` is not
/// `Clone`).
fn replicate(e: &Error) -> Error {
    match e {
        Error::Io { path, source } => Error::Io {
            path: path.clone(),
            source: copy_io(source),
        },
        Error::OutcomeUnknown { path, source } => Error::OutcomeUnknown {
            path: path.clone(),
            source: copy_io(source),
        },
        Error::Corruption {
            file,
            offset,
            reason,
        } => Error::Corruption {
            file: file.clone(),
            offset: *offset,
            reason: reason.clone(),
        },
        _ => Error::Poisoned,
    }
}

fn copy_io(source: &std::io::Error) -> std::io::Error {
    match source.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::new(source.kind(), source.to_string()),
    }
}

impl Committer {
    pub fn run(mut self, rx: Receiver<Request>) {
        loop {
            match self.log.next_group(&rx, &self.shared.callers) {
                Next::Closed => {
                    let _ = self.close();
                    return;
                }
                // A failure poisons the log, which logs it.
                Next::SyncDue => {
                    let _ = self.log.sync();
                }
                Next::Group(requests) => {
                    if !self.commit_group(requests) {
                        return;
                    }
                }
            }
        }
    }

    fn head(&self) -> u64 {
        self.log.next_position() - 1
    }

    /// Syncs the log if anything written is not yet durable.
    fn sync_now(&mut self) -> Result<()> {
        Ok(self.log.sync()?)
    }

    /// Answers every caller of a group that did not commit with `e`. The
    /// admission caches counted the group's batches, so they are dropped.
    /// A retry of a batch committed before the group is answered with its
    /// positions all the same: its events are in the store, and an error
    /// would tell its caller they never will be.
    fn fail_all(&mut self, group: &mut Group, e: &Error) {
        self.admission.forget();
        group.ids.clear();
        group.batches.clear();
        let first = group
            .admitted
            .iter()
            .filter(|a| a.events.is_some())
            .map(|a| a.appended.first)
            .min()
            .unwrap_or(u64::MAX);
        for a in group.admitted.drain(..) {
            if a.events.is_none() && a.appended.last < first {
                a.reply.send(Ok(a.appended));
                continue;
            }
            let e = replicate(e);
            self.meters.refused(&e);
            a.reply.send(Err(e));
        }
    }

    /// Admits one request into the group, or answers it with its error.
    fn admit(&mut self, group: &mut Group, mut a: AppendRequest, timestamp: u64) {
        a.queued.taken(&self.meters);
        let _span = telemetry::enter(Stage::Admit);
        if self.log.is_poisoned() {
            self.meters.refused(&Error::Poisoned);
            a.reply.send(Err(Error::Poisoned));
            return;
        }
        let head = self.shared.head.load(Ordering::Acquire);
        match self.admission.check(group, &a, head) {
            Ok(Some(appended)) => {
                group.admitted.push(Admitted {
                    reply: a.reply,
                    appended,
                    events: None,
                    tracking: None,
                });
                return;
            }
            Ok(None) => {}
            Err(e) => {
                self.meters.refused(&e);
                a.reply.send(Err(e));
                return;
            }
        }
        let first = self.log.next_position();
        let count = a.events.len() as u32;
        let mut seq = Vec::new();
        for (index, stream) in a.events.streams() {
            let revision = self.admission.take_revision(stream);
            crate::codec::put_varint(&mut seq, index as u64);
            crate::codec::put_varint(&mut seq, revision);
        }
        let tracking = a.tracking.map(|t| {
            let (key, source, position) = *t;
            crate::codec::put_tracking(&mut seq, count, &source, position);
            self.admission.track(&key, position);
            key
        });
        let meta = RecordMeta {
            first_position: first,
            count,
            timestamp_micros: timestamp,
        };
        let mut pushed = self.log.push(meta, &seq, &a.payload);
        if let Ok(Pushed::SegmentFull) = pushed {
            // A group never spans two segments: commit what the group holds,
            // then this batch starts the next segment in a group of its own.
            let before = std::mem::take(group);
            if let Err(e) = self.publish(before, timestamp) {
                // The batch was checked against the failed batches as if
                // they had committed (revisions, conditions): it fails too,
                // having written nothing.
                self.meters.refused(&e);
                a.reply.send(Err(e));
                return;
            }
            pushed = self.log.push(meta, &seq, &a.payload);
        }
        if let Err(e) = pushed {
            let e = Error::from(e);
            self.fail_all(group, &e);
            self.meters.refused(&e);
            a.reply.send(Err(e));
            return;
        }
        for (position, id) in (first..).zip(a.events.ids()) {
            if let Some(id) = id {
                group.ids.insert(id, position);
            }
        }
        group
            .batches
            .insert(first, (count, a.payload.bytes().clone()));
        group.admitted.push(Admitted {
            reply: a.reply,
            appended: Appended {
                first,
                last: meta.last_position(),
            },
            events: Some(a.events),
            tracking,
        });
    }

    /// Commits one group; returns false when the store is closing.
    fn commit_group(&mut self, requests: Vec<Request>) -> bool {
        // Every group before this one is published (or failed, and
        // forgotten), so the index counts all it admitted.
        self.admission.trim(crate::admission::CACHED_KEYS);
        let mut group = Group::default();
        let mut close = None;
        let mut flushes = Vec::new();
        let mut syncs = Vec::new();
        let mut seals = Vec::new();
        let _span = telemetry::enter(Stage::Group);
        let timestamp = self.clock.now_micros().max(self.last_timestamp);
        for request in requests {
            match request {
                Request::Close(reply) => close = Some(reply),
                Request::FlushIndex(reply) => flushes.push(reply),
                Request::Sync(reply) => syncs.push(reply),
                Request::Seal(reply) => seals.push(reply),
                Request::Append(a) if close.is_some() => {
                    a.reply.send(Err(Error::Closed));
                }
                Request::Append(a) => self.admit(&mut group, a, timestamp),
                Request::Apply(a) => {
                    // In log order after whatever this group admitted (a
                    // replica admits nothing: its appends are refused).
                    if !group.admitted.is_empty() {
                        let _ = self.publish(std::mem::take(&mut group), timestamp);
                    }
                    let applied = self.apply(a.records);
                    a.reply.send(applied);
                }
            }
        }
        if !group.admitted.is_empty() {
            // The callers have their answers, errors included.
            let _ = self.publish(group, timestamp);
        }
        if !syncs.is_empty() {
            let result = self.sync_now();
            for reply in syncs {
                reply.send(result.as_ref().map(|_| ()).map_err(replicate));
            }
        }
        if !seals.is_empty() {
            let result = self.log.seal_active().map(drop).map_err(Error::from);
            for reply in seals {
                reply.send(result.as_ref().map(|_| ()).map_err(replicate));
            }
        }
        for reply in flushes {
            self.freeze();
            match &self.flusher {
                Some(f) => {
                    let _ = f.send(FlushJob { reply: Some(reply) });
                }
                None => {
                    let _ = reply.send(Err(Error::Closed));
                }
            }
        }
        if let Some(reply) = close {
            reply.send(self.close());
            return false;
        }
        true
    }

    /// Writes and syncs the group, then makes it visible and answers. If
    /// it fails, every caller is answered with the error, and a copy of it
    /// is returned.
    fn publish(&mut self, mut group: Group, timestamp: u64) -> Result<()> {
        let written = {
            let _span = telemetry::enter(Stage::WriteSync);
            let mut clock = telemetry::WriteSync::start(&self.meters);
            let written = self.log.commit_observed(&mut clock);
            if written.is_ok() {
                clock.done();
            }
            written
        };
        if let Err(e) = written {
            let e = Error::from(e);
            self.fail_all(&mut group, &e);
            return Err(e);
        }
        let _span = telemetry::enter(Stage::Publish);
        self.last_timestamp = timestamp;
        // Everything the callers' threads allocated for the group is freed
        // here, before any of them is answered: freed after, it would be
        // freed while they allocate for their next appends, and the two
        // threads would take turns at the allocator's lock (a lone writer
        // paid a futex wait or wake per append for it).
        let Group {
            admitted,
            ids,
            batches: payloads,
        } = group;
        drop((ids, payloads));
        let (mut batches, mut events_committed, mut duplicates) = (0, 0, 0);
        let keys = admitted
            .iter()
            .flat_map(|a| &a.events)
            .map(BatchKeys::key_count)
            .sum::<usize>();
        let mut entries = Vec::with_capacity(keys + admitted.len());
        let mut replies = Vec::with_capacity(admitted.len());
        for mut a in admitted {
            match &a.events {
                Some(_) => {
                    batches += 1;
                    events_committed += a.appended.last - a.appended.first + 1;
                }
                None => duplicates += 1,
            }
            if let Some(events) = a.events.take() {
                events.into_entries(a.appended.first, &mut entries);
            }
            if let Some(key) = a.tracking.take() {
                entries.push((key, a.appended.last));
            }
            replies.push((a.reply, a.appended));
        }
        self.make_visible(&entries);
        drop(entries);
        self.meters.committed(batches, events_committed, duplicates);
        for (reply, appended) in replies {
            reply.send(Ok(appended));
        }
        self.after_publish();
        Ok(())
    }

    /// Indexes what was just written, advances the head to the log's and
    /// wakes the subscribers `entries` concern.
    fn make_visible(&mut self, entries: &[(gesta_index::Key, u64)]) {
        self.memtable.insert_many(entries);
        let head = self.head();
        self.shared.head.store(head, Ordering::Release);
        self.hub.publish(entries.iter().map(|(key, _)| key));
    }

    /// After a publish: freezes a memtable grown large, and wakes the
    /// compactor for it or for a segment a rollover sealed.
    fn after_publish(&mut self) {
        let flush = self.memtable.postings() >= self.flush_postings && self.freeze();
        // A rollover sealed a segment the compactor may now compress.
        let segments = self.reader.segments().len();
        let rolled = self.compress_on_roll && segments != self.segments_seen;
        self.segments_seen = segments;
        if (flush || rolled)
            && let Some(f) = &self.flusher
        {
            let _ = f.send(FlushJob { reply: None });
        }
    }

    /// Writes records taken from another store's log after the head, with
    /// their own positions and commit times (the same bytes: the frame is
    /// a function of its fields), and publishes them as a commit does.
    /// Records wholly at or below the head are skipped; the first one
    /// written must start right after it. A segment rollover commits and
    /// publishes what came before it first, so a failure leaves a prefix
    /// of the records applied, never a gap.
    fn apply(&mut self, records: Vec<ApplyRecord>) -> Result<Applied> {
        if self.log.is_poisoned() {
            return Err(Error::Poisoned);
        }
        let given = records.len() as u64;
        let skip = crate::replication::after_head(&records, self.head())?;
        // The last record skipped must be the replica's own: the same
        // positions, commit time and sequencing bytes (payloads may differ
        // where either side has erased redacted events). A writer whose
        // log is another one's is found here rather than applied after it.
        if let Some(r) = skip.checked_sub(1).map(|i| &records[i]) {
            let meta = r.record.meta;
            if !crate::replication::holds_as_own(&self.reader, &r.record)? {
                return Err(Error::invalid(format!(
                    "the writer's record of positions {}..={} differs from the replica's: the \
                     writer's log is not the one the replica holds",
                    meta.first_position,
                    meta.last_position()
                )));
            }
        }
        let mut applied = Applied {
            records: given,
            skipped: skip as u64,
            ..Applied::default()
        };
        let mut entries = Vec::new();
        let mut batches = 0;
        for r in records.into_iter().skip(skip) {
            let meta = r.record.meta;
            let payload = gesta_wal::Payload::new(r.record.payload);
            let mut pushed = self.log.push(meta, &r.record.seq, &payload);
            if let Ok(gesta_wal::Pushed::SegmentFull) = pushed {
                self.commit_applied(&mut entries, &mut batches)?;
                pushed = self.log.push(meta, &r.record.seq, &payload);
            }
            // After a commit the group is empty, and a push into an empty
            // group always adds the record (rolling over first if needed).
            let _: gesta_wal::Pushed = pushed?;
            self.last_timestamp = self.last_timestamp.max(meta.timestamp_micros);
            entries.extend(r.entries);
            batches += 1;
            applied.events += u64::from(meta.count);
        }
        self.commit_applied(&mut entries, &mut batches)?;
        applied.head = self.head();
        Ok(applied)
    }

    /// Commits the records pushed by `apply` since the last call and
    /// publishes their `entries`.
    fn commit_applied(
        &mut self,
        entries: &mut Vec<(gesta_index::Key, u64)>,
        batches: &mut u64,
    ) -> Result<()> {
        if *batches == 0 {
            return Ok(());
        }
        self.log.commit().map_err(Error::from)?;
        // Not counted as appends in the metrics: the writer counted them.
        self.make_visible(entries);
        entries.clear();
        *batches = 0;
        self.after_publish();
        Ok(())
    }

    /// Freezes the active memtable at the head; returns whether it did.
    fn freeze(&mut self) -> bool {
        let head = self.head();
        if self.memtable.is_empty() {
            return false;
        }
        // A run must never cover log records that are not durable: after a
        // power loss the MANIFEST would name positions the log lost. In
        // `Periodic` and `Buffered` modes the log is synced here first.
        if self.log.sync().is_err() {
            return false;
        }
        if !self.indexes.freeze(self.memtable_lo, head) {
            return false;
        }
        self.memtable = self.indexes.active();
        self.memtable_lo = head + 1;
        true
    }

    /// Syncs the log and, if the memtable is large enough that replaying it
    /// would slow the next open down, flushes it.
    fn close(&mut self) -> Result<()> {
        self.flusher = None;
        if self.log.is_poisoned() {
            return Ok(());
        }
        self.log.close()?;
        if self.memtable.postings() >= self.close_flush_postings {
            self.freeze();
        }
        self.indexes.flush_frozen()
    }
}
