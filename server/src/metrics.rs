//! The Prometheus endpoint: the process's `metrics` recorder
//! (`metrics-exporter-prometheus`) and a small HTTP responder that renders
//! it in the Prometheus text format at `GET /metrics`, sampling the store's
//! gauges first ([`gesta::telemetry::record_store_gauges`]) so that a scrape
//! sees them as they are — with tenants, those of every tenant store open
//! then, each labelled with its tenant.
//!
//! The recorder is global to the process (the `metrics` facade has one):
//! [`install_recorder`] installs it once and hands the same handle to every
//! later caller, so counters accumulate over every store and server of the
//! process. Embedded users who serve no gRPC can use it too: install it,
//! then [`serve_metrics`] on a listener of their own.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use gesta::tenants::Tenants;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{ServeError, Served};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets, seconds: 10 µs to 10 s.
const SECONDS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// Group size buckets, appends or events per group.
const SIZES: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 16384.0,
];

/// Installs the Prometheus recorder as the process's `metrics` recorder
/// (once; later calls return the same handle) and describes the store's
/// metrics. Fails if another recorder was installed first.
pub fn install_recorder() -> Result<PrometheusHandle, ServeError> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Prefix("gesta_commit_group_".into()), SIZES)
        })
        .map_err(|e| ServeError::Config(format!("metrics: {e}")))?;
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    // Two threads racing here: one installs, the other finds it taken and
    // uses the winner's handle.
    match metrics::set_global_recorder(recorder) {
        Ok(()) => {
            let _ = HANDLE.set(handle);
            gesta::telemetry::describe_metrics();
            describe_server_metrics();
            crate::replication::describe_metrics();
        }
        Err(_) if HANDLE.get().is_some() => {}
        Err(_) => {
            return Err(ServeError::Config(
                "metrics: another metrics recorder is installed in this process".into(),
            ));
        }
    }
    HANDLE
        .get()
        .cloned()
        .ok_or_else(|| ServeError::Config("metrics: the recorder is not installed".into()))
}

fn describe_server_metrics() {
    use metrics::{Unit, describe_gauge, describe_histogram};
    describe_histogram!(
        crate::observe::RPC_SECONDS,
        Unit::Seconds,
        "Time until a call's response starts, by method"
    );
    describe_gauge!(
        crate::observe::OPEN_STREAMS,
        Unit::Count,
        "Reads and subscriptions open"
    );
}

/// The most of a request the responder reads: a request line and headers.
const MAX_REQUEST: usize = 8 << 10;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What a scrape samples before it renders: nothing, one store (and
/// its shipping or replica, if any), or the tenants' stores open now.
#[derive(Clone)]
enum Sampled {
    Store(Option<Served>),
    Tenants(Arc<Tenants>),
}

impl Sampled {
    fn sample(&self) {
        match self {
            Sampled::Store(None) => {}
            Sampled::Store(Some(served)) => {
                gesta::telemetry::record_store_gauges(served.engine());
                served.replication().record_gauges();
            }
            // Closed tenants' gauges keep their last sample; the walk is
            // bounded by the open stores.
            Sampled::Tenants(tenants) => {
                tenants.for_each_open(|_, store| gesta::telemetry::record_store_gauges(store));
            }
        }
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves: the
/// recorder's text after sampling `store`'s gauges (none without a
/// store). Any other path is 404, any other method 405; one request per
/// connection. Installs the recorder if it is not yet.
pub async fn serve_metrics(
    listener: TcpListener,
    store: Option<gesta::Store>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_sampled(listener, Sampled::Store(store.map(Served::from)), shutdown).await
}

/// [`serve_metrics`] for a store as a server serves it: also samples
/// the shipping's or replica's status it reports
/// ([`Served::reports_replication`]), as `gesta_replication_*` series.
pub async fn serve_served_metrics(
    listener: TcpListener,
    served: Served,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_sampled(listener, Sampled::Store(Some(served)), shutdown).await
}

/// [`serve_metrics`] for a server of many tenants: every series of a
/// tenant's store carries its `tenant` label (see
/// [`gesta::telemetry`] for the bound on the label's values), and each
/// scrape samples the gauges of the stores open then.
pub async fn serve_tenant_metrics(
    listener: TcpListener,
    tenants: Arc<Tenants>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_sampled(listener, Sampled::Tenants(tenants), shutdown).await
}

async fn serve_sampled(
    listener: TcpListener,
    sampled: Sampled,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let handle = install_recorder()?;
    let local = listener.local_addr().map_err(ServeError::Io)?;
    tracing::info!("serving Prometheus metrics on http://{local}/metrics");
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => {
                let Ok((socket, _)) = accepted else { continue };
                let (handle, sampled) = (handle.clone(), sampled.clone());
                tokio::spawn(async move {
                    if let Err(e) = respond(socket, &handle, &sampled).await {
                        tracing::debug!("metrics request failed: {e}");
                    }
                });
            }
        }
    }
}

/// Reads one request and answers it.
async fn respond(
    mut socket: TcpStream,
    handle: &PrometheusHandle,
    sampled: &Sampled,
) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < MAX_REQUEST {
            let n = socket.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return Ok(());
    }
    let line = request.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => {
            sampled.sample();
            (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                handle.render(),
            )
        }
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_owned(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body.as_bytes()).await?;
    socket.shutdown().await
}
