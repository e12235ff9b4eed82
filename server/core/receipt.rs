//! The body of a decision receipt: a canonical JSON statement of how a
//! closed decision ended, tied to the hash chain by its closing event. The
//! server signs these bytes (Ed25519); anyone with the public key can check
//! them offline.

use super::canonical::{canonical_json, context_hash, sha256_hex};
use super::model::{Decision, Verdict};
use serde_json::json;

/// The receipt body for closed decision `d` whose closing event (sequence
/// `d.last_sequence`) has chain hash `closing_event_hash`.
pub fn body(d: &Decision, closing_event_hash: &str) -> String {
    let answers: Vec<_> = d
        .answers
        .iter()
        .map(|a| {
            json!({
                "operator": a.operator,
                "submitted_by": a.submitted_by,
                "verdict": match a.verdict { Verdict::Approve => "APPROVE", Verdict::Reject => "REJECT" },
                "answered_at": a.answered_at,
                "rationale_hash": sha256_hex(a.rationale.as_bytes()),
            })
        })
        .collect();
    canonical_json(&json!({
        "receipt_version": 1,
        "decision_id": d.id,
        "kind": d.kind,
        "asked_by": d.asked_by,
        "input_hash": context_hash(&d.input),
        "context_hash": d.context_hash,
        "outcome": d.status.as_str(),
        "answers": answers,
        "closed_at": d.closed_at,
        "closing_sequence": d.last_sequence,
        "closing_event_hash": closing_event_hash,
    }))
}
