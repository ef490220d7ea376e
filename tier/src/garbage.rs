//! Chunk objects no checkpoint names: those of a round killed before its
//! checkpoint, or uploaded by a writer after it was fenced. A shipper
//! deletes them once, when it has claimed the prefix and fenced the
//! checkpoint — and only those of *earlier* epochs: their writers can no
//! longer write a checkpoint that would name them, while a later epoch's
//! chunks may belong to a writer that has just taken over from this one.

use futures::StreamExt;
use object_store::ObjectStoreExt;

use crate::checkpoint::Checkpoint;
use crate::error::{Result, bucket};
use crate::location::Location;

/// The epoch in a chunk key (`data/e<epoch>/…`, relative to the prefix).
fn epoch_of(key: &str) -> Option<u64> {
    key.strip_prefix("data/e")?.split('/').next()?.parse().ok()
}

/// Deletes the chunks of epochs before `epoch` that `checkpoint` does not
/// name; how many.
pub(crate) async fn collect(
    location: &Location,
    checkpoint: &Checkpoint,
    epoch: u64,
) -> Result<u64> {
    let named: std::collections::HashSet<&str> = checkpoint.keys().collect();
    let data = location.key("data");
    let strip = if location.prefix().is_empty() {
        0
    } else {
        location.prefix().len() + 1
    };
    let mut listing = location.store().list(Some(&data));
    let mut doomed = Vec::new();
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(bucket(format!("list {data}")))?;
        let full = meta.location.to_string();
        let Some(key) = full.get(strip..) else {
            continue;
        };
        if epoch_of(key).is_some_and(|e| e < epoch) && !named.contains(key) {
            doomed.push(meta.location);
        }
    }
    let mut deleted = 0;
    for key in doomed {
        match location.store().delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
            Err(e) => return Err(bucket(format!("delete {key}"))(e)),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::epoch_of;

    #[test]
    fn the_epoch_is_read_from_a_chunk_key() {
        assert_eq!(epoch_of("data/e00000003/wal/1.seg/0-1-2"), Some(3));
        assert_eq!(epoch_of("data/e12/MANIFEST/0-1-2"), Some(12));
        assert_eq!(epoch_of("data/x/MANIFEST"), None);
        assert_eq!(epoch_of("CHECKPOINT"), None);
    }
}
