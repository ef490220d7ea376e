//! Posting-list keys: what a list of positions is keyed by.
//!
//! A key is one kind byte followed by the name bytes. Keys compare as plain
//! byte strings, so the order of keys in the memtable, in a run's key
//! directory and in `write_run`'s input is the same order, and all keys of
//! one kind are adjacent.

use std::fmt;

/// Kind byte of an event-type key.
const KIND_TYPE: u8 = 1;
/// Kind byte of a tag key.
const KIND_TAG: u8 = 2;
/// Kind byte of a stream key.
const KIND_STREAM: u8 = 3;
/// Kind byte of an event-id key.
pub(crate) const KIND_ID: u8 = 4;
/// Kind byte of a tracking-source key.
const KIND_TRACKING: u8 = 5;

/// What kind of posting list a [`Key`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// Events of one type.
    Type,
    /// Events carrying one tag.
    Tag,
    /// Events of one stream.
    Stream,
    /// The event with one 128-bit id.
    Id,
    /// The last events of the batches that carried tracking info for one
    /// source.
    Tracking,
    /// A kind byte this version does not know, or an empty key. Only keys
    /// made by [`Key::from_bytes`] from foreign bytes can have it.
    Other,
}

/// A posting-list key: one kind byte then the name bytes.
///
/// Ids are stored big-endian so that id keys sort in numeric order.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(Box<[u8]>);

impl Key {
    fn with_kind(kind: u8, name: &[u8]) -> Key {
        let mut bytes = Vec::with_capacity(1 + name.len());
        bytes.push(kind);
        bytes.extend_from_slice(name);
        Key(bytes.into_boxed_slice())
    }

    /// The key of the events of type `name`.
    pub fn event_type(name: &str) -> Key {
        Key::with_kind(KIND_TYPE, name.as_bytes())
    }

    /// The key of the events carrying tag `name`.
    pub fn tag(name: &str) -> Key {
        Key::with_kind(KIND_TAG, name.as_bytes())
    }

    /// The key of the events of stream `name`.
    pub fn stream(name: &str) -> Key {
        Key::with_kind(KIND_STREAM, name.as_bytes())
    }

    /// The key of the event with id `id`.
    pub fn id(id: u128) -> Key {
        Key::with_kind(KIND_ID, &id.to_be_bytes())
    }

    /// The key of the batches carrying tracking info for source `name`
    /// (posted at each such batch's last position).
    pub fn tracking(name: &str) -> Key {
        Key::with_kind(KIND_TRACKING, name.as_bytes())
    }

    /// The encoded key: the kind byte, then the name.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key whose encoding is `b` (as returned by [`Key::as_bytes`]).
    /// Any bytes are accepted; unknown kinds report [`KeyKind::Other`].
    pub fn from_bytes(b: &[u8]) -> Key {
        Key(b.into())
    }

    /// The kind of posting list this key names.
    pub fn kind(&self) -> KeyKind {
        match self.0.first() {
            Some(&KIND_TYPE) => KeyKind::Type,
            Some(&KIND_TAG) => KeyKind::Tag,
            Some(&KIND_STREAM) => KeyKind::Stream,
            Some(&KIND_ID) if self.0.len() == 17 => KeyKind::Id,
            Some(&KIND_TRACKING) => KeyKind::Tracking,
            _ => KeyKind::Other,
        }
    }

    /// The name bytes, without the kind byte.
    pub fn name(&self) -> &[u8] {
        self.0.get(1..).unwrap_or_default()
    }

    /// The id, if this is an id key.
    pub fn as_id(&self) -> Option<u128> {
        if self.kind() != KeyKind::Id {
            return None;
        }
        let bytes: [u8; 16] = self.name().try_into().ok()?;
        Some(u128::from_be_bytes(bytes))
    }
}

impl fmt::Debug for Key {
    /// Names are shown as text where they are UTF-8, which is what they are
    /// for every key the engine makes; anything else as raw bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind(), std::str::from_utf8(self.name())) {
            (KeyKind::Id, _) => write!(f, "Id({:#x})", self.as_id().unwrap_or_default()),
            (KeyKind::Type, Ok(s)) => write!(f, "Type({s:?})"),
            (KeyKind::Tag, Ok(s)) => write!(f, "Tag({s:?})"),
            (KeyKind::Stream, Ok(s)) => write!(f, "Stream({s:?})"),
            (KeyKind::Tracking, Ok(s)) => write!(f, "Tracking({s:?})"),
            _ => write!(f, "Key({:?})", &self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        assert_eq!(Key::event_type("a").kind(), KeyKind::Type);
        assert_eq!(Key::tag("a").kind(), KeyKind::Tag);
        assert_eq!(Key::stream("a").kind(), KeyKind::Stream);
        assert_eq!(Key::tracking("a").kind(), KeyKind::Tracking);
        assert_eq!(Key::id(7).kind(), KeyKind::Id);
        assert_eq!(Key::id(7).as_id(), Some(7));
        assert_eq!(Key::tag("x").as_id(), None);
        assert_eq!(Key::from_bytes(&[]).kind(), KeyKind::Other);
        assert_eq!(Key::from_bytes(&[9, 1]).kind(), KeyKind::Other);
        let k = Key::tag("user:1");
        assert_eq!(Key::from_bytes(k.as_bytes()), k);
        assert_eq!(k.name(), b"user:1");
    }

    #[test]
    fn same_name_different_kind_differs() {
        assert_ne!(Key::event_type("a"), Key::tag("a"));
        assert_ne!(Key::tag("a"), Key::stream("a"));
    }

    #[test]
    fn ids_sort_numerically_and_kinds_group() {
        assert!(Key::id(1) < Key::id(256));
        assert!(Key::id(255) < Key::id(1 << 64));
        assert!(Key::event_type("zzz") < Key::tag(""));
        assert!(Key::stream("zzz") < Key::id(0));
    }

    #[test]
    fn debug_is_readable() {
        assert_eq!(format!("{:?}", Key::tag("a")), "Tag(\"a\")");
        assert_eq!(format!("{:?}", Key::id(255)), "Id(0xff)");
    }
}
