//! Webhook delivery: a worker in each process claims due outbox rows (rows
//! are written with the events that cause them), POSTs them signed, and
//! records the result: delivered, retried later with exponential back-off
//! and jitter, or dead after `max_attempts` (visible in `witness outbox`).

use crate::config::{OutboxConfig, WebhookConfig, WebhookFormat};
use crate::store::{now_micros, Delivery, Lane, OutboxItem, Store};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const POLL: Duration = Duration::from_millis(100);
const BATCH: usize = 64;

/// `v1=HEX(HMAC-SHA256(secret, TIMESTAMP "." BODY))`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The payload a webhook of `format` receives for a stored event body.
pub fn render(hook: &WebhookConfig, event: &Value) -> Value {
    let d = &event["decision"];
    let kind = d["kind"].as_str().unwrap_or_default();
    let id = event["decision_id"].as_str().unwrap_or_default();
    let event_type = event["type"].as_str().unwrap_or_default();
    let roles = d["authorized_roles"].as_array().map(|r| {
        r.iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    });
    if event.get("outcome").is_some() {
        return render_outcome(hook, event);
    }
    let summary = match event_type {
        "FALLBACK_FIRED" => format!(
            "witness: nobody has seen decision {kind} ({id}); roles {}",
            roles.unwrap_or_default()
        ),
        "ESCALATED" => format!(
            "witness: decision {kind} ({id}) is still open: escalation level {} for {}",
            event["level"],
            roles.unwrap_or_default()
        ),
        _ => format!(
            "witness: decision {kind} ({id}) needs an answer from {}",
            roles.unwrap_or_default()
        ),
    };
    match hook.format {
        WebhookFormat::Witness => event.clone(),
        WebhookFormat::Pagerduty => json!({
            "routing_key": hook.routing_key,
            "event_action": "trigger",
            "dedup_key": id,
            "payload": {
                "summary": summary,
                "source": "witness",
                "severity": "critical",
                "component": kind,
                "custom_details": event,
            },
        }),
        WebhookFormat::Slack => json!({
            "text": summary,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": format!(
                "*{kind}* `{id}`\n{event_type}\ninput: ```{}```", d["input"]
            )}}],
        }),
    }
}

/// The payload telling a webhook how a decision closed: PagerDuty resolves
/// the incident its trigger opened (same dedup key, the decision id), Slack
/// posts a message, the witness format is the event with `outcome` and the
/// full decision.
fn render_outcome(hook: &WebhookConfig, event: &Value) -> Value {
    let o = &event["outcome"];
    let id = o["decision_id"].as_str().unwrap_or_default();
    let kind = o["kind"].as_str().unwrap_or_default();
    let status = o["status"].as_str().unwrap_or_default();
    let who: Vec<String> = o["answers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|a| {
            let op = a["operator"].as_str().unwrap_or_default();
            let via = a["submitted_by"]
                .as_str()
                .map(|s| format!(" (sent by {s})"))
                .unwrap_or_default();
            let verdict = a["verdict"].as_str().unwrap_or_default();
            let why = a["rationale"].as_str().unwrap_or_default();
            format!("{op}{via}: {verdict}: {why}")
        })
        .collect();
    let took = o["time_to_decision_ms"]
        .as_i64()
        .map(|ms| humantime::format_duration(Duration::from_millis(ms.max(0) as u64)).to_string())
        .unwrap_or_default();
    let summary = format!("witness: decision {kind} ({id}) closed {status} after {took}");
    match hook.format {
        WebhookFormat::Witness => event.clone(),
        WebhookFormat::Pagerduty => json!({
            "routing_key": hook.routing_key,
            "event_action": "resolve",
            "dedup_key": id,
            "payload": {
                "summary": summary,
                "source": "witness",
                "severity": "info",
                "component": kind,
                "custom_details": o,
            },
        }),
        WebhookFormat::Slack => {
            let mut text = format!("*{kind}* `{id}` closed *{status}* after {took}");
            for line in &who {
                text.push_str(&format!("\n• {line}"));
            }
            if let Some(reason) = o["close_reason"].as_str() {
                text.push_str(&format!("\nreason: {reason}"));
            }
            json!({
                "text": summary,
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
            })
        }
    }
}

/// Delay before try `attempt + 1` (attempts made so far: `attempt`).
pub fn backoff(cfg: &OutboxConfig, attempt: u32, jitter: f64) -> Duration {
    let exp = cfg
        .backoff
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    exp.min(cfg.max_backoff).mul_f64(jitter.clamp(0.5, 1.5))
}

/// Claims the due rows of `lane` (a batch, leased for `lease_us`); after
/// an empty claim or a store error, waits one poll interval first, so a
/// worker may loop on it. Shared by the webhook and Slack workers.
pub(crate) async fn claim_due(
    store: &dyn Store,
    lane: Lane,
    now: i64,
    lease_us: i64,
) -> Vec<OutboxItem> {
    let due = match store.outbox_claim_lane(lane, now, lease_us, BATCH).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the outbox; will retry");
            Vec::new()
        }
    };
    if due.is_empty() {
        tokio::time::sleep(POLL).await;
    }
    due
}

/// Runs forever, delivering due outbox rows.
pub async fn run(store: Arc<dyn Store>, configured: crate::reload::Hooks, cfg: OutboxConfig) {
    let by_name = |hooks: &[WebhookConfig]| -> Arc<HashMap<String, WebhookConfig>> {
        Arc::new(hooks.iter().map(|h| (h.name.clone(), h.clone())).collect())
    };
    // Rebuilt only when a reload swaps the list.
    let mut seen = configured.load_full();
    let mut hooks = by_name(&seen);
    let client = match reqwest::Client::builder().timeout(cfg.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; no webhooks will be delivered");
            return;
        }
    };
    let lease =
        i64::try_from((cfg.timeout * 2 + Duration::from_secs(5)).as_micros()).unwrap_or(i64::MAX);
    loop {
        let due = claim_due(&*store, Lane::Webhooks, now_micros(), lease).await;
        if due.is_empty() {
            continue;
        }
        let current = configured.load_full();
        if !Arc::ptr_eq(&current, &seen) {
            hooks = by_name(&current);
            seen = current;
        }
        let attempts = due.into_iter().map(|item| {
            let (store, client, hooks) = (store.clone(), client.clone(), hooks.clone());
            async move {
                let result = attempt(&client, hooks.get(&item.webhook), &item, &cfg).await;
                let label = match &result {
                    Delivery::Delivered { .. } | Delivery::Answered { .. } => "delivered",
                    Delivery::Deferred { .. } => "deferred",
                    Delivery::Retry { .. } => "failed",
                    Delivery::Dead { .. } => "dead",
                };
                crate::metrics::delivery(&item.webhook, label);
                if let Err(e) = store.outbox_complete(item.id, result).await {
                    tracing::warn!(id = item.id, error = %e, "cannot record a delivery; it will be retried");
                }
            }
        });
        futures::future::join_all(attempts).await;
    }
}

async fn attempt(
    client: &reqwest::Client,
    hook: Option<&WebhookConfig>,
    item: &OutboxItem,
    cfg: &OutboxConfig,
) -> Delivery {
    let Some(hook) = hook else {
        return Delivery::Dead {
            error: format!("no [[webhooks]] entry is named {:?}", item.webhook),
        };
    };
    let error = match send(client, hook, item).await {
        Ok(()) => return Delivery::Delivered { at: now_micros() },
        Err(e) => e,
    };
    let tries = item.attempts + 1;
    tracing::warn!(webhook = %hook.name, decision_id = %item.decision_id, event_type = %item.event_type,
        sequence = item.sequence, tries, error = %error, "webhook delivery failed");
    if tries >= cfg.max_attempts {
        return Delivery::Dead { error };
    }
    let delay = backoff(cfg, tries, rand::random_range(0.8..1.2));
    Delivery::Retry {
        at: now_micros() + i64::try_from(delay.as_micros()).unwrap_or(i64::MAX),
        error,
    }
}

async fn send(
    client: &reqwest::Client,
    hook: &WebhookConfig,
    item: &OutboxItem,
) -> Result<(), String> {
    let event: Value = serde_json::from_str(&item.body).map_err(|e| format!("stored body: {e}"))?;
    let body = serde_json::to_vec(&render(hook, &event)).map_err(|e| e.to_string())?;
    let timestamp = now_micros() / 1_000_000;
    let response = client
        .post(&hook.url)
        .header("content-type", "application/json")
        .header("x-witness-timestamp", timestamp.to_string())
        .header(
            "x-witness-signature",
            signature(&hook.secret, timestamp, &body),
        )
        .header(
            "idempotency-key",
            format!("{}/{}", item.decision_id, item.sequence),
        )
        .header("x-witness-event", item.event_type.as_str())
        .body(body)
        .send()
        .await
        // Without the URL: it may carry credentials.
        .map_err(|e| e.without_url().to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", response.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_over_timestamp_dot_body() {
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"s3cret",b"1700000000.{}",hashlib.sha256).hexdigest())'
        assert_eq!(
            signature("s3cret", 1_700_000_000, b"{}"),
            "v1=97926816e98fbb41ccb1673225ff29a2f35369099990e1b1561651e7bd097ebf"
        );
    }

    #[test]
    fn formats_shape_the_payload() {
        let event = json!({"decision_id": "d1", "type": "FALLBACK_FIRED", "sequence": 3,
                           "decision": {"kind": "scram.x", "authorized_roles": ["sre"], "input": {"a": 1}}});
        let hook = |format| WebhookConfig {
            name: "h".into(),
            url: "http://x".into(),
            secret: "s".into(),
            secret_file: None,
            secret_env: None,
            format,
            routing_key: "rk".into(),
        };
        assert_eq!(render(&hook(WebhookFormat::Witness), &event), event);
        let pd = render(&hook(WebhookFormat::Pagerduty), &event);
        assert_eq!(
            (pd["dedup_key"].as_str(), pd["routing_key"].as_str()),
            (Some("d1"), Some("rk"))
        );
        assert_eq!(pd["event_action"], "trigger");
        assert!(pd["payload"]["summary"]
            .as_str()
            .unwrap()
            .contains("nobody has seen"));
        let slack = render(&hook(WebhookFormat::Slack), &event);
        assert!(slack["text"].as_str().unwrap().contains("scram.x"));
    }

    #[test]
    fn outcomes_resolve_pagerduty_and_post_to_slack() {
        let event = json!({"decision_id": "d1", "type": "APPROVED", "sequence": 9,
            "decision": {"kind": "deploy.x"},
            "outcome": {"decision_id": "d1", "kind": "deploy.x", "status": "APPROVED",
                "time_to_decision_ms": 125_000, "close_reason": null,
                "answers": [{"operator": "alice", "submitted_by": "bot", "verdict": "APPROVE",
                             "rationale": "looks fine"}]}});
        let hook = |format| WebhookConfig {
            name: "h".into(),
            url: "http://x".into(),
            secret: "s".into(),
            secret_file: None,
            secret_env: None,
            format,
            routing_key: "rk".into(),
        };
        assert_eq!(render(&hook(WebhookFormat::Witness), &event), event);
        let pd = render(&hook(WebhookFormat::Pagerduty), &event);
        assert_eq!(pd["event_action"], "resolve");
        assert_eq!(pd["dedup_key"], "d1");
        assert!(pd["payload"]["summary"]
            .as_str()
            .unwrap()
            .contains("closed APPROVED after 2m 5s"));
        let slack = render(&hook(WebhookFormat::Slack), &event);
        let text = slack["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(
            text.contains("alice (sent by bot): APPROVE: looks fine"),
            "{text}"
        );
    }

    #[test]
    fn backoff_doubles_with_a_cap() {
        let cfg = OutboxConfig {
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            ..Default::default()
        };
        assert_eq!(backoff(&cfg, 1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(&cfg, 3, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(&cfg, 9, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(&cfg, 2, 1.2), Duration::from_millis(2400));
    }
}
