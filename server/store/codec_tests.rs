//! Every event kind and decision state survives the compact form; format-1
//! bodies still decode; the compact form is small.

use super::*;
use crate::core::{
    apply, create, Answer, EscalationLevel, NewDecision, OnTimeout, Policy, Unless, Verdict,
};

const ID: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
const T0: Micros = 1_764_646_717_123_456;

fn small_ask() -> NewDecision {
    NewDecision {
        id: ID.into(),
        kind: "bench.deploy".into(),
        input: json!({"task": 7, "service": "api"}),
        response_schema: None,
        authorized_roles: vec!["sre".into()],
        surfaces: vec!["console".into()],
        required_approvals: 0,
        context_hash: None,
        timeout_us: None,
        asked_by: "bench".into(),
    }
}

fn rich_policy() -> Policy {
    Policy {
        matched_kind: "deploy.*".into(),
        required_approvals: 2,
        timeout_us: Some(3_600_000_000),
        on_timeout: OnTimeout::Reject,
        timeout_answer: json!({"auto": [1, 2.5, null]}),
        ack_window_us: 5_000_000,
        fallback: vec!["pager".into()],
        context_max_age_us: 0,
        allow_self_approval: true,
        webhook_surfaces: vec!["slack".into()],
        slack_channel: Some("C0DEPLOY".into()),
        escalation: vec![
            EscalationLevel {
                after_us: 10_000_000,
                webhooks: vec!["l1".into()],
                unless: Unless::Acked,
            },
            EscalationLevel {
                after_us: 20_000_000,
                webhooks: vec!["l2".into()],
                unless: Unless::None,
            },
        ],
        notify_outcome: vec!["slack".into()],
    }
}

fn event(sequence: u64, at: Micros, kind: EventKind) -> Event {
    Event {
        sequence,
        decision_id: ID.into(),
        at,
        kind,
    }
}

/// The row a store writes for `d`.
fn stored_row(d: &Decision) -> ProjectionRow {
    ProjectionRow {
        body: encode_decision(d).unwrap(),
        ..ProjectionRow::of(d)
    }
}

fn roundtrip(e: &Event) -> (String, Event) {
    let body = encode_event(e).unwrap();
    assert!(!is_format1(&body), "{body}");
    let back = decode_event(e.sequence, &e.decision_id, e.kind.type_name(), e.at, &body).unwrap();
    (body, back)
}

/// A log touching every event kind, with non-default values everywhere.
pub(super) fn rich_log() -> Vec<Event> {
    let mut ask = small_ask();
    ask.input = json!({"ünï": "\u{2028}", "n": -1.5e-7, "big": 9007199254740992u64, "0": []});
    ask.response_schema = Some(json!({"type": "object"}));
    ask.context_hash = Some("ab".repeat(32));
    ask.timeout_us = Some(60_000_000);
    ask.required_approvals = 2;
    let created = create(ask, rich_policy(), T0).unwrap();
    let answer = Answer {
        verdict: Verdict::Reject,
        answer: json!({"ok": false}),
        rationale: "no".into(),
        operator: "alice".into(),
        submitted_by: Some("bot".into()),
        issuer: Some("corp".into()),
        answered_at: T0 + 5,
        sequence: 0,
    };
    vec![
        event(10, T0, created),
        event(
            11,
            T0 + 1,
            EventKind::Delivered {
                surface: "console".into(),
                by: "alice".into(),
            },
        ),
        event(
            12,
            T0 + 2,
            EventKind::FallbackFired {
                webhooks: vec!["pager".into()],
            },
        ),
        event(
            13,
            T0 + 3,
            EventKind::Escalated {
                level: 2,
                webhooks: vec!["l2".into()],
            },
        ),
        event(14, T0 + 4, EventKind::ContextConfirmed { by: "bot".into() }),
        event(15, T0 + 5, EventKind::Answered { answer }),
        event(
            16,
            T0 + 6,
            EventKind::Cancelled {
                by: "bot".into(),
                reason: String::new(),
            },
        ),
    ]
}

#[test]
fn every_event_kind_round_trips() {
    let mut others = vec![
        event(20, T0, EventKind::Approved),
        event(21, T0, EventKind::Rejected),
        event(22, T0, EventKind::Expired),
        event(
            23,
            T0,
            EventKind::ContextChanged {
                by: "bot".into(),
                reported_hash: "cd".repeat(32),
            },
        ),
        event(
            24,
            T0,
            EventKind::Cancelled {
                by: String::new(),
                reason: "why".into(),
            },
        ),
    ];
    others.extend(rich_log());
    for e in &others {
        let (body, back) = roundtrip(e);
        assert_eq!(&back, e, "{body}");
    }
}

#[test]
fn a_small_ask_is_stored_small() {
    let e = event(1, T0, create(small_ask(), Policy::default(), T0).unwrap());
    let (body, back) = roundtrip(&e);
    assert_eq!(back, e);
    assert_eq!(
        body,
        r#"{"asked_by":"bench","authorized_roles":["sre"],"input":{"service":"api","task":7},"kind":"bench.deploy","surfaces":["console"]}"#
    );
    let d = apply(None, &back).unwrap();
    let row = stored_row(&d);
    assert_eq!(
        row.body,
        r#"{"authorized_roles":["sre"],"input":{"service":"api","task":7},"surfaces":["console"]}"#
    );
    assert_eq!(decode_row(&row).unwrap(), d);
    // A version-1 row written before it was left out still reads.
    let mut older = row.clone();
    older.body = older
        .body
        .replacen('{', r#"{"last_event_type":"CREATED","#, 1);
    assert_eq!(decode_row(&older).unwrap(), d);
}

#[test]
fn format_1_bodies_still_decode_and_hash_as_before() {
    for e in rich_log() {
        let old = e.canonical().unwrap();
        assert!(is_format1(&old), "{old}");
        let back = decode_event(e.sequence, &e.decision_id, "ignored", e.at, &old).unwrap();
        assert_eq!(back, e);
        assert_eq!(
            event_hash("p", e.sequence, &e.decision_id, "X", e.at, &old),
            chain_hash("p", &old)
        );
    }
}

#[test]
fn the_format_2_hash_covers_every_column() {
    let e = &rich_log()[1];
    let body = encode_event(e).unwrap();
    let h = |seq, id: &str, ty: &str, at, body: &str| event_hash("p", seq, id, ty, at, body);
    let base = h(11, ID, "DELIVERED", T0 + 1, &body);
    assert_ne!(base, h(12, ID, "DELIVERED", T0 + 1, &body));
    assert_ne!(base, h(11, "x", "DELIVERED", T0 + 1, &body));
    assert_ne!(base, h(11, ID, "ACKED", T0 + 1, &body));
    assert_ne!(base, h(11, ID, "DELIVERED", T0 + 2, &body));
    assert_ne!(base, h(11, ID, "DELIVERED", T0 + 1, "{}"));
    assert_ne!(base, event_hash("q", 11, ID, "DELIVERED", T0 + 1, &body));
    // Exactly the chain hash of the joined text, which databases written
    // before it was computed piecewise hold.
    let joined = format!("11\n{ID}\nDELIVERED\n{}\n{body}", T0 + 1);
    assert_eq!(base, chain_hash("p", &joined));
}

#[test]
fn decisions_in_every_state_round_trip_and_full_rows_still_read() {
    let mut state = None;
    for e in rich_log() {
        let d = apply(state, &e).unwrap();
        let mut row = stored_row(&d);
        assert_eq!(decode_row(&row).unwrap(), d, "{}", row.body);
        // A row written before the compact form: every field in its body.
        let full = serde_json::to_string(&d).unwrap();
        assert!(full.len() > row.body.len());
        assert_eq!(decode_full_decision(&full).unwrap(), d);
        row.body = full;
        assert_eq!(decode_row(&row).unwrap(), d);
        state = Some(d);
    }
}

#[test]
fn no_compact_body_can_look_like_format_1() {
    let t = templates();
    for v in [&t.decision, &t.policy, &t.answer, &t.escalation, &t.level] {
        assert!(v.get("at").is_none());
    }
    for ty in ["DELIVERED", "CANCELLED", "CONTEXT_CHANGED", "ESCALATED"] {
        assert!(payload_template(ty).unwrap().get("at").is_none());
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for body in ["", "[]", "{\"by\":3}", "nul", "{\"at\":1}"] {
        assert!(
            decode_event(1, ID, "CANCELLED", T0, body).is_err(),
            "{body}"
        );
    }
    assert!(decode_event(1, ID, "NO_SUCH_TYPE", T0, "{}").is_err());
    let d = apply(None, &rich_log()[0]).unwrap();
    let mut row = stored_row(&d);
    row.status = "NOPE".into();
    assert!(decode_row(&row).is_err());
    row.body = "[]".into();
    assert!(decode_row(&row).is_err());
}

/// Decoding relies on each stored type's serde defaults being exactly the
/// templates: a default value encodes to nothing, and a template, filled
/// in, decodes to the default.
#[test]
fn serde_defaults_are_the_templates() {
    use crate::core::{Escalation, EscalationLevel};
    fn check<T>(template: &Value, name: &str)
    where
        T: Default + PartialEq + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
    {
        let mut out = Vec::new();
        let bytes = by_name(name);
        compact::write(&mut out, &T::default(), Form::Plain, bytes, &[], by_name).unwrap();
        assert_eq!(out, b"{}", "{name}");
        let mut filled = template.clone();
        fill(&mut filled, template);
        assert_eq!(serde_json::from_value::<T>(filled).unwrap(), T::default());
        assert_eq!(
            serde_json::from_value::<T>(json!({})).unwrap(),
            T::default()
        );
    }
    let t = templates();
    check::<Decision>(&t.decision, "Decision");
    check::<Policy>(&t.policy, "Policy");
    check::<Answer>(&t.answer, "Answer");
    check::<Escalation>(&t.escalation, "Escalation");
    check::<EscalationLevel>(&t.level, "EscalationLevel");
}

/// Fields a payload repeats from the row's columns: left out when equal.
pub(super) fn column_fields(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "CREATED" => &["id", "created_at", "updated_at"],
        "ANSWERED" => &["answered_at"],
        _ => &[],
    }
}

pub(super) fn column_value(field: &str, decision_id: &str, at: Micros) -> Value {
    match field {
        "id" => Value::from(decision_id),
        _ => Value::from(at),
    }
}

/// The decoder that fills every template in before deserialising, as
/// format 2 was first read: the serde-default decoder must agree with it.
pub(super) fn decode_filled(e: &Event, body: &str) -> Event {
    Event {
        kind: kind_filled(e.kind.type_name(), &e.decision_id, e.at, body),
        ..e.clone()
    }
}

fn kind_filled(ty: &str, decision_id: &str, at: Micros, body: &str) -> EventKind {
    let mut payload: Value = serde_json::from_str(body).unwrap();
    let kind = match payload_template(ty) {
        None => json!({ "type": ty }),
        Some(template) => {
            for field in column_fields(ty) {
                payload
                    .as_object_mut()
                    .unwrap()
                    .entry(*field)
                    .or_insert_with(|| column_value(field, decision_id, at));
            }
            fill(&mut payload, template);
            let data = match ty {
                "CREATED" => json!({ "decision": payload }),
                "ANSWERED" => json!({ "answer": payload }),
                _ => payload,
            };
            json!({ "type": ty, "data": data })
        }
    };
    serde_json::from_value(kind).unwrap()
}

#[test]
fn defaults_and_filled_templates_decode_alike() {
    let mut state = None;
    for e in rich_log() {
        let (body, back) = roundtrip(&e);
        assert_eq!(back, decode_filled(&e, &body), "{body}");
        let d = apply(state, &e).unwrap();
        let row = stored_row(&d);
        let filled: Decision = serde_json::from_value(row_value(&row).unwrap()).unwrap();
        assert_eq!(decode_row(&row).unwrap(), filled, "{}", row.body);
        state = Some(d);
    }
    // A body at its defaults is empty and decodes the same either way.
    let bare = event(
        3,
        T0,
        EventKind::Cancelled {
            by: String::new(),
            reason: String::new(),
        },
    );
    assert_eq!(roundtrip(&bare).0, "{}");
    for ty in [
        "DELIVERED",
        "CANCELLED",
        "CONTEXT_CONFIRMED",
        "CONTEXT_CHANGED",
        "FALLBACK_FIRED",
        "ESCALATED",
        "APPROVED",
        "EXPIRED",
    ] {
        let back = decode_event(3, ID, ty, T0, "{}").unwrap();
        assert_eq!(back.kind, kind_filled(ty, ID, T0, "{}"), "{ty}");
    }
}
