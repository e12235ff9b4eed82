//! The pure core: decision state machine, policy, canonical JSON, schema and
//! limit checks. No I/O and no clock: callers pass the time in.

pub mod canonical;
pub mod event_type;
pub mod machine;
pub mod model;
pub mod notify;
pub mod policy;
pub mod receipt;
pub mod schema;

pub use event_type::{EventType, UnknownEventType};
pub use machine::{apply, create, decide, Action, Actor, Decided, NewDecision, Outcome};
pub use model::*;

/// Why the core refused a command. The message names the offending field or
/// rule; the API layer maps the kind to a gRPC status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{message}")]
pub struct Refusal {
    pub kind: RefusalKind,
    pub message: String,
}

/// The class of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefusalKind {
    /// The request itself is malformed.
    InvalidArgument,
    /// The decision is in the wrong state for the command.
    FailedPrecondition,
    /// The caller may not do this.
    PermissionDenied,
    /// The caller may not see the decision: answered exactly as a missing id.
    NotFound,
}

/// The one message for a decision that does not exist or that the caller
/// may not see, so the two cannot be told apart.
pub fn not_found_message(decision_id: &str) -> String {
    format!("decision_id: decision {} not found", cut(decision_id))
}

/// Most characters of caller input quoted in an error message.
pub const MAX_QUOTED_CHARS: usize = 200;

/// Caller input as quoted in an error: at most [`MAX_QUOTED_CHARS`]
/// characters, with `…` when cut.
pub fn cut(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(MAX_QUOTED_CHARS) {
        None => std::borrow::Cow::Borrowed(s),
        Some((end, _)) => std::borrow::Cow::Owned(format!("{}…", &s[..end])),
    }
}

impl Refusal {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            kind: RefusalKind::InvalidArgument,
            message: message.into(),
        }
    }
    pub fn precondition(message: impl Into<String>) -> Self {
        Self {
            kind: RefusalKind::FailedPrecondition,
            message: message.into(),
        }
    }
    /// The decision is missing or invisible to the caller.
    pub fn not_found(decision_id: &str) -> Self {
        Self {
            kind: RefusalKind::NotFound,
            message: not_found_message(decision_id),
        }
    }
    pub fn denied(message: impl Into<String>) -> Self {
        Self {
            kind: RefusalKind::PermissionDenied,
            message: message.into(),
        }
    }
}

/// Result alias for the core.
pub type Result<T, E = Refusal> = std::result::Result<T, E>;
