//! The state machine: random command sequences on one decision through
//! `decide` + `apply`, checking its invariants after every step and that
//! replaying the log rebuilds the same decision.

use crate::canonical::json_value;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use witness::core::*;

/// One command on the decision under test.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Answer {
        who: usize,
        approve: bool,
        ctx: Option<bool>,
        answer: Value,
        behalf: bool,
    },
    Report {
        who: usize,
        same: bool,
    },
    Ack {
        who: usize,
    },
    Cancel {
        who: usize,
    },
    /// Takes the operator's roles away (the config changed).
    Revoke {
        who: usize,
    },
    Wait(i64),
    Expire,
    Ladder,
}

pub(crate) fn step() -> impl Strategy<Value = Step> {
    let who = 0usize..5;
    prop_oneof![
        5 => (who.clone(), prop::bool::weighted(0.8), prop::option::of(any::<bool>()), json_value(), prop::bool::weighted(0.1))
            .prop_map(|(who, approve, ctx, answer, behalf)| Step::Answer { who, approve, ctx, answer, behalf }),
        2 => (who.clone(), prop::bool::weighted(0.8)).prop_map(|(who, same)| Step::Report { who, same }),
        1 => who.clone().prop_map(|who| Step::Ack { who }),
        1 => who.clone().prop_map(|who| Step::Cancel { who }),
        1 => who.prop_map(|who| Step::Revoke { who }),
        2 => (0i64..100_000_000).prop_map(Step::Wait),
        1 => Just(Step::Expire),
        1 => Just(Step::Ladder),
    ]
}

const NAMES: [&str; 5] = ["svc", "alice", "bob", "carol", "mallory"];

pub(crate) fn run_machine(
    shape: (u32, bool, bool, u8),
    steps: &[Step],
) -> Result<(), TestCaseError> {
    let (approvals, self_ok, with_schema, on_timeout) = shape;
    let ctx = json!({"v": 1});
    let policy = Policy {
        allow_self_approval: self_ok,
        on_timeout: [OnTimeout::Expire, OnTimeout::Approve, OnTimeout::Reject][on_timeout as usize],
        timeout_answer: json!({"auto": true}),
        fallback: vec!["pager".into()],
        ack_window_us: 30_000_000,
        escalation: vec![
            EscalationLevel {
                after_us: 40_000_000,
                webhooks: vec!["l1".into()],
                unless: Unless::Acked,
            },
            EscalationLevel {
                after_us: 80_000_000,
                webhooks: vec!["l2".into()],
                unless: Unless::Answered,
            },
            EscalationLevel {
                after_us: 120_000_000,
                webhooks: vec!["l3".into()],
                unless: Unless::None,
            },
        ],
        ..Policy::default()
    };
    let new = NewDecision {
        id: "d".into(),
        kind: "k".into(),
        input: json!(null),
        response_schema: with_schema.then(|| json!({"type": "object", "required": ["ok"]})),
        authorized_roles: vec!["sre".into()],
        surfaces: vec![],
        required_approvals: approvals,
        context_hash: Some(canonical::context_hash(&ctx)),
        timeout_us: Some(150_000_000),
        asked_by: "svc".into(),
    };
    let mut roles: std::collections::BTreeMap<String, Vec<String>> = NAMES
        .iter()
        .map(|n| {
            (
                n.to_string(),
                if *n == "mallory" {
                    vec![]
                } else {
                    vec!["sre".to_string()]
                },
            )
        })
        .collect();
    let mut seq = 1u64;
    let created = create(new, policy, 0).unwrap();
    let mut log = vec![Event {
        sequence: 1,
        decision_id: "d".into(),
        at: 0,
        kind: created,
    }];
    let mut d = apply(None, &log[0]).unwrap();
    let mut now = 0i64;
    let mut terminal_events = 0;
    for s in steps {
        let actor = |who: usize, roles: &std::collections::BTreeMap<String, Vec<String>>| {
            Actor::new(NAMES[who], roles[NAMES[who]].clone())
        };
        let hash =
            |same: bool| canonical::context_hash(&if same { ctx.clone() } else { json!({"v": 2}) });
        let action = match s {
            Step::Answer {
                who,
                approve,
                ctx,
                answer,
                behalf,
            } => {
                let mut a = actor(*who, &roles);
                if *behalf {
                    a.submitted_by = Some("svc".into());
                }
                Action::Answer {
                    actor: a,
                    verdict: if *approve {
                        Verdict::Approve
                    } else {
                        Verdict::Reject
                    },
                    answer: answer.clone(),
                    rationale: "r".into(),
                    current_context_hash: ctx.map(hash),
                    current_roles: Some(std::sync::Arc::new(roles.clone())),
                }
            }
            Step::Report { who, same } => Action::ReportContext {
                actor: actor(*who, &roles),
                context_hash: hash(*same),
            },
            Step::Ack { who } => Action::Ack {
                actor: actor(*who, &roles),
                surface: "console".into(),
            },
            Step::Cancel { who } => Action::Cancel {
                actor: actor(*who, &roles),
                reason: "x".into(),
            },
            Step::Revoke { who } => {
                roles.insert(NAMES[*who].to_string(), vec![]);
                continue;
            }
            Step::Wait(us) => {
                now += us;
                continue;
            }
            Step::Expire => Action::Expire,
            Step::Ladder => Action::FireFallback,
        };
        let before = d.clone();
        if let Ok(decided) = decide(&d, &action, now) {
            if before.status.is_terminal() {
                prop_assert!(
                    decided.events.is_empty(),
                    "nothing leaves a terminal status"
                );
            }
            for kind in decided.events {
                seq += 1;
                // Through the stored form, as the store does.
                let event_type = kind.type_name();
                let body = witness::store::codec::encode_event(&Event {
                    sequence: seq,
                    decision_id: "d".into(),
                    at: now,
                    kind,
                })
                .unwrap();
                let event =
                    witness::store::codec::decode_event(seq, "d", event_type, now, &body).unwrap();
                d = apply(Some(d), &event).unwrap();
                if d.status.is_terminal()
                    && !before.status.is_terminal()
                    && d.last_sequence == seq
                    && matches!(
                        event.kind,
                        EventKind::Approved
                            | EventKind::Rejected
                            | EventKind::Cancelled { .. }
                            | EventKind::Expired
                            | EventKind::ContextChanged { .. }
                    )
                {
                    terminal_events += 1;
                }
                log.push(event);
            }
        }
        prop_assert_eq!(d.version, seq);
        prop_assert!(terminal_events <= 1, "two terminal events");
        prop_assert_eq!(d.status.is_terminal(), d.closed_at.is_some());
        if before.status.is_terminal() {
            prop_assert_eq!(&d, &before);
        }
        let ops: Vec<_> = d.answers.iter().map(|a| a.operator.clone()).collect();
        let distinct: BTreeSet<_> = ops.iter().cloned().collect();
        prop_assert_eq!(ops.len(), distinct.len(), "an operator answered twice");
        if !self_ok {
            prop_assert!(
                d.answers.iter().all(|a| a.operator != "svc"),
                "self-approval"
            );
        }
        if d.status == Status::Approved && !d.answers.iter().any(|a| a.operator == "witness") {
            let approvers = d
                .answers
                .iter()
                .filter(|a| a.verdict == Verdict::Approve)
                .count();
            prop_assert!(approvers >= d.required_approvals as usize);
        }
        if d.status == Status::Open {
            prop_assert!(d.answers.iter().all(|a| a.verdict == Verdict::Approve));
        }
        for e in &d.escalations {
            prop_assert_eq!(e.state == EscalationState::Fired, e.fired_at.is_some());
        }
        // The stored projection body round-trips exactly.
        let stored = serde_json::to_string(&d).unwrap();
        prop_assert_eq!(&serde_json::from_str::<Decision>(&stored).unwrap(), &d);
    }
    // Replaying the log from nothing rebuilds the same decision.
    let mut replayed = None;
    for e in &log {
        replayed = Some(apply(replayed, e).unwrap());
    }
    prop_assert_eq!(replayed.as_ref(), Some(&d));
    Ok(())
}
