//! The store's read-replica methods: opening one, refusing its writes,
//! and applying records taken from its writer's log (what they check is
//! `crate::replication`'s).

use std::path::Path;

use bytes::Bytes;

use super::Store;
use crate::committer::Request;
use crate::error::{Error, Result};
use crate::oneshot;
use crate::options::Options;
use crate::replication::{Applied, ApplyRequest, JournalApplied};

impl Store {
    /// Opens the store in `dir` as a read replica of `writer` (a
    /// description of the writer, for the refusals: its address, or its
    /// id and where it ships); see [`Options::replica_of`].
    pub fn open_replica(
        dir: impl AsRef<Path>,
        writer: impl Into<String>,
        options: Options,
    ) -> Result<Store> {
        Store::open_with(dir, options.replica_of(writer))
    }

    /// The writer this store is a read replica of, or `None` if it is
    /// writable.
    pub fn replica_of(&self) -> Option<String> {
        self.inner.replica.as_ref().map(|r| r.writer())
    }

    /// Names a new writer for a replica's refusals (another writer took
    /// the old one's place). Refused on a writable store.
    pub fn set_replica_of(&self, writer: impl Into<String>) -> Result<()> {
        match &self.inner.replica {
            Some(r) => {
                r.set_writer(writer.into());
                Ok(())
            }
            None => Err(Error::invalid("the store is not a read replica")),
        }
    }

    /// Refuses a write on a read replica.
    pub(crate) fn writable(&self) -> Result<()> {
        match &self.inner.replica {
            Some(r) => Err(r.refusal()),
            None => Ok(()),
        }
    }

    /// Applies records of the writer's log to a read replica: `records`
    /// holds whole records exactly as they are framed in the writer's
    /// segment files, back to back (no segment header).
    ///
    /// Every record's frame and checksums are checked, and its events
    /// decoded, before anything is written. Records wholly at or below the
    /// head are skipped (so the same bytes may be given twice), the last
    /// of them checked against the replica's own (positions, commit time,
    /// sequencing bytes); the first one after them must start at
    /// `head + 1`. Otherwise nothing is written ([`Error::InvalidInput`]: a
    /// gap; or, saying the writer's log "is not the one the replica
    /// holds", a record across the head or a skipped record that differs). The rest are written
    /// into the replica's log with the same bytes (positions, commit
    /// times, sequencing bytes), then indexed and published as a commit
    /// is: readers see them, subscribers are woken. Damaged bytes are
    /// [`Error::Corruption`]. Refused on a writable store.
    pub fn apply_records(&self, records: Bytes) -> Result<Applied> {
        if self.inner.replica.is_none() {
            return Err(Error::invalid(
                "records are applied only to a read replica (Options::replica_of)",
            ));
        }
        let records = crate::replication::cut(&records)?;
        if records.is_empty() {
            return Ok(Applied {
                head: self.head(),
                ..Applied::default()
            });
        }
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let (reply, answer) = oneshot::oneshot();
        self.inner
            .tx
            .send(Request::Apply(ApplyRequest { records, reply }))
            .map_err(|_| Error::Closed)?;
        answer.recv().unwrap_or(Err(Error::Closed))
    }

    /// Whether this store's log holds the record of `records` that
    /// contains `position` as its own: the same positions, commit time and
    /// sequencing bytes (payloads may differ where either side erased
    /// redacted events), as a replica checks a record it skips. `records`
    /// as [`replication::segment_records`](crate::replication::segment_records)
    /// returns them (each record's frame and head checksums are checked);
    /// `None` if no record of them contains `position`, or this store's
    /// log does not reach it. A writer about to ship to a bucket's prefix
    /// asks this of the record at the bucket's head: a store whose history
    /// differs below it must not replace what the bucket holds.
    pub fn holds_record(&self, records: &Bytes, position: u64) -> Result<Option<bool>> {
        if position > self.head() {
            return Ok(None);
        }
        let Some(theirs) = crate::replication::record_containing(records, position)? else {
            return Ok(None);
        };
        crate::replication::holds_as_own(&self.inner.reader, &theirs).map(Some)
    }

    /// Where this store's record holding `position` lies: the first
    /// position of its segment and its byte range in the segment's plain
    /// bytes (those of a compressed segment decompressed); `None` past the
    /// head. A writer checking a bucket's copy of its log fetches only
    /// that range of the copy's segment, which holds the same record at
    /// the same place when the histories agree
    /// ([`holds_record`](Store::holds_record) then says so).
    pub fn record_span(&self, position: u64) -> Result<Option<(u64, std::ops::Range<u64>)>> {
        if position == 0 || position > self.head() {
            return Ok(None);
        }
        Ok(self.inner.reader.record_span(position)?)
    }

    /// Applies the writer's lifecycle journal to a read replica: `journal`
    /// is the whole file (`LIFECYCLE` in the writer's directory, or a
    /// prefix of it made of whole entries). The entries the replica holds
    /// must be the first of it, byte for byte (else
    /// [`Error::InvalidInput`]: the writer's history is not the
    /// replica's); each later one is applied once the replica's head has
    /// reached the head it was made at, in order, and written to the
    /// replica's journal with the same bytes. Call again after
    /// [`apply_records`](Store::apply_records) while some wait. Refused on
    /// a writable store.
    pub fn apply_lifecycle(&self, journal: &[u8]) -> Result<JournalApplied> {
        if self.inner.replica.is_none() {
            return Err(Error::invalid(
                "a lifecycle journal is applied only to a read replica (Options::replica_of)",
            ));
        }
        self.replicate_journal(journal)
    }

    /// Installs one of the writer's snapshot files on a read replica:
    /// `file` is the whole file as the writer's `snapshots/` directory
    /// holds it. Its checksum and encoding are checked
    /// ([`Error::Corruption`] otherwise); a snapshot at a position past
    /// the replica's head is refused ([`Error::InvalidInput`]: apply the
    /// records first), so that a replica never hands out a state that
    /// includes events it cannot read yet. Replaces a snapshot of the key
    /// at the same position; keeps the key's others (the writer's
    /// deletions come through [`drop_snapshot`](Store::drop_snapshot)).
    /// Returns the snapshot's key and position. Refused on a writable
    /// store.
    pub fn apply_snapshot(&self, file: &[u8]) -> Result<(String, u64)> {
        if self.inner.replica.is_none() {
            return Err(Error::invalid(
                "a snapshot file is applied only to a read replica (Options::replica_of)",
            ));
        }
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let (key, snapshot) =
            gesta_compaction::snapshot::decode(file).map_err(|(offset, reason)| {
                Error::Corruption {
                    file: "(a snapshot file of the writer)".into(),
                    offset,
                    reason: reason.into(),
                }
            })?;
        let head = self.head();
        if snapshot.position > head {
            return Err(Error::invalid(format!(
                "the snapshot of {key:?} at position {} is past the replica's head {head}",
                snapshot.position
            )));
        }
        crate::snapshots::check_key(&key)?;
        let (snapshots, _) = self.inner.indexes.snapshots();
        snapshots
            .save(&key, snapshot.position, &snapshot.state, 0)
            .map_err(crate::indexes::snapshot_error)?;
        Ok((key, snapshot.position))
    }

    /// Removes a snapshot the writer no longer keeps from a read replica;
    /// whether there was one. Refused on a writable store.
    pub fn drop_snapshot(&self, key: &str, position: u64) -> Result<bool> {
        if self.inner.replica.is_none() {
            return Err(Error::invalid(
                "snapshots are dropped this way only on a read replica (Options::replica_of)",
            ));
        }
        if self.is_closed() {
            return Err(Error::Closed);
        }
        crate::snapshots::delete(&self.inner.indexes, key, position)
    }

    /// Every snapshot the store holds: key, position and file length, in
    /// no particular order.
    pub fn snapshot_inventory(&self) -> Result<Vec<(String, u64, u64)>> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let (snapshots, _) = self.inner.indexes.snapshots();
        snapshots
            .inventory()
            .map_err(crate::indexes::snapshot_error)
    }
}
