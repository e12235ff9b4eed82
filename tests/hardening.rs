//! Issue 14 attacks against the running server, each kept in the suite so
//! it stays fixed: huge timeouts, undecodable messages, huge ids, strangers
//! probing for decisions, and the context-confirmation flood.

mod common;

use common::*;
use serde_json::json;
use tonic::Code;

fn with_timeout(seconds: i64, nanos: i32) -> proto::AskRequest {
    proto::AskRequest {
        timeout: Some(prost_types::Duration { seconds, nanos }),
        ..ask("poison.timeout", &["sre"], 1, None)
    }
}

#[tokio::test]
async fn timeouts_past_max_timeout_or_with_bad_nanos_are_invalid_and_write_nothing() {
    let s = Server::start("");
    let mut svc = s.client("svc", &[]).await;
    let before = count_events(&s.db_path());
    let ten_thousand_years = 10_000 * 365 * 86_400;
    for (seconds, nanos, needle) in [
        (
            ten_thousand_years,
            0,
            "timeout: longer than the limit [limits] max_timeout = 3650 days",
        ),
        (i64::MAX, 0, "[limits] max_timeout"),
        (i64::MAX, 999_999_999, "[limits] max_timeout"),
        (3651 * 86_400, 0, "[limits] max_timeout"),
        (60, -1, "timeout: nanos"),
        (60, 1_000_000_000, "timeout: nanos"),
    ] {
        let err = svc.ask(with_timeout(seconds, nanos)).await.unwrap_err();
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{seconds}s {nanos}ns: {}",
            err.message()
        );
        assert!(err.message().contains(needle), "{}", err.message());
    }
    assert_eq!(count_events(&s.db_path()), before, "nothing written");
    // Exactly the limit is fine, and every derived timestamp is printable.
    let d = svc
        .ask(with_timeout(3650 * 86_400, 0))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert!(d.expires_at.unwrap().seconds < 253_402_300_799);
    let me = ["--as", "alice", "--roles", "sre"];
    for args in [vec!["get", &d.id], vec!["list"], vec!["list", "--json"]] {
        let out = s.cli(&[args, me.to_vec()].concat());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(&d.id), "{text}");
    }
}

#[tokio::test]
async fn a_lower_max_timeout_applies_to_ask() {
    let s = Server::start("[limits]\nmax_timeout = \"1h\"\n");
    let mut svc = s.client("svc", &[]).await;
    let err = svc.ask(with_timeout(3601, 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("max_timeout = 1h"),
        "{}",
        err.message()
    );
    svc.ask(with_timeout(3600, 0)).await.unwrap();
}

/// GetDecisionRequest with `decision_id` as raw bytes, to send invalid UTF-8.
#[derive(Clone, PartialEq, prost::Message)]
struct RawGet {
    #[prost(bytes = "vec", tag = "1")]
    decision_id: Vec<u8>,
}

async fn raw_call<M: prost::Message + Default + Send + 'static>(
    s: &Server,
    path: &'static str,
    msg: M,
) -> tonic::Status {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec: tonic_prost::ProstCodec<M, proto::GetDecisionResponse> = Default::default();
    grpc.unary(
        tonic::Request::new(msg),
        http::uri::PathAndQuery::from_static(path),
        codec,
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn undecodable_requests_are_invalid_argument_not_internal() {
    let s = Server::start("");
    let bad_utf8 = RawGet {
        decision_id: vec![b'a', 0xff, 0xfe, b'b'],
    };
    let err = raw_call(&s, "/witness.v1.WitnessService/GetDecision", bad_utf8).await;
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    // Also on a server stream.
    let bad_utf8 = RawGet {
        decision_id: vec![0xc3, 0x28],
    };
    let err = raw_call(&s, "/witness.v1.WitnessService/WatchDecision", bad_utf8).await;
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());

    // JSON nested past prost's recursion limit (100).
    let mut deep = json!(1);
    for _ in 0..150 {
        deep = json!([deep]);
    }
    let mut svc = s.client("svc", &[]).await;
    let req = proto::AskRequest {
        input: Some(json(deep)),
        ..ask("deep.json", &["sre"], 1, None)
    };
    let err = svc.ask(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert_eq!(count_events(&s.db_path()), 0);
}

#[tokio::test]
async fn long_ids_are_refused_and_errors_never_echo_more_than_200_characters() {
    let s = Server::start("");
    let mut alice = s.client("alice", &["sre"]).await;
    let huge = "x".repeat(900_000);
    let err = alice
        .get_decision(proto::GetDecisionRequest {
            decision_id: huge.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "decision_id: 900000 characters long, the limit is 128"
    );
    let long = "y".repeat(129);
    for err in [
        alice.answer(approve(&long, "x")).await.unwrap_err(),
        alice
            .cancel(proto::CancelRequest {
                decision_id: long.clone(),
                reason: String::new(),
            })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().starts_with("decision_id: 129 characters"),
            "{}",
            err.message()
        );
    }
    let req = proto::AskRequest {
        request_id: long.clone(),
        ..ask("long.request", &["sre"], 1, None)
    };
    let err = alice.ask(req).await.unwrap_err();
    assert!(
        err.message().starts_with("request_id: 129 characters"),
        "{}",
        err.message()
    );
    // 128 is fine and its NOT_FOUND quotes it whole.
    let id = "z".repeat(128);
    let err = alice
        .get_decision(proto::GetDecisionRequest {
            decision_id: id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(
        err.message(),
        format!("decision_id: decision {id} not found")
    );
    // A long bad glob in a list filter comes back cut to 200 characters
    // (one past [limits] max_string_len is refused as too long first).
    let glob = format!("[{}", "k".repeat(3000));
    let err = alice
        .list_decisions(proto::ListDecisionsRequest {
            kinds: vec![glob],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().len() < 400, "{} bytes", err.message().len());
    assert!(
        err.message().contains(&format!("[{}…", "k".repeat(199))),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn strangers_get_not_found_on_every_rpc_with_the_missing_id_message() {
    let s = Server::start("");
    let mut svc = s.client("svc", &[]).await;
    let mut dan = s.client("dan", &["dba"]).await;
    let d = svc
        .ask(ask("deploy.prod", &["sre"], 2, Some(json!({"v": 1}))))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    let missing = "0190b7a6-0000-7000-8000-000000000000";
    let before = count_events(&s.db_path());
    for id in [d.id.as_str(), missing] {
        let expected = format!("decision_id: decision {id} not found");
        let errs = [
            dan.answer(approve(id, "mine now")).await.unwrap_err(),
            dan.cancel(proto::CancelRequest {
                decision_id: id.into(),
                reason: "gone".into(),
            })
            .await
            .unwrap_err(),
            dan.ack_delivery(proto::AckDeliveryRequest {
                decision_id: id.into(),
                surface: "pager".into(),
            })
            .await
            .unwrap_err(),
            dan.report_context(proto::ReportContextRequest {
                decision_id: id.into(),
                context_snapshot: Some(json(json!({"v": 2}))),
            })
            .await
            .unwrap_err(),
            dan.get_decision(proto::GetDecisionRequest {
                decision_id: id.into(),
            })
            .await
            .unwrap_err(),
        ];
        for err in errs {
            assert_eq!(err.code(), Code::NotFound, "{id}: {}", err.message());
            assert_eq!(err.message(), expected);
        }
    }
    assert_eq!(
        count_events(&s.db_path()),
        before,
        "strangers wrote nothing"
    );

    // Those who can see it but lack the right: PERMISSION_DENIED, nameless.
    let mut alice = s.client("alice", &["sre"]).await;
    let err = alice
        .report_context(proto::ReportContextRequest {
            decision_id: d.id.clone(),
            context_snapshot: Some(json(json!({"v": 1}))),
        })
        .await
        .unwrap_err();
    let denied_self = svc.answer(approve(&d.id, "me")).await.unwrap_err();
    for err in [err, denied_self] {
        assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
        for name in ["svc", "alice", "sre"] {
            assert!(!err.message().contains(name), "{}", err.message());
        }
    }
}

#[tokio::test]
async fn unchanged_context_reports_are_coalesced_in_the_log() {
    let s = Server::start("");
    let mut svc = s.client("svc", &[]).await;
    let mut alice = s.client("alice", &["sre"]).await;
    let mut bob = s.client("bob", &["sre"]).await;
    let ctx = json!({"leader": "db-1"});
    let d = svc
        .ask(ask("scram.readonly", &["sre"], 2, Some(ctx.clone())))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    let report = || proto::ReportContextRequest {
        decision_id: d.id.clone(),
        context_snapshot: Some(json(ctx.clone())),
    };
    let before = count_events(&s.db_path());
    for _ in 0..20 {
        let r = svc.report_context(report()).await.unwrap().into_inner();
        assert!(r.matched);
    }
    assert_eq!(
        count_events(&s.db_path()),
        before + 1,
        "one confirmation logged"
    );
    alice.answer(approve(&d.id, "first")).await.unwrap();
    for _ in 0..20 {
        svc.report_context(report()).await.unwrap();
    }
    assert_eq!(
        count_events(&s.db_path()),
        before + 3,
        "the answer and the first confirmation after it"
    );
    let r = bob
        .answer(approve(&d.id, "second"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.decision.unwrap().status, proto::Status::Approved as i32);
}

fn audit_verify(s: &Server) -> (i32, String) {
    let out = std::process::Command::new(bin())
        .args(["audit", "verify", "--config"])
        .arg(s.config_path())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn audit_verify_names_every_edited_projection_column() {
    let mut s = Server::start("");
    let mut svc = s.client("svc", &[]).await;
    let req = proto::AskRequest {
        timeout: Some(prost_types::Duration {
            seconds: 3600,
            nanos: 0,
        }),
        ..ask("deploy.prod", &["sre"], 1, None)
    };
    let d = svc.ask(req).await.unwrap().into_inner().decision.unwrap();
    s.client("alice", &["sre"])
        .await
        .ack_delivery(proto::AckDeliveryRequest {
            decision_id: d.id.clone(),
            surface: "console".into(),
        })
        .await
        .unwrap();
    // A second, unacknowledged decision, so fallback_at is set somewhere.
    let d2 = svc
        .ask(ask("deploy.prod", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    s.kill9();
    let (code, text) = audit_verify(&s);
    assert_eq!(code, 0, "{text}");
    let db = open_db(&s.db_path());
    let edits = [
        (&d.id, "status", "'APPROVED'"),
        (&d.id, "expires_at", "NULL"),
        (&d.id, "expires_at", "expires_at + 86400000000"),
        (&d2.id, "fallback_at", "NULL"),
        (&d2.id, "fallback_at", "fallback_at + 1"),
        (&d.id, "fallback_at", "1"),
        (&d.id, "kind", "'other.kind'"),
        (&d.id, "asked_by", "'mallory'"),
        (&d.id, "created_at", "created_at - 1"),
        (&d.id, "version", "version + 1"),
        (&d.id, "last_sequence", "last_sequence - 1"),
        (&d.id, "body", "json_set(body, '$.kind', 'other.kind')"),
    ];
    for (id, column, value) in edits {
        let original: rusqlite::types::Value = db
            .query_row(
                &format!("SELECT {column} FROM decisions WHERE id = ?1"),
                [id],
                |r| r.get(0),
            )
            .unwrap();
        db.execute(
            &format!("UPDATE decisions SET {column} = {value} WHERE id = ?1"),
            [id],
        )
        .unwrap();
        let (code, text) = audit_verify(&s);
        assert_eq!(code, 1, "{column} = {value} passed verify: {text}");
        assert!(
            text.contains(&format!("column {column}")),
            "{column}: {text}"
        );
        db.execute(
            &format!("UPDATE decisions SET {column} = ?2 WHERE id = ?1"),
            rusqlite::params![id, original],
        )
        .unwrap();
        let (code, text) = audit_verify(&s);
        assert_eq!(code, 0, "restoring {column}: {text}");
    }
}

async fn first_events(
    c: &mut witness::client::GrpcClient,
    req: proto::StreamDecisionsRequest,
    n: usize,
) -> Vec<proto::DecisionEvent> {
    let mut st = c.stream_decisions(req).await.unwrap().into_inner();
    let mut out = Vec::new();
    while out.len() < n {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), st.message())
            .await
            .expect("an event within 10 s");
        out.push(next.unwrap().unwrap().event.unwrap());
    }
    out
}

#[tokio::test]
async fn after_sequence_is_optional_and_never_wraps() {
    let s = Server::start("");
    let mut svc = s.client("svc", &["sre"]).await;
    for _ in 0..3 {
        svc.ask(ask("deploy.prod", &["sre"], 1, None))
            .await
            .unwrap();
    }
    let head = count_events(&s.db_path()) as u64;
    assert_eq!(head, 3);
    // Set to 0: from the first event, no snapshot.
    let req = |after: Option<u64>| proto::StreamDecisionsRequest {
        after_sequence: after,
        include_open: true,
        ..Default::default()
    };
    let from_zero = first_events(&mut svc, req(Some(0)), 3).await;
    let seqs: Vec<u64> = from_zero.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert!(from_zero.iter().all(|e| !e.snapshot));
    // Set to N: strictly after N.
    let after_two = first_events(&mut svc, req(Some(2)), 1).await;
    assert_eq!(after_two[0].sequence, 3);
    // Exactly the head: live events only.
    let mut st = svc
        .stream_decisions(req(Some(head)))
        .await
        .unwrap()
        .into_inner();
    svc.ask(ask("deploy.prod", &["sre"], 1, None))
        .await
        .unwrap();
    let live = st.message().await.unwrap().unwrap().event.unwrap();
    assert_eq!(live.sequence, head + 1);
    // Unset with include_open: a snapshot, then SNAPSHOT_END at the head.
    let snap = first_events(&mut svc, req(None), 5).await;
    assert!(snap[..4].iter().all(|e| e.snapshot));
    assert_eq!(snap[4].r#type, proto::EventType::SnapshotEnd as i32);
    assert_eq!(snap[4].sequence, head + 1);
    // Beyond the head (including values that used to wrap): OUT_OF_RANGE.
    for after in [head + 2, head + 3, 1 << 63, u64::MAX] {
        let err = svc.stream_decisions(req(Some(after))).await.unwrap_err();
        assert_eq!(err.code(), Code::OutOfRange, "{after}: {}", err.message());
        assert!(
            err.message()
                .contains(&format!("beyond the log head {}", head + 1)),
            "{}",
            err.message()
        );
    }
}
