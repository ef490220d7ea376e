//! Encoding an index run: from sorted posting lists to the bytes of a file.
//!
//! The run is built in memory and returned whole; writing and syncing it is
//! the caller's business (the index crate does not know about files).

use super::format::{BLOCK, Footer, HEADER_LEN, MAGIC, VERSION, VERSION_1, put_varint};
use crate::filter;
use crate::key::{ID_KEY_LEN, KIND_ID, Key};

/// Encodes `entries` as an index run covering positions `covers.0..=covers.1`
/// (the run claims to hold every posting for those positions).
///
/// `entries` should be sorted by key with each list ascending, as
/// [`Memtable::entries`](crate::Memtable::entries) returns them; anything
/// else is sorted here, duplicate keys are merged, and empty lists dropped,
/// so the file is always well formed. Positions are not checked against
/// `covers`; a view never reads a run outside its range, so postings
/// beyond it would simply not be seen.
///
/// Every event id with one position (as every id is: an id names one
/// event) goes to the id section, a row of fixed-size entries searched by
/// the ids' values; every other key to the directory.
pub fn write_run(
    entries: impl IntoIterator<Item = (Key, Vec<u64>)>,
    covers: (u64, u64),
) -> Vec<u8> {
    write_version(entries, covers, VERSION)
}

/// [`write_run`] in format version 1: no id section, every key in the
/// directory, as runs were written before version 2. For tests that a
/// store written then still opens and answers.
#[doc(hidden)]
pub fn write_run_v1(
    entries: impl IntoIterator<Item = (Key, Vec<u64>)>,
    covers: (u64, u64),
) -> Vec<u8> {
    write_version(entries, covers, VERSION_1)
}

/// Whether `key` with `count` positions belongs in a version 2 run's id
/// section: an id key of one position.
pub(crate) fn in_id_section(key: &[u8], count: u64) -> bool {
    key.len() == ID_KEY_LEN && key.first() == Some(&KIND_ID) && count == 1
}

fn write_version(
    entries: impl IntoIterator<Item = (Key, Vec<u64>)>,
    covers: (u64, u64),
    version: u32,
) -> Vec<u8> {
    let entries = normalize(entries.into_iter().collect());

    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());

    // The postings go straight into the output; the other sections are
    // collected alongside and appended after.
    let mut skip = Vec::new();
    let mut dir = Vec::new();
    let mut keys = Vec::new();
    let mut ids = Vec::new();
    let mut blocks = 0u64;
    let mut postings = 0u64;
    let mut key_count = 0u64;
    for (key, list) in &entries {
        if version != VERSION_1
            && in_id_section(key.as_bytes(), list.len() as u64)
            && let (Some(id), Some(position)) = (key.as_bytes().get(1..), list.first())
        {
            // Ids ascend as their keys do (big-endian after the kind).
            ids.extend_from_slice(id);
            ids.extend_from_slice(&position.to_le_bytes());
            postings += 1;
            continue;
        }
        key_count += 1;
        dir.extend_from_slice(&(keys.len() as u64).to_le_bytes());
        dir.extend_from_slice(&(list.len() as u64).to_le_bytes());
        dir.extend_from_slice(&blocks.to_le_bytes());
        keys.extend_from_slice(key.as_bytes());
        for block in list.chunks(BLOCK) {
            let (Some(&first), Some(&last)) = (block.first(), block.last()) else {
                continue;
            };
            skip.extend_from_slice(&first.to_le_bytes());
            skip.extend_from_slice(&last.to_le_bytes());
            skip.extend_from_slice(&((out.len() - HEADER_LEN) as u64).to_le_bytes());
            for pair in block.windows(2) {
                if let [a, b] = pair {
                    put_varint(&mut out, b - a);
                }
            }
            blocks += 1;
        }
        postings += list.len() as u64;
    }

    let skip_off = out.len() as u64;
    out.extend_from_slice(&skip);
    let dir_off = out.len() as u64;
    out.extend_from_slice(&dir);
    let keys_off = out.len() as u64;
    out.extend_from_slice(&keys);
    let ids_off = out.len() as u64;
    out.extend_from_slice(&ids);
    let filter_off = out.len() as u64;
    // Every key, the ids' too, so that a lookup by id skips a run
    // without the id as it skips one without a tag.
    let filter = filter::build(entries.iter().map(|(k, _)| k.as_bytes()), entries.len());
    out.extend_from_slice(&filter);
    let footer = Footer {
        skip_off,
        dir_off,
        keys_off,
        filter_off,
        covers,
        key_count,
        posting_count: postings,
        ids_off,
        version,
    };
    footer.finish(&mut out);
    out
}

/// Sorts keys and positions, merges duplicate keys and drops empty lists,
/// doing no work when the input is already in shape (the normal case).
fn normalize(mut entries: Vec<(Key, Vec<u64>)>) -> Vec<(Key, Vec<u64>)> {
    let strictly_ascending = |v: &[u64]| v.is_sorted_by(|a, b| a < b);
    let keys_ok = entries.is_sorted_by(|a, b| a.0 < b.0);
    let lists_ok = entries
        .iter()
        .all(|(_, v)| !v.is_empty() && strictly_ascending(v));
    if keys_ok && lists_ok {
        return entries;
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut merged: Vec<(Key, Vec<u64>)> = Vec::with_capacity(entries.len());
    for (key, list) in entries {
        match merged.last_mut() {
            Some((last, positions)) if *last == key => positions.extend(list),
            _ => merged.push((key, list)),
        }
    }
    for (_, list) in &mut merged {
        if !strictly_ascending(list) {
            list.sort_unstable();
            list.dedup();
        }
    }
    merged.retain(|(_, list)| !list.is_empty());
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_fixes_order_duplicates_and_empties() {
        let input = vec![
            (Key::tag("b"), vec![5, 3, 3]),
            (Key::tag("a"), vec![1]),
            (Key::tag("c"), vec![]),
            (Key::tag("b"), vec![4]),
        ];
        let got = normalize(input);
        assert_eq!(
            got,
            vec![(Key::tag("a"), vec![1]), (Key::tag("b"), vec![3, 4, 5])]
        );
    }

    #[test]
    fn empty_run_is_header_filter_footer() {
        let bytes = write_run(Vec::new(), (1, 0));
        assert_eq!(
            bytes.len(),
            HEADER_LEN + filter::FILTER_BLOCK + super::super::format::FOOTER_LEN
        );
        assert_eq!(&bytes[..8], MAGIC);
    }
}
