//! The Slack app surface against the real binary and a local fake of the
//! Slack Web API (tests/common/slack.rs): posting through the outbox,
//! buttons and the modal through `POST /slack/interactions` signed as Slack
//! signs, the message updated in place, and Slack's rate limits.

mod common;

use common::slack::{self, decision_of, event_of, has_buttons, interact, FakeSlack};
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
/// The Slack lane's lease with `[outbox] timeout = "2s"` (14 s), and margin.
const LEASE_WAIT: Duration = Duration::from_secs(40);

fn config(fake: &FakeSlack) -> String {
    let principals = [
        principal("alice", &["sre"], ""),
        principal("bob", &["sre"], ""),
        principal("ci", &["sre"], ""),
        principal("carol", &["dba"], "email = \"Carol@Example.com\""),
    ]
    .concat();
    format!(
        r#"{principals}
[outbox]
backoff = "50ms"
max_backoff = "200ms"
# The kill -9 test fails updates for a while: never long enough to kill one.
max_attempts = 1000
# A row claimed when the process died waits out its lease (5s + 2 x this + 5s).
timeout = "2s"
[[policies]]
kind = "pair.*"
required_approvals = 2
slack_channel = "C0DEPLOY"
[[policies]]
kind = "deploy.*"
slack_channel = "C0DEPLOY"
{}
users = [
  {{ slack_id = "U0ALICE", principal = "alice" }},
  {{ slack_id = "U0BOB", principal = "bob" }},
  {{ slack_id = "U0CI", principal = "ci" }},
]
principal_from = "email"
"#,
        fake.config("")
    )
}

async fn start() -> (FakeSlack, Server) {
    let fake = FakeSlack::start().await;
    let server = Server::start(&config(&fake));
    (fake, server)
}

async fn ask_as_ci(s: &Server, kind: &str, roles: &[&str], approvals: u32) -> String {
    let mut ci = s.client_with_token(&token("ci")).await;
    let context = (approvals > 1).then(|| json!({"primary": "db1"}));
    let mut req = ask(kind, roles, approvals, context);
    req.input = Some(json(
        json!({"service": "api", "version": "1.4.2", "note": "<!channel> ship it"}),
    ));
    asked(&mut ci, req).await.id
}

/// Waits for the decision's message; returns its post body and ts.
async fn posted(fake: &FakeSlack, id: &str) -> (Value, String) {
    eventually("the decision's Slack message", WAIT, || async {
        fake.post_of(id).is_some()
    })
    .await;
    fake.post_of(id).unwrap()
}

/// Waits for an update of message `ts` whose text contains `needle`.
async fn updated_with(fake: &FakeSlack, ts: &str, needle: &str) -> Value {
    eventually(
        &format!("a chat.update showing {needle:?}"),
        WAIT,
        || async {
            fake.updates_of(ts)
                .iter()
                .any(|u| u["blocks"].to_string().contains(needle))
        },
    )
    .await;
    fake.updates_of(ts).last().unwrap().clone()
}

async fn get(s: &Server, id: &str) -> proto::Decision {
    let mut ci = s.client_with_token(&token("ci")).await;
    ci.get_decision(proto::GetDecisionRequest {
        decision_id: id.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .decision
    .unwrap()
}

/// Clicks `action` as `user`, then submits the modal with `rationale`:
/// the submission's HTTP answer as JSON.
async fn vote(s: &Server, fake: &FakeSlack, user: &str, id: &str, rationale: &str) -> Value {
    let (status, _) = interact(&s.addr, &fake.click(user, id, "witness_approve")).await;
    assert_eq!(status, 200);
    let view = fake.last_view();
    let (status, body) = interact(&s.addr, &fake.submit(user, &view, rationale, json!({}))).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// Updates of one message show strictly increasing events: each event at
/// most once, in order.
fn assert_in_order(fake: &FakeSlack, ts: &str) {
    let events: Vec<u64> = fake.updates_of(ts).iter().map(event_of).collect();
    assert!(
        events.windows(2).all(|w| w[0] < w[1]),
        "updates out of order or repeated: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_person_decision_is_answered_by_two_slack_users() {
    let (fake, s) = start().await;
    let id = ask_as_ci(&s, "pair.db-failover", &["sre"], 2).await;
    let (post, ts) = posted(&fake, &id).await;
    assert_eq!(post["channel"], "C0DEPLOY");
    let text = post["blocks"].to_string();
    for shown in [
        "pair.db-failover",
        "*Asked by*\\nci",
        "sre",
        "0 of 2 approvals",
        "1.4.2",
    ] {
        assert!(text.contains(shown), "{shown} in {text}");
    }
    assert!(text.contains("&lt;!channel&gt;") && !text.contains("<!channel>"));
    assert!(has_buttons(&post));

    // Alice: the button opens the modal and ACKs for surface slack.
    let (status, _) = interact(&s.addr, &fake.click("U0ALICE", &id, "witness_approve")).await;
    assert_eq!(status, 200);
    let view = fake.last_view();
    assert_eq!(view["callback_id"], "witness_answer");
    assert_eq!(view["title"]["text"], "Approve");
    let d = get(&s, &id).await;
    assert_eq!(d.delivered_via, "slack");
    let (status, body) = interact(
        &s.addr,
        &fake.submit("U0ALICE", &view, "replica is healthy", json!({})),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"response_action":"clear"}"#)
    );
    let d = get(&s, &id).await;
    assert_eq!(d.answers.len(), 1);
    assert_eq!(d.answers[0].operator, "alice");
    updated_with(&fake, &ts, "1 of 2 approvals").await;

    // Bob before the asker re-confirmed its context: the two-person rule
    // refuses in the modal, and nothing is recorded.
    let events = count_events(&s.db_path());
    let refused = vote(&s, &fake, "U0BOB", &id, "agree").await;
    assert_eq!(refused["response_action"], "errors", "{refused}");
    let why = refused["errors"]["rationale"].as_str().unwrap();
    assert!(why.contains("context"), "{why}");
    assert_eq!(get(&s, &id).await.answers.len(), 1);
    assert_eq!(
        count_events(&s.db_path()),
        events,
        "nothing (alice's ACK came first)"
    );

    let mut ci = s.client_with_token(&token("ci")).await;
    ci.report_context(proto::ReportContextRequest {
        decision_id: id.clone(),
        context_snapshot: Some(json(json!({"primary": "db1"}))),
    })
    .await
    .unwrap();
    let ok = vote(&s, &fake, "U0BOB", &id, "agree, failover window is now").await;
    assert_eq!(ok["response_action"], "clear", "{ok}");
    let d = get(&s, &id).await;
    assert_eq!(d.status, proto::Status::Approved as i32);
    let ops: Vec<&str> = d.answers.iter().map(|a| a.operator.as_str()).collect();
    assert_eq!(ops, ["alice", "bob"]);

    let last = updated_with(&fake, &ts, "APPROVED").await;
    let text = last["blocks"].to_string();
    assert!(!has_buttons(&last), "no buttons once closed");
    assert!(text.contains("*alice*: replica is healthy"), "{text}");
    assert!(
        text.contains("*bob*: agree, failover window is now"),
        "{text}"
    );
    assert_in_order(&fake, &ts);
    assert_eq!(fake.violations(), Vec::<String>::new());
    assert!(!s.stderr().contains(slack::BOT_TOKEN) && !s.stderr().contains(slack::SIGNING_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_approval_is_refused_in_the_modal_and_nothing_is_recorded() {
    let (fake, s) = start().await;
    let id = ask_as_ci(&s, "deploy.api", &["sre"], 1).await;
    posted(&fake, &id).await;
    let (status, _) = interact(&s.addr, &fake.click("U0CI", &id, "witness_approve")).await;
    assert_eq!(status, 200);
    let events = count_events(&s.db_path());
    let view = fake.last_view();
    let (status, body) = interact(&s.addr, &fake.submit("U0CI", &view, "mine", json!({}))).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["response_action"], "errors", "{v}");
    let why = v["errors"]["rationale"].as_str().unwrap();
    assert!(
        why.contains("own decision") || why.contains("self"),
        "{why}"
    );
    assert_eq!(count_events(&s.db_path()), events);
    let d = get(&s, &id).await;
    assert!(d.answers.is_empty());
    assert_eq!(d.status, proto::Status::Open as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_and_replayed_requests_get_401_and_change_nothing() {
    let (fake, s) = start().await;
    let id = ask_as_ci(&s, "deploy.api", &["sre"], 1).await;
    posted(&fake, &id).await;
    let click = fake.click("U0ALICE", &id, "witness_approve");
    let events = count_events(&s.db_path());
    let now = slack::now_secs();

    let forged = slack::sign(&click, "not-the-signing-secret", now);
    assert_eq!(slack::send(&s.addr, &forged).await.0, 401);
    let stale = slack::sign(&click, slack::SIGNING_SECRET, now - 301);
    assert_eq!(slack::send(&s.addr, &stale).await.0, 401);
    let mut tampered = slack::sign(&click, slack::SIGNING_SECRET, now);
    tampered.body = tampered.body.replace("U0ALICE", "U0BOB00");
    assert_eq!(slack::send(&s.addr, &tampered).await.0, 401);
    let mut unsigned = slack::sign(&click, slack::SIGNING_SECRET, now);
    unsigned.signature = String::new();
    assert_eq!(slack::send(&s.addr, &unsigned).await.0, 401);
    assert!(fake.calls_of("views.open").is_empty());
    assert_eq!(
        count_events(&s.db_path()),
        events,
        "refusals record nothing"
    );

    // A genuine request passes the request guard (no Origin, a public
    // Host name) once; the same request again is a replay.
    let genuine = slack::sign(&click, slack::SIGNING_SECRET, now);
    assert_eq!(slack::send(&s.addr, &genuine).await.0, 200);
    assert_eq!(fake.ok_calls("views.open").len(), 1);
    assert_eq!(count_events(&s.db_path()), events + 1, "the ACK");
    let (status, body) = slack::send(&s.addr, &genuine).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("replay"), "{body}");
    assert_eq!(fake.ok_calls("views.open").len(), 1);
    assert_eq!(count_events(&s.db_path()), events + 1);

    // A browser page elsewhere cannot post here: the guard refuses
    // cross-origin state changes before the signature is even read.
    let fresh = slack::sign(&click, slack::SIGNING_SECRET, slack::now_secs());
    let res = reqwest::Client::new()
        .post(format!("http://{}/slack/interactions", s.addr))
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", &fresh.timestamp)
        .header("x-slack-signature", &fresh.signature)
        .body(fresh.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert_eq!(fake.ok_calls("views.open").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlinked_slack_user_is_told_so_and_nothing_is_recorded() {
    let (fake, s) = start().await;
    let id = ask_as_ci(&s, "deploy.api", &["sre", "dba"], 1).await;
    posted(&fake, &id).await;
    let events = count_events(&s.db_path());
    let (status, _) = interact(&s.addr, &fake.click("U0NOBODY", &id, "witness_approve")).await;
    assert_eq!(status, 200);
    eventually("the ephemeral reply", WAIT, || async {
        !fake.ephemeral().is_empty()
    })
    .await;
    let reply = &fake.ephemeral()[0];
    assert_eq!(reply["response_type"], "ephemeral");
    assert_eq!(
        reply["text"],
        "your Slack account is not linked to a witness principal"
    );
    assert!(fake.calls_of("views.open").is_empty());
    // A submission from an unlinked account is refused in the modal too.
    let view = json!({"callback_id": "witness_answer",
        "private_metadata": json!({"decision_id": id, "verdict": "APPROVE"}).to_string()});
    let (_, body) = interact(&s.addr, &fake.submit("U0NOBODY", &view, "yes", json!({}))).await;
    assert!(body.contains("not linked to a witness principal"), "{body}");
    assert_eq!(count_events(&s.db_path()), events);
    assert!(get(&s, &id).await.answers.is_empty());

    // By email: carol's Slack profile address matches her principal's.
    fake.set_email("U0CAROL", "carol@example.com");
    let (status, _) = interact(&s.addr, &fake.click("U0CAROL", &id, "witness_reject")).await;
    assert_eq!(status, 200);
    let view = fake.last_view();
    assert_eq!(view["title"]["text"], "Reject");
    let (_, body) = interact(
        &s.addr,
        &fake.submit("U0CAROL", &view, "not now", json!({})),
    )
    .await;
    assert!(body.contains("clear"), "{body}");
    let d = get(&s, &id).await;
    assert_eq!(d.status, proto::Status::Rejected as i32);
    assert_eq!(d.answers[0].operator, "carol");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_cancelled_from_the_cli_updates_its_slack_message() {
    let (fake, s) = start().await;
    let id = ask_as_ci(&s, "deploy.api", &["sre"], 1).await;
    let (_, ts) = posted(&fake, &id).await;
    let out = s.cli(&[
        "cancel",
        &id,
        "--reason",
        "rolled back instead",
        "--token",
        &token("ci"),
    ]);
    assert!(out.status.success(), "{out:?}");
    let last = updated_with(&fake, &ts, "CANCELLED").await;
    let text = last["blocks"].to_string();
    assert!(text.contains("rolled back instead"), "{text}");
    assert!(!has_buttons(&last));
    assert_eq!(fake.updates_of(&ts).len(), 1, "one event, one update");
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_update_after_a_vote_survives_kill_9_and_happens_once() {
    let (fake, s) = start().await;
    survives_kill_9(fake, s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_update_after_a_vote_survives_kill_9_on_postgres() {
    let fake = FakeSlack::start().await;
    let url = pg::PgCluster::shared().fresh_database().await;
    let s = Server::start_on(&url, &config(&fake));
    survives_kill_9(fake, s).await;
}

async fn survives_kill_9(fake: FakeSlack, mut s: Server) {
    let id = ask_as_ci(&s, "pair.restart", &["sre"], 2).await;
    let (_, ts) = posted(&fake, &id).await;
    fake.fail_updates(true);
    let v = vote(&s, &fake, "U0ALICE", &id, "safe to restart").await;
    assert_eq!(v["response_action"], "clear", "{v}");
    eventually("a failed chat.update", WAIT, || async {
        fake.calls_of("chat.update").iter().any(|c| c.status == 503)
    })
    .await;
    s.kill9();
    assert!(fake.ok_calls("chat.update").is_empty());
    fake.fail_updates(false);
    s.restart();
    // A row the dead process held (killed mid-call) waits out its lease.
    eventually(
        "the vote's chat.update after the restart",
        LEASE_WAIT,
        || async {
            fake.updates_of(&ts)
                .iter()
                .any(|u| u["blocks"].to_string().contains("1 of 2 approvals"))
        },
    )
    .await;
    let shown = fake.updates_of(&ts).last().unwrap().clone();
    let vote_event = event_of(&shown);
    // Close it, so every row of this message has been worked off.
    let out = s.cli(&["cancel", &id, "--token", &token("ci")]);
    assert!(out.status.success(), "{out:?}");
    updated_with(&fake, &ts, "CANCELLED").await;
    let shown_vote = fake
        .updates_of(&ts)
        .iter()
        .filter(|u| event_of(u) == vote_event)
        .count();
    assert_eq!(shown_vote, 1, "the vote's update happened exactly once");
    assert_in_order(&fake, &ts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_500_through_a_429_storm_arrives_in_order_and_complete() {
    let (fake, s) = start().await;
    // Every 97th message call is answered 429 Retry-After: 1.
    fake.rate_limit_every(97);
    let mut ci = s.client_with_token(&token("ci")).await;
    for i in 0..500 {
        asked(
            &mut ci,
            ask(&format!("deploy.burst-{i}"), &["sre"], 1, None),
        )
        .await;
    }
    eventually("500 posts", Duration::from_secs(120), || async {
        fake.ok_calls("chat.postMessage").len() >= 500
    })
    .await;
    let posts = fake.ok_calls("chat.postMessage");
    assert_eq!(posts.len(), 500, "nothing posted twice");
    let posted: Vec<String> = posts
        .iter()
        .map(|c| decision_of(&c.body).unwrap())
        .collect();
    let created: Vec<String> = {
        let db = open_db(&s.db_path());
        let mut q = db
            .prepare("SELECT decision_id FROM events WHERE type = 'CREATED' ORDER BY sequence")
            .unwrap();
        q.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    if let Some(i) = (0..500).find(|&i| posted[i] != created[i]) {
        let pos = |id: &String| created.iter().position(|c| c == id);
        let around: Vec<_> = posted[i.saturating_sub(2)..(i + 3).min(500)]
            .iter()
            .map(pos)
            .collect();
        let statuses: Vec<_> = fake.calls()[i.saturating_sub(3)..(i + 4).min(fake.calls().len())]
            .iter()
            .map(|c| {
                (
                    c.status,
                    decision_of(&c.body).as_ref().and_then(pos),
                    c.at.duration_since(fake.calls()[0].at).as_millis(),
                )
            })
            .collect();
        panic!("post {i} out of order: posted (by creation index) {around:?}; calls {statuses:?}");
    }
    // Retry-After was honoured: after each 429 the channel was left alone
    // for at least the second Slack asked for.
    let calls = fake.calls();
    let limited: Vec<usize> = (0..calls.len())
        .filter(|&i| calls[i].status == 429)
        .collect();
    assert!(limited.len() >= 4, "{} 429s", limited.len());
    for i in limited {
        if let Some(next) = calls.get(i + 1) {
            let gap = next.at - calls[i].at;
            assert!(
                gap >= Duration::from_millis(990),
                "called again after {gap:?}"
            );
        }
    }
    let db = open_db(&s.db_path());
    let (pending, dead): (i64, i64) = db
        .query_row(
            "SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'dead') FROM outbox",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((pending, dead), (0, 0));
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_from_another_surface_the_fallback_and_the_expiry_update_the_message() {
    let fake = FakeSlack::start().await;
    let pager = receiver::Receiver::start(0).await;
    let extra = format!(
        r#"[[webhooks]]
name = "pager"
url = "{}"
secret = "hook-secret"
[[policies]]
kind = "timed.*"
required_approvals = 2
timeout = "3s"
ack_window = "1s"
fallback = ["pager"]
slack_channel = "C0DEPLOY"
"#,
        pager.url
    );
    let s = Server::start(&format!("{extra}{}", config(&fake)));
    let id = ask_as_ci(&s, "timed.rotate-keys", &["sre"], 2).await;
    let (_, ts) = posted(&fake, &id).await;
    // Bob votes over gRPC, not Slack.
    let mut bob = s.client_with_token(&token("bob")).await;
    bob.answer(approve(&id, "keys are staged")).await.unwrap();
    updated_with(&fake, &ts, "*bob*: keys are staged").await;
    updated_with(&fake, &ts, "the fallback was paged").await;
    let last = updated_with(&fake, &ts, "EXPIRED").await;
    assert!(!has_buttons(&last));
    assert_in_order(&fake, &ts);
    let shown: Vec<u64> = fake.updates_of(&ts).iter().map(event_of).collect();
    assert_eq!(
        shown.len(),
        3,
        "ANSWERED, FALLBACK_FIRED, EXPIRED: {shown:?}"
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}
