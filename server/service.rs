//! The application layer: authorisation, validation and idempotency around
//! the store, in domain types, and stream semantics (`streams`) with the one
//! rule of who sees what (`visibility`). gRPC, Connect, the console and the
//! `/v1/` routes are thin wrappers over this.

pub mod live;
pub mod streams;
pub mod visibility;

pub use live::{Live, LiveAuth, LiveHandle};

pub use streams::{DomainStream, Interruption, Reopen, StreamItem, SubscribeQuery};
pub use visibility::{Filter, Visibility};

use crate::auth::{AuthError, Principal};
use crate::core::canonical::{canonical_json, context_hash, sha256_hex};
use crate::core::schema::{check_schema, Limits};
use crate::core::{Action, Decision, NewDecision, Refusal, Status, Verdict};
use crate::store::{Applied, Command, Idempotency, PageQuery, Store, StoreError};
use serde_json::{json, Value};
use std::sync::Arc;

/// Why a request failed. Mapped to gRPC codes in `api::error`.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("{}", crate::core::not_found_message(.0))]
    NotFound(String),
    #[error(transparent)]
    Exhausted(#[from] crate::limits::Exhausted),
    /// A stream's consumer fell more than the hub's ring behind.
    #[error("stream consumer too slow: it fell more than {ring} events behind; reconnect with after_sequence = {resume_after}")]
    Lagged { resume_after: u64, ring: usize },
    /// A stream ended for a reason the client recovers from by reopening.
    #[error("{why}; {reopen}")]
    Interrupted { why: Interruption, reopen: Reopen },
    /// A resume point past the log head: this log never had those events.
    #[error(
        "after_sequence: {after} is beyond the log head {head}; this log never had those events"
    )]
    BeyondHead { after: u64, head: u64 },
}

/// Result alias for the service.
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// An Ask in domain terms.
#[derive(Debug, Clone, Default)]
pub struct AskInput {
    pub request_id: String,
    pub kind: String,
    pub input: Value,
    pub response_schema: Option<Value>,
    pub authorized_roles: Vec<String>,
    pub surfaces: Vec<String>,
    pub required_approvals: u32,
    pub context_snapshot: Option<Value>,
    pub timeout_us: Option<i64>,
}

/// An Answer in domain terms.
#[derive(Debug, Clone)]
pub struct AnswerInput {
    pub decision_id: String,
    pub request_id: String,
    pub verdict: Option<Verdict>,
    pub answer: Value,
    pub rationale: String,
    pub current_context: Option<Value>,
    pub on_behalf_of: String,
}

/// A ListDecisions query in domain terms.
#[derive(Debug, Clone, Default)]
pub struct ListInput {
    pub statuses: Vec<Status>,
    pub kinds: Vec<String>,
    pub page_size: u32,
    pub page_token: String,
}

/// Most rows one ListDecisions call reads before it returns a short page.
const LIST_SCAN_LIMIT: usize = 10_000;

/// What the service is built from (see `server::build`).
#[derive(Debug)]
pub struct Parts {
    pub store: Arc<dyn Store>,
    pub hub: Arc<crate::hub::Hub>,
    pub live: Live,
    pub receipts: crate::receipts::ReceiptKey,
    /// The Slack app, when `[slack]` is configured.
    pub slack: Option<Arc<crate::slack::Slack>>,
}

/// The decision service.
#[derive(Debug)]
pub struct Witness {
    store: Arc<dyn Store>,
    hub: Arc<crate::hub::Hub>,
    live: LiveHandle,
    limiter: crate::limits::Limiter,
    receipts: crate::receipts::ReceiptKey,
    slack: Option<Arc<crate::slack::Slack>>,
}

fn required(field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Refusal::invalid(format!("{field}: required")).into());
    }
    Ok(())
}

/// Longest `decision_id` or `request_id` accepted.
pub const MAX_ID_CHARS: usize = 128;

/// A required id: present and at most [`MAX_ID_CHARS`] characters.
fn id(field: &str, value: &str) -> Result<()> {
    required(field, value)?;
    check_id_len(field, value)
}

fn check_id_len(field: &str, value: &str) -> Result<()> {
    // PostgreSQL text cannot hold NUL: refuse it here rather than let the
    // store fail on it (INTERNAL); no witness id has control characters.
    if value.chars().any(char::is_control) {
        return Err(
            Refusal::invalid(format!("{field}: must not contain control characters")).into(),
        );
    }
    let n = value.chars().count();
    if n > MAX_ID_CHARS {
        return Err(Refusal::invalid(format!(
            "{field}: {n} characters long, the limit is {MAX_ID_CHARS}"
        ))
        .into());
    }
    Ok(())
}

fn fingerprint(value: Value) -> String {
    sha256_hex(canonical_json(&value).as_bytes())
}

impl Witness {
    pub fn new(p: Parts) -> Witness {
        let l = &p.live.limits;
        let limiter = crate::limits::Limiter::new(
            l.requests_per_second,
            l.burst,
            l.max_streams_per_principal,
        );
        Witness {
            store: p.store,
            hub: p.hub,
            live: Arc::new(arc_swap::ArcSwap::from_pointee(p.live)),
            limiter,
            receipts: p.receipts,
            slack: p.slack,
        }
    }

    /// The current generation of the reloadable config.
    pub fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }

    /// Swaps in a reloaded config: requests already running finish under
    /// the old one; open streams see the new roles from their next event.
    pub fn reload(&self, live: Live) {
        let l = &live.limits;
        self.limiter
            .reconfigure(l.requests_per_second, l.burst, l.max_streams_per_principal);
        self.live.store(Arc::new(live));
    }

    /// The Slack app, when configured.
    pub fn slack(&self) -> Option<&Arc<crate::slack::Slack>> {
        self.slack.as_ref()
    }

    /// The identity table (authenticating a request is the protocol
    /// layer's first step; see [`Witness::admit`]).
    pub fn auth(&self) -> LiveAuth {
        LiveAuth(self.live())
    }

    /// The configured size limits.
    pub fn limits(&self) -> Limits {
        self.live.load().limits
    }

    /// Takes one request from the caller's rate budget.
    pub fn admit(&self, who: &Principal) -> Result<()> {
        Ok(self.limiter.request(&who.name)?)
    }

    /// True while the store can be read; flips with the hub's view.
    pub fn health(&self) -> tokio::sync::watch::Receiver<bool> {
        self.hub.health()
    }

    /// The store's gauges for `/metrics`.
    pub async fn gauges(&self) -> Result<crate::store::StoreGauges> {
        Ok(self.store.gauges().await?)
    }

    fn idem(
        &self,
        who: &Principal,
        request_id: &str,
        // Built only for a keyed request: it copies the whole input.
        content: impl FnOnce() -> Value,
    ) -> Result<Option<Idempotency>> {
        if request_id.is_empty() {
            return Ok(None);
        }
        check_id_len("request_id", request_id)?;
        Ok(Some(Idempotency {
            scope: who.name.clone(),
            request_id: request_id.to_string(),
            fingerprint: fingerprint(content()),
        }))
    }

    /// Validates and creates a decision (idempotent by request_id).
    pub async fn ask(&self, who: &Principal, a: AskInput) -> Result<Applied> {
        let live = self.live();
        let l = &live.limits;
        required("kind", &a.kind)?;
        l.check_str("kind", &a.kind)?;
        if a.kind.chars().any(char::is_whitespace) {
            return Err(Refusal::invalid("kind: must not contain whitespace").into());
        }
        if a.authorized_roles.is_empty() {
            return Err(Refusal::invalid("authorized_roles: must name at least one role").into());
        }
        l.check_list("authorized_roles", &a.authorized_roles)?;
        l.check_list("surfaces", &a.surfaces)?;
        l.check_json("input", &a.input)?;
        if let Some(schema) = &a.response_schema {
            l.check_json("response_schema", schema)?;
            check_schema(schema)?;
        }
        let context_hash = match &a.context_snapshot {
            Some(c) => {
                l.check_json("context_snapshot", c)?;
                Some(context_hash(c))
            }
            None => None,
        };
        if let Some(t) = a.timeout_us {
            if t <= 0 {
                return Err(Refusal::invalid("timeout: must be positive").into());
            }
            l.check_timeout("timeout", t)?;
        }
        who.check_can_ask(&a.kind)?;
        let idem = self.idem(
            who,
            &a.request_id,
            || json!({"op": "ask", "kind": a.kind, "input": a.input, "response_schema": a.response_schema,
                   "authorized_roles": a.authorized_roles, "surfaces": a.surfaces,
                   "required_approvals": a.required_approvals, "context_hash": context_hash,
                   "timeout_us": a.timeout_us}),
        )?;
        let mut policy = live.policies.effective(&a.kind);
        policy.webhook_surfaces = a
            .surfaces
            .iter()
            .filter(|s| live.webhooks.contains(*s))
            .cloned()
            .collect();
        let new = NewDecision {
            id: uuid::Uuid::now_v7().to_string(),
            kind: a.kind,
            input: a.input,
            response_schema: a.response_schema,
            authorized_roles: a.authorized_roles,
            surfaces: a.surfaces,
            required_approvals: a.required_approvals,
            context_hash,
            timeout_us: a.timeout_us,
            asked_by: who.name.clone(),
        };
        Ok(self
            .store
            .execute(Command::Create { idem, new, policy })
            .await?)
    }

    /// Records an answer (idempotent by request_id).
    pub async fn answer(&self, who: &Principal, a: AnswerInput) -> Result<Applied> {
        who.check_identified()?;
        id("decision_id", &a.decision_id)?;
        let verdict = a.verdict.ok_or_else(|| {
            Refusal::invalid("verdict: must be VERDICT_APPROVE or VERDICT_REJECT")
        })?;
        required("rationale", &a.rationale)?;
        let live = self.live();
        live.limits.check_str("rationale", &a.rationale)?;
        live.limits.check_json("answer", &a.answer)?;
        let current_context_hash = match &a.current_context {
            Some(c) => {
                live.limits.check_json("current_context", c)?;
                Some(context_hash(c))
            }
            None => None,
        };
        let actor = live.auth.actor_for(who, &a.on_behalf_of)?;
        let idem = self.idem(who, &a.request_id, || {
            json!({"op": "answer", "decision_id": a.decision_id, "verdict": verdict,
                   "answer": a.answer, "rationale": a.rationale,
                   "current_context_hash": current_context_hash, "on_behalf_of": a.on_behalf_of})
        })?;
        let action = Action::Answer {
            actor,
            verdict,
            answer: a.answer,
            rationale: a.rationale,
            current_context_hash,
            current_roles: live.auth.current_roles(),
        };
        let applied = self.act(a.decision_id, idem, action).await?;
        if applied.fresh {
            crate::metrics::answered(verdict, applied.outcome);
        }
        Ok(applied)
    }

    /// Marks a decision delivered (first ACK wins).
    pub async fn ack(
        &self,
        who: &Principal,
        decision_id: String,
        surface: String,
    ) -> Result<Applied> {
        id("decision_id", &decision_id)?;
        required("surface", &surface)?;
        self.limits().check_str("surface", &surface)?;
        self.act(
            decision_id,
            None,
            Action::Ack {
                actor: who.actor(),
                surface,
            },
        )
        .await
    }

    /// Cancels an open decision.
    pub async fn cancel(
        &self,
        who: &Principal,
        decision_id: String,
        reason: String,
    ) -> Result<Applied> {
        id("decision_id", &decision_id)?;
        self.limits().check_str("reason", &reason)?;
        self.act(
            decision_id,
            None,
            Action::Cancel {
                actor: who.actor(),
                reason,
            },
        )
        .await
    }

    /// Compares the asker's current context with the decision's.
    pub async fn report_context(
        &self,
        who: &Principal,
        decision_id: String,
        snapshot: Option<Value>,
    ) -> Result<Applied> {
        id("decision_id", &decision_id)?;
        let snapshot = snapshot.ok_or_else(|| Refusal::invalid("context_snapshot: required"))?;
        self.limits().check_json("context_snapshot", &snapshot)?;
        let action = Action::ReportContext {
            actor: who.actor(),
            context_hash: context_hash(&snapshot),
        };
        self.act(decision_id, None, action).await
    }

    async fn act(
        &self,
        decision_id: String,
        idem: Option<Idempotency>,
        action: Action,
    ) -> Result<Applied> {
        Ok(self
            .store
            .execute(Command::Act {
                decision_id,
                idem,
                action,
            })
            .await?)
    }

    /// The signed receipt of a closed decision (None while open).
    pub async fn receipt(&self, d: &Decision) -> Result<Option<crate::proto::Receipt>> {
        if !d.status.is_terminal() {
            return Ok(None);
        }
        Ok(self
            .store
            .receipt(&d.id)
            .await?
            .map(|body| crate::proto::Receipt {
                signature: self.receipts.sign(&body),
                key_id: self.receipts.key_id(),
                body,
            }))
    }

    /// Reads a decision the caller may see; NOT_FOUND otherwise.
    pub async fn get(&self, who: &Principal, decision_id: &str) -> Result<Decision> {
        self.read(&Visibility::of(who.clone()), decision_id).await
    }

    /// Reads a decision `v` may see; NOT_FOUND otherwise (also when it
    /// exists: a reader learns nothing of decisions it may not see).
    pub async fn read(&self, v: &Visibility, decision_id: &str) -> Result<Decision> {
        id("decision_id", decision_id)?;
        match self.store.get(decision_id).await? {
            Some(d) if v.sees(&d) => Ok(d),
            _ => Err(ServiceError::NotFound(decision_id.to_string())),
        }
    }

    /// One page of the decisions the caller may see, in creation order.
    pub async fn list(&self, who: &Principal, q: ListInput) -> Result<(Vec<Decision>, String)> {
        let size = match q.page_size {
            0 => 100,
            n => n.min(1000) as usize,
        };
        let filter = Filter::new(
            Visibility::of(who.clone()),
            &q.kinds,
            Vec::new(),
            &self.limits(),
        )?;
        let mut cursor = decode_page_token(&q.page_token)?;
        let mut found = Vec::new();
        let mut scanned = 0;
        loop {
            let chunk = (size + 1).clamp(100, 1000);
            let rows = self
                .store
                .page(&PageQuery {
                    after_id: cursor.clone(),
                    statuses: q.statuses.clone(),
                    limit: chunk,
                })
                .await?;
            let exhausted = rows.len() < chunk;
            for d in rows {
                scanned += 1;
                cursor = Some(d.id.clone());
                if filter.allows(&d) {
                    found.push(d);
                    if found.len() > size {
                        found.pop();
                        let last = found.last().map(|d| d.id.as_str()).unwrap_or_default();
                        return Ok((found.clone(), encode_page_token(last)));
                    }
                }
            }
            if exhausted {
                return Ok((found, String::new()));
            }
            if scanned >= LIST_SCAN_LIMIT {
                // A short page with a token keeps each call bounded.
                return Ok((
                    found,
                    cursor.as_deref().map(encode_page_token).unwrap_or_default(),
                ));
            }
        }
    }
}

/// Page tokens are opaque: the last id seen, base64url-encoded.
fn encode_page_token(last_id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{last_id}"))
}

fn decode_page_token(token: &str) -> Result<Option<String>> {
    use base64::Engine;
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || Refusal::invalid("page_token: not a token from this server");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let id = text.strip_prefix("v1:").ok_or_else(bad)?;
    Ok(Some(id.to_string()))
}
