//! The routes of the methods answered with encoded responses (see
//! `encoded`): `umadb.v1.DCB/Read` and `Subscribe`, `gesta.v1.Gesta/Read`,
//! `ReadStream`, `Subscribe` and `SubscribeDurable`. Each is served with
//! [`EncodedCodec`] in front of its service's generated server, which
//! serves every other method (and whose own versions of these decode the
//! same responses).

use std::future::Future;
use std::sync::Arc;

use tonic::body::Body;
use tonic::codegen::{Body as HttpBody, BoxFuture, Context, Poll, Service, StdError, http};
use tonic::server::{Grpc, NamedService, ServerStreamingService};

use crate::encoded::{Boxed, EncodedCodec, EncodedResponse};
use crate::gesta_v1::Gesta;
use crate::proto::gesta_v1 as g;
use crate::proto::v1;
use crate::service::Dcb;

/// How a request to a method answered encoded is served.
pub(crate) type Serve<T, B> = fn(
    Method<'_, T>,
    http::Request<B>,
) -> BoxFuture<http::Response<Body>, std::convert::Infallible>;

/// A service some of whose server-streaming methods answer encoded
/// responses.
pub(crate) trait Encodes: Send + Sync + Sized + 'static {
    /// How a request to `path` is served, if it names one of those
    /// methods.
    fn route<B>(path: &str) -> Option<Serve<Self, B>>
    where
        B: HttpBody + Send + 'static,
        B::Error: Into<StdError> + Send + 'static;
}

/// What an [`Encodes::route`] serves a request with: the service and the
/// message size limit.
pub(crate) struct Method<'a, T> {
    inner: &'a Arc<T>,
    max_message_bytes: usize,
}

impl<T: Send + Sync + 'static> Method<'_, T> {
    /// Serves `request` with `answer`, a server-streaming method of `T`
    /// whose requests are `Req`, over [`EncodedCodec`].
    pub(crate) fn serve<Req, F, Fut, B>(
        &self,
        answer: F,
        request: http::Request<B>,
    ) -> BoxFuture<http::Response<Body>, std::convert::Infallible>
    where
        Req: prost::Message + Default + Send + 'static,
        F: Fn(Arc<T>, tonic::Request<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<tonic::Response<Boxed<EncodedResponse>>, tonic::Status>>
            + Send
            + 'static,
        B: HttpBody + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        let max = Some(self.max_message_bytes);
        let mut grpc =
            Grpc::new(EncodedCodec::<Req>::default()).apply_max_message_size_config(max, max);
        let method = Encoded(Arc::clone(self.inner), answer);
        Box::pin(async move { Ok(grpc.server_streaming(method, request).await) })
    }
}

/// A server-streaming method of `T` whose responses are encoded.
struct Encoded<T, F>(Arc<T>, F);

impl<T, Req, F, Fut> ServerStreamingService<Req> for Encoded<T, F>
where
    T: Send + Sync + 'static,
    Req: Send + 'static,
    F: Fn(Arc<T>, tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Boxed<EncodedResponse>>, tonic::Status>>
        + Send
        + 'static,
{
    type Response = EncodedResponse;
    type ResponseStream = Boxed<EncodedResponse>;
    type Future = BoxFuture<tonic::Response<Self::ResponseStream>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Req>) -> Self::Future {
        Box::pin((self.1)(Arc::clone(&self.0), request))
    }
}

/// `T`'s generated server `S` with the methods `T` answers encoded routed
/// past it.
pub(crate) struct EncodedRoute<T, S> {
    inner: Arc<T>,
    service: S,
    /// The largest request and response, as the generated server has
    /// them.
    max_message_bytes: usize,
}

impl<T, S: Clone> Clone for EncodedRoute<T, S> {
    fn clone(&self) -> Self {
        EncodedRoute {
            inner: Arc::clone(&self.inner),
            service: self.service.clone(),
            max_message_bytes: self.max_message_bytes,
        }
    }
}

impl<T, S> EncodedRoute<T, S> {
    /// `inner` served with messages of at most `max_message_bytes` each
    /// way, its other methods by the generated server `server` makes.
    pub(crate) fn new(
        inner: T,
        server: impl FnOnce(Arc<T>) -> S,
        max_message_bytes: usize,
    ) -> EncodedRoute<T, S> {
        let inner = Arc::new(inner);
        let service = server(Arc::clone(&inner));
        EncodedRoute {
            inner,
            service,
            max_message_bytes,
        }
    }
}

impl<T, S, B> Service<http::Request<B>> for EncodedRoute<T, S>
where
    T: Encodes,
    S: Service<
            http::Request<B>,
            Response = http::Response<Body>,
            Error = std::convert::Infallible,
            Future = BoxFuture<http::Response<Body>, std::convert::Infallible>,
        >,
    B: HttpBody + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = Method {
            inner: &self.inner,
            max_message_bytes: self.max_message_bytes,
        };
        match T::route::<B>(request.uri().path()) {
            Some(serve) => serve(method, request),
            None => self.service.call(request),
        }
    }
}

impl<T, S: NamedService> NamedService for EncodedRoute<T, S> {
    const NAME: &'static str = S::NAME;
}

impl Encodes for Dcb {
    fn route<B>(path: &str) -> Option<Serve<Dcb, B>>
    where
        B: HttpBody + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        Some(match path {
            "/umadb.v1.DCB/Read" => |method, request| {
                method.serve(
                    |dcb: Arc<Dcb>, r: tonic::Request<v1::ReadRequest>| async move {
                        dcb.read_encoded(r).await
                    },
                    request,
                )
            },
            "/umadb.v1.DCB/Subscribe" => |method, request| {
                method.serve(
                    |dcb: Arc<Dcb>, r: tonic::Request<v1::SubscribeRequest>| async move {
                        dcb.subscribe_encoded(r).await
                    },
                    request,
                )
            },
            _ => return None,
        })
    }
}

impl Encodes for Gesta {
    fn route<B>(path: &str) -> Option<Serve<Gesta, B>>
    where
        B: HttpBody + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        Some(match path {
            "/gesta.v1.Gesta/Read" => |method, request| {
                method.serve(
                    |gesta: Arc<Gesta>, r: tonic::Request<g::ReadRequest>| async move {
                        gesta.read_encoded(r).await
                    },
                    request,
                )
            },
            "/gesta.v1.Gesta/ReadStream" => |method, request| {
                method.serve(
                    |gesta: Arc<Gesta>, r: tonic::Request<g::ReadStreamRequest>| async move {
                        gesta.read_stream_encoded(r).await
                    },
                    request,
                )
            },
            "/gesta.v1.Gesta/Subscribe" => |method, request| {
                method.serve(
                    |gesta: Arc<Gesta>, r: tonic::Request<g::SubscribeRequest>| async move {
                        gesta.subscribe_encoded(r).await
                    },
                    request,
                )
            },
            "/gesta.v1.Gesta/SubscribeDurable" => |method, request| {
                method.serve(
                    |gesta: Arc<Gesta>, r: tonic::Request<g::SubscribeDurableRequest>| async move {
                        gesta.subscribe_durable_encoded(r).await
                    },
                    request,
                )
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The methods answered encoded, by the paths their generated servers
    /// route (a path spelled otherwise here would quietly fall through to
    /// the generated server's decoded answers).
    #[test]
    fn the_encoded_methods_are_the_generated_servers_paths() {
        let generated = |source: &str, path: &str| source.contains(&format!("\"{path}\" => {{"));
        let dcb = include_str!("proto/umadb.v1.rs");
        for method in ["Read", "Subscribe"] {
            let path = format!("/umadb.v1.DCB/{method}");
            assert!(generated(dcb, &path), "{path}");
            assert!(Dcb::route::<Body>(&path).is_some(), "{path}");
        }
        let gesta = include_str!("proto/gesta.v1.rs");
        for method in ["Read", "ReadStream", "Subscribe", "SubscribeDurable"] {
            let path = format!("/gesta.v1.Gesta/{method}");
            assert!(generated(gesta, &path), "{path}");
            assert!(Gesta::route::<Body>(&path).is_some(), "{path}");
        }
        // Every other method is the generated server's.
        for path in [
            "/umadb.v1.DCB/Append",
            "/umadb.v1.DCB/Head",
            "/gesta.v1.Gesta/Append",
            "/gesta.v1.Gesta/ReadStreamLast",
            "/gesta.v1.Gesta/EventById",
        ] {
            assert!(Dcb::route::<Body>(path).is_none(), "{path}");
            assert!(Gesta::route::<Body>(path).is_none(), "{path}");
        }
    }
}
