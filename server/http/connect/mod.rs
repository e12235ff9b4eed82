//! The Connect protocol for `witness.v1.WitnessService` (DESIGN §7): a small
//! adapter that decodes the HTTP request into the prost message, builds a
//! `tonic::Request` whose metadata are the HTTP headers (bearer token,
//! dev-mode identity headers), and calls the same `GrpcApi` handler as gRPC,
//! so every RPC has one implementation, one identity check and one rate
//! limit. `WitnessEndpoint` serves the service's path and picks gRPC or
//! Connect by content type.

pub mod bridge;
pub mod wire;

use crate::api::encoded::EncodedStreams;
use crate::api::GrpcApi;
use crate::proto::witness_service_server::{WitnessService, WitnessServiceServer};
use bytes::Bytes;
use futures::{future::BoxFuture, Stream, StreamExt};
use http_body_util::BodyExt;
use prost_reflect::{DescriptorPool, MethodDescriptor};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::body::Body;
use tonic::{Code, Status};
use wire::{Codec, ConnectError, Protocol};

type HttpResponse = http::Response<Body>;

/// Serves `/witness.v1.WitnessService/*`: gRPC (`application/grpc*`, and
/// gRPC-Web once tonic-web has translated it) goes to tonic, the Connect
/// content types to the adapter.
#[derive(Debug, Clone)]
pub struct WitnessEndpoint {
    grpc: WitnessServiceServer<GrpcApi>,
    /// gRPC's two streaming methods, with each event encoded once.
    encoded: EncodedStreams,
    /// None: this listener serves gRPC only (`[http] listen` moved HTTP away).
    connect: Option<Arc<Connect>>,
}

impl WitnessEndpoint {
    pub fn new(api: GrpcApi, max_message_bytes: usize, connect: bool) -> Result<Self, String> {
        let grpc =
            WitnessServiceServer::new(api.clone()).max_decoding_message_size(max_message_bytes);
        let encoded = EncodedStreams::new(api.clone(), max_message_bytes);
        let connect = if connect {
            Some(Arc::new(Connect::new(api, max_message_bytes)?))
        } else {
            None
        };
        Ok(WitnessEndpoint {
            grpc,
            encoded,
            connect,
        })
    }
}

impl tonic::server::NamedService for WitnessEndpoint {
    const NAME: &'static str = "witness.v1.WitnessService";
}

impl tower::Service<http::Request<Body>> for WitnessEndpoint {
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<HttpResponse, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The generated server is always ready; it is cloned per call below.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let grpc = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/grpc"));
        match (&self.connect, grpc) {
            (Some(connect), false) => {
                let connect = connect.clone();
                Box::pin(async move { Ok(connect.handle(req).await) })
            }
            (None, false) => Box::pin(async { Ok(http_elsewhere()) }),
            _ if EncodedStreams::serves(req.uri().path()) => {
                let encoded = self.encoded.clone();
                Box::pin(async move { Ok(encoded.call(req).await) })
            }
            _ => {
                let mut svc = self.grpc.clone();
                Box::pin(async move { tower::Service::call(&mut svc, req).await })
            }
        }
    }
}

/// A refusal sent before the body is read, in the Connect shape of the
/// request's content type (None when it is not a Connect one).
pub fn refusal(
    content_type: &str,
    status: http::StatusCode,
    message: &str,
) -> Option<HttpResponse> {
    let protocol = Protocol::from_content_type(content_type)?;
    let code = match status {
        http::StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        _ => Code::PermissionDenied,
    };
    Some(error_response(protocol, &ConnectError::new(code, message)))
}

/// What a gRPC-only listener answers to HTTP requests.
pub fn http_elsewhere() -> HttpResponse {
    plain(
        http::StatusCode::NOT_FOUND,
        "this port serves gRPC only; HTTP (Connect, gRPC-Web, /healthz) is on [http] listen\n",
    )
}

/// The Connect adapter over the gRPC handlers.
#[derive(Debug)]
pub struct Connect {
    api: GrpcApi,
    methods: HashMap<String, MethodDescriptor>,
    max_message_bytes: usize,
}

impl Connect {
    pub fn new(api: GrpcApi, max_message_bytes: usize) -> Result<Self, String> {
        let pool = DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET)
            .map_err(|e| format!("connect: descriptors: {e}"))?;
        let service = pool
            .get_service_by_name("witness.v1.WitnessService")
            .ok_or("connect: witness.v1.WitnessService is not in the descriptor set")?;
        let methods = service
            .methods()
            .map(|m| (m.name().to_string(), m))
            .collect();
        Ok(Connect {
            api,
            methods,
            max_message_bytes,
        })
    }

    /// Answers one Connect request; never fails at the HTTP level.
    pub async fn handle(&self, req: http::Request<Body>) -> HttpResponse {
        let ct = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let Some(protocol) = Protocol::from_content_type(ct) else {
            return plain(
                http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "witness.v1.WitnessService speaks gRPC (application/grpc), gRPC-Web \
                 (application/grpc-web) and Connect (application/json, application/proto, \
                 application/connect+json, application/connect+proto)\n",
            );
        };
        if req.method() != http::Method::POST {
            let mut res = plain(
                http::StatusCode::METHOD_NOT_ALLOWED,
                "Connect requests use POST\n",
            );
            res.headers_mut()
                .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
            return res;
        }
        let name = req.uri().path().rsplit('/').next().unwrap_or_default();
        let Some(method) = self.methods.get(name).cloned() else {
            let e = ConnectError::new(
                Code::Unimplemented,
                format!("witness.v1.WitnessService has no method {name:?}"),
            );
            return error_response(protocol, &e);
        };
        if method.is_server_streaming() != protocol.streaming {
            // The Connect spec: a unary content type on a streaming method
            // (or the reverse) is an unsupported media type.
            let want = if method.is_server_streaming() {
                "application/connect+json or application/connect+proto"
            } else {
                "application/json or application/proto"
            };
            return plain(
                http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("{name} takes {want}\n"),
            );
        }
        match self.call(protocol, &method, req).await {
            Ok(res) => res,
            Err(e) => {
                refused(method.name(), &e);
                error_response(protocol, &e)
            }
        }
    }

    async fn call(
        &self,
        protocol: Protocol,
        method: &MethodDescriptor,
        req: http::Request<Body>,
    ) -> Result<HttpResponse, ConnectError> {
        let (parts, body) = req.into_parts();
        check_headers(&parts.headers, protocol)?;
        let timeout = timeout(&parts.headers)?;
        let limit = self.max_message_bytes + if protocol.streaming { 5 } else { 0 };
        let body = read_body(body, limit, self.max_message_bytes).await?;
        let call = Call {
            protocol,
            method,
            headers: parts.headers,
            extensions: parts.extensions,
            body,
        };
        let api = self.api.clone();
        let fut = async move {
            match method.name() {
                "Ask" => call.unary(|r| async move { api.ask(r).await }).await,
                "Answer" => call.unary(|r| async move { api.answer(r).await }).await,
                "AckDelivery" => {
                    call.unary(|r| async move { api.ack_delivery(r).await })
                        .await
                }
                "Cancel" => call.unary(|r| async move { api.cancel(r).await }).await,
                "ReportContext" => {
                    call.unary(|r| async move { api.report_context(r).await })
                        .await
                }
                "GetDecision" => {
                    call.unary(|r| async move { api.get_decision(r).await })
                        .await
                }
                "ListDecisions" => {
                    call.unary(|r| async move { api.list_decisions(r).await })
                        .await
                }
                "StreamDecisions" => {
                    call.stream(|r| async move { api.stream_decisions(r).await })
                        .await
                }
                "WatchDecision" => {
                    call.stream(|r| async move { api.watch_decision(r).await })
                        .await
                }
                other => Err(ConnectError::new(
                    Code::Unimplemented,
                    format!("{other} is not served over Connect"),
                )),
            }
        };
        match timeout {
            // Streams run until they end; the deadline bounds unary calls.
            Some(t) if !protocol.streaming => {
                tokio::time::timeout(t, fut).await.unwrap_or_else(|_| {
                    Err(ConnectError::new(
                        Code::DeadlineExceeded,
                        format!("connect-timeout-ms: no answer within {} ms", t.as_millis()),
                    ))
                })
            }
            _ => fut.await,
        }
    }
}

/// One decoded request on its way to a handler.
struct Call<'a> {
    protocol: Protocol,
    method: &'a MethodDescriptor,
    headers: http::HeaderMap,
    /// The guard's (the authenticated principal among them).
    extensions: http::Extensions,
    body: Bytes,
}

impl Call<'_> {
    fn request<T: prost::Message + Default>(&self) -> Result<tonic::Request<T>, ConnectError> {
        let payload = if self.protocol.streaming {
            wire::unenvelope(&self.body)?
        } else {
            &self.body[..]
        };
        let msg = wire::decode::<T>(self.protocol.codec, &self.method.input(), payload)?;
        Ok(tonic::Request::from_parts(
            tonic::metadata::MetadataMap::from_headers(self.headers.clone()),
            self.extensions.clone(),
            msg,
        ))
    }

    async fn unary<Req, Res, F, Fut>(self, handler: F) -> Result<HttpResponse, ConnectError>
    where
        Req: prost::Message + Default,
        Res: prost::Message,
        F: FnOnce(tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Res>, Status>>,
    {
        let res = handler(self.request()?).await?;
        let body = wire::encode(self.protocol.codec, &self.method.output(), res.get_ref())?;
        Ok(response(
            http::StatusCode::OK,
            self.protocol.content_type(),
            body,
        ))
    }

    /// A server stream: 200 at once, then enveloped messages and an
    /// end-of-stream message that carries any error (Connect streams never
    /// report errors in the HTTP status).
    async fn stream<Req, Res, S, F, Fut>(self, handler: F) -> Result<HttpResponse, ConnectError>
    where
        Req: prost::Message + Default,
        Res: prost::Message + 'static,
        S: Stream<Item = Result<Res, Status>> + Send + 'static,
        F: FnOnce(tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<S>, Status>>,
    {
        let protocol = self.protocol;
        let frames: futures::stream::BoxStream<'static, Bytes> =
            match self.request().map(|r| (r, handler)) {
                Err(e) => futures::stream::once(async move { wire::end_stream(Some(&e)) }).boxed(),
                Ok((req, handler)) => match handler(req).await {
                    Err(s) => {
                        let e = ConnectError::from(s);
                        refused(self.method.name(), &e);
                        futures::stream::once(async move { wire::end_stream(Some(&e)) }).boxed()
                    }
                    Ok(res) => {
                        let desc = self.method.output();
                        messages(res.into_inner(), protocol.codec, desc).boxed()
                    }
                },
            };
        let body = http_body_util::StreamBody::new(
            frames.map(|b| Ok::<_, Infallible>(http_body::Frame::data(b))),
        );
        Ok(http::Response::builder()
            .status(http::StatusCode::OK)
            .header(http::header::CONTENT_TYPE, protocol.content_type())
            .body(Body::new(body))
            .unwrap_or_default())
    }
}

/// Enveloped messages until the handler's stream ends or fails, then the
/// end-of-stream message.
fn messages<Res, S>(
    stream: S,
    codec: Codec,
    desc: prost_reflect::MessageDescriptor,
) -> impl Stream<Item = Bytes> + Send + 'static
where
    Res: prost::Message + 'static,
    S: Stream<Item = Result<Res, Status>> + Send + 'static,
{
    async_stream::stream! {
        futures::pin_mut!(stream);
        let mut failed = None;
        while let Some(item) = stream.next().await {
            match item.map_err(ConnectError::from).and_then(|m| wire::encode(codec, &desc, &m)) {
                Ok(payload) => yield wire::envelope(0, &payload),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        yield wire::end_stream(failed.as_ref());
    }
}

/// Refuses protocol versions and encodings witness does not speak.
fn check_headers(h: &http::HeaderMap, protocol: Protocol) -> Result<(), ConnectError> {
    if let Some(v) = h.get("connect-protocol-version") {
        if v != "1" {
            return Err(ConnectError::invalid(
                "connect-protocol-version: witness speaks Connect protocol version 1",
            ));
        }
    }
    let encoding = if protocol.streaming {
        "connect-content-encoding"
    } else {
        "content-encoding"
    };
    if let Some(v) = h.get(encoding) {
        if v != "identity" {
            return Err(ConnectError::new(
                Code::Unimplemented,
                format!("{encoding}: only identity (uncompressed) requests are supported"),
            ));
        }
    }
    Ok(())
}

/// `connect-timeout-ms`, when given.
fn timeout(h: &http::HeaderMap) -> Result<Option<Duration>, ConnectError> {
    let Some(v) = h.get("connect-timeout-ms") else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .filter(|s| s.len() <= 10)
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(|ms| Some(Duration::from_millis(ms)))
        .ok_or_else(|| {
            ConnectError::invalid(
                "connect-timeout-ms: must be a positive integer of at most 10 digits",
            )
        })
}

/// The whole body, refused past the message limit.
async fn read_body(
    body: Body,
    limit: usize,
    max_message_bytes: usize,
) -> Result<Bytes, ConnectError> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ConnectError::new(
            Code::ResourceExhausted,
            format!("request body: larger than max_message_bytes ({max_message_bytes} bytes)"),
        )),
        Err(e) if crate::guard::is_body_timeout(e.as_ref()) => {
            Err(ConnectError::new(Code::DeadlineExceeded, e.to_string()))
        }
        Err(e) => Err(ConnectError::new(
            Code::Cancelled,
            format!("request body: {e}"),
        )),
    }
}

/// Counts and logs a refused Connect request as the gRPC layer does.
fn refused(rpc: &str, e: &ConnectError) {
    let code = crate::metrics::CODES
        .get(e.code as usize)
        .copied()
        .unwrap_or("UNKNOWN");
    crate::metrics::refused(rpc, code, &e.message);
}

/// A Connect error: JSON with the mapped HTTP status for unary calls, an
/// end-of-stream message under 200 for streaming ones.
fn error_response(protocol: Protocol, e: &ConnectError) -> HttpResponse {
    if protocol.streaming {
        response(
            http::StatusCode::OK,
            protocol.content_type(),
            wire::end_stream(Some(e)),
        )
    } else {
        response(
            e.http_status(),
            "application/json",
            Bytes::from(e.to_json().to_string()),
        )
    }
}

fn response(status: http::StatusCode, content_type: &'static str, body: Bytes) -> HttpResponse {
    let mut res = http::Response::new(Body::new(http_body_util::Full::new(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    res
}

fn plain(status: http::StatusCode, text: &str) -> HttpResponse {
    response(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(text.to_string()),
    )
}
