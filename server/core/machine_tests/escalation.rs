//! Escalation chains: levels fire once when due, stand down for good when
//! their `unless` holds or the decision closes, and replay identically.

use super::*;
use crate::core::notify::notifications;

fn chain() -> Policy {
    policy_with(|p| {
        p.ack_window_us = 30 * SEC;
        p.fallback = vec!["pager".into()];
        p.escalation = vec![
            EscalationLevel {
                after_us: 60 * SEC,
                webhooks: vec!["l1".into()],
                unless: Unless::Acked,
            },
            EscalationLevel {
                after_us: 120 * SEC,
                webhooks: vec!["l2".into(), "pager".into()],
                unless: Unless::Answered,
            },
        ];
        p.notify_outcome = vec!["slack".into()];
    })
}

fn states(d: &Decision) -> Vec<EscalationState> {
    d.escalations.iter().map(|e| e.state).collect()
}

const PENDING: EscalationState = EscalationState::Pending;
const FIRED: EscalationState = EscalationState::Fired;
const SKIPPED: EscalationState = EscalationState::Skipped;

#[test]
fn nobody_acks_fallback_then_level_1_then_level_2() {
    let mut sim = Sim::start(ask(1, false), chain());
    assert_eq!(states(&sim.d), [PENDING, PENDING]);
    assert_eq!(sim.d.ladder_due_at(), Some(s(30)));
    expect(
        &sim.ok(Action::FireFallback, s(30)),
        &["FALLBACK_FIRED"],
        Outcome::Done,
    );
    assert_eq!(sim.d.ladder_due_at(), Some(s(60)));
    expect(
        &sim.ok(Action::FireFallback, s(59)),
        &[],
        Outcome::NotAccepted,
    );
    let l1 = sim.ok(Action::FireFallback, s(61));
    let webhooks = vec!["l1".to_string()];
    assert_eq!(l1.events, [EventKind::Escalated { level: 1, webhooks }]);
    assert_eq!(states(&sim.d), [FIRED, PENDING]);
    assert_eq!(sim.d.escalations[0].fired_at, Some(s(61)));
    assert_eq!(sim.d.next_escalation_at(), Some(s(120)));
    expect(
        &sim.ok(Action::FireFallback, s(120)),
        &["ESCALATED"],
        Outcome::Done,
    );
    assert_eq!(states(&sim.d), [FIRED, FIRED]);
    assert_eq!(sim.d.ladder_due_at(), None);
    expect(
        &sim.ok(Action::FireFallback, s(500)),
        &[],
        Outcome::NotAccepted,
    );
    assert_eq!(sim.d.paged_webhooks(), ["pager", "l1", "l2"]);
}

#[test]
fn an_ack_skips_level_1_but_level_2_still_fires() {
    let mut sim = Sim::start(ask(1, false), chain());
    sim.ok(ack(op("alice")), s(10));
    assert_eq!(states(&sim.d), [SKIPPED, PENDING]);
    assert_eq!(sim.d.ladder_due_at(), Some(s(120)));
    expect(
        &sim.ok(Action::FireFallback, s(90)),
        &[],
        Outcome::NotAccepted,
    );
    expect(
        &sim.ok(Action::FireFallback, s(121)),
        &["ESCALATED"],
        Outcome::Done,
    );
    assert_eq!(states(&sim.d), [SKIPPED, FIRED]);
}

#[test]
fn an_answer_before_level_2_stands_it_down_forever() {
    let mut sim = Sim::start(ask(2, true), chain());
    sim.ok(Action::FireFallback, s(70));
    assert_eq!(states(&sim.d), [FIRED, PENDING]);
    sim.ok(approve("alice"), s(80));
    assert_eq!(sim.d.status, Status::Open);
    assert_eq!(states(&sim.d), [FIRED, SKIPPED]);
    assert_eq!(sim.d.next_escalation_at(), None);
    expect(
        &sim.ok(Action::FireFallback, s(999)),
        &[],
        Outcome::NotAccepted,
    );
}

#[test]
fn an_outage_fires_every_due_level_in_order_at_once() {
    let mut sim = Sim::start(ask(1, false), chain());
    let fired = sim.ok(Action::FireFallback, s(3600));
    assert_eq!(types(&fired), ["FALLBACK_FIRED", "ESCALATED", "ESCALATED"]);
}

#[test]
fn closing_skips_pending_levels_and_notifies_every_paged_webhook_once() {
    let mut sim = Sim::start(ask(1, false), chain());
    sim.ok(Action::FireFallback, s(61));
    let closed = sim.ok(approve("alice"), s(75));
    assert_eq!(states(&sim.d), [FIRED, SKIPPED]);
    let closing = sim.log.last().unwrap();
    assert_eq!(closing.kind, EventKind::Approved);
    let sent = notifications(closing, &sim.d);
    let hooks: Vec<&str> = sent.iter().map(|n| n.webhook.as_str()).collect();
    assert_eq!(hooks, ["slack", "pager", "l1"]);
    let body: Value = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!(body["outcome"]["status"], "APPROVED");
    assert_eq!(body["outcome"]["answers"][0]["operator"], "alice");
    assert_eq!(body["outcome"]["time_to_decision_ms"], 75_000);
    // The ANSWERED event before it tells nobody.
    let answered = &sim.log[sim.log.len() - 2];
    assert!(notifications(answered, &sim.d).is_empty());
    assert_eq!(types(&closed), ["ANSWERED", "APPROVED"]);
}

#[test]
fn expiry_and_context_changes_are_outcomes_too() {
    for (closer, status) in [
        (Action::Expire, "EXPIRED"),
        (report(other_ctx()), "CONTEXT_CHANGED"),
    ] {
        let pol = Policy {
            timeout_us: Some(45 * SEC),
            ..chain()
        };
        let mut sim = Sim::start(ask(1, true), pol);
        sim.ok(closer, s(50));
        let sent = notifications(sim.log.last().unwrap(), &sim.d);
        assert_eq!(sent.len(), 1, "{status}: only notify_outcome was paged");
        assert_eq!(sent[0].event_type, status);
    }
}

#[test]
fn replay_rebuilds_the_same_ladder() {
    let mut sim = Sim::start(ask(1, false), chain());
    sim.ok(Action::FireFallback, s(61));
    sim.ok(ack(op("alice")), s(70));
    sim.ok(Action::FireFallback, s(130));
    let mut state = None;
    for e in &sim.log {
        let text = e.canonical().unwrap();
        let back: Event = serde_json::from_str(&text).unwrap();
        state = Some(apply(state, &back).unwrap());
    }
    assert_eq!(state.unwrap(), sim.d);
}

#[test]
fn a_policy_without_a_chain_serialises_as_before() {
    let d = created(ask(1, false), policy(1));
    let text = serde_json::to_string(&d).unwrap();
    assert!(!text.contains("escalation"), "{text}");
    assert!(!text.contains("notify_outcome"), "{text}");
}
