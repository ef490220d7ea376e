//! A typed Rust client of the `gesta.v1.Gesta` service: the generated
//! tonic client behind methods that take and return the engine's types
//! ([`gesta::NewEvent`], [`gesta::AppendOptions`], [`gesta::ReadOptions`],
//! [`gesta::RecordedEvent`], …) and turn a store's refusal back into the
//! [`gesta::Error`] the store raised.
//!
//! ```no_run
//! # async fn run() -> Result<(), gesta_server::client::ClientError> {
//! use futures::TryStreamExt;
//! use gesta::{AppendOptions, ExpectedRevision, NewEvent, ReadOptions};
//! use gesta_server::client::GestaClient;
//!
//! let mut client = GestaClient::connect("http://127.0.0.1:50051").await?;
//! let options = AppendOptions::new().expect("order-7", ExpectedRevision::NoStream);
//! let event = NewEvent::new("OrderPlaced", r#"{"total":12}"#).stream("order-7");
//! let appended = client.append(vec![event], options).await?;
//! let events: Vec<_> = client
//!     .read_stream("order-7", ReadOptions::forwards())
//!     .await?
//!     .try_collect()
//!     .await?;
//! assert_eq!(events[0].position, appended.first);
//! # Ok(())
//! # }
//! ```

mod lent;

use std::ops::ControlFlow;

use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::gesta_v1::backup::report_from_proto;
use crate::gesta_v1::convert::{
    audit_entry_from_proto, direction_to_proto, expected_to_proto, format_id, listed_from_proto,
    new_event_to_proto, query_to_proto, recorded_from_proto, target_to_proto, to_engine,
};
use crate::gesta_v1::convert::{rule_from_proto, rule_to_proto};
use crate::proto::gesta_v1 as g;

pub use crate::gesta_v1::convert::{ERROR_DETAIL_TYPE, error_detail};

/// The largest response the client accepts, in bytes: 256 MiB, above any
/// server's message limit (the server is trusted; gRPC's default of 4 MiB
/// would refuse large snapshots and events).
pub const RECEIVE_LIMIT: usize = 256 << 20;

/// Why a call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The store refused or failed the call: the engine's error, decoded
    /// from the status's details (for instance
    /// [`gesta::Error::WrongExpectedRevision`] with its stream, expected
    /// and actual revisions, or [`gesta::Error::ConditionFailed`] with the
    /// conflicting position). Paths in `Io`, `OutcomeUnknown` and
    /// `Corruption` are the server's.
    Store(gesta::Error),
    /// Any other status: authentication, the server's limits, an open
    /// durable subscription ([`error_detail`] tells which), a call cut off.
    Status(Status),
    /// The connection could not be made.
    Connect(tonic::transport::Error),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Store(e) => write!(f, "{e}"),
            ClientError::Status(s) => write!(f, "{}: {}", s.code(), s.message()),
            ClientError::Connect(e) => write!(f, "cannot connect: {e}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Store(e) => Some(e),
            ClientError::Status(s) => Some(s),
            ClientError::Connect(e) => Some(e),
        }
    }
}

impl From<Status> for ClientError {
    fn from(status: Status) -> Self {
        match to_engine(&status) {
            Some(e) => ClientError::Store(e),
            None => ClientError::Status(status),
        }
    }
}

impl From<tonic::transport::Error> for ClientError {
    fn from(e: tonic::transport::Error) -> Self {
        ClientError::Connect(e)
    }
}

/// Shorthand for the client's results.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A durable subscription as the server keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurableInfo {
    /// Its name.
    pub name: String,
    /// The last position it acknowledged.
    pub acknowledged: u64,
    /// Whether a subscription under this name is open on the server.
    pub open: bool,
}

/// Events as a read delivers them, in order.
pub type EventStream = BoxStream<'static, Result<gesta::RecordedEvent>>;
/// A subscription's batches: the matching events of one append each.
pub type BatchStream = BoxStream<'static, Result<Vec<gesta::RecordedEvent>>>;

/// Adds `authorization: Bearer <key>` to every call when a key is set.
#[derive(Clone, Default)]
pub struct Auth(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(key) = &self.0 {
            request.metadata_mut().insert("authorization", key.clone());
        }
        Ok(request)
    }
}

type Raw = g::gesta_client::GestaClient<InterceptedService<Channel, Auth>>;

/// A client of `gesta.v1.Gesta`; cheap to clone (clones share the
/// connection).
#[derive(Clone)]
pub struct GestaClient {
    raw: Raw,
    /// The channel and the key, for the calls made without the generated
    /// client (the lent reads).
    service: InterceptedService<Channel, Auth>,
}

impl GestaClient {
    /// Connects to `uri` (`http://host:port`; for TLS, build a
    /// [`Channel`] with its TLS config and use [`GestaClient::new`]).
    pub async fn connect(uri: impl Into<String>) -> Result<GestaClient> {
        let channel = tonic::transport::Endpoint::from_shared(uri.into())?
            .connect()
            .await?;
        Ok(GestaClient::new(channel))
    }

    /// A client over an open channel.
    pub fn new(channel: Channel) -> GestaClient {
        GestaClient::with_auth(channel, Auth::default())
    }

    fn with_auth(channel: Channel, auth: Auth) -> GestaClient {
        let service = InterceptedService::new(channel.clone(), auth.clone());
        let raw = g::gesta_client::GestaClient::with_interceptor(channel, auth)
            .max_decoding_message_size(RECEIVE_LIMIT)
            .max_encoding_message_size(RECEIVE_LIMIT);
        GestaClient { raw, service }
    }

    /// A client over an open channel that sends `key` with every call;
    /// a key that cannot be a header value is [`gesta::Error::InvalidInput`].
    pub fn with_api_key(channel: Channel, key: &str) -> Result<GestaClient> {
        let value = format!("Bearer {key}").parse().map_err(|_| {
            ClientError::Store(gesta::Error::InvalidInput {
                reason: "an API key must be visible ASCII".into(),
            })
        })?;
        Ok(GestaClient::with_auth(channel, Auth(Some(value))))
    }

    /// The generated client, for what this one does not wrap.
    pub fn raw(&mut self) -> &mut g::gesta_client::GestaClient<InterceptedService<Channel, Auth>> {
        &mut self.raw
    }

    /// Appends `events` atomically, subject to `options` (expected
    /// revisions, the DCB condition, tracking info); see
    /// [`gesta::EventStore`] for the order of the checks.
    pub async fn append(
        &mut self,
        events: Vec<gesta::NewEvent>,
        options: gesta::AppendOptions,
    ) -> Result<gesta::Appended> {
        let request = g::AppendRequest {
            events: events.into_iter().map(new_event_to_proto).collect(),
            expected: options
                .expected
                .into_iter()
                .map(|(stream, revision)| g::StreamExpectation {
                    stream,
                    revision: Some(expected_to_proto(revision)),
                })
                .collect(),
            condition: options.condition.map(|c| g::AppendCondition {
                fail_if_events_match: Some(query_to_proto(&c.fail_if_events_match)),
                after: c.after,
            }),
            tracking: options
                .tracking
                .map(|(source, position)| g::TrackingInfo { source, position }),
        };
        let r = self.raw.append(request).await?.into_inner();
        Ok(gesta::Appended {
            first: r.first,
            last: r.last,
        })
    }

    /// Events matching `query`, per `options` (`start` an exclusive
    /// position).
    pub async fn read(
        &mut self,
        query: &gesta::Query,
        options: gesta::ReadOptions,
    ) -> Result<EventStream> {
        let request = read_request(query, options);
        let responses = self.raw.read(request).await?.into_inner();
        Ok(events(responses, |r| r.events))
    }

    /// The events of `stream`, per `options` (`start` an exclusive
    /// revision); an unknown stream reads as empty.
    pub async fn read_stream(
        &mut self,
        stream: &str,
        options: gesta::ReadOptions,
    ) -> Result<EventStream> {
        let request = read_stream_request(stream, options);
        let responses = self.raw.read_stream(request).await?.into_inner();
        Ok(events(responses, |r| r.events))
    }

    /// The events [`read`](Self::read) yields, handed to `f` one by one
    /// as borrowed views until `f` answers [`ControlFlow::Break`] (which
    /// ends the call), as [`gesta::EventStore::read_each`] hands a store's:
    /// each is parsed in place from the response that carries it, with no
    /// message or string built per event; [`gesta::EventRef::to_owned`]
    /// makes an owned one that shares its data and metadata.
    ///
    /// ```no_run
    /// # async fn run(client: &mut gesta_server::client::GestaClient) -> gesta_server::client::Result<()> {
    /// use std::ops::ControlFlow;
    /// use gesta::{Query, ReadOptions};
    ///
    /// let mut in_c1 = 0;
    /// let enrolled = Query::event_type("StudentEnrolled");
    /// client
    ///     .read_each(&enrolled, ReadOptions::forwards(), |e| {
    ///         let mut tags = e.tags; // borrowed, like e.event_type and e.data
    ///         if tags.any(|t| t == "course:c1") {
    ///             in_c1 += 1;
    ///         }
    ///         ControlFlow::Continue(())
    ///     })
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn read_each(
        &mut self,
        query: &gesta::Query,
        options: gesta::ReadOptions,
        mut f: impl FnMut(gesta::EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
        let request = read_request(query, options);
        self.lend("/gesta.v1.Gesta/Read", request, &mut f).await
    }

    /// The events [`read_stream`](Self::read_stream) yields, lent to `f`
    /// as [`read_each`](Self::read_each) lends a query's.
    pub async fn read_stream_each(
        &mut self,
        stream: &str,
        options: gesta::ReadOptions,
        mut f: impl FnMut(gesta::EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
        let request = read_stream_request(stream, options);
        self.lend("/gesta.v1.Gesta/ReadStream", request, &mut f)
            .await
    }

    /// Calls the server-streaming method at `path` with `request`, its
    /// responses taken as bytes and their events lent to `f`.
    async fn lend<Req: prost::Message + Send + 'static>(
        &mut self,
        path: &'static str,
        request: Req,
        f: &mut dyn FnMut(gesta::EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
        let mut grpc = tonic::client::Grpc::new(self.service.clone())
            .max_decoding_message_size(RECEIVE_LIMIT)
            .max_encoding_message_size(RECEIVE_LIMIT);
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("the connection is not ready: {e}")))?;
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
        let mut responses = grpc
            .server_streaming(Request::new(request), path, lent::RawCodec::default())
            .await?
            .into_inner();
        while let Some(response) = responses.message().await? {
            if lent::lend_events(&response, f)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// The newest event of `stream` (None when it has no events).
    pub async fn read_stream_last(&mut self, stream: &str) -> Result<Option<gesta::RecordedEvent>> {
        let request = g::ReadStreamLastRequest {
            stream: stream.into(),
        };
        let event = self.raw.read_stream_last(request).await?.into_inner().event;
        Ok(event.map(recorded_from_proto).transpose()?)
    }

    /// The last revision of `stream` (None when it has no events).
    pub async fn stream_revision(&mut self, stream: &str) -> Result<Option<u64>> {
        let request = g::StreamRevisionRequest {
            stream: stream.into(),
        };
        Ok(self
            .raw
            .stream_revision(request)
            .await?
            .into_inner()
            .revision)
    }

    /// The committed event with id `id`, if any.
    pub async fn event_by_id(&mut self, id: u128) -> Result<Option<gesta::RecordedEvent>> {
        let request = g::EventByIdRequest { id: format_id(id) };
        let event = self.raw.event_by_id(request).await?.into_inner().event;
        Ok(event.map(recorded_from_proto).transpose()?)
    }

    /// The last position committed at or before `timestamp_micros` (0
    /// before the first event).
    pub async fn position_at(&mut self, timestamp_micros: u64) -> Result<u64> {
        let request = g::PositionAtRequest { timestamp_micros };
        Ok(self.raw.position_at(request).await?.into_inner().position)
    }

    /// The position of the last committed event (0 when empty).
    pub async fn head(&mut self) -> Result<u64> {
        Ok(self
            .raw
            .head(g::HeadRequest {})
            .await?
            .into_inner()
            .position)
    }

    /// Where the store stands against object storage: shipped to a bucket
    /// (`gesta serve --ship-to`), a read replica of one (`--replica-of`),
    /// or neither; how far behind, and since when healthy.
    pub async fn replication(&mut self) -> Result<g::ReplicationResponse> {
        Ok(self
            .raw
            .replication(g::ReplicationRequest {})
            .await?
            .into_inner())
    }

    /// The position last recorded for tracking `source`, if any.
    pub async fn tracking_info(&mut self, source: &str) -> Result<Option<u64>> {
        let request = g::TrackingInfoRequest {
            source: source.into(),
        };
        Ok(self
            .raw
            .get_tracking_info(request)
            .await?
            .into_inner()
            .position)
    }

    /// One page of the stream names starting with `prefix` and after
    /// `after` (exclusive), in byte order, at most `limit` (1 to
    /// [`gesta::listing::MAX_LIST_LIMIT`]) of them, each with its number
    /// of events; see [`gesta::EventStore::list`] for the contract. To page,
    /// pass a page's last name as the next `after`; a page shorter than
    /// `limit` is the last.
    pub async fn list_streams(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<gesta::Listed>> {
        let request = g::ListStreamsRequest {
            prefix: prefix.into(),
            after: after.map(Into::into),
            limit: limit as u64,
        };
        let r = self.raw.list_streams(request).await?.into_inner();
        Ok(r.streams.into_iter().map(listed_from_proto).collect())
    }

    /// As [`list_streams`](Self::list_streams), of the event types, each
    /// with the number of events of the type.
    pub async fn list_types(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<gesta::Listed>> {
        let request = g::ListEventTypesRequest {
            prefix: prefix.into(),
            after: after.map(Into::into),
            limit: limit as u64,
        };
        let r = self.raw.list_event_types(request).await?.into_inner();
        Ok(r.event_types.into_iter().map(listed_from_proto).collect())
    }

    /// As [`list_streams`](Self::list_streams), of the tags, each with the
    /// number of events carrying it.
    pub async fn list_tags(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<gesta::Listed>> {
        let request = g::ListTagsRequest {
            prefix: prefix.into(),
            after: after.map(Into::into),
            limit: limit as u64,
        };
        let r = self.raw.list_tags(request).await?.into_inner();
        Ok(r.tags.into_iter().map(listed_from_proto).collect())
    }

    /// Every event matching `query` after `after`, then each append as it
    /// commits, one append per item.
    pub async fn subscribe(&mut self, query: &gesta::Query, after: u64) -> Result<BatchStream> {
        let request = g::SubscribeRequest {
            query: Some(query_to_proto(query)),
            after,
        };
        let responses = self.raw.subscribe(request).await?.into_inner();
        Ok(batches(responses, |r| (r.events, r.continued)))
    }

    /// As [`subscribe`](Self::subscribe), from after the position last
    /// acknowledged under `name` ([`ack`](Self::ack)); the name stays open
    /// until the stream is dropped (and the server notices).
    pub async fn subscribe_durable(
        &mut self,
        name: &str,
        query: &gesta::Query,
    ) -> Result<BatchStream> {
        let request = g::SubscribeDurableRequest {
            name: name.into(),
            query: Some(query_to_proto(query)),
        };
        let responses = self.raw.subscribe_durable(request).await?.into_inner();
        Ok(batches(responses, |r| (r.events, r.continued)))
    }

    /// Records durably that `name` processed everything up to `position`;
    /// returns the acknowledged position (unchanged by an older one).
    pub async fn ack(&mut self, name: &str, position: u64) -> Result<u64> {
        let request = g::AckRequest {
            name: name.into(),
            position,
        };
        Ok(self.raw.ack(request).await?.into_inner().acknowledged)
    }

    /// Every durable subscription the store keeps, by name.
    pub async fn durable_subscriptions(&mut self) -> Result<Vec<DurableInfo>> {
        let r = self.raw.list_durable(g::ListDurableRequest {}).await?;
        Ok(r.into_inner()
            .subscriptions
            .into_iter()
            .map(|s| DurableInfo {
                name: s.name,
                acknowledged: s.acknowledged,
                open: s.open,
            })
            .collect())
    }

    /// Forgets `name`'s cursor; false if there was none. An open one is
    /// refused (`FAILED_PRECONDITION`, [`ClientError::Status`]).
    pub async fn delete_durable_subscription(&mut self, name: &str) -> Result<bool> {
        let request = g::DeleteDurableRequest { name: name.into() };
        Ok(self.raw.delete_durable(request).await?.into_inner().deleted)
    }

    /// Saves `state` for `key` at `position` (not past the head).
    pub async fn save_snapshot(
        &mut self,
        key: &str,
        position: u64,
        state: impl Into<Bytes>,
    ) -> Result<()> {
        let request = g::SaveSnapshotRequest {
            key: key.into(),
            position,
            state: state.into(),
        };
        self.raw.save_snapshot(request).await?;
        Ok(())
    }

    /// The newest snapshot of `key` at or before `at_or_before`
    /// (`u64::MAX` for the newest of all).
    pub async fn load_snapshot(
        &mut self,
        key: &str,
        at_or_before: u64,
    ) -> Result<Option<gesta::Snapshot>> {
        let request = g::LoadSnapshotRequest {
            key: key.into(),
            at_or_before: Some(at_or_before),
        };
        let snapshot = self.raw.load_snapshot(request).await?.into_inner().snapshot;
        Ok(snapshot.map(|s| gesta::Snapshot {
            position: s.position,
            state: s.state.into(),
        }))
    }

    /// The positions of `key`'s snapshots, ascending.
    pub async fn list_snapshots(&mut self, key: &str) -> Result<Vec<u64>> {
        let request = g::ListSnapshotsRequest { key: key.into() };
        Ok(self
            .raw
            .list_snapshots(request)
            .await?
            .into_inner()
            .positions)
    }

    /// Deletes `key`'s snapshot at `position`; false if there was none.
    pub async fn delete_snapshot(&mut self, key: &str, position: u64) -> Result<bool> {
        let request = g::DeleteSnapshotRequest {
            key: key.into(),
            position,
        };
        Ok(self
            .raw
            .delete_snapshot(request)
            .await?
            .into_inner()
            .deleted)
    }

    /// Adds `tags` to the committed events `target` names, without moving
    /// any position; see [`gesta::EventStore::add_tags`] and
    /// [`gesta::lifecycle`] for the contract and the checks (each
    /// [`gesta::Error::InvalidInput`], changing nothing).
    pub async fn add_tags(
        &mut self,
        target: &gesta::lifecycle::Target,
        tags: &[String],
    ) -> Result<gesta::lifecycle::TagsAdded> {
        let request = g::AddTagsRequest {
            target: Some(target_to_proto(target)),
            tags: tags.to_vec(),
        };
        let r = self.raw.add_tags(request).await?.into_inner();
        Ok(gesta::lifecycle::TagsAdded {
            targeted: r.targeted,
            tagged: r.tagged,
        })
    }

    /// Erases the data and metadata of the committed events `target`
    /// names, for good; type, tags, stream, revision, id, position and
    /// commit time stay. See [`gesta::EventStore::redact`] and
    /// [`gesta::lifecycle`] for the contract (what reads return, when the
    /// bytes leave the store's files) and the checks (each
    /// [`gesta::Error::InvalidInput`], changing nothing).
    pub async fn redact(
        &mut self,
        target: &gesta::lifecycle::Target,
    ) -> Result<gesta::lifecycle::Redacted> {
        let request = g::RedactRequest {
            target: Some(target_to_proto(target)),
        };
        let r = self.raw.redact(request).await?.into_inner();
        Ok(gesta::lifecycle::Redacted {
            targeted: r.targeted,
            redacted: r.redacted,
        })
    }

    /// Forgets `subject` on a store served encrypted, as
    /// [`gesta::encryption::Encrypted::forget`] does: its key is destroyed
    /// (its events read with empty data and metadata from then on), then
    /// its events are redacted; returns what the redaction did. A store
    /// not served encrypted refuses it with FAILED_PRECONDITION (a
    /// `NotEncrypted` detail), an unknown subject is
    /// [`gesta::Error::InvalidInput`].
    pub async fn forget(&mut self, subject: &str) -> Result<gesta::lifecycle::Redacted> {
        let request = g::ForgetRequest {
            subject: subject.to_owned(),
        };
        let r = self.raw.forget(request).await?.into_inner();
        Ok(gesta::lifecycle::Redacted {
            targeted: r.targeted,
            redacted: r.redacted,
        })
    }

    /// Removes committed events, as [`gesta::EventStore::remove`] does.
    pub async fn remove(&mut self, target: &gesta::lifecycle::Target) -> Result<gesta::Removed> {
        let request = g::RemoveRequest {
            target: Some(target_to_proto(target)),
        };
        Ok(removed(self.raw.remove(request).await?.into_inner()))
    }

    /// Removes every event of `stream`, as
    /// [`gesta::EventStore::delete_stream`] does.
    pub async fn delete_stream(&mut self, stream: &str) -> Result<gesta::Removed> {
        let request = g::DeleteStreamRequest {
            stream: stream.to_owned(),
        };
        Ok(removed(self.raw.delete_stream(request).await?.into_inner()))
    }

    /// Removes the events of `stream` with revisions below `before`, as
    /// [`gesta::EventStore::truncate_stream`] does.
    pub async fn truncate_stream(&mut self, stream: &str, before: u64) -> Result<gesta::Removed> {
        let request = g::TruncateStreamRequest {
            stream: stream.to_owned(),
            before,
        };
        Ok(removed(
            self.raw.truncate_stream(request).await?.into_inner(),
        ))
    }

    /// Sets a retention rule, as [`gesta::EventStore::set_retention`] does.
    pub async fn set_retention(&mut self, rule: &gesta::RetentionRule) -> Result<()> {
        let request = g::SetRetentionRequest {
            rule: Some(rule_to_proto(rule)),
        };
        self.raw.set_retention(request).await?;
        Ok(())
    }

    /// The retention rules in force.
    pub async fn retention_rules(&mut self) -> Result<Vec<gesta::RetentionRule>> {
        let r = self
            .raw
            .retention_rules(g::RetentionRulesRequest {})
            .await?
            .into_inner();
        Ok(r.rules
            .into_iter()
            .map(|rule| rule_from_proto(Some(rule)))
            .collect::<std::result::Result<_, Status>>()?)
    }

    /// Enforces every retention rule now, as
    /// [`gesta::EventStore::enforce_retention`] does.
    pub async fn enforce_retention(&mut self) -> Result<gesta::Removed> {
        let r = self
            .raw
            .enforce_retention(g::EnforceRetentionRequest {})
            .await?
            .into_inner();
        Ok(removed(r))
    }

    /// The audit trail, as [`gesta::EventStore::audit_log`] answers it:
    /// the lifecycle operations committed after sequence `after`, oldest
    /// first, at most `limit` (1 to [`gesta::listing::MAX_LIST_LIMIT`]) of
    /// them; a page shorter than `limit` is the last. (A page the server
    /// answers in several responses, to keep each within its size, is
    /// joined here.) An operation this client does not know is
    /// [`ClientError::Status`] with `UNIMPLEMENTED`.
    pub async fn audit_log(
        &mut self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<gesta::lifecycle::AuditEntry>> {
        let mut entries = Vec::new();
        let mut after = after;
        loop {
            let request = g::AuditLogRequest {
                after,
                limit: (limit - entries.len()) as u64,
            };
            let r = self.raw.audit_log(request).await?.into_inner();
            let got = r.entries.len();
            for e in r.entries {
                entries.push(audit_entry_from_proto(e)?);
            }
            match entries.last() {
                Some(last) if r.truncated && got > 0 && entries.len() < limit => {
                    after = last.sequence;
                }
                _ => return Ok(entries),
            }
        }
    }
}

impl GestaClient {
    /// Backs the store up into `destination` on the server's machine, a
    /// path under the backup root the server was started with (relative
    /// to it, or absolute under it) that does not exist yet; see
    /// [`gesta::Store::backup`] for what the copy holds. Answers when the
    /// backup is complete; its `path` is the server's. A server without a
    /// backup root, or a destination outside it, is
    /// [`ClientError::Status`] with `PERMISSION_DENIED`; a destination
    /// that exists, or holds `..`, is [`gesta::Error::InvalidInput`].
    pub async fn backup(&mut self, destination: &str) -> Result<gesta::BackupReport> {
        let request = g::BackupRequest {
            destination: destination.into(),
        };
        let r = self.raw.backup(request).await?.into_inner();
        Ok(report_from_proto(r))
    }
}

/// A read's responses (each opened by `open`) as one stream of events.
/// The request of a read of `query`, lent or owned.
fn read_request(query: &gesta::Query, options: gesta::ReadOptions) -> g::ReadRequest {
    g::ReadRequest {
        query: Some(query_to_proto(query)),
        start: options.start,
        direction: direction_to_proto(options.direction) as i32,
        limit: options.limit.map(|l| l as u64),
    }
}

/// The request of a read of `stream`, lent or owned.
fn read_stream_request(stream: &str, options: gesta::ReadOptions) -> g::ReadStreamRequest {
    g::ReadStreamRequest {
        stream: stream.into(),
        start: options.start,
        direction: direction_to_proto(options.direction) as i32,
        limit: options.limit.map(|l| l as u64),
    }
}

fn events<R: Send + 'static>(
    responses: tonic::Streaming<R>,
    open: fn(R) -> Vec<g::RecordedEvent>,
) -> EventStream {
    responses
        .map_err(ClientError::from)
        .map_ok(move |r| {
            stream::iter(
                open(r)
                    .into_iter()
                    .map(|e| recorded_from_proto(e).map_err(ClientError::from)),
            )
        })
        .try_flatten()
        .boxed()
}

/// A subscription's responses (each opened by `open` into its events and
/// `continued`) as batches, the parts of one append joined again.
fn batches<R: Send + 'static>(
    responses: tonic::Streaming<R>,
    open: fn(R) -> (Vec<g::RecordedEvent>, bool),
) -> BatchStream {
    stream::unfold(responses, move |mut responses| async move {
        let mut batch = Vec::new();
        loop {
            match responses.message().await {
                Ok(Some(r)) => {
                    let (events, continued) = open(r);
                    for e in events {
                        match recorded_from_proto(e) {
                            Ok(e) => batch.push(e),
                            Err(s) => return Some((Err(s.into()), responses)),
                        }
                    }
                    if !continued {
                        return Some((Ok(batch), responses));
                    }
                }
                Ok(None) => return None,
                Err(s) => return Some((Err(s.into()), responses)),
            }
        }
    })
    .boxed()
}

fn removed(r: g::RemoveResponse) -> gesta::Removed {
    gesta::Removed {
        targeted: r.targeted,
        removed: r.removed,
    }
}
