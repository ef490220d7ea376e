//! The API key check, run on every call of both services before it is
//! decoded.

use std::sync::Arc;

use tonic::{Request, Status};

use crate::tenancy::{Tenant, TenantKeys};

use crate::convert::UmaWording;
use crate::wording::Wording;

/// A tenant key's `authorization` value and its tenant.
type Bearer = (Vec<u8>, Arc<str>);

/// Admits calls carrying `authorization: Bearer <key>` (everything when no
/// key is configured); with tenants, a call whose key is one of theirs, and
/// marks it with that key's tenant.
#[derive(Clone)]
pub(crate) struct ApiKey {
    expected: Option<Vec<u8>>,
    /// With tenants: every tenant key's header value and its tenant.
    tenants: Option<Arc<Vec<Bearer>>>,
    /// The refusal, in the details the service's clients decode.
    refusal: fn() -> Status,
}

impl ApiKey {
    /// The check of the DCB service, refusing with UmaDB's details.
    pub(crate) fn new(key: Option<String>) -> ApiKey {
        ApiKey::refusing_with(key, UmaWording::unauthenticated)
    }

    /// The check, refusing with `refusal`'s status.
    pub(crate) fn refusing_with(key: Option<String>, refusal: fn() -> Status) -> ApiKey {
        ApiKey {
            expected: key.map(|k| format!("Bearer {k}").into_bytes()),
            tenants: None,
            refusal,
        }
    }

    /// The same check against tenants' keys instead.
    pub(crate) fn for_tenants(mut self, keys: &TenantKeys) -> ApiKey {
        self.expected = None;
        self.tenants = Some(Arc::new(keys.bearers()));
        self
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
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(tenants) = &self.tenants {
            let given = request
                .metadata()
                .get("authorization")
                .map(|v| v.as_bytes().to_vec())
                .unwrap_or_default();
            // Every key is compared, so that the time says nothing of
            // which one came close.
            let mut found = None;
            for (bearer, tenant) in tenants.iter() {
                if same(&given, bearer) {
                    found = Some(tenant.clone());
                }
            }
            return match found {
                Some(tenant) => {
                    request.extensions_mut().insert(Tenant(tenant));
                    Ok(request)
                }
                None => Err((self.refusal)()),
            };
        }
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        match request.metadata().get("authorization") {
            Some(given) if same(given.as_bytes(), expected) => Ok(request),
            _ => Err((self.refusal)()),
        }
    }
}
