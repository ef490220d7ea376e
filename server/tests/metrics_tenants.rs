//! The Prometheus endpoint of a server of tenants: every per-store series
//! carries its tenant's label, with exactly that tenant's numbers, and
//! the label's values are bounded — past the first
//! `max_tenant_labels` tenants, every tenant reports as `_other`.
//!
//! The `metrics` recorder is global to a process, so this file (its own
//! test binary) holds one test.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use gesta::tenants::{TenantOptions, Tenants};
use gesta::{AppendOptions, NewEvent, Query};
use gesta_server::client::{ClientError, GestaClient};
use gesta_server::{ServeConfig, TenantKeys};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Endpoint;

/// One scrape's samples, by name, each with its labels.
async fn scrape(addr: SocketAddr) -> Vec<(String, HashMap<String, String>, f64)> {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap();
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            (name.to_owned(), labels, value.parse().unwrap())
        })
        .collect()
}

/// The value of `name` whose labels include every one of `labels` (0 if
/// there is none); panics if several series match.
fn value(
    samples: &[(String, HashMap<String, String>, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    let found: Vec<f64> = samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?}: {found:?}");
    found.first().copied().unwrap_or(0.0)
}

/// Every value a label takes in the scrape.
fn label_values(samples: &[(String, HashMap<String, String>, f64)], label: &str) -> Vec<String> {
    let mut values: Vec<String> = samples
        .iter()
        .filter_map(|(_, l, _)| l.get(label).cloned())
        .collect();
    values.sort();
    values.dedup();
    values
}

async fn client(addr: SocketAddr, key: &str) -> GestaClient {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    GestaClient::with_api_key(channel, key).unwrap()
}

fn ev(i: u64) -> NewEvent {
    NewEvent::new("E", format!("{{\"i\":{i}}}")).tag(format!("k:{i}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenant_series_are_labelled_and_bounded() {
    // Two tenants get a label of their own; the third and fourth share
    // `_other`.
    gesta::telemetry::set_max_tenant_labels(2);
    let root = tempfile::tempdir().unwrap();
    let tenants = Arc::new(Tenants::open(root.path(), TenantOptions::default()).unwrap());
    let names = ["alpha", "beta", "gamma", "delta"];
    let mut keys = String::new();
    for name in names {
        tenants.create(name).unwrap();
        keys.push_str(&format!("{name} key-{name}\n"));
    }
    let keys = TenantKeys::parse(&keys).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stopped = async move {
        let _ = stopped.await;
    };
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let endpoint = tokio::spawn(gesta_server::metrics::serve_tenant_metrics(
        metrics,
        tenants.clone(),
        async move {
            let _ = metrics_stopped.await;
        },
    ));
    let server = tokio::spawn(gesta_server::serve_tenants_on(
        listener,
        tenants.clone(),
        keys,
        ServeConfig {
            listen: addr,
            insecure_loopback_api_key: true,
            ..ServeConfig::default()
        },
        stopped,
    ));

    // The workload, tenant after tenant (so the first two opened are alpha
    // and beta): tenant i appends i + 1 batches of 2 events, and one append
    // whose condition fails.
    let mut expected = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        let mut c = client(addr, &format!("key-{name}")).await;
        for b in 0..=i as u64 {
            c.append(vec![ev(2 * b), ev(2 * b + 1)], AppendOptions::new())
                .await
                .unwrap();
        }
        let refused = c
            .append(
                vec![ev(99)],
                AppendOptions::new().fail_if(Query::tag("k:0"), None),
            )
            .await;
        assert!(matches!(
            refused,
            Err(ClientError::Store(gesta::Error::ConditionFailed { .. }))
        ));
        expected.insert(*name, (i as f64 + 1.0, 2.0 * (i as f64 + 1.0)));
    }

    let samples = scrape(metrics_addr).await;
    // The label's values: the two first tenants and `_other`, no more.
    assert_eq!(
        label_values(&samples, "tenant"),
        ["_other", "alpha", "beta"]
    );
    for name in ["alpha", "beta"] {
        let (appends, events) = expected[name];
        let t = ("tenant", name);
        assert_eq!(
            value(
                &samples,
                "gesta_appends_total",
                &[t, ("outcome", "committed")]
            ),
            appends,
            "{name}"
        );
        assert_eq!(
            value(
                &samples,
                "gesta_appends_total",
                &[t, ("outcome", "condition_failed")]
            ),
            1.0
        );
        assert_eq!(
            value(&samples, "gesta_events_committed_total", &[t]),
            events
        );
        assert_eq!(
            value(&samples, "gesta_commit_group_events_sum", &[t]),
            events
        );
        // Sequential appends: a group each, written and synced once.
        assert_eq!(
            value(&samples, "gesta_commit_write_seconds_count", &[t]),
            appends
        );
        assert_eq!(
            value(&samples, "gesta_commit_sync_seconds_count", &[t]),
            appends
        );
        // Its store is open: its gauges are sampled, with its label.
        assert_eq!(value(&samples, "gesta_head_position", &[t]), events);
        assert_eq!(value(&samples, "gesta_subscriptions_open", &[t]), 0.0);
    }
    // gamma and delta together, under `_other`.
    let other = ("tenant", "_other");
    let (ga, ge) = expected["gamma"];
    let (da, de) = expected["delta"];
    assert_eq!(
        value(
            &samples,
            "gesta_appends_total",
            &[other, ("outcome", "committed")]
        ),
        ga + da
    );
    assert_eq!(
        value(&samples, "gesta_events_committed_total", &[other]),
        ge + de
    );
    // No per-store series without a tenant label.
    assert!(
        samples
            .iter()
            .filter(|(n, _, _)| n.starts_with("gesta_") && !n.starts_with("gesta_rpc_"))
            .filter(|(n, _, _)| n != "gesta_open_streams")
            .all(|(_, l, _)| l.contains_key("tenant")),
        "a store series without its tenant"
    );

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    let _ = stop_metrics.send(());
    endpoint.await.unwrap().unwrap();
    tenants.close().unwrap();
}
