//! `POST /api/append`: appends a batch given as JSON lines (one event per
//! line, as `gesta append` reads them), atomically — only on a console
//! started with writes allowed, and (the key check before it) with the key.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::{ApiError, AppState, blocking};

pub(crate) async fn append(
    State(state): State<Arc<AppState>>,
    body: String,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !state.allow_writes {
        return Err(ApiError::ReadOnly);
    }
    let mut events = Vec::new();
    for (i, line) in body.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let event = gesta_json::parse_event(line)
            .map_err(|e| ApiError::BadRequest(format!("line {}{e}", i + 1)))?;
        events.push(event);
    }
    if events.is_empty() {
        return Err(ApiError::BadRequest(
            "no events: give one JSON event per line".into(),
        ));
    }
    blocking(move || {
        let appended = state.store.events().append(events)?;
        Ok(Json(
            serde_json::json!({ "first": appended.first, "last": appended.last }),
        ))
    })
    .await
}
