//! `GET /api/lists/{streams|types|tags}`: one page of names with their
//! counts of events, filtered by a prefix, paged by the last name shown.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use gesta::Listing;
use serde::Deserialize;

use super::{ApiError, AppState, blocking, number};

/// The parameters, all optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    /// Only names starting with this.
    prefix: Option<String>,
    /// Only names after this one (the last of the previous page).
    after: Option<String>,
    /// At most this many (default 100).
    limit: Option<String>,
}

/// One page of a listing.
#[derive(serde::Serialize)]
pub(crate) struct Page {
    items: Vec<Item>,
    /// The `after` of the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

#[derive(serde::Serialize)]
struct Item {
    name: String,
    count: u64,
}

pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Path(what): Path<String>,
    params: Result<Query<Params>, QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let what = match what.as_str() {
        "streams" => Listing::Streams,
        "types" => Listing::Types,
        "tags" => Listing::Tags,
        other => {
            return Err(ApiError::BadRequest(format!(
                "{other:?} is not a listing: streams, types or tags"
            )));
        }
    };
    let limit = number("limit", p.limit.as_deref())?.unwrap_or(100);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    blocking(move || {
        let prefix = p.prefix.unwrap_or_default();
        let after = p.after.filter(|a| !a.is_empty());
        let listed = state
            .store
            .events()
            .list(what, &prefix, after.as_deref(), limit)?;
        let next = (listed.len() == limit)
            .then(|| listed.last().map(|l| l.name.clone()))
            .flatten();
        Ok(Json(Page {
            items: listed
                .into_iter()
                .map(|l| Item {
                    name: l.name,
                    count: l.count,
                })
                .collect(),
            next,
        }))
    })
    .await
}
