//! The `umadb.v1.DCB` RPCs over a [`gesta::Store`].
//!
//! Positions mean the same on both sides (1, 2, 3, …). The protocol's
//! `Read.start` is inclusive where the engine's is exclusive; `Subscribe.after`
//! is exclusive on both.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::config::Limits;
use crate::convert::{self, from_engine, invalid, to_new_event, to_query, to_sequenced, weight};
use crate::proto::v1;

/// UmaDB's default and largest events per response.
const BATCH_DEFAULT: u32 = 100;
const BATCH_MAX: u32 = 5000;
/// Responses buffered per call before the producer waits for the client.
const CHANNEL_DEPTH: usize = 2;

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The service: a store handle, the call limits and the shutdown signal
/// that ends open streams.
pub(crate) struct Dcb {
    store: gesta::Store,
    limits: Limits,
    streams: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
}

impl Dcb {
    pub(crate) fn new(store: gesta::Store, limits: Limits, stop: watch::Receiver<bool>) -> Dcb {
        Dcb {
            store,
            streams: Arc::new(Semaphore::new(limits.open_streams)),
            limits,
            stop,
        }
    }

    fn open_stream(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        self.streams.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted("too many open reads and subscriptions; retry later")
        })
    }
}

/// Cuts `events` into responses of at most `batch` events and about
/// `bytes` bytes (at least one event each).
fn chunks(
    events: Vec<v1::SequencedEvent>,
    batch: usize,
    bytes: usize,
) -> Vec<Vec<v1::SequencedEvent>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut size = 0;
    for e in events {
        let w = weight(&e);
        if !current.is_empty() && (current.len() >= batch || size + w > bytes) {
            out.push(std::mem::take(&mut current));
            size = 0;
        }
        size += w;
        current.push(e);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A read as UmaDB answers it: everything up to the head captured at the
/// start, in responses of `batch` events, at least one response; `head` is
/// the captured head (none for an empty store) or, when the request has a
/// limit, the last position of the response (none when it is empty).
fn run_read(
    store: gesta::Store,
    request: v1::ReadRequest,
    limits: Limits,
    stop: watch::Receiver<bool>,
    tx: mpsc::Sender<Result<v1::ReadResponse, Status>>,
) {
    let query = to_query(request.query);
    let backwards = request.backwards.unwrap_or(false);
    let batch = request
        .batch_size
        .unwrap_or(BATCH_DEFAULT)
        .clamp(1, BATCH_MAX) as usize;
    let limited = request.limit.is_some();
    let head = store.head();
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
    options.limit = request.limit.map(|l| l as usize);
    let head_field = |events: &[v1::SequencedEvent]| {
        if limited {
            events.last().map(|e| e.position)
        } else {
            (head > 0).then_some(head)
        }
    };
    let mut sent = false;
    let mut current = Vec::new();
    let mut size = 0;
    let send = |events: Vec<v1::SequencedEvent>| {
        let response = v1::ReadResponse {
            head: head_field(&events),
            events,
        };
        tx.blocking_send(Ok(response)).is_ok()
    };
    for event in store.read(&query, options) {
        if *stop.borrow() {
            return;
        }
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                let _ = tx.blocking_send(Err(from_engine(e)));
                return;
            }
        };
        if event.position > head {
            // Committed after the read began: never past the captured head.
            if backwards {
                continue;
            }
            break;
        }
        let e = to_sequenced(event);
        size += weight(&e);
        current.push(e);
        if current.len() >= batch || size >= limits.response_bytes {
            if !send(std::mem::take(&mut current)) {
                return;
            }
            sent = true;
            size = 0;
        }
    }
    if !current.is_empty() || !sent {
        send(current);
    }
}

#[tonic::async_trait]
impl v1::dcb_server::Dcb for Dcb {
    type ReadStream = Boxed<v1::ReadResponse>;
    type SubscribeStream = Boxed<v1::SubscribeResponse>;

    async fn read(
        &self,
        request: Request<v1::ReadRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        let request = request.into_inner();
        #[allow(deprecated)]
        if request.subscribe.unwrap_or(false) {
            return Err(invalid(
                "Read's `subscribe` is deprecated; call Subscribe instead",
            ));
        }
        gesta::validation::check_query(&to_query(request.query.clone())).map_err(from_engine)?;
        let permit = self.open_stream()?;
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let store = self.store.clone();
        let (limits, stop) = (self.limits, self.stop.clone());
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            run_read(store, request, limits, stop, tx);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let request = request.into_inner();
        let query = to_query(request.query);
        let after = request.after.unwrap_or(0);
        let batch = request
            .batch_size
            .unwrap_or(BATCH_DEFAULT)
            .clamp(1, BATCH_MAX) as usize;
        // The engine refuses to start after its head; the protocol waits
        // there for positions to come.
        let start = after.min(self.store.head());
        let mut events = self
            .store
            .subscribe(&query, start)
            .map_err(from_engine)?
            .into_stream();
        let permit = self.open_stream()?;
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
                let sequenced: Vec<_> = recorded
                    .into_iter()
                    .filter(|e| e.position > after)
                    .map(to_sequenced)
                    .collect();
                for events in chunks(sequenced, batch, limits.response_bytes) {
                    // A client that stops reading must not hold up shutdown.
                    tokio::select! {
                        sent = tx.send(Ok(v1::SubscribeResponse { events })) => {
                            if sent.is_err() {
                                return;
                            }
                        }
                        _ = stop.wait_for(|stopping| *stopping) => return,
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn append(
        &self,
        request: Request<v1::AppendRequest>,
    ) -> Result<Response<v1::AppendResponse>, Status> {
        let request = request.into_inner();
        let (events, uuids): (Vec<_>, Vec<_>) = request
            .events
            .into_iter()
            .enumerate()
            .map(|(i, e)| to_new_event(i, e))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .unzip();
        let condition = request
            .condition
            .map(|c| (to_query(c.fail_if_events_match), c.after));
        let mut options = gesta::AppendOptions::new();
        if let Some((query, after)) = &condition {
            options = options.fail_if(query.clone(), *after);
        }
        if let Some(t) = request.tracking_info {
            if events.is_empty() {
                return Err(invalid(
                    "an append with tracking info needs at least one event",
                ));
            }
            options = options.track(t.source, t.position);
        }
        if events.is_empty() {
            return self.append_nothing(options).map(Response::new);
        }
        // The append goes on even if the client goes away: once handed to
        // the committer, it commits or fails as a whole.
        let appended = self.store.append_async(events, options);
        let appended = tokio::spawn(appended)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        match (appended, condition) {
            (Ok(appended), _) => Ok(Response::new(v1::AppendResponse {
                position: appended.last,
            })),
            (Err(e @ gesta::Error::ConditionFailed { .. }), Some((query, after))) => {
                let store = self.store.clone();
                let earlier =
                    tokio::task::spawn_blocking(move || retried(&store, &query, after, &uuids))
                        .await
                        .map_err(|e| Status::internal(e.to_string()))?
                        .map_err(from_engine)?;
                match earlier {
                    Some(position) => Ok(Response::new(v1::AppendResponse { position })),
                    None => Err(from_engine(e)),
                }
            }
            (Err(e), _) => Err(from_engine(e)),
        }
    }

    async fn head(
        &self,
        _request: Request<v1::HeadRequest>,
    ) -> Result<Response<v1::HeadResponse>, Status> {
        let head = self.store.head();
        Ok(Response::new(v1::HeadResponse {
            position: (head > 0).then_some(head),
        }))
    }

    async fn get_tracking_info(
        &self,
        request: Request<v1::TrackingRequest>,
    ) -> Result<Response<v1::TrackingResponse>, Status> {
        let source = request.into_inner().source;
        let store = self.store.clone();
        let position = tokio::task::spawn_blocking(move || store.tracking_info(&source))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(from_engine)?;
        Ok(Response::new(v1::TrackingResponse { position }))
    }
}

/// UmaDB's idempotent retry: when a conditional append fails and every
/// event carries a UUID, it is the same append as before if the first
/// events matching the condition after `after` carry exactly those UUIDs,
/// in order; the answer is then the last of their positions.
fn retried(
    store: &gesta::Store,
    query: &gesta::Query,
    after: Option<u64>,
    uuids: &[Option<u128>],
) -> gesta::Result<Option<u64>> {
    if uuids.iter().any(Option::is_none) {
        return Ok(None);
    }
    let mut options = gesta::ReadOptions::forwards().limit(uuids.len());
    options.start = after;
    let mut last = None;
    let mut found = 0;
    for (event, uuid) in store.read(query, options).zip(uuids) {
        let event = event?;
        if convert::uuid_of(&event) != *uuid {
            return Ok(None);
        }
        last = Some(event.position);
        found += 1;
    }
    Ok(last.filter(|_| found == uuids.len()))
}

impl Dcb {
    /// An append of no events: checks the condition and answers the head.
    fn append_nothing(&self, options: gesta::AppendOptions) -> Result<v1::AppendResponse, Status> {
        let head = self.store.head();
        gesta::validation::check_after(&options, head).map_err(from_engine)?;
        if let Some(c) = options.condition {
            gesta::validation::check_query(&c.fail_if_events_match).map_err(from_engine)?;
            let mut read = gesta::ReadOptions::forwards().limit(1);
            read.start = c.after;
            if let Some(found) = self.store.read(&c.fail_if_events_match, read).next() {
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
}
