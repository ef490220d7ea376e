//! Kept record heads: a point read into a record whose head was verified
//! before returns the same head without reading or checking it again, with
//! the payload the log holds now, and only what was verified.

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use gesta_wal::io::{FileSystem, StdFs};
use gesta_wal::{KEEP_FROM_SEQ, MappedPayload, OpenedWal, Payload, Pushed, RecordMeta, WalOptions};

fn options() -> WalOptions {
    WalOptions {
        segment_size: 64 << 10,
        preallocate: 16 << 10,
        ..WalOptions::default()
    }
}

fn seq_of(first: u64) -> Vec<u8> {
    (0..KEEP_FROM_SEQ + 200)
        .map(|i| (first as usize + i) as u8 & 0x7f)
        .collect()
}

/// Records of 1–4 events with sequencing bytes long enough to be kept,
/// and payloads past the offset table's stride, so each starts a stretch.
fn append(wal: &mut OpenedWal, records: u64) {
    for i in 0..records {
        let first = wal.writer.next_position();
        let meta = RecordMeta {
            first_position: first,
            count: (i % 4) as u32 + 1,
            timestamp_micros: first,
        };
        let payload = Payload::new(Bytes::from(format!("{first:08}").repeat(600)));
        let pushed = wal.writer.push(meta, &seq_of(first), &payload).unwrap();
        assert_eq!(pushed, Pushed::Added);
        wal.writer.commit(true).unwrap();
    }
}

/// A log in `dir` of 40 such records over several segments, and its last
/// position.
fn forty_records(dir: &std::path::Path) -> (OpenedWal, u64) {
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    let mut wal = gesta_wal::open(fs, &dir.join("wal"), options(), 1, |_| Ok(())).unwrap();
    append(&mut wal, 40);
    let last = wal.writer.next_position() - 1;
    (wal, last)
}

#[test]
fn a_kept_head_reads_as_verified_whatever_became_of_the_log_since() {
    let tmp = tempfile::tempdir().unwrap();
    let (wal, last) = forty_records(tmp.path());
    assert_eq!(wal.reader.kept_heads().0, 0);

    let first_reads: Vec<_> = (1..=last)
        .map(|p| wal.reader.record_head_containing(p).unwrap().unwrap())
        .collect();
    // A first read keeps the head but derives nothing: a record read once
    // is not worth it.
    // (Positions are read in order: a record's first is its first read.)
    for (p, h) in (1..=last).zip(&first_reads) {
        let first_read = h.meta.first_position == p;
        let derived = h.derived(|meta, _| meta.first_position);
        assert_eq!(derived.is_none(), first_read, "position {p}");
    }
    let (kept, bytes) = wal.reader.kept_heads();
    assert_eq!(kept, 40, "every record's head is kept");
    assert!(bytes >= 40 * (KEEP_FROM_SEQ + 200));
    for (p, before) in (1..=last).zip(&first_reads) {
        let again = wal.reader.record_head_containing(p).unwrap().unwrap();
        assert_eq!(again.meta, before.meta);
        assert_eq!(again.seq(), before.seq());
        assert_eq!(again.seq().as_ref(), seq_of(again.meta.first_position));
        assert_eq!(again.payload(), before.payload());
        // What the owner derives is built once and kept with the head.
        let derived = again.derived(|meta, _| meta.first_position).copied();
        assert_eq!(derived, Some(before.meta.first_position));
        let built_again = again.derived(|_, _| u64::MAX).copied();
        assert_eq!(built_again, derived);
    }

    // Warming hands the kept heads' derived values on, for the caller to
    // warm what it keeps there too.
    let (mut places, mut found) = (Vec::new(), Vec::new());
    let positions: Vec<u64> = (1..=last).collect();
    wal.reader
        .warm(&positions, &mut places, |events: &[MappedPayload<'_>]| {
            found.extend(
                events
                    .iter()
                    .map(|f| (f.derived::<u64>().copied(), f.derived::<u32>().copied())),
            );
        });
    let sealed = found.len();
    assert!(sealed > 0);
    for (&(as_u64, as_u32), &p) in found.iter().zip(&positions) {
        let first = wal
            .reader
            .record_containing(p)
            .unwrap()
            .unwrap()
            .meta
            .first_position;
        assert_eq!(as_u64, Some(first), "position {p}");
        assert_eq!(as_u32, None, "another type is not there");
    }

    // Sequencing bytes damaged in the log after their head was verified:
    // the kept, verified copy is what a point read returns.
    let segment = wal.reader.segments().snapshot()[0].clone();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(segment.path())
        .unwrap();
    let (start, _) = segment.locate(1).unwrap();
    let seq_at = start + 36;
    file.write_all_at(&[0xee; 16], seq_at + 8).unwrap();
    let head = wal.reader.record_head_containing(1).unwrap().unwrap();
    assert_eq!(head.seq().as_ref(), seq_of(1));

    // So is it when the frame and fields are damaged too: a kept head is
    // taken without reading them again. A read of the whole record (what
    // scans and `verify` do) finds the damage.
    let mut frame = [0u8; 36];
    std::fs::File::open(segment.path())
        .unwrap()
        .read_exact_at(&mut frame, start)
        .unwrap();
    for b in &mut frame {
        *b ^= 0x5a;
    }
    file.write_all_at(&frame, start).unwrap();
    let head = wal.reader.record_head_containing(1).unwrap().unwrap();
    assert_eq!(head.meta, first_reads[0].meta);
    assert_eq!(head.seq().as_ref(), seq_of(1));
    assert_eq!(head.payload(), first_reads[0].payload());
    assert!(wal.reader.record_containing(1).is_err());
}

#[test]
fn a_compressed_segment_keeps_its_heads_under_its_own_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let (wal, last) = forty_records(tmp.path());
    let head = |p: u64| wal.reader.record_head_containing(p).unwrap().unwrap();
    // Every head is read and kept while its segment is plain.
    let plain: Vec<_> = (1..=last).map(head).collect();
    let (kept_plain, _) = wal.reader.kept_heads();
    assert_eq!(kept_plain, 40);

    let settings = gesta_wal::Compression {
        level: 3,
        block_size: 512,
        dictionary_size: 0,
    };
    let report = wal
        .compressor
        .compress_sealed(settings, None, &|| false)
        .unwrap();
    assert!(report.segments >= 2, "{report:?}");
    let segments = wal.reader.segments().snapshot();
    let sealed_last = segments.last().unwrap().first_position() - 1;
    assert!(
        segments[..segments.len() - 1]
            .iter()
            .all(|s| s.compressed().is_some())
    );

    // A compressed segment's first read of a record verifies its head
    // again (a plain segment's kept head is not taken for it), and keeps it.
    let mut records = 0;
    for p in 1..=sealed_last {
        let h = head(p);
        let before = &plain[(p - 1) as usize];
        assert_eq!(
            (h.meta, h.seq()),
            (before.meta, before.seq()),
            "position {p}"
        );
        let first_read = h.meta.first_position == p;
        records += usize::from(first_read);
        assert_eq!(
            h.derived(|meta, _| meta.first_position).is_none(),
            first_read,
            "position {p}"
        );
        let payload = before.payload().unwrap();
        assert_eq!(h.payload_range(0, h.payload_len()).unwrap(), payload);
    }
    assert_eq!(wal.reader.kept_heads().0, kept_plain + records);

    // From then on a point read into such a record takes its kept head
    // without reading a block, and what it derives comes with it.
    let touched = |s: gesta_wal::CacheStats| s.hits + s.misses;
    let blocks_before = touched(wal.compressor.cache_stats());
    for p in 1..=sealed_last {
        let h = head(p);
        let before = &plain[(p - 1) as usize];
        assert_eq!(
            (h.meta, h.seq()),
            (before.meta, before.seq()),
            "position {p}"
        );
        assert_eq!(h.payload_len(), before.payload().unwrap().len());
        assert_eq!(
            h.derived(|meta, _| meta.first_position).copied(),
            Some(before.meta.first_position)
        );
    }
    assert_eq!(touched(wal.compressor.cache_stats()), blocks_before);
    // And its payload is read from the compressed segment as before.
    let h = head(sealed_last);
    let payload = plain[(sealed_last - 1) as usize].payload().unwrap();
    assert_eq!(h.payload_range(0, h.payload_len()).unwrap(), payload);
    assert!(touched(wal.compressor.cache_stats()) > blocks_before);
}

/// Erasure rewrites a sealed segment's payloads in place, every record at
/// its offset with its head as it was: a point read through a head kept
/// before the rewrite reads the new payload, with the same fields and
/// sequencing bytes, and so does warming.
#[test]
fn a_kept_head_reads_the_payload_a_rewrite_left() {
    let tmp = tempfile::tempdir().unwrap();
    let (wal, last) = forty_records(tmp.path());
    let sealed_last = wal
        .reader
        .segments()
        .snapshot()
        .last()
        .unwrap()
        .first_position()
        - 1;
    assert!(sealed_last > 10, "several sealed segments");
    // Every head read twice: kept, and handed out as kept.
    let before: Vec<_> = (1..=last)
        .map(|p| {
            wal.reader.record_head_containing(p).unwrap();
            wal.reader.record_head_containing(p).unwrap().unwrap()
        })
        .collect();
    assert!(before.iter().all(|h| h.derived(|_, _| ()).is_some()));
    let scrub = |r: &gesta_wal::Record| Some(Bytes::from(vec![b'#'; r.payload.len()]));
    let settings = gesta_wal::Compression::default();
    for segment in wal.reader.segments().snapshot() {
        let first = segment.first_position();
        if first <= sealed_last {
            let report = wal
                .compressor
                .rewrite_sealed(first, settings, &mut |r| scrub(r));
            assert!(report.unwrap().is_some(), "segment {first} rewritten");
        }
    }
    for (p, was) in (1..=last).zip(&before) {
        let head = wal.reader.record_head_containing(p).unwrap().unwrap();
        assert!(
            head.derived(|_, _| ()).is_some(),
            "position {p}: still kept"
        );
        assert_eq!(
            (head.meta, head.seq()),
            (was.meta, was.seq()),
            "position {p}"
        );
        let payload = head.payload().unwrap();
        assert_eq!(payload.len(), was.payload().unwrap().len());
        let scrubbed = p <= sealed_last;
        assert_eq!(payload.iter().all(|&b| b == b'#'), scrubbed, "position {p}");
    }
    let positions: Vec<u64> = (1..=sealed_last).collect();
    let mut places = Vec::new();
    let mut warmed = 0;
    wal.reader
        .warm(&positions, &mut places, |events: &[MappedPayload<'_>]| {
            for e in events {
                assert!(e.payload.iter().all(|&b| b == b'#'));
                warmed += 1;
            }
        });
    assert!(warmed > 0);
}
