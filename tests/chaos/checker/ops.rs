//! The client's history against the log: every acknowledged operation
//! happened exactly once, refused ones did not happen, and retries agree.

use super::{
    is_terminal, micros, new_answer, rid_of, Final, LogEvent, Op, Outcome, Record, Report,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use witness::proto::{self, EventType as Et, Status as St};

/// Every acknowledged operation is in the log exactly once; refused ones
/// are not; idempotent retries agree with the first result.
pub(super) fn check_ops(
    history: &[Record],
    fin: &Final,
    by_decision: &BTreeMap<String, Vec<&LogEvent>>,
    r: &mut Report,
) {
    let mut created: HashMap<String, Vec<String>> = HashMap::new();
    let mut answered: HashMap<String, Vec<&LogEvent>> = HashMap::new();
    for e in &fin.log {
        if e.etype == Et::Created as i32 {
            if let Some(rid) = rid_of(&e.decision) {
                created.entry(rid).or_default().push(e.decision.id.clone());
            }
        }
        if e.etype == Et::Answered as i32 {
            if let Some(a) = new_answer(e) {
                answered.entry(a.rationale.clone()).or_default().push(e);
            }
        }
    }
    for (rid, ids) in &created {
        if ids.len() > 1 {
            r.duplicated
                .push(format!("ask {rid}: {} decisions created", ids.len()));
        }
    }
    for (rid, evs) in &answered {
        if evs.len() > 1 {
            r.duplicated
                .push(format!("answer {rid}: recorded {} times", evs.len()));
        }
    }
    let final_state = |id: &str| {
        by_decision
            .get(id)
            .and_then(|e| e.last())
            .map(|e| &e.decision)
    };
    let terminal = |id: &str| {
        by_decision
            .get(id)
            .and_then(|evs| evs.iter().find(|e| is_terminal(e.etype)).copied())
    };
    let rewound = rewound_ops(history, fin, r);
    let mut lost = HashSet::new();
    let mut ask_ids: HashMap<&str, &str> = HashMap::new();
    let mut answer_outcomes: HashMap<&str, i32> = HashMap::new();
    for rec in history {
        match &rec.outcome {
            Outcome::Unknown(why) => {
                r.unknown += 1;
                let code = why.split(':').next().unwrap_or_default().to_string();
                *r.unknown_codes.entry(code).or_default() += 1;
            }
            Outcome::Ok { .. } => r.acknowledged += 1,
            Outcome::Fail(_) => {}
        }
        if rewound.contains(&op_key(&rec.op)) {
            // Lost with the old primary's unreplicated tail: reported once
            // by rewound_ops; its retries may well have applied it again.
            continue;
        }
        match (&rec.op, &rec.outcome) {
            (Op::Ask { rid }, Outcome::Ok { decision, .. }) => {
                match created.get(rid) {
                    None => {
                        if lost.insert(rid.clone()) {
                            r.lost.push(format!(
                                "ask {rid}: acknowledged (decision {}) but not in the log",
                                decision.id
                            ));
                        }
                    }
                    Some(ids) if !ids.contains(&decision.id) => r.violations.push(format!(
                        "ask {rid}: answered with decision {} but the log created {ids:?}",
                        decision.id
                    )),
                    Some(_) => {}
                }
                if let Some(prev) = ask_ids.insert(rid, &decision.id) {
                    if prev != decision.id {
                        r.violations.push(format!(
                            "ask {rid}: retries answered with decisions {prev} and {}",
                            decision.id
                        ));
                    }
                }
            }
            (Op::Ask { rid }, Outcome::Fail(why)) if created.contains_key(rid) => {
                r.violations.push(format!(
                    "ask {rid}: refused ({why}) yet its decision is in the log"
                ));
            }
            (Op::Answer { rid, decision_id }, Outcome::Ok { answer_outcome, .. }) => {
                if let Some(prev) = answer_outcomes.insert(rid, *answer_outcome) {
                    if prev != *answer_outcome {
                        r.violations.push(format!(
                            "answer {rid}: retries answered outcomes {prev} and {answer_outcome}"
                        ));
                    }
                }
                let recorded = answered.get(rid);
                if *answer_outcome == proto::AnswerOutcome::ContextChanged as i32 {
                    let closed =
                        terminal(decision_id).is_some_and(|e| e.etype == Et::ContextChanged as i32);
                    if !closed && lost.insert(rid.clone()) {
                        r.lost.push(format!(
                            "answer {rid}: acknowledged CONTEXT_CHANGED but decision {decision_id} did not close so"
                        ));
                    }
                    if recorded.is_some() {
                        r.violations.push(format!(
                            "answer {rid}: answered CONTEXT_CHANGED yet recorded as an answer"
                        ));
                    }
                    continue;
                }
                let Some(ev) = recorded.and_then(|v| v.first()) else {
                    if lost.insert(rid.clone()) {
                        r.lost.push(format!(
                            "answer {rid}: acknowledged on decision {decision_id} but not in the log"
                        ));
                    }
                    continue;
                };
                if &ev.decision.id != decision_id {
                    r.violations.push(format!(
                        "answer {rid}: sent to {decision_id}, recorded on {}",
                        ev.decision.id
                    ));
                }
                if *answer_outcome == proto::AnswerOutcome::Closed as i32 {
                    let closes = terminal(decision_id).is_some_and(|t| {
                        t.sequence == ev.sequence + 1
                            && (t.etype == Et::Approved as i32 || t.etype == Et::Rejected as i32)
                    });
                    if !closes {
                        r.violations.push(format!(
                            "answer {rid}: acknowledged as closing {decision_id} but the next event is not its APPROVED/REJECTED"
                        ));
                    }
                }
            }
            (Op::Answer { rid, .. }, Outcome::Fail(why)) if answered.contains_key(rid) => {
                r.violations.push(format!(
                    "answer {rid}: refused ({why}) yet recorded in the log"
                ));
            }
            (
                Op::Cancel {
                    decision_id,
                    reason,
                },
                Outcome::Ok { .. },
            ) => {
                let done = terminal(decision_id).is_some_and(|t| {
                    t.etype == Et::Cancelled as i32 && &t.decision.close_reason == reason
                });
                if !done && lost.insert(reason.clone()) {
                    r.lost.push(format!(
                        "cancel {reason}: acknowledged but decision {decision_id} was not cancelled by it"
                    ));
                }
            }
            (Op::Ack { decision_id }, Outcome::Ok { flag: true, .. }) => {
                let seen = by_decision
                    .get(decision_id)
                    .is_some_and(|evs| evs.iter().any(|e| e.etype == Et::Delivered as i32));
                if !seen && lost.insert(format!("ack {decision_id}")) {
                    r.lost.push(format!(
                        "ack on {decision_id}: accepted but no DELIVERED event"
                    ));
                }
            }
            (
                Op::Report {
                    decision_id,
                    changed,
                },
                Outcome::Ok { flag, .. },
            ) => {
                if *flag == *changed {
                    r.violations.push(format!(
                        "report-context on {decision_id}: changed={changed} answered matched={flag}"
                    ));
                }
                if *changed {
                    let voided = final_state(decision_id)
                        .is_some_and(|d| d.status == St::ContextChanged as i32);
                    if !voided && lost.insert(format!("report {decision_id}")) {
                        r.lost.push(format!(
                            "report-context on {decision_id}: acknowledged a changed context but the decision is not CONTEXT_CHANGED"
                        ));
                    }
                }
            }
            _ => {}
        }
    }
}

/// What identifies an operation across its retries.
fn op_key(op: &Op) -> String {
    match op {
        Op::Ask { rid } | Op::Answer { rid, .. } => rid.clone(),
        Op::Cancel { reason, .. } => reason.clone(),
        Op::Ack { decision_id } => format!("ack {decision_id}"),
        Op::Report { decision_id, .. } => format!("report {decision_id}"),
    }
}

/// When the server stamped the event an acknowledged operation wrote (its
/// clock is the checker's: one machine); the ack's arrival if unknown.
/// The event was committed right after, so before the kill that followed.
fn event_us(op: &Op, d: &proto::Decision, at_us: i64) -> i64 {
    match op {
        Op::Ask { .. } => micros(&d.created_at),
        Op::Answer { rid, .. } => d
            .answers
            .iter()
            .find(|a| &a.rationale == rid)
            .and_then(|a| micros(&a.answered_at))
            .or_else(|| micros(&d.closed_at)),
        Op::Cancel { .. } => micros(&d.closed_at),
        Op::Ack { .. } => micros(&d.delivered_at),
        Op::Report { .. } => micros(&d.closed_at).or_else(|| micros(&d.context_confirmed_at)),
    }
    .unwrap_or(at_us)
}

/// Asynchronous replication only: the acknowledged operations whose
/// acknowledged state (decision and version at the sequence acknowledged)
/// is not in the final log, and which were past the standby's head at the
/// failover that followed their event. They are reported in
/// `lost_at_failover` (an expected loss, not a failure); anything else
/// missing stays for `check_ops`, as a loss.
fn rewound_ops(history: &[Record], fin: &Final, r: &mut Report) -> HashSet<String> {
    let mut out = HashSet::new();
    if !fin.loss_allowed {
        return out;
    }
    let at: HashMap<u64, (&str, u64)> = fin
        .log
        .iter()
        .map(|e| (e.sequence, (e.decision.id.as_str(), e.decision.version)))
        .collect();
    for rec in history {
        let Outcome::Ok { decision, .. } = &rec.outcome else {
            continue;
        };
        let s = decision.last_sequence;
        let present = at.get(&s) == Some(&(decision.id.as_str(), decision.version));
        if present || !fin.lost_at_failover(event_us(&rec.op, decision, rec.at_us), s) {
            continue;
        }
        let key = op_key(&rec.op);
        if out.insert(key.clone()) {
            r.lost_at_failover.push(format!(
                "{key}: acknowledged at sequence {s} on decision {}, which the standby had not received",
                decision.id
            ));
        }
    }
    out
}
