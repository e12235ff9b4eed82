//! The decision lifecycle over real gRPC against the real binary.

mod common;

use common::*;
use serde_json::json;
use tonic::Code;

async fn open_two_person(s: &Server, context: serde_json::Value) -> proto::Decision {
    let mut asker = s.client("svc", &[]).await;
    let resp = asker
        .ask(ask("scram.readonly", &["sre"], 2, Some(context)))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.created);
    resp.decision.unwrap()
}

#[tokio::test]
async fn two_person_decision_with_context_confirmation_completes() {
    let s = Server::start("");
    let ctx = json!({"replicas": 3, "lag": 0});
    let d = open_two_person(&s, ctx.clone()).await;
    assert_eq!(d.status, proto::Status::Open as i32);
    assert_eq!(d.context_hash.len(), 64);
    let mut alice = s.client("alice", &["sre"]).await;
    let mut bob = s.client("bob", &["sre"]).await;
    let mut asker = s.client("svc", &[]).await;

    let r = alice
        .answer(approve(&d.id, "lag is zero"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.outcome, proto::AnswerOutcome::AwaitingApprovals as i32);

    // Without a fresh confirmation the quorum-completing approval is refused.
    let err = bob.answer(approve(&d.id, "agree")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("re-confirmed"), "{}", err.message());

    // The asker confirms the (re-ordered but equal) context; now it completes.
    let same = json!({"lag": 0, "replicas": 3});
    let rc = asker
        .report_context(proto::ReportContextRequest {
            decision_id: d.id.clone(),
            context_snapshot: Some(json(same)),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(rc.matched);
    let r = bob
        .answer(approve(&d.id, "agree"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.outcome, proto::AnswerOutcome::Closed as i32);
    let d = r.decision.unwrap();
    assert_eq!(d.status, proto::Status::Approved as i32);
    assert_eq!(d.answers.len(), 2);
    assert!(d.closed_at.is_some());
}

#[tokio::test]
async fn the_completing_answers_own_context_counts_and_a_mismatch_closes() {
    let s = Server::start("");
    let d = open_two_person(&s, json!({"v": 1})).await;
    let mut alice = s.client("alice", &["sre"]).await;
    let mut bob = s.client("bob", &["sre"]).await;
    alice.answer(approve(&d.id, "ok")).await.unwrap();
    let r = bob
        .answer(proto::AnswerRequest {
            current_context: Some(json(json!({"v": 1}))),
            ..approve(&d.id, "ok")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.decision.unwrap().status, proto::Status::Approved as i32);

    // A different context on an answer closes the decision and is not recorded.
    let d = open_two_person(&s, json!({"v": 1})).await;
    let r = alice
        .answer(proto::AnswerRequest {
            current_context: Some(json(json!({"v": 2}))),
            ..approve(&d.id, "ok")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.outcome, proto::AnswerOutcome::ContextChanged as i32);
    let closed = r.decision.unwrap();
    assert_eq!(closed.status, proto::Status::ContextChanged as i32);
    assert!(closed.answers.is_empty());
}

#[tokio::test]
async fn report_context_with_a_changed_snapshot_closes_context_changed() {
    let s = Server::start("");
    let d = open_two_person(&s, json!({"leader": "db-1"})).await;
    let mut asker = s.client("svc", &[]).await;
    let mut mallory = s.client("mallory", &["sre"]).await;
    let req = |v| proto::ReportContextRequest {
        decision_id: d.id.clone(),
        context_snapshot: Some(json(v)),
    };
    // Only the asker may report context.
    let err = mallory
        .report_context(req(json!({"leader": "db-2"})))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let rc = asker
        .report_context(req(json!({"leader": "db-2"})))
        .await
        .unwrap()
        .into_inner();
    assert!(!rc.matched);
    assert_eq!(
        rc.decision.unwrap().status,
        proto::Status::ContextChanged as i32
    );
    // Nothing leaves a terminal status.
    let err = mallory.answer(approve(&d.id, "late")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn quorum_rules_refuse_what_they_must() {
    let s = Server::start("");
    let mut asker = s.client("svc", &["sre"]).await;
    let mut alice = s.client("alice", &["sre"]).await;
    let mut dba = s.client("dan", &["dba"]).await;
    let mut anon = s.client("", &[]).await;
    let d = open_two_person(&s, json!({})).await;

    // A dba cannot see an sre decision: it does not exist for them.
    let err = dba.answer(approve(&d.id, "not mine")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());

    let err = asker.answer(approve(&d.id, "self")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("self-approval"), "{}", err.message());

    let err = anon.answer(approve(&d.id, "who am i")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    alice.answer(approve(&d.id, "first")).await.unwrap();
    let err = alice.answer(approve(&d.id, "again")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("already answered"),
        "{}",
        err.message()
    );

    let got = asker
        .get_decision(proto::GetDecisionRequest {
            decision_id: d.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        got.into_inner().decision.unwrap().answers.len(),
        1,
        "refusals recorded nothing"
    );
}

#[tokio::test]
async fn a_reject_vetoes_and_closed_decisions_refuse_answers() {
    let s = Server::start("");
    let d = open_two_person(&s, json!({})).await;
    let mut alice = s.client("alice", &["sre"]).await;
    let mut bob = s.client("bob", &["sre"]).await;
    let mut carol = s.client("carol", &["sre"]).await;
    alice.answer(approve(&d.id, "fine")).await.unwrap();
    let r = bob
        .answer(reject(&d.id, "not during the migration"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.outcome, proto::AnswerOutcome::Closed as i32);
    assert_eq!(r.decision.unwrap().status, proto::Status::Rejected as i32);
    let err = carol.answer(approve(&d.id, "too late")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("REJECTED"), "{}", err.message());
}

#[tokio::test]
async fn answers_are_checked_against_the_response_schema() {
    let s = Server::start("");
    let mut asker = s.client("svc", &[]).await;
    let mut alice = s.client("alice", &["sre"]).await;
    let schema = json!({
        "type": "object",
        "properties": {"window": {"type": "object", "properties": {"minutes": {"type": "integer", "maximum": 60}}}},
        "required": ["window"]
    });
    let req = proto::AskRequest {
        response_schema: Some(json(schema)),
        ..ask("deploy.prod", &["sre"], 1, None)
    };
    let d = asker.ask(req).await.unwrap().into_inner().decision.unwrap();
    let bad = proto::AnswerRequest {
        answer: Some(json(json!({"window": {"minutes": 90}}))),
        ..approve(&d.id, "ok")
    };
    let err = alice.answer(bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("/window/minutes"),
        "{}",
        err.message()
    );
    let good = proto::AnswerRequest {
        answer: Some(json(json!({"window": {"minutes": 30}}))),
        ..approve(&d.id, "ok")
    };
    let r = alice.answer(good).await.unwrap().into_inner();
    assert_eq!(r.decision.unwrap().status, proto::Status::Approved as i32);
}

#[tokio::test]
async fn unknown_and_invisible_decisions_are_not_found() {
    let s = Server::start("");
    let mut alice = s.client("alice", &["sre"]).await;
    let err = alice
        .answer(approve("0190aaaa-0000-7000-8000-000000000000", "x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let mut asker = s.client("svc", &[]).await;
    let d = asker
        .ask(ask("db.drop", &["dba"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    let err = alice
        .get_decision(proto::GetDecisionRequest {
            decision_id: d.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::NotFound,
        "an sre console never sees a dba decision"
    );
    let listed = alice
        .list_decisions(proto::ListDecisionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.decisions.is_empty());
    let err = alice
        .get_decision(proto::GetDecisionRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("decision_id"));
}

#[tokio::test]
async fn ask_and_answer_are_idempotent_by_request_id() {
    let s = Server::start("");
    let mut asker = s.client("svc", &[]).await;
    let req = ask("deploy.prod", &["sre"], 1, None);
    let first = asker.ask(req.clone()).await.unwrap().into_inner();
    let again = asker.ask(req.clone()).await.unwrap().into_inner();
    assert!(first.created && !again.created);
    assert_eq!(
        first.decision.as_ref().unwrap().id,
        again.decision.as_ref().unwrap().id
    );
    let other = proto::AskRequest {
        kind: "deploy.staging".into(),
        ..req.clone()
    };
    let err = asker.ask(other).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains("request_id"));

    let id = first.decision.unwrap().id;
    let mut alice = s.client("alice", &["sre"]).await;
    let answer = proto::AnswerRequest {
        request_id: "a-1".into(),
        ..approve(&id, "ok")
    };
    let r1 = alice.answer(answer.clone()).await.unwrap().into_inner();
    let r2 = alice.answer(answer.clone()).await.unwrap().into_inner();
    assert_eq!(r1.outcome, r2.outcome);
    assert_eq!(r2.decision.unwrap().answers.len(), 1);
    let err = alice
        .answer(proto::AnswerRequest {
            rationale: "changed".into(),
            ..answer
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(
        count_events(&s.db_path()),
        3,
        "CREATED, ANSWERED, APPROVED and nothing else"
    );
}

#[tokio::test]
async fn acks_cancels_and_their_permissions() {
    let s = Server::start("");
    let mut asker = s.client("svc", &[]).await;
    let mut console = s.client("console-1", &["sre"]).await;
    let mut other = s.client("console-2", &["sre"]).await;
    let mut dba = s.client("dan", &["dba"]).await;
    let d = asker
        .ask(ask("deploy.prod", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    let ack = |surface: &str| proto::AckDeliveryRequest {
        decision_id: d.id.clone(),
        surface: surface.into(),
    };

    let err = dba.ack_delivery(ack("pager")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let r = console
        .ack_delivery(ack("console"))
        .await
        .unwrap()
        .into_inner();
    assert!(r.accepted);
    let r = other.ack_delivery(ack("slack")).await.unwrap().into_inner();
    assert!(r.accepted);
    assert_eq!(
        r.decision.unwrap().delivered_via,
        "console",
        "the first ACK wins"
    );

    let cancel = |reason: &str| proto::CancelRequest {
        decision_id: d.id.clone(),
        reason: reason.into(),
    };
    let err = dba.cancel(cancel("no")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let r = asker
        .cancel(cancel("superseded"))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(r.status, proto::Status::Cancelled as i32);
    assert_eq!(r.close_reason, "superseded");
    let err = console.cancel(cancel("again")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let r = console
        .ack_delivery(ack("console"))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.accepted, "an ACK on a closed decision is not accepted");

    // An authorized operator may cancel too.
    let d2 = asker
        .ask(ask("deploy.prod", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    let r = console
        .cancel(proto::CancelRequest {
            decision_id: d2.id,
            reason: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(r.into_inner().decision.unwrap().closed_by, "console-1");
}

#[tokio::test]
async fn list_filters_and_paginates_stably() {
    let s = Server::start("");
    let mut asker = s.client("svc", &[]).await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let kind = if i % 2 == 0 {
            "deploy.prod"
        } else {
            "scram.one"
        };
        let d = asker
            .ask(ask(kind, &["sre"], 1, None))
            .await
            .unwrap()
            .into_inner()
            .decision
            .unwrap();
        ids.push((kind, d.id));
    }
    asker
        .cancel(proto::CancelRequest {
            decision_id: ids[0].1.clone(),
            reason: String::new(),
        })
        .await
        .unwrap();
    let mut sre = s.client("alice", &["sre"]).await;
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = sre
            .list_decisions(proto::ListDecisionsRequest {
                statuses: vec![proto::Status::Open as i32],
                kinds: vec!["deploy.*".into()],
                page_size: 4,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.decisions.len() <= 4);
        seen.extend(page.decisions.into_iter().map(|d| d.id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    let expected: Vec<String> = ids
        .iter()
        .skip(1)
        .filter(|(k, _)| *k == "deploy.prod")
        .map(|(_, id)| id.clone())
        .collect();
    assert_eq!(
        seen, expected,
        "every matching decision once, in creation order"
    );
    let err = sre
        .list_decisions(proto::ListDecisionsRequest {
            page_token: "garbage!".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("page_token"));
    let err = sre
        .list_decisions(proto::ListDecisionsRequest {
            statuses: vec![0],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        err.message().starts_with("statuses[0]"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_writes_nothing() {
    let s = Server::start("[limits]\nmax_json_bytes = 1024\nmax_json_depth = 8\n");
    let mut asker = s.client("svc", &[]).await;
    let base = ask("deploy.prod", &["sre"], 1, None);
    let deep = (0..20).fold(json!(1), |acc, _| json!([acc]));
    let cases: Vec<(&str, proto::AskRequest)> = vec![
        (
            "kind",
            proto::AskRequest {
                kind: String::new(),
                ..base.clone()
            },
        ),
        (
            "authorized_roles",
            proto::AskRequest {
                authorized_roles: vec![],
                ..base.clone()
            },
        ),
        (
            "authorized_roles[0]",
            proto::AskRequest {
                authorized_roles: vec![" ".into()],
                ..base.clone()
            },
        ),
        (
            "response_schema",
            proto::AskRequest {
                response_schema: Some(json(json!("string"))),
                ..base.clone()
            },
        ),
        (
            "response_schema",
            proto::AskRequest {
                response_schema: Some(json(json!({"type": 7}))),
                ..base.clone()
            },
        ),
        (
            "input",
            proto::AskRequest {
                input: Some(json(json!("x".repeat(5000)))),
                ..base.clone()
            },
        ),
        (
            "input",
            proto::AskRequest {
                input: Some(json(deep.clone())),
                ..base.clone()
            },
        ),
        (
            "context_snapshot",
            proto::AskRequest {
                context_snapshot: Some(json(deep)),
                ..base.clone()
            },
        ),
        (
            "context_snapshot",
            proto::AskRequest {
                required_approvals: 2,
                ..base.clone()
            },
        ),
        (
            "timeout",
            proto::AskRequest {
                timeout: Some(prost_types::Duration {
                    seconds: -5,
                    nanos: 0,
                }),
                ..base.clone()
            },
        ),
    ];
    for (field, req) in cases {
        assert_names_field(field, asker.ask(req).await.unwrap_err());
    }
    assert_eq!(count_events(&s.db_path()), 0, "refused asks write nothing");

    let d = asker
        .ask(base)
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    let mut alice = s.client("alice", &["sre"]).await;
    let answers = vec![
        (
            "rationale",
            proto::AnswerRequest {
                rationale: "  ".into(),
                ..approve(&d.id, "")
            },
        ),
        (
            "verdict",
            proto::AnswerRequest {
                verdict: 0,
                ..approve(&d.id, "ok")
            },
        ),
        (
            "answer",
            proto::AnswerRequest {
                answer: Some(json(json!("y".repeat(2000)))),
                ..approve(&d.id, "ok")
            },
        ),
        ("decision_id", approve("", "ok")),
    ];
    for (field, req) in answers {
        assert_names_field(field, alice.answer(req).await.unwrap_err());
    }
    assert_eq!(
        count_events(&s.db_path()),
        1,
        "refused answers write nothing"
    );
}

/// Bad input is INVALID_ARGUMENT with a message that starts with the field.
fn assert_names_field(field: &str, err: tonic::Status) {
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "{field}: {}",
        err.message()
    );
    assert!(
        err.message().starts_with(field),
        "expected {field}: got {}",
        err.message()
    );
}
