//! How a failed call answers: an HTTP status and a JSON body
//! `{"error": "<kind>", "message": "<what went wrong>"}`, the kind one of
//! `bad_request`, `not_found`, `unauthorized`, `read_only`, `conflict`,
//! `unavailable`, `internal`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A failed call.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// The request is malformed or names what cannot be (400).
    BadRequest(String),
    /// Nothing there (404).
    NotFound(String),
    /// The API key is missing or wrong (401).
    Unauthorized,
    /// A write to a read-only console (403).
    ReadOnly,
    /// A request naming another host than this machine to a console
    /// without a key (403): a page of another site that rebound its name
    /// to this address.
    ForeignHost,
    /// An append's condition, expected revision or ids conflict (409).
    Conflict(String),
    /// The store is closed or refuses appends (503).
    Unavailable(String),
    /// Anything else (500).
    Internal(String),
}

impl From<gesta::Error> for ApiError {
    fn from(e: gesta::Error) -> Self {
        use gesta::Error as E;
        let message = e.to_string();
        match e {
            E::InvalidInput { .. } => ApiError::BadRequest(message),
            E::ConditionFailed { .. }
            | E::WrongExpectedRevision { .. }
            | E::DuplicateEventId { .. }
            | E::TrackingConflict { .. } => ApiError::Conflict(message),
            E::Closed | E::Poisoned => ApiError::Unavailable(message),
            _ => ApiError::Internal(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong API key (send Authorization: Bearer KEY)".to_owned(),
            ),
            ApiError::ReadOnly => (
                StatusCode::FORBIDDEN,
                "read_only",
                "this console is read-only: writes need a console started with \
                 --allow-writes and --api-key-file"
                    .to_owned(),
            ),
            ApiError::ForeignHost => (
                StatusCode::FORBIDDEN,
                "foreign_host",
                "a console without an API key answers requests for localhost or a loopback \
                 address only (Host), so that no other site's page can reach it through its \
                 own name; start it with --api-key-file to serve other names"
                    .to_owned(),
            ),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", m),
            ApiError::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", m),
        };
        (
            status,
            Json(serde_json::json!({ "error": kind, "message": message })),
        )
            .into_response()
    }
}
