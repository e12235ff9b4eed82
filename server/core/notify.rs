//! Which webhooks an event notifies, and the body they receive. Pure: the
//! store writes these rows to the outbox in the event's own transaction.

use super::canonical::canonical_json;
use super::model::{Decision, Event, EventKind};
use serde_json::{json, Value};

/// One outgoing notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub webhook: String,
    pub decision_id: String,
    pub sequence: u64,
    pub event_type: String,
    /// The plain witness event as canonical JSON: `sequence`, `type`,
    /// `decision_id`, `at` (Unix microseconds) and `decision` (state after).
    pub body: String,
}

/// The notifications `event` causes: CREATED goes to the decision's webhook
/// surfaces, FALLBACK_FIRED to the policy's fallback webhooks, ESCALATED to
/// the level's webhooks, and the event that closes the decision (its
/// outcome) to `notify_outcome` and every webhook that was paged for it.
pub fn notifications(event: &Event, after: &Decision) -> Vec<Notification> {
    let closing = matches!(
        event.kind,
        EventKind::Approved
            | EventKind::Rejected
            | EventKind::Cancelled { .. }
            | EventKind::ContextChanged { .. }
            | EventKind::Expired
    ) && after.status.is_terminal();
    let outcome_targets;
    let targets: &[String] = match &event.kind {
        EventKind::Created { .. } => &after.policy.webhook_surfaces,
        EventKind::FallbackFired { webhooks } | EventKind::Escalated { webhooks, .. } => webhooks,
        _ if closing => {
            outcome_targets = after
                .policy
                .notify_outcome
                .iter()
                .cloned()
                .chain(after.paged_webhooks())
                .collect::<Vec<_>>();
            &outcome_targets
        }
        _ => &[],
    };
    if targets.is_empty() && slack_destination(event, after).is_none() {
        return Vec::new();
    }
    let mut payload = json!({
        "sequence": event.sequence,
        "type": event.kind.type_name(),
        "decision_id": event.decision_id,
        "at": event.at,
        "decision": after,
    });
    if let EventKind::Escalated { level, .. } = &event.kind {
        payload["level"] = json!(level);
    }
    if closing {
        payload["outcome"] = outcome(after);
    }
    let body = canonical_json(&payload);
    let mut seen = Vec::new();
    let slack = slack_destination(event, after);
    targets
        .iter()
        .filter(|t| {
            let fresh = !seen.contains(t);
            seen.push(*t);
            fresh
        })
        .map(|webhook| Notification {
            webhook: webhook.clone(),
            decision_id: event.decision_id.clone(),
            sequence: event.sequence,
            event_type: event.kind.type_name().to_string(),
            body: body.clone(),
        })
        .chain(slack.map(|webhook| Notification {
            webhook,
            decision_id: event.decision_id.clone(),
            sequence: event.sequence,
            event_type: event.kind.type_name().to_string(),
            body: body.clone(),
        }))
        .collect()
}

/// The Slack outbox destination (`slack:CHANNEL`) an event goes to: the
/// post (CREATED) and every later change the message shows (a vote, the
/// close, the expiry, the cancel, an escalation), when the decision's
/// policy names a channel.
fn slack_destination(event: &Event, after: &Decision) -> Option<String> {
    let channel = after.policy.slack_channel.as_deref()?;
    let shown = matches!(
        event.kind,
        EventKind::Created { .. }
            | EventKind::Answered { .. }
            | EventKind::Approved
            | EventKind::Rejected
            | EventKind::Cancelled { .. }
            | EventKind::ContextChanged { .. }
            | EventKind::Expired
            | EventKind::FallbackFired { .. }
            | EventKind::Escalated { .. }
    );
    shown.then(|| format!("{SLACK_DESTINATION}{channel}"))
}

/// The prefix of Slack outbox destinations (`store::SLACK_PREFIX`).
pub const SLACK_DESTINATION: &str = "slack:";

/// What the people who were paged need to know about a closed decision:
/// the status, who decided (and who sent it for them), their rationales,
/// and how long it took.
pub fn outcome(d: &Decision) -> Value {
    let answers: Vec<Value> = d
        .answers
        .iter()
        .map(|a| {
            json!({
                "operator": a.operator,
                "submitted_by": a.submitted_by,
                "verdict": a.verdict,
                "rationale": a.rationale,
                "answered_at": a.answered_at,
            })
        })
        .collect();
    let time_to_decision_ms = d.closed_at.map(|c| c.saturating_sub(d.created_at) / 1000);
    json!({
        "decision_id": d.id,
        "kind": d.kind,
        "status": d.status.as_str(),
        "answers": answers,
        "closed_by": d.closed_by,
        "close_reason": d.close_reason,
        "closed_at": d.closed_at,
        "time_to_decision_ms": time_to_decision_ms,
    })
}
