//! Tracking info read back: the position a tracking source stored with its
//! last append lives in the trailer of that append's record, which the
//! index finds through the source's tracking key.

use gesta_index::Key;
use gesta_wal::WalReader;

use crate::error::Result;

use crate::codec::MAX_SOURCE_LEN;

/// A tracking source is 1 to [`MAX_SOURCE_LEN`] bytes of UTF-8.
pub(crate) fn check_tracking_source(source: &str) -> Result<()> {
    if source.is_empty() || source.len() > MAX_SOURCE_LEN {
        return Err(crate::Error::InvalidInput {
            reason: format!("a tracking source must be 1 to {MAX_SOURCE_LEN} bytes long"),
        });
    }
    Ok(())
}

/// The tracking position of `source` (tracking key `key`): the trailer of
/// the record holding the key's last posting at or below `upto` (a
/// reader's head, since a commit's postings are visible before its head
/// is; `u64::MAX` in the committer, which publishes every head itself).
pub(crate) fn tracking_at(
    reader: &WalReader,
    view: &gesta_index::IndexView,
    key: &Key,
    source: &str,
    upto: u64,
) -> Result<Option<u64>> {
    let Some(position) = view.last_upto(key, upto) else {
        return Ok(None);
    };
    let damaged = |reason: &str| {
        let e = crate::Error::Corruption {
            file: Default::default(),
            offset: 0,
            reason: format!("tracking info of {source:?} at position {position}: {reason}"),
        };
        crate::read::name_file(reader, position, e)
    };
    let record = reader
        .record_head_containing(position)?
        .ok_or_else(|| damaged("the index names a position the log does not hold"))?;
    match crate::codec::tracking_of(record.seq(), record.meta.count) {
        Ok(Some((found, stored))) if found == source => Ok(Some(stored)),
        Ok(_) => Err(damaged(
            "the record carries no tracking info for the source",
        )),
        Err(e) => Err(crate::read::name_file(reader, position, e)),
    }
}
