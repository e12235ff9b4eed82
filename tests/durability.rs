//! Races between operators and crashes: exactly one outcome, nothing lost.

mod common;

use common::*;
use serde_json::json;
use std::collections::HashMap;
use witness::store::Store;

fn terminal_events(db: &std::path::Path) -> HashMap<String, i64> {
    let conn = open_db(db);
    let mut stmt = conn
        .prepare(
            "SELECT decision_id, COUNT(*) FROM events
             WHERE type IN ('APPROVED','REJECTED','CANCELLED','EXPIRED','CONTEXT_CHANGED') GROUP BY decision_id",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operators_racing_to_complete_a_quorum_produce_exactly_one_outcome() {
    let s = Server::start("");
    let mut asker = s.client("svc", &[]).await;
    let mut first = s.client("alice", &["sre"]).await;
    let racers: Vec<_> =
        futures::future::join_all(["bob", "carol", "dave"].map(|n| s.client(n, &["sre"]))).await;
    const ROUNDS: usize = 40;
    let ctx = json!({"epoch": 7});
    let mut ids = Vec::new();
    for round in 0..ROUNDS {
        let d = asker
            .ask(ask("scram.readonly", &["sre"], 2, Some(ctx.clone())))
            .await
            .unwrap()
            .into_inner();
        let id = d.decision.unwrap().id;
        first.answer(approve(&id, "first")).await.unwrap();
        // Every other round one racer rejects while the others approve.
        let tasks = racers.iter().enumerate().map(|(i, c)| {
            let mut c = c.clone();
            let req = if round % 2 == 1 && i == 2 {
                proto::AnswerRequest {
                    current_context: Some(json(ctx.clone())),
                    ..reject(&id, "race")
                }
            } else {
                proto::AnswerRequest {
                    current_context: Some(json(ctx.clone())),
                    ..approve(&id, "race")
                }
            };
            tokio::spawn(async move { c.answer(req).await })
        });
        let results = futures::future::join_all(tasks).await;
        let closed = results
            .into_iter()
            .map(|r| r.unwrap())
            .filter(|r| match r {
                Ok(resp) => resp.get_ref().outcome == proto::AnswerOutcome::Closed as i32,
                Err(e) => {
                    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{}", e.message());
                    false
                }
            })
            .count();
        assert_eq!(
            closed, 1,
            "round {round}: exactly one answer closes the decision"
        );
        ids.push(id);
    }
    let terminal = terminal_events(&s.db_path());
    for id in &ids {
        assert_eq!(
            terminal.get(id),
            Some(&1),
            "decision {id} has exactly one terminal event"
        );
    }
    let out = std::process::Command::new(bin())
        .args(["audit", "verify", "--config"])
        .arg(s.config_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chain valid: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_right_after_acknowledged_writes_loses_none_of_them() {
    let mut s = Server::start("");
    let asker = s.client("svc", &[]).await;
    let alice = s.client("alice", &["sre"]).await;
    // Concurrent writers, so writes land in shared group commits.
    let tasks = (0..8).map(|_| {
        let (mut asker, mut alice) = (asker.clone(), alice.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for _ in 0..25 {
                let d = asker
                    .ask(ask("deploy.prod", &["sre"], 1, None))
                    .await
                    .unwrap()
                    .into_inner();
                let id = d.decision.unwrap().id;
                let r = alice
                    .answer(approve(&id, "ship it"))
                    .await
                    .unwrap()
                    .into_inner();
                acked.push((id, r.decision.unwrap().status));
            }
            acked
        })
    });
    let acked: Vec<(String, i32)> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    s.kill9();
    s.restart();
    let mut reader = s.client("alice", &["sre"]).await;
    for (id, status) in &acked {
        let d = reader
            .get_decision(proto::GetDecisionRequest {
                decision_id: id.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("{id} lost after kill -9: {e}"))
            .into_inner()
            .decision
            .unwrap();
        assert_eq!(d.status, *status);
        assert_eq!(d.status, proto::Status::Approved as i32);
    }
    assert_eq!(count_events(&s.db_path()), 3 * acked.len() as i64);

    // Replaying every event through the core rebuilds identical rows.
    s.kill9();
    let store = witness::store::sqlite::SqliteStore::open(s.db_path().to_str().unwrap())
        .await
        .unwrap();
    let report = witness::audit::verify(&store).await.unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(report.decisions, acked.len());
    let events = store.events_after(0, 1_000_000).await.unwrap();
    let mut replayed: HashMap<String, witness::core::Decision> = HashMap::new();
    for e in &events {
        let state = replayed.remove(&e.decision_id);
        let d = witness::core::apply(state, e).unwrap();
        replayed.insert(d.id.clone(), d);
    }
    let rows = store
        .page(&witness::store::PageQuery {
            after_id: None,
            statuses: vec![],
            limit: 100_000,
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), replayed.len());
    for row in rows {
        assert_eq!(
            Some(&row),
            replayed.get(&row.id),
            "replayed state equals the stored row"
        );
    }
}
