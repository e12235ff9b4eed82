//! The chaos checker (Jepsen-style): from the client's own history of
//! operations, what every stream subscriber saw, and the final log read
//! back through the API, decides whether witness kept its promises. Pure:
//! no I/O, so it is tested on fabricated histories below.
//!
//! This file holds the types, shared helpers and `check`; the invariants
//! are checked by family in `checker/`: `readback` (the log, the listing,
//! audit verify, stream subscribers), `decisions` (each decision's events)
//! and `ops` (the client's history against the log).

#[path = "checker/decisions.rs"]
mod decisions;
#[path = "checker/ops.rs"]
mod ops;
#[path = "checker/readback.rs"]
mod readback;

use decisions::check_decision;
use ops::check_ops;
use readback::{check_log, check_subscription};
use std::collections::BTreeMap;
use witness::proto::{self, EventType as Et, Status as St};

/// One operation a client sent.
#[derive(Debug, Clone)]
pub(crate) enum Op {
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
pub(crate) enum Outcome {
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
pub(crate) struct Record {
    pub op: Op,
    pub outcome: Outcome,
    /// When the client had the outcome (Unix microseconds).
    pub at_us: i64,
}

/// A failover the nemesis made: when it killed the primary, and the chain
/// head the standby had when it was promoted (what survived).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failover {
    pub kill_us: i64,
    pub fork_sequence: u64,
}

/// One event of the final log, read back with StreamDecisions from 0.
#[derive(Debug, Clone)]
pub(crate) struct LogEvent {
    pub sequence: u64,
    pub etype: i32,
    pub decision: proto::Decision,
    pub at_us: i64,
}

/// What one resuming stream subscriber received (snapshot events left out).
#[derive(Debug, Clone, Default)]
pub(crate) struct Subscription {
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
pub(crate) struct Audit {
    pub ok: bool,
    pub events: u64,
    pub text: String,
    /// Some(equal) when the binary reports state hashes.
    pub state_hash_equal: Option<bool>,
}

/// Everything read back at the end of a run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Final {
    pub log: Vec<LogEvent>,
    /// ListDecisions, every page.
    pub listed: Vec<proto::Decision>,
    pub audit: Audit,
    /// When the run ended (timers due well before this must have fired).
    pub end_us: i64,
    /// How late a timer may fire (faults stall the store for seconds).
    pub grace_us: i64,
    /// The failovers of the run (postgres-ha).
    pub failovers: Vec<Failover>,
    /// Asynchronous replication: an acknowledged write past the standby's
    /// head at the next failover may be lost (and is reported as such).
    pub loss_allowed: bool,
}

impl Final {
    /// Whether an operation whose event was written at `event_us`, with
    /// the chain at `sequence`, was past what the standby had at the
    /// failover that followed it: lost by asynchronous replication, not by
    /// a bug.
    pub(crate) fn lost_at_failover(&self, event_us: i64, sequence: u64) -> bool {
        self.loss_allowed
            && self
                .failovers
                .iter()
                .find(|f| f.kill_us >= event_us)
                .is_some_and(|f| sequence > f.fork_sequence)
    }
}

/// The verdict.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub ops: usize,
    pub acknowledged: usize,
    pub unknown: usize,
    /// Why outcomes were unknown: status code -> count.
    pub unknown_codes: BTreeMap<String, usize>,
    pub lost: Vec<String>,
    pub duplicated: Vec<String>,
    pub violations: Vec<String>,
    pub state_hash_equal: Option<bool>,
    /// Acknowledged writes a failover lost that the standby never had
    /// (asynchronous replication only; expected there, so not a failure).
    pub lost_at_failover: Vec<String>,
    /// Subscribers that had streamed events a failover then lost.
    pub streams_rewound: Vec<String>,
}

impl Report {
    pub(crate) fn passed(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.violations.is_empty()
            && self.state_hash_equal != Some(false)
    }

    /// The summary line (the last line `make chaos` prints).
    pub(crate) fn line(&self) -> String {
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
        ) + &if self.lost_at_failover.is_empty() && self.streams_rewound.is_empty() {
            String::new()
        } else {
            format!(
                "; asynchronous replication lost {} acknowledged writes the standby never had, {} streams rewound",
                self.lost_at_failover.len(),
                self.streams_rewound.len()
            )
        }
    }
}

pub(crate) fn micros(t: &Option<prost_types::Timestamp>) -> Option<i64> {
    t.as_ref()
        .map(|t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000)
}

fn duration_us(d: &Option<prost_types::Duration>) -> i64 {
    d.as_ref()
        .map_or(0, |d| d.seconds * 1_000_000 + i64::from(d.nanos) / 1000)
}

/// The `rid` field of a decision's input (how the load tags its asks).
pub(crate) fn rid_of(d: &proto::Decision) -> Option<String> {
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
    Et::try_from(t).map_or_else(
        |_| format!("type {t}"),
        |e| {
            e.as_str_name()
                .trim_start_matches("EVENT_TYPE_")
                .to_string()
        },
    )
}

/// The answer an ANSWERED event recorded.
fn new_answer(e: &LogEvent) -> Option<&proto::Answer> {
    let a = &e.decision.answers;
    a.iter().find(|a| a.sequence == e.sequence).or(a.last())
}

/// Runs every check.
pub(crate) fn check(history: &[Record], subs: &[Subscription], fin: &Final) -> Report {
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

#[cfg(test)]
#[path = "checker_tests.rs"]
mod tests;
