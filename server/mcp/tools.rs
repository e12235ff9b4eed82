//! The four tools' shapes: their arguments and results (whose JSON Schemas
//! `tools/list` shows), their annotations, and the one-line summary an LLM
//! reads beside the structured result.

use crate::core::{Decision, EventKind, Status, Verdict};
use rmcp::model::{Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `request_approval`'s arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestApproval {
    /// What is being decided, as a dotted name (e.g. `deploy.production`,
    /// `db.migrate`); witness's policies match it.
    pub kind: String,
    /// What the person must judge: any JSON (the command, the diff, the
    /// amount, the reason).
    pub input: Value,
    /// Roles whose holders may answer (default: `[mcp] authorized_roles`).
    #[serde(default)]
    pub authorized_roles: Option<Vec<String>>,
    /// Distinct approvals needed (at least the policy's; default: the policy's).
    #[serde(default)]
    pub required_approvals: Option<u32>,
    /// JSON Schema an answer must satisfy, to get a structured answer back.
    #[serde(default)]
    pub response_schema: Option<Value>,
    /// How long the decision stays open, e.g. `15m` or `2h` (default: the
    /// policy's); then the policy's `on_timeout` applies.
    #[serde(default)]
    pub timeout: Option<String>,
    /// The state the decision depends on (required with two or more
    /// approvals): an approver sends the context as they see it, and a
    /// mismatch closes the decision CONTEXT_CHANGED.
    #[serde(default)]
    pub context: Option<Value>,
    /// Idempotency key: a retry with the same key and content returns the
    /// same decision (and waits for it) instead of asking again.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// `wait_for_decision`'s arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForDecision {
    /// The decision to wait for (`decision_id` of `request_approval`).
    pub decision_id: String,
    /// Stop waiting after this long, e.g. `30s` or `10m`, and return the
    /// decision still OPEN (default: wait until it closes).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// `get_decision`'s arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetDecision {
    /// The decision to read.
    pub decision_id: String,
}

/// `list_decisions`'s arguments.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListDecisions {
    /// Only decisions in this status: OPEN, APPROVED, REJECTED, CANCELLED,
    /// EXPIRED or CONTEXT_CHANGED.
    #[serde(default)]
    pub status: Option<String>,
    /// Only these kinds (globs such as `deploy.*`).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Continue a listing: the `next_page_token` of the previous page.
    #[serde(default)]
    pub page_token: Option<String>,
}

/// One person's vote.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AnswerOut {
    /// Who answered (the authenticated principal).
    pub operator: String,
    /// APPROVE or REJECT.
    pub verdict: String,
    /// Why, in their words.
    pub rationale: String,
    /// The structured answer (null unless the decision has a response_schema).
    pub answer: Value,
}

/// The signed receipt of a closed decision.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ReceiptOut {
    /// The receipt body: canonical JSON text.
    pub body: String,
    /// Ed25519 signature over the body's UTF-8 bytes, base64.
    pub signature: String,
    /// The signing key (`witness receipt public-key` prints it).
    pub key_id: String,
}

/// A decision as the tools return it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DecisionOut {
    /// The decision's id: `wait_for_decision` and `get_decision` take it.
    pub decision_id: String,
    pub kind: String,
    /// OPEN, APPROVED, REJECTED, CANCELLED, EXPIRED or CONTEXT_CHANGED.
    pub status: String,
    /// The votes so far, in order.
    pub answers: Vec<AnswerOut>,
    /// Approvals needed to close APPROVED.
    pub required_approvals: u32,
    /// Why it closed, when witness recorded one (a cancel's reason).
    pub close_reason: Option<String>,
    /// Signed proof of the outcome; null while OPEN.
    pub receipt: Option<ReceiptOut>,
}

/// `list_decisions`'s result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DecisionList {
    /// The decisions the caller may see, oldest first (without receipts:
    /// `get_decision` has them).
    pub decisions: Vec<DecisionOut>,
    /// Non-empty when there are more: pass it as `page_token`.
    pub next_page_token: String,
}

pub const REQUEST_APPROVAL: &str = "request_approval";
pub const WAIT_FOR_DECISION: &str = "wait_for_decision";
pub const GET_DECISION: &str = "get_decision";
pub const LIST_DECISIONS: &str = "list_decisions";

/// The tool list `tools/list` answers.
pub fn all() -> Vec<Tool> {
    vec![
        Tool::new(
            REQUEST_APPROVAL,
            "Ask a person to approve an action before you take it, and wait for the answer. \
             Blocks until the decision closes (APPROVED, REJECTED, EXPIRED, CANCELLED or \
             CONTEXT_CHANGED) and returns who decided and why. Only proceed when status is \
             APPROVED. Progress notifications report delivery and each vote while it waits. If \
             the call is interrupted, call wait_for_decision with the decision_id; cancelling \
             this call withdraws the request.",
            rmcp::model::JsonObject::new(),
        )
        .with_title("Request approval from a person")
        .with_input_schema::<RequestApproval>()
        .with_output_schema::<DecisionOut>()
        .with_annotations(
            ToolAnnotations::new()
                .read_only(false)
                .destructive(false)
                .idempotent(false)
                .open_world(true),
        ),
        Tool::new(
            WAIT_FOR_DECISION,
            "Wait for a decision asked earlier (by request_approval) to close, e.g. after a \
             reconnect, and return its outcome. With timeout, returns the decision still OPEN \
             when the time runs out; cancelling this call only stops waiting.",
            rmcp::model::JsonObject::new(),
        )
        .with_title("Wait for a decision")
        .with_input_schema::<WaitForDecision>()
        .with_output_schema::<DecisionOut>()
        .with_annotations(read_only()),
        Tool::new(
            GET_DECISION,
            "Read a decision's current state: status, votes with rationales, and the signed \
             receipt once it is closed.",
            rmcp::model::JsonObject::new(),
        )
        .with_title("Get a decision")
        .with_input_schema::<GetDecision>()
        .with_output_schema::<DecisionOut>()
        .with_annotations(read_only()),
        Tool::new(
            LIST_DECISIONS,
            "List the decisions you may see (the ones you asked, and those your roles may \
             answer), optionally only one status or some kinds.",
            rmcp::model::JsonObject::new(),
        )
        .with_title("List decisions")
        .with_input_schema::<ListDecisions>()
        .with_output_schema::<DecisionList>()
        .with_annotations(read_only()),
    ]
}

fn read_only() -> ToolAnnotations {
    ToolAnnotations::new()
        .read_only(true)
        .destructive(false)
        .idempotent(true)
        .open_world(false)
}

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Approve => "APPROVE",
        Verdict::Reject => "REJECT",
    }
}

/// The structured form of `d` (with its receipt, when closed).
pub fn decision_out(d: &Decision, receipt: Option<crate::proto::Receipt>) -> DecisionOut {
    use base64::Engine;
    DecisionOut {
        decision_id: d.id.clone(),
        kind: d.kind.clone(),
        status: d.status.as_str().to_string(),
        answers: d
            .answers
            .iter()
            .map(|a| AnswerOut {
                operator: a.operator.clone(),
                verdict: verdict(a.verdict).to_string(),
                rationale: a.rationale.clone(),
                answer: a.answer.clone(),
            })
            .collect(),
        required_approvals: d.required_approvals,
        close_reason: d.close_reason.clone().filter(|r| !r.is_empty()),
        receipt: receipt.map(|r| ReceiptOut {
            body: r.body,
            signature: base64::engine::general_purpose::STANDARD.encode(r.signature),
            key_id: r.key_id,
        }),
    }
}

/// One line an LLM reads well, e.g. `APPROVED by alice: canary is green`.
pub fn summary(d: &Decision) -> String {
    let votes = |v: Verdict| {
        d.answers
            .iter()
            .filter(|a| a.verdict == v)
            .map(|a| format!("{}: {}", a.operator, one_line(&a.rationale)))
            .collect::<Vec<_>>()
    };
    let approvals = d
        .answers
        .iter()
        .filter(|a| a.verdict == Verdict::Approve)
        .count();
    match d.status {
        Status::Approved => format!("APPROVED by {}", votes(Verdict::Approve).join("; ")),
        Status::Rejected => format!("REJECTED by {}", votes(Verdict::Reject).join("; ")),
        Status::Open => format!(
            "OPEN: {approvals} of {} approvals so far; decision_id {}",
            d.required_approvals, d.id
        ),
        Status::Expired => format!(
            "EXPIRED: nobody decided in time ({approvals} of {} approvals); do not proceed",
            d.required_approvals
        ),
        Status::Cancelled => match d.close_reason.as_deref().filter(|r| !r.is_empty()) {
            Some(r) => format!("CANCELLED: {}", one_line(r)),
            None => "CANCELLED".to_string(),
        },
        Status::ContextChanged => {
            "CONTEXT_CHANGED: the situation changed before people decided; ask again".to_string()
        }
    }
}

/// What a progress notification says about one event of the decision.
pub fn progress_message(kind: &EventKind, d: &Decision) -> String {
    match kind {
        EventKind::Created { .. } => format!(
            "asked: decision {} waits for {} approval(s)",
            d.id, d.required_approvals
        ),
        EventKind::Delivered { surface, by } if by.is_empty() => {
            format!("delivered: seen on {surface}")
        }
        EventKind::Delivered { surface, by } => format!("delivered: {by} saw it on {surface}"),
        EventKind::Answered { answer } => format!(
            "vote: {} {} ({} of {} approvals): {}",
            answer.operator,
            match answer.verdict {
                Verdict::Approve => "approved",
                Verdict::Reject => "rejected",
            },
            d.answers
                .iter()
                .filter(|a| a.verdict == Verdict::Approve)
                .count(),
            d.required_approvals,
            one_line(&answer.rationale)
        ),
        EventKind::Escalated { level, webhooks } => {
            format!("escalated: level {level} paged {}", webhooks.join(", "))
        }
        EventKind::FallbackFired { webhooks } => {
            format!(
                "escalated: nobody acknowledged it, paged {}",
                webhooks.join(", ")
            )
        }
        EventKind::ContextConfirmed { .. } => "context confirmed".to_string(),
        _ => summary(d),
    }
}

/// The first line of `s`, cut to 200 characters.
fn one_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default().trim();
    match line.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_input_and_output_schemas_and_annotations() {
        let tools = all();
        assert_eq!(tools.len(), 4);
        for t in &tools {
            assert_eq!(
                t.input_schema.get("type"),
                Some(&"object".into()),
                "{}",
                t.name
            );
            let out = t.output_schema.as_ref().expect("output schema");
            assert_eq!(out.get("type"), Some(&"object".into()), "{}", t.name);
            let a = t.annotations.as_ref().expect("annotations");
            let read_only = t.name != REQUEST_APPROVAL;
            assert_eq!(a.read_only_hint, Some(read_only), "{}", t.name);
        }
        let ask = &tools[0].input_schema;
        let required = ask.get("required").and_then(Value::as_array).unwrap();
        assert_eq!(
            required.len(),
            2,
            "only kind and input are required: {ask:?}"
        );
    }

    #[test]
    fn one_line_cuts() {
        assert_eq!(one_line("a\nb"), "a");
        assert_eq!(one_line(&"x".repeat(300)).chars().count(), 201);
    }
}
