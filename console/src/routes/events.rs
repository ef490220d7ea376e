//! Reading events: a page of a DCB query or of a stream, forwards or
//! backwards from a position (a revision for a stream) or a time, and one
//! event by position or by id.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use gesta::ReadOptions;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{ApiError, AppState, blocking, event_json, number};

/// Events a page shows unless told otherwise.
const DEFAULT_LIMIT: u64 = 50;
/// The most a page may ask for.
const MAX_LIMIT: u64 = 1000;
/// The most bytes of events' JSON a page carries (at least one event): a
/// thousand events of 16 MiB each would otherwise be built in memory for
/// one request. A page cut short says `more`, as one cut by its limit.
const PAGE_BYTES: usize = 8 << 20;

/// The parameters of `GET /api/events`, all optional. Numbers arrive as
/// text so that a bad one gets a message naming it.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    /// The DCB query as JSON (`{"items":[{"types":[…],"tags":[…]}]}`);
    /// absent: every event.
    query: Option<String>,
    /// Read this stream by revision instead of a query.
    stream: Option<String>,
    /// Exclusive start: positions (revisions with `stream`) after this.
    after: Option<String>,
    /// Exclusive start backwards: positions (revisions) before this.
    before: Option<String>,
    /// Only events committed at or after this RFC 3339 time (forwards).
    since: Option<String>,
    /// `forwards` (default) or `backwards`.
    direction: Option<String>,
    /// At most this many events (1 to 1000; default 50).
    limit: Option<String>,
}

/// A page of events.
#[derive(serde::Serialize)]
pub(crate) struct Page {
    /// In read order.
    events: Vec<Box<RawValue>>,
    /// Whether more events follow in the same direction.
    more: bool,
    /// The head when the page was read.
    head: u64,
    /// The query read, as JSON (absent for a stream).
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<Box<RawValue>>,
}

/// A query as the page shows it: `{"items":[{"types":[…],"tags":[…]}]}`,
/// types before tags as the form has them.
pub(crate) fn query_json(query: &gesta::Query) -> QueryJson<'_> {
    QueryJson {
        items: query
            .items
            .iter()
            .map(|i| ItemJson {
                types: &i.types,
                tags: &i.tags,
            })
            .collect(),
    }
}

/// See [`query_json`].
#[derive(serde::Serialize)]
pub(crate) struct QueryJson<'a> {
    items: Vec<ItemJson<'a>>,
}

#[derive(serde::Serialize)]
struct ItemJson<'a> {
    types: &'a [String],
    tags: &'a [String],
}

/// Parses and checks a query given as JSON; absent or empty: everything.
pub(crate) fn parse_query(text: Option<&str>) -> Result<gesta::Query, ApiError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(gesta::Query::all());
    };
    let query = gesta_json::parse_query(text)
        .map_err(|e| ApiError::BadRequest(format!("the query is not valid JSON of a query{e}")))?;
    gesta::validation::check_query(&query)?;
    Ok(query)
}

/// `since` in microseconds since the Unix epoch.
fn since_micros(text: &str) -> Result<u64, ApiError> {
    let bad = |reason: String| ApiError::BadRequest(format!("since {text:?}: {reason}"));
    let time = humantime::parse_rfc3339_weak(text.trim()).map_err(|e| bad(e.to_string()))?;
    let micros = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| bad("is before 1970".to_owned()))?
        .as_micros();
    u64::try_from(micros).map_err(|_| bad("is too far in the future".to_owned()))
}

/// What a request asks to read, checked.
struct Read {
    query: gesta::Query,
    stream: Option<String>,
    options: ReadOptions,
    limit: usize,
}

fn plan(p: Params, head: u64, store: &crate::ConsoleStore) -> Result<Read, ApiError> {
    let backwards = match p.direction.as_deref().unwrap_or("forwards") {
        "forwards" => false,
        "backwards" => true,
        other => {
            return Err(ApiError::BadRequest(format!(
                "direction {other:?} is neither \"forwards\" nor \"backwards\""
            )));
        }
    };
    let limit = number("limit", p.limit.as_deref())?.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit {limit} is outside 1 to {MAX_LIMIT}"
        )));
    }
    let mut after = number("after", p.after.as_deref())?;
    let before = number("before", p.before.as_deref())?;
    // An empty name is refused below, as the store refuses it.
    let stream = p.stream;
    let since = p.since.as_deref().filter(|s| !s.trim().is_empty());
    if stream.is_some() && p.query.as_deref().is_some_and(|q| !q.trim().is_empty()) {
        return Err(ApiError::BadRequest(
            "give a query or a stream, not both".into(),
        ));
    }
    if let Some(since) = since {
        if after.is_some() || backwards || stream.is_some() {
            return Err(ApiError::BadRequest(
                "since reads a query forwards: it goes without after, backwards and stream".into(),
            ));
        }
        // The last position committed before `since`: what follows it was
        // committed at or after it, since commit times never decrease.
        after = Some(
            store
                .events()
                .position_at(since_micros(since)?.saturating_sub(1))?,
        );
    }
    if backwards && after.is_some() {
        return Err(ApiError::BadRequest(
            "backwards reads start before a position: give before, not after".into(),
        ));
    }
    if !backwards && before.is_some() {
        return Err(ApiError::BadRequest(
            "forwards reads start after a position: give after, not before".into(),
        ));
    }
    if let Some(stream) = &stream {
        gesta::validation::check_stream_name(stream)?;
    } else {
        if let Some(a) = after.filter(|&a| a > head) {
            return Err(ApiError::BadRequest(format!(
                "unknown position: after {a} is beyond the head {head}"
            )));
        }
        if let Some(b) = before.filter(|&b| b > head.saturating_add(1)) {
            return Err(ApiError::BadRequest(format!(
                "unknown position: before {b} is beyond the head {head} + 1"
            )));
        }
    }
    let mut options = if backwards {
        ReadOptions::backwards()
    } else {
        ReadOptions::forwards()
    };
    options.start = if backwards { before } else { after };
    // One more than asked, to tell whether more follow.
    options.limit = Some(limit as usize + 1);
    Ok(Read {
        query: parse_query(p.query.as_deref())?,
        stream,
        options,
        limit: limit as usize,
    })
}

/// `GET /api/events`: a page of a query or a stream.
pub(crate) async fn query(
    State(state): State<Arc<AppState>>,
    params: Result<Query<Params>, QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    blocking(move || {
        let store = &state.store;
        let head = store.engine().head();
        let read = plan(params, head, store)?;
        let events = match &read.stream {
            Some(name) => store.events().read_stream(name, read.options)?,
            None => store.events().read(&read.query, read.options)?,
        };
        let mut out: Vec<Box<RawValue>> = Vec::new();
        let mut more = false;
        let mut bytes = 0;
        for event in events {
            let event = event?;
            if out.len() == read.limit {
                more = true;
                break;
            }
            let json = event_json(&event)?;
            bytes += json.get().len();
            if !out.is_empty() && bytes > PAGE_BYTES {
                more = true;
                break;
            }
            out.push(json);
        }
        Ok(Json(Page {
            events: out,
            more,
            head,
            query: match read.stream {
                None => Some(
                    serde_json::value::to_raw_value(&query_json(&read.query))
                        .map_err(|e| ApiError::Internal(e.to_string()))?,
                ),
                Some(_) => None,
            },
        }))
    })
    .await
}

/// `GET /api/events/{position}`: the event at a position.
pub(crate) async fn at_position(
    State(state): State<Arc<AppState>>,
    Path(position): Path<String>,
) -> Result<Json<Box<RawValue>>, ApiError> {
    let position = number("position", Some(&position))?.unwrap_or(0);
    blocking(move || {
        let store = &state.store;
        let head = store.engine().head();
        if position == 0 || position > head {
            return Err(ApiError::BadRequest(format!(
                "unknown position {position}: positions run from 1 to the head, {head}"
            )));
        }
        let found = store
            .events()
            .read(
                &gesta::Query::all(),
                ReadOptions::forwards().start(position - 1).limit(1),
            )?
            .next()
            .transpose()?;
        match found {
            Some(event) if event.position == position => Ok(Json(event_json(&event)?)),
            _ => Err(ApiError::NotFound(format!(
                "no event at position {position}"
            ))),
        }
    })
    .await
}

/// `GET /api/ids/{id}`: the event with an id (a UUID).
pub(crate) async fn by_id(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Box<RawValue>>, ApiError> {
    let uuid = gesta_json::parse_id(id.trim())
        .map_err(|e| ApiError::BadRequest(format!("malformed id: {e}")))?;
    blocking(move || match state.store.events().event_by_id(uuid)? {
        Some(event) => Ok(Json(event_json(&event)?)),
        None => Err(ApiError::NotFound(format!("no event has the id {id}"))),
    })
    .await
}
