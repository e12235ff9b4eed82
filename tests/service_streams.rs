//! The service-level stream API (`Witness::subscribe` / `Witness::watch`)
//! over a real SQLite store and the real hub, without a protocol in front:
//! what every protocol layer (gRPC, Connect, the console) relies on.

use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use witness::auth::Principal;
use witness::service::{
    AskInput, DomainStream, ServiceError, StreamItem, SubscribeQuery, Visibility, Witness,
};

async fn witness(dir: &tempfile::TempDir, extra: &str) -> Arc<Witness> {
    let path = dir.path().join("witness.toml");
    let db = dir.path().join("w.db");
    std::fs::write(
        &path,
        format!("[store]\nurl = \"sqlite://{}\"\n{extra}", db.display()),
    )
    .unwrap();
    let config = witness::config::Config::load(Some(&path)).unwrap();
    witness::server::build(&config).await.unwrap()
}

fn who(name: &str, roles: &[&str]) -> Principal {
    Principal::dev(name, roles.iter().map(ToString::to_string).collect())
}

async fn ask(w: &Witness, by: &Principal, roles: &[&str]) -> (String, u64) {
    let out = w
        .ask(
            by,
            AskInput {
                kind: "deploy".into(),
                input: serde_json::json!({"service": "api"}),
                authorized_roles: roles.iter().map(ToString::to_string).collect(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    (out.decision.id, out.decision.last_sequence)
}

/// The next item, within a deadline.
async fn next(s: &mut DomainStream) -> Result<StreamItem, ServiceError> {
    tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("no stream item within 10 s")
        .expect("the stream ended")
}

fn event(item: Result<StreamItem, ServiceError>) -> Arc<witness::hub::Published> {
    match item {
        Ok(StreamItem::Event(p)) => p,
        other => panic!("expected an event, got {other:?}"),
    }
}

#[tokio::test]
async fn subscribers_share_one_event_and_its_encoding_and_never_see_others_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let w = witness(&dir, "").await;
    let (alice, carol, bob) = (
        who("alice", &["sre"]),
        who("carol", &["sre"]),
        who("bob", &["dba"]),
    );
    let mut a = w
        .subscribe(&alice, SubscribeQuery::default())
        .await
        .unwrap();
    let mut c = w
        .subscribe(&carol, SubscribeQuery::default())
        .await
        .unwrap();
    // Polled once with nothing to read, both wait on the hub (events read
    // back from the log while catching up are each subscriber's own).
    for s in [&mut a, &mut c] {
        let idle = tokio::time::timeout(Duration::from_millis(300), s.next()).await;
        assert!(idle.is_err(), "nothing to receive yet");
    }
    let (hidden, _) = ask(&w, &bob, &["dba"]).await;
    let (shown, _) = ask(&w, &bob, &["sre"]).await;
    // The first item either receives is the second decision: the first was
    // filtered out, by the one visibility rule.
    let (pa, pc) = (event(next(&mut a).await), event(next(&mut c).await));
    assert_eq!(pa.decision.id, shown);
    assert!(
        Arc::ptr_eq(&pa, &pc),
        "both subscribers hold the same event"
    );
    let (ba, bc) = (
        witness::api::streams::encoded(&StreamItem::Event(pa.clone())),
        witness::api::streams::encoded(&StreamItem::Event(pc)),
    );
    assert_eq!(ba.as_ptr(), bc.as_ptr(), "encoded once, shared");
    // Watching or reading a decision one may not see is NOT_FOUND, as for
    // one that does not exist.
    assert!(matches!(
        w.watch(&alice, hidden.clone()).await.err(),
        Some(ServiceError::NotFound(_))
    ));
    assert!(matches!(
        w.read(&Visibility::v01(alice.clone(), false), &hidden)
            .await,
        Err(ServiceError::NotFound(_))
    ));
    // v0.1.1's dev-mode rule on /v1/ sees everything; nothing else does.
    assert_eq!(
        w.read(&Visibility::v01(alice, true), &hidden)
            .await
            .unwrap()
            .id,
        hidden
    );
    assert!(w.get(&bob, &hidden).await.is_ok(), "the asker sees its own");
}

#[tokio::test]
async fn a_lagging_subscriber_is_told_where_to_resume_and_resuming_there_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let w = witness(&dir, "[streams]\nring = 4\n").await;
    let op = who("op", &["sre"]);
    let mut slow = w.subscribe(&op, SubscribeQuery::default()).await.unwrap();
    let mut fast = w.subscribe(&op, SubscribeQuery::default()).await.unwrap();
    // Polled once with nothing to read, the slow one has caught up with
    // the log and waits on the hub's ring (where lagging can happen).
    let idle = tokio::time::timeout(Duration::from_millis(300), slow.next()).await;
    assert!(idle.is_err(), "nothing to receive yet");
    let (_, first) = ask(&w, &op, &["sre"]).await;
    assert_eq!(event(next(&mut slow).await).event.sequence, first);
    // Ten more while the slow one reads nothing: more than the ring holds.
    let mut last = first;
    for _ in 0..10 {
        last = ask(&w, &op, &["sre"]).await.1;
    }
    // The fast one keeps up with every event (and shows they are published).
    let mut seen = 0;
    while seen < last {
        seen = event(next(&mut fast).await).event.sequence;
    }
    let err = next(&mut slow).await.unwrap_err();
    let ServiceError::Lagged { resume_after, ring } = err else {
        panic!("expected Lagged, got {err:?}");
    };
    assert_eq!((resume_after, ring), (first, 4));
    let status = tonic::Status::from(ServiceError::Lagged { resume_after, ring });
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(
        status
            .message()
            .contains(&format!("after_sequence = {first}")),
        "{}",
        status.message()
    );
    // Resuming exactly there: every later event once, in order.
    let q = SubscribeQuery {
        after: Some(resume_after),
        ..Default::default()
    };
    let mut resumed = w.subscribe(&op, q).await.unwrap();
    for want in first + 1..=last {
        assert_eq!(event(next(&mut resumed).await).event.sequence, want);
    }
    // A resume point this log never reached is refused, not waited for.
    let q = SubscribeQuery {
        after: Some(last + 1000),
        ..Default::default()
    };
    let err = w.subscribe(&op, q).await.err();
    assert!(
        matches!(err, Some(ServiceError::BeyondHead { after, head }) if after == last + 1000 && head == last),
        "{err:?}"
    );
}

#[tokio::test]
async fn watch_starts_with_the_state_and_ends_after_the_terminal_event() {
    let dir = tempfile::tempdir().unwrap();
    let w = witness(&dir, "").await;
    let op = who("op", &["sre"]);
    let (id, created) = ask(&w, &op, &["sre"]).await;
    let mut s = w.watch(&op, id.clone()).await.unwrap();
    match next(&mut s).await {
        Ok(StreamItem::Snapshot(d)) => {
            assert_eq!((d.id.as_str(), d.last_sequence), (id.as_str(), created));
        }
        other => panic!("expected the state first, got {other:?}"),
    }
    w.cancel(&op, id.clone(), "not needed".into())
        .await
        .unwrap();
    let p = event(next(&mut s).await);
    assert!(p.decision.status.is_terminal());
    let end = tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .unwrap();
    assert!(end.is_none(), "the watch ends after the terminal event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_stream_starts_after_every_write_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let w = witness(&dir, "").await;
    let (svc, sre) = (who("svc", &[]), who("console", &["sre"]));
    // The hub learns of a commit a read after the writer acknowledges it;
    // a stream opened in that window must still not replay the old write.
    for round in 0..50 {
        let (before, _) = ask(&w, &svc, &["sre"]).await;
        let mut s = w.subscribe(&sre, SubscribeQuery::default()).await.unwrap();
        let (after, _) = ask(&w, &svc, &["sre"]).await;
        let first = event(next(&mut s).await);
        assert_eq!(
            first.event.decision_id, after,
            "round {round}: the stream replayed {before}, acknowledged before it opened"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_joining_a_busy_log_with_no_one_else_listening_miss_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let w = witness(&dir, "").await;
    let op = who("op", &["sre"]);
    // Asks keep committing while subscribers come and go: between them the
    // hub has no receiver and skips the events it would publish to no one.
    let writer = {
        let (w, op) = (w.clone(), op.clone());
        tokio::spawn(async move {
            loop {
                ask(&w, &op, &["sre"]).await;
            }
        })
    };
    for round in 0..20 {
        let mut s = w.subscribe(&op, SubscribeQuery::default()).await.unwrap();
        let mut prev = event(next(&mut s).await).event.sequence;
        for _ in 0..30 {
            let seq = event(next(&mut s).await).event.sequence;
            assert_eq!(
                seq,
                prev + 1,
                "round {round}: a gap or a repeat after {prev}"
            );
            prev = seq;
        }
    }
    // A subscriber that lingers with nothing new to read is woken by the
    // next commit, not left behind by the skipped ones.
    writer.abort();
    let _ = writer.await;
    let mut s = w.subscribe(&op, SubscribeQuery::default()).await.unwrap();
    let (_, seq) = ask(&w, &op, &["sre"]).await;
    // (An ask aborted in flight may still commit just before it.)
    while event(next(&mut s).await).event.sequence < seq {}
}
