//! A local fake of the Slack Web API (the methods witness calls), real HTTP
//! on loopback. It checks the bearer token and each call's JSON against the
//! fields Slack documents, records every call, and can be told to rate
//! limit (429 with Retry-After) or to fail `chat.update`. It also plays
//! Slack's side of interactivity: payloads signed exactly as Slack signs
//! them, form-encoded as `payload=`, POSTed to the witness binary.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub(crate) const BOT_TOKEN: &str = "xoxb-test-0123456789";
pub(crate) const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// One Web API call as received.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub method: String,
    pub body: Value,
    /// The HTTP status answered (200, 429, 503).
    pub status: u16,
    pub at: Instant,
}

#[derive(Default)]
struct Shared {
    calls: Mutex<Vec<Call>>,
    /// Problems with the shape of calls (none expected).
    violations: Mutex<Vec<String>>,
    /// (channel, ts) of posted messages.
    messages: Mutex<Vec<(String, String)>>,
    next_ts: AtomicUsize,
    next_view: AtomicUsize,
    /// Answer 429 to every Nth message call (0: never).
    rate_limit_every: AtomicUsize,
    message_calls: AtomicUsize,
    fail_updates: AtomicBool,
    /// trigger ids handed out with block_actions payloads.
    triggers: Mutex<Vec<String>>,
    /// Emails `users.info` gives.
    emails: Mutex<HashMap<String, String>>,
    /// Messages sent to response_url.
    ephemeral: Mutex<Vec<Value>>,
}

pub(crate) struct FakeSlack {
    /// `[slack] api_base`.
    pub api_base: String,
    /// Base of the response URLs handed out.
    base: String,
    shared: Arc<Shared>,
}

impl FakeSlack {
    pub(crate) async fn start() -> FakeSlack {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/api/{method}", post(api))
            .route("/api/users.info", get(users_info))
            .route("/respond/{n}", post(respond))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeSlack {
            api_base: format!("{base}/api"),
            base,
            shared,
        }
    }

    /// The `[slack]` section for this fake, plus `extra` lines.
    pub(crate) fn config(&self, extra: &str) -> String {
        format!(
            "[slack]\nbot_token = \"{BOT_TOKEN}\"\nsigning_secret = \"{SIGNING_SECRET}\"\n\
             api_base = \"{}\"\nmessage_interval = \"1ms\"\n{extra}\n",
            self.api_base
        )
    }

    pub(crate) fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    pub(crate) fn calls_of(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// Successful calls of `method`.
    pub(crate) fn ok_calls(&self, method: &str) -> Vec<Call> {
        self.calls_of(method)
            .into_iter()
            .filter(|c| c.status == 200)
            .collect()
    }

    pub(crate) fn violations(&self) -> Vec<String> {
        self.shared.violations.lock().unwrap().clone()
    }

    pub(crate) fn ephemeral(&self) -> Vec<Value> {
        self.shared.ephemeral.lock().unwrap().clone()
    }

    pub(crate) fn rate_limit_every(&self, n: usize) {
        self.shared.rate_limit_every.store(n, Ordering::SeqCst);
    }

    pub(crate) fn fail_updates(&self, on: bool) {
        self.shared.fail_updates.store(on, Ordering::SeqCst);
    }

    pub(crate) fn set_email(&self, user: &str, email: &str) {
        self.shared
            .emails
            .lock()
            .unwrap()
            .insert(user.into(), email.into());
    }

    /// The message posted for decision `id` (its post call's body) and its ts.
    pub(crate) fn post_of(&self, id: &str) -> Option<(Value, String)> {
        let posts = self.ok_calls("chat.postMessage");
        let ts = self.shared.messages.lock().unwrap().clone();
        posts
            .iter()
            .zip(ts)
            .find(|(c, _)| decision_of(&c.body).as_deref() == Some(id))
            .map(|(c, (_, ts))| (c.body.clone(), ts))
    }

    /// Successful `chat.update` bodies for the message `ts`, in order.
    pub(crate) fn updates_of(&self, ts: &str) -> Vec<Value> {
        self.ok_calls("chat.update")
            .into_iter()
            .filter(|c| c.body["ts"] == ts)
            .map(|c| c.body)
            .collect()
    }

    /// A `block_actions` payload: `user` pressed `action_id` on the
    /// message of decision `id`.
    pub(crate) fn click(&self, user: &str, id: &str, action_id: &str) -> Value {
        let n = self.shared.next_view.fetch_add(1, Ordering::SeqCst);
        let trigger = format!("13345224609.738474920.8088930838d88f008e0{n}");
        self.shared.triggers.lock().unwrap().push(trigger.clone());
        json!({
            "type": "block_actions",
            "user": {"id": user, "username": user, "team_id": "T0TEAM"},
            "api_app_id": "A0APP", "team": {"id": "T0TEAM"},
            "trigger_id": trigger,
            "response_url": format!("{}/respond/{n}", self.base),
            "channel": {"id": "C0DEPLOY"},
            "container": {"type": "message"},
            "actions": [{"type": "button", "action_id": action_id, "block_id": "witness_vote",
                         "value": id, "action_ts": "1700000000.000001"}],
        })
    }

    /// The modal `views.open` opened last, as Slack would hold it.
    pub(crate) fn last_view(&self) -> Value {
        let calls = self.ok_calls("views.open");
        calls.last().expect("a views.open call").body["view"].clone()
    }

    /// A `view_submission` of `view` by `user` with `rationale` and field
    /// values (`block_id` → element state).
    pub(crate) fn submit(&self, user: &str, view: &Value, rationale: &str, fields: Value) -> Value {
        let n = self.shared.next_view.fetch_add(1, Ordering::SeqCst);
        let mut values =
            json!({"rationale": {"value": {"type": "plain_text_input", "value": rationale}}});
        if let Value::Object(f) = fields {
            for (k, v) in f {
                values[k] = json!({ "value": v });
            }
        }
        json!({
            "type": "view_submission",
            "user": {"id": user, "username": user, "team_id": "T0TEAM"},
            "team": {"id": "T0TEAM"},
            "view": {
                "id": format!("V0VIEW{n}"),
                "type": "modal",
                "callback_id": view["callback_id"],
                "private_metadata": view["private_metadata"],
                "state": {"values": values},
            },
        })
    }
}

/// The decision id a message's buttons (or footer) carry.
pub(crate) fn decision_of(body: &Value) -> Option<String> {
    let text = body["blocks"].to_string();
    let start = text.find("decision `")? + "decision `".len();
    let end = text[start..].find('`')? + start;
    Some(text[start..end].to_string())
}

/// The event number a message shows (`event #N` in its footer).
pub(crate) fn event_of(body: &Value) -> u64 {
    let text = body["blocks"].to_string();
    let start = text.find("event #").expect("event number") + "event #".len();
    text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

/// Whether the message still has its Approve / Reject buttons.
pub(crate) fn has_buttons(body: &Value) -> bool {
    body["blocks"]
        .as_array()
        .is_some_and(|b| b.iter().any(|b| b["type"] == "actions"))
}

/// Signs `body` as Slack does: `v0=` hex HMAC-SHA256 of `v0:TS:BODY`.
pub(crate) fn slack_signature(secret: &str, ts: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// An interaction request, ready to send (so a test can send it twice).
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    pub body: String,
    pub timestamp: String,
    pub signature: String,
}

pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `payload` form-encoded and signed with `secret` at `timestamp`.
pub(crate) fn sign(payload: &Value, secret: &str, timestamp: i64) -> Signed {
    let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
    let timestamp = timestamp.to_string();
    let signature = slack_signature(secret, &timestamp, body.as_bytes());
    Signed {
        body,
        timestamp,
        signature,
    }
}

/// POSTs a signed interaction to witness at `addr`, as Slack does (no
/// Origin, a public Host name); returns the status and the body.
pub(crate) async fn send(addr: &str, s: &Signed) -> (u16, String) {
    let res = reqwest::Client::new()
        .post(format!("http://{addr}/slack/interactions"))
        .header("host", "witness.example.com")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", "Slackbot 1.0 (+https://api.slack.com/robots)")
        .header("x-slack-request-timestamp", &s.timestamp)
        .header("x-slack-signature", &s.signature)
        .body(s.body.clone())
        .send()
        .await
        .expect("POST /slack/interactions");
    let status = res.status().as_u16();
    (status, res.text().await.unwrap_or_default())
}

/// Signs `payload` now with the right secret and sends it.
pub(crate) async fn interact(addr: &str, payload: &Value) -> (u16, String) {
    send(addr, &sign(payload, SIGNING_SECRET, now_secs())).await
}

fn check(v: &mut Vec<String>, ok: bool, what: &str) {
    if !ok {
        v.push(what.to_string());
    }
}

/// Slack's rules for a text object.
fn text_object(v: &mut Vec<String>, t: &Value, max: usize, at: &str) {
    let ty = t["type"].as_str().unwrap_or_default();
    check(
        v,
        ty == "plain_text" || ty == "mrkdwn",
        &format!("{at}: text type {ty:?}"),
    );
    let n = t["text"].as_str().map(|s| s.chars().count());
    check(
        v,
        n.is_some_and(|n| n >= 1 && n <= max),
        &format!("{at}: text length {n:?} (1..={max})"),
    );
}

/// Block Kit blocks as Slack documents them (the kinds witness uses).
fn blocks(v: &mut Vec<String>, blocks: &Value, max: usize, at: &str) {
    let Some(list) = blocks.as_array() else {
        return v.push(format!("{at}: blocks is not an array"));
    };
    check(
        v,
        !list.is_empty() && list.len() <= max,
        &format!("{at}: {} blocks", list.len()),
    );
    for (i, b) in list.iter().enumerate() {
        let at = format!("{at}.blocks[{i}]");
        match b["type"].as_str().unwrap_or_default() {
            "header" => text_object(v, &b["text"], 150, &at),
            "section" => {
                text_object(v, &b["text"], 3000, &at);
                if let Some(f) = b["fields"].as_array() {
                    check(v, f.len() <= 10, &format!("{at}: {} fields", f.len()));
                    f.iter().for_each(|f| text_object(v, f, 2000, &at));
                }
            }
            "context" => {
                let e = b["elements"].as_array();
                check(
                    v,
                    e.is_some_and(|e| !e.is_empty() && e.len() <= 10),
                    &format!("{at}: elements"),
                );
            }
            "actions" => {
                for e in b["elements"].as_array().into_iter().flatten() {
                    check(v, e["type"] == "button", &format!("{at}: element type"));
                    text_object(v, &e["text"], 75, &at);
                    check(
                        v,
                        e["action_id"].as_str().is_some_and(|s| s.len() <= 255),
                        &format!("{at}: action_id"),
                    );
                    check(
                        v,
                        e["value"].as_str().is_some_and(|s| s.len() <= 2000),
                        &format!("{at}: value"),
                    );
                }
            }
            "input" => {
                text_object(v, &b["label"], 2000, &at);
                check(
                    v,
                    b["element"]["action_id"].is_string(),
                    &format!("{at}: element.action_id"),
                );
                check(v, b["block_id"].is_string(), &format!("{at}: block_id"));
            }
            other => v.push(format!("{at}: unexpected block type {other:?}")),
        }
    }
}

/// Checks a call against Slack's documented arguments.
fn shape(method: &str, body: &Value, shared: &Shared) -> Vec<String> {
    let mut v = Vec::new();
    match method {
        "chat.postMessage" | "chat.update" => {
            check(
                &mut v,
                body["channel"].as_str().is_some_and(|c| !c.is_empty()),
                "channel",
            );
            check(
                &mut v,
                body["text"].is_string() || body["blocks"].is_array(),
                "text or blocks",
            );
            blocks(&mut v, &body["blocks"], 50, method);
            if method == "chat.update" {
                let ts = body["ts"].as_str().unwrap_or_default();
                let known = shared
                    .messages
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|(c, t)| c == body["channel"].as_str().unwrap_or_default() && t == ts);
                check(&mut v, known, "ts of a message posted in that channel");
            }
        }
        "views.open" => {
            let trigger = body["trigger_id"].as_str().unwrap_or_default();
            let issued = shared.triggers.lock().unwrap().iter().any(|t| t == trigger);
            check(&mut v, issued, "trigger_id handed out with an interaction");
            let view = &body["view"];
            check(&mut v, view["type"] == "modal", "view.type modal");
            check(
                &mut v,
                view["callback_id"].as_str().is_some_and(|c| c.len() <= 255),
                "view.callback_id",
            );
            text_object(&mut v, &view["title"], 24, "view.title");
            text_object(&mut v, &view["submit"], 24, "view.submit");
            check(
                &mut v,
                view["private_metadata"]
                    .as_str()
                    .is_some_and(|m| m.len() <= 3000),
                "private_metadata",
            );
            blocks(&mut v, &view["blocks"], 100, "view");
        }
        other => v.push(format!("unexpected method {other}")),
    }
    v
}

async fn api(
    State(s): State<Arc<Shared>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    let json_ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let record = |status: u16| {
        s.calls.lock().unwrap().push(Call {
            method: method.clone(),
            body: parsed.clone(),
            status,
            at: Instant::now(),
        });
    };
    if auth != Some(&format!("Bearer {BOT_TOKEN}")) {
        record(200);
        s.violations
            .lock()
            .unwrap()
            .push(format!("{method}: bad bearer token"));
        return axum::Json(json!({"ok": false, "error": "invalid_auth"})).into_response();
    }
    let message = method == "chat.postMessage" || method == "chat.update";
    if message {
        let n = s.message_calls.fetch_add(1, Ordering::SeqCst) + 1;
        let every = s.rate_limit_every.load(Ordering::SeqCst);
        if every > 0 && n % every == 0 {
            record(429);
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "").into_response();
        }
    }
    if method == "chat.update" && s.fail_updates.load(Ordering::SeqCst) {
        record(503);
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let mut problems = shape(&method, &parsed, &s);
    if !json_ct {
        problems.push(format!("{method}: content-type is not application/json"));
    }
    if !problems.is_empty() {
        record(200);
        s.violations.lock().unwrap().extend(problems);
        return axum::Json(json!({"ok": false, "error": "invalid_arguments"})).into_response();
    }
    record(200);
    let channel = parsed["channel"].as_str().unwrap_or_default().to_string();
    match method.as_str() {
        "chat.postMessage" => {
            let n = s.next_ts.fetch_add(1, Ordering::SeqCst);
            let ts = format!("1700000000.{n:06}");
            s.messages
                .lock()
                .unwrap()
                .push((channel.clone(), ts.clone()));
            axum::Json(json!({"ok": true, "channel": channel, "ts": ts, "message": {"text": parsed["text"]}}))
                .into_response()
        }
        "chat.update" => axum::Json(
            json!({"ok": true, "channel": channel, "ts": parsed["ts"], "text": parsed["text"]}),
        )
        .into_response(),
        _ => axum::Json(json!({"ok": true, "view": {"id": "V0OPENED", "type": "modal"}}))
            .into_response(),
    }
}

async fn users_info(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> axum::Json<Value> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {BOT_TOKEN}")) {
        return axum::Json(json!({"ok": false, "error": "invalid_auth"}));
    }
    let user = q.get("user").cloned().unwrap_or_default();
    match s.emails.lock().unwrap().get(&user) {
        Some(email) => {
            axum::Json(json!({"ok": true, "user": {"id": user, "profile": {"email": email}}}))
        }
        None => axum::Json(json!({"ok": false, "error": "user_not_found"})),
    }
}

async fn respond(State(s): State<Arc<Shared>>, Path(_n): Path<String>, body: Bytes) -> StatusCode {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.ephemeral.lock().unwrap().push(v);
    StatusCode::OK
}
