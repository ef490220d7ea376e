//! The command-line face of the server, shared by the `gesta-server`
//! binary and the `gesta serve` subcommand: the options and the run loop.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::{ServeConfig, Served, TlsFiles};

/// The options of `gesta serve` and `gesta-server`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The store directory (created if missing); with --tenants, the root
    /// of the tenants' stores (DIR/tenants/NAME).
    pub dir: PathBuf,
    /// Serve many tenants: each call's API key (from --tenant-keys) names
    /// the one tenant whose store it reaches.
    #[arg(long, requires = "tenant_keys", conflicts_with = "api_key")]
    pub tenants: bool,
    /// Make the store encrypted (crypto-shredding: create its key file
    /// DIR/KEYS) if it is not yet. A store whose directory holds KEYS is
    /// served encrypted without the flag: events tagged subject:NAME are
    /// sealed with NAME's key on append and opened on read, through both
    /// services, and gesta.v1 Forget destroys a key. With --tenants,
    /// every tenant (its key file DIR/tenants/NAME/KEYS made on first
    /// use).
    #[arg(long)]
    pub encrypt: bool,
    /// The tenants' API keys: one `TENANT KEY` pair per line (# comments).
    #[arg(long, value_name = "FILE", requires = "tenants")]
    pub tenant_keys: Option<PathBuf>,
    /// With --tenants: the most tenant stores open at once.
    #[arg(long, default_value_t = 64)]
    pub max_open_tenants: usize,
    /// With --tenants: the most events (positions) each tenant may hold;
    /// an append that would pass it is refused (RESOURCE_EXHAUSTED).
    #[arg(long, value_name = "N", requires = "tenants")]
    pub tenant_max_events: Option<u64>,
    /// With --tenants: the most bytes each tenant's files (and its
    /// backups under --backup-dir) may take; once they do, appends,
    /// snapshots, added tags, new cursors and backups are refused.
    #[arg(long, value_name = "BYTES", requires = "tenants")]
    pub tenant_max_bytes: Option<u64>,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// TLS certificate chain, PEM (with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key, PEM (with --tls-cert).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require `authorization: Bearer <KEY>` on every call (needs TLS).
    #[arg(long, env = "GESTA_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Allow --api-key without TLS when listening on a loopback address.
    #[arg(long)]
    pub insecure_loopback_api_key: bool,
    /// The largest message accepted or sent, in bytes.
    #[arg(long, default_value_t = ServeConfig::default().max_message_bytes)]
    pub max_message_bytes: usize,
    /// The largest event an append may carry, in bytes as the protocol
    /// encodes it; the default lets every event come back under gRPC's
    /// default 4 MiB receive limit.
    #[arg(long, default_value_t = ServeConfig::default().max_event_bytes)]
    pub max_event_bytes: usize,
    /// Concurrent calls per connection.
    #[arg(long, default_value_t = ServeConfig::default().max_concurrent_streams)]
    pub max_concurrent_streams: u32,
    /// Concurrent reads and subscriptions over all connections and both
    /// services.
    #[arg(long, default_value_t = ServeConfig::default().max_open_streams)]
    pub max_open_streams: usize,
    /// Seconds calls in flight may take to finish after SIGINT or SIGTERM.
    #[arg(long, default_value_t = ServeConfig::default().shutdown_grace.as_secs())]
    pub shutdown_grace: u64,
    /// Allow gesta.v1 Backup calls, writing only under this directory (which must exist);
    /// with --tenants, each tenant only under ROOT/TENANT.
    #[arg(long, value_name = "ROOT")]
    pub backup_dir: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Also serve the read-only web console on this address (with the TLS
    /// files and the API key above, which an address off loopback needs).
    /// One store's console: not with --tenants.
    #[arg(long, value_name = "ADDR", conflicts_with = "tenants")]
    pub console: Option<SocketAddr>,
    /// Threads that run the protocol (gRPC over HTTP/2); 0, the default,
    /// one per core. Fewer leave cores to the store's committer and to
    /// reads, which run on threads of their own: on a small machine
    /// shared with its clients, one thread served appends faster than two.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=MAX_WORKER_THREADS)
    )]
    pub worker_threads: usize,
}

/// The most protocol threads `--worker-threads` takes.
const MAX_WORKER_THREADS: u64 = 1024;

/// The builder of the runtime `gesta serve --worker-threads N` runs on: N
/// worker threads, or one per core for 0, and a blocking pool of
/// [`blocking_threads`] for `open_streams` open streams. For a caller that
/// runs the server in its own process as the command would (the
/// comparison harness); it adds its own settings before building.
pub fn runtime_builder(worker_threads: usize, open_streams: usize) -> tokio::runtime::Builder {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if worker_threads > 0 {
        builder.worker_threads(worker_threads);
    }
    builder.max_blocking_threads(blocking_threads(open_streams));
    builder.enable_all();
    builder
}

/// The blocking threads a server with `open_streams` open streams
/// (`--max-open-streams`) needs: a read holds one while it runs, for as
/// long as its client takes to receive it, so every open stream may hold
/// one; tokio's default of 512 stays free for everything else that runs
/// there (opening a tenant's store, lookups, acknowledgements). Without
/// them, reads that clients stop receiving could take every thread and
/// leave every other call waiting.
pub fn blocking_threads(open_streams: usize) -> usize {
    open_streams.saturating_add(512)
}

/// The runtime the server runs on: `args.worker_threads` threads, or one
/// per core.
fn runtime(args: &ServeArgs) -> Result<tokio::runtime::Runtime, String> {
    runtime_builder(args.worker_threads, args.max_open_streams)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// The bound on open stores and the quotas `args` give the tenants.
fn tenant_options(args: &ServeArgs) -> gesta::tenants::TenantOptions {
    gesta::tenants::TenantOptions {
        max_open: args.max_open_tenants,
        max_events: args.tenant_max_events,
        max_bytes: args.tenant_max_bytes,
        ..gesta::tenants::TenantOptions::default()
    }
}

/// Serves the tenants under `args.dir` (`--tenants`) until SIGINT or
/// SIGTERM, then closes their stores; with `companions`, each tenant's
/// store runs one beside it while it is open (`--ship-to`: a shipper to
/// the tenant's own prefix), finished before it closes.
pub fn run_tenants(
    args: ServeArgs,
    name: &str,
    companions: Option<gesta::tenants::CompanionMaker<gesta::Store>>,
) -> Result<(), String> {
    init_logging();
    let config = config_of(&args);
    let runtime = runtime(&args)?;
    let keys = match &args.tenant_keys {
        Some(path) => crate::TenantKeys::read(path).map_err(|e| e.to_string())?,
        None => return Err("--tenants needs --tenant-keys".into()),
    };
    let options = tenant_options(&args);
    let mut tenants =
        gesta::tenants::Tenants::open(&args.dir, options).map_err(|e| e.to_string())?;
    if let Some(make) = companions {
        tenants = tenants.with_companions(make);
    }
    let tenants = std::sync::Arc::new(tenants);
    let metrics = args.metrics;
    let serving = crate::TenantServing::default().encrypt(args.encrypt);
    let served = runtime.block_on(async {
        // Registered before the listener binds (see shutdown_signal).
        let signal = crate::shutdown_signal();
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| crate::ServeError::Bind {
                addr: config.listen,
                source,
            })?;
        eprintln!(
            "{name}: tenants under {}, listening on {}",
            args.dir.display(),
            config.listen
        );
        if let Some(addr) = metrics {
            crate::metrics::install_recorder()?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| crate::ServeError::Bind { addr, source })?;
            tokio::spawn(crate::metrics::serve_tenant_metrics(
                listener,
                tenants.clone(),
                crate::shutdown_signal(),
            ));
        }
        crate::serve_tenants_with(listener, tenants.clone(), keys, serving, config, signal).await
    });
    // Outside the runtime: a companion's finish may run one of its own.
    let closed = tenants.close();
    served.map_err(|e| e.to_string())?;
    closed.map_err(|e| e.to_string())
}

/// The server's configuration from the options.
fn config_of(args: &ServeArgs) -> ServeConfig {
    ServeConfig {
        listen: args.listen,
        tls: match (args.tls_cert.clone(), args.tls_key.clone()) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            _ => None,
        },
        api_key: args.api_key.clone(),
        insecure_loopback_api_key: args.insecure_loopback_api_key,
        max_message_bytes: args.max_message_bytes,
        max_event_bytes: args.max_event_bytes,
        max_concurrent_streams: args.max_concurrent_streams,
        max_open_streams: args.max_open_streams,
        shutdown_grace: std::time::Duration::from_secs(args.shutdown_grace),
        backup_dir: args.backup_dir.clone(),
    }
}

/// Logs through `tracing` to stderr, filtered by `RUST_LOG` (default
/// `info`). Spans that the filter lets through are logged as they close,
/// with their busy and idle time: `RUST_LOG=debug` logs every call
/// (`grpc`) and `RUST_LOG=info,gesta=debug` the store's commit and
/// compaction spans. The store's crates' `log` records come through too.
/// Does nothing if the process has a subscriber already.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::fmt::format::FmtSpan;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A store that the caller of [`run_with`] opened for the server, and
/// what to do once the server has stopped.
pub struct Opened {
    /// What to serve.
    pub served: Served,
    /// Added to the start line after the directory and head (e.g.
    /// `", shipping to s3://…"`).
    pub describe: String,
    /// Runs once the server, the console and the metrics endpoint have
    /// stopped, before the store closes (a last shipping round, a
    /// replica's poller stopped); what it returns is printed.
    pub finish: Finish,
}

/// See [`Opened::finish`].
pub type Finish = Box<dyn FnOnce() -> Result<Option<String>, String> + Send>;

impl Opened {
    /// `served`, with nothing to add or to finish.
    pub fn plain(served: Served) -> Opened {
        Opened {
            served,
            describe: String::new(),
            finish: Box::new(|| Ok(None)),
        }
    }
}

/// Opens the store in `args.dir` and serves it until SIGINT or SIGTERM,
/// then closes it; `name` prefixes what it prints.
pub fn run(args: ServeArgs, name: &str) -> Result<(), String> {
    run_with(args, name, |args| {
        let store = gesta::Store::open(&args.dir).map_err(|e| e.to_string())?;
        let served = Served::wrap(store, args.encrypt).map_err(|e| e.to_string())?;
        Ok(Opened::plain(served))
    })
}

/// [`run`], with the store opened by `open` (called with the options,
/// outside any async runtime, once the signal handlers are registered):
/// `gesta serve --ship-to` and `--replica-of` serve a store that a
/// shipper or a replica runs beside the server this way, with the same
/// options, console and metrics. `--tenants` ignores `open`.
pub fn run_with(
    args: ServeArgs,
    name: &str,
    open: impl FnOnce(&ServeArgs) -> Result<Opened, String>,
) -> Result<(), String> {
    init_logging();
    let console_scheme = if args.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let console = args.console.map(|listen| gesta_console::ConsoleConfig {
        listen,
        tls: args
            .tls_cert
            .clone()
            .zip(args.tls_key.clone())
            .map(|(cert, key)| gesta_console::TlsFiles { cert, key }),
        api_key: args.api_key.clone(),
        ..gesta_console::ConsoleConfig::default()
    });
    let config = config_of(&args);
    if args.tenants {
        return run_tenants(args, name, None);
    }
    let runtime = runtime(&args)?;
    // Registered before anything opens or binds (see shutdown_signal).
    let signal = {
        let _entered = runtime.enter();
        crate::shutdown_signal()
    };
    let Opened {
        served,
        describe,
        finish,
    } = open(&args)?;
    let store = (**served.engine()).clone();
    let result = runtime.block_on(async {
        eprintln!(
            "{name}: {}{} at head {}{describe}, listening on {}",
            args.dir.display(),
            if served.is_encrypted() {
                " (encrypted)"
            } else {
                ""
            },
            store.head(),
            config.listen
        );
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let metrics = match args.metrics {
            Some(addr) => {
                crate::metrics::install_recorder()?;
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| crate::ServeError::Bind { addr, source })?;
                let mut stopped = stopped.clone();
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                Some(tokio::spawn(crate::metrics::serve_served_metrics(
                    listener,
                    served.clone(),
                    shutdown,
                )))
            }
            None => None,
        };
        let console = match console {
            Some(c) => Some(
                gesta_console::Beside::start(served.console(), c)
                    .await
                    .map_err(|e| match e {
                        gesta_console::ConsoleError::Config(m) => {
                            crate::ServeError::Config(format!("--console: {m}"))
                        }
                        gesta_console::ConsoleError::Tls(m) => crate::ServeError::Tls(m),
                        e => crate::ServeError::Transport(format!("--console: {e}")),
                    })?,
            ),
            None => None,
        };
        if let Some(c) = &console {
            eprintln!(
                "{name}: console on {console_scheme}://{}/ (read-only)",
                c.addr
            );
        }
        let served = crate::serve(served, config, signal).await;
        if let Some(c) = console {
            let _ = c.stop().await;
        }
        let _ = stop.send(true);
        if let Some(metrics) = metrics {
            match metrics.await {
                Ok(result) => result?,
                Err(e) => return Err(crate::ServeError::Transport(e.to_string())),
            }
        }
        served
    });
    // Once nothing serves the store any more, whatever ran beside the
    // server ends (outside the runtime: it may run one of its own), then
    // the store closes.
    let finished = finish();
    let closed = store.close();
    result.map_err(|e| e.to_string())?;
    if let Some(line) = finished? {
        eprintln!("{name}: {line}");
    }
    closed.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        serve: ServeArgs,
    }

    /// `--worker-threads N` runs the protocol on N threads; without it,
    /// one per core.
    #[test]
    fn worker_threads_size_the_runtime() {
        let args = |extra: &[&str]| {
            let mut all = vec!["gesta-server", "/nowhere"];
            all.extend_from_slice(extra);
            Command::parse_from(all).serve
        };
        let one = runtime(&args(&["--worker-threads", "1"])).unwrap();
        assert_eq!(one.metrics().num_workers(), 1);
        let cores = std::thread::available_parallelism().unwrap().get();
        let default = runtime(&args(&[])).unwrap();
        assert_eq!(default.metrics().num_workers(), cores);
        let refused =
            Command::try_parse_from(["gesta-server", "/nowhere", "--worker-threads", "1025"]);
        assert!(refused.is_err(), "more threads than the bound are refused");
    }

    /// The tenants' quotas come from their flags, which only --tenants
    /// takes; the console serves one store, so not with --tenants.
    #[test]
    fn tenant_quotas_are_flags_and_the_console_is_for_one_store() {
        let base = [
            "gesta-server",
            "/nowhere",
            "--tenants",
            "--tenant-keys",
            "k",
        ];
        let with = |extra: &[&str]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            Command::try_parse_from(all).map(|c| c.serve)
        };
        let args = with(&["--tenant-max-events", "10", "--tenant-max-bytes", "4096"]).unwrap();
        let options = tenant_options(&args);
        assert_eq!(
            (options.max_events, options.max_bytes),
            (Some(10), Some(4096))
        );
        let unbounded = tenant_options(&with(&[]).unwrap());
        assert_eq!((unbounded.max_events, unbounded.max_bytes), (None, None));
        assert!(with(&["--console", "127.0.0.1:0"]).is_err());
        let alone =
            Command::try_parse_from(["gesta-server", "/nowhere", "--tenant-max-events", "1"]);
        assert!(alone.is_err(), "a quota without --tenants is refused");
    }
}
