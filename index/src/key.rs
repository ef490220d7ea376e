//! Posting-list keys: what a list of positions is keyed by.
//!
//! A key is one kind byte followed by the name bytes. Keys compare as plain
//! byte strings, so the order of keys in the memtable, in a run's key
//! directory and in `write_run`'s input is the same order, and all keys of
//! one kind are adjacent.

use std::fmt;

/// The hasher of the maps keyed by [`Key`] (or by an id) that the commit
/// path looks up: the memtable's, and the engine's caches of stream
/// revisions. The committer looks up every key of every commit, so
/// hashing is on the commit path, and std's SipHash took about twice the
/// instructions of a lookup with foldhash. foldhash is seeded at random
/// per map, as SipHash is, so that names a client chooses cannot be
/// picked to collide ahead of time.
pub type KeyHasher = foldhash::fast::RandomState;

/// Kind byte of an event-type key.
const KIND_TYPE: u8 = 1;
/// Kind byte of a tag key.
const KIND_TAG: u8 = 2;
/// Kind byte of a stream key.
const KIND_STREAM: u8 = 3;
/// Kind byte of an event-id key.
pub(crate) const KIND_ID: u8 = 4;
/// The bytes of an id key: its kind byte and the id, big-endian.
pub(crate) const ID_KEY_LEN: usize = 17;
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

/// Keys of up to this many bytes (kind byte included) are held inline:
/// every id key, and the types, tags and streams of most applications.
const INLINE: usize = 30;

/// A posting-list key: one kind byte then the name bytes.
///
/// Ids are stored big-endian so that id keys sort in numeric order.
///
/// A short key holds its bytes inline, so making one allocates nothing
/// (an append makes one per type, tag, stream and id of every event) and
/// comparing one in a hash table reads no other memory than the table's
/// own (the committer looks up every key of every commit in the
/// memtable's). Keys compare, order and hash as their bytes, whatever
/// their representation.
#[derive(Clone)]
pub struct Key(Repr);

#[derive(Clone)]
enum Repr {
    /// The first `len` bytes of `bytes`, the rest zeros: every key of at
    /// most [`INLINE`] bytes.
    Inline { len: u8, bytes: [u8; INLINE] },
    /// A key longer than [`INLINE`] bytes.
    Heap(Box<[u8]>),
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        match (&self.0, &other.0) {
            // Whole arrays, compared in a few wide loads rather than by a
            // call comparing `len` bytes: the bytes after `len` are zeros
            // in every inline key, and a key is inline exactly when it is
            // short enough, so two keys are equal exactly when these are.
            (Repr::Inline { len: a, bytes: x }, Repr::Inline { len: b, bytes: y }) => {
                a == b && x == y
            }
            _ => self.as_bytes() == other.as_bytes(),
        }
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl Key {
    fn with_kind(kind: u8, name: &[u8]) -> Key {
        let len = 1 + name.len();
        match name.len() < INLINE {
            true => {
                // One copy of the name: built byte by byte through an
                // iterator, a key cost the appending thread several
                // instructions a byte.
                let mut bytes = [0; INLINE];
                if let Some((first, rest)) = bytes.split_first_mut() {
                    *first = kind;
                    if let Some(slot) = rest.get_mut(..name.len()) {
                        slot.copy_from_slice(name);
                    }
                }
                Key(Repr::Inline {
                    len: len as u8,
                    bytes,
                })
            }
            false => {
                let mut bytes = Vec::with_capacity(len);
                bytes.push(kind);
                bytes.extend_from_slice(name);
                Key(Repr::Heap(bytes.into_boxed_slice()))
            }
        }
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
        match &self.0 {
            Repr::Inline { len, bytes } => bytes.get(..*len as usize).unwrap_or_default(),
            Repr::Heap(bytes) => bytes,
        }
    }

    /// The key whose encoding is `b` (as returned by [`Key::as_bytes`]).
    /// Any bytes are accepted; unknown kinds report [`KeyKind::Other`].
    pub fn from_bytes(b: &[u8]) -> Key {
        match b.split_first() {
            Some((&kind, name)) => Key::with_kind(kind, name),
            None => Key(Repr::Inline {
                len: 0,
                bytes: [0; INLINE],
            }),
        }
    }

    /// The kind of posting list this key names.
    pub fn kind(&self) -> KeyKind {
        let b = self.as_bytes();
        match b.first() {
            Some(&KIND_TYPE) => KeyKind::Type,
            Some(&KIND_TAG) => KeyKind::Tag,
            Some(&KIND_STREAM) => KeyKind::Stream,
            Some(&KIND_ID) if b.len() == ID_KEY_LEN => KeyKind::Id,
            Some(&KIND_TRACKING) => KeyKind::Tracking,
            _ => KeyKind::Other,
        }
    }

    /// The name bytes, without the kind byte.
    pub fn name(&self) -> &[u8] {
        self.as_bytes().get(1..).unwrap_or_default()
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
            _ => write!(f, "Key({:?})", self.as_bytes()),
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

    fn hash_of(k: &impl std::hash::Hash) -> u64 {
        use std::hash::Hasher;
        let mut h = std::hash::DefaultHasher::new();
        k.hash(&mut h);
        h.finish()
    }

    #[test]
    fn short_keys_are_inline_and_long_ones_on_the_heap() {
        let empty = Key::from_bytes(&[]);
        assert!(matches!(empty.0, Repr::Inline { len: 0, .. }));
        assert_eq!(empty.as_bytes(), b"");
        for len in [0, 1, INLINE - 1, INLINE, INLINE + 1, 300] {
            let name = "n".repeat(len);
            let k = Key::tag(&name);
            assert_eq!(k.as_bytes().len(), len + 1);
            assert_eq!(k.name(), name.as_bytes());
            assert_eq!(matches!(k.0, Repr::Inline { .. }), len < INLINE, "{len}");
            assert_eq!(Key::from_bytes(k.as_bytes()), k);
            assert_eq!(k.clone().as_bytes(), k.as_bytes());
        }
    }

    proptest::proptest! {
        /// Keys compare, order and hash as their bytes, across both
        /// representations (lengths on both sides of the inline limit).
        #[test]
        fn keys_behave_as_their_bytes(
            a in proptest::collection::vec(0u8..4, 0..2 * INLINE),
            b in proptest::collection::vec(0u8..4, 0..2 * INLINE),
        ) {
            let (ka, kb) = (Key::from_bytes(&a), Key::from_bytes(&b));
            proptest::prop_assert_eq!(ka.as_bytes(), &a[..]);
            proptest::prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            proptest::prop_assert_eq!(ka == kb, a == b);
            proptest::prop_assert_eq!(ka.partial_cmp(&kb), a.partial_cmp(&b));
            let mut map = std::collections::HashMap::new();
            map.insert(ka.clone(), 1);
            proptest::prop_assert_eq!(map.contains_key(&kb), a == b);
            proptest::prop_assert_eq!(hash_of(&ka), hash_of(&&a[..]));
            if a == b {
                proptest::prop_assert_eq!(hash_of(&ka), hash_of(&kb));
            }
        }
    }

    #[test]
    fn debug_is_readable() {
        assert_eq!(format!("{:?}", Key::tag("a")), "Tag(\"a\")");
        assert_eq!(format!("{:?}", Key::id(255)), "Id(0xff)");
    }
}
