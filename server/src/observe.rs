//! What the server reports about the calls it serves, through the
//! `metrics` facade and `tracing`: a tower layer that opens a span per call
//! and times it, and the permit of an open read or subscription that
//! counts itself in a gauge. Without an installed recorder or subscriber
//! these cost a few atomic loads per call.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

/// Histogram, seconds, label `method` (`service/Method`): the time until a
/// call's response starts — a unary call's whole latency; for a read or a
/// subscription, the time to open it.
pub const RPC_SECONDS: &str = "gesta_rpc_seconds";
/// Gauge: reads and subscriptions open (both services).
pub const OPEN_STREAMS: &str = "gesta_open_streams";

/// The services and methods a `method` label may name; any other path is
/// `other`, so that a client cannot grow the label set without bound.
const KNOWN: &[(&str, &[&str])] = &[
    (
        "gesta.v1.Gesta",
        &[
            "Append",
            "Read",
            "ReadStream",
            "ReadStreamLast",
            "StreamRevision",
            "EventById",
            "PositionAt",
            "Head",
            "GetTrackingInfo",
            "ListStreams",
            "ListEventTypes",
            "ListTags",
            "Subscribe",
            "SubscribeDurable",
            "Ack",
            "ListDurable",
            "DeleteDurable",
            "SaveSnapshot",
            "LoadSnapshot",
            "ListSnapshots",
            "DeleteSnapshot",
            "AddTags",
            "Redact",
            "AuditLog",
            "Backup",
        ],
    ),
    (
        "umadb.v1.DCB",
        &["Read", "Subscribe", "Append", "Head", "GetTrackingInfo"],
    ),
    (
        "umadb.DCB",
        &["Read", "Subscribe", "Append", "Head", "GetTrackingInfo"],
    ),
    ("grpc.health.v1.Health", &["Check", "Watch"]),
];

/// The `method` label of a request path `/service/Method`.
fn method_label(path: &str) -> &str {
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return "other";
    };
    let known = KNOWN
        .iter()
        .any(|(s, methods)| *s == service && methods.contains(&method));
    if known { &path[1..] } else { "other" }
}

/// Wraps every service of the server in [`Observed`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ObserveLayer;

impl<S> tower_layer::Layer<S> for ObserveLayer {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Observed<S> {
        Observed { inner }
    }
}

/// A service whose calls each get a `grpc` span (debug level: with
/// `RUST_LOG=debug` the server logs each call as the span closes, with its
/// time) and a latency sample.
#[derive(Clone, Debug)]
pub struct Observed<S> {
    inner: S,
}

impl<S, B> tower_service::Service<http::Request<B>> for Observed<S>
where
    S: tower_service::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = method_label(request.uri().path()).to_owned();
        let span = tracing::debug_span!("grpc", method = %method);
        let started = Instant::now();
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(
            async move {
                let response = future.await;
                metrics::histogram!(RPC_SECONDS, "method" => method).record(started.elapsed());
                response
            }
            .instrument(span),
        )
    }
}

/// The permit of an open read or subscription; [`OPEN_STREAMS`] counts
/// those alive. It holds the store the stream reads, so that a tenant's
/// store is not closed under it.
pub(crate) struct StreamPermit {
    _permit: OwnedSemaphorePermit,
    _store: std::sync::Arc<gesta::Store>,
}

impl StreamPermit {
    pub(crate) fn new(
        permit: OwnedSemaphorePermit,
        store: std::sync::Arc<gesta::Store>,
    ) -> StreamPermit {
        metrics::gauge!(OPEN_STREAMS).increment(1.0);
        StreamPermit {
            _permit: permit,
            _store: store,
        }
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        metrics::gauge!(OPEN_STREAMS).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::method_label;

    #[test]
    fn only_known_methods_become_labels() {
        assert_eq!(
            method_label("/gesta.v1.Gesta/Append"),
            "gesta.v1.Gesta/Append"
        );
        assert_eq!(method_label("/umadb.v1.DCB/Read"), "umadb.v1.DCB/Read");
        assert_eq!(method_label("/gesta.v1.Gesta/Nope"), "other");
        assert_eq!(method_label("/x/Append"), "other");
        assert_eq!(method_label("nothing"), "other");
    }
}
