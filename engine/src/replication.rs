//! Read replicas: a store that takes its log from another store's files
//! instead of from appends.
//!
//! A replica is opened with [`Options::replica_of`](crate::Options::replica_of)
//! (or [`Store::open_replica`](crate::Store::open_replica)), naming the
//! writer it follows. Every call that would change what the store holds
//! (appends, lifecycle operations, snapshot writes and deletes,
//! projections, durable subscription cursors) is refused with
//! [`Error::Replica`], which names that writer; reads
//! and live subscriptions work as on any store.
//!
//! Its log grows only through [`Store::apply_records`](crate::Store::apply_records):
//! whole records exactly as the writer framed them in its segment files.
//! This module owns what happens to those bytes in the caller's thread —
//! cutting them into records, checking every frame and checksum, computing
//! each event's index keys — so that the committer (still the log's only
//! writer) only checks the positions against its head, writes the records
//! with their own positions and commit times, and publishes them as it
//! publishes a commit group.
//!
//! The writer's lifecycle journal (retroactive tags, redactions,
//! removals, retention rules) is followed through
//! [`Store::apply_lifecycle`](crate::Store::apply_lifecycle): each entry
//! the replica lacks is written to its journal with the same bytes and
//! applied once the replica's head has reached the head the entry was
//! made at. A replica enforces no retention rule itself: the removals
//! the writer's rules make come through the journal.
//!
//! The writer's snapshots are followed file by file:
//! [`Store::apply_snapshot`](crate::Store::apply_snapshot) installs one
//! (checked, and never past the replica's head, so a replica never hands
//! out a state that includes events it cannot yet read), and
//! [`Store::drop_snapshot`](crate::Store::drop_snapshot) removes one the
//! writer no longer keeps.

use bytes::Bytes;
use gesta_index::Key;
use gesta_wal::Record;
use gesta_wal::format::{Frame, decode_record};
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::oneshot;

/// The writer a replica follows, as it names it in its refusals. It may
/// change while the replica is open (a new writer took the old one's
/// place).
#[derive(Debug)]
pub(crate) struct ReplicaOf {
    writer: Mutex<String>,
}

impl ReplicaOf {
    pub(crate) fn new(writer: String) -> ReplicaOf {
        ReplicaOf {
            writer: Mutex::new(writer),
        }
    }

    pub(crate) fn writer(&self) -> String {
        self.writer.lock().clone()
    }

    pub(crate) fn set_writer(&self, writer: String) {
        *self.writer.lock() = writer;
    }

    /// The refusal of a write.
    pub(crate) fn refusal(&self) -> Error {
        Error::Replica {
            writer: self.writer(),
        }
    }
}

/// One record to apply: checked, with the index entries of its events.
pub(crate) struct ApplyRecord {
    pub record: Record,
    /// Its framed length, as it was given.
    pub len: usize,
    /// The index entries of its events (and its tracking info), with
    /// their positions.
    pub entries: Vec<(Key, u64)>,
}

/// Records for the committer to apply, in order.
pub(crate) struct ApplyRequest {
    pub records: Vec<ApplyRecord>,
    pub reply: oneshot::Sender<Result<Applied>>,
}

/// What [`Store::apply_records`](crate::Store::apply_records) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Applied {
    /// Records given.
    pub records: u64,
    /// Records skipped: wholly at or below the head already.
    pub skipped: u64,
    /// Events written (in the records not skipped).
    pub events: u64,
    /// The head after the apply.
    pub head: u64,
}

/// What [`Store::apply_lifecycle`](crate::Store::apply_lifecycle) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JournalApplied {
    /// Entries applied now.
    pub applied: u64,
    /// Entries the replica lacks that wait for its head to reach the head
    /// they were made at.
    pub waiting: u64,
    /// The sequence of the replica's last entry.
    pub sequence: u64,
}

/// Cuts `bytes` into records, checking each record's frame and checksums
/// and computing its index entries. The bytes must be whole records and
/// nothing else (no segment header, no preallocated zeros), each
/// starting at the position after the previous one's last.
pub(crate) fn cut(bytes: &Bytes) -> Result<Vec<ApplyRecord>> {
    let mut records: Vec<ApplyRecord> = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let damaged = |reason: String| Error::Corruption {
            file: "(records to apply)".into(),
            offset: offset as u64,
            reason,
        };
        let (record, len) = match decode_record(&bytes.slice(offset..)) {
            Frame::Record(record, len) => (record, len),
            Frame::End => return Err(damaged("zeros where a record should start".into())),
            Frame::Invalid { reason, .. } => return Err(damaged(reason.into())),
        };
        if let Some(previous) = records.last() {
            let expected = previous.record.meta.last_position() + 1;
            if record.meta.first_position != expected {
                return Err(damaged(format!(
                    "the record starts at position {}, the one before it ends at {}",
                    record.meta.first_position,
                    expected - 1
                )));
            }
        }
        let mut entries = Vec::new();
        crate::codec::index_entries(&record, record.meta.first_position, &mut entries)
            .map_err(|e| damaged(format!("its events do not decode: {e}")))?;
        records.push(ApplyRecord {
            record,
            len,
            entries,
        });
        offset += len;
    }
    Ok(records)
}

/// The records of `records` to write after `head`: those wholly at or
/// below it are skipped; the first one kept must start at `head + 1`.
pub(crate) fn after_head(records: &[ApplyRecord], head: u64) -> Result<usize> {
    let skip = records
        .iter()
        .take_while(|r| r.record.meta.last_position() <= head)
        .count();
    match records.get(skip) {
        Some(r) if r.record.meta.first_position != head + 1 => {
            let first = r.record.meta.first_position;
            Err(Error::invalid(if first <= head {
                format!(
                    "a record holds positions {first}..={}, across the replica's head {head}: \
                     the writer's log is not the one the replica holds",
                    r.record.meta.last_position()
                )
            } else {
                format!(
                    "the records start at position {first}, the replica's head is {head}: \
                     positions {}..={} are missing",
                    head + 1,
                    first - 1
                )
            }))
        }
        _ => Ok(skip),
    }
}

/// The key and position of the snapshot file at `path` (relative to the
/// store's directory, `/` separators, as a shipped store's checkpoint
/// names its files), or `None` if the path is not a snapshot file's.
pub fn snapshot_file(path: &str) -> Option<(String, u64)> {
    gesta_compaction::snapshot::parse_path(path)
}

/// The first position of the segment file named `name` (`.seg` or
/// `.zseg`), or `None` if the name is not a segment's.
pub fn segment_first_position(name: &str) -> Option<u64> {
    gesta_wal::format::parse_segment_file_name(name)
        .or_else(|| gesta_wal::files::parse_compressed_file_name(name))
}

/// Whether `name` is a plain (uncompressed) segment file's name, whose
/// bytes are at the offsets a reader's record spans give
/// ([`Store::record_span`](crate::Store::record_span)).
pub fn is_plain_segment_name(name: &str) -> bool {
    gesta_wal::format::parse_segment_file_name(name).is_some()
}

/// The records a segment file of the writer holds, back to back, as
/// [`Store::apply_records`](crate::Store::apply_records) takes them: the
/// file's header is checked and cut off, and so are the zeros after the
/// last record of an active segment. `name` is the file's name
/// (`<first-position>.seg`, or `.zseg` for a sealed segment the writer
/// compressed, which is decompressed here, each block checked).
///
/// A segment rewritten to erase redacted events (format version 4) is
/// refused: its events may say they were erased in a way this build's
/// active segments cannot hold, so a replica cannot apply them.
pub fn segment_records(name: &str, bytes: Bytes) -> Result<Bytes> {
    use gesta_wal::files::{CompressedSegment, parse_compressed_file_name};
    use gesta_wal::format::{SEGMENT_HEADER_LEN, SEGMENT_VERSION, SegmentHeader, u32_at};
    let bytes = match parse_compressed_file_name(name) {
        Some(_) => {
            let cache = std::sync::Arc::new(gesta_wal::BlockCache::new(0));
            CompressedSegment::open(name.into(), bytes, cache)?.read_all()?
        }
        None if gesta_wal::format::parse_segment_file_name(name).is_some() => bytes,
        None => {
            return Err(Error::invalid(format!(
                "{name:?} is not a segment file's name"
            )));
        }
    };
    let damaged = |offset: u64, reason: String| Error::Corruption {
        file: name.into(),
        offset,
        reason,
    };
    let header = SegmentHeader::decode(&bytes).map_err(|e| damaged(0, e.to_string()))?;
    let version = SegmentHeader::version_of(&bytes);
    if version > SEGMENT_VERSION {
        return Err(Error::invalid(format!(
            "segment {name} (from position {}) is in format version {version}, rewritten to erase \
             redacted events: a replica cannot apply its records; make a new replica from the bucket",
            header.first_position
        )));
    }
    // The lengths only: apply_records checks every record.
    let mut end = SEGMENT_HEADER_LEN;
    while end + 4 <= bytes.len() {
        let len = u32_at(&bytes, end) as usize;
        if len == 0 {
            break;
        }
        end = end
            .saturating_add(gesta_wal::format::FRAME_LEN + len)
            .min(bytes.len());
    }
    Ok(bytes
        .slice(SEGMENT_HEADER_LEN.min(bytes.len())..end.max(SEGMENT_HEADER_LEN).min(bytes.len())))
}

/// Whether `reader`'s log holds `record` as its own: a record at the same
/// first position with the same positions, commit time and sequencing
/// bytes. Payloads are not compared: either side may have erased redacted
/// events since. A replica asks this of the last record it skips, a writer
/// about to ship of the bucket's record at its head.
pub(crate) fn holds_as_own(reader: &gesta_wal::WalReader, record: &Record) -> Result<bool> {
    let ours = reader.record_head_containing(record.meta.first_position)?;
    Ok(ours.is_some_and(|o| o.meta == record.meta && *o.seq() == record.seq))
}

/// The record of `records` that contains `position`, its frame and head
/// checked (not its payload); `None` if none does. `records` as
/// [`segment_records`] returns them.
pub(crate) fn record_containing(records: &Bytes, position: u64) -> Result<Option<Record>> {
    let mut offset = 0;
    while offset < records.len() {
        let (record, len) = match gesta_wal::format::decode_record_head(&records.slice(offset..)) {
            Frame::Record(record, len) => (record, len),
            Frame::End => break,
            Frame::Invalid { reason, .. } => {
                return Err(Error::Corruption {
                    file: "(records to compare)".into(),
                    offset: offset as u64,
                    reason: reason.into(),
                });
            }
        };
        if record.meta.first_position <= position && position <= record.meta.last_position() {
            return Ok(Some(record));
        }
        offset += len;
    }
    Ok(None)
}

/// Where the last of `records` starts, in bytes from their start:
/// `records` as [`segment_records`] returns them or
/// [`Store::apply_records`](crate::Store::apply_records) took them, whole
/// records back to back; `None` if there are none. Only the frames'
/// lengths are read (each record was checked where the bytes came from).
///
/// A follower that asks for its writer's bytes from there next time hands
/// the replica a record it already holds, which `apply_records` compares
/// with its own: so a writer whose history is not the replica's is told
/// apart even when its file goes on at the very offset the follower
/// stopped at.
pub fn last_record_start(records: &[u8]) -> Option<u64> {
    use gesta_wal::format::{FRAME_LEN, u32_at};
    let mut at = 0usize;
    let mut last = None;
    while at + FRAME_LEN <= records.len() {
        let len = u32_at(records, at) as usize;
        if len == 0 {
            break;
        }
        last = Some(at as u64);
        at = at.saturating_add(FRAME_LEN + len);
    }
    last
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use bytes::Bytes;
    use gesta_wal::format::{Frame, SEGMENT_HEADER_LEN, decode_record};

    use crate::append::AppendOptions;
    use crate::error::Error;
    use crate::event::{NewEvent, RecordedEvent};
    use crate::lifecycle::Target;
    use crate::options::Options;
    use crate::query::Query;
    use crate::read::ReadOptions;
    use crate::removal::RetentionRule;
    use crate::store::Store;

    use super::snapshot_file;

    const WRITER: &str = "writer-7 at s3://bucket/prefix";

    /// Small segments, so that the log rolls over often.
    fn options() -> Options {
        Options::default()
            .segment_size(8 << 10)
            .preallocate(4 << 10)
    }

    /// The framed bytes of every record in the segment files of `dir`, in
    /// position order.
    fn records_of(dir: &Path) -> Vec<Bytes> {
        let mut names: Vec<_> = std::fs::read_dir(dir.join("wal"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let bytes = Bytes::from(std::fs::read(name).unwrap());
            let mut at = SEGMENT_HEADER_LEN;
            while at < bytes.len() {
                match decode_record(&bytes.slice(at..)) {
                    Frame::Record(_, len) => {
                        out.push(bytes.slice(at..at + len));
                        at += len;
                    }
                    Frame::End => break,
                    Frame::Invalid { reason, .. } => panic!("{reason}"),
                }
            }
        }
        out
    }

    fn joined(records: &[Bytes]) -> Bytes {
        Bytes::from(records.concat())
    }

    fn read_all(store: &Store) -> Vec<RecordedEvent> {
        store
            .read(&Query::all(), ReadOptions::forwards())
            .unwrap()
            .collect::<crate::Result<Vec<_>>>()
            .unwrap()
    }

    fn event(i: u64) -> NewEvent {
        NewEvent::new(
            "Happened",
            format!("event {i} {}", "x".repeat((i % 200) as usize)),
        )
        .tag(format!("mod:{}", i % 7))
        .stream(format!("s-{}", i % 5))
        .metadata(format!("m{i}"))
        .id(u128::from(i) + 1)
    }

    /// The byte range `record_span` gives is, in the segment file, the
    /// one record holding the position, so that a copy of the file cut
    /// there alone tells `holds_record` so; a store of another history
    /// (the same events appended on their own) does not hold it.
    #[test]
    fn a_records_span_in_its_file_is_the_record_holding_the_position() {
        let tmp = tempfile::tempdir().unwrap();
        let store = writer(&tmp.path().join("w"), 300);
        let other = writer(&tmp.path().join("o"), 299);
        other.append(vec![event(5_000)]).unwrap();
        for position in [1, 2, 150, 299, 300] {
            let (first, span) = store.record_span(position).unwrap().unwrap();
            let file = tmp.path().join("w/wal").join(format!("{first:020}.seg"));
            let bytes = Bytes::from(std::fs::read(file).unwrap());
            let record = bytes.slice(span.start as usize..span.end as usize);
            match decode_record(&record) {
                Frame::Record(r, len) => {
                    assert_eq!(len, record.len());
                    assert!(r.meta.first_position <= position);
                    assert!(position <= r.meta.last_position());
                }
                _ => panic!("no record at the span of {position}"),
            }
            assert_eq!(store.holds_record(&record, position).unwrap(), Some(true));
            // Its own commit times: never the same records.
            let held = other.holds_record(&record, position).unwrap();
            assert_eq!(held, Some(false), "position {position}");
        }
        assert_eq!(store.record_span(301).unwrap(), None);
        assert_eq!(store.record_span(0).unwrap(), None);
    }

    /// A writer with `count` events in batches of up to 5, some with
    /// tracking info, over several segments.
    fn writer(dir: &Path, count: u64) -> Store {
        let store = Store::open_with(dir, options()).unwrap();
        let mut i = 0;
        while i < count {
            let n = (i % 5 + 1).min(count - i);
            let batch = (i..i + n).map(event).collect();
            let options = match i % 3 {
                0 => AppendOptions::default().track("upstream", i + 1),
                _ => AppendOptions::default(),
            };
            store.append_with(batch, options).unwrap();
            i += n;
        }
        store
    }

    #[test]
    fn applied_records_read_back_as_the_writers_events_with_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir.path().join("w"), 600);
        let records = records_of(&dir.path().join("w"));
        assert!(records.len() > 100);
        let replica = Store::open_replica(dir.path().join("r"), WRITER, options()).unwrap();
        assert_eq!(replica.replica_of().as_deref(), Some(WRITER));

        // In three pieces, the second overlapping the first (its records
        // at or below the head are skipped).
        let a = replica.apply_records(joined(&records[..40])).unwrap();
        assert_eq!(a.skipped, 0);
        assert_eq!(a.records, 40);
        let b = replica.apply_records(joined(&records[30..90])).unwrap();
        assert_eq!((b.records, b.skipped), (60, 10));
        let c = replica.apply_records(joined(&records[90..])).unwrap();
        assert_eq!(c.head, writer.head());
        assert_eq!(replica.head(), writer.head());
        assert_eq!(
            a.events + b.events + c.events,
            writer.head(),
            "every event applied once"
        );
        // The same bytes again change nothing.
        let again = replica.apply_records(joined(&records)).unwrap();
        assert_eq!((again.events, again.skipped), (0, records.len() as u64));

        let expected = read_all(&writer);
        assert_eq!(
            read_all(&replica),
            expected,
            "positions, data, commit times"
        );
        // Indexed as commits are: tags, streams, ids, tracking info.
        let tagged = |s: &Store| {
            s.read(&Query::tag("mod:3"), ReadOptions::forwards())
                .unwrap()
                .map(|e| e.unwrap().position)
                .collect::<Vec<_>>()
        };
        assert_eq!(tagged(&replica), tagged(&writer));
        assert!(!tagged(&replica).is_empty());
        assert_eq!(
            replica.stream_revision("s-2").unwrap(),
            writer.stream_revision("s-2").unwrap()
        );
        assert_eq!(
            replica.event_by_id(100).unwrap(),
            writer.event_by_id(100).unwrap()
        );
        assert_eq!(
            replica.tracking_info("upstream").unwrap(),
            writer.tracking_info("upstream").unwrap()
        );
        // The replica's log holds the writer's records byte for byte
        // (its segments roll over where its own size says).
        assert_eq!(joined(&records_of(&dir.path().join("r"))), joined(&records));

        // Reopened, it recovers them like any log, still a replica.
        replica.close().unwrap();
        let replica = Store::open_replica(dir.path().join("r"), WRITER, options()).unwrap();
        assert_eq!(read_all(&replica), expected);
        assert!(matches!(
            replica.append(vec![event(0)]),
            Err(Error::Replica { .. })
        ));
        writer.close().unwrap();
    }

    #[test]
    fn a_replica_refuses_every_write_naming_its_writer() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir.path().join("w"), 20);
        let replica = Store::open_replica(dir.path().join("r"), WRITER, options()).unwrap();
        replica
            .apply_records(joined(&records_of(&dir.path().join("w"))))
            .unwrap();
        let refused = |what: &str, result: crate::Result<()>| match result {
            Err(e @ Error::Replica { .. }) => {
                let message = e.to_string();
                assert!(message.contains(WRITER), "{what}: {message}");
                let Error::Replica { writer } = e else {
                    unreachable!()
                };
                assert_eq!(writer, WRITER, "{what}");
            }
            other => panic!("{what}: {other:?}"),
        };
        refused("append", replica.append(vec![event(1)]).map(drop));
        refused(
            "append_with",
            replica
                .append_with(vec![event(1)], AppendOptions::default())
                .map(drop),
        );
        let target = Target::Positions(vec![1]);
        refused(
            "add_tags",
            replica.add_tags(&target, &["t".into()]).map(drop),
        );
        refused("redact", replica.redact(&target).map(drop));
        refused("remove", replica.remove(&target).map(drop));
        refused("delete_stream", replica.delete_stream("s-1").map(drop));
        refused(
            "truncate_stream",
            replica.truncate_stream("s-1", 1).map(drop),
        );
        let rule = RetentionRule::stream("s-1").max_age(Duration::from_secs(1));
        refused("set_retention", replica.set_retention(&rule));
        refused("enforce_retention", replica.enforce_retention().map(drop));
        refused("save_snapshot", replica.save_snapshot("k", 1, b"s"));
        refused("delete_snapshot", replica.delete_snapshot("k", 1).map(drop));
        refused(
            "subscribe_durable",
            replica.subscribe_durable("d", &Query::all()).map(drop),
        );
        refused(
            "delete_durable_subscription",
            replica.delete_durable_subscription("d").map(drop),
        );
        refused(
            "register_projection",
            replica.register_projection(crate::Projection::new(
                "count",
                1,
                Query::all(),
                0u64,
                |n: &mut u64, _| *n += 1,
                |n| n.to_le_bytes().to_vec(),
                |b| Some(u64::from_le_bytes(b.try_into().ok()?)),
            )),
        );
        // Through the trait as well.
        let store: &dyn crate::EventStore = &replica;
        refused("EventStore::append", store.append(vec![event(1)]).map(drop));
        // Nothing was written; a new writer is named in later refusals.
        assert_eq!(read_all(&replica), read_all(&writer));
        replica.set_replica_of("writer-8").unwrap();
        let e = replica.append(vec![event(1)]).unwrap_err();
        assert!(e.to_string().contains("writer-8"), "{e}");
        // A writable store applies nothing and has no writer.
        assert!(matches!(
            writer.apply_records(joined(&records_of(&dir.path().join("w")))),
            Err(Error::InvalidInput { .. })
        ));
        assert_eq!(writer.replica_of(), None);
    }

    #[test]
    fn gaps_damage_and_a_diverged_log_are_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let _writer = writer(&dir.path().join("w"), 100);
        let records = records_of(&dir.path().join("w"));
        let replica = Store::open_replica(dir.path().join("r"), WRITER, options()).unwrap();
        replica.apply_records(joined(&records[..5])).unwrap();
        let head = replica.head();

        let gap = replica.apply_records(joined(&records[6..10])).unwrap_err();
        assert!(
            matches!(&gap, Error::InvalidInput { reason } if reason.contains("missing")),
            "{gap}"
        );
        let unordered = [records[5].clone(), records[7].clone()];
        assert!(matches!(
            replica.apply_records(joined(&unordered)),
            Err(Error::Corruption { .. })
        ));
        for at in [0, 5, 20, records[5].len() - 1] {
            let mut damaged = records[5].to_vec();
            damaged[at] ^= 0x10;
            let e = replica.apply_records(Bytes::from(damaged)).unwrap_err();
            assert!(matches!(e, Error::Corruption { .. }), "byte {at}: {e}");
        }
        let cut = records[5].slice(..records[5].len() - 1);
        assert!(replica.apply_records(cut).is_err());
        assert!(replica.apply_records(Bytes::from(vec![0; 64])).is_err());

        // A record across the head: another log than the replica's.
        let other = tempfile::tempdir().unwrap();
        let other_writer = Store::open_with(other.path(), options()).unwrap();
        other_writer.append(vec![event(0)]).unwrap();
        let batch = (0..head + 3).map(event).map(|e| NewEvent { id: None, ..e });
        other_writer.append(batch.collect()).unwrap();
        let foreign = records_of(other.path());
        let e = replica.apply_records(foreign[1].clone()).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidInput { reason } if reason.contains("not the one")),
            "{e}"
        );
        // Wholly below the head, and not the replica's (another commit
        // time, no tracking info): refused too.
        let e = replica.apply_records(foreign[0].clone()).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidInput { reason } if reason.contains("not the one")),
            "{e}"
        );
        assert_eq!(replica.head(), head, "nothing was written");
        // And it goes on from where it was.
        replica.apply_records(joined(&records[5..])).unwrap();
        assert_eq!(replica.head(), 100);
    }

    #[test]
    fn the_records_of_plain_and_compressed_segments_apply() {
        let dir = tempfile::tempdir().unwrap();
        let compressed = options().compression(Some(crate::Compression::default()));
        let writer = {
            let w = writer(&dir.path().join("w"), 10);
            w.close().unwrap();
            Store::open_with(dir.path().join("w"), compressed).unwrap()
        };
        for i in 10..400 {
            writer.append(vec![event(i)]).unwrap();
        }
        writer.compact().unwrap();
        let mut names: Vec<(u64, String)> = std::fs::read_dir(dir.path().join("w/wal"))
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                super::segment_first_position(&name).map(|first| (first, name))
            })
            .collect();
        names.sort();
        assert!(names.iter().any(|(_, n)| n.ends_with(".zseg")), "{names:?}");
        assert!(names.iter().any(|(_, n)| n.ends_with(".seg")), "{names:?}");
        let replica = Store::open_replica(dir.path().join("r"), WRITER, options()).unwrap();
        for (_, name) in &names {
            let bytes = Bytes::from(std::fs::read(dir.path().join("w/wal").join(name)).unwrap());
            let records = super::segment_records(name, bytes.clone()).unwrap();
            replica.apply_records(records).unwrap();
            // Damage anywhere is refused, here or when applied.
            let mut damaged = bytes.to_vec();
            let at = damaged.len() / 2;
            damaged[at] ^= 1;
            let refused = super::segment_records(name, Bytes::from(damaged))
                .and_then(|records| replica.apply_records(records));
            assert!(refused.is_err() || name.ends_with(".seg"), "{name}");
        }
        assert_eq!(read_all(&replica), read_all(&writer));
        assert!(super::segment_records("MANIFEST", Bytes::new()).is_err());
    }

    #[test]
    fn the_writers_lifecycle_journal_applies_once_the_replica_reaches_each_entry() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir.path().join("w"), 100);
        let tags = Target::Positions(vec![1, 2, 3, 50]);
        writer.add_tags(&tags, &["late".into()]).unwrap();
        writer.redact(&Target::Positions(vec![7])).unwrap();
        for i in 100..200 {
            writer.append(vec![event(i)]).unwrap();
        }
        writer.remove(&Target::Positions(vec![10, 150])).unwrap();
        writer
            .set_retention(&RetentionRule::stream("s-4").max_age(Duration::from_secs(3600)))
            .unwrap();
        writer
            .add_tags(&Target::Positions(vec![199]), &["late".into()])
            .unwrap();
        let journal = std::fs::read(dir.path().join("w").join(crate::store::JOURNAL_FILE)).unwrap();
        let records = records_of(&dir.path().join("w"));
        let at_100 = records
            .iter()
            .position(|r| {
                let Frame::Record(r, _) = decode_record(r) else {
                    unreachable!()
                };
                r.meta.last_position() == 100
            })
            .unwrap();

        let replica = Store::open_replica(dir.path().join("r"), WRITER, options()).unwrap();
        replica.apply_records(joined(&records[..=at_100])).unwrap();
        let first = replica.apply_lifecycle(&journal).unwrap();
        assert_eq!((first.applied, first.waiting, first.sequence), (2, 3, 2));
        assert!(
            replica
                .read(&Query::tag("late"), ReadOptions::forwards())
                .unwrap()
                .count()
                == 4
        );
        replica
            .apply_records(joined(&records[at_100 + 1..]))
            .unwrap();
        let rest = replica.apply_lifecycle(&journal).unwrap();
        assert_eq!((rest.applied, rest.waiting, rest.sequence), (3, 0, 5));
        // Again: nothing to do.
        let again = replica.apply_lifecycle(&journal).unwrap();
        assert_eq!((again.applied, again.waiting), (0, 0));

        let same = |replica: &Store| {
            assert_eq!(read_all(replica), read_all(&writer));
            assert_eq!(replica.events(), writer.events());
            assert_eq!(
                replica.audit_log(0, 100).unwrap(),
                writer.audit_log(0, 100).unwrap()
            );
            assert_eq!(
                replica.retention_rules().unwrap(),
                writer.retention_rules().unwrap()
            );
            let late = |s: &Store| {
                s.read(&Query::tag("late"), ReadOptions::forwards())
                    .unwrap()
                    .map(|e| e.unwrap().position)
                    .collect::<Vec<_>>()
            };
            assert_eq!(late(replica), vec![1, 2, 3, 50, 199]);
        };
        same(&replica);
        assert_eq!(
            std::fs::read(dir.path().join("r").join(crate::store::JOURNAL_FILE)).unwrap(),
            journal,
            "the same journal, byte for byte"
        );
        replica.close().unwrap();
        let replica = Store::open_replica(dir.path().join("r"), WRITER, options()).unwrap();
        same(&replica);

        // Another writer's journal is not this replica's history.
        let other = tempfile::tempdir().unwrap();
        let other_writer = self::writer(other.path(), 100);
        other_writer.redact(&Target::Positions(vec![8])).unwrap();
        let foreign = std::fs::read(other.path().join(crate::store::JOURNAL_FILE)).unwrap();
        let e = replica.apply_lifecycle(&foreign).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidInput { reason } if reason.contains("not the one")),
            "{e}"
        );
        assert!(writer.apply_lifecycle(&journal).is_err(), "not a replica");
    }

    /// The writer's snapshot files, by their paths relative to its
    /// directory.
    fn snapshot_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.join("snapshots")];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let relative = path.strip_prefix(dir).unwrap().to_str().unwrap();
                    out.push((relative.to_owned(), std::fs::read(&path).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn the_writers_snapshots_apply_up_to_the_replicas_head_and_go_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir.path().join("w"), 100);
        let long_key = "k".repeat(200);
        writer.save_snapshot("acct:1", 40, b"state at 40").unwrap();
        writer.save_snapshot("acct:1", 90, b"state at 90").unwrap();
        writer.save_snapshot(&long_key, 10, b"long").unwrap();
        let files = snapshot_files(&dir.path().join("w"));
        assert_eq!(files.len(), 3);
        let records = records_of(&dir.path().join("w"));
        let replica = Store::open_replica(dir.path().join("r"), WRITER, options()).unwrap();
        // Only up to 50 first: the snapshot at 90 must wait.
        let upto = |last: u64| {
            records
                .iter()
                .filter(|r| {
                    let Frame::Record(r, _) = decode_record(r) else {
                        unreachable!()
                    };
                    r.meta.last_position() <= last
                })
                .cloned()
                .collect::<Vec<_>>()
        };
        replica.apply_records(joined(&upto(50))).unwrap();
        let head = replica.head();
        for (path, bytes) in &files {
            let (key, position) = snapshot_file(path).expect("a snapshot file's path");
            match replica.apply_snapshot(bytes) {
                Ok(applied) => {
                    assert!(position <= head);
                    assert_eq!(applied, (key, position));
                }
                Err(Error::InvalidInput { reason }) => {
                    assert_eq!(position, 90, "{reason}");
                    assert!(reason.contains("past the replica's head"), "{reason}");
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(replica.list_snapshots("acct:1").unwrap(), [40]);
        assert_eq!(
            replica
                .load_snapshot(&long_key, u64::MAX)
                .unwrap()
                .unwrap()
                .state,
            b"long"
        );
        replica.apply_records(joined(&records)).unwrap();
        for (_, bytes) in &files {
            replica.apply_snapshot(bytes).unwrap();
        }
        assert_eq!(replica.list_snapshots("acct:1").unwrap(), [40, 90]);
        assert_eq!(
            snapshot_files(&dir.path().join("r")),
            files,
            "the writer's files, byte for byte"
        );
        let mut inventory = replica.snapshot_inventory().unwrap();
        inventory.sort();
        let mut want: Vec<_> = files
            .iter()
            .map(|(path, bytes)| {
                let (key, position) = snapshot_file(path).unwrap();
                (key, position, bytes.len() as u64)
            })
            .collect();
        want.sort();
        assert_eq!(inventory, want);
        assert!(replica.drop_snapshot("acct:1", 40).unwrap());
        assert!(!replica.drop_snapshot("acct:1", 40).unwrap());
        assert_eq!(replica.list_snapshots("acct:1").unwrap(), [90]);

        // A damaged file is refused and changes nothing; callers still
        // cannot save or delete.
        let mut damaged = files[0].1.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(matches!(
            replica.apply_snapshot(&damaged),
            Err(Error::Corruption { .. })
        ));
        assert!(matches!(
            replica.save_snapshot("acct:1", 1, b"x"),
            Err(Error::Replica { .. })
        ));
        assert!(matches!(
            replica.delete_snapshot("acct:1", 90),
            Err(Error::Replica { .. })
        ));
        assert!(writer.apply_snapshot(&files[0].1).is_err(), "not a replica");
        assert!(writer.drop_snapshot("acct:1", 40).is_err(), "not a replica");
    }

    #[test]
    fn a_segment_rewritten_to_erase_redacted_events_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir.path().join("w"), 300);
        writer.redact(&Target::Positions(vec![3])).unwrap();
        writer.compact().unwrap();
        let wal = dir.path().join("w/wal");
        let mut refused = 0;
        for entry in std::fs::read_dir(&wal).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if super::segment_first_position(&name).is_none() {
                continue;
            }
            let bytes = Bytes::from(std::fs::read(wal.join(&name)).unwrap());
            match super::segment_records(&name, bytes) {
                Ok(_) => {}
                Err(Error::InvalidInput { reason }) => {
                    assert!(reason.contains("version 4"), "{reason}");
                    assert!(reason.contains("make a new replica"), "{reason}");
                    refused += 1;
                }
                Err(e) => panic!("{name}: {e}"),
            }
        }
        assert_eq!(refused, 1, "the segment that held position 3");
    }

    #[test]
    fn a_live_subscription_on_a_replica_gets_applied_events_as_they_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir.path().join("w"), 50);
        let records = records_of(&dir.path().join("w"));
        let replica = Store::open_replica(dir.path().join("r"), WRITER, options()).unwrap();
        replica.apply_records(joined(&records[..3])).unwrap();
        let mut subscription = replica.subscribe(&Query::tag("mod:2"), 0).unwrap();
        let mut seen = Vec::new();
        let expected: Vec<RecordedEvent> = read_all(&writer)
            .into_iter()
            .filter(|e| e.tags.iter().any(|t| t == "mod:2"))
            .collect();
        let feeder = {
            let replica = replica.clone();
            std::thread::spawn(move || {
                for r in &records[3..] {
                    std::thread::sleep(Duration::from_millis(2));
                    replica.apply_records(r.clone()).unwrap();
                }
            })
        };
        while seen.len() < expected.len() {
            let batch = subscription
                .recv_timeout(Duration::from_secs(20))
                .expect("live events")
                .expect("no error");
            seen.extend(batch);
        }
        feeder.join().unwrap();
        assert_eq!(seen, expected);
    }
}
