//! [`stats`]: what a store holds and what it costs on disk, counted from
//! its files: the log, less the events the lifecycle journal says were
//! removed, plus the tags it says were added (so the counts agree with the
//! store's listings).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use gesta_compaction::flush::INDEX_DIR;
use gesta_wal::TornTail;

use super::scan::{corruption, io_error, scan_log, segment_files};
use crate::codec::decode_record;
use crate::error::Result;

/// What [`stats`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// The last position (0 when empty).
    pub head: u64,
    /// Events the store holds (removed ones not counted).
    pub events: u64,
    /// Events removed (deleted streams, truncations, retention, `remove`)
    /// whose positions stay taken.
    pub removed: u64,
    /// Records (committed batches) in the log.
    pub records: u64,
    /// Distinct streams.
    pub streams: u64,
    /// Events carrying an id.
    pub with_id: u64,
    /// Every event type with its number of events, most frequent first
    /// (ties by name).
    pub types: Vec<(String, u64)>,
    /// Every tag with its number of events (tags added after the fact
    /// included), most frequent first (ties by name).
    pub tags: Vec<(String, u64)>,
    /// Commit time of the first record, microseconds since the Unix epoch.
    pub first_timestamp_micros: Option<u64>,
    /// Commit time of the last record (0 when empty).
    pub last_timestamp_micros: u64,
    /// Segment files.
    pub segments: usize,
    /// Those of them compressed (`.zseg`).
    pub compressed_segments: usize,
    /// Their total length (the newest is preallocated ahead of the writer,
    /// so this is more than the records need).
    pub segment_bytes: u64,
    /// Bytes of records (frames included).
    pub record_bytes: u64,
    /// On-disk index runs.
    pub index_runs: usize,
    /// Their total length.
    pub index_bytes: u64,
    /// Every file under the store directory, summed.
    pub bytes_on_disk: u64,
    /// A torn write at the end of the newest segment, if any; the next open
    /// cuts it off.
    pub torn_tail: Option<TornTail>,
}

/// Counts what the store in `dir` holds by walking its log, without opening
/// it (no lock, files read-only). Every record is checksummed on the way; a
/// damaged one is [`Error::Corruption`](crate::Error::Corruption).
/// `progress` is called with the segment bytes walked and their total.
pub fn stats(dir: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<StoreStats> {
    let segments = segment_files(dir)?;
    let segment_bytes: u64 = segments.iter().map(|s| s.len).sum();
    let mut st = StoreStats {
        segment_bytes,
        compressed_segments: segments.iter().filter(|s| s.compressed).count(),
        ..StoreStats::default()
    };
    let amended = Amended::read(dir)?;
    let mut types: HashMap<String, u64> = HashMap::new();
    let mut tags: HashMap<String, u64> = amended.added_counts();
    let mut streams: HashSet<String> = HashSet::new();
    let mut events = Vec::new();
    progress(0, segment_bytes);
    let scanned = scan_log(
        dir,
        1,
        |record, path, offset| {
            events.clear();
            decode_record(record, &mut events).map_err(|e| {
                corruption(
                    path,
                    offset,
                    format!("the record's events do not decode: {e}"),
                )
            })?;
            st.record_bytes += (gesta_wal::format::FRAME_LEN
                + gesta_wal::format::BODY_FIXED_LEN
                + record.seq.len()
                + record.payload.len()) as u64;
            for e in events.drain(..) {
                if amended.removed.binary_search(&e.position).is_ok() {
                    st.removed += 1;
                    continue;
                }
                st.events += 1;
                st.with_id += u64::from(e.id.is_some());
                *types.entry(e.event_type).or_default() += 1;
                for tag in e.tags {
                    *tags.entry(tag).or_default() += 1;
                }
                if let Some(s) = e.stream {
                    streams.insert(s);
                }
            }
            Ok(())
        },
        &mut |walked| progress(walked, segment_bytes),
    )?;
    st.head = scanned.last_position;
    st.records = scanned.records;
    st.segments = scanned.segments;
    st.first_timestamp_micros = scanned.first_timestamp_micros;
    st.last_timestamp_micros = scanned.last_timestamp_micros;
    st.torn_tail = scanned.torn_tail;
    st.streams = streams.len() as u64;
    st.types = by_count(types);
    st.tags = by_count(tags);
    let index_dir = dir.join(INDEX_DIR);
    if index_dir.is_dir() {
        for entry in std::fs::read_dir(&index_dir).map_err(io_error(&index_dir))? {
            let entry = entry.map_err(io_error(&index_dir))?;
            if entry.path().extension().is_some_and(|e| e == "idx") {
                st.index_runs += 1;
                st.index_bytes += entry.metadata().map_err(io_error(&entry.path()))?.len();
            }
        }
    }
    st.bytes_on_disk = du(dir)?;
    Ok(st)
}

/// What the lifecycle journal changes of the log's counts.
struct Amended {
    /// The positions removed, ascending.
    removed: Vec<u64>,
    /// Each added tag with the positions it was added to.
    added: Vec<(String, Vec<u64>)>,
}

impl Amended {
    /// Reads the journal (none: nothing amended); a damaged one is
    /// corruption, as it is to opening the store.
    fn read(dir: &Path) -> Result<Amended> {
        let path = dir.join(crate::store::JOURNAL_FILE);
        let (bodies, _torn) = gesta_wal::journal::read(&gesta_wal::io::StdFs, &path)?;
        let mut removed = Vec::new();
        let mut added = Vec::new();
        for body in &bodies {
            let (entry, lists) = crate::lifecycle::decode_journal_entry(body)
                .map_err(|e| corruption(&path, 0, format!("a lifecycle entry: {e}")))?;
            match entry.operation {
                crate::lifecycle::Operation::Remove { .. } => {
                    removed.extend(lists.into_iter().flatten());
                }
                crate::lifecycle::Operation::AddTags { tags, .. } => {
                    added.extend(tags.into_iter().zip(lists));
                }
                _ => {}
            }
        }
        removed.sort_unstable();
        removed.dedup();
        Ok(Amended { removed, added })
    }

    /// Each added tag's count of events not removed since.
    fn added_counts(&self) -> HashMap<String, u64> {
        let mut counts: HashMap<String, u64> = HashMap::new();
        for (tag, positions) in &self.added {
            let kept = positions
                .iter()
                .filter(|p| self.removed.binary_search(p).is_err())
                .count() as u64;
            if kept > 0 {
                *counts.entry(tag.clone()).or_default() += kept;
            }
        }
        counts
    }
}

fn by_count(counts: HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// The summed length of every file under `dir`.
fn du(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let path = entry.path();
        let meta = entry.metadata().map_err(io_error(&path))?;
        if meta.is_dir() {
            total += du(&path)?;
        } else {
            total += meta.len();
        }
    }
    Ok(total)
}
