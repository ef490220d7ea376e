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
    /// The largest event an append may carry, measured as the protocol
    /// carries it (the encoded `Event` message: type, tags, data, UUID and
    /// metadata). Default [`DEFAULT_MAX_EVENT_BYTES`], 4 MiB − 1 KiB, so
    /// that every event a client appended comes back in a response under
    /// the 4 MiB that gRPC clients receive by default (and that UmaDB's
    /// clients cannot raise). A larger event is refused at append with
    /// `INVALID_ARGUMENT` naming the limit; a stored event larger than it
    /// (appended through the Rust API, or under a larger limit) fails the
    /// read or subscription that reaches it with `RESOURCE_EXHAUSTED`
    /// rather than sending a response its client would refuse. Raise it
    /// only for clients that raise their receive limit. It never exceeds
    /// `max_message_bytes` less [`RESPONSE_FRAMING`]. `gesta.v1` applies
    /// the same limit to its `NewEvent` message (a `RecordedEvent` adds at
    /// most 64 bytes to it).
    pub max_event_bytes: usize,
    /// Concurrent calls (HTTP/2 streams) per connection. Default 256; a
    /// client that opens more waits.
    pub max_concurrent_streams: u32,
    /// Concurrent streaming calls over all connections and both services
    /// (`Read` and `Subscribe` of `umadb.v1.DCB`; `Read`, `ReadStream`,
    /// `Subscribe` and `SubscribeDurable` of `gesta.v1.Gesta`). Default
    /// 1024; more are refused with `RESOURCE_EXHAUSTED`. A read holds a
    /// thread of the runtime's blocking pool for as long as its client
    /// takes to receive it: a runtime that serves this many needs
    /// [`command::blocking_threads`](crate::command::blocking_threads) of
    /// them (`gesta serve` builds its runtime so), else reads that clients
    /// stop receiving can take them all and hold up every other call.
    pub max_open_streams: usize,
    /// How long calls in flight may take to finish once shutdown begins
    /// (subscriptions end at once); after it the server stops regardless, so
    /// that a client that stops reading cannot hold it up. Appends handed to
    /// the store still complete. Default 30 s.
    pub shutdown_grace: std::time::Duration,
    /// The directory under which `gesta.v1.Gesta/Backup` may write backups
    /// (each destination a client names must lie under it). Default none:
    /// the RPC is refused with `PERMISSION_DENIED`. It must exist when the
    /// server starts.
    pub backup_dir: Option<PathBuf>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            tls: None,
            api_key: None,
            insecure_loopback_api_key: false,
            max_message_bytes: 32 << 20,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_concurrent_streams: 256,
            max_open_streams: 1024,
            shutdown_grace: std::time::Duration::from_secs(30),
            backup_dir: None,
        }
    }
}

/// What gRPC clients receive by default (`grpc.max_receive_message_length`,
/// tonic's `max_decoding_message_size`): 4 MiB. UmaDB's Python client
/// cannot raise it.
pub const CLIENT_RECEIVE_LIMIT: usize = 4 << 20;

/// The most a response adds around one event's encoded `Event` message,
/// in bytes: in `SequencedEvent`, the position (1 + 10) and the event's
/// key and length (1 + 4, below 256 MiB), and tracking info of at most
/// 1 + 2 + (1 + 2 + 255 + 1 + 10) (a source is at most 255 bytes); around
/// it, a `ReadResponse`'s key and length (1 + 4) and head (1 + 10).
/// 11 + 5 + 272 + 5 + 11 = 304; a `SubscribeResponse` adds less.
pub const RESPONSE_FRAMING: usize = 304;

/// The default [`ServeConfig::max_event_bytes`]: 4 MiB − 1 KiB, which
/// leaves 720 bytes to spare beyond [`RESPONSE_FRAMING`] under
/// [`CLIENT_RECEIVE_LIMIT`].
pub const DEFAULT_MAX_EVENT_BYTES: usize = CLIENT_RECEIVE_LIMIT - 1024;

/// Bounds the service applies per call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Responses gather events up to this many encoded bytes (a single
    /// larger event goes alone).
    pub response_bytes: usize,
    /// The largest encoded `Event` an append may carry or a response hold.
    pub event_bytes: usize,
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
        if self.limits().event_bytes == 0 {
            return Err(ServeError::Config(format!(
                "no event fits: the event limit is {} bytes and the message limit {} bytes \
                 (of which a response's framing takes up to {RESPONSE_FRAMING})",
                self.max_event_bytes, self.max_message_bytes
            )));
        }
        Ok(())
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            // Small responses bound what open streams can hold in memory:
            // at most `open_streams` × the channel depth × this (plus one
            // event larger than it).
            response_bytes: (self.max_message_bytes / 2).clamp(1, 1 << 20),
            event_bytes: self
                .max_event_bytes
                .min(self.max_message_bytes.saturating_sub(RESPONSE_FRAMING)),
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
