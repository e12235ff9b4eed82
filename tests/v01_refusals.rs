//! witness v0.1.1's HTTP API under `/v1/`: bad input on every route, 404
//! for unknown ids of any shape, and both identity modes (dev mode keeps
//! v0.1.1's trust model; with principals the token decides).

mod common;
#[path = "common/v01.rs"]
mod v01;

use common::*;
use serde_json::{json, Value};
use v01::*;

#[tokio::test]
async fn bad_input_on_every_route_names_the_field_and_writes_nothing() {
    let s = Server::start("");
    let c = V01::new(&s);
    let id = c.ask("reeve.action.review", &["r"], json!({})).await;
    let before = count_events(&s.db_path());
    let full = json!({"kind": "k.x", "input": {}, "responseShape": {}, "authorizedRoles": ["r"], "surfaces": []});
    let with = |k: &str, v: Value| {
        let mut b = full.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = full.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!([deep]);
    }
    let asks = [
        (without("kind"), 400, err("missing_field", "kind")),
        (without("input"), 400, err("missing_field", "input")),
        (
            without("responseShape"),
            400,
            err("missing_field", "responseShape"),
        ),
        (
            without("authorizedRoles"),
            400,
            err("missing_field", "authorizedRoles"),
        ),
        (without("surfaces"), 400, err("missing_field", "surfaces")),
        (with("kind", json!(5)), 400, err("ask_failed", "kind")),
        (with("kind", json!("")), 400, err("ask_failed", "kind")),
        (
            with("authorizedRoles", json!("r")),
            400,
            err("ask_failed", "authorizedRoles"),
        ),
        (
            with("authorizedRoles", json!([])),
            400,
            err("ask_failed", "authorizedRoles"),
        ),
        (
            with("authorizedRoles", json!([""])),
            400,
            err("ask_failed", "authorizedRoles"),
        ),
        (
            with("surfaces", json!([1])),
            400,
            err("ask_failed", "surfaces"),
        ),
        (
            with("responseShape", json!("x")),
            400,
            err("ask_failed", "responseShape"),
        ),
        (
            with("timeoutMs", json!("60000")),
            400,
            err("ask_failed", "timeoutMs"),
        ),
        (
            with("timeoutMs", json!(-1)),
            400,
            err("ask_failed", "timeoutMs"),
        ),
        (with("input", deep), 400, err("ask_failed", "input")),
        (
            with("requestId", json!(7)),
            400,
            err("ask_failed", "requestId"),
        ),
    ];
    for (body, code, want) in asks {
        let (got_code, got) = c.post("/v1/decisions", body.clone()).await;
        assert_eq!(got_code, code, "{body}: {got}");
        assert_eq!(
            (&got["error"], &got["field"]),
            (&want["error"], &want["field"]),
            "{body}: {got}"
        );
        if want["error"] == json!("ask_failed") {
            let field = want["field"].as_str().unwrap();
            assert!(got["message"].as_str().unwrap().starts_with(field), "{got}");
        }
    }
    let answer = format!("/v1/decisions/{id}/answer");
    let (ack, cancel) = (
        format!("/v1/decisions/{id}/ack"),
        format!("/v1/decisions/{id}/cancel"),
    );
    let writes = [
        (
            &answer,
            json!({"answer": {}, "rationale": "r"}),
            err("missing_field", "operator"),
        ),
        (
            &answer,
            json!({"operator": 5, "answer": {}, "rationale": "r"}),
            err("missing_field", "operator"),
        ),
        (
            &answer,
            json!({"operator": "o", "answer": {}}),
            err("missing_field", "rationale"),
        ),
        (
            &answer,
            json!({"operator": "o", "answer": {}, "rationale": ""}),
            err("missing_field", "rationale"),
        ),
        (
            &answer,
            json!({"operator": "o", "rationale": "r"}),
            err("missing_field", "answer"),
        ),
        (
            &answer,
            json!({"operator": "o", "answer": {}, "rationale": "  "}),
            err("answer_failed", "rationale"),
        ),
        (
            &answer,
            json!({"operator": "o", "answer": {}, "rationale": "r", "currentContext": {"a": 1}}),
            err("answer_failed", "currentContext"),
        ),
        (
            &ack,
            json!({"operator": "o"}),
            err("missing_field", "surface"),
        ),
        (
            &ack,
            json!({"surface": "inbox", "operator": 3}),
            err("ack_failed", "operator"),
        ),
        (
            &cancel,
            json!({"reason": "r"}),
            err("missing_field", "operator"),
        ),
        (
            &cancel,
            json!({"operator": "o"}),
            err("missing_field", "reason"),
        ),
    ];
    for (path, body, want) in writes {
        let (code, got) = c.post(path, body.clone()).await;
        assert_eq!(code, 400, "{path} {body}: {got}");
        assert_eq!(
            (&got["error"], &got["field"]),
            (&want["error"], &want["field"]),
            "{path} {body}: {got}"
        );
    }
    for path in [
        "/v1/decisions",
        answer.as_str(),
        ack.as_str(),
        cancel.as_str(),
    ] {
        for raw in [
            &b"{"[..],
            b"[1, 2]",
            b"\"text\"",
            b"{\"kind\": \"\xff\xfe\"}",
            b"",
        ] {
            let (code, got) = c.send("POST", path, Some(raw.to_vec())).await;
            assert_eq!(
                (code, &got["error"]),
                (400, &json!("invalid_json")),
                "{path} {raw:?}: {got}"
            );
        }
        let big = format!("{{\"input\": \"{}\"}}", "x".repeat(2 << 20)).into_bytes();
        let (code, got) = c.send("POST", path, Some(big)).await;
        assert_eq!(
            (code, &got["error"]),
            (413, &json!("body_too_large")),
            "{path}: {got}"
        );
    }
    for q in [
        "/v1/decisions",
        "/v1/decisions?authorized=",
        "/v1/decisions?role=r",
    ] {
        let (code, got) = c.get(q).await;
        assert_eq!(
            (code, got),
            (400, err("missing_query", "authorized")),
            "{q}"
        );
    }
    let many = vec!["r"; 65].join(",");
    let (code, got) = c.get(&format!("/v1/decisions?authorized={many}")).await;
    assert_eq!(
        (code, &got["error"], &got["field"]),
        (400, &json!("list_failed"), &json!("authorized")),
        "{got}"
    );
    for (method, path) in [
        ("DELETE", format!("/v1/decisions/{id}")),
        ("GET", answer.clone()),
        ("PUT", "/v1/decisions".into()),
    ] {
        let (code, got) = c.send(method, &path, None).await;
        assert_eq!(
            (code, got),
            (404, json!({"error": "not_found"})),
            "{method} {path}"
        );
    }
    assert_eq!(
        count_events(&s.db_path()),
        before,
        "refused requests write nothing"
    );
    let (_, d) = c.get(&format!("/v1/decisions/{id}")).await;
    assert_eq!((&d["status"], &d["answers"]), (&json!("open"), &json!([])));
}

#[tokio::test]
async fn unknown_ids_of_any_shape_are_404_on_every_route() {
    let s = Server::start("");
    let c = V01::new(&s);
    let long = "a".repeat(300);
    let uuid = uuid::Uuid::now_v7().to_string();
    let ids = [
        "not-a-real-id",
        uuid.as_str(),
        "..%2F..%2Fetc",
        "%E2%82%AC",
        "%C3%28",
        "%00",
        long.as_str(),
    ];
    let not_found = json!({"error": "not_found"});
    for id in ids {
        let (code, got) = c.get(&format!("/v1/decisions/{id}")).await;
        assert_eq!((code, &got), (404, &not_found), "GET {id}");
        let bodies = [
            (
                "answer",
                json!({"operator": "o", "answer": {}, "rationale": "r"}),
            ),
            ("ack", json!({"surface": "inbox"})),
            ("cancel", json!({"operator": "o", "reason": "r"})),
        ];
        for (verb, body) in bodies {
            let (code, got) = c.post(&format!("/v1/decisions/{id}/{verb}"), body).await;
            assert_eq!((code, &got), (404, &not_found), "{verb} {id}");
        }
    }
    for path in ["/v1/nothing", "/v1/decisions/x/approve", "/v1/"] {
        let (code, got) = c.get(path).await;
        assert_eq!((code, &got), (404, &not_found), "{path}");
    }
    assert_eq!(count_events(&s.db_path()), 0);
}

#[tokio::test]
async fn dev_mode_keeps_v01_trust_model() {
    let s = Server::start("");
    let asker = V01::with(&s, &[("x-witness-principal", "svc")]);
    let anyone = V01::new(&s);
    let id = asker.ask("deploy.prod", &["sre"], json!({})).await;
    // Reads see every decision, as in v0.1.1; gRPC keeps its visibility.
    let (code, d) = anyone.get(&format!("/v1/decisions/{id}")).await;
    assert_eq!((code, &d["askedBy"]), (200, &json!("svc")));
    let mut outsider = s.client("eve", &["dba"]).await;
    let e = outsider
        .get_decision(proto::GetDecisionRequest {
            decision_id: id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    // The asker may not approve its own decision, even by body operator.
    let (code, out) = anyone.answer(&id, "svc", json!({})).await;
    assert_eq!(
        (code, &out["error"]),
        (403, &json!("answer_failed")),
        "{out}"
    );
    // Any other body operator answers holding the decision's roles.
    let (code, out) = anyone.answer(&id, "op-1", json!({})).await;
    assert_eq!(
        (code, &out["approval"]["decidedBy"]),
        (200, &json!("op-1")),
        "{out}"
    );
    let g = outsider_view(&s, &id).await;
    assert_eq!(g.answers[0].operator, "op-1");
}

async fn outsider_view(s: &Server, id: &str) -> proto::Decision {
    let mut sre = s.client("viewer", &["sre"]).await;
    sre.get_decision(proto::GetDecisionRequest {
        decision_id: id.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .decision
    .unwrap()
}

#[tokio::test]
async fn token_mode_the_token_decides_and_operator_must_match_or_be_acted_for() {
    let config = [
        principal("svc", &[], ""),
        principal("alice", &["sre"], ""),
        principal("bob", &["sre"], ""),
        principal("bot", &["chat"], "can_act_for = [\"alice\"]"),
        principal("dave", &["dba"], ""),
    ]
    .concat();
    let s = Server::start(&config);
    let (svc, alice, bot, dave) = (
        V01::token(&s, "svc"),
        V01::token(&s, "alice"),
        V01::token(&s, "bot"),
        V01::token(&s, "dave"),
    );
    let nobody = V01::new(&s);
    let pretender = V01::with(
        &s,
        &[("x-witness-principal", "alice"), ("x-witness-roles", "sre")],
    );
    let wrong = V01::with(&s, &[("authorization", "Bearer tok-wrong-secret-42")]);
    assert_eq!(
        nobody.get("/v1/health").await.0,
        200,
        "health needs no token"
    );
    for c in [&nobody, &pretender, &wrong] {
        let body = json!({"kind": "k", "input": {}, "responseShape": {}, "authorizedRoles": ["sre"], "surfaces": []});
        let (code, got) = c.post("/v1/decisions", body).await;
        assert_eq!(
            (code, &got["error"]),
            (401, &json!("unauthorized")),
            "{got}"
        );
        assert!(!got.to_string().contains("tok-wrong"), "never echo a token");
        assert_eq!(c.get("/v1/decisions?authorized=sre").await.0, 401);
        assert_eq!(c.get("/v1/decisions/x").await.0, 401);
    }

    let id = svc.ask("deploy.prod", &["sre"], json!({})).await;
    let path = format!("/v1/decisions/{id}");
    assert_eq!(alice.get(&path).await.0, 200);
    assert_eq!(dave.get(&path).await, (404, json!({"error": "not_found"})));
    let (_, list) = dave.get("/v1/decisions?authorized=sre").await;
    assert_eq!(
        list,
        json!({"decisions": []}),
        "the token's visibility, not the query's roles"
    );
    let (_, list) = alice.get("/v1/decisions?authorized=sre,dba").await;
    assert_eq!(list["decisions"][0]["id"], json!(id));

    // The body operator must be the token's principal or one it acts for.
    let (code, out) = alice.answer(&id, "bob", json!({})).await;
    assert_eq!(
        (code, &out["error"], &out["field"]),
        (403, &json!("answer_failed"), &json!("operator")),
        "{out}"
    );
    let (code, out) = bot.answer(&id, "dave", json!({})).await;
    assert_eq!(
        (code, &out["error"]),
        (403, &json!("answer_failed")),
        "{out}"
    );
    let (code, out) = dave.answer(&id, "dave", json!({})).await;
    assert!(
        code == 403 || code == 404,
        "a dba may not answer an sre decision: {code} {out}"
    );
    let (code, out) = svc.answer(&id, "svc", json!({})).await;
    assert_eq!(
        (code, &out["error"]),
        (403, &json!("answer_failed")),
        "no self-approval: {out}"
    );
    let ack = json!({"surface": "inbox", "operator": "bob"});
    let (code, out) = alice.post(&format!("{path}/ack"), ack).await;
    assert_eq!((code, &out["error"]), (403, &json!("ack_failed")), "{out}");
    let cancel = json!({"operator": "bob", "reason": "x"});
    let (code, out) = alice.post(&format!("{path}/cancel"), cancel).await;
    assert_eq!(
        (code, &out["error"]),
        (403, &json!("cancel_failed")),
        "{out}"
    );
    let (_, d) = alice.get(&path).await;
    assert_eq!(
        (&d["status"], &d["answers"], &d["ackAt"]),
        (&json!("open"), &json!([]), &Value::Null),
        "refusals wrote nothing"
    );

    // Acting for alice is allowed and recorded as such.
    let (code, out) = bot
        .answer(&id, "alice", json!({"decision": "approved"}))
        .await;
    assert_eq!(
        (code, &out["approval"]["decidedBy"]),
        (200, &json!("alice")),
        "{out}"
    );
    let (_, d) = alice.get(&path).await;
    assert_eq!(
        (
            &d["answers"][0]["operator"],
            &d["answers"][0]["submittedBy"]
        ),
        (&json!("alice"), &json!("bot"))
    );

    // The asker cancels its own decision, naming itself.
    let id = svc.ask("deploy.prod", &["sre"], json!({})).await;
    let cancel = json!({"operator": "svc", "reason": "superseded"});
    let (code, out) = svc
        .post(&format!("/v1/decisions/{id}/cancel"), cancel)
        .await;
    assert_eq!((code, &out["status"]), (200, &json!("cancelled")), "{out}");
}
