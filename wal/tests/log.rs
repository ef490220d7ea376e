//! The segment log end to end: rollover, reading across segments, and
//! recovery — empty log, clean reopen, torn tail cut, corruption refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gesta_wal::format::{BODY_FIXED_LEN, FRAME_LEN, SEGMENT_HEADER_LEN, segment_file_name};
use gesta_wal::io::fault::{CrashMode, FaultFs};
use gesta_wal::io::{FileSystem, OpenMode, StdFs};
use gesta_wal::{OpenedWal, Pushed, RecordMeta, WalError, WalOptions};

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

/// Pushes one record of one event and commits it with a sync.
fn commit_one(wal: &mut OpenedWal) -> Result<(), WalError> {
    let first = wal.writer.next_position();
    let meta = RecordMeta {
        first_position: first,
        count: 1,
        timestamp_micros: first * 10,
    };
    match wal.writer.push(meta, b"", &payload(first, 1))? {
        Pushed::Added => wal.writer.commit(true),
        Pushed::SegmentFull => panic!("a group of one record always fits"),
    }
}

/// Reopens the log on `fs` (faults cleared), after a power loss if
/// `crash`, and checks that it holds exactly positions up to `last`.
fn reopen_holds(fs_impl: &FaultFs, wal: OpenedWal, crash: bool, last: u64) -> OpenedWal {
    drop(wal);
    fs_impl.clear_faults();
    if crash {
        fs_impl.crash(CrashMode::DropUnsynced);
    }
    let fs: Arc<dyn FileSystem> = Arc::new(fs_impl.clone());
    let mut wal = open(&fs, Path::new(DIR)).unwrap();
    check_contents(&wal, last);
    commit_one(&mut wal).unwrap();
    check_contents(&wal, last + 1);
    wal
}

/// A failed write or sync of a group's records poisons the writer, and the
/// group is cut off the log before the commit answers: `WalError::Io`
/// means the records are not there after a reopen, with or without a power
/// loss — even when the failed operation took effect (a short write, a
/// sync that made the data durable and still reported an error).
#[test]
fn a_failed_write_or_sync_is_rolled_back_and_poisons_the_writer() {
    use gesta_wal::io::fault::{Fault, OpKind};
    for kind in [OpKind::Write, OpKind::Sync] {
        for partly in [false, true] {
            for crash in [false, true] {
                let case = format!("{kind:?} partly {partly} crash {crash}");
                let (fs_impl, _fs, mut wal) = log_with(3);
                let before = wal.writer.next_position() - 1;
                if partly {
                    fs_impl.fail_nth_partly(kind, 1, Fault::Eio);
                } else {
                    fs_impl.fail_nth(kind, 1, Fault::Eio);
                }
                match commit_one(&mut wal) {
                    Err(WalError::Io { source, .. }) => {
                        assert_eq!(source.raw_os_error(), Some(5), "{case}")
                    }
                    other => panic!("{case}: {other:?}"),
                }
                assert!(wal.writer.is_poisoned(), "{case}");
                assert_eq!(wal.writer.next_position(), before + 1, "{case}");
                assert!(matches!(wal.writer.commit(true), Err(WalError::Poisoned)));
                assert!(matches!(commit_one(&mut wal), Err(WalError::Poisoned)));
                // Readers only see what was published before the failure.
                check_contents(&wal, before);
                reopen_holds(&fs_impl, wal, crash, before);
            }
        }
    }
}

/// When cutting the failed group off fails too, the commit says the
/// outcome is unknown; a reopen finds the group whole or not at all.
#[test]
fn a_failed_rollback_makes_the_outcome_indeterminate() {
    use gesta_wal::io::fault::{Fault, OpKind};
    let (fs_impl, _fs, mut wal) = log_with(3);
    let before = wal.writer.next_position() - 1;
    fs_impl.fail_nth_partly(OpKind::Sync, 1, Fault::Eio);
    fs_impl.fail_nth(OpKind::SetLen, 1, Fault::Eio);
    match commit_one(&mut wal) {
        Err(e @ WalError::Indeterminate { .. }) => {
            assert!(e.to_string().contains("may or may not"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert!(wal.writer.is_poisoned());
    check_contents(&wal, before);
    // The failed sync made the record durable, and it was not cut off.
    reopen_holds(&fs_impl, wal, true, before + 1);
}

/// A full disk while the writer makes room (preallocating ahead of the
/// records, creating the next segment) fails the group before any of it
/// is written: the error is definite and the writer stays usable, so
/// appends resume once there is space again. A full disk while it tidies a
/// sealed segment (trim, offset table) fails nothing at all.
#[test]
fn no_space_to_make_room_fails_the_group_and_keeps_the_writer() {
    use gesta_wal::io::fault::{Fault, OpKind};
    let (mut definite_and_usable, mut absorbed) = (0, 0);
    for (kind, n) in [
        (OpKind::Write, 30),
        (OpKind::Open, 6),
        (OpKind::SyncDir, 6),
        (OpKind::SetLen, 5),
    ] {
        for nth in 1..=n {
            let case = format!("{kind:?} #{nth}");
            let (fs_impl, _fs, mut wal) = log_with(1);
            let ops = fs_impl.op_count(kind);
            fs_impl.fail_nth(kind, nth, Fault::Enospc);
            let mut last = wal.writer.next_position() - 1;
            let mut error = None;
            for _ in 0..400 {
                match commit_one(&mut wal) {
                    Ok(()) => last += 1,
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            assert!(fs_impl.op_count(kind) - ops >= nth, "{case} never fired");
            check_contents(&wal, last);
            let Some(error) = error else {
                absorbed += 1;
                reopen_holds(&fs_impl, wal, true, last);
                continue;
            };
            assert!(matches!(error, WalError::Io { .. }), "{case}: {error:?}");
            if wal.writer.is_poisoned() {
                // The records' own write failed: cut off, poisoned.
                assert_eq!(kind, OpKind::Write, "{case}");
                reopen_holds(&fs_impl, wal, nth % 2 == 0, last);
                continue;
            }
            definite_and_usable += 1;
            fs_impl.clear_faults();
            commit_one(&mut wal).unwrap_or_else(|e| panic!("{case}: {e}"));
            check_contents(&wal, last + 1);
            for _ in 0..20 {
                commit_one(&mut wal).unwrap();
            }
            reopen_holds(&fs_impl, wal, true, last + 21);
        }
    }
    assert!(definite_and_usable >= 8, "{definite_and_usable}");
    assert!(absorbed >= 5, "{absorbed}");
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
    let table = gesta_wal::files::table_path(dir, sealed[1]);
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

/// Rewrites the header of the segment at `path` as format `version` writes
/// it (as a log written by an older build would have it).
fn set_header_version(fs: &FaultFs, path: &Path, first: u64, version: u32) {
    let header = gesta_wal::format::SegmentHeader {
        first_position: first,
    }
    .encode_version(version);
    let f = fs.open(path, OpenMode::Existing).unwrap();
    f.write_at(&header, 0).unwrap();
    f.sync_data().unwrap();
}

fn header_version(fs: &FaultFs, path: &Path) -> u32 {
    let f = fs.open(path, OpenMode::Existing).unwrap();
    let mut b = [0u8; 4];
    f.read_at(&mut b, 8).unwrap();
    u32::from_le_bytes(b)
}

/// A log whose active segment is of format 2 (written by an older build)
/// is read as it is, and its next record starts a new segment of this
/// build's format: no record of a later format lands in a segment whose
/// version says it cannot hold one.
#[test]
fn an_older_format_active_segment_is_read_and_closed_to_new_records() {
    use gesta_wal::format::{NEWEST_SEGMENT_VERSION, OLDEST_SEGMENT_VERSION, SEGMENT_VERSION};
    let (fs_impl, fs, mut wal) = log_with(3);
    let last = wal.writer.next_position() - 1;
    assert_eq!(wal.reader.segments().len(), 1);
    wal.writer.close().unwrap();
    drop(wal);
    let dir = Path::new(DIR);
    set_header_version(&fs_impl, &seg(dir, 1), 1, OLDEST_SEGMENT_VERSION);

    let mut wal = open(&fs, dir).unwrap();
    check_contents(&wal, last);
    append(&mut wal, 2);
    let last = wal.writer.next_position() - 1;
    assert_eq!(
        wal.reader.segments().len(),
        2,
        "the next record started a segment"
    );
    let second = wal.reader.segments().get(1).unwrap().first_position();
    assert_eq!(
        header_version(&fs_impl, &seg(dir, 1)),
        OLDEST_SEGMENT_VERSION
    );
    assert_eq!(header_version(&fs_impl, &seg(dir, second)), SEGMENT_VERSION);
    wal.writer.close().unwrap();
    drop(wal);
    let wal = open(&fs, dir).unwrap();
    check_contents(&wal, last);

    // An empty active segment of the older format says it holds this
    // format once opened, as it will.
    let (fs_impl, fs, wal) = log_with(0);
    drop(wal);
    set_header_version(&fs_impl, &seg(dir, 1), 1, OLDEST_SEGMENT_VERSION);
    let mut wal = open(&fs, dir).unwrap();
    assert_eq!(header_version(&fs_impl, &seg(dir, 1)), SEGMENT_VERSION);
    append(&mut wal, 2);
    let last = wal.writer.next_position() - 1;
    assert_eq!(wal.reader.segments().len(), 1);
    drop(wal);
    check_contents(&open(&fs, dir).unwrap(), last);

    // A format this build does not know is refused by name.
    let (fs_impl, fs, wal) = log_with(1);
    drop(wal);
    set_header_version(&fs_impl, &seg(dir, 1), 1, NEWEST_SEGMENT_VERSION + 1);
    match open(&fs, dir) {
        Err(WalError::Corruption { reason, .. }) => {
            assert!(
                reason.contains(&format!("version {}", NEWEST_SEGMENT_VERSION + 1)),
                "{reason}"
            )
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
}
