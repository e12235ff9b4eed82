//! The outbox's Slack lane: rows whose destination is `slack:CHANNEL` are
//! written with the events that cause them, like webhook rows, and this
//! worker delivers them as Web API calls: the CREATED row posts the
//! message (`chat.postMessage`) and keeps its `ts` in the row, every later
//! row edits it (`chat.update`). Calls for one channel go one at a time,
//! in row order, at most one per `message_interval`; a 429 pauses the
//! channel for its `Retry-After` and puts its rows back in line without
//! counting an attempt, so a storm loses nothing and keeps the order.

use super::{blocks, Slack, SlackError};
use crate::config::OutboxConfig;
use crate::core::{Decision, EventType};
use crate::store::{now_micros, Delivery, Lane, OutboxItem, OutboxStatus, Store, SLACK_PREFIX};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Longest one round spends pacing a channel before it puts the channel's
/// remaining rows back (so the claim's lease stays short and a busy
/// channel never holds up the others for long).
const ROUND: Duration = Duration::from_secs(5);

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Runs forever, delivering due Slack rows (`slack` None: no `[slack]`
/// section, and such rows are dead-lettered saying so).
pub async fn run(store: Arc<dyn Store>, slack: Option<Arc<Slack>>, cfg: OutboxConfig) {
    let lease = micros(ROUND + cfg.timeout * 2 + Duration::from_secs(5));
    // When each channel may be called next.
    let mut next_call: HashMap<String, Pace> = HashMap::new();
    loop {
        let claimed_at = now_micros();
        let due = crate::outbox::claim_due(&*store, Lane::Slack, claimed_at, lease).await;
        if due.is_empty() {
            continue;
        }
        let Some(slack) = &slack else {
            for item in due {
                let error = "no [slack] section is configured".to_string();
                complete(&*store, &item, Delivery::Dead { error }).await;
            }
            continue;
        };
        let mut channels: BTreeMap<String, Vec<OutboxItem>> = BTreeMap::new();
        for item in due {
            let channel = item
                .webhook
                .strip_prefix(SLACK_PREFIX)
                .unwrap_or_default()
                .to_string();
            channels.entry(channel).or_default().push(item);
        }
        let round = Round {
            claimed_at,
            deadline: Instant::now() + ROUND,
        };
        let rounds = channels.into_iter().map(|(channel, items)| {
            let at = next_call.get(&channel).copied();
            let (store, slack) = (store.clone(), slack.clone());
            async move {
                let next = channel_round(&*store, &slack, &cfg, &channel, items, at, round).await;
                (channel, next)
            }
        });
        for (channel, next) in futures::future::join_all(rounds).await {
            next_call.insert(channel, next);
        }
        let now = Instant::now();
        let now_us = now_micros();
        next_call.retain(|_, p| p.next > now || p.resume_at.is_some_and(|at| at > now_us));
    }
}

/// When a channel may be called next, and, when rows of it were put back
/// in line, the time they were put back to: later rows of the channel are
/// put back to exactly that time, so they all come due together and the
/// claim's id order keeps the channel's order.
#[derive(Debug, Clone, Copy)]
struct Pace {
    next: Instant,
    resume_at: Option<i64>,
}

/// One round of the worker: when it claimed, and until when it paces.
#[derive(Debug, Clone, Copy)]
struct Round {
    claimed_at: i64,
    deadline: Instant,
}

/// Puts `items` back in line until `at`, counting no attempt.
async fn put_back(
    store: &dyn Store,
    items: impl Iterator<Item = OutboxItem>,
    at: i64,
    reason: &str,
) {
    for it in items {
        let reason = reason.to_string();
        complete(store, &it, Delivery::Deferred { at, reason }).await;
    }
}

/// Delivers one channel's claimed rows in order; returns its pace.
async fn channel_round(
    store: &dyn Store,
    slack: &Slack,
    cfg: &OutboxConfig,
    channel: &str,
    items: Vec<OutboxItem>,
    pace: Option<Pace>,
    round: Round,
) -> Pace {
    let interval = slack.config().message_interval;
    if let Some(
        p @ Pace {
            resume_at: Some(at),
            ..
        },
    ) = pace
    {
        // Compared with the claim's time, not the clock now: a claim made
        // before `at` did not return the rows put back (not yet due), so
        // the rows it did return must not overtake them.
        if round.claimed_at < at {
            put_back(store, items.into_iter(), at, "after rows put back earlier").await;
            return p;
        }
    }
    let mut next = pace.map_or_else(Instant::now, |p| p.next);
    let mut rest = items.into_iter();
    while let Some(item) = rest.next() {
        if next > round.deadline {
            let at = now_micros() + micros(next.saturating_duration_since(Instant::now()));
            let reason = format!("pacing channel {channel}");
            put_back(store, std::iter::once(item).chain(rest), at, &reason).await;
            return Pace {
                next,
                resume_at: Some(at),
            };
        }
        tokio::time::sleep_until(next).await;
        let result = deliver(store, slack, channel, &item).await;
        next = Instant::now() + interval;
        let delivery = match result {
            Ok(delivery) => delivery,
            Err(SlackError::RateLimited(wait)) => {
                crate::metrics::delivery(&item.webhook, "rate_limited");
                tracing::info!(channel, ?wait, "Slack rate limit: pausing the channel");
                next = Instant::now() + wait;
                let at = now_micros() + micros(wait);
                let reason = format!("rate limited by Slack for {}s", wait.as_secs());
                put_back(store, std::iter::once(item).chain(rest), at, &reason).await;
                return Pace {
                    next,
                    resume_at: Some(at),
                };
            }
            Err(e) => failed(cfg, &item, e.to_string()),
        };
        complete(store, &item, delivery).await;
    }
    Pace {
        next,
        resume_at: None,
    }
}

fn failed(cfg: &OutboxConfig, item: &OutboxItem, error: String) -> Delivery {
    let tries = item.attempts + 1;
    tracing::warn!(destination = %item.webhook, decision_id = %item.decision_id,
        event_type = %item.event_type, sequence = item.sequence, tries, error = %error,
        "Slack delivery failed");
    if tries >= cfg.max_attempts {
        return Delivery::Dead { error };
    }
    let delay = crate::outbox::backoff(cfg, tries, rand::random_range(0.8..1.2));
    Delivery::Retry {
        at: now_micros() + micros(delay),
        error,
    }
}

async fn complete(store: &dyn Store, item: &OutboxItem, result: Delivery) {
    let label = match &result {
        Delivery::Delivered { .. } | Delivery::Answered { .. } => "delivered",
        Delivery::Retry { .. } => "failed",
        Delivery::Deferred { .. } => "deferred",
        Delivery::Dead { .. } => "dead",
    };
    crate::metrics::delivery(&item.webhook, label);
    if let Err(e) = store.outbox_complete(item.id, result).await {
        tracing::warn!(id = item.id, error = %e, "cannot record a delivery; it will be retried");
    }
}

/// One row: post the message, or edit it to show the row's event.
async fn deliver(
    store: &dyn Store,
    slack: &Slack,
    channel: &str,
    item: &OutboxItem,
) -> Result<Delivery, SlackError> {
    let event: Value = match serde_json::from_str(&item.body) {
        Ok(v) => v,
        Err(e) => {
            return Ok(Delivery::Dead {
                error: format!("stored body: {e}"),
            })
        }
    };
    let decision: Decision = match serde_json::from_value(event["decision"].clone()) {
        Ok(d) => d,
        Err(e) => {
            return Ok(Delivery::Dead {
                error: format!("stored decision: {e}"),
            })
        }
    };
    let text = blocks::fallback_text(&decision);
    let message = blocks::message(&decision);
    if item.event_type == EventType::Created {
        let posted = slack
            .call(
                "chat.postMessage",
                &json!({"channel": channel, "text": text, "blocks": message,
                        "unfurl_links": false, "unfurl_media": false}),
                None,
            )
            .await?;
        let Some(ts) = posted["ts"].as_str() else {
            return Err(SlackError::Api("chat.postMessage answered no ts".into()));
        };
        return Ok(Delivery::Answered {
            at: now_micros(),
            response: ts.to_string(),
        });
    }
    let thread = match store.outbox_thread(&item.webhook, &item.decision_id).await {
        Ok(t) => t,
        Err(e) => return Err(SlackError::Http(format!("cannot read the outbox: {e}"))),
    };
    let post = thread.iter().find(|r| r.event_type == EventType::Created);
    let ts = match post {
        None => {
            return Ok(Delivery::Dead {
                error: "the decision was never posted to this channel".into(),
            })
        }
        Some(p) if p.status == OutboxStatus::Dead => {
            return Ok(Delivery::Dead {
                error: format!("its message was never posted (outbox row {} is dead)", p.id),
            })
        }
        Some(p) => match (&p.status, &p.response) {
            (OutboxStatus::Delivered, Some(ts)) => ts.clone(),
            _ => {
                // The post is still in line: follow it.
                let at = now_micros() + micros(slack.config().message_interval);
                let reason = "waiting for the message to be posted".to_string();
                return Ok(Delivery::Deferred { at, reason });
            }
        },
    };
    let newer_shown = thread.iter().any(|r| {
        r.sequence > item.sequence
            && r.event_type != EventType::Created
            && r.status == OutboxStatus::Delivered
    });
    if newer_shown {
        // A later state is on screen already: never go back to this one.
        return Ok(Delivery::Answered {
            at: now_micros(),
            response: "skipped: a later event is shown".into(),
        });
    }
    slack
        .call(
            "chat.update",
            &json!({"channel": channel, "ts": ts, "text": text, "blocks": message}),
            None,
        )
        .await?;
    Ok(Delivery::Delivered { at: now_micros() })
}
