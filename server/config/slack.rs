//! `[slack]`: the Slack app that posts decisions with Approve / Reject
//! buttons and takes answers from its modal (DESIGN §11).

use super::{secrets, ConfigError, PrincipalConfig, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// `[slack]`. Its secrets are never logged (`Debug` leaves them out).
#[derive(Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The app's bot token (`xoxb-…`), sent as a bearer token to the Web
    /// API. Or `bot_token_file` / `bot_token_env`, or
    /// `WITNESS__SLACK__BOT_TOKEN`.
    #[serde(default)]
    pub bot_token: String,
    /// A file holding the bot token.
    #[serde(default)]
    pub bot_token_file: Option<PathBuf>,
    /// An environment variable holding the bot token.
    #[serde(default)]
    pub bot_token_env: Option<String>,
    /// The app's signing secret: `POST /slack/interactions` accepts only
    /// requests signed with it. Or `signing_secret_file` /
    /// `signing_secret_env`, or `WITNESS__SLACK__SIGNING_SECRET`.
    #[serde(default)]
    pub signing_secret: String,
    /// A file holding the signing secret.
    #[serde(default)]
    pub signing_secret_file: Option<PathBuf>,
    /// An environment variable holding the signing secret.
    #[serde(default)]
    pub signing_secret_env: Option<String>,
    /// The Web API's base URL (tests point it at a local fake).
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// Slack user id → witness principal, e.g.
    /// `[{ slack_id = "U024BE7LH", principal = "alice" }]` (the
    /// recommended mapping: it never depends on an email address).
    #[serde(default)]
    pub users: Vec<SlackUser>,
    /// `"email"`: a Slack user not in `users` answers as the principal
    /// whose `email` equals the address `users.info` gives (needs the
    /// `users:read.email` scope).
    #[serde(default)]
    pub principal_from: Option<String>,
    /// Least time between two Web API calls witness makes for one channel.
    /// Slack allows about one message per second per channel; a `429` with
    /// `Retry-After` pauses the channel for that long in any case.
    #[serde(default = "default_interval", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub message_interval: Duration,
}

/// One `users = [{ slack_id, principal }]` entry.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackUser {
    /// The Slack user id (`U…` or `W…`), as interaction payloads carry it.
    pub slack_id: String,
    /// The `[[principals]]` name this user answers as.
    pub principal: String,
}

fn default_api_base() -> String {
    "https://slack.com/api".into()
}

fn default_interval() -> Duration {
    Duration::from_secs(1)
}

impl std::fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackConfig")
            .field("api_base", &self.api_base)
            .field("users", &self.users)
            .field("principal_from", &self.principal_from)
            .field("message_interval", &self.message_interval)
            .finish_non_exhaustive()
    }
}

impl SlackConfig {
    /// Reads the secrets kept out of the file into their keys.
    pub(super) fn resolve_secrets(&mut self) -> Result<()> {
        self.bot_token = secrets::resolve(secrets::Sources {
            key: "slack.bot_token",
            inline: &self.bot_token,
            file: secrets::path(&self.bot_token_file),
            env: self.bot_token_env.as_deref(),
        })?;
        self.signing_secret = secrets::resolve(secrets::Sources {
            key: "slack.signing_secret",
            inline: &self.signing_secret,
            file: secrets::path(&self.signing_secret_file),
            env: self.signing_secret_env.as_deref(),
        })?;
        Ok(())
    }

    /// Whether `principal_from = "email"`.
    pub fn by_email(&self) -> bool {
        self.principal_from.as_deref() == Some("email")
    }

    pub(super) fn validate(&self, principals: &[PrincipalConfig]) -> Result<()> {
        let err = |m: String| Err(ConfigError(m));
        if self.bot_token.is_empty() {
            return err(
                "slack.bot_token: must not be empty (set bot_token, bot_token_file, \
                 bot_token_env or WITNESS__SLACK__BOT_TOKEN)"
                    .into(),
            );
        }
        if self.signing_secret.is_empty() {
            return err(
                "slack.signing_secret: must not be empty (set signing_secret, \
                 signing_secret_file, signing_secret_env or WITNESS__SLACK__SIGNING_SECRET)"
                    .into(),
            );
        }
        if !(self.api_base.starts_with("http://") || self.api_base.starts_with("https://")) {
            return err("slack.api_base: must be an http(s) URL".into());
        }
        if principals.is_empty() {
            return err(
                "slack: needs [[principals]]: Slack users answer as configured \
                 principals (dev mode has none)"
                    .into(),
            );
        }
        match self.principal_from.as_deref() {
            None | Some("email") => {}
            Some(other) => {
                return err(format!(
                    "slack.principal_from: {other:?} is not \"email\" (leave it out to map by \
                     the users table only)"
                ))
            }
        }
        if self.users.is_empty() && !self.by_email() {
            return err(
                "slack.users: map at least one Slack user to a principal, or set \
                 principal_from = \"email\""
                    .into(),
            );
        }
        if self.message_interval > Duration::from_secs(60) {
            return err("slack.message_interval: at most 60s".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, u) in self.users.iter().enumerate() {
            if u.slack_id.trim().is_empty() {
                return err(format!("slack.users[{i}].slack_id: must not be empty"));
            }
            if !seen.insert(u.slack_id.as_str()) {
                return err(format!(
                    "slack.users[{i}].slack_id: {:?} appears twice",
                    u.slack_id
                ));
            }
            if !principals.iter().any(|p| p.name == u.principal) {
                return err(format!(
                    "slack.users[{i}].principal: no [[principals]] entry is named {:?}",
                    u.principal
                ));
            }
        }
        if self.by_email() {
            let mut emails = std::collections::HashMap::new();
            for p in principals {
                if let Some(e) = &p.email {
                    if let Some(first) = emails.insert(e.to_ascii_lowercase(), &p.name) {
                        return err(format!(
                            "principals: {first:?} and {:?} have the same email; \
                             principal_from = \"email\" needs them distinct",
                            p.name
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A policy's `slack_channel`: a channel id, no spaces or `#`.
pub(super) fn check_channel(at: &str, channel: &str) -> Result<()> {
    let ok = !channel.is_empty()
        && channel.len() <= 64
        && channel.bytes().all(|b| b.is_ascii_alphanumeric());
    if !ok {
        return Err(ConfigError(format!(
            "{at}.slack_channel: {:?} is not a channel id (letters and digits, e.g. \
             \"C0DEPLOY\"; find it in the channel's details)",
            crate::core::cut(channel)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pace_as_slack_documents_and_debug_hides_secrets() {
        let cfg: SlackConfig =
            from_json(r#"{"bot_token": "xoxb-secret-1", "signing_secret": "signing-secret-2"}"#);
        assert_eq!(cfg.api_base, "https://slack.com/api");
        // chat.postMessage: about one message per second per channel.
        assert_eq!(cfg.message_interval, Duration::from_secs(1));
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("xoxb-secret-1") && !shown.contains("signing-secret-2"),
            "{shown}"
        );
    }

    fn from_json(json: &str) -> SlackConfig {
        serde_json::from_str(json).expect("a [slack] section")
    }

    #[test]
    fn channel_ids_only() {
        assert!(check_channel("p", "C0DEPLOY").is_ok());
        for bad in ["", "#deploys", "C0 DEPLOY", "<!channel>"] {
            assert!(check_channel("p", bad).is_err(), "{bad:?}");
        }
    }
}
