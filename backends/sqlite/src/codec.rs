//! How event fields that SQLite has no type for are stored in columns: the
//! 128-bit id as a 16-byte big-endian blob (so that the `UNIQUE` index
//! orders ids numerically), and an event's tag list, in its original order
//! and with any repeats, as one blob of length-prefixed names. Tags added
//! to the event later (retroactive tags, see `lifecycle`) are encoded the
//! same way and appended to the blob, after the event's own.

/// The `id` column's value.
pub(crate) fn encode_id(id: u128) -> [u8; 16] {
    id.to_be_bytes()
}

/// An id back from the `id` column; `None` when the blob is not 16 bytes.
pub(crate) fn decode_id(blob: &[u8]) -> Option<u128> {
    Some(u128::from_be_bytes(blob.try_into().ok()?))
}

/// The `tags` column's value: each tag as a little-endian `u16` length and
/// its UTF-8 bytes (tags are at most 255 bytes, checked before this).
pub(crate) fn encode_tags(tags: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(tags.iter().map(|t| t.len() + 2).sum());
    for tag in tags {
        let len = u16::try_from(tag.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&tag.as_bytes()[..usize::from(len)]);
    }
    out
}

/// Hands each tag of a `tags` column to `f`, borrowed, in order; fails on
/// the first thing wrong (after handing over the tags before it).
pub(crate) fn each_tag<'b>(mut blob: &'b [u8], mut f: impl FnMut(&'b str)) -> Result<(), String> {
    while !blob.is_empty() {
        let Some((len, rest)) = blob.split_first_chunk::<2>() else {
            return Err("tag list ends inside a length".to_owned());
        };
        let len = usize::from(u16::from_le_bytes(*len));
        if rest.len() < len {
            return Err("tag list ends inside a tag".to_owned());
        }
        let (tag, rest) = rest.split_at(len);
        f(std::str::from_utf8(tag).map_err(|e| format!("tag is not UTF-8: {e}"))?);
        blob = rest;
    }
    Ok(())
}

/// A `tags` column's tags, owned, in order.
pub(crate) fn decode_tags(blob: &[u8]) -> Result<Vec<String>, String> {
    let mut tags = Vec::new();
    each_tag(blob, |tag| tags.push(tag.to_owned()))?;
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_in_order_with_repeats() {
        for tags in [
            vec![],
            vec!["a".to_owned()],
            vec!["b:2".to_owned(), "a".to_owned(), "b:2".to_owned()],
            vec!["x".repeat(255), "é".to_owned()],
        ] {
            assert_eq!(decode_tags(&encode_tags(&tags)), Ok(tags));
        }
        // A list grows by appending an encoded list: the retroactive tags
        // an event gains go after its own.
        let mut grown = encode_tags(&["a".to_owned()]);
        grown.extend(encode_tags(&["b".to_owned(), "c".to_owned()]));
        assert_eq!(
            decode_tags(&grown),
            Ok(vec!["a".into(), "b".into(), "c".into()])
        );
        assert!(decode_tags(&[1]).is_err());
        assert!(decode_tags(&[3, 0, b'a']).is_err());
        assert!(decode_tags(&[1, 0, 0xff]).is_err());
    }

    #[test]
    fn ids_round_trip() {
        for id in [0, 1, u128::MAX, 0x0123_4567_89ab_cdef_0011_2233_4455_6677] {
            assert_eq!(decode_id(&encode_id(id)), Some(id));
        }
        assert_eq!(decode_id(&[0; 15]), None);
    }
}
