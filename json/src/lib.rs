//! gesta-json: the JSON forms the `gesta` command reads and writes —
//! events as JSON lines, and queries — shared with the tests and the fuzz
//! targets, which need them without the command.
//!
//! An event line, as `append` and `import` read it:
//!
//! ```json
//! {"type":"StudentSubscribed","tags":["course:c1","student:s7"],"data":{"student":"s7"},
//!  "stream":"course-c1","id":"0b6c3a52-6f3e-4d2a-9a8e-1f2d3c4b5a69"}
//! ```
//!
//! Only `type` is required. `data` is any JSON value, stored as its JSON
//! text exactly as written; `data_base64` gives bytes that are not JSON
//! instead. `metadata` / `metadata_base64` likewise. `id` is a UUID. `read`
//! and `export` write the same fields plus `position`, `revision` (within
//! the stream) and `timestamp` (commit time, RFC 3339, UTC); those three are
//! ignored on input. Data that is valid JSON on one line is written as
//! `data`, anything else as `data_base64`, so an export imports back to the
//! same bytes.
//!
//! A query (`--query`, `--condition`) is `{"items": [item, ...]}`, the items
//! OR-ed; an item is `{"types": [...], "tags": [...]}`: an event matches when
//! its type is one of `types` (absent or empty: any type) and it carries
//! every tag of `tags`. `{"items": []}` or `{}` matches every event.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use gesta::{EventRef, NewEvent, Query, QueryItem, Tags};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// An event line as read from input.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventIn<'a> {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    data_base64: Option<String>,
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
    #[serde(default)]
    metadata_base64: Option<String>,
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    id: Option<String>,
    // Written by `read` and `export`; assigned anew on append.
    #[serde(default, rename = "position")]
    _position: Option<u64>,
    #[serde(default, rename = "revision")]
    _revision: Option<u64>,
    #[serde(default, rename = "timestamp")]
    _timestamp: Option<String>,
}

fn bytes_of(
    what: &str,
    json: Option<&RawValue>,
    base64: Option<String>,
) -> Result<Vec<u8>, String> {
    match (json, base64) {
        (Some(_), Some(_)) => Err(format!("give {what} or {what}_base64, not both")),
        (Some(raw), None) => Ok(raw.get().as_bytes().to_vec()),
        (None, Some(b)) => BASE64
            .decode(b.as_bytes())
            .map_err(|e| format!("{what}_base64 is not base64: {e}")),
        (None, None) => Ok(Vec::new()),
    }
}

/// A JSON error as ", column C: message" when it has a position within
/// the one line parsed (the caller names the line), or ": message".
fn located(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(message) if e.line() == 1 => format!(", column {}: {message}", e.column()),
        _ => format!(": {text}"),
    }
}

/// Parses one event line. An error reads as the continuation of "line N"
/// (", column C: …" or ": …").
pub fn parse_event(line: &str) -> Result<NewEvent, String> {
    if !line.starts_with('{') {
        return Err(": not a JSON object".into());
    }
    let e: EventIn = serde_json::from_str(line).map_err(|e| located(&e))?;
    let data = bytes_of("data", e.data, e.data_base64).map_err(|e| format!(": {e}"))?;
    let metadata =
        bytes_of("metadata", e.metadata, e.metadata_base64).map_err(|e| format!(": {e}"))?;
    let mut event = NewEvent::new(e.event_type, data)
        .tags(e.tags)
        .metadata(metadata);
    if let Some(stream) = e.stream {
        event = event.stream(stream);
    }
    if let Some(id) = e.id {
        let uuid = uuid::Uuid::parse_str(&id).map_err(|err| format!(": id {id:?}: {err}"))?;
        event = event.id(uuid.as_u128());
    }
    Ok(event)
}

/// An event as written by `read` and `export`.
#[derive(Serialize)]
struct EventOut<'a> {
    position: u64,
    #[serde(rename = "type")]
    event_type: &'a str,
    tags: TagsOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata_base64: Option<String>,
}

/// `bytes` as JSON to embed verbatim, when they are one JSON value on one
/// line (so that writing them back gives the same bytes); otherwise base64.
/// The four bytes `null` go as base64 too: a `"data": null` reads back as
/// no data at all.
fn json_or_base64(bytes: &[u8]) -> (Option<&RawValue>, Option<String>) {
    if bytes.is_empty() {
        return (None, None);
    }
    let one_line = !bytes.iter().any(|&b| b == b'\n' || b == b'\r');
    if one_line
        && bytes != b"null"
        && let Ok(text) = std::str::from_utf8(bytes)
        && let Ok(raw) = serde_json::from_str::<&RawValue>(text)
        && raw.get().len() == text.len()
    {
        return (Some(raw), None);
    }
    (None, Some(BASE64.encode(bytes)))
}

/// An event id as users write it: a UUID, in any of its usual forms.
pub fn parse_id(text: &str) -> Result<u128, String> {
    uuid::Uuid::parse_str(text)
        .map(|u| u.as_u128())
        .map_err(|err| format!("{text:?} is not a UUID: {err}"))
}

/// Writes `e` as one JSON line (without the newline).
pub fn write_event(out: &mut Vec<u8>, e: EventRef<'_>) {
    let (data, data_base64) = json_or_base64(e.data);
    let (metadata, metadata_base64) = json_or_base64(e.metadata);
    let line = EventOut {
        position: e.position,
        event_type: e.event_type,
        tags: TagsOut(e.tags),
        stream: e.stream,
        revision: e.revision,
        id: e
            .id
            .map(|id| uuid::Uuid::from_u128(id).hyphenated().to_string()),
        timestamp: rfc3339(e.timestamp_micros),
        data,
        data_base64,
        metadata,
        metadata_base64,
    };
    // Serializing plain strings, numbers and already-valid JSON into a
    // vector cannot fail.
    let _ = serde_json::to_writer(out, &line);
}

/// An event's tags as a JSON array, straight from the borrowed view.
struct TagsOut<'a>(Tags<'a>);

impl Serialize for TagsOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryIn {
    #[serde(default)]
    items: Vec<ItemIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemIn {
    #[serde(default)]
    types: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
}

/// Parses a query: `{"items":[{"types":[...],"tags":[...]}, ...]}`. An
/// error reads as a continuation, like [`parse_event`]'s.
pub fn parse_query(text: &str) -> Result<Query, String> {
    let q: QueryIn = serde_json::from_str(text).map_err(|e| located(&e))?;
    Ok(Query::from_items(
        q.items
            .into_iter()
            .map(|i| QueryItem::new().types(i.types).tags(i.tags)),
    ))
}

/// Microseconds since the Unix epoch as RFC 3339 in UTC, to the
/// microsecond.
pub fn rfc3339(micros: u64) -> String {
    let secs = micros / 1_000_000;
    let sub = micros % 1_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{sub:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to a date.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Fuzzing entry point: parses `text` as a query and as an event line.
/// An accepted query must pass the store's own checks or be refused by
/// them with `InvalidInput` (never a panic); an accepted event line that
/// passes the store's checks must come back the same through
/// [`write_event`] and [`parse_event`], as export and import do.
#[doc(hidden)]
pub fn fuzz_line(text: &str) {
    if let Ok(q) = parse_query(text) {
        let _ = gesta::validation::check_query(&q);
    }
    let Ok(e) = parse_event(text) else { return };
    if gesta::validation::check_batch(std::slice::from_ref(&e)).is_err() {
        return;
    }
    let revision = e.stream.as_ref().map(|_| 0);
    let recorded = e.clone().into_recorded(1, revision, 0);
    let mut line = Vec::new();
    write_event(&mut line, (&recorded).into());
    let text = std::str::from_utf8(&line).expect("write_event writes UTF-8");
    let again = parse_event(text).expect("an exported line imports");
    assert_eq!(again, e, "export then import changed the event");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
        assert_eq!(
            rfc3339(1_795_094_629_123_456),
            "2026-11-19T13:23:49.123456Z"
        );
    }

    /// Data and metadata whose bytes are `null` survive export and import
    /// (`"data": null` would read back as no data).
    #[test]
    fn null_bytes_survive_export_and_import() {
        let e = NewEvent::new("T", &b"null"[..]).metadata(&b"null"[..]);
        let recorded = e.clone().into_recorded(1, None, 0);
        let mut line = Vec::new();
        write_event(&mut line, (&recorded).into());
        let again = parse_event(std::str::from_utf8(&line).unwrap()).unwrap();
        assert_eq!(&again.data[..], b"null");
        assert_eq!(&again.metadata[..], b"null");
        // Written by hand, `null` still means no data.
        assert!(
            parse_event(r#"{"type":"T","data":null}"#)
                .unwrap()
                .data
                .is_empty()
        );
    }

    #[test]
    fn data_keeps_its_bytes() {
        let e = parse_event(r#"{"type":"T","data":{"b": 1,"a":[2]}}"#).unwrap();
        assert_eq!(&e.data[..], br#"{"b": 1,"a":[2]}"#);
        assert_eq!(json_or_base64(b"{\n}").1.as_deref(), Some("ewp9"));
        assert!(json_or_base64(b"not json").1.is_some());
        assert!(json_or_base64(b" 1").1.is_some());
        assert!(json_or_base64(b"\"s\"").0.is_some());
    }

    #[test]
    fn queries_parse_and_reject_typos() {
        let q =
            parse_query(r#"{"items":[{"types":["A"],"tags":["x","y"]},{"tags":["z"]}]}"#).unwrap();
        assert_eq!(q.items.len(), 2);
        assert_eq!(q.items[1].tags, ["z"]);
        assert!(parse_query("{}").unwrap().is_all());
        assert!(parse_query(r#"{"items":[{"tag":["x"]}]}"#).is_err());
    }
}
