use super::format::{BLOCK, CRC_FROM_END, FOOTER_LEN};
use super::*;

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
    v[8] = 2;
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
