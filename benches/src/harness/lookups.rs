//! R5–R7, the lookups: a whole stream by revision (`read_stream_each`),
//! an event by its id (`event_by_id_with`) and a position by commit time
//! (`position_at`), each run against one `&dyn EventStore` holding the
//! standard data with an id on every event ([`load_with_ids`]).
//!
//! The standard data names one of 10,000 streams per event, so the
//! 1,000,000 events of the full sizes make streams of about 100 events
//! each, interleaved as independent aggregates' events are. Ids are not in
//! the standard data (they would change W3 and D1), so the lookups get a
//! store of their own. Every lookup checks what it got — the stream's
//! revisions in order, the event with the id at its position, a position
//! within the store — so that a wrong answer fails the workload instead of
//! being timed.

use std::hint::black_box;
use std::ops::ControlFlow;

use gesta::{EventStore, Query, ReadOptions};

use super::HarnessError;
use super::workloads::{LOAD_BATCH, Outcome, look_at, time_calls};
use crate::{EventGen, SEED, STREAMS, SplitMix64};

/// The lookup workloads, in table order.
pub const LOOKUPS: [&str; 3] = ["R5", "R6", "R7"];

/// Mixed into [`SEED`] for the ids, and for each workload's random picks.
const ID_SALT: u64 = 0x6964_7321;
const PICK_SALT: u64 = 0x7069_636b;

/// The id of the standard data's event numbered `seq` (from 0; it sits at
/// position `seq + 1` of a store loaded by [`load_with_ids`]): 128 bits
/// that look random, as UUIDv4 ids do, and differ for every `seq` (the
/// high half is SplitMix64's output for a state unique to `seq`).
pub fn event_id(seq: u64) -> u128 {
    let mut rng = SplitMix64::new((SEED ^ ID_SALT).wrapping_add(seq.wrapping_mul(2)));
    let hi = rng.next_u64();
    let lo = rng.next_u64();
    (u128::from(hi) << 64) | u128::from(lo)
}

/// Appends the first `n` events of the standard data, each with its
/// [`event_id`], [`LOAD_BATCH`] per append (untimed).
pub fn load_with_ids(store: &dyn EventStore, n: u64) -> Result<(), HarnessError> {
    let mut generator = EventGen::new(SEED);
    let mut seq = 0;
    while seq < n {
        let k = (n - seq).min(LOAD_BATCH as u64);
        let batch = generator
            .batch(k as usize)
            .into_iter()
            .zip(seq..)
            .map(|(e, s)| e.id(event_id(s)))
            .collect();
        store.append(batch)?;
        seq += k;
    }
    Ok(())
}

/// Times `one(i)` for `i` in `0..n` after `n / 10` untimed warm-up calls
/// (`one(n + i)`, other picks than the timed ones); `extra` sums what the
/// calls return.
fn timed(
    n: usize,
    mut one: impl FnMut(usize) -> Result<u64, HarnessError>,
) -> Result<Outcome, HarnessError> {
    for i in 0..n / 10 {
        one(n + i)?;
    }
    time_calls(n, one)
}

/// `count` picks below `bound`, the same for every store (the picks of
/// workload `salt`).
fn picks(salt: u64, bound: u64, count: usize) -> Vec<u64> {
    let mut rng = SplitMix64::new(SEED ^ PICK_SALT ^ salt);
    (0..count).map(|_| rng.below_uniform(bound)).collect()
}

/// R5: `n` reads of a whole stream, forwards, each of a stream drawn at
/// random from the 10,000 of the standard data, lent through
/// [`EventStore::read_stream_each`] and looked at as [`count`] looks at an
/// event; `extra` counts the events read. Each event must be the stream's
/// next revision.
///
/// [`count`]: super::workloads::count
pub fn stream_reads(store: &dyn EventStore, n: usize) -> Result<Outcome, HarnessError> {
    let names: Vec<String> = picks(5, STREAMS as u64, n + n / 10)
        .into_iter()
        .map(|s| format!("stream-{s}"))
        .collect();
    timed(n, |i| {
        let name = &names[i];
        let mut read = 0u64;
        let mut wrong = None;
        store.read_stream_each(name, ReadOptions::forwards(), &mut |e| {
            if e.revision != Some(read) || e.stream != Some(name.as_str()) {
                wrong = Some(format!(
                    "R5: event {} of {name} has stream {:?} revision {:?}, expected revision {read}",
                    e.position, e.stream, e.revision
                ));
                return ControlFlow::Break(());
            }
            black_box(look_at(&e));
            read += 1;
            ControlFlow::Continue(())
        })?;
        match wrong {
            Some(w) => Err(w.into()),
            None => Ok(read),
        }
    })
}

/// R6: `n` lookups by id of events drawn at random among the store's
/// `events` (loaded by [`load_with_ids`]), each lent through
/// [`EventStore::event_by_id_with`] and looked at as R5 looks at an event;
/// `extra` counts the events found, which must be all of them, each at its
/// position with its id.
pub fn id_lookups(store: &dyn EventStore, events: u64, n: usize) -> Result<Outcome, HarnessError> {
    if events == 0 {
        return Err("R6 needs a store with events".into());
    }
    let seqs = picks(6, events, n + n / 10);
    timed(n, |i| {
        let seq = seqs[i];
        let id = event_id(seq);
        let mut got = None;
        let found = store.event_by_id_with(id, &mut |e| {
            got = Some((e.position, e.id));
            black_box((look_at(&e), e.stream, e.revision));
        })?;
        match got {
            Some(at) if found && at == (seq + 1, Some(id)) => Ok(1),
            other => Err(format!(
                "R6: id {id:032x} (position {}) gave {other:?} (found: {found})",
                seq + 1
            )
            .into()),
        }
    })
}

/// The commit times of a store's first and last events, µs.
pub fn time_range(store: &dyn EventStore) -> Result<(u64, u64), HarnessError> {
    let first = store
        .read(&Query::all(), ReadOptions::forwards().limit(1))?
        .next()
        .transpose()?;
    let last = store.read_last(&Query::all())?;
    match (first, last) {
        (Some(f), Some(l)) => Ok((f.timestamp_micros, l.timestamp_micros)),
        _ => Err("R7 needs a store with events".into()),
    }
}

/// R7: `n` calls of `position_at` with times drawn uniformly from the
/// store's range of commit times (`range`, from [`time_range`]); `extra`
/// sums the positions found. Each must lie within the store: at least 1
/// (no time is before the first event's) and at most the head.
pub fn time_lookups(
    store: &dyn EventStore,
    range: (u64, u64),
    n: usize,
) -> Result<Outcome, HarnessError> {
    let head = store.head()?;
    let (from, to) = range;
    let times: Vec<u64> = picks(7, to - from + 1, n + n / 10)
        .into_iter()
        .map(|d| from + d)
        .collect();
    timed(n, |i| {
        let position = store.position_at(times[i])?;
        if position == 0 || position > head {
            return Err(format!(
                "R7: position_at({}) = {position}, outside 1..={head}",
                times[i]
            )
            .into());
        }
        Ok(position)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_and_do_not_depend_on_the_run() {
        let ids: std::collections::HashSet<u128> = (0..100_000).map(event_id).collect();
        assert_eq!(ids.len(), 100_000);
        assert_eq!(event_id(7), event_id(7));
        assert_ne!(event_id(0) >> 64, event_id(1) >> 64);
    }
}
