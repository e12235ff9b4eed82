//! Per-decision invariants over its events in the log: created once, one
//! terminal event and nothing after it, quorum and veto, no duplicated
//! delivery or timer events, and every due timer fired.

use super::{duration_us, is_terminal, micros, name, new_answer, Final, LogEvent, Report};
use std::collections::HashSet;
use witness::proto::{self, EventType as Et};

/// Per decision: created once, at most one terminal event and nothing
/// after it, quorum and veto rules, and every timer fired exactly once.
pub(super) fn check_decision(evs: &[&LogEvent], fin: &Final, r: &mut Report) {
    let id = &evs[0].decision.id;
    if evs[0].etype != Et::Created as i32 {
        r.violations.push(format!(
            "decision {id}: first event is {}",
            name(evs[0].etype)
        ));
    }
    let created = &evs[0].decision;
    let mut closed_at: Option<usize> = None;
    let mut operators = HashSet::new();
    let mut approvals = 0u32;
    let mut version = 0u64;
    let (mut fallbacks, mut escalated, mut delivered) = (0, 0, 0);
    for (i, e) in evs.iter().enumerate() {
        let t = e.etype;
        if i > 0 && t == Et::Created as i32 {
            r.duplicated.push(format!(
                "decision {id}: CREATED twice (sequence {})",
                e.sequence
            ));
        }
        if let Some(c) = closed_at {
            r.violations.push(format!(
                "decision {id}: {} at sequence {} after it closed with {} at sequence {}",
                name(t),
                e.sequence,
                name(evs[c].etype),
                evs[c].sequence
            ));
        }
        if e.decision.version <= version {
            r.violations.push(format!(
                "decision {id}: version {} at sequence {} does not increase",
                e.decision.version, e.sequence
            ));
        }
        version = e.decision.version;
        if t == Et::Answered as i32 {
            if let Some(a) = new_answer(e) {
                if !operators.insert(a.operator.clone()) {
                    r.violations.push(format!(
                        "decision {id}: operator {} answered twice",
                        a.operator
                    ));
                }
                if a.verdict == proto::Verdict::Approve as i32 {
                    approvals += 1;
                    if approvals > created.required_approvals {
                        r.violations.push(format!(
                            "decision {id}: approval {approvals} of {} recorded (the quorum should have closed it)",
                            created.required_approvals
                        ));
                    }
                }
            }
        }
        if t == Et::Approved as i32 && approvals < created.required_approvals {
            r.violations.push(format!(
                "decision {id}: APPROVED with {approvals} of {} approvals",
                created.required_approvals
            ));
        }
        if t == Et::Rejected as i32 {
            let prev = i.checked_sub(1).map(|p| evs[p]);
            let vetoed = prev.is_some_and(|p| {
                p.etype == Et::Answered as i32
                    && new_answer(p).is_some_and(|a| a.verdict == proto::Verdict::Reject as i32)
            });
            if !vetoed {
                r.violations.push(format!(
                    "decision {id}: REJECTED without a reject answer before it"
                ));
            }
        }
        if t == Et::Delivered as i32 {
            delivered += 1;
        }
        if t == Et::FallbackFired as i32 {
            fallbacks += 1;
            let due = micros(&created.created_at).unwrap_or(0)
                + duration_us(&created.policy.as_ref().and_then(|p| p.ack_window));
            if e.at_us < due {
                r.violations.push(format!(
                    "decision {id}: FALLBACK_FIRED before the ack window ended"
                ));
            }
        }
        if t == Et::Escalated as i32 {
            escalated += 1;
        }
        if t == Et::Expired as i32 && e.at_us < micros(&created.expires_at).unwrap_or(i64::MAX) {
            r.violations
                .push(format!("decision {id}: EXPIRED before expires_at"));
        }
        if is_terminal(t) && closed_at.is_none() {
            closed_at = Some(i);
        }
    }
    if delivered > 1 {
        r.duplicated
            .push(format!("decision {id}: DELIVERED {delivered} times"));
    }
    if fallbacks > 1 {
        r.duplicated
            .push(format!("decision {id}: FALLBACK_FIRED {fallbacks} times"));
    }
    if escalated > created.escalations.len() {
        r.duplicated.push(format!(
            "decision {id}: {escalated} ESCALATED events for {} levels",
            created.escalations.len()
        ));
    }
    check_timers(evs, closed_at, fallbacks, fin, r);
}

/// A due timer that did not fire: the decision stayed open (and, for the
/// ladder, unacknowledged or unanswered) well past the due time.
pub(super) fn check_timers(
    evs: &[&LogEvent],
    closed_at: Option<usize>,
    fallbacks: usize,
    fin: &Final,
    r: &mut Report,
) {
    let created = &evs[0].decision;
    let id = &created.id;
    let first_at = |pred: &dyn Fn(i32) -> bool| {
        evs.iter()
            .find(|e| pred(e.etype))
            .map_or(fin.end_us, |e| e.at_us)
    };
    let late = |stop: i64, due: i64| stop > due.saturating_add(fin.grace_us);
    if let Some(exp) = micros(&created.expires_at) {
        if closed_at.is_none() && late(fin.end_us, exp) {
            r.lost.push(format!(
                "decision {id}: expiry timer never fired (still open)"
            ));
        }
    }
    let policy = created.policy.clone().unwrap_or_default();
    let created_at = micros(&created.created_at).unwrap_or(0);
    if !policy.fallback.is_empty() && fallbacks == 0 {
        let due = created_at + duration_us(&policy.ack_window);
        let stop = first_at(&|t| t == Et::Delivered as i32 || is_terminal(t));
        if late(stop, due) {
            r.lost.push(format!(
                "decision {id}: ack-window fallback never fired (unacknowledged and open past its due time)"
            ));
        }
    }
    let fired: HashSet<u32> = evs
        .last()
        .map(|e| {
            e.decision
                .escalations
                .iter()
                .filter(|l| l.state == proto::EscalationState::Fired as i32)
                .map(|l| l.level)
                .collect()
        })
        .unwrap_or_default();
    for level in &created.escalations {
        if fired.contains(&level.level) {
            continue;
        }
        let due = micros(&level.due_at).unwrap_or(i64::MAX);
        let stop = match level.unless.as_str() {
            "acked" => first_at(&|t| t == Et::Delivered as i32 || is_terminal(t)),
            "answered" => first_at(&|t| t == Et::Answered as i32 || is_terminal(t)),
            _ => first_at(&is_terminal),
        };
        if late(stop, due) {
            r.lost.push(format!(
                "decision {id}: escalation level {} never fired",
                level.level
            ));
        }
    }
}
