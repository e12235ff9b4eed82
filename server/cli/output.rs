//! Human-readable and `--json` output of the CLI.

use crate::audit::AuditReport;
use crate::proto;
use crate::proto::convert::{json_from_proto, micros_from_timestamp};
use serde_json::{json, Value};

/// Prints results as text or as JSON (one document per result).
pub(crate) struct Printer {
    json: bool,
    /// Tests collect the output here instead of printing it.
    captured: Option<std::cell::RefCell<Vec<String>>>,
}

/// Server-supplied text, escaped for the terminal (`--json` stays exact).
pub(crate) use crate::client::shown;

/// Last second RFC 3339 (and `google.protobuf.Timestamp`) can write:
/// 9999-12-31T23:59:59Z.
const MAX_RFC3339_SECONDS: i64 = 253_402_300_799;

/// Unix microseconds as RFC 3339. Whatever a server sends, this never
/// fails: times outside 1970..=9999 are written as seconds since the epoch.
pub(crate) fn rfc3339(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    if (0..=MAX_RFC3339_SECONDS).contains(&secs) {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(us.unsigned_abs());
        humantime::format_rfc3339_millis(at).to_string()
    } else {
        format!("{secs}s since the Unix epoch (outside RFC 3339)")
    }
}

fn time(t: &Option<prost_types::Timestamp>) -> Value {
    match t {
        Some(t) => Value::String(rfc3339(micros_from_timestamp(t))),
        None => Value::Null,
    }
}

fn value(v: &Option<prost_types::Value>) -> Value {
    json_from_proto("value", v.clone()).unwrap_or(Value::Null)
}

pub(super) fn status_name(raw: i32) -> String {
    proto::Status::try_from(raw)
        .map(|s| s.as_str_name().trim_start_matches("STATUS_").to_string())
        .unwrap_or_else(|_| raw.to_string())
}

fn verdict_name(raw: i32) -> String {
    proto::Verdict::try_from(raw)
        .map(|s| s.as_str_name().trim_start_matches("VERDICT_").to_string())
        .unwrap_or_else(|_| raw.to_string())
}

fn escalation_state_name(raw: i32) -> String {
    proto::EscalationState::try_from(raw)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("ESCALATION_STATE_")
                .to_string()
        })
        .unwrap_or_else(|_| raw.to_string())
}

fn duration_text(d: &prost_types::Duration) -> String {
    let d = std::time::Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32);
    humantime::format_duration(d).to_string()
}

/// One line per escalation level: what it pages, when, and where it stands.
fn describe_escalations(d: &proto::Decision, out: &mut String) {
    for e in &d.escalations {
        let after = e.after.as_ref().map(duration_text).unwrap_or_default();
        let unless = if e.unless.is_empty() {
            String::new()
        } else {
            format!(" unless {}", shown(&e.unless))
        };
        let when = match proto::EscalationState::try_from(e.state) {
            Ok(proto::EscalationState::Fired) => {
                format!("fired at {}", time(&e.fired_at).as_str().unwrap_or("?"))
            }
            Ok(proto::EscalationState::Pending) => {
                format!(
                    "pending, due at {}",
                    time(&e.due_at).as_str().unwrap_or("?")
                )
            }
            _ => "skipped".to_string(),
        };
        out.push_str(&format!(
            "\n  escalation level {} (after {after}{unless}) -> {}: {when}",
            e.level,
            shown(&e.webhooks.join(","))
        ));
    }
    if let Some(next) = time(&d.next_escalation_at).as_str() {
        out.push_str(&format!("\n  next escalation due at {next}"));
    }
}

/// A decision as JSON with the proto's field names.
pub(crate) fn decision_json(d: &proto::Decision) -> Value {
    json!({
        "id": d.id,
        "kind": d.kind,
        "status": status_name(d.status),
        "input": value(&d.input),
        "response_schema": value(&d.response_schema),
        "authorized_roles": d.authorized_roles,
        "surfaces": d.surfaces,
        "required_approvals": d.required_approvals,
        "context_hash": d.context_hash,
        "answers": d.answers.iter().map(|a| json!({
            "verdict": verdict_name(a.verdict),
            "answer": value(&a.answer),
            "rationale": a.rationale,
            "operator": a.operator,
            "submitted_by": a.submitted_by,
            "answered_at": time(&a.answered_at),
            "sequence": a.sequence,
        })).collect::<Vec<_>>(),
        "asked_by": d.asked_by,
        "created_at": time(&d.created_at),
        "expires_at": time(&d.expires_at),
        "delivered_at": time(&d.delivered_at),
        "delivered_via": d.delivered_via,
        "closed_at": time(&d.closed_at),
        "close_reason": d.close_reason,
        "closed_by": d.closed_by,
        "context_confirmed_at": time(&d.context_confirmed_at),
        "fallback_fired": d.fallback_fired,
        "escalations": d.escalations.iter().map(|e| json!({
            "level": e.level,
            "after": e.after.as_ref().map(duration_text),
            "webhooks": e.webhooks,
            "unless": e.unless,
            "state": escalation_state_name(e.state),
            "due_at": time(&e.due_at),
            "fired_at": time(&e.fired_at),
        })).collect::<Vec<_>>(),
        "next_escalation_at": time(&d.next_escalation_at),
        "version": d.version,
        "last_sequence": d.last_sequence,
    })
}

/// One line per decision, for lists and streams.
pub(crate) fn decision_line(d: &proto::Decision) -> String {
    let approvals = d
        .answers
        .iter()
        .filter(|a| a.verdict == proto::Verdict::Approve as i32)
        .count();
    format!(
        "{}  {:<15} {}  approvals {}/{}  roles {}  asked by {}",
        shown(&d.id),
        status_name(d.status),
        shown(&d.kind),
        approvals,
        d.required_approvals,
        shown(&d.authorized_roles.join(",")),
        shown(&d.asked_by)
    )
}

fn describe(d: &proto::Decision) -> String {
    let mut out = decision_line(d);
    // JSON escapes C0 controls in strings, but not DEL, C1 or bidi marks.
    out.push_str(&format!(
        "\n  input: {}",
        shown(&value(&d.input).to_string())
    ));
    if !d.context_hash.is_empty() {
        out.push_str(&format!("\n  context_hash: {}", shown(&d.context_hash)));
    }
    for a in &d.answers {
        let via = if a.submitted_by.is_empty() {
            String::new()
        } else {
            format!(" (via {})", shown(&a.submitted_by))
        };
        out.push_str(&format!(
            "\n  {} by {}{via} at {}: {}",
            verdict_name(a.verdict),
            shown(&a.operator),
            time(&a.answered_at).as_str().unwrap_or("?"),
            shown(&a.rationale)
        ));
    }
    if !d.delivered_via.is_empty() {
        out.push_str(&format!("\n  delivered via {}", shown(&d.delivered_via)));
    }
    if !d.close_reason.is_empty() {
        out.push_str(&format!("\n  closed: {}", shown(&d.close_reason)));
    }
    describe_escalations(d, &mut out);
    out
}

impl Printer {
    pub(crate) fn new(json: bool) -> Self {
        Printer {
            json,
            captured: None,
        }
    }

    fn emit(&self, doc: Value, text: String) {
        let out = if self.json { doc.to_string() } else { text };
        match &self.captured {
            Some(c) => c.borrow_mut().push(out),
            None => println!("{out}"),
        }
    }

    pub(crate) fn decision(&self, d: Option<&proto::Decision>) {
        let Some(d) = d else { return };
        self.emit(decision_json(d), describe(d));
    }

    pub(crate) fn answered(&self, r: &proto::AnswerResponse) {
        let outcome = proto::AnswerOutcome::try_from(r.outcome)
            .map(|o| {
                o.as_str_name()
                    .trim_start_matches("ANSWER_OUTCOME_")
                    .to_string()
            })
            .unwrap_or_default();
        let d = r
            .decision
            .as_ref()
            .map(decision_json)
            .unwrap_or(Value::Null);
        let text = r.decision.as_ref().map(describe).unwrap_or_default();
        self.emit(
            json!({"outcome": outcome, "decision": d}),
            format!("outcome: {outcome}\n{text}"),
        );
    }

    pub(crate) fn acked(&self, r: &proto::AckDeliveryResponse) {
        let d = r
            .decision
            .as_ref()
            .map(decision_json)
            .unwrap_or(Value::Null);
        let text = if r.accepted {
            "acknowledged"
        } else {
            "not accepted: the decision is closed"
        };
        self.emit(
            json!({"accepted": r.accepted, "decision": d}),
            text.to_string(),
        );
    }

    pub(crate) fn reported(&self, r: &proto::ReportContextResponse) {
        let d = r
            .decision
            .as_ref()
            .map(decision_json)
            .unwrap_or(Value::Null);
        let text = if r.matched {
            "context matched"
        } else {
            "context changed: the decision is closed"
        };
        self.emit(
            json!({"matched": r.matched, "decision": d}),
            text.to_string(),
        );
    }

    /// One stream event: a line, or a JSON document per line.
    pub(crate) fn event(&self, e: &proto::DecisionEvent) {
        let kind = proto::EventType::try_from(e.r#type)
            .map(|t| {
                t.as_str_name()
                    .trim_start_matches("EVENT_TYPE_")
                    .to_string()
            })
            .unwrap_or_default();
        let doc = json!({
            "sequence": e.sequence,
            "type": kind,
            "snapshot": e.snapshot,
            "at": time(&e.at),
            "decision": e.decision.as_ref().map(decision_json),
        });
        let line = match &e.decision {
            Some(d) => format!("{:>8} {:<17} {}", e.sequence, kind, decision_line(d)),
            None => format!(
                "{:>8} {kind} (the open decisions above are the snapshot)",
                e.sequence
            ),
        };
        self.emit(doc, line);
    }
}

/// Prints an audit report; returns the exit code (1 on a problem, a state
/// hash mismatch included).
pub(crate) fn audit(r: &AuditReport, as_json: bool) -> i32 {
    let equal = r.state_hash_replayed.as_deref() == Some(r.state_hash_stored.as_str());
    let code = if r.problem.is_none() && equal { 0 } else { 1 };
    if as_json {
        let doc = json!({
            "ok": code == 0,
            "events": r.events,
            "decisions": r.decisions,
            "head_hash": r.head_hash,
            "state_hash_replayed": r.state_hash_replayed,
            "state_hash_stored": r.state_hash_stored,
            "state_hash_equal": equal,
            "problem": r.problem.as_ref().map(|p| json!({"sequence": p.sequence, "reason": p.reason})),
        });
        println!("{doc}");
        return code;
    }
    match &r.problem {
        None => println!(
            "ok: {} events, {} decisions, head {}",
            r.events, r.decisions, r.head_hash
        ),
        Some(p) => println!("FAILED at event {}: {}", p.sequence, p.reason),
    }
    let replayed = r
        .state_hash_replayed
        .as_deref()
        .unwrap_or("none (the log cannot be replayed to its end)");
    println!("state hash replayed: {replayed}");
    println!("state hash stored:   {}", r.state_hash_stored);
    println!(
        "state hashes {}",
        if equal { "are equal" } else { "DIFFER" }
    );
    code
}

#[cfg(test)]
#[path = "output_tests.rs"]
mod tests;
/// What `ask --wait` says while it waits: the id, and how to answer it.
pub(super) fn waiting_hint(d: &proto::Decision, conn: &super::Conn) -> String {
    crate::client::answer_hint_for(d, Some(&conn.server), conn.token.is_some())
}
