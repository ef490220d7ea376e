//! Index compaction: the number of runs stays logarithmic as a store grows
//! through hundreds of flushes, every query answers exactly what the
//! in-memory reference answers before and after merges and reopens,
//! `Store::compact` leaves one run and no other file, and a reader that
//! took its view before a merge reads on undisturbed.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gesta::io::FileSystem;
use gesta::io::fault::FaultFs;
use gesta::{EventStore, MemoryStore, NewEvent, Options, Query, QueryItem, ReadOptions, Store};
use gesta_tests::SplitMix64;

const TYPES: [&str; 5] = ["Opened", "Deposited", "Withdrawn", "Closed", "Noted"];

fn options(fs: Arc<dyn FileSystem>, fan_in: usize) -> Options {
    let mut o = Options::default()
        .fs(fs)
        .segment_size(64 << 10)
        .preallocate(16 << 10)
        .merge_fan_in(fan_in);
    o.memtable_postings = 16;
    o.close_flush_postings = 1;
    o.merge_bytes_per_sec = None;
    o
}

fn random_batch(rng: &mut SplitMix64, n: u64) -> Vec<NewEvent> {
    (0..rng.range(1, 4))
        .map(|i| {
            let t = TYPES[rng.below(TYPES.len() as u64) as usize];
            let mut e = NewEvent::new(t, format!("{n}-{i}"));
            for _ in 0..rng.range(0, 3) {
                e = e.tag(format!("account:{}", rng.below(20)));
            }
            if rng.chance(1, 3) {
                e = e.stream(format!("s{}", rng.below(8)));
            }
            e
        })
        .collect()
}

fn positions(store: &dyn EventStore, query: &Query, options: ReadOptions) -> Vec<u64> {
    store
        .read(query, options)
        .expect("read")
        .map(|e| e.expect("event").position)
        .collect()
}

/// Every type, every tag, type-and-tag items, OR-ed items, both directions,
/// with starts and limits: the store must answer what the model answers.
fn assert_same_answers(store: &Store, model: &MemoryStore) {
    let mut queries: Vec<Query> = TYPES.iter().map(|t| Query::event_type(*t)).collect();
    for a in 0..20 {
        queries.push(Query::tag(format!("account:{a}")));
        queries.push(Query::item(
            QueryItem::new()
                .event_type(TYPES[a % 5])
                .tag(format!("account:{a}"))
                .tag(format!("account:{}", (a + 1) % 20)),
        ));
        queries.push(
            Query::tag(format!("account:{a}")).or(QueryItem::new().event_type(TYPES[(a + 2) % 5])),
        );
    }
    let head = model.head().expect("head");
    assert_eq!(store.head(), head);
    for q in &queries {
        for options in [
            ReadOptions::forwards(),
            ReadOptions::backwards(),
            ReadOptions::forwards().start(head / 3).limit(7),
            ReadOptions::backwards().start(head / 2).limit(5),
        ] {
            assert_eq!(
                positions(store, q, options),
                positions(model, q, options),
                "{q:?} {options:?}"
            );
        }
    }
    for s in 0..8 {
        let s = format!("s{s}");
        assert_eq!(
            store.stream_revision(&s).expect("revision"),
            model.stream_revision(&s).expect("revision")
        );
    }
}

/// Waits (briefly) for the background compactor to satisfy its policy.
fn settled_runs(store: &Store, bound: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let runs = store.index_shape().runs;
        if runs <= bound || Instant::now() > deadline {
            return runs;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn index_files(fs: &FaultFs, dir: &Path) -> Vec<String> {
    let mut names = fs.list(&dir.join("index")).expect("list index/");
    names.sort();
    names
}

#[test]
fn runs_stay_logarithmic_and_answers_match_the_model() {
    let fs = Arc::new(FaultFs::new());
    let dir = Path::new("/store");
    let store = Store::open_with(dir, options(fs.clone(), 4)).expect("open");
    let model = MemoryStore::new();
    let mut rng = SplitMix64::new(0x6e57a);
    let mut flushes = 0;
    let mut max_runs = 0;
    for n in 0..2500 {
        let batch = random_batch(&mut rng, n);
        store.append(batch.clone()).expect("append");
        model.append(batch).expect("append to the model");
        if n % 5 == 4 {
            store.flush_index().expect("flush");
            flushes += 1;
        }
        max_runs = max_runs.max(store.index_shape().runs);
        if n % 500 == 499 {
            assert_same_answers(&store, &model);
        }
    }
    // ≥ 500 explicit flushes (and more by the memtable bound) of ≥ 1 event:
    // with fan-in 4, log4 of that is under 6 tiers of at most 3 runs, plus
    // a few made while a merge was running.
    let runs = settled_runs(&store, 18);
    assert!(flushes >= 500);
    assert!(runs <= 18, "{runs} runs after {flushes}+ flushes");
    assert!(max_runs <= 30, "up to {max_runs} runs at once");
    assert_same_answers(&store, &model);

    store.compact().expect("compact");
    assert_eq!(
        store.index_shape(),
        gesta::IndexShape { runs: 1, frozen: 0 }
    );
    assert_eq!(
        index_files(&fs, dir).len(),
        1,
        "{:?}",
        index_files(&fs, dir)
    );
    assert_same_answers(&store, &model);

    store.close().expect("close");
    let store = Store::open_with(dir, options(fs.clone(), 4)).expect("reopen");
    assert_same_answers(&store, &model);
    assert_eq!(index_files(&fs, dir).len(), store.index_shape().runs);
}

#[test]
fn without_merging_every_flush_stays_a_run_until_compact() {
    let fs = Arc::new(FaultFs::new());
    let dir = Path::new("/store");
    let store = Store::open_with(dir, options(fs.clone(), 0)).expect("open");
    let model = MemoryStore::new();
    let mut rng = SplitMix64::new(7);
    for n in 0..40 {
        let batch = random_batch(&mut rng, n);
        store.append(batch.clone()).expect("append");
        model.append(batch).expect("append to the model");
        store.flush_index().expect("flush");
    }
    assert_eq!(
        store.index_shape(),
        gesta::IndexShape {
            runs: 40,
            frozen: 0
        }
    );
    assert_same_answers(&store, &model);
    store.compact().expect("compact");
    assert_eq!(
        store.index_shape(),
        gesta::IndexShape { runs: 1, frozen: 0 }
    );
    assert_eq!(
        index_files(&fs, dir),
        vec![format!("{:020}-{:020}.idx", 1, store.head())]
    );
    assert_same_answers(&store, &model);
}

/// On the real file system: a lazy read that took its view before a merge
/// deleted the runs it reads goes on reading them (they stay mapped).
#[test]
fn a_reader_keeps_its_runs_through_a_merge() {
    let temp = tempfile::tempdir().expect("temporary directory");
    let store =
        Store::open_with(temp.path(), options(Arc::new(gesta::io::StdFs), 0)).expect("open");
    for n in 0..300u64 {
        let t = if n % 3 == 0 { "Opened" } else { "Noted" };
        store
            .append(vec![NewEvent::new(t, "x").tag("account:1")])
            .expect("append");
        if n % 10 == 9 {
            store.flush_index().expect("flush");
        }
    }
    assert!(store.index_shape().runs >= 30);
    let mut reader = store
        .read(&Query::event_type("Opened"), ReadOptions::forwards())
        .unwrap();
    let first = reader.next().expect("one event").expect("read").position;
    store.compact().expect("compact");
    assert_eq!(store.index_shape().runs, 1);
    let files = std::fs::read_dir(temp.path().join("index"))
        .expect("index/")
        .count();
    assert_eq!(files, 1);
    let rest: Vec<u64> = reader.map(|e| e.expect("read").position).collect();
    let expected: Vec<u64> = (1..=300).filter(|p| (p - 1) % 3 == 0).collect();
    assert_eq!(
        std::iter::once(first).chain(rest).collect::<Vec<_>>(),
        expected
    );
}
