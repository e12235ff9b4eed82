//! What the CLI says when something fails: in terms of its own flags, not
//! of gRPC metadata or transport internals.

use crate::client::ClientError;
use tonic::Code;

/// A failed RPC, said the way a CLI user can act on.
pub(crate) fn rpc(s: tonic::Status) -> String {
    let msg = s.message();
    match s.code() {
        Code::NotFound => {
            // The server says "decision_id: decision ID not found".
            let what = msg
                .strip_prefix("decision_id: ")
                .unwrap_or(msg)
                .trim_end_matches(" not found");
            format!("{what}: not found or not visible to you (dev mode: --as)")
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

/// A client-side failure (connecting, credentials, or an RPC).
pub(crate) fn client(e: ClientError, server: &str) -> String {
    match e {
        ClientError::Rpc(s) => rpc(s),
        ClientError::Connect { source, .. } => connect(&source, server),
        other => other.to_string(),
    }
}

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
pub(crate) fn decision_id(id: &str) -> Result<(), String> {
    match uuid::Uuid::parse_str(id) {
        Ok(_) => Ok(()),
        Err(_) => Err(format!(
            "{id:?} is not a decision id (a UUID such as 0190f3c2-7c1e-7b9a-9c3e-2f4d5e6f7a8b; \
             `witness list` shows them)"
        )),
    }
}
