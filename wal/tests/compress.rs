//! Sealed segments rewritten compressed: every read path sees the same
//! records, recovery opens compressed segments with and without their
//! offset tables, damage is reported against the compressed file, and a
//! crash at any operation of a rewrite loses nothing.

use std::path::Path;
use std::sync::Arc;

use gesta_wal::files::compressed_file_name;
use gesta_wal::io::fault::{CrashMode, FaultFs};
use gesta_wal::io::{FileSystem, OpenMode, StdFs, read_all};
use gesta_wal::{Compression, OpenedWal, Pushed, RecordMeta, WalError, WalOptions};

mod common;
use common::{append, payload};

fn options() -> WalOptions {
    WalOptions {
        segment_size: 4096,
        preallocate: 1024,
        block_cache_bytes: 16 << 10,
        ..WalOptions::default()
    }
}

/// Small blocks, so that records straddle block boundaries.
fn settings() -> Compression {
    Compression {
        level: 3,
        block_size: 512,
        dictionary_size: 256,
    }
}

fn open_from(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    replay_from: u64,
) -> Result<OpenedWal, WalError> {
    gesta_wal::open(fs.clone(), dir, options(), replay_from, |_| Ok(()))
}

/// Every record through every read path: forwards, backwards and by
/// position.
fn check_contents(wal: &OpenedWal, last: u64) {
    common::check_contents(wal, last);
    let mut above = last + 1;
    for r in wal.reader.backward(last) {
        let r = r.unwrap();
        assert_eq!(r.meta.last_position() + 1, above);
        above = r.meta.first_position;
    }
    assert_eq!(above, 1);
    for position in 1..=last {
        let r = wal.reader.record_containing(position).unwrap().unwrap();
        assert!(r.meta.first_position <= position && position <= r.meta.last_position());
        let want = payload(r.meta.first_position, r.meta.count).bytes().clone();
        assert_eq!(r.payload, want);
        // A point read's head, and its payload read in pieces, as a point
        // read of a compressed segment reads them.
        let head = wal
            .reader
            .record_head_containing(position)
            .unwrap()
            .unwrap();
        assert_eq!((head.meta, head.seq()), (r.meta, &r.seq));
        assert_eq!(head.payload_len(), want.len());
        let half = want.len() / 2;
        assert_eq!(head.payload_range(0, half).unwrap(), want.slice(..half));
        assert_eq!(
            head.payload_range(half, want.len()).unwrap(),
            want.slice(half..)
        );
        assert!(head.payload_range(half, want.len() + 1).is_err());
    }
}

/// Every compressed segment's offset table has an entry per block of
/// `settings()`'s size that a record starts in (so a point read walks the
/// heads of one block), not one per 4 KiB as a plain segment's.
fn assert_block_indexed(fs: &dyn FileSystem, dir: &Path) {
    let block = u64::from(settings().block_size);
    let mut seen = 0;
    for name in names(fs, dir).iter().filter(|n| n.ends_with(".zseg")) {
        let first: u64 = name.trim_end_matches(".zseg").parse().unwrap();
        let table = gesta_wal::files::SegmentTable::load(fs, dir, first)
            .unwrap()
            .unwrap_or_else(|| panic!("{name} has no offset table"));
        let blocks: Vec<u64> = table.entries.iter().map(|&(_, o)| o / block).collect();
        assert!(
            blocks.windows(2).all(|w| w[0] < w[1]),
            "{name}: one entry per block at most: {:?}",
            table.entries
        );
        // A 4 KiB segment of small records starts records in most of its
        // 512-byte blocks.
        assert!(
            blocks.len() as u64 * 2 >= table.end / block,
            "{name}: {} entries for {} bytes",
            blocks.len(),
            table.end
        );
        seen += 1;
    }
    assert!(seen > 0);
}

fn names(fs: &dyn FileSystem, dir: &Path) -> Vec<String> {
    let mut n = fs.list(dir).unwrap();
    n.sort();
    n
}

#[test]
fn compressed_segments_read_and_reopen_like_the_originals() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    let mut wal = open_from(&fs, &dir, 1).unwrap();
    append(&mut wal, 300);
    let last = wal.writer.next_position() - 1;
    let sealed = wal.reader.segments().len() - 1;
    assert!(sealed >= 5, "the workload must seal several segments");

    let report = wal
        .compressor
        .compress_sealed(settings(), None, &|| false)
        .unwrap();
    assert_eq!(report.segments, sealed);
    assert!(
        report.bytes_after * 2 < report.bytes_before,
        "compressible records should at least halve: {report:?}"
    );
    let listing = names(fs.as_ref(), &dir);
    assert_eq!(
        listing.iter().filter(|n| n.ends_with(".zseg")).count(),
        sealed
    );
    assert_eq!(listing.iter().filter(|n| n.ends_with(".seg")).count(), 1);
    // Each compressed file carries the dictionary trained on its blocks.
    for name in listing.iter().filter(|n| n.ends_with(".zseg")) {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let layout = gesta_wal::files::Layout::decode(&bytes).unwrap();
        assert!(!layout.dictionary.is_empty(), "{name} has no dictionary");
    }
    check_contents(&wal, last);
    assert_block_indexed(fs.as_ref(), &dir);
    let stats = wal.compressor.cache_stats();
    assert!(stats.hits > 0 && stats.misses > 0, "{stats:?}");
    assert!(stats.bytes <= 16 << 10);
    // A second pass finds nothing left to do.
    assert_eq!(
        wal.compressor
            .compress_sealed(settings(), None, &|| false)
            .unwrap()
            .segments,
        0
    );

    // Appends go on after compression, and seal more segments.
    append(&mut wal, 100);
    let last = wal.writer.next_position() - 1;
    wal.writer.close().unwrap();
    drop(wal);

    // Reopened from the offset tables (nothing to replay) and by a full
    // scan of every record (replay from 1).
    for replay_from in [u64::MAX, 1] {
        let wal = open_from(&fs, &dir, replay_from).unwrap();
        assert_eq!(wal.report.last_position, last);
        check_contents(&wal, last);
        assert_block_indexed(fs.as_ref(), &dir);
    }
    // Without their tables, the compressed segments are scanned and
    // indexed by block again.
    for name in names(fs.as_ref(), &dir)
        .iter()
        .filter(|n| n.ends_with(".off"))
    {
        fs.remove_file(&dir.join(name)).unwrap();
    }
    let wal = open_from(&fs, &dir, u64::MAX).unwrap();
    check_contents(&wal, last);
    assert_block_indexed(fs.as_ref(), &dir);
    drop(wal);
    let mut wal = open_from(&fs, &dir, 1).unwrap();
    assert!(
        wal.compressor
            .compress_sealed(settings(), None, &|| false)
            .unwrap()
            .segments
            > 0
    );
    check_contents(&wal, last);
    append(&mut wal, 10);
    check_contents(&wal, last + 19);
}

/// A group never spans a rollover: the record that would take a group
/// past the segment's end is refused until the group is committed, so the
/// segment is sealed only once every record in it is published, and a
/// rewrite can never compress a segment without its last records.
#[test]
fn a_segment_is_sealed_only_after_its_last_group_is_published() {
    let fs_impl = FaultFs::new();
    let fs: Arc<dyn FileSystem> = Arc::new(fs_impl.clone());
    let dir = Path::new("/store/wal");
    let mut wal = open_from(&fs, dir, 1).unwrap();
    append(&mut wal, 3);
    // One group, not committed yet, that fills the first segment.
    let mut pushed = 0;
    let refused = loop {
        let first = wal.writer.next_position();
        let meta = RecordMeta {
            first_position: first,
            count: 1,
            timestamp_micros: first,
        };
        match wal.writer.push(meta, b"", &payload(first, 1)).unwrap() {
            Pushed::Added => pushed += 1,
            Pushed::SegmentFull => break meta,
        }
    };
    assert!(pushed > 5);
    assert_eq!(wal.reader.segments().len(), 1);
    assert!(!wal.reader.segments().snapshot()[0].is_sealed());
    let early = wal
        .compressor
        .compress_sealed(settings(), None, &|| false)
        .unwrap();
    assert_eq!(early.segments, 0, "compressed an unsealed segment");
    wal.writer.commit(true).unwrap();
    let first = refused.first_position;
    assert_eq!(
        wal.writer.push(refused, b"", &payload(first, 1)).unwrap(),
        Pushed::Added,
        "an empty group starts the next segment"
    );
    assert_eq!(wal.reader.segments().len(), 2);
    assert!(wal.reader.segments().snapshot()[0].is_sealed());
    wal.writer.commit(true).unwrap();
    let last = wal.writer.next_position() - 1;
    let done = wal
        .compressor
        .compress_sealed(settings(), None, &|| false)
        .unwrap();
    assert_eq!(done.segments, 1);
    check_contents(&wal, last);
    wal.writer.close().unwrap();
    drop(wal);
    let wal = open_from(&fs, dir, 1).unwrap();
    check_contents(&wal, last);
}

#[test]
fn reads_during_compression_see_every_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    let mut wal = open_from(&fs, &dir, 1).unwrap();
    append(&mut wal, 600);
    let last = wal.writer.next_position() - 1;
    let reader = wal.reader.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (reader, stop) = (reader.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut rounds = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || rounds == 0 {
                    let count = reader
                        .forward(1, u64::MAX)
                        .map(|r| r.unwrap().meta.count as u64)
                        .sum::<u64>();
                    assert_eq!(count, last);
                    for p in (1..=last).step_by(37) {
                        let r = reader.record_containing(p).unwrap().unwrap();
                        assert_eq!(
                            r.payload,
                            payload(r.meta.first_position, r.meta.count).bytes()
                        );
                    }
                    rounds += 1;
                }
            })
        })
        .collect();
    wal.compressor
        .compress_sealed(settings(), None, &|| false)
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    check_contents(&wal, last);
}

#[test]
fn damage_in_a_compressed_segment_is_corruption_of_that_file() {
    let fs_impl = FaultFs::new();
    let fs: Arc<dyn FileSystem> = Arc::new(fs_impl.clone());
    let dir = Path::new("/store/wal");
    let mut wal = open_from(&fs, dir, 1).unwrap();
    append(&mut wal, 100);
    wal.compressor
        .compress_sealed(settings(), None, &|| false)
        .unwrap();
    wal.writer.close().unwrap();
    drop(wal);
    let path = dir.join(compressed_file_name(1));
    // A byte inside the first compressed block, after the header and the
    // dictionary.
    let bytes = read_all(fs.open(&path, OpenMode::Existing).unwrap().as_ref()).unwrap();
    let dictionary = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as u64;
    fs_impl.corrupt(&path, 24 + dictionary + 16, 0x20);

    // Trusting the offset tables, the store opens; reading the damaged
    // block names the compressed file.
    let wal = open_from(&fs, dir, u64::MAX).unwrap();
    let err = wal.reader.record_containing(1).unwrap_err();
    match err {
        WalError::Corruption { file, .. } => assert_eq!(file, path),
        other => panic!("expected corruption, got {other}"),
    }
    drop(wal);
    // Scanning, recovery refuses to open.
    match open_from(&fs, dir, 1) {
        Err(WalError::Corruption { file, .. }) => assert_eq!(file, path),
        Err(other) => panic!("expected corruption, got {other}"),
        Ok(_) => panic!("a damaged compressed segment opened"),
    }
}

#[test]
fn a_crash_at_any_operation_of_a_rewrite_loses_nothing() {
    let dir = Path::new("/store/wal");
    for mode in [CrashMode::DropUnsynced, CrashMode::Torn { seed: 7 }] {
        let mut crash_at = 0;
        loop {
            let fs_impl = FaultFs::new();
            let fs: Arc<dyn FileSystem> = Arc::new(fs_impl.clone());
            let mut wal = open_from(&fs, dir, 1).unwrap();
            append(&mut wal, 150);
            assert!(wal.reader.segments().len() >= 4);
            let last = wal.writer.next_position() - 1;
            fs_impl.crash_after(crash_at);
            let finished = wal
                .compressor
                .compress_sealed(settings(), None, &|| false)
                .is_ok()
                && !fs_impl.is_down();
            drop(wal);
            fs_impl.crash(mode);

            let wal = open_from(&fs, dir, 1)
                .unwrap_or_else(|e| panic!("{mode:?}, crash at op {crash_at}: {e}"));
            assert_eq!(wal.report.last_position, last, "{mode:?} at {crash_at}");
            check_contents(&wal, last);
            let listing = names(fs.as_ref(), dir);
            assert!(
                !listing.iter().any(|n| n.ends_with(".tmp")),
                "{mode:?} at {crash_at}: leftovers {listing:?}"
            );
            for n in listing.iter().filter(|n| n.ends_with(".zseg")) {
                let plain = n.replace(".zseg", ".seg");
                assert!(
                    !listing.contains(&plain),
                    "{mode:?} at {crash_at}: both {n} and {plain}"
                );
            }
            // The rewrite can be finished after the crash.
            wal.compressor
                .compress_sealed(settings(), None, &|| false)
                .unwrap();
            check_contents(&wal, last);
            if finished {
                assert!(crash_at > 20, "the rewrite should take several operations");
                break;
            }
            crash_at += 1;
        }
    }
}

/// Large records in large compressed segments: a forward scan reads them
/// in chunks of many blocks, decompressed on two threads, and a record
/// crossing the end of one chunk is completed with the next blocks only.
/// Every scan, from any start, sees the records the plain segments held.
#[test]
fn scans_of_large_compressed_segments_cross_their_reads_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    let options = WalOptions {
        segment_size: 12 << 20,
        preallocate: 1 << 20,
        block_cache_bytes: 64 << 10,
        ..WalOptions::default()
    };
    let mut wal = gesta_wal::open(fs.clone(), &dir, options, 1, |_| Ok(())).unwrap();
    // Records of 1 KiB to about 700 KiB, compressible but not trivially.
    let body = |first: u64, len: usize| -> bytes::Bytes {
        let mut b = Vec::with_capacity(len);
        let mut x = first.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        while b.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.extend_from_slice(format!("{first}:{} ", x % 1000).as_bytes());
        }
        b.truncate(len);
        bytes::Bytes::from(b)
    };
    let mut sizes = Vec::new();
    for i in 0..60u64 {
        let first = wal.writer.next_position();
        let len = 1024 + (i * 7919 % 97) as usize * 7 * 1024;
        let meta = RecordMeta {
            first_position: first,
            count: 1,
            timestamp_micros: first,
        };
        let payload = gesta_wal::Payload::new(body(first, len));
        assert_eq!(wal.writer.push(meta, b"", &payload).unwrap(), Pushed::Added);
        wal.writer.commit(true).unwrap();
        sizes.push(len);
    }
    assert!(sizes.iter().any(|&s| s > 512 << 10));
    wal.writer.seal_active().unwrap();
    let last = wal.writer.next_position() - 1;
    let plain: Vec<_> = wal
        .reader
        .forward(1, u64::MAX)
        .map(|r| r.unwrap().payload)
        .collect();
    assert_eq!(plain.len() as u64, last);
    let settings = Compression {
        level: 1,
        block_size: 1024,
        dictionary_size: 0,
    };
    let report = wal
        .compressor
        .compress_sealed(settings, None, &|| false)
        .unwrap();
    assert!(report.segments >= 1, "{report:?}");
    for from in [1, 2, last / 2, last] {
        let read: Vec<_> = wal
            .reader
            .forward(from, u64::MAX)
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(read.len() as u64, last - from + 1, "from {from}");
        for r in read {
            let p = r.meta.first_position;
            assert_eq!(r.payload, plain[p as usize - 1], "record {p} from {from}");
            assert_eq!(r.payload, body(p, sizes[p as usize - 1]));
        }
    }
}
