//! The Rust `Client`: ask() blocks until a human decides, re-confirming a
//! context provider so a two-person rule completes without user code.

mod common;

use common::*;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use witness::client::{answer_hint, Ask, Client, ClientError, Context, Credentials, TokenProvider};

async fn client(s: &Server, who: &str) -> Client {
    let creds = Credentials {
        principal: Some(who.into()),
        ..Credentials::default()
    };
    Client::connect(&s.addr, &creds).await.unwrap()
}

async fn open_decision(s: &Server) -> proto::Decision {
    let mut alice = s.client("alice", &["sre"]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let page = alice
            .list_decisions(proto::ListDecisionsRequest::default())
            .await
            .unwrap()
            .into_inner();
        if let Some(d) = page.decisions.into_iter().next() {
            return d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the decision was never asked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_blocks_and_a_context_provider_completes_a_two_person_rule() {
    let s = Server::start("");
    let world = Arc::new(Mutex::new(json!({"replicas": 3})));
    let seen = world.clone();
    let provider = Context::Provider(Arc::new(move || seen.lock().unwrap().clone()));
    let mut asker = client(&s, "svc").await;
    let ask = Ask::new("scram.readonly", json!({"cluster": "a"}), &["sre"])
        .approvals(2)
        .context(provider);
    let waiting = tokio::spawn(async move { asker.ask(ask).await });
    let d = open_decision(&s).await;
    let mut alice = s.client("alice", &["sre"]).await;
    let bob = s.client("bob", &["sre"]).await;
    alice.answer(approve(&d.id, "first")).await.unwrap();
    // The provider re-confirms after alice's answer; bob retries until then.
    eventually(
        "bob's approval to be accepted",
        Duration::from_secs(20),
        || {
            let mut b = bob.clone();
            let id = d.id.clone();
            async move { b.answer(approve(&id, "second")).await.is_ok() }
        },
    )
    .await;
    let closed = waiting.await.unwrap().unwrap();
    assert_eq!(closed.status, proto::Status::Approved as i32);
    assert_eq!(closed.answers.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_whose_world_changed_closes_the_decision_context_changed() {
    let s = Server::start("");
    let world = Arc::new(Mutex::new(json!({"leader": "db-1"})));
    let seen = world.clone();
    let provider = Context::Provider(Arc::new(move || seen.lock().unwrap().clone()));
    let mut asker = client(&s, "svc").await;
    let mut ask = Ask::new("scram.failover", json!({}), &["sre"])
        .approvals(2)
        .context(provider);
    ask.context_interval = Duration::from_millis(200);
    let waiting = tokio::spawn(async move { asker.ask(ask).await });
    open_decision(&s).await;
    *world.lock().unwrap() = json!({"leader": "db-2"});
    let closed = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(closed.status, proto::Status::ContextChanged as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_any_returns_the_first_of_several_to_close_across_a_server_restart() {
    let mut s = Server::start("");
    let mut bot = client(&s, "bot").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let d = bot
            .ask_nowait(&Ask::new("deploy.prod", json!({"n": 1}), &["sre"]))
            .await
            .unwrap();
        ids.push(d.id);
    }
    let unrelated = bot
        .ask_nowait(&Ask::new("deploy.prod", json!({"n": 2}), &["sre"]))
        .await
        .unwrap()
        .id;
    let mut waiter = bot.grpc().clone();
    let wanted = ids.clone();
    let snapshots = Arc::new(Mutex::new(0));
    let seen = snapshots.clone();
    let waiting = tokio::spawn(async move {
        witness::client::wait_any(&mut waiter, &wanted, |e| {
            if e.r#type == proto::EventType::SnapshotEnd as i32 {
                *seen.lock().unwrap() += 1;
            }
        })
        .await
    });
    // The waiter is following the stream before anything changes.
    eventually(
        "the waiter to subscribe",
        Duration::from_secs(20),
        || async { *snapshots.lock().unwrap() == 1 },
    )
    .await;
    let mut alice = s.client("alice", &["sre"]).await;
    // An unrelated decision closing does not end the wait.
    alice
        .answer(approve(&unrelated, "not watched"))
        .await
        .unwrap();
    s.restart_same_port();
    let mut alice = s.client("alice", &["sre"]).await;
    alice.answer(reject(&ids[1], "too risky")).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("wait_any returns after the restart")
        .unwrap()
        .unwrap();
    assert_eq!(first.id, ids[1]);
    assert_eq!(first.status(), proto::Status::Rejected);
    assert_eq!(
        *snapshots.lock().unwrap(),
        1,
        "resumed after the last event seen, not with a new snapshot"
    );

    // Already closed counts; an empty set is refused.
    let again = bot.wait_any(&ids).await.unwrap();
    assert_eq!(again.id, ids[1]);
    let err = bot.wait_any(&[]).await.unwrap_err();
    assert!(err.to_string().contains("ids"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_created_gets_the_open_decision_once_before_ask_returns_and_the_hint_names_it() {
    let s = Server::start("");
    let created: Arc<Mutex<Vec<proto::Decision>>> = Arc::default();
    let seen = created.clone();
    let mut asker = client(&s, "svc").await;
    let ask = Ask::new(
        "deploy.production",
        json!({"service": "api"}),
        &["sre", "dba"],
    )
    .on_created(move |d| seen.lock().unwrap().push(d.clone()));
    let waiting = tokio::spawn(async move { asker.ask(ask).await });
    let d = open_decision(&s).await;
    eventually("on_created to be called", Duration::from_secs(20), || {
        let created = created.clone();
        async move { !created.lock().unwrap().is_empty() }
    })
    .await;
    assert!(
        !waiting.is_finished(),
        "ask() returned before anyone answered"
    );
    let first = created.lock().unwrap()[0].clone();
    assert_eq!(first.id, d.id);
    assert_eq!(first.status, proto::Status::Open as i32);
    assert_eq!(
        answer_hint(&first),
        format!(
            "waiting for a human to decide deploy.production (decision {id}); answer it with:\n  \
             witness answer {id} approve --rationale \"...\" --as NAME --roles sre",
            id = d.id
        )
    );
    let mut alice = s.client("alice", &["sre"]).await;
    alice
        .answer(approve(&d.id, "canary is green"))
        .await
        .unwrap();
    let closed = waiting.await.unwrap().unwrap();
    assert_eq!(closed.id, d.id);
    assert_eq!(closed.status, proto::Status::Approved as i32);
    assert_eq!(created.lock().unwrap().len(), 1, "on_created runs once");
}

#[test]
fn answer_hint_escapes_what_could_forge_a_line() {
    let d = proto::Decision {
        id: "0193-abc".into(),
        kind: "deploy.x\n\u{1b}[31mfake\u{202e}".into(),
        ..proto::Decision::default()
    };
    assert_eq!(
        answer_hint(&d),
        "waiting for a human to decide deploy.x\\n\\x1b[31mfake\\u{202e} (decision 0193-abc); \
         answer it with:\n  witness answer 0193-abc approve --rationale \"...\" --as NAME --roles ROLE"
    );
}

/// Two principals, `agent-a` and `agent-b`, with [`token`]s.
fn two_principals() -> String {
    principal("agent-a", &[], "") + &principal("agent-b", &[], "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_provider_is_called_per_request_and_each_request_carries_its_token() {
    let s = Server::start(&two_principals());
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let provider = TokenProvider::new(move || {
        let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok::<_, String>(token(if n == 0 { "agent-a" } else { "agent-b" }))
    });
    let calls_now = || calls.load(std::sync::atomic::Ordering::SeqCst);
    let mut c = Client::connect_with_token_provider(&s.addr, &Credentials::default(), provider)
        .await
        .unwrap();
    assert_eq!(calls_now(), 0, "connecting calls no provider");
    let first = c
        .ask_nowait(&Ask::new("deploy.tp", json!(1), &["sre"]))
        .await
        .unwrap();
    let second = c
        .ask_nowait(&Ask::new("deploy.tp", json!(2), &["sre"]))
        .await
        .unwrap();
    assert_eq!(
        (first.asked_by.as_str(), second.asked_by.as_str()),
        ("agent-a", "agent-b")
    );
    assert_eq!(calls_now(), 2);
    // A stream start calls it too.
    let mut watch = c
        .grpc()
        .watch_decision(proto::WatchDecisionRequest {
            decision_id: second.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let ev = watch.message().await.unwrap().expect("the snapshot event");
    assert_eq!(ev.event.and_then(|e| e.decision).unwrap().id, second.id);
    assert_eq!(calls_now(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_token_provider_fails_the_call_and_sends_nothing() {
    let s = Server::start(&two_principals());
    // An Ask through a client whose only credential is `provider`.
    let ask_with = |provider: TokenProvider| async {
        let mut c = Client::connect_with_token_provider(&s.addr, &Credentials::default(), provider)
            .await
            .unwrap();
        c.ask_nowait(&Ask::new("deploy.tp", json!(1), &["sre"]))
            .await
            .unwrap_err()
    };
    let err = ask_with(TokenProvider::new(|| {
        Err::<String, _>("token file unreadable")
    }))
    .await;
    let ClientError::Rpc(status) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    assert_eq!(
        status.message(),
        "token provider failed: token file unreadable"
    );
    let err = ask_with(TokenProvider::new(|| Ok::<_, String>(" \n".into()))).await;
    assert!(err.to_string().contains("empty token"), "{err}");
    // Nothing reached the server: no decision was asked.
    let mut a = s.client_with_token(&token("agent-a")).await;
    let page = a
        .list_decisions(proto::ListDecisionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(page.decisions.is_empty(), "{:?}", page.decisions);
    // The Debug of credentials and providers never shows a token.
    let creds = Credentials {
        token: Some("secret-token".into()),
        ..Credentials::default()
    };
    let shown = format!(
        "{creds:?} {:?}",
        TokenProvider::new(|| Ok::<_, String>("secret-token".into()))
    );
    assert!(!shown.contains("secret-token"), "{shown}");
}
