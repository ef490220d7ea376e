//! Warming the records a reader is about to look up.
//!
//! A read through the index visits positions scattered over the log, and
//! each lookup waits on a few cache misses in turn: the record's frame, its
//! head, then its event. Looked up one by one, those waits add up. Given
//! the next positions at once, [`WalReader::warm`] touches the frames of
//! all of them before the heads of any, so that the misses overlap, and
//! hands back where each event's payload lies for the caller (who knows the
//! payload's layout) to do the same for the events. Nothing is verified
//! here and nothing read here is trusted: a value that does not make sense
//! only means less is warmed; the lookups that follow check everything.

use crate::format::{self, FRAME_LEN, HEAD_FIELDS_LEN};
use crate::heads::KeptHead;
use crate::lines::{touch, touch_lines};
use crate::reader::{Place, WalReader};

/// Where the event at a position lies, found by [`WalReader::warm`]: the
/// payload of its record in the mapped segment, and its index there.
/// Borrowed from the places warming found, so that handing it over costs
/// no reference count.
#[derive(Clone, Copy, Debug)]
pub struct MappedPayload<'a> {
    /// The record's payload, from the segment's map.
    pub payload: &'a [u8],
    /// The event's index in the record.
    pub index: u32,
    /// The record's event count.
    pub count: u32,
    /// The record's kept head, if it is kept.
    kept: Option<&'a KeptHead>,
}

impl<'a> MappedPayload<'a> {
    /// A payload found without a kept head (for tests of what warms it).
    pub fn new(payload: &'a [u8], index: u32, count: u32) -> MappedPayload<'a> {
        MappedPayload {
            payload,
            index,
            count,
            kept: None,
        }
    }

    /// What the payload's owner derived from the record's kept head (see
    /// [`RecordHead::derived`](crate::RecordHead::derived)), if it did.
    pub fn derived<T: std::any::Any + Send + Sync>(&self) -> Option<&'a T> {
        self.kept?.built()
    }
}

impl WalReader {
    /// Warms the records holding `positions` and hands `events` where the
    /// events lie, for those whose record is the first of its stretch of
    /// the offset table in a plain, mapped segment (the others are reached
    /// from there by the lookup itself; compressed and evicted segments are
    /// left alone), for the caller to warm them. Appends to `places` one
    /// entry per position, in order: where its record was found, for
    /// [`record_head_at`](Self::record_head_at), or `None`.
    pub fn warm(
        &self,
        positions: &[u64],
        places: &mut Vec<Option<Place>>,
        events: impl FnOnce(&[MappedPayload<'_>]),
    ) {
        let from = places.len();
        self.place_each(positions, places);
        let placed = &places[from..];
        // The frame and fixed fields, read next, may straddle two lines.
        touch(
            placed
                .iter()
                .flatten()
                .filter(|p| p.kept.is_none())
                .flat_map(|p| {
                    [
                        (p.stretch.as_ref(), 0),
                        (p.stretch.as_ref(), HEAD_FIELDS_LEN - 1),
                    ]
                }),
        );
        let mut found = Vec::with_capacity(positions.len());
        for (place, &position) in placed.iter().zip(positions) {
            let Some(Place { stretch, kept, .. }) = place else {
                continue;
            };
            let (total, first, count, payload_at) = match kept {
                Some(k) => (k.total, k.meta.first_position, k.meta.count, k.head_len),
                None if stretch.len() < HEAD_FIELDS_LEN => continue,
                None => (
                    FRAME_LEN + format::u32_at(stretch, 0) as usize,
                    format::u64_at(stretch, FRAME_LEN),
                    format::u32_at(stretch, FRAME_LEN + 8),
                    format::head_len(stretch),
                ),
            };
            let index = position.wrapping_sub(first);
            if total > stretch.len() || payload_at > total || index >= u64::from(count) {
                continue;
            }
            found.push(MappedPayload {
                payload: &stretch[payload_at..total],
                index: index as u32,
                count,
                kept: kept.as_deref(),
            });
        }
        // The heads' checksums read every line of them, but a kept head's
        // is not checked again.
        for p in placed.iter().flatten() {
            if p.stretch.len() >= HEAD_FIELDS_LEN && p.kept.is_none() {
                touch_lines(&p.stretch, HEAD_FIELDS_LEN, format::head_len(&p.stretch));
            }
        }
        events(&found);
    }

    /// Appends where the record holding each of `positions` lies, if in a
    /// plain, mapped segment: one lock of the segment list, of each
    /// segment and of the kept heads for all of them, not a few per
    /// position.
    fn place_each(&self, positions: &[u64], places: &mut Vec<Option<Place>>) {
        let from = places.len();
        let mut stretches = Vec::with_capacity(positions.len());
        self.segments().find_runs(positions, |run, segment| {
            let Some(segment) = segment else {
                places.extend(run.iter().map(|_| None));
                return;
            };
            stretches.clear();
            segment.mapped_stretches(run, &mut stretches);
            places.extend(stretches.drain(..).map(|found| {
                found.map(|(start, stretch)| Place {
                    segment: segment.clone(),
                    start,
                    stretch,
                    kept: None,
                })
            }));
        });
        // Sized for every place: collected from a flattened iterator, the
        // list would grow a few times a window.
        let mut keys = Vec::with_capacity(places.len() - from);
        keys.extend(
            places[from..]
                .iter()
                .flatten()
                .map(|p| (p.segment.first_position(), p.start)),
        );
        let mut placed = places[from..].iter_mut().flatten();
        self.heads.get_each(keys.into_iter(), |kept| {
            if let Some(p) = placed.next() {
                p.kept = kept;
            }
        });
    }
}
