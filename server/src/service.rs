//! The `umadb.v1.DCB` RPCs over a [`Served`] store: events are read and
//! appended through crypto-shredding's wrapper when the store is
//! encrypted, and the messages are UmaDB's either way.
//!
//! Positions mean the same on both sides (1, 2, 3, …). The protocol's
//! `Read.start` is inclusive where the engine's is exclusive; `Subscribe.after`
//! is exclusive on both.

use std::ops::ControlFlow;
use std::sync::Arc;

use bytes::BytesMut;

use futures::StreamExt;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

use crate::config::Limits;
use crate::convert::{
    BorrowedMetadata, UmaWording, decode_metadata, from_engine, invalid, status, to_new_event,
    to_query, unacknowledged,
};
use crate::encoded::{Boxed, EncodedGather, EncodedResponse, decoded};
use crate::proto::v1;
use crate::proto::v1::error_response::ErrorType;
use crate::served::Served;
use crate::tenancy::Stores;
use crate::wire::{self, Sequenced};
use crate::wording::Wording;

/// UmaDB's default and largest events per response (umadb-server 0.7.8:
/// `READ_RESPONSE_BATCH_SIZE_DEFAULT` and `_MAX`).
const BATCH_DEFAULT: u32 = 1024;
const BATCH_MAX: u32 = 4096;
/// Responses buffered per call before the producer waits for the client.
const CHANNEL_DEPTH: usize = 2;

/// The service: a store handle, the call limits and the shutdown signal
/// that ends open streams.
pub(crate) struct Dcb {
    stores: Stores<UmaWording>,
    limits: Limits,
    streams: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
}

impl Dcb {
    /// `streams` bounds open reads and subscriptions (shared with the
    /// `gesta.v1` service).
    pub(crate) fn new(
        stores: Stores<UmaWording>,
        limits: Limits,
        streams: Arc<Semaphore>,
        stop: watch::Receiver<bool>,
    ) -> Dcb {
        Dcb {
            stores,
            streams,
            limits,
            stop,
        }
    }

    fn open_stream(&self, store: &Served) -> Result<crate::observe::StreamPermit, Status> {
        let permit = self.streams.clone().try_acquire_owned().map_err(|_| {
            status(
                Code::ResourceExhausted,
                ErrorType::Io,
                "too many open reads and subscriptions; retry later".into(),
            )
        })?;
        Ok(crate::observe::StreamPermit::new(
            permit,
            store.engine().clone(),
        ))
    }
}

/// The tracking info of the batch an event comes from, looked up once per
/// batch: events of one batch follow each other in a read.
#[derive(Default)]
struct Batches {
    /// The last batch looked up: its positions and tracking info.
    last: Option<(std::ops::RangeInclusive<u64>, Option<Tracking>)>,
}

/// Tracking info: a source and its position.
type Tracking = (String, u64);

impl Batches {
    fn tracking(
        &mut self,
        store: &gesta::Store,
        position: u64,
    ) -> gesta::Result<Option<&(String, u64)>> {
        if !self
            .last
            .as_ref()
            .is_some_and(|(r, _)| r.contains(&position))
        {
            self.last = store.batch_at(position)?;
        }
        Ok(self.last.as_ref().and_then(|(_, t)| t.as_ref()))
    }
}

/// Refuses an event a response cannot carry: larger, as encoded, than the
/// server's limit per event, so that its client would refuse the message.
fn too_large(position: u64, size: usize, limits: &Limits) -> Status {
    status(
        Code::ResourceExhausted,
        ErrorType::Serialization,
        format!(
            "the event at position {position} is {size} bytes encoded, above this server's limit \
             of {} bytes per event (--max-event-bytes), so a response carrying it could exceed \
             what clients receive; it was appended through the Rust API or under a larger limit",
            limits.event_bytes
        ),
    )
}

/// A read as UmaDB answers it: everything up to the head captured at the
/// start, in responses of `batch` events, at least one response; `head` is
/// the captured head (none for an empty store) or, when the request has a
/// limit, the last position of the response (none when it is empty). The
/// events are lent by the store and encoded into the responses as they
/// come (see `wire`).
fn run_read(
    store: Served,
    request: v1::ReadRequest,
    limits: Limits,
    stop: watch::Receiver<bool>,
    tx: mpsc::Sender<Result<EncodedResponse, Status>>,
) {
    let query = to_query(request.query);
    let backwards = request.backwards.unwrap_or(false);
    let batch = request
        .batch_size
        .unwrap_or(BATCH_DEFAULT)
        .clamp(1, BATCH_MAX) as usize;
    let limited = request.limit.is_some();
    let head = store.engine().head();
    let mut options = if backwards {
        gesta::ReadOptions::backwards()
    } else {
        gesta::ReadOptions::forwards()
    };
    // The protocol's start is inclusive, the engine's exclusive.
    options.start = match (request.start, backwards) {
        (None, _) => None,
        (Some(0), false) => None,
        (Some(s), false) => Some(s - 1),
        (Some(s), true) => Some(s.saturating_add(1)),
    };
    if backwards {
        // Never past the captured head: events committed since would be
        // lent, skipped, and counted against the limit, so a read of the
        // last matching event could come back empty.
        options.start = Some(options.start.map_or(head + 1, |s| s.min(head + 1)));
    }
    options.limit = request.limit.map(|l| l as usize);
    let send = |(mut events, last): (BytesMut, Option<u64>)| {
        let head = if limited {
            last
        } else {
            (head > 0).then_some(head)
        };
        wire::put_head(&mut events, head);
        crate::encoded::send_blocking(&tx, Ok(EncodedResponse(events.freeze())), &stop)
    };
    let fail = |status: Status| {
        crate::encoded::send_blocking(&tx, Err(status), &stop);
    };
    let mut sent = false;
    let mut gather = EncodedGather::new(batch, &limits);
    let mut batches = Batches::default();
    // Why the read stopped early, if it did.
    let mut ended: Option<Option<Status>> = None;
    let read = store.events().read_each(&query, options, &mut |e| {
        if *stop.borrow() {
            ended = Some(None);
            return ControlFlow::Break(());
        }
        if e.position > head {
            // Committed after the read began: never past the captured head.
            return if backwards {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            };
        }
        let (metadata, maybe_tracked) = BorrowedMetadata::read(e.metadata);
        let tracking = match maybe_tracked {
            false => None,
            true => match batches.tracking(store.engine(), e.position) {
                Ok(t) => t.map(|(source, at)| (source.as_str(), *at)),
                Err(err) => {
                    ended = Some(Some(from_engine(err)));
                    return ControlFlow::Break(());
                }
            },
        };
        let event = Sequenced {
            position: e.position,
            event_type: e.event_type,
            tags: e.tags,
            data: e.data,
            uuid: metadata.uuid.or(e.id),
            metadata: &metadata,
            tracking,
        };
        let size = event.event_len();
        if size > limits.event_bytes {
            // What comes before it is delivered, then the error.
            let rest = gather.rest();
            if !rest.0.is_empty() && !send(rest) {
                ended = Some(None);
            } else {
                ended = Some(Some(too_large(e.position, size, &limits)));
            }
            return ControlFlow::Break(());
        }
        if gather.full_before(event.framed_len(size)) {
            if !send(gather.rest()) {
                ended = Some(None);
                return ControlFlow::Break(());
            }
            sent = true;
        }
        gather.push(event.position, |out| event.put(out, size));
        ControlFlow::Continue(())
    });
    match (read, ended) {
        (Err(e), _) => return fail(from_engine(e)),
        (Ok(()), Some(Some(status))) => return fail(status),
        (Ok(()), Some(None)) => return,
        (Ok(()), None) => {}
    }
    let rest = gather.rest();
    if !rest.0.is_empty() || !sent {
        send(rest);
    }
}

impl Dcb {
    /// A read, its responses encoded straight from the events the store
    /// lends (see `wire`): what `encoded_route` serves `Read` with.
    pub(crate) async fn read_encoded(
        &self,
        request: Request<v1::ReadRequest>,
    ) -> Result<Response<Boxed<EncodedResponse>>, Status> {
        let store = self.stores.get(&request).await?;
        let request = request.into_inner();
        #[allow(deprecated)]
        if request.subscribe.unwrap_or(false) {
            return Err(invalid(
                "Read's `subscribe` is deprecated; call Subscribe instead",
            ));
        }
        gesta::validation::check_query(&to_query(request.query.clone())).map_err(from_engine)?;
        let permit = self.open_stream(&store)?;
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let (limits, stop) = (self.limits, self.stop.clone());
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            run_read(store, request, limits, stop, tx);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    /// A subscription, its responses encoded from the events of the
    /// engine's feed (see `wire`): what `encoded_route` serves `Subscribe`
    /// with.
    pub(crate) async fn subscribe_encoded(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Boxed<EncodedResponse>>, Status> {
        let store = self.stores.get(&request).await?;
        let request = request.into_inner();
        let query = to_query(request.query);
        let after = request.after.unwrap_or(0);
        let batch = request
            .batch_size
            .unwrap_or(BATCH_DEFAULT)
            .clamp(1, BATCH_MAX) as usize;
        // The engine refuses to start after its head; the protocol waits
        // there for positions to come.
        let start = after.min(store.engine().head());
        let mut events = store
            .events()
            .subscribe(&query, start)
            .map_err(from_engine)?
            .into_stream();
        let permit = self.open_stream(&store)?;
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let (limits, mut stop) = (self.limits, self.stop.clone());
        tokio::spawn(async move {
            let _permit = permit;
            loop {
                let next = tokio::select! {
                    next = events.next() => next,
                    _ = tx.closed() => return,
                    _ = stop.wait_for(|stopping| *stopping) => return,
                };
                let recorded = match next {
                    Some(Ok(batch)) => batch,
                    // The store closed: the server is going away.
                    Some(Err(gesta::Error::Closed)) | None => return,
                    Some(Err(e)) => {
                        let _ = tx.send(Err(from_engine(e))).await;
                        return;
                    }
                };
                let mut gather = EncodedGather::new(batch, &limits);
                // One append's events: one batch, one lookup.
                let tracking = match recorded
                    .first()
                    .map(|e| store.engine().batch_at(e.position))
                {
                    Some(Ok(found)) => found.and_then(|(_, t)| t),
                    Some(Err(e)) => {
                        let _ = tx.send(Err(from_engine(e))).await;
                        return;
                    }
                    None => None,
                };
                for e in recorded.iter().filter(|e| e.position > after) {
                    let (metadata, _) = BorrowedMetadata::read(&e.metadata);
                    let event = Sequenced {
                        position: e.position,
                        event_type: &e.event_type,
                        tags: gesta::Tags::strings(&e.tags),
                        data: &e.data,
                        uuid: metadata.uuid.or(e.id),
                        metadata: &metadata,
                        tracking: tracking.as_ref().map(|(s, p)| (s.as_str(), *p)),
                    };
                    let size = event.event_len();
                    if size > limits.event_bytes {
                        let _ = tx.send(Err(too_large(e.position, size, &limits))).await;
                        return;
                    }
                    // Each response is sent once full, so that a client
                    // reading slowly holds at most the channel's few, not
                    // every response of a large append.
                    if gather.full_before(event.framed_len(size))
                        && !send_response(&tx, &mut stop, gather.rest().0).await
                    {
                        return;
                    }
                    gather.push(event.position, |out| event.put(out, size));
                }
                if !send_response(&tx, &mut stop, gather.rest().0).await {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Sends a subscription's response of `events` (none if empty; no head:
/// a `SubscribeResponse` has none); false once the client or the server
/// went away. A client that stops reading does not hold up shutdown.
async fn send_response(
    tx: &mpsc::Sender<Result<EncodedResponse, Status>>,
    stop: &mut watch::Receiver<bool>,
    events: BytesMut,
) -> bool {
    if events.is_empty() {
        return true;
    }
    tokio::select! {
        sent = tx.send(Ok(EncodedResponse(events.freeze()))) => sent.is_ok(),
        _ = stop.wait_for(|stopping| *stopping) => false,
    }
}

#[tonic::async_trait]
impl v1::dcb_server::Dcb for Dcb {
    type ReadStream = Boxed<v1::ReadResponse>;
    type SubscribeStream = Boxed<v1::SubscribeResponse>;

    /// Served by `encoded_route` as [`Dcb::read_encoded`]; this is the same
    /// read with its responses decoded, for a caller of the generated
    /// service alone.
    async fn read(
        &self,
        request: Request<v1::ReadRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        Ok(decoded(self.read_encoded(request).await?))
    }

    /// Served by `encoded_route` as [`Dcb::subscribe_encoded`]; this is the
    /// same subscription with its responses decoded.
    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Ok(decoded(self.subscribe_encoded(request).await?))
    }

    async fn append(
        &self,
        mut request: Request<v1::AppendRequest>,
    ) -> Result<Response<v1::AppendResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let tracked = request.get_ref().tracking_info.is_some();
        let events = std::mem::take(&mut request.get_mut().events)
            .into_iter()
            .enumerate()
            .map(|(i, e)| to_new_event(i, e, self.limits.event_bytes, tracked))
            .collect::<Result<Vec<_>, _>>()?;
        let (quota, events) = self
            .stores
            .check_append_quota(&request, store.engine(), events)
            .await?;
        let request = request.into_inner();
        let tracking = request.tracking_info.map(|t| (t.source, t.position));
        let mut options = gesta::AppendOptions::new();
        if let Some(c) = &request.condition {
            options = options.fail_if(to_query(c.fail_if_events_match.clone()), c.after);
        }
        if let Some((source, position)) = &tracking {
            if events.is_empty() {
                return Err(invalid(
                    "an append with tracking info needs at least one event",
                ));
            }
            options = options.track(source.clone(), *position);
        }
        if events.is_empty() {
            return append_nothing(&store, options).map(Response::new);
        }
        // What recognises a re-sent append, kept only when it can fail.
        let resent = request.condition.map(|_| Resent {
            condition: options.condition.clone(),
            events: events.clone(),
            tracking,
        });
        if let Err(refused) = quota {
            // A re-sent append of the batch that brought the tenant to its
            // quota adds nothing: it is answered as the first was, not
            // refused as if that batch were not in the store.
            return match resent {
                Some(resent) => match answer_resent(&store, resent).await? {
                    Some(answered) => Ok(answered),
                    None => Err(refused),
                },
                None => Err(refused),
            };
        }
        // Handed to the committer here, the append commits or fails as a
        // whole even if the client goes away and this future is dropped.
        let appended = store.append(events, options).await;
        match (appended, resent) {
            (Ok(appended), _) => {
                store
                    .acknowledge(appended.first, appended.last)
                    .await
                    .map_err(unacknowledged)?;
                Ok(Response::new(v1::AppendResponse {
                    position: appended.last,
                }))
            }
            (Err(e @ gesta::Error::ConditionFailed { .. }), Some(resent)) => {
                match answer_resent(&store, resent).await? {
                    Some(answered) => Ok(answered),
                    None => Err(from_engine(e)),
                }
            }
            (Err(e), _) => Err(from_engine(e)),
        }
    }

    async fn head(
        &self,
        request: Request<v1::HeadRequest>,
    ) -> Result<Response<v1::HeadResponse>, Status> {
        let head = self.stores.get(&request).await?.engine().head();
        Ok(Response::new(v1::HeadResponse {
            position: (head > 0).then_some(head),
        }))
    }

    async fn get_tracking_info(
        &self,
        request: Request<v1::TrackingRequest>,
    ) -> Result<Response<v1::TrackingResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let source = request.into_inner().source;
        let position = tokio::task::spawn_blocking(move || store.events().tracking_info(&source))
            .await
            .map_err(|e| UmaWording::internal(e.to_string()))?
            .map_err(from_engine)?;
        Ok(Response::new(v1::TrackingResponse { position }))
    }
}

/// A conditional append as sent, to recognise it when it is sent again
/// after its answer was lost (a client retries on a connection error).
struct Resent {
    condition: Option<gesta::AppendCondition>,
    events: Vec<gesta::NewEvent>,
    tracking: Option<(String, u64)>,
}

impl Resent {
    /// The last position of the committed batch this append repeats, if it
    /// repeats one: the batch holding the first event that fails its
    /// condition, when that batch is exactly these events — type, tags,
    /// data, metadata and UUID (nil and none included), at the place the
    /// first of them that matches the condition would have — and carries
    /// the same tracking info, and every event carries a UUID. That event
    /// matched no earlier event after `after`, or the first append would
    /// have failed too. UmaDB compares only the UUIDs (so two different
    /// events with the nil UUID pass as one); anything short of an equal
    /// batch is a conflict here.
    fn earlier(&self, store: &Served) -> gesta::Result<Option<u64>> {
        let Some(condition) = &self.condition else {
            return Ok(None);
        };
        // As in UmaDB, only events that carry a UUID say they are the same
        // events sent again; two clients may well send equal events.
        if self
            .events
            .iter()
            .any(|e| decode_metadata(&e.metadata).uuid.is_none())
        {
            return Ok(None);
        }
        let query = &condition.fail_if_events_match;
        let Some(offset) = self
            .events
            .iter()
            .position(|e| query.matches(&e.event_type, &e.tags))
        else {
            return Ok(None);
        };
        let mut first = gesta::ReadOptions::forwards().limit(1);
        first.start = condition.after;
        let Some(conflict) = store.events().read(query, first)?.next().transpose()? else {
            return Ok(None);
        };
        let Some(start) = conflict.position.checked_sub(offset as u64) else {
            return Ok(None);
        };
        let last = start + self.events.len() as u64 - 1;
        match store.engine().batch_at(start)? {
            Some((range, tracking)) if range == (start..=last) && tracking == self.tracking => {}
            _ => return Ok(None),
        }
        let all = gesta::ReadOptions::forwards()
            .start(start - 1)
            .limit(self.events.len());
        let mut committed = store.events().read(&gesta::Query::all(), all)?;
        for sent in &self.events {
            let Some(found) = committed.next().transpose()? else {
                return Ok(None);
            };
            let same = found.event_type == sent.event_type
                && found.tags == sent.tags
                && found.data == sent.data
                && found.metadata == sent.metadata
                && found.id == sent.id
                && found.stream == sent.stream;
            if !same {
                return Ok(None);
            }
        }
        Ok(Some(last))
    }
}

/// The answer to `resent` if it repeats a committed batch: the first
/// answer again, given once its position is acknowledged.
async fn answer_resent(
    store: &Served,
    resent: Resent,
) -> Result<Option<Response<v1::AppendResponse>>, Status> {
    let looked_up = store.clone();
    let earlier = tokio::task::spawn_blocking(move || resent.earlier(&looked_up))
        .await
        .map_err(|e| UmaWording::internal(e.to_string()))?
        .map_err(from_engine)?;
    let Some(position) = earlier else {
        return Ok(None);
    };
    store
        .acknowledge(position, position)
        .await
        .map_err(unacknowledged)?;
    Ok(Some(Response::new(v1::AppendResponse { position })))
}

/// An append of no events: checks the condition and answers the head.
fn append_nothing(
    store: &Served,
    options: gesta::AppendOptions,
) -> Result<v1::AppendResponse, Status> {
    let head = store.engine().head();
    gesta::validation::check_after(&options, head).map_err(from_engine)?;
    if let Some(c) = options.condition {
        gesta::validation::check_query(&c.fail_if_events_match).map_err(from_engine)?;
        let mut read = gesta::ReadOptions::forwards().limit(1);
        read.start = c.after;
        if let Some(found) = store
            .events()
            .read(&c.fail_if_events_match, read)
            .map_err(from_engine)?
            .next()
        {
            let found = found.map_err(from_engine)?;
            if found.position <= head {
                return Err(from_engine(gesta::Error::ConditionFailed {
                    position: found.position,
                }));
            }
        }
    }
    Ok(v1::AppendResponse { position: head })
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    /// The generated trait's answers are the encoded responses decoded:
    /// a read's with its head, a subscription's (the same bytes without
    /// one) as a `SubscribeResponse`, and an error as it came.
    #[tokio::test]
    async fn encoded_responses_decode_into_the_generated_messages() {
        let event = v1::SequencedEvent {
            position: 7,
            event: Some(v1::Event {
                event_type: "T".into(),
                tags: vec!["a:1".into(), String::new()],
                data: bytes::Bytes::from_static(b"d"),
                uuid: String::new(),
                metadata: vec![],
            }),
            tracking_info: None,
        };
        let read = v1::ReadResponse {
            events: vec![event.clone()],
            head: Some(9),
        };
        let subscribed = v1::SubscribeResponse {
            events: vec![event],
        };
        let stream =
            |items: Vec<Result<EncodedResponse, Status>>| -> Response<Boxed<EncodedResponse>> {
                Response::new(Box::pin(futures::stream::iter(items)))
            };
        let got: Vec<_> = decoded::<v1::ReadResponse>(stream(vec![
            Ok(EncodedResponse(read.encode_to_vec().into())),
            Err(Status::aborted("gone")),
        ]))
        .into_inner()
        .collect()
        .await;
        assert_eq!(got[0].as_ref().unwrap(), &read);
        assert_eq!(got[1].as_ref().unwrap_err().code(), Code::Aborted);
        // A read's events without its head, as a subscription writes them.
        let headless = v1::ReadResponse { head: None, ..read };
        let got: Vec<_> = decoded::<v1::SubscribeResponse>(stream(vec![Ok(EncodedResponse(
            headless.encode_to_vec().into(),
        ))]))
        .into_inner()
        .collect()
        .await;
        assert_eq!(got[0].as_ref().unwrap(), &subscribed);
    }
}
