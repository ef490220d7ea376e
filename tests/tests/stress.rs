//! Concurrency stress: writers (plain, conditional, with expected stream
//! revisions and with ids, some re-sent), readers, live subscribers and
//! index flushes all at once on one store for a bounded time, with tiny
//! memtables and segments so that flushes, run switches and segment
//! rollovers happen under load. Readers check every answer as they go
//! (order, bounds, matching); at the end every acknowledged append is
//! compared with the store, each subscription's whole delivery with a read
//! of its query, every index answer with a scan, and stream revisions with
//! the events.
//!
//! `GESTA_STRESS_SECS` (default 3) sets how long the load runs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gesta::{
    AppendOptions, Appended, ExpectedRevision, NewEvent, Options, Query, QueryItem, ReadOptions,
    RecordedEvent, Store,
};
use gesta_tests::SplitMix64;

const WRITERS: u64 = 4;

fn options() -> Options {
    let mut o = Options::default()
        .segment_size(64 << 10)
        .preallocate(16 << 10);
    o.memtable_postings = 300;
    o.close_flush_postings = 50;
    o
}

fn queries() -> Vec<Query> {
    vec![
        Query::all(),
        Query::event_type("Deposited"),
        Query::tag("region:1"),
        Query::item(QueryItem::new().event_type("Withdrawn").tag("region:2")),
        Query::tag("region:0").or(QueryItem::new().event_type("Opened")),
    ]
}

fn read(store: &Store, query: &Query, options: ReadOptions) -> Vec<RecordedEvent> {
    store
        .read(query, options)
        .unwrap()
        .collect::<gesta::Result<_>>()
        .expect("read")
}

/// What a writer sent in one acknowledged append.
struct Sent {
    appended: Appended,
    events: Vec<NewEvent>,
}

fn event(rng: &mut SplitMix64, writer: u64, n: u64) -> NewEvent {
    let t = ["Opened", "Deposited", "Withdrawn"][rng.below(3) as usize];
    let mut e = NewEvent::new(t, format!("{writer}/{n}/{}", rng.next_u64())).tags([
        format!("region:{}", rng.below(3)),
        format!("writer:{writer}"),
    ]);
    if rng.chance(1, 2) {
        e = e.id(u128::from(writer) << 64 | u128::from(n));
    }
    e
}

#[test]
fn everything_at_once() {
    let secs: u64 = std::env::var("GESTA_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let temp = tempfile::tempdir().expect("temporary directory");
    let store = Store::open_with(temp.path(), options()).expect("open");
    let stop = AtomicBool::new(false);
    let sent: Mutex<Vec<Sent>> = Mutex::new(Vec::new());
    let reads = AtomicU64::new(0);
    let flushes = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs(secs);

    let subscriptions = std::thread::scope(|scope| {
        // Subscribers, started before and while the writers run.
        let mut subscribers = Vec::new();
        for (k, query) in queries().into_iter().enumerate() {
            let (store, stop) = (&store, &stop);
            subscribers.push(scope.spawn(move || {
                std::thread::sleep(Duration::from_millis(50 * k as u64));
                let after = store.head() / 2;
                let mut sub = store.subscribe(&query, after).expect("subscribe");
                let mut got: Vec<Vec<RecordedEvent>> = Vec::new();
                loop {
                    match sub
                        .recv_timeout(Duration::from_millis(20))
                        .expect("receive")
                    {
                        Some(batch) => got.push(batch),
                        None if stop.load(Ordering::Acquire)
                            && sub.checkpoint() == store.head() =>
                        {
                            break;
                        }
                        None => {}
                    }
                }
                (query, after, got)
            }));
        }
        // Writers: each owns a stream and a tag; appends are plain,
        // conditional on the writer's own tag, with an expected revision of
        // its stream, and sometimes re-sent (an idempotent retry).
        for w in 0..WRITERS {
            let (store, sent) = (&store, &sent);
            scope.spawn(move || {
                let mut rng = SplitMix64::new(1000 + w);
                let stream = format!("account-{w}");
                let own = Query::tag(format!("writer:{w}"));
                let mut revision: Option<u64> = None;
                let mut last_own: Option<u64> = None;
                let mut n = 0;
                while Instant::now() < deadline {
                    let len = 1 + rng.below(4) as usize;
                    let mut events: Vec<NewEvent> = (0..len)
                        .map(|_| {
                            n += 1;
                            event(&mut rng, w, n)
                        })
                        .collect();
                    let mut options = AppendOptions::new();
                    let kind = rng.below(3);
                    if kind == 1 {
                        options = options.fail_if(own.clone(), last_own);
                    } else if kind == 2 {
                        for e in &mut events {
                            *e = e.clone().stream(stream.clone());
                        }
                        let expected =
                            revision.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
                        options = options.expect(stream.clone(), expected);
                    }
                    let appended = match store.append_with(events.clone(), options.clone()) {
                        Ok(a) => a,
                        Err(e) => panic!("writer {w}: {e}"),
                    };
                    if events.iter().all(|e| e.id.is_some()) && rng.chance(1, 4) {
                        let again = store.append_with(events.clone(), options).expect("retry");
                        assert_eq!(again, appended, "an idempotent retry appended again");
                    }
                    last_own = Some(appended.last);
                    if kind == 2 {
                        revision = Some(revision.map_or(0, |r| r + 1) + len as u64 - 1);
                    }
                    sent.lock().unwrap().push(Sent { appended, events });
                }
            });
        }
        // Readers: every answer in order, within the head, matching.
        for r in 0..2u64 {
            let (store, reads) = (&store, &reads);
            scope.spawn(move || {
                let mut rng = SplitMix64::new(2000 + r);
                let qs = queries();
                while Instant::now() < deadline {
                    let q = &qs[rng.below(qs.len() as u64) as usize];
                    let backwards = rng.chance(1, 2);
                    let options = if backwards {
                        ReadOptions::backwards()
                    } else {
                        ReadOptions::forwards()
                    }
                    .limit(1 + rng.below(200) as usize);
                    let got = read(store, q, options);
                    for pair in got.windows(2) {
                        let ordered = if backwards {
                            pair[0].position > pair[1].position
                        } else {
                            pair[0].position < pair[1].position
                        };
                        assert!(ordered, "reader {r}: answers out of order");
                    }
                    for e in &got {
                        assert!(q.matches(&e.event_type, &e.tags), "reader {r}: a non-match");
                        assert!(e.position <= store.head(), "reader {r}: beyond the head");
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Index flushes on demand, on top of the background ones.
        {
            let (store, flushes) = (&store, &flushes);
            scope.spawn(move || {
                while Instant::now() < deadline {
                    store.flush_index().expect("flush");
                    flushes.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(30));
                }
            });
        }
        std::thread::sleep(Duration::from_secs(secs));
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Writers stop at the deadline; let them finish their last append.
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Release);
        subscribers
            .into_iter()
            .map(|t| t.join().expect("subscriber"))
            .collect::<Vec<_>>()
    });

    let sent = sent.into_inner().unwrap();
    let head = store.head();
    let all = read(&store, &Query::all(), ReadOptions::forwards());
    assert_eq!(all.len() as u64, head, "positions are contiguous");
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position, i as u64 + 1);
    }
    // Every acknowledged append, exactly as sent.
    for s in &sent {
        let got = &all[(s.appended.first - 1) as usize..s.appended.last as usize];
        assert_eq!(got.len(), s.events.len());
        for (g, w) in got.iter().zip(&s.events) {
            assert_eq!(
                (&g.event_type, &g.tags, &g.data, g.id),
                (&w.event_type, &w.tags, &w.data, w.id)
            );
            assert_eq!(g.stream, w.stream);
        }
    }
    let total: usize = sent.iter().map(|s| s.events.len()).sum();
    assert_eq!(
        total as u64, head,
        "every event in the store was acknowledged once"
    );
    // Stream revisions count up from 0 in position order.
    let mut next: HashMap<&str, u64> = HashMap::new();
    for e in &all {
        if let Some(stream) = &e.stream {
            let n = next.entry(stream).or_default();
            assert_eq!(
                e.revision,
                Some(*n),
                "revision of {stream} at {}",
                e.position
            );
            *n += 1;
        }
    }
    // Every index answer equals a scan; every subscription delivered
    // exactly the read of its query after its start.
    for q in queries() {
        let scanned: Vec<u64> = all
            .iter()
            .filter(|e| q.matches(&e.event_type, &e.tags))
            .map(|e| e.position)
            .collect();
        let indexed: Vec<u64> = read(&store, &q, ReadOptions::forwards())
            .iter()
            .map(|e| e.position)
            .collect();
        assert_eq!(
            indexed, scanned,
            "index answer differs from a scan for {q:?}"
        );
    }
    let mut appends: BTreeMap<u64, u64> = BTreeMap::new();
    for s in &sent {
        appends.insert(s.appended.first, s.appended.last);
    }
    for (query, after, batches) in &subscriptions {
        let want: Vec<&RecordedEvent> = all
            .iter()
            .filter(|e| e.position > *after && query.matches(&e.event_type, &e.tags))
            .collect();
        let got: Vec<&RecordedEvent> = batches.iter().flatten().collect();
        assert_eq!(got, want, "subscription on {query:?} after {after}");
        for batch in batches {
            let first = batch[0].position;
            let (_, &last) = appends.range(..=first).next_back().expect("an append");
            assert!(
                batch.iter().all(|e| e.position <= last),
                "a batch spans two appends"
            );
        }
    }
    println!(
        "{secs} s: {} appends ({head} events), {} reads, {} explicit flushes, index shape {:?}, {} subscriptions checked",
        sent.len(),
        reads.into_inner(),
        flushes.into_inner(),
        store.index_shape(),
        subscriptions.len()
    );
    store.close().expect("close");
}
