//! gRPC-Web (tonic-web) in front of every gRPC service. tonic-web's own
//! service answers 400 to any HTTP/1.1 request that is not gRPC-Web, which
//! would break `/healthz` and Connect over HTTP/1.1, so only requests with a
//! gRPC-Web content type are sent through it.

use futures::future::BoxFuture;
use std::task::{Context, Poll};
use tonic::body::Body;
use tower::ServiceExt;

/// Wraps the whole router: gRPC-Web requests through tonic-web, the rest as is.
#[derive(Debug, Clone, Default)]
pub struct GrpcWebLayer;

impl<S: Clone> tower::Layer<S> for GrpcWebLayer {
    type Service = GrpcWeb<S>;
    fn layer(&self, inner: S) -> GrpcWeb<S> {
        GrpcWeb {
            web: tonic_web::GrpcWebLayer::new().layer(inner.clone()),
            plain: inner,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcWeb<S> {
    plain: S,
    web: tonic_web::GrpcWebService<S>,
}

/// True for `application/grpc-web`, `application/grpc-web+proto`,
/// `application/grpc-web-text` and their variants.
fn is_grpc_web(req: &http::Request<Body>) -> bool {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc-web"))
}

impl<S> tower::Service<http::Request<Body>> for GrpcWeb<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<http::Response<Body>, S::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        // Each call drives a clone to readiness itself (oneshot).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        if is_grpc_web(&req) {
            Box::pin(self.web.clone().oneshot(req))
        } else {
            Box::pin(self.plain.clone().oneshot(req))
        }
    }
}
