//! `Store::subscription_positions`: where each open subscription is, for
//! the subscription-lag metric — it follows what a subscription handed
//! out, and a dropped subscription leaves it.

use std::time::Duration;

use gesta::{NewEvent, Query, Store};

#[test]
fn positions_follow_what_subscriptions_handed_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .append(vec![
            NewEvent::new("A", "1"),
            NewEvent::new("A", "2"),
            NewEvent::new("B", "3"),
        ])
        .unwrap();
    assert!(store.subscription_positions().is_empty());
    let mut from_one = store.subscribe(&Query::all(), 1).unwrap();
    let mut only_b = store.subscribe(&Query::event_type("B"), 0).unwrap();
    let mut positions = store.subscription_positions();
    positions.sort();
    assert_eq!(positions, [0, 1]);

    // Each hands out its batch: both are then at the head.
    let batch = from_one.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(batch.unwrap().len(), 2);
    let batch = only_b.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(batch.unwrap().len(), 1);
    assert_eq!(store.subscription_positions(), [3, 3]);

    // A commit moves the head, not the positions, until they read it.
    store.append(vec![NewEvent::new("A", "4")]).unwrap();
    assert_eq!(store.subscription_positions(), [3, 3]);
    assert!(only_b.try_recv().unwrap().is_none());
    let mut positions = store.subscription_positions();
    positions.sort();
    assert_eq!(positions, [3, 4], "B's read past the A it skipped");

    drop(from_one);
    assert_eq!(store.subscription_positions(), [4]);
    drop(only_b);
    assert!(store.subscription_positions().is_empty());
    store.close().unwrap();
}
