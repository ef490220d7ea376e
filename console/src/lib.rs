//! A web console for a Gesta store: one page, served over HTTP from the
//! process that has the store open, to query events (by types and tags, by
//! stream, by id, from a position or a time, paging both ways), show an
//! event, list streams, types and tags with their counts, follow new events
//! live, and watch the store's state (head, disk use, segments, index runs,
//! cursors and their lag, snapshots) with small charts sampled while the
//! console runs.
//!
//! The console works through the store's public API only. A store belongs
//! to the one process that has it open, so the console runs where the store
//! is: `gesta console DIR` opens it, `gesta serve DIR --console ADDR` serves
//! it beside the gRPC services.
//!
//! It is read-only unless [`ConsoleConfig::allow_writes`] is set, which
//! needs an API key; on a non-loopback address it needs TLS and a key (see
//! [`ConsoleConfig::check`]).
//!
//! An encrypted store (crypto-shredding: its directory holds the key
//! file) is shown through the wrapper ([`ConsoleStore`]): events opened, a
//! forgotten subject's empty, appends sealed.
//!
//! Modules: [`config`] (what a console serves and the checks of it), `shown`
//! ([`ConsoleStore`]),
//! `routes` (the HTTP API, one file per concern, and the key check),
//! `sampler` (the state sampled every second for the charts), `disk` (what
//! the store's files take), `assets` (the page, embedded at build time) and
//! [`command`] (the options of `gesta console` and `gesta-console`).
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod assets;
pub mod command;
pub mod config;
mod disk;
mod routes;
mod sampler;
mod shown;

use std::future::Future;
use std::sync::Arc;

pub use config::{ConsoleConfig, ConsoleError, TlsFiles};
pub use shown::ConsoleStore;

/// Serves the console for `store` per `config` until `shutdown` completes;
/// the store stays open (the caller closes it). `ready` is called with the
/// address bound (useful with port 0) before the first request is taken.
pub async fn serve(
    store: impl Into<ConsoleStore>,
    config: ConsoleConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(std::net::SocketAddr),
) -> Result<(), ConsoleError> {
    config.check()?;
    let store = store.into();
    let samples = sampler::Samples::new(config.samples_kept);
    let state = Arc::new(routes::AppState {
        store: store.clone(),
        key: config.api_key.as_deref().map(routes::Key::new),
        allow_writes: config.allow_writes,
        samples: samples.clone(),
    });
    let sampling = tokio::spawn(sampler::run(
        store.engine().clone(),
        samples,
        config.sample_every,
    ));
    let app = routes::router(state);
    let listener = std::net::TcpListener::bind(config.listen)
        .map_err(|e| ConsoleError::Bind(format!("{}: {e}", config.listen)))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| ConsoleError::Bind(e.to_string()))?;
    let bound = listener
        .local_addr()
        .map_err(|e| ConsoleError::Bind(e.to_string()))?;
    // Read the TLS files before announcing the address, so that a bad
    // file fails the start rather than the first connection.
    let tls = config
        .tls
        .as_ref()
        .map(TlsFiles::rustls_config)
        .transpose()?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        // Live views never end on their own: give the calls in flight a
        // moment, then close.
        stopper.graceful_shutdown(Some(std::time::Duration::from_secs(2)));
    });
    let service = app.into_make_service();
    let served = match tls {
        Some(tls) => {
            let server = axum_server::from_tcp_rustls(listener, tls)
                .map_err(|e| ConsoleError::Bind(e.to_string()))?
                .handle(handle);
            ready(bound);
            server.serve(service).await
        }
        None => {
            let server = axum_server::from_tcp(listener)
                .map_err(|e| ConsoleError::Bind(e.to_string()))?
                .handle(handle);
            ready(bound);
            server.serve(service).await
        }
    };
    sampling.abort();
    served.map_err(|e| ConsoleError::Serve(e.to_string()))
}

/// A console served beside another server in the same process (`gesta
/// serve --console`); [`Beside::stop`] ends it.
#[derive(Debug)]
pub struct Beside {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ConsoleError>>,
}

impl Beside {
    /// Starts serving the console for `store` per `config` on the current
    /// runtime; returns once it listens, or with why it cannot.
    pub async fn start(
        store: impl Into<ConsoleStore>,
        config: ConsoleConfig,
    ) -> Result<Beside, ConsoleError> {
        config.check()?;
        let store = store.into();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, listening) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(serve(
            store,
            config,
            async move {
                let _ = stopped.await;
            },
            move |addr| {
                let _ = ready.send(addr);
            },
        ));
        match listening.await {
            Ok(addr) => Ok(Beside { addr, stop, task }),
            // It ended before listening: its error says why.
            Err(_) => Err(match task.await {
                Ok(Err(e)) => e,
                Ok(Ok(())) => ConsoleError::Serve("ended before listening".into()),
                Err(e) => ConsoleError::Serve(e.to_string()),
            }),
        }
    }

    /// Stops the console (live views get a moment to end) and waits for it.
    pub async fn stop(self) -> Result<(), ConsoleError> {
        let _ = self.stop.send(());
        self.task
            .await
            .map_err(|e| ConsoleError::Serve(e.to_string()))?
    }
}

/// Completes at SIGINT or SIGTERM (SIGINT only off Unix).
///
/// The handlers are registered when this is called, so that a signal that
/// arrives before the server polls the future does not meet the default
/// action (which kills the process); call it before binding, inside a
/// Tokio runtime (it panics outside one).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let registered = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        );
        async move {
            match registered {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
