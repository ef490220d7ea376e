//! The tags added to committed events after the fact ([`add_tags`]), by
//! position: what a read appends to an event's own tags. The index's half
//! (the overlay a query reads) is in `indexes`; the durable half, the
//! journal that both are rebuilt from on open, in `store::lifecycle`.
//!
//! [`add_tags`]: crate::EventStore::add_tags

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;

/// Tags added to events, by position, in the order they were added.
#[derive(Debug, Default)]
pub(crate) struct AddedTags {
    map: RwLock<HashMap<u64, Arc<[Arc<str>]>>>,
    /// Whether any event has added tags: reads of a store without any skip
    /// the map.
    any: AtomicBool,
}

impl AddedTags {
    /// The tags added to the event at `position`, if any.
    pub(crate) fn get(&self, position: u64) -> Option<Arc<[Arc<str>]>> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.map.read().get(&position).cloned()
    }

    /// Adds `tags` (in order) to the events at `gained[i]`'s positions:
    /// `gained[i]` lists the positions that gain `tags[i]`.
    pub(crate) fn add(&self, tags: &[String], gained: &[Vec<u64>]) {
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
        let mut map = self.map.write();
        for (p, new) in per_position {
            let merged: Arc<[Arc<str>]> = match map.get(&p) {
                Some(old) => old.iter().cloned().chain(new).collect(),
                None => new.into(),
            };
            map.insert(p, merged);
        }
        self.any.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_accumulate_in_order_per_position() {
        let added = AddedTags::default();
        assert!(added.get(1).is_none());
        added.add(&["a".into(), "b".into()], &[vec![1, 2], vec![2]]);
        added.add(&["c".into()], &[vec![2]]);
        let two = added.get(2).unwrap();
        let two: Vec<&str> = two.iter().map(|t| &**t).collect();
        assert_eq!(two, ["a", "b", "c"]);
        assert_eq!(added.get(1).unwrap().len(), 1);
        assert!(added.get(3).is_none());
    }
}
