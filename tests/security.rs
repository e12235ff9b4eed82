//! Every security rule refuses, next to the allowed case.

mod common;

use common::*;
use serde_json::json;
use std::process::Command;
use tonic::Code;

fn principals() -> String {
    [
        principal("svc", &[], "can_ask = [\"deploy.*\", \"scram.*\"]"),
        principal("alice", &["sre"], ""),
        principal("bob", &["sre"], ""),
        principal("carol", &["sre"], ""),
        principal("bot", &["chat"], "can_act_for = [\"alice\", \"dave\"]"),
        principal("dave", &["dba"], ""),
    ]
    .concat()
}

#[tokio::test]
async fn bearer_tokens_are_required_and_never_logged() {
    let s = Server::start(&principals());
    let mut none = s.client("", &[]).await;
    let err = none
        .ask(ask("deploy.prod", &["sre"], 1, None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // Dev-mode headers mean nothing once principals are configured.
    let mut pretender = s.client("alice", &["sre"]).await;
    let err = pretender
        .list_decisions(proto::ListDecisionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let wrong = "tok-wrong-secret-value-42";
    let mut bad = s.client_with_token(wrong).await;
    let err = bad
        .list_decisions(proto::ListDecisionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(!err.message().contains(wrong), "errors never echo a token");
    let mut svc = s.client_with_token(&token("svc")).await;
    let d = svc
        .ask(ask("deploy.prod", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(d.asked_by, "svc");
    let logs = s.stderr();
    assert!(!logs.is_empty());
    for secret in [wrong.to_string(), token("svc")] {
        assert!(!logs.contains(&secret), "a token appeared in the logs");
    }
}

#[tokio::test]
async fn token_new_prints_a_working_token_and_config_entry() {
    let out = Command::new(bin())
        .args(["token", "new", "erin", "--roles", "sre,oncall"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("# token: "))
        .unwrap()
        .to_string();
    let config: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(config.contains("roles = [\"sre\", \"oncall\"]"), "{config}");
    let again = Command::new(bin())
        .args(["token", "new", "erin"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&again.stdout).contains(&token),
        "fresh every time"
    );
    let s = Server::start(&format!("{}{config}", principals()));
    let mut erin = s.client_with_token(&token).await;
    erin.list_decisions(proto::ListDecisionsRequest::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn can_ask_limits_kinds() {
    let s = Server::start(&principals());
    let mut svc = s.client_with_token(&token("svc")).await;
    svc.ask(ask("deploy.prod", &["sre"], 1, None))
        .await
        .unwrap();
    let err = svc
        .ask(ask("db.drop", &["dba"], 1, None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().starts_with("kind:"), "{}", err.message());
}

#[tokio::test]
async fn acting_on_behalf_of_needs_can_act_for_and_the_operators_roles() {
    let s = Server::start(&principals());
    let mut svc = s.client_with_token(&token("svc")).await;
    let mut bot = s.client_with_token(&token("bot")).await;
    let d = svc
        .ask(ask("deploy.prod", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    let as_ = |who: &str| proto::AnswerRequest {
        on_behalf_of: who.into(),
        ..approve(&d.id, "via chat")
    };
    // Its own roles don't see sre decisions; the operator's do.
    let err = bot.answer(approve(&d.id, "myself")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = bot.answer(as_("carol")).await.unwrap_err();
    assert_eq!(
        err.code(),
        Code::PermissionDenied,
        "carol is not in can_act_for"
    );
    assert!(err.message().starts_with("on_behalf_of"));
    let err = bot.answer(as_("dave")).await.unwrap_err();
    assert_eq!(
        err.code(),
        Code::NotFound,
        "dave lacks an authorized role: the decision is invisible to him"
    );
    let r = bot
        .answer(as_("alice"))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(
        (
            r.answers[0].operator.as_str(),
            r.answers[0].submitted_by.as_str()
        ),
        ("alice", "bot")
    );
    // Only the asker reports context; strangers cannot even find it.
    let mut dave = s.client_with_token(&token("dave")).await;
    let d2 = svc
        .ask(ask("deploy.prod", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    let err = dave
        .cancel(proto::CancelRequest {
            decision_id: d2.id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = dave
        .get_decision(proto::GetDecisionRequest { decision_id: d2.id })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::NotFound,
        "reads show only what one may see"
    );
}

#[tokio::test]
async fn an_approver_who_lost_the_role_no_longer_counts_when_the_quorum_completes() {
    let mut s = Server::start(&principals());
    let mut svc = s.client_with_token(&token("svc")).await;
    let ctx = json!({"v": 1});
    let d = svc
        .ask(ask("scram.x", &["sre"], 2, Some(ctx.clone())))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    let mut alice = s.client_with_token(&token("alice")).await;
    alice.answer(approve(&d.id, "yes")).await.unwrap();
    // alice leaves the sre rota; the config is changed and witness restarted.
    let config = std::fs::read_to_string(s.config_path()).unwrap();
    let alice_entry = principal("alice", &["sre"], "");
    std::fs::write(
        s.config_path(),
        config.replace(&alice_entry, &principal("alice", &[], "")),
    )
    .unwrap();
    s.restart();
    let with_ctx = |who_rationale: &str| proto::AnswerRequest {
        current_context: Some(json(ctx.clone())),
        ..approve(&d.id, who_rationale)
    };
    let mut bob = s.client_with_token(&token("bob")).await;
    let r = bob.answer(with_ctx("bob")).await.unwrap().into_inner();
    assert_eq!(
        r.outcome,
        proto::AnswerOutcome::AwaitingApprovals as i32,
        "alice's approval no longer counts"
    );
    let mut carol = s.client_with_token(&token("carol")).await;
    let r = carol.answer(with_ctx("carol")).await.unwrap().into_inner();
    assert_eq!(r.decision.unwrap().status, proto::Status::Approved as i32);
}

#[tokio::test]
async fn unsafe_listen_addresses_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("w.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\nurl = \"sqlite://{}/w.db\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dev mode") && err.contains("principals"),
        "{err}"
    );
    std::fs::write(
        &cfg,
        format!(
            "[store]\nurl = \"sqlite://{}/w.db\"\n{}",
            dir.path().display(),
            principals()
        ),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--insecure"));
}

#[tokio::test]
async fn limits_refuse_with_resource_exhausted() {
    let s = Server::start("[limits]\nrequests_per_second = 5\nburst = 5\nmax_streams_per_principal = 2\nmax_message_bytes = 4096\n");
    let mut a = s.client("a", &["sre"]).await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(
            a.list_decisions(proto::ListDecisionsRequest::default())
                .await
                .err()
                .map(|e| e.code()),
        );
    }
    assert_eq!(codes[..5], [None; 5]);
    assert_eq!(codes[5], Some(Code::ResourceExhausted));
    let mut b = s.client("b", &["sre"]).await;
    let s1 = b
        .stream_decisions(proto::StreamDecisionsRequest::default())
        .await
        .unwrap();
    let _s2 = b
        .stream_decisions(proto::StreamDecisionsRequest::default())
        .await
        .unwrap();
    let err = b
        .stream_decisions(proto::StreamDecisionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    drop(s1);
    eventually(
        "a freed stream slot",
        std::time::Duration::from_secs(10),
        || {
            let mut b = b.clone();
            async move {
                b.stream_decisions(proto::StreamDecisionsRequest::default())
                    .await
                    .is_ok()
            }
        },
    )
    .await;
    let mut c = s.client("c", &[]).await;
    let big = proto::AskRequest {
        input: Some(json(json!("x".repeat(8000)))),
        ..ask("deploy.prod", &["sre"], 1, None)
    };
    let err = c.ask(big).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
}

#[tokio::test]
async fn closed_decisions_have_receipts_that_verify_offline() {
    let s = Server::start("");
    let mut asker = s.client("svc", &[]).await;
    let mut alice = s.client("alice", &["sre"]).await;
    let d = asker
        .ask(ask("deploy.prod", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    let open = asker
        .get_decision(proto::GetDecisionRequest {
            decision_id: d.id.clone(),
        })
        .await
        .unwrap();
    assert!(open.into_inner().receipt.is_none(), "no receipt while open");
    alice.answer(approve(&d.id, "ship it")).await.unwrap();

    let dir = s.dir.path();
    let file = dir.join("receipt.json");
    let out = s.cli(&[
        "receipt",
        "get",
        &d.id,
        "--as",
        "svc",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = Command::new(bin())
        .args(["receipt", "public-key", "--config"])
        .arg(s.config_path())
        .output()
        .unwrap();
    let key_file = dir.join("public.key");
    std::fs::write(&key_file, &key.stdout).unwrap();
    let verify = |f: &std::path::Path| {
        Command::new(bin())
            .args(["receipt", "verify"])
            .arg(f)
            .arg("--public-key")
            .arg(&key_file)
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(verify(&file), Some(0));
    let receipt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let body: serde_json::Value = serde_json::from_str(receipt["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["outcome"], "APPROVED");
    assert_eq!(body["decision_id"], d.id.as_str());
    assert_eq!(body["answers"][0]["operator"], "alice");
    // Changing any part of the body breaks it.
    let forged = std::fs::read_to_string(&file)
        .unwrap()
        .replace("APPROVED", "REJECTED");
    let forged_file = dir.join("forged.json");
    std::fs::write(&forged_file, forged).unwrap();
    assert_eq!(verify(&forged_file), Some(1));

    // audit verify checks receipts against the chain.
    let audit = |db: &std::path::Path| {
        Command::new(bin())
            .args(["audit", "verify", "--config"])
            .arg(s.config_path())
            .env("WITNESS__STORE__URL", format!("sqlite://{}", db.display()))
            .output()
            .unwrap()
    };
    assert!(audit(&s.db_path()).status.success());
    let copy = dir.join("copy.db");
    open_db(&s.db_path())
        .execute_batch(&format!("VACUUM INTO '{}'", copy.display()))
        .unwrap();
    open_db(&copy)
        .execute_batch("UPDATE receipts SET body = replace(body, 'APPROVED', 'REJECTED')")
        .unwrap();
    let out = audit(&copy);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("receipt does not match the chain"));
}
