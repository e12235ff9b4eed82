//! The one mapping from domain errors to gRPC status codes.

use crate::auth::AuthError;
use crate::core::{Refusal, RefusalKind};
use crate::service::ServiceError;
use crate::store::StoreError;
use tonic::{Code, Status};

fn refusal(r: Refusal) -> Status {
    let code = match r.kind {
        RefusalKind::InvalidArgument => Code::InvalidArgument,
        RefusalKind::FailedPrecondition => Code::FailedPrecondition,
        RefusalKind::PermissionDenied => Code::PermissionDenied,
        RefusalKind::NotFound => Code::NotFound,
    };
    Status::new(code, bounded(r.message))
}

/// Longest message a status carries: a backstop behind [`crate::core::cut`]
/// for messages that embed library text about caller input (JSON Schema
/// errors quote the offending value).
const MAX_MESSAGE_CHARS: usize = 1024;

fn bounded(m: String) -> String {
    match m.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => m,
        Some((end, _)) => format!("{}…", &m[..end]),
    }
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Status {
        match e {
            ServiceError::Refused(r) => refusal(r),
            ServiceError::NotFound(_) => Status::not_found(e.to_string()),
            ServiceError::Exhausted(x) => Status::resource_exhausted(bounded(x.0)),
            ServiceError::Lagged { .. } => Status::resource_exhausted(e.to_string()),
            ServiceError::Interrupted { .. } => Status::unavailable(e.to_string()),
            ServiceError::BeyondHead { .. } => Status::out_of_range(e.to_string()),
            ServiceError::Auth(AuthError::Unauthenticated(m)) => Status::unauthenticated(m),
            ServiceError::Auth(AuthError::Denied(m)) => Status::permission_denied(m),
            ServiceError::Store(s) => match s {
                StoreError::Refused(r) => refusal(r),
                StoreError::NotFound(_) => Status::not_found(s.to_string()),
                StoreError::AlreadyExists(_) => Status::already_exists(bounded(s.to_string())),
                StoreError::Unavailable(_) => Status::unavailable(s.to_string()),
                StoreError::Corrupt(_) => {
                    tracing::error!(error = %s, "store inconsistency");
                    Status::internal(s.to_string())
                }
                // A bug (or an outside schema edit): INTERNAL, which clients
                // do not retry; never UNAVAILABLE, which they would.
                StoreError::Internal(_) | StoreError::BadUrl(_) => {
                    tracing::error!(error = %s, "store error");
                    Status::internal(s.to_string())
                }
            },
        }
    }
}

impl From<Refusal> for Status {
    fn from(r: Refusal) -> Status {
        refusal(r)
    }
}

/// How tonic's decoder starts the messages of the frame errors below.
const FRAME_ERRORS: [&str; 4] = [
    "failed to decode Protobuf message",
    "protocol error: received message with",
    "Unexpected EOF decoding stream",
    "Error decompressing",
];

/// Fixes the codes of errors tonic answers itself, before any handler runs
/// (in the response headers of a trailers-only reply):
/// - a request over `max_message_bytes` is OUT_OF_RANGE in tonic; a limit is
///   RESOURCE_EXHAUSTED everywhere else in witness (and in gRPC's own
///   conventions);
/// - an undecodable request (invalid UTF-8 in a string, nesting past
///   prost's recursion limit) and a malformed frame (the compressed flag
///   without `grpc-encoding`, an unknown flag, a truncated frame, a body
///   that does not decompress) are INTERNAL in tonic; they are the caller's
///   bad input: INVALID_ARGUMENT. (gRPC's compression spec asks INTERNAL
///   for the compressed flag; witness says what the caller must fix.)
pub fn transport_status<B>(mut res: http::Response<B>) -> http::Response<B> {
    let headers = res.headers();
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(|m| m.replace("%20", " "))
        .unwrap_or_default();
    let code = match headers.get("grpc-status").map(http::HeaderValue::as_bytes) {
        Some(b"11") if message.contains("message length too large") => Some("8"),
        Some(b"13") if FRAME_ERRORS.iter().any(|m| message.starts_with(m)) => Some("3"),
        _ => None,
    };
    if let Some(code) = code {
        res.headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static(code));
    }
    res
}
