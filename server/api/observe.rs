//! One tower layer around the gRPC routes: a span per RPC (method,
//! principal, decision id, outcome code), and every refused request
//! counted in `witness_refusals_total{rpc,code}` and logged once at info.
//! Handlers fill in `principal` and `decision_id` on the current span.

use futures::future::BoxFuture;
use std::task::{Context, Poll};
use tracing::field::Empty;
use tracing::Instrument;

const SERVICE_PREFIX: &str = "/witness.v1.WitnessService/";

/// Wraps a service in [`Observe`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ObserveLayer;

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;
    fn layer(&self, inner: S) -> Observe<S> {
        Observe { inner }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
}

impl<S, B, RB> tower::Service<http::Request<B>> for Observe<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let Some(rpc) = req.uri().path().strip_prefix(SERVICE_PREFIX) else {
            return Box::pin(self.inner.call(req));
        };
        let rpc = method_label(rpc);
        let span = tracing::info_span!(
            "rpc",
            otel.name = %format!("witness.v1.WitnessService/{rpc}"),
            rpc.method = %rpc,
            principal = Empty,
            decision_id = Empty,
            code = Empty,
        );
        let fut = span.in_scope(|| self.inner.call(req));
        Box::pin(
            async move {
                let res = fut.await?;
                // A refusal is a trailers-only response: the status is in
                // the headers. A success carries it in the trailers.
                let code = res
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                let name = CODES.get(code).copied().unwrap_or("UNKNOWN");
                tracing::Span::current().record("code", name);
                if code != 0 {
                    let message = res
                        .headers()
                        .get("grpc-message")
                        .map(|v| percent_decode(v.as_bytes()))
                        .unwrap_or_default();
                    crate::metrics::refused(rpc, name, &message);
                }
                Ok(res)
            }
            .instrument(span),
        )
    }
}

use crate::metrics::{method_label, CODES};

/// `grpc-message` is percent-encoded (gRPC over HTTP/2).
fn percent_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = raw
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (raw[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Records the caller on the current RPC span.
pub fn record_principal(name: &str) {
    tracing::Span::current().record("principal", name);
}

/// Records the decision on the current RPC span.
pub fn record_decision(id: &str) {
    if !id.is_empty() {
        tracing::Span::current().record("decision_id", id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_grpc_message() {
        assert_eq!(percent_decode(b"kind:%20required"), "kind: required");
        assert_eq!(percent_decode(b"100%"), "100%");
        assert_eq!(percent_decode(b"%e2%9c%93 ok"), "\u{2713} ok");
    }

    #[test]
    fn code_names_follow_the_numbers() {
        assert_eq!(CODES[3], "INVALID_ARGUMENT");
        assert_eq!(CODES[8], "RESOURCE_EXHAUSTED");
        assert_eq!(CODES[16], "UNAUTHENTICATED");
    }
}
