//! The command-line face of the console, shared by the `gesta console`
//! subcommand and the `gesta-console` binary: the options, and the run that
//! opens the store, serves it and closes it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::{ConsoleConfig, TlsFiles};

/// Shown after the options in `--help`.
pub const AFTER_HELP: &str = "\
Serves a web page to query events (by types and tags, by stream, by id, from a position or a time), show them,
list streams, types and tags, follow new events live and watch the store's state, until SIGINT or SIGTERM.
Read-only and on loopback by default. --allow-writes accepts appends from the page, from callers that send the
API key (Authorization: Bearer KEY); a non-loopback address needs --tls-cert, --tls-key and --api-key-file.

The console opens the store, so no other process may have it open: to look at a store that `gesta serve` is
serving, give that command --console ADDR instead (a read-only console beside the gRPC services).

Examples:
  gesta console ./events                              # then open http://127.0.0.1:8080/
  gesta console ./events --addr 127.0.0.1:9000 --allow-writes --api-key-file key.txt
  gesta console ./events --addr 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem --api-key-file key.txt";

/// The options of `gesta console` and `gesta-console`.
#[derive(clap::Args, Debug)]
pub struct ConsoleArgs {
    /// The store's directory (it must hold a store).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// TLS certificate chain, PEM (with --tls-key).
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key, PEM (with --tls-cert).
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Accept appends from the console (needs --api-key-file).
    #[arg(long)]
    pub allow_writes: bool,
    /// A file holding the API key (its first line; surrounding white space
    /// is ignored), which every call of the console's API must then carry.
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
}

/// The API key in `path`: its first line, trimmed.
pub fn read_key_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--api-key-file {}: {e}", path.display()))?;
    let key = text.lines().next().unwrap_or_default().trim();
    if key.is_empty() {
        return Err(format!(
            "--api-key-file {}: the key is empty",
            path.display()
        ));
    }
    Ok(key.to_owned())
}

impl ConsoleArgs {
    /// The configuration these options give.
    pub fn config(&self) -> Result<ConsoleConfig, String> {
        Ok(ConsoleConfig {
            listen: self.addr,
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            },
            api_key: self
                .api_key_file
                .as_deref()
                .map(read_key_file)
                .transpose()?,
            allow_writes: self.allow_writes,
            ..ConsoleConfig::default()
        })
    }
}

/// Opens the store in `dir`, which must hold one, through
/// crypto-shredding's wrapper if it is encrypted (holds the key file); a
/// store another process holds is refused with the way to look at it
/// instead.
fn open(dir: &Path) -> Result<crate::ConsoleStore, String> {
    if !dir.join("wal").is_dir() {
        return Err(format!(
            "no Gesta store at {} (it has no wal/ directory)",
            dir.display()
        ));
    }
    let store = gesta::Store::open(dir).map_err(|e| match e {
        gesta::Error::Locked { .. } => format!(
            "{e}: a store belongs to the process that has it open, so serve the console from \
             that process (`gesta serve {} --console ADDR`), or follow its new events with \
             `gesta read {} --follow`",
            dir.display(),
            dir.display()
        ),
        e => e.to_string(),
    })?;
    crate::ConsoleStore::wrap(store).map_err(|e| e.to_string())
}

/// Opens the store in `args.dir` and serves the console until SIGINT or
/// SIGTERM, then closes the store; `name` prefixes what it prints. The
/// first line on standard output names the URL (with the port bound).
pub fn run(args: ConsoleArgs, name: &str) -> Result<(), String> {
    let config = args.config()?;
    config.check().map_err(|e| {
        format!(
            "{e} (writes: --allow-writes with --api-key-file; a non-loopback --addr: \
             --tls-cert, --tls-key and --api-key-file)"
        )
    })?;
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    let result = runtime.block_on(async {
        let store = open(&args.dir)?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mode = if config.allow_writes {
            "appends allowed"
        } else {
            "read-only"
        };
        let head = store.engine().head();
        let dir = args.dir.display().to_string();
        let encrypted = if store.is_encrypted() {
            " (encrypted)"
        } else {
            ""
        };
        let served = crate::serve(store.clone(), config, crate::shutdown_signal(), |addr| {
            println!("{name}: {dir}{encrypted} at head {head}, {mode}, on {scheme}://{addr}/");
            let _ = std::io::stdout().flush();
        })
        .await;
        let closed = store.engine().close();
        served.map_err(|e| e.to_string())?;
        closed.map_err(|e| e.to_string())
    });
    // Live views may hold blocking readers: do not wait for them.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    result
}
