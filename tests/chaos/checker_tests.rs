//! The checker on fabricated histories: a correct run passes, and each kind
//! of broken promise (lost, duplicated, gap, approval after close, refused
//! yet applied, timer never fired) makes it fail.

use super::*;

const SEC: i64 = 1_000_000;

fn ts(us: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: us / SEC,
        nanos: ((us % SEC) * 1000) as i32,
    })
}

fn input(rid: &str) -> Option<prost_types::Value> {
    Some(witness::api::convert::json_to_proto(
        &serde_json::json!({ "rid": rid }),
    ))
}

/// A decision `id` asked with `rid`, as it is after event `seq`.
fn state(
    id: &str,
    rid: &str,
    status: St,
    seq: u64,
    answers: Vec<proto::Answer>,
) -> proto::Decision {
    proto::Decision {
        id: id.into(),
        kind: "chaos.plain".into(),
        input: input(rid),
        required_approvals: 1,
        status: status as i32,
        answers,
        created_at: ts(100 * SEC),
        version: seq,
        last_sequence: seq,
        ..Default::default()
    }
}

fn approval(op: &str, rid: &str, seq: u64) -> proto::Answer {
    proto::Answer {
        verdict: proto::Verdict::Approve as i32,
        rationale: rid.into(),
        operator: op.into(),
        sequence: seq,
        ..Default::default()
    }
}

fn ev(seq: u64, t: Et, d: proto::Decision) -> LogEvent {
    LogEvent {
        sequence: seq,
        etype: t as i32,
        decision: d,
        at_us: 100 * SEC + seq as i64,
    }
}

fn ok(d: &proto::Decision, outcome: proto::AnswerOutcome, flag: bool) -> Outcome {
    Outcome::Ok {
        decision: Box::new(d.clone()),
        answer_outcome: outcome as i32,
        flag,
    }
}

/// d1 asked (r1), approved by op1 (a1): three events, all seen.
fn good() -> (Vec<Record>, Vec<Subscription>, Final) {
    let a = approval("op1", "a1", 2);
    let log = vec![
        ev(1, Et::Created, state("d1", "r1", St::Open, 1, vec![])),
        ev(
            2,
            Et::Answered,
            state("d1", "r1", St::Open, 2, vec![a.clone()]),
        ),
        ev(3, Et::Approved, state("d1", "r1", St::Approved, 3, vec![a])),
    ];
    let closed = log[2].decision.clone();
    let history = vec![
        Record {
            at_us: 0,
            op: Op::Ask { rid: "r1".into() },
            outcome: ok(&log[0].decision, proto::AnswerOutcome::Unspecified, true),
        },
        Record {
            at_us: 0,
            op: Op::Answer {
                rid: "a1".into(),
                decision_id: "d1".into(),
            },
            outcome: ok(&closed, proto::AnswerOutcome::Closed, false),
        },
    ];
    let sub = Subscription {
        name: "all".into(),
        seen: log
            .iter()
            .map(|e| (e.sequence, e.etype, e.decision.id.clone()))
            .collect(),
        resumes: 2,
        ..Default::default()
    };
    let fin = Final {
        listed: vec![closed],
        log,
        audit: Audit {
            ok: true,
            events: 3,
            text: "ok".into(),
            state_hash_equal: Some(true),
        },
        end_us: 200 * SEC,
        grace_us: 10 * SEC,
        failovers: Vec::new(),
        loss_allowed: false,
    };
    (history, vec![sub], fin)
}

fn run(h: &[Record], s: &[Subscription], f: &Final) -> Report {
    let r = check(h, s, f);
    println!("{:?}\n{}", r, r.line());
    r
}

#[test]
fn a_correct_history_passes() {
    let (h, s, f) = good();
    let r = run(&h, &s, &f);
    assert!(r.passed());
    assert_eq!(
        r.line(),
        "chaos: 2 ops (2 acknowledged), 0 lost, 0 duplicated, 0 invariant violations, state hash equal"
    );
}

#[test]
fn an_acknowledged_ask_missing_from_the_log_is_lost() {
    let (mut h, s, f) = good();
    h.push(Record {
        at_us: 0,
        op: Op::Ask { rid: "r2".into() },
        outcome: ok(
            &state("d2", "r2", St::Open, 4, vec![]),
            proto::AnswerOutcome::Unspecified,
            true,
        ),
    });
    let r = run(&h, &s, &f);
    assert_eq!(r.lost.len(), 1, "{:?}", r.lost);
    assert!(!r.passed());
}

#[test]
fn an_unknown_ask_may_be_absent_but_not_duplicated() {
    let (mut h, s, mut f) = good();
    h.push(Record {
        at_us: 0,
        op: Op::Ask { rid: "r9".into() },
        outcome: Outcome::Unknown("connection reset".into()),
    });
    assert!(run(&h, &s, &f).passed(), "absent unknown op is fine");
    // The same request id created two decisions: duplicated.
    for (seq, id) in [(4, "d8"), (5, "d9")] {
        let d = state(id, "r9", St::Open, seq, vec![]);
        f.listed.push(d.clone());
        f.log.push(ev(seq, Et::Created, d));
    }
    f.audit.events = 5;
    let r = run(&h, &[], &f);
    assert_eq!(r.duplicated.len(), 1, "{:?}", r.duplicated);
    assert!(!r.passed());
}

#[test]
fn a_subscriber_gap_or_duplicate_across_resumes_fails() {
    let (h, s, f) = good();
    let mut gap = s[0].clone();
    gap.seen.remove(1);
    let r = run(&h, &[gap], &f);
    assert_eq!(r.violations.len(), 1);
    assert!(
        r.violations[0].contains("a gap before"),
        "{:?}",
        r.violations
    );

    let mut dup = s[0].clone();
    dup.seen.insert(2, dup.seen[1].clone());
    let r = run(&h, &[dup], &f);
    assert!(
        r.violations[0].contains("a duplicate of"),
        "{:?}",
        r.violations
    );

    let mut short = s[0].clone();
    short.seen.pop();
    let r = run(&h, &[short], &f);
    assert!(
        r.violations[0].contains("never received event 3"),
        "{:?}",
        r.violations
    );
}

#[test]
fn an_approval_after_close_fails() {
    let (h, s, mut f) = good();
    let mut d = f.log[2].decision.clone();
    d.answers.push(approval("op2", "late", 4));
    d.version = 4;
    d.last_sequence = 4;
    f.log.push(ev(4, Et::Answered, d.clone()));
    f.listed = vec![d];
    f.audit.events = 4;
    let r = run(&h, &s, &f);
    assert!(
        r.violations.iter().any(|v| v.contains("after it closed")),
        "{:?}",
        r.violations
    );
}

#[test]
fn a_refused_retry_of_an_applied_answer_fails() {
    let (mut h, s, f) = good();
    h.push(Record {
        at_us: 0,
        op: Op::Answer {
            rid: "a1".into(),
            decision_id: "d1".into(),
        },
        outcome: Outcome::Fail("FailedPrecondition".into()),
    });
    let r = run(&h, &s, &f);
    assert!(
        r.violations.iter().any(|v| v.contains("refused")),
        "{:?}",
        r.violations
    );
}

#[test]
fn a_due_expiry_that_never_fired_is_lost() {
    let (h, _, mut f) = good();
    let mut d = state("d5", "r5", St::Open, 4, vec![]);
    d.expires_at = ts(110 * SEC);
    f.log.push(ev(4, Et::Created, d.clone()));
    f.listed.push(d);
    f.audit.events = 4;
    let r = run(&h, &[], &f);
    assert_eq!(r.lost.len(), 1, "{:?}", r.lost);
    // Still within the grace period: not yet a loss.
    f.end_us = 115 * SEC;
    assert!(run(&h, &[], &f).passed());
}

#[test]
fn a_failed_audit_or_a_different_state_hash_fails() {
    let (h, s, mut f) = good();
    f.audit.state_hash_equal = Some(false);
    let r = run(&h, &s, &f);
    assert!(!r.passed());
    assert!(r.line().ends_with("state hash DIFFERENT"));
    f.audit.state_hash_equal = Some(true);
    f.audit.ok = false;
    f.audit.text = "FAILED at event 2".into();
    assert_eq!(run(&h, &s, &f).violations.len(), 1);
}

#[test]
fn a_write_the_standby_never_had_is_lost_at_a_failover_only_when_asynchronous() {
    let (mut h, s, mut f) = good();
    h.push(Record {
        at_us: 100 * SEC,
        op: Op::Ask { rid: "r2".into() },
        outcome: ok(
            &state("d2", "r2", St::Open, 4, vec![]),
            proto::AnswerOutcome::Unspecified,
            true,
        ),
    });
    f.failovers.push(Failover {
        kill_us: 150 * SEC,
        fork_sequence: 3,
    });
    // Synchronous: any acknowledged write lost is a failure.
    let r = run(&h, &s, &f);
    assert_eq!(r.lost.len(), 1, "{:?}", r.lost);
    assert!(!r.passed());
    // Asynchronous: past the standby's head at the next failover, it is
    // reported as lost there, and the run passes.
    f.loss_allowed = true;
    let r = run(&h, &s, &f);
    assert!(r.lost.is_empty(), "{:?}", r.lost);
    assert_eq!(r.lost_at_failover.len(), 1, "{:?}", r.lost_at_failover);
    assert!(r.passed(), "{:?}", r.violations);
    // But a write the standby had (at or below its head) must survive.
    f.failovers[0].fork_sequence = 4;
    let r = run(&h, &s, &f);
    assert_eq!(r.lost.len(), 1, "{:?}", r.lost);
    assert!(r.lost_at_failover.is_empty());
    // The ack may reach the client after the kill: the event's time
    // (created_at, 100 s) places it before the failover all the same.
    f.failovers[0].fork_sequence = 3;
    h.last_mut().expect("the ask").at_us = 160 * SEC;
    let r = run(&h, &s, &f);
    assert_eq!(r.lost_at_failover.len(), 1, "{:?}", r.lost);
    // And one written after the last failover cannot be excused.
    f.failovers[0] = Failover {
        kill_us: 50 * SEC,
        fork_sequence: 3,
    };
    let r = run(&h, &s, &f);
    assert_eq!(r.lost.len(), 1, "{:?}", r.lost);
}

#[test]
fn a_stream_that_saw_a_lost_event_is_rewound_only_when_asynchronous() {
    let (h, mut s, mut f) = good();
    s[0].seen[2].2 = "d-gone".into();
    assert!(
        !run(&h, &s, &f).passed(),
        "synchronous: a fork in a stream fails"
    );
    f.loss_allowed = true;
    let r = run(&h, &s, &f);
    assert_eq!(r.streams_rewound.len(), 1, "{:?}", r.streams_rewound);
    assert!(r.passed(), "{:?}", r.violations);
}
