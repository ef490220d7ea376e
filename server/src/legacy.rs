//! The service path of UmaDB's unversioned protocol before `umadb.v1`:
//! `/umadb.UmaDBService/<Method>`, which UmaDB's server still answers by
//! rewriting it to `/umadb.v1.DCB/<Method>` (the messages are the same on
//! the wire), and so does this one.

use tonic::codegen::{Context, Poll, Service, http};
use tonic::server::NamedService;

/// The legacy service name.
pub(crate) const LEGACY_NAME: &str = "umadb.UmaDBService";

/// Serves the DCB service `S` under [`LEGACY_NAME`].
#[derive(Clone)]
pub(crate) struct Legacy<S>(pub S);

impl<S, B> Service<http::Request<B>> for Legacy<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let prefix = format!("/{LEGACY_NAME}/");
        if let Some(method) = request.uri().path().strip_prefix(&prefix) {
            let path = format!("/{}/{method}", crate::SERVICE_NAME);
            let mut parts = request.uri().clone().into_parts();
            if let Ok(path) = path.parse() {
                parts.path_and_query = Some(path);
                if let Ok(uri) = http::Uri::from_parts(parts) {
                    *request.uri_mut() = uri;
                }
            }
        }
        self.0.call(request)
    }
}

impl<S> NamedService for Legacy<S> {
    const NAME: &'static str = LEGACY_NAME;
}
