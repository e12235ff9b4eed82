//! witness v0.1.1's HTTP API under `/v1/`, against the real binary: every
//! route's happy path, v0.1.1's statuses and answer results, the two-person
//! flow, and the store's health (SQLite and PostgreSQL). Refusals and
//! identity are in `v01_refusals.rs`.

mod common;
#[path = "common/v01.rs"]
mod v01;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;
use v01::*;

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
    // Every key of v0.1.1's `Decision` (its Python client validates them).
    let keys = "id kind input responseShape authorizedRoles surfaces requiresTwoPerson \
                contextHash timeoutAt firstOperator firstAt firstRationale firstAnswer \
                secondOperator secondAt secondRationale secondAnswer status closedReason \
                createdAt closedAt";
    for key in keys.split_whitespace() {
        assert!(d.get(key).is_some(), "{key} missing: {d}");
    }
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
async fn text_plain_bodies_are_refused_and_request_id_retries_work() {
    let s = Server::start("");
    let c = V01::new(&s);
    // A bare `fetch(url, {method: "POST", body: JSON.stringify(...)})` sends
    // text/plain. v0.1.1 (Hono) parsed it regardless; witness refuses it
    // (415), because a cross-site page can send text/plain without asking
    // (issue 28). v0.1.1's own clients send application/json.
    let body = json!({"kind": "k.fetch", "input": 1, "responseShape": {}, "authorizedRoles": ["r"], "surfaces": []});
    let post = |ct: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/v1/decisions", c.base))
            .header("content-type", ct)
            .body(body.to_string())
            .send()
    };
    let res = post("text/plain;charset=UTF-8").await.unwrap();
    assert_eq!(res.status().as_u16(), 415);
    let res = post("application/json;charset=UTF-8").await.unwrap();
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
    let retry = json!({"operator": "op-1", "answer": {}, "rationale": "ok", "requestId": "ans-1"});
    let path = format!("/v1/decisions/{first}/answer");
    let (code, once) = c.post(&path, retry.clone()).await;
    assert_eq!((code, &once["status"]), (200, &json!("closed")), "{once}");
    assert_eq!(
        c.post(&path, retry).await,
        (200, once),
        "a retry returns the first result"
    );
    let id = c
        .ask("k.retry", &["r"], json!({"requestId": "req-2"}))
        .await;
    let (_, list) = c.get("/v1/decisions?authorized=r").await;
    assert_eq!(
        list["decisions"].as_array().unwrap().len(),
        2,
        "newest first: {list}"
    );
    assert_eq!(list["decisions"][0]["id"], json!(id));
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

    let long = "b".repeat(300);
    for id in ["not-a-real-id", "%00", "%C3%28", long.as_str()] {
        let got = c.get(&format!("/v1/decisions/{id}")).await;
        assert_eq!(got, (404, json!({"error": "not_found"})), "{id}");
        let body = json!({"surface": "inbox"});
        let got = c.post(&format!("/v1/decisions/{id}/ack"), body).await;
        assert_eq!(got, (404, json!({"error": "not_found"})), "{id}");
    }

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
