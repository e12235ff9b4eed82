//! witness v0.1.1's HTTP API under `/v1/`, against the real binary: every
//! route, every error body, the two-person flow, and both identity modes.
//! Requests are shaped as v0.1.1's Python client (httpx, `json=`) and a
//! TypeScript `fetch` send them.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// An HTTP caller of the `/v1/` API with fixed headers.
struct V01 {
    base: String,
    http: reqwest::Client,
    headers: Vec<(&'static str, String)>,
}

impl V01 {
    fn new(s: &Server) -> V01 {
        V01 {
            base: format!("http://{}", s.addr),
            http: reqwest::Client::new(),
            headers: Vec::new(),
        }
    }

    fn with(s: &Server, headers: &[(&'static str, &str)]) -> V01 {
        V01 {
            headers: headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            ..V01::new(s)
        }
    }

    fn token(s: &Server, name: &str) -> V01 {
        V01::with(s, &[("authorization", &format!("Bearer {}", token(name)))])
    }

    async fn send(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        for (k, v) in &self.headers {
            req = req.header(*k, v);
        }
        if let Some(b) = body {
            // As v0.1.1's Python client (httpx `json=`) sends it.
            req = req.header("content-type", "application/json").body(b);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let bytes = res.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, Some(body.to_string().into_bytes()))
            .await
    }

    /// POST /v1/decisions as the Python client's `ask()`; the decision id.
    async fn ask(&self, kind: &str, roles: &[&str], extra: Value) -> String {
        let mut body = json!({
            "kind": kind,
            "input": {"actionType": "send_email_reply", "to": "a@example.com"},
            "responseShape": {"decision": "string"},
            "authorizedRoles": roles,
            "surfaces": ["inbox"],
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, out) = self.post("/v1/decisions", body).await;
        assert_eq!(status, 201, "{out}");
        out["decisionId"].as_str().expect("decisionId").to_string()
    }

    async fn answer(&self, id: &str, operator: &str, answer: Value) -> (u16, Value) {
        let body = json!({"operator": operator, "answer": answer, "rationale": "checked"});
        self.post(&format!("/v1/decisions/{id}/answer"), body).await
    }
}

fn token(name: &str) -> String {
    format!("tok-{name}-0123456789abcdef")
}

fn principal(name: &str, roles: &[&str], extra: &str) -> String {
    format!(
        "[[principals]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\nroles = {roles:?}\n{extra}\n",
        witness::auth::token_sha256(&token(name)),
    )
}

const TWO_PERSON: &str = "[[policies]]\nkind = \"scram.*\"\nrequired_approvals = 2\n";

fn err(code: &str, field: &str) -> Value {
    json!({"error": code, "field": field})
}

#[tokio::test]
async fn dev_mode_round_trip_as_the_python_client_sends_it() {
    let s = Server::start("");
    let c = V01::new(&s);
    let (status, health) = c.get("/v1/health").await;
    assert_eq!(
        (status, &health["status"], &health["service"]),
        (200, &json!("ok"), &json!("witness"))
    );

    let id = c
        .ask("reeve.action.review", &["reeve.owner"], json!({}))
        .await;
    let (status, d) = c.get(&format!("/v1/decisions/{id}")).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["id"], json!(id));
    assert_eq!(d["kind"], json!("reeve.action.review"));
    assert_eq!(d["status"], json!("open"));
    assert_eq!(d["input"]["to"], json!("a@example.com"));
    assert_eq!(d["responseShape"], json!({"decision": "string"}));
    assert_eq!(d["authorizedRoles"], json!(["reeve.owner"]));
    assert_eq!(d["surfaces"], json!(["inbox"]));
    assert_eq!(d["requiresTwoPerson"], json!(false));
    for key in [
        "contextHash",
        "firstOperator",
        "firstAt",
        "secondOperator",
        "closedAt",
        "closedReason",
    ] {
        assert_eq!(d[key], Value::Null, "{key}");
    }
    let created = d["createdAt"].as_i64().expect("createdAt: integer ms");
    assert!(
        created > 1_600_000_000_000 && created < 10_000_000_000_000,
        "ms, not µs"
    );
    assert_eq!(
        d["timeoutAt"].as_i64(),
        Some(created + 86_400_000),
        "v0.1.1's 24h hint"
    );

    let (_, list) = c.get("/v1/decisions?authorized=other,reeve.owner").await;
    assert_eq!(list["decisions"][0]["id"], json!(id));
    let (_, list) = c.get("/v1/decisions?authorized=other").await;
    assert_eq!(list, json!({"decisions": []}));

    let ack = json!({"surface": "inbox", "operator": "op-ack"});
    let (status, out) = c
        .post(&format!("/v1/decisions/{id}/ack"), ack.clone())
        .await;
    assert_eq!(
        (status, out),
        (200, json!({"accepted": true, "alreadyAcked": false}))
    );
    let (_, out) = c
        .post(&format!("/v1/decisions/{id}/ack"), ack.clone())
        .await;
    assert_eq!(out, json!({"accepted": true, "alreadyAcked": true}));

    let (status, out) = c.answer(&id, "op-1", json!({"decision": "approved"})).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["status"], json!("closed"));
    let a = &out["approval"];
    assert_eq!(
        (&a["decisionId"], &a["decidedBy"], &a["status"]),
        (&json!(id), &json!("op-1"), &json!("approved"))
    );
    assert_eq!(
        (&a["rationale"], &a["output"]),
        (&json!("checked"), &json!({"decision": "approved"}))
    );
    assert!(a["decidedAt"].as_i64().unwrap() >= created);
    assert!(a.get("coDecidedBy").is_none());

    let (_, d) = c.get(&format!("/v1/decisions/{id}")).await;
    assert_eq!(
        (&d["status"], &d["firstOperator"], &d["firstRationale"]),
        (&json!("approved"), &json!("op-1"), &json!("checked"))
    );
    assert!(d["closedAt"].as_i64().unwrap() >= created);
    assert_eq!(d["ackSurface"], json!("inbox"));
    // The same decision, through gRPC: one implementation.
    let mut grpc = s.client("op-2", &["reeve.owner"]).await;
    let g = grpc
        .get_decision(proto::GetDecisionRequest {
            decision_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(g.status, proto::Status::Approved as i32);
    assert_eq!(g.answers[0].operator, "op-1");

    // Closed: no second answer, no cancel, an ACK is not accepted.
    let (status, out) = c.answer(&id, "op-2", json!({})).await;
    assert_eq!(
        (status, &out["error"]),
        (409, &json!("answer_failed")),
        "{out}"
    );
    let cancel = json!({"operator": "op-1", "reason": "late"});
    let (status, out) = c.post(&format!("/v1/decisions/{id}/cancel"), cancel).await;
    assert_eq!(
        (status, &out["error"]),
        (409, &json!("cancel_failed")),
        "{out}"
    );
    let (_, out) = c.post(&format!("/v1/decisions/{id}/ack"), ack).await;
    assert_eq!(out, json!({"accepted": false, "alreadyAcked": false}));
    let (_, list) = c.get("/v1/decisions?authorized=reeve.owner").await;
    assert_eq!(
        list,
        json!({"decisions": []}),
        "only open decisions are listed"
    );
}

#[tokio::test]
async fn verdicts_cancel_and_timeout_map_to_v01_statuses() {
    let s = Server::start("");
    let c = V01::new(&s);
    for (answer, status) in [
        (json!({"decision": "rejected"}), "rejected"),
        (json!({"approved": false}), "rejected"),
        (
            json!({"decision": "approved", "approved": false}),
            "rejected",
        ),
        (json!({"approved": true}), "approved"),
        (json!("free text"), "approved"),
    ] {
        let id = c.ask("reeve.action.review", &["r"], json!({})).await;
        let (code, out) = c.answer(&id, "op-1", answer.clone()).await;
        assert_eq!(
            (code, &out["approval"]["status"]),
            (200, &json!(status)),
            "{answer}: {out}"
        );
        let (_, d) = c.get(&format!("/v1/decisions/{id}")).await;
        assert_eq!((&d["status"], &d["firstAnswer"]), (&json!(status), &answer));
    }

    let id = c.ask("reeve.action.review", &["r"], json!({})).await;
    let body = json!({"operator": "op-cancel", "reason": "no longer needed"});
    let (code, out) = c.post(&format!("/v1/decisions/{id}/cancel"), body).await;
    assert_eq!(
        (code, out),
        (200, json!({"decisionId": id, "status": "cancelled"}))
    );
    let (_, d) = c.get(&format!("/v1/decisions/{id}")).await;
    assert_eq!(
        (&d["status"], &d["closedReason"]),
        (&json!("cancelled"), &json!("no longer needed"))
    );

    // An expiry is `timeout`, never a rejection.
    let id = c
        .ask("reeve.action.review", &["r"], json!({"timeoutMs": 300}))
        .await;
    let (_, d) = c.get(&format!("/v1/decisions/{id}")).await;
    assert_eq!(
        d["timeoutAt"].as_i64(),
        Some(d["createdAt"].as_i64().unwrap() + 300)
    );
    let path = format!("/v1/decisions/{id}");
    eventually(
        "the decision times out",
        Duration::from_secs(10),
        || async { c.get(&path).await.1["status"] == json!("timeout") },
    )
    .await;
    let (_, d) = c.get(&path).await;
    assert_eq!(d["closedReason"], json!("timeout"));
}

#[tokio::test]
async fn two_person_awaits_the_second_and_voids_on_changed_context() {
    let s = Server::start(TWO_PERSON);
    let c = V01::new(&s);
    let ctx = json!({"tenants": ["a", "b"], "phase": "emergency"});
    let snap = json!({"contextSnapshot": ctx});
    let id = c
        .ask(
            "scram.confirm-global-readonly",
            &["scram.operator"],
            snap.clone(),
        )
        .await;
    let (_, d) = c.get(&format!("/v1/decisions/{id}")).await;
    assert_eq!(d["requiresTwoPerson"], json!(true));
    // v0.1.1's hash: SHA-256 of the canonical JSON (keys sorted, no spaces).
    let expected =
        witness::core::canonical::sha256_hex(br#"{"phase":"emergency","tenants":["a","b"]}"#);
    assert_eq!(d["contextHash"], json!(expected));

    let (code, out) = c.answer(&id, "op-1", json!({"decision": "approved"})).await;
    assert_eq!(
        (code, out),
        (200, json!({"status": "awaiting-second", "decisionId": id}))
    );
    let (_, d) = c.get(&format!("/v1/decisions/{id}")).await;
    assert_eq!(
        (&d["status"], &d["firstOperator"], &d["secondOperator"]),
        (&json!("open"), &json!("op-1"), &Value::Null)
    );
    let (code, out) = c.answer(&id, "op-1", json!({"decision": "approved"})).await;
    assert_eq!(
        (code, &out["error"]),
        (409, &json!("answer_failed")),
        "same operator twice: {out}"
    );
    // Without the current context the second approval cannot complete.
    let (code, out) = c.answer(&id, "op-2", json!({"decision": "approved"})).await;
    assert_eq!(
        (code, &out["error"]),
        (409, &json!("answer_failed")),
        "{out}"
    );
    assert!(
        out["message"].as_str().unwrap().contains("re-confirmed"),
        "{out}"
    );

    let second = json!({"operator": "op-2", "answer": {"decision": "approved"},
                        "rationale": "still bad", "currentContext": ctx});
    let (code, out) = c.post(&format!("/v1/decisions/{id}/answer"), second).await;
    assert_eq!((code, &out["status"]), (200, &json!("closed")), "{out}");
    let a = &out["approval"];
    assert_eq!(
        (&a["decidedBy"], &a["coDecidedBy"], &a["status"]),
        (&json!("op-1"), &json!("op-2"), &json!("approved"))
    );
    assert_eq!(a["coRationale"], json!("still bad"));
    let (_, d) = c.get(&format!("/v1/decisions/{id}")).await;
    assert_eq!(
        (&d["status"], &d["secondOperator"]),
        (&json!("approved"), &json!("op-2"))
    );

    let id = c
        .ask("scram.confirm-global-readonly", &["scram.operator"], snap)
        .await;
    c.answer(&id, "op-1", json!({"decision": "approved"})).await;
    let changed = json!({"operator": "op-2", "answer": {"decision": "approved"}, "rationale": "ok",
                         "currentContext": {"phase": "recovered", "tenants": []}});
    let (code, out) = c.post(&format!("/v1/decisions/{id}/answer"), changed).await;
    assert_eq!(
        (code, out),
        (
            200,
            json!({"status": "context_changed", "decisionId": id, "reason": "context_changed"})
        )
    );
    let (_, d) = c.get(&format!("/v1/decisions/{id}")).await;
    assert_eq!(
        (&d["status"], &d["closedReason"], &d["secondOperator"]),
        (
            &json!("context_changed"),
            &json!("context_changed"),
            &Value::Null
        )
    );

    // Two-person without a snapshot is refused, naming v0.1.1's field.
    let body = json!({"kind": "scram.x", "input": {}, "responseShape": {}, "authorizedRoles": ["r"], "surfaces": []});
    let (code, out) = c.post("/v1/decisions", body).await;
    assert_eq!(
        (code, &out["error"], &out["field"]),
        (400, &json!("ask_failed"), &json!("contextSnapshot")),
        "{out}"
    );
}

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
async fn fetch_style_requests_and_request_id_retries_work() {
    let s = Server::start("");
    let c = V01::new(&s);
    // A TypeScript `fetch(url, {method: "POST", body: JSON.stringify(...)})`
    // sends text/plain; v0.1.1 (Hono) parsed it regardless.
    let body = json!({"kind": "k.fetch", "input": 1, "responseShape": {}, "authorizedRoles": ["r"], "surfaces": []});
    let res = reqwest::Client::new()
        .post(format!("{}/v1/decisions", c.base))
        .header("content-type", "text/plain;charset=UTF-8")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);

    // witness's addition: `requestId` makes a retried ask return the first.
    let first = c
        .ask("k.retry", &["r"], json!({"requestId": "req-1"}))
        .await;
    let again = c
        .ask("k.retry", &["r"], json!({"requestId": "req-1"}))
        .await;
    assert_eq!(first, again);
    let mut other = body.clone();
    other["requestId"] = json!("req-1");
    let (code, got) = c.post("/v1/decisions", other).await;
    assert_eq!(
        (code, &got["error"], &got["field"]),
        (409, &json!("ask_failed"), &json!("requestId")),
        "{got}"
    );
    let (_, list) = c.get("/v1/decisions?authorized=r").await;
    assert_eq!(
        list["decisions"].as_array().unwrap().len(),
        2,
        "newest first: {list}"
    );
    assert_eq!(list["decisions"][0]["id"], json!(first));
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

#[tokio::test]
async fn postgres_store_and_health_follows_the_store() {
    let pg = pg::PgCluster::start();
    let url = pg.fresh_database().await;
    let s = Server::start_on(&url, TWO_PERSON);
    let c = V01::new(&s);
    let ctx = json!({"n": 1});
    let id = c
        .ask("scram.x", &["op"], json!({"contextSnapshot": ctx}))
        .await;
    let (_, out) = c.answer(&id, "op-1", json!({})).await;
    assert_eq!(out["status"], json!("awaiting-second"));
    let body = json!({"operator": "op-2", "answer": {}, "rationale": "ok", "currentContext": ctx});
    let (_, out) = c.post(&format!("/v1/decisions/{id}/answer"), body).await;
    assert_eq!(out["approval"]["coDecidedBy"], json!("op-2"), "{out}");

    pg.stop();
    eventually("health reports the store down", Duration::from_secs(30), || async {
        c.get("/v1/health").await == (503, json!({"status": "unavailable", "service": "witness", "version": env!("CARGO_PKG_VERSION")}))
    })
    .await;
    let body = json!({"kind": "k", "input": {}, "responseShape": {}, "authorizedRoles": ["op"], "surfaces": []});
    let (code, out) = c.post("/v1/decisions", body).await;
    assert_eq!((code, &out["error"]), (503, &json!("unavailable")), "{out}");
    pg.start_again();
    eventually("health recovers", Duration::from_secs(30), || async {
        c.get("/v1/health").await.0 == 200
    })
    .await;
}
