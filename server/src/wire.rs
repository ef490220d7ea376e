//! `umadb.v1`'s `SequencedEvent` written straight from a borrowed event
//! (see `crate::encoded`): field 1, `events`, of the responses of `Read`
//! and `Subscribe`, and a read's `head`.
//!
//! A read's events are lent by the store
//! ([`gesta::EventStore::read_each`]) and written as they come, their
//! metadata entries borrowed from the event's bytes and the UUID written
//! without making a string, so nothing is allocated per event. A
//! subscription's events come owned from the engine's feed and are
//! written the same way from the owned events.

use bytes::{BufMut, BytesMut};
use prost::encoding::encode_varint;

use crate::convert::BorrowedMetadata;
use crate::encoded::{
    LEN, UUID_TEXT_LEN, bytes_field, framed, key, put_bytes, put_framed, put_u64, put_uuid,
    put_varint, u64_field,
};

/// A string field as prost encodes it: left out when empty.
fn str_field(s: &str) -> usize {
    bytes_field(s.as_bytes())
}

/// Writes a string field, left out when empty.
fn put_str(out: &mut BytesMut, field: u8, s: &str) {
    put_bytes(out, field, s.as_bytes());
}

/// One event as a `SequencedEvent` carries it, borrowed.
#[derive(Clone, Copy)]
pub(crate) struct Sequenced<'a> {
    pub position: u64,
    pub event_type: &'a str,
    pub tags: gesta::Tags<'a>,
    pub data: &'a [u8],
    pub uuid: Option<u128>,
    pub metadata: &'a BorrowedMetadata<'a>,
    pub tracking: Option<(&'a str, u64)>,
}

impl Sequenced<'_> {
    /// The encoded size of its `Event` message (what the server's limit
    /// per event is measured on).
    pub(crate) fn event_len(&self) -> usize {
        let tags: usize = self.tags.map(|t| framed(t.len())).sum();
        let data = if self.data.is_empty() {
            0
        } else {
            framed(self.data.len())
        };
        let uuid = self.uuid.map_or(0, |_| framed(UUID_TEXT_LEN));
        let metadata: usize = self
            .metadata
            .entry_bytes()
            .map(|(k, v)| framed(bytes_field(k) + bytes_field(v)))
            .sum();
        str_field(self.event_type) + tags + data + uuid + metadata
    }

    /// The encoded size of the `SequencedEvent`, given its event's.
    fn sequenced_len(&self, event_len: usize) -> usize {
        let tracking = self.tracking.map_or(0, |(source, position)| {
            framed(str_field(source) + u64_field(position))
        });
        u64_field(self.position) + framed(event_len) + tracking
    }

    /// The bytes it adds to a `ReadResponse` (field `events`, framed),
    /// given its event's encoded size.
    pub(crate) fn framed_len(&self, event_len: usize) -> usize {
        framed(self.sequenced_len(event_len))
    }

    /// Writes it into `out` as one entry of a `ReadResponse`'s `events`,
    /// given its event's encoded size ([`event_len`](Self::event_len)).
    pub(crate) fn put(&self, out: &mut BytesMut, event_len: usize) {
        out.put_u8(key(1, LEN));
        encode_varint(self.sequenced_len(event_len) as u64, out);
        put_u64(out, 1, self.position);
        out.put_u8(key(2, LEN));
        encode_varint(event_len as u64, out);
        put_str(out, 1, self.event_type);
        for tag in self.tags {
            // A repeated field's every value is written, empty or not.
            put_framed(out, 2, tag.as_bytes());
        }
        put_bytes(out, 3, self.data);
        if let Some(uuid) = self.uuid {
            put_uuid(out, 4, uuid);
        }
        for (k, v) in self.metadata.entry_bytes() {
            out.put_u8(key(5, LEN));
            encode_varint((bytes_field(k) + bytes_field(v)) as u64, out);
            put_bytes(out, 1, k);
            put_bytes(out, 2, v);
        }
        if let Some((source, position)) = self.tracking {
            out.put_u8(key(3, LEN));
            encode_varint((str_field(source) + u64_field(position)) as u64, out);
            put_str(out, 1, source);
            put_u64(out, 2, position);
        }
    }
}

/// Ends a `ReadResponse` whose events `out` holds with its `head`.
pub(crate) fn put_head(out: &mut BytesMut, head: Option<u64>) {
    if let Some(head) = head {
        // An `optional` field is written when set, zero included.
        put_varint(out, 2, head);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::convert::{ProtocolMetadata, encode_metadata, read_metadata};
    use crate::encoded::EncodedResponse;
    use crate::proto::v1;

    /// The message prost would be given for `e`: its metadata decoded as
    /// the protocol shows it, its UUID that of the metadata or else its id,
    /// and its batch's tracking info.
    fn to_sequenced(
        e: gesta::RecordedEvent,
        decoded: ProtocolMetadata,
        tracking: Option<&(String, u64)>,
    ) -> v1::SequencedEvent {
        let metadata = decoded
            .entries
            .into_iter()
            .map(|(key, value)| v1::MetadataEntry { key, value })
            .collect();
        v1::SequencedEvent {
            position: e.position,
            event: Some(v1::Event {
                event_type: e.event_type,
                tags: e.tags,
                data: e.data,
                uuid: decoded
                    .uuid
                    .or(e.id)
                    .map(|id| uuid::Uuid::from_u128(id).hyphenated().to_string())
                    .unwrap_or_default(),
                metadata,
            }),
            tracking_info: tracking.map(|(source, position)| v1::TrackingInfo {
                source: source.clone(),
                position: *position,
            }),
        }
    }

    fn names() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), "[a-z:é]{1,12}", "[a-z]{120,140}"]
    }

    /// Metadata bytes of every kind a read meets: none, the protocol's
    /// form (with or without a UUID, entries, tracking), raw bytes
    /// (UTF-8 or not), and damaged protocol forms (shown raw).
    fn metadata() -> impl Strategy<Value = Vec<u8>> {
        let protocol = || {
            (
                prop::option::of(any::<u128>()),
                prop::collection::vec((names(), names()), 0..4),
                any::<bool>(),
            )
                .prop_map(|(uuid, entries, tracked)| {
                    encode_metadata(&ProtocolMetadata {
                        uuid,
                        entries,
                        tracked,
                    })
                    .to_vec()
                })
        };
        prop_oneof![
            Just(Vec::new()),
            protocol(),
            "[ -~]{1,40}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 1..40),
            protocol().prop_map(|mut b| {
                b.pop();
                b
            }),
        ]
    }

    proptest! {
        /// An event written here is byte for byte what prost writes for the
        /// `SequencedEvent` the owned path builds, framed as an entry of a
        /// `ReadResponse`, and the sizes agree with prost's.
        #[test]
        fn events_encode_as_prost_encodes_them(
            position in prop_oneof![Just(0u64), 1u64..200, any::<u64>()],
            event_type in names(),
            tags in prop::collection::vec(names(), 0..4),
            data in prop::collection::vec(any::<u8>(), 0..300),
            id in prop::option::of(any::<u128>()),
            metadata in metadata(),
            tracking in prop::option::of((names(), prop_oneof![Just(0u64), any::<u64>()])),
            head in prop::option::of(prop_oneof![Just(0u64), any::<u64>()]),
        ) {
            let recorded = gesta::RecordedEvent {
                position,
                event_type: event_type.clone(),
                tags: tags.clone(),
                data: Bytes::from(data.clone()),
                metadata: Bytes::from(metadata.clone()),
                id,
                stream: None,
                revision: None,
                timestamp_micros: 0,
            };
            let tracking_owned = tracking.clone();
            let (owned_meta, _) = read_metadata(&metadata);
            let want = to_sequenced(recorded, owned_meta, tracking_owned.as_ref());
            let want_response = v1::ReadResponse { events: vec![want.clone(), want.clone()], head };

            let (borrowed, _) = BorrowedMetadata::read(&metadata);
            let e = Sequenced {
                position,
                event_type: &event_type,
                tags: gesta::Tags::strings(&tags),
                data: &data,
                uuid: borrowed.uuid.or(id),
                metadata: &borrowed,
                tracking: tracking.as_ref().map(|(s, p)| (s.as_str(), *p)),
            };
            let event_len = e.event_len();
            prop_assert_eq!(event_len, want.event.as_ref().unwrap().encoded_len());
            let mut out = BytesMut::new();
            e.put(&mut out, event_len);
            prop_assert_eq!(out.len(), e.framed_len(event_len));
            e.put(&mut out, event_len);
            put_head(&mut out, head);
            prop_assert_eq!(&out[..], &want_response.encode_to_vec()[..]);
            prop_assert_eq!(EncodedResponse(out.freeze()).decode::<v1::ReadResponse>().unwrap(), want_response);
        }
    }
}
