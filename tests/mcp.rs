//! `/mcp` (DESIGN §10) on the real binary, spoken raw over HTTP (the
//! official SDKs' own tests are in tests/mcp/): authentication with its 401
//! challenge, the resource metadata, `[mcp] enabled = false`, and policies
//! holding for agents exactly as for any client (`can_ask`, rate limits,
//! who sees what).

mod common;

use common::{principal, token, Server};
use futures::FutureExt;
use serde_json::{json, Value};

/// A minimal Streamable HTTP MCP client: one session, JSON-RPC over POST,
/// answers read from the SSE body.
struct Mcp {
    url: String,
    http: reqwest::Client,
    token: Option<String>,
    session: Option<String>,
    next_id: u64,
}

/// A tool call's outcome: its result, or the JSON-RPC error.
type Rpc = Result<Value, Value>;

impl Mcp {
    fn new(s: &Server, who: Option<&str>) -> Mcp {
        Mcp {
            url: format!("http://{}/mcp", s.addr),
            http: reqwest::Client::new(),
            token: who.map(token),
            session: None,
            next_id: 1,
        }
    }

    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .body(body.to_string());
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        if let Some(s) = &self.session {
            r = r.header("mcp-session-id", s);
        }
        r
    }

    async fn request(&mut self, method: &str, params: Value) -> Rpc {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let res = self.post(&body).send().await.expect("POST /mcp");
        assert!(res.status().is_success(), "{method}: HTTP {}", res.status());
        if let Some(s) = res.headers().get("mcp-session-id") {
            self.session = Some(s.to_str().expect("session id").to_string());
        }
        let text = res.text().await.expect("body");
        let reply = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .chain(serde_json::from_str::<Value>(&text).ok())
            .find(|m| m["id"] == json!(id))
            .unwrap_or_else(|| panic!("{method}: no reply with id {id} in {text}"));
        match reply.get("error") {
            Some(e) => Err(e.clone()),
            None => Ok(reply["result"].clone()),
        }
    }

    async fn connect(s: &Server, who: &str) -> Mcp {
        let mut m = Mcp::new(s, Some(who));
        let init = json!({"protocolVersion": "2025-11-25", "capabilities": {},
                          "clientInfo": {"name": "witness-tests", "version": "1"}});
        m.request("initialize", init).await.expect("initialize");
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let res = m.post(&note).send().await.expect("initialized");
        assert_eq!(res.status(), 202);
        m
    }

    async fn call(&mut self, tool: &str, args: Value) -> Value {
        self.request("tools/call", json!({"name": tool, "arguments": args}))
            .await
            .unwrap_or_else(|e| panic!("{tool}: protocol error {e}"))
    }
}

/// The text of a tool error result (fails if the call succeeded).
fn refusal(result: &Value) -> String {
    assert_eq!(
        result["isError"],
        json!(true),
        "expected a refusal: {result}"
    );
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn config(extra: &str) -> String {
    format!(
        "{}{}{}{extra}",
        principal("agent", &[], "can_ask = [\"deploy.*\"]"),
        principal("alice", &["sre"], ""),
        principal("stranger", &["finance"], ""),
    )
}

#[tokio::test]
async fn unauthenticated_requests_get_401_with_the_resource_metadata() {
    let s = Server::start(&config(""));
    let origin = format!("http://{}", s.addr);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}});
    for who in [None, Some("nobody")] {
        let mut m = Mcp::new(&s, None);
        m.token = who.map(token);
        let res = m.post(&init).send().await.expect("POST");
        assert_eq!(res.status(), 401, "{who:?}");
        let challenge = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            challenge.starts_with(&format!(
                "Bearer resource_metadata=\"{origin}/.well-known/oauth-protected-resource\""
            )),
            "{challenge}"
        );
        assert_eq!(challenge.contains("error=\"invalid_token\""), who.is_some());
        let body = res.text().await.unwrap();
        assert!(
            !body.contains(&token("nobody")),
            "never echo a token: {body}"
        );
    }
    // What the challenge points at: RFC 9728, naming this resource and (until
    // issuers are configured) no authorization servers.
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let text = reqwest::get(format!("{origin}{path}"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let meta: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(meta["resource"], json!(format!("{origin}/mcp")), "{path}");
        assert_eq!(meta["authorization_servers"], json!([]));
        assert_eq!(meta["bearer_methods_supported"], json!(["header"]));
    }
    // Paths under /mcp are guarded too.
    let res = reqwest::Client::new()
        .post(format!("{origin}/mcp/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // A valid token gets in.
    let mut m = Mcp::connect(&s, "agent").await;
    let tools = m.request("tools/list", json!({})).await.unwrap();
    assert_eq!(tools["tools"].as_array().map(Vec::len), Some(4));
}

#[tokio::test]
async fn mcp_disabled_is_404() {
    let s = Server::start(&config("[mcp]\nenabled = false\n"));
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}});
    let res = Mcp::new(&s, Some("agent"))
        .post(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let meta = reqwest::get(format!(
        "http://{}/.well-known/oauth-protected-resource",
        s.addr
    ))
    .await
    .unwrap();
    assert_eq!(meta.status(), 404);
}

#[tokio::test]
async fn an_agent_cannot_ask_outside_can_ask() {
    let s = Server::start(&config(""));
    let mut m = Mcp::connect(&s, "agent").await;
    let r = m
        .call(
            "request_approval",
            json!({"kind": "payments.send", "input": {"amount": 100}, "authorized_roles": ["sre"]}),
        )
        .await;
    let text = refusal(&r);
    assert!(
        text.starts_with("PERMISSION_DENIED: kind: agent may not ask about \"payments.send\""),
        "{text}"
    );
    let list = m.call("list_decisions", json!({})).await;
    assert_eq!(
        list["structuredContent"]["decisions"],
        json!([]),
        "nothing was asked"
    );
    // Without authorized_roles and no [mcp] authorized_roles, the agent is told to name them.
    let r = m
        .call("request_approval", json!({"kind": "deploy.x", "input": {}}))
        .await;
    assert!(
        refusal(&r).starts_with("INVALID_ARGUMENT: authorized_roles"),
        "{r}"
    );
}

#[tokio::test]
async fn an_agent_hits_its_rate_limit_like_any_client() {
    let s = Server::start(&config("[limits]\nrequests_per_second = 1\nburst = 3\n"));
    let mut m = Mcp::connect(&s, "agent").await;
    let mut refused = None;
    for i in 0..10 {
        let r = m.call("list_decisions", json!({"status": "OPEN"})).await;
        if r["isError"] == json!(true) {
            refused = Some((i, refusal(&r)));
            break;
        }
    }
    let (i, text) = refused.expect("the rate limit refuses within 10 calls");
    assert!(
        i >= 3,
        "the burst of 3 is allowed first (refused at call {i})"
    );
    assert!(text.starts_with("RESOURCE_EXHAUSTED: "), "{text}");
    // Another principal's budget is its own.
    let mut other = Mcp::connect(&s, "alice").await;
    let r = other.call("list_decisions", json!({})).await;
    assert_ne!(r["isError"], json!(true), "{r}");
}

#[tokio::test]
async fn another_principal_cannot_read_or_wait_on_a_decision_it_may_not_see() {
    let s = Server::start(&config(""));
    let mut agent = Mcp::connect(&s, "agent").await;
    // Asked (and left open) through wait_for_decision's timeout path: a
    // request_approval would block this test until someone answers.
    let mut grpc = s.client_with_token(&token("agent")).await;
    let d = common::asked(&mut grpc, common::ask("deploy.prod", &["sre"], 1, None)).await;
    let mine = agent
        .call(
            "wait_for_decision",
            json!({"decision_id": d.id, "timeout": "100ms"}),
        )
        .await;
    assert_eq!(mine["structuredContent"]["status"], json!("OPEN"), "{mine}");
    assert!(mine["content"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with("OPEN: 0 of 1 approvals"));

    let mut stranger = Mcp::connect(&s, "stranger").await;
    for (tool, args) in [
        ("get_decision", json!({"decision_id": d.id})),
        ("wait_for_decision", json!({"decision_id": d.id})),
        (
            "wait_for_decision",
            json!({"decision_id": d.id, "timeout": "1s"}),
        ),
    ] {
        let r = stranger.call(tool, args).await;
        let text = refusal(&r);
        assert!(text.starts_with("NOT_FOUND: "), "{tool}: {text}");
        assert!(!text.contains("deploy"), "{tool} reveals nothing: {text}");
    }
    let theirs = stranger.call("list_decisions", json!({})).await;
    assert_eq!(theirs["structuredContent"]["decisions"], json!([]));
    // A principal holding one of its roles sees it.
    let mut alice = Mcp::connect(&s, "alice").await;
    let seen = alice
        .call("get_decision", json!({"decision_id": d.id}))
        .await;
    assert_eq!(seen["structuredContent"]["decision_id"], json!(d.id));
    // No tool answers decisions.
    let tools = alice.request("tools/list", json!({})).await.unwrap();
    for t in tools["tools"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        assert!(
            !["answer", "approve", "reject"]
                .iter()
                .any(|w| name.contains(w)),
            "{name}"
        );
    }
}

#[tokio::test]
async fn progress_reports_an_escalation_and_the_summary_says_expired() {
    let s = Server::start(&config(
        "[[webhooks]]\nname = \"pager\"\nurl = \"http://127.0.0.1:9/hook\"\nsecret = \"s\"\n\
         [[policies]]\nkind = \"deploy.*\"\nescalation = [{ after = \"1s\", webhooks = [\"pager\"] }]\n",
    ));
    let mut m = Mcp::connect(&s, "agent").await;
    // Nobody answers: the call returns when the decision expires, and the
    // progress notifications on its stream tell what happened meanwhile.
    let id = m.next_id;
    m.next_id += 1;
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "request_approval", "_meta": {"progressToken": "p1"},
        "arguments": {"kind": "deploy.db", "input": {}, "authorized_roles": ["sre"], "timeout": "3s"}}});
    let text = m.post(&body).send().await.unwrap().text().await.unwrap();
    let messages: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect();
    let progress: Vec<&str> = messages
        .iter()
        .filter(|v| v["method"] == json!("notifications/progress"))
        .filter_map(|v| v["params"]["message"].as_str())
        .collect();
    assert!(progress[0].starts_with("asked: decision "), "{progress:?}");
    assert!(
        progress.contains(&"escalated: level 1 paged pager"),
        "{progress:?}"
    );
    let result = messages
        .iter()
        .find(|v| v["id"] == json!(id))
        .expect("the tool result");
    let result = &result["result"];
    assert_eq!(result["structuredContent"]["status"], json!("EXPIRED"));
    assert_eq!(
        result["content"][0]["text"],
        json!("EXPIRED: nobody decided in time (0 of 1 approvals); do not proceed")
    );
    assert!(
        result["structuredContent"]["receipt"]["signature"].is_string(),
        "an expiry is receipted too"
    );
}

#[tokio::test]
async fn a_wait_refused_after_the_ask_still_names_the_decision() {
    let s = Server::start(&config("[limits]\nmax_streams_per_principal = 1\n"));
    // The first call waits (holding the agent's one stream slot) once its
    // first progress notification has arrived.
    let mut first = Mcp::connect(&s, "agent").await;
    let body = json!({"jsonrpc": "2.0", "id": 99, "method": "tools/call", "params": {
        "name": "request_approval", "_meta": {"progressToken": 1},
        "arguments": {"kind": "deploy.a", "input": {}, "authorized_roles": ["sre"]}}});
    first.next_id = 100;
    let mut waiting = first.post(&body).send().await.unwrap();
    let mut seen = String::new();
    while !seen.contains("notifications/progress") {
        let chunk = waiting.chunk().await.unwrap().expect("the stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let mut second = Mcp::connect(&s, "agent").await;
    let r = second
        .call(
            "request_approval",
            json!({"kind": "deploy.b", "input": {}, "authorized_roles": ["sre"]}),
        )
        .await;
    let text = refusal(&r);
    assert!(text.starts_with("RESOURCE_EXHAUSTED: "), "{text}");
    let id = text
        .split("decision ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .expect("the decision is named");
    let got = second
        .call("get_decision", json!({"decision_id": id}))
        .await;
    assert_eq!(got["structuredContent"]["status"], json!("OPEN"), "{got}");
    assert_eq!(got["structuredContent"]["kind"], json!("deploy.b"));
}

#[tokio::test]
async fn a_session_belongs_to_the_principal_that_opened_it() {
    let s = Server::start(&config(""));
    let agent = Mcp::connect(&s, "agent").await;
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "request_approval", "_meta": {"progressToken": 1},
        "arguments": {"kind": "deploy.a", "input": {}, "authorized_roles": ["sre"]}}});
    let mut waiting = agent.post(&body).send().await.unwrap();
    let mut seen = String::new();
    while !seen.contains("notifications/progress") {
        let chunk = waiting.chunk().await.unwrap().expect("the stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let id = seen
        .split("decision ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .expect("the decision id")
        .to_string();
    // Another principal with the agent's session id: refused before rmcp
    // sees it, so it can neither cancel the agent's call nor use the session.
    let mut stranger = Mcp::new(&s, Some("stranger"));
    stranger.session = agent.session.clone();
    for msg in [
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}),
    ] {
        let res = stranger.post(&msg).send().await.unwrap();
        assert_eq!(res.status(), 404, "{msg}");
    }
    let grpc = s.client_with_token(&token("alice")).await;
    let status = |mut g: witness::client::GrpcClient, id: String| async move {
        g.get_decision(common::proto::GetDecisionRequest { decision_id: id })
            .await
            .unwrap()
            .into_inner()
            .decision
            .unwrap()
            .status
    };
    assert_eq!(
        status(grpc.clone(), id.clone()).await,
        common::proto::Status::Open as i32
    );
    // The agent's own cancel still works: the decision is withdrawn.
    let cancel =
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}});
    assert_eq!(agent.post(&cancel).send().await.unwrap().status(), 202);
    common::eventually("the withdrawal", std::time::Duration::from_secs(10), || {
        status(grpc.clone(), id.clone()).map(|s| s == common::proto::Status::Cancelled as i32)
    })
    .await;
    let rest = waiting.text().await.unwrap_or_default();
    assert!(
        !rest.contains("\"result\""),
        "a cancelled call gets no result: {rest}"
    );
}
