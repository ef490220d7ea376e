//! The durable-subscription part of the conformance suite: resuming after
//! the last acknowledgement across a reopen, the acknowledgement rules, one
//! open subscription per name, deleting cursors, and the end of
//! acknowledgements when the subscription or the store goes away. It runs on every store
//! through the same [`Harness`] as the rest of the suite:
//!
//! ```ignore
//! gesta_tests::durable_subscription_tests!(gesta_tests::conformance::MemoryHarness);
//! ```
//!
//! The in-memory reference keeps its cursors as long as the store, so its
//! "reopen" (the same store) resumes too.

use std::time::Duration;

use gesta::{
    DurableSubscription, DurableSubscriptionState, Error, EventStore, NewEvent, Query, QueryItem,
    RecordedEvent,
};

use crate::conformance::Harness;

/// Expands to one `#[test]` per durable-subscription case.
#[macro_export]
macro_rules! durable_subscription_tests {
    ($harness:expr) => {
        $crate::__gesta_durable_subscription_tests! {
            ($harness)
            durable_resumes_after_reopen,
            durable_ack_rules,
            durable_names_are_claimed_and_deleted,
            durable_delivers_live_batches,
            durable_ack_after_the_store_is_gone,
            durable_acker_ends_with_its_subscription,
        }
    };
}

/// The per-case test functions of [`durable_subscription_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __gesta_durable_subscription_tests {
    (($harness:expr) $($case:ident,)*) => {
        $(
            #[test]
            fn $case() {
                let mut harness = $harness;
                $crate::durable_subscriptions::$case(&mut harness);
            }
        )*
    };
}

const WAIT: Duration = Duration::from_secs(20);

fn ev(t: &str, label: &str) -> NewEvent {
    NewEvent::new(t, label.to_owned()).tag("t")
}

fn positions(batch: &[RecordedEvent]) -> Vec<u64> {
    batch.iter().map(|e| e.position).collect()
}

fn next(sub: &mut DurableSubscription) -> Vec<RecordedEvent> {
    sub.recv_timeout(WAIT)
        .expect("receive")
        .expect("a batch within the wait")
}

fn state(name: &str, acknowledged: u64) -> DurableSubscriptionState {
    DurableSubscriptionState {
        name: name.to_owned(),
        acknowledged,
    }
}

/// Acknowledged positions survive closing and reopening the store; a new
/// subscription under the name resumes after the last ack, delivering
/// again what was delivered but not acknowledged (at least once).
pub fn durable_resumes_after_reopen<H: Harness>(h: &mut H) {
    let s = h.create();
    for i in 0..10 {
        s.append(vec![ev("A", &i.to_string())]).expect("append");
    }
    {
        let mut sub = s
            .subscribe_durable("proj", &Query::all())
            .expect("subscribe");
        assert_eq!(sub.name(), "proj");
        assert_eq!(sub.acked(), 0);
        let seen: Vec<u64> = (0..6).flat_map(|_| positions(&next(&mut sub))).collect();
        assert_eq!(seen, vec![1, 2, 3, 4, 5, 6]);
        sub.ack(4).expect("ack");
        assert_eq!(sub.acked(), 4);
    }
    assert_eq!(
        s.durable_subscriptions().expect("list"),
        vec![state("proj", 4)]
    );
    let s = h.reopen(s);
    assert_eq!(
        s.durable_subscriptions().expect("list"),
        vec![state("proj", 4)]
    );
    let mut sub = s
        .subscribe_durable("proj", &Query::all())
        .expect("subscribe");
    assert_eq!(sub.acked(), 4);
    let batch = next(&mut sub);
    assert_eq!(positions(&batch), vec![5]);
    assert_eq!(batch[0].data.as_ref(), b"4");
    // A fresh name starts from the beginning.
    let mut other = s
        .subscribe_durable("other", &Query::all())
        .expect("subscribe");
    assert_eq!(positions(&next(&mut other)), vec![1]);
}

/// An ack at or below the acknowledged position changes nothing; one
/// beyond the head is refused and changes nothing; the cursor only moves
/// forward.
pub fn durable_ack_rules<H: Harness>(h: &mut H) {
    let s = h.create();
    s.append(vec![ev("A", "1"), ev("B", "2")]).expect("append");
    s.append(vec![ev("A", "3")]).expect("append");
    let sub = s.subscribe_durable("p", &Query::all()).expect("subscribe");
    sub.ack(2).expect("ack");
    sub.ack(1).expect("an older ack is accepted");
    sub.ack(2).expect("the same ack again is accepted");
    assert_eq!(sub.acked(), 2);
    match sub.ack(4) {
        Err(Error::InvalidInput { .. }) => {}
        other => panic!("an ack beyond the head: {other:?}"),
    }
    assert_eq!(sub.acked(), 2);
    let acker = sub.acker();
    std::thread::spawn(move || acker.ack(3))
        .join()
        .expect("join")
        .expect("ack from another thread");
    assert_eq!(sub.acked(), 3);
    assert_eq!(
        s.durable_subscriptions().expect("list"),
        vec![state("p", 3)]
    );
    drop(sub);
    let sub = s.subscribe_durable("p", &Query::all()).expect("subscribe");
    assert_eq!(sub.acked(), 3);
    sub.ack(1).expect("an older ack");
    drop(sub);
    assert_eq!(
        s.durable_subscriptions().expect("list"),
        vec![state("p", 3)]
    );
}

/// One subscription per name is open at a time; an open one's cursor
/// cannot be deleted; deleting a closed one starts its name over; names
/// are checked.
pub fn durable_names_are_claimed_and_deleted<H: Harness>(h: &mut H) {
    let s = h.create();
    s.append(vec![ev("A", "1")]).expect("append");
    s.append(vec![ev("A", "2")]).expect("append");
    let sub = s.subscribe_durable("a", &Query::all()).expect("subscribe");
    sub.ack(2).expect("ack");
    assert!(matches!(
        s.subscribe_durable("a", &Query::all()),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        s.delete_durable_subscription("a"),
        Err(Error::InvalidInput { .. })
    ));
    let b = s
        .subscribe_durable("b", &Query::all())
        .expect("another name");
    b.ack(1).expect("ack");
    assert_eq!(
        s.durable_subscriptions().expect("list"),
        vec![state("a", 2), state("b", 1)]
    );
    drop(sub);
    assert!(s.delete_durable_subscription("a").expect("delete"));
    assert!(!s.delete_durable_subscription("a").expect("delete again"));
    assert!(
        !s.delete_durable_subscription("never")
            .expect("delete unknown")
    );
    assert_eq!(
        s.durable_subscriptions().expect("list"),
        vec![state("b", 1)]
    );
    let mut again = s.subscribe_durable("a", &Query::all()).expect("subscribe");
    assert_eq!(again.acked(), 0);
    assert_eq!(positions(&next(&mut again)), vec![1]);
    // The longest name works on every store (the engine keeps it in a
    // file named after it); one byte more is refused.
    let longest = "é".repeat(gesta::MAX_DURABLE_NAME_LEN / 2);
    let long = s
        .subscribe_durable(&longest, &Query::all())
        .expect("longest name");
    long.ack(1).expect("ack under the longest name");
    drop(long);
    assert!(
        s.durable_subscriptions()
            .expect("list")
            .contains(&state(&longest, 1))
    );
    assert!(s.delete_durable_subscription(&longest).expect("delete"));
    for bad in [String::new(), "x".repeat(gesta::MAX_DURABLE_NAME_LEN + 1)] {
        assert!(
            matches!(
                s.subscribe_durable(&bad, &Query::all()),
                Err(Error::InvalidInput { .. })
            ),
            "name of {} bytes",
            bad.len()
        );
        assert!(matches!(
            s.delete_durable_subscription(&bad),
            Err(Error::InvalidInput { .. })
        ));
    }
    assert!(matches!(
        s.subscribe_durable("q", &Query::tag("")),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(
        s.durable_subscriptions().expect("list"),
        vec![state("b", 1)],
        "refused subscriptions leave no cursor"
    );
}

/// A durable subscription is a subscription: catch-up then live, each
/// batch the matching events of one append.
pub fn durable_delivers_live_batches<H: Harness>(h: &mut H) {
    let s = h.create();
    let query = Query::event_type("A").or(QueryItem::new().tag("x"));
    s.append(vec![ev("A", "1"), ev("B", "2"), ev("A", "3")])
        .expect("append");
    let mut sub = s.subscribe_durable("live", &query).expect("subscribe");
    assert_eq!(positions(&next(&mut sub)), vec![1, 3]);
    sub.ack(3).expect("ack");
    s.append(vec![ev("B", "4")]).expect("append");
    s.append(vec![
        ev("B", "5"),
        NewEvent::new("C", "6").tag("x"),
        ev("A", "7"),
    ])
    .expect("append");
    let batch = next(&mut sub);
    assert_eq!(positions(&batch), vec![6, 7]);
    assert_eq!(batch[0].event_type, "C");
    assert_eq!(batch[0].tags, vec!["x".to_owned()]);
    sub.ack(7).expect("ack");
    assert_eq!(sub.checkpoint(), 7);
}

/// Once the store is dropped, the subscription ends with `Closed` and an
/// acknowledgement is refused with `Closed`.
pub fn durable_ack_after_the_store_is_gone<H: Harness>(h: &mut H) {
    let s = h.create();
    s.append(vec![ev("A", "1")]).expect("append");
    let mut sub = s
        .subscribe_durable("gone", &Query::all())
        .expect("subscribe");
    assert_eq!(positions(&next(&mut sub)), vec![1]);
    drop(s);
    assert!(matches!(sub.ack(1), Err(Error::Closed)), "ack after drop");
    assert!(matches!(sub.recv_timeout(WAIT), Err(Error::Closed)));
}

/// An acker that outlives its subscription acknowledges nothing more: its
/// late ack is refused, does not bring back a deleted cursor, and does not
/// move back the cursor of a later subscription under the name. An acker
/// taken before `into_stream` acknowledges as long as the stream lives.
pub fn durable_acker_ends_with_its_subscription<H: Harness>(h: &mut H) {
    let s = h.create();
    for i in 0..10 {
        s.append(vec![ev("A", &i.to_string())]).expect("append");
    }
    let refused = |acker: &gesta::Acker, position: u64| match acker.ack(position) {
        Err(Error::InvalidInput { reason }) => assert!(reason.contains("closed"), "{reason}"),
        other => panic!("a late ack of {position}: {other:?}"),
    };
    let sub = s
        .subscribe_durable("late", &Query::all())
        .expect("subscribe");
    let acker = sub.acker();
    acker.ack(2).expect("ack");
    drop(sub);
    refused(&acker, 8);
    assert_eq!(acker.acked(), 2);
    assert_eq!(
        s.durable_subscriptions().expect("list"),
        vec![state("late", 2)]
    );
    // A deleted cursor stays deleted.
    assert!(s.delete_durable_subscription("late").expect("delete"));
    refused(&acker, 9);
    assert_eq!(s.durable_subscriptions().expect("list"), vec![]);
    // A later subscription's cursor only moves forward.
    let sub = s
        .subscribe_durable("late", &Query::all())
        .expect("subscribe");
    sub.ack(3).expect("ack");
    refused(&acker, 8);
    sub.ack(4).expect("ack");
    assert_eq!(
        s.durable_subscriptions().expect("list"),
        vec![state("late", 4)]
    );
    // Through a stream: the acker acknowledges while the stream lives.
    let streamed = sub.acker();
    let stream = sub.into_stream();
    streamed.ack(5).expect("ack while the stream lives");
    drop(stream);
    refused(&streamed, 6);
    assert_eq!(
        s.durable_subscriptions().expect("list"),
        vec![state("late", 5)]
    );
}

/// Two handles `a` and `b` on one SQL database, which may both open a
/// durable subscription of the same name (the claim is per handle): the
/// stored cursor keeps the greater of their acknowledgements, so it never
/// moves backwards. Not a case of the suite: the engine's directory lock
/// and the in-memory store give no second handle.
pub fn cursors_of_two_handles_never_move_back<S: EventStore>(a: &S, b: &S) {
    for i in 0..10 {
        a.append(vec![NewEvent::new("A", format!("{i}"))])
            .expect("append");
    }
    let on_a = a
        .subscribe_durable("n", &Query::all())
        .expect("subscribe a");
    let on_b = b
        .subscribe_durable("n", &Query::all())
        .expect("subscribe b");
    on_a.ack(8).expect("ack 8");
    on_b.ack(3).expect("ack 3");
    for store in [a, b] {
        assert_eq!(
            store.durable_subscriptions().expect("list"),
            vec![DurableSubscriptionState {
                name: "n".to_owned(),
                acknowledged: 8
            }]
        );
    }
    drop((on_a, on_b));
    let again = b.subscribe_durable("n", &Query::all()).expect("subscribe");
    assert_eq!(again.acked(), 8);
}
