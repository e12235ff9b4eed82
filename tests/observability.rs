//! Metrics, logs, readiness and traces (DESIGN §7, issue #16), against the
//! real binary: `/metrics` parsed by the Python `prometheus_client`
//! OpenMetrics parser, real webhook receivers, a real PostgreSQL outage and
//! a real OTLP/HTTP receiver.

mod common;

use common::pg::PgCluster;
use common::receiver::Receiver;
use common::*;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use tonic::Code;

// ---------------------------------------------------------------- scrape

/// One parsed scrape: (metric sample name, sorted labels) -> value.
struct Page {
    samples: HashMap<(String, Vec<(String, String)>), f64>,
    text: String,
}

impl Page {
    fn key(name: &str, labels: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
        let mut l: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.sort();
        (name.to_string(), l)
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .get(&Page::key(name, labels))
            .copied()
            .unwrap_or(0.0)
    }

    /// Whether the sample is on the page at all (`get` reads 0 for both).
    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.samples.contains_key(&Page::key(name, labels))
    }
}

/// (sample name, labels, value, family type) as the parser prints them.
type ParsedSample = (String, Vec<(String, String)>, f64, String);

/// The venv `make tools` builds, else `python3` on PATH.
fn python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python3");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

const PARSER: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, sorted(s.labels.items()), s.value, family.type])
print(json.dumps(out))
"#;

/// Parses the whole page with a real OpenMetrics parser: a malformed line
/// fails the test.
fn parse(text: String) -> Page {
    let mut child = Command::new(python())
        .args(["-c", PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with prometheus_client (make tools)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the page does not parse: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<ParsedSample> = serde_json::from_slice(&out.stdout).unwrap();
    Page {
        samples: rows
            .into_iter()
            .map(|(name, labels, value, _)| ((name, labels), value))
            .collect(),
        text,
    }
}

async fn scrape(s: &Server) -> Page {
    let res = reqwest::get(format!("http://{}/metrics", s.addr))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    parse(res.text().await.unwrap())
}

// ---------------------------------------------------------------- config

fn scenario_config(failing: &str, paging: &str, format: &str) -> String {
    format!(
        r#"
[log]
format = "{format}"
[outbox]
backoff = "100ms"
max_attempts = 2
[[webhooks]]
name = "hook"
url = "{failing}"
secret = "s3cret-hmac-key"
[[webhooks]]
name = "pager"
url = "{paging}"
secret = "s3cret-hmac-key"
[[policies]]
kind = "expire.*"
timeout = "1s"
[[policies]]
kind = "scram.*"
ack_window = "1s"
fallback = ["pager"]
{}{}{}"#,
        principal("svc", &[], ""),
        principal("alice", &["sre"], ""),
        principal("bob", &["sre"], ""),
    )
}

async fn ask_id(c: &mut witness::client::GrpcClient, req: proto::AskRequest) -> String {
    c.ask(req).await.unwrap().into_inner().decision.unwrap().id
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_scenario_moves_every_metric_by_exactly_what_happened() {
    let failing = Receiver::start(1000).await; // answers 500
    let paging = Receiver::start(0).await;
    let s = Server::start(&scenario_config(&failing.url, &paging.url, "json"));
    let mut svc = s.client_with_token(&token("svc")).await;
    let mut alice = s.client_with_token(&token("alice")).await;
    let mut bob = s.client_with_token(&token("bob")).await;

    let before = scrape(&s).await;
    assert!(before.get("witness_recovery_seconds", &[]) > 0.0);
    assert_eq!(before.get("witness_store_up", &[]), 1.0);
    assert!(before.get("process_resident_memory_bytes", &[]) > 1e6);
    assert!(before.get("process_open_fds", &[]) > 3.0);

    // Two asks under the default policy: one approved, one rejected.
    let a = ask_id(&mut svc, ask("deploy.prod", &["sre"], 1, None)).await;
    let b = ask_id(&mut svc, ask("deploy.prod", &["sre"], 1, None)).await;
    alice.answer(approve(&a, "looks fine")).await.unwrap();
    bob.answer(reject(&b, "not now")).await.unwrap();
    // One that expires (policy expire.*: 1s).
    let e = ask_id(&mut svc, ask("expire.soon", &["sre"], 1, None)).await;
    // One nobody acknowledges: its CREATED delivery goes to a receiver that
    // answers 500 (twice: dead), its fallback pages `pager`.
    let mut paged = ask("scram.reactor-7", &["sre"], 1, None);
    paged.surfaces = vec!["hook".into()];
    let p = ask_id(&mut svc, paged).await;
    // Refusals: a missing field, and an unknown token.
    let err = svc
        .ask(ask("", &["sre"], 1, None))
        .await
        .expect_err("kind is required");
    assert_eq!(err.code(), Code::InvalidArgument);
    let bad_token = "tok-intruder-this-must-never-be-logged";
    let mut intruder = s.client_with_token(bad_token).await;
    let err = intruder
        .ask(ask("deploy.prod", &["sre"], 1, None))
        .await
        .expect_err("unknown token");
    assert_eq!(err.code(), Code::Unauthenticated);

    // A made-up method is refused, and counted without its name: labels
    // stay bounded whatever callers send.
    let res = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
        .post(format!(
            "http://{}/witness.v1.WitnessService/Nope{}",
            s.addr,
            uuid::Uuid::now_v7()
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        // Authenticated first: without a token it is UNAUTHENTICATED, which
        // tells a stranger nothing about which methods exist.
        .header("authorization", format!("Bearer {}", token("alice")))
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["grpc-status"], "12", "UNIMPLEMENTED");

    // A stream is counted while open.
    let stream = alice
        .stream_decisions(proto::StreamDecisionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    eventually("the subscriber gauge", Duration::from_secs(10), || async {
        scrape(&s).await.get("witness_stream_subscribers", &[]) == 1.0
    })
    .await;
    drop(stream);
    eventually(
        "the subscriber to leave",
        Duration::from_secs(10),
        || async { scrape(&s).await.get("witness_stream_subscribers", &[]) == 0.0 },
    )
    .await;

    // Wait for the timers and the outbox to settle.
    eventually(
        "expiry, fallback and deliveries",
        Duration::from_secs(30),
        || async {
            let p = scrape(&s).await;
            p.get(
                "witness_outbox_deliveries_total",
                &[("webhook", "hook"), ("result", "dead")],
            ) == 1.0
                && p.get(
                    "witness_outbox_deliveries_total",
                    &[("webhook", "pager"), ("result", "delivered")],
                ) == 1.0
                && p.get(
                    "witness_decisions_closed_total",
                    &[("kind_policy", "expire.*"), ("status", "EXPIRED")],
                ) == 1.0
                && p.get("witness_outbox_pending", &[]) == 0.0
        },
    )
    .await;
    let after = scrape(&s).await;
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);

    let created = "witness_decisions_created_total";
    assert_eq!(delta(created, &[("kind_policy", "default")]), 2.0);
    assert_eq!(delta(created, &[("kind_policy", "expire.*")]), 1.0);
    assert_eq!(delta(created, &[("kind_policy", "scram.*")]), 1.0);
    let closed = "witness_decisions_closed_total";
    assert_eq!(
        delta(
            closed,
            &[("kind_policy", "default"), ("status", "APPROVED")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            closed,
            &[("kind_policy", "default"), ("status", "REJECTED")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            closed,
            &[("kind_policy", "expire.*"), ("status", "EXPIRED")]
        ),
        1.0
    );
    assert_eq!(
        delta(closed, &[("kind_policy", "scram.*"), ("status", "OPEN")]),
        0.0
    );
    let ttd = "witness_time_to_decision_seconds_count";
    assert_eq!(
        delta(ttd, &[("kind_policy", "default"), ("status", "APPROVED")]),
        1.0
    );
    assert_eq!(
        delta(ttd, &[("kind_policy", "expire.*"), ("status", "EXPIRED")]),
        1.0
    );
    // It expired after its 1 s timeout: the observation sits above 1 s.
    assert_eq!(
        after.get(
            "witness_time_to_decision_seconds_bucket",
            &[
                ("kind_policy", "expire.*"),
                ("status", "EXPIRED"),
                ("le", "0.5")
            ]
        ),
        0.0
    );
    let answers = "witness_answers_total";
    assert_eq!(
        delta(answers, &[("verdict", "approve"), ("outcome", "closed")]),
        1.0
    );
    assert_eq!(
        delta(answers, &[("verdict", "reject"), ("outcome", "closed")]),
        1.0
    );
    let refusals = "witness_refusals_total";
    assert_eq!(
        delta(refusals, &[("rpc", "Ask"), ("code", "INVALID_ARGUMENT")]),
        1.0
    );
    assert_eq!(
        delta(refusals, &[("rpc", "Ask"), ("code", "UNAUTHENTICATED")]),
        1.0
    );
    assert_eq!(
        delta(refusals, &[("rpc", "unknown"), ("code", "UNIMPLEMENTED")]),
        1.0
    );
    assert!(
        !after.text.contains("Nope"),
        "a caller-chosen method name became a label"
    );
    let deliveries = "witness_outbox_deliveries_total";
    assert_eq!(
        delta(deliveries, &[("webhook", "hook"), ("result", "failed")]),
        1.0
    );
    assert_eq!(
        delta(deliveries, &[("webhook", "hook"), ("result", "dead")]),
        1.0
    );
    assert_eq!(
        delta(deliveries, &[("webhook", "hook"), ("result", "delivered")]),
        0.0
    );
    assert_eq!(
        delta(deliveries, &[("webhook", "pager"), ("result", "delivered")]),
        1.0
    );
    assert_eq!(
        delta("witness_escalations_total", &[("level", "fallback")]),
        1.0
    );
    let lag = "witness_timer_lag_seconds_count";
    assert_eq!(delta(lag, &[("timer", "expire")]), 1.0);
    assert_eq!(delta(lag, &[("timer", "fallback")]), 1.0);
    assert_eq!(delta("witness_time_to_ack_seconds_count", &[]), 0.0);
    // Gauges come from the store: only the scram decision is still open.
    assert_eq!(after.get("witness_open_decisions", &[]), 1.0);
    assert!(after.get("witness_oldest_open_decision_age_seconds", &[]) >= 1.0);
    // Every successful command went through a commit.
    assert!(delta("witness_store_batch_size_sum", &[]) >= 8.0);
    assert!(delta("witness_store_commit_seconds_count", &[]) >= 1.0);
    // Labels never carry a raw kind.
    for raw in ["deploy.prod", "expire.soon", "scram.reactor-7"] {
        assert!(!after.text.contains(raw), "{raw} leaked into the page");
    }

    // The dashboard only queries metrics the page has.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/grafana/witness.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (at, word) in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .scan(0usize, |pos, w| {
                    let at = *pos;
                    *pos += w.len() + 1;
                    Some((at, w))
                })
            {
                if word.starts_with("witness_") || word.starts_with("process_") {
                    queried += 1;
                    assert!(
                        expr[at + word.len()..].starts_with("{job=~\"$job\""),
                        "{word} in {expr:?} is not filtered by the dashboard's $job"
                    );
                    assert!(
                        after.text.lines().any(|l| l.starts_with(word)),
                        "the dashboard queries {word}, which /metrics does not have"
                    );
                }
            }
        }
    }
    assert!(queried > 10);

    // The JSON log: one object per line, no colour, the refusals with code
    // and field, closed decisions with id, event type and sequence, and
    // never a token.
    let log = s.stderr();
    assert!(!log.contains('\u{1b}'), "ANSI escapes in a log file");
    for t in [
        bad_token.to_string(),
        token("svc"),
        token("alice"),
        token("bob"),
    ] {
        assert!(!log.contains(&t), "a token was logged");
    }
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let refused: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == "request refused")
        .collect();
    assert_eq!(refused.len(), 3, "each refusal logged once: {refused:?}");
    assert!(refused
        .iter()
        .any(|l| l["code"] == "INVALID_ARGUMENT" && l["field"] == "kind" && l["level"] == "INFO"));
    assert!(refused.iter().any(|l| l["code"] == "UNAUTHENTICATED"));
    for (id, event_type) in [(&a, "APPROVED"), (&b, "REJECTED"), (&e, "EXPIRED")] {
        assert!(
            lines.iter().any(|l| l["message"] == "decision closed"
                && l["decision_id"] == id.as_str()
                && l["event_type"] == event_type
                && l["sequence"].as_u64().is_some_and(|n| n > 0)),
            "no closed line for {id}"
        );
    }
    assert!(lines
        .iter()
        .any(|l| l["message"] == "fallback fired" && l["decision_id"] == p.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_to_a_file_carry_no_colour_and_log_refusals_once() {
    let s = Server::start(&principal("svc", &[], ""));
    let mut svc = s.client_with_token(&token("svc")).await;
    svc.ask(ask("", &["sre"], 1, None)).await.unwrap_err();
    eventually("the refusal line", Duration::from_secs(10), || async {
        s.stderr().contains("request refused")
    })
    .await;
    let log = s.stderr();
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes in a log file:\n{log}"
    );
    assert_eq!(log.matches("request refused").count(), 1, "{log}");
    assert!(
        log.contains("code=\"INVALID_ARGUMENT\"") || log.contains("code=INVALID_ARGUMENT"),
        "{log}"
    );
    assert!(!log.contains(&token("svc")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_switched_off() {
    let s = Server::start("[metrics]\nenabled = false\n");
    let res = reqwest::get(format!("http://{}/metrics", s.addr))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[test]
fn unknown_log_formats_and_bad_otlp_endpoints_are_refused_at_start() {
    for (extra, field) in [
        ("[log]\nformat = \"xml\"\n", "format"),
        (
            "[tracing]\notlp_endpoint = \"collector:4318\"\n",
            "tracing.otlp_endpoint",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.toml");
        std::fs::write(&path, extra).unwrap();
        let out = Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(field), "{err}");
    }
}

async fn health(addr: &str, service: &str) -> i32 {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = tonic_health::pb::health_client::HealthClient::new(channel);
    c.check(tonic_health::pb::HealthCheckRequest {
        service: service.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .status
}

async fn healthz(addr: &str) -> u16 {
    reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_not_serving_while_postgres_is_down_and_serving_when_back() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let (serving, not_serving) = (
        ServingStatus::Serving as i32,
        ServingStatus::NotServing as i32,
    );
    let pg = PgCluster::start();
    let s = Server::start_on(&pg.url, "");
    for svc in ["", "witness.v1.WitnessService"] {
        assert_eq!(health(&s.addr, svc).await, serving);
    }
    assert_eq!(healthz(&s.addr).await, 200);

    pg.stop();
    eventually("NOT_SERVING", Duration::from_secs(20), || async {
        health(&s.addr, "").await == not_serving
            && health(&s.addr, "witness.v1.WitnessService").await == not_serving
    })
    .await;
    assert_eq!(healthz(&s.addr).await, 503);
    // The page still answers, and says the store did not.
    assert_eq!(scrape(&s).await.get("witness_store_up", &[]), 0.0);

    pg.start_again();
    eventually("SERVING again", Duration::from_secs(30), || async {
        health(&s.addr, "").await == serving
            && health(&s.addr, "witness.v1.WitnessService").await == serving
    })
    .await;
    assert_eq!(healthz(&s.addr).await, 200);
    assert_eq!(scrape(&s).await.get("witness_store_up", &[]), 1.0);
}

/// A real OTLP/HTTP receiver: decodes each export with the OTLP protobuf
/// types and keeps the spans.
mod otlp {
    use axum::{body::Bytes, extract::State, routing::post, Router};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use prost::Message;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    #[derive(Debug, Clone)]
    pub(crate) struct Span {
        pub name: String,
        pub service: String,
        pub attributes: HashMap<String, String>,
    }

    pub(crate) type Spans = Arc<Mutex<Vec<Span>>>;

    fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
        match v.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => s.clone(),
            Some(Value::IntValue(i)) => i.to_string(),
            Some(Value::BoolValue(b)) => b.to_string(),
            Some(Value::DoubleValue(d)) => d.to_string(),
            _ => String::new(),
        }
    }

    async fn traces(State(spans): State<Spans>, body: Bytes) -> &'static str {
        let req = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
        let mut out = spans.lock().unwrap();
        for rs in req.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .map(|a| text(&a.value))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    out.push(Span {
                        name: s.name,
                        service: service.clone(),
                        attributes: s
                            .attributes
                            .iter()
                            .map(|a| (a.key.clone(), text(&a.value)))
                            .collect(),
                    });
                }
            }
        }
        ""
    }

    pub(crate) async fn start() -> (String, Spans) {
        let spans = Spans::default();
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, spans)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spans_of_one_ask_arrive_at_an_otlp_http_receiver() {
    let (url, spans) = otlp::start().await;
    let s = Server::start(&format!(
        "[tracing]\notlp_endpoint = \"{url}\"\nservice_name = \"witness-test\"\n"
    ));
    let mut svc = s.client("svc", &[]).await;
    let id = ask_id(&mut svc, ask("deploy.prod", &["sre"], 1, None)).await;
    eventually("the Ask's spans", Duration::from_secs(30), || async {
        let got = spans.lock().unwrap().clone();
        let rpc = got.iter().any(|sp| {
            sp.name == "witness.v1.WitnessService/Ask"
                && sp.service == "witness-test"
                && sp.attributes.get("principal").map(String::as_str) == Some("svc")
                && sp.attributes.get("decision_id") == Some(&id)
                && sp.attributes.get("code").map(String::as_str) == Some("OK")
        });
        let commit = got.iter().any(|sp| {
            sp.name == "store.commit"
                && sp
                    .attributes
                    .get("batch_size")
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n >= 1)
        });
        rpc && commit
    })
    .await;
}

/// A fresh server shows the labelled series a dashboard plots at 0, so
/// panels read 0 instead of "No data" until the first event.
#[tokio::test]
async fn a_fresh_server_shows_every_known_label_set_at_zero() {
    let s = Server::start(
        "[[webhooks]]\nname = \"pager\"\nurl = \"http://127.0.0.1:9/\"\nsecret = \"x\"\n\
         [[policies]]\nkind = \"scram.*\"\nescalation = [{ after = \"1m\", webhooks = [\"pager\"] }]\n",
    );
    let page = scrape(&s).await;
    for (name, labels) in [
        (
            "witness_decisions_created_total",
            &[("kind_policy", "scram.*")][..],
        ),
        (
            "witness_decisions_created_total",
            &[("kind_policy", "default")],
        ),
        (
            "witness_decisions_closed_total",
            &[("kind_policy", "scram.*"), ("status", "EXPIRED")],
        ),
        (
            "witness_answers_total",
            &[("verdict", "approve"), ("outcome", "closed")],
        ),
        (
            "witness_refusals_total",
            &[("rpc", "Ask"), ("code", "INVALID_ARGUMENT")],
        ),
        (
            "witness_outbox_deliveries_total",
            &[("webhook", "pager"), ("result", "dead")],
        ),
        ("witness_escalations_total", &[("level", "1")]),
        ("witness_escalations_total", &[("level", "fallback")]),
        (
            "witness_time_to_decision_seconds_count",
            &[("kind_policy", "default"), ("status", "APPROVED")],
        ),
        ("witness_timer_lag_seconds_count", &[("timer", "expire")]),
    ] {
        assert_eq!(page.get(name, labels), 0.0, "{name} {labels:?}");
        assert!(page.has(name, labels), "{name} {labels:?} is on the page");
    }
}
