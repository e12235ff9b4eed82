//! What a hostile or careless user broke in the second round of attacks
//! (issue 28), over gRPC, the CLI and the store, each kept in the suite so
//! it stays fixed. The HTTP attacks are in `hostile_http.rs`.

mod common;

use common::*;
use std::time::{Duration, Instant};
use tonic::Code;

// ------------------------------------------------------------ kinds globs

#[tokio::test]
async fn a_huge_kinds_list_is_refused_at_once_and_256_globs_over_10k_decisions_answer_quickly() {
    let s = Server::start("[limits]\nmax_list_len = 256\nrequests_per_second = 0\n");
    // 10,000 decisions, 40 kinds, asked 16 at a time.
    let mut tasks = Vec::new();
    for t in 0..16 {
        let mut c = s.client("svc", &[]).await;
        tasks.push(tokio::spawn(async move {
            for i in (t..10_000).step_by(16) {
                let kind = format!("deploy.service-{}", i % 40);
                c.ask(ask(&kind, &["sre"], 1, None)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut alice = s.client("alice", &["sre"]).await;
    let globs = |n: usize| -> Vec<String> { (0..n).map(|i| format!("deploy.svc-{i}-*")).collect() };

    let started = Instant::now();
    let err = alice
        .list_decisions(proto::ListDecisionsRequest {
            kinds: globs(10_000),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(
        err.message()
            .contains("kinds: 10000 entries, the limit is 256"),
        "{}",
        err.message()
    );
    let mut stream_req = proto::StreamDecisionsRequest {
        kinds: globs(10_000),
        ..Default::default()
    };
    let err = alice
        .stream_decisions(stream_req.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused at once, not after matching"
    );

    // 256 globs, the last of which matches: one pass per decision.
    let mut kinds = globs(255);
    kinds.push("deploy.service-7".into());
    let mut req = tonic::Request::new(proto::ListDecisionsRequest {
        kinds: kinds.clone(),
        page_size: 1000,
        ..Default::default()
    });
    req.set_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let page = alice.list_decisions(req).await.unwrap().into_inner();
    let took = started.elapsed();
    assert_eq!(page.decisions.len(), 250, "10,000 / 40 of kind 7");
    assert!(page.decisions.iter().all(|d| d.kind == "deploy.service-7"));
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // The same list narrows a stream.
    stream_req.kinds = kinds;
    alice.stream_decisions(stream_req).await.unwrap();
}

// ------------------------------------------------------- one credential

fn relay_config() -> String {
    [
        principal("svc", &[], ""),
        principal("alice", &["sre"], ""),
        principal("carol", &["sre"], ""),
        principal("chatops", &["sre"], "can_act_for = [\"alice\", \"carol\"]"),
        "[[policies]]\nkind = \"scram.*\"\nrequired_approvals = 2\n".to_string(),
    ]
    .concat()
}

fn relayed(id: &str, for_whom: &str) -> proto::AnswerRequest {
    proto::AnswerRequest {
        on_behalf_of: for_whom.into(),
        current_context: Some(json(serde_json::json!({"cluster": "eu"}))),
        ..approve(id, "relayed from chat")
    }
}

#[tokio::test]
async fn one_credential_cannot_meet_a_two_person_rule_in_either_order() {
    let s = Server::start(&relay_config());
    let mut svc = s.client_with_token(&token("svc")).await;
    let mut chatops = s.client_with_token(&token("chatops")).await;
    let ctx = Some(serde_json::json!({"cluster": "eu"}));
    let new = |svc: &mut witness::client::GrpcClient| {
        let req = ask("scram.readonly", &["sre"], 2, ctx.clone());
        let mut svc = svc.clone();
        async move { asked(&mut svc, req).await }
    };

    // Relayed for alice, then as itself: refused, nothing recorded.
    let d = new(&mut svc).await;
    chatops.answer(relayed(&d.id, "alice")).await.unwrap();
    let before = count_events(&s.db_path());
    let err = chatops.answer(relayed(&d.id, "")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    assert!(
        err.message().contains("relayed a vote"),
        "{}",
        err.message()
    );
    assert_eq!(count_events(&s.db_path()), before, "nothing recorded");
    // Relaying for a second, distinct person completes the quorum.
    let done = chatops
        .answer(relayed(&d.id, "carol"))
        .await
        .unwrap()
        .into_inner();
    let d = done.decision.unwrap();
    assert_eq!(d.status, proto::Status::Approved as i32);
    let votes: Vec<_> = d
        .answers
        .iter()
        .map(|a| (a.operator.as_str(), a.submitted_by.as_str()))
        .collect();
    assert_eq!(votes, [("alice", "chatops"), ("carol", "chatops")]);

    // As itself first, then relayed: refused too.
    let d = new(&mut svc).await;
    chatops.answer(relayed(&d.id, "")).await.unwrap();
    let err = chatops.answer(relayed(&d.id, "alice")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    // alice herself may still vote.
    let mut alice = s.client_with_token(&token("alice")).await;
    let done = alice.answer(relayed(&d.id, "")).await.unwrap().into_inner();
    assert_eq!(
        done.decision.unwrap().status,
        proto::Status::Approved as i32
    );
}

// ------------------------------------------------------------ the CLI

#[tokio::test]
async fn the_cli_escapes_control_characters_a_server_sends_and_json_stays_exact() {
    let s = Server::start("");
    let kind = "log.\u{1b}[31mred\u{1b}[0m";
    let reason = "r\n2026 FAKE LINE";
    let mut svc = s.client("svc", &[]).await;
    let d = asked(&mut svc, ask(kind, &["sre"], 1, None)).await;
    svc.cancel(proto::CancelRequest {
        decision_id: d.id.clone(),
        reason: reason.into(),
    })
    .await
    .unwrap();
    let me = ["--as", "svc"];
    for args in [vec!["get", d.id.as_str()], vec!["list"]] {
        let out = s.cli(&[args.clone(), me.to_vec()].concat());
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(!text.contains('\u{1b}'), "{args:?} wrote ESC: {text:?}");
        assert!(text.contains("log.\\x1b[31mred\\x1b[0m"), "{text}");
        assert!(
            !text.lines().any(|l| l.starts_with("2026 FAKE LINE")),
            "{args:?} forged a line: {text}"
        );
    }
    let out = s.cli(&["get", &d.id, "--as", "svc"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("closed: r\\n2026 FAKE LINE"), "{text}");
    // --json is exact.
    let out = s.cli(&["get", &d.id, "--as", "svc", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["kind"], kind);
    assert_eq!(doc["close_reason"], reason);
}

// ------------------------------------------------------------ leases

#[tokio::test]
async fn a_timer_lease_set_far_ahead_fails_verify_and_holds_no_timer() {
    let mut s = Server::start("");
    let mut svc = s.client("svc", &[]).await;
    let d = asked(
        &mut svc,
        proto::AskRequest {
            timeout: Some(prost_types::Duration {
                seconds: 2,
                nanos: 0,
            }),
            ..ask("deploy.prod", &["sre"], 1, None)
        },
    )
    .await;
    s.kill9();
    let db = open_db(&s.db_path());
    let set_lease = |sql: &str| {
        db.execute(
            &format!("UPDATE decisions SET timer_lease = {sql} WHERE id = ?1"),
            [&d.id],
        )
        .unwrap();
    };
    // A claim a moment ago is what a dead process leaves: fine.
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    set_lease(&(now_us + 1_000_000).to_string());
    let (code, text) = audit_verify(&s.config_path(), &s.db_path());
    assert_eq!(code, 0, "{text}");
    // A day past its due time: no claim sets that.
    set_lease("expires_at + 86400000000");
    let (code, text) = audit_verify(&s.config_path(), &s.db_path());
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("column timer_lease"), "{text}");
    assert!(text.contains(&d.id), "{text}");
    // Restarted, the server treats that lease as void: the expiry fires.
    s.restart();
    let mut alice = s.client("alice", &["sre"]).await;
    let id = d.id.clone();
    eventually("the decision expires", Duration::from_secs(20), || {
        let (mut alice, id) = (alice.clone(), id.clone());
        async move {
            let d = alice
                .get_decision(proto::GetDecisionRequest { decision_id: id })
                .await
                .unwrap()
                .into_inner()
                .decision
                .unwrap();
            d.status == proto::Status::Expired as i32
        }
    })
    .await;
    let _ = alice
        .get_decision(proto::GetDecisionRequest {
            decision_id: d.id.clone(),
        })
        .await
        .unwrap();
    s.kill9();
    let (code, text) = audit_verify(&s.config_path(), &s.db_path());
    assert_eq!(code, 0, "the firing cleared the lease: {text}");
}

// ------------------------------------------------------------ frames

/// A unary gRPC call with `body` as the raw request body (frames and all).
async fn raw_grpc(addr: &str, content_type: &str, body: Vec<u8>) -> (String, String) {
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let web = content_type.starts_with("application/grpc-web");
    let builder = if web {
        reqwest::Client::new().post(format!(
            "http://{addr}/witness.v1.WitnessService/GetDecision"
        ))
    } else {
        client.post(format!(
            "http://{addr}/witness.v1.WitnessService/GetDecision"
        ))
    };
    let res = builder
        .header("content-type", content_type)
        .header("te", "trailers")
        .header("x-witness-principal", "alice")
        .body(body)
        .send()
        .await
        .unwrap();
    let get = |k: &str| {
        res.headers()
            .get(k)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    (get("grpc-status"), get("grpc-message"))
}

#[tokio::test]
async fn malformed_grpc_frames_are_invalid_argument_not_internal() {
    let s = Server::start("");
    let msg = [0x0a, 0x01, b'x']; // GetDecisionRequest { decision_id: "x" }
    let frame = |flag: u8, len: u32, payload: &[u8]| {
        let mut b = vec![flag];
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(payload);
        b
    };
    let cases = [
        ("compressed flag, no grpc-encoding", frame(1, 3, &msg)),
        ("unknown flag", frame(7, 3, &msg)),
        ("truncated frame", frame(0, 10, &msg)),
        ("truncated prefix", vec![0, 0, 0]),
    ];
    for ct in ["application/grpc", "application/grpc-web+proto"] {
        for (what, body) in &cases {
            let (status, message) = raw_grpc(&s.addr, ct, body.clone()).await;
            assert_eq!(status, "3", "{ct} {what}: {message}");
        }
    }
    let metrics = reqwest::get(format!("http://{}/metrics", s.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.lines().any(|l| l.contains("witness_refusals_total")
            && l.contains("INTERNAL")
            && !l.ends_with(" 0")),
        "{metrics}"
    );
}

// ------------------------------------------------------------ smaller

#[test]
fn outbox_commands_refuse_a_missing_store_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("witness.db");
    let cfg = dir.path().join("w.toml");
    std::fs::write(&cfg, format!("[store]\nurl = \"{}\"\n", sqlite_url(&db))).unwrap();
    for args in [
        vec!["outbox", "list"],
        vec!["outbox", "retry", "--all-dead"],
    ] {
        let out = std::process::Command::new(bin())
            .args(&args)
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("no SQLite database"), "{args:?}: {err}");
        assert!(!db.exists(), "{args:?} created {}", db.display());
    }
}

#[tokio::test]
async fn a_sub_microsecond_timeout_names_the_resolution_not_positivity() {
    let s = Server::start("");
    let mut svc = s.client("svc", &[]).await;
    let err = svc
        .ask(proto::AskRequest {
            timeout: Some(prost_types::Duration {
                seconds: 0,
                nanos: 1,
            }),
            ..ask("deploy.prod", &["sre"], 1, None)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .contains("timeout: 1ns is below witness's resolution"),
        "{}",
        err.message()
    );
    assert!(!err.message().contains("positive"), "{}", err.message());
}

/// cargo reruns a build script whose watched file does not exist on every
/// build, which rebuilt witness each time.
#[test]
fn the_build_script_watches_only_files_that_exist() {
    let out_dir = std::path::Path::new(env!("OUT_DIR"));
    let output = std::fs::read_to_string(out_dir.parent().unwrap().join("output")).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for line in output.lines() {
        if let Some(path) = line
            .strip_prefix("cargo:rerun-if-changed=")
            .or_else(|| line.strip_prefix("cargo::rerun-if-changed="))
        {
            assert!(root.join(path).exists(), "build.rs watches missing {path}");
        }
    }
}

/// A stream whose caller's deadline passes (or who goes away) stops on the
/// server too: its slot under `max_streams_per_principal` is free again.
#[tokio::test]
async fn a_stream_past_its_deadline_stops_on_the_server_and_frees_its_slot() {
    let s = Server::start("[limits]\nmax_streams_per_principal = 1\n");
    let mut alice = s.client("alice", &["sre"]).await;
    let mut req = tonic::Request::new(proto::StreamDecisionsRequest::default());
    req.set_timeout(Duration::from_millis(500));
    let mut first = alice.stream_decisions(req).await.unwrap().into_inner();
    // While it is open, a second stream is refused.
    let err = alice
        .stream_decisions(proto::StreamDecisionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    // The deadline ends it for the caller...
    let ended = tokio::time::timeout(Duration::from_secs(10), first.message())
        .await
        .expect("the deadline ends the stream");
    assert!(ended.is_err() || ended.unwrap().is_none());
    // ...and on the server, which frees the slot.
    eventually("the slot is free again", Duration::from_secs(10), || {
        let mut alice = alice.clone();
        async move {
            alice
                .stream_decisions(proto::StreamDecisionsRequest::default())
                .await
                .is_ok()
        }
    })
    .await;
}
