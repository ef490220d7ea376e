//! Reading posting lists out of a run: the lazy [`RunCursor`] and the eager
//! `decode_list` used to merge runs.
//!
//! A cursor binary-searches (gallops) the list's skip entries to find the
//! one block that can hold the answer, and answers from the skip entry
//! alone when the target falls at or before the block's first position
//! (forwards) or at or after its last (backwards), which is what leapfrog
//! mostly asks. Otherwise it decodes the block only as far as the answer,
//! keeping what it decoded for the next seek in the same block.

use bytes::Bytes;

use super::format::{BLOCK, get_varint};
use super::layout::{BlockInfo, Layout, ListRef};
use crate::cursor::{Cursor, gallop};

/// A cursor over one list of a run.
pub(crate) struct RunCursor {
    bytes: Bytes,
    layout: Layout,
    list: ListRef,
    /// The list's block (0-based within the list) of the previous answer,
    /// where the next block search starts.
    block_hint: usize,
    /// The block whose prefix is in `buf`, if any.
    loaded: Option<usize>,
    info: BlockInfo,
    /// Decoded positions of the loaded block; `buf[..decoded]` is valid.
    buf: [u64; BLOCK],
    decoded: usize,
    /// Positions in the loaded block (less if its bytes turn out bad).
    block_len: usize,
    /// Offset of the next varint to decode.
    next_byte: usize,
    /// Index in `buf` of the previous answer.
    hint: usize,
}

impl RunCursor {
    pub(crate) fn new(bytes: Bytes, layout: Layout, list: ListRef) -> RunCursor {
        RunCursor {
            bytes,
            layout,
            list,
            block_hint: 0,
            loaded: None,
            info: BlockInfo {
                first: 0,
                last: 0,
                start: 0,
                end: 0,
            },
            buf: [0; BLOCK],
            decoded: 0,
            block_len: 0,
            next_byte: 0,
            hint: 0,
        }
    }

    fn block(&self, b: usize) -> Option<BlockInfo> {
        if b >= self.list.blocks {
            return None;
        }
        self.layout
            .block(&self.bytes, self.list.first_block.checked_add(b)?)
    }

    /// Makes block `b` the loaded one, with only its first position decoded.
    fn load(&mut self, b: usize, info: BlockInfo) {
        if self.loaded == Some(b) {
            return;
        }
        self.loaded = Some(b);
        self.info = info;
        self.buf[0] = info.first;
        self.decoded = 1;
        self.block_len = self.list.block_len(b);
        self.next_byte = info.start;
        self.hint = 0;
    }

    /// Decodes further into the loaded block until the last decoded
    /// position is `>= stop` or the block is exhausted.
    ///
    /// This is the inner loop of every seek that lands inside a block, so
    /// one-byte gaps (the common case in a dense list) skip the general
    /// varint decoder.
    fn decode_to(&mut self, stop: u64) {
        let last = self.info.last;
        let len = self.block_len.min(BLOCK);
        let mut n = self.decoded;
        let mut pos = self.next_byte;
        let mut prev = self.buf.get(n.wrapping_sub(1)).copied().unwrap_or(0);
        let bytes = self.bytes.get(..self.info.end).unwrap_or_default();
        let mut bad = false;
        let mut groups = true;
        while n < len && prev < stop {
            if groups && n + 8 <= len {
                match gap_group(bytes, pos) {
                    // All eight fall before `stop`, so all are needed.
                    Some((x, sum))
                        if prev
                            .checked_add(sum)
                            .is_some_and(|end| end < stop && end <= last) =>
                    {
                        if let Some(dst) = self.buf.get_mut(n..n + 8) {
                            for (k, slot) in dst.iter_mut().enumerate() {
                                prev += (x >> (8 * k)) & 0xff;
                                *slot = prev;
                            }
                        }
                        n += 8;
                        pos += 8;
                        continue;
                    }
                    // The answer is within the next eight: go one by one.
                    _ => groups = false,
                }
            }
            let delta = match bytes.get(pos) {
                Some(&b) if b < 0x80 => {
                    pos += 1;
                    u64::from(b)
                }
                _ => get_varint(bytes, &mut pos).unwrap_or(0),
            };
            let p = prev.wrapping_add(delta);
            // Malformed bytes (a bad varint, a zero gap, an overflow, a
            // position past the skip entry's last): the block ends at what
            // decoded cleanly, and stays ascending.
            match self.buf.get_mut(n) {
                Some(slot) if delta > 0 && p > prev && p <= last => *slot = p,
                _ => {
                    bad = true;
                    break;
                }
            }
            prev = p;
            n += 1;
        }
        self.decoded = n;
        self.next_byte = pos;
        if bad {
            self.block_len = n;
        }
    }

    /// `seek_ge` within the loaded block.
    fn in_block_ge(&mut self, target: u64) -> Option<u64> {
        self.decode_to(target);
        let buf = self.buf.get(..self.decoded).unwrap_or_default();
        let i = gallop(buf.len(), self.hint, |i| {
            buf.get(i).is_some_and(|&p| p < target)
        });
        let found = buf.get(i).copied()?;
        self.hint = i;
        Some(found)
    }

    /// `seek_le` within the loaded block.
    fn in_block_le(&mut self, target: u64) -> Option<u64> {
        self.decode_to(target.saturating_add(1));
        let buf = self.buf.get(..self.decoded).unwrap_or_default();
        let end = gallop(buf.len(), self.hint, |i| {
            buf.get(i).is_some_and(|&p| p <= target)
        });
        let i = end.checked_sub(1)?;
        self.hint = i;
        buf.get(i).copied()
    }

    /// Whether the loaded block's range includes `target`.
    fn loaded_covers(&self, target: u64) -> bool {
        self.loaded.is_some() && self.info.first <= target && target <= self.info.last
    }
}

impl Cursor for RunCursor {
    fn seek_ge(&mut self, target: u64) -> Option<u64> {
        if self.loaded_covers(target) {
            return self.in_block_ge(target);
        }
        let (b, l) = (&self.bytes[..], &self.layout);
        let first = self.list.first_block;
        let blk = gallop(self.list.blocks, self.block_hint, |i| {
            l.block_last(b, first + i).is_some_and(|last| last < target)
        });
        let info = self.block(blk)?;
        self.block_hint = blk;
        if target <= info.first {
            return Some(info.first);
        }
        self.load(blk, info);
        self.in_block_ge(target)
    }

    fn take_ge(&mut self, target: u64, hi: u64, n: usize, out: &mut Vec<u64>) {
        let (from, mut target) = (out.len(), target);
        while out.len() - from < n {
            let Some(p) = self.seek_ge(target).filter(|&p| p >= target && p <= hi) else {
                return;
            };
            // An answer from the loaded block: the rest of the block is
            // what the next seeks would find, decoded at once.
            let at = self.hint;
            if self.loaded_covers(p) && self.buf.get(at) == Some(&p) {
                self.decode_to(u64::MAX);
                let rest = self.buf.get(at..self.decoded).unwrap_or_default();
                let want = n - (out.len() - from);
                let taken = rest.iter().take(want).take_while(|&&q| q <= hi).count();
                out.extend_from_slice(rest.get(..taken).unwrap_or_default());
                // `p` itself is taken: `taken >= 1`.
                self.hint = at + taken.saturating_sub(1);
                if taken < rest.len() {
                    return;
                }
            } else {
                // From a skip entry: its block is loaded by the next seek.
                out.push(p);
            }
            match out.last().and_then(|p| p.checked_add(1)) {
                Some(next) => target = next,
                None => return,
            }
        }
    }

    fn seek_le(&mut self, target: u64) -> Option<u64> {
        if self.loaded_covers(target) {
            return self.in_block_le(target);
        }
        let (b, l) = (&self.bytes[..], &self.layout);
        let first = self.list.first_block;
        let end = gallop(self.list.blocks, self.block_hint, |i| {
            l.block_first(b, first + i).is_some_and(|f| f <= target)
        });
        let blk = end.checked_sub(1)?;
        let info = self.block(blk)?;
        self.block_hint = blk;
        if target >= info.last {
            return Some(info.last);
        }
        self.load(blk, info);
        self.in_block_le(target)
    }
}

/// The eight bytes at `pos` as a little-endian word and their sum, if
/// each is a complete one-byte varint of a nonzero gap (1..=127): the
/// common case in a dense list, decoded eight at a time.
#[inline]
fn gap_group(bytes: &[u8], pos: usize) -> Option<(u64, u64)> {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const ONES: u64 = 0x0101_0101_0101_0101;
    let x = u64::from_le_bytes(bytes.get(pos..pos.checked_add(8)?)?.try_into().ok()?);
    // No continuation bit set, and (given that) no zero byte.
    if x & HIGH != 0 || x.wrapping_sub(ONES) & !x & HIGH != 0 {
        return None;
    }
    // Add byte pairs into 16-bit lanes, then the lanes into the top one.
    let pairs = (x & 0x00ff_00ff_00ff_00ff) + ((x >> 8) & 0x00ff_00ff_00ff_00ff);
    let sum = pairs.wrapping_mul(0x0001_0001_0001_0001) >> 48;
    Some((x, sum))
}

/// Decodes all of `list`, stopping early (with what decoded cleanly) if the
/// bytes are malformed. A position must lie within its block's skip-entry
/// range, so even bad bytes decode to an ascending list.
pub(crate) fn decode_list(b: &[u8], layout: &Layout, list: ListRef) -> Vec<u64> {
    let mut out = Vec::with_capacity(usize::try_from(list.count).unwrap_or(0).min(1 << 20));
    for blk in 0..list.blocks {
        let Some(info) = layout.block(b, list.first_block + blk) else {
            break;
        };
        let Some(bytes) = b.get(..info.end) else {
            break;
        };
        let mut pos = info.start;
        let mut prev = info.first;
        out.push(prev);
        for _ in 1..list.block_len(blk) {
            match get_varint(bytes, &mut pos)
                .filter(|&d| d > 0)
                .and_then(|d| prev.checked_add(d))
                .filter(|&p| p <= info.last)
            {
                Some(p) => {
                    out.push(p);
                    prev = p;
                }
                None => return out,
            }
        }
    }
    out
}
