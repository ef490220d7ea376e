//! Where a run's sections are, and bounds-checked access to their entries.
//!
//! Both the run and its cursors read the mapped bytes through `Layout`, so
//! every access to untrusted bytes goes through one set of checked helpers:
//! a malformed file yields `None`, never a panic.

use super::format::{BLOCK, DIR_ENTRY, HEADER_LEN, ID_ENTRY, SKIP_ENTRY, le_u64};

/// Absolute byte offsets of a run's sections and their entry counts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    /// Start of the skip table (= end of the postings area).
    pub(crate) skip: usize,
    /// Start of the key directory.
    pub(crate) dir: usize,
    /// Start of the key bytes.
    pub(crate) keys: usize,
    /// Start of the id section (= end of the key bytes).
    pub(crate) ids: usize,
    /// Start of the filter (= end of the id section).
    pub(crate) filter: usize,
    /// Start of the footer (= end of the filter).
    pub(crate) footer: usize,
    /// Skip-table entries (blocks) in the file.
    pub(crate) blocks: usize,
    /// Directory entries (keys) in the file.
    pub(crate) key_count: usize,
    /// Entries of the id section.
    pub(crate) id_count: usize,
}

/// One skip-table entry: a block's first and last position and its bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockInfo {
    pub(crate) first: u64,
    pub(crate) last: u64,
    /// Absolute offset of the block's varints.
    pub(crate) start: usize,
    /// Absolute offset just past them.
    pub(crate) end: usize,
}

/// One key's posting list: where its blocks are in the skip table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ListRef {
    /// Skip-table index of the list's first block.
    pub(crate) first_block: usize,
    /// Number of blocks.
    pub(crate) blocks: usize,
    /// Number of positions.
    pub(crate) count: u64,
}

impl ListRef {
    /// The number of positions in the list's block `b`.
    pub(crate) fn block_len(&self, b: usize) -> usize {
        let before = (b as u64).saturating_mul(BLOCK as u64);
        self.count.saturating_sub(before).min(BLOCK as u64) as usize
    }
}

/// One key-directory entry, with the lengths implied by its successor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DirEntry {
    /// Absolute offset of the key's bytes.
    pub(crate) key_start: usize,
    /// Absolute offset just past them.
    pub(crate) key_end: usize,
    pub(crate) list: ListRef,
}

impl Layout {
    /// The `i`th skip-table entry. A block's bytes end where the next
    /// block's begin (lists are stored back to back), the last block's at
    /// the skip table.
    pub(crate) fn block(&self, b: &[u8], i: usize) -> Option<BlockInfo> {
        if i >= self.blocks {
            return None;
        }
        let at = self.skip.checked_add(i.checked_mul(SKIP_ENTRY)?)?;
        let rel = usize::try_from(le_u64(b, at + 16)?).ok()?;
        let end = if i + 1 < self.blocks {
            usize::try_from(le_u64(b, at + SKIP_ENTRY + 16)?)
                .ok()?
                .checked_add(HEADER_LEN)?
        } else {
            self.skip
        };
        Some(BlockInfo {
            first: le_u64(b, at)?,
            last: le_u64(b, at + 8)?,
            start: rel.checked_add(HEADER_LEN)?,
            end,
        })
    }

    /// The first position of block `i` (a skip-table read, for searches).
    pub(crate) fn block_first(&self, b: &[u8], i: usize) -> Option<u64> {
        if i >= self.blocks {
            return None;
        }
        le_u64(b, self.skip.checked_add(i.checked_mul(SKIP_ENTRY)?)?)
    }

    /// The last position of block `i`.
    pub(crate) fn block_last(&self, b: &[u8], i: usize) -> Option<u64> {
        if i >= self.blocks {
            return None;
        }
        le_u64(
            b,
            self.skip
                .checked_add(i.checked_mul(SKIP_ENTRY)?)?
                .checked_add(8)?,
        )
    }

    /// The raw fields of directory entry `i`: key offset (relative to the
    /// key bytes), count, first block.
    fn dir_fields(&self, b: &[u8], i: usize) -> Option<(u64, u64, u64)> {
        let at = self.dir.checked_add(i.checked_mul(DIR_ENTRY)?)?;
        Some((le_u64(b, at)?, le_u64(b, at + 8)?, le_u64(b, at + 16)?))
    }

    /// Directory entry `i`. A key ends where the next key begins, and a
    /// list's blocks where the next list's begin.
    pub(crate) fn entry(&self, b: &[u8], i: usize) -> Option<DirEntry> {
        if i >= self.key_count {
            return None;
        }
        let (key_off, count, first_block) = self.dir_fields(b, i)?;
        let (next_key, next_block) = if i + 1 < self.key_count {
            let (k, _, f) = self.dir_fields(b, i + 1)?;
            (k, f)
        } else {
            (
                self.ids.saturating_sub(self.keys) as u64,
                self.blocks as u64,
            )
        };
        let key_start = self.keys.checked_add(usize::try_from(key_off).ok()?)?;
        let key_end = self.keys.checked_add(usize::try_from(next_key).ok()?)?;
        let first_block = usize::try_from(first_block).ok()?;
        let blocks = usize::try_from(next_block).ok()?.checked_sub(first_block)?;
        Some(DirEntry {
            key_start,
            key_end,
            list: ListRef {
                first_block,
                blocks,
                count,
            },
        })
    }

    /// Entry `i` of the id section: its id and position.
    pub(crate) fn id_entry(&self, b: &[u8], i: usize) -> Option<(u128, u64)> {
        let id = self.id_at(b, i)?;
        Some((id, le_u64(b, self.id_entry_start(i)? + 16)?))
    }

    /// The id of entry `i` of the id section (its position left unread).
    pub(crate) fn id_at(&self, b: &[u8], i: usize) -> Option<u128> {
        let at = self.id_entry_start(i)?;
        let id = b.get(at..at.checked_add(16)?)?;
        Some(u128::from_be_bytes(id.try_into().ok()?))
    }

    /// Where entry `i` of the id section starts, if there is one.
    fn id_entry_start(&self, i: usize) -> Option<usize> {
        if i >= self.id_count {
            return None;
        }
        self.ids.checked_add(i.checked_mul(ID_ENTRY)?)
    }

    /// The key bytes of directory entry `i`.
    pub(crate) fn key<'b>(&self, b: &'b [u8], i: usize) -> Option<&'b [u8]> {
        let e = self.entry(b, i)?;
        b.get(e.key_start..e.key_end)
    }
}
