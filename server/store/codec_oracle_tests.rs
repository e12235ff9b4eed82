//! The one-pass writer (`compact`) against the tree writer it replaced:
//! build a `serde_json::Value`, strip the template fields, write the tree.
//! The stored bytes must not change (the hash chain covers them), so the
//! two must agree byte for byte on every event kind and decision shape.

use super::tests::{column_fields, column_value};
use super::*;
use crate::core::{
    apply, Answer, Escalation, EscalationLevel, EscalationState, OnTimeout, Policy, Status, Unless,
    Verdict,
};
use proptest::prelude::*;
use serde_json::Map;

/// Removes the fields of `v` equal to the template's, recursing into the
/// fields whose shape is known (the writer before `compact`).
fn strip(v: &mut Value, template: &Value) {
    let (Value::Object(map), Value::Object(tmpl)) = (v, template) else {
        return;
    };
    let t = templates();
    for (key, val) in map.iter_mut() {
        match key.as_str() {
            "policy" => strip(val, &t.policy),
            "answers" => each(val, |a| strip(a, &t.answer)),
            "escalations" => each(val, |e| strip(e, &t.escalation)),
            "escalation" => each(val, |l| strip(l, &t.level)),
            _ => {}
        }
    }
    map.retain(|k, val| tmpl.get(k) != Some(val));
}

fn tree_encode_event(event: &Event) -> String {
    let type_name = event.kind.type_name();
    let Some(template) = payload_template(type_name) else {
        return "{}".into();
    };
    let mut tagged = serde_json::to_value(&event.kind).unwrap();
    let mut payload = match tagged.get_mut("data").map(Value::take) {
        Some(Value::Object(mut data)) if matches!(type_name, "CREATED" | "ANSWERED") => data
            .values_mut()
            .next()
            .map(Value::take)
            .unwrap_or_default(),
        Some(data) => data,
        None => Value::Object(Map::new()),
    };
    if let Value::Object(map) = &mut payload {
        for field in column_fields(type_name) {
            if map.get(*field) == Some(&column_value(field, &event.decision_id, event.at)) {
                map.remove(*field);
            }
        }
    }
    strip(&mut payload, template);
    canonical_json(&payload)
}

fn tree_encode_decision(d: &Decision) -> String {
    let mut v = serde_json::to_value(d).unwrap();
    strip(&mut v, &templates().decision);
    if let Value::Object(map) = &mut v {
        if map.get("updated_at") == map.get("created_at") {
            map.remove("updated_at");
        }
        if map.get("version") == Some(&Value::from(1))
            && map.get(LAST_EVENT) == Some(&CREATED.into())
        {
            map.remove(LAST_EVENT);
        }
        for field in ROW_COLUMNS {
            map.remove(field);
        }
    }
    serde_json::to_string(&v).unwrap()
}

fn assert_same(d: &Decision, events: &[Event]) {
    assert_eq!(encode_decision(d).unwrap(), tree_encode_decision(d));
    for e in events {
        assert_eq!(encode_event(e).unwrap(), tree_encode_event(e), "{e:?}");
    }
}

#[test]
fn the_one_pass_writer_matches_the_tree_writer_on_the_rich_log() {
    let mut state = None;
    let log = tests::rich_log();
    for e in &log {
        let d = apply(state, e).unwrap();
        assert_same(&d, std::slice::from_ref(e));
        state = Some(d);
    }
    // And on a decision at its defaults, and the small ask's first row.
    assert_same(&Decision::default(), &[]);
}

/// Keys that sort differently by bytes and by JavaScript's rules, and that
/// need escaping.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        Just("9".to_string()),
        Just("10".to_string()),
        Just("01".to_string()),
        Just("4294967295".to_string()),
        Just("a\"b\\c\n".to_string()),
        Just("\u{e000}".to_string()),
        Just("😀".to_string()),
        Just("policy".to_string()),
        Just("answers".to_string()),
        "[a-z]{0,6}",
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(Value::from(-0.0)),
        Just(Value::from(1e21)),
        Just(Value::from(5e-324)),
        Just(Value::from(1.0)),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number(),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(key(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn words() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[a-z\u{e9}]{0,3}", 0..3)
}

fn micros() -> impl Strategy<Value = Micros> {
    prop_oneof![Just(0), Just(T), 0..i64::MAX, any::<i64>()]
}

fn opt<S: Strategy>(s: S) -> impl Strategy<Value = Option<S::Value>> {
    prop::option::of(s)
}

const T: Micros = 1_764_646_717_123_456;

fn level() -> impl Strategy<Value = EscalationLevel> {
    (micros(), words(), 0..3u8).prop_map(|(after_us, webhooks, u)| EscalationLevel {
        after_us,
        webhooks,
        unless: [Unless::None, Unless::Acked, Unless::Answered][u as usize],
    })
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        ("[a-z.*]{0,4}", 0..4u32, opt(micros()), 0..3u8, json()),
        (
            prop_oneof![Just(60_000_000), micros()],
            words(),
            prop_oneof![Just(60_000_000), micros()],
            any::<bool>(),
            words(),
            prop::collection::vec(level(), 0..3),
            words(),
            prop::option::of("[A-Z0-9]{1,4}"),
        ),
    )
        .prop_map(|((kind, n, timeout, on, answer), rest)| Policy {
            matched_kind: kind,
            required_approvals: n,
            timeout_us: timeout,
            on_timeout: [OnTimeout::Expire, OnTimeout::Approve, OnTimeout::Reject][on as usize],
            timeout_answer: answer,
            ack_window_us: rest.0,
            fallback: rest.1,
            context_max_age_us: rest.2,
            allow_self_approval: rest.3,
            webhook_surfaces: rest.4,
            escalation: rest.5,
            notify_outcome: rest.6,
            slack_channel: rest.7,
        })
}

fn answer() -> impl Strategy<Value = Answer> {
    (
        any::<bool>(),
        json(),
        "[a-z]{0,3}",
        "[a-z]{0,3}",
        (opt("[a-z]{0,3}"), opt("[a-z]{0,3}")),
        micros(),
        prop_oneof![Just(0u64), any::<u64>()],
    )
        .prop_map(
            |(reject, answer, rationale, operator, (submitted_by, issuer), at, seq)| Answer {
                verdict: if reject {
                    Verdict::Reject
                } else {
                    Verdict::Approve
                },
                answer,
                rationale,
                operator,
                submitted_by,
                issuer,
                answered_at: at,
                sequence: seq,
            },
        )
}

fn escalation() -> impl Strategy<Value = Escalation> {
    (0..3u32, micros(), 0..3u8, opt(micros())).prop_map(|(level, due_at, s, fired_at)| Escalation {
        level,
        due_at,
        state: [
            EscalationState::Pending,
            EscalationState::Fired,
            EscalationState::Skipped,
        ][s as usize],
        fired_at,
    })
}

fn decision() -> impl Strategy<Value = Decision> {
    let ids = (
        "[a-z0-9-]{0,4}",
        "[a-z.]{0,4}",
        json(),
        opt(json()),
        words(),
        words(),
    );
    let state = (
        0..4u32,
        opt("[a-f0-9]{0,4}"),
        0..6usize,
        prop::collection::vec(answer(), 0..3),
        "[a-z]{0,3}",
        micros(),
        (
            opt(micros()),
            opt(micros()),
            opt("[a-z]{0,3}"),
            opt(micros()),
        ),
        (0..3u64, 0..3u64),
        policy(),
    );
    let tail = (
        opt(micros()),
        0..3u64,
        opt("[a-z_]{0,4}"),
        opt("[a-z]{0,3}"),
        any::<bool>(),
        prop::collection::vec(escalation(), 0..3),
        opt(0..EventType::ALL.len()),
        prop_oneof![Just(None), Just(Some(0)), opt(micros())],
    );
    (ids, state, tail).prop_map(|(ids, state, tail)| Decision {
        id: ids.0,
        kind: ids.1,
        input: ids.2,
        response_schema: ids.3,
        authorized_roles: ids.4,
        surfaces: ids.5,
        required_approvals: state.0,
        context_hash: state.1,
        status: Status::ALL[state.2],
        answers: state.3,
        asked_by: state.4,
        created_at: state.5,
        expires_at: state.6 .0,
        delivered_at: state.6 .1,
        delivered_via: state.6 .2,
        closed_at: state.6 .3,
        version: state.7 .0,
        last_sequence: state.7 .1,
        policy: state.8,
        context_confirmed_at: tail.0,
        context_confirmed_sequence: tail.1,
        close_reason: tail.2,
        closed_by: tail.3,
        fallback_fired: tail.4,
        escalations: tail.5,
        last_event_type: tail.6.map(|i| EventType::ALL[i]),
        // None: equal to created_at; Some(0): the template.
        updated_at: match tail.7 {
            None => state.5,
            Some(t) => t,
        },
    })
}

/// Every event kind around `d`, at `at`, for decision `id`.
fn events(d: &Decision, id: &str, at: Micros, answer: Answer, words: Vec<String>) -> Vec<Event> {
    let w = |i: usize| words.get(i).cloned().unwrap_or_default();
    let kinds = vec![
        EventKind::Created {
            decision: Box::new(d.clone()),
        },
        EventKind::Delivered {
            surface: w(0),
            by: w(1),
        },
        EventKind::Answered { answer },
        EventKind::Approved,
        EventKind::Rejected,
        EventKind::Cancelled {
            by: w(1),
            reason: w(0),
        },
        EventKind::ContextConfirmed { by: w(0) },
        EventKind::ContextChanged {
            by: w(1),
            reported_hash: w(2),
        },
        EventKind::FallbackFired {
            webhooks: words.clone(),
        },
        EventKind::Expired,
        EventKind::Escalated {
            level: u32::try_from(words.len()).unwrap_or(0),
            webhooks: words.clone(),
        },
    ];
    kinds
        .into_iter()
        .map(|kind| Event {
            sequence: 1,
            decision_id: id.to_string(),
            at,
            kind,
        })
        .collect()
}

// 256 cases by default; PROPTEST_CASES raises it.
proptest! {
    #[test]
    fn the_one_pass_writer_matches_the_tree_writer(
        d in decision(),
        same_id in any::<bool>(),
        at_created in any::<bool>(),
        answer in answer(),
        answered_now in any::<bool>(),
        words in words(),
    ) {
        let id = if same_id { d.id.clone() } else { format!("{}x", d.id) };
        let at = if at_created { d.created_at } else { d.updated_at };
        let mut answer = answer;
        if answered_now {
            answer.answered_at = at;
        }
        let events = events(&d, &id, at, answer, words);
        prop_assert_eq!(encode_decision(&d).unwrap(), tree_encode_decision(&d));
        for e in &events {
            let body = encode_event(e).unwrap();
            prop_assert_eq!(&body, &tree_encode_event(e));
            // And it reads back as the template-filling decoder reads it.
            let back = decode_event(e.sequence, &e.decision_id, e.kind.type_name(), e.at, &body);
            prop_assert_eq!(back.unwrap(), tests::decode_filled(e, &body));
        }
    }
}

/// Floats JSON cannot hold are written as the tree writer wrote them, and
/// a map the writer cannot key is an error, not a panic.
#[test]
fn odd_values_match_the_tree_writer_or_fail_cleanly() {
    let odd = vec![f64::NAN, f64::INFINITY, -0.0, 1e21, 0.1];
    let tree = serde_json::to_value(&odd).unwrap();
    for (form, want) in [
        (Form::Canonical, canonical_json(&tree)),
        (Form::Plain, serde_json::to_string(&tree).unwrap()),
    ] {
        let mut out = Vec::new();
        compact::write(&mut out, &odd, form, None, &[], by_name).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }
    let keyed_by_number: std::collections::BTreeMap<u32, u32> = [(1, 2)].into();
    let mut out = Vec::new();
    let refused = compact::write(
        &mut out,
        &keyed_by_number,
        Form::Canonical,
        None,
        &[],
        by_name,
    );
    assert!(refused.is_err());
}
