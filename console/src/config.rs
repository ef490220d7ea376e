//! What a console serves and how ([`ConsoleConfig`]), the checks a
//! configuration must pass before anything listens, and the errors of
//! serving ([`ConsoleError`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A TLS certificate chain and its private key, PEM files.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// The rustls configuration these files make, on the ring provider.
    pub(crate) fn rustls_config(
        &self,
    ) -> Result<axum_server::tls_rustls::RustlsConfig, ConsoleError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| ConsoleError::Tls(format!("{}: {e}", path.display())))
        };
        let (cert, key) = (read(&self.cert)?, read(&self.key)?);
        let chain = CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConsoleError::Tls(format!("{}: {e}", self.cert.display())))?;
        if chain.is_empty() {
            return Err(ConsoleError::Tls(format!(
                "{}: no certificate in it",
                self.cert.display()
            )));
        }
        let key = PrivateKeyDer::from_pem_slice(&key)
            .map_err(|e| ConsoleError::Tls(format!("{}: {e}", self.key.display())))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ConsoleError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| ConsoleError::Tls(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(axum_server::tls_rustls::RustlsConfig::from_config(
            Arc::new(config),
        ))
    }
}

/// How a console is served. Every field documents its default.
#[derive(Clone, Debug)]
pub struct ConsoleConfig {
    /// Where to listen. Default `127.0.0.1:8080` (loopback only).
    pub listen: SocketAddr,
    /// TLS certificate and key. Default none: plain HTTP, allowed on a
    /// loopback address only.
    pub tls: Option<TlsFiles>,
    /// The API key. Default none. When set, every call of the console's
    /// API must carry it as `Authorization: Bearer <key>` (the page asks
    /// for it once per tab); required for writes and off loopback.
    pub api_key: Option<String>,
    /// Accept appends from the console. Default false: read-only, every
    /// write is refused with 403. Needs [`api_key`](Self::api_key).
    pub allow_writes: bool,
    /// How often the store's state is sampled for the charts. Default 1 s.
    pub sample_every: Duration,
    /// How many samples are kept (the charts' width). Default 300.
    pub samples_kept: usize,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls: None,
            api_key: None,
            allow_writes: false,
            sample_every: Duration::from_secs(1),
            samples_kept: 300,
        }
    }
}

impl ConsoleConfig {
    /// Refuses what would expose the store: a non-loopback address without
    /// TLS or without a key (the events and the key would cross the network
    /// in clear, or anyone could read them), writes without a key, an empty
    /// key, and sampling parameters of zero.
    pub fn check(&self) -> Result<(), ConsoleError> {
        let refuse = |m: &str| Err(ConsoleError::Config(m.to_owned()));
        if self.api_key.as_deref() == Some("") {
            return refuse("the API key is empty");
        }
        if !self.listen.ip().is_loopback() && (self.tls.is_none() || self.api_key.is_none()) {
            return refuse(
                "a console on a non-loopback address needs TLS (a certificate and its key) and \
                 an API key",
            );
        }
        if self.allow_writes && self.api_key.is_none() {
            return refuse("writes need an API key");
        }
        if self.sample_every.is_zero() || self.samples_kept == 0 {
            return refuse("the sampling interval and the samples kept must be above zero");
        }
        Ok(())
    }
}

/// Why a console could not be served.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConsoleError {
    /// The configuration is refused (see [`ConsoleConfig::check`]).
    Config(String),
    /// The TLS files could not be read or used.
    Tls(String),
    /// The address could not be bound.
    Bind(String),
    /// Serving failed.
    Serve(String),
    /// The store could not be opened.
    Store(gesta::Error),
}

impl std::fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConsoleError::Config(m) => write!(f, "configuration refused: {m}"),
            ConsoleError::Tls(m) => write!(f, "TLS: {m}"),
            ConsoleError::Bind(m) => write!(f, "cannot listen on {m}"),
            ConsoleError::Serve(m) => write!(f, "serving failed: {m}"),
            ConsoleError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ConsoleError {}

impl From<gesta::Error> for ConsoleError {
    fn from(e: gesta::Error) -> Self {
        ConsoleError::Store(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: "c.pem".into(),
            key: "k.pem".into(),
        })
    }

    #[test]
    fn loopback_plain_read_only_is_the_default_and_passes() {
        ConsoleConfig::default().check().unwrap();
    }

    #[test]
    fn non_loopback_needs_tls_and_a_key() {
        let open = ConsoleConfig {
            listen: "0.0.0.0:8080".parse().unwrap(),
            ..ConsoleConfig::default()
        };
        assert!(matches!(open.check(), Err(ConsoleError::Config(_))));
        let tls_only = ConsoleConfig {
            tls: tls(),
            ..open.clone()
        };
        assert!(tls_only.check().is_err());
        let key_only = ConsoleConfig {
            api_key: Some("k".into()),
            ..open.clone()
        };
        assert!(key_only.check().is_err());
        let both = ConsoleConfig {
            tls: tls(),
            api_key: Some("k".into()),
            ..open
        };
        both.check().unwrap();
    }

    #[test]
    fn writes_need_a_key_and_a_key_is_not_empty() {
        let writes = ConsoleConfig {
            allow_writes: true,
            ..ConsoleConfig::default()
        };
        assert!(writes.check().is_err());
        let empty = ConsoleConfig {
            api_key: Some(String::new()),
            ..ConsoleConfig::default()
        };
        assert!(empty.check().is_err());
        ConsoleConfig {
            api_key: Some("k".into()),
            ..writes
        }
        .check()
        .unwrap();
    }
}
