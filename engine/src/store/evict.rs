//! Evicting sealed segments to remote storage: [`Store::evict_segment`]
//! removes a sealed segment's local file once the caller has vouched that
//! the remote ([`Options::remote_segments`](crate::Options::remote_segments))
//! holds its bytes; reads of it then go through the remote. See
//! `gesta_wal`'s `remote` module for the marker left in its place and the
//! crash safety of the steps, and `gesta_tier::Evictor` for a policy over
//! a bucket.

use std::path::PathBuf;

use gesta_wal::{EvictRefusal, EvictedSegment};

use super::Store;
use crate::committer::Request;
use crate::error::{Error, Result};

/// One sealed segment of the log, as [`Store::sealed_segments`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SealedSegment {
    /// Its first position.
    pub first_position: u64,
    /// Its last position.
    pub last_position: u64,
    /// Its length in bytes, as a plain segment (the end of its last
    /// record).
    pub len: u64,
    /// The file that holds it (its eviction marker, once evicted).
    pub path: PathBuf,
    /// Whether it is compressed (`.zseg`).
    pub compressed: bool,
    /// Whether it is evicted (read from remote storage).
    pub evicted: bool,
}

impl Store {
    /// The log's sealed segments, oldest first (the active segment is not
    /// listed).
    pub fn sealed_segments(&self) -> Vec<SealedSegment> {
        self.inner
            .reader
            .segments()
            .snapshot()
            .into_iter()
            .filter(|s| s.is_sealed())
            .map(|s| {
                let bounds = s.bounds();
                SealedSegment {
                    first_position: s.first_position(),
                    last_position: bounds.last_position,
                    len: bounds.end,
                    path: s.path(),
                    compressed: s.compressed().is_some(),
                    evicted: s.evicted().is_some(),
                }
            })
            .collect()
    }

    /// Seals the active segment now if it holds any record (the next
    /// append starts a new one), so that every event committed so far is
    /// in a sealed segment — which a shipper then ships whole and an
    /// evictor may move to the bucket (a store entirely in the bucket).
    pub fn seal_active_segment(&self) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        self.inner.ask_committer(Request::Seal)
    }

    /// Evicts the sealed plain segment that starts at `first_position`:
    /// its bytes are given to `held`, which must answer whether the
    /// store's [`remote_segments`](crate::Options::remote_segments) hold
    /// exactly those bytes; if so, an eviction marker (first and last
    /// positions, length, CRC-32) takes the file's place, reads go to the
    /// remote, and the file is removed. Runs under the lock that
    /// compression and erasure take, so the bytes checked are those
    /// removed.
    ///
    /// `Ok(Err(why))`: the segment stays local — it does not exist, is not
    /// sealed and complete, is compressed (compressed segments stay
    /// local), is evicted already, or `held` refused its bytes. A store
    /// opened without a remote refuses with [`Error::InvalidInput`].
    pub fn evict_segment(
        &self,
        first_position: u64,
        held: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<std::result::Result<EvictedSegment, EvictRefusal>> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        if self.inner.remote_segments.is_none() {
            return Err(Error::invalid(
                "the store was opened without remote segments (Options::remote_segments): \
                 nothing can be evicted",
            ));
        }
        Ok(self.inner.compressor.evict(first_position, held)?)
    }
}
