//! Sealed-segment compression through the whole store, on a real
//! directory: the background compactor rewrites sealed segments, queries
//! answer exactly as the in-memory reference does before and after, across
//! reopens; `verify`, `stats` and a `Follower` read compressed segments;
//! damage to one is reported against its file.

use std::path::Path;
use std::time::{Duration, Instant};

use gesta::inspect::{Follower, Part, repair, stats, verify};
use gesta::{
    Compression, Error, EventStore, MemoryStore, NewEvent, Options, Query, ReadOptions, Store,
};
use gesta_tests::SplitMix64;

const TYPES: [&str; 4] = ["Opened", "Deposited", "Withdrawn", "Closed"];

fn options(compress: bool) -> Options {
    let mut o = Options::default()
        .segment_size(32 << 10)
        .preallocate(8 << 10)
        .compression(compress.then_some(Compression {
            level: 3,
            block_size: 4096,
            dictionary_size: 1024,
        }));
    o.block_cache_bytes = 16 << 10;
    o.merge_bytes_per_sec = None;
    o
}

fn batch(rng: &mut SplitMix64, n: u64) -> Vec<NewEvent> {
    (0..rng.range(1, 5))
        .map(|i| {
            let t = TYPES[rng.below(TYPES.len() as u64) as usize];
            let text = format!(
                r#"{{"n":{n},"i":{i},"note":"an ordinary and rather repetitive payload"}}"#
            );
            let mut e = NewEvent::new(t, text).tag(format!("account:{}", rng.below(30)));
            if rng.chance(1, 2) {
                e = e.stream(format!("s{}", rng.below(10)));
            }
            e
        })
        .collect()
}

fn queries() -> Vec<Query> {
    let mut q = vec![Query::all()];
    q.extend(TYPES.iter().map(|t| Query::event_type(*t)));
    q.extend(
        (0..30)
            .step_by(7)
            .map(|a| Query::tag(format!("account:{a}"))),
    );
    q
}

fn assert_same(store: &Store, model: &MemoryStore) {
    let head = model.head().unwrap();
    for q in queries() {
        for options in [
            ReadOptions::forwards(),
            ReadOptions::backwards(),
            ReadOptions::forwards().start(head / 3).limit(50),
        ] {
            let got: Vec<_> = store
                .read(&q, options)
                .unwrap()
                .map(|e| e.unwrap())
                .collect();
            let want: Vec<_> = model
                .read(&q, options)
                .unwrap()
                .map(|e| e.unwrap())
                .collect();
            assert_eq!(got.len(), want.len(), "{q:?} {options:?}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(
                    (g.position, &g.event_type, &g.data),
                    (w.position, &w.event_type, &w.data)
                );
                assert_eq!((&g.tags, &g.stream), (&w.tags, &w.stream));
            }
        }
    }
    for p in (1..=head).step_by(97) {
        let got = store
            .read(&Query::all(), ReadOptions::forwards().start(p - 1).limit(1))
            .unwrap();
        assert_eq!(got.map(|e| e.unwrap().position).next(), Some(p));
    }
}

fn files(dir: &Path, ext: &str) -> usize {
    std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == ext)
        })
        .count()
}

/// Waits until the background compactor has compressed every sealed
/// segment (all but the active one).
fn wait_compressed(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while files(dir, "seg") > 1 {
        assert!(
            Instant::now() < deadline,
            "background compression did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn compressed_segments_answer_like_the_reference_and_shrink_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let model = MemoryStore::new();
    let mut rng = SplitMix64::new(11);
    let store = Store::open_with(dir, options(true)).unwrap();
    for n in 0..1500 {
        let events = batch(&mut rng, n);
        store.append(events.clone()).unwrap();
        model.append(events).unwrap();
    }
    wait_compressed(dir);
    assert!(
        files(dir, "zseg") >= 5,
        "the workload must seal several segments"
    );
    assert_same(&store, &model);
    drop(store);

    // What the log holds, compressed or not, is the same; it is smaller.
    let st = stats(dir, &mut |_, _| {}).unwrap();
    assert_eq!(st.head, model.head().unwrap());
    assert!(
        st.segment_bytes * 2 < st.record_bytes,
        "repetitive events should compress at least 2×: {} bytes on disk for {} of records",
        st.segment_bytes,
        st.record_bytes
    );
    let report = verify(dir, &mut |_, _| {}).unwrap();
    assert_eq!(report.last_position, model.head().unwrap());
    assert!(report.is_intact(), "{:?}", report.findings);

    // A follower from the start reads every event, compressed or not.
    let mut follower = Follower::new(dir, 0).unwrap();
    let mut seen = Vec::new();
    while follower.poll(&mut seen).unwrap() > 0 {}
    assert_eq!(seen.len() as u64, model.head().unwrap());
    assert!(
        seen.iter()
            .enumerate()
            .all(|(i, e)| e.position == i as u64 + 1)
    );

    // Reopened with compression off, the compressed segments stay and
    // read as before; appends go on.
    let store = Store::open_with(dir, options(false)).unwrap();
    assert_same(&store, &model);
    for n in 1500..1700 {
        let events = batch(&mut rng, n);
        store.append(events.clone()).unwrap();
        model.append(events).unwrap();
    }
    assert_same(&store, &model);
    store.compact().unwrap();
    assert!(
        files(dir, "seg") > 1,
        "compression is off: new sealed segments stay plain"
    );
    drop(store);

    // And on again: Store::compact compresses what is left.
    let store = Store::open_with(dir, options(true)).unwrap();
    store.compact().unwrap();
    assert_eq!(files(dir, "seg"), 1);
    assert_same(&store, &model);
}

#[test]
fn damage_to_a_compressed_segment_is_reported_against_its_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut rng = SplitMix64::new(5);
    let store = Store::open_with(dir, options(true)).unwrap();
    for n in 0..400 {
        store.append(batch(&mut rng, n)).unwrap();
    }
    store.compact().unwrap();
    store.close().unwrap();
    drop(store);
    let path = dir.join("wal").join("00000000000000000001.zseg");
    let mut bytes = std::fs::read(&path).unwrap();
    // A byte of the first block, after the header and the dictionary.
    let dictionary = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
    assert!(
        dictionary > 0,
        "the segment was compressed without a dictionary"
    );
    bytes[24 + dictionary + 5] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();

    let report = verify(dir, &mut |_, _| {}).unwrap();
    match &report.findings[..] {
        [f] => assert_eq!((f.part, &f.file), (Part::Log, &path)),
        other => panic!(
            "verify: expected one finding in {}, got {other:?}",
            path.display()
        ),
    }
    // The store opens (the offset table vouches for the segment's extent)
    // but a read of the damaged block fails, naming the file, rather than
    // returning wrong events.
    let store = Store::open_with(dir, options(true)).unwrap();
    let err = store
        .read(&Query::all(), ReadOptions::forwards())
        .unwrap()
        .find_map(|e| e.err())
        .expect("a read through the damaged block fails");
    match err {
        Error::Corruption { file, .. } => assert_eq!(file, path),
        other => panic!("read: expected corruption, got {other}"),
    }
}

#[test]
fn a_compressed_segments_damaged_or_missing_offset_table_is_reported_and_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut rng = SplitMix64::new(6);
    let store = Store::open_with(dir, options(true)).unwrap();
    for n in 0..400 {
        store.append(batch(&mut rng, n)).unwrap();
    }
    store.compact().unwrap();
    store.close().unwrap();
    drop(store);
    assert!(files(dir, "zseg") >= 2);
    let wal = dir.join("wal");
    let (first, second) = (
        wal.join("00000000000000000001.off"),
        std::fs::read_dir(&wal)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "off")
                    && *p != wal.join("00000000000000000001.off")
            })
            .min()
            .expect("a second offset table"),
    );
    let pristine = (
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap(),
    );
    std::fs::remove_file(&first).unwrap();
    let mut damaged = pristine.1.clone();
    damaged[0] ^= 1;
    std::fs::write(&second, &damaged).unwrap();

    let report = verify(dir, &mut |_, _| {}).unwrap();
    let found: Vec<_> = report
        .findings
        .iter()
        .map(|f| (f.part, f.file.clone(), f.offset, f.harmless))
        .collect();
    assert_eq!(
        found,
        vec![
            (Part::OffsetTable, first.clone(), None, true),
            (Part::OffsetTable, second.clone(), Some(0), true),
        ]
    );
    let repaired = repair(dir, &report).unwrap();
    assert_eq!(repaired.tables_rebuilt, vec![first.clone(), second.clone()]);
    assert_eq!(std::fs::read(&first).unwrap(), pristine.0);
    assert_eq!(std::fs::read(&second).unwrap(), pristine.1);
    assert!(verify(dir, &mut |_, _| {}).unwrap().is_intact());
}

#[test]
fn closing_does_not_wait_for_a_backlog_of_compression() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut rng = SplitMix64::new(3);
    let store = Store::open_with(dir, options(false)).unwrap();
    for n in 0..1500 {
        store.append(batch(&mut rng, n)).unwrap();
    }
    store.close().unwrap();
    drop(store);
    let sealed = files(dir, "seg") - 1;
    assert!(sealed >= 5);

    // Compression on, paced so slowly that the backlog would take minutes.
    let mut slow = options(true);
    slow.merge_bytes_per_sec = Some(4 << 10);
    let store = Store::open_with(dir, slow).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while files(dir, "zseg") == 0 {
        assert!(
            Instant::now() < deadline,
            "background compression never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    store.close().unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "close took {took:?}");
    drop(store);
    assert!(
        files(dir, "seg") > 1,
        "the backlog cannot have been finished"
    );
    // What was compressed and what was not read back the same.
    let store = Store::open_with(dir, options(false)).unwrap();
    let events = store
        .read(&Query::all(), ReadOptions::forwards())
        .unwrap()
        .map(|e| e.unwrap().position)
        .collect::<Vec<_>>();
    assert_eq!(events, (1..=store.head()).collect::<Vec<_>>());
}

/// A point read of one event of a large batch in a compressed segment
/// decompresses the blocks of that event (and of its record's head and
/// event table entries), not the whole record, and the record's long head
/// is kept for the next: the block cache counts every block (and head)
/// fetched.
#[test]
fn a_point_read_in_a_large_compressed_record_fetches_a_few_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut o = Options::default()
        .segment_size(256 << 10)
        .compression(Some(Compression {
            level: 3,
            block_size: 1024,
            dictionary_size: 1024,
        }));
    o.merge_bytes_per_sec = None;
    let store = Store::open_with(dir, o.clone()).unwrap();
    // One record of 500 events (~60 KB), then enough to seal its segment.
    let big: Vec<NewEvent> = (0..500)
        .map(|i| {
            NewEvent::new(
                TYPES[i % 4],
                format!(r#"{{"i":{i},"pad":"{}"}}"#, "x".repeat(80)),
            )
            .tag(format!("n:{i}"))
            .stream("big")
        })
        .collect();
    store.append(big).unwrap();
    let filler = || NewEvent::new("Filler", vec![b'f'; 60 << 10]);
    for _ in 0..6 {
        store.append(vec![filler()]).unwrap();
    }
    store.compact().unwrap();
    store.close().unwrap();
    drop(store);
    assert!(
        std::fs::read_dir(dir.join("wal")).unwrap().any(|e| e
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x == "zseg")),
        "no segment was compressed"
    );

    let store = Store::open_with(dir, o).unwrap();
    for i in [0usize, 1, 250, 499] {
        let before = store.block_cache_stats();
        let found: Vec<_> = store
            .read(&Query::tag(format!("n:{i}")), ReadOptions::forwards())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let after = store.block_cache_stats();
        assert_eq!(found.len(), 1, "event {i}");
        assert_eq!(found[0].position, i as u64 + 1);
        assert_eq!(found[0].revision, Some(i as u64));
        let fetched = (after.hits + after.misses) - (before.hits + before.misses);
        // The first read gathers the record's head (its revisions span
        // blocks) and keeps it; later ones take the kept head without
        // fetching a block, then a block of the event table and the
        // event's block(s).
        let most = if i == 0 { 8 } else { 3 };
        assert!(
            (1..=most).contains(&fetched),
            "reading event {i} of a 500-event record fetched {fetched} blocks"
        );
    }
}
