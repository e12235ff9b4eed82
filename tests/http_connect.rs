//! The Connect protocol on the listen port, driven by the real `curl` and
//! `buf curl` against the real binary: every unary RPC with JSON, binary
//! proto, server streams, errors and identity.

mod common;

use common::*;
use prost::Message;
use serde_json::{json, Value};
use std::process::Command;

/// An HTTP answer: status and body.
struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// POSTs `body` to `path` with the real curl.
fn curl(addr: &str, path: &str, headers: &[&str], body: &[u8]) -> Reply {
    let dir = tempfile::tempdir().unwrap();
    let req = dir.path().join("req");
    let out = dir.path().join("out");
    std::fs::write(&req, body).unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-o"])
        .arg(&out)
        .args(["-w", "%{http_code}", "--data-binary"])
        .arg(format!("@{}", req.display()));
    for h in headers {
        cmd.args(["-H", h]);
    }
    let o = cmd.arg(format!("http://{addr}{path}")).output().unwrap();
    assert!(
        o.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Reply {
        status: String::from_utf8_lossy(&o.stdout).trim().parse().unwrap(),
        body: std::fs::read(&out).unwrap_or_default(),
    }
}

const JSON: &str = "content-type: application/json";

fn rpc(s: &Server, method: &str, who: &[&str], body: Value) -> Reply {
    let mut headers = vec![JSON];
    headers.extend_from_slice(who);
    curl(
        &s.addr,
        &format!("/witness.v1.WitnessService/{method}"),
        &headers,
        body.to_string().as_bytes(),
    )
}

const DEPLOYER: &[&str] = &["x-witness-principal: deployer"];
const ALICE: &[&str] = &["x-witness-principal: alice", "x-witness-roles: sre"];

fn ok(r: Reply) -> Value {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

fn ask_json(kind: &str) -> Value {
    json!({
        "kind": kind,
        "input": {"service": "api", "version": "1.4.2"},
        "authorized_roles": ["sre"],
        "surfaces": ["console"],
        "contextSnapshot": {"head": "abc"},
    })
}

#[test]
fn every_unary_rpc_answers_connect_json() {
    let s = Server::start("");
    let asked = ok(rpc(&s, "Ask", DEPLOYER, ask_json("deploy.production")));
    assert_eq!(asked["created"], true);
    let d = &asked["decision"];
    let id = d["id"].as_str().unwrap().to_string();
    assert_eq!(d["kind"], "deploy.production");
    assert_eq!(d["status"], "STATUS_OPEN");
    assert_eq!(d["askedBy"], "deployer");
    assert_eq!(d["authorizedRoles"], json!(["sre"]));
    assert_eq!(d["input"]["service"], "api");
    assert!(d["createdAt"].as_str().unwrap().ends_with('Z'), "{d}");
    assert_eq!(
        rpc(
            &s,
            "Ask",
            DEPLOYER,
            json!({"kind": "n", "authorized_roles": ["dba"], "input": {"n": 2}})
        )
        .json()["decision"]["input"]["n"]
            .to_string(),
        "2",
        "numbers print as grpcurl prints them"
    );

    let got = ok(rpc(&s, "GetDecision", ALICE, json!({"decisionId": id})));
    assert_eq!(got["decision"]["id"], id.as_str());
    assert_eq!(got["decision"]["status"], "STATUS_OPEN");

    let listed = ok(rpc(
        &s,
        "ListDecisions",
        ALICE,
        json!({"statuses": ["STATUS_OPEN"]}),
    ));
    let ids: Vec<&str> = listed["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);

    let acked = ok(rpc(
        &s,
        "AckDelivery",
        ALICE,
        json!({"decision_id": id, "surface": "console"}),
    ));
    assert_eq!(acked["accepted"], true);
    assert_eq!(acked["decision"]["deliveredVia"], "console");

    let reported = ok(rpc(
        &s,
        "ReportContext",
        DEPLOYER,
        json!({"decision_id": id, "context_snapshot": {"head": "abc"}}),
    ));
    assert_eq!(reported["matched"], true);

    let answered = ok(rpc(
        &s,
        "Answer",
        ALICE,
        json!({"decision_id": id, "verdict": "VERDICT_APPROVE", "rationale": "canary is green"}),
    ));
    assert_eq!(answered["outcome"], "ANSWER_OUTCOME_CLOSED");
    assert_eq!(answered["decision"]["status"], "STATUS_APPROVED");
    assert_eq!(
        answered["decision"]["answers"][0]["rationale"],
        "canary is green"
    );
    assert_eq!(answered["decision"]["answers"][0]["operator"], "alice");

    let closed = ok(rpc(&s, "GetDecision", DEPLOYER, json!({"decisionId": id})));
    assert_eq!(closed["decision"]["status"], "STATUS_APPROVED");
    assert!(
        closed["receipt"]["body"].as_str().is_some(),
        "a closed decision has a receipt: {closed}"
    );

    let other = ok(rpc(&s, "Ask", DEPLOYER, ask_json("deploy.staging")));
    let other_id = other["decision"]["id"].as_str().unwrap();
    let cancelled = ok(rpc(
        &s,
        "Cancel",
        DEPLOYER,
        json!({"decision_id": other_id, "reason": "superseded"}),
    ));
    assert_eq!(cancelled["decision"]["status"], "STATUS_CANCELLED");
    assert_eq!(cancelled["decision"]["closeReason"], "superseded");
}

/// Decisions the principal can see, over gRPC, to prove nothing was written.
async fn count_decisions(s: &Server) -> usize {
    let mut c = s.client("alice", &["sre"]).await;
    c.list_decisions(proto::ListDecisionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .decisions
        .len()
}

#[tokio::test]
async fn bad_input_is_a_connect_error_naming_the_field_and_writes_nothing() {
    let s = Server::start("[limits]\nmax_message_bytes = 8192\n");
    let cases = [
        (json!({"kind": "", "authorized_roles": ["sre"]}), "kind"),
        (
            json!({"kind": "k", "authorized_roles": []}),
            "authorized_roles",
        ),
        (
            json!({"kind": "k", "authorized_roles": ["sre"], "requiredApprovals": "two"}),
            "requiredApprovals",
        ),
        (
            json!({"kind": "k", "authorized_roles": ["sre"], "kindd": "x"}),
            "kindd",
        ),
        (
            json!({"kind": "k", "authorized_roles": ["sre"], "timeout": "forever"}),
            "timeout",
        ),
    ];
    for (body, field) in cases {
        let r = rpc(&s, "Ask", DEPLOYER, body.clone());
        assert_eq!(r.status, 400, "{body}");
        let e = r.json();
        assert_eq!(e["code"], "invalid_argument", "{body}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains(field),
            "{body}: the error names {field}: {e}"
        );
    }
    let r = curl(
        &s.addr,
        "/witness.v1.WitnessService/Ask",
        &[JSON, DEPLOYER[0]],
        b"{\"kind\": ",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "invalid_argument");
    // Over max_message_bytes: refused before it is parsed.
    let big = json!({"kind": "k", "authorized_roles": ["sre"], "input": "x".repeat(9000)});
    let r = rpc(&s, "Ask", DEPLOYER, big);
    assert_eq!(r.status, 429);
    let e = r.json();
    assert_eq!(e["code"], "resource_exhausted");
    assert!(
        e["message"].as_str().unwrap().contains("max_message_bytes"),
        "{e}"
    );
    assert_eq!(count_decisions(&s).await, 0, "nothing was written");
    // Unknown ids and methods.
    let r = rpc(&s, "GetDecision", ALICE, json!({"decisionId": "nope"}));
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (404, json!("not_found"))
    );
    let r = rpc(&s, "Launch", ALICE, json!({}));
    assert_eq!(r.json()["code"], "unimplemented");
    // Other content types and protocol versions.
    let r = curl(
        &s.addr,
        "/witness.v1.WitnessService/Ask",
        &["content-type: text/plain"],
        b"{}",
    );
    assert_eq!(r.status, 415);
    let r = curl(
        &s.addr,
        "/witness.v1.WitnessService/Ask",
        &[JSON, "connect-protocol-version: 2"],
        b"{}",
    );
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("connect-protocol-version"));
    // A unary content type on a streaming method.
    let r = rpc(&s, "StreamDecisions", ALICE, json!({}));
    assert_eq!(r.status, 415);
}

#[test]
fn binary_proto_round_trips() {
    let s = Server::start("");
    let req = ask("deploy.production", &["sre"], 1, None);
    let r = curl(
        &s.addr,
        "/witness.v1.WitnessService/Ask",
        &[
            "content-type: application/proto",
            "connect-protocol-version: 1",
            DEPLOYER[0],
        ],
        &req.encode_to_vec(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let res = proto::AskResponse::decode(r.body.as_slice()).unwrap();
    let d = res.decision.unwrap();
    assert_eq!(d.kind, "deploy.production");
    assert_eq!(d.status, proto::Status::Open as i32);
    // Invalid bytes are the caller's fault, not INTERNAL.
    let r = curl(
        &s.addr,
        "/witness.v1.WitnessService/Ask",
        &["content-type: application/proto", DEPLOYER[0]],
        b"\x12\x03\xff\xfe\xfd",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "invalid_argument");
}

/// Splits a Connect streaming body into (flags, payload) envelopes.
fn envelopes(mut b: &[u8]) -> Vec<(u8, Value)> {
    let mut out = vec![];
    while b.len() >= 5 {
        let len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
        out.push((b[0], serde_json::from_slice(&b[5..5 + len]).unwrap()));
        b = &b[5 + len..];
    }
    assert!(b.is_empty(), "trailing bytes");
    out
}

fn enveloped(v: Value) -> Vec<u8> {
    let p = v.to_string().into_bytes();
    let mut b = vec![0];
    b.extend_from_slice(&(p.len() as u32).to_be_bytes());
    b.extend_from_slice(&p);
    b
}

#[tokio::test]
async fn watch_decision_streams_connect_envelopes_until_it_closes() {
    let s = Server::start("");
    let asked = ok(rpc(&s, "Ask", DEPLOYER, ask_json("deploy.production")));
    let id = asked["decision"]["id"].as_str().unwrap().to_string();
    let addr = s.addr.clone();
    let body = enveloped(json!({"decision_id": id}));
    let watcher = std::thread::spawn(move || {
        curl(
            &addr,
            "/witness.v1.WitnessService/WatchDecision",
            &["content-type: application/connect+json", DEPLOYER[0]],
            &body,
        )
    });
    let mut alice = s.client("alice", &["sre"]).await;
    alice.answer(approve(&id, "ok")).await.unwrap();
    let r = watcher.join().unwrap();
    assert_eq!(r.status, 200);
    let frames = envelopes(&r.body);
    let (last_flags, last) = frames.last().unwrap();
    assert_eq!(*last_flags, 2, "ends with an end-of-stream message");
    assert!(last.get("error").is_none(), "{last}");
    let statuses: Vec<&Value> = frames[..frames.len() - 1]
        .iter()
        .map(|(_, f)| &f["event"]["decision"]["status"])
        .collect();
    assert_eq!(statuses.last().unwrap().as_str(), Some("STATUS_APPROVED"));

    // Errors arrive in the end-of-stream message under HTTP 200.
    let r = curl(
        &s.addr,
        "/witness.v1.WitnessService/WatchDecision",
        &["content-type: application/connect+json", DEPLOYER[0]],
        &enveloped(json!({"decision_id": "missing"})),
    );
    assert_eq!(r.status, 200);
    let frames = envelopes(&r.body);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].0, 2);
    assert_eq!(frames[0].1["error"]["code"], "not_found");
}

fn token_config() -> String {
    let p = |name: &str, roles: &[&str]| {
        format!(
            "[[principals]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\nroles = {roles:?}\n",
            witness::auth::token_sha256(&format!("tok-{name}-0123456789abcdef"))
        )
    };
    [p("svc", &[]), p("alice", &["sre"])].concat()
}

#[tokio::test]
async fn token_mode_refuses_wrong_tokens_and_dev_headers_over_connect() {
    let s = Server::start(&token_config());
    let body = ask_json("deploy.production");
    for who in [
        vec!["authorization: Bearer tok-wrong-secret-value-42"],
        vec![],
        ALICE.to_vec(),
    ] {
        let r = rpc(&s, "Ask", &who, body.clone());
        assert_eq!(r.status, 401, "{who:?}");
        let e = r.json();
        assert_eq!(e["code"], "unauthenticated", "{who:?}");
        assert!(!e.to_string().contains("tok-wrong"), "never echo a token");
    }
    let ok_token = "authorization: Bearer tok-svc-0123456789abcdef";
    let asked = ok(rpc(&s, "Ask", &[ok_token], body));
    assert_eq!(asked["decision"]["askedBy"], "svc");
    // Streams refuse too, in the end-of-stream message.
    let r = curl(
        &s.addr,
        "/witness.v1.WitnessService/StreamDecisions",
        &[
            "content-type: application/connect+json",
            "authorization: Bearer nope-nope-nope",
        ],
        &enveloped(json!({})),
    );
    assert_eq!(envelopes(&r.body)[0].1["error"]["code"], "unauthenticated");
    // Who may see what is the same rule as gRPC: alice sees it, svc's
    // decision is not for a stranger.
    let mut alice = s.client_with_token("tok-alice-0123456789abcdef").await;
    let listed = alice
        .list_decisions(proto::ListDecisionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.decisions.len(), 1);
}

#[test]
fn rate_limits_apply_to_connect() {
    let s = Server::start("[limits]\nrequests_per_second = 1\nburst = 2\n");
    let codes: Vec<u16> = (0..4)
        .map(|_| rpc(&s, "ListDecisions", ALICE, json!({})).status)
        .collect();
    assert_eq!(&codes[..2], &[200, 200], "{codes:?}");
    assert!(codes[2..].contains(&429), "{codes:?}");
}

fn buf() -> std::path::PathBuf {
    let b = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/node_modules/.bin/buf");
    assert!(
        b.exists(),
        "buf is missing: run `make tools` (npm ci in tools/), which `make test` does"
    );
    b
}

/// `buf curl` with the schema from proto/ (no reflection needed).
fn buf_curl(s: &Server, protocol: &str, method: &str, who: &[&str], data: Value) -> String {
    let mut cmd = Command::new(buf());
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["curl", "--schema", "proto", "--protocol", protocol])
        .args(["--timeout", "10s", "-d", &data.to_string()]);
    for h in who {
        cmd.args(["-H", h]);
    }
    let o = cmd
        .arg(format!(
            "http://{}/witness.v1.WitnessService/{method}",
            s.addr
        ))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "buf curl --protocol {protocol} {method} failed: {out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Parses buf curl's output: one pretty-printed JSON document per message.
fn documents(out: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(out)
        .into_iter::<Value>()
        .map(|v| v.unwrap())
        .collect()
}

#[tokio::test]
async fn buf_curl_speaks_connect_and_grpc_web() {
    let s = Server::start("");
    for protocol in ["connect", "grpcweb"] {
        let asked = documents(&buf_curl(
            &s,
            protocol,
            "Ask",
            DEPLOYER,
            ask_json(&format!("deploy.{protocol}")),
        ));
        let d = &asked[0]["decision"];
        assert_eq!(d["status"], "STATUS_OPEN", "{protocol}");
        assert_eq!(d["kind"], format!("deploy.{protocol}"));
        let id = d["id"].as_str().unwrap().to_string();
        let mut alice = s.client("alice", &["sre"]).await;
        alice.answer(approve(&id, "fine")).await.unwrap();
        // A server stream that ends by itself: WatchDecision of a closed
        // decision replays it and ends.
        let events = documents(&buf_curl(
            &s,
            protocol,
            "WatchDecision",
            DEPLOYER,
            json!({"decision_id": id}),
        ));
        let last = events.last().unwrap();
        assert_eq!(
            last["event"]["decision"]["status"], "STATUS_APPROVED",
            "{protocol}: {events:?}"
        );
    }
}

/// `buf curl URL` with no `--schema` and its default protocol (Connect)
/// learns the schema from server reflection, itself spoken over Connect.
#[test]
fn buf_curl_finds_the_schema_by_reflection_over_connect() {
    let s = Server::start("");
    let elsewhere = tempfile::tempdir().unwrap();
    let o = Command::new(buf())
        .current_dir(elsewhere.path())
        .args(["curl", "--timeout", "10s", "-d"])
        .arg(ask_json("deploy.reflected").to_string())
        .args(DEPLOYER.iter().flat_map(|h| ["-H", h]))
        .arg(format!("http://{}/witness.v1.WitnessService/Ask", s.addr))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let asked = documents(&out);
    assert_eq!(asked[0]["decision"]["kind"], "deploy.reflected");
    // An unknown service is the reflection service's own NOT_FOUND.
    let o = Command::new(buf())
        .current_dir(elsewhere.path())
        .args(["curl", "--timeout", "10s", "-d", "{}"])
        .arg(format!("http://{}/no.such.Service/Method", s.addr))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no.such.Service"), "{err}");
}

#[test]
fn grpc_web_is_refused_without_a_token_in_token_mode() {
    let s = Server::start(&token_config());
    let o = Command::new(buf())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["curl", "--schema", "proto", "--protocol", "grpcweb"])
        .args(["-H", "authorization: Bearer wrong-token-value"])
        .args(["-d", "{}"])
        .arg(format!(
            "http://{}/witness.v1.WitnessService/ListDecisions",
            s.addr
        ))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unauthenticated"), "{err}");
}
