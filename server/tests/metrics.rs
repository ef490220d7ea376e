//! The Prometheus endpoint scraped during a workload through the gRPC
//! server: the counters must say exactly what the workload did — appends
//! committed, events, condition and revision conflicts, idempotent
//! retries — and the gauges what the store holds, its subscriptions'
//! lag included.
//!
//! The `metrics` recorder is global to a process, so this file holds one
//! test: no other test in its binary adds to the counters.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;

use futures::StreamExt;
use gesta::{AppendOptions, ExpectedRevision, NewEvent, Query};
use gesta_server::client::{ClientError, GestaClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One scrape: the HTTP status line and the samples, by their full name
/// with labels (`name{label="value"}`).
async fn scrape(addr: SocketAddr, path: &str) -> (String, HashMap<String, f64>) {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_owned();
    if !status.ends_with("200 OK") {
        return (status, HashMap::new());
    }
    let samples = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (
                name.to_owned(),
                value.parse::<f64>().unwrap_or_else(|_| panic!("{l:?}")),
            )
        })
        .collect();
    (status, samples)
}

fn value(samples: &HashMap<String, f64>, name: &str) -> f64 {
    samples.get(name).copied().unwrap_or(0.0)
}

fn outcome(samples: &HashMap<String, f64>, outcome: &str) -> f64 {
    value(
        samples,
        &format!("gesta_appends_total{{outcome=\"{outcome}\"}}"),
    )
}

fn ev(i: usize) -> NewEvent {
    NewEvent::new("Registered", format!("{{\"i\":{i}}}")).tag(format!("user:{i}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scraped_counters_match_the_workload() {
    let running = common::start().await;
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let endpoint = tokio::spawn(gesta_server::metrics::serve_metrics(
        metrics,
        Some(running.store.clone()),
        async move {
            let _ = metrics_stopped.await;
        },
    ));
    let uri = format!("http://{}", running.addr);

    // Before any append: the endpoint answers, nothing is counted yet.
    let (status, before) = scrape(metrics_addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(outcome(&before, "committed"), 0.0);
    let (status, _) = scrape(metrics_addr, "/elsewhere").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    // A subscription stays open over the workload.
    let mut watcher = GestaClient::connect(uri.clone()).await.unwrap();
    let mut subscription = watcher.subscribe(&Query::all(), 0).await.unwrap();

    // The workload: 8 tasks, each 25 appends of 1 + (i % 3) events, with
    // scrapes while they run.
    const TASKS: usize = 8;
    const APPENDS: usize = 25;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let uri = uri.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = GestaClient::connect(uri).await.unwrap();
            let mut events = 0u64;
            for i in 0..APPENDS {
                let n = 1 + (i % 3);
                let batch = (0..n).map(|k| ev(t * 1000 + i * 10 + k)).collect();
                client.append(batch, AppendOptions::new()).await.unwrap();
                events += n as u64;
            }
            events
        }));
    }
    let mut last_seen = 0.0;
    for _ in 0..5 {
        let (_, during) = scrape(metrics_addr, "/metrics").await;
        let committed = outcome(&during, "committed");
        assert!(committed >= last_seen, "a counter went back");
        assert!(committed <= (TASKS * APPENDS) as f64);
        last_seen = committed;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut events = 0;
    for task in tasks {
        events += task.await.unwrap();
    }

    let mut client = GestaClient::connect(uri.clone()).await.unwrap();
    // Condition conflicts: 3 appends whose condition matches what exists.
    for _ in 0..3 {
        let e = client
            .append(
                vec![ev(1)],
                AppendOptions::new().fail_if(Query::tag("user:0"), Some(0)),
            )
            .await;
        assert!(matches!(
            e,
            Err(ClientError::Store(gesta::Error::ConditionFailed { .. }))
        ));
    }
    // Revision conflicts: 2 appends expecting a stream that does not exist.
    for _ in 0..2 {
        let e = client
            .append(
                vec![ev(2).stream("account-1")],
                AppendOptions::new().expect("account-1", ExpectedRevision::Exact(5)),
            )
            .await;
        assert!(matches!(
            e,
            Err(ClientError::Store(
                gesta::Error::WrongExpectedRevision { .. }
            ))
        ));
    }
    // An append with an id, and 2 idempotent retries of it.
    let with_id = || vec![ev(3).id(0x1234_5678_9abc_def0_u128)];
    let first = client
        .append(with_id(), AppendOptions::new())
        .await
        .unwrap();
    for _ in 0..2 {
        let again = client
            .append(with_id(), AppendOptions::new())
            .await
            .unwrap();
        assert_eq!(again, first);
    }
    let committed = (TASKS * APPENDS + 1) as f64;
    let events = (events + 1) as f64;
    let calls = (TASKS * APPENDS + 3 + 2 + 3) as f64;

    // The subscription saw every event, so it is open for sure.
    let mut seen = 0;
    while seen < events as usize {
        seen += subscription.next().await.unwrap().unwrap().len();
    }

    // Beside it, on the store: a durable subscription acknowledged at its
    // first batch's end, and a subscription from position 0 that reads
    // nothing.
    let mut durable = running
        .store
        .subscribe_durable("audit", &Query::all())
        .unwrap();
    let first_batch = durable
        .recv_timeout(std::time::Duration::from_secs(20))
        .unwrap()
        .unwrap();
    let acked = first_batch.last().unwrap().position;
    durable.ack(acked).unwrap();
    let idle = running.store.subscribe(&Query::all(), 0).unwrap();

    let (_, after) = scrape(metrics_addr, "/metrics").await;
    assert_eq!(outcome(&after, "committed"), committed);
    assert_eq!(value(&after, "gesta_events_committed_total"), events);
    assert_eq!(outcome(&after, "condition_failed"), 3.0);
    assert_eq!(outcome(&after, "revision_conflict"), 2.0);
    assert_eq!(outcome(&after, "duplicate"), 2.0);
    assert_eq!(outcome(&after, "failed"), 0.0);
    // Every committed append was in a group; groups hold at least one.
    let groups = value(&after, "gesta_commit_group_batches_count");
    assert!(groups >= 1.0 && groups <= committed, "{groups} groups");
    assert_eq!(value(&after, "gesta_commit_group_batches_sum"), committed);
    assert_eq!(value(&after, "gesta_commit_group_events_sum"), events);
    assert_eq!(
        value(&after, "gesta_commit_write_sync_seconds_count"),
        groups
    );
    // The write and the fdatasync timed apart: every group that wrote
    // (all but the two of idempotent retries alone, which write nothing)
    // was written and, in `Sync` mode, synced once.
    assert_eq!(
        value(&after, "gesta_commit_write_seconds_count"),
        groups - 2.0
    );
    assert_eq!(
        value(&after, "gesta_commit_sync_seconds_count"),
        groups - 2.0
    );
    assert!(
        value(&after, "gesta_commit_write_seconds_sum")
            + value(&after, "gesta_commit_sync_seconds_sum")
            <= value(&after, "gesta_commit_write_sync_seconds_sum")
    );
    // Subscriptions: the gRPC one (at the head: it saw everything), the
    // durable one and the idle one (at 0: its lag is the head, the most).
    assert_eq!(value(&after, "gesta_subscriptions_open"), 3.0);
    assert_eq!(value(&after, "gesta_subscription_lag_max_events"), events);
    assert_eq!(
        value(
            &after,
            "gesta_durable_subscription_lag_events{subscription=\"audit\"}"
        ),
        events - acked as f64
    );
    drop((durable, idle));
    let (_, later) = scrape(metrics_addr, "/metrics").await;
    assert_eq!(value(&later, "gesta_subscriptions_open"), 1.0);
    assert_eq!(value(&later, "gesta_subscription_lag_max_events"), 0.0);
    // Every append reached the committer and waited in its queue.
    assert_eq!(
        value(&after, "gesta_append_queue_wait_seconds_count"),
        committed + 3.0 + 2.0 + 2.0
    );
    // Every Append call was timed, failed ones too.
    assert_eq!(
        value(
            &after,
            "gesta_rpc_seconds_count{method=\"gesta.v1.Gesta/Append\"}"
        ),
        calls
    );
    assert_eq!(value(&after, "gesta_open_streams"), 1.0);
    assert_eq!(value(&after, "gesta_head_position"), events);
    assert_eq!(
        value(&after, "gesta_head_position"),
        running.store.head() as f64
    );
    assert!(value(&after, "gesta_disk_bytes") > 0.0);
    assert_eq!(
        value(&after, "gesta_index_runs"),
        running.store.index_shape().runs as f64
    );

    // The subscription ends: the gauge comes down.
    drop(subscription);
    drop(watcher);
    let mut open = 1.0;
    for _ in 0..100 {
        open = value(
            &scrape(metrics_addr, "/metrics").await.1,
            "gesta_open_streams",
        );
        if open == 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(open, 0.0);

    let _ = stop_metrics.send(());
    endpoint.await.unwrap().unwrap();
    running.stop().await;
}
