//! The subscription and durable-subscription cases on PostgreSQL, against the server named by
//! `GESTA_POSTGRES_URL` (each test prints a line and skips without it).

gesta_tests::subscription_tests!(gesta_tests::postgres_harness_or_skip!());
gesta_tests::durable_subscription_tests!(gesta_tests::postgres_harness_or_skip!());

use std::time::Duration;

use gesta::{EventStore, NewEvent, Query, RecordedEvent, Subscription};
use gesta_postgres::{PostgresOptions, PostgresStore};

fn connect(schema: &str, poll_interval: Duration) -> Option<PostgresStore> {
    let url = std::env::var(gesta_tests::postgres_harness::URL_VAR).ok()?;
    let options = PostgresOptions {
        schema: schema.to_owned(),
        pool_size: 2,
        poll_interval,
        ..PostgresOptions::default()
    };
    Some(PostgresStore::connect(url.trim(), options).expect("connect"))
}

fn until(sub: &mut Subscription, upto: u64, within: Duration) -> Vec<Vec<u64>> {
    let deadline = gesta_wal::time::now() + within;
    let mut out = Vec::new();
    while sub.checkpoint() < upto {
        assert!(
            gesta_wal::time::now() < deadline,
            "stuck at {} waiting for {upto}",
            sub.checkpoint()
        );
        if let Some(batch) = sub.recv_timeout(Duration::from_millis(20)).expect("recv") {
            out.push(batch.iter().map(|e: &RecordedEvent| e.position).collect());
        }
    }
    out
}

/// Another handle's commits reach a subscriber through `NOTIFY`: with the
/// fallback poll an hour away, they arrive within seconds, grouped by
/// append.
#[test]
fn another_handles_commits_arrive_by_notification() {
    let schema = format!("gesta_live_notify_{}", std::process::id());
    let Some(a) = connect(&schema, Duration::from_secs(3600)) else {
        eprintln!("{}", gesta_tests::postgres_harness::SKIP_MESSAGE);
        return;
    };
    let b = connect(&schema, Duration::from_secs(3600)).expect("connect");
    let mut sub = a.subscribe(&Query::event_type("A"), 0).expect("subscribe");
    // Let the listener connect and LISTEN.
    std::thread::sleep(Duration::from_millis(500));
    b.append(vec![
        NewEvent::new("A", "1"),
        NewEvent::new("B", "2"),
        NewEvent::new("A", "3"),
    ])
    .expect("append");
    assert_eq!(
        until(&mut sub, 3, Duration::from_secs(10)),
        vec![vec![1, 3]]
    );
    b.append(vec![NewEvent::new("B", "4")]).expect("append");
    b.append(vec![NewEvent::new("A", "5")]).expect("append");
    assert_eq!(until(&mut sub, 5, Duration::from_secs(10)), vec![vec![5]]);
    drop(sub);
    a.drop_schema().expect("drop");
}

/// A commit whose notification never came (written here behind the
/// store's back, without `NOTIFY`) is found by the fallback poll.
#[test]
fn a_lost_notification_only_delays() {
    let schema = format!("gesta_live_poll_{}", std::process::id());
    let Some(a) = connect(&schema, Duration::from_millis(100)) else {
        eprintln!("{}", gesta_tests::postgres_harness::SKIP_MESSAGE);
        return;
    };
    a.append(vec![NewEvent::new("A", "1")]).expect("append");
    let mut sub = a.subscribe(&Query::all(), 1).expect("subscribe");
    std::thread::sleep(Duration::from_millis(300));
    let url = std::env::var(gesta_tests::postgres_harness::URL_VAR).expect("url");
    let mut client = postgres::Client::connect(url.trim(), postgres::NoTls).expect("connect");
    client
        .batch_execute(&format!(
            "BEGIN;
             INSERT INTO \"{schema}\".events
                 (position, event_type, tags, data, metadata, timestamp_micros)
             VALUES (2, 'A'::bytea, '{{}}', 'x'::bytea, ''::bytea, 1),
                    (3, 'B'::bytea, '{{}}', 'y'::bytea, ''::bytea, 1);
             INSERT INTO \"{schema}\".batches (first, last, timestamp_micros) VALUES (2, 3, 1);
             COMMIT;"
        ))
        .expect("insert behind the store's back");
    assert_eq!(
        until(&mut sub, 3, Duration::from_secs(10)),
        vec![vec![2, 3]]
    );
    drop(sub);
    a.drop_schema().expect("drop");
}

/// A durable subscription's name is claimed per handle: two handles on
/// one schema may both open it, and the stored cursor keeps the greater of
/// their acknowledgements, never moving backwards.
#[test]
fn a_cursor_acknowledged_through_two_handles_never_moves_back() {
    let schema = format!("gesta_live_cursor_{}", std::process::id());
    let Some(a) = connect(&schema, Duration::from_secs(3600)) else {
        eprintln!("{}", gesta_tests::postgres_harness::SKIP_MESSAGE);
        return;
    };
    let b = connect(&schema, Duration::from_secs(3600)).expect("connect");
    gesta_tests::durable_subscriptions::cursors_of_two_handles_never_move_back(&a, &b);
    a.drop_schema().expect("drop");
}
