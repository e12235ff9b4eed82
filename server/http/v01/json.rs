//! v0.1.1's JSON shapes: request bodies in, decisions and answer results
//! out. camelCase keys, integer-millisecond timestamps, lower-case statuses.

use super::errors::{Route, V01Error};
use crate::core::{Answer, Decision, Micros, Outcome, Status, Verdict};
use serde_json::{json, Map, Value};

/// A parsed request body: a JSON object.
pub(super) struct Body(pub Map<String, Value>);

impl Body {
    /// Parses a body as v0.1.1 did (any content type), refusing anything
    /// that is not a JSON object.
    pub(super) fn parse(bytes: &[u8]) -> Result<Body, V01Error> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(m)) => Ok(Body(m)),
            Ok(_) => Err(V01Error::InvalidJson(
                "body: must be a JSON object".to_string(),
            )),
            Err(e) => Err(V01Error::InvalidJson(format!("body: not valid JSON: {e}"))),
        }
    }

    /// A field that must be present (any JSON value, `null` included, as
    /// v0.1.1's `key in body` check).
    pub(super) fn present(&self, field: &'static str) -> Result<&Value, V01Error> {
        self.0.get(field).ok_or(V01Error::MissingField(field))
    }

    /// A required non-empty string (v0.1.1 answers `missing_field` for a
    /// wrong type too).
    pub(super) fn non_empty_str(&self, field: &'static str) -> Result<String, V01Error> {
        match self.0.get(field) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(V01Error::MissingField(field)),
        }
    }

    /// An optional string; a present non-string is refused.
    pub(super) fn opt_str(
        &self,
        route: Route,
        field: &'static str,
    ) -> Result<Option<String>, V01Error> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(route, field, "must be a string")),
        }
    }

    /// An optional JSON value; `null` counts as absent.
    pub(super) fn opt_value(&self, field: &str) -> Option<Value> {
        self.0.get(field).filter(|v| !v.is_null()).cloned()
    }
}

pub(super) fn bad(route: Route, field: &'static str, what: &str) -> V01Error {
    V01Error::BadField {
        route,
        field,
        message: format!("{field}: {what}"),
    }
}

/// A present field that must be an array of strings.
pub(super) fn string_list(
    route: Route,
    field: &'static str,
    v: &Value,
) -> Result<Vec<String>, V01Error> {
    let items = v
        .as_array()
        .ok_or_else(|| bad(route, field, "must be an array of strings"))?;
    items
        .iter()
        .map(|i| {
            i.as_str()
                .map(String::from)
                .ok_or_else(|| bad(route, field, "must be an array of strings"))
        })
        .collect()
}

/// `timeoutMs` as microseconds: a positive number of milliseconds.
pub(super) fn timeout_us(v: Option<Value>) -> Result<Option<i64>, V01Error> {
    let Some(v) = v else { return Ok(None) };
    let ms = v
        .as_f64()
        .filter(|ms| ms.is_finite() && *ms > 0.0)
        .ok_or_else(|| {
            bad(
                Route::Ask,
                "timeoutMs",
                "must be a positive number of milliseconds",
            )
        })?;
    // Saturating float-to-int cast; the service caps it at max_timeout.
    Ok(Some((ms * 1000.0).round() as i64))
}

/// v0.1.1's verdict convention: the answer's `decision` field, or a boolean
/// `approved`; anything else approves (answering at all is approval).
/// Where the two contradict (`decision: "approved", approved: false`)
/// witness rejects: a contradictory answer must not approve.
pub(super) fn verdict_of(answer: &Value) -> Verdict {
    let rejected = answer.get("decision").and_then(Value::as_str) == Some("rejected")
        || answer.get("approved") == Some(&Value::Bool(false));
    if rejected {
        Verdict::Reject
    } else {
        Verdict::Approve
    }
}

fn ms(us: Micros) -> i64 {
    us.div_euclid(1000)
}

fn opt_ms(us: Option<Micros>) -> Value {
    us.map_or(Value::Null, |t| json!(ms(t)))
}

/// The lower-case status; EXPIRED is v0.1.1's `timeout`.
pub(super) fn status(s: Status) -> &'static str {
    match s {
        Status::Open => "open",
        Status::Approved => "approved",
        Status::Rejected => "rejected",
        Status::Cancelled => "cancelled",
        Status::Expired => "timeout",
        Status::ContextChanged => "context_changed",
    }
}

/// v0.1.1 reported a default 24-hour `timeoutAt` hint and never enforced
/// it; a witness decision without an expiry reports the same hint.
const V01_DEFAULT_TIMEOUT_MS: i64 = 24 * 60 * 60 * 1000;

fn closed_reason(d: &Decision) -> Value {
    match d.status {
        Status::Open | Status::Approved | Status::Rejected => Value::Null,
        Status::Cancelled => json!(d.close_reason.clone().unwrap_or_default()),
        Status::Expired => json!("timeout"),
        Status::ContextChanged => json!("context_changed"),
    }
}

/// A decision as v0.1.1's `Decision` type, plus witness's own fields
/// (`requiredApprovals`, `answers`, `askedBy`, `expiresAt`, ...), which
/// v0.1.1 clients ignore.
pub(super) fn decision(d: &Decision) -> Value {
    let slot = |i: usize| d.answers.get(i);
    let op = |a: Option<&Answer>| a.map_or(Value::Null, |a| json!(a.operator));
    let at = |a: Option<&Answer>| a.map_or(Value::Null, |a| json!(ms(a.answered_at)));
    let why = |a: Option<&Answer>| a.map_or(Value::Null, |a| json!(a.rationale));
    let out = |a: Option<&Answer>| a.map_or(Value::Null, |a| a.answer.clone());
    let (first, second) = (slot(0), slot(1));
    let timeout_at = d
        .expires_at
        .map_or(ms(d.created_at) + V01_DEFAULT_TIMEOUT_MS, ms);
    json!({
        "id": d.id,
        "kind": d.kind,
        "input": d.input,
        "responseShape": d.response_schema.clone().unwrap_or_else(|| json!({})),
        "authorizedRoles": d.authorized_roles,
        "surfaces": d.surfaces,
        "requiresTwoPerson": d.required_approvals >= 2,
        "contextHash": d.context_hash,
        "timeoutAt": timeout_at,
        "firstOperator": op(first),
        "firstAt": at(first),
        "firstRationale": why(first),
        "firstAnswer": out(first),
        "secondOperator": op(second),
        "secondAt": at(second),
        "secondRationale": why(second),
        "secondAnswer": out(second),
        "status": status(d.status),
        "closedReason": closed_reason(d),
        "createdAt": ms(d.created_at),
        "closedAt": opt_ms(d.closed_at),
        "requiredApprovals": d.required_approvals,
        "askedBy": d.asked_by,
        "expiresAt": opt_ms(d.expires_at),
        "ackAt": opt_ms(d.delivered_at),
        "ackSurface": d.delivered_via,
        "answers": d.answers.iter().map(answer).collect::<Vec<_>>(),
    })
}

fn answer(a: &Answer) -> Value {
    json!({
        "operator": a.operator,
        "submittedBy": a.submitted_by,
        "verdict": match a.verdict { Verdict::Approve => "approve", Verdict::Reject => "reject" },
        "answer": a.answer,
        "rationale": a.rationale,
        "answeredAt": ms(a.answered_at),
    })
}

/// v0.1.1's `AnswerResult`: `awaiting-second`, `closed` with an `approval`,
/// or `context_changed`.
pub(super) fn answer_result(d: &Decision, outcome: Outcome) -> Value {
    match outcome {
        Outcome::ContextChanged => json!({
            "status": "context_changed", "decisionId": d.id, "reason": "context_changed",
        }),
        Outcome::Closed if matches!(d.status, Status::Approved | Status::Rejected) => {
            json!({"status": "closed", "approval": approval(d)})
        }
        // Recorded, quorum not reached (witness may need more than two).
        _ => json!({"status": "awaiting-second", "decisionId": d.id}),
    }
}

/// v0.1.1's `Approval`: the first answer decides; with two or more answers
/// the last one is the co-decider.
fn approval(d: &Decision) -> Value {
    let first = d.answers.first();
    let mut a = json!({
        "decisionId": d.id,
        "decidedAt": first.map_or_else(|| opt_ms(d.closed_at), |a| json!(ms(a.answered_at))),
        "decidedBy": first.map_or("", |a| a.operator.as_str()),
        "rationale": first.map_or("", |a| a.rationale.as_str()),
        "output": first.map_or(Value::Null, |a| a.answer.clone()),
        "status": status(d.status),
    });
    if let (true, Some(last)) = (d.answers.len() >= 2, d.answers.last()) {
        a["coDecidedBy"] = json!(last.operator);
        a["coDecidedAt"] = json!(ms(last.answered_at));
        a["coRationale"] = json!(last.rationale);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_follows_v01_conventions() {
        let v = |j: Value| verdict_of(&j);
        assert_eq!(v(json!({"decision": "approved"})), Verdict::Approve);
        assert_eq!(v(json!({"decision": "rejected"})), Verdict::Reject);
        assert_eq!(v(json!({"approved": false})), Verdict::Reject);
        assert_eq!(v(json!({"approved": true})), Verdict::Approve);
        assert_eq!(v(json!({})), Verdict::Approve);
        assert_eq!(v(json!("yes")), Verdict::Approve);
        assert_eq!(v(json!({"approved": "false"})), Verdict::Approve);
        assert_eq!(
            v(json!({"decision": "approved", "approved": false})),
            Verdict::Reject
        );
    }

    #[test]
    fn timestamps_are_whole_milliseconds() {
        assert_eq!(ms(1_700_000_000_123_999), 1_700_000_000_123);
        assert_eq!(opt_ms(None), Value::Null);
    }

    #[test]
    fn timeout_ms_must_be_positive() {
        assert_eq!(timeout_us(Some(json!(1500))).unwrap(), Some(1_500_000));
        assert_eq!(timeout_us(None).unwrap(), None);
        for bad in [json!(0), json!(-5), json!("60000"), json!(true)] {
            assert!(timeout_us(Some(bad)).is_err());
        }
    }
}
