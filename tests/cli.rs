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

    let out = s.cli(&["get", UNKNOWN_ID, "--as", "svc"]);
    assert_eq!(out.status.code(), Some(2), "RPC errors exit 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found or not visible to you"));
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

/// Every argument and flag of every subcommand says what it is for.
#[test]
fn every_argument_has_help_text() {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            if help.trim().is_empty() {
                missing.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_about().is_none() && sub.get_name() != "help" {
                missing.push(format!("{path} {} (no about)", sub.get_name()));
            }
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut missing = Vec::new();
    walk(&witness::cli::Cli::command(), "witness", &mut missing);
    assert!(
        missing.is_empty(),
        "arguments without help text:\n{}",
        missing.join("\n")
    );
}

/// A well-formed decision id that no server has issued.
const UNKNOWN_ID: &str = "0190f3c2-7c1e-7b9a-9c3e-2f4d5e6f7a8b";

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_wait_says_the_id_and_how_to_answer_on_stderr() {
    use std::io::BufRead;
    let s = Server::start("");
    let mut child = Command::new(bin())
        .args(["ask", "deploy.hint", "--wait", "--json", "--as", "svc"])
        .args(["--authorized-roles", "sre", "--server", &s.addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The hint arrives while the decision is still open: read it first.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut hint = String::new();
    while !hint.contains("witness answer") {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no hint: {hint}");
        hint.push_str(&line);
    }
    let id = hint
        .split("(decision ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_else(|| panic!("no id in {hint}"))
        .to_string();
    assert!(
        hint.contains(&format!(
            "witness answer {id} approve --rationale \"...\" --as NAME --roles sre --server {}",
            s.addr
        )),
        "{hint}"
    );
    let mut alice = s.client("alice", &["sre"]).await;
    alice.answer(approve(&id, "ok")).await.unwrap();
    let (code, out) = finish(child);
    assert_eq!(code, 0, "{out}");
    // stdout is exactly one JSON document: the hint never lands there.
    let doc: serde_json::Value = serde_json::from_str(out.trim()).expect(&out);
    assert_eq!(doc["id"], id.as_str());
    assert_eq!(doc["status"], "APPROVED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_open_first_newest_first_in_columns() {
    let s = Server::start("");
    let mut svc = s.client("svc", &[]).await;
    let mut alice = s.client("alice", &["sre"]).await;
    let mut ids = Vec::new();
    for kind in ["first.closed", "second.open", "third.open"] {
        let d = svc.ask(ask(kind, &["sre"], 1, None)).await.unwrap();
        ids.push(d.into_inner().decision.unwrap().id);
    }
    alice.answer(approve(&ids[0], "fine")).await.unwrap();

    let out = s.cli(&["list", "--as", "alice", "--roles", "sre"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("ID "), "a header: {text}");
    let order: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        order,
        [&ids[2], &ids[1], &ids[0]],
        "open newest first, then closed: {text}"
    );
    let kind_at = lines[0].find("KIND").unwrap();
    for l in &lines[1..] {
        assert!(l[kind_at..].starts_with(['f', 's', 't']), "aligned: {text}");
    }
    assert!(stderr_of(&out).is_empty(), "{}", stderr_of(&out));

    let out = s.cli(&[
        "list", "--status", "approved", "--as", "alice", "--roles", "sre",
    ]);
    let text = stdout_of(&out);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.contains(&ids[0]) && text.contains("APPROVED"),
        "{text}"
    );

    let out = s.cli(&["list", "--status", "pending"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("--status: unknown status \"pending\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_without_identity_says_anonymous_sees_only_its_own() {
    let s = Server::start("");
    let mut svc = s.client("svc", &[]).await;
    svc.ask(ask("deploy.other", &["sre"], 1, None))
        .await
        .unwrap();
    let out = s.cli(&["list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    assert!(text.contains("no decisions"), "not a blank line: {text:?}");
    assert!(text.contains("anonymous"), "{text}");
    assert!(text.contains("--as NAME --roles"), "{text}");

    // With its own ask listed, the hint goes to stderr and stdout stays a table.
    let out = s.cli(&["ask", "mine.anon", "--authorized-roles", "sre"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let out = s.cli(&["list"]);
    assert!(stdout_of(&out).contains("mine.anon"), "{}", stdout_of(&out));
    assert!(!stdout_of(&out).contains("deploy.other"));
    assert!(stderr_of(&out).contains("anonymous"), "{}", stderr_of(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_speak_cli() {
    let s = Server::start("");
    let mut svc = s.client("svc", &[]).await;
    let d = svc.ask(ask("deploy.err", &["sre"], 1, None)).await.unwrap();
    let id = d.into_inner().decision.unwrap().id;

    // Answering anonymously: which flags give an identity; nothing written.
    let events = count_events(&s.db_path());
    let out = s.cli(&["answer", &id, "approve", "--rationale", "ok"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("answering needs an identity: pass --as NAME --roles")
            && stderr_of(&out).contains("(dev mode) or --token"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(count_events(&s.db_path()), events, "nothing written");

    // Unknown, and not visible to this principal: the same words.
    for (who, target) in [("svc", UNKNOWN_ID), ("mallory", id.as_str())] {
        let out = s.cli(&["get", target, "--as", who]);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr_of(&out).contains(&format!(
                "decision {target}: not found or not visible to you (you see what you asked and \
                 what your roles may answer; dev mode: --as NAME --roles ROLE,...)"
            )),
            "{}",
            stderr_of(&out)
        );
    }

    // A malformed id is caught before any call, for every command taking one.
    for args in [
        vec!["get", "deploy.err"],
        vec!["answer", "12", "approve", "--rationale", "r"],
        vec!["cancel", "x"],
        vec!["watch", "x"],
    ] {
        let mut full = args.clone();
        full.extend(["--as", "svc"]);
        let out = s.cli(&full);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr_of(&out).contains("is not a decision id"),
            "{args:?}: {}",
            stderr_of(&out)
        );
    }
}

#[test]
fn a_refused_connection_asks_whether_the_server_runs() {
    // A port that was free a moment ago and has no listener now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let out = Command::new(bin())
        .args(["list", "--as", "alice", "--server", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains(&format!(
            "connection refused: is `witness serve` running on {addr}?"
        )),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn serve_help_says_what_runs_without_a_config() {
    let out = Command::new(bin())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let text = stdout_of(&out);
    assert!(text.contains("dev mode"), "{text}");
    assert!(text.contains("`witness.db`"), "{text}");
    assert!(text.contains("current directory"), "{text}");
    assert!(text.contains("loopback"), "{text}");
}

#[test]
fn version_names_the_git_commit() {
    let out = Command::new(bin()).arg("--version").output().unwrap();
    let text = stdout_of(&out);
    assert!(
        text.starts_with(&format!("witness {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match head {
        Ok(h) if h.status.success() => {
            let commit = String::from_utf8_lossy(&h.stdout).trim().to_string();
            assert!(
                text.contains(&format!("(git {commit})")),
                "{text} vs {commit}"
            );
        }
        // Built outside a checkout: the package version alone.
        _ => assert_eq!(
            text.trim(),
            format!("witness {}", env!("CARGO_PKG_VERSION"))
        ),
    }
}

#[test]
fn approve_and_reject_are_shortcuts_and_a_typo_suggests_them() {
    let out = Command::new(bin()).args(["aprove", "x"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("'approve'"), "{err}");
    for (verb, want) in [("approve", "APPROVED"), ("reject", "REJECTED")] {
        let s = Server::start("");
        let out = s.cli(&[
            "ask",
            "deploy.prod",
            "--as",
            "svc",
            "--authorized-roles",
            "sre",
            "--json",
        ]);
        let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let id = d["id"].as_str().unwrap();
        let out = s.cli(&[
            verb,
            id,
            "--as",
            "alice",
            "--roles",
            "sre",
            "--rationale",
            "ok",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(want), "{verb}: {text}");
    }
}

#[test]
fn a_taken_listen_address_is_named_with_the_flag_that_changes_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["serve", "--listen", &addr])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(err.contains("--listen HOST:PORT"), "{err}");
}

#[test]
fn the_shipped_production_config_is_refused_naming_its_file() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/witness.prod.toml");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .env_remove("WITNESS_DB_PASSWORD")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("deploy/witness.prod.toml"), "{err}");
}
