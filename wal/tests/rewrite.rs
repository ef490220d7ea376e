//! Sealed segments rewritten in place of themselves (what erasing events'
//! bytes needs): records keep their offsets, every read path sees the new
//! payloads, plain and compressed segments alike, the header says version
//! 4, and a crash at any operation of a rewrite leaves the old segment or
//! the new one whole.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use gesta_wal::format::{NEWEST_SEGMENT_VERSION, SegmentHeader, segment_file_name};
use gesta_wal::io::fault::{CrashMode, FaultFs};
use gesta_wal::io::{FileSystem, OpenMode, read_all};
use gesta_wal::{Compression, OpenedWal, Record, WalError, WalOptions};

mod common;
use common::{append, payload};

const DIR: &str = "/wal";

fn options() -> WalOptions {
    WalOptions {
        segment_size: 4096,
        preallocate: 1024,
        block_cache_bytes: 16 << 10,
        ..WalOptions::default()
    }
}

fn settings() -> Compression {
    Compression {
        level: 3,
        block_size: 512,
        dictionary_size: 256,
    }
}

fn open(fs: &Arc<dyn FileSystem>) -> Result<OpenedWal, WalError> {
    gesta_wal::open(fs.clone(), Path::new(DIR), options(), 1, |_| Ok(()))
}

/// The payload of records whose first position is even, with its bytes
/// after the first 6 ("events") replaced by `#`.
fn scrubbed(r: &Record) -> Option<Bytes> {
    r.meta.first_position.is_multiple_of(2).then(|| {
        let mut p = r.payload.to_vec();
        p[6..].fill(b'#');
        Bytes::from(p)
    })
}

/// What each record must read as: scrubbed or not.
fn check(wal: &OpenedWal, last: u64, scrubbed_up_to: u64) {
    let mut next = 1;
    for r in wal.reader.forward(1, u64::MAX) {
        let r = r.unwrap();
        assert_eq!(r.meta.first_position, next);
        let mut want = payload(next, r.meta.count).bytes().to_vec();
        if next.is_multiple_of(2) && r.meta.last_position() <= scrubbed_up_to {
            want[6..].fill(b'#');
        }
        assert_eq!(r.payload, want, "record at {next}");
        let point = wal.reader.record_containing(next).unwrap().unwrap();
        assert_eq!(point.payload, want, "point read at {next}");
        next = r.meta.last_position() + 1;
    }
    assert_eq!(next - 1, last);
}

fn sealed_firsts(wal: &OpenedWal) -> Vec<u64> {
    let segments = wal.reader.segments();
    (0..segments.len() - 1)
        .map(|i| segments.get(i).unwrap().first_position())
        .collect()
}

#[test]
fn a_rewrite_keeps_offsets_and_changes_payloads_plain_and_compressed() {
    for compressed in [false, true] {
        let fs_impl = FaultFs::new();
        let fs: Arc<dyn FileSystem> = Arc::new(fs_impl.clone());
        let mut wal = open(&fs).unwrap();
        append(&mut wal, 400);
        let last = wal.writer.next_position() - 1;
        common::check_contents(&wal, last);
        if compressed {
            wal.compressor
                .compress_sealed(settings(), None, &|| false)
                .unwrap();
        }
        let firsts = sealed_firsts(&wal);
        assert!(firsts.len() >= 3, "{firsts:?}");
        let sealed_last = wal
            .reader
            .segments()
            .get(firsts.len())
            .unwrap()
            .first_position()
            - 1;
        for &first in &firsts {
            let report = wal
                .compressor
                .rewrite_sealed(first, settings(), &mut scrubbed)
                .unwrap()
                .expect("records rewritten");
            assert!(report.records > 0);
            // Nothing left to change: no second write.
            let again = wal
                .compressor
                .rewrite_sealed(first, settings(), &mut |_| None)
                .unwrap();
            assert_eq!(again, None);
        }
        check(&wal, last, sealed_last);
        // The active segment is not rewritten.
        let active = wal
            .reader
            .segments()
            .get(firsts.len())
            .unwrap()
            .first_position();
        assert_eq!(
            wal.compressor
                .rewrite_sealed(active, settings(), &mut scrubbed)
                .unwrap(),
            None
        );
        // A payload of another length is refused.
        let longer = wal
            .compressor
            .rewrite_sealed(firsts[0], settings(), &mut |r| {
                Some(Bytes::from(vec![0; r.payload.len() + 1]))
            });
        assert!(
            matches!(longer, Err(WalError::Corruption { .. })),
            "{longer:?}"
        );
        drop(wal);
        let wal = open(&fs).unwrap();
        check(&wal, last, sealed_last);
        // A rewritten plain segment says version 4 in its header.
        for &first in &firsts {
            let name = if compressed {
                gesta_wal::files::compressed_file_name(first)
            } else {
                segment_file_name(first)
            };
            let file = fs
                .open(&Path::new(DIR).join(name), OpenMode::Existing)
                .unwrap();
            let bytes = read_all(file.as_ref()).unwrap();
            if !compressed {
                assert_eq!(SegmentHeader::version_of(&bytes), NEWEST_SEGMENT_VERSION);
            }
        }
        drop(fs_impl);
    }
}

#[test]
fn a_crash_at_any_step_of_a_rewrite_leaves_old_or_new() {
    for compressed in [false, true] {
        // How many mutating operations a rewrite takes.
        let base = || {
            let fs_impl = FaultFs::new();
            let fs: Arc<dyn FileSystem> = Arc::new(fs_impl.clone());
            let mut wal = open(&fs).unwrap();
            append(&mut wal, 100);
            if compressed {
                wal.compressor
                    .compress_sealed(settings(), None, &|| false)
                    .unwrap();
            }
            (fs_impl, fs, wal)
        };
        let (fs_impl, _, wal) = base();
        let before = fs_impl.mutating_ops();
        let first = sealed_firsts(&wal)[0];
        wal.compressor
            .rewrite_sealed(first, settings(), &mut scrubbed)
            .unwrap()
            .unwrap();
        let ops = fs_impl.mutating_ops() - before;
        assert!(ops >= 3, "{ops}");
        let second = wal.reader.segments().get(1).unwrap().first_position();
        drop(wal);
        let mut outcomes = [0; 2];
        for n in 1..=ops {
            for mode in [CrashMode::DropUnsynced, CrashMode::Torn { seed: n }] {
                let (fs_impl, fs, wal) = base();
                let last = wal.writer.next_position() - 1;
                fs_impl.crash_after(n);
                let _ = wal
                    .compressor
                    .rewrite_sealed(first, settings(), &mut scrubbed);
                drop(wal);
                fs_impl.crash(mode);
                let wal = open(&fs).unwrap_or_else(|e| panic!("crash after {n}: {e}"));
                // All of the segment scrubbed, or none of it.
                let r = wal.reader.record_containing(2).unwrap().unwrap();
                let new = r.payload[6..].iter().all(|&b| b == b'#');
                outcomes[usize::from(new)] += 1;
                check(&wal, last, if new { second - 1 } else { 0 });
            }
        }
        assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
    }
}
