//! The `gesta.v1.Gesta` RPCs over a [`Served`] store: each answers what
//! the engine's method of the same name answers, with the engine's
//! semantics (exclusive starts, revisions from 0, "not found" as an empty
//! answer), through crypto-shredding's wrapper when the store is
//! encrypted (`Forget` needs one). Blocking store calls run on tokio's
//! blocking pool.

use std::ops::ControlFlow;
use std::sync::Arc;

use bytes::BytesMut;
use futures::{Stream, StreamExt};
use gesta::EventRef;
use prost::Message;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::encoded::{Boxed, EncodedGather, EncodedResponse, decoded, framed};
use crate::observe::StreamPermit;
use crate::served::Served;
use crate::tenancy::Stores;

use super::backup::{BackupRoot, report_to_proto};
use super::convert::{
    GestaWording, RECORDED_EXTRA, audit_entry_to_proto, denied, exhausted, expected_from_proto,
    from_engine, list_limit, listed_to_proto, lost, new_event_from_proto, parse_id,
    query_from_proto, read_options, recorded_to_proto, target_from_proto, unacknowledged,
};
use super::durable::Registry;
use super::wire::{put_continued, put_recorded, recorded_len};
use crate::config::Limits;
use crate::proto::gesta_v1 as g;

/// What a read lends its events to, one by one, until it breaks.
type Lend<'f> = &'f mut dyn FnMut(EventRef<'_>) -> ControlFlow<()>;

/// Events per response, at most.
const BATCH: usize = 1024;
/// Responses buffered per call before the producer waits for the client.
const CHANNEL_DEPTH: usize = 2;

/// The service: a store handle, the call limits, the permits for open
/// streams (shared with `umadb.v1.DCB`), the shutdown signal that ends
/// open streams, and the durable subscriptions open here.
pub(crate) struct Gesta {
    stores: Stores<GestaWording>,
    limits: Limits,
    streams: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
    /// The durable subscriptions open here, per tenant (one scope "" for
    /// a single store).
    durable: std::sync::Mutex<std::collections::HashMap<Arc<str>, Registry>>,
    /// Where `Backup` may write; `None` refuses it.
    backup_root: Option<BackupRoot>,
}

impl Gesta {
    pub(crate) fn new(
        stores: Stores<GestaWording>,
        limits: Limits,
        streams: Arc<Semaphore>,
        stop: watch::Receiver<bool>,
        backup_root: Option<BackupRoot>,
    ) -> Gesta {
        Gesta {
            stores,
            limits,
            streams,
            stop,
            durable: Default::default(),
            backup_root,
        }
    }

    fn open_stream(&self, store: &Served) -> Result<StreamPermit, Status> {
        let permit = self
            .streams
            .clone()
            .try_acquire_owned()
            .map_err(|_| exhausted("too many open reads and subscriptions; retry later"))?;
        Ok(StreamPermit::new(permit, store.engine().clone()))
    }

    /// The durable subscriptions open here for the call's tenant.
    fn registry<T>(&self, request: &Request<T>) -> Result<Registry, Status> {
        let scope = self.stores.scope(request)?;
        let mut all = self
            .durable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(all.entry(scope).or_default().clone())
    }

    /// Runs `f` with `store` on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        store: &Served,
        f: impl FnOnce(&Served) -> gesta::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        let store = store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(lost)?
            .map_err(from_engine)
    }

    /// One page of a listing of `what`; the engine checks the request.
    async fn list(
        &self,
        store: &Served,
        what: gesta::Listing,
        prefix: String,
        after: Option<String>,
        limit: u64,
    ) -> Result<Vec<g::Listed>, Status> {
        let limit = list_limit(limit);
        let listed = self
            .blocking(store, move |s| {
                s.events().list(what, &prefix, after.as_deref(), limit)
            })
            .await?;
        Ok(listed.into_iter().map(listed_to_proto).collect())
    }

    /// Streams the events `read` lends (a read of `store`) in responses
    /// of at most [`BATCH`] events, each written straight into its
    /// response's bytes. A read that fails before its first event fails
    /// the call, as one that cannot start does; a later failure ends the
    /// stream after the events before it.
    async fn stream_read(
        &self,
        store: Served,
        read: impl FnOnce(&Served, Lend<'_>) -> gesta::Result<()> + Send + 'static,
        permit: StreamPermit,
    ) -> Result<Response<Boxed<EncodedResponse>>, Status> {
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let (began_tx, began) = oneshot::channel();
        let (limits, stop) = (self.limits, self.stop.clone());
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            run_read(&store, read, &limits, &stop, &tx, began_tx);
        });
        match began.await {
            Ok(Ok(())) => Ok(Response::new(Box::pin(ReceiverStream::new(rx)))),
            Ok(Err(status)) => Err(status),
            Err(_) => Err(Status::internal("the read stopped before it began")),
        }
    }

    /// Streams a subscription's batches, each as one response or, when it
    /// does not fit in one, several linked by `continued`, the events
    /// written straight into the responses' bytes.
    fn stream_subscription(
        &self,
        mut batches: impl Stream<Item = gesta::Result<Vec<gesta::RecordedEvent>>>
        + Send
        + Unpin
        + 'static,
        permit: StreamPermit,
    ) -> Response<Boxed<EncodedResponse>> {
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let (limits, mut stop) = (self.limits, self.stop.clone());
        tokio::spawn(async move {
            let _permit = permit;
            loop {
                let batch = tokio::select! {
                    batch = batches.next() => batch,
                    _ = tx.closed() => return,
                    _ = stop.wait_for(|stopping| *stopping) => return,
                };
                let batch = match batch {
                    Some(Ok(batch)) => batch,
                    // The store closed: the server is going away.
                    Some(Err(gesta::Error::Closed)) | None => return,
                    Some(Err(e)) => {
                        let _ = tx.send(Err(from_engine(e))).await;
                        return;
                    }
                };
                let mut gather = EncodedGather::new(BATCH, &limits);
                for e in &batch {
                    let e = EventRef::from(e);
                    let len = recorded_len(&e);
                    if len > limits.event_bytes + RECORDED_EXTRA {
                        let _ = tx.send(Err(too_large(e.position, len, &limits))).await;
                        return;
                    }
                    // A full part is sent at once (more of the batch
                    // follows it: `continued`), so that a client reading
                    // slowly holds at most the channel's few responses,
                    // not every part of a large append.
                    if gather.full_before(framed(len)) {
                        let mut part = gather.rest().0;
                        put_continued(&mut part);
                        if !send_part(&tx, &mut stop, part).await {
                            return;
                        }
                    }
                    gather.push(e.position, |out| put_recorded(out, &e, len));
                }
                if !send_part(&tx, &mut stop, gather.rest().0).await {
                    return;
                }
            }
        });
        Response::new(Box::pin(ReceiverStream::new(rx)))
    }

    /// `Read`, its responses encoded: what `encoded_route` serves it with.
    pub(crate) async fn read_encoded(
        &self,
        request: Request<g::ReadRequest>,
    ) -> Result<Response<Boxed<EncodedResponse>>, Status> {
        let store = self.stores.get(&request).await?;
        let r = request.into_inner();
        let query = query_from_proto(r.query);
        let options = read_options(r.start, r.direction, r.limit)?;
        let permit = self.open_stream(&store)?;
        let read = move |s: &Served, f: Lend<'_>| s.events().read_each(&query, options, f);
        self.stream_read(store, read, permit).await
    }

    /// `ReadStream`, its responses encoded.
    pub(crate) async fn read_stream_encoded(
        &self,
        request: Request<g::ReadStreamRequest>,
    ) -> Result<Response<Boxed<EncodedResponse>>, Status> {
        let store = self.stores.get(&request).await?;
        let r = request.into_inner();
        let options = read_options(r.start, r.direction, r.limit)?;
        let permit = self.open_stream(&store)?;
        let read =
            move |s: &Served, f: Lend<'_>| s.events().read_stream_each(&r.stream, options, f);
        self.stream_read(store, read, permit).await
    }

    /// `Subscribe`, its responses encoded.
    pub(crate) async fn subscribe_encoded(
        &self,
        request: Request<g::SubscribeRequest>,
    ) -> Result<Response<Boxed<EncodedResponse>>, Status> {
        let store = self.stores.get(&request).await?;
        let r = request.into_inner();
        let query = query_from_proto(r.query);
        let permit = self.open_stream(&store)?;
        let stream = store
            .events()
            .subscribe(&query, r.after)
            .map_err(from_engine)?
            .into_stream();
        Ok(self.stream_subscription(stream, permit))
    }

    /// `SubscribeDurable`, its responses encoded.
    pub(crate) async fn subscribe_durable_encoded(
        &self,
        request: Request<g::SubscribeDurableRequest>,
    ) -> Result<Response<Boxed<EncodedResponse>>, Status> {
        let store = self.stores.get(&request).await?;
        let registry = self.registry(&request)?;
        let over = self
            .stores
            .check_quota(&request, store.engine(), 0)
            .await
            .err();
        let r = request.into_inner();
        let query = query_from_proto(r.query);
        let permit = self.open_stream(&store)?;
        let opened = tokio::task::spawn_blocking(move || {
            registry.open(store.events(), &r.name, &query, over)
        })
        .await
        .map_err(lost)??;
        Ok(self.stream_subscription(opened, permit))
    }
}

/// Sends one response of a subscription; false once the client or the
/// server went away. A client that stops reading does not hold up
/// shutdown.
async fn send_part(
    tx: &mpsc::Sender<Result<EncodedResponse, Status>>,
    stop: &mut watch::Receiver<bool>,
    events: BytesMut,
) -> bool {
    tokio::select! {
        sent = tx.send(Ok(EncodedResponse(events.freeze()))) => sent.is_ok(),
        _ = stop.wait_for(|stopping| *stopping) => false,
    }
}

/// A read of `store` through `read`, its events gathered into encoded
/// responses sent on `tx`; `began` learns whether the read failed before
/// its first event (the call's answer) or began (or ended without one).
fn run_read(
    store: &Served,
    read: impl FnOnce(&Served, Lend<'_>) -> gesta::Result<()>,
    limits: &Limits,
    stop: &watch::Receiver<bool>,
    tx: &mpsc::Sender<Result<EncodedResponse, Status>>,
    began: oneshot::Sender<Result<(), Status>>,
) {
    let mut began = Some(began);
    let send = |events: BytesMut| {
        crate::encoded::send_blocking(tx, Ok(EncodedResponse(events.freeze())), stop)
    };
    let mut gather = EncodedGather::new(BATCH, limits);
    let mut sent = false;
    // Why the read stopped early, if it did: `None` when the client or
    // the server went away, else the error to end the stream with.
    let mut ended: Option<Option<Status>> = None;
    let result = read(store, &mut |e| {
        if let Some(began) = began.take() {
            let _ = began.send(Ok(()));
        }
        if *stop.borrow() {
            ended = Some(None);
            return ControlFlow::Break(());
        }
        let len = recorded_len(&e);
        if len > limits.event_bytes + RECORDED_EXTRA {
            ended = Some(Some(too_large(e.position, len, limits)));
            return ControlFlow::Break(());
        }
        if gather.full_before(framed(len)) {
            if !send(gather.rest().0) {
                ended = Some(None);
                return ControlFlow::Break(());
            }
            sent = true;
        }
        gather.push(e.position, |out| put_recorded(out, &e, len));
        ControlFlow::Continue(())
    });
    if let Some(began) = began.take() {
        // No event was lent: the read is empty, or failed before its first.
        let empty = result.is_ok();
        let _ = began.send(result.map_err(from_engine));
        if empty {
            send(gather.rest().0);
        }
        return;
    }
    let failed = match (result, ended) {
        (_, Some(None)) => return,
        (Err(e), _) => Some(from_engine(e)),
        (Ok(()), Some(Some(status))) => Some(status),
        (Ok(()), None) => None,
    };
    // What comes before a failure is delivered, then the failure.
    let rest = gather.rest().0;
    if (!rest.is_empty() || !sent) && !send(rest) {
        return;
    }
    if let Some(status) = failed {
        crate::encoded::send_blocking(tx, Err(status), stop);
    }
}

/// `e` as a unary answer sends it, refused as [`too_large`] would.
fn sized(e: gesta::RecordedEvent, limits: &Limits) -> Result<g::RecordedEvent, Status> {
    let position = e.position;
    let e = recorded_to_proto(e);
    let size = e.encoded_len();
    if size > limits.event_bytes + RECORDED_EXTRA {
        return Err(too_large(position, size, limits));
    }
    Ok(e)
}

/// Refuses an event a response cannot carry: larger, encoded, than the
/// event limit (appended through the Rust API or under a larger limit).
fn too_large(position: u64, size: usize, limits: &Limits) -> Status {
    exhausted(format!(
        "the event at position {position} is {size} bytes encoded, above this server's \
         limit of {} bytes per event (--max-event-bytes)",
        limits.event_bytes
    ))
}

#[tonic::async_trait]
impl g::gesta_server::Gesta for Gesta {
    type ReadStream = Boxed<g::ReadResponse>;
    type ReadStreamStream = Boxed<g::ReadStreamResponse>;
    type SubscribeStream = Boxed<g::SubscribeResponse>;
    type SubscribeDurableStream = Boxed<g::SubscribeDurableResponse>;

    async fn append(
        &self,
        mut request: Request<g::AppendRequest>,
    ) -> Result<Response<g::AppendResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let events = std::mem::take(&mut request.get_mut().events)
            .into_iter()
            .enumerate()
            .map(|(i, e)| new_event_from_proto(i, e, self.limits.event_bytes))
            .collect::<Result<Vec<_>, _>>()?;
        let (quota, events) = self
            .stores
            .check_append_quota(&request, store.engine(), events)
            .await?;
        quota?;
        let r = request.into_inner();
        let mut options = gesta::AppendOptions::new();
        for e in r.expected {
            options = options.expect(e.stream, expected_from_proto(e.revision)?);
        }
        if let Some(c) = r.condition {
            options = options.fail_if(query_from_proto(c.fail_if_events_match), c.after);
        }
        if let Some(t) = r.tracking {
            options = options.track(t.source, t.position);
        }
        // Handed to the committer here, the append commits or fails as a
        // whole even if the client goes away and this future is dropped.
        let appended = store.append(events, options).await.map_err(from_engine)?;
        store
            .acknowledge(appended.first, appended.last)
            .await
            .map_err(unacknowledged)?;
        Ok(Response::new(g::AppendResponse {
            first: appended.first,
            last: appended.last,
        }))
    }

    /// Served by `encoded_route` as [`Gesta::read_encoded`]; this is the
    /// same read with its responses decoded, for a caller of the generated
    /// service alone.
    async fn read(
        &self,
        request: Request<g::ReadRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        Ok(decoded(self.read_encoded(request).await?))
    }

    /// Served as [`Gesta::read_stream_encoded`]; this is it decoded.
    async fn read_stream(
        &self,
        request: Request<g::ReadStreamRequest>,
    ) -> Result<Response<Self::ReadStreamStream>, Status> {
        Ok(decoded(self.read_stream_encoded(request).await?))
    }

    async fn read_stream_last(
        &self,
        request: Request<g::ReadStreamLastRequest>,
    ) -> Result<Response<g::ReadStreamLastResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let stream = request.into_inner().stream;
        let event = self
            .blocking(&store, move |s| s.events().read_stream_last(&stream))
            .await?;
        let event = event.map(|e| sized(e, &self.limits)).transpose()?;
        Ok(Response::new(g::ReadStreamLastResponse { event }))
    }

    async fn stream_revision(
        &self,
        request: Request<g::StreamRevisionRequest>,
    ) -> Result<Response<g::StreamRevisionResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let stream = request.into_inner().stream;
        let revision = self
            .blocking(&store, move |s| s.events().stream_revision(&stream))
            .await?;
        Ok(Response::new(g::StreamRevisionResponse { revision }))
    }

    async fn event_by_id(
        &self,
        request: Request<g::EventByIdRequest>,
    ) -> Result<Response<g::EventByIdResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let id = parse_id(&request.into_inner().id)?;
        let event = self
            .blocking(&store, move |s| s.events().event_by_id(id))
            .await?;
        let event = event.map(|e| sized(e, &self.limits)).transpose()?;
        Ok(Response::new(g::EventByIdResponse { event }))
    }

    async fn position_at(
        &self,
        request: Request<g::PositionAtRequest>,
    ) -> Result<Response<g::PositionAtResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let at = request.into_inner().timestamp_micros;
        let position = self
            .blocking(&store, move |s| s.events().position_at(at))
            .await?;
        Ok(Response::new(g::PositionAtResponse { position }))
    }

    async fn head(
        &self,
        request: Request<g::HeadRequest>,
    ) -> Result<Response<g::HeadResponse>, Status> {
        let store = self.stores.get(&request).await?;
        Ok(Response::new(g::HeadResponse {
            position: store.engine().head(),
        }))
    }

    async fn get_tracking_info(
        &self,
        request: Request<g::TrackingInfoRequest>,
    ) -> Result<Response<g::TrackingInfoResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let source = request.into_inner().source;
        let position = self
            .blocking(&store, move |s| s.events().tracking_info(&source))
            .await?;
        Ok(Response::new(g::TrackingInfoResponse { position }))
    }

    async fn list_streams(
        &self,
        request: Request<g::ListStreamsRequest>,
    ) -> Result<Response<g::ListStreamsResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let r = request.into_inner();
        let streams = self
            .list(&store, gesta::Listing::Streams, r.prefix, r.after, r.limit)
            .await?;
        Ok(Response::new(g::ListStreamsResponse { streams }))
    }

    async fn list_event_types(
        &self,
        request: Request<g::ListEventTypesRequest>,
    ) -> Result<Response<g::ListEventTypesResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let r = request.into_inner();
        let event_types = self
            .list(&store, gesta::Listing::Types, r.prefix, r.after, r.limit)
            .await?;
        Ok(Response::new(g::ListEventTypesResponse { event_types }))
    }

    async fn list_tags(
        &self,
        request: Request<g::ListTagsRequest>,
    ) -> Result<Response<g::ListTagsResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let r = request.into_inner();
        let tags = self
            .list(&store, gesta::Listing::Tags, r.prefix, r.after, r.limit)
            .await?;
        Ok(Response::new(g::ListTagsResponse { tags }))
    }

    /// Served as [`Gesta::subscribe_encoded`]; this is it decoded.
    async fn subscribe(
        &self,
        request: Request<g::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Ok(decoded(self.subscribe_encoded(request).await?))
    }

    /// Served as [`Gesta::subscribe_durable_encoded`]; this is it decoded.
    async fn subscribe_durable(
        &self,
        request: Request<g::SubscribeDurableRequest>,
    ) -> Result<Response<Self::SubscribeDurableStream>, Status> {
        Ok(decoded(self.subscribe_durable_encoded(request).await?))
    }

    async fn ack(
        &self,
        request: Request<g::AckRequest>,
    ) -> Result<Response<g::AckResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let registry = self.registry(&request)?;
        // Over its quota, a tenant acknowledges on the cursors it has but
        // makes no new one.
        let over = self
            .stores
            .check_quota(&request, store.engine(), 0)
            .await
            .err();
        let r = request.into_inner();
        let acknowledged = tokio::task::spawn_blocking(move || {
            registry.ack(store.events(), &r.name, r.position, over)
        })
        .await
        .map_err(lost)??;
        Ok(Response::new(g::AckResponse { acknowledged }))
    }

    async fn list_durable(
        &self,
        request: Request<g::ListDurableRequest>,
    ) -> Result<Response<g::ListDurableResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let registry = self.registry(&request)?;
        let states = self
            .blocking(&store, |s| s.events().durable_subscriptions())
            .await?;
        let subscriptions = states
            .into_iter()
            .map(|s| g::DurableSubscription {
                open: registry.is_open(&s.name),
                name: s.name,
                acknowledged: s.acknowledged,
            })
            .collect();
        Ok(Response::new(g::ListDurableResponse { subscriptions }))
    }

    async fn delete_durable(
        &self,
        request: Request<g::DeleteDurableRequest>,
    ) -> Result<Response<g::DeleteDurableResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let registry = self.registry(&request)?;
        let name = request.into_inner().name;
        let deleted = tokio::task::spawn_blocking(move || registry.delete(store.events(), &name))
            .await
            .map_err(lost)??;
        Ok(Response::new(g::DeleteDurableResponse { deleted }))
    }

    async fn save_snapshot(
        &self,
        request: Request<g::SaveSnapshotRequest>,
    ) -> Result<Response<g::SaveSnapshotResponse>, Status> {
        let store = self.stores.get(&request).await?;
        // A snapshot takes the tenant's disk as an append does.
        self.stores.check_quota(&request, store.engine(), 0).await?;
        let r = request.into_inner();
        self.blocking(&store, move |s| {
            s.events().save_snapshot(&r.key, r.position, &r.state)
        })
        .await?;
        Ok(Response::new(g::SaveSnapshotResponse {}))
    }

    async fn load_snapshot(
        &self,
        request: Request<g::LoadSnapshotRequest>,
    ) -> Result<Response<g::LoadSnapshotResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let r = request.into_inner();
        let at = r.at_or_before.unwrap_or(u64::MAX);
        // A state larger than the message limit fails in the encoder.
        let snapshot = self
            .blocking(&store, move |s| s.events().load_snapshot(&r.key, at))
            .await?;
        Ok(Response::new(g::LoadSnapshotResponse {
            snapshot: snapshot.map(|s| g::Snapshot {
                position: s.position,
                state: s.state.into(),
            }),
        }))
    }

    async fn list_snapshots(
        &self,
        request: Request<g::ListSnapshotsRequest>,
    ) -> Result<Response<g::ListSnapshotsResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let key = request.into_inner().key;
        let positions = self
            .blocking(&store, move |s| s.events().list_snapshots(&key))
            .await?;
        Ok(Response::new(g::ListSnapshotsResponse { positions }))
    }

    async fn delete_snapshot(
        &self,
        request: Request<g::DeleteSnapshotRequest>,
    ) -> Result<Response<g::DeleteSnapshotResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let r = request.into_inner();
        let deleted = self
            .blocking(&store, move |s| {
                s.events().delete_snapshot(&r.key, r.position)
            })
            .await?;
        Ok(Response::new(g::DeleteSnapshotResponse { deleted }))
    }

    async fn add_tags(
        &self,
        request: Request<g::AddTagsRequest>,
    ) -> Result<Response<g::AddTagsResponse>, Status> {
        let store = self.stores.get(&request).await?;
        // Added tags take the tenant's disk (the journal, the index).
        self.stores.check_quota(&request, store.engine(), 0).await?;
        let r = request.into_inner();
        let target = target_from_proto(r.target)?;
        // On the blocking pool, the operation commits or fails as a whole
        // even if the client goes away.
        let added = self
            .blocking(&store, move |s| s.events().add_tags(&target, &r.tags))
            .await?;
        Ok(Response::new(g::AddTagsResponse {
            targeted: added.targeted,
            tagged: added.tagged,
        }))
    }

    async fn redact(
        &self,
        request: Request<g::RedactRequest>,
    ) -> Result<Response<g::RedactResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let target = target_from_proto(request.into_inner().target)?;
        // On the blocking pool, the operation commits or fails as a whole
        // even if the client goes away.
        let redacted = self
            .blocking(&store, move |s| s.events().redact(&target))
            .await?;
        Ok(Response::new(g::RedactResponse {
            targeted: redacted.targeted,
            redacted: redacted.redacted,
        }))
    }

    async fn remove(
        &self,
        request: Request<g::RemoveRequest>,
    ) -> Result<Response<g::RemoveResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let target = target_from_proto(request.into_inner().target)?;
        // On the blocking pool, as a redaction: it commits or fails as a
        // whole even if the client goes away.
        let removed = self
            .blocking(&store, move |s| s.events().remove(&target))
            .await?;
        Ok(Response::new(removed_to_proto(removed)))
    }

    async fn delete_stream(
        &self,
        request: Request<g::DeleteStreamRequest>,
    ) -> Result<Response<g::RemoveResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let stream = request.into_inner().stream;
        let removed = self
            .blocking(&store, move |s| s.events().delete_stream(&stream))
            .await?;
        Ok(Response::new(removed_to_proto(removed)))
    }

    async fn truncate_stream(
        &self,
        request: Request<g::TruncateStreamRequest>,
    ) -> Result<Response<g::RemoveResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let r = request.into_inner();
        let removed = self
            .blocking(&store, move |s| {
                s.events().truncate_stream(&r.stream, r.before)
            })
            .await?;
        Ok(Response::new(removed_to_proto(removed)))
    }

    async fn set_retention(
        &self,
        request: Request<g::SetRetentionRequest>,
    ) -> Result<Response<g::SetRetentionResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let rule = super::convert::rule_from_proto(request.into_inner().rule)?;
        self.blocking(&store, move |s| s.events().set_retention(&rule))
            .await?;
        Ok(Response::new(g::SetRetentionResponse {}))
    }

    async fn retention_rules(
        &self,
        request: Request<g::RetentionRulesRequest>,
    ) -> Result<Response<g::RetentionRulesResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let rules = self
            .blocking(&store, |s| s.events().retention_rules())
            .await?;
        Ok(Response::new(g::RetentionRulesResponse {
            rules: rules.iter().map(super::convert::rule_to_proto).collect(),
        }))
    }

    async fn enforce_retention(
        &self,
        request: Request<g::EnforceRetentionRequest>,
    ) -> Result<Response<g::RemoveResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let removed = self
            .blocking(&store, |s| s.events().enforce_retention())
            .await?;
        Ok(Response::new(removed_to_proto(removed)))
    }

    async fn backup(
        &self,
        request: Request<g::BackupRequest>,
    ) -> Result<Response<g::BackupResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let Some(root) = &self.backup_root else {
            return Err(denied(
                "backups through the server are off: start it with --backup-dir ROOT",
            ));
        };
        // With tenants, each writes under its own directory only.
        let root = match self.stores.tenant_of(&request)? {
            None => root.clone(),
            Some(tenant) => root.for_tenant(&tenant)?,
        };
        self.stores
            .check_backup_quota(&request, store.engine(), root.path())
            .await?;
        let dest = root.resolve(&request.into_inner().destination)?;
        tracing::info!("backup to {} requested", dest.display());
        // On the blocking pool: the backup finishes (or fails and leaves
        // only its `.partial` directory) even if the client goes away.
        let report = self
            .blocking(&store, move |s| s.engine().backup(&dest))
            .await?;
        tracing::info!(
            "backup to {} done at position {}",
            report.path.display(),
            report.position
        );
        if report.keys_left_out {
            tracing::warn!(
                "the store is encrypted: its key file KEYS was not copied into {} (a copied \
                 key would survive every later Forget); keep KEYS separately, and put a copy \
                 of it in the backup's directory to restore it",
                report.path.display()
            );
        }
        Ok(Response::new(report_to_proto(report)))
    }

    async fn replication(
        &self,
        request: Request<g::ReplicationRequest>,
    ) -> Result<Response<g::ReplicationResponse>, Status> {
        let store = self.stores.get(&request).await?;
        // The probe first: a replica's head only grows, so `behind` read
        // before the head never says the replica holds less than it does.
        let status = store.replication();
        Ok(Response::new(status.to_proto(store.engine().head())))
    }

    async fn audit_log(
        &self,
        request: Request<g::AuditLogRequest>,
    ) -> Result<Response<g::AuditLogResponse>, Status> {
        let store = self.stores.get(&request).await?;
        let r = request.into_inner();
        let limit = list_limit(r.limit);
        let entries = self
            .blocking(&store, move |s| s.events().audit_log(r.after, limit))
            .await?;
        // Entries whole, up to about the response size (a larger one goes
        // alone): an entry that targets many positions is large.
        let mut answered = Vec::new();
        let mut size = 0;
        let mut truncated = false;
        for entry in entries {
            let entry = audit_entry_to_proto(entry);
            let len = entry.encoded_len();
            let w = 1 + prost::encoding::encoded_len_varint(len as u64) + len;
            if !answered.is_empty() && size + w > self.limits.response_bytes {
                truncated = true;
                break;
            }
            size += w;
            answered.push(entry);
        }
        Ok(Response::new(g::AuditLogResponse {
            entries: answered,
            truncated,
        }))
    }

    async fn forget(
        &self,
        request: Request<g::ForgetRequest>,
    ) -> Result<Response<g::ForgetResponse>, Status> {
        let store = self.stores.get(&request).await?;
        if !store.is_encrypted() {
            return Err(super::convert::not_encrypted());
        }
        let subject = request.into_inner().subject;
        // On the blocking pool: the key is destroyed and the redaction
        // committed even if the client goes away.
        let redacted = self
            .blocking(&store, move |s| {
                s.forget(&subject).unwrap_or(Err(gesta::Error::Unsupported {
                    what: "forget on a store that is not encrypted",
                }))
            })
            .await?;
        Ok(Response::new(g::ForgetResponse {
            targeted: redacted.targeted,
            redacted: redacted.redacted,
        }))
    }
}

fn removed_to_proto(r: gesta::Removed) -> g::RemoveResponse {
    g::RemoveResponse {
        targeted: r.targeted,
        removed: r.removed,
    }
}
