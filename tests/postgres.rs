//! The real binary on PostgreSQL: several replicas on one database, races
//! between replicas, and a database outage.

mod common;

use common::pg::PgCluster;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tonic::Code;

async fn next(s: &mut tonic::Streaming<proto::StreamDecisionsResponse>) -> proto::DecisionEvent {
    tokio::time::timeout(Duration::from_secs(30), s.message())
        .await
        .expect("an event in time")
        .expect("stream ok")
        .expect("stream open")
        .event
        .unwrap()
}

fn audit_ok(url: &str, s: &Server) {
    let out = std::process::Command::new(bin())
        .args(["audit", "verify", "--config"])
        .arg(s.config_path())
        .env("WITNESS__STORE__URL", url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "audit verify: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_on_one_replica_sees_everything_done_on_another_in_order() {
    let url = PgCluster::shared().fresh_database().await;
    let a = Server::start_on(&url, "");
    let b = Server::start_on(&url, "");
    let mut console = b.client("console", &["sre"]).await;
    let mut st = console
        .stream_decisions(proto::StreamDecisionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut asker = a.client("svc", &[]).await;
    let mut alice = a.client("alice", &["sre"]).await;
    for _ in 0..20 {
        let d = asker
            .ask(ask("deploy.prod", &["sre"], 1, None))
            .await
            .unwrap()
            .into_inner()
            .decision
            .unwrap();
        alice.answer(approve(&d.id, "ok")).await.unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 60 {
        seen.push(next(&mut st).await.sequence);
    }
    assert_eq!(
        seen,
        (1..=60).collect::<Vec<u64>>(),
        "in order, no gaps, no duplicates"
    );
    audit_ok(&url, &a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operators_on_two_replicas_racing_a_quorum_get_one_outcome_and_the_chain_stays_valid() {
    let url = PgCluster::shared().fresh_database().await;
    let a = Server::start_on(&url, "");
    let b = Server::start_on(&url, "");
    let mut asker = a.client("svc", &[]).await;
    let mut first = b.client("alice", &["sre"]).await;
    let ctx = json!({"epoch": 1});
    for round in 0..20 {
        let d = asker
            .ask(ask("scram.x", &["sre"], 2, Some(ctx.clone())))
            .await
            .unwrap()
            .into_inner();
        let id = d.decision.unwrap().id;
        first.answer(approve(&id, "first")).await.unwrap();
        let mut on_a = a.client("bob", &["sre"]).await;
        let mut on_b = b.client("carol", &["sre"]).await;
        let req = proto::AnswerRequest {
            current_context: Some(json(ctx.clone())),
            ..approve(&id, "race")
        };
        let (ra, rb) = tokio::join!(on_a.answer(req.clone()), on_b.answer(req));
        let closed = [ra, rb]
            .into_iter()
            .filter(|r| match r {
                Ok(resp) => resp.get_ref().outcome == proto::AnswerOutcome::Closed as i32,
                Err(e) => {
                    assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.message());
                    false
                }
            })
            .count();
        assert_eq!(closed, 1, "round {round}");
    }
    // Concurrent writers on both replicas keep the sequence gap-free.
    let mut tasks = Vec::new();
    for s in [&a, &b] {
        for _ in 0..4 {
            let mut c = s.client("svc", &[]).await;
            tasks.push(tokio::spawn(async move {
                for _ in 0..15 {
                    c.ask(ask("deploy.prod", &["sre"], 1, None)).await.unwrap();
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    audit_ok(&url, &a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_lifecycle_works_unchanged_on_postgres() {
    let url = PgCluster::shared().fresh_database().await;
    let s = Server::start_on(&url, "");
    let mut asker = s.client("svc", &[]).await;
    let mut alice = s.client("alice", &["sre"]).await;
    let mut bob = s.client("bob", &["sre"]).await;
    let ctx = json!({"v": 1});
    let req = ask("scram.x", &["sre"], 2, Some(ctx.clone()));
    let d = asker.ask(req.clone()).await.unwrap().into_inner();
    assert!(
        !asker.ask(req).await.unwrap().into_inner().created,
        "idempotent on postgres too"
    );
    let id = d.decision.unwrap().id;
    alice.answer(approve(&id, "one")).await.unwrap();
    let err = alice.answer(approve(&id, "again")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = bob.answer(approve(&id, "two")).await.unwrap_err();
    assert!(err.message().contains("re-confirmed"));
    let rc = proto::ReportContextRequest {
        decision_id: id.clone(),
        context_snapshot: Some(json(ctx)),
    };
    asker.report_context(rc).await.unwrap();
    let r = bob.answer(approve(&id, "two")).await.unwrap().into_inner();
    assert_eq!(r.decision.unwrap().status, proto::Status::Approved as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_gives_unavailable_quickly_and_witness_recovers_without_a_restart() {
    let pg = PgCluster::start();
    let s = Server::start_on(&pg.url, "");
    let mut asker = s.client("svc", &[]).await;
    let mut acked = Vec::new();
    for _ in 0..5 {
        acked.push(
            asker
                .ask(ask("deploy.prod", &["sre"], 1, None))
                .await
                .unwrap()
                .into_inner()
                .decision
                .unwrap()
                .id,
        );
    }
    let mut console = s.client("console", &["sre"]).await;
    let mut st = console
        .stream_decisions(proto::StreamDecisionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut watch = asker
        .watch_decision(proto::WatchDecisionRequest {
            decision_id: acked[0].clone(),
        })
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap();

    pg.stop();
    let started = Instant::now();
    let err = asker
        .ask(ask("deploy.prod", &["sre"], 1, None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused quickly, not hung"
    );
    let err = asker
        .get_decision(proto::GetDecisionRequest {
            decision_id: acked[0].clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    for status in [
        tokio::time::timeout(Duration::from_secs(15), st.message())
            .await
            .expect("stream ends")
            .unwrap_err(),
        tokio::time::timeout(Duration::from_secs(15), watch.message())
            .await
            .expect("watch ends")
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
    }

    pg.start_again();
    let deadline = Instant::now() + Duration::from_secs(30);
    let d = loop {
        match asker.ask(ask("deploy.prod", &["sre"], 1, None)).await {
            Ok(r) => break r.into_inner().decision.unwrap(),
            Err(e) if e.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("witness did not recover: {e}"),
        }
    };
    for id in &acked {
        asker
            .get_decision(proto::GetDecisionRequest {
                decision_id: id.clone(),
            })
            .await
            .expect("nothing acknowledged lost");
    }
    // Streams work again, resuming where they stopped.
    let mut st = console
        .stream_decisions(proto::StreamDecisionsRequest {
            after_sequence: Some(5),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut st).await.decision.unwrap().id, d.id);
}

#[tokio::test]
async fn ids_with_nul_are_invalid_argument_not_internal() {
    let url = PgCluster::shared().fresh_database().await;
    let s = Server::start_on(&url, "");
    let mut alice = s.client("alice", &["sre"]).await;
    let err = alice
        .get_decision(proto::GetDecisionRequest {
            decision_id: "a\0b".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(
        err.message().starts_with("decision_id:"),
        "{}",
        err.message()
    );
    let req = proto::AskRequest {
        request_id: "r\0".into(),
        ..ask("nul.request", &["sre"], 1, None)
    };
    let err = alice.ask(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(
        err.message().starts_with("request_id:"),
        "{}",
        err.message()
    );
}

/// A statement PostgreSQL refuses for good (here a unique violation, from a
/// row written behind witness's back) is INTERNAL, which clients do not
/// retry; not UNAVAILABLE, and not "inconsistent data".
#[tokio::test]
async fn a_unique_violation_is_internal_not_unavailable_and_not_corrupt() {
    let url = PgCluster::shared().fresh_database().await;
    let s = Server::start_on(&url, "");
    let mut asker = s.client("svc", &[]).await;
    asker
        .ask(ask("deploy.prod", &["sre"], 1, None))
        .await
        .unwrap();
    let db = pg::connect(&url).await;
    // Take the next sequence number before witness does.
    db.batch_execute(
        "INSERT INTO events (sequence, decision_id, type, at, body, prev_hash, hash)
         SELECT sequence + 1, 'x', 'CREATED', 0, '{}', '', '' FROM chain",
    )
    .await
    .unwrap();
    let err = asker
        .ask(ask("deploy.prod", &["sre"], 1, None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{}", err.message());
    assert!(err.message().contains("23505"), "{}", err.message());
    assert!(
        !err.message().contains("inconsistent"),
        "not corrupt data: {}",
        err.message()
    );
    assert!(!witness::client::retryable(&err), "{}", err.message());
    // The statements after the failed one and COMMIT went out in the same
    // round trip: none of them took effect.
    async fn decisions(db: &tokio_postgres::Client) -> i64 {
        let row = db.query_one("SELECT COUNT(*) FROM decisions", &[]).await;
        row.unwrap().get(0)
    }
    assert_eq!(decisions(&db).await, 1, "the failed batch wrote no row");
    // The refusal left nothing behind: without the stray row, asks work,
    // on every pooled connection.
    db.batch_execute("DELETE FROM events WHERE decision_id = 'x'")
        .await
        .unwrap();
    for _ in 0..5 {
        asker
            .ask(ask("deploy.prod", &["sre"], 1, None))
            .await
            .unwrap();
    }
    assert_eq!(decisions(&db).await, 6);
}

/// A decision row that changed underneath the writer (here a trigger makes
/// the batch's UPDATE skip it) fails the batch before it commits: the
/// cancel is refused and neither its event nor the chain head is stored.
#[tokio::test]
async fn a_row_changed_underneath_fails_the_batch_before_it_commits() {
    let url = PgCluster::shared().fresh_database().await;
    let s = Server::start_on(&url, "");
    let mut asker = s.client("svc", &[]).await;
    let id = asker
        .ask(ask("deploy.prod", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap()
        .id;
    let db = pg::connect(&url).await;
    db.batch_execute(
        "CREATE FUNCTION skip_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
         CREATE TRIGGER skip_updates BEFORE UPDATE ON decisions
             FOR EACH ROW EXECUTE FUNCTION skip_row();",
    )
    .await
    .unwrap();
    /// The chain head and the number of events stored.
    async fn head(db: &tokio_postgres::Client) -> (i64, i64) {
        let sql = "SELECT sequence, (SELECT COUNT(*) FROM events) FROM chain";
        let row = db.query_one(sql, &[]).await.unwrap();
        (row.get(0), row.get(1))
    }
    let before = head(&db).await;
    let cancel = proto::CancelRequest {
        decision_id: id.clone(),
        reason: "changed my mind".into(),
    };
    let err = asker.cancel(cancel.clone()).await.unwrap_err();
    assert!(
        err.message().contains("changed underneath"),
        "{}",
        err.message()
    );
    assert_eq!(
        head(&db).await,
        before,
        "nothing of the batch was committed"
    );
    db.batch_execute("DROP TRIGGER skip_updates ON decisions")
        .await
        .unwrap();
    asker.cancel(cancel).await.unwrap();
    assert_eq!(head(&db).await.0, before.0 + 1);
}

/// After a batch, a replica keeps the next transaction open (chain row
/// locked) only while more writes come: once they stop, another writer
/// gets the lock at once. And while another writer holds it, witness's
/// next write waits for it rather than going around it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_lets_the_chain_lock_go_when_its_writes_stop() {
    let url = PgCluster::shared().fresh_database().await;
    let s = Server::start_on(&url, "");
    let mut asker = s.client("svc", &[]).await;
    for _ in 0..5 {
        asker
            .ask(ask("deploy.prod", &["sre"], 1, None))
            .await
            .unwrap();
    }
    let db = pg::connect(&url).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match db
            .batch_execute("BEGIN; SELECT 1 FROM chain FOR UPDATE NOWAIT")
            .await
        {
            Ok(()) => break,
            Err(e) => {
                db.batch_execute("ROLLBACK").await.unwrap();
                assert!(
                    Instant::now() < deadline,
                    "the chain lock is still held: {e}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    let pending =
        tokio::spawn(async move { asker.ask(ask("deploy.prod", &["sre"], 1, None)).await });
    let waited = tokio::time::timeout(Duration::from_millis(300), async {
        while !pending.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        waited.is_err(),
        "an Ask committed while another writer held the chain lock"
    );
    db.batch_execute("ROLLBACK").await.unwrap();
    let d = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("the Ask goes through once the lock is free")
        .unwrap()
        .unwrap()
        .into_inner();
    assert!(d.decision.is_some());
    let head: i64 = db
        .query_one("SELECT sequence FROM chain", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(head, 6, "six Asks, six events, no gap");
    audit_ok(&url, &s);
}
