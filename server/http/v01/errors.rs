//! The one mapping from witness errors to v0.1.1's HTTP statuses and
//! `{"error": CODE, "field"?, "message"?}` bodies.
//!
//! v0.1.1's codes: `invalid_json`, `missing_field` (with `field`),
//! `missing_query` (with `field`), `not_found`, and per route
//! `ask_failed` (400), `answer_failed` / `cancel_failed` (409). witness adds
//! what v0.1.1 never needed: 401 `unauthorized`, 403 with the route's
//! `*_failed` code, 408 `request_timeout`, 413 `body_too_large`,
//! 415 `unsupported_media_type`, 429 `rate_limited`,
//! 503 `unavailable`, 500 `internal`.

use crate::auth::AuthError;
use crate::core::{Refusal, RefusalKind};
use crate::service::ServiceError;
use crate::store::StoreError;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{json, Map, Value};

/// The route an error came from: names its `*_failed` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    Ask,
    Get,
    List,
    Answer,
    Ack,
    Cancel,
}

impl Route {
    fn failed_code(self) -> &'static str {
        match self {
            Route::Ask => "ask_failed",
            Route::Get => "get_failed",
            Route::List => "list_failed",
            Route::Answer => "answer_failed",
            Route::Ack => "ack_failed",
            Route::Cancel => "cancel_failed",
        }
    }
}

/// Why a `/v1/` request failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum V01Error {
    /// The body is not JSON, or not a JSON object.
    #[error("{0}")]
    InvalidJson(String),
    /// A required body field is absent (or, as in v0.1.1, not a non-empty
    /// string where a string is required).
    #[error("{0}: required")]
    MissingField(&'static str),
    /// A required query parameter is absent or empty.
    #[error("{0}: required query parameter")]
    MissingQuery(&'static str),
    /// A body field has the wrong type or value.
    #[error("{message}")]
    BadField {
        route: Route,
        field: &'static str,
        message: String,
    },
    #[error("body: larger than {0} bytes")]
    TooLarge(usize),
    /// Not `application/json`.
    #[error("content-type: must be application/json")]
    UnsupportedMediaType,
    /// The body did not arrive within `[limits] body_timeout`.
    #[error("{0}")]
    BodyTimeout(String),
    /// Unknown id (of any shape), or a decision the caller may not see.
    #[error("not found")]
    NotFound,
    #[error("{err}")]
    Service { route: Route, err: ServiceError },
}

impl V01Error {
    pub(super) fn service(route: Route) -> impl FnOnce(ServiceError) -> V01Error {
        move |err| V01Error::Service { route, err }
    }

    /// The HTTP status and JSON body v0.1.1 clients expect.
    fn parts(self) -> (StatusCode, Value) {
        let mut body = Map::new();
        let mut put = |k: &str, v: &str| {
            body.insert(k.to_string(), Value::String(v.to_string()));
        };
        let status = match self {
            V01Error::InvalidJson(m) => {
                put("error", "invalid_json");
                put("message", &m);
                StatusCode::BAD_REQUEST
            }
            V01Error::MissingField(f) => {
                put("error", "missing_field");
                put("field", f);
                StatusCode::BAD_REQUEST
            }
            V01Error::MissingQuery(f) => {
                put("error", "missing_query");
                put("field", f);
                StatusCode::BAD_REQUEST
            }
            V01Error::BadField {
                route,
                field,
                message,
            } => {
                put("error", route.failed_code());
                put("field", field);
                put("message", &message);
                StatusCode::BAD_REQUEST
            }
            V01Error::TooLarge(n) => {
                put("error", "body_too_large");
                put("message", &format!("body: larger than {n} bytes"));
                StatusCode::PAYLOAD_TOO_LARGE
            }
            V01Error::UnsupportedMediaType => {
                put("error", "unsupported_media_type");
                put("message", "content-type: must be application/json");
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            V01Error::BodyTimeout(m) => {
                put("error", "request_timeout");
                put("message", &m);
                StatusCode::REQUEST_TIMEOUT
            }
            V01Error::NotFound => {
                put("error", "not_found");
                StatusCode::NOT_FOUND
            }
            V01Error::Service { route, err } => return service_parts(route, err),
        };
        (status, Value::Object(body))
    }
}

fn service_parts(route: Route, err: ServiceError) -> (StatusCode, Value) {
    let failed = |status: StatusCode, message: String| {
        let (field, message) = v01_field_names(&message);
        let mut body = json!({"error": route.failed_code(), "message": message});
        if let Some(f) = field {
            body["field"] = Value::String(f);
        }
        (status, body)
    };
    let refusal = |r: Refusal| {
        let status = match r.kind {
            RefusalKind::InvalidArgument => StatusCode::BAD_REQUEST,
            RefusalKind::FailedPrecondition => StatusCode::CONFLICT,
            RefusalKind::PermissionDenied => StatusCode::FORBIDDEN,
            // Strangers learn nothing: the same 404 as for an unknown id.
            RefusalKind::NotFound => return V01Error::NotFound.parts(),
        };
        failed(status, r.message)
    };
    let plain = |status: StatusCode, code: &str, message: String| {
        (status, json!({"error": code, "message": message}))
    };
    match err {
        ServiceError::NotFound(_) | ServiceError::Store(StoreError::NotFound(_)) => {
            V01Error::NotFound.parts()
        }
        ServiceError::Refused(r) | ServiceError::Store(StoreError::Refused(r)) => refusal(r),
        ServiceError::Auth(AuthError::Denied(m)) => failed(StatusCode::FORBIDDEN, m),
        ServiceError::Auth(AuthError::Unauthenticated(m)) => {
            plain(StatusCode::UNAUTHORIZED, "unauthorized", m)
        }
        ServiceError::Exhausted(x) => plain(StatusCode::TOO_MANY_REQUESTS, "rate_limited", x.0),
        ServiceError::Store(s @ StoreError::AlreadyExists(_)) => {
            failed(StatusCode::CONFLICT, s.to_string())
        }
        ServiceError::Store(s @ StoreError::Unavailable(_)) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            s.to_string(),
        ),
        ServiceError::Store(s @ StoreError::Corrupt(_)) => {
            tracing::error!(error = %s, "store inconsistency");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "internal", s.to_string())
        }
        ServiceError::Store(s @ (StoreError::Internal(_) | StoreError::BadUrl(_))) => {
            tracing::error!(error = %s, "store error");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "internal", s.to_string())
        }
        // Stream errors: no `/v1/` route streams; mapped for completeness.
        e @ (ServiceError::Lagged { .. } | ServiceError::Interrupted { .. }) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
        e @ ServiceError::BeyondHead { .. } => failed(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// witness's field names as v0.1.1 spells them on the wire.
const FIELD_NAMES: &[(&str, &str)] = &[
    ("kind", "kind"),
    ("input", "input"),
    ("response_schema", "responseShape"),
    ("authorized_roles", "authorizedRoles"),
    ("surfaces", "surfaces"),
    ("context_snapshot", "contextSnapshot"),
    ("timeout", "timeoutMs"),
    ("request_id", "requestId"),
    ("verdict", "answer"),
    ("answer", "answer"),
    ("rationale", "rationale"),
    ("current_context", "currentContext"),
    ("on_behalf_of", "operator"),
    ("surface", "surface"),
    ("reason", "reason"),
    ("authorized", "authorized"),
];

/// Service messages start with the field they are about (`authorized_roles:
/// ...`, `authorized_roles[2]: ...`); renames it to v0.1.1's name so a
/// `/v1/` caller reads the field it sent, and returns that name.
fn v01_field_names(message: &str) -> (Option<String>, String) {
    let end = message.find([':', '[']).unwrap_or(0);
    let (head, rest) = message.split_at(end);
    match FIELD_NAMES.iter().find(|(ours, _)| *ours == head) {
        Some((_, theirs)) if end > 0 => (Some(theirs.to_string()), format!("{theirs}{rest}")),
        _ => (None, message.to_string()),
    }
}

impl IntoResponse for V01Error {
    fn into_response(self) -> Response {
        let (status, body) = self.parts();
        // Counted like gRPC refusals, under rpc "v1" with v0.1.1's error code
        // (a fixed set, so labels stay bounded).
        let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
        crate::metrics::refused("v1", text("error"), text("message"));
        (status, axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_renamed_to_v01_spelling() {
        assert_eq!(
            v01_field_names("authorized_roles[1]: must not be empty"),
            (
                Some("authorizedRoles".into()),
                "authorizedRoles[1]: must not be empty".into()
            )
        );
        assert_eq!(
            v01_field_names("on_behalf_of: bot may not act for \"x\""),
            (
                Some("operator".into()),
                "operator: bot may not act for \"x\"".into()
            )
        );
        assert_eq!(
            v01_field_names("operator alice holds none"),
            (None, "operator alice holds none".into())
        );
        assert_eq!(v01_field_names(""), (None, String::new()));
    }
}
