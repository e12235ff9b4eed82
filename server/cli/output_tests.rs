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
