//! A gRPC server for a Gesta store that speaks UmaDB's DCB protocol
//! (protobuf package `umadb.v1`, service `DCB`), so that UmaDB's clients —
//! Rust, Python, .NET, Java, PHP, Elixir — use a Gesta store unchanged;
//! and, on the same port, `gesta.v1.Gesta` for what that protocol lacks
//! (streams with expected revisions, event ids, lookups by id and time,
//! durable subscriptions, snapshots, retroactive tags, redaction and their
//! audit trail, crypto-shredding's forget), with a Rust [`client`]. A store
//! whose directory holds crypto-shredding's key file is served through its
//! wrapper ([`Served`]): clients see plaintext and subjects' events are
//! sealed.
//!
//! ```no_run
//! # async fn run() -> Result<(), gesta_server::ServeError> {
//! let store = gesta::Store::open("/tmp/my-store")?;
//! let config = gesta_server::ServeConfig::default();
//! gesta_server::serve(store, config, gesta_server::shutdown_signal()).await
//! # }
//! ```
//!
//! Module map: [`proto`] (the generated messages, servers and clients),
//! `convert` (protocol ↔ engine types, errors → statuses), [`Served`] (the
//! store as both services reach it: through crypto-shredding's wrapper
//! when it is encrypted), `service` (the DCB RPCs), `legacy` (UmaDB's
//! older service path), `gesta_v1` (the `gesta.v1` service), [`client`]
//! (its typed Rust client), `auth` (the API key check), `config`
//! ([`ServeConfig`]), [`observe`] (a span and a latency sample per call),
//! [`metrics`] (the Prometheus endpoint), [`replication`] (what a shipped
//! store or a read replica reports).
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod auth;
pub mod client;
pub mod command;
mod config;
mod convert;
mod encoded;
mod encoded_route;
mod gesta_v1;
mod legacy;
pub mod metrics;
pub mod observe;
pub mod replication;
mod served;
mod service;
mod tenancy;
mod wire;
mod wording;

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::gesta_v1::convert::GestaWording;
use crate::wording::Wording;

pub use config::{
    CLIENT_RECEIVE_LIMIT, DEFAULT_MAX_EVENT_BYTES, RESPONSE_FRAMING, ServeConfig, ServeError,
    TlsFiles,
};
pub use convert::{ProtocolMetadata, RAW_METADATA_KEY, decode_metadata, encode_metadata};
pub use gesta_v1::SERVICE_NAME as GESTA_SERVICE_NAME;
pub use replication::{Probe, ReplicationStatus, Role};
pub use served::Served;
pub use tenancy::{TenantKeys, TenantServing};

/// The protocol: UmaDB's `umadb.v1` messages, the `DCB` service's server
/// trait and a client, generated from `proto/umadb.proto` (UmaDB's file,
/// vendored unchanged) and committed, so that building needs no `protoc`.
pub mod proto {
    /// Package `umadb.v1`, with `bytes` fields as [`bytes::Bytes`]
    /// (prost-build's `bytes(["."])`), so that event data goes from the
    /// store to the wire and back without a copy of its own.
    #[allow(missing_docs, clippy::all)]
    pub mod v1 {
        include!("proto/umadb.v1.rs");
    }

    /// Package `gesta.v1`: the `Gesta` service's messages, server trait and
    /// client, generated from `proto/gesta.proto` by `proto/generate.sh`
    /// and committed. Its errors carry an [`ErrorDetail`](gesta_v1::ErrorDetail)
    /// ([`client::error_detail`](crate::client::error_detail) reads it).
    #[allow(missing_docs, clippy::all)]
    pub mod gesta_v1 {
        include!("proto/gesta.v1.rs");
    }
}

/// The name the DCB service reports to the health service.
pub const SERVICE_NAME: &str = "umadb.v1.DCB";

/// Binds `config.listen` and serves `store` until `shutdown` resolves; see
/// [`serve_on`].
pub async fn serve(
    store: impl Into<Served>,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    config.check()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    serve_on(listener, store, config, shutdown).await
}

/// Serves `store` on an already bound `listener` (`config.listen` is only
/// checked for the API-key-without-TLS rule) until `shutdown` resolves.
/// `store` is a [`gesta::Store`], served plain, or an
/// [`Encrypted`](gesta::encryption::Encrypted) one, served through the
/// wrapper ([`Served::wrap`] picks by the store's key file).
///
/// Shutdown is graceful: the health service turns `NOT_SERVING`, open
/// subscriptions and reads end, no new call is accepted, and the calls in
/// flight — appends included — finish and are answered before this
/// returns. The caller then drops or closes the store.
pub async fn serve_on(
    listener: TcpListener,
    store: impl Into<Served>,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_stores_on(
        listener,
        tenancy::Reach::One(store.into()),
        None,
        config,
        shutdown,
    )
    .await
}

/// Serves many tenants' stores on `listener` until `shutdown` resolves, as
/// [`serve_on`] serves one: every call must carry one of `keys`, and
/// reaches the store of that key's tenant and no other (opened through
/// `tenants` on first use). `config.api_key` must be unset; the rule on
/// keys without TLS applies to the tenants' keys. With
/// `config.backup_dir`, a tenant's `Backup` calls write under
/// `<backup_dir>/<tenant>/` only. A tenant whose directory holds a key
/// file is served through crypto-shredding's wrapper, as one store is.
/// The caller closes `tenants` afterwards.
pub async fn serve_tenants_on(
    listener: TcpListener,
    tenants: std::sync::Arc<gesta::tenants::Tenants>,
    keys: TenantKeys,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_tenants_with(
        listener,
        tenants,
        keys,
        TenantServing::default(),
        config,
        shutdown,
    )
    .await
}

/// [`serve_tenants_on`], serving the tenants as `serving` says (every
/// tenant encrypted, for one).
pub async fn serve_tenants_with(
    listener: TcpListener,
    tenants: std::sync::Arc<gesta::tenants::Tenants>,
    keys: TenantKeys,
    serving: TenantServing,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if config.api_key.is_some() {
        return Err(ServeError::Config(
            "with tenants, keys come from the tenants' key file".into(),
        ));
    }
    // The keys-without-TLS rule, checked as for one key.
    ServeConfig {
        api_key: Some("tenant keys".into()),
        ..config.clone()
    }
    .check()?;
    let stores = tenancy::TenantStores::new(tenants, serving);
    serve_stores_on(
        listener,
        tenancy::Reach::Tenants(std::sync::Arc::new(stores)),
        Some(keys),
        config,
        shutdown,
    )
    .await
}

async fn serve_stores_on(
    listener: TcpListener,
    store: tenancy::Reach,
    keys: Option<TenantKeys>,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    config.check()?;
    let local: SocketAddr = listener.local_addr().map_err(ServeError::Io)?;
    let (stop_tx, stop_rx) = watch::channel(false);

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    for name in [SERVICE_NAME, GESTA_SERVICE_NAME] {
        health
            .set_service_status(name, tonic_health::ServingStatus::Serving)
            .await;
    }

    // Open reads and subscriptions of both services count against one bound.
    let streams = std::sync::Arc::new(tokio::sync::Semaphore::new(config.limits().open_streams));
    let backup_root = match &config.backup_dir {
        Some(dir) => Some(gesta_v1::backup::BackupRoot::new(dir)?),
        None => None,
    };
    let gesta = gesta_v1::Gesta::new(
        tenancy::Stores::new(store.clone()),
        config.limits(),
        streams.clone(),
        stop_rx.clone(),
        backup_root,
    );
    let gesta = encoded_route::EncodedRoute::new(
        gesta,
        |gesta| {
            proto::gesta_v1::gesta_server::GestaServer::from_arc(gesta)
                .max_decoding_message_size(config.max_message_bytes)
                .max_encoding_message_size(config.max_message_bytes)
        },
        config.max_message_bytes,
    );
    let mut check =
        auth::ApiKey::refusing_with(config.api_key.clone(), GestaWording::unauthenticated);
    if let Some(keys) = &keys {
        check = check.for_tenants(keys);
    }
    let gesta = tonic::service::interceptor::InterceptedService::new(gesta, check);
    let dcb = service::Dcb::new(
        tenancy::Stores::new(store),
        config.limits(),
        streams,
        stop_rx.clone(),
    );
    let dcb = encoded_route::EncodedRoute::new(
        dcb,
        |dcb| {
            proto::v1::dcb_server::DcbServer::from_arc(dcb)
                .max_decoding_message_size(config.max_message_bytes)
                .max_encoding_message_size(config.max_message_bytes)
        },
        config.max_message_bytes,
    );
    let mut check = auth::ApiKey::new(config.api_key.clone());
    if let Some(keys) = &keys {
        check = check.for_tenants(keys);
    }
    let dcb = tonic::service::interceptor::InterceptedService::new(dcb, check);
    // UmaDB's unversioned service path, for older clients.
    let legacy = legacy::Legacy(dcb.clone());

    let mut builder = Server::builder()
        .max_concurrent_streams(Some(config.max_concurrent_streams))
        .concurrency_limit_per_connection(config.max_concurrent_streams as usize)
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
        .tcp_nodelay(true);
    if let Some(tls) = &config.tls {
        let (cert, key) = tls.read()?;
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .map_err(|e| ServeError::Tls(e.to_string()))?;
    }
    let mut builder = builder.layer(observe::ObserveLayer);
    tracing::info!(
        "serving {SERVICE_NAME} and {GESTA_SERVICE_NAME} on {local} ({}, {})",
        if config.tls.is_some() {
            "TLS"
        } else {
            "plaintext"
        },
        if keys.is_some() {
            "tenants' API keys"
        } else if config.api_key.is_some() {
            "API key"
        } else {
            "no API key"
        }
    );
    // Accepted sockets get TCP_NODELAY here (the builder's setting covers
    // only listeners it binds itself): without it, small responses wait
    // for the peer's delayed ACK, some 40 ms each.
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(std::time::Duration::from_secs(60)));
    let stopping = async move {
        shutdown.await;
        health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        for name in [SERVICE_NAME, GESTA_SERVICE_NAME] {
            health
                .set_service_status(name, tonic_health::ServingStatus::NotServing)
                .await;
        }
        let _ = stop_tx.send(true);
    };
    let mut stopped = stop_rx.clone();
    let grace = config.shutdown_grace;
    let served = builder
        .add_service(health_service)
        .add_service(dcb)
        .add_service(legacy)
        .add_service(gesta)
        .serve_with_incoming_shutdown(incoming, stopping);
    tokio::select! {
        served = served => served.map_err(|e| ServeError::Transport(e.to_string())),
        _ = async {
            let _ = stopped.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("calls still open {grace:?} after shutdown began were cut off");
            Ok(())
        }
    }
}

/// Resolves at the first SIGINT or SIGTERM (Ctrl-C elsewhere than Unix).
///
/// The handlers are registered when this is called, not when the future is
/// first polled: a server polls its shutdown future only once it listens,
/// and a signal that arrived in between would meet the default action,
/// which kills the process without closing the store. Call it before
/// binding, inside a Tokio runtime (it panics outside one). The console's
/// [`gesta_console::shutdown_signal`], which the server already depends on,
/// is the one implementation.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    gesta_console::shutdown_signal()
}
