//! The MCP server handler: one per MCP session, over the one `Witness`
//! service. Every tool call is made as the principal the request guard
//! authenticated from that HTTP request's headers, through the same service
//! calls as gRPC (`ask`, `watch`, `get`, `list`, `cancel`), so `can_ask`,
//! rate limits, stream slots and visibility hold unchanged.

use super::tools::{
    self, DecisionList, GetDecision, ListDecisions, RequestApproval, WaitForDecision,
};
use super::McpError;
use crate::auth::Principal;
use crate::core::{Decision, Refusal};
use crate::service::{AskInput, ListInput, ServiceError, StreamItem, Witness};
use futures::StreamExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelledNotificationParam,
    ContentBlock, Implementation, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ProgressToken, ProtocolVersion, RequestId, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// The reason recorded when an agent cancels its `request_approval` call.
pub const WITHDRAWN: &str = "the agent withdrew the request";

/// How long a call whose cancellation token fired waits for the
/// `notifications/cancelled` that may explain it. rmcp fires the token
/// first and hands the notification to the handler just after; a token
/// with no such notification is the session ending (a dropped client),
/// which leaves the decision open.
const CANCEL_GRACE: Duration = Duration::from_secs(2);

/// Serves one MCP session.
#[derive(Debug, Clone)]
pub struct Handler {
    w: Arc<Witness>,
    default_roles: Arc<Vec<String>>,
    /// The session's `request_approval` calls in flight, by JSON-RPC id:
    /// `on_cancelled` tells the call who withdrew it.
    calls: Arc<Mutex<HashMap<RequestId, oneshot::Sender<String>>>>,
}

/// Removes a call from `calls` however it ends.
struct Registered<'a> {
    calls: &'a Mutex<HashMap<RequestId, oneshot::Sender<String>>>,
    id: RequestId,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.remove(&self.id);
        }
    }
}

/// The principal the request guard put on the HTTP request that carried
/// this message.
fn principal(ext: &rmcp::model::Extensions) -> Result<Principal, McpError> {
    ext.get::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<Principal>())
        .cloned()
        .ok_or(McpError::NoPrincipal)
}

fn parse_duration(field: &str, text: Option<&str>) -> Result<Option<Duration>, McpError> {
    text.filter(|t| !t.trim().is_empty())
        .map(|t| {
            humantime::parse_duration(t.trim()).map_err(|e| {
                McpError::Service(
                    Refusal::invalid(format!("{field}: {e} (write e.g. \"15m\" or \"2h\")")).into(),
                )
            })
        })
        .transpose()
}

fn args<T: serde::de::DeserializeOwned>(
    tool: &str,
    raw: Option<rmcp::model::JsonObject>,
) -> Result<T, McpError> {
    serde_json::from_value(Value::Object(raw.unwrap_or_default()))
        .map_err(|e| McpError::Service(Refusal::invalid(format!("{tool}: {e}")).into()))
}

impl Handler {
    pub fn new(w: Arc<Witness>, default_roles: Arc<Vec<String>>) -> Handler {
        Handler {
            w,
            default_roles,
            calls: Arc::default(),
        }
    }

    async fn request_approval(
        &self,
        who: &Principal,
        a: RequestApproval,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let timeout_us = parse_duration("timeout", a.timeout.as_deref())?
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        let input = AskInput {
            request_id: a.request_id.unwrap_or_default(),
            kind: a.kind,
            input: a.input,
            response_schema: a.response_schema,
            authorized_roles: a
                .authorized_roles
                .unwrap_or_else(|| self.default_roles.as_ref().clone()),
            surfaces: Vec::new(),
            required_approvals: a.required_approvals.unwrap_or(0),
            context_snapshot: a.context,
            timeout_us,
        };
        let asked = self.w.ask(who, input).await?;
        let id = asked.decision.id.clone();
        crate::api::observe::record_decision(&id);
        let (tx, mut withdrawn) = oneshot::channel();
        if let Ok(mut calls) = self.calls.lock() {
            calls.insert(ctx.id.clone(), tx);
        }
        let _registered = Registered {
            calls: &self.calls,
            id: ctx.id.clone(),
        };
        let waited = tokio::select! {
            r = self.wait(who, &id, None, asked.fresh, ctx) => r,
            by = &mut withdrawn => self.withdraw(who, &id, by.ok()).await,
            () = ctx.ct.cancelled() => {
                let by = tokio::time::timeout(CANCEL_GRACE, withdrawn).await;
                self.withdraw(who, &id, by.ok().and_then(Result::ok)).await
            }
        };
        match waited {
            // Asked, but the wait failed (no stream slot left, the store
            // away): the agent must still learn which decision it opened.
            Err(McpError::Service(e)) => {
                Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                    "{}; decision {id} was asked and is open: call wait_for_decision with \
                     decision_id {id}",
                    super::refusal_line(e)
                ))]))
            }
            other => other,
        }
    }

    /// Ends a `request_approval` whose call was cancelled: the decision is
    /// cancelled when its own caller sent `notifications/cancelled`; left
    /// open when the session ended without one (a dropped connection).
    async fn withdraw(
        &self,
        who: &Principal,
        id: &str,
        by: Option<String>,
    ) -> Result<CallToolResult, McpError> {
        match by {
            Some(by) if by == who.name => {
                let out = self.w.cancel(who, id.to_string(), WITHDRAWN.into()).await;
                match out {
                    Ok(applied) => {
                        tracing::info!(decision_id = %id, "mcp: the agent withdrew the request");
                        Ok(self.result(&applied.decision).await?)
                    }
                    // Closed meanwhile: the outcome stands (and nobody
                    // reads this call's result).
                    Err(e) => {
                        tracing::info!(decision_id = %id, error = %e, "mcp: withdrawal refused");
                        Err(McpError::Interrupted)
                    }
                }
            }
            _ => {
                tracing::info!(decision_id = %id, "mcp: call ended without a cancel; the decision stays open");
                Err(McpError::Interrupted)
            }
        }
    }

    /// Follows `id` (through `Witness::watch`, which holds one of the
    /// caller's stream slots) until it closes or `limit` passes, sending a
    /// progress notification for each event when the client gave a token.
    async fn wait(
        &self,
        who: &Principal,
        id: &str,
        limit: Option<Duration>,
        fresh: bool,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let token = ctx.meta.get_progress_token();
        let mut stream = self.w.watch(who, id.to_string()).await?;
        let mut progress = 0u32;
        let deadline = limit.map(|l| tokio::time::Instant::now() + l);
        let mut last: Option<Decision> = None;
        loop {
            let next = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, stream.next()).await.ok(),
                    None => Some(stream.next().await),
                }
            };
            let item = match next.await {
                None => break, // the caller's limit: return the decision as it is
                Some(None) => break,
                Some(Some(item)) => item?,
            };
            let (message, decision) = match &item {
                // The first message names the decision, so an agent can
                // resume with wait_for_decision whatever happens next.
                StreamItem::Snapshot(d) if fresh => (
                    tools::progress_message(
                        &crate::core::EventKind::Created {
                            decision: d.clone(),
                        },
                        d,
                    ),
                    d.as_ref().clone(),
                ),
                StreamItem::Snapshot(d) => (
                    format!("waiting: decision {} is {}", d.id, tools::summary(d)),
                    d.as_ref().clone(),
                ),
                StreamItem::Event(p) => (
                    tools::progress_message(&p.event.kind, &p.decision),
                    p.decision.clone(),
                ),
                StreamItem::SnapshotEnd { .. } => continue,
            };
            if let Some(token) = &token {
                progress += 1;
                self.notify(ctx, token, progress, message).await;
            }
            let closed = decision.status.is_terminal();
            last = Some(decision);
            if closed {
                break;
            }
        }
        let d = match last {
            Some(d) => d,
            None => self.w.get(who, id).await?,
        };
        self.result(&d).await
    }

    async fn notify(
        &self,
        ctx: &RequestContext<RoleServer>,
        token: &ProgressToken,
        progress: u32,
        message: String,
    ) {
        let mut p = ProgressNotificationParam::new(token.clone(), f64::from(progress));
        p.message = Some(message);
        if let Err(e) = ctx.peer.notify_progress(p).await {
            // The client went away; the wait goes on until the session ends.
            tracing::debug!(error = %e, "mcp: progress notification not delivered");
        }
    }

    /// A tool result: the structured decision and its one-line summary.
    async fn result(&self, d: &Decision) -> Result<CallToolResult, McpError> {
        let receipt = self.w.receipt(d).await?;
        let out = tools::decision_out(d, receipt);
        structured(tools::summary(d), &out)
    }

    async fn list(&self, who: &Principal, a: ListDecisions) -> Result<CallToolResult, McpError> {
        let statuses = match a.status.as_deref().filter(|s| !s.is_empty()) {
            None => Vec::new(),
            Some(s) => vec![crate::core::Status::parse(s).ok_or_else(|| {
                McpError::Service(
                    Refusal::invalid(format!(
                        "status: {s:?} is not one of OPEN, APPROVED, REJECTED, CANCELLED, \
                         EXPIRED, CONTEXT_CHANGED"
                    ))
                    .into(),
                )
            })?],
        };
        let q = ListInput {
            statuses,
            kinds: a.kinds,
            page_size: 100,
            page_token: a.page_token.unwrap_or_default(),
        };
        let (decisions, next_page_token) = self.w.list(who, q).await?;
        let out = DecisionList {
            decisions: decisions
                .iter()
                .map(|d| tools::decision_out(d, None))
                .collect(),
            next_page_token,
        };
        let open = decisions.iter().filter(|d| !d.status.is_terminal()).count();
        let more = if out.next_page_token.is_empty() {
            ""
        } else {
            " (more: pass next_page_token)"
        };
        let line = format!("{} decisions, {open} open{more}", decisions.len());
        structured(line, &out)
    }

    async fn call(
        &self,
        req: CallToolRequestParams,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let who = principal(&ctx.extensions)?;
        crate::api::observe::record_principal(&who.name);
        self.w.admit(&who)?;
        match req.name.as_ref() {
            tools::REQUEST_APPROVAL => {
                let a = args(tools::REQUEST_APPROVAL, req.arguments)?;
                self.request_approval(&who, a, ctx).await
            }
            tools::WAIT_FOR_DECISION => {
                let a: WaitForDecision = args(tools::WAIT_FOR_DECISION, req.arguments)?;
                let limit = parse_duration("timeout", a.timeout.as_deref())?;
                crate::api::observe::record_decision(&a.decision_id);
                tokio::select! {
                    r = self.wait(&who, &a.decision_id, limit, false, ctx) => r,
                    // Cancelling a wait only stops it: the decision is untouched.
                    () = ctx.ct.cancelled() => Err(McpError::Interrupted),
                }
            }
            tools::GET_DECISION => {
                let a: GetDecision = args(tools::GET_DECISION, req.arguments)?;
                crate::api::observe::record_decision(&a.decision_id);
                let d = self.w.get(&who, &a.decision_id).await?;
                self.result(&d).await
            }
            tools::LIST_DECISIONS => {
                let a = args(tools::LIST_DECISIONS, req.arguments)?;
                self.list(&who, a).await
            }
            other => Err(McpError::UnknownTool(other.to_string())),
        }
    }
}

fn structured<T: serde::Serialize>(line: String, out: &T) -> Result<CallToolResult, McpError> {
    let value = serde_json::to_value(out).map_err(|e| McpError::Encode(e.to_string()))?;
    let mut r = CallToolResult::success(vec![ContentBlock::text(line)]);
    r.structured_content = Some(value);
    Ok(r)
}

impl ServerHandler for Handler {
    // Logging is deprecated (SEP-2577) but still in the 2025 revisions
    // witness serves, and the conformance suite checks `logging/setLevel`.
    #[allow(deprecated)]
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_logging()
            .build();
        let mut info = ServerConfig::new(capabilities);
        info.server_info = Implementation::new("witness", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "witness asks people to approve actions. Before an action that needs a person's \
             approval, call request_approval and proceed only if the status is APPROVED."
                .into(),
        );
        info
    }

    /// Sessions (the handshake-era versions) only: there a cancelled call
    /// and a dropped connection are told apart, which the sessionless
    /// 2026-07-28 revision cannot do. Newer clients fall back to these.
    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(&ProtocolVersion::V_2025_11_25))
    }

    /// Accepted so clients that set a level work; witness sends no log
    /// messages over MCP (progress notifications carry what happens).
    #[allow(deprecated)]
    async fn set_level(
        &self,
        _request: rmcp::model::SetLevelRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let who = principal(&ctx.extensions)?;
        self.w.admit(&who).map_err(McpError::Service)?;
        Ok(ListToolsResult::with_all_items(tools::all()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        match self.call(request, &ctx).await {
            Ok(r) => Ok(r.into()),
            Err(McpError::UnknownTool(t)) => Err(ErrorData::invalid_params(
                format!("no tool named {t:?}"),
                None,
            )),
            Err(e @ (McpError::NoPrincipal | McpError::Encode(_))) => Err(e.into()),
            // The client cancelled or left: nobody reads this answer.
            Err(McpError::Interrupted) => Err(ErrorData::internal_error(
                "the call ended before the decision closed; wait_for_decision resumes",
                None,
            )),
            Err(McpError::Service(e)) => {
                let line = super::refusal_line(e);
                tracing::info!(tool = %name, refusal = %line, "mcp: tool refused");
                Ok(CallToolResult::error(vec![ContentBlock::text(line)]).into())
            }
        }
    }

    async fn on_cancelled(
        &self,
        notification: CancelledNotificationParam,
        ctx: NotificationContext<RoleServer>,
    ) {
        let Some(id) = notification.request_id else {
            return;
        };
        let Ok(who) = principal(&ctx.extensions) else {
            return;
        };
        let tx = self.calls.lock().ok().and_then(|mut c| c.remove(&id));
        if let Some(tx) = tx {
            let _ = tx.send(who.name);
        }
    }
}

impl From<ServiceError> for McpError {
    fn from(e: ServiceError) -> McpError {
        McpError::Service(e)
    }
}
