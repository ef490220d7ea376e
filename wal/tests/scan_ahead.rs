//! Scans of large records, whose body checksums a helper thread computes
//! one or more records ahead: they return exactly the records a scan
//! verifying on its own thread returns, over any range, and stop at a
//! damaged record with the same error, every record before it intact.

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use gesta_wal::io::{FileSystem, StdFs};
use gesta_wal::{OpenedWal, Payload, Pushed, RecordMeta, WalError, WalOptions};

fn options() -> WalOptions {
    WalOptions {
        segment_size: 1 << 20,
        preallocate: 64 << 10,
        ..WalOptions::default()
    }
}

/// The body of the record starting at `first`: 20–60 KiB (every record
/// long enough to be checksummed ahead, but for the few under 16 KiB
/// that break the runs), of text naming its position.
fn body(first: u64) -> Bytes {
    let kib = match first % 11 {
        0 => 3,
        n => 20 + (n * 4),
    };
    Bytes::from(format!("{first:016}").repeat(kib as usize * 64))
}

fn append(wal: &mut OpenedWal, records: u64) {
    for _ in 0..records {
        let first = wal.writer.next_position();
        let meta = RecordMeta {
            first_position: first,
            count: 1 + (first % 3) as u32,
            timestamp_micros: first,
        };
        let pushed = wal
            .writer
            .push(meta, b"", &Payload::new(body(first)))
            .unwrap();
        assert_eq!(pushed, Pushed::Added);
        wal.writer.commit(false).unwrap();
    }
}

/// The first positions a forward scan of `from..=up_to` returns, each
/// record's body checked, or the error it stopped at; a `slow` scan waits
/// a millisecond after each record, as a reader slower than the helper
/// (one that decodes events) would, so that it takes the helper's
/// checksums.
fn scan(wal: &OpenedWal, from: u64, up_to: u64, slow: bool) -> (Vec<u64>, Option<WalError>) {
    let mut firsts = Vec::new();
    for r in wal.reader.forward(from, up_to) {
        match r {
            Ok(r) => {
                let first = r.meta.first_position;
                assert!(r.payload == body(first), "record {first} holds other bytes");
                firsts.push(first);
                if slow {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            Err(e) => return (firsts, Some(e)),
        }
    }
    (firsts, None)
}

#[test]
fn scans_ahead_return_every_record_and_stop_at_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    let dir = tmp.path().join("wal");
    let mut wal = gesta_wal::open(fs, &dir, options(), 1, |_| Ok(())).unwrap();
    append(&mut wal, 150);
    let segments = wal.reader.segments().snapshot();
    assert!(segments.len() >= 4, "the workload must seal segments");
    let last = wal.writer.next_position() - 1;

    // Every record, in order; and any range, as the whole scan has it.
    let (all, error) = scan(&wal, 1, u64::MAX, false);
    assert!(error.is_none());
    let expected: Vec<u64> = {
        let mut firsts = vec![1];
        while let Some(&f) = firsts.last() {
            let next = f + 1 + f % 3;
            if next > last {
                break;
            }
            firsts.push(next);
        }
        firsts
    };
    assert_eq!(all, expected);
    let before = gesta_wal::checksums_taken_ahead();
    let (slow, error) = scan(&wal, 1, u64::MAX, true);
    assert!(error.is_none());
    assert_eq!(slow, all);
    if gesta_wal::checksums_ahead_available() {
        assert!(
            gesta_wal::checksums_taken_ahead() > before,
            "no checksum was computed ahead"
        );
    }
    for (from, up_to) in [(1, 5), (7, 200), (100, last), (last, last), (50, 60)] {
        let (firsts, error) = scan(&wal, from, up_to, false);
        assert!(error.is_none());
        let want: Vec<u64> = all
            .iter()
            .copied()
            .filter(|&f| f <= up_to && f + 1 + f % 3 > from)
            .collect();
        assert_eq!(firsts, want, "{from}..={up_to}");
    }

    // A byte of a large record's body in a sealed segment flipped: the
    // scan returns every record before it and stops there, whether the
    // damaged record's checksum was computed ahead or not.
    let sealed = &segments[1];
    let damaged = all
        .iter()
        .copied()
        .find(|&f| f > sealed.first_position() + 3 && f % 11 != 0)
        .unwrap();
    let (offset, _) = sealed.locate(damaged).unwrap();
    let record = wal.reader.record_head_containing(damaged).unwrap().unwrap();
    assert_eq!(
        record.meta.first_position, damaged,
        "a record starts the stretch"
    );
    let path = sealed.path();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let at = offset + 12 + 40 + 1000;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x20], at).unwrap();
    for (from, slow) in [
        (1, false),
        (1, true),
        (sealed.first_position(), true),
        (damaged, false),
    ] {
        let (firsts, error) = scan(&wal, from, u64::MAX, slow);
        let want: Vec<u64> = all
            .iter()
            .copied()
            .filter(|&f| f < damaged && f + 1 + f % 3 > from)
            .collect();
        assert_eq!(firsts, want, "from {from}");
        match error {
            Some(WalError::Corruption {
                offset: o, reason, ..
            }) => {
                assert_eq!((o, reason.as_str()), (offset, "record checksum mismatch"));
            }
            other => panic!("from {from}: {other:?}"),
        }
    }
}
