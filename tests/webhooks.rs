//! Durable timers and webhook delivery against real HTTP receivers.

mod common;

use common::pg::PgCluster;
use common::receiver::Receiver;
use common::*;
use serde_json::json;
use std::time::Duration;

const SECRET: &str = "s3cret-hmac-key";

fn config(url: &str, extra: &str) -> String {
    format!(
        r#"
[outbox]
backoff = "100ms"
max_attempts = 4
[[webhooks]]
name = "pager"
url = "{url}"
secret = "{SECRET}"
format = "pagerduty"
routing_key = "rk-1"
[[webhooks]]
name = "hook"
url = "{url}"
secret = "{SECRET}"
[[policies]]
kind = "scram.*"
ack_window = "1s"
fallback = ["pager"]
[[policies]]
kind = "expire.*"
timeout = "1s"
[[policies]]
kind = "reject.*"
timeout = "1s"
on_timeout = "reject"
timeout_answer = {{ reason = "nobody answered" }}
{extra}"#
    )
}

fn events_of(s: &Server, kind: &str) -> i64 {
    open_db(&s.db_path())
        .query_row("SELECT COUNT(*) FROM events WHERE type = ?1", [kind], |r| {
            r.get(0)
        })
        .unwrap()
}

async fn wait_hits(r: &Receiver, n: usize) {
    eventually("webhook deliveries", Duration::from_secs(20), || async {
        r.delivered().len() >= n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_fires_once_without_an_ack_and_never_with_one() {
    let r = Receiver::start(0).await;
    let s = Server::start(&config(&r.url, ""));
    let mut asker = s.client("svc", &[]).await;
    let mut console = s.client("console", &["sre"]).await;
    // Acked first: its window ends before the unacked one's.
    let seen = asker
        .ask(ask("scram.seen", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    console
        .ack_delivery(proto::AckDeliveryRequest {
            decision_id: seen.id.clone(),
            surface: "console".into(),
        })
        .await
        .unwrap();
    let unseen = asker
        .ask(ask("scram.unseen", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    wait_hits(&r, 1).await;
    let hit = &r.delivered()[0];
    assert!(hit.signed_with(SECRET), "valid signature");
    let body = hit.json();
    assert_eq!(
        body["dedup_key"],
        unseen.id.as_str(),
        "PagerDuty Events v2 with dedup_key = decision id"
    );
    assert_eq!(body["routing_key"], "rk-1");
    assert!(hit.idempotency_key.starts_with(&unseen.id));
    // A later decision's fallback proves the worker has moved past both.
    let later = asker
        .ask(ask("scram.later", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    wait_hits(&r, 2).await;
    assert_eq!(r.delivered()[1].json()["dedup_key"], later.id.as_str());
    assert_eq!(
        r.hits().len(),
        2,
        "one page per unacknowledged decision, none for the acked one"
    );
    assert_eq!(events_of(&s, "FALLBACK_FIRED"), 2);
    let got = asker
        .get_decision(proto::GetDecisionRequest {
            decision_id: unseen.id,
        })
        .await
        .unwrap();
    assert!(got.into_inner().decision.unwrap().fallback_fired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_due_while_witness_was_down_fires_once_after_restart() {
    let r = Receiver::start(0).await;
    let mut s = Server::start(&config(&r.url, ""));
    let mut asker = s.client("svc", &[]).await;
    let d = asker
        .ask(ask("scram.x", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    s.kill9();
    let due = proto::convert::micros_from_timestamp(&d.created_at.unwrap()) + 1_000_000;
    eventually(
        "the ack window to pass",
        Duration::from_secs(10),
        || async { witness::store::now_micros() > due + 500_000 },
    )
    .await;
    assert!(r.hits().is_empty(), "nothing fired while witness was down");
    s.restart();
    wait_hits(&r, 1).await;
    // And only once, even across another restart.
    s.restart();
    let mut asker = s.client("svc", &[]).await;
    asker
        .ask(ask("scram.marker", &["sre"], 1, None))
        .await
        .unwrap();
    wait_hits(&r, 2).await;
    let keys: Vec<String> = r
        .delivered()
        .iter()
        .map(|h| h.idempotency_key.clone())
        .collect();
    assert!(keys[0].starts_with(&d.id));
    assert_eq!(r.hits().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_the_delivery_after_retries_and_dead_letters_are_visible() {
    let r = Receiver::start(2).await;
    let s = Server::start(&config(&r.url, ""));
    let mut asker = s.client("svc", &[]).await;
    let req = proto::AskRequest {
        surfaces: vec!["hook".into(), "console".into()],
        ..ask("deploy.prod", &["sre"], 1, None)
    };
    let d = asker.ask(req).await.unwrap().into_inner().decision.unwrap();
    wait_hits(&r, 1).await;
    let hits = r.hits();
    assert_eq!(hits.len(), 3, "two failures, then success");
    assert!(hits.iter().all(|h| h.signed_with(SECRET)));
    assert!(
        hits.iter()
            .all(|h| h.idempotency_key == format!("{}/1", d.id)),
        "one idempotency key for every try"
    );
    let body = hits[2].json();
    assert_eq!(
        (body["type"].as_str(), body["decision_id"].as_str()),
        (Some("CREATED"), Some(d.id.as_str()))
    );

    // A receiver that never recovers ends in the dead-letter state...
    r.fail_next(100);
    let req = proto::AskRequest {
        surfaces: vec!["hook".into()],
        ..ask("deploy.prod", &["sre"], 1, None)
    };
    asker.ask(req).await.unwrap();
    let cfg = s.config_path();
    let list = |status: &str| {
        let out = std::process::Command::new(bin())
            .args(["outbox", "list", "--json", "--status", status, "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    eventually("a dead letter", Duration::from_secs(20), || async {
        !list("dead").is_empty()
    })
    .await;
    let dead = list("dead");
    assert_eq!(dead[0]["attempts"], 4);
    assert_eq!(dead[0]["last_error"], "HTTP 500 Internal Server Error");
    // ...and `witness outbox retry` re-drives it.
    r.fail_next(0);
    let out = std::process::Command::new(bin())
        .args(["outbox", "retry", "--all-dead", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success());
    wait_hits(&r, 2).await;
    assert!(list("dead").is_empty());
    assert_eq!(list("delivered").len(), 2);
}

/// A status no witness writes is corrupt data: `outbox list` fails naming
/// the row, instead of showing the delivery as pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_outbox_status_fails_outbox_list_naming_the_row() {
    let r = Receiver::start(0).await;
    let s = Server::start(&config(&r.url, ""));
    let mut asker = s.client("svc", &[]).await;
    let req = proto::AskRequest {
        surfaces: vec!["hook".into()],
        ..ask("deploy.prod", &["sre"], 1, None)
    };
    asker.ask(req).await.unwrap();
    wait_hits(&r, 1).await;
    // The worker records the delivery after the receiver answered: wait for
    // that write, or it could overwrite the corruption below.
    let db = s.db_path();
    eventually("the delivery is recorded", Duration::from_secs(20), || {
        let db = db.clone();
        async move {
            open_db(&db)
                .query_row(
                    "SELECT COUNT(*) FROM outbox WHERE status = 'delivered'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap_or(0)
                == 1
        }
    })
    .await;
    let id: i64 = open_db(&s.db_path())
        .query_row("UPDATE outbox SET status = 'sent' RETURNING id", [], |r| {
            r.get(0)
        })
        .unwrap();
    let out = std::process::Command::new(bin())
        .args(["outbox", "list", "--config"])
        .arg(s.config_path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("outbox row {id}: unknown status \"sent\"")),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing shown as pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_closes_expired_and_on_timeout_reject_records_the_configured_answer() {
    let r = Receiver::start(0).await;
    let s = Server::start(&config(&r.url, ""));
    let mut asker = s.client("svc", &[]).await;
    let e = asker
        .ask(ask("expire.x", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    let j = asker
        .ask(ask("reject.x", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    let closed = |id: String| {
        let mut c = asker.clone();
        async move {
            witness::client::wait_closed(&mut c, &id, |_| {})
                .await
                .unwrap()
        }
    };
    let expired = closed(e.id).await;
    assert_eq!(
        expired.status,
        proto::Status::Expired as i32,
        "an expiry is never a rejection"
    );
    assert!(expired.answers.is_empty());
    let rejected = closed(j.id).await;
    assert_eq!(rejected.status, proto::Status::Rejected as i32);
    let answer = &rejected.answers[0];
    assert_eq!(answer.operator, "witness");
    let recorded = proto::convert::json_from_proto("answer", answer.answer.clone()).unwrap();
    assert_eq!(recorded, json!({"reason": "nobody answered"}));
    assert_eq!(events_of(&s, "EXPIRED"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_two_replicas_hundreds_of_due_timers_each_fire_exactly_once() {
    let r = Receiver::start(0).await;
    let url = PgCluster::shared().fresh_database().await;
    let cfg = config(&r.url, "");
    let a = Server::start_on(&url, &cfg);
    let b = Server::start_on(&url, &cfg);
    let mut ids = std::collections::HashSet::new();
    for (i, s) in [&a, &b].iter().cycle().take(4).enumerate() {
        let mut c = s.client("svc", &[]).await;
        for _ in 0..75 {
            let d = c
                .ask(ask(&format!("scram.r{i}"), &["sre"], 1, None))
                .await
                .unwrap()
                .into_inner()
                .decision
                .unwrap();
            ids.insert(d.id);
        }
    }
    wait_hits(&r, ids.len()).await;
    let mut c = a.client("svc", &[]).await;
    c.ask(ask("scram.marker", &["sre"], 1, None)).await.unwrap();
    wait_hits(&r, ids.len() + 1).await;
    let hits = r.hits();
    assert_eq!(
        hits.len(),
        ids.len() + 1,
        "each timer fired exactly once across both replicas"
    );
    let keys: std::collections::HashSet<String> =
        hits.iter().map(|h| h.idempotency_key.clone()).collect();
    assert_eq!(keys.len(), hits.len());
    let client = pg::connect(&url).await;
    let fired: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM events WHERE type = 'FALLBACK_FIRED'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(fired as usize, ids.len() + 1);
}

/// A webhook secret kept out of the config file (`secret_file`; the
/// environment form, `secret_env`, is unit-tested in `config::secrets`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_secret_from_a_file_signs_the_delivery() {
    let r = Receiver::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pager.secret");
    std::fs::write(&file, "kept-in-a-file\n").unwrap();
    let s = Server::start(&format!(
        "[[webhooks]]\nname = \"pager\"\nurl = \"{}\"\nsecret_file = \"{}\"\n\
         [[policies]]\nkind = \"scram.*\"\nack_window = \"1s\"\nfallback = [\"pager\"]\n",
        r.url,
        file.display()
    ));
    let mut asker = s.client("svc", &[]).await;
    asker
        .ask(ask("scram.filed", &["sre"], 1, None))
        .await
        .unwrap();
    wait_hits(&r, 1).await;
    assert!(r.delivered()[0].signed_with("kept-in-a-file"));
    assert!(
        !s.stderr().contains("kept-in-a-file"),
        "the secret is never logged"
    );
}
