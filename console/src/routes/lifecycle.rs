//! `POST /api/tags` and `POST /api/redact`: the lifecycle operations on
//! committed events (retroactive tags; erasing data and metadata), under
//! the same rules as appends — a console started with writes allowed, and
//! the key. The body names the events: `{"positions":[3,7]}` or
//! `{"query":{"items":[…]}}`; for tags, also `"tags":["gdpr:s7"]`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use gesta::lifecycle::Target;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{ApiError, AppState, blocking};

/// The body of both calls.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body<'a> {
    #[serde(default)]
    positions: Option<Vec<u64>>,
    #[serde(borrow, default)]
    query: Option<&'a RawValue>,
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The target and the tags a body gives, checked for shape.
fn parse(text: &str, tags_wanted: bool) -> Result<(Target, Vec<String>), ApiError> {
    let body: Body = serde_json::from_str(text)
        .map_err(|e| ApiError::BadRequest(format!("the body is not a lifecycle request: {e}")))?;
    let target = match (body.positions, body.query) {
        (Some(p), None) => Target::Positions(p),
        (None, Some(q)) => {
            let query = gesta_json::parse_query(q.get())
                .map_err(|e| ApiError::BadRequest(format!("the query is not valid{e}")))?;
            Target::Query(query)
        }
        _ => {
            return Err(ApiError::BadRequest(
                "name the events by \"positions\" or by \"query\", one of the two".into(),
            ));
        }
    };
    let tags = match (tags_wanted, body.tags) {
        (true, Some(tags)) => tags,
        (true, None) => return Err(ApiError::BadRequest("give the \"tags\" to add".into())),
        (false, Some(_)) => {
            return Err(ApiError::BadRequest("a redaction takes no \"tags\"".into()));
        }
        (false, None) => Vec::new(),
    };
    Ok((target, tags))
}

/// `POST /api/tags`.
pub(crate) async fn add_tags(
    State(state): State<Arc<AppState>>,
    body: String,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !state.allow_writes {
        return Err(ApiError::ReadOnly);
    }
    let (target, tags) = parse(&body, true)?;
    blocking(move || {
        let added = state.store.events().add_tags(&target, &tags)?;
        Ok(Json(serde_json::json!({
            "targeted": added.targeted,
            "tagged": added.tagged,
        })))
    })
    .await
}

/// `POST /api/redact`.
pub(crate) async fn redact(
    State(state): State<Arc<AppState>>,
    body: String,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !state.allow_writes {
        return Err(ApiError::ReadOnly);
    }
    let (target, _) = parse(&body, false)?;
    blocking(move || {
        let redacted = state.store.events().redact(&target)?;
        Ok(Json(serde_json::json!({
            "targeted": redacted.targeted,
            "redacted": redacted.redacted,
        })))
    })
    .await
}
