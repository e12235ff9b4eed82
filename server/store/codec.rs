//! The stored form of events and decision rows (both backends).
//!
//! Events are stored compactly (format 2): the columns hold `sequence`,
//! `decision_id`, `type` and `at`, and `body` holds only what the event
//! adds, as canonical JSON without the fields that equal a fixed default
//! (the templates below) or a column. CREATED carries the request and the
//! resolved policy once; later events carry their own payload (the answer,
//! the cancel reason, ...). The chain hash covers exactly the stored bytes:
//! SHA-256 over the previous hash and the columns and body joined by
//! newlines.
//!
//! Logs written before the compact format (format 1) stored every event as
//! the canonical JSON of the whole event, hashed alone; such a body always
//! starts with `{"at":` (canonical key order puts `at` first), which no
//! format-2 body does (no template has an `at` key), so both decode and a
//! chain may mix them.
//!
//! Decision rows store the decision as JSON without default-valued fields
//! and without the fields the row has columns for; rows written before hold
//! every field in their body and decode the same way.
//!
//! Compact JSON rather than protobuf: `input` and `answer` are arbitrary
//! JSON that a protobuf `Struct` would store larger and with lossy numbers,
//! the log stays readable with any SQL client, and the canonical form that
//! makes the hash reproducible already exists.

use super::compact::{self, Form, Template};
use super::ProjectionRow;
use crate::core::canonical::canonical_json;
use crate::core::{chain_hash, chain_hash_of_parts, Decision, Event, EventKind, EventType, Micros};
use serde_json::{json, Value};
use std::sync::OnceLock;

/// A stored event or row that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(String);

impl From<CodecError> for super::StoreError {
    fn from(e: CodecError) -> Self {
        super::StoreError::Corrupt(e.0)
    }
}

fn bad(e: impl std::fmt::Display) -> CodecError {
    CodecError(e.to_string())
}

/// The prefix of every format-1 (whole event) body.
const FORMAT1_PREFIX: &str = "{\"at\":";

/// Whether `body` is a format-1 event (the whole event as canonical JSON).
pub fn is_format1(body: &str) -> bool {
    body.starts_with(FORMAT1_PREFIX)
}

/// The defaults a compact body leaves out. Fixed for good: changing one
/// would change what stored bodies mean.
struct Templates {
    decision: Value,
    policy: Value,
    answer: Value,
    escalation: Value,
    level: Value,
    delivered: Value,
    cancelled: Value,
    confirmed: Value,
    changed: Value,
    fallback: Value,
    escalated: Value,
}

fn templates() -> &'static Templates {
    static T: OnceLock<Templates> = OnceLock::new();
    T.get_or_init(|| Templates {
        decision: json!({
            "id": "", "kind": "", "input": null, "response_schema": null,
            "authorized_roles": [], "surfaces": [], "required_approvals": 1,
            "context_hash": null, "status": "OPEN", "answers": [], "asked_by": "",
            "created_at": 0, "expires_at": null, "delivered_at": null,
            "delivered_via": null, "closed_at": null, "version": 0, "last_sequence": 0,
            "context_confirmed_at": null, "context_confirmed_sequence": 0,
            "close_reason": null, "closed_by": null, "fallback_fired": false,
            "escalations": [], "last_event_type": "", "updated_at": 0,
            // Filled from the policy template on decode.
            "policy": {},
        }),
        policy: json!({
            "matched_kind": "", "required_approvals": 1, "timeout_us": null,
            "on_timeout": "expire", "timeout_answer": null, "ack_window_us": 60_000_000,
            "fallback": [], "context_max_age_us": 60_000_000, "allow_self_approval": false,
            "webhook_surfaces": [], "escalation": [], "notify_outcome": [],
            "slack_channel": null,
        }),
        answer: json!({
            "verdict": "APPROVE", "answer": null, "rationale": "", "operator": "",
            "submitted_by": null, "answered_at": 0, "sequence": 0,
        }),
        escalation: json!({"level": 0, "due_at": 0, "state": "PENDING", "fired_at": null}),
        level: json!({"after_us": 0, "webhooks": [], "unless": "none"}),
        delivered: json!({"surface": "", "by": ""}),
        cancelled: json!({"by": "", "reason": ""}),
        confirmed: json!({"by": ""}),
        changed: json!({"by": "", "reported_hash": ""}),
        fallback: json!({"webhooks": []}),
        escalated: json!({"level": 0, "webhooks": []}),
    })
}

/// The template of an event type's payload; None for types without one.
fn payload_template(event_type: &str) -> Option<&'static Value> {
    let t = templates();
    Some(match event_type {
        "CREATED" => &t.decision,
        "ANSWERED" => &t.answer,
        "DELIVERED" => &t.delivered,
        "CANCELLED" => &t.cancelled,
        "CONTEXT_CONFIRMED" => &t.confirmed,
        "CONTEXT_CHANGED" => &t.changed,
        "FALLBACK_FIRED" => &t.fallback,
        "ESCALATED" => &t.escalated,
        _ => return None,
    })
}

/// The templates as the one-pass writer compares them: each field's
/// canonical bytes.
struct ByteTemplates {
    decision: Box<Template>,
    policy: Box<Template>,
    answer: Box<Template>,
    escalation: Box<Template>,
    level: Box<Template>,
    payloads: Vec<(&'static str, Box<Template>)>,
}

impl ByteTemplates {
    fn payload(&self, event_type: &str) -> Option<&Template> {
        let found = self.payloads.iter().find(|(t, _)| *t == event_type);
        found.map(|(_, template)| &**template)
    }
}

fn byte_templates() -> &'static ByteTemplates {
    static B: OnceLock<ByteTemplates> = OnceLock::new();
    B.get_or_init(|| {
        let bytes = |template: &Value| -> Box<Template> {
            let Value::Object(map) = template else {
                return Box::default();
            };
            map.iter()
                .map(|(k, v)| (k.clone(), canonical_json(v).into_bytes()))
                .collect()
        };
        let t = templates();
        ByteTemplates {
            decision: bytes(&t.decision),
            policy: bytes(&t.policy),
            answer: bytes(&t.answer),
            escalation: bytes(&t.escalation),
            level: bytes(&t.level),
            // CREATED and ANSWERED too, though `encode_event` names theirs.
            payloads: EventType::ALL
                .into_iter()
                .map(EventType::as_str)
                .filter_map(|ty| Some((ty, bytes(payload_template(ty)?))))
                .collect(),
        }
    })
}

/// A nested struct's template, by its serde name.
fn by_name(name: &str) -> Option<&'static Template> {
    let t = byte_templates();
    Some(match name {
        "Decision" => &t.decision,
        "Policy" => &t.policy,
        "Answer" => &t.answer,
        "Escalation" => &t.escalation,
        "EscalationLevel" => &t.level,
        _ => return None,
    })
}

/// Puts back every field the writer left out at its template value.
fn fill(v: &mut Value, template: &Value) {
    let (Value::Object(map), Value::Object(tmpl)) = (v, template) else {
        return;
    };
    for (k, default) in tmpl {
        // Looked up first: `entry` would allocate the key every time.
        if !map.contains_key(k) {
            map.insert(k.clone(), default.clone());
        }
    }
    let t = templates();
    for (key, val) in map.iter_mut() {
        match key.as_str() {
            "policy" => fill(val, &t.policy),
            "answers" => each(val, |a| fill(a, &t.answer)),
            "escalations" => each(val, |e| fill(e, &t.escalation)),
            "escalation" => each(val, |l| fill(l, &t.level)),
            _ => {}
        }
    }
}

fn each(v: &mut Value, mut f: impl FnMut(&mut Value)) {
    if let Value::Array(items) = v {
        items.iter_mut().for_each(&mut f);
    }
}

/// The format-2 body of `event`, written in one pass (`compact`).
pub fn encode_event(event: &Event) -> Result<String, CodecError> {
    let t = byte_templates();
    let mut out = Vec::with_capacity(512);
    let written = match &event.kind {
        EventKind::Created { decision } => {
            // The fields the columns hold, left out when equal to them
            // (`decode_event` puts them back).
            let omit = [
                ("id", decision.id == event.decision_id),
                ("created_at", decision.created_at == event.at),
                ("updated_at", decision.updated_at == event.at),
            ];
            let omit: Vec<&str> = omit.iter().filter(|o| o.1).map(|o| o.0).collect();
            compact::write(
                &mut out,
                &**decision,
                Form::Canonical,
                Some(&t.decision),
                &omit,
                by_name,
            )
        }
        EventKind::Answered { answer } => {
            let omit: &[&str] = if answer.answered_at == event.at {
                &["answered_at"]
            } else {
                &[]
            };
            compact::write(
                &mut out,
                answer,
                Form::Canonical,
                Some(&t.answer),
                omit,
                by_name,
            )
        }
        kind => match t.payload(kind.type_name()) {
            None => return Ok("{}".into()),
            Some(template) => {
                compact::write_data(&mut out, kind, Form::Canonical, Some(template), by_name)
            }
        },
    };
    written.map_err(bad)?;
    String::from_utf8(out).map_err(bad)
}

/// Reads a stored event of either format. Format 1 is taken as stored;
/// the audit compares its fields with the columns.
pub fn decode_event(
    sequence: u64,
    decision_id: &str,
    event_type: &str,
    at: Micros,
    body: &str,
) -> Result<Event, CodecError> {
    if is_format1(body) {
        return serde_json::from_str(body).map_err(bad);
    }
    let event = |kind| Event {
        sequence,
        decision_id: decision_id.to_string(),
        at,
        kind,
    };
    let corrupt = |e: serde_json::Error| CodecError(format!("event {sequence}: {e}"));
    // The two kinds every Ask and Answer writes, read straight from the
    // text. A column field is left out when it equals the column or its
    // template value, and the writer never stores a template value, so
    // the template value here means "the column's".
    match event_type {
        "CREATED" => {
            let mut d: Decision = serde_json::from_str(body).map_err(corrupt)?;
            if d.id.is_empty() {
                d.id = decision_id.to_string();
            }
            for field in [&mut d.created_at, &mut d.updated_at] {
                if *field == 0 {
                    *field = at;
                }
            }
            let decision = Box::new(d);
            return Ok(event(EventKind::Created { decision }));
        }
        "ANSWERED" => {
            let mut answer: crate::core::Answer = serde_json::from_str(body).map_err(corrupt)?;
            if answer.answered_at == 0 {
                answer.answered_at = at;
            }
            return Ok(event(EventKind::Answered { answer }));
        }
        _ => {}
    }
    let payload: Value = serde_json::from_str(body).map_err(bad)?;
    if !payload.is_object() {
        return Err(CodecError(format!(
            "event {sequence}: body is not a JSON object"
        )));
    }
    // The fields left out at their template value need no filling in: each
    // stored type's serde default is its template (a test keeps them equal).
    let data = payload_template(event_type).map(|_| payload);
    Ok(event(tagged_kind(event_type, data).map_err(corrupt)?))
}

/// Deserialises an `EventKind` from its tag and data, tag first: serde then
/// reads the data straight into the variant instead of buffering it until
/// it meets the tag (a map's keys sort `data` before `type`), and nothing
/// is copied (`json!` would serialise `data` into a new tree).
fn tagged_kind(event_type: &str, data: Option<Value>) -> Result<EventKind, serde_json::Error> {
    use serde::de::value::MapDeserializer;
    use serde::Deserialize;
    let tag = std::iter::once(("type", Value::from(event_type)));
    let fields = tag.chain(data.map(|d| ("data", d)));
    EventKind::deserialize(MapDeserializer::<_, serde_json::Error>::new(fields))
}

/// The chain hash of a stored event: format 1 hashed its body alone (it
/// holds every column); format 2 hashes the columns and the body.
pub fn event_hash(
    prev_hash: &str,
    sequence: u64,
    decision_id: &str,
    event_type: &str,
    at: Micros,
    body: &str,
) -> String {
    if is_format1(body) {
        return chain_hash(prev_hash, body);
    }
    // The columns and body joined by newlines, without copying the body.
    let columns = format!("{sequence}\n{decision_id}\n{event_type}\n{at}\n");
    chain_hash_of_parts(prev_hash, &[&columns, body])
}

const LAST_EVENT: &str = "last_event_type";
const CREATED: &str = "CREATED";

/// The decision fields a row holds in columns of its own, left out of its
/// body (`updated_at` too while it equals `created_at`, and
/// `last_event_type` at version 1, when it can only be CREATED).
const ROW_COLUMNS: [&str; 7] = [
    "id",
    "kind",
    "status",
    "asked_by",
    "created_at",
    "version",
    "last_sequence",
];

/// The stored body of a decision row: the decision without its column
/// fields and default values, written in one pass (`compact`).
pub fn encode_decision(d: &Decision) -> Result<String, CodecError> {
    let mut omit: Vec<&str> = ROW_COLUMNS.to_vec();
    if d.updated_at == d.created_at {
        omit.push("updated_at");
    }
    // A row at version 1 has seen only its CREATED event.
    if d.version == 1 && d.last_event_type == Some(EventType::Created) {
        omit.push(LAST_EVENT);
    }
    let mut out = Vec::with_capacity(512);
    let t = byte_templates();
    compact::write(&mut out, d, Form::Plain, Some(&t.decision), &omit, by_name).map_err(bad)?;
    String::from_utf8(out).map_err(bad)
}

/// A stored row (compact, or written before with every field in its body)
/// as the whole decision's JSON.
pub fn row_value(row: &ProjectionRow) -> Result<Value, CodecError> {
    let mut v = row_columns_in(row)?;
    fill(&mut v, &templates().decision);
    Ok(v)
}

/// A stored row's body with its column fields put back (not its defaults).
fn row_columns_in(row: &ProjectionRow) -> Result<Value, CodecError> {
    let mut v: Value = serde_json::from_str(&row.body).map_err(bad)?;
    let Value::Object(map) = &mut v else {
        return Err(CodecError(format!(
            "decision {}: body is not a JSON object",
            row.id
        )));
    };
    let columns = [
        Value::from(row.id.as_str()),
        Value::from(row.kind.as_str()),
        Value::from(row.status.as_str()),
        Value::from(row.asked_by.as_str()),
        Value::from(row.created_at),
        Value::from(row.version),
        Value::from(row.last_sequence),
    ];
    for (field, value) in ROW_COLUMNS.into_iter().zip(columns) {
        map.entry(field).or_insert(value);
    }
    map.entry("updated_at")
        .or_insert_with(|| Value::from(row.created_at));
    if row.version == 1 {
        map.entry(LAST_EVENT).or_insert_with(|| CREATED.into());
    }
    Ok(v)
}

/// Reads a stored decision row; the defaults come from serde (see
/// `decode_event`).
pub fn decode_row(row: &ProjectionRow) -> Result<Decision, CodecError> {
    serde_json::from_value(row_columns_in(row)?)
        .map_err(|e| CodecError(format!("decision {}: {e}", row.id)))
}

/// Reads a body written before the compact form (every field present).
pub fn decode_full_decision(body: &str) -> Result<Decision, CodecError> {
    serde_json::from_str(body).map_err(bad)
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "codec_oracle_tests.rs"]
mod oracle_tests;
