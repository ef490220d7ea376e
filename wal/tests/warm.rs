//! Warming the records a reader is about to look up: it finds each event's
//! record payload in a mapped plain segment, leaves compressed segments
//! alone, places every position for the lookup that follows (which then
//! finds what it would have found alone), and never panics on damaged
//! bytes (it is only a hint; the lookups that follow check everything).

use std::sync::Arc;

use bytes::Bytes;
use gesta_wal::io::{FileSystem, StdFs};
use gesta_wal::{
    Compression, KEEP_FROM_SEQ, MappedPayload, OpenedWal, Payload, Place, Pushed, RecordMeta,
    WalOptions,
};

fn options() -> WalOptions {
    WalOptions {
        segment_size: 64 << 10,
        preallocate: 16 << 10,
        ..WalOptions::default()
    }
}

/// Records larger than the offset table's 4 KiB stride, so that every
/// record starts a stretch of it and is warmed, with sequencing bytes long
/// enough for their heads to be kept.
fn append(wal: &mut OpenedWal, records: u64) {
    for i in 0..records {
        let first = wal.writer.next_position();
        let count = (i % 4) as u32 + 1;
        let meta = RecordMeta {
            first_position: first,
            count,
            timestamp_micros: first,
        };
        let body = format!("{first:08}").repeat(600 + (i % 7) as usize * 10);
        let payload = Payload::new(Bytes::from(body));
        assert_eq!(
            wal.writer
                .push(meta, &[b's'; KEEP_FROM_SEQ], &payload)
                .unwrap(),
            Pushed::Added
        );
        wal.writer.commit(true).unwrap();
    }
}

/// What warming found of an event: its record's payload, its index, the
/// record's count.
type Found = (Bytes, u32, u32);

fn warm(wal: &OpenedWal, positions: &[u64]) -> Vec<Found> {
    warm_placed(wal, positions).1
}

fn warm_placed(wal: &OpenedWal, positions: &[u64]) -> (Vec<Option<Place>>, Vec<Found>) {
    let (mut places, mut found) = (Vec::new(), Vec::new());
    wal.reader
        .warm(positions, &mut places, |events: &[MappedPayload<'_>]| {
            found.extend(
                events
                    .iter()
                    .map(|f| (Bytes::copy_from_slice(f.payload), f.index, f.count)),
            );
        });
    assert_eq!(places.len(), positions.len(), "one place per position");
    (places, found)
}

/// The head a lookup given `place` finds is the one it finds alone;
/// whether the placed one was a kept head.
fn assert_same_head(wal: &OpenedWal, position: u64, place: Option<Place>) -> bool {
    let placed = wal.reader.record_head_at(position, place).unwrap();
    let alone = wal.reader.record_head_containing(position).unwrap();
    let kept = placed
        .as_ref()
        .is_some_and(|h| h.derived(|meta, _| meta.first_position).is_some());
    match (placed, alone) {
        (Some(a), Some(b)) => {
            assert_eq!(a.meta, b.meta, "position {position}");
            assert_eq!(a.seq(), b.seq(), "position {position}");
            // A compressed segment's payload is read in pieces.
            let bytes = |h: &gesta_wal::RecordHead| match h.payload() {
                Some(b) => b.clone(),
                None => h.payload_range(0, h.payload_len()).unwrap(),
            };
            assert_eq!(bytes(&a), bytes(&b), "position {position}");
        }
        (None, None) => {}
        (a, b) => panic!(
            "position {position}: placed {:?}, alone {:?}",
            a.map(|h| h.meta),
            b.map(|h| h.meta)
        ),
    }
    kept
}

/// A log of `records` large records, every segment mapped (read once).
fn opened(records: u64) -> (tempfile::TempDir, OpenedWal) {
    let tmp = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    let dir = tmp.path().join("wal");
    let mut wal = gesta_wal::open(fs, &dir, options(), 1, |_| Ok(())).unwrap();
    append(&mut wal, records);
    for r in wal.reader.forward(1, u64::MAX) {
        r.unwrap();
    }
    (tmp, wal)
}

#[test]
fn every_position_of_a_sealed_segment_is_found_in_its_record() {
    let (_tmp, wal) = opened(120);
    let segments = wal.reader.segments().snapshot();
    assert!(segments.len() >= 4, "the workload must seal segments");
    let sealed_last = segments[segments.len() - 1].first_position() - 1;

    let positions: Vec<u64> = (1..=sealed_last).rev().collect();
    let found = warm(&wal, &positions);
    assert_eq!(found.len(), positions.len(), "every sealed position found");
    for ((payload, index, count), &position) in found.iter().zip(&positions) {
        let record = wal.reader.record_containing(position).unwrap().unwrap();
        assert_eq!(payload, &record.payload, "position {position}");
        assert_eq!(u64::from(*index), position - record.meta.first_position);
        assert_eq!(*count, record.meta.count);
    }
    // Positions past the head, and 0, are skipped.
    assert!(warm(&wal, &[0, u64::MAX]).is_empty());

    // Compressed segments are not warmed (a point read decompresses only
    // the blocks it needs; warming would decompress whole stretches).
    let report = wal
        .compressor
        .compress_sealed(Compression::default(), None, &|| false)
        .unwrap();
    assert!(report.segments > 0);
    assert!(warm(&wal, &positions).is_empty());
}

#[test]
fn places_lead_each_lookup_to_the_head_it_would_find_alone() {
    let (_tmp, wal) = opened(120);
    let segments = wal.reader.segments().snapshot();
    assert!(segments.len() >= 4, "the workload must seal segments");
    let head = wal.writer.next_position() - 1;
    let sealed_last = segments[segments.len() - 1].first_position() - 1;

    // Every position, forwards and backwards, with some no segment holds
    // (0, past the head) among them: places stay in step with positions.
    let mut positions: Vec<u64> = vec![0];
    positions.extend(1..=head);
    positions.extend([head + 1, u64::MAX]);
    positions.extend((1..=head).rev().step_by(3));
    positions.push(0);
    let (places, _) = warm_placed(&wal, &positions);
    for (place, &p) in places.iter().zip(&positions) {
        // The active segment is mapped too once read; sealed ones always.
        if (1..=sealed_last).contains(&p) {
            assert!(place.is_some(), "sealed position {p} placed");
        }
        if p == 0 || p > head {
            assert!(place.is_none(), "position {p} is in no record");
        }
    }
    // Twice: the second time, heads kept by the first lookups are placed
    // with them, and the lookups take them from the places.
    for round in 0..2 {
        let (places, _) = warm_placed(&wal, &positions);
        for (place, &p) in places.into_iter().zip(&positions) {
            let kept = assert_same_head(&wal, p, place);
            if round == 1 && (1..=sealed_last).contains(&p) {
                assert!(kept, "sealed position {p} read through its kept head");
            }
        }
    }

    // Places found before the sealed segments were compressed still lead
    // to the same records (the map they hold shows what the segment
    // held); places found after are none there, and the lookup finds the
    // record itself.
    let (stale, _) = warm_placed(&wal, &positions);
    let report = wal
        .compressor
        .compress_sealed(Compression::default(), None, &|| false)
        .unwrap();
    assert!(report.segments > 0);
    for (place, &p) in stale.into_iter().zip(&positions) {
        let _ = assert_same_head(&wal, p, place);
    }
    let (fresh, _) = warm_placed(&wal, &positions);
    for (place, &p) in fresh.into_iter().zip(&positions) {
        if (1..=sealed_last).contains(&p) {
            assert!(place.is_none(), "compressed position {p} not placed");
        }
        let _ = assert_same_head(&wal, p, place);
    }
}

#[test]
fn damaged_bytes_never_make_warming_panic() {
    let (_tmp, wal) = opened(60);
    let first_of_second = wal.reader.segments().snapshot()[1].first_position();
    let positions: Vec<u64> = (1..first_of_second).collect();
    // The first segment, overwritten in place: the map shows the new bytes.
    let path = wal.reader.segments().snapshot()[0].path();
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let mut rng = gesta_wal::rng::SplitMix64::new(7);
    for round in 0..64 {
        let mut bytes = vec![0u8; 256];
        for b in &mut bytes {
            *b = match round % 3 {
                0 => 0xff,
                1 => 0,
                _ => rng.next_u64() as u8,
            };
        }
        let at = 32 + rng.below_uniform((len - 32 - bytes.len()) as u64);
        std::os::unix::fs::FileExt::write_all_at(&file, &bytes, at).unwrap();
        let found = warm(&wal, &positions);
        assert!(found.len() <= positions.len());
        for (_, index, count) in &found {
            assert!(index < count);
        }
    }
}
