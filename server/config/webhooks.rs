//! `[[webhooks]]` and `[outbox]`: where witness POSTs, and how it retries.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One `[[webhooks]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The surface and paging name policies use (unique).
    pub name: String,
    /// `http://` or `https://` URL deliveries are POSTed to.
    pub url: String,
    /// HMAC-SHA256 key for `X-Witness-Signature` (never logged). Or
    /// `secret_file` / `secret_env` (see `config::secrets`).
    #[serde(default)]
    pub secret: String,
    /// A file holding the secret.
    #[serde(default)]
    pub secret_file: Option<std::path::PathBuf>,
    /// An environment variable holding the secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Payload shape: `witness` (the plain event), `pagerduty` (Events v2)
    /// or `slack` (an incoming-webhook message).
    #[serde(default)]
    pub format: WebhookFormat,
    /// PagerDuty integration key (format `pagerduty`).
    #[serde(default)]
    pub routing_key: String,
}

/// Payload shape of a webhook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    #[default]
    Witness,
    Pagerduty,
    Slack,
}

/// `[outbox]`: webhook delivery retries.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// Tries before a delivery is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; doubles per try, with jitter.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub backoff: std::time::Duration,
    /// Longest retry delay.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub max_backoff: std::time::Duration,
    /// Per-request timeout.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: std::time::Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_attempts: 8,
            backoff: std::time::Duration::from_secs(1),
            max_backoff: std::time::Duration::from_secs(300),
            timeout: std::time::Duration::from_secs(10),
        }
    }
}
