//! How each service says that a call reaches no store: the one thing
//! tenancy, shared by both services, needs from their protocols.

use gesta::tenants::TenantError;
use tonic::Status;

/// How a service says that a call reaches no store, or may not append to
/// it: statuses with the details its clients decode (UmaDB's
/// `ErrorResponse` on `umadb.v1.DCB`, `gesta.v1`'s `ErrorDetail`), so that
/// tenancy names neither protocol.
pub(crate) trait Wording: 'static {
    /// A call that names no tenant (its key is missing or wrong).
    fn unauthenticated() -> Status;
    /// What the tenants refused: an unknown tenant, every open store in
    /// use, a quota; a store that failed to open as an engine error.
    fn tenant(e: TenantError) -> Status;
    /// The task that opened a tenant's store failed.
    fn internal(reason: String) -> Status;
}
