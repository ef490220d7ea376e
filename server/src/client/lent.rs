//! Reads whose events the client lends instead of building them: each
//! response of `Read` or `ReadStream` arrives as its bytes ([`RawCodec`]
//! decodes nothing), and each `RecordedEvent` in it is parsed in place
//! into a [`gesta::EventRef`] that borrows them, as the server wrote them
//! (`gesta_v1::wire`): no message, and no string per event.
//!
//! The bytes come from the network, so nothing in them is trusted: a
//! field of the wrong wire type, a length past the end, a name that is not
//! UTF-8 or an id that is not a UUID is an error, never a panic. Fields
//! this client does not know are skipped, as prost skips them.

use std::marker::PhantomData;
use std::ops::ControlFlow;

use bytes::{Buf, Bytes};
use gesta::{EventRef, Tags};
use prost::encoding::decode_varint;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder};

/// The codec of a lent read: requests (`Req`) encoded by prost, responses
/// handed over as their bytes.
pub(crate) struct RawCodec<Req>(PhantomData<Req>);

impl<Req> Default for RawCodec<Req> {
    fn default() -> Self {
        RawCodec(PhantomData)
    }
}

/// A response's bytes, as they are.
pub(crate) struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

impl<Req: prost::Message + Send + 'static> Codec for RawCodec<Req> {
    type Encode = Req;
    type Decode = Bytes;
    type Encoder = tonic_prost::ProstEncoder<Req>;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::default()
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

fn malformed(what: &str) -> Status {
    Status::internal(format!("a malformed response: {what}"))
}

/// One field of a message: its number and its value.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// A fixed-width value, which no field read here has.
    Fixed,
}

/// The fields of a message, in the order they were written.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64, Status> {
        decode_varint(&mut self.0).map_err(|_| malformed("a bad varint"))
    }

    fn skip(&mut self, n: usize) -> Result<&'a [u8], Status> {
        if n > self.0.len() {
            return Err(malformed("a field past the end"));
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn next_field(&mut self) -> Result<Option<(u64, Value<'a>)>, Status> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.skip(8)?;
                Value::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| malformed("a length"))?;
                Value::Bytes(self.skip(len)?)
            }
            5 => {
                self.skip(4)?;
                Value::Fixed
            }
            _ => return Err(malformed("an unknown wire type")),
        };
        Ok(Some((key >> 3, value)))
    }
}

fn text(b: &[u8]) -> Result<&str, Status> {
    std::str::from_utf8(b).map_err(|_| malformed("a name is not UTF-8"))
}

/// Lends each event of one response (its field 1, `events`) to `f`, until
/// `f` breaks; `shared` is the response's bytes, which an owned copy of an
/// event shares instead of copying its data and metadata.
pub(crate) fn lend_events(
    shared: &Bytes,
    f: &mut dyn FnMut(EventRef<'_>) -> ControlFlow<()>,
) -> Result<ControlFlow<()>, Status> {
    let mut tags: Vec<&str> = Vec::new();
    let mut fields = Fields(shared);
    while let Some((field, value)) = fields.next_field()? {
        match (field, value) {
            (1, Value::Bytes(event)) => {
                tags.clear();
                let e = event_ref(event, &mut tags, shared)?;
                let e = EventRef {
                    tags: Tags::strs(&tags),
                    ..e
                };
                if f(e).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
            (1, _) => return Err(malformed("an event that is not a message")),
            _ => {}
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// The `RecordedEvent` in `b`, its tags pushed onto `tags` (the view's own
/// are left empty for the caller to point at them).
fn event_ref<'a>(
    b: &'a [u8],
    tags: &mut Vec<&'a str>,
    shared: &'a Bytes,
) -> Result<EventRef<'a>, Status> {
    let mut e = EventRef {
        position: 0,
        event_type: "",
        tags: Tags::strs(&[]),
        data: &[],
        metadata: &[],
        id: None,
        stream: None,
        revision: None,
        timestamp_micros: 0,
        shared: Some(shared),
    };
    let mut fields = Fields(b);
    while let Some((field, value)) = fields.next_field()? {
        match (field, value) {
            (1, Value::Varint(v)) => e.position = v,
            (2, Value::Bytes(b)) => e.event_type = text(b)?,
            (3, Value::Bytes(b)) => tags.push(text(b)?),
            (4, Value::Bytes(b)) => e.data = b,
            (5, Value::Bytes(b)) => e.metadata = b,
            (6, Value::Bytes(b)) => {
                let id = uuid::Uuid::try_parse_ascii(b)
                    .map_err(|_| malformed("an id that is not a UUID"))?;
                e.id = Some(id.as_u128());
            }
            (7, Value::Bytes(b)) => e.stream = Some(text(b)?),
            (8, Value::Varint(v)) => e.revision = Some(v),
            (9, Value::Varint(v)) => e.timestamp_micros = v,
            (1..=9, _) => return Err(malformed("a field of the wrong wire type")),
            _ => {}
        }
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::gesta_v1::convert::recorded_to_proto;
    use crate::proto::gesta_v1 as g;

    fn names() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), "[a-z:é]{1,12}", "[a-z]{120,140}"]
    }

    fn numbers() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0u64), 1u64..200, any::<u64>()]
    }

    fn events() -> impl Strategy<Value = gesta::RecordedEvent> {
        (
            numbers(),
            names(),
            prop::collection::vec(names(), 0..4),
            prop::collection::vec(any::<u8>(), 0..300),
            prop::collection::vec(any::<u8>(), 0..40),
            prop::option::of(any::<u128>()),
            prop::option::of(names()),
            prop::option::of(numbers()),
            numbers(),
        )
            .prop_map(
                |(position, event_type, tags, data, metadata, id, stream, revision, at)| {
                    gesta::RecordedEvent {
                        position,
                        event_type,
                        tags,
                        data: Bytes::from(data),
                        metadata: Bytes::from(metadata),
                        id,
                        stream,
                        revision,
                        timestamp_micros: at,
                    }
                },
            )
    }

    fn lent(bytes: &Bytes) -> Result<Vec<gesta::RecordedEvent>, Status> {
        let mut got = Vec::new();
        let flow = lend_events(bytes, &mut |e| {
            got.push(e.to_owned());
            ControlFlow::Continue(())
        })?;
        assert!(flow.is_continue());
        Ok(got)
    }

    proptest! {
        /// The events of a response prost encodes are lent as they were,
        /// a `continued` after them is skipped, and a break stops at once.
        #[test]
        fn responses_lend_their_events(
            events in prop::collection::vec(events(), 0..5),
            continued in any::<bool>(),
        ) {
            let response = g::SubscribeResponse {
                events: events.iter().cloned().map(recorded_to_proto).collect(),
                continued,
            };
            let bytes = Bytes::from(response.encode_to_vec());
            prop_assert_eq!(lent(&bytes).unwrap(), events.clone());
            let mut seen = 0;
            let flow = lend_events(&bytes, &mut |_| {
                seen += 1;
                ControlFlow::Break(())
            })
            .unwrap();
            prop_assert_eq!(seen, events.len().min(1));
            prop_assert_eq!(flow.is_break(), !events.is_empty());
        }

        /// Bytes that are no response, or a response cut short or damaged,
        /// are an error or some events, never a panic; whatever is lent is
        /// what prost decodes from the same bytes, when it decodes them.
        #[test]
        fn damaged_responses_never_panic(
            events in prop::collection::vec(events(), 1..3),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let response = g::ReadResponse {
                events: events.into_iter().map(recorded_to_proto).collect(),
            };
            let mut bytes = response.encode_to_vec();
            let at = flip.index(bytes.len());
            bytes[at] ^= 1 << bit;
            bytes.truncate(cut.index(bytes.len() + 1));
            let bytes = Bytes::from(bytes);
            if let (Ok(got), Ok(decoded)) = (lent(&bytes), g::ReadResponse::decode(bytes.clone())) {
                let want: Result<Vec<_>, _> = decoded
                    .events
                    .into_iter()
                    .map(crate::gesta_v1::convert::recorded_from_proto)
                    .collect();
                if let Ok(want) = want {
                    prop_assert_eq!(got, want);
                }
            }
        }
    }
}
