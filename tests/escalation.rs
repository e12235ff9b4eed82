//! Escalation chains and outcome notifications against real HTTP receivers:
//! levels fire in order and once, stand down when their `unless` holds,
//! survive kill -9, and every paged webhook learns the outcome once.

mod common;

use common::pg::PgCluster;
use common::receiver::{Hit, Receiver};
use common::*;
use serde_json::{json, Value};
use std::time::Duration;
use witness::client::GrpcClient;

const SECRET: &str = "esc-secret";

/// Receivers: `l1` (witness format), `l2` (PagerDuty), `slack` (Slack).
struct Hooks {
    l1: Receiver,
    l2: Receiver,
    slack: Receiver,
}

impl Hooks {
    async fn start() -> Hooks {
        Hooks {
            l1: Receiver::start(0).await,
            l2: Receiver::start(0).await,
            slack: Receiver::start(0).await,
        }
    }

    fn config(&self, extra: &str) -> String {
        let (l1, l2, slack) = (&self.l1.url, &self.l2.url, &self.slack.url);
        format!(
            r#"
[outbox]
backoff = "100ms"
[[webhooks]]
name = "l1"
url = "{l1}"
secret = "{SECRET}"
[[webhooks]]
name = "l2"
url = "{l2}"
secret = "{SECRET}"
format = "pagerduty"
routing_key = "rk-2"
[[webhooks]]
name = "slack"
url = "{slack}"
secret = "{SECRET}"
format = "slack"
[[policies]]
kind = "esc.*"
escalation = [
  {{ after = "2s", webhooks = ["l1"], unless = "acked" }},
  {{ after = "4s", webhooks = ["l2"], unless = "answered" }},
]
notify_outcome = ["slack"]
[[policies]]
kind = "quorum.*"
timeout = "6s"
escalation = [
  {{ after = "2s", webhooks = ["l1"], unless = "acked" }},
  {{ after = "4s", webhooks = ["l2"], unless = "answered" }},
]
notify_outcome = ["slack"]
[[policies]]
kind = "marker.*"
notify_outcome = ["l1", "l2", "slack"]
{extra}"#
        )
    }
}

/// The hits whose body mentions decision `id`.
fn about(r: &Receiver, id: &str) -> Vec<Hit> {
    r.delivered()
        .into_iter()
        .filter(|h| String::from_utf8_lossy(&h.body).contains(id))
        .collect()
}

async fn wait_about(r: &Receiver, id: &str, n: usize, what: &str) {
    eventually(what, Duration::from_secs(30), || async {
        about(r, id).len() >= n
    })
    .await;
}

/// Closes a fresh `marker.*` decision, whose outcome goes to all three
/// receivers; once each has it, every earlier delivery has been made.
async fn flush(s: &Server, hooks: &Hooks) {
    let mut c = s.client("svc", &[]).await;
    let id = c
        .ask(ask("marker.flush", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap()
        .id;
    c.cancel(proto::CancelRequest {
        decision_id: id.clone(),
        reason: "marker".into(),
    })
    .await
    .unwrap();
    for r in [&hooks.l1, &hooks.l2, &hooks.slack] {
        wait_about(r, &id, 1, "the marker outcome").await;
    }
}

async fn get(c: &mut GrpcClient, id: &str) -> proto::Decision {
    c.get_decision(proto::GetDecisionRequest {
        decision_id: id.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .decision
    .unwrap()
}

fn states(d: &proto::Decision) -> Vec<proto::EscalationState> {
    d.escalations.iter().map(proto::Escalation::state).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn levels_fire_in_order_stand_down_on_ack_or_answer_and_paged_hooks_get_one_outcome() {
    let hooks = Hooks::start().await;
    let s = Server::start(&hooks.config(""));
    let mut asker = s.client("svc", &[]).await;
    let mut alice = s.client("alice", &["sre"]).await;
    let mut bob = s.client("bob", &["sre"]).await;
    let ctx = json!({"epoch": 1});
    // answered: one of two approvals recorded at once, so level 2 stands
    // down while it stays open; it then expires.
    let answered = asker
        .ask(ask("quorum.x", &["sre"], 2, Some(ctx.clone())))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap()
        .id;
    alice.answer(approve(&answered, "half")).await.unwrap();
    let ignored = asker
        .ask(ask("esc.ignored", &["sre"], 1, None))
        .await
        .unwrap();
    let ignored = ignored.into_inner().decision.unwrap().id;
    let acked = asker
        .ask(ask("esc.acked", &["sre"], 1, None))
        .await
        .unwrap();
    let acked = acked.into_inner().decision.unwrap().id;
    alice
        .ack_delivery(proto::AckDeliveryRequest {
            decision_id: acked.clone(),
            surface: "console".into(),
        })
        .await
        .unwrap();
    let d = get(&mut alice, &acked).await;
    use proto::EscalationState::{Fired, Pending, Skipped};
    assert_eq!(states(&d), [Skipped, Pending], "an ACK stands level 1 down");
    assert!(d.next_escalation_at.is_some());
    assert_eq!(
        d.escalations[1].webhooks,
        ["l2"],
        "the decision shows each level's webhooks"
    );

    // Nobody acks `ignored`: level 1, then level 2.
    wait_about(&hooks.l1, &ignored, 1, "level 1 for the ignored decision").await;
    let l1 = about(&hooks.l1, &ignored)[0].clone();
    assert!(l1.signed_with(SECRET));
    assert_eq!(l1.json()["type"], "ESCALATED");
    assert_eq!(l1.json()["level"], 1);
    let d = get(&mut alice, &ignored).await;
    assert_eq!(d.escalations[0].state(), Fired);
    wait_about(&hooks.l2, &ignored, 1, "level 2 for the ignored decision").await;
    let page = about(&hooks.l2, &ignored)[0].json();
    assert_eq!(
        (page["event_action"].as_str(), page["dedup_key"].as_str()),
        (Some("trigger"), Some(ignored.as_str()))
    );
    // Acked but unanswered: no level 1, still level 2.
    wait_about(&hooks.l2, &acked, 1, "level 2 for the acked decision").await;
    assert!(
        about(&hooks.l1, &acked).is_empty(),
        "acked: level 1 skipped"
    );

    // Close both; the answered one expires (timeout 6s).
    bob.answer(proto::AnswerRequest {
        on_behalf_of: String::new(),
        ..approve(&ignored, "finally looked")
    })
    .await
    .unwrap();
    asker
        .cancel(proto::CancelRequest {
            decision_id: acked.clone(),
            reason: "not needed".into(),
        })
        .await
        .unwrap();
    eventually(
        "the quorum decision to expire",
        Duration::from_secs(30),
        || {
            let mut c = alice.clone();
            let id = answered.clone();
            async move { get(&mut c, &id).await.status() == proto::Status::Expired }
        },
    )
    .await;
    flush(&s, &hooks).await;

    // answered: level 1 fired (nobody acked), level 2 never did.
    let d = get(&mut alice, &answered).await;
    assert_eq!(states(&d), [Fired, Skipped]);
    assert!(d.next_escalation_at.is_none());
    assert!(
        about(&hooks.l2, &answered).is_empty(),
        "answered: no level 2"
    );

    // Exactly one outcome POST per paged webhook, with the right status.
    let outcomes = |r: &Receiver, id: &str| -> Vec<Value> {
        about(r, id)
            .iter()
            .map(Hit::json)
            .filter(|b| {
                b["event_action"] == "resolve"
                    || b.get("outcome").is_some()
                    || b["text"].as_str().is_some_and(|t| t.contains("closed"))
            })
            .collect()
    };
    let o = outcomes(&hooks.l1, &ignored);
    assert_eq!(o.len(), 1, "l1 paged for ignored: one outcome");
    assert_eq!(o[0]["outcome"]["status"], "APPROVED");
    assert_eq!(o[0]["outcome"]["answers"][0]["operator"], "bob");
    assert_eq!(o[0]["outcome"]["answers"][0]["rationale"], "finally looked");
    assert!(o[0]["outcome"]["time_to_decision_ms"].as_i64().unwrap() >= 4000);
    assert_eq!(
        o[0]["decision"]["id"],
        ignored.as_str(),
        "the full decision"
    );
    let o = outcomes(&hooks.l2, &ignored);
    assert_eq!(o.len(), 1, "l2 paged for ignored: one resolve");
    assert_eq!(o[0]["event_action"], "resolve");
    assert_eq!(
        o[0]["dedup_key"],
        ignored.as_str(),
        "resolves its own trigger"
    );
    let o = outcomes(&hooks.slack, &ignored);
    assert_eq!(o.len(), 1);
    assert!(o[0]["text"].as_str().unwrap().contains("closed APPROVED"));

    assert!(
        outcomes(&hooks.l1, &acked).is_empty(),
        "l1 was never paged for acked"
    );
    let o = outcomes(&hooks.l2, &acked);
    assert_eq!(o.len(), 1);
    assert!(o[0]["payload"]["summary"]
        .as_str()
        .unwrap()
        .contains("CANCELLED"));
    assert_eq!(outcomes(&hooks.slack, &acked).len(), 1);

    let o = outcomes(&hooks.l1, &answered);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0]["outcome"]["status"], "EXPIRED");
    assert!(outcomes(&hooks.l2, &answered).is_empty());
    assert_eq!(outcomes(&hooks.slack, &answered).len(), 1);

    // The log: one ESCALATED per fired level, and the chain verifies.
    let conn = open_db(&s.db_path());
    let escalated: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM events WHERE type = 'ESCALATED'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(escalated, 4, "ignored: 2, acked: 1, answered: 1");
    let out = std::process::Command::new(bin())
        .args(["audit", "verify", "--config"])
        .arg(s.config_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // `witness get` shows the levels.
    let out = s.cli(&["get", &answered, "--as", "alice", "--roles", "sre"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("escalation level 1 (after 2s unless acked) -> l1: fired at"),
        "{text}"
    );
    assert!(
        text.contains("escalation level 2 (after 4s unless answered) -> l2: skipped"),
        "{text}"
    );
    let out = s.cli(&["get", &acked, "--json", "--as", "alice", "--roles", "sre"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["escalations"][0]["state"], "SKIPPED");
    assert_eq!(doc["escalations"][1]["state"], "FIRED");
    assert_eq!(doc["escalations"][1]["webhooks"], json!(["l2"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_due_and_delivered_still_delivers_each_level_once() {
    let hooks = Hooks::start().await;
    let mut s = Server::start(&hooks.config(""));
    let mut asker = s.client("svc", &[]).await;
    // Down before level 1 is due: it fires after the restart.
    let early = asker
        .ask(ask("esc.early", &["sre"], 1, None))
        .await
        .unwrap();
    let early = early.into_inner().decision.unwrap();
    s.kill9();
    let due = proto::convert::micros_from_timestamp(&early.created_at.unwrap()) + 2_000_000;
    eventually("level 1 to come due", Duration::from_secs(10), || async {
        witness::store::now_micros() > due + 300_000
    })
    .await;
    assert!(
        hooks.l1.hits().is_empty(),
        "nothing fired while witness was down"
    );
    // The receiver fails everything: level 1 fires (event written, outbox
    // row pending), then witness dies before any delivery succeeds.
    hooks.l1.fail_next(1_000_000);
    s.restart();
    eventually(
        "a failed level-1 attempt",
        Duration::from_secs(30),
        || async { !hooks.l1.hits().is_empty() },
    )
    .await;
    s.kill9();
    hooks.l1.fail_next(0);
    s.restart();
    // Another restart: the fired level is not fired again.
    wait_about(&hooks.l1, &early.id, 1, "level 1 after the restarts").await;
    s.restart();
    flush(&s, &hooks).await;
    let hits = about(&hooks.l1, &early.id);
    assert_eq!(hits.len(), 1, "delivered exactly once");
    assert_eq!(hits[0].json()["level"], 1);
    let escalated: i64 = open_db(&s.db_path())
        .query_row(
            // Level 2 (after 4s, unless answered) may fire too on a slow
            // machine: only level 1 is under test here.
            "SELECT COUNT(*) FROM events WHERE type = 'ESCALATED' AND decision_id = ?1 \
             AND json_extract(body, '$.level') = 1",
            [&early.id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        escalated, 1,
        "level 1 fired exactly once across three restarts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_two_replicas_300_due_escalations_each_fire_exactly_once() {
    let r = Receiver::start(0).await;
    let url = PgCluster::shared().fresh_database().await;
    let cfg = format!(
        r#"
[outbox]
backoff = "100ms"
[[webhooks]]
name = "oncall"
url = "{}"
secret = "{SECRET}"
[[policies]]
kind = "esc.*"
escalation = [{{ after = "1s", webhooks = ["oncall"] }}]
"#,
        r.url
    );
    let a = Server::start_on(&url, &cfg);
    let b = Server::start_on(&url, &cfg);
    let mut ids = std::collections::HashSet::new();
    for (i, s) in [&a, &b].iter().cycle().take(4).enumerate() {
        let mut c = s.client("svc", &[]).await;
        for _ in 0..75 {
            let d = c
                .ask(ask(&format!("esc.r{i}"), &["sre"], 1, None))
                .await
                .unwrap()
                .into_inner()
                .decision
                .unwrap();
            ids.insert(d.id);
        }
    }
    assert_eq!(ids.len(), 300);
    eventually(
        "300 escalations delivered",
        Duration::from_secs(60),
        || async { r.delivered().len() >= 300 },
    )
    .await;
    // A later one proves both workers have moved past all 300.
    let mut c = b.client("svc", &[]).await;
    let marker = c.ask(ask("esc.marker", &["sre"], 1, None)).await.unwrap();
    let marker = marker.into_inner().decision.unwrap().id;
    wait_about(&r, &marker, 1, "the marker's escalation").await;
    let hits = r.hits();
    assert_eq!(hits.len(), 301, "each level fired and was delivered once");
    let keys: std::collections::HashSet<String> =
        hits.iter().map(|h| h.idempotency_key.clone()).collect();
    assert_eq!(keys.len(), 301);
    let client = pg::connect(&url).await;
    let rows = client
        .query(
            "SELECT decision_id, COUNT(*) FROM events WHERE type = 'ESCALATED' GROUP BY decision_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 301);
    assert!(
        rows.iter().all(|r| r.get::<_, i64>(1) == 1),
        "one ESCALATED per decision"
    );
}

/// Runs `witness serve` on `policies` and returns (exit success, stderr).
fn serve_with(policies: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("witness.toml");
    let db = dir.path().join("w.db");
    std::fs::write(
        &cfg,
        format!(
            "[store]\nurl = \"sqlite://{}\"\n[[webhooks]]\nname = \"l1\"\nurl = \"http://127.0.0.1:9/h\"\nsecret = \"s\"\n{policies}",
            db.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_chains_refuse_to_start_naming_the_policy_and_the_level() {
    let cases = [
        (
            r#"escalation = [{ after = "1m", webhooks = ["l1"] }, { after = "2m", webhooks = ["nope"] }]"#,
            "escalation[1] (level 2).webhooks: no [[webhooks]] entry is named \"nope\"",
        ),
        (
            r#"escalation = [{ after = "2m", webhooks = ["l1"] }, { after = "1m", webhooks = ["l1"] }]"#,
            "escalation[1] (level 2).after: 1m must be later than escalation[0].after: 2m",
        ),
        (
            r#"escalation = [{ after = "1m", webhooks = ["l1"], unless = "seen" }]"#,
            "escalation[0] (level 1).unless: \"seen\" is not one of",
        ),
        (
            r#"notify_outcome = ["slack"]"#,
            "notify_outcome: no [[webhooks]] entry is named \"slack\"",
        ),
    ];
    for (keys, needle) in cases {
        let (ok, stderr) = serve_with(&format!(
            "[[policies]]\nkind = \"other.*\"\n[[policies]]\nkind = \"deploy.*\"\n{keys}\n"
        ));
        assert!(!ok, "{keys}: must refuse to start");
        assert!(
            stderr.contains("policies[1] (kind \"deploy.*\")"),
            "{keys}: {stderr}"
        );
        assert!(stderr.contains(needle), "{keys}: {stderr}");
    }
}
