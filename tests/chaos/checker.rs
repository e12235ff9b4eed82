//! The chaos checker (Jepsen-style): from the client's own history of
//! operations, what every stream subscriber saw, and the final log read
//! back through the API, decides whether witness kept its promises. Pure:
//! no I/O, so it is tested on fabricated histories below.

use std::collections::{BTreeMap, HashMap, HashSet};
use witness::proto::{self, EventType as Et, Status as St};

/// One operation a client sent.
#[derive(Debug, Clone)]
pub enum Op {
    /// An Ask whose input carries `{"rid": rid}`, so its decision can be
    /// found in the log even when the client never learnt the id.
    Ask {
        rid: String,
    },
    /// An Answer whose rationale is its request id.
    Answer {
        rid: String,
        decision_id: String,
    },
    /// A Cancel whose reason is unique.
    Cancel {
        decision_id: String,
        reason: String,
    },
    Ack {
        decision_id: String,
    },
    /// ReportContext with the asked snapshot (`changed` false) or another.
    Report {
        decision_id: String,
        changed: bool,
    },
}

/// How an operation ended, as the client saw it.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Acknowledged. `flag`: Ask `created`, Ack `accepted`, Report `matched`.
    Ok {
        decision: Box<proto::Decision>,
        answer_outcome: i32,
        flag: bool,
    },
    /// Refused with a definite code: it did not happen.
    Fail(String),
    /// The connection died or timed out mid-call: it may have happened.
    Unknown(String),
}

#[derive(Debug, Clone)]
pub struct Record {
    pub op: Op,
    pub outcome: Outcome,
}

/// One event of the final log, read back with StreamDecisions from 0.
#[derive(Debug, Clone)]
pub struct LogEvent {
    pub sequence: u64,
    pub etype: i32,
    pub decision: proto::Decision,
    pub at_us: i64,
}

/// What one resuming stream subscriber received (snapshot events left out).
#[derive(Debug, Clone, Default)]
pub struct Subscription {
    pub name: String,
    /// `kinds` filter: an exact kind or `prefix*`; None for every kind.
    pub kind_glob: Option<String>,
    /// The position its first stream started after (0, or a snapshot's end).
    pub start_after: u64,
    /// (sequence, event type, decision id) in arrival order, across resumes.
    pub seen: Vec<(u64, i32, String)>,
    pub resumes: u32,
    /// Each stream opened: replica, after_sequence asked, first event got.
    pub trace: Vec<String>,
}

/// What `witness audit verify` said.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    pub ok: bool,
    pub events: u64,
    pub text: String,
    /// Some(equal) when the binary reports state hashes.
    pub state_hash_equal: Option<bool>,
}

/// Everything read back at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct Final {
    pub log: Vec<LogEvent>,
    /// ListDecisions, every page.
    pub listed: Vec<proto::Decision>,
    pub audit: Audit,
    /// When the run ended (timers due well before this must have fired).
    pub end_us: i64,
    /// How late a timer may fire (faults stall the store for seconds).
    pub grace_us: i64,
}

/// The verdict.
#[derive(Debug, Default)]
pub struct Report {
    pub ops: usize,
    pub acknowledged: usize,
    pub unknown: usize,
    /// Why outcomes were unknown: status code -> count.
    pub unknown_codes: BTreeMap<String, usize>,
    pub lost: Vec<String>,
    pub duplicated: Vec<String>,
    pub violations: Vec<String>,
    pub state_hash_equal: Option<bool>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.violations.is_empty()
            && self.state_hash_equal != Some(false)
    }

    /// The summary line (the last line `make chaos` prints).
    pub fn line(&self) -> String {
        let hash = match self.state_hash_equal {
            Some(true) => "state hash equal",
            Some(false) => "state hash DIFFERENT",
            None => "state hash not reported by this binary (audit verify passed)",
        };
        format!(
            "chaos: {} ops ({} acknowledged), {} lost, {} duplicated, {} invariant violations, {hash}",
            self.ops,
            self.acknowledged,
            self.lost.len(),
            self.duplicated.len(),
            self.violations.len()
        )
    }
}

pub fn micros(t: &Option<prost_types::Timestamp>) -> Option<i64> {
    t.as_ref()
        .map(|t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000)
}

fn duration_us(d: &Option<prost_types::Duration>) -> i64 {
    d.as_ref()
        .map(|d| d.seconds * 1_000_000 + i64::from(d.nanos) / 1000)
        .unwrap_or(0)
}

/// The `rid` field of a decision's input (how the load tags its asks).
pub fn rid_of(d: &proto::Decision) -> Option<String> {
    use prost_types::value::Kind;
    match d.input.as_ref()?.kind.as_ref()? {
        Kind::StructValue(s) => match s.fields.get("rid")?.kind.as_ref()? {
            Kind::StringValue(r) => Some(r.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn is_terminal(t: i32) -> bool {
    [
        Et::Approved,
        Et::Rejected,
        Et::Cancelled,
        Et::Expired,
        Et::ContextChanged,
    ]
    .iter()
    .any(|e| *e as i32 == t)
}

fn name(t: i32) -> String {
    Et::try_from(t)
        .map(|e| {
            e.as_str_name()
                .trim_start_matches("EVENT_TYPE_")
                .to_string()
        })
        .unwrap_or_else(|_| format!("type {t}"))
}

/// The answer an ANSWERED event recorded.
fn new_answer(e: &LogEvent) -> Option<&proto::Answer> {
    let a = &e.decision.answers;
    a.iter().find(|a| a.sequence == e.sequence).or(a.last())
}

fn glob_matches(glob: &Option<String>, kind: &str) -> bool {
    match glob {
        None => true,
        Some(g) => match g.strip_suffix('*') {
            Some(prefix) => kind.starts_with(prefix),
            None => g == kind,
        },
    }
}

/// Runs every check.
pub fn check(history: &[Record], subs: &[Subscription], fin: &Final) -> Report {
    let mut r = Report {
        ops: history.len(),
        state_hash_equal: fin.audit.state_hash_equal,
        ..Report::default()
    };
    check_log(fin, &mut r);
    let by_decision = group(&fin.log);
    for evs in by_decision.values() {
        check_decision(evs, fin, &mut r);
    }
    check_ops(history, fin, &by_decision, &mut r);
    for s in subs {
        check_subscription(s, fin, &mut r);
    }
    r
}

fn group(log: &[LogEvent]) -> BTreeMap<String, Vec<&LogEvent>> {
    let mut m: BTreeMap<String, Vec<&LogEvent>> = BTreeMap::new();
    for e in log {
        m.entry(e.decision.id.clone()).or_default().push(e);
    }
    m
}

/// The log is gap-free from 1, `audit verify` passed over all of it, and
/// the decisions as listed equal the state after each one's last event.
fn check_log(fin: &Final, r: &mut Report) {
    for (i, e) in fin.log.iter().enumerate() {
        if e.sequence != i as u64 + 1 {
            r.violations.push(format!(
                "log: event #{} has sequence {} (gap or duplicate in the log read from 0)",
                i + 1,
                e.sequence
            ));
            break;
        }
        if e.decision.last_sequence != e.sequence {
            r.violations.push(format!(
                "log: event {} carries a decision whose last_sequence is {}",
                e.sequence, e.decision.last_sequence
            ));
        }
    }
    if !fin.audit.ok {
        r.violations
            .push(format!("audit verify failed: {}", fin.audit.text.trim()));
    } else if fin.audit.events != fin.log.len() as u64 {
        r.violations.push(format!(
            "audit verify saw {} events, the API streamed {}",
            fin.audit.events,
            fin.log.len()
        ));
    }
    let mut last: HashMap<&str, &proto::Decision> = HashMap::new();
    for e in &fin.log {
        last.insert(&e.decision.id, &e.decision);
    }
    let mut listed = HashSet::new();
    for d in &fin.listed {
        if !listed.insert(d.id.as_str()) {
            r.violations
                .push(format!("ListDecisions lists {} twice", d.id));
        }
        match last.get(d.id.as_str()) {
            None => r.violations.push(format!(
                "ListDecisions shows {} which has no event in the log",
                d.id
            )),
            Some(l) => {
                if (l.status, l.version, l.last_sequence, l.answers.len())
                    != (d.status, d.version, d.last_sequence, d.answers.len())
                {
                    r.violations.push(format!(
                        "decision {}: stored row (status {}, version {}, last_sequence {}) differs from its last event's state (status {}, version {}, last_sequence {})",
                        d.id, d.status, d.version, d.last_sequence, l.status, l.version, l.last_sequence
                    ));
                }
            }
        }
    }
    for id in last.keys() {
        if !listed.contains(id) {
            r.violations
                .push(format!("decision {id} is in the log but not listed"));
        }
    }
}

/// Per decision: created once, at most one terminal event and nothing
/// after it, quorum and veto rules, and every timer fired exactly once.
fn check_decision(evs: &[&LogEvent], fin: &Final, r: &mut Report) {
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
fn check_timers(
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
            .map(|e| e.at_us)
            .unwrap_or(fin.end_us)
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

/// Every acknowledged operation is in the log exactly once; refused ones
/// are not; idempotent retries agree with the first result.
fn check_ops(
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

/// A subscriber that resumed after every disconnect saw exactly the
/// visible events after its start, each once, in order.
fn check_subscription(s: &Subscription, fin: &Final, r: &mut Report) {
    let expected: Vec<(u64, i32, &str)> = fin
        .log
        .iter()
        .filter(|e| e.sequence > s.start_after && glob_matches(&s.kind_glob, &e.decision.kind))
        .map(|e| (e.sequence, e.etype, e.decision.id.as_str()))
        .collect();
    for (i, exp) in expected.iter().enumerate() {
        match s.seen.get(i) {
            None => {
                r.violations.push(format!(
                    "subscriber {} ({} resumes): never received event {} (stopped after {} events)",
                    s.name,
                    s.resumes,
                    exp.0,
                    s.seen.len()
                ));
                return;
            }
            Some(got) if (got.0, got.1, got.2.as_str()) != *exp => {
                let near: Vec<&String> = s.trace.iter().take(6).collect();
                let what = if s.seen[..i].iter().any(|g| g.0 == got.0) {
                    "a duplicate of"
                } else if got.0 > exp.0 {
                    "a gap before"
                } else {
                    "out of order:"
                };
                r.violations.push(format!(
                    "subscriber {} ({} resumes): expected event {} ({} on {}), got {what} event {} ({}); first streams: {near:?}",
                    s.name,
                    s.resumes,
                    exp.0,
                    name(exp.1),
                    exp.2,
                    got.0,
                    name(got.1)
                ));
                return;
            }
            Some(_) => {}
        }
    }
    if s.seen.len() > expected.len() {
        let extra = &s.seen[expected.len()];
        r.violations.push(format!(
            "subscriber {}: received event {} that the log does not have (or a duplicate)",
            s.name, extra.0
        ));
    }
}

#[cfg(test)]
#[path = "checker_tests.rs"]
mod tests;
