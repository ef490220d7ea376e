//! `gesta.v1`'s `RecordedEvent` written straight from a borrowed event
//! (see `crate::encoded`): field 1, `events`, of the responses of `Read`,
//! `ReadStream`, `Subscribe` and `SubscribeDurable`, and their
//! `continued`.

use bytes::{BufMut, BytesMut};
use gesta::EventRef;
use prost::encoding::{encode_varint, encoded_len_varint};

use crate::encoded::{
    LEN, UUID_TEXT_LEN, bytes_field, framed, key, put_bytes, put_framed, put_u64, put_uuid,
    put_varint, u64_field,
};

/// The encoded size of `e`'s `RecordedEvent`.
pub(crate) fn recorded_len(e: &EventRef<'_>) -> usize {
    let tags: usize = e.tags.map(|t| framed(t.len())).sum();
    u64_field(e.position)
        + bytes_field(e.event_type.as_bytes())
        + tags
        + bytes_field(e.data)
        + bytes_field(e.metadata)
        + e.id.map_or(0, |_| framed(UUID_TEXT_LEN))
        // `optional` fields are written when set, empty or zero included.
        + e.stream.map_or(0, |s| framed(s.len()))
        + e.revision.map_or(0, |r| 1 + encoded_len_varint(r))
        + u64_field(e.timestamp_micros)
}

/// Writes `e` into `out` as one entry of a response's `events`, given its
/// encoded size ([`recorded_len`]).
pub(crate) fn put_recorded(out: &mut BytesMut, e: &EventRef<'_>, len: usize) {
    out.put_u8(key(1, LEN));
    encode_varint(len as u64, out);
    put_u64(out, 1, e.position);
    put_bytes(out, 2, e.event_type.as_bytes());
    for tag in e.tags {
        // A repeated field's every value is written, empty or not.
        put_framed(out, 3, tag.as_bytes());
    }
    put_bytes(out, 4, e.data);
    put_bytes(out, 5, e.metadata);
    if let Some(id) = e.id {
        put_uuid(out, 6, id);
    }
    if let Some(stream) = e.stream {
        put_framed(out, 7, stream.as_bytes());
    }
    if let Some(revision) = e.revision {
        put_varint(out, 8, revision);
    }
    put_u64(out, 9, e.timestamp_micros);
}

/// Marks a subscription's response as continued by the next one (field 2
/// of `SubscribeResponse` and `SubscribeDurableResponse`), after its
/// events.
pub(crate) fn put_continued(out: &mut BytesMut) {
    put_varint(out, 2, 1);
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::encoded::EncodedResponse;
    use crate::gesta_v1::convert::recorded_to_proto;
    use crate::proto::gesta_v1 as g;

    fn names() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), "[a-z:é]{1,12}", "[a-z]{120,140}"]
    }

    fn numbers() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0u64), 1u64..200, any::<u64>()]
    }

    proptest! {
        /// An event written here is byte for byte what prost writes for
        /// the `RecordedEvent` the owned path builds, framed as an entry
        /// of a response's `events`; the sizes agree with prost's, and
        /// `continued` is where prost puts it.
        #[test]
        fn events_encode_as_prost_encodes_them(
            position in numbers(),
            event_type in names(),
            tags in prop::collection::vec(names(), 0..4),
            data in prop::collection::vec(any::<u8>(), 0..300),
            metadata in prop::collection::vec(any::<u8>(), 0..40),
            id in prop::option::of(any::<u128>()),
            stream in prop::option::of(names()),
            revision in prop::option::of(numbers()),
            timestamp_micros in numbers(),
            continued in any::<bool>(),
        ) {
            let recorded = gesta::RecordedEvent {
                position,
                event_type,
                tags,
                data: Bytes::from(data),
                metadata: Bytes::from(metadata),
                id,
                stream,
                revision,
                timestamp_micros,
            };
            let e = EventRef::from(&recorded);
            let want = recorded_to_proto(recorded.clone());
            let want_response = g::SubscribeResponse {
                events: vec![want.clone(), want.clone()],
                continued,
            };

            let len = recorded_len(&e);
            prop_assert_eq!(len, want.encoded_len());
            let mut out = BytesMut::new();
            put_recorded(&mut out, &e, len);
            prop_assert_eq!(out.len(), framed(len));
            put_recorded(&mut out, &e, len);
            if continued {
                put_continued(&mut out);
            }
            prop_assert_eq!(&out[..], &want_response.encode_to_vec()[..]);
            let out = EncodedResponse(out.freeze());
            prop_assert_eq!(out.decode::<g::SubscribeResponse>().unwrap(), want_response.clone());
            if !continued {
                // The same bytes are a read's response.
                prop_assert_eq!(
                    out.decode::<g::ReadResponse>().unwrap().events,
                    want_response.events
                );
            }
        }
    }
}
