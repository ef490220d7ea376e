//! [`Follower`]: reading the events another process appends to a store, as
//! they are written, without opening the store — the log tailed read-only,
//! no lock taken, nothing changed (`gesta read --follow`).
//!
//! A store belongs to the one process that has it open, so live
//! subscriptions work only inside it. A follower instead polls the newest
//! segment from where it stopped: every complete record there is verified
//! (whole, as a scan does) and handed on, and when the writer rolls over to
//! a new segment (named by its first position) the follower moves on to
//! it. A record that does not verify is taken to be still being written
//! and is read again at the next poll; `gesta verify` tells damage apart.
//!
//! A follower sees what has been written, which may be a moment before it
//! is durable (before the writer's fsync returns): it is an observer, not a
//! consumer that acknowledges.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use gesta_wal::format::{self, Frame, SEGMENT_HEADER_LEN, SegmentHeader};

use super::scan::{SegmentFile, WAL_DIR, corruption, io_error, segment_files};
use crate::codec::decode_record;
use crate::error::Result;
use crate::event::RecordedEvent;
use gesta_wal::files::{compressed_file_name, parse_compressed_file_name};

/// Reads at most this much of a segment per poll.
const CHUNK: usize = 4 << 20;

/// Tails a store's log read-only; see the module doc.
#[derive(Debug)]
pub struct Follower {
    dir: PathBuf,
    /// The segment being read and the offset of its next record.
    segment: Option<(PathBuf, u64)>,
    /// The position the next record must start at.
    next: u64,
    /// The compressed segment being read, decompressed.
    decompressed: Option<(PathBuf, Bytes)>,
    /// What the store's lifecycle journal changed about events, as read
    /// when the journal had the length kept here.
    amendments: (u64, crate::amended::Amendments),
}

/// The length of the first record of `bytes`, a read of at most `limit`
/// bytes, if the read cut that record short: it is then read whole.
fn longer_first_record(bytes: &Bytes, limit: usize) -> Option<usize> {
    match format::decode_record(bytes) {
        Frame::Invalid {
            claimed_end: Some(end),
            frame_ok: true,
            ..
        } if end > limit && bytes.len() == limit => Some(end),
        _ => None,
    }
}

/// The first position a compressed segment's file name gives (0 if it
/// gives none, which the decompression's checks then refuse).
fn first_of(path: &Path) -> u64 {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_compressed_file_name)
        .unwrap_or(0)
}

impl Follower {
    /// A follower of the store in `dir` that yields the events after
    /// position `after`.
    pub fn new(dir: &Path, after: u64) -> Result<Follower> {
        super::scan::check_store_dir(dir)?;
        Ok(Follower {
            dir: dir.to_owned(),
            segment: None,
            next: after + 1,
            decompressed: None,
            amendments: (0, Default::default()),
        })
    }

    /// Rereads the lifecycle journal if it changed since the last poll, so
    /// that events read now show the tags added to them and nothing of a
    /// redacted event's data (whose bytes may still be in the log).
    fn refresh_amendments(&mut self) -> Result<()> {
        let path = self.dir.join(crate::store::JOURNAL_FILE);
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        if len == self.amendments.0 {
            return Ok(());
        }
        let (bodies, _) = gesta_wal::journal::read(&gesta_wal::io::StdFs, &path)?;
        let amendments = crate::amended::Amendments::default();
        for body in &bodies {
            let (entry, lists) = crate::lifecycle::decode_journal_entry(body)
                .map_err(|e| crate::lifecycle::journal_corruption(&path, 0, e))?;
            match &entry.operation {
                crate::lifecycle::Operation::AddTags { tags, .. } => {
                    amendments.add_tags(tags, &lists);
                }
                crate::lifecycle::Operation::Redact { .. } => {
                    lists.iter().for_each(|l| amendments.redact(l));
                }
                // Only whether an event was removed matters here: listings
                // are not read through a follower.
                crate::lifecycle::Operation::Remove { .. } => {
                    lists
                        .iter()
                        .for_each(|l| amendments.remove(l, [], entry.sequence));
                }
                crate::lifecycle::Operation::SetRetention { .. } => {}
            }
        }
        self.amendments = (len, amendments);
        Ok(())
    }

    /// The position after which the next poll continues.
    pub fn position(&self) -> u64 {
        self.next - 1
    }

    /// Appends to `out` every event written since the last poll (or after
    /// the start position); returns how many.
    pub fn poll(&mut self, out: &mut Vec<RecordedEvent>) -> Result<usize> {
        let before = out.len();
        self.refresh_amendments()?;
        loop {
            if self.segment.is_none() && !self.find_segment()? {
                break;
            }
            let progressed = self.read_segment(out)?;
            if progressed {
                continue;
            }
            // Nothing more here: has the writer moved to the next segment?
            let wal = self.dir.join(WAL_DIR);
            let next_file = wal.join(format::segment_file_name(self.next));
            let next_compressed = wal.join(compressed_file_name(self.next));
            if next_file.exists() || next_compressed.exists() {
                self.segment = Some((next_file, SEGMENT_HEADER_LEN as u64));
                continue;
            }
            break;
        }
        self.amendments.1.amend_tail(out, before);
        Ok(out.len() - before)
    }

    /// Finds the segment holding the next position; false if the log does
    /// not reach it yet.
    fn find_segment(&mut self) -> Result<bool> {
        let files = segment_files(&self.dir)?;
        let Some(file) = files.iter().rev().find(|f| f.first <= self.next) else {
            return Ok(false);
        };
        self.segment = Some((file.path.clone(), SEGMENT_HEADER_LEN as u64));
        Ok(true)
    }

    /// The bytes of the segment at `path` from `offset` on: at most
    /// [`CHUNK`], or the whole first record if it is larger. `None` while
    /// the segment's header is not written yet.
    fn read_from(&mut self, path: &Path, offset: u64) -> Result<Option<Bytes>> {
        if path.extension().is_some_and(|e| e == "zseg") {
            // Compressed, so sealed and complete: decompressed whole once,
            // then handed out a chunk per poll.
            let whole = match &self.decompressed {
                Some((p, bytes)) if p == path => bytes.clone(),
                _ => {
                    let file = SegmentFile {
                        first: first_of(path),
                        path: path.to_owned(),
                        len: 0,
                        compressed: true,
                    };
                    let (bytes, _) = file.contents()?;
                    if let Err(e) = SegmentHeader::decode(&bytes) {
                        return Err(corruption(path, 0, e.to_string()));
                    }
                    self.decompressed = Some((path.to_owned(), bytes.clone()));
                    bytes
                }
            };
            let rest = whole.slice((offset as usize).min(whole.len())..);
            let mut limit = CHUNK;
            loop {
                let part = rest.slice(..limit.min(rest.len()));
                if let Some(end) = longer_first_record(&part, limit) {
                    limit = end;
                    continue;
                }
                return Ok(Some(part));
            }
        }
        self.decompressed = None;
        let mut file = std::fs::File::open(path).map_err(io_error(path))?;
        if offset == SEGMENT_HEADER_LEN as u64 {
            let mut header = [0u8; SEGMENT_HEADER_LEN];
            if file.read_exact(&mut header).is_err() {
                return Ok(None);
            }
            if let Err(e) = SegmentHeader::decode(&header) {
                // A header not yet written is all zeros; anything else is
                // damage.
                if header.iter().all(|&b| b == 0) {
                    return Ok(None);
                }
                return Err(corruption(path, 0, e.to_string()));
            }
        }
        let mut limit = CHUNK;
        loop {
            file.seek(SeekFrom::Start(offset)).map_err(io_error(path))?;
            let mut buf = Vec::with_capacity(64 << 10);
            (&mut file)
                .take(limit as u64)
                .read_to_end(&mut buf)
                .map_err(io_error(path))?;
            let bytes = Bytes::from(buf);
            match longer_first_record(&bytes, limit) {
                Some(end) => limit = end,
                None => return Ok(Some(bytes)),
            }
        }
    }

    /// Reads the complete records of the current segment from its offset;
    /// true if it read any.
    fn read_segment(&mut self, out: &mut Vec<RecordedEvent>) -> Result<bool> {
        let Some((mut path, offset)) = self.segment.clone() else {
            return Ok(false);
        };
        if !path.exists() {
            // The segment has since been sealed and rewritten compressed.
            let compressed = path.with_extension("zseg");
            if !compressed.exists() {
                return Err(io_error(&path)(std::io::ErrorKind::NotFound.into()));
            }
            path = compressed;
        }
        let Some(bytes) = self.read_from(&path, offset)? else {
            return Ok(false); // being created
        };
        let mut at = 0usize;
        let mut events = Vec::new();
        let mut read_any = false;
        loop {
            let rest = bytes.slice(at..);
            match format::decode_record(&rest) {
                Frame::Record(record, len) => {
                    if record.meta.first_position > self.next {
                        return Err(corruption(
                            &path,
                            offset + at as u64,
                            format!(
                                "record starts at position {}, expected {}",
                                record.meta.first_position, self.next
                            ),
                        ));
                    }
                    events.clear();
                    decode_record(&record, &mut events)?;
                    out.extend(events.drain(..).filter(|e| e.position >= self.next));
                    self.next = self.next.max(record.meta.last_position() + 1);
                    at += len;
                    read_any = true;
                    if at >= bytes.len() {
                        break;
                    }
                }
                // The end of what is written, or a record being written.
                Frame::End | Frame::Invalid { .. } => break,
            }
        }
        self.segment = Some((path, offset + at as u64));
        Ok(read_any)
    }
}
