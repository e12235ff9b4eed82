//! MCP agents waiting for people (`witness bench --mcp N`): N agents, each
//! with its own MCP session over its own HTTP connection, call
//! `request_approval` and wait; once all are waiting, operators answer all
//! N at once over gRPC. Reports the server's memory per waiting call and
//! the time from each answer to its agent's tool result.

use super::{start_servers, summarise};
use crate::client::{self, Credentials};
use crate::proto;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

fn post(
    http: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: Value,
) -> reqwest::RequestBuilder {
    let mut r = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("x-witness-principal", "agent")
        .body(body.to_string());
    if let Some(s) = session {
        r = r.header("mcp-session-id", s);
    }
    r
}

/// Reads SSE `data:` messages from `res` as they arrive, until `done` says so.
async fn messages(
    mut res: reqwest::Response,
    mut each: impl FnMut(&Value) -> bool,
) -> Result<(), String> {
    let mut buf = String::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| e.to_string())? {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find('\n') {
            let line: String = buf.drain(..=end).collect();
            let Some(data) = line.trim_end().strip_prefix("data:") else {
                continue;
            };
            if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                if each(&v) {
                    return Ok(());
                }
            }
        }
    }
    Err("the stream ended before the result".into())
}

/// One agent: a session, then `request_approval` held open. Sends its
/// decision id on `ready` once waiting; returns when its result arrived.
async fn agent(
    url: String,
    i: usize,
    ready: mpsc::Sender<(usize, String)>,
) -> Result<Instant, String> {
    // One connection per agent, as separate agent processes would have.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .map_err(|e| e.to_string())?;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "witness-bench", "version": "1"}}});
    let res = post(&http, &url, None, init)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let session = res
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or("no mcp-session-id")?;
    messages(res, |m| m["id"] == json!(1)).await?;
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post(&http, &url, Some(&session), note)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "request_approval", "_meta": {"progressToken": i},
        "arguments": {"kind": "bench.mcp", "input": {"agent": i}, "authorized_roles": ["sre"]}}});
    let res = post(&http, &url, Some(&session), call)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let mut announced = false;
    messages(res, |m| {
        if m["id"] == json!(2) {
            return true;
        }
        // The first progress notification names the decision.
        let text = m["params"]["message"].as_str().unwrap_or_default();
        if let Some(id) = text.split_whitespace().nth(2).filter(|w| w.len() == 36) {
            if !announced {
                announced = true;
                let _ = ready.try_send((i, id.to_string()));
            }
        }
        false
    })
    .await?;
    Ok(Instant::now())
}

/// Runs the figure with `n` agents.
pub(crate) async fn run(store: Option<&str>, n: usize) -> Result<(), String> {
    crate::accept::raise_fd_limit();
    let servers = start_servers(store, 1)?;
    let addr = servers.addrs.first().ok_or("no server")?.clone();
    let url = format!("http://{addr}/mcp");
    let operator = Credentials {
        principal: Some("alice".into()),
        roles: vec!["sre".into()],
        ..Default::default()
    };
    let grpc = client::connect(&addr, &operator)
        .await
        .map_err(|e| e.to_string())?;
    let before = servers.rss_kib().unwrap_or(0);
    let (tx, mut rx) = mpsc::channel(n.max(1));
    let agents: Vec<_> = (0..n)
        .map(|i| tokio::spawn(agent(url.clone(), i, tx.clone())))
        .collect();
    drop(tx);
    let mut ids = vec![String::new(); n];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    for _ in 0..n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((i, id))) => ids[i] = id,
            _ => return Err("not every agent got to wait within 120 s".into()),
        }
    }
    // Let the last calls settle into waiting before reading memory.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let waiting = servers.rss_kib().unwrap_or(0);
    let answers = ids.iter().map(|id| {
        let mut c = grpc.clone();
        let req = proto::AnswerRequest {
            decision_id: id.clone(),
            verdict: proto::Verdict::Approve as i32,
            rationale: "bench".into(),
            ..Default::default()
        };
        async move {
            let sent = Instant::now();
            let ok = c.answer(req).await.is_ok();
            (sent, Instant::now(), ok)
        }
    });
    let answered = futures::future::join_all(answers).await;
    let mut from_sent = Vec::with_capacity(n);
    let mut from_reply = Vec::with_capacity(n);
    for (a, (sent, replied, ok)) in agents.into_iter().zip(answered) {
        let got = a.await.map_err(|e| e.to_string())??;
        if !ok {
            return Err("an answer failed".into());
        }
        from_sent.push(got.saturating_duration_since(sent));
        from_reply.push(got.saturating_duration_since(replied));
    }
    let per_call = waiting.saturating_sub(before) as f64 / n.max(1) as f64;
    let sent = summarise(from_sent, 1.0);
    let reply = summarise(from_reply, 1.0);
    println!(
        "mcp: {n} request_approval calls waiting (one session and connection each): server RSS \
         {before} KiB -> {waiting} KiB, {per_call:.1} KiB per waiting call; answered in a burst: \
         answer sent -> tool result p50 {:.1} ms, p99 {:.1} ms; answer committed (Answer \
         replied) -> tool result p50 {:.1} ms, p99 {:.1} ms",
        sent.p50.as_secs_f64() * 1e3,
        sent.p99.as_secs_f64() * 1e3,
        reply.p50.as_secs_f64() * 1e3,
        reply.p99.as_secs_f64() * 1e3,
    );
    Ok(())
}
