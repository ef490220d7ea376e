//! Protocol ↔ engine: events, queries, metadata, ids, and engine errors as
//! gRPC statuses carrying UmaDB's `ErrorResponse` details.

use bytes::Bytes;
use prost::Message;
use tonic::{Code, Status};

use crate::proto::v1;
use crate::proto::v1::error_response::ErrorType;
use crate::served::Unacknowledged;
use crate::wording::Wording;
use gesta::tenants::TenantError;

/// The first bytes of metadata in the protocol's form.
const METADATA_MAGIC: &[u8; 4] = b"GKV1";
/// Flags: a UUID follows; the event's batch carries tracking info.
const FLAG_UUID: u8 = 1;
const FLAG_TRACKED: u8 = 2;
/// The key under which metadata that is not in the protocol's form (an
/// event appended through the Rust API) is shown to protocol clients.
pub const RAW_METADATA_KEY: &str = "gesta.metadata";

/// An event's protocol-only fields, kept in its metadata bytes: its UUID,
/// its metadata entries, and whether its batch was appended with tracking
/// info (which the log's record holds).
///
/// The UUID is not the store's event id: in UmaDB a UUID is no uniqueness
/// constraint (the same event may be appended twice), it only lets a
/// retried conditional append be recognised, which the server does itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProtocolMetadata {
    /// The event's UUID, if it had one (the nil UUID, 0, included: a
    /// client that sends it gets it back).
    pub uuid: Option<u128>,
    /// The metadata entries, in order.
    pub entries: Vec<(String, String)>,
    /// Whether the append that committed the event carried tracking info:
    /// a read looks the info up in the log only then (the record holds
    /// it, once per batch).
    pub tracked: bool,
}

/// Encodes [`ProtocolMetadata`] as a Gesta event's metadata bytes: `GKV1`,
/// a flags byte (bit 0: a UUID follows; bit 1: the batch carries tracking
/// info), the UUID as 16 bytes big-endian if present, then for each entry
/// in order its key and its value, each as a little-endian `u32` length and
/// the UTF-8 bytes. Always the five bytes at least, so that a reader knows
/// the server wrote them (and can trust bit 1).
pub fn encode_metadata(m: &ProtocolMetadata) -> Bytes {
    let size: usize = m.entries.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(21 + size);
    out.extend_from_slice(METADATA_MAGIC);
    let flags =
        if m.uuid.is_some() { FLAG_UUID } else { 0 } | if m.tracked { FLAG_TRACKED } else { 0 };
    out.push(flags);
    if let Some(uuid) = m.uuid {
        out.extend_from_slice(&uuid.to_be_bytes());
    }
    for (k, v) in &m.entries {
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
pub fn decode_metadata(bytes: &[u8]) -> ProtocolMetadata {
    read_metadata(bytes).0
}

/// Decodes an event's metadata as [`decode_metadata`] does, and tells
/// whether its batch may carry tracking info: always, unless the server
/// wrote the metadata (an event appended through the Rust API may have
/// been appended with tracking info, and says nothing of it).
pub(crate) fn read_metadata(bytes: &[u8]) -> (ProtocolMetadata, bool) {
    let (m, maybe_tracked) = BorrowedMetadata::read(bytes);
    let owned = ProtocolMetadata {
        uuid: m.uuid,
        entries: m
            .entries()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        tracked: m.tracked,
    };
    (owned, maybe_tracked)
}

/// [`ProtocolMetadata`] borrowed from an event's metadata bytes: what
/// [`read_metadata`] decodes, without copying the entries (a read encodes
/// them straight into its response).
#[derive(Clone, Debug)]
pub(crate) struct BorrowedMetadata<'a> {
    pub uuid: Option<u128>,
    /// The entries of the protocol's form, each checked when read.
    encoded: &'a [u8],
    /// Metadata in another form, shown as one entry under
    /// [`RAW_METADATA_KEY`].
    raw: Option<std::borrow::Cow<'a, str>>,
    pub tracked: bool,
}

impl<'a> BorrowedMetadata<'a> {
    /// Decodes `bytes` as [`read_metadata`] does, and tells whether the
    /// event's batch may carry tracking info.
    pub(crate) fn read(bytes: &'a [u8]) -> (BorrowedMetadata<'a>, bool) {
        if let Some(m) = BorrowedMetadata::parse(bytes) {
            let tracked = m.tracked;
            return (m, tracked);
        }
        let m = BorrowedMetadata {
            uuid: None,
            encoded: &[],
            raw: (!bytes.is_empty()).then(|| String::from_utf8_lossy(bytes)),
            tracked: false,
        };
        (m, true)
    }

    /// The protocol's form, if `bytes` are in it, every entry whole and
    /// UTF-8 and nothing after the last.
    fn parse(bytes: &'a [u8]) -> Option<BorrowedMetadata<'a>> {
        let rest = bytes.strip_prefix(METADATA_MAGIC)?;
        let (&flags, mut rest) = rest.split_first()?;
        if flags & !(FLAG_UUID | FLAG_TRACKED) != 0 {
            return None;
        }
        let uuid = if flags & FLAG_UUID != 0 {
            let (id, tail) = rest.split_at_checked(16)?;
            rest = tail;
            Some(u128::from_be_bytes(id.try_into().ok()?))
        } else {
            None
        };
        // Checked whole here, so that iterating them cannot fail.
        let mut check = rest;
        while !check.is_empty() {
            take_str(&mut check)?;
            take_str(&mut check)?;
        }
        Some(BorrowedMetadata {
            uuid,
            encoded: rest,
            raw: None,
            tracked: flags & FLAG_TRACKED != 0,
        })
    }

    /// The entries, key and value, in order.
    pub(crate) fn entries(&self) -> Entries<'_> {
        Entries(self.entry_bytes())
    }

    /// The entries' bytes, key and value, in order: what a response
    /// writes, without checking their UTF-8 again (the protocol's form is
    /// checked whole when read, and raw metadata was made UTF-8 then).
    pub(crate) fn entry_bytes(&self) -> EntryBytes<'_> {
        EntryBytes {
            encoded: self.encoded,
            raw: self.raw.as_deref(),
        }
    }
}

/// The entries of a [`BorrowedMetadata`] as bytes.
#[derive(Clone, Debug)]
pub(crate) struct EntryBytes<'s> {
    encoded: &'s [u8],
    raw: Option<&'s str>,
}

impl<'s> Iterator for EntryBytes<'s> {
    type Item = (&'s [u8], &'s [u8]);

    fn next(&mut self) -> Option<(&'s [u8], &'s [u8])> {
        if let Some(value) = self.raw.take() {
            return Some((RAW_METADATA_KEY.as_bytes(), value.as_bytes()));
        }
        if self.encoded.is_empty() {
            return None;
        }
        Some((
            take_bytes(&mut self.encoded)?,
            take_bytes(&mut self.encoded)?,
        ))
    }
}

/// The entries of a [`BorrowedMetadata`], as strings: its
/// [`EntryBytes`], each checked as UTF-8.
#[derive(Clone, Debug)]
pub(crate) struct Entries<'s>(EntryBytes<'s>);

impl<'s> Iterator for Entries<'s> {
    type Item = (&'s str, &'s str);

    fn next(&mut self) -> Option<(&'s str, &'s str)> {
        let (key, value) = self.0.next()?;
        Some((
            std::str::from_utf8(key).ok()?,
            std::str::from_utf8(value).ok()?,
        ))
    }
}

/// The string at the start of `rest` (a little-endian `u32` length, then
/// UTF-8 bytes), `rest` moved past it; `None` if it is cut short or not
/// UTF-8.
fn take_str<'s>(rest: &mut &'s [u8]) -> Option<&'s str> {
    let mut tail = *rest;
    let s = std::str::from_utf8(take_bytes(&mut tail)?).ok()?;
    *rest = tail;
    Some(s)
}

/// The bytes of the string at the start of `rest`, as [`take_str`] reads
/// them, without checking their UTF-8.
fn take_bytes<'s>(rest: &mut &'s [u8]) -> Option<&'s [u8]> {
    let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let end = len.checked_add(4)?;
    let b = rest.get(4..end)?;
    *rest = &rest[end..];
    Some(b)
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
        // Crypto-shredding's (an encrypted store): the append names a
        // subject that can no longer be used; a sealed event that fails
        // to open is damage.
        gesta::Error::SubjectForgotten { .. } => {
            (Code::FailedPrecondition, ErrorType::InvalidArgument)
        }
        gesta::Error::Undecryptable { .. } => (Code::DataLoss, ErrorType::Corruption),
        // A write sent to a read replica can never succeed there; the
        // message names the writer to send it to. Not INTEGRITY, which
        // clients take for a conflict to retry.
        gesta::Error::Replica { .. } => (Code::FailedPrecondition, ErrorType::InvalidArgument),
        // An evicted segment's bucket did not answer: retryable.
        gesta::Error::Remote { .. } => (Code::Unavailable, ErrorType::Io),
        // The message says the events may or may not be in the store.
        gesta::Error::OutcomeUnknown { .. } => (Code::Unknown, ErrorType::Io),
        _ => (Code::Internal, ErrorType::Io),
    };
    status(code, kind, message)
}

/// An append committed but not acknowledged: `UNAVAILABLE`, `IO` (the
/// message names the positions).
pub(crate) fn unacknowledged(e: Unacknowledged) -> Status {
    status(Code::Unavailable, ErrorType::Io, e.to_string())
}

/// UmaDB's words for what tenancy refuses (UmaDB has no tenants): the
/// error types its clients map to their errors. None is `INTEGRITY`, which
/// clients take for a conflict to retry.
pub(crate) struct UmaWording;

impl Wording for UmaWording {
    fn unauthenticated() -> Status {
        status(
            Code::Unauthenticated,
            ErrorType::Authentication,
            "missing or invalid API key".into(),
        )
    }

    fn tenant(e: TenantError) -> Status {
        let message = e.to_string();
        let (code, kind) = match e {
            TenantError::Store(e) => return from_engine(e),
            // Every open store is in use: retry later.
            TenantError::Busy(_) => (Code::ResourceExhausted, ErrorType::Io),
            // The append cannot be taken as sent until the quota changes.
            TenantError::QuotaExceeded { .. } => {
                (Code::ResourceExhausted, ErrorType::InvalidArgument)
            }
            // The key names a tenant that does not exist (any more).
            TenantError::Unknown(_) | TenantError::InvalidName { .. } => {
                (Code::PermissionDenied, ErrorType::Authentication)
            }
            TenantError::Companion { .. } => (Code::Unavailable, ErrorType::Io),
            _ => (Code::Internal, ErrorType::Internal),
        };
        status(code, kind, message)
    }

    fn internal(reason: String) -> Status {
        status(Code::Internal, ErrorType::Internal, reason)
    }
}

/// An event's UUID: the protocol's UUID string as a u128. Empty means
/// none; the nil UUID is kept as 0, as UmaDB keeps it.
pub(crate) fn parse_id(index: usize, uuid: &str) -> Result<Option<u128>, Status> {
    if uuid.is_empty() {
        return Ok(None);
    }
    uuid::Uuid::parse_str(uuid)
        .map(|u| Some(u.as_u128()))
        .map_err(|e| invalid(format!("event {index}: invalid uuid {uuid:?}: {e}")))
}

/// A protocol event as a new Gesta event, refused if it is larger than
/// `max_bytes` as the protocol encodes it (a read must give it back in one
/// message) or repeats a metadata key (as UmaDB refuses it).
pub(crate) fn to_new_event(
    index: usize,
    e: v1::Event,
    max_bytes: usize,
    tracked: bool,
) -> Result<gesta::NewEvent, Status> {
    let size = e.encoded_len();
    if size > max_bytes {
        return Err(invalid(format!(
            "event {index} is {size} bytes encoded, above this server's limit of {max_bytes} \
             bytes per event (--max-event-bytes): a read returns each event in one message, \
             and gRPC clients receive at most {} bytes by default",
            crate::config::CLIENT_RECEIVE_LIMIT
        )));
    }
    // A set, not a scan of the earlier keys: an event within the size
    // limit can carry hundreds of thousands of entries, and a quadratic
    // check of them would hold a protocol thread for minutes.
    let mut keys = std::collections::HashSet::with_capacity(e.metadata.len());
    for m in &e.metadata {
        if !keys.insert(m.key.as_str()) {
            return Err(invalid(format!(
                "event {index}: metadata key {:?} appears twice",
                m.key
            )));
        }
    }
    let metadata = ProtocolMetadata {
        uuid: parse_id(index, &e.uuid)?,
        entries: e.metadata.into_iter().map(|m| (m.key, m.value)).collect(),
        tracked,
    };
    Ok(gesta::NewEvent::new(e.event_type, e.data)
        .tags(e.tags)
        .metadata(encode_metadata(&metadata)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_raw_metadata_shows_as_one_entry() {
        let entries = vec![
            ("correlation".to_string(), "c-1".to_string()),
            ("".to_string(), "ü".to_string()),
        ];
        for uuid in [None, Some(0), Some(7u128 << 100 | 9)] {
            for entries in [vec![], entries.clone()] {
                for tracked in [false, true] {
                    let m = ProtocolMetadata {
                        uuid,
                        entries: entries.clone(),
                        tracked,
                    };
                    let encoded = encode_metadata(&m);
                    assert!(encoded.starts_with(METADATA_MAGIC));
                    assert_eq!(decode_metadata(&encoded), m);
                    assert_eq!(read_metadata(&encoded).1, tracked);
                    // Truncated, it is not the protocol's form.
                    let cut = &encoded[..encoded.len() - 1];
                    assert_eq!(decode_metadata(cut).entries[0].0, RAW_METADATA_KEY);
                    assert!(read_metadata(cut).1);
                }
            }
        }
        // No metadata: none, and maybe tracked (through the Rust API).
        assert_eq!(read_metadata(b""), (ProtocolMetadata::default(), true));
        let raw = decode_metadata(br#"{"a":1}"#);
        assert_eq!(raw.uuid, None);
        assert_eq!(
            raw.entries,
            vec![(RAW_METADATA_KEY.to_string(), r#"{"a":1}"#.to_string())]
        );
        // Raw metadata of any length, UTF-8 or not, is one entry, and its
        // batch may carry tracking info; so is the magic alone, cut short.
        for (bytes, shown) in [
            (&b"x"[..], "x"),
            (b"\xff", "\u{fffd}"),
            (b"GKV", "GKV"),
            (b"GKV1", "GKV1"),
        ] {
            let (m, maybe_tracked) = read_metadata(bytes);
            assert_eq!(
                m.entries,
                vec![(RAW_METADATA_KEY.to_string(), shown.to_string())]
            );
            assert!(maybe_tracked && !m.tracked && m.uuid.is_none());
        }
        // An entry cut short, or not UTF-8, makes the whole of it raw.
        let whole = encode_metadata(&ProtocolMetadata {
            uuid: None,
            entries: vec![("k".into(), "v".into())],
            tracked: true,
        });
        let mut bad = whole.to_vec();
        *bad.last_mut().unwrap() = 0xff;
        for damaged in [&whole[..whole.len() - 1], &bad[..]] {
            let (m, maybe_tracked) = read_metadata(damaged);
            assert_eq!(m.entries.len(), 1);
            assert_eq!(m.entries[0].0, RAW_METADATA_KEY);
            assert!(maybe_tracked);
        }
        assert_eq!(
            read_metadata(&whole),
            (
                ProtocolMetadata {
                    uuid: None,
                    entries: vec![("k".into(), "v".into())],
                    tracked: true,
                },
                true
            )
        );
    }

    #[test]
    fn ids_parse_as_uuids() {
        let u = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        let id = parse_id(0, u).unwrap().unwrap();
        assert_eq!(uuid::Uuid::from_u128(id).to_string(), u);
        assert_eq!(parse_id(0, "").unwrap(), None);
        assert_eq!(
            parse_id(0, "00000000-0000-0000-0000-000000000000").unwrap(),
            Some(0)
        );
        assert_eq!(
            parse_id(3, "nope").unwrap_err().code(),
            Code::InvalidArgument
        );
    }
}
