//! Opening a run: the checks that stand between untrusted bytes and the
//! lookups that trust their structure.
//!
//! The checksum comes first and covers the whole file but the CRC field and
//! the trailing magic, which are checked by comparison, so any single-bit
//! flip is caught. The structure is then validated in one pass over the
//! directory and skip table (O(keys + blocks), no posting is decoded) and
//! one over the id section (its ids ascending): a run written by a buggy
//! writer is rejected here with the offset of the first bad entry rather
//! than giving wrong answers later.

use super::RunError;
use super::format::{
    BLOCK, CRC_FROM_END, DIR_ENTRY, FOOTER_LEN, FOOTER_LEN_1, Footer, HEADER_LEN, ID_ENTRY, MAGIC,
    SKIP_ENTRY, VERSION, VERSION_1, le_u32,
};
use super::layout::Layout;
use super::writer::in_id_section;
use crate::filter::FILTER_BLOCK;
use crate::key::{ID_KEY_LEN, KIND_ID};

fn corrupt(offset: usize, reason: &'static str) -> RunError {
    RunError::Corrupt {
        offset: offset as u64,
        reason,
    }
}

/// Verifies magic, checksum and version and returns the section layout,
/// and whether every key of the id kind is an id key (see [`validate`]).
pub(crate) fn open(b: &[u8]) -> Result<(Layout, Footer, bool), RunError> {
    let len = b.len();
    if len < HEADER_LEN + FOOTER_LEN_1 {
        return Err(corrupt(0, "shorter than a header and a footer"));
    }
    let crc_at = len - CRC_FROM_END;
    if b.get(len - MAGIC.len()..) != Some(&MAGIC[..]) {
        return Err(corrupt(len - MAGIC.len(), "bad trailing magic"));
    }
    let stored = le_u32(b, crc_at).ok_or_else(|| corrupt(crc_at, "no checksum"))?;
    let computed = crc32fast::hash(b.get(..crc_at).unwrap_or_default());
    if stored != computed {
        return Err(corrupt(crc_at, "checksum mismatch"));
    }
    if b.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        return Err(corrupt(0, "bad magic"));
    }
    let version = le_u32(b, 8).unwrap_or_default();
    let footer_len = match version {
        VERSION => FOOTER_LEN,
        VERSION_1 => FOOTER_LEN_1,
        _ => return Err(corrupt(8, "unsupported version")),
    };
    if len < HEADER_LEN + footer_len {
        return Err(corrupt(0, "shorter than a header and a footer"));
    }
    let footer_at = len - footer_len;
    let footer = b
        .get(footer_at..)
        .and_then(|tail| Footer::parse(tail, version))
        .ok_or_else(|| corrupt(footer_at, "unreadable footer"))?;
    let layout = sections(&footer, footer_at)?;
    let ids_whole = validate(b, &layout, &footer)?;
    validate_ids(b, &layout)?;
    Ok((layout, footer, ids_whole))
}

/// Checks that the footer's sections are in order, in the file, and sized
/// in whole entries.
fn sections(f: &Footer, footer_at: usize) -> Result<Layout, RunError> {
    // In file order, each with where its footer field is (a version 1
    // run has no id section: it starts and ends at the filter).
    let ids_field = if f.version == VERSION_1 { 24 } else { 64 };
    let offs = [
        (f.skip_off, 0),
        (f.dir_off, 8),
        (f.keys_off, 16),
        (f.ids_off, ids_field),
        (f.filter_off, 24),
    ];
    let mut prev = HEADER_LEN;
    let mut at = [0usize; 5];
    for (i, &(off, field)) in offs.iter().enumerate() {
        let off = usize::try_from(off).unwrap_or(usize::MAX);
        if off < prev || off > footer_at {
            return Err(corrupt(footer_at + field, "section offset out of order"));
        }
        if let Some(slot) = at.get_mut(i) {
            *slot = off;
        }
        prev = off;
    }
    let [skip, dir, keys, ids, filter] = at;
    if !(dir - skip).is_multiple_of(SKIP_ENTRY) {
        return Err(corrupt(skip, "skip table not whole entries"));
    }
    let key_count = usize::try_from(f.key_count).unwrap_or(usize::MAX);
    if key_count.checked_mul(DIR_ENTRY) != Some(keys - dir) {
        return Err(corrupt(
            footer_at + 48,
            "key count does not match the directory",
        ));
    }
    if !(filter - ids).is_multiple_of(ID_ENTRY) {
        return Err(corrupt(ids, "id section not whole entries"));
    }
    let filter_len = footer_at - filter;
    if filter_len == 0 || !filter_len.is_multiple_of(FILTER_BLOCK) {
        return Err(corrupt(filter, "filter not whole blocks"));
    }
    Ok(Layout {
        skip,
        dir,
        keys,
        ids,
        filter,
        footer: footer_at,
        blocks: (dir - skip) / SKIP_ENTRY,
        key_count,
        id_count: (filter - ids) / ID_ENTRY,
    })
}

/// Walks the directory and the skip table: keys non-empty and strictly
/// ascending, lists covering the skip table exactly with the block count
/// their length implies, blocks ascending with plausible byte lengths.
/// Tells whether every key whose first byte is the id kind's is an id key
/// ([`ID_KEY_LEN`] bytes): the run's writer writes no other, but the format
/// holds any key, and a search of the ids by their values (which reads
/// each key as an id) is only sound over id keys.
fn validate(b: &[u8], l: &Layout, f: &Footer) -> Result<bool, RunError> {
    let mut next_block = 0usize;
    let mut postings = 0u64;
    let mut prev_key: Option<&[u8]> = None;
    let mut ids_whole = true;
    for i in 0..l.key_count {
        let at = l.dir + i * DIR_ENTRY;
        let e = l
            .entry(b, i)
            .ok_or_else(|| corrupt(at, "unreadable directory entry"))?;
        if i == 0 && e.key_start != l.keys {
            return Err(corrupt(at, "first key does not start the key bytes"));
        }
        if e.key_end <= e.key_start || e.key_end > l.ids {
            return Err(corrupt(at, "key bytes out of range"));
        }
        let key = b.get(e.key_start..e.key_end).unwrap_or_default();
        if prev_key.is_some_and(|p| p >= key) {
            return Err(corrupt(at, "keys not strictly ascending"));
        }
        if l.ids < l.filter && in_id_section(key, e.list.count) {
            // Its place is the id section, where a lookup by id looks.
            return Err(corrupt(at, "an id of one position outside the id section"));
        }
        prev_key = Some(key);
        ids_whole &= key.first() != Some(&KIND_ID) || key.len() == ID_KEY_LEN;
        let list = e.list;
        if list.first_block != next_block
            || list.count == 0
            || (list.blocks as u64) != list.count.div_ceil(BLOCK as u64)
        {
            return Err(corrupt(at, "list does not match its blocks"));
        }
        let mut prev_last: Option<u64> = None;
        for blk in 0..list.blocks {
            let index = list.first_block + blk;
            let at = l.skip + index * SKIP_ENTRY;
            let info = l
                .block(b, index)
                .ok_or_else(|| corrupt(at, "unreadable block"))?;
            let n = list.block_len(blk) as u64;
            let bytes = info.end.checked_sub(info.start);
            let ok = info.start >= HEADER_LEN
                && info.end <= l.skip
                && bytes.is_some_and(|len| (len as u64) >= n - 1 && (len as u64) <= 10 * (n - 1))
                && info
                    .last
                    .checked_sub(info.first)
                    .is_some_and(|span| span >= n - 1)
                && prev_last.is_none_or(|p| p < info.first);
            if !ok {
                return Err(corrupt(at, "bad block"));
            }
            prev_last = Some(info.last);
        }
        next_block += list.blocks;
        postings = postings.saturating_add(list.count);
    }
    if next_block != l.blocks {
        return Err(corrupt(l.skip, "blocks not owned by any key"));
    }
    if l.blocks > 0 && l.block(b, 0).map(|i| i.start) != Some(HEADER_LEN) {
        return Err(corrupt(l.skip, "postings do not start after the header"));
    }
    if l.blocks == 0 && l.skip != HEADER_LEN {
        return Err(corrupt(HEADER_LEN, "postings without blocks"));
    }
    if postings.checked_add(l.id_count as u64) != Some(f.posting_count) {
        return Err(corrupt(
            l.footer + 56,
            "posting count does not match the lists",
        ));
    }
    Ok(ids_whole)
}

/// Checks the id section: its ids strictly ascending, so that a search by
/// value finds every one of them. One pass of plain comparisons.
fn validate_ids(b: &[u8], l: &Layout) -> Result<(), RunError> {
    let mut prev: Option<u128> = None;
    for i in 0..l.id_count {
        let at = l.ids + i * ID_ENTRY;
        let id = l
            .id_at(b, i)
            .ok_or_else(|| corrupt(at, "unreadable id entry"))?;
        if prev.is_some_and(|p| p >= id) {
            return Err(corrupt(at, "ids not strictly ascending"));
        }
        prev = Some(id);
    }
    Ok(())
}
