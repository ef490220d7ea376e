//! The route of `umadb.v1.DCB/Read`: served with [`ReadCodec`], whose
//! responses are encoded straight from lent events (see `wire`), in front
//! of the generated service, which serves every other method (and whose
//! own `Read` decodes the same responses).

use std::sync::Arc;

use tonic::body::Body;
use tonic::codegen::{Body as HttpBody, BoxFuture, Context, Poll, Service, StdError, http};
use tonic::server::{Grpc, NamedService, ServerStreamingService};

use crate::proto::v1;
use crate::proto::v1::dcb_server::DcbServer;
use crate::service::{Boxed, Dcb};
use crate::wire::{EncodedRead, ReadCodec};

/// The method's path.
const READ_PATH: &str = "/umadb.v1.DCB/Read";

/// The DCB service with its `Read` served as [`Dcb::read_encoded`].
#[derive(Clone)]
pub(crate) struct ReadRoute {
    dcb: Arc<Dcb>,
    service: DcbServer<Dcb>,
    /// The largest request and response, as the generated service has
    /// them.
    max_decoding: usize,
    max_encoding: usize,
}

impl ReadRoute {
    /// `dcb` served with messages of at most `max_message_bytes` each way.
    pub(crate) fn new(dcb: Dcb, max_message_bytes: usize) -> ReadRoute {
        let dcb = Arc::new(dcb);
        let service = DcbServer::from_arc(Arc::clone(&dcb))
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes);
        ReadRoute {
            dcb,
            service,
            max_decoding: max_message_bytes,
            max_encoding: max_message_bytes,
        }
    }
}

/// `Read` as a server-streaming method over [`ReadCodec`].
struct Read(Arc<Dcb>);

impl ServerStreamingService<v1::ReadRequest> for Read {
    type Response = EncodedRead;
    type ResponseStream = Boxed<EncodedRead>;
    type Future = BoxFuture<tonic::Response<Self::ResponseStream>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<v1::ReadRequest>) -> Self::Future {
        let dcb = Arc::clone(&self.0);
        Box::pin(async move { dcb.read_encoded(request).await })
    }
}

impl<B> Service<http::Request<B>> for ReadRoute
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
        if request.uri().path() != READ_PATH {
            return self.service.call(request);
        }
        let method = Read(Arc::clone(&self.dcb));
        let mut grpc = Grpc::new(ReadCodec)
            .apply_max_message_size_config(Some(self.max_decoding), Some(self.max_encoding));
        Box::pin(async move { Ok(grpc.server_streaming(method, request).await) })
    }
}

impl NamedService for ReadRoute {
    const NAME: &'static str = crate::SERVICE_NAME;
}
