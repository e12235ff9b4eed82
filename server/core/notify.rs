//! Which webhooks an event notifies, and the body they receive. Pure: the
//! store writes these rows to the outbox in the event's own transaction.

use super::canonical::canonical_json;
use super::model::{Decision, Event, EventKind};
use serde_json::json;

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
/// surfaces, FALLBACK_FIRED to the policy's fallback webhooks.
pub fn notifications(event: &Event, after: &Decision) -> Vec<Notification> {
    let targets: &[String] = match &event.kind {
        EventKind::Created { .. } => &after.policy.webhook_surfaces,
        EventKind::FallbackFired { webhooks } => webhooks,
        _ => &[],
    };
    if targets.is_empty() {
        return Vec::new();
    }
    let body = canonical_json(&json!({
        "sequence": event.sequence,
        "type": event.kind.type_name(),
        "decision_id": event.decision_id,
        "at": event.at,
        "decision": after,
    }));
    let mut seen = Vec::new();
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
        .collect()
}
