//! (a) Running commands through the pure core (`decide` + `apply`) and
//! comparing each result and the decision after it with the model.

use crate::reference::{ctx_value, Cmd, Model, Res, Seen, PEOPLE, SEC};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::json;
use witness::core::{self, Action, Actor, Decision, NewDecision, Outcome, RefusalKind};

fn actor(who: usize) -> Actor {
    Actor::new(
        PEOPLE[who].0,
        PEOPLE[who].1.iter().map(ToString::to_string).collect(),
    )
}

fn core_action(cmd: &Cmd) -> Option<Action> {
    let hash = |same| core::canonical::context_hash(&ctx_value(same));
    Some(match *cmd {
        Cmd::Answer {
            who,
            approve,
            ctx,
            empty_rationale,
        } => Action::Answer {
            actor: actor(who),
            verdict: if approve {
                core::Verdict::Approve
            } else {
                core::Verdict::Reject
            },
            answer: json!(null),
            rationale: if empty_rationale { " " } else { "looked" }.into(),
            current_context_hash: ctx.map(hash),
            current_roles: None,
        },
        Cmd::Report { who, same } => Action::ReportContext {
            actor: actor(who),
            context_hash: hash(same),
        },
        Cmd::Ack { who } => Action::Ack {
            actor: actor(who),
            surface: "console".into(),
        },
        Cmd::Cancel { who } => Action::Cancel {
            actor: actor(who),
            reason: String::new(),
        },
        Cmd::Wait(_) => return None,
        Cmd::Expire => Action::Expire,
        Cmd::Fallback => Action::FireFallback,
    })
}

fn core_result(r: Result<Outcome, RefusalKind>) -> Res {
    match r {
        Ok(Outcome::AwaitingApprovals) => Res::Awaiting,
        Ok(Outcome::Closed) => Res::Closed,
        Ok(Outcome::ContextChanged) => Res::ContextChanged,
        Ok(Outcome::ContextMatched) => Res::Matched,
        Ok(Outcome::Accepted) => Res::Accepted,
        Ok(Outcome::NotAccepted) => Res::NotAccepted,
        Ok(Outcome::Done) => Res::Done,
        Err(RefusalKind::NotFound) => Res::NotFound,
        Err(RefusalKind::PermissionDenied) => Res::Denied,
        Err(RefusalKind::FailedPrecondition) => Res::Precondition,
        Err(RefusalKind::InvalidArgument) => Res::Invalid,
    }
}

fn seen_in_core(d: &Decision) -> Seen {
    Seen {
        status: d.status.as_str().into(),
        approvals: d
            .answers
            .iter()
            .filter(|a| a.verdict == core::Verdict::Approve)
            .count(),
        answers: d.answers.len(),
        delivered: d.delivered_at.is_some(),
        version: d.version,
    }
}

/// (a) The pure core against the model.
pub(crate) fn run_core(
    shape: (usize, bool, Option<i64>),
    cmds: &[Cmd],
) -> Result<(), TestCaseError> {
    let (required, has_ctx, timeout) = shape;
    let mut model = Model::new(false, required, has_ctx, timeout.map(|t| t * SEC));
    let new = NewDecision {
        id: "d".into(),
        kind: "model.k".into(),
        input: json!(null),
        response_schema: None,
        authorized_roles: vec!["sre".into()],
        surfaces: vec!["console".into()],
        required_approvals: required as u32,
        context_hash: has_ctx.then(|| core::canonical::context_hash(&ctx_value(true))),
        timeout_us: timeout.map(|t| t * SEC),
        asked_by: "svc".into(),
    };
    let created = core::create(new, core::Policy::default(), 0).unwrap();
    let mut seq = 1;
    let event = |seq, at, kind| core::Event {
        sequence: seq,
        decision_id: "d".into(),
        at,
        kind,
    };
    let mut d = core::apply(None, &event(seq, 0, created)).unwrap();
    let mut now = 0;
    for (i, cmd) in cmds.iter().enumerate() {
        let expected = model.step(cmd);
        let got = match core_action(cmd) {
            None => {
                if let Cmd::Wait(s) = cmd {
                    now += s * SEC;
                }
                Res::Waited
            }
            Some(action) => match core::decide(&d, &action, now) {
                Err(refusal) => core_result(Err(refusal.kind)),
                Ok(decided) => {
                    for kind in decided.events {
                        seq += 1;
                        d = core::apply(Some(d), &event(seq, now, kind)).unwrap();
                    }
                    core_result(Ok(decided.outcome))
                }
            },
        };
        prop_assert_eq!(got, expected, "step {} {:?}", i, cmd);
        prop_assert_eq!(
            seen_in_core(&d),
            Seen::of_model(&model),
            "after step {} {:?}",
            i,
            cmd
        );
        prop_assert_eq!(
            d.fallback_fired,
            model.fallback_fired,
            "after step {} {:?}",
            i,
            cmd
        );
    }
    Ok(())
}
