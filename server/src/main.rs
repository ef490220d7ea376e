//! `gesta-server DIR`: serves a Gesta store over gRPC with UmaDB's DCB
//! protocol until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gesta_server::{ServeConfig, TlsFiles};

/// Serve a Gesta store over gRPC (UmaDB's umadb.v1.DCB protocol).
#[derive(Parser, Debug)]
#[command(name = "gesta-server", version)]
struct Args {
    /// The store directory (created if missing).
    dir: PathBuf,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// TLS certificate chain, PEM (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key, PEM (with --tls-cert).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require `authorization: Bearer <KEY>` on every call (needs TLS).
    #[arg(long, env = "GESTA_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Allow --api-key without TLS when listening on a loopback address.
    #[arg(long)]
    insecure_loopback_api_key: bool,
    /// The largest message accepted or sent, in bytes.
    #[arg(long, default_value_t = ServeConfig::default().max_message_bytes)]
    max_message_bytes: usize,
    /// Concurrent calls per connection.
    #[arg(long, default_value_t = ServeConfig::default().max_concurrent_streams)]
    max_concurrent_streams: u32,
    /// Concurrent Read and Subscribe calls over all connections.
    #[arg(long, default_value_t = ServeConfig::default().max_open_streams)]
    max_open_streams: usize,
    /// Seconds calls in flight may take to finish after SIGINT or SIGTERM.
    #[arg(long, default_value_t = ServeConfig::default().shutdown_grace.as_secs())]
    shutdown_grace: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = ServeConfig {
        listen: args.listen,
        tls: match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            _ => None,
        },
        api_key: args.api_key,
        insecure_loopback_api_key: args.insecure_loopback_api_key,
        max_message_bytes: args.max_message_bytes,
        max_concurrent_streams: args.max_concurrent_streams,
        max_open_streams: args.max_open_streams,
        shutdown_grace: std::time::Duration::from_secs(args.shutdown_grace),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gesta-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let store = gesta::Store::open(&args.dir)?;
        eprintln!(
            "gesta-server: {} at head {}, listening on {}",
            args.dir.display(),
            store.head(),
            config.listen
        );
        let served =
            gesta_server::serve(store.clone(), config, gesta_server::shutdown_signal()).await;
        let closed = store.close();
        served?;
        closed?;
        Ok::<(), gesta_server::ServeError>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gesta-server: {e}");
            ExitCode::FAILURE
        }
    }
}
