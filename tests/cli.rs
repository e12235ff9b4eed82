//! The CLI against the real server: `ask --wait` exit codes, watch, stream.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const POLICIES: &str = r#"
[[policies]]
kind = "expiring.*"
timeout = "1s"
"#;

/// Starts `witness ask --wait` and returns the child and the decision id
/// once it is visible.
#[allow(clippy::zombie_processes)] // the caller waits for the child
async fn ask_wait(s: &Server, kind: &str, extra: &[&str]) -> (std::process::Child, String) {
    let mut cmd = Command::new(bin());
    cmd.args([
        "ask",
        kind,
        "--wait",
        "--json",
        "--as",
        "svc",
        "--authorized-roles",
        "sre",
        "--server",
        &s.addr,
    ])
    .args(extra)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let mut reader = s.client("alice", &["sre"]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let req = proto::ListDecisionsRequest {
            kinds: vec![kind.to_string()],
            ..Default::default()
        };
        if let Some(d) = reader
            .list_decisions(req)
            .await
            .unwrap()
            .into_inner()
            .decisions
            .pop()
        {
            return (child, d.id);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ask --wait never asked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn finish(child: std::process::Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_wait_exits_with_the_outcome() {
    let s = Server::start(POLICIES);
    let mut alice = s.client("alice", &["sre"]).await;
    let mut asker = s.client("svc", &[]).await;

    let (child, id) = ask_wait(&s, "deploy.approve", &[]).await;
    alice.answer(approve(&id, "ok")).await.unwrap();
    let (code, out) = finish(child);
    assert_eq!(code, 0, "APPROVED exits 0: {out}");
    assert!(out.contains("\"status\":\"APPROVED\""), "{out}");

    let (child, id) = ask_wait(&s, "deploy.reject", &[]).await;
    alice.answer(reject(&id, "no")).await.unwrap();
    assert_eq!(finish(child).0, 1, "REJECTED exits 1");

    let (child, _) = ask_wait(&s, "expiring.soon", &[]).await;
    assert_eq!(finish(child).0, 3, "EXPIRED exits 3");

    let (child, id) = ask_wait(&s, "deploy.cancel", &[]).await;
    asker
        .cancel(proto::CancelRequest {
            decision_id: id,
            reason: "moot".into(),
        })
        .await
        .unwrap();
    assert_eq!(finish(child).0, 4, "CANCELLED exits 4");

    let (child, id) = ask_wait(&s, "deploy.context", &["--context", r#"{"v":1}"#]).await;
    let req = proto::ReportContextRequest {
        decision_id: id,
        context_snapshot: Some(json(serde_json::json!({"v": 2}))),
    };
    asker.report_context(req).await.unwrap();
    assert_eq!(finish(child).0, 5, "CONTEXT_CHANGED exits 5");

    let out = s.cli(&["get", "no-such-id", "--as", "svc"]);
    assert_eq!(out.status.code(), Some(2), "RPC errors exit 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_and_stream_print_events() {
    let s = Server::start("");
    let mut asker = s.client("svc", &[]).await;
    let d = asker
        .ask(ask("deploy.prod", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    let mut stream = Command::new(bin())
        .args([
            "stream",
            "--include-open",
            "--json",
            "--as",
            "console",
            "--roles",
            "sre",
            "--server",
            &s.addr,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(stream.stdout.take().unwrap()).lines();
    let mut types = Vec::new();
    let mut read_type = || {
        let v: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        v["type"].as_str().unwrap().to_string()
    };
    // The console has its snapshot before anything changes.
    types.push(read_type());
    types.push(read_type());
    let watch = Command::new(bin())
        .args(["watch", &d.id, "--as", "svc", "--server", &s.addr])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut alice = s.client("alice", &["sre"]).await;
    // The watcher may connect after the answer; it still sees the outcome.
    alice.answer(reject(&d.id, "not today")).await.unwrap();
    let (code, out) = finish(watch);
    assert_eq!(code, 1, "watch exits with the outcome's code: {out}");
    assert!(out.contains("REJECTED"), "{out}");
    types.push(read_type());
    types.push(read_type());
    let _ = stream.kill();
    let _ = stream.wait();
    assert_eq!(types, ["CREATED", "SNAPSHOT_END", "ANSWERED", "REJECTED"]);
}
