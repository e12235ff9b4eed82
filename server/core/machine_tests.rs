//! Scenario tests for the decision state machine: every rule of DESIGN.md §1
//! and its refusal, driven only through `create`, `decide` and `apply`.

use super::*;
use crate::core::canonical::context_hash;
use crate::core::RefusalKind;
use serde_json::json;

const ID: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
const T0: Micros = 1_700_000_000_000_000;
const SEC: Micros = 1_000_000;
/// Sequences start high so that `version` and `last_sequence` differ.
const FIRST_SEQ: u64 = 100;
const FAILED: RefusalKind = RefusalKind::FailedPrecondition;
const DENIED: RefusalKind = RefusalKind::PermissionDenied;
const INVALID: RefusalKind = RefusalKind::InvalidArgument;

/// `n` seconds after creation.
fn s(n: i64) -> Micros {
    T0 + n * SEC
}

fn ctx() -> String {
    context_hash(&json!({"cluster": "eu-1", "replicas": 3}))
}

fn other_ctx() -> String {
    context_hash(&json!({"cluster": "eu-1", "replicas": 4}))
}

fn ask(required_approvals: u32, with_context: bool) -> NewDecision {
    NewDecision {
        id: ID.into(),
        kind: "deploy.prod".into(),
        input: json!({"service": "api"}),
        response_schema: None,
        authorized_roles: vec!["sre".into()],
        surfaces: vec!["console".into()],
        required_approvals,
        context_hash: with_context.then(ctx),
        timeout_us: None,
        asked_by: "bot".into(),
    }
}

fn policy(required_approvals: u32) -> Policy {
    policy_with(|p| p.required_approvals = required_approvals)
}

fn policy_with(edit: impl FnOnce(&mut Policy)) -> Policy {
    let mut policy = Policy::default();
    edit(&mut policy);
    policy
}

fn asker() -> Actor {
    Actor::new("bot", vec![])
}

fn op(name: &str) -> Actor {
    Actor::new(name, vec!["sre".into()])
}

fn stranger() -> Actor {
    Actor::new("dave", vec!["dba".into()])
}

fn answer(actor: Actor, verdict: Verdict, current_context_hash: Option<String>) -> Action {
    Action::Answer {
        actor,
        verdict,
        answer: json!({"ok": true}),
        rationale: "checked the dashboards".into(),
        current_context_hash,
    }
}

/// alice approves with `answer` and `rationale`.
fn approve_with(answer: Value, rationale: &str) -> Action {
    Action::Answer {
        actor: op("alice"),
        verdict: Verdict::Approve,
        answer,
        rationale: rationale.into(),
        current_context_hash: None,
    }
}

fn approve(name: &str) -> Action {
    answer(op(name), Verdict::Approve, None)
}

fn reject(name: &str) -> Action {
    answer(op(name), Verdict::Reject, None)
}

fn report(hash: String) -> Action {
    report_by(asker(), hash)
}

fn report_by(actor: Actor, context_hash: String) -> Action {
    Action::ReportContext {
        actor,
        context_hash,
    }
}

fn ack(actor: Actor) -> Action {
    ack_via(actor, "console")
}

fn ack_via(actor: Actor, surface: &str) -> Action {
    let surface = surface.into();
    Action::Ack { actor, surface }
}

fn cancel(actor: Actor) -> Action {
    Action::Cancel {
        actor,
        reason: "no longer needed".into(),
    }
}

fn event(sequence: u64, kind: EventKind) -> Event {
    let decision_id = ID.into();
    Event {
        sequence,
        decision_id,
        at: T0,
        kind,
    }
}

/// Asserts the events (by type) and the outcome of a command.
#[track_caller]
fn expect(decided: &Decided, events: &[&str], outcome: Outcome) {
    assert_eq!(types(decided), events);
    assert_eq!(decided.outcome, outcome);
}

fn types(decided: &Decided) -> Vec<&'static str> {
    decided.events.iter().map(EventKind::type_name).collect()
}

#[track_caller]
fn assert_refused<T: std::fmt::Debug>(res: Result<T>, kind: RefusalKind, needle: &str) {
    let err = res.unwrap_err();
    assert_eq!(err.kind, kind, "wrong kind for {:?}", err.message);
    let message = &err.message;
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
}

/// One decision and its log: `run` decides, then applies the events with
/// the next sequences, so tests read as scenarios.
struct Sim {
    d: Decision,
    log: Vec<Event>,
}

impl Sim {
    fn start(new: NewDecision, policy: Policy) -> Sim {
        let event = event(FIRST_SEQ, create(new, policy, T0).unwrap());
        let d = apply(None, &event).unwrap();
        let log = vec![event];
        Sim { d, log }
    }

    fn run(&mut self, action: Action, at: Micros) -> Result<Decided> {
        let decided = decide(&self.d, &action, at)?;
        for kind in &decided.events {
            let sequence = self.log.last().unwrap().sequence + 1;
            let event = Event {
                at,
                ..event(sequence, kind.clone())
            };
            self.d = apply(Some(self.d.clone()), &event).unwrap();
            self.log.push(event);
        }
        Ok(decided)
    }

    #[track_caller]
    fn ok(&mut self, action: Action, at: Micros) -> Decided {
        self.run(action, at).unwrap()
    }

    /// A refused command must leave the state untouched.
    #[track_caller]
    fn refuse(&mut self, action: Action, at: Micros, kind: RefusalKind, needle: &str) {
        let before = self.d.clone();
        assert_refused(self.run(action, at), kind, needle);
        assert_eq!(self.d, before);
    }
}

fn created(new: NewDecision, policy: Policy) -> Decision {
    Sim::start(new, policy).d
}

// ---- create ----

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
    let action = answer(stranger(), Verdict::Approve, None);
    sim.refuse(action, T0, DENIED, "authorized roles");
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
    sim.ok(cancel(asker()), s(1));
    sim.refuse(report(ctx()), s(2), FAILED, "closed");
}

// ---- Ack ----

#[test]
fn ack_needs_a_principal_who_sees_the_decision() {
    let mut sim = Sim::start(ask(1, false), Policy::default());
    sim.refuse(ack(stranger()), T0, DENIED, "dave");
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
    sim.refuse(cancel(stranger()), T0, DENIED, "cancel");
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
