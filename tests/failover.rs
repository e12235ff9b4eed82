//! PostgreSQL failover under a running witness (DESIGN §12), on a real
//! primary and streaming standby made from the local PostgreSQL 15
//! binaries, with witness on the multi-host URL
//! (`target_session_attrs=read-write`). The long runs with repeated
//! failovers are `CHAOS_BACKEND=postgres-ha make chaos`.

mod common;

use common::pg_ha::{signal, stall_pids, HaPair};
use common::{ask, proto, Server};
use std::time::{Duration, Instant};
use tonic::Code;

/// Short timeouts, so that an outage is answered quickly.
const CONFIG: &str = r#"
statement_timeout = "2s"
connect_timeout = "1s"

[[policies]]
kind = "ha.timed"
timeout = "4s"
on_timeout = "expire"
"#;

fn start_witness(pair: &HaPair) -> Server {
    // CONFIG's first keys belong to [store], which start_on opens.
    Server::start_on(&pair.url(), CONFIG)
}

/// Asks until one is acknowledged (the store may be failing over).
async fn ask_until_ok(
    c: &mut witness::client::GrpcClient,
    req: proto::AskRequest,
    limit: Duration,
) -> proto::AskResponse {
    let until = Instant::now() + limit;
    loop {
        match c.ask(req.clone()).await {
            Ok(r) => return r.into_inner(),
            Err(s) if Instant::now() < until => {
                assert!(
                    matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded),
                    "an outage must answer UNAVAILABLE or DEADLINE_EXCEEDED, not {s:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => panic!("witness did not recover within {limit:?}: {s:?}"),
        }
    }
}

/// The whole log, by StreamDecisions from 0 up to `head`.
async fn log(c: &mut witness::client::GrpcClient, head: u64) -> Vec<proto::DecisionEvent> {
    let mut stream = c
        .stream_decisions(proto::StreamDecisionsRequest {
            after_sequence: Some(0),
            ..Default::default()
        })
        .await
        .expect("stream")
        .into_inner();
    let mut out: Vec<proto::DecisionEvent> = Vec::new();
    while out.last().map_or(0, |e| e.sequence) < head {
        let m = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("the stream stalled")
            .expect("stream message")
            .expect("the stream ended");
        out.extend(m.event);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_keeps_every_acknowledged_write_and_witness_recovers_in_process() {
    let mut pair = HaPair::start(true);
    pair.wait_streaming(Duration::from_secs(30))
        .expect("standby");
    let server = start_witness(&pair);
    let pid = server.pid();
    let mut c = server.client("app", &[]).await;

    let mut acked = Vec::new();
    for _ in 0..20 {
        let req = ask("ha.plain", &["sre"], 1, None);
        let r = c.ask(req.clone()).await.expect("ask").into_inner();
        acked.push((req, r.decision.expect("decision").id));
    }

    // A stalled synchronous standby holds every COMMIT: witness answers
    // UNAVAILABLE within its statement timeout instead of acknowledging a
    // write only the primary has, and recovers once the standby does.
    let stalled = pair.standby_pids();
    let stall = std::thread::spawn(move || stall_pids(&stalled, Duration::from_secs(8)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let during = ask("ha.plain", &["sre"], 1, None);
    let began = Instant::now();
    let refused = c.ask(during.clone()).await;
    let took = began.elapsed();
    let status = refused.expect_err("a write acknowledged while the synchronous standby was away");
    assert!(
        matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{status:?}"
    );
    assert!(
        took < Duration::from_secs(7),
        "answered only when the stall ended ({took:?}), not within the statement timeout"
    );
    stall.join().expect("stall");
    // Its outcome was unknown: the retry with its request id settles it.
    let retried = ask_until_ok(&mut c, during.clone(), Duration::from_secs(30)).await;
    acked.push((during, retried.decision.expect("decision").id));

    let timed = ask("ha.timed", &["sre"], 1, None);
    let timed_id = c
        .ask(timed)
        .await
        .expect("timed ask")
        .into_inner()
        .decision
        .expect("decision")
        .id;

    // The primary's host dies; the standby is promoted; the old primary
    // comes back as the new standby (synchronous commits wait for it).
    pair.kill_primary();
    let began = Instant::now();
    let outage = c.ask(ask("ha.plain", &["sre"], 1, None)).await;
    let status = outage.expect_err("an Ask succeeded with no primary");
    assert!(
        matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{status:?}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "the outage was not answered promptly"
    );
    pair.promote().expect("promote");
    pair.rebuild_standby()
        .expect("rebuild the old primary as standby");

    let after = ask_until_ok(
        &mut c,
        ask("ha.plain", &["sre"], 1, None),
        Duration::from_secs(30),
    )
    .await;
    assert!(after.created);
    assert_eq!(server.pid(), pid, "the same witness process serves again");

    // Every acknowledged Ask survived; its retry finds it, not a new one.
    for (req, id) in &acked {
        let again = c.ask(req.clone()).await.expect("retry").into_inner();
        assert!(
            !again.created,
            "a retry of an acknowledged Ask created a decision"
        );
        assert_eq!(&again.decision.expect("decision").id, id);
    }

    // The timer due after the failover fired, once.
    let mut expired = None;
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        let d = c
            .get_decision(proto::GetDecisionRequest {
                decision_id: timed_id.clone(),
            })
            .await
            .expect("get")
            .into_inner()
            .decision
            .expect("decision");
        if d.status == proto::Status::Expired as i32 {
            expired = Some(d);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let expired = expired.expect("the timed decision never expired after the failover");
    let events = log(&mut c, expired.last_sequence).await;
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.sequence, i as u64 + 1, "a gap or repeat in the log");
    }
    let expiries = events
        .iter()
        .filter(|e| {
            e.r#type == proto::EventType::Expired as i32
                && e.decision.as_ref().is_some_and(|d| d.id == timed_id)
        })
        .count();
    assert_eq!(expiries, 1, "the timer fired {expiries} times");

    let out = std::process::Command::new(common::bin())
        .args(["audit", "verify", "--config"])
        .arg(server.config_path())
        .output()
        .expect("audit verify");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asynchronous_replication_loses_what_the_standby_never_got_and_audit_lost_names_it() {
    let mut pair = HaPair::start(false);
    pair.wait_streaming(Duration::from_secs(30))
        .expect("standby");
    let server = start_witness(&pair);
    let mut c = server.client("app", &[]).await;
    let mut replicated = Vec::new();
    for _ in 0..5 {
        let r = c
            .ask(ask("ha.plain", &["sre"], 1, None))
            .await
            .expect("ask");
        replicated.push(r.into_inner().decision.expect("decision"));
    }
    let head = replicated.last().map_or(0, |d| d.last_sequence);
    let until = Instant::now() + Duration::from_secs(20);
    while pair.standby_head() < Some(head) {
        assert!(Instant::now() < until, "the standby never replayed {head}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Replication stops (the primary's WAL sender stalls): with
    // `synchronous_commit = local` the primary still acknowledges.
    let primary = pair.primary().postmaster().expect("primary running");
    let senders: Vec<u32> = common::pg_ha::children(primary)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.contains("walsender"))
        })
        .collect();
    assert!(!senders.is_empty(), "no WAL sender on the primary");
    for p in &senders {
        signal(*p, libc::SIGSTOP);
    }
    let mut unreplicated = Vec::new();
    for _ in 0..3 {
        let r = c
            .ask(ask("ha.plain", &["sre"], 1, None))
            .await
            .expect("ask");
        unreplicated.push(r.into_inner().decision.expect("decision"));
    }
    pair.kill_primary();
    pair.promote().expect("promote");
    pair.rebuild_standby().expect("rebuild");
    ask_until_ok(
        &mut c,
        ask("ha.plain", &["sre"], 1, None),
        Duration::from_secs(30),
    )
    .await;

    // What the askers were told, as `witness ask --json` prints it.
    let acked: String = replicated
        .iter()
        .chain(&unreplicated)
        .map(|d| format!("{{\"id\":\"{}\",\"version\":{}}}\n", d.id, d.version))
        .collect();
    let file = server.dir.path().join("acked.jsonl");
    std::fs::write(&file, acked).expect("write");
    let out = std::process::Command::new(common::bin())
        .args(["audit", "lost", "--json", "--acked"])
        .arg(&file)
        .arg("--config")
        .arg(server.config_path())
        .output()
        .expect("audit lost");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let lost: Vec<&str> = report["lost"]
        .as_array()
        .expect("lost")
        .iter()
        .filter_map(|l| l["id"].as_str())
        .collect();
    let want: Vec<&str> = unreplicated.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(lost, want, "exactly the writes the standby never received");
    assert_eq!(report["acknowledged"], 8);

    // What survived is one unbroken chain.
    let out = std::process::Command::new(common::bin())
        .args(["audit", "verify", "--config"])
        .arg(server.config_path())
        .output()
        .expect("audit verify");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Nothing lost: exit 0, and the text form says so.
    let survivors: String = replicated.iter().map(|d| format!("{}\n", d.id)).collect();
    std::fs::write(&file, survivors).expect("write");
    let out = std::process::Command::new(common::bin())
        .args(["audit", "lost", "--acked"])
        .arg(&file)
        .arg("--config")
        .arg(server.config_path())
        .output()
        .expect("audit lost");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "5 acknowledged, 0 lost\n"
    );
}
