//! Redaction leaves no byte behind: an event carrying a unique secret in
//! its data and metadata is redacted, the store compacted, and then every
//! file under the store's directory is searched byte for byte — compressed
//! segments decompressed, snapshots decoded — and the secret is nowhere.
//! The same store is then intact (`verify`), reads the redacted event with
//! empty data and metadata and every other event as it was, and keeps
//! doing so after a reopen. Also: a crash at every step of the rewrite
//! leaves a store that reads the same and is erased by the next compact.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use gesta::lifecycle::Target;
use gesta::{Compression, NewEvent, Options, Query, ReadOptions, RecordedEvent, Store};
use gesta_tests::files::{contains, files, holders};

const SECRET: &[u8] = b"secret-7f3a9c1e-erase-me";
const META_SECRET: &[u8] = b"meta-secret-52b8d0a4";

fn event(i: u64) -> NewEvent {
    NewEvent::new("Registered", format!("{{\"user\":{i}}}"))
        .tag(format!("user:{i}"))
        .stream(format!("user-{}", i % 3))
        .metadata(format!("meta {i}"))
}

fn secret_event() -> NewEvent {
    NewEvent::new("Registered", Bytes::from_static(SECRET))
        .tag("user:secret")
        .stream("user-0")
        .metadata(Bytes::from_static(META_SECRET))
}

fn all(store: &Store) -> Vec<RecordedEvent> {
    store
        .read(&Query::all(), ReadOptions::forwards())
        .unwrap()
        .collect::<gesta::Result<_>>()
        .unwrap()
}

/// Fills a store with the secret in the middle (`at`), a snapshot that
/// holds it, and more events; returns the store and the secret's position.
fn store_with_secret(dir: &Path, options: Options, before: u64, after: u64) -> (Store, u64) {
    let store = Store::open_with(dir, options).unwrap();
    for i in 0..before {
        store.append(vec![event(i)]).unwrap();
    }
    let at = store.append(vec![secret_event()]).unwrap().first;
    for i in 0..after {
        store.append(vec![event(1000 + i)]).unwrap();
    }
    // A projection's state folded from the secret, saved after it, and one
    // saved before it and before its stream revision (which cannot hold
    // it, whether its number is a position or a revision).
    store.save_snapshot("profile", at + 1, SECRET).unwrap();
    store.save_snapshot("profile", 1, b"older").unwrap();
    (store, at)
}

fn check_erased(dir: &Path, store: &Store, at: u64, before: &[RecordedEvent]) {
    assert_eq!(holders(dir, SECRET), Vec::<PathBuf>::new());
    assert_eq!(holders(dir, META_SECRET), Vec::<PathBuf>::new());
    // Reads: the redacted event without data and metadata, the rest as
    // it was.
    let now = all(store);
    assert_eq!(now.len(), before.len());
    for (a, b) in now.iter().zip(before) {
        if a.position == at {
            assert!(a.data.is_empty() && a.metadata.is_empty(), "{a:?}");
            let mut expected = b.clone();
            expected.data = Bytes::new();
            expected.metadata = Bytes::new();
            assert_eq!(a, &expected);
        } else {
            assert_eq!(a, b);
        }
    }
    let found = store
        .read_last(&Query::tag("user:secret"))
        .unwrap()
        .unwrap();
    assert_eq!((found.position, found.data.len()), (at, 0));
    assert_eq!(store.list_snapshots("profile").unwrap(), vec![1]);
}

fn run(options: impl Fn() -> Options, before: u64, after: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (store, at) = store_with_secret(dir, options(), before, after);
    assert!(
        !holders(dir, SECRET).is_empty(),
        "the secret was never written"
    );
    let original = all(&store);
    let result = store.redact(&Target::Positions(vec![at])).unwrap();
    assert_eq!((result.targeted, result.redacted), (1, 1));
    // Reads hide the data at once; the bytes wait for compact.
    let read = store
        .read_last(&Query::tag("user:secret"))
        .unwrap()
        .unwrap();
    assert!(read.data.is_empty() && read.metadata.is_empty());
    store.compact().unwrap();
    check_erased(dir, &store, at, &original);
    // Appends go on, and a second compact finds nothing to do.
    store.append(vec![event(5000)]).unwrap();
    store.compact().unwrap();
    store.close().unwrap();
    let report = gesta::inspect::verify(dir, &mut |_, _| {}).unwrap();
    assert!(report.is_intact(), "{:#?}", report.findings);
    let store = Store::open_with(dir, options()).unwrap();
    let mut expected = original;
    expected.push(all(&store).pop().unwrap());
    check_erased(dir, &store, at, &expected);
}

fn small_segments() -> Options {
    Options::default().segment_size(16 << 10)
}

/// A snapshot saved at a stream revision (an aggregate's state at its
/// version) that folded an erased event goes too: its number is far below
/// the event's position, so a rule by positions alone kept the secret in
/// `snapshots/` after `compact`. One saved at a lower revision stays.
#[test]
fn a_snapshot_at_a_stream_revision_that_folded_an_erased_event_is_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open_with(tmp.path(), small_segments()).unwrap();
    for i in 0..20 {
        store
            .append(vec![NewEvent::new("Filler", format!("{i}"))])
            .unwrap();
    }
    let account =
        |data: &'static [u8]| NewEvent::new("Changed", Bytes::from_static(data)).stream("acct-7");
    store.append(vec![account(b"opened")]).unwrap();
    store.append(vec![account(b"named")]).unwrap();
    let at = store.append(vec![account(SECRET)]).unwrap().first;
    store
        .save_snapshot("acct-7", 1, b"state at revision 1")
        .unwrap();
    store.save_snapshot("acct-7", 2, SECRET).unwrap();
    store.redact(&Target::Positions(vec![at])).unwrap();
    store.compact().unwrap();
    assert_eq!(store.list_snapshots("acct-7").unwrap(), vec![1]);
    assert_eq!(holders(tmp.path(), SECRET), Vec::<PathBuf>::new());
}

#[test]
fn a_redacted_event_in_the_active_segment_leaves_no_byte() {
    run(small_segments, 5, 5);
}

#[test]
fn a_redacted_event_in_a_sealed_segment_leaves_no_byte() {
    run(small_segments, 5, 400);
}

#[test]
fn a_redacted_event_in_a_compressed_segment_leaves_no_byte() {
    let compressed = || small_segments().compression(Some(Compression::default()));
    // Compressed before the redaction: the rewrite compresses again.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (store, at) = store_with_secret(dir, compressed(), 5, 400);
    store.compact().unwrap();
    let zsegs = files(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "zseg"))
        .count();
    assert!(zsegs > 0, "nothing was compressed");
    assert!(!holders(dir, SECRET).is_empty());
    let original = all(&store);
    store
        .redact(&Target::Query(Query::tag("user:secret")))
        .unwrap();
    store.compact().unwrap();
    check_erased(dir, &store, at, &original);
    store.close().unwrap();
    // And a store compressed only after the redaction.
    run(compressed, 5, 400);
}

mod crashes {
    use super::*;
    use gesta::io::FileSystem;
    use gesta::io::fault::{CrashMode, FaultFs};

    const DIR: &str = "/store";

    /// How the segments holding the secret are kept and rewritten.
    #[derive(Clone, Copy, Debug)]
    enum Mode {
        /// Plain, rewritten plain (same length).
        Plain,
        /// Compressed, rewritten compressed.
        Compressed,
        /// Plain, rewritten compressed to give the erased bytes' space
        /// back (a `reclaim_share` that any erasure reaches).
        Reclaiming,
    }

    fn options(fs: &FaultFs, mode: Mode) -> Options {
        let o = Options::default()
            .fs(Arc::new(fs.clone()))
            .segment_size(16 << 10)
            .preallocate(4 << 10);
        match mode {
            Mode::Plain => o.reclaim_share(None),
            Mode::Compressed => o.compression(Some(Compression::default())),
            Mode::Reclaiming => o.reclaim_share(Some(1e-6)),
        }
    }

    fn zsegs(fs: &FaultFs) -> usize {
        fault_files(fs)
            .iter()
            .filter(|(name, _)| name.ends_with(".zseg"))
            .count()
    }

    /// Every file of the store on `fs` as a reader sees it.
    fn fault_files(fs: &FaultFs) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut dirs = vec![PathBuf::from(DIR)];
        while let Some(d) = dirs.pop() {
            for name in fs.list(&d).unwrap_or_default() {
                let path = d.join(&name);
                match fs.durable_contents(&path) {
                    Some(bytes) => {
                        if name.ends_with(".zseg") {
                            let z = gesta_wal::files::CompressedSegment::open(
                                path.clone(),
                                Bytes::from(bytes.clone()),
                                Arc::new(gesta_wal::BlockCache::new(0)),
                            )
                            .unwrap();
                            out.push((name.clone(), z.read_all().unwrap().to_vec()));
                        }
                        out.push((name, bytes));
                    }
                    None => dirs.push(path),
                }
            }
        }
        out
    }

    fn holds_secret(fs: &FaultFs) -> bool {
        fault_files(fs)
            .iter()
            .any(|(name, b)| !name.ends_with(".snap") && contains(b, SECRET))
    }

    /// The store before the compaction: the secret redacted, its bytes
    /// still in a sealed (maybe compressed) segment and in the active one.
    fn prepare(mode: Mode) -> (FaultFs, Vec<RecordedEvent>, Vec<u64>) {
        let fs = FaultFs::new();
        let store = Store::open_with(DIR, options(&fs, mode)).unwrap();
        let mut secrets = Vec::new();
        for i in 0..300 {
            store.append(vec![event(i)]).unwrap();
            if i == 20 || i == 299 {
                secrets.push(store.append(vec![secret_event()]).unwrap().first);
            }
        }
        store.compact().unwrap_or_else(|e| panic!("{e}"));
        store.redact(&Target::Positions(secrets.clone())).unwrap();
        let before = all(&store);
        store.close().unwrap();
        assert!(holds_secret(&fs));
        (fs, before, secrets)
    }

    #[test]
    fn a_crash_at_any_step_of_the_erasure_loses_nothing_and_the_next_compact_finishes() {
        for mode in [Mode::Plain, Mode::Compressed, Mode::Reclaiming] {
            let (fs, _, _) = prepare(mode);
            let zsegs_before = zsegs(&fs);
            let store = Store::open_with(DIR, options(&fs, mode)).unwrap();
            let before = fs.mutating_ops();
            store.compact().unwrap();
            let ops = fs.mutating_ops() - before;
            drop(store);
            assert!(!holds_secret(&fs));
            match mode {
                Mode::Plain => assert_eq!(zsegs(&fs), 0),
                Mode::Compressed => assert!(zsegs(&fs) >= zsegs_before),
                Mode::Reclaiming => assert!(zsegs(&fs) > zsegs_before, "no segment reclaimed"),
            }
            let mut erased_by_the_crashed_run = 0;
            for n in 1..=ops {
                let crash = if n % 2 == 0 {
                    CrashMode::DropUnsynced
                } else {
                    CrashMode::Torn { seed: n }
                };
                let (fs, expected, secrets) = prepare(mode);
                let store = Store::open_with(DIR, options(&fs, mode)).unwrap();
                fs.crash_after(n);
                let _ = store.compact();
                drop(store);
                fs.crash(crash);
                let store = Store::open_with(DIR, options(&fs, mode))
                    .unwrap_or_else(|e| panic!("{mode:?}: crash after {n} of {ops}: {e}"));
                let got = all(&store);
                assert_eq!(got, expected, "{mode:?}: crash after {n} of {ops}");
                for p in &secrets {
                    assert!(got[*p as usize - 1].data.is_empty());
                }
                erased_by_the_crashed_run += usize::from(!holds_secret(&fs));
                store.compact().unwrap();
                assert!(
                    !holds_secret(&fs),
                    "{mode:?}: crash after {n}: the next compact left the secret"
                );
                assert_eq!(all(&store), expected);
            }
            assert!(erased_by_the_crashed_run > 0, "no crash came late enough");
        }
    }
}

/// A removed event's bytes leave the files too (sealed and compressed
/// segments alike), while snapshots — which fold what happened — stay; the
/// store verifies, and reads the events that remain as they were.
#[test]
fn a_removed_stream_leaves_no_byte_and_keeps_snapshots() {
    for options in [small_segments as fn() -> Options, || {
        small_segments().compression(Some(Compression::default()))
    }] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let store = Store::open_with(dir, options()).unwrap();
        for i in 0..200 {
            store.append(vec![event(i)]).unwrap();
        }
        let secret = NewEvent::new("Registered", Bytes::from_static(SECRET))
            .stream("doomed")
            .metadata(Bytes::from_static(META_SECRET));
        let at = store.append(vec![secret]).unwrap().first;
        for i in 0..200 {
            store.append(vec![event(1000 + i)]).unwrap();
        }
        store.save_snapshot("profile", at + 1, b"state").unwrap();
        store.compact().unwrap();
        assert!(
            !holders(dir, SECRET).is_empty(),
            "the secret was never written"
        );
        let before = all(&store);
        let removed = store.delete_stream("doomed").unwrap();
        assert_eq!((removed.targeted, removed.removed), (1, 1));
        store.compact().unwrap();
        assert_eq!(holders(dir, SECRET), Vec::<PathBuf>::new());
        assert_eq!(holders(dir, META_SECRET), Vec::<PathBuf>::new());
        let left: Vec<RecordedEvent> = before.into_iter().filter(|e| e.position != at).collect();
        assert_eq!(all(&store), left);
        assert_eq!(store.list_snapshots("profile").unwrap(), vec![at + 1]);
        store.close().unwrap();
        let report = gesta::inspect::verify(dir, &mut |_, _| {}).unwrap();
        assert!(report.is_intact(), "{:#?}", report.findings);
        let store = Store::open_with(dir, options()).unwrap();
        assert_eq!(all(&store), left);
    }
}

/// Bytes on disk of the store's segments, and how many are compressed.
fn segment_bytes(dir: &Path) -> (u64, usize) {
    let mut bytes = 0;
    let mut compressed = 0;
    for path in files(dir) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".seg") || name.ends_with(".zseg") {
            bytes += std::fs::metadata(&path).unwrap().len();
            compressed += usize::from(name.ends_with(".zseg"));
        }
    }
    (bytes, compressed)
}

/// Data that does not compress, so that what a compressed segment saves
/// is the erased bytes and nothing else.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// In a store that does not compress, a plain segment keeps its length
/// when its erased bytes are zeroed; once an erasure zeroes at least
/// `reclaim_share` of a segment, the segment is written compressed and the
/// space comes back, while the events left read as before (and a segment
/// zeroed less stays plain). With `reclaim_share` off, nothing shrinks.
#[test]
fn erasing_most_of_a_plain_segment_gives_its_space_back() {
    for share in [Some(0.5), None] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let options = || small_segments().reclaim_share(share);
        let store = Store::open_with(dir, options()).unwrap();
        // Old events, then a stretch where one in ten is doomed (too few
        // for any segment to reach the share), then the events kept.
        for i in 0..300 {
            store
                .append(vec![NewEvent::new("Old", noise(i, 512)).stream("old")])
                .unwrap();
        }
        for i in 300..600 {
            let stream = if i % 10 == 0 { "old" } else { "mixed" };
            store
                .append(vec![NewEvent::new("Mixed", noise(i, 512)).stream(stream)])
                .unwrap();
        }
        for i in 600..700 {
            store
                .append(vec![NewEvent::new("New", noise(i, 512)).stream("new")])
                .unwrap();
        }
        store.compact().unwrap();
        let (before, compressed) = segment_bytes(dir);
        assert_eq!(compressed, 0);
        let removed = store.delete_stream("old").unwrap();
        assert_eq!(removed.removed, 330);
        let left: Vec<RecordedEvent> = all(&store);
        store.compact().unwrap();
        let (after, compressed) = segment_bytes(dir);
        assert_eq!(all(&store), left);
        // Every event left in a segment that was compressed reads the same
        // through the block cache after a reopen too.
        store.close().unwrap();
        let report = gesta::inspect::verify(dir, &mut |_, _| {}).unwrap();
        assert!(report.is_intact(), "{:#?}", report.findings);
        let store = Store::open_with(dir, options()).unwrap();
        assert_eq!(all(&store), left);
        let plain_mixed = files(dir).iter().any(|p| {
            p.extension().is_some_and(|e| e == "seg")
                && std::fs::read(p).unwrap().windows(5).any(|w| w == b"Mixed")
        });
        match share {
            Some(_) => {
                // The 300 old events' 512 bytes each, about 150 KiB, came
                // back; the mixed stretch's segments stayed plain.
                assert!(compressed > 0, "no segment was reclaimed");
                assert!(
                    after + 140_000 < before,
                    "{before} bytes before, {after} after"
                );
                assert!(plain_mixed, "a segment under the share was compressed");
            }
            None => {
                assert_eq!((after, compressed), (before, 0));
            }
        }
        store.close().unwrap();
    }
}

#[test]
fn a_reclaim_share_out_of_range_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for share in [0.0, -1.0, 1.5, f64::NAN] {
        let Err(err) = Store::open_with(tmp.path(), Options::default().reclaim_share(Some(share)))
        else {
            panic!("reclaim_share {share} was accepted");
        };
        assert!(matches!(err, gesta::Error::InvalidInput { .. }), "{err:?}");
    }
}
