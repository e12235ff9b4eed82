//! The write plan both backends follow for a batch of commands (group
//! commit), so that one reading sees the one sequence:
//!
//! 1. `lookup_requests`: the stored idempotency records of the batch's keys;
//! 2. `load_decisions`: the stored decisions the batch acts on (and those
//!    its stored requests point to);
//! 3. [`plan_batch`] (pure, here): each command in order through the core,
//!    against the state the earlier commands of the batch left, numbering and
//!    chaining events; a refusal affects only its command;
//! 4. `write_batch`: the rows in this order: append events, insert new
//!    decision rows, update changed ones (with their timers), outbox,
//!    receipts, requests;
//! 5. commit, then reply to every caller.
//!
//! Only steps 1, 2 and 4 are the backend's, each in its own dialect; a
//! database error in them fails the whole batch (nothing is written).

use super::{plan, replay_request, Applied, Chain, Command, Idempotency, RequestRow, Result};
use super::{ProjectionRow, RawEvent, StoreError};
use crate::core::{Decision, Micros, Outcome, Refusal};
use std::collections::{HashMap, HashSet};

/// An idempotency key: (scope, request_id).
pub type RequestKey = (String, String);

/// What the keys of a batch name, to load before planning it.
#[derive(Debug, Default)]
pub struct Keys {
    /// Idempotency keys, each once.
    pub requests: Vec<RequestKey>,
    /// Decisions the commands act on, each once.
    pub decisions: Vec<String>,
}

impl Keys {
    /// Each key once, in first-seen order (hash sets: a batch holds up to
    /// hundreds of keyed commands).
    pub fn of(cmds: &[Command]) -> Keys {
        let mut keys = Keys::default();
        let mut requests = HashSet::new();
        let mut decisions = HashSet::new();
        for cmd in cmds {
            if let Some(i) = cmd.idem() {
                if requests.insert((i.scope.as_str(), i.request_id.as_str())) {
                    keys.requests.push((i.scope.clone(), i.request_id.clone()));
                }
            }
            if let Command::Act { decision_id, .. } = cmd {
                if decisions.insert(decision_id.as_str()) {
                    keys.decisions.push(decision_id.clone());
                }
            }
        }
        keys
    }
}

/// The stored state a batch is planned against.
#[derive(Debug, Default)]
pub struct Loaded {
    pub requests: HashMap<RequestKey, RequestRow>,
    pub decisions: HashMap<String, Decision>,
}

impl Loaded {
    /// Decision ids stored requests point to that are not loaded yet.
    pub fn missing_request_decisions(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.requests
            .values()
            .map(|r| &r.decision_id)
            .filter(|id| !self.decisions.contains_key(*id) && seen.insert(id.as_str()))
            .cloned()
            .collect()
    }
}

/// A decision row to write: its new columns, and the version the stored
/// row must still have (None: the batch created it, insert it).
#[derive(Debug, Clone)]
pub struct DecisionWrite {
    pub row: ProjectionRow,
    pub stored_version: Option<i64>,
}

/// An outbox row to insert.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub webhook: String,
    pub decision_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub body: String,
    pub next_attempt_at: Micros,
}

/// A `requests` row to insert.
#[derive(Debug, Clone)]
pub struct RequestWrite {
    pub idem: Idempotency,
    pub decision_id: String,
    /// The outcome as stored (JSON).
    pub outcome: String,
}

/// Exactly the rows a batch writes, in the order they are written.
#[derive(Debug, Default)]
pub struct BatchWrites {
    pub events: Vec<RawEvent>,
    /// Rows the batch created (inserted) and changed (updated), one per
    /// decision whatever the number of commands on it.
    pub decisions: Vec<DecisionWrite>,
    pub outbox: Vec<OutboxRow>,
    /// (decision id, receipt body).
    pub receipts: Vec<(String, String)>,
    pub requests: Vec<RequestWrite>,
}

impl BatchWrites {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.requests.is_empty()
    }

    /// The rows to insert, then the rows to update.
    pub fn decision_rows(&self) -> (Vec<&ProjectionRow>, Vec<(&ProjectionRow, i64)>) {
        let mut inserts = Vec::new();
        let mut updates = Vec::new();
        for w in &self.decisions {
            match w.stored_version {
                None => inserts.push(&w.row),
                Some(v) => updates.push((&w.row, v)),
            }
        }
        (inserts, updates)
    }
}

/// The error for a decision row that did not have the version its writer
/// read (the chain lock or the single writer rules this out).
pub fn changed_underneath(id: &str) -> StoreError {
    StoreError::Corrupt(format!("decision {id} changed underneath its writer"))
}

/// Plans every command of a batch in order against `loaded` (step 3):
/// each command sees what the earlier ones did. Returns each command's
/// result and the rows to write; `chain` advances past the batch's events.
pub fn plan_batch(
    cmds: Vec<Command>,
    mut loaded: Loaded,
    chain: &mut Chain,
    now: Micros,
) -> (Vec<Result<Applied>>, BatchWrites) {
    let mut writes = BatchWrites::default();
    // Index into writes.decisions of each decision the batch changed.
    let mut written: HashMap<String, usize> = HashMap::new();
    let mut results = Vec::with_capacity(cmds.len());
    for cmd in cmds {
        let before = chain.clone();
        let result = plan_one(cmd, &mut loaded, chain, now, &mut writes, &mut written);
        if result.is_err() {
            *chain = before;
        }
        results.push(result);
    }
    (results, writes)
}

fn plan_one(
    cmd: Command,
    loaded: &mut Loaded,
    chain: &mut Chain,
    now: Micros,
    writes: &mut BatchWrites,
    written: &mut HashMap<String, usize>,
) -> Result<Applied> {
    // Idempotency lookup: a stored (or earlier in this batch) request.
    if let Some(idem) = cmd.idem() {
        let key = (idem.scope.clone(), idem.request_id.clone());
        if let Some(row) = loaded.requests.get(&key) {
            let decision = loaded.decisions.get(&row.decision_id).cloned();
            return replay_request(idem, row.clone(), decision);
        }
    }
    // Load decision, then decide in the pure core.
    let current = match &cmd {
        Command::Act { decision_id, .. } => loaded.decisions.get(decision_id).cloned(),
        Command::Create { .. } => None,
    };
    let stored_version = current.as_ref().map(|d| d.version as i64);
    // A refusal of a keyed command on a decision is its first result too: a
    // retry (or a late duplicate) must not take effect after the caller was
    // told no, once the state has moved on (e.g. a context re-confirmed).
    let refusable = match (&cmd, cmd.idem(), &current) {
        (Command::Act { .. }, Some(idem), Some(d)) => Some((idem.clone(), d.id.clone())),
        _ => None,
    };
    let plan = match plan(cmd, current, chain, now) {
        Ok(plan) => plan,
        Err(StoreError::Refused(refusal)) => {
            if let Some((idem, decision_id)) = refusable {
                remember(loaded, writes, idem, decision_id, Err(refusal.clone()))?;
            }
            return Err(StoreError::Refused(refusal));
        }
        Err(e) => return Err(e),
    };
    // The fallible steps first, so that a failure leaves `writes` as it was.
    let d = &plan.decision;
    let row = match plan.events.is_empty() {
        true => None,
        false => Some(ProjectionRow::write(d)?),
    };
    if let Some((idem, outcome)) = plan.request {
        remember(loaded, writes, idem, d.id.clone(), Ok(outcome))?;
    }
    // Row and timers: the decision's latest state, once per batch.
    if let Some(row) = row {
        match written.get(&d.id) {
            Some(&i) => writes.decisions[i].row = row,
            None => {
                written.insert(d.id.clone(), writes.decisions.len());
                writes.decisions.push(DecisionWrite {
                    row,
                    stored_version,
                });
            }
        }
    }
    writes
        .outbox
        .extend(plan.outbox.into_iter().map(|n| OutboxRow {
            webhook: n.webhook,
            decision_id: n.decision_id,
            sequence: n.sequence as i64,
            event_type: n.event_type,
            body: n.body,
            next_attempt_at: now,
        }));
    if let Some(body) = plan.receipt {
        writes.receipts.push((d.id.clone(), body));
    }
    writes.events.extend(plan.events);
    loaded.decisions.insert(d.id.clone(), plan.decision);
    Ok(plan.applied)
}

/// Stores a keyed command's first result, and lets the rest of the batch
/// see it.
fn remember(
    loaded: &mut Loaded,
    writes: &mut BatchWrites,
    idem: Idempotency,
    decision_id: String,
    outcome: std::result::Result<Outcome, Refusal>,
) -> Result<()> {
    writes.requests.push(RequestWrite {
        idem: idem.clone(),
        decision_id: decision_id.clone(),
        outcome: outcome_json(&outcome)?,
    });
    let key = (idem.scope, idem.request_id);
    let row = RequestRow {
        fingerprint: idem.fingerprint,
        decision_id,
        outcome,
    };
    loaded.requests.insert(key, row);
    Ok(())
}

/// A stored request's first result, as stored: the outcome as before
/// (`"CLOSED"`), or `{"refused": {"kind": …, "message": …}}`.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum StoredOutcome {
    Done(Outcome),
    Refused { refused: Refusal },
}

/// A stored request's first result, as stored.
pub(crate) fn outcome_json(outcome: &std::result::Result<Outcome, Refusal>) -> Result<String> {
    let stored = match outcome {
        Ok(o) => StoredOutcome::Done(*o),
        Err(r) => StoredOutcome::Refused { refused: r.clone() },
    };
    serde_json::to_string(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Reads a stored request's first result.
pub(crate) fn parse_outcome(s: &str) -> Result<std::result::Result<Outcome, Refusal>> {
    match serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))? {
        StoredOutcome::Done(o) => Ok(Ok(o)),
        StoredOutcome::Refused { refused } => Ok(Err(refused)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Action, Actor, NewDecision, Policy, Verdict};

    fn new(id: &str) -> NewDecision {
        NewDecision {
            id: id.into(),
            kind: "deploy.prod".into(),
            input: serde_json::json!({}),
            response_schema: None,
            authorized_roles: vec!["sre".into()],
            surfaces: vec![],
            required_approvals: 1,
            context_hash: None,
            timeout_us: None,
            asked_by: "svc".into(),
        }
    }

    fn idem(id: &str, fingerprint: &str) -> Option<Idempotency> {
        Some(Idempotency {
            scope: "svc".into(),
            request_id: id.into(),
            fingerprint: fingerprint.into(),
        })
    }

    fn approve(id: &str) -> Command {
        Command::Act {
            decision_id: id.into(),
            idem: None,
            action: Action::Answer {
                actor: Actor::new("alice", vec!["sre".into()]),
                verdict: Verdict::Approve,
                answer: serde_json::json!(null),
                rationale: "ok".into(),
                current_context_hash: None,
                current_roles: None,
            },
        }
    }

    fn create(id: &str, key: Option<Idempotency>) -> Command {
        Command::Create {
            idem: key,
            new: new(id),
            policy: Policy::default(),
        }
    }

    #[test]
    fn later_commands_see_earlier_ones_and_a_decision_is_written_once() {
        let mut chain = Chain::genesis();
        let cmds = vec![
            create("d1", idem("r1", "f")),
            create("d2", idem("r1", "f")), // the same key: replays d1
            create("d3", idem("r1", "g")), // the same key, other content
            approve("d1"),
            approve("d1"), // closed by now: refused
            approve("nope"),
        ];
        let keys = Keys::of(&cmds);
        assert_eq!(keys.requests.len(), 1);
        assert_eq!(keys.decisions, ["d1", "nope"]);
        let (results, writes) = plan_batch(cmds, Loaded::default(), &mut chain, 7);
        assert!(results[0].as_ref().is_ok_and(|a| a.fresh));
        let replay = results[1].as_ref().unwrap();
        assert!(!replay.fresh);
        assert_eq!(replay.decision.id, "d1");
        assert!(matches!(results[2], Err(StoreError::AlreadyExists(_))));
        assert_eq!(results[3].as_ref().unwrap().outcome, Outcome::Closed);
        assert!(matches!(results[4], Err(StoreError::Refused(_))));
        assert!(matches!(results[5], Err(StoreError::NotFound(_))));
        assert_eq!(
            writes.events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(chain.sequence, 3);
        assert_eq!(chain.hash, writes.events[2].hash);
        assert_eq!(writes.decisions.len(), 1, "d1 once, in its final state");
        assert_eq!(writes.decisions[0].stored_version, None, "created here");
        assert_eq!(writes.decisions[0].row.status, "APPROVED");
        assert_eq!(writes.decisions[0].row.version, 3);
        assert_eq!(writes.receipts.len(), 1);
        assert_eq!(writes.requests.len(), 1);
    }

    #[test]
    fn a_refused_keyed_command_replays_its_refusal_after_the_state_moved_on() {
        let mut chain = Chain::genesis();
        let mut quorum = new("d1");
        quorum.required_approvals = 2;
        quorum.context_hash = Some("h".into());
        let answer = |who: &str, key: Option<Idempotency>| Command::Act {
            decision_id: "d1".into(),
            idem: key,
            action: Action::Answer {
                actor: Actor::new(who, vec!["sre".into()]),
                verdict: Verdict::Approve,
                answer: serde_json::json!(null),
                rationale: "ok".into(),
                current_context_hash: None,
                current_roles: None,
            },
        };
        let confirm = Command::Act {
            decision_id: "d1".into(),
            idem: None,
            action: Action::ReportContext {
                actor: Actor::new("svc", vec![]),
                context_hash: "h".into(),
            },
        };
        let cmds = vec![
            Command::Create {
                idem: None,
                new: quorum,
                policy: Policy::default(),
            },
            answer("alice", None),
            // No confirmation since alice's approval: refused, and remembered.
            answer("bob", idem("r1", "f")),
            confirm,
            // The same request again: the state would now let it close the
            // decision, but its first result was the refusal.
            answer("bob", idem("r1", "f")),
        ];
        let (results, writes) = plan_batch(cmds, Loaded::default(), &mut chain, 7);
        let refusal = |r: &Result<Applied>| match r {
            Err(StoreError::Refused(r)) => Some(r.message.clone()),
            _ => None,
        };
        let first = refusal(&results[2]).expect("bob's first answer is refused");
        assert!(first.contains("re-confirmed"), "{first}");
        assert!(results[3].is_ok());
        assert_eq!(refusal(&results[4]), Some(first));
        assert_eq!(writes.requests.len(), 1, "the refusal is stored once");
        assert_eq!(writes.decisions[0].row.status, "OPEN");
        // Stored and read back, the refusal replays for a later batch too.
        let stored = parse_outcome(&writes.requests[0].outcome).unwrap();
        assert!(stored.is_err_and(|r| r.kind == crate::core::RefusalKind::FailedPrecondition));
        assert_eq!(
            parse_outcome("\"CLOSED\"").unwrap(),
            Ok(Outcome::Closed),
            "rows stored before refusals were remembered still read"
        );
    }

    #[test]
    fn a_stored_decision_is_updated_from_its_stored_version() {
        let mut chain = Chain::genesis();
        let (results, _) = plan_batch(vec![create("d1", None)], Loaded::default(), &mut chain, 1);
        let d = results.into_iter().next().unwrap().unwrap().decision;
        let loaded = Loaded {
            requests: HashMap::new(),
            decisions: HashMap::from([(d.id.clone(), d)]),
        };
        let (results, writes) = plan_batch(vec![approve("d1")], loaded, &mut chain, 2);
        assert!(results[0].is_ok());
        assert_eq!(writes.decisions[0].stored_version, Some(1));
        assert_eq!(writes.events[0].sequence, 2);
    }
}
