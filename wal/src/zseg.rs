//! Compressed segments: a sealed segment rewritten as zstd-compressed blocks
//! with a block index, read through the [`BlockCache`].
//!
//! A compressed segment holds exactly the bytes of the segment it replaces
//! (header, records, nothing after the last record), cut into blocks of a
//! fixed size and compressed one by one. Offsets into it are offsets into
//! those original bytes, so the offset table, the readers and the records'
//! own checksums work unchanged: only the fetch of a byte range changes,
//! from a slice of a map to a slice of one or more decompressed blocks.
//!
//! Layout (little-endian), file `<first-position>.zseg`:
//!
//! ```text
//! header   magic "GESTAZSG" | version u32 | block size u32
//! blocks   one zstd frame per block, back to back
//! index    per block: file offset u64 | compressed length u32 | CRC-32 u32
//! footer   first position u64 | last position u64 | length u64 |
//!          index offset u64 | block count u32 | CRC-32 u32
//! ```
//!
//! The footer's CRC covers the header, the index and the footer before it;
//! each block's CRC covers its compressed bytes, so damage is reported as
//! corruption of this file before zstd sees it. The file is written whole
//! through [`write_atomic`](crate::io::write_atomic) and never modified.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::cache::BlockCache;
use crate::error::{Result, WalError};
use crate::format::{u32_at, u64_at};

const MAGIC: [u8; 8] = *b"GESTAZSG";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 16;
const INDEX_ENTRY_LEN: usize = 16;
const FOOTER_LEN: usize = 40;
/// Largest block size accepted, so that a damaged header cannot ask for a
/// huge allocation.
pub const MAX_BLOCK_SIZE: u32 = 16 << 20;

/// How sealed segments are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compression {
    /// zstd level (1–22; 3 is zstd's default and a good balance).
    pub level: i32,
    /// Bytes of the original segment per block. Smaller blocks cost less
    /// to fetch for a point read and compress less well. Default 64 KiB.
    pub block_size: u32,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            level: 3,
            block_size: 64 << 10,
        }
    }
}

/// The file name of the compressed segment starting at `first_position`.
pub fn compressed_file_name(first_position: u64) -> String {
    format!("{first_position:020}.zseg")
}

/// Parses a compressed segment's file name back into its first position.
pub fn parse_compressed_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".zseg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BlockRef {
    offset: u64,
    len: u32,
    crc: u32,
}

/// What a compressed file's footer and index say, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// First position of the segment.
    pub first_position: u64,
    /// Last position of the segment.
    pub last_position: u64,
    /// Length of the original segment.
    pub len: u64,
    /// Bytes of the original per block.
    pub block_size: u32,
    blocks: Vec<BlockRef>,
}

impl Layout {
    /// Number of blocks.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// Parses and checks the header, index and footer of a compressed
    /// file; the error says what failed and where.
    pub fn decode(b: &[u8]) -> Result<Layout, (u64, &'static str)> {
        if b.len() < HEADER_LEN + FOOTER_LEN {
            return Err((
                0,
                "compressed segment is shorter than its header and footer",
            ));
        }
        if b[..8] != MAGIC {
            return Err((0, "bad compressed segment magic"));
        }
        if u32_at(b, 8) != VERSION {
            return Err((8, "unsupported compressed segment version"));
        }
        let block_size = u32_at(b, 12);
        let f = b.len() - FOOTER_LEN;
        let index_offset = u64_at(b, f + 24);
        let count = u32_at(b, f + 32) as usize;
        let index_len = count.checked_mul(INDEX_ENTRY_LEN);
        let index_fits = index_len.is_some_and(|n| {
            usize::try_from(index_offset)
                .is_ok_and(|o| o >= HEADER_LEN && o.checked_add(n) == Some(f))
        });
        if !index_fits {
            return Err((
                f as u64,
                "compressed segment footer disagrees with the file's length",
            ));
        }
        let index_offset = index_offset as usize;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&b[..HEADER_LEN]);
        crc.update(&b[index_offset..f + 36]);
        if crc.finalize() != u32_at(b, f + 36) {
            return Err((f as u64, "compressed segment index checksum mismatch"));
        }
        let layout = Layout {
            first_position: u64_at(b, f),
            last_position: u64_at(b, f + 8),
            len: u64_at(b, f + 16),
            block_size,
            blocks: (0..count)
                .map(|i| {
                    let at = index_offset + i * INDEX_ENTRY_LEN;
                    BlockRef {
                        offset: u64_at(b, at),
                        len: u32_at(b, at + 8),
                        crc: u32_at(b, at + 12),
                    }
                })
                .collect(),
        };
        layout.check(index_offset as u64).map(|()| layout)
    }

    /// The checks a checksummed index can still fail if it was written
    /// wrong: blocks in order, inside the data area, and as many as the
    /// length needs.
    fn check(&self, index_offset: u64) -> Result<(), (u64, &'static str)> {
        if self.block_size == 0 || self.block_size > MAX_BLOCK_SIZE {
            return Err((12, "compressed segment block size out of range"));
        }
        if self.first_position == 0 || self.last_position < self.first_position - 1 {
            return Err((index_offset, "compressed segment positions out of range"));
        }
        if self.len.div_ceil(u64::from(self.block_size)) != self.blocks.len() as u64 {
            return Err((
                index_offset,
                "compressed segment block count disagrees with its length",
            ));
        }
        let mut next = HEADER_LEN as u64;
        for b in &self.blocks {
            if b.offset != next {
                return Err((index_offset, "compressed segment blocks are not contiguous"));
            }
            next += u64::from(b.len);
        }
        if next != index_offset {
            return Err((index_offset, "compressed segment blocks overrun the index"));
        }
        Ok(())
    }

    /// Length of block `i` once decompressed.
    fn block_len(&self, i: usize) -> usize {
        let start = i as u64 * u64::from(self.block_size);
        (self.len - start).min(u64::from(self.block_size)) as usize
    }
}

/// Compresses the bytes of a sealed segment (`original`, holding positions
/// `first_position..=last_position`) into the compressed file format.
pub fn compress(
    original: &[u8],
    first_position: u64,
    last_position: u64,
    settings: Compression,
) -> std::io::Result<Vec<u8>> {
    let block_size = settings.block_size.clamp(1, MAX_BLOCK_SIZE);
    let mut out = Vec::with_capacity(original.len() / 3 + 4096);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&block_size.to_le_bytes());
    let mut index = Vec::new();
    let mut compressor = zstd::bulk::Compressor::new(settings.level)?;
    for block in original.chunks(block_size as usize) {
        let offset = out.len() as u64;
        let compressed = compressor.compress(block)?;
        index.extend_from_slice(&offset.to_le_bytes());
        index.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
        index.extend_from_slice(&crc32fast::hash(&compressed).to_le_bytes());
        out.extend_from_slice(&compressed);
    }
    let index_offset = out.len() as u64;
    let count = (index.len() / INDEX_ENTRY_LEN) as u32;
    out.extend_from_slice(&index);
    for v in [
        first_position,
        last_position,
        original.len() as u64,
        index_offset,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&count.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&out[..HEADER_LEN]);
    crc.update(&out[index_offset as usize..]);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    Ok(out)
}

thread_local! {
    /// Each thread's zstd decompression context: creating one costs more
    /// than decompressing a block, so it is made once and reused.
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// Decompresses one block of known length `want`.
fn decompress(compressed: &[u8], want: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let mut dctx = match slot.take() {
            Some(d) => d,
            None => zstd::bulk::Decompressor::new()?,
        };
        let out = dctx.decompress(compressed, want);
        *slot = Some(dctx);
        out
    })
}

/// An open compressed segment: its file's bytes, its checked layout, and
/// the shared cache its blocks are decompressed into.
#[derive(Debug)]
pub struct CompressedSegment {
    path: PathBuf,
    data: Bytes,
    layout: Layout,
    cache: Arc<BlockCache>,
}

/// Reads spanning more blocks than this bypass the cache on a miss, so that
/// a scan does not evict the blocks point reads keep hot.
const CACHED_SPAN: u64 = 3;

impl CompressedSegment {
    /// Checks the layout of a compressed file's bytes.
    pub fn open(path: PathBuf, data: Bytes, cache: Arc<BlockCache>) -> Result<CompressedSegment> {
        let layout = Layout::decode(&data).map_err(|(offset, reason)| WalError::Corruption {
            file: path.clone(),
            offset,
            reason: reason.to_owned(),
        })?;
        Ok(CompressedSegment {
            path,
            data,
            layout,
            cache,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checked layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Size of the compressed file.
    pub fn file_len(&self) -> u64 {
        self.data.len() as u64
    }

    fn corrupt(&self, offset: u64, reason: &str) -> WalError {
        WalError::Corruption {
            file: self.path.clone(),
            offset,
            reason: reason.to_owned(),
        }
    }

    /// Decompresses block `i`, checking its checksum and length.
    fn decompress(&self, i: usize) -> Result<Bytes> {
        let b = self.layout.blocks[i];
        let (start, end) = (b.offset as usize, b.offset as usize + b.len as usize);
        let compressed = &self.data[start..end];
        if crc32fast::hash(compressed) != b.crc {
            return Err(self.corrupt(b.offset, "compressed block checksum mismatch"));
        }
        let want = self.layout.block_len(i);
        let out = decompress(compressed, want)
            .map_err(|_| self.corrupt(b.offset, "compressed block does not decompress"))?;
        if out.len() != want {
            return Err(self.corrupt(b.offset, "compressed block has the wrong length"));
        }
        Ok(Bytes::from(out))
    }

    fn block(&self, i: usize, cache_miss: bool) -> Result<Bytes> {
        let key = (self.layout.first_position, i as u32);
        if let Some(hit) = self.cache.get(key) {
            return Ok(hit);
        }
        let block = self.decompress(i)?;
        if cache_miss {
            self.cache.insert(key, block.clone());
        }
        Ok(block)
    }

    /// Bytes `start..end` of the original segment.
    pub fn read(&self, start: u64, end: u64) -> Result<Bytes> {
        if start > end || end > self.layout.len {
            return Err(self.corrupt(
                start,
                "read past the end of the compressed segment's contents",
            ));
        }
        if start == end {
            return Ok(Bytes::new());
        }
        let bs = u64::from(self.layout.block_size);
        let (first, last) = (start / bs, (end - 1) / bs);
        let cache = last - first < CACHED_SPAN;
        if first == last {
            let block = self.block(first as usize, cache)?;
            let base = first * bs;
            return Ok(block.slice((start - base) as usize..(end - base) as usize));
        }
        let mut out = Vec::with_capacity((end - start) as usize);
        for i in first..=last {
            let block = self.block(i as usize, cache)?;
            let base = i * bs;
            let lo = start.max(base) - base;
            let hi = end.min(base + bs) - base;
            out.extend_from_slice(&block[lo as usize..hi as usize]);
        }
        Ok(Bytes::from(out))
    }

    /// The whole original segment, decompressed without the cache (for
    /// recovery's and verification's scans).
    pub fn read_all(&self) -> Result<Bytes> {
        let mut out = Vec::with_capacity(self.layout.len as usize);
        for i in 0..self.layout.blocks.len() {
            out.extend_from_slice(&self.decompress(i)?);
        }
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 1000) as u8)
            .collect()
    }

    fn open(bytes: Vec<u8>, cache: &Arc<BlockCache>) -> Result<CompressedSegment> {
        CompressedSegment::open(PathBuf::from("x.zseg"), Bytes::from(bytes), cache.clone())
    }

    #[test]
    fn every_range_reads_back_the_original() {
        let original = sample(10_000);
        let settings = Compression {
            level: 3,
            block_size: 1000,
        };
        let file = compress(&original, 5, 9, settings).unwrap();
        let cache = Arc::new(BlockCache::new(2500));
        let z = open(file, &cache).unwrap();
        assert_eq!(z.layout().block_count(), 10);
        assert_eq!(
            (z.layout().first_position, z.layout().last_position),
            (5, 9)
        );
        assert_eq!(&z.read_all().unwrap()[..], &original[..]);
        for (s, e) in [
            (0, 1),
            (0, 1000),
            (999, 1001),
            (1500, 4700),
            (9999, 10_000),
            (0, 10_000),
            (7, 7),
        ] {
            assert_eq!(
                &z.read(s, e).unwrap()[..],
                &original[s as usize..e as usize],
                "{s}..{e}"
            );
        }
        assert!(z.read(9_000, 10_001).is_err());
        assert!(cache.stats().bytes <= 2500);
    }

    #[test]
    fn uneven_last_block_and_tiny_segments() {
        for len in [16usize, 1000, 1001, 4095] {
            let original = sample(len);
            let file = compress(
                &original,
                1,
                0,
                Compression {
                    level: 1,
                    block_size: 1000,
                },
            )
            .unwrap();
            let cache = Arc::new(BlockCache::new(1 << 20));
            let z = open(file, &cache).unwrap();
            assert_eq!(&z.read(0, len as u64).unwrap()[..], &original[..]);
        }
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let original = sample(3000);
        let file = compress(
            &original,
            1,
            2,
            Compression {
                level: 3,
                block_size: 1024,
            },
        )
        .unwrap();
        for bit in 0..file.len() * 8 {
            let mut bad = file.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let cache = Arc::new(BlockCache::new(1 << 20));
            let outcome = open(bad, &cache).and_then(|z| z.read_all());
            match outcome {
                Err(WalError::Corruption { .. }) => {}
                Ok(bytes) => panic!(
                    "flip of bit {bit} went unnoticed ({} bytes read)",
                    bytes.len()
                ),
                Err(e) => panic!("flip of bit {bit}: unexpected error {e}"),
            }
        }
        for n in 0..file.len() {
            let cache = Arc::new(BlockCache::new(1 << 20));
            assert!(
                open(file[..n].to_vec(), &cache).is_err(),
                "truncated to {n}"
            );
        }
    }

    #[test]
    fn file_names_round_trip() {
        let n = compressed_file_name(42);
        assert_eq!(n, "00000000000000000042.zseg");
        assert_eq!(parse_compressed_file_name(&n), Some(42));
        assert_eq!(parse_compressed_file_name("00000000000000000042.seg"), None);
        assert_eq!(parse_compressed_file_name("42.zseg"), None);
    }
}
