//! Replay to an identical state hash (issue 19): the same command sequence,
//! at the same times, written through the real SQLite and PostgreSQL stores
//! gives the same log and the same state hash from `witness audit verify`;
//! two replicas on one PostgreSQL report the same hash.

mod common;

use common::pg::PgCluster;
use common::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use witness::core::{
    canonical, Action, Actor, EscalationLevel, NewDecision, OnTimeout, Policy, Unless, Verdict,
};
use witness::store::{Clock, Command, Idempotency, Store};

/// Runs `witness audit verify --json` on the store at `url`.
fn verify_json(url: &str) -> (i32, Value) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("witness.toml");
    std::fs::write(&cfg, format!("[store]\nurl = \"{url}\"\n")).unwrap();
    audit_verify_json(&cfg, None)
}

fn id(n: u32) -> String {
    format!("01900000-0000-7000-8000-{n:012}")
}

fn new(n: u32, approvals: u32, ctx: Option<&Value>, timeout_s: Option<i64>) -> NewDecision {
    NewDecision {
        id: id(n),
        kind: "deploy.prod".into(),
        // Floats, big integers, unicode keys and escapes: the canonical
        // encoding must not depend on the backend.
        input: json!({"n": n, "ratio": 0.1, "big": 9_007_199_254_740_993u64, "ﬁ": "\u{2028}", "10": [1e21, -0.0]}),
        response_schema: None,
        authorized_roles: vec!["sre".into()],
        surfaces: vec!["console".into(), "pager".into()],
        required_approvals: approvals,
        context_hash: ctx.map(canonical::context_hash),
        timeout_us: timeout_s.map(|s| s * 1_000_000),
        asked_by: "svc".into(),
    }
}

fn create(new: NewDecision, policy: Policy) -> Command {
    Command::Create {
        idem: None,
        new,
        policy,
    }
}

fn act(n: u32, action: Action) -> Command {
    Command::Act {
        decision_id: id(n),
        idem: None,
        action,
    }
}

fn answer(n: u32, who: &str, verdict: Verdict, ctx: Option<&Value>) -> Command {
    act(
        n,
        Action::Answer {
            actor: Actor::new(who, vec!["sre".into()]),
            verdict,
            answer: json!({"why": who}),
            rationale: format!("{who} looked"),
            current_context_hash: ctx.map(canonical::context_hash),
            current_roles: None,
        },
    )
}

fn svc() -> Actor {
    Actor::new("svc", vec![])
}

/// A script touching every event type, with the seconds to advance the
/// clock before each command.
fn script() -> Vec<(i64, Command)> {
    let ctx = json!({"replicas": 3});
    let other = json!({"replicas": 4});
    let escalating = Policy {
        matched_kind: "deploy.*".into(),
        ack_window_us: 2_000_000,
        fallback: vec!["pager".into()],
        escalation: vec![
            EscalationLevel {
                after_us: 4_000_000,
                webhooks: vec!["l1".into()],
                unless: Unless::Acked,
            },
            EscalationLevel {
                after_us: 6_000_000,
                webhooks: vec!["l2".into()],
                unless: Unless::Answered,
            },
        ],
        notify_outcome: vec!["slack".into()],
        ..Policy::default()
    };
    let approving = Policy {
        on_timeout: OnTimeout::Approve,
        timeout_answer: json!({"auto": true}),
        timeout_us: Some(3_000_000),
        ..Policy::default()
    };
    let idem = Some(Idempotency {
        scope: "svc".into(),
        request_id: "retry-1".into(),
        fingerprint: "f".into(),
    });
    vec![
        (1, create(new(1, 1, None, None), Policy::default())),
        (1, answer(1, "alice", Verdict::Approve, None)),
        (
            1,
            create(new(2, 2, Some(&ctx), Some(600)), Policy::default()),
        ),
        (1, answer(2, "alice", Verdict::Approve, None)),
        (
            1,
            act(
                2,
                Action::ReportContext {
                    actor: svc(),
                    context_hash: canonical::context_hash(&ctx),
                },
            ),
        ),
        (1, answer(2, "bob", Verdict::Approve, None)),
        (1, create(new(3, 1, None, None), Policy::default())),
        (
            1,
            act(
                3,
                Action::Ack {
                    actor: Actor::new("alice", vec!["sre".into()]),
                    surface: "console".into(),
                },
            ),
        ),
        (1, answer(3, "bob", Verdict::Reject, None)),
        (1, create(new(4, 1, None, None), Policy::default())),
        (
            1,
            act(
                4,
                Action::Cancel {
                    actor: svc(),
                    reason: "not needed".into(),
                },
            ),
        ),
        (1, create(new(5, 2, Some(&ctx), None), Policy::default())),
        (1, answer(5, "alice", Verdict::Approve, Some(&other))),
        (1, create(new(6, 1, None, Some(5)), Policy::default())),
        (10, act(6, Action::Expire)),
        (1, create(new(7, 1, None, None), escalating)),
        (3, act(7, Action::FireFallback)),
        (4, act(7, Action::FireFallback)),
        (1, create(new(8, 1, None, None), approving)),
        (4, act(8, Action::Expire)),
        // Refused (self-approval), then an idempotent create and its retry.
        (1, answer(1, "svc", Verdict::Approve, None)),
        (
            1,
            Command::Create {
                idem: idem.clone(),
                new: new(9, 1, None, None),
                policy: Policy::default(),
            },
        ),
        (
            1,
            Command::Create {
                idem,
                new: new(9, 1, None, None),
                policy: Policy::default(),
            },
        ),
        (1, answer(9, "carol", Verdict::Approve, None)),
    ]
}

/// Runs the script through `store`, setting `now` before each command.
/// Returns each command's result, for comparing the two backends.
async fn run(store: &dyn Store, now: &AtomicI64) -> Vec<String> {
    let mut results = Vec::new();
    for (advance, cmd) in script() {
        now.fetch_add(advance * 1_000_000, Ordering::SeqCst);
        results.push(match store.execute(cmd).await {
            Ok(a) => format!(
                "{:?} {} fresh={} events={}",
                a.outcome,
                a.decision.status.as_str(),
                a.fresh,
                a.events.len()
            ),
            Err(e) => format!("error: {e}"),
        });
    }
    results
}

fn clock_at(start: i64) -> (Arc<AtomicI64>, Clock) {
    let now = Arc::new(AtomicI64::new(start));
    let read = now.clone();
    (now, Arc::new(move || read.load(Ordering::SeqCst)))
}

const START: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

#[tokio::test]
async fn the_same_commands_give_the_same_state_hash_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite_path = dir.path().join("replay.db");
    let sqlite_url = format!("sqlite://{}", sqlite_path.display());
    let pg_url = PgCluster::shared().fresh_database().await;

    let (now, clock) = clock_at(START);
    let sqlite =
        witness::store::sqlite::SqliteStore::open_with_clock(sqlite_path.to_str().unwrap(), clock)
            .await
            .unwrap();
    let on_sqlite = run(&sqlite, &now).await;
    drop(sqlite);

    let (now, clock) = clock_at(START);
    let pg = witness::store::postgres::PostgresStore::open_with_clock(
        &pg_url,
        &Default::default(),
        clock,
    )
    .await
    .unwrap();
    let on_pg = run(&pg, &now).await;
    drop(pg);
    assert_eq!(on_sqlite, on_pg, "the backends answered differently");
    // The script reached every terminal status, the timers and a refusal.
    for expected in [
        "Closed APPROVED",
        "Closed REJECTED",
        "Done CANCELLED",
        "ContextChanged CONTEXT_CHANGED",
        "Closed EXPIRED",
        "fresh=false",
        "error: the decision's asker may not answer it",
    ] {
        assert!(
            on_sqlite
                .iter()
                .any(|r| r.starts_with(expected) || r.contains(expected)),
            "{expected} not in {on_sqlite:#?}"
        );
    }

    let (code_s, doc_s) = verify_json(&sqlite_url);
    let (code_p, doc_p) = verify_json(&pg_url);
    assert_eq!(code_s, 0, "{doc_s}");
    assert_eq!(code_p, 0, "{doc_p}");
    for doc in [&doc_s, &doc_p] {
        assert_eq!(doc["ok"], true, "{doc}");
        assert_eq!(doc["decisions"], 9, "{doc}");
        assert_eq!(doc["state_hash_equal"], true, "{doc}");
        assert_eq!(
            doc["state_hash_replayed"], doc["state_hash_stored"],
            "{doc}"
        );
        assert!(doc["problem"].is_null(), "{doc}");
    }
    // Same log, same state: byte for byte across the backends.
    assert_eq!(doc_s["head_hash"], doc_p["head_hash"]);
    assert_eq!(doc_s["events"], doc_p["events"]);
    assert_eq!(doc_s["state_hash_stored"], doc_p["state_hash_stored"]);
    let hash = doc_s["state_hash_stored"].as_str().unwrap();
    assert_eq!(hash.len(), 64);
    assert_ne!(
        hash,
        canonical::sha256_hex(b""),
        "the projection is not empty"
    );
}

#[tokio::test]
async fn two_replicas_on_one_postgres_report_the_same_state_hash() {
    let url = PgCluster::shared().fresh_database().await;
    let a = Server::start_on(&url, "");
    let b = Server::start_on(&url, "");
    let mut asker_a = a.client("svc", &[]).await;
    let mut asker_b = b.client("svc", &[]).await;
    let mut alice_a = a.client("alice", &["sre"]).await;
    let mut bob_b = b.client("bob", &["sre"]).await;
    for i in 0..4 {
        let asker = if i % 2 == 0 {
            &mut asker_a
        } else {
            &mut asker_b
        };
        let d = asker
            .ask(ask("deploy.prod", &["sre"], 1, None))
            .await
            .unwrap()
            .into_inner()
            .decision
            .unwrap();
        match i {
            0 => drop(alice_a.answer(approve(&d.id, "ok")).await.unwrap()),
            1 => drop(bob_b.answer(reject(&d.id, "no")).await.unwrap()),
            2 => drop(
                asker_a
                    .cancel(proto::CancelRequest {
                        decision_id: d.id.clone(),
                        reason: "moot".into(),
                    })
                    .await
                    .unwrap(),
            ),
            _ => {} // stays open
        }
    }
    let verify_with = |s: &Server| audit_verify_json(&s.config_path(), None);
    let (code_a, doc_a) = verify_with(&a);
    let (code_b, doc_b) = verify_with(&b);
    assert_eq!(code_a, 0, "{doc_a}");
    assert_eq!(code_b, 0, "{doc_b}");
    assert_eq!(doc_a["decisions"], 4);
    assert_eq!(doc_a["state_hash_replayed"], doc_a["state_hash_stored"]);
    assert_eq!(doc_a["state_hash_stored"], doc_b["state_hash_stored"]);
    assert_eq!(doc_a["state_hash_replayed"], doc_b["state_hash_replayed"]);
}
