//! Property tests: random and malformed input through the core and the
//! conversion layer never panics, and the state machine's invariants hold.

use proptest::prelude::*;
use prost_types::value::Kind;
use serde_json::json;
use witness::api::convert::json_from_proto;
use witness::core::canonical::canonical_json;
use witness::core::schema::Limits;
use witness::core::*;

fn proto_value() -> impl Strategy<Value = prost_types::Value> {
    let leaf = prop_oneof![
        Just(prost_types::Value { kind: None }),
        Just(prost_types::Value {
            kind: Some(Kind::NullValue(0))
        }),
        any::<bool>().prop_map(|b| prost_types::Value {
            kind: Some(Kind::BoolValue(b))
        }),
        any::<f64>().prop_map(|n| prost_types::Value {
            kind: Some(Kind::NumberValue(n))
        }),
        ".{0,12}".prop_map(|s| prost_types::Value {
            kind: Some(Kind::StringValue(s))
        }),
    ];
    leaf.prop_recursive(24, 256, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|values| prost_types::Value {
                kind: Some(Kind::ListValue(prost_types::ListValue { values }))
            }),
            prop::collection::btree_map(".{0,6}", inner, 0..6).prop_map(|fields| {
                prost_types::Value {
                    kind: Some(Kind::StructValue(prost_types::Struct { fields })),
                }
            }),
        ]
    })
}

proptest! {
    #[test]
    fn conversion_and_limits_never_panic_and_canonical_form_is_stable(v in proto_value()) {
        if let Ok(json) = json_from_proto("input", Some(v)) {
            let _ = Limits::default().check_json("input", &json);
            let once = canonical_json(&json);
            let reparsed: serde_json::Value = serde_json::from_str(&once).unwrap();
            prop_assert_eq!(canonical_json(&reparsed), once);
        }
    }

    #[test]
    fn schema_checks_never_panic(schema in proto_value(), answer in proto_value()) {
        if let (Ok(s), Ok(a)) = (json_from_proto("s", Some(schema)), json_from_proto("a", Some(answer))) {
            if schema::check_schema(&s).is_ok() {
                let _ = schema::validate_answer(&s, &a);
            }
        }
    }

    #[test]
    fn random_commands_keep_the_state_machine_invariants(
        approvals in 1u32..4,
        steps in prop::collection::vec((0u8..8, 0u8..5, 0i64..120), 0..30),
    ) {
        let ctx = json!({"v": 1});
        let new = NewDecision {
            id: "d".into(), kind: "k".into(), input: json!(null), response_schema: None,
            authorized_roles: vec!["sre".into()], surfaces: vec![], required_approvals: approvals,
            context_hash: Some(canonical::context_hash(&ctx)), timeout_us: Some(60_000_000), asked_by: "svc".into(),
        };
        let created = create(new, Policy::default(), 0).unwrap();
        let mut seq = 1;
        let mut d = apply(None, &Event { sequence: seq, decision_id: "d".into(), at: 0, kind: created }).unwrap();
        let names = ["svc", "alice", "bob", "carol", "mallory"];
        for (op, who, secs) in steps {
            let now = secs * 1_000_000;
            let roles = if who == 4 { vec![] } else { vec!["sre".to_string()] };
            let actor = Actor::new(names[who as usize], roles);
            let hash = |same: bool| canonical::context_hash(&if same { ctx.clone() } else { json!({"v": 2}) });
            let action = match op {
                0 | 1 => Action::Answer {
                    actor, verdict: if op == 0 { Verdict::Approve } else { Verdict::Reject },
                    answer: json!(null), rationale: "r".into(),
                    current_context_hash: (secs % 3 == 0).then(|| hash(secs % 2 == 0)),
                    current_roles: None,
                },
                2 => Action::ReportContext { actor, context_hash: hash(secs % 5 != 0) },
                3 => Action::Ack { actor, surface: "console".into() },
                4 => Action::Cancel { actor, reason: String::new() },
                5 => Action::Expire,
                _ => Action::FireFallback,
            };
            let before = d.clone();
            match decide(&d, &action, now) {
                Err(_) => {}
                Ok(decided) => {
                    if before.status.is_terminal() {
                        prop_assert!(decided.events.is_empty(), "nothing leaves a terminal status");
                    }
                    for kind in decided.events {
                        seq += 1;
                        d = apply(Some(d), &Event { sequence: seq, decision_id: "d".into(), at: now, kind }).unwrap();
                    }
                }
            }
            prop_assert_eq!(d.version, seq);
            if before.status.is_terminal() {
                prop_assert_eq!(&d, &before);
            }
            if d.status == Status::Approved {
                let approvers: std::collections::BTreeSet<_> = d.answers.iter()
                    .filter(|a| a.verdict == Verdict::Approve).map(|a| a.operator.clone()).collect();
                prop_assert!(approvers.len() >= d.required_approvals as usize || d.answers.iter().any(|a| a.operator == "witness"));
                prop_assert!(!approvers.contains("svc"), "no self-approval");
            }
        }
    }
}

/// Doubles a request or answer may carry: whole ones (small, near 2^53 and
/// 2^64, beyond) as well as any.
fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        any::<i32>().prop_map(f64::from),
        any::<i64>().prop_map(|i| i as f64),
        any::<u64>().prop_map(|u| u as f64),
        (-1e22..1e22f64).prop_map(f64::trunc),
        Just(-0.0),
    ]
}

proptest! {
    /// The client's conversion (witness-proto, used by the CLI's output)
    /// gives the same JSON as the server's canonical form.
    #[test]
    fn clients_json_equals_the_servers_canonical_json(v in proto_value(), n in number()) {
        let both = prost_types::Value {
            kind: Some(Kind::ListValue(prost_types::ListValue {
                values: vec![v, prost_types::Value { kind: Some(Kind::NumberValue(n)) }],
            })),
        };
        let client = witness::proto::convert::json_from_proto("x", Some(both.clone()));
        let server = json_from_proto("x", Some(both));
        match (client, server) {
            (Ok(c), Ok(s)) => prop_assert_eq!(c, s),
            (Err(c), Err(s)) => prop_assert_eq!(c.to_string(), s.message),
            (c, s) => prop_assert!(false, "client {:?}, server {:?}", c, s),
        }
    }
}
