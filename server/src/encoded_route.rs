//! The routes of `umadb.v1.DCB/Read` and `Subscribe`: served with
//! [`EncodedCodec`], whose responses are encoded straight from the events
//! (see `wire`), in front of the generated service, which serves every
//! other method (and whose own `Read` and `Subscribe` decode the same
//! responses).

use std::future::Future;
use std::sync::Arc;

use tonic::body::Body;
use tonic::codegen::{Body as HttpBody, BoxFuture, Context, Poll, Service, StdError, http};
use tonic::server::{Grpc, NamedService, ServerStreamingService};

use crate::proto::v1;
use crate::proto::v1::dcb_server::DcbServer;
use crate::service::{Boxed, Dcb};
use crate::wire::{EncodedCodec, EncodedRead};

const READ_PATH: &str = "/umadb.v1.DCB/Read";
const SUBSCRIBE_PATH: &str = "/umadb.v1.DCB/Subscribe";

/// The DCB service with its `Read` served as [`Dcb::read_encoded`] and
/// its `Subscribe` as [`Dcb::subscribe_encoded`].
#[derive(Clone)]
pub(crate) struct EncodedRoute {
    dcb: Arc<Dcb>,
    service: DcbServer<Dcb>,
    /// The largest request and response, as the generated service has
    /// them.
    max_message_bytes: usize,
}

impl EncodedRoute {
    /// `dcb` served with messages of at most `max_message_bytes` each way.
    pub(crate) fn new(dcb: Dcb, max_message_bytes: usize) -> EncodedRoute {
        let dcb = Arc::new(dcb);
        let service = DcbServer::from_arc(Arc::clone(&dcb))
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes);
        EncodedRoute {
            dcb,
            service,
            max_message_bytes,
        }
    }

    /// Serves `request` with the server-streaming `method` over
    /// [`EncodedCodec`].
    fn streaming<Req, M, B>(
        &self,
        method: M,
        request: http::Request<B>,
    ) -> BoxFuture<http::Response<Body>, std::convert::Infallible>
    where
        Req: prost::Message + Default + Send + 'static,
        M: ServerStreamingService<Req, Response = EncodedRead> + Send + 'static,
        M::ResponseStream: Send + 'static,
        M::Future: Send,
        B: HttpBody + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        let max = Some(self.max_message_bytes);
        let mut grpc =
            Grpc::new(EncodedCodec::<Req>::default()).apply_max_message_size_config(max, max);
        Box::pin(async move { Ok(grpc.server_streaming(method, request).await) })
    }
}

/// A server-streaming method of [`Dcb`] whose responses are encoded.
struct Encoded<F>(Arc<Dcb>, F);

impl<Req, F, Fut> ServerStreamingService<Req> for Encoded<F>
where
    Req: Send + 'static,
    F: Fn(Arc<Dcb>, tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Boxed<EncodedRead>>, tonic::Status>>
        + Send
        + 'static,
{
    type Response = EncodedRead;
    type ResponseStream = Boxed<EncodedRead>;
    type Future = BoxFuture<tonic::Response<Self::ResponseStream>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Req>) -> Self::Future {
        Box::pin((self.1)(Arc::clone(&self.0), request))
    }
}

impl<B> Service<http::Request<B>> for EncodedRoute
where
    B: HttpBody + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<http::Request<B>>::poll_ready(&mut self.service, cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let dcb = Arc::clone(&self.dcb);
        match request.uri().path() {
            READ_PATH => self.streaming::<v1::ReadRequest, _, _>(
                Encoded(
                    dcb,
                    |dcb: Arc<Dcb>, r| async move { dcb.read_encoded(r).await },
                ),
                request,
            ),
            SUBSCRIBE_PATH => self.streaming::<v1::SubscribeRequest, _, _>(
                Encoded(dcb, |dcb: Arc<Dcb>, r| async move {
                    dcb.subscribe_encoded(r).await
                }),
                request,
            ),
            _ => self.service.call(request),
        }
    }
}

impl NamedService for EncodedRoute {
    const NAME: &'static str = crate::SERVICE_NAME;
}
