//! Shared helpers for the test suites.
//!
//! - [`SplitMix64`]: a tiny seedable generator, so that a failing run can be
//!   replayed from the seed it prints;
//! - [`batch`] / [`expected_event`] / [`EventKey`]: a deterministic workload
//!   whose every event says, in the first bytes of its data, which writer
//!   thread appended it, in which of that thread's batches, at which index
//!   and in a batch of which length — so that after a crash the recovered
//!   events can be grouped back into batches and each one compared, field by
//!   field, with what was sent;
//! - [`read_all`] and [`check_event`]: reading a whole store back and
//!   comparing one event with its expectation.
#![deny(missing_docs)]

pub mod conformance;
pub mod durable_subscriptions;
pub mod encrypted_harness;
pub mod encryption;
pub mod files;
pub mod model;
pub mod postgres_harness;
pub mod sqlite_harness;
pub mod store_harness;
pub mod subscriptions;
pub mod tenants;

use gesta::{NewEvent, Query, ReadOptions, RecordedEvent, Store};

pub use gesta_wal::rng::SplitMix64;
use gesta_wal::rng::finalize;

/// Derives an independent seed from a seed and a list of numbers (e.g. a
/// run index, a thread number, a batch number).
pub fn derive_seed(seed: u64, parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(finalize(seed ^ 0x67_6573_7461), |acc, &p| {
            finalize(acc.wrapping_add(0x9E37_79B9_7F4A_7C15) ^ finalize(p.wrapping_add(1)))
        })
}

/// Which event of the workload a recovered event is: the writer thread, the
/// number of the batch among that thread's appends (from 0), the event's
/// index in its batch and the batch's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventKey {
    /// The writer thread.
    pub thread: u32,
    /// The batch number within the thread, from 0.
    pub seq: u32,
    /// The index of the event within its batch.
    pub index: u16,
    /// The number of events in the batch.
    pub len: u16,
}

/// First bytes of every workload event's data.
const MAGIC: [u8; 4] = *b"GsT1";
/// Length of the identifying header at the start of every event's data.
pub const KEY_LEN: usize = 16;
/// Most filler bytes after the header (so data is at most 2 KiB).
pub const MAX_FILLER: u64 = 2048 - KEY_LEN as u64;
/// Most events in one workload batch.
pub const MAX_BATCH: u64 = 5;
/// The stream names the workload uses; shared by all threads so that
/// revisions interleave across writers.
pub const STREAMS: [&str; 4] = ["account-1", "account-2", "order-7", "order-8"];
const TYPES: [&str; 6] = [
    "AccountOpened",
    "MoneyDeposited",
    "MoneyWithdrawn",
    "OrderPlaced",
    "OrderShipped",
    "X",
];

impl EventKey {
    fn encode(&self) -> [u8; KEY_LEN] {
        let mut b = [0u8; KEY_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..8].copy_from_slice(&self.thread.to_le_bytes());
        b[8..12].copy_from_slice(&self.seq.to_le_bytes());
        b[12..14].copy_from_slice(&self.index.to_le_bytes());
        b[14..16].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    /// Reads the key from the start of an event's data; `None` if the data
    /// does not start with one.
    pub fn decode(data: &[u8]) -> Option<EventKey> {
        let b = data.get(..KEY_LEN)?;
        if b[0..4] != MAGIC {
            return None;
        }
        let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let u16_at = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        Some(EventKey {
            thread: u32_at(4),
            seq: u32_at(8),
            index: u16_at(12),
            len: u16_at(14),
        })
    }
}

/// The batch that writer `thread` appends as its `seq`-th append in a run
/// seeded with `seed`: 1–5 events of assorted types, 0–3 tags, some with a
/// stream, some with an id, some with metadata, and data of 16 bytes to
/// 2 KiB that starts with the event's [`EventKey`]. The same arguments always
/// give the same batch.
pub fn batch(seed: u64, thread: u32, seq: u32) -> Vec<NewEvent> {
    let mut rng = SplitMix64::new(derive_seed(seed, &[u64::from(thread), u64::from(seq)]));
    let len = rng.range(1, MAX_BATCH) as u16;
    (0..len)
        .map(|index| {
            let key = EventKey {
                thread,
                seq,
                index,
                len,
            };
            event(&mut rng, key)
        })
        .collect()
}

fn event(rng: &mut SplitMix64, key: EventKey) -> NewEvent {
    let event_type = if rng.chance(1, 50) {
        // An event type at the documented length limit.
        "T".repeat(gesta::event::MAX_NAME_LEN)
    } else {
        TYPES[rng.below(TYPES.len() as u64) as usize].to_owned()
    };
    let filler = if rng.chance(1, 8) {
        0
    } else {
        rng.range(0, MAX_FILLER)
    };
    let mut data = vec![0u8; KEY_LEN + filler as usize];
    data[..KEY_LEN].copy_from_slice(&key.encode());
    rng.fill(&mut data[KEY_LEN..]);
    let mut e = NewEvent::new(event_type, data);
    for _ in 0..rng.below(4) {
        e = e.tag(format!("k{}:{}", rng.below(4), rng.below(50)));
    }
    if rng.chance(1, 3) {
        e = e.stream(STREAMS[rng.below(STREAMS.len() as u64) as usize]);
    }
    if rng.chance(1, 3) {
        let id = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
        e = e.id(id);
    }
    if rng.chance(1, 4) {
        let mut metadata = vec![0u8; rng.range(1, 64) as usize];
        rng.fill(&mut metadata);
        e = e.metadata(metadata);
    }
    e
}

/// What the event named by `key` must look like, or `None` if the workload
/// seeded with `seed` never produces such a key (the batch has another
/// length).
pub fn expected_event(seed: u64, key: EventKey) -> Option<NewEvent> {
    let mut events = batch(seed, key.thread, key.seq);
    if events.len() != usize::from(key.len) || key.index >= key.len {
        return None;
    }
    Some(events.swap_remove(usize::from(key.index)))
}

/// Compares a recovered event with what was appended; the error names the
/// first field that differs.
pub fn check_event(got: &RecordedEvent, want: &NewEvent) -> Result<(), String> {
    let at = got.position;
    if got.event_type != want.event_type {
        return Err(format!(
            "position {at}: type {:?}, expected {:?}",
            got.event_type, want.event_type
        ));
    }
    if got.tags != want.tags {
        return Err(format!(
            "position {at}: tags {:?}, expected {:?}",
            got.tags, want.tags
        ));
    }
    if got.data != want.data {
        return Err(format!(
            "position {at}: data differs ({} bytes, expected {})",
            got.data.len(),
            want.data.len()
        ));
    }
    if got.metadata != want.metadata {
        return Err(format!("position {at}: metadata differs"));
    }
    if got.id != want.id {
        return Err(format!(
            "position {at}: id {:?}, expected {:?}",
            got.id, want.id
        ));
    }
    if got.stream != want.stream {
        return Err(format!(
            "position {at}: stream {:?}, expected {:?}",
            got.stream, want.stream
        ));
    }
    if got.stream.is_some() != got.revision.is_some() {
        return Err(format!(
            "position {at}: stream {:?} with revision {:?}",
            got.stream, got.revision
        ));
    }
    Ok(())
}

/// Every event of the store, oldest first.
pub fn read_all(store: &Store) -> gesta::Result<Vec<RecordedEvent>> {
    store
        .read(&Query::all(), ReadOptions::forwards())?
        .collect()
}

/// Reads a `u64` from the environment variable `name`; `None` if it is
/// unset. Accepts decimal or `0x`-prefixed hexadecimal.
///
/// # Panics
///
/// If the variable is set but is not a number.
pub fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    let value = value.trim().replace('_', "");
    let parsed = match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={value:?} is not a number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_deterministic_and_self_describing() {
        for seq in 0..50 {
            let a = batch(7, 3, seq);
            assert_eq!(a, batch(7, 3, seq));
            assert!((1..=MAX_BATCH as usize).contains(&a.len()));
            for (i, e) in a.iter().enumerate() {
                let key = EventKey::decode(&e.data).unwrap();
                assert_eq!(
                    key,
                    EventKey {
                        thread: 3,
                        seq,
                        index: i as u16,
                        len: a.len() as u16
                    }
                );
                assert_eq!(expected_event(7, key).as_ref(), Some(e));
                assert!(e.data.len() <= 2048);
            }
        }
        assert_ne!(batch(7, 3, 0), batch(8, 3, 0));
    }

    #[test]
    fn derived_seeds_differ() {
        let mut seen = std::collections::HashSet::new();
        for a in 0..20 {
            for b in 0..20 {
                assert!(seen.insert(derive_seed(1, &[a, b])));
            }
        }
    }
}
