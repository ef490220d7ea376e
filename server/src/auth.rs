//! The API key check, run on every call of both services before it is
//! decoded.

use tonic::{Request, Status};

use crate::convert::status;
use crate::proto::v1::error_response::ErrorType;

/// Admits calls carrying `authorization: Bearer <key>` (everything when no
/// key is configured).
#[derive(Clone)]
pub(crate) struct ApiKey {
    expected: Option<Vec<u8>>,
    /// The refusal, in the details the service's clients decode.
    refusal: fn() -> Status,
}

impl ApiKey {
    /// The check of the DCB service, refusing with UmaDB's details.
    pub(crate) fn new(key: Option<String>) -> ApiKey {
        ApiKey::refusing_with(key, || {
            status(
                tonic::Code::Unauthenticated,
                ErrorType::Authentication,
                "missing or invalid API key".into(),
            )
        })
    }

    /// The check, refusing with `refusal`'s status.
    pub(crate) fn refusing_with(key: Option<String>, refusal: fn() -> Status) -> ApiKey {
        ApiKey {
            expected: key.map(|k| format!("Bearer {k}").into_bytes()),
            refusal,
        }
    }
}

/// Compares without stopping at the first difference, so that the time a
/// refusal takes says nothing about how much of the key was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl tonic::service::Interceptor for ApiKey {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        match request.metadata().get("authorization") {
            Some(given) if same(given.as_bytes(), expected) => Ok(request),
            _ => Err((self.refusal)()),
        }
    }
}
