//! `gesta serve`: the server's own options, and `--ship-to`, which ships
//! the store to a bucket while it is served (gesta-tier).

use std::time::Duration;

use gesta_server::command::ServeArgs;

use crate::failure::Failure;

/// `gesta serve`'s options: the server's, and shipping.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    serve: ServeArgs,
    /// Ship the store to this bucket prefix while serving
    /// (s3://BUCKET/PREFIX; endpoint and credentials from the AWS_*
    /// variables).
    #[arg(long, value_name = "URL", conflicts_with_all = ["tenants", "metrics", "console"])]
    ship_to: Option<String>,
    /// The time between shipping rounds: the recovery-point objective.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration, requires = "ship_to")]
    ship_interval: Duration,
    /// Take the prefix over from a writer that still holds it (one that
    /// was killed, or whose machine is gone); that writer is fenced.
    #[arg(long, requires = "ship_to")]
    ship_takeover: bool,
    /// Answer each append only once the bucket holds it, waiting at most
    /// DURATION (then the call fails with UNAVAILABLE: the events are
    /// committed locally and a retry with the same ids appends nothing).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "ship_to")]
    ship_ack: Option<Duration>,
}

pub const SHIP_AFTER_HELP: &str = "
--ship-to s3://BUCKET/PREFIX ships the store to object storage while it is served: every --ship-interval (default
1s), what is committed is uploaded (sealed files once, the log's new bytes, then a checkpoint naming everything
with its CRC-32), and `gesta restore` rebuilds the store from the bucket alone. The prefix is claimed for this
writer when the server starts (the bucket must answer then; later outages only delay shipping, with retries):
a second writer is refused, unless --ship-takeover, which fences the first; a store whose head is below the
bucket's is refused (restore it first). On SIGINT or SIGTERM a last round ships everything committed and the
prefix is released. With --ship-ack DURATION each append is answered only once the bucket holds it (a round
is hurried for it, and appends waiting together share rounds); after DURATION it fails with UNAVAILABLE,
its events committed locally. Not yet with --tenants, --metrics or --console. An encrypted store's key file (KEYS)
is never shipped (a forget must reach every copy; the bucket gets one without keys, as a backup does): keep it
separately and copy it over the KEYS of a restored store.
Endpoint and credentials: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION,
AWS_ALLOW_HTTP=true for plain HTTP.

  gesta serve ./events --ship-to s3://my-bucket/events --ship-interval 500ms";

pub fn run(args: Args) -> Result<(), Failure> {
    let Some(url) = args.ship_to else {
        return gesta_server::command::run(args.serve, "gesta").map_err(Failure::new);
    };
    gesta_server::command::init_logging();
    let location = gesta_tier::Location::from_url(&url).map_err(Failure::new)?;
    let a = args.serve;
    let config = gesta_server::ServeConfig {
        listen: a.listen,
        tls: match (a.tls_cert, a.tls_key) {
            (Some(cert), Some(key)) => Some(gesta_server::TlsFiles { cert, key }),
            _ => None,
        },
        api_key: a.api_key,
        insecure_loopback_api_key: a.insecure_loopback_api_key,
        max_message_bytes: a.max_message_bytes,
        max_event_bytes: a.max_event_bytes,
        max_concurrent_streams: a.max_concurrent_streams,
        max_open_streams: a.max_open_streams,
        shutdown_grace: Duration::from_secs(a.shutdown_grace),
        backup_dir: a.backup_dir,
    };
    let store = gesta::Store::open(&a.dir)?;
    let options = gesta_tier::ShipOptions::default()
        .interval(args.ship_interval)
        .takeover(args.ship_takeover);
    let shipper = gesta_tier::Shipper::start(store.clone(), location, options)
        .map_err(|e| Failure::new(format!("--ship-to {url}: {e}")))?;
    eprintln!(
        "gesta: {} at head {}, shipping to {url} every {} (epoch {}){}, listening on {}",
        a.dir.display(),
        store.head(),
        humantime::format_duration(args.ship_interval),
        shipper.epoch(),
        match args.ship_ack {
            Some(t) => format!(
                ", appends acknowledged once shipped (within {})",
                humantime::format_duration(t)
            ),
            None => String::new(),
        },
        config.listen
    );
    // Through crypto-shredding's wrapper when the store is encrypted, as
    // without --ship-to.
    let mut wrapped = gesta_server::Served::wrap(store.clone(), a.encrypt)?;
    if let Some(timeout) = args.ship_ack {
        let waiter = shipper.waiter();
        wrapped = wrapped.acknowledged_by(std::sync::Arc::new(move |position| {
            waiter
                .ship_through(position, timeout)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }));
    }
    if wrapped.is_encrypted() {
        // As a backup, the bucket must not keep a key that a forget
        // destroys; the restored store needs the key file put back.
        eprintln!(
            "gesta: warning: {} is encrypted, and its keys are not shipped (the bucket gets \
             a key file without keys, as a backup does): keep its KEYS separately, and copy it \
             over the KEYS of a store restored from the bucket to read its subjects' events",
            a.dir.display()
        );
    }
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| Failure::new(format!("the runtime: {e}")))?;
    let served = runtime.block_on(async {
        // Registered before the server binds (see shutdown_signal).
        let signal = gesta_server::shutdown_signal();
        gesta_server::serve(wrapped, config, signal).await
    });
    // The last round ships everything the server committed.
    let shipped = shipper.stop();
    let closed = store.close();
    served.map_err(Failure::new)?;
    let shipped =
        shipped.map_err(|e| Failure::new(format!("--ship-to {url}: the last round: {e}")))?;
    eprintln!("gesta: shipped positions 1..={shipped} to {url}");
    closed?;
    Ok(())
}
