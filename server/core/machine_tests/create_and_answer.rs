//! create, apply and answer rules.

use super::*;

#[test]
fn create_takes_more_approvals_than_the_policy_never_fewer() {
    let err = create(ask(1, true), policy(2), T0).unwrap_err();
    assert_eq!(err.kind, INVALID);
    assert!(err.message.starts_with("required_approvals:"), "{err}");
    // More is kept; 0 means the policy's.
    let d = created(ask(3, true), policy(2));
    assert_eq!((d.required_approvals, d.policy.required_approvals), (3, 3));
    assert_eq!(created(ask(0, true), policy(2)).required_approvals, 2);
    let d = created(ask(0, false), Policy::default());
    assert_eq!(d.required_approvals, 1);
}

#[test]
fn create_requires_a_context_snapshot_for_a_quorum() {
    for (asked, pol) in [(2, 1), (0, 2), (3, 2)] {
        let res = create(ask(asked, false), policy(pol), T0);
        assert_refused(res, INVALID, "context_snapshot");
    }
    assert_eq!(created(ask(1, false), policy(1)).context_hash, None);
    assert_eq!(created(ask(2, true), policy(1)).context_hash, Some(ctx()));
}

#[test]
fn create_caps_the_timeout_by_the_policy() {
    let cases = [
        (Some(10 * SEC), Some(60 * SEC), Some(10 * SEC)),
        (Some(120 * SEC), Some(60 * SEC), Some(60 * SEC)),
        (None, Some(60 * SEC), Some(60 * SEC)),
        (Some(30 * SEC), None, Some(30 * SEC)),
        (None, None, None),
    ];
    for (asked, max, want) in cases {
        let new = NewDecision {
            timeout_us: asked,
            ..ask(1, false)
        };
        let pol = policy_with(|p| p.timeout_us = max);
        let d = created(new, pol);
        assert_eq!(d.policy.timeout_us, want, "asked {asked:?}, policy {max:?}");
        assert_eq!(d.expires_at, want.map(|t| T0 + t));
    }
}

#[test]
fn create_starts_open_with_the_policy_copied() {
    let pol = Policy {
        matched_kind: "deploy.*".into(),
        fallback: vec!["pager".into()],
        allow_self_approval: true,
        ..Policy::default()
    };
    let event = create(ask(1, false), pol.clone(), T0).unwrap();
    let EventKind::Created { decision: d } = event else {
        panic!("create must yield CREATED, got {event:?}");
    };
    assert_eq!((d.status, d.created_at), (Status::Open, T0));
    assert_eq!((d.version, d.last_sequence), (0, 0));
    assert!(d.answers.is_empty() && d.closed_at.is_none());
    assert_eq!(d.policy, pol);
}

// ---- apply ----

#[test]
fn apply_counts_versions_and_follows_sequences() {
    let mut sim = Sim::start(ask(2, true), policy(2));
    assert_eq!((sim.d.version, sim.d.last_sequence), (1, FIRST_SEQ));
    sim.ok(ack(op("alice")), s(1));
    sim.ok(approve("alice"), s(2));
    sim.ok(report(ctx()), s(3));
    sim.ok(approve("carol"), s(4));
    // CREATED, DELIVERED, ANSWERED, CONTEXT_CONFIRMED, ANSWERED, APPROVED
    assert_eq!(sim.d.version, 6);
    assert_eq!(sim.d.last_sequence, FIRST_SEQ + 5);
    let answer_seqs: Vec<u64> = sim.d.answers.iter().map(|a| a.sequence).collect();
    assert_eq!(answer_seqs, [FIRST_SEQ + 2, FIRST_SEQ + 4]);
    // Replaying the log rebuilds the same state, one version per event.
    let mut state = None;
    for (i, event) in sim.log.iter().enumerate() {
        let d = apply(state, event).unwrap();
        assert_eq!((d.version, d.last_sequence), (i as u64 + 1, event.sequence));
        state = Some(d);
    }
    assert_eq!(state.unwrap(), sim.d);
}

#[test]
fn apply_refuses_an_inconsistent_log() {
    let sim = Sim::start(ask(1, false), Policy::default());
    let orphan = event(7, EventKind::Approved);
    let err = apply(None, &orphan).unwrap_err();
    assert_eq!(err.sequence, 7);
    assert!(err.reason.contains("never created"), "{err}");
    let again = Event {
        sequence: FIRST_SEQ + 1,
        ..sim.log[0].clone()
    };
    let err = apply(Some(sim.d.clone()), &again).unwrap_err();
    assert!(err.reason.contains("CREATED"), "{err}");
    let elsewhere = Event {
        decision_id: "another".into(),
        ..orphan
    };
    assert!(apply(Some(sim.d), &elsewhere).is_err());
}

// ---- answer ----

#[test]
fn answer_on_a_closed_decision_is_refused() {
    let mut sim = Sim::start(ask(1, false), Policy::default());
    sim.ok(cancel(asker()), s(1));
    sim.refuse(approve("alice"), s(2), FAILED, "closed");
}

#[test]
fn answer_needs_an_authorized_role() {
    let mut sim = Sim::start(ask(1, false), Policy::default());
    // A stranger cannot see the decision: told it does not exist, exactly
    // as for a missing id, open or closed.
    let not_found = format!("decision_id: decision {ID} not found");
    let action = answer(stranger(), Verdict::Approve, None);
    sim.refuse(action, T0, NOT_FOUND, &not_found);
    sim.ok(approve("alice"), T0);
    let action = answer(stranger(), Verdict::Approve, None);
    sim.refuse(action, T0, NOT_FOUND, &not_found);
    // The asker sees it but holds no role: denied, without names.
    let mut sim = Sim::start(ask(1, false), Policy::default());
    let e = sim.refuse(
        answer(asker(), Verdict::Approve, None),
        T0,
        DENIED,
        "authorized roles",
    );
    assert!(!e.contains("bot") && !e.contains("sre"), "{e}");
}

#[test]
fn permission_denied_never_names_the_asker_or_the_roles() {
    let bot = Actor::new("bot", vec!["sre".into()]);
    let mut sim = Sim::start(ask(2, true), policy(2));
    let denied = [
        sim.refuse(
            answer(bot, Verdict::Approve, None),
            T0,
            DENIED,
            "self-approval",
        ),
        sim.refuse(report_by(op("alice"), ctx()), T0, DENIED, "asker"),
        sim.refuse(answer(asker(), Verdict::Approve, None), T0, DENIED, "roles"),
    ];
    for message in denied {
        assert!(
            !message.contains("bot") && !message.contains("sre") && !message.contains("alice"),
            "{message}"
        );
    }
}

#[test]
fn the_asker_may_not_answer_unless_the_policy_allows_it() {
    let bot = Actor::new("bot", vec!["sre".into()]);
    let self_answer = || answer(bot.clone(), Verdict::Approve, None);
    let mut sim = Sim::start(ask(1, false), Policy::default());
    sim.refuse(self_answer(), T0, DENIED, "self-approval");
    let allowing = policy_with(|p| p.allow_self_approval = true);
    let mut sim = Sim::start(ask(1, false), allowing);
    sim.ok(self_answer(), T0);
    assert_eq!(sim.d.status, Status::Approved);
}

#[test]
fn an_asker_submitting_on_behalf_of_someone_is_self_approval() {
    let mut sim = Sim::start(ask(1, false), Policy::default());
    let for_alice = |by: &str| Actor {
        submitted_by: Some(by.into()),
        ..op("alice")
    };
    let action = answer(for_alice("bot"), Verdict::Approve, None);
    sim.refuse(action, T0, DENIED, "self-approval");
    sim.ok(answer(for_alice("relay"), Verdict::Approve, None), T0);
    let recorded = &sim.d.answers[0];
    assert_eq!(recorded.operator, "alice");
    assert_eq!(recorded.submitted_by.as_deref(), Some("relay"));
}

#[test]
fn one_credential_is_one_vote_relayed_or_its_own() {
    let relay_for = |name: &str| Actor {
        submitted_by: Some("chatops".into()),
        ..op(name)
    };
    let itself = || op("chatops");
    // Relayed first, then as itself: refused.
    let mut sim = Sim::start(ask(2, true), policy(2));
    sim.ok(answer(relay_for("alice"), Verdict::Approve, None), s(1));
    sim.ok(report(ctx()), s(2));
    sim.refuse(
        answer(itself(), Verdict::Approve, None),
        s(3),
        FAILED,
        "relayed a vote",
    );
    // A relay for a second, distinct person counts: the quorum is complete.
    sim.ok(answer(relay_for("carol"), Verdict::Approve, None), s(3));
    assert_eq!(sim.d.status, Status::Approved);
    let who: Vec<_> = sim.d.answers.iter().map(|a| a.operator.as_str()).collect();
    assert_eq!(who, ["alice", "carol"]);
    // As itself first, then relayed: refused, a reject included.
    let mut sim = Sim::start(ask(2, true), policy(2));
    sim.ok(answer(itself(), Verdict::Approve, None), s(1));
    sim.ok(report(ctx()), s(2));
    for verdict in [Verdict::Approve, Verdict::Reject] {
        let action = answer(relay_for("alice"), verdict, None);
        sim.refuse(action, s(3), FAILED, "voted on decision");
    }
    assert_eq!(sim.d.status, Status::Open);
    assert_eq!(sim.d.answers.len(), 1);
}

#[test]
fn the_same_operator_may_not_answer_twice() {
    let mut sim = Sim::start(ask(2, true), policy(2));
    sim.ok(approve("alice"), s(1));
    sim.ok(report(ctx()), s(2));
    sim.refuse(approve("alice"), s(3), FAILED, "already answered");
    sim.refuse(reject("alice"), s(3), FAILED, "already answered");
}

#[test]
fn an_empty_rationale_is_refused() {
    let mut sim = Sim::start(ask(1, false), Policy::default());
    for rationale in ["", "  \n"] {
        let action = approve_with(json!(null), rationale);
        sim.refuse(action, T0, INVALID, "rationale");
    }
}

#[test]
fn an_answer_must_match_the_response_schema() {
    let new = NewDecision {
        response_schema: Some(json!({
            "type": "object",
            "properties": {"replicas": {"type": "integer", "minimum": 1}},
            "required": ["replicas"]
        })),
        ..ask(1, false)
    };
    let mut sim = Sim::start(new, Policy::default());
    let bad = approve_with(json!({"replicas": "three"}), "fine");
    sim.refuse(bad, T0, INVALID, "/replicas");
    sim.ok(approve_with(json!({"replicas": 3}), "fine"), T0);
    assert_eq!(sim.d.answers[0].answer, json!({"replicas": 3}));
}

#[test]
fn a_single_approval_closes_approved() {
    let mut sim = Sim::start(ask(1, false), Policy::default());
    let decided = sim.ok(approve("alice"), s(5));
    expect(&decided, &["ANSWERED", "APPROVED"], Outcome::Closed);
    assert_eq!(sim.d.status, Status::Approved);
    assert_eq!(sim.d.closed_at, Some(s(5)));
    let a = &sim.d.answers[0];
    assert_eq!(a.operator, "alice");
    assert_eq!(a.verdict, Verdict::Approve);
    assert_eq!(a.rationale, "checked the dashboards");
    assert_eq!(a.answered_at, s(5));
}

#[test]
fn a_reject_vetoes_even_after_approvals() {
    let mut sim = Sim::start(ask(3, true), policy(1));
    sim.ok(approve("alice"), s(1));
    sim.ok(approve("carol"), s(2));
    let decided = sim.ok(reject("erin"), s(3));
    expect(&decided, &["ANSWERED", "REJECTED"], Outcome::Closed);
    assert_eq!(sim.d.status, Status::Rejected);
    assert_eq!(sim.d.answers.len(), 3);
    assert_eq!(sim.d.answers[2].verdict, Verdict::Reject);
}

#[test]
fn a_quorum_of_two_needs_a_reconfirmed_context() {
    let mut sim = Sim::start(ask(2, true), policy(2));
    let first = sim.ok(approve("alice"), s(1));
    expect(&first, &["ANSWERED"], Outcome::AwaitingApprovals);
    assert_eq!(sim.d.status, Status::Open);
    sim.refuse(approve("carol"), s(2), FAILED, "re-confirm");
    sim.ok(report(ctx()), s(3));
    let second = sim.ok(approve("carol"), s(4));
    expect(&second, &["ANSWERED", "APPROVED"], Outcome::Closed);
    assert_eq!(sim.d.status, Status::Approved);
}

#[test]
fn a_confirmation_before_the_first_approval_does_not_count() {
    let mut sim = Sim::start(ask(2, true), policy(2));
    sim.ok(report(ctx()), s(1));
    sim.ok(approve("alice"), s(2));
    sim.refuse(approve("carol"), s(3), FAILED, "re-confirm");
}

#[test]
fn a_confirmation_older_than_context_max_age_does_not_count() {
    let pol = policy_with(|p| p.context_max_age_us = 30 * SEC);
    let mut sim = Sim::start(ask(2, true), pol);
    sim.ok(approve("alice"), s(1));
    sim.ok(report(ctx()), s(2));
    sim.refuse(approve("carol"), s(32) + 1, FAILED, "re-confirm");
    sim.ok(approve("carol"), s(32));
    assert_eq!(sim.d.status, Status::Approved);
}
