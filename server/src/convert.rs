//! Protocol ↔ engine: events, queries, metadata, ids, and engine errors as
//! gRPC statuses carrying UmaDB's `ErrorResponse` details.

use bytes::Bytes;
use prost::Message;
use tonic::{Code, Status};

use crate::proto::v1;
use crate::proto::v1::error_response::ErrorType;

/// The first bytes of metadata that holds the protocol's key/value entries.
const METADATA_MAGIC: &[u8; 4] = b"GKV1";
/// The key under which metadata that is not in the entries encoding (an
/// event appended through the Rust API) is shown to protocol clients.
pub const RAW_METADATA_KEY: &str = "gesta.metadata";

/// Encodes the protocol's metadata entries as a Gesta event's metadata
/// bytes: nothing for no entries; otherwise `GKV1`, then for each entry in
/// order its key and its value, each as a little-endian `u32` length and the
/// UTF-8 bytes.
pub fn encode_metadata(entries: &[(String, String)]) -> Bytes {
    if entries.is_empty() {
        return Bytes::new();
    }
    let size: usize = entries.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(4 + size);
    out.extend_from_slice(METADATA_MAGIC);
    for (k, v) in entries {
        for s in [k, v] {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
    Bytes::from(out)
}

/// Decodes [`encode_metadata`]'s form. Metadata in any other form (written
/// through the Rust API) comes back as one entry keyed
/// [`RAW_METADATA_KEY`], its value the bytes read as UTF-8 (lossily).
pub fn decode_metadata(bytes: &[u8]) -> Vec<(String, String)> {
    if bytes.is_empty() {
        return Vec::new();
    }
    parse_entries(bytes).unwrap_or_else(|| {
        vec![(
            RAW_METADATA_KEY.to_string(),
            String::from_utf8_lossy(bytes).into_owned(),
        )]
    })
}

fn parse_entries(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let mut rest = bytes.strip_prefix(METADATA_MAGIC)?;
    let mut take = || -> Option<String> {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let s = String::from_utf8(rest.get(4..4 + len)?.to_vec()).ok()?;
        rest = &rest[4 + len..];
        Some(s)
    };
    let mut entries = Vec::new();
    while let Some(k) = take() {
        entries.push((k, take()?));
    }
    // `take` fails at the end or on damage: only a clean end counts.
    let consumed: usize = entries.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    (4 + consumed == bytes.len() && !entries.is_empty()).then_some(entries)
}

/// A status with UmaDB's `ErrorResponse` in its details, which UmaDB's
/// clients decode to choose their exception type.
pub(crate) fn status(code: Code, kind: ErrorType, message: String) -> Status {
    let details = v1::ErrorResponse {
        message: message.clone(),
        error_type: kind as i32,
    };
    Status::with_details(code, message, Bytes::from(details.encode_to_vec()))
}

pub(crate) fn invalid(message: impl Into<String>) -> Status {
    status(
        Code::InvalidArgument,
        ErrorType::InvalidArgument,
        message.into(),
    )
}

/// Maps an engine error as UmaDB maps its own: integrity violations are
/// `FAILED_PRECONDITION`, bad input `INVALID_ARGUMENT`, damage `DATA_LOSS`.
pub(crate) fn from_engine(e: gesta::Error) -> Status {
    let message = e.to_string();
    let (code, kind) = match e {
        gesta::Error::InvalidInput { .. } => (Code::InvalidArgument, ErrorType::InvalidArgument),
        gesta::Error::ConditionFailed { .. }
        | gesta::Error::WrongExpectedRevision { .. }
        | gesta::Error::DuplicateEventId { .. }
        | gesta::Error::TrackingConflict { .. } => (Code::FailedPrecondition, ErrorType::Integrity),
        gesta::Error::Corruption { .. } => (Code::DataLoss, ErrorType::Corruption),
        gesta::Error::Closed => (Code::Unavailable, ErrorType::Io),
        gesta::Error::Unsupported { .. } => (Code::Unimplemented, ErrorType::Internal),
        _ => (Code::Internal, ErrorType::Io),
    };
    status(code, kind, message)
}

/// An event id: the protocol's UUID string as the store's u128. Empty and
/// the nil UUID (which some clients send for an event without one) mean
/// none.
pub(crate) fn parse_id(index: usize, uuid: &str) -> Result<Option<u128>, Status> {
    if uuid.is_empty() {
        return Ok(None);
    }
    uuid::Uuid::parse_str(uuid)
        .map(|u| Some(u.as_u128()).filter(|&id| id != 0))
        .map_err(|e| invalid(format!("event {index}: invalid uuid {uuid:?}: {e}")))
}

pub(crate) fn to_new_event(index: usize, e: v1::Event) -> Result<gesta::NewEvent, Status> {
    let id = parse_id(index, &e.uuid)?;
    let metadata: Vec<(String, String)> =
        e.metadata.into_iter().map(|m| (m.key, m.value)).collect();
    let mut event = gesta::NewEvent::new(e.event_type, Bytes::from(e.data))
        .tags(e.tags)
        .metadata(encode_metadata(&metadata));
    if let Some(id) = id {
        event = event.id(id);
    }
    Ok(event)
}

pub(crate) fn to_query(q: Option<v1::Query>) -> gesta::Query {
    match q {
        None => gesta::Query::all(),
        Some(q) => gesta::Query::from_items(
            q.items
                .into_iter()
                .map(|i| gesta::QueryItem::new().types(i.types).tags(i.tags)),
        ),
    }
}

pub(crate) fn to_sequenced(e: gesta::RecordedEvent) -> v1::SequencedEvent {
    let metadata = decode_metadata(&e.metadata)
        .into_iter()
        .map(|(key, value)| v1::MetadataEntry { key, value })
        .collect();
    v1::SequencedEvent {
        position: e.position,
        event: Some(v1::Event {
            event_type: e.event_type,
            tags: e.tags,
            data: e.data.to_vec(),
            uuid: e
                .id
                .map(|id| uuid::Uuid::from_u128(id).hyphenated().to_string())
                .unwrap_or_default(),
            metadata,
        }),
        tracking_info: None,
    }
}

/// The bytes an event adds to a response, roughly.
pub(crate) fn weight(e: &v1::SequencedEvent) -> usize {
    e.event.as_ref().map_or(0, |e| {
        64 + e.data.len()
            + e.event_type.len()
            + e.tags.iter().map(|t| t.len() + 2).sum::<usize>()
            + e.metadata
                .iter()
                .map(|m| m.key.len() + m.value.len() + 4)
                .sum::<usize>()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_raw_metadata_shows_as_one_entry() {
        let entries = vec![
            ("correlation".to_string(), "c-1".to_string()),
            ("".to_string(), "ü".to_string()),
        ];
        assert_eq!(decode_metadata(&encode_metadata(&entries)), entries);
        assert!(encode_metadata(&[]).is_empty());
        assert!(decode_metadata(b"").is_empty());
        assert_eq!(
            decode_metadata(br#"{"a":1}"#),
            vec![(RAW_METADATA_KEY.to_string(), r#"{"a":1}"#.to_string())]
        );
        // Truncated entries are not the entries form.
        let mut cut = encode_metadata(&entries).to_vec();
        cut.pop();
        assert_eq!(decode_metadata(&cut)[0].0, RAW_METADATA_KEY);
    }

    #[test]
    fn ids_parse_as_uuids() {
        let u = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        let id = parse_id(0, u).unwrap().unwrap();
        assert_eq!(uuid::Uuid::from_u128(id).to_string(), u);
        assert_eq!(parse_id(0, "").unwrap(), None);
        assert_eq!(
            parse_id(0, "00000000-0000-0000-0000-000000000000").unwrap(),
            None
        );
        assert_eq!(
            parse_id(3, "nope").unwrap_err().code(),
            Code::InvalidArgument
        );
    }
}
