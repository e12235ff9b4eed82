//! MCP sessions belong to the principal that opened them. Every request is
//! authenticated on its own (the guard), and tools act as that request's
//! principal, so a session id grants nothing by itself; binding it keeps
//! another principal from cutting into someone else's session (cancelling
//! their calls, reading their progress), which rmcp would otherwise route.

use crate::auth::Principal;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const SESSION_HEADER: &str = "mcp-session-id";

/// Who opened each live session.
#[derive(Debug, Clone)]
pub(super) struct Owners {
    owners: Arc<Mutex<HashMap<String, String>>>,
    sessions: Arc<LocalSessionManager>,
}

impl Owners {
    pub(super) fn new(sessions: Arc<LocalSessionManager>) -> Owners {
        Owners {
            owners: Arc::default(),
            sessions,
        }
    }

    fn owner(&self, session: &str) -> Option<String> {
        self.owners.lock().ok()?.get(session).cloned()
    }

    /// Records a new session, first forgetting those rmcp has closed once
    /// they are the larger part of the table.
    async fn record(&self, session: String, owner: String) {
        let live = self.sessions.sessions.read().await;
        if let Ok(mut owners) = self.owners.lock() {
            if owners.len() >= 64 && owners.len() > 2 * live.len() {
                owners.retain(|id, _| live.contains_key(id.as_str()));
            }
            owners.insert(session, owner);
        }
    }
}

/// Refuses a request naming a session another principal opened (404, as
/// for a session that does not exist), and records who opens new ones.
pub(super) async fn bind(State(owners): State<Owners>, req: Request, next: Next) -> Response {
    let who = req
        .extensions()
        .get::<Principal>()
        .map(|p| p.name.clone())
        .unwrap_or_default();
    let session = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(s) = &session {
        if owners.owner(s).is_some_and(|owner| owner != who) {
            return (http::StatusCode::NOT_FOUND, "session not found\n").into_response();
        }
    }
    let res = next.run(req).await;
    if session.is_none() {
        if let Some(new) = res
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            owners.record(new.to_string(), who).await;
        }
    }
    res
}
