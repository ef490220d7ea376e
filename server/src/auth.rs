//! The API key check, run on every DCB call before it is decoded.

use tonic::{Request, Status};

use crate::convert::status;
use crate::proto::v1::error_response::ErrorType;

/// Admits calls carrying `authorization: Bearer <key>` (everything when no
/// key is configured).
#[derive(Clone)]
pub(crate) struct ApiKey {
    expected: Option<Vec<u8>>,
}

impl ApiKey {
    pub(crate) fn new(key: Option<String>) -> ApiKey {
        ApiKey {
            expected: key.map(|k| format!("Bearer {k}").into_bytes()),
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
            _ => Err(status(
                tonic::Code::Unauthenticated,
                ErrorType::Authentication,
                "missing or invalid API key".into(),
            )),
        }
    }
}
