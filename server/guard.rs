//! What every request passes before any handler reads its body, on every
//! protocol the port speaks (issue #28.1, #28.2). In order:
//!
//! 1. **Dev mode serves loopback names only.** A `Host` (or HTTP/2
//!    `:authority`) that is not `localhost` or a loopback address is refused
//!    with 403, so DNS rebinding cannot turn a page elsewhere into a caller.
//! 2. **CORS preflights** are answered for `[http] allowed_origins` only.
//! 3. **Cross-origin state changes are refused** (403): a request other than
//!    GET/HEAD/OPTIONS whose `Origin` is not the server's own, unless it
//!    carries a bearer token and its origin is allowed. Server-to-server
//!    calls send no `Origin` and pass (Slack's `POST /slack/interactions`,
//!    which its own signature authenticates; `[slack]` needs principals,
//!    so the dev-mode Host rule never applies to it).
//! 4. **RPCs authenticate before their body is read**: in token mode a
//!    `witness.v1.WitnessService` call or an `/mcp` request without a valid
//!    credential is refused from its headers alone (`/mcp` with 401 and
//!    `WWW-Authenticate: Bearer resource_metadata=…`, as MCP clients expect).
//!    (`/v1/` handlers authenticate first themselves.)
//!    The principal rides in the request's extensions, so the handler does
//!    not authenticate twice, and the connection stops counting as
//!    unauthenticated.
//! 5. **The body must arrive within `[limits] body_timeout`** of the headers,
//!    or reading it fails with DEADLINE_EXCEEDED (each protocol answers that
//!    in its own terms: gRPC status, Connect error, HTTP 408).
//! 6. **Requests in flight are counted per connection** (until the response
//!    body ends), so `[limits] idle_timeout` closes only idle connections.
//!
//! Which content type each protocol takes is its own module's rule
//! (Connect's and `/v1/`'s handlers, tonic-web), checked before they read.

use crate::accept::ConnInfo;
use crate::service::Witness;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::body::Body;
use tonic::Status;

/// Wraps the whole router (see the module documentation).
#[derive(Debug, Clone)]
pub struct GuardLayer {
    rules: Arc<Rules>,
}

#[derive(Debug)]
struct Rules {
    witness: Arc<Witness>,
    allowed_origins: Vec<String>,
    body_timeout: Duration,
    /// The listener speaks TLS (the scheme of URLs in refusals).
    tls: bool,
}

impl GuardLayer {
    pub fn new(witness: Arc<Witness>, allowed_origins: Vec<String>, tls: bool) -> GuardLayer {
        let body_timeout = witness.limits().body_timeout;
        GuardLayer {
            rules: Arc::new(Rules {
                witness,
                allowed_origins,
                body_timeout,
                tls,
            }),
        }
    }
}

impl<S> tower::Layer<S> for GuardLayer {
    type Service = Guard<S>;
    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            rules: self.rules.clone(),
        }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    rules: Arc<Rules>,
}

/// The path prefix of the RPCs that need a principal.
const RPC_PREFIX: &str = "/witness.v1.WitnessService/";

impl<S> tower::Service<Request<Body>> for Guard<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // The service that was polled ready is the one to call; a clone
        // stays behind for the next request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let rules = self.rules.clone();
        Box::pin(async move {
            // An issuer JWT whose key is not at hand yet (its first use, a
            // rotated key) fetches it here, before the checks, which are
            // then plain lookups for every protocol.
            let auth = rules.witness.auth();
            auth.prepare(req.headers()).await;
            let conn = req.extensions().get::<ConnInfo>().map(|c| c.state.clone());
            let cors = match rules.admit(&auth, &mut req) {
                Ok(cors) => cors,
                Err(refusal) => return Ok(*refusal),
            };
            drop(auth);
            if let Some(conn) = &conn {
                if req.extensions().get::<crate::auth::Principal>().is_some() {
                    conn.authenticated();
                }
            }
            let in_flight = conn.map(|c| c.request());
            let deadline = tokio::time::Instant::now() + rules.body_timeout;
            let req = req.map(|body| {
                Body::new(TimedBody {
                    inner: body,
                    deadline,
                    timer: None,
                    limit: rules.body_timeout,
                })
            });
            let mut res = inner.call(req).await?;
            if let Some(origin) = cors {
                allow_origin(res.headers_mut(), origin);
            }
            match in_flight {
                None => Ok(res),
                Some(guard) => Ok(res.map(|body| {
                    Body::new(InFlightBody {
                        inner: body,
                        _guard: guard,
                    })
                })),
            }
        })
    }
}

impl Rules {
    /// Checks 1 to 4 of the module documentation. Ok carries the origin to
    /// allow in the response (an allowed cross-origin caller); Err the
    /// refusal to send instead of calling the handler.
    fn admit(
        &self,
        auth: &crate::auth::Auth,
        req: &mut Request<Body>,
    ) -> Result<Option<HeaderValue>, Box<Response<Body>>> {
        let host = host(req);
        if auth.dev_mode() && host.as_deref().is_some_and(|h| !is_loopback_host(h)) {
            return Err(Box::new(refuse(
                req,
                StatusCode::FORBIDDEN,
                "dev mode serves loopback names only (Host must be localhost or a loopback \
                 address); configure [[principals]] to serve other names",
            )));
        }
        let origin = req.headers().get(header::ORIGIN).cloned();
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "));
        let cross = origin
            .as_ref()
            .filter(|o| !same_origin(o.to_str().unwrap_or("null"), host.as_deref()));
        let allowed = cross.filter(|o| {
            self.allowed_origins
                .iter()
                .any(|a| o.to_str().is_ok_and(|o| a.eq_ignore_ascii_case(o)))
        });
        if req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return Err(Box::new(preflight(allowed.cloned())));
        }
        let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if changes_state && cross.is_some() && !(bearer && allowed.is_some()) {
            tracing::warn!(path = %req.uri().path(), origin = ?origin, "refused a cross-origin state change");
            return Err(Box::new(refuse(
                req,
                StatusCode::FORBIDDEN,
                "cross-origin requests may not change state: Origin is not this server's \
                 (a page hosted elsewhere needs a bearer token and [http] allowed_origins)",
            )));
        }
        if req.uri().path().starts_with(RPC_PREFIX) {
            let who = auth
                .authenticate_headers(req.headers())
                .map_err(|e| Box::new(rpc_unauthenticated(req, &e.to_string())))?;
            req.extensions_mut().insert(who);
        } else if is_mcp(req.uri().path()) {
            let who = auth.authenticate_headers(req.headers()).map_err(|e| {
                let origin = crate::mcp::origin(req.headers(), host.as_deref(), self.tls);
                let mut res = plain(StatusCode::UNAUTHORIZED, &format!("{e}\n"));
                if let Ok(v) = HeaderValue::from_str(&crate::mcp::www_authenticate(&origin, bearer))
                {
                    res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                Box::new(res)
            })?;
            req.extensions_mut().insert(who);
        }
        Ok(allowed.cloned())
    }
}

/// `/mcp` (and anything under it, which MCP does not use but must not
/// slip past authentication).
fn is_mcp(path: &str) -> bool {
    path == crate::mcp::PATH
        || path
            .strip_prefix(crate::mcp::PATH)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The authority the client addressed: `:authority` on HTTP/2, `Host` on
/// HTTP/1.
fn host<B>(req: &Request<B>) -> Option<String> {
    req.uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
}

/// `localhost`, `*.localhost`, 127.0.0.0/8 or `[::1]`, with any port.
fn is_loopback_host(authority: &str) -> bool {
    let name = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `origin` (`scheme://host[:port]`) names the authority the request
/// was sent to. The scheme is not compared: behind a TLS-terminating proxy
/// the page is https while witness sees http.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme {
        "https" => ":443",
        "http" => ":80",
        _ => return false,
    };
    let strip = |a: &str| {
        a.strip_suffix(default_port)
            .unwrap_or(a)
            .to_ascii_lowercase()
    };
    strip(authority) == strip(host)
}

/// The answer to a CORS preflight: the allowed origin may send the headers
/// the protocols use; any other is refused without CORS headers.
fn preflight(allowed: Option<HeaderValue>) -> Response<Body> {
    let Some(origin) = allowed else {
        return plain(
            StatusCode::FORBIDDEN,
            "this origin is not in [http] allowed_origins\n",
        );
    };
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    let h = res.headers_mut();
    allow_origin(h, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, DELETE"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(
            "authorization, content-type, connect-protocol-version, connect-timeout-ms, \
             grpc-timeout, x-grpc-web, x-user-agent, mcp-session-id, mcp-protocol-version, \
             last-event-id",
        ),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    res
}

fn allow_origin(h: &mut HeaderMap, origin: HeaderValue) {
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(
            "grpc-status, grpc-message, grpc-status-details-bin, mcp-session-id, www-authenticate",
        ),
    );
}

fn content_type<B>(req: &Request<B>) -> &str {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// A refusal in the request's protocol: a gRPC status for gRPC and
/// gRPC-Web, the HTTP status with a short text otherwise.
fn refuse<B>(req: &Request<B>, status: StatusCode, message: &str) -> Response<Body> {
    let ct = content_type(req);
    if ct.starts_with("application/grpc") {
        let code = match status {
            StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
            _ => tonic::Code::PermissionDenied,
        };
        return grpc_status(ct, Status::new(code, message));
    }
    if req.uri().path().starts_with(RPC_PREFIX) {
        if let Some(res) = crate::http::connect::refusal(ct, status, message) {
            return res;
        }
    }
    plain(status, &format!("{message}\n"))
}

fn rpc_unauthenticated<B>(req: &Request<B>, message: &str) -> Response<Body> {
    // gRPC refusals are counted by `api::observe` from the status; Connect
    // ones here, as the Connect adapter counts its own.
    if !content_type(req).starts_with("application/grpc") {
        let method = req
            .uri()
            .path()
            .strip_prefix(RPC_PREFIX)
            .unwrap_or_default();
        crate::metrics::refused(
            crate::metrics::method_label(method),
            "UNAUTHENTICATED",
            message,
        );
    }
    refuse(req, StatusCode::UNAUTHORIZED, message)
}

/// A trailers-only gRPC (or gRPC-Web) reply, in the request's content type.
fn grpc_status(content_type: &str, status: Status) -> Response<Body> {
    let mut res = status.into_http::<Body>();
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        res.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    res
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut res = Response::new(Body::new(http_body_util::Full::new(Bytes::from(
        text.to_string(),
    ))));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// Whether `e` (or what caused it) is a body that missed `body_timeout`.
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(s) = e.downcast_ref::<Status>() {
            return s.code() == tonic::Code::DeadlineExceeded;
        }
        cur = e.source();
    }
    false
}

/// A request body that fails with DEADLINE_EXCEEDED once `deadline` passes
/// before it ended. tonic passes a `Status` body error through as the
/// call's status.
struct TimedBody {
    inner: Body,
    deadline: tokio::time::Instant,
    /// Made only when the body is not all there at once (the common case
    /// reads a whole unary request in its first poll).
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    limit: Duration,
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let deadline = self.deadline;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Some(Err(Status::deadline_exceeded(format!(
                "request body: not received within [limits] body_timeout = {}",
                humantime::format_duration(self.limit)
            ))))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request counted in flight until it ends.
struct InFlightBody {
    inner: Body,
    _guard: crate::accept::InFlight,
}

impl http_body::Body for InFlightBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:50051",
            "LOCALHOST.",
            "app.localhost:80",
            "127.0.0.1",
            "127.1.2.3:8080",
            "[::1]:50051",
            "[::1]",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:50051",
            "10.0.0.1:50051",
            "[::2]:1",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn origins_compare_by_authority_with_default_ports() {
        assert!(same_origin(
            "http://127.0.0.1:50051",
            Some("127.0.0.1:50051")
        ));
        assert!(same_origin("https://w.example", Some("W.example:443")));
        assert!(same_origin("https://w.example", Some("w.example")));
        assert!(!same_origin(
            "http://127.0.0.1:8000",
            Some("127.0.0.1:50051")
        ));
        assert!(!same_origin("null", Some("127.0.0.1:50051")));
        assert!(!same_origin("http://127.0.0.1:50051", None));
        assert!(!same_origin("file://x", Some("x")));
    }
}
