//! The checks an append must pass in the committer, in the order the
//! `EventStore` contract fixes: idempotency by event id, expected stream
//! revisions, then the DCB condition — each against the committed indices
//! plus the batches admitted earlier in the same commit group, which are
//! written but not yet indexed.

use gesta_index::{ItemSpec, Key, Positions, QuerySpec};

use crate::committer::{AppendRequest, Appended, Committer, Group};
use crate::error::{Error, Result};

/// Whether an event with `keys` matches `spec` (the group-local check; the
/// committed events are checked through the index).
fn matches(spec: &QuerySpec, keys: &[Key]) -> bool {
    spec.items.iter().any(|item: &ItemSpec| {
        (item.types.is_empty() || item.types.iter().any(|t| keys.contains(t)))
            && item.tags.iter().all(|t| keys.contains(t))
    })
}

impl Committer {
    /// The next revision of a stream: cached, or counted in the index.
    pub(crate) fn next_revision(&mut self, stream: &Key) -> u64 {
        if let Some(&next) = self.revisions.get(stream) {
            return next;
        }
        let next = self.indexes.view().count(stream);
        self.revisions.insert(stream.clone(), next);
        next
    }

    /// Runs every check; `Ok(Some(_))` is an idempotent retry of a committed
    /// (or earlier admitted) batch, to be answered with its positions.
    pub(crate) fn check(&mut self, group: &Group, a: &AppendRequest) -> Result<Option<Appended>> {
        if let Some(done) = self.check_ids(group, a)? {
            return Ok(Some(done));
        }
        for (key, name, expected) in &a.expected {
            let next = self.next_revision(key);
            let actual = next.checked_sub(1);
            if !expected.accepts(actual) {
                return Err(Error::WrongExpectedRevision {
                    stream: name.clone(),
                    expected: *expected,
                    actual,
                });
            }
        }
        if let Some((spec, after)) = &a.condition {
            let view = self.indexes.view();
            let head = self.writer.next_position() - 1;
            let mut committed = Positions::new(
                view.evaluate(spec),
                after.saturating_add(1),
                head,
                gesta_index::Direction::Forward,
            );
            if let Some(position) = committed.next() {
                return Err(Error::ConditionFailed { position });
            }
            if let Some(position) = self.group_conflict(group, spec, *after) {
                return Err(Error::ConditionFailed { position });
            }
        }
        if let Some((key, source, position)) = &a.tracking
            && let Some(stored) = self.tracked(key, source)?
            && *position <= stored
        {
            return Err(Error::TrackingConflict {
                source_name: source.clone(),
                position: *position,
                stored,
            });
        }
        Ok(None)
    }

    /// The stored tracking position of a source: cached (admitted batches
    /// update the cache), or read from the record of its last posting.
    fn tracked(&mut self, key: &Key, source: &str) -> Result<Option<u64>> {
        if let Some(&stored) = self.tracking.get(key) {
            return Ok(Some(stored));
        }
        let view = self.indexes.view();
        let stored = crate::store::tracking_at(&self.reader, &view, key, source)?;
        if let Some(stored) = stored {
            self.tracking.insert(key.clone(), stored);
        }
        Ok(stored)
    }

    fn group_conflict(&self, group: &Group, spec: &QuerySpec, after: u64) -> Option<u64> {
        group.admitted.iter().find_map(|a| {
            let events = a.events.as_ref()?;
            events.iter().enumerate().find_map(|(i, e)| {
                let position = a.appended.first + i as u64;
                (position > after && matches(spec, &e.keys)).then_some(position)
            })
        })
    }

    /// The idempotency rule. Ids repeated inside the batch were refused in
    /// the caller's thread.
    fn check_ids(&mut self, group: &Group, a: &AppendRequest) -> Result<Option<Appended>> {
        if a.events.iter().all(|e| e.id.is_none()) {
            return Ok(None);
        }
        let view = self.indexes.view();
        let found: Vec<Option<u64>> = a
            .events
            .iter()
            .map(|e| {
                e.id.and_then(|id| group.ids.get(&id).copied().or_else(|| view.lookup_id(id)))
            })
            .collect();
        let Some(first_found) = a.events.iter().zip(&found).find_map(|(e, f)| f.and(e.id)) else {
            return Ok(None);
        };
        let duplicate = Err(Error::DuplicateEventId { id: first_found });
        let Some(first) = found[0] else {
            return duplicate;
        };
        let count = a.events.len() as u64;
        let consecutive = found
            .iter()
            .enumerate()
            .all(|(i, f)| *f == Some(first + i as u64));
        if !consecutive {
            return duplicate;
        }
        let same = match group.batches.get(&first) {
            Some((n, payload)) => u64::from(*n) == count && payload == a.payload.bytes(),
            None => match self.reader.record_containing(first)? {
                Some(r) => {
                    r.meta.first_position == first
                        && u64::from(r.meta.count) == count
                        && r.payload == a.payload.bytes()
                }
                None => false,
            },
        };
        if same {
            Ok(Some(Appended {
                first,
                last: first + count - 1,
            }))
        } else {
            duplicate
        }
    }
}
