//! The subscription part of the conformance suite: catch-up, live delivery,
//! the switch between them under concurrent appends, batch boundaries, slow
//! subscribers, queries that match nothing, and the end of a subscription
//! when its store goes away. It runs on all four stores (and the
//! durable-subscription cases, in `durable_subscriptions`, too), through
//! the same [`Harness`] as the rest of the suite:
//!
//! ```ignore
//! gesta_tests::subscription_tests!(gesta_tests::conformance::MemoryHarness);
//! ```
//!
//! Every case compares what was delivered — positions, contents and how
//! they were grouped — with what a read of the same query returns and with
//! the positions each append was given.

use std::time::{Duration, Instant};

use gesta::{Appended, Error, EventStore, NewEvent, Query, QueryItem, ReadOptions, RecordedEvent};

use crate::SplitMix64;
use crate::conformance::Harness;

/// Expands to one `#[test]` per subscription case.
#[macro_export]
macro_rules! subscription_tests {
    ($harness:expr) => {
        $crate::__gesta_subscription_tests! {
            ($harness)
            catch_up_only,
            catch_up_from_a_position,
            live_only,
            switch_under_concurrent_appends,
            batches_keep_append_boundaries,
            batches_larger_than_a_fetch_stay_whole,
            slow_subscriber_loses_nothing,
            query_matching_nothing,
            subscribe_beyond_the_head_rejected,
            invalid_query_rejected,
            dropping_the_store_ends_subscriptions,
            recv_timeout_times_out,
        }
    };
}

/// The per-case test functions of [`subscription_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __gesta_subscription_tests {
    (($harness:expr) $($case:ident,)*) => {
        $(
            #[test]
            fn $case() {
                let mut harness = $harness;
                $crate::subscriptions::$case(&mut harness);
            }
        )*
    };
}

const WAIT: Duration = Duration::from_secs(20);

fn ev(event_type: &str, tags: &[&str], label: &str) -> NewEvent {
    NewEvent::new(event_type, label.to_owned()).tags(tags.iter().copied())
}

fn read<S: EventStore>(s: &S, query: &Query, after: u64) -> Vec<RecordedEvent> {
    s.read(query, ReadOptions::forwards().start(after))
        .expect("read")
        .collect::<gesta::Result<_>>()
        .expect("read")
}

/// Receives batches until the subscription has looked at `upto`.
fn collect_until(sub: &mut gesta::Subscription, upto: u64) -> Vec<Vec<RecordedEvent>> {
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    while sub.checkpoint() < upto {
        assert!(
            Instant::now() < deadline,
            "subscription stuck at {} waiting for {upto}",
            sub.checkpoint()
        );
        if let Some(batch) = sub
            .recv_timeout(Duration::from_millis(100))
            .expect("receive")
        {
            out.push(batch);
        }
    }
    out
}

/// Checks that `batches`, flattened, are exactly `want`, and that each
/// batch is all the matching events of one append.
fn check_delivery(
    batches: &[Vec<RecordedEvent>],
    want: &[RecordedEvent],
    appends: &[Appended],
    query: &Query,
) {
    let flat: Vec<&RecordedEvent> = batches.iter().flatten().collect();
    assert_eq!(
        flat.len(),
        want.len(),
        "delivered {} events, the read returns {}",
        flat.len(),
        want.len()
    );
    for (got, want) in flat.iter().zip(want) {
        assert_eq!(*got, want, "delivered event differs from the read");
    }
    for batch in batches {
        assert!(!batch.is_empty(), "an empty batch was delivered");
        let first = batch[0].position;
        let append = appends
            .iter()
            .find(|a| a.first <= first && first <= a.last)
            .unwrap_or_else(|| panic!("position {first} belongs to no append"));
        let from_append: Vec<&RecordedEvent> = want
            .iter()
            .filter(|e| append.first <= e.position && e.position <= append.last)
            .collect();
        let batch_refs: Vec<&RecordedEvent> = batch.iter().collect();
        assert_eq!(
            batch_refs, from_append,
            "a batch is not exactly the matching events of append {append:?}"
        );
        for e in batch {
            assert!(query.matches(&e.event_type, &e.tags));
        }
    }
}

fn query_a() -> Query {
    Query::item(QueryItem::new().event_type("A")).or(QueryItem::new().tag("t1"))
}

fn mixed_batch(rng: &mut SplitMix64, label: &str) -> Vec<NewEvent> {
    let n = 1 + rng.below(4) as usize;
    (0..n)
        .map(|i| {
            let t = ["A", "B", "C"][rng.below(3) as usize];
            let tag = ["t1", "t2", "t3"][rng.below(3) as usize];
            ev(t, &[tag], &format!("{label}-{i}"))
        })
        .collect()
}

/// Everything already committed is delivered, grouped by append.
pub fn catch_up_only<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut rng = SplitMix64::new(1);
    let appends: Vec<Appended> = (0..40)
        .map(|i| s.append(mixed_batch(&mut rng, &i.to_string())).unwrap())
        .collect();
    let head = s.head().unwrap();
    for query in [query_a(), Query::all(), Query::tag("t3")] {
        let mut sub = s.subscribe(&query, 0).expect("subscribe");
        let batches = collect_until(&mut sub, head);
        check_delivery(&batches, &read(&s, &query, 0), &appends, &query);
        assert!(sub.try_recv().unwrap().is_none(), "nothing more to deliver");
    }
}

/// `after` is exclusive, also when it falls inside an append.
pub fn catch_up_from_a_position<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut appends = Vec::new();
    for i in 0..10 {
        appends.push(
            s.append(vec![
                ev("A", &["t1"], &format!("{i}a")),
                ev("A", &["t2"], &format!("{i}b")),
                ev("A", &["t3"], &format!("{i}c")),
            ])
            .unwrap(),
        );
    }
    for after in [0, 1, 2, 3, 14, 29, 30] {
        let mut sub = s.subscribe(&Query::event_type("A"), after).unwrap();
        let batches = collect_until(&mut sub, 30);
        let want = read(&s, &Query::event_type("A"), after);
        assert_eq!(
            want.first().map(|e| e.position),
            (after < 30).then_some(after + 1)
        );
        let flat: Vec<RecordedEvent> = batches.iter().flatten().cloned().collect();
        assert_eq!(flat, want, "after {after}");
        // A partial append arrives as one batch of the rest of it.
        if after % 3 != 0 {
            assert_eq!(batches[0].len() as u64, 3 - after % 3);
        }
    }
}

/// A subscription at the head delivers appends as they commit.
pub fn live_only<H: Harness>(h: &mut H) {
    let s = h.create();
    s.append(vec![ev("A", &[], "before")]).unwrap();
    let mut sub = s
        .subscribe(&Query::event_type("A"), s.head().unwrap())
        .unwrap();
    assert!(sub.try_recv().unwrap().is_none());
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..20 {
                s.append(vec![ev("A", &[], &format!("live{i}")), ev("B", &[], "x")])
                    .unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        for i in 0..20 {
            let batch = sub.recv().expect("live batch");
            assert_eq!(batch.len(), 1);
            assert_eq!(batch[0].data, format!("live{i}").into_bytes());
        }
    });
    assert!(sub.try_recv().unwrap().is_none());
}

/// Subscribers on types, tags, both and everything, started before, during
/// and after a burst of concurrent appends from several threads, all see
/// exactly what a later read returns, one batch per append: no gap and no
/// duplicate at the switch from the log to live delivery. They wait without
/// polling, so a subscriber that a commit for it failed to wake stalls
/// (subscribers are woken only by commits their query could match).
pub fn switch_under_concurrent_appends<H: Harness>(h: &mut H) {
    let s = h.create();
    let writers = 4;
    let per_writer = 150;
    let queries = [
        query_a(),
        Query::event_type("B"),
        Query::tag("t2"),
        Query::item(QueryItem::new().event_type("C").tag("t3")),
        Query::all(),
    ];
    let appends = std::sync::Mutex::new(Vec::new());
    // Half the subscribers start before the writers, half while they write.
    let early: Vec<_> = queries
        .iter()
        .map(|q| Some(s.subscribe(q, 0).unwrap()))
        .collect();
    let (last, delivered) = std::thread::scope(|scope| {
        let mut writing = Vec::new();
        for w in 0..writers {
            let (s, appends) = (&s, &appends);
            writing.push(scope.spawn(move || {
                let mut rng = SplitMix64::new(100 + w);
                for i in 0..per_writer {
                    let a = s
                        .append(mixed_batch(&mut rng, &format!("{w}/{i}")))
                        .unwrap();
                    appends.lock().unwrap().push(a);
                    if i % 10 == 0 {
                        // Spreads the burst over the late subscribers' starts.
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }));
        }
        let mut subscribers = Vec::new();
        for (k, early) in early
            .into_iter()
            .chain(queries.iter().map(|_| None))
            .enumerate()
        {
            let (s, query) = (&s, &queries[k % queries.len()]);
            subscribers.push(scope.spawn(move || {
                let (after, mut sub) = match early {
                    Some(sub) => (0, sub),
                    None => {
                        std::thread::sleep(Duration::from_millis(3 * k as u64));
                        let after = s.head().unwrap() / 2;
                        (after, s.subscribe(query, after).unwrap())
                    }
                };
                let mut batches: Vec<Vec<RecordedEvent>> = Vec::new();
                // Until the append made after every writer is done arrives.
                loop {
                    let batch = sub
                        .recv_timeout(WAIT)
                        .unwrap()
                        .unwrap_or_else(|| panic!("subscriber on {query:?} stuck"));
                    let end = batch.iter().any(|e| e.data.as_ref() == b"last");
                    batches.push(batch);
                    if end {
                        return (after, batches, Instant::now());
                    }
                }
            }));
        }
        for w in writing {
            w.join().unwrap();
        }
        let last: Vec<NewEvent> = ["A", "B", "C"]
            .iter()
            .map(|t| ev(t, &["t1", "t2", "t3"], "last"))
            .collect();
        let last = (s.append(last).unwrap(), Instant::now());
        let delivered = subscribers
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect::<Vec<_>>();
        (last, delivered)
    });
    let total: u64 = s.head().unwrap();
    assert!(total > writers * per_writer);
    let mut appends = appends.into_inner().unwrap();
    appends.push(last.0);
    for ((after, batches, at), query) in delivered.into_iter().zip(queries.iter().cycle()) {
        check_delivery(&batches, &read(&s, query, after), &appends, query);
        let took = at.saturating_duration_since(last.1);
        assert!(
            took < Duration::from_secs(5),
            "the last append reached a subscriber on {query:?} after {took:?}"
        );
    }
}

/// One append's matching events arrive together, without its non-matching
/// ones.
pub fn batches_keep_append_boundaries<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut sub = s.subscribe(&Query::tag("t1"), 0).unwrap();
    let a = s
        .append(vec![
            ev("A", &["t1"], "1"),
            ev("B", &["t2"], "2"),
            ev("C", &["t1", "t2"], "3"),
            ev("D", &["t1"], "4"),
        ])
        .unwrap();
    let b = s.append(vec![ev("E", &["t1"], "5")]).unwrap();
    let first = sub.recv().unwrap();
    assert_eq!(
        first.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![a.first, a.first + 2, a.first + 3]
    );
    let second = sub.recv().unwrap();
    assert_eq!(
        second.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![b.first]
    );
}

/// A subscriber that catches up over more events than one fetch reads
/// (`gesta::FETCH_EVENTS`) still gets an append that straddles that
/// bound as one batch, whichever query it follows.
pub fn batches_larger_than_a_fetch_stay_whole<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut appends = Vec::new();
    let singles = gesta::FETCH_EVENTS as u64 - 24;
    let big: Vec<NewEvent> = (0..100)
        .map(|i| {
            ev(
                if i % 2 == 0 { "A" } else { "B" },
                &["t1"],
                &format!("big-{i}"),
            )
        })
        .collect();
    let chunk: Vec<NewEvent> = (0..singles)
        .map(|i| ev("A", &[], &format!("single-{i}")))
        .collect();
    for e in chunk {
        appends.push(s.append(vec![e]).expect("append"));
    }
    appends.push(s.append(big).expect("append"));
    for i in 0..30 {
        appends.push(
            s.append(vec![ev("B", &[], &format!("tail-{i}"))])
                .expect("append"),
        );
    }
    let head = s.head().expect("head");
    for query in [Query::all(), Query::event_type("A")] {
        let mut sub = s.subscribe(&query, 0).expect("subscribe");
        let batches = collect_until(&mut sub, head);
        check_delivery(&batches, &read(&s, &query, 0), &appends, &query);
        let sizes: Vec<usize> = batches.iter().map(Vec::len).filter(|&n| n > 1).collect();
        let whole = if query.is_all() { 100 } else { 50 };
        assert_eq!(sizes, vec![whole], "the big append came as one batch");
    }
}

/// A subscriber that does not read while thousands of events commit does
/// not hold the writers up, and then gets every one of them, in order.
pub fn slow_subscriber_loses_nothing<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut sub = s.subscribe(&Query::all(), 0).unwrap();
    let mut by_tag = s.subscribe(&Query::tag("t1"), 0).unwrap();
    let mut appends = Vec::new();
    for i in 0..3000 {
        appends.push(s.append(vec![ev("A", &["t1"], &i.to_string())]).unwrap());
    }
    for i in 0..20 {
        let batch: Vec<NewEvent> = (0..100)
            .map(|k| ev("B", &["t2"], &format!("{i}/{k}")))
            .collect();
        appends.push(s.append(batch).unwrap());
    }
    let head = s.head().unwrap();
    assert_eq!(head, 5000);
    let batches = collect_until(&mut sub, head);
    assert_eq!(batches.len(), 3020);
    check_delivery(
        &batches,
        &read(&s, &Query::all(), 0),
        &appends,
        &Query::all(),
    );
    let batches = collect_until(&mut by_tag, head);
    assert_eq!(batches.len(), 3000);
    let t1 = Query::tag("t1");
    check_delivery(&batches, &read(&s, &t1, 0), &appends, &t1);
}

/// A query that matches nothing delivers nothing, yet keeps up with the
/// head.
pub fn query_matching_nothing<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut sub = s.subscribe(&Query::tag("never"), 0).unwrap();
    for i in 0..50 {
        s.append(vec![ev("A", &["t1"], &i.to_string())]).unwrap();
    }
    assert!(
        sub.recv_timeout(Duration::from_millis(50))
            .unwrap()
            .is_none()
    );
    assert_eq!(
        sub.checkpoint(),
        50,
        "non-matching positions are passed over"
    );
}

/// Subscribing after a position the store does not have is an error.
pub fn subscribe_beyond_the_head_rejected<H: Harness>(h: &mut H) {
    let s = h.create();
    s.append(vec![ev("A", &[], "1")]).unwrap();
    match s.subscribe(&Query::all(), 2) {
        Err(Error::InvalidInput { .. }) => {}
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert!(s.subscribe(&Query::all(), 1).is_ok());
}

/// An invalid query is refused up front.
pub fn invalid_query_rejected<H: Harness>(h: &mut H) {
    let s = h.create();
    match s.subscribe(&Query::tag(""), 0) {
        Err(Error::InvalidInput { .. }) => {}
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

/// When the store goes away, a waiting subscriber gets a clear end.
pub fn dropping_the_store_ends_subscriptions<H: Harness>(h: &mut H) {
    let s = h.create();
    s.append(vec![ev("A", &[], "1")]).unwrap();
    let mut sub = s.subscribe(&Query::all(), 0).unwrap();
    assert_eq!(sub.recv().unwrap().len(), 1);
    let waiter = std::thread::spawn(move || {
        let first = sub.next();
        let second = sub.next();
        (first, second)
    });
    std::thread::sleep(Duration::from_millis(50));
    drop(s);
    let (first, second) = waiter.join().unwrap();
    assert!(
        matches!(first, Some(Err(Error::Closed))),
        "expected Closed, got {first:?}"
    );
    assert!(second.is_none(), "the subscription ended");
}

/// `recv_timeout` returns `None` after about the timeout when nothing
/// commits.
pub fn recv_timeout_times_out<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut sub = s.subscribe(&Query::all(), 0).unwrap();
    let started = Instant::now();
    assert!(
        sub.recv_timeout(Duration::from_millis(30))
            .unwrap()
            .is_none()
    );
    assert!(started.elapsed() >= Duration::from_millis(30));
}
