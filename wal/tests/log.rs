//! The segment log end to end: rollover, reading across segments, and
//! recovery — empty log, clean reopen, torn tail cut, corruption refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gesta_wal::format::{BODY_FIXED_LEN, FRAME_LEN, SEGMENT_HEADER_LEN, segment_file_name};
use gesta_wal::io::fault::{CrashMode, FaultFs};
use gesta_wal::io::{FileSystem, OpenMode, StdFs};
use gesta_wal::{OpenedWal, RecordMeta, WalError, WalOptions};

mod common;
use common::{append, check_contents, payload};

fn options() -> WalOptions {
    WalOptions {
        segment_size: 4096,
        preallocate: 1024,
        ..WalOptions::default()
    }
}

fn open(fs: &Arc<dyn FileSystem>, dir: &Path) -> Result<OpenedWal, WalError> {
    gesta_wal::open(fs.clone(), dir, options(), 1, |_| Ok(()))
}

/// The directory of the logs built on the in-memory file system.
const DIR: &str = "/wal";

/// A log in [`DIR`] on a fresh in-memory file system, with `batches`
/// records appended.
fn log_with(batches: usize) -> (FaultFs, Arc<dyn FileSystem>, OpenedWal) {
    let fs_impl = FaultFs::new();
    let fs: Arc<dyn FileSystem> = Arc::new(fs_impl.clone());
    let mut wal = open(&fs, Path::new(DIR)).unwrap();
    append(&mut wal, batches);
    (fs_impl, fs, wal)
}

fn seg(dir: &Path, first: u64) -> PathBuf {
    dir.join(segment_file_name(first))
}

#[test]
fn empty_log_opens_and_reopens() {
    let fs: Arc<dyn FileSystem> = Arc::new(FaultFs::new());
    let dir = Path::new("/wal");
    let wal = open(&fs, dir).unwrap();
    assert_eq!(wal.report.last_position, 0);
    assert_eq!(wal.report.segments, 1);
    assert_eq!(wal.writer.next_position(), 1);
    assert_eq!(wal.reader.forward(1, u64::MAX).count(), 0);
    assert_eq!(wal.reader.backward(u64::MAX).count(), 0);
    drop(wal);
    let wal = open(&fs, dir).unwrap();
    assert_eq!(wal.report.records, 0);
    assert!(wal.report.torn_tail.is_none());
}

#[test]
fn rollover_seals_segments_and_reopen_reads_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    let dir = tmp.path().join("wal");
    let mut wal = open(&fs, &dir).unwrap();
    append(&mut wal, 300);
    let last = wal.writer.next_position() - 1;
    let segments = wal.reader.segments().snapshot();
    assert!(
        segments.len() > 3,
        "300 records of ~60 bytes must roll 4 KiB segments"
    );
    for s in &segments[..segments.len() - 1] {
        assert!(s.is_sealed());
        let on_disk = std::fs::metadata(s.path()).unwrap().len();
        assert_eq!(
            on_disk,
            s.bounds().end,
            "a sealed segment is trimmed to its records"
        );
        assert!(on_disk <= 4096 || s.bounds().last_position == s.first_position());
    }
    check_contents(&wal, last);
    wal.writer.close().unwrap();
    drop(wal);

    let mut wal = open(&fs, &dir).unwrap();
    assert_eq!(wal.report.last_position, last);
    assert_eq!(wal.report.segments, segments.len());
    assert!(wal.report.torn_tail.is_none());
    check_contents(&wal, last);
    // Backwards from every position gives the records in reverse order.
    for from in [last, last / 2, 1] {
        let firsts: Vec<u64> = wal
            .reader
            .backward(from)
            .map(|r| r.unwrap().meta.first_position)
            .collect();
        assert!(firsts.windows(2).all(|w| w[0] > w[1]));
        assert_eq!(*firsts.last().unwrap(), 1);
        assert!(firsts[0] <= from);
    }
    // Forward from the middle starts at the record holding that position.
    let mid = last / 2;
    let r = wal.reader.forward(mid, u64::MAX).next().unwrap().unwrap();
    assert!(r.meta.first_position <= mid && mid <= r.meta.last_position());
    append(&mut wal, 10);
    assert!(wal.writer.next_position() - 1 > last);
}

#[test]
fn torn_tail_is_cut_and_reported() {
    let (fs_impl, fs, wal) = log_with(5);
    let dir = Path::new(DIR);
    let last = wal.writer.next_position() - 1;
    let end = wal.reader.segments().snapshot()[0].bounds().end;
    // A record that started to be written: a valid frame cut short.
    let mut rec = Vec::new();
    gesta_wal::format::encode_record(
        &mut rec,
        RecordMeta {
            first_position: last + 1,
            count: 1,
            timestamp_micros: 1,
        },
        b"",
        &payload(last + 1, 1),
    );
    let file = fs.open(&seg(dir, 1), OpenMode::Existing).unwrap();
    file.write_at(&rec[..rec.len() / 2], end).unwrap();
    file.sync_data().unwrap();
    drop((wal, file));
    fs_impl.crash(CrashMode::DropUnsynced);

    let mut wal = open(&fs, dir).unwrap();
    let torn = wal.report.torn_tail.clone().expect("torn tail reported");
    assert_eq!(torn.offset, end);
    let written = &rec[..rec.len() / 2];
    let nonzero = written.iter().rposition(|&b| b != 0).unwrap() + 1;
    assert_eq!(torn.bytes, nonzero as u64, "every written byte counted");
    assert_eq!(wal.report.last_position, last);
    check_contents(&wal, last);
    append(&mut wal, 3);
    let last = wal.writer.next_position() - 1;
    drop(wal);
    let wal = open(&fs, dir).unwrap();
    assert!(wal.report.torn_tail.is_none(), "the cut is durable");
    check_contents(&wal, last);
}

#[test]
fn a_damaged_last_record_below_the_replay_point_is_corruption_not_a_torn_tail() {
    let (fs_impl, fs, wal) = log_with(5);
    let dir = Path::new(DIR);
    let last = wal.writer.next_position() - 1;
    let end = wal.reader.segments().snapshot()[0].bounds().end;
    let before_last = wal
        .reader
        .record_containing(last)
        .unwrap()
        .unwrap()
        .meta
        .first_position
        - 1;
    drop(wal);
    // The last record's last byte: damage that looks like a torn write.
    fs_impl.corrupt(seg(dir, 1), end - 1, 0x01);

    // The caller's index covers every position: the record was committed.
    let err = gesta_wal::open(fs.clone(), dir, options(), last + 1, |_| Ok(())).unwrap_err();
    assert!(
        matches!(&err, WalError::Corruption { file, .. } if *file == seg(dir, 1)),
        "{err}"
    );
    // Nothing was cut: above the replay point it is still a torn tail.
    let wal = open(&fs, dir).unwrap();
    assert!(wal.report.torn_tail.is_some());
    assert_eq!(wal.report.last_position, before_last);
}

#[test]
fn damage_followed_by_data_in_the_newest_segment_is_corruption() {
    let (fs_impl, fs, wal) = log_with(6);
    let dir = Path::new(DIR);
    let second_record = SEGMENT_HEADER_LEN as u64
        + wal
            .reader
            .forward(1, 1)
            .next()
            .map(|r| (FRAME_LEN + BODY_FIXED_LEN) as u64 + r.unwrap().payload.len() as u64)
            .unwrap();
    drop(wal);
    fs_impl.corrupt(seg(dir, 1), second_record + 30, 0x10);
    match open(&fs, dir) {
        Err(WalError::Corruption { file, offset, .. }) => {
            assert_eq!(file, seg(dir, 1));
            assert_eq!(offset, second_record);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn any_bad_record_in_a_sealed_segment_is_corruption() {
    let (fs_impl, fs, wal) = log_with(200);
    let dir = Path::new(DIR);
    let sealed = wal.reader.segments().snapshot()[0].clone();
    assert!(sealed.is_sealed());
    let end = sealed.bounds().end;
    drop(wal);
    // Even the very last byte of a sealed segment is no torn tail.
    fs_impl.corrupt(seg(dir, 1), end - 1, 0x01);
    match open(&fs, dir) {
        Err(WalError::Corruption { file, .. }) => assert_eq!(file, seg(dir, 1)),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn corrupt_segment_header_and_missing_segment_are_refused() {
    let (fs_impl, fs, wal) = log_with(200);
    let dir = Path::new(DIR);
    let firsts: Vec<u64> = wal
        .reader
        .segments()
        .snapshot()
        .iter()
        .map(|s| s.first_position())
        .collect();
    assert!(firsts.len() >= 3);
    drop(wal);

    fs_impl.corrupt(seg(dir, firsts[0]), 3, 0x40);
    assert!(matches!(
        open(&fs, dir),
        Err(WalError::Corruption { offset: 0, .. })
    ));
    fs_impl.corrupt(seg(dir, firsts[0]), 3, 0x40);
    assert!(open(&fs, dir).is_ok(), "undoing the flip heals it");

    fs.remove_file(&seg(dir, firsts[1])).unwrap();
    match open(&fs, dir) {
        Err(WalError::Corruption { file, reason, .. }) => {
            assert_eq!(file, seg(dir, firsts[2]));
            assert!(reason.contains("missing"), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn interrupted_segment_creation_is_replaced() {
    let fs: Arc<dyn FileSystem> = Arc::new(FaultFs::new());
    let dir = Path::new("/wal");
    let mut wal = open(&fs, dir).unwrap();
    append(&mut wal, 4);
    let next = wal.writer.next_position();
    drop(wal);
    // A rollover that created the next file but never wrote its header.
    let f = fs.open(&seg(dir, next), OpenMode::CreateNew).unwrap();
    f.write_at(&[0u8; 100], 0).unwrap();
    f.sync_data().unwrap();
    fs.sync_dir(dir).unwrap();
    drop(f);
    let mut wal = open(&fs, dir).unwrap();
    assert_eq!(wal.report.removed_partial_segment, Some(seg(dir, next)));
    assert_eq!(wal.report.last_position, next - 1);
    append(&mut wal, 2);
    check_contents(&wal, wal.writer.next_position() - 1);
}

#[test]
fn a_failed_write_poisons_the_writer() {
    use gesta_wal::io::fault::{Fault, OpKind};
    let (fs_impl, _fs, mut wal) = log_with(3);
    fs_impl.fail_nth(OpKind::Sync, 1, Fault::Eio);
    let first = wal.writer.next_position();
    let meta = RecordMeta {
        first_position: first,
        count: 1,
        timestamp_micros: 0,
    };
    wal.writer.push(meta, b"", &payload(first, 1)).unwrap();
    assert!(matches!(wal.writer.commit(true), Err(WalError::Io { .. })));
    assert!(wal.writer.is_poisoned());
    assert!(matches!(wal.writer.commit(true), Err(WalError::Poisoned)));
    assert!(matches!(
        wal.writer.push(meta, b"", &payload(first, 1)),
        Err(WalError::Poisoned)
    ));
    // Readers only see what was published before the failure.
    check_contents(&wal, first - 1);
}

#[test]
fn record_containing_finds_every_position() {
    let fs: Arc<dyn FileSystem> = Arc::new(FaultFs::new());
    let dir = Path::new("/wal");
    let mut wal = open(&fs, dir).unwrap();
    append(&mut wal, 300);
    let last = wal.writer.next_position() - 1;
    for p in 1..=last {
        let r = wal.reader.record_containing(p).unwrap().expect("published");
        assert!(r.meta.first_position <= p && p <= r.meta.last_position());
        assert_eq!(
            r.payload,
            payload(r.meta.first_position, r.meta.count).bytes()
        );
    }
    assert!(wal.reader.record_containing(last + 1).unwrap().is_none());
    assert!(wal.reader.record_containing(0).unwrap().is_none());
}

#[test]
fn sealed_segments_open_from_their_tables_below_the_replay_point() {
    let (fs_impl, fs, wal) = log_with(300);
    let dir = Path::new(DIR);
    let last = wal.writer.next_position() - 1;
    let sealed: Vec<u64> = wal
        .reader
        .segments()
        .snapshot()
        .iter()
        .filter(|s| s.is_sealed())
        .map(|s| s.first_position())
        .collect();
    assert!(sealed.len() >= 3);
    drop(wal);
    let reopen = |replay_from: u64| {
        let mut replayed = 0;
        let wal = gesta_wal::open(fs.clone(), dir, options(), replay_from, |_| {
            replayed += 1;
            Ok(())
        })
        .unwrap();
        (wal, replayed)
    };

    // Replaying everything scans everything.
    let (wal, replayed) = reopen(1);
    assert_eq!(wal.report.tables_trusted, 0);
    assert_eq!(replayed, wal.report.records);
    drop(wal);

    // Replaying only the tail trusts every sealed segment's table, and the
    // log reads exactly as before.
    let (wal, _) = reopen(last + 1);
    assert_eq!(wal.report.tables_trusted, sealed.len());
    assert_eq!(wal.report.last_position, last);
    check_contents(&wal, last);
    for p in [1, last / 3, last / 2, last] {
        let r = wal.reader.record_containing(p).unwrap().unwrap();
        assert!(r.meta.first_position <= p && p <= r.meta.last_position());
    }
    drop(wal);

    // A damaged table is ignored (the segment is scanned) and rewritten.
    let table = gesta_wal::table::table_path(dir, sealed[1]);
    fs_impl.corrupt(&table, 20, 0x04);
    let (wal, _) = reopen(last + 1);
    assert_eq!(wal.report.tables_trusted, sealed.len() - 1);
    check_contents(&wal, last);
    drop(wal);
    let (wal, _) = reopen(last + 1);
    assert_eq!(
        wal.report.tables_trusted,
        sealed.len(),
        "the table was rewritten"
    );

    // A record damaged after sealing is still caught when it is read.
    drop(wal);
    let victim = seg(dir, sealed[0]);
    fs_impl.corrupt(&victim, SEGMENT_HEADER_LEN as u64 + 40, 0x01);
    let (wal, _) = reopen(last + 1);
    let err = wal.reader.forward(1, u64::MAX).find_map(Result::err);
    assert!(matches!(err, Some(WalError::Corruption { file, .. }) if file == victim));
}
