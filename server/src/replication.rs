//! Where a served store stands against object storage, as the server
//! reports it: [`ReplicationStatus`], filled by a [`Probe`] that whoever
//! runs the shipping or the replica (the `gesta` command, with
//! `gesta-tier`) hands to [`Served::reports_replication`]; the server
//! answers `gesta.v1.Gesta/Replication` from it and exports it as
//! Prometheus series. The server itself knows nothing of buckets.
//!
//! [`Served::reports_replication`]: crate::Served::reports_replication

use std::sync::Arc;
use std::time::Duration;

use crate::proto::gesta_v1 as g;

/// The store's part in shipping to a bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// Neither shipped nor a replica.
    #[default]
    None,
    /// Shipped to a bucket by this server.
    Writer,
    /// A read replica following a bucket.
    Replica,
}

impl Role {
    /// The `role` label of the metrics.
    pub fn label(self) -> &'static str {
        match self {
            Role::None => "none",
            Role::Writer => "writer",
            Role::Replica => "replica",
        }
    }
}

/// A snapshot of the shipping or the replica; see
/// `ReplicationResponse` in `proto/gesta.proto` for each field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicationStatus {
    /// Writer, replica, or neither.
    pub role: Role,
    /// The bucket prefix, as `s3://BUCKET/PREFIX`.
    pub bucket: String,
    /// A writer: the last position the bucket holds; a replica: the head
    /// of the last checkpoint it read.
    pub bucket_head: u64,
    /// Positions one side holds and the other does not yet.
    pub behind: u64,
    /// The time since the last round or poll that succeeded.
    pub since_last_success: Option<Duration>,
    /// Failures since the last success.
    pub failures_in_a_row: u64,
    /// Failures in all.
    pub failures: u64,
    /// The last failure, until a success.
    pub last_error: Option<String>,
    /// Why the writer or replica stopped for good, if it did.
    pub stopped: Option<String>,
    /// A replica: the writer it follows; a writer: its own name.
    pub writer: String,
    /// Bytes uploaded or fetched, in all.
    pub bytes_transferred: u64,
}

impl ReplicationStatus {
    /// A status of `role` for the bucket `bucket`, every figure 0.
    pub fn new(role: Role, bucket: impl Into<String>) -> ReplicationStatus {
        ReplicationStatus {
            role,
            bucket: bucket.into(),
            ..ReplicationStatus::default()
        }
    }

    pub(crate) fn to_proto(&self, head: u64) -> g::ReplicationResponse {
        use g::replication_response::Role as R;
        g::ReplicationResponse {
            role: match self.role {
                Role::None => R::None,
                Role::Writer => R::Writer,
                Role::Replica => R::Replica,
            } as i32,
            bucket: self.bucket.clone(),
            head,
            bucket_head: self.bucket_head,
            behind: self.behind,
            since_last_success_ms: self
                .since_last_success
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            failures_in_a_row: self.failures_in_a_row,
            failures: self.failures,
            last_error: self.last_error.clone().unwrap_or_default(),
            stopped: self.stopped.clone().unwrap_or_default(),
            writer: self.writer.clone(),
            bytes_transferred: self.bytes_transferred,
        }
    }

    /// Sets the `gesta_replication_*` series, labelled with the role.
    pub(crate) fn record_gauges(&self) {
        if self.role == Role::None {
            return;
        }
        let role = self.role.label();
        let set = |name: &'static str, value: f64| {
            metrics::gauge!(name, "role" => role).set(value);
        };
        set(BEHIND, self.behind as f64);
        set(BUCKET_HEAD, self.bucket_head as f64);
        set(
            SINCE_SUCCESS,
            self.since_last_success.map_or(-1.0, |d| d.as_secs_f64()),
        );
        set(FAILURES_IN_A_ROW, self.failures_in_a_row as f64);
        set(STOPPED, if self.stopped.is_some() { 1.0 } else { 0.0 });
        metrics::counter!(FAILURES, "role" => role).absolute(self.failures);
        metrics::counter!(BYTES, "role" => role).absolute(self.bytes_transferred);
    }
}

/// Reads the shipping's or the replica's status now; cheap (a lock and a
/// copy), called for each `Replication` call and each scrape.
pub type Probe = Arc<dyn Fn() -> ReplicationStatus + Send + Sync>;

pub(crate) const BEHIND: &str = "gesta_replication_behind_events";
pub(crate) const BUCKET_HEAD: &str = "gesta_replication_bucket_head";
pub(crate) const SINCE_SUCCESS: &str = "gesta_replication_seconds_since_success";
pub(crate) const FAILURES_IN_A_ROW: &str = "gesta_replication_failures_in_a_row";
pub(crate) const FAILURES: &str = "gesta_replication_failures_total";
pub(crate) const STOPPED: &str = "gesta_replication_stopped";
pub(crate) const BYTES: &str = "gesta_replication_bytes_transferred_total";

/// Describes the series to the recorder.
pub(crate) fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_gauge!(
        BEHIND,
        Unit::Count,
        "Positions not yet shipped (writer) or not yet applied from the bucket (replica)"
    );
    describe_gauge!(
        BUCKET_HEAD,
        Unit::Count,
        "The last position the bucket holds, as this server last knew it"
    );
    describe_gauge!(
        SINCE_SUCCESS,
        Unit::Seconds,
        "Seconds since the last shipping round or replica poll that succeeded (-1 before the first)"
    );
    describe_gauge!(
        FAILURES_IN_A_ROW,
        Unit::Count,
        "Shipping rounds or replica polls failed since the last success"
    );
    describe_counter!(
        FAILURES,
        Unit::Count,
        "Shipping rounds or replica polls failed in all"
    );
    describe_gauge!(
        STOPPED,
        Unit::Count,
        "1 once the writer was fenced or the replica diverged: it ships or applies nothing more"
    );
    describe_counter!(
        BYTES,
        Unit::Bytes,
        "Bytes uploaded to (writer) or fetched from (replica) the bucket"
    );
}
