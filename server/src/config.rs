//! How a server is configured, each option documented with its default, and
//! what can stop it.

use std::net::SocketAddr;
use std::path::PathBuf;

/// PEM files of the server's certificate chain and private key.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The certificate chain, PEM.
    pub cert: PathBuf,
    /// The private key, PEM.
    pub key: PathBuf,
}

impl TlsFiles {
    pub(crate) fn read(&self) -> Result<(Vec<u8>, Vec<u8>), ServeError> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| ServeError::Tls(format!("{}: {e}", path.display())))
        };
        Ok((read(&self.cert)?, read(&self.key)?))
    }
}

/// How a server listens, whom it admits and what it bounds.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Where to listen. Default `127.0.0.1:50051` (loopback only).
    pub listen: SocketAddr,
    /// TLS certificate and key. Default none: plaintext.
    pub tls: Option<TlsFiles>,
    /// When set, every call must carry `authorization: Bearer <key>`, or is
    /// refused with `UNAUTHENTICATED`. Default none. The server refuses to
    /// start with a key but without TLS (the key would cross the network in
    /// clear) unless `insecure_loopback_api_key` is set and `listen` is a
    /// loopback address.
    pub api_key: Option<String>,
    /// Allows an API key without TLS on a loopback address. Default false.
    pub insecure_loopback_api_key: bool,
    /// The largest gRPC message accepted or sent, in bytes. Default 32 MiB:
    /// a larger request is refused with `OUT_OF_RANGE` from its length
    /// prefix, before it is buffered, and reads split responses well below
    /// it.
    pub max_message_bytes: usize,
    /// Concurrent calls (HTTP/2 streams) per connection. Default 256; a
    /// client that opens more waits.
    pub max_concurrent_streams: u32,
    /// Concurrent `Read` and `Subscribe` calls over all connections.
    /// Default 1024; more are refused with `RESOURCE_EXHAUSTED`.
    pub max_open_streams: usize,
    /// How long calls in flight may take to finish once shutdown begins
    /// (subscriptions end at once); after it the server stops regardless, so
    /// that a client that stops reading cannot hold it up. Appends handed to
    /// the store still complete. Default 30 s.
    pub shutdown_grace: std::time::Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            tls: None,
            api_key: None,
            insecure_loopback_api_key: false,
            max_message_bytes: 32 << 20,
            max_concurrent_streams: 256,
            max_open_streams: 1024,
            shutdown_grace: std::time::Duration::from_secs(30),
        }
    }
}

/// Bounds the service applies per call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// A response is cut once its events' payloads reach this many bytes.
    pub response_bytes: usize,
    /// Concurrent reads and subscriptions.
    pub open_streams: usize,
}

impl ServeConfig {
    /// Refuses an API key without TLS, except on loopback when told.
    pub(crate) fn check(&self) -> Result<(), ServeError> {
        if self.api_key.is_some()
            && self.tls.is_none()
            && !(self.insecure_loopback_api_key && self.listen.ip().is_loopback())
        {
            return Err(ServeError::Config(
                "an API key needs TLS; without TLS it is allowed only on a loopback \
                 address with --insecure-loopback-api-key"
                    .into(),
            ));
        }
        if self.api_key.as_deref() == Some("") {
            return Err(ServeError::Config("the API key is empty".into()));
        }
        Ok(())
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            // Small responses bound what open streams can hold in memory:
            // at most `open_streams` × the channel depth × this (plus one
            // event larger than it).
            response_bytes: (self.max_message_bytes / 2).clamp(1, 1 << 20),
            open_streams: self.max_open_streams.max(1),
        }
    }
}

/// Why a server could not start or stopped with an error.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// The configuration is refused.
    Config(String),
    /// The listen address could not be bound.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The TLS files could not be read or used.
    Tls(String),
    /// The store failed to open or close.
    Store(gesta::Error),
    /// The HTTP/2 transport failed.
    Transport(String),
    /// Another I/O failure.
    Io(std::io::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Config(m) => write!(f, "configuration refused: {m}"),
            ServeError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            ServeError::Tls(m) => write!(f, "TLS: {m}"),
            ServeError::Store(e) => write!(f, "store: {e}"),
            ServeError::Transport(m) => write!(f, "transport: {m}"),
            ServeError::Io(e) => write!(f, "I/O: {e}"),
        }
    }
}

impl std::error::Error for ServeError {}

impl From<gesta::Error> for ServeError {
    fn from(e: gesta::Error) -> Self {
        ServeError::Store(e)
    }
}
