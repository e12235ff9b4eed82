//! Domain types: decisions, answers, events. Times are Unix microseconds.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Unix time in microseconds.
pub type Micros = i64;

/// Where a decision is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    #[default]
    Open,
    Approved,
    Rejected,
    Cancelled,
    Expired,
    ContextChanged,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Open,
        Status::Approved,
        Status::Rejected,
        Status::Cancelled,
        Status::Expired,
        Status::ContextChanged,
    ];

    pub fn is_terminal(self) -> bool {
        self != Status::Open
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "OPEN",
            Status::Approved => "APPROVED",
            Status::Rejected => "REJECTED",
            Status::Cancelled => "CANCELLED",
            Status::Expired => "EXPIRED",
            Status::ContextChanged => "CONTEXT_CHANGED",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
    }
}

/// An operator's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    #[default]
    Approve,
    Reject,
}

/// What happens when a decision reaches `expires_at`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    #[default]
    Expire,
    Approve,
    Reject,
}

impl OnTimeout {
    pub fn as_str(self) -> &'static str {
        match self {
            OnTimeout::Expire => "expire",
            OnTimeout::Approve => "approve",
            OnTimeout::Reject => "reject",
        }
    }
}

/// The effective policy, copied into a decision at creation.
///
/// A missing field takes its `Default` value, here and in the other stored
/// types: the defaults equal the templates a compact stored body leaves
/// out (`store::codec`), so a body decodes without being filled first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// The kind glob that matched; empty for the default policy.
    pub matched_kind: String,
    pub required_approvals: u32,
    pub timeout_us: Option<i64>,
    pub on_timeout: OnTimeout,
    /// Answer recorded when `on_timeout` approves or rejects.
    pub timeout_answer: Value,
    pub ack_window_us: i64,
    pub fallback: Vec<String>,
    pub context_max_age_us: i64,
    pub allow_self_approval: bool,
    /// The decision's surfaces that are configured webhooks: they get the
    /// CREATED notification through the outbox.
    #[serde(default)]
    pub webhook_surfaces: Vec<String>,
    /// The escalation chain (levels 1..N), after the ack-window fallback.
    /// Skipped when empty so decisions without a chain serialise as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalation: Vec<EscalationLevel>,
    /// Webhooks told the outcome when the decision closes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify_outcome: Vec<String>,
    /// The Slack channel the decision is posted to and kept up to date in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_channel: Option<String>,
}

/// When an escalation level stands down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unless {
    /// Never: the level fires whenever the decision is still open.
    #[default]
    None,
    /// Some surface acknowledged the decision.
    Acked,
    /// Some answer is recorded.
    Answered,
}

impl Unless {
    pub fn as_str(self) -> &'static str {
        match self {
            Unless::None => "",
            Unless::Acked => "acked",
            Unless::Answered => "answered",
        }
    }

    /// Whether the condition holds for `d`. Both conditions only ever turn
    /// true (an ACK or an answer is never taken back), so a level whose
    /// condition holds now would hold when it comes due.
    pub fn holds(self, d: &Decision) -> bool {
        match self {
            Unless::None => false,
            Unless::Acked => d.delivered_at.is_some(),
            Unless::Answered => !d.answers.is_empty(),
        }
    }
}

/// One level of a policy's escalation chain.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EscalationLevel {
    /// Time after creation at which the level comes due.
    pub after_us: i64,
    pub webhooks: Vec<String>,
    #[serde(default)]
    pub unless: Unless,
}

/// Where one escalation level of a decision stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EscalationState {
    #[default]
    Pending,
    Fired,
    /// Its `unless` held, or the decision closed first: it never fires.
    Skipped,
}

impl EscalationState {
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationState::Pending => "PENDING",
            EscalationState::Fired => "FIRED",
            EscalationState::Skipped => "SKIPPED",
        }
    }
}

/// One escalation level as tracked on a decision.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Escalation {
    /// 1-based, in chain order.
    pub level: u32,
    pub due_at: Micros,
    pub state: EscalationState,
    pub fired_at: Option<Micros>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            matched_kind: String::new(),
            required_approvals: 1,
            timeout_us: None,
            on_timeout: OnTimeout::Expire,
            timeout_answer: Value::Null,
            ack_window_us: 60_000_000,
            fallback: Vec::new(),
            context_max_age_us: 60_000_000,
            allow_self_approval: false,
            webhook_surfaces: Vec::new(),
            escalation: Vec::new(),
            notify_outcome: Vec::new(),
            slack_channel: None,
        }
    }
}

/// The stored template (`store::codec`): an open, empty decision needing
/// one approval under the default policy.
impl Default for Decision {
    fn default() -> Self {
        Decision {
            id: String::new(),
            kind: String::new(),
            input: Value::Null,
            response_schema: None,
            authorized_roles: Vec::new(),
            surfaces: Vec::new(),
            required_approvals: 1,
            context_hash: None,
            status: Status::Open,
            answers: Vec::new(),
            asked_by: String::new(),
            created_at: 0,
            expires_at: None,
            delivered_at: None,
            delivered_via: None,
            closed_at: None,
            version: 0,
            last_sequence: 0,
            policy: Policy::default(),
            context_confirmed_at: None,
            context_confirmed_sequence: 0,
            close_reason: None,
            closed_by: None,
            fallback_fired: false,
            escalations: Vec::new(),
            last_event_type: None,
            updated_at: 0,
        }
    }
}

/// One recorded answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Answer {
    pub verdict: Verdict,
    pub answer: Value,
    pub rationale: String,
    /// Whom the answer counts for.
    pub operator: String,
    /// The principal that sent it when acting on behalf of `operator`.
    pub submitted_by: Option<String>,
    /// The `[[issuers]]` entry that vouched for `operator` (absent for a
    /// token or dev principal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    pub answered_at: Micros,
    /// Sequence of the ANSWERED event (filled in by `apply`).
    pub sequence: u64,
}

/// One question for humans: the projection of its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Decision {
    pub id: String,
    pub kind: String,
    pub input: Value,
    pub response_schema: Option<Value>,
    pub authorized_roles: Vec<String>,
    pub surfaces: Vec<String>,
    pub required_approvals: u32,
    pub context_hash: Option<String>,
    pub status: Status,
    pub answers: Vec<Answer>,
    pub asked_by: String,
    pub created_at: Micros,
    pub expires_at: Option<Micros>,
    pub delivered_at: Option<Micros>,
    pub delivered_via: Option<String>,
    pub closed_at: Option<Micros>,
    pub version: u64,
    pub last_sequence: u64,
    pub policy: Policy,
    pub context_confirmed_at: Option<Micros>,
    /// Sequence of the latest confirmation (0: never); orders confirmations
    /// against approvals without trusting clocks.
    pub context_confirmed_sequence: u64,
    pub close_reason: Option<String>,
    pub closed_by: Option<String>,
    pub fallback_fired: bool,
    /// The escalation chain's levels and where each stands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalations: Vec<Escalation>,
    /// Type of the latest event (e.g. `ANSWERED`; `""` when stored,
    /// before the first) and when it happened, so a snapshot can describe a
    /// decision without reading its events.
    #[serde(with = "super::event_type::last_event_type")]
    pub last_event_type: Option<super::EventType>,
    pub updated_at: Micros,
}

impl Decision {
    /// Whether `name` holding `roles` may see this decision.
    pub fn visible_to(&self, name: &str, roles: &[String]) -> bool {
        self.asked_by == name || self.holds_role(roles)
    }

    /// Whether any of `roles` is one of the authorized roles.
    pub fn holds_role(&self, roles: &[String]) -> bool {
        roles.iter().any(|r| self.authorized_roles.contains(r))
    }

    /// When the ack-window fallback is due, if it still can fire.
    pub fn fallback_due_at(&self) -> Option<Micros> {
        (self.status == Status::Open && self.delivered_at.is_none() && !self.fallback_fired)
            .then(|| self.created_at.saturating_add(self.policy.ack_window_us))
    }

    /// When the next escalation level is due, if one still can fire.
    pub fn next_escalation_at(&self) -> Option<Micros> {
        if self.status != Status::Open {
            return None;
        }
        self.escalations
            .iter()
            .filter(|e| e.state == EscalationState::Pending)
            .map(|e| e.due_at)
            .min()
    }

    /// The decision's next ladder timer: the fallback or an escalation
    /// level, whichever is due first (stored as the `fallback_at` column).
    pub fn ladder_due_at(&self) -> Option<Micros> {
        match (self.fallback_due_at(), self.next_escalation_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Every webhook the decision was paged to: fallbacks that fired and
    /// escalation levels that fired, in order, without repeats.
    pub fn paged_webhooks(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let fallback = self.fallback_fired.then_some(&self.policy.fallback);
        let levels = self
            .escalations
            .iter()
            .filter(|e| e.state == EscalationState::Fired)
            .filter_map(|e| {
                self.policy
                    .escalation
                    .get((e.level as usize).checked_sub(1)?)
            })
            .map(|l| &l.webhooks);
        for hook in fallback.into_iter().chain(levels).flatten() {
            if !out.contains(hook) {
                out.push(hook.clone());
            }
        }
        out
    }
}

/// What an event records. Serialised with `type` and `data` keys; a missing
/// payload field takes its default, as in a compact stored body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventKind {
    /// The initial state (version 0, last_sequence 0 until applied).
    Created {
        decision: Box<Decision>,
    },
    Delivered {
        #[serde(default)]
        surface: String,
        #[serde(default)]
        by: String,
    },
    Answered {
        answer: Answer,
    },
    Approved,
    Rejected,
    Cancelled {
        #[serde(default)]
        by: String,
        #[serde(default)]
        reason: String,
    },
    ContextConfirmed {
        #[serde(default)]
        by: String,
    },
    ContextChanged {
        #[serde(default)]
        by: String,
        #[serde(default)]
        reported_hash: String,
    },
    FallbackFired {
        #[serde(default)]
        webhooks: Vec<String>,
    },
    Expired,
    /// An escalation level fired (1-based) and paged `webhooks`.
    Escalated {
        #[serde(default)]
        level: u32,
        #[serde(default)]
        webhooks: Vec<String>,
    },
}

/// One entry of the global, gap-free, hash-chained event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub sequence: u64,
    pub decision_id: String,
    pub at: Micros,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    /// The canonical JSON text that is stored and hashed. Fails only on a
    /// bug (a value serde cannot represent); never hashes a placeholder.
    pub fn canonical(&self) -> Result<String, serde_json::Error> {
        let value = serde_json::to_value(self)?;
        Ok(super::canonical::canonical_json(&value))
    }
}

/// The hash of an event in the chain: SHA-256 over the previous hash, a
/// newline, and the event's canonical JSON.
pub fn chain_hash(prev_hash: &str, canonical_event: &str) -> String {
    chain_hash_of_parts(prev_hash, &[canonical_event])
}

/// `chain_hash` of `parts` concatenated, hashed piece by piece so a caller
/// that has its text in pieces need not join (copy) them first.
pub fn chain_hash_of_parts(prev_hash: &str, parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update("\n");
    parts.iter().for_each(|p| h.update(p));
    hex::encode(h.finalize())
}

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
