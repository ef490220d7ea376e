//! Events read without copying: [`EventRef`] borrows its type, tags,
//! stream, data and metadata from the buffer a store read them into (for
//! the engine, the mapped segment), so visiting an event allocates
//! nothing. [`RecordedEvent`] stays the owned form, built from a view by
//! [`EventRef::to_owned`].

use std::sync::Arc;

use bytes::Bytes;

use crate::event::RecordedEvent;

/// An event borrowed from a store's buffers, handed to the callback of
/// [`EventStore::read_each`](crate::EventStore::read_each); valid for the
/// call only. The fields mean what [`RecordedEvent`]'s do.
#[derive(Clone, Copy)]
pub struct EventRef<'a> {
    /// Its place in the global order (starts at 1).
    pub position: u64,
    /// The event type.
    pub event_type: &'a str,
    /// Its tags, in the order they were given.
    pub tags: Tags<'a>,
    /// The payload.
    pub data: &'a [u8],
    /// The metadata (empty if none).
    pub metadata: &'a [u8],
    /// The id, if one was given.
    pub id: Option<u128>,
    /// The stream, if one was given.
    pub stream: Option<&'a str>,
    /// The event's revision within its stream, if it has one.
    pub revision: Option<u64>,
    /// When its batch was committed, microseconds since the Unix epoch.
    pub timestamp_micros: u64,
    /// The shared buffer `data` and `metadata` lie in, if any: the owned
    /// event then shares it instead of copying them (a part that does not
    /// lie in it is copied).
    pub shared: Option<&'a Bytes>,
}

impl<'a> EventRef<'a> {
    /// This event with `added` after its tags: the tags added to it after
    /// it was committed.
    pub(crate) fn with_added<'b>(self, added: &'b [Arc<str>]) -> EventRef<'b>
    where
        'a: 'b,
    {
        let mut e: EventRef<'b> = self;
        e.tags = e.tags.with_added(added);
        e
    }

    /// The owned event. Data and metadata share the store's buffer when it
    /// is shared (the engine's mapped segments), else they are copied; the
    /// strings are copied.
    pub fn to_owned(&self) -> RecordedEvent {
        let share = |part: &[u8]| match self.shared {
            Some(b) if !part.is_empty() && within(b, part) => b.slice_ref(part),
            _ => Bytes::copy_from_slice(part),
        };
        RecordedEvent {
            position: self.position,
            event_type: self.event_type.to_owned(),
            tags: self.tags.map(str::to_owned).collect(),
            data: share(self.data),
            metadata: share(self.metadata),
            id: self.id,
            stream: self.stream.map(str::to_owned),
            revision: self.revision,
            timestamp_micros: self.timestamp_micros,
        }
    }
}

impl std::fmt::Debug for EventRef<'_> {
    /// The fields, without the shared buffer (a whole record's bytes).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRef")
            .field("position", &self.position)
            .field("event_type", &self.event_type)
            .field("tags", &self.tags.collect::<Vec<_>>())
            .field("data", &Bytes::copy_from_slice(self.data))
            .field("metadata", &Bytes::copy_from_slice(self.metadata))
            .field("id", &self.id)
            .field("stream", &self.stream)
            .field("revision", &self.revision)
            .field("timestamp_micros", &self.timestamp_micros)
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

/// Whether `part` lies inside `buffer` (which `Bytes::slice_ref` needs).
fn within(buffer: &[u8], part: &[u8]) -> bool {
    let outer = buffer.as_ptr_range();
    let inner = part.as_ptr_range();
    outer.start <= inner.start && inner.end <= outer.end
}

impl<'a> From<&'a RecordedEvent> for EventRef<'a> {
    fn from(e: &'a RecordedEvent) -> EventRef<'a> {
        EventRef {
            position: e.position,
            event_type: &e.event_type,
            tags: Tags::strings(&e.tags),
            data: &e.data,
            metadata: &e.metadata,
            id: e.id,
            stream: e.stream.as_deref(),
            revision: e.revision,
            timestamp_micros: e.timestamp_micros,
            shared: None,
        }
    }
}

/// Lends owned events to `f` one by one until it breaks off or an error
/// comes (returned): how a store or read without borrowed buffers lends.
pub(crate) fn lend_owned(
    events: impl IntoIterator<Item = crate::error::Result<RecordedEvent>>,
    f: &mut dyn FnMut(EventRef<'_>) -> std::ops::ControlFlow<()>,
) -> crate::error::Result<()> {
    for e in events {
        if f(EventRef::from(&e?)).is_break() {
            break;
        }
    }
    Ok(())
}

/// The tags of an [`EventRef`], in order — the event's own, then those
/// added to it later ([`add_tags`](crate::EventStore::add_tags)): an
/// iterator over borrowed strings that allocates nothing.
#[derive(Clone, Copy, Debug)]
pub struct Tags<'a>(Source<'a>, &'a [Arc<str>]);

#[derive(Clone, Copy, Debug)]
enum Source<'a> {
    /// The engine's encoding: `left` tags, each a length (a byte, or a
    /// varint if `wide`) and that many bytes of UTF-8, checked when the
    /// event was decoded.
    Encoded {
        bytes: &'a [u8],
        left: usize,
        wide: bool,
    },
    /// The same, when the whole stretch is UTF-8 (every length below 128):
    /// each tag is cut from it without checking its UTF-8 again.
    Text {
        text: &'a str,
        left: usize,
    },
    Strs(&'a [&'a str]),
    Strings(&'a [String]),
}

impl<'a> Tags<'a> {
    /// Tags held as a slice of strings.
    pub fn strs(tags: &'a [&'a str]) -> Tags<'a> {
        Tags(Source::Strs(tags), &[])
    }

    /// Tags held as owned strings.
    pub fn strings(tags: &'a [String]) -> Tags<'a> {
        Tags(Source::Strings(tags), &[])
    }

    /// `count` tags encoded in `bytes` as the codec writes them, with
    /// varint lengths if `wide`; the caller has checked their bounds and
    /// UTF-8.
    pub(crate) fn encoded(bytes: &'a [u8], count: usize, wide: bool) -> Tags<'a> {
        Tags(
            Source::Encoded {
                bytes,
                left: count,
                wide,
            },
            &[],
        )
    }

    /// [`encoded`](Self::encoded) tags whose whole stretch is UTF-8.
    pub(crate) fn text(text: &'a str, count: usize) -> Tags<'a> {
        Tags(Source::Text { text, left: count }, &[])
    }

    /// These tags followed by `added`, the tags added to the event after it
    /// was committed.
    pub(crate) fn with_added(self, added: &'a [Arc<str>]) -> Tags<'a> {
        Tags(self.0, added)
    }
}

/// A LEB128 length at the start of `b`, and the bytes after it.
fn length_varint(b: &[u8]) -> Option<(usize, &[u8])> {
    let mut n = 0usize;
    for (i, &byte) in b.iter().take(5).enumerate() {
        n |= usize::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((n, &b[i + 1..]));
        }
    }
    None
}

impl<'a> Iterator for Tags<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        match self.own() {
            Some(tag) => Some(tag),
            None => {
                let (first, rest) = self.1.split_first()?;
                self.1 = rest;
                Some(first)
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match self.0 {
            Source::Encoded { left, .. } | Source::Text { left, .. } => left,
            Source::Strs(l) => l.len(),
            Source::Strings(l) => l.len(),
        } + self.1.len();
        (n, Some(n))
    }
}

impl<'a> Tags<'a> {
    /// The next of the event's own tags.
    fn own(&mut self) -> Option<&'a str> {
        match &mut self.0 {
            Source::Encoded { bytes, left, wide } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let (n, rest) = if *wide {
                    length_varint(bytes)?
                } else {
                    let (&n, rest) = bytes.split_first()?;
                    (usize::from(n), rest)
                };
                let (tag, rest) = rest.split_at_checked(n)?;
                *bytes = rest;
                // Checked when the event was decoded: an error here cannot
                // occur, and would read as an empty tag, not a panic.
                Some(std::str::from_utf8(tag).unwrap_or_default())
            }
            Source::Text { text, left } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let n = usize::from(*text.as_bytes().first()?);
                let tag = text.get(1..1 + n)?;
                *text = text.get(1 + n..)?;
                Some(tag)
            }
            Source::Strs(list) => {
                let (first, rest) = list.split_first()?;
                *list = rest;
                Some(first)
            }
            Source::Strings(list) => {
                let (first, rest) = list.split_first()?;
                *list = rest;
                Some(first)
            }
        }
    }
}

impl ExactSizeIterator for Tags<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> RecordedEvent {
        RecordedEvent {
            position: 7,
            event_type: "Opened".into(),
            tags: vec!["a:1".into(), "b:2".into()],
            data: Bytes::from_static(b"data"),
            metadata: Bytes::from_static(b"meta"),
            id: Some(9),
            stream: Some("s".into()),
            revision: Some(3),
            timestamp_micros: 11,
        }
    }

    #[test]
    fn an_owned_event_round_trips_through_its_view() {
        let e = event();
        let view = EventRef::from(&e);
        assert_eq!(view.tags.len(), 2);
        assert_eq!(view.tags.collect::<Vec<_>>(), ["a:1", "b:2"]);
        assert_eq!(view.to_owned(), e);
    }

    #[test]
    fn encoded_tags_read_in_order_and_stop_at_their_count() {
        let bytes = [3, b'a', b':', b'1', 1, b'b', 2, b'z', b'z'];
        let tags = Tags::encoded(&bytes, 2, false);
        assert_eq!(tags.len(), 2);
        assert_eq!(tags.collect::<Vec<_>>(), ["a:1", "b"]);
        // A count beyond the bytes ends the iterator instead of panicking.
        assert_eq!(
            Tags::encoded(&bytes[..3], 2, false)
                .collect::<Vec<_>>()
                .len(),
            0
        );
        assert_eq!(Tags::strs(&["x", "y"]).collect::<Vec<_>>(), ["x", "y"]);
        let text = std::str::from_utf8(&bytes).unwrap();
        assert_eq!(Tags::text(text, 2).collect::<Vec<_>>(), ["a:1", "b"]);
        assert_eq!(Tags::text(&text[..3], 2).collect::<Vec<_>>().len(), 0);
        let added: Vec<Arc<str>> = vec!["new:1".into(), "new:2".into()];
        let tags = Tags::encoded(&bytes, 2, false).with_added(&added);
        assert_eq!(tags.len(), 4);
        assert_eq!(tags.collect::<Vec<_>>(), ["a:1", "b", "new:1", "new:2"]);
    }

    #[test]
    fn debug_shows_the_event_not_its_buffer() {
        let buffer = Bytes::from(vec![b'z'; 10_000]);
        let e = event();
        let mut view = EventRef::from(&e);
        view.shared = Some(&buffer);
        let shown = format!("{view:?}");
        assert!(shown.contains("Opened") && shown.contains("a:1"), "{shown}");
        assert!(shown.len() < 500, "{shown}");
    }

    #[test]
    fn data_of_a_shared_buffer_is_shared_not_copied() {
        let buffer = Bytes::from_static(b"xxdatameta");
        let e = event();
        let mut view = EventRef::from(&e);
        view.data = &buffer[2..6];
        view.metadata = &buffer[6..];
        view.shared = Some(&buffer);
        let owned = view.to_owned();
        assert_eq!(&owned.data[..], b"data");
        assert_eq!(owned.data.as_ptr(), buffer[2..].as_ptr());
        assert_eq!(owned.metadata.as_ptr(), buffer[6..].as_ptr());
        // A part outside the buffer is copied, not a panic.
        let other = Bytes::from_static(b"elsewhere");
        view.shared = Some(&other);
        assert_eq!(view.to_owned().data, Bytes::from_static(b"data"));
    }
}
