//! The console's HTTP API and the page: one module per concern (`events`:
//! queries and single events; `lists`: streams, types, tags; `live`: new
//! events as server-sent events; `state`: the store's state and samples;
//! `write`: appends; `lifecycle`: retroactive tags and redaction), `error`
//! (how a failure answers), and here the router, the shared state and the
//! API key check that guards every `/api` call when a key is configured.

mod error;
mod events;
mod lifecycle;
mod lists;
mod live;
mod state;
mod write;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::value::RawValue;

pub(crate) use error::ApiError;

use crate::sampler::Samples;

/// What every route shares.
pub(crate) struct AppState {
    /// Events are read and written through `store.events()`, the
    /// wrapper when the store is encrypted.
    pub store: crate::ConsoleStore,
    /// The expected API key, if one is configured.
    pub key: Option<Key>,
    pub allow_writes: bool,
    pub samples: Samples,
}

/// An API key, kept as the `Authorization` header value that carries it.
pub(crate) struct Key(Vec<u8>);

impl Key {
    pub(crate) fn new(key: &str) -> Key {
        Key(format!("Bearer {key}").into_bytes())
    }

    /// Compares without stopping at the first difference, so that the time
    /// a refusal takes says nothing about how much of the key was right.
    fn admits(&self, given: &[u8]) -> bool {
        given.len() == self.0.len()
            && given.iter().zip(&self.0).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
    }
}

/// Refuses an `/api` call without the configured key (401).
async fn check_key(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(key) = &state.key {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !key.admits(given) {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(next.run(request).await)
}

/// Guards every response of the console. Without a key, a request must
/// name this machine in its `Host` (localhost or a loopback address):
/// else a page of another site whose name it rebinds to 127.0.0.1 (DNS
/// rebinding) would be same-origin with the console and read the store.
/// With a key, the key is the guard (a page of another origin never has
/// it). And no page may frame the console (clickjacking).
async fn guard(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    if state.key.is_none() && !names_this_machine(request.headers()) {
        return ApiError::ForeignHost.into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("frame-ancestors 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

/// Whether `Host` names this machine: `localhost` or a loopback address,
/// with any port (HTTP/2 carries it as `:authority`, which hyper gives as
/// the URI's authority).
fn names_this_machine(headers: &header::HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        // `[::1]:8080`
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The whole console: the page's files and the API.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/info", get(state::info))
        .route("/state", get(state::state))
        .route("/events", get(events::query))
        .route("/events/{position}", get(events::at_position))
        .route("/ids/{id}", get(events::by_id))
        .route("/lists/{what}", get(lists::list))
        .route("/live", get(live::live))
        .route("/append", post(write::append))
        .route("/tags", post(lifecycle::add_tags))
        .route("/redact", post(lifecycle::redact))
        .fallback(|| async { ApiError::NotFound("no such API call".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), check_key))
        .with_state(state.clone());
    Router::new()
        .nest("/api", api)
        .merge(crate::assets::router())
        .layer(middleware::from_fn_with_state(state, guard))
}

/// `event` as the JSON the gesta command prints (data and metadata
/// verbatim when they are JSON, else base64).
pub(crate) fn event_json(event: &gesta::RecordedEvent) -> Result<Box<RawValue>, ApiError> {
    let mut line = Vec::with_capacity(256);
    gesta_json::write_event(&mut line, event.into());
    String::from_utf8(line)
        .ok()
        .and_then(|text| RawValue::from_string(text).ok())
        .ok_or_else(|| {
            ApiError::Internal(format!("event {} did not encode as JSON", event.position))
        })
}

/// Runs a store call on the blocking pool: reads go to the disk.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("the read failed: {e}")))?
}

/// A number given in a query string, or a 400 naming the parameter.
pub(crate) fn number(name: &str, text: Option<&str>) -> Result<Option<u64>, ApiError> {
    text.filter(|t| !t.is_empty())
        .map(|t| {
            t.trim().parse::<u64>().map_err(|_| {
                ApiError::BadRequest(format!("{name} {t:?} is not a whole number (0 or more)"))
            })
        })
        .transpose()
}
