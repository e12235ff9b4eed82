//! One conformance suite for every `Store` backend: the embedded SQLite
//! store on a temporary file and PostgreSQL on a private real server.

mod common;

use common::pg::PgCluster;
use serde_json::json;
use std::sync::Arc;
use witness::core::{Action, Actor, NewDecision, Outcome, Policy, Status, Verdict};
use witness::store::{
    Command, Delivery, Idempotency, Lane, OutboxStatus, PageQuery, ProjectionRow, Store,
    StoreError, TimerKind,
};

type S = Arc<dyn Store>;

fn new_decision(kind: &str, approvals: u32) -> NewDecision {
    NewDecision {
        id: uuid::Uuid::now_v7().to_string(),
        kind: kind.into(),
        input: json!({"n": 1}),
        response_schema: None,
        authorized_roles: vec!["sre".into()],
        surfaces: vec!["console".into()],
        required_approvals: approvals,
        context_hash: (approvals > 1).then(|| "h".repeat(64)),
        timeout_us: None,
        asked_by: "svc".into(),
    }
}

fn create(new: NewDecision, idem: Option<Idempotency>) -> Command {
    Command::Create {
        idem,
        new,
        policy: Policy::default(),
    }
}

fn idem(request_id: &str, fingerprint: &str) -> Option<Idempotency> {
    Some(Idempotency {
        scope: "svc".into(),
        request_id: request_id.into(),
        fingerprint: fingerprint.into(),
    })
}

fn approve(id: &str, who: &str) -> Command {
    Command::Act {
        decision_id: id.into(),
        idem: None,
        action: Action::Answer {
            actor: Actor::new(who, vec!["sre".into()]),
            verdict: Verdict::Approve,
            answer: json!(null),
            rationale: "ok".into(),
            current_context_hash: None,
            current_roles: None,
        },
    }
}

async fn ask(s: &S, kind: &str) -> witness::core::Decision {
    s.execute(create(new_decision(kind, 1), None))
        .await
        .unwrap()
        .decision
}

async fn create_get_and_read_events(s: S) {
    let applied = s
        .execute(create(new_decision("deploy.prod", 1), None))
        .await
        .unwrap();
    assert!(applied.fresh);
    assert_eq!(applied.events.len(), 1);
    let d = applied.decision;
    assert_eq!((d.version, d.last_sequence, d.status), (1, 1, Status::Open));
    assert_eq!(s.get(&d.id).await.unwrap(), Some(d.clone()));
    assert_eq!(s.get("missing").await.unwrap(), None);
    let events = s.events_after(0, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].decision_id, d.id);
    assert_eq!(s.decision_events(&d.id).await.unwrap(), events);
    assert_eq!(*s.commits().borrow(), 1);
}

async fn idempotent_creates_and_conflicts(s: S) {
    let first = s
        .execute(create(new_decision("deploy.prod", 1), idem("r1", "f1")))
        .await
        .unwrap();
    let again = s
        .execute(create(new_decision("deploy.prod", 1), idem("r1", "f1")))
        .await
        .unwrap();
    assert!(first.fresh && !again.fresh);
    assert_eq!(first.decision.id, again.decision.id);
    let err = s
        .execute(create(new_decision("deploy.prod", 1), idem("r1", "other")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
    assert_eq!(
        s.events_after(0, 10).await.unwrap().len(),
        1,
        "retries and conflicts write nothing"
    );
}

async fn refusals_write_nothing_and_answers_close(s: S) {
    let d = ask(&s, "deploy.prod").await;
    let err = s.execute(approve(&d.id, "svc")).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Refused(_)),
        "self-approval refused: {err}"
    );
    let err = s.execute(approve("nope", "alice")).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
    assert_eq!(s.events_after(0, 10).await.unwrap().len(), 1);
    let applied = s.execute(approve(&d.id, "alice")).await.unwrap();
    assert_eq!(applied.outcome, Outcome::Closed);
    assert_eq!(applied.decision.status, Status::Approved);
    assert_eq!(
        applied
            .events
            .iter()
            .map(|e| e.sequence)
            .collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(s.get(&d.id).await.unwrap().unwrap(), applied.decision);
}

async fn idempotent_answers_return_the_first_result(s: S) {
    let d = s
        .execute(create(new_decision("scram.x", 2), None))
        .await
        .unwrap()
        .decision;
    let mut cmd = approve(&d.id, "alice");
    if let Command::Act { idem: i, .. } = &mut cmd {
        *i = Some(Idempotency {
            scope: "alice".into(),
            request_id: "a1".into(),
            fingerprint: "fa".into(),
        });
    }
    let first = s.execute(cmd.clone()).await.unwrap();
    let again = s.execute(cmd).await.unwrap();
    assert_eq!(first.outcome, Outcome::AwaitingApprovals);
    assert_eq!(again.outcome, Outcome::AwaitingApprovals);
    assert!(!again.fresh);
    assert_eq!(s.get(&d.id).await.unwrap().unwrap().answers.len(), 1);
}

/// A keyed command's first result is final, a refusal too: once the state
/// would let it through (the context re-confirmed), a retry or a late
/// duplicate of the refused request still gets the refusal and writes
/// nothing; a new request id is a new command.
async fn a_refused_request_keeps_its_refusal(s: S) {
    let d = s
        .execute(create(new_decision("scram.x", 2), None))
        .await
        .unwrap()
        .decision;
    s.execute(approve(&d.id, "alice")).await.unwrap();
    let keyed = |request_id: &str| {
        let mut cmd = approve(&d.id, "bob");
        if let Command::Act { idem: i, .. } = &mut cmd {
            *i = idem(request_id, "fb");
        }
        cmd
    };
    let refused = |r: Result<witness::store::Applied, StoreError>| match r {
        Err(StoreError::Refused(r)) => r,
        other => panic!("expected the re-confirm refusal, got {other:?}"),
    };
    let first = refused(s.execute(keyed("b1")).await);
    assert!(first.message.contains("re-confirmed"), "{}", first.message);
    let confirm = act(
        &d.id,
        Action::ReportContext {
            actor: Actor::new("svc", vec![]),
            context_hash: "h".repeat(64),
        },
    );
    assert_eq!(
        s.execute(confirm).await.unwrap().outcome,
        Outcome::ContextMatched
    );
    let head = s.events_after(0, 100).await.unwrap().len();
    assert_eq!(refused(s.execute(keyed("b1")).await), first);
    assert_eq!(s.events_after(0, 100).await.unwrap().len(), head);
    let applied = s.execute(keyed("b2")).await.unwrap();
    assert_eq!(applied.outcome, Outcome::Closed);
}

async fn pages_filter_by_status_in_id_order(s: S) {
    let mut ids = Vec::new();
    for _ in 0..7 {
        ids.push(ask(&s, "deploy.prod").await.id);
    }
    s.execute(approve(&ids[3], "alice")).await.unwrap();
    let page = |after: Option<String>, statuses: Vec<Status>, limit| PageQuery {
        after_id: after,
        statuses,
        limit,
    };
    let first = s.page(&page(None, vec![], 4)).await.unwrap();
    assert_eq!(
        first.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        ids[..4]
    );
    let rest = s
        .page(&page(Some(ids[3].clone()), vec![], 10))
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        ids[4..]
    );
    let approved = s
        .page(&page(None, vec![Status::Approved], 10))
        .await
        .unwrap();
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0].id, ids[3]);
    let open = s
        .page(&page(None, vec![Status::Open, Status::Rejected], 10))
        .await
        .unwrap();
    assert_eq!(open.len(), 6);
}

async fn snapshot_is_the_open_set_at_the_head(s: S) {
    let a = ask(&s, "a").await;
    let b = ask(&s, "b").await;
    s.execute(approve(&a.id, "alice")).await.unwrap();
    let (open, head) = s.open_snapshot().await.unwrap();
    assert_eq!(
        open.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        [b.id]
    );
    assert_eq!(head, 4);
}

async fn the_chain_is_valid_and_gap_free_under_concurrency(s: S) {
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let d = s
                    .execute(create(new_decision("deploy.prod", 1), None))
                    .await
                    .unwrap()
                    .decision;
                if i % 2 == 0 {
                    s.execute(approve(&d.id, "alice")).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let raw = s.raw_events(0, 1000).await.unwrap();
    assert_eq!(
        raw.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        (1..=80).collect::<Vec<u64>>()
    );
    let report = witness::audit::verify(s.as_ref()).await.unwrap();
    assert_eq!(report.problem, None);
    assert_eq!((report.events, report.decisions), (80, 40));
}

/// Both backends commit concurrent commands in batches; a refused command
/// in a batch writes nothing and leaves the others whole.
async fn refusals_inside_a_concurrent_burst_leave_the_others_whole(s: S) {
    let open = ask(&s, "deploy.prod").await;
    let taken = s
        .execute(create(new_decision("deploy.prod", 1), idem("r-1", "f-1")))
        .await
        .unwrap()
        .decision;
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let (s, open) = (s.clone(), open.id.clone());
            tokio::spawn(async move {
                let cmd = match i % 4 {
                    0 => create(new_decision("deploy.prod", 1), None),
                    1 => approve(&open, "svc"), // self-approval: refused
                    2 => approve("missing", "bob"), // no such decision
                    _ => create(new_decision("deploy.prod", 1), idem("r-1", "other")), // key reused
                };
                (i % 4, s.execute(cmd).await)
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            (0, Ok(applied)) => {
                assert_eq!(applied.events.len(), 1);
                created += 1;
            }
            (1, Err(StoreError::Refused(_))) => {}
            (2, Err(StoreError::NotFound(_))) => {}
            (3, Err(StoreError::AlreadyExists(_))) => {}
            (kind, other) => panic!("command kind {kind}: unexpected {other:?}"),
        }
    }
    assert_eq!(created, 15);
    let raw = s.raw_events(0, 1000).await.unwrap();
    assert_eq!(
        raw.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        (1..=17).collect::<Vec<u64>>(),
        "only the accepted commands wrote, without gaps"
    );
    let report = witness::audit::verify(s.as_ref()).await.unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(
        s.get(&open.id).await.unwrap().unwrap().version,
        open.version
    );
    assert_eq!(s.get(&taken.id).await.unwrap().unwrap(), taken);
}

/// Creates a decision with `policy` and `timeout_us`.
async fn ask_with(s: &S, policy: Policy, timeout_us: Option<i64>) -> witness::core::Decision {
    let mut new = new_decision("timed.x", 1);
    new.timeout_us = timeout_us;
    s.execute(Command::Create {
        idem: None,
        new,
        policy,
    })
    .await
    .unwrap()
    .decision
}

fn act(id: &str, action: Action) -> Command {
    Command::Act {
        decision_id: id.into(),
        idem: None,
        action,
    }
}

fn timers(due: &[witness::store::DueTimer]) -> Vec<(String, TimerKind)> {
    due.iter()
        .map(|t| (t.decision_id.clone(), t.kind))
        .collect()
}

/// One contract on both stores: a claim, one timer per decision, in id
/// order, leased; a write to the decision ends the lease.
async fn due_timers_are_claimed_for_a_lease(s: S) {
    const LEASE: i64 = 1_000_000;
    let fallback = Policy {
        ack_window_us: 1,
        ..Policy::default()
    };
    // Expired (and past its ack window too: one timer, Expire).
    let a = ask_with(&s, fallback.clone(), Some(1)).await;
    // Past its ack window only; expires 100 s later.
    let b = ask_with(&s, fallback.clone(), Some(100_000_000)).await;
    // Nothing due for a long time.
    let quiet = Policy {
        ack_window_us: 1_000_000_000_000,
        ..Policy::default()
    };
    let c = ask_with(&s, quiet, None).await;
    let t = c.created_at + 10;
    let due = s.due_timers(t, LEASE, 10).await.unwrap();
    assert_eq!(
        timers(&due),
        [
            (a.id.clone(), TimerKind::Expire),
            (b.id.clone(), TimerKind::Fallback)
        ]
    );
    assert!(
        s.due_timers(t + 1, LEASE, 10).await.unwrap().is_empty(),
        "claimed timers are not handed out again during their lease"
    );
    assert!(s.due_timers(t + LEASE, LEASE, 10).await.unwrap().is_empty());
    let after = t + LEASE + 1;
    assert_eq!(
        timers(&s.due_timers(after, LEASE, 1).await.unwrap()),
        [(a.id.clone(), TimerKind::Expire)],
        "after the lease, again; the limit takes the lowest ids"
    );
    assert_eq!(
        timers(&s.due_timers(after, LEASE, 10).await.unwrap()),
        [(b.id.clone(), TimerKind::Fallback)]
    );
    let expired = s.execute(act(&a.id, Action::Expire)).await.unwrap();
    assert_eq!(expired.decision.status, Status::Expired);
    let again = s.execute(act(&a.id, Action::Expire)).await.unwrap();
    assert!(again.events.is_empty(), "a fired timer does not fire again");
    // Firing writes the row: the fallback is gone, the lease with it, and
    // the expiry is claimable as soon as it is due.
    let fired = s.execute(act(&b.id, Action::FireFallback)).await.unwrap();
    assert_eq!(fired.events.len(), 1);
    let expiry = b.expires_at.unwrap();
    assert!(s
        .due_timers(expiry - 1, LEASE, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        timers(&s.due_timers(expiry, LEASE, 10).await.unwrap()),
        [(b.id.clone(), TimerKind::Expire)],
        "within the old lease, but the row changed"
    );
    let far = witness::store::now_micros() + 10_000_000;
    assert!(
        s.due_timers(far, LEASE, 10).await.unwrap().is_empty(),
        "the closed one has no timers; {} expires later, {} has none due",
        b.id,
        c.id
    );
}

/// Creates `n` decisions whose CREATED goes to the `pager` webhook: one
/// outbox row each, due at the decision's creation.
async fn deliveries(s: &S, n: usize) -> Vec<witness::core::Decision> {
    let policy = Policy {
        webhook_surfaces: vec!["pager".into()],
        ..Policy::default()
    };
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(ask_with(s, policy.clone(), None).await);
    }
    out
}

fn ids(items: &[witness::store::OutboxItem]) -> Vec<i64> {
    items.iter().map(|o| o.id).collect()
}

async fn outbox_claim_leases_in_id_order_up_to_the_limit(s: S) {
    let made = deliveries(&s, 3).await;
    let t = made[2].created_at;
    assert!(
        s.outbox_claim(made[0].created_at - 1, 1_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "not due before its next attempt"
    );
    let first = s.outbox_claim(t, 1_000, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    let o = &first[0];
    assert_eq!(
        (
            o.webhook.as_str(),
            o.decision_id.as_str(),
            o.sequence,
            o.event_type.as_str(),
            o.status,
            o.attempts,
            o.next_attempt_at,
            o.last_error.clone(),
            o.delivered_at
        ),
        (
            "pager",
            made[0].id.as_str(),
            1,
            "CREATED",
            OutboxStatus::Pending,
            0,
            made[0].created_at,
            None,
            None
        )
    );
    let body: serde_json::Value = serde_json::from_str(&o.body).unwrap();
    assert_eq!(body["decision_id"], json!(made[0].id));
    assert_eq!(first[1].decision_id, made[1].id);
    assert!(first[0].id < first[1].id);
    let rest = s.outbox_claim(t + 1, 1_000, 10).await.unwrap();
    assert_eq!(rest.len(), 1, "the two leased are not claimed again");
    assert_eq!(rest[0].decision_id, made[2].id);
    assert!(s
        .outbox_claim(t + 1_000, 1_000, 10)
        .await
        .unwrap()
        .is_empty());
    let all = s.outbox_claim(t + 1_002, 1_000, 10).await.unwrap();
    assert_eq!(
        ids(&all),
        [first[0].id, first[1].id, rest[0].id],
        "every lease over: all three again, in id order"
    );
}

/// Slack rows (`slack:CHANNEL`) are their own lane: the webhook claim never
/// hands them out, the Slack claim hands out only them; a post keeps its
/// answer (the message ts), a deferral counts no attempt, and a decision's
/// thread lists its rows in sequence order.
async fn the_slack_lane_is_claimed_apart_and_keeps_its_thread(s: S) {
    let policy = Policy {
        webhook_surfaces: vec!["pager".into()],
        slack_channel: Some("C0DEPLOY".into()),
        ..Policy::default()
    };
    let d = ask_with(&s, policy, None).await;
    s.execute(approve(&d.id, "op")).await.unwrap();
    let t = d.created_at + 60_000_000;
    let hooks = s.outbox_claim(t, 1_000, 10).await.unwrap();
    assert_eq!(
        hooks.iter().map(|o| o.webhook.as_str()).collect::<Vec<_>>(),
        ["pager"],
        "the webhook lane: the CREATED page only"
    );
    let slack = s
        .outbox_claim_lane(Lane::Slack, t, 1_000, 10)
        .await
        .unwrap();
    let kinds: Vec<(&str, &str)> = slack
        .iter()
        .map(|o| (o.webhook.as_str(), o.event_type.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("slack:C0DEPLOY", "CREATED"),
            ("slack:C0DEPLOY", "ANSWERED"),
            ("slack:C0DEPLOY", "APPROVED")
        ]
    );
    s.outbox_complete(
        slack[0].id,
        Delivery::Answered {
            at: t,
            response: "1700000000.000100".into(),
        },
    )
    .await
    .unwrap();
    s.outbox_complete(
        slack[1].id,
        Delivery::Deferred {
            at: t + 500,
            reason: "rate limited".into(),
        },
    )
    .await
    .unwrap();
    let thread = s.outbox_thread("slack:C0DEPLOY", &d.id).await.unwrap();
    assert_eq!(thread.len(), 3);
    assert!(thread.windows(2).all(|w| w[0].sequence < w[1].sequence));
    assert_eq!(thread[0].status, OutboxStatus::Delivered);
    assert_eq!(thread[0].response.as_deref(), Some("1700000000.000100"));
    assert_eq!(
        (
            thread[1].status,
            thread[1].attempts,
            thread[1].next_attempt_at
        ),
        (OutboxStatus::Pending, 0, t + 500),
        "a deferral is no attempt"
    );
    assert_eq!(thread[1].last_error.as_deref(), Some("rate limited"));
    assert!(s
        .outbox_thread("slack:OTHER", &d.id)
        .await
        .unwrap()
        .is_empty());
    let again = s
        .outbox_claim_lane(Lane::Slack, t + 1_001, 1_000, 10)
        .await
        .unwrap();
    assert_eq!(ids(&again), [slack[1].id, slack[2].id]);
}

/// Three claimed deliveries: one delivered, one to retry later, one dead.
async fn completed_three_ways(s: &S) -> (Vec<witness::store::OutboxItem>, i64) {
    let made = deliveries(s, 3).await;
    let t = made[2].created_at;
    let claimed = s.outbox_claim(t, 60_000_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 3);
    s.outbox_complete(claimed[0].id, Delivery::Delivered { at: t + 5 })
        .await
        .unwrap();
    s.outbox_complete(
        claimed[1].id,
        Delivery::Retry {
            at: t + 100,
            error: "HTTP 500".into(),
        },
    )
    .await
    .unwrap();
    s.outbox_complete(
        claimed[2].id,
        Delivery::Dead {
            error: "gone".into(),
        },
    )
    .await
    .unwrap();
    (claimed, t)
}

async fn outbox_complete_records_delivered_retry_and_dead(s: S) {
    let (claimed, t) = completed_three_ways(&s).await;
    let listed = s.outbox_list(None, 10).await.unwrap();
    let row = |i: usize| {
        let o = listed.iter().find(|o| o.id == claimed[i].id).unwrap();
        (
            o.status,
            o.attempts,
            o.next_attempt_at,
            o.last_error.clone(),
            o.delivered_at,
        )
    };
    let created = claimed[0].next_attempt_at;
    assert_eq!(
        row(0),
        (OutboxStatus::Delivered, 1, created, None, Some(t + 5))
    );
    assert_eq!(
        row(1),
        (
            OutboxStatus::Pending,
            1,
            t + 100,
            Some("HTTP 500".into()),
            None
        )
    );
    assert_eq!(
        row(2),
        (
            OutboxStatus::Dead,
            1,
            claimed[2].next_attempt_at,
            Some("gone".into()),
            None
        )
    );
    assert!(
        s.outbox_claim(t + 99, 1_000, 10).await.unwrap().is_empty(),
        "the retry waits for its time"
    );
    assert_eq!(
        ids(&s.outbox_claim(t + 100, 1_000, 10).await.unwrap()),
        [claimed[1].id],
        "completing ended the lease; delivered and dead are never claimed"
    );
    assert_eq!(s.gauges().await.unwrap().outbox_pending, 1);
}

async fn outbox_list_filters_by_status_newest_first(s: S) {
    let (claimed, _) = completed_three_ways(&s).await;
    let newest_first: Vec<i64> = claimed.iter().rev().map(|o| o.id).collect();
    assert_eq!(ids(&s.outbox_list(None, 10).await.unwrap()), newest_first);
    assert_eq!(
        ids(&s.outbox_list(None, 2).await.unwrap()),
        newest_first[..2]
    );
    for (status, i) in [
        (OutboxStatus::Delivered, 0),
        (OutboxStatus::Pending, 1),
        (OutboxStatus::Dead, 2),
    ] {
        assert_eq!(
            ids(&s.outbox_list(Some(status), 10).await.unwrap()),
            [claimed[i].id],
            "{status:?}"
        );
    }
    assert!(s
        .outbox_list(Some(OutboxStatus::Dead), 0)
        .await
        .unwrap()
        .is_empty());
}

async fn outbox_retry_requeues_one_or_every_dead(s: S) {
    let (claimed, t) = completed_three_ways(&s).await;
    let (delivered, pending, dead) = (claimed[0].id, claimed[1].id, claimed[2].id);
    assert_eq!(s.outbox_retry(Some(delivered), t).await.unwrap(), 0);
    assert_eq!(
        s.outbox_retry(Some(i64::MAX), t).await.unwrap(),
        0,
        "unknown id"
    );
    assert_eq!(s.outbox_retry(Some(dead), t + 7).await.unwrap(), 1);
    let row = s.outbox_list(None, 10).await.unwrap();
    let row = row.iter().find(|o| o.id == dead).unwrap();
    assert_eq!(
        (row.status, row.attempts, row.next_attempt_at),
        (OutboxStatus::Pending, 0, t + 7)
    );
    assert_eq!(
        ids(&s.outbox_claim(t + 7, 1_000, 10).await.unwrap()),
        [dead],
        "back in line now (the other pending one waits for t + 100)"
    );
    // Every dead one: make two dead, leave the pending one alone.
    for id in [dead, pending] {
        s.outbox_complete(id, Delivery::Dead { error: "x".into() })
            .await
            .unwrap();
    }
    assert_eq!(s.outbox_retry(None, t + 8).await.unwrap(), 2);
    assert!(s
        .outbox_list(Some(OutboxStatus::Dead), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.outbox_retry(None, t + 9).await.unwrap(), 0, "none dead");
    assert_eq!(
        ids(&s
            .outbox_list(Some(OutboxStatus::Delivered), 10)
            .await
            .unwrap()),
        [delivered]
    );
}

async fn receipts_are_stored_for_closed_decisions_in_id_order(s: S) {
    let d: Vec<_> = [
        ask(&s, "r.a").await,
        ask(&s, "r.b").await,
        ask(&s, "r.c").await,
    ]
    .into();
    let mut closed = Vec::new();
    for i in [0, 2] {
        let applied = s.execute(approve(&d[i].id, "alice")).await.unwrap();
        let closing = applied.events.last().unwrap().sequence;
        let raw = s.raw_events(closing - 1, 1).await.unwrap();
        let body = witness::core::receipt::body(&applied.decision, &raw[0].hash);
        closed.push((d[i].id.clone(), body));
    }
    assert_eq!(s.receipts("", 10).await.unwrap(), closed);
    assert_eq!(s.receipts("", 1).await.unwrap(), closed[..1]);
    assert_eq!(s.receipts(&d[0].id, 10).await.unwrap(), closed[1..]);
    assert!(s.receipts(&d[2].id, 10).await.unwrap().is_empty());
    assert_eq!(
        s.receipt(&d[0].id).await.unwrap(),
        Some(closed[0].1.clone())
    );
    assert_eq!(s.receipt(&d[1].id).await.unwrap(), None, "still open");
    assert_eq!(s.receipt("missing").await.unwrap(), None);
}

async fn the_log_reads_by_position_and_by_decision(s: S) {
    assert_eq!(s.head().await.unwrap(), 0);
    assert!(s.raw_events(0, 10).await.unwrap().is_empty());
    let a = ask(&s, "log.a").await;
    let b = ask(&s, "log.b").await;
    s.execute(approve(&a.id, "alice")).await.unwrap();
    assert_eq!(s.head().await.unwrap(), 4);
    let raw = s.raw_events(0, 10).await.unwrap();
    assert_eq!(
        raw.iter()
            .map(|e| (e.sequence, e.decision_id.as_str(), e.event_type.as_str()))
            .collect::<Vec<_>>(),
        [
            (1, a.id.as_str(), "CREATED"),
            (2, b.id.as_str(), "CREATED"),
            (3, a.id.as_str(), "ANSWERED"),
            (4, a.id.as_str(), "APPROVED"),
        ]
    );
    let mut prev = witness::core::GENESIS_HASH.to_string();
    for e in &raw {
        assert_eq!(e.prev_hash, prev);
        let hash = witness::store::codec::event_hash(
            &prev,
            e.sequence,
            &e.decision_id,
            &e.event_type,
            e.at,
            &e.body,
        );
        assert_eq!(e.hash, hash);
        prev = e.hash.clone();
    }
    assert_eq!(s.raw_events(1, 2).await.unwrap(), raw[1..3]);
    assert!(s.raw_events(4, 10).await.unwrap().is_empty());
    let seqs = |events: Vec<witness::core::Event>| -> Vec<u64> {
        events.iter().map(|e| e.sequence).collect()
    };
    assert_eq!(seqs(s.events_after(0, 2).await.unwrap()), [1, 2]);
    assert_eq!(seqs(s.events_after(2, 10).await.unwrap()), [3, 4]);
    assert_eq!(seqs(s.events_after(3, 0).await.unwrap()), Vec::<u64>::new());
    assert!(s.events_after(4, 10).await.unwrap().is_empty());
    let of_a = s.decision_events(&a.id).await.unwrap();
    assert_eq!(seqs(of_a.clone()), [1, 3, 4]);
    assert!(of_a.iter().all(|e| e.decision_id == a.id));
    assert_eq!(seqs(s.decision_events(&b.id).await.unwrap()), [2]);
    assert!(s.decision_events("missing").await.unwrap().is_empty());
}

async fn projection_rows_are_the_columns_as_written(s: S) {
    let open = ask_with(&s, Policy::default(), Some(60_000_000)).await;
    let closed = ask(&s, "rows.b").await;
    let closed = s
        .execute(approve(&closed.id, "alice"))
        .await
        .unwrap()
        .decision;
    let rows = s.projection_rows("", 10).await.unwrap();
    assert_eq!(
        rows,
        [
            ProjectionRow::write(&open).unwrap(),
            ProjectionRow::write(&closed).unwrap()
        ]
    );
    assert_eq!(rows[0].expires_at, open.expires_at);
    assert!(rows[0].expires_at.is_some());
    assert_eq!(
        (
            rows[1].status.as_str(),
            rows[1].version,
            rows[1].last_sequence,
            rows[1].expires_at
        ),
        ("APPROVED", 3, 4, None)
    );
    assert_eq!(s.projection_rows("", 1).await.unwrap(), rows[..1]);
    assert_eq!(s.projection_rows(&open.id, 10).await.unwrap(), rows[1..]);
    assert!(s.projection_rows(&closed.id, 10).await.unwrap().is_empty());
}

/// Commands batched together see each other: one idempotency key sent by
/// many at once creates once; two approvers' answers both count.
async fn commands_committed_together_see_each_other(s: S) {
    let two = s
        .execute(create(new_decision("scram.x", 2), None))
        .await
        .unwrap()
        .decision;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            let two = two.id.clone();
            tokio::spawn(async move {
                match i {
                    // Each confirms the context, so either may complete the quorum.
                    0 | 1 => {
                        let who = ["alice", "bob"][i];
                        let mut cmd = approve(&two, who);
                        if let Command::Act {
                            action:
                                Action::Answer {
                                    current_context_hash,
                                    ..
                                },
                            ..
                        } = &mut cmd
                        {
                            *current_context_hash = Some("h".repeat(64));
                        }
                        s.execute(cmd).await
                    }
                    _ => {
                        s.execute(create(new_decision("deploy.prod", 1), idem("same", "f")))
                            .await
                    }
                }
            })
        })
        .collect();
    let mut created = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let applied = t.await.unwrap().unwrap();
        if i >= 2 {
            created.push((applied.decision.id, applied.fresh));
        }
    }
    assert_eq!(created.iter().filter(|(_, fresh)| *fresh).count(), 1);
    assert!(created.iter().all(|(id, _)| *id == created[0].0));
    let d = s.get(&two.id).await.unwrap().unwrap();
    assert_eq!(d.status, Status::Approved);
    assert_eq!(d.answers.len(), 2);
    let report = witness::audit::verify(s.as_ref()).await.unwrap();
    assert_eq!(report.problem, None);
    assert_eq!((report.events, report.decisions), (1 + 2 + 1 + 1, 2));
}

async fn gauges_count_open_decisions_and_pending_deliveries(s: S) {
    let empty = s.gauges().await.unwrap();
    assert_eq!(empty, witness::store::StoreGauges::default());
    let first = ask(&s, "a.x").await;
    let second = ask(&s, "a.y").await;
    let paged = s
        .execute(Command::Create {
            idem: None,
            new: new_decision("a.z", 1),
            policy: Policy {
                webhook_surfaces: vec!["pager".into()],
                ..Policy::default()
            },
        })
        .await
        .unwrap()
        .decision;
    s.execute(approve(&first.id, "alice")).await.unwrap();
    let g = s.gauges().await.unwrap();
    assert_eq!(g.open_decisions, 2, "the approved one is not open");
    assert_eq!(
        g.oldest_open_created_at,
        Some(second.created_at),
        "the oldest still open"
    );
    assert_eq!(g.outbox_pending, 1, "one CREATED delivery for {}", paged.id);
    let now = witness::store::now_micros();
    let claimed = s.outbox_claim(now + 1, 1_000_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    s.outbox_complete(claimed[0].id, Delivery::Delivered { at: now })
        .await
        .unwrap();
    let g = s.gauges().await.unwrap();
    assert_eq!((g.open_decisions, g.outbox_pending), (2, 0));
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            async fn store() -> (S, tempfile::TempDir) {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("w.db");
                let s = witness::store::sqlite::SqliteStore::open(path.to_str().unwrap()).await.unwrap();
                (Arc::new(s), dir)
            }
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (s, _dir) = store().await;
                super::$name(s).await;
            })*
        }
        mod postgres {
            use super::*;
            async fn store() -> S {
                let url = PgCluster::shared().fresh_database().await;
                let opts = witness::store::postgres::PgOptions::default();
                Arc::new(witness::store::postgres::PostgresStore::open(&url, &opts).await.unwrap())
            }
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(store().await).await;
            })*
        }
    };
}

conformance!(
    create_get_and_read_events,
    idempotent_creates_and_conflicts,
    refusals_write_nothing_and_answers_close,
    refusals_inside_a_concurrent_burst_leave_the_others_whole,
    idempotent_answers_return_the_first_result,
    a_refused_request_keeps_its_refusal,
    pages_filter_by_status_in_id_order,
    snapshot_is_the_open_set_at_the_head,
    the_chain_is_valid_and_gap_free_under_concurrency,
    due_timers_are_claimed_for_a_lease,
    gauges_count_open_decisions_and_pending_deliveries,
    outbox_claim_leases_in_id_order_up_to_the_limit,
    outbox_complete_records_delivered_retry_and_dead,
    outbox_list_filters_by_status_newest_first,
    outbox_retry_requeues_one_or_every_dead,
    the_slack_lane_is_claimed_apart_and_keeps_its_thread,
    receipts_are_stored_for_closed_decisions_in_id_order,
    the_log_reads_by_position_and_by_decision,
    projection_rows_are_the_columns_as_written,
    commands_committed_together_see_each_other,
);
