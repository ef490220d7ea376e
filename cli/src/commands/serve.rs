//! `gesta serve`: the server's own options, and the two ways a served
//! store meets object storage (gesta-tier): `--ship-to`, which ships it
//! to a bucket while it is served, and `--replica-of`, which serves a
//! read replica of a store shipped to a bucket.

use std::sync::Arc;
use std::time::Duration;

use gesta_server::command::{Opened, ServeArgs};
use gesta_server::{ReplicationStatus, Role};

use crate::failure::Failure;

/// `gesta serve`'s options: the server's, shipping, and replicas.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    serve: ServeArgs,
    /// Ship the store to this bucket prefix while serving
    /// (s3://BUCKET/PREFIX; endpoint and credentials from the AWS_*
    /// variables).
    #[arg(long, value_name = "URL", conflicts_with = "replica_of")]
    ship_to: Option<String>,
    /// The time between shipping rounds: the recovery-point objective.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration, requires = "ship_to")]
    ship_interval: Duration,
    /// Also ship as soon as the log has grown by this many bytes since the
    /// last round began, without waiting for the interval.
    #[arg(long, value_name = "BYTES", requires = "ship_to")]
    ship_bytes: Option<u64>,
    /// Keep only the newest N sealed segments on the local disk: after
    /// each round, older ones the bucket holds byte for byte are evicted
    /// and read from the bucket through a cache.
    #[arg(
        long,
        value_name = "N",
        requires = "ship_to",
        conflicts_with = "tenants"
    )]
    ship_evict_keep: Option<usize>,
    /// Take the prefix over from a writer that still holds it (one that
    /// was killed, or whose machine is gone); that writer is fenced.
    #[arg(long, requires = "ship_to")]
    ship_takeover: bool,
    /// Answer each append only once the bucket holds it, waiting at most
    /// DURATION (then the call fails with UNAVAILABLE: the events are
    /// committed locally and a retry with the same ids appends nothing).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "ship_to", conflicts_with = "tenants")]
    ship_ack: Option<Duration>,
    /// Serve a read replica of the store shipped to this bucket prefix
    /// (s3://BUCKET/PREFIX): DIR is restored from the bucket if it does
    /// not exist, then follows it; writes are refused, naming the writer.
    #[arg(long, value_name = "URL", conflicts_with_all = ["tenants", "encrypt"])]
    replica_of: Option<String>,
    /// The time between two polls of the bucket by the replica.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration, requires = "replica_of")]
    replica_interval: Duration,
}

pub const SHIP_AFTER_HELP: &str = "
--ship-to s3://BUCKET/PREFIX ships the store to object storage while it is served: every --ship-interval (default
1s), or as soon as the log has grown by --ship-bytes, what is committed is uploaded (sealed files once, the log's
new bytes, then a checkpoint naming everything with its CRC-32), and `gesta restore` rebuilds the store from the
bucket alone. The prefix is claimed for this writer when the server starts (the bucket must answer then; later
outages only delay shipping, with retries): a second writer is refused, unless --ship-takeover, which fences the
first; a store whose head is below the bucket's is refused (restore it first). On SIGINT or SIGTERM a last round
ships everything committed and the prefix is released. With --ship-ack DURATION each append is answered only once
the bucket holds it (a round is hurried for it, and appends waiting together share rounds); after DURATION it fails
with UNAVAILABLE, its events committed locally (not with --tenants). With --tenants, each tenant's store ships to
its own prefix URL/NAME while it is open: the prefix is claimed when the store opens and released after a last
round when it closes (to make room for another, or at shutdown); `gesta restore URL/NAME DIR` restores one tenant.
An encrypted store's key file (KEYS) is never shipped (a forget must reach every copy; the bucket gets one without
keys, as a backup does): keep it separately and copy it over the KEYS of a restored store.

--replica-of s3://BUCKET/PREFIX serves a read replica of the store a `gesta serve --ship-to` ships there: DIR is
restored from the bucket when it does not exist, then the bucket is polled every --replica-interval (default
1s) and what the writer shipped since is applied, with the same positions and commit times, so that reads
and subscriptions on both services see it as they would on the writer. Every write (appends, tags,
redactions, removals, snapshots, acknowledgements of durable subscriptions) is refused with FAILED_PRECONDITION,
naming the writer (gesta.v1: a ReadReplica detail). An existing DIR is served even while the bucket does not
answer; the polls retry. How far behind it is: gesta.v1 Replication, the
gesta_replication_* series with --metrics, and the log. A replica whose bucket's history is not its own (the
bucket was restored from elsewhere) stops applying, says why, and must be made again from an empty DIR.

With either, gesta.v1 Replication and --metrics report the shipping or the replica (positions behind, the last
success, failures). Endpoint and credentials: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION, AWS_ALLOW_HTTP=true for plain HTTP.

  gesta serve ./events --ship-to s3://my-bucket/events --ship-interval 500ms
  gesta serve ./replica --replica-of s3://my-bucket/events --listen 127.0.0.1:50052";

pub fn run(args: Args) -> Result<(), Failure> {
    if let Some(url) = args.replica_of.clone() {
        let interval = args.replica_interval;
        return gesta_server::command::run_with(args.serve, "gesta", |serve| {
            replica(serve, &url, interval).map_err(|f| f.message)
        })
        .map_err(Failure::new);
    }
    let Some(url) = args.ship_to.clone() else {
        return gesta_server::command::run(args.serve, "gesta").map_err(Failure::new);
    };
    let ship = Ship {
        url,
        interval: args.ship_interval,
        bytes: args.ship_bytes,
        evict_keep: args.ship_evict_keep,
        takeover: args.ship_takeover,
        ack: args.ship_ack,
    };
    if args.serve.tenants {
        let make = ship.tenants()?;
        return gesta_server::command::run_tenants(args.serve, "gesta", Some(make))
            .map_err(Failure::new);
    }
    gesta_server::command::run_with(args.serve, "gesta", |serve| {
        ship.open(serve).map_err(|f| f.message)
    })
    .map_err(Failure::new)
}

/// A tenant's shipper, run beside its open store by the tenant set.
struct TenantShipper {
    tenant: String,
    url: String,
    shipper: gesta_tier::Shipper,
}

impl gesta::tenants::Companion for TenantShipper {
    /// The last round ships everything the tenant's store committed, and
    /// the tenant's prefix is released.
    fn finish(self: Box<Self>) -> Result<(), String> {
        let shipped = self
            .shipper
            .stop()
            .map_err(|e| format!("--ship-to {}: the last round: {e}", self.url))?;
        eprintln!(
            "gesta: tenant {}: shipped positions 1..={shipped} to {}",
            self.tenant, self.url
        );
        Ok(())
    }
}

/// `--ship-to` and its options.
struct Ship {
    url: String,
    interval: Duration,
    bytes: Option<u64>,
    evict_keep: Option<usize>,
    takeover: bool,
    ack: Option<Duration>,
}

impl Ship {
    /// The shipper's options: the interval, the bytes bound, takeover.
    fn options(&self) -> gesta_tier::ShipOptions {
        let mut options = gesta_tier::ShipOptions::default()
            .interval(self.interval)
            .takeover(self.takeover);
        if let Some(bytes) = self.bytes {
            options = options.bytes(bytes);
        }
        if let Some(keep_newest) = self.evict_keep {
            options = options.evict(gesta_tier::EvictPolicy {
                keep_newest,
                ..gesta_tier::EvictPolicy::default()
            });
        }
        options
    }
}

impl Ship {
    /// With --tenants: a shipper beside each tenant's open store, to the
    /// tenant's own prefix (`URL/NAME`), started when the store opens
    /// (claiming that prefix) and stopped, after a last round, before it
    /// closes.
    fn tenants(self) -> Result<gesta::tenants::CompanionMaker<gesta::Store>, Failure> {
        // The URL is checked once, at start.
        gesta_tier::Location::from_url(&self.url)
            .map_err(|e| Failure::new(format!("--ship-to {}: {e}", self.url)))?;
        let options = self.options();
        let base = self.url.trim_end_matches('/').to_owned();
        Ok(Arc::new(move |tenant: &str, store: &gesta::Store| {
            let url = format!("{base}/{tenant}");
            let location = gesta_tier::Location::from_url(&url).map_err(|e| e.to_string())?;
            let options = options.clone();
            let shipper = gesta_tier::Shipper::start(store.clone(), location, options)
                .map_err(|e| format!("--ship-to {url}: {e}"))?;
            Ok(Box::new(TenantShipper {
                tenant: tenant.to_owned(),
                url,
                shipper,
            }) as Box<dyn gesta::tenants::Companion>)
        }))
    }

    /// Opens the store, claims the prefix and starts shipping.
    fn open(self, serve: &ServeArgs) -> Result<Opened, Failure> {
        let options = self.options();
        let Ship {
            url,
            interval,
            bytes,
            ack,
            ..
        } = self;
        let location = gesta_tier::Location::from_url(&url).map_err(Failure::new)?;
        // Segments evicted to this prefix (by --ship-evict-keep, now or
        // in an earlier run) are read from it.
        let remote = gesta_tier::BucketSegments::new(location.clone())
            .map_err(|e| Failure::new(format!("--ship-to {url}: {e}")))?;
        let store = gesta::Store::open_with(
            &serve.dir,
            gesta::Options::default().remote_segments(Arc::new(remote)),
        )?;
        let shipper = gesta_tier::Shipper::start(store.clone(), location, options)
            .map_err(|e| Failure::new(format!("--ship-to {url}: {e}")))?;
        // Through crypto-shredding's wrapper when the store is encrypted,
        // as without --ship-to.
        let mut served = gesta_server::Served::wrap(store, serve.encrypt)?;
        if let Some(timeout) = ack {
            let waiter = shipper.waiter();
            served = served.acknowledged_by(Arc::new(move |position| {
                waiter
                    .ship_through(position, timeout)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }));
        }
        if served.is_encrypted() {
            // As a backup, the bucket must not keep a key that a forget
            // destroys; the restored store needs the key file put back.
            eprintln!(
                "gesta: warning: {} is encrypted, and its keys are not shipped (the bucket gets \
                 a key file without keys, as a backup does): keep its KEYS separately, and copy it \
                 over the KEYS of a store restored from the bucket to read its subjects' events",
                serve.dir.display()
            );
        }
        let describe = format!(
            ", shipping to {url} every {}{} (epoch {}){}",
            humantime::format_duration(interval),
            match bytes {
                Some(b) => format!(" or {b} bytes"),
                None => String::new(),
            },
            shipper.epoch(),
            match ack {
                Some(t) => format!(
                    ", appends acknowledged once shipped (within {})",
                    humantime::format_duration(t)
                ),
                None => String::new(),
            },
        );
        let shipper = Arc::new(shipper);
        let probe = {
            let (shipper, url) = (Arc::downgrade(&shipper), url.clone());
            let store = (**served.engine()).clone();
            Arc::new(move || match shipper.upgrade() {
                Some(shipper) => shipping_status(&url, &store, &shipper.status()),
                None => ReplicationStatus::new(Role::Writer, url.clone()),
            })
        };
        let served = served.reports_replication(probe);
        Ok(Opened {
            served,
            describe,
            finish: Box::new(move || {
                // The last round ships everything the server committed.
                let shipper = Arc::into_inner(shipper)
                    .ok_or_else(|| format!("--ship-to {url}: the shipper is still in use"))?;
                let shipped = shipper
                    .stop()
                    .map_err(|e| format!("--ship-to {url}: the last round: {e}"))?;
                Ok(Some(format!("shipped positions 1..={shipped} to {url}")))
            }),
        })
    }
}

/// A shipper's status as the server reports it.
fn shipping_status(
    url: &str,
    store: &gesta::Store,
    s: &gesta_tier::ShipStatus,
) -> ReplicationStatus {
    let mut r = ReplicationStatus::new(Role::Writer, url);
    r.bucket_head = s.shipped_head;
    r.behind = store.head().saturating_sub(s.shipped_head);
    r.since_last_success = s.last_success.map(|t| t.elapsed());
    r.failures_in_a_row = s.failures_in_a_row;
    r.failures = s.failures;
    r.last_error = s.last_error.clone();
    r.stopped = s
        .fenced_by
        .as_ref()
        .map(|w| format!("fenced by writer {w}: ships no more"));
    r.writer = format!("epoch {}", s.epoch);
    r.bytes_transferred = s.bytes_uploaded;
    r
}

/// `--replica-of`: starts the replica (restoring DIR first if it does not
/// exist) and serves its store.
fn replica(serve: &ServeArgs, url: &str, interval: Duration) -> Result<Opened, Failure> {
    let location = gesta_tier::Location::from_url(url).map_err(Failure::new)?;
    let options = gesta_tier::ReplicaOptions::default().interval(interval);
    let replica = gesta_tier::Replica::start(location, &serve.dir, options)
        .map_err(|e| Failure::new(format!("--replica-of {url}: {e}")))?;
    let store = replica.store().clone();
    let writer = store.replica_of().unwrap_or_default();
    let served = gesta_server::Served::wrap(store, false)?;
    let replica = Arc::new(replica);
    let probe = {
        let (replica, url) = (Arc::downgrade(&replica), url.to_owned());
        Arc::new(move || match replica.upgrade() {
            Some(replica) => replica_status(&url, &replica.status()),
            None => ReplicationStatus::new(Role::Replica, url.clone()),
        })
    };
    let describe = format!(
        ", a read replica of {writer}, polled every {}",
        humantime::format_duration(interval)
    );
    let url = url.to_owned();
    Ok(Opened {
        served: served.reports_replication(probe),
        describe,
        finish: Box::new(move || {
            let replica = Arc::into_inner(replica)
                .ok_or_else(|| format!("--replica-of {url}: the replica is still in use"))?;
            let status = replica.status();
            // Stops polling; the command closes the store.
            drop(replica);
            Ok(Some(format!(
                "replica of {url} stopped at head {} ({} behind the bucket)",
                status.head, status.behind
            )))
        }),
    })
}

/// A replica's status as the server reports it.
fn replica_status(url: &str, s: &gesta_tier::ReplicaStatus) -> ReplicationStatus {
    let mut r = ReplicationStatus::new(Role::Replica, url);
    r.bucket_head = s.bucket_head;
    r.behind = s.behind;
    r.since_last_success = s.since_last_poll;
    r.failures_in_a_row = s.failures_in_a_row;
    r.failures = s.failures;
    r.last_error = s.last_error.clone();
    r.stopped = s.diverged.clone();
    r.writer = if s.epoch == 0 {
        s.writer.clone()
    } else {
        format!("{} (epoch {})", s.writer, s.epoch)
    };
    r.bytes_transferred = s.bytes_fetched;
    r
}
