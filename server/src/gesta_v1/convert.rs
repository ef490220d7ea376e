//! `gesta.v1` ↔ engine: events, queries, expected revisions, ids, and
//! errors as statuses carrying a typed [`ErrorDetail`] — both ways, for the
//! service and for the client.
//!
//! A status's details are a `google.rpc.Status` (gRPC's richer error
//! model, which clients in every language know how to read) holding one
//! `google.protobuf.Any` of type [`ERROR_DETAIL_TYPE`].

use bytes::Bytes;
use prost::Message;
use tonic::{Code, Status};

use crate::proto::gesta_v1 as g;
use crate::proto::gesta_v1::ErrorDetail;
use crate::proto::gesta_v1::error_detail::Kind;
use crate::proto::gesta_v1::expected_revision::Kind as Expected;
use crate::proto::gesta_v1::target::Kind as TargetKind;
use gesta::lifecycle::{AuditEntry, Operation, Redacted, TagsAdded, Target};
use gesta::tenants::TenantError;
use gesta::{Removal, Removed, RetentionRule, RetentionScope};

use crate::served::Unacknowledged;
use crate::wording::Wording;

/// The type URL of the [`ErrorDetail`] in a status's details.
pub const ERROR_DETAIL_TYPE: &str = "type.googleapis.com/gesta.v1.ErrorDetail";

/// What a `RecordedEvent` adds to the `NewEvent` it was appended as, at
/// most: position, revision and commit time (11 bytes each, key
/// included), rounded up. A response carries an event only if it is
/// within the event limit plus this.
pub(crate) const RECORDED_EXTRA: usize = 64;

/// `google.rpc.Status`, as the details of a status carry it.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Any {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// A status of `code` whose details say `kind`.
pub(crate) fn status(code: Code, kind: Kind, message: impl Into<String>) -> Status {
    let message = message.into();
    let detail = ErrorDetail { kind: Some(kind) };
    let details = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details: vec![Any {
            type_url: ERROR_DETAIL_TYPE.into(),
            value: detail.encode_to_vec(),
        }],
    };
    Status::with_details(code, message, Bytes::from(details.encode_to_vec()))
}

/// The [`ErrorDetail`] a status carries, if it carries one.
pub fn error_detail(status: &Status) -> Option<ErrorDetail> {
    let rpc = RpcStatus::decode(status.details()).ok()?;
    rpc.details
        .iter()
        .find(|a| a.type_url == ERROR_DETAIL_TYPE)
        .and_then(|a| ErrorDetail::decode(a.value.as_slice()).ok())
}

pub(crate) fn invalid(reason: impl Into<String>) -> Status {
    let reason = reason.into();
    status(
        Code::InvalidArgument,
        Kind::InvalidInput(g::InvalidInput {
            reason: reason.clone(),
        }),
        format!("invalid input: {reason}"),
    )
}

pub(crate) fn exhausted(reason: impl Into<String>) -> Status {
    let reason = reason.into();
    status(
        Code::ResourceExhausted,
        Kind::ResourceExhausted(g::ResourceExhausted {
            reason: reason.clone(),
        }),
        reason,
    )
}

/// PERMISSION_DENIED: the server does not allow the call as asked.
pub(crate) fn denied(reason: impl Into<String>) -> Status {
    let reason = reason.into();
    status(
        Code::PermissionDenied,
        Kind::PermissionDenied(g::PermissionDenied {
            reason: reason.clone(),
        }),
        reason,
    )
}

/// An append committed but not acknowledged: `UNAVAILABLE`, with the
/// detail of an unknown outcome, whose rule holds (a retry with the same
/// ids is safe); the message names the positions.
pub(crate) fn unacknowledged(e: Unacknowledged) -> Status {
    let reason = e.to_string();
    status(
        Code::Unavailable,
        Kind::OutcomeUnknown(g::OutcomeUnknown {
            reason: reason.clone(),
        }),
        reason,
    )
}

/// `gesta.v1`'s words for what tenancy refuses: the kinds its client
/// reads, the engine's errors as [`from_engine`] says them.
pub(crate) struct GestaWording;

impl Wording for GestaWording {
    fn unauthenticated() -> Status {
        status(
            Code::Unauthenticated,
            Kind::Unauthenticated(g::Empty {}),
            "missing or invalid API key",
        )
    }

    fn tenant(e: TenantError) -> Status {
        match e {
            TenantError::Busy(_) | TenantError::QuotaExceeded { .. } => exhausted(e.to_string()),
            // The key names a tenant that does not exist (any more).
            TenantError::Unknown(_) | TenantError::InvalidName { .. } => denied(e.to_string()),
            TenantError::Store(e) => from_engine(e),
            // What runs beside the store (a shipper) could not start: the
            // bucket did not answer, or the tenant's prefix is another's.
            // An I/O error: nothing was appended.
            TenantError::Companion { .. } => {
                let reason = e.to_string();
                status(
                    Code::Unavailable,
                    Kind::Io(g::Io {
                        reason: reason.clone(),
                    }),
                    reason,
                )
            }
            // Not the store's error: a bare status, as a lost task's.
            other => Status::internal(other.to_string()),
        }
    }

    fn internal(reason: String) -> Status {
        Status::internal(reason)
    }
}

/// FAILED_PRECONDITION: `Forget` on a store that is not served encrypted.
pub(crate) fn not_encrypted() -> Status {
    status(
        Code::FailedPrecondition,
        Kind::NotEncrypted(g::Empty {}),
        "the store is not served encrypted (its directory holds no key file KEYS): no subject \
         was ever sealed, so there is no key to destroy; redact the subject's events instead",
    )
}

pub(crate) fn subscription_open(name: &str) -> Status {
    status(
        Code::FailedPrecondition,
        Kind::SubscriptionOpen(g::SubscriptionOpen { name: name.into() }),
        format!("the durable subscription {name:?} is open"),
    )
}

/// A task the call waited for failed (panicked or was cancelled).
pub(crate) fn lost(e: tokio::task::JoinError) -> Status {
    Status::internal(format!("the call's task failed: {e}"))
}

/// An engine error as a status with its typed detail; see `ErrorDetail`
/// in `proto/gesta.proto` for the codes.
pub(crate) fn from_engine(e: gesta::Error) -> Status {
    use gesta::Error as E;
    let message = e.to_string();
    let (code, kind) = match e {
        E::InvalidInput { reason } => (
            Code::InvalidArgument,
            Kind::InvalidInput(g::InvalidInput { reason }),
        ),
        E::ConditionFailed { position } => (
            Code::Aborted,
            Kind::ConditionFailed(g::ConditionFailed { position }),
        ),
        E::WrongExpectedRevision {
            stream,
            expected,
            actual,
        } => (
            Code::FailedPrecondition,
            Kind::WrongExpectedRevision(g::WrongExpectedRevision {
                stream,
                expected: Some(expected_to_proto(expected)),
                actual,
            }),
        ),
        E::DuplicateEventId { id } => (
            Code::AlreadyExists,
            Kind::DuplicateEventId(g::DuplicateEventId { id: format_id(id) }),
        ),
        E::TrackingConflict {
            source_name,
            position,
            stored,
        } => (
            Code::AlreadyExists,
            Kind::TrackingConflict(g::TrackingConflict {
                source: source_name,
                position,
                stored,
            }),
        ),
        E::OutcomeUnknown { .. } => (
            Code::Unknown,
            Kind::OutcomeUnknown(g::OutcomeUnknown {
                reason: message.clone(),
            }),
        ),
        E::Corruption {
            file,
            offset,
            reason,
        } => (
            Code::DataLoss,
            Kind::Corruption(g::Corruption {
                file: file.display().to_string(),
                offset,
                reason,
            }),
        ),
        E::Poisoned => (Code::Unavailable, Kind::Poisoned(g::Empty {})),
        E::Closed => (Code::Unavailable, Kind::Closed(g::Empty {})),
        E::Unsupported { what } => (
            Code::Unimplemented,
            Kind::Unsupported(g::Unsupported { what: what.into() }),
        ),
        E::SubjectForgotten { subject } => (
            Code::FailedPrecondition,
            Kind::SubjectForgotten(g::SubjectForgotten { subject }),
        ),
        // A read of a segment evicted to a bucket that did not answer (or
        // whose bytes failed a check): nothing was returned for it, and a
        // retry may succeed.
        E::Remote { .. } => (
            Code::Unavailable,
            Kind::Io(g::Io {
                reason: message.clone(),
            }),
        ),
        E::Replica { writer } => (
            Code::FailedPrecondition,
            Kind::ReadReplica(g::ReadReplica { writer }),
        ),
        E::Undecryptable {
            position,
            subject,
            reason,
        } => (
            Code::DataLoss,
            Kind::Undecryptable(g::Undecryptable {
                position,
                subject,
                reason: reason.into(),
            }),
        ),
        _ => (
            Code::Internal,
            Kind::Io(g::Io {
                reason: message.clone(),
            }),
        ),
    };
    status(code, kind, message)
}

/// The engine error a status stands for, when it stands for one (`None`
/// for transport, authentication and limit errors, and for kinds the
/// engine's type cannot carry: `Unsupported` names its operation with a
/// `&'static str`).
pub(crate) fn to_engine(status: &Status) -> Option<gesta::Error> {
    use gesta::Error as E;
    let detail = error_detail(status)?;
    Some(match detail.kind? {
        Kind::InvalidInput(i) => E::InvalidInput { reason: i.reason },
        Kind::ConditionFailed(c) => E::ConditionFailed {
            position: c.position,
        },
        Kind::WrongExpectedRevision(w) => E::WrongExpectedRevision {
            stream: w.stream,
            expected: expected_from_proto(w.expected).ok()?,
            actual: w.actual,
        },
        Kind::DuplicateEventId(d) => E::DuplicateEventId {
            id: parse_id(&d.id).ok()?,
        },
        Kind::TrackingConflict(t) => E::TrackingConflict {
            source_name: t.source,
            position: t.position,
            stored: t.stored,
        },
        Kind::OutcomeUnknown(o) => E::OutcomeUnknown {
            path: Default::default(),
            source: std::io::Error::other(o.reason),
        },
        Kind::Corruption(c) => E::Corruption {
            file: c.file.into(),
            offset: c.offset,
            reason: c.reason,
        },
        Kind::Poisoned(_) => E::Poisoned,
        Kind::Closed(_) => E::Closed,
        Kind::Io(i) => E::Io {
            path: Default::default(),
            source: std::io::Error::other(i.reason),
        },
        Kind::Unsupported(_)
        | Kind::Unauthenticated(_)
        | Kind::SubscriptionOpen(_)
        | Kind::ResourceExhausted(_)
        | Kind::PermissionDenied(_)
        | Kind::NotEncrypted(_)
        // Its reason is a `&'static str` in the engine's type.
        | Kind::Undecryptable(_) => return None,
        Kind::SubjectForgotten(f) => E::SubjectForgotten { subject: f.subject },
        Kind::ReadReplica(r) => E::Replica { writer: r.writer },
    })
}

/// An id as the protocol writes it: a hyphenated lowercase UUID.
pub(crate) fn format_id(id: u128) -> String {
    uuid::Uuid::from_u128(id).hyphenated().to_string()
}

/// An id as the protocol writes it, refused unless it is a UUID.
pub(crate) fn parse_id(id: &str) -> Result<u128, Status> {
    uuid::Uuid::parse_str(id)
        .map(|u| u.as_u128())
        .map_err(|e| invalid(format!("invalid event id {id:?}: {e}")))
}

pub(crate) fn expected_to_proto(e: gesta::ExpectedRevision) -> g::ExpectedRevision {
    let kind = match e {
        gesta::ExpectedRevision::Any => Expected::Any(g::Empty {}),
        gesta::ExpectedRevision::NoStream => Expected::NoStream(g::Empty {}),
        gesta::ExpectedRevision::Exists => Expected::Exists(g::Empty {}),
        gesta::ExpectedRevision::Exact(n) => Expected::Exact(n),
    };
    g::ExpectedRevision { kind: Some(kind) }
}

/// Refuses an unset expectation (or one of a kind this server does not
/// know), rather than taking it for `Any`.
pub(crate) fn expected_from_proto(
    e: Option<g::ExpectedRevision>,
) -> Result<gesta::ExpectedRevision, Status> {
    match e.and_then(|e| e.kind) {
        Some(Expected::Any(_)) => Ok(gesta::ExpectedRevision::Any),
        Some(Expected::NoStream(_)) => Ok(gesta::ExpectedRevision::NoStream),
        Some(Expected::Exists(_)) => Ok(gesta::ExpectedRevision::Exists),
        Some(Expected::Exact(n)) => Ok(gesta::ExpectedRevision::Exact(n)),
        None => Err(invalid("an expected revision must say which it is")),
    }
}

pub(crate) fn query_from_proto(q: Option<g::Query>) -> gesta::Query {
    match q {
        None => gesta::Query::all(),
        Some(q) => gesta::Query::from_items(
            q.items
                .into_iter()
                .map(|i| gesta::QueryItem::new().types(i.types).tags(i.tags)),
        ),
    }
}

pub(crate) fn query_to_proto(q: &gesta::Query) -> g::Query {
    g::Query {
        items: q
            .items
            .iter()
            .map(|i| g::QueryItem {
                types: i.types.clone(),
                tags: i.tags.clone(),
            })
            .collect(),
    }
}

pub(crate) fn new_event_to_proto(e: gesta::NewEvent) -> g::NewEvent {
    g::NewEvent {
        event_type: e.event_type,
        tags: e.tags,
        data: e.data,
        metadata: e.metadata,
        id: e.id.map(format_id),
        stream: e.stream,
    }
}

/// A protocol event as an engine event, refused if it is larger than
/// `max_bytes` encoded (a read must give it back in one message).
pub(crate) fn new_event_from_proto(
    index: usize,
    e: g::NewEvent,
    max_bytes: usize,
) -> Result<gesta::NewEvent, Status> {
    let size = e.encoded_len();
    if size > max_bytes {
        return Err(invalid(format!(
            "event {index} is {size} bytes encoded, above this server's limit of {max_bytes} \
             bytes per event (--max-event-bytes)"
        )));
    }
    let id = match &e.id {
        None => None,
        Some(id) => {
            Some(parse_id(id).map_err(|_| invalid(format!("event {index}: invalid id {id:?}")))?)
        }
    };
    Ok(gesta::NewEvent {
        event_type: e.event_type,
        tags: e.tags,
        data: e.data,
        metadata: e.metadata,
        id,
        stream: e.stream,
    })
}

pub(crate) fn recorded_to_proto(e: gesta::RecordedEvent) -> g::RecordedEvent {
    g::RecordedEvent {
        position: e.position,
        event_type: e.event_type,
        tags: e.tags,
        data: e.data,
        metadata: e.metadata,
        id: e.id.map(format_id),
        stream: e.stream,
        revision: e.revision,
        timestamp_micros: e.timestamp_micros,
    }
}

/// A received event as the engine's type; an id that is no UUID (which
/// this server never sends) is refused.
pub(crate) fn recorded_from_proto(e: g::RecordedEvent) -> Result<gesta::RecordedEvent, Status> {
    Ok(gesta::RecordedEvent {
        position: e.position,
        event_type: e.event_type,
        tags: e.tags,
        data: e.data,
        metadata: e.metadata,
        id: e.id.as_deref().map(parse_id).transpose()?,
        stream: e.stream,
        revision: e.revision,
        timestamp_micros: e.timestamp_micros,
    })
}

pub(crate) fn direction_from_proto(d: i32) -> Result<gesta::read::Direction, Status> {
    match g::Direction::try_from(d) {
        Ok(g::Direction::Forwards) => Ok(gesta::read::Direction::Forwards),
        Ok(g::Direction::Backwards) => Ok(gesta::read::Direction::Backwards),
        Err(_) => Err(invalid(format!("unknown direction {d}"))),
    }
}

pub(crate) fn direction_to_proto(d: gesta::read::Direction) -> g::Direction {
    match d {
        gesta::read::Direction::Forwards => g::Direction::Forwards,
        gesta::read::Direction::Backwards => g::Direction::Backwards,
    }
}

/// Read options from a request's start, direction and limit.
pub(crate) fn read_options(
    start: Option<u64>,
    direction: i32,
    limit: Option<u64>,
) -> Result<gesta::ReadOptions, Status> {
    Ok(gesta::ReadOptions {
        direction: direction_from_proto(direction)?,
        start,
        limit: limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
    })
}

pub(crate) fn listed_to_proto(l: gesta::Listed) -> g::Listed {
    g::Listed {
        name: l.name,
        count: l.count,
    }
}

pub(crate) fn listed_from_proto(l: g::Listed) -> gesta::Listed {
    gesta::Listed::new(l.name, l.count)
}

/// A page's limit (a listing's, the audit trail's) as the engine takes
/// it: one beyond `usize` stays beyond the largest page, for the engine to
/// refuse.
pub(crate) fn list_limit(limit: u64) -> usize {
    usize::try_from(limit).unwrap_or(usize::MAX)
}

pub(crate) fn target_to_proto(t: &Target) -> g::Target {
    let kind = match t {
        Target::Positions(p) => TargetKind::Positions(g::Positions {
            positions: p.clone(),
        }),
        Target::Query(q) => TargetKind::Query(query_to_proto(q)),
    };
    g::Target { kind: Some(kind) }
}

/// Refuses an unset target (or one of a kind this server does not know),
/// rather than taking it for every event.
pub(crate) fn target_from_proto(t: Option<g::Target>) -> Result<Target, Status> {
    match t.and_then(|t| t.kind) {
        Some(TargetKind::Positions(p)) => Ok(Target::Positions(p.positions)),
        Some(TargetKind::Query(q)) => Ok(Target::Query(query_from_proto(Some(q)))),
        None => Err(invalid(
            "a target must say which it is: positions or a query",
        )),
    }
}

/// A retention rule as the protocol carries it.
pub(crate) fn rule_to_proto(rule: &RetentionRule) -> g::RetentionRule {
    let scope = match &rule.scope {
        RetentionScope::Stream(s) => g::retention_rule::Scope::Stream(s.clone()),
        RetentionScope::Query(q) => g::retention_rule::Scope::Query(query_to_proto(q)),
    };
    g::RetentionRule {
        scope: Some(scope),
        max_age_micros: rule.max_age_micros,
        max_count: rule.max_count,
    }
}

/// A received rule; one without a scope is refused rather than taken for
/// every event.
pub(crate) fn rule_from_proto(rule: Option<g::RetentionRule>) -> Result<RetentionRule, Status> {
    let Some(rule) = rule else {
        return Err(invalid("a retention rule is required"));
    };
    let scope = match rule.scope {
        Some(g::retention_rule::Scope::Stream(s)) => RetentionScope::Stream(s),
        Some(g::retention_rule::Scope::Query(q)) => {
            RetentionScope::Query(query_from_proto(Some(q)))
        }
        None => {
            return Err(invalid(
                "a retention rule must say its scope: a stream or a query",
            ));
        }
    };
    Ok(RetentionRule {
        scope,
        max_age_micros: rule.max_age_micros,
        max_count: rule.max_count,
    })
}

pub(crate) fn audit_entry_to_proto(e: AuditEntry) -> g::AuditEntry {
    let operation = match e.operation {
        Operation::Remove { removal, result } => {
            let removal = match removal {
                Removal::Target(t) => g::remove_operation::Removal::Target(target_to_proto(&t)),
                Removal::Stream { stream, before } => {
                    g::remove_operation::Removal::Stream(g::StreamRemoval { stream, before })
                }
                Removal::Retention(rule) => {
                    g::remove_operation::Removal::Retention(rule_to_proto(&rule))
                }
            };
            Some(g::audit_entry::Operation::Remove(g::RemoveOperation {
                removal: Some(removal),
                targeted: result.targeted,
                removed: result.removed,
            }))
        }
        Operation::SetRetention { rule } => Some(g::audit_entry::Operation::SetRetention(
            g::SetRetentionOperation {
                rule: Some(rule_to_proto(&rule)),
            },
        )),
        Operation::AddTags {
            tags,
            target,
            result,
        } => Some(g::audit_entry::Operation::AddTags(g::AddTagsOperation {
            tags,
            target: Some(target_to_proto(&target)),
            targeted: result.targeted,
            tagged: result.tagged,
        })),
        Operation::Redact { target, result } => {
            Some(g::audit_entry::Operation::Redact(g::RedactOperation {
                target: Some(target_to_proto(&target)),
                targeted: result.targeted,
                redacted: result.redacted,
            }))
        }
    };
    g::AuditEntry {
        sequence: e.sequence,
        timestamp_micros: e.timestamp_micros,
        head: e.head,
        operation,
    }
}

/// A received audit entry as the engine's type; an operation this client
/// does not know (a newer server's) is `UNIMPLEMENTED`.
pub(crate) fn audit_entry_from_proto(e: g::AuditEntry) -> Result<AuditEntry, Status> {
    let operation = match e.operation {
        Some(g::audit_entry::Operation::AddTags(a)) => Operation::AddTags {
            tags: a.tags,
            target: target_from_proto(a.target)?,
            result: TagsAdded {
                targeted: a.targeted,
                tagged: a.tagged,
            },
        },
        Some(g::audit_entry::Operation::Redact(r)) => Operation::Redact {
            target: target_from_proto(r.target)?,
            result: Redacted {
                targeted: r.targeted,
                redacted: r.redacted,
            },
        },
        Some(g::audit_entry::Operation::Remove(r)) => {
            let removal = match r.removal {
                Some(g::remove_operation::Removal::Target(t)) => {
                    Removal::Target(target_from_proto(Some(t))?)
                }
                Some(g::remove_operation::Removal::Stream(s)) => Removal::Stream {
                    stream: s.stream,
                    before: s.before,
                },
                Some(g::remove_operation::Removal::Retention(rule)) => {
                    Removal::Retention(rule_from_proto(Some(rule))?)
                }
                None => {
                    return Err(Status::unimplemented(format!(
                        "audit entry {} records a removal this client does not know",
                        e.sequence
                    )));
                }
            };
            Operation::Remove {
                removal,
                result: Removed {
                    targeted: r.targeted,
                    removed: r.removed,
                },
            }
        }
        Some(g::audit_entry::Operation::SetRetention(r)) => Operation::SetRetention {
            rule: rule_from_proto(r.rule)?,
        },
        None => {
            return Err(Status::unimplemented(format!(
                "audit entry {} records an operation this client does not know",
                e.sequence
            )));
        }
    };
    Ok(AuditEntry {
        sequence: e.sequence,
        timestamp_micros: e.timestamp_micros,
        head: e.head,
        operation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_survive_the_trip_through_a_status() {
        use gesta::Error as E;
        let cases = vec![
            (
                E::InvalidInput { reason: "r".into() },
                Code::InvalidArgument,
            ),
            (E::ConditionFailed { position: 7 }, Code::Aborted),
            (
                E::Replica {
                    writer: "writer w (epoch 3) of s3://b/p".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                E::WrongExpectedRevision {
                    stream: "s".into(),
                    expected: gesta::ExpectedRevision::Exact(3),
                    actual: Some(4),
                },
                Code::FailedPrecondition,
            ),
            (
                E::WrongExpectedRevision {
                    stream: "s".into(),
                    expected: gesta::ExpectedRevision::NoStream,
                    actual: None,
                },
                Code::FailedPrecondition,
            ),
            (
                E::DuplicateEventId { id: 1 << 100 | 5 },
                Code::AlreadyExists,
            ),
            (
                E::TrackingConflict {
                    source_name: "up".into(),
                    position: 2,
                    stored: 9,
                },
                Code::AlreadyExists,
            ),
            (
                E::Corruption {
                    file: "wal/1.seg".into(),
                    offset: 40,
                    reason: "crc".into(),
                },
                Code::DataLoss,
            ),
            (E::Poisoned, Code::Unavailable),
            (E::Closed, Code::Unavailable),
        ];
        for (error, code) in cases {
            let shown = error.to_string();
            let debug = format!("{error:?}");
            let s = from_engine(error);
            assert_eq!(s.code(), code, "{shown}");
            assert_eq!(s.message(), shown);
            let back = to_engine(&s).expect("decodes");
            assert_eq!(format!("{back:?}"), debug);
        }
        let unknown = from_engine(E::OutcomeUnknown {
            path: "wal/1.seg".into(),
            source: std::io::Error::other("EIO"),
        });
        assert_eq!(unknown.code(), Code::Unknown);
        assert!(matches!(
            to_engine(&unknown),
            Some(E::OutcomeUnknown { source, .. }) if source.to_string().contains("EIO")
        ));
        let unsupported = from_engine(E::Unsupported { what: "x" });
        assert_eq!(unsupported.code(), Code::Unimplemented);
        assert!(to_engine(&unsupported).is_none());
        assert!(to_engine(&Status::internal("no details")).is_none());
    }

    #[test]
    fn audit_entries_and_targets_make_the_round_trip() {
        for target in [
            Target::Positions(vec![5, 1, 5]),
            Target::Query(gesta::Query::all()),
            Target::Query(
                gesta::Query::tag("x").or(gesta::QueryItem::new().types(["A", "B"]).tag("y")),
            ),
        ] {
            assert_eq!(
                target_from_proto(Some(target_to_proto(&target))).unwrap(),
                target
            );
            let operations = [
                Operation::AddTags {
                    tags: vec!["a".into(), "b".into()],
                    target: target.clone(),
                    result: TagsAdded {
                        targeted: 2,
                        tagged: 1,
                    },
                },
                Operation::Redact {
                    target,
                    result: Redacted {
                        targeted: 3,
                        redacted: 2,
                    },
                },
            ];
            for operation in operations {
                let entry = AuditEntry {
                    sequence: 3,
                    timestamp_micros: 1_700_000_000_000_000,
                    head: 42,
                    operation,
                };
                let back = audit_entry_from_proto(audit_entry_to_proto(entry.clone())).unwrap();
                assert_eq!(back, entry);
            }
        }
        for unset in [None, Some(g::Target { kind: None })] {
            assert_eq!(
                target_from_proto(unset).unwrap_err().code(),
                Code::InvalidArgument
            );
        }
        let unknown = g::AuditEntry {
            sequence: 9,
            timestamp_micros: 1,
            head: 1,
            operation: None,
        };
        let e = audit_entry_from_proto(unknown).unwrap_err();
        assert_eq!(e.code(), Code::Unimplemented);
        assert!(to_engine(&e).is_none());
    }

    #[test]
    fn expectations_must_be_set() {
        for e in [
            gesta::ExpectedRevision::Any,
            gesta::ExpectedRevision::NoStream,
            gesta::ExpectedRevision::Exists,
            gesta::ExpectedRevision::Exact(0),
            gesta::ExpectedRevision::Exact(u64::MAX),
        ] {
            assert_eq!(expected_from_proto(Some(expected_to_proto(e))).unwrap(), e);
        }
        for unset in [None, Some(g::ExpectedRevision { kind: None })] {
            assert_eq!(
                expected_from_proto(unset).unwrap_err().code(),
                Code::InvalidArgument
            );
        }
    }
}
