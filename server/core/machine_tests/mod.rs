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
const NOT_FOUND: RefusalKind = RefusalKind::NotFound;

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
        current_roles: None,
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
        current_roles: None,
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
/// Asserts the refusal's kind and a part of its message; returns the message.
fn assert_refused<T: std::fmt::Debug>(res: Result<T>, kind: RefusalKind, needle: &str) -> String {
    let err = res.unwrap_err();
    assert_eq!(err.kind, kind, "wrong kind for {:?}", err.message);
    let message = err.message;
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    message
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
    fn refuse(&mut self, action: Action, at: Micros, kind: RefusalKind, needle: &str) -> String {
        let before = self.d.clone();
        let message = assert_refused(self.run(action, at), kind, needle);
        assert_eq!(self.d, before);
        message
    }
}

fn created(new: NewDecision, policy: Policy) -> Decision {
    Sim::start(new, policy).d
}

// ---- create ----

mod create_and_answer;
mod escalation;
mod other_actions;
