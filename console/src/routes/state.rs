//! `GET /api/info` (what the page needs first: the store, the head, whether
//! it may write) and `GET /api/state` (the store's state now, with the
//! samples for the charts).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::{ApiError, AppState, blocking};
use crate::sampler::Sample;

/// `GET /api/info`.
pub(crate) async fn info(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "store": state.store.path().display().to_string(),
        "head": state.store.engine().head(),
        "writable": state.allow_writes,
        "encrypted": state.store.is_encrypted(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// A durable subscription's cursor.
#[derive(serde::Serialize)]
struct Cursor {
    name: String,
    acknowledged: u64,
    /// Events committed after it.
    lag: u64,
}

/// A key's snapshots.
#[derive(serde::Serialize)]
struct Snapshots {
    key: String,
    positions: Vec<u64>,
}

/// The store's state.
#[derive(serde::Serialize)]
pub(crate) struct StoreState {
    store: String,
    head: u64,
    /// The head less the events removed (their positions stay taken).
    events: u64,
    #[serde(flatten)]
    disk: crate::disk::DiskUse,
    bytes_per_event: Option<f64>,
    /// Memtables frozen and waiting to be flushed into a run (the
    /// compaction backlog).
    memtables_waiting: usize,
    cursors: Vec<Cursor>,
    snapshots: Vec<Snapshots>,
    /// Lifecycle operations recorded (retroactive tags, redactions).
    audit_entries: usize,
    writable: bool,
    samples: Vec<Sample>,
}

/// At most this many audit entries are counted.
const AUDIT_COUNTED: usize = 10_000;

/// `GET /api/state`.
pub(crate) async fn state(
    State(state): State<Arc<AppState>>,
) -> Result<Json<StoreState>, ApiError> {
    blocking(move || {
        let store = state.store.engine();
        let head = store.head();
        let mut disk = crate::disk::measure(store.path())
            .map_err(|e| ApiError::Internal(format!("{}: {e}", store.path().display())))?;
        let cursors = store
            .durable_subscriptions()?
            .into_iter()
            .map(|c| Cursor {
                lag: head.saturating_sub(c.acknowledged),
                name: c.name,
                acknowledged: c.acknowledged,
            })
            .collect();
        let mut snapshots = Vec::new();
        for key in std::mem::take(&mut disk.snapshot_keys) {
            let positions = store.list_snapshots(&key)?;
            if !positions.is_empty() {
                snapshots.push(Snapshots { key, positions });
            }
        }
        let audit_entries = store.audit_log(0, AUDIT_COUNTED)?.len();
        let events = store.events();
        Ok(Json(StoreState {
            store: store.path().display().to_string(),
            head,
            events,
            bytes_per_event: (events > 0).then(|| disk.bytes_on_disk as f64 / events as f64),
            disk,
            memtables_waiting: store.index_shape().frozen,
            cursors,
            snapshots,
            audit_entries,
            writable: state.allow_writes,
            samples: state.samples.all(),
        }))
    })
    .await
}
