//! The decision state machine. `create` and `decide` turn a command, the
//! current state and the time into events (or a refusal with a reason);
//! `apply` folds an event into the state. Replaying the log through `apply`
//! rebuilds every decision exactly.

use super::model::*;
use super::schema::validate_answer;
use super::{cut, Refusal, Result};
use serde_json::Value;

#[path = "machine_answer.rs"]
mod answer;
use answer::{confirmation_matters, decide_answer, AnswerArgs};

/// Who is acting: the operator the action counts for, with that operator's
/// roles, and the principal that sent it when different (`on_behalf_of`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub roles: Vec<String>,
    pub submitted_by: Option<String>,
    /// The `[[issuers]]` entry that vouched for `name` (None: a token).
    pub issuer: Option<String>,
}

impl Actor {
    pub fn new(name: impl Into<String>, roles: Vec<String>) -> Self {
        Actor {
            name: name.into(),
            roles,
            submitted_by: None,
            issuer: None,
        }
    }

    /// True when the actor (or the principal sending for it) asked `d`.
    fn is_asker(&self, d: &Decision) -> bool {
        self.name == d.asked_by || self.submitted_by.as_deref() == Some(d.asked_by.as_str())
    }

    /// Whether the actor may see `d` at all (DESIGN §2): its asker, or a
    /// holder of one of its authorized roles. Everyone else is told the
    /// decision does not exist, exactly as for a missing id.
    fn check_sees(&self, d: &Decision) -> Result<()> {
        if self.is_asker(d) || d.visible_to(&self.name, &self.roles) {
            Ok(())
        } else {
            Err(Refusal::not_found(&d.id))
        }
    }
}

/// A validated Ask, ready to become a CREATED event.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDecision {
    pub id: String,
    pub kind: String,
    pub input: Value,
    pub response_schema: Option<Value>,
    pub authorized_roles: Vec<String>,
    pub surfaces: Vec<String>,
    /// 0 means the policy's.
    pub required_approvals: u32,
    pub context_hash: Option<String>,
    /// Requested time to live; capped by the policy's.
    pub timeout_us: Option<i64>,
    pub asked_by: String,
}

/// A command on an existing decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Answer {
        actor: Actor,
        verdict: Verdict,
        answer: Value,
        rationale: String,
        /// Hash of the operator's `current_context`, when sent.
        current_context_hash: Option<String>,
        /// Every configured principal's current roles, to re-check earlier
        /// approvers when a quorum completes (None in dev mode).
        current_roles: Option<std::sync::Arc<std::collections::BTreeMap<String, Vec<String>>>>,
    },
    Ack {
        actor: Actor,
        surface: String,
    },
    Cancel {
        actor: Actor,
        reason: String,
    },
    ReportContext {
        actor: Actor,
        context_hash: String,
    },
    /// Timer: close the decision per `on_timeout` if it is due.
    Expire,
    /// Timer: page the fallbacks if nobody acknowledged in time, and every
    /// escalation level that has come due.
    FireFallback,
}

/// What a command did, for the caller's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    /// Answer recorded; more approvals needed.
    AwaitingApprovals,
    /// The command closed the decision, or was an accepted change.
    Closed,
    /// The context did not match: closed CONTEXT_CHANGED.
    ContextChanged,
    /// ReportContext matched and was recorded.
    ContextMatched,
    /// AckDelivery on an open decision.
    Accepted,
    /// AckDelivery on a closed decision, or a timer that was not due.
    NotAccepted,
    /// A creation or a cancellation.
    Done,
}

/// Events to append and the outcome to report.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub events: Vec<EventKind>,
    pub outcome: Outcome,
}

impl Decided {
    fn new(events: Vec<EventKind>, outcome: Outcome) -> Self {
        Decided { events, outcome }
    }
}

/// Turns a validated Ask and its effective policy into the CREATED event.
pub fn create(new: NewDecision, policy: Policy, now: Micros) -> Result<EventKind> {
    if new.required_approvals != 0 && new.required_approvals < policy.required_approvals {
        return Err(Refusal::invalid(format!(
            "required_approvals: the policy for kind {:?} requires at least {}, got {}",
            cut(&new.kind),
            policy.required_approvals,
            new.required_approvals
        )));
    }
    let required = new.required_approvals.max(policy.required_approvals).max(1);
    if required > 1 && new.context_hash.is_none() {
        return Err(Refusal::invalid(format!(
            "context_snapshot: required when required_approvals is {required} (2 or more)"
        )));
    }
    let timeout = match (new.timeout_us, policy.timeout_us) {
        (Some(asked), Some(max)) => Some(asked.min(max)),
        (asked, max) => asked.or(max),
    };
    let escalations = policy
        .escalation
        .iter()
        .zip(1u32..)
        .map(|(l, level)| Escalation {
            level,
            due_at: now.saturating_add(l.after_us),
            state: EscalationState::Pending,
            fired_at: None,
        })
        .collect();
    let decision = Decision {
        id: new.id,
        kind: new.kind,
        input: new.input,
        response_schema: new.response_schema,
        authorized_roles: new.authorized_roles,
        surfaces: new.surfaces,
        required_approvals: required,
        context_hash: new.context_hash,
        status: Status::Open,
        answers: Vec::new(),
        asked_by: new.asked_by,
        created_at: now,
        expires_at: timeout.map(|t| now.saturating_add(t)),
        delivered_at: None,
        delivered_via: None,
        closed_at: None,
        version: 0,
        last_sequence: 0,
        policy: Policy {
            required_approvals: required,
            timeout_us: timeout,
            ..policy
        },
        context_confirmed_at: None,
        context_confirmed_sequence: 0,
        close_reason: None,
        closed_by: None,
        fallback_fired: false,
        escalations,
        last_event_type: None,
        updated_at: now,
    };
    Ok(EventKind::Created {
        decision: Box::new(decision),
    })
}

/// Decides what `action` does to decision `d` at time `now`.
pub fn decide(d: &Decision, action: &Action, now: Micros) -> Result<Decided> {
    // Visibility first, for every caller's action: a stranger learns
    // nothing, not even that the decision exists.
    match action {
        Action::Answer { actor, .. }
        | Action::Ack { actor, .. }
        | Action::Cancel { actor, .. }
        | Action::ReportContext { actor, .. } => actor.check_sees(d)?,
        Action::Expire | Action::FireFallback => {}
    }
    match action {
        Action::Answer {
            actor,
            verdict,
            answer,
            rationale,
            current_context_hash,
            current_roles,
        } => {
            let args = AnswerArgs {
                actor,
                verdict: *verdict,
                answer,
                rationale,
                current_context: current_context_hash.as_deref(),
                current_roles: current_roles.as_deref(),
            };
            decide_answer(d, args, now)
        }
        Action::Ack { actor, surface } => {
            if surface.trim().is_empty() {
                return Err(Refusal::invalid("surface: must not be empty"));
            }
            Ok(match (d.status, &d.delivered_at) {
                (Status::Open, None) => Decided::new(
                    vec![EventKind::Delivered {
                        surface: surface.clone(),
                        by: actor.name.clone(),
                    }],
                    Outcome::Accepted,
                ),
                (Status::Open, Some(_)) => Decided::new(vec![], Outcome::Accepted),
                _ => Decided::new(vec![], Outcome::NotAccepted),
            })
        }
        Action::Cancel { actor, reason } => {
            if !actor.is_asker(d) && !d.holds_role(&actor.roles) {
                return Err(Refusal::denied(
                    "only the decision's asker or a holder of one of its authorized roles may cancel it",
                ));
            }
            require_open(d)?;
            Ok(Decided::new(
                vec![EventKind::Cancelled {
                    by: actor.name.clone(),
                    reason: reason.clone(),
                }],
                Outcome::Done,
            ))
        }
        Action::ReportContext {
            actor,
            context_hash,
        } => {
            if !actor.is_asker(d) {
                return Err(Refusal::denied(
                    "only the decision's asker may report its context",
                ));
            }
            require_open(d)?;
            let Some(expected) = &d.context_hash else {
                return Err(Refusal::precondition(format!(
                    "context_snapshot: decision {} was asked without a context_snapshot",
                    d.id
                )));
            };
            Ok(if expected != context_hash {
                Decided::new(
                    vec![EventKind::ContextChanged {
                        by: actor.name.clone(),
                        reported_hash: context_hash.clone(),
                    }],
                    Outcome::ContextChanged,
                )
            } else if confirmation_matters(d, now) {
                Decided::new(
                    vec![EventKind::ContextConfirmed {
                        by: actor.name.clone(),
                    }],
                    Outcome::ContextMatched,
                )
            } else {
                // Coalesced (DESIGN §2): it would change nothing an approval
                // may do, so it answers OK and writes nothing.
                Decided::new(vec![], Outcome::ContextMatched)
            })
        }
        Action::Expire => Ok(decide_expire(d, now)),
        Action::FireFallback => Ok(decide_ladder(d, now)),
    }
}

/// The ladder timer: the ack-window fallback if it is due, then every
/// escalation level that is due and still pending, in order (several after
/// a long outage). Levels whose `unless` holds were already marked skipped
/// by `apply`, so they are not here.
fn decide_ladder(d: &Decision, now: Micros) -> Decided {
    let mut events = Vec::new();
    if matches!(d.fallback_due_at(), Some(due) if now >= due) {
        events.push(EventKind::FallbackFired {
            webhooks: d.policy.fallback.clone(),
        });
    }
    if d.status == Status::Open {
        for e in &d.escalations {
            let level = (e.level as usize)
                .checked_sub(1)
                .and_then(|i| d.policy.escalation.get(i));
            if let (EscalationState::Pending, true, Some(level_policy)) =
                (e.state, now >= e.due_at, level)
            {
                events.push(EventKind::Escalated {
                    level: e.level,
                    webhooks: level_policy.webhooks.clone(),
                });
            }
        }
    }
    if events.is_empty() {
        return Decided::new(events, Outcome::NotAccepted);
    }
    Decided::new(events, Outcome::Done)
}

pub(super) fn require_open(d: &Decision) -> Result<()> {
    if d.status.is_terminal() {
        return Err(Refusal::precondition(format!(
            "decision {} is already closed ({})",
            d.id,
            d.status.as_str()
        )));
    }
    Ok(())
}

fn decide_expire(d: &Decision, now: Micros) -> Decided {
    let due = matches!(d.expires_at, Some(at) if now >= at);
    if d.status.is_terminal() || !due {
        return Decided::new(vec![], Outcome::NotAccepted);
    }
    let timed_out = |verdict, closing| {
        let answer = Answer {
            verdict,
            answer: d.policy.timeout_answer.clone(),
            rationale: format!(
                "timed out: policy on_timeout = {}",
                d.policy.on_timeout.as_str()
            ),
            operator: "witness".to_string(),
            submitted_by: None,
            issuer: None,
            answered_at: now,
            sequence: 0,
        };
        vec![EventKind::Answered { answer }, closing]
    };
    let events = match d.policy.on_timeout {
        OnTimeout::Expire => vec![EventKind::Expired],
        OnTimeout::Approve => timed_out(Verdict::Approve, EventKind::Approved),
        OnTimeout::Reject => timed_out(Verdict::Reject, EventKind::Rejected),
    };
    Decided::new(events, Outcome::Closed)
}

/// Why an event cannot be applied: the log is inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {sequence}: {reason}")]
pub struct ApplyError {
    pub sequence: u64,
    pub reason: String,
}

/// Folds `event` into the decision's state (`None` before CREATED).
pub fn apply(state: Option<Decision>, event: &Event) -> Result<Decision, ApplyError> {
    let fail = |reason: &str| ApplyError {
        sequence: event.sequence,
        reason: reason.into(),
    };
    let mut d = match (&event.kind, state) {
        (EventKind::Created { decision }, None) => (**decision).clone(),
        (EventKind::Created { .. }, Some(_)) => {
            return Err(fail("CREATED for an existing decision"))
        }
        (_, None) => return Err(fail("event for a decision that was never created")),
        (_, Some(d)) => d,
    };
    if d.id != event.decision_id {
        return Err(fail("event names another decision"));
    }
    let close = |d: &mut Decision, status: Status| {
        d.status = status;
        d.closed_at = Some(event.at);
    };
    match &event.kind {
        EventKind::Created { .. } => {}
        EventKind::Delivered { surface, .. } => {
            d.delivered_at = Some(event.at);
            d.delivered_via = Some(surface.clone());
        }
        EventKind::Answered { answer } => {
            d.answers.push(Answer {
                sequence: event.sequence,
                ..answer.clone()
            });
        }
        EventKind::Approved => close(&mut d, Status::Approved),
        EventKind::Rejected => close(&mut d, Status::Rejected),
        EventKind::Cancelled { by, reason } => {
            close(&mut d, Status::Cancelled);
            d.closed_by = Some(by.clone());
            d.close_reason = (!reason.is_empty()).then(|| reason.clone());
        }
        EventKind::ContextConfirmed { .. } => {
            d.context_confirmed_at = Some(event.at);
            d.context_confirmed_sequence = event.sequence;
        }
        EventKind::ContextChanged { by, reported_hash } => {
            close(&mut d, Status::ContextChanged);
            d.closed_by = Some(by.clone());
            d.close_reason = Some(format!("context hash changed to {reported_hash}"));
        }
        EventKind::FallbackFired { .. } => d.fallback_fired = true,
        EventKind::Expired => close(&mut d, Status::Expired),
        EventKind::Escalated { level, .. } => {
            let Some(e) = d.escalations.iter_mut().find(|e| e.level == *level) else {
                return Err(fail("ESCALATED names a level the decision does not have"));
            };
            e.state = EscalationState::Fired;
            e.fired_at = Some(event.at);
        }
    }
    // A pending level stands down for good once its `unless` holds (both
    // conditions are permanent) or the decision closes.
    let closed = d.status.is_terminal();
    let stand_down: Vec<bool> = d
        .escalations
        .iter()
        .map(|e| {
            let unless = (e.level as usize)
                .checked_sub(1)
                .and_then(|i| d.policy.escalation.get(i))
                .map_or(Unless::None, |l| l.unless);
            e.state == EscalationState::Pending && (closed || unless.holds(&d))
        })
        .collect();
    for (e, skip) in d.escalations.iter_mut().zip(stand_down) {
        if skip {
            e.state = EscalationState::Skipped;
        }
    }
    d.version += 1;
    d.last_sequence = event.sequence;
    d.last_event_type = Some(event.kind.event_type());
    d.updated_at = event.at;
    Ok(d)
}

#[cfg(test)]
#[path = "machine_tests/mod.rs"]
mod tests;
