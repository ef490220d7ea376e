//! What lifecycle operations changed about committed events, by position,
//! as reads apply it: the tags added after the fact ([`add_tags`]), which a
//! read puts after an event's own, and the events redacted ([`redact`]),
//! which a read returns with empty data and metadata, and the events
//! removed ([`remove`] and the stream and retention operations built on
//! it), which no read returns. The index's half
//! (the overlay a query reads) is in `indexes`; the durable half, the
//! journal that both are rebuilt from on open, in `store::lifecycle`.
//!
//! [`add_tags`]: crate::EventStore::add_tags
//! [`redact`]: crate::EventStore::redact
//! [`remove`]: crate::EventStore::remove

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gesta_index::{Hidden, Key};
use parking_lot::RwLock;

use crate::view::EventRef;

/// Tags added to events and events redacted, by position.
#[derive(Debug, Default)]
pub(crate) struct Amendments {
    tags: RwLock<HashMap<u64, Arc<[Arc<str>]>>>,
    redacted: RwLock<BTreeSet<u64>>,
    /// The events removed, as the index view hides them too.
    removed: RwLock<Arc<Hidden>>,
    /// Whether any event has added tags, whether any was redacted: a read
    /// skips the map (and its lock) that holds nothing.
    any_tags: AtomicBool,
    any_redacted: AtomicBool,
    any_removed: AtomicBool,
}

/// What a read must change about one event.
#[derive(Debug, Default)]
pub(crate) struct Amended {
    tags: Option<Arc<[Arc<str>]>>,
    redacted: bool,
    removed: bool,
}

impl Amended {
    /// Whether the event was removed: a read skips it.
    pub(crate) fn removed(&self) -> bool {
        self.removed
    }

    /// `e` as amended: the added tags after its own, data and metadata
    /// empty if redacted.
    pub(crate) fn apply<'b, 'a: 'b>(&'b self, e: EventRef<'a>) -> EventRef<'b> {
        let mut e = match &self.tags {
            Some(tags) => e.with_added(tags),
            None => e,
        };
        if self.redacted {
            e.data = &[];
            e.metadata = &[];
        }
        e
    }

    /// The same for an owned event.
    pub(crate) fn apply_owned(&self, e: &mut crate::event::RecordedEvent) {
        if let Some(tags) = &self.tags {
            e.tags.extend(tags.iter().map(|t| t.to_string()));
        }
        if self.redacted {
            e.data = bytes::Bytes::new();
            e.metadata = bytes::Bytes::new();
        }
    }
}

impl Amendments {
    /// Whether any event was ever amended (tags added, redacted or
    /// removed): if not, [`get`](Self::get) has nothing to say of any.
    pub(crate) fn any(&self) -> bool {
        self.any_tags.load(Ordering::Acquire)
            || self.any_redacted.load(Ordering::Acquire)
            || self.any_removed.load(Ordering::Acquire)
    }

    /// What changed about the event at `position`.
    pub(crate) fn get(&self, position: u64) -> Amended {
        let tags = match self.any_tags.load(Ordering::Acquire) {
            true => self.tags.read().get(&position).cloned(),
            false => None,
        };
        Amended {
            tags,
            redacted: self.is_redacted(position),
            removed: self.is_removed(position),
        }
    }

    /// Amends the owned events `events[from..]` as reads return them: the
    /// removed ones left out, the others with their added tags and
    /// without their redacted data.
    pub(crate) fn amend_tail(&self, events: &mut Vec<crate::event::RecordedEvent>, from: usize) {
        if !self.any() {
            return;
        }
        let mut kept = from;
        for i in from..events.len() {
            let amended = self.get(events[i].position);
            if amended.removed() {
                continue;
            }
            amended.apply_owned(&mut events[i]);
            events.swap(kept, i);
            kept += 1;
        }
        events.truncate(kept);
    }

    /// Whether the event at `position` was removed.
    pub(crate) fn is_removed(&self, position: u64) -> bool {
        self.any_removed.load(Ordering::Acquire) && self.removed.read().contains(position)
    }

    /// The removed positions and how many removed events carried each
    /// key, for the index view to hide.
    pub(crate) fn hidden(&self) -> Arc<Hidden> {
        self.removed.read().clone()
    }

    /// Marks the events at `positions` (ascending, none removed yet)
    /// removed by lifecycle journal entry `sequence`; `keys` are the index
    /// keys they carried whose postings the runs still hold.
    pub(crate) fn remove(
        &self,
        positions: &[u64],
        keys: impl IntoIterator<Item = Key>,
        sequence: u64,
    ) {
        if positions.is_empty() {
            return;
        }
        let mut removed = self.removed.write();
        *removed = Arc::new(removed.with(positions, keys).at_sequence(sequence));
        self.any_removed.store(true, Ordering::Release);
    }

    /// Counts `counts` more removed events per key (kept from a purge).
    pub(crate) fn count_removed(&self, counts: &[(Key, u64)]) {
        let mut removed = self.removed.write();
        *removed = Arc::new(removed.counting(counts));
    }

    /// Stops counting the postings a purging merge dropped from the runs.
    pub(crate) fn discount(&self, dropped: &std::collections::BTreeMap<Key, u64>) {
        let mut removed = self.removed.write();
        *removed = Arc::new(removed.discounted(dropped));
    }

    /// Whether the bytes of the event at `position` are to leave the log's
    /// files: it was redacted or removed.
    pub(crate) fn is_erasable(&self, position: u64) -> bool {
        self.is_redacted(position) || self.is_removed(position)
    }

    /// Every position whose bytes are to leave the log's files, ascending.
    pub(crate) fn erasable(&self) -> Vec<u64> {
        let redacted = self.redacted.read();
        let removed = self.removed.read();
        let mut all: Vec<u64> = redacted.iter().copied().collect();
        all.extend(removed.positions());
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Whether the event at `position` was redacted.
    pub(crate) fn is_redacted(&self, position: u64) -> bool {
        self.any_redacted.load(Ordering::Acquire) && self.redacted.read().contains(&position)
    }

    /// Adds `tags` (in order) to the events at `gained[i]`'s positions:
    /// `gained[i]` lists the positions that gain `tags[i]`.
    pub(crate) fn add_tags(&self, tags: &[String], gained: &[Vec<u64>]) {
        let mut per_position: HashMap<u64, Vec<Arc<str>>> = HashMap::new();
        for (tag, positions) in tags.iter().zip(gained) {
            let tag: Arc<str> = Arc::from(tag.as_str());
            for &p in positions {
                per_position.entry(p).or_default().push(tag.clone());
            }
        }
        if per_position.is_empty() {
            return;
        }
        let mut map = self.tags.write();
        for (p, new) in per_position {
            let merged: Arc<[Arc<str>]> = match map.get(&p) {
                Some(old) => old.iter().cloned().chain(new).collect(),
                None => new.into(),
            };
            map.insert(p, merged);
        }
        self.any_tags.store(true, Ordering::Release);
    }

    /// Marks the events at `positions` redacted.
    pub(crate) fn redact(&self, positions: &[u64]) {
        if positions.is_empty() {
            return;
        }
        self.redacted.write().extend(positions.iter().copied());
        self.any_redacted.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_accumulate_in_order_per_position_and_redactions_blank_data() {
        let amendments = Amendments::default();
        assert!(amendments.get(1).tags.is_none() && !amendments.get(1).redacted);
        amendments.add_tags(&["a".into(), "b".into()], &[vec![1, 2], vec![2]]);
        amendments.add_tags(&["c".into()], &[vec![2]]);
        amendments.redact(&[2]);
        let mut e = crate::event::RecordedEvent {
            position: 2,
            event_type: "T".into(),
            tags: vec!["own".into()],
            data: bytes::Bytes::from_static(b"secret"),
            metadata: bytes::Bytes::from_static(b"meta"),
            id: None,
            stream: None,
            revision: None,
            timestamp_micros: 0,
        };
        let amended = amendments.get(2);
        let view = amended.apply(EventRef::from(&e));
        assert_eq!(view.tags.collect::<Vec<_>>(), ["own", "a", "b", "c"]);
        assert!(view.data.is_empty() && view.metadata.is_empty());
        amended.apply_owned(&mut e);
        assert_eq!(e.tags, ["own", "a", "b", "c"]);
        assert!(e.data.is_empty() && e.metadata.is_empty());
        assert!(!amendments.get(1).redacted);
        assert!(amendments.get(3).tags.is_none());
        assert_eq!(amendments.erasable(), [2]);
    }
}
