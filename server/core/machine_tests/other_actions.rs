//! The remaining rules: context reports, acks, cancels, timers, terminal states.

use super::*;

#[test]
fn the_completing_answers_own_matching_context_counts() {
    let mut sim = Sim::start(ask(2, true), policy(2));
    sim.ok(approve("alice"), s(1));
    let action = answer(op("carol"), Verdict::Approve, Some(ctx()));
    let decided = sim.ok(action, s(2));
    assert_eq!(types(&decided), ["ANSWERED", "APPROVED"]);
    assert_eq!(sim.d.status, Status::Approved);
}

#[test]
fn only_the_completing_approval_needs_a_confirmation() {
    let mut sim = Sim::start(ask(3, true), policy(1));
    sim.ok(approve("alice"), s(1));
    sim.ok(report(ctx()), s(2));
    let second = sim.ok(approve("carol"), s(3));
    assert_eq!(second.outcome, Outcome::AwaitingApprovals);
    // The confirmation came before the second approval: stale for the third.
    sim.refuse(approve("erin"), s(4), FAILED, "re-confirm");
}

#[test]
fn a_mismatching_current_context_closes_without_recording_the_answer() {
    for verdict in [Verdict::Approve, Verdict::Reject] {
        let mut sim = Sim::start(ask(2, true), policy(2));
        sim.ok(approve("alice"), s(1));
        let decided = sim.ok(answer(op("carol"), verdict, Some(other_ctx())), s(2));
        expect(&decided, &["CONTEXT_CHANGED"], Outcome::ContextChanged);
        assert_eq!(sim.d.status, Status::ContextChanged);
        assert_eq!(sim.d.answers.len(), 1, "carol's answer was recorded");
        assert_eq!(sim.d.closed_by.as_deref(), Some("carol"));
    }
}

#[test]
fn current_context_on_a_decision_without_context_is_invalid() {
    let mut sim = Sim::start(ask(1, false), Policy::default());
    let action = answer(op("alice"), Verdict::Approve, Some(ctx()));
    sim.refuse(action, T0, INVALID, "current_context");
}

// ---- ReportContext ----

#[test]
fn a_matching_report_records_a_confirmation() {
    let mut sim = Sim::start(ask(2, true), policy(2));
    let decided = sim.ok(report(ctx()), s(7));
    expect(&decided, &["CONTEXT_CONFIRMED"], Outcome::ContextMatched);
    assert_eq!(sim.d.status, Status::Open);
    assert_eq!(sim.d.context_confirmed_at, Some(s(7)));
    assert_eq!(sim.d.context_confirmed_sequence, FIRST_SEQ + 1);
}

#[test]
fn unchanged_reports_are_coalesced_but_quorum_still_completes() {
    // Default context_max_age: 60 s, so a logged confirmation stands for 30 s.
    let mut sim = Sim::start(ask(3, true), policy(3));
    expect(
        &sim.ok(report(ctx()), s(1)),
        &["CONTEXT_CONFIRMED"],
        Outcome::ContextMatched,
    );
    let logged = sim.d.clone();
    for t in [2, 6, 31] {
        expect(&sim.ok(report(ctx()), s(t)), &[], Outcome::ContextMatched);
        assert_eq!(sim.d, logged, "a coalesced confirmation changes nothing");
    }
    // Older than half the window: logged again.
    expect(
        &sim.ok(report(ctx()), s(32)),
        &["CONTEXT_CONFIRMED"],
        Outcome::ContextMatched,
    );
    sim.ok(approve("alice"), s(33));
    // The first confirmation after an approval is always logged...
    expect(
        &sim.ok(report(ctx()), s(34)),
        &["CONTEXT_CONFIRMED"],
        Outcome::ContextMatched,
    );
    expect(&sim.ok(report(ctx()), s(35)), &[], Outcome::ContextMatched);
    sim.ok(approve("carol"), s(36));
    expect(
        &sim.ok(report(ctx()), s(37)),
        &["CONTEXT_CONFIRMED"],
        Outcome::ContextMatched,
    );
    // ...so the completing approval finds one after the latest approval.
    for t in 38..60 {
        expect(&sim.ok(report(ctx()), s(t)), &[], Outcome::ContextMatched);
    }
    expect(
        &sim.ok(approve("erin"), s(60)),
        &["ANSWERED", "APPROVED"],
        Outcome::Closed,
    );
}

#[test]
fn confirming_every_five_seconds_keeps_quorum_possible_at_any_time() {
    // However long the wait, the latest logged confirmation stays inside
    // the window, and the log grows by about 2 per context_max_age.
    let mut sim = Sim::start(ask(2, true), policy(2));
    sim.ok(approve("alice"), s(1));
    let mut logged = 0;
    for t in (2..3600).step_by(5) {
        logged += sim.ok(report(ctx()), s(t)).events.len();
    }
    assert!(logged <= 2 * 3600 / 60 + 1, "{logged} events in an hour");
    expect(
        &sim.ok(approve("carol"), s(3600)),
        &["ANSWERED", "APPROVED"],
        Outcome::Closed,
    );
}

#[test]
fn a_changed_context_is_never_coalesced() {
    let mut sim = Sim::start(ask(2, true), policy(2));
    sim.ok(report(ctx()), s(1));
    let decided = sim.ok(report(other_ctx()), s(2));
    expect(&decided, &["CONTEXT_CHANGED"], Outcome::ContextChanged);
}

#[test]
fn a_mismatching_report_closes_context_changed() {
    let mut sim = Sim::start(ask(2, true), policy(2));
    sim.ok(approve("alice"), s(1));
    let decided = sim.ok(report(other_ctx()), s(2));
    expect(&decided, &["CONTEXT_CHANGED"], Outcome::ContextChanged);
    assert_eq!(sim.d.status, Status::ContextChanged);
    assert_eq!(sim.d.closed_at, Some(s(2)));
    let reason = sim.d.close_reason.unwrap();
    assert!(reason.contains(&other_ctx()), "{reason}");
}

#[test]
fn report_context_is_for_the_asker_on_an_open_decision_with_a_context() {
    let mut sim = Sim::start(ask(1, false), Policy::default());
    sim.refuse(report(ctx()), T0, FAILED, "context_snapshot");
    let mut sim = Sim::start(ask(2, true), policy(2));
    sim.refuse(report_by(op("alice"), ctx()), T0, DENIED, "asker");
    sim.refuse(report_by(stranger(), ctx()), T0, NOT_FOUND, "not found");
    sim.ok(cancel(asker()), s(1));
    sim.refuse(report(ctx()), s(2), FAILED, "closed");
}

// ---- Ack ----

#[test]
fn ack_needs_a_principal_who_sees_the_decision() {
    let mut sim = Sim::start(ask(1, false), Policy::default());
    sim.refuse(ack(stranger()), T0, NOT_FOUND, "not found");
    sim.refuse(ack_via(op("alice"), " "), T0, INVALID, "surface");
    assert_eq!(sim.ok(ack(asker()), T0).outcome, Outcome::Accepted);
}

#[test]
fn the_first_ack_delivers_and_later_acks_record_nothing() {
    let mut sim = Sim::start(ask(1, false), Policy::default());
    let first = sim.ok(ack(op("alice")), s(1));
    expect(&first, &["DELIVERED"], Outcome::Accepted);
    assert_eq!(sim.d.delivered_at, Some(s(1)));
    assert_eq!(sim.d.delivered_via.as_deref(), Some("console"));
    let before = sim.d.clone();
    let second = sim.ok(ack_via(op("carol"), "pager"), s(2));
    expect(&second, &[], Outcome::Accepted);
    assert_eq!(sim.d, before);
}

#[test]
fn an_ack_on_a_closed_decision_is_not_accepted() {
    let mut sim = Sim::start(ask(1, false), Policy::default());
    sim.ok(approve("alice"), s(1));
    let decided = sim.ok(ack(op("carol")), s(2));
    expect(&decided, &[], Outcome::NotAccepted);
    assert_eq!(sim.d.delivered_at, None);
}

// ---- Cancel ----

#[test]
fn the_asker_or_a_role_holder_may_cancel() {
    for (actor, who) in [(asker(), "bot"), (op("alice"), "alice")] {
        let mut sim = Sim::start(ask(1, false), Policy::default());
        let decided = sim.ok(cancel(actor), s(1));
        expect(&decided, &["CANCELLED"], Outcome::Done);
        assert_eq!(sim.d.status, Status::Cancelled);
        assert_eq!(sim.d.closed_by.as_deref(), Some(who));
        assert_eq!(sim.d.close_reason.as_deref(), Some("no longer needed"));
    }
}

#[test]
fn cancel_by_others_or_on_a_closed_decision_is_refused() {
    let mut sim = Sim::start(ask(1, false), Policy::default());
    sim.refuse(cancel(stranger()), T0, NOT_FOUND, "not found");
    sim.ok(reject("alice"), s(1));
    sim.refuse(cancel(asker()), s(2), FAILED, "closed");
}

// ---- Expire ----

fn timing_out(on_timeout: OnTimeout) -> Sim {
    let pol = Policy {
        timeout_us: Some(60 * SEC),
        on_timeout,
        timeout_answer: json!({"auto": true}),
        ..Policy::default()
    };
    Sim::start(ask(1, false), pol)
}

#[test]
fn expire_waits_for_the_deadline_then_closes_expired_never_rejected() {
    let mut forever = Sim::start(ask(1, false), Policy::default());
    assert!(forever.ok(Action::Expire, i64::MAX).events.is_empty());
    let mut sim = timing_out(OnTimeout::Expire);
    let early = sim.ok(Action::Expire, s(60) - 1);
    expect(&early, &[], Outcome::NotAccepted);
    assert_eq!(sim.d.status, Status::Open);
    let decided = sim.ok(Action::Expire, s(60));
    expect(&decided, &["EXPIRED"], Outcome::Closed);
    assert_eq!(sim.d.status, Status::Expired);
    assert_eq!(sim.d.closed_at, Some(s(60)));
    assert!(sim.d.answers.is_empty());
}

#[test]
fn on_timeout_reject_or_approve_records_the_policy_answer() {
    let cases = [
        (OnTimeout::Reject, Verdict::Reject, Status::Rejected),
        (OnTimeout::Approve, Verdict::Approve, Status::Approved),
    ];
    for (on_timeout, verdict, status) in cases {
        let mut sim = timing_out(on_timeout);
        let decided = sim.ok(Action::Expire, s(61));
        assert_eq!(types(&decided), ["ANSWERED", status.as_str()]);
        assert_eq!(sim.d.status, status);
        let a = &sim.d.answers[0];
        assert_eq!((a.operator.as_str(), a.verdict), ("witness", verdict));
        assert_eq!(a.answer, json!({"auto": true}));
        assert!(!a.rationale.is_empty());
    }
}

// ---- FireFallback ----

fn paging() -> Sim {
    let pol = Policy {
        ack_window_us: 30 * SEC,
        fallback: vec!["pager".into(), "sms".into()],
        ..Policy::default()
    };
    Sim::start(ask(1, false), pol)
}

#[test]
fn the_fallback_fires_once_when_due() {
    let mut sim = paging();
    assert!(sim.ok(Action::FireFallback, s(30) - 1).events.is_empty());
    let fired = sim.ok(Action::FireFallback, s(30));
    let webhooks = vec!["pager".to_string(), "sms".to_string()];
    assert_eq!(fired.events, [EventKind::FallbackFired { webhooks }]);
    assert!(sim.d.fallback_fired);
    assert!(sim.ok(Action::FireFallback, s(90)).events.is_empty());
}

#[test]
fn the_fallback_does_not_fire_after_an_ack() {
    let mut sim = paging();
    sim.ok(ack(op("alice")), s(1));
    assert!(sim.ok(Action::FireFallback, s(90)).events.is_empty());
    assert!(!sim.d.fallback_fired);
}

// ---- terminal statuses ----

#[test]
fn nothing_leaves_a_terminal_status() {
    let closers = [
        (Status::Approved, approve("alice")),
        (Status::Rejected, reject("alice")),
        (Status::Cancelled, cancel(asker())),
        (Status::Expired, Action::Expire),
        (Status::ContextChanged, report(other_ctx())),
    ];
    let pol = Policy {
        timeout_us: Some(60 * SEC),
        fallback: vec!["pager".into()],
        ..Policy::default()
    };
    for (status, closer) in closers {
        let mut sim = Sim::start(ask(1, true), pol.clone());
        sim.ok(closer, s(60));
        assert_eq!(sim.d.status, status);
        let closed = sim.d.clone();
        let actions = [
            approve("carol"),
            reject("carol"),
            answer(op("carol"), Verdict::Approve, Some(other_ctx())),
            ack(op("carol")),
            cancel(asker()),
            cancel(op("carol")),
            report(ctx()),
            report(other_ctx()),
            Action::Expire,
            Action::FireFallback,
        ];
        for action in actions {
            if let Ok(decided) = sim.run(action.clone(), s(3600)) {
                let made = types(&decided);
                assert!(made.is_empty(), "{status:?}: {action:?} made {made:?}");
            }
            assert_eq!(sim.d, closed, "{status:?} changed by {action:?}");
        }
    }
}
