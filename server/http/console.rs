//! The web console at `/` (DESIGN §7): a static page embedded in the binary
//! (users install and build nothing) that talks to witness over the Connect
//! protocol on the same port, with the caller's own identity headers or the
//! session cookie of a sign-in (`http::signin`). This
//! module only serves the files and tells the page which identity mode the
//! server runs in; every decision read or write goes through the RPCs, so
//! visibility and authorisation are the service layer's, not the page's.

use crate::service::Witness;
use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderValue},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use std::sync::Arc;

const INDEX_HTML: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const CONNECT_JS: &str = include_str!("console/connect.js");
const APP_CSS: &str = include_str!("console/app.css");

/// No inline script or style, nothing from elsewhere, never framed. The page
/// shows decision content with `textContent` only; this policy is the second
/// line of defence should that ever slip.
pub(crate) const CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; font-src 'self'; form-action 'none'; frame-ancestors 'none'; \
     object-src 'none'; base-uri 'none'";

/// The console's routes: the page, its script and style, and its config.
pub(crate) fn router() -> Router<Arc<Witness>> {
    Router::new()
        .route(
            "/",
            get(|| async { page("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/console/app.js",
            get(|| async { page("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/console/connect.js",
            get(|| async { page("text/javascript; charset=utf-8", CONNECT_JS) }),
        )
        .route(
            "/console/app.css",
            get(|| async { page("text/css; charset=utf-8", APP_CSS) }),
        )
        .route("/console/config.json", get(config))
        .route("/console/whoami", get(whoami))
}

/// What the page needs before it can ask anything: in token mode it asks the
/// operator for a bearer token; in dev mode for a principal name and roles.
async fn config(State(w): State<Arc<Witness>>) -> Response {
    let auth = w.auth();
    let mode = if auth.dev_mode() { "dev" } else { "token" };
    // Sign-in buttons, first in the page; the token form stays for scripts
    // and break-glass use.
    let issuers: Vec<_> = auth
        .issuers()
        .iter()
        .filter(|i| i.config.signs_in_people())
        .map(|i| serde_json::json!({ "name": i.config.name, "login": format!("/auth/login?issuer={}", i.config.name) }))
        .collect();
    let body = serde_json::json!({ "mode": mode, "issuers": issuers, "version": env!("CARGO_PKG_VERSION") });
    page("application/json", body.to_string())
}

/// Who the request's identity headers say the caller is, so the page can
/// greet the operator, refuse a wrong token at once with a clear message,
/// and know which decisions it may answer (and so acknowledge). It reveals
/// nothing the caller's own token does not already grant.
async fn whoami(State(w): State<Arc<Witness>>, headers: HeaderMap) -> Response {
    let headers_have_bearer = headers.contains_key(header::AUTHORIZATION);
    let md = tonic::metadata::MetadataMap::from_headers(headers);
    match w.auth().authenticate(&md) {
        Ok(p) => {
            let body = serde_json::json!({
                "principal": p.name,
                "roles": p.roles,
                "anonymous": p.anonymous,
                "source": p.source.describe(),
                "session": matches!(p.source, crate::auth::Source::Issuer { .. })
                    && !headers_have_bearer,
            });
            page("application/json", body.to_string())
        }
        Err(e) => {
            // The Connect error shape, so the page has one error path.
            let body = serde_json::json!({ "code": "unauthenticated", "message": e.to_string() });
            let mut res = page("application/json", body.to_string());
            *res.status_mut() = http::StatusCode::UNAUTHORIZED;
            res
        }
    }
}

/// A response with the console's security headers. `no-cache` so that an
/// upgraded binary's page is picked up at once (the files are small).
fn page(content_type: &'static str, body: impl Into<String>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (headers, body.into()).into_response()
}
