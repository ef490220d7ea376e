//! Responses encoded straight from the events, for the reads and
//! subscriptions of both services.
//!
//! A read answers with events by the hundred per response. Built as prost
//! messages, each event would be an owned event moved into the protocol's
//! message (its type, every tag and its id a string of its own), encoded,
//! then freed on another thread: some ten allocations an event, most of a
//! read's cost. Instead each service writes its events' messages into the
//! response's bytes as they come (`umadb.v1`'s in `wire`, `gesta.v1`'s in
//! `gesta_v1::wire`), with the field writers here, exactly as prost writes
//! the same message (fields in order, defaults left out), which their
//! tests check.
//!
//! [`EncodedGather`] cuts a read's events into responses within a
//! [`Budget`]; each travels as an [`EncodedResponse`] through
//! [`EncodedCodec`], whose encoder copies it as it is (the routes that
//! serve methods with it are `encoded_route`'s). A caller of a generated
//! service alone gets the same responses [`decoded`].

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use prost::encoding::{encode_varint, encoded_len_varint};
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic::{Response, Status};

use crate::config::Limits;

/// The responses a server-streaming method answers with.
pub(crate) type Boxed<T> =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send + 'static>>;

/// A field's key: its number and wire type ([`VARINT`] or [`LEN`]).
pub(crate) const fn key(field: u8, wire: u8) -> u8 {
    field << 3 | wire
}

/// The wire type of a varint field.
pub(crate) const VARINT: u8 = 0;
/// The wire type of a length-delimited field.
pub(crate) const LEN: u8 = 2;

/// A UUID's hyphenated text: 36 bytes.
pub(crate) const UUID_TEXT_LEN: usize = 36;

/// The bytes of a length-delimited field holding `len` bytes.
pub(crate) fn framed(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// A string or bytes field as prost encodes it: left out when empty.
pub(crate) fn bytes_field(b: &[u8]) -> usize {
    if b.is_empty() { 0 } else { framed(b.len()) }
}

/// A `uint64` field: left out when zero.
pub(crate) fn u64_field(v: u64) -> usize {
    if v == 0 { 0 } else { 1 + encoded_len_varint(v) }
}

/// Writes a length-delimited field, even when empty (a repeated field's
/// value, or an `optional` field that is set).
pub(crate) fn put_framed(out: &mut BytesMut, field: u8, b: &[u8]) {
    out.put_u8(key(field, LEN));
    encode_varint(b.len() as u64, out);
    out.put_slice(b);
}

/// Writes a string or bytes field, left out when empty.
pub(crate) fn put_bytes(out: &mut BytesMut, field: u8, b: &[u8]) {
    if !b.is_empty() {
        put_framed(out, field, b);
    }
}

/// Writes a varint field, even when zero (an `optional` field that is
/// set).
pub(crate) fn put_varint(out: &mut BytesMut, field: u8, v: u64) {
    out.put_u8(key(field, VARINT));
    encode_varint(v, out);
}

/// Writes a `uint64` field, left out when zero.
pub(crate) fn put_u64(out: &mut BytesMut, field: u8, v: u64) {
    if v != 0 {
        put_varint(out, field, v);
    }
}

/// Writes `id` as a hyphenated lowercase UUID in a string field, without
/// making a `String` of it.
pub(crate) fn put_uuid(out: &mut BytesMut, field: u8, id: u128) {
    let mut text = [0u8; UUID_TEXT_LEN];
    let text = uuid::Uuid::from_u128(id)
        .hyphenated()
        .encode_lower(&mut text);
    put_framed(out, field, text.as_bytes());
}

/// One response message, encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EncodedResponse(pub Bytes);

impl EncodedResponse {
    /// The response as prost decodes it into `M`.
    pub(crate) fn decode<M: prost::Message + Default>(&self) -> Result<M, Status> {
        M::decode(self.0.clone()).map_err(|e| Status::internal(format!("an encoded response: {e}")))
    }
}

/// Encoded responses as prost decodes them: what the generated traits'
/// streaming reads answer, for a caller of a generated service alone.
pub(crate) fn decoded<M: prost::Message + Default + 'static>(
    encoded: Response<Boxed<EncodedResponse>>,
) -> Response<Boxed<M>> {
    encoded.map(|responses| -> Boxed<M> { Box::pin(responses.map(|r| r.and_then(|e| e.decode()))) })
}

/// The codec of the methods answered encoded: requests (`Req`) decoded by
/// prost, responses sent as they are.
#[derive(Debug)]
pub(crate) struct EncodedCodec<Req>(std::marker::PhantomData<Req>);

impl<Req> Default for EncodedCodec<Req> {
    fn default() -> Self {
        EncodedCodec(std::marker::PhantomData)
    }
}

/// Writes an [`EncodedResponse`] as it is.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = EncodedResponse;
    type Error = Status;

    fn encode(&mut self, item: EncodedResponse, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item.0);
        Ok(())
    }
}

impl<Req: prost::Message + Default + Send + 'static> Codec for EncodedCodec<Req> {
    type Encode = EncodedResponse;
    type Decode = Req;
    type Encoder = RawEncoder;
    type Decoder = tonic_prost::ProstDecoder<Req>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

/// The first response of a read or catch-up holds about this many bytes;
/// each next one twice as many, up to the response limit. A reader then
/// gets its first events early and decodes them while the server reads
/// and encodes the next, while long reads still travel in large responses.
const FIRST_RESPONSE_BYTES: usize = 16 << 10;

/// What a response of a read or catch-up may hold: at most `batch`
/// events, and encoded bytes of a growing size up to `limits.response_bytes`
/// (a single larger event goes alone).
struct Budget {
    batch: usize,
    /// The size the current response may reach.
    bytes: usize,
    max_bytes: usize,
}

impl Budget {
    fn new(batch: usize, limits: &Limits) -> Budget {
        Budget {
            batch,
            bytes: FIRST_RESPONSE_BYTES.min(limits.response_bytes),
            max_bytes: limits.response_bytes,
        }
    }

    /// Whether a response of `events` events and `size` bytes is full
    /// before an event that adds `w` bytes (never while it is empty).
    fn full(&self, events: usize, size: usize, w: usize) -> bool {
        events > 0 && (events >= self.batch || size + w > self.bytes)
    }

    /// Lets the next response be twice as large.
    fn grow(&mut self) {
        self.bytes = (self.bytes * 2).min(self.max_bytes);
    }
}

/// Gathers encoded events into responses within a [`Budget`].
pub(crate) struct EncodedGather {
    budget: Budget,
    current: BytesMut,
    events: usize,
    /// The position of the current response's last event.
    last: Option<u64>,
}

impl EncodedGather {
    /// Responses of at most `batch` events each.
    pub(crate) fn new(batch: usize, limits: &Limits) -> EncodedGather {
        EncodedGather {
            budget: Budget::new(batch, limits),
            current: BytesMut::new(),
            events: 0,
            last: None,
        }
    }

    /// Whether an event adding `w` bytes goes into the next response.
    pub(crate) fn full_before(&self, w: usize) -> bool {
        self.budget.full(self.events, self.current.len(), w)
    }

    /// Adds the event at `position`, which `put` writes.
    pub(crate) fn push(&mut self, position: u64, put: impl FnOnce(&mut BytesMut)) {
        if self.current.capacity() == 0 {
            self.current.reserve(self.budget.bytes);
        }
        put(&mut self.current);
        self.events += 1;
        self.last = Some(position);
    }

    /// The events gathered so far, and the last one's position.
    pub(crate) fn rest(&mut self) -> (BytesMut, Option<u64>) {
        self.budget.grow();
        self.events = 0;
        (std::mem::take(&mut self.current), self.last.take())
    }
}

/// Sends a read's response (or its error) from the blocking thread that
/// produces it; false once the client went away or the server stops. A
/// client that stops receiving holds the thread here, but not past the
/// server's shutdown.
pub(crate) fn send_blocking(
    tx: &tokio::sync::mpsc::Sender<Result<EncodedResponse, Status>>,
    item: Result<EncodedResponse, Status>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> bool {
    let mut stop = stop.clone();
    tokio::runtime::Handle::current().block_on(async {
        tokio::select! {
            // A response the channel has room for goes first.
            biased;
            sent = tx.send(item) => sent.is_ok(),
            _ = stop.wait_for(|stopping| *stopping) => false,
        }
    })
}
