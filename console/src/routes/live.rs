//! `GET /api/live`: the events matching a query as they commit, as
//! server-sent events — a subscription (catch-up after `after`, then live,
//! never a gap or a duplicate) whose batches become `event` messages, each
//! carrying one event's JSON with its position as the message id. The
//! page pauses by closing the stream and resumes after the last position
//! it showed, so a pause loses nothing.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt, stream};
use serde::Deserialize;

use super::events::parse_query;
use super::{ApiError, AppState, event_json, number};

/// The parameters, all optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    /// The DCB query as JSON; absent: every event.
    query: Option<String>,
    /// Start after this position; absent: the head (only new events).
    after: Option<String>,
}

type Messages =
    std::pin::Pin<Box<dyn Stream<Item = Result<Event, std::convert::Infallible>> + Send>>;

pub(crate) async fn live(
    State(state): State<Arc<AppState>>,
    params: Result<Query<Params>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let query = parse_query(p.query.as_deref())?;
    let head = state.store.engine().head();
    let after = number("after", p.after.as_deref())?.unwrap_or(head);
    if after > head {
        return Err(ApiError::BadRequest(format!(
            "unknown position: after {after} is beyond the head {head}"
        )));
    }
    let subscription = state.store.events().subscribe(&query, after)?.into_stream();
    let opened = stream::once(async move {
        Ok(Event::default()
            .event("open")
            .data(format!("{{\"after\":{after},\"head\":{head}}}")))
    });
    let events = subscription.flat_map(|batch| {
        let messages: Vec<Result<Event, std::convert::Infallible>> = match batch {
            Ok(events) => events
                .iter()
                .map(|e| {
                    Ok(match event_json(e) {
                        Ok(json) => Event::default()
                            .event("event")
                            .id(e.position.to_string())
                            .data(json.get()),
                        Err(_) => Event::default()
                            .event("failed")
                            .data(format!("event {} did not encode as JSON", e.position)),
                    })
                })
                .collect(),
            Err(e) => vec![Ok(Event::default().event("failed").data(e.to_string()))],
        };
        stream::iter(messages)
    });
    let messages: Messages = Box::pin(opened.chain(events));
    Ok(Sse::new(messages)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response())
}
