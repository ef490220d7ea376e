//! Rewriting a sealed segment's records in place of the segment: what
//! erasing events' bytes from the log needs (the engine's redaction).
//!
//! A rewrite keeps every record where it was and as long as it was — the
//! caller replaces a record's payload with one of the same length — so the
//! offset tables, the positions and every offset a reader may hold stay
//! true, and a reader racing the switch reads either the old record or the
//! new one, each whole and checksummed. The header's version becomes
//! [`NEWEST_SEGMENT_VERSION`]: what the new payloads hold may be something
//! a reader of the version the segment had would take for damage.
//!
//! The steps: read the segment's (decompressed) bytes, rewrite the
//! records, check that the new bytes decode record by record, write the
//! new file under a temporary name, fsync, rename it over the old one,
//! fsync the directory — so a crash leaves the old file or the new one,
//! never a mix (a leftover temporary file is removed on open, see
//! `resolve_listing`) — and switch the segment in memory to it. A
//! compressed segment is compressed again with the settings given; the
//! block cache drops the old file's blocks (which a new opening of the
//! segment could never be served: cache keys name the opening).
//!
//! An evicted segment (see `remote`) is read whole through its remote
//! and written back as a local file (plain, or compressed as below); its
//! eviction marker is removed once the new file is in place. A crash
//! between the two leaves both, and the local file wins on open.
//!
//! Giving space back: a same-length rewrite frees no byte of a plain
//! segment. So a plain segment whose rewrite zeroed at least a given share
//! of its bytes ([`Compressor::rewrite_sealed_reclaiming`]) is written
//! compressed instead, as the compactor compresses a segment (the new
//! `.zseg` written and synced, then the `.seg` removed): zeroed runs
//! compress to almost nothing, and offsets stay the decompressed ones. A
//! crash between the two leaves both files, and recovery keeps the plain
//! one (see `resolve_listing`), whose erasure the next compaction does
//! again.

use std::sync::Arc;

use bytes::Bytes;

use crate::compress::Compressor;
use crate::error::{IoContext, Result, WalError};
use crate::format::{
    self, Frame, NEWEST_SEGMENT_VERSION, Payload, Record, SEGMENT_HEADER_LEN, SegmentHeader,
    encode_record, segment_file_name,
};
use crate::io::{OpenMode, write_atomic};
use crate::zseg::{self, Compression};

/// How many bytes of `b` are zero.
fn zeros(b: &[u8]) -> usize {
    b.iter().filter(|&&x| x == 0).count()
}

/// What [`Compressor::rewrite_sealed`] did to one segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RewriteReport {
    /// Records whose payload was replaced.
    pub records: u64,
    /// The segment file's size after the rewrite.
    pub file_bytes: u64,
    /// The segment's size before (its file's, compressed or not).
    pub file_bytes_before: u64,
    /// Whether a plain segment was written compressed to give the space
    /// of its zeroed bytes back.
    pub compressed: bool,
}

impl Compressor {
    /// Rewrites the sealed segment that starts at `first_position`:
    /// `rewrite` sees each record and answers a new payload of the same
    /// length, or `None` to keep it. Returns `None` if the segment is not
    /// there, not sealed and complete yet, or no record changed (then
    /// nothing was written). A payload of another length is refused
    /// (`WalError::Corruption` naming the segment) before anything is
    /// written. `settings` compress the new file if the segment is
    /// compressed.
    pub fn rewrite_sealed(
        &self,
        first_position: u64,
        settings: Compression,
        rewrite: &mut dyn FnMut(&Record) -> Option<Bytes>,
    ) -> Result<Option<RewriteReport>> {
        self.rewrite_sealed_reclaiming(first_position, settings, None, rewrite)
    }

    /// [`rewrite_sealed`](Self::rewrite_sealed), and a plain segment whose
    /// rewrite zeroed at least `reclaim_share` (0 to 1) of its bytes is
    /// written compressed with `settings`, so that their space comes back
    /// (see the module docs).
    pub fn rewrite_sealed_reclaiming(
        &self,
        first_position: u64,
        settings: Compression,
        reclaim_share: Option<f64>,
        rewrite: &mut dyn FnMut(&Record) -> Option<Bytes>,
    ) -> Result<Option<RewriteReport>> {
        let _busy = self.lock();
        let Some(segment) = self.segments().starting_at(first_position) else {
            return Ok(None);
        };
        if !segment.is_sealed() || !self.is_complete(&segment)? {
            return Ok(None);
        }
        let path = segment.path();
        // An evicted segment is fetched whole (its records are checked
        // below) and written back locally: erasure takes its bytes out of
        // the log's files, and the remote's copy is then the shipper's to
        // replace.
        let evicted = segment.evicted().is_some();
        let plain_path = if evicted {
            self.dir().join(segment_file_name(first_position))
        } else {
            path.clone()
        };
        let bounds = segment.bounds();
        let original = segment.read(0, bounds.end)?;
        let mut out = Vec::with_capacity(original.len());
        out.extend_from_slice(
            &SegmentHeader { first_position }.encode_version(NEWEST_SEGMENT_VERSION),
        );
        let mut report = RewriteReport::default();
        let mut at = SEGMENT_HEADER_LEN;
        while at < original.len() {
            let rest = original.slice(at..);
            let Frame::Record(record, len) = format::decode_record(&rest) else {
                return Err(WalError::Corruption {
                    file: path,
                    offset: at as u64,
                    reason: "a sealed segment's record fails its checks during a rewrite".into(),
                });
            };
            match rewrite(&record) {
                Some(payload) if payload.len() != record.payload.len() => {
                    return Err(WalError::Corruption {
                        file: path,
                        offset: at as u64,
                        reason: "a rewritten record's payload changed its length".into(),
                    });
                }
                Some(payload) => {
                    encode_record(&mut out, record.meta, &record.seq, &Payload::new(payload));
                    report.records += 1;
                }
                None => out.extend_from_slice(&rest[..len]),
            }
            at += len;
        }
        if report.records == 0 {
            return Ok(None);
        }
        debug_assert_eq!(out.len(), original.len());
        let out = Bytes::from(out);
        report.file_bytes_before = match segment.compressed() {
            Some(z) => z.file_len(),
            None => original.len() as u64,
        };
        let reclaim = segment.compressed().is_none()
            && reclaim_share.is_some_and(|share| {
                let zeroed = zeros(&out).saturating_sub(zeros(&original));
                zeroed as f64 >= share * out.len() as f64
            });
        if reclaim {
            let zpath = self.dir().join(zseg::compressed_file_name(first_position));
            let (file, z) = self.write_compressed(
                &zpath,
                &out,
                first_position,
                bounds.last_position,
                settings,
            )?;
            report.file_bytes = z.file_len();
            report.compressed = true;
            segment.set_compressed(file, Arc::new(z));
            self.fs().remove_file(&path).at(&path)?;
            self.fs().sync_dir(self.dir()).at(self.dir())?;
            return Ok(Some(report));
        }
        let file = match segment.compressed() {
            Some(_) => {
                let (file, z) = self.write_compressed(
                    &path,
                    &out,
                    first_position,
                    bounds.last_position,
                    settings,
                )?;
                report.file_bytes = z.file_len();
                if let Some(old) = segment.compressed() {
                    old.forget_cached();
                }
                segment.set_compressed(file, Arc::new(z));
                return Ok(Some(report));
            }
            None => {
                write_atomic(self.fs(), &plain_path, &out).at(&plain_path)?;
                self.fs()
                    .open(&plain_path, OpenMode::Existing)
                    .at(&plain_path)?
            }
        };
        report.file_bytes = out.len() as u64;
        let map = Bytes::from_owner(file.map().at(&plain_path)?);
        segment.set_plain(plain_path, file, map);
        if evicted {
            // The segment is local again; its marker goes (a crash before
            // this leaves both, and the local file wins on open).
            self.fs().remove_file(&path).at(&path)?;
            self.fs().sync_dir(self.dir()).at(self.dir())?;
        }
        Ok(Some(report))
    }
}
