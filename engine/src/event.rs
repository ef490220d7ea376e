//! Events as users write them ([`NewEvent`]) and read them back
//! ([`RecordedEvent`]), and the documented limits checked at the boundary.

use bytes::Bytes;

use crate::error::{Error, Result};

/// Longest event type, tag or stream name, in bytes. (An event with a name
/// over 255 bytes is encoded "wide", with varint lengths.)
pub const MAX_NAME_LEN: usize = 1024;
/// Most tags one event may carry: as many as the one-byte tag count of the
/// log format holds.
pub const MAX_TAGS: usize = 255;
/// Largest event data (and, separately, metadata), in bytes.
pub const MAX_DATA_LEN: usize = 16 << 20;
/// Largest encoded batch, in bytes.
pub const MAX_BATCH_LEN: usize = 64 << 20;

/// An event to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The event type, 1–1,024 bytes.
    pub event_type: String,
    /// Tags (`key:value` by convention), each 1–1,024 bytes, at most 255.
    pub tags: Vec<String>,
    /// The payload, at most 16 MiB.
    pub data: Bytes,
    /// Optional metadata (correlation ids, …), at most 16 MiB.
    pub metadata: Bytes,
    /// An optional 128-bit id (a UUID, say) for idempotent appends.
    pub id: Option<u128>,
    /// The stream the event belongs to, if any (1–1,024 bytes).
    pub stream: Option<String>,
}

impl NewEvent {
    /// An event of `event_type` with `data`, no tags, no metadata, no id and
    /// no stream.
    pub fn new(event_type: impl Into<String>, data: impl Into<Bytes>) -> NewEvent {
        NewEvent {
            event_type: event_type.into(),
            tags: Vec::new(),
            data: data.into(),
            metadata: Bytes::new(),
            id: None,
            stream: None,
        }
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> NewEvent {
        self.tags.push(tag.into());
        self
    }

    /// Adds tags.
    pub fn tags<I, T>(mut self, tags: I) -> NewEvent
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Sets the metadata.
    pub fn metadata(mut self, metadata: impl Into<Bytes>) -> NewEvent {
        self.metadata = metadata.into();
        self
    }

    /// Sets the id.
    pub fn id(mut self, id: u128) -> NewEvent {
        self.id = Some(id);
        self
    }

    /// Sets the stream.
    pub fn stream(mut self, stream: impl Into<String>) -> NewEvent {
        self.stream = Some(stream.into());
        self
    }
}

/// A committed event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Its place in the global order (starts at 1).
    pub position: u64,
    /// The event type.
    pub event_type: String,
    /// Its tags, in the order they were given.
    pub tags: Vec<String>,
    /// The payload.
    pub data: Bytes,
    /// The metadata (empty if none).
    pub metadata: Bytes,
    /// The id, if one was given.
    pub id: Option<u128>,
    /// The stream, if one was given.
    pub stream: Option<String>,
    /// The event's revision within its stream (0, 1, 2, …), if it has one.
    pub revision: Option<u64>,
    /// When its batch was committed, microseconds since the Unix epoch.
    pub timestamp_micros: u64,
}

impl NewEvent {
    /// The event as a store records it: at `position`, with its stream
    /// `revision` and its batch's commit time.
    pub fn into_recorded(
        self,
        position: u64,
        revision: Option<u64>,
        timestamp_micros: u64,
    ) -> RecordedEvent {
        RecordedEvent {
            position,
            event_type: self.event_type,
            tags: self.tags,
            data: self.data,
            metadata: self.metadata,
            id: self.id,
            stream: self.stream,
            revision,
            timestamp_micros,
        }
    }
}

impl RecordedEvent {
    /// The event as it was appended, without what the store gave it
    /// (position, revision, commit time).
    pub fn to_new(&self) -> NewEvent {
        NewEvent {
            event_type: self.event_type.clone(),
            tags: self.tags.clone(),
            data: self.data.clone(),
            metadata: self.metadata.clone(),
            id: self.id,
            stream: self.stream.clone(),
        }
    }

    /// Whether this is `new` as appended: type, tags (in order), data,
    /// metadata, id and stream all equal.
    pub fn is_same_as(&self, new: &NewEvent) -> bool {
        self.event_type == new.event_type
            && self.tags == new.tags
            && self.data == new.data
            && self.metadata == new.metadata
            && self.id == new.id
            && self.stream == new.stream
    }
}

fn check_name(what: &str, index: usize, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(format!("event {index}: empty {what}")));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::invalid(format!(
            "event {index}: {what} is {} bytes, the limit is {MAX_NAME_LEN}",
            name.len()
        )));
    }
    Ok(())
}

/// Checks a stream name given outside an event (an expected revision).
pub(crate) fn check_stream_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(Error::invalid(format!(
            "stream name must be 1 to {MAX_NAME_LEN} bytes, got {}",
            name.len()
        )));
    }
    Ok(())
}

/// Checks one event against the documented limits.
pub(crate) fn validate(index: usize, e: &NewEvent) -> Result<()> {
    check_name("event type", index, &e.event_type)?;
    if e.tags.len() > MAX_TAGS {
        return Err(Error::invalid(format!(
            "event {index}: {} tags, the limit is {MAX_TAGS}",
            e.tags.len()
        )));
    }
    for tag in &e.tags {
        check_name("tag", index, tag)?;
    }
    if let Some(stream) = &e.stream {
        check_name("stream name", index, stream)?;
    }
    if e.data.len() > MAX_DATA_LEN {
        return Err(Error::invalid(format!(
            "event {index}: data is {} bytes, the limit is {MAX_DATA_LEN}",
            e.data.len()
        )));
    }
    if e.metadata.len() > MAX_DATA_LEN {
        return Err(Error::invalid(format!(
            "event {index}: metadata is {} bytes, the limit is {MAX_DATA_LEN}",
            e.metadata.len()
        )));
    }
    Ok(())
}
