//! Erasing redacted and removed events' bytes from the store's files: the
//! step of [`Store::compact`] that makes [`redact`](Store::redact) (and
//! [`remove`](Store::remove) and the operations built on it) leave no byte
//! of an erased event's data or metadata in any file.
//!
//! The operations themselves only record the positions (the lifecycle
//! journal) and make reads return the events without their data, or not
//! at all. Here, for every such event whose record still holds its
//! bytes:
//!
//! 1. the active segment is sealed if it holds one (a sealed segment is
//!    immutable, so it can be rewritten whole and swapped atomically);
//! 2. every snapshot, of any key, at or after the first such event
//!    redacted is deleted (a removed event happened, and what a snapshot
//!    folded from it stays true), and, since a snapshot's number may be
//!    a stream revision, every one at or after the lowest revision of
//!    such an event in a stream — a snapshot may hold state folded from the data, and
//!    deleting it first means a crash before the rewrite leaves nothing
//!    that the next compaction would not delete again; so is the
//!    in-memory state of each registered projection that folded such an
//!    event (it is folded again from an older snapshot), else the next
//!    projection pass would write it to a snapshot again;
//! 3. each segment holding one is rewritten (`gesta-wal`'s
//!    `rewrite_sealed`): the event's metadata and data bytes zeroed, its
//!    redacted flag set, every checksum computed again, every record at
//!    its offset — atomically, by rename — and a compressed segment
//!    compressed again. A plain segment whose rewrite zeroes at least
//!    [`Options::reclaim_share`](crate::Options::reclaim_share) of its
//!    bytes is written compressed instead, which gives their space back
//!    (a plain segment's records keep their length).
//!
//! Which events still hold their bytes is read from the log itself (the
//! redacted flag), so the work survives crashes and restarts without any
//! state of its own: a rewrite that did not finish is done again.

use std::collections::BTreeSet;

use crate::codec::{redact_payload, redact_payload_noting};
use crate::committer::Request;
use crate::error::{Error, Result};

use super::Store;

/// What [`Store::erase_redacted`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Erased {
    /// Redacted events whose bytes were erased now.
    pub events: u64,
    /// Segment files rewritten.
    pub segments: u64,
    /// Snapshot files deleted.
    pub snapshots: u64,
    /// Plain segments written compressed to give their erased bytes'
    /// space back ([`Options::reclaim_share`](crate::Options::reclaim_share)).
    pub compressed: u64,
    /// Bytes the rewritten segments' files shrank by.
    pub bytes_freed: u64,
}

impl Store {
    /// Erases from the log's files the bytes of every redacted event that
    /// still holds them; see the module docs.
    pub(crate) fn erase_redacted(&self) -> Result<Erased> {
        let inner = &self.inner;
        let amendments = inner.indexes.amendments();
        let mut erased = Erased::default();
        // 1. Which redacted events still hold their bytes, of those
        // redacted or removed by now. Every later step works on this set
        // only: a redaction made while this runs waits for the next
        // compaction, which finds its bytes and deletes its snapshots
        // (erasing its bytes now, with its snapshots chosen before it,
        // would leave them for good).
        let pending = self.holding_erased_bytes(&amendments.erasable())?;
        if pending.is_empty() {
            return Ok(erased);
        }
        // From here on, every snapshot may hold state folded from an erased
        // event's data: at or after its position, or its stream revision
        // (a snapshot's number may be either).
        let first_redacted = self
            .snapshots_erased_from(&pending, |p| amendments.is_redacted(p))?
            .unwrap_or(u64::MAX);
        let segments = inner.reader.segments();
        let active = segments.len().checked_sub(1).and_then(|i| segments.get(i));
        if active.is_some_and(|s| s.first_position() <= *pending.last().unwrap_or(&0)) {
            inner.ask_committer(Request::Seal)?;
        }
        // 2. Snapshots that may hold what was folded from the data, and
        // the projections' states in memory that may (or the next pass
        // would write them to a snapshot again).
        let (snapshots, _) = inner.indexes.snapshots();
        let snapshot_error = crate::indexes::snapshot_error;
        let mut delete_snapshots = || -> Result<()> {
            for key in snapshots.keys().map_err(snapshot_error)? {
                for position in snapshots.list(&key).map_err(snapshot_error)? {
                    if position >= first_redacted
                        && snapshots.delete(&key, position).map_err(snapshot_error)?
                    {
                        erased.snapshots += 1;
                    }
                }
            }
            Ok(())
        };
        if first_redacted != u64::MAX {
            inner
                .projections
                .forgetting_from(first_redacted, &mut delete_snapshots)?;
        }
        // 3. The segments.
        let firsts: BTreeSet<u64> = pending
            .iter()
            .filter_map(|&p| {
                inner
                    .reader
                    .segments()
                    .find(p)
                    .map(|(_, s)| s.first_position())
            })
            .collect();
        let settings = inner.compression.unwrap_or_default();
        for first in firsts {
            let mut failed = None;
            let mut events = 0;
            let report = inner.compressor.rewrite_sealed_reclaiming(
                first,
                settings,
                inner.reclaim_share,
                &mut |record| match redact_payload(record, &|p| pending.binary_search(&p).is_ok()) {
                    Ok(Some(payload)) => {
                        let (lo, hi) = (record.meta.first_position, record.meta.last_position());
                        events += within(&pending, lo, hi).len() as u64;
                        Some(payload)
                    }
                    Ok(None) => None,
                    Err(e) => {
                        failed.get_or_insert(e);
                        None
                    }
                },
            )?;
            if let Some(e) = failed {
                return Err(e);
            }
            if let Some(report) = report {
                erased.segments += 1;
                erased.events += events;
                erased.compressed += u64::from(report.compressed);
                erased.bytes_freed += report.file_bytes_before.saturating_sub(report.file_bytes);
            }
        }
        // A segment that could not be rewritten (not yet complete) keeps
        // bytes: say so rather than report them erased.
        if let Some(&position) = self.holding_erased_bytes(&pending)?.first() {
            let path = inner
                .reader
                .segments()
                .find(position)
                .map(|(_, s)| s.path())
                .unwrap_or_default();
            return Err(Error::Io {
                path,
                source: std::io::Error::other(format!(
                    "the bytes of the event at position {position} (redacted or removed) could not be erased yet; compact again"
                )),
            });
        }
        Ok(erased)
    }

    /// Those of the `redacted` positions (ascending; redacted or removed)
    /// whose events' bytes are still in the log, ascending; not those an
    /// earlier rewrite erased, even in a record it must rewrite again.
    fn holding_erased_bytes(&self, redacted: &[u64]) -> Result<Vec<u64>> {
        let inner = &self.inner;
        let named = |p: u64| redacted.binary_search(&p).is_ok();
        let mut pending = Vec::new();
        let mut next = 0;
        for &position in redacted {
            if position < next {
                continue;
            }
            let Some(record) = inner.reader.record_containing(position)? else {
                continue;
            };
            next = record.meta.last_position() + 1;
            redact_payload_noting(&record, &named, &mut pending)?;
        }
        Ok(pending)
    }
}

impl Store {
    /// [`snapshots_erased_from`](crate::lifecycle::snapshots_erased_from)
    /// the events of `pending` that `redacted` names (a removed event
    /// happened, and what a snapshot folded from it stays true).
    fn snapshots_erased_from(
        &self,
        pending: &[u64],
        redacted: impl Fn(u64) -> bool,
    ) -> Result<Option<u64>> {
        let mut erased = Vec::new();
        let mut next = 0;
        for &position in pending {
            if position < next || !redacted(position) {
                continue;
            }
            let Some(record) = self.inner.reader.record_containing(position)? else {
                continue;
            };
            next = record.meta.last_position() + 1;
            let held = within(
                pending,
                record.meta.first_position,
                record.meta.last_position(),
            );
            crate::codec::each_event_of(&record, |e| {
                if held.binary_search(&e.position).is_ok() && redacted(e.position) {
                    erased.push((e.position, e.revision));
                }
            })?;
        }
        Ok(crate::lifecycle::snapshots_erased_from(erased))
    }
}

/// The stretch of `sorted` (ascending) from `lo` to `hi`, found by binary
/// search: a pass over every record holding erased events must not scan
/// all of them for each.
fn within(sorted: &[u64], lo: u64, hi: u64) -> &[u64] {
    let from = sorted.partition_point(|&p| p < lo);
    let to = sorted.partition_point(|&p| p <= hi);
    sorted.get(from..to.max(from)).unwrap_or_default()
}
