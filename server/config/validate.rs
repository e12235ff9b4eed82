//! The checks serde cannot make: hashes, names, cross references, ranges.

use super::{identity, is_origin, Config, ConfigError, Result, ANONYMOUS, MIN_MESSAGE_BYTES};

impl Config {
    /// Checks what serde cannot: hashes, names, cross references.
    pub fn validate(&self) -> Result<()> {
        let mut names = std::collections::HashSet::new();
        let mut tokens = std::collections::HashMap::new();
        for (i, p) in self.principals.iter().enumerate() {
            if p.name.trim().is_empty() {
                return Err(ConfigError(format!(
                    "principals[{i}].name: must not be empty"
                )));
            }
            if p.name == ANONYMOUS {
                return Err(ConfigError(format!(
                    "principals[{i}].name: {:?} is reserved for unauthenticated callers",
                    p.name
                )));
            }
            if !names.insert(p.name.as_str()) {
                return Err(ConfigError(format!(
                    "principals[{i}].name: {:?} appears twice",
                    p.name
                )));
            }
            let ok = p.token_sha256.len() == 64
                && p.token_sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !ok {
                return Err(ConfigError(format!(
                    "principals[{i}].token_sha256: must be 64 lowercase hex digits (the SHA-256 of the token)"
                )));
            }
            // One token, one principal: otherwise the last entry would win.
            if let Some(first) = tokens.insert(p.token_sha256.as_str(), p.name.as_str()) {
                return Err(ConfigError(format!(
                    "principals[{i}].token_sha256: principals {first:?} and {:?} have the same token",
                    p.name
                )));
            }
        }
        if self.limits.max_message_bytes < MIN_MESSAGE_BYTES {
            return Err(ConfigError(format!(
                "limits.max_message_bytes: {} is below the minimum of {MIN_MESSAGE_BYTES} (4 KiB)",
                self.limits.max_message_bytes
            )));
        }
        // Past ~100 years, now + max_timeout could leave Timestamp's range.
        let max = crate::core::schema::DEFAULT_MAX_TIMEOUT * 10;
        if self.limits.max_timeout.is_zero() || self.limits.max_timeout > max {
            return Err(ConfigError(format!(
                "limits.max_timeout: must be between 1s and {}",
                crate::core::schema::span(max)
            )));
        }
        crate::store::check_url(&self.store.url).map_err(|e| ConfigError(e.to_string()))?;
        if self.outbox.max_attempts == 0 {
            return Err(ConfigError(
                "outbox.max_attempts: must be at least 1".into(),
            ));
        }
        let hooks: Vec<&str> = self.webhooks.iter().map(|w| w.name.as_str()).collect();
        for (i, w) in self.webhooks.iter().enumerate() {
            if hooks.iter().filter(|h| **h == w.name).count() > 1 {
                return Err(ConfigError(format!(
                    "webhooks[{i}].name: {:?} appears twice",
                    w.name
                )));
            }
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(ConfigError(format!(
                    "webhooks[{i}].url: must be an http(s) URL"
                )));
            }
            if w.name.starts_with(crate::store::SLACK_PREFIX) {
                return Err(ConfigError(format!(
                    "webhooks[{i}].name: {:?}: names starting with \"slack:\" are the Slack \
                     app's (set slack_channel on a policy instead)",
                    w.name
                )));
            }
            if w.secret.is_empty() {
                return Err(ConfigError(format!(
                    "webhooks[{i}].secret: must not be empty (set secret, secret_file or secret_env)"
                )));
            }
        }
        for (i, rule) in self.policies.iter().enumerate() {
            if let Some(missing) = rule.fallback.iter().find(|f| !hooks.contains(&f.as_str())) {
                return Err(ConfigError(format!(
                    "policies[{i}].fallback: no [[webhooks]] entry is named {missing:?}"
                )));
            }
            let at = format!("policies[{i}] (kind {:?})", rule.kind);
            for (j, level) in rule.escalation.iter().enumerate() {
                if let Some(missing) = level.webhooks.iter().find(|f| !hooks.contains(&f.as_str()))
                {
                    return Err(ConfigError(format!(
                        "{at}.escalation[{j}] (level {}).webhooks: no [[webhooks]] entry is named {missing:?}",
                        j + 1
                    )));
                }
            }
            if let Some(channel) = &rule.slack_channel {
                super::slack::check_channel(&at, channel)?;
                if self.slack.is_none() {
                    return Err(ConfigError(format!(
                        "{at}.slack_channel: needs a [slack] section (bot_token, signing_secret)"
                    )));
                }
            }
            if let Some(missing) = rule
                .notify_outcome
                .iter()
                .find(|f| !hooks.contains(&f.as_str()))
            {
                return Err(ConfigError(format!(
                    "{at}.notify_outcome: no [[webhooks]] entry is named {missing:?}"
                )));
            }
        }
        if let Some(slack) = &self.slack {
            slack.validate(&self.principals)?;
        }
        crate::core::policy::Policies::new(&self.policies).map_err(|e| ConfigError(e.message))?;
        for (i, rule) in self.policies.iter().enumerate() {
            self.limits
                .check_policy(i, rule)
                .map_err(|e| ConfigError(e.message))?;
        }
        if self.limits.handshake_timeout.is_zero() {
            return Err(ConfigError(
                "limits.handshake_timeout: must be more than zero (e.g. \"10s\")".into(),
            ));
        }
        for (key, value) in [
            ("max_connections", self.limits.max_connections),
            (
                "max_unauthenticated_connections",
                self.limits.max_unauthenticated_connections,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError(format!("limits.{key}: must be at least 1")));
            }
        }
        for (key, value) in [
            ("body_timeout", self.limits.body_timeout),
            ("idle_timeout", self.limits.idle_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError(format!(
                    "limits.{key}: must be more than zero (e.g. \"10s\")"
                )));
            }
        }
        for (i, origin) in self.http.allowed_origins.iter().enumerate() {
            if !is_origin(origin) {
                return Err(ConfigError(format!(
                    "http.allowed_origins[{i}]: {origin:?} is not an origin: scheme://host[:port], \
                     no path (e.g. \"https://dash.example.com\")"
                )));
            }
        }
        let otlp = &self.tracing.otlp_endpoint;
        let url = otlp.starts_with("http://") || otlp.starts_with("https://");
        if !(otlp.is_empty() || url) {
            return Err(ConfigError(
                "tracing.otlp_endpoint: must be an http(s) URL such as http://HOST:4318".into(),
            ));
        }
        identity::validate(&self.issuers, &self.auth)
    }
}
