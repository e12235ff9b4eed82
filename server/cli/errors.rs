//! What the CLI says when something fails: in terms of its own flags, not
//! of gRPC metadata or transport internals.
//!
//! [`CliError`] is every way a command can fail. Its `Display` is the text
//! printed after `witness: ` on stderr and [`CliError::exit_code`] the
//! process's exit code: `cli::run` applies both, in one place.

use super::exit;
use crate::client::ClientError;
use std::path::PathBuf;
use tonic::Code;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server cannot be reached; `server` is `--server` as given.
    #[error("{}", connect(.source, .server))]
    Connect {
        server: String,
        source: tonic::transport::Error,
    },
    /// The server answered a call with an error status.
    #[error("{}", rpc_message(.0))]
    Rpc(tonic::Status),
    /// A client-side problem before any call: `--server` is not an
    /// address, a certificate file is missing, flags that go together.
    #[error(transparent)]
    Client(ClientError),
    /// A flag's value is wrong; says which flag.
    #[error("{flag}: {message}")]
    BadArgument { flag: &'static str, message: String },
    /// A command given neither of the arguments it needs one of.
    #[error("{0}")]
    Usage(&'static str),
    /// An HTTP call (`whoami`) failed; says which and why.
    #[error("{0}")]
    Http(String),
    /// A decision id argument that is not a UUID: a typo, said before
    /// any call.
    #[error(
        "{0:?} is not a decision id (a UUID such as 0190f3c2-7c1e-7b9a-9c3e-2f4d5e6f7a8b; \
         `witness list` shows them)"
    )]
    NotADecisionId(String),
    /// Answering as `anonymous`, which can never succeed.
    #[error("{NEEDS_IDENTITY}")]
    NeedsIdentity,
    /// The `@FILE` of a JSON flag cannot be read.
    #[error("{flag}: {path}: {source}")]
    ReadArg {
        flag: &'static str,
        path: String,
        source: std::io::Error,
    },
    /// A JSON flag (or the file it names) is not JSON.
    #[error("{flag}: not JSON: {source}")]
    Json {
        flag: &'static str,
        source: serde_json::Error,
    },
    /// Reading or writing a file named on the command line.
    #[error("{}: {source}", .path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `receipt get` on a decision that is still open.
    #[error("decision {0} has no receipt yet: it is still open")]
    NoReceipt(String),
    /// A value that should always serialise did not (a bug).
    #[error("{0}")]
    Encode(serde_json::Error),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    #[error(transparent)]
    Serve(#[from] crate::server::ServeError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    ReceiptKey(#[from] crate::receipts::KeyError),
    /// `witness bench` failed (its own text).
    #[error("{0}")]
    Bench(String),
}

/// Result alias for CLI commands: the exit code, or why they failed.
pub(crate) type Result<T = i32, E = CliError> = std::result::Result<T, E>;

impl CliError {
    /// A client failure, with `server` as the user gave it.
    pub(crate) fn client(e: ClientError, server: &str) -> CliError {
        match e {
            ClientError::Rpc(s) => CliError::Rpc(s),
            ClientError::Connect { source, .. } => CliError::Connect {
                server: server.to_string(),
                source,
            },
            other => CliError::Client(other),
        }
    }

    /// The process exit code: every failure is a usage or RPC error (2);
    /// outcomes (1, 3, 4, 5) are results, not errors.
    pub fn exit_code(&self) -> i32 {
        exit::ERROR
    }
}

impl From<tonic::Status> for CliError {
    fn from(s: tonic::Status) -> CliError {
        CliError::Rpc(s)
    }
}

/// A failed RPC, said the way a CLI user can act on.
pub(crate) fn rpc_message(s: &tonic::Status) -> String {
    // Messages quote caller input (a kind, a reason): shown escaped.
    let msg = &*super::output::shown(s.message());
    match s.code() {
        Code::NotFound => {
            // The server says "decision_id: decision ID not found".
            let what = msg
                .strip_prefix("decision_id: ")
                .unwrap_or(msg)
                .trim_end_matches(" not found");
            format!(
                "{what}: not found or not visible to you (you see what you asked and what your \
                 roles may answer; dev mode: --as NAME --roles ROLE,...)"
            )
        }
        Code::Unauthenticated if msg.starts_with("answering needs an identity") => {
            NEEDS_IDENTITY.to_string()
        }
        Code::Unauthenticated => {
            format!("unauthenticated: {msg} (pass --token or set WITNESS_TOKEN)")
        }
        Code::PermissionDenied => format!("permission denied: {msg}"),
        Code::InvalidArgument => format!("invalid argument: {msg}"),
        Code::FailedPrecondition => format!("refused: {msg}"),
        Code::AlreadyExists => format!("already exists: {msg}"),
        Code::ResourceExhausted => format!("limit reached: {msg}"),
        Code::Unavailable => format!("unavailable: {msg} (retry; the same --request-id is safe)"),
        code => format!("{code:?}: {msg}"),
    }
}

/// Answering as `anonymous` can never succeed: say which flags give an
/// identity before calling the server.
pub(crate) const NEEDS_IDENTITY: &str =
    "answering needs an identity: pass --as NAME --roles ROLE,... (dev mode) or --token TOKEN";

fn connect(e: &(dyn std::error::Error + 'static), server: &str) -> String {
    let mut chain = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return format!("connection refused: is `witness serve` running on {server}?");
            }
        }
        chain.push(err.to_string());
        cur = err.source();
    }
    chain.dedup();
    format!("cannot connect to {server}: {}", chain.join(": "))
}

/// Decision ids are UUIDs; anything else is a typo, said before any call.
pub(crate) fn decision_id(id: &str) -> Result<()> {
    match uuid::Uuid::parse_str(id) {
        Ok(_) => Ok(()),
        Err(_) => Err(CliError::NotADecisionId(id.to_string())),
    }
}
