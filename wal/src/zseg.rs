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
//! Blocks are small (1 KiB by default) so that a point read decompresses
//! little more than the event it needs; what small blocks would lose in
//! ratio a zstd dictionary trained on the segment's own blocks wins back
//! (the same events take fewer bytes in 1 KiB blocks with a 16 KiB
//! dictionary than in 64 KiB blocks without one).
//!
//! Layout (little-endian), file `<first-position>.zseg`, version 2:
//!
//! ```text
//! header     magic "GESTAZSG" | version u32 | block size u32 |
//!            dictionary length u32 | reserved u32 (zero)
//! dictionary a zstd dictionary (empty: blocks compressed without one)
//! blocks     one zstd frame per block, back to back
//! index      per block: file offset u64 | compressed length u32 | CRC-32 u32
//! footer     first position u64 | last position u64 | length u64 |
//!            index offset u64 | block count u32 | CRC-32 u32
//! ```
//!
//! Version 1 (still read) has a 16-byte header without the last two
//! fields, and no dictionary. The footer's CRC covers the header, the
//! dictionary, the index and the footer before it; each block's CRC covers
//! its compressed bytes, so damage is reported as corruption of this file
//! before zstd sees it. The file is written whole through
//! [`write_atomic`](crate::io::write_atomic) and never modified.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use zstd::dict::EncoderDictionary;
use zstd::zstd_safe;

use crate::cache::{BlockCache, BlockKey};
use crate::error::{Result, WalError};
use crate::format::{u32_at, u64_at};

const MAGIC: [u8; 8] = *b"GESTAZSG";
/// The version this build writes; it reads 1 and 2.
const VERSION: u32 = 2;
const HEADER_LEN_V1: usize = 16;
const HEADER_LEN: usize = 24;
const INDEX_ENTRY_LEN: usize = 16;
const FOOTER_LEN: usize = 40;
/// Largest block size accepted, so that a damaged header cannot ask for a
/// huge allocation.
pub const MAX_BLOCK_SIZE: u32 = 16 << 20;

/// How many times its compressed bytes a whole compressed segment is
/// reserved at most before decompressing it ([`CompressedSegment::read_all`]);
/// event data compresses a few times over, so this is rarely reached, and
/// beyond it the buffer grows as blocks decompress.
const PLAUSIBLE_RATIO: u64 = 16;
/// Largest dictionary accepted.
pub const MAX_DICTIONARY_SIZE: u32 = 1 << 20;
/// A dictionary is trained only for a segment at least this many times its
/// size: on a smaller one it would cost more bytes than it saves.
const DICTIONARY_PAYS_FROM: usize = 8;
/// How many bytes of a segment's blocks a dictionary is trained on, per
/// byte of dictionary (zstd advises about a hundred).
const TRAINING_PER_DICTIONARY_BYTE: usize = 100;

/// How sealed segments are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compression {
    /// zstd level (1–22; 3 is zstd's default and a good balance).
    pub level: i32,
    /// Bytes of the original segment per block. Smaller blocks cost less
    /// to fetch for a point read, decompress less quickly in a scan, and
    /// compress less well without a dictionary. Default 1 KiB.
    pub block_size: u32,
    /// Largest zstd dictionary trained on each segment's blocks (0: none).
    /// Default 16 KiB, which is what lets small blocks compress as well as
    /// large ones.
    pub dictionary_size: u32,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            level: 3,
            block_size: 1 << 10,
            dictionary_size: 16 << 10,
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
    /// The file's format version (1 or 2).
    pub version: u32,
    /// First position of the segment.
    pub first_position: u64,
    /// Last position of the segment.
    pub last_position: u64,
    /// Length of the original segment.
    pub len: u64,
    /// Bytes of the original per block.
    pub block_size: u32,
    /// Where the dictionary lies in the file (empty when there is none).
    pub dictionary: std::ops::Range<usize>,
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
        if b.len() < HEADER_LEN_V1 + FOOTER_LEN {
            return Err((
                0,
                "compressed segment is shorter than its header and footer",
            ));
        }
        if b[..8] != MAGIC {
            return Err((0, "bad compressed segment magic"));
        }
        let version = u32_at(b, 8);
        let (header_len, dictionary_len) = match version {
            1 => (HEADER_LEN_V1, 0),
            2 if b.len() >= HEADER_LEN + FOOTER_LEN => {
                if u32_at(b, 20) != 0 {
                    return Err((20, "compressed segment reserved field is not zero"));
                }
                let n = u32_at(b, 16);
                if n > MAX_DICTIONARY_SIZE {
                    return Err((16, "compressed segment dictionary length out of range"));
                }
                (HEADER_LEN, n as usize)
            }
            2 => {
                return Err((
                    0,
                    "compressed segment is shorter than its header and footer",
                ));
            }
            _ => return Err((8, "unsupported compressed segment version")),
        };
        let block_size = u32_at(b, 12);
        let f = b.len() - FOOTER_LEN;
        let data_start = header_len + dictionary_len;
        if data_start > f {
            return Err((16, "compressed segment dictionary overruns the file"));
        }
        let index_offset = u64_at(b, f + 24);
        let count = u32_at(b, f + 32) as usize;
        let index_len = count.checked_mul(INDEX_ENTRY_LEN);
        let index_fits = index_len.is_some_and(|n| {
            usize::try_from(index_offset)
                .is_ok_and(|o| o >= data_start && o.checked_add(n) == Some(f))
        });
        if !index_fits {
            return Err((
                f as u64,
                "compressed segment footer disagrees with the file's length",
            ));
        }
        let index_offset = index_offset as usize;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&b[..data_start]);
        crc.update(&b[index_offset..f + 36]);
        if crc.finalize() != u32_at(b, f + 36) {
            return Err((f as u64, "compressed segment index checksum mismatch"));
        }
        let layout = Layout {
            version,
            first_position: u64_at(b, f),
            last_position: u64_at(b, f + 8),
            len: u64_at(b, f + 16),
            block_size,
            dictionary: header_len..data_start,
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
        let mut next = self.dictionary.end as u64;
        for b in &self.blocks {
            if b.offset != next {
                return Err((index_offset, "compressed segment blocks are not contiguous"));
            }
            // No zstd frame is empty, and a block decompresses to at least
            // a byte.
            if b.len == 0 {
                return Err((index_offset, "compressed segment block is empty"));
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

/// A dictionary trained on an even spread of `blocks`, or `None` when the
/// segment is too small for one to pay or zstd cannot train one from them.
fn train_dictionary(blocks: &[&[u8]], original_len: usize, max_size: usize) -> Option<Vec<u8>> {
    if max_size == 0 || original_len < DICTIONARY_PAYS_FROM * max_size {
        return None;
    }
    let block_len = blocks.first().map_or(1, |b| b.len().max(1));
    let want = (TRAINING_PER_DICTIONARY_BYTE * max_size / block_len).max(1);
    let step = (blocks.len() / want).max(1);
    let samples: Vec<&[u8]> = blocks.iter().step_by(step).copied().collect();
    zstd::dict::from_samples(&samples, max_size)
        .ok()
        .filter(|d| !d.is_empty() && d.len() <= MAX_DICTIONARY_SIZE as usize)
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
    let blocks: Vec<&[u8]> = original.chunks(block_size as usize).collect();
    let dictionary_size = settings.dictionary_size.min(MAX_DICTIONARY_SIZE) as usize;
    let dictionary = train_dictionary(&blocks, original.len(), dictionary_size).unwrap_or_default();
    let mut out = Vec::with_capacity(original.len() / 3 + dictionary.len() + 4096);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&block_size.to_le_bytes());
    out.extend_from_slice(&(dictionary.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&dictionary);
    let data_start = out.len();
    let mut index = Vec::with_capacity(blocks.len() * INDEX_ENTRY_LEN);
    let prepared = EncoderDictionary::copy(&dictionary, settings.level);
    let mut compressor = if dictionary.is_empty() {
        zstd::bulk::Compressor::new(settings.level)?
    } else {
        zstd::bulk::Compressor::with_prepared_dictionary(&prepared)?
    };
    for block in blocks {
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
    crc.update(&out[..data_start]);
    crc.update(&out[index_offset as usize..]);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    Ok(out)
}

thread_local! {
    /// Each thread's zstd decompression context: creating one costs more
    /// than decompressing a block, so it is made once and reused.
    static DECOMPRESSOR: RefCell<Option<zstd_safe::DCtx<'static>>> =
        const { RefCell::new(None) };
}

/// Decompresses one block of known length `want` onto the end of `out`,
/// with the segment's dictionary if it has one; returns how many bytes it
/// appended.
fn decompress(
    compressed: &[u8],
    want: usize,
    dictionary: Option<&zstd_safe::DDict<'static>>,
    out: &mut Vec<u8>,
) -> std::io::Result<usize> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let dctx = match &mut *slot {
            Some(d) => d,
            empty => empty.insert(
                zstd_safe::DCtx::try_create()
                    .ok_or_else(|| std::io::Error::other("cannot create a zstd context"))?,
            ),
        };
        // Room for at least one byte more than expected, so that a block
        // that decompresses longer is told apart from one of exactly the
        // right length (the caller checks the length appended).
        let had = out.len();
        out.reserve(want + 1);
        let mut tail = std::io::Cursor::new(&mut *out);
        tail.set_position(had as u64);
        let done = match dictionary {
            Some(d) => dctx.decompress_using_ddict(&mut tail, compressed, d),
            None => dctx.decompress(&mut tail, compressed),
        };
        done.map_err(|code| std::io::Error::other(zstd_safe::get_error_name(code)))
    })
}

/// A segment's decompression dictionary, digested once when it is opened.
struct Dictionary(zstd_safe::DDict<'static>);

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dictionary")
    }
}

/// An open compressed segment: its file's bytes, its checked layout, and
/// the shared cache its blocks are decompressed into.
#[derive(Debug)]
pub struct CompressedSegment {
    path: PathBuf,
    data: Bytes,
    layout: Layout,
    dictionary: Option<Dictionary>,
    cache: Arc<BlockCache>,
    /// Its blocks' key in the cache: unique to this opening of the file,
    /// so that a segment rewritten under the same first position never
    /// reads a block of the file it replaced.
    cache_id: u64,
}

/// The source of [`CompressedSegment`]s' cache ids.
static CACHE_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Reads spanning more blocks than this bypass the cache on a miss, so that
/// a scan does not evict the blocks point reads keep hot.
const CACHED_SPAN: u64 = 3;

/// A scan's run of whole blocks holding at least this many bytes is
/// decompressed on two threads: enough work (about a millisecond) to pay
/// for starting one.
const PARALLEL_FROM: u64 = 512 << 10;

impl CompressedSegment {
    /// Checks the layout of a compressed file's bytes.
    pub fn open(path: PathBuf, data: Bytes, cache: Arc<BlockCache>) -> Result<CompressedSegment> {
        let layout = Layout::decode(&data).map_err(|(offset, reason)| WalError::Corruption {
            file: path.clone(),
            offset,
            reason: reason.to_owned(),
        })?;
        let dictionary = match layout.dictionary.clone() {
            range if range.is_empty() => None,
            // zstd refuses a dictionary it cannot digest (the checksum
            // vouches only for what was written).
            range => Some(Dictionary(
                zstd_safe::DDict::try_create(&data[range.clone()]).ok_or_else(|| {
                    WalError::Corruption {
                        file: path.clone(),
                        offset: range.start as u64,
                        reason: "compressed segment dictionary is not a zstd dictionary".into(),
                    }
                })?,
            )),
        };
        Ok(CompressedSegment {
            path,
            data,
            layout,
            dictionary,
            cache,
            cache_id: CACHE_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Drops this segment's blocks from the cache (its file was replaced).
    pub(crate) fn forget_cached(&self) {
        self.cache.forget(self.cache_id);
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
        let mut out = Vec::new();
        self.decompress_onto(i, &mut out)?;
        Ok(Bytes::from(out))
    }

    /// Decompresses block `i` onto the end of `out`, checking its checksum
    /// and length: a scan's blocks go straight into the bytes it returns.
    fn decompress_onto(&self, i: usize, out: &mut Vec<u8>) -> Result<()> {
        let b = self.layout.blocks[i];
        let (start, end) = (b.offset as usize, b.offset as usize + b.len as usize);
        let compressed = &self.data[start..end];
        if crc32fast::hash(compressed) != b.crc {
            return Err(self.corrupt(b.offset, "compressed block checksum mismatch"));
        }
        let want = self.layout.block_len(i);
        let had = out.len();
        let dictionary = self.dictionary.as_ref().map(|d| &d.0);
        decompress(compressed, want, dictionary, out)
            .map_err(|_| self.corrupt(b.offset, "compressed block does not decompress"))?;
        if out.len() - had != want {
            out.truncate(had);
            return Err(self.corrupt(b.offset, "compressed block has the wrong length"));
        }
        Ok(())
    }

    fn block(&self, i: usize, cache_miss: bool) -> Result<Bytes> {
        let key = BlockKey::block(self.cache_id, i);
        if let Some(hit) = self.cache.get(key) {
            return Ok(hit);
        }
        let block = self.decompress(i)?;
        if cache_miss {
            self.cache.insert(key, block.clone());
        }
        Ok(block)
    }

    /// This opening of the file's identity, unique in the process: what
    /// the block cache and the kept heads know its parts by.
    pub(crate) fn cache_id(&self) -> u64 {
        self.cache_id
    }

    /// The end of the block holding byte `at - 1` of the original segment
    /// (`at` itself for 0): how far a read needing bytes up to `at` can go
    /// without decompressing another block.
    pub fn block_end(&self, at: u64) -> u64 {
        let bs = u64::from(self.layout.block_size);
        match at {
            0 => 0,
            _ => ((at - 1) / bs + 1).saturating_mul(bs).min(self.layout.len),
        }
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
        let mut out = Vec::with_capacity((end - start) as usize + 1);
        // A scan's whole blocks (all but perhaps the first and the last)
        // are decompressed in place, without the cache; the others, and
        // every block of a short read, go through it.
        let (scan_from, scan_to) = match cache {
            true => (last + 1, last + 1),
            false => (
                first + u64::from(!start.is_multiple_of(bs)),
                last + u64::from(end == self.layout.len || end.is_multiple_of(bs)),
            ),
        };
        let part = |i: u64, out: &mut Vec<u8>| -> Result<()> {
            let base = i * bs;
            let (lo, hi) = (start.max(base) - base, end.min(base + bs) - base);
            let block = self.block(i as usize, cache)?;
            out.extend_from_slice(&block[lo as usize..hi as usize]);
            Ok(())
        };
        for i in first..scan_from.min(last + 1) {
            part(i, &mut out)?;
        }
        if scan_from < scan_to {
            self.scan_blocks(scan_from..scan_to, &mut out)?;
        }
        for i in scan_to.max(scan_from)..=last {
            part(i, &mut out)?;
        }
        Ok(Bytes::from(out))
    }

    /// Appends whole blocks `blocks` to `out`, each taken from the cache if
    /// it holds it, else decompressed in place without caching it. A long
    /// run of blocks is split in two, the second half decompressed on a
    /// thread of its own, so that a scan uses a second core.
    fn scan_blocks(&self, blocks: std::ops::Range<u64>, out: &mut Vec<u8>) -> Result<()> {
        let count = blocks.end - blocks.start;
        if count < 2 || count * u64::from(self.layout.block_size) < PARALLEL_FROM {
            return self.blocks_onto(blocks, out);
        }
        let mid = blocks.start + count / 2;
        let (head, tail) = (blocks.start..mid, mid..blocks.end);
        std::thread::scope(|scope| {
            let helper_blocks = tail.clone();
            let helper = std::thread::Builder::new()
                .name("gesta-unzstd".into())
                .spawn_scoped(scope, move || {
                    let mut tail_out = Vec::new();
                    self.blocks_onto(helper_blocks, &mut tail_out)
                        .map(|()| tail_out)
                });
            self.blocks_onto(head, out)?;
            match helper {
                Ok(helper) => match helper.join() {
                    Ok(tail_out) => out.extend_from_slice(&tail_out?),
                    // As if it had happened on this thread.
                    Err(panic) => std::panic::resume_unwind(panic),
                },
                // No thread to be had: this one does the rest.
                Err(_) => self.blocks_onto(tail, out)?,
            }
            Ok(())
        })
    }

    /// [`scan_blocks`](Self::scan_blocks) on the calling thread.
    fn blocks_onto(&self, blocks: std::ops::Range<u64>, out: &mut Vec<u8>) -> Result<()> {
        for i in blocks {
            match self.cache.get(BlockKey::block(self.cache_id, i as usize)) {
                Some(hit) => out.extend_from_slice(&hit),
                None => self.decompress_onto(i as usize, out)?,
            }
        }
        Ok(())
    }

    /// The whole original segment, decompressed without the cache (for
    /// recovery's and verification's scans).
    pub fn read_all(&self) -> Result<Bytes> {
        // The length the footer claims is reserved only as far as the
        // compressed bytes make it plausible: a damaged (or crafted) file
        // claiming far more fails on its blocks, not on the allocation.
        let data = (self.data.len() - self.layout.dictionary.end) as u64;
        let plausible = data.saturating_mul(PLAUSIBLE_RATIO).saturating_add(1);
        let mut out = Vec::with_capacity(self.layout.len.saturating_add(1).min(plausible) as usize);
        for i in 0..self.layout.blocks.len() {
            self.decompress_onto(i, &mut out)?;
        }
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings without a dictionary.
    fn plain(level: i32, block_size: u32) -> Compression {
        Compression {
            level,
            block_size,
            dictionary_size: 0,
        }
    }

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
        let settings = plain(3, 1000);
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
            let file = compress(&original, 1, 0, plain(1, 1000)).unwrap();
            let cache = Arc::new(BlockCache::new(1 << 20));
            let z = open(file, &cache).unwrap();
            assert_eq!(&z.read(0, len as u64).unwrap()[..], &original[..]);
        }
    }

    /// Scans long enough to be decompressed on two threads read what one
    /// thread reads, whatever blocks the cache holds, and damage in either
    /// half is reported.
    #[test]
    fn long_scans_read_back_on_two_threads() {
        let bs = 256u64;
        let blocks = 3 * PARALLEL_FROM / bs + 5;
        let original = sample((blocks * bs - 100) as usize);
        let len = original.len() as u64;
        let file = compress(&original, 1, 2, plain(1, bs as u32)).unwrap();
        let cache = Arc::new(BlockCache::new(64 << 10));
        let z = open(file.clone(), &cache).unwrap();
        for (s, e) in [
            (0, len),
            (1, len),
            (0, len - 1),
            (bs * 3 + 7, PARALLEL_FROM + bs * 9 + 1),
            (bs, PARALLEL_FROM + bs),
            (bs - 1, 2 * PARALLEL_FROM + bs * 2 + 1),
        ] {
            assert_eq!(
                &z.read(s, e).unwrap()[..],
                &original[s as usize..e as usize],
                "{s}..{e}"
            );
            // Some blocks cached, as point reads leave them.
            for i in (0..blocks).step_by(7) {
                let _ = z.block(i as usize, true);
            }
            assert_eq!(
                &z.read(s, e).unwrap()[..],
                &original[s as usize..e as usize]
            );
        }
        // A damaged block in the first half, then in the second.
        for damaged in [2, blocks - 3] {
            let mut bad = file.clone();
            let b = z.layout().blocks[damaged as usize];
            bad[b.offset as usize] ^= 1;
            let cache = Arc::new(BlockCache::new(1 << 20));
            let zb = open(bad, &cache).unwrap();
            match zb.read(0, len) {
                Err(WalError::Corruption { offset, .. }) => assert_eq!(offset, b.offset),
                other => panic!("block {damaged}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let original = sample(3000);
        let file = compress(&original, 1, 2, plain(3, 1024)).unwrap();
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

    /// Records-like bytes: short, repetitive and varied, as events are,
    /// so that zstd can train a dictionary on them.
    fn events_like(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 200);
        let mut i = 0u64;
        while out.len() < len {
            let line = format!(
                "{{\"type\":\"Order{}\",\"tags\":[\"customer:{}\",\"region:{}\"],\"amount\":{}}}",
                i % 7,
                i * 7919 % 1000,
                i % 13,
                i * 31 % 977
            );
            out.extend_from_slice(line.as_bytes());
            i += 1;
        }
        out.truncate(len);
        out
    }

    #[test]
    fn a_dictionary_is_trained_and_used_when_it_pays() {
        let original = events_like(600_000);
        let with = |dictionary_size| {
            compress(
                &original,
                1,
                9,
                Compression {
                    level: 3,
                    block_size: 512,
                    dictionary_size,
                },
            )
            .unwrap()
        };
        let (plain, dict) = (with(0), with(8 << 10));
        let cache = Arc::new(BlockCache::new(1 << 20));
        let z = open(dict.clone(), &cache).unwrap();
        assert_eq!(z.layout().version, 2);
        assert!(!z.layout().dictionary.is_empty(), "no dictionary trained");
        assert!(
            dict.len() < plain.len() * 3 / 4,
            "a dictionary should shrink small blocks: {} vs {} bytes",
            dict.len(),
            plain.len()
        );
        assert_eq!(&z.read_all().unwrap()[..], &original[..]);
        for (s, e) in [(0, 1), (511, 513), (100_000, 100_300), (599_999, 600_000)] {
            assert_eq!(
                &z.read(s, e).unwrap()[..],
                &original[s as usize..e as usize]
            );
        }
        // A segment too small for a dictionary to pay gets none.
        let small = compress(&original[..1000], 1, 1, Compression::default()).unwrap();
        let z = open(small, &cache).unwrap();
        assert!(z.layout().dictionary.is_empty());
        assert_eq!(&z.read_all().unwrap()[..], &original[..1000]);
    }

    /// A small compressed file with a (1 KiB) dictionary, and its layout.
    fn with_small_dictionary() -> (Vec<u8>, Layout) {
        let settings = Compression {
            level: 3,
            block_size: 256,
            dictionary_size: 1024,
        };
        let file = compress(&events_like(64 << 10), 1, 2, settings).unwrap();
        let layout = Layout::decode(&file).unwrap();
        assert!(!layout.dictionary.is_empty(), "no dictionary trained");
        (file, layout)
    }

    #[test]
    fn every_bit_flip_in_the_dictionary_is_detected() {
        let (file, layout) = with_small_dictionary();
        for bit in 0..HEADER_LEN * 8 + layout.dictionary.len() * 8 {
            let mut bad = file.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let cache = Arc::new(BlockCache::new(1 << 20));
            match open(bad, &cache).and_then(|z| z.read_all()) {
                Err(WalError::Corruption { .. }) => {}
                Ok(_) => panic!("flip of bit {bit} went unnoticed"),
                Err(e) => panic!("flip of bit {bit}: unexpected error {e}"),
            }
        }
    }

    /// A dictionary zstd cannot digest, under a checksum that matches it
    /// (as a writer with a bug would leave it), is corruption, not a panic.
    #[test]
    fn a_dictionary_zstd_refuses_is_corruption() {
        let (mut file, layout) = with_small_dictionary();
        // A zstd dictionary's magic, then garbage: zstd rejects its tables.
        for b in &mut file[layout.dictionary.start + 8..layout.dictionary.end] {
            *b = 0xff;
        }
        reseal(&mut file, layout.dictionary.end);
        let cache = Arc::new(BlockCache::new(1 << 20));
        match open(file, &cache) {
            Err(WalError::Corruption { reason, .. }) => {
                assert!(reason.contains("dictionary"), "{reason}")
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a garbage dictionary was accepted"),
        }
    }

    /// Writes the footer's CRC again over the header and dictionary (up to
    /// `header_end`) and the index as they are now: a file changed under
    /// checksums that match, as a writer with a bug would leave it.
    fn reseal(file: &mut [u8], header_end: usize) {
        let f = file.len() - FOOTER_LEN;
        let index = u64_at(file, f + 24) as usize;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&file[..header_end]);
        crc.update(&file[index..f + 36]);
        let crc = crc.finalize().to_le_bytes();
        file[f + 36..].copy_from_slice(&crc);
    }

    /// An empty block, under checksums that match (as a writer with a bug,
    /// or a crafted file, would leave it), is refused when the file is
    /// opened.
    #[test]
    fn an_empty_block_is_corruption() {
        let mut file = compress(&sample(5000), 3, 4, plain(3, 1000)).unwrap();
        let header_end = Layout::decode(&file).unwrap().dictionary.end;
        let f = file.len() - FOOTER_LEN;
        let index = u64_at(&file, f + 24) as usize;
        // Block 0 empty, block 1 taking its bytes too: still contiguous.
        let (len0, len1) = (u32_at(&file, index + 8), u32_at(&file, index + 24));
        let first = u64_at(&file, index);
        file[index + 8..index + 12].copy_from_slice(&0u32.to_le_bytes());
        file[index + 16..index + 24].copy_from_slice(&first.to_le_bytes());
        file[index + 24..index + 28].copy_from_slice(&(len0 + len1).to_le_bytes());
        reseal(&mut file, header_end);
        let cache = Arc::new(BlockCache::new(1 << 20));
        match open(file, &cache) {
            Err(WalError::Corruption { reason, .. }) => {
                assert!(reason.contains("empty"), "{reason}")
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("an empty block was accepted"),
        }
    }

    /// The same file in version 1's layout: no dictionary fields in the
    /// header, every offset 8 bytes earlier.
    fn as_version_1(v2: &[u8]) -> Vec<u8> {
        let layout = Layout::decode(v2).unwrap();
        assert!(layout.dictionary.is_empty());
        let mut out = v2[..8].to_vec();
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&v2[12..16]);
        let f = v2.len() - FOOTER_LEN;
        let index = u64_at(v2, f + 24) as usize;
        out.extend_from_slice(&v2[HEADER_LEN..index]);
        for i in 0..layout.block_count() {
            let at = index + i * INDEX_ENTRY_LEN;
            out.extend_from_slice(&(u64_at(v2, at) - 8).to_le_bytes());
            out.extend_from_slice(&v2[at + 8..at + 16]);
        }
        out.extend_from_slice(&v2[f..f + 24]);
        out.extend_from_slice(&(index as u64 - 8).to_le_bytes());
        out.extend_from_slice(&v2[f + 32..f + 36]);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&out[..HEADER_LEN_V1]);
        crc.update(&out[index - 8..]);
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out
    }

    #[test]
    fn version_1_files_still_read() {
        let original = sample(5000);
        let v2 = compress(&original, 3, 4, plain(3, 1000)).unwrap();
        let v1 = as_version_1(&v2);
        assert_eq!(v1.len(), v2.len() - 8);
        let cache = Arc::new(BlockCache::new(1 << 20));
        let z = open(v1, &cache).unwrap();
        assert_eq!(z.layout().version, 1);
        assert_eq!(&z.read_all().unwrap()[..], &original[..]);
        assert_eq!(&z.read(990, 2010).unwrap()[..], &original[990..2010]);
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
