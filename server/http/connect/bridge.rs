//! Server reflection over the Connect protocol, so `buf curl` (Connect by
//! default) resolves witness's schema without `--schema`. Reflection is a
//! bidirectional stream that buf drives half-duplex (one request, then the
//! response), which Connect carries over HTTP/1.1 too. A Connect streaming
//! body and a gRPC body share one framing (a flag byte and a length before
//! each message), so the bridge hands the body to tonic's own reflection
//! service as gRPC and turns its answer back: the same messages, then the
//! gRPC status as Connect's end-of-stream message.

use super::wire::{end_stream, ConnectError, Protocol};
use futures::future::BoxFuture;
use futures::StreamExt;
use http_body_util::BodyExt;
use std::convert::Infallible;
use std::task::{Context, Poll};
use tonic::body::Body;

/// Wraps a gRPC service (reflection) to also answer `application/connect+proto`.
#[derive(Debug, Clone)]
pub struct ConnectBridge<S> {
    inner: S,
}

impl<S> ConnectBridge<S> {
    pub fn new(inner: S) -> Self {
        ConnectBridge { inner }
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for ConnectBridge<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<http::Request<Body>> for ConnectBridge<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        let ct = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let protocol = Protocol::from_content_type(ct).filter(|p| p.streaming);
        let Some(protocol) = protocol else {
            return Box::pin(self.inner.call(req));
        };
        if protocol.content_type() != "application/connect+proto" {
            return Box::pin(async {
                Ok(super::plain(
                    http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "server reflection over Connect takes application/connect+proto\n",
                ))
            });
        }
        let h = req.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc+proto"),
        );
        h.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await?;
            Ok(to_connect(res))
        })
    }
}

/// A gRPC response as a Connect streaming response: 200, the messages as
/// they are, and the status (from the trailers, or the headers of a
/// trailers-only reply) as the end-of-stream message.
fn to_connect(res: http::Response<Body>) -> http::Response<Body> {
    let (parts, mut body) = res.into_parts();
    let early = tonic::Status::from_header_map(&parts.headers);
    let frames = async_stream::stream! {
        if let Some(status) = early {
            yield end_of(status);
            return;
        }
        loop {
            match body.frame().await {
                None => {
                    yield end_stream(None);
                    return;
                }
                Some(Err(status)) => {
                    yield end_of(status);
                    return;
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => yield data,
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            let status = tonic::Status::from_header_map(&trailers)
                                .unwrap_or_else(|| tonic::Status::unknown("no grpc-status"));
                            yield end_of(status);
                            return;
                        }
                    }
                },
            }
        }
    };
    let body = http_body_util::StreamBody::new(
        frames.map(|b| Ok::<_, Infallible>(http_body::Frame::data(b))),
    );
    http::Response::builder()
        .status(http::StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/connect+proto")
        .body(Body::new(body))
        .unwrap_or_default()
}

fn end_of(status: tonic::Status) -> bytes::Bytes {
    if status.code() == tonic::Code::Ok {
        end_stream(None)
    } else {
        end_stream(Some(&ConnectError::from(status)))
    }
}
