//! Evicting a sealed segment: its bytes leave the local disk, and reads
//! go to the log's [`RemoteSegments`](crate::RemoteSegments) (see
//! `remote` for the marker and the steps' crash safety).

use std::io;

use crate::compress::Compressor;
use crate::error::{IoContext, Result, WalError};
use crate::io::{OpenMode, write_atomic};
use crate::remote::{EvictedSegment, marker_path};

/// Why [`Compressor::evict`] left a segment local.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvictRefusal {
    /// No segment starts at that position.
    NoSuchSegment,
    /// The segment is the active one, or sealed but not all its records
    /// are published yet.
    NotSealed,
    /// The segment is compressed: compressed segments stay local.
    Compressed,
    /// The segment is evicted already.
    AlreadyEvicted,
    /// The caller's check of the segment's bytes refused them (the remote
    /// does not hold them).
    NotHeld,
}

impl Compressor {
    /// Evicts the sealed plain segment that starts at `first_position`:
    /// reads its bytes and gives them to `held`, which must vouch that the
    /// log's remote holds exactly these bytes (it compares them with what
    /// the remote says it holds); then writes the segment's eviction
    /// marker, switches reads to the remote and removes the local file.
    ///
    /// Runs under the lock of compression and rewrites, so that the bytes
    /// checked are those of the file removed. Returns what the marker says,
    /// or why the segment stays local. A log opened without a remote
    /// refuses (`WalError::Io`, kind `Unsupported`).
    pub fn evict(
        &self,
        first_position: u64,
        held: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<std::result::Result<EvictedSegment, EvictRefusal>> {
        let Some(remote) = self.remote().cloned() else {
            return Err(WalError::Io {
                path: self.dir().to_owned(),
                source: io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the log was opened without remote segments: nothing can be evicted",
                ),
            });
        };
        let _busy = self.lock();
        let Some(segment) = self.segments().starting_at(first_position) else {
            return Ok(Err(EvictRefusal::NoSuchSegment));
        };
        if segment.evicted().is_some() {
            return Ok(Err(EvictRefusal::AlreadyEvicted));
        }
        if segment.compressed().is_some() {
            return Ok(Err(EvictRefusal::Compressed));
        }
        if !segment.is_sealed() || !self.is_complete(&segment)? {
            return Ok(Err(EvictRefusal::NotSealed));
        }
        let path = segment.path();
        let bounds = segment.bounds();
        let bytes = segment.read(0, bounds.end)?;
        if !held(&bytes) {
            return Ok(Err(EvictRefusal::NotHeld));
        }
        let marker = EvictedSegment {
            first_position,
            last_position: bounds.last_position,
            len: bounds.end,
            crc: crc32fast::hash(&bytes),
        };
        drop(bytes);
        let mpath = marker_path(self.dir(), first_position);
        write_atomic(self.fs(), &mpath, &marker.encode()).at(&mpath)?;
        let file = self.fs().open(&mpath, OpenMode::Existing).at(&mpath)?;
        segment.set_remote(mpath, file, remote, marker.clone());
        self.fs().remove_file(&path).at(&path)?;
        self.fs().sync_dir(self.dir()).at(self.dir())?;
        Ok(Ok(marker))
    }
}
