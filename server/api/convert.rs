//! Conversion between protobuf messages and domain types. The protocol-only
//! conversions (JSON, Timestamp, Duration) are witness-proto's; this module
//! adds canonical number form and the refusals a request gets.

use crate::core::{self, canonical::canonical_json, Micros, Refusal};
use crate::proto;
use crate::proto::convert;
pub use crate::proto::convert::{duration, json_to_proto, micros_from_timestamp, timestamp};
use serde_json::Value;

/// Converts a protobuf `Value` to JSON in canonical number form (so that
/// what is stored, hashed and replayed is the same). `field` names the
/// request field in errors.
pub fn json_from_proto(field: &str, v: Option<prost_types::Value>) -> Result<Value, Refusal> {
    let raw = convert::json_from_proto(field, v).map_err(refusal)?;
    serde_json::from_str(&canonical_json(&raw))
        .map_err(|e| Refusal::invalid(format!("{field}: {e}")))
}

/// Like [`json_from_proto`], but unset stays `None`.
pub fn opt_json_from_proto(
    field: &str,
    v: Option<prost_types::Value>,
) -> Result<Option<Value>, Refusal> {
    v.map(|v| json_from_proto(field, Some(v))).transpose()
}

/// A request Duration in microseconds; `field` names it in errors.
pub fn micros_from_duration(field: &str, d: &prost_types::Duration) -> Result<Micros, Refusal> {
    convert::micros_from_duration(field, d).map_err(refusal)
}

/// A malformed protobuf value is the caller's mistake.
fn refusal(e: convert::ConvertError) -> Refusal {
    Refusal::invalid(e.to_string())
}

pub fn status(s: core::Status) -> proto::Status {
    match s {
        core::Status::Open => proto::Status::Open,
        core::Status::Approved => proto::Status::Approved,
        core::Status::Rejected => proto::Status::Rejected,
        core::Status::Cancelled => proto::Status::Cancelled,
        core::Status::Expired => proto::Status::Expired,
        core::Status::ContextChanged => proto::Status::ContextChanged,
    }
}

/// A request status filter entry.
pub fn status_from_proto(field: &str, raw: i32) -> Result<core::Status, Refusal> {
    match proto::Status::try_from(raw) {
        Ok(proto::Status::Open) => Ok(core::Status::Open),
        Ok(proto::Status::Approved) => Ok(core::Status::Approved),
        Ok(proto::Status::Rejected) => Ok(core::Status::Rejected),
        Ok(proto::Status::Cancelled) => Ok(core::Status::Cancelled),
        Ok(proto::Status::Expired) => Ok(core::Status::Expired),
        Ok(proto::Status::ContextChanged) => Ok(core::Status::ContextChanged),
        _ => Err(Refusal::invalid(format!("{field}: {raw} is not a status"))),
    }
}

pub fn verdict(v: core::Verdict) -> proto::Verdict {
    match v {
        core::Verdict::Approve => proto::Verdict::Approve,
        core::Verdict::Reject => proto::Verdict::Reject,
    }
}

/// A request verdict; unspecified or unknown is `None` (refused later with
/// a message naming the field).
pub fn verdict_from_proto(raw: i32) -> Option<core::Verdict> {
    match proto::Verdict::try_from(raw) {
        Ok(proto::Verdict::Approve) => Some(core::Verdict::Approve),
        Ok(proto::Verdict::Reject) => Some(core::Verdict::Reject),
        _ => None,
    }
}

pub fn event_type(kind: &core::EventKind) -> proto::EventType {
    event_type_of(kind.event_type())
}

/// The proto enum value of an event type.
pub fn event_type_of(t: core::EventType) -> proto::EventType {
    use core::EventType as T;
    match t {
        T::Created => proto::EventType::Created,
        T::Delivered => proto::EventType::Delivered,
        T::Answered => proto::EventType::Answered,
        T::Approved => proto::EventType::Approved,
        T::Rejected => proto::EventType::Rejected,
        T::Cancelled => proto::EventType::Cancelled,
        T::ContextConfirmed => proto::EventType::ContextConfirmed,
        T::ContextChanged => proto::EventType::ContextChanged,
        T::FallbackFired => proto::EventType::FallbackFired,
        T::Expired => proto::EventType::Expired,
        T::Escalated => proto::EventType::Escalated,
    }
}

pub fn answer_outcome(o: core::Outcome) -> proto::AnswerOutcome {
    match o {
        core::Outcome::AwaitingApprovals => proto::AnswerOutcome::AwaitingApprovals,
        core::Outcome::ContextChanged => proto::AnswerOutcome::ContextChanged,
        _ => proto::AnswerOutcome::Closed,
    }
}

fn policy(p: &core::Policy) -> proto::DecisionPolicy {
    proto::DecisionPolicy {
        matched_kind: p.matched_kind.clone(),
        timeout: p.timeout_us.map(duration),
        on_timeout: p.on_timeout.as_str().to_string(),
        timeout_answer: Some(json_to_proto(&p.timeout_answer)),
        ack_window: Some(duration(p.ack_window_us)),
        fallback: p.fallback.clone(),
        context_max_age: Some(duration(p.context_max_age_us)),
        allow_self_approval: p.allow_self_approval,
        escalation: p
            .escalation
            .iter()
            .map(|l| proto::EscalationLevel {
                after: Some(duration(l.after_us)),
                webhooks: l.webhooks.clone(),
                unless: l.unless.as_str().to_string(),
            })
            .collect(),
        notify_outcome: p.notify_outcome.clone(),
    }
}

fn escalations(d: &core::Decision) -> Vec<proto::Escalation> {
    d.escalations
        .iter()
        .map(|e| {
            let level = (e.level as usize)
                .checked_sub(1)
                .and_then(|i| d.policy.escalation.get(i));
            proto::Escalation {
                level: e.level,
                after: level.map(|l| duration(l.after_us)),
                webhooks: level.map(|l| l.webhooks.clone()).unwrap_or_default(),
                unless: level
                    .map(|l| l.unless.as_str().to_string())
                    .unwrap_or_default(),
                state: match e.state {
                    core::EscalationState::Pending => proto::EscalationState::Pending,
                    core::EscalationState::Fired => proto::EscalationState::Fired,
                    core::EscalationState::Skipped => proto::EscalationState::Skipped,
                } as i32,
                due_at: Some(timestamp(e.due_at)),
                fired_at: e.fired_at.map(timestamp),
            }
        })
        .collect()
}

pub fn decision(d: &core::Decision) -> proto::Decision {
    proto::Decision {
        id: d.id.clone(),
        kind: d.kind.clone(),
        input: Some(json_to_proto(&d.input)),
        response_schema: d.response_schema.as_ref().map(json_to_proto),
        authorized_roles: d.authorized_roles.clone(),
        surfaces: d.surfaces.clone(),
        required_approvals: d.required_approvals,
        context_hash: d.context_hash.clone().unwrap_or_default(),
        status: status(d.status) as i32,
        answers: d
            .answers
            .iter()
            .map(|a| proto::Answer {
                verdict: verdict(a.verdict) as i32,
                answer: Some(json_to_proto(&a.answer)),
                rationale: a.rationale.clone(),
                operator: a.operator.clone(),
                submitted_by: a.submitted_by.clone().unwrap_or_default(),
                answered_at: Some(timestamp(a.answered_at)),
                sequence: a.sequence,
            })
            .collect(),
        asked_by: d.asked_by.clone(),
        created_at: Some(timestamp(d.created_at)),
        expires_at: d.expires_at.map(timestamp),
        delivered_at: d.delivered_at.map(timestamp),
        delivered_via: d.delivered_via.clone().unwrap_or_default(),
        closed_at: d.closed_at.map(timestamp),
        version: d.version,
        last_sequence: d.last_sequence,
        policy: Some(policy(&d.policy)),
        context_confirmed_at: d.context_confirmed_at.map(timestamp),
        close_reason: d.close_reason.clone().unwrap_or_default(),
        closed_by: d.closed_by.clone().unwrap_or_default(),
        fallback_fired: d.fallback_fired,
        escalations: escalations(d),
        next_escalation_at: d.next_escalation_at().map(timestamp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::value::Kind;
    use serde_json::json;

    #[test]
    fn json_round_trips_through_protobuf_in_canonical_form() {
        let v = json!({"a": [1, 2.5, "x", null, true], "b": {"c": -0.0}});
        let back = json_from_proto("input", Some(json_to_proto(&v))).unwrap();
        assert_eq!(back, json!({"a": [1, 2.5, "x", null, true], "b": {"c": 0}}));
        assert_eq!(json_from_proto("input", None).unwrap(), Value::Null);
    }

    #[test]
    fn refuses_non_finite_numbers() {
        let nan = prost_types::Value {
            kind: Some(Kind::NumberValue(f64::NAN)),
        };
        let e = json_from_proto("answer", Some(nan)).unwrap_err();
        assert_eq!(e.message, "answer: numbers must be finite");
    }

    #[test]
    fn durations_must_be_positive() {
        let ok = prost_types::Duration {
            seconds: 2,
            nanos: 5000,
        };
        assert_eq!(micros_from_duration("timeout", &ok).unwrap(), 2_000_005);
        let zero = prost_types::Duration {
            seconds: 0,
            nanos: 0,
        };
        assert!(micros_from_duration("timeout", &zero).is_err());
        for nanos in [-1, 1_000_000_000, i32::MAX] {
            let bad = prost_types::Duration { seconds: 1, nanos };
            let e = micros_from_duration("timeout", &bad).unwrap_err();
            assert!(e.message.starts_with("timeout: nanos"), "{e}");
        }
        let huge = prost_types::Duration {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(micros_from_duration("timeout", &huge).unwrap(), i64::MAX);
        assert_eq!(micros_from_timestamp(&timestamp(-1_500_000)), -1_500_000);
    }
}
