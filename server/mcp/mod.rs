//! MCP (DESIGN §10): `/mcp` on the listen port speaks the Model Context
//! Protocol's Streamable HTTP transport (rmcp, the official Rust SDK), so
//! AI agents ask people through witness with the tools in `tools`.
//!
//! Identity is the request guard's (`crate::guard`): every `/mcp` request is
//! authenticated from its headers like an RPC, and one without a valid
//! credential gets 401 with `WWW-Authenticate: Bearer resource_metadata=…`
//! naming `/.well-known/oauth-protected-resource` (RFC 9728), served here.
//! A session belongs to the principal that opened it (`sessions`).

mod handler;
mod sessions;
pub mod tools;

pub use handler::{Handler, WITHDRAWN};

use crate::service::{ServiceError, Witness};
use axum::Router;
use http::{header, HeaderMap, HeaderValue};
use rmcp::transport::streamable_http_server::{
    session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
};
use std::sync::Arc;
use std::time::Duration;

/// Where MCP is served.
pub const PATH: &str = "/mcp";
/// RFC 9728's metadata document (and its form for the `/mcp` resource).
pub const RESOURCE_METADATA: &str = "/.well-known/oauth-protected-resource";

/// How long an MCP session lives without any message; a waiting call's
/// progress notifications count. Long, because a decision may wait hours
/// for a person; a session whose client vanished ends after it (its
/// decisions stay open).
const SESSION_IDLE: Duration = Duration::from_secs(3600);

/// Why a tool call failed. Refusals of the service become tool results
/// with `isError` (their message is for the agent); the rest are protocol
/// errors.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error(transparent)]
    Service(ServiceError),
    /// The guard did not authenticate this request (a bug: it always does
    /// for `/mcp`).
    #[error("no principal on the request")]
    NoPrincipal,
    #[error("unknown tool {0:?}")]
    UnknownTool(String),
    /// The call's client cancelled it or went away.
    #[error("interrupted")]
    Interrupted,
    #[error("encoding the result: {0}")]
    Encode(String),
}

impl From<McpError> for rmcp::ErrorData {
    fn from(e: McpError) -> rmcp::ErrorData {
        match e {
            McpError::NoPrincipal => rmcp::ErrorData::invalid_request(e.to_string(), None),
            other => rmcp::ErrorData::internal_error(other.to_string(), None),
        }
    }
}

/// A refusal as the agent reads it: the gRPC code's name and the message,
/// e.g. `PERMISSION_DENIED: kind: bot may not ask about "db.drop" (can_ask)`
/// (the code from the one mapping in `api::error`).
pub fn refusal_line(e: ServiceError) -> String {
    let status = tonic::Status::from(e);
    let code = crate::metrics::CODES
        .get(status.code() as usize)
        .copied()
        .unwrap_or("UNKNOWN");
    format!("{code}: {}", status.message())
}

/// `[mcp]` as the routes need it.
#[derive(Debug, Clone)]
pub struct Options {
    /// Roles that may answer a `request_approval` naming none.
    pub authorized_roles: Vec<String>,
    /// The listener speaks TLS (for the origin in URLs witness hands out).
    pub tls: bool,
}

/// `/mcp` and the resource metadata.
pub fn router(w: Arc<Witness>, options: Options) -> Router {
    let roles = Arc::new(options.authorized_roles);
    let max_body = w.limits().max_message_bytes;
    let factory = {
        let w = w.clone();
        move || Ok(Handler::new(w.clone(), roles.clone()))
    };
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(SESSION_IDLE);
    let sessions = Arc::new(sessions);
    let owners = sessions::Owners::new(sessions.clone());
    // Host and Origin are the guard's to check (for every route alike), so
    // rmcp's loopback-only default would refuse a configured public name.
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_max_request_body_bytes(max_body);
    let service = StreamableHttpService::new(factory, sessions, config);
    let mcp = Router::new()
        .route_service(PATH, service)
        .layer(axum::middleware::from_fn_with_state(owners, sessions::bind));
    let metadata = move |headers: HeaderMap| {
        // The issuers in force now: a reload may have changed them.
        let issuers: Vec<String> = w
            .auth()
            .issuers()
            .iter()
            .map(|i| i.config.issuer.clone())
            .collect();
        let tls = options.tls;
        async move { protected_resource(&headers, tls, &issuers) }
    };
    mcp.route(RESOURCE_METADATA, axum::routing::get(metadata.clone()))
        .route(
            &format!("{RESOURCE_METADATA}{PATH}"),
            axum::routing::get(metadata),
        )
}

/// `scheme://host[:port]` the client addressed: `X-Forwarded-Proto` behind
/// a proxy, else the listener's own scheme.
pub fn origin(headers: &HeaderMap, authority: Option<&str>, tls: bool) -> String {
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| matches!(*p, "http" | "https"))
        .unwrap_or(if tls { "https" } else { "http" });
    let host = authority
        .map(str::to_string)
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "localhost".to_string());
    format!("{scheme}://{host}")
}

/// The RFC 9728 document: this resource, the issuers that may sign its
/// tokens (from the one list `[[issuers]]` configures; empty before any
/// exist) and how to send them.
pub fn resource_metadata(origin: &str, issuers: &[String]) -> serde_json::Value {
    serde_json::json!({
        "resource": format!("{origin}{PATH}"),
        "authorization_servers": issuers,
        "bearer_methods_supported": ["header"],
        "resource_name": "witness",
    })
}

fn protected_resource(
    headers: &HeaderMap,
    tls: bool,
    issuers: &[String],
) -> (
    [(header::HeaderName, HeaderValue); 1],
    axum::Json<serde_json::Value>,
) {
    let origin = origin(headers, None, tls);
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=300"),
        )],
        axum::Json(resource_metadata(&origin, issuers)),
    )
}

/// The `WWW-Authenticate` value of a 401 from `/mcp`: where the client
/// learns how to get a token.
pub fn www_authenticate(origin: &str, bearer_sent: bool) -> String {
    let error = if bearer_sent {
        ", error=\"invalid_token\""
    } else {
        ""
    };
    format!("Bearer resource_metadata=\"{origin}{RESOURCE_METADATA}\"{error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_names_the_resource_and_issuers() {
        let v = resource_metadata("https://w.example", &["https://login.example".into()]);
        assert_eq!(v["resource"], "https://w.example/mcp");
        assert_eq!(v["authorization_servers"][0], "https://login.example");
        assert_eq!(v["bearer_methods_supported"][0], "header");
        let empty = resource_metadata("http://127.0.0.1:1", &[]);
        assert_eq!(empty["authorization_servers"], serde_json::json!([]));
    }

    #[test]
    fn origin_follows_proxy_and_tls() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("w.example:8443"));
        assert_eq!(origin(&h, None, true), "https://w.example:8443");
        assert_eq!(origin(&h, Some("a:1"), false), "http://a:1");
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert_eq!(origin(&h, None, false), "https://w.example:8443");
    }

    #[test]
    fn challenge_points_at_the_metadata() {
        assert_eq!(
            www_authenticate("http://h:1", false),
            "Bearer resource_metadata=\"http://h:1/.well-known/oauth-protected-resource\""
        );
        assert!(www_authenticate("http://h:1", true).ends_with("error=\"invalid_token\""));
    }
}
