//! The Slack app surface (DESIGN §11): decisions whose policy names a
//! `slack_channel` are posted there through the outbox (`deliver`), kept
//! up to date in place, and answered from a modal (`interactions`) by the
//! witness principal a Slack user maps to, through the same service call as
//! every other protocol.

pub mod blocks;
pub mod deliver;
pub mod interactions;
pub mod verify;

use crate::auth::{Auth, Principal};
use crate::config::SlackConfig;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a Web API call made while Slack waits for our answer may take
/// (Slack gives an interaction 3 s in all).
const INTERACTIVE_TIMEOUT: Duration = Duration::from_millis(1200);
/// The Web API takes JSON bodies in UTF-8 (it warns without the charset).
const JSON: &str = "application/json; charset=utf-8";
/// How long an email lookup's result is reused.
const USER_CACHE: Duration = Duration::from_secs(300);

/// Why a Web API call failed. Messages never carry the token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SlackError {
    /// 429: wait this long before calling for this channel again.
    #[error("rate limited by Slack (Retry-After {0:?})")]
    RateLimited(Duration),
    /// Transport failure or a non-2xx status.
    #[error("{0}")]
    Http(String),
    /// `ok: false` with Slack's error code.
    #[error("Slack answered {0}")]
    Api(String),
}

/// The app: its configuration, Web API client, replay memory and the
/// Slack user → principal mapping.
#[derive(Debug)]
pub struct Slack {
    cfg: SlackConfig,
    client: reqwest::Client,
    replays: verify::Replays,
    /// Slack user id → (its lowercased email, when looked up), for
    /// `principal_from = "email"`.
    looked_up: Mutex<HashMap<String, (Option<String>, Instant)>>,
}

impl Slack {
    /// The app from validated config; `timeout` bounds outbox calls.
    pub fn new(cfg: SlackConfig, timeout: Duration) -> Result<Slack, SlackError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| SlackError::Http(e.to_string()))?;
        Ok(Slack {
            cfg,
            client,
            replays: verify::Replays::default(),
            looked_up: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &SlackConfig {
        &self.cfg
    }

    /// Calls Web API `method` with a JSON body (`chat.postMessage`,
    /// `chat.update`, `views.open`); Ok is the answer of an `ok: true` call.
    pub async fn call(
        &self,
        method: &str,
        body: &Value,
        timeout: Option<Duration>,
    ) -> Result<Value, SlackError> {
        let mut req = self
            .client
            .post(format!(
                "{}/{method}",
                self.cfg.api_base.trim_end_matches('/')
            ))
            .bearer_auth(&self.cfg.bot_token)
            .header(reqwest::header::CONTENT_TYPE, JSON)
            .body(body.to_string());
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        answer(req.send().await).await
    }

    /// `users.info`: the user's profile email, when Slack gives one.
    async fn email_of(&self, user: &str) -> Result<Option<String>, SlackError> {
        let req = self
            .client
            .get(format!(
                "{}/users.info",
                self.cfg.api_base.trim_end_matches('/')
            ))
            .query(&[("user", user)])
            .bearer_auth(&self.cfg.bot_token)
            .timeout(INTERACTIVE_TIMEOUT);
        let v = answer(req.send().await).await?;
        Ok(v["user"]["profile"]["email"]
            .as_str()
            .map(str::to_ascii_lowercase))
    }

    /// The principal Slack user `user` answers as, among `auth`'s (the
    /// config in force, so a reload's principals apply): the `users` table
    /// first, then (with `principal_from = "email"`) its email. None: not
    /// linked.
    pub async fn principal_for(
        &self,
        user: &str,
        auth: &Auth,
    ) -> Result<Option<Principal>, SlackError> {
        if let Some(u) = self.cfg.users.iter().find(|u| u.slack_id == user) {
            return Ok(auth.principal_named(&u.principal));
        }
        if !self.cfg.by_email() {
            return Ok(None);
        }
        let cached = self
            .looked_up
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(user)
            .filter(|(_, at)| at.elapsed() < USER_CACHE)
            .map(|(p, _)| p.clone());
        if let Some(email) = cached {
            return Ok(email.and_then(|e| auth.principal_with_email(&e)));
        }
        let email = match self.email_of(user).await {
            Ok(e) => e,
            // Not a user of this workspace: not linked either.
            Err(SlackError::Api(code)) if code == "user_not_found" => None,
            Err(e) => return Err(e),
        };
        let mut cache = self
            .looked_up
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.retain(|_, (_, at)| at.elapsed() < USER_CACHE);
        cache.insert(user.to_string(), (email.clone(), Instant::now()));
        Ok(email.and_then(|e| auth.principal_with_email(&e)))
    }

    /// Posts an ephemeral reply to an interaction's `response_url`.
    pub async fn reply_ephemeral(&self, response_url: &str, text: &str) {
        if !(response_url.starts_with("https://") || response_url.starts_with("http://")) {
            return;
        }
        let body = serde_json::json!({
            "response_type": "ephemeral", "replace_original": false, "text": text,
        });
        let sent = self
            .client
            .post(response_url)
            .header(reqwest::header::CONTENT_TYPE, JSON)
            .body(body.to_string())
            .timeout(INTERACTIVE_TIMEOUT)
            .send()
            .await;
        if let Err(e) = sent.and_then(reqwest::Response::error_for_status) {
            tracing::warn!(error = %e.without_url(), "cannot reply to a Slack interaction");
        }
    }
}

/// Reads a Web API answer: 429 with `Retry-After`, HTTP errors, `ok`.
async fn answer(sent: reqwest::Result<reqwest::Response>) -> Result<Value, SlackError> {
    // Without the URL: a response_url is a credential of sorts.
    let res = sent.map_err(|e| SlackError::Http(e.without_url().to_string()))?;
    if res.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
        let secs = res
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(1);
        return Err(SlackError::RateLimited(Duration::from_secs(
            secs.clamp(1, 3600),
        )));
    }
    if !res.status().is_success() {
        return Err(SlackError::Http(format!("HTTP {}", res.status())));
    }
    let bytes = res
        .bytes()
        .await
        .map_err(|e| SlackError::Http(format!("unreadable answer: {}", e.without_url())))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| SlackError::Http(format!("unreadable answer: {e}")))?;
    if v["ok"] != Value::Bool(true) {
        let code = v["error"].as_str().unwrap_or("no error code");
        return Err(SlackError::Api(crate::core::cut(code).to_string()));
    }
    Ok(v)
}
