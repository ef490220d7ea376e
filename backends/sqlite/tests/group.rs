//! Group commit under real concurrency: many threads appending at once,
//! with conditions some of which must fail, streams, idempotent retries
//! and subscriptions — each append's outcome as if it had run alone, in
//! some order, and the positions dense.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use gesta::{AppendOptions, Error, EventStore, ExpectedRevision, NewEvent, Query, ReadOptions};
use gesta_sqlite::{SqliteOptions, SqliteStore, Synchronous};

fn open(dir: &tempfile::TempDir, synchronous: Synchronous) -> Arc<SqliteStore> {
    let options = SqliteOptions::default().synchronous(synchronous);
    Arc::new(SqliteStore::open(dir.path().join("e.db"), options).expect("open"))
}

/// Runs `f(thread, round)` on `threads` threads for `rounds` rounds, each
/// round started together; the results by thread, then round.
fn rounds<T: Send + 'static>(
    threads: usize,
    rounds: usize,
    f: impl Fn(usize, usize) -> T + Send + Sync + 'static,
) -> Vec<Vec<T>> {
    let barrier = Arc::new(Barrier::new(threads));
    let f = Arc::new(f);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (barrier, f) = (barrier.clone(), f.clone());
            std::thread::spawn(move || {
                (0..rounds)
                    .map(|r| {
                        barrier.wait();
                        let out = f(t, r);
                        barrier.wait();
                        out
                    })
                    .collect::<Vec<T>>()
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect()
}

/// Every event in the store, by position: (type, data).
fn events(store: &SqliteStore) -> Vec<(u64, String, Vec<u8>)> {
    store
        .read(&Query::all(), ReadOptions::forwards())
        .expect("read")
        .map(|e| {
            let e = e.expect("event");
            (e.position, e.event_type, e.data.to_vec())
        })
        .collect()
}

/// Sixteen threads, four to a key, each round appending on the condition
/// that nothing with its key came after the head the round began at:
/// exactly one append per key and round commits, every other one fails
/// naming a winner's position, and the positions are dense, each holding
/// the event its append was told.
#[test]
fn concurrent_conditions_commit_exactly_one_winner_per_key() {
    const THREADS: usize = 16;
    const KEYS: usize = 4;
    const ROUNDS: usize = 25;
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir, Synchronous::Normal);
    let s = store.clone();
    let out = rounds(THREADS, ROUNDS, move |t, r| {
        let key = format!("key:{}", t % KEYS);
        // The head each round begins at, if every earlier round committed
        // one append per key (as is checked).
        let head = (r * KEYS) as u64;
        let event = NewEvent::new("Claim", format!("{t}/{r}")).tag(key.clone());
        let options = AppendOptions::new().fail_if(Query::tag(&key), Some(head));
        (head, s.append_with(vec![event], options))
    });

    let mut told: BTreeMap<u64, String> = BTreeMap::new();
    for r in 0..ROUNDS {
        let mut winners: HashMap<usize, u64> = HashMap::new();
        for (t, results) in out.iter().enumerate() {
            if let (_, Ok(appended)) = &results[r] {
                assert_eq!(appended.first, appended.last);
                let before = winners.insert(t % KEYS, appended.first);
                assert_eq!(before, None, "round {r}: two winners for key {}", t % KEYS);
                told.insert(appended.first, format!("{t}/{r}"));
            }
        }
        assert_eq!(winners.len(), KEYS, "round {r}: one winner per key");
        for (t, results) in out.iter().enumerate() {
            match &results[r] {
                (_, Ok(_)) => {}
                (head, Err(Error::ConditionFailed { position })) => {
                    assert!(position > head, "round {r}");
                    assert_eq!(Some(position), winners.get(&(t % KEYS)), "round {r}");
                }
                (_, Err(e)) => panic!("round {r}, thread {t}: {e:?}"),
            }
        }
    }
    let stored = events(&store);
    assert_eq!(stored.len(), ROUNDS * KEYS);
    for (i, (position, _, data)) in stored.iter().enumerate() {
        assert_eq!(*position, i as u64 + 1, "dense");
        assert_eq!(
            told.get(position).map(String::as_bytes),
            Some(data.as_slice()),
            "position {position} holds the event its append was told"
        );
    }
}

/// Threads racing on one stream with exact expected revisions: each
/// revision is taken by exactly one append; the losers are told the
/// actual revision; the stream's revisions are dense.
#[test]
fn concurrent_expected_revisions_take_each_revision_once() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 20;
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir, Synchronous::Normal);
    let s = store.clone();
    let out = rounds(THREADS, ROUNDS, move |t, r| {
        let expected = match r {
            0 => ExpectedRevision::NoStream,
            r => ExpectedRevision::Exact(r as u64 - 1),
        };
        s.append_with(
            vec![NewEvent::new("S", format!("{t}/{r}")).stream("s")],
            AppendOptions::new().expect("s", expected),
        )
    });
    for r in 0..ROUNDS {
        let won = out.iter().filter(|results| results[r].is_ok()).count();
        assert_eq!(won, 1, "round {r}");
        for results in &out {
            match &results[r] {
                Ok(_) => {}
                Err(Error::WrongExpectedRevision { actual, .. }) => {
                    assert_eq!(*actual, Some(r as u64), "round {r}");
                }
                Err(e) => panic!("round {r}: {e:?}"),
            }
        }
    }
    assert_eq!(
        store.stream_revision("s").expect("revision"),
        Some(ROUNDS as u64 - 1)
    );
    let revisions: Vec<u64> = store
        .read_stream("s", ReadOptions::forwards())
        .expect("read stream")
        .map(|e| e.expect("event").revision.expect("revision"))
        .collect();
    assert_eq!(revisions, (0..ROUNDS as u64).collect::<Vec<_>>());
}

/// The same batch (same ids) sent by several threads at once is stored
/// once; every sender is told its positions.
#[test]
fn concurrent_retries_of_one_batch_store_it_once() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 20;
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir, Synchronous::Normal);
    let s = store.clone();
    let out = rounds(THREADS, ROUNDS, move |_, r| {
        let id = 1000 + 2 * r as u128;
        let batch = vec![
            NewEvent::new("A", format!("{r}a")).id(id),
            NewEvent::new("B", format!("{r}b")).id(id + 1),
        ];
        s.append(batch).expect("append or retry")
    });
    for r in 0..ROUNDS {
        let first = out[0][r];
        assert!(out.iter().all(|results| results[r] == first), "round {r}");
        assert_eq!(first.first, 2 * r as u64 + 1);
        assert_eq!(first.last, 2 * r as u64 + 2);
    }
    assert_eq!(events(&store).len(), 2 * ROUNDS);
}

/// Batches of one to three events appended by many threads at once reach
/// a subscriber each as one batch, in commit order, nothing missing and
/// nothing twice; and under `synchronous=FULL` the appends share commits.
#[test]
fn concurrent_batches_keep_their_boundaries_and_share_commits() {
    const THREADS: usize = 16;
    const ROUNDS: usize = 20;
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir, Synchronous::Full);
    let mut subscription = store.subscribe(&Query::all(), 0).expect("subscribe");
    let s = store.clone();
    let out = rounds(THREADS, ROUNDS, move |t, r| {
        let batch = (0..t % 3 + 1)
            .map(|i| NewEvent::new("E", format!("{t}/{r}/{i}")).tag(format!("t:{t}")))
            .collect();
        s.append(batch).expect("append")
    });
    let appends = THREADS * ROUNDS;
    let total: u64 = out.iter().flatten().map(|a| a.last - a.first + 1).sum();

    let mut boundaries: Vec<(u64, u64)> = out.iter().flatten().map(|a| (a.first, a.last)).collect();
    boundaries.sort_unstable();
    let mut received = Vec::new();
    let mut seen = 0;
    while seen < total {
        let batch = subscription
            .recv_timeout(Duration::from_secs(10))
            .expect("receive")
            .expect("a batch within the timeout");
        let (first, last) = (batch[0].position, batch[batch.len() - 1].position);
        assert_eq!(last - first + 1, batch.len() as u64, "one append's events");
        // Every event of a batch came from the same append.
        let origin: Vec<String> = batch
            .iter()
            .map(|e| {
                let data = String::from_utf8(e.data.to_vec()).expect("utf-8");
                data.rsplit_once('/').expect("t/r/i").0.to_owned()
            })
            .collect();
        assert!(origin.iter().all(|o| *o == origin[0]), "{origin:?}");
        received.push((first, last));
        seen += batch.len() as u64;
    }
    assert_eq!(received, boundaries, "each append one batch, in order");
    assert_eq!(boundaries.last().map(|b| b.1), Some(total), "dense");

    let commits = store.append_commits();
    assert!(
        commits < appends as u64,
        "{appends} concurrent appends took {commits} commits"
    );
}
