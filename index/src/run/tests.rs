use super::format::{BLOCK, CRC_FROM_END, FOOTER_LEN};
use super::*;
use crate::{Direction, Positions};

fn sample() -> Vec<(Key, Vec<u64>)> {
    vec![
        (Key::event_type("Big"), (1..=1000).map(|i| i * 3).collect()),
        (Key::event_type("Small"), vec![7]),
        (Key::tag("even"), (1..=600).map(|i| i * 2).collect()),
        (
            Key::tag("exact"),
            (1..=BLOCK as u64).map(|i| i * 5).collect(),
        ),
        (Key::stream("s"), vec![1, u64::MAX]),
        (Key::id(42), vec![9]),
    ]
}

fn open(entries: Vec<(Key, Vec<u64>)>, covers: (u64, u64)) -> Run {
    Run::open(Bytes::from(write_run(entries, covers))).unwrap()
}

/// Recomputes the checksum so that a deliberately damaged file gets past
/// it and exercises the checks behind it.
pub(crate) fn fix_crc(bytes: &mut [u8]) {
    let at = bytes.len() - CRC_FROM_END;
    let crc = crc32fast::hash(&bytes[..at]);
    bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn round_trip() {
    let run = open(sample(), (1, 3000));
    assert_eq!(run.covers(), (1, 3000));
    assert_eq!(run.keys(), 6);
    assert_eq!(run.postings(), 1000 + 1 + 600 + BLOCK as u64 + 2 + 1);
    assert_eq!(run.iter().collect::<Vec<_>>(), sample());
    for (key, list) in sample() {
        assert!(run.contains(&key));
        assert_eq!(run.count(&key), list.len() as u64);
        assert_eq!(run.first(&key), list.first().copied());
        assert_eq!(run.last(&key), list.last().copied());
    }
    assert_eq!(run.lookup_id(42), Some(9));
    assert_eq!(run.lookup_id(43), None);
    assert!(!run.contains(&Key::tag("odd")));
    assert_eq!(run.count(&Key::tag("odd")), 0);
    assert!(run.cursor(&Key::tag("odd")).is_none());
    assert!(run.last(&Key::tag("odd")).is_none());
}

#[test]
fn cursor_seeks_match_naive_everywhere() {
    let run = open(sample(), (1, 3000));
    for (key, list) in sample() {
        let top = list.last().copied().unwrap().min(3100);
        let mut fwd = run.cursor(&key).unwrap();
        let mut back = run.cursor(&key).unwrap();
        let mut jumpy = run.cursor(&key).unwrap();
        for t in 0..=top + 2 {
            let ge = list.iter().copied().find(|&p| p >= t);
            let le = list.iter().rev().copied().find(|&p| p <= t);
            assert_eq!(fwd.seek_ge(t), ge, "{key:?} ge {t}");
            assert_eq!(
                back.seek_le(top + 2 - t),
                list.iter().rev().copied().find(|&p| p <= top + 2 - t)
            );
            // Alternate directions and jump around on one cursor.
            let j = (t * 7919) % (top + 3);
            assert_eq!(
                jumpy.seek_ge(j),
                list.iter().copied().find(|&p| p >= j),
                "{key:?} ge {j}"
            );
            assert_eq!(jumpy.seek_le(t), le, "{key:?} le {t}");
        }
    }
}

/// A dense list is answered from a bitmap built on its first cursor (and
/// kept), a sparse or short one from the file; every seek of either, in
/// any order, answers as the list does.
#[test]
fn dense_lists_seek_through_bitmaps_as_the_file_does() {
    let dense: Vec<u64> = (1..=20_000u64)
        .filter(|p| p % 7 < 3 || p % 101 == 0)
        .collect();
    let sparse: Vec<u64> = (1..=20_000u64).step_by(97).collect();
    let short: Vec<u64> = (1..=2_000u64).collect();
    let entries = vec![
        (Key::event_type("Dense"), dense.clone()),
        (Key::event_type("Short"), short.clone()),
        (Key::tag("sparse"), sparse.clone()),
    ];
    let run = open(entries.clone(), (1, 20_000));
    assert_eq!(run.dense_bytes(), 0, "nothing is decoded before it is read");
    for (key, list) in &entries {
        let ge = |t: u64| list.get(list.partition_point(|&p| p < t)).copied();
        let le = |t: u64| {
            let i = list.partition_point(|&p| p <= t);
            i.checked_sub(1).map(|i| list[i])
        };
        let mut fwd = run.cursor(key).unwrap();
        let mut jumpy = run.found(key).unwrap().cursor;
        for t in 0..=20_002u64 {
            assert_eq!(fwd.seek_ge(t), ge(t), "{key:?} ge {t}");
            let j = (t * 7919) % 20_003;
            assert_eq!(jumpy.seek_ge(j), ge(j), "{key:?} ge {j}");
            assert_eq!(jumpy.seek_le(t), le(t), "{key:?} le {t}");
        }
    }
    // Only the dense list got a bitmap: one bit per position of its range.
    assert_eq!(run.dense_bytes(), 20_000usize.div_ceil(64) * 8);
    // More cursors share it.
    let _ = run.cursor(&Key::event_type("Dense")).unwrap();
    assert_eq!(run.dense_bytes(), 20_000usize.div_ceil(64) * 8);
}

#[test]
fn empty_run() {
    let run = open(Vec::new(), (1, 0));
    assert_eq!(run.keys(), 0);
    assert_eq!(run.iter().count(), 0);
    assert!(run.cursor(&Key::tag("a")).is_none());
}

#[test]
fn every_bit_flip_is_detected() {
    let entries = vec![
        (Key::event_type("T"), vec![1, 2, 300, 70_000]),
        (Key::tag("t"), vec![2, 5]),
        (Key::id(1), vec![3]),
    ];
    let good = write_run(entries, (1, 70_000));
    assert!(Run::open(Bytes::from(good.clone())).is_ok());
    for bit in 0..good.len() * 8 {
        let mut bad = good.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        match Run::open(Bytes::from(bad)) {
            Err(RunError::Corrupt { offset, .. }) => assert!(offset < good.len() as u64),
            Ok(_) => panic!("flip of bit {bit} not detected"),
        }
    }
}

#[test]
fn every_truncation_is_detected() {
    let good = write_run(sample(), (1, 3000));
    for len in 0..good.len() {
        assert!(
            Run::open(Bytes::copy_from_slice(&good[..len])).is_err(),
            "len {len}"
        );
    }
    let mut longer = good.clone();
    longer.push(0);
    assert!(Run::open(Bytes::from(longer)).is_err());
}

#[test]
fn structural_checks_behind_the_checksum() {
    let good = write_run(sample(), (1, 3000));
    let footer = good.len() - FOOTER_LEN;
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut v = good.clone();
    v[8] = 3;
    cases.push(("version", v));
    let mut v = good.clone();
    v[footer..footer + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    cases.push(("skip offset", v));
    let mut v = good.clone();
    v[footer + 48] += 1;
    cases.push(("key count", v));
    let mut v = good.clone();
    v[footer + 56] += 1;
    cases.push(("posting count", v));
    for (what, mut bytes) in cases {
        fix_crc(&mut bytes);
        assert!(Run::open(Bytes::from(bytes)).is_err(), "{what}");
    }
}

#[test]
fn unsorted_input_is_normalised() {
    let mut entries = sample();
    entries.reverse();
    entries.push((Key::tag("even"), vec![5000]));
    let run = open(entries, (1, 5000));
    let mut want = sample();
    want[2].1.push(5000);
    assert_eq!(run.iter().collect::<Vec<_>>(), want);
}

#[test]
fn error_display_names_offset() {
    let err = Run::open(Bytes::from_static(b"short")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "corrupt index run at offset 0: shorter than a header and a footer"
    );
}

/// SplitMix64 from `state`: ids that look random, the same every run.
fn split_mix(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Id lookups find every id and nothing else, whether the ids are spread
/// evenly (random, as UUIDs are), sequential, or bunched at the ends
/// (where guessing by interpolation is at its worst), among keys of every
/// other kind.
#[test]
fn id_lookups_find_every_id_however_the_ids_are_spread() {
    let mut next = split_mix(0x1234_5678_9abc_def0);
    let mut random = |n: usize| -> Vec<u128> {
        (0..n)
            .map(|_| (u128::from(next()) << 64) | u128::from(next()))
            .collect()
    };
    // Below and above FENCES_FROM, and a last window of one id.
    let (small, large, one_over) = (random(3000), random(6000), random(FENCES_FROM + 1));
    let sequential: Vec<u128> = (1000..7000).collect();
    let bunched: Vec<u128> = (0..3000u128)
        .chain((0..3000).map(|i| u128::MAX - i))
        .collect();
    let cases = [
        small,
        large,
        one_over,
        sequential,
        bunched,
        vec![5],
        vec![5, 6],
    ];
    // In the id section (version 2), and in the directory (version 1).
    for (ids, v1) in cases.iter().flat_map(|ids| [(ids, false), (ids, true)]) {
        let mut entries = vec![
            (Key::event_type("T"), vec![1]),
            (Key::tag("a:1"), vec![2]),
            (Key::stream("s"), vec![3]),
            (Key::tracking("src"), vec![4]),
        ];
        let mut by_id = std::collections::BTreeMap::new();
        for (i, &id) in ids.iter().enumerate() {
            by_id.insert(id, 10 + i as u64);
        }
        entries.extend(by_id.iter().map(|(&id, &p)| (Key::id(id), vec![p])));
        entries.sort();
        let covers = (1, 10 + ids.len() as u64);
        let bytes = if v1 {
            write_run_v1(entries, covers)
        } else {
            write_run(entries, covers)
        };
        let run = Run::open(Bytes::from(bytes)).unwrap();
        assert_eq!(run.layout.id_count, if v1 { 0 } else { ids.len() });
        for (&id, &p) in &by_id {
            assert_eq!(run.lookup_id(id), Some(p), "id {id:#x}");
            for other in [id.wrapping_add(1), id.wrapping_sub(1)] {
                assert_eq!(run.lookup_id(other), by_id.get(&other).copied());
            }
        }
        assert_eq!(run.lookup_id(0), by_id.get(&0).copied());
        assert_eq!(run.lookup_id(u128::MAX), by_id.get(&u128::MAX).copied());
        let fenced = if v1 {
            run.fences.get().is_some()
        } else {
            run.section_fences.get().is_some_and(Option::is_some)
        };
        assert_eq!(
            fenced,
            ids.len() >= FENCES_FROM,
            "fences are read for large runs only"
        );
        assert_eq!(run.first(&Key::stream("s")), Some(3));
        assert_eq!(run.first(&Key::tracking("src")), Some(4));
        assert_eq!(run.first(&Key::tag("a:1")), Some(2));
    }
    // A run without ids answers none.
    let run = open(vec![(Key::tag("a:1"), vec![2])], (1, 2));
    assert_eq!(run.lookup_id(2), None);
}

/// The fenced search reads ids where a row of id keys puts them, and
/// checks what it finds against the directory: with the filter left out
/// (so that absent ids reach the search too), every id is found at its
/// list and no other id is, whether the row's start is right, wrong (the
/// search then falls back to the directory) or unknown.
#[test]
fn fenced_id_search_is_checked_against_the_directory() {
    let mut next = split_mix(0x0bad_cafe);
    let mut by_id = std::collections::BTreeMap::new();
    for i in 0..6000u64 {
        by_id.insert((u128::from(next()) << 64) | u128::from(next()), 10 + i);
    }
    let mut entries = vec![
        (Key::event_type("T"), vec![1]),
        (Key::tag("a:1"), vec![2]),
        (Key::tracking("src"), vec![4]),
    ];
    entries.extend(by_id.iter().map(|(&id, &p)| (Key::id(id), vec![p])));
    entries.sort();
    // Version 1 runs keep their ids in the directory.
    let run = Run::open(Bytes::from(write_run_v1(
        entries,
        (1, 10 + by_id.len() as u64),
    )))
    .unwrap();
    let b = &run.bytes[..];
    let fences = run.id_fences(b).expect("fences");
    assert!(
        fences.keys_at.is_some(),
        "a run's writer lays its id keys out in a row"
    );
    let wrong = Fences {
        ids: fences.ids.clone(),
        keys_at: fences.keys_at.map(|at| at + 5),
    };
    let unknown = Fences {
        ids: fences.ids.clone(),
        keys_at: None,
    };
    for f in [fences, &wrong, &unknown] {
        for (&id, &p) in &by_id {
            let list = run.find_id_fenced(b, f, id).expect("every id is found");
            assert_eq!(
                run.layout.block(b, list.first_block).map(|i| i.first),
                Some(p)
            );
            for other in [id.wrapping_add(1), id.wrapping_sub(1)] {
                if !by_id.contains_key(&other) {
                    assert!(run.find_id_fenced(b, f, other).is_none(), "{other:#x}");
                }
            }
        }
        assert!(run.find_id_fenced(b, f, 0).is_none());
        assert!(run.find_id_fenced(b, f, u128::MAX).is_none());
    }
}

proptest::proptest! {
    /// Interpolation finds what a binary search finds, among ids spread
    /// evenly, clustered at one end, or in two far-apart clumps, for ids
    /// present, between, below and above them, and in sub-ranges.
    #[test]
    fn interpolation_finds_what_a_binary_search_finds(
        raw in proptest::collection::btree_set(proptest::prelude::any::<u128>(), 0..400),
        shape in 0u8..3,
        picks in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), -2i8..3), 1..30),
        cut in (proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<proptest::sample::Index>()),
    ) {
        let ids: Vec<u128> = match shape {
            0 => raw.into_iter().collect(),
            1 => raw.into_iter().map(|v| v >> 100).collect::<std::collections::BTreeSet<_>>().into_iter().collect(),
            _ => raw.into_iter().map(|v| if v % 2 == 0 { v >> 90 } else { u128::MAX - (v >> 90) }).collect::<std::collections::BTreeSet<_>>().into_iter().collect(),
        };
        let n = ids.len();
        let (a, b) = if n == 0 { (0, 0) } else { (cut.0.index(n + 1), cut.1.index(n + 1)) };
        let (lo, hi) = (a.min(b), a.max(b));
        for (pick, delta) in picks {
            let base = if n == 0 { 0 } else { ids[pick.index(n)] };
            let id = base.saturating_add_signed(i128::from(delta));
            let window = &ids[lo..hi];
            let expected = window.binary_search(&id).map(|i| lo + i).map_err(|i| lo + i);
            proptest::prop_assert_eq!(
                interpolate(lo, hi, id, |i| ids.get(i).copied()),
                Some(expected),
                "id {:#x} in {}..{}", id, lo, hi
            );
        }
    }
}

/// A run whose keys of the id kind are not all id keys (the format holds
/// any key; the engine writes none such) is searched by the keys' bytes,
/// so every key is found: the search of ids by value read a short key of
/// the id kind as no id at all and missed the ids beside it.
#[test]
fn keys_of_the_id_kind_that_are_not_ids_leave_every_key_found() {
    let mut long = Key::id(7).as_bytes().to_vec();
    long.push(1);
    let ids = (0..100u128).map(|i| i * 1_000_003);
    for odd in [vec![KIND_ID], vec![KIND_ID, 0], long] {
        let mut entries: Vec<(Key, Vec<u64>)> = ids
            .clone()
            .map(|i| (Key::id(i), vec![i as u64 + 1]))
            .collect();
        entries.push((Key::from_bytes(&odd), vec![5]));
        entries.push((Key::tag("t"), vec![6]));
        entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for write in [write_run, write_run_v1] {
            let run = Run::open(Bytes::from(write(entries.clone(), (1, u64::MAX)))).unwrap();
            assert!(!run.ids_whole, "{odd:?}");
            for (key, list) in &entries {
                assert_eq!(
                    run.first(key),
                    list.first().copied(),
                    "{key:?} beside {odd:?}"
                );
            }
            assert!(!run.contains(&Key::id(1)));
            assert_eq!(run.iter().collect::<Vec<_>>(), entries);
        }
    }
    // A run of id keys only is searched by the ids' values.
    let entries: Vec<(Key, Vec<u64>)> = ids.map(|i| (Key::id(i), vec![i as u64 + 1])).collect();
    let run = Run::open(Bytes::from(write_run_v1(entries.clone(), (1, u64::MAX)))).unwrap();
    assert!(run.ids_whole);
    for (key, list) in &entries {
        assert_eq!(run.first(key), list.first().copied());
    }
}

/// Ids of one position live in the id section, 24 bytes each; every other
/// key, an id of several positions among them, in the directory. The run
/// walks both in key order, and answers every key from where it lives.
#[test]
fn ids_live_in_their_section_and_walk_with_the_keys_in_order() {
    let mut next = split_mix(0x5ec7_1011);
    let mut entries = sample();
    let ids: Vec<u128> = (0..500)
        .map(|_| (u128::from(next()) << 64) | u128::from(next()))
        .collect();
    entries.extend(ids.iter().zip(100..).map(|(&id, p)| (Key::id(id), vec![p])));
    // An id posted twice (the format holds it; the engine refuses it).
    entries.push((Key::id(ids[7] ^ 1), vec![3, 4]));
    entries.push((Key::tracking("src"), vec![5]));
    entries.sort();
    let run = open(entries.clone(), (1, 3000));
    // Key::id(42) of the sample, and the 500.
    assert_eq!(run.layout.id_count, 501);
    assert_eq!(run.keys(), entries.len() as u64);
    assert_eq!(
        run.postings(),
        entries.iter().map(|(_, l)| l.len() as u64).sum::<u64>()
    );
    assert_eq!(run.iter().collect::<Vec<_>>(), entries);
    for (key, list) in &entries {
        assert_eq!(run.count(key), list.len() as u64, "{key:?}");
        assert_eq!(run.first(key), list.first().copied());
        assert_eq!(run.last(key), list.last().copied());
        let found = run.found(key).unwrap();
        assert_eq!((found.first, found.last), (list[0], *list.last().unwrap()));
        let walked: Vec<u64> =
            Positions::new(found.cursor, 0, u64::MAX, Direction::Forwards).collect();
        assert_eq!(&walked, list);
    }
    for start in entries.iter().map(|(k, _)| k.as_bytes().to_vec()).chain([
        vec![],
        vec![4],
        vec![4, 0x80],
        vec![9],
    ]) {
        let walked: Vec<(Vec<u8>, u64)> = run
            .keys_from(&start)
            .map(|(k, n)| (k.to_vec(), n))
            .collect();
        let want: Vec<(Vec<u8>, u64)> = entries
            .iter()
            .filter(|(k, _)| k.as_bytes() >= &start[..])
            .map(|(k, l)| (k.as_bytes().to_vec(), l.len() as u64))
            .collect();
        assert_eq!(walked, want, "from {start:?}");
    }
    assert_eq!(run.lookup_id(ids[7] ^ 1), Some(3));
    assert_eq!(run.lookup_id(ids[7] ^ 2), None);

    // In version 1 an id costs a directory entry, a skip entry and its
    // key's bytes (65) where the section's entry costs 24.
    let v1 = write_run_v1(entries.clone(), (1, 3000));
    let v2 = write_run(entries, (1, 3000));
    let saved = (v1.len() - v2.len()) as f64 / 501.0;
    assert!((40.0..=42.0).contains(&saved), "{saved} bytes an id");
}

/// What the checksum cannot vouch for in the id section (a buggy writer,
/// or a forged file) is refused at open, with the offset of the bad field.
#[test]
fn a_damaged_id_section_is_refused() {
    let ids = || (0..10u128).map(|i| (Key::id(i * 1000), vec![i as u64 + 1]));
    let good = write_run(ids().chain(sample()), (1, 3000));
    let footer = good.len() - FOOTER_LEN;
    let ids_at = u64::from_le_bytes(good[footer + 64..footer + 72].try_into().unwrap()) as usize;
    let refused = |mut bytes: Vec<u8>| {
        fix_crc(&mut bytes);
        match Run::open(Bytes::from(bytes)) {
            Err(RunError::Corrupt { offset, reason }) => (offset as usize, reason),
            Ok(_) => panic!("opened"),
        }
    };
    // Two ids swapped.
    let mut bad = good.clone();
    let (a, b) = (ids_at, ids_at + 24);
    let first: Vec<u8> = bad[a..a + 24].to_vec();
    bad.copy_within(b..b + 24, a);
    bad[b..b + 24].copy_from_slice(&first);
    assert_eq!(refused(bad), (b, "ids not strictly ascending"));
    // A section that is not whole entries.
    let mut bad = good.clone();
    bad[footer + 64] += 1;
    assert_eq!(refused(bad), (ids_at + 1, "id section not whole entries"));
    // An id of one position in the directory beside a section.
    let mut entries: Vec<(Key, Vec<u64>)> = ids().collect();
    entries.push((Key::id(5), vec![7, 8]));
    let bytes = write_run(entries, (1, 3000));
    let footer = bytes.len() - FOOTER_LEN;
    let dir = u64::from_le_bytes(bytes[footer + 8..footer + 16].try_into().unwrap()) as usize;
    let mut bad = bytes.clone();
    // Its count says 1; the posting count is kept whole by dropping one.
    bad[dir + 8] = 1;
    bad[footer + 56] -= 1;
    assert_eq!(
        refused(bad),
        (dir, "an id of one position outside the id section")
    );
}
