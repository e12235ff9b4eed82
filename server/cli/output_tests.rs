//! Whatever a server sends, every output path prints without panicking
//! (issue 14: a timestamp past year 9999 crashed every operator's CLI).

use super::*;
use proptest::prelude::*;

fn timestamp() -> impl Strategy<Value = Option<prost_types::Timestamp>> {
    let seconds = prop_oneof![
        any::<i64>(),
        Just(i64::MAX),
        Just(i64::MIN),
        Just(MAX_RFC3339_SECONDS),
        Just(MAX_RFC3339_SECONDS + 1),
        Just(-1i64),
        0..4_000_000_000i64,
    ];
    let nanos = prop_oneof![any::<i32>(), 0..1_000_000_000i32];
    proptest::option::of(
        (seconds, nanos).prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
    )
}

fn value() -> impl Strategy<Value = Option<prost_types::Value>> {
    use prost_types::value::Kind;
    let leaf = prop_oneof![
        Just(Kind::NullValue(7)),
        any::<bool>().prop_map(Kind::BoolValue),
        any::<f64>().prop_map(Kind::NumberValue),
        Just(Kind::NumberValue(f64::NAN)),
        Just(Kind::NumberValue(f64::INFINITY)),
        ".*".prop_map(Kind::StringValue),
    ]
    .prop_map(|k| prost_types::Value { kind: Some(k) });
    let tree = leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|values| {
                prost_types::Value {
                    kind: Some(Kind::ListValue(prost_types::ListValue { values })),
                }
            }),
            proptest::collection::btree_map(".*", inner, 0..4).prop_map(|fields| {
                prost_types::Value {
                    kind: Some(Kind::StructValue(prost_types::Struct { fields })),
                }
            }),
        ]
    });
    proptest::option::of(prop_oneof![tree, Just(prost_types::Value { kind: None })])
}

fn answer() -> impl Strategy<Value = proto::Answer> {
    (
        any::<i32>(),
        value(),
        ".*",
        ".*",
        ".*",
        timestamp(),
        any::<u64>(),
    )
        .prop_map(
            |(verdict, answer, rationale, operator, submitted_by, answered_at, sequence)| {
                proto::Answer {
                    verdict,
                    answer,
                    rationale,
                    operator,
                    submitted_by,
                    answered_at,
                    sequence,
                }
            },
        )
}

fn decision() -> impl Strategy<Value = proto::Decision> {
    let strings = (".*", ".*", ".*", ".*", ".*", ".*", ".*");
    let times = (
        timestamp(),
        timestamp(),
        timestamp(),
        timestamp(),
        timestamp(),
    );
    let rest = (
        any::<i32>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        value(),
        value(),
        proptest::collection::vec(answer(), 0..3),
        proptest::collection::vec(".*", 0..3),
        any::<bool>(),
    );
    (strings, times, rest).prop_map(|(s, t, r)| proto::Decision {
        id: s.0,
        kind: s.1,
        context_hash: s.2,
        asked_by: s.3,
        delivered_via: s.4,
        close_reason: s.5,
        closed_by: s.6,
        created_at: t.0,
        expires_at: t.1,
        delivered_at: t.2,
        closed_at: t.3,
        context_confirmed_at: t.4,
        status: r.0,
        required_approvals: r.1,
        version: r.2,
        last_sequence: r.3,
        input: r.4,
        response_schema: r.5,
        answers: r.6,
        authorized_roles: r.7.clone(),
        surfaces: r.7,
        fallback_fired: r.8,
        ..Default::default()
    })
}

fn capturing(json: bool) -> Printer {
    Printer {
        json,
        captured: Some(Default::default()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_output_path_survives_any_decision(
        d in decision(),
        seq in any::<u64>(),
        event_type in any::<i32>(),
        at in timestamp(),
        outcome in any::<i32>(),
        flag in any::<bool>(),
        next in ".*",
    ) {
        for json in [false, true] {
            let p = capturing(json);
            p.decision(Some(&d));
            p.answered(&proto::AnswerResponse { decision: Some(d.clone()), outcome });
            p.acked(&proto::AckDeliveryResponse { accepted: flag, decision: Some(d.clone()) });
            p.reported(&proto::ReportContextResponse { matched: flag, decision: Some(d.clone()) });
            for decision in [Some(d.clone()), None] {
                p.event(&proto::DecisionEvent {
                    sequence: seq,
                    r#type: event_type,
                    decision,
                    at,
                    snapshot: flag,
                });
            }
            let table = crate::cli::list::table(std::slice::from_ref(&d), seq as i64);
            prop_assert!(table.lines().count() == 2, "{}", table);
            let _ = (decision_json(&d), &next);
            let out = p.captured.as_ref().map(|c| c.borrow().len()).unwrap_or(0);
            prop_assert_eq!(out, 6);
        }
    }
}

#[test]
fn times_past_year_9999_or_before_1970_print_as_epoch_seconds() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(
        rfc3339(MAX_RFC3339_SECONDS * 1_000_000),
        "9999-12-31T23:59:59.000Z"
    );
    assert_eq!(
        rfc3339((MAX_RFC3339_SECONDS + 1) * 1_000_000),
        "253402300800s since the Unix epoch (outside RFC 3339)"
    );
    assert_eq!(rfc3339(-1), "-1s since the Unix epoch (outside RFC 3339)");
    assert!(rfc3339(i64::MAX).ends_with("(outside RFC 3339)"));
    assert!(rfc3339(i64::MIN).ends_with("(outside RFC 3339)"));
}

/// Strings with the characters a hostile server (or asker) might send.
fn hostile() -> impl Strategy<Value = String> {
    "[a-z \\x00-\\x1f\\x7f\\u{80}-\\u{9f}\\u{202a}-\\u{202e}\\u{2066}-\\u{2069}é]{0,12}"
}

fn hostile_decision() -> impl Strategy<Value = proto::Decision> {
    let strings = proptest::collection::vec(hostile(), 14);
    (decision(), strings).prop_map(|(mut d, s)| {
        d.id = s[0].clone();
        d.kind = s[1].clone();
        d.context_hash = s[2].clone();
        d.asked_by = s[3].clone();
        d.delivered_via = s[4].clone();
        d.close_reason = s[5].clone();
        d.authorized_roles = vec![s[6].clone(), s[7].clone()];
        d.input = Some(prost_types::Value {
            kind: Some(prost_types::value::Kind::StringValue(s[8].clone())),
        });
        for (i, a) in d.answers.iter_mut().enumerate() {
            a.operator = s[9 + i % 2].clone();
            a.submitted_by = s[11].clone();
            a.rationale = s[12 + i % 2].clone();
        }
        d.escalations = vec![proto::Escalation {
            level: 1,
            webhooks: vec![s[13].clone()],
            unless: s[12].clone(),
            ..Default::default()
        }];
        d
    })
}

/// The same decision with every string made harmless, for counting lines.
fn tame(d: &proto::Decision) -> proto::Decision {
    // Same emptiness, harmless characters.
    let t = |s: &String| s.chars().map(|_| 'x').collect::<String>();
    let mut d = d.clone();
    for s in [
        &mut d.id,
        &mut d.kind,
        &mut d.context_hash,
        &mut d.asked_by,
        &mut d.delivered_via,
        &mut d.close_reason,
    ] {
        *s = t(s);
    }
    d.authorized_roles = d.authorized_roles.iter().map(t).collect();
    for a in &mut d.answers {
        a.operator = t(&a.operator);
        a.submitted_by = t(&a.submitted_by);
        a.rationale = t(&a.rationale);
    }
    for e in &mut d.escalations {
        e.unless = t(&e.unless);
        e.webhooks = e.webhooks.iter().map(t).collect();
    }
    d
}

/// Every text line a decision prints through, in order.
fn text_outputs(d: &proto::Decision) -> Vec<String> {
    let p = capturing(false);
    p.decision(Some(d));
    p.answered(&proto::AnswerResponse {
        decision: Some(d.clone()),
        outcome: 1,
    });
    p.event(&proto::DecisionEvent {
        sequence: 7,
        r#type: 1,
        decision: Some(d.clone()),
        at: None,
        snapshot: false,
    });
    let mut out = p
        .captured
        .map(std::cell::RefCell::into_inner)
        .unwrap_or_default();
    out.push(crate::cli::list::table(std::slice::from_ref(d), 0));
    let conn = crate::cli::Conn::for_tests();
    out.push(waiting_hint(d, &conn));
    let status = tonic::Status::invalid_argument(format!("kind: {}", d.kind));
    out.push(crate::cli::errors::rpc_message(&status));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn text_output_escapes_every_control_character_and_json_stays_exact(d in hostile_decision()) {
        let shown_outputs = text_outputs(&d);
        let tame_outputs = text_outputs(&tame(&d));
        for (out, tame) in shown_outputs.iter().zip(&tame_outputs) {
            let bad = out.chars().find(|c| {
                (c.is_control() && *c != '\n')
                    || ('\u{202a}'..='\u{202e}').contains(c)
                    || ('\u{2066}'..='\u{2069}').contains(c)
            });
            prop_assert!(bad.is_none(), "{:?} in {:?}", bad, out);
            prop_assert_eq!(out.lines().count(), tame.lines().count(), "{}", out);
        }
        // --json keeps every string exactly as the server sent it.
        let doc = decision_json(&d);
        prop_assert_eq!(doc["kind"].as_str(), Some(d.kind.as_str()));
        prop_assert_eq!(doc["close_reason"].as_str(), Some(d.close_reason.as_str()));
    }
}

#[test]
fn shown_escapes_what_a_terminal_would_obey() {
    assert_eq!(shown("log.\x1b[31mred\x1b[0m"), "log.\\x1b[31mred\\x1b[0m");
    assert_eq!(shown("r\n2026 FAKE LINE"), "r\\n2026 FAKE LINE");
    assert_eq!(shown("a\u{202e}b\u{9b}c"), "a\\u{202e}b\\x9bc");
    assert!(matches!(
        shown("plain é"),
        std::borrow::Cow::Borrowed("plain é")
    ));
}
