//! Index run files: round trips of random posting lists, and hostile bytes
//! that must be rejected or at least never make a reader panic or loop.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use gesta_index::{Cursor, Direction, Key, Positions, Run, write_run};
use proptest::prelude::*;

/// Random keys (any kind byte, any name) with random ascending lists,
/// mixing dense runs of positions and huge gaps, and event ids of one
/// position each (which a run keeps in its id section) or of several.
fn lists() -> impl Strategy<Value = BTreeMap<Vec<u8>, BTreeSet<u64>>> {
    let ids = prop::collection::btree_map(
        any::<u128>(),
        prop::collection::btree_set(any::<u64>(), 1..3),
        0..40,
    );
    (keyed(), ids).prop_map(|(mut lists, ids)| {
        for (id, positions) in ids {
            lists.insert(Key::id(id).as_bytes().to_vec(), positions);
        }
        lists
    })
}

fn keyed() -> impl Strategy<Value = BTreeMap<Vec<u8>, BTreeSet<u64>>> {
    let positions = prop_oneof![
        prop::collection::btree_set(any::<u64>(), 1..50),
        (any::<u64>(), 1usize..700, 1u64..40).prop_map(|(start, n, step)| {
            (0..n as u64)
                .filter_map(|i| start.checked_add(i * step))
                .collect()
        }),
    ];
    prop::collection::btree_map(prop::collection::vec(any::<u8>(), 1..20), positions, 0..12)
}

fn encode(lists: &BTreeMap<Vec<u8>, BTreeSet<u64>>) -> Vec<u8> {
    let entries = lists
        .iter()
        .map(|(k, v)| (Key::from_bytes(k), v.iter().copied().collect()));
    write_run(entries, (1, u64::MAX))
}

fn fix_crc(bytes: &mut [u8]) {
    let at = bytes.len() - 12;
    let crc = crc32fast::hash(&bytes[..at]);
    bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Uses every reading API of an opened run; everything must terminate,
/// stay in bounds and return ascending positions.
fn exercise(run: &Run, probes: &[u64]) {
    let keys: Vec<(Key, Vec<u64>)> = run.iter().collect();
    assert!(keys.len() as u64 <= run.keys());
    let walked: Vec<(Vec<u8>, u64)> = run.keys_from(&[]).map(|(k, n)| (k.to_vec(), n)).collect();
    assert!(walked.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(walked.len() as u64 <= run.keys());
    for (key, list) in &keys {
        assert!(list.windows(2).all(|w| w[0] < w[1]));
        let _ = (
            run.contains(key),
            run.count(key),
            run.first(key),
            run.last(key),
        );
        if let Some(c) = run.cursor(key) {
            let fwd: Vec<u64> = Positions::new(c, 0, u64::MAX, Direction::Forwards).collect();
            assert!(fwd.windows(2).all(|w| w[0] < w[1]));
        }
        if let Some(c) = run.cursor(key) {
            let back: Vec<u64> = Positions::new(c, 0, u64::MAX, Direction::Backwards).collect();
            assert!(back.windows(2).all(|w| w[0] > w[1]));
        }
        if let Some(mut c) = run.cursor(key) {
            for &t in probes {
                if let Some(p) = c.seek_ge(t) {
                    assert!(p >= t);
                }
                if let Some(p) = c.seek_le(t) {
                    assert!(p <= t);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn round_trip(lists in lists(), unknown in prop::collection::vec(any::<u8>(), 1..20), probes in prop::collection::vec(any::<u64>(), 0..50)) {
        let run = Run::open(Bytes::from(encode(&lists))).unwrap();
        prop_assert_eq!(run.keys(), lists.len() as u64);
        prop_assert_eq!(run.postings(), lists.values().map(|v| v.len() as u64).sum::<u64>());
        let got: Vec<(Key, Vec<u64>)> = run.iter().collect();
        let want: Vec<(Key, Vec<u64>)> = lists.iter().map(|(k, v)| (Key::from_bytes(k), v.iter().copied().collect())).collect();
        prop_assert_eq!(got, want);
        for (k, v) in &lists {
            let key = Key::from_bytes(k);
            prop_assert!(run.contains(&key));
            prop_assert_eq!(run.count(&key), v.len() as u64);
            prop_assert_eq!(run.first(&key), v.first().copied());
            prop_assert_eq!(run.last(&key), v.last().copied());
            let mut c = run.cursor(&key).unwrap();
            for &t in &probes {
                prop_assert_eq!(c.seek_ge(t), v.range(t..).next().copied());
                prop_assert_eq!(c.seek_le(t), v.range(..=t).next_back().copied());
            }
        }
        // Keys from a start, from the directory and the id section merged.
        let from: Vec<(Vec<u8>, u64)> = run.keys_from(&unknown).map(|(k, n)| (k.to_vec(), n)).collect();
        let want_from: Vec<(Vec<u8>, u64)> = lists.range(unknown.clone()..).map(|(k, v)| (k.clone(), v.len() as u64)).collect();
        prop_assert_eq!(from, want_from);
        if !lists.contains_key(&unknown) {
            let key = Key::from_bytes(&unknown);
            prop_assert!(!run.contains(&key));
            prop_assert!(run.cursor(&key).is_none());
        }
        exercise(&run, &probes);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400), magic in any::<bool>()) {
        let mut bytes = bytes;
        if magic && bytes.len() >= 16 {
            // Get past the cheap checks, to the checksum.
            bytes[..8].copy_from_slice(b"GESTAIDX");
            let n = bytes.len();
            bytes[n - 8..].copy_from_slice(b"GESTAIDX");
        }
        prop_assert!(Run::open(Bytes::from(bytes)).is_err());
    }

    #[test]
    fn truncations_are_rejected(lists in lists(), cut in any::<prop::sample::Index>()) {
        let bytes = encode(&lists);
        let len = cut.index(bytes.len());
        prop_assert!(Run::open(Bytes::copy_from_slice(&bytes[..len])).is_err());
    }

    /// Damage behind a valid checksum (a buggy writer, or a forged file):
    /// open may accept or reject it, but nothing may panic or loop.
    #[test]
    fn damage_behind_the_checksum_never_panics(
        lists in lists(),
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        probes in prop::collection::vec(any::<u64>(), 0..30),
    ) {
        let mut bytes = encode(&lists);
        let body = bytes.len() - 12;
        for (at, value) in damage {
            bytes[at.index(body)] = value;
        }
        fix_crc(&mut bytes);
        if let Ok(run) = Run::open(Bytes::from(bytes)) {
            exercise(&run, &probes);
        }
    }
}

/// Damage confined to the postings area passes every structural check at
/// open (the varints are only decoded on demand), so this reaches the
/// decoders with bad bytes for certain.
#[test]
fn damaged_varints_are_contained() {
    let lists: Vec<(Key, Vec<u64>)> = vec![
        (Key::event_type("a"), (1..=1000).map(|i| i * 300).collect()),
        (Key::tag("b"), (1..=300).collect()),
    ];
    let good = write_run(lists, (1, 300_000));
    let skip_off =
        u64::from_le_bytes(good[good.len() - 88..good.len() - 80].try_into().unwrap()) as usize;
    let mut opened = 0;
    for at in 16..skip_off {
        for value in [0x00, 0x80, 0xff, 0x01] {
            let mut bad = good.clone();
            bad[at] = value;
            fix_crc(&mut bad);
            if let Ok(run) = Run::open(Bytes::from(bad)) {
                opened += 1;
                exercise(&run, &[0, 1, 299, 300, 301, 150_000, u64::MAX]);
            }
        }
    }
    assert!(opened > 1000, "only {opened} damaged runs opened");
}
