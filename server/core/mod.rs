//! The pure core: decision state machine, policy, canonical JSON, schema and
//! limit checks. No I/O and no clock: callers pass the time in.

pub mod canonical;
pub mod machine;
pub mod model;
pub mod notify;
pub mod policy;
pub mod receipt;
pub mod schema;

pub use machine::{apply, create, decide, Action, Actor, Decided, NewDecision, Outcome};
pub use model::*;

/// Why the core refused a command. The message names the offending field or
/// rule; the API layer maps the kind to a gRPC status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub kind: RefusalKind,
    pub message: String,
}

/// The class of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The request itself is malformed.
    InvalidArgument,
    /// The decision is in the wrong state for the command.
    FailedPrecondition,
    /// The caller may not do this.
    PermissionDenied,
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
    pub fn denied(message: impl Into<String>) -> Self {
        Self {
            kind: RefusalKind::PermissionDenied,
            message: message.into(),
        }
    }
}

/// Result alias for the core.
pub type Result<T, E = Refusal> = std::result::Result<T, E>;
