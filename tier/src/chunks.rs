//! Reading a shipped file's bytes back from its chunk objects, shared by
//! whoever reads files of a checkpoint in pieces ([`BucketSegments`], and
//! a replica's polls): the chunks a byte range covers, a
//! chunk read whole checked against its length and CRC-32 (and digest),
//! a part of one read with a ranged GET and left to the bytes' own
//! checksums.
//!
//! [`BucketSegments`]: crate::BucketSegments

use std::ops::Range;

use bytes::Bytes;
use object_store::ObjectStoreExt;

use crate::checkpoint::{Chunk, FileEntry};
use crate::error::{Error, Result, bucket};
use crate::location::Location;

/// The CRC-32 of a whole file, from its chunks' CRC-32s (combined, no
/// byte read).
pub fn file_crc(entry: &FileEntry) -> u32 {
    let mut whole = crc32fast::Hasher::new();
    for c in &entry.chunks {
        whole.combine(&crc32fast::Hasher::new_with_initial_len(c.crc, c.len));
    }
    whole.finalize()
}

/// The pieces of `file`'s chunks that `range` covers: (chunk, range in
/// the chunk), in order.
pub fn pieces(file: &FileEntry, range: Range<u64>) -> Vec<(&Chunk, Range<u64>)> {
    file.chunks
        .iter()
        .filter(|c| c.offset < range.end && c.offset + c.len > range.start)
        .map(|c| {
            let from = range.start.max(c.offset) - c.offset;
            let to = range.end.min(c.offset + c.len) - c.offset;
            (c, from..to)
        })
        .collect()
}

/// Bytes `within` of `chunk`: the whole chunk checked against the
/// checkpoint, or a ranged GET of exactly that many bytes.
pub async fn fetch_piece(location: &Location, chunk: &Chunk, within: Range<u64>) -> Result<Bytes> {
    let key = location.key(&chunk.key);
    if within == (0..chunk.len) {
        let data = location
            .store()
            .get(&key)
            .await
            .map_err(bucket(format!("read {key}")))?
            .bytes()
            .await
            .map_err(bucket(format!("read {key}")))?;
        if let Err(reason) = chunk.check(&data) {
            return Err(Error::Corrupt {
                key: key.to_string(),
                reason,
            });
        }
        return Ok(data);
    }
    let want = within.end - within.start;
    let data = location
        .store()
        .get_range(&key, within)
        .await
        .map_err(bucket(format!("read {key}")))?;
    if data.len() as u64 != want {
        return Err(Error::Corrupt {
            key: key.to_string(),
            reason: format!("a read of {want} bytes gave {}", data.len()),
        });
    }
    Ok(data)
}

/// Bytes `range` of `file`, from its chunks ([`fetch_piece`] each).
/// The length the checkpoint claims is reserved only up to 64 MiB (the
/// buffer grows past it as pieces arrive): a damaged or crafted
/// checkpoint fails on its objects, not on the allocation.
pub async fn fetch_range(
    location: &Location,
    file: &FileEntry,
    range: Range<u64>,
) -> Result<Bytes> {
    const RESERVED_AT_MOST: u64 = 64 << 20;
    let mut out = Vec::with_capacity((range.end - range.start).min(RESERVED_AT_MOST) as usize);
    for (chunk, within) in pieces(file, range) {
        out.extend_from_slice(&fetch_piece(location, chunk, within).await?);
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_files_crc_is_its_chunks_crcs_combined() {
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let cut = [0usize, 10, 4096, 7000, 10_000];
        let chunks = cut
            .windows(2)
            .map(|w| Chunk {
                offset: w[0] as u64,
                len: (w[1] - w[0]) as u64,
                crc: crc32fast::hash(&bytes[w[0]..w[1]]),
                key: String::new(),
            })
            .collect();
        let entry = FileEntry {
            path: "wal/x.seg".into(),
            len: bytes.len() as u64,
            chunks,
        };
        assert_eq!(file_crc(&entry), crc32fast::hash(&bytes));
        let p = pieces(&entry, 5..4100);
        let ranges: Vec<_> = p.iter().map(|(_, r)| r.clone()).collect();
        assert_eq!(ranges, vec![5..10, 0..4086, 0..4]);
        assert_eq!(p[1].0.offset, 10);
    }
}
