//! One conformance suite for every `Store` backend: the embedded SQLite
//! store on a temporary file and PostgreSQL on a private real server.

mod common;

use common::pg::PgCluster;
use serde_json::json;
use std::sync::Arc;
use witness::core::{Action, Actor, NewDecision, Outcome, Policy, Status, Verdict};
use witness::store::{Command, Delivery, Idempotency, PageQuery, Store, StoreError, TimerKind};

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

async fn due_timers_fire_once(s: S) {
    let mut new = new_decision("expiring.x", 1);
    new.timeout_us = Some(1);
    let policy = Policy {
        ack_window_us: 1,
        ..Policy::default()
    };
    let d = s
        .execute(Command::Create {
            idem: None,
            new,
            policy,
        })
        .await
        .unwrap()
        .decision;
    let later = d.created_at + 10;
    let mut due = s.due_timers(later, 10).await.unwrap();
    due.sort_by_key(|t| t.kind == TimerKind::Fallback);
    assert_eq!(
        due.first().map(|t| (t.decision_id.clone(), t.kind)),
        Some((d.id.clone(), TimerKind::Expire))
    );
    let cmd = Command::Act {
        decision_id: d.id.clone(),
        idem: None,
        action: Action::Expire,
    };
    assert_eq!(
        s.execute(cmd.clone()).await.unwrap().decision.status,
        Status::Expired
    );
    let again = s.execute(cmd).await.unwrap();
    assert!(again.events.is_empty(), "a fired timer does not fire again");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert!(s
        .due_timers(witness::store::now_micros() + 10_000_000, 10)
        .await
        .unwrap()
        .is_empty());
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
    pages_filter_by_status_in_id_order,
    snapshot_is_the_open_set_at_the_head,
    the_chain_is_valid_and_gap_free_under_concurrency,
    due_timers_fire_once,
    gauges_count_open_decisions_and_pending_deliveries,
);
