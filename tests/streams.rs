//! StreamDecisions and WatchDecision over real gRPC against the real binary.

mod common;

use common::*;
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::Code;

type Events = tonic::Streaming<proto::StreamDecisionsResponse>;

async fn next(s: &mut Events) -> proto::DecisionEvent {
    tokio::time::timeout(Duration::from_secs(20), s.message())
        .await
        .expect("an event within 20s")
        .expect("stream ok")
        .expect("stream open")
        .event
        .expect("event")
}

fn kind_of(e: &proto::DecisionEvent) -> proto::EventType {
    proto::EventType::try_from(e.r#type).unwrap()
}

async fn subscribe(
    c: &mut witness::client::GrpcClient,
    req: proto::StreamDecisionsRequest,
) -> Events {
    c.stream_decisions(req).await.unwrap().into_inner()
}

#[tokio::test]
async fn snapshot_then_end_marker_then_live_events() {
    let s = Server::start("");
    let mut asker = s.client("svc", &[]).await;
    let a = asker
        .ask(ask("deploy.a", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    let b = asker
        .ask(ask("deploy.b", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    let closed = asker
        .ask(ask("deploy.c", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    let mut alice = s.client("alice", &["sre"]).await;
    alice.answer(approve(&closed.id, "ok")).await.unwrap();
    alice
        .ack_delivery(proto::AckDeliveryRequest {
            decision_id: b.id.clone(),
            surface: "console".into(),
        })
        .await
        .unwrap();

    let mut console = s.client("console", &["sre"]).await;
    let mut st = subscribe(
        &mut console,
        proto::StreamDecisionsRequest {
            include_open: true,
            ..Default::default()
        },
    )
    .await;
    let first = next(&mut st).await;
    let second = next(&mut st).await;
    assert!(first.snapshot && second.snapshot);
    assert_eq!(first.decision.as_ref().unwrap().id, a.id);
    assert_eq!(kind_of(&first), proto::EventType::Created);
    assert_eq!(first.sequence, 1);
    assert_eq!(second.decision.as_ref().unwrap().id, b.id);
    assert_eq!(
        kind_of(&second),
        proto::EventType::Delivered,
        "a snapshot event carries the latest event's type"
    );
    let end = next(&mut st).await;
    assert_eq!(kind_of(&end), proto::EventType::SnapshotEnd);
    assert!(end.decision.is_none());
    assert_eq!(end.sequence, 6, "the log position the snapshot shows");

    let c = asker
        .ask(ask("deploy.d", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    let live = next(&mut st).await;
    assert!(!live.snapshot);
    assert_eq!(live.sequence, 7);
    assert_eq!(kind_of(&live), proto::EventType::Created);
    assert_eq!(live.decision.unwrap().id, c.id);
    alice.answer(approve(&c.id, "ok")).await.unwrap();
    assert_eq!(kind_of(&next(&mut st).await), proto::EventType::Answered);
    let approved = next(&mut st).await;
    assert_eq!(kind_of(&approved), proto::EventType::Approved);
    assert_eq!(
        approved.decision.unwrap().status,
        proto::Status::Approved as i32
    );
}

#[tokio::test]
async fn streams_never_show_decisions_the_caller_may_not_see() {
    let s = Server::start("");
    let mut sre = s.client("console", &["sre"]).await;
    let mut st = subscribe(&mut sre, proto::StreamDecisionsRequest::default()).await;
    let mut filtered = subscribe(
        &mut sre,
        proto::StreamDecisionsRequest {
            kinds: vec!["deploy.*".into()],
            surfaces: vec!["pager".into()],
            ..Default::default()
        },
    )
    .await;
    let mut asker = s.client("svc", &[]).await;
    asker.ask(ask("db.drop", &["dba"], 1, None)).await.unwrap();
    asker.ask(ask("scram.x", &["sre"], 1, None)).await.unwrap();
    let paged = proto::AskRequest {
        surfaces: vec!["pager".into()],
        ..ask("deploy.x", &["sre"], 1, None)
    };
    asker.ask(paged).await.unwrap();
    let e = next(&mut st).await;
    assert_eq!(
        e.decision.unwrap().kind,
        "scram.x",
        "the dba decision never reaches an sre console"
    );
    assert_eq!(next(&mut st).await.decision.unwrap().kind, "deploy.x");
    assert_eq!(
        next(&mut filtered).await.decision.unwrap().kind,
        "deploy.x",
        "kind and surface filters"
    );
    // The asker sees its own decisions whatever its roles.
    let mut own = subscribe(
        &mut asker,
        proto::StreamDecisionsRequest {
            after_sequence: None,
            include_open: true,
            ..Default::default()
        },
    )
    .await;
    let kinds: Vec<String> = vec![
        next(&mut own).await,
        next(&mut own).await,
        next(&mut own).await,
    ]
    .into_iter()
    .map(|e| e.decision.unwrap().kind)
    .collect();
    assert_eq!(kinds, ["db.drop", "scram.x", "deploy.x"]);
    let err = sre
        .stream_decisions(proto::StreamDecisionsRequest {
            kinds: vec!["[".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resuming_after_dropped_connections_under_concurrent_writes_loses_and_repeats_nothing() {
    let s = Server::start("");
    // Live from before the first write; every later connection resumes.
    let mut console = s.client("console", &["sre"]).await;
    let mut first = Some(subscribe(&mut console, proto::StreamDecisionsRequest::default()).await);
    let mut writers = Vec::new();
    for _ in 0..3 {
        let (mut asker, mut alice) = (
            s.client("svc", &[]).await,
            s.client("alice", &["sre"]).await,
        );
        writers.push(tokio::spawn(async move {
            for _ in 0..60 {
                let d = asker
                    .ask(ask("deploy.prod", &["sre"], 1, None))
                    .await
                    .unwrap()
                    .into_inner();
                alice
                    .answer(approve(&d.decision.unwrap().id, "ok"))
                    .await
                    .unwrap();
            }
        }));
    }
    let mut seen: Vec<u64> = Vec::new();
    let mut after = 0;
    // Read a few events per connection, then drop it and resume.
    let mut done = false;
    while !done {
        let mut st = match first.take() {
            Some(st) => st,
            None => {
                let req = proto::StreamDecisionsRequest {
                    after_sequence: Some(after),
                    ..Default::default()
                };
                subscribe(&mut console, req).await
            }
        };
        for _ in 0..17 {
            let e = next(&mut st).await;
            seen.push(e.sequence);
            after = e.sequence;
            if after == 3 * 60 * 3 {
                done = true;
                break;
            }
        }
        drop(st);
    }
    for w in writers {
        w.await.unwrap();
    }
    let expected: Vec<u64> = (1..=count_events(&s.db_path()) as u64).collect();
    assert_eq!(seen, expected, "every event exactly once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_consumer_is_ended_with_resource_exhausted_while_a_fast_one_keeps_up() {
    let s = Server::start("[streams]\nring = 32\n");
    // The slow consumer's connection has a small window and is never read.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .initial_stream_window_size(Some(16 * 1024))
        .initial_connection_window_size(Some(16 * 1024))
        .connect()
        .await
        .unwrap();
    let creds = witness::client::Credentials {
        principal: Some("slow".into()),
        roles: vec!["sre".into()],
        ..Default::default()
    };
    let mut slow = proto::witness_service_client::WitnessServiceClient::with_interceptor(
        channel,
        witness::client::AuthInterceptor::new(&creds).unwrap(),
    );
    let mut slow_stream = subscribe(&mut slow, proto::StreamDecisionsRequest::default()).await;
    let mut fast = s.client("fast", &["sre"]).await;
    let mut fast_stream = subscribe(&mut fast, proto::StreamDecisionsRequest::default()).await;
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 600 {
            got.push(next(&mut fast_stream).await.sequence);
        }
        got
    });
    let mut asker = s.client("svc", &[]).await;
    for _ in 0..600 {
        asker
            .ask(ask("deploy.prod", &["sre"], 1, None))
            .await
            .unwrap();
    }
    let got = reader.await.unwrap();
    assert_eq!(
        got,
        (1..=600).collect::<Vec<u64>>(),
        "the fast consumer got everything"
    );

    // The slow one gets what was queued for it, then RESOURCE_EXHAUSTED.
    let mut received = Vec::new();
    let status = loop {
        match tokio::time::timeout(Duration::from_secs(20), slow_stream.next())
            .await
            .expect("slow stream ends")
        {
            Some(Ok(r)) => received.push(r.event.unwrap().sequence),
            Some(Err(status)) => break status,
            None => panic!("stream ended without a status"),
        }
    };
    assert_eq!(
        status.code(),
        Code::ResourceExhausted,
        "{}",
        status.message()
    );
    let last = *received.last().unwrap_or(&0);
    assert!(received.len() < 600, "the slow consumer was cut off early");
    assert!(
        status
            .message()
            .contains(&format!("after_sequence = {last}")),
        "{}",
        status.message()
    );
    // Resuming from the named sequence continues without a gap.
    let mut resumed = subscribe(
        &mut fast,
        proto::StreamDecisionsRequest {
            after_sequence: Some(last),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(next(&mut resumed).await.sequence, last + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_subscribers_each_receive_a_new_decision() {
    let s = Server::start("");
    let mut clients = Vec::new();
    for i in 0..10 {
        clients.push(s.client(&format!("console-{i}"), &["sre"]).await);
    }
    let mut streams = Vec::new();
    for i in 0..1000 {
        let mut c = clients[i % clients.len()].clone();
        streams.push(subscribe(&mut c, proto::StreamDecisionsRequest::default()).await);
    }
    let mut asker = s.client("svc", &[]).await;
    let d = asker
        .ask(ask("deploy.prod", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    let received = futures::future::join_all(streams.iter_mut().map(next)).await;
    assert_eq!(received.len(), 1000);
    assert!(received
        .iter()
        .all(|e| e.decision.as_ref().unwrap().id == d.id && e.sequence == 1));
}

#[tokio::test]
async fn watch_sends_the_state_then_each_change_and_ends_after_the_terminal_event() {
    let s = Server::start("");
    let mut asker = s.client("svc", &[]).await;
    let d = asker
        .ask(ask(
            "scram.readonly",
            &["sre"],
            2,
            Some(serde_json::json!({"v": 1})),
        ))
        .await
        .unwrap();
    let id = d.into_inner().decision.unwrap().id;
    let mut alice = s.client("alice", &["sre"]).await;
    alice.answer(approve(&id, "first")).await.unwrap();
    let mut w = asker
        .watch_decision(proto::WatchDecisionRequest {
            decision_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = w.message().await.unwrap().unwrap().event.unwrap();
    assert_eq!(first.sequence, 2);
    assert_eq!(kind_of(&first), proto::EventType::Answered);
    let mut bob = s.client("bob", &["sre"]).await;
    let ctx = Some(json(serde_json::json!({"v": 1})));
    bob.answer(proto::AnswerRequest {
        current_context: ctx,
        ..approve(&id, "second")
    })
    .await
    .unwrap();
    let types: Vec<proto::EventType> = vec![
        kind_of(&w.message().await.unwrap().unwrap().event.unwrap()),
        kind_of(&w.message().await.unwrap().unwrap().event.unwrap()),
    ];
    assert_eq!(
        types,
        [proto::EventType::Answered, proto::EventType::Approved]
    );
    assert!(
        w.message().await.unwrap().is_none(),
        "the stream ends after the terminal event"
    );

    // Watching a closed decision returns its state and ends at once.
    let mut w = asker
        .watch_decision(proto::WatchDecisionRequest {
            decision_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let state = w.message().await.unwrap().unwrap().event.unwrap();
    assert_eq!(
        state.decision.unwrap().status,
        proto::Status::Approved as i32
    );
    assert!(w.message().await.unwrap().is_none());

    let mut dba = s.client("dan", &["dba"]).await;
    let err = dba
        .watch_decision(proto::WatchDecisionRequest { decision_id: id })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_snapshot_to_live_switch_neither_loses_nor_repeats_under_writes() {
    let s = Server::start("");
    let mut writers = Vec::new();
    for _ in 0..3 {
        let (mut asker, mut alice) = (
            s.client("svc", &[]).await,
            s.client("alice", &["sre"]).await,
        );
        writers.push(tokio::spawn(async move {
            for i in 0..80 {
                let d = asker
                    .ask(ask("deploy.prod", &["sre"], 1, None))
                    .await
                    .unwrap()
                    .into_inner();
                if i % 2 == 0 {
                    alice
                        .answer(approve(&d.decision.unwrap().id, "ok"))
                        .await
                        .unwrap();
                }
            }
        }));
    }
    // Subscribe while the writers are busy.
    let mut asker = s.client("svc", &[]).await;
    while count_events(&s.db_path()) < 60 {
        asker
            .get_decision(proto::GetDecisionRequest {
                decision_id: "x".into(),
            })
            .await
            .ok();
    }
    let mut console = s.client("console", &["sre"]).await;
    let mut st = subscribe(
        &mut console,
        proto::StreamDecisionsRequest {
            include_open: true,
            ..Default::default()
        },
    )
    .await;
    let mut snapshot = std::collections::BTreeSet::new();
    let head = loop {
        let e = next(&mut st).await;
        if kind_of(&e) == proto::EventType::SnapshotEnd {
            break e.sequence;
        }
        snapshot.insert(e.decision.unwrap().id);
    };
    for w in writers {
        w.await.unwrap();
    }
    let total = count_events(&s.db_path()) as u64;
    let mut live = Vec::new();
    while live.last().copied().unwrap_or(head) < total {
        live.push(next(&mut st).await.sequence);
    }
    assert_eq!(
        live,
        (head + 1..=total).collect::<Vec<_>>(),
        "live events start right after the snapshot"
    );
    // The snapshot is exactly the decisions open at `head`.
    let conn = open_db(&s.db_path());
    let mut stmt = conn
        .prepare(
            "SELECT decision_id FROM events WHERE sequence <= ?1 GROUP BY decision_id
             HAVING SUM(type IN ('APPROVED','REJECTED','CANCELLED','EXPIRED','CONTEXT_CHANGED')) = 0",
        )
        .unwrap();
    let open_at_head: std::collections::BTreeSet<String> = stmt
        .query_map([head as i64], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(snapshot, open_at_head);
}
